//! LINK_CONFIG (user 13): neighbour discovery and the address trial (spec §1.4.3, §3.2, §3.4,
//! §4).
//!
//! The 60-byte header has no originating/destination node words: words 5–12 hold the sender's
//! media address, and the 128-bit node id follows the header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::common::{self, Flags, User};
use super::field::Field;
use super::{Error, MAX_H_SIZE, Packet, Result, be16, need, put16};
use crate::addr::{NODE_ID_LEN, NodeId};

/// Discovery field positions (spec §1.4.3).
pub(crate) mod field {
    use super::Field;

    pub(crate) const CAPABILITIES: Field = Field::new(1, 15, 13);
    pub(crate) const SIGNATURE: Field = Field::new(1, 0, 16);
    pub(crate) const DEST_DOMAIN: Field = Field::word(2);
    pub(crate) const PREV_NODE: Field = Field::word(3);
    pub(crate) const NET_ID: Field = Field::word(4);
    pub(crate) const MEDIA_OFFSET: usize = 20;
    pub(crate) const PEER_NET_HASH: Field = Field::word(13);
    pub(crate) const SUGGESTED: Field = Field::word(14);
}

enum_with_unknown! {
    /// LINK_CONFIG message type.
    pub enum DiscType(u8) {
        /// Discovery request, sent to the bearer's broadcast address.
        Req = 0 => "DSC_REQ_MSG",
        /// Unicast response to a request.
        Resp = 1 => "DSC_RESP_MSG",
        /// Request sent during the address trial.
        Trial = 2 => "DSC_TRIAL_MSG",
        /// Objection to a trial address, with a suggestion.
        TrialFail = 3 => "DSC_TRIAL_FAIL_MSG",
    }
}

/// Node capability bits (discovery `w1[15:27]`, spec §3.4).
pub mod caps {
    /// Connection setup uses the SYN bit.
    pub const SYN_BIT: u16 = 0x001;
    /// Broadcast receive state starts from the BCAST_PROTOCOL init message.
    pub const BCAST_SYNCH: u16 = 0x002;
    /// Broadcast NACKs travel in unicast STATE messages.
    pub const BCAST_STATE_NACK: u16 = 0x004;
    /// Connection flow control counts 1 KiB blocks.
    pub const BLOCK_FLOWCTL: u16 = 0x008;
    /// Can receive replicast multicast.
    pub const BCAST_RCAST: u16 = 0x010;
    /// Discovery carries the 128-bit node id.
    pub const NODE_ID128: u16 = 0x020;
    /// STATE messages carry their own sequence counter.
    pub const LINK_PROTO_SEQNO: u16 = 0x040;
    /// Multicast method switching with SYN twins.
    pub const MCAST_RBCTL: u16 = 0x080;
    /// STATE carries gap-ack blocks.
    pub const GAP_ACK_BLOCK: u16 = 0x100;
    /// Single dummy SYNCH message; tunnel fragmentation.
    pub const TUNNEL_ENHANCED: u16 = 0x200;
    /// Stream Nagle with ack-required / nagle-ack.
    pub const NAGLE: u16 = 0x400;
    /// Name-table updates on the broadcast link.
    pub const NAMED_BCAST: u16 = 0x800;
    /// What a current Linux kernel advertises.
    pub const LINUX_ALL: u16 = 0xfff;

    /// Names of the bits, lowest first.
    pub const NAMES: [&str; 12] = [
        "SYN_BIT",
        "BCAST_SYNCH",
        "BCAST_STATE_NACK",
        "BLOCK_FLOWCTL",
        "BCAST_RCAST",
        "NODE_ID128",
        "LINK_PROTO_SEQNO",
        "MCAST_RBCTL",
        "GAP_ACK_BLOCK",
        "TUNNEL_ENHANCED",
        "NAGLE",
        "NAMED_BCAST",
    ];
}

/// Length of the media address block in words 5–12.
pub const MEDIA_ADDR_LEN: usize = 32;
/// Media type byte values.
pub mod media_type {
    /// Ethernet.
    pub const ETH: u8 = 1;
    /// InfiniBand.
    pub const IB: u8 = 2;
    /// UDP over IPv4 or IPv6.
    pub const UDP: u8 = 3;
}
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// The sender's media address as carried in discovery (spec §1.4.3). The receiver sends every
/// later unicast packet to this address, not to the frame's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaAddr {
    /// Ethernet MAC.
    Eth([u8; 6]),
    /// InfiniBand 20-byte hardware address.
    Ib([u8; 20]),
    /// UDP/IP endpoint.
    Udp(SocketAddr),
    /// A block that is not in the canonical form of a known media (unknown type byte, or
    /// non-zero bytes where zeros belong); kept so it re-emits unchanged.
    Raw([u8; MEDIA_ADDR_LEN]),
}

impl MediaAddr {
    /// Decodes a 32-byte block. Never fails: anything non-canonical becomes [`MediaAddr::Raw`].
    pub fn parse(block: &[u8; MEDIA_ADDR_LEN]) -> Self {
        let addr = Self::decode(block);
        match addr {
            Some(a) if a.encode() == *block => a,
            _ => Self::Raw(*block),
        }
    }

    fn decode(b: &[u8; MEDIA_ADDR_LEN]) -> Option<Self> {
        match b[3] {
            media_type::ETH => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&b[4..10]);
                Some(Self::Eth(mac))
            }
            media_type::IB => {
                let mut hw = [0u8; 20];
                hw.copy_from_slice(&b[4..24]);
                Some(Self::Ib(hw))
            }
            media_type::UDP => {
                let port = be16(b, 6);
                match be16(b, 4) {
                    ETH_P_IP => {
                        let ip = Ipv4Addr::new(b[8], b[9], b[10], b[11]);
                        Some(Self::Udp(SocketAddr::new(IpAddr::V4(ip), port)))
                    }
                    ETH_P_IPV6 => {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&b[8..24]);
                        Some(Self::Udp(SocketAddr::new(
                            IpAddr::V6(Ipv6Addr::from(o)),
                            port,
                        )))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Encodes the 32-byte block.
    pub fn encode(&self) -> [u8; MEDIA_ADDR_LEN] {
        let mut b = [0u8; MEDIA_ADDR_LEN];
        match self {
            Self::Eth(mac) => {
                b[3] = media_type::ETH;
                b[4..10].copy_from_slice(mac);
            }
            Self::Ib(hw) => {
                b[3] = media_type::IB;
                b[4..24].copy_from_slice(hw);
            }
            Self::Udp(sa) => {
                b[3] = media_type::UDP;
                put16(&mut b, 6, sa.port());
                match sa.ip() {
                    IpAddr::V4(ip) => {
                        put16(&mut b, 4, ETH_P_IP);
                        b[8..12].copy_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        put16(&mut b, 4, ETH_P_IPV6);
                        b[8..24].copy_from_slice(&ip.octets());
                    }
                }
            }
            Self::Raw(raw) => b = *raw,
        }
        b
    }

    /// Whether the address is a broadcast/multicast one, which the kernel rejects as corrupt.
    pub fn is_broadcast(&self) -> bool {
        match self {
            Self::Eth(mac) => *mac == [0xff; 6],
            Self::Udp(sa) => sa.ip().is_multicast(),
            _ => false,
        }
    }
}

/// A parsed LINK_CONFIG message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiscoveryRepr<'a> {
    /// Word-0 flags (N is set on every discovery message).
    pub flags: Flags,
    /// Message type.
    pub msg_type: DiscType,
    /// Capability bits (13 bits, see [`caps`]).
    pub capabilities: u16,
    /// Node signature, as the 16 bits of `w1[0:15]`. Bit 15 is shared with capability bit 0:
    /// the kernel writes the signature first and the capabilities over it.
    pub signature: u16,
    /// Destination domain (REQ), the requester's address (RESP), the contested address
    /// (TRIAL_FAIL).
    pub dest_domain: u32,
    /// The sender's address, or its trial address during the trial.
    pub prev_node: u32,
    /// Network (cluster) id.
    pub net_id: u32,
    /// The sender's media address.
    pub media: MediaAddr,
    /// Namespace hash (any value is safe to send, spec §1.4.3).
    pub peer_net_hash: u32,
    /// Suggested address (TRIAL_FAIL only).
    pub suggested_addr: u32,
    /// The 128-bit node id, when the payload carries it.
    pub node_id: Option<NodeId>,
    /// Payload bytes after the node id (none from Linux); without a node id, the whole payload,
    /// which is then shorter than a node id.
    pub extra_payload: &'a [u8],
}

impl<'a> DiscoveryRepr<'a> {
    /// Parses a LINK_CONFIG message.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        common::check_version(p)?;
        common::check_hsize(p, MAX_H_SIZE)?;
        let header = p.header_ref();
        let mut block = [0u8; MEDIA_ADDR_LEN];
        block.copy_from_slice(
            header
                .get(field::MEDIA_OFFSET..field::MEDIA_OFFSET + MEDIA_ADDR_LEN)
                .ok_or(Error::Truncated {
                    what: "media address",
                    needed: field::MEDIA_OFFSET + MEDIA_ADDR_LEN,
                    available: header.len(),
                })?,
        );
        let payload = p.payload_ref();
        let (node_id, extra_payload) = match payload.get(..NODE_ID_LEN) {
            Some(id) => {
                let mut b = [0u8; NODE_ID_LEN];
                b.copy_from_slice(id);
                (Some(NodeId(b)), &payload[NODE_ID_LEN..])
            }
            None => (None, payload),
        };
        Ok(Self {
            flags: Flags::parse(p),
            msg_type: DiscType::from(p.msg_type_raw()),
            capabilities: p.get(field::CAPABILITIES) as u16,
            signature: p.get(field::SIGNATURE) as u16,
            dest_domain: p.get(field::DEST_DOMAIN),
            prev_node: p.get(field::PREV_NODE),
            net_id: p.get(field::NET_ID),
            media: MediaAddr::parse(&block),
            peer_net_hash: p.get(field::PEER_NET_HASH),
            suggested_addr: p.get(field::SUGGESTED),
            node_id,
            extra_payload,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        MAX_H_SIZE + self.node_id.map_or(0, |_| NODE_ID_LEN) + self.extra_payload.len()
    }

    /// Writes the message.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        need("emit buffer", len, p.as_bytes().len())?;
        // Without a node id the payload must be too short to be read back as one (that is how
        // `parse` leaves a payload of 1–15 bytes), or the bytes would not parse to this repr.
        if self.node_id.is_none() && self.extra_payload.len() >= NODE_ID_LEN {
            return Err(Error::Invalid {
                field: "node_id",
                value: 0,
            });
        }
        if len - MAX_H_SIZE > super::MAX_USER_MSG_SIZE {
            return Err(Error::Invalid {
                field: "size",
                value: len as u32,
            });
        }
        common::emit_start(
            p,
            User::LinkConfig.into(),
            self.msg_type.into(),
            MAX_H_SIZE,
            len,
        );
        self.flags.emit(p);
        // The kernel's write order: signature, then capabilities over bit 15.
        p.set(field::SIGNATURE, u32::from(self.signature));
        p.set(field::CAPABILITIES, u32::from(self.capabilities));
        p.set(field::DEST_DOMAIN, self.dest_domain);
        p.set(field::PREV_NODE, self.prev_node);
        p.set(field::NET_ID, self.net_id);
        p.set(field::PEER_NET_HASH, self.peer_net_hash);
        p.set(field::SUGGESTED, self.suggested_addr);
        let b = p.bytes_mut();
        b[field::MEDIA_OFFSET..field::MEDIA_OFFSET + MEDIA_ADDR_LEN]
            .copy_from_slice(&self.media.encode());
        let mut off = MAX_H_SIZE;
        if let Some(id) = self.node_id {
            b[off..off + NODE_ID_LEN].copy_from_slice(&id.0);
            off += NODE_ID_LEN;
        }
        b[off..off + self.extra_payload.len()].copy_from_slice(self.extra_payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::testutil::hex;

    /// `eth-02-link-setup` frame 3: DSC_REQ from ktnode1.
    const REQ: &str = "5bf0004c07ffda57000000000f115f6f00001267000000015254001801010000\
        0000000000000000000000000000000000000000da235a57000000006b746e6f\
        646531000000000000000000";

    #[test]
    fn deconstruct_req() {
        let b = hex(REQ);
        let p = Packet::new_checked(&b[..]).expect("valid");
        let r = DiscoveryRepr::parse(&p).expect("parses");
        assert_eq!(r.msg_type, DiscType::Req);
        assert!(r.flags.non_seq);
        assert_eq!(r.capabilities, caps::LINUX_ALL);
        assert_eq!(r.signature, 0xda57);
        assert_eq!(r.prev_node, 0x0f11_5f6f);
        assert_eq!(r.net_id, 4711);
        assert_eq!(r.media, MediaAddr::Eth([0x52, 0x54, 0, 0x18, 1, 1]));
        assert_eq!(r.peer_net_hash, 0xda23_5a57);
        assert_eq!(r.node_id.map(|id| id.to_string()), Some("ktnode1".into()));
        assert_eq!(r.node_id.map(|id| id.hash()), Some(r.prev_node));
        assert_eq!(emit_a5!(r), b);
    }

    #[test]
    fn signature_bit_15_is_overwritten_by_capability_bit_0() {
        let b = hex(REQ);
        let p = Packet::new_checked(&b[..]).expect("valid");
        let mut r = DiscoveryRepr::parse(&p).expect("parses");
        r.signature = 0x5a57; // bit 15 clear; SYN_BIT capability sets it on the wire
        let out = emit_a5!(r);
        assert_eq!(&out[4..8], &hex("07ffda57")[..]);
    }

    #[test]
    fn udp_media_addresses_round_trip() {
        for sa in ["198.18.1.11:6118", "[fd00:198:18::1]:6118"] {
            let m = MediaAddr::Udp(sa.parse().expect("addr"));
            assert_eq!(MediaAddr::parse(&m.encode()), m);
        }
        let v4 = MediaAddr::Udp("198.18.1.11:6118".parse().expect("addr")).encode();
        assert_eq!(&v4[..12], &hex("00000003 080017e6 c612010b")[..]);
        let mut junk = v4;
        junk[30] = 1;
        assert_eq!(MediaAddr::parse(&junk), MediaAddr::Raw(junk));
        assert!(MediaAddr::Eth([0xff; 6]).is_broadcast());
        assert!(MediaAddr::Udp("228.0.18.103:6118".parse().expect("addr")).is_broadcast());
    }

    #[test]
    fn short_header_is_refused() {
        let mut b = hex(REQ);
        b[1] = 0xd0; // hsize 14 words
        let p = Packet::new_checked(&b[..]).expect("lengths ok");
        assert_eq!(
            DiscoveryRepr::parse(&p),
            Err(Error::Invalid {
                field: "hsize",
                value: 56
            })
        );
    }
}
