//! Whole-node tests in the deterministic simulator: discovery and link setup, datagrams of
//! every addressing mode, exactly-once in-order delivery under loss, failure detection, name
//! table convergence, rejection. Every randomised test runs over many seeds and prints the
//! failing one (replay with `UTIPC_SIM_SEED=<seed>`).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::bearer::MediaKind;
use crate::name_table::Scope;
use crate::sim::{Network, NodeIdx, SegmentConfig, SegmentId, run_seeds, seeds};
use crate::wire::data::ErrorCode;

const SVC: u32 = 18888;

fn mac(i: usize) -> MediaAddr {
    MediaAddr::Eth([0x02, 0x00, 0x18, 0x00, 0x00, i as u8 + 1])
}

fn make_node(i: usize, seed: u64) -> Node {
    let id: NodeId = format!("simnode{i}").parse().expect("id");
    Node::new(NodeConfig::new(id, seed ^ ((i as u64 + 1) * 0x9e37)))
}

struct Cluster {
    net: Network<Node>,
    nodes: Vec<NodeIdx>,
    seg: SegmentId,
}

impl Cluster {
    fn new(n: usize, seed: u64, seg_cfg: SegmentConfig) -> Self {
        let mut net = Network::new(seed);
        let seg = net.add_segment(seg_cfg);
        let mut nodes = Vec::new();
        for i in 0..n {
            let idx = net.add_node(make_node(i, seed));
            net.attach(idx, BearerId(0), seg, mac(i));
            nodes.push(idx);
        }
        let now = net.now();
        for (i, &idx) in nodes.iter().enumerate() {
            let cfg = BearerConfig::new("eth:sim0", "sim0", MediaKind::Eth, mac(i));
            net.node_mut(idx).add_bearer(now, cfg).expect("bearer");
        }
        Self { net, nodes, seg }
    }

    fn node(&self, i: usize) -> &Node {
        self.net.node(self.nodes[i])
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        self.net.node_mut(self.nodes[i])
    }

    fn addr(&self, i: usize) -> u32 {
        self.node(i).addr()
    }

    fn full_mesh(&self) -> bool {
        let n = self.nodes.len();
        (0..n).all(|i| self.node(i).peers_up() == n - 1)
    }

    /// Runs until every node sees every other up; panics after `max`.
    fn wait_mesh(&mut self, max: Duration) {
        let n = self.nodes.len();
        let nodes = self.nodes.clone();
        let ok = self.net.run_until_cond(max, |net| {
            nodes.iter().all(|&i| net.node(i).peers_up() == n - 1)
        });
        assert!(ok, "no full mesh after {max:?}: {:?}", self.describe());
    }

    fn describe(&self) -> Vec<(u32, Vec<PeerInfo>)> {
        (0..self.nodes.len())
            .map(|i| (self.addr(i), self.node(i).peers()))
            .collect()
    }

    fn drain_events(&mut self, i: usize) -> Vec<(Instant, Event)> {
        let now = self.net.now();
        let mut v = Vec::new();
        while let Some(e) = self.node_mut(i).poll_event() {
            v.push((now, e));
        }
        v
    }

    fn now(&self) -> Instant {
        self.net.now()
    }
}

#[test]
fn two_nodes_discover_trial_and_link_up() {
    let mut c = Cluster::new(2, 1, SegmentConfig::default());
    c.wait_mesh(Duration::from_secs(5));
    // The trial lasts 1 s, then links come up within a few 375 ms ticks.
    assert!(c.now() >= Instant::from_millis(1000));
    assert!(c.now() < Instant::from_millis(4000), "{:?}", c.now());
    for i in 0..2 {
        assert!(c.node(i).addr_committed());
        let ev = c.drain_events(i);
        assert!(
            ev.iter()
                .any(|(_, e)| matches!(e, Event::AddressCommitted(_)))
        );
        assert!(ev.iter().any(|(_, e)| matches!(e, Event::NodeUp { .. })));
        let links = c.node(i).links();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].mtu, 1500);
        assert!(
            links[0]
                .name
                .starts_with(&format!("simnode{i}:sim0-simnode"))
        );
    }
    // Each node learns the other's {0, addr, addr} binding from the bulk right after.
    c.net.run_for(Duration::from_millis(20));
    let a1 = c.addr(1);
    assert!(
        c.node(0)
            .name_table()
            .iter()
            .any(|b| b.service_type == 0 && b.lower == a1 && b.node == a1)
    );
    // The broadcast receive links were synchronised by the BCAST_PROTOCOL init.
    assert!(c.node(0).bcast_rcv(a1).is_some_and(BcastRcv::is_up));
}

fn bind_service(c: &mut Cluster, i: usize, instance: u32) -> u32 {
    let now = c.now();
    let n = c.node_mut(i);
    let port = n.open_port();
    n.bind(now, port, Scope::Cluster, SVC, instance, instance)
        .expect("bind");
    port
}

fn wait_binding(c: &mut Cluster, at: usize, instance: u32, count: usize) {
    let node = c.nodes[at];
    let ok = c.net.run_until_cond(Duration::from_secs(10), |net| {
        net.node(node)
            .name_table()
            .iter()
            .filter(|b| b.service_type == SVC && b.lower <= instance && instance <= b.upper)
            .count()
            >= count
    });
    assert!(ok, "binding {instance} not seen by node {at}");
}

#[test]
fn datagrams_direct_named_and_multicast() {
    let mut c = Cluster::new(3, 2, SegmentConfig::default());
    c.wait_mesh(Duration::from_secs(5));
    let p1 = bind_service(&mut c, 1, 17);
    let p2 = bind_service(&mut c, 2, 17);
    let p2b = bind_service(&mut c, 2, 50);
    wait_binding(&mut c, 0, 17, 2);
    wait_binding(&mut c, 0, 50, 1);
    let now = c.now();
    let src = c.node_mut(0).open_port();
    // Anycast spreads round-robin over the two sockets bound to instance 17.
    for k in 0..10u8 {
        let to = Addr::Service {
            service_type: SVC,
            instance: 17,
            domain: 0,
        };
        c.node_mut(0)
            .send(now, src, to, SendOpts::default(), &[k; 16])
            .expect("send");
    }
    c.net.run_for(Duration::from_millis(50));
    assert_eq!(c.node(1).queued(p1), 5);
    assert_eq!(c.node(2).queued(p2), 5);
    // Direct to a socket address.
    let a2 = c.addr(2);
    let now = c.now();
    c.node_mut(0)
        .send(
            now,
            src,
            Addr::Socket {
                port: p2b,
                node: a2,
            },
            SendOpts::default(),
            b"direct",
        )
        .expect("send");
    c.net.run_for(Duration::from_millis(50));
    let r = c.node_mut(2).recv(p2b).expect("direct arrived");
    assert_eq!(r.data, b"direct");
    assert_eq!(r.from, (src, c.addr(0)));
    assert_eq!(r.dest, DestName::Socket);
    // Multicast to 0..=100 reaches all three sockets on both nodes, plus a local one.
    let local = bind_service(&mut c, 0, 60);
    let now = c.now();
    let to = Addr::Range {
        service_type: SVC,
        lower: 0,
        upper: 100,
    };
    c.node_mut(0)
        .send(now, src, to, SendOpts::default(), b"mcast")
        .expect("send");
    c.net.run_for(Duration::from_millis(50));
    for (i, port, before) in [(1, p1, 5), (2, p2, 5), (2, p2b, 0), (0, local, 0)] {
        assert_eq!(c.node(i).queued(port), before + 1, "node {i} port {port:x}");
    }
    // 66,000 bytes, fragmented on the link.
    let big: Vec<u8> = (0..66_000u32).map(|x| (x % 251) as u8).collect();
    let now = c.now();
    c.node_mut(0)
        .send(
            now,
            src,
            Addr::Socket {
                port: p2b,
                node: a2,
            },
            SendOpts::default(),
            &big,
        )
        .expect("send");
    c.net.run_for(Duration::from_millis(200));
    let mut got = None;
    while let Some(r) = c.node_mut(2).recv(p2b) {
        got = Some(r);
    }
    assert_eq!(got.expect("big").data, big);
}

#[test]
fn undeliverable_messages_come_back_with_the_kernel_error_codes() {
    let mut c = Cluster::new(2, 3, SegmentConfig::default());
    c.wait_mesh(Duration::from_secs(5));
    let p1 = bind_service(&mut c, 1, 5);
    wait_binding(&mut c, 0, 5, 1);
    let a1 = c.addr(1);
    let src = c.node_mut(0).open_port();
    let strict = SendOpts {
        dest_droppable: false,
        ..SendOpts::default()
    };
    let now = c.now();
    // No such port on node 1.
    c.node_mut(0)
        .send(
            now,
            src,
            Addr::Socket {
                port: 12345,
                node: a1,
            },
            strict,
            b"nobody",
        )
        .expect("send");
    c.net.run_for(Duration::from_millis(50));
    let r = c.node_mut(0).recv(src).expect("returned");
    assert_eq!(r.error, Some(ErrorCode::NoPort));
    assert_eq!(r.data, b"nobody");
    // Overload: a socket with a tiny queue.
    c.node_mut(1).set_rcvbuf(p1, 100).expect("port");
    let now = c.now();
    for _ in 0..3 {
        c.node_mut(0)
            .send(
                now,
                src,
                Addr::Socket { port: p1, node: a1 },
                strict,
                &[7u8; 60],
            )
            .expect("send");
    }
    c.net.run_for(Duration::from_millis(50));
    assert_eq!(c.node(1).queued(p1), 1);
    let mut errors = Vec::new();
    while let Some(r) = c.node_mut(0).recv(src) {
        errors.push(r.error);
    }
    assert_eq!(
        errors,
        vec![Some(ErrorCode::Overload), Some(ErrorCode::Overload)]
    );
    // A destination-droppable message is dropped silently (and counted).
    let now = c.now();
    c.node_mut(0)
        .send(
            now,
            src,
            Addr::Socket {
                port: 999,
                node: a1,
            },
            SendOpts::default(),
            b"x",
        )
        .expect("send");
    c.net.run_for(Duration::from_millis(50));
    assert!(c.node_mut(0).recv(src).is_none());
    assert!(c.node(1).stats().dropped >= 1);
    // A service nobody binds fails at once; nothing goes on the wire.
    let to = Addr::Service {
        service_type: SVC,
        instance: 99,
        domain: 0,
    };
    assert_eq!(
        c.node_mut(0).send(now, src, to, strict, b"x"),
        Err(SendError::NoRoute)
    );
    // Reserved types and bad ranges are refused.
    let p = c.node_mut(0).open_port();
    assert_eq!(
        c.node_mut(0).bind(now, p, Scope::Cluster, 10, 1, 1),
        Err(NodeError::ReservedType)
    );
    assert_eq!(
        c.node_mut(0).bind(now, p, Scope::Cluster, SVC, 5, 1),
        Err(NodeError::BadRange)
    );
}

/// Moves every message queued on `ports[j]` of node j into `got[(sender, j)]`; messages carry
/// their number and their sender's index in their first 8 bytes.
fn drain_numbered(c: &mut Cluster, ports: &[u32], got: &mut BTreeMap<(usize, usize), Vec<u32>>) {
    for (j, &port) in ports.iter().enumerate() {
        while let Some(r) = c.node_mut(j).recv(port) {
            let k = u32::from_be_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]);
            let from = u32::from_be_bytes([r.data[4], r.data[5], r.data[6], r.data[7]]);
            got.entry((from as usize, j)).or_default().push(k);
        }
    }
}

/// Sends `count` numbered messages from every node to every other node's socket and checks
/// that each receiver sees each sender's messages exactly once and in order.
fn exactly_once(seed: u64, nodes: usize, count: u32, faults: SegmentConfig) {
    let mut c = Cluster::new(nodes, seed, SegmentConfig::default());
    c.wait_mesh(Duration::from_secs(10));
    let ports: Vec<u32> = (0..nodes)
        .map(|i| bind_service(&mut c, i, i as u32))
        .collect();
    for i in 0..nodes {
        for j in 0..nodes {
            wait_binding(&mut c, i, j as u32, 1);
        }
    }
    let seg = c.seg;
    c.net.set_segment_config(seg, faults);
    let mut rng = Rng::new(seed);
    let addrs: Vec<u32> = (0..nodes).map(|i| c.addr(i)).collect();
    let mut next: Vec<Vec<u32>> = vec![vec![0; nodes]; nodes];
    let mut got: BTreeMap<(usize, usize), Vec<u32>> = BTreeMap::new();
    let mut rounds = 0;
    while (0..nodes).any(|i| (0..nodes).any(|j| i != j && next[i][j] < count)) {
        rounds += 1;
        assert!(rounds < 20_000, "no progress (seed {seed})");
        let now = c.now();
        for i in 0..nodes {
            for j in 0..nodes {
                if i == j || next[i][j] >= count {
                    continue;
                }
                let k = next[i][j];
                // Mostly small messages (bundling), some fragmented ones.
                let len = match rng.below(20) {
                    0 => 2000 + rng.below(64_000) as usize,
                    1..=3 => 100 + rng.below(1400) as usize,
                    _ => 8 + rng.below(64) as usize,
                };
                let mut data = vec![(k % 256) as u8; len.max(8)];
                data[..4].copy_from_slice(&k.to_be_bytes());
                data[4..8].copy_from_slice(&(i as u32).to_be_bytes());
                let to = Addr::Socket {
                    port: ports[j],
                    node: addrs[j],
                };
                match c
                    .node_mut(i)
                    .send(now, ports[i], to, SendOpts::default(), &data)
                {
                    Ok(()) => next[i][j] += 1,
                    Err(SendError::Congested) => {}
                    Err(e) => panic!("send failed: {e} (seed {seed})"),
                }
            }
        }
        c.net.run_for(Duration::from_millis(2));
        drain_numbered(&mut c, &ports, &mut got);
    }
    // Let the last retransmissions through.
    c.net.run_for(Duration::from_secs(5));
    drain_numbered(&mut c, &ports, &mut got);
    for i in 0..nodes {
        for j in 0..nodes {
            if i == j {
                continue;
            }
            let v = got.get(&(i, j)).cloned().unwrap_or_default();
            let want: Vec<u32> = (0..count).collect();
            assert_eq!(v, want, "{i}->{j} (seed {seed})");
        }
    }
    assert!(c.full_mesh(), "links survived (seed {seed})");
    // The faults really happened and the links really repaired them.
    let st = c.net.segment_stats(seg);
    assert!(st.dropped_loss > 100 && st.duplicated > 50, "{st:?}");
    let retransmitted: u64 = (0..nodes)
        .flat_map(|i| {
            let n = c.node(i);
            addrs
                .iter()
                .filter_map(move |&a| n.link(a, BearerId(0)).map(|l| l.stats().retransmitted))
        })
        .sum();
    assert!(retransmitted > 50, "retransmitted {retransmitted}");
}

fn lossy() -> SegmentConfig {
    SegmentConfig {
        loss: 0.10,
        duplicate: 0.05,
        reorder: 0.10,
        reorder_delay: Duration::from_micros(300),
        jitter: Duration::from_micros(20),
        ..SegmentConfig::default()
    }
}

#[test]
fn exactly_once_in_order_at_ten_percent_loss() {
    run_seeds(
        "exactly_once_in_order_at_ten_percent_loss",
        seeds(12),
        |seed| {
            exactly_once(seed, 3, 400, lossy());
        },
    );
}

#[test]
fn failure_is_detected_within_tolerance_plus_two_intervals() {
    run_seeds("failure_detection", seeds(6), |seed| {
        let mut c = Cluster::new(2, seed, SegmentConfig::default());
        c.wait_mesh(Duration::from_secs(5));
        c.net.run_for(Duration::from_millis(seed % 400));
        c.drain_events(0);
        let t0 = c.now();
        let victim = c.nodes[1];
        c.net.isolate(victim);
        let a1 = c.addr(1);
        let node0 = c.nodes[0];
        let ok = c
            .net
            .run_until_cond(Duration::from_secs(10), |net| !net.node(node0).peer_up(a1));
        assert!(ok, "failure not detected (seed {seed})");
        let took = c.now() - t0;
        // Tolerance 1500 ms, interval 375 ms: the kernel declares failure on the 6th silent
        // tick, tolerance + 1..2 intervals after the last packet heard (spec §5.6).
        assert!(
            took >= Duration::from_millis(1500),
            "{took:?} (seed {seed})"
        );
        assert!(
            took <= Duration::from_millis(1500 + 2 * 375),
            "{took:?} (seed {seed})"
        );
        let ev = c.drain_events(0);
        assert!(
            ev.iter()
                .any(|(_, e)| matches!(e, Event::NodeDown { addr } if *addr == a1))
        );
        // The peer's bindings were purged.
        assert!(!c.node(0).name_table().iter().any(|b| b.node == a1));
    });
}

#[test]
fn name_tables_converge_after_bursts_of_bind_and_unbind() {
    run_seeds("name_table_convergence", seeds(6), |seed| {
        let n = 4;
        let mut c = Cluster::new(n, seed, SegmentConfig::default());
        c.wait_mesh(Duration::from_secs(10));
        let seg = c.seg;
        c.net.set_segment_config(seg, lossy());
        let mut rng = Rng::new(seed);
        let mut bound: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n];
        for _round in 0..30 {
            let now = c.now();
            for (i, mine) in bound.iter_mut().enumerate() {
                for _ in 0..rng.below(6) {
                    if !mine.is_empty() && rng.chance(0.4) {
                        let k = rng.below(mine.len() as u64) as usize;
                        let (port, inst) = mine.swap_remove(k);
                        c.node_mut(i)
                            .unbind(now, port, SVC, inst, inst + 3)
                            .expect("unbind");
                    } else {
                        let inst = rng.below(1000) as u32;
                        let node = c.node_mut(i);
                        let port = node.open_port();
                        node.bind(now, port, Scope::Cluster, SVC, inst, inst + 3)
                            .expect("bind");
                        mine.push((port, inst));
                    }
                }
            }
            c.net.run_for(Duration::from_millis(3));
        }
        c.net.run_for(Duration::from_secs(3));
        type Table = BTreeSet<(u32, u32, u32, u32, u32)>;
        let tables: Vec<Table> = (0..n)
            .map(|i| {
                c.node(i)
                    .name_table()
                    .iter()
                    .filter(|b| b.scope == Scope::Cluster)
                    .map(|b| (b.service_type, b.lower, b.upper, b.port, b.node))
                    .collect()
            })
            .collect();
        let expected: usize = bound.iter().map(Vec::len).sum::<usize>() + n;
        for (i, t) in tables.iter().enumerate() {
            assert_eq!(t.len(), expected, "node {i} (seed {seed})");
            assert_eq!(t, &tables[0], "node {i} differs (seed {seed})");
        }
    });
}

#[test]
fn peer_stopping_takes_the_node_down_at_once() {
    let mut c = Cluster::new(2, 4, SegmentConfig::default());
    c.wait_mesh(Duration::from_secs(5));
    let a0 = c.addr(0);
    let t0 = c.now();
    c.node_mut(1).shutdown(t0);
    let node1 = c.nodes[1];
    let ok = c
        .net
        .run_until_cond(Duration::from_secs(3), |net| !net.node(node1).peer_up(a0));
    assert!(ok);
    let node0 = c.nodes[0];
    let a1 = c.addr(1);
    let ok = c
        .net
        .run_until_cond(Duration::from_secs(3), |net| !net.node(node0).peer_up(a1));
    assert!(ok);
    assert!(
        c.now() - t0 < Duration::from_millis(50),
        "{:?}",
        c.now() - t0
    );
}

#[test]
fn partitions_heal_and_name_tables_reconverge() {
    run_seeds("partition_heal", seeds(4), |seed| {
        let mut c = Cluster::new(4, seed, SegmentConfig::default());
        c.wait_mesh(Duration::from_secs(10));
        let ports: Vec<u32> = (0..4)
            .map(|i| bind_service(&mut c, i, 100 + i as u32))
            .collect();
        c.net.run_for(Duration::from_millis(100));
        // Split {0, 1} from {2, 3}.
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
            let (x, y) = (c.nodes[a], c.nodes[b]);
            c.net.partition(x, y);
        }
        c.net.run_for(Duration::from_secs(4));
        let (a2, a3) = (c.addr(2), c.addr(3));
        for i in [0, 1] {
            assert_eq!(c.node(i).peers_up(), 1, "node {i} (seed {seed})");
            assert!(
                !c.node(i)
                    .name_table()
                    .iter()
                    .any(|b| b.node == a2 || b.node == a3),
                "bindings of the lost side purged (seed {seed})"
            );
        }
        // A binding made during the partition reaches the other side after healing.
        let late = bind_service(&mut c, 2, 999);
        c.net.heal_all();
        // Links left in RESET keep sending RESETs (every 16th tick), so contact returns within
        // seconds even though discovery has slowed down.
        c.wait_mesh(Duration::from_secs(30));
        wait_binding(&mut c, 0, 999, 1);
        for i in 0..4 {
            wait_binding(&mut c, i, 100, 1);
            wait_binding(&mut c, i, 103, 1);
        }
        let r = c.node(0).name_table().iter().any(|b| b.port == late);
        assert!(r, "seed {seed}");
        assert_eq!(ports.len(), 4);
    });
}

#[test]
fn bearer_failure_takes_the_node_down_and_recovery_brings_it_back() {
    let mut c = Cluster::new(2, 9, SegmentConfig::default());
    c.wait_mesh(Duration::from_secs(5));
    let (n0, n1) = (c.nodes[0], c.nodes[1]);
    let a1 = c.addr(1);
    c.net.set_bearer_up(n1, BearerId(0), false);
    let down = c
        .net
        .run_until_cond(Duration::from_secs(5), |net| !net.node(n0).peer_up(a1));
    assert!(down);
    c.net.set_bearer_up(n1, BearerId(0), true);
    c.wait_mesh(Duration::from_secs(30));
    let ev = c.drain_events(0);
    let downs = ev
        .iter()
        .filter(|(_, e)| matches!(e, Event::NodeDown { .. }))
        .count();
    let ups = ev
        .iter()
        .filter(|(_, e)| matches!(e, Event::NodeUp { .. }))
        .count();
    assert_eq!((downs, ups), (1, 2));
    assert!(c.node(0).peer_up(a1) && c.node(1).peer_up(c.addr(0)));
    let _ = n1;
}

#[test]
fn eight_nodes_with_per_link_latency_multicast_to_every_binding() {
    run_seeds("eight_node_multicast", seeds(3), |seed| {
        let n = 8;
        let mut c = Cluster::new(n, seed, SegmentConfig::default());
        // Uneven paths: some pairs are 2 ms apart, one direction is lossy.
        let seg = c.seg;
        for (a, b) in [(0, 5), (2, 7), (3, 4)] {
            let slow = SegmentConfig {
                latency: Duration::from_millis(2),
                ..SegmentConfig::default()
            };
            let (x, y) = (c.nodes[a], c.nodes[b]);
            c.net.set_direction_config(seg, x, y, Some(slow));
            c.net.set_direction_config(seg, y, x, Some(slow));
        }
        let (x, y) = (c.nodes[1], c.nodes[6]);
        c.net.set_direction_config(seg, x, y, Some(lossy()));
        c.wait_mesh(Duration::from_secs(20));
        let ports: Vec<u32> = (0..n)
            .map(|i| bind_service(&mut c, i, 500 + i as u32))
            .collect();
        for i in 0..n {
            wait_binding(&mut c, 0, 500 + i as u32, 1);
        }
        let src = c.node_mut(0).open_port();
        let now = c.now();
        let to = Addr::Range {
            service_type: SVC,
            lower: 500,
            upper: 599,
        };
        for k in 0..20u8 {
            c.node_mut(0)
                .send(now, src, to, SendOpts::default(), &[k; 100])
                .expect("multicast");
        }
        c.net.run_for(Duration::from_secs(2));
        for (i, &p) in ports.iter().enumerate() {
            let mut got = Vec::new();
            while let Some(r) = c.node_mut(i).recv(p) {
                got.push(r.data[0]);
            }
            assert_eq!(got, (0..20).collect::<Vec<u8>>(), "node {i} (seed {seed})");
        }
    });
}

/// A cluster of nodes with the given identities (for address-collision tests).
fn cluster_with_ids(ids: &[NodeId], seed: u64) -> Cluster {
    let mut net = Network::new(seed);
    let seg = net.add_segment(SegmentConfig::default());
    let mut nodes = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let idx = net.add_node(Node::new(NodeConfig::new(*id, seed + i as u64)));
        net.attach(idx, BearerId(0), seg, mac(i));
        nodes.push(idx);
    }
    let now = net.now();
    for (i, &idx) in nodes.iter().enumerate() {
        let cfg = BearerConfig::new("eth:sim0", "sim0", MediaKind::Eth, mac(i));
        net.node_mut(idx).add_bearer(now, cfg).expect("bearer");
    }
    Cluster { net, nodes, seg }
}

#[test]
fn address_trial_resolves_colliding_hashes() {
    // Two different identities whose 32-bit hashes are equal (spec §3.1, §3.2).
    let mut a = [0u8; 16];
    a[3] = 1;
    let mut b = [0u8; 16];
    b[7] = 1;
    let (ia, ib) = (NodeId(a), NodeId(b));
    assert_eq!(ia.hash(), ib.hash());
    run_seeds("trial_collision", seeds(4), |seed| {
        let mut c = cluster_with_ids(&[ia, ib], seed);
        c.wait_mesh(Duration::from_secs(15));
        assert_ne!(c.addr(0), c.addr(1), "seed {seed}");
        assert!(c.node(0).addr_committed() && c.node(1).addr_committed());
    });
    // A late joiner whose hash collides with a committed node takes the suggested address.
    let mut c = cluster_with_ids(&[ia], 7);
    c.net.run_for(Duration::from_secs(3));
    let first = c.addr(0);
    let idx = c.net.add_node(Node::new(NodeConfig::new(ib, 8)));
    let seg = c.seg;
    c.net.attach(idx, BearerId(0), seg, mac(1));
    let now = c.now();
    c.net
        .node_mut(idx)
        .add_bearer(
            now,
            BearerConfig::new("eth:sim0", "sim0", MediaKind::Eth, mac(1)),
        )
        .expect("bearer");
    c.nodes.push(idx);
    c.wait_mesh(Duration::from_secs(10));
    assert_eq!(c.addr(0), first, "the established node keeps its address");
    assert_ne!(c.addr(1), first);
}

#[test]
fn node_scope_bindings_stay_local_and_other_networks_are_ignored() {
    let mut c = Cluster::new(2, 11, SegmentConfig::default());
    c.wait_mesh(Duration::from_secs(5));
    let now = c.now();
    let n0 = c.node_mut(0);
    let local = n0.open_port();
    n0.bind(now, local, Scope::Node, SVC, 42, 42).expect("bind");
    c.net.run_for(Duration::from_millis(100));
    assert!(!c.node(1).name_table().iter().any(|b| b.service_type == SVC));
    // Node 0 itself can reach it; node 1 cannot.
    let src0 = c.node_mut(0).open_port();
    let to = Addr::Service {
        service_type: SVC,
        instance: 42,
        domain: 0,
    };
    let now = c.now();
    c.node_mut(0)
        .send(now, src0, to, SendOpts::default(), b"local")
        .expect("local send");
    assert_eq!(
        c.node_mut(0).recv(local).map(|r| r.data),
        Some(b"local".to_vec())
    );
    let src1 = c.node_mut(1).open_port();
    assert_eq!(
        c.node_mut(1).send(now, src1, to, SendOpts::default(), b"x"),
        Err(SendError::NoRoute)
    );
    // A node of another cluster (net id) on the same segment never links.
    let mut cfg = NodeConfig::new("othernet".parse().expect("id"), 5);
    cfg.net_id = 4712;
    let idx = c.net.add_node(Node::new(cfg));
    let seg = c.seg;
    c.net.attach(idx, BearerId(0), seg, mac(2));
    let now = c.now();
    c.net
        .node_mut(idx)
        .add_bearer(
            now,
            BearerConfig::new("eth:sim0", "sim0", MediaKind::Eth, mac(2)),
        )
        .expect("bearer");
    c.net.run_for(Duration::from_secs(5));
    assert_eq!(c.net.node(idx).peers_up(), 0);
    assert_eq!(c.node(0).peers_up(), 1);
    assert!(c.node(0).stats().foreign_net > 0);
}

#[test]
fn a_binding_withdrawn_in_flight_returns_no_name() {
    let mut c = Cluster::new(
        2,
        12,
        SegmentConfig {
            latency: Duration::from_millis(5),
            ..SegmentConfig::default()
        },
    );
    c.wait_mesh(Duration::from_secs(5));
    let p1 = bind_service(&mut c, 1, 77);
    wait_binding(&mut c, 0, 77, 1);
    let src = c.node_mut(0).open_port();
    let strict = SendOpts {
        dest_droppable: false,
        ..SendOpts::default()
    };
    let now = c.now();
    let to = Addr::Service {
        service_type: SVC,
        instance: 77,
        domain: 0,
    };
    c.node_mut(0)
        .send(now, src, to, strict, b"too late")
        .expect("send");
    // The socket goes away while the message is on the wire (5 ms one way).
    c.node_mut(1).close_port(now, p1).expect("close");
    c.net.run_for(Duration::from_millis(100));
    let r = c.node_mut(0).recv(src).expect("returned");
    assert_eq!(r.error, Some(ErrorCode::NoName));
    assert_eq!(r.data, b"too late");
}
