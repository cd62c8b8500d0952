//! Node configuration shared by `utipcd` and every embedded `utipc` command: command-line
//! options and the equivalent TOML file, with the same keys.
//!
//! ```toml
//! id = "node1"            # node identity: text (≤ 16 of [0-9A-Za-z.:_@-]) or ≤ 32 hex digits
//! net_id = 4711
//! tolerance_ms = 1500
//! bearers = ["eth:veth0", "udp:veth1,remote=198.18.0.2"]
//! idle = "block"          # engine idle strategy: spin, backoff (default) or block
//! cpu = "0-1"             # pin the engine to these CPUs (also a number: cpu = 1)
//! pcap = "/tmp/node.pcap" # capture every frame the bearers send and receive
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use utipc_dataplane::engine::{CpuList, IdleKind};
use utipc_proto::addr::NodeId;

/// Errors in configuration, each saying what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The node identity is not valid.
    #[error("--id {0:?}: {1}")]
    Id(String, String),
    /// A bearer spec could not be parsed.
    #[error("--bearer {spec:?}: {why}; expected eth:IFACE, xdp:IFACE or udp:IFACE[,remote=IP]...")]
    Bearer {
        /// The spec as given.
        spec: String,
        /// What was wrong.
        why: String,
    },
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML of the expected shape.
    #[error("config {path}: {msg}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        msg: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Range(String),
}

/// How a bearer reaches the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerSpec {
    /// Ethernet: AF_XDP when possible, else AF_PACKET.
    Eth {
        /// Interface.
        iface: String,
    },
    /// Ethernet, AF_XDP only.
    Xdp {
        /// Interface.
        iface: String,
    },
    /// UDP on the interface's address, port 6118; multicast discovery unless remotes given.
    Udp {
        /// Interface.
        iface: String,
        /// Replicast peers.
        remotes: Vec<IpAddr>,
        /// Local address to use when the interface has several.
        local: Option<IpAddr>,
    },
}

impl BearerSpec {
    /// Parses `eth:IFACE`, `xdp:IFACE` or `udp:IFACE[,remote=IP][,local=IP]...`.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let err = |why: &str| ConfigError::Bearer {
            spec: spec.to_owned(),
            why: why.to_owned(),
        };
        let (media, rest) = spec.split_once(':').ok_or_else(|| err("missing media"))?;
        let mut parts = rest.split(',');
        let iface = parts.next().unwrap_or_default().to_owned();
        if iface.is_empty() || iface.len() > 15 {
            return Err(err("interface name must be 1 to 15 characters"));
        }
        match media {
            "eth" | "xdp" => {
                if parts.next().is_some() {
                    return Err(err("eth and xdp bearers take no options"));
                }
                Ok(if media == "eth" {
                    Self::Eth { iface }
                } else {
                    Self::Xdp { iface }
                })
            }
            "udp" => {
                let mut remotes = Vec::new();
                let mut local = None;
                for opt in parts {
                    let (k, v) = opt
                        .split_once('=')
                        .ok_or_else(|| err("options are key=value"))?;
                    let ip: IpAddr = v.parse().map_err(|_| err("not an IP address"))?;
                    match k {
                        "remote" => remotes.push(ip),
                        "local" => local = Some(ip),
                        _ => return Err(err("unknown option (remote=, local=)")),
                    }
                }
                Ok(Self::Udp {
                    iface,
                    remotes,
                    local,
                })
            }
            _ => Err(err("unknown media")),
        }
    }

    /// The bearer name as `tipc` prints it.
    pub fn name(&self) -> String {
        match self {
            Self::Eth { iface } | Self::Xdp { iface } => format!("eth:{iface}"),
            Self::Udp { iface, .. } => format!("udp:{iface}"),
        }
    }
}

/// The options of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// Identity; when absent, derived from the first bearer's address as the kernel does.
    pub id: Option<NodeId>,
    /// Network id.
    pub net_id: u32,
    /// Bearers.
    pub bearers: Vec<BearerSpec>,
    /// Link tolerance.
    pub tolerance: Duration,
    /// What the node's engine does when idle (`--idle`).
    pub idle: IdleKind,
    /// CPUs to pin the node's engine to (`--cpu`); `None`: not pinned.
    pub cpus: Option<CpuList>,
    /// Capture every frame the bearers send and receive to this pcap file (`--pcap`): AF_XDP
    /// frames are invisible to tcpdump.
    pub pcap: Option<PathBuf>,
    /// Who may attach applications besides root and the daemon's user (`[access]`).
    pub access: crate::attach::AccessPolicy,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            id: None,
            net_id: 4711,
            bearers: Vec::new(),
            tolerance: Duration::from_millis(1500),
            idle: IdleKind::default(),
            cpus: None,
            pcap: None,
            access: crate::attach::AccessPolicy::default(),
        }
    }
}

/// The `[access]` table: extra users and groups allowed to attach applications.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessConfig {
    #[serde(default)]
    uids: Vec<u32>,
    #[serde(default)]
    gids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<String>,
    net_id: Option<u32>,
    tolerance_ms: Option<u64>,
    #[serde(default)]
    bearers: Vec<String>,
    idle: Option<String>,
    cpu: Option<toml::Value>,
    pcap: Option<PathBuf>,
    #[serde(default)]
    access: AccessConfig,
}

impl NodeOptions {
    /// Reads a TOML file; command-line values given later override it.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let f: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            msg: e.to_string(),
        })?;
        let mut o = Self::default();
        if let Some(id) = f.id {
            o.set_id(&id)?;
        }
        if let Some(n) = f.net_id {
            o.set_net_id(n)?;
        }
        if let Some(t) = f.tolerance_ms {
            o.set_tolerance_ms(t)?;
        }
        for b in f.bearers {
            o.bearers.push(BearerSpec::parse(&b)?);
        }
        let invalid = |msg: String| ConfigError::Parse {
            path: path.to_owned(),
            msg,
        };
        o.pcap = f.pcap;
        o.access = crate::attach::AccessPolicy {
            uids: f.access.uids,
            gids: f.access.gids,
        };
        if let Some(idle) = f.idle {
            o.idle = idle
                .parse()
                .map_err(|e| invalid(format!("idle = {idle:?}: {e}")))?;
        }
        match f.cpu {
            None => {}
            Some(toml::Value::String(list)) => {
                let cpus = list
                    .parse()
                    .map_err(|e| invalid(format!("cpu = {list:?}: {e}")))?;
                o.cpus = Some(cpus);
            }
            Some(toml::Value::Integer(n)) => {
                let cpus = n
                    .to_string()
                    .parse()
                    .map_err(|e| invalid(format!("cpu = {n}: {e}")))?;
                o.cpus = Some(cpus);
            }
            Some(other) => {
                return Err(invalid(format!(
                    "cpu = {other}: give a CPU number or a list in quotes, such as cpu = 0 or \
                     cpu = \"0-1\""
                )));
            }
        }
        Ok(o)
    }

    /// Sets the identity from its text or hex form.
    pub fn set_id(&mut self, id: &str) -> Result<(), ConfigError> {
        let parsed = id
            .parse::<NodeId>()
            .map_err(|e| ConfigError::Id(id.to_owned(), e.to_string()))?;
        self.id = Some(parsed);
        Ok(())
    }

    /// Sets the network id (1..=9999, spec §3.3).
    pub fn set_net_id(&mut self, n: u32) -> Result<(), ConfigError> {
        if !(1..=9999).contains(&n) {
            return Err(ConfigError::Range(format!(
                "--net-id {n}: the network id must be 1 to 9999"
            )));
        }
        self.net_id = n;
        Ok(())
    }

    /// Sets the link tolerance (50..=30000 ms, spec §5.6).
    pub fn set_tolerance_ms(&mut self, ms: u64) -> Result<(), ConfigError> {
        if !(50..=30_000).contains(&ms) {
            return Err(ConfigError::Range(format!(
                "--tolerance {ms}: the link tolerance must be 50 to 30000 ms"
            )));
        }
        self.tolerance = Duration::from_millis(ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_specs() {
        assert_eq!(
            BearerSpec::parse("eth:veth0").expect("eth"),
            BearerSpec::Eth {
                iface: "veth0".into()
            }
        );
        assert_eq!(
            BearerSpec::parse("udp:veth1,remote=198.18.0.2,remote=fd00:198:18::2").expect("udp"),
            BearerSpec::Udp {
                iface: "veth1".into(),
                remotes: vec![
                    "198.18.0.2".parse().expect("ip"),
                    "fd00:198:18::2".parse().expect("ip")
                ],
                local: None
            }
        );
        for bad in [
            "veth0",
            "ib:x",
            "udp:",
            "udp:a,remote=x",
            "eth:a,remote=1.2.3.4",
            "udp:a,b=1.1.1.1",
        ] {
            assert!(BearerSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(BearerSpec::parse("udp:u1").expect("udp").name(), "udp:u1");
    }

    #[test]
    fn file_and_ranges() {
        let dir = std::env::temp_dir().join(format!("utipc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let p = dir.join("n.toml");
        std::fs::write(
            &p,
            "id = \"node1\"\nnet_id = 42\ntolerance_ms = 500\nbearers = [\"eth:veth0\"]\n",
        )
        .expect("write");
        let o = NodeOptions::from_file(&p).expect("parses");
        assert_eq!(o.id.map(|i| i.to_string()), Some("node1".into()));
        assert_eq!((o.net_id, o.tolerance.as_millis()), (42, 500));
        assert_eq!(o.bearers.len(), 1);
        assert_eq!(
            (o.idle, o.cpus.clone()),
            (IdleKind::Backoff, None),
            "defaults"
        );
        std::fs::write(&p, "idle = \"block\"\ncpu = \"0-1\"\n").expect("write");
        let o = NodeOptions::from_file(&p).expect("parses");
        assert_eq!(o.idle, IdleKind::Block);
        assert_eq!(o.cpus.map(|c| c.to_string()), Some("0-1".into()));
        std::fs::write(&p, "idle = \"spin\"\ncpu = 1\n").expect("write");
        let o = NodeOptions::from_file(&p).expect("parses");
        assert_eq!((o.idle, o.cpus), (IdleKind::Spin, Some(CpuList::single(1))));
        for (bad, says) in [
            ("idle = \"sleep\"\n", "use spin"),
            ("cpu = \"1-0\"\n", "write 0-1"),
            ("cpu = \"x\"\n", "such as 0, 0,1 or 0-1"),
            ("cpu = true\n", "cpu = \"0-1\""),
        ] {
            std::fs::write(&p, bad).expect("write");
            let e = NodeOptions::from_file(&p).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        std::fs::write(&p, "idd = 1\n").expect("write");
        assert!(matches!(
            NodeOptions::from_file(&p),
            Err(ConfigError::Parse { .. })
        ));
        let mut o = NodeOptions::default();
        assert!(o.set_net_id(0).is_err() && o.set_net_id(10_000).is_err());
        assert!(o.set_tolerance_ms(49).is_err() && o.set_tolerance_ms(30_001).is_err());
        assert!(o.set_id("not valid because too long and spaces").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The node options as command-line flags, shared by `utipcd` and the embedded commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeArgs {
    /// Node identity: text (≤ 16 of `[0-9A-Za-z.:_@-]`) or ≤ 32 hex digits. Default: derived
    /// from the first bearer's address, as the kernel does.
    #[arg(long)]
    pub id: Option<String>,
    /// Network (cluster) id, 1..=9999.
    #[arg(long = "net-id")]
    pub net_id: Option<u32>,
    /// Bearer: eth:IFACE, xdp:IFACE or udp:IFACE[,remote=IP]... (repeatable).
    #[arg(long = "bearer")]
    pub bearers: Vec<String>,
    /// Link tolerance in ms (50..=30000, default 1500).
    #[arg(long)]
    pub tolerance: Option<u64>,
    /// Idle strategy of the node's engine: spin (burns a whole core, lowest latency), backoff
    /// (spins, yields, then parks up to 10 ms; the default) or block (sleeps until there is
    /// work: no idle CPU, ~50-100 us more to wake up).
    #[arg(long, value_name = "spin|backoff|block")]
    pub idle: Option<IdleKind>,
    /// Pin the node's engine to these CPUs: a CPU number, a list or ranges such as 0, 0,1 or
    /// 0-1 (default: not pinned).
    #[arg(long = "cpu", value_name = "LIST")]
    pub cpu: Option<CpuList>,
    /// Write every frame the bearers send and receive to this pcap file (readable by
    /// `utipc decode` and tshark; tcpdump cannot see AF_XDP traffic). With several bearers,
    /// bearer N > 0 writes FILE.N.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// TOML file with the same keys (id, net_id, bearers, tolerance_ms, idle, cpu); flags
    /// override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl NodeArgs {
    /// Merges the file (if any) and the flags.
    pub fn resolve(&self) -> Result<NodeOptions, ConfigError> {
        let mut o = match &self.config {
            Some(p) => NodeOptions::from_file(p)?,
            None => NodeOptions::default(),
        };
        if let Some(id) = &self.id {
            o.set_id(id)?;
        }
        if let Some(n) = self.net_id {
            o.set_net_id(n)?;
        }
        if let Some(t) = self.tolerance {
            o.set_tolerance_ms(t)?;
        }
        if let Some(idle) = self.idle {
            o.idle = idle;
        }
        if let Some(cpus) = &self.cpu {
            o.cpus = Some(cpus.clone());
        }
        if let Some(p) = &self.pcap {
            o.pcap = Some(p.clone());
        }
        if !self.bearers.is_empty() {
            o.bearers = self
                .bearers
                .iter()
                .map(|b| BearerSpec::parse(b))
                .collect::<Result<_, _>>()?;
        }
        Ok(o)
    }
}

/// The run directory of utipcd (its sockets): `$UTIPC_RUN_DIR`, else `/run/utipc` — the
/// client library's rule, so daemon and applications always agree.
pub fn run_dir() -> PathBuf {
    utipc_shm_api::attach_socket::run_dir()
}

/// The daemon's control socket in `dir`.
pub fn control_socket(dir: &Path) -> PathBuf {
    dir.join("ctl.sock")
}
