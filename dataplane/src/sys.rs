//! Thin, safe wrappers over the few Linux calls that neither std nor socket2 offer: AF_PACKET
//! sockets and their `sockaddr_ll`, the interface ioctls, `recvmsg`/`sendmsg` with
//! `IP_PKTINFO`/`IPV6_PKTINFO` control messages, `getifaddrs` and `poll`.
//!
//! Why a module of its own: every `unsafe` block of the crate lives here, each next to the
//! reason it is sound, so the bearers above it are safe code. The wrappers retry `EINTR`, turn
//! `EAGAIN` into `Ok(None)` where "nothing to read" is a normal answer, and otherwise return the
//! OS error unchanged for the caller to explain.

use std::ffi::CStr;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::Duration;

use libc::{c_int, c_void, socklen_t};

/// Turns a `-1` return into the thread's `errno`.
fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Turns a `-1` byte count into the thread's `errno`.
fn cvt_len(r: isize) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// Runs `f` again while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// `Ok(None)` for `EAGAIN`/`EWOULDBLOCK`, the error otherwise.
fn none_if_would_block<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

fn socklen_of<T>() -> socklen_t {
    // Every sockaddr and option type is far below 4 GiB.
    socklen_t::try_from(size_of::<T>()).unwrap_or(socklen_t::MAX)
}

// ---------------------------------------------------------------------------------------------
// Socket options

/// `setsockopt(fd, level, name, &value, sizeof(int))`.
pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, a live c_int on our stack; the kernel
    // only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast::<c_void>(),
            socklen_of::<c_int>(),
        )
    };
    cvt(r).map(drop)
}

// ---------------------------------------------------------------------------------------------
// AF_PACKET

/// A non-blocking `AF_PACKET`/`SOCK_RAW` socket that receives nothing until it is bound (it is
/// opened with protocol 0, so no frame of another interface slips in before `bind`).
pub(crate) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with constant arguments and no pointers.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2): it is open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a packet socket to one interface and one ethertype (0 = none, `ETH_P_ALL` = all).
pub(crate) fn packet_bind(fd: BorrowedFd<'_>, ifindex: u32, ethertype: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data, for which all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index above 2^31"))?;
    // SAFETY: the pointer and length describe `sll`, a live sockaddr_ll; the kernel only reads
    // it.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast::<libc::sockaddr>(),
            socklen_of::<libc::sockaddr_ll>(),
        )
    };
    cvt(r).map(drop)
}

/// What `recv_packet` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PacketRecv {
    /// Length of the whole frame on the wire, link header included, even if it was truncated.
    pub(crate) frame_len: usize,
    /// The kernel's `sll_pkttype` (`PACKET_HOST`, `PACKET_BROADCAST`, ...).
    pub(crate) pkttype: u8,
}

/// Reads one frame from a packet socket, scattering its first `head.len()` bytes into `head`
/// and the rest into `body`. `Ok(None)` when nothing is queued.
pub(crate) fn recv_packet(
    fd: BorrowedFd<'_>,
    head: &mut [u8],
    body: &mut [u8],
) -> io::Result<Option<PacketRecv>> {
    let mut iov = [
        libc::iovec {
            iov_base: head.as_mut_ptr().cast::<c_void>(),
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_mut_ptr().cast::<c_void>(),
            iov_len: body.len(),
        },
    ];
    // SAFETY: plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    // SAFETY: plain old data; all-zero (null pointers, zero lengths) is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&raw mut sll).cast::<c_void>();
    msg.msg_namelen = socklen_of::<libc::sockaddr_ll>();
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    let n = none_if_would_block(retry(|| {
        // SAFETY: `msg` points at `sll` and at two iovecs that describe `head` and `body`, all
        // alive and exclusively borrowed for the call; the kernel writes at most the stated
        // lengths. MSG_TRUNC makes it return the real frame length.
        cvt_len(unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, libc::MSG_TRUNC) })
    }))?;
    Ok(n.map(|frame_len| PacketRecv {
        frame_len,
        pkttype: sll.sll_pkttype,
    }))
}

/// Sends one frame, gathered from `parts`, on a bound packet socket (or any connected or bound
/// datagram socket). Returns the bytes sent.
pub(crate) fn send_gather(fd: BorrowedFd<'_>, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iov: [libc::iovec; 4] = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; 4];
    if parts.len() > iov.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "send_gather takes at most 4 parts",
        ));
    }
    for (slot, part) in iov.iter_mut().zip(parts) {
        // The kernel never writes through a send iovec; the cast only satisfies the C type.
        slot.iov_base = part.as_ptr().cast_mut().cast::<c_void>();
        slot.iov_len = part.len();
    }
    // SAFETY: plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = parts.len();
    retry(|| {
        // SAFETY: `msg` points at iovecs that describe the borrowed `parts`, alive for the
        // call; the kernel only reads them.
        cvt_len(unsafe { libc::sendmsg(fd.as_raw_fd(), &raw const msg, 0) })
    })
}

// ---------------------------------------------------------------------------------------------
// Interface ioctls

/// An `ifreq` naming `ifname`, or `InvalidInput` if the name cannot be an interface name.
fn ifreq_for(ifname: &str) -> io::Result<libc::ifreq> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{ifname:?} is not a valid interface name (1 to {} bytes, no NUL)",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    // SAFETY: ifreq is plain old data (a name array and a union of plain old data); all-zero is
    // valid and leaves the name NUL-terminated.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// Runs one `SIOCGIF*` ioctl on any socket of the namespace and returns the filled request.
fn if_ioctl(fd: BorrowedFd<'_>, ifname: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
    let mut req = ifreq_for(ifname)?;
    // SAFETY: the SIOCGIF* requests read the name from and write one union member of an ifreq;
    // `req` is a live, exclusively borrowed ifreq.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request, &raw mut req) })?;
    Ok(req)
}

/// The interface's index (`SIOCGIFINDEX`).
pub(crate) fn if_index(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<u32> {
    let req = if_ioctl(fd, ifname, libc::SIOCGIFINDEX)?;
    // SAFETY: SIOCGIFINDEX filled `ifru_ifindex`; every member is plain old data, so reading
    // it is sound whatever the kernel wrote.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    u32::try_from(index).map_err(|_| io::Error::other("kernel returned a negative ifindex"))
}

/// The interface's flags (`SIOCGIFFLAGS`, `IFF_*`).
pub(crate) fn if_flags(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<c_int> {
    let req = if_ioctl(fd, ifname, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`; plain old data (see `if_index`).
    Ok(c_int::from(unsafe { req.ifr_ifru.ifru_flags }) & 0xffff)
}

/// The interface's hardware type (`ARPHRD_*`) and first six address bytes (`SIOCGIFHWADDR`).
pub(crate) fn if_hwaddr(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<(u16, [u8; 6])> {
    let req = if_ioctl(fd, ifname, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled `ifru_hwaddr`; plain old data (see `if_index`).
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok((sa.sa_family, mac))
}

/// The interface's MTU (`SIOCGIFMTU`).
pub(crate) fn if_mtu(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<u32> {
    let req = if_ioctl(fd, ifname, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU filled `ifru_mtu`; plain old data (see `if_index`).
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other("kernel returned a negative MTU"))
}

/// The index of a named interface of the calling thread's network namespace.
pub(crate) fn if_nametoindex(ifname: &str) -> io::Result<u32> {
    let req = ifreq_for(ifname)?;
    // SAFETY: `ifr_name` is NUL-terminated (ifreq_for keeps the last byte zero) and alive for
    // the call; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(req.ifr_name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// Every (interface name, IP address) pair of the calling thread's network namespace, from
/// `getifaddrs`.
pub(crate) fn if_addrs() -> io::Result<Vec<(String, IpAddr)>> {
    /// Frees the list on every path out.
    struct List(*mut libc::ifaddrs);
    impl Drop for List {
        fn drop(&mut self) {
            // SAFETY: the pointer came from a successful getifaddrs and is freed once, here.
            unsafe { libc::freeifaddrs(self.0) }
        }
    }
    let mut head: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head`, a live local.
    cvt(unsafe { libc::getifaddrs(&raw mut head) })?;
    let list = List(head);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs built, alive until `list` drops.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` is non-null and points at a sockaddr of the family it names,
        // allocated by getifaddrs with room for that family's struct.
        let Some(ip) = (unsafe { sockaddr_ip(ifa.ifa_addr) }) else {
            continue;
        };
        // SAFETY: `ifa_name` is a non-null, NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        out.push((name, ip));
    }
    Ok(out)
}

/// The interface (name, index) that holds `ip`, searched with `getifaddrs` in the calling
/// thread's network namespace. `Ok(None)` if no interface has it.
pub(crate) fn iface_with_addr(ip: IpAddr) -> io::Result<Option<(String, u32)>> {
    match if_addrs()?.into_iter().find(|(_, a)| *a == ip) {
        Some((name, _)) => {
            let index = if_nametoindex(&name)?;
            Ok(Some((name, index)))
        }
        None => Ok(None),
    }
}

/// The IP address of a `sockaddr_in`/`sockaddr_in6`, `None` for other families.
///
/// # Safety
///
/// `sa` must point at a readable sockaddr whose storage is at least as large as the struct
/// of the family it names.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    // SAFETY: the caller guarantees `sa` is readable; sa_family is the first field of every
    // sockaddr.
    let family = c_int::from(unsafe { (*sa).sa_family });
    match family {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which the caller guarantees fits.
            let sin = unsafe { ptr::read_unaligned(sa.cast::<libc::sockaddr_in>()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>()) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// UDP with packet info

/// A sockaddr for `SocketAddr`, with its length.
fn raw_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, socklen_t) {
    // SAFETY: plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: plain old data; all-zero is valid.
            let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
            unsafe { ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            (storage, socklen_of::<libc::sockaddr_in>())
        }
        SocketAddr::V6(a) => {
            // SAFETY: plain old data; all-zero is valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: as above.
            unsafe { ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            (storage, socklen_of::<libc::sockaddr_in6>())
        }
    }
}

/// The socket address in a sockaddr_storage the kernel filled, `None` for other families.
fn socket_addr_of(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the kernel wrote a sockaddr_in; the storage is larger and
            // aligned for it.
            let sin = unsafe { ptr::read((&raw const *storage).cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { ptr::read((&raw const *storage).cast::<libc::sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Room for one `in_pktinfo` or `in6_pktinfo` control message, aligned like `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// What `recv_udp` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UdpRecv {
    /// The datagram's real length (more than the buffer if it was truncated).
    pub(crate) len: usize,
    /// Whether the datagram did not fit the buffer.
    pub(crate) truncated: bool,
    /// Source address and port.
    pub(crate) src: Option<SocketAddr>,
    /// The destination address of the IP header (from `IP_PKTINFO`/`IPV6_PKTINFO`), if the
    /// socket asked for it.
    pub(crate) dst: Option<IpAddr>,
}

/// Reads one datagram with its source and (if enabled) its destination address. `Ok(None)`
/// when nothing is queued.
pub(crate) fn recv_udp(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<UdpRecv>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    // SAFETY: plain old data; all-zero is valid.
    let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut control = CmsgBuf([0; 64]);
    // SAFETY: plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&raw mut name).cast::<c_void>();
    msg.msg_namelen = socklen_of::<libc::sockaddr_storage>();
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast::<c_void>();
    msg.msg_controllen = control.0.len();
    let n = none_if_would_block(retry(|| {
        // SAFETY: `msg` points at `name`, `control` and one iovec describing `buf`, all alive
        // and exclusively borrowed for the call; the kernel writes at most the stated lengths.
        // MSG_TRUNC makes it return the real datagram length.
        cvt_len(unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, libc::MSG_TRUNC) })
    }))?;
    let Some(len) = n else { return Ok(None) };
    let mut dst = None;
    // SAFETY: `msg` was filled by recvmsg; msg_control/msg_controllen describe `control`, which
    // is alive and aligned for cmsghdr. CMSG_NXTHDR stays within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/NXTHDR return either null or a header inside `control`.
        let hdr = unsafe { &*cmsg };
        // SAFETY: CMSG_DATA of a valid header points inside `control`; the reads below are
        // unaligned reads of the plain-old-data struct the (level, type) pair announces, which
        // the kernel wrote in full (it sets cmsg_len accordingly; checked below).
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        let data_len = hdr.cmsg_len.saturating_sub(data as usize - cmsg as usize);
        if hdr.cmsg_level == libc::IPPROTO_IP
            && hdr.cmsg_type == libc::IP_PKTINFO
            && data_len >= size_of::<libc::in_pktinfo>()
        {
            // SAFETY: see above; the length check guarantees the whole struct is present.
            let info = unsafe { ptr::read_unaligned(data.cast::<libc::in_pktinfo>()) };
            dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                info.ipi_addr.s_addr,
            ))));
        } else if hdr.cmsg_level == libc::IPPROTO_IPV6
            && hdr.cmsg_type == libc::IPV6_PKTINFO
            && data_len >= size_of::<libc::in6_pktinfo>()
        {
            // SAFETY: as above.
            let info = unsafe { ptr::read_unaligned(data.cast::<libc::in6_pktinfo>()) };
            dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
        }
        // SAFETY: `msg` and `cmsg` are the valid pair from above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&raw const msg, cmsg) };
    }
    Ok(Some(UdpRecv {
        len,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        src: socket_addr_of(&name),
        dst,
    }))
}

/// Sends one datagram to `dst`. With `src`, the datagram leaves with that source address (an
/// `IP_PKTINFO`/`IPV6_PKTINFO` control message; the IPv6 one also names `ifindex`), as the
/// kernel's bearer does, even from a socket bound to the wildcard address.
pub(crate) fn send_udp(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    dst: SocketAddr,
    src: Option<IpAddr>,
    ifindex: u32,
) -> io::Result<usize> {
    let (name, namelen) = raw_sockaddr(dst);
    let mut iov = libc::iovec {
        // The kernel never writes through a send iovec; the cast only satisfies the C type.
        iov_base: buf.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: buf.len(),
    };
    let mut control = CmsgBuf([0; 64]);
    // SAFETY: plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&raw const name).cast_mut().cast::<c_void>();
    msg.msg_namelen = namelen;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if let Some(src) = src {
        let (level, kind, len) = match src {
            IpAddr::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            IpAddr::V6(_) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
        };
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        msg.msg_control = control.0.as_mut_ptr().cast::<c_void>();
        // SAFETY: CMSG_SPACE is pure arithmetic.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(len32) } as usize;
        // SAFETY: msg_control/msg_controllen describe `control` (64 bytes, more than
        // CMSG_SPACE of either pktinfo), which is alive and aligned for cmsghdr; the header
        // and data pointers below therefore lie inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = level;
            (*cmsg).cmsg_type = kind;
            (*cmsg).cmsg_len = libc::CMSG_LEN(len32) as usize;
            let data = libc::CMSG_DATA(cmsg);
            match src {
                IpAddr::V4(ip) => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(ip).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    ptr::write_unaligned(data.cast::<libc::in_pktinfo>(), info);
                }
                IpAddr::V6(ip) => {
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: ip.octets(),
                        },
                        ipi6_ifindex: ifindex,
                    };
                    ptr::write_unaligned(data.cast::<libc::in6_pktinfo>(), info);
                }
            }
        }
    }
    retry(|| {
        // SAFETY: `msg` points at `name`, one iovec describing `buf` and (maybe) `control`,
        // all alive for the call; the kernel only reads them.
        cvt_len(unsafe { libc::sendmsg(fd.as_raw_fd(), &raw const msg, 0) })
    })
}

// ---------------------------------------------------------------------------------------------
// Readiness

/// Waits up to `timeout` for `fd` to become readable. `Ok(true)` if it is.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    // SAFETY: one live pollfd, exclusively borrowed for the call.
    let n = retry(|| cvt(unsafe { libc::poll(&raw mut pfd, 1, ms) }))?;
    Ok(n > 0 && pfd.revents & (libc::POLLIN | libc::POLLERR) != 0)
}

/// Waits up to `timeout` for any of `fds` to become readable; sets `ready[i]` for each that is.
/// A timeout below 1 ms is rounded up to 1 ms unless it is zero (poll(2) counts milliseconds).
pub(crate) fn poll_many(
    fds: &[BorrowedFd<'_>],
    timeout: Duration,
    ready: &mut Vec<bool>,
) -> io::Result<usize> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = if timeout.is_zero() {
        0
    } else {
        c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX)
    };
    let nfds = libc::nfds_t::try_from(pfds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `pfds` is a live, exclusively borrowed array of `nfds` pollfd structs.
    let n = retry(|| cvt(unsafe { libc::poll(pfds.as_mut_ptr(), nfds, ms) }))?;
    ready.clear();
    ready.extend(
        pfds.iter()
            .map(|p| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0),
    );
    Ok(usize::try_from(n).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Engine: eventfd doorbells, epoll, CPU affinity, thread CPU time

/// A non-blocking, close-on-exec eventfd with a zero counter (a doorbell).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with constant arguments and no pointers.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by eventfd(2): it is open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter, making it readable. A full counter (`EAGAIN`, after 2^64-2
/// rings nobody read) is fine: the descriptor is readable already.
pub(crate) fn eventfd_ring(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: u64 = 1;
    none_if_would_block(retry(|| {
        // SAFETY: the pointer and length describe `one`, a live u64 on our stack; the kernel
        // only reads it.
        cvt_len(unsafe {
            libc::write(
                fd.as_raw_fd(),
                (&raw const one).cast::<c_void>(),
                size_of::<u64>(),
            )
        })
    }))
    .map(drop)
}

/// Reads (and so resets) an eventfd's counter: `Ok(None)` if it was zero.
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) -> io::Result<Option<u64>> {
    let mut value: u64 = 0;
    let n = none_if_would_block(retry(|| {
        // SAFETY: the pointer and length describe `value`, a live, exclusively borrowed u64;
        // the kernel writes exactly 8 bytes into it.
        cvt_len(unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&raw mut value).cast::<c_void>(),
                size_of::<u64>(),
            )
        })
    }))?;
    Ok(n.map(|_| value))
}

/// A close-on-exec epoll instance.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with a constant argument and no pointers.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by epoll_create1(2): it is open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watches `fd` for readability (level-triggered), reporting `token` when it is ready. The
/// descriptor is borrowed: epoll forgets it by itself when its file is closed.
pub(crate) fn epoll_add(
    epoll: BorrowedFd<'_>,
    fd: std::os::fd::RawFd,
    token: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: `ev` is a live epoll_event the kernel only reads; `fd` is a plain number (a
    // closed or foreign one makes the call fail with EBADF, nothing worse).
    cvt(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &raw mut ev) })
        .map(drop)
}

/// Stops watching `fd`.
pub(crate) fn epoll_del(epoll: BorrowedFd<'_>, fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed since Linux 2.6.9).
    cvt(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, ptr::null_mut()) })
        .map(drop)
}

/// Waits up to `timeout` (rounded *up* to whole milliseconds, so a deadline is never missed by
/// waking early; zero does not wait) for events, filling `events`; returns how many. A signal
/// interrupting the wait returns `Ok(0)`, like a timeout.
pub(crate) fn epoll_wait(
    epoll: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    timeout: Duration,
) -> io::Result<usize> {
    let ms = if timeout.is_zero() {
        0
    } else {
        c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX)
    };
    let max = c_int::try_from(events.len()).unwrap_or(c_int::MAX);
    // SAFETY: `events` is a live, exclusively borrowed array of at least `max` epoll_event
    // structs; the kernel writes at most `max` of them.
    let r = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, ms) };
    match cvt(r) {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// As [`epoll_wait`], but with a nanosecond timeout (`epoll_pwait2(2)`, Linux 5.11 and glibc
/// 2.35), so sub-millisecond parks are not rounded up to a whole millisecond. Falls back to
/// [`epoll_wait`] where the call is missing (`ENOSYS`, remembered) or the C library lacks it.
pub(crate) fn epoll_wait_precise(
    epoll: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    timeout: Duration,
) -> io::Result<usize> {
    #[cfg(target_env = "gnu")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static MISSING: AtomicBool = AtomicBool::new(false);
        if !MISSING.load(Ordering::Relaxed) {
            let ts = libc::timespec {
                tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
                // Below 10^9, so it fits a c_long of any width.
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            let max = c_int::try_from(events.len()).unwrap_or(c_int::MAX);
            // SAFETY: `events` is a live, exclusively borrowed array of at least `max`
            // epoll_event structs the kernel writes at most `max` of; `ts` is a live timespec it
            // only reads; a null sigmask leaves the signal mask alone.
            let r = unsafe {
                libc::epoll_pwait2(
                    epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    &raw const ts,
                    ptr::null(),
                )
            };
            match cvt(r) {
                Ok(n) => return Ok(usize::try_from(n).unwrap_or(0)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    MISSING.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
    }
    epoll_wait(epoll, events, timeout)
}

/// Largest CPU number a `cpu_set_t` can name, plus one.
pub(crate) const CPU_SET_CAPACITY: usize = 8 * size_of::<libc::cpu_set_t>();

/// Restricts the calling thread to `cpus` (each below [`CPU_SET_CAPACITY`]).
pub(crate) fn set_thread_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    for &cpu in cpus {
        if cpu >= CPU_SET_CAPACITY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is beyond the {CPU_SET_CAPACITY} CPUs a cpu_set_t holds"),
            ));
        }
        // SAFETY: `cpu` is below the set's capacity (checked above), so the bit is inside it.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the pointer and length describe `set`, a live cpu_set_t the kernel only reads;
    // pid 0 is the calling thread.
    cvt(unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) })
        .map(drop)
}

/// The CPUs the calling thread may run on, ascending.
pub(crate) fn thread_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: as in `set_thread_affinity`.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: the pointer and length describe `set`, a live, exclusively borrowed cpu_set_t
    // the kernel fills; pid 0 is the calling thread.
    cvt(unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) })?;
    Ok((0..CPU_SET_CAPACITY)
        // SAFETY: every index is below the set's capacity, so the bit is inside it.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

unsafe extern "C" {
    // In glibc's libc.so.6 since 2.34 (libpthread before, which std links) and in musl; the
    // libc crate does not declare it for Linux.
    fn pthread_getcpuclockid(thread: libc::pthread_t, clock_id: *mut libc::clockid_t) -> c_int;
}

fn clock_time(clock: libc::clockid_t) -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, exclusively borrowed timespec the kernel fills.
    cvt(unsafe { libc::clock_gettime(clock, &raw mut ts) })?;
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// CPU time another thread of this process has used. `thread` must be a thread that is not
/// joined or detached yet (a std `JoinHandle` guarantees that while it is held).
pub(crate) fn thread_cpu_time(thread: libc::pthread_t) -> io::Result<Duration> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a live, exclusively borrowed clockid_t; `thread` names a joinable
    // thread (the caller's contract), which glibc and musl only look up, never dereference
    // after it ended.
    let r = unsafe { pthread_getcpuclockid(thread, &raw mut clock) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    clock_time(clock)
}
