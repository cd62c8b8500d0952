//! utipc shared-memory API: the ring layout shared between `utipcd` and applications, and the
//! client library with TIPC socket semantics.
//!
//! Nothing is implemented here yet; see `docs/ARCHITECTURE.md` for what will live in this crate.
