//! The send side of a link: transmit queue, backlog, send window and retransmission
//! (spec §5.4, §5.5, §5.11).
//!
//! * The **transmit queue** holds packets that carry a seqno and have been sent, until the
//!   peer acknowledges them, cumulatively (`ack`) or selectively (gap-ack blocks). It is sorted
//!   by seqno and may have holes after a selective release.
//! * The **backlog** holds packets that did not fit in the window, in send order, with a count
//!   and a limit per importance (0–3 data, 4 system). Packets get their seqno when they leave
//!   it. New packets go to the backlog whenever it is not empty, so that seqno order is send
//!   order.
//! * The **window** is a congestion window in packets: it starts at `min_win`, grows on acks
//!   (slow start below `ssthresh`, then +1 per window's worth), shrinks on retransmission and
//!   falls back to `min_win` when a timer interval passes without progress.
//!
//! Every packet is stamped with `w2 = (rcv_nxt − 1, seqno)`, `w1[0:15]` = broadcast ack and
//! `w3` = own address when it enters the transmit queue, and ack and broadcast ack are stamped
//! again on each retransmission.

use core::time::Duration;
use std::collections::VecDeque;

use super::bundle;
use super::seq::{less_eq, more};
use super::stats::LinkStats;
use crate::time::Instant;
use crate::wire::Packet;
use crate::wire::link_proto::GapAckBlock;

/// Number of importance classes: data 0–3 and system (internal users) 4.
pub(super) const IMPORTANCE_LEVELS: usize = 5;
/// The system importance class (spec §1.5).
pub(super) const SYSTEM_IMPORTANCE: usize = 4;
/// A packet is retransmitted at most once per this interval (unicast, spec §5.4).
const RETRANSMIT_GAP: Duration = Duration::from_millis(1);
/// Floor of the slow-start threshold after a loss (spec §5.5).
const SSTHRESH_FLOOR: u16 = 300;
/// The retransmission-failure limit is this many tolerances (spec §5.4).
const RETRANSMIT_FAILURE_TOLERANCES: u32 = 10;

/// What the link stamps into a packet as it enters the transmit queue or is retransmitted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    /// Our unicast rcv_nxt − 1.
    pub(super) ack: u16,
    /// Our broadcast receive link's rcv_nxt − 1.
    pub(super) bcast_ack: u16,
    /// Own node address (`w3`).
    pub(super) own_addr: u32,
}

/// A sent, unacknowledged packet.
#[derive(Debug, Clone)]
struct TxPacket {
    seqno: u16,
    buf: Vec<u8>,
    /// Not to be retransmitted before this instant.
    next_retr: Instant,
    /// Times retransmitted.
    retr_cnt: u32,
    /// When it was first retransmitted.
    retr_stamp: Instant,
}

/// A packet waiting for room in the window.
#[derive(Debug, Clone)]
struct Backlogged {
    buf: Vec<u8>,
    importance: usize,
    is_bundle: bool,
}

/// Outcome of processing an acknowledgement (cumulative ack, NACK gap, gap-ack blocks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Advance {
    /// Packets released.
    pub(super) released: usize,
    /// At least one packet was retransmitted.
    pub(super) retransmitted: bool,
    /// The first missing packet has been retransmitted for longer than 10 × tolerance.
    pub(super) failure: bool,
}

/// Transmit queue, backlog and window of one link.
#[derive(Debug, Clone)]
pub(super) struct TransmitQueue {
    transmq: VecDeque<TxPacket>,
    backlog: VecDeque<Backlogged>,
    /// Identity of `backlog[0]`; `backlog[i]` is `front_id + i`.
    front_id: u64,
    /// Per importance: the backlogged packet new messages of that importance may be bundled
    /// into (the last one queued, while it is bundleable).
    target: [Option<u64>; IMPORTANCE_LEVELS],
    backlog_len: [usize; IMPORTANCE_LEVELS],
    backlog_limit: [usize; IMPORTANCE_LEVELS],
    snd_nxt: u16,
    window: u16,
    min_win: u16,
    max_win: u16,
    ssthresh: u16,
    cong_acks: u32,
}

impl TransmitQueue {
    /// An empty queue. Backlog limits (spec §5.5): 2, 4, 6, 8 × `min_win` for the data levels,
    /// 65535 / (`mtu` / 20) for system messages.
    pub(super) fn new(min_win: u16, max_win: u16, mtu: u32) -> Self {
        let min_win = min_win.max(1);
        let max_win = max_win.max(min_win);
        let m = usize::from(min_win);
        let system = 65_535 / usize::try_from(mtu / 20).unwrap_or(1).max(1);
        Self {
            transmq: VecDeque::new(),
            backlog: VecDeque::new(),
            front_id: 0,
            target: [None; IMPORTANCE_LEVELS],
            backlog_len: [0; IMPORTANCE_LEVELS],
            backlog_limit: [2 * m, 4 * m, 6 * m, 8 * m, system],
            snd_nxt: 1,
            window: min_win,
            min_win,
            max_win,
            ssthresh: max_win,
            cong_acks: 0,
        }
    }

    /// Drops everything and restarts the sequence at 1 with the initial window (link reset).
    pub(super) fn reset(&mut self) {
        self.transmq.clear();
        self.front_id += self.backlog.len() as u64;
        self.backlog.clear();
        self.target = [None; IMPORTANCE_LEVELS];
        self.backlog_len = [0; IMPORTANCE_LEVELS];
        self.snd_nxt = 1;
        self.window = self.min_win;
        self.ssthresh = self.max_win;
        self.cong_acks = 0;
    }

    /// Restarts the sequence at `snd_nxt` (tests of the wrap; the queues must be empty).
    #[cfg(test)]
    pub(super) fn jump(&mut self, snd_nxt: u16) {
        self.snd_nxt = snd_nxt;
    }

    /// Next seqno to assign.
    pub(super) fn snd_nxt(&self) -> u16 {
        self.snd_nxt
    }

    /// Current congestion window.
    pub(super) fn window(&self) -> u16 {
        self.window
    }

    /// Packets sent and not yet acknowledged.
    pub(super) fn transmit_len(&self) -> usize {
        self.transmq.len()
    }

    /// Backlogged packets of one importance (0–4).
    pub(super) fn backlog_len(&self, importance: usize) -> usize {
        self.backlog_len.get(importance).copied().unwrap_or(0)
    }

    /// Whether the backlog of `importance` has reached its limit.
    pub(super) fn backlog_full(&self, importance: usize) -> bool {
        let i = importance.min(SYSTEM_IMPORTANCE);
        self.backlog_len[i] >= self.backlog_limit[i]
    }

    /// Queues the packets of one message (one packet, or its fragments): straight into the
    /// transmit queue while the window allows and nothing waits before them, otherwise into the
    /// backlog, bundling where possible. With `cork`, a bundleable packet goes to the backlog
    /// even when the window has room (the link's burst bundling). Returns how many packets
    /// were sent.
    #[expect(
        clippy::too_many_arguments,
        reason = "plain inputs of one queueing step"
    )]
    pub(super) fn enqueue(
        &mut self,
        packets: impl IntoIterator<Item = Vec<u8>>,
        importance: usize,
        mss: usize,
        peer_addr: u32,
        stamp: Stamp,
        cork: bool,
        out: &mut Vec<Vec<u8>>,
        stats: &mut LinkStats,
    ) -> usize {
        let imp = importance.min(SYSTEM_IMPORTANCE);
        let mut sent = 0;
        for pkt in packets {
            let hold = cork && bundle::bundleable(&pkt, mss);
            if !hold && self.backlog.is_empty() && self.transmq.len() < usize::from(self.window) {
                self.push_transmit(pkt, stamp, out, stats);
                sent += 1;
                continue;
            }
            if !bundle::bundleable(&pkt, mss) {
                self.target[imp] = None;
                self.push_backlog(pkt, imp, false);
                continue;
            }
            if let Some(pkt) = self.try_bundle(pkt, imp, mss, stamp.own_addr, peer_addr, stats) {
                let id = self.push_backlog(pkt, imp, false);
                self.target[imp] = Some(id);
            }
        }
        let queued = (self.transmq.len() + self.backlog.len()) as u64;
        stats.max_queue_sz = stats.max_queue_sz.max(queued);
        sent
    }

    /// Adds `pkt` to the bundling target of its importance. Gives the packet back when it
    /// could not be bundled.
    fn try_bundle(
        &mut self,
        pkt: Vec<u8>,
        imp: usize,
        mss: usize,
        own_addr: u32,
        peer_addr: u32,
        stats: &mut LinkStats,
    ) -> Option<Vec<u8>> {
        let entry = self.target[imp]
            .and_then(|id| id.checked_sub(self.front_id))
            .and_then(|idx| usize::try_from(idx).ok())
            .and_then(|idx| self.backlog.get_mut(idx));
        let Some(entry) = entry else {
            return Some(pkt);
        };
        if entry.is_bundle {
            if bundle::append(&mut entry.buf, &pkt, mss) {
                stats.sent_bundled += 1;
                return None;
            }
            return Some(pkt);
        }
        if !bundle::can_merge(entry.buf.len(), pkt.len(), mss) {
            return Some(pkt);
        }
        let mut b = bundle::start(&entry.buf, own_addr, peer_addr, imp as u8);
        if !bundle::append(&mut b, &pkt, mss) {
            return Some(pkt);
        }
        entry.buf = b;
        entry.is_bundle = true;
        stats.sent_bundles += 1;
        stats.sent_bundled += 2;
        None
    }

    fn push_backlog(&mut self, buf: Vec<u8>, importance: usize, is_bundle: bool) -> u64 {
        let id = self.front_id + self.backlog.len() as u64;
        self.backlog.push_back(Backlogged {
            buf,
            importance,
            is_bundle,
        });
        self.backlog_len[importance] += 1;
        id
    }

    fn push_transmit(
        &mut self,
        mut buf: Vec<u8>,
        stamp: Stamp,
        out: &mut Vec<Vec<u8>>,
        stats: &mut LinkStats,
    ) {
        let seqno = self.snd_nxt;
        {
            let mut p = Packet::new_unchecked(&mut buf[..]);
            p.set_ack_seqno(stamp.ack, seqno);
            p.set_bcast_ack(stamp.bcast_ack);
            p.set_prev_node(stamp.own_addr);
        }
        out.push(buf.clone());
        self.transmq.push_back(TxPacket {
            seqno,
            buf,
            next_retr: Instant::ZERO,
            retr_cnt: 0,
            retr_stamp: Instant::ZERO,
        });
        self.snd_nxt = seqno.wrapping_add(1);
        stats.sent_pkts += 1;
    }

    /// Moves backlogged packets into the transmit queue while the window has room. Returns
    /// how many were sent.
    pub(super) fn advance_backlog(
        &mut self,
        stamp: Stamp,
        out: &mut Vec<Vec<u8>>,
        stats: &mut LinkStats,
    ) -> usize {
        let mut sent = 0;
        while self.transmq.len() < usize::from(self.window) {
            let Some(entry) = self.backlog.pop_front() else {
                break;
            };
            let id = self.front_id;
            self.front_id += 1;
            let imp = entry.importance;
            self.backlog_len[imp] = self.backlog_len[imp].saturating_sub(1);
            if self.target[imp] == Some(id) {
                self.target[imp] = None;
            }
            self.push_transmit(entry.buf, stamp, out, stats);
            sent += 1;
        }
        sent
    }

    /// Processes an acknowledgement (spec §5.4): releases every packet ≤ `acked`, retransmits
    /// those in (`acked`, `acked + gap`], then for each gap-ack block releases up to its `ack`
    /// and retransmits its `gap`. An ack of packets never sent is ignored whole, and so is the
    /// rest of the block list from a block that does so.
    #[expect(clippy::too_many_arguments, reason = "plain inputs of one ack step")]
    pub(super) fn advance(
        &mut self,
        acked: u16,
        gap: u16,
        blocks: &[GapAckBlock],
        now: Instant,
        tolerance: Duration,
        stamp: Stamp,
        out: &mut Vec<Vec<u8>>,
        stats: &mut LinkStats,
    ) -> Advance {
        let mut res = Advance::default();
        let last_sent = self.snd_nxt.wrapping_sub(1);
        if more(acked, last_sent) {
            return res;
        }
        let (mut nacked, mut ngap) = (acked, gap);
        let mut next_block = 0;
        let mut selective = false;
        let mut i = 0;
        'walk: while i < self.transmq.len() {
            let seqno = self.transmq[i].seqno;
            loop {
                if less_eq(seqno, nacked) {
                    self.transmq.remove(i);
                    res.released += 1;
                    if selective {
                        stats.gap_ack_released += 1;
                    }
                    continue 'walk;
                }
                if less_eq(seqno, nacked.wrapping_add(ngap)) {
                    if seqno == acked.wrapping_add(1) && self.head_failed(now, tolerance) {
                        res.failure = true;
                        return res;
                    }
                    let pkt = &mut self.transmq[i];
                    if now >= pkt.next_retr {
                        pkt.next_retr = now + RETRANSMIT_GAP;
                        let mut p = Packet::new_unchecked(&mut pkt.buf[..]);
                        p.set_ack_seqno(stamp.ack, pkt.seqno);
                        p.set_bcast_ack(stamp.bcast_ack);
                        out.push(pkt.buf.clone());
                        if pkt.retr_cnt == 0 {
                            pkt.retr_stamp = now;
                        }
                        pkt.retr_cnt += 1;
                        stats.retransmitted += 1;
                        res.retransmitted = true;
                    }
                    i += 1;
                    continue 'walk;
                }
                let Some(b) = blocks.get(next_block) else {
                    break 'walk;
                };
                if more(b.ack, last_sent) {
                    break 'walk;
                }
                next_block += 1;
                stats.recv_gap_ack_blocks += 1;
                (nacked, ngap) = (b.ack, b.gap);
                selective = true;
            }
        }
        res
    }

    /// Retransmission failure (spec §5.4): the oldest unacked packet was first retransmitted
    /// more than 10 × tolerance ago.
    fn head_failed(&self, now: Instant, tolerance: Duration) -> bool {
        self.transmq.front().is_some_and(|h| {
            h.retr_cnt > 0
                && now.saturating_since(h.retr_stamp) > tolerance * RETRANSMIT_FAILURE_TOLERANCES
        })
    }

    /// Window update after an ack (spec §5.5): on retransmission halve toward ssthresh; with
    /// nothing released (a whole interval without progress) restart from `min_win`; otherwise
    /// grow when the queues fill the window and the transmit queue has no holes.
    pub(super) fn update_cwin(&mut self, released: usize, retransmitted: bool) {
        if retransmitted {
            self.ssthresh = (self.window / 2).max(SSTHRESH_FLOOR);
            self.window = self.ssthresh.min(self.window);
            return;
        }
        if released == 0 {
            self.ssthresh = (self.window / 2).max(SSTHRESH_FLOOR);
            self.window = self.min_win;
            return;
        }
        let txq = self.transmq.len();
        if txq + self.backlog.len() < usize::from(self.window) {
            return;
        }
        if let Some(head) = self.transmq.front()
            && usize::from(self.snd_nxt.wrapping_sub(head.seqno)) != txq
        {
            return;
        }
        let released = u32::try_from(released).unwrap_or(u32::MAX);
        self.cong_acks = self.cong_acks.saturating_add(released);
        if self.window <= self.ssthresh {
            let grown = u32::from(self.window).saturating_add(released);
            self.window = u16::try_from(grown).unwrap_or(u16::MAX).min(self.max_win);
            return;
        }
        if self.cong_acks < u32::from(self.window) {
            return;
        }
        self.window = self.window.saturating_add(1).min(self.max_win);
        self.cong_acks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        ack: 0,
        bcast_ack: 0,
        own_addr: 1,
    };

    /// A 24-byte-header message of `len` bytes.
    fn msg(len: usize) -> Vec<u8> {
        let mut m = vec![0u8; len];
        m[..4].copy_from_slice(&(0x4000_0000u32 | (6 << 21) | len as u32).to_be_bytes());
        m
    }

    fn seqnos(out: &[Vec<u8>]) -> Vec<u16> {
        out.iter()
            .map(|p| Packet::new_unchecked(&p[..]).seqno())
            .collect()
    }

    #[test]
    fn window_backlog_and_selective_release() {
        let mut q = TransmitQueue::new(4, 100, 1500);
        let mut st = LinkStats::default();
        let mut out = Vec::new();
        for _ in 0..6 {
            q.enqueue(vec![msg(1000)], 0, 1428, 2, STAMP, false, &mut out, &mut st);
        }
        assert_eq!(seqnos(&out), [1, 2, 3, 4]);
        assert_eq!((q.transmit_len(), q.backlog_len(0)), (4, 2));
        out.clear();
        // Ack 1, NACK 2, block (3, 0): 1 and 3 released, 2 retransmitted.
        let now = Instant::from_millis(10);
        let blocks = [GapAckBlock { ack: 3, gap: 0 }];
        let a = q.advance(
            1,
            1,
            &blocks,
            now,
            Duration::from_secs(1),
            STAMP,
            &mut out,
            &mut st,
        );
        assert_eq!(
            a,
            Advance {
                released: 2,
                retransmitted: true,
                failure: false
            }
        );
        assert_eq!(seqnos(&out), [2]);
        assert_eq!(st.gap_ack_released, 1);
        // Within 1 ms: no second retransmission.
        out.clear();
        q.advance(
            1,
            1,
            &[],
            now,
            Duration::from_secs(1),
            STAMP,
            &mut out,
            &mut st,
        );
        assert!(out.is_empty());
        q.advance_backlog(STAMP, &mut out, &mut st);
        assert_eq!(seqnos(&out), [5, 6]);
        // An ack beyond what was sent is ignored.
        assert_eq!(
            q.advance(
                9,
                0,
                &[],
                now,
                Duration::from_secs(1),
                STAMP,
                &mut out,
                &mut st
            ),
            Advance::default()
        );
    }

    #[test]
    fn retransmission_failure_after_ten_tolerances() {
        let mut q = TransmitQueue::new(50, 100, 1500);
        let mut st = LinkStats::default();
        let mut out = Vec::new();
        q.enqueue(vec![msg(100)], 0, 1428, 2, STAMP, false, &mut out, &mut st);
        let tol = Duration::from_millis(100);
        let t0 = Instant::from_millis(5);
        assert!(
            !q.advance(0, 1, &[], t0, tol, STAMP, &mut out, &mut st)
                .failure
        );
        let t1 = t0 + Duration::from_millis(1000);
        assert!(
            !q.advance(0, 1, &[], t1, tol, STAMP, &mut out, &mut st)
                .failure
        );
        let t2 = t1 + Duration::from_millis(1);
        assert!(
            q.advance(0, 1, &[], t2, tol, STAMP, &mut out, &mut st)
                .failure
        );
    }

    #[test]
    fn congestion_window_rules() {
        let mut q = TransmitQueue::new(50, 8191, 1500);
        assert_eq!(q.backlog_limit, [100, 200, 300, 400, 873]);
        let mut st = LinkStats::default();
        let mut out = Vec::new();
        for _ in 0..60 {
            q.enqueue(vec![msg(1000)], 0, 1428, 2, STAMP, false, &mut out, &mut st);
        }
        let now = Instant::ZERO;
        let tol = Duration::from_secs(1);
        let a = q.advance(10, 0, &[], now, tol, STAMP, &mut out, &mut st);
        q.update_cwin(a.released, a.retransmitted);
        assert_eq!(q.window(), 60, "slow start: +released");
        q.update_cwin(0, false);
        assert_eq!((q.window(), q.ssthresh), (50, 300), "no progress");
        q.window = 1000;
        q.update_cwin(1, true);
        assert_eq!((q.window(), q.ssthresh), (500, 500), "loss halves");
    }

    #[test]
    fn bundles_in_the_backlog() {
        let mut q = TransmitQueue::new(1, 10, 1500);
        let mut st = LinkStats::default();
        let mut out = Vec::new();
        for _ in 0..5 {
            q.enqueue(vec![msg(100)], 1, 1428, 2, STAMP, false, &mut out, &mut st);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(q.backlog_len(1), 1);
        assert_eq!((st.sent_bundles, st.sent_bundled), (1, 4));
        q.window = 2;
        out.clear();
        q.advance_backlog(STAMP, &mut out, &mut st);
        let (inner, _) = bundle::unbundle(&out[0]);
        assert_eq!(inner.len(), 4);
        assert_eq!(q.backlog_len(1), 0);
    }
}
