//! [`Doorbell`]: how other threads (and, through the eventfd, other processes) wake an engine
//! thread that idles.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// A wake-up for one engine thread: an eventfd plus a `rung` flag, shared by every clone.
///
/// The protocol, after the `need_wakeup` flag of AF_XDP rings:
///
/// * a producer publishes its work first (a ring record, a queued command), then calls
///   [`Doorbell::ring`]: if `rung` was clear it sets it and writes the eventfd; if it was set,
///   a wake-up is already pending and the ring costs one atomic swap, no syscall;
/// * the engine's idle strategy sleeps in an epoll set that holds the eventfd; when it fires,
///   the engine reads the eventfd (resetting the counter) and *then* clears `rung` with an
///   acquire-release swap, so a producer whose swap came after the clear writes the eventfd
///   again, and one whose swap came before it is seen by the agents' next duty cycle, which
///   follows the clear.
///
/// A process that was handed the eventfd ([`Doorbell::fd`], over `SCM_RIGHTS`) may simply
/// write it: the engine wakes just the same.
#[derive(Clone)]
pub struct Doorbell {
    inner: Arc<Inner>,
}

struct Inner {
    fd: OwnedFd,
    rung: AtomicBool,
}

impl Doorbell {
    /// A new doorbell (a non-blocking, close-on-exec eventfd).
    ///
    /// # Errors
    ///
    /// The OS error of `eventfd(2)` (`EMFILE`, `ENFILE`, `ENOMEM`).
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                fd: sys::eventfd()?,
                rung: AtomicBool::new(false),
            }),
        })
    }

    /// Wakes the engine thread if it idles; call it after publishing the work it should find.
    /// Never blocks and never fails (a full eventfd counter is readable already).
    pub fn ring(&self) {
        if !self.inner.rung.swap(true, Ordering::AcqRel) {
            let _ = sys::eventfd_ring(self.inner.fd.as_fd());
        }
    }

    /// The eventfd, to watch in an epoll set or to hand to another process (`SCM_RIGHTS`).
    /// Borrowed: do not close it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Whether a ring is pending (rung and not yet taken by the engine).
    pub fn is_rung(&self) -> bool {
        self.inner.rung.load(Ordering::Acquire)
    }

    /// Takes the pending rings: resets the eventfd, then clears `rung` (in that order, see the
    /// module docs). Returns whether the eventfd had been written.
    pub(crate) fn take(&self) -> bool {
        let written = matches!(sys::eventfd_drain(self.inner.fd.as_fd()), Ok(Some(_)));
        self.inner.rung.swap(false, Ordering::AcqRel);
        written
    }
}

impl fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Doorbell")
            .field("fd", &self.inner.fd)
            .field("rung", &self.inner.rung.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_makes_the_eventfd_readable_once() {
        let bell = Doorbell::new().expect("eventfd");
        assert!(!bell.is_rung());
        assert!(!bell.take(), "nothing pending");
        bell.ring();
        bell.ring();
        assert!(bell.is_rung());
        assert!(
            sys::poll_readable(bell.fd(), std::time::Duration::ZERO).expect("poll"),
            "the eventfd is readable"
        );
        assert!(bell.take());
        assert!(!bell.is_rung());
        assert!(
            !sys::poll_readable(bell.fd(), std::time::Duration::ZERO).expect("poll"),
            "taken: not readable any more"
        );
        bell.clone().ring();
        assert!(bell.take(), "a clone rings the same bell");
    }
}
