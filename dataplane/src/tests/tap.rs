//! The pcap tap on real bearers: the files hold exactly the frames exchanged, and tshark's TIPC
//! dissector reads them (Ethernet, UDP/IPv4 and UDP/IPv6).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use utipc_proto::bearer::Dest;
use utipc_proto::wire::discovery::{DiscType, MediaAddr};

use super::netns::{A4, A6, B4, B6, VETH, available, veth_pair};
use super::{ARRIVE, NET_ID, advertised, discovery, expect_frame};
use crate::bearer::packet::PacketBearer;
use crate::bearer::pcap_tap::PcapTap;
use crate::bearer::udp::{UdpBearer, UdpBearerConfig};
use crate::bearer::{Bearer, RxMeta};

/// A capture file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> Self {
        Self(std::env::temp_dir().join(format!("utdp-{}-tap-{tag}.pcap", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A DSC_REQ from the tapped bearer to `peer` and a DSC_RESP back, received with `recv_batch`;
/// returns the records of the capture.
fn exchange<B: Bearer>(
    tapped: &mut PcapTap<B>,
    peer: &mut dyn Bearer,
    file: &Path,
) -> Vec<Vec<u8>> {
    tapped.start_file(file).expect("start capture");
    let req = discovery(DiscType::Req, 1, tapped.local_addr());
    tapped.send(&Dest::Broadcast, &req).expect("send DSC_REQ");
    let (got, _) = expect_frame(peer, "DSC_REQ at the peer");
    let resp = discovery(DiscType::Resp, 2, peer.local_addr());
    peer.send(&Dest::Unicast(advertised(&got)), &resp)
        .expect("send DSC_RESP");

    let mut scratch = vec![0u8; 65_536];
    let mut seen: Vec<(Vec<u8>, RxMeta)> = Vec::new();
    assert!(
        tapped.wait_readable(ARRIVE).expect("poll"),
        "DSC_RESP arrives"
    );
    let n = tapped
        .recv_batch(&mut scratch, 16, &mut |f, m| seen.push((f.to_vec(), *m)))
        .expect("recv_batch");
    assert_eq!(n, 1);
    assert_eq!(seen[0].0, resp);
    tapped.stop().expect("stop capture");
    assert!(!tapped.is_capturing());
    assert_eq!(tapped.tap_stats().frames_written, 2);

    let bytes = std::fs::read(file).expect("read capture");
    let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("valid pcap");
    let mut records = Vec::new();
    while let Some(p) = r.next_packet() {
        records.push(p.expect("valid record").data.into_owned());
    }
    assert_eq!(records.len(), 2);
    assert!(
        records[0].ends_with(&req),
        "first record carries the DSC_REQ"
    );
    assert!(
        records[1].ends_with(&resp),
        "second record carries the DSC_RESP"
    );
    records
}

/// TIPC user and message type of each record, as tshark's dissector reads them; `None` if
/// tshark is not installed (a failure instead when `UTIPC_REQUIRE_TSHARK` is set).
fn tshark_users(file: &Path) -> Option<Vec<String>> {
    let out = match Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-T",
            "fields",
            "-e",
            "tipc.usr",
            "-e",
            "tipcv2.data_msg_type",
        ])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var_os("UTIPC_REQUIRE_TSHARK").is_none(),
                "tshark is required (UTIPC_REQUIRE_TSHARK is set) but cannot run: {e}; \
                 apt-get install tshark"
            );
            eprintln!("skipping the tshark check: tshark is not installed ({e})");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn pcap_tap_captures_real_bearers_for_tshark() {
    if !available("pcap_tap_captures_real_bearers_for_tshark") {
        return;
    }
    let pair = veth_pair(None, None);
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let udp = |s: &str| UdpBearer::open(UdpBearerConfig::new(ip(s), NET_ID)).expect("open udp");
    let (mut a4, mut a6, mut ae) = pair.a.run(|| {
        (
            PcapTap::new(udp(A4)),
            PcapTap::new(udp(A6)),
            PcapTap::new(PacketBearer::open(VETH).expect("open eth")),
        )
    });
    let (mut b4, mut b6, mut be) = pair.b.run(|| {
        (
            udp(B4),
            udp(B6),
            PacketBearer::open(VETH).expect("open eth"),
        )
    });

    let files = [
        TempFile::new("udp4"),
        TempFile::new("udp6"),
        TempFile::new("eth"),
    ];
    let r4 = exchange(&mut a4, &mut b4, &files[0].0);
    assert_eq!(r4[0].len(), 14 + 20 + 8 + 76);
    assert_eq!(&r4[0][30..34], &[228, 0, 18, 103], "to the group");
    let r6 = exchange(&mut a6, &mut b6, &files[1].0);
    assert_eq!(r6[1].len(), 14 + 40 + 8 + 76);
    let re = exchange(&mut ae, &mut be, &files[2].0);
    let (MediaAddr::Eth(mac_a), MediaAddr::Eth(mac_b)) = (ae.local_addr(), be.local_addr()) else {
        panic!("Ethernet bearers have MAC addresses");
    };
    assert_eq!(
        &re[0][..14],
        &[[0xff; 6], mac_a, [0x88, 0xca, 0, 0, 0, 0]].concat()[..14]
    );
    assert_eq!(&re[1][..12], &[mac_a, mac_b].concat()[..]);

    for f in &files {
        if let Some(lines) = tshark_users(&f.0) {
            assert_eq!(
                lines,
                ["13\t0", "13\t1"],
                "LINK_CONFIG REQ and RESP in {}",
                f.0.display()
            );
        }
    }
}
