//! A raw AF_PACKET socket for tests: injects hand-made Ethernet frames and sniffs every frame
//! of an interface, to see what the bearers really put on the wire.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::sys;

/// `ETH_P_ALL`: every ethertype.
const ETH_P_ALL: u16 = 0x0003;

#[derive(Debug)]
pub(crate) struct RawSock {
    fd: OwnedFd,
}

impl RawSock {
    /// A socket on `ifname` of the calling thread's namespace that only sends.
    pub(crate) fn injector(ifname: &str) -> Self {
        Self::open(ifname, 0)
    }

    /// A socket on `ifname` of the calling thread's namespace that sees every frame.
    pub(crate) fn sniffer(ifname: &str) -> Self {
        Self::open(ifname, ETH_P_ALL)
    }

    fn open(ifname: &str, ethertype: u16) -> Self {
        let fd = sys::packet_socket().expect("AF_PACKET socket");
        let index = sys::if_index(fd.as_fd(), ifname).expect("interface index");
        sys::packet_bind(fd.as_fd(), index, ethertype).expect("bind");
        Self { fd }
    }

    /// Sends one whole Ethernet frame.
    pub(crate) fn send(&self, frame: &[u8]) {
        let n = sys::send_gather(self.fd.as_fd(), &[frame]).expect("inject frame");
        assert_eq!(n, frame.len());
    }

    /// Every frame received within `window` (bounded, waiting in poll(2)).
    pub(crate) fn collect(&self, window: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            while let Some(got) =
                sys::recv_packet(self.fd.as_fd(), &mut [], &mut buf).expect("sniff")
            {
                frames.push(buf[..got.frame_len.min(buf.len())].to_vec());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return frames;
            }
            sys::poll_readable(self.fd.as_fd(), left).expect("poll");
        }
    }
}
