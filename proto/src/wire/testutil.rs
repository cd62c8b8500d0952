//! Helpers for the wire tests: hex fixtures, 0xa5-filled buffers and the kernel captures.

use std::path::PathBuf;

/// Decodes a hex string (whitespace ignored); panics on bad hex, which only test constants feed.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|c| {
            let t = std::str::from_utf8(c).expect("ascii");
            u8::from_str_radix(t, 16).expect("hex digit")
        })
        .collect()
}

/// A buffer filled with 0xa5, so that a byte an emitter forgot to write shows up.
pub(crate) fn a5_buffer(len: usize) -> Vec<u8> {
    vec![0xa5; len]
}

/// The directory with the kernel captures.
pub(crate) fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pcap")
}

/// The TIPC messages of an Ethernet capture (the bytes after the 14-byte Ethernet header), with
/// their 1-based frame numbers.
pub(crate) fn eth_fixture(name: &str) -> Vec<(usize, Vec<u8>)> {
    let path = fixture_dir().join(name);
    let file = std::fs::File::open(&path).expect("fixture present");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("pcap");
    let mut out = Vec::new();
    let mut n = 0;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("pcap record");
        n += 1;
        let data = &pkt.data;
        assert_eq!(&data[12..14], &[0x88, 0xca], "{name} frame {n} is TIPC");
        out.push((n, data[14..].to_vec()));
    }
    out
}

/// Emits `repr` into a 0xa5-filled buffer of exactly `buffer_len` bytes and returns it.
#[macro_export]
#[doc(hidden)]
macro_rules! emit_a5 {
    ($repr:expr) => {{
        let repr = &$repr;
        let mut buf = $crate::wire::testutil::a5_buffer(repr.buffer_len());
        repr.emit(&mut $crate::wire::Packet::new_unchecked(&mut buf[..]))
            .expect("emit");
        buf
    }};
}
