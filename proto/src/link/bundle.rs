//! Bundling of small messages into MSG_BUNDLER packets (spec §1.4.5, §5.11).
//!
//! Bundling only happens in the backlog: a message that cannot enter the send window is
//! appended to the last backlogged packet of its importance when that packet is a bundle, or
//! can become one. This module holds the packet-level operations; the choice of target lives
//! in the transmit queue. Layout, as the kernel builds it: a 40-byte header with previous and
//! originating node = own address, destination = the peer, `w9[16:31]` = message count,
//! `w9[0:2]` = importance; then the messages, each at a 4-byte-aligned payload offset, with
//! zero padding between them. The inner messages' link words are never stamped.

use crate::wire::bundler::{BundleIter, BundleRepr};
use crate::wire::common::{Common, Internal, User};
use crate::wire::{Field, INT_H_SIZE, Packet, TIPC_VERSION};

/// `w0[0:16]`: message size.
const SIZE: Field = Field::new(0, 0, 17);
/// `w9[16:31]`: number of bundled messages.
const MSG_COUNT: Field = Field::new(9, 16, 16);

/// Rounds up to the 4-byte alignment of bundled messages.
fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Whether `msg` may travel in a bundle: not a fragment, tunnel or broadcast-init message, and
/// small enough that a bundle header plus the message stays below the MSS.
pub(super) fn bundleable(msg: &[u8], mss: usize) -> bool {
    let user = User::from(Packet::new_unchecked(msg).user_raw());
    !matches!(
        user,
        User::MsgFragmenter | User::TunnelProtocol | User::BcastProtocol | User::MsgBundler
    ) && mss > INT_H_SIZE + msg.len()
}

/// Whether a plain backlogged message of `first_len` bytes and a new one of `next_len` bytes
/// fit together in one bundle of at most `mss` bytes.
pub(super) fn can_merge(first_len: usize, next_len: usize, mss: usize) -> bool {
    align4(INT_H_SIZE + first_len) + next_len <= mss
}

/// Wraps `first` into a new bundle holding just it.
pub(super) fn start(first: &[u8], own_addr: u32, peer_addr: u32, importance: u8) -> Vec<u8> {
    let repr = BundleRepr {
        base: Internal {
            common: Common {
                prev_node: own_addr,
                ..Common::default()
            },
            orig_node: own_addr,
            dest_node: peer_addr,
            extra_header: &[],
            payload: first,
        },
        msg_type: 0,
        msg_count: 1,
        importance,
    };
    let mut buf = vec![0; repr.buffer_len()];
    // The buffer is sized by `buffer_len` and `first` is a checked message, so emission cannot
    // fail; should it, the bundle is still well formed up to what was written.
    let _ = repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
    buf
}

/// Appends `msg` to `bundle` if the result stays within `mss` bytes.
pub(super) fn append(bundle: &mut Vec<u8>, msg: &[u8], mss: usize) -> bool {
    let offset = align4(bundle.len());
    if offset + msg.len() > mss {
        return false;
    }
    bundle.resize(offset, 0);
    bundle.extend_from_slice(msg);
    let size = bundle.len() as u32;
    let mut p = Packet::new_unchecked(&mut bundle[..]);
    let count = p.get(MSG_COUNT);
    p.set(MSG_COUNT, count + 1);
    p.set(SIZE, size);
    true
}

/// The messages of a received bundle a link may deliver: data, CONN_MANAGER, GROUP_PROTOCOL,
/// NAME_DISTRIBUTOR and MSG_CRYPTO (spec §5.11). Returns them and the number of inner messages
/// skipped; the walk stops at the first malformed one, as the kernel's does.
pub(super) fn unbundle(bundle: &[u8]) -> (Vec<Vec<u8>>, u64) {
    let payload = Packet::new_unchecked(bundle).payload_ref();
    let mut msgs = Vec::new();
    let mut skipped = 0;
    for item in BundleIter::new(payload) {
        let Ok((_, inner)) = item else {
            skipped += 1;
            break;
        };
        if inner.version() == TIPC_VERSION && may_be_bundled(User::from(inner.user_raw())) {
            msgs.push(inner.message().to_vec());
        } else {
            skipped += 1;
        }
    }
    (msgs, skipped)
}

/// The users allowed inside a bundle, and in a reassembled message (the kernel's data input).
pub(super) fn may_be_bundled(user: User) -> bool {
    user.is_data()
        || matches!(
            user,
            User::ConnManager | User::GroupProtocol | User::NameDistributor | User::MsgCrypto
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::eth_fixture;

    #[test]
    fn rebuilds_the_captured_bundle() {
        // eth-05-bundling-burst frame 88: 19 NAMED messages of 72 bytes, MSS 1428.
        let frames = eth_fixture("eth-05-bundling-burst.pcap");
        let (_, want) = frames.iter().find(|(n, _)| *n == 88).expect("frame 88");
        let p = Packet::new_checked(&want[..]).expect("valid");
        let (inner, skipped) = unbundle(p.message());
        assert_eq!((inner.len(), skipped), (19, 0));
        assert!(bundleable(&inner[0], 1428));
        assert!(can_merge(inner[0].len(), inner[1].len(), 1428));
        let mut b = start(&inner[0], 0x0f11_5c6f, 0x0f11_5f6f, 0);
        for m in &inner[1..] {
            assert!(append(&mut b, m, 1428));
        }
        assert!(!append(&mut b, &inner[0], 1428), "a 20th does not fit");
        Packet::new_unchecked(&mut b[..]).set_ack_seqno(p.ack(), p.seqno());
        assert_eq!(b, p.message());
    }

    #[test]
    fn padding_and_limits() {
        let mut m = vec![0u8; 30];
        m[..4].copy_from_slice(&(0x4000_0000u32 | (6 << 21) | 30).to_be_bytes());
        let mut b = start(&m, 1, 2, 3);
        assert!(append(&mut b, &m, 200));
        assert_eq!(b.len(), 40 + 32 + 30);
        let (inner, skipped) = unbundle(&b);
        assert_eq!((inner, skipped), (vec![m.clone(), m.clone()], 0));
        assert!(!bundleable(&m, 70));
        assert!(bundleable(&m, 71));
        assert!(!can_merge(30, 30, 101) && can_merge(30, 30, 102));
        let mut frag = m.clone();
        frag[0] = 0x58; // user 12
        assert!(!bundleable(&frag, 1000));
    }
}
