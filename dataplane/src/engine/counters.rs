//! Counters of one engine thread (or invoker): duty cycles, work, idling.
//!
//! Each thread is the only writer of its counters, so an update is a relaxed load and store
//! (no locked read-modify-write on the duty cycle); readers on other threads see values at
//! most a cycle old. The block is aligned to 128 bytes so no other data shares its cache
//! lines (two lines, for the adjacent-line prefetcher).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::idle::{Idled, Wake};

/// A snapshot of one thread's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerStats {
    /// Duty cycles run (in the shared mode, one cycle runs every agent once).
    pub duty_cycles: u64,
    /// Work done, the sum of what the duty cycles returned.
    pub work: u64,
    /// Duty cycles that did no work.
    pub idle_cycles: u64,
    /// Idle steps that spun.
    pub spins: u64,
    /// Idle steps that yielded the CPU.
    pub yields: u64,
    /// Idle steps that parked or blocked the thread.
    pub parks: u64,
    /// Parks and blocking waits a doorbell ended.
    pub doorbell_wakeups: u64,
}

/// One thread's counters, written by that thread only.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct RunnerCounters {
    duty_cycles: AtomicU64,
    work: AtomicU64,
    idle_cycles: AtomicU64,
    spins: AtomicU64,
    yields: AtomicU64,
    parks: AtomicU64,
    doorbell_wakeups: AtomicU64,
}

/// Adds `n` to a counter only this thread writes.
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl RunnerCounters {
    /// Counts one duty cycle and what it did.
    pub(crate) fn cycle(&self, work: usize) {
        bump(&self.duty_cycles, 1);
        if work == 0 {
            bump(&self.idle_cycles, 1);
        } else {
            bump(&self.work, u64::try_from(work).unwrap_or(u64::MAX));
        }
    }

    /// Counts what the idle strategy did.
    pub(crate) fn idled(&self, idled: Idled) {
        match idled {
            Idled::Worked => {}
            Idled::Spun => bump(&self.spins, 1),
            Idled::Yielded => bump(&self.yields, 1),
            Idled::Parked(_, wake) | Idled::Blocked(wake) => {
                bump(&self.parks, 1);
                if wake == Wake::Doorbell {
                    bump(&self.doorbell_wakeups, 1);
                }
            }
        }
    }

    /// The current values.
    pub(crate) fn snapshot(&self) -> RunnerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RunnerStats {
            duty_cycles: get(&self.duty_cycles),
            work: get(&self.work),
            idle_cycles: get(&self.idle_cycles),
            spins: get(&self.spins),
            yields: get(&self.yields),
            parks: get(&self.parks),
            doorbell_wakeups: get(&self.doorbell_wakeups),
        }
    }
}

/// One engine thread as [`super::Engine::stats`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerReport {
    /// The role name of the agent (or agents, joined with `+`) the thread runs.
    pub role: String,
    /// The counters.
    pub stats: RunnerStats,
    /// CPU time the thread has used, `None` in the invoker mode (the caller's thread) or when
    /// the thread has ended.
    pub cpu_time: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cycles_and_idling() {
        let c = RunnerCounters::default();
        c.cycle(3);
        c.cycle(0);
        c.idled(Idled::Worked);
        c.idled(Idled::Spun);
        c.idled(Idled::Yielded);
        c.idled(Idled::Parked(Duration::from_micros(1), Wake::Timeout));
        c.idled(Idled::Blocked(Wake::Doorbell));
        c.idled(Idled::Blocked(Wake::Timeout));
        assert_eq!(
            c.snapshot(),
            RunnerStats {
                duty_cycles: 2,
                work: 3,
                idle_cycles: 1,
                spins: 1,
                yields: 1,
                parks: 3,
                doorbell_wakeups: 1,
            }
        );
        assert_eq!(align_of::<RunnerCounters>(), 128);
    }
}
