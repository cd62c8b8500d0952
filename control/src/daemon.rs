//! `utipcd`, the node daemon: one node on its bearers, a management socket, a log.
//!
//! The daemon is one agent of the poll-mode engine (`utipc_dataplane::engine`), run on one
//! engine thread (pinned to `--cpu` if given) while the main thread waits for it to end. Each
//! duty cycle is one [`NodeRuntime::do_work`] (frames, timers, sends) plus a non-blocking look
//! at an epoll instance holding the management listener, the management clients, the signal
//! pipes and the in-process stop pipe. Between cycles that found nothing to do the thread idles
//! as `--idle` says: `spin`, `backoff` (the default: spin, yield, then park up to 10 ms) or
//! `block`. The sleeping strategies sleep on the bearers and that epoll descriptor until the
//! node's next timer or the earliest client timeout. An epoll descriptor is readable when any
//! descriptor in it is ready, so the engine also wakes for clients that became *writable*:
//! that is what lets a large response go out through a per-client buffer without ever blocking
//! the node.
//!
//! The management protocol is in [`crate::mgmt`]: one JSON object per line in each direction.
//! A client may send several requests on one connection; they are answered in order. Per
//! client the daemon holds at most one request line (64 KiB, [`MAX_LINE`]) and one response:
//! it reads the next request only once the previous response is fully written, so a client
//! that does not read its answers is throttled by its own socket buffer and costs the daemon
//! no memory beyond that.
//!
//! [`run`] is the whole program behind the `utipcd` binary; [`Daemon`] is the agent, usable
//! in-process (tests, embedding) on an engine ([`Daemon::run`]) or an
//! [`AgentInvoker`](utipc_dataplane::engine::AgentInvoker), and stopped with a [`StopHandle`];
//! the binary adds [`Signals`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value as Json, json};
use utipc_dataplane::engine::{
    self, Agent, AgentContext, CpuList, Engine, EngineConfig, EngineError, IdleKind, ThreadingMode,
};
use utipc_dataplane::runtime::NodeRuntime;
use utipc_proto::link::DownReason;
use utipc_proto::name_table::{Binding, Scope};
use utipc_proto::node::{Event, Node};
use utipc_proto::wire::describe::media;

use crate::attach::AttachService;
use crate::config::{self, ConfigError, NodeArgs};
use crate::mgmt;
use crate::node_setup::{self, SetupError};

/// Longest request line accepted; a client that sends more without a newline gets an error
/// response and is disconnected.
pub const MAX_LINE: usize = 64 * 1024;

/// Most management clients connected at once; further connections get an error line and are
/// closed at once.
pub const MAX_CLIENTS: usize = 64;

/// A client that neither sends nor receives anything for this long is disconnected, so stuck
/// clients cannot hold the [`MAX_CLIENTS`] slots for ever.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A busy daemon looks at its management epoll set (one `epoll_wait`) at least every this many
/// duty cycles, so a busy node spends its cycles on frames; a cycle in which the node was idle
/// always looks.
const MGMT_EVERY: u32 = 8;

/// Requests answered for one client in one turn, so a client pipelining many requests cannot
/// starve the node or the other clients; the rest are answered in the next turns.
const REQUESTS_PER_TURN: usize = 16;

/// Bytes read from one client in one read call.
const READ_CHUNK: usize = 16 * 1024;

/// Connections accepted in one turn.
const ACCEPTS_PER_TURN: usize = 16;

/// The options of `utipcd`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "utipcd",
    version,
    about = "utipcd: the utipc node daemon (user-space TIPC)",
    long_about = "utipcd: the utipc node daemon (user-space TIPC).\n\nRuns one node on the given \
                  bearers, logs node events to stderr and answers management requests (`utipc \
                  link list`, ...) on DIR/ctl.sock. Stops cleanly on SIGTERM or SIGINT, telling \
                  its peers at once."
)]
pub struct DaemonArgs {
    /// The node's options.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Run directory for the management socket (default $UTIPC_RUN_DIR or /run/utipc).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Also log name-table changes and management connections.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Why the daemon could not start or had to stop; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The node options are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node could not be started on its bearers.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The engine did not start (e.g. a `--cpu` list the process may not use) or stop.
    #[error("{0}")]
    Engine(EngineError),
    /// Another daemon answers on the socket.
    #[error(
        "another utipcd is running on {dir} (it answers on {sock}): stop it first, or give this \
         one another --run-dir"
    )]
    AlreadyRunning {
        /// The run directory.
        dir: PathBuf,
        /// Its socket.
        sock: PathBuf,
    },
    /// The run directory could not be created.
    #[error(
        "cannot create the run directory {dir}: {source}; create it, run as a user who may, or \
         choose another with --run-dir (or UTIPC_RUN_DIR)"
    )]
    RunDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Something that is not a socket sits where the socket belongs.
    #[error("{0} exists and is not a socket: remove it, or choose another --run-dir")]
    NotASocket(PathBuf),
    /// The socket could not be bound.
    #[error(
        "cannot listen on {path}: {source}; check the run directory's permissions or choose another --run-dir"
    )]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A system call of the loop failed (out of descriptors or memory, mostly).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: io::Error,
    },
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> DaemonError {
    move |source| DaemonError::Io { what, source }
}

// ---------------------------------------------------------------------------------------------
// Logging

/// Formats a time as RFC 3339 UTC with milliseconds, `2026-11-24T22:10:00.123Z`.
pub fn utc_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Where the daemon's log lines go: `TIMESTAMP utipcd: MESSAGE`, one write per line.
pub struct Logger {
    out: Box<dyn Write + Send>,
    verbose: bool,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("verbose", &self.verbose)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// Logs to standard error; `verbose` adds the debug lines.
    pub fn stderr(verbose: bool) -> Self {
        Self::to(Box::new(io::stderr()), verbose)
    }

    /// Logs to any writer (tests).
    pub fn to(out: Box<dyn Write + Send>, verbose: bool) -> Self {
        Self { out, verbose }
    }

    /// Writes one line. Logging never fails the daemon: a broken log stream is ignored.
    pub fn info(&mut self, msg: fmt::Arguments<'_>) {
        let line = format!("{} utipcd: {msg}\n", utc_timestamp(SystemTime::now()));
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    /// Writes one line when verbose.
    pub fn debug(&mut self, msg: fmt::Arguments<'_>) {
        if self.verbose {
            self.info(msg);
        }
    }
}

fn reason_text(r: DownReason) -> &'static str {
    match r {
        DownReason::Tolerance => "peer silent for the link tolerance",
        DownReason::RetransmitFailure => "retransmission failure",
        DownReason::PeerReset => "peer reset the link",
        DownReason::PeerStopping => "peer is stopping",
        DownReason::ReassemblyFailure => "reassembly failure",
        DownReason::PriorityChange => "peer changed the link priority",
        DownReason::Local => "taken down locally",
    }
}

fn binding_text(b: &Binding) -> String {
    format!(
        "{{{},{},{}}} port {} node {:08x} scope {}",
        b.service_type,
        b.lower,
        b.upper,
        b.port,
        b.node,
        match b.scope {
            Scope::Node => "node",
            Scope::Cluster => "cluster",
        }
    )
}

/// Logs one node event (bindings only when verbose).
pub fn log_event(log: &mut Logger, ev: &Event) {
    match ev {
        Event::AddressCommitted(a) => log.info(format_args!("address {a:08x} committed")),
        Event::DuplicateAddress { addr, media: m } => log.info(format_args!(
            "duplicate address {addr:08x}: also claimed by {}",
            media(m)
        )),
        Event::NodeUp { addr, node_id } => {
            log.info(format_args!("node up {addr:08x} ({node_id})"));
        }
        Event::NodeDown { addr } => log.info(format_args!("node down {addr:08x}")),
        Event::LinkUp { name, .. } => log.info(format_args!("link up {name}")),
        Event::LinkDown { name, reason, .. } => {
            log.info(format_args!("link down {name} ({})", reason_text(*reason)))
        }
        Event::Published(b) => log.debug(format_args!("published {}", binding_text(b))),
        Event::Withdrawn(b) => log.debug(format_args!("withdrawn {}", binding_text(b))),
    }
}

/// Logs who the node is and its bearers (once, at startup).
pub fn log_identity(log: &mut Logger, node: &Node) {
    log.info(format_args!(
        "node {} address {:08x} ({}), network {}, pid {}",
        node.node_id(),
        node.addr(),
        if node.addr_committed() {
            "committed"
        } else {
            "on trial"
        },
        node.config().net_id,
        std::process::id()
    ));
    for (id, b) in node.bearers() {
        log.info(format_args!(
            "bearer {} (slot {}) on {}: address {}, mtu {}, tolerance {} ms",
            b.name,
            id.0,
            b.if_name,
            media(&b.local),
            b.mtu,
            b.tolerance.as_millis()
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// The management protocol, independent of sockets

/// Answers one request line (without its newline) with one response line (with its newline).
/// Returns `None` for a blank line, which is ignored. The commands are [`mgmt::handle`]'s;
/// the capture commands switch the runtime's bearer taps, hence `&mut`.
pub fn respond(rt: &mut NodeRuntime, line: &[u8]) -> Option<Vec<u8>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let resp = match serde_json::from_slice::<Json>(line) {
        Err(e) => error_json(&format!(
            "malformed request ({e}): send one JSON object per line, e.g. {{\"cmd\": \"link-list\"}}"
        )),
        Ok(req) => {
            let mut r = match mgmt::handle(rt, &req) {
                Ok(data) => json!({"ok": true, "data": data}),
                Err(e) => error_json(&e),
            };
            // A request may carry an "id"; it is echoed so pipelining clients can match.
            if let (Some(id), Some(obj)) = (req.get("id"), r.as_object_mut()) {
                obj.insert("id".to_owned(), id.clone());
            }
            r
        }
    };
    let mut out = resp.to_string().into_bytes();
    out.push(b'\n');
    Some(out)
}

fn error_json(msg: &str) -> Json {
    json!({"ok": false, "error": msg})
}

fn error_line(msg: &str) -> Vec<u8> {
    let mut v = error_json(msg).to_string().into_bytes();
    v.push(b'\n');
    v
}

// ---------------------------------------------------------------------------------------------
// The control socket

/// The listening management socket, removed again when dropped (only if it is still ours).
#[derive(Debug)]
pub struct ControlListener {
    listener: UnixListener,
    path: PathBuf,
    dev_ino: Option<(u64, u64)>,
}

impl ControlListener {
    /// Creates `dir` (mode 0755) if needed and listens on `config::control_socket(dir)`.
    ///
    /// A socket file left by a daemon that died is replaced; one that a live daemon answers
    /// on is an error ([`DaemonError::AlreadyRunning`]).
    pub fn bind(dir: &Path) -> Result<Self, DaemonError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| DaemonError::RunDir {
                dir: dir.to_owned(),
                source,
            })?;
        let path = config::control_socket(dir);
        let bind_err = |source| DaemonError::Bind {
            path: path.clone(),
            source,
        };
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let meta = fs::symlink_metadata(&path).map_err(bind_err)?;
                if !meta.file_type().is_socket() {
                    return Err(DaemonError::NotASocket(path));
                }
                match UnixStream::connect(&path) {
                    Ok(_) => {
                        return Err(DaemonError::AlreadyRunning {
                            dir: dir.to_owned(),
                            sock: path,
                        });
                    }
                    // Nobody listens: a stale socket of a daemon that did not stop cleanly.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        fs::remove_file(&path).map_err(bind_err)?;
                        UnixListener::bind(&path).map_err(bind_err)?
                    }
                    Err(e) => return Err(bind_err(e)),
                }
            }
            Err(e) => return Err(bind_err(e)),
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let dev_ino = fs::symlink_metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        Ok(Self {
            listener,
            path,
            dev_ino,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlListener {
    fn drop(&mut self) {
        // Only remove the file if it is still the socket we bound (not a successor's).
        let ours = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.dev_ino {
            let _ = fs::remove_file(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// epoll, the one descriptor the runtime watches for us

#[derive(Debug)]
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event for the duration of the call; both descriptors
        // are open (the caller owns `fd`).
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &raw mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, events)
    }

    fn modify(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, events)
    }

    fn delete(&self, fd: RawFd) {
        // Closing the descriptor removes it too; this only makes that immediate.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// The ready events, without waiting.
    fn ready(&self, buf: &mut Vec<libc::epoll_event>) -> io::Result<()> {
        const CAP: usize = 64;
        buf.clear();
        buf.resize(CAP, libc::epoll_event { events: 0, u64: 0 });
        loop {
            // SAFETY: `buf` holds CAP writable epoll_event structs.
            let n = unsafe {
                libc::epoll_wait(self.fd.as_raw_fd(), buf.as_mut_ptr(), CAP as libc::c_int, 0)
            };
            if n >= 0 {
                buf.truncate(usize::try_from(n).unwrap_or(0));
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

const EV_IN: u32 = libc::EPOLLIN as u32;
const EV_OUT: u32 = libc::EPOLLOUT as u32;

const TOK_LISTENER: u64 = 0;
const TOK_STOP: u64 = 1;
const TOK_SIGTERM: u64 = 2;
const TOK_SIGINT: u64 = 3;
const FIRST_CLIENT: u64 = 16;

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` known to hold no newline (so a slow sender costs no rescans).
    scanned: usize,
    out: Vec<u8>,
    sent: usize,
    eof: bool,
    close_after_flush: bool,
    interest: u32,
    last_active: std::time::Instant,
}

/// What servicing a client left to do.
#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    /// Waiting for the client (its interest set says for what).
    Idle,
    /// Complete requests are left unanswered (the per-turn budget ran out).
    MoreWork,
    /// Done or broken: drop it.
    Close,
}

impl Client {
    fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            inbuf: Vec::new(),
            scanned: 0,
            out: Vec::new(),
            sent: 0,
            eof: false,
            close_after_flush: false,
            interest: EV_IN,
            last_active: std::time::Instant::now(),
        }
    }

    /// Writes pending output, answers complete requests, reads more; stops when the client
    /// must be waited for. Reads the next request only when the previous response is out.
    fn service(&mut self, rt: &mut NodeRuntime) -> ClientState {
        let mut answered = 0;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            while self.sent < self.out.len() {
                match self.stream.write(&self.out[self.sent..]) {
                    Ok(0) => return ClientState::Close,
                    Ok(n) => {
                        self.sent += n;
                        self.last_active = std::time::Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ClientState::Idle,
                    Err(_) => return ClientState::Close,
                }
            }
            self.out.clear();
            self.sent = 0;
            if self.close_after_flush {
                return ClientState::Close;
            }
            if answered == REQUESTS_PER_TURN {
                return ClientState::MoreWork;
            }
            let newline = self.inbuf[self.scanned..].iter().position(|&b| b == b'\n');
            if let Some(nl) = newline.map(|i| self.scanned + i) {
                let line: Vec<u8> = self.inbuf.drain(..=nl).collect();
                self.scanned = 0;
                if let Some(resp) = respond(rt, &line[..nl]) {
                    self.out = resp;
                    answered += 1;
                }
                continue;
            }
            self.scanned = self.inbuf.len();
            if self.inbuf.len() > MAX_LINE {
                self.out = error_line(&format!(
                    "request line longer than {MAX_LINE} bytes without a newline: send one JSON \
                     object per line; disconnecting"
                ));
                self.inbuf = Vec::new();
                self.scanned = 0;
                self.close_after_flush = true;
                continue;
            }
            if self.eof {
                // A last request without its newline is still answered.
                if self.inbuf.is_empty() {
                    return ClientState::Close;
                }
                let line = std::mem::take(&mut self.inbuf);
                self.scanned = 0;
                self.out = respond(rt, &line).unwrap_or_default();
                self.close_after_flush = true;
                continue;
            }
            let room = (MAX_LINE + 1 - self.inbuf.len()).min(READ_CHUNK);
            match self.stream.read(&mut chunk[..room]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.inbuf.extend_from_slice(&chunk[..n]);
                    self.last_active = std::time::Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ClientState::Idle,
                Err(_) => return ClientState::Close,
            }
        }
    }

    /// The epoll interest for the client's state: writable while a response is pending,
    /// readable otherwise.
    fn wanted(&self) -> u32 {
        if self.sent < self.out.len() {
            EV_OUT
        } else {
            EV_IN
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// Why the daemon stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT (its name).
    Signal(&'static str),
    /// A [`StopHandle`] asked.
    Requested,
}

/// Asks a [`Daemon`] on another thread to stop: the daemon wakes, its duty cycle records
/// [`Stop::Requested`] and stops the engine that runs it.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: Arc<UnixStream>,
}

impl StopHandle {
    /// Wakes the daemon and makes it stop.
    pub fn stop(&self) {
        // The pipe is non-blocking; when full a wake-up is already pending.
        let _ = (&*self.tx).write(&[1]);
    }
}

/// SIGTERM and SIGINT, caught through a self-pipe each: the handler only writes a byte, and
/// the daemon wakes at once (the pipe is in its epoll set, which the engine sleeps on). Install
/// them early so a signal during startup is not lost; hand them to [`Daemon::handle_signals`].
#[derive(Debug)]
pub struct Signals {
    pipes: Vec<(u64, &'static str, UnixStream)>,
}

impl Signals {
    /// Installs the handlers (process-wide: for the binary, not for tests in-process).
    pub fn install() -> Result<Self, DaemonError> {
        let mut pipes = Vec::new();
        for (token, signo, name) in [
            (TOK_SIGTERM, signal_hook::consts::SIGTERM, "SIGTERM"),
            (TOK_SIGINT, signal_hook::consts::SIGINT, "SIGINT"),
        ] {
            let (rx, tx) = UnixStream::pair().map_err(io_err("creating a signal pipe"))?;
            rx.set_nonblocking(true)
                .map_err(io_err("setting a signal pipe non-blocking"))?;
            signal_hook::low_level::pipe::register(signo, tx)
                .map_err(io_err("installing a signal handler"))?;
            pipes.push((token, name, rx));
        }
        Ok(Self { pipes })
    }
}

/// The engine settings [`Daemon::run`] was started with, logged by the engine thread once it
/// is pinned.
#[derive(Debug)]
struct EngineNote {
    idle: IdleKind,
    threading: ThreadingMode,
    cpus: Option<CpuList>,
}

/// The daemon: a node runtime, its management socket and clients, its log. An [`Agent`]: run
/// it on an [`Engine`] ([`Daemon::run`]) or drive it with an
/// [`AgentInvoker`](utipc_dataplane::engine::AgentInvoker) (tests, embedding).
#[derive(Debug)]
pub struct Daemon {
    runtime: NodeRuntime,
    ctl: ControlListener,
    epoll: Epoll,
    clients: BTreeMap<u64, Client>,
    next_token: u64,
    stop_rx: UnixStream,
    stop_tx: Arc<UnixStream>,
    signals: Vec<(u64, &'static str, UnixStream)>,
    more_work: bool,
    log: Logger,
    events: Vec<libc::epoll_event>,
    /// Duty cycles since the management epoll was last looked at.
    mgmt_skipped: u32,
    /// Why the daemon stops, once something asked.
    stop: Option<Stop>,
    /// The engine running the daemon (from [`Agent::on_start`]), stopped on [`Stop`].
    engine_stop: Option<engine::StopHandle>,
    /// An error that ended the daemon (reading its epoll set failed).
    fatal: Option<io::Error>,
    engine_note: Option<EngineNote>,
    /// Applications attached through shared-memory rings (`attach.sock`).
    attach: Option<AttachService>,
}

impl Daemon {
    /// A daemon serving `runtime` on the socket `ctl`. Installs no signal handlers (see
    /// [`Daemon::handle_signals`]).
    pub fn new(
        runtime: NodeRuntime,
        ctl: ControlListener,
        log: Logger,
    ) -> Result<Self, DaemonError> {
        let epoll = Epoll::new().map_err(io_err("creating the epoll instance"))?;
        let (stop_rx, stop_tx) = UnixStream::pair().map_err(io_err("creating the stop pipe"))?;
        for s in [&stop_rx, &stop_tx] {
            s.set_nonblocking(true)
                .map_err(io_err("setting the stop pipe non-blocking"))?;
        }
        epoll
            .add(ctl.listener.as_raw_fd(), TOK_LISTENER, EV_IN)
            .map_err(io_err("watching the management socket"))?;
        epoll
            .add(stop_rx.as_raw_fd(), TOK_STOP, EV_IN)
            .map_err(io_err("watching the stop pipe"))?;
        Ok(Self {
            runtime,
            ctl,
            epoll,
            clients: BTreeMap::new(),
            next_token: FIRST_CLIENT,
            stop_rx,
            stop_tx: Arc::new(stop_tx),
            signals: Vec::new(),
            more_work: false,
            log,
            events: Vec::new(),
            mgmt_skipped: 0,
            stop: None,
            engine_stop: None,
            fatal: None,
            engine_note: None,
            attach: None,
        })
    }

    /// Serves applications through `service` (its attach socket and their rings).
    pub fn set_attach(&mut self, service: AttachService) {
        self.attach = Some(service);
    }

    /// Applications attached now.
    pub fn attached_count(&self) -> usize {
        self.attach.as_ref().map_or(0, AttachService::client_count)
    }

    /// Binds the socket in `dir` and builds the daemon (logging to stderr).
    pub fn bind(runtime: NodeRuntime, dir: &Path, verbose: bool) -> Result<Self, DaemonError> {
        let ctl = ControlListener::bind(dir)?;
        Self::new(runtime, ctl, Logger::stderr(verbose))
    }

    /// Watches the pipes of [`Signals::install`]: SIGTERM and SIGINT then stop the daemon
    /// (also one that arrived before this call).
    pub fn handle_signals(&mut self, signals: Signals) -> Result<(), DaemonError> {
        for (token, name, rx) in signals.pipes {
            self.epoll
                .add(rx.as_raw_fd(), token, EV_IN)
                .map_err(io_err("watching a signal pipe"))?;
            self.signals.push((token, name, rx));
        }
        Ok(())
    }

    /// A handle that stops the daemon from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: Arc::clone(&self.stop_tx),
        }
    }

    /// Why the daemon stops, once a signal or a [`StopHandle`] asked (seen by a duty cycle).
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    /// The runtime (its node, for views).
    pub fn runtime(&self) -> &NodeRuntime {
        &self.runtime
    }

    /// The runtime, mutably (commands on the node).
    pub fn runtime_mut(&mut self) -> &mut NodeRuntime {
        &mut self.runtime
    }

    /// The management socket's path.
    pub fn socket_path(&self) -> &Path {
        self.ctl.path()
    }

    /// Management clients connected now.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The logger.
    pub fn log(&mut self) -> &mut Logger {
        &mut self.log
    }

    /// Logs the node's identity and bearers and the socket (once, at startup), then any event
    /// already queued.
    pub fn log_startup(&mut self) {
        log_identity(&mut self.log, self.runtime.node());
        let path = self.ctl.path().display().to_string();
        self.log.info(format_args!("management socket {path}"));
        if let Some(p) = self.attach.as_ref().and_then(AttachService::path) {
            let p = p.display().to_string();
            self.log.info(format_args!("applications attach at {p}"));
        }
        self.drain_events();
    }

    /// Logs the node's events; returns how many.
    fn drain_events(&mut self) -> usize {
        let mut n = 0;
        while let Some(ev) = self.runtime.node_mut().poll_event() {
            log_event(&mut self.log, &ev);
            n += 1;
        }
        n
    }

    /// One duty cycle, without waiting: runs the node ([`NodeRuntime::do_work`]), logs its
    /// events, and serves the management epoll set (listener, clients, signals, stop pipe):
    /// every cycle when the node was idle, at least every [`MGMT_EVERY`] cycles when it is
    /// busy. Returns the work done (0: idle).
    fn turn(&mut self) -> usize {
        let mut work = self.runtime.do_work();
        if let Some(attach) = &mut self.attach {
            let now = self.runtime.now();
            work += attach.turn(self.runtime.node_mut(), now, &mut self.log);
            // What the clients asked for goes out in this cycle, not the next.
            self.runtime.flush();
        }
        work += self.drain_events();
        self.mgmt_skipped += 1;
        if work == 0 || self.more_work || self.mgmt_skipped >= MGMT_EVERY {
            self.mgmt_skipped = 0;
            work += self.serve_management();
        }
        work
    }

    /// Takes the ready events of the management epoll set (without waiting) and serves them;
    /// returns how many there were.
    fn serve_management(&mut self) -> usize {
        let mut events = std::mem::take(&mut self.events);
        if let Err(e) = self.epoll.ready(&mut events) {
            // Cannot happen with our own epoll descriptor and buffer; end the daemon if it does.
            self.fatal.get_or_insert(e);
            self.request_stop(Stop::Requested);
        }
        let mut work = events.len();
        let mut touched: Vec<u64> = Vec::new();
        for ev in &events {
            // A copy: the field of the packed struct cannot be borrowed.
            let token = ev.u64;
            match token {
                TOK_LISTENER => self.accept(),
                TOK_STOP => {
                    drain(&self.stop_rx);
                    self.request_stop(Stop::Requested);
                }
                t if t < FIRST_CLIENT => {
                    let name = self.signals.iter().find(|s| s.0 == t).map(|(_, name, rx)| {
                        drain(rx);
                        *name
                    });
                    if let Some(name) = name {
                        self.request_stop(Stop::Signal(name));
                    }
                }
                t => touched.push(t),
            }
        }
        self.events = events;
        // Clients with events, plus those left with work by the last turn.
        if std::mem::take(&mut self.more_work) {
            work += 1;
            touched.extend(self.clients.keys().copied());
            touched.sort_unstable();
            touched.dedup();
        }
        for t in touched {
            self.service(t);
        }
        self.expire_idle();
        work
    }

    /// Records why the daemon stops (the first reason wins) and stops the engine running it.
    fn request_stop(&mut self, why: Stop) {
        self.stop.get_or_insert(why);
        if let Some(h) = &self.engine_stop {
            h.stop();
        }
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let stream = match self.ctl.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and the like: say so and try again next turn (the listener stays
                    // readable, so this repeats while the condition lasts, once per turn).
                    self.log
                        .info(format_args!("cannot accept a management client: {e}"));
                    return;
                }
            };
            if self.clients.len() >= MAX_CLIENTS {
                let _ = stream.set_nonblocking(true);
                let _ = (&stream).write(&error_line(&format!(
                    "utipcd serves at most {MAX_CLIENTS} management clients at once: retry later"
                )));
                self.log.debug(format_args!(
                    "refused a management client: {MAX_CLIENTS} connected"
                ));
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            if let Err(e) = self.epoll.add(stream.as_raw_fd(), token, EV_IN) {
                self.log
                    .info(format_args!("cannot watch a management client: {e}"));
                continue;
            }
            self.log
                .debug(format_args!("management client {token} connected"));
            self.clients.insert(token, Client::new(stream));
            // Serve at once: the request is often already there.
            self.service(token);
        }
    }

    fn service(&mut self, token: u64) {
        let Some(c) = self.clients.get_mut(&token) else {
            return;
        };
        let state = c.service(&mut self.runtime);
        match state {
            ClientState::Close => self.drop_client(token, "closed"),
            ClientState::MoreWork | ClientState::Idle => {
                if state == ClientState::MoreWork {
                    self.more_work = true;
                }
                let wanted = c.wanted();
                if wanted != c.interest {
                    if self
                        .epoll
                        .modify(c.stream.as_raw_fd(), token, wanted)
                        .is_err()
                    {
                        self.drop_client(token, "epoll error");
                        return;
                    }
                    c.interest = wanted;
                }
            }
        }
    }

    fn drop_client(&mut self, token: u64, why: &str) {
        if let Some(c) = self.clients.remove(&token) {
            self.epoll.delete(c.stream.as_raw_fd());
            self.log
                .debug(format_args!("management client {token} {why}"));
        }
    }

    fn expire_idle(&mut self) {
        let now = std::time::Instant::now();
        let idle: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| now.duration_since(c.last_active) >= CLIENT_IDLE_TIMEOUT)
            .map(|(&t, _)| t)
            .collect();
        for t in idle {
            self.drop_client(t, "idle too long, disconnected");
        }
    }

    /// Runs the daemon on an [`Engine`] configured by `engine` (threads, `--idle` strategy,
    /// `--cpu` pinning) until a signal or a [`StopHandle`] stops it; returns the daemon (for
    /// [`Daemon::shutdown`]) and why it stopped.
    ///
    /// # Errors
    ///
    /// The engine did not start (e.g. the `--cpu` list is not allowed) or did not stop
    /// cleanly, or reading the management epoll set failed.
    pub fn run(mut self, engine: &EngineConfig) -> Result<(Self, Stop), DaemonError> {
        self.engine_note = Some(EngineNote {
            idle: engine.idle.kind,
            threading: engine.threading,
            cpus: engine.cpus.clone(),
        });
        let running = Engine::start(engine, vec![self]).map_err(DaemonError::Engine)?;
        let mut daemon = running
            .join()
            .map_err(DaemonError::Engine)?
            .pop()
            .ok_or(DaemonError::Engine(EngineError::NoAgents))?;
        daemon.engine_stop = None;
        if let Some(source) = daemon.fatal.take() {
            return Err(DaemonError::Io {
                what: "reading the management epoll events",
                source,
            });
        }
        let stop = daemon.stop.unwrap_or(Stop::Requested);
        Ok((daemon, stop))
    }

    /// Clean shutdown: every link goes down with a peer-stopping RESET (so peers notice at
    /// once), queued frames are sent, the last events are logged, and the socket is removed.
    pub fn shutdown(mut self) {
        if let Some(mut attach) = self.attach.take() {
            let now = self.runtime.now();
            attach.close_all(self.runtime.node_mut(), now, &mut self.log);
        }
        self.runtime.shutdown();
        self.runtime.flush();
        self.drain_events();
        let path = self.ctl.path().display().to_string();
        self.log.info(format_args!("stopped; removed {path}"));
        // Dropping `self.ctl` removes the socket file.
    }
}

/// The daemon as an engine agent: a duty cycle is [`NodeRuntime::do_work`] plus a
/// non-blocking look at the management epoll set; an idle daemon sleeps on the bearers and
/// that epoll set until the node's next timer or the earliest client idle timeout.
impl Agent for Daemon {
    fn role_name(&self) -> &str {
        "daemon"
    }

    fn do_work(&mut self) -> usize {
        self.turn()
    }

    /// Takes the engine's stop handle (a signal or a [`StopHandle`] then stops the engine)
    /// and logs the engine settings, on the engine's thread, after pinning.
    fn on_start(&mut self, ctx: &AgentContext) -> io::Result<()> {
        self.engine_stop = Some(ctx.stop_handle().clone());
        if self.stop.is_some() {
            ctx.stop_handle().stop();
        }
        if let Some(note) = self.engine_note.take() {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("main");
            let pinning = match &note.cpus {
                Some(cpus) => format!("pinned to CPU {cpus}"),
                None => match CpuList::of_current_thread() {
                    Ok(any) => format!("not pinned (runs on CPU {any})"),
                    Err(_) => "not pinned".to_owned(),
                },
            };
            self.log.info(format_args!(
                "engine: idle {}, {} threading, thread {name} {pinning}",
                note.idle, note.threading
            ));
        }
        Ok(())
    }

    fn on_close(&mut self) {
        self.runtime.flush();
        self.drain_events();
    }

    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        self.runtime.wait_fds(fds);
        fds.push(self.epoll.fd.as_raw_fd());
        if let Some(attach) = &self.attach {
            attach.wait_fds(fds);
        }
    }

    fn prepare_park(&self) -> bool {
        self.attach.as_ref().is_none_or(AttachService::prepare_park)
    }

    fn next_deadline(&self) -> Option<Duration> {
        if self.more_work {
            return Some(Duration::ZERO);
        }
        let now = std::time::Instant::now();
        let clients = self
            .clients
            .values()
            .map(|c| (c.last_active + CLIENT_IDLE_TIMEOUT).saturating_duration_since(now))
            .min();
        match (self.runtime.next_deadline(), clients) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn drain(s: &UnixStream) {
    let mut buf = [0u8; 64];
    let mut r = s;
    while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
}

/// The `utipcd` program: resolve the options, claim the socket, start the node, run it on the
/// engine (`--idle`, `--cpu`) until SIGTERM/SIGINT, shut down cleanly.
pub fn run(args: &DaemonArgs) -> Result<(), DaemonError> {
    let opts = args.node.resolve()?;
    // A mistyped --cpu fails before anything is claimed.
    node_setup::check_cpus(&opts)?;
    let dir = args.run_dir.clone().unwrap_or_else(config::run_dir);
    // The socket first: a second daemon must fail on it, not on a bearer already in use.
    let ctl = ControlListener::bind(&dir)?;
    let attach =
        AttachService::bind(&dir, opts.access.clone()).map_err(|source| DaemonError::Bind {
            path: dir.join(utipc_shm_api::attach_socket::ATTACH_SOCKET),
            source,
        })?;
    let signals = Signals::install()?;
    let runtime = node_setup::start(&opts, node_setup::fresh_seed())?;
    let mut daemon = Daemon::new(runtime, ctl, Logger::stderr(args.verbose))?;
    daemon.set_attach(attach);
    daemon.handle_signals(signals)?;
    daemon.log_startup();
    let threading = match &opts.cpus {
        Some(cpus) => ThreadingMode::for_cpus(cpus.len()),
        None => ThreadingMode::for_machine(),
    };
    let mut engine = EngineConfig::new(threading, opts.idle);
    engine.cpus = opts.cpus.clone();
    let (mut daemon, stop) = daemon.run(&engine)?;
    match stop {
        Stop::Signal(name) => daemon.log().info(format_args!("{name}: shutting down")),
        Stop::Requested => daemon.log().info(format_args!("shutting down")),
    }
    daemon.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use utipc_proto::addr::NodeId;
    use utipc_proto::node::NodeConfig;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_558_200_123);
        assert_eq!(utc_timestamp(t), "2026-11-24T22:10:00.123Z");
        assert_eq!(
            utc_timestamp(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        // A leap day.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(t), "2000-02-29T00:00:00.000Z");
    }

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

    #[test]
    fn events_are_logged_in_one_line_each() {
        let sink = Sink::default();
        let mut log = Logger::to(Box::new(sink.clone()), false);
        let node_id: NodeId = "ktnode2".parse().expect("id");
        log_event(
            &mut log,
            &Event::NodeUp {
                addr: 0x0f11_5c6f,
                node_id,
            },
        );
        log_event(&mut log, &Event::NodeDown { addr: 0x0f11_5c6f });
        log_event(&mut log, &Event::AddressCommitted(0x0f11_5f6f));
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].ends_with(" utipcd: node up 0f115c6f (ktnode2)"),
            "{text}"
        );
        assert!(lines[1].ends_with(" utipcd: node down 0f115c6f"), "{text}");
        assert!(
            lines[2].ends_with(" utipcd: address 0f115f6f committed"),
            "{text}"
        );
        assert!(
            lines[0].len() > 24 && lines[0].as_bytes()[23] == b'Z',
            "{text}"
        );
    }

    #[test]
    fn responses() {
        let mut rt = NodeRuntime::new(Node::new(NodeConfig::new("t1".parse().expect("id"), 1)));
        let mut r = |l: &str| {
            respond(&mut rt, l.as_bytes()).map(|v| {
                assert_eq!(v.last(), Some(&b'\n'));
                serde_json::from_slice::<Json>(&v).expect("json")
            })
        };
        assert_eq!(r("  "), None);
        let ok = r("{\"cmd\": \"node-list\", \"id\": 7}").expect("resp");
        assert_eq!(ok["ok"], true);
        assert_eq!(ok["id"], 7);
        assert_eq!(ok["data"][0]["id"], "t1");
        let e = r("{\"cmd\": \"frobnicate\"}").expect("resp");
        assert_eq!(e["ok"], false);
        assert!(
            e["error"].as_str().expect("msg").contains("link-list"),
            "{e}"
        );
        let e = r("{oops").expect("resp");
        assert!(
            e["error"].as_str().expect("msg").contains("malformed"),
            "{e}"
        );
        let e = r("[1,2]").expect("resp");
        assert!(e["error"].as_str().expect("msg").contains("\"cmd\""), "{e}");
        let ok = r("{\"cmd\":\"stats\"}\r").expect("resp");
        assert_eq!(ok["ok"], true);
    }
}
