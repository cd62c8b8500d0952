//! The messaging subcommands of `utipc`: `ping`, `echo`, `send`, `recv`, `subscribe`.
//!
//! Each runs on a [`Session`]: a [`Client`] attached to the running utipcd, or with
//! `--embedded` to a whole node inside the command (the same client API over the same rings;
//! see [`crate::embedded`]). Sends to a service wait (bounded) for the service to appear, so a
//! command started right after its peer does not fail on the peer's first second.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use utipc_shm_api::records::{MAX_DATA, Status};
use utipc_shm_api::topology::{EventKind, Filter, Topology};
use utipc_shm_api::{
    Addr, Client, ClientOptions, Error, IdleMode, Importance, Scope, ServiceAddr, ServiceRange,
    Socket, SocketKind,
};

use crate::config::NodeOptions;
use crate::daemon::utc_timestamp;
use crate::embedded::EmbeddedNode;
use crate::service::ServiceSpec;

/// Longest single wait of a command that runs until a signal.
const FOREVER: Duration = Duration::from_secs(3600);
/// How often waits look at the stop flag (SIGINT/SIGTERM).
const STOP_POLL: Duration = Duration::from_millis(200);

/// Where a session's node is.
#[derive(Debug)]
pub enum Placement {
    /// Attach to the utipcd of this run directory (None: `$UTIPC_RUN_DIR` or `/run/utipc`).
    Daemon(Option<PathBuf>),
    /// Run a node inside the command.
    Embedded(NodeOptions),
}

/// A client for the messaging commands, and the embedded node if there is one.
#[derive(Debug)]
pub struct Session {
    client: Client,
    node: Option<EmbeddedNode>,
    stop: Arc<AtomicBool>,
}

impl Session {
    /// Attaches (or starts the embedded node); `idle` is how this command waits.
    /// SIGTERM and SIGINT then make the commands stop.
    ///
    /// # Errors
    ///
    /// The attachment's error text (no daemon: how to start one).
    pub fn open(place: Placement, idle: IdleMode) -> Result<Self, String> {
        let (client, node) = match place {
            Placement::Daemon(run_dir) => {
                let c = Client::attach_with(&ClientOptions { run_dir, idle })
                    .map_err(|e| e.to_string())?;
                (c, None)
            }
            Placement::Embedded(opts) => {
                let n = EmbeddedNode::start(&opts, idle).map_err(|e| e.to_string())?;
                (n.client().clone(), Some(n))
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            // Registration only fails for forbidden signals; these are allowed.
            let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
        }
        Ok(Self { client, node, stop })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether SIGTERM or SIGINT arrived.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Leaves: the embedded node (if any) stops with peer-stopping RESETs.
    pub fn close(self) {
        if let Some(n) = self.node {
            n.stop();
        }
    }

    fn socket(&self, kind: SocketKind) -> Result<Socket, String> {
        self.client
            .socket(kind)
            .map_err(|e| format!("opening a socket: {e}"))
    }

    /// Sends, waiting while the service has no binding yet (or the node no address) up to
    /// `timeout`; other errors at once.
    fn send_when_reachable(
        &self,
        sock: &Socket,
        to: Addr,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match sock.send_to(to, data) {
                Ok(()) => return Ok(()),
                Err(Error::Status(Status::NoRoute | Status::NotReady | Status::Unreachable))
                    if Instant::now() < deadline && !self.stopped() =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(Error::Status(Status::NoRoute)) => {
                    return Err(format!(
                        "no socket bound to {to} appeared within {} s (is the destination up, on \
                         the same network id, and reachable over a bearer?)",
                        timeout.as_secs_f64()
                    ));
                }
                Err(e) => return Err(format!("send to {to} failed: {e}")),
            }
        }
    }
}

fn to_addr(spec: ServiceSpec) -> Addr {
    if spec.is_single() {
        Addr::Service(ServiceAddr::new(spec.service_type, spec.lower))
    } else {
        Addr::Range(range(spec))
    }
}

fn range(spec: ServiceSpec) -> ServiceRange {
    ServiceRange::new(spec.service_type, spec.lower, spec.upper)
}

fn importance(level: u8) -> Result<Importance, String> {
    match level {
        0 => Ok(Importance::Low),
        1 => Ok(Importance::Medium),
        2 => Ok(Importance::High),
        3 => Ok(Importance::Critical),
        _ => Err(format!("--importance {level}: use 0 (low) to 3 (critical)")),
    }
}

/// `utipc ping` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PingArgs {
    /// Destination service address TYPE:INSTANCE (anycast).
    #[arg(long)]
    pub to: ServiceSpec,
    /// Datagrams to send.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// Data bytes per datagram (8..=66000).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds to wait for the destination, and for each echo.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Milliseconds between a reply and the next request (0 = back to back).
    #[arg(long, default_value_t = 0)]
    pub interval: u64,
    /// Importance 0..=3.
    #[arg(long, default_value_t = 0)]
    pub importance: u8,
    /// Throughput mode: keep this many datagrams in flight (each echo releases the next) and
    /// report messages/s and Gb/s instead of one line per ping.
    #[arg(long)]
    pub window: Option<u32>,
}

/// The payload of ping number `seq`: its number, then a pattern derived from it, so that a
/// corrupted or misdelivered echo is caught.
pub fn ping_payload(seq: u32, size: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8)
        .collect();
    if size >= 4 {
        v[..4].copy_from_slice(&seq.to_be_bytes());
    }
    v
}

/// Percentile `p` (0..=100) of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends `count` datagrams and waits for each echo, checking its content. Returns true only if
/// every echo came back intact.
pub fn ping(s: &Session, a: &PingArgs) -> Result<bool, String> {
    if !(8..=MAX_DATA).contains(&a.size) {
        return Err(format!("--size {}: use 8 to 66000 bytes", a.size));
    }
    if !a.to.is_single() {
        return Err(format!(
            "--to {}: ping needs one instance (TYPE:INSTANCE)",
            a.to
        ));
    }
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let sock = s.socket(SocketKind::Rdm)?;
    sock.set_importance(importance(a.importance)?)
        .map_err(|e| e.to_string())?;
    // Undeliverable pings come back, so a vanished echo server is reported, not waited for.
    sock.set_dest_droppable(false).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout));
    if let Some(w) = a.window {
        return flood(s, &sock, a, w.max(1), timeout);
    }
    let mut rtts = Vec::new();
    let mut out = std::io::stdout().lock();
    for seq in 0..a.count {
        if s.stopped() {
            break;
        }
        let data = ping_payload(seq, a.size);
        let t0 = Instant::now();
        s.send_when_reachable(&sock, to_addr(a.to), &data, timeout)?;
        let reply = loop {
            match sock.recv() {
                Ok(m) if m.data.get(..4) == data.get(..4) || m.error.is_some() => break Some(m),
                Ok(_) => {}
                Err(Error::TimedOut) => break None,
                Err(e) => return Err(format!("receiving: {e}")),
            }
        };
        let rtt = t0.elapsed();
        match reply {
            Some(m) if m.error.is_none() && m.data == data => {
                rtts.push(rtt.as_micros() as u64);
                let _ = writeln!(
                    out,
                    "{} bytes from {:x}@{:08x}: seq={seq} rtt={} us",
                    m.data.len(),
                    m.from.port,
                    m.from.node,
                    rtt.as_micros()
                );
            }
            Some(m) if m.error.is_some() => {
                let _ = writeln!(
                    out,
                    "seq={seq}: returned: {}",
                    m.error.map(|e| e.to_string()).unwrap_or_default()
                );
            }
            Some(_) => {
                let _ = writeln!(out, "seq={seq}: echo corrupted");
            }
            None => {
                let _ = writeln!(out, "seq={seq}: no echo within {} s", timeout.as_secs_f64());
            }
        }
        if a.interval > 0 {
            std::thread::sleep(Duration::from_millis(a.interval));
        }
    }
    let mut sorted = rtts.clone();
    sorted.sort_unstable();
    let _ = writeln!(
        out,
        "rtt_us min={} p50={} p99={} max={} sent={} received={}",
        sorted.first().copied().unwrap_or(0),
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted.last().copied().unwrap_or(0),
        a.count,
        rtts.len()
    );
    Ok(rtts.len() == a.count as usize)
}

/// Throughput: `window` datagrams in flight, each echo releasing the next, until `count`
/// echoes came back. Checks every echo's content.
fn flood(
    s: &Session,
    sock: &Socket,
    a: &PingArgs,
    window: u32,
    timeout: Duration,
) -> Result<bool, String> {
    let to = to_addr(a.to);
    let first = ping_payload(0, a.size);
    s.send_when_reachable(sock, to, &first, timeout)?;
    let t0 = Instant::now();
    let mut sent = 1u32;
    while sent < window.min(a.count) {
        sock.send_to(to, &ping_payload(sent, a.size))
            .map_err(|e| format!("send: {e}"))?;
        sent += 1;
    }
    let mut received = 0u32;
    let mut bad = 0u32;
    while received < a.count && !s.stopped() {
        let m = match sock.recv() {
            Ok(m) => m,
            Err(Error::TimedOut) => break,
            Err(e) => return Err(format!("receiving: {e}")),
        };
        received += 1;
        let seq = m
            .data
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(u32::MAX, u32::from_be_bytes);
        if m.error.is_some() || m.data != ping_payload(seq, a.size) {
            bad += 1;
        }
        if sent < a.count {
            sock.send_to(to, &ping_payload(sent, a.size))
                .map_err(|e| format!("send: {e}"))?;
            sent += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let rate = f64::from(received) / secs;
    let _ = writeln!(
        std::io::stdout(),
        "throughput: {received} echoes of {} bytes in {secs:.3} s, window {window}: {rate:.0} msg/s, \
         {:.3} Gb/s each way, {bad} bad",
        a.size,
        rate * a.size as f64 * 8.0 / 1e9
    );
    Ok(received == a.count && bad == 0)
}

/// `utipc echo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoArgs {
    /// Service address or range to bind an RDM echo to: TYPE:INSTANCE or TYPE:LOWER:UPPER
    /// (repeatable).
    #[arg(long)]
    pub bind: Vec<ServiceSpec>,
    /// Service address to accept STREAM connections on, echoing their bytes (TYPE:INSTANCE;
    /// repeatable).
    #[arg(long)]
    pub stream: Vec<ServiceSpec>,
    /// Seconds to run (default: until SIGTERM or SIGINT).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print nothing per datagram.
    #[arg(long)]
    pub quiet: bool,
}

/// Binds and echoes every datagram to its sender, and every connection's bytes back on it,
/// until the duration ends or a signal arrives.
pub fn echo(s: &Session, a: &EchoArgs) -> Result<bool, String> {
    if a.bind.is_empty() && a.stream.is_empty() {
        return Err("give --bind TYPE:INSTANCE (datagrams) and/or --stream TYPE:INSTANCE".into());
    }
    let deadline = a
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut listeners = Vec::new();
    for spec in &a.stream {
        let l = s.socket(SocketKind::Stream)?;
        l.bind(range(*spec), Scope::Cluster)
            .map_err(|e| format!("bind {spec}: {e}"))?;
        l.listen().map_err(|e| format!("listen on {spec}: {e}"))?;
        l.set_read_timeout(Some(STOP_POLL));
        listeners.push(l);
    }
    let dgram = s.socket(SocketKind::Rdm)?;
    for spec in &a.bind {
        dgram
            .bind(range(*spec), Scope::Cluster)
            .map_err(|e| format!("bind {spec}: {e}"))?;
    }
    let mut out = std::io::stdout().lock();
    let names: Vec<String> = a
        .bind
        .iter()
        .map(ToString::to_string)
        .chain(a.stream.iter().map(|s| format!("stream {s}")))
        .collect();
    let _ = writeln!(
        out,
        "echo: bound {} on port {:x}",
        names.join(" "),
        dgram.local_addr().port
    );
    let _ = out.flush();
    drop(out);
    let stop = Arc::clone(&s.stop);
    let mut acceptors = Vec::new();
    for l in listeners {
        let stop = Arc::clone(&stop);
        let quiet = a.quiet;
        acceptors.push(std::thread::spawn(move || {
            accept_loop(&l, &stop, deadline, quiet);
        }));
    }
    let echoed = if a.bind.is_empty() {
        wait_until_done(&stop, deadline);
        0
    } else {
        dgram_echo(&dgram, &stop, deadline, a.quiet)?
    };
    stop.store(true, Ordering::Relaxed);
    for t in acceptors {
        let _ = t.join();
    }
    let _ = writeln!(std::io::stdout(), "echo: {echoed} datagrams echoed");
    Ok(true)
}

fn left(deadline: Option<Instant>) -> Duration {
    deadline.map_or(FOREVER, |d| d.saturating_duration_since(Instant::now()))
}

fn wait_until_done(stop: &AtomicBool, deadline: Option<Instant>) {
    while !stop.load(Ordering::Relaxed) && !left(deadline).is_zero() {
        std::thread::sleep(left(deadline).min(STOP_POLL));
    }
}

fn dgram_echo(
    sock: &Socket,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    quiet: bool,
) -> Result<u64, String> {
    let mut echoed = 0u64;
    let mut importance = Importance::Low;
    while !stop.load(Ordering::Relaxed) {
        let l = left(deadline);
        if l.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(l.min(STOP_POLL)));
        let m = match sock.recv() {
            Ok(m) => m,
            Err(Error::TimedOut) => continue,
            Err(e) => return Err(format!("receiving: {e}")),
        };
        if m.error.is_some() {
            continue;
        }
        // Echo at the sender's importance (an option change costs a round trip to the node,
        // so only when it differs).
        if m.importance != importance && sock.set_importance(m.importance).is_ok() {
            importance = m.importance;
        }
        match sock.send_to(m.from, &m.data) {
            Ok(()) => echoed += 1,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "echo to {}: {e}", m.from);
                continue;
            }
        }
        if !quiet {
            let _ = writeln!(
                std::io::stdout(),
                "echoed {} bytes from {:x}@{:08x}",
                m.data.len(),
                m.from.port,
                m.from.node
            );
        }
    }
    Ok(echoed)
}

/// Accepts connections and echoes each on its own thread.
fn accept_loop(l: &Socket, stop: &Arc<AtomicBool>, deadline: Option<Instant>, quiet: bool) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) && !left(deadline).is_zero() {
        match l.accept() {
            Ok((c, peer)) => {
                if !quiet {
                    let _ = writeln!(std::io::stdout(), "stream: connection from {peer}");
                }
                let stop = Arc::clone(stop);
                conns.push(std::thread::spawn(move || {
                    let n = stream_echo(&c, &stop);
                    if !quiet {
                        let _ =
                            writeln!(std::io::stdout(), "stream: {peer} done, {n} bytes echoed");
                    }
                }));
            }
            Err(Error::TimedOut | Error::WouldBlock) => {}
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "accept: {e}");
                std::thread::sleep(STOP_POLL);
            }
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

/// Echoes a connection's bytes until its end; returns the bytes echoed.
fn stream_echo(c: &Socket, stop: &AtomicBool) -> u64 {
    // One read takes at most one received message, so with room for the largest one each
    // message goes back whole: a SEQPACKET peer (kernel TIPC does not tell socket types
    // apart on the wire) gets its records back with their boundaries.
    let mut buf = vec![0u8; MAX_DATA];
    let mut total = 0u64;
    c.set_read_timeout(Some(STOP_POLL));
    while !stop.load(Ordering::Relaxed) {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    break;
                }
                total += n as u64;
            }
            Err(Error::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = c.shutdown();
    total
}

/// `utipc send` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Destination: TYPE:INSTANCE (anycast) or TYPE:LOWER:UPPER (multicast).
    #[arg(long)]
    pub to: ServiceSpec,
    /// Seconds to wait for the destination.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Importance 0..=3.
    #[arg(long, default_value_t = 0)]
    pub importance: u8,
}

/// Sends one datagram with standard input as its data (at most 66,000 bytes).
pub fn send(s: &Session, a: &SendArgs) -> Result<bool, String> {
    let mut data = Vec::new();
    std::io::stdin()
        .take(MAX_DATA as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("reading standard input: {e}"))?;
    if data.len() > MAX_DATA {
        return Err(
            "standard input holds more than 66,000 bytes: a datagram carries at most that"
                .to_owned(),
        );
    }
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let sock = s.socket(SocketKind::Rdm)?;
    sock.set_importance(importance(a.importance)?)
        .map_err(|e| e.to_string())?;
    s.send_when_reachable(&sock, to_addr(a.to), &data, timeout)?;
    if s.node.is_some() {
        // An embedded node leaves with the command: let the link deliver (and retransmit if
        // needed) first.
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(true)
}

/// `utipc recv` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RecvArgs {
    /// Service address or range to bind: TYPE:INSTANCE or TYPE:LOWER:UPPER.
    #[arg(long)]
    pub bind: ServiceSpec,
    /// Datagrams to receive before exiting.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Seconds to wait in all.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

/// Binds and writes the data of each received datagram to standard output.
pub fn recv(s: &Session, a: &RecvArgs) -> Result<bool, String> {
    let sock = s.socket(SocketKind::Rdm)?;
    sock.bind(range(a.bind), Scope::Cluster)
        .map_err(|e| format!("bind {}: {e}", a.bind))?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout.max(0.001));
    let mut got = 0;
    let mut out = std::io::stdout().lock();
    while got < a.count && !s.stopped() {
        let l = deadline.saturating_duration_since(Instant::now());
        if l.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(l.min(STOP_POLL)));
        match sock.recv() {
            Ok(m) => {
                out.write_all(&m.data)
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("writing standard output: {e}"))?;
                got += 1;
            }
            Err(Error::TimedOut) => {}
            Err(e) => return Err(format!("receiving: {e}")),
        }
    }
    if got < a.count {
        return Err(format!(
            "received {got} of {} datagrams before the timeout",
            a.count
        ));
    }
    Ok(true)
}

/// `utipc subscribe` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SubscribeArgs {
    /// What to track: TYPE, TYPE:INSTANCE or TYPE:LOWER:UPPER (TYPE alone: every instance).
    /// Type 0 tracks nodes, type 2 links.
    pub what: String,
    /// An event for every binding (PORTS) rather than only for a range's first and last
    /// (SERVICE).
    #[arg(long)]
    pub ports: bool,
    /// Milliseconds until the subscription times out (default: never).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Ask this node's topology server instead of our own (hex node address).
    #[arg(long, value_parser = parse_hex)]
    pub node: Option<u32>,
    /// Exit after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}

fn parse_hex(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|_| format!("{s:?}: expected a hex node address such as 0f115f6f"))
}

fn subscription_range(what: &str) -> Result<ServiceRange, String> {
    if let Ok(t) = what.parse::<u32>() {
        return Ok(ServiceRange::new(t, 0, u32::MAX));
    }
    what.parse::<ServiceSpec>().map(range)
}

/// Subscribes and prints one line per event with a timestamp.
pub fn subscribe(s: &Session, a: &SubscribeArgs) -> Result<bool, String> {
    let r = subscription_range(&a.what)?;
    let topo = Topology::connect_to(&s.client, a.node.unwrap_or(0))
        .map_err(|e| format!("connecting to the topology server: {e}"))?;
    let filter = if a.ports {
        Filter::PORTS
    } else {
        Filter::SERVICE
    };
    topo.subscribe(r, filter, a.timeout.map(Duration::from_millis), 0)
        .map_err(|e| format!("subscribing: {e}"))?;
    topo.socket().set_read_timeout(Some(STOP_POLL));
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    while !s.stopped() && a.count.is_none_or(|c| n < c) {
        let ev = match topo.next_event() {
            Ok(ev) => ev,
            Err(Error::TimedOut) => continue,
            Err(e) => return Err(format!("topology server: {e}")),
        };
        n += 1;
        let what = match ev.kind {
            EventKind::Published => "published",
            EventKind::Withdrawn => "withdrawn",
            EventKind::Timeout => "timeout",
        };
        let _ = writeln!(
            out,
            "{} {what} {{{},{},{}}} port {:x}@{:08x}",
            utc_timestamp(std::time::SystemTime::now()),
            r.service_type,
            ev.found_lower,
            ev.found_upper,
            ev.port.port,
            ev.port.node
        );
        let _ = out.flush();
        if ev.kind == EventKind::Timeout {
            break;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_differ_per_sequence_number() {
        assert_eq!(ping_payload(7, 8)[..4], [0, 0, 0, 7]);
        assert_ne!(ping_payload(1, 64), ping_payload(2, 64));
        assert_eq!(ping_payload(1, 66_000).len(), 66_000);
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[5], 99.0), 5);
    }

    #[test]
    fn subscription_targets() {
        assert_eq!(
            subscription_range("18888").expect("type"),
            ServiceRange::new(18888, 0, u32::MAX)
        );
        assert_eq!(
            subscription_range("18888:5").expect("addr"),
            ServiceRange::new(18888, 5, 5)
        );
        assert!(subscription_range("x").is_err());
    }
}
