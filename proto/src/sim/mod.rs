//! Deterministic network simulator for whole clusters.
//!
//! The protocol core is sans-IO, so a whole cluster can run inside one test on a virtual clock:
//! no sockets, no threads, no wall clock, and every random choice (loss, jitter, duplication,
//! reordering) drawn from one [`Rng`] seeded by [`Network::new`]. A failing run is therefore
//! replayed exactly from its seed, which is what [`run_seeds`] prints when a test panics.
//!
//! The model, kept deliberately small:
//!
//! * A **segment** is one L2 broadcast domain (an Ethernet VLAN, or a UDP multicast group). Each
//!   node **attaches** a bearer to at most one segment under a media address. A
//!   [`Dest::Broadcast`] frame goes to every other attachment on the segment, a
//!   [`Dest::Unicast`] frame to the attachment holding that address.
//! * A frame leaves the sender after its serialization delay (if the segment has a bandwidth),
//!   then arrives `latency + uniform(0..=jitter)` later. Jitter never reorders frames on one
//!   path (a wire is FIFO); only the explicit `reorder` probability does, by holding a frame
//!   back `reorder_delay` so that later frames overtake it.
//! * Faults (loss, duplication, reordering, partitions, failed bearers, MTU) drop or alter frames
//!   and are counted in [`FrameStats`] per segment, per sending node and in total. Partitions and
//!   failed bearers are checked both when a frame is sent and when it arrives, so a frame on the
//!   wire when a fault starts is lost too: a fault drops exactly the frames that would cross it
//!   while it is active.
//! * The clock only moves in [`Network::step`]: it jumps to the earliest event (a frame arrival,
//!   a scheduled fault, or a node's `poll_timeout`), handles it, then drains every node's
//!   `poll_transmit`. Ties are broken deterministically: queued events (arrivals and faults) in
//!   the order they were queued, before node timers, which go in node-index order.
//!
//! Nodes are anything implementing [`SimNode`]; the real `Node` does, and tests use small fakes.
//! An optional frame tap records every delivered frame and writes it as a pcap
//! ([`Network::write_pcap`]) for `utipc decode` or tshark; an optional trace records every
//! send, delivery, drop, timeout and fault without the bytes.

mod pcap;
mod seeds;
#[cfg(test)]
mod tests;

pub use pcap::{
    ETHERTYPE_TIPC, LINKTYPE_ETHERNET, PCAP_MAGIC_NANOS, PCAP_SNAPLEN, ethernet_frame,
    synthetic_mac, write_pcap,
};
pub use seeds::{SEED_ENV, SEEDS_ENV, failure_message, run_seeds, seeds};

use core::cmp::Ordering;
use core::fmt;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::io;
use std::sync::Arc;

use crate::bearer::{BearerId, Dest, Transmit};
use crate::rand::Rng;
use crate::time::Instant;
use crate::wire::discovery::MediaAddr;

/// What a simulated node must offer: the sans-IO `handle_*`/`poll_*` vocabulary, restricted to
/// what a network needs. The simulator calls nothing else, so a node's application commands
/// (bind, send, …) are issued by the test through [`Network::node_mut`].
pub trait SimNode {
    /// A frame arrived on `bearer` from the attachment whose media address is `src`.
    fn handle_frame(&mut self, now: Instant, bearer: BearerId, src: MediaAddr, bytes: &[u8]);
    /// The deadline returned by [`SimNode::poll_timeout`] has passed. Afterwards that deadline
    /// must have moved past `now` (or gone): a node that keeps asking for `now` would hang the
    /// clock, and is reported as stuck after [`MAX_TIMEOUTS_PER_INSTANT`] calls.
    fn handle_timeout(&mut self, now: Instant);
    /// When [`SimNode::handle_timeout`] should next be called; `None` if never. Queried before
    /// every event, so it should be cheap.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next frame to send, if any; drained until `None` after every event.
    fn poll_transmit(&mut self) -> Option<Transmit>;
}

/// Boxed nodes are nodes, so one network can mix node types (`Network<Box<dyn SimNode>>`),
/// e.g. a utipc node next to a scripted kernel-like peer.
impl<T: SimNode + ?Sized> SimNode for Box<T> {
    fn handle_frame(&mut self, now: Instant, bearer: BearerId, src: MediaAddr, bytes: &[u8]) {
        (**self).handle_frame(now, bearer, src, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        (**self).poll_transmit()
    }
}

/// Index of a node in its [`Network`], in the order of [`Network::add_node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIdx(pub usize);

/// Index of a segment in its [`Network`], in the order of [`Network::add_segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub usize);

/// Properties and faults of a segment (or, through [`Network::set_direction_config`], of one
/// direction between two nodes on it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentConfig {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per frame. Never reorders a path.
    pub jitter: Duration,
    /// Largest frame (TIPC packet, without media header) the segment carries; bigger ones are
    /// dropped at the sender, as a NIC refuses them.
    pub mtu: usize,
    /// Probability each copy of a frame is lost.
    pub loss: f64,
    /// Probability a delivered copy arrives twice.
    pub duplicate: f64,
    /// Probability a frame is held back by `reorder_delay`, so that later frames overtake it.
    pub reorder: f64,
    /// How long a reordered frame is held back.
    pub reorder_delay: Duration,
    /// Sender's line rate, adding a serialization delay of `len * 8 / bps` per frame and
    /// queueing back-to-back frames; `None` for an infinitely fast link. A property of the
    /// sending NIC, so a direction override's value is ignored.
    pub bandwidth_bps: Option<u64>,
}

impl Default for SegmentConfig {
    /// A fault-free switched LAN: 50 µs one way, MTU 1500.
    fn default() -> Self {
        Self {
            latency: Duration::from_micros(50),
            jitter: Duration::ZERO,
            mtu: 1500,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1),
            bandwidth_bps: None,
        }
    }
}

/// Why a frame (or one receiver's copy of it) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Random loss (`SegmentConfig::loss`).
    Loss,
    /// Sender and receiver are partitioned, or one of them is isolated.
    Partition,
    /// The sender's or the receiver's bearer is down.
    BearerDown,
    /// Larger than the MTU.
    Mtu,
    /// Unicast to an address nobody on the segment holds.
    NoSuchAddress,
    /// Sent on a bearer the node never attached to a segment.
    Unattached,
}

/// Frame counters. `sent` counts frames handed to the network (one per [`Transmit`], however
/// many receivers); `delivered` and the drops count receiver copies, so for broadcasts
/// `delivered + dropped()` may exceed `sent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames handed to the network.
    pub sent: u64,
    /// Bytes of the frames handed to the network.
    pub bytes_sent: u64,
    /// Copies handed to a receiver's `handle_frame` (duplicates included).
    pub delivered: u64,
    /// Dropped by random loss.
    pub dropped_loss: u64,
    /// Dropped by a partition or an isolated node.
    pub dropped_partition: u64,
    /// Dropped because a bearer was down.
    pub dropped_bearer_down: u64,
    /// Dropped for exceeding the MTU.
    pub dropped_mtu: u64,
    /// Unicasts dropped because no attachment held the address.
    pub dropped_no_addr: u64,
    /// Dropped because the sending bearer was not attached.
    pub dropped_unattached: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies held back to be overtaken (whether or not a later frame actually overtook them).
    pub reordered: u64,
}

impl FrameStats {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss
            + self.dropped_partition
            + self.dropped_bearer_down
            + self.dropped_mtu
            + self.dropped_no_addr
            + self.dropped_unattached
    }

    /// Drops for one reason.
    pub fn dropped_by(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Loss => self.dropped_loss,
            DropReason::Partition => self.dropped_partition,
            DropReason::BearerDown => self.dropped_bearer_down,
            DropReason::Mtu => self.dropped_mtu,
            DropReason::NoSuchAddress => self.dropped_no_addr,
            DropReason::Unattached => self.dropped_unattached,
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Loss => &mut self.dropped_loss,
            DropReason::Partition => &mut self.dropped_partition,
            DropReason::BearerDown => &mut self.dropped_bearer_down,
            DropReason::Mtu => &mut self.dropped_mtu,
            DropReason::NoSuchAddress => &mut self.dropped_no_addr,
            DropReason::Unattached => &mut self.dropped_unattached,
        };
        *c += 1;
    }
}

/// Counters of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// The frames this node sent and what became of them.
    pub tx: FrameStats,
    /// Frames delivered to this node.
    pub received: u64,
    /// `handle_timeout` calls.
    pub timeouts: u64,
    /// Times the node kept its `poll_timeout` at or before `now` through
    /// [`MAX_TIMEOUTS_PER_INSTANT`] `handle_timeout` calls at one instant — a node bug (an
    /// expired timer never cleared) that would otherwise hang the simulation.
    pub stuck_timers: u64,
}

/// A node calling for `handle_timeout` this many times at one instant is declared stuck.
pub const MAX_TIMEOUTS_PER_INSTANT: u32 = 1000;
/// Default of [`Network::set_max_events_per_instant`]: this many events at one instant means
/// the simulation no longer advances (e.g. frames ping-ponging over zero latency).
pub const MAX_EVENTS_PER_INSTANT: u64 = 1_000_000;
/// A node yielding this many transmits in a row is declared runaway.
pub const MAX_TRANSMITS_PER_FLUSH: u64 = 1_000_000;

/// A change to the network, applied now ([`Network::apply`]) or at a virtual time
/// ([`Network::schedule`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Drop every frame between the two nodes, in both directions, on every segment.
    Partition(NodeIdx, NodeIdx),
    /// Undo a [`Fault::Partition`].
    Heal(NodeIdx, NodeIdx),
    /// Drop every frame to or from the node (also towards nodes added later).
    Isolate(NodeIdx),
    /// Undo a [`Fault::Isolate`].
    Rejoin(NodeIdx),
    /// Undo every partition and isolation.
    HealAll,
    /// Bring a bearer up or down; a down bearer drops everything in and out.
    SetBearerUp {
        /// The node.
        node: NodeIdx,
        /// Its bearer.
        bearer: BearerId,
        /// New state.
        up: bool,
    },
    /// Change a segment's random faults.
    SegmentFaults {
        /// The segment.
        segment: SegmentId,
        /// New loss probability.
        loss: f64,
        /// New duplication probability.
        duplicate: f64,
        /// New reorder probability.
        reorder: f64,
    },
    /// Replace a segment's whole configuration.
    SegmentConfig(SegmentId, SegmentConfig),
}

/// One delivered frame, as recorded by the tap ([`Network::set_tap`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRecord {
    /// Delivery time.
    pub at: Instant,
    /// Segment it crossed.
    pub segment: SegmentId,
    /// Sending node.
    pub from: NodeIdx,
    /// Sender's media address.
    pub from_addr: MediaAddr,
    /// Receiving node.
    pub to: NodeIdx,
    /// Receiver's bearer.
    pub to_bearer: BearerId,
    /// Receiver's media address.
    pub to_addr: MediaAddr,
    /// Whether it was sent to the broadcast address (then the pcap shows ff:ff:ff:ff:ff:ff).
    pub broadcast: bool,
    /// The TIPC packet.
    pub bytes: Vec<u8>,
}

/// One entry of the event trace ([`Network::set_trace`]): everything that happened, without
/// the frame bytes, so that a failure can be followed and two runs compared.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceEvent {
    /// A node handed a frame to the network.
    Sent {
        /// When.
        at: Instant,
        /// Sender.
        from: NodeIdx,
        /// Sender's bearer.
        bearer: BearerId,
        /// Destination.
        dest: Dest,
        /// Frame length.
        len: usize,
    },
    /// A copy reached a node.
    Delivered {
        /// When.
        at: Instant,
        /// Segment crossed.
        segment: SegmentId,
        /// Sender.
        from: NodeIdx,
        /// Receiver.
        to: NodeIdx,
        /// Frame length.
        len: usize,
        /// Whether this is the extra copy of a duplication.
        duplicate: bool,
    },
    /// A frame or copy was dropped.
    Dropped {
        /// When.
        at: Instant,
        /// Segment, unless the bearer was unattached.
        segment: Option<SegmentId>,
        /// Sender.
        from: NodeIdx,
        /// Receiver, for per-copy drops.
        to: Option<NodeIdx>,
        /// Frame length.
        len: usize,
        /// Why.
        reason: DropReason,
    },
    /// A node's `handle_timeout` was called.
    Timeout {
        /// When.
        at: Instant,
        /// The node.
        node: NodeIdx,
    },
    /// A fault was applied.
    Fault {
        /// When.
        at: Instant,
        /// What.
        fault: Fault,
    },
}

/// A simulated cluster: nodes, segments, in-flight frames, faults and a virtual clock.
pub struct Network<N> {
    seed: u64,
    rng: Rng,
    now: Instant,
    /// Sequence number of the next queued event, the tie-breaker at equal times.
    seq: u64,
    nodes: Vec<NodeSlot<N>>,
    segments: Vec<Segment>,
    attachments: Vec<Attachment>,
    by_bearer: BTreeMap<(NodeIdx, BearerId), usize>,
    queue: BinaryHeap<Event>,
    /// Partitioned pairs, smaller index first.
    partitions: BTreeSet<(NodeIdx, NodeIdx)>,
    overrides: BTreeMap<(SegmentId, NodeIdx, NodeIdx), SegmentConfig>,
    /// Latest arrival per (sender, receiver) attachment pair, which keeps jitter FIFO. Only
    /// looked up, never iterated, so the hash order cannot leak into the run.
    last_arrival: HashMap<(usize, usize), Instant>,
    total: FrameStats,
    events_at_instant: u64,
    max_events_per_instant: u64,
    /// The current instant hit `max_events_per_instant` (reported once).
    instant_stalled: bool,
    stalls: u64,
    strict: bool,
    tap: Option<Vec<TapRecord>>,
    trace: Option<Vec<TraceEvent>>,
}

struct NodeSlot<N> {
    node: N,
    stats: NodeStats,
    /// `handle_timeout` calls at the current instant.
    spins: u32,
    /// Declared stuck at the current instant: its timer is ignored until the clock moves.
    deferred: bool,
    isolated: bool,
}

#[derive(Debug)]
struct Segment {
    config: SegmentConfig,
    /// Attachment indices, in attach order (the order broadcast copies are made in).
    members: Vec<usize>,
    by_addr: HashMap<MediaAddr, usize>,
    stats: FrameStats,
}

#[derive(Debug)]
struct Attachment {
    node: NodeIdx,
    bearer: BearerId,
    segment: SegmentId,
    addr: MediaAddr,
    up: bool,
    /// When the sender's NIC finishes serializing what it has queued.
    tx_free_at: Instant,
}

#[derive(Debug)]
struct InFlight {
    segment: SegmentId,
    from_att: usize,
    to_att: usize,
    bytes: Arc<[u8]>,
    broadcast: bool,
    duplicate: bool,
}

#[derive(Debug)]
enum EventKind {
    Deliver(InFlight),
    Fault(Fault),
}

#[derive(Debug)]
struct Event {
    at: Instant,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest, then the first queued.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What [`Network::next_event`] found.
#[derive(Debug, Clone, Copy)]
enum Next {
    Queue,
    Timer(usize),
}

impl<N: SimNode> Network<N> {
    /// An empty network at time zero whose every random choice derives from `seed`.
    ///
    /// Strict mode is on: a node bug that would hang the simulation panics (see
    /// [`Network::set_strict`]).
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: Rng::new(seed),
            now: Instant::ZERO,
            seq: 0,
            nodes: Vec::new(),
            segments: Vec::new(),
            attachments: Vec::new(),
            by_bearer: BTreeMap::new(),
            queue: BinaryHeap::new(),
            partitions: BTreeSet::new(),
            overrides: BTreeMap::new(),
            last_arrival: HashMap::new(),
            total: FrameStats::default(),
            events_at_instant: 0,
            max_events_per_instant: MAX_EVENTS_PER_INSTANT,
            instant_stalled: false,
            stalls: 0,
            strict: true,
            tap: None,
            trace: None,
        }
    }

    /// The seed given to [`Network::new`].
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A seed for stream `stream` (e.g. a node's index) derived from the network's seed, so
    /// nodes built with their own RNG vary with the network seed without sharing a sequence.
    pub fn sub_seed(&self, stream: u64) -> u64 {
        // One SplitMix64 round over the pair: distinct streams give unrelated seeds.
        let mut z = self
            .seed
            .wrapping_add(stream.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// With `strict` (the default), a node bug that would hang the run — a timer that never
    /// clears, a runaway transmit loop, an instant that never ends — panics with a message
    /// naming it. Without, it is counted ([`NodeStats::stuck_timers`], [`Network::stalls`])
    /// and broken off, for tests that examine the guard itself: a stuck node's timer is
    /// ignored until the clock moves, and an endless instant ends the current `step`/`run_*`
    /// call (which then returns as if nothing were scheduled).
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// How many events one instant may hold before the run is declared stuck (see
    /// [`Network::set_strict`]); [`MAX_EVENTS_PER_INSTANT`] by default. Lower it to fail fast,
    /// raise it for a very large cluster that legitimately does that much at once.
    pub fn set_max_events_per_instant(&mut self, max: u64) {
        self.max_events_per_instant = max.max(1);
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    // ---- topology ----

    /// Adds a node; it is polled from the next [`Network::step`] on.
    pub fn add_node(&mut self, node: N) -> NodeIdx {
        self.nodes.push(NodeSlot {
            node,
            stats: NodeStats::default(),
            spins: 0,
            deferred: false,
            isolated: false,
        });
        NodeIdx(self.nodes.len() - 1)
    }

    /// Adds a segment (one broadcast domain).
    pub fn add_segment(&mut self, config: SegmentConfig) -> SegmentId {
        self.segments.push(Segment {
            config,
            members: Vec::new(),
            by_addr: HashMap::new(),
            stats: FrameStats::default(),
        });
        SegmentId(self.segments.len() - 1)
    }

    /// Plugs `node`'s `bearer` into `segment` under media address `addr`, bearer up.
    ///
    /// # Panics
    /// If the node or segment does not exist, the bearer is already attached, or the address
    /// is already taken on the segment: set-up mistakes in a test.
    pub fn attach(&mut self, node: NodeIdx, bearer: BearerId, segment: SegmentId, addr: MediaAddr) {
        assert!(node.0 < self.nodes.len(), "attach: no node {node:?}");
        let seg = self
            .segments
            .get_mut(segment.0)
            .unwrap_or_else(|| panic!("attach: no segment {segment:?}"));
        assert!(
            !self.by_bearer.contains_key(&(node, bearer)),
            "attach: {node:?} {bearer:?} is already attached"
        );
        assert!(
            !seg.by_addr.contains_key(&addr),
            "attach: {addr:?} is already used on {segment:?}"
        );
        let idx = self.attachments.len();
        self.attachments.push(Attachment {
            node,
            bearer,
            segment,
            addr,
            up: true,
            tx_free_at: Instant::ZERO,
        });
        seg.members.push(idx);
        seg.by_addr.insert(addr, idx);
        self.by_bearer.insert((node, bearer), idx);
    }

    /// The node.
    ///
    /// # Panics
    /// If there is no such node.
    pub fn node(&self, idx: NodeIdx) -> &N {
        &self.nodes[idx.0].node
    }

    /// The node, to issue commands; what it transmits goes out at the next step.
    ///
    /// # Panics
    /// If there is no such node.
    pub fn node_mut(&mut self, idx: NodeIdx) -> &mut N {
        &mut self.nodes[idx.0].node
    }

    /// Swaps in a new node state and returns the old one, e.g. to restart a crashed node.
    /// Frames in flight to it still arrive (to the new state), as they would to a rebooted
    /// host; take its bearers down first to model the outage.
    ///
    /// # Panics
    /// If there is no such node.
    pub fn replace_node(&mut self, idx: NodeIdx, node: N) -> N {
        core::mem::replace(&mut self.nodes[idx.0].node, node)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Every node with its index.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeIdx, &N)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, s)| (NodeIdx(i), &s.node))
    }

    /// The media address of `node`'s `bearer`, if attached.
    pub fn addr(&self, node: NodeIdx, bearer: BearerId) -> Option<MediaAddr> {
        self.by_bearer
            .get(&(node, bearer))
            .map(|&a| self.attachments[a].addr)
    }

    /// A segment's current configuration.
    ///
    /// # Panics
    /// If there is no such segment.
    pub fn segment_config(&self, seg: SegmentId) -> &SegmentConfig {
        &self.segments[seg.0].config
    }

    /// Replaces a segment's configuration from now on (frames in flight keep their timing).
    ///
    /// # Panics
    /// If there is no such segment.
    pub fn set_segment_config(&mut self, seg: SegmentId, config: SegmentConfig) {
        self.apply(Fault::SegmentConfig(seg, config));
    }

    /// Overrides the configuration of the `from` → `to` direction on `seg` (`None` removes the
    /// override), e.g. for an asymmetric or one-way lossy path. All fields apply per copy,
    /// except `bandwidth_bps` (the sender's NIC) and `mtu`, which the segment's MTU caps.
    ///
    /// # Panics
    /// If there is no such segment.
    pub fn set_direction_config(
        &mut self,
        seg: SegmentId,
        from: NodeIdx,
        to: NodeIdx,
        config: Option<SegmentConfig>,
    ) {
        assert!(seg.0 < self.segments.len(), "no segment {seg:?}");
        match config {
            Some(c) => self.overrides.insert((seg, from, to), c),
            None => self.overrides.remove(&(seg, from, to)),
        };
    }

    // ---- faults ----

    /// Drops every frame between `a` and `b` until [`Network::heal`].
    pub fn partition(&mut self, a: NodeIdx, b: NodeIdx) {
        self.apply(Fault::Partition(a, b));
    }

    /// Ends a partition between `a` and `b`.
    pub fn heal(&mut self, a: NodeIdx, b: NodeIdx) {
        self.apply(Fault::Heal(a, b));
    }

    /// Drops every frame to or from `node` until [`Network::rejoin`].
    pub fn isolate(&mut self, node: NodeIdx) {
        self.apply(Fault::Isolate(node));
    }

    /// Ends the isolation of `node`.
    pub fn rejoin(&mut self, node: NodeIdx) {
        self.apply(Fault::Rejoin(node));
    }

    /// Ends every partition and isolation.
    pub fn heal_all(&mut self) {
        self.apply(Fault::HealAll);
    }

    /// Brings a bearer up or down.
    ///
    /// # Panics
    /// If the bearer is not attached.
    pub fn set_bearer_up(&mut self, node: NodeIdx, bearer: BearerId, up: bool) {
        self.apply(Fault::SetBearerUp { node, bearer, up });
    }

    /// Changes a segment's random faults from now on.
    ///
    /// # Panics
    /// If there is no such segment.
    pub fn set_segment_faults(&mut self, seg: SegmentId, loss: f64, duplicate: f64, reorder: f64) {
        self.apply(Fault::SegmentFaults {
            segment: seg,
            loss,
            duplicate,
            reorder,
        });
    }

    /// Applies `fault` at `at` (now, if `at` has passed), after everything already queued for
    /// that instant and before node timers at that instant.
    pub fn schedule(&mut self, at: Instant, fault: Fault) {
        let at = at.max(self.now);
        self.push(at, EventKind::Fault(fault));
    }

    /// Applies `fault` now.
    ///
    /// # Panics
    /// If it names a segment or an attachment that does not exist.
    pub fn apply(&mut self, fault: Fault) {
        let at = self.now;
        self.record(|| TraceEvent::Fault { at, fault });
        match fault {
            Fault::Partition(a, b) => {
                if a != b {
                    self.partitions.insert((a.min(b), a.max(b)));
                }
            }
            Fault::Heal(a, b) => {
                self.partitions.remove(&(a.min(b), a.max(b)));
            }
            Fault::Isolate(n) => self.nodes[n.0].isolated = true,
            Fault::Rejoin(n) => self.nodes[n.0].isolated = false,
            Fault::HealAll => {
                self.partitions.clear();
                for slot in &mut self.nodes {
                    slot.isolated = false;
                }
            }
            Fault::SetBearerUp { node, bearer, up } => {
                let a = *self
                    .by_bearer
                    .get(&(node, bearer))
                    .unwrap_or_else(|| panic!("{node:?} {bearer:?} is not attached"));
                self.attachments[a].up = up;
            }
            Fault::SegmentFaults {
                segment,
                loss,
                duplicate,
                reorder,
            } => {
                let c = &mut self.segments[segment.0].config;
                c.loss = loss;
                c.duplicate = duplicate;
                c.reorder = reorder;
            }
            Fault::SegmentConfig(segment, config) => self.segments[segment.0].config = config,
        }
    }

    // ---- observation ----

    /// Counters of one segment.
    ///
    /// # Panics
    /// If there is no such segment.
    pub fn segment_stats(&self, seg: SegmentId) -> &FrameStats {
        &self.segments[seg.0].stats
    }

    /// Counters of one node.
    ///
    /// # Panics
    /// If there is no such node.
    pub fn node_stats(&self, node: NodeIdx) -> &NodeStats {
        &self.nodes[node.0].stats
    }

    /// Counters of the whole network (including frames sent on unattached bearers, which belong
    /// to no segment).
    pub fn stats(&self) -> &FrameStats {
        &self.total
    }

    /// How many times a guard against a hung simulation fired (stuck timers, runaway
    /// transmits, endless instants). Non-zero means a node bug; only reachable without strict
    /// mode, which panics instead.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// Frames queued for delivery (duplicates included).
    pub fn in_flight(&self) -> usize {
        self.queue
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Deliver(_)))
            .count()
    }

    /// Starts (`true`, keeping anything recorded so far) or stops and discards (`false`) the
    /// recording of every delivered frame with its bytes.
    pub fn set_tap(&mut self, on: bool) {
        match (on, self.tap.is_some()) {
            (true, false) => self.tap = Some(Vec::new()),
            (false, _) => self.tap = None,
            (true, true) => {}
        }
    }

    /// The frames recorded by the tap, in delivery order.
    pub fn tap(&self) -> &[TapRecord] {
        self.tap.as_deref().unwrap_or_default()
    }

    /// Takes the frames recorded so far, leaving the tap running.
    pub fn take_tap(&mut self) -> Vec<TapRecord> {
        self.tap.as_mut().map(core::mem::take).unwrap_or_default()
    }

    /// Writes the tapped frames as a classic pcap (see [`write_pcap`]).
    pub fn write_pcap<W: io::Write>(&self, out: W) -> io::Result<()> {
        write_pcap(out, self.tap())
    }

    /// The tapped frames as pcap file bytes.
    pub fn pcap_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_pcap(&mut v);
        v
    }

    /// Starts (`true`, keeping anything recorded so far) or stops and discards (`false`) the
    /// event trace.
    pub fn set_trace(&mut self, on: bool) {
        match (on, self.trace.is_some()) {
            (true, false) => self.trace = Some(Vec::new()),
            (false, _) => self.trace = None,
            (true, true) => {}
        }
    }

    /// The trace recorded so far.
    pub fn trace(&self) -> &[TraceEvent] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// Takes the trace recorded so far, leaving it running.
    pub fn take_trace(&mut self) -> Vec<TraceEvent> {
        self.trace.as_mut().map(core::mem::take).unwrap_or_default()
    }

    // ---- the clock ----

    /// Drains every node's transmits, advances the clock to the earliest event and handles it,
    /// then drains the transmits that caused. False if nothing is scheduled at all (the clock
    /// then stays put).
    pub fn step(&mut self) -> bool {
        self.step_bounded(None)
    }

    /// Handles every event up to and including `t`, then sets the clock to `t` (if later).
    pub fn run_until(&mut self, t: Instant) {
        while self.step_bounded(Some(t)) {}
        self.advance_to(t);
    }

    /// [`Network::run_until`] `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Steps until `cond` holds (true) or `max` of virtual time has passed (false, with the
    /// clock at `now + max`). `cond` is checked before the first step and after each one, so on
    /// success the clock is at the event that made it true.
    pub fn run_until_cond(&mut self, max: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let deadline = self.now + max;
        loop {
            if cond(self) {
                return true;
            }
            if !self.step_bounded(Some(deadline)) {
                self.advance_to(deadline);
                return cond(self);
            }
        }
    }

    fn step_bounded(&mut self, limit: Option<Instant>) -> bool {
        self.flush();
        let Some((at, next)) = self.next_event() else {
            return false;
        };
        if limit.is_some_and(|l| at > l) {
            return false;
        }
        self.advance_to(at);
        if self.events_at_instant >= self.max_events_per_instant {
            // Break off: without strict mode, the run ends here and the clock moves on to its
            // target; what is still queued is then handled at that later instant.
            if !self.instant_stalled {
                self.instant_stalled = true;
                let (now, max) = (self.now, self.max_events_per_instant);
                self.bug(format_args!(
                    "{max} events at {now:?} and the instant does not end (frames looping \
                     over zero latency, or timers re-arming at now)"
                ));
            }
            return false;
        }
        self.events_at_instant += 1;
        match next {
            Next::Queue => {
                if let Some(ev) = self.queue.pop() {
                    match ev.kind {
                        EventKind::Deliver(f) => self.deliver(f),
                        EventKind::Fault(f) => self.apply(f),
                    }
                }
            }
            Next::Timer(i) => self.fire_timer(i),
        }
        self.flush();
        true
    }

    /// The earliest event: queued ones win ties against timers; among timers, the lowest node
    /// index. Past deadlines count as now.
    fn next_event(&self) -> Option<(Instant, Next)> {
        let queued = self.queue.peek().map(|e| e.at.max(self.now));
        let mut timer: Option<(Instant, usize)> = None;
        for (i, slot) in self.nodes.iter().enumerate() {
            if slot.deferred {
                continue;
            }
            if let Some(t) = slot.node.poll_timeout() {
                let t = t.max(self.now);
                if timer.is_none_or(|(best, _)| t < best) {
                    timer = Some((t, i));
                }
            }
        }
        match (queued, timer) {
            (Some(q), Some((t, i))) if t < q => Some((t, Next::Timer(i))),
            (Some(q), _) => Some((q, Next::Queue)),
            (None, Some((t, i))) => Some((t, Next::Timer(i))),
            (None, None) => None,
        }
    }

    fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
            self.events_at_instant = 0;
            self.instant_stalled = false;
            for slot in &mut self.nodes {
                slot.spins = 0;
                slot.deferred = false;
            }
        }
    }

    fn fire_timer(&mut self, i: usize) {
        let now = self.now;
        self.record(|| TraceEvent::Timeout {
            at: now,
            node: NodeIdx(i),
        });
        let slot = &mut self.nodes[i];
        slot.spins += 1;
        slot.stats.timeouts += 1;
        slot.node.handle_timeout(now);
        if slot.spins >= MAX_TIMEOUTS_PER_INSTANT
            && slot.node.poll_timeout().is_some_and(|t| t <= now)
        {
            slot.stats.stuck_timers += 1;
            slot.deferred = true;
            self.bug(format_args!(
                "node {i}: poll_timeout stayed at or before now ({now:?}) through \
                 {MAX_TIMEOUTS_PER_INSTANT} handle_timeout calls — an expired timer is never \
                 cleared"
            ));
        }
    }

    /// A node bug that would hang the run: panic in strict mode, else count it.
    fn bug(&mut self, msg: fmt::Arguments<'_>) {
        self.stalls += 1;
        assert!(!self.strict, "utipc sim (seed {}): {msg}", self.seed);
    }

    fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            let mut n = 0u64;
            while let Some(t) = self.nodes[i].node.poll_transmit() {
                self.send(NodeIdx(i), t);
                n += 1;
                if n >= MAX_TRANSMITS_PER_FLUSH {
                    self.bug(format_args!(
                        "node {i}: poll_transmit yielded {MAX_TRANSMITS_PER_FLUSH} frames in a row"
                    ));
                    break;
                }
            }
        }
    }

    fn push(&mut self, at: Instant, kind: EventKind) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Event { at, seq, kind });
    }

    fn record(&mut self, ev: impl FnOnce() -> TraceEvent) {
        if let Some(t) = &mut self.trace {
            t.push(ev());
        }
    }

    fn is_cut(&self, a: NodeIdx, b: NodeIdx) -> bool {
        a != b
            && (self.nodes[a.0].isolated
                || self.nodes[b.0].isolated
                || self.partitions.contains(&(a.min(b), a.max(b))))
    }

    fn drop_frame(
        &mut self,
        segment: Option<SegmentId>,
        from: NodeIdx,
        to: Option<NodeIdx>,
        len: usize,
        reason: DropReason,
    ) {
        self.total.count_drop(reason);
        self.nodes[from.0].stats.tx.count_drop(reason);
        if let Some(s) = segment {
            self.segments[s.0].stats.count_drop(reason);
        }
        let at = self.now;
        self.record(|| TraceEvent::Dropped {
            at,
            segment,
            from,
            to,
            len,
            reason,
        });
    }

    /// Counts a per-copy event on the sender, its segment and the total.
    fn count(&mut self, seg: SegmentId, from: NodeIdx, f: impl Fn(&mut FrameStats)) {
        f(&mut self.total);
        f(&mut self.segments[seg.0].stats);
        f(&mut self.nodes[from.0].stats.tx);
    }

    fn send(&mut self, from: NodeIdx, t: Transmit) {
        let len = t.data.len();
        let at = self.now;
        self.record(|| TraceEvent::Sent {
            at,
            from,
            bearer: t.bearer,
            dest: t.dest,
            len,
        });
        let count_sent = |s: &mut FrameStats| {
            s.sent += 1;
            s.bytes_sent += len as u64;
        };
        count_sent(&mut self.total);
        count_sent(&mut self.nodes[from.0].stats.tx);
        let Some(&fa) = self.by_bearer.get(&(from, t.bearer)) else {
            self.drop_frame(None, from, None, len, DropReason::Unattached);
            return;
        };
        let seg = self.attachments[fa].segment;
        count_sent(&mut self.segments[seg.0].stats);
        if !self.attachments[fa].up {
            self.drop_frame(Some(seg), from, None, len, DropReason::BearerDown);
            return;
        }
        if len > self.segments[seg.0].config.mtu {
            self.drop_frame(Some(seg), from, None, len, DropReason::Mtu);
            return;
        }
        let receivers: Vec<usize> = match t.dest {
            Dest::Broadcast => {
                let members = &self.segments[seg.0].members;
                members.iter().copied().filter(|&a| a != fa).collect()
            }
            Dest::Unicast(addr) => match self.segments[seg.0].by_addr.get(&addr) {
                Some(&a) if a != fa => vec![a],
                _ => {
                    self.drop_frame(Some(seg), from, None, len, DropReason::NoSuchAddress);
                    return;
                }
            },
        };
        let departs = self.serialize(fa, len);
        let bytes: Arc<[u8]> = t.data.into();
        let broadcast = t.dest == Dest::Broadcast;
        for ta in receivers {
            self.launch(seg, fa, ta, departs, &bytes, broadcast);
        }
    }

    /// When the last bit of a `len`-byte frame leaves the sender's NIC, queueing behind what it
    /// is still sending.
    fn serialize(&mut self, fa: usize, len: usize) -> Instant {
        let seg = self.attachments[fa].segment;
        let Some(bps) = self.segments[seg.0].config.bandwidth_bps.filter(|&b| b > 0) else {
            return self.now;
        };
        let att = &mut self.attachments[fa];
        let start = self.now.max(att.tx_free_at);
        let bits = len as u128 * 8 * 1_000_000_000;
        let ns = u64::try_from(bits.div_ceil(u128::from(bps))).unwrap_or(u64::MAX);
        att.tx_free_at = start + Duration::from_nanos(ns);
        att.tx_free_at
    }

    /// Puts one receiver's copy on the wire, deciding its fate with the path's configuration.
    fn launch(
        &mut self,
        seg: SegmentId,
        fa: usize,
        ta: usize,
        departs: Instant,
        bytes: &Arc<[u8]>,
        broadcast: bool,
    ) {
        let from = self.attachments[fa].node;
        let to = self.attachments[ta].node;
        let len = bytes.len();
        let cfg = match self.overrides.get(&(seg, from, to)) {
            Some(c) => *c,
            None => self.segments[seg.0].config,
        };
        if len > cfg.mtu {
            self.drop_frame(Some(seg), from, Some(to), len, DropReason::Mtu);
            return;
        }
        if self.is_cut(from, to) {
            self.drop_frame(Some(seg), from, Some(to), len, DropReason::Partition);
            return;
        }
        if !self.attachments[ta].up {
            self.drop_frame(Some(seg), from, Some(to), len, DropReason::BearerDown);
            return;
        }
        if self.rng.chance(cfg.loss) {
            self.drop_frame(Some(seg), from, Some(to), len, DropReason::Loss);
            return;
        }
        let jitter_ns = u64::try_from(cfg.jitter.as_nanos()).unwrap_or(u64::MAX);
        let jitter = match jitter_ns {
            0 => Duration::ZERO,
            j => Duration::from_nanos(self.rng.below(j.saturating_add(1))),
        };
        let mut arrival = departs + cfg.latency + jitter;
        if self.rng.chance(cfg.reorder) {
            // Held back, and not recorded as the path's latest arrival, so later frames are
            // free to overtake it.
            arrival += cfg.reorder_delay;
            self.count(seg, from, |s| s.reordered += 1);
        } else {
            let last = self.last_arrival.entry((fa, ta)).or_insert(Instant::ZERO);
            arrival = arrival.max(*last);
            *last = arrival;
        }
        let flight = |duplicate| InFlight {
            segment: seg,
            from_att: fa,
            to_att: ta,
            bytes: Arc::clone(bytes),
            broadcast,
            duplicate,
        };
        self.push(arrival, EventKind::Deliver(flight(false)));
        if self.rng.chance(cfg.duplicate) {
            self.count(seg, from, |s| s.duplicated += 1);
            self.push(arrival, EventKind::Deliver(flight(true)));
        }
    }

    fn deliver(&mut self, f: InFlight) {
        let (from, from_addr) = {
            let a = &self.attachments[f.from_att];
            (a.node, a.addr)
        };
        let (to, to_bearer, to_addr, to_up) = {
            let a = &self.attachments[f.to_att];
            (a.node, a.bearer, a.addr, a.up)
        };
        let len = f.bytes.len();
        if self.is_cut(from, to) {
            self.drop_frame(Some(f.segment), from, Some(to), len, DropReason::Partition);
            return;
        }
        if !to_up {
            self.drop_frame(Some(f.segment), from, Some(to), len, DropReason::BearerDown);
            return;
        }
        self.count(f.segment, from, |s| s.delivered += 1);
        self.nodes[to.0].stats.received += 1;
        let at = self.now;
        self.record(|| TraceEvent::Delivered {
            at,
            segment: f.segment,
            from,
            to,
            len,
            duplicate: f.duplicate,
        });
        if let Some(tap) = &mut self.tap {
            tap.push(TapRecord {
                at,
                segment: f.segment,
                from,
                from_addr,
                to,
                to_bearer,
                to_addr,
                broadcast: f.broadcast,
                bytes: f.bytes.to_vec(),
            });
        }
        self.nodes[to.0]
            .node
            .handle_frame(at, to_bearer, from_addr, &f.bytes);
    }
}

impl<N> fmt::Debug for Network<N> {
    /// A summary: nodes are not required to be `Debug`, and a full dump would be unreadable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("segments", &self.segments.len())
            .field("attachments", &self.attachments.len())
            .field("queued", &self.queue.len())
            .field("partitions", &self.partitions)
            .field("stats", &self.total)
            .field("stalls", &self.stalls)
            .finish_non_exhaustive()
    }
}
