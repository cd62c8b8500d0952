//! [`MessageRepr`]: any TIPC message, dispatched on its user; [`Frame`]: what a bearer carries
//! (a plain message or an encrypted packet).

use super::bundler::BundleRepr;
use super::common::{self, User};
use super::conn_mgr::ConnMgrRepr;
use super::crypto::{CryptoRepr, EncryptedRepr};
use super::data::DataRepr;
use super::discovery::{DiscType, DiscoveryRepr};
use super::fragmenter::{FragType, FragmentRepr};
use super::group_proto::{GroupProtoRepr, GroupProtoType};
use super::link_proto::{LinkProtoRepr, LinkProtoType};
use super::name_distr::{NameDistrRepr, NameDistrType};
use super::tunnel::{TunnelRepr, TunnelType};
use super::{Error, Packet, Result, need};
use crate::wire::conn_mgr::ConnMgrType;
use crate::wire::crypto::CryptoType;

/// A message whose user or type this implementation does not know: header and payload kept as
/// bytes, re-emitted unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawRepr<'a> {
    /// Header bytes (including word 0 with its size field).
    pub header: &'a [u8],
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl<'a> RawRepr<'a> {
    /// Takes the header and payload of a checked packet.
    pub fn parse(p: &Packet<&'a [u8]>) -> Self {
        Self {
            header: p.header_ref(),
            payload: p.payload_ref(),
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.header.len() + self.payload.len()
    }

    /// Copies the bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        need("emit buffer", len, p.as_bytes().len())?;
        let b = p.bytes_mut();
        b[..self.header.len()].copy_from_slice(self.header);
        b[self.header.len()..len].copy_from_slice(self.payload);
        Ok(())
    }
}

/// Any TIPC message, parsed according to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageRepr<'a> {
    /// Users 0–3.
    Data(DataRepr<'a>),
    /// User 5 (built like a LINK_PROTOCOL STATE).
    BcastProto(LinkProtoRepr<'a>),
    /// User 6.
    Bundle(BundleRepr<'a>),
    /// User 7.
    LinkProto(LinkProtoRepr<'a>),
    /// User 8.
    ConnMgr(ConnMgrRepr<'a>),
    /// User 9.
    GroupProto(GroupProtoRepr<'a>),
    /// User 10.
    Tunnel(TunnelRepr<'a>),
    /// User 11.
    NameDistr(NameDistrRepr<'a>),
    /// User 12.
    Fragment(FragmentRepr<'a>),
    /// User 13.
    Discovery(DiscoveryRepr<'a>),
    /// User 14.
    Crypto(CryptoRepr<'a>),
    /// Unknown user, or unknown type of a known user.
    Raw(RawRepr<'a>),
}

impl<'a> MessageRepr<'a> {
    /// Parses a checked packet. Unknown users and types become [`MessageRepr::Raw`].
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        common::check_version(p)?;
        let t = p.msg_type_raw();
        let user = User::from(p.user_raw());
        let known = |k: bool| k;
        Ok(match user {
            User::Low | User::Medium | User::High | User::Critical => {
                Self::Data(DataRepr::parse(p)?)
            }
            User::BcastProtocol if known(t == 0) => Self::BcastProto(LinkProtoRepr::parse(p)?),
            User::MsgBundler if known(t == 0) => Self::Bundle(BundleRepr::parse(p)?),
            User::LinkProtocol if !matches!(LinkProtoType::from(t), LinkProtoType::Unknown(_)) => {
                Self::LinkProto(LinkProtoRepr::parse(p)?)
            }
            User::ConnManager if !matches!(ConnMgrType::from(t), ConnMgrType::Unknown(_)) => {
                Self::ConnMgr(ConnMgrRepr::parse(p)?)
            }
            User::GroupProtocol
                if !matches!(GroupProtoType::from(t), GroupProtoType::Unknown(_)) =>
            {
                Self::GroupProto(GroupProtoRepr::parse(p)?)
            }
            User::TunnelProtocol if !matches!(TunnelType::from(t), TunnelType::Unknown(_)) => {
                Self::Tunnel(TunnelRepr::parse(p)?)
            }
            User::NameDistributor
                if !matches!(NameDistrType::from(t), NameDistrType::Unknown(_)) =>
            {
                Self::NameDistr(NameDistrRepr::parse(p)?)
            }
            User::MsgFragmenter if !matches!(FragType::from(t), FragType::Unknown(_)) => {
                Self::Fragment(FragmentRepr::parse(p)?)
            }
            User::LinkConfig if !matches!(DiscType::from(t), DiscType::Unknown(_)) => {
                Self::Discovery(DiscoveryRepr::parse(p)?)
            }
            User::MsgCrypto if !matches!(CryptoType::from(t), CryptoType::Unknown(_)) => {
                Self::Crypto(CryptoRepr::parse(p)?)
            }
            _ => Self::Raw(RawRepr::parse(p)),
        })
    }

    /// The message user.
    pub fn user(&self) -> User {
        match self {
            Self::Data(d) => d.importance.user(),
            Self::BcastProto(_) => User::BcastProtocol,
            Self::Bundle(_) => User::MsgBundler,
            Self::LinkProto(_) => User::LinkProtocol,
            Self::ConnMgr(_) => User::ConnManager,
            Self::GroupProto(_) => User::GroupProtocol,
            Self::Tunnel(_) => User::TunnelProtocol,
            Self::NameDistr(_) => User::NameDistributor,
            Self::Fragment(_) => User::MsgFragmenter,
            Self::Discovery(_) => User::LinkConfig,
            Self::Crypto(_) => User::MsgCrypto,
            Self::Raw(r) => User::from(r.header.first().map_or(0, |b| (b >> 1) & 0xf)),
        }
    }

    /// The raw message type.
    pub fn msg_type(&self) -> u8 {
        match self {
            Self::Data(d) => d.msg_type.into(),
            Self::BcastProto(l) | Self::LinkProto(l) => l.msg_type.into(),
            Self::Bundle(b) => b.msg_type,
            Self::ConnMgr(c) => c.msg_type.into(),
            Self::GroupProto(g) => g.msg_type.into(),
            Self::Tunnel(t) => t.msg_type.into(),
            Self::NameDistr(n) => n.msg_type.into(),
            Self::Fragment(f) => f.msg_type.into(),
            Self::Discovery(d) => d.msg_type.into(),
            Self::Crypto(c) => c.msg_type.into(),
            Self::Raw(r) => r.header.get(4).map_or(0, |b| b >> 5),
        }
    }

    /// The spec's name of the message type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Data(d) => d.msg_type.name(),
            Self::BcastProto(_) => "STATE_MSG",
            Self::LinkProto(l) => l.msg_type.name(),
            Self::Bundle(_) => "BUNDLE",
            Self::ConnMgr(c) => c.msg_type.name(),
            Self::GroupProto(g) => g.msg_type.name(),
            Self::Tunnel(t) => t.msg_type.name(),
            Self::NameDistr(n) => n.msg_type.name(),
            Self::Fragment(f) => f.msg_type.name(),
            Self::Discovery(d) => d.msg_type.name(),
            Self::Crypto(c) => c.msg_type.name(),
            Self::Raw(_) => "UNKNOWN",
        }
    }

    /// Bytes `emit` writes (the message's size field).
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::Data(r) => r.buffer_len(),
            Self::BcastProto(r) | Self::LinkProto(r) => r.buffer_len(),
            Self::Bundle(r) => r.buffer_len(),
            Self::ConnMgr(r) => r.buffer_len(),
            Self::GroupProto(r) => r.buffer_len(),
            Self::Tunnel(r) => r.buffer_len(),
            Self::NameDistr(r) => r.buffer_len(),
            Self::Fragment(r) => r.buffer_len(),
            Self::Discovery(r) => r.buffer_len(),
            Self::Crypto(r) => r.buffer_len(),
            Self::Raw(r) => r.buffer_len(),
        }
    }

    /// Writes the message into the first [`Self::buffer_len`] bytes of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        match self {
            Self::Data(r) => r.emit(p),
            Self::BcastProto(r) => r.emit_as(User::BcastProtocol, p),
            Self::LinkProto(r) => r.emit(p),
            Self::Bundle(r) => r.emit(p),
            Self::ConnMgr(r) => r.emit(p),
            Self::GroupProto(r) => r.emit(p),
            Self::Tunnel(r) => r.emit(p),
            Self::NameDistr(r) => r.emit(p),
            Self::Fragment(r) => r.emit(p),
            Self::Discovery(r) => r.emit(p),
            Self::Crypto(r) => r.emit(p),
            Self::Raw(r) => r.emit(p),
        }
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut v[..]))?;
        Ok(v)
    }

    /// The messages carried inside this one: each message of a bundle, the packet of a tunnel
    /// message, and the original header at the start of a FIRST_FRAGMENT.
    pub fn nested(&self) -> Vec<Nested<'a>> {
        match self {
            Self::Bundle(b) => b
                .messages()
                .map(|r| match r {
                    Ok((_, p)) => Nested::Message(p),
                    Err(e) => Nested::Malformed(e),
                })
                .collect(),
            Self::Tunnel(t) => match t.inner() {
                Some(Ok(p)) => vec![Nested::Message(p)],
                Some(Err(e)) => vec![Nested::Malformed(e)],
                None => Vec::new(),
            },
            Self::Fragment(f) => match f.inner_header() {
                Some(Ok(p)) => vec![Nested::HeaderOnly(p)],
                Some(Err(e)) => vec![Nested::Malformed(e)],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// A message nested in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested<'a> {
    /// A whole message.
    Message(Packet<&'a [u8]>),
    /// Only the header of a message (FIRST_FRAGMENT): its size describes bytes not present.
    HeaderOnly(Packet<&'a [u8]>),
    /// Bytes that should have held a message but did not.
    Malformed(Error),
}

/// What a bearer carries: a plain TIPC message or an encrypted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frame<'a> {
    /// A plain (version 2) message.
    Plain(MessageRepr<'a>),
    /// An encrypted (version 7) packet.
    Encrypted(EncryptedRepr<'a>),
}

impl<'a> Frame<'a> {
    /// Parses the bytes a bearer delivered. Bytes after the message's size (Ethernet padding)
    /// are ignored for plain messages.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if EncryptedRepr::is_encrypted(bytes) {
            return Ok(Self::Encrypted(EncryptedRepr::parse(bytes)?));
        }
        let p = Packet::new_checked(bytes)?;
        Ok(Self::Plain(MessageRepr::parse(&p)?))
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::Plain(m) => m.buffer_len(),
            Self::Encrypted(e) => e.buffer_len(),
        }
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        match self {
            Self::Plain(m) => m.to_vec(),
            Self::Encrypted(e) => {
                let mut v = vec![0u8; e.buffer_len()];
                e.emit(&mut v)?;
                Ok(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{eth_fixture, fixture_dir, hex};

    #[test]
    fn every_captured_ethernet_frame_round_trips() {
        let mut files = 0;
        let mut messages = 0;
        let mut nested = 0;
        for entry in std::fs::read_dir(fixture_dir()).expect("fixtures") {
            let name = entry.expect("entry").file_name();
            let name = name.to_string_lossy().into_owned();
            if !name.starts_with("eth-") {
                continue;
            }
            files += 1;
            for (n, bytes) in eth_fixture(&name) {
                let frame =
                    Frame::parse(&bytes).unwrap_or_else(|e| panic!("{name} frame {n}: {e}"));
                let out = frame.to_vec().expect("emit");
                let p = Packet::new_checked(&bytes[..]).expect("checked");
                assert_eq!(out, p.message(), "{name} frame {n} re-emits exactly");
                messages += 1;
                if let Frame::Plain(m) = frame {
                    for inner in m.nested() {
                        match inner {
                            Nested::Message(ip) => {
                                let im = MessageRepr::parse(&ip).expect("inner parses");
                                assert_eq!(im.to_vec().expect("emit"), ip.message());
                                nested += 1;
                            }
                            Nested::HeaderOnly(ip) => {
                                MessageRepr::parse(&ip).expect("inner header parses");
                                nested += 1;
                            }
                            Nested::Malformed(e) => panic!("{name} frame {n}: inner {e}"),
                        }
                    }
                }
            }
        }
        assert_eq!(files, 10);
        assert!(messages > 1200, "{messages}");
        assert!(nested > 300, "{nested}");
    }

    #[test]
    fn unknown_user_and_type_survive() {
        // User 15 (never on the wire) and LINK_PROTOCOL type 5.
        for head in ["5f400028", "4f400028"] {
            let mut b = hex(head);
            b.extend_from_slice(&hex("a0000000 01020304 0f115c6f 00000001 abe14000"));
            b.extend_from_slice(&hex("0f115c6f 0f115f6f 00000000 00000007"));
            let f = Frame::parse(&b).expect("parses");
            assert!(matches!(f, Frame::Plain(MessageRepr::Raw(_))));
            assert_eq!(f.to_vec().expect("emit"), b);
        }
    }

    #[test]
    fn wrong_version_is_named() {
        let mut b = hex("4f40002800000000000000010f115c6f00000001abe140000f115c6f0f115f6f");
        b.extend_from_slice(&[0; 8]);
        b[0] = 0x2f; // version 1
        assert_eq!(
            Frame::parse(&b),
            Err(Error::Invalid {
                field: "version",
                value: 1
            })
        );
    }
}
