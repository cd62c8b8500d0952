//! NAME_DISTRIBUTOR (user 11): name-table publications and withdrawals (spec §1.4.8, §7).

use super::common::{Internal, User};
use super::field::Field;
use super::{Error, INT_H_SIZE, Packet, Result, be32, need, put32};

/// Name-distributor field positions.
pub(crate) mod field {
    use super::Field;

    pub(crate) const BULK: Field = Field::new(1, 28, 1);
    pub(crate) const LAST_BULK: Field = Field::new(1, 27, 1);
    pub(crate) const NON_LEGACY: Field = Field::new(1, 26, 1);
    pub(crate) const NAMED_SEQNO: Field = Field::new(4, 0, 16);
    pub(crate) const WORD5: Field = Field::word(5);
    pub(crate) const BC_ACK_INVALID: Field = Field::new(5, 14, 1);
}

enum_with_unknown! {
    /// NAME_DISTRIBUTOR message type.
    pub enum NameDistrType(u8) {
        /// Bindings added.
        Publication = 0 => "PUBLICATION",
        /// Bindings removed.
        Withdrawal = 1 => "WITHDRAWAL",
    }
}

/// Length of one publication item.
pub const ITEM_LEN: usize = 20;

/// One 20-byte publication item (spec §7.1). The publishing node is the message's orig_node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Publication {
    /// Service type.
    pub service_type: u32,
    /// Lower bound of the bound range.
    pub lower: u32,
    /// Upper bound of the bound range.
    pub upper: u32,
    /// Port (socket reference) of the binder.
    pub port: u32,
    /// Publication key, unique per socket binding.
    pub key: u32,
}

impl Publication {
    /// Parses an item from the first 20 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        need("publication item", ITEM_LEN, b.len())?;
        Ok(Self {
            service_type: be32(b, 0),
            lower: be32(b, 4),
            upper: be32(b, 8),
            port: be32(b, 12),
            key: be32(b, 16),
        })
    }

    /// Writes the item into the first 20 bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        need("emit buffer", ITEM_LEN, b.len())?;
        put32(b, 0, self.service_type);
        put32(b, 4, self.lower);
        put32(b, 8, self.upper);
        put32(b, 12, self.port);
        put32(b, 16, self.key);
        Ok(())
    }
}

/// A parsed name-distribution message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameDistrRepr<'a> {
    /// Shared internal-header part; `orig_node` is the publishing node, `dest_node` is 0 on
    /// broadcast copies.
    pub base: Internal<'a>,
    /// Publication or withdrawal.
    pub msg_type: NameDistrType,
    /// Part of the bulk sent at node-up.
    pub bulk: bool,
    /// The final message of that bulk.
    pub last_bulk: bool,
    /// Set by every current kernel; clear from legacy peers.
    pub non_legacy: bool,
    /// Name-distribution sequence number (`w4[0:15]`).
    pub named_seqno: u16,
    /// Word 5 as sent: bc_ack_invalid (bit 14) on unicast copies, the network id on broadcast
    /// copies (every broadcast-link packet carries the net id in w5).
    pub word5: u32,
}

impl<'a> NameDistrRepr<'a> {
    /// Parses a name-distribution message; the items stay in the payload ([`Self::items`]).
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        Ok(Self {
            base: Internal::parse(p, INT_H_SIZE)?,
            msg_type: NameDistrType::from(p.msg_type_raw()),
            bulk: p.flag(field::BULK),
            last_bulk: p.flag(field::LAST_BULK),
            non_legacy: p.flag(field::NON_LEGACY),
            named_seqno: p.get(field::NAMED_SEQNO) as u16,
            word5: p.get(field::WORD5),
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.base.buffer_len(INT_H_SIZE)
    }

    /// Writes the message (items as given in the payload).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.base
            .emit(p, User::NameDistributor, self.msg_type.into(), INT_H_SIZE)?;
        p.set_flag(field::BULK, self.bulk);
        p.set_flag(field::LAST_BULK, self.last_bulk);
        p.set_flag(field::NON_LEGACY, self.non_legacy);
        p.set(field::NAMED_SEQNO, u32::from(self.named_seqno));
        p.set(field::WORD5, self.word5);
        Ok(())
    }

    /// bc_ack_invalid (`w5[14]`), meaningful on unicast copies only.
    pub fn bc_ack_invalid(&self) -> bool {
        field::BC_ACK_INVALID.extract(self.word5) != 0
    }

    /// The publication items. Fails if the payload is not a whole number of items.
    pub fn items(&self) -> Result<Vec<Publication>> {
        let payload = self.base.payload;
        if !payload.len().is_multiple_of(ITEM_LEN) {
            return Err(Error::Invalid {
                field: "name_distr.payload_len",
                value: payload.len() as u32,
            });
        }
        payload
            .chunks_exact(ITEM_LEN)
            .map(Publication::parse)
            .collect()
    }
}

/// Encodes items into a payload buffer for [`NameDistrRepr`].
pub fn encode_items(items: &[Publication]) -> Vec<u8> {
    let mut out = vec![0u8; items.len() * ITEM_LEN];
    for (item, chunk) in items.iter().zip(out.chunks_exact_mut(ITEM_LEN)) {
        // Each chunk is exactly ITEM_LEN bytes, so emit cannot fail.
        let _ = item.emit(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::testutil::{eth_fixture, hex};

    #[test]
    fn deconstruct_bulk_of_one() {
        // eth-02-link-setup frame 8: ktnode2's bulk: its own {0, addr, addr}.
        let b = hex(
            "5740003c1c000000000000020f115c6f00000001000040000f115c6f0f115f6f\
                     0000000000000000000000000f115c6f0f115c6f000000000f115c6f",
        );
        let p = Packet::new_checked(&b[..]).expect("valid");
        let r = NameDistrRepr::parse(&p).expect("parses");
        assert_eq!(r.msg_type, NameDistrType::Publication);
        assert!(r.bulk && r.last_bulk && r.non_legacy);
        assert_eq!(r.named_seqno, 1);
        assert!(r.bc_ack_invalid());
        let items = r.items().expect("items");
        assert_eq!(
            items,
            vec![Publication {
                service_type: 0,
                lower: 0x0f11_5c6f,
                upper: 0x0f11_5c6f,
                port: 0,
                key: 0x0f11_5c6f
            }]
        );
        assert_eq!(encode_items(&items), r.base.payload);
        assert_eq!(emit_a5!(r), b);
    }

    #[test]
    fn broadcast_publication_carries_net_id_in_word5() {
        let frames = eth_fixture("eth-08-publish-withdraw.pcap");
        let b = &frames[0].1;
        let p = Packet::new_checked(&b[..]).expect("valid");
        let r = NameDistrRepr::parse(&p).expect("parses");
        assert!(r.base.common.flags.non_seq);
        assert!(!r.bulk && r.non_legacy);
        assert_eq!(r.word5, 4711);
        assert_eq!(r.base.dest_node, 0);
        let items = r.items().expect("items");
        assert_eq!((items[0].service_type, items[0].lower), (18888, 1000));
        assert_eq!(items[0].key, items[0].port.wrapping_add(1));
        assert_eq!(emit_a5!(r), p.message());
    }

    #[test]
    fn partial_item_is_an_error() {
        let mut b = hex(
            "5740003c1c000000000000020f115c6f00000001000040000f115c6f0f115f6f\
                         0000000000000000000000000f115c6f0f115c6f000000000f115c6f",
        );
        b[3] = 0x3b;
        let p = Packet::new_checked(&b[..]).expect("valid");
        let r = NameDistrRepr::parse(&p).expect("parses");
        assert_eq!(
            r.items(),
            Err(Error::Invalid {
                field: "name_distr.payload_len",
                value: 19
            })
        );
    }
}
