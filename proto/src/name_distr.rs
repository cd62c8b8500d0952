//! Name distribution (spec §7.3, §1.4.8): how a node tells its peers about its bindings, and
//! how it applies what its peers tell it. Pure state and message builders: the node layer
//! decides when to call them, the link layer sends the bytes.
//!
//! * [`Distributor`]: the node's name-distribution sequence counter. Every cluster-scope bind
//!   or unbind consumes one seqno; node-scope bindings are never distributed and consume none.
//! * [`build_bulk`] / [`build_update`]: complete NAME_DISTRIBUTOR messages (40-byte header and
//!   20-byte items) as a 6.1 kernel sends them, byte for byte. The link layer later overwrites
//!   the broadcast ack (`w1[0:15]`), ack/seqno (`w2`) and prevnode (`w3`); the builders write 0
//!   in the first two and the own address as prevnode.
//! * [`PeerNamedState`]: the receiver's per-peer ordering of updates.
//!
//! The semantics follow the kernel's `name_distr.c`, with one deliberate difference in the
//! receiver (see [`PeerNamedState`]).

use std::collections::BTreeMap;

use crate::name_table::{Binding, Scope};
use crate::wire::common::{Common, Flags, Internal};
use crate::wire::name_distr::{ITEM_LEN, NameDistrRepr, NameDistrType, Publication, encode_items};
use crate::wire::{INT_H_SIZE, MAX_USER_MSG_SIZE, Packet};

/// Word 5 of a bulk message: only bc_ack_invalid (bit 14) set.
pub const BULK_WORD5: u32 = 1 << 14;

/// Most items one message may carry: the kernel refuses payloads above 66,000 bytes
/// (`tipc_msg_validate`), so even on a huge MSS a message holds at most 3,300 items.
pub const MAX_ITEMS_PER_MESSAGE: usize = MAX_USER_MSG_SIZE / ITEM_LEN;

/// Most out-of-order updates a [`PeerNamedState`] holds; more are dropped and counted.
pub const MAX_HELD_MESSAGES: usize = 4096;

/// Most items the held updates of one peer may carry together (memory bound against a peer
/// that sends large out-of-order messages).
pub const MAX_HELD_ITEMS: usize = 65_536;

/// Items per NAME_DISTRIBUTOR message on a link with this MSS: ⌊(MSS − 40) / 20⌋ (spec §7.3),
/// 69 on Ethernet (MSS 1428) and 694 on UDP/IPv4 (MSS 13928). Clamped to at least 1 (a
/// smaller MSS cannot occur on a real bearer; the link layer would fragment) and at most
/// [`MAX_ITEMS_PER_MESSAGE`].
pub fn items_per_message(mss: u32) -> usize {
    let mss = usize::try_from(mss).unwrap_or(usize::MAX);
    (mss.saturating_sub(INT_H_SIZE) / ITEM_LEN).clamp(1, MAX_ITEMS_PER_MESSAGE)
}

/// One incremental update to distribute: a bind (PUBLICATION) or unbind (WITHDRAWAL) of this
/// node, with the name-distribution seqno it consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NamedUpdate {
    /// PUBLICATION or WITHDRAWAL.
    pub kind: NameDistrType,
    /// The binding as a distribution item.
    pub item: Publication,
    /// Its named seqno (`w4[0:15]`).
    pub seqno: u16,
}

impl NamedUpdate {
    /// The message for this update: see [`build_update`].
    pub fn build(&self, own_addr: u32, dest: UpdateDest) -> Vec<u8> {
        build_update(self.kind, &self.item, self.seqno, own_addr, dest)
    }
}

/// The node's name-distribution counter (the kernel's `snd_nxt` of the name table).
///
/// It starts at 0, and the node's own `{0, addr, addr}` publication at address commit consumes
/// seqno 0: the node layer calls [`Distributor::publish`] for it like for any binding. The
/// bulk's last-bulk seqno is [`Distributor::next_seqno`], the seqno of the next update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Distributor {
    next_seqno: u16,
}

impl Distributor {
    /// A counter at 0.
    pub const fn new() -> Self {
        Self { next_seqno: 0 }
    }

    /// The seqno the next update will carry (and the last-bulk message announces).
    pub const fn next_seqno(&self) -> u16 {
        self.next_seqno
    }

    /// A local binding was made: its PUBLICATION and seqno, or `None` for node scope (kept on
    /// this node, no seqno consumed).
    pub fn publish(&mut self, binding: &Binding) -> Option<NamedUpdate> {
        self.update(NameDistrType::Publication, binding)
    }

    /// A local binding was removed: its WITHDRAWAL and seqno, or `None` for node scope.
    pub fn withdraw(&mut self, binding: &Binding) -> Option<NamedUpdate> {
        self.update(NameDistrType::Withdrawal, binding)
    }

    fn update(&mut self, kind: NameDistrType, binding: &Binding) -> Option<NamedUpdate> {
        if binding.scope == Scope::Node {
            return None;
        }
        let seqno = self.next_seqno;
        self.next_seqno = seqno.wrapping_add(1);
        Some(NamedUpdate {
            kind,
            item: binding.item(),
            seqno,
        })
    }
}

/// Where an incremental update goes (spec §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateDest {
    /// Once, on the broadcast link (every up peer has NAMED_BCAST): N = 1, w5 = the network
    /// id, w7 = 0.
    Broadcast {
        /// The network (cluster) id.
        net_id: u32,
    },
    /// One copy per up peer over its unicast link: N = 0, w5 = 0, w7 = that peer.
    Unicast(u32),
}

/// One NAME_DISTRIBUTOR message, link words zero, prevnode = orig node = `own_addr`.
#[expect(
    clippy::too_many_arguments,
    reason = "private builder mirroring the header fields one to one"
)]
fn message(
    kind: NameDistrType,
    items: &[Publication],
    bulk: bool,
    last_bulk: bool,
    named_seqno: u16,
    word5: u32,
    non_seq: bool,
    own_addr: u32,
    dest_node: u32,
) -> Vec<u8> {
    let payload = encode_items(items);
    let repr = NameDistrRepr {
        base: Internal {
            common: Common {
                flags: Flags {
                    non_seq,
                    ..Flags::default()
                },
                bcast_ack: 0,
                ack: 0,
                seqno: 0,
                prev_node: own_addr,
            },
            orig_node: own_addr,
            dest_node,
            extra_header: &[],
            payload: &payload,
        },
        msg_type: kind,
        bulk,
        last_bulk,
        non_legacy: true,
        named_seqno,
        word5,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    // Cannot fail: the buffer is exactly `buffer_len` bytes, the header is the standard 40 and
    // callers pass at most MAX_ITEMS_PER_MESSAGE items, so the size fits the 17-bit field.
    let _ = repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
    buf
}

/// The bulk a node sends when the first link to `dest_node` comes up (spec §7.3): `items`
/// (this node's cluster-scope bindings in publication order, see
/// [`crate::name_table::NameTable::local_cluster_bindings`]) packed
/// [`items_per_message`]`(mss)` per PUBLICATION message. Every message has bulk = 1,
/// non-legacy = 1, w5 = bc_ack_invalid, w6 = `own_addr`, w7 = `dest_node`, N = 0; only the
/// last has last-bulk = 1 and named seqno = `next_seqno` (the others 0).
///
/// An empty `items` gives one empty last-bulk message. A kernel never has an empty bulk (its
/// own `{0, addr, addr}` is always in it), but the last-bulk message is what opens the
/// receiver's update stream, so it must be sent; a kernel receiver applies zero items fine.
pub fn build_bulk(
    items: &[Publication],
    mss: u32,
    own_addr: u32,
    dest_node: u32,
    next_seqno: u16,
) -> Vec<Vec<u8>> {
    let per_message = items_per_message(mss);
    let count = items.len().div_ceil(per_message).max(1);
    (0..count)
        .map(|i| {
            let start = i * per_message;
            let chunk = items
                .get(start..items.len().min(start + per_message))
                .unwrap_or(&[]);
            let last = i + 1 == count;
            message(
                NameDistrType::Publication,
                chunk,
                true,
                last,
                if last { next_seqno } else { 0 },
                BULK_WORD5,
                false,
                own_addr,
                dest_node,
            )
        })
        .collect()
}

/// An incremental update: one item, non-legacy = 1, named seqno = `seqno` (spec §1.4.8, §7.3).
/// Broadcast copy: N = 1, w5 = net id, w7 = 0. Unicast copy: N = 0, w5 = 0, w7 = the peer.
/// `kind` is normally PUBLICATION or WITHDRAWAL; an `Unknown` type is written as given.
pub fn build_update(
    kind: NameDistrType,
    item: &Publication,
    seqno: u16,
    own_addr: u32,
    dest: UpdateDest,
) -> Vec<u8> {
    let (non_seq, word5, dest_node) = match dest {
        UpdateDest::Broadcast { net_id } => (true, net_id, 0),
        UpdateDest::Unicast(node) => (false, 0, node),
    };
    message(
        kind,
        core::slice::from_ref(item),
        false,
        false,
        seqno,
        word5,
        non_seq,
        own_addr,
        dest_node,
    )
}

/// A change a peer's name-distribution message asks for. The node layer applies it to the
/// [`crate::name_table::NameTable`] (insert / remove) and ignores duplicate or unknown ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamedChange {
    /// Add this binding (node = the message's orig node, cluster scope).
    Publish(Binding),
    /// Remove this binding (identified by type, range, node and key).
    Withdraw(Binding),
}

/// Counters of a [`PeerNamedState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamedRxStats {
    /// Messages applied (bulk, legacy or in order).
    pub applied: u64,
    /// Messages that had to wait for a gap to fill (or for the bulk).
    pub held: u64,
    /// Messages discarded as older than expected, or as duplicates of a held one.
    pub stale: u64,
    /// Messages dropped because the hold queue was full ([`MAX_HELD_MESSAGES`],
    /// [`MAX_HELD_ITEMS`]).
    pub overflow: u64,
    /// Items ignored because lower > upper.
    pub invalid_items: u64,
    /// Items of messages with an unknown message type (ignored; the seqno still counts).
    pub unknown_type_items: u64,
    /// Payload bytes after the last whole 20-byte item (ignored, as the kernel does).
    pub trailing_bytes: u64,
}

/// An update waiting for its turn.
#[derive(Debug)]
struct Held {
    kind: NameDistrType,
    node: u32,
    items: Vec<Publication>,
}

/// The receiver's ordering of one peer's name-distribution messages (spec §7.3):
///
/// * bulk messages and legacy messages (non-legacy bit clear) are applied at once;
/// * a last-bulk message sets the expected seqno to its named seqno and opens the stream;
/// * other messages are applied only when the stream is open and their seqno is the expected
///   one (then expected + 1); older ones (modulo 2¹⁶) are discarded; newer ones wait, and are
///   applied in order as soon as the gap fills.
///
/// **Difference from the kernel:** before the stream is open the kernel already discards an
/// update whose seqno is "older" than its expected value, which at that point is 0 or a stale
/// value left from the peer's previous contact. This state holds every update until the
/// last-bulk message says which are old. Both agree whenever the bulk comes first, which is
/// what a kernel sender arranges.
///
/// Held updates are bounded ([`MAX_HELD_MESSAGES`], [`MAX_HELD_ITEMS`]); beyond that new ones
/// are dropped and counted. [`PeerNamedState::reset`] on loss of contact.
#[derive(Debug, Default)]
pub struct PeerNamedState {
    open: bool,
    expected: u16,
    held: BTreeMap<u16, Held>,
    held_items: usize,
    stats: NamedRxStats,
}

/// `less(a, b)` on 16-bit sequence numbers (spec §0).
fn seq_less(a: u16, b: u16) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000
}

impl PeerNamedState {
    /// A closed stream with nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the peer's last-bulk message has been seen.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The seqno of the next update to apply (meaningful once open).
    pub fn expected(&self) -> u16 {
        self.expected
    }

    /// Number of updates waiting.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The counters.
    pub fn stats(&self) -> &NamedRxStats {
        &self.stats
    }

    /// Contact with the peer was lost: close the stream and drop held updates (the counters
    /// stay). The next bulk reopens it.
    pub fn reset(&mut self) {
        self.open = false;
        self.expected = 0;
        self.held.clear();
        self.held_items = 0;
    }

    /// Takes one NAME_DISTRIBUTOR message from the peer and returns the changes to apply now,
    /// in order (this message's and any held ones it released).
    pub fn receive(&mut self, repr: &NameDistrRepr<'_>) -> Vec<NamedChange> {
        let mut out = Vec::new();
        self.receive_into(repr, &mut out);
        out
    }

    /// [`Self::receive`], appending to a caller's buffer.
    pub fn receive_into(&mut self, repr: &NameDistrRepr<'_>, out: &mut Vec<NamedChange>) {
        let payload = repr.base.payload;
        let trailing = payload.len() % ITEM_LEN;
        self.stats.trailing_bytes += trailing as u64;
        let items = payload
            .chunks_exact(ITEM_LEN)
            .filter_map(|c| Publication::parse(c).ok());
        let node = repr.base.orig_node;
        let seqno = repr.named_seqno;

        if repr.last_bulk {
            self.open = true;
            self.expected = seqno;
            self.drop_stale();
        }
        if repr.bulk || !repr.non_legacy {
            self.apply(repr.msg_type, node, items, out);
            self.release(out);
            return;
        }
        if self.open {
            if seqno == self.expected {
                self.apply(repr.msg_type, node, items, out);
                self.expected = self.expected.wrapping_add(1);
                self.release(out);
                return;
            }
            if seq_less(seqno, self.expected) {
                self.stats.stale += 1;
                return;
            }
        }
        if self.held.contains_key(&seqno) {
            self.stats.stale += 1;
            return;
        }
        let count = payload.len() / ITEM_LEN;
        if self.held.len() >= MAX_HELD_MESSAGES || self.held_items + count > MAX_HELD_ITEMS {
            self.stats.overflow += 1;
            return;
        }
        self.held.insert(
            seqno,
            Held {
                kind: repr.msg_type,
                node,
                items: items.collect(),
            },
        );
        self.held_items += count;
        self.stats.held += 1;
    }

    /// Applies held updates while the next expected one is there.
    fn release(&mut self, out: &mut Vec<NamedChange>) {
        while self.open {
            let Some(h) = self.held.remove(&self.expected) else {
                break;
            };
            self.held_items -= h.items.len();
            self.apply(h.kind, h.node, h.items.into_iter(), out);
            self.expected = self.expected.wrapping_add(1);
        }
    }

    /// Discards held updates older than the expected seqno (after the stream (re)opened).
    fn drop_stale(&mut self) {
        let expected = self.expected;
        let before = self.held.len();
        let mut dropped_items = 0;
        self.held.retain(|&s, h| {
            let keep = !seq_less(s, expected);
            if !keep {
                dropped_items += h.items.len();
            }
            keep
        });
        self.held_items -= dropped_items;
        self.stats.stale += (before - self.held.len()) as u64;
    }

    fn apply(
        &mut self,
        kind: NameDistrType,
        node: u32,
        items: impl Iterator<Item = Publication>,
        out: &mut Vec<NamedChange>,
    ) {
        self.stats.applied += 1;
        for item in items {
            if item.lower > item.upper {
                self.stats.invalid_items += 1;
                continue;
            }
            let b = Binding::from_item(&item, node);
            match kind {
                NameDistrType::Publication => out.push(NamedChange::Publish(b)),
                NameDistrType::Withdrawal => out.push(NamedChange::Withdraw(b)),
                NameDistrType::Unknown(_) => self.stats.unknown_type_items += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name_table::{NameTable, Scope};
    use crate::wire::testutil::eth_fixture;

    /// ktnode1 and ktnode2 of the captures.
    const KT1: u32 = 0x0f11_5f6f;
    const KT2: u32 = 0x0f11_5c6f;

    /// The TIPC message of frame `n` (1-based) of an Ethernet capture, padding removed.
    fn frame(name: &str, n: usize) -> Vec<u8> {
        let frames = eth_fixture(name);
        let (num, bytes) = &frames[n - 1];
        assert_eq!(*num, n);
        let p = Packet::new_checked(&bytes[..]).expect("valid");
        p.message().to_vec()
    }

    /// Copies the link-layer words the link layer writes at transmit (w1[0:15], w2) from the
    /// capture into a built message, so the rest can be compared byte for byte.
    fn with_link_words(mut built: Vec<u8>, captured: &[u8]) -> Vec<u8> {
        built[6..12].copy_from_slice(&captured[6..12]);
        built
    }

    fn parse(bytes: &[u8]) -> NameDistrRepr<'_> {
        let p = Packet::new_checked(bytes).expect("valid");
        NameDistrRepr::parse(&p).expect("parses")
    }

    fn item(service_type: u32, lower: u32, upper: u32, port: u32) -> Publication {
        Publication {
            service_type,
            lower,
            upper,
            port,
            key: port.wrapping_add(1),
        }
    }

    fn binding(service_type: u32, lower: u32, port: u32, scope: Scope) -> Binding {
        Binding {
            service_type,
            lower,
            upper: lower,
            port,
            node: KT2,
            key: port.wrapping_add(1),
            scope,
        }
    }

    #[test]
    fn distributor_seqnos() {
        let mut d = Distributor::new();
        let own = Binding {
            service_type: 0,
            lower: KT2,
            upper: KT2,
            port: 0,
            node: KT2,
            key: KT2,
            scope: Scope::Cluster,
        };
        // The node's own binding at address commit consumes 0; the bulk then says 1.
        assert_eq!(d.publish(&own).map(|u| u.seqno), Some(0));
        assert_eq!(d.next_seqno(), 1);
        // Node scope is never distributed and consumes nothing.
        let ns = binding(70, 1, 5, Scope::Node);
        assert_eq!(d.publish(&ns), None);
        assert_eq!(d.withdraw(&ns), None);
        assert_eq!(d.next_seqno(), 1);
        let b = binding(18888, 1000, 0x71f0_0eec, Scope::Cluster);
        let p = d.publish(&b).expect("cluster");
        assert_eq!(
            (p.kind, p.seqno, p.item),
            (NameDistrType::Publication, 1, b.item())
        );
        let w = d.withdraw(&b).expect("cluster");
        assert_eq!((w.kind, w.seqno), (NameDistrType::Withdrawal, 2));
        let mut d = Distributor { next_seqno: 65535 };
        assert_eq!(d.publish(&b).map(|u| u.seqno), Some(65535));
        assert_eq!(d.next_seqno(), 0);
    }

    #[test]
    fn items_per_message_follows_mss() {
        assert_eq!(items_per_message(1428), 69);
        assert_eq!(items_per_message(13928), 694);
        assert_eq!(items_per_message(1208), 58);
        assert_eq!(items_per_message(59), 1);
        assert_eq!(items_per_message(0), 1);
        assert_eq!(items_per_message(u32::MAX), MAX_ITEMS_PER_MESSAGE);
        assert_eq!(MAX_ITEMS_PER_MESSAGE, 3300);
    }

    #[test]
    fn bulk_of_one_matches_capture() {
        // eth-02-link-setup frame 8: ktnode2's bulk, its own {0, addr, addr}, last-bulk seqno 1.
        let captured = frame("eth-02-link-setup.pcap", 8);
        let items = [Publication {
            service_type: 0,
            lower: KT2,
            upper: KT2,
            port: 0,
            key: KT2,
        }];
        let built = build_bulk(&items, 1428, KT2, KT1, 1);
        assert_eq!(built.len(), 1);
        assert_eq!(
            u32::from_be_bytes([built[0][4], built[0][5], built[0][6], built[0][7]]),
            0x1c00_0000
        );
        assert_eq!(with_link_words(built[0].clone(), &captured), captured);
    }

    #[test]
    fn bulk_from_table_matches_capture() {
        // eth-02-link-setup frame 12: ktnode1 bound {18888,17} and {18888,18} before its
        // address was committed, then published {0, addr, addr}: seqnos 0, 1, 2; bulk says 3.
        let captured = frame("eth-02-link-setup.pcap", 12);
        let mut table = NameTable::new(0);
        let mut d = Distributor::new();
        for (lower, port) in [(17, 0x46cf_5d62), (18, 0xaabd_d869)] {
            let b = Binding {
                service_type: 18888,
                lower,
                upper: lower,
                port,
                node: 0,
                key: port + 1,
                scope: Scope::Cluster,
            };
            let c = table.insert(b).expect("bind");
            d.publish(&c.binding).expect("distributed");
        }
        table.set_own_addr(KT1);
        let own = Binding {
            service_type: 0,
            lower: KT1,
            upper: KT1,
            port: 0,
            node: KT1,
            key: KT1,
            scope: Scope::Cluster,
        };
        table.insert(own).expect("node binding");
        assert_eq!(d.publish(&own).map(|u| u.seqno), Some(2));
        let items: Vec<Publication> = table.local_cluster_bindings().map(Binding::item).collect();
        let built = build_bulk(&items, 1428, KT1, KT2, d.next_seqno());
        assert_eq!(built.len(), 1);
        assert_eq!(with_link_words(built[0].clone(), &captured), captured);
    }

    #[test]
    fn broadcast_updates_match_capture() {
        // eth-08-publish-withdraw frames 1 and 22: ktnode2 binds and unbinds {18888, 1000}.
        let b = Binding {
            service_type: 18888,
            lower: 1000,
            upper: 1000,
            port: 0x71f0_0eec,
            node: KT2,
            key: 0x71f0_0eed,
            scope: Scope::Cluster,
        };
        let mut d = Distributor { next_seqno: 1 };
        let dest = UpdateDest::Broadcast { net_id: 4711 };
        let publ = d.publish(&b).expect("publication").build(KT2, dest);
        let captured = frame("eth-08-publish-withdraw.pcap", 1);
        assert_eq!(with_link_words(publ, &captured), captured);
        let wdr = d.withdraw(&b).expect("withdrawal").build(KT2, dest);
        let captured = frame("eth-08-publish-withdraw.pcap", 22);
        assert_eq!(with_link_words(wdr, &captured), captured);
    }

    #[test]
    fn unicast_update_layout() {
        let it = item(18888, 5, 9, 77);
        let bytes = build_update(
            NameDistrType::Withdrawal,
            &it,
            42,
            KT1,
            UpdateDest::Unicast(KT2),
        );
        assert_eq!(bytes.len(), 60);
        let r = parse(&bytes);
        assert_eq!(r.msg_type, NameDistrType::Withdrawal);
        assert!(!r.base.common.flags.non_seq && !r.bulk && !r.last_bulk && r.non_legacy);
        assert_eq!((r.named_seqno, r.word5), (42, 0));
        assert_eq!(
            (r.base.orig_node, r.base.dest_node, r.base.common.prev_node),
            (KT1, KT2, KT1)
        );
        assert_eq!(r.items().expect("items"), vec![it]);
    }

    fn check_bulk(n_items: usize, mss: u32, expect: &[usize]) {
        let items: Vec<Publication> = (0..n_items as u32).map(|i| item(100, i, i, i)).collect();
        let msgs = build_bulk(&items, mss, KT1, KT2, 7);
        let sizes: Vec<usize> = msgs
            .iter()
            .map(|m| parse(m).items().expect("items").len())
            .collect();
        assert_eq!(sizes, expect);
        let mut all = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let r = parse(m);
            let last = i + 1 == msgs.len();
            assert_eq!(m.len(), INT_H_SIZE + ITEM_LEN * expect[i]);
            assert_eq!(r.msg_type, NameDistrType::Publication);
            assert!(r.bulk && r.non_legacy && r.bc_ack_invalid());
            assert!(!r.base.common.flags.non_seq);
            assert_eq!(r.word5, BULK_WORD5);
            assert_eq!(r.last_bulk, last);
            assert_eq!(r.named_seqno, if last { 7 } else { 0 });
            assert_eq!((r.base.orig_node, r.base.dest_node), (KT1, KT2));
            all.extend(r.items().expect("items"));
        }
        assert_eq!(all, items);
    }

    #[test]
    fn bulk_splits_at_mss() {
        check_bulk(1, 1428, &[1]);
        check_bulk(69, 1428, &[69]);
        check_bulk(70, 1428, &[69, 1]);
        check_bulk(138, 1428, &[69, 69]);
        check_bulk(140, 1428, &[69, 69, 2]);
        check_bulk(694, 13928, &[694]);
        check_bulk(1389, 13928, &[694, 694, 1]);
    }

    #[test]
    fn empty_bulk_is_one_last_bulk_message() {
        let msgs = build_bulk(&[], 1428, KT1, KT2, 3);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].len(), INT_H_SIZE);
        let r = parse(&msgs[0]);
        assert!(r.bulk && r.last_bulk && r.named_seqno == 3);
        // It opens a receiver's stream.
        let mut rx = PeerNamedState::new();
        assert!(rx.receive(&r).is_empty());
        assert!(rx.is_open() && rx.expected() == 3);
    }

    /// Feeds raw bytes to the receiver.
    fn rx(state: &mut PeerNamedState, bytes: &[u8]) -> Vec<NamedChange> {
        state.receive(&parse(bytes))
    }

    fn upd(kind: NameDistrType, lower: u32, seqno: u16) -> Vec<u8> {
        build_update(
            kind,
            &item(70, lower, lower, lower),
            seqno,
            KT2,
            UpdateDest::Unicast(KT1),
        )
    }

    fn publ(lower: u32, seqno: u16) -> Vec<u8> {
        upd(NameDistrType::Publication, lower, seqno)
    }

    fn bulk(seqno: u16) -> Vec<u8> {
        build_bulk(&[item(0, KT2, KT2, 0)], 1428, KT2, KT1, seqno).remove(0)
    }

    /// The `lower` of every change, publications positive, withdrawals negative.
    fn lowers(changes: &[NamedChange]) -> Vec<i64> {
        changes
            .iter()
            .map(|c| match c {
                NamedChange::Publish(b) => i64::from(b.lower),
                NamedChange::Withdraw(b) => -i64::from(b.lower),
            })
            .collect()
    }

    #[test]
    fn captured_session_applies_in_order() {
        let bulk = frame("eth-02-link-setup.pcap", 8);
        let publ = frame("eth-08-publish-withdraw.pcap", 1);
        let wdr = frame("eth-08-publish-withdraw.pcap", 22);
        let mut state = PeerNamedState::new();
        let mut table = NameTable::new(KT1);
        let mut apply = |changes: Vec<NamedChange>| {
            for c in changes {
                match c {
                    NamedChange::Publish(b) => {
                        table.insert(b).expect("insert");
                    }
                    NamedChange::Withdraw(b) => {
                        table
                            .remove(b.service_type, b.lower, b.upper, b.node, b.key)
                            .expect("remove");
                    }
                }
            }
        };
        let c = rx(&mut state, &bulk);
        assert_eq!(
            c,
            vec![NamedChange::Publish(Binding {
                service_type: 0,
                lower: KT2,
                upper: KT2,
                port: 0,
                node: KT2,
                key: KT2,
                scope: Scope::Cluster,
            })]
        );
        assert!(state.is_open() && state.expected() == 1);
        apply(c);
        let c1 = rx(&mut state, &publ);
        let c2 = rx(&mut state, &wdr);
        assert!(matches!(c1.as_slice(), [NamedChange::Publish(b)] if b.lower == 1000));
        assert!(matches!(c2.as_slice(), [NamedChange::Withdraw(b)] if b.lower == 1000));
        apply(c1);
        apply(c2);
        assert_eq!(table.len(), 1);
        assert_eq!(state.expected(), 3);

        // The same messages in the worst order: updates first (held), withdrawal before
        // publication; the bulk releases them in seqno order.
        let mut state = PeerNamedState::new();
        assert!(rx(&mut state, &wdr).is_empty());
        assert!(rx(&mut state, &publ).is_empty());
        assert_eq!(state.held_len(), 2);
        let all = rx(&mut state, &bulk);
        assert_eq!(lowers(&all), vec![i64::from(KT2), 1000, -1000]);
        assert_eq!(state.stats().held, 2);
    }

    #[test]
    fn out_of_order_duplicates_and_stale() {
        let mut s = PeerNamedState::new();
        assert_eq!(lowers(&rx(&mut s, &bulk(10))), vec![i64::from(KT2)]);
        assert!(rx(&mut s, &publ(12, 12)).is_empty());
        assert!(rx(&mut s, &publ(13, 13)).is_empty());
        assert!(rx(&mut s, &publ(12, 12)).is_empty(), "held duplicate");
        assert_eq!(lowers(&rx(&mut s, &publ(10, 10))), vec![10]);
        assert_eq!(lowers(&rx(&mut s, &publ(11, 11))), vec![11, 12, 13]);
        assert!(rx(&mut s, &publ(11, 11)).is_empty(), "old duplicate");
        assert!(rx(&mut s, &publ(3, 3)).is_empty(), "stale");
        assert_eq!(s.expected(), 14);
        assert_eq!(s.held_len(), 0);
        let st = s.stats();
        assert_eq!((st.stale, st.held, st.applied), (3, 2, 5));
    }

    #[test]
    fn updates_before_bulk_wait_for_it() {
        let mut s = PeerNamedState::new();
        for seq in [11u16, 9, 10] {
            assert!(rx(&mut s, &publ(u32::from(seq), seq)).is_empty());
        }
        assert!(!s.is_open());
        // The bulk says 10: 9 is stale, 10 and 11 follow the bulk.
        assert_eq!(lowers(&rx(&mut s, &bulk(10))), vec![i64::from(KT2), 10, 11]);
        assert_eq!((s.expected(), s.held_len(), s.stats().stale), (12, 0, 1));
    }

    #[test]
    fn non_final_bulk_and_legacy_apply_at_once() {
        let items: Vec<Publication> = (0..70).map(|i| item(70, i, i, i)).collect();
        let msgs = build_bulk(&items, 1428, KT2, KT1, 5);
        let mut s = PeerNamedState::new();
        assert_eq!(rx(&mut s, &msgs[0]).len(), 69);
        assert!(!s.is_open());
        assert_eq!(rx(&mut s, &msgs[1]).len(), 1);
        assert!(s.is_open() && s.expected() == 5);
        // A legacy message (non-legacy bit clear) is applied whatever its seqno, and does not
        // move the expected seqno.
        let mut legacy = publ(99, 500);
        legacy[4] &= !0x04;
        let r = parse(&legacy);
        assert!(!r.non_legacy);
        assert_eq!(lowers(&s.receive(&r)), vec![99]);
        assert_eq!(s.expected(), 5);
        let mut closed = PeerNamedState::new();
        assert_eq!(lowers(&rx(&mut closed, &legacy)), vec![99]);
    }

    #[test]
    fn invalid_items_unknown_types_and_trailing_bytes() {
        let mut s = PeerNamedState::new();
        rx(&mut s, &bulk(0));
        let mut bad = build_update(
            NameDistrType::Publication,
            &item(70, 9, 3, 1),
            0,
            KT2,
            UpdateDest::Unicast(KT1),
        );
        assert!(rx(&mut s, &bad).is_empty());
        assert_eq!(s.stats().invalid_items, 1);
        assert_eq!(s.expected(), 1, "seqno consumed");
        let unknown = upd(NameDistrType::Unknown(5), 4, 1);
        assert!(rx(&mut s, &unknown).is_empty());
        assert_eq!(s.stats().unknown_type_items, 1);
        assert_eq!(s.expected(), 2);
        // Three stray bytes after one whole item: the item counts, the bytes are ignored.
        bad = publ(8, 2);
        bad.extend_from_slice(&[1, 2, 3]);
        let w0 = u32::from_be_bytes([bad[0], bad[1], bad[2], bad[3]]);
        let w0 = (w0 & !0x1_ffff) | bad.len() as u32;
        bad[..4].copy_from_slice(&w0.to_be_bytes());
        assert_eq!(lowers(&rx(&mut s, &bad)), vec![8]);
        assert_eq!(s.stats().trailing_bytes, 3);
    }

    #[test]
    fn hold_queue_is_bounded() {
        let mut s = PeerNamedState::new();
        rx(&mut s, &bulk(0));
        // Seqno 0 is missing; 1..=4097 arrive: 4096 are held, the last is dropped.
        for seq in 1..=(MAX_HELD_MESSAGES as u16 + 1) {
            assert!(rx(&mut s, &publ(u32::from(seq), seq)).is_empty());
        }
        assert_eq!(s.held_len(), MAX_HELD_MESSAGES);
        assert_eq!(s.stats().overflow, 1);
        let released = rx(&mut s, &publ(0, 0));
        assert_eq!(released.len(), MAX_HELD_MESSAGES + 1);
        assert_eq!(s.expected(), MAX_HELD_MESSAGES as u16 + 1);
        // The dropped one, sent again, now applies.
        let again = MAX_HELD_MESSAGES as u16 + 1;
        assert_eq!(rx(&mut s, &publ(u32::from(again), again)).len(), 1);
    }

    #[test]
    fn seqno_wraps() {
        let mut s = PeerNamedState::new();
        rx(&mut s, &bulk(65535));
        assert!(rx(&mut s, &publ(0, 0)).is_empty());
        assert_eq!(lowers(&rx(&mut s, &publ(65535, 65535))), vec![65535, 0]);
        assert_eq!(s.expected(), 1);
        assert!(rx(&mut s, &publ(65534, 65534)).is_empty());
        assert_eq!(s.stats().stale, 1);
    }

    #[test]
    fn reset_closes_and_forgets() {
        let mut s = PeerNamedState::new();
        rx(&mut s, &bulk(4));
        assert!(rx(&mut s, &publ(6, 6)).is_empty());
        s.reset();
        assert!(!s.is_open() && s.held_len() == 0);
        // After reconnect the peer's counter has moved on; its new bulk decides.
        assert!(rx(&mut s, &publ(9, 9)).is_empty());
        assert_eq!(lowers(&rx(&mut s, &bulk(9))), vec![i64::from(KT2), 9]);
    }
}
