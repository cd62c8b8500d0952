//! The Ethernet fast path: an AF_XDP bearer together with the XDP program that steers TIPC
//! frames to it. `dataplane` does not depend on `ebpf` (arrows point down), so the pairing
//! lives here: [`SteeredXdp`] owns both, and dropping it closes the socket and then detaches the
//! program.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use utipc_dataplane::bearer::xdp::{XdpBearer, XdpBearerConfig};
use utipc_dataplane::bearer::{Bearer, BearerStats, RxMeta};
use utipc_ebpf::{AttachMode, SteerConfig, XdpSteering};
use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::discovery::MediaAddr;

/// An AF_XDP bearer and the steering program that feeds it.
#[derive(Debug)]
pub struct SteeredXdp {
    // Field order matters: the socket closes before the program detaches.
    bearer: XdpBearer,
    steering: XdpSteering,
}

impl SteeredXdp {
    /// Attaches the steering program to `iface` (native, else generic), steering only
    /// Ethernet TIPC frames (UDP bearers stay on kernel sockets), and opens the AF_XDP socket
    /// on queue 0. The error says, in one line, why AF_XDP is not available.
    pub fn open(iface: &str) -> Result<Self, String> {
        let mut steering =
            XdpSteering::attach(iface, AttachMode::Auto).map_err(|e| e.to_string())?;
        steering
            .set_config(SteerConfig {
                ethernet: true,
                udp: false,
            })
            .map_err(|e| e.to_string())?;
        let cfg = XdpBearerConfig::new(iface);
        let bearer = {
            let mut register = |queue: u32, fd: RawFd| {
                steering
                    .register_xsk(queue, fd)
                    .map_err(|e| io::Error::other(e.to_string()))
            };
            XdpBearer::open(cfg, &mut register).map_err(|e| e.to_string())?
        };
        Ok(Self { bearer, steering })
    }

    /// How the pieces came up, for the startup log: XDP attach mode, socket mode and any
    /// fallback reasons.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "AF_XDP {} mode, XDP program {}",
            self.bearer.mode(),
            self.steering.mode()
        );
        for why in [
            self.steering.fallback_reason(),
            self.bearer.fallback_reason(),
        ]
        .into_iter()
        .flatten()
        {
            s.push_str(&format!(" ({why})"));
        }
        s
    }

    /// The steering program's counters, as one line.
    pub fn steering_counters(&self) -> String {
        match self.steering.counters() {
            Ok(c) => c.to_string(),
            Err(e) => format!("counters unavailable: {e}"),
        }
    }
}

impl Bearer for SteeredXdp {
    fn media(&self) -> MediaKind {
        self.bearer.media()
    }

    fn local_addr(&self) -> MediaAddr {
        self.bearer.local_addr()
    }

    fn mtu(&self) -> u32 {
        self.bearer.mtu()
    }

    fn supports_broadcast(&self) -> bool {
        self.bearer.supports_broadcast()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.bearer.fd()
    }

    fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
        self.bearer.send(dest, frame)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.bearer.flush()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        self.bearer.recv(buf)
    }

    fn recv_batch(
        &mut self,
        scratch: &mut [u8],
        max: usize,
        on_frame: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        self.bearer.recv_batch(scratch, max, on_frame)
    }

    fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr)) {
        self.bearer.wire_dests(dest, f);
    }

    fn stats(&self) -> &BearerStats {
        self.bearer.stats()
    }

    fn stats_mut(&mut self) -> &mut BearerStats {
        self.bearer.stats_mut()
    }
}
