//! Local sockets ("ports") and their receive queues.
//!
//! The core keeps each socket's receive queue so that the kernel's receive-limit semantics
//! hold in every deployment, simulation included: a datagram that would push a queue past its
//! limit is rejected back to the sender with TIPC_ERR_OVERLOAD (or dropped and counted when the
//! sender marked it destination-droppable), never lost silently. The IO shell drains the
//! queues into applications.

use std::collections::{HashMap, VecDeque};

use super::conn::{Conn, SocketKind};
use crate::wire::MIN_H_SIZE;
use crate::wire::common::Importance;
use crate::wire::data::{DataRepr, DataType, ErrorCode};

/// Default receive limit for low importance (the kernel's default sk_rcvbuf of 2 MiB); each
/// higher importance doubles it (spec §12).
pub const DEFAULT_RCVBUF: usize = 2 * 1024 * 1024;

/// Where a received message was addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestName {
    /// To our socket address.
    Socket,
    /// To a service address {type, instance}.
    Service {
        /// Service type.
        service_type: u32,
        /// Instance.
        instance: u32,
    },
    /// To a service range {type, lower, upper}.
    Range {
        /// Service type.
        service_type: u32,
        /// Lower bound.
        lower: u32,
        /// Upper bound.
        upper: u32,
    },
}

/// A message waiting in a socket's receive queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Sending socket: (port, node).
    pub from: (u32, u32),
    /// How it was addressed.
    pub dest: DestName,
    /// Importance the sender chose.
    pub importance: Importance,
    /// `Some` when this is one of our own messages coming back rejected: why.
    pub error: Option<ErrorCode>,
    /// The data (for a rejected message: the returned data, at most 1024 bytes).
    pub data: Vec<u8>,
}

/// What the core keeps about a queued message besides what the application sees: enough to
/// count its flow-control blocks when it is read (spec §9.3) and to return it to its sender
/// when the socket closes unread (spec §9.5, §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsgMeta {
    /// Header length as received (24 for CONN_MSG, 32/40/44 otherwise).
    pub(crate) header_len: usize,
    /// Message type as received.
    pub(crate) msg_type: DataType,
    /// The sender's D bit: such a message is never returned.
    pub(crate) dest_droppable: bool,
    /// The SYN bit (a connection request queued on a listener).
    pub(crate) syn: bool,
    /// Lookup scope as received (kept for the returned copy).
    pub(crate) lookup_scope: u8,
}

impl MsgMeta {
    /// The metadata of a parsed data message.
    pub(crate) fn of(d: &DataRepr<'_>) -> Self {
        Self {
            header_len: d.header_len,
            msg_type: d.msg_type,
            dest_droppable: d.common.flags.dest_droppable,
            syn: d.common.flags.syn,
            lookup_scope: d.lookup_scope,
        }
    }

    /// A message generated locally (connection aborts): a 24-byte CONN_MSG, never returned.
    pub(crate) fn local_abort() -> Self {
        Self {
            header_len: MIN_H_SIZE,
            msg_type: DataType::Conn,
            dest_droppable: true,
            syn: false,
            lookup_scope: 0,
        }
    }
}

/// A queued message.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) msg: Received,
    pub(crate) meta: MsgMeta,
}

/// One local socket.
#[derive(Debug)]
pub(crate) struct PortState {
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) queued_bytes: usize,
    pub(crate) rcvbuf: usize,
    pub(crate) dropped: u64,
    pub(crate) rejected_overload: u64,
    /// The socket type (spec §9.1).
    pub(crate) kind: SocketKind,
    /// Connection state (used by STREAM and SEQPACKET sockets only).
    pub(crate) conn: Conn,
    /// A [`super::SocketEvent::Readable`] for this port is waiting in the event queue.
    pub(crate) readable_pending: bool,
    /// A [`super::SocketEvent::Writable`] for this port is waiting in the event queue.
    pub(crate) writable_pending: bool,
    /// The node itself uses this socket (the topology server's listener and connections):
    /// its events go to the node, not to the IO shell, and the application cannot touch it.
    pub(crate) internal: bool,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// No such port.
    NoPort,
    /// The queue is over its limit for this importance.
    Overload,
}

/// Hashes a port number with one multiplication (Fibonacci hashing). Every message looks its
/// destination port up, several times on its way, and std's SipHash costs more than the rest
/// of the lookup. Flooding is no concern: the keys are port numbers this node drew at random,
/// and a frame from the wire can only look one up, never insert one.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PortHasher(u64);

impl core::hash::Hasher for PortHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ u64::from(v)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PortMap = HashMap<u32, PortState, core::hash::BuildHasherDefault<PortHasher>>;

/// All local sockets.
#[derive(Debug, Default)]
pub(crate) struct Ports {
    map: PortMap,
    /// How many of `map` are internal.
    internal: usize,
}

impl Ports {
    pub(crate) fn contains(&self, port: u32) -> bool {
        self.map.contains_key(&port)
    }

    pub(crate) fn open(&mut self, port: u32, kind: SocketKind, internal: bool) {
        let old = self.map.insert(
            port,
            PortState {
                queue: VecDeque::new(),
                queued_bytes: 0,
                rcvbuf: DEFAULT_RCVBUF,
                dropped: 0,
                rejected_overload: 0,
                kind,
                conn: Conn::default(),
                readable_pending: false,
                writable_pending: false,
                internal,
            },
        );
        if old.is_some_and(|p| p.internal) {
            self.internal -= 1;
        }
        if internal {
            self.internal += 1;
        }
    }

    /// Whether `port` is open and internal.
    pub(crate) fn is_internal(&self, port: u32) -> bool {
        self.map.get(&port).is_some_and(|p| p.internal)
    }

    pub(crate) fn get_mut(&mut self, port: u32) -> Option<&mut PortState> {
        self.map.get_mut(&port)
    }

    /// Every open port, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &PortState)> {
        self.map.iter().map(|(&p, s)| (p, s))
    }

    pub(crate) fn close(&mut self, port: u32) -> Option<PortState> {
        let p = self.map.remove(&port)?;
        if p.internal {
            self.internal -= 1;
        }
        Some(p)
    }

    /// Number of the application's sockets (internal ones not counted).
    pub(crate) fn user_len(&self) -> usize {
        self.map.len() - self.internal
    }

    pub(crate) fn get(&self, port: u32) -> Option<&PortState> {
        self.map.get(&port)
    }

    pub(crate) fn set_rcvbuf(&mut self, port: u32, bytes: usize) -> bool {
        match self.map.get_mut(&port) {
            Some(p) => {
                p.rcvbuf = bytes;
                true
            }
            None => false,
        }
    }

    /// Queues `msg` for `port` if the limit allows: `limit` for connection traffic, else the
    /// socket's limit for the message's importance (rejected messages coming back to us are
    /// always accepted: they are answers to our own sends). Returns whether the queue was
    /// empty before (the transition that makes a socket readable).
    pub(crate) fn enqueue(
        &mut self,
        port: u32,
        msg: Received,
        meta: MsgMeta,
        limit: Option<usize>,
    ) -> Result<bool, QueueError> {
        let p = self.map.get_mut(&port).ok_or(QueueError::NoPort)?;
        let limit = limit.unwrap_or(p.rcvbuf << (msg.importance as usize));
        if msg.error.is_none() && p.queued_bytes + msg.data.len() > limit {
            return Err(QueueError::Overload);
        }
        let was_empty = p.queue.is_empty();
        p.queued_bytes += msg.data.len();
        p.queue.push_back(Queued { msg, meta });
        Ok(was_empty)
    }

    /// Puts a message at the head of the queue (a SYN+ payload handed to the accepted socket).
    pub(crate) fn push_front(&mut self, port: u32, msg: Received, meta: MsgMeta) -> bool {
        let Some(p) = self.map.get_mut(&port) else {
            return false;
        };
        let was_empty = p.queue.is_empty();
        p.queued_bytes += msg.data.len();
        p.queue.push_front(Queued { msg, meta });
        was_empty
    }

    pub(crate) fn dequeue(&mut self, port: u32) -> Option<Queued> {
        let p = self.map.get_mut(&port)?;
        let m = p.queue.pop_front()?;
        p.queued_bytes -= m.msg.data.len();
        Some(m)
    }

    /// Empties a socket's queue and returns what it held.
    pub(crate) fn take_queue(&mut self, port: u32) -> VecDeque<Queued> {
        match self.map.get_mut(&port) {
            Some(p) => {
                p.queued_bytes = 0;
                core::mem::take(&mut p.queue)
            }
            None => VecDeque::new(),
        }
    }

    pub(crate) fn count_drop(&mut self, port: u32, overload: bool) {
        if let Some(p) = self.map.get_mut(&port) {
            if overload {
                p.rejected_overload += 1;
            } else {
                p.dropped += 1;
            }
        }
    }
}
