//! The endpoints of every transport: a client that sends and receives whole messages without
//! blocking, and a server that echoes (or, for throughput, only counts) what it receives.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use utipc_dataplane::bearer::Bearer;
use utipc_dataplane::bearer::packet::PacketBearer;
use utipc_dataplane::bearer::udp::{UdpBearer, UdpBearerConfig};
use utipc_dataplane::bearer::xdp::{XdpBearer, XdpBearerConfig};
use utipc_dataplane::runtime::NodeRuntime;
use utipc_ebpf::{AttachMode, XdpSteering};
use utipc_proto::addr::NodeId;
use utipc_proto::bearer::Dest;
use utipc_proto::name_table::Scope;
use utipc_proto::node::{Addr, Node, NodeConfig, SendError, SendOpts};
use utipc_proto::wire::discovery::MediaAddr;

use crate::netns::{self, A4, B4, VETH};

/// The kernel UDP/TCP port of the baselines.
pub const PORT: u16 = 18_888;
/// The TIPC service type the server binds (instance 17).
pub const SERVICE: u32 = 18_888;
/// Largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Largest TIPC user message.
pub const MAX_TIPC_PAYLOAD: usize = 66_000;
/// Receive buffer size every client hands to `recv`.
pub const RECV_BUF: usize = 70_000;
/// Messages per burst when streaming: the sender flushes (one kick of the AF_XDP TX ring,
/// one duty cycle of the TIPC stack) after this many, the same for TIPC and raw AF_XDP.
pub const STREAM_BURST: usize = 32;
/// Bytes per burst when streaming: a burst also ends once it holds this much.
pub const STREAM_BURST_BYTES: usize = 64 * 1024;

/// What an idle loop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Idle {
    /// Busy-poll: never sleep.
    Spin,
    /// Sleep in poll(2) on the socket until something arrives.
    Block,
}

/// Server modes, set by the client.
pub const ECHO: u8 = 0;
/// Count, do not echo.
pub const SINK: u8 = 1;
/// Stop.
pub const QUIT: u8 = 2;

/// State the client and server threads share.
#[derive(Debug, Default)]
pub struct Shared {
    /// [`ECHO`], [`SINK`] or [`QUIT`].
    pub mode: AtomicU8,
    /// The server is listening (bound, link up).
    pub ready: AtomicBool,
    /// Messages the server received.
    pub rx_msgs: AtomicU64,
    /// Bytes the server received.
    pub rx_bytes: AtomicU64,
    /// What the server says about its setup (XDP modes).
    pub info: Mutex<Vec<String>>,
}

impl Shared {
    /// Whether the client should stop waiting on the server.
    pub fn quit(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == QUIT || netns::stopped()
    }

    fn note(&self, s: String) {
        if let Ok(mut v) = self.info.lock() {
            v.push(s);
        }
    }
}

/// Waits for `fd` to become readable (and writable with `out`) for at most `max`.
fn poll_fd(fd: RawFd, out: bool, max: Duration) {
    let mut events = libc::POLLIN;
    if out {
        events |= libc::POLLOUT;
    }
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = libc::c_int::try_from(max.as_millis().clamp(1, 1000)).unwrap_or(1);
    // SAFETY: one valid pollfd on the stack, count 1.
    unsafe { libc::poll(&mut p, 1, ms) };
}

fn idle_wait(idle: Idle, fd: RawFd, out: bool, max: Duration) {
    match idle {
        Idle::Spin => std::hint::spin_loop(),
        Idle::Block => poll_fd(fd, out, max),
    }
}

/// The client side of one transport.
pub trait Client {
    /// Largest payload the transport carries.
    fn max_payload(&self) -> usize;
    /// Sets the size of the messages that follow (TCP needs it to find message boundaries).
    fn set_size(&mut self, _size: usize) {}
    /// Sends one message; `Ok(false)` when there is no room now (call [`Client::wait`]).
    fn send(&mut self, msg: &[u8]) -> io::Result<bool>;
    /// Sends one message of a burst: the transport may hold it until [`Client::flush`], as a
    /// poll-mode stack holds what one duty cycle queued and pushes it out once (the streaming
    /// measurement flushes every [`STREAM_BURST`] messages or [`STREAM_BURST_BYTES`]).
    /// `Ok(false)` as for `send`, with what was held flushed. Kernel sockets send at once: one
    /// system call per message is their API.
    fn send_more(&mut self, msg: &[u8]) -> io::Result<bool> {
        self.send(msg)
    }
    /// Pushes out what [`Client::send_more`] held.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// One whole message into `buf` ([`RECV_BUF`] bytes): its length, or `None`.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Nothing to do: spin once, or sleep at most `max` until the socket is ready.
    fn wait(&mut self, idle: Idle, max: Duration);
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

// ---- kernel UDP ----

/// A connected, non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpClient(UdpSocket);

impl UdpClient {
    /// Connects to the server.
    pub fn open() -> io::Result<Self> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(SocketAddr::new(B4.parse().map_err(io::Error::other)?, PORT))?;
        s.set_nonblocking(true)?;
        Ok(Self(s))
    }
}

impl Client for UdpClient {
    fn max_payload(&self) -> usize {
        MAX_UDP_PAYLOAD
    }
    fn send(&mut self, msg: &[u8]) -> io::Result<bool> {
        match self.0.send(msg) {
            Ok(_) => Ok(true),
            Err(e) if would_block(&e) || e.kind() == ErrorKind::ConnectionRefused => Ok(false),
            Err(e) => Err(e),
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.0.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if would_block(&e) || e.kind() == ErrorKind::ConnectionRefused => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn wait(&mut self, idle: Idle, max: Duration) {
        idle_wait(idle, self.0.as_raw_fd(), false, max);
    }
}

// ---- kernel TCP ----

/// A non-blocking TCP_NODELAY stream with message reassembly.
#[derive(Debug)]
pub struct TcpClient {
    s: TcpStream,
    size: usize,
    out: Vec<u8>,
    inbuf: Vec<u8>,
}

impl TcpClient {
    /// Connects to the server.
    pub fn open() -> io::Result<Self> {
        let s = TcpStream::connect(SocketAddr::new(B4.parse().map_err(io::Error::other)?, PORT))?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        Ok(Self {
            s,
            size: 64,
            out: Vec::new(),
            inbuf: Vec::new(),
        })
    }

    fn push_out(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.s.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Client for TcpClient {
    fn max_payload(&self) -> usize {
        usize::MAX
    }
    fn set_size(&mut self, size: usize) {
        self.size = size;
    }
    fn send(&mut self, msg: &[u8]) -> io::Result<bool> {
        self.push_out()?;
        if !self.out.is_empty() {
            return Ok(false);
        }
        match self.s.write(msg) {
            Ok(n) => self.out.extend_from_slice(&msg[n..]),
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
        Ok(true)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.push_out()?;
        let want = self.size.min(buf.len());
        while self.inbuf.len() < want {
            let have = self.inbuf.len();
            self.inbuf.resize(want.max(have + 4096), 0);
            match self.s.read(&mut self.inbuf[have..]) {
                Ok(0) => {
                    self.inbuf.truncate(have);
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "server closed"));
                }
                Ok(n) => self.inbuf.truncate(have + n),
                Err(e) if would_block(&e) => {
                    self.inbuf.truncate(have);
                    return Ok(None);
                }
                Err(e) => {
                    self.inbuf.truncate(have);
                    return Err(e);
                }
            }
        }
        buf[..want].copy_from_slice(&self.inbuf[..want]);
        self.inbuf.drain(..want);
        Ok(Some(want))
    }
    fn wait(&mut self, idle: Idle, max: Duration) {
        let _ = self.push_out();
        idle_wait(idle, self.s.as_raw_fd(), !self.out.is_empty(), max);
    }
}

// ---- TIPC ----

/// Which bearer a TIPC node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerKind {
    /// UDP bearer.
    Udp,
    /// AF_PACKET bearer.
    Packet,
    /// AF_XDP bearer with the steering program.
    Xdp,
}

/// A node with one bearer on the namespace's veth (and the steering program for AF_XDP).
fn tipc_node(
    name: &str,
    seed: u64,
    kind: BearerKind,
    local: &str,
) -> io::Result<(NodeRuntime, Option<XdpSteering>, String)> {
    let id: NodeId = name
        .parse()
        .map_err(|e| io::Error::other(format!("{e:?}")))?;
    // As utipcd runs its node: messages sent in one duty cycle leave as one bundle.
    let mut ncfg = NodeConfig::new(id, seed);
    ncfg.bundle_bursts = true;
    let mut rt = NodeRuntime::new(Node::new(ncfg));
    let (bearer, steering, info): (Box<dyn Bearer + Send>, _, String) = match kind {
        BearerKind::Udp => {
            let ip = local.parse().map_err(io::Error::other)?;
            let b = UdpBearer::open(UdpBearerConfig::new(ip, 4711))?;
            let info = format!("UDP bearer MTU {}", b.mtu());
            (Box::new(b), None, info)
        }
        BearerKind::Packet => (
            Box::new(PacketBearer::open(VETH)?),
            None,
            "AF_PACKET".to_owned(),
        ),
        BearerKind::Xdp => {
            let (b, s) = open_xdp()?;
            let info = format!(
                "AF_XDP socket {} mode, XDP program {} mode",
                b.mode(),
                s.mode()
            );
            (Box::new(b), Some(s), info)
        }
    };
    rt.add_bearer(bearer, "bench:veth0", VETH, Duration::from_millis(1500))
        .map_err(|e| io::Error::other(format!("add bearer: {e:?}")))?;
    Ok((rt, steering, info))
}

/// Attaches the steering program to the veth and opens an AF_XDP bearer registered in it.
pub fn open_xdp() -> io::Result<(XdpBearer, XdpSteering)> {
    let mut steering = XdpSteering::attach(VETH, AttachMode::Auto)
        .map_err(|e| io::Error::other(format!("attach the XDP steering program: {e}")))?;
    let bearer = XdpBearer::open(XdpBearerConfig::new(VETH), &mut |queue, fd| {
        steering.register_xsk(queue, fd).map_err(io::Error::other)
    })?;
    Ok((bearer, steering))
}

/// A TIPC node sending datagrams to the service {18888, 17}.
#[derive(Debug)]
pub struct TipcClient {
    rt: NodeRuntime,
    port: u32,
    /// The instant of the burst being sent with [`Client::send_more`]: one clock reading per
    /// burst, as a duty cycle has, so that the link may bundle the burst.
    burst_now: Option<utipc_proto::time::Instant>,
    _steering: Option<XdpSteering>,
    /// Bearer description.
    pub info: String,
}

impl TipcClient {
    /// Hands one datagram to the node at `now`: `Ok(false)` when the link is congested.
    fn submit(&mut self, now: utipc_proto::time::Instant, msg: &[u8]) -> io::Result<bool> {
        let to = Addr::Service {
            service_type: SERVICE,
            instance: 17,
            domain: 0,
        };
        match self
            .rt
            .node_mut()
            .send(now, self.port, to, SendOpts::default(), msg)
        {
            Ok(()) => Ok(true),
            Err(SendError::Congested) => Ok(false),
            Err(e) => Err(io::Error::other(format!("TIPC send: {e}"))),
        }
    }

    /// Starts a node, waits (bounded) for the link and for the server's binding.
    pub fn open(kind: BearerKind, shared: &Shared) -> io::Result<Self> {
        let (mut rt, steering, info) = tipc_node("utb-client", 1, kind, A4)?;
        let ok = rt.run_until(Duration::from_secs(20), |rt| {
            shared.quit()
                || (shared.ready.load(Ordering::Acquire)
                    && rt
                        .node()
                        .name_table()
                        .iter()
                        .any(|b| b.service_type == SERVICE))
        })?;
        if !ok || shared.quit() {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                format!(
                    "no link or no binding after 20 s (peers up: {})",
                    rt.node().peers_up()
                ),
            ));
        }
        let port = rt.node_mut().open_port();
        Ok(Self {
            rt,
            port,
            burst_now: None,
            _steering: steering,
            info,
        })
    }
}

impl Client for TipcClient {
    fn max_payload(&self) -> usize {
        MAX_TIPC_PAYLOAD
    }
    fn send(&mut self, msg: &[u8]) -> io::Result<bool> {
        let now = self.rt.now();
        if self.submit(now, msg)? {
            self.rt.flush_at(now);
            Ok(true)
        } else {
            self.rt.do_work();
            Ok(false)
        }
    }
    fn send_more(&mut self, msg: &[u8]) -> io::Result<bool> {
        let now = *self.burst_now.get_or_insert_with(|| self.rt.now());
        if self.submit(now, msg)? {
            Ok(true)
        } else {
            self.flush()?;
            Ok(false)
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.burst_now = None;
        self.rt.do_work();
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.rt.node().queued(self.port) == 0 {
            self.rt.do_work();
        }
        Ok(self.rt.node_mut().recv(self.port).map(|m| {
            let n = m.data.len().min(buf.len());
            buf[..n].copy_from_slice(&m.data[..n]);
            n
        }))
    }
    fn wait(&mut self, idle: Idle, max: Duration) {
        match idle {
            Idle::Spin => {
                self.rt.do_work();
            }
            Idle::Block => {
                let _ = self.rt.poll(max.min(Duration::from_millis(1)), &[]);
            }
        }
    }
}

// ---- raw AF_XDP ----

/// AF_XDP frames (ethertype 0x88CA, no TIPC processing) to the server's MAC.
#[derive(Debug)]
pub struct RawXdpClient {
    bearer: XdpBearer,
    _steering: XdpSteering,
    peer: [u8; 6],
    /// Mode description.
    pub info: String,
}

impl RawXdpClient {
    /// Opens the socket and attaches the steering program.
    pub fn open(peer: [u8; 6]) -> io::Result<Self> {
        let (bearer, steering) = open_xdp()?;
        let info = format!(
            "AF_XDP socket {} mode, XDP program {} mode",
            bearer.mode(),
            steering.mode()
        );
        Ok(Self {
            bearer,
            _steering: steering,
            peer,
            info,
        })
    }
}

impl Client for RawXdpClient {
    fn max_payload(&self) -> usize {
        self.bearer.mtu() as usize
    }
    fn send(&mut self, msg: &[u8]) -> io::Result<bool> {
        match self
            .bearer
            .send(&Dest::Unicast(MediaAddr::Eth(self.peer)), msg)
        {
            Ok(()) => {
                self.bearer.flush()?;
                Ok(true)
            }
            Err(e) if would_block(&e) => {
                let _ = self.bearer.flush();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
    fn send_more(&mut self, msg: &[u8]) -> io::Result<bool> {
        match self
            .bearer
            .send(&Dest::Unicast(MediaAddr::Eth(self.peer)), msg)
        {
            Ok(()) => Ok(true),
            Err(e) if would_block(&e) => {
                let _ = self.bearer.flush();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.bearer.flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.bearer.recv(buf)?.map(|(n, _)| n))
    }
    fn wait(&mut self, idle: Idle, max: Duration) {
        let _ = self.bearer.flush();
        idle_wait(idle, self.bearer.raw_fd(), false, max);
    }
}

// ---- servers ----

/// Runs the server of `transport` until the client sets [`QUIT`] (or Ctrl-C).
pub fn serve(transport: &str, shared: &Shared, idle: Idle) -> io::Result<()> {
    match transport {
        "kernel-udp" => serve_udp(shared, idle),
        "kernel-tcp" => serve_tcp(shared, idle),
        "tipc-udp" => serve_tipc(BearerKind::Udp, shared, idle),
        "tipc-packet" => serve_tipc(BearerKind::Packet, shared, idle),
        "tipc-xdp" => serve_tipc(BearerKind::Xdp, shared, idle),
        "raw-xdp" => serve_raw_xdp(shared, idle),
        other => Err(io::Error::other(format!("unknown transport {other}"))),
    }
}

fn count(shared: &Shared, msgs: u64, bytes: u64) {
    if msgs > 0 || bytes > 0 {
        shared.rx_msgs.fetch_add(msgs, Ordering::Relaxed);
        shared.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

fn serve_udp(shared: &Shared, idle: Idle) -> io::Result<()> {
    let s = UdpSocket::bind(SocketAddr::new(B4.parse().map_err(io::Error::other)?, PORT))?;
    s.set_nonblocking(true)?;
    shared.ready.store(true, Ordering::Release);
    let mut buf = vec![0u8; RECV_BUF];
    while !shared.quit() {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => {
                count(shared, 1, n as u64);
                if shared.mode.load(Ordering::Relaxed) == ECHO {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
            Err(e) if would_block(&e) => {
                idle_wait(idle, s.as_raw_fd(), false, Duration::from_millis(10))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn serve_tcp(shared: &Shared, idle: Idle) -> io::Result<()> {
    let l = TcpListener::bind(SocketAddr::new(B4.parse().map_err(io::Error::other)?, PORT))?;
    l.set_nonblocking(true)?;
    shared.ready.store(true, Ordering::Release);
    let mut s = loop {
        if shared.quit() {
            return Ok(());
        }
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if would_block(&e) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e),
        }
    };
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut out: Vec<u8> = Vec::new();
    while !shared.quit() {
        while !out.is_empty() {
            match s.write(&out) {
                Ok(n) => {
                    out.drain(..n);
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                count(shared, 0, n as u64);
                if shared.mode.load(Ordering::Relaxed) == ECHO {
                    if out.is_empty() {
                        match s.write(&buf[..n]) {
                            Ok(k) => out.extend_from_slice(&buf[k..n]),
                            Err(e) if would_block(&e) => out.extend_from_slice(&buf[..n]),
                            Err(e) => return Err(e),
                        }
                    } else {
                        out.extend_from_slice(&buf[..n]);
                    }
                }
            }
            Err(e) if would_block(&e) => {
                idle_wait(
                    idle,
                    s.as_raw_fd(),
                    !out.is_empty(),
                    Duration::from_millis(10),
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn serve_tipc(kind: BearerKind, shared: &Shared, idle: Idle) -> io::Result<()> {
    let (mut rt, steering, info) = tipc_node("utb-server", 2, kind, B4)?;
    shared.note(format!("server: {info}"));
    let up = rt.run_until(Duration::from_secs(20), |rt| {
        shared.quit() || rt.node().peers_up() == 1
    })?;
    if !up || shared.quit() {
        return Err(io::Error::new(
            ErrorKind::TimedOut,
            "server: no link after 20 s",
        ));
    }
    let now = rt.now();
    let port = rt.node_mut().open_port();
    rt.node_mut()
        .bind(now, port, Scope::Cluster, SERVICE, 17, 17)
        .map_err(|e| io::Error::other(format!("bind: {e:?}")))?;
    rt.flush();
    shared.ready.store(true, Ordering::Release);
    while !shared.quit() {
        let work = rt.do_work();
        let (mut msgs, mut bytes) = (0, 0);
        let echo = shared.mode.load(Ordering::Relaxed) == ECHO;
        // The echoes are commands of this duty cycle: its clock reading.
        let now = rt.cycle_now();
        while let Some(m) = rt.node_mut().recv(port) {
            msgs += 1;
            bytes += m.data.len() as u64;
            if echo {
                let to = Addr::Socket {
                    port: m.from.0,
                    node: m.from.1,
                };
                let _ = rt
                    .node_mut()
                    .send(now, port, to, SendOpts::default(), &m.data);
            }
        }
        if msgs > 0 {
            rt.flush_at(now);
            count(shared, msgs, bytes);
        } else if work == 0 && idle == Idle::Block {
            let _ = rt.poll(Duration::from_millis(10), &[]);
        }
    }
    rt.shutdown();
    if let Some(s) = steering {
        s.detach();
    }
    Ok(())
}

fn serve_raw_xdp(shared: &Shared, idle: Idle) -> io::Result<()> {
    let (mut b, steering) = open_xdp()?;
    shared.note(format!(
        "server: AF_XDP socket {} mode, XDP program {} mode",
        b.mode(),
        steering.mode()
    ));
    shared.ready.store(true, Ordering::Release);
    let mut scratch = vec![0u8; RECV_BUF];
    let mut replies: Vec<(Vec<u8>, MediaAddr)> = Vec::new();
    let mut last_flush = Instant::now();
    while !shared.quit() {
        let echo = shared.mode.load(Ordering::Relaxed) == ECHO;
        let (mut msgs, mut bytes) = (0, 0);
        b.recv_batch(&mut scratch, 64, &mut |frame, meta| {
            msgs += 1;
            bytes += frame.len() as u64;
            if echo {
                replies.push((frame.to_vec(), meta.src));
            }
        })?;
        for (frame, to) in replies.drain(..) {
            let _ = b.send(&Dest::Unicast(to), &frame);
        }
        if msgs > 0 || last_flush.elapsed() > Duration::from_millis(1) {
            let _ = b.flush();
            last_flush = Instant::now();
        }
        count(shared, msgs, bytes);
        if msgs == 0 {
            idle_wait(idle, b.raw_fd(), false, Duration::from_millis(10));
        }
    }
    drop(b);
    steering.detach();
    Ok(())
}
