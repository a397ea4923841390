/* An iproute2 map of maps whose inner_id names no map: the object must fail to open, naming it. */
#include "common.h"

struct bpf_elf_map SEC("maps") lonely_outer = {
	.type = BPF_MAP_TYPE_ARRAY_OF_MAPS,
	.size_key = sizeof(__u32),
	.size_value = sizeof(__u32),
	.max_elem = 2,
	.inner_id = 7,
};

SEC("xdp")
int nothing(struct xdp_md *ctx)
{
	return XDP_PASS;
}
