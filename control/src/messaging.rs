//! The messaging subcommands of `utipc`: `ping`, `echo`, `send`, `recv`.
//!
//! Each runs against a [`Session`]: today a whole node inside the command (`--embedded`),
//! later a client attached to utipcd. They first wait (bounded) for the destination to appear
//! in the name table, then act; an embedded node is shut down with peer-stopping RESETs at the
//! end, so peers see it leave at once rather than after the link tolerance.
//!
//! An embedded node runs on the poll-mode engine in the invoker mode: the command's own thread
//! runs the node's duty cycles ([`AgentInvoker`]) between its steps, idling as `--idle` says
//! (`spin` for the lowest latency, as benchmarks use it; `backoff` by default; `block`), and
//! pinned to `--cpu` if given.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use utipc_dataplane::engine::{AgentInvoker, EngineError, IdleConfig};
use utipc_dataplane::runtime::NodeRuntime;
use utipc_proto::name_table::Scope;
use utipc_proto::node::{Addr, Received, SendError, SendOpts};
use utipc_proto::wire::MAX_USER_MSG_SIZE;
use utipc_proto::wire::common::Importance;

use crate::config::NodeOptions;
use crate::node_setup::{self, SetupError};
use crate::service::ServiceSpec;

/// Longest single wait of a command that runs until a signal (echo without `--duration`).
const FOREVER: Duration = Duration::from_secs(3600);

/// A node the messaging commands run on.
#[derive(Debug)]
pub struct Session {
    inv: AgentInvoker<NodeRuntime>,
    stop: Arc<AtomicBool>,
}

impl Session {
    /// Starts a node inside this process, on an engine in the invoker mode with the `--idle`
    /// strategy, and pins the calling thread to the `--cpu` list (if given). SIGTERM and
    /// SIGINT then make the commands stop (see [`Session::stopped`]), waking an idle engine.
    pub fn embedded(opts: &NodeOptions) -> Result<Self, SetupError> {
        let rt = node_setup::start(opts, node_setup::fresh_seed())?;
        let mut inv = AgentInvoker::new(rt, &IdleConfig::new(opts.idle))
            .map_err(|e| SetupError::Engine(EngineError::Setup(e)))?;
        if let Some(cpus) = &opts.cpus {
            inv = inv.with_cpus(cpus.clone());
        }
        inv.start().map_err(SetupError::Engine)?;
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            // Registration only fails for forbidden signals; these are allowed. The flag first:
            // actions run in the order they were registered, so the engine woken by the
            // doorbell sees the flag set.
            let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
            let bell = inv.doorbell().clone();
            // SAFETY: the action only rings the doorbell, an atomic swap and at most one
            // write(2) to an eventfd: async-signal-safe, no allocation, no lock (the clone is
            // made here, outside the handler). signal-hook preserves errno around it.
            let _ = unsafe { signal_hook::low_level::register(sig, move || bell.ring()) };
        }
        Ok(Self { inv, stop })
    }

    /// The runtime (for tests and advanced use).
    pub fn runtime(&mut self) -> &mut NodeRuntime {
        self.inv.agent_mut()
    }

    /// Whether SIGTERM or SIGINT arrived.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Leaves the cluster: peer-stopping RESETs on every link.
    pub fn close(&mut self) {
        self.inv.agent_mut().shutdown();
        self.inv.close();
    }

    /// Runs the node's duty cycles, idling in between as `--idle` says, until `cond` holds,
    /// `timeout` passes or a signal arrives; returns whether `cond` held.
    fn run_until(
        &mut self,
        timeout: Duration,
        mut cond: impl FnMut(&mut NodeRuntime) -> bool,
    ) -> Result<bool, String> {
        let stop = &self.stop;
        let mut held = false;
        self.inv
            .run_until(timeout, |rt| {
                held = cond(rt);
                held || stop.load(Ordering::Relaxed)
            })
            .map_err(|e| format!("running the node: {e}"))?;
        Ok(held)
    }

    /// One duty cycle of the node, then the idle strategy (which waits for the bearers, the
    /// node's next timer or a signal when the cycle found nothing to do).
    fn step(&mut self) {
        let work = self.inv.invoke();
        self.inv.idle(work);
    }

    /// Waits until some node has a binding overlapping `spec`.
    fn wait_for(&mut self, spec: ServiceSpec, timeout: Duration) -> Result<(), String> {
        let found = self.run_until(timeout, |rt| {
            rt.node().name_table().iter().any(|b| {
                b.service_type == spec.service_type
                    && b.lower <= spec.upper
                    && spec.lower <= b.upper
            })
        })?;
        if found {
            Ok(())
        } else {
            Err(format!(
                "no binding of {spec} appeared within {} s (is the destination up, on the same \
                 network id, and reachable over a bearer?)",
                timeout.as_secs_f64()
            ))
        }
    }

    fn open_port(&mut self) -> u32 {
        self.runtime().node_mut().open_port()
    }

    fn send(&mut self, from: u32, to: Addr, opts: SendOpts, data: &[u8]) -> Result<(), SendError> {
        let rt = self.runtime();
        let now = rt.now();
        let r = rt.node_mut().send(now, from, to, opts, data);
        rt.flush();
        r
    }

    /// Sends, retrying while the link is congested (bounded by `timeout`).
    fn send_retrying(
        &mut self,
        from: u32,
        to: Addr,
        opts: SendOpts,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = StdInstant::now() + timeout;
        loop {
            match self.send(from, to, opts, data) {
                Ok(()) => return Ok(()),
                // The acknowledgements that open the window arrive on a bearer.
                Err(SendError::Congested) if StdInstant::now() < deadline && !self.stopped() => {
                    self.step();
                }
                Err(e) => return Err(format!("send failed: {e}")),
            }
        }
    }

    fn bind(&mut self, port: u32, spec: ServiceSpec) -> Result<(), String> {
        let rt = self.runtime();
        let now = rt.now();
        rt.node_mut()
            .bind(
                now,
                port,
                Scope::Cluster,
                spec.service_type,
                spec.lower,
                spec.upper,
            )
            .map_err(|e| format!("bind {spec}: {e}"))?;
        rt.flush();
        Ok(())
    }

    /// Waits for the node's address trial to end (binding before it is fine, but sending is
    /// not: nothing can be reached without an address).
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        if self.run_until(timeout, |rt| rt.node().addr_committed())? {
            Ok(())
        } else {
            Err("the node did not finish its address trial".to_owned())
        }
    }
}

fn to_addr(spec: ServiceSpec) -> Addr {
    if spec.is_single() {
        Addr::Service {
            service_type: spec.service_type,
            instance: spec.lower,
            domain: 0,
        }
    } else {
        Addr::Range {
            service_type: spec.service_type,
            lower: spec.lower,
            upper: spec.upper,
        }
    }
}

fn importance(level: u8) -> Result<Importance, String> {
    Importance::from_u8(level)
        .ok_or_else(|| format!("--importance {level}: use 0 (low) to 3 (critical)"))
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
pub fn ping(s: &mut Session, a: &PingArgs) -> Result<bool, String> {
    if !(8..=MAX_USER_MSG_SIZE).contains(&a.size) {
        return Err(format!("--size {}: use 8 to 66000 bytes", a.size));
    }
    if !a.to.is_single() {
        return Err(format!(
            "--to {}: ping needs one instance (TYPE:INSTANCE)",
            a.to
        ));
    }
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let opts = SendOpts {
        importance: importance(a.importance)?,
        ..SendOpts::default()
    };
    s.wait_ready(timeout)?;
    s.wait_for(a.to, timeout)?;
    let src = s.open_port();
    let mut rtts = Vec::new();
    let mut out = std::io::stdout().lock();
    for seq in 0..a.count {
        if s.stopped() {
            break;
        }
        let data = ping_payload(seq, a.size);
        let t0 = StdInstant::now();
        s.send_retrying(src, to_addr(a.to), opts, &data, timeout)?;
        let mut reply: Option<Received> = None;
        let got = s.run_until(timeout, |rt| {
            while let Some(m) = rt.node_mut().recv(src) {
                if m.data.get(..4) == data.get(..4) || m.error.is_some() {
                    reply = Some(m);
                    return true;
                }
            }
            false
        })?;
        let rtt = t0.elapsed();
        match reply {
            Some(m) if got && m.error.is_none() && m.data == data => {
                rtts.push(rtt.as_micros() as u64);
                let _ = writeln!(
                    out,
                    "{} bytes from {:x}@{:08x}: seq={seq} rtt={} us",
                    m.data.len(),
                    m.from.0,
                    m.from.1,
                    rtt.as_micros()
                );
            }
            Some(m) if m.error.is_some() => {
                let _ = writeln!(
                    out,
                    "seq={seq}: returned with {:?}",
                    m.error.map(|e| e.name())
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
            let _ = s.run_until(Duration::from_millis(a.interval), |_| false)?;
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

/// `utipc echo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoArgs {
    /// Service address or range to bind: TYPE:INSTANCE or TYPE:LOWER:UPPER (repeatable).
    #[arg(long, required = true)]
    pub bind: Vec<ServiceSpec>,
    /// Seconds to run (default: until SIGTERM or SIGINT).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print nothing per datagram.
    #[arg(long)]
    pub quiet: bool,
}

/// Binds and echoes every datagram to its sender until the duration ends or a signal arrives.
pub fn echo(s: &mut Session, a: &EchoArgs) -> Result<bool, String> {
    let port = s.open_port();
    for spec in &a.bind {
        s.bind(port, *spec)?;
    }
    let deadline = a
        .duration
        .map(|d| StdInstant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "echo: bound {} on port {port:x}",
        a.bind
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = out.flush();
    let mut echoed = 0u64;
    let mut inbox = Vec::new();
    while !s.stopped() {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(StdInstant::now()),
            None => FOREVER,
        };
        if left.is_zero() {
            break;
        }
        s.run_until(left, |rt| {
            while let Some(m) = rt.node_mut().recv(port) {
                inbox.push(m);
            }
            !inbox.is_empty()
        })?;
        for m in inbox.drain(..) {
            if m.error.is_some() {
                continue;
            }
            let to = Addr::Socket {
                port: m.from.0,
                node: m.from.1,
            };
            let opts = SendOpts {
                importance: m.importance,
                ..SendOpts::default()
            };
            s.send_retrying(port, to, opts, &m.data, Duration::from_secs(1))?;
            echoed += 1;
            if !a.quiet {
                let _ = writeln!(
                    out,
                    "echoed {} bytes from {:x}@{:08x}",
                    m.data.len(),
                    m.from.0,
                    m.from.1
                );
            }
        }
        let _ = out.flush();
    }
    let _ = writeln!(out, "echo: {echoed} datagrams echoed");
    Ok(true)
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
pub fn send(s: &mut Session, a: &SendArgs) -> Result<bool, String> {
    let mut data = Vec::new();
    std::io::stdin()
        .take(MAX_USER_MSG_SIZE as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("reading standard input: {e}"))?;
    if data.len() > MAX_USER_MSG_SIZE {
        return Err(
            "standard input holds more than 66,000 bytes: a datagram carries at most that"
                .to_owned(),
        );
    }
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let opts = SendOpts {
        importance: importance(a.importance)?,
        ..SendOpts::default()
    };
    s.wait_ready(timeout)?;
    s.wait_for(a.to, timeout)?;
    let src = s.open_port();
    s.send_retrying(src, to_addr(a.to), opts, &data, timeout)?;
    // Let the link deliver (and retransmit if needed) before the node leaves.
    let _ = s.run_until(Duration::from_millis(200), |_| false)?;
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
pub fn recv(s: &mut Session, a: &RecvArgs) -> Result<bool, String> {
    let port = s.open_port();
    s.bind(port, a.bind)?;
    let deadline = StdInstant::now() + Duration::from_secs_f64(a.timeout.max(0.001));
    let mut got = 0;
    let mut out = std::io::stdout().lock();
    while got < a.count {
        let left = deadline.saturating_duration_since(StdInstant::now());
        let mut msg = None;
        let arrived = s.run_until(left, |rt| {
            msg = rt.node_mut().recv(port);
            msg.is_some()
        })?;
        match msg {
            Some(m) if arrived => {
                out.write_all(&m.data)
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("writing standard output: {e}"))?;
                got += 1;
            }
            _ => {
                return Err(format!(
                    "received {got} of {} datagrams before the timeout",
                    a.count
                ));
            }
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
}
