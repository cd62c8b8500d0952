//! The attachment protocol: the records a client and utipcd exchange through their rings, and
//! the handshake on the control socket that sets the rings up.
//!
//! Every record is one ring record (see [`ring`](crate::ring)): the ring's type field says
//! which, the body is a fixed little-endian part followed, for records that carry data, by the
//! data bytes. Both ends run on the same machine, so the byte order only needs to be fixed, not
//! network order; it is little-endian so a dump reads the same on every host we run on.
//!
//! ```text
//! client → daemon (requests; `req` ≠ 0 asks for a Reply carrying the same number)
//!   OPEN      req kind
//!   CLOSE     req sock
//!   BIND      req sock scope type lower upper
//!   UNBIND    req sock scope type lower upper
//!   SEND      req sock addr[16] data…          (addr kind 0: the connected peer)
//!   CONNECT   req sock timeout_ms addr[16] data…   (Reply when connected or failed)
//!   LISTEN    req sock
//!   ACCEPT    req sock                           (Reply: new sock, peer port, peer node)
//!   SHUTDOWN  req sock
//!   SETOPT    req sock option value
//!   CONSUMED  0   sock bytes                     (receive credit returned, no Reply)
//! daemon → client
//!   REPLY     req status value value2 value3
//!   DELIVER   sock from_port from_node dest[16] importance error data…
//!   EVENT     sock kind a b code
//! addr[16] = kind (0 none, 1 range, 2 service, 3 socket) + three u32:
//!   range {type, lower, upper} · service {type, instance, domain} · socket {port, node, 0}
//! ```
//!
//! The daemon decodes every client record with [`Request::decode`], which checks lengths and
//! every enumerated value: a client that sends anything else is disconnected.

use crate::types::{Addr, DestName, ErrorCode, Importance, ServiceAddr, ServiceRange, SocketAddr};
use crate::types::{Scope, SocketKind};

/// Version of the attachment protocol (handshake and records); a daemon refuses other versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// Magic at the start of the handshake messages.
pub const HELLO_MAGIC: [u8; 8] = *b"UTIPCATT";

/// The largest data a record carries: one TIPC message (66,000 bytes).
pub const MAX_DATA: usize = 66_000;

/// The largest fixed part of any record.
pub const MAX_FIXED: usize = 48;

/// The largest record body.
pub const MAX_RECORD: usize = MAX_FIXED + MAX_DATA;

/// Bytes a delivered message counts against its socket's delivery window beyond its data, on
/// both sides of the CONSUMED credit (so that empty messages are bounded too).
pub const DELIVERY_OVERHEAD: u32 = 64;

/// Record types (the ring's type field, ≥ 1).
pub mod kind {
    /// Open a socket.
    pub const OPEN: i32 = 1;
    /// Close a socket.
    pub const CLOSE: i32 = 2;
    /// Bind a service range.
    pub const BIND: i32 = 3;
    /// Unbind a service range.
    pub const UNBIND: i32 = 4;
    /// Send a message.
    pub const SEND: i32 = 5;
    /// Connect.
    pub const CONNECT: i32 = 6;
    /// Listen.
    pub const LISTEN: i32 = 7;
    /// Accept a connection.
    pub const ACCEPT: i32 = 8;
    /// Shut a connection down.
    pub const SHUTDOWN: i32 = 9;
    /// Set an option.
    pub const SETOPT: i32 = 10;
    /// Return receive credit.
    pub const CONSUMED: i32 = 11;
    /// Answer to a request.
    pub const REPLY: i32 = 64;
    /// A received message.
    pub const DELIVER: i32 = 65;
    /// A socket event.
    pub const EVENT: i32 = 66;
}

/// Socket options settable with SETOPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SockOpt {
    /// Importance of the messages sent (0–3).
    Importance(Importance),
    /// Return undeliverable messages (false) or drop them (true).
    DestDroppable(bool),
    /// The S bit.
    SrcDroppable(bool),
    /// Receive limit for low importance, in bytes (the kernel's sk_rcvbuf).
    RcvBuf(u32),
}

impl SockOpt {
    fn encode(self) -> (u32, u32) {
        match self {
            Self::Importance(i) => (1, i.code()),
            Self::DestDroppable(b) => (2, u32::from(b)),
            Self::SrcDroppable(b) => (3, u32::from(b)),
            Self::RcvBuf(v) => (4, v),
        }
    }

    fn decode(opt: u32, v: u32) -> Result<Self, RecordError> {
        let flag = |v| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(RecordError::BadValue("boolean option is not 0 or 1")),
        };
        Ok(match opt {
            1 => Self::Importance(
                Importance::from_code(v).ok_or(RecordError::BadValue("importance above 3"))?,
            ),
            2 => Self::DestDroppable(flag(v)?),
            3 => Self::SrcDroppable(flag(v)?),
            4 => Self::RcvBuf(v),
            _ => return Err(RecordError::BadValue("unknown socket option")),
        })
    }
}

/// A client's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Open a socket of this kind; Reply value = the port.
    Open {
        /// Request number.
        req: u32,
        /// Socket kind.
        kind: SocketKind,
    },
    /// Close a socket.
    Close {
        /// Request number.
        req: u32,
        /// The socket (its port).
        sock: u32,
    },
    /// Bind (or unbind) a service range.
    Bind {
        /// Request number.
        req: u32,
        /// The socket.
        sock: u32,
        /// Visibility.
        scope: Scope,
        /// The range.
        range: ServiceRange,
        /// Unbind instead of bind.
        unbind: bool,
    },
    /// Send `data` (to `to`, or on the connection when `None`).
    Send {
        /// Request number (0: no Reply wanted).
        req: u32,
        /// The socket.
        sock: u32,
        /// Destination (None: the connected peer).
        to: Option<Addr>,
        /// The message.
        data: &'a [u8],
    },
    /// Connect (SYN; with data: implied connect).
    Connect {
        /// Request number; the Reply comes when the connection is set up or failed.
        req: u32,
        /// The socket.
        sock: u32,
        /// Give up after this many milliseconds.
        timeout_ms: u32,
        /// The service or socket to connect to.
        to: Addr,
        /// First data (may be empty).
        data: &'a [u8],
    },
    /// Listen for connections.
    Listen {
        /// Request number.
        req: u32,
        /// The socket.
        sock: u32,
    },
    /// Accept a pending connection; Reply: new socket, peer port, peer node (or WouldBlock).
    Accept {
        /// Request number.
        req: u32,
        /// The listening socket.
        sock: u32,
    },
    /// Shut the connection down (the peer reads end of file).
    Shutdown {
        /// Request number.
        req: u32,
        /// The socket.
        sock: u32,
    },
    /// Set an option.
    SetOpt {
        /// Request number.
        req: u32,
        /// The socket.
        sock: u32,
        /// The option and its value.
        opt: SockOpt,
    },
    /// The application consumed `bytes` of delivered data: the daemon may deliver more.
    Consumed {
        /// The socket.
        sock: u32,
        /// Bytes consumed.
        bytes: u32,
    },
}

/// A daemon → client record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// The answer to request `req`.
    Reply {
        /// Request number.
        req: u32,
        /// 0 or an [`Status`] code.
        status: u32,
        /// Result values (meaning per request).
        values: [u32; 3],
    },
    /// A message for socket `sock`.
    Deliver {
        /// The receiving socket.
        sock: u32,
        /// Sender.
        from: SocketAddr,
        /// How it was addressed.
        dest: DestName,
        /// Its importance.
        importance: Importance,
        /// `Some` for one of ours coming back, or for the end of a connection.
        error: Option<ErrorCode>,
        /// The data.
        data: &'a [u8],
    },
    /// A socket event.
    Event {
        /// The socket.
        sock: u32,
        /// What happened.
        event: SockEvent,
    },
}

/// Socket events the daemon announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockEvent {
    /// A listener has a connection waiting for accept.
    Incoming,
    /// The connection's send window reopened.
    Writable,
    /// The connection ended (the abort marker follows in the data stream as a Deliver with an
    /// error).
    Disconnected(ErrorCode),
}

/// Status codes of a Reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The socket does not exist (closed, or never opened by this client).
    NoSuchSocket = 1,
    /// The request does not fit the socket (kind or state).
    WrongState = 2,
    /// The node has no address yet (no bearer, or the 1 s address trial is running).
    NotReady = 3,
    /// No socket is bound to the service address.
    NoRoute = 4,
    /// No working link to the destination node.
    Unreachable = 5,
    /// Congested (link backlog or connection window): retry when writable.
    WouldBlock = 6,
    /// More than 66,000 bytes.
    TooLarge = 7,
    /// Service types below 64 are reserved, or the range is inverted.
    BadAddress = 8,
    /// The connection was refused (no listener / no such service).
    Refused = 9,
    /// connect() timed out.
    TimedOut = 10,
    /// Not connected.
    NotConnected = 11,
    /// The connection was reset by the peer or lost with its node.
    Reset = 12,
    /// The binding does not exist (unbind) or was refused.
    NoSuchBinding = 13,
    /// The daemon cannot open more sockets for this client.
    Limit = 14,
}

impl Status {
    /// From the wire value.
    pub const fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => Self::Ok,
            1 => Self::NoSuchSocket,
            2 => Self::WrongState,
            3 => Self::NotReady,
            4 => Self::NoRoute,
            5 => Self::Unreachable,
            6 => Self::WouldBlock,
            7 => Self::TooLarge,
            8 => Self::BadAddress,
            9 => Self::Refused,
            10 => Self::TimedOut,
            11 => Self::NotConnected,
            12 => Self::Reset,
            13 => Self::NoSuchBinding,
            14 => Self::Limit,
            _ => return None,
        })
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The ring type is not one this side accepts.
    UnknownType(i32),
    /// The body is shorter than the record's fixed part, or longer than it may be.
    BadLength {
        /// Record type.
        kind: i32,
        /// Body length.
        len: usize,
    },
    /// A field holds a value outside its range.
    BadValue(&'static str),
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownType(t) => write!(f, "unknown record type {t}"),
            Self::BadLength { kind, len } => {
                write!(
                    f,
                    "record type {kind} has an impossible length of {len} bytes"
                )
            }
            Self::BadValue(what) => write!(f, "bad field value: {what}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Little-endian field writer over a fixed buffer.
struct Put<'b> {
    buf: &'b mut [u8; MAX_FIXED],
    len: usize,
}

impl Put<'_> {
    fn u32(&mut self, v: u32) -> &mut Self {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        self.len += 4;
        self
    }

    fn addr(&mut self, a: Option<Addr>) -> &mut Self {
        let (k, x, y, z) = match a {
            None => (0, 0, 0, 0),
            Some(Addr::Range(r)) => (1, r.service_type, r.lower, r.upper),
            Some(Addr::Service(s)) => (2, s.service_type, s.instance, s.domain),
            Some(Addr::Socket(s)) => (3, s.port, s.node, 0),
        };
        self.u32(k).u32(x).u32(y).u32(z)
    }
}

/// Little-endian field reader; every read is bounds-checked.
struct Get<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Get<'a> {
    fn u32(&mut self) -> u32 {
        let v = self
            .b
            .get(self.at..self.at + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map_or(0, u32::from_le_bytes);
        self.at += 4;
        v
    }

    fn addr(&mut self) -> Result<Option<Addr>, RecordError> {
        let (k, x, y, z) = (self.u32(), self.u32(), self.u32(), self.u32());
        Ok(match k {
            0 => None,
            1 => Some(Addr::Range(ServiceRange::new(x, y, z))),
            2 => Some(Addr::Service(ServiceAddr {
                service_type: x,
                instance: y,
                domain: z,
            })),
            3 => Some(Addr::Socket(SocketAddr { port: x, node: y })),
            _ => return Err(RecordError::BadValue("unknown address kind")),
        })
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.at..).unwrap_or(&[])
    }
}

/// Fixed-part length of each record type.
const fn fixed_len(kind: i32) -> Option<usize> {
    Some(match kind {
        kind::OPEN | kind::CLOSE | kind::LISTEN | kind::ACCEPT | kind::SHUTDOWN => 8,
        kind::BIND | kind::UNBIND => 24,
        kind::SEND => 24,
        kind::CONNECT => 28,
        kind::SETOPT => 16,
        kind::CONSUMED => 12,
        kind::REPLY => 20,
        kind::DELIVER => 36,
        kind::EVENT => 20,
        _ => return None,
    })
}

/// Splits a body into its fixed part reader, checking the length against the type.
fn reader(kind: i32, body: &[u8], data_allowed: bool) -> Result<Get<'_>, RecordError> {
    let fixed = fixed_len(kind).ok_or(RecordError::UnknownType(kind))?;
    let max = if data_allowed {
        fixed + MAX_DATA
    } else {
        fixed
    };
    if body.len() < fixed || body.len() > max {
        return Err(RecordError::BadLength {
            kind,
            len: body.len(),
        });
    }
    Ok(Get { b: body, at: 0 })
}

impl<'a> Request<'a> {
    /// Encodes the fixed part into `head`; returns (ring type, fixed length, data).
    pub fn encode(&self, head: &mut [u8; MAX_FIXED]) -> (i32, usize, &'a [u8]) {
        let mut p = Put { buf: head, len: 0 };
        let (kind, data): (i32, &'a [u8]) = match *self {
            Self::Open { req, kind: k } => {
                p.u32(req).u32(k.code());
                (kind::OPEN, &[])
            }
            Self::Close { req, sock } => {
                p.u32(req).u32(sock);
                (kind::CLOSE, &[])
            }
            Self::Bind {
                req,
                sock,
                scope,
                range,
                unbind,
            } => {
                p.u32(req)
                    .u32(sock)
                    .u32(scope.code())
                    .u32(range.service_type)
                    .u32(range.lower)
                    .u32(range.upper);
                (if unbind { kind::UNBIND } else { kind::BIND }, &[])
            }
            Self::Send {
                req,
                sock,
                to,
                data,
            } => {
                p.u32(req).u32(sock).addr(to);
                (kind::SEND, data)
            }
            Self::Connect {
                req,
                sock,
                timeout_ms,
                to,
                data,
            } => {
                p.u32(req).u32(sock).u32(timeout_ms).addr(Some(to));
                (kind::CONNECT, data)
            }
            Self::Listen { req, sock } => {
                p.u32(req).u32(sock);
                (kind::LISTEN, &[])
            }
            Self::Accept { req, sock } => {
                p.u32(req).u32(sock);
                (kind::ACCEPT, &[])
            }
            Self::Shutdown { req, sock } => {
                p.u32(req).u32(sock);
                (kind::SHUTDOWN, &[])
            }
            Self::SetOpt { req, sock, opt } => {
                let (o, v) = opt.encode();
                p.u32(req).u32(sock).u32(o).u32(v);
                (kind::SETOPT, &[])
            }
            Self::Consumed { sock, bytes } => {
                p.u32(0).u32(sock).u32(bytes);
                (kind::CONSUMED, &[])
            }
        };
        (kind, p.len, data)
    }

    /// Decodes and validates a client record.
    ///
    /// # Errors
    ///
    /// [`RecordError`] for an unknown type, a wrong length or an out-of-range field.
    pub fn decode(kind: i32, body: &'a [u8]) -> Result<Self, RecordError> {
        let data_allowed = matches!(kind, kind::SEND | kind::CONNECT);
        let mut g = reader(kind, body, data_allowed)?;
        let req = g.u32();
        Ok(match kind {
            kind::OPEN => Self::Open {
                req,
                kind: SocketKind::from_code(g.u32())
                    .ok_or(RecordError::BadValue("unknown socket kind"))?,
            },
            kind::CLOSE => Self::Close { req, sock: g.u32() },
            kind::BIND | kind::UNBIND => {
                let sock = g.u32();
                let scope =
                    Scope::from_code(g.u32()).ok_or(RecordError::BadValue("unknown scope"))?;
                let range = ServiceRange::new(g.u32(), g.u32(), g.u32());
                Self::Bind {
                    req,
                    sock,
                    scope,
                    range,
                    unbind: kind == kind::UNBIND,
                }
            }
            kind::SEND => {
                let sock = g.u32();
                let to = g.addr()?;
                Self::Send {
                    req,
                    sock,
                    to,
                    data: g.rest(),
                }
            }
            kind::CONNECT => {
                let sock = g.u32();
                let timeout_ms = g.u32();
                let to = g
                    .addr()?
                    .ok_or(RecordError::BadValue("connect without an address"))?;
                Self::Connect {
                    req,
                    sock,
                    timeout_ms,
                    to,
                    data: g.rest(),
                }
            }
            kind::LISTEN => Self::Listen { req, sock: g.u32() },
            kind::ACCEPT => Self::Accept { req, sock: g.u32() },
            kind::SHUTDOWN => Self::Shutdown { req, sock: g.u32() },
            kind::SETOPT => {
                let sock = g.u32();
                let (o, v) = (g.u32(), g.u32());
                Self::SetOpt {
                    req,
                    sock,
                    opt: SockOpt::decode(o, v)?,
                }
            }
            kind::CONSUMED => Self::Consumed {
                sock: g.u32(),
                bytes: g.u32(),
            },
            other => return Err(RecordError::UnknownType(other)),
        })
    }
}

fn dest_parts(d: DestName) -> Option<Addr> {
    match d {
        DestName::Socket => None,
        DestName::Service(s) => Some(Addr::Service(s)),
        DestName::Range(r) => Some(Addr::Range(r)),
    }
}

impl<'a> Notice<'a> {
    /// Encodes the fixed part into `head`; returns (ring type, fixed length, data).
    pub fn encode(&self, head: &mut [u8; MAX_FIXED]) -> (i32, usize, &'a [u8]) {
        let mut p = Put { buf: head, len: 0 };
        match *self {
            Self::Reply {
                req,
                status,
                values,
            } => {
                p.u32(req)
                    .u32(status)
                    .u32(values[0])
                    .u32(values[1])
                    .u32(values[2]);
                (kind::REPLY, p.len, &[])
            }
            Self::Deliver {
                sock,
                from,
                dest,
                importance,
                error,
                data,
            } => {
                p.u32(sock)
                    .u32(from.port)
                    .u32(from.node)
                    .addr(dest_parts(dest))
                    .u32(importance.code())
                    .u32(error.map_or(0, ErrorCode::code));
                (kind::DELIVER, p.len, data)
            }
            Self::Event { sock, event } => {
                let (k, code) = match event {
                    SockEvent::Incoming => (1, 0),
                    SockEvent::Writable => (2, 0),
                    SockEvent::Disconnected(e) => (3, e.code()),
                };
                p.u32(sock).u32(k).u32(0).u32(0).u32(code);
                (kind::EVENT, p.len, &[])
            }
        }
    }

    /// Decodes a daemon record (the client trusts the daemon, but still never panics).
    ///
    /// # Errors
    ///
    /// [`RecordError`] for an unknown type, a wrong length or an out-of-range field.
    pub fn decode(kind: i32, body: &'a [u8]) -> Result<Self, RecordError> {
        let mut g = reader(kind, body, kind == kind::DELIVER)?;
        Ok(match kind {
            kind::REPLY => Self::Reply {
                req: g.u32(),
                status: g.u32(),
                values: [g.u32(), g.u32(), g.u32()],
            },
            kind::DELIVER => {
                let sock = g.u32();
                let from = SocketAddr {
                    port: g.u32(),
                    node: g.u32(),
                };
                let dest = match g.addr()? {
                    None | Some(Addr::Socket(_)) => DestName::Socket,
                    Some(Addr::Service(s)) => DestName::Service(s),
                    Some(Addr::Range(r)) => DestName::Range(r),
                };
                let importance =
                    Importance::from_code(g.u32()).ok_or(RecordError::BadValue("importance"))?;
                let error = ErrorCode::from_code(g.u32());
                Self::Deliver {
                    sock,
                    from,
                    dest,
                    importance,
                    error,
                    data: g.rest(),
                }
            }
            kind::EVENT => {
                let sock = g.u32();
                let k = g.u32();
                let _ = (g.u32(), g.u32());
                let code = g.u32();
                let event = match k {
                    1 => SockEvent::Incoming,
                    2 => SockEvent::Writable,
                    3 => SockEvent::Disconnected(
                        ErrorCode::from_code(code).ok_or(RecordError::BadValue("error code 0"))?,
                    ),
                    _ => return Err(RecordError::BadValue("unknown event")),
                };
                Self::Event { sock, event }
            }
            other => return Err(RecordError::UnknownType(other)),
        })
    }
}

/// The client's first message on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the client.
    pub version: u32,
}

/// Length of an encoded [`Hello`].
pub const HELLO_LEN: usize = 12;

impl Hello {
    /// The 12-byte encoding: magic, version.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..8].copy_from_slice(&HELLO_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b
    }

    /// Parses a hello.
    ///
    /// # Errors
    ///
    /// A text saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, &'static str> {
        if b.len() != HELLO_LEN || b[..8] != HELLO_MAGIC {
            return Err("not a utipc client hello (wrong length or magic)");
        }
        let v = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        Ok(Self { version: v })
    }
}

/// The daemon's answer to a [`Hello`]: either welcome (with the segment and doorbell
/// descriptors attached as SCM_RIGHTS: segment, client→daemon doorbell, daemon→client
/// doorbell) or a refusal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Welcome {
    /// Attached.
    Accepted {
        /// The daemon's protocol version.
        version: u32,
        /// This node's address (0 while the address trial runs).
        node: u32,
        /// This node's 128-bit identity.
        node_id: [u8; 16],
    },
    /// Refused, with the reason (for the user).
    Refused(String),
}

impl Welcome {
    /// Encodes: magic, tag (1 accepted / 2 refused), then version, node, id or the text.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = HELLO_MAGIC.to_vec();
        match self {
            Self::Accepted {
                version,
                node,
                node_id,
            } => {
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&version.to_le_bytes());
                b.extend_from_slice(&node.to_le_bytes());
                b.extend_from_slice(node_id);
            }
            Self::Refused(why) => {
                b.extend_from_slice(&2u32.to_le_bytes());
                b.extend_from_slice(why.as_bytes());
            }
        }
        b
    }

    /// Parses a welcome.
    ///
    /// # Errors
    ///
    /// A text saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, &'static str> {
        if b.len() < 12 || b[..8] != HELLO_MAGIC {
            return Err("not a utipcd welcome (wrong length or magic)");
        }
        let word = |at: usize| {
            b.get(at..at + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(u32::from_le_bytes)
        };
        match word(8) {
            Some(1) => {
                let (Some(version), Some(node)) = (word(12), word(16)) else {
                    return Err("short utipcd welcome");
                };
                let node_id = b
                    .get(20..36)
                    .and_then(|s| <[u8; 16]>::try_from(s).ok())
                    .ok_or("short utipcd welcome")?;
                Ok(Self::Accepted {
                    version,
                    node,
                    node_id,
                })
            }
            Some(2) => Ok(Self::Refused(
                String::from_utf8_lossy(b.get(12..).unwrap_or(&[])).into_owned(),
            )),
            _ => Err("unknown utipcd welcome tag"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_req(r: Request<'_>) {
        let mut head = [0u8; MAX_FIXED];
        let (k, n, data) = r.encode(&mut head);
        let mut body = head[..n].to_vec();
        body.extend_from_slice(data);
        assert_eq!(Request::decode(k, &body), Ok(r));
    }

    #[test]
    fn requests_round_trip() {
        let to = Addr::Service(ServiceAddr::new(18888, 17));
        for r in [
            Request::Open {
                req: 1,
                kind: SocketKind::Stream,
            },
            Request::Close { req: 2, sock: 77 },
            Request::Bind {
                req: 3,
                sock: 9,
                scope: Scope::Node,
                range: ServiceRange::new(100, 1, 5),
                unbind: true,
            },
            Request::Send {
                req: 0,
                sock: 9,
                to: None,
                data: b"abc",
            },
            Request::Send {
                req: 4,
                sock: 9,
                to: Some(Addr::Socket(SocketAddr { port: 5, node: 6 })),
                data: &[7; 1000],
            },
            Request::Connect {
                req: 5,
                sock: 1,
                timeout_ms: 8000,
                to,
                data: b"syn+",
            },
            Request::Listen { req: 6, sock: 1 },
            Request::Accept { req: 7, sock: 1 },
            Request::Shutdown { req: 8, sock: 1 },
            Request::SetOpt {
                req: 9,
                sock: 1,
                opt: SockOpt::Importance(Importance::Critical),
            },
            Request::Consumed {
                sock: 1,
                bytes: 4096,
            },
        ] {
            round_trip_req(r);
        }
    }

    #[test]
    fn notices_round_trip() {
        for n in [
            Notice::Reply {
                req: 1,
                status: Status::Refused as u32,
                values: [1, 2, 3],
            },
            Notice::Deliver {
                sock: 1,
                from: SocketAddr { port: 2, node: 3 },
                dest: DestName::Range(ServiceRange::new(1, 2, 3)),
                importance: Importance::High,
                error: Some(ErrorCode::Overload),
                data: b"back",
            },
            Notice::Event {
                sock: 4,
                event: SockEvent::Disconnected(ErrorCode::NoNode),
            },
        ] {
            let mut head = [0u8; MAX_FIXED];
            let (k, len, data) = n.encode(&mut head);
            let mut body = head[..len].to_vec();
            body.extend_from_slice(data);
            assert_eq!(Notice::decode(k, &body), Ok(n));
        }
    }

    #[test]
    fn bad_records_are_refused() {
        assert_eq!(
            Request::decode(99, &[0; 8]),
            Err(RecordError::UnknownType(99))
        );
        assert!(matches!(
            Request::decode(kind::OPEN, &[0; 4]),
            Err(RecordError::BadLength { .. })
        ));
        // Data on a record that carries none.
        assert!(matches!(
            Request::decode(kind::CLOSE, &[0; 9]),
            Err(RecordError::BadLength { .. })
        ));
        // Oversized send.
        let big = vec![0u8; 24 + MAX_DATA + 1];
        assert!(matches!(
            Request::decode(kind::SEND, &big),
            Err(RecordError::BadLength { .. })
        ));
        // Unknown kind / scope / address kind / option.
        let mut open = [0u8; 8];
        open[4] = 9;
        assert!(Request::decode(kind::OPEN, &open).is_err());
        let mut bind = [0u8; 24];
        bind[8] = 7;
        assert!(Request::decode(kind::BIND, &bind).is_err());
        let mut send = [0u8; 24];
        send[8] = 4;
        assert!(Request::decode(kind::SEND, &send).is_err());
        let mut opt = [0u8; 16];
        opt[8] = 1;
        opt[12] = 4;
        assert!(Request::decode(kind::SETOPT, &opt).is_err());
    }

    #[test]
    fn handshake_round_trips() {
        let h = Hello {
            version: PROTOCOL_VERSION,
        };
        assert_eq!(Hello::decode(&h.encode()), Ok(h));
        assert!(Hello::decode(b"garbage").is_err());
        for w in [
            Welcome::Accepted {
                version: 1,
                node: 0x1234,
                node_id: [7; 16],
            },
            Welcome::Refused("uid 1000 is not allowed".into()),
        ] {
            assert_eq!(Welcome::decode(&w.encode()), Ok(w));
        }
    }
}
