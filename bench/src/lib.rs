//! utipc benchmarks: TIPC datagrams over the AF_XDP, AF_PACKET and UDP bearers against raw
//! AF_XDP and kernel UDP/TCP, between two network namespaces joined by a veth pair.
//!
//! The binary `utipc-bench` sets the namespaces up, runs every transport at every size on the
//! same two pinned cores (closed-loop RTT, one-way throughput, open-loop latency), and writes a
//! markdown table, JSON and a PNG chart. `utipc-bench intra` ([`intra`]) measures the
//! intra-node round trip between two applications through utipcd against Unix datagram
//! sockets and kernel UDP on loopback. See docs/BENCHMARKS.md.

pub mod intra;
pub mod netns;
pub mod png;
pub mod report;
pub mod run;
pub mod stats;
pub mod transport;
