//! A pcap tap around any bearer: every frame sent and received is also written to a pcap file,
//! so a field problem can be looked at with tshark or `utipc decode` like a kernel capture.
//!
//! Why a wrapper: it works the same for every bearer (UDP, AF_PACKET, AF_XDP), costs one
//! branch when off, and is switched on and off at run time ([`PcapTap::start_file`],
//! [`PcapTap::stop`]) without reopening the bearer. A daemon that holds its bearers as
//! `dyn Bearer` reaches the switch through [`Bearer::pcap_tap_mut`] ([`PcapControl`]).
//!
//! What is recorded: Ethernet bearers' frames as they are on the wire. UDP bearers' messages
//! get minimal Ethernet + IP + UDP headers (see [`crate::pcap`]) with the real addresses. A
//! send is recorded once per copy the bearer put on the wire ([`Bearer::wire_dests`]: one per
//! replicast peer), and only if the send succeeded. A failing capture never fails the bearer:
//! it stops itself and the error is kept in [`TapStats`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use utipc_proto::bearer::{Dest, MediaKind};
use utipc_proto::wire::discovery::MediaAddr;

use super::{Bearer, BearerReport, BearerStats, ErrorSample, RxMeta};
use crate::ether::{ETH_P_TIPC, EthHeader};
use crate::pcap::{PcapWriter, udp_frame_headers};

/// What the tap itself counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Records written.
    pub frames_written: u64,
    /// Frames that could not be put in a record (addresses of a media the tap cannot frame).
    pub frames_skipped: u64,
    /// Write failures; each one stopped the capture.
    pub write_errors: u64,
    /// The last write failure.
    pub last_error: Option<ErrorSample>,
}

/// A running capture, as [`PcapControl::capture`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInfo {
    /// The file of a capture started with [`PcapTap::start_file`]; `None` for a writer given
    /// to [`PcapTap::start`].
    pub path: Option<PathBuf>,
    /// When the capture started.
    pub started: SystemTime,
    /// Records this capture wrote.
    pub frames_written: u64,
    /// Frames this capture could not put in a record.
    pub frames_skipped: u64,
}

/// The run-time switch of a [`PcapTap`], object-safe so that it is reachable through a
/// `dyn Bearer` ([`Bearer::pcap_tap_mut`]): what a daemon needs to start, stop and show a
/// capture on a bearer whose concrete type it does not know.
pub trait PcapControl {
    /// As [`PcapTap::start_file`].
    ///
    /// # Errors
    ///
    /// As [`PcapTap::start_file`].
    fn start_file(&mut self, path: &Path) -> io::Result<()>;

    /// As [`PcapTap::stop`]; read [`PcapControl::capture`] first for what the capture wrote.
    ///
    /// # Errors
    ///
    /// The error of the final flush (the capture is stopped anyway).
    fn stop(&mut self) -> io::Result<()>;

    /// As [`PcapTap::flush_capture`].
    ///
    /// # Errors
    ///
    /// The error of the flush (the capture keeps running).
    fn flush_capture(&mut self) -> io::Result<()>;

    /// The running capture, or `None` (never started, stopped, or stopped itself on a write
    /// error: see [`PcapControl::tap_stats`]).
    fn capture(&self) -> Option<CaptureInfo>;

    /// What the tap counted over its life.
    fn tap_stats(&self) -> TapStats;
}

/// The open capture: the writer, a buffer for synthetic headers, and what it wrote.
struct Capture {
    writer: PcapWriter<Box<dyn Write + Send>>,
    headers: Vec<u8>,
    info: CaptureInfo,
}

impl Capture {
    /// Writes one frame from `src` to `dst`; `Ok(false)` if it cannot be framed.
    fn record(&mut self, src: &MediaAddr, dst: &MediaAddr, frame: &[u8]) -> io::Result<bool> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        match (src, dst) {
            (MediaAddr::Eth(src), MediaAddr::Eth(dst)) => {
                let header = EthHeader {
                    dst: *dst,
                    src: *src,
                    ethertype: ETH_P_TIPC,
                }
                .to_bytes();
                self.writer.write_frame(now, &[&header, frame])?;
            }
            (MediaAddr::Udp(src), MediaAddr::Udp(dst)) => {
                if udp_frame_headers(&mut self.headers, *src, *dst, frame).is_err() {
                    return Ok(false);
                }
                self.writer.write_frame(now, &[&self.headers, frame])?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Records a frame if capturing; stops the capture on a write error.
fn tap(
    capture: &mut Option<Capture>,
    stats: &mut TapStats,
    src: &MediaAddr,
    dst: &MediaAddr,
    frame: &[u8],
) {
    let Some(c) = capture else { return };
    match c.record(src, dst, frame) {
        Ok(true) => {
            stats.frames_written += 1;
            c.info.frames_written += 1;
        }
        Ok(false) => {
            stats.frames_skipped += 1;
            c.info.frames_skipped += 1;
        }
        Err(e) => {
            stats.write_errors += 1;
            stats.last_error = Some(ErrorSample {
                kind: e.kind(),
                errno: e.raw_os_error(),
            });
            *capture = None;
        }
    }
}

/// A bearer whose frames can be captured to a pcap file. It is itself a [`Bearer`] and
/// forwards everything to the wrapped one.
pub struct PcapTap<B> {
    inner: B,
    capture: Option<Capture>,
    stats: TapStats,
}

impl<B: fmt::Debug> fmt::Debug for PcapTap<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapTap")
            .field("inner", &self.inner)
            .field("capturing", &self.capture.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<B: Bearer> PcapTap<B> {
    /// Wraps a bearer; no capture runs until [`PcapTap::start`] or [`PcapTap::start_file`].
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            capture: None,
            stats: TapStats::default(),
        }
    }

    /// Starts capturing into `path` (created, or truncated if it is a regular file),
    /// stopping a running capture first.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `path` exists and is not a regular file (a device or a FIFO would be
    /// written into, or block the caller); the error of creating the file or writing its
    /// header, with the path; or of flushing the previous capture (the new one is started
    /// anyway).
    pub fn start_file(&mut self, path: &Path) -> io::Result<()> {
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} exists and is not a regular file: give the path of a new or regular \
                     capture file",
                    path.display()
                ),
            ));
        }
        let file = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create the capture file {}: {e}", path.display()),
            )
        })?;
        let previous = self.start(Box::new(BufWriter::new(file)));
        if let Some(c) = &mut self.capture {
            c.info.path = Some(path.to_owned());
        }
        previous
    }

    /// Starts capturing into `writer`, stopping a running capture first.
    ///
    /// # Errors
    ///
    /// The error of writing the pcap header (no capture runs then), or of flushing the
    /// previous capture (the new one is started anyway).
    pub fn start(&mut self, writer: Box<dyn Write + Send>) -> io::Result<()> {
        let previous = self.stop();
        self.capture = Some(Capture {
            writer: PcapWriter::new(writer)?,
            headers: Vec::with_capacity(64),
            info: CaptureInfo {
                path: None,
                started: SystemTime::now(),
                frames_written: 0,
                frames_skipped: 0,
            },
        });
        previous
    }

    /// Stops capturing and flushes the file. Nothing happens if no capture runs.
    ///
    /// # Errors
    ///
    /// The error of the final flush.
    pub fn stop(&mut self) -> io::Result<()> {
        match self.capture.take() {
            Some(mut c) => c.writer.flush(),
            None => Ok(()),
        }
    }

    /// Flushes the capture file without stopping, so readers see every frame so far.
    ///
    /// # Errors
    ///
    /// The error of the flush (the capture keeps running).
    pub fn flush_capture(&mut self) -> io::Result<()> {
        match &mut self.capture {
            Some(c) => c.writer.flush(),
            None => Ok(()),
        }
    }

    /// Whether a capture runs.
    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// The running capture: its file and what it wrote so far.
    pub fn capture(&self) -> Option<CaptureInfo> {
        self.capture.as_ref().map(|c| c.info.clone())
    }

    /// What the tap counted.
    pub fn tap_stats(&self) -> &TapStats {
        &self.stats
    }

    /// The wrapped bearer.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped bearer, mutably (frames sent through it directly are not captured).
    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// The wrapped bearer; a running capture is flushed and closed (errors ignored: call
    /// [`PcapTap::stop`] first to see them).
    pub fn into_inner(mut self) -> B {
        let _ = self.stop();
        self.inner
    }
}

impl<B: Bearer> PcapControl for PcapTap<B> {
    fn start_file(&mut self, path: &Path) -> io::Result<()> {
        Self::start_file(self, path)
    }

    fn stop(&mut self) -> io::Result<()> {
        Self::stop(self)
    }

    fn flush_capture(&mut self) -> io::Result<()> {
        Self::flush_capture(self)
    }

    fn capture(&self) -> Option<CaptureInfo> {
        Self::capture(self)
    }

    fn tap_stats(&self) -> TapStats {
        self.stats
    }
}

impl<B: Bearer> Bearer for PcapTap<B> {
    forward_bearer_identity!(inner);

    fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
        self.inner.send(dest, frame)?;
        if self.capture.is_some() {
            let Self {
                inner,
                capture,
                stats,
            } = self;
            let src = inner.local_addr();
            inner.wire_dests(dest, &mut |dst| tap(capture, stats, &src, &dst, frame));
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        let got = self.inner.recv(buf)?;
        if let Some((len, meta)) = &got
            && let Some(frame) = buf.get(..*len)
        {
            tap(
                &mut self.capture,
                &mut self.stats,
                &meta.src,
                &meta.dst,
                frame,
            );
        }
        Ok(got)
    }

    fn recv_batch(
        &mut self,
        scratch: &mut [u8],
        max: usize,
        on_frame: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        if self.capture.is_none() {
            // Off: no extra closure between the bearer and the caller on the hot path.
            return self.inner.recv_batch(scratch, max, on_frame);
        }
        let Self {
            inner,
            capture,
            stats,
        } = self;
        inner.recv_batch(scratch, max, &mut |frame, meta| {
            tap(capture, stats, &meta.src, &meta.dst, frame);
            on_frame(frame, meta);
        })
    }

    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        self.inner.wait_readable(timeout)
    }

    /// The wrapped bearer's groups, then `pcap`: `capture` (the file, or `off`), the tap's
    /// lifetime counters and its last write error.
    fn report(&self, out: &mut dyn BearerReport) {
        self.inner.report(out);
        out.group("pcap");
        match &self.capture {
            Some(c) => {
                let path = c
                    .info
                    .path
                    .as_ref()
                    .map_or_else(|| "(writer)".to_owned(), |p| p.display().to_string());
                out.text("capture", &path);
                out.counter("capture_frames", c.info.frames_written);
            }
            None => out.text("capture", "off"),
        }
        out.counter("frames_written", self.stats.frames_written);
        out.counter("frames_skipped", self.stats.frames_skipped);
        out.counter("write_errors", self.stats.write_errors);
        if let Some(e) = self.stats.last_error {
            out.text("last_error", &e.to_string());
        }
    }

    fn pcap_tap(&self) -> Option<&dyn PcapControl> {
        Some(self)
    }

    fn pcap_tap_mut(&mut self) -> Option<&mut dyn PcapControl> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::os::fd::AsFd;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::pcap::tests::checksum_ok;

    /// A bearer without IO: sends are kept, receives come from a queue.
    #[derive(Debug)]
    struct Fake {
        local: MediaAddr,
        remotes: Vec<MediaAddr>,
        rx: VecDeque<(Vec<u8>, RxMeta)>,
        sent: Vec<(Dest, Vec<u8>)>,
        stats: BearerStats,
        fd: File,
    }

    impl Fake {
        fn new(local: MediaAddr, remotes: Vec<MediaAddr>) -> Self {
            Self {
                local,
                remotes,
                rx: VecDeque::new(),
                sent: Vec::new(),
                stats: BearerStats::default(),
                fd: File::open("/dev/null").expect("/dev/null"),
            }
        }
    }

    impl Bearer for Fake {
        fn media(&self) -> MediaKind {
            match self.local {
                MediaAddr::Eth(_) => MediaKind::Eth,
                _ => MediaKind::Udp4,
            }
        }
        fn local_addr(&self) -> MediaAddr {
            self.local
        }
        fn mtu(&self) -> u32 {
            1500
        }
        fn supports_broadcast(&self) -> bool {
            self.remotes.is_empty()
        }
        fn fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
        fn send(&mut self, dest: &Dest, frame: &[u8]) -> io::Result<()> {
            self.sent.push((*dest, frame.to_vec()));
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
            let Some((frame, meta)) = self.rx.pop_front() else {
                return Ok(None);
            };
            buf[..frame.len()].copy_from_slice(&frame);
            Ok(Some((frame.len(), meta)))
        }
        fn wire_dests(&self, dest: &Dest, f: &mut dyn FnMut(MediaAddr)) {
            match dest {
                Dest::Broadcast if self.remotes.is_empty() => {
                    f(MediaAddr::Eth(crate::ether::BROADCAST_MAC));
                }
                Dest::Broadcast => self.remotes.iter().for_each(|r| f(*r)),
                Dest::Unicast(a) => f(*a),
            }
        }
        fn stats(&self) -> &BearerStats {
            &self.stats
        }
        fn stats_mut(&mut self) -> &mut BearerStats {
            &mut self.stats
        }
    }

    /// A writer whose bytes the test can read while the tap owns it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn packets(&self) -> Vec<Vec<u8>> {
            let bytes = self.0.lock().expect("lock").clone();
            let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("valid pcap");
            let mut out = Vec::new();
            while let Some(p) = r.next_packet() {
                out.push(p.expect("valid record").data.into_owned());
            }
            out
        }
    }

    /// A writer that fails every write.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const OURS: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    #[test]
    fn ethernet_frames_are_recorded_as_on_the_wire_and_only_while_on() {
        let mut t = PcapTap::new(Fake::new(MediaAddr::Eth(OURS), vec![]));
        t.send(&Dest::Broadcast, b"not captured").expect("send");
        let out = Shared::default();
        t.start(Box::new(out.clone())).expect("start");
        assert!(t.is_capturing());
        t.send(&Dest::Broadcast, b"bcast").expect("send");
        t.send(&Dest::Unicast(MediaAddr::Eth(PEER)), b"ucast")
            .expect("send");
        let meta = RxMeta {
            src: MediaAddr::Eth(PEER),
            dst: MediaAddr::Eth(OURS),
        };
        t.inner_mut().rx.push_back((b"reply".to_vec(), meta));
        t.inner_mut().rx.push_back((b"batched".to_vec(), meta));
        let mut buf = [0u8; 64];
        assert_eq!(t.recv(&mut buf).expect("recv"), Some((5, meta)));
        let mut seen = Vec::new();
        let n = t
            .recv_batch(&mut buf, 8, &mut |f, m| seen.push((f.to_vec(), *m)))
            .expect("batch");
        assert_eq!(n, 1);
        assert_eq!(seen, vec![(b"batched".to_vec(), meta)]);
        t.stop().expect("stop");
        t.send(&Dest::Broadcast, b"not captured either")
            .expect("send");

        let p = out.packets();
        assert_eq!(p.len(), 4);
        let eth = |dst: [u8; 6], src: [u8; 6], payload: &[u8]| {
            [&dst[..], &src[..], &[0x88, 0xca], payload].concat()
        };
        assert_eq!(p[0], eth([0xff; 6], OURS, b"bcast"));
        assert_eq!(p[1], eth(PEER, OURS, b"ucast"));
        assert_eq!(p[2], eth(OURS, PEER, b"reply"));
        assert_eq!(p[3], eth(OURS, PEER, b"batched"));
        assert_eq!(t.tap_stats().frames_written, 4);
        assert_eq!(t.inner().sent.len(), 4, "the bearer saw every send");
    }

    #[test]
    fn udp_replicast_is_recorded_once_per_copy() {
        let sa = |s: &str| s.parse::<SocketAddr>().expect("addr");
        let local = MediaAddr::Udp(sa("198.18.0.1:6118"));
        let remotes = vec![
            MediaAddr::Udp(sa("198.18.0.2:6118")),
            MediaAddr::Udp(sa("198.18.0.3:6118")),
        ];
        let mut t = PcapTap::new(Fake::new(local, remotes));
        let out = Shared::default();
        t.start(Box::new(out.clone())).expect("start");
        t.send(&Dest::Broadcast, &[0x5b; 76]).expect("send");
        let p = out.packets();
        assert_eq!(p.len(), 2);
        for (pkt, last) in p.iter().zip([2u8, 3]) {
            assert_eq!(pkt.len(), 14 + 20 + 8 + 76);
            assert!(checksum_ok(&[&pkt[14..34]]));
            assert_eq!(&pkt[26..30], &[198, 18, 0, 1]);
            assert_eq!(&pkt[30..34], &[198, 18, 0, last]);
            assert_eq!(&pkt[42..], &[0x5b; 76][..]);
        }
    }

    #[test]
    fn a_failing_capture_stops_without_failing_the_bearer() {
        let mut t = PcapTap::new(Fake::new(MediaAddr::Eth(OURS), vec![]));
        assert!(t.start(Box::new(Broken)).is_err(), "the header write fails");
        assert!(!t.is_capturing());
        // A writer that accepts the header and then fails.
        struct FailAfterHeader(usize);
        impl Write for FailAfterHeader {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 >= 24 {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                self.0 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        t.start(Box::new(FailAfterHeader(0))).expect("header fits");
        t.send(&Dest::Broadcast, b"frame")
            .expect("the send itself succeeds");
        assert!(!t.is_capturing(), "the capture stopped itself");
        let s = *t.tap_stats();
        assert_eq!(s.write_errors, 1);
        assert_eq!(s.last_error.and_then(|e| e.errno), Some(libc::ENOSPC));
    }

    /// Collects a report as `group.name=value` lines.
    #[derive(Default)]
    struct Lines(Vec<String>, String);

    impl BearerReport for Lines {
        fn group(&mut self, name: &str) {
            self.1 = name.to_owned();
        }
        fn counter(&mut self, name: &str, value: u64) {
            self.0.push(format!("{}.{name}={value}", self.1));
        }
        fn text(&mut self, name: &str, value: &str) {
            self.0.push(format!("{}.{name}={value}", self.1));
        }
    }

    #[test]
    fn switched_through_dyn_bearer_with_per_capture_counts() {
        let dir = std::env::temp_dir().join(format!("utdp-tapdyn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (first, second) = (dir.join("1.pcap"), dir.join("2.pcap"));
        let mut b: Box<dyn Bearer + Send> =
            Box::new(PcapTap::new(Fake::new(MediaAddr::Eth(OURS), vec![])));
        assert!(b.pcap_tap().is_some_and(|t| t.capture().is_none()));
        let tap = b.pcap_tap_mut().expect("a tap");
        tap.start_file(&first).expect("start");
        b.send(&Dest::Broadcast, b"one").expect("send");
        b.send(&Dest::Broadcast, b"two").expect("send");
        let info = b.pcap_tap().and_then(|t| t.capture()).expect("running");
        assert_eq!(info.path.as_deref(), Some(first.as_path()));
        assert_eq!((info.frames_written, info.frames_skipped), (2, 0));
        let mut r = Lines::default();
        b.report(&mut r);
        let capturing = format!("pcap.capture={}", first.display());
        assert!(r.0.contains(&capturing), "{:?}", r.0);
        assert!(
            r.0.contains(&"pcap.capture_frames=2".to_owned()),
            "{:?}",
            r.0
        );

        // A second capture counts from zero; the lifetime counters go on.
        let tap = b.pcap_tap_mut().expect("a tap");
        tap.stop().expect("stop");
        assert!(tap.capture().is_none());
        tap.start_file(&second).expect("restart");
        b.send(&Dest::Broadcast, b"three").expect("send");
        let tap = b.pcap_tap_mut().expect("a tap");
        assert_eq!(tap.capture().map(|c| c.frames_written), Some(1));
        assert_eq!(tap.tap_stats().frames_written, 3);
        tap.stop().expect("stop");
        let mut r = Lines::default();
        b.report(&mut r);
        assert!(r.0.contains(&"pcap.capture=off".to_owned()), "{:?}", r.0);
        assert!(
            r.0.contains(&"pcap.frames_written=3".to_owned()),
            "{:?}",
            r.0
        );
        let sizes: Vec<u64> = [&first, &second]
            .iter()
            .map(|p| std::fs::metadata(p).expect("file").len())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(sizes, [24 + 2 * 16 + 14 + 3 + 14 + 3, 24 + 16 + 14 + 5]);
    }

    #[test]
    fn only_regular_files_are_written() {
        let mut t = PcapTap::new(Fake::new(MediaAddr::Eth(OURS), vec![]));
        for p in ["/dev/null", "/"] {
            let e = t.start_file(Path::new(p)).expect_err("not a regular file");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{p}: {e}");
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        assert!(!t.is_capturing());
    }

    #[test]
    fn capture_file_is_created_and_reported_with_its_path() {
        let mut t = PcapTap::new(Fake::new(MediaAddr::Eth(OURS), vec![]));
        let e = t
            .start_file(Path::new("/nonexistent-dir/x.pcap"))
            .expect_err("no such directory");
        assert!(e.to_string().contains("/nonexistent-dir/x.pcap"), "{e}");
        let path = std::env::temp_dir().join(format!("utdp-tap-{}.pcap", std::process::id()));
        t.start_file(&path).expect("create");
        t.send(&Dest::Broadcast, b"to file").expect("send");
        t.stop().expect("stop");
        let bytes = std::fs::read(&path).expect("read back");
        let _ = std::fs::remove_file(&path);
        assert_eq!(bytes.len(), 24 + 16 + 14 + 7);
    }
}
