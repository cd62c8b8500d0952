//! Classic pcap output of the frame tap, so a failing simulation can be read with
//! `utipc decode` or tshark like a capture from real hosts.
//!
//! Written by hand (24-byte global header, 16-byte record headers, little-endian) because the
//! format is tiny and the simulator must not pull a dependency into `utipc-proto`. Timestamps
//! use the nanosecond variant of the format: virtual time is in nanoseconds, and frames a few
//! nanoseconds apart would otherwise show up in the wrong order.
//!
//! Every frame is wrapped in an Ethernet header with ethertype 0x88CA whatever the media, since
//! TIPC's own header is what matters; UDP and InfiniBand addresses get a synthetic MAC
//! ([`synthetic_mac`]) so the conversation view still tells the nodes apart.

use std::io;

use super::TapRecord;
use crate::wire::discovery::MediaAddr;

/// Magic of a little-endian pcap with nanosecond timestamps, as written to the file.
pub const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// pcap link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// TIPC's ethertype.
pub const ETHERTYPE_TIPC: u16 = 0x88CA;
/// Snapshot length declared in the header: larger than any frame, UDP bearers included, so no
/// frame is truncated.
pub const PCAP_SNAPLEN: u32 = 262_144;

const ETH_HEADER_LEN: usize = 14;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// The MAC shown for `addr`: an Ethernet address as it is; anything else a locally
/// administered unicast MAC (02:…) derived from its 32-byte encoding by FNV-1a, stable across
/// runs and distinct for distinct addresses in practice.
pub fn synthetic_mac(addr: &MediaAddr) -> [u8; 6] {
    if let MediaAddr::Eth(mac) = addr {
        return *mac;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in addr.encode() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

/// The Ethernet frame of a tapped delivery: destination (broadcast or the receiver), source,
/// ethertype 0x88CA, then the TIPC packet, unpadded.
pub fn ethernet_frame(rec: &TapRecord) -> Vec<u8> {
    let dst = if rec.broadcast {
        BROADCAST_MAC
    } else {
        synthetic_mac(&rec.to_addr)
    };
    let mut f = Vec::with_capacity(ETH_HEADER_LEN + rec.bytes.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&synthetic_mac(&rec.from_addr));
    f.extend_from_slice(&ETHERTYPE_TIPC.to_be_bytes());
    f.extend_from_slice(&rec.bytes);
    f
}

/// Writes `records` as a classic little-endian, nanosecond pcap of Ethernet frames, one record
/// per delivery (a broadcast shows once per receiver, as each receiver's capture would).
pub fn write_pcap<'a, W: io::Write>(
    mut out: W,
    records: impl IntoIterator<Item = &'a TapRecord>,
) -> io::Result<()> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes()); // thiszone: UTC
    h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    h.extend_from_slice(&PCAP_SNAPLEN.to_le_bytes());
    h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    out.write_all(&h)?;
    for rec in records {
        let frame = ethernet_frame(rec);
        let ns = rec.at.as_nanos();
        let secs = u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX);
        let frac = (ns % 1_000_000_000) as u32;
        let orig = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl = orig.min(PCAP_SNAPLEN);
        let mut r = [0u8; 16];
        r[0..4].copy_from_slice(&secs.to_le_bytes());
        r[4..8].copy_from_slice(&frac.to_le_bytes());
        r[8..12].copy_from_slice(&incl.to_le_bytes());
        r[12..16].copy_from_slice(&orig.to_le_bytes());
        out.write_all(&r)?;
        out.write_all(&frame[..incl as usize])?;
    }
    out.flush()
}
