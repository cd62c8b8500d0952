//! MSG_BUNDLER (user 6): several small messages in one packet (spec §1.4.5, §5.11).

use super::common::{Internal, User};
use super::field::Field;
use super::{INT_H_SIZE, MIN_H_SIZE, Packet, Result};

/// Bundler field positions.
pub(crate) mod field {
    use super::Field;

    pub(crate) const MSG_COUNT: Field = Field::new(9, 16, 16);
    pub(crate) const IMPORTANCE: Field = Field::new(9, 0, 3);
}

/// A parsed bundle. The payload is a sequence of complete TIPC messages, each starting at a
/// 4-byte-aligned offset; walk it with [`BundleRepr::messages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BundleRepr<'a> {
    /// Shared internal-header part.
    pub base: Internal<'a>,
    /// Raw message type (always 0 from Linux).
    pub msg_type: u8,
    /// Number of bundled messages (`w9[16:31]`).
    pub msg_count: u16,
    /// Importance of the bundled messages (`w9[0:2]`).
    pub importance: u8,
}

impl<'a> BundleRepr<'a> {
    /// Parses a bundle header.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self> {
        Ok(Self {
            base: Internal::parse(p, INT_H_SIZE)?,
            msg_type: p.msg_type_raw(),
            msg_count: p.get(field::MSG_COUNT) as u16,
            importance: p.get(field::IMPORTANCE) as u8,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        self.base.buffer_len(INT_H_SIZE)
    }

    /// Writes the bundle (header and the payload as given).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        self.base
            .emit(p, User::MsgBundler, self.msg_type, INT_H_SIZE)?;
        p.set(field::MSG_COUNT, u32::from(self.msg_count));
        p.set(field::IMPORTANCE, u32::from(self.importance));
        Ok(())
    }

    /// Iterates over the bundled messages.
    pub fn messages(&self) -> BundleIter<'a> {
        BundleIter {
            payload: self.base.payload,
            offset: 0,
            failed: false,
        }
    }
}

/// Iterator over the messages of a bundle payload. It yields each inner message as a checked
/// [`Packet`] with its offset in the payload, stops after the first malformed one (yielding its
/// error), and stops when fewer than 24 bytes remain, as the kernel does.
#[derive(Debug, Clone)]
pub struct BundleIter<'a> {
    payload: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> BundleIter<'a> {
    /// Walks an arbitrary bundle payload.
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            payload,
            offset: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for BundleIter<'a> {
    type Item = Result<(usize, Packet<&'a [u8]>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.payload.get(self.offset..)?;
        if rest.len() < MIN_H_SIZE {
            return None;
        }
        match Packet::new_checked(rest) {
            Ok(p) => {
                let at = self.offset;
                let size = p.size();
                self.offset = at + size.div_ceil(4) * 4;
                Some(Ok((at, Packet::new_unchecked(&rest[..size]))))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit_a5;
    use crate::wire::testutil::eth_fixture;

    #[test]
    fn deconstruct_captured_bundle() {
        let frames = eth_fixture("eth-05-bundling-burst.pcap");
        let (_, b) = frames.iter().find(|(n, _)| *n == 88).expect("frame 88");
        let p = Packet::new_checked(&b[..]).expect("valid");
        let r = BundleRepr::parse(&p).expect("parses");
        assert_eq!(r.msg_count, 19);
        assert_eq!(r.importance, 0);
        assert_eq!(r.base.payload.len(), 1408 - 40);
        let inner: Vec<_> = r.messages().collect::<Result<_>>().expect("inner ok");
        assert_eq!(inner.len(), 19);
        for (i, (off, m)) in inner.iter().enumerate() {
            assert_eq!(*off, i * 72);
            assert_eq!(m.size(), 72);
            assert_eq!(m.user_raw(), 0);
        }
        assert_eq!(emit_a5!(r), p.message());
    }

    #[test]
    fn iterator_stops_on_garbage() {
        let garbage = [0xffu8; 30];
        let mut it = BundleIter::new(&garbage);
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
        assert!(BundleIter::new(&[0u8; 10]).next().is_none());
    }
}
