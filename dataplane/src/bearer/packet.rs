//! The Ethernet bearer over an AF_PACKET socket: TIPC frames with ethertype 0x88CA on one
//! interface (spec §4.1), as the kernel's `eth_media.c` sends and accepts them.
//!
//! Why AF_PACKET: it needs only CAP_NET_RAW and works on every Ethernet-like device, so it is
//! the fallback whenever the AF_XDP bearer cannot attach.
//!
//! Why `SOCK_RAW` rather than `SOCK_DGRAM`: the socket sees the real Ethernet header, so the
//! pcap tap records the exact wire bytes (including the destination MAC, which `SOCK_DGRAM`
//! loses), and the framing code is the same as the AF_XDP bearer's, which gets raw frames too.
//! It costs nothing: the 14-byte header is gathered from / scattered to a separate buffer with
//! `sendmsg`/`recvmsg`, so the TIPC bytes are never copied in user space.
//!
//! What it does like the kernel's bearer:
//!
//! * refuses the loopback device, non-Ethernet devices and MTUs below 100;
//! * advertises the interface's MAC and uses the device MTU as bearer MTU;
//! * sends discovery/broadcast to ff:ff:ff:ff:ff:ff, unicast to the peer's MAC;
//! * accepts only frames addressed to this host, broadcast or multicast: promiscuous copies
//!   (`PACKET_OTHERHOST`), our own transmissions (`PACKET_OUTGOING`, also suppressed with
//!   `PACKET_IGNORE_OUTGOING`) and frames with our own source MAC are dropped and counted;
//! * leaves Ethernet padding on short frames alone (the TIPC size field is authoritative).
//!
//! The socket is opened with protocol 0 and only then bound to 0x88CA on the interface, so no
//! frame from another interface is queued in between.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::discovery::MediaAddr;

use super::{Bearer, BearerStats, MAX_DROPS_PER_RECV, RxMeta, too_long};
use crate::ether::{BROADCAST_MAC, ETH_HLEN, ETH_P_TIPC, EthHeader};
use crate::sys;

/// Smallest device MTU the kernel accepts for an Ethernet bearer (a 60-byte header plus a
/// 40-byte one).
pub const MIN_ETH_MTU: u32 = 100;

/// `sll_pkttype` values (linux/if_packet.h).
const PACKET_OTHERHOST: u8 = 3;
const PACKET_OUTGOING: u8 = 4;
/// Socket option (Linux ≥ 4.20): do not show the socket its own transmissions.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A TIPC bearer on one Ethernet interface through AF_PACKET. See the [module docs](self).
#[derive(Debug)]
pub struct PacketBearer {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    mac: [u8; 6],
    mtu: u32,
    stats: BearerStats,
}

impl PacketBearer {
    /// Opens the bearer on interface `iface` of the calling thread's network namespace.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` without CAP_NET_RAW; `NotFound` for an unknown interface;
    /// `InvalidInput` for a bad name, the loopback device, a non-Ethernet device or an MTU
    /// below [`MIN_ETH_MTU`]; otherwise the OS error. Every message says what to change.
    pub fn open(iface: &str) -> io::Result<Self> {
        let fd = sys::packet_socket().map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => io::Error::new(
                e.kind(),
                "AF_PACKET needs CAP_NET_RAW: run as root or `setcap cap_net_raw+ep` the \
                 binary, or use the UDP bearer",
            ),
            _ if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => io::Error::new(
                e.kind(),
                "this kernel has no AF_PACKET sockets (CONFIG_PACKET); use the UDP bearer",
            ),
            _ => context(e, "cannot create an AF_PACKET socket"),
        })?;
        let sock = fd.as_fd();
        let ifindex = sys::if_index(sock, iface).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENODEV) {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no interface named {iface:?} in this network namespace (see `ip link`)"
                    ),
                )
            } else {
                context(e, &format!("cannot look up interface {iface:?}"))
            }
        })?;
        let loopback = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{iface} is a loopback device, which TIPC does not run on (the kernel refuses \
                     it too); use an Ethernet or veth interface, or the UDP bearer"
                ),
            )
        };
        let flags = sys::if_flags(sock, iface)
            .map_err(|e| context(e, &format!("cannot read the flags of {iface}")))?;
        if flags & libc::IFF_LOOPBACK != 0 {
            return Err(loopback());
        }
        let (hw_type, mac) = sys::if_hwaddr(sock, iface)
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
        let mtu = sys::if_mtu(sock, iface)
            .map_err(|e| context(e, &format!("cannot read the MTU of {iface}")))?;
        if mtu < MIN_ETH_MTU {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{iface} has MTU {mtu}, below TIPC's minimum of {MIN_ETH_MTU}; raise it (`ip \
                     link set {iface} mtu 1500`)"
                ),
            ));
        }
        // Older kernels lack the option; the pkttype check below drops those frames anyway.
        let _ = sys::setsockopt_int(sock, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        sys::packet_bind(sock, ifindex, ETH_P_TIPC)
            .map_err(|e| context(e, &format!("cannot bind the AF_PACKET socket to {iface}")))?;
        Ok(Self {
            fd,
            ifname: iface.to_owned(),
            ifindex,
            mac,
            mtu,
            stats: BearerStats::default(),
        })
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's MAC address (what [`Bearer::local_addr`] advertises).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

impl Bearer for PacketBearer {
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
        self.fd.as_fd()
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
        let header = EthHeader {
            dst,
            src: self.mac,
            ethertype: ETH_P_TIPC,
        }
        .to_bytes();
        match sys::send_gather(self.fd.as_fd(), &[&header, frame]) {
            Ok(_) => {
                self.stats.sent(frame.len());
                Ok(())
            }
            Err(e) => {
                // ENOBUFS is the packet socket's "queue full".
                let e = if e.raw_os_error() == Some(libc::ENOBUFS) {
                    io::Error::new(io::ErrorKind::WouldBlock, e)
                } else {
                    e
                };
                Err(self.stats.send_failed(e))
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        let mut head = [0u8; ETH_HLEN];
        for _ in 0..=MAX_DROPS_PER_RECV {
            let got = match sys::recv_packet(self.fd.as_fd(), &mut head, buf) {
                Ok(Some(got)) => got,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.stats.recv_failed(e)),
            };
            let drops = &mut self.stats.counters.rx_dropped;
            match got.pkttype {
                PACKET_OTHERHOST => {
                    drops.other_host += 1;
                    continue;
                }
                PACKET_OUTGOING => {
                    drops.outgoing += 1;
                    continue;
                }
                _ => {}
            }
            let Some(len) = got.frame_len.checked_sub(ETH_HLEN) else {
                drops.malformed += 1;
                continue;
            };
            if len > buf.len() {
                drops.truncated += 1;
                continue;
            }
            let Some(eth) = EthHeader::parse(&head) else {
                drops.malformed += 1;
                continue;
            };
            if eth.ethertype != ETH_P_TIPC {
                drops.malformed += 1;
                continue;
            }
            if eth.src == self.mac {
                drops.own_source += 1;
                continue;
            }
            self.stats.received(len);
            let meta = RxMeta {
                src: MediaAddr::Eth(eth.src),
                dst: MediaAddr::Eth(eth.dst),
            };
            return Ok(Some((len, meta)));
        }
        Ok(None)
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
}

/// The same error kind with `what` in front of the OS message.
fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_interface_names_are_refused_before_any_syscall_matters() {
        for name in ["", "a-name-that-is-too-long", "nul\0name"] {
            let Err(e) = PacketBearer::open(name) else {
                panic!("{name:?} must be refused");
            };
            // Without CAP_NET_RAW the socket call fails first; both are clear errors.
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied
                ),
                "{name:?}: {e}"
            );
        }
    }
}
