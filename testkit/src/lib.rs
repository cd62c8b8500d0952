//! Test support shared by utipc's tests (a dev-dependency only): one implementation of each
//! piece of network-namespace plumbing, so a fix (a leaked namespace, an unbounded wait, a
//! missing capability check) is made once for every crate.
//!
//! * [`netns_available`] / [`privileged`] / [`skip_or_fail`]: tests that need root and
//!   iproute2 print why and pass without them, unless `UTIPC_REQUIRE_NETNS=1` (CI) turns that
//!   into a failure.
//! * [`Netns`]: a named network namespace, deleted on drop; code runs inside it on a fresh
//!   thread ([`Netns::run`], [`Netns::spawn`]) or on the calling thread until a guard drops
//!   ([`Netns::enter`], [`enter_netns`]).
//! * [`pair`], [`Veth`] and [`Lan`]: namespaces joined by a veth pair (default or custom
//!   addresses, MTUs, MACs, neighbours), or by a bridge in a hub namespace. Every name starts
//!   with the caller's prefix and the process id, so parallel tests and runs never collide;
//!   addresses are in 198.18.0.0/15 (reserved for benchmarks and tests); stale namespaces of
//!   dead test processes are removed at the first use of a prefix.
//! * [`DaemonProc`]: a child process whose stderr lines are collected with arrival times.
//! * [`TempDir`], [`wait_until`].
//!
//! Every wait is bounded.

use std::fs::{self, File};
use std::io;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Where `ip netns add` mounts the namespace files.
const NETNS_DIR: &str = "/run/netns";

/// A fresh, unique directory under the temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/<prefix><pid>-<n>-<tag>`.
    pub fn new(prefix: &str, tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("{prefix}{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        Self(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// =============================================================================================
// Privileges

/// A Linux capability a test needs, satisfied by any of `bits` in the calling thread's
/// effective set (the kernel lets CAP_SYS_ADMIN stand in for the capabilities split off it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    name: &'static str,
    bits: &'static [u32],
}

impl Cap {
    /// Interfaces, addresses, XDP attachment.
    pub const NET_ADMIN: Self = Self {
        name: "CAP_NET_ADMIN",
        bits: &[12],
    };
    /// Raw and packet sockets, AF_XDP sockets.
    pub const NET_RAW: Self = Self {
        name: "CAP_NET_RAW",
        bits: &[13],
    };
    /// `ip netns` (it mounts and unshares) and `ip netns exec`.
    pub const SYS_ADMIN: Self = Self {
        name: "CAP_SYS_ADMIN",
        bits: &[21],
    };
    /// Loading BPF programs and maps (CAP_SYS_ADMIN grants it too, and is the only way before
    /// Linux 5.8, which has no CAP_BPF).
    pub const BPF: Self = Self {
        name: "CAP_BPF",
        bits: &[39, 21],
    };
    /// What the verifier asks of programs with variable packet offsets (CAP_SYS_ADMIN grants it
    /// too).
    pub const PERFMON: Self = Self {
        name: "CAP_PERFMON",
        bits: &[38, 21],
    };

    /// The capability's name, as `capabilities(7)` spells it.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Whether this test can create namespaces and veth pairs (CAP_NET_ADMIN, CAP_NET_RAW,
/// iproute2); prints why not and returns false (skip), or panics instead when
/// `UTIPC_REQUIRE_NETNS=1`.
#[track_caller]
pub fn netns_available(test: &str) -> bool {
    privileged(test, &[])
}

/// [`netns_available`] for a test that needs `extra` capabilities besides (loading XDP
/// programs, `ip netns exec`).
#[track_caller]
pub fn privileged(test: &str, extra: &[Cap]) -> bool {
    let Err(why) = check_capabilities(extra) else {
        return true;
    };
    skip_or_fail(test, &why);
    false
}

/// Prints why `test` is skipped, or panics when `UTIPC_REQUIRE_NETNS=1`: CI sets it so that a
/// runner without root fails loudly instead of passing every privileged test by skipping it.
#[track_caller]
pub fn skip_or_fail(test: &str, why: &str) {
    let required = std::env::var("UTIPC_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: network namespaces are required (UTIPC_REQUIRE_NETNS=1) but {why}"
    );
    eprintln!("skipping {test}: {why} (set UTIPC_REQUIRE_NETNS=1 to fail instead)");
}

/// Root-equivalent network privileges (CAP_NET_ADMIN, CAP_NET_RAW) and iproute2.
///
/// # Errors
///
/// What is missing.
pub fn check_privileges() -> Result<(), String> {
    check_capabilities(&[])
}

/// CAP_NET_ADMIN, CAP_NET_RAW, `extra`, and iproute2. Reads the calling thread's effective set
/// (`/proc/thread-self`): capabilities are per thread, and a test may drop some on its own
/// thread while the rest of the process keeps them.
///
/// # Errors
///
/// The first capability missing, or that `ip` is not installed.
pub fn check_capabilities(extra: &[Cap]) -> Result<(), String> {
    let status = fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| format!("/proc/thread-self/status is unreadable ({e})"))?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("/proc/thread-self/status has no CapEff line")?;
    if let Some(cap) = first_missing(caps, extra) {
        return Err(format!(
            "the process lacks {} (run the tests as root)",
            cap.name
        ));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("iproute2's `ip` is not installed (apt-get install iproute2)".into()),
    }
}

/// The first of CAP_NET_ADMIN, CAP_NET_RAW and `extra` that the effective set `eff` (the
/// `CapEff` bit mask) does not satisfy.
fn first_missing(eff: u64, extra: &[Cap]) -> Option<Cap> {
    [Cap::NET_ADMIN, Cap::NET_RAW]
        .iter()
        .chain(extra)
        .find(|cap| !cap.bits.iter().any(|&b| b < 64 && eff & (1u64 << b) != 0))
        .copied()
}

// =============================================================================================
// Namespaces

/// Runs `ip ARGS` and returns its stdout.
///
/// # Errors
///
/// Its stderr when it fails.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes namespaces named `<prefix><pid>-...` of test processes that no longer run (a run
/// that was killed could not drop its [`Netns`]).
pub fn remove_stale(prefix: &str) {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// A unique base name `<prefix><pid>-<n>` and its `n`; removes the prefix's stale namespaces
/// the first time the prefix is used in this process.
fn next_net(prefix: &str) -> (usize, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static CLEANED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    {
        let mut cleaned = CLEANED.lock().unwrap_or_else(|p| p.into_inner());
        if !cleaned.iter().any(|p| p == prefix) {
            remove_stale(prefix);
            cleaned.push(prefix.to_owned());
        }
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (n, format!("{prefix}{}-{n}", std::process::id()))
}

/// Moves the calling thread into the network namespace open as `file`.
fn setns(file: &File) -> io::Result<()> {
    // SAFETY: `file` is an open namespace file borrowed for the call; setns(2) with
    // CLONE_NEWNET changes only the calling thread's network namespace.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread inside another network namespace until dropped, then back in the one it
/// was in before. Not `Send`: the namespace belongs to the thread that entered it.
///
/// Sockets (and interface indices) a thread opens belong to the namespace it is in when it
/// opens them, for their whole life, so a test can open them here and use them anywhere.
#[derive(Debug)]
#[must_use = "the thread leaves the namespace again when this is dropped"]
pub struct Entered {
    previous: File,
    name: String,
    not_send: PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.previous) {
            // Staying in the namespace would run later tests of this thread in it.
            if thread::panicking() {
                eprintln!("cannot leave network namespace {}: {e}", self.name);
            } else {
                panic!("cannot leave network namespace {}: {e}", self.name);
            }
        }
    }
}

/// Moves the calling thread into the namespace named `name` (one this process does not own,
/// such as a parent test's, passed by name to a child process) until the guard drops.
///
/// # Errors
///
/// When the namespace does not exist or cannot be entered.
pub fn enter_netns(name: &str) -> Result<Entered, String> {
    let previous = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
    let path = format!("{NETNS_DIR}/{name}");
    let file = File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    setns(&file).map_err(|e| format!("cannot enter network namespace {name}: {e}"))?;
    Ok(Entered {
        previous,
        name: name.to_owned(),
        not_send: PhantomData,
    })
}

/// A named namespace, deleted on drop (which also deletes the veth ends inside it).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name`, with `lo` up.
    ///
    /// # Errors
    ///
    /// The `ip` failure.
    pub fn create(name: String) -> Result<Self, String> {
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates `<prefix><pid>-<n>-<tag>` (unique in this process), with `lo` up; removes the
    /// prefix's stale namespaces first.
    ///
    /// # Errors
    ///
    /// The `ip` failure.
    pub fn fresh(prefix: &str, tag: &str) -> Result<Self, String> {
        let (_, base) = next_net(prefix);
        Self::create(format!("{base}-{tag}"))
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NS ARGS`; returns its stdout.
    ///
    /// # Errors
    ///
    /// The `ip` failure.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NS PROGRAM`. `ip` execs PROGRAM, so the child's pid is PROGRAM's (a
    /// signal to the child reaches it).
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// `ip -o link show dev DEV`.
    ///
    /// # Errors
    ///
    /// The `ip` failure.
    pub fn link_show(&self, dev: &str) -> Result<String, String> {
        self.ip(&["-o", "link", "show", "dev", dev])
    }

    /// The MAC address of `dev`, from `ip link`.
    ///
    /// # Errors
    ///
    /// The `ip` failure, or output without an Ethernet address.
    pub fn mac(&self, dev: &str) -> Result<[u8; 6], String> {
        let out = self.link_show(dev)?;
        let bad = || format!("no Ethernet address of {dev} in `ip link` output: {out}");
        let text = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(bad)?;
        let mut mac = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut mac {
            *byte = parts
                .next()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(bad)?;
        }
        match parts.next() {
            None => Ok(mac),
            Some(_) => Err(bad()),
        }
    }

    /// Waits (bounded) until `dev` is operationally up: before that the kernel has not
    /// activated its queue and drops frames silently.
    ///
    /// # Errors
    ///
    /// When it is not up within 5 s.
    pub fn wait_up(&self, dev: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.link_show(dev)?;
            if out.contains("state UP") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{dev} in {} did not come up within 5 s: {out}",
                    self.name
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn open(&self) -> Result<File, String> {
        let path = format!("{NETNS_DIR}/{}", self.name);
        File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))
    }

    /// Moves the calling thread into the namespace until the guard drops (see [`Entered`]).
    /// Prefer [`Netns::run`]; this is for code that must run on the calling thread.
    ///
    /// # Errors
    ///
    /// When the namespace cannot be entered.
    pub fn enter(&self) -> Result<Entered, String> {
        enter_netns(&self.name)
    }

    /// Runs `f` on a fresh thread inside the namespace and returns its result (a panic in `f`
    /// is resumed here). A fresh thread leaves the caller's own namespace alone, so a test can
    /// open sockets in several namespaces and drive them side by side from one thread.
    ///
    /// # Panics
    ///
    /// When the namespace cannot be entered, or `f` panics.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.try_run(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Netns::run`] that reports a failure to enter the namespace instead of panicking.
    fn try_run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        let file = self.open()?;
        thread::scope(|s| {
            s.spawn(|| {
                setns(&file)
                    .map_err(|e| format!("cannot enter network namespace {}: {e}", self.name))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts `f` on a new thread inside the namespace, for work that runs beside the test
    /// (a node, a server). The thread is given its own handle on the namespace file, so it does
    /// not depend on `self` outliving it.
    ///
    /// # Panics
    ///
    /// When the namespace file cannot be opened; the thread panics (`join` returns the error)
    /// when it cannot enter it.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let file = self.open().unwrap_or_else(|e| panic!("{e}"));
        let name = self.name.clone();
        thread::spawn(move || {
            setns(&file).unwrap_or_else(|e| panic!("cannot enter network namespace {name}: {e}"));
            drop(file);
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Two namespaces joined by a veth pair (see [`Veth`]).
#[derive(Debug)]
pub struct Pair {
    /// The first end's namespace.
    pub a: Netns,
    /// The second end's namespace.
    pub b: Netns,
}

/// How one end of a [`Veth`] pair is set up inside its namespace (in this order: IPv6 off,
/// MTU, MAC, addresses, up, neighbours).
#[derive(Debug, Clone, Default)]
pub struct VethEnd {
    /// Addresses with their prefix length (`198.18.0.1/24`, `fd00:198:18::1/64`). IPv6 ones are
    /// added without duplicate address detection, so they work at once.
    pub addrs: Vec<String>,
    /// The interface's MTU, when not the default 1500.
    pub mtu: Option<u32>,
    /// The interface's MAC address, when not a random one.
    pub mac: Option<[u8; 6]>,
    /// Permanent neighbour entries (IP address, MAC): frames go out without ARP first.
    pub neighbours: Vec<(String, [u8; 6])>,
    /// Turns IPv6 off in the namespace: no router solicitations or MLD reports appear while a
    /// test counts frames.
    pub no_ipv6: bool,
}

/// A veth pair between two fresh namespaces `<prefix><pid>-<n>-a` and `-b`, with the same
/// interface name on both sides, waited for until both ends are up.
#[derive(Debug, Clone)]
pub struct Veth {
    /// The interface name in both namespaces.
    pub ifname: String,
    /// The end in `a`.
    pub a: VethEnd,
    /// The end in `b`.
    pub b: VethEnd,
}

impl Default for Veth {
    /// `veth0`, no addresses.
    fn default() -> Self {
        Self {
            ifname: "veth0".into(),
            a: VethEnd::default(),
            b: VethEnd::default(),
        }
    }
}

/// `aa:bb:...`, as `ip` takes it.
fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

impl Veth {
    /// Creates the namespaces and the pair.
    ///
    /// # Errors
    ///
    /// The `ip` failure (whatever was created is deleted again).
    pub fn create(&self, prefix: &str) -> Result<Pair, String> {
        let (_, base) = next_net(prefix);
        self.create_in(&base)
    }

    fn create_in(&self, base: &str) -> Result<Pair, String> {
        let dev = self.ifname.as_str();
        let a = Netns::create(format!("{base}-a"))?;
        let b = Netns::create(format!("{base}-b"))?;
        a.ip(&[
            "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", &b.name,
        ])?;
        for (ns, end) in [(&a, &self.a), (&b, &self.b)] {
            if end.no_ipv6 {
                // /proc/sys/net shows the namespace of the thread that opens the file.
                ns.try_run(|| fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1"))?
                    .map_err(|e| format!("cannot disable IPv6 in {}: {e}", ns.name))?;
            }
            if let Some(mtu) = end.mtu {
                ns.ip(&["link", "set", dev, "mtu", &mtu.to_string()])?;
            }
            if let Some(mac) = end.mac {
                ns.ip(&["link", "set", dev, "address", &mac_text(mac)])?;
            }
            for addr in &end.addrs {
                let mut args = vec!["addr", "add", addr.as_str(), "dev", dev];
                if addr.contains(':') {
                    args.push("nodad");
                }
                ns.ip(&args)?;
            }
            ns.ip(&["link", "set", dev, "up"])?;
            for (peer, mac) in &end.neighbours {
                ns.ip(&[
                    "neigh",
                    "replace",
                    peer,
                    "lladdr",
                    &mac_text(*mac),
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ])?;
            }
        }
        a.wait_up(dev)?;
        b.wait_up(dev)?;
        Ok(Pair { a, b })
    }
}

/// Two namespaces `<prefix><pid>-<n>-a` and `-b` joined by `veth0` (`198.18.<n>.1/24` and
/// .2/24), both up: the plain pair of the daemon tests, with a subnet of its own per pair.
///
/// # Errors
///
/// The `ip` failure.
pub fn pair(prefix: &str) -> Result<(Netns, Netns), String> {
    let (n, base) = next_net(prefix);
    let end = |host: u32| VethEnd {
        addrs: vec![format!("198.18.{}.{host}/24", n % 250)],
        ..VethEnd::default()
    };
    let p = Veth {
        a: end(1),
        b: end(2),
        ..Veth::default()
    }
    .create_in(&base)?;
    Ok((p.a, p.b))
}

/// `count` node namespaces on one Ethernet segment: each has `veth0` (`198.18.<n>.<i+1>/24`)
/// whose peer is enslaved to bridge `br0` in a hub namespace.
#[derive(Debug)]
pub struct Lan {
    /// The node namespaces (declared first: dropped before the hub).
    pub nodes: Vec<Netns>,
    /// The hub holding the bridge.
    pub hub: Netns,
}

impl Lan {
    /// Builds the segment.
    ///
    /// # Errors
    ///
    /// The `ip` failure.
    pub fn new(prefix: &str, count: usize) -> Result<Self, String> {
        let (n, base) = next_net(prefix);
        let hub = Netns::create(format!("{base}-hub"))?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["link", "set", "br0", "up"])?;
        let mut nodes = Vec::new();
        for i in 0..count {
            let ns = Netns::create(format!("{base}-{i}"))?;
            let port = format!("p{i}");
            hub.ip(&[
                "link", "add", &port, "type", "veth", "peer", "name", "veth0", "netns", &ns.name,
            ])?;
            hub.ip(&["link", "set", &port, "master", "br0"])?;
            hub.ip(&["link", "set", &port, "up"])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("198.18.{}.{}/24", n % 250, i + 1),
                "dev",
                "veth0",
            ])?;
            ns.ip(&["link", "set", "veth0", "up"])?;
            nodes.push(ns);
        }
        for ns in &nodes {
            ns.wait_up("veth0")?;
        }
        Ok(Self { nodes, hub })
    }
}

/// A child process (typically `utipcd`) whose stderr lines arrive on a channel with their
/// arrival time. Killed (SIGKILL) and reaped on drop if still running; its log is printed when
/// the test panics.
#[derive(Debug)]
pub struct DaemonProc {
    /// A name for messages.
    pub name: String,
    /// The child.
    pub child: Child,
    lines: Receiver<(Instant, String)>,
    /// Lines seen so far.
    pub log: Vec<String>,
}

impl DaemonProc {
    /// Spawns `cmd` (stdin and stdout null, stderr collected).
    ///
    /// # Panics
    ///
    /// When it cannot be spawned.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: spawn: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut r = io::BufReader::new(stderr);
            let mut line = String::new();
            while matches!(io::BufRead::read_line(&mut r, &mut line), Ok(n) if n > 0) {
                if tx
                    .send((Instant::now(), line.trim_end().to_owned()))
                    .is_err()
                {
                    return;
                }
                line.clear();
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `what`; returns when it arrived.
    ///
    /// # Panics
    ///
    /// When none arrives within `timeout` (printing the log).
    pub fn wait_for(&mut self, what: &str, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        if self.log.iter().any(|l| l.contains(what)) {
            return Instant::now();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let hit = line.contains(what);
                    self.log.push(line);
                    if hit {
                        return at;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "{}: no log line with {what:?} within {timeout:?}; its log:\n{}",
                    self.name,
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Waits until `count` log lines contain `what`.
    ///
    /// # Panics
    ///
    /// When fewer arrive within `timeout` (printing the log).
    pub fn wait_count(&mut self, what: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.iter().filter(|l| l.contains(what)).count() >= count {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((_, line)) => self.log.push(line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "{}: fewer than {count} log lines with {what:?} within {timeout:?}; its \
                     log:\n{}",
                    self.name,
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Collects the lines that arrived so far.
    pub fn drain(&mut self) {
        while let Ok((_, l)) = self.lines.try_recv() {
            self.log.push(l);
        }
    }

    /// The process's CPU time so far (user + system, all threads), from /proc/PID/stat.
    ///
    /// # Panics
    ///
    /// When /proc cannot be read.
    pub fn cpu_time(&self) -> Duration {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .unwrap_or_else(|e| panic!("{}: /proc/PID/stat: {e}", self.name));
        // After the command name in parentheses: fields 3 onwards; utime and stime are 14, 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse::<u64>().expect("clock ticks"))
            .sum();
        // SAFETY: sysconf takes no pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }

    /// Sends `sig`.
    ///
    /// # Panics
    ///
    /// When kill(2) fails.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with our own child's pid (not reaped yet, so it cannot be reused).
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(r, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Waits (bounded) for the process to exit.
    ///
    /// # Panics
    ///
    /// When it does not exit within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // Collect the rest of the log.
                while let Ok((_, l)) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(l);
                }
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; its log:\n{}",
                self.name,
                self.log.join("\n")
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            self.drain();
            eprintln!("--- {} log ---\n{}", self.name, self.log.join("\n"));
        }
    }
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_and_their_stand_ins() {
        let bit = |b: u32| 1u64 << b;
        let net = bit(12) | bit(13);
        assert_eq!(first_missing(net, &[]), None);
        assert_eq!(first_missing(bit(12), &[]), Some(Cap::NET_RAW));
        assert_eq!(first_missing(0, &[Cap::BPF]), Some(Cap::NET_ADMIN));
        // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, not the other way round.
        let xdp = [Cap::BPF, Cap::PERFMON, Cap::SYS_ADMIN];
        assert_eq!(first_missing(net | bit(21), &xdp), None);
        assert_eq!(
            first_missing(net | bit(39) | bit(38), &xdp),
            Some(Cap::SYS_ADMIN)
        );
        assert_eq!(
            first_missing(net | bit(39), &[Cap::BPF, Cap::PERFMON]),
            Some(Cap::PERFMON)
        );
        assert_eq!(Cap::PERFMON.name(), "CAP_PERFMON");
    }

    #[test]
    fn macs_are_written_as_ip_reads_them() {
        assert_eq!(
            mac_text([0x02, 0, 0xab, 0x10, 0xff, 0x0a]),
            "02:00:ab:10:ff:0a"
        );
    }

    const PREFIX: &str = "utkit-";

    fn names() -> String {
        ip(&["netns", "list"]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The network namespace the calling thread is in (`net:[inode]`).
    fn current_netns() -> PathBuf {
        fs::read_link("/proc/thread-self/ns/net").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every option of a veth end, entering and leaving namespaces, and cleanup on drop.
    #[test]
    fn veth_pair_with_every_option() {
        if !netns_available("veth_pair_with_every_option") {
            return;
        }
        let mac_a = [0x02, 0, 0, 0, 0x11, 0x0a];
        let mac_b = [0x02, 0, 0, 0, 0x11, 0x0b];
        let pair = Veth {
            ifname: "tk0".into(),
            a: VethEnd {
                addrs: vec!["198.18.250.1/24".into()],
                mtu: Some(1400),
                mac: Some(mac_a),
                neighbours: vec![("198.18.250.2".into(), mac_b)],
                no_ipv6: true,
            },
            b: VethEnd {
                addrs: vec!["198.18.250.2/24".into(), "fd00:198:18:250::2/64".into()],
                mac: Some(mac_b),
                ..VethEnd::default()
            },
        }
        .create(PREFIX)
        .unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (&pair.a, &pair.b);
        assert!(
            a.name()
                .starts_with(&format!("{PREFIX}{}-", std::process::id()))
        );
        assert!(a.name().ends_with("-a") && b.name().ends_with("-b"));
        assert_eq!(a.mac("tk0"), Ok(mac_a));
        assert_eq!(b.mac("tk0"), Ok(mac_b));
        assert!(a.link_show("tk0").is_ok_and(|l| l.contains(" mtu 1400 ")));
        assert!(b.link_show("tk0").is_ok_and(|l| l.contains(" mtu 1500 ")));
        let neigh = a
            .ip(&["neigh", "show", "dev", "tk0"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            neigh.contains("198.18.250.2 lladdr 02:00:00:00:11:0b PERMANENT"),
            "{neigh}"
        );
        let v6 = b
            .ip(&["-o", "-6", "addr", "show", "dev", "tk0"])
            .unwrap_or_else(|e| panic!("{e}"));
        // Without duplicate address detection: usable at once, never "tentative".
        let line = v6.lines().find(|l| l.contains(" fd00:198:18:250::2/64 "));
        assert!(
            line.is_some_and(|l| l.contains(" nodad") && !l.contains("tentative")),
            "{v6}"
        );
        let ipv6_off = |ns: &Netns| {
            ns.run(|| fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6"))
                .map(|v| v.trim() == "1")
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(ipv6_off(a) && !ipv6_off(b));
        assert!(a.mac("lo").is_err(), "loopback has no Ethernet address");
        assert!(a.link_show("nothere0").is_err());

        // run, spawn and enter put the code in the namespace; the caller's thread stays or
        // comes back where it was.
        let home = current_netns();
        let in_a = a.run(current_netns);
        assert_ne!(in_a, home);
        assert_eq!(a.spawn(current_netns).join().ok(), Some(in_a.clone()));
        assert_ne!(b.run(current_netns), in_a);
        {
            let _in = a.enter().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(current_netns(), in_a);
        }
        assert_eq!(current_netns(), home);
        assert!(enter_netns("utkit-no-such-namespace").is_err());
        assert_eq!(current_netns(), home);
        let caught = std::panic::catch_unwind(|| a.run(|| panic!("inside")));
        assert!(caught.is_err(), "a panic inside is resumed");

        let (na, nb) = (a.name().to_owned(), b.name().to_owned());
        drop(pair);
        let left = names();
        assert!(!left.contains(&na) && !left.contains(&nb), "{left}");
    }

    /// Namespaces of processes that are gone are removed; this process's are not.
    #[test]
    fn stale_namespaces_are_removed() {
        if !netns_available("stale_namespaces_are_removed") {
            return;
        }
        // Above the kernel's largest pid (4194304), so never a running process.
        let stale =
            Netns::create(format!("{PREFIX}4000000000-0-a")).unwrap_or_else(|e| panic!("{e}"));
        let own = Netns::fresh(PREFIX, "own").unwrap_or_else(|e| panic!("{e}"));
        remove_stale(PREFIX);
        let left = names();
        assert!(!left.contains(stale.name()), "{left}");
        assert!(left.contains(own.name()), "{left}");
    }
}
