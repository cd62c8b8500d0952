//! Doorbells: an eventfd one side rings after publishing records the other side may be
//! sleeping on. See the `need_wakeup` protocol in [`crate::ring`] for when to ring and when
//! it is safe to sleep.
//!
//! # Trust
//!
//! A doorbell is shared with the other process over `SCM_RIGHTS`, which shares the open file
//! *description*, its `O_NONBLOCK` flag included. A hostile peer can therefore clear
//! `O_NONBLOCK` behind our back. [`Doorbell::drain`] is immune: it reads with `RWF_NOWAIT`,
//! a per-call flag. [`Doorbell::ring`] is not, because Linux has no per-call non-blocking
//! write for eventfds: a peer that clears `O_NONBLOCK` *and* raises the counter to its maximum
//! (`u64::MAX - 1`) makes our `write` block until someone reads. A process that must never
//! block on an untrusted peer should wake that peer by another channel whose sending end it
//! owns alone (a pipe's write end, or `send(MSG_DONTWAIT)` on a socket), and use eventfd
//! doorbells only in the direction where it is the one draining.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// One eventfd used as a wakeup signal (counter mode, non-blocking, close-on-exec).
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// Creates a fresh eventfd doorbell.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall with constant flags; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Takes over a doorbell received from the other process. Refuses anything that is not an
    /// eventfd (checked through `/proc/self/fd`) and makes it non-blocking if it is not.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        if link.as_os_str() != "anon_inode:[eventfd]" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("doorbell is not an eventfd but {}", link.display()),
            ));
        }
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own; results checked.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK == 0 {
            // SAFETY: as above.
            let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Self { fd })
    }

    /// Signals the other side. A counter already at its maximum means the doorbell is
    /// already ringing, so `EAGAIN` is success. Infallible: the other errors of an 8-byte
    /// write to an eventfd we own (`EBADF`, `EINVAL`) cannot happen. See the module doc on
    /// trust for when this can block.
    pub fn ring(&self) {
        let one = 1u64.to_ne_bytes();
        loop {
            // SAFETY: writes 8 bytes from a local buffer to a descriptor we own.
            let r = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
            if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }

    /// Resets the doorbell, returning how many rings (counter value) it had; 0 if none.
    /// Never blocks, even if the other process cleared `O_NONBLOCK` (on kernels older than
    /// 5.12 it relies on `O_NONBLOCK`). Infallible like [`Doorbell::ring`].
    pub fn drain(&self) -> u64 {
        self.try_drain().unwrap_or(0)
    }

    fn try_drain(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        loop {
            let iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: one iovec over a local 8-byte buffer; offset -1 = current position,
            // which eventfds ignore. RWF_NOWAIT makes this call non-blocking by itself.
            let r = unsafe { libc::preadv2(self.fd.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
            if r == 8 {
                return Ok(u64::from_ne_bytes(buf));
            }
            if r >= 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "short read from eventfd",
                ));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => return Ok(0),
                // Kernels before 5.12 do not take RWF_NOWAIT on eventfds: fall back to a
                // plain read, which relies on O_NONBLOCK.
                _ if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return self.drain_plain(),
                _ => return Err(e),
            }
        }
    }

    fn drain_plain(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        loop {
            // SAFETY: reads 8 bytes into a local buffer from a descriptor we own.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r == 8 {
                return Ok(u64::from_ne_bytes(buf));
            }
            if r >= 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "short read from eventfd",
                ));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        }
    }

    /// Blocks until the doorbell rings or `timeout` passes (`None`: no limit), without
    /// draining it. Returns whether it is ringing. For simple callers and tests; an event
    /// loop polls [`Doorbell::as_fd`] for readability instead.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms: libc::c_int = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up so a sub-millisecond remainder still waits.
                    let ms = left.as_micros().div_ceil(1000);
                    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
                }
            };
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd on the stack.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                return Ok(pfd.revents & libc::POLLIN != 0);
            }
            if r == 0 {
                return Ok(false);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Doorbell> for OwnedFd {
    fn from(d: Doorbell) -> Self {
        d.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_then_drain_counts() {
        let d = Doorbell::new().expect("eventfd");
        assert_eq!(d.drain(), 0);
        assert!(!d.wait(Some(Duration::from_millis(1))).expect("wait"));
        d.ring();
        d.ring();
        assert!(d.wait(Some(Duration::ZERO)).expect("wait"));
        assert_eq!(d.drain(), 2);
        assert_eq!(d.drain(), 0);
    }

    #[test]
    fn from_fd_accepts_eventfd_and_sets_nonblocking() {
        // SAFETY: test-only raw eventfd, blocking on purpose.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let d = Doorbell::from_fd(fd).expect("eventfd accepted");
        // SAFETY: F_GETFL on our descriptor.
        let flags = unsafe { libc::fcntl(d.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0);
        assert_eq!(d.drain(), 0);
    }

    #[test]
    fn from_fd_rejects_other_files() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let err = Doorbell::from_fd(OwnedFd::from(a)).expect_err("socket refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn drain_never_blocks_even_if_peer_clears_nonblock() {
        let d = Doorbell::new().expect("eventfd");
        // The "peer" shares the file description and clears O_NONBLOCK.
        // SAFETY: F_SETFL on our descriptor.
        assert!(unsafe { libc::fcntl(d.as_raw_fd(), libc::F_SETFL, 0) } >= 0);
        assert_eq!(d.drain(), 0);
    }

    #[test]
    fn ring_on_saturated_counter_is_success() {
        let d = Doorbell::new().expect("eventfd");
        let max = (u64::MAX - 1).to_ne_bytes();
        // SAFETY: 8-byte write to our eventfd.
        assert_eq!(
            unsafe { libc::write(d.as_raw_fd(), max.as_ptr().cast(), 8) },
            8
        );
        d.ring(); // saturated: not an error, does not block
        assert_eq!(d.drain(), u64::MAX - 1);
    }

    #[test]
    fn wakes_a_waiting_thread() {
        let d = std::sync::Arc::new(Doorbell::new().expect("eventfd"));
        let d2 = d.clone();
        let t = std::thread::spawn(move || d2.wait(Some(Duration::from_secs(10))));
        std::thread::sleep(Duration::from_millis(20));
        d.ring();
        assert!(t.join().expect("thread").expect("wait"));
    }
}
