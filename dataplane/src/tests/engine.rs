//! The poll-mode engine: threading modes, idle strategies, stopping, pinning, and two nodes
//! driven by engines in two namespaces.
//!
//! Nothing here busy-spins for more than a few milliseconds (the machine has two cores): the
//! agents are idle or do a bounded amount of work, and the strategies under test are backoff
//! and blocking, except one short check that a spinning thread stops.
//!
//! The idle-CPU checks read the engine thread's own CPU clock (`pthread_getcpuclockid`), so
//! they measure what the thread consumed, not wall time; the bounds are generous functional
//! checks ("it parks", "it sleeps"), not benchmarks. The per-node figures over 2 s are printed
//! for the docs (`cargo test -p utipc-dataplane idle_node -- --nocapture`).

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use utipc_proto::addr::NodeId;
use utipc_proto::name_table::Scope;
use utipc_proto::node::{Addr, Node, NodeConfig, SendError, SendOpts};

use super::netns::{A4, B4, Netns, VETH, available, veth_pair};
use crate::bearer::Bearer;
use crate::bearer::packet::PacketBearer;
use crate::bearer::udp::{UdpBearer, UdpBearerConfig};
use crate::engine::{
    Agent, AgentContext, AgentInvoker, BackoffConfig, CpuList, Engine, EngineConfig, EngineError,
    IdleConfig, IdleKind, RunnerStats, StopHandle, ThreadingMode,
};
use crate::runtime::NodeRuntime;

/// Far more than any wake-up takes; well below the sleeps the tests set up (seconds), so
/// meeting it proves the wake-up, not a timeout.
const PROMPT: Duration = Duration::from_secs(1);

/// What the test agents share with the test.
#[derive(Debug, Default)]
struct Probe {
    calls: AtomicUsize,
    started: AtomicUsize,
    closed: AtomicUsize,
}

/// A test agent: counts its cycles, does `busy_for` cycles of one unit of work, then idles;
/// optionally logs its id into a shared log at every cycle.
#[derive(Debug)]
struct Counting {
    id: usize,
    role: String,
    probe: Arc<Probe>,
    busy_for: usize,
    log: Option<Arc<Mutex<Vec<usize>>>>,
    deadline: Option<Duration>,
    fail_start: bool,
    stop_after: Option<usize>,
    panic_after: Option<usize>,
    stop: Option<StopHandle>,
    affinity: Option<CpuList>,
}

impl Counting {
    fn new(id: usize) -> (Self, Arc<Probe>) {
        let probe = Arc::new(Probe::default());
        let a = Self {
            id,
            role: format!("count{id}"),
            probe: Arc::clone(&probe),
            busy_for: 0,
            log: None,
            deadline: None,
            fail_start: false,
            stop_after: None,
            panic_after: None,
            stop: None,
            affinity: None,
        };
        (a, probe)
    }
}

impl Agent for Counting {
    fn role_name(&self) -> &str {
        &self.role
    }

    fn do_work(&mut self) -> usize {
        let n = self.probe.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(log) = &self.log {
            log.lock().expect("log").push(self.id);
        }
        if self.stop_after.is_some_and(|k| n >= k)
            && let Some(stop) = &self.stop
        {
            stop.stop();
        }
        assert!(
            self.panic_after.is_none_or(|k| n < k),
            "agent {} panics on purpose",
            self.id
        );
        usize::from(n <= self.busy_for)
    }

    fn on_start(&mut self, ctx: &AgentContext) -> std::io::Result<()> {
        if self.fail_start {
            return Err(std::io::Error::other("refusing to start"));
        }
        self.probe.started.fetch_add(1, Ordering::Relaxed);
        self.stop = Some(ctx.stop_handle().clone());
        self.affinity = CpuList::of_current_thread().ok();
        Ok(())
    }

    fn on_close(&mut self) {
        self.probe.closed.fetch_add(1, Ordering::Relaxed);
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.deadline
    }
}

/// Waits (bounded, sleeping) until `cond` holds.
#[track_caller]
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn config(threading: ThreadingMode, idle: IdleKind) -> EngineConfig {
    EngineConfig::new(threading, idle)
}

#[test]
fn invoker_runs_exactly_one_cycle_per_invoke() {
    let (mut agent, probe) = Counting::new(0);
    agent.busy_for = 3;
    let mut engine = Engine::start(
        &config(ThreadingMode::Invoker, IdleKind::Backoff),
        vec![agent],
    )
    .expect("start");
    assert_eq!(probe.started.load(Ordering::Relaxed), 1, "started at once");
    assert_eq!(
        probe.calls.load(Ordering::Relaxed),
        0,
        "no cycle before invoke"
    );
    let inv = engine.invoker().expect("invoker mode");
    let work: Vec<usize> = (0..5).map(|_| inv.invoke()).collect();
    assert_eq!(work, [1, 1, 1, 0, 0]);
    assert_eq!(probe.calls.load(Ordering::Relaxed), 5);
    let stats = inv.stats();
    assert_eq!(
        (stats.duty_cycles, stats.work, stats.idle_cycles),
        (5, 3, 2)
    );
    assert_eq!(
        inv.agent().agents()[0].probe.calls.load(Ordering::Relaxed),
        5
    );
    let report = engine.stats();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].role, "count0");
    assert_eq!(report[0].cpu_time, None, "no engine thread");
    let agents = engine.stop().expect("stop");
    assert_eq!(agents.len(), 1);
    assert_eq!(probe.closed.load(Ordering::Relaxed), 1);
    assert_eq!(probe.calls.load(Ordering::Relaxed), 5, "stop runs no cycle");
}

#[test]
fn an_invoker_does_nothing_before_start_or_after_close() {
    let (agent, probe) = Counting::new(0);
    let mut inv = AgentInvoker::new(agent, &IdleConfig::new(IdleKind::Block)).expect("invoker");
    assert_eq!(inv.invoke(), 0);
    assert_eq!(probe.calls.load(Ordering::Relaxed), 0);
    inv.start().expect("start");
    inv.start().expect("a second start is a no-op");
    assert_eq!(probe.started.load(Ordering::Relaxed), 1);
    inv.invoke();
    assert_eq!(probe.calls.load(Ordering::Relaxed), 1);
    // A ring wakes the caller's blocking idle at once.
    inv.doorbell().ring();
    let t0 = Instant::now();
    inv.idle(0);
    assert!(t0.elapsed() < PROMPT);
    assert_eq!(inv.stats().doorbell_wakeups, 1);
    inv.close();
    assert_eq!(inv.invoke(), 0);
    let _agent = inv.into_agent();
    assert_eq!(probe.closed.load(Ordering::Relaxed), 1, "closed once");
    assert_eq!(probe.calls.load(Ordering::Relaxed), 1);
}

#[test]
fn shared_mode_runs_every_agent_round_robin_on_one_thread() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut probes = Vec::new();
    let agents: Vec<Counting> = (0..3)
        .map(|id| {
            let (mut a, p) = Counting::new(id);
            a.busy_for = 20;
            a.log = Some(Arc::clone(&log));
            probes.push(p);
            a
        })
        .collect();
    let engine =
        Engine::start(&config(ThreadingMode::Shared, IdleKind::Backoff), agents).expect("start");
    wait_for("40 cycles each", Duration::from_secs(5), || {
        probes.iter().all(|p| p.calls.load(Ordering::Relaxed) >= 40)
    });
    let report = engine.stats();
    assert_eq!(report.len(), 1, "one thread");
    assert_eq!(report[0].role, "count0+count1+count2");
    assert!(report[0].cpu_time.is_some());
    let agents = engine.stop().expect("stop");
    assert_eq!(
        agents.iter().map(|a| a.id).collect::<Vec<_>>(),
        [0, 1, 2],
        "handed back in order"
    );
    let log = log.lock().expect("log").clone();
    // Cycle c runs all three agents, starting with agent c mod 3.
    for (c, chunk) in log.chunks_exact(3).take(40).enumerate() {
        let want: Vec<usize> = (0..3).map(|k| (c + k) % 3).collect();
        assert_eq!(chunk, want, "cycle {c}");
    }
    let calls: Vec<usize> = probes
        .iter()
        .map(|p| p.calls.load(Ordering::Relaxed))
        .collect();
    assert!(
        calls.iter().max().expect("3") - calls.iter().min().expect("3") <= 1,
        "every agent ran as often: {calls:?}"
    );
    assert!(probes.iter().all(|p| p.closed.load(Ordering::Relaxed) == 1));
}

/// Starts three idle agents on dedicated threads with `config`, lets them settle into their
/// idle state for `settle`, and checks that a stop takes less than [`PROMPT`].
fn stops_promptly(config: &EngineConfig, settle: Duration) {
    let mut probes = Vec::new();
    let agents: Vec<Counting> = (0..3)
        .map(|id| {
            let (a, p) = Counting::new(id);
            probes.push(p);
            a
        })
        .collect();
    let engine = Engine::start(config, agents).expect("start");
    assert_eq!(engine.stats().len(), 3, "a thread per agent");
    wait_for("every agent ran", Duration::from_secs(5), || {
        probes.iter().all(|p| p.calls.load(Ordering::Relaxed) > 0)
    });
    thread::sleep(settle);
    let t0 = Instant::now();
    let agents = engine.stop().expect("stop");
    let took = t0.elapsed();
    assert!(
        took < PROMPT,
        "{:?}: stopping took {took:?}",
        config.idle.kind
    );
    assert_eq!(agents.len(), 3);
    for p in &probes {
        assert_eq!(p.started.load(Ordering::Relaxed), 1);
        assert_eq!(p.closed.load(Ordering::Relaxed), 1);
    }
}

#[test]
fn dedicated_threads_stop_promptly_from_a_long_park() {
    let mut c = config(ThreadingMode::Dedicated, IdleKind::Backoff);
    // The first park is already 5 s: only the stop's unpark can end it in time.
    c.idle.backoff = BackoffConfig {
        min_park: Duration::from_secs(5),
        max_park: Duration::from_secs(10),
        ..BackoffConfig::default()
    };
    stops_promptly(&c, Duration::from_millis(20));
}

#[test]
fn dedicated_threads_stop_promptly_from_a_long_block() {
    let mut c = config(ThreadingMode::Dedicated, IdleKind::Block);
    // No deadline and a 60 s cap: only the stop's doorbell can end the wait in time.
    c.idle.max_block = Some(Duration::from_secs(60));
    stops_promptly(&c, Duration::from_millis(20));
}

#[test]
fn dedicated_spinning_threads_stop_promptly() {
    // Three spinning threads on two cores: keep it to a few milliseconds.
    stops_promptly(
        &config(ThreadingMode::Dedicated, IdleKind::Spin),
        Duration::from_millis(3),
    );
}

#[test]
fn an_agent_can_stop_the_engine() {
    for mode in [ThreadingMode::Shared, ThreadingMode::Invoker] {
        let (mut a, probe) = Counting::new(0);
        a.stop_after = Some(10);
        a.deadline = Some(Duration::from_millis(1));
        let (b, _) = Counting::new(1);
        let engine = Engine::start(&config(mode, IdleKind::Block), vec![a, b]).expect("start");
        let t0 = Instant::now();
        let agents = engine.join().expect("join");
        assert!(t0.elapsed() < Duration::from_secs(5), "{mode}");
        assert_eq!(agents.len(), 2);
        assert_eq!(probe.calls.load(Ordering::Relaxed), 10, "{mode}");
        assert_eq!(probe.closed.load(Ordering::Relaxed), 1, "{mode}");
    }
}

#[test]
fn start_errors_are_clear_and_leave_nothing_running() {
    let e = Engine::<Counting>::start(&EngineConfig::default(), Vec::new()).expect_err("empty");
    assert!(matches!(e, EngineError::NoAgents));

    let mut c = config(ThreadingMode::Dedicated, IdleKind::Block);
    c.cpus = Some("1000".parse().expect("list"));
    let (a, probe) = Counting::new(0);
    let e = Engine::start(&c, vec![a]).expect_err("CPU 1000");
    let text = e.to_string();
    assert!(text.contains("CPU 1000 does not exist"), "{text}");
    assert_eq!(probe.started.load(Ordering::Relaxed), 0);

    // One agent of three refuses to start: the others are closed again and their threads end.
    let mut probes = Vec::new();
    let agents: Vec<Counting> = (0..3)
        .map(|id| {
            let (mut a, p) = Counting::new(id);
            a.fail_start = id == 1;
            probes.push(p);
            a
        })
        .collect();
    let e = Engine::start(&config(ThreadingMode::Dedicated, IdleKind::Block), agents)
        .expect_err("agent 1 fails");
    assert!(
        matches!(&e, EngineError::Start { role, .. } if role == "count1"),
        "{e:?}"
    );
    assert!(e.to_string().contains("refusing to start"), "{e}");
    for (id, p) in probes.iter().enumerate() {
        assert_eq!(
            p.started.load(Ordering::Relaxed),
            p.closed.load(Ordering::Relaxed),
            "agent {id}: every start closed"
        );
    }

    // In the shared mode the failing agent's role is named too.
    let (a, _) = Counting::new(0);
    let (mut b, _) = Counting::new(1);
    b.fail_start = true;
    let e = Engine::start(&config(ThreadingMode::Shared, IdleKind::Block), vec![a, b])
        .expect_err("agent 1 fails");
    assert!(e.to_string().contains("count1: refusing to start"), "{e}");
}

#[test]
fn threads_are_pinned_to_the_cpu_list() {
    let allowed = CpuList::of_current_thread().expect("affinity");
    let first = CpuList::single(allowed.cpus()[0]);
    let mut c = config(ThreadingMode::Dedicated, IdleKind::Block);
    c.cpus = Some(first.clone());
    let agents = vec![Counting::new(0).0, Counting::new(1).0];
    let agents = Engine::start(&c, agents)
        .expect("start")
        .stop()
        .expect("stop");
    for a in &agents {
        assert_eq!(
            a.affinity.as_ref(),
            Some(&first),
            "dedicated agent {}",
            a.id
        );
    }
    let mut c = config(ThreadingMode::Shared, IdleKind::Block);
    c.cpus = Some(allowed.clone());
    let agents = Engine::start(&c, vec![Counting::new(0).0])
        .expect("start")
        .stop()
        .expect("stop");
    assert_eq!(agents[0].affinity.as_ref(), Some(&allowed), "shared thread");
}

#[test]
fn a_panicking_agent_stops_the_engine_and_is_reported() {
    let (mut a, _) = Counting::new(0);
    a.panic_after = Some(3);
    a.role = "panicky".into();
    let (b, probe_b) = Counting::new(1);
    let engine = Engine::start(
        &config(ThreadingMode::Dedicated, IdleKind::Block),
        vec![a, b],
    )
    .expect("start");
    wait_for("the panic stops the engine", Duration::from_secs(5), || {
        engine.is_stopped()
    });
    let e = engine.stop().expect_err("panicked");
    assert!(
        matches!(&e, EngineError::Panicked { role } if role == "panicky"),
        "{e:?}"
    );
    assert_eq!(
        probe_b.closed.load(Ordering::Relaxed),
        1,
        "the other closed"
    );
}

/// An agent that reads a socket and reports each read, and also reports a "mailbox" counter
/// others bump before ringing its doorbell.
#[derive(Debug)]
struct Reader {
    sock: UnixStream,
    mailbox: Arc<AtomicUsize>,
    seen: usize,
    tx: mpsc::Sender<&'static str>,
}

impl Agent for Reader {
    fn role_name(&self) -> &str {
        "reader"
    }

    fn do_work(&mut self) -> usize {
        let mut work = 0;
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.sock).read(&mut buf) {
            if n == 0 {
                break;
            }
            work += n;
            let _ = self.tx.send("fd");
        }
        let m = self.mailbox.load(Ordering::Acquire);
        if m != self.seen {
            self.seen = m;
            work += 1;
            let _ = self.tx.send("doorbell");
        }
        work
    }

    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        fds.push(self.sock.as_raw_fd());
    }
}

/// An engine thread idle under `idle` wakes at once for a readable descriptor and for a
/// doorbell ring, although nothing else would wake it for seconds.
fn wakes_for_work(idle: IdleKind) {
    let (sock, mut peer) = UnixStream::pair().expect("socketpair");
    sock.set_nonblocking(true).expect("nonblocking");
    let (tx, rx) = mpsc::channel();
    let mailbox = Arc::new(AtomicUsize::new(0));
    let agent = Reader {
        sock,
        mailbox: Arc::clone(&mailbox),
        seen: 0,
        tx,
    };
    let mut c = config(ThreadingMode::Dedicated, idle);
    c.idle.max_block = Some(Duration::from_secs(60));
    c.idle.backoff.min_park = Duration::from_secs(5);
    c.idle.backoff.max_park = Duration::from_secs(10);
    let engine = Engine::start(&c, vec![agent]).expect("start");
    let bell = engine.doorbell(0).expect("agent 0").clone();
    assert!(engine.doorbell(1).is_none());
    for round in 0..3 {
        thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        peer.write_all(b"x").expect("write");
        assert_eq!(rx.recv_timeout(PROMPT), Ok("fd"), "{idle} round {round}");
        let fd_took = t0.elapsed();
        thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        mailbox.fetch_add(1, Ordering::Release);
        bell.ring();
        assert_eq!(
            rx.recv_timeout(PROMPT),
            Ok("doorbell"),
            "{idle} round {round}"
        );
        let bell_took = t0.elapsed();
        eprintln!("{idle}: woke for a readable fd in {fd_took:?}, for a ring in {bell_took:?}");
    }
    let stats = engine.stats();
    engine.stop().expect("stop");
    if idle == IdleKind::Block {
        // (A backoff engine may still be yielding when the ring comes, on a loaded machine.)
        assert!(stats[0].stats.doorbell_wakeups >= 3, "{stats:?}");
    }
}

#[test]
fn a_blocked_engine_wakes_for_a_descriptor_and_a_doorbell() {
    wakes_for_work(IdleKind::Block);
}

#[test]
fn a_parked_engine_wakes_for_a_descriptor_and_a_doorbell() {
    // 5 s parks: only the descriptor or the ring can end them in time.
    wakes_for_work(IdleKind::Backoff);
}

/// An idle agent with a periodic timer (like a node's link supervision) and a descriptor.
#[derive(Debug)]
struct Ticking {
    sock: UnixStream,
    every: Duration,
    next: Instant,
    ticks: Arc<AtomicUsize>,
}

impl Agent for Ticking {
    fn role_name(&self) -> &str {
        "ticking"
    }
    fn do_work(&mut self) -> usize {
        let now = Instant::now();
        if now < self.next {
            return 0;
        }
        self.next = now + self.every;
        self.ticks.fetch_add(1, Ordering::Relaxed);
        1
    }
    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        fds.push(self.sock.as_raw_fd());
    }
    fn next_deadline(&self) -> Option<Duration> {
        Some(self.next.saturating_duration_since(Instant::now()))
    }
}

/// CPU time the engine's thread(s) used over `window`, after `warmup`.
fn idle_cpu(engine: &Engine<Ticking>, warmup: Duration, window: Duration) -> Duration {
    let cpu = |e: &Engine<Ticking>| -> Duration {
        e.stats()
            .iter()
            .map(|r| r.cpu_time.expect("thread CPU time"))
            .sum()
    };
    thread::sleep(warmup);
    let before = cpu(engine);
    thread::sleep(window);
    cpu(engine) - before
}

fn ticking() -> (Ticking, Arc<AtomicUsize>, UnixStream) {
    let (sock, peer) = UnixStream::pair().expect("socketpair");
    let ticks = Arc::new(AtomicUsize::new(0));
    let agent = Ticking {
        sock,
        every: Duration::from_millis(50),
        next: Instant::now(),
        ticks: Arc::clone(&ticks),
    };
    (agent, ticks, peer)
}

#[test]
fn blocking_idle_uses_almost_no_cpu_and_still_runs_timers() {
    let (agent, ticks, _peer) = ticking();
    let engine =
        Engine::start(&config(ThreadingMode::Shared, IdleKind::Block), vec![agent]).expect("start");
    let window = Duration::from_millis(300);
    let used = idle_cpu(&engine, Duration::from_millis(20), window);
    let stats = engine.stats();
    engine.stop().expect("stop");
    eprintln!(
        "blocking: {used:?} CPU over {window:?} idle ({:.3} % of a core); {:?}",
        100.0 * used.as_secs_f64() / window.as_secs_f64(),
        stats[0].stats
    );
    // A 50 ms timer over ~320 ms: 6 or 7 ticks; a blocked thread wakes only for them.
    let ticks = ticks.load(Ordering::Relaxed);
    assert!((4..=9).contains(&ticks), "{ticks} ticks");
    assert!(used < Duration::from_millis(20), "{used:?} CPU while idle");
}

#[test]
fn backoff_idle_cpu_is_small_after_the_spin_phase() {
    let (agent, ticks, _peer) = ticking();
    let engine = Engine::start(
        &config(ThreadingMode::Shared, IdleKind::Backoff),
        vec![agent],
    )
    .expect("start");
    let window = Duration::from_millis(300);
    let used = idle_cpu(&engine, Duration::from_millis(20), window);
    let stats = engine.stats();
    engine.stop().expect("stop");
    eprintln!(
        "backoff: {used:?} CPU over {window:?} idle ({:.3} % of a core); {:?}",
        100.0 * used.as_secs_f64() / window.as_secs_f64(),
        stats[0].stats
    );
    assert!(ticks.load(Ordering::Relaxed) >= 4, "timers run");
    // After each tick: 10 spins, 20 yields, then parks of 50 µs doubling up to 10 ms, the
    // rest of the 50 ms asleep: a few ms of CPU in all (~1 %), nowhere near a spinning core.
    let st = stats[0].stats;
    assert!(used < Duration::from_millis(30), "{used:?} CPU while idle");
    assert!(
        st.parks >= 20 && st.yields >= 20,
        "it yields, then parks: {st:?}"
    );
    assert!(
        st.duty_cycles < 2000,
        "cycles are rationed by the parks: {st:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two nodes, each driven by an engine, in two namespaces.

const SVC: u32 = 18889;
const TOL: Duration = Duration::from_millis(1500);
const MESSAGES: usize = 24;
const SIZES: [usize; 6] = [16, 1400, 3000, 66_000, 1, 500];

fn payload(k: usize) -> Vec<u8> {
    let size = SIZES[k % SIZES.len()];
    (0..size).map(|i| (i + k) as u8).collect()
}

/// What a node agent does besides running the node.
#[derive(Debug)]
enum App {
    /// Binds {SVC,17} once the link is up and echoes every datagram.
    Echo { port: Option<u32>, echoed: usize },
    /// Once the binding is known, sends [`MESSAGES`] datagrams one at a time, checks each
    /// echo, and reports the outcome once.
    Send {
        port: Option<u32>,
        next: usize,
        awaiting: bool,
        done: Option<mpsc::Sender<Result<usize, String>>>,
    },
}

/// A node and its application as one agent, as an embedded `utipc` command would run.
#[derive(Debug)]
struct NodeAgent {
    rt: NodeRuntime,
    app: App,
}

impl NodeAgent {
    fn app_work(&mut self) -> usize {
        let rt = &mut self.rt;
        match &mut self.app {
            App::Echo { port, echoed } => {
                let Some(p) = *port else {
                    if rt.node().peers_up() == 0 {
                        return 0;
                    }
                    let p = rt.node_mut().open_port();
                    let now = rt.now();
                    rt.node_mut()
                        .bind(now, p, Scope::Cluster, SVC, 17, 17)
                        .expect("bind");
                    *port = Some(p);
                    return 1;
                };
                let mut work = 0;
                while let Some(m) = rt.node_mut().recv(p) {
                    let now = rt.now();
                    let to = Addr::Socket {
                        port: m.from.0,
                        node: m.from.1,
                    };
                    // A congested link drops the echo; the sender then times out and says so.
                    let _ = rt.node_mut().send(now, p, to, SendOpts::default(), &m.data);
                    *echoed += 1;
                    work += 1;
                }
                work
            }
            App::Send {
                port,
                next,
                awaiting,
                done,
            } => {
                if done.is_none() {
                    return 0;
                }
                let Some(p) = *port else {
                    if !rt.node().name_table().iter().any(|b| b.service_type == SVC) {
                        return 0;
                    }
                    *port = Some(rt.node_mut().open_port());
                    return 1;
                };
                if *awaiting {
                    let Some(m) = rt.node_mut().recv(p) else {
                        return 0;
                    };
                    let outcome = if m.data == payload(*next) {
                        *next += 1;
                        *awaiting = false;
                        (*next == MESSAGES).then_some(Ok(MESSAGES))
                    } else {
                        Some(Err(format!("echo {next} differs")))
                    };
                    if let Some(outcome) = outcome
                        && let Some(tx) = done.take()
                    {
                        let _ = tx.send(outcome);
                    }
                    return 1;
                }
                let now = rt.now();
                let to = Addr::Service {
                    service_type: SVC,
                    instance: 17,
                    domain: 0,
                };
                match rt
                    .node_mut()
                    .send(now, p, to, SendOpts::default(), &payload(*next))
                {
                    Ok(()) => {
                        *awaiting = true;
                        1
                    }
                    Err(SendError::Congested) => 0,
                    Err(e) => {
                        if let Some(tx) = done.take() {
                            let _ = tx.send(Err(format!("send {next}: {e}")));
                        }
                        1
                    }
                }
            }
        }
    }
}

impl Agent for NodeAgent {
    fn role_name(&self) -> &str {
        match self.app {
            App::Echo { .. } => "echo",
            App::Send { .. } => "send",
        }
    }
    fn do_work(&mut self) -> usize {
        let node = self.rt.do_work();
        node + self.app_work()
    }
    fn on_close(&mut self) {
        Agent::on_close(&mut self.rt);
    }
    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        self.rt.wait_fds(fds);
    }
    fn next_deadline(&self) -> Option<Duration> {
        self.rt.next_deadline()
    }
}

/// A node in `ns` with one bearer of `kind` ("udp" or "eth") on the veth.
fn node_in(
    ns: &Netns,
    name: &'static str,
    seed: u64,
    kind: &'static str,
    ip: &'static str,
) -> NodeRuntime {
    ns.run(move || {
        let id: NodeId = name.parse().expect("id");
        let mut rt = NodeRuntime::new(Node::new(NodeConfig::new(id, seed)));
        let bearer: Box<dyn Bearer + Send> = match kind {
            "udp" => {
                let ip: IpAddr = ip.parse().expect("ip");
                Box::new(UdpBearer::open(UdpBearerConfig::new(ip, 4711)).expect("udp bearer"))
            }
            _ => Box::new(PacketBearer::open(VETH).expect("packet bearer")),
        };
        rt.add_bearer(bearer, &format!("{kind}:{VETH}"), VETH, TOL)
            .expect("bearer");
        rt
    })
}

/// Two engines (`threading`, `idle`) drive a node each; the sender's datagrams must all come
/// back; then both sit idle with the link up for 2 s and their CPU use is printed.
fn two_engines(kind: &'static str, threading: ThreadingMode, idle: IdleKind) {
    let pair = veth_pair(None, None);
    let a = node_in(&pair.a, "eng-a", 1, kind, A4);
    let b = node_in(&pair.b, "eng-b", 2, kind, B4);
    let (tx, rx) = mpsc::channel();
    let cfg = config(threading, idle);
    let echo = Engine::start(
        &cfg,
        vec![NodeAgent {
            rt: b,
            app: App::Echo {
                port: None,
                echoed: 0,
            },
        }],
    )
    .expect("start B");
    let send = Engine::start(
        &cfg,
        vec![NodeAgent {
            rt: a,
            app: App::Send {
                port: None,
                next: 0,
                awaiting: false,
                done: Some(tx),
            },
        }],
    )
    .expect("start A");
    let outcome = rx.recv_timeout(Duration::from_secs(30));
    // Stops an engine and shuts its node down cleanly; returns the agent and its links before
    // the shutdown.
    let finish = |e: Engine<NodeAgent>| -> (NodeAgent, usize) {
        let mut agents = e.stop().expect("stop");
        let mut agent = agents.pop().expect("one agent");
        let links = agent.rt.node().links().len();
        agent.rt.shutdown();
        (agent, links)
    };
    let outcome = match outcome {
        Ok(Ok(n)) => n,
        other => {
            let (a, _) = finish(send);
            let (b, _) = finish(echo);
            panic!(
                "{kind}/{idle}: {other:?}; A: peers {:?} app {:?} rt {:?}; B: peers {:?} app \
                 {:?} rt {:?}",
                a.rt.node().peers(),
                a.app,
                a.rt.stats(),
                b.rt.node().peers(),
                b.app,
                b.rt.stats()
            );
        }
    };
    assert_eq!(outcome, MESSAGES);
    // Idle with the link up: what an idle utipcd costs.
    let window = Duration::from_secs(2);
    let cpu =
        |e: &Engine<NodeAgent>| -> Duration { e.stats().iter().filter_map(|r| r.cpu_time).sum() };
    thread::sleep(Duration::from_millis(100));
    let (a0, b0) = (cpu(&send), cpu(&echo));
    let (sa0, sb0) = (send.stats()[0].stats, echo.stats()[0].stats);
    let t0 = Instant::now();
    thread::sleep(window);
    let (a1, b1) = (cpu(&send), cpu(&echo));
    let wall = t0.elapsed().as_secs_f64();
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall;
    let (sa1, sb1) = (send.stats()[0].stats, echo.stats()[0].stats);
    let per_s = |n0: u64, n1: u64| (n1 - n0) as f64 / wall;
    let rates = |s0: RunnerStats, s1: RunnerStats| {
        format!(
            "{:.0} cycles/s ({:.0} with work), {:.0} yields/s, {:.0} parks/s",
            per_s(s0.duty_cycles, s1.duty_cycles),
            per_s(
                s0.duty_cycles - s0.idle_cycles,
                s1.duty_cycles - s1.idle_cycles
            ),
            per_s(s0.yields, s1.yields),
            per_s(s0.parks, s1.parks)
        )
    };
    let (_, links_a) = finish(send);
    let (b, links_b) = finish(echo);
    println!(
        "idle node CPU ({kind}, {threading}, --idle {idle}, link up, {wall:.1} s): node A \
         {:.3} % of a core, node B {:.3} %; A: {}; B: {}",
        pct(a1 - a0),
        pct(b1 - b0),
        rates(sa0, sa1),
        rates(sb0, sb1)
    );
    assert_eq!((links_a, links_b), (1, 1), "the link stayed up while idle");
    assert!(matches!(b.app, App::Echo { echoed, .. } if echoed == MESSAGES));
    drop(pair);
}

#[test]
fn idle_node_cpu_backoff_two_engines_over_udp() {
    if !available("idle_node_cpu_backoff_two_engines_over_udp") {
        return;
    }
    two_engines("udp", ThreadingMode::Shared, IdleKind::Backoff);
}

#[test]
fn idle_node_cpu_blocking_two_engines_over_af_packet() {
    if !available("idle_node_cpu_blocking_two_engines_over_af_packet") {
        return;
    }
    two_engines("eth", ThreadingMode::Dedicated, IdleKind::Block);
}
