//! The per-client shared-memory segment: one sealed memfd holding a header and two rings,
//! client→daemon (c2d) and daemon→client (d2c).
//!
//! `utipcd` creates the segment ([`Segment::create`]) and passes its fd to the client over
//! `SCM_RIGHTS`; the client maps it ([`Segment::map`]). Each side then takes its two ring ends:
//! the client `c2d_producer` and `d2c_consumer`, the daemon `c2d_consumer` and `d2c_producer`.
//!
//! # Layout (version 1)
//!
//! ```text
//! offset 0        +------------------------------------------------------+
//!                 | header, 64 bytes used, zero up to HEADER_LEN         |
//!                 |   0 magic "UTIPCSHM"       8 layout version: u32     |
//!                 |  12 header length: u32    16 total length: u64       |
//!                 |  24 c2d offset: u64       32 c2d capacity: u64       |
//!                 |  40 d2c offset: u64       48 d2c capacity: u64       |
//!                 |  56 creator pid: u32      60 reserved (0): u32       |
//! HEADER_LEN      +------------------------------------------------------+
//! (4096)          | c2d ring: data area (c2d capacity)                   |
//!                 |           trailer (ring::TRAILER_LEN)                |
//! next 4096       +------------------------------------------------------+
//! multiple        | d2c ring: data area (d2c capacity)                   |
//!                 |           trailer                                    |
//! total length    +------------------------------------------------------+ (4096 multiple)
//! ```
//!
//! Integers are in the host's byte order (both sides share the host). The ring layout is in
//! [`crate::ring`].
//!
//! # Trust
//!
//! The client may write anything anywhere in the segment at any time, so the daemon reads the
//! header only while creating it, before the fd leaves the process, and keeps the layout in
//! private memory afterwards; the rings validate everything they read. The memfd is sealed
//! against shrinking and growing, and the seals themselves are sealed, so a client cannot
//! truncate the file under the daemon's mapping (which would make the daemon's accesses fault
//! with SIGBUS). [`Segment::map`] checks those seals and every header field against the file
//! size before the client uses anything.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ring::{self, Consumer, MAX_CAPACITY, MIN_CAPACITY, Producer, RingError};

/// The first 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"UTIPCSHM";
/// Version of this layout; a mapper refuses any other.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes reserved for the header; the first ring starts here.
pub const HEADER_LEN: usize = 4096;
/// Alignment of each ring region and of the total length.
const REGION_ALIGN: usize = 4096;
/// Name the memfd shows in `/proc/PID/fd` and `/proc/PID/maps`.
const MEMFD_NAME: &std::ffi::CStr = c"utipc-client";

/// Byte positions of the header fields.
mod field {
    use std::ops::Range;

    pub(super) const MAGIC: Range<usize> = 0..8;
    pub(super) const VERSION: Range<usize> = MAGIC.end..MAGIC.end + 4;
    pub(super) const HEADER_LEN: Range<usize> = VERSION.end..VERSION.end + 4;
    pub(super) const TOTAL_LEN: Range<usize> = HEADER_LEN.end..HEADER_LEN.end + 8;
    pub(super) const C2D_OFFSET: Range<usize> = TOTAL_LEN.end..TOTAL_LEN.end + 8;
    pub(super) const C2D_CAPACITY: Range<usize> = C2D_OFFSET.end..C2D_OFFSET.end + 8;
    pub(super) const D2C_OFFSET: Range<usize> = C2D_CAPACITY.end..C2D_CAPACITY.end + 8;
    pub(super) const D2C_CAPACITY: Range<usize> = D2C_OFFSET.end..D2C_OFFSET.end + 8;
    pub(super) const CREATOR_PID: Range<usize> = D2C_CAPACITY.end..D2C_CAPACITY.end + 4;
    pub(super) const RESERVED: Range<usize> = CREATOR_PID.end..CREATOR_PID.end + 4;
    /// Bytes of the header that carry fields.
    pub(super) const USED: usize = RESERVED.end;
}

const _: () = assert!(field::USED == 64 && field::USED <= HEADER_LEN);

/// What went wrong creating or mapping a segment or taking a ring end from it.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// The call, e.g. `"mmap"`.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `create` was given capacities no ring can have.
    #[error("invalid segment parameters: {0}")]
    BadArgument(&'static str),
    /// The mapped file is not a valid segment of this layout version.
    #[error("not a valid utipc segment: {0}")]
    BadHeader(&'static str),
    /// The file may be resized by someone else, which could crash us with SIGBUS.
    #[error("segment is not sealed against shrinking and growing")]
    NotSealed,
}

fn io_err(what: &'static str) -> SegmentError {
    SegmentError::Io {
        what,
        source: io::Error::last_os_error(),
    }
}

/// Where one ring lives in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPlace {
    /// Offset of the data area from the start of the segment.
    pub offset: usize,
    /// Size of the data area (a power of two).
    pub capacity: usize,
}

impl RingPlace {
    fn end(&self) -> Option<usize> {
        self.offset.checked_add(ring::region_len(self.capacity))
    }
}

/// The validated header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Length of the whole file.
    pub total_len: usize,
    /// Client→daemon ring.
    pub c2d: RingPlace,
    /// Daemon→client ring.
    pub d2c: RingPlace,
    /// Process id of the creator (the daemon), for diagnostics only.
    pub creator_pid: u32,
}

fn check_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
}

impl SegmentLayout {
    /// Places two rings of the given data-area sizes after the header.
    pub fn new(c2d_capacity: usize, d2c_capacity: usize) -> Result<Self, SegmentError> {
        if !check_capacity(c2d_capacity) || !check_capacity(d2c_capacity) {
            return Err(SegmentError::BadArgument(
                "ring capacities must be powers of two between 1 KiB and 1 GiB",
            ));
        }
        let c2d = RingPlace {
            offset: HEADER_LEN,
            capacity: c2d_capacity,
        };
        // Capacities ≤ 1 GiB each: no overflow on 64-bit hosts.
        let d2c = RingPlace {
            offset: ring::region_len(c2d_capacity).next_multiple_of(REGION_ALIGN) + HEADER_LEN,
            capacity: d2c_capacity,
        };
        let total_len =
            (d2c.offset + ring::region_len(d2c_capacity)).next_multiple_of(REGION_ALIGN);
        Ok(Self {
            total_len,
            c2d,
            d2c,
            creator_pid: std::process::id(),
        })
    }

    fn encode(&self) -> [u8; field::USED] {
        let mut h = [0u8; field::USED];
        h[field::MAGIC].copy_from_slice(&MAGIC);
        h[field::VERSION].copy_from_slice(&LAYOUT_VERSION.to_ne_bytes());
        h[field::HEADER_LEN].copy_from_slice(&(HEADER_LEN as u32).to_ne_bytes());
        h[field::TOTAL_LEN].copy_from_slice(&(self.total_len as u64).to_ne_bytes());
        h[field::C2D_OFFSET].copy_from_slice(&(self.c2d.offset as u64).to_ne_bytes());
        h[field::C2D_CAPACITY].copy_from_slice(&(self.c2d.capacity as u64).to_ne_bytes());
        h[field::D2C_OFFSET].copy_from_slice(&(self.d2c.offset as u64).to_ne_bytes());
        h[field::D2C_CAPACITY].copy_from_slice(&(self.d2c.capacity as u64).to_ne_bytes());
        h[field::CREATOR_PID].copy_from_slice(&self.creator_pid.to_ne_bytes());
        h
    }

    /// Parses and checks a header read from a file of `file_len` bytes.
    fn decode(h: &[u8; field::USED], file_len: usize) -> Result<Self, SegmentError> {
        let bad = SegmentError::BadHeader;
        let u32_at = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&h[r]);
            u32::from_ne_bytes(b)
        };
        let usize_at = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[r]);
            usize::try_from(u64::from_ne_bytes(b)).unwrap_or(usize::MAX)
        };
        if h[field::MAGIC] != MAGIC {
            return Err(bad("bad magic"));
        }
        if u32_at(field::VERSION) != LAYOUT_VERSION {
            return Err(bad("unsupported layout version"));
        }
        if u32_at(field::HEADER_LEN) as usize != HEADER_LEN {
            return Err(bad("unexpected header length"));
        }
        let total_len = usize_at(field::TOTAL_LEN);
        if total_len != file_len {
            return Err(bad("total length differs from the file size"));
        }
        let c2d = RingPlace {
            offset: usize_at(field::C2D_OFFSET),
            capacity: usize_at(field::C2D_CAPACITY),
        };
        let d2c = RingPlace {
            offset: usize_at(field::D2C_OFFSET),
            capacity: usize_at(field::D2C_CAPACITY),
        };
        for place in [c2d, d2c] {
            if !check_capacity(place.capacity) {
                return Err(bad(
                    "ring capacity not a power of two between 1 KiB and 1 GiB",
                ));
            }
            if place.offset < HEADER_LEN || !place.offset.is_multiple_of(REGION_ALIGN) {
                return Err(bad("ring offset inside the header or not page aligned"));
            }
            if place.end().is_none_or(|end| end > total_len) {
                return Err(bad("ring extends past the end of the file"));
            }
        }
        // Both ends are known to exist from the loop above.
        let (c2d_end, d2c_end) = (
            c2d.end().unwrap_or(usize::MAX),
            d2c.end().unwrap_or(usize::MAX),
        );
        if c2d.offset < d2c_end && d2c.offset < c2d_end {
            return Err(bad("rings overlap"));
        }
        Ok(Self {
            total_len,
            c2d,
            d2c,
            creator_pid: u32_at(field::CREATOR_PID),
        })
    }
}

/// A shared mapping, unmapped when the last holder (segment or ring end) goes.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all access goes through raw pointers or
// atomics whose soundness the ring code argues, and munmap may run on any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; `Mapping` itself offers no access at all.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Self, SegmentError> {
        // SAFETY: a fresh shared mapping of `len` bytes of the file; the kernel picks the
        // address, so nothing existing is replaced. The result is checked.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io_err("mmap"));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(SegmentError::BadHeader("mmap at null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range mmap returned, unmapped once, after every ring end that
        // pointed into it is gone (they hold this `Mapping` through an `Arc`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A mapped segment and its fd. Ring ends taken from it keep the mapping alive on their own,
/// so they may outlive the `Segment` and move to other threads.
pub struct Segment {
    fd: OwnedFd,
    map: Arc<Mapping>,
    layout: SegmentLayout,
    /// Handed out: c2d producer, c2d consumer, d2c producer, d2c consumer.
    taken: [AtomicBool; 4],
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("fd", &self.fd)
            .field("layout", &self.layout)
            .finish()
    }
}

impl Segment {
    /// Daemon side: creates, sizes, maps, initialises and seals a new segment (memfd mode
    /// 0600, close-on-exec) with rings of the given data-area sizes.
    pub fn create(c2d_capacity: usize, d2c_capacity: usize) -> Result<Self, SegmentError> {
        let layout = SegmentLayout::new(c2d_capacity, d2c_capacity)?;
        // SAFETY: a NUL-terminated constant name and constant flags; result checked.
        let raw = unsafe {
            libc::memfd_create(
                MEMFD_NAME.as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(io_err("memfd_create"));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = libc::off_t::try_from(layout.total_len)
            .map_err(|_| SegmentError::BadArgument("segment too large"))?;
        // SAFETY: plain syscalls on our descriptor; results checked.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } < 0 {
            return Err(io_err("ftruncate"));
        }
        // SAFETY: as above.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) } < 0 {
            return Err(io_err("fchmod"));
        }
        let map = Mapping::new(fd.as_fd(), layout.total_len)?;
        let header = layout.encode();
        // SAFETY: the mapping is `total_len` ≥ HEADER_LEN > 64 bytes long, and the file is
        // still ours alone (the fd has not left the process), so nobody writes concurrently.
        unsafe {
            ptr::copy_nonoverlapping(header.as_ptr(), map.ptr.as_ptr(), header.len());
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on our descriptor; result checked.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(io_err("F_ADD_SEALS"));
        }
        Ok(Self {
            fd,
            map: Arc::new(map),
            layout,
            taken: Default::default(),
        })
    }

    /// Client side: checks the seals and size of a segment received from the daemon, maps it
    /// and validates its header.
    pub fn map(fd: OwnedFd) -> Result<Self, SegmentError> {
        // Seals first: once shrink/grow are sealed, the size read next cannot change.
        // SAFETY: fcntl on our descriptor; result checked.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 {
            return Err(io_err("F_GET_SEALS (not a memfd?)"));
        }
        if seals & (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW)
            != libc::F_SEAL_SHRINK | libc::F_SEAL_GROW
        {
            return Err(SegmentError::NotSealed);
        }
        // SAFETY: zeroed `stat` is a valid out-buffer; fstat fills it; result checked.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
            return Err(io_err("fstat"));
        }
        let file_len = usize::try_from(st.st_size)
            .map_err(|_| SegmentError::BadHeader("negative file size"))?;
        if file_len < HEADER_LEN {
            return Err(SegmentError::BadHeader("file shorter than the header"));
        }
        let max_len = 2 * ring::region_len(MAX_CAPACITY) + 2 * REGION_ALIGN + HEADER_LEN;
        if file_len > max_len {
            return Err(SegmentError::BadHeader(
                "file larger than any valid segment",
            ));
        }
        let map = Mapping::new(fd.as_fd(), file_len)?;
        let mut header = [0u8; field::USED];
        // SAFETY: the mapping has ≥ HEADER_LEN bytes; a raw copy, because the other side may
        // write the header concurrently: only the copy is checked and used.
        unsafe {
            ptr::copy_nonoverlapping(map.ptr.as_ptr(), header.as_mut_ptr(), header.len());
        }
        let layout = SegmentLayout::decode(&header, file_len)?;
        Ok(Self {
            fd,
            map: Arc::new(map),
            layout,
            taken: Default::default(),
        })
    }

    /// The memfd, to pass to the client (duplicate it with `try_clone_to_owned`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where the rings are.
    pub fn layout(&self) -> &SegmentLayout {
        &self.layout
    }

    /// Client's writing end of the client→daemon ring. Each of the four ring ends is handed
    /// out once per `Segment` value; asking again is `BadLayout` (two producers or two
    /// consumers on one ring would break it).
    pub fn c2d_producer(&self) -> Result<Producer, RingError> {
        self.take(
            0,
            "client-to-daemon producer already taken from this segment",
        )?;
        self.producer(self.layout.c2d)
    }

    /// Daemon's reading end of the client→daemon ring (once per segment); messages longer
    /// than `max_msg_len` count as corruption.
    pub fn c2d_consumer(&self, max_msg_len: usize) -> Result<Consumer, RingError> {
        self.take(
            1,
            "client-to-daemon consumer already taken from this segment",
        )?;
        self.consumer(self.layout.c2d, max_msg_len)
    }

    /// Daemon's writing end of the daemon→client ring (once per segment).
    pub fn d2c_producer(&self) -> Result<Producer, RingError> {
        self.take(
            2,
            "daemon-to-client producer already taken from this segment",
        )?;
        self.producer(self.layout.d2c)
    }

    /// Client's reading end of the daemon→client ring (once per segment).
    pub fn d2c_consumer(&self, max_msg_len: usize) -> Result<Consumer, RingError> {
        self.take(
            3,
            "daemon-to-client consumer already taken from this segment",
        )?;
        self.consumer(self.layout.d2c, max_msg_len)
    }

    fn take(&self, slot: usize, what: &'static str) -> Result<(), RingError> {
        if self.taken[slot].swap(true, Ordering::AcqRel) {
            return Err(RingError::BadLayout(what));
        }
        Ok(())
    }

    fn region(&self, place: RingPlace) -> *mut u8 {
        // SAFETY: `place` was validated to lie inside the mapping (decode) or computed to
        // (new), so the offset stays in the allocation.
        unsafe { self.map.ptr.as_ptr().add(place.offset) }
    }

    fn producer(&self, place: RingPlace) -> Result<Producer, RingError> {
        // SAFETY: the region lies in the mapping, which the producer keeps alive through the
        // Arc; `take` ensures it is the only producer this process hands out for the ring.
        let p = unsafe {
            Producer::new(
                self.region(place),
                ring::region_len(place.capacity),
                place.capacity,
            )
        }?;
        Ok(p.keep_alive(self.map.clone()))
    }

    fn consumer(&self, place: RingPlace, max_msg_len: usize) -> Result<Consumer, RingError> {
        // SAFETY: as in `producer`.
        let c = unsafe {
            Consumer::new(
                self.region(place),
                ring::region_len(place.capacity),
                place.capacity,
                max_msg_len,
            )
        }?;
        Ok(c.keep_alive(self.map.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(seg: &Segment) -> OwnedFd {
        seg.fd().try_clone_to_owned().expect("dup")
    }

    /// A memfd holding `bytes`, sealed against resizing when `seal`.
    fn memfd_with(bytes: &[u8], seal: bool) -> OwnedFd {
        // SAFETY: test helper; every result is checked.
        unsafe {
            let raw =
                libc::memfd_create(c"t".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING);
            assert!(raw >= 0);
            let fd = OwnedFd::from_raw_fd(raw);
            let n = libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            assert_eq!(n, bytes.len() as isize);
            if seal {
                let s = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
                assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, s), 0);
            }
            fd
        }
    }

    /// The full file image of a valid segment with the given header patch applied.
    fn image(patch: impl FnOnce(&mut [u8; field::USED])) -> Vec<u8> {
        let layout = SegmentLayout::new(4096, 8192).expect("layout");
        let mut h = layout.encode();
        patch(&mut h);
        let mut file = vec![0u8; layout.total_len];
        file[..h.len()].copy_from_slice(&h);
        file
    }

    fn put64(h: &mut [u8; field::USED], r: std::ops::Range<usize>, v: u64) {
        h[r].copy_from_slice(&v.to_ne_bytes());
    }

    #[test]
    fn create_lays_out_and_seals() {
        let seg = Segment::create(4096, 65536).expect("create");
        let l = *seg.layout();
        assert_eq!(l.c2d.offset, HEADER_LEN);
        assert_eq!(l.c2d.capacity, 4096);
        assert_eq!(l.d2c.offset, 3 * 4096);
        assert_eq!(l.d2c.capacity, 65536);
        assert_eq!(l.total_len, 3 * 4096 + 65536 + 4096);
        assert_eq!(l.creator_pid, std::process::id());
        let fd = seg.fd().as_raw_fd();
        // SAFETY: plain syscalls on a descriptor the segment owns.
        unsafe {
            let seals = libc::fcntl(fd, libc::F_GET_SEALS);
            let want = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
            assert_eq!(seals & want, want);
            // A hostile holder of the fd cannot resize it, nor add or remove seals.
            assert_eq!(libc::ftruncate(fd, 0), -1);
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
            assert_eq!(libc::ftruncate(fd, (l.total_len * 2) as libc::off_t), -1);
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
            assert_eq!(libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_WRITE), -1);
            let mut st: libc::stat = std::mem::zeroed();
            assert_eq!(libc::fstat(fd, &mut st), 0);
            assert_eq!(st.st_mode & 0o777, 0o600);
            assert_eq!(st.st_size as usize, l.total_len);
        }
    }

    #[test]
    fn create_rejects_bad_capacities() {
        for (a, b) in [
            (1000, 4096),
            (4096, 512),
            (0, 4096),
            (4096, MAX_CAPACITY * 2),
        ] {
            assert!(matches!(
                Segment::create(a, b),
                Err(SegmentError::BadArgument(_))
            ));
        }
    }

    #[test]
    fn daemon_and_client_talk_through_two_mappings() {
        let daemon = Segment::create(4096, 4096).expect("create");
        let client = Segment::map(dup(&daemon)).expect("map");
        assert_eq!(client.layout(), daemon.layout());

        let mut c2d_tx = client.c2d_producer().expect("c2d producer");
        let mut c2d_rx = daemon.c2d_consumer(1024).expect("c2d consumer");
        let mut d2c_tx = daemon.d2c_producer().expect("d2c producer");
        let mut d2c_rx = client.d2c_consumer(1024).expect("d2c consumer");
        // The ring ends outlive both Segment values.
        drop(client);
        drop(daemon);

        for i in 0..200u32 {
            let msg = i.to_ne_bytes().repeat(i as usize % 40);
            c2d_tx.try_write(7, &[&msg]).expect("c2d write");
            let mut got = Vec::new();
            let n = c2d_rx
                .read(10, |t, m| got.push((t, m.to_vec())))
                .expect("c2d read");
            assert_eq!((n, got), (1, vec![(7, msg.clone())]));

            d2c_tx.try_write(9, &[&msg, b"!"]).expect("d2c write");
            let mut got = Vec::new();
            d2c_rx
                .read(10, |t, m| got.push((t, m.to_vec())))
                .expect("d2c read");
            let mut want = msg;
            want.push(b'!');
            assert_eq!(got, vec![(9, want)]);
        }
    }

    #[test]
    fn ring_ends_are_handed_out_once() {
        let seg = Segment::create(4096, 4096).expect("create");
        let _p = seg.c2d_producer().expect("first");
        assert!(matches!(seg.c2d_producer(), Err(RingError::BadLayout(r)) if r.contains("taken")));
        let _c = seg.d2c_consumer(16).expect("first");
        assert!(
            matches!(seg.d2c_consumer(16), Err(RingError::BadLayout(r)) if r.contains("taken"))
        );
        assert!(matches!(
            seg.c2d_consumer(4096),
            Err(RingError::BadLayout(_))
        ));
    }

    #[test]
    fn map_accepts_a_valid_image() {
        let seg = Segment::map(memfd_with(&image(|_| {}), true)).expect("valid image");
        assert_eq!(seg.layout().d2c.capacity, 8192);
    }

    #[test]
    fn map_rejects_bad_headers() {
        type Patch = fn(&mut [u8; field::USED]);
        let cases: [(Patch, &str); 9] = [
            (|h| h[0] = b'X', "bad magic"),
            (|h| h[field::VERSION][0] ^= 0xff, "version"),
            (|h| put64(h, field::TOTAL_LEN, 4096), "total length"),
            (|h| put64(h, field::C2D_CAPACITY, 3000), "capacity"),
            (|h| put64(h, field::D2C_CAPACITY, 1 << 40), "capacity"),
            (|h| put64(h, field::C2D_OFFSET, 0), "offset"),
            (|h| put64(h, field::C2D_OFFSET, 4096 + 17), "offset"),
            (
                |h| put64(h, field::D2C_OFFSET, u64::MAX - 4095),
                "past the end",
            ),
            (|h| put64(h, field::D2C_OFFSET, 4096), "overlap"),
        ];
        for (patch, want) in cases {
            let err = Segment::map(memfd_with(&image(patch), true)).expect_err(want);
            let text = err.to_string();
            assert!(
                matches!(err, SegmentError::BadHeader(_)) && text.contains(want),
                "{want}: got {text}"
            );
        }
    }

    #[test]
    fn map_rejects_bad_files() {
        // Short file.
        let err = Segment::map(memfd_with(&[0u8; 100], true)).expect_err("short");
        assert!(matches!(err, SegmentError::BadHeader(_)), "{err}");
        // Valid contents but resizable: a client must not trust that either.
        let err = Segment::map(memfd_with(&image(|_| {}), false)).expect_err("unsealed");
        assert!(matches!(err, SegmentError::NotSealed), "{err}");
        // Not a memfd at all.
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let err = Segment::map(OwnedFd::from(a)).expect_err("socket");
        assert!(matches!(err, SegmentError::Io { .. }), "{err}");
        // A daemon segment whose header the other side scribbled over.
        let seg = Segment::create(4096, 4096).expect("create");
        // SAFETY: test-only write into our own mapping.
        unsafe { *seg.map.ptr.as_ptr() = b'Z' };
        let err = Segment::map(dup(&seg)).expect_err("scribbled magic");
        assert!(err.to_string().contains("bad magic"), "{err}");
    }
}
