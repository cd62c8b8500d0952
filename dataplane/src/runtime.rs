//! [`NodeRuntime`]: one node and its bearers driven on the caller's thread.
//!
//! Each [`NodeRuntime::poll`] is one run-to-completion cycle: read the clock once, wait for a
//! bearer (or an extra descriptor of the caller's) to become readable or the node's next
//! timer to fall due, hand every received frame to the node, run its timers, and send what it
//! queued. The waiting is `poll(2)`, so an idle runtime sleeps in the kernel instead of
//! spinning; the poll-mode engine with spin and backoff strategies builds on the same cycle.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use utipc_proto::bearer::{BearerConfig, BearerId, MAX_BEARERS, MediaKind, Transmit};
use utipc_proto::node::{Node, NodeError};
use utipc_proto::time::Instant;
use utipc_proto::wire::MAX_MSG_SIZE;

use crate::bearer::Bearer;
use crate::sys;

/// Most frames taken from one bearer per cycle, so one busy bearer cannot starve the others
/// or the timers.
pub const RX_BATCH: usize = 64;

/// A monotonic clock as the core's [`Instant`]: nanoseconds since the runtime started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            epoch: std::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        let ns = self.epoch.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of the runtime itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Cycles run.
    pub cycles: u64,
    /// Frames handed to the node.
    pub rx_frames: u64,
    /// Frames the bearers accepted for sending.
    pub tx_frames: u64,
    /// Frames a bearer refused (the error is counted in the bearer's own stats too).
    pub tx_errors: u64,
    /// Transmits for a bearer slot that has no bearer (removed meanwhile).
    pub tx_no_bearer: u64,
}

/// A node and its bearers.
#[derive(Debug)]
pub struct NodeRuntime {
    node: Node,
    bearers: Vec<Option<Box<dyn Bearer + Send>>>,
    /// The slots of `bearers` that hold one, in order: the duty cycle visits only these.
    active: Vec<usize>,
    clock: Clock,
    /// The clock reading of the current duty cycle.
    cycle_now: Instant,
    scratch: Vec<u8>,
    ready: Vec<bool>,
    stats: RuntimeStats,
}

impl std::fmt::Debug for dyn Bearer + Send {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bearer({:?}, {:?})", self.media(), self.local_addr())
    }
}

impl NodeRuntime {
    /// A runtime around `node`, with no bearer yet.
    pub fn new(node: Node) -> Self {
        Self {
            node,
            bearers: (0..MAX_BEARERS).map(|_| None).collect(),
            active: Vec::new(),
            clock: Clock::new(),
            cycle_now: Instant::ZERO,
            scratch: vec![0u8; MAX_MSG_SIZE + 64],
            ready: Vec::new(),
            stats: RuntimeStats::default(),
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node, for commands (bind, send, ...). Call [`NodeRuntime::flush`] afterwards, or
    /// let the next [`NodeRuntime::poll`] send what the command queued.
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// The current time on the runtime's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Counters.
    pub fn stats(&self) -> &RuntimeStats {
        &self.stats
    }

    /// A bearer, for its counters or configuration.
    pub fn bearer(&self, id: BearerId) -> Option<&(dyn Bearer + Send)> {
        self.bearers.get(usize::from(id.0))?.as_deref()
    }

    /// A bearer, mutably (e.g. to start a pcap tap).
    pub fn bearer_mut(&mut self, id: BearerId) -> Option<&mut (dyn Bearer + Send)> {
        match self.bearers.get_mut(usize::from(id.0)) {
            Some(Some(b)) => Some(&mut **b),
            _ => None,
        }
    }

    /// Enables a bearer: the node starts discovery on it at once.
    pub fn add_bearer(
        &mut self,
        bearer: Box<dyn Bearer + Send>,
        name: &str,
        if_name: &str,
        tolerance: Duration,
    ) -> Result<BearerId, NodeError> {
        let media = bearer.media();
        let mut cfg = BearerConfig::new(name, if_name, media, bearer.local_addr());
        cfg.mtu = bearer.mtu();
        cfg.broadcast = bearer.supports_broadcast();
        cfg.tolerance = tolerance;
        if matches!(media, MediaKind::Udp4 | MediaKind::Udp6) {
            cfg.max_window = media.max_window();
        }
        let now = self.clock.now();
        let id = self.node.add_bearer(now, cfg)?;
        let i = usize::from(id.0);
        if let Some(slot) = self.bearers.get_mut(i) {
            *slot = Some(bearer);
            if !self.active.contains(&i) {
                self.active.push(i);
                self.active.sort_unstable();
            }
        }
        self.flush();
        Ok(id)
    }

    /// Sends everything the node has queued, after running the node's timers if one is due —
    /// which includes messages a link holds back to bundle them with others sent at the same
    /// instant (`LinkConfig::bundle_bursts` in the core): they leave with this flush too.
    pub fn flush(&mut self) {
        let now = self.clock.now();
        self.flush_at(now);
    }

    /// [`NodeRuntime::flush`] with the caller's reading of the clock (one reading per duty
    /// cycle, e.g. [`NodeRuntime::cycle_now`], saves one per flush).
    pub fn flush_at(&mut self, now: Instant) {
        self.run_due_timers(now);
        self.send_queued();
    }

    /// The clock reading of the last [`NodeRuntime::do_work`] or [`NodeRuntime::poll`]: the
    /// "now" of the current duty cycle, for commands issued in it (messages handed to the
    /// node at one instant may be bundled, see [`NodeRuntime::flush`]).
    pub fn cycle_now(&self) -> Instant {
        self.cycle_now
    }

    /// Runs the node's timers if one is due at `now`; returns whether it did.
    fn run_due_timers(&mut self, now: Instant) -> bool {
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
            true
        } else {
            false
        }
    }

    /// Hands every packet the node has queued to its bearer, then lets each bearer push out
    /// what it buffered (one kick per bearer, not one per packet).
    fn send_queued(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            self.transmit(t);
        }
        for &i in &self.active {
            if let Some(Some(b)) = self.bearers.get_mut(i)
                && b.flush().is_err()
            {
                self.stats.tx_errors += 1;
            }
        }
    }

    fn transmit(&mut self, t: Transmit) {
        match self.bearers.get_mut(usize::from(t.bearer.0)) {
            Some(Some(b)) => match b.send(&t.dest, &t.data) {
                Ok(()) => self.stats.tx_frames += 1,
                Err(_) => self.stats.tx_errors += 1,
            },
            _ => self.stats.tx_no_bearer += 1,
        }
    }

    /// One cycle. Waits at most `max_wait` (less if a node timer falls due first; zero means
    /// do not wait), also watching `extra` descriptors, and returns which of those are
    /// readable, in order.
    pub fn poll(&mut self, max_wait: Duration, extra: &[BorrowedFd<'_>]) -> io::Result<Vec<bool>> {
        self.stats.cycles += 1;
        let now = self.clock.now();
        self.cycle_now = now;
        self.run_due_timers(now);
        self.send_queued();
        let wait = match self.node.poll_timeout() {
            Some(t) if t <= now => Duration::ZERO,
            Some(t) => (t - now).min(max_wait),
            None => max_wait,
        };
        let ids = self.active.clone();
        let mut ready = std::mem::take(&mut self.ready);
        {
            let mut fds: Vec<BorrowedFd<'_>> = ids
                .iter()
                .filter_map(|&i| self.bearers[i].as_ref().map(|b| b.fd()))
                .collect();
            fds.extend_from_slice(extra);
            sys::poll_many(&fds, wait, &mut ready)?;
        }
        let now = self.clock.now();
        self.cycle_now = now;
        for (k, &i) in ids.iter().enumerate() {
            if !ready.get(k).copied().unwrap_or(false) {
                continue;
            }
            self.drain_bearer(now, i);
        }
        self.run_due_timers(now);
        self.send_queued();
        let extra_ready = ready.get(ids.len()..).unwrap_or(&[]).to_vec();
        self.ready = ready;
        Ok(extra_ready)
    }

    fn drain_bearer(&mut self, now: Instant, i: usize) {
        let Some(Some(b)) = self.bearers.get_mut(i) else {
            return;
        };
        let node = &mut self.node;
        let mut n = 0u64;
        let id = BearerId(i as u8);
        let _ = b.recv_batch(&mut self.scratch, RX_BATCH, &mut |frame, meta| {
            node.handle_frame(now, id, meta.src, frame);
            n += 1;
        });
        self.stats.rx_frames += n;
    }

    /// Runs cycles until `cond` holds or `timeout` passes; returns whether `cond` held.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut cond: impl FnMut(&mut Self) -> bool,
    ) -> io::Result<bool> {
        let deadline = self.clock.now() + timeout;
        loop {
            if cond(self) {
                return Ok(true);
            }
            let now = self.clock.now();
            if now >= deadline {
                return Ok(false);
            }
            self.poll((deadline - now).min(Duration::from_millis(50)), &[])?;
        }
    }

    /// Takes every link down with a peer-stopping RESET and sends it (clean shutdown).
    pub fn shutdown(&mut self) {
        let now = self.clock.now();
        self.node.shutdown(now);
        self.send_queued();
    }

    /// One non-blocking cycle, the duty cycle of the poll-mode engine (`crate::engine`): read
    /// the clock once, take up to [`RX_BATCH`] frames from every bearer, run the node's timers
    /// if one is due, and send everything the node queued (also what commands queued since
    /// the last cycle). Never waits. Returns the work done: frames received, timer runs and
    /// frames handed to (or refused by) the bearers; 0 means the node was idle.
    ///
    /// Receive errors are counted in each bearer's stats, send errors in [`RuntimeStats`].
    pub fn do_work(&mut self) -> usize {
        self.stats.cycles += 1;
        let before = self.stats;
        let now = self.clock.now();
        self.cycle_now = now;
        for k in 0..self.active.len() {
            let i = self.active[k];
            self.drain_bearer(now, i);
        }
        let timers = u64::from(self.run_due_timers(now));
        self.send_queued();
        let after = self.stats;
        let work = (after.rx_frames - before.rx_frames)
            + (after.tx_frames - before.tx_frames)
            + (after.tx_errors - before.tx_errors)
            + (after.tx_no_bearer - before.tx_no_bearer)
            + timers;
        usize::try_from(work).unwrap_or(usize::MAX)
    }

    /// Appends the descriptors an idle runtime waits on (one per bearer) to `fds`. Borrowed:
    /// they stay open as long as the runtime (bearers are never removed).
    pub fn wait_fds(&self, fds: &mut Vec<std::os::fd::RawFd>) {
        fds.extend(
            self.active
                .iter()
                .filter_map(|&i| self.bearers.get(i)?.as_ref())
                .map(|b| b.raw_fd()),
        );
    }

    /// How long from now until the node's next timer falls due (zero if it is due), or `None`
    /// if no timer is armed: the longest an idle runtime may sleep.
    pub fn next_deadline(&self) -> Option<Duration> {
        let t = self.node.poll_timeout()?;
        Some(t.saturating_since(self.clock.now()))
    }
}
