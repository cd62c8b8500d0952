//! Frames emitted by the codec, written to a pcap, must be read by Wireshark's TIPC dissector
//! (tshark) with no malformed-packet warning: one message of every user and type, over Ethernet
//! and over UDP (with IP fragmentation of a 14,000-byte packet).
//!
//! tshark comes from the Debian package; `scripts/test.sh` installs it and sets
//! `UTIPC_REQUIRE_TSHARK=1`, which turns a missing tshark into a failure instead of a skip.

use std::net::SocketAddrV4;
use std::path::Path;
use std::process::Command;

use utipc_control::capture::{
    PcapWriter, UdpFrameAddrs, tipc_ethernet_frame, tipc_udp_fragments, tipc_udp_frame,
};
use utipc_proto::wire::bundler::BundleRepr;
use utipc_proto::wire::common::{Common, Flags, Importance, Internal};
use utipc_proto::wire::conn_mgr::{ConnMgrRepr, ConnMgrType};
use utipc_proto::wire::crypto::{CryptoRepr, CryptoType};
use utipc_proto::wire::data::{DataRepr, DataType, ErrorCode};
use utipc_proto::wire::discovery::{DiscType, DiscoveryRepr, MediaAddr, caps};
use utipc_proto::wire::fragmenter::{FragType, FragmentRepr};
use utipc_proto::wire::group_proto::{GroupProtoRepr, GroupProtoType};
use utipc_proto::wire::link_proto::{GapAckBlock, GapAckRecord, LinkProtoRepr, LinkProtoType};
use utipc_proto::wire::name_distr::{NameDistrRepr, NameDistrType, Publication, encode_items};
use utipc_proto::wire::tunnel::{TunnelRepr, TunnelType};
use utipc_proto::wire::{MessageRepr, Packet};

const A: u32 = 0x0100_1001;
const B: u32 = 0x0100_1002;
const MAC_A: [u8; 6] = [0x02, 0, 0x18, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0x18, 0, 0, 2];

fn common(seqno: u16) -> Common {
    Common {
        flags: Flags::default(),
        bcast_ack: 3,
        ack: seqno.wrapping_sub(1),
        seqno,
        prev_node: A,
    }
}

fn internal<'a>(seqno: u16, payload: &'a [u8]) -> Internal<'a> {
    Internal {
        common: common(seqno),
        orig_node: A,
        dest_node: B,
        extra_header: &[],
        payload,
    }
}

fn data<'a>(t: DataType, header_len: usize, payload: &'a [u8]) -> DataRepr<'a> {
    let named = header_len >= 40;
    DataRepr {
        importance: Importance::Medium,
        msg_type: t,
        common: Common {
            flags: Flags {
                dest_droppable: t != DataType::Conn,
                ..Flags::default()
            },
            ..common(10)
        },
        error: ErrorCode::Ok,
        reroute_count: 0,
        lookup_scope: if named { 2 } else { 0 },
        header_len,
        orig_port: 0x1234_5678,
        dest_port: 0x8765_4321,
        orig_node: if header_len >= 32 { A } else { 0 },
        dest_node: if header_len >= 32 { B } else { 0 },
        name_type: if named { 18888 } else { 0 },
        name_lower: if named { 17 } else { 0 },
        name_upper: if header_len >= 44 { 100 } else { 0 },
        extra_header: &[],
        payload,
    }
}

fn link_proto(t: LinkProtoType, payload: &[u8]) -> LinkProtoRepr<'_> {
    LinkProtoRepr {
        base: Internal {
            common: Common {
                seqno: if t == LinkProtoType::State { 5 } else { 32768 },
                ..common(0)
            },
            ..internal(0, payload)
        },
        msg_type: t,
        seq_gap: if t == LinkProtoType::Activate { 1 } else { 0 },
        last_bcast: 0,
        next_sent: 1,
        session: 0x1111,
        bc_ack_invalid: true,
        peer_stopping: false,
        redundant_link: false,
        bearer_id: 0,
        priority: 0,
        net_plane: 0,
        probe: t == LinkProtoType::State,
        bc_gap: 0,
        max_pkt: if t == LinkProtoType::State { 0 } else { 1500 },
        tolerance: 0,
    }
}

/// One emitted message of every user and type this codec knows.
fn all_messages() -> Vec<Vec<u8>> {
    let text = b"hello from utipc";
    let mut out = Vec::new();
    let mut push = |m: MessageRepr<'_>| out.push(m.to_vec().expect("emit"));

    for (t, h) in [
        (DataType::Conn, 24),
        (DataType::Direct, 32),
        (DataType::Named, 40),
        (DataType::Mcast, 44),
        (DataType::GrpBcast, 44),
        (DataType::GrpMcast, 44),
        (DataType::GrpUcast, 44),
    ] {
        push(MessageRepr::Data(data(t, h, text)));
    }
    let mut rejected = data(DataType::Named, 40, text);
    rejected.error = ErrorCode::NoName;
    push(MessageRepr::Data(rejected));

    let mut name = [0u8; 16];
    name[..4].copy_from_slice(b"eth0");
    push(MessageRepr::LinkProto(link_proto(
        LinkProtoType::Reset,
        &name,
    )));
    push(MessageRepr::LinkProto(link_proto(
        LinkProtoType::Activate,
        &name,
    )));
    let gap = GapAckRecord {
        bcast: vec![],
        ucast: vec![
            GapAckBlock { ack: 4, gap: 2 },
            GapAckBlock { ack: 9, gap: 0 },
        ],
    };
    let mut rec = vec![0u8; gap.buffer_len()];
    gap.emit(&mut rec).expect("record");
    push(MessageRepr::LinkProto(link_proto(
        LinkProtoType::State,
        &rec,
    )));
    let mut bcast_init = link_proto(LinkProtoType::State, &[]);
    bcast_init.probe = false;
    bcast_init.session = 0;
    bcast_init.next_sent = 0;
    bcast_init.base.common.seqno = 1;
    push(MessageRepr::BcastProto(bcast_init));

    let inner1 = MessageRepr::Data(data(DataType::Named, 40, b"bundled-1"))
        .to_vec()
        .expect("emit");
    let inner2 = MessageRepr::Data(data(DataType::Direct, 32, b"bundled-two"))
        .to_vec()
        .expect("emit");
    let mut bundle_payload = inner1.clone();
    while bundle_payload.len() % 4 != 0 {
        bundle_payload.push(0);
    }
    bundle_payload.extend_from_slice(&inner2);
    push(MessageRepr::Bundle(BundleRepr {
        base: internal(11, &bundle_payload),
        msg_type: 0,
        msg_count: 2,
        importance: 1,
    }));

    let big = vec![0x5au8; 3000];
    let original = MessageRepr::Data(data(DataType::Named, 40, &big))
        .to_vec()
        .expect("emit");
    for (i, chunk) in original.chunks(1388).enumerate() {
        let last = (i + 1) * 1388 >= original.len();
        let t = match (i, last) {
            (0, _) => FragType::First,
            (_, true) => FragType::Last,
            _ => FragType::Middle,
        };
        push(MessageRepr::Fragment(FragmentRepr {
            base: internal(20 + i as u16, chunk),
            msg_type: t,
            frag_no: i as u16 + 1,
            frag_count: 0,
            importance: 1,
        }));
    }

    for t in [TunnelType::Synch, TunnelType::Failover] {
        push(MessageRepr::Tunnel(TunnelRepr {
            base: internal(
                30,
                if t == TunnelType::Failover {
                    &inner1
                } else {
                    &[]
                },
            ),
            msg_type: t,
            frag_no: 0,
            frag_count: 0,
            bearer_id: 1,
            msg_count: 1,
        }));
    }

    let items = encode_items(&[Publication {
        service_type: 18888,
        lower: 1000,
        upper: 1000,
        port: 0x1234_5678,
        key: 0x1234_5679,
    }]);
    for t in [NameDistrType::Publication, NameDistrType::Withdrawal] {
        push(MessageRepr::NameDistr(NameDistrRepr {
            base: internal(40, &items),
            msg_type: t,
            bulk: false,
            last_bulk: false,
            non_legacy: true,
            named_seqno: 7,
            word5: 0x4000,
        }));
    }

    for t in [
        ConnMgrType::Probe,
        ConnMgrType::ProbeReply,
        ConnMgrType::Ack,
    ] {
        push(MessageRepr::ConnMgr(ConnMgrRepr {
            base: internal(50, &[]),
            msg_type: t,
            orig_port: 0x1234_5678,
            dest_port: 0x8765_4321,
            conn_ack: if t == ConnMgrType::Ack { 37 } else { 0 },
            adv_win: if t == ConnMgrType::Ack { 512 } else { 0 },
        }));
    }

    for t in [
        GroupProtoType::Join,
        GroupProtoType::Leave,
        GroupProtoType::Adv,
        GroupProtoType::Ack,
        GroupProtoType::Reclaim,
        GroupProtoType::Remit,
    ] {
        let mut base = internal(60, &[]);
        base.common.flags.dest_droppable = true;
        push(MessageRepr::GroupProto(GroupProtoRepr {
            base,
            msg_type: t,
            orig_port: 0x1234_5678,
            dest_port: 0x8765_4321,
            seqno_field: 1,
            adv_win: 65,
        }));
    }

    let mut key = vec![0u8; 32 + 4 + 20];
    key[..8].copy_from_slice(b"gcm(aes)");
    key[35] = 20;
    push(MessageRepr::Crypto(CryptoRepr {
        base: internal(70, &key),
        msg_type: CryptoType::KeyDistr,
        key_gen: 1,
        key_mode: 1,
    }));

    let id: utipc_proto::addr::NodeId = "utipc-a".parse().expect("id");
    for (t, media) in [
        (DiscType::Req, MediaAddr::Eth(MAC_A)),
        (DiscType::Resp, MediaAddr::Eth(MAC_A)),
        (DiscType::Trial, MediaAddr::Eth(MAC_A)),
        (DiscType::TrialFail, MediaAddr::Eth(MAC_A)),
        (
            DiscType::Req,
            MediaAddr::Udp("198.18.7.1:6118".parse().expect("addr")),
        ),
    ] {
        push(MessageRepr::Discovery(DiscoveryRepr {
            flags: Flags {
                non_seq: true,
                ..Flags::default()
            },
            msg_type: t,
            capabilities: caps::LINUX_ALL,
            signature: 0xda57,
            dest_domain: if t == DiscType::Req { 0 } else { B },
            prev_node: id.hash(),
            net_id: 4711,
            media,
            peer_net_hash: 0,
            suggested_addr: if t == DiscType::TrialFail { B + 1 } else { 0 },
            node_id: Some(id),
            extra_payload: &[],
        }));
    }
    out
}

fn tshark_available() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("UTIPC_REQUIRE_TSHARK").is_none(),
            "tshark is required (UTIPC_REQUIRE_TSHARK is set): apt-get install tshark"
        );
        eprintln!("skipping: tshark not installed (apt-get install tshark)");
    }
    found
}

fn tshark_verbose(path: &Path) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .arg("-V")
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tshark_count(path: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-Y", filter])
        .output()
        .expect("tshark runs");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn tshark_reads_every_emitted_message_without_warnings() {
    if !tshark_available() {
        return;
    }
    // tshark 4.0 still dissects user 9 as the obsolete ROUTE_DISTRIBUTOR, which expects a
    // routing payload, and calls every payload-less GROUP_PROTOCOL message (exactly what Linux
    // sends) malformed. Those are checked separately: tshark must still see them as TIPC.
    let (group, messages): (Vec<Vec<u8>>, Vec<Vec<u8>>) = all_messages()
        .into_iter()
        .partition(|m| (m[0] >> 1) & 0xf == 9);
    assert_eq!(group.len(), 6);
    // Every emitted message also parses back to itself.
    for m in &messages {
        let p = Packet::new_checked(&m[..]).expect("valid");
        let r = MessageRepr::parse(&p).expect("parses");
        assert_eq!(&r.to_vec().expect("emit"), m);
    }
    let dir = std::env::temp_dir().join(format!("utipc-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("emitted.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path).expect("create")).expect("pcap");
    let mut frames = 0;
    let mut t = 1_700_000_000_000_000_000u64;
    for m in &messages {
        w.write_frame(t, &tipc_ethernet_frame(MAC_A, MAC_B, m))
            .expect("write");
        t += 1_000_000;
        frames += 1;
    }
    let addrs = UdpFrameAddrs {
        src_mac: MAC_A,
        dst_mac: MAC_B,
        src: SocketAddrV4::new([198, 18, 7, 1].into(), 6118),
        dst: SocketAddrV4::new([198, 18, 7, 2].into(), 6118),
        ip_id: 1,
    };
    for (i, m) in messages.iter().enumerate() {
        let a = UdpFrameAddrs {
            ip_id: i as u16 + 1,
            ..addrs
        };
        w.write_frame(t, &tipc_udp_frame(&a, m).expect("udp frame"))
            .expect("write");
        t += 1_000_000;
        frames += 1;
    }
    // A 14,000-byte UDP-bearer packet leaves the host as IPv4 fragments.
    let payload = vec![0x33u8; 13_960];
    let big = MessageRepr::Data(data(DataType::Named, 40, &payload))
        .to_vec()
        .expect("emit");
    let big_frames = tipc_udp_fragments(
        &UdpFrameAddrs {
            ip_id: 999,
            ..addrs
        },
        &big,
        1500,
    )
    .expect("fragments");
    assert!(big_frames.len() >= 10);
    for f in &big_frames {
        w.write_frame(t, f).expect("write");
        t += 1000;
        frames += 1;
    }
    w.flush().expect("flush");
    drop(w);
    let group_path = dir.join("group.pcap");
    let mut gw =
        PcapWriter::new(std::fs::File::create(&group_path).expect("create")).expect("pcap");
    for m in &group {
        gw.write_frame(t, &tipc_ethernet_frame(MAC_A, MAC_B, m))
            .expect("write");
        t += 1_000_000;
    }
    gw.flush().expect("flush");
    drop(gw);
    assert_eq!(tshark_count(&group_path, "tipc"), group.len());

    let text = tshark_verbose(&path);
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Malformed") || l.contains("Expert Info (Error"))
        .collect();
    if !bad.is_empty() {
        let _ = std::fs::copy(&path, std::env::temp_dir().join("utipc-tshark-failed.pcap"));
    }
    assert!(bad.is_empty(), "tshark complains: {bad:?}");
    let tipc = tshark_count(&path, "tipc");
    // One per Ethernet frame, one per UDP datagram, one for the reassembled big packet.
    assert_eq!(tipc, 2 * messages.len() + 1, "frames written: {frames}");
    // And utipc decode reads back what it wrote.
    let out = Command::new(env!("CARGO_BIN_EXE_utipc"))
        .args(["decode", "--check"])
        .arg(&path)
        .output()
        .expect("decode runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
