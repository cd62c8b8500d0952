//! [`SteeringError`], and the turning of raw kernel errors into its actionable variants.

use std::fmt::Write as _;
use std::{fs, io};

use aya::EbpfError;
use aya::maps::MapError;
use aya::programs::ProgramError;

use crate::AttachMode;

/// What goes wrong when loading, attaching or driving the steering program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SteeringError {
    /// The process lacks a capability the kernel asks for.
    #[error(
        "{op}: permission denied ({detail}): run as root or grant \
         cap_bpf,cap_net_admin,cap_perfmon"
    )]
    Permission {
        /// What was being done.
        op: String,
        /// Which capabilities are missing, or the kernel's error when none seem to be.
        detail: String,
    },
    /// The kernel charged the program or a map against `RLIMIT_MEMLOCK`, and it is exhausted
    /// (kernels before 5.11; newer ones charge the memory cgroup instead).
    #[error(
        "{op}: {source} with RLIMIT_MEMLOCK at {limit}: raise RLIMIT_MEMLOCK: ulimit -l unlimited"
    )]
    Memlock {
        /// What was being done.
        op: String,
        /// The current soft limit, as text ("8192 KiB").
        limit: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// No interface of that name exists in the caller's network namespace.
    #[error("unknown network interface {0:?}")]
    UnknownInterface(String),
    /// The kernel verifier refused the program.
    #[error(
        "the kernel verifier rejected the XDP program ({source}); verifier log tail:\n{log_tail}"
    )]
    VerifierRejected {
        /// The last lines of the verifier log.
        log_tail: String,
        /// The error of `BPF_PROG_LOAD`.
        #[source]
        source: io::Error,
    },
    /// Attaching to the interface failed in every mode that was tried.
    #[error("cannot attach the XDP program to {ifname} ({mode:?} mode): {reason}")]
    Attach {
        /// The interface.
        ifname: String,
        /// The mode that was asked for.
        mode: AttachMode,
        /// Why, one line per mode tried.
        reason: String,
    },
    /// A queue index beyond the XSKMAP (see [`crate::MAX_QUEUES`]).
    #[error("RX queue {queue} is out of range: the XSKMAP holds queues 0..{max}")]
    QueueOutOfRange {
        /// The queue asked for.
        queue: u32,
        /// The XSKMAP's size.
        max: u32,
    },
    /// The embedded object could not be parsed or loaded, or lacks a map or the program.
    #[error("cannot load the XDP object: {0}")]
    Load(String),
    /// A map read or write failed.
    #[error("{op}: {source}")]
    Map {
        /// What was being done.
        op: String,
        /// aya's error.
        #[source]
        source: MapError,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(#[source] ProgramError),
    /// The program returned a value that is not an XDP action.
    #[error("the XDP program returned {0}, which is not an XDP action")]
    UnexpectedAction(u32),
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities the program needs that the calling thread lacks (`CAP_SYS_ADMIN` stands in
/// for `CAP_BPF` and `CAP_PERFMON`), e.g. `"CAP_BPF, CAP_PERFMON"`; empty when none is missing
/// or the effective set cannot be read.
pub(crate) fn missing_capabilities() -> String {
    let Some(effective) = fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .map(|hex| hex.trim().to_owned())
        })
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
    else {
        return String::new();
    };
    let has = |cap: u32| effective & (1 << cap) != 0;
    let sys_admin = has(CAP_SYS_ADMIN);
    [
        (CAP_BPF, "CAP_BPF", sys_admin),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN", false),
        (CAP_PERFMON, "CAP_PERFMON", sys_admin),
    ]
    .into_iter()
    .filter(|&(cap, _, covered)| !has(cap) && !covered)
    .map(|(_, name, _)| name)
    .collect::<Vec<_>>()
    .join(", ")
}

/// The soft `RLIMIT_MEMLOCK`, or `None` when it is unlimited.
fn memlock_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the valid pointer it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Whether the running kernel charges BPF memory to `RLIMIT_MEMLOCK` (before 5.11; later
/// kernels charge the memory cgroup, and the limit is irrelevant).
fn kernel_charges_memlock() -> bool {
    let Ok(release) = fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return true;
    };
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) < (5, 11)
}

/// Turns an OS error of `op` into [`SteeringError::Permission`] or
/// [`SteeringError::Memlock`] when it is one of those, or `None`.
fn permission_or_memlock(op: &str, e: &io::Error) -> Option<SteeringError> {
    if !matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
        return None;
    }
    let missing = missing_capabilities();
    if !missing.is_empty() {
        return Some(SteeringError::Permission {
            op: op.to_owned(),
            detail: format!("missing {missing}"),
        });
    }
    if e.raw_os_error() == Some(libc::EPERM)
        && kernel_charges_memlock()
        && let Some(limit) = memlock_limit()
    {
        return Some(SteeringError::Memlock {
            op: op.to_owned(),
            limit: format!("{} KiB", limit / 1024),
            source: io::Error::from_raw_os_error(libc::EPERM),
        });
    }
    Some(SteeringError::Permission {
        op: op.to_owned(),
        detail: e.to_string(),
    })
}

/// An error of an OS call that is not about permissions, as [`SteeringError::Load`].
pub(crate) fn os_error(op: &str, e: &io::Error) -> SteeringError {
    permission_or_memlock(op, e).unwrap_or_else(|| SteeringError::Load(format!("{op}: {e}")))
}

/// The last `lines` non-empty lines of a verifier log.
fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// Lines of the verifier log kept in [`SteeringError::VerifierRejected`].
const LOG_TAIL_LINES: usize = 20;

pub(crate) fn from_program_error(op: &str, e: ProgramError) -> SteeringError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = format!("{verifier_log:?}");
            // Variable-offset packet pointer arithmetic needs CAP_PERFMON.
            if log.contains("!root") {
                let missing = missing_capabilities();
                return SteeringError::Permission {
                    op: op.to_owned(),
                    detail: if missing.is_empty() {
                        "the verifier treats the loader as unprivileged".to_owned()
                    } else {
                        format!("missing {missing}")
                    },
                };
            }
            if log.trim().is_empty()
                && let Some(err) = permission_or_memlock(op, &io_error)
            {
                return err;
            }
            SteeringError::VerifierRejected {
                log_tail: log_tail(&log, LOG_TAIL_LINES),
                source: io_error,
            }
        }
        ProgramError::SyscallError(sys) => os_error(&format!("{op} ({})", sys.call), &sys.io_error),
        ProgramError::MapError(source) => from_map_error(op, source),
        other => SteeringError::Load(format!("{op}: {other}")),
    }
}

pub(crate) fn from_map_error(op: &str, e: MapError) -> SteeringError {
    match e {
        MapError::CreateError { name, io_error } => {
            os_error(&format!("{op}: creating map {name}"), &io_error)
        }
        MapError::SyscallError(sys) => match permission_or_memlock(op, &sys.io_error) {
            Some(err) => err,
            None => SteeringError::Map {
                op: op.to_owned(),
                source: MapError::SyscallError(sys),
            },
        },
        source => SteeringError::Map {
            op: op.to_owned(),
            source,
        },
    }
}

pub(crate) fn from_ebpf_error(e: EbpfError) -> SteeringError {
    const OP: &str = "loading the XDP object";
    match e {
        EbpfError::MapError(m) => from_map_error(OP, m),
        EbpfError::ProgramError(p) => from_program_error(OP, p),
        other => {
            let mut text = String::new();
            let _ = write!(text, "{other}");
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                let _ = write!(text, ": {s}");
                source = s.source();
            }
            SteeringError::Load(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_last_lines() {
        let log = "a\n\nb\nc\n  \nd\n";
        assert_eq!(log_tail(log, 2), "c\nd");
        assert_eq!(log_tail(log, 10), "a\nb\nc\nd");
    }

    #[test]
    fn messages_name_the_fix() {
        let e = SteeringError::Permission {
            op: "loading the XDP object".into(),
            detail: "missing CAP_BPF".into(),
        };
        assert!(
            e.to_string()
                .ends_with("run as root or grant cap_bpf,cap_net_admin,cap_perfmon"),
            "{e}"
        );
        let e = SteeringError::Memlock {
            op: "creating map counters".into(),
            limit: "64 KiB".into(),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(
            e.to_string()
                .ends_with("raise RLIMIT_MEMLOCK: ulimit -l unlimited"),
            "{e}"
        );
    }
}
