// SPDX-License-Identifier: MIT OR GPL-2.0-only
/*
 * utipc XDP steering program: sends TIPC frames to the AF_XDP socket of their RX queue and
 * everything else to the kernel.
 *
 * Read first: shared/spec/tipc-wire.md §4.1 (bearers and media) and ebpf/src/lib.rs.
 *
 * Steered (XDP_REDIRECT into `xsks_map[rx_queue_index]`):
 *   - ethertype 0x88CA (TIPC over Ethernet), untagged or behind up to two VLAN tags
 *     (802.1Q 0x8100 and/or 802.1ad 0x88A8, so QinQ too), with at least 24 bytes of TIPC;
 *   - UDP to port 6118 (TIPC over UDP) over IPv4 (any IHL) or IPv6 (after up to four
 *     hop-by-hop / routing / destination-options / AH extension headers), also behind VLAN tags.
 * Dropped: a 0x88CA frame with fewer than 24 bytes after the Ethernet/VLAN headers (a runt:
 *   no TIPC header fits, and the kernel's own TIPC would discard it too).
 * Passed to the kernel (XDP_PASS), everything else, in particular:
 *   - IP fragments, first or not. A non-first fragment has no UDP header to match, and
 *     steering only the first one would split a datagram between the socket and the kernel;
 *     the kernel reassembles them instead. The UDP bearer's default MTU is 14000 bytes on IPv4,
 *     so its packets are normally IP-fragmented: over AF_XDP the UDP bearer would need its own
 *     reassembly. utipc's AF_XDP bearer is Ethernet-only, and its UDP bearer stays on kernel
 *     sockets (switch UDP steering off, TIPC_STEER_CFG_NO_UDP, when both share an interface).
 *   - IPv6 with a fragment header (even an atomic one), ESP, more than four extension
 *     headers, or any other next header;
 *   - truncated or malformed headers (the kernel drops and counts those itself);
 *   - more than two VLAN tags;
 *   - TIPC whose RX queue has no socket registered (counted as "no socket").
 *
 * Every path ends in a defined action and one counter (see tipc_steer.h); nothing returns
 * XDP_ABORTED. All packet reads are bounds-checked against data_end right before use.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tipc_steer.h"

/* Kernel-internal (include/net/ip.h), not in the uapi headers. */
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* The first two bytes of every IPv6 extension header that uses the TLV layout. */
struct ipv6_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* AF_XDP sockets, keyed by RX queue index; filled in from user space. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, TIPC_STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/* enum tipc_steer_counter -> number of frames, per CPU (user space sums over CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TIPC_STEER_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* config[0]: enum tipc_steer_config_flag bits (zero = steer everything recognised). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} config SEC(".maps");

/* What the classifier decided; act() turns it into an XDP action and a counter. */
enum verdict {
	VERDICT_PASS,
	VERDICT_STEER,
	VERDICT_DROP,
};

static __always_inline void count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &counter);

	/* Per-CPU slot: no other CPU writes it, so a plain increment is exact. */
	if (value)
		*value += 1;
}

static __always_inline __u32 config_flags(void)
{
	__u32 key = 0;
	__u32 *flags = bpf_map_lookup_elem(&config, &key);

	/* An array lookup of index 0 cannot fail; if it did, behave like a fresh map. */
	return flags ? *flags : 0;
}

/* A UDP header at `l4`: steer if it goes to the TIPC port. */
static __always_inline enum verdict classify_udp(void *l4, void *data_end)
{
	struct udphdr *udp = l4;

	if ((void *)(udp + 1) > data_end)
		return VERDICT_PASS;
	return udp->dest == bpf_htons(TIPC_STEER_UDP_PORT) ? VERDICT_STEER : VERDICT_PASS;
}

static __always_inline enum verdict classify_ipv4(void *l3, void *data_end)
{
	struct iphdr *ip = l3;

	if ((void *)(ip + 1) > data_end)
		return VERDICT_PASS;
	if (ip->version != 4 || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
		return VERDICT_PASS;
	/* Any fragment goes to the kernel for reassembly (see the file comment). */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return VERDICT_PASS;
	/* ihl is 5..15, so the UDP header starts 20..60 bytes in. */
	return classify_udp(l3 + ip->ihl * 4, data_end);
}

static __always_inline enum verdict classify_ipv6(void *l3, void *data_end)
{
	struct ipv6hdr *ip6 = l3;
	void *cursor;
	__u8 next;

	if ((void *)(ip6 + 1) > data_end)
		return VERDICT_PASS;
	if (ip6->version != 6)
		return VERDICT_PASS;
	next = ip6->nexthdr;
	cursor = ip6 + 1;

#pragma unroll
	for (int i = 0; i < TIPC_STEER_MAX_IPV6_EXT_HDRS; i++) {
		struct ipv6_ext_hdr *ext = cursor;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
		    next != IPPROTO_DSTOPTS && next != IPPROTO_AH)
			break;
		if ((void *)(ext + 1) > data_end)
			return VERDICT_PASS;
		/* AH counts its length in 4-byte units minus 2, the others in 8-byte units minus 1. */
		if (next == IPPROTO_AH)
			cursor += ((__u32)ext->hdrlen + 2) * 4;
		else
			cursor += ((__u32)ext->hdrlen + 1) * 8;
		next = ext->nexthdr;
	}
	/* A fragment header (IPPROTO_FRAGMENT), ESP, too many extension headers, or not UDP. */
	if (next != IPPROTO_UDP)
		return VERDICT_PASS;
	return classify_udp(cursor, data_end);
}

/* The classifier: what to do with the frame in `ctx`, given the config flags. */
static __always_inline enum verdict classify(struct xdp_md *ctx, __u32 flags)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *cursor;
	__be16 proto;

	/* Shorter than an Ethernet header: not ours to judge. */
	if ((void *)(eth + 1) > data_end)
		return VERDICT_PASS;
	proto = eth->h_proto;
	cursor = eth + 1;

#pragma unroll
	for (int i = 0; i < TIPC_STEER_MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vlan = cursor;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vlan + 1) > data_end)
			return VERDICT_PASS;
		proto = vlan->encapsulated_proto;
		cursor = vlan + 1;
	}

	if (proto == bpf_htons(TIPC_STEER_ETH_P_TIPC)) {
		if (flags & TIPC_STEER_CFG_NO_ETHERNET)
			return VERDICT_PASS;
		if (cursor + TIPC_STEER_MIN_TIPC_LEN > data_end)
			return VERDICT_DROP;
		return VERDICT_STEER;
	}
	if (flags & TIPC_STEER_CFG_NO_UDP)
		return VERDICT_PASS;
	if (proto == bpf_htons(ETH_P_IP))
		return classify_ipv4(cursor, data_end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return classify_ipv6(cursor, data_end);
	/* Not TIPC, or a third VLAN tag. */
	return VERDICT_PASS;
}

/* Turns a verdict into an XDP action, counting the frame once. */
static __always_inline int act(struct xdp_md *ctx, enum verdict verdict)
{
	switch (verdict) {
	case VERDICT_STEER:
		/*
		 * The XDP_PASS in the flags is the action returned when the map has no socket
		 * for this queue (or the queue index is beyond the map): the frame then goes to
		 * the kernel, and is counted as "no socket".
		 */
		if (bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS) == XDP_REDIRECT) {
			count(TIPC_STEER_CNT_STEERED);
			return XDP_REDIRECT;
		}
		count(TIPC_STEER_CNT_NO_SOCKET);
		return XDP_PASS;
	case VERDICT_DROP:
		count(TIPC_STEER_CNT_DROPPED);
		return XDP_DROP;
	case VERDICT_PASS:
	default:
		count(TIPC_STEER_CNT_PASSED);
		return XDP_PASS;
	}
}

SEC("xdp")
int xdp_tipc_steer(struct xdp_md *ctx)
{
	return act(ctx, classify(ctx, config_flags()));
}

/*
 * The kernel only lets programs with a GPL-compatible licence string use GPL-only helpers
 * and kfuncs (this program needs none today, but e.g. the XDP RX-metadata kfuncs for VLAN
 * offload are GPL-only). "Dual MIT/GPL" is one of the strings the kernel accepts as
 * GPL-compatible, and it keeps this file under MIT for the rest of utipc, which is
 * MIT OR Apache-2.0: users may take the program under MIT.
 */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
