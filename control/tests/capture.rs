//! Tests of the capture reader against the kernel TIPC reference captures in
//! `tests/fixtures/pcap` (see `shared/pcap/INDEX.md` for what they hold) and
//! against captures built in the tests. The expected numbers come from
//! tshark 4.0 on the same files; each one names the command that produced it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use utipc_control::capture::{
    CaptureError, CaptureStats, CapturedFrame, Carrier, PcapWriter, TIPC_UDP_PORT, UdpFrameAddrs,
    read_capture, read_capture_bytes, tipc_ethernet_frame, tipc_udp_fragments, tipc_udp_frame,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read_fixture(dir: &str, name: &str) -> (Vec<CapturedFrame>, CaptureStats) {
    let path = fixtures().join(dir).join(name);
    read_capture(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn fixture_bytes(dir: &str, name: &str) -> Vec<u8> {
    let path = fixtures().join(dir).join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Byte offsets of the records of a little-endian classic pcap file, found
/// independently of the code under test.
fn pcap_record_offsets(bytes: &[u8]) -> Vec<usize> {
    assert!(
        bytes.starts_with(&[0xD4, 0xC3, 0xB2, 0xA1])
            || bytes.starts_with(&[0x4D, 0x3C, 0xB2, 0xA1]),
        "fixture is not a little-endian pcap"
    );
    let mut offsets = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
        at += 16 + usize::try_from(len).expect("fits");
    }
    assert_eq!(at, bytes.len(), "fixture ends inside a record");
    offsets
}

/// The TIPC message size: low 17 bits of the first (big-endian) header word.
fn tipc_size(tipc: &[u8]) -> usize {
    let word = u32::from_be_bytes(tipc[..4].try_into().expect("4 bytes"));
    usize::try_from(word & 0x1_FFFF).expect("fits")
}

/// Eth captures and their frame counts: `tshark -r FILE | wc -l`; every frame
/// is TIPC: `tshark -r FILE -Y '!tipc' | wc -l` prints 0 for each.
const ETH_CAPTURES: [(&str, usize); 10] = [
    ("eth-01-discovery.pcap", 31),
    ("eth-02-link-setup.pcap", 12),
    ("eth-03-rdm-named-datagrams.pcap", 37),
    ("eth-04-fragmented-66000.pcap", 99),
    ("eth-05-bundling-burst.pcap", 396),
    ("eth-06-multicast.pcap", 3),
    ("eth-07-stream-connection.pcap", 587),
    ("eth-08-publish-withdraw.pcap", 22),
    ("eth-09-link-failure.pcap", 26),
    ("eth-10-bearer-disable-reset.pcap", 30),
];

const KTNODE1_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x18, 0x01, 0x01];
const KTNODE2_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x18, 0x01, 0x02];

#[test]
fn eth_captures_are_all_tipc_v2() {
    for (name, expected_frames) in ETH_CAPTURES {
        let records = pcap_record_offsets(&fixture_bytes("pcap", name)).len();
        assert_eq!(records, expected_frames, "{name}: record count");
        let (frames, stats) = read_fixture("pcap", name);
        assert_eq!(stats.frames, records, "{name}: frames");
        assert_eq!(stats.tipc, records, "{name}: tipc");
        assert_eq!(frames.len(), records, "{name}: messages");
        assert_eq!(
            stats.skipped + stats.malformed + stats.ip_fragments_pending,
            0,
            "{name}: {stats:?}"
        );
        assert!(!stats.truncated, "{name}");
        assert!(stats.is_consistent(), "{name}: {stats:?}");
        let mut previous_ts = 0;
        for (index, frame) in frames.iter().enumerate() {
            assert_eq!(frame.number, index + 1, "{name}: numbering");
            assert_eq!(
                frame.tipc[0] >> 5,
                2,
                "{name} frame {}: TIPC version",
                frame.number
            );
            // The size field is authoritative; the rest is Ethernet padding.
            let size = tipc_size(&frame.tipc);
            assert!(
                size >= 24 && size <= frame.tipc.len(),
                "{name} frame {}: size {size}",
                frame.number
            );
            if frame.tipc.len() > size {
                assert!(
                    frame.tipc.len() + 14 <= 60,
                    "{name} frame {}: padding only up to 60 bytes",
                    frame.number
                );
            }
            let Carrier::Ethernet { src, dst, vlans } = &frame.link else {
                panic!(
                    "{name} frame {}: not Ethernet: {:?}",
                    frame.number, frame.link
                );
            };
            assert!(
                *src == KTNODE1_MAC || *src == KTNODE2_MAC,
                "{name}: src {src:02x?}"
            );
            assert!(
                *dst == KTNODE1_MAC || *dst == KTNODE2_MAC || *dst == [0xFF; 6],
                "{name}: dst {dst:02x?}"
            );
            assert!(vlans.is_empty());
            // Captured on 2026-11-24 (2026 < t < 2027) and in order.
            assert!(
                (1_767_225_600_000_000_000..1_798_761_600_000_000_000)
                    .contains(&frame.timestamp_ns)
            );
            assert!(frame.timestamp_ns >= previous_ts, "{name}: time order");
            previous_ts = frame.timestamp_ns;
        }
    }
}

#[test]
fn eth02_first_frame_exact() {
    // `tshark -r eth-02-link-setup.pcap -c 1 -T fields -e frame.time_epoch
    // -e eth.src -e eth.dst -e frame.len` gives 1795550294.386023000
    // 52:54:00:18:01:01 52:54:00:18:01:02 70.
    let (frames, _) = read_fixture("pcap", "eth-02-link-setup.pcap");
    let first = &frames[0];
    assert_eq!(first.timestamp_ns, 1_795_550_294_386_023_000);
    assert_eq!(
        first.link,
        Carrier::Ethernet {
            src: KTNODE1_MAC,
            dst: KTNODE2_MAC,
            vlans: vec![],
        }
    );
    assert_eq!(first.tipc.len(), 70 - 14);
    // A LINK_PROTOCOL RESET_MSG of 56 bytes: user 7 in bits 25..28 of word 0.
    assert_eq!(tipc_size(&first.tipc), 56);
    assert_eq!((first.tipc[0] >> 1) & 0xF, 7);
}

#[test]
fn udp_session_matches_tshark() {
    let (frames, stats) = read_fixture("pcap", "udp-session.pcap");
    // `tshark -r udp-session.pcap | wc -l` = 1307.
    assert_eq!(stats.frames, 1307);
    // `tshark -r udp-session.pcap -Y udp.port==6118 | wc -l` = 715 (with IP
    // reassembly, the default; also `-Y tipc`). These are 603 unfragmented
    // datagrams and 112 reassembled ones.
    assert_eq!(stats.tipc, 715);
    assert_eq!(frames.len(), 715);
    // `tshark -r udp-session.pcap -Y ip.reassembled.length | wc -l` = 112;
    // `-Y 'ip.flags.mf==1 || ip.frag_offset>0'` = 696 fragment frames, of
    // which `-Y ip.flags.mf==1` = 584 are not the completing one.
    assert_eq!(stats.ip_datagrams_reassembled, 112);
    assert_eq!(stats.ip_fragments_reassembled, 584);
    // `tshark -r udp-session.pcap -Y '!tipc' -T fields -e frame.protocols |
    // sort | uniq -c`: 4 ARP, 4 IGMP, 584 non-final IP fragments ("data").
    assert_eq!(stats.skipped, 8);
    assert_eq!(stats.malformed, 0);
    assert_eq!(stats.ip_fragments_pending, 0);
    assert_eq!(stats.ip_fragments_evicted, 0);
    assert_eq!(stats.ip_fragment_overlaps, 0);
    assert_eq!(stats.ipv4_checksum_errors, 0);
    assert!(!stats.truncated);
    assert!(stats.is_consistent(), "{stats:?}");

    // `tshark -r udp-session.pcap -Y udp.port==6118 -T fields -e frame.number
    // -e udp.length -e ip.fragment.count`, summed with awk: frame numbers add
    // up to 410023, payloads (udp.length - 8) to 995464 bytes, fragment
    // counts of the reassembled ones to 696.
    assert_eq!(frames.iter().map(|f| f.number).sum::<usize>(), 410_023);
    assert_eq!(frames.iter().map(|f| f.tipc.len()).sum::<usize>(), 995_464);
    let fragments: usize = frames
        .iter()
        .filter_map(|f| match f.link {
            Carrier::Udp {
                reassembled_from, ..
            } if reassembled_from > 1 => Some(reassembled_from),
            _ => None,
        })
        .sum();
    assert_eq!(fragments, 696);

    // Per direction (same command with -e ip.src -e ip.dst, `uniq -c`).
    let node1 = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11));
    let node2 = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 12));
    let mcast = IpAddr::V4(Ipv4Addr::new(228, 0, 18, 103));
    let mut directions: BTreeMap<(IpAddr, IpAddr), usize> = BTreeMap::new();
    for frame in &frames {
        let Carrier::Udp { src, dst, .. } = frame.link else {
            panic!("frame {}: not UDP", frame.number);
        };
        assert_eq!((src.port(), dst.port()), (TIPC_UDP_PORT, TIPC_UDP_PORT));
        *directions.entry((src.ip(), dst.ip())).or_default() += 1;
        // Over UDP the payload is exactly the TIPC message.
        assert_eq!(frame.tipc[0] >> 5, 2, "frame {}", frame.number);
        assert_eq!(
            tipc_size(&frame.tipc),
            frame.tipc.len(),
            "frame {}",
            frame.number
        );
    }
    let expected: BTreeMap<_, _> = [
        ((node1, node2), 440),
        ((node1, mcast), 28),
        ((node2, node1), 230),
        ((node2, mcast), 17),
    ]
    .into();
    assert_eq!(directions, expected);

    // Frames 55..57 are the three fragments of one 3048-byte UDP datagram
    // (udp.length 3048); frame 88 completes a 10-fragment one of 13936.
    let by_number = |number: usize| {
        frames
            .iter()
            .find(|f| f.number == number)
            .unwrap_or_else(|| panic!("no message at frame {number}"))
    };
    assert!(frames.iter().all(|f| f.number != 55 && f.number != 56));
    for (number, fragments, udp_length) in [(57, 3, 3048), (88, 10, 13_936)] {
        let frame = by_number(number);
        assert!(
            matches!(frame.link, Carrier::Udp { reassembled_from, .. } if reassembled_from == fragments),
            "frame {number}: {:?}",
            frame.link
        );
        assert_eq!(frame.tipc.len(), udp_length - 8);
        assert_eq!(tipc_size(&frame.tipc), udp_length - 8);
    }
    assert_eq!(
        by_number(1).link,
        Carrier::Udp {
            src: SocketAddr::new(node1, 6118),
            dst: SocketAddr::new(mcast, 6118),
            reassembled_from: 1,
        }
    );
}

#[test]
fn pcapng_copies_match_the_pcap_originals() {
    // Made with `editcap -F pcapng`; the -nsec one from a nanosecond pcap
    // (`editcap -F nsecpcap`), so its interface has if_tsresol = 9.
    for (pcapng, pcap) in [
        ("eth-02-link-setup.pcapng", "eth-02-link-setup.pcap"),
        ("eth-02-link-setup-nsec.pcapng", "eth-02-link-setup.pcap"),
        ("udp-session.pcapng", "udp-session.pcap"),
    ] {
        let original = read_fixture("pcap", pcap);
        let copy = read_fixture("pcapng", pcapng);
        assert!(!copy.0.is_empty());
        assert_eq!(copy, original, "{pcapng}");
    }
}

/// Converts a little-endian classic pcap to big-endian.
fn to_big_endian(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let swap = |out: &mut Vec<u8>, at: usize, len: usize| out[at..at + len].reverse();
    for (at, len) in [(0, 4), (4, 2), (6, 2), (8, 4), (12, 4), (16, 4), (20, 4)] {
        swap(&mut out, at, len);
    }
    for record in pcap_record_offsets(bytes) {
        for field in 0..4 {
            swap(&mut out, record + field * 4, 4);
        }
    }
    out
}

#[test]
fn big_endian_pcap_reads_the_same() {
    for name in ["eth-02-link-setup.pcap", "udp-session.pcap"] {
        let bytes = fixture_bytes("pcap", name);
        let big = to_big_endian(&bytes);
        assert_eq!(&big[..4], &[0xA1, 0xB2, 0xC3, 0xD4]);
        assert_eq!(
            read_capture_bytes(&big).expect("big-endian pcap"),
            read_fixture("pcap", name)
        );
    }
}

fn ethernet_addresses(frame: &CapturedFrame) -> ([u8; 6], [u8; 6]) {
    match &frame.link {
        Carrier::Ethernet { src, dst, .. } => (*src, *dst),
        Carrier::Udp { .. } => panic!("not Ethernet"),
    }
}

#[test]
fn pcap_writer_round_trip() {
    let (original, _) = read_fixture("pcap", "eth-02-link-setup.pcap");
    let mut writer = PcapWriter::new(Vec::new()).expect("header");
    for frame in &original {
        let (src, dst) = ethernet_addresses(frame);
        writer
            .write_frame(
                frame.timestamp_ns,
                &tipc_ethernet_frame(src, dst, &frame.tipc),
            )
            .expect("write");
    }
    writer.flush().expect("flush");
    let bytes = writer.into_inner();
    assert_eq!(
        &bytes[..4],
        &[0x4D, 0x3C, 0xB2, 0xA1],
        "nanosecond little-endian magic"
    );
    let (frames, stats) = read_capture_bytes(&bytes).expect("read back");
    assert_eq!(frames, original);
    assert_eq!((stats.frames, stats.tipc), (12, 12));

    // Nanosecond timestamps survive (the fixture only has microseconds).
    let mut writer = PcapWriter::new(Vec::new()).expect("header");
    writer
        .write_frame(
            1_795_550_294_123_456_789,
            &tipc_ethernet_frame(KTNODE1_MAC, KTNODE2_MAC, &original[0].tipc),
        )
        .expect("write");
    let (frames, _) = read_capture_bytes(&writer.into_inner()).expect("read back");
    assert_eq!(frames[0].timestamp_ns, 1_795_550_294_123_456_789);

    // Out-of-range input is refused, not written.
    let mut writer = PcapWriter::new(Vec::new()).expect("header");
    assert!(writer.write_frame(u64::MAX, &[0; 60]).is_err());
    assert!(writer.write_frame(0, &vec![0; 300_000]).is_err());
    assert_eq!(writer.into_inner().len(), 24);
}

/// Inserts a VLAN tag (TPID + TCI) after the MAC addresses of a frame.
fn insert_tag(frame: &[u8], tpid: u16, vid: u16) -> Vec<u8> {
    let mut tagged = frame[..12].to_vec();
    tagged.extend_from_slice(&tpid.to_be_bytes());
    tagged.extend_from_slice(&(0x2000 | vid).to_be_bytes()); // priority 1
    tagged.extend_from_slice(&frame[12..]);
    tagged
}

#[test]
fn vlan_tagged_capture_round_trip() {
    let (original, _) = read_fixture("pcap", "eth-02-link-setup.pcap");
    let mut writer = PcapWriter::new(Vec::new()).expect("header");
    let mut expected_vlans = Vec::new();
    for (index, frame) in original.iter().enumerate() {
        let (src, dst) = ethernet_addresses(frame);
        let plain = tipc_ethernet_frame(src, dst, &frame.tipc);
        // Alternate: untagged, 802.1Q, QinQ (802.1ad outer + 802.1Q inner).
        let (bytes, vlans) = match index % 3 {
            0 => (plain, vec![]),
            1 => (insert_tag(&plain, 0x8100, 42), vec![42]),
            _ => (
                insert_tag(&insert_tag(&plain, 0x8100, 7), 0x88A8, 3000),
                vec![3000, 7],
            ),
        };
        expected_vlans.push(vlans);
        writer
            .write_frame(frame.timestamp_ns, &bytes)
            .expect("write");
    }
    let (frames, stats) = read_capture_bytes(&writer.into_inner()).expect("read back");
    assert_eq!(stats.tipc, original.len());
    for ((frame, original), vlans) in frames.iter().zip(&original).zip(expected_vlans) {
        assert_eq!(frame.tipc, original.tipc);
        assert_eq!(frame.number, original.number);
        let (src, dst) = ethernet_addresses(original);
        assert_eq!(frame.link, Carrier::Ethernet { src, dst, vlans });
    }
}

fn udp_addrs(ip_id: u16) -> UdpFrameAddrs {
    UdpFrameAddrs {
        src_mac: KTNODE2_MAC,
        dst_mac: KTNODE1_MAC,
        src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 12), TIPC_UDP_PORT),
        dst: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 11), TIPC_UDP_PORT),
        ip_id,
    }
}

#[test]
fn udp_frames_round_trip_and_reassemble_out_of_order() {
    let (original, _) = read_fixture("pcap", "udp-session.pcap");
    // The 3040- and 13928-byte messages of frames 57 and 88, and a small one.
    let messages: Vec<&CapturedFrame> = original
        .iter()
        .filter(|f| [1, 57, 88].contains(&f.number))
        .collect();
    assert_eq!(messages.len(), 3);

    let mut writer = PcapWriter::new(Vec::new()).expect("header");
    let mut number = 0;
    let mut expected = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let addrs = udp_addrs(u16::try_from(index).expect("small") + 100);
        // Unfragmented.
        writer
            .write_frame(
                message.timestamp_ns,
                &tipc_udp_frame(&addrs, &message.tipc).expect("fits"),
            )
            .expect("write");
        number += 1;
        expected.push((number, 1));
        // Fragmented at 1500, in reverse order, with the second-to-last
        // fragment duplicated.
        let mut fragments = tipc_udp_fragments(&addrs, &message.tipc, 1500).expect("fits");
        let count = fragments.len();
        fragments.reverse();
        if count > 1 {
            let duplicate = fragments[1].clone();
            fragments.insert(1, duplicate);
        }
        for fragment in &fragments {
            writer
                .write_frame(message.timestamp_ns, fragment)
                .expect("write");
        }
        number += fragments.len();
        expected.push((number, fragments.len()));
        // As the kernel's IP layer split the originals (3 and 10 fragments).
        assert_eq!(count, (message.tipc.len() + 8).div_ceil(1480));
        let original_count = match message.link {
            Carrier::Udp {
                reassembled_from, ..
            } => reassembled_from,
            Carrier::Ethernet { .. } => 0,
        };
        assert_eq!(count, original_count);
    }
    let (frames, stats) = read_capture_bytes(&writer.into_inner()).expect("read back");
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(
        stats.ipv4_checksum_errors, 0,
        "builder writes correct header checksums"
    );
    assert_eq!(
        stats.ip_fragment_overlaps, 2,
        "one duplicate in each fragmented datagram"
    );
    let got: Vec<(usize, usize)> = frames
        .iter()
        .map(|f| match f.link {
            Carrier::Udp {
                reassembled_from, ..
            } => (f.number, reassembled_from),
            Carrier::Ethernet { .. } => (f.number, 0),
        })
        .collect();
    assert_eq!(got, expected);
    for (pair, message) in frames.chunks(2).zip(&messages) {
        assert_eq!(pair[0].tipc, message.tipc);
        assert_eq!(pair[1].tipc, message.tipc);
    }
}

#[test]
fn builders_refuse_what_cannot_be_sent() {
    let addrs = udp_addrs(1);
    assert!(tipc_udp_frame(&addrs, &vec![0; 65_508]).is_err());
    assert!(tipc_udp_frame(&addrs, &vec![0; 65_507]).is_ok());
    assert!(tipc_udp_fragments(&addrs, &[0; 100], 27).is_err());
    let fragments = tipc_udp_fragments(&addrs, &[0; 100], 28).expect("tiny MTU still works");
    assert_eq!(fragments.len(), 14); // 108 bytes of UDP in 8-byte pieces
    let (frames, _) = {
        let mut writer = PcapWriter::new(Vec::new()).expect("header");
        for fragment in &fragments {
            writer.write_frame(0, fragment).expect("write");
        }
        read_capture_bytes(&writer.into_inner()).expect("read back")
    };
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].tipc, vec![0; 100]);
}

#[test]
fn not_a_capture_and_missing_file_are_errors() {
    assert!(matches!(
        read_capture_bytes(b""),
        Err(CaptureError::NotACapture { .. })
    ));
    assert!(matches!(
        read_capture_bytes(b"GET / HTTP/1.1\r\n"),
        Err(CaptureError::NotACapture { .. })
    ));
    let missing = fixtures().join("pcap/no-such-file.pcap");
    let error = read_capture(&missing).expect_err("missing file");
    assert!(matches!(error, CaptureError::Io { .. }));
    assert!(error.to_string().contains("no-such-file.pcap"), "{error}");
}

#[test]
fn unsupported_link_type_is_an_error() {
    let mut bytes = fixture_bytes("pcap", "eth-02-link-setup.pcap");
    bytes[20..24].copy_from_slice(&147_u32.to_le_bytes()); // LINKTYPE_USER0
    assert!(matches!(
        read_capture_bytes(&bytes),
        Err(CaptureError::UnsupportedLinkType { link_type: 147 })
    ));
}

#[test]
fn truncated_files_give_a_prefix_of_the_frames() {
    let bytes = fixture_bytes("pcap", "eth-02-link-setup.pcap");
    let (all, _) = read_capture_bytes(&bytes).expect("full file");
    let records = pcap_record_offsets(&bytes);
    for cut in 0..bytes.len() {
        match read_capture_bytes(&bytes[..cut]) {
            Ok((frames, stats)) => {
                assert!(cut >= 24, "cut {cut}: a partial header must not read");
                let complete = records.iter().enumerate().filter(|&(i, &start)| {
                    let end = records.get(i + 1).copied().unwrap_or(bytes.len());
                    start < cut && end <= cut
                });
                let complete = complete.count();
                assert_eq!(frames.len(), complete, "cut {cut}");
                assert_eq!(frames, all[..complete], "cut {cut}");
                assert_eq!(
                    stats.truncated,
                    cut != 24 && !records.contains(&cut),
                    "cut {cut}"
                );
            }
            Err(error) => assert!(cut < 24, "cut {cut}: {error}"),
        }
    }
    let pcapng = fixture_bytes("pcapng", "eth-02-link-setup.pcapng");
    for cut in 0..pcapng.len() {
        if let Ok((frames, stats)) = read_capture_bytes(&pcapng[..cut]) {
            assert_eq!(frames, all[..frames.len()], "pcapng cut {cut}");
            assert!(stats.is_consistent());
        }
    }
}

/// Builds a little-endian pcapng block.
fn block(block_type: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let total = u32::try_from(12 + padded).expect("small");
    let mut out = block_type.to_le_bytes().to_vec();
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(8 + padded, 0);
    out.extend_from_slice(&total.to_le_bytes());
    out
}

fn section_header() -> Vec<u8> {
    let mut body = 0x1A2B_3C4D_u32.to_le_bytes().to_vec();
    body.extend_from_slice(&[1, 0, 0, 0]); // version 1.0
    body.extend_from_slice(&(-1_i64).to_le_bytes());
    block(0x0A0D_0D0A, &body)
}

fn interface(link_type: u16, snaplen: u32, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = link_type.to_le_bytes().to_vec();
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&snaplen.to_le_bytes());
    for (code, value) in options {
        body.extend_from_slice(&code.to_le_bytes());
        body.extend_from_slice(&u16::try_from(value.len()).expect("small").to_le_bytes());
        body.extend_from_slice(value);
        body.resize(body.len().div_ceil(4) * 4, 0);
    }
    if !options.is_empty() {
        body.extend_from_slice(&[0; 4]);
    }
    block(1, &body)
}

fn enhanced_packet(interface: u32, timestamp: u64, data: &[u8]) -> Vec<u8> {
    let mut body = interface.to_le_bytes().to_vec();
    body.extend_from_slice(&u32::try_from(timestamp >> 32).expect("high").to_le_bytes());
    body.extend_from_slice(
        &u32::try_from(timestamp & 0xFFFF_FFFF)
            .expect("low")
            .to_le_bytes(),
    );
    let len = u32::try_from(data.len()).expect("small").to_le_bytes();
    body.extend_from_slice(&len);
    body.extend_from_slice(&len);
    body.extend_from_slice(data);
    block(6, &body)
}

#[test]
fn pcapng_timestamp_resolutions_simple_packets_and_link_types() {
    let (original, _) = read_fixture("pcap", "eth-02-link-setup.pcap");
    let message = &original[0].tipc;
    let frame = tipc_ethernet_frame(KTNODE1_MAC, KTNODE2_MAC, message);
    let mut raw_ip = Vec::new();
    let udp = tipc_udp_frame(&udp_addrs(5), message).expect("fits");
    raw_ip.extend_from_slice(&udp[14..]);

    let mut file = section_header();
    file.extend(interface(1, 0, &[])); // 0: Ethernet, microseconds
    file.extend(interface(1, 0, &[(9, &[0x80 | 20])])); // 1: 2^-20 s
    file.extend(interface(101, 0, &[(9, &[3]), (14, &10_i64.to_le_bytes())])); // 2: raw IP, ms, +10 s
    file.extend(interface(147, 0, &[])); // 3: unsupported
    file.extend(enhanced_packet(0, 1_500_000, &frame)); // 1.5 s
    file.extend(enhanced_packet(1, 3 << 19, &frame)); // 1.5 s
    file.extend(enhanced_packet(2, 1_500, &raw_ip)); // 11.5 s
    file.extend(enhanced_packet(3, 0, &frame)); // skipped
    file.extend(enhanced_packet(9, 0, &frame)); // no such interface
    let mut simple = u32::try_from(frame.len())
        .expect("small")
        .to_le_bytes()
        .to_vec();
    simple.extend_from_slice(&frame);
    file.extend(block(3, &simple)); // interface 0, no timestamp
    file.extend(block(0x0BAD, b"unknown block types are ignored"));

    let (frames, stats) = read_capture_bytes(&file).expect("pcapng");
    let summary: Vec<(usize, u64)> = frames.iter().map(|f| (f.number, f.timestamp_ns)).collect();
    assert_eq!(
        summary,
        [
            (1, 1_500_000_000),
            (2, 1_500_000_000),
            (3, 11_500_000_000),
            (6, 0)
        ]
    );
    assert!(frames.iter().all(|f| &f.tipc == message));
    assert!(matches!(frames[2].link, Carrier::Udp { .. }));
    assert_eq!(
        (stats.frames, stats.tipc, stats.skipped, stats.malformed),
        (6, 4, 1, 1)
    );
    assert!(stats.is_consistent());

    // Only unsupported interfaces: an error naming the link type.
    let mut file = section_header();
    file.extend(interface(147, 0, &[]));
    file.extend(enhanced_packet(0, 0, &frame));
    assert!(matches!(
        read_capture_bytes(&file),
        Err(CaptureError::UnsupportedLinkType { link_type: 147 })
    ));

    // Damage inside a block that fits in the file (a custom option too
    // short for its enterprise number) is corrupt structure, not truncation.
    let mut file = section_header();
    file.extend(interface(1, 0, &[(2989, &[1, 2])]));
    file.extend(enhanced_packet(0, 0, &frame));
    assert!(matches!(
        read_capture_bytes(&file),
        Err(CaptureError::Corrupt { .. })
    ));

    // A block whose trailing length disagrees is corrupt structure.
    let mut file = section_header();
    file.extend(interface(1, 0, &[]));
    let mut packet = enhanced_packet(0, 0, &frame);
    let last = packet.len() - 1;
    packet[last] ^= 0x40;
    file.extend(packet);
    assert!(matches!(
        read_capture_bytes(&file),
        Err(CaptureError::Corrupt { .. })
    ));
}

#[test]
fn malformed_frames_are_counted_not_fatal() {
    let (original, _) = read_fixture("pcap", "udp-session.pcap");
    let message = &original
        .iter()
        .find(|f| f.number == 88)
        .expect("frame 88")
        .tipc;
    let addrs = udp_addrs(77);
    let fragments = tipc_udp_fragments(&addrs, message, 1500).expect("fits");
    let good = tipc_udp_frame(&udp_addrs(78), &message[..100]).expect("fits");

    let mut writer = PcapWriter::new(Vec::new()).expect("header");
    // 1: IPv4 header cut after 10 bytes.
    writer.write_frame(0, &good[..14 + 10]).expect("write");
    // 2: total length larger than the frame.
    writer
        .write_frame(0, &good[..good.len() - 1])
        .expect("write");
    // 3: a fragment at offset 65,528 (the largest encodable) of 1480 bytes.
    let mut absurd = fragments[1].clone();
    absurd[14 + 6..14 + 8].copy_from_slice(&(0x2000_u16 | 0x1FFF).to_be_bytes());
    absurd[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    writer.write_frame(0, &absurd).expect("write");
    // 4: Ethernet header cut.
    writer.write_frame(0, &good[..13]).expect("write");
    // 5: empty frame.
    writer.write_frame(0, &[]).expect("write");
    // 6..: all but the last fragment of a datagram, never completed.
    for fragment in &fragments[..fragments.len() - 1] {
        writer.write_frame(0, fragment).expect("write");
    }
    // Then a good one.
    writer.write_frame(0, &good).expect("write");
    let (frames, stats) = read_capture_bytes(&writer.into_inner()).expect("read");
    assert_eq!(stats.malformed, 5, "{stats:?}");
    assert_eq!(stats.ip_fragments_pending, fragments.len() - 1);
    assert_eq!(
        stats.ipv4_checksum_errors, 1,
        "the absurd fragment's zeroed checksum"
    );
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].tipc, &message[..100]);
    assert_eq!(frames[0].number, stats.frames);
    assert!(stats.is_consistent(), "{stats:?}");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..500 {
        let len = rng.below(400);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Give most rounds a valid magic so the parsers get exercised.
        let magics: [&[u8]; 5] = [
            &[0xD4, 0xC3, 0xB2, 0xA1],
            &[0xA1, 0xB2, 0xC3, 0xD4],
            &[0x4D, 0x3C, 0xB2, 0xA1],
            &[0x0A, 0x0D, 0x0D, 0x0A],
            &[],
        ];
        let magic = magics[round % magics.len()];
        if bytes.len() >= magic.len() {
            bytes[..magic.len()].copy_from_slice(magic);
        }
        if let Ok((frames, stats)) = read_capture_bytes(&bytes) {
            assert_eq!(frames.len(), stats.tipc);
            assert!(stats.is_consistent(), "{stats:?}");
        }
    }
}

/// A small deterministic PRNG (xorshift64) for the mutation tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound.max(1)).expect("fits")).expect("fits")
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// Mutates `seed` bytes: flips, overwrites with boundary values, truncates,
/// duplicates a range.
fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(8) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.byte(),
            2 => bytes[at] = [0x00, 0xFF, 0x7F, 0x80, 0x45, 0x60][rng.below(6)],
            3 => bytes.truncate(at),
            4 => {
                let end = (at + rng.below(64)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, copy);
            }
            _ => {
                let end = (at + 4).min(bytes.len());
                for byte in &mut bytes[at..end] {
                    *byte = 0xFF;
                }
            }
        }
    }
    bytes
}

#[test]
fn mutated_captures_never_panic() {
    // Seeds: an Ethernet capture as pcap and pcapng, and the first 130
    // frames of the UDP capture (IP fragments included).
    let udp = fixture_bytes("pcap", "udp-session.pcap");
    let offsets = pcap_record_offsets(&udp);
    let udp_prefix = udp[..offsets[130]].to_vec();
    let seeds = [
        fixture_bytes("pcap", "eth-02-link-setup.pcap"),
        fixture_bytes("pcapng", "eth-02-link-setup-nsec.pcapng"),
        udp_prefix,
    ];
    // UTIPC_FUZZ_ITERATIONS raises the count for a longer local run.
    let iterations: usize = std::env::var("UTIPC_FUZZ_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2000);
    for (index, seed) in seeds.iter().enumerate() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ u64::try_from(index).expect("small"));
        let mut read = 0;
        for _ in 0..iterations {
            let bytes = mutate(&mut rng, seed);
            if let Ok((frames, stats)) = read_capture_bytes(&bytes) {
                read += 1;
                assert_eq!(frames.len(), stats.tipc);
                assert!(stats.is_consistent(), "{stats:?}");
                assert!(frames.windows(2).all(|w| w[0].number < w[1].number));
            }
        }
        // The mutations are mostly survivable, so the reader was exercised.
        assert!(
            read > iterations / 4,
            "seed {index}: only {read} mutated files read"
        );
    }
}

#[test]
fn big_endian_pcapng_section() {
    // A big-endian section: every field of the blocks in network order.
    let block_be = |block_type: u32, body: &[u8]| {
        let padded = body.len().div_ceil(4) * 4;
        let total = u32::try_from(12 + padded).expect("small");
        let mut out = block_type.to_be_bytes().to_vec();
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(body);
        out.resize(8 + padded, 0);
        out.extend_from_slice(&total.to_be_bytes());
        out
    };
    let (original, _) = read_fixture("pcap", "eth-02-link-setup.pcap");
    let mut header = 0x1A2B_3C4D_u32.to_be_bytes().to_vec();
    header.extend_from_slice(&[0, 1, 0, 0]);
    header.extend_from_slice(&(-1_i64).to_be_bytes());
    let mut file = block_be(0x0A0D_0D0A, &header);
    // Ethernet, snaplen 0, if_tsresol = 9 (nanoseconds).
    let mut idb = vec![0, 1, 0, 0, 0, 0, 0, 0];
    idb.extend_from_slice(&[0, 9, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0]);
    file.extend(block_be(1, &idb));
    for frame in &original {
        let (src, dst) = ethernet_addresses(frame);
        let data = tipc_ethernet_frame(src, dst, &frame.tipc);
        let mut epb = 0_u32.to_be_bytes().to_vec();
        epb.extend_from_slice(
            &u32::try_from(frame.timestamp_ns >> 32)
                .expect("high")
                .to_be_bytes(),
        );
        epb.extend_from_slice(
            &u32::try_from(frame.timestamp_ns & 0xFFFF_FFFF)
                .expect("low")
                .to_be_bytes(),
        );
        let len = u32::try_from(data.len()).expect("small").to_be_bytes();
        epb.extend_from_slice(&len);
        epb.extend_from_slice(&len);
        epb.extend_from_slice(&data);
        file.extend(block_be(6, &epb));
    }
    let (frames, stats) = read_capture_bytes(&file).expect("big-endian pcapng");
    assert_eq!(frames, original);
    assert_eq!(stats.frames, original.len());
}
