//! The raw AF_XDP calls and shared memory: the socket, `XDP_UMEM_REG` and the ring-size
//! options, `XDP_MMAP_OFFSETS`, the four ring mappings, `bind(sockaddr_xdp)`, the TX kick and
//! RX wake-up, `XDP_STATISTICS`, and `RLIMIT_MEMLOCK`.
//!
//! Why a module of its own: like the crate's `sys` module, every `unsafe` block of the AF_XDP
//! bearer lives here (the bearer has two more, each a call of [`Umem::frame`] /
//! [`Umem::frame_mut`] whose ownership precondition only the bearer can vouch for). The types
//! above it ([`RingMem`], [`Umem`]) are safe to use: their constructors establish the
//! invariants (mapped, aligned, in bounds) their accessors rely on.
//!
//! Who owns what (after xdpilone's `src/xsk.rs`):
//!
//! * [`Mmap`] owns one mapping and unmaps it on drop.
//! * [`RingMem`] owns the mapping of one ring (or, in unit tests, ordinary anonymous memory)
//!   and gives out its producer and consumer words and descriptor slots. Which side produces
//!   and which consumes is decided one level up, in `ring.rs`.
//! * [`Umem`] owns the packet buffer area. Each frame belongs either to the kernel (it is in
//!   the fill ring, the RX ring, the TX ring or the completion ring) or to the bearer; only
//!   frames the bearer owns may be read or written, which is why the frame accessors are
//!   `unsafe fn`.

use std::io;
use std::marker::PhantomData;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;

use libc::{c_int, c_void, socklen_t};

/// Turns a `-1` return into the thread's `errno`.
fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn socklen_of<T>() -> socklen_t {
    // Every option type here is far below 4 GiB.
    socklen_t::try_from(size_of::<T>()).unwrap_or(socklen_t::MAX)
}

// ---------------------------------------------------------------------------------------------
// Mappings

/// One `mmap` region, unmapped on drop.
#[derive(Debug)]
pub(super) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory that no thread-local state refers to; the owner moves it
// between threads as a whole, and shared access goes through the atomics and the ownership
// rules of `RingMem` and `Umem`.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Private anonymous read-write memory of `len` bytes, zeroed and populated (the UMEM, or a
    /// ring in unit tests). Page aligned, so every frame of a power-of-two size is aligned too.
    pub(super) fn anonymous(len: usize) -> io::Result<Self> {
        Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    }

    /// A ring of an AF_XDP socket: `len` bytes at page offset `pgoff` (one of the
    /// `XDP_PGOFF_*` / `XDP_UMEM_PGOFF_*` constants), shared with the kernel.
    pub(super) fn ring(fd: BorrowedFd<'_>, len: usize, pgoff: u64) -> io::Result<Self> {
        let off = libc::off_t::try_from(pgoff)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ring offset above 2^63"))?;
        Self::map(
            len,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            off,
        )
    }

    fn map(len: usize, flags: c_int, fd: c_int, off: libc::off_t) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map 0 bytes",
            ));
        }
        // SAFETY: a fresh mapping at an address the kernel picks (null hint), so no existing
        // memory is touched; the result is checked for MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { ptr, len })
    }

    /// The first byte.
    pub(super) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length in bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and nothing refers to the region
        // any more (every borrow of it borrows `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

// ---------------------------------------------------------------------------------------------
// Rings

/// Where the parts of one ring lie in its mapping, in bytes (the kernel's `xdp_ring_offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RingOffsets {
    pub(super) producer: u64,
    pub(super) consumer: u64,
    pub(super) desc: u64,
    pub(super) flags: u64,
}

impl RingOffsets {
    /// A layout for a ring in ordinary memory (unit tests): one 64-byte line per word, then
    /// the descriptors.
    #[cfg(test)]
    pub(super) const TEST: Self = Self {
        producer: 0,
        consumer: 64,
        flags: 128,
        desc: 192,
    };
}

impl From<libc::xdp_ring_offset> for RingOffsets {
    fn from(o: libc::xdp_ring_offset) -> Self {
        Self {
            producer: o.producer,
            consumer: o.consumer,
            desc: o.desc,
            flags: o.flags,
        }
    }
}

/// The memory of one ring: a producer word, a consumer word, a flags word and `size`
/// descriptors of type `T` (a `u64` frame address for the fill and completion rings, an
/// [`libc::xdp_desc`] for RX and TX).
///
/// The words are `AtomicU32`s shared with the kernel; descriptor slots are read and written by
/// value through raw pointers, never through references, since the other side writes the
/// slots it owns while we hold the ring.
#[derive(Debug)]
pub(super) struct RingMem<T> {
    map: Mmap,
    offsets: RingOffsets,
    size: u32,
    _desc: PhantomData<T>,
}

impl<T: Copy> RingMem<T> {
    /// Maps a ring of `size` entries of the socket at page offset `pgoff` with the layout the
    /// kernel reported.
    pub(super) fn map(
        fd: BorrowedFd<'_>,
        offsets: RingOffsets,
        size: u32,
        pgoff: u64,
    ) -> io::Result<Self> {
        let len = Self::bytes(offsets, size)?;
        let map = Mmap::ring(fd, len, pgoff)?;
        Self::new(map, offsets, size)
    }

    /// A ring in ordinary memory, for unit tests of the ring logic (the test plays the
    /// kernel's side).
    #[cfg(test)]
    pub(super) fn anonymous(size: u32) -> io::Result<Self> {
        let offsets = RingOffsets::TEST;
        let map = Mmap::anonymous(Self::bytes(offsets, size)?)?;
        Self::new(map, offsets, size)
    }

    fn bytes(offsets: RingOffsets, size: u32) -> io::Result<usize> {
        usize::try_from(offsets.desc)
            .ok()
            .and_then(|d| d.checked_add(size_of::<T>().checked_mul(size as usize)?))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "ring too large"))
    }

    /// Checks that every word and slot lies inside `map` and is aligned.
    fn new(map: Mmap, offsets: RingOffsets, size: u32) -> io::Result<Self> {
        let bad = |what: &str| {
            io::Error::other(format!(
                "the kernel's AF_XDP ring layout is unusable ({what}): {offsets:?}"
            ))
        };
        if !size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ring size {size} is not a power of two"),
            ));
        }
        let len = map.len() as u64;
        for (what, off) in [
            ("producer", offsets.producer),
            ("consumer", offsets.consumer),
            ("flags", offsets.flags),
        ] {
            if off.checked_add(4).is_none_or(|end| end > len) || !off.is_multiple_of(4) {
                return Err(bad(what));
            }
        }
        let desc_end = (size as u64)
            .checked_mul(size_of::<T>() as u64)
            .and_then(|b| b.checked_add(offsets.desc));
        if desc_end.is_none_or(|end| end > len)
            || !offsets.desc.is_multiple_of(align_of::<T>() as u64)
        {
            return Err(bad("descriptors"));
        }
        Ok(Self {
            map,
            offsets,
            size,
            _desc: PhantomData,
        })
    }

    fn word(&self, off: u64) -> &AtomicU32 {
        // SAFETY: `new` checked that `off..off + 4` lies inside the mapping and is 4-byte
        // aligned (the mapping itself is page aligned); the mapping lives as long as `self`,
        // and the word is only ever accessed atomically, by us and by the kernel.
        unsafe { &*self.map.as_ptr().add(off as usize).cast::<AtomicU32>() }
    }

    /// The producer index (free running, wraps at 2^32).
    pub(super) fn producer(&self) -> &AtomicU32 {
        self.word(self.offsets.producer)
    }

    /// The consumer index (free running, wraps at 2^32).
    pub(super) fn consumer(&self) -> &AtomicU32 {
        self.word(self.offsets.consumer)
    }

    /// The flags word (`XDP_RING_NEED_WAKEUP`).
    pub(super) fn flags(&self) -> &AtomicU32 {
        self.word(self.offsets.flags)
    }

    /// Number of slots (a power of two).
    pub(super) fn size(&self) -> u32 {
        self.size
    }

    fn slot(&self, idx: u32) -> *mut T {
        let i = (idx & (self.size - 1)) as usize;
        // SAFETY: `i < size`, and `new` checked that `size` descriptors from `offsets.desc` lie
        // inside the mapping, aligned for `T`.
        unsafe {
            self.map
                .as_ptr()
                .add(self.offsets.desc as usize)
                .cast::<T>()
                .add(i)
        }
    }

    /// Reads the descriptor at ring index `idx` (taken modulo the size).
    pub(super) fn read(&self, idx: u32) -> T {
        // SAFETY: the slot is in bounds and aligned (see `slot`); `T` is plain old data (u64 or
        // xdp_desc) for which every bit pattern is valid. The caller owns the slot by the ring
        // protocol, so the kernel does not write it concurrently.
        unsafe { ptr::read_volatile(self.slot(idx)) }
    }

    /// Writes the descriptor at ring index `idx` (taken modulo the size).
    pub(super) fn write(&self, idx: u32, value: T) {
        // SAFETY: as in `read`; the slot is ours until we publish it with the producer index.
        unsafe { ptr::write_volatile(self.slot(idx), value) }
    }
}

// ---------------------------------------------------------------------------------------------
// UMEM

/// The packet buffer area: `frames` frames of `frame_size` bytes (a power of two), registered
/// with the socket.
#[derive(Debug)]
pub(super) struct Umem {
    map: Mmap,
    frame_size: u32,
}

impl Umem {
    /// Allocates the area (zeroed, populated).
    pub(super) fn new(frame_size: u32, frames: u32) -> io::Result<Self> {
        let len = (frame_size as usize)
            .checked_mul(frames as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "UMEM too large"))?;
        Ok(Self {
            map: Mmap::anonymous(len)?,
            frame_size,
        })
    }

    /// Size of one frame.
    pub(super) fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Total bytes.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether `addr..addr + len` lies inside one frame of the area.
    pub(super) fn in_bounds(&self, addr: u64, len: u32) -> bool {
        let fs = u64::from(self.frame_size);
        let end = addr.saturating_add(u64::from(len));
        end <= self.map.len() as u64 && (len == 0 || addr / fs == (end - 1) / fs)
    }

    /// The `len` bytes at `addr`; `None` unless they lie inside one frame.
    ///
    /// # Safety
    ///
    /// The frame holding `addr` must belong to the caller: taken from the RX or completion ring
    /// (or never given to the kernel) and not yet put into the fill or TX ring, for as long as
    /// the returned slice lives.
    pub(super) unsafe fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        if !self.in_bounds(addr, len) {
            return None;
        }
        // SAFETY: in bounds (checked above) of a mapping that lives as long as `self`; the
        // caller guarantees the kernel does not write the frame while the slice lives.
        Some(unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(addr as usize), len as usize)
        })
    }

    /// The `len` bytes at `addr`, writable; `None` unless they lie inside one frame.
    ///
    /// # Safety
    ///
    /// As for [`Umem::frame`]: the frame must belong to the caller.
    pub(super) unsafe fn frame_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        if !self.in_bounds(addr, len) {
            return None;
        }
        // SAFETY: in bounds (checked above); `&mut self` excludes other borrows of the area
        // from our side, and the caller guarantees the kernel does not touch the frame.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.map.as_ptr().add(addr as usize), len as usize)
        })
    }

    fn base(&self) -> u64 {
        self.map.as_ptr() as u64
    }
}

// ---------------------------------------------------------------------------------------------
// The socket

/// A fresh, non-blocking AF_XDP socket.
pub(super) fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with constant arguments and no pointers.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_XDP,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2): it is open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: BorrowedFd<'_>, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, a live `T`; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            ptr::from_ref(value).cast::<c_void>(),
            socklen_of::<T>(),
        )
    };
    cvt(r).map(drop)
}

/// Registers `umem` with the socket (`XDP_UMEM_REG`), aligned chunks, no extra headroom.
pub(super) fn umem_reg(fd: BorrowedFd<'_>, umem: &Umem) -> io::Result<()> {
    let reg = libc::xdp_umem_reg {
        addr: umem.base(),
        len: umem.len() as u64,
        chunk_size: umem.frame_size,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    setsockopt(fd, libc::XDP_UMEM_REG, &reg)
}

/// Sets the size of one ring (`XDP_RX_RING`, `XDP_TX_RING`, `XDP_UMEM_FILL_RING`,
/// `XDP_UMEM_COMPLETION_RING`).
pub(super) fn set_ring_size(fd: BorrowedFd<'_>, ring: c_int, size: u32) -> io::Result<()> {
    setsockopt(fd, ring, &size)
}

/// The ring layouts (`XDP_MMAP_OFFSETS`): RX, TX, fill, completion. Refuses kernels older
/// than 5.4, whose layout has no flags word (no need_wakeup).
pub(super) fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<[RingOffsets; 4]> {
    // SAFETY: plain old data; all-zero is valid.
    let mut off: libc::xdp_mmap_offsets = unsafe { mem::zeroed() };
    let mut len = socklen_of::<libc::xdp_mmap_offsets>();
    // SAFETY: the pointer and length describe `off`, a live, exclusively borrowed struct; the
    // kernel writes at most `len` bytes and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&raw mut off).cast::<c_void>(),
            &raw mut len,
        )
    };
    cvt(r)?;
    if len != socklen_of::<libc::xdp_mmap_offsets>() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel's AF_XDP rings have no flags word (Linux < 5.4); the XDP bearer needs \
             Linux 5.4 or later, or use the AF_PACKET bearer",
        ));
    }
    Ok([off.rx.into(), off.tx.into(), off.fr.into(), off.cr.into()])
}

/// Binds the socket to queue `queue` of interface `ifindex` with `XDP_*` bind flags.
pub(super) fn bind(fd: BorrowedFd<'_>, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
    let sxdp = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: the pointer and length describe `sxdp`, a live sockaddr_xdp; the kernel only
    // reads it.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sxdp).cast::<libc::sockaddr>(),
            socklen_of::<libc::sockaddr_xdp>(),
        )
    };
    cvt(r).map(drop)
}

/// Whether the bound socket runs in zero-copy mode (`XDP_OPTIONS`).
pub(super) fn is_zero_copy(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut opts = libc::xdp_options { flags: 0 };
    let mut len = socklen_of::<libc::xdp_options>();
    // SAFETY: the pointer and length describe `opts`, a live, exclusively borrowed struct.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&raw mut opts).cast::<c_void>(),
            &raw mut len,
        )
    };
    cvt(r)?;
    Ok(opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// The kernel's counters of the socket (`XDP_STATISTICS`).
pub(super) fn statistics(fd: BorrowedFd<'_>) -> io::Result<libc::xdp_statistics> {
    // SAFETY: plain old data; all-zero is valid.
    let mut st: libc::xdp_statistics = unsafe { mem::zeroed() };
    let mut len = socklen_of::<libc::xdp_statistics>();
    // SAFETY: the pointer and length describe `st`, a live, exclusively borrowed struct; an
    // older kernel writes fewer bytes (the rest stays zero).
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&raw mut st).cast::<c_void>(),
            &raw mut len,
        )
    };
    cvt(r)?;
    Ok(st)
}

/// Tells the kernel to process the TX ring (`sendto` with no data). Copy mode transmits only
/// inside this call. `Ok(false)` when the kernel asks to be called again (`EAGAIN`, `EBUSY`:
/// it stopped after its per-call budget, or the completion ring was full; `ENOBUFS`: no skb).
pub(super) fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: no buffer and no address: null pointers with zero lengths.
        let r = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null(),
                0,
            )
        };
        if r >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Wakes the driver to refill RX from the fill ring (`recvfrom` with no buffer), when the fill
/// ring asks for it.
pub(super) fn wake_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no buffer and no address: null pointers with zero lengths.
    let r = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if r >= 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => Ok(()),
        _ => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// RLIMIT_MEMLOCK

/// The soft and hard `RLIMIT_MEMLOCK` of the process, `None` for unlimited.
pub(super) fn memlock_limit() -> io::Result<(Option<u64>, Option<u64>)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a live, exclusively borrowed rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut rl) })?;
    let f = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok((f(rl.rlim_cur), f(rl.rlim_max)))
}

/// Sets the soft `RLIMIT_MEMLOCK` (`None`: unlimited), keeping the hard limit.
pub(super) fn set_memlock_soft(soft: Option<u64>) -> io::Result<()> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a live, exclusively borrowed rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut rl) })?;
    rl.rlim_cur = soft.unwrap_or(libc::RLIM_INFINITY);
    // SAFETY: `rl` is a live rlimit; the kernel only reads it.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const rl) }).map(drop)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn umem_bounds_stay_inside_one_frame() {
        let mut u = Umem::new(2048, 4).expect("umem");
        assert_eq!(u.len(), 8192);
        assert!(u.in_bounds(0, 2048));
        assert!(u.in_bounds(2048 + 256, 1792));
        assert!(
            !u.in_bounds(2048 + 256, 1793),
            "crosses into the next frame"
        );
        assert!(!u.in_bounds(3 * 2048, 2049), "past the end");
        assert!(!u.in_bounds(u64::MAX - 3, 8), "overflow");
        // SAFETY: no kernel has this UMEM; every frame is ours.
        let f = unsafe { u.frame_mut(2048, 4) }.expect("in bounds");
        f.copy_from_slice(b"tipc");
        // SAFETY: as above.
        assert_eq!(unsafe { u.frame(2048, 4) }, Some(&b"tipc"[..]));
        // SAFETY: as above.
        assert_eq!(unsafe { u.frame(8190, 4) }, None);
    }

    #[test]
    fn ring_memory_checks_its_layout() {
        assert!(RingMem::<u64>::anonymous(6).is_err(), "not a power of two");
        let r = RingMem::<u64>::anonymous(8).expect("ring");
        r.write(9, 42);
        assert_eq!(r.read(1), 42, "indices wrap modulo the size");
        r.producer().store(7, Ordering::Relaxed);
        assert_eq!(r.producer().load(Ordering::Relaxed), 7);
        assert_eq!(r.consumer().load(Ordering::Relaxed), 0);
    }
}
