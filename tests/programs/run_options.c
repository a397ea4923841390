/* For ubpf-run's options that shape what a program sees: xdp_md's ingress_ifindex and
 * rx_queue_index (--ifindex, --rxq), bpf_get_prandom_u32 (--seed), and a program in a section
 * whose name tells no type (--section, --type). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} seen SEC(".maps");

/* Records the context's interface and queue; drops what arrives on interface 7, queue 3. */
SEC("xdp")
int by_ctx(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 v = (__u64)ctx->ingress_ifindex << 32 | ctx->rx_queue_index;

	bpf_map_update_elem(&seen, &k, &v, BPF_ANY);
	return ctx->ingress_ifindex == 7 && ctx->rx_queue_index == 3 ? XDP_DROP : XDP_PASS;
}

/* Sums random numbers into seen[1] and passes or drops at random. */
SEC("xdp")
int by_random(struct xdp_md *ctx)
{
	__u32 k = 1;
	__u64 *sum = bpf_map_lookup_elem(&seen, &k);

	if (!sum)
		return XDP_ABORTED;
	*sum += bpf_get_prandom_u32();
	return bpf_get_prandom_u32() & 1 ? XDP_PASS : XDP_DROP;
}

SEC("custom/drop")
int custom_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* A value no XDP action has: the kernel counts it as XDP_ABORTED; --ndjson says what it was. */
SEC("xdp")
int unknown_action(struct xdp_md *ctx)
{
	return 7;
}
