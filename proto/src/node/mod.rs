//! A whole TIPC node, sans IO: discovery and the address trial, peers and their links, the
//! contact FSM, the broadcast receive links, the name table and its distribution, local
//! sockets, datagram routing and rejection.
//!
//! Read spec §3–§7 and §12 first. The call pattern follows quinn-proto:
//!
//! * inputs: [`Node::handle_frame`] (a packet from a bearer), [`Node::handle_timeout`] (when
//!   [`Node::poll_timeout`] said so), and commands ([`Node::add_bearer`], [`Node::bind`],
//!   [`Node::send`], ...), each with the current time;
//! * outputs: [`Node::poll_transmit`] (packets for the bearers), [`Node::poll_event`] (node,
//!   link and binding changes), [`Node::poll_socket_event`] (sockets readable or writable,
//!   connections made, refused or ended, spec §9), [`Node::recv`] (messages for local
//!   sockets).
//!
//! After any input, drain `poll_transmit`, `poll_event` and `poll_socket_event`, then re-arm
//! the timer from `poll_timeout`. Time must not go backwards.
//!
//! Like every kernel node, a node serves the topology service `{1, 1}` (spec §8) on internal
//! sockets of its own, to local and remote subscribers alike: see `topsrv_host`,
//! [`Node::topology_server`] and [`Node::topsrv_stats`].

mod bcast;
mod conn;
mod contact;
mod discovery;
mod ports;
mod routing;
mod topsrv_host;

use std::collections::{BTreeMap, VecDeque};

use crate::addr::NodeId;
use crate::bearer::{BearerConfig, BearerId, Dest, MAX_BEARERS, Transmit};
use crate::link::{BcastCtx, DownReason, Link, LinkConfig, LinkEvent, LinkOutput};
use crate::name_distr::{Distributor, NamedChange, PeerNamedState, build_bulk};
use crate::name_table::{Binding, NameTable, Scope};
use crate::rand::Rng;
use crate::time::Instant;
use crate::wire::Packet;
use crate::wire::common::{Common, Internal, User};
use crate::wire::crypto::EncryptedRepr;
use crate::wire::discovery::{DiscType, DiscoveryRepr, MediaAddr, caps};
use crate::wire::link_proto::{LinkProtoRepr, LinkProtoType};
use crate::wire::name_distr::{NameDistrRepr, Publication};

pub use self::bcast::{BcastRcv, BcastRcvStats};
pub use self::conn::{
    Accepted, CONN_PROBING_INTERVAL, CONN_TIMEOUT_DEFAULT, ConnError, ConnInfo, ConnState,
    ConnStats, FLOWCTL_BLOCK, INITIAL_WINDOW, LEGACY_WINDOW, SocketEvent, SocketKind,
};
pub use self::contact::{ContactState, PeerView};
pub use self::discovery::{
    Discoverer, INTERVAL_MAX, INTERVAL_MIN, INTERVAL_NO_LINK, Identity, TRIAL_PERIOD,
};
pub use self::ports::{DEFAULT_RCVBUF, DestName, Received};
pub use self::routing::{Addr, MAX_REJECT_DATA, SendError, SendOpts};
pub use self::topsrv_host::{MAX_PENDING_EVENTS, TIPC_TOP_SRV, TopsrvStats};

/// The capabilities utipc advertises: exactly what it implements (spec §3.4, §16).
///
/// * BCAST_SYNCH — our broadcast receive state starts from the peer's BCAST_PROTOCOL init, and
///   we send our own init.
/// * BCAST_STATE_NACK — broadcast NACKs travel in our unicast STATEs (bc_gap).
/// * BCAST_RCAST — we receive replicast multicast (and send multicast only as replicast).
/// * NODE_ID128 — discovery carries our 128-bit id.
/// * LINK_PROTO_SEQNO — our STATEs carry their own counter; we check the peer's.
/// * GAP_ACK_BLOCK — our STATEs carry the gap-ack record; we use the peer's.
/// * NAMED_BCAST — we receive name-table updates on the peer's broadcast link.
/// * SYN_BIT — our connects carry the SYN bit; our listeners refuse non-SYN messages from
///   peers that have it (spec §9.2).
/// * BLOCK_FLOWCTL — connection flow control in 1 KiB blocks with advertised windows
///   (spec §9.3).
///
/// Not advertised until implemented: NAGLE (we never coalesce stream writes, so peers never
/// ask us for nagle-acks), MCAST_RBCTL (SYN-twin ordering of multicast method switches),
/// TUNNEL_ENHANCED (failover and synch between parallel links). The value is 0x97f.
pub const UTIPC_CAPABILITIES: u16 = caps::SYN_BIT
    | caps::BLOCK_FLOWCTL
    | caps::BCAST_SYNCH
    | caps::BCAST_STATE_NACK
    | caps::BCAST_RCAST
    | caps::NODE_ID128
    | caps::LINK_PROTO_SEQNO
    | caps::GAP_ACK_BLOCK
    | caps::NAMED_BCAST;

/// Default network id.
pub const DEFAULT_NET_ID: u32 = 4711;
/// The reserved service type of node-state bindings ({0, addr, addr}).
pub const TIPC_NODE_STATE: u32 = 0;
/// The reserved service type of link-state bindings ({2, peer, peer}).
pub const TIPC_LINK_STATE: u32 = 2;
/// Users may bind only types at or above this.
pub const TIPC_RESERVED_TYPES: u32 = 64;
/// A peer without a working link for this long is forgotten (NODE_CLEANUP_AFTER).
pub const NODE_CLEANUP_AFTER: core::time::Duration = core::time::Duration::from_secs(300);

/// Configuration of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// 128-bit node identity.
    pub node_id: NodeId,
    /// Network (cluster) id, 1..=9999.
    pub net_id: u32,
    /// Capabilities to advertise.
    pub capabilities: u16,
    /// A fixed address: skips the address trial.
    pub address: Option<u32>,
    /// Seed of every random choice (signature, sessions, ports).
    pub rng_seed: u64,
    /// Link MSS = link MTU − this. 72 matches Debian's crypto-built 6.1 kernel (spec §5.7).
    pub mss_overhead: u32,
    /// Fixed node signature instead of a random one (replays of kernel captures).
    pub signature: Option<u16>,
    /// Fixed discovery w13 value instead of a random one (replays).
    pub net_hash: Option<u32>,
    /// Fixed initial session for every new link instead of a random one (replays).
    pub link_session: Option<u16>,
    /// Links bundle the data messages sent at one instant (`LinkConfig::bundle_bursts`): a
    /// runtime that reads its clock once per duty cycle gets one bundle per cycle and peer
    /// instead of one frame per message. Off by default (replays expect the kernel's packing).
    pub bundle_bursts: bool,
}

impl NodeConfig {
    /// A configuration with the defaults: net id 4711, [`UTIPC_CAPABILITIES`], address trial.
    pub fn new(node_id: NodeId, rng_seed: u64) -> Self {
        Self {
            node_id,
            net_id: DEFAULT_NET_ID,
            capabilities: UTIPC_CAPABILITIES,
            address: None,
            rng_seed,
            mss_overhead: 72,
            signature: None,
            net_hash: None,
            link_session: None,
            bundle_bursts: false,
        }
    }
}

/// Something that happened, for logs, management and topology tracking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The address trial ended; the node uses this address.
    AddressCommitted(u32),
    /// Another node claims our address (its media address given).
    DuplicateAddress {
        /// The contested address.
        addr: u32,
        /// Where the other claimant is.
        media: MediaAddr,
    },
    /// First working link to a node.
    NodeUp {
        /// Its address.
        addr: u32,
        /// Its identity.
        node_id: NodeId,
    },
    /// Last working link to a node lost.
    NodeDown {
        /// Its address.
        addr: u32,
    },
    /// A link came up.
    LinkUp {
        /// Peer address.
        peer: u32,
        /// Our bearer.
        bearer: BearerId,
        /// Link name (spec §5.1).
        name: String,
    },
    /// A link went down.
    LinkDown {
        /// Peer address.
        peer: u32,
        /// Our bearer.
        bearer: BearerId,
        /// Link name.
        name: String,
        /// Why.
        reason: DownReason,
    },
    /// A binding appeared in the name table.
    Published(Binding),
    /// A binding left the name table.
    Withdrawn(Binding),
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeError {
    /// All three bearer slots are in use.
    TooManyBearers,
    /// No bearer with that id.
    NoSuchBearer,
    /// No local socket with that port.
    NoSuchPort,
    /// Types below 64 are reserved.
    ReservedType,
    /// lower > upper.
    BadRange,
    /// The name table refused the binding (duplicate or limit).
    BindingRefused,
    /// No such binding.
    NoSuchBinding,
}

impl core::fmt::Display for NodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TooManyBearers => "at most 3 bearers per node: disable one first",
            Self::NoSuchBearer => "no such bearer",
            Self::NoSuchPort => "no such socket (port)",
            Self::ReservedType => "service types below 64 are reserved: bind type 64 or above",
            Self::BadRange => "lower bound above upper bound",
            Self::BindingRefused => {
                "binding refused: duplicate, or the node's 65534 bindings are used"
            }
            Self::NoSuchBinding => "no such binding",
        })
    }
}

impl std::error::Error for NodeError {}

/// Node-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames that failed validation.
    pub malformed: u64,
    /// Encrypted frames (not supported).
    pub encrypted: u64,
    /// Frames with another network id.
    pub foreign_net: u64,
    /// Unicast packets for another node, or from an unknown node.
    pub misrouted: u64,
    /// Packets dropped by the contact gate (spec §5.9).
    pub gated: u64,
    /// Discovery messages that were our own, or claimed our address.
    pub discovery_ignored: u64,
    /// Messages of users not handled yet (groups, crypto, tunnel).
    pub unhandled: u64,
    /// Data messages delivered to local sockets.
    pub delivered: u64,
    /// Data messages rejected back to their sender.
    pub rejected: u64,
    /// Data messages dropped (destination-droppable, or undeliverable rejections).
    pub dropped: u64,
}

#[derive(Debug)]
struct Bearer {
    cfg: BearerConfig,
    disc: Discoverer,
}

#[derive(Debug)]
struct PeerLink {
    link: Link,
    media: MediaAddr,
    was_up: bool,
}

#[derive(Debug)]
struct Peer {
    node_id: NodeId,
    caps: u16,
    signature: u16,
    links: [Option<PeerLink>; MAX_BEARERS],
    contact: ContactState,
    bcast: BcastRcv,
    named: PeerNamedState,
    up: bool,
    /// When the peer was created or last lost; for NODE_CLEANUP_AFTER.
    down_since: Option<Instant>,
}

impl Peer {
    fn links_up(&self) -> usize {
        self.links
            .iter()
            .flatten()
            .filter(|l| l.link.is_up())
            .count()
    }

    fn bcast_ctx(&self) -> BcastCtx {
        BcastCtx {
            rcv_ack: self.bcast.ack(),
            rcv_ack_invalid: !self.bcast.is_up(),
            // We never send on a broadcast link: our snd_nxt stays 1.
            last_bcast: 0,
            bc_gap: self.bcast.gap(),
            redundant_link: self.bcast.is_up(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddrState {
    /// No bearer enabled yet.
    None,
    /// Trialling `addr` until the instant.
    Trial(Instant),
    /// Committed.
    Committed,
}

/// A TIPC node.
#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    rng: Rng,
    ident: Identity,
    addr_state: AddrState,
    /// Random value used to derive suggestions for contested addresses.
    random: u32,
    bearers: [Option<Bearer>; MAX_BEARERS],
    peers: BTreeMap<u32, Peer>,
    name_table: NameTable,
    distributor: Distributor,
    ports: ports::Ports,
    /// Connection timers, socket events, and what waits for congested links.
    conn: conn::ConnShared,
    /// The topology server `{1, 1}` and its connections (spec §8).
    topsrv: topsrv_host::TopsrvHost,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: NodeStats,
}

impl Node {
    /// A node with no bearer: it has no address until the first bearer is enabled.
    pub fn new(cfg: NodeConfig) -> Self {
        let mut rng = Rng::new(cfg.rng_seed);
        let random = rng.next_u32();
        let ident = Identity {
            node_id: cfg.node_id,
            addr: 0,
            net_id: cfg.net_id,
            capabilities: cfg.capabilities,
            signature: cfg.signature.unwrap_or_else(|| rng.next_u16()),
            net_hash: cfg.net_hash.unwrap_or(random),
        };
        let topsrv = topsrv_host::TopsrvHost::new(cfg.rng_seed);
        let mut node = Self {
            name_table: NameTable::new(0),
            distributor: Distributor::default(),
            rng,
            ident,
            addr_state: AddrState::None,
            random,
            bearers: Default::default(),
            peers: BTreeMap::new(),
            ports: ports::Ports::default(),
            conn: conn::ConnShared::default(),
            topsrv,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            cfg,
        };
        node.topsrv_start();
        node
    }

    /// Own address (0 before a bearer is enabled; the trial address during the trial).
    pub fn addr(&self) -> u32 {
        self.ident.addr
    }

    /// Whether the address is committed (the trial is over).
    pub fn addr_committed(&self) -> bool {
        self.addr_state == AddrState::Committed
    }

    /// The node identity.
    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The name table.
    pub fn name_table(&self) -> &NameTable {
        &self.name_table
    }

    /// Enables a bearer. The first bearer starts the address trial (or commits the configured
    /// address); discovery starts at once.
    pub fn add_bearer(&mut self, now: Instant, cfg: BearerConfig) -> Result<BearerId, NodeError> {
        let slot = self
            .bearers
            .iter()
            .position(Option::is_none)
            .ok_or(NodeError::TooManyBearers)?;
        let id = BearerId(slot as u8);
        if self.addr_state == AddrState::None {
            match self.cfg.address {
                Some(a) => {
                    self.ident.addr = a;
                    self.commit_address();
                }
                None => {
                    self.ident.addr = self.cfg.node_id.hash();
                    self.addr_state = AddrState::Trial(now + TRIAL_PERIOD);
                }
            }
        }
        let msg_type = if matches!(self.addr_state, AddrState::Trial(_)) {
            DiscType::Trial
        } else {
            DiscType::Req
        };
        let msg = self.ident.message(msg_type, cfg.domain, cfg.local, 0);
        self.transmits.push_back(Transmit {
            bearer: id,
            dest: Dest::Broadcast,
            data: msg,
        });
        self.bearers[slot] = Some(Bearer {
            cfg,
            disc: Discoverer::new(now),
        });
        // A configured address was committed: its {0, addr, addr} reaches subscribers.
        self.topsrv_run(now);
        Ok(id)
    }

    /// Disables a bearer: its links are taken down with a peer-stopping RESET.
    pub fn remove_bearer(&mut self, now: Instant, id: BearerId) -> Result<(), NodeError> {
        let slot = usize::from(id.0);
        if self.bearers.get(slot).is_none_or(Option::is_none) {
            return Err(NodeError::NoSuchBearer);
        }
        let peers: Vec<u32> = self.peers.keys().copied().collect();
        for addr in peers {
            self.with_link(now, addr, slot, |link, now, bc, out| {
                link.reset(now, DownReason::Local, bc, out);
            });
            if let Some(peer) = self.peers.get_mut(&addr) {
                peer.links[slot] = None;
            }
        }
        self.bearers[slot] = None;
        self.topsrv_run(now);
        Ok(())
    }

    /// Takes every link down with a peer-stopping RESET, so peers notice at once (SIGTERM).
    pub fn shutdown(&mut self, now: Instant) {
        for slot in 0..MAX_BEARERS {
            if self.bearers[slot].is_some() {
                let _ = self.remove_bearer(now, BearerId(slot as u8));
            }
        }
    }

    fn commit_address(&mut self) {
        self.addr_state = AddrState::Committed;
        let addr = self.ident.addr;
        self.name_table.set_own_addr(addr);
        // The node's own {0, addr, addr} binding consumes named seqno 0 (spec §7.3).
        let b = Binding {
            service_type: TIPC_NODE_STATE,
            lower: addr,
            upper: addr,
            port: 0,
            node: addr,
            key: addr,
            scope: Scope::Cluster,
        };
        if let Ok(change) = self.name_table.insert(b) {
            let _ = self.distributor.publish(&b);
            self.table_published(&change);
        }
        self.events.push_back(Event::AddressCommitted(addr));
    }

    /// The earliest instant at which [`Node::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |c| c.min(x)));
        if let AddrState::Trial(until) = self.addr_state {
            consider(until);
        }
        for b in self.bearers.iter().flatten() {
            consider(b.disc.next_timeout());
        }
        for p in self.peers.values() {
            for l in p.links.iter().flatten() {
                if let Some(x) = l.link.poll_timeout() {
                    consider(x);
                }
            }
        }
        if let Some(x) = self.conn_poll_timeout() {
            consider(x);
        }
        if let Some(x) = self.topsrv_poll_timeout() {
            consider(x);
        }
        t
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut trial_ended = false;
        if let AddrState::Trial(until) = self.addr_state
            && now >= until
        {
            self.commit_address();
            trial_ended = true;
        }
        let in_trial = matches!(self.addr_state, AddrState::Trial(_));
        for slot in 0..MAX_BEARERS {
            let Some(b) = self.bearers[slot].as_mut() else {
                continue;
            };
            if now < b.disc.next_timeout() {
                continue;
            }
            let msg_type = match b.disc.on_timeout(now, in_trial, trial_ended) {
                discovery::TickAction::SendTrial => DiscType::Trial,
                discovery::TickAction::SendRequest => DiscType::Req,
                discovery::TickAction::Nothing => continue,
            };
            let msg = self.ident.message(msg_type, b.cfg.domain, b.cfg.local, 0);
            self.transmits.push_back(Transmit {
                bearer: BearerId(slot as u8),
                dest: Dest::Broadcast,
                data: msg,
            });
        }
        let peers: Vec<u32> = self.peers.keys().copied().collect();
        for addr in peers {
            for slot in 0..MAX_BEARERS {
                let due = self
                    .peers
                    .get(&addr)
                    .and_then(|p| p.links[slot].as_ref())
                    .and_then(|l| l.link.poll_timeout())
                    .is_some_and(|t| t <= now);
                if due {
                    self.with_link(now, addr, slot, |link, now, bc, out| {
                        link.handle_timeout(now, bc, out);
                    });
                }
            }
        }
        self.conn_handle_timeout(now);
        self.topsrv_handle_timeout(now);
        self.cleanup_peers(now);
        self.topsrv_run(now);
    }

    /// Forgets peers that have had no working link for [`NODE_CLEANUP_AFTER`].
    fn cleanup_peers(&mut self, now: Instant) {
        self.peers.retain(|_, p| {
            p.up || p
                .down_since
                .is_none_or(|t| now.saturating_since(t) < NODE_CLEANUP_AFTER)
        });
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Runs `f` on the link to `addr` on bearer `slot` and processes its output.
    fn with_link(
        &mut self,
        now: Instant,
        addr: u32,
        slot: usize,
        f: impl FnOnce(&mut Link, Instant, &BcastCtx, &mut LinkOutput),
    ) {
        let mut out = LinkOutput::default();
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        let bc = peer.bcast_ctx();
        let Some(pl) = peer.links[slot].as_mut() else {
            return;
        };
        f(&mut pl.link, now, &bc, &mut out);
        self.process_link_output(now, addr, slot, out);
        // Acks may have made room: waiting connection messages and senders go on.
        self.conn_link_progress(now, addr);
    }

    fn process_link_output(&mut self, now: Instant, addr: u32, slot: usize, out: LinkOutput) {
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        if let Some(pl) = peer.links[slot].as_ref() {
            let media = pl.media;
            for data in out.transmit {
                self.transmits.push_back(Transmit {
                    bearer: BearerId(slot as u8),
                    dest: Dest::Unicast(media),
                    data,
                });
            }
        }
        for ev in out.events {
            match ev {
                LinkEvent::Up => self.on_link_up(now, addr, slot),
                LinkEvent::Down { reason } => self.on_link_down(now, addr, slot, reason),
            }
        }
        for pb in out.peer_bcast {
            // We never send on a broadcast link, so the peer's acks need no processing; its
            // last_bcast tells us whether we are missing its broadcasts.
            if pb.is_state {
                let missing = self
                    .peers
                    .get(&addr)
                    .is_some_and(|p| p.bcast.peer_last_sent(pb.last_bcast));
                if missing {
                    self.with_link(now, addr, slot, |link, now, bc, out| {
                        link.send_state(now, false, bc, out);
                    });
                }
            }
        }
        for msg in out.deliver {
            self.on_link_message(now, addr, &msg);
        }
    }

    fn link_name(&self, addr: u32, slot: usize) -> String {
        let peer = self.peers.get(&addr);
        let own_if = self.bearers[slot]
            .as_ref()
            .map_or("?", |b| b.cfg.if_name.as_str());
        let own = format!("{}:{own_if}", id_or_addr(self.cfg.node_id, self.ident.addr));
        let peer_part = match peer {
            Some(p) => {
                let pif = p.links[slot]
                    .as_ref()
                    .and_then(|l| l.link.peer_if_name())
                    .unwrap_or("?");
                format!("{}:{pif}", id_or_addr(p.node_id, addr))
            }
            None => format!("{addr:x}:?"),
        };
        format!("{own}-{peer_part}")
    }

    fn on_link_up(&mut self, now: Instant, addr: u32, slot: usize) {
        let own = self.ident.addr;
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        let Some(pl) = peer.links[slot].as_mut() else {
            return;
        };
        pl.was_up = true;
        let first = !peer.up;
        peer.up = true;
        peer.down_since = None;
        if first {
            peer.contact.self_established();
        }
        let node_id = peer.node_id;
        if let Some(b) = self.bearers[slot].as_mut() {
            b.disc.add_link();
        }
        // Node-scope link-state binding {2, peer, peer}; port = link id (spec §8.5).
        let link_state = Binding {
            service_type: TIPC_LINK_STATE,
            lower: addr,
            upper: addr,
            port: pl.link.link_id(),
            node: own,
            key: link_state_key(addr, slot),
            scope: Scope::Node,
        };
        if let Ok(change) = self.name_table.insert(link_state) {
            self.table_published(&change);
        }
        let name = self.link_name(addr, slot);
        if first {
            self.events.push_back(Event::NodeUp { addr, node_id });
            self.send_bcast_init(now, addr, slot);
            self.send_bulk(now, addr, slot);
        }
        self.events.push_back(Event::LinkUp {
            peer: addr,
            bearer: BearerId(slot as u8),
            name,
        });
    }

    fn on_link_down(&mut self, now: Instant, addr: u32, slot: usize, reason: DownReason) {
        let name = self.link_name(addr, slot);
        let own = self.ident.addr;
        if let Some(b) = self.bearers[slot].as_mut() {
            b.disc.remove_link(now);
        }
        let removed =
            self.name_table
                .remove(TIPC_LINK_STATE, addr, addr, own, link_state_key(addr, slot));
        if let Some(change) = removed {
            self.table_withdrawn(&change);
        }
        self.events.push_back(Event::LinkDown {
            peer: addr,
            bearer: BearerId(slot as u8),
            name,
            reason,
        });
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if let Some(pl) = peer.links[slot].as_mut() {
            pl.was_up = false;
        }
        if peer.up && peer.links_up() == 0 {
            peer.up = false;
            peer.down_since = Some(now);
            peer.contact.self_lost();
            peer.bcast.reset();
            peer.named.reset();
            for change in self.name_table.purge_node(addr) {
                self.table_withdrawn(&change);
            }
            self.events.push_back(Event::NodeDown { addr });
            // Every connection to the node ends with TIPC_ERR_NO_NODE (spec §9.5).
            self.conn_node_down(addr);
        }
    }

    /// Sends the BCAST_PROTOCOL init as the first sequenced packet after link-up (spec §6.1):
    /// our broadcast send link has sent nothing, so last_bcast = 0.
    fn send_bcast_init(&mut self, now: Instant, addr: u32, slot: usize) {
        let own = self.ident.addr;
        let repr = LinkProtoRepr {
            base: Internal {
                common: Common {
                    prev_node: own,
                    ..Common::default()
                },
                orig_node: own,
                dest_node: addr,
                extra_header: &[],
                payload: &[],
            },
            msg_type: LinkProtoType::State,
            seq_gap: 0,
            last_bcast: 0,
            next_sent: 0,
            session: 0,
            bc_ack_invalid: true,
            peer_stopping: false,
            redundant_link: false,
            bearer_id: 0,
            priority: 0,
            net_plane: 0,
            probe: false,
            bc_gap: 0,
            max_pkt: 0,
            tolerance: 0,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        if repr
            .emit_as(
                User::BcastProtocol,
                &mut Packet::new_unchecked(&mut buf[..]),
            )
            .is_ok()
        {
            self.link_send(now, addr, slot, buf);
        }
    }

    /// Sends our cluster-scope bindings to a peer that just came up (spec §7.3).
    fn send_bulk(&mut self, now: Instant, addr: u32, slot: usize) {
        let own = self.ident.addr;
        let items: Vec<Publication> = self
            .name_table
            .local_cluster_bindings()
            .map(|b| Publication {
                service_type: b.service_type,
                lower: b.lower,
                upper: b.upper,
                port: b.port,
                key: b.key,
            })
            .collect();
        let mss = self
            .peers
            .get(&addr)
            .and_then(|p| p.links[slot].as_ref())
            .map_or(1428, |l| l.link.mss());
        let next = self.distributor.next_seqno();
        for msg in build_bulk(&items, mss, own, addr, next) {
            self.link_send(now, addr, slot, msg);
        }
    }

    /// Sends a complete message on one link, processing the link's output.
    fn link_send(&mut self, now: Instant, addr: u32, slot: usize, msg: Vec<u8>) -> bool {
        let mut ok = false;
        self.with_link(now, addr, slot, |link, now, bc, out| {
            ok = link.send(now, msg, bc, out).is_ok();
        });
        ok
    }

    /// A message the link delivered in sequence.
    fn on_link_message(&mut self, now: Instant, from: u32, msg: &[u8]) {
        let Ok(p) = Packet::new_checked(msg) else {
            self.stats.malformed += 1;
            return;
        };
        match User::from(p.user_raw()) {
            User::BcastProtocol => {
                let last_bcast = (p.word(4) >> 16) as u16;
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.bcast.init(last_bcast);
                }
            }
            User::NameDistributor => {
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.bcast.up_by_named();
                }
                self.on_name_distr(from, &p);
            }
            u if u.is_data() => self.on_data(now, from, &p),
            User::ConnManager => self.on_conn_mgr(now, from, &p),
            _ => self.stats.unhandled += 1,
        }
    }

    /// Applies a NAME_DISTRIBUTOR message from `from` in the kernel's receive order.
    fn on_name_distr(&mut self, from: u32, p: &Packet<&[u8]>) {
        let Ok(repr) = NameDistrRepr::parse(p) else {
            self.stats.malformed += 1;
            return;
        };
        if repr.base.orig_node != from {
            // Bindings are attributed to the publishing node: only the peer itself may speak
            // for its bindings.
            self.stats.misrouted += 1;
            return;
        }
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        for change in peer.named.receive(&repr) {
            match change {
                NamedChange::Publish(b) => {
                    if let Ok(change) = self.name_table.insert(b) {
                        self.table_published(&change);
                    }
                }
                NamedChange::Withdraw(b) => {
                    if let Some(change) =
                        self.name_table
                            .remove(b.service_type, b.lower, b.upper, b.node, b.key)
                    {
                        self.table_withdrawn(&change);
                    }
                }
            }
        }
    }

    /// Handles one frame from a bearer. `src` is the frame's source address on that bearer
    /// (informational: replies go to the media address a peer advertises in discovery).
    pub fn handle_frame(&mut self, now: Instant, bearer: BearerId, src: MediaAddr, bytes: &[u8]) {
        self.handle_frame_inner(now, bearer, src, bytes);
        self.topsrv_run(now);
    }

    fn handle_frame_inner(&mut self, now: Instant, bearer: BearerId, src: MediaAddr, bytes: &[u8]) {
        let _ = src;
        let slot = usize::from(bearer.0);
        if self.bearers.get(slot).is_none_or(Option::is_none) {
            return;
        }
        // One header check per frame: the full message is parsed only where it is used
        // (discovery here, everything else by the link or the receive path).
        if EncryptedRepr::is_encrypted(bytes) {
            self.stats.encrypted += 1;
            return;
        }
        let Ok(p) = Packet::new_checked(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        if p.version() != crate::wire::TIPC_VERSION {
            self.stats.malformed += 1;
            return;
        }
        if User::from(p.user_raw()) == User::LinkConfig
            && !matches!(DiscType::from(p.msg_type_raw()), DiscType::Unknown(_))
        {
            match DiscoveryRepr::parse(&p) {
                Ok(d) => self.on_discovery(now, slot, &d),
                Err(_) => self.stats.malformed += 1,
            }
            return;
        }
        if self.addr_state != AddrState::Committed {
            self.stats.misrouted += 1;
            return;
        }
        let prev = p.prev_node();
        if p.non_seq() {
            self.on_broadcast(now, prev, &p);
            return;
        }
        if p.header_len() > crate::wire::MIN_H_SIZE && p.dest_node() != self.ident.addr {
            self.stats.misrouted += 1;
            return;
        }
        let view = PeerView::of(&p);
        let Some(peer) = self.peers.get_mut(&prev) else {
            self.stats.misrouted += 1;
            return;
        };
        if peer.links[slot].is_none() {
            self.stats.misrouted += 1;
            return;
        }
        if !peer.contact.check(view) {
            self.stats.gated += 1;
            return;
        }
        let msg = p.message();
        self.with_link(now, prev, slot, |link, now, bc, out| {
            link.handle_packet(now, msg, bc, out);
        });
    }

    /// A broadcast-link packet (N = 1) from `from`.
    fn on_broadcast(&mut self, now: Instant, from: u32, p: &Packet<&[u8]>) {
        if p.word(5) != self.cfg.net_id {
            self.stats.foreign_net += 1;
            return;
        }
        let own = self.ident.addr;
        let Some(peer) = self.peers.get_mut(&from) else {
            self.stats.misrouted += 1;
            return;
        };
        if !peer.up {
            self.stats.gated += 1;
            return;
        }
        let delivered = peer.bcast.receive(p.message());
        let ack_now = peer.bcast.wants_state(own);
        for msg in delivered {
            self.on_link_message(now, from, &msg);
        }
        if ack_now {
            // Ack (or NACK) promptly on the first working link to that peer.
            let slot = self.peers.get(&from).and_then(|p| {
                p.links
                    .iter()
                    .position(|l| l.as_ref().is_some_and(|l| l.link.is_up()))
            });
            if let Some(slot) = slot {
                self.with_link(now, from, slot, |link, now, bc, out| {
                    link.send_state(now, false, bc, out);
                });
            }
        }
    }

    /// Handles a received discovery message (spec §4.3, §3.2).
    fn on_discovery(&mut self, now: Instant, slot: usize, d: &DiscoveryRepr<'_>) {
        let Some(bearer) = self.bearers[slot].as_ref() else {
            return;
        };
        let local = bearer.cfg.local;
        let bearer_domain = bearer.cfg.domain;
        let media = d.media;
        // 1. Corrupt, broadcast or our own media address.
        if matches!(media, MediaAddr::Raw(_)) || media.is_broadcast() || media == local {
            self.stats.discovery_ignored += 1;
            return;
        }
        // 2. Another cluster.
        if d.net_id != self.cfg.net_id {
            self.stats.foreign_net += 1;
            return;
        }
        let Some(peer_id) = d.node_id else {
            // Without NODE_ID128 the id is the address in hex: accept it as such.
            return self.on_discovery_with_id(
                now,
                slot,
                d,
                NodeId(hex_id(d.prev_node)),
                bearer_domain,
            );
        };
        self.on_discovery_with_id(now, slot, d, peer_id, bearer_domain);
    }

    fn on_discovery_with_id(
        &mut self,
        now: Instant,
        slot: usize,
        d: &DiscoveryRepr<'_>,
        peer_id: NodeId,
        bearer_domain: u32,
    ) {
        let media = d.media;
        let local = match self.bearers[slot].as_ref() {
            Some(b) => b.cfg.local,
            None => return,
        };
        // 3. The address trial.
        match d.msg_type {
            DiscType::Trial => {
                if let Some(sugg) = self.suggest_for_trial(d.prev_node, peer_id) {
                    let msg = self
                        .ident
                        .message(DiscType::TrialFail, d.prev_node, local, sugg);
                    self.transmits.push_back(Transmit {
                        bearer: BearerId(slot as u8),
                        dest: Dest::Unicast(media),
                        data: msg,
                    });
                }
                return;
            }
            DiscType::TrialFail => {
                if matches!(self.addr_state, AddrState::Trial(_))
                    && d.dest_domain == self.ident.addr
                    && d.suggested_addr != 0
                {
                    self.ident.addr = d.suggested_addr;
                    self.addr_state = AddrState::Trial(now + TRIAL_PERIOD);
                }
                return;
            }
            _ => {}
        }
        if !matches!(self.addr_state, AddrState::Committed) {
            return;
        }
        let src = d.prev_node;
        // 4. Our own address, or 0.
        if src == self.ident.addr || src == 0 {
            self.stats.discovery_ignored += 1;
            if src != 0 && peer_id != self.cfg.node_id {
                self.events
                    .push_back(Event::DuplicateAddress { addr: src, media });
            }
            return;
        }
        // 5. Domains.
        let own = self.ident.addr;
        if !(d.dest_domain == 0 || d.dest_domain == own)
            || !(bearer_domain == 0 || bearer_domain == src)
        {
            self.stats.discovery_ignored += 1;
            return;
        }
        // 6. Peer object and the decision table.
        let seed = self.rng.next_u64();
        let peer = self.peers.entry(src).or_insert_with(|| Peer {
            node_id: peer_id,
            caps: d.capabilities,
            signature: d.signature,
            links: Default::default(),
            contact: ContactState::INITIAL,
            bcast: BcastRcv::new(),
            named: PeerNamedState::default(),
            up: false,
            down_since: Some(now),
        });
        peer.caps = d.capabilities;
        let sig_same = peer.signature == d.signature;
        let (addr_same, link_up) = match &peer.links[slot] {
            Some(pl) => (pl.media == media, pl.link.is_up()),
            None => (false, false),
        };
        // (accept the media address, respond); 'reset' in the kernel's table only restarts a
        // link that is not up, which updating its media address amounts to here.
        let (accept_addr, respond) = match (sig_same, addr_same, link_up) {
            (_, true, true) => {
                if !sig_same {
                    peer.signature = d.signature;
                }
                (false, false)
            }
            (_, true, false) => {
                peer.signature = d.signature;
                (false, true)
            }
            (_, false, true) => {
                self.events
                    .push_back(Event::DuplicateAddress { addr: src, media });
                (false, false)
            }
            (_, false, false) => {
                peer.signature = d.signature;
                (true, true)
            }
        };
        if accept_addr {
            let links = peer.links.iter().flatten().count();
            match peer.links[slot].as_mut() {
                Some(pl) => {
                    pl.media = media;
                }
                None if links < 2 => {
                    let Some(b) = self.bearers[slot].as_ref() else {
                        return;
                    };
                    let mut lc = LinkConfig::new(
                        own,
                        src,
                        slot as u8,
                        &b.cfg.if_name,
                        b.cfg.mtu,
                        self.cfg.capabilities,
                        d.capabilities,
                        self.cfg.link_session.unwrap_or((seed >> 48) as u16),
                    );
                    lc.min_mtu = b.cfg.media.min_mtu();
                    lc.mss_overhead = self.cfg.mss_overhead;
                    lc.tolerance = b.cfg.tolerance;
                    lc.priority = b.cfg.priority;
                    lc.window_max = b.cfg.max_window;
                    lc.bundle_bursts = self.cfg.bundle_bursts;
                    peer.links[slot] = Some(PeerLink {
                        link: Link::new(lc, now),
                        media,
                        was_up: false,
                    });
                }
                None => {}
            }
        }
        // 8. Respond to requests only.
        if respond && d.msg_type == DiscType::Req {
            let msg = self.ident.message(DiscType::Resp, src, local, 0);
            self.transmits.push_back(Transmit {
                bearer: BearerId(slot as u8),
                dest: Dest::Unicast(media),
                data: msg,
            });
        }
    }

    /// The kernel's answer to another node's trial of `addr` (spec §3.2 step 2).
    fn suggest_for_trial(&self, addr: u32, id: NodeId) -> Option<u32> {
        let taken_by_other = self.peers.get(&addr).is_some_and(|p| p.node_id != id)
            || (addr == self.ident.addr && id != self.cfg.node_id);
        if taken_by_other {
            return Some(self.unused_addr(addr));
        }
        if let Some((&old, _)) = self.peers.iter().find(|(_, p)| p.node_id == id)
            && old != addr
        {
            return Some(old);
        }
        None
    }

    fn unused_addr(&self, addr: u32) -> u32 {
        let mut a = addr ^ self.random;
        for _ in 0..u16::MAX {
            if a != 0 && a != self.ident.addr && !self.peers.contains_key(&a) {
                return a;
            }
            a = a.wrapping_add(1);
        }
        a
    }
}

/// Key of the node-scope link-state binding for the link to `peer` on bearer `slot`.
fn link_state_key(peer: u32, slot: usize) -> u32 {
    (peer ^ slot as u32).wrapping_add(1)
}

/// The id used in link names: the id if it prints as ≤ 16 characters, else the address.
fn id_or_addr(id: NodeId, addr: u32) -> String {
    let s = id.to_string();
    if s.len() > 16 { format!("{addr:x}") } else { s }
}

/// The id a legacy peer (without NODE_ID128) implies: its address in lowercase hex.
fn hex_id(addr: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    let s = format!("{addr:x}");
    id[..s.len()].copy_from_slice(s.as_bytes());
    id
}

/// A link as management shows it (`utipc link list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Link name (spec §5.1).
    pub name: String,
    /// Peer address.
    pub peer: u32,
    /// Our bearer.
    pub bearer: BearerId,
    /// FSM state.
    pub state: crate::link::LinkState,
    /// Negotiated MTU.
    pub mtu: u32,
    /// Tolerance in force.
    pub tolerance: core::time::Duration,
    /// Priority in force.
    pub priority: u8,
    /// Our session number.
    pub session: u16,
}

/// A peer node as management shows it (`utipc node list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Address.
    pub addr: u32,
    /// Identity.
    pub node_id: NodeId,
    /// Whether a link to it is up.
    pub up: bool,
    /// Its advertised capabilities.
    pub capabilities: u16,
    /// Contact state.
    pub contact: ContactState,
}

impl Node {
    /// Every link endpoint, in (peer, bearer) order.
    pub fn links(&self) -> Vec<LinkInfo> {
        let mut v = Vec::new();
        for (&addr, p) in &self.peers {
            for (slot, l) in p.links.iter().enumerate() {
                if let Some(l) = l {
                    v.push(LinkInfo {
                        name: self.link_name(addr, slot),
                        peer: addr,
                        bearer: BearerId(slot as u8),
                        state: l.link.state(),
                        mtu: l.link.mtu(),
                        tolerance: l.link.tolerance(),
                        priority: l.link.priority(),
                        session: l.link.session(),
                    });
                }
            }
        }
        v
    }

    /// Every known peer node, by address.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .map(|(&addr, p)| PeerInfo {
                addr,
                node_id: p.node_id,
                up: p.up,
                capabilities: p.caps,
                contact: p.contact,
            })
            .collect()
    }

    /// Whether a working link to `addr` exists.
    pub fn peer_up(&self, addr: u32) -> bool {
        self.peers.get(&addr).is_some_and(|p| p.up)
    }

    /// Number of peers with a working link.
    pub fn peers_up(&self) -> usize {
        self.peers.values().filter(|p| p.up).count()
    }

    /// The link object to `addr` on bearer `bearer`, for statistics and tests.
    pub fn link(&self, addr: u32, bearer: BearerId) -> Option<&Link> {
        self.peers
            .get(&addr)?
            .links
            .get(usize::from(bearer.0))?
            .as_ref()
            .map(|l| &l.link)
    }

    /// The broadcast receive link for `addr`.
    pub fn bcast_rcv(&self, addr: u32) -> Option<&BcastRcv> {
        self.peers.get(&addr).map(|p| &p.bcast)
    }

    /// Enabled bearers.
    pub fn bearers(&self) -> Vec<(BearerId, &BearerConfig)> {
        self.bearers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (BearerId(i as u8), &b.cfg)))
            .collect()
    }
}

#[cfg(any(test, feature = "sim"))]
impl crate::sim::SimNode for Node {
    fn handle_frame(&mut self, now: Instant, bearer: BearerId, src: MediaAddr, bytes: &[u8]) {
        Self::handle_frame(self, now, bearer, src, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Self::handle_timeout(self, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Self::poll_transmit(self)
    }
}

#[cfg(test)]
mod conn_tests;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod test_wire;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod topsrv_tests;
