//! GROUP_PROTOCOL (user 9): group membership and per-member flow control (spec §1.4.10, §10).
//! No capture holds these (spec §17); the layout comes from the kernel sources.

use super::common::{Internal, User};
use super::field::Field;
use super::{INT_H_SIZE, Packet, Result};

/// Group-protocol field positions.
pub(crate) mod field {
    use super::Field;

    pub(crate) const ORIG_PORT: Field = Field::word(4);
    pub(crate) const DEST_PORT: Field = Field::word(5);
    pub(crate) const SEQNO_FIELD: Field = Field::new(9, 16, 16);
    pub(crate) const ADV_WIN: Field = Field::new(9, 0, 16);
}

enum_with_unknown! {
    /// GROUP_PROTOCOL message type.
    pub enum GroupProtoType(u8) {
        /// A member joins (carries bc_syncpt and adv_win).
        Join = 0 => "GRP_JOIN_MSG",
        /// A member leaves (carries bc_syncpt).
        Leave = 1 => "GRP_LEAVE_MSG",
        /// Window advertisement.
        Adv = 2 => "GRP_ADV_MSG",
        /// Broadcast acknowledgement (carries bc_acked).
        Ack = 3 => "GRP_ACK_MSG",
        /// Please give back your window.
        Reclaim = 4 => "GRP_RECLAIM_MSG",
        /// Window given back (carries remitted).
        Remit = 5 => "GRP_REMIT_MSG",
    }
}

/// A parsed group-protocol message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupProtoRepr<'a> {
    /// Shared internal-header part.
    pub base: Internal<'a>,
    /// Message type.
    pub msg_type: GroupProtoType,
    /// Sending member's port.
    pub orig_port: u32,
    /// Receiving member's port.
    pub dest_port: u32,
    /// `w9[16:31]`: bc_syncpt (JOIN, LEAVE), bc_acked (ACK), remitted (REMIT).
    pub seqno_field: u16,
    /// `w9[0:15]`: advertised window in blocks (JOIN, ADV).
    pub adv_win: u16,
}

impl<'a> GroupProtoRepr<'a> {
    /// Parses a group-protocol message.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        Ok(Self {
            base: Internal::parse(p, INT_H_SIZE)?,
            msg_type: GroupProtoType::from(p.msg_type_raw()),
            orig_port: p.get(field::ORIG_PORT),
            dest_port: p.get(field::DEST_PORT),
            seqno_field: p.get(field::SEQNO_FIELD) as u16,
            adv_win: p.get(field::ADV_WIN) as u16,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.base.buffer_len(INT_H_SIZE)
    }

    /// Writes the message.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.base
            .emit(p, User::GroupProtocol, self.msg_type.into(), INT_H_SIZE)?;
        p.set(field::ORIG_PORT, self.orig_port);
        p.set(field::DEST_PORT, self.dest_port);
        p.set(field::SEQNO_FIELD, u32::from(self.seqno_field));
        p.set(field::ADV_WIN, u32::from(self.adv_win));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::common::{Common, Flags};
    use crate::wire::testutil::hex;

    #[test]
    fn construct_join() {
        let r = GroupProtoRepr {
            base: Internal {
                common: Common {
                    flags: Flags {
                        dest_droppable: true,
                        ..Flags::default()
                    },
                    prev_node: 0x0100_0001,
                    ..Common::default()
                },
                orig_node: 0x0100_0001,
                dest_node: 0x0100_0002,
                extra_header: &[],
                payload: &[],
            },
            msg_type: GroupProtoType::Join,
            orig_port: 0x1111_1111,
            dest_port: 0x2222_2222,
            seqno_field: 5,
            adv_win: 65,
        };
        let b = emit_a5!(r);
        assert_eq!(
            b,
            hex(
                "53480028 00000000 00000000 01000001 11111111 22222222 01000001 01000002
                 00000000 00050041"
            )
        );
        let p = Packet::new_checked(&b[..]).expect("valid");
        assert_eq!(GroupProtoRepr::parse(&p), Ok(r));
    }
}
