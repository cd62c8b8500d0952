//! The bearer IO layer: one [`Bearer`] trait and its implementations.
//!
//! A bearer moves whole TIPC messages between the sans-IO core (`utipc-proto`) and one network
//! interface. The core decides *what* to send and *where* ([`Dest`]); a bearer only knows how
//! to put bytes on its media and take them off again:
//!
//! * [`udp::UdpBearer`] — TIPC over UDP port 6118, IPv4 or IPv6, multicast or replicast
//!   (spec §4.1). Unprivileged; the default.
//! * [`packet::PacketBearer`] — TIPC over Ethernet (ethertype 0x88CA) through an AF_PACKET
//!   socket. Needs CAP_NET_RAW; the fallback when AF_XDP cannot attach.
//! * [`pcap_tap::PcapTap`] — wraps any bearer and writes every frame to a pcap file, switched
//!   on and off at run time through [`Bearer::pcap_tap_mut`].
//!
//! Contract shared by every bearer (the AF_XDP bearer will follow it too):
//!
//! * **Non-blocking.** `send` and `recv` never wait. `recv` returns `Ok(None)` when nothing
//!   is queued; wait for [`Bearer::fd`] to become readable (epoll, level-triggered) or use
//!   [`Bearer::wait_readable`].
//! * **TIPC bytes only.** Frames in and out are TIPC messages without media headers
//!   (Ethernet, IP, UDP). A received frame may be longer than its TIPC `size` field (Ethernet
//!   padding); the core trusts the size field, the bearer leaves the bytes alone.
//! * **Filtering is the bearer's job.** Frames the kernel's bearer would never hand to TIPC
//!   (our own transmissions looped back, promiscuous copies for other hosts, truncated
//!   frames) are dropped and counted in [`BearerStats`], never returned.
//! * **Errors are counted, never logged.** Every failure is counted in [`BearerStats`]; its
//!   [`ErrorLog`] hands out a rate-limited summary for the caller to log.
//! * **Counters beyond [`BearerStats`]** (rings, the steering program, a capture) go to a
//!   [`BearerReport`] visitor through [`Bearer::report`], so management can show them for a
//!   bearer it only holds as `dyn Bearer`.
//! * **Batch-friendly.** [`Bearer::recv_batch`] hands frames to a closure, so a bearer with
//!   its own buffers (AF_XDP's UMEM) can lend them without a copy; [`Bearer::flush`] is where a
//!   bearer that queues transmissions (AF_XDP's TX ring) kicks the kernel.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::discovery::MediaAddr;

/// The [`Bearer`] methods a wrapper (fault injector, pcap tap) answers from the bearer it
/// wraps unchanged: its identity (media, address, MTU, broadcast), its descriptors, where a
/// destination goes on the wire, and its counters. Used inside `impl Bearer for Wrapper`;
/// `$inner` names the wrapped bearer's field.
macro_rules! forward_bearer_identity {
    ($inner:ident) => {
        fn media(&self) -> MediaKind {
            self.$inner.media()
        }

        fn local_addr(&self) -> MediaAddr {
            self.$inner.local_addr()
        }

        fn mtu(&self) -> u32 {
            self.$inner.mtu()
        }

        fn supports_broadcast(&self) -> bool {
            self.$inner.supports_broadcast()
        }

        fn fd(&self) -> BorrowedFd<'_> {
            self.$inner.fd()
        }

        fn raw_fd(&self) -> RawFd {
            self.$inner.raw_fd()
        }

        fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr)) {
            self.$inner.wire_dests(dest, f);
        }

        fn stats(&self) -> &BearerStats {
            self.$inner.stats()
        }

        fn stats_mut(&mut self) -> &mut BearerStats {
            self.$inner.stats_mut()
        }
    };
}

pub mod fault;
pub mod packet;
pub mod pcap_tap;
mod stats;
pub mod udp;
pub mod xdp;

pub use self::pcap_tap::PcapControl;
pub use self::stats::{
    BearerCounters, BearerStats, ErrorLog, ErrorReport, ErrorSample, IoDirection, RxDrops,
};

/// At most this many unwanted frames (see [`RxDrops`]) are read and dropped by one `recv`
/// call before it gives up with `Ok(None)`, so a flood of junk cannot hold the caller. The fd
/// stays readable, so a level-triggered poll calls again.
pub const MAX_DROPS_PER_RECV: usize = 64;

/// Addresses of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RxMeta {
    /// The sender's address on the wire (its MAC, or its IP address and UDP port). TIPC sends
    /// later unicast packets to the media address a peer *advertises* in discovery, which the
    /// core reads from the message, not to this one.
    pub src: MediaAddr,
    /// The address the frame was sent to: this bearer's own address, or a broadcast address
    /// (the Ethernet broadcast or a multicast MAC, or the UDP multicast group).
    pub dst: MediaAddr,
}

impl RxMeta {
    /// Whether the frame was sent to a broadcast or multicast address rather than to us alone.
    pub fn is_broadcast(&self) -> bool {
        match self.dst {
            MediaAddr::Eth(mac) => crate::ether::is_group_mac(&mac),
            other => other.is_broadcast(),
        }
    }
}

/// Where a bearer reports what it counts beyond [`BearerStats`]: named groups of counters, and
/// a few facts as text (group `af_xdp`: `mode` = `copy`, `tx_kicks` = 12). A visitor, so a
/// bearer reports without allocating and the caller (management, a benchmark) picks the format.
pub trait BearerReport {
    /// Starts a group; the counters and texts that follow belong to it.
    fn group(&mut self, name: &str);
    /// A counter of the current group.
    fn counter(&mut self, name: &str, value: u64);
    /// A fact of the current group as text: a mode, or why some counters cannot be read.
    fn text(&mut self, name: &str, value: &str);
}

/// A bearer: TIPC messages in and out of one network interface. See the [module
/// docs](self) for the contract every implementation keeps.
pub trait Bearer {
    /// The media this bearer runs on.
    fn media(&self) -> MediaKind;

    /// This bearer's own media address, the one to advertise in discovery.
    fn local_addr(&self) -> MediaAddr;

    /// Largest TIPC message `send` accepts (the bearer MTU advertised in RESET/ACTIVATE).
    fn mtu(&self) -> u32;

    /// Whether [`Dest::Broadcast`] reaches every peer with one transmission (false for UDP
    /// replicast, where it becomes one copy per configured peer).
    fn supports_broadcast(&self) -> bool;

    /// The descriptor to watch for readability. Borrowed: do not close it.
    fn fd(&self) -> BorrowedFd<'_>;

    /// The descriptor as a raw number, for epoll registration. Borrowed: do not close it.
    fn raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }

    /// Sends one TIPC message. [`Dest::Broadcast`] goes to the bearer's broadcast address (the
    /// Ethernet broadcast, the UDP multicast group, or one copy per UDP replicast peer);
    /// [`Dest::Unicast`] to that peer.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the message is longer than [`Bearer::mtu`] or the destination is not
    /// an address of this media; `WouldBlock` if the socket buffer is full (the message is
    /// lost, as on the wire; TIPC's link layer retransmits); otherwise the OS error. For a
    /// replicast broadcast every copy is tried and the first error is returned. Every failure
    /// is also counted in [`Bearer::stats`].
    fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()>;

    /// Pushes out transmissions the bearer queued. The socket bearers send in `send` and have
    /// nothing to flush; a ring-based bearer (AF_XDP) wakes the kernel here. Call it once per
    /// batch of sends.
    ///
    /// # Errors
    ///
    /// The OS error of the wake-up call.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Receives one TIPC message into `buf`: its length and addresses, or `Ok(None)` when
    /// nothing (more) is queued. Unwanted frames are dropped and counted, not returned; a frame
    /// longer than `buf` is dropped as truncated, so give a buffer of at least the largest
    /// frame the media carries (the interface MTU for Ethernet, 65,535 bytes for UDP).
    ///
    /// # Errors
    ///
    /// The OS error of the receive call (for example `ENETDOWN` when the interface went down),
    /// also counted in [`Bearer::stats`].
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>>;

    /// Receives up to `max` messages, handing each to `on_frame`; returns how many. The socket
    /// bearers read into `scratch` (sized as for [`Bearer::recv`]); a bearer with its own
    /// receive buffers lends them to `on_frame` without a copy and ignores `scratch`.
    ///
    /// # Errors
    ///
    /// As [`Bearer::recv`], but only when no message was delivered: an error after some
    /// messages ends the batch with `Ok` (the error is counted in [`Bearer::stats`]).
    fn recv_batch(
        &mut self,
        scratch: &mut [u8],
        max: usize,
        on_frame: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        let mut delivered = 0;
        while delivered < max {
            match self.recv(scratch) {
                Ok(Some((len, meta))) => {
                    if let Some(frame) = scratch.get(..len) {
                        on_frame(frame, &meta);
                    }
                    delivered += 1;
                }
                Ok(None) => break,
                Err(e) if delivered == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(delivered)
    }

    /// Calls `f` with each media address a send to `dest` puts on the wire, one per copy, in
    /// order: the broadcast MAC, the multicast group, each replicast peer, or the unicast
    /// peer. Nothing for a destination the bearer cannot reach.
    fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr));

    /// Counters and the error log.
    fn stats(&self) -> &BearerStats;

    /// Counters and the error log, to take error reports or reset counters.
    fn stats_mut(&mut self) -> &mut BearerStats;

    /// Waits up to `timeout` for the bearer to become readable; `Ok(true)` if it did. For
    /// blocking idle strategies and tests; a poll-mode agent watches [`Bearer::fd`] in epoll.
    ///
    /// # Errors
    ///
    /// The OS error of poll(2).
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        crate::sys::poll_readable(self.fd(), timeout)
    }

    /// Reports what the bearer counts beyond [`Bearer::stats`] (the AF_XDP rings and the
    /// steering program, a running capture) to `out`, one group after another; a wrapper
    /// reports the wrapped bearer's groups, then its own. The socket bearers have nothing
    /// beyond [`Bearer::stats`]: the default reports nothing.
    fn report(&self, out: &mut dyn BearerReport) {
        let _ = out;
    }

    /// The capture switch, if this bearer is (or wraps) a [`pcap_tap::PcapTap`]: how a daemon
    /// that holds its bearers as `dyn Bearer` reads the state of a capture.
    fn pcap_tap(&self) -> Option<&dyn PcapControl> {
        None
    }

    /// The capture switch, mutably: how a daemon starts and stops captures at run time.
    fn pcap_tap_mut(&mut self) -> Option<&mut dyn PcapControl> {
        None
    }
}

impl<B: Bearer + ?Sized> Bearer for Box<B> {
    fn media(&self) -> MediaKind {
        (**self).media()
    }
    fn local_addr(&self) -> MediaAddr {
        (**self).local_addr()
    }
    fn mtu(&self) -> u32 {
        (**self).mtu()
    }
    fn supports_broadcast(&self) -> bool {
        (**self).supports_broadcast()
    }
    fn fd(&self) -> BorrowedFd<'_> {
        (**self).fd()
    }
    fn raw_fd(&self) -> RawFd {
        (**self).raw_fd()
    }
    fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
        (**self).send(dest, frame)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        (**self).recv(buf)
    }
    fn recv_batch(
        &mut self,
        scratch: &mut [u8],
        max: usize,
        on_frame: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        (**self).recv_batch(scratch, max, on_frame)
    }
    fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr)) {
        (**self).wire_dests(dest, f)
    }
    fn stats(&self) -> &BearerStats {
        (**self).stats()
    }
    fn stats_mut(&mut self) -> &mut BearerStats {
        (**self).stats_mut()
    }
    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        (**self).wait_readable(timeout)
    }
    fn report(&self, out: &mut dyn BearerReport) {
        (**self).report(out)
    }
    fn pcap_tap(&self) -> Option<&dyn PcapControl> {
        (**self).pcap_tap()
    }
    fn pcap_tap_mut(&mut self) -> Option<&mut dyn PcapControl> {
        (**self).pcap_tap_mut()
    }
}

/// `InvalidInput` for a message longer than the bearer MTU.
pub(crate) fn too_long(len: usize, mtu: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "TIPC message of {len} bytes exceeds the bearer MTU of {mtu} bytes; the link layer \
             must fragment it"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::packet::PacketBearer;
    use super::pcap_tap::PcapTap;
    use super::udp::UdpBearer;
    use super::*;

    /// Bearers move to the dataplane thread that drives them, and can be boxed as trait
    /// objects.
    #[test]
    fn bearers_are_send_and_object_safe() {
        fn send<T: Send>() {}
        send::<UdpBearer>();
        send::<PacketBearer>();
        send::<PcapTap<UdpBearer>>();
        send::<PcapTap<Box<dyn Bearer + Send>>>();
    }

    #[test]
    fn broadcast_destinations() {
        let eth = |mac| RxMeta {
            src: MediaAddr::Eth([2, 0, 0, 0, 0, 1]),
            dst: MediaAddr::Eth(mac),
        };
        assert!(eth([0xff; 6]).is_broadcast());
        assert!(
            eth([0x01, 0, 0x5e, 0, 0, 1]).is_broadcast(),
            "multicast MAC"
        );
        assert!(!eth([2, 0, 0, 0, 0, 2]).is_broadcast());
        let udp = |dst: &str| RxMeta {
            src: MediaAddr::Udp("198.18.0.2:6118".parse().expect("addr")),
            dst: MediaAddr::Udp(dst.parse().expect("addr")),
        };
        assert!(udp("228.0.18.103:6118").is_broadcast());
        assert!(!udp("198.18.0.1:6118").is_broadcast());
    }
}
