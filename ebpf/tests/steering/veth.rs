//! The program attached to a real interface: a veth pair between two namespaces. `a` runs the
//! program, `b` sends.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use utipc_ebpf::{AttachMode, AttachedMode, Counters, SteeringError, XdpSteering};

use crate::frames::{self, ETH_P_IP, IPPROTO_UDP};
use utipc_testkit::enter_netns;

use crate::netns::{A_MAC, A4, B4, Netns, VETH, netns, privileged, veth_pair};
use crate::sockets::{Xsk, if_index, ping, send_raw};

/// Waits (up to 2 s) until the counters satisfy `done`; returns the last reading.
fn wait_counters(s: &XdpSteering, done: impl Fn(&Counters) -> bool) -> Counters {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let c = s.counters().expect("counters");
        if done(&c) || Instant::now() > deadline {
            return c;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// `ip -o link show dev DEV` in `ns`.
fn link(ns: &Netns, dev: &str) -> String {
    ns.link_show(dev).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `ip link show` reports an XDP program on the interface.
fn has_xdp(ns: &Netns) -> bool {
    link(ns, VETH).contains(" xdp")
}

/// Waits (up to 2 s) until no XDP program is attached.
fn wait_detached(ns: &Netns) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !has_xdp(ns) {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

fn tipc_to_a(len: usize) -> Vec<u8> {
    frames::ethernet(A_MAC, &[], utipc_ebpf::ETH_P_TIPC, &frames::tipc(len))
}

#[test]
fn veth_steers_tipc_and_leaves_other_traffic_alone() {
    if !privileged("veth_steers_tipc_and_leaves_other_traffic_alone") {
        return;
    }
    let pair = veth_pair();
    pair.a.run(|| {
        let mut steering = XdpSteering::attach(VETH, AttachMode::Auto).expect("attach");
        // veth has native XDP.
        assert_eq!(steering.mode(), AttachedMode::Native);
        assert_eq!(steering.fallback_reason(), None);
        assert_eq!(steering.ifname(), VETH);
        assert!(has_xdp(&pair.a), "{}", link(&pair.a, VETH));

        // Plain traffic still reaches the kernel: a ping is answered, UDP to another port
        // arrives.
        let udp = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7118)).expect("bind");
        udp.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        pair.b.run(|| {
            assert!(ping(A4), "no echo reply from a with the program attached");
            let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(B4), 0)).expect("bind");
            s.send_to(b"plain", SocketAddrV4::new(Ipv4Addr::from(A4), 7118))
                .expect("send");
        });
        let mut buf = [0u8; 64];
        let (n, _) = udp
            .recv_from(&mut buf)
            .expect("UDP to port 7118 reaches the kernel");
        assert_eq!(&buf[..n], b"plain");
        let c = wait_counters(&steering, |c| c.passed >= 2);
        assert!(c.passed >= 2, "{c}");

        // TIPC without a registered socket: passed, counted as no_socket. A runt: dropped.
        pair.b.run(|| {
            send_raw(VETH, &tipc_to_a(60));
            send_raw(VETH, &tipc_to_a(10));
        });
        let c = wait_counters(&steering, |c| c.no_socket == 1 && c.dropped == 1);
        assert_eq!((c.steered, c.no_socket, c.dropped), (0, 1, 1), "{c}");

        // With a socket on queue 0: TIPC over Ethernet and UDP 6118 arrive in it, byte for byte.
        let xsk = Xsk::bind(if_index(VETH), 0).expect("AF_XDP socket on veth0");
        steering.register_xsk(0, xsk.raw_fd()).expect("register");
        let tipc = tipc_to_a(60);
        pair.b.run(|| {
            send_raw(VETH, &tipc);
            let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(B4), 0)).expect("bind");
            s.send_to(
                &frames::tipc(40),
                SocketAddrV4::new(Ipv4Addr::from(A4), 6118),
            )
            .expect("send");
        });
        let got = xsk
            .recv(Duration::from_secs(2))
            .expect("TIPC frame in the AF_XDP socket");
        assert_eq!(got, tipc);
        let got = xsk
            .recv(Duration::from_secs(2))
            .expect("UDP 6118 in the AF_XDP socket");
        assert_eq!(u16::from_be_bytes([got[12], got[13]]), ETH_P_IP);
        assert_eq!(got[14 + 9], IPPROTO_UDP);
        assert_eq!(&got[14 + 20 + 2..14 + 20 + 4], &6118u16.to_be_bytes());
        assert_eq!(&got[14 + 28..], &frames::tipc(40)[..]);
        let c = wait_counters(&steering, |c| c.steered == 2);
        assert_eq!((c.steered, c.no_socket, c.dropped), (2, 1, 1), "{c}");

        // UDP steering off (the UDP bearer on kernel sockets): 6118 reaches the kernel socket.
        steering
            .set_config(utipc_ebpf::SteerConfig {
                ethernet: true,
                udp: false,
            })
            .expect("config");
        let kernel = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 6118)).expect("bind");
        kernel
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        pair.b.run(|| {
            let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::from(B4), 0)).expect("bind");
            s.send_to(b"kernel", SocketAddrV4::new(Ipv4Addr::from(A4), 6118))
                .expect("send");
        });
        let (n, _) = kernel
            .recv_from(&mut buf)
            .expect("UDP 6118 reaches the kernel");
        assert_eq!(&buf[..n], b"kernel");
        assert_eq!(steering.counters().expect("counters").steered, 2);

        drop(steering);
        assert!(
            wait_detached(&pair.a),
            "still attached after drop: {}",
            link(&pair.a, VETH)
        );
    });
}

#[test]
fn one_program_per_interface_and_generic_mode() {
    if !privileged("one_program_per_interface_and_generic_mode") {
        return;
    }
    let pair = veth_pair();
    pair.a.run(|| {
        let generic = XdpSteering::attach(VETH, AttachMode::Generic).expect("generic attach");
        assert_eq!(generic.mode(), AttachedMode::Generic);
        assert!(link(&pair.a, VETH).contains("xdpgeneric"));
        for mode in [AttachMode::Auto, AttachMode::Native, AttachMode::Generic] {
            let e = XdpSteering::attach(VETH, mode).expect_err("second program");
            assert!(matches!(e, SteeringError::Attach { .. }), "{e}");
            assert!(
                e.to_string()
                    .contains("another XDP program is already attached"),
                "{e}"
            );
        }
        // A generic-mode program still steers.
        pair.b.run(|| send_raw(VETH, &tipc_to_a(60)));
        let c = wait_counters(&generic, |c| c.no_socket == 1);
        assert_eq!(c.no_socket, 1, "{c}");
        generic.detach();
        assert!(wait_detached(&pair.a), "{}", link(&pair.a, VETH));
        // Free again.
        let native = XdpSteering::attach(VETH, AttachMode::Native).expect("native attach");
        assert_eq!(native.mode(), AttachedMode::Native);
    });
    let e = XdpSteering::attach("utnosuch0", AttachMode::Auto).expect_err("no such interface");
    assert!(matches!(e, SteeringError::UnknownInterface(_)), "{e}");
}

/// Auto mode on an interface without native XDP falls back to generic and says why: the
/// loopback driver has no native XDP.
#[test]
fn auto_falls_back_to_generic() {
    if !privileged("auto_falls_back_to_generic") {
        return;
    }
    let ns = netns("lo");
    ns.run(|| {
        let s = XdpSteering::attach("lo", AttachMode::Auto).expect("attach");
        assert_eq!(s.mode(), AttachedMode::Generic);
        let why = s.fallback_reason().expect("a reason");
        assert!(!why.contains('\n'), "{why}");
        assert_eq!(
            why,
            "native XDP failed: the driver has no native XDP support \
             (Operation not supported (os error 95))"
        );
        assert!(link(&ns, "lo").contains("xdpgeneric"));
        drop(s);
        let e = XdpSteering::attach("lo", AttachMode::Native).expect_err("native only");
        assert!(matches!(e, SteeringError::Attach { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "cannot attach the XDP program to lo (Native mode): native XDP failed: the driver \
             has no native XDP support (Operation not supported (os error 95))"
        );
    });
}

/// Environment variable that turns `crash_child` into the child of `detached_after_sigkill`:
/// the namespace to attach in.
const CHILD_ENV: &str = "UTIPC_EBPF_CRASH_CHILD_NETNS";

/// The program is detached when its process dies by SIGKILL (the attachment is a BPF link).
#[test]
fn detached_after_sigkill() {
    if !privileged("detached_after_sigkill") {
        return;
    }
    let pair = veth_pair();
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "veth::crash_child",
            "--include-ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, pair.a.name())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test veth::crash_child ... " on the same line first.
            if let Some(at) = line.find("ATTACHED ") {
                let _ = tx.send(line[at..].to_owned());
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let attached = link(&pair.a, VETH);
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    let _ = reader.join();
    let line = line.expect("the child attached");
    assert_eq!(line, "ATTACHED native");
    assert!(attached.contains(" xdp"), "{attached}");
    assert!(!status.success(), "killed");
    assert!(
        wait_detached(&pair.a),
        "still attached after the owner was killed: {}",
        link(&pair.a, VETH)
    );
}

/// Helper process of `detached_after_sigkill`: attaches in the namespace named by
/// `UTIPC_EBPF_CRASH_CHILD_NETNS` and waits to be killed. Does nothing in a normal run.
#[test]
#[ignore = "helper process of detached_after_sigkill"]
fn crash_child() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    // Stays in the namespace until killed; the guard would restore the thread otherwise.
    let _in = enter_netns(&name).unwrap_or_else(|e| panic!("{e}"));
    let steering = XdpSteering::attach(VETH, AttachMode::Native).expect("attach");
    println!("ATTACHED {}", steering.mode());
    // Bounded: the parent kills us long before this ends.
    thread::sleep(Duration::from_secs(30));
    drop(steering);
}
