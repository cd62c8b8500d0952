//! The privilege check, namespaces and veth pair of these tests, built by `utipc-testkit`.
//! Names are `utebpf-<pid>-<n>-<tag>`.

use std::net::Ipv4Addr;

use utipc_testkit::{Cap, Veth, VethEnd};
pub(crate) use utipc_testkit::{Netns, Pair};

const PREFIX: &str = "utebpf-";

/// The veth interface name on both sides of a [`Pair`].
pub(crate) const VETH: &str = "veth0";
/// Addresses of the pair: `a` is 198.18.0.1 with MAC `A_MAC`, `b` is .2 with `B_MAC`.
pub(crate) const A4: [u8; 4] = [198, 18, 0, 1];
pub(crate) const B4: [u8; 4] = [198, 18, 0, 2];
pub(crate) const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub(crate) const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// Whether `test` may run: it needs root (the capabilities to load XDP programs and create
/// AF_XDP sockets, and `ip` for namespaces). Otherwise prints why and returns false, or panics
/// when `UTIPC_REQUIRE_NETNS=1`.
pub(crate) fn privileged(test: &str) -> bool {
    utipc_testkit::privileged(test, &[Cap::BPF, Cap::PERFMON, Cap::SYS_ADMIN])
}

/// A fresh namespace `utebpf-<pid>-<n>-<tag>` with its loopback up.
pub(crate) fn netns(tag: &str) -> Netns {
    Netns::fresh(PREFIX, tag).unwrap_or_else(|e| panic!("{e}"))
}

/// Two namespaces joined by a veth pair named `veth0` on both sides, up, with fixed MACs,
/// static neighbour entries (no ARP needed) and IPv6 off (no neighbour discovery noise).
pub(crate) fn veth_pair() -> Pair {
    let end = |own: [u8; 4], mac, peer: [u8; 4], peer_mac| VethEnd {
        addrs: vec![format!("{}/24", Ipv4Addr::from(own))],
        mac: Some(mac),
        neighbours: vec![(Ipv4Addr::from(peer).to_string(), peer_mac)],
        no_ipv6: true,
        ..VethEnd::default()
    };
    Veth {
        ifname: VETH.into(),
        a: end(A4, A_MAC, B4, B_MAC),
        b: end(B4, B_MAC, A4, A_MAC),
    }
    .create(PREFIX)
    .unwrap_or_else(|e| panic!("{e}"))
}
