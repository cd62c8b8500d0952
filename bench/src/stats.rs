//! Latency histograms (HdrHistogram, nanosecond resolution, 3 significant digits) and
//! throughput figures.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded: 60 s (larger values saturate).
const MAX_NS: u64 = 60_000_000_000;

/// A latency histogram.
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
}

impl Recorder {
    /// An empty histogram from 1 ns to 60 s.
    pub fn new() -> Self {
        let hist = match Histogram::new_with_bounds(1, MAX_NS, 3) {
            Ok(h) => h,
            Err(e) => unreachable!("constant histogram bounds are valid: {e:?}"),
        };
        Self { hist }
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(MAX_NS).max(1);
        self.hist.saturating_record(ns);
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The percentiles, or `None` if nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(LatencySummary {
            count: self.hist.len(),
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
            mean_us: self.hist.mean() / 1000.0,
        })
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// One-way streaming throughput, counted at the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    /// Messages the receiver got in the window.
    pub messages: u64,
    /// Length of the window, in seconds.
    pub seconds: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Payload gigabits per second (headers not counted).
    pub gbps: f64,
}

impl Throughput {
    /// `messages` of `payload` bytes each in `seconds`.
    pub fn new(messages: u64, payload: usize, seconds: f64) -> Self {
        let secs = if seconds > 0.0 {
            seconds
        } else {
            f64::MIN_POSITIVE
        };
        let msgs_per_s = messages as f64 / secs;
        Self {
            messages,
            seconds,
            msgs_per_s,
            gbps: msgs_per_s * payload as f64 * 8.0 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_sample() {
        let mut r = Recorder::new();
        assert!(r.summary().is_none());
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let s = r.summary().expect("summary");
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 1.5, "{s:?}");
        assert!((s.p999_us - 999.0).abs() < 1.5, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 1.0, "{s:?}");
        assert!((s.mean_us - 500.5).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn extremes_saturate_instead_of_failing() {
        let mut r = Recorder::new();
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(3600));
        assert_eq!(r.len(), 2);
        let s = r.summary().expect("summary");
        assert!(s.max_us >= 59_000_000.0, "{s:?}");
    }

    #[test]
    fn throughput_in_messages_and_gigabits() {
        let t = Throughput::new(1_000_000, 1250, 2.0);
        assert!((t.msgs_per_s - 500_000.0).abs() < 1e-6);
        assert!((t.gbps - 5.0).abs() < 1e-9);
        assert_eq!(Throughput::new(0, 64, 0.0).msgs_per_s, 0.0);
    }
}
