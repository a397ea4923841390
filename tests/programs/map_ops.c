/* Map semantics as programs see them: every helper result lands in res[], which the test reads. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 2); } small_hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64); __uint(max_entries, 4); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 2); } lru SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __type(value, __u32); __uint(max_entries, 2); } fifo SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_STACK); __type(value, __u32); __uint(max_entries, 2); } lifo SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 8); } pc_hash SEC(".maps");

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 2);
	__array(values, struct inner_map);
} outer SEC(".maps") = { .values = { [0] = &inner_a, [1] = &inner_b } };

__s64 res[32];

SEC("xdp")
int ops(struct xdp_md *ctx)
{
	__u32 k1 = 1, k2 = 2, k3 = 3, k100 = 100, zero = 0;
	__u64 v = 10, *p;
	__u32 q;

	res[0] = bpf_map_update_elem(&small_hash, &k1, &v, BPF_NOEXIST);   /* 0 */
	res[1] = bpf_map_update_elem(&small_hash, &k1, &v, BPF_NOEXIST);   /* -EEXIST */
	res[2] = bpf_map_update_elem(&small_hash, &k2, &v, BPF_EXIST);     /* -ENOENT */
	res[3] = bpf_map_delete_elem(&small_hash, &k2);                    /* -ENOENT */
	res[4] = bpf_map_update_elem(&small_hash, &k2, &v, BPF_ANY);       /* 0 */
	res[5] = bpf_map_update_elem(&small_hash, &k3, &v, BPF_ANY);       /* -E2BIG: full */
	res[6] = bpf_map_update_elem(&small_hash, &k1, &v, 7);             /* -EINVAL: flags */
	res[7] = bpf_map_delete_elem(&arr, &k1);                           /* -EINVAL: arrays */
	res[8] = bpf_map_update_elem(&arr, &k100, &v, BPF_ANY);            /* -E2BIG: index */
	res[9] = bpf_map_update_elem(&arr, &k1, &v, BPF_NOEXIST);          /* -EEXIST */
	p = bpf_map_lookup_elem(&arr, &k100);
	res[10] = p == 0;                                                  /* 1 */

	/* LRU: 1 and 2 in, touch 1, add 3: 2 is evicted. */
	bpf_map_update_elem(&lru, &k1, &v, BPF_ANY);
	bpf_map_update_elem(&lru, &k2, &v, BPF_ANY);
	bpf_map_lookup_elem(&lru, &k1);
	res[11] = bpf_map_update_elem(&lru, &k3, &v, BPF_ANY);             /* 0 */
	res[12] = bpf_map_lookup_elem(&lru, &k2) == 0;                     /* 1 */
	res[13] = bpf_map_lookup_elem(&lru, &k1) != 0;                     /* 1 */

	/* Queue and stack. */
	q = 1; res[14] = bpf_map_push_elem(&fifo, &q, 0);                  /* 0 */
	q = 2; bpf_map_push_elem(&fifo, &q, 0);
	q = 3; res[15] = bpf_map_push_elem(&fifo, &q, 0);                  /* -E2BIG */
	res[16] = bpf_map_pop_elem(&fifo, &q); res[17] = q;                /* 0, 1 */
	res[18] = bpf_map_peek_elem(&fifo, &q); res[19] = q;               /* 0, 2 */
	q = 7; bpf_map_push_elem(&lifo, &q, 0);
	q = 8; bpf_map_push_elem(&lifo, &q, 0);
	res[20] = bpf_map_pop_elem(&lifo, &q); res[21] = q;                /* 0, 8 */
	bpf_map_pop_elem(&lifo, &q);
	res[22] = bpf_map_pop_elem(&lifo, &q);                             /* -ENOENT */

	/* Per-CPU: this worker's slot only. */
	p = bpf_map_lookup_elem(&pc_hash, &k1);
	if (p)
		*p += 1;
	else
		bpf_map_update_elem(&pc_hash, &k1, &v, BPF_NOEXIST);

	/* Map in map: outer[1] is inner_b; write through it. */
	void *inner = bpf_map_lookup_elem(&outer, &k1);
	if (inner) {
		p = bpf_map_lookup_elem(inner, &zero);
		if (p)
			*p = 4242;
		res[23] = p != 0;                                          /* 1 */
	}
	return XDP_PASS;
}
