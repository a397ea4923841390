/* Tail calls: a statically initialised prog array, and a program that tail-calls itself until the
 * kernel's limit of 33 stops it. */
#include "common.h"

__u32 chain_runs;

SEC("xdp")
int target(struct xdp_md *ctx)
{
	return XDP_TX;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jump_table SEC(".maps") = { .values = { [1] = (void *)&target } };

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jump_table, 1);
	return XDP_ABORTED; /* reached only when the tail call fails */
}

SEC("xdp")
int empty_slot(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jump_table, 2);
	return XDP_DROP;
}

SEC("xdp")
int chain(struct xdp_md *ctx)
{
	chain_runs++;
	bpf_tail_call(ctx, &jump_table, 3); /* the test puts `chain` itself in slot 3 */
	return XDP_DROP;
}
