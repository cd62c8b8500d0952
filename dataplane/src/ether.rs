//! Ethernet framing of TIPC (spec §4.1): ethertype 0x88CA, the TIPC header right after the
//! 14-byte Ethernet header, discovery and broadcast-link packets to ff:ff:ff:ff:ff:ff.
//!
//! Why a module of its own: the AF_PACKET bearer, the pcap tap and the coming AF_XDP bearer all
//! build and read the same 14 bytes; this is the one place that knows them.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ethertype of TIPC (`ETH_P_TIPC`).
pub const ETH_P_TIPC: u16 = 0x88CA;
/// Ethertype of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// Length of the Ethernet header (no VLAN tag).
pub const ETH_HLEN: usize = 14;
/// The Ethernet broadcast address, where TIPC sends discovery and broadcast-link packets.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// An Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthHeader {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// Ethertype (or, below 0x0600, an 802.3 length).
    pub ethertype: u16,
}

impl EthHeader {
    /// Reads the header at the start of a frame; `None` if the frame is shorter than
    /// [`ETH_HLEN`].
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let h = frame.get(..ETH_HLEN)?;
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&h[0..6]);
        src.copy_from_slice(&h[6..12]);
        Some(Self {
            dst,
            src,
            ethertype: u16::from_be_bytes([h[12], h[13]]),
        })
    }

    /// The 14 header bytes.
    pub fn to_bytes(&self) -> [u8; ETH_HLEN] {
        let mut b = [0u8; ETH_HLEN];
        b[0..6].copy_from_slice(&self.dst);
        b[6..12].copy_from_slice(&self.src);
        b[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        b
    }
}

/// Whether a MAC is a group (broadcast or multicast) address: the I/G bit of the first byte.
pub const fn is_group_mac(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

/// The Ethernet address an IPv4 multicast group maps to (RFC 1112: 01:00:5e + low 23 bits).
pub fn ipv4_multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// The Ethernet address an IPv6 multicast group maps to (RFC 2464: 33:33 + low 32 bits).
pub fn ipv6_multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = EthHeader {
            dst: BROADCAST_MAC,
            src: [0x52, 0x54, 0, 0x18, 1, 1],
            ethertype: ETH_P_TIPC,
        };
        let b = h.to_bytes();
        assert_eq!(
            &b[..],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x18, 1, 1, 0x88, 0xca
            ]
        );
        assert_eq!(EthHeader::parse(&b), Some(h));
        assert_eq!(EthHeader::parse(&b[..13]), None);
    }

    #[test]
    fn multicast_macs() {
        assert!(is_group_mac(&BROADCAST_MAC));
        assert!(!is_group_mac(&[0x52, 0x54, 0, 0, 0, 1]));
        assert_eq!(
            ipv4_multicast_mac(Ipv4Addr::new(228, 0, 18, 103)),
            [1, 0, 0x5e, 0, 18, 103]
        );
        assert_eq!(
            ipv4_multicast_mac(Ipv4Addr::new(239, 200, 1, 2)),
            [1, 0, 0x5e, 0x48, 1, 2]
        );
        let g: Ipv6Addr = "ff02::4711".parse().expect("addr");
        assert_eq!(ipv6_multicast_mac(g), [0x33, 0x33, 0, 0, 0x47, 0x11]);
    }
}
