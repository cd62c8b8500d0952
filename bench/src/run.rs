//! The measurements (closed loop, throughput, open loop) and the per-transport orchestration:
//! a server thread in namespace b and a client thread in namespace a, each pinned to its core.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use utipc_dataplane::engine::{CpuList, pin_current_thread};

use crate::netns::{self, Pair, VETH};
use crate::report::{Cell, OpenLoop};
use crate::stats::{Recorder, Throughput};
use crate::transport::{
    BearerKind, Client, ECHO, Idle, QUIT, RECV_BUF, RawXdpClient, SINK, STREAM_BURST,
    STREAM_BURST_BYTES, Shared, TcpClient, TipcClient, UdpClient, serve,
};

/// How long a round trip may take before it counts as lost.
const REPLY_TIMEOUT: Duration = Duration::from_millis(200);

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Transports, in order (see [`crate::report::TRANSPORTS`]).
    pub transports: Vec<String>,
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Warm-up round trips per cell (not recorded).
    pub warmup: u64,
    /// Timed round trips per cell (and messages per open-loop run).
    pub count: u64,
    /// Length of each throughput window (zero: skip throughput).
    pub duration: Duration,
    /// Hard limit on each measurement of a cell.
    pub cell_timeout: Duration,
    /// Open-loop rate in msg/s (`None`: half the transport's closed-loop maximum, 1/mean RTT).
    pub rate: Option<f64>,
    /// Sizes measured open loop.
    pub open_sizes: Vec<usize>,
    /// Busy-poll or block.
    pub idle: Idle,
    /// The client's CPU.
    pub client_cpu: usize,
    /// The server's CPU.
    pub server_cpu: usize,
}

fn seq_of(buf: &[u8], n: usize) -> Option<u64> {
    (n >= 8).then(|| u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8])))
}

fn send_blocking(ep: &mut dyn Client, msg: &[u8], idle: Idle) -> io::Result<()> {
    let t0 = Instant::now();
    while !ep.send(msg)? {
        if t0.elapsed() > Duration::from_secs(2) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no room to send for 2 s",
            ));
        }
        ep.wait(idle, Duration::from_millis(1));
    }
    Ok(())
}

/// Closed-loop round trips: (histogram, lost, timed out).
/// Sequence numbers come from `seq`, unique over the whole run, so a late echo of an earlier
/// phase never matches.
pub fn closed_loop(
    ep: &mut dyn Client,
    size: usize,
    seq: &mut u64,
    cfg: &Config,
) -> io::Result<(Recorder, u64, bool)> {
    let mut rec = Recorder::new();
    let mut msg = vec![0xa5u8; size.max(8)];
    let mut buf = vec![0u8; RECV_BUF];
    let deadline = Instant::now() + cfg.cell_timeout;
    let (mut lost, mut timed_out) = (0, false);
    for k in 0..cfg.warmup + cfg.count {
        if Instant::now() > deadline || netns::stopped() {
            timed_out = true;
            break;
        }
        let i = *seq;
        *seq += 1;
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let t0 = Instant::now();
        send_blocking(ep, &msg, cfg.idle)?;
        loop {
            if let Some(n) = ep.recv(&mut buf)? {
                if seq_of(&buf, n) == Some(i) {
                    let rtt = t0.elapsed();
                    if k >= cfg.warmup {
                        rec.record(rtt);
                    }
                    break;
                }
                continue;
            }
            if t0.elapsed() > REPLY_TIMEOUT {
                lost += 1;
                break;
            }
            ep.wait(cfg.idle, Duration::from_millis(1));
        }
    }
    Ok((rec, lost, timed_out))
}

/// One-way streaming for `cfg.duration`, counted at the server. `by_bytes` counts bytes / size
/// (TCP, a stream) instead of messages; `reliable` waits for every message to arrive before
/// echoing again (TCP, TIPC).
pub fn throughput(
    ep: &mut dyn Client,
    shared: &Shared,
    size: usize,
    by_bytes: bool,
    reliable: bool,
    cfg: &Config,
) -> io::Result<Throughput> {
    let msg = vec![0x5au8; size];
    let mut buf = vec![0u8; RECV_BUF];
    let counter = || {
        if by_bytes {
            shared.rx_bytes.load(Ordering::Relaxed) / size.max(1) as u64
        } else {
            shared.rx_msgs.load(Ordering::Relaxed)
        }
    };
    shared.mode.store(SINK, Ordering::Relaxed);
    let before = counter();
    let t0 = Instant::now();
    let mut sent = 0u64;
    // A burst ends after STREAM_BURST messages or STREAM_BURST_BYTES, whichever comes first:
    // a duty cycle's budget, which keeps large messages from piling up megabytes per cycle.
    let (mut burst, mut burst_bytes) = (0, 0);
    while t0.elapsed() < cfg.duration && !netns::stopped() {
        if ep.send_more(&msg)? {
            sent += 1;
            burst += 1;
            burst_bytes += size;
            if burst >= STREAM_BURST || burst_bytes >= STREAM_BURST_BYTES {
                ep.flush()?;
                (burst, burst_bytes) = (0, 0);
            }
        } else {
            (burst, burst_bytes) = (0, 0);
            ep.wait(cfg.idle, Duration::from_millis(1));
        }
    }
    ep.flush()?;
    let secs = t0.elapsed().as_secs_f64();
    let after = counter();
    // Drain: keep the client's stack running (TIPC acks and retransmissions, TCP's unsent
    // tail) until the server has seen everything (reliable transports) or nothing more arrives
    // for 50 ms (datagrams), then echo again.
    let (mut last, mut stable) = (counter(), Instant::now());
    let limit = Instant::now() + Duration::from_secs(5);
    let done = |now: u64, stable: Instant| {
        if reliable {
            now - before >= sent
        } else {
            stable.elapsed() >= Duration::from_millis(50)
        }
    };
    while !done(counter(), stable) && Instant::now() < limit && !netns::stopped() {
        let _ = ep.recv(&mut buf)?;
        ep.wait(cfg.idle, Duration::from_millis(1));
        let now = counter();
        if now != last {
            (last, stable) = (now, Instant::now());
        }
    }
    while ep.recv(&mut buf)?.is_some() {}
    shared.mode.store(ECHO, Ordering::Relaxed);
    Ok(Throughput::new(after - before, size, secs))
}

/// Open loop: `cfg.count` messages at `rate`, latency from each one's intended send time.
pub fn open_loop(
    ep: &mut dyn Client,
    size: usize,
    rate: f64,
    seq_base: &mut u64,
    cfg: &Config,
) -> io::Result<OpenLoop> {
    let base = *seq_base;
    *seq_base += cfg.count;
    let mut rec = Recorder::new();
    let mut msg = vec![0xa5u8; size.max(8)];
    let mut buf = vec![0u8; RECV_BUF];
    let count = cfg.count;
    let interval = 1e9 / rate.max(1.0);
    let intended = |i: u64| Duration::from_nanos((i as f64 * interval) as u64);
    let mut seen = vec![false; usize::try_from(count).unwrap_or(0)];
    let (mut next, mut got) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + cfg.cell_timeout;
    let mut last_send = start;
    loop {
        let now = Instant::now();
        if now > deadline || netns::stopped() {
            break;
        }
        if next < count && now.duration_since(start) >= intended(next) {
            msg[..8].copy_from_slice(&(base + next).to_le_bytes());
            if ep.send(&msg)? {
                next += 1;
                last_send = Instant::now();
            }
        }
        if let Some(n) = ep.recv(&mut buf)? {
            let t = Instant::now();
            if let Some(seq) = seq_of(&buf, n)
                .and_then(|s| s.checked_sub(base))
                .filter(|&s| s < count)
                && let Some(flag) = seen.get_mut(seq as usize)
                && !*flag
            {
                *flag = true;
                got += 1;
                rec.record(t.saturating_duration_since(start + intended(seq)));
            }
            continue;
        }
        if next >= count && (got == count || last_send.elapsed() > REPLY_TIMEOUT) {
            break;
        }
        let until_next = intended(next).saturating_sub(start.elapsed());
        ep.wait(cfg.idle, until_next.min(Duration::from_millis(1)));
    }
    let latency = rec
        .summary()
        .ok_or_else(|| io::Error::other("open loop: no echo came back"))?;
    Ok(OpenLoop {
        rate,
        latency,
        lost: next - got,
    })
}

fn pin(cpu: usize) -> io::Result<()> {
    pin_current_thread(&CpuList::single(cpu))
        .map_err(|e| io::Error::other(format!("pin to cpu{cpu}: {e}")))
}

fn wait_ready(shared: &Shared) -> io::Result<()> {
    let t0 = Instant::now();
    while !shared.ready.load(Ordering::Acquire) {
        if shared.quit() || t0.elapsed() > Duration::from_secs(20) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "server not ready after 20 s",
            ));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn open_client(
    transport: &str,
    shared: &Shared,
    server_mac: [u8; 6],
) -> io::Result<(Box<dyn Client>, String)> {
    let tipc = |kind| -> io::Result<(Box<dyn Client>, String)> {
        let c = TipcClient::open(kind, shared)?;
        let info = c.info.clone();
        Ok((Box::new(c), info))
    };
    match transport {
        "tipc-udp" => tipc(BearerKind::Udp),
        "tipc-packet" => tipc(BearerKind::Packet),
        "tipc-xdp" => tipc(BearerKind::Xdp),
        other => {
            wait_ready(shared)?;
            match other {
                "kernel-udp" => Ok((Box::new(UdpClient::open()?), String::new())),
                "kernel-tcp" => Ok((Box::new(TcpClient::open()?), String::new())),
                "raw-xdp" => {
                    let c = RawXdpClient::open(server_mac)?;
                    let info = c.info.clone();
                    Ok((Box::new(c), info))
                }
                _ => Err(io::Error::other(format!("unknown transport {other}"))),
            }
        }
    }
}

/// Every size of one transport on the client side.
fn client_cells(
    transport: &str,
    shared: &Shared,
    cfg: &Config,
    server_mac: [u8; 6],
) -> io::Result<(Vec<Cell>, String)> {
    let (mut ep, info) = open_client(transport, shared, server_mac)?;
    let mut cells = Vec::new();
    let mut seq = 0u64;
    for &size in &cfg.sizes {
        if netns::stopped() {
            break;
        }
        let mut cell = Cell {
            transport: transport.to_owned(),
            size,
            ..Cell::default()
        };
        let max = ep.max_payload();
        if size > max {
            if transport == "raw-xdp" {
                cell.note = Some(format!(
                    "N/A: larger than one {max}-byte frame (raw AF_XDP does not fragment)"
                ));
                cells.push(cell);
                continue;
            }
            cell.note = Some(format!(
                "{max} bytes sent: the largest UDP payload over IPv4"
            ));
        }
        let payload = size.min(max);
        cell.payload = payload;
        ep.set_size(payload);
        let mut notes: Vec<String> = cell.note.take().into_iter().collect();
        match closed_loop(ep.as_mut(), payload, &mut seq, cfg) {
            Ok((rec, lost, timed_out)) => {
                cell.rtt = rec.summary();
                cell.rtt_lost = lost;
                if timed_out {
                    notes.push(format!(
                        "closed loop stopped by the {:?} cell limit after {} samples",
                        cfg.cell_timeout,
                        rec.len()
                    ));
                }
            }
            Err(e) => notes.push(format!("closed loop failed: {e}")),
        }
        if !cfg.duration.is_zero() {
            match throughput(
                ep.as_mut(),
                shared,
                payload,
                transport == "kernel-tcp",
                transport == "kernel-tcp" || transport.starts_with("tipc-"),
                cfg,
            ) {
                Ok(t) => cell.throughput = Some(t),
                Err(e) => notes.push(format!("throughput failed: {e}")),
            }
        }
        if cfg.open_sizes.contains(&size) {
            let rate = cfg
                .rate
                .or_else(|| cell.rtt.map(|r| 0.5e6 / r.mean_us.max(0.001)));
            if let Some(rate) = rate {
                match open_loop(ep.as_mut(), payload, rate, &mut seq, cfg) {
                    Ok(o) => cell.open_loop = Some(o),
                    Err(e) => notes.push(format!("open loop failed: {e}")),
                }
            }
        }
        if !notes.is_empty() {
            cell.note = Some(notes.join("; "));
        }
        eprintln!(
            "  {transport:12} {size:6} B: p50 {} µs, {} msg/s{}",
            cell.rtt
                .map_or("–".to_owned(), |r| crate::report::fmt(r.p50_us)),
            cell.throughput
                .map_or("–".to_owned(), |t| format!("{:.0}", t.msgs_per_s)),
            cell.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        cells.push(cell);
    }
    Ok((cells, info))
}

/// The result of a thread that may not have started.
fn join<T>(
    h: io::Result<thread::ScopedJoinHandle<'_, io::Result<T>>>,
    what: &str,
) -> io::Result<T> {
    h.map_err(|e| io::Error::other(format!("cannot start the {what} thread: {e}")))?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other(format!("{what} thread panicked"))))
}

/// Runs one transport at every size: a server thread in `pair.b`, a client thread in `pair.a`.
/// Returns the cells (with a note on every cell if the transport could not run) and a line
/// describing the setup.
pub fn run_transport(pair: &Pair, transport: &str, cfg: &Config) -> (Vec<Cell>, String) {
    let shared = Arc::new(Shared::default());
    let server_mac = pair.b.mac(VETH).unwrap_or([0; 6]);
    let (fd_a, fd_b) = (pair.a.fd(), pair.b.fd());
    let result = thread::scope(|s| {
        let server = {
            let shared = Arc::clone(&shared);
            let t = transport.to_owned();
            let (cpu, idle) = (cfg.server_cpu, cfg.idle);
            // Named, so that profilers (`perf report --sort comm`) tell the two ends apart.
            thread::Builder::new()
                .name("utb-server".into())
                .spawn_scoped(s, move || {
                    let r = netns::enter(fd_b)
                        .and_then(|()| pin(cpu))
                        .and_then(|()| serve(&t, &shared, idle));
                    shared.mode.store(QUIT, Ordering::Relaxed);
                    r
                })
        };
        let client = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("utb-client".into())
                .spawn_scoped(s, move || {
                    let r = netns::enter(fd_a)
                        .and_then(|()| pin(cfg.client_cpu))
                        .and_then(|()| client_cells(transport, &shared, cfg, server_mac));
                    shared.mode.store(QUIT, Ordering::Relaxed);
                    r
                })
        };
        let c = join(client, "client");
        // The client sets QUIT when it ends; if it never started, the server must still stop.
        shared.mode.store(QUIT, Ordering::Relaxed);
        let sv = join(server, "server");
        (c, sv)
    });
    let server_info = shared.info.lock().map(|v| v.join(", ")).unwrap_or_default();
    match result {
        (Ok((cells, info)), sv) => {
            let mut line = info;
            if !server_info.is_empty() {
                line = format!("client: {line}; {server_info}");
            }
            if let Err(e) = sv {
                line.push_str(&format!("; server error: {e}"));
            }
            (cells, line)
        }
        (Err(e), sv) => {
            let why = match sv {
                Err(se) => format!("{e} (server: {se})"),
                Ok(()) => e.to_string(),
            };
            let cells = cfg
                .sizes
                .iter()
                .map(|&size| Cell {
                    transport: transport.to_owned(),
                    size,
                    note: Some(format!("not run: {why}")),
                    ..Cell::default()
                })
                .collect();
            (cells, format!("failed: {why}"))
        }
    }
}
