//! Idle strategies: what an engine thread does after a duty cycle, given how much work the
//! cycle did (agrona's `IdleStrategy`). Work resets the strategy; idleness escalates it. The
//! comparison table and how the sleeping strategies sleep are in the engine module's docs.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::str::FromStr;
use std::time::Duration;

use super::agent::Agent;
use super::doorbell::Doorbell;
use crate::sys;

/// What an idle strategy did after one duty cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idled {
    /// The cycle did work: the strategy reset and returned at once.
    Worked,
    /// Spun once (a `spin_loop` hint); also what a sleeping strategy does when an agent's
    /// deadline has already come.
    Spun,
    /// Yielded the CPU once (`sched_yield`).
    Yielded,
    /// Parked for up to this period (less if an agent's deadline came first), until this woke
    /// it.
    Parked(Duration, Wake),
    /// Blocked until this woke it.
    Blocked(Wake),
}

/// What ended a park or a blocking wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The thread's doorbell was rung.
    Doorbell,
    /// An agent's descriptor became readable.
    Ready,
    /// The wait timed out (the park period, an agent's deadline, or the longest wait).
    Timeout,
}

/// What an engine thread does between duty cycles.
pub trait IdleStrategy: Send + fmt::Debug {
    /// Called after every duty cycle with the work it did: resets on work, otherwise idles a
    /// little more than last time. `agent` is the (possibly composite) agent the thread runs,
    /// for the strategies that sleep on its descriptors and deadline.
    fn idle(&mut self, work_count: usize, agent: &dyn Agent) -> Idled;

    /// Forgets the escalation, as after a cycle that did work.
    fn reset(&mut self);

    /// The strategy's name, as `--idle` spells it.
    fn alias(&self) -> &'static str;
}

/// Spins: never gives the CPU away. Burns a whole core; the lowest wake-up latency.
#[derive(Debug, Clone, Copy, Default)]
pub struct BusySpin;

impl IdleStrategy for BusySpin {
    fn idle(&mut self, work_count: usize, _agent: &dyn Agent) -> Idled {
        if work_count > 0 {
            return Idled::Worked;
        }
        std::hint::spin_loop();
        Idled::Spun
    }

    fn reset(&mut self) {}

    fn alias(&self) -> &'static str {
        "spin"
    }
}

/// The epoll token of the doorbell; agents' descriptors use their number (never negative).
const DOORBELL_TOKEN: u64 = u64::MAX;

/// How the sleeping strategies sleep: an epoll set holding the doorbell for good and following
/// the agents' [`Agent::wait_fds`]. The list is compared with the registered one at each sleep
/// (sorted; no syscall when it did not change) and the difference added or removed.
/// Level-triggered, so a descriptor an agent did not drain (its batch was full) ends the next
/// sleep at once.
struct Sleeper {
    epoll: OwnedFd,
    doorbell: Doorbell,
    registered: Vec<RawFd>,
    wanted: Vec<RawFd>,
    events: Vec<libc::epoll_event>,
    registration_errors: u64,
}

impl Sleeper {
    fn new(doorbell: Doorbell) -> io::Result<Self> {
        let epoll = sys::epoll_create()?;
        sys::epoll_add(epoll.as_fd(), doorbell.fd().as_raw_fd(), DOORBELL_TOKEN)?;
        Ok(Self {
            epoll,
            doorbell,
            registered: Vec::new(),
            wanted: Vec::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 16],
            registration_errors: 0,
        })
    }

    /// How long to sleep: `limit`, or less if an agent's deadline comes first.
    fn timeout(agent: &dyn Agent, limit: Duration) -> Duration {
        agent.next_deadline().map_or(limit, |d| d.min(limit))
    }

    /// Sleeps up to `timeout` (not zero) for the agent's descriptors or the doorbell.
    fn sleep(&mut self, agent: &dyn Agent, timeout: Duration) -> Wake {
        self.sync(agent);
        if !agent.prepare_park() {
            return Wake::Ready;
        }
        let n = match sys::epoll_wait_precise(self.epoll.as_fd(), &mut self.events, timeout) {
            Ok(n) => n,
            Err(_) => {
                // Cannot happen with our own epoll descriptor and buffer; never spin if it does.
                std::thread::sleep(timeout.min(Duration::from_millis(1)));
                0
            }
        };
        let fired = self.events.get(..n).unwrap_or(&[]);
        if fired.iter().any(|ev| ev.u64 == DOORBELL_TOKEN) {
            self.doorbell.take();
            Wake::Doorbell
        } else if n > 0 {
            Wake::Ready
        } else {
            Wake::Timeout
        }
    }

    /// Brings the epoll set in line with the agent's descriptors.
    fn sync(&mut self, agent: &dyn Agent) {
        self.wanted.clear();
        agent.wait_fds(&mut self.wanted);
        self.wanted.sort_unstable();
        self.wanted.dedup();
        if self.wanted == self.registered {
            return;
        }
        let epoll = self.epoll.as_fd();
        for &fd in &self.registered {
            if self.wanted.binary_search(&fd).is_err() {
                // ENOENT/EBADF when the file was closed already: epoll forgot it by itself.
                let _ = sys::epoll_del(epoll, fd);
            }
        }
        let mut now_registered = Vec::with_capacity(self.wanted.len());
        for &fd in &self.wanted {
            let ok = self.registered.binary_search(&fd).is_ok()
                || match sys::epoll_add(epoll, fd, u64::try_from(fd).unwrap_or(0)) {
                    Ok(()) => true,
                    Err(e) => e.raw_os_error() == Some(libc::EEXIST),
                };
            if ok {
                now_registered.push(fd);
            } else {
                self.registration_errors += 1;
            }
        }
        self.registered = now_registered;
    }
}

impl fmt::Debug for Sleeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleeper")
            .field("epoll", &self.epoll)
            .field("doorbell", &self.doorbell)
            .field("registered", &self.registered)
            .field("registration_errors", &self.registration_errors)
            .finish_non_exhaustive()
    }
}

/// Parameters of [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Idle cycles that spin before the strategy starts yielding.
    pub max_spins: u32,
    /// Idle cycles that yield before the strategy starts parking.
    pub max_yields: u32,
    /// The first park.
    pub min_park: Duration,
    /// The longest park; each park doubles the last one up to this. Parks end early for a
    /// readable descriptor, a doorbell ring and an agent's deadline, so this only bounds how
    /// late the engine notices work nobody signals, and sets the idle cost: one duty cycle per
    /// `max_park`.
    pub max_park: Duration,
}

impl Default for BackoffConfig {
    /// Aeron's C spin and yield counts (10, 20), then parks from 50 µs to 10 ms. Aeron parks
    /// from 1 µs to 1 ms; here a park shorter than the kernel's default 50 µs timer slack
    /// lasts 50 µs anyway, and a park ends early for readiness, rings and deadlines, so a
    /// longer last park costs no latency for signalled work while it cuts the idle wake-ups
    /// tenfold: each costs ~25 µs of CPU on the 2-core VMs, so 1 ms parks alone would cost
    /// 2.5 % of a core (see the [engine docs](super) for the measurements).
    fn default() -> Self {
        Self {
            max_spins: 10,
            max_yields: 20,
            min_park: Duration::from_micros(50),
            max_park: Duration::from_millis(10),
        }
    }
}

/// Spin, then yield, then park with exponentially longer parks (agrona's
/// `BackoffIdleStrategy`). A cycle with work starts over. A park is a sleep on the agents'
/// descriptors, the doorbell and the next deadline (see the [engine docs](super)).
#[derive(Debug)]
pub struct Backoff {
    config: BackoffConfig,
    spins: u32,
    yields: u32,
    park: Duration,
    sleeper: Sleeper,
}

impl Backoff {
    /// A backoff strategy with these parameters, woken by `doorbell` (a `max_park` below
    /// `min_park` is raised to it; a zero `min_park` to 1 µs, so parks keep growing).
    ///
    /// # Errors
    ///
    /// The OS error of `epoll_create1(2)` or of registering the doorbell.
    pub fn new(config: BackoffConfig, doorbell: Doorbell) -> io::Result<Self> {
        let mut config = config;
        config.min_park = config.min_park.max(Duration::from_micros(1));
        config.max_park = config.max_park.max(config.min_park);
        Ok(Self {
            config,
            spins: 0,
            yields: 0,
            park: config.min_park,
            sleeper: Sleeper::new(doorbell)?,
        })
    }

    /// The parameters.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The doorbell that ends a park.
    pub fn doorbell(&self) -> &Doorbell {
        &self.sleeper.doorbell
    }
}

impl IdleStrategy for Backoff {
    fn idle(&mut self, work_count: usize, agent: &dyn Agent) -> Idled {
        if work_count > 0 {
            self.reset();
            return Idled::Worked;
        }
        if self.spins < self.config.max_spins {
            self.spins += 1;
            std::hint::spin_loop();
            return Idled::Spun;
        }
        if self.yields < self.config.max_yields {
            self.yields += 1;
            std::thread::yield_now();
            return Idled::Yielded;
        }
        let park = self.park;
        let timeout = Sleeper::timeout(agent, park);
        if timeout.is_zero() {
            // A deadline has come: run the next cycle at once.
            std::hint::spin_loop();
            return Idled::Spun;
        }
        let wake = self.sleeper.sleep(agent, timeout);
        self.park = park.saturating_mul(2).min(self.config.max_park);
        Idled::Parked(park, wake)
    }

    fn reset(&mut self) {
        self.spins = 0;
        self.yields = 0;
        self.park = self.config.min_park;
    }

    fn alias(&self) -> &'static str {
        "backoff"
    }
}

/// Sleeps as soon as a cycle found nothing to do, until an agent's descriptor is readable,
/// the thread's [`Doorbell`] rings, or the agents' next deadline (capped at `max_wait`)
/// passes. An idle thread uses no CPU; every wake-up costs a syscall or two.
#[derive(Debug)]
pub struct Blocking {
    sleeper: Sleeper,
    max_wait: Duration,
}

impl Blocking {
    /// A blocking strategy woken by `doorbell`, sleeping at most `max_wait` at a time (a
    /// safety net: agents' deadlines and the doorbell are what normally end a sleep).
    ///
    /// # Errors
    ///
    /// The OS error of `epoll_create1(2)` or of registering the doorbell.
    pub fn new(doorbell: Doorbell, max_wait: Duration) -> io::Result<Self> {
        Ok(Self {
            sleeper: Sleeper::new(doorbell)?,
            max_wait,
        })
    }

    /// The doorbell that wakes this strategy.
    pub fn doorbell(&self) -> &Doorbell {
        &self.sleeper.doorbell
    }

    /// Descriptors an agent listed that epoll refused (closed, or of a kind epoll cannot
    /// watch); they are tried again at every sleep.
    pub fn registration_errors(&self) -> u64 {
        self.sleeper.registration_errors
    }
}

impl IdleStrategy for Blocking {
    fn idle(&mut self, work_count: usize, agent: &dyn Agent) -> Idled {
        if work_count > 0 {
            return Idled::Worked;
        }
        let timeout = Sleeper::timeout(agent, self.max_wait);
        if timeout.is_zero() {
            // A deadline has come: run the next cycle at once.
            std::hint::spin_loop();
            return Idled::Spun;
        }
        Idled::Blocked(self.sleeper.sleep(agent, timeout))
    }

    fn reset(&mut self) {}

    fn alias(&self) -> &'static str {
        "block"
    }
}

/// The idle strategy a user picks: `--idle spin|backoff|block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdleKind {
    /// [`BusySpin`].
    Spin,
    /// [`Backoff`], the default.
    #[default]
    Backoff,
    /// [`Blocking`].
    Block,
}

impl IdleKind {
    /// Every kind, as `--idle` spells them.
    pub const NAMES: [&'static str; 3] = ["spin", "backoff", "block"];

    /// The name `--idle` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spin => "spin",
            Self::Backoff => "backoff",
            Self::Block => "block",
        }
    }
}

impl FromStr for IdleKind {
    type Err = ParseIdleKindError;

    /// `spin`, `backoff` or `block` (also `busy-spin` and `blocking`), in any case.
    fn from_str(s: &str) -> Result<Self, ParseIdleKindError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "spin" | "busy-spin" | "busyspin" => Ok(Self::Spin),
            "backoff" => Ok(Self::Backoff),
            "block" | "blocking" => Ok(Self::Block),
            _ => Err(ParseIdleKindError(s.to_owned())),
        }
    }
}

impl fmt::Display for IdleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `--idle` value that is not an idle strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIdleKindError(pub String);

impl fmt::Display for ParseIdleKindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an idle strategy: use spin (burns a core, lowest latency), backoff \
             (the default) or block (sleeps in epoll, no idle CPU)",
            self.0
        )
    }
}

impl std::error::Error for ParseIdleKindError {}

/// How to build each engine thread's idle strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdleConfig {
    /// Which strategy.
    pub kind: IdleKind,
    /// Parameters of [`Backoff`].
    pub backoff: BackoffConfig,
    /// Longest single sleep of [`Blocking`] when no deadline is nearer (default 1 s).
    pub max_block: Option<Duration>,
}

impl IdleConfig {
    /// Default longest sleep of [`Blocking`].
    pub const DEFAULT_MAX_BLOCK: Duration = Duration::from_secs(1);

    /// `kind` with default parameters.
    pub fn new(kind: IdleKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// A strategy for one engine thread, woken by `doorbell`.
    ///
    /// # Errors
    ///
    /// [`Backoff::new`]'s or [`Blocking::new`]'s.
    pub fn build(&self, doorbell: &Doorbell) -> io::Result<Box<dyn IdleStrategy>> {
        Ok(match self.kind {
            IdleKind::Spin => Box::new(BusySpin),
            IdleKind::Backoff => Box::new(Backoff::new(self.backoff, doorbell.clone())?),
            IdleKind::Block => Box::new(Blocking::new(
                doorbell.clone(),
                self.max_block.unwrap_or(Self::DEFAULT_MAX_BLOCK),
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    use super::*;

    /// An agent that only describes what to wait for.
    #[derive(Debug, Default)]
    struct Waiting {
        fds: Vec<RawFd>,
        deadline: Option<Duration>,
    }

    impl Agent for Waiting {
        fn role_name(&self) -> &str {
            "waiting"
        }
        fn do_work(&mut self) -> usize {
            0
        }
        fn wait_fds(&self, fds: &mut Vec<RawFd>) {
            fds.extend_from_slice(&self.fds);
        }
        fn next_deadline(&self) -> Option<Duration> {
            self.deadline
        }
    }

    fn backoff(config: BackoffConfig) -> Backoff {
        Backoff::new(config, Doorbell::new().expect("eventfd")).expect("epoll")
    }

    #[test]
    fn backoff_spins_then_yields_then_parks_longer_and_resets_on_work() {
        let mut b = backoff(BackoffConfig {
            max_spins: 3,
            max_yields: 2,
            min_park: Duration::from_micros(1),
            max_park: Duration::from_micros(8),
        });
        let a = Waiting::default();
        for round in 0..2 {
            let got: Vec<Idled> = (0..10).map(|_| b.idle(0, &a)).collect();
            let us = |n| Idled::Parked(Duration::from_micros(n), Wake::Timeout);
            assert_eq!(
                got,
                [
                    Idled::Spun,
                    Idled::Spun,
                    Idled::Spun,
                    Idled::Yielded,
                    Idled::Yielded,
                    us(1),
                    us(2),
                    us(4),
                    us(8),
                    us(8),
                ],
                "round {round}"
            );
            assert_eq!(b.idle(5, &a), Idled::Worked, "work resets");
        }
    }

    #[test]
    fn backoff_config_is_sanitised() {
        let b = backoff(BackoffConfig {
            max_spins: 0,
            max_yields: 0,
            min_park: Duration::from_millis(5),
            max_park: Duration::from_millis(1),
        });
        assert_eq!(b.config().max_park, Duration::from_millis(5));
        let mut b = backoff(BackoffConfig {
            min_park: Duration::ZERO,
            max_park: Duration::from_micros(2),
            max_spins: 0,
            max_yields: 0,
        });
        let a = Waiting::default();
        let park = |n| Idled::Parked(Duration::from_micros(n), Wake::Timeout);
        assert_eq!(b.idle(0, &a), park(1));
        assert_eq!(b.idle(0, &a), park(2));
    }

    /// Long parks: a doorbell, a readable descriptor and a deadline each end one early.
    #[test]
    fn a_backoff_park_ends_early_for_a_ring_readiness_or_a_deadline() {
        let mut b = backoff(BackoffConfig {
            max_spins: 0,
            max_yields: 0,
            min_park: Duration::from_secs(10),
            max_park: Duration::from_secs(10),
        });
        let ten = Duration::from_secs(10);
        b.doorbell().ring();
        let t0 = Instant::now();
        assert_eq!(
            b.idle(0, &Waiting::default()),
            Idled::Parked(ten, Wake::Doorbell)
        );
        let (r, mut w) = UnixStream::pair().expect("socketpair");
        w.write_all(b"x").expect("write");
        let ready = Waiting {
            fds: vec![r.as_raw_fd()],
            ..Waiting::default()
        };
        assert_eq!(b.idle(0, &ready), Idled::Parked(ten, Wake::Ready));
        let soon = Waiting {
            deadline: Some(Duration::from_millis(5)),
            ..Waiting::default()
        };
        assert_eq!(b.idle(0, &soon), Idled::Parked(ten, Wake::Timeout));
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let due = Waiting {
            deadline: Some(Duration::ZERO),
            ..Waiting::default()
        };
        assert_eq!(b.idle(0, &due), Idled::Spun, "a due deadline does not park");
    }

    #[test]
    fn busy_spin_never_sleeps() {
        let a = Waiting::default();
        assert_eq!(BusySpin.idle(0, &a), Idled::Spun);
        assert_eq!(BusySpin.idle(1, &a), Idled::Worked);
    }

    fn blocking(max_wait: Duration) -> Blocking {
        Blocking::new(Doorbell::new().expect("eventfd"), max_wait).expect("epoll")
    }

    #[test]
    fn blocking_wakes_on_a_doorbell() {
        let mut b = blocking(Duration::from_secs(10));
        let bell = b.doorbell().clone();
        let a = Waiting::default();
        let ringer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            bell.ring();
        });
        let t0 = Instant::now();
        assert_eq!(b.idle(0, &a), Idled::Blocked(Wake::Doorbell));
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(5), "woke after {took:?}");
        ringer.join().expect("ringer");
        assert!(!b.doorbell().is_rung(), "the ring was taken");
        // Taken: the next wait sleeps until its timeout instead of waking again.
        let a = Waiting {
            deadline: Some(Duration::from_millis(5)),
            ..Waiting::default()
        };
        assert_eq!(b.idle(0, &a), Idled::Blocked(Wake::Timeout));
    }

    #[test]
    fn blocking_wakes_on_a_readable_descriptor_and_follows_the_list() {
        let mut b = blocking(Duration::from_secs(10));
        let (r, mut w) = UnixStream::pair().expect("socketpair");
        let a = Waiting {
            fds: vec![r.as_raw_fd()],
            ..Waiting::default()
        };
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            w.write_all(b"x").expect("write");
            w
        });
        let t0 = Instant::now();
        assert_eq!(b.idle(0, &a), Idled::Blocked(Wake::Ready));
        assert!(t0.elapsed() < Duration::from_secs(5));
        let _w = writer.join().expect("writer");
        assert_eq!(b.sleeper.registered, [r.as_raw_fd()]);
        // Level-triggered: unread data wakes again at once.
        assert_eq!(b.idle(0, &a), Idled::Blocked(Wake::Ready));
        // An agent that stops listing it is no longer woken by it.
        let quiet = Waiting {
            deadline: Some(Duration::from_millis(5)),
            ..Waiting::default()
        };
        assert_eq!(b.idle(0, &quiet), Idled::Blocked(Wake::Timeout));
        assert!(b.sleeper.registered.is_empty());
        assert_eq!(b.registration_errors(), 0);
    }

    #[test]
    fn blocking_wakes_at_the_deadline() {
        let mut b = blocking(Duration::from_secs(10));
        let a = Waiting {
            deadline: Some(Duration::from_millis(30)),
            ..Waiting::default()
        };
        let t0 = Instant::now();
        assert_eq!(b.idle(0, &a), Idled::Blocked(Wake::Timeout));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(5),
            "slept {took:?} for a 30 ms deadline"
        );
        let due = Waiting {
            deadline: Some(Duration::ZERO),
            ..Waiting::default()
        };
        assert_eq!(b.idle(0, &due), Idled::Spun, "a due timer does not sleep");
        assert_eq!(b.idle(3, &due), Idled::Worked);
    }

    #[test]
    fn blocking_caps_a_sleep_at_max_wait_and_counts_bad_descriptors() {
        let mut b = blocking(Duration::from_millis(10));
        let a = Waiting {
            fds: vec![1_000_000],
            deadline: None,
        };
        let t0 = Instant::now();
        assert_eq!(b.idle(0, &a), Idled::Blocked(Wake::Timeout));
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(b.registration_errors(), 1, "EBADF is counted");
        assert!(b.sleeper.registered.is_empty());
    }

    #[test]
    fn idle_kinds_parse_as_the_cli_spells_them() {
        for name in IdleKind::NAMES {
            let k: IdleKind = name.parse().expect(name);
            assert_eq!(k.to_string(), name);
        }
        assert_eq!("Blocking".parse::<IdleKind>(), Ok(IdleKind::Block));
        assert_eq!("busy-spin".parse::<IdleKind>(), Ok(IdleKind::Spin));
        assert_eq!(IdleKind::default(), IdleKind::Backoff);
        let e = "sleep".parse::<IdleKind>().expect_err("not a strategy");
        assert!(e.to_string().contains("spin"), "{e}");
    }

    #[test]
    fn configs_build_their_strategy() {
        let bell = Doorbell::new().expect("eventfd");
        for kind in [IdleKind::Spin, IdleKind::Backoff, IdleKind::Block] {
            let s = IdleConfig::new(kind).build(&bell).expect("build");
            assert_eq!(s.alias(), kind.as_str());
        }
    }
}
