//! MSG_FRAGMENTER (user 12): link-level fragments of a message longer than the link MTU
//! (spec §1.4.4, §5.12).

use super::common::{Internal, User};
use super::field::Field;
use super::{INT_H_SIZE, Packet, Result};

/// Fragmenter field positions.
pub(crate) mod field {
    use super::Field;

    pub(crate) const FRAG_NO: Field = Field::new(4, 16, 16);
    pub(crate) const FRAG_COUNT: Field = Field::new(4, 0, 16);
    pub(crate) const IMPORTANCE: Field = Field::new(9, 0, 3);
}

enum_with_unknown! {
    /// MSG_FRAGMENTER message type.
    pub enum FragType(u8) {
        /// First fragment: carries the whole original header.
        First = 0 => "FIRST_FRAGMENT",
        /// Middle fragment.
        Middle = 1 => "FRAGMENT",
        /// Last fragment: the message is complete.
        Last = 2 => "LAST_FRAGMENT",
    }
}

/// A parsed fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr<'a> {
    /// Shared internal-header part; `orig_node`/`dest_node` are copied from the original.
    pub base: Internal<'a>,
    /// Fragment type.
    pub msg_type: FragType,
    /// Fragment number, from 1 (`w4[16:31]`).
    pub frag_no: u16,
    /// Number of fragments (`w4[0:15]`): only set by tunnel fragmentation, else 0.
    pub frag_count: u16,
    /// Importance of the original message (`w9[0:2]`).
    pub importance: u8,
}

impl<'a> FragmentRepr<'a> {
    /// Parses a fragment header.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        Ok(Self {
            base: Internal::parse(p, INT_H_SIZE)?,
            msg_type: FragType::from(p.msg_type_raw()),
            frag_no: p.get(field::FRAG_NO) as u16,
            frag_count: p.get(field::FRAG_COUNT) as u16,
            importance: p.get(field::IMPORTANCE) as u8,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.base.buffer_len(INT_H_SIZE)
    }

    /// Writes the fragment.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.base
            .emit(p, User::MsgFragmenter, self.msg_type.into(), INT_H_SIZE)?;
        p.set(field::FRAG_NO, u32::from(self.frag_no));
        p.set(field::FRAG_COUNT, u32::from(self.frag_count));
        p.set(field::IMPORTANCE, u32::from(self.importance));
        Ok(())
    }

    /// The original message's header at the start of a FIRST_FRAGMENT payload. Its size field
    /// describes the whole message, which this fragment does not hold.
    pub fn inner_header(&self) -> Option<Result<Packet<&'a [u8]>>> {
        (self.msg_type == FragType::First).then(|| Packet::new_checked_header(self.base.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::testutil::eth_fixture;

    #[test]
    fn deconstruct_66000_byte_message_fragments() {
        let frames = eth_fixture("eth-04-fragmented-66000.pcap");
        let mut total = 0usize;
        let mut announced = 0usize;
        for (n, b) in frames.iter().filter(|(n, _)| *n <= 48) {
            let p = Packet::new_checked(&b[..]).expect("valid");
            let r = FragmentRepr::parse(&p).expect("parses");
            assert_eq!(usize::from(r.frag_no), *n);
            assert_eq!(r.frag_count, 0);
            let want = match n {
                1 => FragType::First,
                48 => FragType::Last,
                _ => FragType::Middle,
            };
            assert_eq!(r.msg_type, want);
            if let Some(inner) = r.inner_header() {
                let inner = inner.expect("inner header");
                announced = inner.size();
                assert_eq!(inner.header_len(), 40);
            }
            total += r.base.payload.len();
            assert_eq!(emit_a5!(r), p.message());
        }
        assert_eq!(announced, 66_040);
        assert_eq!(total, 66_040);
    }
}
