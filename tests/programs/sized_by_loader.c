/* A map declared with max_entries 0, sized by its loader (as xdp-bench and xdp-trafficgen size
 * theirs): it loads once the loader sets its size. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

__u32 slot = 3;

SEC("xdp")
int count(struct xdp_md *ctx)
{
	__u32 k = slot;
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (v)
		*v += 1;
	return XDP_PASS;
}
