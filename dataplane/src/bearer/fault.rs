//! A seeded fault injector that wraps any [`Bearer`]: drops, duplicates, corrupts, reorders
//! and delays frames, so reliability tests can run over veth on machines without netem.
//!
//! Why a wrapper: TIPC's link layer must repair loss, duplication and reordering. netem needs
//! the `sch_netem` module, which many kernels (this project's CI included) lack; a wrapper
//! works with every bearer, in every namespace, and a seed makes a failing run reproducible
//! (after smoltcp's `phy::FaultInjector` and Aeron's loss interceptors).
//!
//! Faults are configured per direction ([`FaultConfig::rx`] for received frames,
//! [`FaultConfig::tx`] for sent ones), each with its own generator derived from the seed, so
//! the fate of the n-th received frame does not depend on how many were sent. Each frame meets
//! the faults in a fixed order, drawing from the generator only as far as needed:
//!
//! 1. **drop** with probability `drop`: gone;
//! 2. **corrupt** with probability `corrupt`: one random bit of a copy is flipped;
//! 3. **duplicate** with probability `duplicate`: a second copy follows right after;
//! 4. **delay** with probability `delay`: held for a uniform time in `delay_min..=delay_max`;
//! 5. otherwise **reorder** with probability `reorder`: held until 1 to `reorder_depth` later
//!    frames (uniform) went by, or at most `reorder_timeout`.
//!
//! # Driven by calls
//!
//! The injector has no timer or thread of its own: held frames are released only when the
//! caller calls in ([`Bearer::recv`], [`Bearer::recv_batch`], [`Bearer::send`],
//! [`Bearer::flush`], [`Bearer::wait_readable`]) at or after their due time, or when a later
//! frame passes them (reordering). Time is the monotonic [`std::time::Instant`] read in those
//! calls. A runtime that waits in poll(2) on [`Bearer::fd`] (the inner bearer's descriptor)
//! therefore sees a held received frame only after the next frame arrives or its own timer
//! fires; TIPC's steady link traffic makes that soon. [`FaultInjector::next_due`] tells a
//! caller how long it may sleep, and [`FaultInjector::release_held`] releases everything.
//!
//! Received frames that pass untouched are lent to the caller straight from the inner bearer
//! (no copy); held, duplicated and corrupted frames are copies.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::rand::Rng;
use utipc_proto::wire::discovery::MediaAddr;

use super::{Bearer, BearerReport, BearerStats, MAX_DROPS_PER_RECV, PcapControl, RxMeta};

/// The faults of one direction. Probabilities are clamped to 0..=1.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability that a frame is dropped.
    pub drop: f64,
    /// Probability that one bit of a frame is flipped.
    pub corrupt: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is delayed.
    pub delay: f64,
    /// Shortest delay.
    pub delay_min: Duration,
    /// Longest delay.
    pub delay_max: Duration,
    /// Probability that a frame (not delayed) is held back for reordering.
    pub reorder: f64,
    /// A reordered frame is overtaken by 1 to this many later frames (at least 1).
    pub reorder_depth: u32,
    /// A reordered frame is released after this long even if fewer frames went by.
    pub reorder_timeout: Duration,
}

impl Faults {
    /// No faults.
    pub const NONE: Self = Self {
        drop: 0.0,
        corrupt: 0.0,
        duplicate: 0.0,
        delay: 0.0,
        delay_min: Duration::ZERO,
        delay_max: Duration::ZERO,
        reorder: 0.0,
        reorder_depth: 3,
        reorder_timeout: Duration::from_millis(20),
    };

    /// Loss only.
    pub fn loss(p: f64) -> Self {
        Self {
            drop: p,
            ..Self::NONE
        }
    }

    /// Whether no fault can happen.
    pub fn is_none(&self) -> bool {
        [
            self.drop,
            self.corrupt,
            self.duplicate,
            self.delay,
            self.reorder,
        ]
        .iter()
        .all(|p| *p <= 0.0)
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self::NONE
    }
}

/// What [`FaultInjector::new`] applies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultConfig {
    /// Seed of the generators: the same seed and the same frames give the same faults.
    pub seed: u64,
    /// Faults of received frames.
    pub rx: Faults,
    /// Faults of sent frames.
    pub tx: Faults,
}

impl FaultConfig {
    /// Faults on received frames only.
    pub fn rx(seed: u64, faults: Faults) -> Self {
        Self {
            seed,
            rx: faults,
            tx: Faults::NONE,
        }
    }
}

/// What the injector did in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames that met the injector.
    pub frames: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames delayed.
    pub delayed: u64,
    /// Frames held back for reordering.
    pub reordered: u64,
    /// Held frames released (delayed or reordered).
    pub released: u64,
}

/// Counters of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Received frames.
    pub rx: FaultCounters,
    /// Sent frames.
    pub tx: FaultCounters,
}

/// A frame held back.
#[derive(Debug)]
struct Held<M> {
    data: Vec<u8>,
    meta: M,
    /// Released at this time at the latest.
    due: Instant,
    /// Released when this many more frames went by (0: by time only).
    gap: u32,
}

/// What happens to one frame.
#[derive(Debug)]
enum Fate {
    Drop,
    /// Deliver (a copy if corrupted), then as many extra copies as `dups`.
    Pass {
        corrupted: Option<Vec<u8>>,
        dups: u8,
    },
    Held,
}

/// The faults, generator and held frames of one direction; `M` is what travels with a frame
/// (its [`RxMeta`] or its [`Dest`]).
#[derive(Debug)]
struct Lane<M> {
    faults: Faults,
    rng: Rng,
    held: Vec<Held<M>>,
    /// Frames released or duplicated, to go out next, in order.
    ready: VecDeque<(Vec<u8>, M)>,
    counters: FaultCounters,
}

impl<M: Clone> Lane<M> {
    fn new(faults: Faults, seed: u64) -> Self {
        Self {
            faults,
            rng: Rng::new(seed),
            held: Vec::new(),
            ready: VecDeque::new(),
            counters: FaultCounters::default(),
        }
    }

    /// Decides the fate of a frame arriving now. Earlier held frames it overtakes are moved to
    /// `ready`, to go out after it.
    fn admit(&mut self, now: Instant, frame: &[u8], meta: &M) -> Fate {
        self.counters.frames += 1;
        self.tick();
        let f = &self.faults;
        if self.rng.chance(f.drop) {
            self.counters.dropped += 1;
            return Fate::Drop;
        }
        let mut corrupted = None;
        if self.rng.chance(f.corrupt) && !frame.is_empty() {
            let mut copy = frame.to_vec();
            let bit = self.rng.below(frame.len() as u64 * 8);
            copy[(bit / 8) as usize] ^= 1 << (bit % 8);
            corrupted = Some(copy);
            self.counters.corrupted += 1;
        }
        let dups = u8::from(self.rng.chance(f.duplicate));
        self.counters.duplicated += u64::from(dups);
        let hold = if self.rng.chance(f.delay) {
            self.counters.delayed += 1;
            let span = f.delay_max.saturating_sub(f.delay_min);
            let extra = self.rng.below(
                u64::try_from(span.as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1),
            );
            Some((now + f.delay_min + Duration::from_nanos(extra), 0))
        } else if self.rng.chance(f.reorder) {
            self.counters.reordered += 1;
            let gap = 1 + self.rng.below(u64::from(f.reorder_depth.max(1))) as u32;
            Some((now + f.reorder_timeout, gap))
        } else {
            None
        };
        match hold {
            None => Fate::Pass { corrupted, dups },
            Some((due, gap)) => {
                let data = corrupted.unwrap_or_else(|| frame.to_vec());
                for _ in 0..dups {
                    self.held.push(Held {
                        data: data.clone(),
                        meta: meta.clone(),
                        due,
                        gap,
                    });
                }
                self.held.push(Held {
                    data,
                    meta: meta.clone(),
                    due,
                    gap,
                });
                Fate::Held
            }
        }
    }

    /// One frame went by: counts down the reordered frames and moves those it overtook to
    /// `ready`.
    fn tick(&mut self) {
        let mut i = 0;
        while i < self.held.len() {
            let h = &mut self.held[i];
            if h.gap > 0 {
                h.gap -= 1;
                if h.gap == 0 {
                    let h = self.held.remove(i);
                    self.counters.released += 1;
                    self.ready.push_back((h.data, h.meta));
                    continue;
                }
            }
            i += 1;
        }
    }

    /// Moves every held frame due by `now` to `ready`, earliest first.
    fn release_due(&mut self, now: Instant) {
        if self.held.iter().all(|h| h.due > now) {
            return;
        }
        // Stable: frames due at the same time keep their order.
        self.held.sort_by_key(|h| h.due);
        let n = self.held.iter().take_while(|h| h.due <= now).count();
        for h in self.held.drain(..n) {
            self.counters.released += 1;
            self.ready.push_back((h.data, h.meta));
        }
    }

    /// Moves every held frame to `ready`, earliest due first.
    fn release_all(&mut self) {
        self.held.sort_by_key(|h| h.due);
        self.counters.released += self.held.len() as u64;
        self.ready
            .extend(self.held.drain(..).map(|h| (h.data, h.meta)));
    }

    fn next_due(&self) -> Option<Instant> {
        if !self.ready.is_empty() {
            return Some(Instant::now());
        }
        self.held.iter().map(|h| h.due).min()
    }
}

/// A bearer wrapper that injects faults; see the [module docs](self).
#[derive(Debug)]
pub struct FaultInjector<B> {
    inner: B,
    rx: Lane<RxMeta>,
    tx: Lane<Dest>,
    /// Receive buffer for the inner bearer when the caller gives none (our own `recv`).
    scratch: Vec<u8>,
}

/// Size of the injector's own receive buffer: the largest UDP datagram.
const SCRATCH: usize = 65_536;

impl<B: Bearer> FaultInjector<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, config: FaultConfig) -> Self {
        Self {
            inner,
            rx: Lane::new(config.rx, config.seed),
            // A different stream for sends, so receive faults do not depend on send traffic.
            tx: Lane::new(config.tx, config.seed ^ 0x5eed_fa17_0000_0001),
            scratch: Vec::new(),
        }
    }

    /// The wrapped bearer.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped bearer, mutably.
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Unwraps the bearer; held frames are lost.
    pub fn into_inner(self) -> B {
        self.inner
    }

    /// What the injector did.
    pub fn fault_stats(&self) -> FaultStats {
        FaultStats {
            rx: self.rx.counters,
            tx: self.tx.counters,
        }
    }

    /// Frames held back or waiting to be released (both directions).
    pub fn held(&self) -> usize {
        self.rx.held.len() + self.rx.ready.len() + self.tx.held.len() + self.tx.ready.len()
    }

    /// When the earliest held frame falls due (now, if one is already releasable); `None` when
    /// nothing is held. A caller that sleeps should wake by then and call in.
    pub fn next_due(&self) -> Option<Instant> {
        match (self.rx.next_due(), self.tx.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Releases every held frame now: received ones are delivered by the next receive call,
    /// sent ones are sent (and flushed) at once.
    ///
    /// # Errors
    ///
    /// The first error of sending or flushing the held frames (all are tried).
    pub fn release_held(&mut self) -> io::Result<()> {
        self.rx.release_all();
        self.tx.release_all();
        self.send_ready()
    }

    /// Sends the released TX frames.
    fn send_ready(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        let mut sent = false;
        while let Some((data, dest)) = self.tx.ready.pop_front() {
            sent = true;
            if let Err(e) = self.inner.send(&dest, &data)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        if sent
            && let Err(e) = self.inner.flush()
            && first.is_ok()
        {
            first = Err(e);
        }
        first
    }

    /// Releases what is due in both directions; sends what is due to be sent.
    fn service(&mut self, now: Instant) {
        self.rx.release_due(now);
        self.tx.release_due(now);
        // Errors of delayed sends are counted in the inner bearer's stats; the frame is lost
        // as on the wire.
        let _ = self.send_ready();
    }
}

impl<B: Bearer> Bearer for FaultInjector<B> {
    forward_bearer_identity!(inner);

    fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
        let now = Instant::now();
        self.service(now);
        if self.tx.faults.is_none() && self.tx.held.is_empty() {
            self.tx.counters.frames += 1;
            return self.inner.send(dest, frame);
        }
        let fate = self.tx.admit(now, frame, dest);
        let result = match fate {
            Fate::Drop | Fate::Held => Ok(()),
            Fate::Pass { corrupted, dups } => {
                let data = corrupted.as_deref().unwrap_or(frame);
                let r = self.inner.send(dest, data);
                for _ in 0..dups {
                    let _ = self.inner.send(dest, data);
                }
                r
            }
        };
        // Frames this one overtook follow it.
        while let Some((data, d)) = self.tx.ready.pop_front() {
            let _ = self.inner.send(&d, &data);
        }
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        self.service(Instant::now());
        self.inner.flush()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        let mut got = None;
        for _ in 0..=MAX_DROPS_PER_RECV {
            let seen = self.rx.counters.frames;
            let n = self.recv_batch(&mut [], 1, &mut |frame, meta| {
                if frame.len() <= buf.len() {
                    buf[..frame.len()].copy_from_slice(frame);
                    got = Some((frame.len(), *meta));
                }
            })?;
            if got.is_some() {
                break;
            }
            if n == 1 {
                self.inner.stats_mut().counters.rx_dropped.truncated += 1;
            } else if self.rx.counters.frames == seen {
                // The inner bearer had nothing (more).
                break;
            }
            // Otherwise the injector dropped or held a frame: try the next one.
        }
        Ok(got)
    }

    fn recv_batch(
        &mut self,
        scratch: &mut [u8],
        max: usize,
        on_frame: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        self.service(Instant::now());
        let mut delivered = 0;
        let rx = &mut self.rx;
        while delivered < max
            && let Some((data, meta)) = rx.ready.pop_front()
        {
            on_frame(&data, &meta);
            delivered += 1;
        }
        if delivered >= max {
            return Ok(delivered);
        }
        // Without a scratch buffer (our own `recv`), use ours.
        let scratch = if scratch.is_empty() {
            if self.scratch.is_empty() {
                self.scratch = vec![0u8; SCRATCH];
            }
            &mut self.scratch[..]
        } else {
            scratch
        };
        let now = Instant::now();
        let before = delivered;
        let r = self
            .inner
            .recv_batch(scratch, max - delivered, &mut |frame, meta| {
                match rx.admit(now, frame, meta) {
                    Fate::Drop | Fate::Held => {}
                    Fate::Pass { corrupted, dups } => {
                        let data = corrupted.as_deref().unwrap_or(frame);
                        for _ in 0..=dups {
                            if delivered < max {
                                on_frame(data, meta);
                                delivered += 1;
                            } else {
                                rx.ready.push_back((data.to_vec(), *meta));
                            }
                        }
                    }
                }
                while delivered < max
                    && let Some((data, m)) = rx.ready.pop_front()
                {
                    on_frame(&data, &m);
                    delivered += 1;
                }
            });
        match r {
            Err(e) if delivered == before && delivered == 0 => Err(e),
            _ => Ok(delivered),
        }
    }

    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let now = Instant::now();
        match self.rx.next_due() {
            Some(due) if due <= now => Ok(true),
            Some(due) => {
                // poll(2) counts whole milliseconds: round up so we do not wake just before.
                let left = (due - now).as_micros().div_ceil(1000);
                let wait =
                    Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX)).min(timeout);
                Ok(self.inner.wait_readable(wait)? || Instant::now() >= due)
            }
            None => self.inner.wait_readable(timeout),
        }
    }

    /// The wrapped bearer's counters (the injector's own are in its [`FaultInjector`] API).
    fn report(&self, out: &mut dyn BearerReport) {
        self.inner.report(out);
    }

    fn pcap_tap(&self) -> Option<&dyn PcapControl> {
        self.inner.pcap_tap()
    }

    fn pcap_tap_mut(&mut self) -> Option<&mut dyn PcapControl> {
        self.inner.pcap_tap_mut()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};

    use super::*;

    /// An in-memory bearer: frames queued in `incoming` are received, sent frames recorded.
    #[derive(Debug)]
    struct Mock {
        incoming: VecDeque<Vec<u8>>,
        sent: Vec<(Dest, Vec<u8>)>,
        flushes: u32,
        fd: OwnedFd,
        /// Kept open so the read end never reports end-of-file: it is simply never readable.
        _writer: io::PipeWriter,
        stats: BearerStats,
    }

    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const ME: [u8; 6] = [2, 0, 0, 0, 0, 1];

    impl Mock {
        fn new(frames: impl IntoIterator<Item = u32>) -> Self {
            let (r, w) = io::pipe().expect("pipe");
            Self {
                incoming: frames
                    .into_iter()
                    .map(|n| n.to_be_bytes().to_vec())
                    .collect(),
                sent: Vec::new(),
                flushes: 0,
                fd: r.into(),
                _writer: w,
                stats: BearerStats::default(),
            }
        }
    }

    impl Bearer for Mock {
        fn media(&self) -> MediaKind {
            MediaKind::Eth
        }
        fn local_addr(&self) -> MediaAddr {
            MediaAddr::Eth(ME)
        }
        fn mtu(&self) -> u32 {
            1500
        }
        fn supports_broadcast(&self) -> bool {
            true
        }
        fn fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
        fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
            self.sent.push((*dest, frame.to_vec()));
            self.stats.sent(frame.len());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
            Ok(self.incoming.pop_front().map(|f| {
                buf[..f.len()].copy_from_slice(&f);
                (
                    f.len(),
                    RxMeta {
                        src: MediaAddr::Eth(PEER),
                        dst: MediaAddr::Eth(ME),
                    },
                )
            }))
        }
        fn wire_dests(&self, _dest: &Dest, _f: &mut dyn FnMut(MediaAddr)) {}
        fn stats(&self) -> &BearerStats {
            &self.stats
        }
        fn stats_mut(&mut self) -> &mut BearerStats {
            &mut self.stats
        }
    }

    /// Everything the injector delivers, in batches of `batch`, then the held frames.
    fn drain(inj: &mut FaultInjector<Mock>, batch: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut scratch = vec![0u8; 64];
        loop {
            let n = inj
                .recv_batch(&mut scratch, batch, &mut |f, meta| {
                    assert_eq!(meta.src, MediaAddr::Eth(PEER));
                    out.push(u32::from_be_bytes(f.try_into().expect("4 bytes")));
                })
                .expect("recv_batch");
            assert!(n <= batch, "at most max frames per batch");
            if n == 0 && inj.inner().incoming.is_empty() {
                if inj.held() == 0 {
                    return out;
                }
                inj.release_held().expect("release");
            }
        }
    }

    fn mix(seed: u64) -> FaultConfig {
        FaultConfig::rx(
            seed,
            Faults {
                drop: 0.10,
                duplicate: 0.05,
                reorder: 0.10,
                reorder_depth: 4,
                reorder_timeout: Duration::from_secs(3600),
                ..Faults::NONE
            },
        )
    }

    /// A fault injector around a pcap tap still offers the tap (run-time capture) and the
    /// wrapped bearer's counter groups.
    #[test]
    fn wrapping_a_tap_keeps_capture_and_report_reachable() {
        let tap = super::super::pcap_tap::PcapTap::new(Mock::new([]));
        let mut inj = FaultInjector::new(tap, FaultConfig::default());
        assert!(inj.pcap_tap().is_some_and(|t| t.capture().is_none()));
        assert!(inj.pcap_tap_mut().is_some());
        struct Groups(Vec<String>);
        impl BearerReport for Groups {
            fn group(&mut self, name: &str) {
                self.0.push(name.to_owned());
            }
            fn counter(&mut self, _: &str, _: u64) {}
            fn text(&mut self, _: &str, _: &str) {}
        }
        let mut g = Groups(Vec::new());
        inj.report(&mut g);
        assert!(g.0.iter().any(|n| n == "pcap"), "{:?}", g.0);
    }

    #[test]
    fn no_faults_pass_everything_in_order() {
        let mut inj = FaultInjector::new(Mock::new(0..1000), FaultConfig::default());
        assert_eq!(drain(&mut inj, 7), (0..1000).collect::<Vec<_>>());
        let c = inj.fault_stats().rx;
        assert_eq!((c.frames, c.dropped, c.released), (1000, 0, 0));
    }

    #[test]
    fn rates_match_the_configuration() {
        const N: u32 = 100_000;
        let mut inj = FaultInjector::new(Mock::new(0..N), mix(7));
        let out = drain(&mut inj, 64);
        let c = inj.fault_stats().rx;
        let rate = |k: u64| k as f64 / f64::from(N);
        assert!((0.09..0.11).contains(&rate(c.dropped)), "{c:?}");
        assert!((0.04..0.06).contains(&rate(c.duplicated)), "{c:?}");
        // Reordering applies to the frames that were not dropped.
        assert!((0.08..0.10).contains(&rate(c.reordered)), "{c:?}");
        assert_eq!(out.len() as u64, u64::from(N) - c.dropped + c.duplicated);
        // Every frame not dropped arrives once, or twice if duplicated.
        let mut count = vec![0u8; N as usize];
        for &n in &out {
            count[n as usize] += 1;
        }
        let missing = count.iter().filter(|&&k| k == 0).count() as u64;
        let twice = count.iter().filter(|&&k| k == 2).count() as u64;
        assert_eq!((missing, twice), (c.dropped, c.duplicated));
        assert!(count.iter().all(|&k| k <= 2));
        let inversions = out.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(inversions > 5000, "reordered: {inversions} inversions");
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let run = |seed| {
            let mut inj = FaultInjector::new(Mock::new(0..5000), mix(seed));
            // Different batch sizes: the fate of a frame depends only on the sequence.
            (drain(&mut inj, 1 + seed as usize % 3), inj.fault_stats())
        };
        let (a, sa) = run(42);
        let (b, sb) = run(42);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (c, _) = run(43);
        assert_ne!(a, c);
    }

    #[test]
    fn reordered_frames_are_overtaken_by_later_ones() {
        // Every frame is held until the next one passes it: the stream is delayed by one frame,
        // and the last is released by time (or by release_held).
        let cfg = FaultConfig::rx(
            1,
            Faults {
                reorder: 1.0,
                reorder_depth: 1,
                reorder_timeout: Duration::from_secs(3600),
                ..Faults::NONE
            },
        );
        let mut inj = FaultInjector::new(Mock::new(0..3), cfg);
        let mut buf = [0u8; 64];
        let (len, _) = inj.recv(&mut buf).expect("recv").expect("frame 0");
        assert_eq!(
            &buf[..len],
            &0u32.to_be_bytes(),
            "released when frame 1 arrived"
        );
        let (len, _) = inj.recv(&mut buf).expect("recv").expect("frame 1");
        assert_eq!(&buf[..len], &1u32.to_be_bytes());
        assert_eq!(inj.recv(&mut buf).expect("recv"), None, "frame 2 is held");
        assert_eq!(inj.held(), 1);
        inj.release_held().expect("release");
        assert!(inj.recv(&mut buf).expect("recv").is_some());
        assert_eq!(inj.fault_stats().rx.released, 3);
    }

    #[test]
    fn delayed_frames_come_when_due() {
        let cfg = FaultConfig::rx(
            3,
            Faults {
                delay: 1.0,
                delay_min: Duration::from_millis(30),
                delay_max: Duration::from_millis(30),
                ..Faults::NONE
            },
        );
        let mut inj = FaultInjector::new(Mock::new([7]), cfg);
        let mut buf = [0u8; 64];
        let t0 = Instant::now();
        assert_eq!(inj.recv(&mut buf).expect("recv"), None, "held");
        let due = inj.next_due().expect("one held");
        assert!(due >= t0 + Duration::from_millis(30));
        assert!(
            inj.wait_readable(Duration::from_secs(5)).expect("wait"),
            "readable when due"
        );
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "woke at the due time"
        );
        let (len, _) = inj.recv(&mut buf).expect("recv").expect("released");
        assert_eq!(&buf[..len], &7u32.to_be_bytes());
        assert_eq!(inj.next_due(), None);
    }

    #[test]
    fn corrupted_frames_differ_in_one_bit() {
        let cfg = FaultConfig::rx(
            5,
            Faults {
                corrupt: 1.0,
                ..Faults::NONE
            },
        );
        let mut inj = FaultInjector::new(Mock::new(0..100), cfg);
        let out = drain(&mut inj, 10);
        for (i, v) in out.iter().enumerate() {
            assert_eq!((v ^ i as u32).count_ones(), 1, "frame {i}: {v:#x}");
        }
    }

    #[test]
    fn send_faults_drop_duplicate_and_delay() {
        let dest = Dest::Unicast(MediaAddr::Eth(PEER));
        let mut inj = FaultInjector::new(
            Mock::new([]),
            FaultConfig {
                seed: 9,
                rx: Faults::NONE,
                tx: Faults::loss(1.0),
            },
        );
        inj.send(&dest, b"gone").expect("a dropped send succeeds");
        assert!(inj.inner().sent.is_empty());

        let mut inj = FaultInjector::new(
            Mock::new([]),
            FaultConfig {
                seed: 9,
                rx: Faults::NONE,
                tx: Faults {
                    duplicate: 1.0,
                    ..Faults::NONE
                },
            },
        );
        inj.send(&Dest::Broadcast, b"twice").expect("send");
        assert_eq!(inj.inner().sent.len(), 2);
        assert_eq!(inj.fault_stats().tx.duplicated, 1);

        let mut inj = FaultInjector::new(
            Mock::new([]),
            FaultConfig {
                seed: 9,
                rx: Faults::NONE,
                tx: Faults {
                    delay: 1.0,
                    delay_min: Duration::from_millis(10),
                    delay_max: Duration::from_millis(20),
                    ..Faults::NONE
                },
            },
        );
        inj.send(&dest, b"later").expect("send");
        inj.flush().expect("flush");
        assert!(inj.inner().sent.is_empty(), "not due yet");
        std::thread::sleep(Duration::from_millis(25));
        inj.flush().expect("flush");
        assert_eq!(inj.inner().sent, vec![(dest, b"later".to_vec())]);
        assert!(inj.inner().flushes >= 2);
    }
}
