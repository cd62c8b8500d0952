//! CONN_MANAGER (user 8): connection probes and flow-control acks (spec §1.4.9, §9.3, §9.4).

use super::common::{Internal, User};
use super::field::Field;
use super::{INT_H_SIZE, Packet, Result};

/// Connection-manager field positions.
pub(crate) mod field {
    use super::Field;

    pub(crate) const ORIG_PORT: Field = Field::word(4);
    pub(crate) const DEST_PORT: Field = Field::word(5);
    pub(crate) const CONN_ACK: Field = Field::new(9, 16, 16);
    pub(crate) const ADV_WIN: Field = Field::new(9, 0, 16);
}

enum_with_unknown! {
    /// CONN_MANAGER message type.
    pub enum ConnMgrType(u8) {
        /// Is the connection still there?
        Probe = 0 => "CONN_PROBE",
        /// Yes, it is.
        ProbeReply = 1 => "CONN_PROBE_REPLY",
        /// Flow-control acknowledgement.
        Ack = 2 => "CONN_ACK",
    }
}

/// A parsed connection-manager message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnMgrRepr<'a> {
    /// Shared internal-header part; `common.flags.multi_use` is nagle-ack on a CONN_ACK.
    pub base: Internal<'a>,
    /// Message type.
    pub msg_type: ConnMgrType,
    /// Sending socket's port.
    pub orig_port: u32,
    /// Receiving socket's port.
    pub dest_port: u32,
    /// Blocks (or messages, for legacy peers) now acknowledged (`w9[16:31]`).
    pub conn_ack: u16,
    /// Advertised receive window in blocks (`w9[0:15]`).
    pub adv_win: u16,
}

impl<'a> ConnMgrRepr<'a> {
    /// Parses a connection-manager message.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        Ok(Self {
            base: Internal::parse(p, INT_H_SIZE)?,
            msg_type: ConnMgrType::from(p.msg_type_raw()),
            orig_port: p.get(field::ORIG_PORT),
            dest_port: p.get(field::DEST_PORT),
            conn_ack: p.get(field::CONN_ACK) as u16,
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
            .emit(p, User::ConnManager, self.msg_type.into(), INT_H_SIZE)?;
        p.set(field::ORIG_PORT, self.orig_port);
        p.set(field::DEST_PORT, self.dest_port);
        p.set(field::CONN_ACK, u32::from(self.conn_ack));
        p.set(field::ADV_WIN, u32::from(self.adv_win));
        Ok(())
    }

    /// The nagle-ack bit of a CONN_ACK.
    pub fn nagle_ack(&self) -> bool {
        self.base.common.flags.multi_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::testutil::hex;

    #[test]
    fn deconstruct_conn_ack() {
        // eth-07-stream-connection frame 47.
        let b = hex(
            "514000284000000100b3017d0f115f6fede4762304b359c50f115f6f0f115c6f\
                     0000000000250200",
        );
        let p = Packet::new_checked(&b[..]).expect("valid");
        let r = ConnMgrRepr::parse(&p).expect("parses");
        assert_eq!(r.msg_type, ConnMgrType::Ack);
        assert_eq!((r.conn_ack, r.adv_win), (37, 512));
        assert_eq!((r.orig_port, r.dest_port), (0xede4_7623, 0x04b3_59c5));
        assert!(!r.nagle_ack());
        assert_eq!(r.base.common.bcast_ack, 1);
        assert_eq!(emit_a5!(r), b);
    }
}
