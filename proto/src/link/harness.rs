//! A deterministic two-link harness for tests: two [`Link`]s wired back to back through a
//! simulated network with a virtual clock, after quinn-proto's `Pair` (`shared/STYLE.md` §2.7).
//!
//! Every packet a link transmits is scheduled for delivery to the other link after a base
//! latency plus a random jitter (which reorders packets), unless it is lost; it may also be
//! duplicated. A seeded [`Rng`] drives every choice, so a seed reproduces a run exactly. The
//! clock jumps from event to event: packet arrivals and the links' timer deadlines.
//! Applications are queues of messages each side pushes into its link as fast as the link
//! accepts them (a congested link makes them wait).

use core::cmp::Reverse;
use core::time::Duration;
use std::collections::{BinaryHeap, VecDeque};

use super::{BcastCtx, Link, LinkConfig, LinkEvent, LinkOutput, SendError};
use crate::rand::Rng;
use crate::time::Instant;

/// Network behaviour.
#[derive(Debug, Clone, Copy)]
pub(super) struct NetConfig {
    /// Fixed one-way delay.
    pub(super) latency: Duration,
    /// Extra random delay in 0..jitter, drawn per packet.
    pub(super) jitter: Duration,
    /// Probability that a packet is lost.
    pub(super) loss: f64,
    /// Probability that a packet is delivered twice.
    pub(super) dup: f64,
}

impl NetConfig {
    /// A perfect network with 1 ms latency.
    pub(super) fn clean() -> Self {
        Self {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            dup: 0.0,
        }
    }
}

/// One end: its link and what happened to it.
#[derive(Debug)]
pub(super) struct Side {
    pub(super) link: Link,
    /// Messages the link delivered, in order.
    pub(super) delivered: Vec<Vec<u8>>,
    /// Events with the time they happened.
    pub(super) events: Vec<(Instant, LinkEvent)>,
    /// Messages waiting to be sent.
    pub(super) pending: VecDeque<Vec<u8>>,
    /// Time a packet last arrived at this side.
    pub(super) last_rx: Option<Instant>,
    /// Packets this side transmitted.
    pub(super) transmitted: u64,
    /// What the broadcast layer says (constant in these tests).
    pub(super) bc: BcastCtx,
}

impl Side {
    fn new(link: Link) -> Self {
        Self {
            link,
            delivered: Vec::new(),
            events: Vec::new(),
            pending: VecDeque::new(),
            last_rx: None,
            transmitted: 0,
            bc: BcastCtx::default(),
        }
    }

    /// Whether the last event was Up.
    pub(super) fn is_up(&self) -> bool {
        self.link.is_up()
    }
}

/// A packet on its way: arrival time, a tie-breaking sequence number, destination side.
type Flight = Reverse<(Instant, u64, usize, Vec<u8>)>;

/// Two links and the network between them.
#[derive(Debug)]
pub(super) struct Pair {
    pub(super) now: Instant,
    pub(super) sides: [Side; 2],
    pub(super) net: NetConfig,
    /// While set for a side, everything that side transmits is lost.
    pub(super) mute: [bool; 2],
    rng: Rng,
    flights: BinaryHeap<Flight>,
    next_flight: u64,
    /// Packets lost by the network.
    pub(super) lost: u64,
}

impl Pair {
    /// Two links created at time 0 (b a little later, so their timers are out of phase).
    pub(super) fn new(seed: u64, a: LinkConfig, b: LinkConfig, net: NetConfig) -> Self {
        let mut rng = Rng::new(seed);
        let offset = Duration::from_micros(rng.below(100_000));
        Self {
            now: Instant::ZERO,
            sides: [
                Side::new(Link::new(a, Instant::ZERO)),
                Side::new(Link::new(b, Instant::ZERO + offset)),
            ],
            net,
            mute: [false; 2],
            rng,
            flights: BinaryHeap::new(),
            next_flight: 0,
            lost: 0,
        }
    }

    /// Takes a link's output: schedules its packets and records the rest.
    fn absorb(&mut self, i: usize, out: LinkOutput) {
        for pkt in out.transmit {
            self.sides[i].transmitted += 1;
            if self.mute[i] || self.rng.chance(self.net.loss) {
                self.lost += 1;
                continue;
            }
            let copies = if self.rng.chance(self.net.dup) { 2 } else { 1 };
            for _ in 0..copies {
                let jitter = self.net.jitter.as_nanos() as u64;
                let delay = self.net.latency + Duration::from_nanos(self.rng.below(jitter));
                self.flights.push(Reverse((
                    self.now + delay,
                    self.next_flight,
                    1 - i,
                    pkt.clone(),
                )));
                self.next_flight += 1;
            }
        }
        let s = &mut self.sides[i];
        s.delivered.extend(out.deliver);
        let now = self.now;
        s.events.extend(out.events.into_iter().map(|e| (now, e)));
    }

    /// Pushes waiting messages into a link until it refuses one.
    fn pump(&mut self, i: usize) {
        loop {
            let s = &mut self.sides[i];
            let Some(msg) = s.pending.front().cloned() else {
                return;
            };
            let mut out = LinkOutput::default();
            let bc = s.bc;
            match s.link.send(self.now, msg, &bc, &mut out) {
                Ok(()) => {
                    s.pending.pop_front();
                    self.absorb(i, out);
                }
                Err(SendError::Congested { .. } | SendError::NotUp) => {
                    self.absorb(i, out);
                    return;
                }
                Err(e) => panic!("send failed: {e}"),
            }
        }
    }

    /// Advances to the next event and processes everything due then. False when nothing is
    /// scheduled.
    pub(super) fn step(&mut self) -> bool {
        let mut next = self.flights.peek().map(|Reverse((t, ..))| *t);
        for s in &self.sides {
            if let Some(t) = s.link.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        while self
            .flights
            .peek()
            .is_some_and(|Reverse((t, ..))| *t <= self.now)
        {
            let Some(Reverse((_, _, to, pkt))) = self.flights.pop() else {
                break;
            };
            let mut out = LinkOutput::default();
            let s = &mut self.sides[to];
            s.last_rx = Some(self.now);
            let bc = s.bc;
            s.link.handle_packet(self.now, &pkt, &bc, &mut out);
            self.absorb(to, out);
        }
        for i in 0..2 {
            let mut out = LinkOutput::default();
            let s = &mut self.sides[i];
            let bc = s.bc;
            s.link.handle_timeout(self.now, &bc, &mut out);
            self.absorb(i, out);
        }
        self.pump(0);
        self.pump(1);
        true
    }

    /// Steps until `done` holds (true) or the clock passes `deadline` (false).
    pub(super) fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Self) -> bool,
    ) -> bool {
        while !done(self) {
            if self.now > deadline || !self.step() {
                return false;
            }
        }
        true
    }

    /// Steps until both links are up.
    pub(super) fn establish(&mut self, deadline: Instant) -> bool {
        self.run_until(deadline, |p| p.sides[0].is_up() && p.sides[1].is_up())
    }

    /// Steps until both sides delivered `n[i]` messages and nothing is unacknowledged.
    pub(super) fn drain(&mut self, deadline: Instant, n: [usize; 2]) -> bool {
        self.run_until(deadline, |p| {
            (0..2).all(|i| {
                let s = &p.sides[i];
                s.delivered.len() >= n[i]
                    && s.pending.is_empty()
                    && s.link.transmit_queue_len() == 0
                    && (0..5).all(|imp| s.link.backlog_len(imp) == 0)
            })
        })
    }
}

/// A DIRECT data message of importance `imp` from `own` to `peer` with `len` bytes of data:
/// the index in the first 4 data bytes, then a pattern derived from it.
pub(super) fn data_msg(own: u32, peer: u32, imp: u8, index: u32, len: usize) -> Vec<u8> {
    let size = 32 + len;
    let mut m = vec![0u8; size];
    let w0 = (2u32 << 29) | (u32::from(imp) << 25) | (8 << 21) | size as u32;
    m[0..4].copy_from_slice(&w0.to_be_bytes());
    m[4..8].copy_from_slice(&(3u32 << 29).to_be_bytes());
    m[12..16].copy_from_slice(&own.to_be_bytes());
    m[16..20].copy_from_slice(&1000u32.to_be_bytes());
    m[20..24].copy_from_slice(&2000u32.to_be_bytes());
    m[24..28].copy_from_slice(&own.to_be_bytes());
    m[28..32].copy_from_slice(&peer.to_be_bytes());
    for (k, b) in m[32..].iter_mut().enumerate() {
        *b = (index as usize).wrapping_mul(31).wrapping_add(k) as u8;
    }
    if len >= 4 {
        m[32..36].copy_from_slice(&index.to_be_bytes());
    }
    m
}

/// The data part of a delivered message (what the sender chose; link words differ).
pub(super) fn data_of(msg: &[u8]) -> &[u8] {
    msg.get(32..).unwrap_or(&[])
}
