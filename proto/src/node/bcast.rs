//! The broadcast receive link for one peer (spec §6.1, §6.2).
//!
//! A kernel peer sends name-table updates and multicast on its broadcast link (N = 1, w5 = net
//! id, w2 = its broadcast seqno) and resets every link to a node that never acknowledges
//! them. This module tracks, per peer: whether our receive link is up (it comes up on the
//! peer's BCAST_PROTOCOL init or any NAME_DISTRIBUTOR received over unicast), the next
//! expected seqno, out-of-order packets, and the ack/NACK values our unicast link carries back.
//!
//! utipc itself sends nothing on a broadcast link: its name updates and multicast go as
//! unicast copies, which the kernel accepts from any peer (spec §6.3, §7.3), so its own
//! broadcast send link stays at seqno 0 and needs no acknowledgement tracking.

use std::collections::HashMap;

use crate::link::reassembly::Reassembler;
use crate::wire::Packet;
use crate::wire::bundler::BundleIter;
use crate::wire::common::User;

/// How far ahead of rcv_nxt a broadcast packet is still accepted (the link receive window).
const RCV_WINDOW: u16 = 8191;
/// Most out-of-order packets kept per peer.
const MAX_DEFERRED: usize = 8192;

/// Counters of one broadcast receive link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BcastRcvStats {
    /// Packets accepted in order.
    pub received: u64,
    /// Packets that were already received.
    pub duplicates: u64,
    /// Packets parked out of order.
    pub deferred: u64,
    /// Packets dropped: link down, outside the window, or malformed.
    pub dropped: u64,
}

/// The broadcast receive link for one peer.
#[derive(Debug, Default)]
pub struct BcastRcv {
    up: bool,
    rcv_nxt: u16,
    /// Out-of-order packets by seqno.
    deferred: HashMap<u16, Vec<u8>>,
    reasm: Reassembler,
    /// Out-of-order arrivals, for the kernel's NACK staggering.
    ooo_count: u32,
    /// Counters.
    pub stats: BcastRcvStats,
}

/// `a` is at or before `b` in 16-bit sequence space.
fn less_eq(a: u16, b: u16) -> bool {
    b.wrapping_sub(a) < 0x8000
}

impl BcastRcv {
    /// A receive link that is down until the peer synchronises it.
    pub fn new() -> Self {
        Self {
            rcv_nxt: 1,
            ..Self::default()
        }
    }

    /// Whether the link is up (the peer's broadcasts are accepted and acked).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The peer's BCAST_PROTOCOL init: the first packet we will get is `last_bcast + 1`.
    pub fn init(&mut self, last_bcast: u16) {
        self.up = true;
        self.rcv_nxt = last_bcast.wrapping_add(1);
        self.deferred.clear();
        self.reasm = Reassembler::default();
    }

    /// A NAME_DISTRIBUTOR over unicast brings the link up with the receive point unchanged.
    pub fn up_by_named(&mut self) {
        self.up = true;
    }

    /// Contact lost: down, back to the initial receive point.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The broadcast ack our packets carry: rcv_nxt − 1.
    pub fn ack(&self) -> u16 {
        self.rcv_nxt.wrapping_sub(1)
    }

    /// Number of missing packets before the first deferred one (0 when nothing is missing).
    pub fn gap(&self) -> u16 {
        self.first_deferred()
            .map_or(0, |s| s.wrapping_sub(self.rcv_nxt))
            .min(0x3ff)
    }

    fn first_deferred(&self) -> Option<u16> {
        self.deferred
            .keys()
            .min_by_key(|&&s| s.wrapping_sub(self.rcv_nxt))
            .copied()
    }

    /// Whether the kernel's staggering rule asks for a STATE after this point: every ~16
    /// packets at an offset that differs per node, or when a gap is open.
    pub fn wants_state(&self, own_addr: u32) -> bool {
        (u32::from(self.rcv_nxt) ^ own_addr) & 0xf == 0xf
            || (!self.deferred.is_empty() && (self.ooo_count & 0xf) == (own_addr & 0xf))
    }

    /// The peer acknowledged or announced `last_bcast` in a STATE; nothing to do while our
    /// link is down. Returns true when packets are missing (the caller should NACK).
    pub fn peer_last_sent(&self, last_bcast: u16) -> bool {
        self.up && less_eq(self.rcv_nxt, last_bcast) && last_bcast.wrapping_sub(self.rcv_nxt) < 50
    }

    /// A broadcast packet from the peer (already checked: N = 1, w5 = our net id). Returns the
    /// messages now deliverable, in order, after un-bundling and reassembly.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let Ok(p) = Packet::new_checked(bytes) else {
            self.stats.dropped += 1;
            return out;
        };
        if !self.up {
            self.stats.dropped += 1;
            return out;
        }
        let seqno = p.seqno();
        let off = seqno.wrapping_sub(self.rcv_nxt);
        if off >= 0x8000 {
            self.stats.duplicates += 1;
            return out;
        }
        if off > RCV_WINDOW {
            self.stats.dropped += 1;
            return out;
        }
        if off > 0 {
            if self.deferred.len() >= MAX_DEFERRED {
                self.stats.dropped += 1;
            } else if self.deferred.insert(seqno, p.message().to_vec()).is_none() {
                self.stats.deferred += 1;
                self.ooo_count = self.ooo_count.wrapping_add(1);
            } else {
                self.stats.duplicates += 1;
            }
            return out;
        }
        self.accept(p.message(), &mut out);
        while let Some(pkt) = self.deferred.remove(&self.rcv_nxt) {
            self.accept(&pkt, &mut out);
        }
        out
    }

    fn accept(&mut self, msg: &[u8], out: &mut Vec<Vec<u8>>) {
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        self.stats.received += 1;
        let p = Packet::new_unchecked(msg);
        match User::from(p.user_raw()) {
            User::MsgBundler => {
                for inner in BundleIter::new(p.payload()) {
                    match inner {
                        Ok((_, ip)) => out.push(ip.message().to_vec()),
                        Err(_) => self.stats.dropped += 1,
                    }
                }
            }
            User::MsgFragmenter => match self.reasm.push(msg) {
                Ok(Some(whole)) => out.push(whole),
                Ok(None) => {}
                Err(_) => self.stats.dropped += 1,
            },
            _ => out.push(msg.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MessageRepr;
    use crate::wire::common::{Common, Flags, Importance};
    use crate::wire::data::{DataRepr, DataType, ErrorCode};

    fn mcast(seqno: u16) -> Vec<u8> {
        MessageRepr::Data(DataRepr {
            importance: Importance::Low,
            msg_type: DataType::Mcast,
            common: Common {
                flags: Flags {
                    non_seq: true,
                    ..Flags::default()
                },
                seqno,
                prev_node: 7,
                ..Common::default()
            },
            error: ErrorCode::Ok,
            reroute_count: 0,
            lookup_scope: 2,
            header_len: 44,
            orig_port: 1,
            dest_port: 4711,
            orig_node: 7,
            dest_node: 0,
            name_type: 100,
            name_lower: 0,
            name_upper: 10,
            extra_header: &[],
            payload: b"x",
        })
        .to_vec()
        .expect("emit")
    }

    #[test]
    fn delivers_in_order_and_acks() {
        let mut b = BcastRcv::new();
        assert!(b.receive(&mcast(1)).is_empty(), "down until synchronised");
        b.init(0);
        assert_eq!(b.receive(&mcast(1)).len(), 1);
        assert_eq!(b.ack(), 1);
        assert!(b.receive(&mcast(3)).is_empty());
        assert!(b.receive(&mcast(4)).is_empty());
        assert_eq!(b.gap(), 1);
        assert_eq!(b.receive(&mcast(2)).len(), 3);
        assert_eq!(b.ack(), 4);
        assert_eq!(b.gap(), 0);
        assert!(b.receive(&mcast(2)).is_empty());
        assert_eq!(b.stats.duplicates, 1);
        assert_eq!(b.stats.deferred, 2);
    }

    #[test]
    fn init_sets_the_receive_point() {
        let mut b = BcastRcv::new();
        b.init(41);
        assert_eq!(b.ack(), 41);
        assert!(b.receive(&mcast(41)).is_empty());
        assert_eq!(b.receive(&mcast(42)).len(), 1);
        b.reset();
        assert!(!b.is_up());
        b.up_by_named();
        assert_eq!(b.receive(&mcast(1)).len(), 1);
    }

    #[test]
    fn garbage_is_dropped() {
        let mut b = BcastRcv::new();
        b.init(0);
        assert!(b.receive(&[0xff; 30]).is_empty());
        assert_eq!(b.stats.dropped, 1);
    }
}
