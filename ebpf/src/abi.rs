//! The program's interface to user space: map names, counter indices, config bits and the
//! constants it matches on. Mirrors `bpf/tipc_steer.h` by hand; the unit test below parses that
//! header and checks every value against this file.

/// Name of the program (the C entry function) in the object.
pub(crate) const PROGRAM_NAME: &str = "xdp_tipc_steer";
/// Name of the XSKMAP (RX queue index -> AF_XDP socket).
pub(crate) const XSKS_MAP: &str = "xsks_map";
/// Name of the per-CPU counter array (indexed by [`Counter`]).
pub(crate) const COUNTERS_MAP: &str = "counters";
/// Name of the one-entry config array ([`ConfigFlag`] bits).
pub(crate) const CONFIG_MAP: &str = "config";

/// A counter of the program: an index into its per-CPU `counters` array
/// (`enum tipc_steer_counter`). Every frame is counted exactly once, in one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Counter {
    /// Redirected into the AF_XDP socket registered for the frame's RX queue.
    Steered = 0,
    /// Not TIPC (or a class switched off by [`crate::SteerConfig`]): passed to the kernel.
    Passed = 1,
    /// A runt: ethertype 0x88CA with fewer than [`MIN_TIPC_LEN`] bytes of TIPC. Dropped.
    Dropped = 2,
    /// TIPC, but no socket is registered for the RX queue: passed to the kernel.
    NoSocket = 3,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Self; COUNTER_COUNT as usize] =
        [Self::Steered, Self::Passed, Self::Dropped, Self::NoSocket];
}

/// Number of counters (`TIPC_STEER_CNT_MAX`, the size of the `counters` map).
pub const COUNTER_COUNT: u32 = 4;

/// Bits of the program's config word (`enum tipc_steer_config_flag`). The map starts zeroed, so
/// each bit switches a class of traffic off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub(crate) enum ConfigFlag {
    /// Pass ethertype 0x88CA to the kernel instead of steering it.
    NoEthernet = 1,
    /// Pass UDP to port 6118 to the kernel instead of steering it.
    NoUdp = 2,
}

/// The ethertype of TIPC over Ethernet (`ETH_P_TIPC`).
pub const ETH_P_TIPC: u16 = 0x88CA;
/// The UDP port of TIPC over UDP.
pub const TIPC_UDP_PORT: u16 = 6118;
/// The shortest TIPC header; 0x88CA frames with fewer bytes after the Ethernet (and VLAN)
/// headers are dropped.
pub const MIN_TIPC_LEN: usize = 24;
/// VLAN tags (802.1Q and/or 802.1ad) the program looks through.
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers (hop-by-hop, routing, destination options, AH) the program walks
/// before it gives up and passes the frame.
pub const MAX_IPV6_EXT_HDRS: usize = 4;
/// Size of the XSKMAP: sockets can be registered for RX queues `0..MAX_QUEUES`.
pub const MAX_QUEUES: u32 = 64;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const HEADER: &str = include_str!("../bpf/tipc_steer.h");

    /// `NAME = value,` enumerators and `#define NAME value` lines of the header.
    fn header_values() -> BTreeMap<String, u64> {
        let mut values = BTreeMap::new();
        for line in HEADER.lines().map(str::trim) {
            let (name, value) = if let Some(rest) = line.strip_prefix("#define ") {
                let mut words = rest.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(name), Some(value)) => (name, value),
                    _ => continue,
                }
            } else if let Some((name, value)) = line.split_once(" = ") {
                (name, value.trim_end_matches(','))
            } else {
                continue;
            };
            let parsed = match value.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => value.parse(),
            };
            if let Ok(v) = parsed {
                values.insert(name.to_owned(), v);
            }
        }
        values
    }

    #[test]
    fn header_matches_rust() {
        let expected: BTreeMap<String, u64> = [
            ("TIPC_STEER_CNT_STEERED", Counter::Steered as u64),
            ("TIPC_STEER_CNT_PASSED", Counter::Passed as u64),
            ("TIPC_STEER_CNT_DROPPED", Counter::Dropped as u64),
            ("TIPC_STEER_CNT_NO_SOCKET", Counter::NoSocket as u64),
            ("TIPC_STEER_CNT_MAX", u64::from(COUNTER_COUNT)),
            ("TIPC_STEER_CFG_NO_ETHERNET", ConfigFlag::NoEthernet as u64),
            ("TIPC_STEER_CFG_NO_UDP", ConfigFlag::NoUdp as u64),
            ("TIPC_STEER_ETH_P_TIPC", u64::from(ETH_P_TIPC)),
            ("TIPC_STEER_UDP_PORT", u64::from(TIPC_UDP_PORT)),
            ("TIPC_STEER_MIN_TIPC_LEN", MIN_TIPC_LEN as u64),
            ("TIPC_STEER_MAX_VLAN_TAGS", MAX_VLAN_TAGS as u64),
            ("TIPC_STEER_MAX_IPV6_EXT_HDRS", MAX_IPV6_EXT_HDRS as u64),
            ("TIPC_STEER_MAX_QUEUES", u64::from(MAX_QUEUES)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut found = header_values();
        found.remove("UTIPC_TIPC_STEER_H");
        assert_eq!(
            found, expected,
            "bpf/tipc_steer.h and src/abi.rs disagree (left: header, right: Rust)"
        );
    }

    #[test]
    fn counters_are_dense() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
