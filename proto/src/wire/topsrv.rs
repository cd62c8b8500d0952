//! The topology service's records: `struct tipc_subscr` (28 bytes) and `struct tipc_event`
//! (48 bytes) (spec §8). They travel as the payload of connection messages to and from the
//! service {1, 1}, in the **subscriber's** byte order: the server detects it from the filter.

use super::{Error, Result, need};

/// Length of a subscription.
pub const SUBSCR_LEN: usize = 28;
/// Length of an event.
pub const EVENT_LEN: usize = 48;
/// Timeout value meaning "never".
pub const WAIT_FOREVER: u32 = u32::MAX;

/// Subscription filter bits (spec §8.4).
pub mod filter {
    /// An event for every matching publication and withdrawal.
    pub const PORTS: u32 = 0x01;
    /// An event only when a range goes from 0 to 1 publications or back.
    pub const SERVICE: u32 = 0x02;
    /// Cancel the subscription identified by the other bytes.
    pub const CANCEL: u32 = 0x04;
    /// Report cluster-scope bindings only.
    pub const CLUSTER_SCOPE: u32 = 0x20;
    /// Report node-scope bindings only.
    pub const NODE_SCOPE: u32 = 0x40;
    /// No initial report of existing bindings.
    pub const NO_STATUS: u32 = 0x80;
}

/// Byte order of a subscriber's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Network order.
    Big,
    /// x86 / ARM little-endian host order.
    Little,
}

impl ByteOrder {
    /// This machine's order.
    pub const HOST: Self = if cfg!(target_endian = "big") {
        Self::Big
    } else {
        Self::Little
    };

    fn read(self, b: &[u8], off: usize) -> u32 {
        let w = [b[off], b[off + 1], b[off + 2], b[off + 3]];
        match self {
            Self::Big => u32::from_be_bytes(w),
            Self::Little => u32::from_le_bytes(w),
        }
    }

    fn write(self, b: &mut [u8], off: usize, v: u32) {
        let w = match self {
            Self::Big => v.to_be_bytes(),
            Self::Little => v.to_le_bytes(),
        };
        b[off..off + 4].copy_from_slice(&w);
    }

    /// The other order.
    pub fn swapped(self) -> Self {
        match self {
            Self::Big => Self::Little,
            Self::Little => Self::Big,
        }
    }
}

enum_with_unknown! {
    /// Kind of a topology event.
    pub enum EventKind(u32) {
        /// A matching binding appeared.
        Published = 1 => "TIPC_PUBLISHED",
        /// A matching binding went away.
        Withdrawn = 2 => "TIPC_WITHDRAWN",
        /// The subscription timed out and is gone.
        Timeout = 3 => "TIPC_SUBSCR_TIMEOUT",
    }
}

/// A subscription: which service range to watch, how, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Subscription {
    /// Service type.
    pub service_type: u32,
    /// Lower bound of the watched range.
    pub lower: u32,
    /// Upper bound of the watched range.
    pub upper: u32,
    /// Timeout in ms ([`WAIT_FOREVER`] for none).
    pub timeout: u32,
    /// Filter bits ([`filter`]).
    pub filter: u32,
    /// Opaque handle echoed in every event.
    pub usr_handle: [u8; 8],
}

impl Subscription {
    /// The byte order the kernel's server assumes for a subscription it reads on a host of
    /// order `host`: the host's, if any of the PORTS/SERVICE/CANCEL bits is set when the filter
    /// is read that way, else the opposite one.
    pub fn detect_order(b: &[u8], host: ByteOrder) -> Result<ByteOrder> {
        need("subscription", SUBSCR_LEN, b.len())?;
        let f = host.read(b, 16);
        Ok(if f & 0x07 != 0 { host } else { host.swapped() })
    }

    /// Parses exactly 28 bytes in the given order. Any other length is refused: the kernel's
    /// server closes the connection on it.
    pub fn parse(b: &[u8], order: ByteOrder) -> Result<Self> {
        if b.len() != SUBSCR_LEN {
            return Err(Error::Invalid {
                field: "subscription.len",
                value: b.len() as u32,
            });
        }
        let mut usr_handle = [0u8; 8];
        usr_handle.copy_from_slice(&b[20..28]);
        Ok(Self {
            service_type: order.read(b, 0),
            lower: order.read(b, 4),
            upper: order.read(b, 8),
            timeout: order.read(b, 12),
            filter: order.read(b, 16),
            usr_handle,
        })
    }

    /// Writes the 28 bytes in the given order.
    pub fn emit(&self, b: &mut [u8], order: ByteOrder) -> Result<()> {
        need("emit buffer", SUBSCR_LEN, b.len())?;
        order.write(b, 0, self.service_type);
        order.write(b, 4, self.lower);
        order.write(b, 8, self.upper);
        order.write(b, 12, self.timeout);
        order.write(b, 16, self.filter);
        b[20..28].copy_from_slice(&self.usr_handle);
        Ok(())
    }
}

/// An event sent to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Event {
    /// What happened (raw; see [`EventKind`]).
    pub event: u32,
    /// Lower bound of the publication's own range.
    pub found_lower: u32,
    /// Upper bound of the publication's own range.
    pub found_upper: u32,
    /// Port of the binding socket (0 for timeouts and node-state bindings).
    pub port_ref: u32,
    /// Node of the binding socket.
    pub port_node: u32,
    /// The subscription, echoed as received.
    pub subscription: Subscription,
}

impl Event {
    /// The event kind.
    pub fn kind(&self) -> EventKind {
        EventKind::from(self.event)
    }

    /// Parses exactly 48 bytes in the given order.
    pub fn parse(b: &[u8], order: ByteOrder) -> Result<Self> {
        if b.len() != EVENT_LEN {
            return Err(Error::Invalid {
                field: "event.len",
                value: b.len() as u32,
            });
        }
        Ok(Self {
            event: order.read(b, 0),
            found_lower: order.read(b, 4),
            found_upper: order.read(b, 8),
            port_ref: order.read(b, 12),
            port_node: order.read(b, 16),
            subscription: Subscription::parse(&b[20..48], order)?,
        })
    }

    /// Writes the 48 bytes in the given order.
    pub fn emit(&self, b: &mut [u8], order: ByteOrder) -> Result<()> {
        need("emit buffer", EVENT_LEN, b.len())?;
        order.write(b, 0, self.event);
        order.write(b, 4, self.found_lower);
        order.write(b, 8, self.found_upper);
        order.write(b, 12, self.port_ref);
        order.write(b, 16, self.port_node);
        self.subscription.emit(&mut b[20..48], order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Subscription {
        Subscription {
            service_type: 18888,
            lower: 0,
            upper: 100,
            timeout: WAIT_FOREVER,
            filter: filter::PORTS,
            usr_handle: *b"handle01",
        }
    }

    #[test]
    fn subscription_in_both_orders() {
        for order in [ByteOrder::Big, ByteOrder::Little] {
            let mut b = [0xa5u8; SUBSCR_LEN];
            sub().emit(&mut b, order).expect("emit");
            assert_eq!(Subscription::detect_order(&b, ByteOrder::Little), Ok(order));
            assert_eq!(Subscription::detect_order(&b, ByteOrder::Big), Ok(order));
            assert_eq!(Subscription::parse(&b, order), Ok(sub()));
        }
        let mut be = [0u8; SUBSCR_LEN];
        sub().emit(&mut be, ByteOrder::Big).expect("emit");
        assert_eq!(&be[..4], &[0, 0, 0x49, 0xc8]);
        assert_eq!(&be[16..20], &[0, 0, 0, 1]);
        assert!(Subscription::parse(&be[..27], ByteOrder::Big).is_err());
    }

    #[test]
    fn event_in_both_orders() {
        let ev = Event {
            event: 1,
            found_lower: 17,
            found_upper: 17,
            port_ref: 0x46cf_5d62,
            port_node: 0x0f11_5f6f,
            subscription: sub(),
        };
        assert_eq!(ev.kind(), EventKind::Published);
        for order in [ByteOrder::Big, ByteOrder::Little] {
            let mut b = [0xa5u8; EVENT_LEN];
            ev.emit(&mut b, order).expect("emit");
            assert_eq!(Event::parse(&b, order), Ok(ev));
        }
        let mut le = [0u8; EVENT_LEN];
        ev.emit(&mut le, ByteOrder::Little).expect("emit");
        assert_eq!(&le[..8], &[1, 0, 0, 0, 17, 0, 0, 0]);
        assert_eq!(&le[40..48], b"handle01");
    }
}
