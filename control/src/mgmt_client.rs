//! The client side of the management protocol ([`crate::mgmt`]): ask the local `utipcd` one
//! question over its Unix socket and return the `data` of its answer.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::config;
use crate::mgmt::{PcapCmd, Query};

/// How long [`query`] waits to connect, and then for the whole answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response accepted (a name table of about a million bindings).
pub const MAX_RESPONSE: u64 = 256 * 1024 * 1024;

/// Why a query failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket file, or nothing listens on it.
    #[error(
        "no utipcd is running ({} at {}): start one with `utipcd --bearer eth:IFACE` \
         (or set UTIPC_RUN_DIR)",
        if *.refused { "nothing listens" } else { "no socket" },
        .sock.display()
    )]
    NotRunning {
        /// The socket path.
        sock: PathBuf,
        /// The file exists but nothing listens (a daemon died without cleaning up).
        refused: bool,
    },
    /// The socket exists but may not be used by this user.
    #[error(
        "permission denied on {}: run as a user who may use utipcd's socket (e.g. root)",
        .0.display()
    )]
    PermissionDenied(PathBuf),
    /// The daemon did not answer in time.
    #[error(
        "utipcd did not answer on {} within {} ms: it may be overloaded or stuck; see its log",
        .sock.display(),
        .timeout.as_millis()
    )]
    Timeout {
        /// The socket path.
        sock: PathBuf,
        /// The time allowed.
        timeout: Duration,
    },
    /// Another IO error.
    #[error("talking to utipcd on {}: {source}", .sock.display())]
    Io {
        /// The socket path.
        sock: PathBuf,
        /// The IO error.
        source: io::Error,
    },
    /// The answer was not a valid response.
    #[error(
        "utipcd on {} sent an invalid response ({why}): are utipc and utipcd the same version?",
        .sock.display()
    )]
    Protocol {
        /// The socket path.
        sock: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// The daemon refused the request; its message.
    #[error("{0}")]
    Daemon(String),
}

/// Asks the daemon whose run directory is `dir`; returns the response's `data`.
pub fn query(dir: &Path, q: Query) -> Result<Json, ClientError> {
    request(dir, &json!({"cmd": q.cmd()}), DEFAULT_TIMEOUT)
}

/// Sends a capture command: `path` (absolute: the daemon creates the file) for
/// [`PcapCmd::Start`], `bearer` to limit it to one bearer. Returns the response's `data`
/// (render it with [`crate::mgmt::render_pcap_text`]).
pub fn pcap(
    dir: &Path,
    cmd: PcapCmd,
    path: Option<&str>,
    bearer: Option<&str>,
) -> Result<Json, ClientError> {
    let mut req = json!({"cmd": cmd.cmd()});
    if let Some(obj) = req.as_object_mut() {
        if let Some(p) = path {
            obj.insert("path".to_owned(), json!(p));
        }
        if let Some(b) = bearer {
            obj.insert("bearer".to_owned(), json!(b));
        }
    }
    request(dir, &req, DEFAULT_TIMEOUT)
}

/// Sends any request object and returns the response's `data`; `timeout` bounds the connect
/// and then every read and write.
pub fn request(dir: &Path, req: &Json, timeout: Duration) -> Result<Json, ClientError> {
    let sock = config::control_socket(dir);
    let mut stream = connect(&sock, timeout)?;
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            sock: sock.clone(),
            timeout,
        },
        _ => ClientError::Io {
            sock: sock.clone(),
            source,
        },
    };
    let mut line = req.to_string().into_bytes();
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err)?;
    let mut reader = BufReader::new(stream.take(MAX_RESPONSE));
    let mut resp = Vec::new();
    reader.read_until(b'\n', &mut resp).map_err(io_err)?;
    let protocol = |why: String| ClientError::Protocol {
        sock: sock.clone(),
        why,
    };
    if resp.last() != Some(&b'\n') {
        return Err(protocol(if resp.is_empty() {
            "the connection closed without an answer".to_owned()
        } else {
            format!(
                "the answer ended after {} bytes without a newline",
                resp.len()
            )
        }));
    }
    let mut v: Json = serde_json::from_slice(&resp).map_err(|e| protocol(e.to_string()))?;
    match v.get("ok").and_then(Json::as_bool) {
        Some(true) => Ok(v.get_mut("data").map(Json::take).unwrap_or(Json::Null)),
        Some(false) => Err(ClientError::Daemon(
            v.get("error")
                .and_then(Json::as_str)
                .unwrap_or("utipcd refused the request without saying why")
                .to_owned(),
        )),
        None => Err(protocol("no \"ok\" field".to_owned())),
    }
}

fn connect(sock: &Path, timeout: Duration) -> Result<UnixStream, ClientError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => ClientError::NotRunning {
            sock: sock.to_owned(),
            refused: false,
        },
        io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            sock: sock.to_owned(),
            refused: true,
        },
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(sock.to_owned()),
        // A Unix socket's non-blocking connect fails with EAGAIN when the backlog is full.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            sock: sock.to_owned(),
            timeout,
        },
        _ => ClientError::Io {
            sock: sock.to_owned(),
            source,
        },
    };
    let socket =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).map_err(io_err)?;
    let addr = socket2::SockAddr::unix(sock).map_err(io_err)?;
    socket.connect_timeout(&addr, timeout).map_err(io_err)?;
    let stream = UnixStream::from(OwnedFd::from(socket));
    stream.set_nonblocking(false).map_err(io_err)?;
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_daemon_says_how_to_start_one() {
        let dir = std::env::temp_dir().join(format!("utipc-mc-{}", std::process::id()));
        let e = query(&dir, Query::LinkList).expect_err("no daemon");
        let msg = e.to_string();
        assert!(
            msg.starts_with("no utipcd is running (no socket at "),
            "{msg}"
        );
        assert!(
            msg.contains("ctl.sock") && msg.contains("utipcd --bearer"),
            "{msg}"
        );
        // A socket file nobody listens on.
        std::fs::create_dir_all(&dir).expect("dir");
        let path = config::control_socket(&dir);
        let _ = std::fs::remove_file(&path);
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        let e = query(&dir, Query::LinkList).expect_err("stale");
        assert!(e.to_string().contains("nothing listens"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
