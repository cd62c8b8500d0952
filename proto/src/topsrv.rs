//! The topology server (service tracking): subscriptions to name-table changes and the events
//! they produce, without IO.
//!
//! Read spec §8 first (and §7 for the name table it watches). The kernel's server is a
//! SOCK_SEQPACKET service `{1, 1}` of node scope; this module is its logic only. Whoever hosts
//! it (the node, behind a listener) feeds it three things:
//!
//! * [`TopologyServer::subscribe`] — each message a subscriber sent, with the name table;
//! * [`TopologyServer::binding_changed`] — every [`TableChange`] the name table reports, local
//!   or learned from a peer, including node-loss purges;
//! * [`TopologyServer::handle_timeout`] — when [`TopologyServer::poll_timeout`] falls due;
//!
//! and sends each returned [`Out`] as one 48-byte message on that subscriber's connection. A
//! closed connection is [`TopologyServer::remove_subscriber`].
//!
//! # Kernel semantics reproduced (Linux `topsrv.c`, `subscr.c`, `name_table.c`)
//!
//! * A message must be exactly 28 bytes; anything else closes the connection.
//! * Byte order: the filter word is read in host order; if none of PORTS/SERVICE/CANCEL is set
//!   that way, every field is read, and every event field written, in the opposite order. A
//!   filter with neither PORTS nor SERVICE is therefore *not* refused: it is read swapped and,
//!   lacking PORTS, behaves like SERVICE, as in the kernel.
//! * CANCEL (checked first, before the limit): the cancel bit is cleared in the subscriber's
//!   order and the newest subscription of that subscriber whose 28 bytes equal the result is
//!   deleted. No match is not an error.
//! * Refused, closing the connection: both PORTS and SERVICE, lower > upper, or the node
//!   already holds `max_subscriptions` (TIPC_MAX_SUBSCR = 65535).
//! * Initial report (unless NO_STATUS): PORTS — every overlapping binding; SERVICE — the
//!   oldest binding of each overlapping exact range; all in publication order.
//! * Changes: PORTS subscribers hear of every overlapping binding added or removed; SERVICE
//!   subscribers only when an exact range goes 0→1 or 1→0 ([`TableChange::range_edge`]), with
//!   the binding that caused it. The subscriptions of one service type are told newest first.
//! * Scope filters: 0x20 (cluster-scope bindings only) and 0x40 (node-scope only) apply to
//!   every report, the initial one included.
//! * Event fields: the binding's own range (not clipped), its port and node; bytes 20..48 echo
//!   the subscription exactly as received.
//! * Timeout (ms, [`WAIT_FOREVER`] = none; 0 fires at once, after the initial report): one
//!   TIPC_SUBSCR_TIMEOUT event with found range = the subscribed range, port 0, node 0, then the
//!   subscription is deleted.
//!
//! One deliberate difference: for a subscriber in the opposite byte order, the kernel writes the
//! timeout event's found range byte-swapped (it converts the already-raw subscription words a
//! second time). We write the subscribed range in the subscriber's order, as the spec says.

#[cfg(test)]
mod tests;

use core::fmt;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use crate::name_table::{Binding, NameTable, Scope, TableChange};
use crate::time::Instant;
use crate::wire::topsrv::{
    ByteOrder, EVENT_LEN, EventKind, SUBSCR_LEN, Subscription, WAIT_FOREVER, filter,
};

/// TIPC_MAX_SUBSCR: subscriptions one node accepts in total.
pub const TIPC_MAX_SUBSCR: usize = 65_535;

/// One event for one subscriber: send `event` as a single message on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Out {
    /// The caller's id of the subscriber (connection).
    pub subscriber: u64,
    /// The 48-byte `struct tipc_event`, fields in the subscriber's byte order, bytes 20..48 the
    /// subscription as received.
    pub event: [u8; EVENT_LEN],
}

/// Why a subscriber's message was refused. The kernel closes the connection for each of
/// these; [`TopologyServer::subscribe`] has already dropped all of that subscriber's
/// subscriptions when it returns one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopsrvError {
    /// The message was not exactly 28 bytes.
    BadLength(usize),
    /// Both TIPC_SUB_PORTS and TIPC_SUB_SERVICE are set.
    PortsAndService,
    /// The range is empty: lower > upper.
    InvalidRange {
        /// Lower bound, as read in the subscriber's order.
        lower: u32,
        /// Upper bound, as read in the subscriber's order.
        upper: u32,
    },
    /// The node already holds the maximum number of subscriptions.
    LimitReached(usize),
}

impl fmt::Display for TopsrvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadLength(n) => write!(f, "subscription of {n} bytes, expected {SUBSCR_LEN}"),
            Self::PortsAndService => f.write_str("subscription sets both PORTS and SERVICE"),
            Self::InvalidRange { lower, upper } => {
                write!(f, "subscription range lower {lower} > upper {upper}")
            }
            Self::LimitReached(max) => write!(f, "subscription limit of {max} reached"),
        }
    }
}

impl std::error::Error for TopsrvError {}

/// One live subscription.
#[derive(Debug, Clone)]
struct Sub {
    subscriber: u64,
    /// The 28 bytes as received: echoed in events and compared by CANCEL.
    raw: [u8; SUBSCR_LEN],
    order: ByteOrder,
    service_type: u32,
    lower: u32,
    upper: u32,
    filter: u32,
    deadline: Option<Instant>,
}

impl Sub {
    /// Whether a change of `b` is reported, `edge` being whether its exact range went 0→1 or
    /// 1→0 (always true for the initial report).
    fn wants(&self, b: &Binding, edge: bool) -> bool {
        b.overlaps(self.service_type, self.lower, self.upper)
            && (edge || self.filter & filter::PORTS != 0)
            && scope_passes(self.filter, b.scope)
    }

    fn event(&self, kind: EventKind, lower: u32, upper: u32, port: u32, node: u32) -> Out {
        let mut event = [0u8; EVENT_LEN];
        let words = [u32::from(kind), lower, upper, port, node];
        for (chunk, w) in event.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&match self.order {
                ByteOrder::Big => w.to_be_bytes(),
                ByteOrder::Little => w.to_le_bytes(),
            });
        }
        event[EVENT_LEN - SUBSCR_LEN..].copy_from_slice(&self.raw);
        Out {
            subscriber: self.subscriber,
            event,
        }
    }

    fn binding_event(&self, kind: EventKind, b: &Binding) -> Out {
        self.event(kind, b.lower, b.upper, b.port, b.node)
    }
}

/// The internal scope filter bits (spec §8.4).
fn scope_passes(filter: u32, scope: Scope) -> bool {
    !(filter & filter::CLUSTER_SCOPE != 0 && scope == Scope::Node
        || filter & filter::NODE_SCOPE != 0 && scope != Scope::Node)
}

/// Every subscription on this node, keyed by a caller-chosen subscriber id (a connection).
/// See the module documentation.
#[derive(Debug)]
pub struct TopologyServer {
    max: usize,
    /// Creation number of the next subscription: identifies it and orders "newest first".
    next_id: u64,
    subs: BTreeMap<u64, Sub>,
    /// (service type, id): who is told of a change of that type.
    by_type: BTreeSet<(u32, u64)>,
    /// (subscriber, id): cancel and connection close.
    by_subscriber: BTreeSet<(u64, u64)>,
    /// (deadline, id) of subscriptions with a timeout.
    timers: BTreeSet<(Instant, u64)>,
}

impl TopologyServer {
    /// A server accepting at most `max_subscriptions` in total ([`TIPC_MAX_SUBSCR`] as the
    /// kernel).
    pub fn new(max_subscriptions: usize) -> Self {
        Self {
            max: max_subscriptions,
            next_id: 0,
            subs: BTreeMap::new(),
            by_type: BTreeSet::new(),
            by_subscriber: BTreeSet::new(),
            timers: BTreeSet::new(),
        }
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Number of live subscriptions of `subscriber`.
    pub fn subscriber_len(&self, subscriber: u64) -> usize {
        self.by_subscriber
            .range((subscriber, 0)..=(subscriber, u64::MAX))
            .count()
    }

    /// Handles one message from `subscriber`: a subscription or a cancellation. Returns the
    /// initial report (empty for a cancellation, or with NO_STATUS), from `table` as it is now.
    ///
    /// `Err`: the kernel closes the connection; all of `subscriber`'s subscriptions are already
    /// gone, so the caller closes it and need not call [`Self::remove_subscriber`].
    pub fn subscribe(
        &mut self,
        now: Instant,
        subscriber: u64,
        msg: &[u8],
        table: &NameTable,
    ) -> Result<Vec<Out>, TopsrvError> {
        let Ok(raw) = <[u8; SUBSCR_LEN]>::try_from(msg) else {
            return Err(self.refuse(subscriber, TopsrvError::BadLength(msg.len())));
        };
        // Both calls only fail on a wrong length, excluded above.
        let order = Subscription::detect_order(&raw, ByteOrder::HOST).unwrap_or(ByteOrder::HOST);
        let Ok(s) = Subscription::parse(&raw, order) else {
            return Err(self.refuse(subscriber, TopsrvError::BadLength(msg.len())));
        };
        if s.filter & filter::CANCEL != 0 {
            self.cancel(subscriber, s, order);
            return Ok(Vec::new());
        }
        if self.subs.len() >= self.max {
            return Err(self.refuse(subscriber, TopsrvError::LimitReached(self.max)));
        }
        if s.filter & filter::PORTS != 0 && s.filter & filter::SERVICE != 0 {
            return Err(self.refuse(subscriber, TopsrvError::PortsAndService));
        }
        if s.lower > s.upper {
            let e = TopsrvError::InvalidRange {
                lower: s.lower,
                upper: s.upper,
            };
            return Err(self.refuse(subscriber, e));
        }
        let deadline =
            (s.timeout != WAIT_FOREVER).then(|| now + Duration::from_millis(u64::from(s.timeout)));
        let sub = Sub {
            subscriber,
            raw,
            order,
            service_type: s.service_type,
            lower: s.lower,
            upper: s.upper,
            filter: s.filter,
            deadline,
        };
        let mut out = Vec::new();
        if sub.filter & filter::NO_STATUS == 0 {
            let all_ports = sub.filter & filter::PORTS != 0;
            for b in table.subscription_snapshot(sub.service_type, sub.lower, sub.upper, all_ports)
            {
                if sub.wants(&b, true) {
                    out.push(sub.binding_event(EventKind::Published, &b));
                }
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_type.insert((sub.service_type, id));
        self.by_subscriber.insert((subscriber, id));
        if let Some(d) = deadline {
            self.timers.insert((d, id));
        }
        self.subs.insert(id, sub);
        Ok(out)
    }

    /// The events a change of the name table causes: call once per [`TableChange`] returned by
    /// `NameTable::insert` (`published`) or `remove`/`remove_port`/`purge_node` (not
    /// `published`), in the order the table returned them.
    pub fn binding_changed(&self, change: &TableChange, published: bool) -> Vec<Out> {
        let b = &change.binding;
        let kind = if published {
            EventKind::Published
        } else {
            EventKind::Withdrawn
        };
        self.by_type
            .range((b.service_type, 0)..=(b.service_type, u64::MAX))
            .rev()
            .filter_map(|(_, id)| self.subs.get(id))
            .filter(|s| s.wants(b, change.range_edge))
            .map(|s| s.binding_event(kind, b))
            .collect()
    }

    /// When [`Self::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(d, _)| d)
    }

    /// Expires every subscription whose timeout has passed at `now`: a TIPC_SUBSCR_TIMEOUT
    /// event each (earliest deadline first), and the subscription is deleted.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        while let Some(&(d, id)) = self.timers.first() {
            if d > now {
                break;
            }
            if let Some(s) = self.remove(id) {
                out.push(s.event(EventKind::Timeout, s.lower, s.upper, 0, 0));
            }
        }
        out
    }

    /// Drops every subscription of `subscriber`: its connection closed.
    pub fn remove_subscriber(&mut self, subscriber: u64) {
        let ids: Vec<u64> = self
            .by_subscriber
            .range((subscriber, 0)..=(subscriber, u64::MAX))
            .map(|&(_, id)| id)
            .collect();
        for id in ids {
            self.remove(id);
        }
    }

    /// Deletes the newest subscription of `subscriber` equal, byte for byte, to the cancel
    /// request with its cancel bit cleared.
    fn cancel(&mut self, subscriber: u64, mut s: Subscription, order: ByteOrder) {
        s.filter &= !filter::CANCEL;
        let mut want = [0u8; SUBSCR_LEN];
        if s.emit(&mut want, order).is_err() {
            return; // cannot happen: the buffer is exactly SUBSCR_LEN bytes
        }
        let found = self
            .by_subscriber
            .range((subscriber, 0)..=(subscriber, u64::MAX))
            .rev()
            .map(|&(_, id)| id)
            .find(|id| self.subs.get(id).is_some_and(|x| x.raw == want));
        if let Some(id) = found {
            self.remove(id);
        }
    }

    fn refuse(&mut self, subscriber: u64, e: TopsrvError) -> TopsrvError {
        self.remove_subscriber(subscriber);
        e
    }

    fn remove(&mut self, id: u64) -> Option<Sub> {
        let s = self.subs.remove(&id)?;
        self.by_type.remove(&(s.service_type, id));
        self.by_subscriber.remove(&(s.subscriber, id));
        if let Some(d) = s.deadline {
            self.timers.remove(&(d, id));
        }
        Some(s)
    }

    /// Checks the indexes against the subscriptions (tests only).
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.by_type.len(), self.subs.len());
        assert_eq!(self.by_subscriber.len(), self.subs.len());
        assert_eq!(
            self.timers.len(),
            self.subs.values().filter(|s| s.deadline.is_some()).count()
        );
        for (id, s) in &self.subs {
            assert!(self.by_type.contains(&(s.service_type, *id)));
            assert!(self.by_subscriber.contains(&(s.subscriber, *id)));
            if let Some(d) = s.deadline {
                assert!(self.timers.contains(&(d, *id)));
            }
        }
    }
}
