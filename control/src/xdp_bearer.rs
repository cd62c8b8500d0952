//! The Ethernet fast path: an AF_XDP bearer together with the XDP program that steers TIPC
//! frames to it. `dataplane` does not depend on `ebpf` (arrows point down), so the pairing
//! lives here: the steering program becomes the bearer's guard, dropped after the socket, so
//! the program stays attached exactly as long as the socket it feeds.

use std::io;
use std::os::fd::RawFd;

use utipc_dataplane::bearer::xdp::{XdpBearer, XdpBearerConfig};
use utipc_ebpf::{AttachMode, SteerConfig, XdpSteering};

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
    bearer.set_guard(Box::new(steering));
    Ok((bearer, note))
}

/// The steering counters of a bearer opened by [`open_steered`], as one line.
pub fn steering_counters(bearer: &XdpBearer) -> Option<String> {
    let steering = bearer.guard()?.downcast_ref::<XdpSteering>()?;
    Some(match steering.counters() {
        Ok(c) => c.to_string(),
        Err(e) => format!("counters unavailable: {e}"),
    })
}
