//! Test-only sockets: a minimal copy-mode AF_XDP socket (receive only), an AF_PACKET sender,
//! and an ICMP echo over a raw socket. Every wait is bounded.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Frames in the UMEM (each 2 KiB), and entries of the fill and RX rings.
const FRAMES: u32 = 64;
const FRAME_SIZE: u32 = 2048;

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// An anonymous or ring mapping, unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: RawFd, offset: libc::off_t, what: &str) -> io::Result<Self> {
        let flags = if fd < 0 {
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS
        } else {
            libc::MAP_SHARED | libc::MAP_POPULATE
        };
        // SAFETY: a fresh mapping chosen by the kernel; no existing memory is affected.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mmap {what}: {e}")));
        }
        Ok(Self {
            addr: addr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` describe a mapping this value created and nothing else unmaps.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// A mapped ring: producer and consumer indices plus descriptors of `T`.
struct Ring {
    map: Mapping,
    producer: usize,
    consumer: usize,
    desc: usize,
}

impl Ring {
    fn index(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: the kernel places the 4-byte-aligned u32 indices at these offsets inside the
        // mapping, which lives as long as `self`; they are only accessed atomically.
        unsafe { &*self.map.addr.add(offset).cast::<AtomicU32>() }
    }

    fn producer(&self) -> &AtomicU32 {
        self.index(self.producer)
    }

    fn consumer(&self) -> &AtomicU32 {
        self.index(self.consumer)
    }

    fn desc_ptr<T>(&self, i: u32) -> *mut T {
        let slot = usize::try_from(i % FRAMES).expect("fits");
        // SAFETY: the descriptor array holds FRAMES entries of T starting at `desc`.
        unsafe { self.map.addr.add(self.desc).cast::<T>().add(slot) }
    }
}

/// A copy-mode AF_XDP socket bound to one queue of one interface, with all UMEM frames in its
/// fill ring. Receive only.
pub(crate) struct Xsk {
    // Field order: the rings and UMEM are unmapped after the socket closes.
    fd: OwnedFd,
    rx: Ring,
    _fill: Ring,
    umem: Mapping,
}

impl Xsk {
    /// Creates the socket and binds it to queue `queue` of interface `ifindex` (in the calling
    /// thread's network namespace).
    pub(crate) fn bind(ifindex: u32, queue: u32) -> io::Result<Self> {
        // SAFETY: plain socket(2) call.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(raw, "socket(AF_XDP)")?;
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem_len = usize::try_from(FRAMES * FRAME_SIZE).expect("fits");
        let umem = Mapping::new(umem_len, -1, 0, "UMEM")?;
        let reg = libc::xdp_umem_reg {
            addr: umem.addr as u64,
            len: umem_len as u64,
            chunk_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(&fd, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        for (opt, what) in [
            (libc::XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING"),
            (libc::XDP_UMEM_COMPLETION_RING, "XDP_UMEM_COMPLETION_RING"),
            (libc::XDP_RX_RING, "XDP_RX_RING"),
        ] {
            setsockopt(&fd, opt, &FRAMES, what)?;
        }
        // SAFETY: all-zero is a valid xdp_mmap_offsets.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len =
            libc::socklen_t::try_from(size_of::<libc::xdp_mmap_offsets>()).expect("small");
        // SAFETY: getsockopt writes at most `len` bytes into `off`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&raw mut off).cast(),
                &raw mut len,
            )
        };
        check(rc, "XDP_MMAP_OFFSETS")?;
        let ring = |o: &libc::xdp_ring_offset, desc_size: usize, pgoff: u64, what: &str| {
            let len = usize::try_from(o.desc).expect("fits")
                + usize::try_from(FRAMES).expect("fits") * desc_size;
            let pgoff = libc::off_t::try_from(pgoff).expect("fits");
            Mapping::new(len, fd.as_raw_fd(), pgoff, what).map(|map| Ring {
                map,
                producer: usize::try_from(o.producer).expect("fits"),
                consumer: usize::try_from(o.consumer).expect("fits"),
                desc: usize::try_from(o.desc).expect("fits"),
            })
        };
        let fill = ring(&off.fr, 8, libc::XDP_UMEM_PGOFF_FILL_RING, "fill ring")?;
        let rx = ring(
            &off.rx,
            size_of::<libc::xdp_desc>(),
            u64::try_from(libc::XDP_PGOFF_RX_RING).expect("zero"),
            "RX ring",
        )?;
        // Give every frame to the kernel.
        for i in 0..FRAMES {
            // SAFETY: slot i of the fill ring; the kernel reads it only after the producer
            // index is published below.
            unsafe { fill.desc_ptr::<u64>(i).write(u64::from(i * FRAME_SIZE)) };
        }
        fill.producer().store(FRAMES, Ordering::Release);

        let addr = libc::sockaddr_xdp {
            sxdp_family: u16::try_from(libc::AF_XDP).expect("small"),
            sxdp_flags: libc::XDP_COPY,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `addr` is a valid sockaddr_xdp of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                libc::socklen_t::try_from(size_of::<libc::sockaddr_xdp>()).expect("small"),
            )
        };
        check(rc, "bind(AF_XDP)")?;
        Ok(Self {
            fd,
            rx,
            _fill: fill,
            umem,
        })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next received frame, waiting up to `timeout`; `None` if none came.
    pub(crate) fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let cons = self.rx.consumer().load(Ordering::Relaxed);
            let prod = self.rx.producer().load(Ordering::Acquire);
            if prod != cons {
                // SAFETY: the kernel published descriptor `cons` (Acquire above).
                let desc = unsafe { self.rx.desc_ptr::<libc::xdp_desc>(cons).read() };
                let start = usize::try_from(desc.addr).expect("fits");
                let len = usize::try_from(desc.len).expect("fits");
                assert!(start + len <= self.umem.len, "descriptor outside the UMEM");
                // SAFETY: the descriptor lies inside the UMEM (checked) and the kernel wrote
                // the frame before publishing it.
                let frame =
                    unsafe { std::slice::from_raw_parts(self.umem.addr.add(start), len) }.to_vec();
                // The frame is not given back to the fill ring: tests receive only a few.
                self.rx
                    .consumer()
                    .store(cons.wrapping_add(1), Ordering::Release);
                return Some(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().clamp(1, 1000)).expect("small");
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&raw mut pfd, 1, ms) };
        }
    }
}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, value: &T, what: &str) -> io::Result<()> {
    // SAFETY: `value` points to a valid T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            ptr::from_ref(value).cast(),
            libc::socklen_t::try_from(size_of::<T>()).expect("small"),
        )
    };
    check(rc, what)
}

/// The index of `ifname` in the calling thread's network namespace.
pub(crate) fn if_index(ifname: &str) -> u32 {
    let name = std::ffi::CString::new(ifname).expect("no NUL");
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(i, 0, "no interface {ifname}");
    i
}

/// Sends `frame` as is on interface `ifname` with an AF_PACKET socket.
pub(crate) fn send_raw(ifname: &str, frame: &[u8]) {
    let ifindex = if_index(ifname);
    // SAFETY: plain socket(2) call; protocol 0 = send only.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    check(raw, "socket(AF_PACKET)").expect("AF_PACKET socket");
    // SAFETY: new descriptor owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = u16::try_from(libc::AF_PACKET).expect("small");
    addr.sll_ifindex = i32::try_from(ifindex).expect("fits");
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: `frame` and `addr` are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const addr).cast(),
            libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).expect("small"),
        )
    };
    assert_eq!(
        usize::try_from(n).ok(),
        Some(frame.len()),
        "AF_PACKET sendto: {}",
        io::Error::last_os_error()
    );
}

/// Sends one ICMP echo request to `dst` from a raw socket and waits (up to 2 s) for the reply.
/// Returns whether it came.
pub(crate) fn ping(dst: [u8; 4]) -> bool {
    // SAFETY: plain socket(2) call.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    check(raw, "socket(SOCK_RAW, ICMP)").expect("raw ICMP socket");
    // SAFETY: new descriptor owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let id: u16 = 0x7e57;
    let mut echo = vec![8u8, 0, 0, 0];
    echo.extend_from_slice(&id.to_be_bytes());
    echo.extend_from_slice(&1u16.to_be_bytes());
    echo.extend_from_slice(b"utipc-ebpf ping");
    let csum = crate::frames::checksum(&echo);
    echo[2..4].copy_from_slice(&csum.to_be_bytes());
    let addr = libc::sockaddr_in {
        sin_family: u16::try_from(libc::AF_INET).expect("small"),
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: valid buffer and address.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            echo.as_ptr().cast(),
            echo.len(),
            0,
            (&raw const addr).cast(),
            libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).expect("small"),
        )
    };
    assert_eq!(
        usize::try_from(n).ok(),
        Some(echo.len()),
        "ICMP sendto: {}",
        io::Error::last_os_error()
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 1500];
    while !deadline.saturating_duration_since(Instant::now()).is_zero() {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&raw mut pfd, 1, 200) } <= 0 {
            continue;
        }
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { continue };
        // An IPv4 header, then ICMP: type 0 (echo reply) with our id.
        let ihl = usize::from(buf[0] & 0xf) * 4;
        if n >= ihl + 8 && buf[ihl] == 0 && buf[ihl + 4..ihl + 6] == id.to_be_bytes() {
            return true;
        }
    }
    false
}
