//! The control socket through which a client attaches to utipcd: a Unix `SOCK_SEQPACKET`
//! socket (message boundaries, so the handshake needs no framing) named
//! [`ATTACH_SOCKET`] in the run directory. It carries the handshake, with the segment and the
//! doorbells passed as `SCM_RIGHTS`, and then stays open for the client's lifetime: the daemon
//! sees the client die as a hang-up on it, at once, whatever the way it died.
//!
//! Both sides' socket calls are here (all of this crate's `unsafe` outside the rings), so the
//! daemon and the client library share one implementation.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the attach socket inside the run directory.
pub const ATTACH_SOCKET: &str = "attach.sock";

/// The default run directory; `UTIPC_RUN_DIR` overrides it for the daemon and clients alike.
pub const DEFAULT_RUN_DIR: &str = "/run/utipc";

/// The run directory: `$UTIPC_RUN_DIR`, else [`DEFAULT_RUN_DIR`].
pub fn run_dir() -> PathBuf {
    std::env::var_os("UTIPC_RUN_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_RUN_DIR), PathBuf::from)
}

/// Credentials of a connected peer (SO_PEERCRED), taken by the kernel at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sockaddr_un(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path {} is longer than {} bytes: use a shorter UTIPC_RUN_DIR",
                path.display(),
                addr.sun_path.len() - 1
            ),
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the descriptor is owned at once.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The daemon's listening attach socket; removes its file on drop.
#[derive(Debug)]
pub struct AttachListener {
    fd: OwnedFd,
    path: PathBuf,
}

impl AttachListener {
    /// Binds `dir/attach.sock` (replacing a stale file), mode 0666 — access is decided by the
    /// daemon's credential policy, not by the file mode, so refused users get a reason.
    ///
    /// # Errors
    ///
    /// The OS error of socket/bind/listen.
    pub fn bind(dir: &Path) -> io::Result<Self> {
        let path = dir.join(ATTACH_SOCKET);
        let fd = seqpacket()?;
        let (addr, len) = sockaddr_un(&path)?;
        let _ = std::fs::remove_file(&path);
        // SAFETY: addr/len describe a valid sockaddr_un.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
        // SAFETY: plain syscall on our descriptor.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) })?;
        set_nonblocking(fd.as_fd())?;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in socket path"))?;
        // SAFETY: c is a valid C string.
        let _ = unsafe { libc::chmod(c.as_ptr(), 0o666) };
        Ok(Self { fd, path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one pending client (non-blocking): its descriptor (non-blocking) and
    /// credentials. `Ok(None)`: nobody waiting.
    ///
    /// # Errors
    ///
    /// The OS error of accept4 (EMFILE and the like).
    pub fn accept(&self) -> io::Result<Option<(OwnedFd, PeerCred)>> {
        loop {
            // SAFETY: plain syscall; a null address is allowed.
            let r = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(None),
                    _ => return Err(e),
                }
            }
            // SAFETY: r is a fresh descriptor from accept4.
            let fd = unsafe { OwnedFd::from_raw_fd(r) };
            let cred = peer_cred(fd.as_fd())?;
            return Ok(Some((fd, cred)));
        }
    }
}

impl AsRawFd for AttachListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for AttachListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// SO_PEERCRED of a connected Unix socket.
///
/// # Errors
///
/// The OS error of getsockopt.
pub fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c and len are valid for writing a ucred.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut c).cast(),
            &raw mut len,
        )
    })?;
    Ok(PeerCred {
        pid: c.pid,
        uid: c.uid,
        gid: c.gid,
    })
}

/// Connects to the attach socket at `path` (blocking).
///
/// # Errors
///
/// The OS error of connect (ENOENT / ECONNREFUSED: no daemon).
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (addr, len) = sockaddr_un(path)?;
    loop {
        // SAFETY: addr/len describe a valid sockaddr_un.
        let r = unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) };
        if r == 0 {
            return Ok(fd);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sets O_NONBLOCK.
///
/// # Errors
///
/// The OS error of fcntl.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a valid descriptor.
    unsafe {
        let fl = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        cvt(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            fl | libc::O_NONBLOCK,
        ))?;
    }
    Ok(())
}

/// Sends one message with descriptors attached (SCM_RIGHTS).
///
/// # Errors
///
/// The OS error of sendmsg.
pub fn send_with_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let fd_bytes = size_of_val(raw.as_slice());
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8).max(1)];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain old data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer is CMSG_SPACE(fd_bytes) long and 8-byte aligned, so the
        // first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message and up to `max_fds` descriptors (taken over, close-on-exec). Returns
/// the byte count (0: the peer closed).
///
/// # Errors
///
/// The OS error of recvmsg (WouldBlock on a non-blocking socket with nothing pending).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let fd_bytes = max_fds * size_of::<RawFd>();
    // SAFETY: pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8).max(1)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into cbuf, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(header) / size_of::<RawFd>();
                for i in 0..count {
                    let mut fd: RawFd = -1;
                    std::ptr::copy_nonoverlapping(
                        data.add(i * size_of::<RawFd>()),
                        (&raw mut fd).cast::<u8>(),
                        size_of::<RawFd>(),
                    );
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors arrived than expected (control data truncated)",
        ));
    }
    Ok((n, fds))
}

/// Wakes the client at the other end of an attach socket: one byte, never blocking (a full
/// socket buffer means wake-ups are pending anyway). The daemon wakes clients this way rather
/// than through an eventfd the client also holds: a client could make a shared eventfd
/// blocking and fill its counter, and so block the daemon's write.
pub fn wake(sock: BorrowedFd<'_>) {
    let b = [1u8];
    // SAFETY: one valid byte; MSG_DONTWAIT never blocks, MSG_NOSIGNAL never raises SIGPIPE.
    let _ = unsafe {
        libc::send(
            sock.as_raw_fd(),
            b.as_ptr().cast(),
            1,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

/// What [`drain_wakes`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The socket is open (wake-ups, if any, were consumed).
    Open,
    /// The other end closed it.
    Closed,
}

/// Consumes pending wake-up messages without blocking and tells whether the peer closed.
///
/// # Errors
///
/// The OS error of recv (other than would-block).
pub fn drain_wakes(sock: BorrowedFd<'_>) -> io::Result<Drained> {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: buf is valid for writing 64 bytes.
        let r = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r > 0 {
            continue;
        }
        if r == 0 {
            return Ok(Drained::Closed);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(Drained::Open),
            _ => return Err(e),
        }
    }
}

/// Waits until `fd` is readable or `timeout` passes (None: forever). Returns whether it is
/// readable (or hung up).
///
/// # Errors
///
/// The OS error of poll.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let ms = timeout.map_or(-1, |t| {
        i32::try_from(t.as_millis().max(u128::from(!t.is_zero()))).unwrap_or(i32::MAX)
    });
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&raw mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_with_descriptors_and_credentials() {
        let dir = std::env::temp_dir().join(format!("utipc-attach-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let l = AttachListener::bind(&dir).expect("bind");
        let c = connect(l.path()).expect("connect");
        let (s, cred) = l.accept().expect("accept").expect("pending");
        assert_eq!(cred.pid, std::process::id() as i32);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(cred.uid, unsafe { libc::geteuid() });
        let (r, w) = io::pipe().expect("pipe");
        send_with_fds(s.as_fd(), b"hello", &[r.as_fd(), w.as_fd()]).expect("send");
        let mut buf = [0u8; 64];
        assert!(wait_readable(c.as_fd(), Some(Duration::from_secs(5))).expect("poll"));
        let (n, fds) = recv_with_fds(c.as_fd(), &mut buf, 4).expect("recv");
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        drop(s);
        let (n, fds) = recv_with_fds(c.as_fd(), &mut buf, 4).expect("eof");
        assert_eq!((n, fds.len()), (0, 0));
        drop(l);
        assert!(!dir.join(ATTACH_SOCKET).exists());
        let _ = std::fs::remove_dir(&dir);
    }
}
