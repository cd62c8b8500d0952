//! Node identity and node addresses (spec §3.1, §3.3).
//!
//! A node is known by a 128-bit id; the 32-bit address used on the wire after discovery is a
//! hash of it, tried for uniqueness before it is taken (the address trial, spec §3.2).

use core::fmt;
use core::str::FromStr;

/// Length of a node id (TIPC_NODEID_LEN).
pub const NODE_ID_LEN: usize = 16;

/// A 128-bit TIPC node identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; NODE_ID_LEN]);

/// Characters that make an id print (and parse) as text rather than hex.
fn is_text_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'@' | b'-')
}

impl NodeId {
    /// The 32-bit address the kernel derives from the id: XOR of the four big-endian words, or
    /// their OR when the XOR is 0 (`hash128to32`).
    pub fn hash(&self) -> u32 {
        let w = |i: usize| {
            u32::from_be_bytes([
                self.0[4 * i],
                self.0[4 * i + 1],
                self.0[4 * i + 2],
                self.0[4 * i + 3],
            ])
        };
        let x = w(0) ^ w(1) ^ w(2) ^ w(3);
        if x != 0 { x } else { w(0) | w(1) | w(2) | w(3) }
    }

    /// The id the kernel derives from an Ethernet MAC: the MAC in bytes 0–5, zeros after.
    pub fn from_mac(mac: [u8; 6]) -> Self {
        let mut id = [0u8; NODE_ID_LEN];
        id[..6].copy_from_slice(&mac);
        Self(id)
    }

    /// Whether the id prints as text: every byte is in `[0-9A-Za-z.:_@-]` or NUL.
    pub fn is_text(&self) -> bool {
        self.0.iter().all(|&b| b == 0 || is_text_char(b))
    }
}

impl fmt::Display for NodeId {
    /// Prints as the kernel does: ASCII when every byte allows it (up to the first NUL),
    /// otherwise lowercase hex with trailing '0' characters removed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_text() {
            for &b in self.0.iter().take_while(|&&b| b != 0) {
                write!(f, "{}", b as char)?;
            }
            Ok(())
        } else {
            let mut s = String::with_capacity(32);
            for b in self.0 {
                s.push_str(&format!("{b:02x}"));
            }
            let trimmed = s.trim_end_matches('0');
            f.write_str(if trimmed.is_empty() { "0" } else { trimmed })
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why a node identity string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdError(pub String);

impl fmt::Display for NodeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid node identity {:?}: give up to 16 characters from [0-9A-Za-z.:_@-] or up \
             to 32 hex digits",
            self.0
        )
    }
}

impl std::error::Error for NodeIdError {}

impl FromStr for NodeId {
    type Err = NodeIdError;

    /// Parses like iproute2's `tipc node set identity`: text of at most 16 characters from the
    /// text alphabet is copied raw; otherwise at most 32 hex digits, packed left-aligned.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(NodeIdError(s.to_owned()));
        }
        let mut id = [0u8; NODE_ID_LEN];
        if b.len() <= NODE_ID_LEN && b.iter().all(|&c| is_text_char(c)) {
            id[..b.len()].copy_from_slice(b);
            return Ok(Self(id));
        }
        if b.len() > 2 * NODE_ID_LEN || !b.iter().all(u8::is_ascii_hexdigit) {
            return Err(NodeIdError(s.to_owned()));
        }
        for (i, c) in b.iter().enumerate() {
            let v = (*c as char)
                .to_digit(16)
                .ok_or_else(|| NodeIdError(s.to_owned()))? as u8;
            id[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        }
        Ok(Self(id))
    }
}

/// A node address formatted as the kernel logs it: 8 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeAddr(pub u32);

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeAddr({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_the_captures() {
        let id: NodeId = "ktnode1".parse().expect("text id");
        assert_eq!(id.hash(), 0x0f11_5f6f);
        let id2: NodeId = "ktnode2".parse().expect("text id");
        assert_eq!(id2.hash(), 0x0f11_5c6f);
        assert_eq!(id.to_string(), "ktnode1");
    }

    #[test]
    fn zero_xor_falls_back_to_or() {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[0, 0, 0, 1]);
        b[4..8].copy_from_slice(&[0, 0, 0, 1]);
        assert_eq!(NodeId(b).hash(), 1);
    }

    #[test]
    fn hex_ids_parse_left_aligned_and_print_trimmed() {
        let id: NodeId = "0123456789abcdef0123456789abcdef".parse().expect("hex");
        assert_eq!(id.0[0], 0x01);
        assert_eq!(id.0[15], 0xef);
        let mac = NodeId::from_mac([0x52, 0x54, 0, 0x18, 1, 2]);
        assert!(!mac.is_text());
        assert_eq!(mac.to_string(), "525400180102");
        let odd: NodeId = "abc#".parse::<NodeId>().map_or(NodeId::default(), |x| x);
        assert_eq!(odd, NodeId::default());
        assert!("".parse::<NodeId>().is_err());
        assert!("g".repeat(17).parse::<NodeId>().is_err());
    }
}
