//! utipc dataplane: the IO shell around the sans-IO TIPC core in `utipc-proto`.
//!
//! This crate owns the sockets. Today it holds the bearer IO layer:
//!
//! * [`bearer::Bearer`] — the one trait every bearer implements: non-blocking, batch-friendly
//!   send and receive of whole TIPC messages, readiness through a file descriptor, counters
//!   and rate-limited error reports;
//! * [`bearer::udp::UdpBearer`] — TIPC over UDP (IPv4/IPv6, multicast or replicast), the
//!   unprivileged default;
//! * [`bearer::packet::PacketBearer`] — TIPC over Ethernet through AF_PACKET;
//! * [`bearer::pcap_tap::PcapTap`] — a wrapper that captures any bearer's frames to pcap;
//! * [`ether`] and [`pcap`] — the Ethernet framing and the pcap file format they share.
//!
//! The AF_XDP and ibverbs bearers, the poll-mode engine and the socket demultiplexer will join
//! them (see `docs/ARCHITECTURE.md`).
//!
//! `unsafe` code lives only in the private `sys` module (and one `setns` in the tests): thin
//! wrappers over the Linux calls std and socket2 lack (AF_PACKET, interface ioctls,
//! `recvmsg`/`sendmsg` with packet info, `getifaddrs`, `poll`), each with the reason it is
//! sound.
#![deny(missing_docs)]

pub mod bearer;
pub mod ether;
pub mod pcap;
pub mod runtime;
mod sys;

#[cfg(test)]
mod tests;
