//! The receive side of a link (spec §5.4): receive window, deferred queue, explicit acks,
//! NACKs, and delivery after un-bundling and reassembly.
//!
//! A sequenced packet is accepted if rcv_nxt ≤ seqno ≤ rcv_nxt + 8191; older ones are
//! duplicates. The piggy-backed ack of every accepted packet releases our transmit queue.
//! A packet after a gap waits in the deferred queue, sorted by seqno; every 16th out-of-order
//! arrival from the third on (L ≥ 3, (L − 3) mod 16 = 0) sends a NACK STATE. In-order packets,
//! and the deferred ones they make contiguous, are delivered; after 16 of them without
//! anything sent in the other direction, a STATE acknowledges them.

use std::collections::VecDeque;

use super::bundle;
use super::proto::StateOpts;
use super::seq::{less, more};
use super::{BcastCtx, DownReason, Link, LinkOutput, LinkState, MAX_LINK_WINDOW, PeerBcast};
use crate::time::Instant;
use crate::wire::link_proto::{GapAckBlock, MAX_GAP_ACK_BLOCKS};
use crate::wire::{Packet, User};

/// Packets received without anything sent back before an explicit ack (TIPC_MIN_LINK_WIN).
const ACK_INTERVAL: u32 = 16;
/// NACK when the deferred queue reaches this length, and every 16 packets after.
const NACK_FIRST: usize = 3;
const NACK_EVERY: usize = 16;

/// Receive state of one link.
#[derive(Debug, Clone)]
pub(super) struct ReceiveQueue {
    /// Next seqno expected.
    pub(super) rcv_nxt: u16,
    /// Packets received in sequence (or STATEs not sent) since we last sent anything.
    pub(super) rcv_unacked: u32,
    /// Out-of-order packets, sorted by seqno; all lie in (rcv_nxt, rcv_nxt + 8191].
    deferred: VecDeque<(u16, Vec<u8>)>,
}

impl ReceiveQueue {
    pub(super) fn new() -> Self {
        Self {
            rcv_nxt: 1,
            rcv_unacked: 0,
            deferred: VecDeque::new(),
        }
    }

    /// Back to the initial state (link reset).
    pub(super) fn reset(&mut self) {
        *self = Self::new();
    }

    /// Parks an out-of-order packet; false if it is already parked.
    fn defer(&mut self, seqno: u16, pkt: Vec<u8>) -> bool {
        let base = self.rcv_nxt;
        let key = seqno.wrapping_sub(base);
        match self
            .deferred
            .binary_search_by_key(&key, |(s, _)| s.wrapping_sub(base))
        {
            Ok(_) => false,
            Err(i) => {
                self.deferred.insert(i, (seqno, pkt));
                true
            }
        }
    }

    /// The parked packet that is next in sequence, if any.
    fn take_next(&mut self) -> Option<Vec<u8>> {
        if self
            .deferred
            .front()
            .is_some_and(|(s, _)| *s == self.rcv_nxt)
        {
            self.deferred.pop_front().map(|(_, p)| p)
        } else {
            None
        }
    }

    /// Lowest parked seqno.
    pub(super) fn first_deferred(&self) -> Option<u16> {
        self.deferred.front().map(|(s, _)| *s)
    }

    /// Number of parked packets.
    pub(super) fn deferred_len(&self) -> usize {
        self.deferred.len()
    }

    /// Unicast gap-ack blocks describing the deferred queue (spec §1.4.2): for each run of
    /// parked packets, its highest seqno and the number missing after it; the last block has
    /// gap 0. At most 64 blocks; when the queue has more runs, the list ends early, as the
    /// kernel's does.
    pub(super) fn gap_ack_blocks(&self) -> Vec<GapAckBlock> {
        let mut blocks = Vec::new();
        let Some(first) = self.first_deferred() else {
            return blocks;
        };
        let mut expect = first;
        let mut last = first;
        for &(seqno, _) in &self.deferred {
            if more(seqno, expect) {
                blocks.push(GapAckBlock {
                    ack: expect.wrapping_sub(1),
                    gap: seqno.wrapping_sub(expect),
                });
                if blocks.len() >= MAX_GAP_ACK_BLOCKS {
                    return blocks;
                }
            }
            expect = seqno.wrapping_add(1);
            last = seqno;
        }
        blocks.push(GapAckBlock { ack: last, gap: 0 });
        blocks
    }
}

impl Link {
    /// A sequenced (non-LINK_PROTOCOL) packet from the peer.
    pub(super) fn data_rcv(
        &mut self,
        now: Instant,
        msg: &[u8],
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        // Anything heard from the peer postpones probing (spec §5.6).
        self.silent_intv_cnt = 0;
        if !self.is_up() {
            // Traffic while establishing means the peer is up (spec §5.3); the packet itself
            // is dropped unacknowledged and will be retransmitted.
            if self.state == LinkState::Establishing {
                self.link_up(bc, out);
            }
            self.stats.dropped += 1;
            return;
        }
        let p = Packet::new_unchecked(msg);
        report_bcast_ack(&p, out);
        let seqno = p.seqno();
        let rcv_nxt = self.rx.rcv_nxt;
        if less(seqno, rcv_nxt) || more(seqno, rcv_nxt.wrapping_add(MAX_LINK_WINDOW)) {
            self.stats.duplicates += 1;
            return;
        }
        let stamp = self.stamp(bc);
        let released = self
            .tx
            .advance(
                p.ack(),
                0,
                &[],
                now,
                self.tolerance,
                stamp,
                &mut out.transmit,
                &mut self.stats,
            )
            .released;
        if seqno != rcv_nxt {
            if !self.rx.defer(seqno, msg.to_vec()) {
                self.stats.duplicates += 1;
            }
            self.stats.deferred_recv += 1;
            let len = self.rx.deferred_len();
            if len >= NACK_FIRST && (len - NACK_FIRST).is_multiple_of(NACK_EVERY) {
                let gap = self
                    .rx
                    .first_deferred()
                    .map_or(0, |f| f.wrapping_sub(rcv_nxt));
                self.build_state(
                    StateOpts {
                        rcvgap: gap,
                        ..StateOpts::default()
                    },
                    bc,
                    out,
                );
            }
        } else {
            let mut failed = self.accept(msg, bc, out);
            while !failed {
                let Some(next) = self.rx.take_next() else {
                    break;
                };
                failed = self.accept(&next, bc, out);
            }
            if failed {
                self.take_down(now, DownReason::ReassemblyFailure, bc, out);
                return;
            }
        }
        if released > 0 {
            self.tx.update_cwin(released, false);
            self.advance_backlog(bc, out);
        }
    }

    /// Delivers the in-sequence packet `msg`; true if reassembly failed.
    fn accept(&mut self, msg: &[u8], bc: &BcastCtx, out: &mut LinkOutput) -> bool {
        self.rx.rcv_nxt = self.rx.rcv_nxt.wrapping_add(1);
        self.stats.recv_pkts += 1;
        let failed = self.input(msg, out);
        self.rx.rcv_unacked += 1;
        if self.rx.rcv_unacked >= ACK_INTERVAL {
            self.stats.sent_acks += 1;
            self.build_state(StateOpts::default(), bc, out);
        }
        failed
    }

    /// Hands one in-sequence packet up: as is, un-bundled, or through reassembly. True if
    /// reassembly failed.
    fn input(&mut self, msg: &[u8], out: &mut LinkOutput) -> bool {
        let p = Packet::new_unchecked(msg);
        match User::from(p.user_raw()) {
            User::MsgBundler => {
                self.stats.recv_bundles += 1;
                self.stats.recv_bundled += u64::from(p.word(9) >> 16);
                let (msgs, skipped) = bundle::unbundle(msg);
                self.stats.bundle_skipped += skipped;
                out.deliver.extend(msgs);
                false
            }
            User::MsgFragmenter => {
                self.stats.recv_fragments += 1;
                match self.reasm.push(msg) {
                    Ok(None) => false,
                    Ok(Some(whole)) => {
                        self.stats.recv_fragmented += 1;
                        let user = User::from(Packet::new_unchecked(&whole[..]).user_raw());
                        if bundle::may_be_bundled(user) {
                            out.deliver.push(whole);
                        } else {
                            self.stats.dropped += 1;
                        }
                        false
                    }
                    Err(_) => true,
                }
            }
            user if bundle::may_be_bundled(user)
                || matches!(user, User::BcastProtocol | User::TunnelProtocol) =>
            {
                out.deliver.push(msg.to_vec());
                false
            }
            _ => {
                self.stats.dropped += 1;
                false
            }
        }
    }
}

/// Reports the broadcast ack of a sequenced packet to the node layer, unless the packet marks
/// it invalid (BCAST_PROTOCOL and NAME_DISTRIBUTOR with `w5[14]` set, spec §6.2).
fn report_bcast_ack(p: &Packet<&[u8]>, out: &mut LinkOutput) {
    let user = User::from(p.user_raw());
    let invalid =
        matches!(user, User::BcastProtocol | User::NameDistributor) && (p.word(5) >> 14) & 1 != 0;
    if !invalid {
        out.peer_bcast.push(PeerBcast {
            bcast_ack: p.bcast_ack(),
            unicast_ack: p.ack(),
            ..PeerBcast::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(rcv_nxt: u16, parked: &[u16]) -> ReceiveQueue {
        let mut q = ReceiveQueue::new();
        q.rcv_nxt = rcv_nxt;
        for &s in parked {
            assert!(q.defer(s, vec![s as u8]));
        }
        q
    }

    #[test]
    fn gap_ack_blocks_follow_the_kernel() {
        // Parked 10–11, 13–15, 20 with rcv_nxt 5: the STATE says ack 4, gap 5, then blocks.
        let q = queue(5, &[20, 13, 11, 15, 10, 14]);
        let b = |ack, gap| GapAckBlock { ack, gap };
        assert_eq!(q.gap_ack_blocks(), [b(11, 1), b(15, 4), b(20, 0)]);
        assert_eq!(q.first_deferred(), Some(10));
        assert!(queue(1, &[]).gap_ack_blocks().is_empty());
    }

    #[test]
    fn deferred_queue_is_sorted_across_the_wrap() {
        let mut q = queue(65_534, &[3, 65_535, 1, 0]);
        assert!(!q.defer(1, vec![]));
        assert_eq!(q.first_deferred(), Some(65_535));
        assert_eq!(q.take_next(), None);
        q.rcv_nxt = 65_535;
        assert!(q.take_next().is_some());
        q.rcv_nxt = 0;
        assert!(q.take_next().is_some());
        q.rcv_nxt = 1;
        assert!(q.take_next().is_some());
        q.rcv_nxt = 2;
        assert_eq!(q.take_next(), None);
        assert_eq!(q.deferred_len(), 1);
        let b = GapAckBlock { ack: 3, gap: 0 };
        assert_eq!(q.gap_ack_blocks(), [b]);
    }
}
