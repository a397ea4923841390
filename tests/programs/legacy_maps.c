/* Maps declared the pre-BTF way: struct bpf_map_def in SEC("maps"), as libbpf 0.x loaded them. */
#include "common.h"

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") pkt_count = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 2,
};

struct bpf_map_def SEC("maps") seen = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 16,
};

SEC("xdp_legacy")
int count_legacy(struct xdp_md *ctx)
{
	__u32 k = 1, len = ctx->data_end - ctx->data;
	__u64 *c = bpf_map_lookup_elem(&pkt_count, &k);
	if (c)
		*c += 1;
	bpf_map_update_elem(&seen, &len, &k, BPF_ANY);
	return XDP_PASS;
}
