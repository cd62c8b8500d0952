//! Errors of the client API. Each says what went wrong and, where there is one, what to do;
//! [`Error::kind`] maps them onto [`std::io::ErrorKind`] for code that treats utipc sockets like
//! other sockets (and `From<Error> for io::Error` keeps the text).

use std::{fmt, io};

use crate::records::Status;
use crate::types::ErrorCode;

/// A client API error.
#[derive(Debug)]
pub enum Error {
    /// No utipcd listens at this socket.
    NoDaemon {
        /// The attach socket tried.
        path: std::path::PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// utipcd refused the attachment (credential policy, limits).
    Refused(String),
    /// The daemon answered with an error status.
    Status(Status),
    /// A connection ended: the peer closed or aborted it, or its node was lost.
    Disconnected(ErrorCode),
    /// A message came back undeliverable (returned by [`Socket::recv`](crate::Socket::recv)
    /// as a message with `error` set, and by `send` on a connection).
    Returned(ErrorCode),
    /// Non-blocking operation found nothing to do (or timed out waiting).
    WouldBlock,
    /// The receive timeout passed.
    TimedOut,
    /// The daemon broke the attachment protocol or went away.
    Detached(String),
    /// An argument is not valid for this socket.
    Invalid(&'static str),
    /// An OS call failed.
    Io(io::Error),
}

impl Error {
    /// The closest [`io::ErrorKind`].
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Self::NoDaemon { .. } => K::NotFound,
            Self::Refused(_) => K::PermissionDenied,
            Self::Status(s) => match s {
                Status::Ok => K::Other,
                Status::NoSuchSocket | Status::WrongState | Status::BadAddress => K::InvalidInput,
                Status::NotReady | Status::NoRoute | Status::Unreachable => K::HostUnreachable,
                Status::WouldBlock => K::WouldBlock,
                Status::TooLarge => K::InvalidInput,
                Status::Refused => K::ConnectionRefused,
                Status::TimedOut => K::TimedOut,
                Status::NotConnected => K::NotConnected,
                Status::Reset => K::ConnectionReset,
                Status::NoSuchBinding => K::NotFound,
                Status::Limit => K::QuotaExceeded,
            },
            Self::Disconnected(ErrorCode::ConnShutdown) => K::UnexpectedEof,
            Self::Disconnected(_) => K::ConnectionReset,
            Self::Returned(_) => K::HostUnreachable,
            Self::WouldBlock => K::WouldBlock,
            Self::TimedOut => K::TimedOut,
            Self::Detached(_) => K::BrokenPipe,
            Self::Invalid(_) => K::InvalidInput,
            Self::Io(e) => e.kind(),
        }
    }
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Ok => "no error",
        Status::NoSuchSocket => "the socket is closed",
        Status::WrongState => "the operation does not fit the socket's kind or state",
        Status::NotReady => {
            "the node has no address yet: give utipcd a bearer and wait for the 1 s address trial"
        }
        Status::NoRoute => "no socket is bound to that service address",
        Status::Unreachable => "no working link to the destination node",
        Status::WouldBlock => "congested: retry when the socket is writable",
        Status::TooLarge => "a message carries at most 66,000 bytes",
        Status::BadAddress => {
            "bad service address: types 0-63 are reserved and lower must not exceed upper"
        }
        Status::Refused => "connection refused: nothing listens on that address",
        Status::TimedOut => "connect timed out",
        Status::NotConnected => "the socket is not connected",
        Status::Reset => "the connection was reset",
        Status::NoSuchBinding => "no such binding on this socket",
        Status::Limit => "utipcd's per-client socket limit is reached: close some sockets",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDaemon { path, source } => write!(
                f,
                "no utipcd at {} ({source}): start one with `utipcd --bearer eth:IFACE` \
                 (or set UTIPC_RUN_DIR to the run directory of the one you started)",
                path.display()
            ),
            Self::Refused(why) => write!(f, "utipcd refused the attachment: {why}"),
            Self::Status(s) => f.write_str(status_text(*s)),
            Self::Disconnected(ErrorCode::ConnShutdown) => {
                f.write_str("the peer shut the connection down")
            }
            Self::Disconnected(e) => write!(f, "connection lost: {e}"),
            Self::Returned(e) => write!(f, "message returned: {e}"),
            Self::WouldBlock => f.write_str("operation would block"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Detached(why) => write!(f, "lost the attachment to utipcd: {why}"),
            Self::Invalid(why) => f.write_str(why),
            Self::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NoDaemon { source, .. } | Self::Io(source) => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => Self::new(other.kind(), other),
        }
    }
}

/// Result of the client API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
