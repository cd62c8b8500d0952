//! The capture file containers: classic pcap and pcapng.
//!
//! The record structure is parsed with the `pcap-file` crate; what it leaves
//! to the caller (or gets wrong for our purposes) is done here:
//!
//! * classic pcap records are taken raw, because `pcap-file`'s checked
//!   records reject `orig_len > snaplen`, which every capture taken with a
//!   small snap length (`tcpdump -s`) legitimately has;
//! * pcapng packet blocks are decoded here from the raw block body, because
//!   `pcap-file` ignores `if_tsresol` (it returns the raw timestamp units as
//!   nanoseconds) and rejects a whole block over a malformed option (say, a
//!   comment that is not UTF-8) that does not affect the packet.

use std::borrow::Cow;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::PcapNgParser;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::{Endianness, PcapError, TsResolution};

use super::{
    CaptureError, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,
};

/// pcapng block type of the Section Header Block.
const BLOCK_SECTION_HEADER: u32 = 0x0A0D_0D0A;
/// pcapng block type of the Interface Description Block.
const BLOCK_INTERFACE_DESCRIPTION: u32 = 1;
/// pcapng block type of the obsolete Packet Block.
const BLOCK_PACKET: u32 = 2;
/// pcapng block type of the Simple Packet Block.
const BLOCK_SIMPLE_PACKET: u32 = 3;
/// pcapng block type of the Enhanced Packet Block.
const BLOCK_ENHANCED_PACKET: u32 = 6;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One packet record of the file, as the dissector needs it.
#[derive(Debug)]
pub(crate) enum Record<'a> {
    /// A packet with everything needed to dissect it.
    Packet {
        /// Capture time, nanoseconds since the Unix epoch.
        timestamp_ns: u64,
        /// Link type of the interface it was captured on.
        link_type: u32,
        /// The captured bytes (possibly fewer than were on the wire).
        data: &'a [u8],
    },
    /// A packet captured on an interface whose link type is not supported.
    UnsupportedLink,
    /// A packet record that cannot be interpreted (unknown interface,
    /// captured length larger than the block).
    Unusable,
}

/// What the container walk found besides the records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    /// The file ended in the middle of a record.
    pub(crate) truncated: bool,
}

/// Whether this module can dissect frames of the given link type.
pub(crate) fn is_supported_link_type(link_type: u32) -> bool {
    matches!(
        link_type,
        LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
    )
}

/// Calls `on_record` for every packet record of the capture in `bytes`, in
/// file order.
pub(crate) fn for_each_record<'a>(
    bytes: &'a [u8],
    on_record: impl FnMut(Record<'a>),
) -> Result<Summary, CaptureError> {
    let Some(magic) = bytes.get(..4) else {
        return Err(CaptureError::NotACapture {
            magic: bytes.to_vec(),
        });
    };
    match magic {
        [0xA1, 0xB2, 0xC3, 0xD4]
        | [0xD4, 0xC3, 0xB2, 0xA1]
        | [0xA1, 0xB2, 0x3C, 0x4D]
        | [0x4D, 0x3C, 0xB2, 0xA1] => read_pcap(bytes, on_record),
        [0x0A, 0x0D, 0x0D, 0x0A] => read_pcapng(bytes, on_record),
        _ => Err(CaptureError::NotACapture {
            magic: magic.to_vec(),
        }),
    }
}

fn corrupt(offset: usize, reason: impl Into<String>) -> CaptureError {
    CaptureError::Corrupt {
        offset,
        reason: reason.into(),
    }
}

/// Classic pcap: a 24-byte file header with one link type, then records of a
/// 16-byte header and the captured bytes.
fn read_pcap<'a>(
    bytes: &'a [u8],
    mut on_record: impl FnMut(Record<'a>),
) -> Result<Summary, CaptureError> {
    let (mut rest, parser) = match PcapParser::new(bytes) {
        Ok(parsed) => parsed,
        Err(PcapError::IncompleteBuffer) => {
            return Err(corrupt(0, "file ends inside the 24-byte pcap file header"));
        }
        Err(error) => return Err(corrupt(0, error.to_string())),
    };
    let header = parser.header();
    // The upper bits of the field carry FCS information (pcap spec: "LinkType
    // and additional information"); the link type is the low 16 bits.
    let link_type = u32::from(header.datalink) & 0xFFFF;
    if !is_supported_link_type(link_type) {
        return Err(CaptureError::UnsupportedLinkType { link_type });
    }
    let frac_to_ns = match header.ts_resolution {
        TsResolution::MicroSecond => 1_000,
        TsResolution::NanoSecond => 1,
    };
    let mut truncated = false;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        match parser.next_raw_packet(rest) {
            Ok((remainder, packet)) => {
                // A fraction >= 1 s is invalid, but the sum is still a
                // meaningful time ordering, so it is kept rather than dropped.
                let timestamp_ns = u64::from(packet.ts_sec)
                    .saturating_mul(NANOS_PER_SEC)
                    .saturating_add(u64::from(packet.ts_frac) * frac_to_ns);
                let data: &'a [u8] = match packet.data {
                    Cow::Borrowed(data) => data,
                    // `next_raw_packet` borrows from its input; an owned copy
                    // cannot be handed out with the input's lifetime.
                    Cow::Owned(_) => {
                        return Err(corrupt(offset, "unexpected owned packet data"));
                    }
                };
                on_record(Record::Packet {
                    timestamp_ns,
                    link_type,
                    data,
                });
                rest = remainder;
            }
            Err(PcapError::IncompleteBuffer) => {
                truncated = true;
                break;
            }
            Err(error) => return Err(corrupt(offset, error.to_string())),
        }
    }
    Ok(Summary { truncated })
}

/// What a packet block needs from its interface's description.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    /// `if_tsresol`: bit 7 clear: 10^-n s units, set: 2^-n s units.
    tsresol: u8,
    /// `if_tsoffset`: seconds added to every timestamp.
    tsoffset_s: i64,
}

impl Interface {
    fn from_idb(idb: &InterfaceDescriptionBlock<'_>) -> Self {
        let mut interface = Self {
            link_type: u32::from(idb.linktype) & 0xFFFF,
            snaplen: idb.snaplen,
            // pcapng default: microseconds.
            tsresol: 6,
            tsoffset_s: 0,
        };
        for option in &idb.options {
            match option {
                InterfaceDescriptionOption::IfTsResol(resol) => interface.tsresol = *resol,
                InterfaceDescriptionOption::IfTsOffset(offset) => {
                    // The option is a signed 64-bit integer that `pcap-file`
                    // hands out as u64: reinterpret the bits.
                    interface.tsoffset_s = i64::from_ne_bytes(offset.to_ne_bytes());
                }
                _ => {}
            }
        }
        interface
    }

    /// Converts a raw pcapng timestamp of this interface to nanoseconds since
    /// the epoch, saturating instead of failing on absurd values.
    fn timestamp_ns(&self, raw: u64) -> u64 {
        let raw = i128::from(raw);
        let exponent = u32::from(self.tsresol & 0x7F);
        let ns: i128 = if self.tsresol & 0x80 == 0 {
            // Units of 10^-exponent s.
            if exponent <= 9 {
                raw * 10_i128.pow(9 - exponent)
            } else {
                match 10_i128.checked_pow(exponent - 9) {
                    Some(divisor) => raw / divisor,
                    None => 0,
                }
            }
        } else {
            // Units of 2^-exponent s; exponent <= 127 and raw < 2^64, so
            // raw * 10^9 < 2^94 fits and the shift is in range.
            (raw * i128::from(NANOS_PER_SEC)) >> exponent
        };
        let ns = ns + i128::from(self.tsoffset_s) * i128::from(NANOS_PER_SEC);
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }
}

/// Reads a 32-bit field of a pcapng block body, in the section's byte order.
fn field_u32(body: &[u8], at: usize, endianness: Endianness) -> Option<u32> {
    let bytes: [u8; 4] = body.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match endianness {
        Endianness::Big => u32::from_be_bytes(bytes),
        Endianness::Little => u32::from_le_bytes(bytes),
    })
}

/// Reads a 16-bit field of a pcapng block body, in the section's byte order.
fn field_u16(body: &[u8], at: usize, endianness: Endianness) -> Option<u16> {
    let bytes: [u8; 2] = body.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(match endianness {
        Endianness::Big => u16::from_be_bytes(bytes),
        Endianness::Little => u16::from_le_bytes(bytes),
    })
}

/// The fixed part of an Enhanced Packet Block or obsolete Packet Block:
/// interface, timestamp, captured bytes.
fn packet_block(body: &[u8], block_type: u32, endianness: Endianness) -> Option<(u32, u64, &[u8])> {
    let interface = if block_type == BLOCK_PACKET {
        // Packet Block: 16-bit interface id, 16-bit drops count.
        u32::from(field_u16(body, 0, endianness)?)
    } else {
        field_u32(body, 0, endianness)?
    };
    let high = field_u32(body, 4, endianness)?;
    let low = field_u32(body, 8, endianness)?;
    let captured = usize::try_from(field_u32(body, 12, endianness)?).ok()?;
    let data = body.get(20..20_usize.checked_add(captured)?)?;
    Some((interface, (u64::from(high) << 32) | u64::from(low), data))
}

/// pcapng: a sequence of blocks; Section Header Blocks start sections (with
/// their own byte order), Interface Description Blocks declare interfaces
/// (numbered from 0 within a section), packet blocks refer to them.
fn read_pcapng<'a>(
    bytes: &'a [u8],
    mut on_record: impl FnMut(Record<'a>),
) -> Result<Summary, CaptureError> {
    let (mut rest, mut parser) = match PcapNgParser::new(bytes) {
        Ok(parsed) => parsed,
        Err(PcapError::IncompleteBuffer) => {
            return Err(corrupt(
                0,
                "file ends inside the first section header block",
            ));
        }
        Err(error) => return Err(corrupt(0, error.to_string())),
    };
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut first_unsupported: Option<u32> = None;
    let mut any_supported = false;
    let mut truncated = false;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (remainder, block) = match parser.next_raw_block(rest) {
            Ok(parsed) => parsed,
            // `pcap-file` also says "incomplete" for some damage inside a
            // block (a short option); only a block that really runs past the
            // end of the file is a truncation.
            Err(PcapError::IncompleteBuffer) if !block_fits(rest, parser.section().endianness) => {
                truncated = true;
                break;
            }
            Err(error) => return Err(corrupt(offset, error.to_string())),
        };
        rest = remainder;
        let endianness = parser.section().endianness;
        let body: &'a [u8] = match block.body {
            Cow::Borrowed(body) => body,
            // `next_raw_block` borrows from its input; an owned copy cannot be
            // handed out with the input's lifetime (and does not happen).
            Cow::Owned(_) => return Err(corrupt(offset, "unexpected owned block body")),
        };
        match block.type_ {
            BLOCK_SECTION_HEADER => interfaces.clear(),
            BLOCK_INTERFACE_DESCRIPTION => {
                // The parser has decoded the block and appended it.
                let Some(idb) = parser.interfaces().last() else {
                    return Err(corrupt(offset, "interface description block not recorded"));
                };
                let interface = Interface::from_idb(idb);
                if is_supported_link_type(interface.link_type) {
                    any_supported = true;
                } else if first_unsupported.is_none() {
                    first_unsupported = Some(interface.link_type);
                }
                interfaces.push(interface);
            }
            BLOCK_ENHANCED_PACKET | BLOCK_PACKET => {
                let record = packet_block(body, block.type_, endianness)
                    .and_then(|(id, raw_ts, data)| {
                        let interface = interfaces.get(usize::try_from(id).ok()?)?;
                        Some(packet_record(
                            interface,
                            interface.timestamp_ns(raw_ts),
                            data,
                        ))
                    })
                    .unwrap_or(Record::Unusable);
                on_record(record);
            }
            BLOCK_SIMPLE_PACKET => {
                // Simple Packet Block: original length, then the data padded
                // to 32 bits; the captured length is the smaller of the
                // original length and interface 0's snap length. No
                // timestamp is recorded.
                let record = match (interfaces.first(), field_u32(body, 0, endianness)) {
                    (Some(interface), Some(original)) => {
                        let data = body.get(4..).unwrap_or_default();
                        let mut len = usize::try_from(original)
                            .unwrap_or(usize::MAX)
                            .min(data.len());
                        if interface.snaplen != 0 {
                            len = len.min(usize::try_from(interface.snaplen).unwrap_or(usize::MAX));
                        }
                        packet_record(interface, 0, data.get(..len).unwrap_or_default())
                    }
                    _ => Record::Unusable,
                };
                on_record(record);
            }
            _ => {}
        }
    }
    if let (false, Some(link_type)) = (any_supported, first_unsupported) {
        return Err(CaptureError::UnsupportedLinkType { link_type });
    }
    Ok(Summary { truncated })
}

/// Whether the block at the start of `rest` declares a length that fits in
/// `rest` (so a parse failure is damage, not the end of a cut file).
fn block_fits(rest: &[u8], endianness: Endianness) -> bool {
    // A Section Header Block declares its own byte order in its magic.
    let endianness = match (field_u32(rest, 0, Endianness::Big), rest.get(8..12)) {
        (Some(BLOCK_SECTION_HEADER), Some([0x1A, 0x2B, 0x3C, 0x4D])) => Endianness::Big,
        (Some(BLOCK_SECTION_HEADER), Some([0x4D, 0x3C, 0x2B, 0x1A])) => Endianness::Little,
        _ => endianness,
    };
    field_u32(rest, 4, endianness)
        .and_then(|len| usize::try_from(len).ok())
        .is_some_and(|len| len >= 12 && len <= rest.len())
}

fn packet_record<'b>(interface: &Interface, timestamp_ns: u64, data: &'b [u8]) -> Record<'b> {
    if is_supported_link_type(interface.link_type) {
        Record::Packet {
            timestamp_ns,
            link_type: interface.link_type,
            data,
        }
    } else {
        Record::UnsupportedLink
    }
}
