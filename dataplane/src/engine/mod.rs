//! The poll-mode engine: agents, idle strategies, threading modes, CPU pinning.
//!
//! After Aeron and agrona (see `../shared/STYLE.md` §3 and §7 items 9–10), the engine keeps
//! three things apart:
//!
//! * **what runs** — an [`Agent`]: `do_work()` is one bounded, non-blocking duty cycle that
//!   returns a work count (0 = idle). A node ([`crate::runtime::NodeRuntime`]) is an agent:
//!   each cycle reads the clock once, drains RX batches, runs due timers and flushes TX, run
//!   to completion with no lock;
//! * **what an idle thread does** — an [`IdleStrategy`]: [`BusySpin`], [`Backoff`] (spin →
//!   yield → park, exponentially; the default) or [`Blocking`] (epoll on the agents'
//!   descriptors and a [`Doorbell`] eventfd, with the timeout of the agents' next deadline);
//! * **which threads** — a [`ThreadingMode`]: dedicated (a thread per agent), shared (every
//!   agent on one thread, round-robin: the default on ≤ 2 CPUs) or invoker (the caller runs
//!   each cycle with [`AgentInvoker::invoke`]: tests, embedding).
//!
//! An [`Engine`] starts the threads of a mode, pins them to a `--cpu` [`CpuList`], hands each
//! agent its thread's [`Doorbell`] and a [`StopHandle`], counts duty cycles, work, idle cycles
//! and parks per thread ([`RunnerStats`], with the thread's CPU time), and stops them cleanly
//! (stop flag + doorbell, bounded join).
//!
//! The command-line side is parsing only: [`IdleKind`] (`--idle spin|backoff|block`),
//! [`CpuList`] (`--cpu 0`, `0,1`, `0-1`) and [`ThreadingMode`] implement `FromStr` with
//! errors that say what to write instead.
//!
//! # Idle strategies
//!
//! | strategy | when idle | wake-up | for |
//! |---|---|---|---|
//! | [`BusySpin`] | spins: a whole core | next cycle (~µs) | dedicated cores |
//! | [`Backoff`] | spins, yields, parks 50 µs → 10 ms | ~µs, or a wake-up | the default |
//! | [`Blocking`] | sleeps until there is work | a wake-up (~50–100 µs) | idle CPU ~0, tests |
//!
//! Both sleeping strategies sleep the same way: in `epoll_wait` on the agents' descriptors
//! ([`Agent::wait_fds`]) and the thread's [`Doorbell`], for at most the agents' next deadline
//! ([`Agent::next_deadline`]). So a parked engine wakes at once for a frame, a ring or a
//! stop, and timers fire on time whatever the park period; the period only bounds how late an
//! engine notices work that nobody signals. Timeouts have nanosecond resolution
//! (`epoll_pwait2`), so short parks are not rounded up to a millisecond.
//!
//! Run to completion: a duty cycle takes no lock and allocates nothing in the engine; the
//! counters are single-writer relaxed stores; the stop flag is one load per cycle. Drops and
//! full queues are counted where they happen (bearer stats, [`crate::runtime::RuntimeStats`]).
//!
//! # Idle CPU
//!
//! Measured on the 2-core development VM (release build; the tests
//! `idle_node_cpu_backoff_two_engines_over_udp` and
//! `idle_node_cpu_blocking_two_engines_over_af_packet` print it: two nodes with a link up,
//! idle for 2 s, each node's engine thread's CPU clock):
//!
//! | `--idle` | idle node, % of a core | duty cycles | parks |
//! |---|---|---|---|
//! | `backoff` | 0.6 % (debug build: 1.0 %) | ~260/s | ~120/s |
//! | `block` | 0.03 % (debug build: 0.08 %) | ~15/s | ~5/s |
//! | `spin` | 100 % | millions/s | none |
//!
//! Under backoff, 100 of the parks a second are the 10 ms parks; the rest, and the cycles,
//! are the spin/yield/park ramp after each of the node's ~5 timer events a second.
//!
//! Every wake-up from a park costs ~25 µs of CPU on this VM, which is why the backoff's
//! longest park is 10 ms rather than Aeron's 1 ms (that would be ~2.5 %). A woken thread runs
//! its next cycle ~50–100 µs after a frame arrives or a doorbell rings, under both strategies.

mod affinity;
mod agent;
mod counters;
mod doorbell;
mod idle;
mod runner;
mod threading;

pub use self::affinity::{AffinityError, CpuList, CpuListError, pin_current_thread};
pub use self::agent::{Agent, AgentContext, CompositeAgent};
pub use self::counters::{RunnerReport, RunnerStats};
pub use self::doorbell::Doorbell;
pub use self::idle::{
    Backoff, BackoffConfig, Blocking, BusySpin, IdleConfig, IdleKind, IdleStrategy, Idled,
    ParseIdleKindError, Wake,
};
pub use self::runner::AgentInvoker;
pub use self::threading::{Engine, EngineConfig, EngineError, StopHandle, ThreadingMode};
