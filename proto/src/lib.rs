//! utipc-proto: the sans-IO core of utipc, a user-space implementation of TIPC (the Linux
//! cluster IPC protocol, version 2) that is wire-compatible with the Linux kernel's.
//!
//! This crate has no sockets, no threads and no clock reads. It holds:
//!
//! * [`wire`] — zero-copy views and parsed representations of every TIPC message the Linux
//!   kernel sends, proven byte-exact against kernel captures.
//!
//! The protocol state machines (discovery, links, name table) are built on top of [`wire`];
//! see `docs/ARCHITECTURE.md` at the repository root for the plan.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addr;
pub mod bearer;
pub mod link;
pub mod name_distr;
pub mod name_table;
pub mod node;
pub mod rand;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod time;
pub mod topsrv;
pub mod wire;
