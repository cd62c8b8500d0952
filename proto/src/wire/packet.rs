//! [`Packet`]: the zero-copy view over one TIPC message.

use super::field::Field;
use super::{Error, MAX_H_SIZE, MAX_USER_MSG_SIZE, MIN_H_SIZE, Result, need};

/// Field positions shared by every TIPC message (spec §1.2–§1.4).
pub(crate) mod field {
    use super::Field;

    pub(crate) const VERSION: Field = Field::new(0, 29, 3);
    pub(crate) const USER: Field = Field::new(0, 25, 4);
    pub(crate) const HSIZE: Field = Field::new(0, 21, 4);
    pub(crate) const NON_SEQ: Field = Field::new(0, 20, 1);
    pub(crate) const DEST_DROPPABLE: Field = Field::new(0, 19, 1);
    pub(crate) const MULTI_USE: Field = Field::new(0, 18, 1);
    pub(crate) const SYN: Field = Field::new(0, 17, 1);
    pub(crate) const SIZE: Field = Field::new(0, 0, 17);
    pub(crate) const MSG_TYPE: Field = Field::new(1, 29, 3);
    pub(crate) const BCAST_ACK: Field = Field::new(1, 0, 16);
    pub(crate) const ACK: Field = Field::new(2, 16, 16);
    pub(crate) const SEQNO: Field = Field::new(2, 0, 16);
    pub(crate) const PREV_NODE: Field = Field::word(3);
    pub(crate) const ORIG_NODE: Field = Field::word(6);
    pub(crate) const DEST_NODE: Field = Field::word(7);
}

/// A zero-copy view of one TIPC message (header and payload) in a buffer.
///
/// The buffer may be longer than the message (Ethernet padding): [`Packet::size`] is
/// authoritative and [`Packet::payload`] stops there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Use for emission into a buffer sized with a
    /// `buffer_len`, never for bytes from the wire.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer received from the wire after the kernel's length checks
    /// ([`Packet::check_len`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Wraps a buffer that holds at least a whole header, but maybe not the whole message: the
    /// inner header carried by a FIRST_FRAGMENT is such a buffer.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header_len()?;
        Ok(packet)
    }

    /// The length checks of the kernel's `tipc_msg_validate` (spec §1.6): 24 ≤ hsize ≤ 60, the
    /// header is present, hsize ≤ size, at most 66,000 payload bytes, and `size` bytes present.
    /// The version is not checked here (an encrypted packet has another one); parsers check it.
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let size = self.size();
        let hsize = self.header_len();
        if size < hsize {
            return Err(Error::Invalid {
                field: "size",
                value: size as u32,
            });
        }
        if size - hsize > MAX_USER_MSG_SIZE {
            return Err(Error::Invalid {
                field: "size",
                value: size as u32,
            });
        }
        need("message", size, self.buffer.as_ref().len())
    }

    /// Checks only that the header described by word 0 is present and has a legal size.
    pub fn check_header_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        need("header", MIN_H_SIZE, len)?;
        let hsize = self.header_len();
        if !(MIN_H_SIZE..=MAX_H_SIZE).contains(&hsize) {
            return Err(Error::Invalid {
                field: "hsize",
                value: hsize as u32,
            });
        }
        need("header", hsize, len)
    }

    /// Hands the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole underlying buffer (may extend past the message).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Host-order value of header word `index`, or 0 when the buffer ends before it.
    #[inline]
    pub fn word(&self, index: usize) -> u32 {
        let b = self.buffer.as_ref();
        match b.get(index * 4..index * 4 + 4) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            None => 0,
        }
    }

    /// Value of `field`, or 0 when the buffer ends before its word.
    #[inline]
    pub fn get(&self, field: Field) -> u32 {
        field.extract(self.word(field.word))
    }

    /// Value of a one-bit field.
    #[inline]
    pub fn flag(&self, field: Field) -> bool {
        self.get(field) != 0
    }

    /// Protocol version (2 for plain messages, 7 for encrypted packets).
    #[inline]
    pub fn version(&self) -> u8 {
        self.get(field::VERSION) as u8
    }

    /// Raw user number (0–3 data importance, 5–14 internal users).
    #[inline]
    pub fn user_raw(&self) -> u8 {
        self.get(field::USER) as u8
    }

    /// Header length in bytes (the hsize field counts words).
    #[inline]
    pub fn header_len(&self) -> usize {
        self.get(field::HSIZE) as usize * 4
    }

    /// Total message length in bytes, header included.
    #[inline]
    pub fn size(&self) -> usize {
        self.get(field::SIZE) as usize
    }

    /// The N bit: the message is not sequenced (discovery, broadcast link).
    #[inline]
    pub fn non_seq(&self) -> bool {
        self.flag(field::NON_SEQ)
    }

    /// The D bit: destination-droppable on data, keepalive on LINK_PROTOCOL STATE.
    #[inline]
    pub fn dest_droppable(&self) -> bool {
        self.flag(field::DEST_DROPPABLE)
    }

    /// The multi-use bit (spec §1.2): source-droppable, ack-required, nagle-ack or is-replicast
    /// depending on the message.
    #[inline]
    pub fn multi_use(&self) -> bool {
        self.flag(field::MULTI_USE)
    }

    /// The SYN bit.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flag(field::SYN)
    }

    /// Raw message type (`w1[29:31]`).
    #[inline]
    pub fn msg_type_raw(&self) -> u8 {
        self.get(field::MSG_TYPE) as u8
    }

    /// Broadcast ack written by the link layer (`w1[0:15]`).
    #[inline]
    pub fn bcast_ack(&self) -> u16 {
        self.get(field::BCAST_ACK) as u16
    }

    /// Link-level acknowledgement (`w2[16:31]`).
    #[inline]
    pub fn ack(&self) -> u16 {
        self.get(field::ACK) as u16
    }

    /// Link-level sequence number (`w2[0:15]`).
    #[inline]
    pub fn seqno(&self) -> u16 {
        self.get(field::SEQNO) as u16
    }

    /// Address of the neighbour that sent this packet (`w3`).
    #[inline]
    pub fn prev_node(&self) -> u32 {
        self.get(field::PREV_NODE)
    }

    /// Originating node: `w6`, or `w3` when the header is the 24-byte short one (spec §1.5).
    #[inline]
    pub fn orig_node(&self) -> u32 {
        if self.header_len() <= MIN_H_SIZE {
            self.prev_node()
        } else {
            self.get(field::ORIG_NODE)
        }
    }

    /// Destination node (`w7`), 0 when the header is too short to hold it.
    #[inline]
    pub fn dest_node(&self) -> u32 {
        if self.header_len() <= 7 * 4 {
            0
        } else {
            self.get(field::DEST_NODE)
        }
    }

    /// The header bytes (clamped to the buffer).
    pub fn header(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..self.header_len().min(b.len())]
    }

    /// The payload: bytes from the end of the header to `size` (clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = self.size().min(b.len());
        let start = self.header_len().min(end);
        &b[start..end]
    }

    /// The whole message: the first `size` bytes (clamped to the buffer).
    pub fn message(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..self.size().min(b.len())]
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The header bytes, borrowed for the buffer's lifetime (clamped to the buffer).
    pub fn header_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer;
        &b[..self.header_len().min(b.len())]
    }

    /// The payload, borrowed for the buffer's lifetime (clamped to the buffer).
    pub fn payload_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer;
        let end = self.size().min(b.len());
        let start = self.header_len().min(end);
        &b[start..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets header word `index` (host order). Does nothing when the buffer ends before it; emit
    /// paths size their buffers with `buffer_len`, so that never happens there.
    #[inline]
    pub fn set_word(&mut self, index: usize, value: u32) {
        if let Some(w) = self.buffer.as_mut().get_mut(index * 4..index * 4 + 4) {
            w.copy_from_slice(&value.to_be_bytes());
        }
    }

    /// Sets `field` to `value` (high bits beyond the field's width are cut).
    #[inline]
    pub fn set(&mut self, field: Field, value: u32) {
        let w = self.word(field.word);
        self.set_word(field.word, field.insert(w, value));
    }

    /// Sets a one-bit field.
    #[inline]
    pub fn set_flag(&mut self, field: Field, value: bool) {
        self.set(field, u32::from(value));
    }

    /// Sets the link-level ack and sequence number in place (the link layer does this at
    /// transmit time on every sequenced packet).
    #[inline]
    pub fn set_ack_seqno(&mut self, ack: u16, seqno: u16) {
        self.set_word(2, (u32::from(ack) << 16) | u32::from(seqno));
    }

    /// Sets the broadcast ack (`w1[0:15]`) in place.
    #[inline]
    pub fn set_bcast_ack(&mut self, bcast_ack: u16) {
        self.set(field::BCAST_ACK, u32::from(bcast_ack));
    }

    /// Sets the previous node (`w3`) in place.
    #[inline]
    pub fn set_prev_node(&mut self, node: u32) {
        self.set_word(3, node);
    }

    /// Mutable header and payload bytes from `from` to `size`.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CONN_ACK captured from Linux 6.1 (`eth-session` frame 629, spec §1.4.9).
    const CONN_ACK: [u8; 40] = [
        0x51, 0x40, 0x00, 0x28, 0x40, 0x00, 0x00, 0x01, 0x00, 0xb3, 0x01, 0x7d, 0x0f, 0x11, 0x5f,
        0x6f, 0xed, 0xe4, 0x76, 0x23, 0x04, 0xb3, 0x59, 0xc5, 0x0f, 0x11, 0x5f, 0x6f, 0x0f, 0x11,
        0x5c, 0x6f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x25, 0x02, 0x00,
    ];

    #[test]
    fn deconstruct_common_fields() {
        let p = Packet::new_checked(&CONN_ACK[..]).expect("valid");
        assert_eq!(p.version(), 2);
        assert_eq!(p.user_raw(), 8);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.size(), 40);
        assert!(!p.non_seq() && !p.dest_droppable() && !p.multi_use() && !p.syn());
        assert_eq!(p.msg_type_raw(), 2);
        assert_eq!(p.bcast_ack(), 1);
        assert_eq!(p.ack(), 179);
        assert_eq!(p.seqno(), 381);
        assert_eq!(p.prev_node(), 0x0f11_5f6f);
        assert_eq!(p.orig_node(), 0x0f11_5f6f);
        assert_eq!(p.dest_node(), 0x0f11_5c6f);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn length_checks_name_the_field() {
        assert!(matches!(
            Packet::new_checked(&CONN_ACK[..20]),
            Err(Error::Truncated { what: "header", .. })
        ));
        let mut bad = CONN_ACK;
        bad[0] = 0x50;
        bad[1] = 0x80; // hsize 4 words
        assert_eq!(
            Packet::new_checked(&bad[..]),
            Err(Error::Invalid {
                field: "hsize",
                value: 16
            })
        );
        let mut small = CONN_ACK;
        small[3] = 0x20; // size 32 < hsize 40
        assert_eq!(
            Packet::new_checked(&small[..]),
            Err(Error::Invalid {
                field: "size",
                value: 32
            })
        );
        let mut long = CONN_ACK;
        long[3] = 0x30; // size 48 > 40 bytes present
        assert!(matches!(
            Packet::new_checked(&long[..]),
            Err(Error::Truncated {
                what: "message",
                needed: 48,
                available: 40
            })
        ));
    }

    #[test]
    fn padding_after_size_is_ignored() {
        let mut padded = CONN_ACK.to_vec();
        padded.extend_from_slice(&[0xee; 20]);
        let p = Packet::new_checked(&padded[..]).expect("valid");
        assert_eq!(p.message(), &CONN_ACK[..]);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn setters_write_in_place() {
        let mut buf = [0xa5u8; 40];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_word(0, 0);
        p.set(field::VERSION, 2);
        p.set(field::USER, 8);
        p.set(field::HSIZE, 10);
        p.set(field::SIZE, 40);
        p.set_ack_seqno(179, 381);
        p.set_word(1, 0x4000_0000);
        p.set_bcast_ack(1);
        p.set_prev_node(0x0f11_5f6f);
        assert_eq!(&buf[..12], &CONN_ACK[..12]);
        assert_eq!(&buf[12..16], &CONN_ACK[12..16]);
    }
}
