//! Connection tests (spec §9): setup, data, flow control, teardown, aborts, probing, with two
//! nodes wired directly (deterministic, frames inspectable and alterable), one node alone
//! (node-local connections), and the simulator (loss, reordering, partitions).

use core::time::Duration;

use super::*;
use crate::bearer::MediaKind;
use crate::name_table::Scope;
use crate::sim::{Network, NodeIdx, SegmentConfig, run_seeds, seeds};
use crate::wire::MessageRepr;
use crate::wire::common::{Common, Importance, Internal, User};
use crate::wire::conn_mgr::{ConnMgrRepr, ConnMgrType};
use crate::wire::data::{DataRepr, DataType, ErrorCode};

const SVC: u32 = 18_888;
/// Fixed addresses of the two directly wired nodes (no address trial).
const ADDRS: [u32; 2] = [0x0100_1001, 0x0100_1002];

fn mac(i: usize) -> MediaAddr {
    MediaAddr::Eth([0x02, 0x00, 0x07, 0x00, 0x00, i as u8 + 1])
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn node_with(i: usize, addr: Option<u32>, caps: u16, seed: u64) -> Node {
    let id: NodeId = format!("connnode{i}").parse().expect("id");
    let mut cfg = NodeConfig::new(id, seed ^ ((i as u64 + 1) * 0x51ed));
    cfg.address = addr;
    cfg.capabilities = caps;
    Node::new(cfg)
}

fn bearer(i: usize) -> BearerConfig {
    BearerConfig::new("eth:c0", "c0", MediaKind::Eth, mac(i))
}

/// Pseudo-random bytes: any loss, duplication or reordering shows in a comparison.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn parse_data(msg: &[u8]) -> DataRepr<'_> {
    DataRepr::parse(&Packet::new_checked(msg).expect("valid")).expect("data")
}

fn word(msg: &[u8], i: usize) -> u32 {
    Packet::new_unchecked(msg).word(i)
}

/// Decides whether a frame from node `i` reaches the other node (and may change it).
type Tamper = Box<dyn FnMut(usize, &mut Vec<u8>) -> bool>;

/// Two nodes on one wire: every frame is delivered at once, in order, unless `tamper` says
/// otherwise; timers run on a shared clock.
struct Pair {
    n: [Node; 2],
    now: Instant,
    /// Every frame sent: (sender, bytes).
    frames: Vec<(usize, Vec<u8>)>,
    /// Every socket event per node.
    events: [Vec<SocketEvent>; 2],
    tamper: Tamper,
}

impl Pair {
    fn new(caps: [u16; 2]) -> Self {
        let mut p = Self {
            n: [
                node_with(0, Some(ADDRS[0]), caps[0], 7),
                node_with(1, Some(ADDRS[1]), caps[1], 7),
            ],
            now: Instant::ZERO,
            frames: Vec::new(),
            events: [Vec::new(), Vec::new()],
            tamper: Box::new(|_, _| true),
        };
        for i in 0..2 {
            p.n[i].add_bearer(Instant::ZERO, bearer(i)).expect("bearer");
        }
        p.pump();
        p
    }

    /// Two nodes with a working link.
    fn up() -> Self {
        Self::up_with([UTIPC_CAPABILITIES; 2])
    }

    fn up_with(caps: [u16; 2]) -> Self {
        let mut p = Self::new(caps);
        p.advance(Duration::from_secs(3));
        assert!(p.n[0].peer_up(ADDRS[1]) && p.n[1].peer_up(ADDRS[0]));
        p.frames.clear();
        p
    }

    /// Delivers frames until both nodes are quiet.
    fn pump(&mut self) {
        let Self {
            n,
            now,
            frames,
            events,
            tamper,
        } = self;
        test_wire::pump(
            n,
            *now,
            [mac(0), mac(1)],
            frames,
            events,
            &mut |_, _| {},
            tamper,
        );
    }

    /// Runs both nodes' timers for `d`.
    fn advance(&mut self, d: Duration) {
        let Self {
            n,
            now,
            frames,
            events,
            tamper,
        } = self;
        let end = *now + d;
        test_wire::advance(n, now, end, |n, now| {
            test_wire::pump(
                n,
                now,
                [mac(0), mac(1)],
                frames,
                events,
                &mut |_, _| {},
                tamper,
            );
        });
    }

    fn take_events(&mut self, i: usize) -> Vec<SocketEvent> {
        core::mem::take(&mut self.events[i])
    }

    /// Frames node `i` sent since `mark`.
    fn sent_by(&self, i: usize, mark: usize) -> Vec<Vec<u8>> {
        self.frames[mark..]
            .iter()
            .filter(|(s, _)| *s == i)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// A STREAM or SEQPACKET listener on node `i`, bound to {SVC, inst}.
    fn listener(&mut self, i: usize, kind: SocketKind, inst: u32) -> u32 {
        let now = self.now;
        let l = self.n[i].open_socket(kind);
        self.n[i]
            .bind(now, l, Scope::Cluster, SVC, inst, inst)
            .expect("bind");
        self.n[i].listen(l).expect("listen");
        self.pump();
        l
    }

    /// Node 1 connects to node 0's listener by name; node 0 accepts. (client, server).
    fn connect(&mut self, kind: SocketKind, inst: u32) -> (u32, u32) {
        let l = self.listener(0, kind, inst);
        self.advance(ms(10));
        let c = self.n[1].open_socket(kind);
        let to = Addr::Service {
            service_type: SVC,
            instance: inst,
            domain: 0,
        };
        self.n[1]
            .connect(
                self.now,
                c,
                to,
                kind.default_opts(),
                &[],
                CONN_TIMEOUT_DEFAULT,
            )
            .expect("connect");
        self.pump();
        let a = self.n[0].accept(self.now, l).expect("a connection request");
        self.pump();
        assert_eq!(
            self.n[1].conn_state(c),
            Some(ConnState::Connected {
                peer: (a.port, ADDRS[0])
            })
        );
        (c, a.port)
    }
}

/// Reads everything queued on `port`.
fn read_all(n: &mut Node, port: u32) -> Vec<Received> {
    let mut v = Vec::new();
    while let Some(r) = n.recv(port) {
        v.push(r);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Setup, data, shutdown, on the wire
// ---------------------------------------------------------------------------------------------

/// `eth-07` frame 1 (ktnode2's SYN to {18888, 18}), frame 2 (the kernel's ACK) and frame 587
/// (ktnode2's shutdown): the words the protocol decides.
const K_SYN: [u32; 10] = [
    0x4142_0028,
    0x4010_0000,
    0x0168_009a,
    0x0f11_5c6f,
    0x04b3_59c5,
    0xaabd_d869,
    0x0f11_5c6f,
    0x0f11_5f6f,
    18_888,
    18,
];
const K_ACK_W0: u32 = 0x40c0_0018;

/// A full life across two nodes: connect by name (a NAMED SYN with the kernel's header),
/// accept (an empty 24-byte CONN_MSG), data both ways, shutdown (an empty CRITICAL CONN_MSG
/// with CONN_SHUTDOWN) seen by the peer as end of file after the data.
#[test]
fn connect_accept_exchange_and_shutdown() {
    let mut p = Pair::up();
    let l = p.listener(0, SocketKind::Stream, 18);
    p.advance(ms(10));
    let c = p.n[1].open_socket(SocketKind::Stream);
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Open));
    let mark = p.frames.len();
    let to = Addr::Service {
        service_type: SVC,
        instance: 18,
        domain: 0,
    };
    p.n[1]
        .connect(
            p.now,
            c,
            to,
            SocketKind::Stream.default_opts(),
            &[],
            ms(8000),
        )
        .expect("connect");
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Connecting));
    p.pump();
    // The SYN: word 0 (LOW, 40-byte header, SYN, 40 bytes) and the NAMED type, cluster
    // lookup scope and name are the kernel's; the link words and ports are per session.
    let syn = &p.sent_by(1, mark)[0];
    assert_eq!(word(syn, 0), K_SYN[0]);
    assert_eq!(word(syn, 1) & 0xffff_0000, K_SYN[1]);
    assert_eq!((word(syn, 8), word(syn, 9)), (K_SYN[8], K_SYN[9]));
    let d = parse_data(syn);
    assert_eq!(
        (d.orig_port, d.dest_port, d.orig_node, d.dest_node),
        (c, l, ADDRS[1], ADDRS[0])
    );
    assert_eq!(p.take_events(0), [SocketEvent::Readable(l)]);
    assert_eq!(p.n[0].queued(l), 1);

    let mark = p.frames.len();
    let a = p.n[0].accept(p.now, l).expect("request");
    assert_eq!(p.n[0].socket_kind(a.port), Some(SocketKind::Stream));
    assert_eq!(
        (a.peer, a.dest, a.importance),
        (
            (c, ADDRS[1]),
            DestName::Service {
                service_type: SVC,
                instance: 18
            },
            Importance::Low
        )
    );
    assert_eq!(p.n[0].accept(p.now, l), None, "one request only");
    p.pump();
    let ack = &p.sent_by(0, mark)[0];
    assert_eq!(ack.len(), 24);
    assert_eq!(word(ack, 0), K_ACK_W0);
    assert_eq!(word(ack, 1) & 0xffff_0000, 0);
    assert_eq!((word(ack, 4), word(ack, 5)), (a.port, c));
    assert_eq!(
        p.take_events(1),
        [SocketEvent::Connected {
            port: c,
            peer: (a.port, ADDRS[0])
        }]
    );

    // Data both ways, messages as sent (no Nagle), attributed to the connection's name.
    assert_eq!(p.n[1].send_conn(p.now, c, b"hello-stream"), Ok(12));
    assert_eq!(p.n[0].send_conn(p.now, a.port, b"hello back"), Ok(10));
    p.pump();
    let got = read_all(&mut p.n[0], a.port);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"hello-stream");
    assert_eq!(got[0].from, (c, ADDRS[1]));
    assert_eq!(got[0].dest, a.dest);
    assert_eq!(read_all(&mut p.n[1], c)[0].data, b"hello back");
    assert_eq!(p.take_events(0), [SocketEvent::Readable(a.port)]);

    // Shutdown: data first, then the end.
    assert_eq!(p.n[1].send_conn(p.now, c, b"last words"), Ok(10));
    let mark = p.frames.len();
    p.n[1].shutdown_conn(p.now, c).expect("shutdown");
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Disconnected));
    p.pump();
    let fin = p.sent_by(1, mark);
    let fin = fin.last().expect("the shutdown message");
    // eth-07 frame 587: 46c00018, error CONN_SHUTDOWN in w1.
    assert_eq!(word(fin, 0), 0x46c0_0018);
    assert_eq!(word(fin, 1) & 0xffff_0000, 0x0a00_0000);
    let got = read_all(&mut p.n[0], a.port);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].data.as_slice(), got[0].error),
        (&b"last words"[..], None)
    );
    assert_eq!(
        (got[1].error, got[1].data.len()),
        (Some(ErrorCode::ConnShutdown), 0)
    );
    assert!(p.take_events(0).contains(&SocketEvent::Disconnected {
        port: a.port,
        error: ErrorCode::ConnShutdown
    }));
    assert_eq!(p.n[0].conn_state(a.port), Some(ConnState::Disconnected));
    assert_eq!(
        p.n[0].send_conn(p.now, a.port, b"x"),
        Err(SendError::Disconnected)
    );
    // Closing an ended connection sends nothing.
    let mark = p.frames.len();
    p.n[0].close_port(p.now, a.port).expect("close");
    p.pump();
    assert!(
        p.frames[mark..].iter().all(
            |(_, f)| User::from(Packet::new_unchecked(&f[..]).user_raw()) == User::LinkProtocol
        ),
        "nothing but link traffic"
    );
    assert_eq!(p.n[1].conn_stats().aborts_sent, 1);
}

/// Commands that do not fit the socket's kind or state are refused with a reason.
#[test]
fn commands_check_kind_and_state() {
    let mut p = Pair::up();
    let rdm = p.n[0].open_port();
    assert_eq!(p.n[0].socket_kind(rdm), Some(SocketKind::Rdm));
    assert_eq!(p.n[0].conn_state(rdm), Some(ConnState::Open));
    assert_eq!(p.n[0].listen(rdm), Err(ConnError::NotConnectionOriented));
    assert_eq!(p.n[0].listen(12345), Err(ConnError::NoSuchPort));
    assert_eq!(
        p.n[0].send_conn(p.now, rdm, b"x"),
        Err(SendError::NotConnected)
    );
    let s = p.n[0].open_socket(SocketKind::Seqpacket);
    p.n[0].listen(s).expect("listen");
    assert_eq!(
        p.n[0].listen(s),
        Err(ConnError::WrongState(ConnState::Listening))
    );
    let to = Addr::Socket {
        port: 1,
        node: ADDRS[1],
    };
    let opts = SocketKind::Seqpacket.default_opts();
    assert_eq!(
        p.n[0].connect(p.now, s, to, opts, &[], ms(100)),
        Err(ConnError::WrongState(ConnState::Listening))
    );
    assert_eq!(
        p.n[0].send_conn(p.now, s, b"x"),
        Err(SendError::NotConnected)
    );
    let c = p.n[0].open_socket(SocketKind::Seqpacket);
    let range = Addr::Range {
        service_type: SVC,
        lower: 0,
        upper: 9,
    };
    assert_eq!(
        p.n[0].connect(p.now, c, range, opts, &[], ms(100)),
        Err(ConnError::BadAddress)
    );
    let unbound = Addr::Service {
        service_type: SVC,
        instance: 99,
        domain: 0,
    };
    assert_eq!(
        p.n[0].connect(p.now, c, unbound, opts, &[], ms(100)),
        Err(ConnError::NoRoute)
    );
    let nowhere = Addr::Socket {
        port: 1,
        node: 0x0999_0999,
    };
    assert_eq!(
        p.n[0].connect(p.now, c, nowhere, opts, &[], ms(100)),
        Err(ConnError::Unreachable)
    );
    assert_eq!(
        p.n[0].connect(p.now, c, to, opts, &[0; 66_001], ms(100)),
        Err(ConnError::TooLarge)
    );
    assert_eq!(
        p.n[0].conn_state(c),
        Some(ConnState::Open),
        "nothing happened"
    );
    assert_eq!(
        p.n[0].shutdown_conn(p.now, c),
        Err(ConnError::WrongState(ConnState::Open))
    );
    assert_eq!(p.n[0].accept(p.now, c), None);
    // Every error says what to do.
    for e in [
        ConnError::WrongState(ConnState::Connecting),
        ConnError::Refused(ErrorCode::NoPort),
        ConnError::Timeout,
    ] {
        assert!(e.to_string().len() > 20, "{e}");
    }
}

/// A connection inside one node: no bearer traffic, same semantics (spec §9.2: a node-local
/// peer's MSS is 66,060, so messages are never fragmented), flow control with CONN_ACKs.
#[test]
fn node_local_connection() {
    let mut n = node_with(0, Some(ADDRS[0]), UTIPC_CAPABILITIES, 3);
    let now = Instant::ZERO;
    n.add_bearer(now, bearer(0)).expect("bearer");
    while n.poll_transmit().is_some() {}
    let l = n.open_socket(SocketKind::Seqpacket);
    n.bind(now, l, Scope::Node, SVC, 5, 5).expect("bind");
    n.listen(l).expect("listen");
    let c = n.open_socket(SocketKind::Seqpacket);
    let to = Addr::Service {
        service_type: SVC,
        instance: 5,
        domain: 0,
    };
    n.connect(
        now,
        c,
        to,
        SocketKind::Seqpacket.default_opts(),
        b"syn+data",
        ms(100),
    )
    .expect("connect");
    assert_eq!(n.poll_socket_event(), Some(SocketEvent::Readable(l)));
    let a = n.accept(now, l).expect("request");
    assert_eq!(
        n.conn_state(c),
        Some(ConnState::Connected {
            peer: (a.port, ADDRS[0])
        })
    );
    let first = n.recv(a.port).expect("the SYN+ data");
    assert_eq!(first.data, b"syn+data");
    // 1 MiB each way in 66,000-byte messages, the reader keeping up.
    let msg = pattern(66_000, 9);
    for _ in 0..16 {
        assert_eq!(n.send_conn(now, c, &msg), Ok(66_000));
        assert_eq!(n.send_conn(now, a.port, &msg), Ok(66_000));
        assert_eq!(n.recv(a.port).expect("data").data, msg);
        assert_eq!(n.recv(c).expect("data").data, msg);
    }
    let info = n.conn_info(c).expect("info");
    assert!(info.block_flowctl);
    assert_eq!(info.snd_win, 512, "a CONN_ACK advertised the window");
    assert!(n.conn_stats().acks_sent >= 2);
    // Close: the peer reads a reset (NO_PORT).
    n.close_port(now, a.port).expect("close");
    let end = n.recv(c).expect("abort marker");
    assert_eq!(end.error, Some(ErrorCode::NoPort));
    assert_eq!(n.conn_state(c), Some(ConnState::Disconnected));
    assert!(n.poll_transmit().is_none_or(|t| t.dest == Dest::Broadcast));
}

/// Implied connect: `send` on an open STREAM socket sends the data in the SYN ("SYN+");
/// the accepted socket reads it first; it counts in both windows.
#[test]
fn implied_connect_carries_data() {
    let mut p = Pair::up();
    let l = p.listener(0, SocketKind::Stream, 1);
    p.advance(ms(10));
    let c = p.n[1].open_socket(SocketKind::Stream);
    let to = Addr::Service {
        service_type: SVC,
        instance: 1,
        domain: 0,
    };
    let data = pattern(3000, 1);
    let mark = p.frames.len();
    p.n[1]
        .send(p.now, c, to, SocketKind::Stream.default_opts(), &data)
        .expect("implied connect");
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Connecting));
    // 40-byte header + 3000 bytes = 3 blocks, before any answer.
    assert_eq!(p.n[1].conn_info(c).expect("info").snt_unacked, 3);
    p.pump();
    let syn = p.sent_by(1, mark);
    assert_eq!(
        syn.len(),
        3,
        "a 3,040-byte SYN+ in link fragments: {:?}",
        syn.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let a = p.n[0].accept(p.now, l).expect("request");
    p.pump();
    let got = read_all(&mut p.n[0], a.port);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, data);
    assert_eq!(p.n[0].conn_info(a.port).expect("info").rcv_unacked, 3);
    assert!(p.take_events(1).contains(&SocketEvent::Connected {
        port: c,
        peer: (a.port, ADDRS[0])
    }));
    // A connected socket's `send` ignores the address and sends one message.
    p.n[1]
        .send(p.now, c, to, SocketKind::Stream.default_opts(), b"more")
        .expect("send");
    p.pump();
    assert_eq!(read_all(&mut p.n[0], a.port)[0].data, b"more");
}

// ---------------------------------------------------------------------------------------------
// Refusal, timeout, retry
// ---------------------------------------------------------------------------------------------

/// A SYN to a port that does not exist, or that is not listening, comes back with
/// TIPC_ERR_NO_PORT: the connect fails as refused, and the returned message is queued.
#[test]
fn connect_refused_without_listener() {
    let mut p = Pair::up();
    let not_listening = p.n[0].open_socket(SocketKind::Stream);
    for (port, what) in [(424_242, "no socket"), (not_listening, "not listening")] {
        let c = p.n[1].open_socket(SocketKind::Stream);
        let to = Addr::Socket {
            port,
            node: ADDRS[0],
        };
        p.n[1]
            .connect(
                p.now,
                c,
                to,
                SocketKind::Stream.default_opts(),
                b"hi",
                ms(8000),
            )
            .expect("connect");
        p.pump();
        let ev = p.take_events(1);
        assert!(
            ev.contains(&SocketEvent::ConnectFailed {
                port: c,
                reason: ConnError::Refused(ErrorCode::NoPort)
            }),
            "{what}: {ev:?}"
        );
        assert_eq!(p.n[1].conn_state(c), Some(ConnState::Disconnected));
        let back = p.n[1].recv(c).expect("the returned SYN");
        assert_eq!(
            (back.error, back.data.as_slice()),
            (Some(ErrorCode::NoPort), &b"hi"[..])
        );
        // No timer is left behind.
        p.advance(ms(9000));
        assert!(p.take_events(1).is_empty(), "{what}");
    }
}

/// A SYN sent by name to a socket that closed while the withdrawal was on its way: the
/// secondary lookup finds nothing, the SYN comes back with TIPC_ERR_NO_NAME.
#[test]
fn connect_refused_by_name() {
    let mut p = Pair::up();
    let l = p.listener(0, SocketKind::Seqpacket, 7);
    p.advance(ms(10));
    p.n[0].close_port(p.now, l).expect("close");
    // The withdrawal and the SYN cross: node 1 still has the binding.
    let c = p.n[1].open_socket(SocketKind::Seqpacket);
    let to = Addr::Service {
        service_type: SVC,
        instance: 7,
        domain: 0,
    };
    p.n[1]
        .connect(
            p.now,
            c,
            to,
            SocketKind::Seqpacket.default_opts(),
            &[],
            ms(8000),
        )
        .expect("connect: the binding is still known here");
    p.pump();
    assert!(p.take_events(1).contains(&SocketEvent::ConnectFailed {
        port: c,
        reason: ConnError::Refused(ErrorCode::NoName)
    }));
    // Now the name is gone here too.
    let c2 = p.n[1].open_socket(SocketKind::Seqpacket);
    assert_eq!(
        p.n[1].connect(
            p.now,
            c2,
            to,
            SocketKind::Seqpacket.default_opts(),
            &[],
            ms(10)
        ),
        Err(ConnError::NoRoute)
    );
}

/// A listener that does not accept: the connect times out at its deadline. Accepted later,
/// the connection is dead at once: the ACK reaches a socket that gave up and comes back with
/// TIPC_ERR_NO_PORT.
#[test]
fn connect_times_out() {
    let mut p = Pair::up();
    let l = p.listener(0, SocketKind::Stream, 2);
    p.advance(ms(10));
    let c = p.n[1].open_socket(SocketKind::Stream);
    let to = Addr::Service {
        service_type: SVC,
        instance: 2,
        domain: 0,
    };
    let t0 = p.now;
    p.n[1]
        .connect(
            p.now,
            c,
            to,
            SocketKind::Stream.default_opts(),
            &[],
            ms(500),
        )
        .expect("connect");
    p.advance(ms(499));
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Connecting));
    p.advance(ms(2));
    assert_eq!(
        p.take_events(1),
        [SocketEvent::ConnectFailed {
            port: c,
            reason: ConnError::Timeout
        }]
    );
    assert!(p.now - t0 >= ms(500));
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Disconnected));
    let a = p.n[0].accept(p.now, l).expect("the old request");
    p.pump();
    assert!(p.take_events(0).contains(&SocketEvent::Disconnected {
        port: a.port,
        error: ErrorCode::NoPort
    }));
    assert_eq!(p.n[1].conn_stats().connect_failed, 1);
}

/// A SYN refused for a full listener queue (TIPC_ERR_OVERLOAD) comes back without its data
/// and is resent after 100 ms + a random part below timeout/4; once there is room, the
/// connection completes with the data.
#[test]
fn overloaded_syn_is_retried() {
    let mut p = Pair::up();
    let l = p.listener(0, SocketKind::Seqpacket, 3);
    p.n[0].set_rcvbuf(l, 10).expect("rcvbuf");
    p.advance(ms(10));
    let c = p.n[1].open_socket(SocketKind::Seqpacket);
    let to = Addr::Service {
        service_type: SVC,
        instance: 3,
        domain: 0,
    };
    let mark = p.frames.len();
    p.n[1]
        .connect(
            p.now,
            c,
            to,
            SocketKind::Seqpacket.default_opts(),
            &[7; 100],
            ms(2000),
        )
        .expect("connect");
    p.pump();
    let back = p.sent_by(0, mark);
    let back = parse_data(&back[0]);
    assert_eq!((back.error, back.payload.len()), (ErrorCode::Overload, 0));
    assert!(back.common.flags.syn);
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Connecting));
    assert!(p.take_events(1).is_empty(), "not refused: retried");
    p.n[0].set_rcvbuf(l, DEFAULT_RCVBUF).expect("rcvbuf");
    p.advance(ms(99));
    assert_eq!(p.n[1].conn_stats().syn_retries, 0);
    p.advance(ms(501));
    assert_eq!(p.n[1].conn_stats().syn_retries, 1);
    let a = p.n[0].accept(p.now, l).expect("the resent request");
    p.pump();
    assert_eq!(p.n[0].recv(a.port).expect("data").data, [7; 100]);
    assert!(matches!(
        p.n[1].conn_state(c),
        Some(ConnState::Connected { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Messages, flow control
// ---------------------------------------------------------------------------------------------

/// SEQPACKET keeps message boundaries up to 66,000 bytes each way; larger is refused.
#[test]
fn seqpacket_carries_66000_byte_messages() {
    let mut p = Pair::up();
    let (c, s) = p.connect(SocketKind::Seqpacket, 4);
    let big = pattern(66_000, 4);
    let small = pattern(10, 5);
    for (from, to, port_from, port_to) in [(1, 0, c, s), (0, 1, s, c)] {
        assert_eq!(p.n[from].send_conn(p.now, port_from, &big), Ok(66_000));
        assert_eq!(p.n[from].send_conn(p.now, port_from, &small), Ok(10));
        assert_eq!(
            p.n[from].send_conn(p.now, port_from, &[0; 66_001]),
            Err(SendError::TooLarge)
        );
        p.pump();
        let got = read_all(&mut p.n[to], port_to);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, big);
        assert_eq!(got[1].data, small);
    }
    // 66,024 bytes = 65 blocks: reading it passed a quarter of the initial window (32) and
    // sent a CONN_ACK; the 34-byte message is 1 block, not yet acknowledged.
    assert_eq!(p.n[0].conn_info(s).expect("info").rcv_unacked, 1);
    assert_eq!(p.n[1].conn_info(c).expect("info").snt_unacked, 1);
}

/// The window: a sender that is not acknowledged stops with WouldBlock once more than the
/// window is outstanding, and gets Writable when the reader's CONN_ACK arrives. The first
/// CONN_ACK goes after ≥ 32 blocks read and advertises 512; later ones after ≥ 128 (spec
/// §9.3, `eth-07`).
#[test]
fn window_blocks_and_reopens() {
    let mut p = Pair::up();
    let (c, s) = p.connect(SocketKind::Stream, 6);
    let chunk = pattern(8192, 6);
    let mut sent = 0;
    loop {
        match p.n[1].send_conn(p.now, c, &chunk) {
            Ok(n) => sent += n,
            Err(SendError::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 1 << 20, "the window never closed");
    }
    p.pump();
    // 9 blocks a message; sending stops once more than 128 are outstanding.
    assert_eq!(sent / 8192, 15);
    assert_eq!(p.n[1].conn_info(c).expect("info").snt_unacked, 135);
    // Reading 4 messages (36 blocks ≥ 32) sends the first CONN_ACK.
    let mark = p.frames.len();
    for _ in 0..4 {
        assert_eq!(p.n[0].recv(s).expect("data").data, chunk);
    }
    p.pump();
    let acks: Vec<(u16, u16)> = p
        .sent_by(0, mark)
        .iter()
        .filter_map(
            |m| match MessageRepr::parse(&Packet::new_checked(&m[..]).ok()?).ok()? {
                MessageRepr::ConnMgr(a) => Some((a.conn_ack, a.adv_win)),
                _ => None,
            },
        )
        .collect();
    assert_eq!(acks, [(36, 512)]);
    assert!(p.take_events(1).contains(&SocketEvent::Writable(c)));
    let info = p.n[1].conn_info(c).expect("info");
    assert_eq!((info.snt_unacked, info.snd_win), (99, 512));
    // The next acknowledgement needs 128 blocks.
    for _ in 0..11 {
        p.n[0].recv(s).expect("data");
    }
    p.pump();
    assert_eq!(p.n[0].conn_info(s).expect("info").rcv_unacked, 99);
}

/// Toward a peer without BLOCK_FLOWCTL, flow control counts messages with a window of 512
/// and advertises nothing (spec §9.3).
#[test]
fn legacy_peer_counts_messages() {
    let legacy = UTIPC_CAPABILITIES & !caps::BLOCK_FLOWCTL;
    let mut p = Pair::up_with([UTIPC_CAPABILITIES, legacy]);
    let (c, s) = p.connect(SocketKind::Seqpacket, 8);
    for (i, port) in [(1, c), (0, s)] {
        let info = p.n[i].conn_info(port).expect("info");
        assert!(!info.block_flowctl);
        assert_eq!((info.snd_win, info.rcv_win), (512, 512));
    }
    let mark = p.frames.len();
    for _ in 0..128 {
        assert_eq!(p.n[1].send_conn(p.now, c, &[1; 3000]), Ok(3000));
        p.pump();
        p.n[0].recv(s).expect("data");
    }
    p.pump();
    let acks: Vec<(u16, u16)> = p
        .sent_by(0, mark)
        .iter()
        .filter_map(
            |m| match MessageRepr::parse(&Packet::new_checked(&m[..]).ok()?).ok()? {
                MessageRepr::ConnMgr(a) => Some((a.conn_ack, a.adv_win)),
                _ => None,
            },
        )
        .collect();
    assert_eq!(acks, [(128, 0)]);
    assert_eq!(p.n[1].conn_info(c).expect("info").snt_unacked, 0);
}

/// Several MB of stream in writes of every size, over a lossy, duplicating, reordering
/// segment: delivered exactly once and in order, the sender pacing itself by WouldBlock /
/// Congested and Writable.
#[test]
fn stream_megabytes_under_loss() {
    run_seeds("conn_stream_under_loss", seeds(3), |seed| {
        let seg = SegmentConfig {
            latency: Duration::from_micros(100),
            jitter: Duration::from_micros(50),
            loss: 0.02,
            duplicate: 0.01,
            reorder: 0.02,
            reorder_delay: Duration::from_micros(300),
            ..SegmentConfig::default()
        };
        let mut net = Network::new(seed);
        let sg = net.add_segment(seg);
        let mut idx = Vec::new();
        for (i, &addr) in ADDRS.iter().enumerate() {
            let id = net.add_node(node_with(i, Some(addr), UTIPC_CAPABILITIES, seed));
            net.attach(id, BearerId(0), sg, mac(i));
            let now = net.now();
            net.node_mut(id).add_bearer(now, bearer(i)).expect("bearer");
            idx.push(id);
        }
        let (na, nb) = (idx[0], idx[1]);
        assert!(
            net.run_until_cond(Duration::from_secs(10), |n| n.node(na).peer_up(ADDRS[1])
                && n.node(nb).peer_up(ADDRS[0]))
        );
        let now = net.now();
        let l = net.node_mut(nb).open_socket(SocketKind::Stream);
        net.node_mut(nb).listen(l).expect("listen");
        let c = net.node_mut(na).open_socket(SocketKind::Stream);
        let to = Addr::Socket {
            port: l,
            node: ADDRS[1],
        };
        net.node_mut(na)
            .connect(now, c, to, SocketKind::Stream.default_opts(), &[], ms(8000))
            .expect("connect");
        let mut server = None;
        assert!(net.run_until_cond(Duration::from_secs(5), |n| n.node(nb).queued(l) > 0));
        let now = net.now();
        server = server.or(net.node_mut(nb).accept(now, l).map(|a| a.port));
        let s = server.expect("accepted");
        assert!(net.run_until_cond(Duration::from_secs(5), |n| matches!(
            n.node(na).conn_state(c),
            Some(ConnState::Connected { .. })
        )));
        let total = 3 << 20;
        let data = pattern(total, seed);
        let (mut sent, mut got) = (0usize, Vec::with_capacity(total));
        let mut sizes = pattern(4096, seed ^ 77).into_iter().cycle();
        let (mut blocked, mut writable) = (0u32, 0u32);
        for _ in 0..200_000 {
            let now = net.now();
            while sent < total {
                let want = (usize::from(sizes.next().unwrap_or(1)) * 300 + 1).min(total - sent);
                match net.node_mut(na).send_conn(now, c, &data[sent..sent + want]) {
                    Ok(n) => sent += n,
                    Err(SendError::WouldBlock | SendError::Congested) => {
                        blocked += 1;
                        break;
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            while let Some(e) = net.node_mut(na).poll_socket_event() {
                writable += u32::from(e == SocketEvent::Writable(c));
            }
            while let Some(r) = net.node_mut(nb).recv(s) {
                assert_eq!(r.error, None);
                got.extend_from_slice(&r.data);
            }
            if got.len() == total {
                break;
            }
            net.run_for(ms(1));
        }
        assert_eq!(got.len(), total, "seed {seed}: everything arrived");
        assert!(got == data, "seed {seed}: in order, exactly once");
        assert!(blocked > 0, "the sender was paced");
        assert!(writable > 0, "and told when to go on");
        assert!(net.node(na).conn_stats().acks_ignored == 0);
    });
}

// ---------------------------------------------------------------------------------------------
// Teardown and aborts
// ---------------------------------------------------------------------------------------------

/// close() with nothing unread: the peer gets an empty CRITICAL CONN_MSG with
/// TIPC_ERR_NO_PORT and reads a reset after its data. With unread data: the first unread
/// message goes back to the peer (at most 1024 bytes), the rest is discarded.
#[test]
fn peer_close_resets() {
    let mut p = Pair::up();
    let (c, s) = p.connect(SocketKind::Seqpacket, 9);
    assert_eq!(p.n[0].send_conn(p.now, s, b"before close"), Ok(12));
    p.pump();
    let mark = p.frames.len();
    p.n[0].close_port(p.now, s).expect("close");
    p.pump();
    let abort = &p.sent_by(0, mark)[0];
    assert_eq!(abort.len(), 24);
    let d = parse_data(abort);
    assert_eq!(
        (d.importance, d.msg_type, d.error),
        (Importance::Critical, DataType::Conn, ErrorCode::NoPort)
    );
    let got = read_all(&mut p.n[1], c);
    assert_eq!(got[0].data, b"before close");
    assert_eq!(
        (got[1].error, got[1].from),
        (Some(ErrorCode::NoPort), (s, ADDRS[0]))
    );
    assert!(p.take_events(1).contains(&SocketEvent::Disconnected {
        port: c,
        error: ErrorCode::NoPort
    }));

    // Unread data.
    let (c, s) = p.connect(SocketKind::Seqpacket, 10);
    let first = pattern(2000, 10);
    assert_eq!(p.n[1].send_conn(p.now, c, &first), Ok(2000));
    assert_eq!(p.n[1].send_conn(p.now, c, b"second"), Ok(6));
    p.pump();
    assert_eq!(p.n[0].queued(s), 2);
    p.n[0].close_port(p.now, s).expect("close");
    p.pump();
    let got = read_all(&mut p.n[1], c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].error, Some(ErrorCode::NoPort));
    assert_eq!(got[0].data, &first[..1024]);
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Disconnected));
}

/// A listener that closes refuses its pending requests: the connects fail at once.
#[test]
fn closed_listener_refuses_pending_requests() {
    let mut p = Pair::up();
    let l = p.listener(0, SocketKind::Stream, 11);
    p.advance(ms(10));
    let to = Addr::Service {
        service_type: SVC,
        instance: 11,
        domain: 0,
    };
    let cs: Vec<u32> = (0..3)
        .map(|_| {
            let c = p.n[1].open_socket(SocketKind::Stream);
            p.n[1]
                .connect(
                    p.now,
                    c,
                    to,
                    SocketKind::Stream.default_opts(),
                    &[],
                    ms(8000),
                )
                .expect("connect");
            c
        })
        .collect();
    p.pump();
    assert_eq!(p.n[0].queued(l), 3);
    p.n[0].close_port(p.now, l).expect("close");
    p.pump();
    let ev = p.take_events(1);
    for c in cs {
        assert!(ev.contains(&SocketEvent::ConnectFailed {
            port: c,
            reason: ConnError::Refused(ErrorCode::NoPort)
        }));
    }
}

/// Loss of the peer node (a partition): both ends of a connection are aborted with
/// TIPC_ERR_NO_NODE within the link failure time (tolerance 1.5 s + 1–2 intervals), and a
/// connect in progress to that node fails.
#[test]
fn node_loss_aborts_connections() {
    run_seeds("conn_node_loss", seeds(2), |seed| {
        let mut net: Network<Node> = Network::new(seed);
        let sg = net.add_segment(SegmentConfig::default());
        let idx: Vec<NodeIdx> = (0..2)
            .map(|i| {
                let id = net.add_node(node_with(i, Some(ADDRS[i]), UTIPC_CAPABILITIES, seed));
                net.attach(id, BearerId(0), sg, mac(i));
                let now = net.now();
                net.node_mut(id).add_bearer(now, bearer(i)).expect("bearer");
                id
            })
            .collect();
        let (na, nb) = (idx[0], idx[1]);
        assert!(net.run_until_cond(Duration::from_secs(10), |n| n.node(na).peer_up(ADDRS[1])));
        let now = net.now();
        let l = net.node_mut(nb).open_socket(SocketKind::Seqpacket);
        net.node_mut(nb).listen(l).expect("listen");
        let to = Addr::Socket {
            port: l,
            node: ADDRS[1],
        };
        let opts = SocketKind::Seqpacket.default_opts();
        let c = net.node_mut(na).open_socket(SocketKind::Seqpacket);
        net.node_mut(na)
            .connect(now, c, to, opts, b"x", ms(60_000))
            .expect("connect");
        assert!(net.run_until_cond(ms(100), |n| n.node(nb).queued(l) == 1));
        let now = net.now();
        let s = net.node_mut(nb).accept(now, l).expect("accept").port;
        net.run_for(ms(10));
        let pending = net.node_mut(na).open_socket(SocketKind::Seqpacket);
        let now = net.now();
        net.node_mut(na)
            .connect(now, pending, to, opts, &[], ms(60_000))
            .expect("connect");
        net.run_for(ms(10));
        while net.node_mut(na).poll_socket_event().is_some() {}
        while net.node_mut(nb).poll_socket_event().is_some() {}
        let t0 = net.now();
        net.partition(na, nb);
        let mut ends: [Vec<SocketEvent>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..3000 {
            net.run_for(ms(1));
            for (k, id) in [(0, na), (1, nb)] {
                while let Some(e) = net.node_mut(id).poll_socket_event() {
                    ends[k].push(e);
                }
            }
            if ends[0].len() >= 3 && !ends[1].is_empty() {
                break;
            }
        }
        let elapsed = net.now() - t0;
        assert!(elapsed <= ms(2400), "seed {seed}: {elapsed:?}");
        assert!(ends[0].contains(&SocketEvent::Disconnected {
            port: c,
            error: ErrorCode::NoNode
        }));
        assert!(ends[0].contains(&SocketEvent::ConnectFailed {
            port: pending,
            reason: ConnError::NodeDown
        }));
        assert!(ends[1].contains(&SocketEvent::Disconnected {
            port: s,
            error: ErrorCode::NoNode
        }));
        // The marker follows the data.
        let got = read_all(net.node_mut(na), c);
        assert_eq!(got.last().and_then(|r| r.error), Some(ErrorCode::NoNode));
    });
}

// ---------------------------------------------------------------------------------------------
// Probing
// ---------------------------------------------------------------------------------------------

/// After an hour each end probes; the peer answers, and the connection lives on.
#[test]
fn probe_is_answered() {
    let mut p = Pair::up();
    let (c, s) = p.connect(SocketKind::Stream, 12);
    p.take_events(0);
    p.take_events(1);
    p.advance(CONN_PROBING_INTERVAL - ms(10));
    assert_eq!(p.n[1].conn_stats().probes_sent, 0);
    let mark = p.frames.len();
    p.advance(ms(20));
    let probes: Vec<ConnMgrType> = p.frames[mark..]
        .iter()
        .filter_map(
            |(_, m)| match MessageRepr::parse(&Packet::new_checked(&m[..]).ok()?).ok()? {
                MessageRepr::ConnMgr(a) => Some(a.msg_type),
                _ => None,
            },
        )
        .collect();
    // Both ends probe at the same instant; each answers the other.
    assert_eq!(
        probes,
        [
            ConnMgrType::Probe,
            ConnMgrType::Probe,
            ConnMgrType::ProbeReply,
            ConnMgrType::ProbeReply
        ]
    );
    p.advance(CONN_PROBING_INTERVAL + ms(100));
    for (i, port) in [(1, c), (0, s)] {
        assert!(matches!(
            p.n[i].conn_state(port),
            Some(ConnState::Connected { .. })
        ));
        assert_eq!(p.n[i].conn_stats().probes_sent, 2);
        assert_eq!(p.n[i].conn_stats().probe_replies, 2);
    }
    assert!(p.take_events(0).is_empty() && p.take_events(1).is_empty());
}

/// Rewrites the destination port of every CONN_MANAGER message from node `from`: the
/// messages reach no socket.
fn misdirect(from: usize) -> Tamper {
    Box::new(move |i, m| {
        let p = Packet::new_unchecked(&m[..]);
        if i == from && User::from(p.user_raw()) == User::ConnManager {
            m[20..24].copy_from_slice(&0x00de_ad00u32.to_be_bytes());
        }
        true
    })
}

/// A probe that stays unanswered for a whole interval aborts the connection. (Any
/// CONN_MANAGER message from the peer counts as an answer, so node 0's own probes are lost
/// too.)
#[test]
fn unanswered_probe_aborts() {
    let mut p = Pair::up();
    let (c, _s) = p.connect(SocketKind::Stream, 13);
    p.tamper = misdirect(0);
    p.advance(CONN_PROBING_INTERVAL + ms(100));
    assert!(matches!(
        p.n[1].conn_state(c),
        Some(ConnState::Connected { .. })
    ));
    p.advance(CONN_PROBING_INTERVAL);
    assert!(p.take_events(1).contains(&SocketEvent::Disconnected {
        port: c,
        error: ErrorCode::NoNode
    }));
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Disconnected));
}

/// A peer socket that vanished without its abort arriving: the next probe comes back with
/// TIPC_ERR_NO_PORT and aborts the connection.
#[test]
fn probe_finds_vanished_peer() {
    let mut p = Pair::up();
    let (c, s) = p.connect(SocketKind::Stream, 14);
    // Node 0's abort goes astray: rewrite its destination port.
    p.tamper = Box::new(|i, m| {
        let pk = Packet::new_unchecked(&m[..]);
        if i == 0
            && User::from(pk.user_raw()) == User::Critical
            && DataType::from(pk.msg_type_raw()) == DataType::Conn
        {
            m[20..24].copy_from_slice(&0x00de_ad00u32.to_be_bytes());
        }
        true
    });
    p.n[0].close_port(p.now, s).expect("close");
    p.pump();
    assert!(matches!(
        p.n[1].conn_state(c),
        Some(ConnState::Connected { .. })
    ));
    p.advance(CONN_PROBING_INTERVAL + ms(10));
    assert!(p.take_events(1).contains(&SocketEvent::Disconnected {
        port: c,
        error: ErrorCode::NoPort
    }));
}

// ---------------------------------------------------------------------------------------------
// Hostile and stray traffic
// ---------------------------------------------------------------------------------------------

/// Messages a connected socket does not take: a datagram from an unrelated socket (returned
/// with TIPC_ERR_NO_PORT), a non-SYN message to a listener from a SYN_BIT node (returned
/// too); the connection is unharmed.
#[test]
fn unrelated_senders_are_rejected() {
    let mut p = Pair::up();
    let (c, s) = p.connect(SocketKind::Seqpacket, 15);
    let stranger = p.n[1].open_port();
    let opts = SendOpts {
        dest_droppable: false,
        ..SendOpts::default()
    };
    let to = Addr::Socket {
        port: s,
        node: ADDRS[0],
    };
    p.n[1]
        .send(p.now, stranger, to, opts, b"let me in")
        .expect("send");
    p.pump();
    let back = p.n[1].recv(stranger).expect("returned");
    assert_eq!(
        (back.error, back.data.as_slice(), back.from),
        (Some(ErrorCode::NoPort), &b"let me in"[..], (s, ADDRS[0]))
    );
    assert_eq!(p.n[0].queued(s), 0);
    // A destination-droppable one is dropped silently.
    p.n[1]
        .send(p.now, stranger, to, SendOpts::default(), b"psst")
        .expect("send");
    p.pump();
    assert_eq!(p.n[1].recv(stranger), None);
    // A listener takes only SYNs from a SYN_BIT node.
    let l = p.listener(0, SocketKind::Stream, 16);
    let to_l = Addr::Socket {
        port: l,
        node: ADDRS[0],
    };
    p.n[1]
        .send(p.now, stranger, to_l, opts, b"no syn")
        .expect("send");
    p.pump();
    assert_eq!(p.n[0].queued(l), 0);
    assert_eq!(
        p.n[1].recv(stranger).expect("returned").error,
        Some(ErrorCode::NoPort)
    );
    // The connection still works.
    assert_eq!(p.n[1].send_conn(p.now, c, b"ok"), Ok(2));
    p.pump();
    assert_eq!(p.n[0].recv(s).expect("data").data, b"ok");
}

/// A CONN_ACK from the peer that acknowledges more than was sent is ignored entirely; an
/// honest one applies. A CONN_ACK from anyone else is dropped.
#[test]
fn hostile_conn_ack_is_ignored() {
    let mut p = Pair::up();
    let (c, s) = p.connect(SocketKind::Stream, 17);
    assert_eq!(p.n[1].send_conn(p.now, c, &[0; 5000]), Ok(5000));
    p.pump();
    let before = p.n[1].conn_info(c).expect("info");
    assert_eq!(before.snt_unacked, 5);
    let ack = |from_port: u32, conn_ack: u16, adv_win: u16| {
        let repr = ConnMgrRepr {
            base: Internal {
                common: Common {
                    prev_node: ADDRS[0],
                    ..Default::default()
                },
                orig_node: ADDRS[0],
                dest_node: ADDRS[1],
                extra_header: &[],
                payload: &[],
            },
            msg_type: ConnMgrType::Ack,
            orig_port: from_port,
            dest_port: c,
            conn_ack,
            adv_win,
        };
        MessageRepr::ConnMgr(repr).to_vec().expect("emit")
    };
    let now = p.now;
    p.n[1].on_link_message(now, ADDRS[0], &ack(s, 60_000, 65_535));
    assert_eq!(p.n[1].conn_info(c).expect("info"), before);
    assert_eq!(p.n[1].conn_stats().acks_ignored, 1);
    p.n[1].on_link_message(now, ADDRS[0], &ack(s ^ 1, 5, 7));
    assert_eq!(p.n[1].conn_info(c).expect("info"), before);
    assert_eq!(p.n[1].conn_stats().mgr_dropped, 1);
    p.n[1].on_link_message(now, ADDRS[0], &ack(s, 5, 300));
    let after = p.n[1].conn_info(c).expect("info");
    assert_eq!((after.snt_unacked, after.snd_win), (0, 300));
    // A malformed one does not panic.
    p.n[1].on_link_message(now, ADDRS[0], &ack(s, 1, 1)[..30]);
}

// ---------------------------------------------------------------------------------------------
// Socket events for datagram sockets, congestion
// ---------------------------------------------------------------------------------------------

/// Datagram sockets report Readable on the empty → non-empty edge only, once until polled;
/// closing one returns its unread, returnable datagrams to their senders (spec §9.5).
#[test]
fn datagram_readable_is_edge_triggered() {
    let mut p = Pair::up();
    let r = p.n[0].open_port();
    let tx = p.n[1].open_port();
    let to = Addr::Socket {
        port: r,
        node: ADDRS[0],
    };
    let keep = SendOpts {
        dest_droppable: false,
        ..SendOpts::default()
    };
    for i in 0..3u8 {
        p.n[1].send(p.now, tx, to, keep, &[i; 10]).expect("send");
    }
    p.pump();
    assert_eq!(p.take_events(0), [SocketEvent::Readable(r)]);
    p.n[1].send(p.now, tx, to, keep, &[3; 10]).expect("send");
    p.pump();
    assert!(p.take_events(0).is_empty(), "the queue was not drained");
    assert_eq!(read_all(&mut p.n[0], r).len(), 4);
    p.n[1].send(p.now, tx, to, keep, &[4; 10]).expect("send");
    p.n[1]
        .send(p.now, tx, to, SendOpts::default(), &[5; 10])
        .expect("send");
    p.pump();
    assert_eq!(p.take_events(0), [SocketEvent::Readable(r)]);
    // Closed unread: the returnable one comes back, the droppable one does not.
    p.n[0].close_port(p.now, r).expect("close");
    p.pump();
    let back = read_all(&mut p.n[1], tx);
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].error, back[0].data.as_slice()),
        (Some(ErrorCode::NoPort), &[4u8; 10][..])
    );
    assert_eq!(p.take_events(1), [SocketEvent::Readable(tx)]);
}

/// On a congested link the accept's ACK waits and goes out as soon as the link drains; a
/// datagram sender refused as congested gets Writable at that point.
#[test]
fn congested_link_defers_ack_and_wakes_sender() {
    let mut p = Pair::up();
    let l = p.listener(0, SocketKind::Stream, 20);
    p.advance(ms(10));
    let c = p.n[1].open_socket(SocketKind::Stream);
    let to = Addr::Service {
        service_type: SVC,
        instance: 20,
        domain: 0,
    };
    p.n[1]
        .connect(
            p.now,
            c,
            to,
            SocketKind::Stream.default_opts(),
            &[],
            ms(8000),
        )
        .expect("connect");
    p.pump();
    // Fill node 0's link to node 1 without letting anything through.
    let sink = p.n[1].open_port();
    let src = p.n[0].open_port();
    let dst = Addr::Socket {
        port: sink,
        node: ADDRS[1],
    };
    let mut n = 0;
    loop {
        match p.n[0].send(p.now, src, dst, SendOpts::default(), &[9; 1000]) {
            Ok(()) => n += 1,
            Err(SendError::Congested) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(n < 10_000, "the link never congested");
    }
    let a = p.n[0].accept(p.now, l).expect("request");
    assert_eq!(p.n[0].conn_stats().deferred, 1);
    assert_eq!(p.n[1].conn_state(c), Some(ConnState::Connecting));
    p.pump();
    assert_eq!(
        p.n[1].conn_state(c),
        Some(ConnState::Connected {
            peer: (a.port, ADDRS[0])
        })
    );
    assert!(p.take_events(0).contains(&SocketEvent::Writable(src)));
    assert_eq!(read_all(&mut p.n[1], sink).len(), n);
    // The connection works, and data sent now follows the ACK.
    assert_eq!(p.n[0].send_conn(p.now, a.port, b"after"), Ok(5));
    p.pump();
    assert_eq!(p.n[1].recv(c).expect("data").data, b"after");
}

/// A node without any bearer (address 0) connects its own sockets; the connection survives
/// the node taking its address when a bearer comes (the peer's node 0 stands for "here").
#[test]
fn node_local_connection_without_bearer() {
    let mut n = node_with(0, Some(ADDRS[0]), UTIPC_CAPABILITIES, 5);
    let now = Instant::ZERO;
    assert_eq!(n.addr(), 0);
    let l = n.open_socket(SocketKind::Stream);
    n.listen(l).expect("listen");
    let c = n.open_socket(SocketKind::Stream);
    let to = Addr::Socket { port: l, node: 0 };
    n.connect(now, c, to, SocketKind::Stream.default_opts(), &[], ms(100))
        .expect("connect before any bearer");
    let a = n.accept(now, l).expect("request");
    assert_eq!(
        n.conn_state(c),
        Some(ConnState::Connected { peer: (a.port, 0) })
    );
    assert_eq!(n.send_conn(now, c, b"one"), Ok(3));
    assert_eq!(n.recv(a.port).expect("data").data, b"one");
    // Remote destinations need the address.
    let c2 = n.open_socket(SocketKind::Stream);
    let far = Addr::Socket {
        port: 1,
        node: ADDRS[1],
    };
    assert_eq!(
        n.connect(
            now,
            c2,
            far,
            SocketKind::Stream.default_opts(),
            &[],
            ms(100)
        ),
        Err(ConnError::NotReady)
    );
    n.add_bearer(now, bearer(0)).expect("bearer");
    assert_eq!(n.addr(), ADDRS[0]);
    assert_eq!(n.send_conn(now, c, b"two"), Ok(3));
    assert_eq!(n.send_conn(now, a.port, b"back"), Ok(4));
    assert_eq!(n.recv(a.port).expect("data").data, b"two");
    assert_eq!(n.recv(c).expect("data").data, b"back");
    n.shutdown_conn(now, a.port).expect("shutdown");
    let end = n.recv(c).expect("end");
    assert_eq!(end.error, Some(ErrorCode::ConnShutdown));
    assert!(n.poll_transmit().is_none_or(|t| t.dest == Dest::Broadcast));
}

/// A lookup domain that names a node makes the kernel send with node lookup scope (its
/// `tipc_node2scope`); no domain, cluster scope. Both for datagrams and for SYNs, as the
/// kernel's SYN to `{1,1}` at a utipc node shows (lookup scope 3).
#[test]
fn lookup_scope_follows_the_lookup_domain() {
    let mut p = Pair::up();
    let now = p.now;
    let srv = p.n[0].open_port();
    p.n[0]
        .bind(now, srv, Scope::Cluster, SVC, 40, 40)
        .expect("bind");
    p.listener(0, SocketKind::Seqpacket, 41);
    p.advance(ms(10));
    let scope_of_last_data = |p: &Pair, mark: usize| {
        p.sent_by(1, mark).iter().rev().find_map(|f| {
            let d = DataRepr::parse(&Packet::new_checked(f.as_slice()).ok()?).ok()?;
            (d.msg_type == DataType::Named).then_some(d.lookup_scope)
        })
    };
    use crate::wire::data::scope;
    for (domain, expect) in [(0, scope::CLUSTER), (ADDRS[0], scope::NODE)] {
        let to = Addr::Service {
            service_type: SVC,
            instance: 40,
            domain,
        };
        let mark = p.frames.len();
        let c = p.n[1].open_port();
        p.n[1]
            .send(p.now, c, to, SendOpts::default(), b"x")
            .expect("send");
        p.pump();
        assert_eq!(
            scope_of_last_data(&p, mark),
            Some(expect),
            "datagram, domain {domain:x}"
        );
        let mark = p.frames.len();
        let s = p.n[1].open_socket(SocketKind::Seqpacket);
        let to = Addr::Service {
            service_type: SVC,
            instance: 41,
            domain,
        };
        p.n[1]
            .connect(
                p.now,
                s,
                to,
                SocketKind::Seqpacket.default_opts(),
                &[],
                CONN_TIMEOUT_DEFAULT,
            )
            .expect("connect");
        p.pump();
        assert_eq!(
            scope_of_last_data(&p, mark),
            Some(expect),
            "SYN, domain {domain:x}"
        );
    }
}
