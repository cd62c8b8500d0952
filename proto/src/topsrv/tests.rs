//! Tests of the topology server against the kernel semantics listed in the module doc.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::wire::topsrv::Event;

const OWN: u32 = 0x0100_1001;
const PEER: u32 = 0x0100_1002;
const T: u32 = 18888;
const T0: Instant = Instant::ZERO;
const HOST: ByteOrder = ByteOrder::HOST;

fn raw_sub(
    order: ByteOrder,
    service_type: u32,
    lower: u32,
    upper: u32,
    timeout: u32,
    filter: u32,
) -> [u8; SUBSCR_LEN] {
    let mut b = [0u8; SUBSCR_LEN];
    Subscription {
        service_type,
        lower,
        upper,
        timeout,
        filter,
        usr_handle: *b"\x01\x02\x03\x04\x05\x06\x07\x08",
    }
    .emit(&mut b, order)
    .expect("28 bytes");
    b
}

fn sub(service_type: u32, lower: u32, upper: u32, filter: u32) -> [u8; SUBSCR_LEN] {
    raw_sub(HOST, service_type, lower, upper, WAIT_FOREVER, filter)
}

fn bind(service_type: u32, lower: u32, upper: u32, node: u32, port: u32) -> Binding {
    Binding {
        service_type,
        lower,
        upper,
        port,
        node,
        key: port + 1,
        scope: Scope::Cluster,
    }
}

/// (kind, found_lower, found_upper, port, node) of an event, read in `order`.
type Ev = (EventKind, u32, u32, u32, u32);

fn ev_in(out: &Out, order: ByteOrder) -> Ev {
    let e = Event::parse(&out.event, order).expect("48 bytes");
    (
        e.kind(),
        e.found_lower,
        e.found_upper,
        e.port_ref,
        e.port_node,
    )
}

fn ev(out: &Out) -> Ev {
    ev_in(out, HOST)
}

fn published(b: &Binding) -> Ev {
    (EventKind::Published, b.lower, b.upper, b.port, b.node)
}

fn withdrawn(b: &Binding) -> Ev {
    (EventKind::Withdrawn, b.lower, b.upper, b.port, b.node)
}

/// Events as (subscriber, event) pairs.
fn evs(outs: &[Out]) -> Vec<(u64, Ev)> {
    outs.iter().map(|o| (o.subscriber, ev(o))).collect()
}

struct Fixture {
    table: NameTable,
    srv: TopologyServer,
}

impl Fixture {
    fn new() -> Self {
        Self {
            table: NameTable::new(OWN),
            srv: TopologyServer::new(TIPC_MAX_SUBSCR),
        }
    }

    fn subscribe(&mut self, subscriber: u64, msg: &[u8]) -> Vec<Out> {
        let r = self.srv.subscribe(T0, subscriber, msg, &self.table);
        self.srv.check();
        r.expect("subscription accepted")
    }

    fn publish(&mut self, b: Binding) -> Vec<Out> {
        let c = self.table.insert(b).expect("binding accepted");
        self.srv.binding_changed(&c, true)
    }

    fn withdraw(&mut self, b: Binding) -> Vec<Out> {
        let c = self
            .table
            .remove(b.service_type, b.lower, b.upper, b.node, b.key)
            .expect("binding present");
        self.srv.binding_changed(&c, false)
    }
}

#[test]
fn ports_versus_service_with_overlapping_bindings() {
    let mut f = Fixture::new();
    assert!(f.subscribe(1, &sub(T, 10, 20, filter::PORTS)).is_empty());
    assert!(f.subscribe(2, &sub(T, 10, 20, filter::SERVICE)).is_empty());
    let a = bind(T, 5, 15, OWN, 1);
    let b = bind(T, 5, 15, PEER, 2);
    let c = bind(T, 21, 30, OWN, 3);
    let d = bind(T, 20, 20, PEER, 4);
    // A new range: everyone, newest subscription first; the found range is the binding's own.
    assert_eq!(
        evs(&f.publish(a)),
        vec![(2, published(&a)), (1, published(&a))]
    );
    // Second binding of the same exact range: PORTS only.
    assert_eq!(evs(&f.publish(b)), vec![(1, published(&b))]);
    // Outside the subscribed range, or another type: nobody.
    assert!(f.publish(c).is_empty());
    assert!(f.publish(bind(T + 1, 10, 20, OWN, 9)).is_empty());
    assert_eq!(
        evs(&f.publish(d)),
        vec![(2, published(&d)), (1, published(&d))]
    );
    // Removing one of two bindings of a range: PORTS only; the last one: both, with its port.
    assert_eq!(evs(&f.withdraw(a)), vec![(1, withdrawn(&a))]);
    assert_eq!(
        evs(&f.withdraw(b)),
        vec![(2, withdrawn(&b)), (1, withdrawn(&b))]
    );
    assert!(f.withdraw(c).is_empty());
}

#[test]
fn initial_report_is_in_publication_order() {
    let mut f = Fixture::new();
    let x = bind(T, 30, 40, PEER, 1);
    let y = bind(T, 10, 20, OWN, 2);
    let z = bind(T, 10, 20, PEER, 3);
    let w = bind(T, 10, 20, OWN, 4);
    let v = bind(T, 0, 5, OWN, 5);
    for b in [
        x,
        y,
        z,
        w,
        v,
        bind(T + 1, 0, 100, OWN, 6),
        bind(T, 36, 50, OWN, 7),
    ] {
        f.publish(b);
    }
    let ports: Vec<Ev> = f
        .subscribe(1, &sub(T, 0, 35, filter::PORTS))
        .iter()
        .map(ev)
        .collect();
    assert_eq!(
        ports,
        [x, y, z, w, v].iter().map(published).collect::<Vec<_>>()
    );
    // SERVICE: the oldest binding of each overlapping range, in publication order.
    let service: Vec<Ev> = f
        .subscribe(2, &sub(T, 0, 35, filter::SERVICE))
        .iter()
        .map(ev)
        .collect();
    assert_eq!(service, [x, y, v].iter().map(published).collect::<Vec<_>>());
    f.withdraw(y);
    let service: Vec<Ev> = f
        .subscribe(3, &sub(T, 0, 35, filter::SERVICE))
        .iter()
        .map(ev)
        .collect();
    assert_eq!(service, [x, z, v].iter().map(published).collect::<Vec<_>>());
    // All reports go to the subscriber that asked.
    assert!(
        f.subscribe(9, &sub(T, 0, 100, filter::PORTS))
            .iter()
            .all(|o| o.subscriber == 9)
    );
}

#[test]
fn no_status_skips_the_initial_report_only() {
    let mut f = Fixture::new();
    let a = bind(T, 1, 1, OWN, 1);
    f.publish(a);
    assert!(
        f.subscribe(1, &sub(T, 0, 9, filter::PORTS | filter::NO_STATUS))
            .is_empty()
    );
    assert!(
        f.subscribe(2, &sub(T, 0, 9, filter::SERVICE | filter::NO_STATUS))
            .is_empty()
    );
    let b = bind(T, 2, 2, OWN, 2);
    assert_eq!(
        evs(&f.publish(b)),
        vec![(2, published(&b)), (1, published(&b))]
    );
    assert_eq!(
        evs(&f.withdraw(a)),
        vec![(2, withdrawn(&a)), (1, withdrawn(&a))]
    );
}

#[test]
fn cancel_matches_all_bytes_of_the_same_subscriber() {
    let mut f = Fixture::new();
    let s = sub(T, 0, 9, filter::PORTS);
    let cancel = sub(T, 0, 9, filter::PORTS | filter::CANCEL);
    f.subscribe(1, &s);
    f.subscribe(1, &s);
    f.subscribe(2, &s);
    assert_eq!(f.srv.len(), 3);
    // Another subscriber's cancel, another handle, another timeout: no match, no error.
    let mut other_handle = cancel;
    other_handle[27] ^= 1;
    assert!(f.subscribe(3, &cancel).is_empty());
    assert!(f.subscribe(1, &other_handle).is_empty());
    assert!(
        f.subscribe(
            1,
            &raw_sub(HOST, T, 0, 9, 1000, filter::PORTS | filter::CANCEL)
        )
        .is_empty()
    );
    assert_eq!(f.srv.len(), 3);
    // One cancel removes one of two identical subscriptions.
    assert!(f.subscribe(1, &cancel).is_empty());
    assert_eq!((f.srv.len(), f.srv.subscriber_len(1)), (2, 1));
    let a = bind(T, 1, 1, OWN, 1);
    let got: Vec<u64> = f.publish(a).iter().map(|o| o.subscriber).collect();
    assert_eq!(got, vec![2, 1]);
    f.subscribe(1, &cancel);
    f.subscribe(1, &cancel);
    assert_eq!(f.srv.subscriber_len(1), 0);
    assert_eq!(
        f.withdraw(a)
            .iter()
            .map(|o| o.subscriber)
            .collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn cancel_in_the_opposite_byte_order() {
    let mut f = Fixture::new();
    let other = HOST.swapped();
    let s = raw_sub(other, T, 0, 9, 5000, filter::SERVICE);
    f.subscribe(1, &s);
    // The same cancel in host order does not match the stored bytes.
    f.subscribe(
        1,
        &raw_sub(HOST, T, 0, 9, 5000, filter::SERVICE | filter::CANCEL),
    );
    assert_eq!(f.srv.len(), 1);
    f.subscribe(
        1,
        &raw_sub(other, T, 0, 9, 5000, filter::SERVICE | filter::CANCEL),
    );
    assert!(f.srv.is_empty());
    assert_eq!(f.srv.poll_timeout(), None);
}

#[test]
fn events_use_the_subscribers_byte_order_and_echo_its_bytes() {
    for order in [ByteOrder::Big, ByteOrder::Little] {
        let mut f = Fixture::new();
        let s = raw_sub(order, T, 0x0102, 0x0304, WAIT_FOREVER, filter::PORTS);
        let b = bind(T, 0x0200, 0x0300, PEER, 0x1234_5678);
        f.publish(b);
        let outs = f.subscribe(7, &s);
        assert_eq!(outs.len(), 1);
        assert_eq!(ev_in(&outs[0], order), published(&b));
        assert_eq!(outs[0].event[20..], s[..]);
        let word0 = match order {
            ByteOrder::Big => [0, 0, 0, 1],
            ByteOrder::Little => [1, 0, 0, 0],
        };
        assert_eq!(outs[0].event[..4], word0);
        let outs = f.withdraw(b);
        assert_eq!(ev_in(&outs[0], order), withdrawn(&b));
        assert_eq!(outs[0].event[20..], s[..]);
    }
}

#[test]
fn timeouts_report_the_subscribed_range_and_delete() {
    let mut f = Fixture::new();
    let t1 = Instant::from_millis(1000);
    let s = raw_sub(HOST, T, 5, 50, 1500, filter::PORTS);
    let a = bind(T, 1, 10, OWN, 1);
    f.publish(a);
    let outs = f.srv.subscribe(t1, 1, &s, &f.table).expect("accepted");
    assert_eq!(evs(&outs), vec![(1, published(&a))]);
    f.srv
        .subscribe(t1, 2, &sub(T, 0, 1, filter::SERVICE), &f.table)
        .expect("accepted");
    let s3 = raw_sub(HOST, T, 0, 1, 500, filter::SERVICE);
    f.srv.subscribe(t1, 3, &s3, &f.table).expect("accepted");
    assert_eq!(f.srv.poll_timeout(), Some(Instant::from_millis(1500)));
    assert!(f.srv.handle_timeout(Instant::from_millis(1499)).is_empty());
    let outs = f.srv.handle_timeout(Instant::from_millis(2600));
    assert_eq!(
        evs(&outs),
        vec![
            (3, (EventKind::Timeout, 0, 1, 0, 0)),
            (1, (EventKind::Timeout, 5, 50, 0, 0)),
        ]
    );
    assert_eq!(outs[1].event[20..], s[..]);
    f.srv.check();
    // Only the subscription without a timeout is left, and it has no timer.
    assert_eq!((f.srv.len(), f.srv.subscriber_len(2)), (1, 1));
    assert_eq!(f.srv.poll_timeout(), None);
    assert_eq!(f.publish(bind(T, 6, 6, OWN, 2)).len(), 0);
    // Opposite order: the timeout event's fields are in the subscriber's order too.
    let other = HOST.swapped();
    let s = raw_sub(other, T, 70, 80, 0, filter::PORTS);
    assert!(f.srv.subscribe(t1, 4, &s, &f.table).expect("ok").is_empty());
    let outs = f.srv.handle_timeout(t1);
    assert_eq!(ev_in(&outs[0], other), (EventKind::Timeout, 70, 80, 0, 0));
    assert_eq!(outs[0].event[20..], s[..]);
}

#[test]
fn zero_timeout_fires_after_the_initial_report() {
    let mut f = Fixture::new();
    let a = bind(T, 3, 3, PEER, 1);
    f.publish(a);
    let now = Instant::from_millis(77);
    let s = raw_sub(HOST, T, 0, 9, 0, filter::SERVICE);
    let outs = f.srv.subscribe(now, 1, &s, &f.table).expect("ok");
    assert_eq!(evs(&outs), vec![(1, published(&a))]);
    assert_eq!(f.srv.poll_timeout(), Some(now));
    assert_eq!(
        evs(&f.srv.handle_timeout(now)),
        vec![(1, (EventKind::Timeout, 0, 9, 0, 0))]
    );
    assert!(f.srv.is_empty());
}

#[test]
fn cancel_and_close_drop_timers() {
    let mut f = Fixture::new();
    f.subscribe(1, &raw_sub(HOST, T, 0, 9, 100, filter::PORTS));
    f.subscribe(1, &raw_sub(HOST, T, 0, 9, 200, filter::PORTS));
    f.subscribe(2, &raw_sub(HOST, T, 0, 9, 300, filter::PORTS));
    f.subscribe(
        1,
        &raw_sub(HOST, T, 0, 9, 100, filter::PORTS | filter::CANCEL),
    );
    assert_eq!(f.srv.poll_timeout(), Some(Instant::from_millis(200)));
    f.srv.remove_subscriber(1);
    f.srv.check();
    assert_eq!(f.srv.poll_timeout(), Some(Instant::from_millis(300)));
    f.srv.remove_subscriber(2);
    f.srv.remove_subscriber(2);
    assert_eq!((f.srv.len(), f.srv.poll_timeout()), (0, None));
}

#[test]
fn refused_messages_close_the_subscriber() {
    let mut f = Fixture::new();
    f.subscribe(2, &sub(T, 0, 9, filter::PORTS));
    let good = sub(T, 0, 9, filter::PORTS);
    let cases: Vec<(Vec<u8>, TopsrvError)> = vec![
        (Vec::new(), TopsrvError::BadLength(0)),
        (good[..27].to_vec(), TopsrvError::BadLength(27)),
        ([&good[..], &[0]].concat(), TopsrvError::BadLength(29)),
        (vec![0; 48], TopsrvError::BadLength(48)),
        (
            sub(T, 0, 9, filter::PORTS | filter::SERVICE).to_vec(),
            TopsrvError::PortsAndService,
        ),
        (
            sub(T, 9, 8, filter::SERVICE).to_vec(),
            TopsrvError::InvalidRange { lower: 9, upper: 8 },
        ),
    ];
    for (msg, want) in cases {
        f.subscribe(1, &good);
        f.subscribe(1, &good);
        assert_eq!(f.srv.subscribe(T0, 1, &msg, &f.table), Err(want));
        f.srv.check();
        // The refused subscriber lost everything, the other one nothing.
        assert_eq!((f.srv.subscriber_len(1), f.srv.subscriber_len(2)), (0, 1));
    }
    assert_eq!(
        TopsrvError::BadLength(27).to_string(),
        "subscription of 27 bytes, expected 28"
    );
}

#[test]
fn the_node_wide_limit() {
    let mut f = Fixture::new();
    for i in 0..TIPC_MAX_SUBSCR as u32 {
        let r = f
            .srv
            .subscribe(T0, u64::from(i % 7), &sub(T, i, i, filter::PORTS), &f.table);
        assert_eq!(r, Ok(Vec::new()));
    }
    assert_eq!(f.srv.len(), TIPC_MAX_SUBSCR);
    assert_eq!(
        f.srv
            .subscribe(T0, 100, &sub(T, 0, 0, filter::PORTS), &f.table),
        Err(TopsrvError::LimitReached(TIPC_MAX_SUBSCR))
    );
    // A cancel is handled before the limit is checked.
    f.srv
        .subscribe(
            T0,
            0,
            &sub(T, 0, 0, filter::PORTS | filter::CANCEL),
            &f.table,
        )
        .expect("cancel at the limit");
    assert_eq!(f.srv.len(), TIPC_MAX_SUBSCR - 1);
    f.srv
        .subscribe(T0, 100, &sub(T, 0, 0, filter::PORTS), &f.table)
        .expect("room again");
    f.srv.check();

    let mut small = Fixture {
        table: NameTable::new(OWN),
        srv: TopologyServer::new(2),
    };
    small.subscribe(1, &sub(T, 0, 0, filter::PORTS));
    small.subscribe(2, &sub(T, 0, 0, filter::PORTS));
    assert_eq!(
        small
            .srv
            .subscribe(T0, 1, &sub(T, 0, 0, filter::PORTS), &small.table),
        Err(TopsrvError::LimitReached(2))
    );
    assert_eq!(small.srv.len(), 1);
}

#[test]
fn scope_filters() {
    let mut f = Fixture::new();
    let node = Binding {
        scope: Scope::Node,
        ..bind(T, 1, 1, OWN, 1)
    };
    let cluster = bind(T, 2, 2, OWN, 2);
    f.publish(node);
    f.publish(cluster);
    let initial = |f: &mut Fixture, id: u64, flt: u32| -> Vec<Ev> {
        f.subscribe(id, &sub(T, 0, 9, flt)).iter().map(ev).collect()
    };
    assert_eq!(
        initial(&mut f, 1, filter::PORTS | filter::CLUSTER_SCOPE),
        vec![published(&cluster)]
    );
    assert_eq!(
        initial(&mut f, 2, filter::PORTS | filter::NODE_SCOPE),
        vec![published(&node)]
    );
    assert!(
        initial(
            &mut f,
            3,
            filter::PORTS | filter::NODE_SCOPE | filter::CLUSTER_SCOPE
        )
        .is_empty()
    );
    assert_eq!(
        initial(&mut f, 4, filter::SERVICE | filter::NODE_SCOPE),
        vec![published(&node)]
    );
    let node2 = Binding {
        scope: Scope::Node,
        ..bind(T, 3, 3, OWN, 3)
    };
    assert_eq!(
        evs(&f.publish(node2)),
        vec![(4, published(&node2)), (2, published(&node2))]
    );
    let peer = bind(T, 4, 4, PEER, 4);
    assert_eq!(evs(&f.publish(peer)), vec![(1, published(&peer))]);
    assert_eq!(evs(&f.withdraw(cluster)), vec![(1, withdrawn(&cluster))]);
}

#[test]
fn filter_without_ports_or_service_is_read_swapped_and_acts_as_service() {
    let mut f = Fixture::new();
    let other = HOST.swapped();
    // NO_STATUS alone, in the opposite order: host reading shows no PORTS/SERVICE/CANCEL bit,
    // so the server reads it swapped, finds neither flag, and accepts it (kernel behaviour).
    let s = raw_sub(other, T, 0, 9, WAIT_FOREVER, filter::NO_STATUS);
    f.subscribe(1, &s);
    assert_eq!(f.srv.len(), 1);
    let a = bind(T, 1, 1, OWN, 1);
    let outs = f.publish(a);
    assert_eq!(ev_in(&outs[0], other), published(&a));
    assert!(f.publish(bind(T, 1, 1, PEER, 2)).is_empty());
}

#[test]
fn node_and_link_tracking_use_the_same_machinery() {
    let mut f = Fixture::new();
    f.subscribe(1, &sub(0, 0, u32::MAX, filter::PORTS));
    f.subscribe(2, &sub(2, 0, u32::MAX, filter::SERVICE));
    let peer_node = bind(0, PEER, PEER, PEER, 0);
    assert_eq!(evs(&f.publish(peer_node)), vec![(1, published(&peer_node))]);
    let link = Binding {
        scope: Scope::Node,
        ..bind(2, PEER, PEER, OWN, 0x0001_0000)
    };
    assert_eq!(evs(&f.publish(link)), vec![(2, published(&link))]);
    let gone: Vec<(u64, Ev)> = f
        .table
        .purge_node(PEER)
        .iter()
        .flat_map(|c| evs(&f.srv.binding_changed(c, false)))
        .collect();
    assert_eq!(gone, vec![(1, withdrawn(&peer_node))]);
}

/// What one subscription has been told, folded from its events: bindings for PORTS, ranges
/// (port and node ignored) for SERVICE.
#[derive(Debug, Default)]
struct View {
    service: bool,
    ports: BTreeMap<(u32, u32, u32, u32), i64>,
}

impl View {
    fn new(service: bool) -> Self {
        Self {
            service,
            ports: BTreeMap::new(),
        }
    }

    fn apply(&mut self, e: Ev) {
        let k = if self.service {
            (e.1, e.2, 0, 0)
        } else {
            (e.1, e.2, e.3, e.4)
        };
        match e.0 {
            EventKind::Published => *self.ports.entry(k).or_insert(0) += 1,
            EventKind::Withdrawn => *self.ports.entry(k).or_insert(0) -= 1,
            _ => {}
        }
        self.ports.retain(|_, n| *n != 0);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Bind(Binding),
    Unbind(usize),
    Subscribe(u32, u32, u32, bool, u32),
    Garbage(Vec<u8>),
    Tick(u64),
    Close(u64),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let binding = (
        0u32..2,
        0u32..12,
        0u32..4,
        any::<bool>(),
        0u32..5,
        any::<bool>(),
    )
        .prop_map(|(ty, lower, len, local, port, node_scope)| Binding {
            service_type: T + ty,
            lower,
            upper: lower + len,
            port,
            node: if local { OWN } else { PEER },
            key: port,
            scope: if local && node_scope {
                Scope::Node
            } else {
                Scope::Cluster
            },
        });
    prop_oneof![
        6 => binding.prop_map(Op::Bind),
        3 => any::<usize>().prop_map(Op::Unbind),
        2 => (0u32..2, 0u32..14, 0u32..6, any::<bool>(), prop::sample::select(vec![
                0, filter::CLUSTER_SCOPE, filter::NODE_SCOPE, filter::NO_STATUS]))
            .prop_map(|(ty, lo, len, ports, extra)| Op::Subscribe(T + ty, lo, lo + len, ports, extra)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
        1 => (0u64..3000).prop_map(Op::Tick),
        1 => (0u64..4).prop_map(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever arrives, nothing panics and the indexes stay consistent; an accepted message
    /// adds at most one subscription.
    #[test]
    fn garbage_never_panics(
        msgs in prop::collection::vec(
            (0u64..4, prop::collection::vec(any::<u8>(), 0..64), 0u64..5000), 1..60),
        cancel_prefix in prop::collection::vec(any::<u8>(), 28),
    ) {
        let mut t = NameTable::new(OWN);
        t.insert(bind(0, OWN, OWN, OWN, 0)).expect("bind");
        t.insert(bind(T, 0, 100, PEER, 1)).expect("bind");
        let mut srv = TopologyServer::new(20);
        let mut now = T0;
        for (who, mut msg, dt) in msgs {
            now += Duration::from_millis(dt);
            if msg.len() >= 28 && msg[0] & 1 == 0 {
                // Bias towards 28-byte messages, half of them cancels of earlier bytes.
                msg.truncate(28);
                if msg[1] & 1 == 0 {
                    msg.copy_from_slice(&cancel_prefix);
                }
            }
            let before = srv.len();
            match srv.subscribe(now, who, &msg, &t) {
                Ok(outs) => {
                    prop_assert!(srv.len() <= before + 1);
                    prop_assert!(outs.iter().all(|o| o.subscriber == who));
                    prop_assert!(outs.iter().all(|o| o.event[20..] == msg[..]));
                }
                Err(_) => prop_assert_eq!(srv.subscriber_len(who), 0),
            }
            for o in srv.handle_timeout(now) {
                prop_assert_eq!(Event::parse(&o.event, HOST).map(|e| e.port_ref), Ok(0));
            }
            srv.check();
        }
    }

    /// Folding each subscription's events gives exactly what the table holds in its range:
    /// PORTS — every binding (scope filters applied); SERVICE — one entry per live exact range.
    #[test]
    fn events_track_the_table(ops in prop::collection::vec(arb_op(), 1..150)) {
        let mut t = NameTable::new(OWN);
        let mut srv = TopologyServer::new(TIPC_MAX_SUBSCR);
        let mut live: Vec<Binding> = Vec::new();
        // subscriber id → (type, lower, upper, filter, view); one subscription each.
        let mut subs: BTreeMap<u64, (u32, u32, u32, u32, View)> = BTreeMap::new();
        let mut next_sub = 10u64;
        let mut now = T0;
        let deliver = |subs: &mut BTreeMap<u64, (u32, u32, u32, u32, View)>, outs: Vec<Out>| {
            for o in outs {
                let e = ev(&o);
                if let Some(s) = subs.get_mut(&o.subscriber) {
                    s.4.apply(e);
                }
            }
        };
        for op in ops {
            match op {
                Op::Bind(b) => {
                    if let Ok(c) = t.insert(b) {
                        live.push(b);
                        deliver(&mut subs, srv.binding_changed(&c, true));
                    }
                }
                Op::Unbind(i) => {
                    if live.is_empty() {
                        continue;
                    }
                    let b = live.remove(i % live.len());
                    let c = t.remove(b.service_type, b.lower, b.upper, b.node, b.key);
                    prop_assert!(c.is_some());
                    if let Some(c) = c {
                        deliver(&mut subs, srv.binding_changed(&c, false));
                    }
                }
                Op::Subscribe(ty, lo, up, ports, extra) => {
                    let flt = extra | if ports { filter::PORTS } else { filter::SERVICE };
                    let id = next_sub;
                    next_sub += 1;
                    // Every third subscription expires after 1 s.
                    let timeout = if id.is_multiple_of(3) { 1000 } else { WAIT_FOREVER };
                    let msg = raw_sub(HOST, ty, lo, up, timeout, flt);
                    let outs = srv.subscribe(now, id, &msg, &t);
                    prop_assert!(outs.is_ok());
                    subs.insert(id, (ty, lo, up, flt, View::new(!ports)));
                    if flt & filter::NO_STATUS != 0 {
                        // Without the initial report the view starts from what exists.
                        let snap = t.subscription_snapshot(ty, lo, up, ports);
                        if let Some(s) = subs.get_mut(&id) {
                            for b in snap.iter().filter(|b| scope_passes(flt, b.scope)) {
                                s.4.apply(published(b));
                            }
                        }
                    }
                    deliver(&mut subs, outs.unwrap_or_default());
                }
                Op::Garbage(bytes) => {
                    // A separate subscriber; refusals must not touch the tracked ones.
                    let _ = srv.subscribe(now, 1, &bytes, &t);
                }
                Op::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    for o in srv.handle_timeout(now) {
                        prop_assert_eq!(ev(&o).0, EventKind::Timeout);
                        subs.remove(&o.subscriber);
                    }
                }
                Op::Close(k) => {
                    if let Some(&id) = subs.keys().nth(k as usize) {
                        srv.remove_subscriber(id);
                        subs.remove(&id);
                    }
                }
            }
            srv.check();
        }
        for (id, (ty, lo, up, flt, view)) in &subs {
            let ports = flt & filter::PORTS != 0;
            let mut want = View::default();
            if ports {
                for b in t.subscription_snapshot(*ty, *lo, *up, true) {
                    if scope_passes(*flt, b.scope) {
                        want.apply(published(&b));
                    }
                }
                prop_assert_eq!(&view.ports, &want.ports, "subscriber {}", id);
            } else if flt & (filter::NODE_SCOPE | filter::CLUSTER_SCOPE) == 0 {
                // One entry per live range that overlaps (found range = that range).
                let got: Vec<(u32, u32)> = view.ports.keys().map(|k| (k.0, k.1)).collect();
                let mut ranges: Vec<(u32, u32)> = t
                    .subscription_snapshot(*ty, *lo, *up, false)
                    .iter()
                    .map(|b| (b.lower, b.upper))
                    .collect();
                ranges.sort_unstable();
                let mut got_sorted = got.clone();
                got_sorted.sort_unstable();
                got_sorted.dedup();
                prop_assert_eq!(got.len(), got_sorted.len(), "one entry per range");
                prop_assert_eq!(got_sorted, ranges, "subscriber {}", id);
                prop_assert!(view.ports.values().all(|&n| n == 1));
            }
        }
    }
}
