//! Applications attached to real `utipcd` processes through shared-memory rings, end to end.
//!
//! The daemons run in network namespaces (Ethernet or UDP bearers over veth pairs or a bridge);
//! the test process attaches to them through their run directories (Unix sockets are not bound
//! to a network namespace), so every socket call here crosses the attach socket, the memfd
//! rings and the daemon's duty cycle, and cluster traffic crosses real links.
//!
//! Needs root (CAP_NET_ADMIN, CAP_NET_RAW) and iproute2; without them each test prints why and
//! passes, unless `UTIPC_REQUIRE_NETNS=1`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use utipc_shm_api::records::Status;
use utipc_shm_api::topology::{EventKind, Filter, Topology};
use utipc_shm_api::{
    Client, ClientOptions, Error, ErrorCode, IdleMode, Scope, ServiceAddr, ServiceRange, Socket,
    SocketAddr, SocketKind,
};
use utipc_testkit::{DaemonProc, Lan, Netns, TempDir, netns_available, pair, skip_or_fail};

const PREFIX: &str = "utat-";
const LONG: Duration = Duration::from_secs(10);

/// Starts utipcd in `ns` with run directory `dir` and waits for its address.
fn daemon(name: &str, ns: &Netns, dir: &Path, bearer: &str) -> DaemonProc {
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_utipcd"));
    cmd.args(["--id", name, "--bearer", bearer, "--idle", "backoff", "-v"])
        .arg("--run-dir")
        .arg(dir);
    let mut d = DaemonProc::spawn(name, cmd);
    d.wait_for(" committed", LONG);
    d
}

fn attach(dir: &Path) -> Client {
    Client::attach_with(&ClientOptions {
        run_dir: Some(dir.to_owned()),
        idle: IdleMode::Backoff,
    })
    .unwrap_or_else(|e| panic!("attach to {}: {e}", dir.display()))
}

fn recv(sock: &Socket) -> utipc_shm_api::Message {
    sock.set_read_timeout(Some(LONG));
    sock.recv()
        .unwrap_or_else(|e| panic!("recv on {}: {e}", sock.local_addr()))
}

fn setup_one(test: &str) -> Option<(Netns, Netns, TempDir, DaemonProc)> {
    if !netns_available(test) {
        return None;
    }
    let (a, b) = match pair(PREFIX) {
        Ok(p) => p,
        Err(why) => {
            skip_or_fail(test, &why);
            return None;
        }
    };
    let tmp = TempDir::new(PREFIX, test);
    let d = daemon("utat1", &a, tmp.path(), "udp:veth0");
    Some((a, b, tmp, d))
}

#[test]
fn datagrams_between_applications_on_one_node() {
    let Some((_a, _b, tmp, _d)) = setup_one("datagrams_one_node") else {
        return;
    };
    let c1 = attach(tmp.path());
    let c2 = attach(tmp.path());
    assert_ne!(c1.node(), 0);

    // Anycast spreads over the bound sockets (round robin).
    let servers: Vec<Socket> = (0..3)
        .map(|_| {
            let s = c2.socket(SocketKind::Rdm).expect("socket");
            s.bind(ServiceRange::single(7001, 1), Scope::Cluster)
                .expect("bind");
            s
        })
        .collect();
    let client = c1.socket(SocketKind::Rdm).expect("socket");
    for i in 0..30u8 {
        client
            .send_to(ServiceAddr::new(7001, 1), &[i; 100])
            .expect("anycast");
    }
    let mut counts = Vec::new();
    for s in &servers {
        s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut n = 0;
        while let Ok(m) = s.recv() {
            assert_eq!(m.from, client.local_addr());
            assert_eq!(
                m.dest,
                utipc_shm_api::DestName::Service(ServiceAddr::new(7001, 1))
            );
            n += 1;
        }
        counts.push(n);
    }
    assert_eq!(counts.iter().sum::<i32>(), 30, "{counts:?}");
    assert!(
        counts.iter().all(|&n| n >= 5),
        "anycast did not spread: {counts:?}"
    );

    // Unicast to a socket address, both ways, and the source address on receive.
    servers[0]
        .send_to(client.local_addr(), b"to-socket")
        .expect("unicast");
    let m = recv(&client);
    assert_eq!(m.data, b"to-socket");
    assert_eq!(m.from, servers[0].local_addr());

    // Multicast to a range reaches every overlapping binding once per socket.
    let m1 = c2.socket(SocketKind::Rdm).expect("socket");
    m1.bind(ServiceRange::new(7002, 0, 10), Scope::Node)
        .expect("bind");
    let m2 = c1.socket(SocketKind::Rdm).expect("socket");
    m2.bind(ServiceRange::new(7002, 5, 20), Scope::Cluster)
        .expect("bind");
    m2.bind(ServiceRange::new(7002, 30, 40), Scope::Cluster)
        .expect("bind");
    client
        .send_to(ServiceRange::new(7002, 8, 35), b"multi")
        .expect("multicast");
    assert_eq!(recv(&m1).data, b"multi");
    assert_eq!(recv(&m2).data, b"multi");
    m2.set_read_timeout(Some(Duration::from_millis(200)));
    assert!(
        matches!(m2.recv(), Err(Error::TimedOut)),
        "one copy per socket"
    );

    // DGRAM sockets and a 66,000-byte message.
    let d1 = c1.socket(SocketKind::Dgram).expect("socket");
    let big: Vec<u8> = (0..66_000u32).map(|i| (i * 7) as u8).collect();
    d1.send_to(servers[1].local_addr(), &big).expect("66000");
    let m = recv(&servers[1]);
    assert_eq!(m.data, big);
    assert!(matches!(
        d1.send_to(servers[1].local_addr(), &vec![0; 66_001]),
        Err(Error::Status(Status::TooLarge))
    ));

    // A message to an unbound name comes back (not droppable) with NO_NAME... when the
    // name is unknown at send time, the sender learns at once.
    let r = c1.socket(SocketKind::Rdm).expect("socket");
    r.set_dest_droppable(false).expect("opt");
    assert!(matches!(
        r.send_to(ServiceAddr::new(7999, 1), b"x"),
        Err(Error::Status(Status::NoRoute))
    ));
    // ... and to a closed socket it is returned with NO_PORT and the data.
    let gone = c2.socket(SocketKind::Rdm).expect("socket");
    let gone_addr = gone.local_addr();
    drop(gone);
    std::thread::sleep(Duration::from_millis(50));
    r.send_to(gone_addr, b"returned-data").expect("send");
    let m = recv(&r);
    assert_eq!(m.error, Some(ErrorCode::NoPort));
    assert_eq!(m.data, b"returned-data");

    // Unbind: the name is gone.
    servers[2]
        .unbind(ServiceRange::single(7001, 1), Scope::Cluster)
        .expect("unbind");
    assert!(matches!(
        servers[2].unbind(ServiceRange::single(7001, 1), Scope::Cluster),
        Err(Error::Status(Status::NoSuchBinding))
    ));
    assert!(matches!(
        servers[2].bind(ServiceRange::single(5, 1), Scope::Cluster),
        Err(Error::Status(Status::BadAddress))
    ));
}

#[test]
fn a_full_receive_queue_returns_overload() {
    let Some((_a, _b, tmp, _d)) = setup_one("overload") else {
        return;
    };
    let c = attach(tmp.path());
    let slow = c.socket(SocketKind::Rdm).expect("socket");
    slow.set_recv_buffer_size(512 * 1024).expect("rcvbuf");
    let sender = c.socket(SocketKind::Rdm).expect("socket");
    sender.set_dest_droppable(false).expect("opt");
    // Nobody reads `slow`: its delivery window, then the node queue (512 KiB at low
    // importance) fill; the rest must come back as OVERLOAD, none lost.
    let total = 2000u32;
    for i in 0..total {
        let mut data = vec![0u8; 1000];
        data[..4].copy_from_slice(&i.to_be_bytes());
        sender.send_to(slow.local_addr(), &data).expect("send");
    }
    let mut returned = BTreeSet::new();
    sender.set_read_timeout(Some(Duration::from_millis(500)));
    while let Ok(m) = sender.recv() {
        assert_eq!(m.error, Some(ErrorCode::Overload));
        let seq = u32::from_be_bytes([m.data[0], m.data[1], m.data[2], m.data[3]]);
        returned.insert(seq);
    }
    let mut delivered = BTreeSet::new();
    slow.set_read_timeout(Some(Duration::from_millis(500)));
    while let Ok(m) = slow.recv() {
        let seq = u32::from_be_bytes([m.data[0], m.data[1], m.data[2], m.data[3]]);
        assert!(delivered.insert(seq), "duplicate {seq}");
    }
    assert!(!returned.is_empty(), "nothing came back as OVERLOAD");
    assert!(returned.is_disjoint(&delivered));
    assert_eq!(
        returned.len() + delivered.len(),
        total as usize,
        "returned {} + delivered {} != sent {total}",
        returned.len(),
        delivered.len()
    );
}

#[test]
fn connections_on_one_node() {
    let Some((_a, _b, tmp, _d)) = setup_one("connections_one_node") else {
        return;
    };
    let c = attach(tmp.path());
    for kind in [SocketKind::Stream, SocketKind::Seqpacket] {
        let inst = if kind == SocketKind::Stream { 1 } else { 2 };
        let l = c.socket(kind).expect("socket");
        l.bind(ServiceRange::single(7100, inst), Scope::Node)
            .expect("bind");
        l.listen().expect("listen");
        let cl = c.socket(kind).expect("socket");
        // Implied connect: the first message carries data (and, as with the kernel, a blocking
        // socket waits until the server accepted).
        let acceptor = std::thread::spawn(move || l.accept().expect("accept"));
        cl.send_to(ServiceAddr::new(7100, inst), b"syn-data")
            .expect("implied connect");
        let (srv, peer) = acceptor.join().expect("acceptor");
        assert_eq!(peer, cl.local_addr());
        assert_eq!(cl.peer_addr(), Some(srv.local_addr()));
        assert_eq!(recv(&srv).data, b"syn-data");
        // Large messages both ways (the writer on its own thread: flow control stops it
        // until the reader reads).
        let big: Vec<u8> = (0..66_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let big = big.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    cl.send(&big).expect("send");
                }
                cl
            })
        };
        for _ in 0..20 {
            srv.send(&big[..1000]).expect("send");
        }
        let mut got = Vec::new();
        srv.set_read_timeout(Some(LONG));
        if kind == SocketKind::Stream {
            let mut buf = vec![0u8; 10_000];
            while got.len() < 20 * big.len() {
                let n = srv.read(&mut buf).expect("read");
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.chunks(big.len()).all(|c| c == big.as_slice()));
        } else {
            for _ in 0..20 {
                assert_eq!(recv(&srv).data, big, "seqpacket keeps boundaries");
            }
        }
        let cl = writer.join().expect("writer");
        for _ in 0..20 {
            assert_eq!(recv(&cl).data.len(), 1000);
        }
        // Orderly shutdown: the peer sees the end.
        cl.shutdown().expect("shutdown");
        srv.set_read_timeout(Some(LONG));
        if kind == SocketKind::Stream {
            let mut buf = [0u8; 16];
            assert_eq!(srv.read(&mut buf).expect("eof"), 0);
        } else {
            assert!(matches!(
                srv.recv(),
                Err(Error::Disconnected(ErrorCode::ConnShutdown))
            ));
        }
    }
    // Refused: nothing listens there.
    let s = c.socket(SocketKind::Seqpacket).expect("socket");
    let r = s.connect(
        SocketAddr {
            port: 12345,
            node: c.node(),
        },
        Duration::from_secs(2),
    );
    assert!(matches!(r, Err(Error::Status(Status::Refused))), "{r:?}");
    // Closing one end aborts the other.
    let l = c.socket(SocketKind::Seqpacket).expect("socket");
    l.bind(ServiceRange::single(7100, 3), Scope::Node)
        .expect("bind");
    l.listen().expect("listen");
    let cl = c.socket(SocketKind::Seqpacket).expect("socket");
    let acceptor = std::thread::spawn(move || l.accept().expect("accept"));
    cl.connect(ServiceAddr::new(7100, 3), LONG)
        .expect("connect");
    let (srv, _) = acceptor.join().expect("acceptor");
    drop(srv);
    cl.set_read_timeout(Some(LONG));
    let r = cl.recv();
    assert!(
        matches!(r, Err(Error::Disconnected(ErrorCode::NoPort))),
        "{r:?}"
    );
}

/// Three daemons on one bridge (Ethernet bearers).
fn three(test: &str) -> Option<(Lan, TempDir, Vec<DaemonProc>)> {
    if !netns_available(test) {
        return None;
    }
    let lan = match Lan::new(PREFIX, 3) {
        Ok(l) => l,
        Err(why) => {
            skip_or_fail(test, &why);
            return None;
        }
    };
    let tmp = TempDir::new(PREFIX, test);
    let mut ds = Vec::new();
    for (i, ns) in lan.nodes.iter().enumerate() {
        let dir = tmp.path().join(format!("n{i}"));
        ds.push(daemon(&format!("utatn{i}"), ns, &dir, "udp:veth0"));
    }
    // Each sees the two others.
    for d in &mut ds {
        d.wait_count(" utipcd: node up ", 2, LONG);
    }
    Some((lan, tmp, ds))
}

fn dir(tmp: &TempDir, i: usize) -> std::path::PathBuf {
    tmp.path().join(format!("n{i}"))
}

#[test]
fn multicast_and_connections_across_three_nodes() {
    let Some((_lan, tmp, _ds)) = three("three_nodes") else {
        return;
    };
    let clients: Vec<Client> = (0..3).map(|i| attach(&dir(&tmp, i))).collect();
    let mut bound = Vec::new();
    for c in &clients {
        for inst in [1, 50] {
            let s = c.socket(SocketKind::Rdm).expect("socket");
            s.bind(ServiceRange::new(7200, inst, inst + 10), Scope::Cluster)
                .expect("bind");
            bound.push(s);
        }
    }
    let sender = clients[0].socket(SocketKind::Rdm).expect("socket");
    // Wait until every node's bindings are known at the sender's node.
    let topo = Topology::connect(&clients[0]).expect("topology");
    topo.subscribe(ServiceRange::new(7200, 0, 100), Filter::PORTS, None, 9)
        .expect("subscribe");
    let mut seen = 0;
    while seen < 6 {
        topo.socket().set_read_timeout(Some(LONG));
        let ev = topo.next_event().expect("event");
        assert_eq!(ev.kind, EventKind::Published);
        seen += 1;
    }
    sender
        .send_to(ServiceRange::new(7200, 0, 100), b"to-all")
        .expect("multicast");
    for s in &bound {
        let m = recv(s);
        assert_eq!(m.data, b"to-all");
        assert_eq!(m.from, sender.local_addr());
    }

    // A stream connection from node 2 to a listener on node 1, 1 MB each way.
    let l = clients[1].socket(SocketKind::Stream).expect("socket");
    l.bind(ServiceRange::single(7201, 1), Scope::Cluster)
        .expect("bind");
    l.listen().expect("listen");
    let cl = clients[2].socket(SocketKind::Stream).expect("socket");
    let acceptor = std::thread::spawn(move || l.accept().expect("accept"));
    let deadline = Instant::now() + LONG;
    loop {
        match cl.connect(ServiceAddr::new(7201, 1), LONG) {
            Ok(()) => break,
            Err(Error::Status(Status::NoRoute)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    let (srv, _) = acceptor.join().expect("acceptor");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            cl.write_all(&data).expect("write");
            cl
        })
    };
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    srv.set_read_timeout(Some(LONG));
    while got.len() < data.len() {
        let n = srv.read(&mut buf).expect("read");
        assert!(n > 0, "early end after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
    let cl = writer.join().expect("writer");
    drop(srv);
    cl.set_read_timeout(Some(LONG));
    let mut b = [0u8; 4];
    assert!(matches!(cl.read(&mut b), Err(Error::Disconnected(_))));
}

#[test]
fn killing_a_client_withdraws_and_aborts_at_once() {
    let Some((_lan, tmp, _ds)) = three("kill_client") else {
        return;
    };
    // The victim: `utipc echo` attached to node 0, bound to {7300,1} and serving streams on
    // {7300,2}.
    let victim = DaemonProc::spawn("victim", {
        let mut c = Command::new(env!("CARGO_BIN_EXE_utipc"));
        c.args([
            "echo",
            "--bind",
            "7300:1",
            "--stream",
            "7300:2",
            "--run-dir",
        ])
        .arg(dir(&tmp, 0));
        c
    });
    let observer = attach(&dir(&tmp, 1));
    let topo = Topology::connect(&observer).expect("topology");
    topo.subscribe(ServiceRange::single(7300, 1), Filter::PORTS, None, 1)
        .expect("subscribe");
    topo.socket().set_read_timeout(Some(LONG));
    let ev = topo.next_event().expect("published");
    assert_eq!(ev.kind, EventKind::Published);
    let conn = observer.socket(SocketKind::Stream).expect("socket");
    let deadline = Instant::now() + LONG;
    loop {
        match conn.connect(ServiceAddr::new(7300, 2), LONG) {
            Ok(()) => break,
            Err(Error::Status(Status::NoRoute)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    conn.write_all(b"hello").expect("write");
    let mut buf = [0u8; 5];
    conn.set_read_timeout(Some(LONG));
    let mut got = 0;
    while got < 5 {
        got += conn.read(&mut buf[got..]).expect("echo");
    }
    assert_eq!(&buf, b"hello");

    let t0 = Instant::now();
    victim.signal(libc::SIGKILL);
    let ev = topo.next_event().expect("withdrawn");
    let withdrawn = t0.elapsed();
    assert_eq!(ev.kind, EventKind::Withdrawn);
    let r = conn.read(&mut buf);
    let aborted = t0.elapsed();
    assert!(
        matches!(r, Err(Error::Disconnected(ErrorCode::NoPort))),
        "{r:?}"
    );
    eprintln!(
        "kill -9 of a client: subscriber on another node saw the withdrawal after {} us, the \
         connected peer the abort after {} us",
        withdrawn.as_micros(),
        aborted.as_micros()
    );
    // Far below the 1.5 s link tolerance: the daemon noticed the death itself, at once (the
    // issue's 10 ms figure is recorded from this line in docs/BENCHMARKS.md).
    assert!(withdrawn < Duration::from_millis(500), "{withdrawn:?}");
    assert!(aborted < Duration::from_millis(500), "{aborted:?}");
}

#[test]
fn a_hostile_client_is_disconnected_and_others_carry_on() {
    let Some((_a, _b, tmp, mut d)) = setup_one("hostile") else {
        return;
    };
    let good = attach(tmp.path());
    let s1 = good.socket(SocketKind::Rdm).expect("socket");
    let s2 = good.socket(SocketKind::Rdm).expect("socket");
    for case in 0..4 {
        // A raw attachment that speaks the handshake, then writes garbage.
        use std::os::fd::AsFd;
        use utipc_shm_api::attach_socket;
        use utipc_shm_api::records::{Hello, PROTOCOL_VERSION};
        use utipc_shm_api::segment::Segment;
        let path = tmp.path().join(attach_socket::ATTACH_SOCKET);
        let ctl = attach_socket::connect(&path).expect("connect");
        attach_socket::send_with_fds(
            ctl.as_fd(),
            &Hello {
                version: PROTOCOL_VERSION,
            }
            .encode(),
            &[],
        )
        .expect("hello");
        assert!(attach_socket::wait_readable(ctl.as_fd(), Some(LONG)).expect("poll"));
        let mut buf = [0u8; 256];
        let (_, mut fds) = attach_socket::recv_with_fds(ctl.as_fd(), &mut buf, 2).expect("welcome");
        assert_eq!(fds.len(), 2);
        let bell = utipc_shm_api::doorbell::Doorbell::from_fd(fds.remove(1)).expect("bell");
        let seg_fd = fds.remove(0);
        let raw = seg_fd.try_clone().expect("dup");
        let seg = Segment::map(seg_fd).expect("map");
        let mut p = seg.c2d_producer().expect("producer");
        match case {
            // An unknown record type.
            0 => p.try_write(999, &[&[0u8; 16]]).expect("write"),
            // A known type with a wrong length.
            1 => p.try_write(1, &[&[0u8; 3]]).expect("write"),
            // An out-of-range field (socket kind 9).
            2 => p
                .try_write(1, &[&1u32.to_le_bytes(), &9u32.to_le_bytes()])
                .expect("write"),
            // Scribbling over the ring itself: a tail far beyond the head, as a hostile
            // client can write anything into its own mapping.
            _ => {
                let l = seg.layout();
                let at = l.c2d.offset + l.c2d.capacity + utipc_shm_api::ring::trailer::TAIL;
                let file = std::fs::File::from(raw);
                use std::os::unix::fs::FileExt;
                file.write_all_at(&(1u64 << 40).to_ne_bytes(), at as u64)
                    .expect("scribble");
            }
        }
        bell.ring();
        // The daemon closes the attachment.
        let deadline = Instant::now() + LONG;
        loop {
            assert!(
                Instant::now() < deadline,
                "case {case}: the daemon did not hang up"
            );
            let _ = attach_socket::wait_readable(ctl.as_fd(), Some(Duration::from_millis(100)));
            if attach_socket::drain_wakes(ctl.as_fd()).expect("recv")
                == attach_socket::Drained::Closed
            {
                break;
            }
        }
        d.wait_for("disconnected:", LONG);
        // The good client still works.
        s1.send_to(s2.local_addr(), b"still here").expect("send");
        assert_eq!(recv(&s2).data, b"still here");
    }
}

#[test]
fn non_blocking_sockets_with_the_readiness_fd() {
    let Some((_a, _b, tmp, _d)) = setup_one("nonblocking") else {
        return;
    };
    let rx_client = Client::attach_with(&ClientOptions {
        run_dir: Some(tmp.path().to_owned()),
        idle: IdleMode::Block,
    })
    .expect("attach");
    let tx_client = attach(tmp.path());
    let rx = rx_client.socket(SocketKind::Rdm).expect("socket");
    rx.set_nonblocking(true);
    assert!(matches!(rx.recv(), Err(Error::WouldBlock)));
    let tx = tx_client.socket(SocketKind::Rdm).expect("socket");
    let sender = std::thread::spawn({
        let to = rx.local_addr();
        move || {
            for i in 0..100u32 {
                tx.send_to(to, &i.to_be_bytes()).expect("send");
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            tx
        }
    });
    // An event loop as an application with epoll/mio/tokio would write it: sleep on the
    // readiness descriptor, then drain with non-blocking calls until WouldBlock.
    let mut got = Vec::new();
    let deadline = Instant::now() + LONG;
    while got.len() < 100 {
        assert!(Instant::now() < deadline, "only {} messages", got.len());
        if rx_client.prepare_wait().expect("prepare") {
            let mut p = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&rx_client.readiness_fd()),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&raw mut p, 1, 1000) };
        }
        loop {
            match rx.recv() {
                Ok(m) => got.push(u32::from_be_bytes([
                    m.data[0], m.data[1], m.data[2], m.data[3],
                ])),
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>(), "in order, exactly once");
    drop(sender.join().expect("sender"));
}

#[test]
fn losing_the_peer_node_aborts_its_connections() {
    if !netns_available("node_loss") {
        return;
    }
    let (a, b) = match pair(PREFIX) {
        Ok(p) => p,
        Err(why) => return skip_or_fail("node_loss", &why),
    };
    let tmp = TempDir::new(PREFIX, "node_loss");
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a_proc = daemon("utatla", &a, &da, "eth:veth0");
    let mut b_proc = daemon("utatlb", &b, &db, "eth:veth0");
    a_proc.wait_for(" utipcd: link up ", LONG);
    b_proc.wait_for(" utipcd: link up ", LONG);
    let ca = attach(&da);
    let cb = attach(&db);
    let l = cb.socket(SocketKind::Seqpacket).expect("socket");
    l.bind(ServiceRange::single(7400, 1), Scope::Cluster)
        .expect("bind");
    l.listen().expect("listen");
    let acceptor = std::thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        (l, s)
    });
    let conn = ca.socket(SocketKind::Seqpacket).expect("socket");
    let deadline = Instant::now() + LONG;
    loop {
        match conn.connect(ServiceAddr::new(7400, 1), LONG) {
            Ok(()) => break,
            Err(Error::Status(Status::NoRoute)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    let (_l, _srv) = acceptor.join().expect("acceptor");
    let t0 = Instant::now();
    b_proc.signal(libc::SIGKILL);
    conn.set_read_timeout(Some(LONG));
    let r = conn.recv();
    let took = t0.elapsed();
    assert!(
        matches!(r, Err(Error::Disconnected(ErrorCode::NoNode))),
        "{r:?}"
    );
    eprintln!(
        "peer utipcd killed: the connection aborted with NO_NODE after {} ms (link tolerance \
         1500 ms)",
        took.as_millis()
    );
    drop(cb);
}

/// Two threads of one client wait at once: one for a message that never comes, one for the
/// replies of a ping-pong. Whichever thread sleeps on the attach socket may drain the other's
/// data; the other must be woken at once, not at its next timed re-check (20 ms).
#[test]
fn threads_of_one_client_wake_each_other() {
    let Some((_a, _b, tmp, _d)) = setup_one("threads_wake") else {
        return;
    };
    let server = Client::attach_with(&ClientOptions {
        run_dir: Some(tmp.path().to_owned()),
        idle: IdleMode::Block,
    })
    .expect("attach");
    let idle_sock = server.socket(SocketKind::Rdm).expect("socket");
    let echo = server.socket(SocketKind::Rdm).expect("socket");
    let echo_addr = echo.local_addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle_thread = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            idle_sock.set_read_timeout(Some(Duration::from_millis(100)));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = idle_sock.recv();
            }
        })
    };
    let echo_thread = std::thread::spawn(move || {
        echo.set_read_timeout(Some(LONG));
        for _ in 0..50 {
            let m = echo.recv().expect("echo recv");
            echo.send_to(m.from, &m.data).expect("echo send");
        }
    });
    let pinger = attach(tmp.path());
    let p = pinger.socket(SocketKind::Rdm).expect("socket");
    p.set_read_timeout(Some(LONG));
    // Let the idle thread fall asleep first.
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    for i in 0..50u32 {
        p.send_to(echo_addr, &i.to_be_bytes()).expect("send");
        assert_eq!(p.recv().expect("reply").data, i.to_be_bytes());
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    echo_thread.join().expect("echo");
    idle_thread.join().expect("idle");
    eprintln!(
        "50 round trips with a second waiting thread: {} ms",
        took.as_millis()
    );
    // Missed wake-ups cost up to 20 ms each (about a second for 50); woken at once, the 50
    // round trips take the 50 ms of sleeps plus a little. The bound is generous on purpose.
    assert!(took < Duration::from_millis(600), "{took:?}");
}

/// Embedded mode: a whole node inside this process (in namespace a) with the same client
/// API, talking to an application on a utipcd (namespace b); node and link tracking through
/// the embedded node's topology server see the daemon's node and link come and go.
#[test]
fn embedded_node_with_the_same_api() {
    if !netns_available("embedded") {
        return;
    }
    let (a, b) = match pair(PREFIX) {
        Ok(p) => p,
        Err(why) => return skip_or_fail("embedded", &why),
    };
    let tmp = TempDir::new(PREFIX, "embedded");
    let db = tmp.path().join("b");
    let b_proc = daemon("utatemb", &b, &db, "udp:veth0");
    let server = attach(&db);
    let echo = server.socket(SocketKind::Rdm).expect("socket");
    echo.bind(ServiceRange::single(7500, 1), Scope::Cluster)
        .expect("bind");
    let echo_thread = std::thread::spawn(move || {
        echo.set_read_timeout(Some(LONG));
        for _ in 0..10 {
            let m = echo.recv().expect("echo recv");
            echo.send_to(m.from, &m.data).expect("echo send");
        }
        echo
    });
    let b_addr = server.node();
    let (node_events, link_events) = a.run(move || {
        let mut opts = utipc_control::config::NodeOptions::default();
        opts.bearers
            .push(utipc_control::config::BearerSpec::parse("udp:veth0").expect("bearer"));
        opts.id = Some("utatemba".parse().expect("id"));
        let node = utipc_control::embedded::EmbeddedNode::start(&opts, IdleMode::Backoff)
            .expect("embedded node");
        let c = node.client().clone();
        let nodes = Topology::connect(&c).expect("topology");
        nodes
            .subscribe(ServiceRange::new(0, 0, u32::MAX), Filter::PORTS, None, 0)
            .expect("subscribe nodes");
        let links = Topology::connect(&c).expect("topology");
        links
            .subscribe(ServiceRange::new(2, 0, u32::MAX), Filter::PORTS, None, 2)
            .expect("subscribe links");
        let s = c.socket(SocketKind::Rdm).expect("socket");
        s.set_read_timeout(Some(LONG));
        let deadline = Instant::now() + LONG;
        for i in 0..10u32 {
            loop {
                match s.send_to(ServiceAddr::new(7500, 1), &i.to_be_bytes()) {
                    Ok(()) => break,
                    Err(Error::Status(Status::NoRoute | Status::NotReady))
                        if Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            assert_eq!(s.recv().expect("echo").data, i.to_be_bytes());
        }
        // Collect node/link events: the daemon's node and the link appear...
        let mut n_ev = Vec::new();
        let mut l_ev = Vec::new();
        for (t, v) in [(&nodes, &mut n_ev), (&links, &mut l_ev)] {
            t.socket()
                .set_read_timeout(Some(Duration::from_millis(300)));
            while let Ok(e) = t.next_event() {
                v.push((e.kind, e.found_lower));
            }
        }
        // ... and go when the daemon is killed.
        b_proc.signal(libc::SIGKILL);
        for (t, v) in [(&nodes, &mut n_ev), (&links, &mut l_ev)] {
            t.socket().set_read_timeout(Some(LONG));
            let e = t.next_event().expect("withdrawal");
            v.push((e.kind, e.found_lower));
        }
        node.stop();
        (n_ev, l_ev)
    });
    let _ = echo_thread.join();
    assert!(
        node_events.contains(&(EventKind::Published, b_addr)),
        "{node_events:?}"
    );
    assert_eq!(
        node_events.last(),
        Some(&(EventKind::Withdrawn, b_addr)),
        "{node_events:?}"
    );
    assert!(
        link_events.contains(&(EventKind::Published, b_addr)),
        "{link_events:?}"
    );
    assert_eq!(
        link_events.last(),
        Some(&(EventKind::Withdrawn, b_addr)),
        "{link_events:?}"
    );
}

/// Subscription timeout and cancel through the client API; the SERVICE filter reports a
/// range's first binding only.
#[test]
fn subscription_timeout_cancel_and_service_filter() {
    let Some((_a, _b, tmp, _d)) = setup_one("sub_timeout") else {
        return;
    };
    let c = attach(tmp.path());
    let topo = Topology::connect(&c).expect("topology");
    topo.socket().set_read_timeout(Some(LONG));
    // SERVICE: two sockets bound to the same range give one event.
    let r = ServiceRange::new(7600, 1, 1);
    topo.subscribe(r, Filter::SERVICE, None, 1)
        .expect("subscribe");
    let s1 = c.socket(SocketKind::Rdm).expect("socket");
    let s2 = c.socket(SocketKind::Rdm).expect("socket");
    s1.bind(r, Scope::Cluster).expect("bind");
    s2.bind(r, Scope::Cluster).expect("bind");
    let e = topo.next_event().expect("event");
    assert_eq!((e.kind, e.handle), (EventKind::Published, 1));
    // Cancelled: no event for a later binding of its range.
    topo.cancel(r, Filter::SERVICE, None, 1).expect("cancel");
    // A timeout: TIMEOUT after ~100 ms with the subscribed range and port 0.
    let t = ServiceRange::new(7601, 0, 9);
    let t0 = Instant::now();
    topo.subscribe(t, Filter::PORTS, Some(Duration::from_millis(100)), 2)
        .expect("subscribe");
    drop(s1);
    drop(s2);
    let e = topo.next_event().expect("timeout");
    assert_eq!(e.kind, EventKind::Timeout, "{e:?}");
    assert_eq!((e.found_lower, e.found_upper, e.port.port), (0, 9, 0));
    assert_eq!(e.handle, 2);
    assert!(t0.elapsed() >= Duration::from_millis(100));
}
