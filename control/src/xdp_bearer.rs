//! The Ethernet fast path: an AF_XDP bearer together with the XDP program that steers TIPC
//! frames to it. `dataplane` does not depend on `ebpf` (arrows point down), so the pairing
//! lives here: the steering program becomes the bearer's guard ([`XdpGuard`]), dropped after
//! the socket, so the program stays attached exactly as long as the socket it feeds, and its
//! counters show up in the bearer's [`Bearer::report`](utipc_dataplane::bearer::Bearer::report)
//! (group `steering`) without the bearer knowing the loader.

use std::io;
use std::os::fd::RawFd;

use utipc_dataplane::bearer::BearerReport;
use utipc_dataplane::bearer::xdp::{XdpBearer, XdpBearerConfig, XdpGuard};
use utipc_ebpf::{AttachMode, SteerConfig, XdpSteering};

/// The steering program as an AF_XDP bearer's guard: held for its lifetime (dropping it
/// detaches the program), asked only for its counters.
#[derive(Debug)]
pub struct SteeringGuard(pub XdpSteering);

impl XdpGuard for SteeringGuard {
    /// Group `steering`: the XDP mode (`native` / `generic`) and the program's counters summed
    /// over CPUs (steered, passed, dropped, no_socket), or why they cannot be read.
    fn report(&self, out: &mut dyn BearerReport) {
        out.group("steering");
        out.text("xdp_mode", &self.0.mode().to_string());
        match self.0.counters() {
            Ok(c) => {
                for (name, value) in c.named() {
                    out.counter(name, value);
                }
            }
            Err(e) => out.text("error", &format!("counters unavailable: {e}")),
        }
    }
}

/// Attaches the steering program to `iface` (native, else generic), steering only Ethernet
/// TIPC frames (UDP bearers stay on kernel sockets), and opens the AF_XDP socket on queue 0.
/// Returns the bearer and one line describing how it came up; the error says, in one line, why
/// AF_XDP is not available.
pub fn open_steered(iface: &str) -> Result<(XdpBearer, String), String> {
    let mut steering = XdpSteering::attach(iface, AttachMode::Auto).map_err(|e| e.to_string())?;
    steering
        .set_config(SteerConfig {
            ethernet: true,
            udp: false,
        })
        .map_err(|e| e.to_string())?;
    let mut bearer = {
        let mut register = |queue: u32, fd: RawFd| {
            steering
                .register_xsk(queue, fd)
                .map_err(|e| io::Error::other(e.to_string()))
        };
        XdpBearer::open(XdpBearerConfig::new(iface), &mut register).map_err(|e| e.to_string())?
    };
    let mut note = format!(
        "AF_XDP {} mode, XDP program {}",
        bearer.mode(),
        steering.mode()
    );
    for why in [steering.fallback_reason(), bearer.fallback_reason()]
        .into_iter()
        .flatten()
    {
        note.push_str(&format!(" ({why})"));
    }
    bearer.set_guard(Box::new(SteeringGuard(steering)));
    Ok((bearer, note))
}
