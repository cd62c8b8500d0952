//! Reading TIPC messages out of packet captures (pcap and pcapng).
//!
//! `utipc decode` is pointed at captures taken with tcpdump, dumpcap or
//! Wireshark on hosts running TIPC. Such a file holds link-layer frames; this
//! module peels the link, IP and UDP layers off them and hands back the bytes
//! of every TIPC message, together with how the message travelled
//! ([`Carrier`]) and where in the file it was ([`CapturedFrame::number`], the
//! same 1-based frame number Wireshark shows, so that a decoded message can be
//! found again in Wireshark).
//!
//! TIPC is carried in two ways, both handled here:
//!
//! * the Ethernet bearer: the TIPC message is the payload of an Ethernet frame
//!   with ethertype [`TIPC_ETHERTYPE`] (0x88CA), possibly behind any number of
//!   802.1Q / 802.1ad VLAN tags;
//! * the UDP bearer: the TIPC message is the payload of a UDP datagram to or
//!   from port [`TIPC_UDP_PORT`] (6118), over IPv4 or IPv6. The kernel's UDP
//!   bearer sends datagrams of up to about 14,000 bytes, which IP fragments, so
//!   IP fragments are reassembled (bounded in memory, see
//!   [`MAX_PENDING_DATAGRAMS`]).
//!
//! Supported containers: classic pcap (either byte order, micro- or
//! nanosecond timestamps) and pcapng (Enhanced, Simple and the obsolete Packet
//! blocks; per-interface link type, `if_tsresol` and `if_tsoffset`). Supported
//! link types: Ethernet (1), Linux cooked captures SLL (113) and SLL2 (276) as
//! written by `tcpdump -i any`, and raw IP (101, 228, 229).
//!
//! Captures are untrusted input: nothing here panics on malformed data.
//! Damage to the file structure is reported as a [`CaptureError`]; damage to
//! single frames is counted in [`CaptureStats`] and the frame is passed over,
//! so one bad frame does not hide the rest of a capture.
//!
//! [`PcapWriter`] and the frame builders ([`tipc_ethernet_frame`],
//! [`tipc_udp_frame`], [`tipc_udp_fragments`]) go the other way: they produce
//! captures of TIPC messages, for tests and for cross-checking with tshark.

mod container;
mod dissect;
mod reassembly;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use reassembly::{MAX_DATAGRAM_BYTES, MAX_PENDING_DATAGRAMS, REASSEMBLY_TIMEOUT_NS};
pub use writer::{
    FrameBuildError, PCAP_SNAPLEN, PcapWriter, UdpFrameAddrs, tipc_ethernet_frame,
    tipc_udp_fragments, tipc_udp_frame,
};

/// Ethertype of TIPC over Ethernet (the kernel's Ethernet bearer).
pub const TIPC_ETHERTYPE: u16 = 0x88CA;

/// UDP port of the TIPC UDP bearer (IANA-registered, the kernel's default).
/// A datagram is taken as TIPC when either its source or destination port is
/// this one.
pub const TIPC_UDP_PORT: u16 = 6118;

/// Link type (pcap `LINKTYPE_*` number) of Ethernet captures.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Link type of raw IP captures (version taken from the first nibble).
pub const LINKTYPE_RAW: u32 = 101;
/// Link type of Linux cooked captures, version 1 (`tcpdump -i any`, older libpcap).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Link type of raw IPv4 captures.
pub const LINKTYPE_IPV4: u32 = 228;
/// Link type of raw IPv6 captures.
pub const LINKTYPE_IPV6: u32 = 229;
/// Link type of Linux cooked captures, version 2 (`tcpdump -i any`, libpcap >= 1.10).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// One TIPC message found in a capture.
///
/// The bytes are not interpreted here: decoding them is the codec's job, and
/// keeping them raw lets `utipc decode` report codec errors against the exact
/// bytes that were on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// 1-based number of the frame in the file, as Wireshark numbers them,
    /// so a message can be located in Wireshark. For a datagram reassembled
    /// from IP fragments this is the fragment that completed it (Wireshark
    /// shows the reassembled datagram at that frame too).
    pub number: usize,
    /// Capture time in nanoseconds since the Unix epoch (of the frame given
    /// by `number`). Zero when the file does not record one (pcapng Simple
    /// Packet Blocks).
    pub timestamp_ns: u64,
    /// How the message arrived: its link-layer or UDP/IP addressing, which
    /// TIPC itself does not repeat and the decoder needs to show who talked.
    pub link: Carrier,
    /// The TIPC bytes. For the Ethernet bearer this is the whole Ethernet
    /// payload after the ethertype, so it may end in Ethernet padding (or a
    /// frame check sequence) after the TIPC message: the size field in the
    /// TIPC header is authoritative and the padding is kept so nothing that
    /// was on the wire is hidden. For the UDP bearer it is exactly the UDP
    /// payload of the (reassembled) datagram. Nothing about the TIPC
    /// content is checked here (a damaged frame may even yield fewer bytes
    /// than a TIPC header): judging it is the codec's job.
    pub tipc: Vec<u8>,
}

/// How a TIPC message travelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    /// TIPC Ethernet bearer (ethertype 0x88CA).
    Ethernet {
        /// Source MAC address.
        src: [u8; 6],
        /// Destination MAC address. Linux cooked captures (SLL/SLL2) do not
        /// record it: there it is ff:ff:ff:ff:ff:ff for frames the kernel
        /// marked as broadcast and 00:00:00:00:00:00 otherwise.
        dst: [u8; 6],
        /// VLAN ids (12 bits) of the 802.1Q / 802.1ad tags the frame carried,
        /// outermost first; empty for untagged frames. TIPC bearers can sit
        /// on VLAN interfaces, and the id tells which one.
        vlans: Vec<u16>,
    },
    /// TIPC UDP bearer (a UDP datagram to or from port 6118).
    Udp {
        /// Source IP address and UDP port.
        src: SocketAddr,
        /// Destination IP address and UDP port (a multicast group for the
        /// UDP bearer's discovery messages).
        dst: SocketAddr,
        /// Number of IP fragments (frames) the datagram was reassembled
        /// from; 1 if it was not fragmented. Duplicated fragments count.
        reassembled_from: usize,
    },
}

/// What reading a capture found, for the summary line of `utipc decode` and
/// so that damage and unsupported traffic are reported rather than silently
/// dropped.
///
/// Every frame of the file is accounted for exactly once, except salvaged
/// frames, which are both TIPC and malformed:
/// `frames == tipc + skipped + malformed - salvaged + ip_fragments_pending +
/// ip_fragments_reassembled + ip_fragments_evicted`
/// ([`CaptureStats::is_consistent`] checks it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// All packet records in the file (frames), TIPC or not.
    pub frames: usize,
    /// Frames that yielded a TIPC message (the length of the returned list).
    pub tipc: usize,
    /// IP fragments still waiting for the rest of their datagram when the
    /// file ended (the capture started or stopped in the middle of a
    /// fragmented datagram, or fragments were lost).
    pub ip_fragments_pending: usize,
    /// Frames that are well-formed but not TIPC (ARP, IGMP, other UDP ports,
    /// other ethertypes, frames on interfaces of unsupported link types...).
    pub skipped: usize,
    /// Frames whose link, IP or UDP headers were truncated or inconsistent,
    /// IP fragments that could not be placed (absurd offset, conflicting
    /// lengths, misaligned), and packet records the file structure could not
    /// attribute (unknown interface, bad lengths).
    pub malformed: usize,
    /// Malformed frames from which a TIPC message was still taken: a UDP
    /// header claiming more bytes than present (the bytes present are used).
    /// Counted in both `tipc` and `malformed`.
    pub salvaged: usize,
    /// IP fragments that went into a datagram completed by a later fragment;
    /// they yield nothing themselves (the completing frame carries the
    /// datagram).
    pub ip_fragments_reassembled: usize,
    /// Datagrams reassembled from more than one fragment.
    pub ip_datagrams_reassembled: usize,
    /// IP fragments dropped because their incomplete datagram was evicted,
    /// either to stay within [`MAX_PENDING_DATAGRAMS`] or because it stayed
    /// incomplete for [`REASSEMBLY_TIMEOUT_NS`] of capture time.
    pub ip_fragments_evicted: usize,
    /// Incomplete datagrams evicted (see `ip_fragments_evicted`).
    pub ip_datagrams_evicted: usize,
    /// IP fragments that overlapped bytes already received for their
    /// datagram (exact duplicates included). The first received bytes win;
    /// the frame still counts as part of the datagram.
    pub ip_fragment_overlaps: usize,
    /// IPv4 headers whose checksum did not verify. Such packets are decoded
    /// anyway: captures of locally sent packets can show checksums before
    /// the NIC (or nothing at all) filled them in.
    pub ipv4_checksum_errors: usize,
    /// The file ended in the middle of a record (a capture cut short, e.g.
    /// the capturing process was killed). The frames before it are returned.
    pub truncated: bool,
}

impl CaptureStats {
    /// Whether every frame is accounted for exactly once (see the type's
    /// documentation). Always true for stats returned by this module; exposed
    /// so callers and tests can check it.
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.tipc
            + self.skipped
            + self.malformed
            + self.ip_fragments_pending
            + self.ip_fragments_reassembled
            + self.ip_fragments_evicted
            == self.frames + self.salvaged
    }
}

/// Why a capture could not be read at all.
///
/// Only damage to the file structure ends up here; bad frames are counted in
/// [`CaptureStats`] instead.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The data does not start with a pcap or pcapng magic number.
    #[error("not a pcap or pcapng file (starts with {magic:02x?})")]
    NotACapture {
        /// The first bytes of the data (up to 4).
        magic: Vec<u8>,
    },
    /// The capture's link type is not one this module understands, so no
    /// frame in it can be dissected (pcapng: no interface of the file has a
    /// supported link type).
    #[error(
        "unsupported link type {link_type} (supported: 1 Ethernet, 101/228/229 raw IP, 113/276 Linux cooked)"
    )]
    UnsupportedLinkType {
        /// The pcap `LINKTYPE_*` number.
        link_type: u32,
    },
    /// The file structure is damaged (bad block lengths, bad headers) at a
    /// point where reading cannot continue.
    #[error("corrupt capture file at byte offset {offset}: {reason}")]
    Corrupt {
        /// Byte offset in the file of the damaged header or block.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a capture file and returns the TIPC messages in it, in frame order,
/// with statistics about everything else.
///
/// # Errors
///
/// [`CaptureError::Io`] when the file cannot be read, or any error of
/// [`read_capture_bytes`].
pub fn read_capture(path: &Path) -> Result<(Vec<CapturedFrame>, CaptureStats), CaptureError> {
    let bytes = std::fs::read(path).map_err(|source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_capture_bytes(&bytes)
}

/// Reads a capture held in memory (pcap or pcapng, recognised by its magic
/// number) and returns the TIPC messages in it, in frame order, with
/// statistics about everything else.
///
/// # Errors
///
/// [`CaptureError::NotACapture`] when the data is neither pcap nor pcapng,
/// [`CaptureError::UnsupportedLinkType`] when no frame can be dissected
/// because of its link type, [`CaptureError::Corrupt`] when the file
/// structure is damaged. A file cut short is not an error (see
/// [`CaptureStats::truncated`]).
pub fn read_capture_bytes(
    bytes: &[u8],
) -> Result<(Vec<CapturedFrame>, CaptureStats), CaptureError> {
    let mut extractor = Extractor::default();
    let summary = container::for_each_record(bytes, |record| extractor.record(record))?;
    Ok(extractor.finish(summary.truncated))
}

/// Per-file extraction state: turns the records of the container into TIPC
/// messages and statistics.
#[derive(Debug, Default)]
struct Extractor {
    frames: Vec<CapturedFrame>,
    stats: CaptureStats,
    reassembler: reassembly::Reassembler,
}

impl Extractor {
    fn record(&mut self, record: container::Record<'_>) {
        self.stats.frames += 1;
        let number = self.stats.frames;
        match record {
            container::Record::Packet {
                timestamp_ns,
                link_type,
                data,
            } => self.packet(number, timestamp_ns, link_type, data),
            container::Record::UnsupportedLink => self.stats.skipped += 1,
            container::Record::Unusable => self.stats.malformed += 1,
        }
    }

    fn packet(&mut self, number: usize, timestamp_ns: u64, link_type: u32, data: &[u8]) {
        let outcome = dissect::dissect(
            link_type,
            data,
            &mut self.stats,
            &mut self.reassembler,
            timestamp_ns,
        );
        match outcome {
            dissect::Outcome::Tipc {
                link,
                tipc,
                salvaged,
            } => {
                self.stats.tipc += 1;
                if salvaged {
                    self.stats.malformed += 1;
                    self.stats.salvaged += 1;
                }
                self.frames.push(CapturedFrame {
                    number,
                    timestamp_ns,
                    link,
                    tipc,
                });
            }
            dissect::Outcome::Skipped => self.stats.skipped += 1,
            dissect::Outcome::Malformed => self.stats.malformed += 1,
            dissect::Outcome::FragmentHeld => {}
        }
    }

    fn finish(mut self, truncated: bool) -> (Vec<CapturedFrame>, CaptureStats) {
        self.stats.truncated = truncated;
        self.stats.ip_fragments_pending = self.reassembler.pending_fragments();
        (self.frames, self.stats)
    }
}
