//! What every TIPC message shares: the user, word-0 flags and the link-layer words (spec §1.2,
//! §1.3, §2.1).

use super::packet::field;
use super::{Error, Packet, Result, TIPC_VERSION, need};

enum_with_unknown! {
    /// The message user (`w0[25:28]`, spec §2.1): data importance 0–3 or an internal user.
    pub enum User(u8) {
        /// Data, low importance.
        Low = 0 => "DATA_LOW",
        /// Data, medium importance.
        Medium = 1 => "DATA_MEDIUM",
        /// Data, high importance.
        High = 2 => "DATA_HIGH",
        /// Data, critical importance (also connection aborts).
        Critical = 3 => "DATA_CRITICAL",
        /// Broadcast-link protocol (broadcast init, legacy NACK).
        BcastProtocol = 5 => "BCAST_PROTOCOL",
        /// Several small messages in one packet.
        MsgBundler = 6 => "MSG_BUNDLER",
        /// Link STATE / RESET / ACTIVATE.
        LinkProtocol = 7 => "LINK_PROTOCOL",
        /// Connection probes and flow-control acks.
        ConnManager = 8 => "CONN_MANAGER",
        /// Group membership and flow control.
        GroupProtocol = 9 => "GROUP_PROTOCOL",
        /// Failover and synchronisation tunnelling.
        TunnelProtocol = 10 => "TUNNEL_PROTOCOL",
        /// Name-table distribution.
        NameDistributor = 11 => "NAME_DISTRIBUTOR",
        /// Link-level fragments of a long message.
        MsgFragmenter = 12 => "MSG_FRAGMENTER",
        /// Neighbour discovery.
        LinkConfig = 13 => "LINK_CONFIG",
        /// Key distribution.
        MsgCrypto = 14 => "MSG_CRYPTO",
    }
}

impl User {
    /// Whether this user carries application data (importance 0–3).
    pub fn is_data(self) -> bool {
        matches!(self, Self::Low | Self::Medium | Self::High | Self::Critical)
    }
}

/// Importance of a data message (the data users 0–3), also carried in `w9[0:2]` of bundles and
/// fragments. Selects the link backlog class and the receive-queue limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Importance {
    /// TIPC_LOW_IMPORTANCE.
    #[default]
    Low = 0,
    /// TIPC_MEDIUM_IMPORTANCE.
    Medium = 1,
    /// TIPC_HIGH_IMPORTANCE.
    High = 2,
    /// TIPC_CRITICAL_IMPORTANCE.
    Critical = 3,
}

impl Importance {
    /// All four levels, lowest first.
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The importance for a value 0–3; `None` otherwise.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// The data user that carries this importance.
    pub fn user(self) -> User {
        User::from(self as u8)
    }
}

/// The four flag bits of word 0 (spec §1.2). Their meaning depends on the message: the methods
/// name each use. They are kept raw in every representation so that re-emission is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// N (`w0[20]`): not sequenced — discovery and every broadcast-link packet.
    pub non_seq: bool,
    /// D (`w0[19]`): destination-droppable on data; keepalive on LINK_PROTOCOL STATE.
    pub dest_droppable: bool,
    /// `w0[18]`: source-droppable (data), ack-required (CONN_MSG), nagle-ack (CONN_ACK),
    /// is-replicast (MCAST_MSG).
    pub multi_use: bool,
    /// `w0[17]`: SYN — connection setup, multicast method-switch marker.
    pub syn: bool,
}

impl Flags {
    /// Reads the flags of a packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            non_seq: p.non_seq(),
            dest_droppable: p.dest_droppable(),
            multi_use: p.multi_use(),
            syn: p.syn(),
        }
    }

    /// Writes the flags into a packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_flag(field::NON_SEQ, self.non_seq);
        p.set_flag(field::DEST_DROPPABLE, self.dest_droppable);
        p.set_flag(field::MULTI_USE, self.multi_use);
        p.set_flag(field::SYN, self.syn);
    }

    /// The keepalive meaning of D on LINK_PROTOCOL STATE.
    pub fn keepalive(&self) -> bool {
        self.dest_droppable
    }
}

/// The link-layer part of every sequenced message (and of LINK_PROTOCOL): word-0 flags, the
/// broadcast ack in `w1[0:15]`, ack and sequence number in `w2`, previous node in `w3`. The link
/// layer rewrites `bcast_ack`, `ack`, `seqno` and `prev_node` at transmit time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Common {
    /// Word-0 flags.
    pub flags: Flags,
    /// Broadcast ack: the sender's broadcast receive link rcv_nxt − 1 (`w1[0:15]`).
    pub bcast_ack: u16,
    /// Unicast link ack: rcv_nxt − 1 (`w2[16:31]`).
    pub ack: u16,
    /// Unicast link sequence number (`w2[0:15]`).
    pub seqno: u16,
    /// Address of the sending neighbour (`w3`).
    pub prev_node: u32,
}

impl Common {
    /// Reads the common part.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            flags: Flags::parse(p),
            bcast_ack: p.bcast_ack(),
            ack: p.ack(),
            seqno: p.seqno(),
            prev_node: p.prev_node(),
        }
    }

    /// Writes the common part. Word 1 must already hold the message type and user-specific
    /// upper bits; only `w1[0:15]` is touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        self.flags.emit(p);
        p.set_bcast_ack(self.bcast_ack);
        p.set_ack_seqno(self.ack, self.seqno);
        p.set_prev_node(self.prev_node);
    }
}

/// Checks the version bits (spec §1.2: anything but 2 is dropped).
pub(crate) fn check_version<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<()> {
    let v = p.version();
    if v == TIPC_VERSION {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "version",
            value: u32::from(v),
        })
    }
}

/// Checks that the header is at least `min` bytes, as the message kind needs.
pub(crate) fn check_hsize<T: AsRef<[u8]>>(p: &Packet<T>, min: usize) -> Result<()> {
    let h = p.header_len();
    if h < min {
        Err(Error::Invalid {
            field: "hsize",
            value: h as u32,
        })
    } else {
        Ok(())
    }
}

/// Starts a header in `p`: zeroes `header_len` bytes and writes version, user, hsize, size and
/// message type. Emitters call this first, then set their fields.
pub(crate) fn emit_start<T: AsRef<[u8]> + AsMut<[u8]>>(
    p: &mut Packet<T>,
    user: u8,
    msg_type: u8,
    header_len: usize,
    size: usize,
) {
    let n = header_len.min(p.as_bytes().len());
    p.bytes_mut()[..n].fill(0);
    p.set(field::VERSION, u32::from(TIPC_VERSION));
    p.set(field::USER, u32::from(user));
    p.set(field::HSIZE, (header_len / 4) as u32);
    p.set(field::SIZE, size as u32);
    p.set(field::MSG_TYPE, u32::from(msg_type));
}

/// Copies `extra_header` to the bytes after `std_len`, and `payload` after the header.
pub(crate) fn emit_tail<T: AsRef<[u8]> + AsMut<[u8]>>(
    p: &mut Packet<T>,
    std_len: usize,
    extra_header: &[u8],
    payload: &[u8],
) {
    let h = std_len + extra_header.len();
    let b = p.bytes_mut();
    b[std_len..h].copy_from_slice(extra_header);
    b[h..h + payload.len()].copy_from_slice(payload);
}

/// Splits the header into the standard part and any extra bytes beyond `std_len`.
pub(crate) fn extra_header<'a>(p: &Packet<&'a [u8]>, std_len: usize) -> &'a [u8] {
    let h = p.header_ref();
    h.get(std_len..).unwrap_or(&[])
}

/// Checks that a representation's header length is a legal hsize (multiple of 4, 24..=60) and
/// that its payload is within what receivers accept (66,000 bytes, spec §1.6).
pub(crate) fn check_emit_len(header_len: usize, payload_len: usize) -> bool {
    header_len.is_multiple_of(4)
        && (super::MIN_H_SIZE..=super::MAX_H_SIZE).contains(&header_len)
        && payload_len <= super::MAX_USER_MSG_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_round_trips_all_values() {
        for v in 0u8..16 {
            assert_eq!(u8::from(User::from(v)), v);
        }
        assert_eq!(User::from(4), User::Unknown(4));
        assert_eq!(User::from(15), User::Unknown(15));
        assert_eq!(User::LinkConfig.name(), "LINK_CONFIG");
        assert!(User::Critical.is_data() && !User::MsgBundler.is_data());
    }

    #[test]
    fn importance_maps_to_user() {
        for i in Importance::ALL {
            assert_eq!(Importance::from_u8(i as u8), Some(i));
            assert_eq!(u8::from(i.user()), i as u8);
        }
        assert_eq!(Importance::from_u8(4), None);
    }
}

/// The part of a 40-byte internal header (users 5–14 except discovery) that is the same for
/// every internal user: flags, link-layer words, originating and destination node (`w6`, `w7`),
/// plus any header bytes beyond 40 and the payload. Each internal representation embeds one and
/// adds its own fields from words 1, 4, 5, 8 and 9 (spec §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Internal<'a> {
    /// Flags and link-layer words.
    pub common: Common,
    /// Originating node (`w6`).
    pub orig_node: u32,
    /// Destination node (`w7`).
    pub dest_node: u32,
    /// Header bytes beyond the standard 40 (never sent by Linux; kept for exactness).
    pub extra_header: &'a [u8],
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl<'a> Internal<'a> {
    /// Parses the shared part of an internal message whose header must be at least `std_len`.
    pub(crate) fn parse(p: &Packet<&'a [u8]>, std_len: usize) -> Result<Self> {
        check_version(p)?;
        check_hsize(p, std_len)?;
        Ok(Self {
            common: Common::parse(p),
            orig_node: p.get(field::ORIG_NODE),
            dest_node: p.get(field::DEST_NODE),
            extra_header: extra_header(p, std_len),
            payload: p.payload_ref(),
        })
    }

    /// Header length of the message: the standard length plus the extra bytes.
    pub fn header_len(&self, std_len: usize) -> usize {
        std_len + self.extra_header.len()
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self, std_len: usize) -> usize {
        self.header_len(std_len) + self.payload.len()
    }

    /// Starts an internal message: checks sizes, zeroes the header, writes word 0, the type,
    /// the link-layer words, the nodes and the tail. The caller then sets its own fields.
    pub(crate) fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Packet<T>,
        user: User,
        msg_type: u8,
        std_len: usize,
    ) -> Result<()> {
        let header_len = self.header_len(std_len);
        let len = self.buffer_len(std_len);
        need("emit buffer", len, p.as_bytes().len())?;
        if !check_emit_len(header_len, self.payload.len()) {
            return Err(Error::Invalid {
                field: "header_len",
                value: header_len as u32,
            });
        }
        emit_start(p, user.into(), msg_type, header_len, len);
        self.common.emit(p);
        p.set(field::ORIG_NODE, self.orig_node);
        p.set(field::DEST_NODE, self.dest_node);
        emit_tail(p, std_len, self.extra_header, self.payload);
        Ok(())
    }
}
