//! CPU lists (`--cpu 0`, `--cpu 0,1`, `--cpu 0-1`) and pinning a thread to one.
//!
//! Pinning goes straight to `sched_setaffinity(2)` through the crate's `sys` module rather than
//! through the `core_affinity` crate: `libc` is already a dependency, the raw call pins to a
//! *set* of CPUs (the shared thread gets the whole `--cpu` list, not just its first CPU), and
//! it reports the OS error where `core_affinity::set_for_current` only returns a `bool`. The
//! kernel silently narrows a mask to the CPUs the process's cpuset allows, so after pinning
//! the mask is read back and any CPU the kernel dropped is reported, never ignored.

use std::fmt;
use std::fs;
use std::io;
use std::str::FromStr;

use crate::sys;

/// Where Linux lists the CPUs that are online, in the same syntax as [`CpuList`].
const ONLINE: &str = "/sys/devices/system/cpu/online";

/// A non-empty set of CPU numbers, ascending, each listed once.
///
/// Parsed from the kernel's list syntax (`cpuset(7)`): comma-separated CPU numbers and
/// inclusive ranges, e.g. `0`, `0,1`, `0-1`, `0-3,8`. Displayed in the same syntax, with
/// ranges folded (`0,1,2,5` shows as `0-2,5`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpuList {
    cpus: Vec<usize>,
}

impl CpuList {
    /// The list holding one CPU.
    pub fn single(cpu: usize) -> Self {
        Self { cpus: vec![cpu] }
    }

    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// How many CPUs the list holds (at least one).
    pub fn len(&self) -> usize {
        self.cpus.len()
    }

    /// Always false: a list holds at least one CPU. (Here for clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty()
    }

    /// Whether `cpu` is in the list.
    pub fn contains(&self, cpu: usize) -> bool {
        self.cpus.binary_search(&cpu).is_ok()
    }

    /// The `i`-th CPU, wrapping around: how the dedicated threading mode spreads agents over
    /// the list (agent `i` on CPU `nth(i)`).
    pub fn nth(&self, i: usize) -> usize {
        self.cpus[i % self.cpus.len()]
    }

    /// The CPUs that are online, from `/sys/devices/system/cpu/online`.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not hold a CPU list.
    pub fn online() -> io::Result<Self> {
        let text = fs::read_to_string(ONLINE)?;
        text.trim().parse().map_err(|e: CpuListError| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{ONLINE} holds {:?}: {e}", text.trim()),
            )
        })
    }

    /// The CPUs the calling thread may run on now.
    ///
    /// # Errors
    ///
    /// The OS error of `sched_getaffinity(2)`.
    pub fn of_current_thread() -> io::Result<Self> {
        let cpus = sys::thread_affinity()?;
        if cpus.is_empty() {
            return Err(io::Error::other(
                "sched_getaffinity returned an empty CPU set",
            ));
        }
        Ok(Self { cpus })
    }

    /// Checks that every CPU in the list exists and is online, so a mistyped `--cpu` fails
    /// before any thread starts. If the online list cannot be read the check passes and
    /// [`pin_current_thread`] still catches a missing CPU.
    ///
    /// # Errors
    ///
    /// [`AffinityError::NoSuchCpu`] naming the missing CPUs and the ones that are online.
    pub fn check_online(&self) -> Result<(), AffinityError> {
        let Ok(online) = Self::online() else {
            return Ok(());
        };
        let missing: Vec<usize> = self
            .cpus
            .iter()
            .copied()
            .filter(|&c| !online.contains(c))
            .collect();
        match Self::from_sorted(missing) {
            Some(missing) => Err(AffinityError::NoSuchCpu { missing, online }),
            None => Ok(()),
        }
    }

    /// A list from ascending, unique CPUs; `None` if there are none.
    fn from_sorted(cpus: Vec<usize>) -> Option<Self> {
        (!cpus.is_empty()).then_some(Self { cpus })
    }
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(s: &str) -> Result<Self, CpuListError> {
        let max = sys::CPU_SET_CAPACITY - 1;
        let number = |t: &str| -> Result<usize, CpuListError> {
            let t = t.trim();
            let cpu: usize = t.parse().map_err(|_| CpuListError::Invalid(t.to_owned()))?;
            if cpu > max {
                return Err(CpuListError::TooLarge { cpu, max });
            }
            Ok(cpu)
        };
        let mut cpus = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(if s.trim().is_empty() {
                    CpuListError::Empty
                } else {
                    CpuListError::Invalid(s.trim().to_owned())
                });
            }
            match item.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (number(first)?, number(last)?);
                    if first > last {
                        return Err(CpuListError::Reversed { first, last });
                    }
                    cpus.extend(first..=last);
                }
                None => cpus.push(number(item)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        Self::from_sorted(cpus).ok_or(CpuListError::Empty)
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let mut first = true;
        while let Some(&start) = self.cpus.get(i) {
            let mut end = start;
            while self.cpus.get(i + 1) == Some(&(end + 1)) {
                end += 1;
                i += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// Why a `--cpu` list does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuListError {
    /// The list is empty.
    Empty,
    /// An item is neither a CPU number nor a range `FIRST-LAST`.
    Invalid(String),
    /// A range runs backwards.
    Reversed {
        /// The range's first CPU.
        first: usize,
        /// The range's last CPU, below the first.
        last: usize,
    },
    /// A CPU number beyond what a CPU set can hold.
    TooLarge {
        /// The CPU asked for.
        cpu: usize,
        /// The largest CPU number there can be.
        max: usize,
    },
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty CPU list: give CPU numbers such as 0, 0,1 or 0-1"),
            Self::Invalid(item) => write!(
                f,
                "{item:?} is not a CPU list: give CPU numbers and ranges such as 0, 0,1 or 0-1"
            ),
            Self::Reversed { first, last } => {
                write!(
                    f,
                    "CPU range {first}-{last} runs backwards: write {last}-{first}"
                )
            }
            Self::TooLarge { cpu, max } => {
                write!(f, "CPU {cpu} is out of range (CPU numbers go up to {max})")
            }
        }
    }
}

impl std::error::Error for CpuListError {}

/// Why a thread could not be pinned.
#[derive(Debug)]
pub enum AffinityError {
    /// CPUs of the list do not exist on this machine (or are offline).
    NoSuchCpu {
        /// The requested CPUs that are not online.
        missing: CpuList,
        /// The CPUs that are.
        online: CpuList,
    },
    /// The kernel refused CPUs of the list: they exist, but this process's cpuset (container,
    /// cgroup, `taskset`) does not allow them.
    NotAllowed {
        /// The requested CPUs the kernel refused.
        refused: CpuList,
        /// The CPUs the thread got instead, if any.
        granted: Option<CpuList>,
    },
    /// `sched_setaffinity(2)` or `sched_getaffinity(2)` failed otherwise.
    Os(io::Error),
}

impl fmt::Display for AffinityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchCpu { missing, online } => write!(
                f,
                "--cpu: CPU {missing} does not exist on this machine (online CPUs: {online})"
            ),
            Self::NotAllowed {
                refused,
                granted: Some(granted),
            } => write!(
                f,
                "--cpu: this process may not run on CPU {refused} (its cpuset allows {granted} \
                 of the list)"
            ),
            Self::NotAllowed {
                refused,
                granted: None,
            } => write!(
                f,
                "--cpu: this process may not run on CPU {refused} (not in its cpuset; see \
                 taskset -p $$ or the container's CPU limits)"
            ),
            Self::Os(e) => write!(f, "--cpu: setting the CPU affinity failed: {e}"),
        }
    }
}

impl std::error::Error for AffinityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// Restricts the calling thread to `cpus` and checks that the kernel granted all of them; on
/// any error the thread's previous affinity is restored (best effort).
///
/// # Errors
///
/// [`AffinityError::NoSuchCpu`] for CPUs that are not online, [`AffinityError::NotAllowed`]
/// for CPUs outside the process's cpuset, [`AffinityError::Os`] otherwise.
pub fn pin_current_thread(cpus: &CpuList) -> Result<(), AffinityError> {
    cpus.check_online()?;
    let before = sys::thread_affinity().map_err(AffinityError::Os)?;
    let restore = || {
        let _ = sys::set_thread_affinity(&before);
    };
    if let Err(e) = sys::set_thread_affinity(&cpus.cpus) {
        restore();
        // EINVAL: none of the CPUs is in the cpuset (they are online: checked above).
        return Err(if e.raw_os_error() == Some(libc::EINVAL) {
            AffinityError::NotAllowed {
                refused: cpus.clone(),
                granted: None,
            }
        } else {
            AffinityError::Os(e)
        });
    }
    let granted = match CpuList::of_current_thread() {
        Ok(g) => g,
        Err(e) => {
            restore();
            return Err(AffinityError::Os(e));
        }
    };
    let refused: Vec<usize> = cpus
        .cpus
        .iter()
        .copied()
        .filter(|&c| !granted.contains(c))
        .collect();
    if let Some(refused) = CpuList::from_sorted(refused) {
        restore();
        return Err(AffinityError::NotAllowed {
            refused,
            granted: Some(granted),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<usize> {
        s.parse::<CpuList>()
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .cpus
    }

    #[test]
    fn parses_the_kernel_list_syntax() {
        assert_eq!(parse("0"), [0]);
        assert_eq!(parse("0,1"), [0, 1]);
        assert_eq!(parse("0-1"), [0, 1]);
        assert_eq!(
            parse(" 3, 0-2 ,2"),
            [0, 1, 2, 3],
            "sorted, deduplicated, spaces"
        );
        assert_eq!(parse("5-5"), [5]);
        assert_eq!(parse("1023"), [1023]);
    }

    #[test]
    fn rejects_what_is_not_a_list() {
        let err = |s: &str| s.parse::<CpuList>().expect_err(s);
        assert_eq!(err(""), CpuListError::Empty);
        assert_eq!(err("  "), CpuListError::Empty);
        assert_eq!(err("x"), CpuListError::Invalid("x".into()));
        assert_eq!(err("0,"), CpuListError::Invalid("0,".into()));
        assert_eq!(err("-1"), CpuListError::Invalid(String::new()));
        assert_eq!(err("1-0"), CpuListError::Reversed { first: 1, last: 0 });
        assert_eq!(
            err("1024"),
            CpuListError::TooLarge {
                cpu: 1024,
                max: 1023
            }
        );
        assert!(err("1-0").to_string().contains("write 0-1"));
    }

    #[test]
    fn displays_folded_ranges() {
        let show = |s: &str| s.parse::<CpuList>().expect(s).to_string();
        assert_eq!(show("0"), "0");
        assert_eq!(show("0,1,2,5,7,8"), "0-2,5,7-8");
        assert_eq!(show("4,0"), "0,4");
    }

    #[test]
    fn nth_wraps_around() {
        let l: CpuList = "2,5".parse().expect("list");
        assert_eq!([l.nth(0), l.nth(1), l.nth(2)], [2, 5, 2]);
    }

    #[test]
    fn a_cpu_that_does_not_exist_is_named() {
        let l: CpuList = "1000".parse().expect("list");
        let e = pin_current_thread(&l).expect_err("CPU 1000 does not exist here");
        assert!(matches!(e, AffinityError::NoSuchCpu { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("CPU 1000 does not exist") && text.contains("online CPUs: 0"),
            "{text}"
        );
    }

    #[test]
    fn pins_and_reads_back() {
        // On a scratch thread, so the test harness's thread keeps its affinity.
        std::thread::spawn(|| {
            let online = CpuList::online().expect("online CPUs");
            let first = CpuList::single(online.cpus()[0]);
            pin_current_thread(&first).expect("pin to the first online CPU");
            assert_eq!(CpuList::of_current_thread().expect("affinity"), first);
        })
        .join()
        .expect("pinning thread");
    }
}
