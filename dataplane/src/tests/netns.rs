//! The dataplane tests' namespaces and veth pair, built by `utipc-testkit`.
//!
//! A bearer is opened inside a namespace by a short-lived thread ([`Netns::run`]): a socket
//! belongs to the namespace it was created in for its whole life, so the test thread can then
//! drive bearers of several namespaces side by side. Names are `utdp-<pid>-<n>-<tag>`.

pub(crate) use utipc_testkit::{Netns, Pair, netns_available as available};
use utipc_testkit::{Veth, VethEnd};

const PREFIX: &str = "utdp-";

/// IPv4 addresses of the pair.
pub(crate) const A4: &str = "198.18.0.1";
pub(crate) const B4: &str = "198.18.0.2";
/// IPv6 addresses of the pair.
pub(crate) const A6: &str = "fd00:198:18::1";
pub(crate) const B6: &str = "fd00:198:18::2";
/// The veth interface name on both sides.
pub(crate) const VETH: &str = "veth0";

/// A fresh namespace `utdp-<pid>-<n>-<tag>` with its loopback up.
pub(crate) fn netns(tag: &str) -> Netns {
    Netns::fresh(PREFIX, tag).unwrap_or_else(|e| panic!("{e}"))
}

/// Two namespaces joined by a veth pair named `veth0` on both sides, up, with 198.18.0.1/24 and
/// fd00:198:18::1/64 in `a` and .2 / ::2 in `b` (IPv6 without duplicate address detection, so
/// the addresses work at once); `mtu_a`/`mtu_b` change the two ends' MTUs when given.
pub(crate) fn veth_pair(mtu_a: Option<u32>, mtu_b: Option<u32>) -> Pair {
    let end = |v4: &str, v6: &str, mtu| VethEnd {
        addrs: vec![format!("{v4}/24"), format!("{v6}/64")],
        mtu,
        ..VethEnd::default()
    };
    Veth {
        ifname: VETH.into(),
        a: end(A4, A6, mtu_a),
        b: end(B4, B6, mtu_b),
    }
    .create(PREFIX)
    .unwrap_or_else(|e| panic!("{e}"))
}
