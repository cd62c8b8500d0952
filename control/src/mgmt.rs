//! The management protocol between `utipc` and `utipcd`, and the views it carries.
//!
//! One JSON object per line over the daemon's Unix socket: a request `{"cmd": "link-list"}`, a
//! response `{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`. The daemon only ever
//! sends data; the command renders it as text (the layout of iproute2's `tipc`) or passes the
//! JSON through with `--json`. The same views serve an embedded node.
//!
//! Commands ([`handle`]):
//!
//! | `cmd` | arguments | `data` |
//! |---|---|---|
//! | `link-list`, `node-list`, `nametable-show`, `stats` | — | [`view`] |
//! | `bearer-list` | — | [`view`] plus each bearer's `counters` ([`bearer_list`]) |
//! | `pcap-start` | `path` (absolute), `bearer` (optional) | `[{bearer, path}]` |
//! | `pcap-stop` | `bearer` (optional) | `[{bearer, path, frames_written, ...}]` |
//! | `pcap-status` | — | `[{bearer, capturing, path, frames_written, ...}]` |
//!
//! The capture commands switch the pcap tap every bearer of a daemon carries
//! ([`Bearer::pcap_tap_mut`]): the daemon creates the file, so its path is absolute (the
//! daemon's working directory is not the client's; `utipc pcap start` makes it absolute).

use std::path::Path;

use serde_json::{Map, Value as Json, json};
use utipc_dataplane::bearer::{Bearer, BearerReport, BearerStats, PcapControl};
use utipc_dataplane::runtime::NodeRuntime;
use utipc_proto::bearer::{BearerId, MediaKind};
use utipc_proto::link::LinkState;
use utipc_proto::name_table::Scope;
use utipc_proto::node::Node;
use utipc_proto::wire::describe::media;

use crate::daemon::utc_timestamp;
use crate::node_setup::capture_path;

/// What a management client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Links and their state.
    LinkList,
    /// Peer nodes.
    NodeList,
    /// The name table.
    NameTable,
    /// Enabled bearers.
    BearerList,
    /// Node counters.
    Stats,
}

impl Query {
    /// The command word on the wire.
    pub fn cmd(self) -> &'static str {
        match self {
            Self::LinkList => "link-list",
            Self::NodeList => "node-list",
            Self::NameTable => "nametable-show",
            Self::BearerList => "bearer-list",
            Self::Stats => "stats",
        }
    }

    /// Parses a command word.
    pub fn from_cmd(cmd: &str) -> Option<Self> {
        [
            Self::LinkList,
            Self::NodeList,
            Self::NameTable,
            Self::BearerList,
            Self::Stats,
        ]
        .into_iter()
        .find(|q| q.cmd() == cmd)
    }
}

/// The capture commands (`utipc pcap start|stop|status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapCmd {
    /// Start capturing into a file the daemon creates.
    Start,
    /// Stop capturing; say where and how many frames were written.
    Stop,
    /// Say which bearers capture where (and flush the files so far).
    Status,
}

impl PcapCmd {
    /// The command word on the wire.
    pub fn cmd(self) -> &'static str {
        match self {
            Self::Start => "pcap-start",
            Self::Stop => "pcap-stop",
            Self::Status => "pcap-status",
        }
    }

    /// Parses a command word.
    pub fn from_cmd(cmd: &str) -> Option<Self> {
        [Self::Start, Self::Stop, Self::Status]
            .into_iter()
            .find(|c| c.cmd() == cmd)
    }
}

/// Every command word [`handle`] knows, comma-separated (for error messages).
pub fn known_commands() -> String {
    [
        Query::LinkList,
        Query::NodeList,
        Query::NameTable,
        Query::BearerList,
        Query::Stats,
    ]
    .iter()
    .map(|q| q.cmd())
    .chain([PcapCmd::Start, PcapCmd::Stop, PcapCmd::Status].map(PcapCmd::cmd))
    .collect::<Vec<_>>()
    .join(", ")
}

/// Answers one request object on `rt`: the response's `data`, or the message of an error
/// response (which says what to send instead). Never panics on any request.
pub fn handle(rt: &mut NodeRuntime, req: &Json) -> Result<Json, String> {
    let Some(cmd) = req.get("cmd").and_then(Json::as_str) else {
        return Err(
            "the request has no \"cmd\" string: send e.g. {\"cmd\": \"link-list\"}".to_owned(),
        );
    };
    if let Some(q) = Query::from_cmd(cmd) {
        return Ok(match q {
            Query::BearerList => bearer_list(rt),
            q => view(rt.node(), q),
        });
    }
    match PcapCmd::from_cmd(cmd) {
        Some(PcapCmd::Start) => pcap_start(rt, req),
        Some(PcapCmd::Stop) => pcap_stop(rt, req),
        Some(PcapCmd::Status) => Ok(pcap_status(rt)),
        None => Err(format!(
            "unknown command {cmd:?}: known commands are {}",
            known_commands()
        )),
    }
}

fn state_name(s: LinkState) -> &'static str {
    match s {
        LinkState::Established => "up",
        LinkState::Synching => "synching",
        LinkState::Resetting | LinkState::Reset | LinkState::PeerReset => "down",
        LinkState::Establishing => "establishing",
        LinkState::FailingOver => "failingover",
    }
}

/// The data of a query, as JSON.
pub fn view(node: &Node, q: Query) -> Json {
    match q {
        Query::LinkList => Json::Array(
            node.links()
                .into_iter()
                .map(|l| {
                    let stats = node.link(l.peer, l.bearer).map(|k| {
                        let s = k.stats();
                        json!({
                            "sent_pkts": s.sent_pkts,
                            "recv_pkts": s.recv_pkts,
                            "sent_states": s.sent_states,
                            "recv_states": s.recv_states,
                            "sent_probes": s.sent_probes,
                            "recv_probes": s.recv_probes,
                            "sent_nacks": s.sent_nacks,
                            "recv_nacks": s.recv_nacks,
                            "retransmitted": s.retransmitted,
                            "sent_bundles": s.sent_bundles,
                            "recv_bundles": s.recv_bundles,
                            "sent_fragments": s.sent_fragments,
                            "recv_fragments": s.recv_fragments,
                            "deferred_recv": s.deferred_recv,
                            "duplicates": s.duplicates,
                            "link_congs": s.link_congs,
                            "sent_resets": s.sent_resets,
                            "recv_resets": s.recv_resets,
                            "dropped": s.dropped,
                        })
                    });
                    json!({
                        "name": l.name,
                        "peer": format!("{:08x}", l.peer),
                        "bearer": l.bearer.0,
                        "state": state_name(l.state),
                        "mtu": l.mtu,
                        "tolerance_ms": l.tolerance.as_millis() as u64,
                        "priority": l.priority,
                        "session": l.session,
                        "stats": stats.unwrap_or(Json::Null),
                    })
                })
                .collect(),
        ),
        Query::NodeList => {
            let mut v = vec![json!({
                "id": node.node_id().to_string(),
                "addr": format!("{:08x}", node.addr()),
                "state": "up",
                "self": true,
            })];
            v.extend(node.peers().into_iter().map(|p| {
                json!({
                    "id": p.node_id.to_string(),
                    "addr": format!("{:08x}", p.addr),
                    "state": if p.up { "up" } else { "down" },
                    "self": false,
                    "capabilities": p.capabilities,
                })
            }));
            Json::Array(v)
        }
        Query::NameTable => Json::Array(
            node.name_table()
                .iter()
                .map(|b| {
                    json!({
                        "type": b.service_type,
                        "lower": b.lower,
                        "upper": b.upper,
                        "scope": match b.scope { Scope::Node => "node", Scope::Cluster => "cluster" },
                        "port": b.port,
                        "node": format!("{:08x}", b.node),
                        "key": b.key,
                    })
                })
                .collect(),
        ),
        Query::BearerList => Json::Array(
            node.bearers()
                .into_iter()
                .map(|(id, b)| {
                    json!({
                        "id": id.0,
                        "name": b.name,
                        "media": match b.media {
                            MediaKind::Eth => "eth",
                            MediaKind::Udp4 | MediaKind::Udp6 => "udp",
                            MediaKind::Ib => "ib",
                        },
                        "address": media(&b.local),
                        "mtu": b.mtu,
                        "priority": b.priority,
                        "tolerance_ms": b.tolerance.as_millis() as u64,
                        "window": b.max_window,
                    })
                })
                .collect(),
        ),
        Query::Stats => {
            let s = node.stats();
            json!({
                "addr": format!("{:08x}", node.addr()),
                "malformed": s.malformed,
                "encrypted": s.encrypted,
                "foreign_net": s.foreign_net,
                "misrouted": s.misrouted,
                "gated": s.gated,
                "discovery_ignored": s.discovery_ignored,
                "unhandled": s.unhandled,
                "delivered": s.delivered,
                "rejected": s.rejected,
                "dropped": s.dropped,
            })
        }
    }
}

/// A [`BearerReport`] that builds one JSON object per group.
#[derive(Debug, Default)]
struct JsonReport {
    groups: Map<String, Json>,
    current: String,
}

impl JsonReport {
    fn put(&mut self, name: &str, value: Json) {
        if self.current.is_empty() {
            // A bearer that reports before naming a group.
            self.group("bearer");
        }
        if let Some(Json::Object(g)) = self.groups.get_mut(&self.current) {
            g.insert(name.to_owned(), value);
        }
    }
}

impl BearerReport for JsonReport {
    fn group(&mut self, name: &str) {
        name.clone_into(&mut self.current);
        self.groups
            .entry(name.to_owned())
            .or_insert_with(|| Json::Object(Map::new()));
    }

    fn counter(&mut self, name: &str, value: u64) {
        self.put(name, json!(value));
    }

    fn text(&mut self, name: &str, value: &str) {
        self.put(name, json!(value));
    }
}

/// Group `frames` of a bearer's counters: what every bearer counts ([`BearerStats`]).
fn frame_counters(s: &BearerStats) -> Json {
    let c = &s.counters;
    let d = &c.rx_dropped;
    json!({
        "tx_frames": c.tx_frames,
        "tx_bytes": c.tx_bytes,
        "tx_errors": c.tx_errors,
        "tx_would_block": c.tx_would_block,
        "rx_frames": c.rx_frames,
        "rx_bytes": c.rx_bytes,
        "rx_errors": c.rx_errors,
        "rx_dropped": d.total(),
        "rx_dropped_own_source": d.own_source,
        "rx_dropped_other_host": d.other_host,
        "rx_dropped_outgoing": d.outgoing,
        "rx_dropped_truncated": d.truncated,
        "rx_dropped_malformed": d.malformed,
    })
}

/// The counters of one bearer as JSON: `frames` (every bearer), then the groups of
/// [`Bearer::report`] (for AF_XDP: `af_xdp`, `xdp_kernel`, `steering`; for a tapped bearer:
/// `pcap`).
pub fn bearer_counters(b: &dyn Bearer) -> Json {
    let mut r = JsonReport::default();
    r.groups
        .insert("frames".to_owned(), frame_counters(b.stats()));
    b.report(&mut r);
    Json::Object(r.groups)
}

/// `bearer-list` on a runtime: [`view`]'s rows, each with the bearer's `counters`
/// ([`bearer_counters`]).
pub fn bearer_list(rt: &NodeRuntime) -> Json {
    let mut rows = view(rt.node(), Query::BearerList);
    if let Json::Array(rows) = &mut rows {
        for row in rows {
            let counters = row
                .get("id")
                .and_then(Json::as_u64)
                .and_then(|id| u8::try_from(id).ok())
                .and_then(|id| rt.bearer(BearerId(id)))
                .map_or(Json::Null, |b| bearer_counters(b));
            if let Some(obj) = row.as_object_mut() {
                obj.insert("counters".to_owned(), counters);
            }
        }
    }
    rows
}

/// The bearers a capture command applies to: every enabled bearer, or the one named by the
/// request's `bearer`.
fn capture_targets(rt: &NodeRuntime, req: &Json) -> Result<Vec<(BearerId, String)>, String> {
    let all: Vec<(BearerId, String)> = rt
        .node()
        .bearers()
        .into_iter()
        .map(|(id, b)| (id, b.name.clone()))
        .collect();
    match req.get("bearer") {
        None | Some(Json::Null) => {
            if all.is_empty() {
                return Err("the node has no bearer to capture".to_owned());
            }
            Ok(all)
        }
        Some(Json::String(name)) => {
            if let Some(t) = all.iter().find(|(_, n)| n == name) {
                return Ok(vec![t.clone()]);
            }
            let names: Vec<&str> = all.iter().map(|(_, n)| n.as_str()).collect();
            Err(format!(
                "no bearer named {name:?}: the bearers are {} (see `utipc bearer list`)",
                names.join(", ")
            ))
        }
        Some(other) => Err(format!(
            "\"bearer\" must be a bearer name such as \"eth:eth0\", not {other}"
        )),
    }
}

fn tap_mut<'a>(
    rt: &'a mut NodeRuntime,
    id: BearerId,
    name: &str,
) -> Result<&'a mut dyn PcapControl, String> {
    rt.bearer_mut(id)
        .and_then(|b| b.pcap_tap_mut())
        .ok_or_else(|| format!("bearer {name} has no capture tap (it was not opened by utipcd)"))
}

fn path_text(p: Option<&Path>) -> Json {
    p.map_or(Json::Null, |p| json!(p.display().to_string()))
}

/// `pcap-start`: starts a capture into `path` on every bearer (the first writes `path`, the
/// others `path.1`, `path.2`, as `--pcap` does) or on the one named by `bearer` (into `path`).
/// Refused while one of them captures already; all or nothing.
fn pcap_start(rt: &mut NodeRuntime, req: &Json) -> Result<Json, String> {
    let path = match req.get("path") {
        Some(Json::String(p)) if !p.is_empty() => Path::new(p),
        _ => {
            return Err(
                "pcap-start needs \"path\": the absolute path of the capture file to create"
                    .to_owned(),
            );
        }
    };
    if !path.is_absolute() {
        return Err(format!(
            "the capture path {} is relative: give an absolute path (utipcd creates the file \
             and its working directory is not yours)",
            path.display()
        ));
    }
    let targets = capture_targets(rt, req)?;
    for (id, name) in &targets {
        if let Some(c) = tap_mut(rt, *id, name)?.capture() {
            return Err(format!(
                "bearer {name} is already capturing to {} ({} frames so far): run `utipc pcap \
                 stop` first",
                c.path
                    .as_deref()
                    .map_or_else(|| "a stream".to_owned(), |p| p.display().to_string()),
                c.frames_written
            ));
        }
    }
    let single = targets.len() == 1;
    let mut started: Vec<(BearerId, String, std::path::PathBuf)> = Vec::new();
    for (i, (id, name)) in targets.iter().enumerate() {
        let file = if single {
            path.to_owned()
        } else {
            capture_path(path, i)
        };
        let result = tap_mut(rt, *id, name).and_then(|t| {
            t.start_file(&file)
                .map_err(|e| format!("bearer {name}: {e}"))
        });
        if let Err(e) = result {
            // All or nothing: stop what this request started.
            for (sid, sname, _) in &started {
                if let Ok(t) = tap_mut(rt, *sid, sname) {
                    let _ = t.stop();
                }
            }
            return Err(e);
        }
        started.push((*id, name.clone(), file));
    }
    Ok(Json::Array(
        started
            .into_iter()
            .map(|(_, name, file)| json!({"bearer": name, "path": path_text(Some(&file))}))
            .collect(),
    ))
}

/// `pcap-stop`: stops the running captures (every bearer's, or the named bearer's) and says
/// what each wrote. An empty list when none ran.
fn pcap_stop(rt: &mut NodeRuntime, req: &Json) -> Result<Json, String> {
    let targets = capture_targets(rt, req)?;
    let mut rows = Vec::new();
    for (id, name) in &targets {
        let tap = tap_mut(rt, *id, name)?;
        let Some(info) = tap.capture() else {
            continue;
        };
        let flushed = tap.stop();
        let mut row = json!({
            "bearer": name,
            "path": path_text(info.path.as_deref()),
            "frames_written": info.frames_written,
            "frames_skipped": info.frames_skipped,
            "started": utc_timestamp(info.started),
        });
        if let (Err(e), Some(obj)) = (flushed, row.as_object_mut()) {
            obj.insert(
                "error".to_owned(),
                json!(format!("the last writes failed: {e}")),
            );
        }
        rows.push(row);
    }
    Ok(Json::Array(rows))
}

/// `pcap-status`: every bearer's capture state; running captures are flushed, so their files
/// hold every frame so far.
fn pcap_status(rt: &mut NodeRuntime) -> Json {
    let bearers: Vec<(BearerId, String)> = rt
        .node()
        .bearers()
        .into_iter()
        .map(|(id, b)| (id, b.name.clone()))
        .collect();
    let mut rows = Vec::new();
    for (id, name) in bearers {
        let Ok(tap) = tap_mut(rt, id, &name) else {
            rows.push(json!({"bearer": name, "capturing": false, "tap": false}));
            continue;
        };
        let flushed = tap.flush_capture();
        let stats = tap.tap_stats();
        let mut row = json!({
            "bearer": name,
            "capturing": false,
            "total_frames_written": stats.frames_written,
            "write_errors": stats.write_errors,
        });
        let Some(obj) = row.as_object_mut() else {
            continue;
        };
        if let Some(info) = tap.capture() {
            obj.insert("capturing".to_owned(), json!(true));
            obj.insert("path".to_owned(), path_text(info.path.as_deref()));
            obj.insert("frames_written".to_owned(), json!(info.frames_written));
            obj.insert("frames_skipped".to_owned(), json!(info.frames_skipped));
            obj.insert("started".to_owned(), json!(utc_timestamp(info.started)));
        }
        if let Some(e) = stats.last_error {
            obj.insert("last_error".to_owned(), json!(e.to_string()));
        }
        if let Err(e) = flushed {
            obj.insert("error".to_owned(), json!(format!("flushing failed: {e}")));
        }
        rows.push(row);
    }
    Json::Array(rows)
}

/// Renders the data of a capture command as text.
pub fn render_pcap_text(cmd: PcapCmd, data: &Json) -> String {
    let empty = Vec::new();
    let rows = data.as_array().unwrap_or(&empty);
    let mut out = String::new();
    match cmd {
        PcapCmd::Start => {
            for r in rows {
                out.push_str(&format!(
                    "{}: capturing to {}\n",
                    text(field(r, "bearer")),
                    text(field(r, "path"))
                ));
            }
        }
        PcapCmd::Stop => {
            if rows.is_empty() {
                out.push_str("no capture was running\n");
            }
            for r in rows {
                out.push_str(&format!(
                    "{}: stopped, {} frames written to {}",
                    text(field(r, "bearer")),
                    text(field(r, "frames_written")),
                    text(field(r, "path"))
                ));
                if let Some(e) = r.get("error") {
                    out.push_str(&format!(" ({})", text(e)));
                }
                out.push('\n');
            }
        }
        PcapCmd::Status => {
            for r in rows {
                out.push_str(&text(field(r, "bearer")));
                if r.get("capturing") == Some(&Json::Bool(true)) {
                    out.push_str(&format!(
                        ": capturing to {} since {}, {} frames written",
                        text(field(r, "path")),
                        text(field(r, "started")),
                        text(field(r, "frames_written"))
                    ));
                } else {
                    out.push_str(": not capturing");
                }
                if let Some(e) = r.get("last_error") {
                    out.push_str(&format!(" (last write error: {})", text(e)));
                }
                if let Some(e) = r.get("error") {
                    out.push_str(&format!(" ({})", text(e)));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Renders `bearer-list` data with the counters: the bearer's name, then one indented line per
/// counter group (`  steering: xdp_mode=generic steered=12 passed=3 ...`).
pub fn render_bearer_counters(data: &Json) -> String {
    let empty = Vec::new();
    let rows = data.as_array().unwrap_or(&empty);
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!("{}\n", text(field(r, "name"))));
        let Some(groups) = r.get("counters").and_then(Json::as_object) else {
            continue;
        };
        for (group, values) in groups {
            out.push_str(&format!("  {group}:"));
            if let Some(values) = values.as_object() {
                for (k, v) in values {
                    out.push_str(&format!(" {k}={}", text(v)));
                }
            }
            out.push('\n');
        }
    }
    out
}

fn field<'a>(v: &'a Json, k: &str) -> &'a Json {
    v.get(k).unwrap_or(&Json::Null)
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Renders a query's JSON data as the text `tipc` would print.
pub fn render_text(q: Query, data: &Json) -> String {
    let empty = Vec::new();
    let rows = data.as_array().unwrap_or(&empty);
    let mut out = String::new();
    match q {
        Query::LinkList => {
            out.push_str("broadcast-link: up\n");
            for r in rows {
                out.push_str(&format!(
                    "{}: {}\n",
                    text(field(r, "name")),
                    text(field(r, "state"))
                ));
            }
        }
        Query::NodeList => {
            out.push_str(&format!(
                "{:<33}{:<9}{}\n",
                "Node Identity", "Hash", "State"
            ));
            for r in rows {
                out.push_str(&format!(
                    "{:<33}{:<9}{}\n",
                    text(field(r, "id")),
                    text(field(r, "addr")),
                    text(field(r, "state"))
                ));
            }
        }
        Query::NameTable => {
            out.push_str(&format!(
                "{:<11}{:<11}{:<11}{:<9}{:<11}{}\n",
                "Type", "Lower", "Upper", "Scope", "Port", "Node"
            ));
            for r in rows {
                out.push_str(&format!(
                    "{:<11}{:<11}{:<11}{:<9}{:<11}{}\n",
                    text(field(r, "type")),
                    text(field(r, "lower")),
                    text(field(r, "upper")),
                    text(field(r, "scope")),
                    text(field(r, "port")),
                    text(field(r, "node"))
                ));
            }
        }
        Query::BearerList => {
            for r in rows {
                out.push_str(&format!("{}\n", text(field(r, "name"))));
            }
        }
        Query::Stats => {
            if let Some(obj) = data.as_object() {
                for (k, v) in obj {
                    out.push_str(&format!("{k}: {}\n", text(v)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd};
    use utipc_dataplane::bearer::RxMeta;
    use utipc_dataplane::bearer::pcap_tap::PcapTap;
    use utipc_proto::bearer::{BearerConfig, Dest};
    use utipc_proto::node::NodeConfig;
    use utipc_proto::time::Instant;
    use utipc_proto::wire::discovery::MediaAddr;

    /// An Ethernet bearer without IO that reports one group of its own.
    #[derive(Debug)]
    struct Fake {
        mac: [u8; 6],
        stats: BearerStats,
        fd: std::fs::File,
    }

    impl Bearer for Fake {
        fn media(&self) -> MediaKind {
            MediaKind::Eth
        }
        fn local_addr(&self) -> MediaAddr {
            MediaAddr::Eth(self.mac)
        }
        fn mtu(&self) -> u32 {
            1500
        }
        fn supports_broadcast(&self) -> bool {
            true
        }
        fn fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
        fn send(&mut self, _: &Dest, frame: &[u8]) -> io::Result<()> {
            self.stats.counters.tx_frames += 1;
            self.stats.counters.tx_bytes += frame.len() as u64;
            Ok(())
        }
        fn recv(&mut self, _: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
            Ok(None)
        }
        fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr)) {
            match dest {
                Dest::Broadcast => f(MediaAddr::Eth([0xff; 6])),
                Dest::Unicast(a) => f(*a),
            }
        }
        fn stats(&self) -> &BearerStats {
            &self.stats
        }
        fn stats_mut(&mut self) -> &mut BearerStats {
            &mut self.stats
        }
        fn report(&self, out: &mut dyn BearerReport) {
            out.group("fake");
            out.text("mode", "none");
            out.counter("widgets", 7);
        }
    }

    /// A runtime with two tapped fake bearers (their discovery frames are the traffic).
    fn runtime() -> NodeRuntime {
        let node = Node::new(NodeConfig::new("mgmtt".parse().expect("id"), 3));
        let mut rt = NodeRuntime::new(node);
        for (i, name) in ["eth:f0", "eth:f1"].into_iter().enumerate() {
            let b = Fake {
                mac: [2, 0, 0, 0, 0, i as u8 + 1],
                stats: BearerStats::default(),
                fd: std::fs::File::open("/dev/null").expect("/dev/null"),
            };
            rt.add_bearer(
                Box::new(PcapTap::new(b)),
                name,
                &name[4..],
                std::time::Duration::from_millis(1500),
            )
            .expect("bearer");
        }
        rt
    }

    fn cmd(rt: &mut NodeRuntime, req: Json) -> Result<Json, String> {
        handle(rt, &req)
    }

    #[test]
    fn bearer_list_carries_every_group_of_counters() {
        let mut rt = runtime();
        rt.flush();
        let bl = cmd(&mut rt, json!({"cmd": "bearer-list"})).expect("bearer-list");
        let c = &bl[1]["counters"];
        assert_eq!(bl[1]["name"], "eth:f1", "{bl}");
        assert!(
            c["frames"]["tx_frames"].as_u64().is_some_and(|n| n > 0),
            "{c}"
        );
        assert_eq!(c["frames"]["rx_dropped"], 0, "{c}");
        assert_eq!(c["fake"], json!({"mode": "none", "widgets": 7}), "{c}");
        assert_eq!(c["pcap"]["capture"], "off", "{c}");
        let text = render_bearer_counters(&bl);
        assert!(
            text.starts_with("eth:f0\n  fake: mode=none widgets=7\n"),
            "{text}"
        );
        assert!(text.contains("\neth:f1\n"), "{text}");
        assert!(text.contains("  pcap: capture=off "), "{text}");
        // The plain text stays the list of names.
        assert_eq!(render_text(Query::BearerList, &bl), "eth:f0\neth:f1\n");
    }

    #[test]
    fn capture_commands_switch_the_taps() {
        let mut rt = runtime();
        let dir = std::env::temp_dir().join(format!("utipc-mgmt-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let base = dir.join("node.pcap");
        let path = base.to_str().expect("utf-8").to_owned();

        for (req, want) in [
            (json!({"cmd": "pcap-start"}), "needs \"path\""),
            (
                json!({"cmd": "pcap-start", "path": "x.pcap"}),
                "is relative",
            ),
            (
                json!({"cmd": "pcap-start", "path": path, "bearer": "eth:nope"}),
                "no bearer named \"eth:nope\": the bearers are eth:f0, eth:f1",
            ),
            (
                json!({"cmd": "pcap-start", "path": path, "bearer": 3}),
                "must be a bearer name",
            ),
            (
                json!({"cmd": "pcap-start", "path": "/nonexistent-dir/x.pcap"}),
                "bearer eth:f0: cannot create the capture file /nonexistent-dir/x.pcap",
            ),
            (
                json!({"cmd": "pcap-go"}),
                "pcap-start, pcap-stop, pcap-status",
            ),
        ] {
            let e = cmd(&mut rt, req.clone()).expect_err("refused");
            assert!(e.contains(want), "{req}: {e}");
        }
        assert_eq!(cmd(&mut rt, json!({"cmd": "pcap-stop"})), Ok(json!([])));
        assert_eq!(
            render_pcap_text(PcapCmd::Stop, &json!([])),
            "no capture was running\n"
        );

        // Both bearers: node.pcap and node.pcap.1.
        let started = cmd(&mut rt, json!({"cmd": "pcap-start", "path": path})).expect("start");
        let second = format!("{path}.1");
        assert_eq!(
            started,
            json!([{"bearer": "eth:f0", "path": path}, {"bearer": "eth:f1", "path": second}])
        );
        assert_eq!(
            render_pcap_text(PcapCmd::Start, &started),
            format!("eth:f0: capturing to {path}\neth:f1: capturing to {second}\n")
        );
        let e = cmd(
            &mut rt,
            json!({"cmd": "pcap-start", "path": path, "bearer": "eth:f1"}),
        )
        .expect_err("busy");
        assert!(
            e.contains("eth:f1 is already capturing to") && e.contains("pcap stop"),
            "{e}"
        );
        // Discovery sends one broadcast per bearer on a timer; force some traffic.
        for _ in 0..3 {
            if let Some(b) = rt.bearer_mut(BearerId(0)) {
                b.send(&Dest::Broadcast, &[0u8; 40]).expect("send");
            }
        }
        let status = cmd(&mut rt, json!({"cmd": "pcap-status"})).expect("status");
        assert_eq!(status[0]["capturing"], true, "{status}");
        assert_eq!(status[0]["frames_written"], 3, "{status}");
        assert_eq!(status[0]["path"], path.as_str(), "{status}");
        let text = render_pcap_text(PcapCmd::Status, &status);
        assert!(
            text.starts_with(&format!("eth:f0: capturing to {path} since ")),
            "{text}"
        );
        assert!(text.contains(", 3 frames written\n"), "{text}");
        // Status flushed the file: header + 3 records of 14 + 40 bytes.
        assert_eq!(
            std::fs::metadata(&base).map(|m| m.len()).ok(),
            Some(24 + 3 * (16 + 54))
        );

        let stopped = cmd(&mut rt, json!({"cmd": "pcap-stop", "bearer": "eth:f0"})).expect("stop");
        assert_eq!(stopped[0]["frames_written"], 3, "{stopped}");
        assert_eq!(stopped.as_array().map(Vec::len), Some(1), "{stopped}");
        assert_eq!(
            render_pcap_text(PcapCmd::Stop, &stopped),
            format!("eth:f0: stopped, 3 frames written to {path}\n")
        );
        let stopped = cmd(&mut rt, json!({"cmd": "pcap-stop"})).expect("stop the rest");
        assert_eq!(stopped[0]["bearer"], "eth:f1", "{stopped}");
        let status = cmd(&mut rt, json!({"cmd": "pcap-status"})).expect("status");
        assert_eq!(
            render_pcap_text(PcapCmd::Status, &status),
            "eth:f0: not capturing\neth:f1: not capturing\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn views_render_like_tipc() {
        let id = "ktnode1".parse().expect("id");
        let mut cfg = NodeConfig::new(id, 1);
        cfg.address = Some(0x0f11_5f6f);
        let mut node = Node::new(cfg);
        let b = BearerConfig::new(
            "eth:eth0",
            "eth0",
            MediaKind::Eth,
            MediaAddr::Eth([0x52, 0x54, 0, 0x18, 1, 1]),
        );
        node.add_bearer(Instant::ZERO, b).expect("bearer");
        let nt = view(&node, Query::NameTable);
        let t = render_text(Query::NameTable, &nt);
        assert!(t.contains("252796783"), "{t}");
        assert!(t.contains("cluster"));
        let bl = render_text(Query::BearerList, &view(&node, Query::BearerList));
        assert_eq!(bl, "eth:eth0\n");
        let nl = render_text(Query::NodeList, &view(&node, Query::NodeList));
        assert!(nl.contains("ktnode1") && nl.contains("0f115f6f"), "{nl}");
        assert_eq!(Query::from_cmd("link-list"), Some(Query::LinkList));
        assert_eq!(Query::from_cmd("bogus"), None);
        let ll = render_text(Query::LinkList, &view(&node, Query::LinkList));
        assert_eq!(ll, "broadcast-link: up\n");
    }
}
