//! Turning [`NodeOptions`] into a running node: check the `--cpu` list, open the bearers,
//! derive the identity when none is given (as the kernel does from the first bearer), build
//! the [`NodeRuntime`]. Shared by `utipcd` and every embedded `utipc` command, which then run
//! it on the poll-mode engine (`utipc_dataplane::engine`) with the `--idle` strategy.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use utipc_dataplane::bearer::Bearer;
use utipc_dataplane::bearer::packet::PacketBearer;
use utipc_dataplane::bearer::pcap_tap::PcapTap;
use utipc_dataplane::bearer::udp::{TIPC_UDP_PORT, UdpBearer, UdpBearerConfig, iface_addresses};
use utipc_dataplane::engine::{AffinityError, EngineError};
use utipc_dataplane::runtime::NodeRuntime;
use utipc_proto::addr::{NODE_ID_LEN, NodeId};
use utipc_proto::node::{Node, NodeConfig};
use utipc_proto::wire::discovery::MediaAddr;

use crate::config::{BearerSpec, NodeOptions};
use crate::xdp_bearer::open_steered;

/// Why a node could not be started; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No bearer was configured.
    #[error(
        "no bearer: give --bearer eth:IFACE or --bearer udp:IFACE (or bearers = [...] in the config)"
    )]
    NoBearer,
    /// A bearer could not be opened.
    #[error("bearer {name}: {source}")]
    Bearer {
        /// Bearer name.
        name: String,
        /// The IO error, which says why.
        source: io::Error,
    },
    /// The interface of a UDP bearer has no IP address.
    #[error(
        "bearer {0}: the interface has no IP address; add one (ip addr add ...) or give local=IP"
    )]
    NoAddress(String),
    /// An AF_XDP bearer was requested (`xdp:IFACE`) and could not be set up.
    #[error("bearer xdp:{0}: AF_XDP is not available: {1}; use eth:{0} to fall back to AF_PACKET")]
    NoXdp(String, String),
    /// The node refused the bearer (more than three).
    #[error("bearer {0}: {1}")]
    Node(String, utipc_proto::node::NodeError),
    /// The `--cpu` list names CPUs this machine does not have (or that are offline).
    #[error("{0}")]
    Cpu(AffinityError),
    /// The engine could not be set up or pinned (`--idle`, `--cpu`).
    #[error("{0}")]
    Engine(EngineError),
}

/// Checks that every CPU of the `--cpu` list (if any) is online, so a mistyped list fails
/// before any bearer is opened.
///
/// # Errors
///
/// [`SetupError::Cpu`], naming the missing CPUs and the online ones.
pub fn check_cpus(opts: &NodeOptions) -> Result<(), SetupError> {
    match &opts.cpus {
        Some(cpus) => cpus.check_online().map_err(SetupError::Cpu),
        None => Ok(()),
    }
}

/// An opened bearer with its names.
struct Opened {
    bearer: Box<dyn Bearer + Send>,
    name: String,
    if_name: String,
}

fn open(spec: &BearerSpec, net_id: u32) -> Result<Opened, SetupError> {
    let name = spec.name();
    let io_err = |source| SetupError::Bearer {
        name: name.clone(),
        source,
    };
    match spec {
        BearerSpec::Eth { iface } | BearerSpec::Xdp { iface } => {
            let insist = matches!(spec, BearerSpec::Xdp { .. });
            let (bearer, note) = open_ethernet(iface, insist)?;
            eprintln!("utipc: bearer {name}: {note}");
            Ok(Opened {
                bearer,
                name: format!("eth:{iface}"),
                if_name: iface.clone(),
            })
        }
        BearerSpec::Udp {
            iface,
            remotes,
            local,
        } => {
            let local = match local {
                Some(ip) => *ip,
                None => *iface_addresses(iface)
                    .map_err(io_err)?
                    .first()
                    .ok_or_else(|| SetupError::NoAddress(name.clone()))?,
            };
            let mut cfg = UdpBearerConfig::new(local, net_id);
            cfg.iface = Some(iface.clone());
            cfg.remotes = remotes
                .iter()
                .map(|ip| SocketAddr::new(*ip, TIPC_UDP_PORT))
                .collect();
            let b = UdpBearer::open(cfg).map_err(io_err)?;
            Ok(Opened {
                bearer: Box::new(b),
                name: name.clone(),
                if_name: iface.clone(),
            })
        }
    }
}

/// Opens an Ethernet bearer: AF_XDP (with the XDP steering program) when it can, otherwise —
/// unless `insist_xdp` — AF_PACKET. Returns the bearer and one line saying which it is and,
/// after a fallback, why.
pub fn open_ethernet(
    iface: &str,
    insist_xdp: bool,
) -> Result<(Box<dyn Bearer + Send>, String), SetupError> {
    match open_steered(iface) {
        Ok((x, note)) => Ok((Box::new(x), note)),
        Err(why) if insist_xdp => Err(SetupError::NoXdp(iface.to_owned(), why)),
        Err(why) => {
            let b = PacketBearer::open(iface).map_err(|source| SetupError::Bearer {
                name: format!("eth:{iface}"),
                source,
            })?;
            Ok((
                Box::new(b),
                format!("AF_XDP unavailable, using AF_PACKET: {why}"),
            ))
        }
    }
}

/// The identity the kernel derives from a bearer when none is configured: the MAC for
/// Ethernet, the 16 bytes of the IP address union for UDP (spec §3.1).
pub fn derived_id(media: &MediaAddr) -> NodeId {
    match media {
        MediaAddr::Eth(mac) => NodeId::from_mac(*mac),
        MediaAddr::Udp(sa) => {
            let mut id = [0u8; NODE_ID_LEN];
            match sa.ip() {
                IpAddr::V4(ip) => id[..4].copy_from_slice(&ip.octets()),
                IpAddr::V6(ip) => id.copy_from_slice(&ip.octets()),
            }
            NodeId(id)
        }
        MediaAddr::Ib(hw) => {
            let mut id = [0u8; NODE_ID_LEN];
            id.copy_from_slice(&hw[4..20]);
            NodeId(id)
        }
        MediaAddr::Raw(raw) => {
            let mut id = [0u8; NODE_ID_LEN];
            id.copy_from_slice(&raw[..NODE_ID_LEN]);
            NodeId(id)
        }
    }
}

/// A seed that differs per process and start (not for cryptography): the node's signature and
/// link sessions must change across restarts so peers see a reboot.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let local = 0u8;
    t ^ (u64::from(std::process::id()) << 32) ^ (&raw const local as u64).rotate_left(17)
}

/// The capture file of the `index`-th bearer when one capture path is given for all of them
/// (`--pcap FILE`, `utipc pcap start FILE`): the path itself for the first, `FILE.1`, `FILE.2`
/// for the others.
pub fn capture_path(path: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return path.to_owned();
    }
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{index}"));
    PathBuf::from(p)
}

/// Checks the `--cpu` list ([`check_cpus`]), opens every bearer and starts the node on them.
pub fn start(opts: &NodeOptions, seed: u64) -> Result<NodeRuntime, SetupError> {
    if opts.bearers.is_empty() {
        return Err(SetupError::NoBearer);
    }
    check_cpus(opts)?;
    let mut opened = Vec::new();
    for spec in &opts.bearers {
        opened.push(open(spec, opts.net_id)?);
    }
    let id = match opts.id {
        Some(id) => id,
        None => derived_id(&opened[0].bearer.local_addr()),
    };
    let mut cfg = NodeConfig::new(id, seed);
    // Messages sent within one duty cycle leave as one bundle per peer (receivers, kernels
    // included, accept bundles at any time); a lone message still leaves at once.
    cfg.bundle_bursts = true;
    cfg.net_id = opts.net_id;
    let mut rt = NodeRuntime::new(Node::new(cfg));
    for (i, o) in opened.into_iter().enumerate() {
        let name = o.name.clone();
        // Every bearer gets a tap (one branch per frame while off), so `utipc pcap start` can
        // capture at run time; `--pcap` starts it now.
        let mut tap = PcapTap::new(o.bearer);
        if let Some(path) = &opts.pcap {
            let file = capture_path(path, i);
            tap.start_file(&file).map_err(|source| SetupError::Bearer {
                name: format!("{name} (--pcap {})", file.display()),
                source,
            })?;
        }
        rt.add_bearer(Box::new(tap), &o.name, &o.if_name, opts.tolerance)
            .map_err(|e| SetupError::Node(name, e))?;
    }
    Ok(rt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_follow_the_kernel() {
        let mac = derived_id(&MediaAddr::Eth([0x52, 0x54, 0, 0x18, 1, 1]));
        assert_eq!(mac.to_string(), "525400180101");
        let v4 = derived_id(&MediaAddr::Udp("198.18.1.11:6118".parse().expect("addr")));
        assert_eq!(&v4.0[..5], &[198, 18, 1, 11, 0]);
        assert_ne!(fresh_seed(), 0);
    }

    #[test]
    fn no_bearer_and_xdp_say_what_to_do() {
        let e = start(&NodeOptions::default(), 1).expect_err("no bearer");
        assert!(e.to_string().contains("--bearer"));
        let mut o = NodeOptions::default();
        o.bearers.push(BearerSpec::Xdp {
            iface: "veth0".into(),
        });
        let e = start(&o, 1).expect_err("xdp");
        assert!(e.to_string().contains("eth:veth0"), "{e}");
        o.cpus = Some("1000".parse().expect("list"));
        let e = start(&o, 1).expect_err("no CPU 1000");
        assert!(
            e.to_string()
                .starts_with("--cpu: CPU 1000 does not exist on this machine (online CPUs: "),
            "{e}"
        );
    }
}
