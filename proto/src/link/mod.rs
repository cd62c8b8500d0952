//! The unicast link endpoint (spec §5): a reliable, sequenced, flow-controlled channel to one
//! peer over one bearer, wire-compatible with the Linux kernel's `net/tipc/link.c`.
//!
//! Read spec §5.1–§5.8, §5.11 and §5.12 first. The endpoint is a sans-IO state machine in the
//! style of quinn-proto (`shared/STYLE.md` §2): no IO, no threads, no clock reads. The node
//! layer drives it through
//!
//! * `handle_*` inputs: [`Link::handle_packet`] for every packet routed to this link,
//!   [`Link::handle_timeout`] when [`Link::poll_timeout`] is reached;
//! * commands: [`Link::send`], [`Link::reset`], [`Link::send_state`], [`Link::set_tolerance`],
//!   [`Link::set_priority`];
//! * getters;
//!
//! and every call that can produce something appends it to a caller-owned [`LinkOutput`]:
//! packets to unicast to the peer, messages delivered in sequence, up/down events, and the
//! peer's broadcast-link state for the node's broadcast layer. What the broadcast layer wants
//! written into our packets comes in as a [`BcastCtx`] on each call.
//!
//! # What the link does for the node layer
//!
//! In the kernel the node layer reacts to a link going down by resetting the endpoint and
//! sending one RESET (or ACTIVATE) at once (spec §5.2). This endpoint does that itself, in the
//! same call that detects the failure, and reports [`LinkEvent::Down`]; it also sends the STATE
//! that must precede anything else on a link that has just come up (spec §5.3 step 3) before
//! reporting [`LinkEvent::Up`]. The node layer's share of link-up and link-down (broadcast
//! init, name-table bulk, contact gating, failover) stays with the node layer.
//!
//! # Modules
//!
//! `fsm` (states and events), `proto` (RESET/ACTIVATE/STATE: building, session rules,
//! receiving), `supervision` (the timer: RESET/ACTIVATE repetition, probing, tolerance),
//! `transmit` (transmit queue, backlog, window, retransmission), `receive` (receive window,
//! deferred queue, delivery), `frag` and [`reassembly`] (spec §5.12), `bundle` (spec §5.11),
//! `seq` (16-bit modular arithmetic), `stats` (counters).

mod bundle;
mod frag;
mod fsm;
mod proto;
pub mod reassembly;
mod receive;
mod seq;
mod stats;
mod supervision;
mod transmit;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;

use core::fmt;
use core::time::Duration;

use self::fsm::FsmEvent;
pub use self::fsm::LinkState;
use self::reassembly::Reassembler;
use self::receive::ReceiveQueue;
pub use self::stats::LinkStats;
use self::transmit::{SYSTEM_IMPORTANCE, Stamp, TransmitQueue};
use crate::bearer::{DEFAULT_PRIORITY, DEFAULT_TOLERANCE, MIN_WINDOW};
use crate::time::Instant;
use crate::wire::link_proto::GapAckBlock;
use crate::wire::{MAX_H_SIZE, MAX_USER_MSG_SIZE, Packet, TIPC_VERSION, User};

/// Largest message [`Link::send`] accepts: a 60-byte header and 66,000 bytes of data.
pub const MAX_MESSAGE_LEN: usize = MAX_H_SIZE + MAX_USER_MSG_SIZE;
/// Link MSS = link MTU − this, as a crypto-built kernel (Debian 6.1) computes it (spec §5.7).
pub const DEFAULT_MSS_OVERHEAD: u32 = 72;
/// Smallest max_pkt a RESET/ACTIVATE may advertise on Ethernet (spec §1.4.1).
pub const DEFAULT_MIN_MTU: u32 = 100;
/// Largest link window of Ethernet (TIPC_MAX_LINK_WIN), also the receive window (spec §5.4).
pub const MAX_LINK_WINDOW: u16 = 8191;
/// Tolerance range honoured in configuration and on the wire (spec §5.6).
const TOLERANCE_MIN: Duration = Duration::from_millis(50);
const TOLERANCE_MAX: Duration = Duration::from_millis(30_000);
/// The timer interval never exceeds this (spec §5.6).
const MAX_INTERVAL: Duration = Duration::from_millis(500);
/// Highest link priority (spec §5.8).
const MAX_PRIORITY: u8 = 31;

/// Parameters of one link endpoint, fixed by the node layer when it creates the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Own node address.
    pub own_addr: u32,
    /// Peer node address.
    pub peer_addr: u32,
    /// Own bearer id (0–2); the network plane is the same number ('A' + id).
    pub bearer_id: u8,
    /// Own interface name, sent NUL-padded in the 16-byte payload of RESET/ACTIVATE.
    pub own_if_name: String,
    /// Own bearer MTU, advertised as max_pkt in RESET/ACTIVATE.
    pub mtu: u32,
    /// RESET/ACTIVATE whose max_pkt is below this are ignored (spec §1.4.1).
    pub min_mtu: u32,
    /// Link MSS = link MTU − this (spec §5.7).
    pub mss_overhead: u32,
    /// Own bearer tolerance (clamped to 50 ms..=30 s).
    pub tolerance: Duration,
    /// Own bearer priority (0–31).
    pub priority: u8,
    /// Smallest (and initial) send window: 50 on every media.
    pub window_min: u16,
    /// Largest send window: 8191 on Ethernet, 50 on UDP.
    pub window_max: u16,
    /// Our capability bits (`wire::discovery::caps`).
    pub own_caps: u16,
    /// The peer's capability bits, learned from its discovery messages.
    pub peer_caps: u16,
    /// Session number of the first RESET (random, chosen by the node layer).
    pub initial_session: u16,
    /// Bundle the data messages handed to [`Link::send`] at one instant even while the window
    /// has room (see there). Off by default: the kernel bundles only behind a full window, and
    /// callers that replay kernel traffic expect its packing.
    pub bundle_bursts: bool,
}

impl LinkConfig {
    /// A configuration with the Ethernet defaults for everything not given: minimum MTU 100,
    /// MSS overhead 72, tolerance 1500 ms, priority 10, window 50..8191.
    #[allow(
        clippy::too_many_arguments,
        reason = "the constructor the node layer was promised"
    )]
    pub fn new(
        own_addr: u32,
        peer_addr: u32,
        bearer_id: u8,
        if_name: impl Into<String>,
        mtu: u32,
        own_caps: u16,
        peer_caps: u16,
        session: u16,
    ) -> Self {
        Self {
            own_addr,
            peer_addr,
            bearer_id,
            own_if_name: if_name.into(),
            mtu,
            min_mtu: DEFAULT_MIN_MTU,
            mss_overhead: DEFAULT_MSS_OVERHEAD,
            tolerance: DEFAULT_TOLERANCE,
            priority: DEFAULT_PRIORITY,
            window_min: MIN_WINDOW,
            window_max: MAX_LINK_WINDOW,
            own_caps,
            peer_caps,
            initial_session: session,
            bundle_bursts: false,
        }
    }
}

/// What the node's broadcast layer wants in the packets the link builds, given on every call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BcastCtx {
    /// Our broadcast receive link for this peer: rcv_nxt − 1. Goes into `w1[0:15]` of every
    /// sequenced packet, STATE and RESET.
    pub rcv_ack: u16,
    /// Our broadcast receive link for this peer is not up: sets bc_ack_invalid (`w5[14]`) in
    /// STATE, RESET and ACTIVATE; STATE carries redundant_link = the opposite (spec §6.1).
    pub rcv_ack_invalid: bool,
    /// Our broadcast send link's snd_nxt − 1: `w4[16:31]` of STATE, RESET and ACTIVATE.
    pub last_bcast: u16,
    /// Missing broadcast packets: STATE `w8[0:9]`.
    pub bc_gap: u16,
    /// redundant_link (`w5[12]`) of RESET/ACTIVATE; the node layer decides (spec §5.9).
    pub redundant_link: bool,
}

/// The peer's broadcast-link state, as one received packet shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerBcast {
    /// From a STATE (all fields meaningful) rather than a sequenced packet (only `bcast_ack`
    /// and `unicast_ack`).
    pub is_state: bool,
    /// The peer's broadcast ack (`w1[0:15]`).
    pub bcast_ack: u16,
    /// STATE: the peer says its broadcast ack is not to be used (`w5[14]`). Sequenced packets
    /// whose ack is invalid (spec §6.2) are not reported at all.
    pub bc_ack_invalid: bool,
    /// STATE: the peer's broadcast send link snd_nxt − 1 (`w4[16:31]`).
    pub last_bcast: u16,
    /// STATE: broadcast packets the peer misses (`w8[0:9]`).
    pub bc_gap: u16,
    /// The peer's unicast ack (`w2[16:31]`): a non-zero value shows it received our broadcast
    /// init (spec §6.1).
    pub unicast_ack: u16,
    /// STATE: redundant_link (`w5[12]`), "the peer's broadcast receive link for us is up".
    pub redundant_link: bool,
    /// STATE: the broadcast gap-ack blocks of the peer's gap-ack record (spec §1.4.2).
    pub bcast_gap_blocks: Vec<GapAckBlock>,
}

/// A change of the link's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkEvent {
    /// The link became ESTABLISHED. Its opening STATE is already in the output.
    Up,
    /// The link was up and no longer is. Its endpoint is already reset and the RESET (or
    /// ACTIVATE) announcing it is already in the output.
    Down {
        /// Why.
        reason: DownReason,
    },
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// Nothing heard from the peer for the tolerance (spec §5.6).
    Tolerance,
    /// A packet stayed unacknowledged for 10 × tolerance after its first retransmission.
    RetransmitFailure,
    /// The peer reset its endpoint (a plain RESET, or an ACTIVATE while establishing anew).
    PeerReset,
    /// The peer announced it is going down (RESET with peer_stopping).
    PeerStopping,
    /// A fragment arrived out of place or a reassembled message was invalid (spec §5.12).
    ReassemblyFailure,
    /// The peer changed the link priority (spec §5.8).
    PriorityChange,
    /// The node layer took the link down ([`Link::reset`]), or the system-importance backlog
    /// overflowed (spec §5.5).
    Local,
}

/// Everything one call produced. The caller owns it and may reuse it across calls; calls
/// append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkOutput {
    /// Packets to unicast to the peer on this bearer, in order.
    pub transmit: Vec<Vec<u8>>,
    /// Complete messages received in sequence, after un-bundling and reassembly: data,
    /// NAME_DISTRIBUTOR, CONN_MANAGER, BCAST_PROTOCOL, GROUP_PROTOCOL, MSG_CRYPTO and
    /// TUNNEL_PROTOCOL (the last passed up unhandled).
    pub deliver: Vec<Vec<u8>>,
    /// Up/down events.
    pub events: Vec<LinkEvent>,
    /// One per accepted STATE and per received sequenced packet with a valid broadcast ack.
    pub peer_bcast: Vec<PeerBcast>,
}

/// Why [`Link::send`] refused a message. The message is dropped in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendError {
    /// The backlog of this importance is full (spec §5.5); retry when
    /// [`Link::is_congested`] turns false. Nothing was queued: unlike the kernel, which
    /// queues the message that hits the limit and then reports congestion, this endpoint never
    /// overshoots, so an error always means "not sent".
    Congested {
        /// The importance class: 0–3 data, 4 system (internal users).
        importance: u8,
    },
    /// The link is not up.
    NotUp,
    /// Longer than 66,060 bytes, or more fragments than the link MSS allows.
    TooLarge,
    /// Not a valid TIPC message (spec §1.6 length checks, version 2), or a LINK_PROTOCOL or
    /// LINK_CONFIG message, which are never sequenced.
    Malformed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Congested { importance } => {
                write!(f, "link congested at importance {importance}")
            }
            Self::NotUp => f.write_str("link not up"),
            Self::TooLarge => f.write_str("message too large"),
            Self::Malformed => f.write_str("malformed message"),
        }
    }
}

impl std::error::Error for SendError {}

/// One unicast link endpoint.
#[derive(Debug, Clone)]
pub struct Link {
    cfg: LinkConfig,
    state: LinkState,
    /// Our session number (spec §5.3).
    session: u16,
    /// The peer's session as last accepted; meaningful while `in_session`.
    peer_session: u16,
    in_session: bool,
    peer_bearer_id: Option<u8>,
    peer_if_name: Option<String>,
    /// Negotiated MTU: min(own advertised, peer max_pkt); back to own at every reset.
    mtu: u32,
    tolerance: Duration,
    priority: u8,
    net_plane: u8,
    /// Next timer tick.
    next_tick: Instant,
    /// The instant of the last data message that went straight out through an open window:
    /// further data messages handed over at that same instant are held back and bundled (see
    /// [`Link::send`]).
    burst_at: Option<Instant>,
    /// Since when data messages are held back in the backlog for bundling although the window
    /// has room; [`Link::poll_timeout`] reports this instant (already due), and the next
    /// [`Link::handle_timeout`], like any ack, sends them.
    corked_since: Option<Instant>,
    /// Timer ticks since the peer was last heard from (spec §5.6).
    silent_intv_cnt: u32,
    /// Timer ticks spent in RESET (RESET_MSG repetition, spec §5.3).
    rst_cnt: u32,
    /// snd_nxt at the previous tick of an up link ("no progress" detection, spec §5.5).
    checkpoint: Option<u16>,
    /// The broadcast ack our last STATE carried: a tick sends a STATE when the broadcast
    /// receive link has acked more since (spec §5.6), so the peer's broadcast packets are
    /// released without waiting for other traffic.
    last_state_bc_ack: Option<u16>,
    /// Counter carried in STATE seqnos when the peer has LINK_PROTO_SEQNO.
    snd_nxt_state: u16,
    /// Lowest STATE counter still accepted.
    rcv_nxt_state: u16,
    tx: TransmitQueue,
    rx: ReceiveQueue,
    reasm: Reassembler,
    stats: LinkStats,
}

impl Link {
    /// A new endpoint in RESET. It sends nothing now: its first RESET goes out on the first
    /// timer tick, one interval from `now` (spec §4.3 step 7).
    pub fn new(cfg: LinkConfig, now: Instant) -> Self {
        let tolerance = cfg.tolerance.clamp(TOLERANCE_MIN, TOLERANCE_MAX);
        let priority = cfg.priority.min(MAX_PRIORITY);
        let tx = TransmitQueue::new(cfg.window_min, cfg.window_max, cfg.mtu);
        let mut link = Self {
            state: LinkState::Reset,
            session: cfg.initial_session,
            peer_session: 0,
            in_session: false,
            peer_bearer_id: None,
            peer_if_name: None,
            mtu: cfg.mtu,
            tolerance,
            priority,
            net_plane: cfg.bearer_id & 7,
            next_tick: now,
            burst_at: None,
            corked_since: None,
            silent_intv_cnt: 0,
            rst_cnt: 0,
            checkpoint: None,
            last_state_bc_ack: None,
            snd_nxt_state: 1,
            rcv_nxt_state: 1,
            tx,
            rx: ReceiveQueue::new(),
            reasm: Reassembler::default(),
            stats: LinkStats::default(),
            cfg,
        };
        link.next_tick = now + link.interval();
        link
    }

    /// The FSM state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Up: ESTABLISHED or SYNCHING.
    pub fn is_up(&self) -> bool {
        self.state.is_up()
    }

    /// The peer's node address.
    pub fn peer_addr(&self) -> u32 {
        self.cfg.peer_addr
    }

    /// Own bearer id.
    pub fn bearer_id(&self) -> u8 {
        self.cfg.bearer_id
    }

    /// The peer's bearer id, once a RESET/ACTIVATE was accepted.
    pub fn peer_bearer_id(&self) -> Option<u8> {
        self.peer_bearer_id
    }

    /// Link id (spec §5.1): `(peer bearer id << 16) | own bearer id`.
    pub fn link_id(&self) -> u32 {
        (u32::from(self.peer_bearer_id.unwrap_or(0)) << 16) | u32::from(self.cfg.bearer_id)
    }

    /// Our current session number.
    pub fn session(&self) -> u16 {
        self.session
    }

    /// The peer's session number, while in session with it.
    pub fn peer_session(&self) -> Option<u16> {
        self.in_session.then_some(self.peer_session)
    }

    /// Negotiated MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// MSS offered to senders: MTU − overhead (spec §5.7). Longer messages are fragmented.
    pub fn mss(&self) -> u32 {
        self.mtu.saturating_sub(self.cfg.mss_overhead)
    }

    /// Tolerance in force (own, or adopted from the peer).
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Priority in force.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The peer's interface name, learned from its RESET/ACTIVATE.
    pub fn peer_if_name(&self) -> Option<&str> {
        self.peer_if_name.as_deref()
    }

    /// The configuration the link was created with.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Link name (spec §5.1) given the printable own and peer node identities:
    /// `<own>:<own-if>-<peer>:<peer-if>`, with "unknown" until the peer's interface is known.
    pub fn name(&self, own: &str, peer: &str) -> String {
        format!(
            "{own}:{}-{peer}:{}",
            self.cfg.own_if_name,
            self.peer_if_name().unwrap_or("unknown")
        )
    }

    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Clears the counters.
    pub fn reset_stats(&mut self) {
        self.stats = LinkStats::default();
    }

    /// Timer interval: min(tolerance / 4, 500 ms) (spec §5.6).
    pub fn interval(&self) -> Duration {
        (self.tolerance / 4).min(MAX_INTERVAL)
    }

    /// When [`Link::handle_timeout`] wants to be called next. Always set: the timer runs in
    /// every state. While messages are held back for bundling (see [`Link::send`]) this is the
    /// instant they were, so it is already due: the caller's next timer run sends them.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(match self.corked_since {
            Some(t) => t.min(self.next_tick),
            None => self.next_tick,
        })
    }

    /// Whether data messages are being held back for bundling until the next
    /// [`Link::handle_timeout`] (see [`Link::send`]).
    pub fn is_corked(&self) -> bool {
        self.corked_since.is_some()
    }

    /// Packets of `importance` (0–3 data, 4 system) waiting for room in the send window.
    pub fn backlog_len(&self, importance: usize) -> usize {
        self.tx.backlog_len(importance)
    }

    /// Whether [`Link::send`] would refuse a message of `importance` as congested.
    pub fn is_congested(&self, importance: usize) -> bool {
        self.tx.backlog_full(importance)
    }

    /// Packets sent and not yet acknowledged.
    pub fn transmit_queue_len(&self) -> usize {
        self.tx.transmit_len()
    }

    /// Current send (congestion) window in packets.
    pub fn window(&self) -> u16 {
        self.tx.window()
    }

    /// Queues a complete message built by the node layer: a data message (importance in the
    /// user field) or an internal message (system importance 4). It is fragmented when longer
    /// than the MSS (spec §5.12), bundled when it has to wait in the backlog (spec §5.11), and
    /// transmitted as far as the window allows. `w3` is set to our address; ack, seqno and
    /// broadcast ack are stamped when each packet enters the transmit queue.
    ///
    /// **Bundling of bursts** ([`LinkConfig::bundle_bursts`]). The kernel bundles only when
    /// the send window is full. With this option the endpoint also bundles the data messages
    /// (importance 0–3, not fragmented) handed over *at the same instant* `now` — a caller
    /// that reads its clock once per duty cycle hands over a cycle's messages at one instant.
    /// The first goes out at once, as always; the following ones wait in the backlog, where
    /// they are bundled, and [`Link::poll_timeout`] turns due at once, so the caller's next
    /// timer run (or an ack) sends them. A lone message is never delayed, and a burst costs a
    /// few frames instead of one per message. Receivers, the kernel's included, accept bundles
    /// at any time, so this changes nothing on the wire but the packing. Internal messages
    /// (name distribution, connection management) are sent as the kernel sends them.
    ///
    /// A full data backlog refuses the message ([`SendError::Congested`]); a full system
    /// backlog also takes the link down, as the kernel's node layer does (spec §5.5).
    pub fn send(
        &mut self,
        now: Instant,
        mut msg: Vec<u8>,
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) -> Result<(), SendError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(SendError::TooLarge);
        }
        let (size, importance, dest_node) = {
            let p = Packet::new_checked(&msg[..]).map_err(|_| SendError::Malformed)?;
            let user = User::from(p.user_raw());
            if p.version() != TIPC_VERSION || matches!(user, User::LinkProtocol | User::LinkConfig)
            {
                return Err(SendError::Malformed);
            }
            let dest = if p.header_len() >= 32 {
                p.dest_node()
            } else {
                self.cfg.peer_addr
            };
            (p.size(), importance_of(&p), dest)
        };
        msg.truncate(size);
        if !self.is_up() {
            return Err(SendError::NotUp);
        }
        if self.tx.backlog_full(importance) {
            self.stats.link_congs += 1;
            if importance == SYSTEM_IMPORTANCE {
                self.take_down(now, DownReason::Local, bc, out);
            }
            return Err(SendError::Congested {
                importance: importance as u8,
            });
        }
        Packet::new_unchecked(&mut msg[..]).set_prev_node(self.cfg.own_addr);
        let mss = self.mss() as usize;
        let stamp = self.stamp(bc);
        let (sent, burst, cork) = if msg.len() > mss {
            let frags = frag::fragment(&msg, mss, self.cfg.own_addr, dest_node, importance as u8)
                .ok_or(SendError::TooLarge)?;
            self.stats.sent_fragmented += 1;
            self.stats.sent_fragments += frags.len() as u64;
            let sent = self.tx.enqueue(
                frags,
                importance,
                mss,
                self.cfg.peer_addr,
                stamp,
                false,
                &mut out.transmit,
                &mut self.stats,
            );
            (sent, false, false)
        } else {
            let burst = importance < SYSTEM_IMPORTANCE;
            let cork = burst && self.cfg.bundle_bursts && self.burst_at == Some(now);
            let sent = self.tx.enqueue(
                core::iter::once(msg),
                importance,
                mss,
                self.cfg.peer_addr,
                stamp,
                cork,
                &mut out.transmit,
                &mut self.stats,
            );
            (sent, burst, cork)
        };
        if sent > 0 {
            self.rx.rcv_unacked = 0;
            if burst {
                self.burst_at = Some(now);
            }
        } else if cork {
            self.corked_since.get_or_insert(now);
        }
        Ok(())
    }

    /// A packet from the peer: the node layer has validated it with `Packet::new_checked`,
    /// checked destination node, previous node and contact gating, and routes here only the
    /// packets of this link. `bytes` is the message (`Packet::message()`); it is checked again,
    /// and nothing in it can make this call panic.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        bytes: &[u8],
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        let Ok(p) = Packet::new_checked(bytes) else {
            self.stats.dropped += 1;
            return;
        };
        if p.version() != TIPC_VERSION || p.non_seq() {
            self.stats.dropped += 1;
            return;
        }
        let msg = p.message();
        if User::from(p.user_raw()) == User::LinkProtocol {
            self.proto_rcv(now, msg, bc, out);
        } else {
            self.data_rcv(now, msg, bc, out);
        }
    }

    /// The node layer takes the link down (bearer disabled, node stopping, or a problem it
    /// noticed). The endpoint goes back to RESET with queues cleared and a new session, and the
    /// single RESET with peer_stopping = 1 goes out at once (spec §5.2). Emits
    /// [`LinkEvent::Down`] with `reason` if the link was up. Unlike the kernel, which does
    /// nothing to a link that is not up, this also restarts an establishing link, so that the
    /// peer learns we are stopping whatever its state.
    pub fn reset(&mut self, now: Instant, reason: DownReason, bc: &BcastCtx, out: &mut LinkOutput) {
        self.take_down(now, reason, bc, out);
    }

    /// Sends one STATE now (e.g. to acknowledge broadcast traffic quickly), with the probe bit
    /// if asked. Nothing is sent unless the link is up.
    pub fn send_state(&mut self, _now: Instant, probe: bool, bc: &BcastCtx, out: &mut LinkOutput) {
        self.build_state(
            proto::StateOpts {
                probe,
                ..proto::StateOpts::default()
            },
            bc,
            out,
        );
    }

    /// Administrative tolerance change (spec §5.6): adopt it (clamped to 50 ms..=30 s) and,
    /// if the link is up, send one STATE carrying it so that the peer adopts it too.
    pub fn set_tolerance(
        &mut self,
        _now: Instant,
        tolerance: Duration,
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        self.tolerance = tolerance.clamp(TOLERANCE_MIN, TOLERANCE_MAX);
        let ms = u16::try_from(self.tolerance.as_millis()).unwrap_or(u16::MAX);
        self.build_state(
            proto::StateOpts {
                tolerance_ms: ms,
                ..proto::StateOpts::default()
            },
            bc,
            out,
        );
    }

    /// Administrative priority change (spec §5.8): adopt it (at most 31) and, if the link is
    /// up, send one STATE carrying it; the peer adopts it and resets the link.
    pub fn set_priority(
        &mut self,
        _now: Instant,
        priority: u8,
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        self.priority = priority.min(MAX_PRIORITY);
        self.build_state(
            proto::StateOpts {
                priority: self.priority,
                ..proto::StateOpts::default()
            },
            bc,
            out,
        );
    }

    /// What goes into packets entering the transmit queue now.
    fn stamp(&self, bc: &BcastCtx) -> Stamp {
        Stamp {
            ack: self.rx.rcv_nxt.wrapping_sub(1),
            bcast_ack: bc.rcv_ack,
            own_addr: self.cfg.own_addr,
        }
    }

    /// Moves backlog into the window (ending any hold-back for bundling: what does not fit
    /// waits for acks as usual); sending resets the explicit-ack counter.
    fn advance_backlog(&mut self, bc: &BcastCtx, out: &mut LinkOutput) {
        self.corked_since = None;
        let stamp = self.stamp(bc);
        if self
            .tx
            .advance_backlog(stamp, &mut out.transmit, &mut self.stats)
            > 0
        {
            self.rx.rcv_unacked = 0;
        }
    }

    /// Applies an FSM event; true when it took a working link down.
    fn fsm(&mut self, evt: FsmEvent) -> bool {
        let t = self.state.step(evt);
        self.state = t.state;
        t.down
    }

    /// ESTABLISHING → ESTABLISHED: report Up and send the STATE that must go first on a new
    /// link (spec §5.3 step 3).
    fn link_up(&mut self, bc: &BcastCtx, out: &mut LinkOutput) {
        self.fsm(FsmEvent::Establish);
        if !self.is_up() {
            return;
        }
        self.silent_intv_cnt = 0;
        self.checkpoint = None;
        out.events.push(LinkEvent::Up);
        self.stats.sent_acks += 1;
        self.build_state(proto::StateOpts::default(), bc, out);
    }

    /// A local failure (or the node layer's reset): FAILURE, then the link-down handling.
    fn take_down(&mut self, now: Instant, reason: DownReason, bc: &BcastCtx, out: &mut LinkOutput) {
        let was_up = self.fsm(FsmEvent::Failure);
        self.link_down(now, reason, was_up, bc, out);
    }

    /// The node layer's link-down handling (spec §5.2): RESET event, endpoint reset (queues
    /// cleared, session + 1, peer session − 1, MTU back to advertised), Down if the link was
    /// up, and at once a RESET with peer_stopping if the endpoint is now in RESET — or an
    /// ACTIVATE if the peer's plain RESET took it down and it is now establishing.
    fn link_down(
        &mut self,
        _now: Instant,
        reason: DownReason,
        was_up: bool,
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        self.fsm(FsmEvent::Reset);
        self.reset_endpoint();
        if was_up {
            out.events.push(LinkEvent::Down { reason });
        }
        let stopping = self.state == LinkState::Reset;
        self.build_reset_msg(stopping, bc, out);
    }

    /// The kernel's `tipc_link_reset`: forget the session and everything in flight.
    fn reset_endpoint(&mut self) {
        self.in_session = false;
        // Forces a re-sync of the peer session before the link can come up again.
        self.peer_session = self.peer_session.wrapping_sub(1);
        self.session = self.session.wrapping_add(1);
        self.mtu = self.cfg.mtu;
        self.tx.reset();
        self.burst_at = None;
        self.corked_since = None;
        self.rx.reset();
        self.reasm.clear();
        self.snd_nxt_state = 1;
        self.rcv_nxt_state = 1;
        self.silent_intv_cnt = 0;
        self.rst_cnt = 0;
        self.checkpoint = None;
    }

    /// Moves both sequence spaces (tests of the 16-bit wrap). Only valid on an up link with
    /// nothing in flight or parked.
    #[cfg(test)]
    pub(super) fn jump_sequence(&mut self, snd_nxt: u16, rcv_nxt: u16) {
        assert_eq!(self.tx.transmit_len() + self.rx.deferred_len(), 0);
        self.tx.jump(snd_nxt);
        self.rx.rcv_nxt = rcv_nxt;
    }

    /// Whether both ends have a capability: the kernel decides what it sends from our
    /// advertised bits and what it expects from the peer's, so a feature is in use on the
    /// wire only when both advertise it.
    fn both_have(&self, cap: u16) -> bool {
        self.cfg.own_caps & cap != 0 && self.cfg.peer_caps & cap != 0
    }
}

/// Importance class of a message for the backlog (spec §1.5): the user for data without an
/// error code, `w9[0:2]` for fragments and bundles, otherwise system (4).
fn importance_of(p: &Packet<&[u8]>) -> usize {
    let user = p.user_raw();
    let error = (p.word(1) >> 25) & 0xf;
    match user {
        0..=3 if error == 0 => usize::from(user),
        6 | 12 => ((p.word(9) & 7) as usize).min(SYSTEM_IMPORTANCE),
        _ => SYSTEM_IMPORTANCE,
    }
}
