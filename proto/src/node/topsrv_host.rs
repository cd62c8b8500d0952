//! The node's topology server `{1, 1}` (spec §8): the glue between the pure
//! [`crate::topsrv::TopologyServer`] and the node's name table and connections (spec §9).
//!
//! Read spec §8.1 first. Every node, kernel or utipc, serves topology subscriptions on a
//! SOCK_SEQPACKET listener bound to `{TIPC_TOP_SRV = 1, 1, 1}` with node scope. A utipc node
//! opens that listener itself when it is created, as an *internal* socket: the node plays the
//! server application. So:
//!
//! * connection requests to the listener are accepted at once, on internal sockets too;
//! * every message arriving on such a connection is one subscription (or cancellation) for
//!   [`TopologyServer::subscribe`], the connection's port being the subscriber id; a refused
//!   one shuts the connection down (the kernel's `SHUT_RDWR`: the subscriber reads end of
//!   file) and closes it;
//! * every name-table change anywhere in the node (local bind/unbind, socket close, bindings
//!   learned from peers or purged at node loss, the node's own `{0, addr, addr}`, the
//!   `{2, peer, peer}` link-state bindings) goes through [`Node::table_published`] /
//!   [`Node::table_withdrawn`], which also produce the node's [`super::Event`]s;
//! * events go back on the connection at critical importance through the ordinary connection
//!   send path, so they obey the subscriber's flow-control window; what does not fit waits
//!   in a per-connection queue that is flushed on the connection's writable edge. A queue
//!   that exceeds [`MAX_PENDING_EVENTS`] means a subscriber that does not read: its
//!   connection is shut down and closed, and [`TopsrvStats::overflow_closed`] counts it;
//! * the subscriber ending the connection (close, shutdown, node loss) removes its
//!   subscriptions.
//!
//! Importance: the accept ACK goes at the SYN's importance, as every accept does, so the
//! subscriber adopts its own; the events then go at critical importance, as spec §8.1 has
//! the server's socket. (A kernel's accepted socket keeps the SYN's importance for its events
//! too; only the importance field of the events differs, which subscribers do not check, and
//! critical events get the largest link backlog.)
//!
//! Remote subscribers reach the server like the kernel's: they connect to `{1, 1}` with the
//! lookup domain set to this node, their node forwards the SYN unresolved (destination port
//! 0) and the secondary lookup here finds the node-scope binding.
//!
//! Internal sockets never produce [`super::SocketEvent`]s, are not counted by
//! [`Node::port_count`], and every application command given one of their ports acts as if
//! the port did not exist.
//!
//! Work for internal sockets (a connection became readable or writable, events were queued)
//! is noted while an input runs and done by [`Node::topsrv_run`] at the end of every public
//! input or command, so the server never acts in the middle of the link or name-table code.
//!
//! Wire note: the node-scope binding is never distributed, so the bulk and every update stay
//! byte-identical to a kernel's; the listener's port comes from a generator of its own, so
//! the node's other random choices are those of a node without the server.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Event;
use super::Node;
use super::conn::{ConnState, SocketKind};
use super::routing::SendError;
use crate::name_table::{Binding, Scope, TableChange};
use crate::rand::Rng;
use crate::time::Instant;
use crate::topsrv::{Out, TIPC_MAX_SUBSCR, TopologyServer};
use crate::wire::common::Importance;
use crate::wire::topsrv::EVENT_LEN;

/// The reserved service type of the topology server (TIPC_TOP_SRV); it is bound as
/// `{1, 1, 1}` with node scope.
pub const TIPC_TOP_SRV: u32 = 1;

/// Events one subscriber connection may have waiting for its flow-control window; beyond
/// this the connection is shut down (a subscriber that does not read).
pub const MAX_PENDING_EVENTS: usize = 65_536;

/// At most this many internal sockets are served per [`Node::topsrv_run`]; the rest wait for
/// the next input (and [`Node::poll_timeout`] asks for it at once).
const MAX_WORK_PER_RUN: usize = 65_536;

/// Seed modifier of the internal sockets' port generator (ASCII "topsrv").
const PORT_SEED: u64 = 0x746f_7073_7276;

/// Topology server counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopsrvStats {
    /// Subscriber connections accepted.
    pub connections: u64,
    /// Subscriber connections ended: by the subscriber, its node's loss, or by us.
    pub closed: u64,
    /// Subscription and cancellation messages accepted.
    pub requests: u64,
    /// Messages refused (bad length, PORTS and SERVICE, empty range, limit): each closed
    /// its connection.
    pub refused: u64,
    /// Events sent.
    pub events_sent: u64,
    /// Events discarded: their connection ended or overflowed before they could be sent.
    pub events_dropped: u64,
    /// Connections shut down because more than [`MAX_PENDING_EVENTS`] events waited.
    pub overflow_closed: u64,
}

/// What the host keeps per subscriber connection.
#[derive(Debug, Default)]
pub(super) struct SubConn {
    /// Events that did not fit the connection's window yet, oldest first.
    pub(super) pending: VecDeque<[u8; EVENT_LEN]>,
    /// More than the bound was queued: close at the next run.
    pub(super) overflowed: bool,
}

/// The topology server of one node, with its sockets.
#[derive(Debug)]
pub(super) struct TopsrvHost {
    pub(super) server: TopologyServer,
    /// The internal listener bound to {1, 1, 1}.
    pub(super) listener: u32,
    /// Port numbers of internal sockets.
    rng: Rng,
    /// Subscriber connections by their (internal) port.
    pub(super) conns: BTreeMap<u32, SubConn>,
    /// Internal sockets with work: readable, writable, ended, or events queued.
    dirty: BTreeSet<u32>,
    /// Set while the host works: internal ports are usable, and there is no re-entry.
    running: bool,
    /// Bound of [`SubConn::pending`] ([`MAX_PENDING_EVENTS`]; lower in tests).
    pub(super) max_pending: usize,
    pub(super) stats: TopsrvStats,
}

impl TopsrvHost {
    pub(super) fn new(rng_seed: u64) -> Self {
        Self {
            server: TopologyServer::new(TIPC_MAX_SUBSCR),
            listener: 0,
            rng: Rng::new(rng_seed ^ PORT_SEED),
            conns: BTreeMap::new(),
            dirty: BTreeSet::new(),
            running: false,
            max_pending: MAX_PENDING_EVENTS,
            stats: TopsrvStats::default(),
        }
    }
}

impl Node {
    /// The topology server: its subscriptions ([`TopologyServer::len`]).
    pub fn topology_server(&self) -> &TopologyServer {
        &self.topsrv.server
    }

    /// Topology server counters.
    pub fn topsrv_stats(&self) -> &TopsrvStats {
        &self.topsrv.stats
    }

    /// The port of the topology server's listener (bound to `{1, 1, 1}`, node scope).
    pub fn topsrv_port(&self) -> u32 {
        self.topsrv.listener
    }

    /// Whether `port` is one of the node's own sockets (the topology server's listener or
    /// one of its connections): never the application's.
    pub fn is_internal_port(&self, port: u32) -> bool {
        self.ports.is_internal(port)
    }

    /// Opens the listener and binds it to {1, 1, 1} with node scope, bypassing the
    /// reserved-type check that applies to applications (spec §8.1, §8.5).
    pub(super) fn topsrv_start(&mut self) {
        self.topsrv.running = true;
        let port = self.open_internal_socket(SocketKind::Seqpacket);
        self.topsrv.listener = port;
        let _ = self.listen(port);
        let b = Binding {
            service_type: TIPC_TOP_SRV,
            lower: 1,
            upper: 1,
            port,
            node: self.ident.addr,
            key: port,
            scope: Scope::Node,
        };
        if let Ok(change) = self.name_table.insert(b) {
            self.table_published(&change);
        }
        self.topsrv.running = false;
    }

    /// Opens an internal socket: numbered by the server's own generator, so the node's
    /// generator (ports, sessions, signature) runs exactly as without the server.
    pub(super) fn open_internal_socket(&mut self, kind: SocketKind) -> u32 {
        loop {
            let p = self.topsrv.rng.next_u32();
            if p != 0 && !self.ports.contains(p) {
                self.ports.open(p, kind, true);
                return p;
            }
        }
    }

    /// Whether an application command on `port` must act as if it did not exist: the port is
    /// internal and the command does not come from the host.
    pub(super) fn port_hidden(&self, port: u32) -> bool {
        !self.topsrv.running && self.ports.is_internal(port)
    }

    /// An internal socket has something for the host (the socket event it would have had).
    pub(super) fn topsrv_note(&mut self, port: u32) {
        self.topsrv.dirty.insert(port);
    }

    /// A binding was added to the name table: the node's event and the subscribers' events.
    pub(super) fn table_published(&mut self, change: &TableChange) {
        self.events.push_back(Event::Published(change.binding));
        let outs = self.topsrv.server.binding_changed(change, true);
        self.topsrv_enqueue(outs);
    }

    /// A binding left the name table: the node's event and the subscribers' events.
    pub(super) fn table_withdrawn(&mut self, change: &TableChange) {
        self.events.push_back(Event::Withdrawn(change.binding));
        let outs = self.topsrv.server.binding_changed(change, false);
        self.topsrv_enqueue(outs);
    }

    /// Queues events on their connections; they go out at the next run.
    fn topsrv_enqueue(&mut self, outs: Vec<Out>) {
        let host = &mut self.topsrv;
        for out in outs {
            let Ok(port) = u32::try_from(out.subscriber) else {
                continue;
            };
            let Some(c) = host.conns.get_mut(&port) else {
                host.stats.events_dropped += 1;
                continue;
            };
            if c.overflowed || c.pending.len() >= host.max_pending {
                c.overflowed = true;
                host.stats.events_dropped += 1;
            } else {
                c.pending.push_back(out.event);
            }
            host.dirty.insert(port);
        }
    }

    /// When the server next needs [`Node::handle_timeout`]: a subscription's timeout, or at
    /// once if work was left over by the bound of one run.
    pub(super) fn topsrv_poll_timeout(&self) -> Option<Instant> {
        let leftover = (!self.topsrv.dirty.is_empty()).then(|| self.conn_last_now());
        match (self.topsrv.server.poll_timeout(), leftover) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires the subscriptions whose timeout has passed (spec §8.4).
    pub(super) fn topsrv_handle_timeout(&mut self, now: Instant) {
        if self.topsrv.server.poll_timeout().is_some_and(|t| t <= now) {
            let outs = self.topsrv.server.handle_timeout(now);
            self.topsrv_enqueue(outs);
        }
    }

    /// Does the work noted for internal sockets: accepts connections, reads subscriptions,
    /// sends events, closes ended connections. Called at the end of every public input and
    /// command; cheap when there is nothing to do.
    pub(super) fn topsrv_run(&mut self, now: Instant) {
        if self.topsrv.running || self.topsrv.dirty.is_empty() {
            return;
        }
        self.topsrv.running = true;
        for _ in 0..MAX_WORK_PER_RUN {
            let Some(port) = self.topsrv.dirty.pop_first() else {
                break;
            };
            if port == self.topsrv.listener {
                self.topsrv_accept(now);
            } else {
                self.topsrv_serve(now, port);
            }
        }
        self.topsrv.running = false;
    }

    /// Accepts every pending connection request on the listener.
    fn topsrv_accept(&mut self, now: Instant) {
        let listener = self.topsrv.listener;
        let pending = self.ports.get(listener).map_or(0, |p| p.queue.len());
        for _ in 0..pending {
            let Some(a) = self.accept(now, listener) else {
                break;
            };
            // The accept ACK went at the request's importance (the subscriber adopts it);
            // events go at critical importance (spec §8.1).
            self.set_conn_importance(a.port, Importance::Critical);
            self.topsrv.conns.insert(a.port, SubConn::default());
            self.topsrv.stats.connections += 1;
            // A SYN+ may already hold the first subscription; or the accept failed.
            self.topsrv.dirty.insert(a.port);
        }
    }

    /// Serves one subscriber connection: its subscriptions, then its waiting events.
    fn topsrv_serve(&mut self, now: Instant, port: u32) {
        if !self.topsrv.conns.contains_key(&port) {
            return;
        }
        let queued = self.ports.get(port).map_or(0, |p| p.queue.len());
        for _ in 0..queued {
            let Some(msg) = self.recv(port) else {
                break;
            };
            if msg.error.is_some() {
                // The end of the connection (its state says so too).
                break;
            }
            match self
                .topsrv
                .server
                .subscribe(now, u64::from(port), &msg.data, &self.name_table)
            {
                Ok(outs) => {
                    self.topsrv.stats.requests += 1;
                    self.topsrv_enqueue(outs);
                }
                Err(_) => {
                    // The kernel closes the connection (spec §8.4).
                    self.topsrv.stats.refused += 1;
                    self.topsrv_close(now, port);
                    return;
                }
            }
        }
        let ended = !matches!(self.conn_state(port), Some(ConnState::Connected { .. }));
        if ended {
            self.topsrv_close(now, port);
            return;
        }
        if self.topsrv.conns.get(&port).is_some_and(|c| c.overflowed) {
            self.topsrv.stats.overflow_closed += 1;
            self.topsrv_close(now, port);
            return;
        }
        self.topsrv_flush(now, port);
    }

    /// Sends waiting events while the connection's window and the link allow; a
    /// [`super::SocketEvent::Writable`] (noted for the host) resumes the rest.
    fn topsrv_flush(&mut self, now: Instant, port: u32) {
        let waiting = self.topsrv.conns.get(&port).map_or(0, |c| c.pending.len());
        for _ in 0..waiting {
            let Some(ev) = self
                .topsrv
                .conns
                .get(&port)
                .and_then(|c| c.pending.front().copied())
            else {
                return;
            };
            match self.send_conn(now, port, &ev) {
                Ok(_) => {
                    if let Some(c) = self.topsrv.conns.get_mut(&port) {
                        c.pending.pop_front();
                    }
                    self.topsrv.stats.events_sent += 1;
                }
                // The window or the link is full: the writable edge brings us back.
                Err(SendError::WouldBlock | SendError::Congested) => return,
                // The connection ended (its end was noted for the host and closes it) or its
                // node is being lost (which ends it): keep the events until then, and do not
                // retry in a loop.
                Err(_) => return,
            }
        }
    }

    /// Ends a subscriber connection from our side (or after the subscriber ended it): its
    /// subscriptions and waiting events go, the subscriber reads end of file (the kernel's
    /// `SHUT_RDWR`), and the socket is closed.
    fn topsrv_close(&mut self, now: Instant, port: u32) {
        self.topsrv.server.remove_subscriber(u64::from(port));
        if let Some(c) = self.topsrv.conns.remove(&port) {
            self.topsrv.stats.events_dropped += c.pending.len() as u64;
            self.topsrv.stats.closed += 1;
        }
        if matches!(self.conn_state(port), Some(ConnState::Connected { .. })) {
            let _ = self.shutdown_conn(now, port);
        }
        // Fails only if the socket is already gone, which is the goal.
        let _ = self.close_port(now, port);
        self.topsrv.dirty.remove(&port);
    }
}
