/* A map of maps declared as tc's examples declare one (struct bpf_elf_map in SEC("maps")): the
 * outer map names its inner maps' id in inner_id, and each inner map says in inner_idx which slot
 * of the outer map it goes into when the object is loaded. */
#include "common.h"

struct bpf_elf_map SEC("maps") map_inner = {
	.type = BPF_MAP_TYPE_ARRAY,
	.size_key = sizeof(__u32),
	.size_value = sizeof(__u32),
	.max_elem = 1,
	.id = 42,
	.inner_idx = 1,
};

struct bpf_elf_map SEC("maps") map_outer = {
	.type = BPF_MAP_TYPE_ARRAY_OF_MAPS,
	.size_key = sizeof(__u32),
	.size_value = sizeof(__u32),
	.max_elem = 2,
	.inner_id = 42,
};

SEC("xdp")
int through_outer(struct xdp_md *ctx)
{
	__u32 one = 1, zero = 0;
	void *inner = bpf_map_lookup_elem(&map_outer, &one);
	if (!inner)
		return XDP_ABORTED;
	__u32 *v = bpf_map_lookup_elem(inner, &zero);
	if (!v)
		return XDP_ABORTED;
	*v += 1;
	return XDP_PASS;
}
