//! Fragmentation of long messages into MSG_FRAGMENTER packets (spec §1.4.4, §5.12).
//!
//! A message whose header plus data exceeds the link MSS is cut into chunks of MSS − 40 bytes
//! of the *whole* message (its header included), each behind a 40-byte fragmenter header: the
//! FIRST fragment therefore starts with the original header. The fragment header is built like
//! the kernel's: previous and originating node = own address, destination node = the original's
//! destination (the peer, for a 24-byte connection header that has no `w7`), fragment numbers
//! from 1, number of fragments 0, the original's importance in `w9[0:2]`. The link layer stamps
//! ack, seqno and broadcast ack when each fragment enters the transmit queue. Reassembly is in
//! [`super::reassembly`].

use crate::wire::common::{Common, Internal};
use crate::wire::fragmenter::{FragType, FragmentRepr};
use crate::wire::{Field, INT_H_SIZE, Packet};

/// `w0[0:16]`: message size.
const SIZE: Field = Field::new(0, 0, 17);

/// Cuts `msg` into fragments of at most `mss` bytes.
///
/// Each fragment is one allocation of exactly its size, written once: the 40-byte header is
/// built on the stack (with no payload, then given the fragment's size) and the chunk copied
/// behind it, with no zero-filling first.
///
/// `None` when the MSS leaves no room for data or the message would need more fragments than
/// the 16-bit fragment number can count; the caller reports the message as too large.
pub(super) fn fragment(
    msg: &[u8],
    mss: usize,
    own_addr: u32,
    dest_node: u32,
    importance: u8,
) -> Option<Vec<Vec<u8>>> {
    let chunk = mss.checked_sub(INT_H_SIZE).filter(|&c| c > 0)?;
    let count = msg.len().div_ceil(chunk);
    if count > usize::from(u16::MAX) {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for (i, part) in msg.chunks(chunk).enumerate() {
        let msg_type = if i == 0 {
            FragType::First
        } else if i + 1 == count {
            FragType::Last
        } else {
            FragType::Middle
        };
        let repr = FragmentRepr {
            base: Internal {
                common: Common {
                    prev_node: own_addr,
                    ..Common::default()
                },
                orig_node: own_addr,
                dest_node,
                extra_header: &[],
                payload: &[],
            },
            msg_type,
            frag_no: u16::try_from(i + 1).ok()?,
            frag_count: 0,
            importance,
        };
        let mut header = [0u8; INT_H_SIZE];
        let mut p = Packet::new_unchecked(&mut header[..]);
        repr.emit(&mut p).ok()?;
        p.set(SIZE, u32::try_from(INT_H_SIZE + part.len()).ok()?);
        let mut buf = Vec::with_capacity(INT_H_SIZE + part.len());
        buf.extend_from_slice(&header);
        buf.extend_from_slice(part);
        out.push(buf);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::reassembly::Reassembler;

    #[test]
    fn split_and_join_round_trip() {
        let mut msg = vec![0u8; 40 + 3000];
        // A NAMED header: version 2, user 0, hsize 10, size 3040.
        msg[..4].copy_from_slice(&(0x4000_0000u32 | (10 << 21) | 3040).to_be_bytes());
        for (i, b) in msg.iter_mut().enumerate().skip(40) {
            *b = i as u8;
        }
        let frags = fragment(&msg, 1428, 7, 9, 2).expect("fragments");
        assert_eq!(
            frags.iter().map(Vec::len).collect::<Vec<_>>(),
            [1428, 1428, 40 + 3040 - 2 * 1388]
        );
        let mut r = Reassembler::default();
        let mut whole = None;
        for f in &frags {
            let p = Packet::new_checked(&f[..]).expect("valid");
            let repr = FragmentRepr::parse(&p).expect("parses");
            assert_eq!((repr.importance, repr.base.dest_node), (2, 9));
            whole = r.push(f).expect("in place");
        }
        assert_eq!(whole, Some(msg));
    }

    #[test]
    fn fragments_are_what_a_full_emit_writes() {
        let mut msg = vec![0u8; 40 + 5000];
        msg[..4].copy_from_slice(&(0x4000_0000u32 | (10 << 21) | 5040).to_be_bytes());
        for (i, b) in msg.iter_mut().enumerate().skip(40) {
            *b = (i * 7) as u8;
        }
        let frags = fragment(&msg, 1428, 0x0102_0304, 0x0506_0708, 3).expect("fragments");
        let chunks: Vec<&[u8]> = msg.chunks(1388).collect();
        assert_eq!(frags.len(), chunks.len());
        for (i, (f, part)) in frags.iter().zip(&chunks).enumerate() {
            let repr = FragmentRepr {
                base: Internal {
                    common: Common {
                        prev_node: 0x0102_0304,
                        ..Common::default()
                    },
                    orig_node: 0x0102_0304,
                    dest_node: 0x0506_0708,
                    extra_header: &[],
                    payload: part,
                },
                msg_type: match i {
                    0 => FragType::First,
                    i if i + 1 == chunks.len() => FragType::Last,
                    _ => FragType::Middle,
                },
                frag_no: (i + 1) as u16,
                frag_count: 0,
                importance: 3,
            };
            let mut want = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut want[..]))
                .expect("emits");
            assert_eq!(f, &want, "fragment {i}");
            assert_eq!(f.capacity(), f.len(), "one exact allocation");
        }
    }

    #[test]
    fn impossible_mss_is_refused() {
        assert!(fragment(&[0; 100], 40, 1, 2, 0).is_none());
        assert!(fragment(&[0; 100], 10, 1, 2, 0).is_none());
        assert!(fragment(&[0; 70_000], 41, 1, 2, 0).is_none());
    }
}
