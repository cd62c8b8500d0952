//! Intra-node round trip (issue 6): two applications on one node exchanging datagrams through
//! utipcd's shared-memory rings, against a Unix datagram socket pair and kernel UDP on
//! loopback, in one run.
//!
//! utipcd runs as a child process (the `utipcd` binary next to this one, or `--utipcd`) in a
//! network namespace of its own with one Ethernet bearer on a veth pair whose both ends stay
//! in that namespace: the bearer only gives the node its address, no frame of the benchmark
//! crosses it. The two applications are two threads of this process, each with its own
//! attachment ([`Client::attach_with`]: its own attach socket, memfd segment, rings and
//! doorbell), exactly as two processes would have; shared memory does not care which.
//!
//! The echo side binds an RDM socket to {18888,17} (node scope) and returns every datagram to
//! its sender's socket; the pinger finds it by anycast once, then sends to its socket address
//! (unicast) and waits for the echo, one message outstanding. RTT is taken with
//! [`Instant`] around the send and the matching receive, into an HdrHistogram.

use std::io::{self, BufRead as _, BufReader, ErrorKind};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use utipc_dataplane::engine::{CpuList, pin_current_thread};
use utipc_shm_api::{
    Addr, Client, ClientOptions, Error as ApiError, IdleMode, Message, Scope, ServiceAddr,
    ServiceRange, Socket, SocketAddr, SocketKind,
};

use crate::netns::{self, Netns};
use crate::png;
use crate::report::{Cell, Report, Target, fmt};
use crate::stats::Recorder;
use crate::transport::MAX_UDP_PAYLOAD;

/// The service the echo side binds (instance [`INSTANCE`]).
pub const SERVICE: u32 = 18_888;
/// The echo side's service instance.
pub const INSTANCE: u32 = 17;
/// How long a round trip may take before it counts as lost.
const REPLY_TIMEOUT: Duration = Duration::from_millis(200);
/// How often a blocked echo side looks at the stop flag.
const ECHO_POLL: Duration = Duration::from_millis(50);
/// Receive buffer of the kernel baselines.
const BUF: usize = 70_000;
/// How long utipcd may take to start and commit its address.
const DAEMON_START: Duration = Duration::from_secs(15);

/// What is measured, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum IntraTransport {
    /// Through utipcd, the daemon and both applications spinning (the echo side's strategy:
    /// `--spin-echo`); applications sharing a CPU yield it between polls.
    UtipcSpin,
    /// Through utipcd, daemon and both applications with the backoff strategy.
    UtipcBackoff,
    /// AF_UNIX SOCK_DGRAM socket pair, blocking receive on both sides (the reference).
    UnixDgram,
    /// The same socket pair, both sides busy-polling with non-blocking receives.
    UnixDgramSpin,
    /// Kernel UDP on 127.0.0.1, blocking receive on both sides.
    KernelUdp,
}

impl IntraTransport {
    /// Every transport, in report order.
    pub const ALL: [Self; 5] = [
        Self::UtipcSpin,
        Self::UtipcBackoff,
        Self::UnixDgram,
        Self::UnixDgramSpin,
        Self::KernelUdp,
    ];

    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::UtipcSpin => "utipc-spin",
            Self::UtipcBackoff => "utipc-backoff",
            Self::UnixDgram => "unix-dgram",
            Self::UnixDgramSpin => "unix-dgram-spin",
            Self::KernelUdp => "kernel-udp",
        }
    }

    /// What it means, for the legend.
    pub fn describe(self) -> &'static str {
        match self {
            Self::UtipcSpin => {
                "utipc RDM datagrams through utipcd, daemon and both applications spinning"
            }
            Self::UtipcBackoff => "utipc RDM datagrams through utipcd, backoff strategy everywhere",
            Self::UnixDgram => "AF_UNIX SOCK_DGRAM socket pair, blocking (the reference)",
            Self::UnixDgramSpin => "AF_UNIX SOCK_DGRAM socket pair, both sides busy-polling",
            Self::KernelUdp => "kernel UDP on 127.0.0.1, blocking",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Where the threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus {
    /// The measuring side.
    pub pinger: usize,
    /// The echo side.
    pub echo: usize,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct IntraConfig {
    /// Transports, in order.
    pub transports: Vec<IntraTransport>,
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Warm-up round trips per cell (not recorded).
    pub warmup: u64,
    /// Timed round trips per cell (fewer if the cell limit strikes first).
    pub count: u64,
    /// Hard limit of one cell.
    pub cell_timeout: Duration,
    /// The utipcd binary.
    pub utipcd: PathBuf,
    /// CPUs of the utipc applications.
    pub utipc_cpus: Cpus,
    /// utipcd's engine CPU.
    pub daemon_cpu: usize,
    /// CPUs of the kernel baselines.
    pub kernel_cpus: Cpus,
    /// How the echo application waits in the spin run.
    pub spin_echo: IdleMode,
    /// utipcd's idle strategy in both runs (`None`: spin, resp. backoff).
    pub daemon_idle: Option<IdleMode>,
}

/// `utipc-bench intra`: the intra-node round trip through utipcd against Unix datagram
/// sockets and kernel UDP on loopback (needs root for the namespace of utipcd's bearer).
#[derive(Debug, Clone, clap::Args)]
pub struct IntraArgs {
    /// Transports, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = IntraTransport::ALL)]
    pub transports: Vec<IntraTransport>,
    /// Message sizes in bytes, comma-separated (at most 66,000: TIPC's largest message).
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 256, 1024, 4096, 16_384, 65_536])]
    pub sizes: Vec<usize>,
    /// Warm-up round trips per cell.
    #[arg(long, default_value_t = 2000)]
    pub warmup: u64,
    /// Timed round trips per cell.
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
    /// Hard time limit of each cell in seconds (the count is cut short, and says so).
    #[arg(long, default_value_t = 3.0)]
    pub cell_timeout: f64,
    /// A CI smoke run: sizes 64 and 65,536, 100 warm-up + 500 timed round trips, 1 s cells.
    #[arg(long)]
    pub quick: bool,
    /// The utipcd binary (default: `utipcd` next to this program, or one directory up).
    #[arg(long, value_name = "PATH")]
    pub utipcd: Option<PathBuf>,
    /// CPUs of the two utipc applications: pinger,echo.
    #[arg(long, value_delimiter = ',', default_values_t = [0usize, 0])]
    pub utipc_cpus: Vec<usize>,
    /// CPU of utipcd's engine.
    #[arg(long, default_value_t = 1)]
    pub daemon_cpu: usize,
    /// CPUs of the two sides of the kernel baselines: pinger,echo.
    #[arg(long, value_delimiter = ',', default_values_t = [0usize, 1])]
    pub kernel_cpus: Vec<usize>,
    /// utipcd's engine idle strategy in both utipc runs (default: spin for utipc-spin,
    /// backoff for utipc-backoff).
    #[arg(long, value_name = "spin|backoff|block")]
    pub daemon_idle: Option<String>,
    /// How the echo application waits in the utipc-spin run: spin, backoff or block. Two
    /// spinning applications on one CPU (the default `--utipc-cpus 0,0`) receive without
    /// blocking and yield the CPU between polls.
    #[arg(long, default_value = "spin")]
    pub spin_echo: IdleMode,
    /// Directory for intra.md, intra.json and intra-rtt-p50.png.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

impl IntraArgs {
    /// The configuration these arguments describe.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong (CPU lists, sizes, no utipcd binary).
    pub fn config(&self) -> Result<IntraConfig, String> {
        let two = |v: &[usize], what: &str| match v {
            [pinger, echo] => Ok(Cpus {
                pinger: *pinger,
                echo: *echo,
            }),
            _ => Err(format!("--{what} takes two CPUs: pinger,echo")),
        };
        let (sizes, warmup, count, cell) = if self.quick {
            (vec![64, 65_536], 100, 500, 1.0)
        } else {
            (
                self.sizes.clone(),
                self.warmup,
                self.count,
                self.cell_timeout,
            )
        };
        if let Some(s) = sizes
            .iter()
            .find(|&&s| s > utipc_shm_api::records::MAX_DATA)
        {
            return Err(format!(
                "size {s} is larger than TIPC's largest message ({} bytes)",
                utipc_shm_api::records::MAX_DATA
            ));
        }
        let needs_daemon = self
            .transports
            .iter()
            .any(|t| matches!(t, IntraTransport::UtipcSpin | IntraTransport::UtipcBackoff));
        let utipcd = if needs_daemon {
            find_utipcd(self.utipcd.as_deref())?
        } else {
            PathBuf::new()
        };
        Ok(IntraConfig {
            transports: self.transports.clone(),
            sizes,
            warmup,
            count,
            cell_timeout: Duration::from_secs_f64(cell.max(0.1)),
            utipcd,
            utipc_cpus: two(&self.utipc_cpus, "utipc-cpus")?,
            daemon_cpu: self.daemon_cpu,
            kernel_cpus: two(&self.kernel_cpus, "kernel-cpus")?,
            spin_echo: self.spin_echo,
            daemon_idle: self
                .daemon_idle
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| format!("--daemon-idle {e}"))?,
        })
    }
}

/// The utipcd binary: `explicit`, else `$UTIPCD`, else `utipcd` next to this executable or in
/// its parent directory (test executables live in `target/<profile>/deps`).
///
/// # Errors
///
/// Where it looked and how to build it.
pub fn find_utipcd(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("--utipcd {}: no such file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("UTIPCD").map(PathBuf::from)
        && p.is_file()
    {
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut tried = Vec::new();
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join("utipcd");
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    Err(format!(
        "no utipcd binary (looked at {}): build it into the same target directory with \
         `cargo build --release -p utipc-control`, or pass --utipcd PATH",
        tried.join(", ")
    ))
}

// ---- utipcd as a child process ----

/// A utipcd child in its own network namespace, with a run directory of its own; stopped
/// (SIGTERM, then SIGKILL after 3 s) and cleaned up on drop.
#[derive(Debug)]
pub struct DaemonChild {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    run_dir: PathBuf,
    /// Deleted (with its veth pair) after the daemon stopped: fields drop after `drop`.
    _ns: Netns,
}

impl DaemonChild {
    /// Starts `utipcd --idle IDLE --cpu CPU` and waits until its address is committed.
    ///
    /// # Errors
    ///
    /// The namespace could not be set up, the daemon did not start, or it did not commit an
    /// address within 15 s (its log is in the message).
    pub fn start(utipcd: &Path, idle: &str, cpu: usize, tag: &str) -> io::Result<Self> {
        let ns = Netns::create(tag)?;
        ns.ip(&[
            "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
        ])?;
        for dev in ["veth0", "veth1"] {
            ns.ip(&["link", "set", dev, "up"])?;
        }
        let run_dir =
            std::env::temp_dir().join(format!("utipc-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(utipcd)
            .args(["--id", "utb-intra", "--bearer", "eth:veth0", "--idle", idle])
            .args(["--cpu", &cpu.to_string()])
            .arg("--run-dir")
            .arg(&run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", utipcd.display()))
        })?;
        let (tx, lines) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let mut d = Self {
            child,
            lines,
            log: Vec::new(),
            run_dir,
            _ns: ns,
        };
        d.wait_for(" committed", DAEMON_START)?;
        Ok(d)
    }

    /// The run directory clients attach through.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The daemon's log line containing `what`, if it printed one.
    pub fn log_line(&mut self, what: &str) -> Option<String> {
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
        self.log.iter().find(|l| l.contains(what)).cloned()
    }

    fn wait_for(&mut self, what: &str, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.iter().any(|l| l.contains(what)) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let fail = |log: &[String], why: &str| {
                io::Error::other(format!("utipcd {why}; its log:\n{}", log.join("\n")))
            };
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(l) => self.log.push(l),
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    return Err(fail(&self.log, "exited"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if left.is_zero() || netns::stopped() {
                        return Err(fail(
                            &self.log,
                            &format!("printed no {what:?} within {timeout:?}"),
                        ));
                    }
                }
            }
        }
    }
}

impl Drop for DaemonChild {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
        // `self.ns` is deleted after this (a field), with its veth pair.
    }
}

// ---- the measurement ----

fn pin(cpu: usize) -> io::Result<()> {
    pin_current_thread(&CpuList::single(cpu))
        .map_err(|e| io::Error::other(format!("pin to cpu{cpu}: {e}")))
}

fn seq_of(buf: &[u8]) -> Option<u64> {
    buf.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
}

/// The result of one size: histogram, round trips lost, whether the cell limit cut it short.
struct Measured {
    rec: Recorder,
    lost: u64,
    timed_out: bool,
}

/// Closed loop: `warmup + count` round trips of `size` bytes, one outstanding. `rt` sends
/// the message (sequence number in its first 8 bytes) and waits for its echo: `Ok(false)` when
/// none came back within [`REPLY_TIMEOUT`].
fn closed_loop(
    size: usize,
    cfg: &IntraConfig,
    seq: &mut u64,
    mut rt: impl FnMut(&[u8], u64) -> io::Result<bool>,
) -> io::Result<Measured> {
    let mut msg = vec![0xa5u8; size.max(8)];
    let mut m = Measured {
        rec: Recorder::new(),
        lost: 0,
        timed_out: false,
    };
    let deadline = Instant::now() + cfg.cell_timeout;
    for k in 0..cfg.warmup + cfg.count {
        if Instant::now() > deadline || netns::stopped() {
            m.timed_out = true;
            break;
        }
        let i = *seq;
        *seq += 1;
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let t0 = Instant::now();
        if rt(&msg, i)? {
            let rtt = t0.elapsed();
            if k >= cfg.warmup {
                m.rec.record(rtt);
            }
        } else {
            m.lost += 1;
        }
    }
    Ok(m)
}

fn api_err(e: ApiError) -> io::Error {
    io::Error::from(e)
}

/// How an application of the utipc run waits.
#[derive(Debug, Clone, Copy)]
struct AppWait {
    /// The client's idle strategy (how blocking calls wait).
    idle: IdleMode,
    /// Receive by polling without blocking and yielding the core between polls: for two
    /// spinning applications that share one core (a spinning wait would keep the other off
    /// the core until the scheduler tick, ~4 ms).
    yielding: bool,
    cpu: usize,
}

/// Attaches one application to the daemon of `run_dir` and opens its RDM socket.
fn attach_app(run_dir: &Path, w: AppWait) -> io::Result<(Client, Socket)> {
    pin(w.cpu)?;
    let client = Client::attach_with(&ClientOptions {
        run_dir: Some(run_dir.to_owned()),
        idle: w.idle,
    })
    .map_err(api_err)?;
    let sock = client.socket(SocketKind::Rdm).map_err(api_err)?;
    sock.set_nonblocking(w.yielding);
    Ok((client, sock))
}

/// The next message within `timeout` (`None`: nothing came), waiting as `w` says.
fn recv_within(sock: &Socket, w: AppWait, timeout: Duration) -> io::Result<Option<Message>> {
    if !w.yielding {
        sock.set_read_timeout(Some(timeout));
        return match sock.recv() {
            Ok(m) => Ok(Some(m)),
            Err(ApiError::TimedOut) => Ok(None),
            Err(e) => Err(api_err(e)),
        };
    }
    let t0 = Instant::now();
    loop {
        match sock.recv() {
            Ok(m) => return Ok(Some(m)),
            Err(ApiError::WouldBlock) if t0.elapsed() < timeout => thread::yield_now(),
            Err(ApiError::WouldBlock) => return Ok(None),
            Err(e) => return Err(api_err(e)),
        }
    }
}

/// Sends a datagram; a non-blocking socket that finds the destination congested retries
/// (yielding) for up to [`REPLY_TIMEOUT`].
fn send_within(sock: &Socket, to: impl Into<Addr> + Copy, data: &[u8]) -> io::Result<()> {
    let t0 = Instant::now();
    loop {
        match sock.send_to(to, data) {
            Err(ApiError::WouldBlock) if t0.elapsed() < REPLY_TIMEOUT => thread::yield_now(),
            r => return r.map_err(api_err),
        }
    }
}

/// The utipc echo application: its own attachment, an RDM socket bound to the service,
/// every datagram returned to its sender until `stop`.
fn utipc_echo(run_dir: &Path, w: AppWait, stop: &AtomicBool) -> io::Result<()> {
    let (_client, sock) = attach_app(run_dir, w)?;
    sock.bind(ServiceRange::single(SERVICE, INSTANCE), Scope::Node)
        .map_err(api_err)?;
    while !stop.load(Ordering::Relaxed) && !netns::stopped() {
        if let Some(m) = recv_within(&sock, w, ECHO_POLL)?
            && m.error.is_none()
        {
            send_within(&sock, m.from, &m.data)?;
        }
    }
    Ok(())
}

/// Waits on `sock` for the echo of `seq`: false if it did not come within [`REPLY_TIMEOUT`].
fn utipc_await(sock: &Socket, w: AppWait, seq: u64) -> io::Result<bool> {
    let t0 = Instant::now();
    loop {
        let left = REPLY_TIMEOUT.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return Ok(false);
        }
        match recv_within(sock, w, left)? {
            Some(m) if m.error.is_none() && seq_of(&m.data) == Some(seq) => return Ok(true),
            Some(_) => {}
            None => return Ok(false),
        }
    }
}

/// The utipc pinger: finds the echo by anycast, then measures unicast round trips.
fn utipc_pinger(
    run_dir: &Path,
    w: AppWait,
    cfg: &IntraConfig,
    t: IntraTransport,
) -> io::Result<Vec<Cell>> {
    let (_client, sock) = attach_app(run_dir, w)?;
    // The echo binds in its own time: anycast a hello until it answers; its answer names the
    // socket to send to from then on.
    let service = ServiceAddr::new(SERVICE, INSTANCE);
    let t0 = Instant::now();
    let mut hello = 1u64 << 63;
    let echo: SocketAddr = loop {
        if t0.elapsed() > Duration::from_secs(10) || netns::stopped() {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "the echo application did not answer within 10 s",
            ));
        }
        match sock.send_to(service, &hello.to_le_bytes()) {
            Ok(()) => {
                if let Some(m) = recv_within(&sock, w, Duration::from_millis(100))?
                    && seq_of(&m.data) == Some(hello)
                {
                    break m.from;
                }
            }
            // Not bound yet (no route), or congested: try again shortly.
            Err(ApiError::Status(_) | ApiError::WouldBlock) => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(api_err(e)),
        }
        hello += 1;
    };
    let mut seq = 0u64;
    let mut cells = Vec::new();
    for &size in &cfg.sizes {
        if netns::stopped() {
            break;
        }
        let r = closed_loop(size, cfg, &mut seq, |msg, i| {
            send_within(&sock, echo, msg)?;
            utipc_await(&sock, w, i)
        });
        cells.push(cell_of(t, size, size, r, cfg));
    }
    Ok(cells)
}

/// Runs one utipc transport: a utipcd child, the echo and the pinger applications.
fn run_utipc(t: IntraTransport, cfg: &IntraConfig, notes: &mut Vec<(String, String)>) -> Vec<Cell> {
    let spin = t == IntraTransport::UtipcSpin;
    let (daemon_idle, pinger_idle, echo_idle) = if spin {
        (IdleMode::Spin, IdleMode::Spin, cfg.spin_echo)
    } else {
        (IdleMode::Backoff, IdleMode::Backoff, IdleMode::Backoff)
    };
    let daemon_idle = idle_name(cfg.daemon_idle.unwrap_or(daemon_idle));
    // Spinning applications on one core must yield to each other; backoff yields by itself.
    let shared = cfg.utipc_cpus.pinger == cfg.utipc_cpus.echo;
    let pinger = AppWait {
        idle: pinger_idle,
        yielding: shared && pinger_idle == IdleMode::Spin,
        cpu: cfg.utipc_cpus.pinger,
    };
    let echo = AppWait {
        idle: echo_idle,
        yielding: shared && echo_idle == IdleMode::Spin,
        cpu: cfg.utipc_cpus.echo,
    };
    let tag = t.name().trim_start_matches("utipc-").to_owned();
    let mut daemon = match DaemonChild::start(&cfg.utipcd, daemon_idle, cfg.daemon_cpu, &tag) {
        Ok(d) => d,
        Err(e) => return failed(t, cfg, &format!("utipcd did not start: {e}")),
    };
    let engine = daemon
        .log_line("engine:")
        .and_then(|l| l.split_once("utipcd: ").map(|(_, r)| r.to_owned()))
        .unwrap_or_default();
    let how = |w: AppWait| {
        format!(
            "{}{} on cpu{}",
            idle_name(w.idle),
            if w.yielding {
                " (non-blocking receive, sched_yield between polls)"
            } else {
                ""
            },
            w.cpu
        )
    };
    notes.push((
        t.name().to_owned(),
        format!(
            "utipcd --idle {daemon_idle} --cpu {} ({engine}); pinger {}, echo {}",
            cfg.daemon_cpu,
            how(pinger),
            how(echo)
        ),
    ));
    let run_dir = daemon.run_dir().to_owned();
    let stop = AtomicBool::new(false);
    let (p, e) = thread::scope(|s| {
        let echo = s.spawn(|| utipc_echo(&run_dir, echo, &stop));
        let pinger = s.spawn(|| utipc_pinger(&run_dir, pinger, cfg, t));
        let p = pinger
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the pinger panicked")));
        stop.store(true, Ordering::Relaxed);
        let e = echo
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the echo side panicked")));
        (p, e)
    });
    drop(daemon);
    finish(t, cfg, p, e)
}

fn idle_name(i: IdleMode) -> &'static str {
    match i {
        IdleMode::Spin => "spin",
        IdleMode::Backoff => "backoff",
        IdleMode::Block => "block",
    }
}

/// Pinger results and the echo side's outcome into cells.
fn finish(
    t: IntraTransport,
    cfg: &IntraConfig,
    pinger: io::Result<Vec<Cell>>,
    echo: io::Result<()>,
) -> Vec<Cell> {
    match (pinger, echo) {
        (Ok(mut cells), echo) => {
            if let Err(e) = echo {
                for c in &mut cells {
                    let note = c.note.take().map(|n| format!("{n}; ")).unwrap_or_default();
                    c.note = Some(format!("{note}echo side failed: {e}"));
                }
            }
            cells
        }
        (Err(e), Ok(())) => failed(t, cfg, &e.to_string()),
        (Err(e), Err(echo)) => failed(t, cfg, &format!("{e} (echo side: {echo})")),
    }
}

fn cell_of(
    t: IntraTransport,
    size: usize,
    payload: usize,
    r: io::Result<Measured>,
    cfg: &IntraConfig,
) -> Cell {
    let mut cell = Cell {
        transport: t.name().to_owned(),
        size,
        payload,
        ..Cell::default()
    };
    let mut notes = Vec::new();
    if payload != size {
        notes.push(format!(
            "{payload} bytes sent: the largest UDP payload over IPv4"
        ));
    }
    match r {
        Ok(m) => {
            cell.rtt = m.rec.summary();
            cell.rtt_lost = m.lost;
            if m.timed_out {
                notes.push(format!(
                    "stopped by the {:?} cell limit after {} timed round trips",
                    cfg.cell_timeout,
                    m.rec.len()
                ));
            }
        }
        Err(e) => notes.push(format!("failed: {e}")),
    }
    if !notes.is_empty() {
        cell.note = Some(notes.join("; "));
    }
    eprintln!(
        "  {:16} {size:6} B: p50 {} µs, p99 {} µs{}",
        t.name(),
        cell.rtt.map_or("–".to_owned(), |r| fmt(r.p50_us)),
        cell.rtt.map_or("–".to_owned(), |r| fmt(r.p99_us)),
        cell.note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    cell
}

fn failed(t: IntraTransport, cfg: &IntraConfig, why: &str) -> Vec<Cell> {
    eprintln!("  {}: not run: {why}", t.name());
    cfg.sizes
        .iter()
        .map(|&size| Cell {
            transport: t.name().to_owned(),
            size,
            note: Some(format!("not run: {why}")),
            ..Cell::default()
        })
        .collect()
}

/// A datagram socket of the kernel baselines (Unix or UDP), blocking or busy-polling.
trait Dgram: Send + Sync {
    fn send_dgram(&self, b: &[u8]) -> io::Result<usize>;
    fn recv_dgram(&self, b: &mut [u8]) -> io::Result<usize>;
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    fn set_nb(&self, on: bool) -> io::Result<()>;
}

impl Dgram for UnixDatagram {
    fn send_dgram(&self, b: &[u8]) -> io::Result<usize> {
        self.send(b)
    }
    fn recv_dgram(&self, b: &mut [u8]) -> io::Result<usize> {
        self.recv(b)
    }
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
    fn set_nb(&self, on: bool) -> io::Result<()> {
        self.set_nonblocking(on)
    }
}

impl Dgram for UdpSocket {
    fn send_dgram(&self, b: &[u8]) -> io::Result<usize> {
        self.send(b)
    }
    fn recv_dgram(&self, b: &mut [u8]) -> io::Result<usize> {
        self.recv(b)
    }
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
    fn set_nb(&self, on: bool) -> io::Result<()> {
        self.set_nonblocking(on)
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Sends one datagram, retrying (bounded) while the socket has no room.
fn send_all(s: &dyn Dgram, b: &[u8]) -> io::Result<()> {
    let t0 = Instant::now();
    loop {
        match s.send_dgram(b) {
            Ok(_) => return Ok(()),
            Err(e) if transient(&e) && t0.elapsed() < REPLY_TIMEOUT => std::hint::spin_loop(),
            Err(e) => return Err(e),
        }
    }
}

/// The echo side of a kernel baseline.
fn kernel_echo(s: &dyn Dgram, spin: bool, cpu: usize, stop: &AtomicBool) -> io::Result<()> {
    pin(cpu)?;
    s.set_nb(spin)?;
    if !spin {
        s.set_timeout(Some(ECHO_POLL))?;
    }
    let mut buf = vec![0u8; BUF];
    let mut idle = 0u32;
    loop {
        match s.recv_dgram(&mut buf) {
            Ok(n) => send_all(s, &buf[..n])?,
            Err(e) if transient(&e) => {
                idle = idle.wrapping_add(1);
                // A spinning echo looks at the flag every 4096 empty polls.
                if (!spin || idle.is_multiple_of(4096))
                    && (stop.load(Ordering::Relaxed) || netns::stopped())
                {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e),
        }
    }
}

/// The pinger of a kernel baseline.
fn kernel_pinger(
    s: &dyn Dgram,
    spin: bool,
    cpu: usize,
    cfg: &IntraConfig,
    t: IntraTransport,
    max: usize,
) -> io::Result<Vec<Cell>> {
    pin(cpu)?;
    s.set_nb(spin)?;
    let mut buf = vec![0u8; BUF];
    let mut seq = 0u64;
    let mut cells = Vec::new();
    for &size in &cfg.sizes {
        if netns::stopped() {
            break;
        }
        let payload = size.min(max);
        let r = closed_loop(payload, cfg, &mut seq, |msg, i| {
            send_all(s, msg)?;
            let t0 = Instant::now();
            loop {
                let left = REPLY_TIMEOUT.saturating_sub(t0.elapsed());
                if left.is_zero() {
                    return Ok(false);
                }
                if !spin {
                    s.set_timeout(Some(left))?;
                }
                match s.recv_dgram(&mut buf) {
                    Ok(n) if seq_of(buf.get(..n).unwrap_or(&[])) == Some(i) => return Ok(true),
                    Ok(_) => {}
                    Err(e) if transient(&e) => std::hint::spin_loop(),
                    Err(e) => return Err(e),
                }
            }
        });
        cells.push(cell_of(t, size, payload, r, cfg));
    }
    Ok(cells)
}

/// The pinger's socket, the echo's, and the largest payload they carry.
type DgramPair = (Box<dyn Dgram>, Box<dyn Dgram>, usize);

/// Runs one kernel baseline: a socket pair (Unix) or two connected UDP sockets on loopback.
fn run_kernel(
    t: IntraTransport,
    cfg: &IntraConfig,
    notes: &mut Vec<(String, String)>,
) -> Vec<Cell> {
    let spin = t == IntraTransport::UnixDgramSpin;
    let pair: io::Result<DgramPair> = match t {
        IntraTransport::KernelUdp => (|| {
            let a = UdpSocket::bind("127.0.0.1:0")?;
            let b = UdpSocket::bind("127.0.0.1:0")?;
            a.connect(b.local_addr()?)?;
            b.connect(a.local_addr()?)?;
            Ok((
                Box::new(a) as Box<dyn Dgram>,
                Box::new(b) as Box<dyn Dgram>,
                MAX_UDP_PAYLOAD,
            ))
        })(),
        _ => UnixDatagram::pair().map(|(a, b)| {
            (
                Box::new(a) as Box<dyn Dgram>,
                Box::new(b) as Box<dyn Dgram>,
                usize::MAX,
            )
        }),
    };
    let (a, b, max) = match pair {
        Ok(p) => p,
        Err(e) => return failed(t, cfg, &format!("cannot open the sockets: {e}")),
    };
    let how = if spin {
        "both sides busy-poll (MSG_DONTWAIT)"
    } else {
        "blocking receive on both sides"
    };
    notes.push((
        t.name().to_owned(),
        format!(
            "{how}; pinger on cpu{}, echo on cpu{}",
            cfg.kernel_cpus.pinger, cfg.kernel_cpus.echo
        ),
    ));
    let stop = AtomicBool::new(false);
    let (pinger, echo) = thread::scope(|s| {
        let echo = s.spawn(|| kernel_echo(b.as_ref(), spin, cfg.kernel_cpus.echo, &stop));
        let pinger =
            s.spawn(|| kernel_pinger(a.as_ref(), spin, cfg.kernel_cpus.pinger, cfg, t, max));
        let p = pinger
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the pinger panicked")));
        stop.store(true, Ordering::Relaxed);
        let e = echo
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the echo side panicked")));
        (p, e)
    });
    finish(t, cfg, pinger, echo)
}

/// Runs every transport of `cfg` in order; returns the cells and a line per transport saying
/// how it ran.
pub fn run(cfg: &IntraConfig) -> (Vec<Cell>, Vec<(String, String)>) {
    let mut cells = Vec::new();
    let mut notes = Vec::new();
    for &t in &cfg.transports {
        if netns::stopped() {
            break;
        }
        eprintln!("{}:", t.name());
        cells.extend(match t {
            IntraTransport::UtipcSpin | IntraTransport::UtipcBackoff => {
                run_utipc(t, cfg, &mut notes)
            }
            _ => run_kernel(t, cfg, &mut notes),
        });
    }
    (cells, notes)
}

// ---- the report ----

fn p50(r: &Report, t: IntraTransport, size: usize) -> Option<f64> {
    r.cell(t.name(), size)?.rtt.map(|x| x.p50_us)
}

fn sizes(r: &Report) -> Vec<usize> {
    let mut s: Vec<usize> = r.cells.iter().map(|c| c.size).collect();
    s.sort_unstable();
    s.dedup();
    s
}

fn present(r: &Report) -> Vec<IntraTransport> {
    IntraTransport::ALL
        .into_iter()
        .filter(|t| r.cells.iter().any(|c| c.transport == t.name()))
        .collect()
}

/// The targets at every size: utipc-spin p50 ≤ 0.1× the Unix socket pair's
/// (blocking: what applications use), and utipc-backoff p50 within 2× of utipc-spin's.
pub fn targets(r: &Report) -> Vec<Target> {
    let mut out = Vec::new();
    let check = |what: String, lhs: Option<f64>, factor: f64, rhs: Option<f64>| {
        let (measured, met) = match (lhs, rhs) {
            (Some(l), Some(b)) if b > 0.0 => (
                format!(
                    "{} µs vs bound {} µs (≤ {factor}× {}; ratio {:.3}×)",
                    fmt(l),
                    fmt(factor * b),
                    fmt(b),
                    l / b
                ),
                Some(l <= factor * b),
            ),
            _ => ("not measured".to_owned(), None),
        };
        Target {
            what,
            measured,
            met,
        }
    };
    for size in sizes(r) {
        out.push(check(
            format!("{size} B: utipc-spin p50 ≤ 0.1× unix-dgram"),
            p50(r, IntraTransport::UtipcSpin, size),
            0.1,
            p50(r, IntraTransport::UnixDgram, size),
        ));
    }
    for size in sizes(r) {
        out.push(check(
            format!("{size} B: utipc-backoff p50 ≤ 2× utipc-spin"),
            p50(r, IntraTransport::UtipcBackoff, size),
            2.0,
            p50(r, IntraTransport::UtipcSpin, size),
        ));
    }
    out
}

/// The markdown report: machine, settings, the table with ratios, targets, legend.
pub fn markdown(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Machine: {} × {}, kernel {}, {} RAM; load average at start {}, at end {}.\n",
        m.cpus, m.cpu_model, m.kernel, m.memory, m.loadavg_start, m.loadavg_end
    );
    let _ = writeln!(s, "Command: `{}`\n", r.command);
    for (k, v) in &r.settings {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = writeln!(s, "\n### Intra-node round trip\n");
    let _ = writeln!(
        s,
        "| transport | size (B) | p50 µs | p99 µs | p99.9 µs | max µs | mean µs | samples | p50 / unix-dgram | p50 / unix-dgram-spin |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ratio = |mine: Option<f64>, other: Option<f64>| match (mine, other) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.3}×", a / b),
        _ => "–".to_owned(),
    };
    for size in sizes(r) {
        for t in present(r) {
            let Some(c) = r.cell(t.name(), size) else {
                continue;
            };
            let size_txt = if c.payload == c.size || c.payload == 0 {
                c.size.to_string()
            } else {
                format!("{} ({} sent)", c.size, c.payload)
            };
            let dash = || "–".to_owned();
            let (p50v, p99, p999, max, mean, n) = match c.rtt {
                Some(x) => (
                    fmt(x.p50_us),
                    fmt(x.p99_us),
                    fmt(x.p999_us),
                    fmt(x.max_us),
                    fmt(x.mean_us),
                    x.count.to_string(),
                ),
                None => (dash(), dash(), dash(), dash(), dash(), dash()),
            };
            let mine = c.rtt.map(|x| x.p50_us);
            let _ = writeln!(
                s,
                "| {} | {size_txt} | {p50v} | {p99} | {p999} | {max} | {mean} | {n} | {} | {} |",
                t.name(),
                ratio(mine, p50(r, IntraTransport::UnixDgram, size)),
                ratio(mine, p50(r, IntraTransport::UnixDgramSpin, size)),
            );
        }
    }
    let notes: Vec<&Cell> = r
        .cells
        .iter()
        .filter(|c| c.note.is_some() || c.rtt_lost > 0)
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\n### Notes\n");
        for c in notes {
            let lost = if c.rtt_lost > 0 {
                format!(" ({} round trips lost)", c.rtt_lost)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "- {} {} B: {}{lost}",
                c.transport,
                c.size,
                c.note.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(s, "\n### Targets (reported, not asserted)\n");
    let _ = writeln!(s, "| target | measured | met |");
    let _ = writeln!(s, "|---|---|---|");
    for t in targets(r) {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(s, "| {} | {} | {met} |", t.what, t.measured);
    }
    let _ = writeln!(s, "\n### Chart legend\n");
    let _ = writeln!(
        s,
        "RTT p50 per size (groups left to right: {} bytes), log scale, grey lines at 0.1, 1, 10, 100, 1,000 and 10,000 µs. Bars:",
        sizes(r)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (t, (_, colour)) in present(r).iter().zip(png::PALETTE) {
        let _ = writeln!(s, "- {colour}: {} ({})", t.name(), t.describe());
    }
    s
}

/// The chart: RTT p50 per transport (bar colour) per size (group), 0.1 µs to 10 ms.
pub fn chart(r: &Report) -> png::Canvas {
    let ts = present(r);
    let values: Vec<Vec<Option<f64>>> = sizes(r)
        .iter()
        .map(|&size| ts.iter().map(|&t| p50(r, t, size)).collect())
        .collect();
    png::bar_chart(&values, -1, 4)
}

/// Writes `intra.md`, `intra.json` and `intra-rtt-p50.png` into `dir`.
///
/// # Errors
///
/// The OS error of creating the directory or writing a file.
pub fn write_out(dir: &Path, r: &Report, md: &str) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("intra.md"), md)?;
    let json = serde_json::to_string_pretty(r).map_err(io::Error::other)?;
    std::fs::write(dir.join("intra.json"), json)?;
    std::fs::write(dir.join("intra-rtt-p50.png"), chart(r).encode_png())
}

/// The whole `utipc-bench intra` run: measure, print the markdown, write the files.
///
/// # Errors
///
/// A message for bad arguments or unwritable output.
pub fn main(args: &IntraArgs, command: String) -> Result<Report, String> {
    let cfg = args.config()?;
    netns::install_stop_handler();
    let mut report = Report {
        machine: netns::machine(),
        command,
        ..Report::default()
    };
    let m = &report.machine;
    eprintln!(
        "machine: {} × {}, kernel {}, {}, loadavg {}",
        m.cpus, m.cpu_model, m.kernel, m.memory, m.loadavg_start
    );
    report.settings = vec![
        (
            "closed loop".into(),
            format!(
                "{} warm-up + {} timed round trips per cell, one outstanding, cell limit {:.1} s",
                cfg.warmup,
                cfg.count,
                cfg.cell_timeout.as_secs_f64()
            ),
        ),
        (
            "utipc".into(),
            "utipcd child in its own network namespace (one eth bearer on a veth pair, idle); \
             two attachments (two applications: an RDM echo bound to {18888,17}, node scope, \
             and an RDM pinger sending to its socket address)"
                .into(),
        ),
    ];
    if !cfg.utipcd.as_os_str().is_empty() {
        report
            .settings
            .push(("utipcd".into(), cfg.utipcd.display().to_string()));
    }
    let started = Instant::now();
    let (cells, notes) = run(&cfg);
    report.cells = cells;
    report.settings.extend(notes);
    report.machine.loadavg_end = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    report.settings.push((
        "total time".into(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    ));
    if netns::stopped() {
        report
            .settings
            .push(("interrupted".into(), "yes (Ctrl-C): partial results".into()));
    }
    let md = markdown(&report);
    println!("{md}");
    write_out(&args.out, &report, &md)
        .map_err(|e| format!("cannot write results to {}: {e}", args.out.display()))?;
    eprintln!(
        "wrote {0}/intra.md, {0}/intra.json, {0}/intra-rtt-p50.png",
        args.out.display()
    );
    Ok(report)
}

/// The name of a transport known to this mode (for `report::describe`).
pub fn describe(name: &str) -> Option<&'static str> {
    IntraTransport::from_name(name).map(IntraTransport::describe)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::stats::LatencySummary;

    fn cell(t: IntraTransport, size: usize, p50: f64) -> Cell {
        Cell {
            transport: t.name().to_owned(),
            size,
            payload: size,
            rtt: Some(LatencySummary {
                count: 100,
                p50_us: p50,
                p99_us: p50 * 2.0,
                p999_us: p50 * 3.0,
                max_us: p50 * 4.0,
                mean_us: p50,
            }),
            ..Cell::default()
        }
    }

    #[test]
    fn targets_compare_spin_with_unix_and_backoff_with_spin() {
        let r = Report {
            cells: vec![
                cell(IntraTransport::UtipcSpin, 64, 3.0),
                cell(IntraTransport::UtipcBackoff, 64, 7.0),
                cell(IntraTransport::UnixDgram, 64, 40.0),
                cell(IntraTransport::UtipcSpin, 65_536, 30.0),
                cell(IntraTransport::UtipcBackoff, 65_536, 50.0),
                cell(IntraTransport::UnixDgram, 65_536, 60.0),
            ],
            ..Report::default()
        };
        let t = targets(&r);
        let met: Vec<Option<bool>> = t.iter().map(|t| t.met).collect();
        // 3 ≤ 4 yes; 30 ≤ 6 no; 7 ≤ 6 no; 50 ≤ 60 yes.
        assert_eq!(met, [Some(true), Some(false), Some(false), Some(true)]);
        assert!(t[0].measured.contains("ratio 0.075×"), "{}", t[0].measured);
        assert!(targets(&Report::default()).is_empty());
        let md = markdown(&r);
        assert!(
            md.contains(
                "| utipc-spin | 64 | 3.00 | 6.00 | 9.00 | 12.0 | 3.00 | 100 | 0.075× | – |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 65536 B: utipc-spin p50 ≤ 0.1× unix-dgram |"),
            "{md}"
        );
        assert!(md.contains("- green: unix-dgram"), "{md}");
        assert!(chart(&r).encode_png().starts_with(b"\x89PNG"));
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        intra: IntraArgs,
    }

    #[test]
    fn quick_arguments() {
        let cli = Cli::try_parse_from(["x", "--quick", "--transports", "unix-dgram,kernel-udp"])
            .expect("parse");
        let cfg = cli.intra.config().expect("config");
        assert_eq!(cfg.sizes, [64, 65_536]);
        assert_eq!((cfg.warmup, cfg.count), (100, 500));
        assert_eq!(
            cfg.transports,
            [IntraTransport::UnixDgram, IntraTransport::KernelUdp]
        );
        assert!(
            Cli::try_parse_from(["x", "--sizes", "66001", "--transports", "unix-dgram"])
                .expect("parse")
                .intra
                .config()
                .is_err()
        );
        assert!(
            Cli::try_parse_from(["x", "--kernel-cpus", "0"])
                .expect("parse")
                .intra
                .config()
                .is_err()
        );
    }

    /// The `--quick` smoke run through a real utipcd child (backoff: tests never spin) and
    /// the blocking kernel baselines. Needs root and the utipcd binary of the same target
    /// directory (`cargo test --workspace` builds it); without them it says why and passes,
    /// unless `UTIPC_REQUIRE_NETNS=1`.
    #[test]
    fn quick_run_through_utipcd() {
        let required = std::env::var("UTIPC_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        let skip = |why: &str| {
            assert!(!required, "quick_run_through_utipcd: {why}");
            eprintln!("quick_run_through_utipcd: skipped: {why}");
        };
        // SAFETY: a getter without preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip("needs root for the daemon's network namespace");
        }
        let cli = Cli::try_parse_from([
            "x",
            "--quick",
            "--transports",
            "utipc-backoff,unix-dgram,kernel-udp",
        ])
        .expect("parse");
        let cfg = match cli.intra.config() {
            Ok(c) => c,
            Err(why) => return skip(&why),
        };
        let (cells, notes) = run(&cfg);
        assert_eq!(cells.len(), 6, "{cells:#?}");
        for c in &cells {
            let rtt = c.rtt.unwrap_or_else(|| panic!("no RTT: {c:#?}"));
            assert_eq!(rtt.count, 500, "{c:#?}");
            assert_eq!(c.rtt_lost, 0, "{c:#?}");
            assert!(rtt.p50_us > 0.0 && rtt.p50_us <= rtt.max_us, "{c:#?}");
        }
        assert!(
            notes
                .iter()
                .any(|(k, v)| k == "utipc-backoff" && v.contains("utipcd --idle backoff")),
            "{notes:?}"
        );
        let report = Report {
            cells,
            settings: notes,
            ..Report::default()
        };
        let dir = std::env::temp_dir().join(format!("utipc-bench-test-{}", std::process::id()));
        let md = markdown(&report);
        write_out(&dir, &report, &md).expect("write");
        let json = std::fs::read_to_string(dir.join("intra.json")).expect("json");
        assert!(json.contains("\"utipc-backoff\""), "{json}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
