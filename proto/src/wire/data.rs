//! Data messages: users 0–3 (spec §1.3, §2.2, §2.3, §12).
//!
//! One header format serves every data message type; the header length tells which words are
//! present: 24 bytes (established connection), 32 (to a socket address, or a returned message),
//! 40 (to a service address), 44 (multicast and group).

use super::common::{self, Common, Importance};
use super::field::Field;
use super::{Error, MIN_H_SIZE, Packet, Result, need};

/// Data-header field positions (spec §1.3).
pub(crate) mod field {
    use super::Field;

    pub(crate) const ERROR: Field = Field::new(1, 25, 4);
    pub(crate) const REROUTE: Field = Field::new(1, 21, 4);
    pub(crate) const SCOPE: Field = Field::new(1, 19, 2);
    pub(crate) const ORIG_PORT: Field = Field::word(4);
    pub(crate) const DEST_PORT: Field = Field::word(5);
    pub(crate) const ORIG_NODE: Field = Field::word(6);
    pub(crate) const DEST_NODE: Field = Field::word(7);
    pub(crate) const NAME_TYPE: Field = Field::word(8);
    pub(crate) const NAME_LOWER: Field = Field::word(9);
    pub(crate) const NAME_UPPER: Field = Field::word(10);
    pub(crate) const GRP_BC_SEQNO: Field = Field::new(10, 16, 16);
    pub(crate) const GRP_BC_ACK_REQ: Field = Field::new(10, 0, 1);
}

enum_with_unknown! {
    /// Data message type (`w1[29:31]`).
    pub enum DataType(u8) {
        /// Data on an established connection (usually the 24-byte short header).
        Conn = 0 => "CONN_MSG",
        /// Sent to a service range: every matching socket.
        Mcast = 1 => "MCAST_MSG",
        /// Sent to a service address: one matching socket (anycast).
        Named = 2 => "NAMED_MSG",
        /// Sent to a socket address.
        Direct = 3 => "DIRECT_MSG",
        /// Group member event (node-local only).
        GrpMemberEvt = 4 => "GRP_MEMBER_EVT",
        /// Group broadcast.
        GrpBcast = 5 => "GRP_BCAST_MSG",
        /// Group multicast.
        GrpMcast = 6 => "GRP_MCAST_MSG",
        /// Group unicast or anycast.
        GrpUcast = 7 => "GRP_UCAST_MSG",
    }
}

impl DataType {
    /// The header length the kernel uses for this type.
    pub fn std_header_len(self) -> usize {
        match self {
            Self::Conn => MIN_H_SIZE,
            Self::Direct => super::BASIC_H_SIZE,
            Self::Named => super::NAMED_H_SIZE,
            _ => super::MCAST_H_SIZE,
        }
    }
}

enum_with_unknown! {
    /// Error code of a data message (`w1[25:28]`, spec §2.3): why a message was returned.
    pub enum ErrorCode(u8) {
        /// No error.
        Ok = 0 => "OK",
        /// No binding matches the service address.
        NoName = 1 => "ERR_NO_NAME",
        /// The destination socket does not exist, refused the message, or closed.
        NoPort = 2 => "ERR_NO_PORT",
        /// Contact with the peer node was lost.
        NoNode = 3 => "ERR_NO_NODE",
        /// The receive queue was full.
        Overload = 4 => "ERR_OVERLOAD",
        /// Orderly connection shutdown.
        ConnShutdown = 5 => "CONN_SHUTDOWN",
    }
}

/// Lookup scope values of `w1[19:20]`.
pub mod scope {
    /// Not a named lookup (DIRECT and CONN messages).
    pub const NONE: u8 = 0;
    /// Deprecated zone scope, treated as cluster.
    pub const ZONE: u8 = 1;
    /// Cluster-wide lookup.
    pub const CLUSTER: u8 = 2;
    /// Node-local lookup.
    pub const NODE: u8 = 3;
}

/// A parsed data message (users 0–3).
///
/// Fields beyond `header_len` are absent on the wire and must be 0 here; `extra_header` holds
/// header bytes beyond the 44-byte multicast header (never sent by Linux, kept for exactness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataRepr<'a> {
    /// Importance: the user field.
    pub importance: Importance,
    /// Message type.
    pub msg_type: DataType,
    /// Flags and link-layer words.
    pub common: Common,
    /// Error code; non-zero on returned messages and connection aborts.
    pub error: ErrorCode,
    /// Reroute count (`w1[21:24]`), incremented when a node re-resolves a named message.
    pub reroute_count: u8,
    /// Lookup scope (`w1[19:20]`, see [`scope`]).
    pub lookup_scope: u8,
    /// Header length in bytes: 24, 32, 40 or 44 for Linux senders.
    pub header_len: usize,
    /// Originating port (`w4`); bit 0 is also the link selector.
    pub orig_port: u32,
    /// Destination port (`w5`); the network id on broadcast-link packets.
    pub dest_port: u32,
    /// Originating node (`w6`), present from 32 bytes.
    pub orig_node: u32,
    /// Destination node (`w7`), present from 32 bytes.
    pub dest_node: u32,
    /// Service type (`w8`), present from 40 bytes.
    pub name_type: u32,
    /// Instance (NAMED) or lower bound (MCAST) or member instance (group), from 40 bytes.
    pub name_lower: u32,
    /// Upper bound (MCAST) or group word (`w10`), present from 44 bytes.
    pub name_upper: u32,
    /// Header bytes beyond 44.
    pub extra_header: &'a [u8],
    /// User data.
    pub payload: &'a [u8],
}

impl<'a> DataRepr<'a> {
    /// Parses a data message. The packet must have passed [`Packet::new_checked`].
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        common::check_version(p)?;
        let user = p.user_raw();
        let importance = Importance::from_u8(user).ok_or(Error::Invalid {
            field: "user",
            value: u32::from(user),
        })?;
        let header_len = p.header_len();
        let word = |f: Field| if f.end() <= header_len { p.get(f) } else { 0 };
        Ok(Self {
            importance,
            msg_type: DataType::from(p.msg_type_raw()),
            common: Common::parse(p),
            error: ErrorCode::from(p.get(field::ERROR) as u8),
            reroute_count: p.get(field::REROUTE) as u8,
            lookup_scope: p.get(field::SCOPE) as u8,
            header_len,
            orig_port: word(field::ORIG_PORT),
            dest_port: word(field::DEST_PORT),
            orig_node: word(field::ORIG_NODE),
            dest_node: word(field::DEST_NODE),
            name_type: word(field::NAME_TYPE),
            name_lower: word(field::NAME_LOWER),
            name_upper: word(field::NAME_UPPER),
            extra_header: common::extra_header(p, super::MCAST_H_SIZE),
            payload: p.payload_ref(),
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.header_len + self.payload.len()
    }

    /// Writes the message into the first [`Self::buffer_len`] bytes of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        need("emit buffer", len, p.as_bytes().len())?;
        let std = self.header_len.min(super::MCAST_H_SIZE);
        if !common::check_emit_len(self.header_len, self.payload.len())
            || std + self.extra_header.len() != self.header_len
        {
            return Err(Error::Invalid {
                field: "header_len",
                value: self.header_len as u32,
            });
        }
        common::emit_start(
            p,
            self.importance as u8,
            self.msg_type.into(),
            self.header_len,
            len,
        );
        p.set(field::ERROR, u32::from(u8::from(self.error)));
        p.set(field::REROUTE, u32::from(self.reroute_count));
        p.set(field::SCOPE, u32::from(self.lookup_scope));
        self.common.emit(p);
        for (f, v) in [
            (field::ORIG_PORT, self.orig_port),
            (field::DEST_PORT, self.dest_port),
            (field::ORIG_NODE, self.orig_node),
            (field::DEST_NODE, self.dest_node),
            (field::NAME_TYPE, self.name_type),
            (field::NAME_LOWER, self.name_lower),
            (field::NAME_UPPER, self.name_upper),
        ] {
            if f.end() <= self.header_len {
                p.set(f, v);
            }
        }
        common::emit_tail(p, std, self.extra_header, self.payload);
        Ok(())
    }

    /// The originating node, taken from `w3` for a 24-byte header (spec §1.5).
    pub fn origin_node(&self) -> u32 {
        if self.header_len <= MIN_H_SIZE {
            self.common.prev_node
        } else {
            self.orig_node
        }
    }

    /// Group broadcast sequence number (`w10[16:31]`) of group messages.
    pub fn grp_bc_seqno(&self) -> u16 {
        field::GRP_BC_SEQNO.extract(self.name_upper) as u16
    }

    /// Group broadcast-ack request (`w10[0]`).
    pub fn grp_bc_ack_req(&self) -> bool {
        field::GRP_BC_ACK_REQ.extract(self.name_upper) != 0
    }

    /// Whether this is a group message (types 4–7).
    pub fn is_group(&self) -> bool {
        matches!(
            self.msg_type,
            DataType::GrpMemberEvt | DataType::GrpBcast | DataType::GrpMcast | DataType::GrpUcast
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{a5_buffer, hex};

    /// `eth-03` frame 1: NAMED_MSG to {18888,17}, 16 data bytes.
    const NAMED: &str = "4148003840100000000200030f115c6f146bab4046cf5d62\
        0f115c6f0f115f6f000049c80000001170696e6730303030300036557493b2d1";

    #[test]
    fn deconstruct_named() {
        let bytes = hex(NAMED);
        let p = Packet::new_checked(&bytes[..]).expect("valid");
        let r = DataRepr::parse(&p).expect("parses");
        assert_eq!(r.importance, Importance::Low);
        assert_eq!(r.msg_type, DataType::Named);
        assert_eq!(r.header_len, 40);
        assert_eq!(r.common.ack, 2);
        assert_eq!(r.common.seqno, 3);
        assert_eq!(r.orig_node, 0x0f11_5c6f);
        assert_eq!(r.dest_node, 0x0f11_5f6f);
        assert_eq!((r.name_type, r.name_lower), (18888, 17));
        assert_eq!(r.payload.len(), 16);
        assert_eq!(r.error, ErrorCode::Ok);
    }

    #[test]
    fn construct_and_emit_named() {
        let bytes = hex(NAMED);
        let p = Packet::new_checked(&bytes[..]).expect("valid");
        let r = DataRepr::parse(&p).expect("parses");
        let mut buf = a5_buffer(r.buffer_len());
        r.emit(&mut Packet::new_unchecked(&mut buf[..]))
            .expect("emits");
        assert_eq!(buf, bytes);
    }

    #[test]
    fn short_header_takes_origin_from_prev_node() {
        let r = DataRepr {
            importance: Importance::Critical,
            msg_type: DataType::Conn,
            common: Common {
                prev_node: 7,
                ..Common::default()
            },
            error: ErrorCode::ConnShutdown,
            reroute_count: 0,
            lookup_scope: 0,
            header_len: 24,
            orig_port: 1,
            dest_port: 2,
            orig_node: 0,
            dest_node: 0,
            name_type: 0,
            name_lower: 0,
            name_upper: 0,
            extra_header: &[],
            payload: &[],
        };
        let mut buf = a5_buffer(r.buffer_len());
        r.emit(&mut Packet::new_unchecked(&mut buf[..]))
            .expect("emits");
        let p = Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!(p.orig_node(), 7);
        let back = DataRepr::parse(&p).expect("parses");
        assert_eq!(back, r);
        assert_eq!(back.origin_node(), 7);
        assert_eq!(hex("46c000180a000000000000000000000700000001"), buf[..20]);
    }

    #[test]
    fn emit_rejects_bad_header_len_and_short_buffer() {
        let bytes = hex(NAMED);
        let p = Packet::new_checked(&bytes[..]).expect("valid");
        let mut r = DataRepr::parse(&p).expect("parses");
        let mut small = [0u8; 10];
        assert!(matches!(
            r.emit(&mut Packet::new_unchecked(&mut small[..])),
            Err(Error::Truncated { .. })
        ));
        r.header_len = 42;
        let mut buf = a5_buffer(100);
        assert!(matches!(
            r.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(Error::Invalid {
                field: "header_len",
                ..
            })
        ));
    }
}
