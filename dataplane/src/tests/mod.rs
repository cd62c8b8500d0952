//! Tests against the kernel's network stack: real bearers in network namespaces joined by veth
//! pairs, exchanging real TIPC frames. They need root (CAP_NET_ADMIN and CAP_NET_RAW); without
//! it they print why and pass, unless `UTIPC_REQUIRE_NETNS=1` makes that a failure.
//!
//! Every wait is bounded and blocks in poll(2); nothing spins.

use std::time::{Duration, Instant};

use utipc_proto::addr::NodeId;
use utipc_proto::wire::discovery::{DiscType, DiscoveryRepr, MediaAddr, caps};
use utipc_proto::wire::{Flags, Packet};

use crate::bearer::{Bearer, RxMeta};

mod engine;
mod fault;
mod netns;
mod packet;
mod raw;
mod runtime;
mod tap;
mod udp;
mod xdp;

/// How long a test waits for a frame that must arrive.
const ARRIVE: Duration = Duration::from_secs(5);
/// How long a test watches for a frame that must not arrive.
const QUIET: Duration = Duration::from_millis(200);
/// Receive buffer: the largest UDP datagram.
const BUF: usize = 65_536;

/// The network id of the test cluster.
const NET_ID: u32 = 4711;

/// A discovery message as a node with address `node` and media address `media` sends it.
fn discovery(msg_type: DiscType, node: u32, media: MediaAddr) -> Vec<u8> {
    let mut id = [0u8; 16];
    id[..9].copy_from_slice(b"utdp-node");
    id[15] = node as u8;
    let repr = DiscoveryRepr {
        flags: Flags {
            non_seq: true,
            ..Flags::default()
        },
        msg_type,
        capabilities: caps::LINUX_ALL,
        signature: 0x5a57,
        dest_domain: 0,
        prev_node: node,
        net_id: NET_ID,
        media,
        peer_net_hash: 0,
        suggested_addr: 0,
        node_id: Some(NodeId(id)),
        extra_payload: &[],
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("discovery message emits");
    buf
}

/// The media address a received discovery message advertises.
fn advertised(frame: &[u8]) -> MediaAddr {
    let p = Packet::new_checked(frame).expect("a valid TIPC message");
    DiscoveryRepr::parse(&p).expect("a discovery message").media
}

/// The next frame the bearer delivers within `timeout`, waiting in poll(2).
fn recv_within(b: &mut dyn Bearer, timeout: Duration) -> Option<(Vec<u8>, RxMeta)> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; BUF];
    loop {
        if let Some((len, meta)) = b.recv(&mut buf).expect("recv") {
            return Some((buf[..len].to_vec(), meta));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        b.wait_readable(left).expect("poll");
    }
}

/// The next frame, which must arrive within [`ARRIVE`].
#[track_caller]
fn expect_frame(b: &mut dyn Bearer, what: &str) -> (Vec<u8>, RxMeta) {
    recv_within(b, ARRIVE).unwrap_or_else(|| panic!("{what}: nothing arrived within {ARRIVE:?}"))
}

/// Asserts that nothing is delivered within [`QUIET`].
#[track_caller]
fn expect_quiet(b: &mut dyn Bearer, what: &str) {
    if let Some((frame, meta)) = recv_within(b, QUIET) {
        panic!("{what}: unexpected {}-byte frame {meta:?}", frame.len());
    }
}
