//! Interoperability with the Linux kernel's TIPC: real kernel nodes (Debian's 6.1 `tipc.ko`)
//! booted under qemu by `scripts/kernel-peer.sh` (see `tests/kernel-peer/README.md`), on one
//! bridge with utipc's processes, each utipc node in its own network namespace with a veth
//! port on that bridge.
//!
//! Four tests, run one at a time (each boots guests on a 2-core machine):
//!
//! * `interop_eth` (Ethernet bearer, AF_PACKET) and `interop_udp_multicast` (UDP bearer,
//!   discovery by multicast), the whole scenario each:
//!   * a. discovery and links: the kernel's `tipc link list` / `node list` / `nametable show`
//!     show utipc's nodes and bindings; utipcd's `utipc link/node/nametable` show the kernel's;
//!   * b. the link utipcd–kernel stays up for 30 s: same link session, no link or node down
//!     on either side;
//!   * c. utipc → kernel: `utipc ping` of 16, 1,400 and 66,000 bytes and 300 back to back to
//!     the guest's echo role, each echo checked, and `utipc send` to the range {18888,0..1000},
//!     received by both of the guest's RDM sockets as multicast;
//!   * d. kernel → utipc: the guest's `client` role against `utipc echo` (datagrams, a
//!     stream and a seqpacket connection), every test passing;
//!   * e. killing either side: SIGTERM and SIGKILL to utipc nodes (the kernel's topology
//!     server reports the node down) and SIGKILL to qemu (utipcd logs the node down), timed.
//! * `interop_udp_replicast`: the UDP bearer with configured peers on both sides (`remote=` and
//!   the kernel's `remoteip`): link up, pings, multicast, node down on qemu's death.
//! * `interop_conn_topology` (Ethernet): applications attached to utipcd (`utipc echo`,
//!   `utipc subscribe`, and this test process itself) against one guest in role `conn`:
//!   connections both ways, a kill -9 during a connection, and service tracking both ways, on
//!   both topology servers (see [`conn_topology_scenario`]).
//!
//! In the first two and the last, tcpdump (if installed) records a guest's tap, and the capture
//! must pass `utipc decode --check` (in the first two it must also hold the peer-stopping RESET
//! that SIGTERM made utipc send).
//!
//! Two clusters share the bridge: network 4711 (the echo guest `kpecho`, utipcd `utd`, the
//! ping and send nodes, and two victims for the kill tests) and network 4712 (the client guest
//! `kpclient` and `utipc echo` as `utecho`). The client needs its own cluster: with the guest's
//! echo role in the same one, {18888,17} would have two publications and the kernel's anycast
//! would alternate between them.
//!
//! They need root (netns, veth, tap, qemu) and the harness (qemu, a kernel with `tipc.ko`;
//! `kernel-peer.sh build` installs what is missing). Otherwise they print why and pass, unless
//! `UTIPC_REQUIRE_KERNEL_PEER=1`, where they fail. `UTIPC_INTEROP_KEEP=1` keeps the logs
//! (guest consoles, utipcd's log, each command's output, the capture) of a passing run; a failing run always
//! keeps them and says where. Run with `--nocapture` to see the measurements.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value as Json;
use utipc_proto::addr::NodeId;
use utipc_shm_api::{Client, ClientOptions, IdleMode, ServiceAddr, SocketAddr, SocketKind};

const UTIPC: &str = env!("CARGO_BIN_EXE_utipc");
const UTIPCD: &str = env!("CARGO_BIN_EXE_utipcd");

/// The service type of every ktpeer role.
const SVC: u32 = 18888;
/// Network ids of the two clusters on the bridge.
const NET_ECHO: u32 = 4711;
const NET_CLIENT: u32 = 4712;
/// How long the link utipcd–kernel must stay up without a reset (test b).
const STABLE: Duration = Duration::from_secs(30);
/// Upper bounds of the failure-detection times (test e). The kernel and utipc both use a
/// 1.5 s link tolerance; a silent peer is declared down after 1.5 to 2.3 s. TCG guests are
/// jittery, so the bounds leave room.
const MAX_DETECT_STOPPING: Duration = Duration::from_millis(1200);
const MAX_DETECT_SILENT: Duration = Duration::from_secs(4);

/// Options of the echo guest: status dumps every 5 s, none after link events.
const ECHO_ARGS: &str = "status=5 linkstatus=0";

/// One scenario at a time: each boots qemu guests.
static SERIAL: Mutex<()> = Mutex::new(());

// =============================================================================================
// Gate: root and the harness, or skip (or fail when required)

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("control/ has a parent")
        .to_path_buf()
}

fn kernel_peer_sh() -> PathBuf {
    repo_root().join("scripts/kernel-peer.sh")
}

fn required() -> bool {
    std::env::var("UTIPC_REQUIRE_KERNEL_PEER").is_ok_and(|v| v == "1")
}

/// Why the kernel peers cannot run here, if they cannot (checked once per test binary).
fn unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some(
                "not root: the kernel peers need network namespaces, veths, taps and qemu".into(),
            );
        }
        if !Path::new("/dev/net/tun").exists() {
            return Some("/dev/net/tun is missing: qemu cannot create its tap".into());
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Some("iproute2's `ip` is not installed".into());
        }
        // Builds the initramfs (installing qemu & co. if missing) once, so the first boot's
        // timing is clean. Bounded: apt-get may be slow, but not for ever.
        let mut cmd = Command::new(kernel_peer_sh());
        cmd.arg("build");
        match run_bounded(cmd, None, Duration::from_secs(900)) {
            Ok(r) if r.code == Some(0) => None,
            Ok(r) => Some(format!(
                "`kernel-peer.sh build` failed (exit {:?}): {}",
                r.code,
                r.stderr.trim()
            )),
            Err(e) => Some(format!("`kernel-peer.sh build`: {e}")),
        }
    })
    .clone()
}

/// Takes the serial lock and checks the environment: `None` means skip (after printing why).
fn gate(test: &str) -> Option<MutexGuard<'static, ()>> {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    match unavailable() {
        None => Some(guard),
        Some(why) if required() => {
            panic!("{test}: UTIPC_REQUIRE_KERNEL_PEER=1 but the kernel peers cannot run: {why}")
        }
        Some(why) => {
            println!("skipping {test}: {why} (set UTIPC_REQUIRE_KERNEL_PEER=1 to fail instead)");
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

// =============================================================================================
// Running commands with bounds

struct RunResult {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs a command to completion, killing it after `timeout`. Standard output and error are
/// read by threads so that a chatty command cannot block on a full pipe.
fn run_bounded(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<RunResult, String> {
    let t0 = Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        // A command that exits without reading its input only costs a broken pipe here.
        let _ = w.write_all(data);
    }
    let reader = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if t0.elapsed() < timeout => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(st) => Ok(RunResult {
            code: st.code(),
            stdout,
            stderr,
            elapsed: t0.elapsed(),
        }),
        None => Err(format!(
            "{cmd:?} did not finish within {} s; stdout: {stdout} stderr: {stderr}",
            timeout.as_secs()
        )),
    }
}

/// The words of a command line. Every name and path put into one (netns, interface, log
/// directory, binaries) is free of whitespace; [`Scenario::new`] checks the directories.
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Runs a short system command line (ip, kernel-peer.sh), panics with its output if it fails.
fn sh(line: &str) -> String {
    sh_args(&words(line))
}

/// [`sh`] with the arguments given one by one.
fn sh_args(args: &[String]) -> String {
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    match run_bounded(cmd, None, Duration::from_secs(60)) {
        Ok(r) if r.code == Some(0) => r.stdout,
        Ok(r) => panic!(
            "{args:?} failed (exit {:?}): {}{}",
            r.code, r.stdout, r.stderr
        ),
        Err(e) => panic!("{e}"),
    }
}

/// Like [`sh`] but ignoring failure (cleanup).
fn sh_quiet(line: &str) {
    let args = words(line);
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    let _ = run_bounded(cmd, None, Duration::from_secs(60));
}

// =============================================================================================
// Logs read as they grow, each line stamped with the host time it was first seen

struct Tail {
    label: String,
    path: PathBuf,
    pos: u64,
    partial: Vec<u8>,
    lines: Vec<(Instant, String)>,
}

impl Tail {
    fn new(label: &str, path: &Path) -> Self {
        Self {
            label: label.to_owned(),
            path: path.to_owned(),
            pos: 0,
            partial: Vec::new(),
            lines: Vec::new(),
        }
    }

    fn refresh(&mut self) {
        let Ok(mut f) = File::open(&self.path) else {
            return;
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.pos)).is_err() || f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.pos += buf.len() as u64;
        let now = Instant::now();
        self.partial.extend_from_slice(&buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&raw);
            self.lines
                .push((now, line.trim_end_matches(['\n', '\r']).to_owned()));
        }
    }

    /// The last `n` lines, for failure messages.
    fn last(&self, n: usize) -> String {
        let from = self.lines.len().saturating_sub(n);
        let mut s = format!(
            "--- last lines of {} ({}):\n",
            self.label,
            self.path.display()
        );
        for (_, l) in &self.lines[from..] {
            let _ = writeln!(s, "    {l}");
        }
        s
    }
}

/// A guest console line without the `KTPEER ` prefix and the trailing ` up=SECONDS` field;
/// `None` for kernel and other lines.
fn marker(line: &str) -> Option<&str> {
    let body = line.strip_prefix("KTPEER ")?;
    Some(match body.rfind(" up=") {
        Some(i) => &body[..i],
        None => body,
    })
}

// =============================================================================================
// Guests, processes and the network, each cleaned up on drop (also when a check panics)

/// Field 22 (start time) and field 3 (state) of /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(String, char)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(19)?.to_string(), f.first()?.chars().next()?))
}

/// A qemu guest started by `kernel-peer.sh boot`. It is not our child (the script starts it in
/// its own session), so it is identified by PID and start time, and killed only if both match.
struct Guest {
    name: String,
    tap: String,
    pid: i32,
    start: String,
    booted: Instant,
}

impl Guest {
    fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((st, state)) if st == self.start && state != 'Z')
    }

    /// Sends SIGKILL (if it is still our qemu); returns the instant it was sent.
    fn kill(&self) -> Instant {
        let t = Instant::now();
        if self.alive() {
            // SAFETY: kill(2) with a PID we checked is our qemu; no memory is involved.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        t
    }

    fn kill_and_wait(&self) {
        self.kill();
        let t0 = Instant::now();
        while self.alive() && t0.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill_and_wait();
    }
}

/// A utipc process (utipcd or an embedded command) we started, in a netns.
struct Proc {
    label: String,
    child: Child,
}

impl Proc {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Sends `sig` to the process if it still runs; returns the instant it was sent.
    fn signal(&mut self, sig: libc::c_int) -> Instant {
        // `ip netns exec` execs the command in place, so our child is utipc itself.
        let comm = fs::read_to_string(format!("/proc/{}/comm", self.pid())).unwrap_or_default();
        assert!(
            comm.trim().starts_with("utipc"),
            "{}: pid {} is {comm:?}, not utipc",
            self.label,
            self.pid()
        );
        let t = Instant::now();
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(self.pid(), sig) };
        }
        t
    }

    /// SIGTERM, then SIGKILL if it is still there after 5 s (tcpdump: flushes and exits).
    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            let t0 = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(5)
            {
                thread::sleep(Duration::from_millis(20));
            }
        }
        self.stop();
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The bridge netns (made by `kernel-peer.sh net-up`) and the netns of each utipc node.
struct Net {
    bns: String,
    bridge: String,
    ports: Vec<String>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.ports.drain(..) {
            sh_quiet(&format!("ip netns del {ns}"));
        }
        sh_quiet(&format!(
            "{} net-down --netns {}",
            kernel_peer_sh().display(),
            self.bns
        ));
    }
}

/// A utipc node's place on the bridge: its own netns with one veth port.
#[derive(Clone)]
struct Port {
    ns: String,
    veth: String,
    ip: Option<String>,
}

// =============================================================================================
// The scenario: everything one test started, and its logs

#[derive(Clone, Copy, PartialEq, Eq)]
enum Media {
    Eth,
    UdpMulticast,
    UdpReplicast,
}

impl Media {
    fn tag(self) -> char {
        match self {
            Self::Eth => 'e',
            Self::UdpMulticast => 'u',
            Self::UdpReplicast => 'r',
        }
    }

    fn is_udp(self) -> bool {
        self != Self::Eth
    }

    /// The kernel's bearer name, as its link names show it.
    fn kernel_bearer(self) -> &'static str {
        if self.is_udp() { "udp1" } else { "eth0" }
    }

    /// The /24 of the UDP tests (198.18.0.0/15 only).
    fn subnet(self) -> &'static str {
        match self {
            Self::UdpReplicast => "198.18.2",
            _ => "198.18.1",
        }
    }
}

// Field order is drop order: processes and guests go before the network they use.
struct Scenario {
    procs: Vec<Proc>,
    guests: Vec<Guest>,
    net: Net,
    tails: Vec<Tail>,
    media: Media,
    /// Tells this scenario's names (netns, interfaces, log directory) from the others'.
    tag: char,
    dir: PathBuf,
    test: String,
    t0: Instant,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // processes and guests first (fields drop only after this)
        for p in &mut self.procs {
            p.stop();
        }
        for g in &self.guests {
            g.kill_and_wait();
        }
        let keep = std::env::var("UTIPC_INTEROP_KEEP").is_ok_and(|v| v == "1");
        if thread::panicking() || keep {
            eprintln!("{}: logs kept in {}", self.test, self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Scenario {
    fn new(test: &str, media: Media) -> Self {
        Self::with_tag(test, media, media.tag())
    }

    /// A scenario on `media` whose names carry `tag` (one letter per scenario).
    fn with_tag(test: &str, media: Media, tag: char) -> Self {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("utipc-interop-{pid}-{tag}"));
        for d in [&dir, &repo_root()] {
            assert!(
                !d.to_string_lossy().contains(char::is_whitespace),
                "{}: this test builds command lines from paths; use one without spaces",
                d.display()
            );
        }
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the log directory");
        let bns = format!("ut{pid}{tag}");
        let bridge = format!("b{pid}{tag}");
        sh(&format!(
            "{} net-up --netns {bns} --bridge {bridge}",
            kernel_peer_sh().display()
        ));
        Self {
            procs: Vec::new(),
            guests: Vec::new(),
            net: Net {
                bns,
                bridge,
                ports: Vec::new(),
            },
            tails: Vec::new(),
            media,
            tag,
            dir,
            test: test.to_owned(),
            t0: Instant::now(),
        }
    }

    fn secs(&self, t: Instant) -> f64 {
        t.duration_since(self.t0).as_secs_f64()
    }

    /// A netns for one utipc node, with a veth port on the bridge (MAC 02:..., and on UDP the
    /// address SUBNET.host/24 and a multicast route).
    fn port(&mut self, role: char, host: u8) -> Port {
        let pid = std::process::id();
        let tag = self.tag;
        let ns = format!("ut{pid}{tag}-{role}");
        let veth = format!("v{pid}{tag}{role}");
        let peer = format!("{veth}-b");
        let mac = format!(
            "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            tag as u8,
            (pid >> 16) & 0xff,
            (pid >> 8) & 0xff,
            pid & 0xff,
            role as u8
        );
        sh(&format!("ip netns add {ns}"));
        self.net.ports.push(ns.clone());
        sh(&format!("ip -n {ns} link set lo up"));
        // no IPv6 chatter (router and neighbour solicitations) on the test links; cosmetic
        sh_quiet(&format!(
            "ip netns exec {ns} sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
             net.ipv6.conf.default.disable_ipv6=1"
        ));
        let bns = &self.net.bns;
        let br = &self.net.bridge;
        sh(&format!(
            "ip link add {veth} netns {ns} address {mac} type veth peer name {peer} netns {bns}"
        ));
        sh(&format!("ip -n {bns} link set {peer} master {br} up"));
        sh(&format!("ip -n {ns} link set {veth} up"));
        let ip = if self.media.is_udp() {
            let ip = format!("{}.{host}", self.media.subnet());
            sh(&format!("ip -n {ns} addr add {ip}/24 dev {veth}"));
            sh(&format!("ip -n {ns} route add 224.0.0.0/4 dev {veth}"));
            Some(ip)
        } else {
            None
        };
        Port { ns, veth, ip }
    }

    /// The `--bearer` value for a utipc node on `port`, with replicast peers if any.
    fn bearer(&self, port: &Port, remotes: &[&str]) -> String {
        let media = if self.media.is_udp() { "udp" } else { "eth" };
        let mut b = format!("{media}:{}", port.veth);
        for r in remotes {
            let _ = write!(b, ",remote={r}");
        }
        b
    }

    fn log_path(&self, label: &str) -> PathBuf {
        self.dir.join(format!("{label}.log"))
    }

    fn tail(&self, label: &str) -> &Tail {
        self.tails
            .iter()
            .find(|t| t.label == label)
            .unwrap_or_else(|| panic!("no log {label}"))
    }

    fn lines(&self, label: &str) -> impl Iterator<Item = &(Instant, String)> {
        self.tail(label).lines.iter()
    }

    /// The console markers of a guest, with the instant each was seen.
    fn markers(&self, label: &str) -> impl Iterator<Item = (Instant, &str)> {
        self.lines(label)
            .filter_map(|(t, l)| marker(l).map(|m| (*t, m)))
    }

    fn refresh(&mut self) {
        for t in &mut self.tails {
            t.refresh();
        }
    }

    /// Polls every log (every 20 ms) until `cond` gives a value; panics after `timeout` with
    /// `what` and the end of every log.
    fn wait<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        cond: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        self.wait_every(what, timeout, Duration::from_millis(20), cond)
    }

    /// [`Scenario::wait`] polling every 2 ms, for what is timed: a line's instant is when a
    /// poll first saw it.
    fn wait_fine<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        cond: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        self.wait_every(what, timeout, Duration::from_millis(2), cond)
    }

    fn wait_every<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        every: Duration,
        mut cond: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let t0 = Instant::now();
        loop {
            self.refresh();
            if let Some(v) = cond(self) {
                return v;
            }
            if t0.elapsed() > timeout {
                self.fail(&format!(
                    "timed out after {} s waiting for {what}",
                    timeout.as_secs()
                ));
            }
            thread::sleep(every);
        }
    }

    /// Panics with `msg` and the end of every log.
    fn fail(&mut self, msg: &str) -> ! {
        self.refresh();
        let mut s = format!("{}: {msg}\n", self.test);
        for t in &self.tails {
            s.push_str(&t.last(40));
        }
        panic!("{s}");
    }

    fn check(&mut self, ok: bool, msg: &str) {
        if !ok {
            self.fail(msg);
        }
    }

    /// Starts a long-running utipc process (command `line`) in `port`'s netns; its output
    /// goes to LABEL.log.
    fn spawn(&mut self, label: &str, port: &Port, line: &str) -> usize {
        let ns = port.ns.clone();
        self.spawn_in(label, &ns, line)
    }

    /// Starts a long-running process (command `line`) in netns `ns`; its output goes to
    /// LABEL.log.
    fn spawn_in(&mut self, label: &str, ns: &str, line: &str) -> usize {
        let path = self.log_path(label);
        let out = File::create(&path).expect("create a log");
        let err = out.try_clone().expect("dup a log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(words(line))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        self.procs.push(Proc {
            label: label.to_owned(),
            child,
        });
        self.tails.push(Tail::new(label, &path));
        self.procs.len() - 1
    }

    /// Captures what goes through a guest's tap (in the bridge netns) into LABEL.pcap with
    /// tcpdump, if it is installed. Returns the process and the file.
    fn capture(&mut self, label: &str, guest: usize) -> Option<(usize, PathBuf)> {
        if Command::new("tcpdump").arg("--version").output().is_err() {
            println!("[interop] tcpdump is not installed: no capture");
            return None;
        }
        let file = self.dir.join(format!("{label}.pcap"));
        let tap = self.guests[guest].tap.clone();
        let bns = self.net.bns.clone();
        let line = format!("tcpdump -i {tap} -n -s 0 -U -w {}", file.display());
        let idx = self.spawn_in(label, &bns, &line);
        self.wait("tcpdump to listen", Duration::from_secs(15), |s| {
            s.lines(label)
                .any(|(_, l)| l.contains("listening on"))
                .then_some(())
        });
        Some((idx, file))
    }

    /// Stops a capture and decodes it with `utipc decode --check`: every TIPC frame must parse
    /// and re-emit byte for byte. Returns the decoded lines.
    fn decode_capture(&mut self, cap: Option<(usize, PathBuf)>, rep: &mut Report) -> Vec<String> {
        let Some((idx, file)) = cap else {
            return Vec::new();
        };
        self.procs[idx].terminate();
        let mut cmd = Command::new(UTIPC);
        cmd.arg("decode").arg("--check").arg(&file);
        let r = match run_bounded(cmd, None, Duration::from_secs(300)) {
            Ok(r) => r,
            Err(e) => self.fail(&e),
        };
        let _ = fs::write(file.with_extension("decoded.txt"), &r.stdout);
        let last = r.stdout.lines().last().unwrap_or_default().to_owned();
        rep.line(format!(
            "{}: capture {}: utipc decode --check: {last}",
            self.test,
            file.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        ));
        self.check(
            r.code == Some(0) && last.ends_with(" failed=0"),
            &format!(
                "utipc decode --check {} failed: {last} {}",
                file.display(),
                r.stderr
            ),
        );
        r.stdout.lines().map(str::to_owned).collect()
    }

    /// Runs a short utipc command in `port`'s netns to completion (bounded); its output is
    /// also kept in LABEL.log.
    fn run(&mut self, label: &str, port: &Port, line: &str, stdin: Option<&[u8]>) -> RunResult {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &port.ns]).args(words(line));
        let r = match run_bounded(cmd, stdin, Duration::from_secs(120)) {
            Ok(r) => r,
            Err(e) => self.fail(&format!("{label}: {e}")),
        };
        let _ = fs::write(self.log_path(label), format!("{}{}", r.stdout, r.stderr));
        r
    }

    /// Boots a guest; its console goes to LABEL.log.
    #[allow(
        clippy::too_many_arguments,
        reason = "the options of kernel-peer.sh boot"
    )]
    fn boot(
        &mut self,
        label: &str,
        id: &str,
        role: &str,
        netid: u32,
        ip_host: u8,
        peers: &[&str],
        args: &str,
        timeout_s: u32,
    ) -> usize {
        let pid = std::process::id();
        let tag = self.tag;
        let n = self.guests.len();
        let name = format!("ix{pid}{tag}-{label}");
        let tap = format!("t{pid}{tag}{n}");
        let log = self.log_path(label);
        let (kp, br, bns) = (kernel_peer_sh(), &self.net.bridge, &self.net.bns);
        let mut a = words(&format!(
            "{} boot --name {name} --id {id} --tap {tap} --bridge {br} --netns {bns} --role {role} \
             --netid {netid} --timeout {timeout_s} --log {}",
            kp.display(),
            log.display()
        ));
        if self.media.is_udp() {
            let subnet = self.media.subnet();
            a.extend(words(&format!("--bearer udp --ip {subnet}.{ip_host}/24")));
            for p in peers {
                a.extend(words(&format!("--peer-ip {p}")));
            }
        }
        if !args.is_empty() {
            // one argument with spaces: "K=V K=V"
            a.extend(["--args".to_owned(), args.to_owned()]);
        }
        let booted = Instant::now();
        let out = sh_args(&a);
        let qpid: i32 = out
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("kernel-peer.sh boot printed {out:?}, not a PID"));
        let (start, _) = proc_stat(qpid).unwrap_or_else(|| panic!("qemu {qpid} is gone at once"));
        self.guests.push(Guest {
            name,
            tap,
            pid: qpid,
            start,
            booted,
        });
        self.tails.push(Tail::new(label, &log));
        n
    }

    /// A management query to utipcd (text, or JSON with `json`), bounded.
    fn mgmt(&mut self, run_dir: &Path, what: &[&str], json: bool) -> String {
        let mut cmd = Command::new(UTIPC);
        cmd.args(what).arg("--run-dir").arg(run_dir);
        if json {
            cmd.arg("--json");
        }
        match run_bounded(cmd, None, Duration::from_secs(10)) {
            Ok(r) if r.code == Some(0) => r.stdout,
            Ok(r) => self.fail(&format!("utipc {what:?} failed: {}{}", r.stdout, r.stderr)),
            Err(e) => self.fail(&e),
        }
    }

    fn mgmt_json(&mut self, run_dir: &Path, what: &[&str]) -> Vec<Json> {
        let out = self.mgmt(run_dir, what, true);
        match serde_json::from_str::<Json>(out.trim()) {
            Ok(Json::Array(v)) => v,
            _ => self.fail(&format!("utipc {what:?} --json printed {out:?}")),
        }
    }
}

/// The node address the kernel (and utipc) derive from an identity.
fn addr_of(id: &str) -> String {
    let nid: NodeId = id.parse().unwrap_or_else(|e| panic!("node id {id}: {e:?}"));
    format!("{:08x}", nid.hash())
}

/// Runs `cond` on every marker of guest `label` and returns the first match with its time.
fn find_marker<'a>(
    s: &'a Scenario,
    label: &str,
    mut cond: impl FnMut(&str) -> bool,
) -> Option<(Instant, &'a str)> {
    s.markers(label).find(|(_, m)| cond(m))
}

/// Whether a `tipc link list` line (as STATUS) says the link between `a` and `b` is up.
fn status_link_up(m: &str, own: &str, peer: &str) -> bool {
    m.strip_prefix("STATUS link ").is_some_and(|l| {
        l.starts_with(&format!("{own}-")) && l.contains(&format!("-{peer}:")) && l.ends_with(": up")
    })
}

/// Whether a `tipc node list` line (as STATUS) lists `id` with address `addr` and `up`.
fn status_node_up(m: &str, id: &str, addr: &str) -> bool {
    m.strip_prefix("STATUS node ").is_some_and(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f == [id, addr, "up"]
    })
}

/// Whether a `tipc nametable show` line (as STATUS) is a cluster binding of {T,L,U} by `node`.
fn status_binding(m: &str, t: u32, l: u32, u: u32, node: &str) -> bool {
    m.strip_prefix("STATUS nametable ").is_some_and(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() == 6
            && f[0] == t.to_string()
            && f[1] == l.to_string()
            && f[2] == u.to_string()
            && f[3] == "cluster"
            && f[5] == node
    })
}

/// The `key=value` fields of ping's last line `rtt_us min=… p50=… p99=… max=… sent=N received=N`.
struct PingStats {
    min: u64,
    p50: u64,
    p99: u64,
    max: u64,
    sent: u64,
    received: u64,
}

fn ping_stats(out: &str) -> Option<PingStats> {
    let last = out.lines().rev().find(|l| l.starts_with("rtt_us "))?;
    let get = |k: &str| -> Option<u64> {
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
    };
    Some(PingStats {
        min: get("min")?,
        p50: get("p50")?,
        p99: get("p99")?,
        max: get("max")?,
        sent: get("sent")?,
        received: get("received")?,
    })
}

// =============================================================================================
// The tests

#[test]
fn interop_eth() {
    let Some(_serial) = gate("interop_eth") else {
        return;
    };
    full_scenario("interop_eth", Media::Eth);
}

#[test]
fn interop_udp_multicast() {
    let Some(_serial) = gate("interop_udp_multicast") else {
        return;
    };
    full_scenario("interop_udp_multicast", Media::UdpMulticast);
}

#[test]
fn interop_udp_replicast() {
    let Some(_serial) = gate("interop_udp_replicast") else {
        return;
    };
    replicast_scenario("interop_udp_replicast");
}

/// Prints what a scenario measured or saw, as it goes (`--nocapture` shows it).
struct Report;

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("[interop] {}", s.as_ref());
    }
}

/// Tests a to e on one bearer (Ethernet, or UDP with multicast discovery).
#[allow(
    clippy::too_many_lines,
    reason = "one scenario, step by step, reads best in one piece"
)]
fn full_scenario(test: &str, media: Media) {
    let mut rep = Report;
    let mut s = Scenario::new(test, media);
    let kb = media.kernel_bearer();
    let (e_id, c_id) = ("kpecho", "kpclient");
    let (d_id, echo_id, term_id, kill_id) = ("utd", "utecho", "utterm", "utkill");
    let ping_ids = ["utp16", "utp1400", "utp66000", "utpburst"];
    let send_id = "utsend";
    // Identities hash to addresses; on one cluster they must differ.
    let mut all: Vec<&str> = vec![e_id, c_id, d_id, echo_id, term_id, kill_id, send_id];
    all.extend(ping_ids);
    let addrs: HashSet<String> = all.iter().map(|i| addr_of(i)).collect();
    assert_eq!(
        addrs.len(),
        all.len(),
        "node ids with equal addresses: {all:?}"
    );
    let (e_addr, c_addr, d_addr) = (addr_of(e_id), addr_of(c_id), addr_of(d_id));

    // --- utipc nodes: utipcd and two victims on network 4711, utipc echo on 4712
    let pa = s.port('a', 2);
    let pp = s.port('p', 3);
    let pc = s.port('c', 4);
    let pt = s.port('t', 5);
    let pk = s.port('k', 6);
    let run_dir = s.dir.join("run");
    let rd = run_dir.display();
    let b = s.bearer(&pa, &[]);
    let line = format!("{UTIPCD} --id {d_id} --net-id {NET_ECHO} --bearer {b} --run-dir {rd} -v");
    s.spawn("utipcd", &pa, &line);
    // {18888,18} and {18888,19} accept connections: the client's STREAM and SEQPACKET tests.
    // `--stream` serves both, as the kernel does not tell the two kinds apart on the wire and
    // utipc echo sends each received message back whole.
    let b = s.bearer(&pc, &[]);
    let line = format!(
        "{UTIPC} echo --embedded --bearer {b} --id {echo_id} --net-id {NET_CLIENT} \
         --bind {SVC}:17 --bind {SVC}:100:199 --stream {SVC}:18 --stream {SVC}:19"
    );
    s.spawn("utecho", &pc, &line);
    let b = s.bearer(&pt, &[]);
    let line = format!(
        "{UTIPC} echo --embedded --bearer {b} --id {term_id} --net-id {NET_ECHO} --bind {SVC}:2000"
    );
    let term = s.spawn("utterm", &pt, &line);
    let b = s.bearer(&pk, &[]);
    let line = format!(
        "{UTIPC} echo --embedded --bearer {b} --id {kill_id} --net-id {NET_ECHO} --bind {SVC}:2001"
    );
    let kill = s.spawn("utkill", &pk, &line);

    // --- the kernel nodes: the echo role (status every 5 s) and the client role
    // The echo role is one loop: while it runs `tipc` for a status dump it echoes nothing.
    // `linkstatus=0` spares the dump after every link event (each ping node's link up would
    // delay its first echoes by ~60 ms); the full dump every 5 s stays (tests a and b).
    let eg = s.boot("echo", e_id, "echo", NET_ECHO, 10, &[], ECHO_ARGS, 150);
    let cg = s.boot(
        "client",
        c_id,
        "client",
        NET_CLIENT,
        11,
        &[],
        "mcast_expect=1 final=1 wait=60",
        120,
    );
    let (e_boot, c_boot) = (s.guests[eg].booted, s.guests[cg].booted);
    let cap = s.capture("echo-tap", eg);
    rep.line(format!(
        "{test}: guests {} (qemu {}) and {} (qemu {}), logs in {}",
        s.guests[eg].name,
        s.guests[eg].pid,
        s.guests[cg].name,
        s.guests[cg].pid,
        s.dir.display()
    ));

    // --- a. discovery and link up, both sides
    let (t_addr, kaddr) = s.wait("the echo guest's ADDR", Duration::from_secs(90), |s| {
        find_marker(s, "echo", |m| m.starts_with("ADDR "))
            .map(|(t, m)| (t, m.trim_start_matches("ADDR ").to_owned()))
    });
    s.check(
        kaddr == e_addr,
        &format!("the kernel's address of {e_id} is {kaddr}, utipc computes {e_addr}"),
    );
    let t_ready = s.wait("the echo guest's READY", Duration::from_secs(30), |s| {
        find_marker(s, "echo", |m| m.starts_with("READY role=echo")).map(|(t, _)| t)
    });
    let d_link = format!("{d_id}:{}-{e_id}:{kb}", pa.veth);
    let t_link = s.wait(
        "utipcd's link to the kernel",
        Duration::from_secs(60),
        |s| {
            s.lines("utipcd")
                .find(|(_, l)| l.ends_with(&format!("link up {d_link}")))
                .map(|(t, _)| *t)
        },
    );
    rep.line(format!(
        "{test}: echo guest ADDR {kaddr} {:.1} s, READY {:.1} s, link to utipcd up {:.1} s after qemu start",
        t_addr.duration_since(e_boot).as_secs_f64(),
        t_ready.duration_since(e_boot).as_secs_f64(),
        t_link.duration_since(e_boot).as_secs_f64()
    ));
    // the kernel's view: links, nodes and bindings of utipcd and the two victims
    let want_links = [(d_id, &pa), (term_id, &pt), (kill_id, &pk)];
    let kernel_links: Vec<String> = s.wait(
        "the kernel's `tipc link list` showing utipc's links up",
        Duration::from_secs(40),
        |s| {
            let own = format!("{e_id}:{kb}");
            let found: Vec<String> = want_links
                .iter()
                .filter_map(|(id, p)| {
                    find_marker(s, "echo", |m| {
                        status_link_up(m, &own, id) && m.contains(&format!(":{}: up", p.veth))
                    })
                    .map(|(_, m)| m.to_owned())
                })
                .collect();
            (found.len() == want_links.len()).then_some(found)
        },
    );
    for l in &kernel_links {
        rep.line(format!("{test}: kernel (echo guest): {l}"));
    }
    let want_nodes = [
        (d_id, d_addr.clone()),
        (term_id, addr_of(term_id)),
        (kill_id, addr_of(kill_id)),
    ];
    let nodes: Vec<String> = s.wait(
        "the kernel's `tipc node list` showing utipc's nodes up",
        Duration::from_secs(40),
        |s| {
            let found: Vec<String> = want_nodes
                .iter()
                .filter_map(|(id, a)| {
                    find_marker(s, "echo", |m| status_node_up(m, id, a)).map(|(_, m)| m.to_owned())
                })
                .collect();
            (found.len() == want_nodes.len()).then_some(found)
        },
    );
    for l in &nodes {
        rep.line(format!("{test}: kernel (echo guest): {l}"));
    }
    let binds: Vec<String> = s.wait(
        "the kernel's `tipc nametable show` listing utipc's bindings",
        Duration::from_secs(40),
        |s| {
            let a = find_marker(s, "echo", |m| status_binding(m, SVC, 2000, 2000, term_id));
            let b = find_marker(s, "echo", |m| status_binding(m, SVC, 2001, 2001, kill_id));
            Some(vec![a?.1.to_owned(), b?.1.to_owned()])
        },
    );
    for l in &binds {
        rep.line(format!("{test}: kernel (echo guest): {l}"));
    }
    // utipc's view, through utipcd
    let e_rows: Vec<(u32, u32)> = vec![(17, 17), (18, 18), (19, 19), (100, 199)];
    let deadline = Instant::now() + Duration::from_secs(20);
    let session = loop {
        let links = s.mgmt_json(&run_dir, &["link", "list"]);
        let nodes = s.mgmt_json(&run_dir, &["node", "list"]);
        let table = s.mgmt_json(&run_dir, &["nametable", "show"]);
        let link = links
            .iter()
            .find(|l| l["name"] == d_link.as_str() && l["state"] == "up");
        let node_ok = nodes
            .iter()
            .any(|n| n["id"] == e_id && n["addr"] == e_addr.as_str() && n["state"] == "up");
        let table_ok = e_rows.iter().all(|(lo, up)| {
            table.iter().any(|b| {
                b["type"] == SVC
                    && b["lower"] == *lo
                    && b["upper"] == *up
                    && b["node"] == e_addr.as_str()
            })
        });
        if let (Some(l), true, true) = (link, node_ok, table_ok) {
            break l["session"].clone();
        }
        if Instant::now() > deadline {
            s.fail(&format!(
                "utipcd does not show the kernel's link, node and bindings: links {links:?} nodes \
                 {nodes:?} table {table:?}"
            ));
        }
        thread::sleep(Duration::from_millis(250));
    };
    for what in [
        &["bearer", "list"][..],
        &["link", "list"],
        &["node", "list"],
        &["nametable", "show"],
    ] {
        let text = s.mgmt(&run_dir, what, false);
        // the whole output, but of the name table only the header and the kernel's bindings
        for l in text.lines().filter(|l| {
            what[0] != "nametable" || l.starts_with("Type") || l.ends_with(e_addr.as_str())
        }) {
            rep.line(format!("{test}: utipc {}: {l}", what.join(" ")));
        }
    }
    rep.line(format!("{test}: utipcd's link {d_link} session {session}"));

    // --- c. utipc -> kernel: pings and multicast to the echo role
    for (id, size, count) in [
        (ping_ids[0], 16, 100),
        (ping_ids[1], 1400, 100),
        (ping_ids[2], 66_000, 30),
        (ping_ids[3], 64, 300),
    ] {
        let b = s.bearer(&pp, &[]);
        let line = format!(
            "{UTIPC} ping --embedded --bearer {b} --id {id} --net-id {NET_ECHO} --to {SVC}:17 \
             --size {size} --count {count} --timeout 20"
        );
        let r = s.run(id, &pp, &line, None);
        let Some(st) = ping_stats(&r.stdout) else {
            s.fail(&format!(
                "ping {size} B: no summary line: {}{}",
                r.stdout, r.stderr
            ));
        };
        let from_kernel = r
            .stdout
            .lines()
            .filter(|l| l.contains(" bytes from ") && l.contains(&format!("@{e_addr}:")))
            .count();
        s.check(
            r.code == Some(0)
                && st.sent == count
                && st.received == count
                && from_kernel == count as usize,
            &format!(
                "ping {size} B x{count}: exit {:?}, sent {} received {}, {from_kernel} echoes from \
                 {e_addr}:\n{}{}",
                r.code, st.sent, st.received, r.stdout, r.stderr
            ),
        );
        rep.line(format!(
            "{test}: utipc ping -> kernel size={size} count={count}: rtt_us min={} p50={} p99={} max={} \
             (process {:.1} s)",
            st.min,
            st.p50,
            st.p99,
            st.max,
            r.elapsed.as_secs_f64()
        ));
    }
    // multicast to {18888,0..1000}: the guest's RDM socket {18888,17} and its range socket
    // {18888,100..199} each get one copy (77 bytes, a size nothing else sends)
    let payload = [b'm'; 77];
    let b = s.bearer(&pp, &[]);
    let line = format!(
        "{UTIPC} send --embedded --bearer {b} --id {send_id} --net-id {NET_ECHO} \
         --to {SVC}:0:1000 --timeout 20"
    );
    let r = s.run("utsend", &pp, &line, Some(&payload));
    s.check(
        r.code == Some(0),
        &format!("utipc send: exit {:?}: {}{}", r.code, r.stdout, r.stderr),
    );
    let send_addr = addr_of(send_id);
    let rx: Vec<String> = s.wait(
        "the guest's RX of the multicast",
        Duration::from_secs(15),
        |s| {
            let mut v = Vec::new();
            for sock in ["rdm", "range"] {
                let want = format!("RX {sock} size=77 from={send_addr}:");
                let (_, m) = find_marker(s, "echo", |m| {
                    m.starts_with(&want) && m.ends_with(&format!("dst={SVC},0,1000 mcast"))
                })?;
                v.push(m.to_owned());
            }
            Some(v)
        },
    );
    for l in &rx {
        rep.line(format!("{test}: kernel (echo guest): {l}"));
    }

    // --- d. kernel -> utipc: the client role against utipc echo
    let t_sum = s.wait(
        "the client's SUMMARY and final status",
        Duration::from_secs(120),
        |s| {
            let (t, _) = find_marker(s, "client", |m| m.starts_with("SUMMARY "))?;
            s.markers("client")
                .skip_while(|(_, m)| !m.starts_with("SUMMARY "))
                .any(|(_, m)| m == "STATUS end")
                .then_some(t)
        },
    );
    let results: Vec<(String, bool, String)> = s
        .markers("client")
        .filter_map(|(_, m)| {
            let r = m.strip_prefix("RESULT ")?;
            let mut it = r.splitn(3, ' ');
            let (name, ok, detail) = (it.next()?, it.next()?, it.next().unwrap_or(""));
            Some((name.to_owned(), ok == "ok", detail.to_owned()))
        })
        .collect();
    for (n, ok, d) in &results {
        rep.line(format!(
            "{test}: kernel client: RESULT {n} {} {d}",
            if *ok { "ok" } else { "fail" }
        ));
    }
    let must_pass = [
        "service",
        "rdm_16",
        "rdm_1400",
        "rdm_66000",
        "rdm_range",
        "rdm_burst",
        "mcast",
        "stream",
        "seqpacket",
    ];
    let mut problems = Vec::new();
    for want in must_pass {
        match results.iter().find(|(n, _, _)| n == want) {
            Some((_, true, _)) => {}
            Some((_, false, d)) => problems.push(format!("{want} failed: {d}")),
            None => problems.push(format!("{want} missing")),
        }
    }
    for (n, ok, d) in &results {
        if !ok && !must_pass.contains(&n.as_str()) {
            problems.push(format!("unexpected failure {n}: {d}"));
        }
    }
    if results.len() != must_pass.len() {
        problems.push(format!(
            "{} RESULT lines, expected {}",
            results.len(),
            must_pass.len()
        ));
    }
    if !problems.is_empty() {
        s.fail(&format!("client role: {}", problems.join("; ")));
    }
    let c_ok = s
        .tail("client")
        .lines
        .iter()
        .any(|(_, l)| marker(l).is_some_and(|m| m == format!("ADDR {c_addr}")));
    s.check(c_ok, &format!("the client guest's address is not {c_addr}"));
    // the client's final `tipc link list` / `node list` / `nametable show`
    let own = format!("{c_id}:{kb}");
    let echo_addr = addr_of(echo_id);
    let fin: Vec<String> = {
        let m: Vec<&str> = s
            .markers("client")
            .skip_while(|(_, m)| !m.starts_with("SUMMARY "))
            .map(|(_, m)| m)
            .collect();
        let mut v = Vec::new();
        if let Some(l) = m.iter().find(|m| status_link_up(m, &own, echo_id)) {
            v.push((*l).to_owned());
        }
        if let Some(l) = m.iter().find(|m| status_node_up(m, echo_id, &echo_addr)) {
            v.push((*l).to_owned());
        }
        for (lo, up) in &e_rows {
            if let Some(l) = m.iter().find(|m| status_binding(m, SVC, *lo, *up, echo_id)) {
                v.push((*l).to_owned());
            }
        }
        v
    };
    s.check(
        fin.len() == 2 + e_rows.len(),
        &format!("the client's final status lacks utipc echo's link, node or bindings: {fin:?}"),
    );
    for l in &fin {
        rep.line(format!("{test}: kernel (client guest): {l}"));
    }
    rep.line(format!(
        "{test}: client SUMMARY {:.1} s after its qemu start",
        t_sum.duration_since(c_boot).as_secs_f64()
    ));

    // --- e (utipc side killed). SIGTERM: utipc leaves with peer-stopping RESETs, the kernel
    // reports the node down at once; SIGKILL: the kernel notices the silence (tolerance).
    for (idx, id, sig, signame, bound) in [
        (term, term_id, libc::SIGTERM, "SIGTERM", MAX_DETECT_STOPPING),
        (kill, kill_id, libc::SIGKILL, "SIGKILL", MAX_DETECT_SILENT),
    ] {
        let a = addr_of(id);
        let sent = s.procs[idx].signal(sig);
        let down = format!("TOPO NODE DOWN node={a}");
        let t = s.wait(
            &format!("the kernel's {down} after {signame}"),
            Duration::from_secs(15),
            |s| {
                s.markers("echo")
                    .find(|(t, m)| *t >= sent && *m == down)
                    .map(|(t, _)| t)
            },
        );
        let dt = t.duration_since(sent);
        rep.line(format!(
            "{test}: {signame} to utipc node {id} ({a}) -> kernel TOPO NODE DOWN after {:.3} s",
            dt.as_secs_f64()
        ));
        s.check(
            dt <= bound,
            &format!(
                "{signame}: the kernel took {:.3} s (bound {:.1} s)",
                dt.as_secs_f64(),
                bound.as_secs_f64()
            ),
        );
        s.procs[idx].stop();
    }

    // --- b. the link utipcd–kernel stays up for 30 s
    let until = t_link + STABLE + Duration::from_secs(1);
    let now = Instant::now();
    if until > now {
        thread::sleep(until - now);
    }
    // the kernel prints its link list every 5 s: wait for one printed after the window
    let last_up = s.wait(
        "a kernel `tipc link list` after the 30 s window",
        Duration::from_secs(20),
        |s| {
            let own = format!("{e_id}:{kb}");
            s.markers("echo")
                .filter(|(t, m)| *t >= until && status_link_up(m, &own, d_id))
                .map(|(t, m)| (t, m.to_owned()))
                .next()
        },
    );
    let links = s.mgmt_json(&run_dir, &["link", "list"]);
    let link = links.iter().find(|l| l["name"] == d_link.as_str()).cloned();
    let mut bad = Vec::new();
    match &link {
        Some(l) if l["state"] == "up" && l["session"] == session => {}
        other => bad.push(format!(
            "utipcd's link now {other:?}, session was {session}"
        )),
    }
    for (_, l) in s.lines("utipcd") {
        if l.contains(&format!("link down {d_link}")) || l.contains(&format!("node down {e_addr}"))
        {
            bad.push(format!("utipcd: {l}"));
        }
    }
    for (_, m) in s.markers("echo") {
        if m == format!("TOPO LINK DOWN peer={d_addr} bearer_id=0")
            || m == format!("TOPO NODE DOWN node={d_addr}")
        {
            bad.push(format!("kernel: {m}"));
        }
    }
    let ups = s
        .markers("echo")
        .filter(|(t, m)| *t >= t_link && status_link_up(m, &format!("{e_id}:{kb}"), d_id))
        .count();
    if !bad.is_empty() {
        s.fail(&format!("the link did not stay up: {}", bad.join("; ")));
    }
    rep.line(format!(
        "{test}: link {d_link} up {:.1} s without reset (same session {session}; the kernel listed it up \
         {ups} times, last: {})",
        last_up.0.duration_since(t_link).as_secs_f64(),
        last_up.1
    ));

    // --- e (kernel side killed): SIGKILL qemu, utipcd notices the silence
    let sent = s.guests[eg].kill();
    let down = format!("node down {e_addr}");
    let t = s.wait(
        "utipcd's node down after qemu was killed",
        Duration::from_secs(15),
        |s| {
            s.lines("utipcd")
                .find(|(t, l)| *t >= sent && l.ends_with(&down))
                .map(|(t, _)| *t)
        },
    );
    let dt = t.duration_since(sent);
    let why = s
        .lines("utipcd")
        .find(|(t, l)| *t >= sent && l.contains(&format!("link down {d_link}")))
        .map(|(_, l)| l.clone())
        .unwrap_or_default();
    rep.line(format!(
        "{test}: SIGKILL to qemu ({e_id}) -> utipcd '{down}' after {:.3} s; {}",
        dt.as_secs_f64(),
        why.split("utipcd: ").nth(1).unwrap_or(&why)
    ));
    s.check(
        dt <= MAX_DETECT_SILENT,
        &format!(
            "utipcd took {:.3} s to see the kernel node down",
            dt.as_secs_f64()
        ),
    );
    // --- the capture of the echo guest's tap: every frame decodes and re-emits; SIGTERM made
    // utipc send a peer-stopping RESET
    let decoded = s.decode_capture(cap, &mut rep);
    if !decoded.is_empty() {
        let term_addr = addr_of(term_id);
        let stopping = decoded.iter().any(|l| {
            l.contains("LINK_PROTOCOL/RESET_MSG")
                && l.contains("peer_stopping=1")
                && l.contains(&format!("orig_node={term_addr}"))
        });
        s.check(
            stopping,
            &format!("no peer-stopping RESET_MSG from {term_id} in the capture"),
        );
        let count = |pat: &[&str]| {
            decoded
                .iter()
                .filter(|l| pat.iter().all(|p| l.contains(p)))
                .count()
        };
        rep.line(format!(
            "{test}: capture: {} RESET_MSG with peer_stopping=1 from {term_id}; STATE_MSG from kernel {} \
             (with seq_gap>0: {}), to kernel {} (with seq_gap>0: {}); {} NAME_DISTRIBUTOR, {} MSG_FRAGMENTER",
            count(&["LINK_PROTOCOL/RESET_MSG", "peer_stopping=1", &format!("orig_node={term_addr}")]),
            count(&["STATE_MSG", &format!("orig_node={e_addr}")]),
            decoded
                .iter()
                .filter(|l| l.contains("STATE_MSG") && l.contains(&format!("orig_node={e_addr}")) && !l.contains("seq_gap=0 "))
                .count(),
            count(&["STATE_MSG", &format!("dest_node={e_addr}")]),
            decoded
                .iter()
                .filter(|l| l.contains("STATE_MSG") && l.contains(&format!("dest_node={e_addr}")) && !l.contains("seq_gap=0 "))
                .count(),
            count(&["NAME_DISTRIBUTOR"]),
            count(&["MSG_FRAGMENTER"]),
        ));
    }
    rep.line(format!("{test}: done in {:.1} s", s.secs(Instant::now())));
}

/// The UDP bearer in replicast mode: both sides configured with each other's address.
#[allow(
    clippy::too_many_lines,
    reason = "one scenario, step by step, reads best in one piece"
)]
fn replicast_scenario(test: &str) {
    let media = Media::UdpReplicast;
    let mut rep = Report;
    let mut s = Scenario::new(test, media);
    let (e_id, d_id, ping_id, send_id) = ("kprepl", "utdr", "utpr", "utsendr");
    let e_addr = addr_of(e_id);
    let pa = s.port('a', 2);
    let pp = s.port('p', 3);
    let e_ip = format!("{}.10", media.subnet());
    let run_dir = s.dir.join("run");
    let b = s.bearer(&pa, &[&e_ip]);
    let line = format!(
        "{UTIPCD} --id {d_id} --bearer {b} --run-dir {} -v",
        run_dir.display()
    );
    s.spawn("utipcd", &pa, &line);
    let peers: Vec<String> = [&pa, &pp]
        .iter()
        .map(|p| p.ip.clone().expect("udp port has an ip"))
        .collect();
    let peers_ref: Vec<&str> = peers.iter().map(String::as_str).collect();
    let eg = s.boot(
        "echo", e_id, "echo", NET_ECHO, 10, &peers_ref, ECHO_ARGS, 100,
    );
    let e_boot = s.guests[eg].booted;
    let bearer_line = s.wait("the guest's bearer", Duration::from_secs(90), |s| {
        find_marker(s, "echo", |m| m.starts_with("BEARER enabled")).map(|(_, m)| m.to_owned())
    });
    rep.line(format!("{test}: kernel: {bearer_line}"));
    let d_link = format!("{d_id}:{}-{e_id}:udp1", pa.veth);
    let t_link = s.wait(
        "utipcd's link to the kernel",
        Duration::from_secs(60),
        |s| {
            s.lines("utipcd")
                .find(|(_, l)| l.ends_with(&format!("link up {d_link}")))
                .map(|(t, _)| *t)
        },
    );
    let kl = s.wait(
        "the kernel's link list showing utipcd",
        Duration::from_secs(40),
        |s| {
            find_marker(s, "echo", |m| {
                status_link_up(m, &format!("{e_id}:udp1"), d_id)
            })
            .map(|(_, m)| m.to_owned())
        },
    );
    rep.line(format!(
        "{test}: link up {:.1} s after qemu start; kernel: {kl}",
        t_link.duration_since(e_boot).as_secs_f64()
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let table = s.mgmt_json(&run_dir, &["nametable", "show"]);
        if table
            .iter()
            .any(|b| b["type"] == SVC && b["lower"] == 17 && b["node"] == e_addr.as_str())
        {
            break;
        }
        if Instant::now() > deadline {
            s.fail(&format!(
                "utipcd's name table lacks the kernel's {{18888,17}}: {table:?}"
            ));
        }
        thread::sleep(Duration::from_millis(250));
    }
    for (i, (size, count)) in [(16u64, 50u64), (1400, 50), (66_000, 20)]
        .into_iter()
        .enumerate()
    {
        let b = s.bearer(&pp, &[&e_ip]);
        let id = format!("{ping_id}{i}");
        let line = format!(
            "{UTIPC} ping --embedded --bearer {b} --id {id} --to {SVC}:17 --size {size} \
             --count {count} --timeout 20"
        );
        let r = s.run(&id, &pp, &line, None);
        let st = ping_stats(&r.stdout);
        let ok = r.code == Some(0) && st.as_ref().is_some_and(|st| st.received == count);
        s.check(
            ok,
            &format!(
                "replicast ping {size} B: exit {:?}:\n{}{}",
                r.code, r.stdout, r.stderr
            ),
        );
        if let Some(st) = st {
            rep.line(format!(
                "{test}: utipc ping -> kernel size={size} count={count}: rtt_us min={} p50={} p99={} max={}",
                st.min, st.p50, st.p99, st.max
            ));
        }
    }
    let b = s.bearer(&pp, &[&e_ip]);
    let line = format!(
        "{UTIPC} send --embedded --bearer {b} --id {send_id} --to {SVC}:0:1000 --timeout 20"
    );
    let r = s.run("utsendr", &pp, &line, Some(&[b'r'; 77]));
    s.check(
        r.code == Some(0),
        &format!("utipc send: exit {:?}: {}{}", r.code, r.stdout, r.stderr),
    );
    let send_addr = addr_of(send_id);
    let rx = s.wait(
        "the guest's RX of the multicast",
        Duration::from_secs(15),
        |s| {
            let a = find_marker(s, "echo", |m| {
                m.starts_with(&format!("RX rdm size=77 from={send_addr}:")) && m.ends_with(" mcast")
            })?;
            let b = find_marker(s, "echo", |m| {
                m.starts_with(&format!("RX range size=77 from={send_addr}:"))
                    && m.ends_with(" mcast")
            })?;
            Some([a.1.to_owned(), b.1.to_owned()])
        },
    );
    for l in &rx {
        rep.line(format!("{test}: kernel: {l}"));
    }
    let sent = s.guests[eg].kill();
    let down = format!("node down {e_addr}");
    let t = s.wait(
        "utipcd's node down after qemu was killed",
        Duration::from_secs(15),
        |s| {
            s.lines("utipcd")
                .find(|(t, l)| *t >= sent && l.ends_with(&down))
                .map(|(t, _)| *t)
        },
    );
    let dt = t.duration_since(sent);
    rep.line(format!(
        "{test}: SIGKILL to qemu -> utipcd '{down}' after {:.3} s",
        dt.as_secs_f64()
    ));
    s.check(
        dt <= MAX_DETECT_SILENT,
        &format!("utipcd took {:.3} s", dt.as_secs_f64()),
    );
    rep.line(format!("{test}: done in {:.1} s", s.secs(Instant::now())));
}

// =============================================================================================
// Connections and service tracking with a kernel node, through utipcd

#[test]
fn interop_conn_topology() {
    let Some(_serial) = gate("interop_conn_topology") else {
        return;
    };
    conn_topology_scenario("interop_conn_topology");
}

/// ECONNRESET: what a kernel socket's `recv` returns once its peer aborted the connection.
const ECONNRESET: i32 = 104;

/// Whether a `utipc subscribe` line (`TIMESTAMP KIND {T,L,U} port PORT@NODE`) reports `kind`
/// of the binding {SVC,lower,upper} by a socket on `node`.
fn sub_event(line: &str, kind: &str, lower: u32, upper: u32, node: &str) -> bool {
    let f: Vec<&str> = line.split_whitespace().collect();
    f.len() == 5
        && f[1] == kind
        && f[2] == format!("{{{SVC},{lower},{upper}}}")
        && f[3] == "port"
        && f[4].ends_with(&format!("@{node}"))
}

/// The four subscribers of the scenario, each to a topology server, and where they print.
#[derive(Clone, Copy)]
enum Watcher {
    /// The guest's subscription to its own kernel's server (`TOPO SVC ...` lines).
    GuestToKernel,
    /// The guest's subscription to utipcd's server over the network (`RTOPO SVC ...`).
    GuestToUtipc,
    /// `utipc subscribe` through utipcd to utipcd's own server (log `utsub`).
    UtipcToUtipc,
    /// `utipc subscribe --node GUEST` through utipcd to the kernel's server (log `utsubk`).
    UtipcToKernel,
}

const WATCHERS: [Watcher; 4] = [
    Watcher::GuestToKernel,
    Watcher::GuestToUtipc,
    Watcher::UtipcToUtipc,
    Watcher::UtipcToKernel,
];

impl Watcher {
    fn name(self) -> &'static str {
        match self {
            Self::GuestToKernel => "guest -> kernel topsrv",
            Self::GuestToUtipc => "guest -> utipc topsrv (wire)",
            Self::UtipcToUtipc => "utipc subscribe -> utipc topsrv",
            Self::UtipcToKernel => "utipc subscribe --node -> kernel topsrv (wire)",
        }
    }

    /// When this subscriber reported `published` (or not) of {SVC,lo,up} by a socket on
    /// `node`, first at or after `after`. A guest's line counts from when the log poll saw it
    /// on the console; a `utipc subscribe` line from its own timestamp (1 ms resolution).
    fn seen(
        self,
        s: &Scenario,
        after: Instant,
        published: bool,
        (lo, up): (u32, u32),
        node: &str,
    ) -> Option<Instant> {
        let guest = |pfx: &str| {
            let kind = if published { "PUBLISHED" } else { "WITHDRAWN" };
            let want = format!("{pfx} SVC {kind} type={SVC} lower={lo} upper={up} port={node}:");
            s.markers("guest")
                .find(|(t, m)| *t >= after && m.starts_with(&want))
                .map(|(t, _)| t)
        };
        let utipc = |label: &str| {
            let kind = if published { "published" } else { "withdrawn" };
            let after_ms = unix_ms_of(after);
            s.lines(label).find_map(|(_, l)| {
                let ms = unix_ms(l.split(' ').next()?)? as f64;
                (ms >= after_ms.floor() && sub_event(l, kind, lo, up, node))
                    .then(|| after + Duration::from_secs_f64((ms - after_ms).max(0.0) / 1000.0))
            })
        };
        match self {
            Self::GuestToKernel => guest("TOPO"),
            Self::GuestToUtipc => guest("RTOPO"),
            Self::UtipcToUtipc => utipc("utsub"),
            Self::UtipcToKernel => utipc("utsubk"),
        }
    }
}

/// Waits until every subscriber reported the event (see [`Watcher::seen`]); returns when each
/// one did, in the order of [`WATCHERS`].
fn wait_watchers(
    s: &mut Scenario,
    what: &str,
    after: Instant,
    published: bool,
    range: (u32, u32),
    node: &str,
) -> Vec<Instant> {
    s.wait_fine(what, Duration::from_secs(15), |s| {
        WATCHERS
            .iter()
            .map(|w| w.seen(s, after, published, range, node))
            .collect::<Option<Vec<Instant>>>()
    })
}

/// Each subscriber's delay after `from`, as text (negative if it came first).
fn delays(from: Instant, times: &[Instant]) -> String {
    WATCHERS
        .iter()
        .zip(times)
        .map(|(w, t)| {
            let ms = if *t >= from {
                ms_since(from, *t)
            } else {
                -ms_since(*t, from)
            };
            format!("{} {ms:.0} ms", w.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds since the Unix epoch of a `YYYY-MM-DDTHH:MM:SS.mmmZ` timestamp (the start of
/// every utipcd log line and `utipc subscribe` line).
fn unix_ms(ts: &str) -> Option<i64> {
    if ts.len() != 24 || !ts.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // days since 1970-01-01 of a civil date (H. Hinnant's algorithm)
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + sec) * 1000 + ms)
}

/// The wall-clock time of instant `t`, in milliseconds since the Unix epoch.
fn unix_ms_of(t: Instant) -> f64 {
    let wall = SystemTime::now()
        .checked_sub(t.elapsed())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// How long after `t` utipcd logged its first line that satisfies `cond` (its timestamps).
fn utipcd_after(s: &Scenario, t: Instant, cond: impl Fn(&str) -> bool) -> Option<f64> {
    let t_ms = unix_ms_of(t);
    s.lines("utipcd").find_map(|(_, l)| {
        let ms = unix_ms(l.split(' ').next()?)? as f64;
        (ms >= t_ms.floor() && cond(l)).then_some((ms - t_ms).max(0.0))
    })
}

/// The instant of utipcd's first log line at or after `t` that contains `what`, from its
/// timestamp.
fn utipcd_line(s: &Scenario, t: Instant, what: &str) -> Option<Instant> {
    utipcd_after(s, t, |l| l.contains(what)).map(|ms| t + Duration::from_secs_f64(ms / 1000.0))
}

fn ms_since(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64() * 1000.0
}

/// Attaches this test process to utipcd (its run directory is reachable from any netns).
fn attach_client(run_dir: &Path) -> Result<Client, String> {
    Client::attach_with(&ClientOptions {
        run_dir: Some(run_dir.to_owned()),
        idle: IdleMode::Backoff,
    })
    .map_err(|e| format!("attach to utipcd in {}: {e}", run_dir.display()))
}

/// A utipc application against the guest's STREAM echo {SVC,inst}: `total` bytes written in
/// `chunk`-byte pieces, each echo read back and compared, then an orderly shutdown. Returns the
/// time from connect to the last echo, and the peer.
fn stream_exchange(
    client: &Client,
    inst: u32,
    total: usize,
    chunk: usize,
) -> Result<(Duration, SocketAddr), String> {
    let sock = client
        .socket(SocketKind::Stream)
        .map_err(|e| format!("socket: {e}"))?;
    let t0 = Instant::now();
    sock.connect(ServiceAddr::new(SVC, inst), Duration::from_secs(10))
        .map_err(|e| format!("connect {{{SVC},{inst}}}: {e}"))?;
    let peer = sock.peer_addr().ok_or("connected, but no peer address")?;
    sock.set_read_timeout(Some(Duration::from_secs(10)));
    let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 509) as u8).collect();
    let mut back = vec![0u8; chunk];
    for (n, out) in data.chunks(chunk).enumerate() {
        let at = n * chunk;
        sock.write_all(out)
            .map_err(|e| format!("write at byte {at}: {e}"))?;
        let mut got = 0;
        while got < out.len() {
            match sock.read(&mut back[got..out.len()]) {
                Ok(0) => return Err(format!("end of stream at byte {}", at + got)),
                Ok(k) => got += k,
                Err(e) => return Err(format!("read at byte {}: {e}", at + got)),
            }
        }
        if back[..out.len()] != *out {
            return Err(format!(
                "the echo of bytes {at}..{} differs",
                at + out.len()
            ));
        }
    }
    let dt = t0.elapsed();
    sock.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    Ok((dt, peer))
}

/// A utipc application against the guest's SEQPACKET echo {SVC,inst}: messages of 1 to 66,000
/// bytes, each echoed whole. Returns the time it took.
fn seqpacket_exchange(client: &Client, inst: u32) -> Result<Duration, String> {
    let sock = client
        .socket(SocketKind::Seqpacket)
        .map_err(|e| format!("socket: {e}"))?;
    let t0 = Instant::now();
    sock.connect(ServiceAddr::new(SVC, inst), Duration::from_secs(10))
        .map_err(|e| format!("connect {{{SVC},{inst}}}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)));
    for (i, size) in [1usize, 100, 1400, 8000, 66_000].into_iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|j| (j * 13 + i) as u8).collect();
        let sent = sock
            .send(&data)
            .map_err(|e| format!("send {size} bytes: {e}"))?;
        if sent != size {
            return Err(format!("sent {sent} of {size} bytes"));
        }
        let m = sock
            .recv()
            .map_err(|e| format!("echo of {size} bytes: {e}"))?;
        if m.data != data {
            return Err(format!(
                "the echo of the {size}-byte message has {} bytes{}",
                m.data.len(),
                if m.data.len() == size {
                    " and differs"
                } else {
                    ""
                }
            ));
        }
    }
    let dt = t0.elapsed();
    sock.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    Ok(dt)
}

/// Connections and topology between utipcd's applications and one kernel node (Ethernet):
///
/// * i. the guest's STREAM client (256 KiB) and SEQPACKET client against `utipc echo
///   --stream`, attached to utipcd;
/// * ii. a utipc application (this test process, attached to utipcd) against the guest's
///   STREAM and SEQPACKET echo servers;
/// * iii. kill -9 of the `utipc echo` the guest is connected to: the guest's `recv` fails with
///   ECONNRESET, and every subscriber sees the binding withdrawn;
/// * iv. service tracking both ways, each way on both servers: the guest subscribes to its
///   kernel's topology server and, over the network, to utipcd's; `utipc subscribe` subscribes
///   to utipcd's and, with `--node`, to the kernel's. All four see the guest's and utipc's
///   bindings, a binding that a `utipc echo` makes and drops, and one the guest drops;
/// * v. SIGKILL to qemu: utipcd's subscriber sees the guest's bindings withdrawn and the
///   subscription to the kernel's server ends, within the link tolerance.
#[allow(
    clippy::too_many_lines,
    reason = "one scenario, step by step, reads best in one piece"
)]
fn conn_topology_scenario(test: &str) {
    let media = Media::Eth;
    let mut rep = Report;
    let mut s = Scenario::with_tag(test, media, 'c');
    let (g_id, d_id) = ("kpconn", "utdc");
    let (g_addr, d_addr) = (addr_of(g_id), addr_of(d_id));
    assert_ne!(g_addr, d_addr, "{g_id} and {d_id} hash to one address");
    let d_num = u32::from_str_radix(&d_addr, 16).expect("addr_of gives hex");
    // utipc echo's services: stream (and seqpacket) for the guest's clients, the abort victim,
    // the binding made and dropped for the subscribers; the guest's own dropped binding.
    let (i_stream, i_seq, i_abort, i_bind, g_bind) = (30u32, 32u32, 31u32, 40u32, 50u32);

    let pa = s.port('a', 2);
    let run_dir = s.dir.join("run");
    let rd = run_dir.display().to_string();
    let b = s.bearer(&pa, &[]);
    let line = format!("{UTIPCD} --id {d_id} --net-id {NET_ECHO} --bearer {b} --run-dir {rd} -v");
    s.spawn("utipcd", &pa, &line);
    s.wait("utipcd's address", Duration::from_secs(20), |s| {
        s.lines("utipcd")
            .any(|(_, l)| l.contains(" committed"))
            .then_some(())
    });
    // the applications, attached to utipcd
    let line =
        format!("{UTIPC} echo --run-dir {rd} --stream {SVC}:{i_stream} --stream {SVC}:{i_seq}");
    s.spawn("utstream", &pa, &line);
    let line = format!("{UTIPC} echo --run-dir {rd} --stream {SVC}:{i_abort}");
    let victim = s.spawn("utvictim", &pa, &line);
    let line = format!("{UTIPC} subscribe {SVC} --ports --run-dir {rd}");
    s.spawn("utsub", &pa, &line);
    s.wait("utipc echo's bindings", Duration::from_secs(20), |s| {
        (s.lines("utstream")
            .any(|(_, l)| l.starts_with("echo: bound"))
            && s.lines("utvictim")
                .any(|(_, l)| l.starts_with("echo: bound")))
        .then_some(())
    });

    // the kernel node
    let args = format!(
        "peer={d_num} stream_inst={i_stream} seq_inst={i_seq} abort_inst={i_abort} \
         bind_inst={g_bind} stream_bytes=262144 wait=60 linkstatus=0"
    );
    let g = s.boot("guest", g_id, "conn", NET_ECHO, 10, &[], &args, 120);
    let g_boot = s.guests[g].booted;
    let cap = s.capture("guest-tap", g);
    rep.line(format!(
        "{test}: guest {} (qemu {}), logs in {}",
        s.guests[g].name,
        s.guests[g].pid,
        s.dir.display()
    ));
    let kaddr = s.wait("the guest's ADDR", Duration::from_secs(90), |s| {
        find_marker(s, "guest", |m| m.starts_with("ADDR ")).map(|(_, m)| m[5..].to_owned())
    });
    s.check(
        kaddr == g_addr,
        &format!("the kernel's address of {g_id} is {kaddr}, utipc computes {g_addr}"),
    );
    let d_link = format!("{d_id}:{}-{g_id}:eth0", pa.veth);
    let t_link = s.wait("utipcd's link to the guest", Duration::from_secs(60), |s| {
        s.lines("utipcd")
            .find(|(_, l)| l.ends_with(&format!("link up {d_link}")))
            .map(|(t, _)| *t)
    });
    s.wait("the guest's roles READY", Duration::from_secs(30), |s| {
        let echo = find_marker(s, "guest", |m| {
            m.starts_with("READY role=echo") && m.ends_with("svc_topo=1")
        });
        let conn = find_marker(s, "guest", |m| m.starts_with("READY role=conn"));
        (echo.is_some() && conn.is_some()).then_some(())
    });
    rep.line(format!(
        "{test}: link {d_link} up {:.1} s after qemu start",
        t_link.duration_since(g_boot).as_secs_f64()
    ));
    // the guest's bindings in utipcd's name table, then the subscriber to the kernel's server
    let g_rows = [(17, 17), (18, 18), (19, 19), (100, 199), (g_bind, g_bind)];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let table = s.mgmt_json(&run_dir, &["nametable", "show"]);
        let all = g_rows.iter().all(|(lo, up)| {
            table.iter().any(|b| {
                b["type"] == SVC
                    && b["lower"] == *lo
                    && b["upper"] == *up
                    && b["node"] == g_addr.as_str()
            })
        });
        if all {
            break;
        }
        if Instant::now() > deadline {
            s.fail(&format!(
                "utipcd's name table lacks the guest's bindings: {table:?}"
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
    let line = format!("{UTIPC} subscribe {SVC} --ports --node {g_addr} --run-dir {rd}");
    s.spawn("utsubk", &pa, &line);

    // --- i. the guest's clients against utipc echo --stream, through utipcd
    let results: Vec<String> = s.wait(
        "the guest's stream and seqpacket RESULTs",
        Duration::from_secs(60),
        |s| {
            let r: Vec<String> = ["stream", "seqpacket"]
                .iter()
                .filter_map(|n| {
                    find_marker(s, "guest", |m| m.starts_with(&format!("RESULT {n} ")))
                        .map(|(_, m)| m.to_owned())
                })
                .collect();
            (r.len() == 2).then_some(r)
        },
    );
    for r in &results {
        rep.line(format!("{test}: i. kernel client -> utipc echo: {r}"));
    }
    s.check(
        results.iter().all(|r| r.split(' ').nth(2) == Some("ok")),
        &format!("the guest's clients failed against utipc echo: {results:?}"),
    );

    // --- ii. a utipc application against the guest's servers
    let client = match attach_client(&run_dir) {
        Ok(c) => c,
        Err(e) => s.fail(&e),
    };
    let total = 256 * 1024;
    match stream_exchange(&client, 18, total, 32 * 1024) {
        Ok((dt, peer)) => {
            s.check(
                format!("{:08x}", peer.node) == g_addr,
                &format!("the stream peer is {peer}, not on the guest {g_addr}"),
            );
            rep.line(format!(
                "{test}: ii. utipc stream client -> kernel {{{SVC},18}} at {peer}: {total} bytes \
                 in 32 KiB writes echoed intact in {:.0} ms",
                dt.as_secs_f64() * 1000.0
            ));
        }
        Err(e) => s.fail(&format!("utipc stream client -> kernel: {e}")),
    }
    match seqpacket_exchange(&client, 19) {
        Ok(dt) => rep.line(format!(
            "{test}: ii. utipc seqpacket client -> kernel {{{SVC},19}}: 1, 100, 1400, 8000, \
             66000 B echoed whole in {:.0} ms",
            dt.as_secs_f64() * 1000.0
        )),
        Err(e) => s.fail(&format!("utipc seqpacket client -> kernel: {e}")),
    }
    // the guest's connection processes saw each connection end in order (our shutdown)
    let closes: Vec<String> = s.wait(
        "the guest's CONN close lines",
        Duration::from_secs(15),
        |s| {
            let st = find_marker(s, "guest", |m| {
                m.starts_with(&format!("CONN close kind=stream peer={d_addr}:"))
            })?;
            let sp = find_marker(s, "guest", |m| {
                m.starts_with(&format!("CONN close kind=seqpacket peer={d_addr}:"))
            })?;
            Some(vec![st.1.to_owned(), sp.1.to_owned()])
        },
    );
    for c in &closes {
        rep.line(format!("{test}: ii. kernel: {c}"));
    }
    let seq_bytes = 1 + 100 + 1400 + 8000 + 66_000;
    s.check(
        closes[0].contains(&format!(" bytes={total} reason=eof"))
            && closes[1].contains(&format!(" msgs=5 bytes={seq_bytes} reason=eof")),
        &format!("the guest's servers did not see the whole exchange end in order: {closes:?}"),
    );
    drop(client);

    // --- iii. kill -9 of the utipc echo the guest holds a connection to
    s.wait("the guest's HOLD", Duration::from_secs(30), |s| {
        find_marker(s, "guest", |m| m.starts_with("HOLD ")).map(|_| ())
    });
    let victim_pid = s.procs[victim].pid();
    let t_kill = s.procs[victim].signal(libc::SIGKILL);
    let (t_abort, abort) = s.wait_fine("the guest's abort RESULT", Duration::from_secs(15), |s| {
        find_marker(s, "guest", |m| m.starts_with("RESULT abort ")).map(|(t, m)| (t, m.to_owned()))
    });
    rep.line(format!(
        "{test}: iii. kill -9 utipc echo -> kernel recv returned after {:.0} ms (console): {abort}",
        ms_since(t_kill, t_abort)
    ));
    let noticed = utipcd_after(&s, t_kill, |l| {
        l.contains(&format!("client pid {victim_pid} ")) && l.contains(" closed its attachment")
    });
    let withdrew = utipcd_after(&s, t_kill, |l| {
        l.contains(&format!("withdrawn {{{SVC},{i_abort},{i_abort}}} "))
    });
    rep.line(format!(
        "{test}: iii. utipcd's log: the client's death noticed after {} ms, its binding \
         withdrawn after {} ms",
        noticed.map_or("?".into(), |v| format!("{v:.0}")),
        withdrew.map_or("?".into(), |v| format!("{v:.0}"))
    ));
    s.check(
        abort.starts_with("RESULT abort ok ") && abort.contains(&format!(" errno={ECONNRESET} ")),
        &format!("the guest's connection did not end with ECONNRESET: {abort}"),
    );
    s.procs[victim].stop();

    // --- iv. service tracking both ways
    // what each subscriber saw at once: a guest binding and a utipc one
    for (what, range, node) in [
        ("the guest's {18888,17}", (17, 17), &g_addr),
        ("utipc echo's {18888,30}", (i_stream, i_stream), &d_addr),
    ] {
        let t0 = s.t0;
        wait_watchers(
            &mut s,
            &format!("every subscriber to report {what}"),
            t0,
            true,
            range,
            node,
        );
        rep.line(format!(
            "{test}: iv. {what} published: seen by all 4 subscribers"
        ));
    }
    let seen = wait_watchers(
        &mut s,
        "every subscriber to report the killed echo's {18888,31} withdrawn",
        t_kill,
        false,
        (i_abort, i_abort),
        &d_addr,
    );
    rep.line(format!(
        "{test}: iv. kill -9 utipc echo -> {{{SVC},{i_abort}}} withdrawn: {}",
        delays(t_kill, &seen)
    ));
    let t_unbind = s.wait_fine("the guest's UNBIND", Duration::from_secs(15), |s| {
        find_marker(s, "guest", |m| m.starts_with("UNBIND ")).map(|(t, _)| t)
    });
    // looked for from the kill on (the guest unbinds after its abort test), shown from the
    // UNBIND line, which a poll may see a little late
    let seen = wait_watchers(
        &mut s,
        "every subscriber to report the guest's {18888,50} withdrawn",
        t_kill,
        false,
        (g_bind, g_bind),
        &g_addr,
    );
    rep.line(format!(
        "{test}: iv. guest closes its {{{SVC},{g_bind}}} socket -> withdrawn (after the console \
         line): {}",
        delays(t_unbind, &seen)
    ));
    // a binding made and dropped by a utipc application; times from utipcd's own log line
    let line = format!("{UTIPC} echo --run-dir {rd} --bind {SVC}:{i_bind}");
    let t_spawn = Instant::now();
    let binder = s.spawn("utbind", &pa, &line);
    let seen = wait_watchers(
        &mut s,
        "every subscriber to report {18888,40} published",
        t_spawn,
        true,
        (i_bind, i_bind),
        &d_addr,
    );
    let from = utipcd_line(
        &s,
        t_spawn,
        &format!("published {{{SVC},{i_bind},{i_bind}}} "),
    )
    .unwrap_or(t_spawn);
    rep.line(format!(
        "{test}: iv. utipc echo --bind {SVC}:{i_bind} -> published (from utipcd's log line): {}",
        delays(from, &seen)
    ));
    let t_term = s.procs[binder].signal(libc::SIGTERM);
    let seen = wait_watchers(
        &mut s,
        "every subscriber to report {18888,40} withdrawn",
        t_term,
        false,
        (i_bind, i_bind),
        &d_addr,
    );
    let from = utipcd_line(
        &s,
        t_term,
        &format!("withdrawn {{{SVC},{i_bind},{i_bind}}} "),
    )
    .unwrap_or(t_term);
    rep.line(format!(
        "{test}: iv. SIGTERM to it -> withdrawn (from utipcd's log line): {}",
        delays(from, &seen)
    ));
    let rtopo = find_marker(&s, "guest", |m| m.starts_with("RTOPO READY"))
        .map(|(_, m)| m.to_owned())
        .unwrap_or_default();
    rep.line(format!("{test}: iv. kernel: {rtopo}"));

    // --- the guest's verdict, its errors, and the capture
    let summary = s.wait("the guest's SUMMARY", Duration::from_secs(15), |s| {
        find_marker(s, "guest", |m| m.starts_with("SUMMARY ")).map(|(_, m)| m.to_owned())
    });
    let errors: Vec<String> = s
        .markers("guest")
        .filter(|(_, m)| m.contains("ERROR"))
        .map(|(_, m)| m.to_owned())
        .collect();
    s.check(
        summary == "SUMMARY role=conn ok=3 fail=0" && errors.is_empty(),
        &format!("the guest: {summary}; errors: {errors:?}"),
    );
    // --- v. the kernel node dies: utipcd sees it go, its bindings are withdrawn for utipc's
    // subscriber, and the subscription to its topology server ends (NO_NODE)
    let t_qemu = s.guests[g].kill();
    let (t_wd, t_end) = s.wait_fine(
        "the guest's bindings withdrawn and the end of `subscribe --node`",
        Duration::from_secs(15),
        |s| {
            let wd = Watcher::UtipcToUtipc.seen(s, t_qemu, false, (17, 17), &g_addr)?;
            let end = s
                .lines("utsubk")
                .find(|(t, l)| *t >= t_qemu && l.contains("topology server"))
                .map(|(t, _)| *t)?;
            Some((wd, end))
        },
    );
    let down = utipcd_line(&s, t_qemu, &format!("node down {g_addr}"));
    let end_line = s
        .lines("utsubk")
        .find(|(t, l)| *t >= t_qemu && l.contains("topology server"))
        .map(|(_, l)| l.clone())
        .unwrap_or_default();
    rep.line(format!(
        "{test}: v. SIGKILL to qemu -> utipcd node down after {} ms; utipc subscribe: {{{SVC},17}} \
         withdrawn after {:.0} ms; subscribe --node ended after {:.0} ms: {end_line}",
        down.map_or("?".into(), |t| format!("{:.0}", ms_since(t_qemu, t))),
        ms_since(t_qemu, t_wd),
        ms_since(t_qemu, t_end)
    ));
    s.check(
        ms_since(t_qemu, t_wd) <= MAX_DETECT_SILENT.as_secs_f64() * 1000.0
            && ms_since(t_qemu, t_end) <= MAX_DETECT_SILENT.as_secs_f64() * 1000.0,
        "utipc took too long to see the kernel node's death",
    );
    let decoded = s.decode_capture(cap, &mut rep);
    if !decoded.is_empty() {
        let count = |p: &str| decoded.iter().filter(|l| l.contains(p)).count();
        rep.line(format!(
            "{test}: capture: {} CONN_MSG, {} CONN_MANAGER, {} NAMED_MSG, {} NAME_DISTRIBUTOR",
            count("CONN_MSG"),
            count("CONN_MANAGER"),
            count("NAMED_MSG"),
            count("NAME_DISTRIBUTOR")
        ));
    }
    rep.line(format!("{test}: done in {:.1} s", s.secs(Instant::now())));
}
