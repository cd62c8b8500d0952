//! Results: per-cell records, the markdown table with ratios, the targets, JSON and the chart.

use std::fmt::Write as _;

use serde::Serialize;

use crate::png;
use crate::stats::{LatencySummary, Throughput};

/// The transports, in report order.
pub const TRANSPORTS: [&str; 6] = [
    "kernel-udp",
    "kernel-tcp",
    "tipc-udp",
    "tipc-packet",
    "tipc-xdp",
    "raw-xdp",
];

/// What each transport name means.
pub fn describe(transport: &str) -> &'static str {
    match transport {
        "kernel-udp" => "kernel UDP socket ping-pong",
        "kernel-tcp" => "kernel TCP ping-pong, TCP_NODELAY",
        "tipc-udp" => "utipc datagrams, UDP bearer",
        "tipc-packet" => "utipc datagrams, AF_PACKET bearer",
        "tipc-xdp" => "utipc datagrams, AF_XDP bearer (XDP steering on both ends)",
        "raw-xdp" => "raw AF_XDP frames echoed without TIPC (the floor)",
        _ => "unknown",
    }
}

/// Open-loop latency at a fixed rate, measured from each message's intended send time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OpenLoop {
    /// Messages per second offered.
    pub rate: f64,
    /// Latency percentiles.
    pub latency: LatencySummary,
    /// Messages sent whose echo never came back.
    pub lost: u64,
}

/// One transport at one message size.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Cell {
    /// One of [`TRANSPORTS`].
    pub transport: String,
    /// Requested message size in bytes.
    pub size: usize,
    /// Payload bytes actually sent (smaller where the transport cannot carry `size`).
    pub payload: usize,
    /// Closed-loop round-trip times.
    pub rtt: Option<LatencySummary>,
    /// Round trips whose reply did not come back within the per-message timeout.
    pub rtt_lost: u64,
    /// One-way streaming throughput.
    pub throughput: Option<Throughput>,
    /// Open-loop latency.
    pub open_loop: Option<OpenLoop>,
    /// Why something is missing, or what to know.
    pub note: Option<String>,
}

/// The machine the run happened on.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Machine {
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Total memory.
    pub memory: String,
    /// /proc/loadavg at the start (other processes on the machine).
    pub loadavg_start: String,
    /// /proc/loadavg at the end.
    pub loadavg_end: String,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// Settings (idle strategy, cpus, counts, XDP modes...).
    pub settings: Vec<(String, String)>,
    /// All cells.
    pub cells: Vec<Cell>,
}

/// One target of the issue, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// What is required.
    pub what: String,
    /// Measured value and the bound, in words.
    pub measured: String,
    /// Met, missed, or not measurable (`None`).
    pub met: Option<bool>,
}

impl Report {
    /// The cell of `transport` at `size`.
    pub fn cell(&self, transport: &str, size: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.transport == transport && c.size == size)
    }

    fn p50(&self, transport: &str, size: usize) -> Option<f64> {
        self.cell(transport, size)?.rtt.map(|r| r.p50_us)
    }

    fn rate(&self, transport: &str, size: usize) -> Option<f64> {
        self.cell(transport, size)?.throughput.map(|t| t.msgs_per_s)
    }

    fn sizes(&self) -> Vec<usize> {
        let mut s: Vec<usize> = self.cells.iter().map(|c| c.size).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    fn transports(&self) -> Vec<&str> {
        TRANSPORTS
            .iter()
            .copied()
            .filter(|t| self.cells.iter().any(|c| c.transport == *t))
            .collect()
    }

    /// The targets, evaluated on this run.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let x = "tipc-xdp";
        let mut check =
            |what: &str, lhs: Option<f64>, factor: f64, rhs: Option<f64>, le: bool, unit: &str| {
                let (measured, met) = match (lhs, rhs) {
                    (Some(l), Some(r)) => {
                        let bound = factor * r;
                        let met = if le { l <= bound } else { l >= bound };
                        let op = if le { "≤" } else { "≥" };
                        (
                            format!(
                                "{} {unit} vs bound {} {unit} ({op} {factor}× {}; ratio {:.2}×)",
                                fmt(l),
                                fmt(bound),
                                fmt(r),
                                l / r
                            ),
                            Some(met),
                        )
                    }
                    _ => ("not measured".to_owned(), None),
                };
                out.push(Target {
                    what: what.to_owned(),
                    measured,
                    met,
                });
            };
        let p99 = self.cell(x, 64).and_then(|c| c.rtt).map(|r| r.p99_us);
        check(
            "64 B RTT p50 ≤ 1.3× raw AF_XDP",
            self.p50(x, 64),
            1.3,
            self.p50("raw-xdp", 64),
            true,
            "µs",
        );
        check(
            "64 B RTT p50 ≤ 0.1× kernel UDP",
            self.p50(x, 64),
            0.1,
            self.p50("kernel-udp", 64),
            true,
            "µs",
        );
        check(
            "64 B RTT p99 ≤ 2× its p50",
            p99,
            2.0,
            self.p50(x, 64),
            true,
            "µs",
        );
        check(
            "64 B throughput ≥ 0.9× raw AF_XDP",
            self.rate(x, 64),
            0.9,
            self.rate("raw-xdp", 64),
            false,
            "msg/s",
        );
        check(
            "64 B throughput ≥ 3× kernel UDP",
            self.rate(x, 64),
            3.0,
            self.rate("kernel-udp", 64),
            false,
            "msg/s",
        );
        let gbps = |t: &str| {
            self.cell(t, 65_536)
                .and_then(|c| c.throughput)
                .map(|t| t.gbps)
        };
        check(
            "64 KiB throughput ≥ kernel TCP",
            gbps(x),
            1.0,
            gbps("kernel-tcp"),
            false,
            "Gb/s",
        );
        out
    }

    /// The markdown report: settings, closed-loop table, open-loop table, targets, legend.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} × {}, kernel {}, {} RAM; load average at start {}, at end {}.\n",
            m.cpus, m.cpu_model, m.kernel, m.memory, m.loadavg_start, m.loadavg_end
        );
        let _ = writeln!(s, "Command: `{}`\n", self.command);
        for (k, v) in &self.settings {
            let _ = writeln!(s, "- {k}: {v}");
        }
        let _ = writeln!(s, "\n### Closed-loop round trip and one-way throughput\n");
        let _ = writeln!(
            s,
            "| transport | size (B) | p50 µs | p99 µs | p99.9 µs | max µs | p50 / kernel UDP | p50 / raw AF_XDP | msg/s | Gb/s | msg/s / kernel UDP | msg/s / raw AF_XDP |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for size in self.sizes() {
            for t in self.transports() {
                let Some(c) = self.cell(t, size) else {
                    continue;
                };
                let size_txt = if c.payload == c.size || c.payload == 0 {
                    c.size.to_string()
                } else {
                    format!("{} ({} sent)", c.size, c.payload)
                };
                let (p50, p99, p999, max) = match c.rtt {
                    Some(r) => (fmt(r.p50_us), fmt(r.p99_us), fmt(r.p999_us), fmt(r.max_us)),
                    None => na4(),
                };
                let ratio = |other: Option<f64>, mine: Option<f64>| match (mine, other) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "–".to_owned(),
                };
                let mine = c.rtt.map(|r| r.p50_us);
                let (rate, gbps) = match c.throughput {
                    Some(t) => (format!("{:.0}", t.msgs_per_s), format!("{:.3}", t.gbps)),
                    None => ("–".to_owned(), "–".to_owned()),
                };
                let mine_rate = c.throughput.map(|t| t.msgs_per_s);
                let _ = writeln!(
                    s,
                    "| {t} | {size_txt} | {p50} | {p99} | {p999} | {max} | {} | {} | {rate} | {gbps} | {} | {} |",
                    ratio(self.p50("kernel-udp", size), mine),
                    ratio(self.p50("raw-xdp", size), mine),
                    ratio(self.rate("kernel-udp", size), mine_rate),
                    ratio(self.rate("raw-xdp", size), mine_rate)
                );
            }
        }
        let open: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| c.open_loop.is_some())
            .collect();
        if !open.is_empty() {
            let _ = writeln!(
                s,
                "\n### Open loop (fixed rate, latency from the intended send time)\n"
            );
            let _ = writeln!(
                s,
                "| transport | size (B) | rate msg/s | p50 µs | p99 µs | p99.9 µs | max µs | lost |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
            for c in open {
                let Some(o) = c.open_loop else { continue };
                let l = o.latency;
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                    c.transport,
                    c.size,
                    o.rate,
                    fmt(l.p50_us),
                    fmt(l.p99_us),
                    fmt(l.p999_us),
                    fmt(l.max_us),
                    o.lost
                );
            }
        }
        let notes: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| c.note.is_some() || c.rtt_lost > 0)
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(s, "\n### Notes\n");
            for c in notes {
                let _ = writeln!(
                    s,
                    "- {} {} B: {}{}",
                    c.transport,
                    c.size,
                    c.note.as_deref().unwrap_or(""),
                    if c.rtt_lost > 0 {
                        format!(" ({} round trips lost)", c.rtt_lost)
                    } else {
                        String::new()
                    }
                );
            }
        }
        let _ = writeln!(
            s,
            "\n### Targets (utipc over AF_XDP; reported, not asserted)\n"
        );
        let _ = writeln!(s, "| target | measured | met |");
        let _ = writeln!(s, "|---|---|---|");
        for t in self.targets() {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            };
            let _ = writeln!(s, "| {} | {} | {met} |", t.what, t.measured);
        }
        let _ = writeln!(s, "\n### Chart legend\n");
        let _ = writeln!(
            s,
            "RTT p50 per size (groups left to right: {} bytes), log scale, grey lines at 1, 10, 100, 1,000 and 10,000 µs. Bars:",
            self.sizes()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (t, (_, colour)) in self.transports().iter().zip(png::PALETTE) {
            let _ = writeln!(s, "- {colour}: {t} ({})", describe(t));
        }
        s
    }

    /// The chart: RTT p50 per transport (bar colour) per size (group), 1 µs to 10 ms.
    pub fn chart(&self) -> png::Canvas {
        let transports = self.transports();
        let values: Vec<Vec<Option<f64>>> = self
            .sizes()
            .iter()
            .map(|&size| transports.iter().map(|t| self.p50(t, size)).collect())
            .collect();
        png::bar_chart(&values, 0, 4)
    }
}

fn na4() -> (String, String, String, String) {
    let n = || "–".to_owned();
    (n(), n(), n(), n())
}

/// A number with sensible precision for microseconds and rates.
pub fn fmt(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50: f64) -> LatencySummary {
        LatencySummary {
            count: 10,
            p50_us: p50,
            p99_us: p50 * 1.5,
            p999_us: p50 * 2.0,
            max_us: p50 * 3.0,
            mean_us: p50,
        }
    }

    fn cell(t: &str, size: usize, p50: f64, rate: f64) -> Cell {
        Cell {
            transport: t.to_owned(),
            size,
            payload: size,
            rtt: Some(lat(p50)),
            throughput: Some(Throughput::new(rate as u64, size, 1.0)),
            ..Cell::default()
        }
    }

    fn sample() -> Report {
        Report {
            command: "utipc-bench".to_owned(),
            cells: vec![
                cell("kernel-udp", 64, 50.0, 200_000.0),
                cell("raw-xdp", 64, 4.0, 800_000.0),
                cell("tipc-xdp", 64, 5.0, 700_000.0),
                cell("kernel-tcp", 65_536, 100.0, 10_000.0),
                cell("tipc-xdp", 65_536, 300.0, 20_000.0),
                Cell {
                    transport: "raw-xdp".to_owned(),
                    size: 65_536,
                    note: Some("larger than the MTU".to_owned()),
                    ..Cell::default()
                },
            ],
            ..Report::default()
        }
    }

    #[test]
    fn targets_are_evaluated_against_the_baselines() {
        let t = sample().targets();
        let met: Vec<Option<bool>> = t.iter().map(|t| t.met).collect();
        // 5 ≤ 5.2 yes; 5 ≤ 5 yes; 7.5 ≤ 10 yes; 700k ≥ 720k no; 700k ≥ 600k yes; 2× TCP yes.
        assert_eq!(
            met,
            [
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                Some(true),
                Some(true)
            ]
        );
        assert!(t[0].measured.contains("1.25×"), "{}", t[0].measured);
        let empty = Report::default().targets();
        assert!(empty.iter().all(|t| t.met.is_none()));
    }

    #[test]
    fn markdown_has_ratios_and_notes() {
        let md = sample().markdown();
        assert!(
            md.contains("| tipc-xdp | 64 | 5.00 | 7.50 | 10.0 | 15.0 | 0.10× | 1.25× | 700000 |"),
            "{md}"
        );
        assert!(md.contains("| raw-xdp | 65536 | – | – | – | – |"), "{md}");
        assert!(
            md.contains("- raw-xdp 65536 B: larger than the MTU"),
            "{md}"
        );
        assert!(md.contains("| 64 B throughput ≥ 0.9× raw AF_XDP |"), "{md}");
        assert!(md.contains("- blue: kernel-udp"), "{md}");
    }

    #[test]
    fn json_and_chart() {
        let r = sample();
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["cells"][2]["transport"], "tipc-xdp");
        assert_eq!(json["cells"][2]["rtt"]["p50_us"], 5.0);
        let png = r.chart().encode_png();
        assert!(png.starts_with(b"\x89PNG"));
    }
}
