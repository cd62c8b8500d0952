//! LINK_PROTOCOL (user 7): STATE, RESET, ACTIVATE, with the gap-ack-block record and the
//! monitor domain record that ride in STATE payloads (spec §1.4.1, §1.4.2, §11).
//!
//! The kernel builds the broadcast-link init message (BCAST_PROTOCOL, user 5, spec §1.4.7) with
//! the same builder, so [`LinkProtoRepr`] also represents that user; see
//! [`LinkProtoRepr::emit_as`].

use super::common::{Internal, User};
use super::field::Field;
use super::{Error, INT_H_SIZE, Packet, Result, be16, be32, need, put16, put32};

/// LINK_PROTOCOL field positions (spec §1.4.1).
pub(crate) mod field {
    use super::Field;

    pub(crate) const SEQ_GAP: Field = Field::new(1, 16, 13);
    pub(crate) const LAST_BCAST: Field = Field::new(4, 16, 16);
    pub(crate) const NEXT_SENT: Field = Field::new(4, 0, 16);
    pub(crate) const SESSION: Field = Field::new(5, 16, 16);
    pub(crate) const BC_ACK_INVALID: Field = Field::new(5, 14, 1);
    pub(crate) const PEER_STOPPING: Field = Field::new(5, 13, 1);
    pub(crate) const REDUNDANT_LINK: Field = Field::new(5, 12, 1);
    pub(crate) const BEARER_ID: Field = Field::new(5, 9, 3);
    pub(crate) const PRIORITY: Field = Field::new(5, 4, 5);
    pub(crate) const NET_PLANE: Field = Field::new(5, 1, 3);
    pub(crate) const PROBE: Field = Field::new(5, 0, 1);
    pub(crate) const BC_GAP: Field = Field::new(8, 0, 10);
    pub(crate) const MAX_PKT: Field = Field::new(9, 16, 16);
    pub(crate) const TOLERANCE: Field = Field::new(9, 0, 16);
}

enum_with_unknown! {
    /// LINK_PROTOCOL message type.
    pub enum LinkProtoType(u8) {
        /// Ack, NACK and keepalive of an established link.
        State = 0 => "STATE_MSG",
        /// First link-setup message; also sent to take a link down.
        Reset = 1 => "RESET_MSG",
        /// Answer to RESET; the link becomes established.
        Activate = 2 => "ACTIVATE_MSG",
    }
}

/// Length of the interface-name payload of RESET and ACTIVATE (TIPC_MAX_IF_NAME).
pub const IF_NAME_LEN: usize = 16;

/// A parsed LINK_PROTOCOL (or BCAST_PROTOCOL) message.
///
/// Routine messages carry 0 in `priority` and `tolerance`; a non-zero value is an
/// administrative change (spec §1.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkProtoRepr<'a> {
    /// Shared internal-header part. `common.bcast_ack` is the broadcast ack on STATE and the
    /// destination session on ACTIVATE; `common.flags.dest_droppable` is the keepalive flag.
    pub base: Internal<'a>,
    /// Message type.
    pub msg_type: LinkProtoType,
    /// STATE: number of missing packets after `ack` (a NACK). ACTIVATE: bit 0 = "destination
    /// session valid". 13 bits.
    pub seq_gap: u16,
    /// Own broadcast-link snd_nxt − 1 (`w4[16:31]`).
    pub last_bcast: u16,
    /// Own unicast snd_nxt (`w4[0:15]`).
    pub next_sent: u16,
    /// The sender's link session number.
    pub session: u16,
    /// The broadcast ack in this message is not to be used.
    pub bc_ack_invalid: bool,
    /// "I am going down": only on the one RESET that announces a link-down.
    pub peer_stopping: bool,
    /// The sender's broadcast receive link for the receiver is up.
    pub redundant_link: bool,
    /// Bearer id of the sender (0–2; 3 bits).
    pub bearer_id: u8,
    /// Link priority (0–31; 0 = no change).
    pub priority: u8,
    /// Network plane (letter − 'A'; 3 bits).
    pub net_plane: u8,
    /// STATE: please reply at once.
    pub probe: bool,
    /// Number of missing broadcast packets (10 bits).
    pub bc_gap: u16,
    /// Advertised MTU in bytes (a multiple of 4; carried as max_pkt/4).
    pub max_pkt: u32,
    /// Link tolerance in ms (0 = no change).
    pub tolerance: u16,
}

impl<'a> LinkProtoRepr<'a> {
    /// Parses a LINK_PROTOCOL or BCAST_PROTOCOL message.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        let base = Internal::parse(p, INT_H_SIZE)?;
        Ok(Self {
            base,
            msg_type: LinkProtoType::from(p.msg_type_raw()),
            seq_gap: p.get(field::SEQ_GAP) as u16,
            last_bcast: p.get(field::LAST_BCAST) as u16,
            next_sent: p.get(field::NEXT_SENT) as u16,
            session: p.get(field::SESSION) as u16,
            bc_ack_invalid: p.flag(field::BC_ACK_INVALID),
            peer_stopping: p.flag(field::PEER_STOPPING),
            redundant_link: p.flag(field::REDUNDANT_LINK),
            bearer_id: p.get(field::BEARER_ID) as u8,
            priority: p.get(field::PRIORITY) as u8,
            net_plane: p.get(field::NET_PLANE) as u8,
            probe: p.flag(field::PROBE),
            bc_gap: p.get(field::BC_GAP) as u16,
            max_pkt: p.get(field::MAX_PKT) * 4,
            tolerance: p.get(field::TOLERANCE) as u16,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.base.buffer_len(INT_H_SIZE)
    }

    /// Writes the message as LINK_PROTOCOL.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.emit_as(User::LinkProtocol, p)
    }

    /// Writes the message with the given user: [`User::LinkProtocol`] or
    /// [`User::BcastProtocol`].
    pub fn emit_as<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        user: User,
        p: &mut Packet<T>,
    ) -> Result<()> {
        self.base.emit(p, user, self.msg_type.into(), INT_H_SIZE)?;
        p.set(field::SEQ_GAP, u32::from(self.seq_gap));
        p.set(field::LAST_BCAST, u32::from(self.last_bcast));
        p.set(field::NEXT_SENT, u32::from(self.next_sent));
        p.set(field::SESSION, u32::from(self.session));
        p.set_flag(field::BC_ACK_INVALID, self.bc_ack_invalid);
        p.set_flag(field::PEER_STOPPING, self.peer_stopping);
        p.set_flag(field::REDUNDANT_LINK, self.redundant_link);
        p.set(field::BEARER_ID, u32::from(self.bearer_id));
        p.set(field::PRIORITY, u32::from(self.priority));
        p.set(field::NET_PLANE, u32::from(self.net_plane));
        p.set_flag(field::PROBE, self.probe);
        p.set(field::BC_GAP, u32::from(self.bc_gap));
        p.set(field::MAX_PKT, self.max_pkt / 4);
        p.set(field::TOLERANCE, u32::from(self.tolerance));
        Ok(())
    }

    /// ACTIVATE: the receiver's session as the sender knows it, if marked valid.
    pub fn dest_session(&self) -> Option<u16> {
        (self.msg_type == LinkProtoType::Activate && self.seq_gap & 1 != 0)
            .then_some(self.base.common.bcast_ack)
    }

    /// RESET / ACTIVATE: the sender's interface name (up to the first NUL), if the payload
    /// holds the 16-byte name field.
    pub fn if_name(&self) -> Option<&'a [u8]> {
        let name = self.base.payload.get(..IF_NAME_LEN)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(IF_NAME_LEN);
        Some(&name[..end])
    }

    /// Keepalive flag (`w0[19]`) of a STATE.
    pub fn keepalive(&self) -> bool {
        self.base.common.flags.dest_droppable
    }
}

/// One gap-ack block: a contiguous run received up to `ack`, then `gap` missing seqnos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GapAckBlock {
    /// Highest seqno of the received run.
    pub ack: u16,
    /// Number of missing seqnos right after it (0 in the last block).
    pub gap: u16,
}

/// At most this many blocks of each kind (MAX_GAP_ACK_BLKS / 2).
pub const MAX_GAP_ACK_BLOCKS: usize = 64;

/// The gap-ack-block record at the start of a STATE payload when the receiver advertised
/// GAP_ACK_BLOCK (spec §1.4.2): broadcast blocks first, then unicast blocks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GapAckRecord {
    /// Blocks for the broadcast receive link.
    pub bcast: Vec<GapAckBlock>,
    /// Blocks for the unicast link.
    pub ucast: Vec<GapAckBlock>,
}

/// Length of the record header (len, ugack_cnt, bgack_cnt).
pub const GAP_ACK_HEADER_LEN: usize = 4;

impl GapAckRecord {
    /// Parses the record at the start of `payload`. The declared length must match the counts
    /// and fit in the payload, as the kernel requires before it uses the blocks.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        need("gap-ack record", GAP_ACK_HEADER_LEN, payload.len())?;
        let len = usize::from(be16(payload, 0));
        let ucnt = usize::from(payload[2]);
        let bcnt = usize::from(payload[3]);
        if len != GAP_ACK_HEADER_LEN + 4 * (ucnt + bcnt) {
            return Err(Error::Invalid {
                field: "gap_ack.len",
                value: len as u32,
            });
        }
        if ucnt > MAX_GAP_ACK_BLOCKS || bcnt > MAX_GAP_ACK_BLOCKS {
            return Err(Error::Invalid {
                field: "gap_ack.count",
                value: (ucnt.max(bcnt)) as u32,
            });
        }
        need("gap-ack record", len, payload.len())?;
        let block = |i: usize| GapAckBlock {
            ack: be16(payload, GAP_ACK_HEADER_LEN + 4 * i),
            gap: be16(payload, GAP_ACK_HEADER_LEN + 4 * i + 2),
        };
        Ok(Self {
            bcast: (0..bcnt).map(block).collect(),
            ucast: (bcnt..bcnt + ucnt).map(block).collect(),
        })
    }

    /// Bytes `emit` writes (the record's `len`).
    pub fn buffer_len(&self) -> usize {
        GAP_ACK_HEADER_LEN + 4 * (self.bcast.len() + self.ucast.len())
    }

    /// Writes the record into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        need("emit buffer", len, buf.len())?;
        if self.bcast.len() > MAX_GAP_ACK_BLOCKS || self.ucast.len() > MAX_GAP_ACK_BLOCKS {
            return Err(Error::Invalid {
                field: "gap_ack.count",
                value: self.bcast.len().max(self.ucast.len()) as u32,
            });
        }
        put16(buf, 0, len as u16);
        buf[2] = self.ucast.len() as u8;
        buf[3] = self.bcast.len() as u8;
        for (i, b) in self.bcast.iter().chain(self.ucast.iter()).enumerate() {
            put16(buf, GAP_ACK_HEADER_LEN + 4 * i, b.ack);
            put16(buf, GAP_ACK_HEADER_LEN + 4 * i + 2, b.gap);
        }
        Ok(())
    }
}

/// Largest number of members in a monitor domain (MAX_MON_DOMAIN).
pub const MAX_MON_DOMAIN: usize = 64;
/// Length of the domain record header.
pub const DOMAIN_HEADER_LEN: usize = 16;

/// The Overlapping Ring Monitoring domain record that follows the gap-ack record in a STATE
/// (spec §11). All fields are big-endian.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DomainRecord {
    /// Generation of the sender's local domain.
    pub generation: u16,
    /// Newest generation of the receiver's domain the sender has received.
    pub ack_gen: u16,
    /// Bit i set: member i is up as seen by the sender.
    pub up_map: u64,
    /// Member node addresses in ring order (empty in a "dummy" record).
    pub members: Vec<u32>,
}

impl DomainRecord {
    /// Parses a record at the start of `buf`; its declared length must match its member count.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        need("domain record", DOMAIN_HEADER_LEN, buf.len())?;
        let len = usize::from(be16(buf, 0));
        let count = usize::from(be16(buf, 6));
        if count > MAX_MON_DOMAIN {
            return Err(Error::Invalid {
                field: "domain.member_cnt",
                value: count as u32,
            });
        }
        if len != DOMAIN_HEADER_LEN + 4 * count {
            return Err(Error::Invalid {
                field: "domain.len",
                value: len as u32,
            });
        }
        need("domain record", len, buf.len())?;
        let up_map = (u64::from(be32(buf, 8)) << 32) | u64::from(be32(buf, 12));
        Ok(Self {
            generation: be16(buf, 2),
            ack_gen: be16(buf, 4),
            up_map,
            members: (0..count)
                .map(|i| be32(buf, DOMAIN_HEADER_LEN + 4 * i))
                .collect(),
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        DOMAIN_HEADER_LEN + 4 * self.members.len()
    }

    /// Writes the record into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        need("emit buffer", len, buf.len())?;
        if self.members.len() > MAX_MON_DOMAIN {
            return Err(Error::Invalid {
                field: "domain.member_cnt",
                value: self.members.len() as u32,
            });
        }
        put16(buf, 0, len as u16);
        put16(buf, 2, self.generation);
        put16(buf, 4, self.ack_gen);
        put16(buf, 6, self.members.len() as u16);
        put32(buf, 8, (self.up_map >> 32) as u32);
        put32(buf, 12, self.up_map as u32);
        for (i, m) in self.members.iter().enumerate() {
            put32(buf, DOMAIN_HEADER_LEN + 4 * i, *m);
        }
        Ok(())
    }
}

/// The records of a STATE payload, as a receiver that knows the peer's capabilities reads them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StatePayload {
    /// The gap-ack record, when the peer advertised GAP_ACK_BLOCK.
    pub gap_ack: Option<GapAckRecord>,
    /// The monitor domain record, when one follows.
    pub domain: Option<DomainRecord>,
}

impl StatePayload {
    /// Splits a STATE payload. With `gap_ack_expected`, the first two bytes are the record
    /// length and the domain record starts there (the kernel's rule, spec §1.4.2); without, the
    /// whole payload is a domain record. An empty remainder means no domain record.
    pub fn parse(payload: &[u8], gap_ack_expected: bool) -> Result<Self> {
        let (gap_ack, rest) = if gap_ack_expected {
            let rec = GapAckRecord::parse(payload)?;
            let len = rec.buffer_len();
            (Some(rec), payload.get(len..).unwrap_or(&[]))
        } else {
            (None, payload)
        };
        let domain = if rest.is_empty() {
            None
        } else {
            Some(DomainRecord::parse(rest)?)
        };
        Ok(Self { gap_ack, domain })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.gap_ack.as_ref().map_or(0, GapAckRecord::buffer_len)
            + self.domain.as_ref().map_or(0, DomainRecord::buffer_len)
    }

    /// Writes both records into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        need("emit buffer", self.buffer_len(), buf.len())?;
        let mut off = 0;
        if let Some(g) = &self.gap_ack {
            g.emit(&mut buf[off..])?;
            off += g.buffer_len();
        }
        if let Some(d) = &self.domain {
            d.emit(&mut buf[off..])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::testutil::hex;

    /// `eth-02-link-setup` frame 1: RESET, session 0x8e6e, max_pkt 1500, "eth0".
    const RESET: &str = "4f40003820000000000080000f115f6f000000018e6e40000f115f6f0f115c6f\
        000000000177000065746830000000000000000000000000";
    /// `eth-02-link-setup` frame 5: ACTIVATE answering session 0xabe1.
    const ACTIVATE: &str = "4f4000384001abe1000080000f115f6f000000018e6e40000f115f6f0f115c6f\
        000000000177000065746830000000000000000000000000";
    /// `eth-02-link-setup` frame 6: STATE with the empty gap-ack record.
    const STATE: &str = "4f40002c00000000000000010f115c6f00000001abe140000f115c6f0f115f6f\
        000000000000000000040000";
    /// `eth-02-link-setup` frame 7: the BCAST_PROTOCOL broadcast init.
    const BCAST_INIT: &str = "4b40002800000000000000010f115c6f00000000000040000f115c6f0f115f6f\
        0000000000000000";

    fn parse(bytes: &[u8]) -> LinkProtoRepr<'_> {
        let p = Packet::new_checked(bytes).expect("valid");
        LinkProtoRepr::parse(&p).expect("parses")
    }

    #[test]
    fn deconstruct_reset() {
        let b = hex(RESET);
        let r = parse(&b);
        assert_eq!(r.msg_type, LinkProtoType::Reset);
        assert_eq!(r.session, 0x8e6e);
        assert!(r.bc_ack_invalid && !r.peer_stopping && !r.redundant_link);
        assert_eq!((r.max_pkt, r.tolerance, r.priority), (1500, 0, 0));
        assert_eq!((r.next_sent, r.last_bcast), (1, 0));
        assert_eq!(r.base.common.seqno, 32768);
        assert_eq!(r.if_name(), Some(&b"eth0"[..]));
        assert_eq!(r.dest_session(), None);
        assert_eq!(emit_a5!(r), b);
    }

    #[test]
    fn deconstruct_activate() {
        let b = hex(ACTIVATE);
        let r = parse(&b);
        assert_eq!(r.msg_type, LinkProtoType::Activate);
        assert_eq!(r.dest_session(), Some(0xabe1));
        assert_eq!(emit_a5!(r), b);
    }

    #[test]
    fn deconstruct_state_with_empty_gap_ack() {
        let b = hex(STATE);
        let r = parse(&b);
        assert_eq!(r.msg_type, LinkProtoType::State);
        assert_eq!((r.base.common.ack, r.base.common.seqno), (0, 1));
        assert_eq!(r.session, 0xabe1);
        let sp = StatePayload::parse(r.base.payload, true).expect("records");
        assert_eq!(sp.gap_ack, Some(GapAckRecord::default()));
        assert_eq!(sp.domain, None);
        let mut buf = vec![0xa5; sp.buffer_len()];
        sp.emit(&mut buf).expect("emit");
        assert_eq!(buf, hex("00040000"));
        assert_eq!(emit_a5!(r), b);
    }

    #[test]
    fn bcast_init_uses_the_same_layout() {
        let b = hex(BCAST_INIT);
        let r = parse(&b);
        assert!(r.bc_ack_invalid);
        assert_eq!(r.base.common.seqno, 1);
        let mut buf = vec![0xa5; r.buffer_len()];
        r.emit_as(
            User::BcastProtocol,
            &mut Packet::new_unchecked(&mut buf[..]),
        )
        .expect("emit");
        assert_eq!(buf, b);
    }

    #[test]
    fn gap_ack_blocks_follow_the_spec_example() {
        // Deferred queue 1–4, 10–11, 13–15, 20 -> (4,5) (11,1) (15,4) (20,0) on unicast.
        let rec = GapAckRecord {
            bcast: vec![GapAckBlock { ack: 9, gap: 0 }],
            ucast: vec![
                GapAckBlock { ack: 4, gap: 5 },
                GapAckBlock { ack: 11, gap: 1 },
                GapAckBlock { ack: 15, gap: 4 },
                GapAckBlock { ack: 20, gap: 0 },
            ],
        };
        let mut buf = vec![0xa5; rec.buffer_len()];
        rec.emit(&mut buf).expect("emit");
        assert_eq!(
            buf,
            hex("00180401 00090000 00040005 000b0001 000f0004 00140000")
        );
        assert_eq!(GapAckRecord::parse(&buf), Ok(rec));
    }

    #[test]
    fn gap_ack_length_mismatch_is_an_error() {
        assert_eq!(
            GapAckRecord::parse(&hex("00080000 00000000")),
            Err(Error::Invalid {
                field: "gap_ack.len",
                value: 8
            })
        );
        assert!(matches!(
            GapAckRecord::parse(&hex("000c0002")),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn domain_record_round_trip() {
        let d = DomainRecord {
            generation: 3,
            ack_gen: 2,
            up_map: 0b101,
            members: vec![0x0100_0001, 0x0100_0002, 0x0100_0003],
        };
        let mut buf = vec![0xa5; d.buffer_len()];
        d.emit(&mut buf).expect("emit");
        assert_eq!(
            buf,
            hex("001c0003 00020003 00000000 00000005 01000001 01000002 01000003")
        );
        assert_eq!(DomainRecord::parse(&buf), Ok(d.clone()));
        let sp = StatePayload {
            gap_ack: Some(GapAckRecord::default()),
            domain: Some(d),
        };
        let mut all = vec![0xa5; sp.buffer_len()];
        sp.emit(&mut all).expect("emit");
        assert_eq!(StatePayload::parse(&all, true), Ok(sp));
        assert!(matches!(
            DomainRecord::parse(&hex("00140000 00000001 00000000 00000000")),
            Err(Error::Invalid {
                field: "domain.len",
                ..
            }) | Err(Error::Truncated { .. })
        ));
    }
}
