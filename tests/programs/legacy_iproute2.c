/* Maps declared as iproute2 (tc) declares them: struct bpf_elf_map in SEC("maps"). */
#include "common.h"

struct bpf_elf_map SEC("maps") tc_counter = {
	.type = BPF_MAP_TYPE_ARRAY,
	.size_key = sizeof(__u32),
	.size_value = sizeof(__u64),
	.max_elem = 4,
	.pinning = 2,
};

SEC("classifier")
int count_tc(void *ctx)
{
	__u32 k = 3;
	__u64 *c = bpf_map_lookup_elem(&tc_counter, &k);
	if (c)
		*c += 5;
	return 0;
}
