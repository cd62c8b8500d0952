//! IP fragment reassembly for the TIPC UDP bearer.
//!
//! The kernel's UDP bearer uses a 14,000-byte MTU, so on a 1500-byte network
//! most of its data messages arrive as IP fragments. Reassembly here follows
//! what a receiving host does, with limits because a capture is untrusted
//! and may be huge:
//!
//! * datagrams are identified by (source, destination, protocol, id) for IPv4
//!   and (source, destination, id) for IPv6;
//! * fragments may arrive in any order; bytes already received win over a
//!   later overlapping fragment (counted in
//!   [`CaptureStats::ip_fragment_overlaps`]), so duplicates are harmless;
//! * a datagram whose fragments disagree on its length is dropped, like
//!   Linux does, and its fragments are counted as malformed;
//! * at most [`MAX_PENDING_DATAGRAMS`] incomplete datagrams of at most
//!   [`MAX_DATAGRAM_BYTES`] each are held (about 4 MiB); the oldest is
//!   evicted to make room, and one incomplete for longer than
//!   [`REASSEMBLY_TIMEOUT_NS`] of capture time is dropped (so that a reused
//!   IP id does not splice two datagrams together).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::CaptureStats;

/// Most incomplete datagrams held at once; the oldest is evicted beyond it.
pub const MAX_PENDING_DATAGRAMS: usize = 64;

/// Largest reassembled payload: the IP total/payload length fields are 16
/// bits, so no real datagram is larger. A fragment reaching past it is
/// malformed (an absurd offset).
pub const MAX_DATAGRAM_BYTES: usize = 65_535;

/// An incomplete datagram is dropped when a fragment arrives this long (in
/// capture time) after its first fragment: 30 s, Linux's default
/// `ipfrag_time`.
pub const REASSEMBLY_TIMEOUT_NS: u64 = 30_000_000_000;

/// Identifies the datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FragmentKey {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        id: u16,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        id: u32,
    },
}

/// What inserting a fragment did.
#[derive(Debug)]
pub(crate) enum Reassembled {
    /// The fragment is held; the datagram is not complete yet.
    Held,
    /// The fragment could not be used (counted malformed by the caller);
    /// any fragments discarded with it are already counted.
    Rejected,
    /// The fragment completed its datagram.
    Complete {
        /// The reassembled payload (for IPv4 the UDP header and data; for
        /// IPv6 the fragmentable part).
        data: Vec<u8>,
        /// Frames that went into it, this one included.
        fragments: usize,
        /// IPv4 protocol, or IPv6 next header from the Fragment header of
        /// the first fragment.
        next_header: u8,
    },
}

/// One incomplete datagram.
#[derive(Debug)]
struct Pending {
    key: FragmentKey,
    /// Insertion order, for evicting the oldest.
    sequence: u64,
    first_timestamp_ns: u64,
    data: Vec<u8>,
    /// Received byte ranges, sorted, disjoint and not adjacent.
    received: Vec<(usize, usize)>,
    /// Length of the datagram, known once the last fragment arrived.
    total: Option<usize>,
    frames: usize,
    /// Next header of the offset-0 fragment, else of the first one seen.
    next_header: u8,
    have_first: bool,
}

impl Pending {
    /// Whether `[start, end)` lies inside the received ranges.
    fn overlaps(&self, start: usize, end: usize) -> bool {
        self.received.iter().any(|&(a, b)| a < end && start < b)
    }

    /// Copies the parts of `[start, end)` not received yet and records the
    /// range as received.
    fn merge(&mut self, start: usize, bytes: &[u8]) {
        let end = start + bytes.len();
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        // The gaps of [start, end) not received yet.
        let mut gaps = Vec::new();
        let mut cursor = start;
        for &(a, b) in &self.received {
            if b <= cursor || a >= end {
                continue;
            }
            if a > cursor {
                gaps.push((cursor, a));
            }
            cursor = cursor.max(b);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        for (from, to) in gaps {
            if let (Some(target), Some(source)) = (
                self.data.get_mut(from..to),
                bytes.get(from - start..to - start),
            ) {
                target.copy_from_slice(source);
            }
        }
        self.received.push((start, end));
        self.received.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.received.len());
        for &(a, b) in &self.received {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.received = merged;
    }

    fn is_complete(&self) -> bool {
        self.total
            .is_some_and(|total| self.received.as_slice() == [(0, total)])
    }
}

/// The reassembly state of one capture.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    pending: Vec<Pending>,
    next_sequence: u64,
}

impl Reassembler {
    /// Fragments held in incomplete datagrams.
    pub(crate) fn pending_fragments(&self) -> usize {
        self.pending.iter().map(|pending| pending.frames).sum()
    }

    /// Adds a fragment of `payload` bytes at byte `offset` of its datagram;
    /// `more` is the more-fragments flag.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per IP version; a parameter struct would only rename them"
    )]
    pub(crate) fn insert(
        &mut self,
        key: FragmentKey,
        timestamp_ns: u64,
        offset: usize,
        more: bool,
        payload: &[u8],
        next_header: u8,
        stats: &mut CaptureStats,
    ) -> Reassembled {
        self.expire(timestamp_ns, stats);
        let end = offset.saturating_add(payload.len());
        // All fragments but the last carry a multiple of 8 bytes (the offset
        // unit); an empty fragment or one past the largest datagram is junk.
        if payload.is_empty()
            || end > MAX_DATAGRAM_BYTES
            || (more && !payload.len().is_multiple_of(8))
        {
            return Reassembled::Rejected;
        }
        let index = if let Some(index) = self.pending.iter().position(|p| p.key == key) {
            index
        } else {
            if self.pending.len() >= MAX_PENDING_DATAGRAMS {
                self.evict_oldest(stats);
            }
            self.pending.push(Pending {
                key,
                sequence: self.next_sequence,
                first_timestamp_ns: timestamp_ns,
                data: Vec::new(),
                received: Vec::new(),
                total: None,
                frames: 0,
                next_header,
                have_first: false,
            });
            self.next_sequence += 1;
            self.pending.len() - 1
        };
        let Some(pending) = self.pending.get_mut(index) else {
            return Reassembled::Rejected;
        };
        // Lengths must agree: one end, and no data beyond it.
        let consistent = match (pending.total, more) {
            (Some(total), false) => end == total,
            (Some(total), true) => end <= total,
            (None, false) => pending.received.last().is_none_or(|&(_, last)| last <= end),
            (None, true) => true,
        };
        if !consistent {
            let discarded = self.pending.swap_remove(index);
            stats.malformed += discarded.frames;
            return Reassembled::Rejected;
        }
        if !more {
            pending.total = Some(end);
        }
        if offset == 0 && !pending.have_first {
            pending.have_first = true;
            pending.next_header = next_header;
        }
        if pending.overlaps(offset, end) {
            stats.ip_fragment_overlaps += 1;
        }
        pending.merge(offset, payload);
        pending.frames += 1;
        if !pending.is_complete() {
            return Reassembled::Held;
        }
        let mut done = self.pending.swap_remove(index);
        let total = done.total.unwrap_or(done.data.len());
        done.data.truncate(total);
        stats.ip_fragments_reassembled += done.frames - 1;
        stats.ip_datagrams_reassembled += 1;
        Reassembled::Complete {
            data: done.data,
            fragments: done.frames,
            next_header: done.next_header,
        }
    }

    fn evict_oldest(&mut self, stats: &mut CaptureStats) {
        let oldest = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, pending)| pending.sequence)
            .map(|(index, _)| index);
        if let Some(index) = oldest {
            let evicted = self.pending.swap_remove(index);
            stats.ip_datagrams_evicted += 1;
            stats.ip_fragments_evicted += evicted.frames;
        }
    }

    /// Drops datagrams that have been incomplete for longer than the
    /// timeout at capture time `now_ns`.
    fn expire(&mut self, now_ns: u64, stats: &mut CaptureStats) {
        self.pending.retain(|pending| {
            let stale = now_ns.saturating_sub(pending.first_timestamp_ns) > REASSEMBLY_TIMEOUT_NS;
            if stale {
                stats.ip_datagrams_evicted += 1;
                stats.ip_fragments_evicted += pending.frames;
            }
            !stale
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragmentKey {
        FragmentKey::V4 {
            src: Ipv4Addr::new(198, 18, 1, 11),
            dst: Ipv4Addr::new(198, 18, 1, 12),
            protocol: 17,
            id,
        }
    }

    /// Capture time of the test fragments.
    const NOW: u64 = 1_000;

    fn datagram(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from(i % 251).unwrap_or(0))
            .collect()
    }

    /// Splits `data` into fragments of `size` bytes (a multiple of 8).
    fn fragments(data: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
        let chunks: Vec<&[u8]> = data.chunks(size).collect();
        let count = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| (i * size, i + 1 < count, chunk))
            .collect()
    }

    fn feed(
        reassembler: &mut Reassembler,
        stats: &mut CaptureStats,
        id: u16,
        order: &[(usize, bool, &[u8])],
    ) -> Option<(Vec<u8>, usize)> {
        let mut result = None;
        for (n, &(offset, more, bytes)) in order.iter().enumerate() {
            match reassembler.insert(key(id), NOW, offset, more, bytes, 17, stats) {
                Reassembled::Complete {
                    data, fragments, ..
                } => {
                    assert!(result.is_none(), "completed twice");
                    result = Some((data, fragments));
                }
                Reassembled::Held => {}
                Reassembled::Rejected => panic!("fragment {n} rejected"),
            }
        }
        result
    }

    #[test]
    fn in_order_out_of_order_and_reverse() {
        let data = datagram(3000);
        let parts = fragments(&data, 1480);
        assert_eq!(parts.len(), 3);
        for order in [[0, 1, 2], [2, 0, 1], [2, 1, 0], [1, 2, 0]] {
            let mut reassembler = Reassembler::default();
            let mut stats = CaptureStats::default();
            let sequence: Vec<_> = order.iter().map(|&i| parts[i]).collect();
            let (bytes, count) = feed(&mut reassembler, &mut stats, 1, &sequence)
                .unwrap_or_else(|| panic!("order {order:?} did not complete"));
            assert_eq!(bytes, data, "order {order:?}");
            assert_eq!(count, 3);
            assert_eq!(stats.ip_fragments_reassembled, 2);
            assert_eq!(reassembler.pending_fragments(), 0);
        }
    }

    #[test]
    fn duplicates_and_overlaps_keep_first_bytes() {
        let data = datagram(2000);
        let parts = fragments(&data, 800);
        let mut reassembler = Reassembler::default();
        let mut stats = CaptureStats::default();
        // Duplicate of the first fragment, then an overlapping fragment with
        // different content covering 400..1200, then the rest.
        let bogus = vec![0xEE; 800];
        let sequence = [
            parts[0],
            parts[0],
            (400, true, &bogus[..]),
            parts[1],
            parts[2],
        ];
        let (bytes, count) = feed(&mut reassembler, &mut stats, 9, &sequence)
            .unwrap_or_else(|| panic!("incomplete"));
        assert_eq!(count, 5);
        assert_eq!(stats.ip_fragment_overlaps, 3);
        // 0..800 from the first fragment, 800..1200 from the bogus one (it
        // arrived before fragment 1), the rest from the real fragments.
        assert_eq!(&bytes[..800], &data[..800]);
        assert_eq!(&bytes[800..1200], &bogus[400..]);
        assert_eq!(&bytes[1200..], &data[1200..]);
    }

    #[test]
    fn absurd_offsets_and_misaligned_fragments_are_rejected() {
        let mut reassembler = Reassembler::default();
        let mut stats = CaptureStats::default();
        let bytes = [0_u8; 16];
        for (offset, more, len) in [
            (65_528, true, 16),
            (65_528, false, 9),
            (0, true, 12),
            (8, false, 0),
        ] {
            let result =
                reassembler.insert(key(1), NOW, offset, more, &bytes[..len], 17, &mut stats);
            assert!(
                matches!(result, Reassembled::Rejected),
                "{offset} {more} {len}"
            );
        }
        assert_eq!(reassembler.pending_fragments(), 0);
    }

    #[test]
    fn conflicting_lengths_drop_the_datagram() {
        let mut reassembler = Reassembler::default();
        let mut stats = CaptureStats::default();
        let bytes = [0_u8; 16];
        assert!(matches!(
            reassembler.insert(key(1), NOW, 0, true, &bytes, 17, &mut stats),
            Reassembled::Held
        ));
        assert!(matches!(
            reassembler.insert(key(1), NOW, 32, false, &bytes, 17, &mut stats),
            Reassembled::Held
        ));
        // A second "last" fragment ending elsewhere.
        assert!(matches!(
            reassembler.insert(key(1), NOW, 16, false, &bytes, 17, &mut stats),
            Reassembled::Rejected
        ));
        assert_eq!(stats.malformed, 2);
        assert_eq!(reassembler.pending_fragments(), 0);
    }

    #[test]
    fn memory_is_bounded_and_oldest_evicted() {
        let mut reassembler = Reassembler::default();
        let mut stats = CaptureStats::default();
        let bytes = [0_u8; 1480];
        for id in 0..200_u16 {
            let result = reassembler.insert(key(id), NOW, 0, true, &bytes, 17, &mut stats);
            assert!(matches!(result, Reassembled::Held));
        }
        assert_eq!(reassembler.pending.len(), MAX_PENDING_DATAGRAMS);
        assert_eq!(stats.ip_datagrams_evicted, 200 - MAX_PENDING_DATAGRAMS);
        assert_eq!(stats.ip_fragments_evicted, 200 - MAX_PENDING_DATAGRAMS);
        // The survivors are the newest ones.
        assert!(
            reassembler
                .pending
                .iter()
                .all(|p| matches!(p.key, FragmentKey::V4 { id, .. } if id >= 136))
        );
        // A datagram of the maximum size still fits.
        let big = datagram(MAX_DATAGRAM_BYTES);
        let parts = fragments(&big, 1480);
        let (bytes, _) = feed(&mut reassembler, &mut stats, 60_000, &parts)
            .unwrap_or_else(|| panic!("incomplete"));
        assert_eq!(bytes.len(), MAX_DATAGRAM_BYTES);
    }

    #[test]
    fn stale_datagrams_expire() {
        let mut reassembler = Reassembler::default();
        let mut stats = CaptureStats::default();
        let bytes = [0_u8; 8];
        let early = 0;
        let late = REASSEMBLY_TIMEOUT_NS + 1;
        assert!(matches!(
            reassembler.insert(key(1), early, 0, true, &bytes, 17, &mut stats),
            Reassembled::Held
        ));
        // Same id much later: the old head is gone, so this tail alone is
        // not a complete datagram.
        assert!(matches!(
            reassembler.insert(key(1), late, 8, false, &bytes, 17, &mut stats),
            Reassembled::Held
        ));
        assert_eq!(stats.ip_datagrams_evicted, 1);
        assert_eq!(reassembler.pending_fragments(), 1);
    }
}
