//! utipc control plane and tools.
//!
//! This crate holds the parts of utipc that run outside the data path: the
//! command-line tools and the code behind them. [`capture`] reads packet
//! captures (pcap / pcapng) and extracts the TIPC messages in them, which is
//! what `utipc decode` needs before it hands the bytes to the codec in
//! `utipc-proto`.

pub mod attach;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod embedded;
pub mod messaging;
pub mod mgmt;
pub mod mgmt_client;
pub mod node_setup;
pub mod service;
pub mod xdp_bearer;
