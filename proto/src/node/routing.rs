//! Sockets, bindings and datagram routing (spec §7.2, §7.4, §12).
//!
//! Sending: to a socket address (DIRECT), a service address (NAMED, anycast round-robin) or a
//! service range (MCAST to every matching socket cluster-wide: local copies plus one
//! replicast copy per remote node). Receiving: delivery to the destination socket's queue,
//! the secondary lookup of named messages, and rejection back to the sender with the kernel's
//! error codes when a message cannot be delivered and is not destination-droppable.

use super::conn::{SocketKind, dest_name, received};
use super::ports::{MsgMeta, QueueError, Received};
use super::{Node, NodeError, TIPC_RESERVED_TYPES};
use crate::name_distr::{UpdateDest, build_update};
use crate::name_table::{AnycastResult, Binding, Scope};
use crate::time::Instant;
use crate::wire::common::{Common, Flags, Importance};
use crate::wire::data::{DataRepr, DataType, ErrorCode, scope};
use crate::wire::name_distr::NameDistrType;
use crate::wire::{
    BASIC_H_SIZE, MAX_USER_MSG_SIZE, MCAST_H_SIZE, MessageRepr, NAMED_H_SIZE, Packet,
};

/// At most this much of a rejected message's data goes back to its sender.
pub const MAX_REJECT_DATA: usize = 1024;

/// A destination, as the socket API names them (spec §13): the `sockaddr_tipc` address kinds.
pub use crate::wire::sockaddr::TipcAddr as Addr;

/// Per-message send options (the socket options of spec §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendOpts {
    /// Importance 0–3.
    pub importance: Importance,
    /// D: drop rather than return the message if it cannot be delivered (default for RDM).
    pub dest_droppable: bool,
    /// S: source-droppable.
    pub src_droppable: bool,
}

impl Default for SendOpts {
    fn default() -> Self {
        Self {
            importance: Importance::Low,
            dest_droppable: true,
            src_droppable: false,
        }
    }
}

/// Why a send failed at once (nothing went on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The sending port is not open.
    NoSuchPort,
    /// The node has no committed address yet (address trial running, or no bearer).
    NotReady,
    /// No binding matches the service address (EHOSTUNREACH).
    NoRoute,
    /// No working link to the destination node.
    Unreachable,
    /// The link's backlog for this importance is full: try again later.
    Congested,
    /// More than 66,000 bytes of data.
    TooLarge,
    /// An address type the socket API does not define.
    BadAddress,
    /// A connection's send window is full: the peer has not acknowledged enough of what it
    /// was sent. Retry on [`super::SocketEvent::Writable`].
    WouldBlock,
    /// The socket is not connected (open, listening or still connecting), or is a datagram
    /// socket given to a connection call.
    NotConnected,
    /// The connection has ended (shut down, closed or aborted by the peer, or lost).
    Disconnected,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoSuchPort => "the sending socket is not open",
            Self::NotReady => {
                "the node has no address yet: enable a bearer and wait for the 1 s address trial"
            }
            Self::NoRoute => "no socket is bound to that service address",
            Self::Unreachable => "no working link to the destination node",
            Self::Congested => "link congested: retry after the backlog drains",
            Self::TooLarge => "a message carries at most 66,000 bytes",
            Self::BadAddress => {
                "unknown address type: use a socket address, service address or service range"
            }
            Self::WouldBlock => {
                "connection window full: retry when the peer has read and acknowledged more"
            }
            Self::NotConnected => "the socket is not connected: connect (or accept) first",
            Self::Disconnected => "the connection has ended: close the socket",
        })
    }
}

impl std::error::Error for SendError {}

impl Node {
    /// Opens a local RDM socket and returns its port number (random, never 0); see
    /// [`Node::open_socket`] for the other kinds.
    pub fn open_port(&mut self) -> u32 {
        self.open_socket(SocketKind::Rdm)
    }

    /// Closes a socket (spec §9.5): its bindings are withdrawn cluster-wide. A connection
    /// returns its first unread message to the peer with TIPC_ERR_NO_PORT (or sends an empty
    /// CRITICAL CONN_MSG with that error) and discards the rest; a listener refuses its
    /// pending connection requests; a datagram socket returns its unread messages to their
    /// senders unless they are destination-droppable.
    pub fn close_port(&mut self, now: Instant, port: u32) -> Result<(), NodeError> {
        if !self.ports.contains(port) || self.port_hidden(port) {
            return Err(NodeError::NoSuchPort);
        }
        self.conn_close(now, port, ErrorCode::NoPort);
        self.conn_forget(port);
        self.ports.close(port).ok_or(NodeError::NoSuchPort)?;
        let own = self.ident.addr;
        for change in self.name_table.remove_port(own, port) {
            let b = change.binding;
            self.distribute(now, NameDistrType::Withdrawal, &b);
            self.table_withdrawn(&change);
        }
        self.topsrv_run(now);
        Ok(())
    }

    /// Number of the application's open sockets. The node's own sockets (the topology
    /// server's listener and its subscribers' connections) are not counted: they are not the
    /// application's to use.
    pub fn port_count(&self) -> usize {
        self.ports.user_len()
    }

    /// Sets a socket's receive limit for low importance (doubled per importance level).
    pub fn set_rcvbuf(&mut self, port: u32, bytes: usize) -> Result<(), NodeError> {
        if !self.port_hidden(port) && self.ports.set_rcvbuf(port, bytes) {
            Ok(())
        } else {
            Err(NodeError::NoSuchPort)
        }
    }

    /// Binds `port` to the service range {type, lower, upper} with node or cluster scope;
    /// cluster-scope bindings are published to every node.
    pub fn bind(
        &mut self,
        now: Instant,
        port: u32,
        scope: Scope,
        service_type: u32,
        lower: u32,
        upper: u32,
    ) -> Result<Binding, NodeError> {
        if !self.ports.contains(port) || self.port_hidden(port) {
            return Err(NodeError::NoSuchPort);
        }
        if service_type < TIPC_RESERVED_TYPES {
            return Err(NodeError::ReservedType);
        }
        if lower > upper {
            return Err(NodeError::BadRange);
        }
        let own = self.ident.addr;
        let b = Binding {
            service_type,
            lower,
            upper,
            port,
            node: own,
            key: port.wrapping_add(self.rng.next_u32() | 1),
            scope,
        };
        let change = self
            .name_table
            .insert(b)
            .map_err(|_| NodeError::BindingRefused)?;
        if scope == Scope::Cluster {
            self.distribute(now, NameDistrType::Publication, &b);
        }
        self.table_published(&change);
        self.topsrv_run(now);
        Ok(b)
    }

    /// Removes a binding made by [`Node::bind`].
    pub fn unbind(
        &mut self,
        now: Instant,
        port: u32,
        service_type: u32,
        lower: u32,
        upper: u32,
    ) -> Result<(), NodeError> {
        if self.port_hidden(port) {
            return Err(NodeError::NoSuchBinding);
        }
        let own = self.ident.addr;
        let key = self
            .name_table
            .iter()
            .find(|b| {
                b.node == own
                    && b.port == port
                    && b.service_type == service_type
                    && b.lower == lower
                    && b.upper == upper
            })
            .map(|b| b.key)
            .ok_or(NodeError::NoSuchBinding)?;
        let change = self
            .name_table
            .remove(service_type, lower, upper, own, key)
            .ok_or(NodeError::NoSuchBinding)?;
        let b = change.binding;
        if b.scope == Scope::Cluster {
            self.distribute(now, NameDistrType::Withdrawal, &b);
        }
        self.table_withdrawn(&change);
        self.topsrv_run(now);
        Ok(())
    }

    /// Sends a publication or withdrawal to every node that is up, as a unicast copy (spec
    /// §7.3 allows this form for every peer; utipc does not send on a broadcast link).
    fn distribute(&mut self, now: Instant, kind: NameDistrType, b: &Binding) {
        if !self.addr_committed() {
            // Before the address is committed no peer can be up; the bulk carries it later.
            return;
        }
        let update = match kind {
            NameDistrType::Withdrawal => self.distributor.withdraw(b),
            _ => self.distributor.publish(b),
        };
        let Some(update) = update else {
            return;
        };
        let own = self.ident.addr;
        let up: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| p.up)
            .map(|(a, _)| *a)
            .collect();
        for peer in up {
            let msg = build_update(
                update.kind,
                &update.item,
                update.seqno,
                own,
                UpdateDest::Unicast(peer),
            );
            // A congested link drops the update here; the peer resynchronises through the bulk
            // after the next link reset. Count it.
            if self.send_to_node(now, peer, 0, msg).is_err() {
                self.stats.dropped += 1;
            }
        }
    }

    /// Sends a complete message to `node` over the link chosen by `selector` (spec §5.8).
    pub(super) fn send_to_node(
        &mut self,
        now: Instant,
        node: u32,
        selector: u32,
        msg: Vec<u8>,
    ) -> Result<(), SendError> {
        let Some(peer) = self.peers.get(&node) else {
            return Err(SendError::Unreachable);
        };
        let up: Vec<usize> = (0..peer.links.len())
            .filter(|&i| peer.links[i].as_ref().is_some_and(|l| l.link.is_up()))
            .collect();
        let Some(&slot) = up.get(selector as usize & 1).or(up.first()) else {
            return Err(SendError::Unreachable);
        };
        let mut result = Ok(());
        self.with_link(now, node, slot, |link, now, bc, out| {
            if link.send(now, msg, bc, out).is_err() {
                result = Err(SendError::Congested);
            }
        });
        result
    }

    /// Sends a datagram from local socket `from` (spec §7.4, §12). A message to a local socket
    /// is queued at once; others go over the link to their node. A link congestion refusal
    /// ([`SendError::Congested`]) is followed by [`super::SocketEvent::Writable`] when the
    /// link drains.
    ///
    /// From a STREAM or SEQPACKET socket: an open socket connects with `data` in the SYN
    /// (implied connect, default timeout; the outcome comes as a socket event); a connected
    /// one sends `data` as one message to its peer, ignoring `to` (see [`Node::send_conn`]).
    pub fn send(
        &mut self,
        now: Instant,
        from: u32,
        to: Addr,
        opts: SendOpts,
        data: &[u8],
    ) -> Result<(), SendError> {
        if self.port_hidden(from) {
            return Err(SendError::NoSuchPort);
        }
        let r = self.send_inner(now, from, to, opts, data);
        self.topsrv_run(now);
        r
    }

    fn send_inner(
        &mut self,
        now: Instant,
        from: u32,
        to: Addr,
        opts: SendOpts,
        data: &[u8],
    ) -> Result<(), SendError> {
        let kind = self
            .ports
            .get(from)
            .map(|p| p.kind)
            .ok_or(SendError::NoSuchPort)?;
        if data.len() > MAX_USER_MSG_SIZE {
            return Err(SendError::TooLarge);
        }
        if kind.is_connection() {
            return self.send_on_conn_socket(now, from, to, opts, data);
        }
        if !self.addr_committed() {
            return Err(SendError::NotReady);
        }
        let own = self.ident.addr;
        match to {
            Addr::Socket { port, node } => {
                let node = if node == 0 { own } else { node };
                let msg = self.data_msg(
                    DataType::Direct,
                    BASIC_H_SIZE,
                    from,
                    port,
                    node,
                    opts,
                    (0, 0, 0),
                    data,
                );
                self.route_unicast(now, node, from, msg)
            }
            Addr::Service {
                service_type,
                instance,
                domain,
            } => {
                let (port, node) =
                    match self
                        .name_table
                        .lookup_anycast(service_type, instance, domain)
                    {
                        AnycastResult::Local(port) => (port, own),
                        AnycastResult::Remote { port, node } => (port, node),
                        AnycastResult::Forward { node } => (0, node),
                        AnycastResult::NoMatch => return Err(SendError::NoRoute),
                    };
                let msg = self.data_msg_scoped(
                    DataType::Named,
                    NAMED_H_SIZE,
                    from,
                    port,
                    node,
                    opts,
                    (service_type, instance, 0),
                    data,
                    // A lookup domain names one node: the kernel then sends with node lookup
                    // scope (tipc_node2scope), so the receiver's secondary lookup stays local.
                    if domain == 0 {
                        scope::CLUSTER
                    } else {
                        scope::NODE
                    },
                );
                self.route_unicast(now, node, from, msg)
            }
            Addr::Range {
                service_type,
                lower,
                upper,
            } => {
                let nodes = self
                    .name_table
                    .multicast_dest_nodes(service_type, lower, upper);
                if nodes.is_empty() {
                    return Err(SendError::NoRoute);
                }
                let mut result = Ok(());
                for node in nodes {
                    let mut msg = self.data_msg(
                        DataType::Mcast,
                        MCAST_H_SIZE,
                        from,
                        0,
                        node,
                        opts,
                        (service_type, lower, upper),
                        data,
                    );
                    if node == own {
                        self.on_data_bytes(now, own, &msg);
                    } else {
                        // Replicast: the is-rcast bit (w0[18]) records the path (spec §6.3).
                        if let Some(b) = msg.get_mut(1) {
                            *b |= 0x04;
                        }
                        if let Err(e) = self.send_to_node(now, node, from, msg) {
                            if e == SendError::Congested {
                                self.add_waiter(node, from, opts.importance as usize);
                            }
                            result = Err(e);
                        }
                    }
                }
                result
            }
            Addr::Unknown { .. } => Err(SendError::BadAddress),
        }
    }

    fn route_unicast(
        &mut self,
        now: Instant,
        node: u32,
        from: u32,
        msg: Vec<u8>,
    ) -> Result<(), SendError> {
        if node == self.ident.addr {
            self.on_data_bytes(now, node, &msg);
            Ok(())
        } else {
            let importance = Packet::new_unchecked(&msg[..]).user_raw();
            let r = self.send_to_node(now, node, from, msg);
            if r == Err(SendError::Congested) {
                self.add_waiter(node, from, usize::from(importance));
            }
            r
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one data header, field by field")]
    fn data_msg(
        &self,
        t: DataType,
        header_len: usize,
        from: u32,
        dest_port: u32,
        dest_node: u32,
        opts: SendOpts,
        name: (u32, u32, u32),
        data: &[u8],
    ) -> Vec<u8> {
        let lookup_scope = match t {
            DataType::Named | DataType::Mcast => scope::CLUSTER,
            _ => scope::NONE,
        };
        self.data_msg_scoped(
            t,
            header_len,
            from,
            dest_port,
            dest_node,
            opts,
            name,
            data,
            lookup_scope,
        )
    }

    /// [`Self::data_msg`] with an explicit lookup scope.
    #[allow(clippy::too_many_arguments, reason = "one data header, field by field")]
    fn data_msg_scoped(
        &self,
        t: DataType,
        header_len: usize,
        from: u32,
        dest_port: u32,
        dest_node: u32,
        opts: SendOpts,
        name: (u32, u32, u32),
        data: &[u8],
        lookup_scope: u8,
    ) -> Vec<u8> {
        let own = self.ident.addr;
        let repr = DataRepr {
            importance: opts.importance,
            msg_type: t,
            common: Common {
                flags: Flags {
                    dest_droppable: opts.dest_droppable,
                    multi_use: opts.src_droppable,
                    ..Flags::default()
                },
                prev_node: own,
                ..Common::default()
            },
            error: ErrorCode::Ok,
            reroute_count: 0,
            lookup_scope,
            header_len,
            orig_port: from,
            dest_port,
            orig_node: own,
            dest_node,
            name_type: name.0,
            name_lower: name.1,
            name_upper: name.2,
            extra_header: &[],
            payload: data,
        };
        MessageRepr::Data(repr).to_vec().unwrap_or_default()
    }

    /// Takes the next message from a socket's receive queue. On a connection this counts
    /// what was read and sends the CONN_ACK that reopens the peer's window when a quarter of
    /// the window has been read (spec §9.3; stamped with the time of the node's latest
    /// input). A message with `error: Some(_)` on a connection marks its end: after it,
    /// nothing more arrives.
    pub fn recv(&mut self, port: u32) -> Option<Received> {
        if self.port_hidden(port) {
            return None;
        }
        let q = self.ports.dequeue(port)?;
        self.conn_consumed(port, &q);
        // Reading may have acknowledged an internal connection's messages (a local
        // topology subscriber): its waiting events go on.
        let now = self.conn_last_now();
        self.topsrv_run(now);
        Some(q.msg)
    }

    /// Messages waiting in a socket's queue.
    pub fn queued(&self, port: u32) -> usize {
        if self.port_hidden(port) {
            return 0;
        }
        self.ports.get(port).map_or(0, |p| p.queue.len())
    }

    pub(super) fn on_data(&mut self, now: Instant, from: u32, p: &Packet<&[u8]>) {
        self.on_data_bytes(now, from, p.message());
    }

    /// A data message for this node, from the link to `from` or from a local socket.
    fn on_data_bytes(&mut self, now: Instant, from: u32, bytes: &[u8]) {
        let Ok(p) = Packet::new_checked(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let Ok(d) = DataRepr::parse(&p) else {
            self.stats.malformed += 1;
            return;
        };
        let _ = from;
        self.conn_note_time(now);
        if d.error != ErrorCode::Ok {
            // One of ours, returned (ports were swapped, so dest_port is the original
            // sender), or a connection's abort.
            let port = d.dest_port;
            match self.ports.get(port).map(|p| p.kind) {
                Some(k) if k.is_connection() => self.conn_filter(now, port, &d),
                Some(_) if d.msg_type != DataType::Conn => {
                    let msg = Received {
                        from: (d.orig_port, d.origin_node()),
                        dest: dest_name(&d),
                        importance: d.importance,
                        error: Some(d.error),
                        data: d.payload.to_vec(),
                    };
                    if self.queue_msg(port, msg, MsgMeta::of(&d), None).is_ok() {
                        self.stats.delivered += 1;
                    } else {
                        self.stats.dropped += 1;
                    }
                }
                _ => self.stats.dropped += 1,
            }
            return;
        }
        // SYN on a NAMED or DIRECT message asks a listener for a connection (a datagram
        // socket takes it as a datagram, as the kernel's does); on MCAST_MSG it marks the
        // first message after a broadcast/replicast switch (spec §6.4).
        match d.msg_type {
            DataType::Mcast => {
                let local_origin = d.origin_node() == self.ident.addr;
                let ports = self.name_table.multicast_local_ports(
                    d.name_type,
                    d.name_lower,
                    d.name_upper,
                    local_origin,
                );
                for port in ports {
                    if self.ports.get(port).is_some_and(|p| p.kind.is_connection()) {
                        // A connection socket takes no multicast (refused like the kernel's,
                        // hence dropped when destination-droppable, as RDM senders' are).
                        let mut copy = d;
                        copy.dest_port = port;
                        self.reject(now, &copy, ErrorCode::NoPort);
                        continue;
                    }
                    let r = self.queue_msg(port, received(&d, None), MsgMeta::of(&d), None);
                    match r {
                        Ok(()) => self.stats.delivered += 1,
                        Err(_) => {
                            self.ports.count_drop(port, true);
                            self.stats.dropped += 1;
                        }
                    }
                }
            }
            DataType::Named => {
                if d.dest_port != 0 && self.ports.contains(d.dest_port) {
                    self.deliver(now, &d, d.dest_port);
                    return;
                }
                // Secondary lookup (spec §7.4).
                if d.reroute_count == 0 {
                    match self
                        .name_table
                        .lookup_anycast(d.name_type, d.name_lower, self.ident.addr)
                    {
                        AnycastResult::Local(port) => {
                            self.deliver(now, &d, port);
                            return;
                        }
                        AnycastResult::Remote { .. }
                        | AnycastResult::Forward { .. }
                        | AnycastResult::NoMatch => {}
                    }
                }
                self.reject(now, &d, ErrorCode::NoName);
            }
            DataType::Direct | DataType::Conn => self.deliver(now, &d, d.dest_port),
            _ => self.stats.unhandled += 1,
        }
    }

    /// Hands a message to local socket `port` (found by the destination port or the
    /// secondary lookup, which the message then names, as the kernel rewrites it).
    fn deliver(&mut self, now: Instant, d: &DataRepr<'_>, port: u32) {
        let mut d = *d;
        d.dest_port = port;
        let d = &d;
        match self.ports.get(port).map(|p| p.kind) {
            None => {
                self.reject(now, d, ErrorCode::NoPort);
                return;
            }
            Some(k) if k.is_connection() => {
                self.conn_filter(now, port, d);
                return;
            }
            Some(_) if d.msg_type == DataType::Conn => {
                // Connection traffic for a datagram socket (spec §9.5).
                self.reject(now, d, ErrorCode::NoPort);
                return;
            }
            Some(_) => {}
        }
        match self.queue_msg(port, received(d, None), MsgMeta::of(d), None) {
            Ok(()) => self.stats.delivered += 1,
            Err(QueueError::NoPort) => self.reject(now, d, ErrorCode::NoPort),
            Err(QueueError::Overload) => {
                self.ports.count_drop(port, true);
                self.reject(now, d, ErrorCode::Overload);
            }
        }
    }

    /// Returns an undeliverable message to its sender (the kernel's `tipc_msg_reverse`, spec
    /// §12), unless it is destination-droppable or already an error.
    pub(super) fn reject(&mut self, now: Instant, d: &DataRepr<'_>, err: ErrorCode) {
        if d.common.flags.dest_droppable || d.error != ErrorCode::Ok {
            self.stats.dropped += 1;
            return;
        }
        self.stats.rejected += 1;
        let own = self.ident.addr;
        let back_to = d.common.prev_node;
        // A SYN refused for overload comes back without its data: the sender keeps a copy
        // and resends it (spec §9.2, §12).
        let keep = if d.common.flags.syn && err == ErrorCode::Overload {
            0
        } else {
            d.payload.len().min(MAX_REJECT_DATA)
        };
        let mut r = *d;
        r.error = err;
        r.orig_port = d.dest_port;
        r.dest_port = d.orig_port;
        if r.header_len < BASIC_H_SIZE {
            r.header_len = BASIC_H_SIZE;
        }
        r.orig_node = own;
        r.dest_node = back_to;
        r.common = Common {
            flags: Flags {
                non_seq: false,
                ..d.common.flags
            },
            prev_node: own,
            ..Common::default()
        };
        r.payload = &d.payload[..keep];
        let Ok(msg) = MessageRepr::Data(r).to_vec() else {
            return;
        };
        if back_to == own {
            self.on_data_bytes(now, own, &msg);
        } else if self.send_to_node(now, back_to, r.orig_port, msg).is_err() {
            self.stats.dropped += 1;
        }
    }
}
