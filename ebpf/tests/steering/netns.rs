//! Privilege checks, network namespaces and veth pairs for the tests, removed on drop (also when
//! a test panics). Names are `utebpf-<pid>-<n>-<tag>`, so parallel tests and runs never collide,
//! and namespaces left behind by a killed run are removed by the next one.

use std::fs::{self, File};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const NETNS_DIR: &str = "/run/netns";
const PREFIX: &str = "utebpf-";

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Whether `test` may run: it needs root (the capabilities to load XDP programs and create
/// AF_XDP sockets, and `ip` for namespaces). Otherwise prints why and returns false, or panics
/// when `UTIPC_REQUIRE_NETNS=1`.
pub(crate) fn privileged(test: &str) -> bool {
    let Err(why) = check_privileges() else {
        return true;
    };
    let required = std::env::var("UTIPC_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: root is required (UTIPC_REQUIRE_NETNS=1) but {why}"
    );
    eprintln!("skipping {test}: {why} (set UTIPC_REQUIRE_NETNS=1 to fail instead)");
    false
}

fn check_privileges() -> Result<(), String> {
    let status = fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| format!("/proc/thread-self/status is unreadable ({e})"))?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("/proc/thread-self/status has no CapEff line")?;
    let has = |bit: u32| caps & (1 << bit) != 0;
    for (ok, name) in [
        (has(CAP_NET_ADMIN), "CAP_NET_ADMIN"),
        (has(CAP_NET_RAW), "CAP_NET_RAW"),
        (has(CAP_SYS_ADMIN) || has(CAP_BPF), "CAP_BPF"),
        (has(CAP_SYS_ADMIN) || has(CAP_PERFMON), "CAP_PERFMON"),
        (has(CAP_SYS_ADMIN), "CAP_SYS_ADMIN (for network namespaces)"),
    ] {
        if !ok {
            return Err(format!("the process lacks {name} (run the tests as root)"));
        }
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("iproute2's `ip` is not installed (apt-get install iproute2)".into()),
    }
}

/// Runs `ip ARGS` and returns its stdout, panicking with its stderr if it fails.
pub(crate) fn ip(args: &[&str]) -> String {
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
    /// Creates `utebpf-<pid>-<n>-<tag>` with its loopback up.
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

    /// The namespace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS` and returns its stdout.
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Moves the calling thread into the namespace (for a thread that will not leave it).
    pub(crate) fn enter(&self) {
        // SAFETY: the namespace file is open for as long as `self` lives; setns only changes
        // the calling thread's network namespace.
        let r = unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Runs `f` on a thread inside the namespace (sockets and interface indices it uses
    /// belong to the namespace).
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        thread::scope(|s| {
            s.spawn(|| {
                self.enter();
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// `ip -o link show dev IFNAME`.
    pub(crate) fn link_show(&self, ifname: &str) -> String {
        self.ip(&["-o", "link", "show", "dev", ifname])
    }

    /// Waits (bounded) until an interface's operational state is UP.
    pub(crate) fn wait_up(&self, ifname: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.link_show(ifname);
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

/// The veth interface name on both sides of a [`Pair`].
pub(crate) const VETH: &str = "veth0";
/// Addresses of the pair: `a` is 198.18.0.1 with MAC `A_MAC`, `b` is .2 with `B_MAC`.
pub(crate) const A4: [u8; 4] = [198, 18, 0, 1];
pub(crate) const B4: [u8; 4] = [198, 18, 0, 2];
pub(crate) const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub(crate) const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// Two namespaces joined by a veth pair named `veth0` on both sides, up, with static
/// neighbour entries (no ARP needed) and IPv6 off (no neighbour discovery noise).
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) a: Netns,
    pub(crate) b: Netns,
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip_text(addr: [u8; 4]) -> String {
    addr.iter().map(u8::to_string).collect::<Vec<_>>().join(".")
}

impl Pair {
    pub(crate) fn new() -> Self {
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
        for (ns, own4, own_mac, peer4, peer_mac) in
            [(&a, A4, A_MAC, B4, B_MAC), (&b, B4, B_MAC, A4, A_MAC)]
        {
            ns.run(|| {
                // IPv6 off: no router solicitations or MLD reports while counting frames.
                fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1").expect("disable IPv6");
            });
            ns.ip(&["link", "set", VETH, "address", &mac_text(own_mac)]);
            ns.ip(&["addr", "add", &format!("{}/24", ip_text(own4)), "dev", VETH]);
            ns.ip(&["link", "set", VETH, "up"]);
            ns.ip(&[
                "neigh",
                "replace",
                &ip_text(peer4),
                "lladdr",
                &mac_text(peer_mac),
                "dev",
                VETH,
                "nud",
                "permanent",
            ]);
        }
        a.wait_up(VETH);
        b.wait_up(VETH);
        Self { a, b }
    }
}
