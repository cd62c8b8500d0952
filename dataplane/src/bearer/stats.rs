//! Bearer counters and the rate limit on IO error reports.
//!
//! Why: a bearer must never log per packet. A dead route or a full socket buffer can fail
//! every send at line rate, so failures are only *counted* here, and whoever owns logging (the
//! control agent) asks [`ErrorLog::take_report`] at most once per interval for a summary
//! ("send failed 1,234 times since the last report, last: Network is unreachable"). Time is an
//! input (`now`), as everywhere in utipc, so this needs no clock and no logging dependency.

use core::fmt;
use core::time::Duration;
use std::io;

use utipc_proto::time::Instant;

/// What a bearer counts. Plain integers: a bearer is owned by one agent; the daemon copies
/// them into the shared-memory counters file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BearerCounters {
    /// Frames handed to the kernel (each replicast copy counts once).
    pub tx_frames: u64,
    /// Bytes of those frames (TIPC bytes, without media headers).
    pub tx_bytes: u64,
    /// Sends that failed, including [`BearerCounters::tx_would_block`].
    pub tx_errors: u64,
    /// Sends refused because the socket buffer was full (the frame is lost; TIPC's link layer
    /// retransmits it).
    pub tx_would_block: u64,
    /// Frames delivered to the caller.
    pub rx_frames: u64,
    /// Bytes of those frames (TIPC bytes, Ethernet padding included).
    pub rx_bytes: u64,
    /// Receive calls that failed with an OS error.
    pub rx_errors: u64,
    /// Frames read from the kernel and dropped, by reason.
    pub rx_dropped: RxDrops,
}

/// Received frames the bearer dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxDrops {
    /// From our own media address (a looped-back copy of our own transmission).
    pub own_source: u64,
    /// Ethernet: addressed to another host's MAC (`PACKET_OTHERHOST`, a promiscuous copy).
    pub other_host: u64,
    /// Ethernet: our own transmissions shown to the socket (`PACKET_OUTGOING`).
    pub outgoing: u64,
    /// Larger than the receive buffer.
    pub truncated: u64,
    /// Not a TIPC frame of this bearer: shorter than the media header, another ethertype, or
    /// a source address of the wrong family.
    pub malformed: u64,
}

impl RxDrops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.own_source + self.other_host + self.outgoing + self.truncated + self.malformed
    }
}

/// Which direction an IO error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoDirection {
    /// A send.
    Send,
    /// A receive.
    Recv,
}

impl fmt::Display for IoDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Send => "send",
            Self::Recv => "receive",
        })
    }
}

/// The last error of one direction, stored without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorSample {
    /// The error's kind.
    pub kind: io::ErrorKind,
    /// The OS error number, if it came from the OS.
    pub errno: Option<i32>,
}

impl ErrorSample {
    fn of(e: &io::Error) -> Self {
        Self {
            kind: e.kind(),
            errno: e.raw_os_error(),
        }
    }
}

impl fmt::Display for ErrorSample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(errno) => write!(f, "{}", io::Error::from_raw_os_error(errno)),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// IO errors counted since the last report, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pending {
    count: u64,
    last: Option<ErrorSample>,
}

/// Counts IO errors and hands out at most one summary per [`ErrorLog::interval`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLog {
    interval: Duration,
    send: Pending,
    recv: Pending,
    last_report: Option<Instant>,
}

impl Default for ErrorLog {
    fn default() -> Self {
        Self::new(Self::DEFAULT_INTERVAL)
    }
}

impl ErrorLog {
    /// Default minimum time between two reports (quinn logs send errors once a minute too).
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

    /// A log that reports at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            send: Pending::default(),
            recv: Pending::default(),
            last_report: None,
        }
    }

    /// Minimum time between two reports.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Counts one error.
    pub fn record(&mut self, dir: IoDirection, e: &io::Error) {
        let p = match dir {
            IoDirection::Send => &mut self.send,
            IoDirection::Recv => &mut self.recv,
        };
        p.count += 1;
        p.last = Some(ErrorSample::of(e));
    }

    /// A summary of the errors since the last report, if there were any and the last report is
    /// at least one interval old (the first error is reported at once). Resets the pending
    /// counts.
    pub fn take_report(&mut self, now: Instant) -> Option<ErrorReport> {
        if self.send.count == 0 && self.recv.count == 0 {
            return None;
        }
        if let Some(last) = self.last_report
            && now.saturating_since(last) < self.interval
        {
            return None;
        }
        self.last_report = Some(now);
        let report = ErrorReport {
            send_failures: self.send.count,
            last_send_error: self.send.last,
            recv_failures: self.recv.count,
            last_recv_error: self.recv.last,
        };
        self.send = Pending::default();
        self.recv = Pending::default();
        Some(report)
    }
}

/// IO errors of one bearer since the previous report. Its `Display` is the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReport {
    /// Failed sends.
    pub send_failures: u64,
    /// The last send error.
    pub last_send_error: Option<ErrorSample>,
    /// Failed receives.
    pub recv_failures: u64,
    /// The last receive error.
    pub last_recv_error: Option<ErrorSample>,
}

impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (dir, count, last) in [
            (IoDirection::Send, self.send_failures, self.last_send_error),
            (IoDirection::Recv, self.recv_failures, self.last_recv_error),
        ] {
            if count == 0 {
                continue;
            }
            write!(
                f,
                "{sep}{dir} failed {count} time{}",
                if count == 1 { "" } else { "s" }
            )?;
            if let Some(last) = last {
                write!(f, " (last: {last})")?;
            }
            sep = "; ";
        }
        Ok(())
    }
}

/// Counters plus the error log of one bearer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerStats {
    /// The counters.
    pub counters: BearerCounters,
    /// Errors waiting to be reported.
    pub errors: ErrorLog,
}

impl BearerStats {
    /// Counts a frame handed to the kernel.
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += bytes as u64;
    }

    /// Counts a failed send and returns the error.
    pub(crate) fn send_failed(&mut self, e: io::Error) -> io::Error {
        self.counters.tx_errors += 1;
        if e.kind() == io::ErrorKind::WouldBlock {
            self.counters.tx_would_block += 1;
        }
        self.errors.record(IoDirection::Send, &e);
        e
    }

    /// Counts a frame delivered to the caller.
    pub(crate) fn received(&mut self, bytes: usize) {
        self.counters.rx_frames += 1;
        self.counters.rx_bytes += bytes as u64;
    }

    /// Counts a failed receive and returns the error.
    pub(crate) fn recv_failed(&mut self, e: io::Error) -> io::Error {
        self.counters.rx_errors += 1;
        self.errors.record(IoDirection::Recv, &e);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_rate_limited_and_summarise() {
        let mut log = ErrorLog::new(Duration::from_secs(60));
        let t0 = Instant::from_millis(1000);
        assert_eq!(log.take_report(t0), None, "nothing to report");
        let unreachable = io::Error::from_raw_os_error(libc::ENETUNREACH);
        log.record(IoDirection::Send, &unreachable);
        let first = log
            .take_report(t0)
            .expect("the first error is reported at once");
        assert_eq!(first.send_failures, 1);
        assert_eq!(
            first.to_string(),
            format!("send failed 1 time (last: {unreachable})")
        );

        for _ in 0..1000 {
            log.record(IoDirection::Send, &unreachable);
        }
        log.record(
            IoDirection::Recv,
            &io::Error::from(io::ErrorKind::InvalidData),
        );
        assert_eq!(
            log.take_report(t0 + Duration::from_secs(59)),
            None,
            "within the interval"
        );
        let second = log
            .take_report(t0 + Duration::from_secs(60))
            .expect("interval passed");
        assert_eq!(second.send_failures, 1000);
        assert_eq!(second.recv_failures, 1);
        let line = second.to_string();
        assert!(line.starts_with("send failed 1000 times (last: "), "{line}");
        assert!(
            line.ends_with("; receive failed 1 time (last: invalid data)"),
            "{line}"
        );
        assert_eq!(
            log.take_report(t0 + Duration::from_secs(500)),
            None,
            "counts were reset"
        );
    }

    #[test]
    fn stats_count_would_block_as_send_errors() {
        let mut s = BearerStats::default();
        let e = s.send_failed(io::Error::from(io::ErrorKind::WouldBlock));
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        s.sent(100);
        s.received(76);
        assert_eq!(s.counters.tx_errors, 1);
        assert_eq!(s.counters.tx_would_block, 1);
        assert_eq!((s.counters.tx_frames, s.counters.tx_bytes), (1, 100));
        assert_eq!((s.counters.rx_frames, s.counters.rx_bytes), (1, 76));
    }
}
