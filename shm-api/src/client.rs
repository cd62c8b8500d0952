//! One attachment to utipcd: the handshake, the two rings, and the waiting.
//!
//! A [`Client`] is cheap to clone (an `Arc`) and may be used from several threads. Requests go
//! into the client→daemon ring under a mutex; whichever thread waits drains the daemon→client
//! ring into per-socket queues, so a message for one socket never waits behind another
//! socket's reader. How a thread waits is the client's [`IdleMode`]: spinning (lowest latency,
//! one core busy), backoff (spin, yield, then sleep on the doorbell) or blocking (sleep on the
//! doorbell at once).
//!
//! Sleeping uses the rings' need-wakeup flags: a sleeper sets its ring's flag, re-checks the
//! ring, and only then sleeps — the client on its attach socket, where the daemon sends a
//! wake-up byte, the daemon on an eventfd the client rings — so neither side makes a system
//! call while the other is awake.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::attach_socket::{self, ATTACH_SOCKET};
use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::records::{
    Hello, MAX_FIXED, MAX_RECORD, Notice, PROTOCOL_VERSION, Request, SockEvent, Status, Welcome,
};
use crate::ring::{Consumer, Producer, RingError};
use crate::segment::Segment;
use crate::socket::Socket;
use crate::types::{DestName, ErrorCode, Importance, SocketAddr, SocketKind};

/// How a thread of the client waits for the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdleMode {
    /// Busy-poll the ring: lowest latency, a core at 100 % while waiting. For pinned,
    /// dedicated cores only.
    Spin,
    /// Spin briefly, yield, then sleep on the doorbell (the default).
    #[default]
    Backoff,
    /// Sleep on the doorbell as soon as there is nothing to do.
    Block,
}

impl std::str::FromStr for IdleMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "spin" => Ok(Self::Spin),
            "backoff" => Ok(Self::Backoff),
            "block" => Ok(Self::Block),
            other => Err(format!("{other:?}: expected spin, backoff or block")),
        }
    }
}

/// Spins before a backoff waiter starts yielding, and yields before it sleeps. Few spins
/// (agrona's and the engine's backoff spin 10 times too): a poll costs ~0.15 µs, so 200 spins
/// kept the core ~30 µs from an application sharing it — the very thread that was to answer
/// (measured with `utipc-bench intra`, two applications on one core: 64 B round trip p50 from
/// 32-54 µs down to ~5 µs). On a core of its own a yield returns at once (~0.8 µs on the
/// 2-vCPU VM), so yielding instead of spinning costs little there.
const BACKOFF_SPINS: u32 = 10;
const BACKOFF_YIELDS: u32 = 50;
/// A sleeping waiter re-checks at least this often (another thread of the same client may
/// have drained the ring and taken the doorbell's count).
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// A spinning waiter checks that the daemon is alive every this many spins.
const LIVENESS_EVERY: u32 = 1 << 14;
/// Received bytes the client reports back in one CONSUMED record (a quarter of the daemon's
/// per-socket delivery window).
pub(crate) const CREDIT_REPORT: u32 = 64 * 1024;

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sending socket (for a returned message: the socket it was sent to).
    pub from: SocketAddr,
    /// How the message was addressed.
    pub dest: DestName,
    /// Its importance.
    pub importance: Importance,
    /// `Some` when this is one of our own messages coming back undelivered (the data is its
    /// first 1024 bytes), or on a connection, the end-of-connection marker.
    pub error: Option<ErrorCode>,
    /// The data.
    pub data: Vec<u8>,
}

/// Per-socket state kept on the client side.
#[derive(Debug, Default)]
pub(crate) struct SockQueue {
    pub(crate) msgs: VecDeque<Message>,
    /// Bytes of the front message a stream reader already took.
    pub(crate) front_taken: usize,
    pub(crate) incoming: bool,
    pub(crate) writable: bool,
    pub(crate) disconnected: Option<ErrorCode>,
    /// Consumed bytes not yet reported to the daemon.
    pub(crate) unreported: u32,
}

#[derive(Debug)]
pub(crate) struct State {
    rx: Consumer,
    replies: HashMap<u32, (u32, [u32; 3])>,
    /// Requests whose successful reply names a new socket (open, accept): its queue is
    /// created as the reply is read, so deliveries right behind the reply are kept.
    creating: HashSet<u32>,
    pub(crate) socks: HashMap<u32, SockQueue>,
    detached: Option<String>,
    /// A thread of this client is asleep on the attach socket (the daemon's wake-ups).
    poller: bool,
    /// Threads waiting on [`Inner::cond`] for the poller or a pumping thread.
    sleepers: u32,
}

#[derive(Debug)]
pub(crate) struct Inner {
    node: u32,
    node_id: [u8; 16],
    control: OwnedFd,
    tx: Mutex<Producer>,
    c2d_bell: Doorbell,
    state: Mutex<State>,
    /// Wakes the threads of this client that sleep while another one polls the attach
    /// socket: whichever thread drains the ring may have taken their data.
    cond: Condvar,
    idle: IdleMode,
    next_req: AtomicU32,
    _segment: Segment,
}

/// An attachment to utipcd (or to an embedded node): the factory of [`Socket`]s.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// Options of [`Client::attach_with`].
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The run directory (default: `$UTIPC_RUN_DIR`, else `/run/utipc`).
    pub run_dir: Option<PathBuf>,
    /// How threads wait.
    pub idle: IdleMode,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the rings consistent (every write is committed or
    // not at all), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// Attaches to the utipcd of `$UTIPC_RUN_DIR` (default `/run/utipc`), waiting with the
    /// backoff strategy.
    ///
    /// # Errors
    ///
    /// [`Error::NoDaemon`] when none runs there, [`Error::Refused`] when the daemon's access
    /// policy refuses this user, [`Error::Detached`] on a protocol mismatch.
    pub fn attach() -> Result<Self> {
        Self::attach_with(&ClientOptions::default())
    }

    /// Attaches with options.
    ///
    /// # Errors
    ///
    /// As [`Client::attach`].
    pub fn attach_with(opts: &ClientOptions) -> Result<Self> {
        let dir = opts.run_dir.clone().unwrap_or_else(attach_socket::run_dir);
        let path = dir.join(ATTACH_SOCKET);
        let control = attach_socket::connect(&path).map_err(|source| Error::NoDaemon {
            path: path.clone(),
            source,
        })?;
        Self::handshake(control, opts.idle, &path)
    }

    /// Completes the handshake on a connected attach socket (also used by embedded mode with a
    /// socket pair).
    ///
    /// # Errors
    ///
    /// As [`Client::attach`].
    pub fn handshake(control: OwnedFd, idle: IdleMode, what: &Path) -> Result<Self> {
        let hello = Hello {
            version: PROTOCOL_VERSION,
        };
        attach_socket::send_with_fds(control.as_fd(), &hello.encode(), &[])?;
        if !attach_socket::wait_readable(control.as_fd(), Some(Duration::from_secs(10)))? {
            return Err(Error::Detached(format!(
                "{} did not answer the handshake within 10 s",
                what.display()
            )));
        }
        let mut buf = [0u8; 512];
        let (n, mut fds) = attach_socket::recv_with_fds(control.as_fd(), &mut buf, 2)?;
        let welcome = Welcome::decode(buf.get(..n).unwrap_or(&[]))
            .map_err(|e| Error::Detached(e.to_owned()))?;
        let (node, node_id) = match welcome {
            Welcome::Refused(why) => return Err(Error::Refused(why)),
            Welcome::Accepted {
                version,
                node,
                node_id,
            } => {
                if version != PROTOCOL_VERSION {
                    return Err(Error::Detached(format!(
                        "utipcd speaks attachment protocol {version}, this library {PROTOCOL_VERSION}: \
                         use matching versions"
                    )));
                }
                (node, node_id)
            }
        };
        if fds.len() != 2 {
            return Err(Error::Detached(format!(
                "utipcd passed {} descriptors instead of 2",
                fds.len()
            )));
        }
        let c2d = fds.pop().ok_or(Error::Invalid("descriptor"))?;
        let seg = fds.pop().ok_or(Error::Invalid("descriptor"))?;
        let segment = Segment::map(seg).map_err(|e| Error::Detached(e.to_string()))?;
        let tx = segment.c2d_producer().map_err(ring_err)?;
        let rx = segment.d2c_consumer(MAX_RECORD).map_err(ring_err)?;
        attach_socket::set_nonblocking(control.as_fd())?;
        Ok(Self {
            inner: Arc::new(Inner {
                node,
                node_id,
                control,
                tx: Mutex::new(tx),
                c2d_bell: Doorbell::from_fd(c2d)?,
                state: Mutex::new(State {
                    rx,
                    replies: HashMap::new(),
                    creating: HashSet::new(),
                    socks: HashMap::new(),
                    detached: None,
                    poller: false,
                    sleepers: 0,
                }),
                cond: Condvar::new(),
                idle,
                next_req: AtomicU32::new(1),
                _segment: segment,
            }),
        })
    }

    /// This node's address (0 if utipcd had not finished its address trial when we attached).
    pub fn node(&self) -> u32 {
        self.inner.node
    }

    /// This node's 128-bit identity.
    pub fn node_id(&self) -> [u8; 16] {
        self.inner.node_id
    }

    /// How this client's threads wait.
    pub fn idle_mode(&self) -> IdleMode {
        self.inner.idle
    }

    /// Opens a socket.
    ///
    /// # Errors
    ///
    /// [`Error::Status`] with [`Status::Limit`] when the daemon's per-client limit is reached;
    /// [`Error::Detached`] when the daemon is gone.
    pub fn socket(&self, kind: SocketKind) -> Result<Socket> {
        let [port, ..] = self.call_creating(|req| Request::Open { req, kind })?;
        Ok(Socket::new(self.clone(), port, kind))
    }

    /// A descriptor that becomes readable when the daemon wrote something for this client
    /// (register it with epoll / mio / tokio's `AsyncFd`, then call the sockets' non-blocking
    /// operations until they return [`Error::WouldBlock`]). Valid while the client lives.
    ///
    /// Before sleeping on it, call [`Client::prepare_wait`]: it returns false when there is
    /// already something to do.
    pub fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.inner.control.as_fd()
    }

    /// Drains pending daemon records into the sockets and, if nothing is left, asks the daemon
    /// to ring [`Client::readiness_fd`] on its next write. Returns false if the caller should
    /// not sleep (something arrived meanwhile).
    ///
    /// # Errors
    ///
    /// [`Error::Detached`] when the daemon broke the protocol.
    pub fn prepare_wait(&self) -> Result<bool> {
        self.drain_wakes()?;
        let mut st = lock(&self.inner.state);
        pump(&mut st)?;
        Ok(st.rx.prepare_to_sleep())
    }

    pub(crate) fn next_req(&self) -> u32 {
        loop {
            let r = self.inner.next_req.fetch_add(1, Ordering::Relaxed);
            if r != 0 {
                return r;
            }
        }
    }

    /// Writes one request record, waiting (per the idle mode) while the ring is full.
    pub(crate) fn submit(&self, r: &Request<'_>) -> Result<()> {
        let mut head = [0u8; MAX_FIXED];
        let (kind, n, data) = r.encode(&mut head);
        let fixed = head.get(..n).unwrap_or(&[]);
        let mut waited = 0u32;
        loop {
            let wake = {
                let mut tx = lock(&self.inner.tx);
                match tx.try_write(kind, &[fixed, data]) {
                    Ok(()) => Some(tx.consumer_wants_wakeup()),
                    Err(RingError::Full) => None,
                    Err(e) => return Err(ring_err(e)),
                }
            };
            match wake {
                Some(true) => {
                    self.inner.c2d_bell.ring();
                    return Ok(());
                }
                Some(false) => return Ok(()),
                None => {
                    // The daemon drains the ring every duty cycle; a full ring means it is
                    // busy or gone. Make sure it is awake, then back off.
                    self.inner.c2d_bell.ring();
                    self.check_alive()?;
                    waited += 1;
                    if waited < 100 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            }
        }
    }

    /// Sends a request and waits for its reply; returns the reply's values.
    pub(crate) fn call(
        &self,
        build: impl FnOnce(u32) -> Request<'static>,
        deadline: Option<Instant>,
    ) -> Result<[u32; 3]> {
        let req = self.next_req();
        self.submit(&build(req))?;
        self.await_reply(req, deadline)
    }

    /// Like [`Client::call`] for a request whose reply names a new socket (values[0]).
    pub(crate) fn call_creating(
        &self,
        build: impl FnOnce(u32) -> Request<'static>,
    ) -> Result<[u32; 3]> {
        let req = self.next_req();
        lock(&self.inner.state).creating.insert(req);
        let r = self
            .submit(&build(req))
            .and_then(|()| self.await_reply(req, None));
        lock(&self.inner.state).creating.remove(&req);
        r
    }

    /// Like [`Client::call`] for requests that borrow data.
    pub(crate) fn call_with<'a>(
        &self,
        build: impl FnOnce(u32) -> Request<'a>,
        deadline: Option<Instant>,
    ) -> Result<[u32; 3]> {
        let req = self.next_req();
        self.submit(&build(req))?;
        self.await_reply(req, deadline)
    }

    pub(crate) fn await_reply(&self, req: u32, deadline: Option<Instant>) -> Result<[u32; 3]> {
        let (status, values) = self.wait_until(deadline, |st| st.replies.remove(&req))?;
        match Status::from_code(status) {
            Some(Status::Ok) => Ok(values),
            Some(s) => Err(Error::Status(s)),
            None => Err(Error::Detached(format!("unknown reply status {status}"))),
        }
    }

    /// Runs `f` on the client state, draining the ring first, until it returns `Some` or the
    /// deadline passes ([`Error::TimedOut`]); waits between tries per the idle mode.
    pub(crate) fn wait_until<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T> {
        let mut spins = 0u32;
        let mut yields = 0u32;
        let mut since_check = 0u32;
        loop {
            {
                let mut st = lock(&self.inner.state);
                if pump(&mut st)? > 0 && st.sleepers > 0 {
                    self.inner.cond.notify_all();
                }
                if let Some(v) = f(&mut st) {
                    return Ok(v);
                }
                if let Some(why) = &st.detached {
                    return Err(Error::Detached(why.clone()));
                }
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::TimedOut);
            }
            let sleep = match self.inner.idle {
                IdleMode::Spin => false,
                IdleMode::Backoff => {
                    if spins < BACKOFF_SPINS {
                        spins += 1;
                        false
                    } else if yields < BACKOFF_YIELDS {
                        yields += 1;
                        std::thread::yield_now();
                        false
                    } else {
                        true
                    }
                }
                IdleMode::Block => true,
            };
            if sleep {
                self.sleep(deadline)?;
                spins = 0;
                yields = 0;
            } else {
                std::hint::spin_loop();
                since_check += 1;
                if since_check >= LIVENESS_EVERY {
                    since_check = 0;
                    self.check_alive()?;
                }
            }
        }
    }

    /// Sleeps on the doorbell (need-wakeup protocol) and the control socket until something
    /// arrives, the deadline, or [`MAX_SLEEP`].
    fn sleep(&self, deadline: Option<Instant>) -> Result<()> {
        let mut wait = MAX_SLEEP;
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        let wait = wait.max(Duration::from_millis(1));
        {
            let mut st = lock(&self.inner.state);
            if !st.rx.prepare_to_sleep() {
                return Ok(());
            }
            if st.poller {
                // Another thread sleeps on the socket: wait for it (or a pumping thread) to
                // say something arrived, then look again.
                st.sleepers += 1;
                let (mut st, _) = self
                    .inner
                    .cond
                    .wait_timeout(st, wait)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                st.sleepers -= 1;
                return Ok(());
            }
            st.poller = true;
        }
        let ready = attach_socket::wait_readable(self.inner.control.as_fd(), Some(wait));
        let drained = match ready {
            Ok(true) => self.drain_wakes(),
            Ok(false) => Ok(()),
            Err(e) => Err(Error::Io(e)),
        };
        let mut st = lock(&self.inner.state);
        st.poller = false;
        st.rx.woke();
        // The others look again: one of them takes over the socket if this thread's wait is
        // over, and what arrived may be theirs.
        if st.sleepers > 0 {
            self.inner.cond.notify_all();
        }
        drained
    }

    /// Whether the daemon is still there: its end of the control socket is open.
    fn check_alive(&self) -> Result<()> {
        self.drain_wakes()
    }

    /// Consumes the daemon's wake-up bytes; an end of file means the daemon is gone.
    fn drain_wakes(&self) -> Result<()> {
        match attach_socket::drain_wakes(self.inner.control.as_fd())? {
            attach_socket::Drained::Open => Ok(()),
            attach_socket::Drained::Closed => {
                let why = "utipcd closed the attachment (stopped, or disconnected this client: \
                           see its log)"
                    .to_owned();
                lock(&self.inner.state).detached = Some(why.clone());
                Err(Error::Detached(why))
            }
        }
    }

    /// Returns consumed receive credit for `sock` once enough has accumulated.
    pub(crate) fn consumed(
        &self,
        st: &mut State,
        sock: u32,
        bytes: u32,
    ) -> Option<Request<'static>> {
        let q = st.socks.get_mut(&sock)?;
        q.unreported = q.unreported.saturating_add(bytes);
        if q.unreported >= CREDIT_REPORT || q.msgs.is_empty() && q.unreported > 0 {
            let bytes = std::mem::take(&mut q.unreported);
            return Some(Request::Consumed { sock, bytes });
        }
        None
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// Drains the daemon ring (without waiting).
    pub(crate) fn pump(&self) -> Result<()> {
        let mut st = lock(&self.inner.state);
        if pump(&mut st)? > 0 && st.sleepers > 0 {
            self.inner.cond.notify_all();
        }
        Ok(())
    }
}

impl AsRawFd for Client {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.control.as_raw_fd()
    }
}

fn ring_err(e: RingError) -> Error {
    Error::Detached(format!("shared ring: {e}"))
}

/// Moves every pending daemon record into the client state; returns how many.
fn pump(st: &mut State) -> Result<usize> {
    if st.detached.is_some() {
        return Ok(0);
    }
    let State {
        rx,
        replies,
        creating,
        socks,
        detached,
        ..
    } = st;
    let mut bad: Option<String> = None;
    let r = rx.read(usize::MAX, |kind, body| {
        if bad.is_some() {
            return;
        }
        match Notice::decode(kind, body) {
            Ok(Notice::Reply {
                req,
                status,
                values,
            }) => {
                if creating.remove(&req) && status == Status::Ok as u32 {
                    socks.entry(values[0]).or_default();
                }
                replies.insert(req, (status, values));
            }
            Ok(Notice::Deliver {
                sock,
                from,
                dest,
                importance,
                error,
                data,
            }) => {
                if let Some(q) = socks.get_mut(&sock) {
                    q.msgs.push_back(Message {
                        from,
                        dest,
                        importance,
                        error,
                        data: data.to_vec(),
                    });
                }
            }
            Ok(Notice::Event { sock, event }) => {
                if let Some(q) = socks.get_mut(&sock) {
                    match event {
                        SockEvent::Incoming => q.incoming = true,
                        SockEvent::Writable => q.writable = true,
                        SockEvent::Disconnected(e) => q.disconnected = Some(e),
                    }
                }
            }
            Err(e) => bad = Some(format!("utipcd sent a bad record: {e}")),
        }
    });
    let n = match r {
        Ok(n) => n,
        Err(e) => {
            bad.get_or_insert(format!("shared ring: {e}"));
            0
        }
    };
    if let Some(why) = bad {
        *detached = Some(why.clone());
        return Err(Error::Detached(why));
    }
    Ok(n)
}
