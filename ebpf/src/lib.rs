//! utipc XDP steering: the C program that steers TIPC frames (ethertype 0x88CA, UDP port 6118)
//! into AF_XDP sockets, and its Rust loader.
//!
//! Nothing is implemented here yet; see `docs/ARCHITECTURE.md` for what will live in this crate.
