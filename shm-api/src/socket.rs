//! TIPC sockets through utipcd: the four kinds, binding, datagrams, connections.
//!
//! ```no_run
//! use utipc_shm_api::{Client, ServiceAddr, ServiceRange, Scope, SocketKind};
//! # fn main() -> Result<(), utipc_shm_api::Error> {
//! let client = Client::attach()?;
//! // A server: bind {18888, 17} cluster-wide and echo datagrams.
//! let server = client.socket(SocketKind::Rdm)?;
//! server.bind(ServiceRange::single(18888, 17), Scope::Cluster)?;
//! // A client: anycast to the service, wait for the answer.
//! let sock = client.socket(SocketKind::Rdm)?;
//! sock.send_to(ServiceAddr::new(18888, 17), b"ping")?;
//! let m = server.recv()?;
//! server.send_to(m.from, &m.data)?;
//! assert_eq!(sock.recv()?.data, b"ping");
//! # Ok(()) }
//! ```

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::client::{Client, Message, State};
use crate::error::{Error, Result};
use crate::records::{DELIVERY_OVERHEAD, MAX_DATA, Request, SockOpt, Status};
use crate::types::{Addr, ErrorCode, Importance, Scope, ServiceRange, SocketAddr, SocketKind};

/// The default connect timeout (the kernel's TIPC_CONN_TIMEOUT).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(8000);

/// A TIPC socket. Closed (its bindings withdrawn, its connection aborted) on drop.
#[derive(Debug)]
pub struct Socket {
    client: Client,
    port: u32,
    kind: SocketKind,
    nonblocking: Cell<bool>,
    read_timeout: Cell<Option<Duration>>,
    peer: Cell<Option<SocketAddr>>,
}

impl Socket {
    pub(crate) fn new(client: Client, port: u32, kind: SocketKind) -> Self {
        Self {
            client,
            port,
            kind,
            nonblocking: Cell::new(false),
            read_timeout: Cell::new(None),
            peer: Cell::new(None),
        }
    }

    /// This socket's address `{port, node}`.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr {
            port: self.port,
            node: self.client.node(),
        }
    }

    /// The socket kind.
    pub fn kind(&self) -> SocketKind {
        self.kind
    }

    /// The client this socket belongs to (for [`Client::readiness_fd`]).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The connected peer, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer.get()
    }

    /// Non-blocking mode: operations that would wait return [`Error::WouldBlock`].
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.set(on);
    }

    /// How long a blocking receive waits (None: forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) {
        self.read_timeout.set(t);
    }

    fn deadline(&self) -> Option<Instant> {
        if self.nonblocking.get() {
            return Some(Instant::now());
        }
        self.read_timeout.get().map(|t| Instant::now() + t)
    }

    fn simple(&self, build: impl FnOnce(u32) -> Request<'static>) -> Result<[u32; 3]> {
        self.client.call(build, None)
    }

    /// Binds a service range with node or cluster scope (several per socket allowed).
    ///
    /// # Errors
    ///
    /// [`Status::BadAddress`] for a reserved type (below 64) or an inverted range.
    pub fn bind(&self, range: ServiceRange, scope: Scope) -> Result<()> {
        let sock = self.port;
        self.simple(|req| Request::Bind {
            req,
            sock,
            scope,
            range,
            unbind: false,
        })
        .map(drop)
    }

    /// Withdraws a binding made with [`Socket::bind`].
    ///
    /// # Errors
    ///
    /// [`Status::NoSuchBinding`] when this socket has no such binding.
    pub fn unbind(&self, range: ServiceRange, scope: Scope) -> Result<()> {
        let sock = self.port;
        self.simple(|req| Request::Bind {
            req,
            sock,
            scope,
            range,
            unbind: true,
        })
        .map(drop)
    }

    fn set_opt(&self, opt: SockOpt) -> Result<()> {
        let sock = self.port;
        self.simple(|req| Request::SetOpt { req, sock, opt })
            .map(drop)
    }

    /// Importance of the messages this socket sends.
    ///
    /// # Errors
    ///
    /// [`Error::Detached`] when the daemon is gone.
    pub fn set_importance(&self, i: Importance) -> Result<()> {
        self.set_opt(SockOpt::Importance(i))
    }

    /// Whether undeliverable messages are dropped (true, the default for RDM/DGRAM) or come
    /// back to this socket with an error code (false, the default for connections).
    ///
    /// # Errors
    ///
    /// [`Error::Detached`] when the daemon is gone.
    pub fn set_dest_droppable(&self, on: bool) -> Result<()> {
        self.set_opt(SockOpt::DestDroppable(on))
    }

    /// The S bit (TIPC_SRC_DROPPABLE).
    ///
    /// # Errors
    ///
    /// [`Error::Detached`] when the daemon is gone.
    pub fn set_src_droppable(&self, on: bool) -> Result<()> {
        self.set_opt(SockOpt::SrcDroppable(on))
    }

    /// The receive limit for low importance, in bytes (doubled per importance level); a
    /// message that would exceed it is returned to its sender with OVERLOAD.
    ///
    /// # Errors
    ///
    /// [`Error::Detached`] when the daemon is gone.
    pub fn set_recv_buffer_size(&self, bytes: u32) -> Result<()> {
        self.set_opt(SockOpt::RcvBuf(bytes))
    }

    /// Sends a datagram (RDM/DGRAM) to a socket, service (anycast) or range (multicast). On a
    /// STREAM or SEQPACKET socket that is not connected yet this is an implied connect: the
    /// data travels in the SYN and the connection is set up by the first message.
    ///
    /// # Errors
    ///
    /// [`Status::NoRoute`] when no socket is bound to the service, [`Status::Unreachable`]
    /// when its node has no working link, [`Status::TooLarge`] over 66,000 bytes,
    /// [`Error::WouldBlock`] on a congested non-blocking socket.
    pub fn send_to(&self, to: impl Into<Addr>, data: &[u8]) -> Result<()> {
        let to = to.into();
        if data.len() > MAX_DATA {
            return Err(Error::Status(Status::TooLarge));
        }
        if self.kind.is_connection() {
            if self.peer.get().is_some() {
                return self.send(data).map(drop);
            }
            return self.connect_inner(to, data, DEFAULT_CONNECT_TIMEOUT);
        }
        let sock = self.port;
        self.send_retrying(|req| Request::Send {
            req,
            sock,
            to: Some(to),
            data,
        })
        .map(drop)
    }

    /// Sends, retrying while congested (unless non-blocking).
    fn send_retrying<'a>(&self, build: impl Fn(u32) -> Request<'a>) -> Result<[u32; 3]> {
        loop {
            if let Some(q) = self.client.state().socks.get_mut(&self.port) {
                q.writable = false;
            }
            match self.client.call_with(&build, None) {
                Err(Error::Status(Status::WouldBlock)) if !self.nonblocking.get() => {
                    // Connections announce their window reopening; link congestion is not
                    // announced, so re-try at least every millisecond.
                    let port = self.port;
                    let until = Instant::now() + Duration::from_millis(1);
                    match self.client.wait_until(Some(until), |st| {
                        let q = st.socks.get(&port)?;
                        (q.writable || q.disconnected.is_some()).then_some(())
                    }) {
                        Ok(()) | Err(Error::TimedOut) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(Error::Status(Status::WouldBlock)) => return Err(Error::WouldBlock),
                other => return other,
            }
        }
    }

    /// Receives the next message (datagram sockets and SEQPACKET; on a STREAM socket it
    /// returns the next received chunk). A returned message of ours has `error` set.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] / [`Error::TimedOut`] when nothing arrived in time; on a
    /// connection, [`Error::Disconnected`] once the peer closed it and everything before
    /// was read (CONN_SHUTDOWN: an orderly end).
    pub fn recv(&self) -> Result<Message> {
        let port = self.port;
        let connection = self.kind.is_connection();
        let deadline = self.deadline();
        let msg = self
            .client
            .wait_until(deadline, |st| take_message(st, port, connection))
            .map_err(|e| self.map_timeout(e))??;
        self.credit(msg.data.len());
        Ok(msg)
    }

    fn map_timeout(&self, e: Error) -> Error {
        match e {
            Error::TimedOut if self.nonblocking.get() => Error::WouldBlock,
            e => e,
        }
    }

    fn credit(&self, len: usize) {
        let bytes = u32::try_from(len)
            .unwrap_or(u32::MAX)
            .saturating_add(DELIVERY_OVERHEAD);
        let r = {
            let mut st = self.client.state();
            self.client.consumed(&mut st, self.port, bytes)
        };
        if let Some(r) = r {
            // Fire and forget: CONSUMED has no reply; a dead daemon is reported by the next call.
            let _ = self.client.submit(&r);
        }
    }

    /// Reads bytes from a STREAM connection into `buf` (message boundaries are not kept).
    /// Returns 0 at the orderly end of the stream.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when the connection was aborted; [`Error::WouldBlock`] /
    /// [`Error::TimedOut`] as for [`Socket::recv`].
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let port = self.port;
        let deadline = self.deadline();
        let (n, finished) = self
            .client
            .wait_until(deadline, |st| {
                let q = st.socks.get_mut(&port)?;
                let front = q.msgs.front()?;
                if let Some(e) = front.error {
                    return Some(Err(e));
                }
                let avail = front.data.get(q.front_taken..).unwrap_or(&[]);
                let n = avail.len().min(buf.len());
                buf[..n].copy_from_slice(&avail[..n]);
                q.front_taken += n;
                let finished = if q.front_taken >= front.data.len() {
                    let len = front.data.len();
                    q.msgs.pop_front();
                    q.front_taken = 0;
                    Some(len)
                } else {
                    None
                };
                Some(Ok((n, finished)))
            })
            .map_err(|e| self.map_timeout(e))?
            .or_else(|e| match e {
                ErrorCode::ConnShutdown => Ok((0, None)),
                e => Err(Error::Disconnected(e)),
            })?;
        if let Some(len) = finished {
            self.credit(len);
        }
        Ok(n)
    }

    /// Writes all of `data` to a STREAM connection (in messages of at most 66,000 bytes).
    ///
    /// # Errors
    ///
    /// As [`Socket::send`].
    pub fn write_all(&self, data: &[u8]) -> Result<()> {
        for chunk in data.chunks(MAX_DATA) {
            self.send(chunk)?;
        }
        Ok(())
    }

    /// Sends one message on a connection (SEQPACKET: one record; STREAM: bytes). Returns the
    /// bytes sent.
    ///
    /// # Errors
    ///
    /// [`Status::NotConnected`], [`Error::Disconnected`] after the peer ended it,
    /// [`Error::WouldBlock`] when the flow-control window is full on a non-blocking socket.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        if data.len() > MAX_DATA {
            return Err(Error::Status(Status::TooLarge));
        }
        if let Some(e) = self
            .client
            .state()
            .socks
            .get(&self.port)
            .and_then(|q| q.disconnected)
        {
            return Err(Error::Disconnected(e));
        }
        let sock = self.port;
        let [n, ..] = self.send_retrying(|req| Request::Send {
            req,
            sock,
            to: None,
            data,
        })?;
        Ok(n as usize)
    }

    /// Connects to a service address or socket (SYN without data), waiting up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`Status::Refused`] when nothing listens there, [`Status::TimedOut`], [`Status::NoRoute`].
    pub fn connect(&self, to: impl Into<Addr>, timeout: Duration) -> Result<()> {
        self.connect_inner(to.into(), &[], timeout)
    }

    fn connect_inner(&self, to: Addr, data: &[u8], timeout: Duration) -> Result<()> {
        if !self.kind.is_connection() {
            return Err(Error::Invalid(
                "connect needs a STREAM or SEQPACKET socket; RDM and DGRAM sockets send_to",
            ));
        }
        let sock = self.port;
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let [port, node, _] = self.client.call_with(
            |req| Request::Connect {
                req,
                sock,
                timeout_ms,
                to,
                data,
            },
            None,
        )?;
        self.peer.set(Some(SocketAddr { port, node }));
        Ok(())
    }

    /// Makes the socket a listener (STREAM / SEQPACKET).
    ///
    /// # Errors
    ///
    /// [`Status::WrongState`] for datagram or connected sockets.
    pub fn listen(&self) -> Result<()> {
        let sock = self.port;
        self.simple(|req| Request::Listen { req, sock }).map(drop)
    }

    /// Accepts the next connection: the new connected socket and its peer.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] on a non-blocking listener with nothing pending.
    pub fn accept(&self) -> Result<(Self, SocketAddr)> {
        let sock = self.port;
        if self.nonblocking.get() {
            let pending = self
                .client
                .state()
                .socks
                .get_mut(&sock)
                .is_some_and(|q| std::mem::take(&mut q.incoming));
            if !pending {
                self.client.pump()?;
                let pending = self
                    .client
                    .state()
                    .socks
                    .get_mut(&sock)
                    .is_some_and(|q| std::mem::take(&mut q.incoming));
                if !pending {
                    return Err(Error::WouldBlock);
                }
            }
        }
        // The new socket's queue is created as the reply is read (deliveries right behind it,
        // such as the SYN's data, are kept).
        let [port, peer_port, peer_node] = self
            .client
            .call_creating(|req| Request::Accept { req, sock })?;
        let s = Self::new(self.client.clone(), port, self.kind);
        let peer = SocketAddr {
            port: peer_port,
            node: peer_node,
        };
        s.peer.set(Some(peer));
        Ok((s, peer))
    }

    /// Shuts the connection down: the peer reads the end of the stream.
    ///
    /// # Errors
    ///
    /// [`Status::NotConnected`].
    pub fn shutdown(&self) -> Result<()> {
        let sock = self.port;
        self.simple(|req| Request::Shutdown { req, sock }).map(drop)
    }

    /// Messages waiting on the client side.
    pub fn queued(&self) -> usize {
        self.client
            .state()
            .socks
            .get(&self.port)
            .map_or(0, |q| q.msgs.len())
    }
}

/// Takes the next message of `port` (None: nothing yet).
fn take_message(st: &mut State, port: u32, connection: bool) -> Option<Result<Message>> {
    let q = st.socks.get_mut(&port)?;
    let m = q.msgs.pop_front()?;
    q.front_taken = 0;
    if connection && let Some(e) = m.error {
        // The end-of-connection marker stays, so later reads see it too.
        q.msgs.push_front(m);
        return Some(Err(Error::Disconnected(e)));
    }
    Some(Ok(m))
}

impl Drop for Socket {
    fn drop(&mut self) {
        let sock = self.port;
        self.client.state().socks.remove(&sock);
        // No reply wanted (req 0): closing never fails in a way the caller could act on.
        let _ = self.client.submit(&Request::Close { req: 0, sock });
    }
}
