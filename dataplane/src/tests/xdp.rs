//! The AF_XDP bearer on a veth pair, with the real steering program of `utipc-ebpf` attached
//! to both ends: broadcast and unicast both ways, batches, the receive filters, kernel traffic
//! beside it, refusals, the locked-memory limit, and two nodes whose link repairs 10% loss
//! and reordering injected by [`FaultInjector`].

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::RawFd;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use utipc_ebpf::{AttachMode, XdpSteering};
use utipc_proto::addr::NodeId;
use utipc_proto::bearer::{BearerId, Dest, MediaKind};
use utipc_proto::name_table::Scope;
use utipc_proto::node::{Addr, Node, NodeConfig, SendError, SendOpts};
use utipc_proto::wire::Packet;
use utipc_proto::wire::discovery::{DiscType, MediaAddr};

use super::netns::{A4, B4, Netns, VETH, available, netns, veth_pair};
use super::raw::RawSock;
use super::{advertised, discovery, expect_frame, expect_quiet};
use crate::bearer::Bearer;
use crate::bearer::fault::{FaultConfig, FaultInjector, Faults};
use crate::bearer::xdp::{XdpBearer, XdpBearerConfig, XdpMode};
use crate::ether::{BROADCAST_MAC, ETH_P_TIPC, EthHeader};
use crate::runtime::NodeRuntime;

/// A small UMEM: 1024 frames of 2048 bytes (2 MiB), rings of 512.
fn config() -> XdpBearerConfig {
    XdpBearerConfig {
        frames: 1024,
        rx_ring_size: 512,
        tx_ring_size: 512,
        ..XdpBearerConfig::new(VETH)
    }
}

/// Attaches the steering program to the namespace's veth and opens a bearer registered in it.
/// Call on a thread inside the namespace.
fn attach_and_open(cfg: XdpBearerConfig) -> (XdpBearer, XdpSteering) {
    let mut steering = XdpSteering::attach(VETH, AttachMode::Auto)
        .unwrap_or_else(|e| panic!("attach the steering program: {e}"));
    let bearer = XdpBearer::open(cfg, &mut |queue: u32, fd: RawFd| {
        steering.register_xsk(queue, fd).map_err(io::Error::other)
    })
    .unwrap_or_else(|e| panic!("open the XDP bearer: {e}"));
    (bearer, steering)
}

fn open(ns: &Netns) -> (XdpBearer, XdpSteering) {
    ns.run(|| attach_and_open(config()))
}

/// Sends and kicks the TX ring.
#[track_caller]
fn send(b: &mut XdpBearer, dest: &Dest, frame: &[u8]) {
    b.send(dest, frame).expect("send");
    b.flush().expect("flush");
}

#[test]
fn xdp_bearers_exchange_broadcast_and_unicast() {
    if !available("xdp_bearers_exchange_broadcast_and_unicast") {
        return;
    }
    let pair = veth_pair(None, None);
    let (mut a, steer_a) = open(&pair.a);
    // The receiver gets room for the whole batch below in its fill ring: a sender has no
    // back-pressure, so frames beyond the fill ring would be dropped (counted by the kernel).
    let (mut b, steer_b) = pair.b.run(|| {
        attach_and_open(XdpBearerConfig {
            frames: 2048,
            rx_ring_size: 1024,
            ..config()
        })
    });
    let (mac_a, mac_b) = (
        pair.a.mac(VETH).expect("MAC"),
        pair.b.mac(VETH).expect("MAC"),
    );
    assert_eq!(a.local_addr(), MediaAddr::Eth(mac_a));
    assert_eq!(b.local_addr(), MediaAddr::Eth(mac_b));
    assert_eq!((a.mtu(), b.mtu()), (1500, 1500));
    assert_eq!(a.media(), MediaKind::Eth);
    assert!(a.supports_broadcast());
    assert_eq!((a.ifname(), a.queue()), (VETH, 0));
    // veth has no zero-copy: Auto falls back to copy mode and says why.
    assert_eq!(a.mode(), XdpMode::Copy);
    let why = a.fallback_reason().expect("a fallback reason");
    assert!(why.contains("zero-copy"), "{why}");
    eprintln!(
        "XDP bearer: {} mode ({why}); steering program: {} mode",
        a.mode(),
        steer_a.mode()
    );

    let req = discovery(DiscType::Req, 1, a.local_addr());
    send(&mut a, &Dest::Broadcast, &req);
    let (frame, meta) = expect_frame(&mut b, "DSC_REQ at b");
    assert_eq!(frame, req);
    assert_eq!(meta.src, MediaAddr::Eth(mac_a));
    assert_eq!(meta.dst, MediaAddr::Eth(BROADCAST_MAC));
    assert!(meta.is_broadcast());

    let resp = discovery(DiscType::Resp, 2, b.local_addr());
    send(&mut b, &Dest::Unicast(advertised(&frame)), &resp);
    let (frame, meta) = expect_frame(&mut a, "DSC_RESP at a");
    assert_eq!(frame, resp);
    assert_eq!(
        (meta.src, meta.dst),
        (MediaAddr::Eth(mac_b), MediaAddr::Eth(mac_a))
    );
    expect_quiet(&mut a, "a must not see its own broadcast");
    expect_quiet(&mut b, "b must not see its own unicast");

    // A full-MTU frame passes; one byte more is refused before the ring.
    let big: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
    send(&mut a, &Dest::Unicast(MediaAddr::Eth(mac_b)), &big);
    assert_eq!(expect_frame(&mut b, "full-size frame").0, big);
    let e = a
        .send(&Dest::Broadcast, &[0u8; 1501])
        .expect_err("above the MTU");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = a
        .send(
            &Dest::Unicast(MediaAddr::Udp("198.18.0.2:6118".parse().expect("addr"))),
            b"x",
        )
        .expect_err("not an Ethernet address");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);

    // A batch larger than the TX share of the UMEM (512 frames): send kicks when it runs out,
    // one flush pushes the rest; the receiver lends the frames from its UMEM in batches.
    const BATCH: u32 = 700;
    let to_b = Dest::Unicast(MediaAddr::Eth(mac_b));
    let mut refused = 0;
    for i in 0..BATCH {
        let mut msg = discovery(DiscType::Req, 1, a.local_addr());
        msg.extend_from_slice(&i.to_be_bytes());
        match a.send(&to_b, &msg) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => refused += 1,
            Err(e) => panic!("send {i}: {e}"),
        }
    }
    a.flush().expect("flush");
    let mut got = Vec::new();
    let mut scratch = [0u8; 0];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < (BATCH - refused) as usize && Instant::now() < deadline {
        b.recv_batch(&mut scratch, 64, &mut |f, _| {
            let tail: [u8; 4] = f[f.len() - 4..].try_into().expect("4 bytes");
            got.push(u32::from_be_bytes(tail));
        })
        .expect("recv_batch");
        if got.len() < (BATCH - refused) as usize {
            b.wait_readable(Duration::from_millis(200)).expect("poll");
            a.flush().expect("flush");
        }
    }
    let lost = (BATCH - refused) as usize - got.len();
    eprintln!(
        "batch of {BATCH}: {refused} refused, {lost} lost, kicks {:?}, a {:?}, b {:?}",
        a.xdp_counters(),
        a.kernel_stats().expect("stats"),
        b.kernel_stats().expect("stats")
    );
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates"
    );
    assert_eq!(refused, 0, "send kicks and reclaims instead of refusing");
    assert_eq!(lost, 0, "nothing lost on a quiet veth");
    assert_eq!(b.kernel_stats().expect("stats").rx_fill_ring_empty_descs, 0);
    let xa = a.xdp_counters();
    assert!(
        xa.tx_kicks > 0 && xa.completions >= u64::from(BATCH),
        "{xa:?}"
    );

    let (ca, cb) = (a.stats().counters, b.stats().counters);
    assert_eq!(ca.tx_frames, 2 + u64::from(BATCH), "{ca:?}");
    assert_eq!(ca.tx_errors, 2, "{ca:?}");
    assert_eq!(ca.rx_frames, 1, "{ca:?}");
    assert_eq!(cb.rx_frames, 2 + u64::from(BATCH), "{cb:?}");
    assert_eq!(ca.rx_dropped.total() + cb.rx_dropped.total(), 0);
    let steered = steer_b.counters().expect("counters").steered;
    assert_eq!(steered, 2 + u64::from(BATCH), "{:?}", steer_b.counters());
    assert_eq!(steer_a.counters().expect("counters").steered, 1);
    drop((a, b, steer_a, steer_b));
}

#[test]
fn xdp_bearers_in_generic_mode_without_need_wakeup() {
    if !available("xdp_bearers_in_generic_mode_without_need_wakeup") {
        return;
    }
    let pair = veth_pair(None, None);
    let open_generic = |ns: &Netns| {
        ns.run(|| {
            let mut steering = XdpSteering::attach(VETH, AttachMode::Generic)
                .unwrap_or_else(|e| panic!("attach in generic mode: {e}"));
            let cfg = XdpBearerConfig {
                mode: XdpMode::Copy,
                need_wakeup: false,
                ..config()
            };
            let bearer = XdpBearer::open(cfg, &mut |q, fd| {
                steering.register_xsk(q, fd).map_err(io::Error::other)
            })
            .unwrap_or_else(|e| panic!("open: {e}"));
            (bearer, steering)
        })
    };
    let (mut a, steer_a) = open_generic(&pair.a);
    let (mut b, _steer_b) = open_generic(&pair.b);
    assert_eq!(steer_a.mode().to_string(), "generic");
    assert_eq!((a.mode(), a.fallback_reason()), (XdpMode::Copy, None));

    for round in 0..3u32 {
        let kicks = a.xdp_counters().tx_kicks;
        let mut req = discovery(DiscType::Req, 1, a.local_addr());
        req.extend_from_slice(&round.to_be_bytes());
        send(&mut a, &Dest::Broadcast, &req);
        assert!(
            a.xdp_counters().tx_kicks > kicks,
            "without need_wakeup every flush with queued frames kicks"
        );
        assert_eq!(expect_frame(&mut b, "broadcast at b").0, req);
        let resp = discovery(DiscType::Resp, 2, b.local_addr());
        send(&mut b, &Dest::Unicast(a.local_addr()), &resp);
        assert_eq!(expect_frame(&mut a, "unicast at a").0, resp);
    }
    let kicks = a.xdp_counters().tx_kicks;
    a.flush().expect("flush");
    assert_eq!(
        a.xdp_counters().tx_kicks,
        kicks,
        "nothing queued: no syscall"
    );
    assert_eq!(a.tx_queued(), 0);
}

#[test]
fn xdp_bearer_filters_like_the_packet_bearer() {
    if !available("xdp_bearer_filters_like_the_packet_bearer") {
        return;
    }
    let pair = veth_pair(None, None);
    let (mut b, steer_b) = open(&pair.b);
    let (mac_a, mac_b) = (
        pair.a.mac(VETH).expect("MAC"),
        pair.b.mac(VETH).expect("MAC"),
    );
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
    let req = discovery(DiscType::Req, 1, MediaAddr::Eth(mac_a));
    let mut padded = req.clone();
    padded.extend_from_slice(&[0u8; 20]);
    let mut vlan = vec![0x00, 0x05, 0x88, 0xCA];
    vlan.extend_from_slice(&req);

    // For another host's MAC: steered by the program, dropped by the bearer.
    inject.send(&frame([2, 0, 0, 0, 0, 0x99], mac_a, ETH_P_TIPC, &req));
    // With b's own source MAC.
    inject.send(&frame(BROADCAST_MAC, mac_b, ETH_P_TIPC, &req));
    // VLAN-tagged TIPC: the program steers it, the Ethernet bearer has no VLAN support.
    inject.send(&frame(mac_b, mac_a, 0x8100, &vlan));
    // Another ethertype: never steered, the kernel gets it.
    inject.send(&frame(BROADCAST_MAC, mac_a, 0x88B5, &req));
    // Padded, to b.
    inject.send(&frame(mac_b, mac_a, ETH_P_TIPC, &padded));
    // To a multicast MAC.
    inject.send(&frame([0x03, 0, 0, 0, 0, 1], mac_a, ETH_P_TIPC, &req));

    let (got, meta) = expect_frame(&mut b, "padded frame");
    assert_eq!(got, padded, "padding is left in place");
    assert_eq!(meta.dst, MediaAddr::Eth(mac_b));
    assert_eq!(
        Packet::new_checked(&got[..]).expect("valid").size(),
        req.len()
    );
    let (got, meta) = expect_frame(&mut b, "multicast frame");
    assert_eq!(got, req);
    assert!(meta.is_broadcast());
    expect_quiet(&mut b, "nothing else");

    let d = b.stats().counters.rx_dropped;
    assert_eq!(
        (d.other_host, d.own_source, d.malformed, d.total()),
        (1, 1, 1, 3),
        "{d:?}"
    );
    let c = steer_b.counters().expect("counters");
    assert_eq!(c.steered, 5, "{c}");
    assert!(c.passed >= 1, "the other ethertype went to the kernel: {c}");
}

#[test]
fn kernel_traffic_flows_beside_the_xdp_bearer() {
    if !available("kernel_traffic_flows_beside_the_xdp_bearer") {
        return;
    }
    let pair = veth_pair(None, None);
    let (mut a, steer_a) = open(&pair.a);
    let (mut b, steer_b) = open(&pair.b);

    // UDP on another port, both ways (ARP resolution included).
    let sock_b = pair
        .b
        .run(|| UdpSocket::bind((B4, 7000)))
        .expect("bind in b");
    let sock_a = pair
        .a
        .run(|| UdpSocket::bind((A4, 7000)))
        .expect("bind in a");
    for s in [&sock_a, &sock_b] {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
    }
    sock_a.send_to(b"ping", (B4, 7000)).expect("udp send");
    let mut buf = [0u8; 64];
    let (n, from) = sock_b.recv_from(&mut buf).expect("udp at b");
    assert_eq!(&buf[..n], b"ping");
    sock_b.send_to(b"pong", from).expect("udp reply");
    let (n, _) = sock_a.recv_from(&mut buf).expect("udp at a");
    assert_eq!(&buf[..n], b"pong");

    // TCP, both directions of a connection.
    let listener = pair
        .b
        .run(|| TcpListener::bind((B4, 7001)))
        .expect("listen in b");
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = [0u8; 5];
        s.read_exact(&mut req).expect("read");
        s.write_all(&req).expect("echo");
    });
    let mut client = pair
        .a
        .run(|| {
            let addr = format!("{B4}:7001").parse().expect("address");
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        })
        .expect("connect from a");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    client.write_all(b"hello").expect("write");
    let mut echo = [0u8; 5];
    client.read_exact(&mut echo).expect("echo");
    assert_eq!(&echo, b"hello");
    server.join().expect("server");

    // ICMP, where ping is installed.
    match pair
        .a
        .exec("ping")
        .args(["-c", "1", "-W", "2", B4])
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No such file") => {
            eprintln!("ping is not installed: ICMP not checked");
        }
        Ok(out) => panic!(
            "ping {B4} failed while XDP is attached: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("cannot run ping ({e}): ICMP not checked"),
    }

    // TIPC still goes to the bearers, and they saw nothing of the IP traffic.
    let req = discovery(DiscType::Req, 1, a.local_addr());
    send(&mut a, &Dest::Broadcast, &req);
    assert_eq!(expect_frame(&mut b, "TIPC at b").0, req);
    expect_quiet(&mut a, "no IP traffic at the TIPC bearer");
    for (s, name) in [(&steer_a, "a"), (&steer_b, "b")] {
        let c = s.counters().expect("counters");
        assert!(c.passed >= 3, "{name}: the IP frames passed: {c}");
    }
    assert_eq!(b.stats().counters.rx_dropped.total(), 0);
}

#[test]
fn xdp_bearer_refuses_what_it_cannot_carry() {
    if !available("xdp_bearer_refuses_what_it_cannot_carry") {
        return;
    }
    let ns = netns("x");
    ns.ip(&[
        "link", "add", "jumbo0", "type", "veth", "peer", "name", "jumbo1",
    ])
    .expect("veth");
    ns.ip(&["link", "set", "jumbo0", "mtu", "3000"])
        .expect("MTU 3000");
    let mut never = |_: u32, _: RawFd| -> io::Result<()> { panic!("must not register") };
    ns.run(|| {
        let e = XdpBearer::open(XdpBearerConfig::new("lo"), &mut never).expect_err("loopback");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("lo is a loopback device"), "{e}");

        let e = XdpBearer::open(XdpBearerConfig::new("nosuch0"), &mut never)
            .expect_err("unknown interface");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);

        let e = XdpBearer::open(XdpBearerConfig::new("jumbo0"), &mut never)
            .expect_err("MTU 3000 in 2048-byte frames");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            msg.contains("jumbo0 has MTU 3000, but an AF_XDP frame of 2048 bytes holds"),
            "{msg}"
        );
        assert!(msg.contains("frame size of 4096"), "{msg}");

        let e = XdpBearer::open(
            XdpBearerConfig {
                mode: XdpMode::ZeroCopy,
                frame_size: 4096,
                ..XdpBearerConfig::new("jumbo0")
            },
            &mut never,
        )
        .expect_err("veth has no zero-copy");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("zero-copy"), "{e}");

        // Copy mode on a 4096-byte frame holds MTU 3000; one socket per queue.
        let mut registered = Vec::new();
        let cfg = XdpBearerConfig {
            mode: XdpMode::Copy,
            frame_size: 4096,
            frames: 64,
            rx_ring_size: 32,
            tx_ring_size: 32,
            ..XdpBearerConfig::new("jumbo0")
        };
        let first = XdpBearer::open(cfg.clone(), &mut |q, fd| {
            registered.push((q, fd));
            Ok(())
        })
        .expect("copy mode, 4096-byte frames");
        assert_eq!(
            (first.mode(), first.fallback_reason()),
            (XdpMode::Copy, None)
        );
        assert_eq!(first.mtu(), 3000);
        assert_eq!(registered, vec![(0, first.raw_fd())]);
        let e = XdpBearer::open(cfg.clone(), &mut |_, _| Ok(())).expect_err("queue taken");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");

        let e = XdpBearer::open(
            XdpBearerConfig {
                queue: 7,
                ..cfg.clone()
            },
            &mut |_, _| Ok(()),
        )
        .expect_err("no queue 7");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");

        drop(first);
        let e = XdpBearer::open(cfg, &mut |_, _| Err(io::Error::other("XSKMAP is full")))
            .expect_err("the registration hook failed");
        assert!(e.to_string().contains("XSKMAP is full"), "{e}");
    });
}

/// Runs in a child process (see `xdp_bearer_explains_the_memlock_limit`) without
/// CAP_IPC_LOCK: with a 1 MiB locked-memory limit an 8 MiB UMEM is refused with the fix; with
/// a 64 KiB soft limit a 512 KiB UMEM raises the soft limit to the hard one and opens.
#[test]
fn memlock_child() {
    let Ok(expect) = std::env::var("UTIPC_XDP_MEMLOCK_CHILD") else {
        return;
    };
    let ns = netns("m");
    ns.ip(&[
        "link", "add", "mem0", "type", "veth", "peer", "name", "mem1",
    ])
    .expect("veth");
    ns.run(|| {
        let cfg = match expect.as_str() {
            "refuse" => XdpBearerConfig::new("mem0"),
            // 512 KiB, above the 64 KiB soft limit, below the hard limit.
            _ => XdpBearerConfig {
                frames: 256,
                rx_ring_size: 64,
                tx_ring_size: 64,
                ..XdpBearerConfig::new("mem0")
            },
        };
        let r = XdpBearer::open(cfg, &mut |_, _| Ok(()));
        match expect.as_str() {
            "refuse" => {
                let e = r.expect_err("8 MiB UMEM above a 1 MiB limit");
                assert_eq!(e.kind(), io::ErrorKind::OutOfMemory, "{e}");
                println!("MEMLOCK-ERROR: {e}");
            }
            _ => {
                let b = r.expect("the soft limit is raised to the hard limit");
                println!("MEMLOCK-RAISED: {:?}", b.mode());
            }
        }
    });
}

#[test]
fn xdp_bearer_explains_the_memlock_limit() {
    if !available("xdp_bearer_explains_the_memlock_limit") {
        return;
    }
    let run = |limits: &str, expect: &str| {
        let exe = std::env::current_exe().expect("test binary");
        // Drop CAP_IPC_LOCK (with it the kernel does not charge the UMEM) and set the limits.
        let out = Command::new("setpriv")
            .args([
                "--inh-caps=-ipc_lock",
                "--bounding-set=-ipc_lock",
                "prlimit",
            ])
            .arg(format!("--memlock={limits}"))
            .arg(exe)
            .args([
                "--exact",
                "tests::xdp::memlock_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("UTIPC_XDP_MEMLOCK_CHILD", expect)
            .output();
        match out {
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "child failed: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(stdout)
            }
            Err(e) => {
                eprintln!("cannot run setpriv/prlimit (util-linux): {e}; memlock path not checked");
                None
            }
        }
    };
    if let Some(out) = run("1048576:1048576", "refuse") {
        let line = out
            .lines()
            .find_map(|l| l.split_once("MEMLOCK-ERROR: ").map(|(_, msg)| msg))
            .unwrap_or_else(|| panic!("no error line: {out}"));
        assert!(
            line.contains(
                "the AF_XDP UMEM needs 8388608 bytes of locked memory but RLIMIT_MEMLOCK is \
                 1048576 bytes"
            ),
            "{line}"
        );
        assert!(line.contains("ulimit -l unlimited"), "{line}");
        assert!(line.contains("--xdp-frames"), "{line}");
    }
    // The hard limit may not be raised (containers), only lowered: keep it as it is.
    if let Some(out) = run("65536:", "raise") {
        assert!(out.contains("MEMLOCK-RAISED: Copy"), "{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Two nodes over a lossy XDP path

const SVC: u32 = 18889;
const TOL: Duration = Duration::from_millis(1500);
const MESSAGES: u32 = 400;

/// A bearer for the node: XDP, with 10% loss, 5% duplicates and 10% reordering on receive
/// and 10% loss on send.
fn lossy_bearer(seed: u64) -> (FaultInjector<XdpBearer>, XdpSteering) {
    let (bearer, steering) = attach_and_open(config());
    let rx = Faults {
        drop: 0.10,
        duplicate: 0.05,
        reorder: 0.10,
        reorder_depth: 3,
        reorder_timeout: Duration::from_millis(20),
        ..Faults::NONE
    };
    let cfg = FaultConfig {
        seed,
        rx,
        tx: Faults::loss(0.10),
    };
    (FaultInjector::new(bearer, cfg), steering)
}

fn node(name: &str, seed: u64) -> NodeRuntime {
    let id: NodeId = name.parse().expect("id");
    NodeRuntime::new(Node::new(NodeConfig::new(id, seed)))
}

/// The payload of message `k`: its number, then a size cycling through small, one-frame and
/// fragmented messages.
fn payload(k: u32) -> Vec<u8> {
    let size = [8usize, 100, 1400, 3000, 9000][k as usize % 5];
    let mut data: Vec<u8> = (0..size).map(|i| (i as u32 ^ k) as u8).collect();
    data[..4].copy_from_slice(&k.to_be_bytes());
    data
}

#[test]
fn two_nodes_repair_loss_and_reordering_over_xdp() {
    if !available("two_nodes_repair_loss_and_reordering_over_xdp") {
        return;
    }
    let pair = veth_pair(None, None);
    let (tx_ready, rx_ready) = mpsc::channel::<()>();
    let (tx_done, rx_done) = mpsc::channel::<()>();
    let (tx_all, rx_all) = mpsc::channel::<()>();

    let b = pair.b.spawn(move || {
        let (bearer, _steering) = lossy_bearer(2);
        let mut rt = node("xdp-b", 2);
        rt.add_bearer(Box::new(bearer), "eth:veth0", VETH, TOL)
            .expect("bearer");
        let up = rt
            .run_until(Duration::from_secs(20), |rt| rt.node().peers_up() == 1)
            .expect("poll");
        assert!(up, "B: no link: {:?}", rt.node().peers());
        let now = rt.now();
        let port = rt.node_mut().open_port();
        rt.node_mut()
            .bind(now, port, Scope::Cluster, SVC, 1, 1)
            .expect("bind");
        rt.flush();
        let _ = tx_ready.send(());
        let mut got: Vec<u32> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            rt.poll(Duration::from_millis(20), &[]).expect("poll");
            while let Some(m) = rt.node_mut().recv(port) {
                let k = u32::from_be_bytes(m.data[..4].try_into().expect("4 bytes"));
                assert_eq!(m.data, payload(k), "message {k} intact");
                got.push(k);
                if got.len() == MESSAGES as usize {
                    let _ = tx_all.send(());
                }
            }
            if rx_done.try_recv().is_ok() {
                break;
            }
        }
        // Let the last acknowledgements go out before shutting down.
        let _ = rt.run_until(Duration::from_millis(300), |_| false);
        let stats = rt
            .bearer(BearerId(0))
            .map(|b| (b.stats().counters, b.mtu()))
            .expect("bearer");
        rt.shutdown();
        (got, stats)
    });

    let a = pair.a.spawn(move || {
        let (bearer, _steering) = lossy_bearer(1);
        let mut rt = node("xdp-a", 1);
        rt.add_bearer(Box::new(bearer), "eth:veth0", VETH, TOL)
            .expect("bearer");
        let ready = rt
            .run_until(Duration::from_secs(25), |_| rx_ready.try_recv().is_ok())
            .expect("poll");
        assert!(ready, "A: B never got ready");
        let seen = rt
            .run_until(Duration::from_secs(10), |rt| {
                rt.node().name_table().iter().any(|b| b.service_type == SVC)
            })
            .expect("poll");
        assert!(seen, "A: the binding never arrived");
        let src = rt.node_mut().open_port();
        let to = Addr::Service {
            service_type: SVC,
            instance: 1,
            domain: 0,
        };
        let start = Instant::now();
        let mut congested = 0u32;
        let mut k = 0;
        while k < MESSAGES {
            let now = rt.now();
            match rt
                .node_mut()
                .send(now, src, to, SendOpts::default(), &payload(k))
            {
                Ok(()) => k += 1,
                Err(SendError::Congested) => {
                    congested += 1;
                    rt.poll(Duration::from_millis(10), &[]).expect("poll");
                }
                Err(e) => panic!("A: send {k}: {e}"),
            }
            if k % 20 == 0 {
                rt.poll(Duration::ZERO, &[]).expect("poll");
            }
        }
        // Keep the link running (retransmissions) until B has everything.
        let all = rt
            .run_until(Duration::from_secs(60), |_| rx_all.try_recv().is_ok())
            .expect("poll");
        let elapsed = start.elapsed();
        let _ = tx_done.send(());
        let _ = rt.run_until(Duration::from_millis(500), |_| false);
        let links = rt.node().links();
        let faults = rt.bearer(BearerId(0)).map(|b| b.stats().counters);
        (all, elapsed, congested, links, faults)
    });

    let (all, elapsed, congested, links, bearer_a) =
        a.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let (got, (counters_b, mtu)) = b.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    eprintln!(
        "{MESSAGES} messages in {elapsed:?} over a lossy XDP path (MTU {mtu}); {congested} \
         congested sends; all received: {all}; link at A: {links:?}; bearer A: {bearer_a:?}; \
         bearer B: {counters_b:?}"
    );
    assert_eq!(
        got,
        (0..MESSAGES).collect::<Vec<_>>(),
        "every message once, in order"
    );
    drop(pair);
}
