//! LINK_PROTOCOL: building STATE, RESET and ACTIVATE, the session rules, and what a received
//! one does (spec §1.4.1, §1.4.2, §5.3, §5.4, §5.6, §5.7, §5.8).
//!
//! Layouts are the kernel's, byte for byte (checked against `eth-02-link-setup` frames 1, 5,
//! 6, 10, `eth-04-fragmented-66000` frames 49–51, `eth-09-link-failure` frames 15, 17 and
//! `eth-10-bearer-disable-reset` frames 8, 9 in the tests):
//!
//! * every message: ack = rcv_nxt − 1, next_sent = snd_nxt, last_bcast and bc_ack_invalid from
//!   the broadcast layer, own session, bearer id and network plane; priority and tolerance 0
//!   unless an administrative change is being announced;
//! * RESET/ACTIVATE: seqno = snd_nxt + 32767, max_pkt = own bearer MTU, the interface name as
//!   16-byte payload; RESET carries the broadcast ack in `w1[0:15]`, ACTIVATE the peer's
//!   session there with "dest session valid" in `w1[16]`; redundant_link as the node layer says;
//! * STATE: seqno = the STATE counter when the peer has LINK_PROTO_SEQNO (else
//!   snd_nxt + 32767), seq_gap = the NACK, bc_gap, probe and keepalive bits, redundant_link =
//!   our broadcast receive link is up; the gap-ack record when the peer has GAP_ACK_BLOCK —
//!   always with an empty broadcast part, and with unicast blocks only when seq_gap ≠ 0.
//!
//! About capability checks: a kernel builds its STATEs from the bits *we* advertised and
//! parses ours from the bits *it* advertised. So we send the STATE counter and the gap-ack
//! record when the peer advertised them (it expects them), and we only check the counter and
//! parse the record when both of us advertised them (only then does the peer send them).

use super::fsm::FsmEvent;
use super::seq::{HALF, less, more};
use super::{
    BcastCtx, DownReason, Link, LinkOutput, LinkState, MAX_PRIORITY, PeerBcast, TOLERANCE_MAX,
    TOLERANCE_MIN,
};
use crate::time::Instant;
use crate::wire::common::{Common, Flags, Internal};
use crate::wire::discovery::caps;
use crate::wire::link_proto::{
    GAP_ACK_HEADER_LEN, GapAckBlock, GapAckRecord, IF_NAME_LEN, LinkProtoRepr, LinkProtoType,
};
use crate::wire::{Packet, be16};

/// Options of one STATE message.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StateOpts {
    /// Ask the peer to reply at once.
    pub(super) probe: bool,
    /// This answers a probe (keepalive bit without probe).
    pub(super) probe_reply: bool,
    /// Number of packets missing after our ack (a NACK); replaced by the deferred-queue gap
    /// on probes and probe replies.
    pub(super) rcvgap: u16,
    /// Administrative tolerance change, in ms (0 = none).
    pub(super) tolerance_ms: u16,
    /// Administrative priority change (0 = none).
    pub(super) priority: u8,
}

/// The unicast and broadcast blocks of a received gap-ack record.
#[derive(Debug, Default)]
struct ParsedGapAck {
    ucast: Vec<GapAckBlock>,
    bcast: Vec<GapAckBlock>,
}

impl Link {
    /// Sends a STATE (only on an up link).
    pub(super) fn build_state(&mut self, opts: StateOpts, bc: &BcastCtx, out: &mut LinkOutput) {
        if self.state.is_blocked() || !self.is_up() {
            return;
        }
        if !bc.rcv_ack_invalid {
            self.last_state_bc_ack = Some(bc.rcv_ack);
        }
        let rcv_nxt = self.rx.rcv_nxt;
        let mut rcvgap = opts.rcvgap;
        if (opts.probe || opts.probe_reply)
            && let Some(first) = self.rx.first_deferred()
        {
            rcvgap = first.wrapping_sub(rcv_nxt);
        }
        let seqno = if self.cfg.peer_caps & caps::LINK_PROTO_SEQNO != 0 {
            let s = self.snd_nxt_state;
            self.snd_nxt_state = s.wrapping_add(1);
            s
        } else {
            self.tx.snd_nxt().wrapping_add(HALF)
        };
        let payload = if self.cfg.peer_caps & caps::GAP_ACK_BLOCK != 0 {
            let rec = GapAckRecord {
                bcast: Vec::new(),
                ucast: if rcvgap != 0 {
                    self.rx.gap_ack_blocks()
                } else {
                    Vec::new()
                },
            };
            let mut buf = vec![0; rec.buffer_len()];
            // Sized by `buffer_len`, at most 64 blocks: cannot fail.
            let _ = rec.emit(&mut buf);
            buf
        } else {
            Vec::new()
        };
        let keepalive = opts.probe || opts.probe_reply;
        let repr = LinkProtoRepr {
            base: Internal {
                common: Common {
                    flags: Flags {
                        dest_droppable: keepalive,
                        ..Flags::default()
                    },
                    bcast_ack: bc.rcv_ack,
                    ack: rcv_nxt.wrapping_sub(1),
                    seqno,
                    prev_node: self.cfg.own_addr,
                },
                orig_node: self.cfg.own_addr,
                dest_node: self.cfg.peer_addr,
                extra_header: &[],
                payload: &payload,
            },
            msg_type: LinkProtoType::State,
            seq_gap: rcvgap & 0x1fff,
            last_bcast: bc.last_bcast,
            next_sent: self.tx.snd_nxt(),
            session: self.session,
            bc_ack_invalid: bc.rcv_ack_invalid,
            peer_stopping: false,
            redundant_link: !bc.rcv_ack_invalid,
            bearer_id: self.cfg.bearer_id,
            priority: opts.priority,
            net_plane: self.net_plane,
            probe: opts.probe,
            bc_gap: bc.bc_gap,
            max_pkt: 0,
            tolerance: opts.tolerance_ms,
        };
        if let Some(buf) = emit(&repr) {
            out.transmit.push(buf);
        }
        self.stats.sent_states += 1;
        if opts.probe {
            self.stats.sent_probes += 1;
        }
        if rcvgap != 0 {
            self.stats.sent_nacks += 1;
        }
        self.rx.rcv_unacked = 0;
    }

    /// Sends a RESET, or an ACTIVATE while establishing (spec §5.3). `peer_stopping` marks the
    /// one RESET that announces our own link-down (spec §5.2); the timer's never carry it.
    pub(super) fn build_reset_msg(
        &mut self,
        peer_stopping: bool,
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        if self.state.is_blocked() {
            return;
        }
        let activate = self.state == LinkState::Establishing;
        let mut if_name = [0u8; IF_NAME_LEN];
        let name = self.cfg.own_if_name.as_bytes();
        let n = name.len().min(IF_NAME_LEN - 1);
        if_name[..n].copy_from_slice(&name[..n]);
        let repr = LinkProtoRepr {
            base: Internal {
                common: Common {
                    flags: Flags::default(),
                    bcast_ack: if activate {
                        self.peer_session
                    } else {
                        bc.rcv_ack
                    },
                    ack: self.rx.rcv_nxt.wrapping_sub(1),
                    seqno: self.tx.snd_nxt().wrapping_add(HALF),
                    prev_node: self.cfg.own_addr,
                },
                orig_node: self.cfg.own_addr,
                dest_node: self.cfg.peer_addr,
                extra_header: &[],
                payload: &if_name,
            },
            msg_type: if activate {
                LinkProtoType::Activate
            } else {
                LinkProtoType::Reset
            },
            seq_gap: u16::from(activate),
            last_bcast: bc.last_bcast,
            next_sent: self.tx.snd_nxt(),
            session: self.session,
            bc_ack_invalid: bc.rcv_ack_invalid,
            peer_stopping: peer_stopping && !activate,
            redundant_link: bc.redundant_link,
            bearer_id: self.cfg.bearer_id,
            priority: 0,
            net_plane: self.net_plane,
            probe: false,
            bc_gap: 0,
            max_pkt: self.cfg.mtu,
            tolerance: 0,
        };
        if let Some(buf) = emit(&repr) {
            out.transmit.push(buf);
        }
        if activate {
            self.stats.sent_activates += 1;
        } else {
            self.stats.sent_resets += 1;
        }
    }

    /// A LINK_PROTOCOL message from the peer.
    pub(super) fn proto_rcv(
        &mut self,
        now: Instant,
        msg: &[u8],
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        let p = Packet::new_unchecked(msg);
        let Ok(m) = LinkProtoRepr::parse(&p) else {
            self.stats.rejected_proto += 1;
            return;
        };
        if self.state.is_blocked() {
            return;
        }
        // The node with the lowest address decides the network plane.
        if self.cfg.own_addr > m.base.common.prev_node {
            self.net_plane = m.net_plane;
        }
        if !self.session_ok(&m) {
            self.stats.rejected_proto += 1;
            return;
        }
        match m.msg_type {
            LinkProtoType::Reset | LinkProtoType::Activate => self.rcv_reset(now, &m, bc, out),
            LinkProtoType::State => self.rcv_state(now, &m, bc, out),
            LinkProtoType::Unknown(_) => self.stats.rejected_proto += 1,
        }
    }

    /// The session rules (spec §5.3): once in session, RESET only with a newer session,
    /// ACTIVATE with a newer or equal one, STATE only with the current one — and not with a
    /// non-zero ack before the link is up, nor with an old STATE counter.
    fn session_ok(&self, m: &LinkProtoRepr<'_>) -> bool {
        match m.msg_type {
            LinkProtoType::Reset => !self.in_session || more(m.session, self.peer_session),
            LinkProtoType::Activate => !self.in_session || !less(m.session, self.peer_session),
            LinkProtoType::State => {
                self.in_session
                    && m.session == self.peer_session
                    && (self.is_up() || m.base.common.ack == 0)
                    && (!self.both_have(caps::LINK_PROTO_SEQNO)
                        || !less(m.base.common.seqno, self.rcv_nxt_state))
            }
            LinkProtoType::Unknown(_) => false,
        }
    }

    /// RESET or ACTIVATE (spec §5.3 steps 1–6).
    fn rcv_reset(
        &mut self,
        now: Instant,
        m: &LinkProtoRepr<'_>,
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        // 1. Too small an MTU, or no interface name: ignored.
        if m.max_pkt < self.cfg.min_mtu {
            self.stats.rejected_proto += 1;
            return;
        }
        let Some(name) = m.if_name() else {
            self.stats.rejected_proto += 1;
            return;
        };
        self.stats.recv_resets += 1;
        self.peer_if_name = Some(String::from_utf8_lossy(name).into_owned());
        // 2. Tolerance in range is adopted; a higher priority too.
        self.adopt_tolerance(m.tolerance);
        if m.priority > self.priority && m.priority <= MAX_PRIORITY {
            self.priority = m.priority;
        }
        // 3. The peer is going down: FAILURE (no-op unless up), and nothing else.
        if m.peer_stopping {
            if self.fsm(FsmEvent::Failure) {
                self.link_down(now, DownReason::PeerStopping, true, bc, out);
            }
            return;
        }
        // 4. The peer knows an older session of ours: move past it, and wait for its next.
        if let Some(dest) = m.dest_session()
            && dest != self.session
        {
            if less(self.session, dest) {
                self.session = dest.wrapping_add(1);
            }
            return;
        }
        // 5. RESET, or ACTIVATE on a link that is not up, means the peer reset its end.
        let activate = m.msg_type == LinkProtoType::Activate;
        let mut went_down = false;
        if !activate || !self.is_up() {
            went_down = self.fsm(FsmEvent::PeerReset);
        }
        let up = activate && self.state == LinkState::Establishing;
        // 6. In session with the peer.
        self.peer_session = m.session;
        self.in_session = true;
        self.peer_bearer_id = Some(m.bearer_id);
        self.mtu = self.mtu.min(m.max_pkt);
        if went_down {
            self.link_down(now, DownReason::PeerReset, true, bc, out);
        } else if up {
            self.link_up(bc, out);
        }
    }

    /// STATE (spec §5.3, §5.4, §5.6, §5.8).
    fn rcv_state(
        &mut self,
        now: Instant,
        m: &LinkProtoRepr<'_>,
        bc: &BcastCtx,
        out: &mut LinkOutput,
    ) {
        let common = &m.base.common;
        self.rcv_nxt_state = common.seqno.wrapping_add(1);
        self.adopt_tolerance(m.tolerance);
        let mut failed = false;
        if m.priority != self.priority && (1..=MAX_PRIORITY).contains(&m.priority) {
            self.priority = m.priority;
            failed = self.fsm(FsmEvent::Failure);
        }
        self.silent_intv_cnt = 0;
        self.stats.recv_states += 1;
        if m.probe {
            self.stats.recv_probes += 1;
        }
        if failed {
            self.link_down(now, DownReason::PriorityChange, true, bc, out);
            return;
        }
        if !self.is_up() {
            if self.state == LinkState::Establishing {
                self.link_up(bc, out);
            }
            return;
        }
        let gap_ack = if self.both_have(caps::GAP_ACK_BLOCK) {
            match parse_gap_ack(m.base.payload) {
                Some(g) => g,
                // A record longer than the payload: the kernel drops the whole STATE.
                None => {
                    self.stats.rejected_proto += 1;
                    return;
                }
            }
        } else {
            ParsedGapAck::default()
        };
        out.peer_bcast.push(PeerBcast {
            is_state: true,
            bcast_ack: common.bcast_ack,
            bc_ack_invalid: m.bc_ack_invalid,
            last_bcast: m.last_bcast,
            bc_gap: m.bc_gap,
            unicast_ack: common.ack,
            redundant_link: m.redundant_link,
            bcast_gap_blocks: gap_ack.bcast,
        });
        // A probe or keepalive showing packets we never got, with nothing parked: tail loss.
        let rcv_nxt = self.rx.rcv_nxt;
        let mut rcvgap = 0;
        if (m.probe || m.keepalive())
            && more(m.next_sent, rcv_nxt)
            && self.state != LinkState::Synching
            && self.rx.deferred_len() == 0
        {
            rcvgap = m.next_sent.wrapping_sub(rcv_nxt);
        }
        if rcvgap != 0 || m.probe {
            self.build_state(
                StateOpts {
                    probe_reply: m.probe,
                    rcvgap,
                    ..StateOpts::default()
                },
                bc,
                out,
            );
        }
        let stamp = self.stamp(bc);
        let adv = self.tx.advance(
            common.ack,
            m.seq_gap,
            &gap_ack.ucast,
            now,
            self.tolerance,
            stamp,
            &mut out.transmit,
            &mut self.stats,
        );
        if m.seq_gap != 0 {
            self.stats.recv_nacks += 1;
        }
        if adv.failure {
            self.take_down(now, DownReason::RetransmitFailure, bc, out);
            return;
        }
        if adv.released > 0 || adv.retransmitted {
            self.tx.update_cwin(adv.released, adv.retransmitted);
        }
        if adv.released > 0 {
            self.advance_backlog(bc, out);
        }
    }

    /// Adopts a tolerance announced by the peer when it is in 50..=30000 ms (0 = no change).
    fn adopt_tolerance(&mut self, ms: u16) {
        let t = core::time::Duration::from_millis(u64::from(ms));
        if (TOLERANCE_MIN..=TOLERANCE_MAX).contains(&t) {
            self.tolerance = t;
        }
    }
}

/// Emits a LINK_PROTOCOL message into a buffer of exactly its size.
fn emit(repr: &LinkProtoRepr<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut buf[..])).ok()?;
    Some(buf)
}

/// The kernel's reading of a gap-ack record (spec §1.4.2): `len` is always the first two
/// bytes, and a `len` beyond the payload (or no room for it) drops the STATE (`None`). The
/// blocks are used when `len` matches both counts, or (an older peer) the unicast count alone;
/// otherwise they are ignored and the STATE is processed without them.
fn parse_gap_ack(payload: &[u8]) -> Option<ParsedGapAck> {
    if payload.len() < GAP_ACK_HEADER_LEN {
        return None;
    }
    let len = usize::from(be16(payload, 0));
    if len > payload.len() {
        return None;
    }
    let ucnt = usize::from(payload[2]);
    let bcnt = usize::from(payload[3]);
    let blocks = |from: usize, n: usize| -> Vec<GapAckBlock> {
        (from..from + n)
            .map(|i| GapAckBlock {
                ack: be16(payload, GAP_ACK_HEADER_LEN + 4 * i),
                gap: be16(payload, GAP_ACK_HEADER_LEN + 4 * i + 2),
            })
            .collect()
    };
    let mut parsed = ParsedGapAck::default();
    if len == GAP_ACK_HEADER_LEN + 4 * (ucnt + bcnt) {
        parsed.bcast = blocks(0, bcnt);
        parsed.ucast = blocks(bcnt, ucnt);
    } else if len == GAP_ACK_HEADER_LEN + 4 * ucnt {
        parsed.ucast = blocks(0, ucnt);
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;

    #[test]
    fn gap_ack_records_are_read_like_the_kernel() {
        let b = |ack, gap| GapAckBlock { ack, gap };
        let g = parse_gap_ack(&hex("00040000")).expect("empty record");
        assert!(g.ucast.is_empty() && g.bcast.is_empty());
        let g = parse_gap_ack(&hex("000c0101 00090000 00040005")).expect("both parts");
        assert_eq!((g.bcast, g.ucast), (vec![b(9, 0)], vec![b(4, 5)]));
        // Unicast-only form of an older peer: the broadcast count does not fit `len`.
        let g = parse_gap_ack(&hex("00080107 00040005")).expect("unicast only");
        assert_eq!((g.bcast, g.ucast), (vec![], vec![b(4, 5)]));
        // Counts that match nothing: blocks ignored, STATE still used.
        let g = parse_gap_ack(&hex("00080303 00040005")).expect("ignored");
        assert!(g.ucast.is_empty());
        // Longer than the payload, or no room for the header: the STATE is dropped.
        assert!(parse_gap_ack(&hex("000c0100 00040005")).is_none());
        assert!(parse_gap_ack(&hex("0004")).is_none());
        assert!(parse_gap_ack(&[]).is_none());
    }
}
