//! TUNNEL_PROTOCOL (user 10): failover and synchronisation between the two links to a node
//! (spec §1.4.6, §5.10). The payload is one whole original link packet (or, with tunnel
//! fragmentation, a piece of one).

use super::common::{Internal, User};
use super::field::Field;
use super::{INT_H_SIZE, Packet, Result};

/// Tunnel field positions.
pub(crate) mod field {
    use super::Field;

    pub(crate) const FRAG_NO: Field = Field::new(4, 16, 16);
    pub(crate) const FRAG_COUNT: Field = Field::new(4, 0, 16);
    pub(crate) const BEARER_ID: Field = Field::new(5, 9, 3);
    pub(crate) const MSG_COUNT: Field = Field::new(9, 16, 16);
}

enum_with_unknown! {
    /// TUNNEL_PROTOCOL message type.
    pub enum TunnelType(u8) {
        /// Synchronisation of a second link coming up (DUPLICATE_MSG in older kernels).
        Synch = 0 => "SYNCH_MSG",
        /// Failover of packets from a link that went down (ORIGINAL_MSG in older kernels).
        Failover = 1 => "FAILOVER_MSG",
    }
}

/// A parsed tunnel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelRepr<'a> {
    /// Shared internal-header part.
    pub base: Internal<'a>,
    /// Tunnel type.
    pub msg_type: TunnelType,
    /// Fragment number of a split tunneled packet (`w4[16:31]`).
    pub frag_no: u16,
    /// Number of fragments of a split tunneled packet (`w4[0:15]`).
    pub frag_count: u16,
    /// Bearer id of the peer's endpoint of the link concerned (`w5[9:11]`).
    pub bearer_id: u8,
    /// Number of tunneled packets, or syncpt in the enhanced SYNCH (`w9[16:31]`).
    pub msg_count: u16,
}

impl<'a> TunnelRepr<'a> {
    /// Parses a tunnel header.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        Ok(Self {
            base: Internal::parse(p, INT_H_SIZE)?,
            msg_type: TunnelType::from(p.msg_type_raw()),
            frag_no: p.get(field::FRAG_NO) as u16,
            frag_count: p.get(field::FRAG_COUNT) as u16,
            bearer_id: p.get(field::BEARER_ID) as u8,
            msg_count: p.get(field::MSG_COUNT) as u16,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.base.buffer_len(INT_H_SIZE)
    }

    /// Writes the tunnel message.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.base
            .emit(p, User::TunnelProtocol, self.msg_type.into(), INT_H_SIZE)?;
        p.set(field::FRAG_NO, u32::from(self.frag_no));
        p.set(field::FRAG_COUNT, u32::from(self.frag_count));
        p.set(field::BEARER_ID, u32::from(self.bearer_id));
        p.set(field::MSG_COUNT, u32::from(self.msg_count));
        Ok(())
    }

    /// The tunneled packet, when the payload holds a whole one (not a tunnel fragment).
    pub fn inner(&self) -> Option<Result<Packet<&'a [u8]>>> {
        if self.frag_count != 0 || self.base.payload.is_empty() {
            return None;
        }
        Some(Packet::new_checked(self.base.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::common::Common;
    use crate::wire::testutil::eth_fixture;

    #[test]
    fn failover_wraps_a_whole_packet() {
        // No capture holds a tunnel message (spec §17), so build one around a captured packet.
        let frames = eth_fixture("eth-03-rdm-named-datagrams.pcap");
        let inner = &frames[0].1;
        let inner_p = Packet::new_checked(&inner[..]).expect("valid");
        let t = TunnelRepr {
            base: Internal {
                common: Common {
                    prev_node: 0x0f11_5c6f,
                    ..Common::default()
                },
                orig_node: 0x0f11_5c6f,
                dest_node: 0x0f11_5f6f,
                extra_header: &[],
                payload: inner_p.message(),
            },
            msg_type: TunnelType::Failover,
            frag_no: 0,
            frag_count: 0,
            bearer_id: 1,
            msg_count: 1,
        };
        let bytes = emit_a5!(t);
        assert_eq!(&bytes[..4], &[0x55, 0x40, 0x00, 0x60]);
        assert_eq!(&bytes[20..24], &[0, 0, 0x02, 0]);
        assert_eq!(&bytes[36..40], &[0, 1, 0, 0]);
        let p = Packet::new_checked(&bytes[..]).expect("valid");
        let back = TunnelRepr::parse(&p).expect("parses");
        assert_eq!(back, t);
        let got = back.inner().expect("whole").expect("valid inner");
        assert_eq!(got.message(), inner_p.message());
    }
}
