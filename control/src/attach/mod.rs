//! The daemon side of the client attachment: applications attach through the Unix socket
//! `attach.sock` in the run directory, get a sealed memfd segment with two rings and an eventfd
//! to wake the daemon, and from then on every socket operation is a ring record (see
//! [`utipc_shm_api::records`]). The daemon wakes a sleeping client with a byte on its attach
//! socket, whose sending end only the daemon holds, so no client can make it block.
//!
//! The service is part of the daemon's duty cycle ([`AttachService::turn`]): it reads each
//! client's requests and applies them to the node, then moves what the node has for the
//! clients' sockets (messages, connection outcomes, events) into their rings. Clients are
//! untrusted: every record is validated, a malformed one disconnects that client (with the
//! reason logged) and nobody else; a client that dies is noticed through its control socket
//! hanging up, and its sockets are closed at once, which withdraws their bindings
//! cluster-wide and aborts their connections as the kernel does.
//!
//! Flow control towards a client: each socket may have at most [`DELIVERY_WINDOW`] bytes
//! delivered and not yet consumed by the application (the client returns credit with CONSUMED
//! records). Beyond that, messages stay in the node's receive queue, whose limit makes senders
//! see OVERLOAD (datagrams) or a closed window (connections) — nothing is lost silently.

pub mod policy;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use utipc_proto::name_table::Scope as NodeScope;
use utipc_proto::node::{
    Accepted, Addr as NodeAddr, ConnError, DestName as NodeDest, Node, SendError, SendOpts,
    SocketEvent, SocketKind as NodeKind,
};
use utipc_proto::time::Instant;
use utipc_proto::wire::common::Importance as WireImportance;
use utipc_proto::wire::data::ErrorCode as WireError;
use utipc_shm_api::attach_socket::{self, AttachListener, PeerCred};
use utipc_shm_api::doorbell::Doorbell;
use utipc_shm_api::records::{
    self, Hello, MAX_FIXED, MAX_RECORD, Notice, PROTOCOL_VERSION, Request, SockEvent, SockOpt,
    Status, Welcome,
};
use utipc_shm_api::ring::{Consumer, Producer};
use utipc_shm_api::segment::Segment;
use utipc_shm_api::{
    Addr, DestName, ErrorCode, Importance, Scope, ServiceAddr, ServiceRange, SocketAddr, SocketKind,
};

pub use policy::AccessPolicy;

use crate::daemon::Logger;

/// Client → daemon ring capacity.
pub const C2D_CAPACITY: usize = 1 << 20;
/// Daemon → client ring capacity.
pub const D2C_CAPACITY: usize = 2 << 20;
/// Delivered-but-unconsumed bytes allowed per socket.
pub const DELIVERY_WINDOW: u32 = 256 * 1024;
/// Sockets one client may hold open.
pub const MAX_SOCKETS_PER_CLIENT: usize = 4096;
/// Clients attached at once.
pub const MAX_CLIENTS: usize = 1024;
/// Records read from one client per duty cycle (fairness between clients).
const RECORDS_PER_TURN: usize = 256;
/// Replies and events queued for a client whose ring is full before it is disconnected as
/// not reading.
const MAX_OVERFLOW: usize = 65_536;
/// The kernel's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(8000);
/// Duty cycles between looks at the control sockets (new clients, hang-ups) while the engine
/// does not park; after every park they are looked at at once.
const CONTROL_EVERY: u32 = 64;

/// One open socket of a client.
#[derive(Debug)]
struct PortInfo {
    kind: SocketKind,
    opts: SendOpts,
    /// Delivered bytes not yet reported consumed.
    outstanding: u32,
    /// A connect waiting for its outcome: the request number.
    connecting: Option<u32>,
    /// Blocking accepts waiting for a connection.
    accepts: VecDeque<u32>,
    listening: bool,
}

impl PortInfo {
    fn new(kind: SocketKind) -> Self {
        let opts = SendOpts {
            importance: WireImportance::Low,
            dest_droppable: !kind.is_connection(),
            src_droppable: kind == SocketKind::Dgram,
        };
        Self {
            kind,
            opts,
            outstanding: 0,
            connecting: None,
            accepts: VecDeque::new(),
            listening: false,
        }
    }
}

/// One attached client.
#[derive(Debug)]
struct Attached {
    cred: PeerCred,
    control: OwnedFd,
    /// `None` only while [`AttachService::serve_requests`] reads it.
    rx: RefCell<Option<Consumer>>,
    tx: Producer,
    c2d_bell: Doorbell,
    ports: HashMap<u32, PortInfo>,
    /// Notices that did not fit the ring, in order.
    overflow: VecDeque<(i32, Vec<u8>)>,
    /// The client wants a doorbell after this turn's writes.
    ring_pending: bool,
    _segment: Segment,
}

/// Why a client is disconnected.
type Disconnect = String;

/// The attachment service.
#[derive(Debug)]
pub struct AttachService {
    listener: Option<AttachListener>,
    policy: AccessPolicy,
    epoll: OwnedFd,
    clients: BTreeMap<u64, Attached>,
    next_token: u64,
    owner: HashMap<u32, u64>,
    /// Ports with messages left in the node queue (window or ring full).
    retry: BTreeSet<u32>,
    since_control: u32,
    /// Need-wakeup flags are set on the clients' rings (the engine is about to park).
    parked: Cell<bool>,
    /// Accepted connections whose hello has not arrived yet, with their deadline.
    pending: HashMap<u64, (OwnedFd, PeerCred, std::time::Instant)>,
    /// The clients' tokens, collected anew every duty cycle (kept to reuse the allocation).
    tokens: Vec<u64>,
}

/// Tokens of connections waiting for their hello.
const PENDING_BIT: u64 = 1 << 62;
/// How long a connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

const TOK_LISTENER: u64 = u64::MAX;

fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the descriptor is owned at once.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_ctl(ep: &OwnedFd, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
        u64: token,
    };
    // SAFETY: valid epoll and event.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &raw mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AttachService {
    /// A service listening on `dir/attach.sock`.
    ///
    /// # Errors
    ///
    /// The OS error of creating the socket or the epoll instance.
    pub fn bind(dir: &Path, policy: AccessPolicy) -> io::Result<Self> {
        let listener = AttachListener::bind(dir)?;
        let mut s = Self::without_listener(policy)?;
        epoll_ctl(
            &s.epoll,
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            TOK_LISTENER,
        )?;
        s.listener = Some(listener);
        Ok(s)
    }

    /// A service without a socket (embedded mode: clients come through
    /// [`AttachService::adopt`]).
    ///
    /// # Errors
    ///
    /// The OS error of creating the epoll instance.
    pub fn without_listener(policy: AccessPolicy) -> io::Result<Self> {
        Ok(Self {
            listener: None,
            policy,
            epoll: epoll_create()?,
            clients: BTreeMap::new(),
            next_token: 1,
            owner: HashMap::new(),
            retry: BTreeSet::new(),
            since_control: 0,
            parked: Cell::new(false),
            pending: HashMap::new(),
            tokens: Vec::new(),
        })
    }

    /// The attach socket's path, if listening.
    pub fn path(&self) -> Option<&Path> {
        self.listener.as_ref().map(AttachListener::path)
    }

    /// Clients attached now.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Descriptors the engine should sleep on: the control epoll and every client's doorbell.
    pub fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        fds.push(self.epoll.as_raw_fd());
        fds.extend(self.clients.values().map(|c| c.c2d_bell.as_raw_fd()));
    }

    /// Before the engine parks: asks every client to ring its doorbell on its next write.
    /// Returns false when a client wrote meanwhile (do not park).
    pub fn prepare_park(&self) -> bool {
        self.parked.set(true);
        let mut ok = true;
        for c in self.clients.values() {
            if let Ok(mut rx) = c.rx.try_borrow_mut()
                && let Some(rx) = rx.as_mut()
                && !rx.prepare_to_sleep()
            {
                ok = false;
            }
        }
        ok
    }

    /// One duty cycle: requests in, deliveries out. Returns the work done.
    pub fn turn(&mut self, node: &mut Node, now: Instant, log: &mut Logger) -> usize {
        let woke = self.parked.replace(false);
        if woke {
            for c in self.clients.values() {
                if let Ok(mut rx) = c.rx.try_borrow_mut()
                    && let Some(rx) = rx.as_mut()
                {
                    rx.woke();
                }
                let _ = c.c2d_bell.drain();
            }
        }
        let mut work = self.serve_requests(node, now, log);
        work += self.dispatch(node, now, log);
        self.since_control += 1;
        // Not on every idle cycle: a spinning engine would make an epoll_wait(2) per cycle
        // (~0.5 µs on the 2-vCPU VM, half of an idle cycle), which delays noticing the next
        // request by as much. A parking engine sleeps on the epoll descriptor too, so after a
        // park (`woke`) the control sockets are served at once.
        if woke || self.since_control >= CONTROL_EVERY {
            self.since_control = 0;
            work += self.serve_control(node, now, log);
        }
        self.ring_doorbells();
        work
    }

    /// Attaches a client whose control socket is `control`, waiting (up to 2 s) for its
    /// hello: for trusted in-process clients (embedded mode). Clients of the attach socket go
    /// through a non-blocking handshake instead, so no connecting process can stall the duty
    /// cycle.
    pub fn adopt(&mut self, control: OwnedFd, cred: PeerCred, node: &Node, log: &mut Logger) {
        let r = match attach_socket::wait_readable(control.as_fd(), Some(HELLO_TIMEOUT)) {
            Ok(true) => self.handshake(control, cred, node),
            Ok(false) => Err("no hello within 2 s".into()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = r {
            log.info(format_args!(
                "client pid {} uid {}: attachment failed: {e}",
                cred.pid, cred.uid
            ));
        }
    }

    /// Reads the hello (readable now), checks it and the credentials, and sets the client up.
    fn handshake(&mut self, control: OwnedFd, cred: PeerCred, node: &Node) -> Result<(), String> {
        let refuse = |control: &OwnedFd, why: String| {
            let _ = attach_socket::send_with_fds(
                control.as_fd(),
                &Welcome::Refused(why.clone()).encode(),
                &[],
            );
            why
        };
        let mut buf = [0u8; 64];
        let (n, _) = attach_socket::recv_with_fds(control.as_fd(), &mut buf, 0)
            .map_err(|e| format!("reading the hello: {e}"))?;
        let hello = Hello::decode(buf.get(..n).unwrap_or(&[]))
            .map_err(|e| refuse(&control, e.to_owned()))?;
        if hello.version != PROTOCOL_VERSION {
            return Err(refuse(
                &control,
                format!(
                    "client speaks attachment protocol {}, utipcd {PROTOCOL_VERSION}: use \
                     matching versions",
                    hello.version
                ),
            ));
        }
        self.policy
            .check(&cred)
            .map_err(|why| refuse(&control, why))?;
        if self.clients.len() >= MAX_CLIENTS {
            return Err(refuse(
                &control,
                format!("utipcd serves at most {MAX_CLIENTS} clients: retry later"),
            ));
        }
        let segment = Segment::create(C2D_CAPACITY, D2C_CAPACITY)
            .map_err(|e| refuse(&control, format!("cannot create the shared segment: {e}")))?;
        let rx = segment
            .c2d_consumer(MAX_RECORD)
            .map_err(|e| refuse(&control, e.to_string()))?;
        let tx = segment
            .d2c_producer()
            .map_err(|e| refuse(&control, e.to_string()))?;
        let c2d_bell = Doorbell::new().map_err(|e| refuse(&control, e.to_string()))?;
        let welcome = Welcome::Accepted {
            version: PROTOCOL_VERSION,
            node: node.addr(),
            node_id: node.node_id().0,
        };
        attach_socket::send_with_fds(
            control.as_fd(),
            &welcome.encode(),
            &[segment.fd(), c2d_bell.as_fd()],
        )
        .map_err(|e| format!("sending the welcome: {e}"))?;
        let token = self.next_token;
        self.next_token += 1;
        epoll_ctl(&self.epoll, libc::EPOLL_CTL_ADD, control.as_raw_fd(), token)
            .map_err(|e| format!("watching the control socket: {e}"))?;
        self.clients.insert(
            token,
            Attached {
                cred,
                control,
                rx: RefCell::new(Some(rx)),
                tx,
                c2d_bell,
                ports: HashMap::new(),
                overflow: VecDeque::new(),
                ring_pending: false,
                _segment: segment,
            },
        );
        Ok(())
    }

    /// Accepts new clients and notices dead ones.
    fn serve_control(&mut self, node: &mut Node, now: Instant, log: &mut Logger) -> usize {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 32];
        // SAFETY: valid epoll and buffer.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 32, 0) };
        let n = usize::try_from(n).unwrap_or(0);
        let mut work = 0;
        for ev in events.iter().take(n) {
            let token = ev.u64;
            work += 1;
            if token == TOK_LISTENER {
                self.accept_new(log);
            } else if let Some((fd, cred, _)) = self.pending.remove(&token) {
                self.unwatch(fd.as_raw_fd());
                if let Err(e) = self.handshake(fd, cred, node) {
                    log.info(format_args!(
                        "client pid {} uid {}: attachment failed: {e}",
                        cred.pid, cred.uid
                    ));
                }
            } else if self.clients.contains_key(&token) {
                // The client never writes after the hello: readable means hang-up (EOF) or
                // misbehaviour; either way it goes. (Our wake-up bytes travel the other way.)
                self.drop_client(
                    token,
                    node,
                    now,
                    log,
                    "closed its attachment (exited or killed)",
                );
            }
        }
        if !self.pending.is_empty() {
            let t = std::time::Instant::now();
            let late: Vec<u64> = self
                .pending
                .iter()
                .filter(|(_, (_, _, deadline))| t >= *deadline)
                .map(|(k, _)| *k)
                .collect();
            for k in late {
                if let Some((fd, cred, _)) = self.pending.remove(&k) {
                    self.unwatch(fd.as_raw_fd());
                    log.info(format_args!(
                        "client pid {} uid {}: no hello within 2 s, dropped",
                        cred.pid, cred.uid
                    ));
                }
            }
        }
        work
    }

    fn unwatch(&self, fd: RawFd) {
        // SAFETY: deregistering a descriptor from our own epoll.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
    }

    /// Accepts waiting connections; each is watched until its hello arrives.
    fn accept_new(&mut self, log: &mut Logger) {
        let Some(listener) = &self.listener else {
            return;
        };
        let mut accepted = Vec::new();
        for _ in 0..16 {
            match listener.accept() {
                Ok(Some(p)) => accepted.push(p),
                Ok(None) => break,
                Err(e) => {
                    log.info(format_args!("cannot accept a client: {e}"));
                    break;
                }
            }
        }
        for (fd, cred) in accepted {
            if self.pending.len() >= MAX_CLIENTS {
                log.info(format_args!(
                    "client pid {} uid {}: too many handshakes in progress, dropped",
                    cred.pid, cred.uid
                ));
                continue;
            }
            let token = PENDING_BIT | self.next_token;
            self.next_token += 1;
            if let Err(e) = epoll_ctl(&self.epoll, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), token) {
                log.info(format_args!("cannot watch a client: {e}"));
                continue;
            }
            log.debug(format_args!(
                "client pid {} uid {} connected",
                cred.pid, cred.uid
            ));
            self.pending
                .insert(token, (fd, cred, std::time::Instant::now() + HELLO_TIMEOUT));
        }
    }

    /// Disconnects a client: closes its sockets (bindings withdrawn, connections aborted).
    fn drop_client(
        &mut self,
        token: u64,
        node: &mut Node,
        now: Instant,
        log: &mut Logger,
        why: &str,
    ) {
        let Some(c) = self.clients.remove(&token) else {
            return;
        };
        self.unwatch(c.control.as_raw_fd());
        for port in c.ports.keys() {
            let _ = node.close_port(now, *port);
            self.owner.remove(port);
            self.retry.remove(port);
        }
        log.info(format_args!(
            "client pid {} uid {} {why}; closed its {} socket(s)",
            c.cred.pid,
            c.cred.uid,
            c.ports.len()
        ));
    }

    /// Reads and applies every client's requests.
    ///
    /// Each request is applied straight from the ring's read buffer: the client's consumer
    /// leaves it for the duration (requests need the whole service), instead of every record
    /// being copied out first (a 64 KiB send cost a 64 KiB allocation and copy more; about 6 %
    /// of the daemon's time in the 64 KiB intra-node round trip of `utipc-bench intra`).
    fn serve_requests(&mut self, node: &mut Node, now: Instant, log: &mut Logger) -> usize {
        let mut work = 0;
        let mut bad: Vec<(u64, String)> = Vec::new();
        let mut tokens = std::mem::take(&mut self.tokens);
        tokens.clear();
        tokens.extend(self.clients.keys().copied());
        for &token in &tokens {
            let Some(mut rx) = self
                .clients
                .get(&token)
                .and_then(|c| c.rx.borrow_mut().take())
            else {
                continue;
            };
            let mut failed: Option<String> = None;
            let r = rx.read(RECORDS_PER_TURN, |kind, body| {
                // After a bad record the client goes; what follows it is not applied.
                if failed.is_some() {
                    return;
                }
                match Request::decode(kind, body) {
                    Ok(req) => {
                        if let Err(why) = self.execute(token, node, now, req) {
                            failed = Some(why);
                        }
                    }
                    Err(e) => failed = Some(format!("sent a malformed record: {e}")),
                }
            });
            if let Some(c) = self.clients.get(&token) {
                *c.rx.borrow_mut() = Some(rx);
            }
            match r {
                Ok(n) => work += n,
                Err(e) => failed = Some(format!("corrupted its request ring ({e})")),
            }
            if let Some(why) = failed {
                bad.push((token, why));
            }
        }
        self.tokens = tokens;
        for (token, why) in bad {
            self.drop_client(token, node, now, log, &format!("disconnected: {why}"));
        }
        work
    }

    /// Applies one request. `Err`: disconnect the client.
    fn execute(
        &mut self,
        token: u64,
        node: &mut Node,
        now: Instant,
        req: Request<'_>,
    ) -> Result<(), Disconnect> {
        let c = self.clients.get_mut(&token).ok_or("gone")?;
        match req {
            Request::Open { req, kind } => {
                if c.ports.len() >= MAX_SOCKETS_PER_CLIENT {
                    return reply(c, req, Status::Limit, [0; 3]);
                }
                let port = node.open_socket(node_kind(kind));
                c.ports.insert(port, PortInfo::new(kind));
                self.owner.insert(port, token);
                reply(c, req, Status::Ok, [port, 0, 0])
            }
            Request::Close { req, sock } => {
                if c.ports.remove(&sock).is_none() {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                }
                self.owner.remove(&sock);
                self.retry.remove(&sock);
                let _ = node.close_port(now, sock);
                reply(c, req, Status::Ok, [0; 3])
            }
            Request::Bind {
                req,
                sock,
                scope,
                range,
                unbind,
            } => {
                if !c.ports.contains_key(&sock) {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                }
                let r = if unbind {
                    node.unbind(now, sock, range.service_type, range.lower, range.upper)
                        .map_err(|_| Status::NoSuchBinding)
                } else {
                    let scope = match scope {
                        Scope::Cluster => NodeScope::Cluster,
                        Scope::Node => NodeScope::Node,
                    };
                    node.bind(
                        now,
                        sock,
                        scope,
                        range.service_type,
                        range.lower,
                        range.upper,
                    )
                    .map(drop)
                    .map_err(|e| match e {
                        utipc_proto::node::NodeError::ReservedType
                        | utipc_proto::node::NodeError::BadRange => Status::BadAddress,
                        _ => Status::NoSuchBinding,
                    })
                };
                reply(c, req, r.err().unwrap_or(Status::Ok), [0; 3])
            }
            Request::Send {
                req,
                sock,
                to,
                data,
            } => {
                let Some(info) = c.ports.get(&sock) else {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                };
                let r = match to {
                    None => {
                        if !info.kind.is_connection() {
                            Err(Status::NotConnected)
                        } else {
                            node.send_conn(now, sock, data)
                                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                                .map_err(send_status)
                        }
                    }
                    Some(_) if info.kind.is_connection() => Err(Status::WrongState),
                    Some(to) => node
                        .send(now, sock, node_addr(to), info.opts, data)
                        .map(|()| u32::try_from(data.len()).unwrap_or(u32::MAX))
                        .map_err(send_status),
                };
                if req == 0 {
                    return Ok(());
                }
                match r {
                    Ok(n) => reply(c, req, Status::Ok, [n, 0, 0]),
                    Err(s) => reply(c, req, s, [0; 3]),
                }
            }
            Request::Connect {
                req,
                sock,
                timeout_ms,
                to,
                data,
            } => {
                let Some(info) = c.ports.get_mut(&sock) else {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                };
                if !info.kind.is_connection() || info.connecting.is_some() || info.listening {
                    return reply(c, req, Status::WrongState, [0; 3]);
                }
                let timeout = if timeout_ms == 0 {
                    DEFAULT_CONNECT_TIMEOUT
                } else {
                    Duration::from_millis(u64::from(timeout_ms))
                };
                match node.connect(now, sock, node_addr(to), info.opts, data, timeout) {
                    Ok(()) => {
                        info.connecting = Some(req);
                        Ok(())
                    }
                    Err(e) => reply(c, req, conn_status(&e), [0; 3]),
                }
            }
            Request::Listen { req, sock } => {
                let Some(info) = c.ports.get_mut(&sock) else {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                };
                match node.listen(sock) {
                    Ok(()) => {
                        info.listening = true;
                        reply(c, req, Status::Ok, [0; 3])
                    }
                    Err(_) => reply(c, req, Status::WrongState, [0; 3]),
                }
            }
            Request::Accept { req, sock } => {
                let Some(info) = c.ports.get_mut(&sock) else {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                };
                if !info.listening {
                    return reply(c, req, Status::WrongState, [0; 3]);
                }
                info.accepts.push_back(req);
                self.serve_accepts(token, sock, node, now)
            }
            Request::Shutdown { req, sock } => {
                if !c.ports.contains_key(&sock) {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                }
                match node.shutdown_conn(now, sock) {
                    Ok(()) => reply(c, req, Status::Ok, [0; 3]),
                    Err(_) => reply(c, req, Status::NotConnected, [0; 3]),
                }
            }
            Request::SetOpt { req, sock, opt } => {
                let Some(info) = c.ports.get_mut(&sock) else {
                    return reply(c, req, Status::NoSuchSocket, [0; 3]);
                };
                match opt {
                    SockOpt::Importance(i) => info.opts.importance = wire_importance(i),
                    SockOpt::DestDroppable(b) => info.opts.dest_droppable = b,
                    SockOpt::SrcDroppable(b) => info.opts.src_droppable = b,
                    SockOpt::RcvBuf(v) => {
                        let v = usize::try_from(v).unwrap_or(usize::MAX);
                        let _ = node.set_rcvbuf(sock, v.clamp(512 * 1024, 16 * 1024 * 1024));
                    }
                }
                reply(c, req, Status::Ok, [0; 3])
            }
            Request::Consumed { sock, bytes } => {
                if let Some(info) = c.ports.get_mut(&sock) {
                    info.outstanding = info.outstanding.saturating_sub(bytes);
                    self.retry.insert(sock);
                }
                Ok(())
            }
        }
    }

    /// Answers waiting accepts of listener `sock` while connections are pending.
    fn serve_accepts(
        &mut self,
        token: u64,
        sock: u32,
        node: &mut Node,
        now: Instant,
    ) -> Result<(), Disconnect> {
        loop {
            let Some(c) = self.clients.get_mut(&token) else {
                return Ok(());
            };
            let Some(info) = c.ports.get_mut(&sock) else {
                return Ok(());
            };
            let Some(&req) = info.accepts.front() else {
                return Ok(());
            };
            let kind = info.kind;
            let Some(Accepted { port, peer, .. }) = node.accept(now, sock) else {
                return Ok(());
            };
            info.accepts.pop_front();
            let mut new = PortInfo::new(kind);
            new.opts.importance = info.opts.importance;
            c.ports.insert(port, new);
            self.owner.insert(port, token);
            reply(c, req, Status::Ok, [port, peer.0, peer.1])?;
            // Deliveries for the new socket (the SYN's data) come after the reply.
            self.retry.insert(port);
        }
    }

    /// Moves what the node has for the clients into their rings.
    fn dispatch(&mut self, node: &mut Node, now: Instant, log: &mut Logger) -> usize {
        let mut work = 0;
        let mut bad: Vec<(u64, String)> = Vec::new();
        while let Some(ev) = node.poll_socket_event() {
            work += 1;
            let port = match ev {
                SocketEvent::Readable(p)
                | SocketEvent::Writable(p)
                | SocketEvent::Connected { port: p, .. }
                | SocketEvent::ConnectFailed { port: p, .. }
                | SocketEvent::Disconnected { port: p, .. } => p,
            };
            let Some(&token) = self.owner.get(&port) else {
                continue;
            };
            if let Err(why) = self.on_socket_event(token, ev, node, now) {
                bad.push((token, why));
            }
        }
        let retry = std::mem::take(&mut self.retry);
        for port in retry {
            let Some(&token) = self.owner.get(&port) else {
                continue;
            };
            if let Err(why) = self.deliver(token, port, node) {
                bad.push((token, why));
            }
        }
        for c in self.clients.values_mut() {
            while let Some((kind, body)) = c.overflow.front() {
                if c.tx.try_write(*kind, &[body]).is_err() {
                    break;
                }
                c.overflow.pop_front();
                c.ring_pending = true;
            }
        }
        for (token, why) in bad {
            self.drop_client(token, node, now, log, &format!("disconnected: {why}"));
        }
        work
    }

    fn on_socket_event(
        &mut self,
        token: u64,
        ev: SocketEvent,
        node: &mut Node,
        now: Instant,
    ) -> Result<(), Disconnect> {
        let c = self.clients.get_mut(&token).ok_or("gone")?;
        match ev {
            SocketEvent::Readable(port) => {
                let listening = c.ports.get(&port).is_some_and(|i| i.listening);
                if listening {
                    let has_waiter = c.ports.get(&port).is_some_and(|i| !i.accepts.is_empty());
                    if has_waiter {
                        return self.serve_accepts(token, port, node, now);
                    }
                    return notice(
                        c,
                        &Notice::Event {
                            sock: port,
                            event: SockEvent::Incoming,
                        },
                    );
                }
                self.deliver(token, port, node)
            }
            SocketEvent::Writable(port) => notice(
                c,
                &Notice::Event {
                    sock: port,
                    event: SockEvent::Writable,
                },
            ),
            SocketEvent::Connected { port, peer } => {
                let Some(req) = c.ports.get_mut(&port).and_then(|i| i.connecting.take()) else {
                    return Ok(());
                };
                reply(c, req, Status::Ok, [peer.0, peer.1, 0])?;
                self.retry.insert(port);
                Ok(())
            }
            SocketEvent::ConnectFailed { port, reason } => {
                let Some(req) = c.ports.get_mut(&port).and_then(|i| i.connecting.take()) else {
                    return Ok(());
                };
                reply(c, req, conn_status(&reason), [0; 3])
            }
            SocketEvent::Disconnected { port, error } => {
                if let Some(req) = c.ports.get_mut(&port).and_then(|i| i.connecting.take()) {
                    reply(c, req, Status::Reset, [0; 3])?;
                }
                let code = api_error(error).unwrap_or(ErrorCode::NoPort);
                notice(
                    c,
                    &Notice::Event {
                        sock: port,
                        event: SockEvent::Disconnected(code),
                    },
                )?;
                self.deliver(token, port, node)
            }
        }
    }

    /// Moves messages of `port` from the node queue into the client's ring while its window
    /// and ring allow.
    fn deliver(&mut self, token: u64, port: u32, node: &mut Node) -> Result<(), Disconnect> {
        let c = self.clients.get_mut(&token).ok_or("gone")?;
        let Some(info) = c.ports.get_mut(&port) else {
            return Ok(());
        };
        if info.listening {
            return Ok(());
        }
        loop {
            let room =
                c.tx.can_write(MAX_FIXED + records::MAX_DATA)
                    .map_err(|e| format!("delivery ring: {e}"))?;
            if info.outstanding >= DELIVERY_WINDOW || !room {
                if node.queued(port) > 0 {
                    self.retry.insert(port);
                }
                return Ok(());
            }
            let Some(m) = node.recv(port) else {
                return Ok(());
            };
            let len = u32::try_from(m.data.len()).unwrap_or(u32::MAX);
            info.outstanding = info
                .outstanding
                .saturating_add(len.saturating_add(records::DELIVERY_OVERHEAD));
            let n = Notice::Deliver {
                sock: port,
                from: SocketAddr {
                    port: m.from.0,
                    node: m.from.1,
                },
                dest: api_dest(m.dest),
                importance: api_importance(m.importance),
                error: m.error.and_then(api_error),
                data: &m.data,
            };
            let mut head = [0u8; MAX_FIXED];
            let (kind, hl, data) = n.encode(&mut head);
            // Space was checked above; a failure here means the ring is broken.
            c.tx.try_write(kind, &[head.get(..hl).unwrap_or(&[]), data])
                .map_err(|e| format!("delivery ring: {e}"))?;
            c.ring_pending = true;
        }
    }

    /// Rings the doorbells of clients that asked for one and got records this turn.
    fn ring_doorbells(&mut self) {
        for c in self.clients.values_mut() {
            if std::mem::take(&mut c.ring_pending) && c.tx.consumer_wants_wakeup() {
                attach_socket::wake(c.control.as_fd());
            }
        }
    }

    /// Closes every client (daemon shutdown): their sockets are closed on the node.
    pub fn close_all(&mut self, node: &mut Node, now: Instant, log: &mut Logger) {
        let tokens: Vec<u64> = self.clients.keys().copied().collect();
        for t in tokens {
            self.drop_client(t, node, now, log, "detached: utipcd is stopping");
        }
    }
}

/// Writes a notice, or queues it when the ring is full.
fn notice(c: &mut Attached, n: &Notice<'_>) -> Result<(), Disconnect> {
    let mut head = [0u8; MAX_FIXED];
    let (kind, hl, data) = n.encode(&mut head);
    let fixed = head.get(..hl).unwrap_or(&[]);
    if c.overflow.is_empty() && c.tx.try_write(kind, &[fixed, data]).is_ok() {
        c.ring_pending = true;
        return Ok(());
    }
    if c.overflow.len() >= MAX_OVERFLOW {
        return Err("stopped reading its ring (too many undelivered replies)".into());
    }
    let mut body = fixed.to_vec();
    body.extend_from_slice(data);
    c.overflow.push_back((kind, body));
    Ok(())
}

fn reply(c: &mut Attached, req: u32, status: Status, values: [u32; 3]) -> Result<(), Disconnect> {
    if req == 0 {
        return Ok(());
    }
    notice(
        c,
        &Notice::Reply {
            req,
            status: status as u32,
            values,
        },
    )
}

fn node_kind(k: SocketKind) -> NodeKind {
    match k {
        SocketKind::Rdm => NodeKind::Rdm,
        SocketKind::Dgram => NodeKind::Dgram,
        SocketKind::Seqpacket => NodeKind::Seqpacket,
        SocketKind::Stream => NodeKind::Stream,
    }
}

fn node_addr(a: Addr) -> NodeAddr {
    match a {
        Addr::Socket(s) => NodeAddr::Socket {
            port: s.port,
            node: s.node,
        },
        Addr::Service(s) => NodeAddr::Service {
            service_type: s.service_type,
            instance: s.instance,
            domain: s.domain,
        },
        Addr::Range(r) => NodeAddr::Range {
            service_type: r.service_type,
            lower: r.lower,
            upper: r.upper,
        },
    }
}

fn api_dest(d: NodeDest) -> DestName {
    match d {
        NodeDest::Socket => DestName::Socket,
        NodeDest::Service {
            service_type,
            instance,
        } => DestName::Service(ServiceAddr::new(service_type, instance)),
        NodeDest::Range {
            service_type,
            lower,
            upper,
        } => DestName::Range(ServiceRange::new(service_type, lower, upper)),
    }
}

fn wire_importance(i: Importance) -> WireImportance {
    match i {
        Importance::Low => WireImportance::Low,
        Importance::Medium => WireImportance::Medium,
        Importance::High => WireImportance::High,
        Importance::Critical => WireImportance::Critical,
    }
}

fn api_importance(i: WireImportance) -> Importance {
    match i {
        WireImportance::Low => Importance::Low,
        WireImportance::Medium => Importance::Medium,
        WireImportance::High => Importance::High,
        _ => Importance::Critical,
    }
}

fn api_error(e: WireError) -> Option<ErrorCode> {
    ErrorCode::from_code(u32::from(u8::from(e)))
}

fn send_status(e: SendError) -> Status {
    match e {
        SendError::NoSuchPort => Status::NoSuchSocket,
        SendError::NotReady => Status::NotReady,
        SendError::NoRoute => Status::NoRoute,
        SendError::Unreachable => Status::Unreachable,
        SendError::Congested => Status::WouldBlock,
        SendError::TooLarge => Status::TooLarge,
        SendError::BadAddress => Status::BadAddress,
        SendError::WouldBlock => Status::WouldBlock,
        SendError::NotConnected => Status::NotConnected,
        SendError::Disconnected => Status::Reset,
        #[allow(unreachable_patterns, reason = "the node may grow send errors")]
        _ => Status::WrongState,
    }
}

fn conn_status(e: &ConnError) -> Status {
    match e {
        ConnError::NoSuchPort => Status::NoSuchSocket,
        ConnError::Refused(_) => Status::Refused,
        ConnError::Timeout => Status::TimedOut,
        ConnError::NodeDown => Status::Reset,
        ConnError::NotReady => Status::NotReady,
        ConnError::NoRoute => Status::NoRoute,
        ConnError::Unreachable => Status::Unreachable,
        ConnError::TooLarge => Status::TooLarge,
        ConnError::Congested => Status::WouldBlock,
        ConnError::BadAddress => Status::BadAddress,
        _ => Status::WrongState,
    }
}
