//! Field-by-field descriptions of parsed messages, for `utipc decode` (one text line or one
//! JSON object per message) and for logs. Names follow the spec.

use super::bundler::BundleRepr;
use super::common::{Common, Internal};
use super::conn_mgr::ConnMgrRepr;
use super::crypto::{AeadKey, CryptoRepr, EhdrSender, EncryptedRepr};
use super::data::DataRepr;
use super::discovery::{DiscoveryRepr, MediaAddr, caps};
use super::fragmenter::FragmentRepr;
use super::group_proto::GroupProtoRepr;
use super::link_proto::{LinkProtoRepr, LinkProtoType, StatePayload};
use super::message::{Frame, MessageRepr, RawRepr};
use super::name_distr::NameDistrRepr;
use super::tunnel::TunnelRepr;

/// One described value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A number.
    U(u64),
    /// A node address or other identifier best read in hex (8 digits).
    Hex(u32),
    /// A flag.
    Bool(bool),
    /// Text.
    Str(String),
    /// A list of records (publication items, gap-ack blocks).
    List(Vec<Fields>),
}

/// Named values, in a stable order.
pub type Fields = Vec<(&'static str, Value)>;

/// Lists the fields of a representation.
pub trait Describe {
    /// The fields, in wire order.
    fn describe(&self) -> Fields;
}

fn u(v: impl Into<u64>) -> Value {
    Value::U(v.into())
}

fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

fn flags(f: &mut Fields, c: &Common) {
    for (name, set) in [
        ("non_seq", c.flags.non_seq),
        ("dest_droppable", c.flags.dest_droppable),
        ("multi_use", c.flags.multi_use),
        ("syn", c.flags.syn),
    ] {
        if set {
            f.push((name, Value::Bool(true)));
        }
    }
}

fn link_words(f: &mut Fields, c: &Common) {
    f.push(("ack", u(c.ack)));
    f.push(("seqno", u(c.seqno)));
    f.push(("bcast_ack", u(c.bcast_ack)));
    f.push(("prev_node", Value::Hex(c.prev_node)));
}

fn internal(f: &mut Fields, b: &Internal<'_>) {
    flags(f, &b.common);
    link_words(f, &b.common);
    f.push(("orig_node", Value::Hex(b.orig_node)));
    f.push(("dest_node", Value::Hex(b.dest_node)));
    if !b.extra_header.is_empty() {
        f.push(("extra_header_len", u(b.extra_header.len() as u64)));
    }
    f.push(("payload_len", u(b.payload.len() as u64)));
}

impl Describe for DataRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        flags(&mut f, &self.common);
        f.push(("importance", u(self.importance as u8)));
        if self.error != super::data::ErrorCode::Ok {
            f.push(("error", Value::Str(self.error.name().into())));
            f.push(("error_code", u(u8::from(self.error))));
        }
        if self.reroute_count != 0 {
            f.push(("reroute_count", u(self.reroute_count)));
        }
        f.push(("lookup_scope", u(self.lookup_scope)));
        link_words(&mut f, &self.common);
        f.push(("header_len", u(self.header_len as u64)));
        f.push(("orig_port", u(self.orig_port)));
        f.push(("dest_port", u(self.dest_port)));
        if self.header_len >= 32 {
            f.push(("orig_node", Value::Hex(self.orig_node)));
            f.push(("dest_node", Value::Hex(self.dest_node)));
        }
        if self.header_len >= 40 {
            f.push(("name_type", u(self.name_type)));
            f.push(("name_lower", u(self.name_lower)));
        }
        if self.header_len >= 44 {
            if self.is_group() {
                f.push(("grp_bc_seqno", u(self.grp_bc_seqno())));
                f.push(("grp_bc_ack_req", Value::Bool(self.grp_bc_ack_req())));
            } else {
                f.push(("name_upper", u(self.name_upper)));
            }
        }
        f.push(("data_len", u(self.payload.len() as u64)));
        if !self.payload.is_empty() {
            let n = self.payload.len().min(24);
            f.push(("data", Value::Str(printable(&self.payload[..n]))));
        }
        f
    }
}

impl Describe for LinkProtoRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        flags(&mut f, &self.base.common);
        let c = &self.base.common;
        f.push(("ack", u(c.ack)));
        f.push(("seqno", u(c.seqno)));
        if self.msg_type == LinkProtoType::Activate {
            f.push(("dest_session_valid", Value::Bool(self.seq_gap & 1 != 0)));
            f.push(("dest_session", u(c.bcast_ack)));
        } else {
            f.push(("seq_gap", u(self.seq_gap)));
            f.push(("bcast_ack", u(c.bcast_ack)));
        }
        f.push(("prev_node", Value::Hex(c.prev_node)));
        f.push(("last_bcast", u(self.last_bcast)));
        f.push(("next_sent", u(self.next_sent)));
        f.push(("session", u(self.session)));
        f.push(("bc_ack_invalid", Value::Bool(self.bc_ack_invalid)));
        f.push(("peer_stopping", Value::Bool(self.peer_stopping)));
        f.push(("redundant_link", Value::Bool(self.redundant_link)));
        f.push(("bearer_id", u(self.bearer_id)));
        f.push(("priority", u(self.priority)));
        f.push((
            "net_plane",
            Value::Str(char::from(b'A' + self.net_plane).to_string()),
        ));
        f.push(("probe", Value::Bool(self.probe)));
        f.push(("orig_node", Value::Hex(self.base.orig_node)));
        f.push(("dest_node", Value::Hex(self.base.dest_node)));
        f.push(("bc_gap", u(self.bc_gap)));
        f.push(("max_pkt", u(self.max_pkt)));
        f.push(("tolerance", u(self.tolerance)));
        match self.msg_type {
            LinkProtoType::Reset | LinkProtoType::Activate => {
                if let Some(name) = self.if_name() {
                    f.push(("if_name", Value::Str(printable(name))));
                }
            }
            _ if !self.base.payload.is_empty() => {
                // A decoder does not know the peer's capabilities: show the records when the
                // payload reads as a gap-ack record (as every Linux peer sends).
                if let Ok(sp) = StatePayload::parse(self.base.payload, true) {
                    if let Some(g) = &sp.gap_ack {
                        let blocks = |v: &[super::link_proto::GapAckBlock]| {
                            Value::List(
                                v.iter()
                                    .map(|b| vec![("ack", u(b.ack)), ("gap", u(b.gap))])
                                    .collect(),
                            )
                        };
                        f.push(("gap_ack_bcast", blocks(&g.bcast)));
                        f.push(("gap_ack_ucast", blocks(&g.ucast)));
                    }
                    if let Some(d) = &sp.domain {
                        f.push(("domain_gen", u(d.generation)));
                        f.push(("domain_ack_gen", u(d.ack_gen)));
                        f.push(("domain_up_map", u(d.up_map)));
                        f.push((
                            "domain_members",
                            Value::List(
                                d.members
                                    .iter()
                                    .map(|m| vec![("node", Value::Hex(*m))])
                                    .collect(),
                            ),
                        ));
                    }
                } else {
                    f.push(("payload_len", u(self.base.payload.len() as u64)));
                }
            }
            _ => {}
        }
        f
    }
}

impl Describe for BundleRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        internal(&mut f, &self.base);
        f.push(("msg_count", u(self.msg_count)));
        f.push(("importance", u(self.importance)));
        f
    }
}

impl Describe for FragmentRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        internal(&mut f, &self.base);
        f.push(("frag_no", u(self.frag_no)));
        f.push(("frag_count", u(self.frag_count)));
        f.push(("importance", u(self.importance)));
        f
    }
}

impl Describe for TunnelRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        internal(&mut f, &self.base);
        f.push(("frag_no", u(self.frag_no)));
        f.push(("frag_count", u(self.frag_count)));
        f.push(("bearer_id", u(self.bearer_id)));
        f.push(("msg_count", u(self.msg_count)));
        f
    }
}

impl Describe for NameDistrRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        internal(&mut f, &self.base);
        f.push(("bulk", Value::Bool(self.bulk)));
        f.push(("last_bulk", Value::Bool(self.last_bulk)));
        f.push(("non_legacy", Value::Bool(self.non_legacy)));
        f.push(("named_seqno", u(self.named_seqno)));
        f.push(("word5", Value::Hex(self.word5)));
        match self.items() {
            Ok(items) => f.push((
                "items",
                Value::List(
                    items
                        .iter()
                        .map(|i| {
                            vec![
                                ("type", u(i.service_type)),
                                ("lower", u(i.lower)),
                                ("upper", u(i.upper)),
                                ("port", u(i.port)),
                                ("key", u(i.key)),
                            ]
                        })
                        .collect(),
                ),
            )),
            Err(e) => f.push(("items_error", Value::Str(e.to_string()))),
        }
        f
    }
}

impl Describe for ConnMgrRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        internal(&mut f, &self.base);
        f.push(("orig_port", u(self.orig_port)));
        f.push(("dest_port", u(self.dest_port)));
        f.push(("conn_ack", u(self.conn_ack)));
        f.push(("adv_win", u(self.adv_win)));
        f
    }
}

impl Describe for GroupProtoRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        internal(&mut f, &self.base);
        f.push(("orig_port", u(self.orig_port)));
        f.push(("dest_port", u(self.dest_port)));
        f.push(("seqno_field", u(self.seqno_field)));
        f.push(("adv_win", u(self.adv_win)));
        f
    }
}

impl Describe for CryptoRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        internal(&mut f, &self.base);
        f.push(("key_gen", u(self.key_gen)));
        f.push(("key_mode", u(self.key_mode)));
        if let Ok(k) = AeadKey::parse(self.base.payload) {
            f.push(("alg", Value::Str(printable(k.alg()))));
            f.push(("keylen", u(k.key.len() as u64)));
        }
        f
    }
}

impl Describe for DiscoveryRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = Fields::new();
        f.push(("non_seq", Value::Bool(self.flags.non_seq)));
        f.push(("capabilities", u(self.capabilities)));
        let names: Vec<&str> = caps::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.capabilities & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        f.push(("capability_names", Value::Str(names.join(","))));
        f.push(("signature", u(self.signature)));
        f.push(("dest_domain", Value::Hex(self.dest_domain)));
        f.push(("prev_node", Value::Hex(self.prev_node)));
        f.push(("net_id", u(self.net_id)));
        f.push(("media", Value::Str(media(&self.media))));
        f.push(("peer_net_hash", Value::Hex(self.peer_net_hash)));
        f.push(("suggested_addr", Value::Hex(self.suggested_addr)));
        if let Some(id) = self.node_id {
            f.push(("node_id", Value::Str(id.to_string())));
            f.push(("node_id_hash", Value::Hex(id.hash())));
        }
        f
    }
}

/// Prints a media address as `eth:52:54:00:18:01:01`, `udp:198.18.1.11:6118`, ...
pub fn media(m: &MediaAddr) -> String {
    match m {
        MediaAddr::Eth(mac) => format!(
            "eth:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        ),
        MediaAddr::Ib(hw) => {
            let h: Vec<String> = hw.iter().map(|b| format!("{b:02x}")).collect();
            format!("ib:{}", h.join(":"))
        }
        MediaAddr::Udp(sa) => format!("udp:{sa}"),
        MediaAddr::Raw(raw) => {
            let h: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!("raw:{h}")
        }
    }
}

impl Describe for RawRepr<'_> {
    fn describe(&self) -> Fields {
        vec![
            ("header_len", u(self.header.len() as u64)),
            ("payload_len", u(self.payload.len() as u64)),
        ]
    }
}

impl Describe for MessageRepr<'_> {
    fn describe(&self) -> Fields {
        match self {
            Self::Data(r) => r.describe(),
            Self::BcastProto(r) | Self::LinkProto(r) => r.describe(),
            Self::Bundle(r) => r.describe(),
            Self::ConnMgr(r) => r.describe(),
            Self::GroupProto(r) => r.describe(),
            Self::Tunnel(r) => r.describe(),
            Self::NameDistr(r) => r.describe(),
            Self::Fragment(r) => r.describe(),
            Self::Discovery(r) => r.describe(),
            Self::Crypto(r) => r.describe(),
            Self::Raw(r) => r.describe(),
        }
    }
}

impl Describe for EncryptedRepr<'_> {
    fn describe(&self) -> Fields {
        let mut f = vec![
            ("ehdr_user", u(self.user)),
            ("destined", Value::Bool(self.destined)),
            ("tx_key", u(self.tx_key)),
            ("rx_key_active", u(self.rx_key_active)),
            ("keepalive", Value::Bool(self.keepalive)),
            ("master_key", Value::Bool(self.master_key)),
            ("rx_nokey", Value::Bool(self.rx_nokey)),
            ("ehdr_seqno", u(self.seqno)),
        ];
        match self.sender {
            EhdrSender::Addr(a) => f.push(("sender", Value::Hex(a))),
            EhdrSender::NodeId(id) => f.push(("sender_id", Value::Str(id.to_string()))),
        }
        f.push(("ciphertext_len", u(self.ciphertext.len() as u64)));
        f
    }
}

impl Describe for Frame<'_> {
    fn describe(&self) -> Fields {
        match self {
            Self::Plain(m) => m.describe(),
            Self::Encrypted(e) => e.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;

    #[test]
    fn describes_a_state_with_its_gap_ack_record() {
        let b = hex(
            "4f40002c00000000000000010f115c6f00000001abe140000f115c6f0f115f6f\
                     000000000000000000040000",
        );
        let f = Frame::parse(&b).expect("parses");
        let d = f.describe();
        assert!(d.contains(&("session", Value::U(0xabe1))));
        assert!(d.contains(&("gap_ack_ucast", Value::List(vec![]))));
        assert!(d.contains(&("prev_node", Value::Hex(0x0f11_5c6f))));
    }
}
