//! [`SteeringProgram`]: the loaded (not yet attached) program with its maps, and
//! `BPF_PROG_TEST_RUN`.

use std::os::fd::{AsFd as _, BorrowedFd, RawFd};

use aya::maps::{Array, MapData, PerCpuArray, XskMap};
use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};

use crate::abi::{
    CONFIG_MAP, COUNTERS_MAP, ConfigFlag, Counter, MAX_QUEUES, PROGRAM_NAME, XSKS_MAP,
};
use crate::error::{from_ebpf_error, from_map_error, from_program_error};
use crate::{Counters, SteerConfig, SteeringError, XdpAction};

/// The program as built by `build.rs`: compiled from `bpf/tipc_steer.bpf.c` by clang, or the
/// committed prebuilt object (see the crate docs). `include_bytes_aligned!` because the ELF
/// parser needs 4-byte-aligned bytes.
pub(crate) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tipc_steer.bpf.o"));

/// The steering program loaded into the kernel (verified, with its maps), not attached to any
/// interface. Use [`SteeringProgram::attach`] to attach it, or [`SteeringProgram::test_run`] to
/// run it on a crafted frame.
///
/// Each `SteeringProgram` has its own maps: counters, sockets and config are not shared with
/// other instances.
#[derive(Debug)]
pub struct SteeringProgram {
    ebpf: Ebpf,
}

impl SteeringProgram {
    /// Loads the program and creates its maps (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON,
    /// or root).
    ///
    /// # Errors
    ///
    /// [`SteeringError::Permission`] or [`SteeringError::Memlock`] when the kernel refuses,
    /// [`SteeringError::VerifierRejected`] with the verifier log's tail, or
    /// [`SteeringError::Load`].
    pub fn load() -> Result<Self, SteeringError> {
        Self::load_object(OBJECT)
    }

    /// Loads `object`, which must hold a program named [`PROGRAM_NAME`].
    fn load_object(object: &[u8]) -> Result<Self, SteeringError> {
        // No kernel BTF: the program uses no CO-RE relocations, and parsing vmlinux's BTF
        // would cost every load tens of milliseconds.
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .load(object)
            .map_err(from_ebpf_error)?;
        let xdp = xdp_mut(&mut ebpf)?;
        xdp.load()
            .map_err(|e| from_program_error("loading the XDP program", e))?;
        Ok(Self { ebpf })
    }

    /// The loaded program's file descriptor.
    pub(crate) fn program_fd(&self) -> Result<BorrowedFd<'_>, SteeringError> {
        let xdp: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or_else(|| missing("program", PROGRAM_NAME))?
            .try_into()
            .map_err(|e| from_program_error("finding the XDP program", e))?;
        let fd = xdp
            .fd()
            .map_err(|e| from_program_error("finding the XDP program", e))?;
        Ok(fd.as_fd())
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN`, as if it had arrived on RX
    /// queue 0 of the loopback device of the caller's network namespace. Counters are updated
    /// as for a real frame; a redirect is only reported, not carried out.
    ///
    /// # Errors
    ///
    /// [`SteeringError::TestRun`] when the kernel refuses the run (e.g. `EINVAL` for frames
    /// shorter than an Ethernet header, 14 bytes, or longer than a page minus headroom).
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, SteeringError> {
        let xdp: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or_else(|| missing("program", PROGRAM_NAME))?
            .try_into()
            .map_err(SteeringError::TestRun)?;
        let result = xdp
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })
            .map_err(SteeringError::TestRun)?;
        XdpAction::from_raw(result.return_value)
            .ok_or(SteeringError::UnexpectedAction(result.return_value))
    }

    /// Steers TIPC frames arriving on RX queue `queue` into the AF_XDP socket `fd` (which
    /// should be bound to that queue of the interface; the map keeps its own reference, so
    /// `fd` may be closed afterwards). Replaces any socket registered for the queue.
    ///
    /// # Errors
    ///
    /// [`SteeringError::QueueOutOfRange`] for `queue >= MAX_QUEUES`, or
    /// [`SteeringError::Map`] (e.g. `fd` is not an AF_XDP socket).
    pub fn register_xsk(&mut self, queue: u32, fd: RawFd) -> Result<(), SteeringError> {
        check_queue(queue)?;
        let op = || format!("registering the AF_XDP socket for RX queue {queue}");
        let mut map: XskMap<&mut MapData> = self.map_mut(XSKS_MAP)?;
        map.set(queue, fd, 0).map_err(|e| from_map_error(&op(), e))
    }

    /// Stops steering RX queue `queue`: its TIPC frames go to the kernel and count as
    /// [`Counter::NoSocket`]. Unregistering a queue with no socket is not an error.
    ///
    /// # Errors
    ///
    /// [`SteeringError::QueueOutOfRange`], or [`SteeringError::Map`].
    pub fn unregister_xsk(&mut self, queue: u32) -> Result<(), SteeringError> {
        check_queue(queue)?;
        let op = format!("unregistering the AF_XDP socket of RX queue {queue}");
        let mut map: XskMap<&mut MapData> = self.map_mut(XSKS_MAP)?;
        match map.unset(queue) {
            Ok(()) => Ok(()),
            // ENOENT: nothing was registered.
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            Err(e) => Err(from_map_error(&op, e)),
        }
    }

    /// The counters, summed over all CPUs.
    ///
    /// # Errors
    ///
    /// [`SteeringError::Map`] when the map cannot be read.
    pub fn counters(&self) -> Result<Counters, SteeringError> {
        let map: PerCpuArray<&MapData, u64> = self.map(COUNTERS_MAP)?;
        let read = |c: Counter| -> Result<u64, SteeringError> {
            let values = map
                .get(&(c as u32), 0)
                .map_err(|e| from_map_error("reading the steering counters", e))?;
            Ok(values.iter().copied().fold(0, u64::wrapping_add))
        };
        Ok(Counters {
            steered: read(Counter::Steered)?,
            passed: read(Counter::Passed)?,
            dropped: read(Counter::Dropped)?,
            no_socket: read(Counter::NoSocket)?,
        })
    }

    /// Chooses which classes of TIPC traffic are steered; takes effect with the next frame.
    ///
    /// # Errors
    ///
    /// [`SteeringError::Map`] when the config map cannot be written.
    pub fn set_config(&mut self, config: SteerConfig) -> Result<(), SteeringError> {
        let mut flags = 0;
        if !config.ethernet {
            flags |= ConfigFlag::NoEthernet as u32;
        }
        if !config.udp {
            flags |= ConfigFlag::NoUdp as u32;
        }
        let mut map: Array<&mut MapData, u32> = self.map_mut(CONFIG_MAP)?;
        map.set(0, flags, 0)
            .map_err(|e| from_map_error("writing the steering config", e))
    }

    /// The classes of TIPC traffic currently steered.
    ///
    /// # Errors
    ///
    /// [`SteeringError::Map`] when the config map cannot be read.
    pub fn config(&self) -> Result<SteerConfig, SteeringError> {
        let map: Array<&MapData, u32> = self.map(CONFIG_MAP)?;
        let flags = map
            .get(&0, 0)
            .map_err(|e| from_map_error("reading the steering config", e))?;
        Ok(SteerConfig {
            ethernet: flags & ConfigFlag::NoEthernet as u32 == 0,
            udp: flags & ConfigFlag::NoUdp as u32 == 0,
        })
    }

    /// Attaches the program to `ifname`; see [`crate::XdpSteering::attach`].
    ///
    /// # Errors
    ///
    /// As [`crate::XdpSteering::attach`].
    pub fn attach(
        self,
        ifname: &str,
        mode: crate::AttachMode,
    ) -> Result<crate::XdpSteering, SteeringError> {
        crate::XdpSteering::attach_program(self, ifname, mode)
    }

    fn map<'a, T>(&'a self, name: &str) -> Result<T, SteeringError>
    where
        T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self.ebpf.map(name).ok_or_else(|| missing("map", name))?;
        T::try_from(map).map_err(|e| from_map_error(&format!("opening map {name}"), e))
    }

    fn map_mut<'a, T>(&'a mut self, name: &str) -> Result<T, SteeringError>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or_else(|| missing("map", name))?;
        T::try_from(map).map_err(|e| from_map_error(&format!("opening map {name}"), e))
    }
}

fn xdp_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, SteeringError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or_else(|| missing("program", PROGRAM_NAME))?
        .try_into()
        .map_err(|e| from_program_error("finding the XDP program", e))
}

fn missing(kind: &str, name: &str) -> SteeringError {
    SteeringError::Load(format!("the object has no {kind} named {name}"))
}

fn check_queue(queue: u32) -> Result<(), SteeringError> {
    if queue < MAX_QUEUES {
        Ok(())
    } else {
        Err(SteeringError::QueueOutOfRange {
            queue,
            max: MAX_QUEUES,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the calling thread may load BPF programs (root, or CAP_SYS_ADMIN); prints why
    /// not otherwise, or panics when `UTIPC_REQUIRE_NETNS=1`.
    fn privileged(test: &str) -> bool {
        let missing = crate::error::missing_capabilities();
        if missing.is_empty() {
            return true;
        }
        let required = std::env::var("UTIPC_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{test}: root is required (UTIPC_REQUIRE_NETNS=1), missing {missing}"
        );
        eprintln!("skipping {test}: missing {missing} (set UTIPC_REQUIRE_NETNS=1 to fail instead)");
        false
    }

    /// A program that reads the packet without a bounds check (`bpf/test/reject.bpf.c`).
    static REJECTED: &[u8] = aya::include_bytes_aligned!("../bpf/test/reject.bpf.o");

    #[test]
    fn verifier_rejection_carries_the_log_tail() {
        if !privileged("verifier_rejection_carries_the_log_tail") {
            return;
        }
        let e = SteeringProgram::load_object(REJECTED).expect_err("the verifier must refuse it");
        let text = e.to_string();
        eprintln!("{text}");
        assert!(
            matches!(e, SteeringError::VerifierRejected { .. }),
            "{text}"
        );
        assert!(
            text.starts_with("the kernel verifier rejected the XDP program ("),
            "{text}"
        );
        // The kernel's complaint is in the tail.
        assert!(text.contains("invalid access to packet"), "{text}");
    }

    #[test]
    fn garbage_is_a_load_error() {
        let e = SteeringProgram::load_object(&[0u8; 64]).expect_err("not an ELF object");
        assert!(matches!(e, SteeringError::Load(_)), "{e}");
        assert!(
            e.to_string().starts_with("cannot load the XDP object: "),
            "{e}"
        );
    }
}
