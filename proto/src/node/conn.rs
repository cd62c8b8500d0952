//! Connections: SOCK_STREAM and SOCK_SEQPACKET sockets (spec §9, with §3.4 and §12).
//!
//! Read spec §9 first. A connection is set up by a data message with the SYN bit (NAMED to a
//! service, DIRECT to a socket), possibly carrying the first data ("SYN+", implied connect).
//! The listener queues SYNs; [`Node::accept`] creates the connected socket, which answers with
//! an empty CONN_MSG (24-byte header) from its own port. The connecting socket adopts the
//! port and node of the first CONN_MSG it gets. Established traffic is CONN_MSG with the
//! 24-byte header; each side counts what it sent and what the application read, in 1 KiB
//! blocks when both nodes have BLOCK_FLOWCTL (else in messages, window 512), and the reader
//! acknowledges with CONN_ACK (CONN_MANAGER) once it has read a quarter of its window. A
//! one-hour CONN_PROBE timer guards against a peer that vanished without a word; loss of the
//! peer node aborts every connection to it at once with TIPC_ERR_NO_NODE. Closing a socket
//! returns its first unread message to the peer with TIPC_ERR_NO_PORT, or sends an empty
//! CRITICAL CONN_MSG with that error; `shutdown` does the same with TIPC_CONN_SHUTDOWN.
//!
//! What utipc does not do, on purpose:
//!
//! * **No Nagle.** NAGLE is not advertised, so a kernel peer never coalesces toward us and
//!   never sets ack-required; we send every write at once (the kernel's TIPC_NODELAY). An
//!   ack-required message is still answered with a nagle-ack CONN_ACK, as §9.3 says.
//! * **Stream writes are cut at 66,000 bytes, not at the MSS**, exactly as the kernel's
//!   `sendmsg` does (`eth-07`: 8 KiB writes travel as 8,216-byte CONN_MSGs that the link
//!   fragments), so that a kernel peer sees the same messages and flow-control counts.
//! * **A congested link refuses instead of over-subscribing.** The kernel queues the message
//!   that hits the backlog limit and then blocks the socket; utipc's link refuses it
//!   ([`crate::link::SendError::Congested`]). Data sends return [`SendError::Congested`] and a
//!   [`SocketEvent::Writable`] follows when the link drains; the few control messages the
//!   protocol itself must send (accept ACK, CONN_ACK, probes, aborts) wait in a per-node queue
//!   and go out, in order, as soon as the link has room.
//!
//! Events for the application (readable, writable, connected, refused, disconnected) come out
//! of [`Node::poll_socket_event`], so an IO shell never has to scan its sockets.

use core::fmt;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Node;
use super::ports::{DestName, MsgMeta, QueueError, Queued, Received};
use super::routing::{Addr, MAX_REJECT_DATA, SendError, SendOpts};
use crate::name_table::AnycastResult;
use crate::time::Instant;
use crate::wire::common::{Common, Flags, Importance, Internal, User};
use crate::wire::conn_mgr::{ConnMgrRepr, ConnMgrType};
use crate::wire::data::{DataRepr, DataType, ErrorCode, scope};
use crate::wire::discovery::caps;
use crate::wire::{BASIC_H_SIZE, MAX_USER_MSG_SIZE, MIN_H_SIZE, MessageRepr, NAMED_H_SIZE, Packet};

/// Default connect timeout (TIPC_CONN_TIMEOUT's default, spec §9.2).
pub const CONN_TIMEOUT_DEFAULT: Duration = Duration::from_millis(8000);
/// Probing interval of an established connection (CONN_PROBING_INTV, spec §9.4).
pub const CONN_PROBING_INTERVAL: Duration = Duration::from_secs(3600);
/// Flow-control block (FLOWCTL_BLK_SZ, spec §9.3).
pub const FLOWCTL_BLOCK: usize = 1024;
/// Send and receive window in blocks before the first advertisement: what a 512 KiB buffer
/// advertises (spec §9.3).
pub const INITIAL_WINDOW: u32 = 128;
/// Send and receive window in messages toward a peer without BLOCK_FLOWCTL (spec §9.3).
pub const LEGACY_WINDOW: u32 = 512;
/// A CONN_ACK goes out once a quarter of the receive window has been read (TIPC_ACK_RATE).
const ACK_RATE: u32 = 4;
/// Receive limit of a connection to a peer without BLOCK_FLOWCTL: the kernel's
/// (2 × 512 + 1) maximum-size messages, since such a peer may have 512 in flight.
const LEGACY_CONN_LIMIT: usize = (2 * LEGACY_WINDOW as usize + 1) * (MAX_USER_MSG_SIZE + 60);
/// A SYN refused with OVERLOAD is resent after this plus a random part (spec §9.2).
const SYN_RETRY_BASE: Duration = Duration::from_millis(100);
/// Retry interval of a SYN resend that met a congested link.
const CONGESTED_RETRY: Duration = Duration::from_millis(100);
/// At most this many socket timers run per [`Node::handle_timeout`] call; the rest stay due
/// and [`Node::poll_timeout`] says so at once.
const MAX_TIMERS_PER_CALL: usize = 1024;
/// Bound on control messages waiting for congested links, node-wide; beyond it they are
/// dropped and counted (a peer that accepts nothing for that long is lost anyway).
const MAX_DEFERRED: usize = 65_536;

/// A socket's type (spec §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SocketKind {
    /// SOCK_RDM: connectionless, reliable datagrams (D = 1 by default).
    #[default]
    Rdm,
    /// SOCK_DGRAM: connectionless datagrams (D = 1 and S = 1 by default).
    Dgram,
    /// SOCK_SEQPACKET: a connection that keeps message boundaries (≤ 66,000 bytes each).
    Seqpacket,
    /// SOCK_STREAM: a byte-stream connection.
    Stream,
}

impl SocketKind {
    /// Whether sockets of this kind connect (STREAM, SEQPACKET).
    pub fn is_connection(self) -> bool {
        matches!(self, Self::Seqpacket | Self::Stream)
    }

    /// The kernel's default send options for this kind (spec §9.1, §12): low importance;
    /// datagrams are destination-droppable (DGRAM also source-droppable), connection messages
    /// are returned when undeliverable.
    pub fn default_opts(self) -> SendOpts {
        SendOpts {
            importance: Importance::Low,
            dest_droppable: !self.is_connection(),
            src_droppable: self == Self::Dgram,
        }
    }
}

/// Where a socket is in its connection life (spec §9.1). Datagram sockets are always
/// [`ConnState::Open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Neither listening nor connected.
    Open,
    /// Accepting connection requests ([`Node::listen`]).
    Listening,
    /// A SYN was sent; waiting for the peer's first CONN_MSG.
    Connecting,
    /// Established.
    Connected {
        /// The peer socket: (port, node).
        peer: (u32, u32),
    },
    /// Ended: shut down, closed or aborted by the peer, refused, timed out or lost.
    Disconnected,
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("open (not connected)"),
            Self::Listening => f.write_str("listening"),
            Self::Connecting => f.write_str("connecting"),
            Self::Connected { peer } => write!(f, "connected to {:x}:{}", peer.1, peer.0),
            Self::Disconnected => f.write_str("disconnected"),
        }
    }
}

/// A connection taken from a listener by [`Node::accept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Accepted {
    /// The new, connected socket (same kind as the listener).
    pub port: u32,
    /// The peer socket: (port, node).
    pub peer: (u32, u32),
    /// How the peer addressed the listener (service address or socket address).
    pub dest: DestName,
    /// The importance the connection uses (the SYN's).
    pub importance: Importance,
}

/// Something a socket's user should react to; from [`Node::poll_socket_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketEvent {
    /// The port's receive queue went from empty to non-empty: data, a connection request on
    /// a listener, a returned message, or a disconnection marker. Edge-triggered: the next
    /// one comes only after the queue was drained ([`Node::recv`] until `None`).
    Readable(u32),
    /// A send that was refused for a full connection window ([`SendError::WouldBlock`]) or a
    /// congested link ([`SendError::Congested`]) may be retried now.
    Writable(u32),
    /// A connect completed.
    Connected {
        /// The connecting socket.
        port: u32,
        /// The socket that answered: (port, node).
        peer: (u32, u32),
    },
    /// A connect failed.
    ConnectFailed {
        /// The connecting socket (now [`ConnState::Disconnected`]).
        port: u32,
        /// Why.
        reason: ConnError,
    },
    /// An established connection ended without a local close or shutdown. The receive queue
    /// holds, after the data, a [`Received`] with `error: Some(error)`.
    Disconnected {
        /// The socket (now [`ConnState::Disconnected`]).
        port: u32,
        /// TIPC_CONN_SHUTDOWN for an orderly shutdown by the peer (end of file); any other
        /// code is a reset: TIPC_ERR_NO_PORT (peer closed), TIPC_ERR_NO_NODE (peer node lost,
        /// or it stopped answering probes), TIPC_ERR_OVERLOAD (our data overran it).
        error: ErrorCode,
    },
}

/// Why a connection command failed, or why a connect did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnError {
    /// No socket with that port.
    NoSuchPort,
    /// The socket is RDM or DGRAM.
    NotConnectionOriented,
    /// The command does not fit the socket's state.
    WrongState(ConnState),
    /// The node has no committed address yet.
    NotReady,
    /// No socket is bound to the service address.
    NoRoute,
    /// No working link to the destination node.
    Unreachable,
    /// The link to the destination is congested; nothing was sent.
    Congested,
    /// More than 66,000 bytes of data.
    TooLarge,
    /// A service range or an unknown address type: a connection needs one socket.
    BadAddress,
    /// The destination refused: no such socket or not listening (TIPC_ERR_NO_PORT), no such
    /// service (TIPC_ERR_NO_NAME), or another code.
    Refused(ErrorCode),
    /// No answer within the connect timeout.
    Timeout,
    /// The destination node was lost while connecting.
    NodeDown,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchPort => f.write_str("no such socket (port): open it first"),
            Self::NotConnectionOriented => f.write_str(
                "an RDM or DGRAM socket does not connect: open a STREAM or SEQPACKET socket",
            ),
            Self::WrongState(s) => write!(
                f,
                "the socket is {s}: listen and connect need an open (unconnected) socket, \
                 accept a listening one, shutdown a connected one"
            ),
            Self::NotReady => f.write_str(
                "the node has no address yet: enable a bearer and wait for the 1 s address trial",
            ),
            Self::NoRoute => f.write_str(
                "no socket is bound to that service address: start the server or check the name",
            ),
            Self::Unreachable => f.write_str(
                "no working link to the destination node: check the bearer and the peer",
            ),
            Self::Congested => f.write_str("link congested: retry after the backlog drains"),
            Self::TooLarge => f.write_str("a message carries at most 66,000 bytes"),
            Self::BadAddress => {
                f.write_str("connect to a socket address or a service address, not a service range")
            }
            Self::Refused(code) => write!(
                f,
                "connection refused ({}): nothing listens there",
                code.name()
            ),
            Self::Timeout => f.write_str(
                "connection timed out: the listener did not accept in time (raise the timeout?)",
            ),
            Self::NodeDown => f.write_str("the destination node was lost while connecting"),
        }
    }
}

impl std::error::Error for ConnError {}

impl SocketEvent {
    /// The socket the event is about.
    pub fn port(&self) -> u32 {
        match *self {
            Self::Readable(port)
            | Self::Writable(port)
            | Self::Connected { port, .. }
            | Self::ConnectFailed { port, .. }
            | Self::Disconnected { port, .. } => port,
        }
    }
}

impl ConnError {
    /// The [`SendError`] an implied connect through [`Node::send`] reports for this.
    fn to_send_error(self) -> SendError {
        match self {
            Self::NoSuchPort => SendError::NoSuchPort,
            Self::NotReady => SendError::NotReady,
            Self::NoRoute => SendError::NoRoute,
            Self::Unreachable | Self::NodeDown => SendError::Unreachable,
            Self::Congested => SendError::Congested,
            Self::TooLarge => SendError::TooLarge,
            Self::BadAddress => SendError::BadAddress,
            Self::NotConnectionOriented | Self::WrongState(_) => SendError::NotConnected,
            Self::Refused(_) | Self::Timeout => SendError::Disconnected,
        }
    }
}

/// A connection socket as management shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnInfo {
    /// State.
    pub state: ConnState,
    /// How the connection was addressed (by the connecting side, or by the peer that
    /// connected to us), once known.
    pub dest: Option<DestName>,
    /// Importance of its messages.
    pub importance: Importance,
    /// Flow control counts 1 KiB blocks (both nodes have BLOCK_FLOWCTL), else messages.
    pub block_flowctl: bool,
    /// Sent and not yet acknowledged (blocks or messages).
    pub snt_unacked: u32,
    /// Send window.
    pub snd_win: u32,
    /// Read and not yet acknowledged.
    pub rcv_unacked: u32,
    /// Receive window (advertised in the next CONN_ACK).
    pub rcv_win: u32,
    /// A probe is out and unanswered.
    pub probe_unacked: bool,
}

/// Node-wide connection counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// SYNs sent (first attempts).
    pub syns_sent: u64,
    /// SYNs resent after an OVERLOAD refusal.
    pub syn_retries: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connects completed.
    pub connected: u64,
    /// Connects that failed.
    pub connect_failed: u64,
    /// Connections ended by the peer, node loss or probe failure.
    pub disconnected: u64,
    /// CONN_ACKs sent.
    pub acks_sent: u64,
    /// CONN_ACKs ignored: acknowledging more than was sent.
    pub acks_ignored: u64,
    /// CONN_PROBEs sent.
    pub probes_sent: u64,
    /// CONN_PROBE_REPLYs sent.
    pub probe_replies: u64,
    /// Aborts sent (close or shutdown of a connection).
    pub aborts_sent: u64,
    /// CONN_MANAGER messages dropped (no connection, or not from the peer).
    pub mgr_dropped: u64,
    /// Control messages that waited for a congested link.
    pub deferred: u64,
    /// Control messages dropped: the waiting queue was full, or the node went down.
    pub deferred_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Open,
    Listening,
    Connecting,
    Connected,
    Disconnected,
}

/// The connection part of a socket.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    phase: Phase,
    /// Connecting: where the SYN went; connected: the peer. (port, node).
    peer: (u32, u32),
    dest: Option<DestName>,
    importance: Importance,
    dest_droppable: bool,
    block_flowctl: bool,
    snt_unacked: u32,
    snd_win: u32,
    rcv_unacked: u32,
    rcv_win: u32,
    /// A send was refused for the window: report [`SocketEvent::Writable`] when it opens.
    want_writable: bool,
    probe_unacked: bool,
    /// The SYN, kept for a resend after an OVERLOAD refusal.
    syn: Option<Vec<u8>>,
    timeout: Duration,
    deadline: Option<Instant>,
    retry_at: Option<Instant>,
    probe_at: Option<Instant>,
    /// The entry this socket has in the node's timer set.
    armed: Option<Instant>,
}

impl Default for Conn {
    fn default() -> Self {
        Self {
            phase: Phase::Open,
            peer: (0, 0),
            dest: None,
            importance: Importance::Low,
            dest_droppable: false,
            block_flowctl: true,
            snt_unacked: 0,
            snd_win: INITIAL_WINDOW,
            rcv_unacked: 0,
            rcv_win: INITIAL_WINDOW,
            want_writable: false,
            probe_unacked: false,
            syn: None,
            timeout: CONN_TIMEOUT_DEFAULT,
            deadline: None,
            retry_at: None,
            probe_at: None,
            armed: None,
        }
    }
}

impl Conn {
    fn state(&self) -> ConnState {
        match self.phase {
            Phase::Open => ConnState::Open,
            Phase::Listening => ConnState::Listening,
            Phase::Connecting => ConnState::Connecting,
            Phase::Connected => ConnState::Connected { peer: self.peer },
            Phase::Disconnected => ConnState::Disconnected,
        }
    }

    /// Flow-control units of a message of `len` bytes, header included (spec §9.3).
    fn units(&self, len: usize) -> u32 {
        if self.block_flowctl {
            (len / FLOWCTL_BLOCK) as u32 + 1
        } else {
            1
        }
    }

    /// Sets the windows for the flow-control mode (spec §9.3).
    fn set_mode(&mut self, block_flowctl: bool) {
        self.block_flowctl = block_flowctl;
        let w = if block_flowctl {
            INITIAL_WINDOW
        } else {
            LEGACY_WINDOW
        };
        self.snd_win = w;
        self.rcv_win = w;
    }

    fn window_full(&self) -> bool {
        self.snt_unacked > self.snd_win
    }

    /// The kernel's `tsk_peer_msg`: whether (port, node) is this connection's peer, with an
    /// origin node of 0 standing for our own.
    fn is_peer(&self, origin: (u32, u32), own: u32) -> bool {
        let (pport, pnode) = self.peer;
        self.phase == Phase::Connected
            && origin.0 == pport
            && (origin.1 == pnode
                || (origin.1 == 0 && pnode == own)
                || (pnode == 0 && origin.1 == own))
    }

    fn next_timer(&self) -> Option<Instant> {
        [self.deadline, self.retry_at, self.probe_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Node-wide connection state: socket events, socket timers, and what waits for congested
/// links.
#[derive(Debug, Default)]
pub(crate) struct ConnShared {
    events: VecDeque<SocketEvent>,
    /// (deadline, port) of every socket with a timer.
    timers: BTreeSet<(Instant, u32)>,
    /// Sockets whose send met a congested link, per destination node: (port, importance).
    waiters: BTreeMap<u32, Vec<(u32, usize)>>,
    /// Control messages waiting for room on the link to a node: (selector, message).
    deferred: BTreeMap<u32, VecDeque<(u32, Vec<u8>)>>,
    deferred_len: usize,
    /// Set while waiters and deferred messages are being served (no re-entry).
    waking: bool,
    /// Time of the node's latest input: stamps the CONN_ACK a [`Node::recv`] triggers.
    last_now: Instant,
    stats: ConnStats,
}

/// Importance class of a complete message: the user for data, system (4) for the rest.
fn msg_importance(msg: &[u8]) -> usize {
    let user = User::from(Packet::new_unchecked(msg).user_raw());
    if user.is_data() {
        u8::from(user) as usize
    } else {
        4
    }
}

impl Node {
    /// Opens a local socket of `kind` and returns its port number (random, never 0).
    pub fn open_socket(&mut self, kind: SocketKind) -> u32 {
        loop {
            let p = self.rng.next_u32();
            if p != 0 && !self.ports.contains(p) {
                self.ports.open(p, kind, false);
                return p;
            }
        }
    }

    /// The kind of a socket.
    pub fn socket_kind(&self, port: u32) -> Option<SocketKind> {
        self.ports.get(port).map(|p| p.kind)
    }

    /// The connection state of a socket ([`ConnState::Open`] for datagram sockets).
    pub fn conn_state(&self, port: u32) -> Option<ConnState> {
        self.ports.get(port).map(|p| p.conn.state())
    }

    /// The connection details of a STREAM or SEQPACKET socket.
    pub fn conn_info(&self, port: u32) -> Option<ConnInfo> {
        let p = self.ports.get(port)?;
        if !p.kind.is_connection() {
            return None;
        }
        let c = &p.conn;
        Some(ConnInfo {
            state: c.state(),
            dest: c.dest,
            importance: c.importance,
            block_flowctl: c.block_flowctl,
            snt_unacked: c.snt_unacked,
            snd_win: c.snd_win,
            rcv_unacked: c.rcv_unacked,
            rcv_win: c.rcv_win,
            probe_unacked: c.probe_unacked,
        })
    }

    /// Connection counters.
    pub fn conn_stats(&self) -> &ConnStats {
        &self.conn.stats
    }

    /// The next socket event.
    pub fn poll_socket_event(&mut self) -> Option<SocketEvent> {
        let ev = self.conn.events.pop_front()?;
        match ev {
            SocketEvent::Readable(port) => {
                if let Some(p) = self.ports.get_mut(port) {
                    p.readable_pending = false;
                }
            }
            SocketEvent::Writable(port) => {
                if let Some(p) = self.ports.get_mut(port) {
                    p.writable_pending = false;
                }
            }
            _ => {}
        }
        Some(ev)
    }

    /// Makes an open STREAM or SEQPACKET socket a listener: it queues connection requests
    /// for [`Node::accept`]. Bind it to a service address to make it reachable by name.
    pub fn listen(&mut self, port: u32) -> Result<(), ConnError> {
        if self.port_hidden(port) {
            return Err(ConnError::NoSuchPort);
        }
        let p = self.ports.get_mut(port).ok_or(ConnError::NoSuchPort)?;
        if !p.kind.is_connection() {
            return Err(ConnError::NotConnectionOriented);
        }
        if p.conn.phase != Phase::Open {
            return Err(ConnError::WrongState(p.conn.state()));
        }
        p.conn.phase = Phase::Listening;
        Ok(())
    }

    /// Connects an open STREAM or SEQPACKET socket to a socket address (DIRECT SYN, 32-byte
    /// header) or a service address (NAMED SYN, 40-byte header) (spec §9.2). Non-empty
    /// `data` travels in the SYN (implied connect, "SYN+") and is the peer's first message.
    ///
    /// `opts` give the connection's importance and D bit (use
    /// [`SocketKind::default_opts`]: low, returnable); S is never set on connections. The
    /// outcome comes later as [`SocketEvent::Connected`] or [`SocketEvent::ConnectFailed`]
    /// (refused, `timeout` passed, or node lost). A zero `timeout` means no deadline (the
    /// kernel's non-blocking connect). An error here means nothing was sent and the socket
    /// is still open.
    pub fn connect(
        &mut self,
        now: Instant,
        port: u32,
        to: Addr,
        opts: SendOpts,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), ConnError> {
        if self.port_hidden(port) {
            return Err(ConnError::NoSuchPort);
        }
        let r = self.connect_inner(now, port, to, opts, data, timeout);
        self.topsrv_run(now);
        r
    }

    fn connect_inner(
        &mut self,
        now: Instant,
        port: u32,
        to: Addr,
        opts: SendOpts,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), ConnError> {
        self.conn_note_time(now);
        let p = self.ports.get(port).ok_or(ConnError::NoSuchPort)?;
        if !p.kind.is_connection() {
            return Err(ConnError::NotConnectionOriented);
        }
        if p.conn.phase != Phase::Open {
            return Err(ConnError::WrongState(p.conn.state()));
        }
        if data.len() > MAX_USER_MSG_SIZE {
            return Err(ConnError::TooLarge);
        }
        let own = self.ident.addr;
        let (msg_type, header_len, dport, dnode, name, dest, lookup_scope) = match to {
            Addr::Socket { port: p, node } => {
                let node = if node == 0 { own } else { node };
                (
                    DataType::Direct,
                    BASIC_H_SIZE,
                    p,
                    node,
                    (0, 0),
                    DestName::Socket,
                    scope::NONE,
                )
            }
            Addr::Service {
                service_type,
                instance,
                domain,
            } => {
                let (p, node) = match self
                    .name_table
                    .lookup_anycast(service_type, instance, domain)
                {
                    AnycastResult::Local(p) => (p, own),
                    AnycastResult::Remote { port, node } => (port, node),
                    AnycastResult::Forward { node } => (0, node),
                    AnycastResult::NoMatch => return Err(ConnError::NoRoute),
                };
                // The kernel derives the lookup scope from the lookup domain: any named node
                // means node scope (tipc_node2scope), no domain cluster scope.
                let sc = if domain != 0 {
                    scope::NODE
                } else {
                    scope::CLUSTER
                };
                (
                    DataType::Named,
                    NAMED_H_SIZE,
                    p,
                    node,
                    (service_type, instance),
                    DestName::Service {
                        service_type,
                        instance,
                    },
                    sc,
                )
            }
            Addr::Range { .. } | Addr::Unknown { .. } => return Err(ConnError::BadAddress),
        };
        // Node-local connections work before the node has an address (address 0, as the
        // kernel's); anything else needs the committed address.
        if dnode != own && !self.addr_committed() {
            return Err(ConnError::NotReady);
        }
        if dnode != own && !self.peer_up(dnode) {
            return Err(ConnError::Unreachable);
        }
        let imp = opts.importance as usize;
        if dnode != own && self.link_congested(dnode, port, imp) {
            self.add_waiter(dnode, port, imp);
            return Err(ConnError::Congested);
        }
        let repr = DataRepr {
            importance: opts.importance,
            msg_type,
            common: Common {
                flags: Flags {
                    dest_droppable: opts.dest_droppable,
                    syn: true,
                    ..Flags::default()
                },
                prev_node: own,
                ..Common::default()
            },
            error: ErrorCode::Ok,
            reroute_count: 0,
            lookup_scope,
            header_len,
            orig_port: port,
            dest_port: dport,
            orig_node: own,
            dest_node: dnode,
            name_type: name.0,
            name_lower: name.1,
            name_upper: 0,
            extra_header: &[],
            payload: data,
        };
        let Ok(msg) = MessageRepr::Data(repr).to_vec() else {
            return Err(ConnError::TooLarge);
        };
        let block = self.block_flowctl_with(dnode);
        // The state goes first: a node-local SYN is answered before the send returns.
        let Some(p) = self.ports.get_mut(port) else {
            return Err(ConnError::NoSuchPort);
        };
        let c = &mut p.conn;
        c.phase = Phase::Connecting;
        c.peer = (dport, dnode);
        c.dest = Some(dest);
        c.importance = opts.importance;
        c.dest_droppable = opts.dest_droppable;
        c.set_mode(block);
        c.snt_unacked = if data.is_empty() {
            0
        } else {
            c.units(header_len + data.len())
        };
        c.rcv_unacked = 0;
        c.want_writable = false;
        c.probe_unacked = false;
        c.syn = Some(msg.clone());
        c.timeout = timeout;
        c.deadline = (!timeout.is_zero()).then(|| now + timeout);
        c.retry_at = None;
        c.probe_at = None;
        self.arm(port);
        match self.route_conn(now, dnode, port, msg) {
            Ok(()) => {
                self.conn.stats.syns_sent += 1;
                Ok(())
            }
            Err(e) => {
                if let Some(p) = self.ports.get_mut(port)
                    && p.conn.phase == Phase::Connecting
                {
                    // Back to open; `arm` below removes the timer entry.
                    p.conn = Conn {
                        armed: p.conn.armed,
                        ..Conn::default()
                    };
                }
                self.arm(port);
                Err(match e {
                    SendError::Congested => {
                        self.add_waiter(dnode, port, imp);
                        ConnError::Congested
                    }
                    _ => ConnError::Unreachable,
                })
            }
        }
    }

    /// Takes the oldest connection request from a listener (spec §9.2): creates the
    /// connected socket (same kind as the listener, the SYN's importance), queues a SYN+
    /// payload as its first message, and sends the empty CONN_MSG that completes the peer's
    /// connect. `None` if `listener` is not listening or has no request.
    pub fn accept(&mut self, now: Instant, listener: u32) -> Option<Accepted> {
        if self.port_hidden(listener) {
            return None;
        }
        self.conn_note_time(now);
        let l = self.ports.get(listener)?;
        if l.conn.phase != Phase::Listening {
            return None;
        }
        let (kind, internal) = (l.kind, l.internal);
        let q = self.ports.dequeue(listener)?;
        let peer = q.msg.from;
        let block = self.block_flowctl_with(peer.1);
        // An internal listener's connections are internal too (the node serves them).
        let port = if internal {
            self.open_internal_socket(kind)
        } else {
            self.open_socket(kind)
        };
        let p = self.ports.get_mut(port)?;
        let c = &mut p.conn;
        c.phase = Phase::Connected;
        c.peer = peer;
        c.dest = Some(q.msg.dest);
        c.importance = q.msg.importance;
        c.set_mode(block);
        c.probe_at = Some(now + CONN_PROBING_INTERVAL);
        let accepted = Accepted {
            port,
            peer,
            dest: q.msg.dest,
            importance: q.msg.importance,
        };
        if !q.msg.data.is_empty() && self.ports.push_front(port, q.msg, q.meta) {
            self.note_readable(port);
        }
        self.arm(port);
        self.conn.stats.accepted += 1;
        // The ACK counts in the send window like any message (the kernel's accept sends it
        // through its stream send path).
        let Some(ack) = self.conn_msg(port, ErrorCode::Ok, Importance::Low, &[], false) else {
            return Some(accepted);
        };
        if let Some(p) = self.ports.get_mut(port) {
            p.conn.snt_unacked += p.conn.units(MIN_H_SIZE);
        }
        if self.send_ctrl(now, peer.1, port, ack).is_err() {
            // The requesting node is gone: the connection is dead from the start.
            self.conn_abort(port, ErrorCode::NoNode, Vec::new(), MsgMeta::local_abort());
        }
        Some(accepted)
    }

    /// Sends on a connected socket (spec §9.2, §9.3): CONN_MSGs with the 24-byte header.
    /// SEQPACKET sends `data` as one message (at most 66,000 bytes) or nothing. STREAM cuts
    /// it into messages of at most 66,000 bytes and sends as many as the connection window
    /// and the link allow; it returns the bytes accepted.
    ///
    /// When nothing could be sent: [`SendError::WouldBlock`] (the peer has not acknowledged
    /// enough: its window is full) or [`SendError::Congested`] (the link's backlog is full);
    /// either way [`SocketEvent::Writable`] says when to retry. A partial STREAM send is
    /// followed by that event too.
    pub fn send_conn(&mut self, now: Instant, port: u32, data: &[u8]) -> Result<usize, SendError> {
        if self.port_hidden(port) {
            return Err(SendError::NoSuchPort);
        }
        let r = self.send_conn_inner(now, port, data);
        self.topsrv_run(now);
        r
    }

    fn send_conn_inner(
        &mut self,
        now: Instant,
        port: u32,
        data: &[u8],
    ) -> Result<usize, SendError> {
        self.conn_note_time(now);
        let p = self.ports.get(port).ok_or(SendError::NoSuchPort)?;
        if !p.kind.is_connection() {
            return Err(SendError::NotConnected);
        }
        match p.conn.phase {
            Phase::Connected => {}
            Phase::Disconnected => return Err(SendError::Disconnected),
            _ => return Err(SendError::NotConnected),
        }
        let stream = p.kind == SocketKind::Stream;
        if !stream && data.len() > MAX_USER_MSG_SIZE {
            return Err(SendError::TooLarge);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let (importance, pnode) = (p.conn.importance, p.conn.peer.1);
        let imp = importance as usize;
        let mut sent = 0;
        let mut why = SendError::WouldBlock;
        while sent < data.len() {
            let Some(p) = self.ports.get_mut(port) else {
                break;
            };
            if p.conn.phase != Phase::Connected {
                why = SendError::Disconnected;
                break;
            }
            if p.conn.window_full() {
                p.conn.want_writable = true;
                why = SendError::WouldBlock;
                break;
            }
            if !self.is_own(pnode) && self.link_congested(pnode, port, imp) {
                self.add_waiter(pnode, port, imp);
                why = SendError::Congested;
                break;
            }
            let end = (sent + MAX_USER_MSG_SIZE).min(data.len());
            let chunk = &data[sent..end];
            let Some(msg) = self.conn_msg(port, ErrorCode::Ok, importance, chunk, true) else {
                why = SendError::TooLarge;
                break;
            };
            let units = match self.ports.get_mut(port) {
                Some(p) => {
                    let u = p.conn.units(MIN_H_SIZE + chunk.len());
                    p.conn.snt_unacked += u;
                    u
                }
                None => break,
            };
            match self.route_conn(now, pnode, port, msg) {
                Ok(()) => sent = end,
                Err(e) => {
                    if let Some(p) = self.ports.get_mut(port) {
                        p.conn.snt_unacked = p.conn.snt_unacked.saturating_sub(units);
                    }
                    if e == SendError::Congested {
                        self.add_waiter(pnode, port, imp);
                    }
                    why = e;
                    break;
                }
            }
            if !stream {
                break;
            }
        }
        if sent == 0 { Err(why) } else { Ok(sent) }
    }

    /// Shuts a connection down in both directions (SHUT_RDWR, spec §9.5): the peer gets its
    /// first unread message back, or an empty CRITICAL CONN_MSG, with TIPC_CONN_SHUTDOWN (it
    /// reads end of file); unread data is discarded. On a connection the peer already ended
    /// it only discards.
    pub fn shutdown_conn(&mut self, now: Instant, port: u32) -> Result<(), ConnError> {
        if self.port_hidden(port) {
            return Err(ConnError::NoSuchPort);
        }
        self.conn_note_time(now);
        let p = self.ports.get(port).ok_or(ConnError::NoSuchPort)?;
        if !p.kind.is_connection() {
            return Err(ConnError::NotConnectionOriented);
        }
        match p.conn.phase {
            Phase::Connecting | Phase::Connected => {
                self.conn_close(now, port, ErrorCode::ConnShutdown);
            }
            Phase::Disconnected => {}
            Phase::Open | Phase::Listening => return Err(ConnError::WrongState(p.conn.state())),
        }
        self.ports.take_queue(port);
        self.topsrv_run(now);
        Ok(())
    }

    /// Time of the node's latest input.
    pub(super) fn conn_last_now(&self) -> Instant {
        self.conn.last_now
    }

    /// Time of the node's latest input, for sends that have no `now` of their own.
    pub(super) fn conn_note_time(&mut self, now: Instant) {
        if now > self.conn.last_now {
            self.conn.last_now = now;
        }
    }

    /// A send from a STREAM or SEQPACKET socket through [`Node::send`]: an implied connect
    /// on an open socket (the destination gets the data in the SYN), one message on a
    /// connected one (the destination is ignored, as the kernel does).
    pub(super) fn send_on_conn_socket(
        &mut self,
        now: Instant,
        from: u32,
        to: Addr,
        opts: SendOpts,
        data: &[u8],
    ) -> Result<(), SendError> {
        let phase = self
            .ports
            .get(from)
            .map(|p| p.conn.phase)
            .ok_or(SendError::NoSuchPort)?;
        match phase {
            Phase::Open => self
                .connect(now, from, to, opts, data, CONN_TIMEOUT_DEFAULT)
                .map_err(ConnError::to_send_error),
            Phase::Connected => self.send_conn(now, from, data).map(|_| ()),
            Phase::Disconnected => Err(SendError::Disconnected),
            Phase::Listening | Phase::Connecting => Err(SendError::NotConnected),
        }
    }

    /// Bookkeeping after [`Node::recv`] took `q` from `port`: a connected socket counts what
    /// the application read and acknowledges a quarter window (spec §9.3).
    pub(super) fn conn_consumed(&mut self, port: u32, q: &Queued) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        if !p.kind.is_connection() || p.conn.phase != Phase::Connected {
            return;
        }
        let c = &mut p.conn;
        // Only what the peer counted as sent: connection messages and a SYN+ payload (a
        // datagram from the peer's port is not in its window; acknowledging it would make
        // the peer ignore the CONN_ACK).
        if q.meta.msg_type != DataType::Conn && !q.meta.syn {
            return;
        }
        c.rcv_unacked += c.units(q.meta.header_len + q.msg.data.len());
        if c.rcv_unacked >= c.rcv_win / ACK_RATE {
            let now = self.conn.last_now;
            self.send_conn_ack(now, port, false);
        }
    }

    /// The §9.5 semantics of closing `port` with `err` (TIPC_ERR_NO_PORT for close): a
    /// connection returns its first unread message to the peer (or sends an empty CRITICAL
    /// CONN_MSG), a listener refuses its pending requests, a datagram socket returns what it
    /// did not read (unless destination-droppable). The socket ends up disconnected with
    /// nothing waiting for it.
    pub(super) fn conn_close(&mut self, now: Instant, port: u32, err: ErrorCode) {
        self.conn_note_time(now);
        let Some(p) = self.ports.get(port) else {
            return;
        };
        let (kind, phase, peer) = (p.kind, p.conn.phase, p.conn.peer);
        if !kind.is_connection() || phase == Phase::Listening {
            for q in self.ports.take_queue(port) {
                self.return_msg(now, port, &q, err);
            }
        } else if matches!(phase, Phase::Connecting | Phase::Connected) {
            let queue = self.ports.take_queue(port);
            let returned = queue
                .front()
                .is_some_and(|q| self.return_msg(now, port, q, err));
            if !returned {
                // Nothing (returnable) unread: an empty CRITICAL CONN_MSG carries the error.
                // (The kernel sends nothing when the first unread message has D set; the
                // peer would then hang until its probe, so utipc says it explicitly.)
                if let Some(msg) = self.conn_msg(port, err, Importance::Critical, &[], false) {
                    let _ = self.send_ctrl(now, peer.1, port, msg);
                }
            }
            self.conn.stats.aborts_sent += 1;
        }
        if let Some(p) = self.ports.get_mut(port) {
            p.conn.phase = if kind.is_connection() && phase != Phase::Open {
                Phase::Disconnected
            } else {
                phase
            };
            p.conn.syn = None;
            p.conn.deadline = None;
            p.conn.retry_at = None;
            p.conn.probe_at = None;
        }
        self.arm(port);
    }

    /// Forgets a socket that is being closed: its timer and its link waits.
    pub(super) fn conn_forget(&mut self, port: u32) {
        if let Some(t) = self.ports.get_mut(port).and_then(|p| p.conn.armed.take()) {
            self.conn.timers.remove(&(t, port));
        }
        for w in self.conn.waiters.values_mut() {
            w.retain(|&(p, _)| p != port);
        }
        self.conn.waiters.retain(|_, w| !w.is_empty());
    }

    /// Queues `msg` on `port`, reporting the port readable on the empty → non-empty edge.
    pub(super) fn queue_msg(
        &mut self,
        port: u32,
        msg: Received,
        meta: MsgMeta,
        limit: Option<usize>,
    ) -> Result<(), QueueError> {
        if self.ports.enqueue(port, msg, meta, limit)? {
            self.note_readable(port);
        }
        Ok(())
    }

    /// Reports `port` writable, once until the event is polled.
    fn note_writable(&mut self, port: u32) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        if p.internal {
            self.topsrv_note(port);
        } else if !p.writable_pending {
            p.writable_pending = true;
            self.conn.events.push_back(SocketEvent::Writable(port));
        }
    }

    fn note_readable(&mut self, port: u32) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        if p.internal {
            self.topsrv_note(port);
        } else if !p.readable_pending {
            p.readable_pending = true;
            self.conn.events.push_back(SocketEvent::Readable(port));
        }
    }

    /// Queues a socket event for the IO shell, or, for an internal port, hands it to the
    /// node's own user of that port (the topology server host), which runs before the
    /// current input returns.
    fn push_socket_event(&mut self, ev: SocketEvent) {
        if self.ports.is_internal(ev.port()) {
            self.topsrv_note(ev.port());
        } else {
            self.conn.events.push_back(ev);
        }
    }

    /// Sets the importance of an established connection's further messages.
    pub(super) fn set_conn_importance(&mut self, port: u32, importance: Importance) {
        if let Some(p) = self.ports.get_mut(port) {
            p.conn.importance = importance;
        }
    }

    /// A data message for a STREAM or SEQPACKET socket (the kernel's connection filter,
    /// spec §9.2, §9.5): what the socket accepts depends on its state; anything else is
    /// rejected with TIPC_ERR_NO_PORT (dropped if destination-droppable or already an
    /// error).
    pub(super) fn conn_filter(&mut self, now: Instant, port: u32, d: &DataRepr<'_>) {
        self.conn_note_time(now);
        let own = self.ident.addr;
        let Some(p) = self.ports.get(port) else {
            self.reject(now, d, ErrorCode::NoPort);
            return;
        };
        let c = &p.conn;
        let (phase, peer, rcvbuf) = (c.phase, c.peer, p.rcvbuf);
        let (has_syn, timeout, block, dest) = (c.syn.is_some(), c.timeout, c.block_flowctl, c.dest);
        let is_conn = d.msg_type == DataType::Conn;
        let origin = (d.orig_port, d.origin_node());
        let from_peer = c.is_peer(origin, own);
        if d.msg_type == DataType::Mcast {
            self.reject(now, d, ErrorCode::NoPort);
            return;
        }
        match phase {
            Phase::Connecting => {
                if is_conn {
                    if d.error == ErrorCode::Ok {
                        self.finish_connect(now, port, d);
                    } else {
                        self.connect_failed(port, ConnError::Refused(d.error), Some(d));
                    }
                    return;
                }
                if origin != peer {
                    self.reject(now, d, ErrorCode::NoPort);
                    return;
                }
                if d.error == ErrorCode::Overload && has_syn {
                    // Refused for a full queue: try again a little later (spec §9.2).
                    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                    let spread = (ms.max(4) / 4).min(u64::from(u16::MAX) + 1);
                    let delay = SYN_RETRY_BASE + Duration::from_millis(self.rng.below(spread));
                    if let Some(p) = self.ports.get_mut(port) {
                        p.conn.retry_at = Some(now + delay);
                    }
                    self.arm(port);
                    return;
                }
                let code = if d.error == ErrorCode::Ok {
                    ErrorCode::NoPort
                } else {
                    d.error
                };
                self.connect_failed(port, ConnError::Refused(code), Some(d));
            }
            Phase::Open | Phase::Disconnected => self.reject(now, d, ErrorCode::NoPort),
            Phase::Listening => {
                if !d.common.flags.syn && self.peer_caps(origin.1) & caps::SYN_BIT != 0 {
                    self.reject(now, d, ErrorCode::NoPort);
                    return;
                }
                if is_conn || d.error != ErrorCode::Ok {
                    self.reject(now, d, ErrorCode::NoPort);
                    return;
                }
                self.conn_enqueue(now, port, d, received(d, None), None);
            }
            Phase::Connected => {
                if is_conn && d.error == ErrorCode::Ok && from_peer {
                    if d.common.flags.multi_use {
                        // Ack-required (a Nagle peer): answer at once (spec §9.3).
                        self.send_conn_ack(now, port, true);
                    }
                    if d.payload.is_empty() {
                        // An empty message carries nothing to read; the kernel discards it
                        // unread (and uncounted) too.
                        return;
                    }
                    let limit = if block {
                        rcvbuf
                    } else {
                        LEGACY_CONN_LIMIT.max(rcvbuf)
                    };
                    let r = received(d, dest);
                    self.conn_enqueue(now, port, d, r, Some(limit));
                    return;
                }
                if !from_peer {
                    self.reject(now, d, ErrorCode::NoPort);
                    return;
                }
                if d.error == ErrorCode::Ok {
                    let r = received(d, None);
                    self.conn_enqueue(now, port, d, r, None);
                    return;
                }
                self.conn_abort(port, d.error, d.payload.to_vec(), MsgMeta::of(d));
            }
        }
    }

    fn conn_enqueue(
        &mut self,
        now: Instant,
        port: u32,
        d: &DataRepr<'_>,
        r: Received,
        limit: Option<usize>,
    ) {
        match self.queue_msg(port, r, MsgMeta::of(d), limit) {
            Ok(()) => self.stats.delivered += 1,
            Err(QueueError::NoPort) => self.reject(now, d, ErrorCode::NoPort),
            Err(QueueError::Overload) => {
                self.ports.count_drop(port, true);
                self.reject(now, d, ErrorCode::Overload);
            }
        }
    }

    /// The first CONN_MSG reached a connecting socket: established, with the sender's port,
    /// node and importance (spec §9.2).
    fn finish_connect(&mut self, now: Instant, port: u32, d: &DataRepr<'_>) {
        let peer = (d.orig_port, d.origin_node());
        let block = self.block_flowctl_with(peer.1);
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let c = &mut p.conn;
        c.phase = Phase::Connected;
        c.peer = peer;
        c.importance = d.importance;
        if !block {
            c.set_mode(false);
        }
        c.syn = None;
        c.deadline = None;
        c.retry_at = None;
        c.probe_at = Some(now + CONN_PROBING_INTERVAL);
        let dest = c.dest;
        let limit = if block {
            p.rcvbuf
        } else {
            LEGACY_CONN_LIMIT.max(p.rcvbuf)
        };
        self.arm(port);
        self.conn.stats.connected += 1;
        self.push_socket_event(SocketEvent::Connected { port, peer });
        if !d.payload.is_empty() {
            self.conn_enqueue(now, port, d, received(d, dest), Some(limit));
        }
    }

    /// A connect ended without a connection.
    fn connect_failed(&mut self, port: u32, reason: ConnError, returned: Option<&DataRepr<'_>>) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let c = &mut p.conn;
        c.phase = Phase::Disconnected;
        c.syn = None;
        c.deadline = None;
        c.retry_at = None;
        c.probe_at = None;
        self.arm(port);
        self.conn.stats.connect_failed += 1;
        self.push_socket_event(SocketEvent::ConnectFailed { port, reason });
        if let Some(d) = returned
            && d.error != ErrorCode::Ok
        {
            let r = Received {
                from: (d.orig_port, d.origin_node()),
                dest: dest_name(d),
                importance: d.importance,
                error: Some(d.error),
                data: d.payload.to_vec(),
            };
            let _ = self.queue_msg(port, r, MsgMeta::of(d), None);
        }
    }

    /// An established connection ended from the other side (or by node loss or probe
    /// failure): disconnected, with `err` after the data in the queue.
    fn conn_abort(&mut self, port: u32, err: ErrorCode, data: Vec<u8>, meta: MsgMeta) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let c = &mut p.conn;
        if c.phase != Phase::Connected {
            return;
        }
        c.phase = Phase::Disconnected;
        c.probe_at = None;
        let r = Received {
            from: c.peer,
            dest: c.dest.unwrap_or(DestName::Socket),
            importance: Importance::Critical,
            error: Some(err),
            data,
        };
        self.arm(port);
        self.conn.stats.disconnected += 1;
        self.push_socket_event(SocketEvent::Disconnected { port, error: err });
        let _ = self.queue_msg(port, r, meta, None);
    }

    /// A CONN_MANAGER message for this node (spec §1.4.9, §9.3, §9.4).
    pub(super) fn on_conn_mgr(&mut self, now: Instant, from: u32, p: &Packet<&[u8]>) {
        self.conn_note_time(now);
        let _ = from;
        let Ok(m) = ConnMgrRepr::parse(p) else {
            self.stats.malformed += 1;
            return;
        };
        let err = ErrorCode::from(p.get(crate::wire::data::field::ERROR) as u8);
        let own = self.ident.addr;
        let port = m.dest_port;
        let Some(ps) = self.ports.get(port) else {
            // No such socket: tell the sender, so its connection learns that its peer is
            // gone (the kernel returns every undeliverable message, spec §12).
            if err == ErrorCode::Ok && !m.base.common.flags.dest_droppable {
                self.reply_mgr(now, &m, m.msg_type, ErrorCode::NoPort);
            }
            self.conn.stats.mgr_dropped += 1;
            return;
        };
        if !ps.kind.is_connection() || !ps.conn.is_peer((m.orig_port, m.base.orig_node), own) {
            self.conn.stats.mgr_dropped += 1;
            return;
        }
        if err != ErrorCode::Ok {
            self.conn_abort(port, err, Vec::new(), MsgMeta::local_abort());
            return;
        }
        let Some(ps) = self.ports.get_mut(port) else {
            return;
        };
        let c = &mut ps.conn;
        c.probe_unacked = false;
        match m.msg_type {
            ConnMgrType::Probe => {
                self.reply_mgr(now, &m, ConnMgrType::ProbeReply, ErrorCode::Ok);
                self.conn.stats.probe_replies += 1;
            }
            ConnMgrType::Ack => {
                let acked = u32::from(m.conn_ack);
                if acked > c.snt_unacked {
                    // Acknowledges more than we sent: a confused or hostile peer (spec §9.3).
                    self.conn.stats.acks_ignored += 1;
                    return;
                }
                c.snt_unacked -= acked;
                if c.block_flowctl {
                    c.snd_win = u32::from(m.adv_win);
                }
                if c.want_writable && !c.window_full() {
                    c.want_writable = false;
                    self.note_writable(port);
                }
            }
            ConnMgrType::ProbeReply | ConnMgrType::Unknown(_) => {}
        }
    }

    /// Sends `m` back to where it came from as `msg_type` with `err` (the kernel's
    /// `tipc_msg_reverse` on a CONN_MANAGER message): ports swapped, to the previous node.
    fn reply_mgr(
        &mut self,
        now: Instant,
        m: &ConnMgrRepr<'_>,
        msg_type: ConnMgrType,
        err: ErrorCode,
    ) {
        let own = self.ident.addr;
        let back_to = m.base.common.prev_node;
        let repr = ConnMgrRepr {
            base: Internal {
                common: Common {
                    flags: Flags {
                        non_seq: false,
                        ..m.base.common.flags
                    },
                    prev_node: own,
                    ..Common::default()
                },
                orig_node: own,
                dest_node: back_to,
                extra_header: &[],
                payload: &[],
            },
            msg_type,
            orig_port: m.dest_port,
            dest_port: m.orig_port,
            conn_ack: m.conn_ack,
            adv_win: m.adv_win,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut pkt = Packet::new_unchecked(&mut buf[..]);
        if repr.emit(&mut pkt).is_err() {
            return;
        }
        pkt.set(crate::wire::data::field::ERROR, u32::from(u8::from(err)));
        let _ = self.send_ctrl(now, back_to, m.dest_port, buf);
    }

    /// Sends a CONN_ACK for what the application has read (spec §9.3).
    fn send_conn_ack(&mut self, now: Instant, port: u32, nagle_ack: bool) {
        let own = self.ident.addr;
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let rcvbuf = p.rcvbuf;
        let c = &mut p.conn;
        if c.phase != Phase::Connected {
            return;
        }
        let conn_ack = c.rcv_unacked.min(u32::from(u16::MAX));
        c.rcv_unacked -= conn_ack;
        let adv_win = if c.block_flowctl {
            c.rcv_win = (rcvbuf / FLOWCTL_BLOCK / 4).min(usize::from(u16::MAX)) as u32;
            c.rcv_win as u16
        } else {
            0
        };
        let (pport, pnode) = c.peer;
        let repr = ConnMgrRepr {
            base: Internal {
                common: Common {
                    flags: Flags {
                        multi_use: nagle_ack,
                        ..Flags::default()
                    },
                    prev_node: own,
                    ..Common::default()
                },
                orig_node: own,
                dest_node: pnode,
                extra_header: &[],
                payload: &[],
            },
            msg_type: ConnMgrType::Ack,
            orig_port: port,
            dest_port: pport,
            conn_ack: conn_ack as u16,
            adv_win,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        if repr.emit(&mut Packet::new_unchecked(&mut buf[..])).is_err() {
            return;
        }
        self.conn.stats.acks_sent += 1;
        let _ = self.send_ctrl(now, pnode, port, buf);
    }

    /// A CONN_MSG from `port` to its peer: 24-byte header, the connection's D bit (for data)
    /// or none (aborts, which are CRITICAL).
    fn conn_msg(
        &self,
        port: u32,
        error: ErrorCode,
        importance: Importance,
        data: &[u8],
        is_data: bool,
    ) -> Option<Vec<u8>> {
        let c = &self.ports.get(port)?.conn;
        let importance = if is_data || error == ErrorCode::Ok {
            c.importance
        } else {
            importance
        };
        let repr = DataRepr {
            importance,
            msg_type: DataType::Conn,
            common: Common {
                flags: Flags {
                    dest_droppable: error == ErrorCode::Ok && c.dest_droppable,
                    ..Flags::default()
                },
                prev_node: self.ident.addr,
                ..Common::default()
            },
            error,
            reroute_count: 0,
            lookup_scope: scope::NONE,
            header_len: MIN_H_SIZE,
            orig_port: port,
            dest_port: c.peer.0,
            orig_node: 0,
            dest_node: 0,
            name_type: 0,
            name_lower: 0,
            name_upper: 0,
            extra_header: &[],
            payload: data,
        };
        MessageRepr::Data(repr).to_vec().ok()
    }

    /// Returns a queued message to its sender with `err` (the kernel's `tipc_msg_reverse`,
    /// spec §12): same type and name, a 24-byte header widened to 32, ports swapped, at most
    /// 1024 bytes of data. Not done for destination-droppable or errored messages; returns
    /// whether it was sent.
    fn return_msg(&mut self, now: Instant, port: u32, q: &Queued, err: ErrorCode) -> bool {
        if q.meta.dest_droppable || q.msg.error.is_some() {
            return false;
        }
        let own = self.ident.addr;
        let (name_type, name_lower, name_upper) = match q.msg.dest {
            DestName::Socket => (0, 0, 0),
            DestName::Service {
                service_type,
                instance,
            } => (service_type, instance, 0),
            DestName::Range {
                service_type,
                lower,
                upper,
            } => (service_type, lower, upper),
        };
        let header_len = q.meta.msg_type.std_header_len().max(BASIC_H_SIZE);
        let keep = q.msg.data.len().min(MAX_REJECT_DATA);
        let repr = DataRepr {
            importance: q.msg.importance,
            msg_type: q.meta.msg_type,
            common: Common {
                flags: Flags {
                    syn: q.meta.syn,
                    ..Flags::default()
                },
                prev_node: own,
                ..Common::default()
            },
            error: err,
            reroute_count: 0,
            lookup_scope: q.meta.lookup_scope,
            header_len,
            orig_port: port,
            dest_port: q.msg.from.0,
            orig_node: own,
            dest_node: q.msg.from.1,
            name_type,
            name_lower,
            name_upper,
            extra_header: &[],
            payload: &q.msg.data[..keep],
        };
        let Ok(msg) = MessageRepr::Data(repr).to_vec() else {
            return false;
        };
        self.stats.rejected += 1;
        self.send_ctrl(now, q.msg.from.1, port, msg).is_ok()
    }

    /// Sends a message the protocol requires (ACK, CONN_ACK, probe, abort, returned
    /// message) to `node`: delivered at once to a local socket; on a congested link it waits
    /// and goes out when the link drains. `Err` only when the node has no working link.
    fn send_ctrl(
        &mut self,
        now: Instant,
        node: u32,
        selector: u32,
        msg: Vec<u8>,
    ) -> Result<(), SendError> {
        if self.is_own(node) {
            self.deliver_local(now, &msg);
            return Ok(());
        }
        if !self.peer_up(node) {
            return Err(SendError::Unreachable);
        }
        let imp = msg_importance(&msg);
        let waiting = self.conn.deferred.get(&node).is_some_and(|q| !q.is_empty());
        if waiting || self.link_congested(node, selector, imp) {
            self.defer(node, selector, msg);
            return Ok(());
        }
        let copy = msg.clone();
        match self.send_to_node(now, node, selector, msg) {
            Ok(()) => Ok(()),
            Err(SendError::Congested) => {
                self.defer(node, selector, copy);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn defer(&mut self, node: u32, selector: u32, msg: Vec<u8>) {
        if self.conn.deferred_len >= MAX_DEFERRED {
            self.conn.stats.deferred_dropped += 1;
            return;
        }
        self.conn.deferred_len += 1;
        self.conn.stats.deferred += 1;
        self.conn
            .deferred
            .entry(node)
            .or_default()
            .push_back((selector, msg));
    }

    /// Sends a message to `node` from socket `selector`: to a local socket at once, else
    /// over the link.
    fn route_conn(
        &mut self,
        now: Instant,
        node: u32,
        selector: u32,
        msg: Vec<u8>,
    ) -> Result<(), SendError> {
        if self.is_own(node) {
            self.deliver_local(now, &msg);
            Ok(())
        } else {
            self.send_to_node(now, node, selector, msg)
        }
    }

    /// A message from a local socket to a local socket.
    fn deliver_local(&mut self, now: Instant, msg: &[u8]) {
        let own = self.ident.addr;
        let Ok(p) = Packet::new_checked(msg) else {
            return;
        };
        if User::from(p.user_raw()) == User::ConnManager {
            self.on_conn_mgr(now, own, &p);
        } else {
            self.on_data(now, own, &p);
        }
    }

    /// Whether the link a message of `imp` from `selector` to `node` would take is congested
    /// (the same choice as the node's send path, spec §5.8).
    fn link_congested(&self, node: u32, selector: u32, imp: usize) -> bool {
        let Some(peer) = self.peers.get(&node) else {
            return false;
        };
        let up: Vec<&crate::link::Link> = peer
            .links
            .iter()
            .flatten()
            .map(|l| &l.link)
            .filter(|l| l.is_up())
            .collect();
        up.get(selector as usize & 1)
            .or(up.first())
            .is_some_and(|l| l.is_congested(imp))
    }

    /// Remembers that `port` wants to send to `node` once the link has room.
    pub(super) fn add_waiter(&mut self, node: u32, port: u32, imp: usize) {
        let w = self.conn.waiters.entry(node).or_default();
        if !w.iter().any(|&(p, _)| p == port) {
            w.push((port, imp));
        }
    }

    /// The link to `node` made progress: sends waiting control messages while it has room,
    /// then wakes the sockets whose importance has room again.
    pub(super) fn conn_link_progress(&mut self, now: Instant, node: u32) {
        self.conn_note_time(now);
        if self.conn.waking
            || (!self.conn.deferred.contains_key(&node) && !self.conn.waiters.contains_key(&node))
        {
            return;
        }
        self.conn.waking = true;
        if let Some(mut q) = self.conn.deferred.remove(&node) {
            while let Some((sel, msg)) = q.pop_front() {
                if self.link_congested(node, sel, msg_importance(&msg)) {
                    q.push_front((sel, msg));
                    break;
                }
                self.conn.deferred_len = self.conn.deferred_len.saturating_sub(1);
                if self.send_to_node(now, node, sel, msg).is_err() {
                    self.conn.stats.deferred_dropped += 1;
                }
            }
            if !q.is_empty() {
                self.conn.deferred.insert(node, q);
            }
        }
        if let Some(ws) = self.conn.waiters.remove(&node) {
            let up = self.peer_up(node);
            let mut keep = Vec::new();
            for (port, imp) in ws {
                if up && self.link_congested(node, port, imp) {
                    keep.push((port, imp));
                } else if self.ports.contains(port) {
                    self.note_writable(port);
                }
            }
            if !keep.is_empty() {
                self.conn.waiters.insert(node, keep);
            }
        }
        self.conn.waking = false;
    }

    /// The last link to `node` went down (spec §9.5): every connection to it is aborted with
    /// TIPC_ERR_NO_NODE as if the peer had sent it, connects to it fail, waiting control
    /// messages are dropped and waiting senders are woken (their next send reports the
    /// node unreachable).
    pub(super) fn conn_node_down(&mut self, node: u32) {
        if let Some(q) = self.conn.deferred.remove(&node) {
            self.conn.deferred_len = self.conn.deferred_len.saturating_sub(q.len());
            self.conn.stats.deferred_dropped += q.len() as u64;
        }
        if let Some(ws) = self.conn.waiters.remove(&node) {
            for (port, _) in ws {
                if self.ports.contains(port) {
                    self.note_writable(port);
                }
            }
        }
        let hit: Vec<(u32, Phase)> = self
            .ports
            .iter()
            .filter(|(_, p)| p.kind.is_connection() && p.conn.peer.1 == node)
            .map(|(port, p)| (port, p.conn.phase))
            .filter(|(_, ph)| matches!(ph, Phase::Connecting | Phase::Connected))
            .collect();
        for (port, phase) in hit {
            if phase == Phase::Connected {
                self.conn_abort(port, ErrorCode::NoNode, Vec::new(), MsgMeta::local_abort());
            } else {
                self.connect_failed(port, ConnError::NodeDown, None);
            }
        }
    }

    /// Puts `port`'s timer entry where its connection wants it.
    fn arm(&mut self, port: u32) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let next = p.conn.next_timer();
        if next == p.conn.armed {
            return;
        }
        if let Some(t) = p.conn.armed {
            self.conn.timers.remove(&(t, port));
        }
        p.conn.armed = next;
        if let Some(t) = next {
            self.conn.timers.insert((t, port));
        }
    }

    /// The earliest socket timer.
    pub(super) fn conn_poll_timeout(&self) -> Option<Instant> {
        self.conn.timers.first().map(|&(t, _)| t)
    }

    /// Runs the socket timers that are due (at most [`MAX_TIMERS_PER_CALL`]).
    pub(super) fn conn_handle_timeout(&mut self, now: Instant) {
        self.conn_note_time(now);
        for _ in 0..MAX_TIMERS_PER_CALL {
            let Some(&(t, port)) = self.conn.timers.first() else {
                return;
            };
            if t > now {
                return;
            }
            self.conn.timers.remove(&(t, port));
            if let Some(p) = self.ports.get_mut(port) {
                p.conn.armed = None;
            }
            self.conn_timer(now, port);
            self.arm(port);
        }
    }

    fn conn_timer(&mut self, now: Instant, port: u32) {
        let own = self.ident.addr;
        let Some(p) = self.ports.get(port) else {
            return;
        };
        let c = &p.conn;
        let (pport, pnode) = c.peer;
        let imp = c.importance as usize;
        match c.phase {
            Phase::Connecting => {
                let retry = c.retry_at.is_some_and(|t| t <= now);
                let syn = if retry { c.syn.clone() } else { None };
                if retry && let Some(p) = self.ports.get_mut(port) {
                    p.conn.retry_at = None;
                }
                if let Some(syn) = syn {
                    let congested = !self.is_own(pnode) && self.link_congested(pnode, port, imp);
                    let again = congested || {
                        self.conn.stats.syn_retries += 1;
                        self.route_conn(now, pnode, port, syn) == Err(SendError::Congested)
                    };
                    if again && let Some(p) = self.ports.get_mut(port) {
                        p.conn.retry_at = Some(now + CONGESTED_RETRY);
                    }
                }
                let due = self.ports.get(port).is_some_and(|p| {
                    p.conn.phase == Phase::Connecting && p.conn.deadline.is_some_and(|t| t <= now)
                });
                if due {
                    self.connect_failed(port, ConnError::Timeout, None);
                }
            }
            Phase::Connected => {
                if c.probe_at.is_none_or(|t| t > now) {
                    return;
                }
                if c.probe_unacked {
                    // No word from the peer for a whole interval (spec §9.4).
                    self.conn_abort(port, ErrorCode::NoNode, Vec::new(), MsgMeta::local_abort());
                    return;
                }
                if let Some(p) = self.ports.get_mut(port) {
                    p.conn.probe_unacked = true;
                    p.conn.probe_at = Some(now + CONN_PROBING_INTERVAL);
                }
                let repr = ConnMgrRepr {
                    base: Internal {
                        common: Common {
                            prev_node: own,
                            ..Common::default()
                        },
                        orig_node: own,
                        dest_node: pnode,
                        extra_header: &[],
                        payload: &[],
                    },
                    msg_type: ConnMgrType::Probe,
                    orig_port: port,
                    dest_port: pport,
                    conn_ack: 0,
                    adv_win: 0,
                };
                let mut buf = vec![0u8; repr.buffer_len()];
                if repr.emit(&mut Packet::new_unchecked(&mut buf[..])).is_ok() {
                    self.conn.stats.probes_sent += 1;
                    let _ = self.send_ctrl(now, pnode, port, buf);
                }
            }
            _ => {}
        }
    }

    /// Whether `node` is this node: its address, or 0 — the address a node-local connection
    /// made before the address was committed keeps for its peer.
    fn is_own(&self, node: u32) -> bool {
        node == self.ident.addr || node == 0
    }

    /// Capabilities of `node` (our own for this node).
    fn peer_caps(&self, node: u32) -> u16 {
        if self.is_own(node) {
            self.cfg.capabilities
        } else {
            self.peers.get(&node).map_or(0, |p| p.caps)
        }
    }

    /// Block-based flow control needs BLOCK_FLOWCTL on both nodes: a peer without it counts
    /// messages and would misread block counts (spec §3.4, §9.3).
    fn block_flowctl_with(&self, node: u32) -> bool {
        self.cfg.capabilities & self.peer_caps(node) & caps::BLOCK_FLOWCTL != 0
    }
}

/// How a message was addressed.
pub(super) fn dest_name(d: &DataRepr<'_>) -> DestName {
    match d.msg_type {
        DataType::Named => DestName::Service {
            service_type: d.name_type,
            instance: d.name_lower,
        },
        DataType::Mcast => DestName::Range {
            service_type: d.name_type,
            lower: d.name_lower,
            upper: d.name_upper,
        },
        _ => DestName::Socket,
    }
}

/// The application's view of a received message; connection data carries the connection's
/// name (`conn_dest`) as the kernel's TIPC_DESTNAME does.
pub(super) fn received(d: &DataRepr<'_>, conn_dest: Option<DestName>) -> Received {
    Received {
        from: (d.orig_port, d.origin_node()),
        dest: match (d.msg_type, conn_dest) {
            (DataType::Conn, Some(n)) => n,
            _ => dest_name(d),
        },
        importance: d.importance,
        error: None,
        data: d.payload.to_vec(),
    }
}
