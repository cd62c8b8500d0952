//! Reassembly of MSG_FRAGMENTER packets (spec §5.12), shared by the unicast link and the node
//! layer's broadcast receive links.
//!
//! Fragments of one message are consecutive in a link's sequence, so a receiver holds at most
//! one partial message. A fragment out of place — a FRAGMENT or LAST with no FIRST before it, a
//! second FIRST — and a reassembled message that fails the kernel's length checks are errors;
//! the unicast link answers them with a link failure, as the kernel does. Message types other
//! than FIRST and LAST count as middle fragments, again as in the kernel.

use core::fmt;

use crate::wire::fragmenter::{FragType, FragmentRepr};
use crate::wire::{MAX_H_SIZE, MAX_USER_MSG_SIZE, Packet, TIPC_VERSION};

/// Why reassembly failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassemblyError {
    /// The packet is not a parsable fragment.
    Malformed,
    /// A FIRST while a message was being reassembled, or a later fragment without a FIRST.
    OutOfPlace,
    /// The reassembled bytes grew beyond the largest legal message (66,060 bytes).
    TooLong,
    /// The reassembled message fails the length checks of spec §1.6.
    Invalid,
}

impl fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed fragment",
            Self::OutOfPlace => "fragment out of place",
            Self::TooLong => "reassembled message too long",
            Self::Invalid => "reassembled message invalid",
        })
    }
}

impl std::error::Error for ReassemblyError {}

/// Largest message a fragment chain may rebuild: a 60-byte header and 66,000 bytes of data.
const MAX_MESSAGE: usize = MAX_H_SIZE + MAX_USER_MSG_SIZE;

/// The partial message of one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reassembler {
    partial: Option<Vec<u8>>,
}

impl Reassembler {
    /// Adds one fragment (the whole MSG_FRAGMENTER message). `Ok(Some(message))` when it
    /// completed a message (exactly `size` bytes), `Ok(None)` while more are needed. After an
    /// error the partial message is dropped, so the next FIRST starts afresh.
    pub fn push(&mut self, fragment: &[u8]) -> Result<Option<Vec<u8>>, ReassemblyError> {
        let result = self.push_inner(fragment);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    fn push_inner(&mut self, fragment: &[u8]) -> Result<Option<Vec<u8>>, ReassemblyError> {
        let p = Packet::new_checked(fragment).map_err(|_| ReassemblyError::Malformed)?;
        let f = FragmentRepr::parse(&p).map_err(|_| ReassemblyError::Malformed)?;
        let data = f.base.payload;
        if f.msg_type == FragType::First {
            if self.partial.is_some() {
                return Err(ReassemblyError::OutOfPlace);
            }
            if data.len() > MAX_MESSAGE {
                return Err(ReassemblyError::TooLong);
            }
            // The FIRST fragment starts with the original header, whose size field says how
            // long the whole message is: one allocation of that size (capped at the largest
            // legal message) instead of a buffer that grows and moves as fragments arrive.
            let whole = data
                .get(..4)
                .and_then(|w| w.try_into().ok())
                .map_or(0, |w: [u8; 4]| (u32::from_be_bytes(w) & 0x1_ffff) as usize);
            let mut buf = Vec::with_capacity(whole.clamp(data.len(), MAX_MESSAGE));
            buf.extend_from_slice(data);
            self.partial = Some(buf);
            return Ok(None);
        }
        let Some(buf) = self.partial.as_mut() else {
            return Err(ReassemblyError::OutOfPlace);
        };
        if buf.len() + data.len() > MAX_MESSAGE {
            return Err(ReassemblyError::TooLong);
        }
        buf.extend_from_slice(data);
        if f.msg_type != FragType::Last {
            return Ok(None);
        }
        let mut whole = self.partial.take().unwrap_or_default();
        let size = {
            let m = Packet::new_checked(&whole[..]).map_err(|_| ReassemblyError::Invalid)?;
            if m.version() != TIPC_VERSION {
                return Err(ReassemblyError::Invalid);
            }
            m.size()
        };
        whole.truncate(size);
        Ok(Some(whole))
    }

    /// Whether a message is partly reassembled.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Drops any partial message (link reset).
    pub fn clear(&mut self) {
        self.partial = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::common::Internal;

    fn frag(t: FragType, payload: &[u8]) -> Vec<u8> {
        let r = FragmentRepr {
            base: Internal {
                payload,
                ..Internal::default()
            },
            msg_type: t,
            frag_no: 1,
            frag_count: 0,
            importance: 0,
        };
        let mut b = vec![0; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut b[..]))
            .expect("emit");
        b
    }

    /// A 30-byte message with a 24-byte header: version 2, user 0, hsize 6, size 30.
    fn msg30() -> Vec<u8> {
        let mut m = vec![0xab; 30];
        m[..4].copy_from_slice(&(0x4000_0000u32 | (6 << 21) | 30).to_be_bytes());
        m
    }

    #[test]
    fn out_of_place_fragments_are_errors() {
        let m = msg30();
        let mut r = Reassembler::default();
        assert_eq!(
            r.push(&frag(FragType::Middle, &m[..10])),
            Err(ReassemblyError::OutOfPlace)
        );
        assert_eq!(
            r.push(&frag(FragType::Last, &m[..10])),
            Err(ReassemblyError::OutOfPlace)
        );
        assert_eq!(r.push(&frag(FragType::First, &m[..10])), Ok(None));
        assert!(r.in_progress());
        assert_eq!(
            r.push(&frag(FragType::First, &m[..10])),
            Err(ReassemblyError::OutOfPlace)
        );
        assert!(!r.in_progress());
        assert_eq!(r.push(&frag(FragType::First, &m[..10])), Ok(None));
        assert_eq!(r.push(&frag(FragType::Middle, &m[10..20])), Ok(None));
        assert_eq!(r.push(&frag(FragType::Last, &m[20..])), Ok(Some(m.clone())));
        // Trailing bytes beyond `size` are cut, as in the kernel.
        let mut long = m.clone();
        long.extend_from_slice(&[1, 2, 3]);
        assert_eq!(r.push(&frag(FragType::First, &long[..4])), Ok(None));
        assert_eq!(r.push(&frag(FragType::Last, &long[4..])), Ok(Some(m)));
    }

    #[test]
    fn invalid_results_and_garbage_are_errors() {
        let mut r = Reassembler::default();
        assert_eq!(r.push(&[0xff; 12]), Err(ReassemblyError::Malformed));
        assert_eq!(r.push(&frag(FragType::First, &[0; 10])), Ok(None));
        assert_eq!(
            r.push(&frag(FragType::Last, &[0; 10])),
            Err(ReassemblyError::Invalid)
        );
        assert_eq!(r.push(&frag(FragType::First, &[0; 60_000])), Ok(None));
        assert_eq!(
            r.push(&frag(FragType::Middle, &[0; 60_000])),
            Err(ReassemblyError::TooLong)
        );
        assert!(!r.in_progress());
    }
}
