//! utipc benchmarks: `utipc-bench` and its load generators, measured against kernel UDP, TCP and
//! Unix sockets in the same run.
//!
//! Nothing is implemented here yet; see `docs/ARCHITECTURE.md` for what will live in this crate.
