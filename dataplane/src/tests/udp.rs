//! The UDP bearer on a veth pair: multicast discovery and unicast replies over IPv4 and IPv6,
//! replicast, checksums on the wire, own-datagram filtering and clear errors.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::discovery::{DiscType, MediaAddr};

use super::netns::{A4, A6, B4, B6, VETH, available, veth_pair};
use super::raw::RawSock;
use super::{NET_ID, advertised, discovery, expect_frame, expect_quiet};
use crate::bearer::Bearer;
use crate::bearer::udp::{UdpBearer, UdpBearerConfig, UdpMode};
use crate::ether::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip address")
}

fn sa(ip_text: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(ip_text), port)
}

fn udp(ip_text: &str, port: u16) -> MediaAddr {
    MediaAddr::Udp(sa(ip_text, port))
}

/// Discovery by multicast one way, a unicast response the other, and no echo of either.
fn multicast_exchange(a: &mut UdpBearer, b: &mut UdpBearer, group: SocketAddr) {
    let req = discovery(DiscType::Req, 0x0101_0001, a.local_addr());
    a.send(&Dest::Broadcast, &req).expect("multicast DSC_REQ");
    let (frame, meta) = expect_frame(b, "DSC_REQ at b");
    assert_eq!(frame, req);
    assert_eq!(meta.src, a.local_addr(), "source is a's address and port");
    assert_eq!(meta.dst, MediaAddr::Udp(group), "sent to the group");
    assert!(meta.is_broadcast());
    assert_eq!(advertised(&frame), a.local_addr());

    let resp = discovery(DiscType::Resp, 0x0101_0002, b.local_addr());
    b.send(&Dest::Unicast(advertised(&frame)), &resp)
        .expect("unicast DSC_RESP");
    let (frame, meta) = expect_frame(a, "DSC_RESP at a");
    assert_eq!(frame, resp);
    assert_eq!(meta.src, b.local_addr());
    assert_eq!(meta.dst, a.local_addr(), "sent to a alone");
    assert!(!meta.is_broadcast());

    expect_quiet(a, "a must not hear its own multicast");
    expect_quiet(b, "b must not hear its own unicast");
    for (name, x) in [("a", &*a), ("b", &*b)] {
        let c = x.stats().counters;
        assert_eq!((c.tx_frames, c.rx_frames), (1, 1), "{name}: {c:?}");
        assert_eq!(
            (c.tx_errors, c.rx_errors, c.rx_dropped.total()),
            (0, 0, 0),
            "{name}: {c:?}"
        );
    }
}

#[test]
fn udp4_multicast_discovery_and_unicast_reply() {
    if !available("udp4_multicast_discovery_and_unicast_reply") {
        return;
    }
    let pair = veth_pair(None, None);
    let mut a = pair
        .a
        .run(|| UdpBearer::open(UdpBearerConfig::new(ip(A4), NET_ID)))
        .take_ok("open a");
    let mut b = pair
        .b
        .run(|| UdpBearer::open(UdpBearerConfig::new(ip(B4), NET_ID)))
        .take_ok("open b");
    let group = sa("228.0.18.103", 6118);
    assert_eq!(a.mode(), &UdpMode::Multicast { group });
    assert_eq!(a.media(), MediaKind::Udp4);
    assert_eq!(a.local_addr(), udp(A4, 6118));
    assert_eq!(a.mtu(), 14_000);
    assert!(a.supports_broadcast());
    assert_eq!(a.iface(), VETH);
    multicast_exchange(&mut a, &mut b, group);
}

#[test]
fn udp6_multicast_and_replicast() {
    if !available("udp6_multicast_and_replicast") {
        return;
    }
    let pair = veth_pair(None, None);
    let mut a = pair
        .a
        .run(|| UdpBearer::open(UdpBearerConfig::new(ip(A6), NET_ID)))
        .take_ok("open a");
    let mut b = pair
        .b
        .run(|| UdpBearer::open(UdpBearerConfig::new(ip(B6), NET_ID)))
        .take_ok("open b");
    let group = sa("ff02::4711", 6118);
    assert_eq!(a.mode(), &UdpMode::Multicast { group });
    assert_eq!(a.media(), MediaKind::Udp6);
    assert_eq!(a.mtu(), 1280);
    multicast_exchange(&mut a, &mut b, group);

    // Replicast over IPv6 on another port, next to the multicast bearers.
    let replicast = |local: &str, remote: &str| UdpBearerConfig {
        port: 6119,
        remotes: vec![sa(remote, 6119)],
        ..UdpBearerConfig::new(ip(local), NET_ID)
    };
    let mut ra = pair
        .a
        .run(|| UdpBearer::open(replicast(A6, B6)))
        .take_ok("open ra");
    let mut rb = pair
        .b
        .run(|| UdpBearer::open(replicast(B6, A6)))
        .take_ok("open rb");
    assert!(!ra.supports_broadcast());
    let req = discovery(DiscType::Req, 1, ra.local_addr());
    ra.send(&Dest::Broadcast, &req).expect("replicast");
    let (frame, meta) = expect_frame(&mut rb, "replicast DSC_REQ at rb");
    assert_eq!(
        (frame, meta.src, meta.dst),
        (req, udp(A6, 6119), udp(B6, 6119))
    );
    expect_quiet(&mut b, "the multicast bearer does not see port 6119");
}

#[test]
fn udp4_replicast_sends_one_copy_per_remote() {
    if !available("udp4_replicast_sends_one_copy_per_remote") {
        return;
    }
    let pair = veth_pair(None, None);
    pair.b
        .ip(&["addr", "add", "198.18.0.3/24", "dev", VETH])
        .expect("second address");
    let cfg = |local: &str, remotes: &[&str]| UdpBearerConfig {
        remotes: remotes.iter().map(|r| sa(r, 6118)).collect(),
        ..UdpBearerConfig::new(ip(local), NET_ID)
    };
    let mut a = pair
        .a
        .run(|| UdpBearer::open(cfg(A4, &[B4, "198.18.0.3"])))
        .take_ok("open a");
    // Two bearers in one namespace share port 6118: each is bound to its own address.
    let (mut b2, mut b3) = pair.b.run(|| {
        (
            UdpBearer::open(cfg(B4, &[A4])).take_ok("open b2"),
            UdpBearer::open(cfg("198.18.0.3", &[A4])).take_ok("open b3"),
        )
    });
    assert!(!a.supports_broadcast());
    let mut dests = Vec::new();
    a.wire_dests(&Dest::Broadcast, &mut |d| dests.push(d));
    assert_eq!(dests, vec![udp(B4, 6118), udp("198.18.0.3", 6118)]);

    let req = discovery(DiscType::Req, 1, a.local_addr());
    a.send(&Dest::Broadcast, &req).expect("replicast");
    for (b, me) in [(&mut b2, B4), (&mut b3, "198.18.0.3")] {
        let (frame, meta) = expect_frame(b, me);
        assert_eq!(
            (frame, meta.src, meta.dst),
            (req.clone(), a.local_addr(), udp(me, 6118))
        );
        assert!(!meta.is_broadcast());
        expect_quiet(b, "exactly one copy each");
    }
    assert_eq!(a.stats().counters.tx_frames, 2);

    let resp = discovery(DiscType::Resp, 2, b2.local_addr());
    b2.send(&Dest::Broadcast, &resp).expect("replicast back");
    let (frame, meta) = expect_frame(&mut a, "reply at a");
    assert_eq!((frame, meta.src), (resp, b2.local_addr()));

    // Peers can be added and removed at run time, as with `tipc bearer add`.
    assert!(!a.add_remote(sa(B4, 6118)).expect("known peer"));
    assert!(a.remove_remote(&sa("198.18.0.3", 6118)));
    a.send(&Dest::Broadcast, &req)
        .expect("replicast to one peer");
    expect_frame(&mut b2, "b2 is still a peer");
    expect_quiet(&mut b3, "b3 was removed");
}

#[test]
fn udp_drops_its_own_datagrams() {
    if !available("udp_drops_its_own_datagrams") {
        return;
    }
    let pair = veth_pair(None, None);
    // A replicast bearer that lists itself: its broadcast comes straight back to it.
    let mut own = pair
        .a
        .run(|| {
            UdpBearer::open(UdpBearerConfig {
                remotes: vec![sa(A4, 6118)],
                ..UdpBearerConfig::new(ip(A4), NET_ID)
            })
        })
        .take_ok("open");
    own.send(
        &Dest::Broadcast,
        &discovery(DiscType::Req, 1, own.local_addr()),
    )
    .expect("send to self");
    assert!(
        own.wait_readable(Duration::from_secs(5)).expect("poll"),
        "the copy arrives"
    );
    expect_quiet(&mut own, "own datagram");
    assert_eq!(own.stats().counters.rx_dropped.own_source, 1);
    assert_eq!(own.stats().counters.rx_frames, 0);
}

#[test]
fn udp_checksums_on_the_wire_match_the_kernel_bearer() {
    if !available("udp_checksums_on_the_wire_match_the_kernel_bearer") {
        return;
    }
    let pair = veth_pair(None, None);
    let sniffer = pair.b.run(|| RawSock::sniffer(VETH));
    let (mut a4, mut a6) = pair.a.run(|| {
        (
            UdpBearer::open(UdpBearerConfig::new(ip(A4), NET_ID)).take_ok("open v4"),
            UdpBearer::open(UdpBearerConfig::new(ip(A6), NET_ID)).take_ok("open v6"),
        )
    });
    let frame = discovery(DiscType::Req, 1, a4.local_addr());
    a4.send(&Dest::Broadcast, &frame).expect("v4 multicast");
    a4.send(&Dest::Unicast(udp(B4, 6118)), &frame)
        .expect("v4 unicast");
    a6.send(&Dest::Broadcast, &frame).expect("v6 multicast");
    a6.send(&Dest::Unicast(udp(B6, 6118)), &frame)
        .expect("v6 unicast");

    let mut seen = Vec::new();
    for f in sniffer.collect(Duration::from_millis(500)) {
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        let (ip_len, ttl_at, src_at) = match ethertype {
            ETH_P_IP => (usize::from(f[ETH_HLEN] & 0x0f) * 4, 8, 12),
            ETH_P_IPV6 if f[ETH_HLEN + 6] == 17 => (40, 7, 8),
            _ => continue,
        };
        let ip_hdr = &f[ETH_HLEN..ETH_HLEN + ip_len];
        if ethertype == ETH_P_IP && ip_hdr[9] != 17 {
            continue;
        }
        let udp_hdr = &f[ETH_HLEN + ip_len..ETH_HLEN + ip_len + 8];
        if u16::from_be_bytes([udp_hdr[2], udp_hdr[3]]) != 6118 {
            continue;
        }
        assert_eq!(&f[ETH_HLEN + ip_len + 8..], &frame[..], "payload");
        let checksum = u16::from_be_bytes([udp_hdr[6], udp_hdr[7]]);
        let multicast = f[0] & 1 == 1;
        let src_len = if ethertype == ETH_P_IP { 4 } else { 16 };
        let src = &ip_hdr[src_at..src_at + src_len];
        seen.push((
            ethertype,
            multicast,
            checksum == 0,
            ip_hdr[ttl_at],
            src.to_vec(),
        ));
    }
    // Unicast waits for ARP / neighbour discovery, so the order on the wire may differ.
    seen.sort();
    let a4_src = [198, 18, 0, 1].to_vec();
    let a6_src = match ip(A6) {
        IpAddr::V6(v6) => v6.octets().to_vec(),
        IpAddr::V4(_) => unreachable!("A6 is IPv6"),
    };
    assert_eq!(
        seen,
        vec![
            (ETH_P_IP, false, true, 64, a4_src.clone()),
            (ETH_P_IP, true, true, 1, a4_src),
            (ETH_P_IPV6, false, false, 64, a6_src.clone()),
            (ETH_P_IPV6, true, false, 1, a6_src),
        ],
        "(ethertype, to a group, no UDP checksum, TTL, source): IPv4 without checksum, IPv6 \
         with; TTL 1 to the group; the source is the bearer's address"
    );
}

#[test]
fn udp_configuration_errors_are_clear() {
    if !available("udp_configuration_errors_are_clear") {
        return;
    }
    let pair = veth_pair(None, None);
    pair.a.run(|| {
        let first = UdpBearer::open(UdpBearerConfig::new(ip(A4), NET_ID)).take_ok("first");
        let e = UdpBearer::open(UdpBearerConfig::new(ip(A4), NET_ID)).expect_err("port taken");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let msg = e.to_string();
        assert!(msg.contains("UDP port 6118 is already in use"), "{msg}");
        // IPv6 has a socket of its own (IPV6_V6ONLY): both families share the port.
        let v6 = UdpBearer::open(UdpBearerConfig::new(ip(A6), NET_ID)).take_ok("v6 next to v4");
        drop((first, v6));

        // Naming the interface binds the socket to it; naming the wrong one is refused.
        let named = UdpBearer::open(UdpBearerConfig {
            iface: Some(VETH.into()),
            ..UdpBearerConfig::new(ip(A4), NET_ID)
        })
        .take_ok("bound to veth0");
        drop(named);
        let e = UdpBearer::open(UdpBearerConfig {
            iface: Some("lo".into()),
            ..UdpBearerConfig::new(ip(A4), NET_ID)
        })
        .expect_err("wrong interface");
        assert!(
            e.to_string().contains("is on interface veth0, not on lo"),
            "{e}"
        );

        let e = UdpBearer::open(UdpBearerConfig::new(ip(B4), NET_ID)).expect_err("not ours");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);

        let mut v4 = UdpBearer::open(UdpBearerConfig::new(ip(A4), NET_ID)).take_ok("v4");
        let e = v4
            .send(&Dest::Unicast(udp(B6, 6118)), b"x")
            .expect_err("wrong family");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = v4
            .send(&Dest::Unicast(MediaAddr::Eth([2, 0, 0, 0, 0, 1])), b"x")
            .expect_err("wrong media");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = v4
            .send(&Dest::Broadcast, &vec![0u8; 14_001])
            .expect_err("above the MTU");
        assert!(
            e.to_string().contains("exceeds the bearer MTU of 14000"),
            "{e}"
        );
        assert_eq!(v4.stats().counters.tx_errors, 3);
        let e = v4.add_remote(sa(B4, 6118)).expect_err("multicast mode");
        assert!(e.to_string().contains("multicast-mode"), "{e}");
    });
}

/// `Result::expect` that prints the error's message (the `Display`, which says what to do).
trait TakeOk<T> {
    fn take_ok(self, what: &str) -> T;
}

impl<T> TakeOk<T> for io::Result<T> {
    #[track_caller]
    fn take_ok(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}
