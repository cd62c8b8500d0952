//! Tests of the simulator itself, with small fake nodes: every fault must drop exactly what it
//! claims, and a seed must fully determine a run.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};

use super::seeds::seeds_from;
use super::*;

const HELLO: u8 = b'H';
const REPLY: u8 = b'R';
const DATA: u8 = b'D';
const ACK: u8 = b'A';

const B0: BearerId = BearerId(0);
const B1: BearerId = BearerId(1);

fn eth(n: u8) -> MediaAddr {
    MediaAddr::Eth([0x02, 0, 0, 0, 0, n])
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn us(n: u64) -> Instant {
    Instant::from_nanos(n * 1000)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rx {
    at: Instant,
    bearer: BearerId,
    src: MediaAddr,
    bytes: Vec<u8>,
}

impl Rx {
    fn kind(&self) -> u8 {
        self.bytes[0]
    }

    fn seq(&self) -> u32 {
        u32::from_be_bytes([self.bytes[1], self.bytes[2], self.bytes[3], self.bytes[4]])
    }
}

/// A node that sends `burst` frames of `kind` to `dest` every `period` for `ticks` ticks
/// (numbered from 0), logs everything it receives, and with `reply` answers each hello with a
/// unicast reply carrying the hello's number.
#[derive(Debug)]
struct Fake {
    bearer: BearerId,
    dest: Dest,
    kind: u8,
    period: Duration,
    next: Option<Instant>,
    ticks: u64,
    burst: u32,
    size: usize,
    reply: bool,
    seq: u32,
    out: VecDeque<Transmit>,
    rx: Vec<Rx>,
}

impl Fake {
    fn listener() -> Self {
        Self {
            bearer: B0,
            dest: Dest::Broadcast,
            kind: DATA,
            period: Duration::from_millis(1),
            next: None,
            ticks: 0,
            burst: 1,
            size: 5,
            reply: false,
            seq: 0,
            out: VecDeque::new(),
            rx: Vec::new(),
        }
    }

    /// Broadcasts a hello every `period` from `start` on, and replies to hellos.
    fn hello(start: Instant, period: Duration) -> Self {
        Self {
            kind: HELLO,
            period,
            next: Some(start),
            ticks: u64::MAX,
            reply: true,
            ..Self::listener()
        }
    }

    /// Sends `count` data frames to `dest`, one every `period`, from time zero.
    fn sender(dest: Dest, period: Duration, count: u64) -> Self {
        Self {
            dest,
            period,
            next: Some(Instant::ZERO),
            ticks: count,
            ..Self::listener()
        }
    }

    fn replying(mut self) -> Self {
        self.reply = true;
        self
    }

    fn on(mut self, bearer: BearerId) -> Self {
        self.bearer = bearer;
        self
    }

    fn size(mut self, size: usize) -> Self {
        self.size = size.max(5);
        self
    }

    fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    fn frame(kind: u8, seq: u32, size: usize) -> Vec<u8> {
        let mut v = vec![0u8; size.max(5)];
        v[0] = kind;
        v[1..5].copy_from_slice(&seq.to_be_bytes());
        v
    }

    fn seqs(&self, kind: u8) -> Vec<u32> {
        self.rx
            .iter()
            .filter(|r| r.kind() == kind)
            .map(Rx::seq)
            .collect()
    }
}

impl SimNode for Fake {
    fn handle_frame(&mut self, now: Instant, bearer: BearerId, src: MediaAddr, bytes: &[u8]) {
        let rx = Rx {
            at: now,
            bearer,
            src,
            bytes: bytes.to_vec(),
        };
        if self.reply && rx.kind() == HELLO {
            self.out.push_back(Transmit {
                bearer,
                dest: Dest::Unicast(src),
                data: Self::frame(REPLY, rx.seq(), 5),
            });
        }
        self.rx.push(rx);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(next) = self.next else { return };
        if next > now {
            return;
        }
        for _ in 0..self.burst {
            self.out.push_back(Transmit {
                bearer: self.bearer,
                dest: self.dest,
                data: Self::frame(self.kind, self.seq, self.size),
            });
            self.seq += 1;
        }
        self.ticks -= 1;
        self.next = (self.ticks > 0).then(|| next + self.period);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
}

/// Two nodes on one segment: `a` at eth(1) on bearer 0, `b` at eth(2) on bearer 1 (a
/// different slot, to check the receiver's own bearer id is what it is told).
fn pair(
    seed: u64,
    cfg: SegmentConfig,
    a: Fake,
    b: Fake,
) -> (Network<Fake>, NodeIdx, NodeIdx, SegmentId) {
    let mut net = Network::new(seed);
    let seg = net.add_segment(cfg);
    let na = net.add_node(a);
    let nb = net.add_node(b);
    net.attach(na, B0, seg, eth(1));
    net.attach(nb, B1, seg, eth(2));
    (net, na, nb, seg)
}

/// `count` data frames from eth(1) to eth(2), one every `period`, with `cfg`.
fn stream(
    seed: u64,
    cfg: SegmentConfig,
    period: Duration,
    count: u64,
) -> (Network<Fake>, NodeIdx, NodeIdx, SegmentId) {
    pair(
        seed,
        cfg,
        Fake::sender(Dest::Unicast(eth(2)), period, count),
        Fake::listener().on(B1),
    )
}

#[test]
fn latency_is_applied_in_virtual_time() {
    let cfg = SegmentConfig {
        latency: Duration::from_millis(1),
        ..SegmentConfig::default()
    };
    let (mut net, a, b, _) = pair(
        1,
        cfg,
        Fake::hello(ms(0), Duration::from_millis(100)),
        Fake::listener().on(B1).replying(),
    );
    net.run_until(ms(250));
    let rb = &net.node(b).rx;
    assert_eq!(
        rb.iter().map(|r| r.at).collect::<Vec<_>>(),
        [ms(1), ms(101), ms(201)]
    );
    assert!(
        rb.iter()
            .all(|r| r.bearer == B1 && r.src == eth(1) && r.kind() == HELLO)
    );
    let ra = &net.node(a).rx;
    assert_eq!(
        ra.iter().map(|r| r.at).collect::<Vec<_>>(),
        [ms(2), ms(102), ms(202)]
    );
    assert!(
        ra.iter()
            .all(|r| r.bearer == B0 && r.src == eth(2) && r.kind() == REPLY)
    );
    assert_eq!(net.node(a).seqs(REPLY), [0, 1, 2]);
    assert_eq!(net.now(), ms(250));
    let s = net.stats();
    assert_eq!((s.sent, s.delivered, s.dropped()), (6, 6, 0));
    assert_eq!(net.node_stats(b).received, 3);
    assert_eq!(net.node_stats(a).tx.sent, 3);
}

#[test]
fn jitter_stays_in_bounds_and_never_reorders() {
    let cfg = SegmentConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(1),
        ..SegmentConfig::default()
    };
    let period = Duration::from_micros(100);
    let (mut net, _, b, _) = stream(3, cfg, period, 1000);
    net.run_for(Duration::from_secs(1));
    let rx = &net.node(b).rx;
    assert_eq!(rx.len(), 1000);
    let mut delays = Vec::new();
    for (i, r) in rx.iter().enumerate() {
        assert_eq!(r.seq() as usize, i, "jitter reordered a path");
        let sent = Instant::from_nanos(i as u64 * 100_000);
        let d = r.at - sent;
        assert!(
            d >= Duration::from_millis(1) && d <= Duration::from_millis(2),
            "{i}: {d:?}"
        );
        delays.push(d);
    }
    delays.sort();
    delays.dedup();
    assert!(
        delays.len() > 500,
        "jitter barely varies: {} distinct delays",
        delays.len()
    );
}

#[test]
fn bandwidth_adds_serialization_delay_and_queues() {
    let cfg = SegmentConfig {
        bandwidth_bps: Some(10_000_000),
        ..SegmentConfig::default()
    };
    // Ten 1250-byte frames at once: 1 ms each on the wire at 10 Mb/s.
    let sender = Fake::sender(Dest::Unicast(eth(2)), Duration::from_secs(1), 1)
        .size(1250)
        .burst(10);
    let (mut net, _, b, _) = pair(1, cfg, sender, Fake::listener().on(B1));
    net.run_for(Duration::from_millis(20));
    let at: Vec<_> = net.node(b).rx.iter().map(|r| r.at).collect();
    let want: Vec<_> = (1..=10)
        .map(|i| ms(i) + Duration::from_micros(50))
        .collect();
    assert_eq!(at, want);
}

/// `n` Bernoulli(p) trials landed within five standard deviations of the mean.
fn assert_rate(what: &str, hits: u64, n: u64, p: f64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (hits as f64 - mean).abs() <= 5.0 * sd,
        "{what}: {hits} of {n}, expected {mean:.0} ± {:.0}",
        5.0 * sd
    );
}

#[test]
fn loss_rate_matches_config() {
    run_seeds("loss_rate", seeds(3), |seed| {
        let cfg = SegmentConfig {
            loss: 0.2,
            ..SegmentConfig::default()
        };
        let (mut net, a, b, seg) = stream(seed, cfg, Duration::from_micros(10), 10_000);
        net.run_for(Duration::from_secs(1));
        let got = net.node(b).rx.len() as u64;
        assert_rate("delivered", got, 10_000, 0.8);
        let s = net.segment_stats(seg);
        assert_eq!(
            (s.sent, s.delivered, s.dropped_loss),
            (10_000, got, 10_000 - got)
        );
        assert_eq!(net.node_stats(a).tx, *s);
        assert_eq!(net.stats(), s);
        // Losses are independent: the survivors are still in order and unique.
        let seqs = net.node(b).seqs(DATA);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    });
}

#[test]
fn duplicate_rate_matches_config() {
    run_seeds("duplicate_rate", seeds(3), |seed| {
        let cfg = SegmentConfig {
            duplicate: 0.1,
            ..SegmentConfig::default()
        };
        let (mut net, _, b, seg) = stream(seed, cfg, Duration::from_micros(10), 10_000);
        net.run_for(Duration::from_secs(1));
        let got = net.node(b).rx.len() as u64;
        let dups = got - 10_000;
        assert_rate("duplicated", dups, 10_000, 0.1);
        assert_eq!(net.segment_stats(seg).duplicated, dups);
        let mut seqs = net.node(b).seqs(DATA);
        let n = seqs.len();
        seqs.dedup(); // a duplicate arrives right behind its original
        assert_eq!((seqs.len(), n as u64), (10_000, got));
    });
}

#[test]
fn reorder_rate_matches_config_and_later_frames_overtake() {
    run_seeds("reorder_rate", seeds(3), |seed| {
        let cfg = SegmentConfig {
            reorder: 0.1,
            reorder_delay: Duration::from_micros(500),
            ..SegmentConfig::default()
        };
        let (mut net, _, b, seg) = stream(seed, cfg, Duration::from_micros(100), 10_000);
        net.run_for(Duration::from_secs(2));
        let reordered = net.segment_stats(seg).reordered;
        assert_rate("reordered", reordered, 10_000, 0.1);
        let seqs = net.node(b).seqs(DATA);
        assert_eq!(seqs.len(), 10_000);
        let mut max = None;
        let mut late = 0;
        for s in seqs {
            if max.is_some_and(|m| s < m) {
                late += 1;
            }
            max = max.max(Some(s));
        }
        // Each held frame is overtaken by the next (un-held) one, save a held tail.
        assert!(
            late <= reordered && late + 5 >= reordered,
            "late {late}, reordered {reordered}"
        );
    });
}

#[test]
fn partition_drops_exactly_while_active() {
    let cfg = SegmentConfig {
        latency: Duration::from_micros(100),
        ..SegmentConfig::default()
    };
    let (mut net, a, b, seg) = stream(1, cfg, Duration::from_millis(1), 40);
    net.schedule(ms(10), Fault::Partition(a, b));
    net.schedule(ms(20), Fault::Heal(b, a)); // either order names the pair
    // Frame 30 leaves at 30 ms and is on the wire when the cut comes at 30.05 ms.
    net.schedule(us(30_050), Fault::Partition(b, a));
    net.schedule(us(30_200), Fault::Heal(a, b));
    net.run_for(Duration::from_millis(50));
    let want: Vec<u32> = (0..10).chain(20..30).chain(31..40).collect();
    assert_eq!(net.node(b).seqs(DATA), want);
    assert_eq!(net.segment_stats(seg).dropped_partition, 11);
    assert_eq!(net.stats().dropped(), 11);
}

#[test]
fn failed_bearer_drops_in_and_out_exactly_while_down() {
    let (mut net, a, b, seg) = stream(1, SegmentConfig::default(), Duration::from_millis(1), 40);
    // Receiver down for frames 10..=19, sender down for 25 and 26.
    net.schedule(
        ms(10),
        Fault::SetBearerUp {
            node: b,
            bearer: B1,
            up: false,
        },
    );
    net.schedule(
        ms(20),
        Fault::SetBearerUp {
            node: b,
            bearer: B1,
            up: true,
        },
    );
    net.schedule(
        ms(25),
        Fault::SetBearerUp {
            node: a,
            bearer: B0,
            up: false,
        },
    );
    net.schedule(
        ms(27),
        Fault::SetBearerUp {
            node: a,
            bearer: B0,
            up: true,
        },
    );
    net.run_for(Duration::from_millis(50));
    let want: Vec<u32> = (0..10).chain(20..25).chain(27..40).collect();
    assert_eq!(net.node(b).seqs(DATA), want);
    assert_eq!(net.segment_stats(seg).dropped_bearer_down, 12);

    // A frame already on the wire is lost when the receiving bearer fails under it.
    let (mut net, _, b, _) = stream(1, SegmentConfig::default(), Duration::from_millis(1), 3);
    net.schedule(
        us(1_020),
        Fault::SetBearerUp {
            node: b,
            bearer: B1,
            up: false,
        },
    );
    net.schedule(
        us(1_100),
        Fault::SetBearerUp {
            node: b,
            bearer: B1,
            up: true,
        },
    );
    net.run_for(Duration::from_millis(5));
    assert_eq!(net.node(b).seqs(DATA), [0, 2]);
}

#[test]
fn isolation_cuts_one_node_from_all_others() {
    let mut net = Network::new(1);
    let seg = net.add_segment(SegmentConfig::default());
    let period = Duration::from_millis(10);
    let n: Vec<_> = (0..3u8)
        .map(|i| {
            let idx = net.add_node(Fake::hello(us(u64::from(i)), period));
            net.attach(idx, B0, seg, eth(i + 1));
            idx
        })
        .collect();
    net.schedule(ms(25), Fault::Isolate(n[2]));
    net.schedule(ms(55), Fault::Rejoin(n[2]));
    net.run_until(ms(75));
    // Hellos go out at ~0, 10, …, 70 ms: those at 30, 40, 50 ms are cut for node 2 only.
    let hellos_from = |to: NodeIdx, src: u8| {
        net.node(to)
            .rx
            .iter()
            .filter(|r| r.kind() == HELLO && r.src == eth(src))
            .map(Rx::seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(hellos_from(n[0], 2), (0..8).collect::<Vec<_>>());
    assert_eq!(hellos_from(n[2], 1), [0, 1, 2, 6, 7]);
    assert_eq!(hellos_from(n[0], 3), [0, 1, 2, 6, 7]);
    assert_eq!(net.node_stats(n[2]).tx.dropped_partition, 6);
    // Node 0's and node 1's hellos to node 2, 3 each; no reply is ever cut, since no hello
    // crossed the cut to provoke one.
    assert_eq!(net.stats().dropped_partition, 6 + 6);
}

#[test]
fn broadcast_reaches_every_other_attachment_of_the_segment_only() {
    let mut net = Network::new(1);
    let s0 = net.add_segment(SegmentConfig::default());
    let s1 = net.add_segment(SegmentConfig::default());
    let a = net.add_node(Fake::sender(Dest::Broadcast, Duration::from_secs(1), 1));
    let others: Vec<_> = (0..4).map(|_| net.add_node(Fake::listener())).collect();
    net.attach(a, B0, s0, eth(1));
    for (i, &n) in others[..3].iter().enumerate() {
        net.attach(n, B0, s0, eth(10 + i as u8));
    }
    // A dual-homed listener: its other plane must not see the frame.
    net.attach(others[0], B1, s1, eth(20));
    net.attach(others[3], B0, s1, eth(21));
    net.run_for(Duration::from_millis(1));
    for &n in &others[..3] {
        assert_eq!(net.node(n).rx.len(), 1);
        assert_eq!(net.node(n).rx[0].bearer, B0);
    }
    assert!(net.node(others[3]).rx.is_empty());
    assert!(net.node(a).rx.is_empty(), "a broadcast must not loop back");
    assert_eq!(net.segment_stats(s0).sent, 1);
    assert_eq!(net.segment_stats(s0).delivered, 3);
    assert_eq!(*net.segment_stats(s1), FrameStats::default());
}

#[test]
fn mtu_drops_oversized_frames() {
    let mut net = Network::new(1);
    let seg = net.add_segment(SegmentConfig::default());
    let ok = net.add_node(Fake::sender(Dest::Broadcast, Duration::from_secs(1), 1).size(1500));
    let big = net.add_node(Fake::sender(Dest::Broadcast, Duration::from_secs(1), 1).size(1501));
    let rx = net.add_node(Fake::listener());
    net.attach(ok, B0, seg, eth(1));
    net.attach(big, B0, seg, eth(2));
    net.attach(rx, B0, seg, eth(3));
    // A narrower receive path from `ok` to `rx`, as a receiver with a smaller MTU.
    net.set_direction_config(
        seg,
        ok,
        rx,
        Some(SegmentConfig {
            mtu: 1000,
            ..SegmentConfig::default()
        }),
    );
    net.run_for(Duration::from_millis(1));
    let sizes = |n: NodeIdx| {
        net.node(n)
            .rx
            .iter()
            .map(|r| r.bytes.len())
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(big), [1500]);
    assert_eq!(sizes(rx), Vec::<usize>::new());
    assert_eq!(sizes(ok), Vec::<usize>::new());
    // One drop at the sender for the giant, one per-copy drop on the narrow path.
    assert_eq!(net.node_stats(big).tx.dropped_mtu, 1);
    assert_eq!(net.node_stats(ok).tx.dropped_mtu, 1);
    assert_eq!(net.segment_stats(seg).delivered, 1);
}

#[test]
fn unicast_to_unknown_address_and_unattached_bearer_are_counted() {
    let mut net = Network::new(1);
    let seg = net.add_segment(SegmentConfig::default());
    let a = net.add_node(Fake::sender(
        Dest::Unicast(eth(99)),
        Duration::from_secs(1),
        1,
    ));
    let b = net.add_node(Fake::sender(Dest::Broadcast, Duration::from_secs(1), 1).on(B1));
    let me = net.add_node(Fake::sender(
        Dest::Unicast(eth(3)),
        Duration::from_secs(1),
        1,
    ));
    net.attach(a, B0, seg, eth(1));
    net.attach(b, B0, seg, eth(2)); // it sends on B1, never attached
    net.attach(me, B0, seg, eth(3)); // unicast to itself: no loopback
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.node_stats(a).tx.dropped_no_addr, 1);
    assert_eq!(net.node_stats(b).tx.dropped_unattached, 1);
    assert_eq!(net.node_stats(me).tx.dropped_no_addr, 1);
    assert_eq!(net.segment_stats(seg).dropped_no_addr, 2);
    // An unattached send belongs to no segment.
    assert_eq!(net.segment_stats(seg).sent, 2);
    assert_eq!(net.stats().sent, 3);
    assert_eq!(net.stats().dropped(), 3);
    assert_eq!(net.stats().delivered, 0);
}

#[test]
fn direction_override_is_one_way() {
    let (mut net, a, b, seg) = pair(
        1,
        SegmentConfig::default(),
        Fake::hello(ms(0), Duration::from_secs(1)),
        Fake::listener().on(B1).replying(),
    );
    let slow = SegmentConfig {
        latency: Duration::from_millis(5),
        ..SegmentConfig::default()
    };
    net.set_direction_config(seg, a, b, Some(slow));
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.node(b).rx[0].at, ms(5));
    assert_eq!(net.node(a).rx[0].at, ms(5) + Duration::from_micros(50));
    net.set_direction_config(seg, a, b, None);
    net.run_until(ms(1010));
    assert_eq!(net.node(b).rx[1].at, ms(1000) + Duration::from_micros(50));
}

#[test]
fn scheduled_segment_faults_take_effect_at_their_time() {
    let (mut net, _, b, seg) = stream(1, SegmentConfig::default(), Duration::from_millis(1), 20);
    net.schedule(
        ms(10),
        Fault::SegmentFaults {
            segment: seg,
            loss: 1.0,
            duplicate: 0.0,
            reorder: 0.0,
        },
    );
    net.run_for(Duration::from_millis(30));
    assert_eq!(net.node(b).seqs(DATA), (0..10).collect::<Vec<_>>());
    assert_eq!(net.segment_stats(seg).dropped_loss, 10);
    net.set_segment_faults(seg, 0.0, 1.0, 0.0);
    assert_eq!(net.segment_config(seg).duplicate, 1.0);
    assert_eq!(net.segment_config(seg).loss, 0.0);
}

/// A canonical run with every random fault at once, for the determinism tests.
fn chaotic_run(seed: u64) -> (Vec<TraceEvent>, Vec<u8>, Vec<Vec<Rx>>) {
    let cfg = SegmentConfig {
        jitter: Duration::from_micros(200),
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.1,
        reorder_delay: Duration::from_micros(300),
        ..SegmentConfig::default()
    };
    let mut net = Network::new(seed);
    net.set_tap(true);
    net.set_trace(true);
    let seg = net.add_segment(cfg);
    for i in 0..4u8 {
        let n = net.add_node(Fake::hello(us(u64::from(i) * 7), Duration::from_millis(10)));
        net.attach(n, B0, seg, eth(i + 1));
    }
    net.schedule(ms(100), Fault::Partition(NodeIdx(0), NodeIdx(3)));
    net.schedule(ms(150), Fault::HealAll);
    net.run_until(ms(300));
    let rx = net.nodes().map(|(_, n)| n.rx.clone()).collect();
    (net.trace().to_vec(), net.pcap_bytes(), rx)
}

#[test]
fn same_seed_same_run_different_seed_different_run() {
    let (t1, p1, r1) = chaotic_run(7);
    let (t2, p2, r2) = chaotic_run(7);
    assert_eq!(t1, t2);
    assert_eq!(p1, p2);
    assert_eq!(r1, r2);
    assert!(
        t1.len() > 1000,
        "trace too small to mean anything: {}",
        t1.len()
    );
    let (t3, p3, _) = chaotic_run(8);
    assert_ne!(t1, t3);
    assert_ne!(p1, p3);
}

#[test]
fn run_until_cond_is_bounded() {
    let (mut net, a, _, _) = pair(
        1,
        SegmentConfig::default(),
        Fake::hello(ms(0), Duration::from_millis(100)),
        Fake::listener().on(B1).replying(),
    );
    // True as soon as the third reply lands, at 200.1 ms.
    let got = net.run_until_cond(Duration::from_secs(10), |n| n.node(a).rx.len() >= 3);
    assert!(got);
    assert_eq!(net.now(), ms(200) + Duration::from_micros(100));
    // Never true: stops at the bound, with events still pending.
    let start = net.now();
    assert!(!net.run_until_cond(Duration::from_secs(1), |_| false));
    assert_eq!(net.now(), start + Duration::from_secs(1));
    // Already true: no step at all.
    assert!(net.run_until_cond(Duration::from_secs(1), |_| true));
    assert_eq!(net.now(), start + Duration::from_secs(1));

    // Nothing scheduled at all: step says so, and the bound is still honoured.
    let (mut idle, _, _, _) = pair(
        1,
        SegmentConfig::default(),
        Fake::listener(),
        Fake::listener().on(B1),
    );
    assert!(!idle.step());
    assert_eq!(idle.now(), Instant::ZERO);
    assert!(!idle.run_until_cond(Duration::from_millis(5), |_| false));
    assert_eq!(idle.now(), ms(5));
}

#[test]
fn commands_through_node_mut_go_out_at_the_next_step() {
    let (mut net, a, b, _) = pair(
        1,
        SegmentConfig::default(),
        Fake::listener(),
        Fake::listener().on(B1),
    );
    net.run_until(ms(3));
    net.node_mut(a).out.push_back(Transmit {
        bearer: B0,
        dest: Dest::Unicast(eth(2)),
        data: Fake::frame(DATA, 42, 5),
    });
    assert!(net.step());
    assert_eq!(net.now(), ms(3) + Duration::from_micros(50));
    assert_eq!(net.node(b).seqs(DATA), [42]);
    assert_eq!(net.in_flight(), 0);
    assert!(!net.step());
}

/// Stop-and-wait: the sender (bearer 0) sends `total` numbered frames one at a time,
/// retransmitting on a timer; the receiver (bearer 1) acknowledges every frame and keeps the
/// in-order ones. A whole protocol run, to show the simulator drives one to completion
/// through every fault.
#[derive(Debug)]
struct Saw {
    sender: bool,
    peer: MediaAddr,
    total: u32,
    next: u32,
    rto: Duration,
    deadline: Option<Instant>,
    delivered: Vec<u32>,
    out: VecDeque<Transmit>,
}

impl Saw {
    fn new(sender: bool, peer: MediaAddr, total: u32) -> Self {
        Self {
            sender,
            peer,
            total,
            next: 0,
            rto: Duration::from_millis(5),
            deadline: sender.then_some(Instant::ZERO),
            delivered: Vec::new(),
            out: VecDeque::new(),
        }
    }

    fn done(&self) -> bool {
        self.next == self.total
    }

    fn send(&mut self, kind: u8, seq: u32) {
        let bearer = if self.sender { B0 } else { B1 };
        self.out.push_back(Transmit {
            bearer,
            dest: Dest::Unicast(self.peer),
            data: Fake::frame(kind, seq, 64),
        });
    }
}

impl SimNode for Saw {
    fn handle_frame(&mut self, now: Instant, _: BearerId, _: MediaAddr, bytes: &[u8]) {
        let seq = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        if self.sender {
            if bytes[0] == ACK && seq == self.next && !self.done() {
                self.next += 1;
                self.deadline = (!self.done()).then_some(now);
            }
        } else {
            if seq == self.next {
                self.delivered.push(seq);
                self.next += 1;
            }
            self.send(ACK, seq);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.send(DATA, self.next);
            self.deadline = Some(now + self.rto);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
}

#[test]
fn stop_and_wait_completes_in_order_through_every_fault() {
    run_seeds("stop_and_wait", seeds(8), |seed| {
        let cfg = SegmentConfig {
            latency: Duration::from_micros(500),
            jitter: Duration::from_micros(500),
            loss: 0.3,
            duplicate: 0.2,
            reorder: 0.2,
            reorder_delay: Duration::from_millis(3),
            bandwidth_bps: Some(100_000_000),
            ..SegmentConfig::default()
        };
        let mut net = Network::new(seed);
        let seg = net.add_segment(cfg);
        let tx = net.add_node(Saw::new(true, eth(2), 200));
        let rx = net.add_node(Saw::new(false, eth(1), 200));
        net.attach(tx, B0, seg, eth(1));
        net.attach(rx, B1, seg, eth(2));
        net.schedule(ms(50), Fault::Partition(tx, rx));
        net.schedule(ms(80), Fault::Heal(tx, rx));
        let done = net.run_until_cond(Duration::from_secs(60), |n| n.node(tx).done());
        assert!(done, "stuck at {} after {:?}", net.node(tx).next, net.now());
        assert_eq!(net.node(rx).delivered, (0..200).collect::<Vec<_>>());
        let s = net.stats();
        assert!(
            s.dropped_loss > 0 && s.duplicated > 0 && s.reordered > 0 && s.dropped_partition > 0
        );
        assert_eq!(net.stalls(), 0);
    });
}

/// A buggy node whose timer never clears.
#[derive(Debug, Default)]
struct Stuck {
    calls: u64,
}

impl SimNode for Stuck {
    fn handle_frame(&mut self, _: Instant, _: BearerId, _: MediaAddr, _: &[u8]) {}

    fn handle_timeout(&mut self, _: Instant) {
        self.calls += 1;
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(Instant::ZERO)
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
}

#[test]
fn stuck_timer_is_counted_and_does_not_hang() {
    let mut net = Network::new(1);
    net.set_strict(false);
    let n = net.add_node(Stuck::default());
    net.run_for(Duration::from_millis(1));
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.now(), ms(2));
    // Stuck at 0, then again at 1 ms, where the first `run_for` left the clock; set aside
    // each time until the clock moved on.
    assert_eq!(net.node_stats(n).stuck_timers, 2);
    assert_eq!(net.stalls(), 2);
    assert_eq!(net.node(n).calls, 2 * u64::from(MAX_TIMEOUTS_PER_INSTANT));
}

#[test]
#[should_panic(expected = "poll_timeout stayed at or before now")]
fn stuck_timer_panics_in_strict_mode() {
    let mut net = Network::new(1);
    net.add_node(Stuck::default());
    net.run_for(Duration::from_millis(1));
}

/// Reads a little-endian u32/u16 at `off`.
fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

#[test]
fn pcap_output_parses_back() {
    let (mut net, _, _, _) = pair(
        1,
        SegmentConfig {
            jitter: Duration::from_micros(3),
            ..SegmentConfig::default()
        },
        Fake::hello(ms(0), Duration::from_millis(100)).size(80),
        Fake::listener().on(B1).replying(),
    );
    net.set_tap(true);
    net.run_until(ms(350));
    let tap = net.tap().to_vec();
    assert_eq!(tap.len(), 8); // 4 hellos, 4 replies
    let pcap = net.pcap_bytes();

    // Global header.
    assert_eq!(le32(&pcap, 0), PCAP_MAGIC_NANOS);
    assert_eq!(&pcap[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
    assert_eq!((le16(&pcap, 4), le16(&pcap, 6)), (2, 4));
    assert_eq!((le32(&pcap, 8), le32(&pcap, 12)), (0, 0));
    assert_eq!(le32(&pcap, 16), PCAP_SNAPLEN);
    assert_eq!(le32(&pcap, 20), LINKTYPE_ETHERNET);

    // Records.
    let mut off = 24;
    for rec in &tap {
        let ns = rec.at.as_nanos();
        assert_eq!(u64::from(le32(&pcap, off)), ns / 1_000_000_000);
        assert_eq!(u64::from(le32(&pcap, off + 4)), ns % 1_000_000_000);
        let incl = le32(&pcap, off + 8) as usize;
        assert_eq!(incl, 14 + rec.bytes.len());
        assert_eq!(le32(&pcap, off + 12) as usize, incl);
        let frame = &pcap[off + 16..off + 16 + incl];
        let dst: &[u8] = if rec.broadcast {
            &[0xff; 6]
        } else {
            &synthetic_mac(&rec.to_addr)
        };
        assert_eq!(&frame[0..6], dst);
        assert_eq!(&frame[6..12], &synthetic_mac(&rec.from_addr));
        assert_eq!(&frame[12..14], &[0x88, 0xca]);
        assert_eq!(&frame[14..], &rec.bytes[..]);
        off += 16 + incl;
    }
    assert_eq!(off, pcap.len());
    assert!(tap[0].broadcast && !tap[1].broadcast);
    assert_eq!(&pcap[24 + 16..24 + 22], &[0xff; 6]);

    // An independent reader agrees.
    let mut r = pcap_file::pcap::PcapReader::new(&pcap[..]).expect("pcap-file reads the header");
    let h = r.header();
    assert_eq!(h.datalink, pcap_file::DataLink::ETHERNET);
    assert_eq!(h.ts_resolution, pcap_file::TsResolution::NanoSecond);
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        let p = p.expect("pcap-file reads the record");
        assert_eq!(p.timestamp.as_nanos(), u128::from(tap[n].at.as_nanos()));
        assert_eq!(p.data.len(), 14 + tap[n].bytes.len());
        n += 1;
    }
    assert_eq!(n, tap.len());

    // Taking the tap empties it but keeps recording.
    assert_eq!(net.take_tap().len(), 8);
    assert!(net.tap().is_empty());
    net.run_until(ms(450));
    assert_eq!(net.tap().len(), 2);
}

#[test]
fn synthetic_macs_are_stable_local_and_distinct() {
    let mac = [0x52, 0x54, 0, 0x18, 1, 1];
    assert_eq!(synthetic_mac(&MediaAddr::Eth(mac)), mac);
    let udp = |port| MediaAddr::Udp(SocketAddr::new(Ipv4Addr::new(10, 0, 0, 1).into(), port));
    let (m1, m2) = (synthetic_mac(&udp(6118)), synthetic_mac(&udp(6119)));
    assert_ne!(m1, m2);
    assert_eq!(m1, synthetic_mac(&udp(6118)));
    // Locally administered, unicast.
    assert_eq!(m1[0] & 0x03, 0x02);
    assert_eq!(synthetic_mac(&MediaAddr::Ib([7; 20]))[0], 0x02);
}

#[test]
fn sub_seeds_differ_per_stream_and_seed() {
    let a = Network::<Fake>::new(1);
    let b = Network::<Fake>::new(2);
    assert_ne!(a.sub_seed(0), a.sub_seed(1));
    assert_ne!(a.sub_seed(0), b.sub_seed(0));
    assert_eq!(a.sub_seed(5), Network::<Fake>::new(1).sub_seed(5));
    assert_eq!(a.seed(), 1);
}

#[test]
fn seed_selection() {
    assert_eq!(seeds_from(None, None, 4), [1, 2, 3, 4]);
    assert_eq!(seeds_from(None, Some("3"), 4), [1, 2, 3]);
    assert_eq!(seeds_from(Some("42"), Some("3"), 4), [42]);
    assert_eq!(seeds_from(Some(" 0x2a "), None, 4), [42]);
    assert!(seeds_from(None, None, 0).is_empty());
    let bad = panic::catch_unwind(|| seeds_from(Some("forty-two"), None, 4));
    assert!(bad.is_err());
}

#[test]
fn run_seeds_stops_at_and_reraises_the_first_failure() {
    assert_eq!(
        failure_message("demo", 3),
        "SIMULATION FAILURE: demo seed=3 — replay with UTIPC_SIM_SEED=3"
    );
    let tried = RefCell::new(Vec::new());
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        run_seeds("demo", 1..=5, |seed| {
            tried.borrow_mut().push(seed);
            assert_ne!(seed, 3, "boom");
        });
    }));
    let payload = r.expect_err("the failure propagates");
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(msg.contains("boom"), "{msg}");
    assert_eq!(*tried.borrow(), [1, 2, 3]);

    let all = RefCell::new(Vec::new());
    run_seeds("ok", vec![9, 8], |s| all.borrow_mut().push(s));
    assert_eq!(*all.borrow(), [9, 8]);
}

/// Echoes every frame straight back: over a zero-latency segment, two of them never let an
/// instant end.
#[derive(Debug, Default)]
struct Echo {
    out: VecDeque<Transmit>,
    kick: bool,
}

impl SimNode for Echo {
    fn handle_frame(&mut self, _: Instant, bearer: BearerId, src: MediaAddr, bytes: &[u8]) {
        self.out.push_back(Transmit {
            bearer,
            dest: Dest::Unicast(src),
            data: bytes.to_vec(),
        });
    }

    fn handle_timeout(&mut self, _: Instant) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        if std::mem::take(&mut self.kick) {
            return Some(Transmit {
                bearer: B0,
                dest: Dest::Broadcast,
                data: vec![DATA; 5],
            });
        }
        self.out.pop_front()
    }
}

fn echo_pair() -> Network<Echo> {
    let mut net = Network::new(1);
    let seg = net.add_segment(SegmentConfig {
        latency: Duration::ZERO,
        ..SegmentConfig::default()
    });
    let a = net.add_node(Echo {
        kick: true,
        ..Echo::default()
    });
    let b = net.add_node(Echo::default());
    net.attach(a, B0, seg, eth(1));
    net.attach(b, B0, seg, eth(2));
    net
}

#[test]
fn endless_instant_is_counted_and_broken_off() {
    let mut net = echo_pair();
    net.set_strict(false);
    net.set_max_events_per_instant(1000);
    net.run_until(us(1));
    // A thousand echoes at 0 ns, then the run was cut short and the clock moved to its target.
    assert_eq!((net.stalls(), net.now()), (1, us(1)));
    assert_eq!(net.stats().delivered, 1000);
    // The storm, still queued, resumes at the new instant and is cut again.
    let mut steps = 0;
    while net.step() {
        steps += 1;
    }
    assert_eq!(steps, 1000);
    assert_eq!((net.stalls(), net.now()), (2, us(1)));
    assert!(!net.step(), "reported once per instant");
    assert_eq!(net.stalls(), 2);
    assert_eq!(net.stats().delivered, 2000);
}

#[test]
#[should_panic(expected = "the instant does not end")]
fn endless_instant_panics_in_strict_mode() {
    let mut net = echo_pair();
    net.set_max_events_per_instant(1000);
    net.run_for(Duration::from_millis(1));
}
