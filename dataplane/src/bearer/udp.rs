//! The UDP bearer: TIPC over UDP/IPv4 or UDP/IPv6, port 6118 (spec §4.1), wire-compatible with
//! the kernel's `udp_media.c`.
//!
//! Why it looks the way it does — each point mirrors what the kernel's bearer does, so a kernel
//! peer sees the same packets:
//!
//! * **Two modes.** With no configured remote (or one multicast remote) the bearer is in
//!   *multicast* mode: it binds the wildcard address (so it gets both the group's traffic and
//!   unicast to its own address), joins the group on the local address's interface and sends
//!   broadcasts to the group. The default group comes from the network id, as iproute2 picks
//!   it ([`default_multicast_group`]). With unicast remotes it is in *replicast* mode: it binds
//!   the local address and sends a broadcast as one copy per remote.
//! * **The local address must exist** on an interface of this network namespace (the kernel
//!   refuses it otherwise); that interface is the one multicast is joined and sent on.
//! * **Source address.** A multicast-mode socket is bound to the wildcard, so each datagram
//!   carries `IP_PKTINFO`/`IPV6_PKTINFO` naming the local address as its source, as the
//!   kernel's bearer sets it explicitly.
//! * **No IPv4 UDP checksum** (`SO_NO_CHECK`), as the kernel sends; IPv6 keeps it (mandatory).
//! * **Own datagrams are dropped** on receive (multicast loopback is off anyway).
//! * **MTU** is a bearer property, independent of the device: 14,000 bytes over IPv4 (IP
//!   fragments), 1,280 over IPv6.
//!
//! Two deliberate differences: multicast TTL / hop limit is 1 (discovery stays on the link;
//! the kernel uses the route's default), and the IPv6 socket is `IPV6_V6ONLY` so an IPv4 and
//! an IPv6 bearer can share port 6118 in one namespace.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::discovery::MediaAddr;

use super::{Bearer, BearerStats, MAX_DROPS_PER_RECV, RxMeta, too_long};
use crate::sys;

/// The IANA port of TIPC over UDP, used on both ends by default.
pub const TIPC_UDP_PORT: u16 = 6118;
/// Default bearer MTU over IPv4 (TIPC_DEF_LINK_UDP_MTU).
pub const DEFAULT_MTU_V4: u32 = 14_000;
/// Default bearer MTU over IPv6.
pub const DEFAULT_MTU_V6: u32 = 1280;
/// Largest UDP payload over IPv4.
const MAX_MTU_V4: u32 = 65_535 - 20 - 8;
/// Largest UDP payload over IPv6 (no jumbograms).
const MAX_MTU_V6: u32 = 65_535 - 8;
/// TTL / hop limit of multicast datagrams: the link only.
const MULTICAST_HOPS: u32 = 1;

/// How to open a [`UdpBearer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpBearerConfig {
    /// The local address: an address of one of this namespace's interfaces. Its family picks
    /// IPv4 or IPv6. It is what the bearer advertises (with `port`).
    pub local: IpAddr,
    /// Local UDP port, and the port of the multicast group ([`TIPC_UDP_PORT`] by default).
    pub port: u16,
    /// The interface `local` is on. `None` finds it from `local`; `Some` must match it and
    /// also binds the socket to that device (`SO_BINDTODEVICE`), so that a wildcard-bound
    /// multicast socket hears that interface only.
    pub iface: Option<String>,
    /// Empty: multicast mode with the group derived from `net_id`. One multicast address:
    /// multicast mode with that group. Unicast addresses: replicast mode with these peers.
    pub remotes: Vec<SocketAddr>,
    /// The TIPC network (cluster) id, which picks the default multicast group.
    pub net_id: u32,
    /// Bearer MTU; `None` for [`DEFAULT_MTU_V4`] / [`DEFAULT_MTU_V6`].
    pub mtu: Option<u32>,
}

impl UdpBearerConfig {
    /// Multicast mode on port 6118 with the default group of `net_id` and the default MTU.
    pub fn new(local: IpAddr, net_id: u32) -> Self {
        Self {
            local,
            port: TIPC_UDP_PORT,
            iface: None,
            remotes: Vec::new(),
            net_id,
            mtu: None,
        }
    }
}

/// How a UDP bearer reaches all peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpMode {
    /// One datagram to a multicast group that every peer joined.
    Multicast {
        /// The group and port.
        group: SocketAddr,
    },
    /// One datagram per configured peer.
    Replicast {
        /// The peers, in the order copies are sent.
        remotes: Vec<SocketAddr>,
    },
}

/// The IP addresses of interface `iface` in this network namespace, IPv4 first, so that
/// `udp:IFACE` can pick the address to bind and advertise.
pub fn iface_addresses(iface: &str) -> io::Result<Vec<IpAddr>> {
    let mut v: Vec<IpAddr> = sys::if_addrs()?
        .into_iter()
        .filter(|(name, _)| name == iface)
        .map(|(_, ip)| ip)
        .collect();
    v.sort_by_key(|ip| (ip.is_ipv6(), ip.is_loopback()));
    Ok(v)
}

/// The multicast group iproute2's `tipc bearer enable media udp` picks when no remote is given:
/// `228.0.<id >> 8>.<id & 0xff>` for IPv4 (4711 → 228.0.18.103) and, for IPv6, `ff02::`
/// followed by the id's *decimal* digits read as hex (4711 → ff02::4711).
///
/// # Errors
///
/// `InvalidInput` when the id has no such group: above 65,535 for IPv4, above 9,999 for IPv6
/// (iproute2 would print an address that does not parse). Valid TIPC network ids are 1–9,999.
pub fn default_multicast_group(net_id: u32, ipv6: bool) -> io::Result<IpAddr> {
    let no_group = |family: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "network id {net_id} has no default {family} multicast group (TIPC network ids \
                 are 1 to 9999); configure a remote address for the bearer"
            ),
        )
    };
    if ipv6 {
        let digits = net_id.to_string();
        if digits.len() > 4 {
            return Err(no_group("IPv6"));
        }
        let group = u16::from_str_radix(&digits, 16).map_err(|_| no_group("IPv6"))?;
        Ok(IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, group)))
    } else {
        let hi = u8::try_from(net_id >> 8).map_err(|_| no_group("IPv4"))?;
        Ok(IpAddr::V4(Ipv4Addr::new(228, 0, hi, (net_id & 0xff) as u8)))
    }
}

/// A TIPC bearer over UDP. See the [module docs](self).
#[derive(Debug)]
pub struct UdpBearer {
    socket: Socket,
    local: SocketAddr,
    iface: String,
    ifindex: u32,
    mode: UdpMode,
    mtu: u32,
    stats: BearerStats,
}

impl UdpBearer {
    /// Opens the bearer: checks the configuration, creates and binds the socket and, in
    /// multicast mode, joins the group.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a configuration that cannot work (family mismatch, bad MTU, port 0,
    /// interface mismatch), `NotFound` when `local` is not an address of this namespace,
    /// `AddrInUse` when another socket of this namespace already has the port, and otherwise
    /// the OS error; every message says what to change.
    pub fn open(cfg: UdpBearerConfig) -> io::Result<Self> {
        let ip = cfg.local;
        let v6 = ip.is_ipv6();
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(invalid(format!(
                "the UDP bearer's local address must be a unicast address of one of this host's \
                 interfaces, not {ip}"
            )));
        }
        if cfg.port == 0 {
            return Err(invalid(format!(
                "UDP port 0 cannot be a TIPC bearer port (peers must know it); use {TIPC_UDP_PORT}"
            )));
        }
        let (iface, ifindex) = sys::iface_with_addr(ip)
            .map_err(|e| context(e, "cannot list the interface addresses (getifaddrs)"))?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "local address {ip} is not configured on any interface of this network \
                         namespace; add it (`ip addr add {ip}/<prefix> dev <iface>`) or give the \
                         bearer an address that is"
                    ),
                )
            })?;
        if let Some(want) = &cfg.iface
            && *want != iface
        {
            return Err(invalid(format!(
                "local address {ip} is on interface {iface}, not on {want}"
            )));
        }
        let mode = mode_of(&cfg)?;
        let (default_mtu, max_mtu, media) = if v6 {
            (DEFAULT_MTU_V6, MAX_MTU_V6, MediaKind::Udp6)
        } else {
            (DEFAULT_MTU_V4, MAX_MTU_V4, MediaKind::Udp4)
        };
        let mtu = cfg.mtu.unwrap_or(default_mtu);
        if mtu < media.min_mtu() || mtu > max_mtu {
            return Err(invalid(format!(
                "UDP bearer MTU {mtu} is out of range: it must be {} to {max_mtu} bytes",
                media.min_mtu()
            )));
        }

        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| context(e, "cannot create a UDP socket"))?;
        socket.set_nonblocking(true)?;
        let fd = socket.as_fd();
        if v6 {
            socket.set_only_v6(true)?;
            sys::setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        } else {
            // The kernel's bearer sends IPv4 datagrams without a UDP checksum.
            sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1)?;
            sys::setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        }
        if let Some(name) = &cfg.iface {
            socket.bind_device(Some(name.as_bytes())).map_err(|e| {
                let hint = if e.kind() == io::ErrorKind::PermissionDenied {
                    "; binding to a device needs CAP_NET_RAW: run as root, `setcap \
                     cap_net_raw+ep` the binary, or leave the interface out of the configuration"
                } else {
                    ""
                };
                context(
                    e,
                    &format!("cannot bind the UDP socket to device {name}{hint}"),
                )
            })?;
        }
        let bind_ip = match mode {
            UdpMode::Multicast { .. } if v6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            UdpMode::Multicast { .. } => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            UdpMode::Replicast { .. } => ip,
        };
        let bind_addr = scoped(SocketAddr::new(bind_ip, cfg.port), ifindex);
        socket.bind(&bind_addr.into()).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                io::Error::new(
                    e.kind(),
                    format!(
                        "UDP port {} is already in use on {bind_ip} in this network namespace \
                         (another UDP bearer, or the kernel's own TIPC UDP bearer: see `tipc \
                         bearer list` and `ss -uanp 'sport = :{}'`); disable it or use another \
                         port or namespace",
                        cfg.port, cfg.port
                    ),
                )
            } else {
                context(e, &format!("cannot bind the UDP socket to {bind_addr}"))
            }
        })?;
        if let UdpMode::Multicast { group } = mode {
            join_group(&socket, group.ip(), ip, ifindex).map_err(|e| {
                context(
                    e,
                    &format!("cannot join multicast group {} on {iface}", group.ip()),
                )
            })?;
        }
        Ok(Self {
            socket,
            local: SocketAddr::new(ip, cfg.port),
            iface,
            ifindex,
            mode,
            mtu,
            stats: BearerStats::default(),
        })
    }

    /// How the bearer reaches all peers.
    pub fn mode(&self) -> &UdpMode {
        &self.mode
    }

    /// The local address and port (what [`Bearer::local_addr`] advertises).
    pub fn local_socket_addr(&self) -> SocketAddr {
        self.local
    }

    /// The interface the local address is on.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// That interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Adds a replicast peer (`tipc bearer add ... remoteip`); `Ok(false)` if it was already
    /// there.
    ///
    /// # Errors
    ///
    /// `InvalidInput` in multicast mode (the kernel refuses it too) or for an address the
    /// bearer cannot send to.
    pub fn add_remote(&mut self, remote: SocketAddr) -> io::Result<bool> {
        let remote = check_remote(remote, self.local.is_ipv6())?;
        match &mut self.mode {
            UdpMode::Multicast { group } => Err(invalid(format!(
                "cannot add replicast peer {remote} to a multicast-mode UDP bearer (group {group}); \
                 open the bearer with unicast remotes instead"
            ))),
            UdpMode::Replicast { remotes } if remotes.contains(&remote) => Ok(false),
            UdpMode::Replicast { remotes } => {
                remotes.push(remote);
                Ok(true)
            }
        }
    }

    /// Removes a replicast peer; `false` if it was not there.
    pub fn remove_remote(&mut self, remote: &SocketAddr) -> bool {
        let remote = unscoped(*remote);
        match &mut self.mode {
            UdpMode::Replicast { remotes } => {
                let before = remotes.len();
                remotes.retain(|r| *r != remote);
                remotes.len() != before
            }
            UdpMode::Multicast { .. } => false,
        }
    }

    /// Sends one datagram and counts the outcome.
    fn send_to(&mut self, dst: SocketAddr, frame: &[u8]) -> io::Result<()> {
        // A multicast-mode socket is bound to the wildcard: name the source explicitly.
        let src = match self.mode {
            UdpMode::Multicast { .. } => Some(self.local.ip()),
            UdpMode::Replicast { .. } => None,
        };
        let dst = scoped(dst, self.ifindex);
        match sys::send_udp(self.socket.as_fd(), frame, dst, src, self.ifindex) {
            Ok(_) => {
                self.stats.sent(frame.len());
                Ok(())
            }
            Err(e) => Err(self.stats.send_failed(e)),
        }
    }
}

impl Bearer for UdpBearer {
    fn media(&self) -> MediaKind {
        if self.local.is_ipv6() {
            MediaKind::Udp6
        } else {
            MediaKind::Udp4
        }
    }

    fn local_addr(&self) -> MediaAddr {
        MediaAddr::Udp(self.local)
    }

    fn mtu(&self) -> u32 {
        self.mtu
    }

    fn supports_broadcast(&self) -> bool {
        matches!(self.mode, UdpMode::Multicast { .. })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
        if frame.len() > self.mtu as usize {
            return Err(self.stats.send_failed(too_long(frame.len(), self.mtu)));
        }
        match dest {
            Dest::Broadcast => match &self.mode {
                UdpMode::Multicast { group } => {
                    let group = *group;
                    self.send_to(group, frame)
                }
                UdpMode::Replicast { remotes } => {
                    let mut first_err = None;
                    for remote in remotes.clone() {
                        if let Err(e) = self.send_to(remote, frame) {
                            first_err.get_or_insert(e);
                        }
                    }
                    first_err.map_or(Ok(()), Err)
                }
            },
            Dest::Unicast(MediaAddr::Udp(peer)) => {
                match check_remote(*peer, self.local.is_ipv6()) {
                    Ok(peer) => self.send_to(peer, frame),
                    Err(e) => Err(self.stats.send_failed(e)),
                }
            }
            Dest::Unicast(other) => Err(self.stats.send_failed(invalid(format!(
                "a UDP bearer cannot send to the non-UDP address {other:?}"
            )))),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        for _ in 0..=MAX_DROPS_PER_RECV {
            let got = match sys::recv_udp(self.socket.as_fd(), buf) {
                Ok(Some(got)) => got,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.stats.recv_failed(e)),
            };
            let drops = &mut self.stats.counters.rx_dropped;
            if got.truncated {
                drops.truncated += 1;
                continue;
            }
            let Some(src) = got.src.map(unscoped) else {
                drops.malformed += 1;
                continue;
            };
            if src == self.local {
                drops.own_source += 1;
                continue;
            }
            let dst = SocketAddr::new(got.dst.unwrap_or(self.local.ip()), self.local.port());
            self.stats.received(got.len);
            let meta = RxMeta {
                src: MediaAddr::Udp(src),
                dst: MediaAddr::Udp(dst),
            };
            return Ok(Some((got.len, meta)));
        }
        Ok(None)
    }

    fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr)) {
        match (dest, &self.mode) {
            (Dest::Broadcast, UdpMode::Multicast { group }) => f(MediaAddr::Udp(*group)),
            (Dest::Broadcast, UdpMode::Replicast { remotes }) => {
                remotes.iter().for_each(|r| f(MediaAddr::Udp(*r)));
            }
            (Dest::Unicast(MediaAddr::Udp(peer)), _) => {
                if let Ok(peer) = check_remote(*peer, self.local.is_ipv6()) {
                    f(MediaAddr::Udp(peer));
                }
            }
            (Dest::Unicast(_), _) => {}
        }
    }

    fn stats(&self) -> &BearerStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut BearerStats {
        &mut self.stats
    }
}

/// The bearer's mode from its configured remotes.
fn mode_of(cfg: &UdpBearerConfig) -> io::Result<UdpMode> {
    let v6 = cfg.local.is_ipv6();
    match cfg.remotes.as_slice() {
        [] => {
            let group = default_multicast_group(cfg.net_id, v6)?;
            Ok(UdpMode::Multicast {
                group: SocketAddr::new(group, cfg.port),
            })
        }
        [one] if one.ip().is_multicast() => Ok(UdpMode::Multicast {
            group: check_remote(*one, v6)?,
        }),
        many => {
            let mut remotes = Vec::with_capacity(many.len());
            for remote in many {
                if remote.ip().is_multicast() {
                    return Err(invalid(format!(
                        "multicast remote {remote} must be the bearer's only remote (a bearer \
                         is either multicast or replicast)"
                    )));
                }
                let remote = check_remote(*remote, v6)?;
                if !remotes.contains(&remote) {
                    remotes.push(remote);
                }
            }
            Ok(UdpMode::Replicast { remotes })
        }
    }
}

/// A peer address the bearer can send to, without scope id and flow info.
fn check_remote(remote: SocketAddr, v6: bool) -> io::Result<SocketAddr> {
    if remote.is_ipv6() != v6 {
        let (ours, theirs) = if v6 {
            ("IPv6", "IPv4")
        } else {
            ("IPv4", "IPv6")
        };
        return Err(invalid(format!(
            "a UDP/{ours} bearer cannot reach the {theirs} address {remote}"
        )));
    }
    if remote.ip().is_unspecified() || remote.port() == 0 {
        return Err(invalid(format!(
            "{remote} is not a peer address (unspecified address or port 0)"
        )));
    }
    Ok(unscoped(remote))
}

/// The address as TIPC advertises it: IPv6 without scope id and flow info.
fn unscoped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port())
}

/// The address with the interface as scope, where IPv6 needs one (link-local unicast, and
/// interface- or link-local multicast such as ff02::).
fn scoped(addr: SocketAddr, ifindex: u32) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => {
            let ip = *a.ip();
            let link_scoped = ip.is_unicast_link_local()
                || (ip.is_multicast() && matches!(ip.octets()[1] & 0x0f, 1 | 2));
            let scope = if link_scoped { ifindex } else { 0 };
            SocketAddr::V6(SocketAddrV6::new(ip, a.port(), 0, scope))
        }
        v4 => v4,
    }
}

/// Joins `group` on the local interface and sets the multicast send options: out of that
/// interface, no loopback, TTL / hop limit 1.
fn join_group(socket: &Socket, group: IpAddr, local: IpAddr, ifindex: u32) -> io::Result<()> {
    match (group, local) {
        (IpAddr::V4(group), IpAddr::V4(local)) => {
            socket.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))?;
            socket.set_multicast_if_v4(&local)?;
            socket.set_multicast_loop_v4(false)?;
            socket.set_multicast_ttl_v4(MULTICAST_HOPS)
        }
        (IpAddr::V6(group), IpAddr::V6(_)) => {
            socket.join_multicast_v6(&group, ifindex)?;
            socket.set_multicast_if_v6(ifindex)?;
            socket.set_multicast_loop_v6(false)?;
            socket.set_multicast_hops_v6(MULTICAST_HOPS)
        }
        _ => Err(invalid(format!(
            "multicast group {group} and local address {local} are of different IP families"
        ))),
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The same error kind with `what` in front of the OS message.
fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn default_groups_follow_iproute2() {
        let v4 = default_multicast_group(4711, false).expect("v4 group");
        assert_eq!(v4, "228.0.18.103".parse::<IpAddr>().expect("ip"));
        let v6 = default_multicast_group(4711, true).expect("v6 group");
        assert_eq!(v6, "ff02::4711".parse::<IpAddr>().expect("ip"));
        assert_eq!(
            default_multicast_group(1, true).expect("v6 group"),
            "ff02::1".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            default_multicast_group(9999, false).expect("v4 group"),
            "228.0.39.15".parse::<IpAddr>().expect("ip")
        );
        let e = default_multicast_group(10_000, true).expect_err("5 digits do not fit");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("configure a remote"), "{e}");
        assert!(default_multicast_group(65_536, false).is_err());
    }

    #[test]
    fn mode_from_remotes() {
        let mut cfg = UdpBearerConfig::new("198.18.0.1".parse().expect("ip"), 4711);
        assert_eq!(
            mode_of(&cfg).expect("mode"),
            UdpMode::Multicast {
                group: sa("228.0.18.103:6118")
            }
        );
        cfg.remotes = vec![sa("239.1.2.3:7000")];
        assert_eq!(
            mode_of(&cfg).expect("mode"),
            UdpMode::Multicast {
                group: sa("239.1.2.3:7000")
            }
        );
        cfg.remotes = vec![
            sa("198.18.0.2:6118"),
            sa("198.18.0.3:6118"),
            sa("198.18.0.2:6118"),
        ];
        assert_eq!(
            mode_of(&cfg).expect("mode"),
            UdpMode::Replicast {
                remotes: vec![sa("198.18.0.2:6118"), sa("198.18.0.3:6118")]
            }
        );
        cfg.remotes = vec![sa("198.18.0.2:6118"), sa("239.1.2.3:6118")];
        assert!(mode_of(&cfg).is_err(), "mixed multicast and unicast");
        cfg.remotes = vec![sa("[fd00::2]:6118")];
        let e = mode_of(&cfg).expect_err("family mismatch");
        assert!(
            e.to_string().contains("cannot reach the IPv6 address"),
            "{e}"
        );
        cfg.remotes = vec![sa("198.18.0.2:0")];
        assert!(mode_of(&cfg).is_err(), "port 0");
    }

    #[test]
    fn scope_only_where_ipv6_needs_it() {
        assert_eq!(scoped(sa("[fe80::1]:6118"), 7), sa("[fe80::1%7]:6118"));
        assert_eq!(
            scoped(sa("[ff02::4711]:6118"), 7),
            sa("[ff02::4711%7]:6118")
        );
        assert_eq!(scoped(sa("[fd00::1]:6118"), 7), sa("[fd00::1]:6118"));
        assert_eq!(scoped(sa("[ff05::1]:6118"), 7), sa("[ff05::1]:6118"));
        assert_eq!(scoped(sa("198.18.0.1:6118"), 7), sa("198.18.0.1:6118"));
        assert_eq!(unscoped(sa("[fe80::1%7]:6118")), sa("[fe80::1]:6118"));
    }

    #[test]
    fn open_refuses_bad_configurations() {
        let mut cfg = UdpBearerConfig::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4711);
        let e = UdpBearer::open(cfg.clone()).expect_err("unspecified local");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        cfg.local = "127.0.0.1".parse().expect("ip");
        cfg.port = 0;
        let e = UdpBearer::open(cfg.clone()).expect_err("port 0");
        assert!(e.to_string().contains("use 6118"), "{e}");
        cfg.port = TIPC_UDP_PORT;
        // 192.0.2.0/24 is TEST-NET-1: never configured on a host.
        cfg.local = "192.0.2.77".parse().expect("ip");
        let e = UdpBearer::open(cfg.clone()).expect_err("address not on this host");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("ip addr add 192.0.2.77"), "{e}");
        cfg.local = "127.0.0.1".parse().expect("ip");
        cfg.mtu = Some(100);
        let e = UdpBearer::open(cfg.clone()).expect_err("MTU below 128");
        assert!(e.to_string().contains("128 to 65507"), "{e}");
        cfg.mtu = None;
        cfg.iface = Some("nosuchif0".into());
        let e = UdpBearer::open(cfg).expect_err("interface mismatch");
        assert!(
            e.to_string()
                .contains("is on interface lo, not on nosuchif0"),
            "{e}"
        );
    }
}
