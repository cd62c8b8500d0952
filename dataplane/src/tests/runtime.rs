//! Two utipc nodes in two namespaces, each a [`NodeRuntime`] on its own thread, over a real
//! veth pair: discovery, link setup, name distribution and datagrams (up to 66,000 bytes)
//! through the kernel's UDP and AF_PACKET paths.

use std::net::IpAddr;
use std::sync::mpsc;
use std::time::Duration;

use utipc_proto::addr::NodeId;
use utipc_proto::name_table::Scope;
use utipc_proto::node::{Addr, Node, NodeConfig, SendOpts};

use super::netns::{A4, B4, VETH, available, veth_pair};
use crate::bearer::Bearer;
use crate::bearer::packet::PacketBearer;
use crate::bearer::udp::{UdpBearer, UdpBearerConfig};
use crate::runtime::NodeRuntime;

const SVC: u32 = 18888;
const TOL: Duration = Duration::from_millis(1500);

fn runtime(name: &str, seed: u64) -> NodeRuntime {
    let id: NodeId = name.parse().expect("id");
    NodeRuntime::new(Node::new(NodeConfig::new(id, seed)))
}

fn open(kind: &str, local: &str) -> Box<dyn Bearer + Send> {
    match kind {
        "udp" => {
            let ip: IpAddr = local.parse().expect("ip");
            Box::new(UdpBearer::open(UdpBearerConfig::new(ip, 4711)).expect("udp bearer"))
        }
        _ => Box::new(PacketBearer::open(VETH).expect("packet bearer")),
    }
}

/// Node B binds {18888,17} and echoes; node A sends datagrams and checks every echo.
fn exchange(kind: &'static str) {
    let pair = veth_pair(None, None);
    let (tx_ready, rx_ready) = mpsc::channel::<()>();
    let (tx_done, rx_done) = mpsc::channel::<()>();
    let b = pair.b.spawn(move || {
        let mut rt = runtime("rt-b", 2);
        let bearer = open(kind, B4);
        rt.add_bearer(bearer, &format!("{kind}:{VETH}"), VETH, TOL)
            .expect("bearer");
        let up = rt
            .run_until(Duration::from_secs(10), |rt| rt.node().peers_up() == 1)
            .expect("poll");
        assert!(
            up,
            "B: no link: peers {:?} node {:?} rt {:?} bearer {:?}",
            rt.node().peers(),
            rt.node().stats(),
            rt.stats(),
            rt.bearer(utipc_proto::bearer::BearerId(0))
                .map(|b| b.stats().counters)
        );
        let now = rt.now();
        let port = rt.node_mut().open_port();
        rt.node_mut()
            .bind(now, port, Scope::Cluster, SVC, 17, 17)
            .expect("bind");
        rt.flush();
        let _ = tx_ready.send(());
        let mut echoed = 0;
        let mut waited = 0;
        while rx_done.try_recv().is_err() && waited < 3000 {
            rt.poll(Duration::from_millis(10), &[]).expect("poll");
            waited += 1;
            while let Some(m) = rt.node_mut().recv(port) {
                let now = rt.now();
                let to = Addr::Socket {
                    port: m.from.0,
                    node: m.from.1,
                };
                rt.node_mut()
                    .send(now, port, to, SendOpts::default(), &m.data)
                    .expect("echo");
                echoed += 1;
            }
        }
        rt.shutdown();
        echoed
    });
    let a = pair.a.spawn(move || {
        let mut rt = runtime("rt-a", 1);
        let bearer = open(kind, A4);
        rt.add_bearer(bearer, &format!("{kind}:{VETH}"), VETH, TOL)
            .expect("bearer");
        // Keep the node running while B comes up and binds.
        let ready = rt
            .run_until(Duration::from_secs(15), |_| rx_ready.try_recv().is_ok())
            .expect("poll");
        assert!(ready, "A: B never got ready");
        let seen = rt
            .run_until(Duration::from_secs(10), |rt| {
                rt.node().name_table().iter().any(|b| b.service_type == SVC)
            })
            .expect("poll");
        assert!(seen, "A: binding never arrived");
        let src = rt.node_mut().open_port();
        let sizes = [16usize, 1400, 3000, 66_000, 1, 500];
        for (k, &size) in sizes.iter().cycle().take(60).enumerate() {
            let data: Vec<u8> = (0..size).map(|i| (i + k) as u8).collect();
            let now = rt.now();
            let to = Addr::Service {
                service_type: SVC,
                instance: 17,
                domain: 0,
            };
            rt.node_mut()
                .send(now, src, to, SendOpts::default(), &data)
                .expect("send");
            let got = rt
                .run_until(Duration::from_secs(5), |rt| rt.node().queued(src) > 0)
                .expect("poll");
            assert!(got, "A: no echo for message {k} ({size} bytes, {kind})");
            let echo = rt.node_mut().recv(src).expect("queued");
            assert_eq!(echo.data, data, "echo {k} intact");
        }
        let _ = tx_done.send(());
        rt.node().links()
    });
    let links = a.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let echoed = b.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert_eq!(echoed, 60);
    assert_eq!(links.len(), 1);
    drop(pair);
}

#[test]
fn two_runtimes_over_udp() {
    if !available("two_runtimes_over_udp") {
        return;
    }
    exchange("udp");
}

#[test]
fn two_runtimes_over_af_packet() {
    if !available("two_runtimes_over_af_packet") {
        return;
    }
    exchange("eth");
}

#[test]
fn extra_descriptors_are_watched() {
    use std::io::Write;
    use std::os::fd::AsFd;
    let mut rt = runtime("rt-x", 3);
    let (r, mut w) = std::io::pipe().expect("pipe");
    let idle = rt
        .poll(Duration::from_millis(20), &[r.as_fd()])
        .expect("poll");
    assert_eq!(idle, vec![false]);
    w.write_all(b"x").expect("write");
    let ready = rt.poll(Duration::from_secs(1), &[r.as_fd()]).expect("poll");
    assert_eq!(ready, vec![true]);
}
