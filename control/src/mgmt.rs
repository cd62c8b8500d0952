//! The management protocol between `utipc` and `utipcd`, and the views it carries.
//!
//! One JSON object per line over the daemon's Unix socket: a request `{"cmd": "link-list"}`, a
//! response `{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`. The daemon only ever
//! sends data; the command renders it as text (the layout of iproute2's `tipc`) or passes the
//! JSON through with `--json`. The same views serve an embedded node.

use serde_json::{Value as Json, json};
use utipc_proto::bearer::MediaKind;
use utipc_proto::link::LinkState;
use utipc_proto::name_table::Scope;
use utipc_proto::node::Node;
use utipc_proto::wire::describe::media;

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
                    json!({
                        "name": l.name,
                        "peer": format!("{:08x}", l.peer),
                        "bearer": l.bearer.0,
                        "state": state_name(l.state),
                        "mtu": l.mtu,
                        "tolerance_ms": l.tolerance.as_millis() as u64,
                        "priority": l.priority,
                        "session": l.session,
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
    use utipc_proto::bearer::BearerConfig;
    use utipc_proto::node::NodeConfig;
    use utipc_proto::time::Instant;
    use utipc_proto::wire::discovery::MediaAddr;

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
