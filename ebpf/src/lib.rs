//! utipc XDP steering: an XDP program that sends TIPC frames to AF_XDP sockets, and its loader.
//!
//! Read first: `shared/spec/tipc-wire.md` §4.1 (bearers and media) and the file comment of
//! `bpf/tipc_steer.bpf.c`.
//!
//! # What the program does
//!
//! For every frame received on the interface it is attached to, the program (C, in
//! `bpf/tipc_steer.bpf.c`) decides:
//!
//! | Frame | Action | Counter |
//! |---|---|---|
//! | ethertype 0x88CA, untagged or behind up to 2 VLAN tags (802.1Q, 802.1ad, QinQ), ≥ 24 bytes of TIPC | redirect to the XSKMAP entry of its RX queue | `steered` |
//! | IPv4 (any IHL) or IPv6 (≤ 4 extension headers) UDP to port 6118, not fragmented, VLAN or not | redirect | `steered` |
//! | either of the above, but no socket is registered for the RX queue | `XDP_PASS` | `no_socket` |
//! | 0x88CA with fewer than 24 bytes after the Ethernet/VLAN headers (a runt) | `XDP_DROP` | `dropped` |
//! | everything else: other ethertypes and ports, IP fragments, truncated headers, 3+ VLAN tags | `XDP_PASS` | `passed` |
//!
//! Every frame is counted exactly once. "Steered" means the redirect was issued; a socket that
//! then cannot take the frame (fill ring empty, bound to another queue) counts it in its own
//! `XDP_STATISTICS`.
//!
//! **IP fragments**, first or not, always go to the kernel: a non-first fragment has no UDP
//! header to match, and steering the first alone would split a datagram between the socket and
//! the kernel, which reassembles them. The UDP bearer's default MTU on IPv4 is 14000 bytes, so
//! its packets are normally fragmented and an AF_XDP UDP bearer would need its own IP
//! reassembly. utipc's AF_XDP bearer is therefore Ethernet-only and its UDP bearer stays on
//! kernel sockets: when both use one interface, switch UDP steering off with
//! [`SteerConfig`] (`udp: false`), or unfragmented UDP datagrams would land in the socket.
//!
//! **VLAN offload:** many NICs strip the outer VLAN tag before XDP runs (rx-vlan-offload), so a
//! tagged 0x88CA frame shows up untagged; veth keeps tags. Turn the offload off
//! (`ethtool -K dev rxvlan off`) if the tag matters.
//!
//! # Loading and attaching
//!
//! [`XdpSteering::attach`] loads the program and attaches it through a BPF link, which the
//! kernel releases with the process: the program is detached on drop, on exit and on a crash
//! (even `SIGKILL`). It never falls back to the netlink attach, whose program outlives the
//! process. Only one XDP program can be attached per interface, so one process owns it;
//! [`XdpSteering::register_xsk`] puts each queue's AF_XDP socket into the program's XSKMAP.
//!
//! Privileges: root, or `CAP_BPF`, `CAP_NET_ADMIN` and `CAP_PERFMON` (the verifier needs
//! `CAP_PERFMON` for the IHL-dependent packet offsets).
//!
//! # Build
//!
//! `build.rs` compiles the C program with clang when it is installed (with the headers of
//! libbpf-dev and linux-libc-dev). Without clang it embeds the committed
//! `bpf/prebuilt/tipc_steer.bpf.o`, built from the same source, and says so with a cargo
//! warning; a plain `cargo build` needs no apt package. After changing the C source, refresh
//! the prebuilt object with `UTIPC_EBPF_UPDATE_PREBUILT=1 cargo build -p utipc-ebpf` (a test
//! checks that it is up to date when clang is present).
//!
//! # Testing
//!
//! [`SteeringProgram::test_run`] (and [`test_run`]) run the program on a crafted frame with
//! `BPF_PROG_TEST_RUN`: no interface is needed, only the privileges above.

mod abi;
mod error;
mod link;
mod program;

use std::ffi::CString;
use std::fmt;
use std::os::fd::{OwnedFd, RawFd};

pub use abi::{
    COUNTER_COUNT, Counter, ETH_P_TIPC, MAX_IPV6_EXT_HDRS, MAX_QUEUES, MAX_VLAN_TAGS, MIN_TIPC_LEN,
    TIPC_UDP_PORT,
};
pub use error::SteeringError;
pub use program::SteeringProgram;

/// Which XDP mode to attach in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic mode when the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only: the program runs in the driver, before any skb exists.
    Native,
    /// Generic (skb) mode only: works on every interface, at the cost of an skb per frame.
    Generic,
}

/// The XDP mode the program actually runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttachedMode {
    /// Native (driver) mode.
    Native,
    /// Generic (skb) mode.
    Generic,
}

impl AttachedMode {
    const fn flags(self) -> u32 {
        match self {
            Self::Native => link::XDP_FLAGS_DRV_MODE,
            Self::Generic => link::XDP_FLAGS_SKB_MODE,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An XDP program's verdict on a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XdpAction {
    /// `XDP_ABORTED` (never returned by the steering program).
    Aborted = 0,
    /// `XDP_DROP`: the frame is discarded.
    Drop = 1,
    /// `XDP_PASS`: the frame goes to the kernel stack.
    Pass = 2,
    /// `XDP_TX` (never returned by the steering program).
    Tx = 3,
    /// `XDP_REDIRECT`: the frame goes to the AF_XDP socket.
    Redirect = 4,
}

impl XdpAction {
    /// The action with kernel value `raw`, if it is one.
    #[must_use]
    pub const fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Aborted,
            1 => Self::Drop,
            2 => Self::Pass,
            3 => Self::Tx,
            4 => Self::Redirect,
            _ => return None,
        })
    }
}

/// The program's counters, summed over CPUs. See [`Counter`] for their meaning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Frames redirected to an AF_XDP socket.
    pub steered: u64,
    /// Frames passed to the kernel because they are not (steered) TIPC.
    pub passed: u64,
    /// Runt TIPC frames dropped.
    pub dropped: u64,
    /// TIPC frames passed to the kernel because their RX queue had no socket.
    pub no_socket: u64,
}

impl Counters {
    /// The value of one counter.
    #[must_use]
    pub const fn get(&self, counter: Counter) -> u64 {
        match counter {
            Counter::Steered => self.steered,
            Counter::Passed => self.passed,
            Counter::Dropped => self.dropped,
            Counter::NoSocket => self.no_socket,
        }
    }

    /// Every counter with its name (the names of [`Counters`]'s `Display`), in index order: for
    /// management views that list counters without knowing them.
    #[must_use]
    pub const fn named(&self) -> [(&'static str, u64); COUNTER_COUNT as usize] {
        [
            ("steered", self.steered),
            ("passed", self.passed),
            ("dropped", self.dropped),
            ("no_socket", self.no_socket),
        ]
    }

    /// All frames the program has seen.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.steered
            .wrapping_add(self.passed)
            .wrapping_add(self.dropped)
            .wrapping_add(self.no_socket)
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "steered={} passed={} dropped={} no_socket={}",
            self.steered, self.passed, self.dropped, self.no_socket
        )
    }
}

/// Which classes of TIPC traffic are steered (the rest goes to the kernel and counts as
/// passed). The default steers both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SteerConfig {
    /// Ethertype 0x88CA (TIPC over Ethernet); runts are dropped only while this is on.
    pub ethernet: bool,
    /// UDP to port 6118 (TIPC over UDP, IPv4 and IPv6). Switch it off when the UDP bearer uses
    /// kernel sockets on the same interface.
    pub udp: bool,
}

impl Default for SteerConfig {
    fn default() -> Self {
        Self {
            ethernet: true,
            udp: true,
        }
    }
}

/// The steering program attached to one interface. Dropping it detaches the program (so does
/// the end of the process, however it ends: the attachment is a BPF link).
#[derive(Debug)]
pub struct XdpSteering {
    // Declared first so that it is dropped (detaching the program) before the maps go.
    #[expect(
        dead_code,
        reason = "held for its Drop: closing the link detaches the program"
    )]
    link: OwnedFd,
    program: SteeringProgram,
    ifname: String,
    ifindex: u32,
    mode: AttachedMode,
    fallback_reason: Option<String>,
}

impl XdpSteering {
    /// Loads the program and attaches it to `ifname` in `mode`. [`AttachMode::Auto`] tries
    /// native mode first and falls back to generic mode; [`XdpSteering::fallback_reason`] then
    /// says why in one line.
    ///
    /// # Errors
    ///
    /// [`SteeringError::UnknownInterface`], [`SteeringError::Permission`] (with the missing
    /// capabilities), [`SteeringError::Memlock`], [`SteeringError::VerifierRejected`], or
    /// [`SteeringError::Attach`] with one line per mode tried (e.g. another XDP program is
    /// already attached).
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<Self, SteeringError> {
        // Check the name first: a typo should not be reported as a permission problem.
        let ifindex = if_index(ifname)?;
        let program = SteeringProgram::load()?;
        Self::attach_at(program, ifname, ifindex, mode)
    }

    pub(crate) fn attach_program(
        program: SteeringProgram,
        ifname: &str,
        mode: AttachMode,
    ) -> Result<Self, SteeringError> {
        let ifindex = if_index(ifname)?;
        Self::attach_at(program, ifname, ifindex, mode)
    }

    fn attach_at(
        program: SteeringProgram,
        ifname: &str,
        ifindex: u32,
        mode: AttachMode,
    ) -> Result<Self, SteeringError> {
        let tries: &[AttachedMode] = match mode {
            AttachMode::Auto => &[AttachedMode::Native, AttachedMode::Generic],
            AttachMode::Native => &[AttachedMode::Native],
            AttachMode::Generic => &[AttachedMode::Generic],
        };
        let mut reasons: Vec<String> = Vec::new();
        for &try_mode in tries {
            let prog_fd = program.program_fd()?;
            match link::xdp_link_create(prog_fd, ifindex, try_mode.flags()) {
                Ok(link) => {
                    let fallback_reason = (!reasons.is_empty()).then(|| reasons.join("; "));
                    return Ok(Self {
                        link,
                        program,
                        ifname: ifname.to_owned(),
                        ifindex,
                        mode: try_mode,
                        fallback_reason,
                    });
                }
                Err(e) => {
                    if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                        let missing = error::missing_capabilities();
                        return Err(SteeringError::Permission {
                            op: format!("attaching XDP to {ifname}"),
                            detail: if missing.is_empty() {
                                e.to_string()
                            } else {
                                format!("missing {missing}")
                            },
                        });
                    }
                    if e.raw_os_error() == Some(libc::ENODEV) {
                        return Err(SteeringError::UnknownInterface(ifname.to_owned()));
                    }
                    reasons.push(link::attach_failure(try_mode.name(), &e));
                    if link::is_final(&e) {
                        break;
                    }
                }
            }
        }
        Err(SteeringError::Attach {
            ifname: ifname.to_owned(),
            mode,
            reason: reasons.join("; "),
        })
    }

    /// The mode the program runs in.
    #[must_use]
    pub const fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// Why [`AttachMode::Auto`] fell back to generic mode (one line), or `None` when it got
    /// what it asked for first.
    #[must_use]
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// The interface the program is attached to.
    #[must_use]
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface's index (as it was at attach time).
    #[must_use]
    pub const fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Steers TIPC frames of RX queue `queue` into the AF_XDP socket `fd`, bound to that queue
    /// of this interface. See [`SteeringProgram::register_xsk`].
    ///
    /// # Errors
    ///
    /// [`SteeringError::QueueOutOfRange`] or [`SteeringError::Map`].
    pub fn register_xsk(&mut self, queue: u32, fd: RawFd) -> Result<(), SteeringError> {
        self.program.register_xsk(queue, fd)
    }

    /// Stops steering RX queue `queue`. See [`SteeringProgram::unregister_xsk`].
    ///
    /// # Errors
    ///
    /// [`SteeringError::QueueOutOfRange`] or [`SteeringError::Map`].
    pub fn unregister_xsk(&mut self, queue: u32) -> Result<(), SteeringError> {
        self.program.unregister_xsk(queue)
    }

    /// The counters, summed over all CPUs.
    ///
    /// # Errors
    ///
    /// [`SteeringError::Map`] when the map cannot be read.
    pub fn counters(&self) -> Result<Counters, SteeringError> {
        self.program.counters()
    }

    /// Chooses which classes of TIPC traffic are steered. See [`SteerConfig`].
    ///
    /// # Errors
    ///
    /// [`SteeringError::Map`] when the config map cannot be written.
    pub fn set_config(&mut self, config: SteerConfig) -> Result<(), SteeringError> {
        self.program.set_config(config)
    }

    /// The classes of TIPC traffic currently steered.
    ///
    /// # Errors
    ///
    /// [`SteeringError::Map`] when the config map cannot be read.
    pub fn config(&self) -> Result<SteerConfig, SteeringError> {
        self.program.config()
    }

    /// Detaches the program now (dropping `self` does the same).
    pub fn detach(self) {
        drop(self);
    }
}

/// Loads a fresh program and runs it once on `frame` with `BPF_PROG_TEST_RUN` (no socket
/// registered, default config). For several frames, or to read counters, use
/// [`SteeringProgram::test_run`].
///
/// # Errors
///
/// As [`SteeringProgram::load`] and [`SteeringProgram::test_run`].
pub fn test_run(frame: &[u8]) -> Result<XdpAction, SteeringError> {
    SteeringProgram::load()?.test_run(frame)
}

/// The index of interface `ifname` in the caller's network namespace.
fn if_index(ifname: &str) -> Result<u32, SteeringError> {
    let unknown = || SteeringError::UnknownInterface(ifname.to_owned());
    let name = CString::new(ifname).map_err(|_| unknown())?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(unknown())
    } else {
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<XdpSteering>();
        send_sync::<SteeringProgram>();
        send_sync::<SteeringError>();
    }

    #[test]
    fn xdp_action_values() {
        for raw in 0..5 {
            assert_eq!(XdpAction::from_raw(raw).map(|a| a as u32), Some(raw));
        }
        assert_eq!(XdpAction::from_raw(5), None);
    }

    #[test]
    fn unknown_interface_is_reported_before_loading() {
        let e =
            XdpSteering::attach("utnosuchif0", AttachMode::Auto).expect_err("no such interface");
        assert!(matches!(e, SteeringError::UnknownInterface(_)), "{e}");
        assert_eq!(e.to_string(), "unknown network interface \"utnosuchif0\"");
        let e = XdpSteering::attach("bad\0name", AttachMode::Native).expect_err("NUL");
        assert!(matches!(e, SteeringError::UnknownInterface(_)), "{e}");
    }

    #[test]
    fn counters_total_and_get() {
        let c = Counters {
            steered: 1,
            passed: 2,
            dropped: 3,
            no_socket: 4,
        };
        assert_eq!(c.total(), 10);
        let values: Vec<u64> = Counter::ALL.iter().map(|&k| c.get(k)).collect();
        assert_eq!(values, [1, 2, 3, 4]);
        assert_eq!(c.to_string(), "steered=1 passed=2 dropped=3 no_socket=4");
        let shown: String = c
            .named()
            .iter()
            .map(|(name, v)| format!("{name}={v} "))
            .collect();
        assert_eq!(shown.trim_end(), c.to_string(), "the same names as Display");
        for (k, (_, v)) in Counter::ALL.iter().zip(c.named()) {
            assert_eq!(c.get(*k), v, "index order");
        }
    }
}
