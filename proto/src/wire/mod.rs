//! The TIPC v2 wire codec.
//!
//! Read `../shared/spec/tipc-wire.md` sections 0, 1 and 2 before changing anything here: every
//! layout in this module comes from that digest of the Linux kernel's `net/tipc`, and every layout
//! is checked byte for byte against the kernel captures in `tests/fixtures/pcap/`.
//!
//! # Two layers, in the style of smoltcp
//!
//! * [`Packet`] is a zero-copy view over a buffer (`&[u8]`, `&mut [u8]`, `Vec<u8>`, ...). It
//!   reads and writes header fields in place and is what the hot path uses.
//! * The `*Repr` types are the parsed, validated meaning of one message: `parse` builds one from
//!   a [`Packet`], `emit` writes one into a [`Packet`], `buffer_len` says how many bytes `emit`
//!   needs. [`MessageRepr`] dispatches over every TIPC user.
//!
//! A TIPC header is a sequence of big-endian 32-bit words with sub-word bit fields, so a field is
//! a [`Field`] (word, shift, width) rather than a byte range.
//!
//! # Panic contract
//!
//! [`Packet::new_checked`] validates the lengths the kernel validates (`tipc_msg_validate`:
//! spec §1.6). Once it has succeeded, no accessor panics: fields beyond the header read as 0.
//! [`Packet::new_unchecked`] is for emission into a buffer the caller sized with `buffer_len`;
//! `emit` never reads stale length fields from such a buffer. Nothing in this module panics on
//! input bytes; malformed input gives an [`Error`] naming the field that was wrong.
//!
//! # Lossless re-emission
//!
//! Unknown users and unknown message types are kept as [`RawRepr`] (header and payload bytes) and
//! re-emit unchanged; unknown error codes and media types survive as `Unknown(raw)` values. Header
//! bytes beyond the standard size of a message kind are kept in `extra_header`.

mod field;
#[macro_use]
mod macros;
mod packet;

pub mod bundler;
pub mod common;
pub mod conn_mgr;
pub mod crypto;
pub mod data;
pub mod describe;
pub mod discovery;
pub mod fragmenter;
pub mod group_proto;
pub mod link_proto;
pub mod message;
pub mod name_distr;
pub mod sockaddr;
pub mod topsrv;
pub mod tunnel;

pub use self::common::{Common, Flags, Importance, User};
pub use self::field::Field;
pub use self::message::{Frame, MessageRepr, RawRepr};
pub use self::packet::Packet;

use core::fmt;

/// TIPC protocol version carried in bits 29–31 of word 0 of every plain message.
pub const TIPC_VERSION: u8 = 2;
/// The value of the version bits that marks an encrypted packet (spec §14).
pub const ENCRYPTED_VERSION: u8 = 7;
/// Smallest legal header: the 24-byte short header of established-connection data.
pub const MIN_H_SIZE: usize = 24;
/// Header of a message sent to a socket address.
pub const BASIC_H_SIZE: usize = 32;
/// Header of a message sent to a service address, and of internal messages.
pub const NAMED_H_SIZE: usize = 40;
/// Header of internal (non-data) messages.
pub const INT_H_SIZE: usize = 40;
/// Header of multicast and group messages.
pub const MCAST_H_SIZE: usize = 44;
/// Largest header, used only by discovery (`LINK_CONFIG`).
pub const MAX_H_SIZE: usize = 60;
/// Largest user payload a TIPC message may carry.
pub const MAX_USER_MSG_SIZE: usize = 66_000;
/// Largest value of the 17-bit size field.
pub const MAX_MSG_SIZE: usize = (1 << 17) - 1;

/// What was wrong with bytes handed to a parser. Small and `Copy`: parsing never allocates an
/// error, and every variant names the field (or structure) at fault so a log line says what to
/// look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the named structure does.
    Truncated {
        /// What was being read (a header, a field, a record).
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A field holds a value that the protocol does not allow here.
    Invalid {
        /// The field at fault, named as in the spec.
        field: &'static str,
        /// The value found on the wire.
        value: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated {
                what,
                needed,
                available,
            } => write!(
                f,
                "truncated {what}: needs {needed} bytes, only {available} available"
            ),
            Self::Invalid { field, value } => {
                write!(f, "invalid value {value} (0x{value:x}) in field `{field}`")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Result of a wire-codec operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Fails with [`Error::Truncated`] unless `available >= needed`.
pub(crate) fn need(what: &'static str, needed: usize, available: usize) -> Result<()> {
    if available < needed {
        Err(Error::Truncated {
            what,
            needed,
            available,
        })
    } else {
        Ok(())
    }
}

/// Reads a big-endian u16 at `off`; the caller has checked the length.
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Reads a big-endian u32 at `off`; the caller has checked the length.
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Writes a big-endian u16 at `off`; the caller has sized the buffer.
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `off`; the caller has sized the buffer.
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod testutil;
