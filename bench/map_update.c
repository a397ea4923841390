/* Map updates as programs make them, for bench/map_bench: each run updates 64 keys of a map, with
 * the same program in the kernel (BPF_PROG_TEST_RUN, repeat) and in ebpfvm. The keys exist after
 * the first run, so later runs replace values (the common case: counters, flow state). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define KEYS 1024
#define PER_RUN 64

struct value {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct value);
	__uint(max_entries, KEYS);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, struct value);
	__uint(max_entries, KEYS);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} cursor SEC(".maps");

static __always_inline int updates(void *map)
{
	__u32 zero = 0;
	__u32 *c = bpf_map_lookup_elem(&cursor, &zero);
	if (!c)
		return XDP_ABORTED;
	__u32 base = *c;
	*c = base + PER_RUN;
	for (__u32 i = 0; i < PER_RUN; i++) {
		__u32 key = (base + i) * 2654435761u % KEYS;
		struct value v = { .packets = base + i, .bytes = i };
		bpf_map_update_elem(map, &key, &v, BPF_ANY);
	}
	return XDP_PASS;
}

/* Churn: each key deleted and inserted again (flow tables that expire and learn entries). */
static __always_inline int churn(void *map)
{
	__u32 zero = 0;
	__u32 *c = bpf_map_lookup_elem(&cursor, &zero);
	if (!c)
		return XDP_ABORTED;
	__u32 base = *c;
	*c = base + PER_RUN;
	for (__u32 i = 0; i < PER_RUN / 2; i++) {
		__u32 key = (base + i) * 2654435761u % KEYS;
		struct value v = { .packets = base + i, .bytes = i };
		bpf_map_delete_elem(map, &key);
		bpf_map_update_elem(map, &key, &v, BPF_NOEXIST);
	}
	return XDP_PASS;
}

SEC("xdp")
int churn_hash(struct xdp_md *ctx)
{
	return churn(&hash);
}

SEC("xdp")
int update_hash(struct xdp_md *ctx)
{
	return updates(&hash);
}

SEC("xdp")
int update_lru(struct xdp_md *ctx)
{
	return updates(&lru);
}

char LICENSE[] SEC("license") = "GPL";
