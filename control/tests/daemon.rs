//! `utipcd` tests.
//!
//! * In-process: a [`Daemon`] around a node without bearers, driven by an [`AgentInvoker`]
//!   with the blocking idle strategy (or run on an engine thread), and its management protocol
//!   spoken over the real Unix socket: malformed JSON, unknown commands, oversize lines,
//!   pipelined requests, a response much larger than the socket buffer, stale and live sockets,
//!   [`mgmt_client`].
//! * `utipcd --cpu` naming a CPU that does not exist and `--idle` with a bad strategy: clear
//!   errors, exit statuses 1 and 2.
//! * Two real `utipcd` processes in two network namespaces joined by a veth pair, over the UDP
//!   and the Ethernet (AF_PACKET) bearer, one with `--idle block --cpu 0`, the other with the
//!   default backoff: link up, `utipc link/node/nametable/bearer list`, the idle daemons' CPU
//!   time, SIGTERM to one daemon and the time the other needs to log "node down". These need
//!   root (CAP_NET_ADMIN, CAP_NET_RAW) and iproute2; without them they print why and pass,
//!   unless `UTIPC_REQUIRE_NETNS=1`.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use utipc_control::config;
use utipc_control::daemon::{ControlListener, Daemon, DaemonError, Logger, MAX_LINE, Stop};
use utipc_control::mgmt::Query;
use utipc_control::mgmt_client::{self, ClientError};
use utipc_dataplane::engine::{AgentInvoker, EngineConfig, IdleConfig, IdleKind, ThreadingMode};
use utipc_dataplane::runtime::NodeRuntime;
use utipc_proto::name_table::Scope;
use utipc_proto::node::{Node, NodeConfig};
use utipc_testkit::{DaemonProc, Netns, TempDir, netns_available, pair, skip_or_fail};

const PREFIX: &str = "utd-";

// =============================================================================================
// In-process daemon

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn in_process(dir: &Path) -> Daemon {
    let node = Node::new(NodeConfig::new("inproc".parse().expect("id"), 7));
    let ctl = ControlListener::bind(dir).expect("bind the control socket");
    Daemon::new(
        NodeRuntime::new(node),
        ctl,
        Logger::to(Box::new(Sink::default()), true),
    )
    .expect("daemon")
}

/// The daemon on an invoker with the blocking strategy (tests never spin), started.
fn invoker(d: Daemon) -> AgentInvoker<Daemon> {
    let mut inv = AgentInvoker::new(d, &IdleConfig::new(IdleKind::Block)).expect("invoker");
    inv.start().expect("start");
    inv
}

/// Runs the daemon's duty cycles for `time`, sleeping whenever it is idle.
fn turns(d: &mut AgentInvoker<Daemon>, time: Duration) {
    d.run_until(time, |_| false).expect("turns");
}

fn connect(d: &Daemon) -> UnixStream {
    let c = UnixStream::connect(d.socket_path()).expect("connect");
    c.set_nonblocking(true).expect("nonblocking");
    c
}

/// Writes `req` and runs daemon turns until `lines` response lines (or EOF) arrived; bounded.
/// Returns the lines and whether the daemon closed the connection.
fn exchange(
    d: &mut AgentInvoker<Daemon>,
    c: &mut UnixStream,
    req: &[u8],
    lines: usize,
) -> (Vec<Json>, bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut written = 0;
    let mut got = Vec::new();
    let mut eof = false;
    let mut buf = vec![0u8; 64 * 1024];
    while got.iter().filter(|&&b| b == b'\n').count() < lines && !eof {
        assert!(Instant::now() < deadline, "no answer within 10 s");
        while written < req.len() {
            match c.write(&req[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The daemon may close while we still write (oversize line).
                Err(_) => written = req.len(),
            }
        }
        turns(d, Duration::from_millis(5));
        loop {
            match c.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    eof = true;
                    break;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    let parsed = got
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("each response line is JSON"))
        .collect();
    (parsed, eof)
}

fn error_of(v: &Json) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().expect("error message")
}

#[test]
fn protocol_errors_never_crash_the_daemon() {
    let dir = TempDir::new(PREFIX, "proto");
    let mut d = invoker(in_process(&dir.0));
    let mut c = connect(d.agent());

    let (r, _) = exchange(&mut d, &mut c, b"{\"cmd\": \"node-list\"}\n", 1);
    assert_eq!(r[0]["ok"], true, "{}", r[0]);
    assert_eq!(r[0]["data"][0]["id"], "inproc");

    let (r, _) = exchange(&mut d, &mut c, b"{\"cmd\": \"node-lis\n", 1);
    assert!(error_of(&r[0]).contains("malformed request"), "{}", r[0]);

    let (r, _) = exchange(&mut d, &mut c, b"{\"cmd\": \"reboot\"}\n", 1);
    let e = error_of(&r[0]);
    assert!(
        e.contains("unknown command \"reboot\"") && e.contains("link-list"),
        "{e}"
    );

    let (r, _) = exchange(&mut d, &mut c, b"{\"command\": 1}\n\xff\xfe\n", 2);
    assert!(error_of(&r[0]).contains("\"cmd\""), "{}", r[0]);
    assert!(error_of(&r[1]).contains("malformed"), "{}", r[1]);

    // Pipelined requests, answered in order; blank lines ignored; ids echoed.
    let mut req = Vec::new();
    for (i, q) in [
        "link-list",
        "node-list",
        "nametable-show",
        "bearer-list",
        "stats",
    ]
    .iter()
    .enumerate()
    {
        req.extend_from_slice(format!("{{\"cmd\":\"{q}\",\"id\":{i}}}\n\n").as_bytes());
    }
    let (r, eof) = exchange(&mut d, &mut c, &req, 5);
    assert!(!eof);
    assert_eq!(r.len(), 5);
    for (i, v) in r.iter().enumerate() {
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["id"], i, "{v}");
    }
    assert!(r[4]["data"]["addr"].is_string(), "{}", r[4]);

    // More requests in one write than the daemon answers per turn: all answered, in order.
    let req: Vec<u8> = (0..40)
        .flat_map(|i| format!("{{\"cmd\":\"stats\",\"id\":{i}}}\n").into_bytes())
        .collect();
    let (r, _) = exchange(&mut d, &mut c, &req, 40);
    assert_eq!(r.len(), 40);
    assert!(
        r.iter().enumerate().all(|(i, v)| v["id"] == i),
        "out of order"
    );

    // More than 64 KiB without a newline: one error, then the daemon hangs up. Another
    // client is unaffected.
    let mut other = connect(d.agent());
    let big = vec![b'x'; MAX_LINE + 4096];
    let (r, eof) = exchange(&mut d, &mut c, &big, 1);
    assert!(
        error_of(&r[0]).contains("longer than 65536 bytes"),
        "{}",
        r[0]
    );
    assert!(
        eof || exchange(&mut d, &mut c, b"", 1).1,
        "the daemon should hang up"
    );
    let (r, _) = exchange(&mut d, &mut other, b"{\"cmd\":\"bearer-list\"}\n", 1);
    assert_eq!(r[0]["data"], Json::Array(vec![]));

    // A last request without a newline before the client half-closes is still answered.
    let mut last = connect(d.agent());
    last.write_all(b"{\"cmd\":\"stats\"}").expect("write");
    last.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let (r, eof) = exchange(&mut d, &mut last, b"", 1);
    assert_eq!(r[0]["ok"], true, "{}", r[0]);
    assert!(eof || exchange(&mut d, &mut last, b"", 1).1);

    drop((c, other, last));
    d.run_until(Duration::from_secs(5), |d| d.client_count() == 0)
        .expect("turns");
    assert_eq!(d.agent().client_count(), 0, "closed clients are dropped");
    assert_eq!(d.agent().stop_reason(), None);
    let d = d.into_agent();
    let sock = d.socket_path().to_owned();
    d.shutdown();
    assert!(!sock.exists(), "shutdown removes the socket");
}

#[test]
fn large_responses_go_out_through_the_buffer() {
    let dir = TempDir::new(PREFIX, "large");
    let mut d = in_process(&dir.0);
    let now = d.runtime().now();
    let node = d.runtime_mut().node_mut();
    let port = node.open_port();
    const N: u32 = 20_000;
    for i in 0..N {
        node.bind(now, port, Scope::Node, 1000, i, i).expect("bind");
    }
    let mut c = connect(&d);
    let mut d = invoker(d);
    c.write_all(b"{\"cmd\":\"nametable-show\"}\n{\"cmd\":\"stats\"}\n")
        .expect("write");
    // The daemon writes what the socket takes and waits for POLLOUT; it does not block.
    let t = Instant::now();
    turns(&mut d, Duration::from_millis(5));
    assert!(t.elapsed() < Duration::from_secs(2));
    let (r, _) = exchange(&mut d, &mut c, b"", 2);
    let rows = r[0]["data"].as_array().expect("rows");
    // Ours plus the node's own {1,1,1} topology service binding (listed by the kernel's
    // `tipc nametable show` too).
    assert_eq!(rows.len(), N as usize + 1);
    assert_eq!(r[1]["ok"], true);
    d.into_agent().shutdown();
}

#[test]
fn socket_ownership() {
    let dir = TempDir::new(PREFIX, "own");
    // A socket file nobody listens on (a daemon that died) is replaced.
    let path = config::control_socket(&dir.0);
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let d = in_process(&dir.0);
    // A live one is not.
    match ControlListener::bind(&dir.0) {
        Err(e @ DaemonError::AlreadyRunning { .. }) => {
            assert!(
                e.to_string().starts_with("another utipcd is running on "),
                "{e}"
            );
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    d.shutdown();
    assert!(!path.exists());
    // A file that is not a socket is left alone.
    fs::write(&path, b"x").expect("write");
    assert!(matches!(
        ControlListener::bind(&dir.0),
        Err(DaemonError::NotASocket(_))
    ));
    // The run directory is created with mode 0755.
    let sub = dir.0.join("a/b");
    drop(ControlListener::bind(&sub).expect("bind in a new dir"));
    let mode = fs::metadata(&sub).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode & 0o755, 0o755, "{mode:o}");
    assert!(
        !config::control_socket(&sub).exists(),
        "dropping the listener removes the socket"
    );
}

#[test]
fn mgmt_client_against_a_daemon_thread() {
    let dir = TempDir::new(PREFIX, "client");
    let d = in_process(&dir.0);
    let stop = d.stop_handle();
    let t = thread::spawn(move || {
        let engine = EngineConfig::new(ThreadingMode::Shared, IdleKind::Block);
        let (d, why) = d.run(&engine)?;
        d.shutdown();
        Ok::<_, DaemonError>(why)
    });
    let data = mgmt_client::query(&dir.0, Query::NodeList).expect("node list");
    assert_eq!(data[0]["id"], "inproc", "{data}");
    let data = mgmt_client::query(&dir.0, Query::LinkList).expect("link list");
    assert_eq!(data, Json::Array(vec![]));
    let e = mgmt_client::request(
        &dir.0,
        &serde_json::json!({"cmd": "bogus"}),
        Duration::from_secs(2),
    )
    .expect_err("unknown command");
    assert!(matches!(e, ClientError::Daemon(_)), "{e:?}");
    assert!(
        e.to_string().starts_with("unknown command \"bogus\""),
        "{e}"
    );
    let t0 = Instant::now();
    stop.stop();
    let why = t.join().expect("daemon thread");
    assert_eq!(why.expect("run"), Stop::Requested);
    assert!(t0.elapsed() < Duration::from_secs(1), "stop is immediate");
    let e = mgmt_client::query(&dir.0, Query::NodeList).expect_err("stopped");
    assert!(
        e.to_string()
            .starts_with("no utipcd is running (no socket at "),
        "{e}"
    );
}

// =============================================================================================
// Engine options

/// A CPU number this machine does not have: 99, or beyond the CPUs there are.
fn missing_cpu() -> usize {
    let n = thread::available_parallelism().map_or(1, usize::from);
    if n <= 99 { 99 } else { 1023 }
}

#[test]
fn bad_engine_options_are_refused_clearly() {
    let dir = TempDir::new(PREFIX, "cpu");
    let run_dir = dir.0.join("run");
    let cpu = missing_cpu().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_utipcd"))
        .args(["--cpu", &cpu, "--bearer", "udp:lo", "--run-dir"])
        .arg(&run_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run utipcd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "utipcd: error: --cpu: CPU {cpu} does not exist on this machine (online CPUs: "
        )),
        "{err}"
    );
    assert!(!run_dir.exists(), "nothing was claimed before the check");

    // Values that do not parse: clap's usage error (status 2) with the engine's explanation.
    for (flag, value, says) in [
        (
            "--idle",
            "sleep",
            "use spin (burns a core, lowest latency), backoff",
        ),
        ("--cpu", "1-0", "write 0-1"),
        ("--cpu", "x", "such as 0, 0,1 or 0-1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_utipcd"))
            .args([flag, value, "--bearer", "udp:lo", "--run-dir"])
            .arg(&run_dir)
            .stdin(Stdio::null())
            .output()
            .expect("run utipcd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
    }

    // The embedded commands take the same options and say the same.
    let out = Command::new(env!("CARGO_BIN_EXE_utipc"))
        .args([
            "recv",
            "--embedded",
            "--bind",
            "1000:1",
            "--bearer",
            "udp:lo",
        ])
        .args(["--idle", "block", "--cpu", &cpu])
        .stdin(Stdio::null())
        .output()
        .expect("run utipc");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--cpu: CPU {cpu} does not exist on this machine")),
        "{err}"
    );
}

// =============================================================================================
// Two utipcd processes in network namespaces

/// Starts `utipcd ARGS --run-dir DIR` inside `ns`.
fn utipcd(name: &str, ns: &Netns, run_dir: &Path, args: &[&str]) -> DaemonProc {
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_utipcd"));
    cmd.args(args).arg("--run-dir").arg(run_dir);
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

fn utipc_text(ns: &Netns, run_dir: &Path, args: &[&str]) -> String {
    let out = utipc(ns, run_dir, args);
    assert!(
        out.status.success(),
        "utipc {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn utipc_json(ns: &Netns, run_dir: &Path, args: &[&str]) -> Json {
    let mut all = args.to_vec();
    all.push("--json");
    let text = utipc_text(ns, run_dir, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("utipc {args:?} --json: {e}: {text}"))
}

fn two_daemons(test: &str, media: &str) {
    if !netns_available(test) {
        return;
    }
    let (na, nb) = match pair(PREFIX) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(test, &why),
    };
    let tmp = TempDir::new(PREFIX, media);
    let (dir_a, dir_b) = (tmp.0.join("a"), tmp.0.join("b"));
    let bearer = format!("{media}:veth0");
    let (id_a, id_b) = (format!("utd{media}a"), format!("utd{media}b"));

    let t0 = Instant::now();
    // a sleeps when idle and is pinned; b runs with the default backoff, not pinned.
    let mut a = utipcd(
        "utipcd a",
        &na,
        &dir_a,
        &[
            "--id", &id_a, "--bearer", &bearer, "--idle", "block", "--cpu", "0",
        ],
    );
    let mut b = utipcd(
        "utipcd b",
        &nb,
        &dir_b,
        &["--id", &id_b, "--bearer", &bearer],
    );
    let up_a = a.wait_for(" utipcd: link up ", Duration::from_secs(10));
    let up_b = b.wait_for(" utipcd: link up ", Duration::from_secs(10));
    let link_up = up_a.max(up_b) - t0;
    // The startup lines: identity and bearer.
    a.wait_for(&format!("utipcd: node {id_a} address "), Duration::ZERO);
    a.wait_for(
        &format!("utipcd: bearer {bearer} (slot 0) on veth0: address {media}:"),
        Duration::ZERO,
    );
    a.wait_for("utipcd: engine: idle block, ", Duration::ZERO);
    a.wait_for(" pinned to CPU 0", Duration::ZERO);
    b.wait_for("utipcd: engine: idle backoff, ", Duration::ZERO);
    b.wait_for(" not pinned", Duration::ZERO);

    // link list, as text and JSON.
    let text = utipc_text(&na, &dir_a, &["link", "list"]);
    let want = format!("{id_a}:veth0-{id_b}:veth0: up");
    assert!(text.lines().any(|l| l == want), "want {want:?} in:\n{text}");
    let links = utipc_json(&na, &dir_a, &["link", "list"]);
    let links = links.as_array().expect("array");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["state"], "up");

    // node list: both nodes, up.
    let text = utipc_text(&nb, &dir_b, &["node", "list"]);
    assert!(text.contains(&id_a) && text.contains(&id_b), "{text}");
    let nodes = utipc_json(&na, &dir_a, &["node", "list"]);
    let nodes = nodes.as_array().expect("array");
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let addr_of = |id: &str| -> u64 {
        let n = nodes
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {nodes:?}"));
        assert_eq!(n["state"], "up", "{n}");
        u64::from_str_radix(n["addr"].as_str().expect("addr"), 16).expect("hex addr")
    };
    let (addr_a, addr_b) = (addr_of(&id_a), addr_of(&id_b));

    // nametable: both nodes' {0, addr, addr}.
    let nt = utipc_json(&na, &dir_a, &["nametable", "show"]);
    for addr in [addr_a, addr_b] {
        assert!(
            nt.as_array().expect("array").iter().any(|r| r["type"] == 0
                && r["lower"] == addr
                && r["upper"] == addr
                && r["node"] == format!("{addr:08x}")),
            "no {{0,{addr},{addr}}} in {nt}"
        );
    }
    let text = utipc_text(&na, &dir_a, &["nametable", "show"]);
    assert!(text.contains(&addr_b.to_string()), "{text}");

    // bearer list.
    assert_eq!(
        utipc_text(&na, &dir_a, &["bearer", "list"]),
        format!("{bearer}\n")
    );
    let bl = utipc_json(&nb, &dir_b, &["bearer", "list"]);
    assert_eq!(bl[0]["name"], bearer.as_str(), "{bl}");
    assert_eq!(bl[0]["media"], media, "{bl}");

    // Idle (link up, no traffic), neither daemon spins: a sleeps, b parks. The bound only
    // catches a spinning engine (100 %); the measured values are printed.
    let window = Duration::from_secs(2);
    let (cpu_a, cpu_b) = (a.cpu_time(), b.cpu_time());
    thread::sleep(window);
    let busy = |before: Duration, now: Duration| {
        100.0 * (now.saturating_sub(before)).as_secs_f64() / window.as_secs_f64()
    };
    let (idle_a, idle_b) = (busy(cpu_a, a.cpu_time()), busy(cpu_b, b.cpu_time()));
    eprintln!(
        "{test}: idle CPU over {window:?}: a (--idle block) {idle_a:.2} %, b (backoff) \
         {idle_b:.2} % of a core"
    );
    assert!(
        idle_a < 25.0 && idle_b < 25.0,
        "idle daemons use {idle_a:.1} % (block) and {idle_b:.1} % (backoff) of a core"
    );

    // A second daemon on the same run directory refuses to start.
    let second = nb
        .exec(env!("CARGO_BIN_EXE_utipcd"))
        .args(["--bearer", &bearer, "--run-dir"])
        .arg(&dir_b)
        .stdin(Stdio::null())
        .output()
        .expect("second utipcd");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(err.contains("another utipcd is running on"), "{err}");

    // SIGTERM to a: it exits 0 at once, removes its socket; b sees the node go down at once.
    let t_term = Instant::now();
    a.signal(libc::SIGTERM);
    let down_b = b.wait_for(" utipcd: node down ", Duration::from_secs(1));
    let status = a.wait_exit(Duration::from_secs(3));
    let exit_a = t_term.elapsed();
    assert!(
        status.success(),
        "utipcd a exited with {status}; log:\n{}",
        a.log.join("\n")
    );
    assert!(
        !config::control_socket(&dir_a).exists(),
        "a's socket is removed"
    );
    a.wait_for("utipcd: SIGTERM: shutting down", Duration::ZERO);
    b.wait_for("(peer is stopping)", Duration::ZERO);
    let node_down = down_b - t_term;
    assert!(node_down < Duration::from_secs(1), "{node_down:?}");
    eprintln!(
        "{test}: link up after {:.0} ms; after SIGTERM to a, b logged node down after {:.2} ms, \
         a exited after {:.1} ms",
        link_up.as_secs_f64() * 1e3,
        node_down.as_secs_f64() * 1e3,
        exit_a.as_secs_f64() * 1e3
    );

    // utipc against the stopped daemon says how to start one.
    let out = utipc(&na, &dir_a, &["link", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no utipcd is running (no socket at "), "{err}");

    // b's node list now shows a down (or gone); then SIGINT stops b cleanly too.
    let nodes = utipc_json(&nb, &dir_b, &["node", "list"]);
    assert!(
        !nodes
            .as_array()
            .expect("array")
            .iter()
            .any(|n| n["id"] == id_a.as_str() && n["state"] == "up"),
        "{nodes}"
    );
    b.signal(libc::SIGINT);
    let status = b.wait_exit(Duration::from_secs(3));
    assert!(status.success(), "utipcd b exited with {status}");
    assert!(!config::control_socket(&dir_b).exists());
}

#[test]
fn two_daemons_over_udp() {
    two_daemons("two_daemons_over_udp", "udp");
}

#[test]
fn two_daemons_over_ethernet() {
    two_daemons("two_daemons_over_ethernet", "eth");
}
