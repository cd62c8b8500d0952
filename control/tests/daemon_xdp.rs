//! Two `utipcd` over AF_XDP (`--bearer xdp:veth0`, `--idle backoff`) in two network
//! namespaces joined by a veth pair:
//!
//! * the link comes up and traffic flows both ways (link STATE counters in `utipc link list
//!   --json`, the bearers' frame counters, the steering program's `steered` counter in `utipc
//!   bearer list --json`, all growing);
//! * plain kernel traffic on the same interfaces still works: an ICMP echo and a UDP exchange
//!   on another port between the namespaces, which the steering program counts as `passed`;
//! * `utipc pcap start|status|stop` captures the AF_XDP bearer's frames at run time into a file
//!   that the capture reader and `utipc decode --check` read;
//! * SIGKILL of a `utipcd` detaches its XDP program (the kernel releases the BPF link with the
//!   process): `ip -d link` shows no program afterwards, and a new `utipcd` gets AF_XDP on the
//!   interface again and brings the link back up.
//!
//! Needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SYS_ADMIN for `ip netns`) and iproute2;
//! without them it prints why and passes, unless `UTIPC_REQUIRE_NETNS=1`. Namespaces are named
//! `utdx-<pid>-<n>-a|b` and deleted afterwards (and by later runs if a run was killed).

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use utipc_control::capture::{Carrier, read_capture};
use utipc_testkit::{
    Cap, DaemonProc, Netns, Pair, TempDir, Veth, VethEnd, privileged, skip_or_fail,
};

const PREFIX: &str = "utdx-";
const TEST: &str = "two_daemons_over_af_xdp";
/// The two ends of the veth pair (198.18.0.0/15 is reserved for benchmarks and tests).
const ADDR_A: Ipv4Addr = Ipv4Addr::new(198, 19, 61, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(198, 19, 61, 2);
/// The UDP port of the kernel-traffic check: not TIPC's 6118, so never steered.
const UDP_PORT: u16 = 7061;

// =============================================================================================
// Privileges, namespaces, processes

/// `utdx-<pid>-<n>-a` (ADDR_A) and `-b` (ADDR_B) joined by veth0, both ends up.
fn pair() -> Result<Pair, String> {
    let end = |addr: Ipv4Addr| VethEnd {
        addrs: vec![format!("{addr}/24")],
        ..VethEnd::default()
    };
    Veth {
        a: end(ADDR_A),
        b: end(ADDR_B),
        ..Veth::default()
    }
    .create(PREFIX)
}

/// Starts `utipcd` with the AF_XDP bearer on veth0 of `ns`.
fn utipcd(name: &str, ns: &Netns, run_dir: &Path, id: &str) -> DaemonProc {
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_utipcd"));
    cmd.args(["--id", id, "--bearer", "xdp:veth0", "--idle", "backoff"])
        .arg("--run-dir")
        .arg(run_dir);
    DaemonProc::spawn(name, cmd)
}

/// Runs `utipc ARGS --run-dir DIR` inside `ns`.
fn utipc(ns: &Netns, run_dir: &Path, args: &[&str]) -> Output {
    ns.exec(env!("CARGO_BIN_EXE_utipc"))
        .args(args)
        .arg("--run-dir")
        .arg(run_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run utipc")
}

fn utipc_json(ns: &Netns, run_dir: &Path, args: &[&str]) -> Json {
    let mut all = args.to_vec();
    all.push("--json");
    let out = utipc(ns, run_dir, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "utipc {} failed: {}",
        all.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("utipc {all:?}: {e}: {text}"))
}

// =============================================================================================
// What the daemons show

/// One side's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    recv_states: u64,
    sent_states: u64,
    rx_frames: u64,
    tx_frames: u64,
    steered: u64,
    passed: u64,
    no_socket: u64,
    dropped: u64,
    kernel_rx_dropped: u64,
}

fn num(v: &Json, path: &[&str]) -> u64 {
    let mut cur = v;
    for k in path {
        cur = &cur[*k];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v}"))
}

/// The link (must be up) and bearer counters of one daemon.
fn sample(ns: &Netns, dir: &Path) -> Sample {
    let links = utipc_json(ns, dir, &["link", "list"]);
    let links = links.as_array().expect("link list is an array");
    assert_eq!(links.len(), 1, "{links:?}");
    let l = &links[0];
    assert_eq!(l["state"], "up", "{l}");
    let bl = utipc_json(ns, dir, &["bearer", "list"]);
    let b = &bl[0];
    assert_eq!(b["name"], "eth:veth0", "{bl}");
    let c = &b["counters"];
    assert!(
        c["af_xdp"]["mode"] == "copy" || c["af_xdp"]["mode"] == "zero-copy",
        "{c}"
    );
    assert!(c["steering"]["xdp_mode"].is_string(), "{c}");
    Sample {
        recv_states: num(l, &["stats", "recv_states"]) + num(l, &["stats", "recv_probes"]),
        sent_states: num(l, &["stats", "sent_states"]) + num(l, &["stats", "sent_probes"]),
        rx_frames: num(c, &["frames", "rx_frames"]),
        tx_frames: num(c, &["frames", "tx_frames"]),
        steered: num(c, &["steering", "steered"]),
        passed: num(c, &["steering", "passed"]),
        no_socket: num(c, &["steering", "no_socket"]),
        dropped: num(c, &["steering", "dropped"]),
        kernel_rx_dropped: num(c, &["xdp_kernel", "rx_dropped"]),
    }
}

/// Whether `ip -d link` shows an XDP program on veth0 of `ns`.
fn xdp_attached(ns: &Netns) -> bool {
    let out = ns
        .ip(&["-d", "link", "show", "dev", "veth0"])
        .unwrap_or_else(|e| panic!("{e}"));
    out.contains("prog/xdp") || out.contains(" xdp") || out.contains("xdpgeneric")
}

// =============================================================================================
// Kernel traffic

/// The Internet checksum of `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends one ICMP echo request to `dst` from the calling thread's namespace over a raw socket
/// (no `ping` binary needed) and waits up to 2 s for the matching reply; returns the round
/// trip.
fn icmp_echo(dst: Ipv4Addr) -> Result<Duration, String> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(|e| format!("raw ICMP socket: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let ident = (std::process::id() & 0xffff) as u16;
    let mut req = vec![8u8, 0, 0, 0];
    req.extend_from_slice(&ident.to_be_bytes());
    req.extend_from_slice(&1u16.to_be_bytes());
    req.extend_from_slice(b"utipc xdp test kernel traffic");
    let ck = inet_checksum(&req);
    req[2..4].copy_from_slice(&ck.to_be_bytes());
    let to = SockAddr::from(SocketAddrV4::new(dst, 0));
    let t0 = Instant::now();
    sock.send_to(&req, &to).map_err(|e| format!("send: {e}"))?;
    let deadline = t0 + Duration::from_secs(2);
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    while Instant::now() < deadline {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("recv: {e}")),
        };
        // SAFETY: recv initialised the first `n` bytes.
        let pkt: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        // A raw IPv4 socket returns the IP header too.
        let ihl = usize::from(pkt.first().map_or(0, |b| b & 0xf)) * 4;
        let Some(icmp) = pkt.get(ihl..) else { continue };
        if icmp.len() >= 8
            && icmp[0] == 0
            && icmp[4..6] == ident.to_be_bytes()
            && pkt.get(12..16) == Some(&dst.octets()[..])
        {
            return Ok(t0.elapsed());
        }
    }
    Err(format!("no ICMP echo reply from {dst} within 2 s"))
}

// =============================================================================================
// The test

#[test]
fn two_daemons_over_af_xdp() {
    // `ip netns exec` needs CAP_SYS_ADMIN; the steering program CAP_BPF.
    if !privileged(TEST, &[Cap::SYS_ADMIN, Cap::BPF]) {
        return;
    }
    let Pair { a: na, b: nb } = match pair() {
        Ok(p) => p,
        Err(why) => return skip_or_fail(TEST, &why),
    };
    let tmp = TempDir::new(PREFIX, "xdp");
    let (dir_a, dir_b) = (tmp.0.join("a"), tmp.0.join("b"));

    // Link up over AF_XDP.
    let t0 = Instant::now();
    let mut a = utipcd("utipcd a", &na, &dir_a, "utdxa");
    let mut b = utipcd("utipcd b", &nb, &dir_b, "utdxb");
    for d in [&mut a, &mut b] {
        d.wait_for("utipc: bearer eth:veth0: AF_XDP ", Duration::from_secs(10));
        d.wait_for(" utipcd: engine: idle backoff, ", Duration::from_secs(10));
        d.wait_for(" utipcd: link up utdx", Duration::from_secs(10));
    }
    let link_up = t0.elapsed();
    assert!(
        xdp_attached(&na) && xdp_attached(&nb),
        "both programs attached"
    );

    // Traffic flows both ways: link STATE messages, bearer frames and steered frames grow.
    let (a1, b1) = (sample(&na, &dir_a), sample(&nb, &dir_b));
    thread::sleep(Duration::from_millis(1200));
    let (a2, b2) = (sample(&na, &dir_a), sample(&nb, &dir_b));
    for (side, s1, s2) in [("a", a1, a2), ("b", b1, b2)] {
        assert!(s2.recv_states > s1.recv_states, "{side}: {s1:?} -> {s2:?}");
        assert!(s2.sent_states > s1.sent_states, "{side}: {s1:?} -> {s2:?}");
        assert!(s2.rx_frames > s1.rx_frames, "{side}: {s1:?} -> {s2:?}");
        assert!(s2.tx_frames > s1.tx_frames, "{side}: {s1:?} -> {s2:?}");
        assert!(s2.steered > s1.steered, "{side}: {s1:?} -> {s2:?}");
        // Every frame the bearer received went through the program's redirect.
        assert!(s2.steered >= s2.rx_frames, "{side}: {s2:?}");
        // A frame that arrives between attaching the program and registering the socket (at
        // startup) counts as no_socket; none once both run.
        assert_eq!(
            (s2.no_socket, s2.dropped),
            (s1.no_socket, 0),
            "{side}: {s1:?} -> {s2:?}"
        );
        assert_eq!(s2.kernel_rx_dropped, 0, "{side}: {s2:?}");
    }
    let text = String::from_utf8_lossy(&utipc(&na, &dir_a, &["bearer", "list", "--stats"]).stdout)
        .into_owned();
    assert!(text.starts_with("eth:veth0\n"), "{text}");
    assert!(
        text.contains("\n  steering: ") && text.contains(" steered="),
        "{text}"
    );
    assert!(
        text.contains("\n  af_xdp: ") && text.contains("\n  xdp_kernel: "),
        "{text}"
    );

    // Plain kernel traffic on the same interfaces: ICMP echo, UDP on another port. The
    // program passes it to the kernel (and counts it).
    let rtt = na
        .run(|| icmp_echo(ADDR_B))
        .unwrap_or_else(|e| panic!("ping a -> b: {e}"));
    nb.run(|| icmp_echo(ADDR_A))
        .unwrap_or_else(|e| panic!("ping b -> a: {e}"));
    // The sockets are created by threads inside the namespaces: b echoes one datagram.
    let (ready_tx, ready_rx) = mpsc::channel();
    let echo = nb.spawn(move || -> Result<usize, String> {
        let s = UdpSocket::bind((ADDR_B, UDP_PORT)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let mut buf = [0u8; 256];
        let (n, from) = s.recv_from(&mut buf).map_err(|e| format!("server: {e}"))?;
        s.send_to(&buf[..n], from).map_err(|e| e.to_string())?;
        Ok(n)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("UDP server in b ready");
    let reply = na.run(|| -> Result<Vec<u8>, String> {
        let s = UdpSocket::bind((ADDR_A, 0)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.send_to(b"kernel UDP beside AF_XDP", (ADDR_B, UDP_PORT))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 256];
        let (n, _) = s.recv_from(&mut buf).map_err(|e| format!("client: {e}"))?;
        Ok(buf[..n].to_vec())
    });
    let echoed = echo.join().expect("echo thread");
    assert_eq!(echoed, Ok(24), "UDP server in b");
    assert_eq!(
        reply.as_deref(),
        Ok(&b"kernel UDP beside AF_XDP"[..]),
        "UDP a -> b -> a"
    );
    let a3 = sample(&na, &dir_a);
    let b3 = sample(&nb, &dir_b);
    // a saw at least the echo reply and the UDP reply (plus ARP) pass; b the request and the
    // datagram.
    assert!(a3.passed >= a2.passed + 2, "{a2:?} -> {a3:?}");
    assert!(b3.passed >= b2.passed + 2, "{b2:?} -> {b3:?}");
    assert_eq!((a3.no_socket, b3.no_socket), (a2.no_socket, b2.no_socket));

    // The run-time pcap toggle on a's AF_XDP bearer.
    let cap = tmp.0.join("a-xdp.pcap");
    let cap_s = cap.to_str().expect("utf-8 temp path");
    let started = utipc_json(&na, &dir_a, &["pcap", "start", cap_s]);
    assert_eq!(started[0]["bearer"], "eth:veth0", "{started}");
    assert_eq!(started[0]["path"], cap_s, "{started}");
    let again = utipc(&na, &dir_a, &["pcap", "start", cap_s]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already capturing") && err.contains("pcap stop"),
        "{err}"
    );
    thread::sleep(Duration::from_millis(1200));
    let status = utipc_json(&na, &dir_a, &["pcap", "status"]);
    assert_eq!(status[0]["capturing"], true, "{status}");
    assert!(num(&status[0], &["frames_written"]) > 0, "{status}");
    let stopped = utipc_json(&na, &dir_a, &["pcap", "stop"]);
    let written = num(&stopped[0], &["frames_written"]);
    assert_eq!(stopped[0]["path"], cap_s, "{stopped}");
    assert!(stopped[0].get("error").is_none(), "{stopped}");
    let none = utipc(&na, &dir_a, &["pcap", "stop"]);
    assert_eq!(
        String::from_utf8_lossy(&none.stdout),
        "no capture was running\n"
    );
    let (frames, stats) = read_capture(&cap).expect("the capture is readable");
    assert_eq!(frames.len() as u64, written, "{stats:?}");
    assert_eq!(stats.skipped + stats.malformed, 0, "{stats:?}");
    let sources: BTreeSet<[u8; 6]> = frames
        .iter()
        .map(|f| match &f.link {
            Carrier::Ethernet { src, .. } => *src,
            other => panic!("not an Ethernet frame: {other:?}"),
        })
        .collect();
    assert_eq!(sources.len(), 2, "sent and received frames are captured");
    let decode = Command::new(env!("CARGO_BIN_EXE_utipc"))
        .args(["decode", "--check"])
        .arg(&cap)
        .output()
        .expect("utipc decode");
    let out = String::from_utf8_lossy(&decode.stdout);
    assert!(decode.status.success(), "utipc decode --check:\n{out}");
    assert!(
        out.trim_end().ends_with(&format!(
            "frames={written} tipc={written} ok={written} failed=0"
        )),
        "{out}"
    );

    // SIGKILL detaches the program: nothing of utipcd runs, the kernel drops the BPF link.
    a.signal(libc::SIGKILL);
    let status = a.wait_exit(Duration::from_secs(5));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let t_kill = Instant::now();
    let deadline = t_kill + Duration::from_secs(3);
    while xdp_attached(&na) {
        assert!(
            Instant::now() < deadline,
            "XDP program still attached 3 s after SIGKILL:\n{}",
            na.ip(&["-d", "link", "show", "dev", "veth0"])
                .unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let detach = t_kill.elapsed();
    assert!(xdp_attached(&nb), "b's program is untouched");
    // The interface is free: a new utipcd gets AF_XDP again and the link comes back.
    let t_restart = Instant::now();
    let mut a2d = utipcd("utipcd a (restarted)", &na, &dir_a, "utdxa");
    a2d.wait_for("utipc: bearer eth:veth0: AF_XDP ", Duration::from_secs(10));
    a2d.wait_for(" utipcd: link up utdx", Duration::from_secs(10));
    let relink = t_restart.elapsed();
    let a4 = sample(&na, &dir_a);

    eprintln!(
        "{TEST}: link up after {:.0} ms; ICMP echo a->b {:.0} us; over 1.2 s idle: a \
         states {}->{} rx_frames {}->{} steered {}->{}, b states {}->{} steered {}->{}; \
         after kernel ping+UDP: passed a {}->{}, b {}->{}; capture of 1.2 s: {written} frames; \
         XDP detached within {:.0} ms of SIGKILL; restarted a linked up in {:.0} ms (steered \
         {} since)",
        link_up.as_secs_f64() * 1e3,
        rtt.as_secs_f64() * 1e6,
        a1.recv_states,
        a2.recv_states,
        a1.rx_frames,
        a2.rx_frames,
        a1.steered,
        a2.steered,
        b1.recv_states,
        b2.recv_states,
        b1.steered,
        b2.steered,
        a2.passed,
        a3.passed,
        b2.passed,
        b3.passed,
        detach.as_secs_f64() * 1e3,
        relink.as_secs_f64() * 1e3,
        a4.steered,
    );
    drop(a2d);
    drop(b);
}
