//! Local sockets ("ports") and their receive queues.
//!
//! The core keeps each socket's receive queue so that the kernel's receive-limit semantics
//! hold in every deployment, simulation included: a datagram that would push a queue past its
//! limit is rejected back to the sender with TIPC_ERR_OVERLOAD (or dropped and counted when the
//! sender marked it destination-droppable), never lost silently. The IO shell drains the
//! queues into applications.

use std::collections::{HashMap, VecDeque};

use crate::wire::common::Importance;
use crate::wire::data::ErrorCode;

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

/// One local socket.
#[derive(Debug, Default)]
pub(crate) struct PortState {
    pub(crate) queue: VecDeque<Received>,
    pub(crate) queued_bytes: usize,
    pub(crate) rcvbuf: usize,
    pub(crate) dropped: u64,
    pub(crate) rejected_overload: u64,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// No such port.
    NoPort,
    /// The queue is over its limit for this importance.
    Overload,
}

/// All local sockets.
#[derive(Debug, Default)]
pub(crate) struct Ports {
    map: HashMap<u32, PortState>,
}

impl Ports {
    pub(crate) fn contains(&self, port: u32) -> bool {
        self.map.contains_key(&port)
    }

    pub(crate) fn open(&mut self, port: u32) {
        self.map.insert(
            port,
            PortState {
                rcvbuf: DEFAULT_RCVBUF,
                ..PortState::default()
            },
        );
    }

    pub(crate) fn close(&mut self, port: u32) -> Option<PortState> {
        self.map.remove(&port)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
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

    /// Queues `msg` for `port` if its importance's limit allows (rejected messages coming back
    /// to us are always accepted: they are answers to our own sends).
    pub(crate) fn enqueue(&mut self, port: u32, msg: Received) -> Result<(), QueueError> {
        let p = self.map.get_mut(&port).ok_or(QueueError::NoPort)?;
        let limit = p.rcvbuf << (msg.importance as usize);
        if msg.error.is_none() && p.queued_bytes + msg.data.len() > limit {
            return Err(QueueError::Overload);
        }
        p.queued_bytes += msg.data.len();
        p.queue.push_back(msg);
        Ok(())
    }

    pub(crate) fn dequeue(&mut self, port: u32) -> Option<Received> {
        let p = self.map.get_mut(&port)?;
        let m = p.queue.pop_front()?;
        p.queued_bytes -= m.data.len();
        Some(m)
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
