//! Test support shared by utipc's integration tests (a dev-dependency only).
//!
//! * [`netns_available`] / [`skip_or_fail`]: tests that need root and iproute2 print why and
//!   pass without them, unless `UTIPC_REQUIRE_NETNS=1` (CI) turns that into a failure.
//! * [`Netns`], [`pair`] and [`Lan`]: named network namespaces joined by a veth pair, or by a
//!   bridge in a hub namespace; every name starts with the caller's prefix and the process id,
//!   addresses are in 198.18.0.0/15, and everything is deleted on drop (and stale ones of dead
//!   test processes at the first use).
//! * [`DaemonProc`]: a child process whose stderr lines are collected with arrival times.
//! * [`TempDir`].
//!
//! Every wait is bounded.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

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

/// Whether this test can create namespaces; prints why not and returns false (skip), or
/// panics instead when `UTIPC_REQUIRE_NETNS=1`.
pub fn netns_available(test: &str) -> bool {
    let Err(why) = check_privileges() else {
        return true;
    };
    skip_or_fail(test, &why);
    false
}

/// Prints why `test` is skipped, or panics when `UTIPC_REQUIRE_NETNS=1`.
pub fn skip_or_fail(test: &str, why: &str) {
    let required = std::env::var("UTIPC_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: network namespaces are required (UTIPC_REQUIRE_NETNS=1) but {why}"
    );
    eprintln!("skipping {test}: {why} (set UTIPC_REQUIRE_NETNS=1 to fail instead)");
}

/// Root-equivalent network privileges and iproute2.
///
/// # Errors
///
/// What is missing.
pub fn check_privileges() -> Result<(), String> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_NET_RAW: u32 = 13;
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status is unreadable ({e})"))?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("/proc/self/status has no CapEff line")?;
    for (bit, name) in [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
    ] {
        if caps & (1 << bit) == 0 {
            return Err(format!("the process lacks {name} (run the tests as root)"));
        }
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("iproute2's `ip` is not installed (apt-get install iproute2)".into()),
    }
}

/// Runs `ip ARGS`.
///
/// # Errors
///
/// Its stderr when it fails.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes namespaces named `<prefix><pid>-...` of test processes that no longer run.
pub fn remove_stale(prefix: &str) {
    let Ok(dir) = fs::read_dir("/run/netns") else {
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

/// A named namespace, deleted on drop (which also deletes the veth ends inside it).
#[derive(Debug)]
pub struct Netns(pub String);

impl Netns {
    /// Creates it, with `lo` up.
    ///
    /// # Errors
    ///
    /// The `ip` failure.
    pub fn create(name: String) -> Result<Self, String> {
        ip(&["netns", "add", &name])?;
        let ns = Self(name);
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n NS ARGS`.
    ///
    /// # Errors
    ///
    /// The `ip` failure.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NS PROGRAM`.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }

    /// Waits (bounded) until `dev` is operationally up.
    ///
    /// # Errors
    ///
    /// When it is not up within 5 s.
    pub fn wait_up(&self, dev: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = Command::new("ip")
                .args(["-n", &self.0, "-o", "link", "show", "dev", dev])
                .output()
                .map_err(|e| e.to_string())?;
            if String::from_utf8_lossy(&out.stdout).contains("state UP") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{dev} in {} did not come up within 5 s", self.0));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

static NEXT_NET: AtomicUsize = AtomicUsize::new(0);

fn next_net(prefix: &str) -> (usize, String) {
    static CLEAN: std::sync::Once = std::sync::Once::new();
    CLEAN.call_once(|| remove_stale(prefix));
    let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
    (n, format!("{prefix}{}-{n}", std::process::id()))
}

/// Two namespaces `<prefix><pid>-<n>-a` and `-b` joined by `veth0` (198.18.<n>.1/24 and
/// .2/24), both up.
///
/// # Errors
///
/// The `ip` failure.
pub fn pair(prefix: &str) -> Result<(Netns, Netns), String> {
    let (n, base) = next_net(prefix);
    let a = Netns::create(format!("{base}-a"))?;
    let b = Netns::create(format!("{base}-b"))?;
    a.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", &b.0,
    ])?;
    for (ns, host) in [(&a, 1), (&b, 2)] {
        ns.ip(&[
            "addr",
            "add",
            &format!("198.18.{}.{host}/24", n % 250),
            "dev",
            "veth0",
        ])?;
        ns.ip(&["link", "set", "veth0", "up"])?;
    }
    a.wait_up("veth0")?;
    b.wait_up("veth0")?;
    Ok((a, b))
}

/// `count` node namespaces on one Ethernet segment: each has `veth0` (198.18.<n>.<i+1>/24)
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
                "link", "add", &port, "type", "veth", "peer", "name", "veth0", "netns", &ns.0,
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
