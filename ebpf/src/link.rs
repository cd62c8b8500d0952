//! Attaching through a BPF link (`BPF_LINK_CREATE`), called directly rather than through aya.
//!
//! aya's `Xdp::attach` silently falls back to the netlink attach when `BPF_LINK_CREATE` answers
//! `EINVAL`, and a netlink-attached program stays on the interface when the process dies. A
//! link is released with its last file descriptor, so the kernel detaches the program when the
//! process exits or crashes, and this crate never attaches any other way.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

/// `BPF_LINK_CREATE` (uapi `enum bpf_cmd`).
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_XDP` (uapi `enum bpf_attach_type`).
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE` (uapi `if_link.h`): generic XDP.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native (driver) XDP.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The `link_create` member of uapi `union bpf_attr`, followed by zeros (the kernel requires
/// every byte it knows of beyond the fields used to be zero).
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    rest: [u64; 12],
}

/// Attaches the XDP program `prog` to interface `ifindex` with `flags` (one of the
/// `XDP_FLAGS_*_MODE`), returning the link; closing it detaches the program.
pub(crate) fn xdp_link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let attr = LinkCreateAttr {
        prog_fd: u32::try_from(prog.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
        rest: [0; 12],
    };
    // SAFETY: bpf(2) reads `size_of::<LinkCreateAttr>()` bytes from the valid, initialised
    // `attr`, and writes nothing into it for BPF_LINK_CREATE.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &raw const attr,
            size_of::<LinkCreateAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a successful BPF_LINK_CREATE returns a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A one-line explanation of a failed attach in `mode` ("native" or "generic").
pub(crate) fn attach_failure(mode: &str, e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) => "the driver has no native XDP support",
        Some(libc::ERANGE) => "the MTU is too large for single-buffer XDP",
        Some(libc::EBUSY | libc::EEXIST) => {
            "another XDP program is already attached to the interface (one owner per interface)"
        }
        Some(libc::EINVAL) => "the driver rejected the program in this mode",
        Some(libc::ENODEV) => "the interface disappeared",
        Some(libc::EPERM | libc::EACCES) => "permission denied",
        _ => "",
    };
    if hint.is_empty() {
        format!("{mode} XDP failed: {e}")
    } else {
        format!("{mode} XDP failed: {hint} ({e})")
    }
}

/// Whether trying the other mode cannot help after this error.
pub(crate) fn is_final(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY | libc::EEXIST | libc::EPERM | libc::EACCES | libc::ENODEV)
    )
}
