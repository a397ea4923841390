/* Loops too long for the verifier to unroll within its budget, which it summarises (issue 17,
 * shape I): a hash over the packet's length times 4 rounds (up to 4092, known only at run
 * time), and a countdown of a constant 5000 (the verifier tries summarising past 256 rounds). Each leaves its result in `out` so that the tests
 * can compare every engine's with the same loop computed in C. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} out SEC(".maps");

static __always_inline void put(__u32 slot, __u64 v)
{
	__u64 *p = bpf_map_lookup_elem(&out, &slot);
	if (p)
		*p = v;
}

SEC("xdp")
int length_rounds(struct xdp_md *ctx)
{
	__u32 n = ((ctx->data_end - ctx->data) & 0x3ff) * 4;
	__u64 acc = 5381;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < n; i++)
		acc = acc * 33 + i;
	put(0, acc);
	return XDP_PASS;
}

SEC("xdp")
int countdown(struct xdp_md *ctx)
{
	__u64 acc = ctx->rx_queue_index;
#pragma clang loop unroll(disable)
	for (__u64 n = 5000; n != 0; n--)
		acc ^= (acc << 7) + n;
	put(1, acc);
	return XDP_DROP;
}
