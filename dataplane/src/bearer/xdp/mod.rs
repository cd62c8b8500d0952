//! The Ethernet bearer over AF_XDP: TIPC frames (ethertype 0x88CA) on one queue of one
//! interface, received from and sent through rings shared with the kernel, with no copy on
//! receive.
//!
//! Why AF_XDP: the kernel-bypass dataplane. An XDP program (the `utipc-ebpf` steering program)
//! redirects TIPC frames into this socket before the kernel's stack sees them; everything else
//! (ARP, IP, ...) passes to the kernel as before. On veth and other drivers without zero-copy
//! support it still saves the socket layer: copy mode copies each frame once, into the UMEM.
//!
//! # Shape
//!
//! One [`XdpBearer`] is one AF_XDP socket bound to one queue, with its own UMEM (one socket per
//! queue: the steering program looks its socket up by the receiving queue's index). The UMEM
//! is split once at start: half the frames (at most the fill ring's size) circulate through
//! the fill and RX rings, the rest through the TX and completion rings.
//!
//! * **Receive** ([`Bearer::recv_batch`]): takes a batch from the RX ring, lends each frame's
//!   TIPC bytes (the UMEM itself, no copy) to the callback, then gives the frames back to the
//!   fill ring in one commit. [`Bearer::recv`] copies into the caller's buffer instead.
//! * **Send** ([`Bearer::send`]): takes a frame from the free list (refilled from the
//!   completion ring), writes the Ethernet header and the message into it and publishes it on
//!   the TX ring. Nothing leaves until [`Bearer::flush`], which kicks the kernel with `sendto`
//!   when the TX ring asks for a wake-up (always, in copy mode; every frame if need_wakeup is
//!   off). When the TX ring or the free list is exhausted, `send` kicks once itself and
//!   retries; if there is still no room the message is **refused with `WouldBlock`** (counted
//!   in [`XdpCounters::tx_ring_full`] and in the bearer's `tx_would_block`), like a full
//!   socket buffer: the message is lost and TIPC's link layer retransmits it.
//! * **Readiness**: [`Bearer::fd`] is the socket; poll(2) reports POLLIN while the RX ring
//!   holds frames.
//!
//! Framing and filtering are the AF_PACKET bearer's (see [`super::packet`]): ethertype
//! 0x88CA, broadcast to ff:ff:ff:ff:ff:ff; frames from our own MAC, frames for another host's
//! MAC and frames of another ethertype (the steering program also steers UDP port 6118 and
//! VLAN-tagged frames) are dropped and counted, although the steering program lets only
//! TIPC frames through.
//!
//! # Modes and limits
//!
//! * [`XdpMode::Auto`] binds zero-copy and falls back to copy mode; [`XdpBearer::mode`] and
//!   [`XdpBearer::fallback_reason`] say which it got and why. veth has no zero-copy.
//! * One socket per queue: a second bearer on a taken queue fails with `AddrInUse`. The
//!   kernel releases a closed socket's queue in deferred work, so `open` waits up to 1 s for a
//!   queue whose previous bearer was just dropped.
//! * The UMEM is locked memory. [`XdpBearer::open`] checks `RLIMIT_MEMLOCK` first (unless the
//!   process has CAP_IPC_LOCK, as root has), raises the soft limit to the hard one when that
//!   is enough, and otherwise refuses with a message that says how to fix it.
//! * A frame holds `frame_size - 256` bytes on receive (the kernel reserves XDP's 256-byte
//!   headroom), so an interface MTU above `frame_size - 270` is refused: jumbo frames would be
//!   dropped by the kernel.
//!
//! `unsafe` is confined to the private `sys` submodule except for two calls of its
//! `Umem::frame`/`Umem::frame_mut`, whose ownership precondition the ring bookkeeping here
//! guarantees (each has a `SAFETY` comment).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::discovery::MediaAddr;

use super::packet::MIN_ETH_MTU;
use super::{Bearer, BearerReport, BearerStats, MAX_DROPS_PER_RECV, RxDrops, RxMeta, too_long};
use crate::ether::{BROADCAST_MAC, ETH_HLEN, ETH_P_TIPC, EthHeader, is_group_mac};

mod ring;
mod sys;

use self::ring::{ConsumerRing, ProducerRing};
use self::sys::{RingMem, Umem};

/// Bytes the kernel keeps in front of every received frame (`XDP_PACKET_HEADROOM`).
pub const XDP_HEADROOM: u32 = 256;

/// How long `open` waits for a queue whose previous socket is still being released.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// Frame sizes the bearer accepts (aligned UMEM chunks must be a power of two; 2048 holds a
/// 1500-byte MTU frame).
pub const FRAME_SIZES: [u32; 2] = [2048, 4096];

/// How the socket binds to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum XdpMode {
    /// Zero-copy if the driver supports it, otherwise copy mode.
    #[default]
    Auto,
    /// Zero-copy only (`XDP_ZEROCOPY`); opening fails where the driver lacks it.
    ZeroCopy,
    /// Copy mode only (`XDP_COPY`): works on every driver, including generic XDP.
    Copy,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::ZeroCopy => "zero-copy",
            Self::Copy => "copy",
        })
    }
}

/// What [`XdpBearer::open`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpBearerConfig {
    /// The interface.
    pub iface: String,
    /// The queue to bind (0 on veth, which has one real RX queue).
    pub queue: u32,
    /// Bytes per UMEM frame: 2048 or 4096 (see [`FRAME_SIZES`]).
    pub frame_size: u32,
    /// Number of UMEM frames (the UMEM is `frames * frame_size` bytes of locked memory).
    pub frames: u32,
    /// Size of the RX ring and of the fill ring (a power of two).
    pub rx_ring_size: u32,
    /// Size of the TX ring and of the completion ring (a power of two).
    pub tx_ring_size: u32,
    /// Zero-copy, copy, or whichever works.
    pub mode: XdpMode,
    /// Bind with `XDP_USE_NEED_WAKEUP`, so [`Bearer::flush`] makes a syscall only when the
    /// kernel asks for one.
    pub need_wakeup: bool,
}

impl XdpBearerConfig {
    /// The defaults on `iface`: queue 0, 4096 frames of 2048 bytes (8 MiB), rings of 2048,
    /// automatic mode, need_wakeup on.
    pub fn new(iface: &str) -> Self {
        Self {
            iface: iface.to_owned(),
            queue: 0,
            frame_size: 2048,
            frames: 4096,
            rx_ring_size: 2048,
            tx_ring_size: 2048,
            mode: XdpMode::Auto,
            need_wakeup: true,
        }
    }

    /// Bytes of locked memory the UMEM needs.
    pub fn umem_bytes(&self) -> u64 {
        u64::from(self.frame_size) * u64::from(self.frames)
    }

    /// Frames that circulate through the fill and RX rings; the rest serve TX.
    fn rx_frames(&self) -> u32 {
        (self.frames / 2).min(self.rx_ring_size)
    }

    fn validate(&self) -> io::Result<()> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if !FRAME_SIZES.contains(&self.frame_size) {
            return invalid(format!(
                "AF_XDP frame size {} is not supported: use 2048 or 4096",
                self.frame_size
            ));
        }
        for (what, size) in [("RX", self.rx_ring_size), ("TX", self.tx_ring_size)] {
            if !size.is_power_of_two() || !(8..=1 << 16).contains(&size) {
                return invalid(format!(
                    "AF_XDP {what} ring size {size} must be a power of two from 8 to 65536"
                ));
            }
        }
        if self.frames < 16 || self.umem_bytes() > 1 << 32 {
            return invalid(format!(
                "{} AF_XDP frames of {} bytes: use at least 16 frames and at most 4 GiB",
                self.frames, self.frame_size
            ));
        }
        Ok(())
    }
}

/// What the AF_XDP bearer counts beyond [`BearerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Sends refused with `WouldBlock` because no UMEM frame or TX slot was free even after a
    /// kick (the message is lost; TIPC retransmits).
    pub tx_ring_full: u64,
    /// TX frames returned through the completion ring (and put back on the free list).
    pub completions: u64,
    /// `sendto` kicks of the TX ring.
    pub tx_kicks: u64,
    /// Kicks the kernel answered with "call again" (its per-call budget, a full completion
    /// ring, or a busy device).
    pub tx_kicks_again: u64,
    /// `recvfrom` wake-ups of the fill ring (zero-copy drivers that sleep).
    pub rx_wakeups: u64,
    /// RX descriptors pointing outside the UMEM (a kernel or driver bug; the frame is lost).
    pub rx_invalid_descs: u64,
    /// Times the fill ring was found empty when we refilled it: the kernel had no buffer for
    /// incoming frames and may have dropped some (the kernel's own count is
    /// [`XdpKernelStats::rx_fill_ring_empty_descs`]).
    pub fill_ring_empty: u64,
}

/// The kernel's counters of the socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpKernelStats {
    /// Frames dropped for any reason other than an invalid descriptor (no room, too long).
    pub rx_dropped: u64,
    /// Invalid descriptors in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors in the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Frames that found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Kicks that found the TX ring empty.
    pub tx_ring_empty_descs: u64,
}

/// What an [`XdpBearer`] keeps alive for as long as its socket and drops after it: in practice
/// the XDP program that steers frames to the socket. A trait object so that this crate does not
/// depend on the loader (`utipc-ebpf`); besides being held, a guard can only report counters,
/// which the bearer passes on in [`Bearer::report`] (the steering program's steered / passed /
/// dropped / no-socket counts).
pub trait XdpGuard: Send + fmt::Debug {
    /// Reports the guard's counters as one or more groups. The default reports nothing.
    fn report(&self, out: &mut dyn BearerReport) {
        let _ = out;
    }
}

/// The socket and its four rings. Field order is drop order: the rings are unmapped before the
/// socket closes.
#[derive(Debug)]
struct Xsk {
    rx: ConsumerRing<libc::xdp_desc>,
    tx: ProducerRing<libc::xdp_desc>,
    fill: ProducerRing<u64>,
    comp: ConsumerRing<u64>,
    fd: OwnedFd,
}

/// A TIPC bearer on one queue of one Ethernet interface through AF_XDP. See the [module
/// docs](self).
#[derive(Debug)]
pub struct XdpBearer {
    /// Before `umem`: the socket (which pins the UMEM) closes first.
    xsk: Xsk,
    umem: Umem,
    /// TX frames we own, ready to be written.
    tx_free: Vec<u64>,
    /// RX frames that found no room in the fill ring (stays empty while the fill ring is at
    /// least as large as the RX share, which `open` ensures).
    fill_backlog: Vec<u64>,
    ifname: String,
    ifindex: u32,
    queue: u32,
    mac: [u8; 6],
    mtu: u32,
    mode: XdpMode,
    fallback_reason: Option<String>,
    need_wakeup: bool,
    /// Frames were published on the TX ring that the kernel may not have taken yet: set by
    /// `send`, cleared once a kick (or the kernel by itself) has taken them all. While clear,
    /// `flush` returns at once — the idle duty cycle costs no ring access.
    tx_pending: bool,
    stats: BearerStats,
    xdp: XdpCounters,
    /// Something that must live as long as the socket and go after it — in practice the XDP
    /// steering program that feeds the socket (kept opaque so this crate does not depend on
    /// the loader). Last field: dropped after the socket and the UMEM.
    guard: Option<Box<dyn XdpGuard>>,
}

impl XdpBearer {
    /// Opens the bearer on `cfg.iface` of the calling thread's network namespace, binds it to
    /// `cfg.queue` and hands the socket to `register` (queue, fd) so the caller can put it into
    /// the steering program's XSKMAP. The fd is borrowed: `register` must not close it; the
    /// kernel removes it from every map when the bearer drops.
    ///
    /// Nothing arrives until an XDP program on the interface redirects frames to the socket;
    /// sending works without one.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad configuration, the loopback device, a non-Ethernet device, an
    /// MTU below [`MIN_ETH_MTU`] or above what a frame holds; `NotFound` for an unknown
    /// interface; `PermissionDenied` without CAP_NET_RAW; `OutOfMemory` when the UMEM exceeds
    /// `RLIMIT_MEMLOCK`; `Unsupported` for a kernel without AF_XDP or a driver without
    /// zero-copy in [`XdpMode::ZeroCopy`]; `AddrInUse` when the queue already has a socket;
    /// the error of `register`; otherwise the OS error. Every message says what to change.
    pub fn open(
        cfg: XdpBearerConfig,
        register: &mut dyn FnMut(u32, RawFd) -> io::Result<()>,
    ) -> io::Result<Self> {
        cfg.validate()?;
        let iface = cfg.iface.as_str();
        let info = interface_info(iface)?;
        let rx_capacity = cfg.frame_size - XDP_HEADROOM;
        if info.mtu as usize + ETH_HLEN > rx_capacity as usize {
            let hint = if cfg.frame_size < 4096 {
                "use an AF_XDP frame size of 4096 or lower the MTU"
            } else {
                "lower the MTU"
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{iface} has MTU {}, but an AF_XDP frame of {} bytes holds Ethernet frames of \
                     at most {rx_capacity} bytes (MTU {}); larger frames would be dropped: {hint} \
                     (`ip link set {iface} mtu {}`), or use the AF_PACKET bearer",
                    info.mtu,
                    cfg.frame_size,
                    rx_capacity as usize - ETH_HLEN,
                    rx_capacity as usize - ETH_HLEN,
                ),
            ));
        }
        ensure_memlock(cfg.umem_bytes())?;

        let fd = sys::xsk_socket().map_err(|e| match e.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS); use the AF_PACKET \
                 bearer",
            ),
            Some(libc::EPERM | libc::EACCES) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                "AF_XDP needs CAP_NET_RAW (and CAP_NET_ADMIN + CAP_BPF for the XDP program): \
                 run as root, or use the UDP bearer",
            ),
            _ => context(e, "cannot create an AF_XDP socket"),
        })?;
        let umem = Umem::new(cfg.frame_size, cfg.frames)
            .map_err(|e| context(e, "cannot allocate the AF_XDP UMEM"))?;
        let sock = fd.as_fd();
        sys::umem_reg(sock, &umem).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOBUFS | libc::ENOMEM | libc::EPERM) => memlock_error(
                cfg.umem_bytes(),
                sys::memlock_limit().ok().and_then(|l| l.0),
                &format!(" (XDP_UMEM_REG: {e}; the limit counts all locked memory of the user)"),
            ),
            _ => context(e, "cannot register the AF_XDP UMEM"),
        })?;
        for (opt, size, what) in [
            (libc::XDP_UMEM_FILL_RING, cfg.rx_ring_size, "fill"),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                cfg.tx_ring_size,
                "completion",
            ),
            (libc::XDP_RX_RING, cfg.rx_ring_size, "RX"),
            (libc::XDP_TX_RING, cfg.tx_ring_size, "TX"),
        ] {
            sys::set_ring_size(sock, opt, size)
                .map_err(|e| context(e, &format!("cannot size the AF_XDP {what} ring")))?;
        }
        let [rx_off, tx_off, fill_off, comp_off] = sys::mmap_offsets(sock)?;
        let map_err = |what: &str| {
            let what = what.to_owned();
            move |e| context(e, &format!("cannot map the AF_XDP {what} ring"))
        };
        let fill = ProducerRing::new(
            RingMem::map(
                sock,
                fill_off,
                cfg.rx_ring_size,
                libc::XDP_UMEM_PGOFF_FILL_RING,
            )
            .map_err(map_err("fill"))?,
        );
        let comp = ConsumerRing::new(
            RingMem::map(
                sock,
                comp_off,
                cfg.tx_ring_size,
                libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            )
            .map_err(map_err("completion"))?,
        );
        let rx = ConsumerRing::new(
            RingMem::map(
                sock,
                rx_off,
                cfg.rx_ring_size,
                libc::XDP_PGOFF_RX_RING as u64,
            )
            .map_err(map_err("RX"))?,
        );
        let tx = ProducerRing::new(
            RingMem::map(
                sock,
                tx_off,
                cfg.tx_ring_size,
                libc::XDP_PGOFF_TX_RING as u64,
            )
            .map_err(map_err("TX"))?,
        );
        let mut xsk = Xsk {
            rx,
            tx,
            fill,
            comp,
            fd,
        };

        // Give the kernel its receive buffers before any frame can arrive.
        let fs = u64::from(cfg.frame_size);
        let rx_frames = cfg.rx_frames();
        let mut batch = xsk.fill.reserve(rx_frames);
        for i in 0..u64::from(rx_frames) {
            if !batch.push(i * fs) {
                break;
            }
        }
        let filled = batch.commit();
        if filled != rx_frames {
            return Err(io::Error::other(format!(
                "the new fill ring took {filled} of {rx_frames} frames"
            )));
        }
        let tx_free: Vec<u64> = (u64::from(rx_frames)..u64::from(cfg.frames))
            .rev()
            .map(|i| i * fs)
            .collect();

        let (mode, fallback_reason) = bind(&xsk.fd, &cfg, info.ifindex)?;
        register(cfg.queue, std::os::fd::AsRawFd::as_raw_fd(&xsk.fd)).map_err(|e| {
            context(
                e,
                &format!(
                    "cannot register the AF_XDP socket of {iface} queue {} with the XDP program",
                    cfg.queue
                ),
            )
        })?;
        Ok(Self {
            xsk,
            umem,
            tx_free,
            fill_backlog: Vec::new(),
            ifname: cfg.iface.clone(),
            ifindex: info.ifindex,
            queue: cfg.queue,
            mac: info.mac,
            mtu: info.mtu,
            mode,
            fallback_reason,
            need_wakeup: cfg.need_wakeup,
            tx_pending: false,
            stats: BearerStats::default(),
            xdp: XdpCounters::default(),
            guard: None,
        })
    }

    /// Keeps `guard` alive until the bearer is dropped, and drops it after the socket: the
    /// steering program that redirects to this socket stays attached exactly as long.
    pub fn set_guard(&mut self, guard: Box<dyn XdpGuard>) {
        self.guard = Some(guard);
    }

    /// The guard given to [`XdpBearer::set_guard`].
    pub fn guard(&self) -> Option<&dyn XdpGuard> {
        self.guard.as_deref()
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The interface's MAC address (what [`Bearer::local_addr`] advertises).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The mode the socket got: [`XdpMode::ZeroCopy`] or [`XdpMode::Copy`], never `Auto`.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Why [`XdpMode::Auto`] fell back to copy mode (the zero-copy bind error), if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// The AF_XDP counters.
    pub fn xdp_counters(&self) -> &XdpCounters {
        &self.xdp
    }

    /// The kernel's counters of the socket.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockopt(XDP_STATISTICS)`.
    pub fn kernel_stats(&self) -> io::Result<XdpKernelStats> {
        let s = sys::statistics(self.xsk.fd.as_fd())?;
        Ok(XdpKernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }

    /// Frames waiting in the TX ring for the kernel (published, not yet consumed).
    pub fn tx_queued(&self) -> u32 {
        self.xsk.tx.outstanding()
    }

    /// Moves completed TX frames back to the free list.
    fn reclaim(&mut self) {
        let fs_mask = !(u64::from(self.umem.frame_size()) - 1);
        let batch = self.xsk.comp.peek(self.xsk.comp.size());
        for addr in batch.iter() {
            let base = addr & fs_mask;
            if self.umem.in_bounds(base, 1) {
                self.tx_free.push(base);
            }
        }
        self.xdp.completions += u64::from(batch.release());
    }

    /// Kicks the TX ring until the kernel has taken everything or stops making progress.
    fn kick(&mut self) -> io::Result<()> {
        // Copy mode sends at most 32 frames per call (the kernel's TX_BATCH_SIZE) and then
        // answers EAGAIN; a bounded number of calls drains a full ring.
        let rounds = self.xsk.tx.size() / 16 + 2;
        for _ in 0..rounds {
            self.xdp.tx_kicks += 1;
            let before = self.xsk.tx.outstanding();
            let done = sys::kick_tx(self.xsk.fd.as_fd())?;
            self.reclaim();
            let after = self.xsk.tx.outstanding();
            if done || after == 0 {
                break;
            }
            self.xdp.tx_kicks_again += 1;
            if after >= before {
                // No progress (device busy): the rest goes out with the next flush.
                break;
            }
        }
        Ok(())
    }

    /// A free TX frame, reclaiming completions (and kicking once) if the free list is empty.
    fn free_frame(&mut self) -> io::Result<Option<u64>> {
        if let Some(a) = self.tx_free.pop() {
            return Ok(Some(a));
        }
        self.reclaim();
        if let Some(a) = self.tx_free.pop() {
            return Ok(Some(a));
        }
        self.kick()?;
        Ok(self.tx_free.pop())
    }

    /// Takes up to `max` frames from the RX ring, hands the TIPC frames that pass the filters
    /// (and are at most `limit` bytes) to `on_frame`, and returns the frames to the fill ring.
    /// Returns (descriptors taken, frames delivered).
    fn rx_batch(
        &mut self,
        max: u32,
        limit: usize,
        on_frame: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> (u32, usize) {
        let fs_mask = !(u64::from(self.umem.frame_size()) - 1);
        if !self.fill_backlog.is_empty() {
            let mut fill = self.xsk.fill.reserve(self.fill_backlog.len() as u32);
            while !fill.is_full() {
                match self.fill_backlog.pop() {
                    Some(a) => {
                        let _ = fill.push(a);
                    }
                    None => break,
                }
            }
            fill.commit();
        }
        let batch = self.xsk.rx.peek(max);
        if batch.is_empty() {
            drop(batch);
            if self.need_wakeup && self.xsk.fill.needs_wakeup() {
                self.xdp.rx_wakeups += 1;
                if let Err(e) = sys::wake_rx(self.xsk.fd.as_fd()) {
                    let _ = self.stats.recv_failed(e);
                }
            }
            return (0, 0);
        }
        if self.xsk.fill.outstanding() == 0 {
            self.xdp.fill_ring_empty += 1;
        }
        let taken = batch.len();
        let mut fill = self.xsk.fill.reserve(taken);
        let mut delivered = 0;
        for desc in batch.iter() {
            let base = desc.addr & fs_mask;
            if !self.umem.in_bounds(base, 1) {
                self.xdp.rx_invalid_descs += 1;
                continue;
            }
            // SAFETY: the descriptor came from the RX ring, so the kernel handed this frame to
            // us; it goes back to the kernel only when `fill` is committed below, after the
            // slice is dropped at the end of this iteration.
            let frame = unsafe { self.umem.frame(desc.addr, desc.len) };
            match frame {
                None => self.xdp.rx_invalid_descs += 1,
                Some(frame) => {
                    let drops = &mut self.stats.counters.rx_dropped;
                    if let Some((meta, payload)) = accept(self.mac, drops, frame, limit) {
                        self.stats.received(payload.len());
                        on_frame(payload, &meta);
                        delivered += 1;
                    }
                }
            }
            if !fill.push(base) {
                self.fill_backlog.push(base);
            }
        }
        fill.commit();
        batch.release();
        (taken, delivered)
    }
}

impl Bearer for XdpBearer {
    fn media(&self) -> MediaKind {
        MediaKind::Eth
    }

    fn local_addr(&self) -> MediaAddr {
        MediaAddr::Eth(self.mac)
    }

    fn mtu(&self) -> u32 {
        self.mtu
    }

    fn supports_broadcast(&self) -> bool {
        true
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.xsk.fd.as_fd()
    }

    fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
        if frame.len() > self.mtu as usize {
            return Err(self.stats.send_failed(too_long(frame.len(), self.mtu)));
        }
        let dst = match dest {
            Dest::Broadcast => BROADCAST_MAC,
            Dest::Unicast(MediaAddr::Eth(mac)) => *mac,
            Dest::Unicast(other) => {
                return Err(self.stats.send_failed(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("an Ethernet bearer cannot send to the non-Ethernet address {other:?}"),
                )));
            }
        };
        let addr = match self.free_frame() {
            Ok(Some(a)) => a,
            Ok(None) => return Err(self.ring_full()),
            Err(e) => return Err(self.stats.send_failed(e)),
        };
        if self.xsk.tx.free(1) == 0 {
            if let Err(e) = self.kick() {
                self.tx_free.push(addr);
                return Err(self.stats.send_failed(e));
            }
            if self.xsk.tx.free(1) == 0 {
                self.tx_free.push(addr);
                return Err(self.ring_full());
            }
        }
        let total = ETH_HLEN + frame.len();
        let len = u32::try_from(total).unwrap_or(u32::MAX);
        // SAFETY: `addr` came from the free list: a TX frame the kernel returned through the
        // completion ring (or never had). It goes to the kernel only with the commit below,
        // after the slice is dropped.
        let Some(buf) = (unsafe { self.umem.frame_mut(addr, len) }) else {
            self.tx_free.push(addr);
            return Err(self.stats.send_failed(too_long(frame.len(), self.mtu)));
        };
        let header = EthHeader {
            dst,
            src: self.mac,
            ethertype: ETH_P_TIPC,
        }
        .to_bytes();
        buf[..ETH_HLEN].copy_from_slice(&header);
        buf[ETH_HLEN..].copy_from_slice(frame);
        let mut batch = self.xsk.tx.reserve(1);
        let pushed = batch.push(libc::xdp_desc {
            addr,
            len,
            options: 0,
        });
        if !pushed || batch.commit() != 1 {
            self.tx_free.push(addr);
            return Err(self.ring_full());
        }
        self.tx_pending = true;
        self.stats.sent(frame.len());
        Ok(())
    }

    /// Kicks the TX ring once for everything sent since the last flush (copy mode moves frames
    /// only inside that `sendto`, at most 32 per call, so a burst of frames costs one or a few
    /// calls instead of one per frame). Completed frames are reclaimed here and, lazily, when
    /// the free list runs dry.
    fn flush(&mut self) -> io::Result<()> {
        if !self.tx_pending {
            return Ok(());
        }
        self.reclaim();
        if self.xsk.tx.outstanding() == 0 {
            self.tx_pending = false;
            return Ok(());
        }
        if self.need_wakeup && !self.xsk.tx.needs_wakeup() {
            return Ok(());
        }
        let r = self.kick().map_err(|e| self.stats.send_failed(e));
        self.tx_pending = self.xsk.tx.outstanding() > 0;
        r
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        let mut got = None;
        for _ in 0..=MAX_DROPS_PER_RECV {
            let (taken, _) = self.rx_batch(1, buf.len(), &mut |frame, meta| {
                buf[..frame.len()].copy_from_slice(frame);
                got = Some((frame.len(), *meta));
            });
            if got.is_some() || taken == 0 {
                break;
            }
        }
        Ok(got)
    }

    fn recv_batch(
        &mut self,
        _scratch: &mut [u8],
        max: usize,
        on_frame: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let (_, delivered) = self.rx_batch(max, usize::MAX, on_frame);
        Ok(delivered)
    }

    fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr)) {
        match dest {
            Dest::Broadcast => f(MediaAddr::Eth(BROADCAST_MAC)),
            Dest::Unicast(MediaAddr::Eth(mac)) => f(MediaAddr::Eth(*mac)),
            Dest::Unicast(_) => {}
        }
    }

    fn stats(&self) -> &BearerStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut BearerStats {
        &mut self.stats
    }

    /// Group `af_xdp` (mode, queue, [`XdpCounters`], the frames in the TX ring and on the free
    /// list), group `xdp_kernel` (the socket's `XDP_STATISTICS`, or why they cannot be read),
    /// then the guard's groups (the steering program's counters).
    fn report(&self, out: &mut dyn BearerReport) {
        out.group("af_xdp");
        out.text("mode", &self.mode.to_string());
        out.counter("queue", u64::from(self.queue));
        let x = &self.xdp;
        for (name, value) in [
            ("tx_ring_full", x.tx_ring_full),
            ("completions", x.completions),
            ("tx_kicks", x.tx_kicks),
            ("tx_kicks_again", x.tx_kicks_again),
            ("rx_wakeups", x.rx_wakeups),
            ("rx_invalid_descs", x.rx_invalid_descs),
            ("fill_ring_empty", x.fill_ring_empty),
            ("tx_queued", u64::from(self.tx_queued())),
            ("tx_free_frames", self.tx_free.len() as u64),
        ] {
            out.counter(name, value);
        }
        out.group("xdp_kernel");
        match self.kernel_stats() {
            Ok(k) => {
                for (name, value) in [
                    ("rx_dropped", k.rx_dropped),
                    ("rx_invalid_descs", k.rx_invalid_descs),
                    ("tx_invalid_descs", k.tx_invalid_descs),
                    ("rx_ring_full", k.rx_ring_full),
                    ("rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs),
                    ("tx_ring_empty_descs", k.tx_ring_empty_descs),
                ] {
                    out.counter(name, value);
                }
            }
            Err(e) => out.text("error", &format!("XDP_STATISTICS unavailable: {e}")),
        }
        if let Some(g) = &self.guard {
            g.report(out);
        }
    }
}

impl XdpBearer {
    /// Counts a send refused for lack of a TX frame or slot.
    fn ring_full(&mut self) -> io::Error {
        self.xdp.tx_ring_full += 1;
        self.stats.send_failed(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the AF_XDP TX ring is full (the message is dropped; call flush() per batch)",
        ))
    }
}

/// Binds in the configured mode; returns the mode got and, for an `Auto` fallback, why.
fn bind(
    fd: &OwnedFd,
    cfg: &XdpBearerConfig,
    ifindex: u32,
) -> io::Result<(XdpMode, Option<String>)> {
    let sock = fd.as_fd();
    let wake = if cfg.need_wakeup {
        libc::XDP_USE_NEED_WAKEUP
    } else {
        0
    };
    let explain = |e: io::Error, mode: XdpMode| -> io::Error {
        let iface = &cfg.iface;
        let q = cfg.queue;
        match e.raw_os_error() {
            Some(libc::EBUSY) => io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "queue {q} of {iface} already has an AF_XDP socket (one per queue; waited \
                     {BUSY_WAIT:?} for it to go)"
                ),
            ),
            Some(libc::EINVAL) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot bind AF_XDP in {mode} mode to queue {q} of {iface}: {e} (is the \
                     queue index below the interface's queue count? see `ethtool -l {iface}`)"
                ),
            ),
            Some(libc::EOPNOTSUPP) => io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the driver of {iface} has no AF_XDP {mode} mode: {e}"),
            ),
            _ => context(
                e,
                &format!("cannot bind AF_XDP in {mode} mode to queue {q} of {iface}"),
            ),
        }
    };
    let try_mode = |mode: XdpMode| -> io::Result<()> {
        let flag = match mode {
            XdpMode::ZeroCopy => libc::XDP_ZEROCOPY,
            _ => libc::XDP_COPY,
        };
        // The kernel frees a closed socket's hold on its queue in deferred work, so a queue
        // whose bearer was just dropped answers EBUSY for a few milliseconds. A failed bind
        // leaves the socket as it was, so it can simply be retried.
        let deadline = Instant::now() + BUSY_WAIT;
        loop {
            match sys::bind(sock, ifindex, cfg.queue, flag | wake) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => return r.map_err(|e| explain(e, mode)),
            }
        }
    };
    match cfg.mode {
        XdpMode::ZeroCopy => try_mode(XdpMode::ZeroCopy).map(|()| (XdpMode::ZeroCopy, None)),
        XdpMode::Copy => try_mode(XdpMode::Copy).map(|()| (XdpMode::Copy, None)),
        XdpMode::Auto => match try_mode(XdpMode::ZeroCopy) {
            Ok(()) => {
                // XDP_ZEROCOPY is never silently downgraded, but say what the kernel reports.
                let zc = sys::is_zero_copy(sock).unwrap_or(true);
                Ok((if zc { XdpMode::ZeroCopy } else { XdpMode::Copy }, None))
            }
            Err(zc_err) if zc_err.kind() == io::ErrorKind::AddrInUse => Err(zc_err),
            Err(zc_err) => {
                // A failed bind leaves the socket unbound with its UMEM and rings: bind again.
                try_mode(XdpMode::Copy).map_err(|e| {
                    io::Error::new(e.kind(), format!("{e} (zero-copy failed too: {zc_err})"))
                })?;
                Ok((XdpMode::Copy, Some(zc_err.to_string())))
            }
        },
    }
}

/// The filters of the AF_PACKET bearer: `Some` for a TIPC frame to deliver, `None` (and
/// counted in `drops`) for one to drop.
fn accept<'f>(
    mac: [u8; 6],
    drops: &mut RxDrops,
    frame: &'f [u8],
    limit: usize,
) -> Option<(RxMeta, &'f [u8])> {
    let Some(eth) = EthHeader::parse(frame) else {
        drops.malformed += 1;
        return None;
    };
    if eth.ethertype != ETH_P_TIPC {
        drops.malformed += 1;
        return None;
    }
    if eth.src == mac {
        drops.own_source += 1;
        return None;
    }
    if eth.dst != mac && !is_group_mac(&eth.dst) {
        drops.other_host += 1;
        return None;
    }
    let payload = frame.get(ETH_HLEN..)?;
    if payload.len() > limit {
        drops.truncated += 1;
        return None;
    }
    let meta = RxMeta {
        src: MediaAddr::Eth(eth.src),
        dst: MediaAddr::Eth(eth.dst),
    };
    Some((meta, payload))
}

/// What `open` needs to know about the interface.
struct IfaceInfo {
    ifindex: u32,
    mac: [u8; 6],
    mtu: u32,
}

/// Looks the interface up and applies the kernel bearer's refusals (as the AF_PACKET bearer).
fn interface_info(iface: &str) -> io::Result<IfaceInfo> {
    // The interface ioctls need a socket of a family that implements them; AF_XDP does not.
    let probe = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .map_err(|e| context(e, "cannot create a socket for the interface ioctls"))?;
    let sock = probe.as_fd();
    let ifindex = crate::sys::if_index(sock, iface).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENODEV) {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named {iface:?} in this network namespace (see `ip link`)"),
            )
        } else {
            context(e, &format!("cannot look up interface {iface:?}"))
        }
    })?;
    let loopback = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{iface} is a loopback device, which TIPC does not run on (the kernel refuses it \
                 too); use an Ethernet or veth interface, or the UDP bearer"
            ),
        )
    };
    let flags = crate::sys::if_flags(sock, iface)
        .map_err(|e| context(e, &format!("cannot read the flags of {iface}")))?;
    if flags & libc::IFF_LOOPBACK != 0 {
        return Err(loopback());
    }
    let (hw_type, mac) = crate::sys::if_hwaddr(sock, iface)
        .map_err(|e| context(e, &format!("cannot read the MAC address of {iface}")))?;
    match hw_type {
        libc::ARPHRD_ETHER => {}
        libc::ARPHRD_LOOPBACK => return Err(loopback()),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{iface} is not an Ethernet device (hardware type {other}); the Ethernet \
                     bearer needs one, or use the UDP bearer"
                ),
            ));
        }
    }
    let mtu = crate::sys::if_mtu(sock, iface)
        .map_err(|e| context(e, &format!("cannot read the MTU of {iface}")))?;
    if mtu < MIN_ETH_MTU {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{iface} has MTU {mtu}, below TIPC's minimum of {MIN_ETH_MTU}; raise it (`ip link \
                 set {iface} mtu 1500`)"
            ),
        ));
    }
    Ok(IfaceInfo { ifindex, mac, mtu })
}

/// What to do about `RLIMIT_MEMLOCK` before registering a UMEM.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MemlockPlan {
    /// The limit does not apply (CAP_IPC_LOCK) or is high enough.
    Enough,
    /// Raise the soft limit to this (`None`: unlimited), the hard limit.
    RaiseSoft(Option<u64>),
    /// The hard limit is too low: refuse with this error.
    Refuse(io::ErrorKind, String),
}

/// Decides from the UMEM size `need`, the soft and hard limits (`None`: unlimited) and whether
/// the process has CAP_IPC_LOCK (with it the kernel does not charge the UMEM to the limit).
fn memlock_plan(need: u64, soft: Option<u64>, hard: Option<u64>, ipc_lock: bool) -> MemlockPlan {
    let fits = |limit: Option<u64>| limit.is_none_or(|l| need <= l);
    if ipc_lock || fits(soft) {
        MemlockPlan::Enough
    } else if fits(hard) {
        MemlockPlan::RaiseSoft(hard)
    } else {
        let e = memlock_error(need, soft, "");
        MemlockPlan::Refuse(e.kind(), e.to_string())
    }
}

/// The "UMEM exceeds the locked-memory limit" error.
fn memlock_error(need: u64, soft: Option<u64>, detail: &str) -> io::Error {
    let limit = soft.map_or_else(|| "unlimited".to_owned(), |l| format!("{l} bytes"));
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "the AF_XDP UMEM needs {need} bytes of locked memory but RLIMIT_MEMLOCK is \
             {limit}{detail}: run `ulimit -l unlimited` (or LimitMEMLOCK=infinity in the systemd \
             unit) or run as root (CAP_IPC_LOCK), or lower --xdp-frames"
        ),
    )
}

/// Applies [`memlock_plan`] to this process.
fn ensure_memlock(need: u64) -> io::Result<()> {
    let (soft, hard) = sys::memlock_limit()?;
    match memlock_plan(need, soft, hard, has_cap_ipc_lock()) {
        MemlockPlan::Enough => Ok(()),
        MemlockPlan::RaiseSoft(to) => sys::set_memlock_soft(to)
            .map_err(|e| context(e, "cannot raise the soft RLIMIT_MEMLOCK to the hard limit")),
        MemlockPlan::Refuse(kind, msg) => Err(io::Error::new(kind, msg)),
    }
}

/// Whether the process has CAP_IPC_LOCK in its effective set.
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// The same error kind with `what` in front of the OS message.
fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_plan_raises_or_explains() {
        const MIB: u64 = 1 << 20;
        assert_eq!(
            memlock_plan(8 * MIB, Some(MIB), Some(MIB), true),
            MemlockPlan::Enough,
            "CAP_IPC_LOCK: not charged"
        );
        assert_eq!(
            memlock_plan(8 * MIB, None, None, false),
            MemlockPlan::Enough
        );
        assert_eq!(
            memlock_plan(8 * MIB, Some(8 * MIB), Some(8 * MIB), false),
            MemlockPlan::Enough
        );
        assert_eq!(
            memlock_plan(8 * MIB, Some(MIB), None, false),
            MemlockPlan::RaiseSoft(None)
        );
        assert_eq!(
            memlock_plan(8 * MIB, Some(MIB), Some(16 * MIB), false),
            MemlockPlan::RaiseSoft(Some(16 * MIB))
        );
        let MemlockPlan::Refuse(kind, msg) = memlock_plan(8 * MIB, Some(MIB), Some(MIB), false)
        else {
            panic!("must refuse");
        };
        assert_eq!(kind, io::ErrorKind::OutOfMemory);
        assert!(
            msg.contains(
                "needs 8388608 bytes of locked memory but RLIMIT_MEMLOCK is 1048576 bytes"
            ),
            "{msg}"
        );
        assert!(msg.contains("ulimit -l unlimited"), "{msg}");
        assert!(msg.contains("--xdp-frames"), "{msg}");
    }

    #[test]
    fn config_is_validated() {
        let ok = XdpBearerConfig::new("veth0");
        assert!(ok.validate().is_ok());
        assert_eq!(ok.umem_bytes(), 8 << 20);
        assert_eq!(ok.rx_frames(), 2048);
        for bad in [
            XdpBearerConfig {
                frame_size: 3000,
                ..ok.clone()
            },
            XdpBearerConfig {
                rx_ring_size: 1000,
                ..ok.clone()
            },
            XdpBearerConfig {
                tx_ring_size: 4,
                ..ok.clone()
            },
            XdpBearerConfig {
                frames: 8,
                ..ok.clone()
            },
        ] {
            let e = bad.validate().expect_err("invalid");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
        let small = XdpBearerConfig { frames: 64, ..ok };
        assert_eq!(
            small.rx_frames(),
            32,
            "half the frames when the ring is larger"
        );
    }

    #[test]
    fn bearers_move_between_threads() {
        fn send<T: Send>() {}
        send::<XdpBearer>();
        send::<crate::bearer::fault::FaultInjector<XdpBearer>>();
    }

    #[test]
    fn bad_interface_names_are_refused() {
        let mut never = |_: u32, _: RawFd| -> io::Result<()> { panic!("must not register") };
        for name in ["", "a-name-that-is-too-long", "nul\0name"] {
            let e = XdpBearer::open(XdpBearerConfig::new(name), &mut never)
                .expect_err("must be refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}: {e}");
        }
    }
}
