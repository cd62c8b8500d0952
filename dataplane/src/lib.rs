//! utipc dataplane: bearers (UDP, AF_PACKET, AF_XDP, ibverbs), the poll-mode engine and the
//! socket demultiplexer that sit around the sans-IO core in `utipc-proto`.
//!
//! Nothing is implemented here yet; see `docs/ARCHITECTURE.md` for what will live in this crate.
