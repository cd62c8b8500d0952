//! `utipc-bench`: see the crate docs and docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use utipc_bench::intra::{self, IntraArgs};
use utipc_bench::netns::{self, Pair};
use utipc_bench::report::{Report, TRANSPORTS};
use utipc_bench::run::{Config, run_transport};
use utipc_bench::transport::Idle;

/// Benchmarks utipc (TIPC over AF_XDP, AF_PACKET and UDP) against raw AF_XDP and kernel
/// UDP/TCP between two network namespaces joined by a veth pair (needs root);
/// `utipc-bench intra` measures the intra-node round trip through utipcd instead.
#[derive(Debug, Parser)]
#[command(name = "utipc-bench", args_conflicts_with_subcommands = true)]
struct Args {
    /// Another benchmark instead of the bearer one.
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Transports, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = TRANSPORTS.map(String::from))]
    transports: Vec<String>,
    /// Message sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 256, 1024, 4096, 16_384, 65_536])]
    sizes: Vec<usize>,
    /// Warm-up round trips per cell.
    #[arg(long, default_value_t = 1000)]
    warmup: u64,
    /// Timed round trips per cell (and open-loop messages).
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Throughput window per cell in seconds (0 skips throughput).
    #[arg(long, default_value_t = 1.0)]
    duration: f64,
    /// Hard time limit of each measurement in seconds.
    #[arg(long, default_value_t = 10.0)]
    cell_timeout: f64,
    /// Open-loop rate in msg/s for every transport (default: half of each transport's
    /// closed-loop maximum, 1/mean RTT).
    #[arg(long)]
    rate: Option<f64>,
    /// Sizes also measured open loop, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize])]
    open_sizes: Vec<usize>,
    /// Idle strategy of both sides: busy-poll (spin) or sleep in poll(2) (block).
    #[arg(long, value_enum, default_value_t = Idle::Spin)]
    idle: Idle,
    /// CPUs of the client and the server.
    #[arg(long, value_delimiter = ',', default_values_t = [0usize, 1])]
    cpus: Vec<usize>,
    /// Directory for results.md, results.json and rtt-p50.png.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

/// The other benchmarks.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Intra-node round trip between two applications through utipcd, against a Unix
    /// datagram socket pair and kernel UDP on loopback (issue 6).
    Intra(IntraArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Mode::Intra(a)) = &args.mode {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        return match intra::main(a, command) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    for t in &args.transports {
        if !TRANSPORTS.contains(&t.as_str()) {
            eprintln!("unknown transport {t}: use {}", TRANSPORTS.join(", "));
            return ExitCode::from(2);
        }
    }
    let [client_cpu, server_cpu] = args.cpus[..] else {
        eprintln!("--cpus takes two CPUs: client,server");
        return ExitCode::from(2);
    };
    let cfg = Config {
        transports: args.transports.clone(),
        sizes: args.sizes.clone(),
        warmup: args.warmup,
        count: args.count,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        cell_timeout: Duration::from_secs_f64(args.cell_timeout.max(0.1)),
        rate: args.rate,
        open_sizes: args.open_sizes.clone(),
        idle: args.idle,
        client_cpu,
        server_cpu,
    };
    netns::install_stop_handler();
    let mut report = Report {
        machine: netns::machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        ..Report::default()
    };
    report.settings = vec![
        (
            "idle".into(),
            format!("{:?} on both sides", cfg.idle).to_lowercase(),
        ),
        (
            "cpus".into(),
            format!("client cpu{client_cpu}, server cpu{server_cpu}"),
        ),
        (
            "closed loop".into(),
            format!(
                "{} warm-up + {} timed round trips per cell",
                cfg.warmup, cfg.count
            ),
        ),
        (
            "throughput".into(),
            format!(
                "{:.1} s one-way streaming per cell, counted at the receiver",
                cfg.duration.as_secs_f64()
            ),
        ),
        (
            "cell limit".into(),
            format!("{:.1} s", cfg.cell_timeout.as_secs_f64()),
        ),
        (
            "open loop".into(),
            match cfg.rate {
                Some(r) => format!("{r:.0} msg/s, sizes {:?}", cfg.open_sizes),
                None => format!(
                    "half of each transport's closed-loop maximum (1/mean RTT), sizes {:?}",
                    cfg.open_sizes
                ),
            },
        ),
    ];
    let m = &report.machine;
    eprintln!(
        "machine: {} × {}, kernel {}, {}, loadavg {}",
        m.cpus, m.cpu_model, m.kernel, m.memory, m.loadavg_start
    );
    let pair = match Pair::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot set up the namespaces (run as root with iproute2): {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "namespaces {} and {} joined by veth",
        pair.a.name(),
        pair.b.name()
    );
    let started = Instant::now();
    for t in &cfg.transports {
        if netns::stopped() {
            break;
        }
        eprintln!("{t}:");
        let (cells, info) = run_transport(&pair, t, &cfg);
        if !info.is_empty() {
            eprintln!("  {info}");
            report.settings.push((t.clone(), info));
        }
        report.cells.extend(cells);
    }
    drop(pair);
    report.machine.loadavg_end = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    report.settings.push((
        "total time".into(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    ));
    if netns::stopped() {
        report
            .settings
            .push(("interrupted".into(), "yes (Ctrl-C): partial results".into()));
    }
    let md = report.markdown();
    println!("{md}");
    if let Err(e) = write_out(&args.out, &report, &md) {
        eprintln!("cannot write results to {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "wrote {0}/results.md, {0}/results.json, {0}/rtt-p50.png",
        args.out.display()
    );
    ExitCode::SUCCESS
}

fn write_out(dir: &std::path::Path, report: &Report, md: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.md"), md)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("results.json"), json)?;
    std::fs::write(dir.join("rtt-p50.png"), report.chart().encode_png())
}
