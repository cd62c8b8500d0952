//! Classic pcap files of bearer frames, and the minimal Ethernet + IPv4/IPv6 + UDP headers that
//! put a UDP bearer's TIPC message back into a frame tshark and `utipc decode` can read.
//!
//! Why by hand: the format is tiny and fixed (classic pcap, `LINKTYPE_ETHERNET`, nanosecond
//! timestamps, little-endian), the headers are a few dozen bytes, and writing them here keeps
//! the dataplane free of dependencies for them.
//!
//! What the synthetic UDP frames contain: the real addresses and ports, a correct IPv4 header
//! checksum, UDP checksum 0 over IPv4 (as the TIPC bearer sends) and a correct UDP checksum over
//! IPv6 (mandatory there), TTL / hop limit 1 to multicast groups and 64 otherwise, and made-up
//! MAC addresses (00:00:00:00:00:00, or the group's multicast MAC): a UDP socket never sees the
//! link layer. Datagrams are written whole, not as IP fragments.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::ether::{
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHeader, ipv4_multicast_mac, ipv6_multicast_mac,
};

/// pcap link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snap length written in the file header and the largest record accepted.
pub const SNAPLEN: u32 = 262_144;
/// Magic number of a nanosecond-resolution classic pcap file.
const MAGIC_NANOS: u32 = 0xA1B2_3C4D;

/// Writes a classic pcap file of Ethernet frames.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    writer: W,
}

impl<W: Write> PcapWriter<W> {
    /// Starts a file by writing the 24-byte pcap header.
    ///
    /// # Errors
    ///
    /// Any error of the writer.
    pub fn new(mut writer: W) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // bytes 8..16: time zone offset and accuracy, both 0
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        writer.write_all(&h)?;
        Ok(Self { writer })
    }

    /// Appends one frame, given as consecutive parts (so headers and payload need not be
    /// copied together), captured `since_epoch` after 1970-01-01.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a frame longer than [`SNAPLEN`] or a time after 2106; otherwise any
    /// error of the writer.
    pub fn write_frame(&mut self, since_epoch: Duration, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= SNAPLEN)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("frame of {len} bytes exceeds the pcap snap length {SNAPLEN}"),
                )
            })?;
        let secs = u32::try_from(since_epoch.as_secs()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "time is beyond the pcap range (2106)",
            )
        })?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&since_epoch.subsec_nanos().to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.writer.write_all(&h)?;
        for part in parts {
            self.writer.write_all(part)?;
        }
        Ok(())
    }

    /// Flushes the writer.
    ///
    /// # Errors
    ///
    /// Any error of the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// The writer back (not flushed).
    pub fn into_inner(self) -> W {
        self.writer
    }
}

const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const UDP_HLEN: usize = 8;
const IPPROTO_UDP: u8 = 17;

/// Replaces `out` with the Ethernet, IP and UDP headers of a datagram from `src` to `dst`
/// carrying `payload` (which is needed for the IPv6 checksum and is not copied). Write `out`
/// and then `payload` as one frame.
///
/// # Errors
///
/// `InvalidInput` when the two addresses are of different families or the payload does not
/// fit one datagram.
pub fn udp_frame_headers(
    out: &mut Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> io::Result<()> {
    out.clear();
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte payload does not fit one UDP datagram",
                payload.len()
            ),
        )
    };
    let udp_len = u16::try_from(UDP_HLEN + payload.len()).map_err(|_| too_big())?;
    let hops = if dst.ip().is_multicast() { 1 } else { 64 };
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total =
                u16::try_from(IPV4_HLEN + UDP_HLEN + payload.len()).map_err(|_| too_big())?;
            let dst_mac = if d.is_multicast() {
                ipv4_multicast_mac(d)
            } else {
                [0; 6]
            };
            out.extend_from_slice(&eth(dst_mac, ETH_P_IP));
            let mut ip = [0u8; IPV4_HLEN];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[8] = hops;
            ip[9] = IPPROTO_UDP;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let csum = !fold(sum(0, &ip));
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
            out.extend_from_slice(&ip);
            // UDP checksum 0: the TIPC bearer sends IPv4 datagrams without one.
            out.extend_from_slice(&udp(src.port(), dst.port(), udp_len, 0));
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let dst_mac = if d.is_multicast() {
                ipv6_multicast_mac(d)
            } else {
                [0; 6]
            };
            out.extend_from_slice(&eth(dst_mac, ETH_P_IPV6));
            let mut ip = [0u8; IPV6_HLEN];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[6] = IPPROTO_UDP;
            ip[7] = hops;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            // Pseudo-header: addresses, upper-layer length, next header.
            let mut acc = sum(0, &ip[8..40]);
            acc = sum(acc, &u32::from(udp_len).to_be_bytes());
            acc = sum(acc, &[0, 0, 0, IPPROTO_UDP]);
            acc = sum(acc, &udp(src.port(), dst.port(), udp_len, 0));
            acc = sum(acc, payload);
            let csum = match !fold(acc) {
                0 => 0xffff,
                c => c,
            };
            out.extend_from_slice(&ip);
            out.extend_from_slice(&udp(src.port(), dst.port(), udp_len, csum));
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source {src} and destination {dst} are of different IP families"),
            ));
        }
    }
    Ok(())
}

fn eth(dst: [u8; 6], ethertype: u16) -> [u8; ETH_HLEN] {
    EthHeader {
        dst,
        src: [0; 6],
        ethertype,
    }
    .to_bytes()
}

fn udp(src_port: u16, dst_port: u16, len: u16, csum: u16) -> [u8; UDP_HLEN] {
    let mut h = [0u8; UDP_HLEN];
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..6].copy_from_slice(&len.to_be_bytes());
    h[6..8].copy_from_slice(&csum.to_be_bytes());
    h
}

/// Adds `bytes` as big-endian 16-bit words to a ones'-complement sum. Only the last slice of a
/// sum may have an odd length (every header here is even).
fn sum(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum into 16 bits.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether the ones'-complement sum of the parts is all ones (a correct checksum).
    pub(crate) fn checksum_ok(parts: &[&[u8]]) -> bool {
        fold(parts.iter().fold(0, |acc, p| sum(acc, p))) == 0xffff
    }

    #[test]
    fn pcap_file_is_read_back_by_an_independent_reader() {
        let mut w = PcapWriter::new(Vec::new()).expect("header");
        let t = Duration::new(1_700_000_000, 123_456_789);
        w.write_frame(t, &[&[1, 2, 3], &[4, 5]]).expect("frame");
        let bytes = w.into_inner();
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("valid pcap");
        assert_eq!(r.header().datalink, pcap_file::DataLink::ETHERNET);
        let p = r.next_packet().expect("one packet").expect("valid packet");
        assert_eq!(p.timestamp, t);
        assert_eq!(&p.data[..], &[1, 2, 3, 4, 5]);
        assert!(r.next_packet().is_none());
    }

    #[test]
    fn oversize_frames_are_refused() {
        let mut w = PcapWriter::new(Vec::new()).expect("header");
        let big = vec![0u8; SNAPLEN as usize + 1];
        let e = w
            .write_frame(Duration::ZERO, &[&big])
            .expect_err("too long");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn udp4_headers() {
        let payload = [0xa5u8; 77];
        let mut h = Vec::new();
        let src: SocketAddr = "198.18.0.1:6118".parse().expect("addr");
        let dst: SocketAddr = "228.0.18.103:6118".parse().expect("addr");
        udp_frame_headers(&mut h, src, dst, &payload).expect("headers");
        assert_eq!(h.len(), 14 + 20 + 8);
        assert_eq!(&h[0..6], &[1, 0, 0x5e, 0, 18, 103], "group MAC");
        assert_eq!(&h[12..14], &[0x08, 0x00]);
        let ip = &h[14..34];
        assert!(checksum_ok(&[ip]), "IPv4 header checksum");
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 20 + 8 + 77);
        assert_eq!(ip[8], 1, "TTL 1 to a group");
        assert_eq!(&ip[12..16], &[198, 18, 0, 1]);
        assert_eq!(&ip[16..20], &[228, 0, 18, 103]);
        let udp = &h[34..42];
        assert_eq!(
            udp,
            &[0x17, 0xe6, 0x17, 0xe6, 0, 85, 0, 0],
            "ports, length, no checksum"
        );
    }

    #[test]
    fn udp6_headers_carry_a_valid_checksum() {
        for len in [76usize, 77] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut h = Vec::new();
            let src: SocketAddr = "[fd00:198:18::1]:6118".parse().expect("addr");
            let dst: SocketAddr = "[fd00:198:18::2]:6118".parse().expect("addr");
            udp_frame_headers(&mut h, src, dst, &payload).expect("headers");
            assert_eq!(h.len(), 14 + 40 + 8);
            assert_eq!(&h[12..14], &[0x86, 0xdd]);
            let ip = &h[14..54];
            assert_eq!(ip[7], 64, "hop limit to a unicast peer");
            let udp = &h[54..62];
            let udp_len = (8 + len) as u32;
            let pseudo = [&ip[8..40], &udp_len.to_be_bytes()[..], &[0, 0, 0, 17][..]].concat();
            assert!(
                checksum_ok(&[&pseudo, udp, &payload]),
                "UDP/IPv6 checksum, {len} bytes"
            );
        }
    }

    #[test]
    fn mixed_families_are_refused() {
        let mut h = Vec::new();
        let src: SocketAddr = "198.18.0.1:6118".parse().expect("addr");
        let dst: SocketAddr = "[fd00::2]:6118".parse().expect("addr");
        assert!(udp_frame_headers(&mut h, src, dst, &[]).is_err());
    }
}
