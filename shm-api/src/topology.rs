//! Service, node and link tracking: subscriptions to the topology server `{1,1}` (spec §8).
//!
//! Exactly as with kernel TIPC, a subscriber opens a SEQPACKET connection to the topology
//! service, sends 28-byte subscriptions and reads 48-byte events. By default the connection
//! goes to this node's server; [`Topology::connect_to`] reaches another node's server (a kernel
//! node's too), since the service is found by the lookup domain.
//!
//! ```no_run
//! use utipc_shm_api::{Client, ServiceRange, topology::{Filter, Topology}};
//! # fn main() -> Result<(), utipc_shm_api::Error> {
//! let client = Client::attach()?;
//! let topo = Topology::connect(&client)?;
//! topo.subscribe(ServiceRange::new(18888, 0, u32::MAX), Filter::PORTS, None, 1)?;
//! let ev = topo.next_event()?;
//! println!("{:?} {}..{} at {}", ev.kind, ev.found_lower, ev.found_upper, ev.port);
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::socket::Socket;
use crate::types::{ServiceAddr, ServiceRange, SocketAddr, SocketKind};

/// The topology service type and instance.
pub const TOP_SRV: u32 = 1;
/// Node tracking: every node binds `{0, addr, addr}`.
pub const NODE_STATE: u32 = 0;
/// Link tracking: `{2, peer, peer}` per working link.
pub const LINK_STATE: u32 = 2;
/// Subscription that never times out.
pub const WAIT_FOREVER: u32 = u32::MAX;

/// Subscription filter bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Filter(pub u32);

impl Filter {
    /// An event for every matching binding and withdrawal.
    pub const PORTS: Self = Self(0x01);
    /// An event only when a range gets its first binding or loses its last.
    pub const SERVICE: Self = Self(0x02);
    /// Cancel a subscription (sent with the original's other fields).
    pub const CANCEL: Self = Self(0x04);
    /// No initial report of existing bindings.
    pub const NO_STATUS: Self = Self(0x80);

    /// Both filters' bits.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A matching binding exists (or appeared).
    Published,
    /// A matching binding went away.
    Withdrawn,
    /// The subscription's timeout passed; it is gone.
    Timeout,
}

/// A topology event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The binding's own lower bound (the subscribed range's, for a timeout).
    pub found_lower: u32,
    /// The binding's own upper bound.
    pub found_upper: u32,
    /// The bound socket (port 0 for node bindings and timeouts).
    pub port: SocketAddr,
    /// The subscription's range.
    pub range: ServiceRange,
    /// The subscription's user handle.
    pub handle: u64,
}

/// One connection to a topology server, carrying any number of subscriptions.
#[derive(Debug)]
pub struct Topology {
    sock: Socket,
}

impl Topology {
    /// Connects to this node's topology server.
    ///
    /// # Errors
    ///
    /// As [`Socket::connect`].
    pub fn connect(client: &Client) -> Result<Self> {
        Self::connect_to(client, 0)
    }

    /// Connects to the topology server of node `node` (0: this node).
    ///
    /// # Errors
    ///
    /// As [`Socket::connect`].
    pub fn connect_to(client: &Client, node: u32) -> Result<Self> {
        let sock = client.socket(SocketKind::Seqpacket)?;
        let to = ServiceAddr {
            service_type: TOP_SRV,
            instance: TOP_SRV,
            domain: node,
        };
        sock.connect(to, Duration::from_secs(8))?;
        Ok(Self { sock })
    }

    /// Subscribes to `range` with `filter` (PORTS or SERVICE, optionally NO_STATUS); events for
    /// it carry `handle`. `timeout` None: forever.
    ///
    /// # Errors
    ///
    /// As [`Socket::send`]. An invalid subscription makes the server close the connection:
    /// the next [`Topology::next_event`] returns [`Error::Disconnected`].
    pub fn subscribe(
        &self,
        range: ServiceRange,
        filter: Filter,
        timeout: Option<Duration>,
        handle: u64,
    ) -> Result<()> {
        let ms = timeout.map_or(WAIT_FOREVER, |t| {
            u32::try_from(t.as_millis()).unwrap_or(WAIT_FOREVER - 1)
        });
        self.sock
            .send(&encode(range, ms, filter.0, handle))
            .map(drop)
    }

    /// Cancels a subscription made with the same arguments.
    ///
    /// # Errors
    ///
    /// As [`Topology::subscribe`].
    pub fn cancel(
        &self,
        range: ServiceRange,
        filter: Filter,
        timeout: Option<Duration>,
        handle: u64,
    ) -> Result<()> {
        self.subscribe(range, filter.with(Filter::CANCEL), timeout, handle)
    }

    /// The next event (waits per the socket's mode; see [`Topology::socket`]).
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when the server closed the connection; a malformed event
    /// ([`Error::Detached`]).
    pub fn next_event(&self) -> Result<Event> {
        let m = self.sock.recv()?;
        decode(&m.data)
    }

    /// The connection's socket (for timeouts and non-blocking mode).
    pub fn socket(&self) -> &Socket {
        &self.sock
    }
}

/// The 28-byte subscription in host byte order (the server detects it from the filter).
fn encode(range: ServiceRange, timeout: u32, filter: u32, handle: u64) -> [u8; 28] {
    let mut b = [0u8; 28];
    for (i, w) in [
        range.service_type,
        range.lower,
        range.upper,
        timeout,
        filter,
    ]
    .into_iter()
    .enumerate()
    {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    b[20..28].copy_from_slice(&handle.to_ne_bytes());
    b
}

fn decode(b: &[u8]) -> Result<Event> {
    if b.len() != 48 {
        return Err(Error::Detached(format!(
            "topology event of {} bytes (48 expected)",
            b.len()
        )));
    }
    let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let kind = match w(0) {
        1 => EventKind::Published,
        2 => EventKind::Withdrawn,
        3 => EventKind::Timeout,
        other => return Err(Error::Detached(format!("unknown topology event {other}"))),
    };
    let mut h = [0u8; 8];
    h.copy_from_slice(&b[40..48]);
    Ok(Event {
        kind,
        found_lower: w(4),
        found_upper: w(8),
        port: SocketAddr {
            port: w(12),
            node: w(16),
        },
        range: ServiceRange::new(w(20), w(24), w(28)),
        handle: u64::from_ne_bytes(h),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_layout() {
        let sub = encode(ServiceRange::new(18888, 0, 9), WAIT_FOREVER, 1, 77);
        let mut ev = vec![0u8; 48];
        ev[0..4].copy_from_slice(&1u32.to_ne_bytes());
        ev[4..8].copy_from_slice(&3u32.to_ne_bytes());
        ev[8..12].copy_from_slice(&4u32.to_ne_bytes());
        ev[12..16].copy_from_slice(&5u32.to_ne_bytes());
        ev[16..20].copy_from_slice(&6u32.to_ne_bytes());
        ev[20..48].copy_from_slice(&sub);
        let e = decode(&ev).expect("event");
        assert_eq!(e.kind, EventKind::Published);
        assert_eq!((e.found_lower, e.found_upper), (3, 4));
        assert_eq!(e.port, SocketAddr { port: 5, node: 6 });
        assert_eq!(e.range, ServiceRange::new(18888, 0, 9));
        assert_eq!(e.handle, 77);
        assert!(decode(&ev[..47]).is_err());
    }
}
