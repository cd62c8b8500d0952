//! The AF_PACKET Ethernet bearer on a veth pair: broadcast discovery and unicast replies, the
//! interface's MAC and MTU, the kernel's receive filters, padding, and refusals.

use std::io;

use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::Packet;
use utipc_proto::wire::discovery::{DiscType, MediaAddr};

use super::netns::{Netns, VETH, available, netns, veth_pair};
use super::raw::RawSock;
use super::{advertised, discovery, expect_frame, expect_quiet};
use crate::bearer::Bearer;
use crate::bearer::packet::PacketBearer;
use crate::ether::{BROADCAST_MAC, ETH_P_TIPC, EthHeader};

/// `eth-02-link-setup` frame 3: a DSC_REQ captured from a Linux 6.1 kernel (76 bytes).
const KERNEL_DSC_REQ: &str = "5bf0004c07ffda57000000000f115f6f00001267000000015254001801010000\
    0000000000000000000000000000000000000000da235a57000000006b746e6f\
    646531000000000000000000";

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn open(ns: &Netns) -> PacketBearer {
    ns.run(|| PacketBearer::open(VETH))
        .unwrap_or_else(|e| panic!("open {VETH} in {}: {e}", ns.name()))
}

#[test]
fn packet_bearers_exchange_broadcast_and_unicast() {
    if !available("packet_bearers_exchange_broadcast_and_unicast") {
        return;
    }
    let pair = veth_pair(Some(1400), Some(9000));
    let mut a = open(&pair.a);
    let mut b = open(&pair.b);
    let (mac_a, mac_b) = (
        pair.a.mac(VETH).expect("MAC"),
        pair.b.mac(VETH).expect("MAC"),
    );
    assert_eq!(a.local_addr(), MediaAddr::Eth(mac_a), "SIOCGIFHWADDR");
    assert_eq!(b.local_addr(), MediaAddr::Eth(mac_b));
    assert_eq!((a.mtu(), b.mtu()), (1400, 9000), "SIOCGIFMTU");
    assert_eq!(a.media(), MediaKind::Eth);
    assert!(a.supports_broadcast());
    assert_eq!(a.ifname(), VETH);

    let req = discovery(DiscType::Req, 1, a.local_addr());
    a.send(&Dest::Broadcast, &req).expect("broadcast DSC_REQ");
    let (frame, meta) = expect_frame(&mut b, "DSC_REQ at b");
    assert_eq!(frame, req);
    assert_eq!(meta.src, MediaAddr::Eth(mac_a));
    assert_eq!(meta.dst, MediaAddr::Eth(BROADCAST_MAC));
    assert!(meta.is_broadcast());
    assert_eq!(advertised(&frame), a.local_addr());

    let resp = discovery(DiscType::Resp, 2, b.local_addr());
    b.send(&Dest::Unicast(advertised(&frame)), &resp)
        .expect("unicast DSC_RESP");
    let (frame, meta) = expect_frame(&mut a, "DSC_RESP at a");
    assert_eq!(frame, resp);
    assert_eq!(
        (meta.src, meta.dst),
        (MediaAddr::Eth(mac_b), MediaAddr::Eth(mac_a))
    );
    assert!(!meta.is_broadcast());

    expect_quiet(&mut a, "a must not see its own broadcast");
    expect_quiet(&mut b, "b must not see its own unicast");
    for x in [&a, &b] {
        let c = x.stats().counters;
        assert_eq!(
            (c.tx_frames, c.rx_frames, c.rx_dropped.total()),
            (1, 1, 0),
            "{c:?}"
        );
    }

    // A full-MTU frame passes, one byte more is refused before the kernel sees it.
    let big = vec![0u8; 1400];
    a.send(&Dest::Unicast(MediaAddr::Eth(mac_b)), &big)
        .expect("1400 bytes fit");
    assert_eq!(expect_frame(&mut b, "full-size frame").0.len(), 1400);
    let e = a
        .send(&Dest::Broadcast, &[0u8; 1401])
        .expect_err("above the MTU");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = a
        .send(
            &Dest::Unicast(MediaAddr::Udp("198.18.0.2:6118".parse().expect("addr"))),
            b"x",
        )
        .expect_err("not an Ethernet address");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(a.stats().counters.tx_errors, 2);
}

#[test]
fn packet_bearer_filters_like_the_kernel() {
    if !available("packet_bearer_filters_like_the_kernel") {
        return;
    }
    let pair = veth_pair(None, None);
    let mut b = open(&pair.b);
    let mac_b = pair.b.mac(VETH).expect("MAC");
    let mac_a = pair.a.mac(VETH).expect("MAC");
    let inject = pair.a.run(|| RawSock::injector(VETH));
    let frame = |dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]| {
        [
            &EthHeader {
                dst,
                src,
                ethertype,
            }
            .to_bytes()[..],
            payload,
        ]
        .concat()
    };
    let kernel_req = hex(KERNEL_DSC_REQ);
    let mut padded = kernel_req.clone();
    padded.extend_from_slice(&[0u8; 20]);
    let barrier = discovery(DiscType::Req, 9, MediaAddr::Eth(mac_a));

    // For another host: the veth delivers it, marked PACKET_OTHERHOST.
    inject.send(&frame(
        [0x02, 0, 0, 0, 0, 0x99],
        mac_a,
        ETH_P_TIPC,
        &kernel_req,
    ));
    // With b's own source MAC.
    inject.send(&frame(BROADCAST_MAC, mac_b, ETH_P_TIPC, &kernel_req));
    // Another ethertype: the socket is bound to 0x88CA and never sees it.
    inject.send(&frame(BROADCAST_MAC, mac_a, 0x88B5, &kernel_req));
    // A kernel frame with trailing padding, to b.
    inject.send(&frame(mac_b, mac_a, ETH_P_TIPC, &padded));
    // To a multicast MAC: accepted, as the kernel does.
    inject.send(&frame(
        [0x03, 0, 0, 0, 0, 1],
        mac_a,
        ETH_P_TIPC,
        &kernel_req,
    ));
    // A last ordinary broadcast: once it is here, every earlier frame was processed.
    inject.send(&frame(BROADCAST_MAC, mac_a, ETH_P_TIPC, &barrier));

    let (got, meta) = expect_frame(&mut b, "padded kernel frame");
    assert_eq!(got, padded, "padding is left in place");
    assert_eq!(meta.dst, MediaAddr::Eth(mac_b));
    let p = Packet::new_checked(&got[..]).expect("valid despite padding");
    assert_eq!(p.size(), 76, "the TIPC size field stays authoritative");
    assert_eq!(
        advertised(&got),
        MediaAddr::Eth([0x52, 0x54, 0, 0x18, 1, 1])
    );

    let (got, meta) = expect_frame(&mut b, "multicast frame");
    assert_eq!(got, kernel_req);
    assert!(meta.is_broadcast());
    let (got, _) = expect_frame(&mut b, "barrier");
    assert_eq!(got, barrier);
    expect_quiet(&mut b, "nothing else");

    let c = b.stats().counters;
    assert_eq!(c.rx_frames, 3);
    assert_eq!(c.rx_dropped.other_host, 1, "{c:?}");
    assert_eq!(c.rx_dropped.own_source, 1, "{c:?}");
    assert_eq!(
        c.rx_dropped.total(),
        2,
        "the other ethertype was never seen: {c:?}"
    );
}

#[test]
fn packet_bearer_refuses_what_the_kernel_refuses() {
    if !available("packet_bearer_refuses_what_the_kernel_refuses") {
        return;
    }
    let ns = netns("x");
    // A veth pair inside one namespace: Ethernet devices whose MTU can go down to 68.
    ns.ip(&[
        "link", "add", "small0", "type", "veth", "peer", "name", "small1",
    ])
    .expect("veth");
    ns.ip(&["link", "set", "small0", "mtu", "68"])
        .expect("MTU 68");
    ns.run(|| {
        let e = PacketBearer::open("lo").expect_err("loopback");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("lo is a loopback device"), "{e}");

        let e = PacketBearer::open("nosuch0").expect_err("unknown interface");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string().contains("no interface named \"nosuch0\""),
            "{e}"
        );

        let e = PacketBearer::open("small0").expect_err("MTU 68");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains("MTU 68, below TIPC's minimum of 100"),
            "{e}"
        );

        let e = PacketBearer::open("a-name-far-too-long").expect_err("bad name");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
    ns.ip(&["link", "set", "small0", "mtu", "100"])
        .expect("MTU 100");
    let b = ns
        .run(|| PacketBearer::open("small0"))
        .expect("MTU 100 is enough");
    assert_eq!(b.mtu(), 100);
}
