/* An initialiser on a plain array: libbpf refuses it, and so must the loader (the 8-byte values
 * cannot take the 4-byte map ids an initialiser writes). */
#include "common.h"

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
	__array(values, struct inner_map);
} plain SEC(".maps") = { .values = { [1] = &inner } };

SEC("xdp")
int prog(struct xdp_md *ctx)
{
	return XDP_PASS;
}
