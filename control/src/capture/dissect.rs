//! Link, IP and UDP dissection down to the TIPC bytes.
//!
//! Every function here works on untrusted bytes: lengths are checked with
//! `get`, never assumed, and anything inconsistent is reported as
//! [`Outcome::Malformed`] for the frame rather than an error for the file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::reassembly::{FragmentKey, Reassembled, Reassembler};
use super::{
    CaptureStats, Carrier, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, TIPC_ETHERTYPE, TIPC_UDP_PORT,
};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// 802.1Q customer VLAN tag.
const ETHERTYPE_8021Q: u16 = 0x8100;
/// 802.1ad service VLAN tag (the outer tag of `QinQ`).
const ETHERTYPE_8021AD: u16 = 0x88A8;
/// Pre-standard outer tag of `QinQ`, still used by some switches.
const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

/// Linux `PACKET_BROADCAST` packet type in cooked captures.
const SLL_PACKET_BROADCAST: u16 = 1;
const BROADCAST_MAC: [u8; 6] = [0xFF; 6];

/// What a frame turned out to be.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The frame yields a TIPC message.
    Tipc {
        link: Carrier,
        tipc: Vec<u8>,
        /// Taken from a frame with an inconsistent UDP length.
        salvaged: bool,
    },
    /// Well-formed, not TIPC.
    Skipped,
    /// Truncated or inconsistent headers.
    Malformed,
    /// An IP fragment now held by the reassembler.
    FragmentHeld,
}

/// Dissects one captured frame of the given link type, captured at
/// `timestamp_ns` (which ages out stale fragments).
pub(crate) fn dissect(
    link_type: u32,
    data: &[u8],
    stats: &mut CaptureStats,
    reassembler: &mut Reassembler,
    timestamp_ns: u64,
) -> Outcome {
    let mut ip = IpLayer {
        stats,
        reassembler,
        timestamp_ns,
    };
    match link_type {
        LINKTYPE_ETHERNET => ethernet(data, &mut ip),
        LINKTYPE_LINUX_SLL => linux_sll(data, &mut ip),
        LINKTYPE_LINUX_SLL2 => linux_sll2(data, &mut ip),
        LINKTYPE_RAW => match data.first().map(|byte| byte >> 4) {
            Some(4) => ip.ipv4(data),
            Some(6) => ip.ipv6(data),
            _ => Outcome::Malformed,
        },
        LINKTYPE_IPV4 => ip.ipv4(data),
        LINKTYPE_IPV6 => ip.ipv6(data),
        // The container only hands out supported link types.
        _ => Outcome::Skipped,
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = data.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn mac(data: &[u8], at: usize) -> Option<[u8; 6]> {
    data.get(at..at.checked_add(6)?)?.try_into().ok()
}

/// Ethernet II: destination, source, ethertype.
fn ethernet(data: &[u8], ip: &mut IpLayer<'_>) -> Outcome {
    let (Some(dst), Some(src), Some(ethertype)) = (mac(data, 0), mac(data, 6), be16(data, 12))
    else {
        return Outcome::Malformed;
    };
    let payload = data.get(14..).unwrap_or_default();
    after_ethertype(ethertype, payload, src, dst, ip)
}

/// Linux cooked capture v1: packet type, ARPHRD type, address length,
/// 8 address bytes (the sender's link-layer address), protocol.
fn linux_sll(data: &[u8], ip: &mut IpLayer<'_>) -> Outcome {
    let (Some(packet_type), Some(address_len), Some(address), Some(protocol)) = (
        be16(data, 0),
        be16(data, 4),
        data.get(6..14),
        be16(data, 14),
    ) else {
        return Outcome::Malformed;
    };
    let payload = data.get(16..).unwrap_or_default();
    let (src, dst) = cooked_addresses(packet_type, address_len.into(), address);
    after_ethertype(protocol, payload, src, dst, ip)
}

/// Linux cooked capture v2: protocol, reserved, interface index, ARPHRD
/// type, packet type, address length, 8 address bytes.
fn linux_sll2(data: &[u8], ip: &mut IpLayer<'_>) -> Outcome {
    let (Some(protocol), Some(&packet_type), Some(&address_len), Some(address)) =
        (be16(data, 0), data.get(10), data.get(11), data.get(12..20))
    else {
        return Outcome::Malformed;
    };
    let payload = data.get(20..).unwrap_or_default();
    let (src, dst) = cooked_addresses(packet_type.into(), address_len.into(), address);
    after_ethertype(protocol, payload, src, dst, ip)
}

/// Cooked captures record only the sender's address; the destination is
/// known only for broadcasts.
fn cooked_addresses(packet_type: u16, address_len: usize, address: &[u8]) -> ([u8; 6], [u8; 6]) {
    let src = if address_len == 6 {
        mac(address, 0).unwrap_or_default()
    } else {
        [0; 6]
    };
    let dst = if packet_type == SLL_PACKET_BROADCAST {
        BROADCAST_MAC
    } else {
        [0; 6]
    };
    (src, dst)
}

/// Everything after an ethertype (or cooked protocol field): VLAN tags, then
/// TIPC, IPv4 or IPv6.
fn after_ethertype(
    mut ethertype: u16,
    mut payload: &[u8],
    src: [u8; 6],
    dst: [u8; 6],
    ip: &mut IpLayer<'_>,
) -> Outcome {
    let mut vlans = Vec::new();
    // Each tag consumes 4 bytes, so this ends with the frame.
    while matches!(
        ethertype,
        ETHERTYPE_8021Q | ETHERTYPE_8021AD | ETHERTYPE_QINQ_LEGACY
    ) {
        let (Some(tci), Some(inner)) = (be16(payload, 0), be16(payload, 2)) else {
            return Outcome::Malformed;
        };
        vlans.push(tci & 0x0FFF);
        ethertype = inner;
        payload = payload.get(4..).unwrap_or_default();
    }
    match ethertype {
        TIPC_ETHERTYPE => Outcome::Tipc {
            link: Carrier::Ethernet { src, dst, vlans },
            tipc: payload.to_vec(),
            salvaged: false,
        },
        ETHERTYPE_IPV4 => ip.ipv4(payload),
        ETHERTYPE_IPV6 => ip.ipv6(payload),
        _ => Outcome::Skipped,
    }
}

/// The IP and UDP layers of one frame, with the state they update.
struct IpLayer<'s> {
    stats: &'s mut CaptureStats,
    reassembler: &'s mut Reassembler,
    timestamp_ns: u64,
}

impl IpLayer<'_> {
    /// IPv4: header length and total length are checked; the checksum is
    /// checked but only counted (see [`CaptureStats::ipv4_checksum_errors`]).
    fn ipv4(&mut self, packet: &[u8]) -> Outcome {
        let Some(&version_ihl) = packet.first() else {
            return Outcome::Malformed;
        };
        let header_len = usize::from(version_ihl & 0x0F) * 4;
        if version_ihl >> 4 != 4 || header_len < 20 {
            return Outcome::Malformed;
        }
        let (Some(header), Some(total_len), Some(id), Some(flags_offset), Some(&protocol)) = (
            packet.get(..header_len),
            be16(packet, 2),
            be16(packet, 4),
            be16(packet, 6),
            packet.get(9),
        ) else {
            return Outcome::Malformed;
        };
        let total_len = usize::from(total_len);
        if total_len < header_len {
            return Outcome::Malformed;
        }
        // Bytes after `total_len` are link-layer padding; fewer bytes than
        // `total_len` means the frame was cut (snap length) or is corrupt.
        let Some(payload) = packet.get(header_len..total_len) else {
            return Outcome::Malformed;
        };
        if internet_checksum(header) != 0 {
            self.stats.ipv4_checksum_errors += 1;
        }
        let (Some(src), Some(dst)) = (ipv4_addr(header, 12), ipv4_addr(header, 16)) else {
            return Outcome::Malformed;
        };
        if protocol != IPPROTO_UDP {
            return Outcome::Skipped;
        }
        let more_fragments = flags_offset & 0x2000 != 0;
        let offset = usize::from(flags_offset & 0x1FFF) * 8;
        if !more_fragments && offset == 0 {
            return udp(IpAddr::V4(src), IpAddr::V4(dst), payload, 1);
        }
        let key = FragmentKey::V4 {
            src,
            dst,
            protocol,
            id,
        };
        let result = self.reassembler.insert(
            key,
            self.timestamp_ns,
            offset,
            more_fragments,
            payload,
            protocol,
            self.stats,
        );
        match result {
            Reassembled::Held => Outcome::FragmentHeld,
            Reassembled::Rejected => Outcome::Malformed,
            Reassembled::Complete {
                data,
                fragments,
                next_header: _,
            } => udp(IpAddr::V4(src), IpAddr::V4(dst), &data, fragments),
        }
    }

    /// IPv6: the payload length is checked, extension headers are walked to
    /// the UDP header, fragments are reassembled.
    fn ipv6(&mut self, packet: &[u8]) -> Outcome {
        let (Some(&version), Some(payload_len), Some(&next_header), Some(src), Some(dst)) = (
            packet.first(),
            be16(packet, 4),
            packet.get(6),
            ipv6_addr(packet, 8),
            ipv6_addr(packet, 24),
        ) else {
            return Outcome::Malformed;
        };
        if version >> 4 != 6 {
            return Outcome::Malformed;
        }
        // A zero payload length announces a jumbogram (hop-by-hop option),
        // which no link TIPC runs over can carry.
        if payload_len == 0 {
            return Outcome::Malformed;
        }
        let Some(payload) = packet.get(40..40 + usize::from(payload_len)) else {
            return Outcome::Malformed;
        };
        match ipv6_headers(next_header, payload, true) {
            Ipv6Walk::Udp(datagram) => udp(IpAddr::V6(src), IpAddr::V6(dst), datagram, 1),
            Ipv6Walk::Skipped => Outcome::Skipped,
            Ipv6Walk::Malformed => Outcome::Malformed,
            Ipv6Walk::Fragment {
                id,
                offset,
                more,
                next_header,
                data,
            } => {
                let key = FragmentKey::V6 { src, dst, id };
                let result = self.reassembler.insert(
                    key,
                    self.timestamp_ns,
                    offset,
                    more,
                    data,
                    next_header,
                    self.stats,
                );
                match result {
                    Reassembled::Held => Outcome::FragmentHeld,
                    Reassembled::Rejected => Outcome::Malformed,
                    Reassembled::Complete {
                        data,
                        fragments,
                        next_header,
                    } => match ipv6_headers(next_header, &data, false) {
                        Ipv6Walk::Udp(datagram) => {
                            udp(IpAddr::V6(src), IpAddr::V6(dst), datagram, fragments)
                        }
                        Ipv6Walk::Skipped => Outcome::Skipped,
                        Ipv6Walk::Malformed | Ipv6Walk::Fragment { .. } => Outcome::Malformed,
                    },
                }
            }
        }
    }
}

fn ipv4_addr(data: &[u8], at: usize) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

fn ipv6_addr(data: &[u8], at: usize) -> Option<Ipv6Addr> {
    let bytes: [u8; 16] = data.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

/// The ones'-complement sum of 16-bit words used by IPv4 (RFC 1071): zero
/// over a header whose checksum field is right.
pub(crate) fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// Where the IPv6 extension-header chain leads.
#[derive(Debug)]
enum Ipv6Walk<'a> {
    /// The UDP header and what follows.
    Udp(&'a [u8]),
    /// A fragment: the fragmentable part after the Fragment header.
    Fragment {
        id: u32,
        offset: usize,
        more: bool,
        next_header: u8,
        data: &'a [u8],
    },
    /// Some other upper-layer protocol.
    Skipped,
    /// An extension header runs past the packet, or a second Fragment
    /// header.
    Malformed,
}

/// Walks IPv6 extension headers (hop-by-hop, routing, destination options,
/// authentication, fragment) starting with `next_header` over `data`.
/// `fragment_allowed` is false once a datagram has been reassembled: a
/// Fragment header inside the fragmentable part is invalid.
fn ipv6_headers(mut next_header: u8, mut data: &[u8], mut fragment_allowed: bool) -> Ipv6Walk<'_> {
    // Every header consumes at least 8 bytes, so this ends with the data.
    loop {
        match next_header {
            IPPROTO_UDP => return Ipv6Walk::Udp(data),
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                let (Some(&following), Some(&len)) = (data.first(), data.get(1)) else {
                    return Ipv6Walk::Malformed;
                };
                let header_len = if next_header == IPPROTO_AH {
                    (usize::from(len) + 2) * 4
                } else {
                    (usize::from(len) + 1) * 8
                };
                let Some(rest) = data.get(header_len..) else {
                    return Ipv6Walk::Malformed;
                };
                next_header = following;
                data = rest;
            }
            IPPROTO_FRAGMENT => {
                if !fragment_allowed {
                    return Ipv6Walk::Malformed;
                }
                let (Some(&following), Some(offset_flags), Some(id), Some(rest)) =
                    (data.first(), be16(data, 2), be32(data, 4), data.get(8..))
                else {
                    return Ipv6Walk::Malformed;
                };
                let offset = usize::from(offset_flags >> 3) * 8;
                let more = offset_flags & 1 != 0;
                if offset == 0 && !more {
                    // An atomic fragment (RFC 6946): a whole datagram.
                    fragment_allowed = false;
                    next_header = following;
                    data = rest;
                    continue;
                }
                return Ipv6Walk::Fragment {
                    id,
                    offset,
                    more,
                    next_header: following,
                    data: rest,
                };
            }
            _ => return Ipv6Walk::Skipped,
        }
    }
}

/// UDP: a datagram is TIPC when either port is 6118. The UDP length bounds
/// the payload (IP may carry padding after it); a length larger than the
/// data present is inconsistent: the data present is used and the frame is
/// counted malformed too ("salvaged").
fn udp(src: IpAddr, dst: IpAddr, datagram: &[u8], fragments: usize) -> Outcome {
    let (Some(src_port), Some(dst_port), Some(length)) =
        (be16(datagram, 0), be16(datagram, 2), be16(datagram, 4))
    else {
        return Outcome::Malformed;
    };
    if src_port != TIPC_UDP_PORT && dst_port != TIPC_UDP_PORT {
        return Outcome::Skipped;
    }
    // The checksum field completes the 8-byte header.
    if datagram.len() < 8 {
        return Outcome::Malformed;
    }
    let length = usize::from(length);
    if length < 8 {
        return Outcome::Malformed;
    }
    let salvaged = length > datagram.len();
    let end = length.min(datagram.len());
    let tipc = datagram.get(8..end).unwrap_or_default().to_vec();
    Outcome::Tipc {
        link: Carrier::Udp {
            src: SocketAddr::new(src, src_port),
            dst: SocketAddr::new(dst, dst_port),
            reassembled_from: fragments,
        },
        tipc,
        salvaged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(link_type: u32, data: &[u8]) -> (Outcome, CaptureStats) {
        let mut stats = CaptureStats::default();
        let mut reassembler = Reassembler::default();
        let outcome = dissect(link_type, data, &mut stats, &mut reassembler, 0);
        (outcome, stats)
    }

    fn ipv4_udp(payload: &[u8], src_port: u16, dst_port: u16) -> Vec<u8> {
        let mut packet = vec![
            0x45,
            0,
            0,
            0,
            0x12,
            0x34,
            0,
            0,
            64,
            IPPROTO_UDP,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        let total = u16::try_from(20 + 8 + payload.len()).unwrap_or(u16::MAX);
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        let checksum = internet_checksum(&packet);
        packet[10..12].copy_from_slice(&checksum.to_be_bytes());
        packet.extend_from_slice(&src_port.to_be_bytes());
        packet.extend_from_slice(&dst_port.to_be_bytes());
        packet.extend_from_slice(&(total - 20).to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(payload);
        packet
    }

    #[test]
    fn checksum_of_a_known_header_verifies() {
        // Example header from RFC 1071 discussions / Wikipedia.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&header), 0);
        let mut bad = header;
        bad[11] ^= 1;
        assert_ne!(internet_checksum(&bad), 0);
    }

    #[test]
    fn raw_ipv4_udp_to_tipc_port_yields_payload() {
        let packet = ipv4_udp(b"tipc!", 40000, TIPC_UDP_PORT);
        let (outcome, stats) = run(LINKTYPE_RAW, &packet);
        let Outcome::Tipc {
            link,
            tipc,
            salvaged,
        } = outcome
        else {
            panic!("expected TIPC, got {outcome:?}");
        };
        assert_eq!(tipc, b"tipc!");
        assert!(!salvaged);
        assert_eq!(stats.ipv4_checksum_errors, 0);
        assert_eq!(
            link,
            Carrier::Udp {
                src: "10.0.0.1:40000".parse().expect("socket address"),
                dst: "10.0.0.2:6118".parse().expect("socket address"),
                reassembled_from: 1,
            }
        );
    }

    #[test]
    fn other_udp_ports_are_skipped() {
        let packet = ipv4_udp(b"dns?", 5353, 53);
        assert!(matches!(run(LINKTYPE_IPV4, &packet).0, Outcome::Skipped));
        // Either port being 6118 is enough.
        let reply = ipv4_udp(b"tipc", TIPC_UDP_PORT, 40000);
        assert!(matches!(run(LINKTYPE_IPV4, &reply).0, Outcome::Tipc { .. }));
    }

    #[test]
    fn bad_ipv4_checksum_is_counted_but_decoded() {
        let mut packet = ipv4_udp(b"x", TIPC_UDP_PORT, TIPC_UDP_PORT);
        packet[10] ^= 0xFF;
        let (outcome, stats) = run(LINKTYPE_IPV4, &packet);
        assert!(matches!(outcome, Outcome::Tipc { .. }));
        assert_eq!(stats.ipv4_checksum_errors, 1);
    }

    #[test]
    fn truncated_and_inconsistent_ipv4_is_malformed() {
        let packet = ipv4_udp(b"hello", TIPC_UDP_PORT, TIPC_UDP_PORT);
        for cut in 0..packet.len() {
            let (outcome, _) = run(LINKTYPE_IPV4, &packet[..cut]);
            assert!(
                matches!(outcome, Outcome::Malformed),
                "cut at {cut}: {outcome:?}"
            );
        }
        // Header length below 20 bytes.
        let mut short_ihl = packet.clone();
        short_ihl[0] = 0x44;
        assert!(matches!(
            run(LINKTYPE_IPV4, &short_ihl).0,
            Outcome::Malformed
        ));
        // Total length smaller than the header.
        let mut short_total = packet.clone();
        short_total[2..4].copy_from_slice(&10_u16.to_be_bytes());
        assert!(matches!(
            run(LINKTYPE_IPV4, &short_total).0,
            Outcome::Malformed
        ));
        // Wrong version on an IPv4 link type.
        let mut v5 = packet;
        v5[0] = 0x55;
        assert!(matches!(run(LINKTYPE_IPV4, &v5).0, Outcome::Malformed));
    }

    #[test]
    fn ip_padding_after_total_length_is_ignored() {
        let mut packet = ipv4_udp(b"abc", TIPC_UDP_PORT, TIPC_UDP_PORT);
        packet.extend_from_slice(&[0xEE; 20]);
        let Outcome::Tipc { tipc, .. } = run(LINKTYPE_IPV4, &packet).0 else {
            panic!("expected TIPC");
        };
        assert_eq!(tipc, b"abc");
    }

    #[test]
    fn udp_length_too_large_is_salvaged_too_small_is_malformed() {
        let mut packet = ipv4_udp(b"abcdef", TIPC_UDP_PORT, TIPC_UDP_PORT);
        packet[24..26].copy_from_slice(&100_u16.to_be_bytes());
        let Outcome::Tipc { tipc, salvaged, .. } = run(LINKTYPE_IPV4, &packet).0 else {
            panic!("expected TIPC");
        };
        assert!(salvaged);
        assert_eq!(tipc, b"abcdef");
        // Shorter UDP length than the IP payload: trailing bytes are not UDP.
        packet[24..26].copy_from_slice(&10_u16.to_be_bytes());
        let Outcome::Tipc { tipc, salvaged, .. } = run(LINKTYPE_IPV4, &packet).0 else {
            panic!("expected TIPC");
        };
        assert!(!salvaged);
        assert_eq!(tipc, b"ab");
        packet[24..26].copy_from_slice(&7_u16.to_be_bytes());
        assert!(matches!(run(LINKTYPE_IPV4, &packet).0, Outcome::Malformed));
    }

    fn ipv6_packet(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x60, 0, 0, 0];
        packet.extend_from_slice(&u16::try_from(payload.len()).unwrap_or(0).to_be_bytes());
        packet.push(next_header);
        packet.push(64);
        packet.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        packet.extend_from_slice(
            &"fe80::2"
                .parse::<Ipv6Addr>()
                .map(|a| a.octets())
                .unwrap_or_default(),
        );
        packet.extend_from_slice(payload);
        packet
    }

    fn udp_header(payload: &[u8]) -> Vec<u8> {
        let mut datagram = Vec::new();
        datagram.extend_from_slice(&TIPC_UDP_PORT.to_be_bytes());
        datagram.extend_from_slice(&TIPC_UDP_PORT.to_be_bytes());
        datagram.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap_or(0).to_be_bytes());
        datagram.extend_from_slice(&[0, 0]);
        datagram.extend_from_slice(payload);
        datagram
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> routing
        // (8 bytes) -> atomic fragment -> UDP.
        let mut chain = vec![IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0];
        chain.extend_from_slice(&[IPPROTO_ROUTING, 1]);
        chain.extend_from_slice(&[0; 14]);
        chain.extend_from_slice(&[IPPROTO_FRAGMENT, 0, 0, 0, 0, 0, 0, 0]);
        chain.extend_from_slice(&[IPPROTO_UDP, 0, 0, 0, 0xAA, 0xBB, 0xCC, 0xDD]);
        chain.extend_from_slice(&udp_header(b"v6 tipc"));
        let packet = ipv6_packet(IPPROTO_HOPOPTS, &chain);
        let Outcome::Tipc { tipc, link, .. } = run(LINKTYPE_RAW, &packet).0 else {
            panic!("expected TIPC");
        };
        assert_eq!(tipc, b"v6 tipc");
        assert!(matches!(link, Carrier::Udp { src, .. } if src.is_ipv6()));
        // An extension header running past the end is malformed.
        let mut cut = ipv6_packet(IPPROTO_HOPOPTS, &[IPPROTO_UDP, 5, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(run(LINKTYPE_IPV6, &cut).0, Outcome::Malformed));
        // Payload length beyond the data is malformed.
        cut[5] = 200;
        assert!(matches!(run(LINKTYPE_IPV6, &cut).0, Outcome::Malformed));
    }

    #[test]
    fn ipv6_fragments_are_reassembled() {
        let datagram = udp_header(&[0x5A; 100]);
        let (first, second) = datagram.split_at(48);
        let fragment = |offset: usize, more: bool, data: &[u8]| {
            let offset_flags = u16::try_from(offset).unwrap_or(0) | u16::from(more);
            let mut payload = vec![IPPROTO_UDP, 0];
            payload.extend_from_slice(&offset_flags.to_be_bytes());
            payload.extend_from_slice(&7_u32.to_be_bytes());
            payload.extend_from_slice(data);
            ipv6_packet(IPPROTO_FRAGMENT, &payload)
        };
        let mut stats = CaptureStats::default();
        let mut reassembler = Reassembler::default();
        let last = fragment(48, false, second);
        let outcome = dissect(LINKTYPE_IPV6, &last, &mut stats, &mut reassembler, 0);
        assert!(matches!(outcome, Outcome::FragmentHeld));
        let head = fragment(0, true, first);
        let outcome = dissect(LINKTYPE_IPV6, &head, &mut stats, &mut reassembler, 0);
        let Outcome::Tipc { tipc, link, .. } = outcome else {
            panic!("expected TIPC, got {outcome:?}");
        };
        assert_eq!(tipc, vec![0x5A; 100]);
        assert!(matches!(
            link,
            Carrier::Udp {
                reassembled_from: 2,
                ..
            }
        ));
    }

    #[test]
    fn ethernet_vlan_tags_are_collected() {
        let mut frame = vec![0xFF; 6];
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        for (tpid, vid) in [
            (ETHERTYPE_8021AD, 100),
            (ETHERTYPE_8021Q, 200),
            (ETHERTYPE_QINQ_LEGACY, 4095),
        ] {
            frame.extend_from_slice(&u16::to_be_bytes(tpid));
            frame.extend_from_slice(&u16::to_be_bytes(0xE000 | vid));
        }
        frame.extend_from_slice(&TIPC_ETHERTYPE.to_be_bytes());
        frame.extend_from_slice(b"payload");
        let Outcome::Tipc { link, tipc, .. } = run(LINKTYPE_ETHERNET, &frame).0 else {
            panic!("expected TIPC");
        };
        assert_eq!(tipc, b"payload");
        assert_eq!(
            link,
            Carrier::Ethernet {
                src: [2, 0, 0, 0, 0, 1],
                dst: [0xFF; 6],
                vlans: vec![100, 200, 4095],
            }
        );
        // A tag cut in the middle is malformed.
        assert!(matches!(
            run(LINKTYPE_ETHERNET, &frame[..16]).0,
            Outcome::Malformed
        ));
        // Non-TIPC ethertypes and 802.3 length fields are skipped.
        let mut arp = frame[..12].to_vec();
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert!(matches!(run(LINKTYPE_ETHERNET, &arp).0, Outcome::Skipped));
    }

    #[test]
    fn linux_cooked_captures() {
        // SLL v1, broadcast, Ethernet address.
        let mut sll = vec![0, 1, 0, 1, 0, 6, 0x52, 0x54, 0, 0x18, 1, 1, 0, 0];
        sll.extend_from_slice(&TIPC_ETHERTYPE.to_be_bytes());
        sll.extend_from_slice(b"sll");
        let Outcome::Tipc { link, tipc, .. } = run(LINKTYPE_LINUX_SLL, &sll).0 else {
            panic!("expected TIPC");
        };
        assert_eq!(tipc, b"sll");
        assert_eq!(
            link,
            Carrier::Ethernet {
                src: [0x52, 0x54, 0, 0x18, 1, 1],
                dst: BROADCAST_MAC,
                vlans: vec![],
            }
        );
        // SLL v2, outgoing unicast, carrying IPv4/UDP.
        let mut sll2 = ETHERTYPE_IPV4.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[
            0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 0x52, 0x54, 0, 0x18, 1, 2, 0, 0,
        ]);
        sll2.extend_from_slice(&ipv4_udp(b"sll2", TIPC_UDP_PORT, TIPC_UDP_PORT));
        let Outcome::Tipc { tipc, .. } = run(LINKTYPE_LINUX_SLL2, &sll2).0 else {
            panic!("expected TIPC");
        };
        assert_eq!(tipc, b"sll2");
        for cut in 0..20 {
            assert!(matches!(
                run(LINKTYPE_LINUX_SLL2, &sll2[..cut]).0,
                Outcome::Malformed
            ));
            assert!(matches!(
                run(LINKTYPE_LINUX_SLL, &sll[..cut.min(15)]).0,
                Outcome::Malformed
            ));
        }
    }
}
