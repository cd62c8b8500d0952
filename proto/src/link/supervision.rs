//! The link timer (spec §5.3, §5.5, §5.6).
//!
//! One tick per interval = min(tolerance / 4, 500 ms):
//!
//! * RESET: a RESET on each of the first 5 ticks, then on every 16th (the kernel's `rst_cnt`).
//! * ESTABLISHING: an ACTIVATE on every tick.
//! * Up: FAILURE when more than `abort limit` = tolerance / interval ticks passed without
//!   hearing from the peer — so on the (abort limit + 2)-th silent tick, between tolerance +
//!   1 and tolerance + 2 intervals after the last packet. Otherwise a STATE when anything is
//!   unacknowledged either way, packets are parked, or the broadcast layer reports a gap; and
//!   a probe when the previous interval was silent, packets are parked, or snd_nxt has not
//!   moved since the previous tick ("no progress": the window also restarts from its minimum).
//!   An idle link therefore probes on every tick. The silent-interval count grows on every tick,
//!   as it does in the kernel's full-mesh mode, where every peer is monitored.
//!
//! The kernel also sends a STATE while the peer has not acknowledged all our broadcast
//! packets. The node layer does not tell the link that, so this timer relies on the probe of
//! every tick without unicast progress to carry our `last_bcast` (the node layer can push a
//! STATE at any time with `Link::send_state`).

use super::proto::StateOpts;
use super::{BcastCtx, DownReason, Link, LinkOutput, LinkState};
use crate::time::Instant;

/// RESET on each of this many first ticks in RESET …
const RESET_BURST: u32 = 5;
/// … then on every this-many-th tick.
const RESET_PERIOD: u32 = 16;

impl Link {
    /// Silent ticks tolerated: tolerance / interval (4 with the defaults).
    pub(super) fn abort_limit(&self) -> u32 {
        let intv = self.interval().as_nanos().max(1);
        u32::try_from(self.tolerance.as_nanos() / intv).unwrap_or(u32::MAX)
    }

    /// Sends the messages held back for bundling (see [`Link::send`]), then runs the timer if
    /// it is due; a call before [`Link::poll_timeout`] does nothing. The next tick is one
    /// interval after `now`.
    pub fn handle_timeout(&mut self, now: Instant, bc: &BcastCtx, out: &mut LinkOutput) {
        if self.corked_since.is_some() {
            self.advance_backlog(bc, out);
        }
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.interval();
        match self.state {
            LinkState::Established | LinkState::Synching => self.tick_up(now, bc, out),
            LinkState::Reset => {
                let ticks = self.rst_cnt.saturating_add(1);
                let send = self.rst_cnt < RESET_BURST || ticks.is_multiple_of(RESET_PERIOD);
                self.rst_cnt = ticks;
                if send {
                    self.build_reset_msg(false, bc, out);
                }
            }
            LinkState::Establishing => self.build_reset_msg(false, bc, out),
            LinkState::Resetting | LinkState::PeerReset | LinkState::FailingOver => {}
        }
    }

    fn tick_up(&mut self, now: Instant, bc: &BcastCtx, out: &mut LinkOutput) {
        if self.silent_intv_cnt > self.abort_limit() {
            self.take_down(now, DownReason::Tolerance, bc, out);
            return;
        }
        let parked = self.rx.deferred_len() > 0;
        let bc_unacked = !bc.rcv_ack_invalid
            && self
                .last_state_bc_ack
                .is_some_and(|acked| acked != bc.rcv_ack);
        let state = self.rx.rcv_unacked > 0
            || self.tx.transmit_len() > 0
            || parked
            || bc.bc_gap != 0
            || bc_unacked;
        let mut probe = self.silent_intv_cnt > 0 || parked;
        self.silent_intv_cnt = self.silent_intv_cnt.saturating_add(1);
        let snd_nxt = self.tx.snd_nxt();
        if self.checkpoint == Some(snd_nxt) {
            self.tx.update_cwin(0, false);
            probe = true;
        }
        self.checkpoint = Some(snd_nxt);
        if state || probe {
            self.build_state(
                StateOpts {
                    probe,
                    ..StateOpts::default()
                },
                bc,
                out,
            );
        }
    }
}
