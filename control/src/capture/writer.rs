//! Writing captures of TIPC messages.
//!
//! Tests (ours and the codec's) need captures of messages utipc built, to
//! check them against tshark's TIPC dissector and to read them back through
//! [`read_capture_bytes`](super::read_capture_bytes). The format is written
//! by hand because it is tiny and fixed (classic pcap, Ethernet, nanosecond
//! timestamps, little-endian) and so the writer can hand back and flush the
//! underlying writer, which `pcap-file`'s writer cannot.

use std::io::{self, Write};
use std::net::SocketAddrV4;

use super::dissect::internet_checksum;
use super::{LINKTYPE_ETHERNET, TIPC_ETHERTYPE};

/// Snap length written in the file header, and the largest frame
/// [`PcapWriter::write_frame`] accepts: libpcap's and Wireshark's maximum, far
/// above any TIPC frame.
pub const PCAP_SNAPLEN: u32 = 262_144;

/// Magic number of a nanosecond-resolution pcap file.
const PCAP_MAGIC_NANOS: u32 = 0xA1B2_3C4D;

/// Writes a classic pcap file of Ethernet frames (`LINKTYPE_ETHERNET`,
/// nanosecond timestamps).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    writer: W,
}

impl<W: Write> PcapWriter<W> {
    /// Starts a capture by writing the pcap file header.
    ///
    /// # Errors
    ///
    /// Any I/O error of the writer.
    pub fn new(mut writer: W) -> io::Result<Self> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
        header.extend_from_slice(&2_u16.to_le_bytes()); // version 2.4
        header.extend_from_slice(&4_u16.to_le_bytes());
        header.extend_from_slice(&0_i32.to_le_bytes()); // GMT offset
        header.extend_from_slice(&0_u32.to_le_bytes()); // accuracy
        header.extend_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        writer.write_all(&header)?;
        Ok(Self { writer })
    }

    /// Appends one Ethernet frame captured at `timestamp_ns` nanoseconds
    /// since the epoch.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when the frame is longer than
    /// [`PCAP_SNAPLEN`] or the timestamp is beyond what pcap can store
    /// (year 2106); otherwise any I/O error of the writer.
    pub fn write_frame(&mut self, timestamp_ns: u64, frame: &[u8]) -> io::Result<()> {
        let seconds = u32::try_from(timestamp_ns / 1_000_000_000).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "timestamp beyond the pcap range",
            )
        })?;
        let nanos = u32::try_from(timestamp_ns % 1_000_000_000).unwrap_or(0);
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&len| len <= PCAP_SNAPLEN)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "frame of {} bytes exceeds the snap length {PCAP_SNAPLEN}",
                        frame.len()
                    ),
                )
            })?;
        let mut header = [0_u8; 16];
        header[0..4].copy_from_slice(&seconds.to_le_bytes());
        header[4..8].copy_from_slice(&nanos.to_le_bytes());
        header[8..12].copy_from_slice(&len.to_le_bytes());
        header[12..16].copy_from_slice(&len.to_le_bytes());
        self.writer.write_all(&header)?;
        self.writer.write_all(frame)
    }

    /// Flushes the underlying writer.
    ///
    /// # Errors
    ///
    /// Any I/O error of the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Returns the underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.writer
    }
}

/// Why a frame could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameBuildError {
    /// The TIPC message does not fit in one UDP datagram.
    #[error("TIPC message of {len} bytes exceeds the largest UDP payload of {max} bytes")]
    TooLarge {
        /// Length of the message.
        len: usize,
        /// Largest payload possible.
        max: usize,
    },
    /// The MTU leaves no room for 8 bytes of data after the IPv4 header.
    #[error("MTU {mtu} is too small to fragment into (minimum 28)")]
    MtuTooSmall {
        /// The MTU asked for.
        mtu: usize,
    },
}

/// Wraps a TIPC message into an Ethernet frame with ethertype 0x88CA, as the
/// kernel's Ethernet bearer sends it. No padding is added (tshark does not
/// need it; real NICs pad to 60 bytes).
#[must_use]
pub fn tipc_ethernet_frame(src: [u8; 6], dst: [u8; 6], tipc: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + tipc.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&TIPC_ETHERTYPE.to_be_bytes());
    frame.extend_from_slice(tipc);
    frame
}

/// Addressing of an Ethernet + IPv4 + UDP frame built around a TIPC message.
/// The UDP bearer uses port [`TIPC_UDP_PORT`](super::TIPC_UDP_PORT) on both
/// ends by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrameAddrs {
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Destination MAC address.
    pub dst_mac: [u8; 6],
    /// Source IPv4 address and UDP port.
    pub src: SocketAddrV4,
    /// Destination IPv4 address and UDP port.
    pub dst: SocketAddrV4,
    /// IPv4 identification (all fragments of one datagram share it).
    pub ip_id: u16,
}

const IPV4_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;
/// TTL the kernel's UDP bearer uses (the default hop limit).
const TTL: u8 = 64;

/// Largest TIPC message that fits one UDP datagram over IPv4.
const MAX_UDP_PAYLOAD: usize = 65_535 - IPV4_HEADER_LEN - UDP_HEADER_LEN;

/// The UDP datagram (header + message) the UDP bearer sends: checksum 0
/// ("none"), as the kernel's TIPC UDP bearer sends over IPv4.
fn udp_datagram(addrs: &UdpFrameAddrs, tipc: &[u8]) -> Result<Vec<u8>, FrameBuildError> {
    let too_large = FrameBuildError::TooLarge {
        len: tipc.len(),
        max: MAX_UDP_PAYLOAD,
    };
    if tipc.len() > MAX_UDP_PAYLOAD {
        return Err(too_large);
    }
    let length = u16::try_from(UDP_HEADER_LEN + tipc.len()).map_err(|_| too_large)?;
    let mut datagram = Vec::with_capacity(UDP_HEADER_LEN + tipc.len());
    datagram.extend_from_slice(&addrs.src.port().to_be_bytes());
    datagram.extend_from_slice(&addrs.dst.port().to_be_bytes());
    datagram.extend_from_slice(&length.to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(tipc);
    Ok(datagram)
}

/// One Ethernet frame carrying an IPv4 packet with the given part of a
/// datagram. `offset` is in bytes (a multiple of 8).
fn ipv4_frame(addrs: &UdpFrameAddrs, payload: &[u8], offset: usize, more: bool) -> Vec<u8> {
    // Callers keep payload + header within 65,535 and offset below 65,536.
    let total = u16::try_from(IPV4_HEADER_LEN + payload.len()).unwrap_or(u16::MAX);
    let offset_units = u16::try_from(offset / 8).unwrap_or(0) & 0x1FFF;
    let flags_offset = offset_units | if more { 0x2000 } else { 0 };
    let mut frame = Vec::with_capacity(14 + IPV4_HEADER_LEN + payload.len());
    frame.extend_from_slice(&addrs.dst_mac);
    frame.extend_from_slice(&addrs.src_mac);
    frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let mut header = [0_u8; IPV4_HEADER_LEN];
    header[0] = 0x45;
    header[2..4].copy_from_slice(&total.to_be_bytes());
    header[4..6].copy_from_slice(&addrs.ip_id.to_be_bytes());
    header[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    header[8] = TTL;
    header[9] = IPPROTO_UDP;
    header[12..16].copy_from_slice(&addrs.src.ip().octets());
    header[16..20].copy_from_slice(&addrs.dst.ip().octets());
    let checksum = internet_checksum(&header);
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(payload);
    frame
}

/// Builds one Ethernet + IPv4 + UDP frame around a TIPC message, the way the
/// kernel's UDP bearer sends it before IP fragmentation: correct IPv4 header
/// checksum, no IP flags, TTL 64, UDP checksum 0.
///
/// # Errors
///
/// [`FrameBuildError::TooLarge`] when the message does not fit one UDP
/// datagram (65,507 bytes).
pub fn tipc_udp_frame(addrs: &UdpFrameAddrs, tipc: &[u8]) -> Result<Vec<u8>, FrameBuildError> {
    let datagram = udp_datagram(addrs, tipc)?;
    Ok(ipv4_frame(addrs, &datagram, 0, false))
}

/// Like [`tipc_udp_frame`], but IP-fragmented to fit `mtu` (the largest IP
/// packet, 1500 on plain Ethernet) as the sending host's IP layer would: all
/// fragments but the last carry a multiple of 8 bytes. A datagram that fits
/// comes back as a single unfragmented frame.
///
/// # Errors
///
/// [`FrameBuildError::TooLarge`] as for [`tipc_udp_frame`];
/// [`FrameBuildError::MtuTooSmall`] below 28 bytes.
pub fn tipc_udp_fragments(
    addrs: &UdpFrameAddrs,
    tipc: &[u8],
    mtu: usize,
) -> Result<Vec<Vec<u8>>, FrameBuildError> {
    if mtu < IPV4_HEADER_LEN + 8 {
        return Err(FrameBuildError::MtuTooSmall { mtu });
    }
    let datagram = udp_datagram(addrs, tipc)?;
    if IPV4_HEADER_LEN + datagram.len() <= mtu {
        return Ok(vec![ipv4_frame(addrs, &datagram, 0, false)]);
    }
    let chunk = (mtu - IPV4_HEADER_LEN) / 8 * 8;
    let count = datagram.len().div_ceil(chunk);
    Ok(datagram
        .chunks(chunk)
        .enumerate()
        .map(|(index, part)| ipv4_frame(addrs, part, index * chunk, index + 1 < count))
        .collect())
}
