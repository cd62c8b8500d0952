//! `struct sockaddr_tipc` (16 bytes, host byte order; spec §13): the socket-API form of the
//! three TIPC address kinds. utipc's client protocol and the kernel-compatible tools use it.

use super::topsrv::ByteOrder;
use super::{Error, Result, need};

/// AF_TIPC.
pub const AF_TIPC: u16 = 30;
/// Length of a `sockaddr_tipc`.
pub const SOCKADDR_LEN: usize = 16;

/// Address-type values.
pub mod addr_type {
    /// TIPC_SERVICE_RANGE (also TIPC_ADDR_MCAST / NAMESEQ).
    pub const SERVICE_RANGE: u8 = 1;
    /// TIPC_SERVICE_ADDR (also TIPC_ADDR_NAME).
    pub const SERVICE_ADDR: u8 = 2;
    /// TIPC_SOCKET_ADDR (also TIPC_ADDR_ID).
    pub const SOCKET_ADDR: u8 = 3;
}

/// Binding and lookup scopes.
pub mod scope {
    /// Deprecated zone scope (treated as cluster).
    pub const ZONE: i8 = 1;
    /// Cluster scope.
    pub const CLUSTER: i8 = 2;
    /// Node scope.
    pub const NODE: i8 = 3;
}

/// The three TIPC address kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TipcAddr {
    /// A socket: port and node.
    Socket {
        /// Port (socket reference).
        port: u32,
        /// Node address (0 = own node).
        node: u32,
    },
    /// A service address: anycast to one socket bound to `instance`, looked up at `domain`.
    Service {
        /// Service type.
        service_type: u32,
        /// Instance.
        instance: u32,
        /// Lookup node (0 = any).
        domain: u32,
    },
    /// A service range: multicast, or a range binding.
    Range {
        /// Service type.
        service_type: u32,
        /// Lower bound.
        lower: u32,
        /// Upper bound.
        upper: u32,
    },
    /// An address type this implementation does not know, with the 12 union bytes.
    Unknown {
        /// The addrtype byte.
        addr_type: u8,
        /// The union bytes as found.
        raw: [u8; 12],
    },
}

/// A parsed `sockaddr_tipc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockaddrTipc {
    /// Scope (bind) — a negative value means unbind.
    pub scope: i8,
    /// The address.
    pub addr: TipcAddr,
}

impl SockaddrTipc {
    /// Parses 16 bytes in the given order; the family must be AF_TIPC.
    pub fn parse(b: &[u8], order: ByteOrder) -> Result<Self> {
        need("sockaddr_tipc", SOCKADDR_LEN, b.len())?;
        let word = |off: usize| {
            let w = [b[off], b[off + 1], b[off + 2], b[off + 3]];
            match order {
                ByteOrder::Big => u32::from_be_bytes(w),
                ByteOrder::Little => u32::from_le_bytes(w),
            }
        };
        let family = match order {
            ByteOrder::Big => u16::from_be_bytes([b[0], b[1]]),
            ByteOrder::Little => u16::from_le_bytes([b[0], b[1]]),
        };
        if family != AF_TIPC {
            return Err(Error::Invalid {
                field: "sockaddr.family",
                value: u32::from(family),
            });
        }
        let addr = match b[2] {
            addr_type::SOCKET_ADDR => TipcAddr::Socket {
                port: word(4),
                node: word(8),
            },
            addr_type::SERVICE_ADDR => TipcAddr::Service {
                service_type: word(4),
                instance: word(8),
                domain: word(12),
            },
            addr_type::SERVICE_RANGE => TipcAddr::Range {
                service_type: word(4),
                lower: word(8),
                upper: word(12),
            },
            other => {
                let mut raw = [0u8; 12];
                raw.copy_from_slice(&b[4..16]);
                TipcAddr::Unknown {
                    addr_type: other,
                    raw,
                }
            }
        };
        Ok(Self {
            scope: b[3] as i8,
            addr,
        })
    }

    /// Writes 16 bytes in the given order.
    pub fn emit(&self, b: &mut [u8], order: ByteOrder) -> Result<()> {
        need("emit buffer", SOCKADDR_LEN, b.len())?;
        let put = |b: &mut [u8], off: usize, v: u32| {
            let w = match order {
                ByteOrder::Big => v.to_be_bytes(),
                ByteOrder::Little => v.to_le_bytes(),
            };
            b[off..off + 4].copy_from_slice(&w);
        };
        let fam = match order {
            ByteOrder::Big => AF_TIPC.to_be_bytes(),
            ByteOrder::Little => AF_TIPC.to_le_bytes(),
        };
        b[..2].copy_from_slice(&fam);
        b[3] = self.scope as u8;
        b[4..16].fill(0);
        match self.addr {
            TipcAddr::Socket { port, node } => {
                b[2] = addr_type::SOCKET_ADDR;
                put(b, 4, port);
                put(b, 8, node);
            }
            TipcAddr::Service {
                service_type,
                instance,
                domain,
            } => {
                b[2] = addr_type::SERVICE_ADDR;
                put(b, 4, service_type);
                put(b, 8, instance);
                put(b, 12, domain);
            }
            TipcAddr::Range {
                service_type,
                lower,
                upper,
            } => {
                b[2] = addr_type::SERVICE_RANGE;
                put(b, 4, service_type);
                put(b, 8, lower);
                put(b, 12, upper);
            }
            TipcAddr::Unknown { addr_type, raw } => {
                b[2] = addr_type;
                b[4..16].copy_from_slice(&raw);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_kinds_round_trip_in_host_order() {
        for addr in [
            TipcAddr::Socket {
                port: 7,
                node: 0x0f11_5f6f,
            },
            TipcAddr::Service {
                service_type: 18888,
                instance: 17,
                domain: 0,
            },
            TipcAddr::Range {
                service_type: 18888,
                lower: 0,
                upper: 100,
            },
            TipcAddr::Unknown {
                addr_type: 9,
                raw: [1; 12],
            },
        ] {
            let s = SockaddrTipc {
                scope: scope::CLUSTER,
                addr,
            };
            let mut b = [0xa5u8; SOCKADDR_LEN];
            s.emit(&mut b, ByteOrder::Little).expect("emit");
            assert_eq!(&b[..2], &[30, 0]);
            assert_eq!(SockaddrTipc::parse(&b, ByteOrder::Little), Ok(s));
        }
        let s = SockaddrTipc {
            scope: -2,
            addr: TipcAddr::Service {
                service_type: 18888,
                instance: 17,
                domain: 0,
            },
        };
        let mut b = [0u8; SOCKADDR_LEN];
        s.emit(&mut b, ByteOrder::Little).expect("emit");
        assert_eq!(
            b,
            [30, 0, 2, 0xfe, 0xc8, 0x49, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(SockaddrTipc::parse(&[0u8; 16], ByteOrder::Little).is_err());
    }
}
