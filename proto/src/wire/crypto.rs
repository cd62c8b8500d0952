//! Encryption: the MSG_CRYPTO key-distribution message (user 14, spec §1.4.11) and the
//! encryption header that precedes an encrypted packet (version bits = 7, spec §14).
//!
//! utipc recognises and exposes both; it does not decrypt (a node with no TX key interoperates
//! only with nodes that have none either).

use super::common::{Internal, User};
use super::field::Field;
use super::{ENCRYPTED_VERSION, Error, INT_H_SIZE, Packet, Result, be32, need, put32};
use crate::addr::{NODE_ID_LEN, NodeId};

/// Crypto field positions.
pub(crate) mod field {
    use super::Field;

    pub(crate) const KEY_GEN: Field = Field::new(4, 16, 16);
    pub(crate) const KEY_MODE: Field = Field::new(4, 0, 4);
}

enum_with_unknown! {
    /// MSG_CRYPTO message type.
    pub enum CryptoType(u8) {
        /// A session key being distributed.
        KeyDistr = 0 => "KEY_DISTR_MSG",
    }
}

/// Length of the NUL-padded algorithm name in a distributed key.
pub const ALG_NAME_LEN: usize = 32;

/// A parsed MSG_CRYPTO message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoRepr<'a> {
    /// Shared internal-header part; the payload is a `tipc_aead_key` ([`AeadKey`]).
    pub base: Internal<'a>,
    /// Message type.
    pub msg_type: CryptoType,
    /// Key generation (`w4[16:31]`).
    pub key_gen: u16,
    /// Key mode (`w4[0:3]`): 1 cluster key, 2 per-node key.
    pub key_mode: u8,
}

impl<'a> CryptoRepr<'a> {
    /// Parses a MSG_CRYPTO message.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        Ok(Self {
            base: Internal::parse(p, INT_H_SIZE)?,
            msg_type: CryptoType::from(p.msg_type_raw()),
            key_gen: p.get(field::KEY_GEN) as u16,
            key_mode: p.get(field::KEY_MODE) as u8,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.base.buffer_len(INT_H_SIZE)
    }

    /// Writes the message.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.base
            .emit(p, User::MsgCrypto, self.msg_type.into(), INT_H_SIZE)?;
        p.set(field::KEY_GEN, u32::from(self.key_gen));
        p.set(field::KEY_MODE, u32::from(self.key_mode));
        Ok(())
    }
}

/// A distributed key: the payload of KEY_DISTR_MSG (`struct tipc_aead_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AeadKey<'a> {
    /// Algorithm name, NUL-padded ("gcm(aes)").
    pub alg_name: [u8; ALG_NAME_LEN],
    /// Key bytes followed by the 4-byte salt.
    pub key: &'a [u8],
}

impl<'a> AeadKey<'a> {
    /// Parses the payload of a KEY_DISTR_MSG.
    pub fn parse(payload: &'a [u8]) -> Result<Self> {
        need("aead key", ALG_NAME_LEN + 4, payload.len())?;
        let keylen = be32(payload, ALG_NAME_LEN) as usize;
        let key = payload
            .get(ALG_NAME_LEN + 4..ALG_NAME_LEN + 4 + keylen)
            .ok_or(Error::Invalid {
                field: "aead_key.keylen",
                value: keylen as u32,
            })?;
        let mut alg_name = [0u8; ALG_NAME_LEN];
        alg_name.copy_from_slice(&payload[..ALG_NAME_LEN]);
        Ok(Self { alg_name, key })
    }

    /// The algorithm name up to the first NUL.
    pub fn alg(&self) -> &[u8] {
        let end = self
            .alg_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(ALG_NAME_LEN);
        &self.alg_name[..end]
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        ALG_NAME_LEN + 4 + self.key.len()
    }

    /// Writes the key record into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        need("emit buffer", self.buffer_len(), buf.len())?;
        buf[..ALG_NAME_LEN].copy_from_slice(&self.alg_name);
        put32(buf, ALG_NAME_LEN, self.key.len() as u32);
        buf[ALG_NAME_LEN + 4..self.buffer_len()].copy_from_slice(self.key);
        Ok(())
    }
}

/// Length of the encryption header, and of its LINK_CONFIG form that carries the node id.
pub const EHDR_LEN: usize = 16;
/// Length of the encryption header of an encrypted discovery message.
pub const EHDR_CFG_LEN: usize = 28;
/// Length of the GCM tag that ends an encrypted packet.
pub const GCM_TAG_LEN: usize = 16;

/// Who sent an encrypted packet, as its encryption header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EhdrSender {
    /// The sender's node address (every packet but discovery).
    Addr(u32),
    /// The sender's 128-bit id (encrypted LINK_CONFIG).
    NodeId(NodeId),
}

/// The encryption header of an encrypted packet, and the encrypted rest (ciphertext + tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncryptedRepr<'a> {
    /// Inner user hint: 7 for a LINK_PROTOCOL STATE, 13 for LINK_CONFIG, else 0 (4 bits).
    pub user: u8,
    /// The destination node was known at encryption time.
    pub destined: bool,
    /// Key slot used (0 master, 1–3 session; 2 bits).
    pub tx_key: u8,
    /// The sender's active RX key slot for the destination's TX key (2 bits).
    pub rx_key_active: u8,
    /// Keepalive, copied from an inner STATE.
    pub keepalive: bool,
    /// The sender holds a master key.
    pub master_key: bool,
    /// The sender has no RX key for the destination.
    pub rx_nokey: bool,
    /// Bit 0 of byte 1 and bytes 2–3: reserved (zero from Linux; kept for exactness).
    pub reserved: u32,
    /// 64-bit sequence number (part of the nonce).
    pub seqno: u64,
    /// The sender.
    pub sender: EhdrSender,
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: &'a [u8],
}

impl<'a> EncryptedRepr<'a> {
    /// Whether these bytes start an encrypted packet (version bits = 7).
    pub fn is_encrypted(bytes: &[u8]) -> bool {
        bytes.first().is_some_and(|b| b >> 5 == ENCRYPTED_VERSION)
    }

    /// Parses an encrypted packet.
    pub fn parse(b: &'a [u8]) -> Result<Self> {
        need("encryption header", EHDR_LEN, b.len())?;
        let version = b[0] >> 5;
        if version != ENCRYPTED_VERSION {
            return Err(Error::Invalid {
                field: "ehdr.version",
                value: u32::from(version),
            });
        }
        let user = (b[0] >> 1) & 0xf;
        let (sender, hlen) = if user == u8::from(User::LinkConfig) {
            need("encryption header", EHDR_CFG_LEN, b.len())?;
            let mut id = [0u8; NODE_ID_LEN];
            id.copy_from_slice(&b[12..EHDR_CFG_LEN]);
            (EhdrSender::NodeId(NodeId(id)), EHDR_CFG_LEN)
        } else {
            (EhdrSender::Addr(be32(b, 12)), EHDR_LEN)
        };
        let ciphertext = &b[hlen..];
        need("encrypted packet", GCM_TAG_LEN, ciphertext.len())?;
        let seqno = (u64::from(be32(b, 4)) << 32) | u64::from(be32(b, 8));
        Ok(Self {
            user,
            destined: b[0] & 1 != 0,
            tx_key: b[1] >> 6,
            rx_key_active: (b[1] >> 4) & 3,
            keepalive: b[1] & 0x08 != 0,
            master_key: b[1] & 0x04 != 0,
            rx_nokey: b[1] & 0x02 != 0,
            reserved: (u32::from(b[1] & 1) << 16) | u32::from(b[2]) << 8 | u32::from(b[3]),
            seqno,
            sender,
            ciphertext,
        })
    }

    /// Header length: 28 for LINK_CONFIG, 16 otherwise.
    pub fn header_len(&self) -> usize {
        match self.sender {
            EhdrSender::NodeId(_) => EHDR_CFG_LEN,
            EhdrSender::Addr(_) => EHDR_LEN,
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.ciphertext.len()
    }

    /// Writes the header and the ciphertext into the start of `b`.
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        need("emit buffer", self.buffer_len(), b.len())?;
        let is_cfg = matches!(self.sender, EhdrSender::NodeId(_));
        if is_cfg != (self.user == u8::from(User::LinkConfig)) {
            return Err(Error::Invalid {
                field: "ehdr.user",
                value: u32::from(self.user),
            });
        }
        b[0] = (ENCRYPTED_VERSION << 5) | ((self.user & 0xf) << 1) | u8::from(self.destined);
        b[1] = ((self.tx_key & 3) << 6)
            | ((self.rx_key_active & 3) << 4)
            | (u8::from(self.keepalive) << 3)
            | (u8::from(self.master_key) << 2)
            | (u8::from(self.rx_nokey) << 1)
            | ((self.reserved >> 16) & 1) as u8;
        b[2] = (self.reserved >> 8) as u8;
        b[3] = self.reserved as u8;
        put32(b, 4, (self.seqno >> 32) as u32);
        put32(b, 8, self.seqno as u32);
        match self.sender {
            EhdrSender::Addr(a) => put32(b, 12, a),
            EhdrSender::NodeId(id) => b[12..EHDR_CFG_LEN].copy_from_slice(&id.0),
        }
        let h = self.header_len();
        b[h..h + self.ciphertext.len()].copy_from_slice(self.ciphertext);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::common::Common;
    use crate::wire::testutil::hex;

    #[test]
    fn key_distr_round_trip() {
        let mut alg_name = [0u8; ALG_NAME_LEN];
        alg_name[..8].copy_from_slice(b"gcm(aes)");
        let key = AeadKey {
            alg_name,
            key: &[7u8; 20],
        };
        let mut payload = vec![0xa5; key.buffer_len()];
        key.emit(&mut payload).expect("emit");
        assert_eq!(&payload[32..36], &[0, 0, 0, 20]);
        let r = CryptoRepr {
            base: Internal {
                common: Common::default(),
                orig_node: 1,
                dest_node: 0,
                extra_header: &[],
                payload: &payload,
            },
            msg_type: CryptoType::KeyDistr,
            key_gen: 3,
            key_mode: 1,
        };
        let b = emit_a5!(r);
        assert_eq!(&b[..4], &hex("5d400060")[..]);
        assert_eq!(&b[16..20], &hex("00030001")[..]);
        let p = Packet::new_checked(&b[..]).expect("valid");
        let back = CryptoRepr::parse(&p).expect("parses");
        assert_eq!(back, r);
        let k = AeadKey::parse(back.base.payload).expect("key");
        assert_eq!(k.alg(), b"gcm(aes)");
        assert_eq!(k.key.len(), 20);
        assert!(AeadKey::parse(&payload[..40]).is_err());
    }

    #[test]
    fn encryption_header_round_trip() {
        let ct = [0x11u8; 40];
        for sender in [
            EhdrSender::Addr(0x0f11_5f6f),
            EhdrSender::NodeId("ktnode1".parse().expect("id")),
        ] {
            let user = if matches!(sender, EhdrSender::NodeId(_)) {
                13
            } else {
                7
            };
            let e = EncryptedRepr {
                user,
                destined: true,
                tx_key: 2,
                rx_key_active: 1,
                keepalive: true,
                master_key: false,
                rx_nokey: true,
                reserved: 0,
                seqno: 0x0102_0304_0506_0708,
                sender,
                ciphertext: &ct,
            };
            let mut b = vec![0xa5; e.buffer_len()];
            e.emit(&mut b).expect("emit");
            assert!(EncryptedRepr::is_encrypted(&b));
            assert_eq!(b[0], 0xe0 | (user << 1) | 1);
            assert_eq!(b[1], 0b1001_1010);
            assert_eq!(EncryptedRepr::parse(&b), Ok(e));
        }
        assert!(EncryptedRepr::parse(&[0xe0; 20]).is_err());
    }
}
