//! Network namespaces and veth pairs for tests, cleaned up on drop (also when a test panics).
//!
//! A bearer is opened inside a namespace by a short-lived thread that enters it with
//! `setns(2)`: a socket belongs to the namespace it was created in for its whole life, so the
//! test thread can then drive bearers of several namespaces side by side. Names carry the
//! process id (`utdp-<pid>-<n>-<tag>`), so parallel tests and parallel runs never collide, and
//! namespaces left behind by a killed run are removed by the next one.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const NETNS_DIR: &str = "/run/netns";
const PREFIX: &str = "utdp-";

/// Whether this test can create namespaces; prints why not and returns false (skip), or
/// panics instead when `UTIPC_REQUIRE_NETNS=1`.
pub(crate) fn available(test: &str) -> bool {
    let Err(why) = check_privileges() else {
        return true;
    };
    let required = std::env::var("UTIPC_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: network namespaces are required (UTIPC_REQUIRE_NETNS=1) but {why}"
    );
    eprintln!("skipping {test}: {why} (set UTIPC_REQUIRE_NETNS=1 to fail instead)");
    false
}

fn check_privileges() -> Result<(), String> {
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

/// Runs `ip ARGS`, panicking with its stderr if it fails.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip {}`: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip ARGS` and returns its stdout.
fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip {}`: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes namespaces of earlier test processes that no longer run.
fn remove_stale() {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub(crate) struct Netns {
    name: String,
    file: File,
}

impl Netns {
    /// Creates `utdp-<pid>-<n>-<tag>` with its loopback up.
    pub(crate) fn create(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static CLEAN: Once = Once::new();
        CLEAN.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        let path = format!("{NETNS_DIR}/{name}");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                panic!("cannot open {path}: {e}");
            }
        };
        let ns = Self { name, file };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace file's descriptor, for `setns` on a thread the caller spawns (valid while
    /// `self` lives).
    pub(crate) fn file_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// The namespace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub(crate) fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs `f` on a thread inside the namespace (sockets it creates stay in the namespace).
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let fd = self.file.as_raw_fd();
        thread::scope(|s| {
            let handle = s.spawn(move || {
                // SAFETY: `fd` is the open namespace file owned by `self`, which outlives this
                // scoped thread; setns only changes this thread's network namespace.
                let r = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            });
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The MAC address of an interface, from `ip link`.
    pub(crate) fn mac(&self, ifname: &str) -> [u8; 6] {
        let out = ip_output(&["-n", &self.name, "-o", "link", "show", "dev", ifname]);
        let hex = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no link/ether in `ip link` output: {out}"));
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(hex.split(':')) {
            *byte = u8::from_str_radix(part, 16).unwrap_or_else(|e| panic!("{hex}: {e}"));
        }
        mac
    }

    /// Waits (bounded) until an interface's operational state is UP, so the kernel has
    /// activated its queue and frames are not silently dropped.
    pub(crate) fn wait_up(&self, ifname: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = ip_output(&["-n", &self.name, "-o", "link", "show", "dev", ifname]);
            if out.contains("state UP") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ifname} in {} is not up after 5 s: {out}",
                self.name
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes its end of every veth pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair named `veth0` on both sides, up, with 198.18.0.1/24 and
/// fd00:198:18::1/64 in `a` and .2 / ::2 in `b` (IPv6 without duplicate address detection, so
/// the addresses work at once).
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) a: Netns,
    pub(crate) b: Netns,
}

/// IPv4 addresses of the pair.
pub(crate) const A4: &str = "198.18.0.1";
pub(crate) const B4: &str = "198.18.0.2";
/// IPv6 addresses of the pair.
pub(crate) const A6: &str = "fd00:198:18::1";
pub(crate) const B6: &str = "fd00:198:18::2";
/// The veth interface name on both sides.
pub(crate) const VETH: &str = "veth0";

impl Pair {
    /// Sets the pair up; `mtu_a`/`mtu_b` change the two ends' MTUs when given.
    pub(crate) fn new(mtu_a: Option<u32>, mtu_b: Option<u32>) -> Self {
        let a = Netns::create("a");
        let b = Netns::create("b");
        a.ip(&[
            "link",
            "add",
            VETH,
            "type",
            "veth",
            "peer",
            "name",
            VETH,
            "netns",
            b.name(),
        ]);
        for (ns, v4, v6, mtu) in [(&a, A4, A6, mtu_a), (&b, B4, B6, mtu_b)] {
            if let Some(mtu) = mtu {
                ns.ip(&["link", "set", VETH, "mtu", &mtu.to_string()]);
            }
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", VETH]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", VETH, "nodad"]);
            ns.ip(&["link", "set", VETH, "up"]);
        }
        a.wait_up(VETH);
        b.wait_up(VETH);
        Self { a, b }
    }
}
