//! Neighbour discovery timers and the address trial (spec §3.2, §4.2).
//!
//! One [`Discoverer`] per bearer sends DSC_TRIAL during the node's address trial and DSC_REQ
//! afterwards, on the kernel's schedule: 125 ms held during the trial; then 125 ms doubling to
//! 1 s while the bearer has no working link, and up to 60 s once it has one; back to 125 ms
//! when the last link goes (only if the interval is above 1 s). The decisions on *received*
//! discovery messages need the peer table and live in the node module.

use core::time::Duration;

use crate::addr::NodeId;
use crate::time::Instant;
use crate::wire::common::Flags;
use crate::wire::discovery::{DiscType, DiscoveryRepr, MediaAddr};

/// First and trial-time discovery interval.
pub const INTERVAL_MIN: Duration = Duration::from_millis(125);
/// Largest interval while the bearer has no working link.
pub const INTERVAL_NO_LINK: Duration = Duration::from_secs(1);
/// Largest interval once the bearer has a working link.
pub const INTERVAL_MAX: Duration = Duration::from_secs(60);
/// Length of the address trial.
pub const TRIAL_PERIOD: Duration = Duration::from_millis(1000);

/// What the node is, as discovery messages say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// 128-bit node id.
    pub node_id: NodeId,
    /// Current (trial or committed) address.
    pub addr: u32,
    /// Network id.
    pub net_id: u32,
    /// Advertised capabilities.
    pub capabilities: u16,
    /// Node signature (random per instance).
    pub signature: u16,
    /// Sent in w13; any value is safe (spec §1.4.3).
    pub net_hash: u32,
}

impl Identity {
    /// Builds a discovery message of `msg_type` from this node, advertising `media`.
    pub fn message(
        &self,
        msg_type: DiscType,
        dest_domain: u32,
        media: MediaAddr,
        suggested: u32,
    ) -> Vec<u8> {
        let repr = DiscoveryRepr {
            flags: Flags {
                non_seq: true,
                ..Flags::default()
            },
            msg_type,
            capabilities: self.capabilities,
            signature: self.signature,
            dest_domain,
            prev_node: self.addr,
            net_id: self.net_id,
            media,
            peer_net_hash: self.net_hash,
            suggested_addr: suggested,
            node_id: Some(self.node_id),
            extra_payload: &[],
        };
        // A discovery message of this shape always fits its own buffer_len.
        crate::wire::MessageRepr::Discovery(repr)
            .to_vec()
            .unwrap_or_default()
    }
}

/// The per-bearer discovery timer.
#[derive(Debug, Clone)]
pub struct Discoverer {
    interval: Duration,
    next: Instant,
    /// Working links on this bearer.
    links: usize,
    /// Messages sent (for management output).
    pub sent: u64,
}

/// What a discovery tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    /// Send nothing this tick.
    Nothing,
    /// Broadcast a DSC_TRIAL.
    SendTrial,
    /// Broadcast a DSC_REQ.
    SendRequest,
}

impl Discoverer {
    /// A discoverer whose first message goes out at once (the caller sends it when the bearer
    /// is enabled).
    pub fn new(now: Instant) -> Self {
        Self {
            interval: INTERVAL_MIN,
            next: now + INTERVAL_MIN,
            links: 0,
            sent: 1,
        }
    }

    /// When the next tick is due.
    pub fn next_timeout(&self) -> Instant {
        self.next
    }

    /// Current interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Runs a tick if due. `in_trial`: the node is in its address trial; `trial_ended_now`:
    /// this tick is the one on which the trial turned out to be over (it sends nothing, spec
    /// §4.2).
    pub fn on_timeout(
        &mut self,
        now: Instant,
        in_trial: bool,
        trial_ended_now: bool,
    ) -> TickAction {
        if now < self.next {
            return TickAction::Nothing;
        }
        let action = if in_trial {
            self.interval = INTERVAL_MIN;
            TickAction::SendTrial
        } else if trial_ended_now {
            self.interval = INTERVAL_MIN;
            TickAction::Nothing
        } else {
            TickAction::SendRequest
        };
        if action == TickAction::SendRequest {
            // The kernel doubles the interval (capped by link presence) before it re-arms the
            // timer for a request: REQs at +125, +250, +500, +1000 ms after the trial.
            let cap = if self.links > 0 {
                INTERVAL_MAX
            } else {
                INTERVAL_NO_LINK
            };
            self.interval = (self.interval * 2).min(cap);
        }
        self.next = now + self.interval;
        if action != TickAction::Nothing {
            self.sent += 1;
        }
        action
    }

    /// A link on this bearer came up.
    pub fn add_link(&mut self) {
        self.links += 1;
    }

    /// A link on this bearer went down; with none left, discovery speeds up again.
    pub fn remove_link(&mut self, now: Instant) {
        self.links = self.links.saturating_sub(1);
        if self.links == 0 && self.interval > INTERVAL_NO_LINK {
            self.interval = INTERVAL_MIN;
            self.next = self.next.min(now + INTERVAL_MIN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: u64) -> Instant {
        Instant::from_millis(t)
    }

    #[test]
    fn schedule_follows_the_kernel() {
        // Trial for 1 s at 125 ms; the tick that ends the trial sends nothing; then requests
        // at 1125 ms, then +250, +500, +1000 and every second (eth-01-discovery: 1.185,
        // 1.465, 2.010, 3.033 s).
        let mut d = Discoverer::new(ms(0));
        let mut sent = Vec::new();
        let mut t = 0;
        while t <= 6000 {
            let in_trial = t < 1000;
            let ended = (1000..1125).contains(&t);
            match d.on_timeout(ms(t), in_trial, ended) {
                TickAction::SendTrial => sent.push(("T", t)),
                TickAction::SendRequest => sent.push(("R", t)),
                TickAction::Nothing => {}
            }
            t = d.next_timeout().as_nanos() / 1_000_000;
        }
        let trials: Vec<u64> = sent.iter().filter(|s| s.0 == "T").map(|s| s.1).collect();
        assert_eq!(trials, vec![125, 250, 375, 500, 625, 750, 875]);
        let reqs: Vec<u64> = sent.iter().filter(|s| s.0 == "R").map(|s| s.1).collect();
        assert_eq!(&reqs[..6], &[1125, 1375, 1875, 2875, 3875, 4875]);
    }

    #[test]
    fn links_slow_discovery_and_losing_them_speeds_it_up() {
        let mut d = Discoverer::new(ms(0));
        d.add_link();
        let mut t = 125;
        let mut last = 0;
        for _ in 0..12 {
            d.on_timeout(ms(t), false, false);
            last = d.interval().as_millis();
            t = d.next_timeout().as_nanos() / 1_000_000;
        }
        assert_eq!(last, 60_000);
        d.remove_link(ms(t));
        assert_eq!(d.interval(), INTERVAL_MIN);
        assert!(d.next_timeout() <= ms(t) + INTERVAL_MIN);
    }
}
