/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Shared between the XDP program (tipc_steer.bpf.c) and its Rust loader (src/abi.rs).
 *
 * Every value here is mirrored by hand in src/abi.rs, and a unit test there parses this
 * file and checks each `NAME = value` enumerator and `#define NAME value` against the Rust
 * side. Keep one definition per line in those two forms so that the test can read them.
 */
#ifndef UTIPC_TIPC_STEER_H
#define UTIPC_TIPC_STEER_H

/*
 * Indices into the per-CPU `counters` array (one __u64 per CPU each). Every frame the
 * program sees is counted exactly once, in exactly one of these.
 */
enum tipc_steer_counter {
	/* Redirected into the AF_XDP socket registered for the frame's RX queue. */
	TIPC_STEER_CNT_STEERED = 0,
	/* Not TIPC (or a class that is switched off): passed to the kernel stack. */
	TIPC_STEER_CNT_PASSED = 1,
	/* TIPC over Ethernet with fewer than TIPC_STEER_MIN_TIPC_LEN bytes: dropped. */
	TIPC_STEER_CNT_DROPPED = 2,
	/* TIPC, but no socket is registered for the RX queue: passed to the kernel stack. */
	TIPC_STEER_CNT_NO_SOCKET = 3,
	/* Number of counters (the size of the `counters` map). */
	TIPC_STEER_CNT_MAX = 4,
};

/*
 * Bits of the single __u32 in the `config` array. The map starts zeroed, so every bit
 * switches a class of traffic *off*: a fresh program steers everything it recognises.
 */
enum tipc_steer_config_flag {
	/* Pass ethertype 0x88CA (TIPC over Ethernet) to the kernel instead of steering it. */
	TIPC_STEER_CFG_NO_ETHERNET = 1,
	/* Pass UDP to port 6118 (TIPC over UDP) to the kernel instead of steering it. */
	TIPC_STEER_CFG_NO_UDP = 2,
};

/* ETH_P_TIPC: the ethertype of TIPC over Ethernet. */
#define TIPC_STEER_ETH_P_TIPC 0x88CA
/* The IANA port of TIPC over UDP (the kernel's default for UDP bearers). */
#define TIPC_STEER_UDP_PORT 6118
/* The shortest TIPC header (a 6-word data header); shorter 0x88CA frames are dropped. */
#define TIPC_STEER_MIN_TIPC_LEN 24
/* VLAN tags (802.1Q 0x8100 or 802.1ad 0x88A8, in any order) walked before the ethertype. */
#define TIPC_STEER_MAX_VLAN_TAGS 2
/* IPv6 extension headers (hop-by-hop, routing, destination options, AH) walked before UDP. */
#define TIPC_STEER_MAX_IPV6_EXT_HDRS 4
/* Entries of the XSKMAP `xsks_map`, keyed by RX queue index: queues 0..63 can be steered. */
#define TIPC_STEER_MAX_QUEUES 64

#endif /* UTIPC_TIPC_STEER_H */
