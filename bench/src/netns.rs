//! The benchmark's two network namespaces and their veth pair, deleted on drop, plus the
//! Ctrl-C flag that makes every loop end early so the drop runs.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const NETNS_DIR: &str = "/run/netns";
const PREFIX: &str = "utb-";
/// The veth interface name inside both namespaces.
pub const VETH: &str = "veth0";
/// Address of side a (the client).
pub const A4: &str = "198.18.0.1";
/// Address of side b (the server).
pub const B4: &str = "198.18.0.2";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM set the stop flag instead of killing the process.
pub fn install_stop_handler() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

/// Whether Ctrl-C (or SIGTERM) arrived.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

fn run(cmd: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot run `{cmd} {}`: {e}", args.join(" ")),
        )
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Deletes namespaces of earlier runs whose process is gone.
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
pub struct Netns {
    name: String,
    file: File,
}

impl Netns {
    /// Creates `utb-<pid>-<tag>` with its loopback up.
    pub fn create(tag: &str) -> io::Result<Self> {
        let name = format!("{PREFIX}{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let file = match File::open(format!("{NETNS_DIR}/{name}")) {
            Ok(f) => f,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                return Err(e);
            }
        };
        let ns = Self { name, file };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, for `setns` (valid while `self` lives).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `ip -n NAME ARGS`, returning its output.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// The MAC address of an interface.
    pub fn mac(&self, ifname: &str) -> io::Result<[u8; 6]> {
        let out = self.ip(&["-o", "link", "show", "dev", ifname])?;
        let hex = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| io::Error::other(format!("no link/ether in: {out}")))?;
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(hex.split(':')) {
            *byte = u8::from_str_radix(part, 16).map_err(io::Error::other)?;
        }
        Ok(mac)
    }

    fn wait_up(&self, ifname: &str) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.ip(&["-o", "link", "show", "dev", ifname])?;
            if out.contains("state UP") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{ifname} is not up after 5 s: {out}"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end too.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces `utb-<pid>-a` and `utb-<pid>-b` joined by a veth pair (`veth0` on both
/// sides, MTU 1500, 198.18.0.1/24 in a and .2 in b).
#[derive(Debug)]
pub struct Pair {
    /// The client's side.
    pub a: Netns,
    /// The server's side.
    pub b: Netns,
}

impl Pair {
    /// Creates and configures the pair (cleans up after itself on error).
    pub fn new() -> io::Result<Self> {
        remove_stale();
        let a = Netns::create("a")?;
        let b = Netns::create("b")?;
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
        ])?;
        for (ns, v4) in [(&a, A4), (&b, B4)] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", VETH])?;
            ns.ip(&["link", "set", VETH, "up"])?;
        }
        a.wait_up(VETH)?;
        b.wait_up(VETH)?;
        Ok(Self { a, b })
    }
}

/// Enters the network namespace `fd` on the calling thread.
pub fn enter(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is an open namespace file kept alive by a `Netns` that outlives the calling
    // thread's use of it; setns changes only this thread's network namespace.
    let r = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The machine description: CPU model, CPUs, kernel, memory, load average.
pub fn machine() -> crate::report::Machine {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} GiB", kb as f64 / 1_048_576.0),
        );
    crate::report::Machine {
        cpu_model,
        cpus: thread::available_parallelism().map_or(0, usize::from),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        memory,
        loadavg_start: read("/proc/loadavg").trim().to_owned(),
        loadavg_end: String::new(),
    }
}
