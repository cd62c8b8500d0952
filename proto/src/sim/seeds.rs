//! Seed handling for simulation tests: run many seeds in CI, and make a failure replayable
//! by printing the one seed that failed.
//!
//! The default seed list is fixed (`1..=n`) so CI runs the same simulations every time; more
//! coverage is a matter of `UTIPC_SIM_SEEDS=10000`, and a reported failure is replayed alone
//! with `UTIPC_SIM_SEED=<seed>`.

use std::panic::{self, AssertUnwindSafe};

/// Environment variable selecting the single seed to run (decimal or `0x` hex).
pub const SEED_ENV: &str = "UTIPC_SIM_SEED";
/// Environment variable selecting how many seeds to run (`1..=N`).
pub const SEEDS_ENV: &str = "UTIPC_SIM_SEEDS";

/// The seeds a simulation test should run: just `$UTIPC_SIM_SEED` if set, else `1..=N` for
/// `$UTIPC_SIM_SEEDS=N`, else `1..=default_count`.
///
/// # Panics
/// If a variable is set but not a number: silently running other seeds than asked for would
/// make a replay pass for the wrong reason.
pub fn seeds(default_count: usize) -> Vec<u64> {
    let one = std::env::var(SEED_ENV).ok();
    let count = std::env::var(SEEDS_ENV).ok();
    seeds_from(one.as_deref(), count.as_deref(), default_count)
}

/// [`seeds`] with the variables passed in, so it is testable without touching the process
/// environment.
pub(super) fn seeds_from(one: Option<&str>, count: Option<&str>, default_count: usize) -> Vec<u64> {
    if let Some(s) = one {
        return vec![parse_u64(s).unwrap_or_else(|| panic!("{SEED_ENV}={s:?} is not a seed"))];
    }
    let n = match count {
        Some(s) => parse_u64(s).unwrap_or_else(|| panic!("{SEEDS_ENV}={s:?} is not a count")),
        None => default_count as u64,
    };
    (1..=n).collect()
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The line [`run_seeds`] prints when the simulation `name` fails with `seed`.
pub fn failure_message(name: &str, seed: u64) -> String {
    format!("SIMULATION FAILURE: {name} seed={seed} — replay with {SEED_ENV}={seed}")
}

/// Runs `f` for each seed in order. When one panics, prints [`failure_message`] to stderr
/// (which the test harness shows with the failure) and resumes the panic, so the test fails
/// as usual and the remaining seeds are skipped.
pub fn run_seeds(name: &str, seeds: impl IntoIterator<Item = u64>, f: impl Fn(u64)) {
    for seed in seeds {
        // The closure only borrows `f`; if it panics we re-raise at once, so no broken state
        // escapes to be observed.
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| f(seed))) {
            eprintln!("{}", failure_message(name, seed));
            panic::resume_unwind(panic);
        }
    }
}
