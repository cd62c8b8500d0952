//! utipc dataplane: the IO shell around the sans-IO TIPC core in `utipc-proto`.
//!
//! This crate owns the sockets and the threads:
//!
//! * [`bearer::Bearer`] — the one trait every bearer implements: non-blocking, batch-friendly
//!   send and receive of whole TIPC messages, readiness through a file descriptor, counters
//!   and rate-limited error reports;
//! * [`bearer::udp::UdpBearer`] — TIPC over UDP (IPv4/IPv6, multicast or replicast), the
//!   unprivileged default;
//! * [`bearer::packet::PacketBearer`] — TIPC over Ethernet through AF_PACKET;
//! * [`bearer::xdp::XdpBearer`] — TIPC over Ethernet through AF_XDP rings (the fast path; the
//!   `utipc-ebpf` steering program puts its socket in the XSKMAP);
//! * [`bearer::pcap_tap::PcapTap`] and [`bearer::fault::FaultInjector`] — wrappers that
//!   capture any bearer's frames to pcap, or drop/duplicate/reorder/delay them from a seed;
//! * [`runtime::NodeRuntime`] — one node and its bearers, one run-to-completion cycle at a time;
//! * [`engine`] — agents, idle strategies (spin, backoff, blocking) and threading modes
//!   (dedicated, shared, invoker), with CPU pinning;
//! * [`ether`] and [`pcap`] — the Ethernet framing and the pcap file format they share.
//!
//! `unsafe` code lives only in the private `sys` modules (`sys` and `bearer::xdp::sys`, and
//! one `setns` in the tests): thin wrappers over the Linux calls std and socket2 lack, each
//! with the reason it is sound.
#![deny(missing_docs)]

pub mod bearer;
pub mod engine;
pub mod ether;
pub mod pcap;
pub mod runtime;
mod sys;

#[cfg(test)]
mod tests;
