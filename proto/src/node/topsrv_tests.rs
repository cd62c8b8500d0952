//! Topology server tests (spec §8): the node serving `{1, 1}` to local subscribers and, like a
//! kernel node, to subscribers on other nodes, over real connections between two directly
//! wired nodes (deterministic; frames inspectable and alterable).

use core::time::Duration;

use super::*;
use crate::bearer::MediaKind;
use crate::name_table::Scope;
use crate::wire::MessageRepr;
use crate::wire::data::{DataRepr, DataType, ErrorCode, scope};
use crate::wire::topsrv::{
    ByteOrder, Event as TopEvent, EventKind, SUBSCR_LEN, Subscription, WAIT_FOREVER, filter,
};

const SVC: u32 = 18_888;
/// Fixed addresses of the two nodes (no address trial).
const ADDRS: [u32; 2] = [0x0100_1001, 0x0100_1002];

fn mac(i: usize) -> MediaAddr {
    MediaAddr::Eth([0x02, 0x00, 0x08, 0x00, 0x00, i as u8 + 1])
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn node(i: usize, addr: Option<u32>) -> Node {
    let id: NodeId = format!("topnode{i}").parse().expect("id");
    let mut cfg = NodeConfig::new(id, 0x70b5 ^ ((i as u64 + 1) * 0x51ed));
    cfg.address = addr;
    Node::new(cfg)
}

fn bearer(i: usize) -> BearerConfig {
    BearerConfig::new("eth:t0", "t0", MediaKind::Eth, mac(i))
}

/// A 28-byte subscription in `order`.
fn sub(
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
        usr_handle: *b"handle!\0",
    }
    .emit(&mut b, order)
    .expect("28 bytes");
    b
}

/// (kind, found_lower, found_upper, port, node).
type Ev = (EventKind, u32, u32, u32, u32);

fn parse_event(data: &[u8], order: ByteOrder) -> Ev {
    let e = TopEvent::parse(data, order).expect("48-byte event");
    (
        e.kind(),
        e.found_lower,
        e.found_upper,
        e.port_ref,
        e.port_node,
    )
}

/// Two nodes on one wire: frames are delivered at once and in order unless the wire is cut.
struct Pair {
    n: [Node; 2],
    now: Instant,
    /// Every frame sent: (sender, bytes).
    frames: Vec<(usize, Vec<u8>)>,
    /// Every socket event per node.
    events: [Vec<SocketEvent>; 2],
    /// Frames are lost while set.
    cut: bool,
    /// Node 1's NAMED SYNs to the topology server get node lookup scope, as a kernel's
    /// connect with a domain sends them (utipc sends cluster scope).
    kernel_syn: bool,
}

impl Pair {
    fn up() -> Self {
        let mut p = Self {
            n: [node(0, Some(ADDRS[0])), node(1, Some(ADDRS[1]))],
            now: Instant::ZERO,
            frames: Vec::new(),
            events: [Vec::new(), Vec::new()],
            cut: false,
            kernel_syn: false,
        };
        for i in 0..2 {
            p.n[i].add_bearer(Instant::ZERO, bearer(i)).expect("bearer");
        }
        p.advance(Duration::from_secs(3));
        assert!(p.n[0].peer_up(ADDRS[1]) && p.n[1].peer_up(ADDRS[0]));
        p
    }

    /// Rewrites a NAMED SYN to {1, 1} into the kernel's form (node lookup scope).
    fn kernel_form(data: &mut Vec<u8>) {
        let Ok(p) = Packet::new_checked(&data[..]) else {
            return;
        };
        let Ok(mut d) = DataRepr::parse(&p) else {
            return;
        };
        if d.msg_type != DataType::Named || !d.common.flags.syn || d.name_type != TIPC_TOP_SRV {
            return;
        }
        d.lookup_scope = scope::NODE;
        *data = MessageRepr::Data(d).to_vec().expect("re-emit");
    }

    /// Delivers frames until both nodes are quiet (the shared pump also checks that no
    /// internal port surfaces).
    fn pump(&mut self) {
        let (cut, kernel_syn) = (self.cut, self.kernel_syn);
        let Self {
            n,
            now,
            frames,
            events,
            ..
        } = self;
        test_wire::pump(
            n,
            *now,
            [mac(0), mac(1)],
            frames,
            events,
            &mut |i, data| {
                if i == 1 && kernel_syn {
                    Self::kernel_form(data);
                }
            },
            &mut |_, _| !cut,
        );
    }

    /// Runs both nodes' timers for `d`.
    fn advance(&mut self, d: Duration) {
        let (cut, kernel_syn) = (self.cut, self.kernel_syn);
        let Self {
            n,
            now,
            frames,
            events,
            ..
        } = self;
        let end = *now + d;
        test_wire::advance(n, now, end, |n, now| {
            test_wire::pump(
                n,
                now,
                [mac(0), mac(1)],
                frames,
                events,
                &mut |i, data| {
                    if i == 1 && kernel_syn {
                        Self::kernel_form(data);
                    }
                },
                &mut |_, _| !cut,
            );
        });
    }

    /// Runs until `f` holds (checked every 10 ms), at most `max`.
    fn advance_until(&mut self, max: Duration, f: impl Fn(&Self) -> bool) -> bool {
        for _ in 0..max.as_millis() / 10 {
            if f(self) {
                return true;
            }
            self.advance(ms(10));
        }
        f(self)
    }

    /// A SEQPACKET socket on node `i` connected to the topology server `{1, 1}` looked up in
    /// `domain` (0: this node's own server).
    fn subscriber(&mut self, i: usize, domain: u32) -> u32 {
        let now = self.now;
        let s = self.n[i].open_socket(SocketKind::Seqpacket);
        let to = Addr::Service {
            service_type: TIPC_TOP_SRV,
            instance: 1,
            domain,
        };
        let opts = SocketKind::Seqpacket.default_opts();
        self.n[i]
            .connect(now, s, to, opts, &[], CONN_TIMEOUT_DEFAULT)
            .expect("connect");
        self.pump();
        assert!(
            self.events[i]
                .iter()
                .any(|e| matches!(e, SocketEvent::Connected { port, .. } if *port == s)),
            "not connected: {:?}",
            self.events[i]
        );
        s
    }

    /// Sends one subscription message on subscriber `s` of node `i`.
    fn send_sub(&mut self, i: usize, s: u32, msg: &[u8]) {
        let now = self.now;
        self.n[i].send_conn(now, s, msg).expect("send subscription");
        self.pump();
    }

    /// Reads everything waiting on `s` (acknowledging, so the server's window reopens) until
    /// nothing more comes: the data messages, and the error that ended the connection if
    /// one did.
    fn read(&mut self, i: usize, s: u32) -> (Vec<Vec<u8>>, Option<ErrorCode>) {
        let mut data = Vec::new();
        let mut end = None;
        for _ in 0..100_000 {
            let mut got = false;
            while let Some(r) = self.n[i].recv(s) {
                got = true;
                match r.error {
                    Some(e) => end = Some(e),
                    None => data.push(r.data),
                }
            }
            self.pump();
            if !got {
                break;
            }
        }
        (data, end)
    }

    /// The events waiting on `s`, read in `order`.
    fn events_of(&mut self, i: usize, s: u32, order: ByteOrder) -> Vec<Ev> {
        let (data, end) = self.read(i, s);
        assert_eq!(end, None, "connection ended");
        data.iter().map(|d| parse_event(d, order)).collect()
    }

    fn bind(&mut self, i: usize, scope: Scope, lower: u32, upper: u32) -> u32 {
        let now = self.now;
        let port = self.n[i].open_port();
        self.n[i]
            .bind(now, port, scope, SVC, lower, upper)
            .expect("bind");
        self.pump();
        port
    }
}

use EventKind::{Published, Timeout, Withdrawn};

#[test]
fn every_node_binds_the_server_at_creation_without_showing_it() {
    let mut n = node(0, None);
    // Before any bearer: the listener exists, bound to {1, 1, 1} with node scope.
    let l = n.topsrv_port();
    assert_ne!(l, 0);
    assert!(n.is_internal_port(l));
    assert_eq!(
        n.port_count(),
        0,
        "internal sockets are not the application's"
    );
    let b: Vec<&Binding> = n.name_table().iter().collect();
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].service_type, b[0].lower, b[0].upper, b[0].port),
        (TIPC_TOP_SRV, 1, 1, l)
    );
    assert_eq!(b[0].scope, Scope::Node);
    assert!(matches!(n.poll_event(), Some(Event::Published(x)) if x.port == l));
    // The application cannot touch it.
    let now = Instant::ZERO;
    assert_eq!(n.close_port(now, l), Err(NodeError::NoSuchPort));
    assert_eq!(
        n.bind(now, l, Scope::Node, 100, 1, 1),
        Err(NodeError::NoSuchPort)
    );
    assert_eq!(n.unbind(now, l, 1, 1, 1), Err(NodeError::NoSuchBinding));
    assert_eq!(n.recv(l), None);
    assert_eq!(n.accept(now, l), None);
    assert_eq!(n.listen(l), Err(ConnError::NoSuchPort));
    assert_eq!(n.set_rcvbuf(l, 1), Err(NodeError::NoSuchPort));
    assert!(n.is_internal_port(l));
    // An application still may not bind reserved types.
    let p = n.open_port();
    assert_eq!(
        n.bind(now, p, Scope::Node, TIPC_TOP_SRV, 1, 1),
        Err(NodeError::ReservedType)
    );
    assert_eq!(n.port_count(), 1);
}

#[test]
fn the_server_binding_stays_off_the_wire() {
    let p = Pair::up();
    for (i, &own) in ADDRS.iter().enumerate() {
        let top: Vec<&Binding> = p.n[i]
            .name_table()
            .iter()
            .filter(|b| b.service_type == TIPC_TOP_SRV)
            .collect();
        assert_eq!(top.len(), 1, "node {i}: only its own server");
        assert_eq!((top[0].node, top[0].port), (own, p.n[i].topsrv_port()));
    }
    // Both nodes' port generators run as without the server: the first application port
    // is the same as a node's whose server had not drawn one (a different generator).
    assert_ne!(p.n[0].topsrv_port(), p.n[1].topsrv_port());
}

#[test]
fn local_subscriber_gets_status_then_changes_here_and_on_the_peer() {
    let mut p = Pair::up();
    let [a0, a1] = ADDRS;
    let s10 = p.bind(0, Scope::Cluster, 10, 10);
    let sub_port = p.subscriber(0, 0);
    let ports_before = p.n[0].port_count();
    let s = sub(ByteOrder::Big, SVC, 0, 100, WAIT_FOREVER, filter::PORTS);
    p.send_sub(0, sub_port, &s);
    assert_eq!(p.n[0].topology_server().len(), 1);
    assert_eq!(
        p.events_of(0, sub_port, ByteOrder::Big),
        [(Published, 10, 10, s10, a0)]
    );

    // A node-scope binding here, a cluster one on the peer.
    let s20 = p.bind(0, Scope::Node, 20, 25);
    let r30 = p.bind(1, Scope::Cluster, 30, 30);
    assert_eq!(
        p.events_of(0, sub_port, ByteOrder::Big),
        [(Published, 20, 25, s20, a0), (Published, 30, 30, r30, a1)]
    );
    // Unbind here, socket close there.
    let now = p.now;
    p.n[0].unbind(now, s20, SVC, 20, 25).expect("unbind");
    p.n[1].close_port(now, r30).expect("close");
    p.pump();
    assert_eq!(
        p.events_of(0, sub_port, ByteOrder::Big),
        [(Withdrawn, 20, 25, s20, a0), (Withdrawn, 30, 30, r30, a1)]
    );
    // The server's connection is not the application's.
    assert_eq!(p.n[0].port_count(), ports_before + 1);
    assert_eq!(p.n[0].topsrv_stats().connections, 1);
    assert_eq!(p.n[0].topsrv_stats().events_sent, 5);
}

#[test]
fn node_and_link_tracking_follow_partition_and_heal() {
    let mut p = Pair::up();
    let [a0, a1] = ADDRS;
    let link_id = p.n[0].link(a1, BearerId(0)).expect("link").link_id();
    let sub_port = p.subscriber(0, 0);
    let all = u32::MAX;
    let nodes = sub(
        ByteOrder::HOST,
        TIPC_NODE_STATE,
        0,
        all,
        WAIT_FOREVER,
        filter::PORTS,
    );
    let links = sub(
        ByteOrder::HOST,
        TIPC_LINK_STATE,
        0,
        all,
        WAIT_FOREVER,
        filter::PORTS,
    );
    p.send_sub(0, sub_port, &nodes);
    p.send_sub(0, sub_port, &links);
    assert_eq!(
        p.events_of(0, sub_port, ByteOrder::HOST),
        [
            (Published, a0, a0, 0, a0),
            (Published, a1, a1, 0, a1),
            (Published, a1, a1, link_id, a0),
        ]
    );

    // Partition: the link fails, the peer goes down.
    p.cut = true;
    assert!(p.advance_until(Duration::from_secs(5), |p| !p.n[0].peer_up(a1)));
    assert_eq!(
        p.events_of(0, sub_port, ByteOrder::HOST),
        [(Withdrawn, a1, a1, link_id, a0), (Withdrawn, a1, a1, 0, a1)]
    );

    // Heal: both come back.
    p.cut = false;
    assert!(p.advance_until(Duration::from_secs(30), |p| p.n[0].peer_up(a1)));
    p.advance(ms(100));
    let link_id = p.n[0].link(a1, BearerId(0)).expect("link").link_id();
    // Link up, then the peer's bulk: the link-state binding comes first.
    assert_eq!(
        p.events_of(0, sub_port, ByteOrder::HOST),
        [(Published, a1, a1, link_id, a0), (Published, a1, a1, 0, a1),]
    );
    assert_eq!(p.n[0].topology_server().len(), 2);
}

#[test]
fn remote_subscriber_uses_our_server_like_a_kernel_node() {
    let mut p = Pair::up();
    let [a0, a1] = ADDRS;
    p.kernel_syn = true;
    let mark = p.frames.len();
    let sub_port = p.subscriber(1, a0);
    // The SYN went unresolved to node 0 (destination port 0), named {1, 1}.
    let syn = p.frames[mark..]
        .iter()
        .filter(|(i, _)| *i == 1)
        .filter_map(|(_, f)| {
            let pk = Packet::new_checked(&f[..]).ok()?;
            let d = DataRepr::parse(&pk).ok()?;
            d.common.flags.syn.then_some((
                d.msg_type,
                d.dest_port,
                d.dest_node,
                d.name_type,
                d.name_lower,
                d.lookup_scope,
            ))
        })
        .collect::<Vec<_>>();
    assert_eq!(
        syn,
        [(DataType::Named, 0, a0, TIPC_TOP_SRV, 1, scope::NODE)]
    );
    // Connected to one of node 0's internal sockets.
    let server = match p.n[1].conn_state(sub_port) {
        Some(ConnState::Connected { peer }) => peer,
        s => panic!("{s:?}"),
    };
    assert_eq!(server.1, a0);
    assert!(p.n[0].is_internal_port(server.0));

    // Subscriptions in little-endian order: node 0's bindings, node-scope ones included,
    // and node 0's link to node 1.
    let o = ByteOrder::Little;
    p.send_sub(
        1,
        sub_port,
        &sub(o, SVC, 0, 100, WAIT_FOREVER, filter::PORTS),
    );
    let link_id = p.n[0].link(a1, BearerId(0)).expect("link").link_id();
    p.send_sub(
        1,
        sub_port,
        &sub(o, TIPC_LINK_STATE, 0, u32::MAX, WAIT_FOREVER, filter::PORTS),
    );
    assert_eq!(
        p.events_of(1, sub_port, o),
        [(Published, a1, a1, link_id, a0)]
    );
    let s40 = p.bind(0, Scope::Node, 40, 40);
    let r41 = p.bind(1, Scope::Cluster, 41, 41);
    assert_eq!(
        p.events_of(1, sub_port, o),
        [(Published, 40, 40, s40, a0), (Published, 41, 41, r41, a1)]
    );
    assert_eq!(p.n[0].topology_server().len(), 2);
    assert_eq!(p.n[1].topology_server().len(), 0);

    // The subscriber closes: its subscriptions go, and the server's socket with them.
    let now = p.now;
    p.n[1].close_port(now, sub_port).expect("close");
    p.pump();
    assert_eq!(p.n[0].topology_server().len(), 0);
    assert!(!p.n[0].is_internal_port(server.0));
    assert_eq!(p.n[0].topsrv_stats().closed, 1);

    // A second remote subscriber, lost with its node.
    let sub2 = p.subscriber(1, a0);
    p.send_sub(1, sub2, &sub(o, SVC, 0, 100, WAIT_FOREVER, filter::PORTS));
    assert_eq!(p.n[0].topology_server().len(), 1);
    p.cut = true;
    assert!(p.advance_until(Duration::from_secs(5), |p| !p.n[0].peer_up(a1)));
    assert_eq!(p.n[0].topology_server().len(), 0);
    assert!(p.n[0].topsrv.conns.is_empty());
}

#[test]
fn utipc_form_of_the_remote_connect_works_too() {
    // utipc's own connect with a domain sends cluster lookup scope; the server is found all
    // the same (the secondary lookup searches this node's bindings).
    let mut p = Pair::up();
    let sub_port = p.subscriber(1, ADDRS[0]);
    p.send_sub(
        1,
        sub_port,
        &sub(ByteOrder::Big, SVC, 0, 9, WAIT_FOREVER, filter::SERVICE),
    );
    let s = p.bind(0, Scope::Cluster, 5, 6);
    let _second = p.bind(0, Scope::Cluster, 5, 6);
    // SERVICE: only the range's first binding is reported.
    assert_eq!(
        p.events_of(1, sub_port, ByteOrder::Big),
        [(Published, 5, 6, s, ADDRS[0])]
    );
}

#[test]
fn bad_subscription_closes_the_connection() {
    let mut p = Pair::up();
    // Local: one good subscription, then a message of 27 bytes.
    let s = p.subscriber(0, 0);
    let good = sub(ByteOrder::Big, SVC, 0, 100, WAIT_FOREVER, filter::PORTS);
    p.send_sub(0, s, &good);
    assert_eq!(p.n[0].topology_server().len(), 1);
    p.send_sub(0, s, &good[..27]);
    assert_eq!(p.n[0].topology_server().len(), 0);
    assert_eq!(p.n[0].topsrv_stats().refused, 1);
    // The kernel's server shuts the connection down: the subscriber reads end of file.
    assert!(p.events[0].contains(&SocketEvent::Disconnected {
        port: s,
        error: ErrorCode::ConnShutdown,
    }));
    let (data, end) = p.read(0, s);
    assert!(data.is_empty());
    assert_eq!(end, Some(ErrorCode::ConnShutdown));
    assert!(p.n[0].topsrv.conns.is_empty());

    // Remote: PORTS and SERVICE together, then lower > upper.
    for bad in [
        sub(
            ByteOrder::Little,
            SVC,
            0,
            1,
            WAIT_FOREVER,
            filter::PORTS | filter::SERVICE,
        ),
        sub(ByteOrder::Little, SVC, 9, 1, WAIT_FOREVER, filter::PORTS),
    ] {
        let r = p.subscriber(1, ADDRS[0]);
        p.send_sub(1, r, &bad);
        assert_eq!(p.n[1].conn_state(r), Some(ConnState::Disconnected));
        assert!(p.events[1].contains(&SocketEvent::Disconnected {
            port: r,
            error: ErrorCode::ConnShutdown,
        }));
    }
    assert_eq!(p.n[0].topsrv_stats().refused, 3);
    assert_eq!(p.n[0].topology_server().len(), 0);
    assert!(p.n[0].topsrv.conns.is_empty());
}

#[test]
fn subscriber_close_and_shutdown_remove_its_subscriptions() {
    let mut p = Pair::up();
    let a = p.subscriber(0, 0);
    let b = p.subscriber(0, 0);
    for lower in [1, 2, 3] {
        p.send_sub(
            0,
            a,
            &sub(ByteOrder::Big, SVC, lower, 100, WAIT_FOREVER, filter::PORTS),
        );
    }
    p.send_sub(
        0,
        b,
        &sub(ByteOrder::Big, SVC, 0, 100, WAIT_FOREVER, filter::PORTS),
    );
    assert_eq!(p.n[0].topology_server().len(), 4);
    let now = p.now;
    p.n[0].close_port(now, a).expect("close");
    p.pump();
    assert_eq!(p.n[0].topology_server().len(), 1);
    p.n[0].shutdown_conn(now, b).expect("shutdown");
    p.pump();
    assert_eq!(p.n[0].topology_server().len(), 0);
    assert_eq!(p.n[0].topsrv_stats().closed, 2);
    assert!(p.n[0].topsrv.conns.is_empty());
    // Only the listener is left among the internal sockets.
    assert_eq!(p.n[0].ports.user_len() + 1, p.n[0].ports.iter().count());
}

#[test]
fn cancel_removes_one_subscription() {
    let mut p = Pair::up();
    let s = p.subscriber(0, 0);
    let x = sub(ByteOrder::Little, SVC, 0, 100, WAIT_FOREVER, filter::PORTS);
    p.send_sub(0, s, &x);
    let y = sub(
        ByteOrder::Little,
        SVC,
        0,
        100,
        WAIT_FOREVER,
        filter::PORTS | filter::CANCEL,
    );
    p.send_sub(0, s, &y);
    assert_eq!(p.n[0].topology_server().len(), 0);
    p.bind(0, Scope::Cluster, 50, 50);
    assert!(p.events_of(0, s, ByteOrder::Little).is_empty());
    assert_eq!(
        p.n[0].conn_state(s).map(|c| c != ConnState::Disconnected),
        Some(true)
    );
}

#[test]
fn timeout_event_ends_the_subscription_not_the_connection() {
    let mut p = Pair::up();
    let s = p.subscriber(0, 0);
    let t0 = p.now;
    p.send_sub(0, s, &sub(ByteOrder::Big, SVC, 7, 70, 500, filter::SERVICE));
    // The node's timer covers the subscription's deadline.
    assert!(p.n[0].poll_timeout().is_some_and(|t| t <= t0 + ms(500)));
    p.advance(ms(400));
    assert!(p.events_of(0, s, ByteOrder::Big).is_empty());
    p.advance(ms(200));
    assert_eq!(p.events_of(0, s, ByteOrder::Big), [(Timeout, 7, 70, 0, 0)]);
    assert_eq!(p.n[0].topology_server().len(), 0);
    assert!(matches!(
        p.n[0].conn_state(s),
        Some(ConnState::Connected { .. })
    ));
    // Still usable.
    p.send_sub(
        0,
        s,
        &sub(ByteOrder::Big, SVC, 7, 70, WAIT_FOREVER, filter::PORTS),
    );
    let b = p.bind(0, Scope::Cluster, 8, 8);
    assert_eq!(
        p.events_of(0, s, ByteOrder::Big),
        [(Published, 8, 8, b, ADDRS[0])]
    );
}

#[test]
fn events_follow_each_subscriptions_byte_order() {
    let mut p = Pair::up();
    let s = p.subscriber(0, 0);
    let be = sub(ByteOrder::Big, SVC, 0, 100, WAIT_FOREVER, filter::PORTS);
    let le = sub(ByteOrder::Little, SVC, 0, 100, WAIT_FOREVER, filter::PORTS);
    p.send_sub(0, s, &be);
    p.send_sub(0, s, &le);
    let port = p.bind(0, Scope::Cluster, 60, 61);
    let (data, end) = p.read(0, s);
    assert_eq!(end, None);
    assert_eq!(data.len(), 2);
    for d in &data {
        // Bytes 20..48 echo the subscription exactly; the fields are in its order.
        let order = if d[20..] == be[..] {
            ByteOrder::Big
        } else {
            assert_eq!(d[20..], le[..]);
            ByteOrder::Little
        };
        let kind = match order {
            ByteOrder::Big => [0, 0, 0, 1],
            ByteOrder::Little => [1, 0, 0, 0],
        };
        assert_eq!(d[..4], kind);
        assert_eq!(parse_event(d, order), (Published, 60, 61, port, ADDRS[0]));
    }
}

#[test]
fn a_big_report_waits_for_the_window_and_arrives_whole() {
    let mut p = Pair::up();
    let now = p.now;
    let port = p.n[0].open_port();
    let count = 300;
    for i in 0..count {
        p.n[0]
            .bind(now, port, Scope::Cluster, SVC, 1000 + i, 1000 + i)
            .expect("bind");
    }
    p.pump();
    let local = p.subscriber(0, 0);
    let remote = p.subscriber(1, ADDRS[0]);
    let s = sub(
        ByteOrder::Big,
        SVC,
        0,
        u32::MAX,
        WAIT_FOREVER,
        filter::PORTS,
    );
    let now = p.now;
    p.n[0].send_conn(now, local, &s).expect("send");
    p.n[1].send_conn(now, remote, &s).expect("send");
    p.pump();
    // More than a window's worth: the rest waits on the server's side.
    let waiting: usize = p.n[0].topsrv.conns.values().map(|c| c.pending.len()).sum();
    assert!(waiting > 0, "nothing waited for the window");
    for (i, sp) in [(0, local), (1, remote)] {
        let ev = p.events_of(i, sp, ByteOrder::Big);
        let want: Vec<Ev> = (0..count)
            .map(|k| (Published, 1000 + k, 1000 + k, port, ADDRS[0]))
            .collect();
        assert_eq!(ev, want, "subscriber on node {i}");
    }
    assert!(p.n[0].topsrv.conns.values().all(|c| c.pending.is_empty()));
    assert_eq!(p.n[0].topsrv_stats().events_dropped, 0);
}

#[test]
fn a_subscriber_that_never_reads_is_cut_off() {
    let mut p = Pair::up();
    p.n[0].topsrv.max_pending = 16;
    let s = p.subscriber(0, 0);
    p.send_sub(
        0,
        s,
        &sub(
            ByteOrder::Big,
            SVC,
            0,
            u32::MAX,
            WAIT_FOREVER,
            filter::PORTS,
        ),
    );
    let now = p.now;
    let port = p.n[0].open_port();
    for i in 0..300 {
        p.n[0]
            .bind(now, port, Scope::Cluster, SVC, i, i)
            .expect("bind");
    }
    p.pump();
    let st = *p.n[0].topsrv_stats();
    assert_eq!(st.overflow_closed, 1);
    assert!(st.events_dropped > 0);
    assert_eq!(p.n[0].topology_server().len(), 0);
    assert!(p.events[0].contains(&SocketEvent::Disconnected {
        port: s,
        error: ErrorCode::ConnShutdown,
    }));
    // What was sent before the cut is still readable, then end of file.
    let (data, end) = p.read(0, s);
    assert_eq!(data.len() as u64, st.events_sent);
    assert_eq!(end, Some(ErrorCode::ConnShutdown));
}

#[test]
fn a_subscription_before_the_address_sees_the_node_come_up() {
    // Node-local connections work before the node has an address; the node's own
    // {0, addr, addr} appears when the address is committed.
    let mut n = node(0, Some(ADDRS[0]));
    let now = Instant::ZERO;
    let s = n.open_socket(SocketKind::Seqpacket);
    let to = Addr::Service {
        service_type: TIPC_TOP_SRV,
        instance: 1,
        domain: 0,
    };
    n.connect(
        now,
        s,
        to,
        SocketKind::Seqpacket.default_opts(),
        &[],
        CONN_TIMEOUT_DEFAULT,
    )
    .expect("connect");
    assert!(matches!(n.conn_state(s), Some(ConnState::Connected { .. })));
    // An implied connect carrying the subscription works too.
    let s2 = n.open_socket(SocketKind::Seqpacket);
    let x = sub(
        ByteOrder::Big,
        TIPC_NODE_STATE,
        0,
        u32::MAX,
        WAIT_FOREVER,
        filter::PORTS,
    );
    n.send(now, s2, to, SocketKind::Seqpacket.default_opts(), &x)
        .expect("implied connect");
    n.send_conn(now, s, &x).expect("subscribe");
    assert_eq!(n.topology_server().len(), 2);
    n.add_bearer(now, bearer(0)).expect("bearer");
    for port in [s, s2] {
        let r = n.recv(port).expect("event");
        assert_eq!(
            parse_event(&r.data, ByteOrder::Big),
            (Published, ADDRS[0], ADDRS[0], 0, ADDRS[0])
        );
        assert_eq!(n.recv(port), None);
    }
    while let Some(e) = n.poll_socket_event() {
        assert!(!n.is_internal_port(e.port()), "{e:?}");
    }
}

/// Reads the events waiting on `port` of a simulated node: (kind, found_lower) pairs.
fn sim_events(n: &mut Node, port: u32) -> Vec<(EventKind, u32)> {
    let mut v = Vec::new();
    while let Some(r) = n.recv(port) {
        assert_eq!(r.error, None, "connection ended");
        let e = parse_event(&r.data, ByteOrder::Big);
        v.push((e.0, e.1));
    }
    v
}

#[test]
fn remote_node_tracking_over_a_lossy_network() {
    use crate::sim::{Network, NodeIdx, SegmentConfig, run_seeds, seeds};
    run_seeds("topsrv_remote_node_tracking", seeds(4), |seed| {
        let mut net: Network<Node> = Network::new(seed);
        let seg = net.add_segment(SegmentConfig::default());
        let idx: Vec<NodeIdx> = (0..3)
            .map(|i| {
                let id: NodeId = format!("topsim{i}").parse().expect("id");
                let x = net.add_node(Node::new(NodeConfig::new(id, seed ^ (i as u64 + 1))));
                net.attach(x, BearerId(0), seg, mac(i));
                x
            })
            .collect();
        let now = net.now();
        for (i, &x) in idx.iter().enumerate() {
            net.node_mut(x).add_bearer(now, bearer(i)).expect("bearer");
        }
        let all = idx.clone();
        let mesh = net.run_until_cond(Duration::from_secs(10), |net| {
            all.iter().all(|&i| net.node(i).peers_up() == 2)
        });
        assert!(mesh, "no mesh (seed {seed})");
        net.set_segment_config(
            seg,
            SegmentConfig {
                loss: 0.10,
                duplicate: 0.05,
                reorder: 0.10,
                reorder_delay: Duration::from_micros(300),
                ..SegmentConfig::default()
            },
        );
        let addrs: Vec<u32> = idx.iter().map(|&i| net.node(i).addr()).collect();
        // Node 1 subscribes to node 0's server, with a SYN+ carrying the subscription.
        let (n0, n1) = (idx[0], idx[1]);
        let now = net.now();
        let to = Addr::Service {
            service_type: TIPC_TOP_SRV,
            instance: 1,
            domain: addrs[0],
        };
        let s = sub(
            ByteOrder::Big,
            TIPC_NODE_STATE,
            0,
            u32::MAX,
            WAIT_FOREVER,
            filter::PORTS,
        );
        let node1 = net.node_mut(n1);
        let port = node1.open_socket(SocketKind::Seqpacket);
        node1
            .send(now, port, to, SocketKind::Seqpacket.default_opts(), &s)
            .expect("implied connect");
        let ok = net.run_until_cond(Duration::from_secs(5), |net| {
            matches!(
                net.node(n1).conn_state(port),
                Some(ConnState::Connected { .. })
            )
        });
        assert!(ok, "not connected (seed {seed})");
        // A lost tail packet waits for the next link STATE exchange: allow a few.
        net.run_until_cond(Duration::from_secs(5), |net| net.node(n1).queued(port) >= 3);
        net.run_for(Duration::from_millis(100));
        let mut ev = sim_events(net.node_mut(n1), port);
        ev.sort_by_key(|e| e.1);
        let mut want: Vec<(EventKind, u32)> = addrs.iter().map(|&a| (Published, a)).collect();
        want.sort_by_key(|e| e.1);
        assert_eq!(ev, want, "seed {seed}");
        assert_eq!(net.node(n0).topology_server().len(), 1);

        // Node 2 leaves: node 0 tells node 1.
        net.isolate(idx[2]);
        let a2 = addrs[2];
        let gone = net.run_until_cond(Duration::from_secs(5), |net| !net.node(n0).peer_up(a2));
        assert!(gone, "seed {seed}");
        net.run_until_cond(Duration::from_secs(5), |net| net.node(n1).queued(port) >= 1);
        net.run_for(Duration::from_millis(100));
        assert_eq!(
            sim_events(net.node_mut(n1), port),
            [(Withdrawn, a2)],
            "seed {seed}"
        );
    });
}
