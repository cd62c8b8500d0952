// SPDX-License-Identifier: MIT OR GPL-2.0-only
/*
 * A deliberately broken XDP program for the verifier-rejection test in src/program.rs: it reads
 * the packet without a bounds check. The object is committed next to this file; rebuild it from
 * ebpf/ with
 *   clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -fdebug-prefix-map=$PWD=. \
 *     -c bpf/test/reject.bpf.c -o bpf/test/reject.bpf.o
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_tipc_steer(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[12] == 0x88 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
