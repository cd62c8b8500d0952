//! The TIPC address and option vocabulary of the client API (the `sockaddr_tipc` address kinds,
//! scopes, importance, socket kinds and the error codes of returned messages), kept free of the
//! protocol crate so that applications link only this small library.

use core::fmt;

/// The four TIPC socket kinds (spec §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// Connectionless, reliable datagrams; undeliverable messages are dropped unless the
    /// socket asks for them back ([`Socket::set_dest_droppable`](crate::Socket::set_dest_droppable)).
    Rdm,
    /// Connectionless datagrams (source- and destination-droppable).
    Dgram,
    /// Connection of messages (boundaries kept, at most 66,000 bytes each).
    Seqpacket,
    /// Connection of bytes.
    Stream,
}

impl SocketKind {
    /// Whether the kind uses connections.
    pub const fn is_connection(self) -> bool {
        matches!(self, Self::Seqpacket | Self::Stream)
    }

    pub(crate) const fn code(self) -> u32 {
        match self {
            Self::Rdm => 1,
            Self::Dgram => 2,
            Self::Seqpacket => 3,
            Self::Stream => 4,
        }
    }

    pub(crate) const fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            1 => Self::Rdm,
            2 => Self::Dgram,
            3 => Self::Seqpacket,
            4 => Self::Stream,
            _ => return None,
        })
    }
}

/// Where a binding is visible (spec §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Published to every node of the cluster.
    #[default]
    Cluster,
    /// Visible on this node only.
    Node,
}

impl Scope {
    pub(crate) const fn code(self) -> u32 {
        match self {
            Self::Cluster => 2,
            Self::Node => 3,
        }
    }

    pub(crate) const fn from_code(c: u32) -> Option<Self> {
        match c {
            2 => Some(Self::Cluster),
            3 => Some(Self::Node),
            _ => None,
        }
    }
}

/// Message importance 0–3: selects the link backlog class and the receiver's queue limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Importance {
    /// TIPC_LOW_IMPORTANCE (the default).
    #[default]
    Low,
    /// TIPC_MEDIUM_IMPORTANCE.
    Medium,
    /// TIPC_HIGH_IMPORTANCE.
    High,
    /// TIPC_CRITICAL_IMPORTANCE.
    Critical,
}

impl Importance {
    pub(crate) const fn code(self) -> u32 {
        self as u32
    }

    pub(crate) const fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => Self::Low,
            1 => Self::Medium,
            2 => Self::High,
            3 => Self::Critical,
            _ => return None,
        })
    }
}

/// A socket's identity in the cluster: `{port, node}` (TIPC_SOCKET_ADDR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketAddr {
    /// Port number (random, never 0).
    pub port: u32,
    /// Node address (0 on a send: this node).
    pub node: u32,
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{:08x}:{}>", self.node, self.port)
    }
}

/// A service address `{type, instance}` (TIPC_SERVICE_ADDR); the lookup domain (0 = any node,
/// else the node address to look up on) selects where anycast looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceAddr {
    /// Service type (below 64 reserved for TIPC itself).
    pub service_type: u32,
    /// Instance.
    pub instance: u32,
    /// Lookup domain: 0 (any node, nearest first) or a node address.
    pub domain: u32,
}

impl ServiceAddr {
    /// `{service_type, instance}` looked up anywhere.
    pub const fn new(service_type: u32, instance: u32) -> Self {
        Self {
            service_type,
            instance,
            domain: 0,
        }
    }
}

impl fmt::Display for ServiceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{},{}}}", self.service_type, self.instance)
    }
}

/// A service range `{type, lower, upper}` (TIPC_SERVICE_RANGE): what sockets bind, and the
/// destination of a multicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceRange {
    /// Service type.
    pub service_type: u32,
    /// Lower bound.
    pub lower: u32,
    /// Upper bound (≥ `lower`).
    pub upper: u32,
}

impl ServiceRange {
    /// `{service_type, lower, upper}`.
    pub const fn new(service_type: u32, lower: u32, upper: u32) -> Self {
        Self {
            service_type,
            lower,
            upper,
        }
    }

    /// The one-instance range `{service_type, instance, instance}`.
    pub const fn single(service_type: u32, instance: u32) -> Self {
        Self::new(service_type, instance, instance)
    }
}

impl fmt::Display for ServiceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{},{},{}}}", self.service_type, self.lower, self.upper)
    }
}

/// A destination: a socket (unicast), a service address (anycast) or a service range
/// (multicast to every bound socket, cluster-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addr {
    /// Unicast to one socket.
    Socket(SocketAddr),
    /// Anycast to one socket bound to the instance (round robin among them).
    Service(ServiceAddr),
    /// Multicast to every socket bound to an overlapping range.
    Range(ServiceRange),
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Self {
        Self::Socket(a)
    }
}

impl From<ServiceAddr> for Addr {
    fn from(a: ServiceAddr) -> Self {
        Self::Service(a)
    }
}

impl From<ServiceRange> for Addr {
    fn from(a: ServiceRange) -> Self {
        Self::Range(a)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Socket(a) => a.fmt(f),
            Self::Service(a) => a.fmt(f),
            Self::Range(a) => a.fmt(f),
        }
    }
}

/// How a received message was addressed (the kernel's TIPC_DESTNAME ancillary data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestName {
    /// To the receiving socket's address.
    Socket,
    /// To a service address.
    Service(ServiceAddr),
    /// To a service range (multicast).
    Range(ServiceRange),
}

/// Why a message came back to its sender, or why a connection ended (TIPC error codes,
/// spec §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// TIPC_ERR_NO_NAME: no socket bound to the service address.
    NoName,
    /// TIPC_ERR_NO_PORT: the destination socket does not exist (or closed the connection).
    NoPort,
    /// TIPC_ERR_NO_NODE: the destination node is unreachable (or was lost).
    NoNode,
    /// TIPC_ERR_OVERLOAD: the destination's receive queue is full.
    Overload,
    /// TIPC_CONN_SHUTDOWN: the peer shut the connection down in an orderly way.
    ConnShutdown,
    /// An error code this version does not know.
    Other(u32),
}

impl ErrorCode {
    /// The TIPC error code number.
    pub const fn code(self) -> u32 {
        match self {
            Self::NoName => 1,
            Self::NoPort => 2,
            Self::NoNode => 3,
            Self::Overload => 4,
            Self::ConnShutdown => 5,
            Self::Other(c) => c,
        }
    }

    /// From the TIPC error code number (0, "no error", is not an error code).
    pub const fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => return None,
            1 => Self::NoName,
            2 => Self::NoPort,
            3 => Self::NoNode,
            4 => Self::Overload,
            5 => Self::ConnShutdown,
            c => Self::Other(c),
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoName => f.write_str("no socket is bound to the service address (NO_NAME)"),
            Self::NoPort => f.write_str("the destination socket does not exist (NO_PORT)"),
            Self::NoNode => f.write_str("the destination node is unreachable (NO_NODE)"),
            Self::Overload => f.write_str("the destination's receive queue is full (OVERLOAD)"),
            Self::ConnShutdown => f.write_str("the peer shut the connection down"),
            Self::Other(c) => write!(f, "TIPC error code {c}"),
        }
    }
}
