//! utipc's client library: TIPC sockets for applications, attached to utipcd through
//! shared-memory rings (or to a node inside the process: see `utipc_control::embedded`).
//!
//! ```no_run
//! use utipc_shm_api::{Client, ServiceAddr, SocketKind};
//! # fn main() -> Result<(), utipc_shm_api::Error> {
//! let client = Client::attach()?; // $UTIPC_RUN_DIR or /run/utipc
//! let sock = client.socket(SocketKind::Rdm)?;
//! sock.send_to(ServiceAddr::new(18888, 17), b"hello")?;
//! # Ok(()) }
//! ```
//!
//! Layers, bottom up: [`ring`] (single-producer single-consumer record rings in shared
//! memory), [`segment`] (the sealed memfd holding a client's two rings), [`doorbell`]
//! (eventfd wake-ups), [`records`] (the attachment protocol), [`attach_socket`] (the Unix
//! control socket), then [`Client`], [`Socket`] and [`topology`].

pub mod attach_socket;
mod client;
pub mod doorbell;
mod error;
pub mod records;
pub mod ring;
pub mod segment;
mod socket;
pub mod topology;
mod types;

pub use client::{Client, ClientOptions, IdleMode, Message};
pub use error::{Error, Result};
pub use socket::{DEFAULT_CONNECT_TIMEOUT, Socket};
pub use types::{
    Addr, DestName, ErrorCode, Importance, Scope, ServiceAddr, ServiceRange, SocketAddr, SocketKind,
};
