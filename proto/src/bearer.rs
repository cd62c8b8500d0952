//! What the core knows about a bearer: its media, addresses and link parameters — no IO. The
//! IO shell (`utipc-dataplane`) owns the sockets and turns [`Transmit`]s into frames.

use core::time::Duration;

use crate::wire::discovery::MediaAddr;

/// Bearer id: the slot (0–2) of an enabled bearer; the network plane is 'A' + id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BearerId(pub u8);

/// At most this many bearers per node (MAX_BEARERS).
pub const MAX_BEARERS: usize = 3;

/// The media a bearer runs on (spec §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Ethernet, ethertype 0x88CA.
    Eth,
    /// UDP over IPv4, port 6118 by default.
    Udp4,
    /// UDP over IPv6.
    Udp6,
    /// InfiniBand.
    Ib,
}

impl MediaKind {
    /// Smallest max_pkt a RESET/ACTIVATE may advertise on this media (100 bytes plus the
    /// encapsulation header), below which the kernel ignores the message.
    pub fn min_mtu(self) -> u32 {
        match self {
            Self::Eth | Self::Ib => 100,
            Self::Udp4 => 128,
            Self::Udp6 => 148,
        }
    }

    /// Default bearer MTU (Ethernet: the device MTU, usually 1500).
    pub fn default_mtu(self) -> u32 {
        match self {
            Self::Eth | Self::Ib => 1500,
            Self::Udp4 => 14_000,
            Self::Udp6 => 1280,
        }
    }

    /// Largest link window of this media (Ethernet/IB 8191, UDP 50).
    pub fn max_window(self) -> u16 {
        match self {
            Self::Eth | Self::Ib => 8191,
            Self::Udp4 | Self::Udp6 => 50,
        }
    }

    /// The media name used in bearer names (`eth:`, `udp:`, `ib:`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Eth => "eth",
            Self::Udp4 | Self::Udp6 => "udp",
            Self::Ib => "ib",
        }
    }
}

/// Smallest link window every media allows.
pub const MIN_WINDOW: u16 = 50;
/// Default link priority.
pub const DEFAULT_PRIORITY: u8 = 10;
/// Default link tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(1500);
/// Tolerance range honoured on the wire and in configuration.
pub const TOLERANCE_RANGE_MS: core::ops::RangeInclusive<u32> = 50..=30_000;

/// Configuration of one bearer as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerConfig {
    /// Bearer name, e.g. `eth:veth0` or `udp:u1`.
    pub name: String,
    /// Interface name sent in RESET/ACTIVATE (≤ 15 bytes).
    pub if_name: String,
    /// Media.
    pub media: MediaKind,
    /// This bearer's own media address, advertised in discovery.
    pub local: MediaAddr,
    /// Whether the media can reach all peers with one broadcast (false for UDP replicast).
    pub broadcast: bool,
    /// MTU advertised in RESET/ACTIVATE.
    pub mtu: u32,
    /// Link priority (0–31).
    pub priority: u8,
    /// Link tolerance.
    pub tolerance: Duration,
    /// Maximum link window (50–8191).
    pub max_window: u16,
    /// Discovery domain: 0 = accept every peer.
    pub domain: u32,
}

impl BearerConfig {
    /// A bearer with the media's defaults.
    pub fn new(name: &str, if_name: &str, media: MediaKind, local: MediaAddr) -> Self {
        Self {
            name: name.to_owned(),
            if_name: if_name.to_owned(),
            media,
            local,
            broadcast: true,
            mtu: media.default_mtu(),
            priority: DEFAULT_PRIORITY,
            tolerance: DEFAULT_TOLERANCE,
            max_window: media.max_window(),
            domain: 0,
        }
    }
}

/// Where a packet goes on its bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// The bearer's broadcast address (Ethernet ff:ff:ff:ff:ff:ff, the UDP multicast group, or
    /// one copy per configured UDP remote).
    Broadcast,
    /// A peer's media address, as it advertised in discovery.
    Unicast(MediaAddr),
}

/// A packet the core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a Transmit is a packet that must be handed to the bearer"]
pub struct Transmit {
    /// Bearer to send on.
    pub bearer: BearerId,
    /// Destination on that bearer.
    pub dest: Dest,
    /// The TIPC packet.
    pub data: Vec<u8>,
}
