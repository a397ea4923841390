// The program fuzz/map_growth_fuzz.cpp runs: every four bytes of the packet are one operation on
// one of its maps (update with each flag, delete, lookup and write through, push, pop, ring and
// perf output), so the fuzzer's packets fill, churn and overflow every growing map kind. Each
// operation's result is counted in `results`, so a helper that misbehaves shows in the maps.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 48);
	__type(key, __u32);
	__type(value, __u64);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 24);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} lru_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 12);
	__type(value, __u64);
} queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 12);
	__type(value, __u32);
} stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 32);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf SEC(".maps");

#define OPS 16
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OPS * 2);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __always_inline void count(__u32 op, long err)
{
	__u32 slot = op * 2 + (err != 0);
	__u64 *n = bpf_map_lookup_elem(&results, &slot);
	if (n)
		*n += 1;
}

static __always_inline long step(struct xdp_md *ctx, __u8 op, __u8 a, __u8 b, __u8 c)
{
	__u32 key = a % 64;
	__u64 val = (__u64)b << 8 | c;
	__u64 flags = c % 3; /* BPF_ANY, BPF_NOEXIST, BPF_EXIST */
	__u8 bytes[64] = {};
	bytes[0] = b;
	bytes[63] = c;

	switch (op) {
	case 0: return bpf_map_update_elem(&hash, &key, &val, flags);
	case 1: return bpf_map_delete_elem(&hash, &key);
	case 2: {
		__u64 *v = bpf_map_lookup_elem(&hash, &key);
		if (!v)
			return -1;
		*v += val;
		return 0;
	}
	case 3: return bpf_map_update_elem(&lru, &key, &val, flags);
	case 4: {
		__u64 *v = bpf_map_lookup_elem(&lru, &key);
		if (!v)
			return -1;
		*v ^= val;
		return 0;
	}
	case 5: {
		__u32 v32 = (__u32)val;
		return bpf_map_update_elem(&percpu, &key, &v32, flags);
	}
	case 6: return bpf_map_update_elem(&lru_percpu, &key, &val, flags);
	case 7: return bpf_map_push_elem(&queue, &val, c & 1 ? BPF_EXIST : 0);
	case 8: {
		__u64 out = 0;
		long r = bpf_map_pop_elem(&queue, &out);
		return r ? r : (long)(out & 1);
	}
	case 9: {
		__u32 v32 = (__u32)val;
		return bpf_map_push_elem(&stack, &v32, c & 1 ? BPF_EXIST : 0);
	}
	case 10: {
		__u32 out = 0;
		long r = bpf_map_pop_elem(&stack, &out);
		return r ? r : (long)(out & 1);
	}
	case 11: {
		struct lpm_key k = {.prefixlen = c % 33, .addr = {a, b, a ^ b, c}};
		__u32 v32 = (__u32)val;
		return bpf_map_update_elem(&lpm, &k, &v32, flags);
	}
	case 12: {
		struct lpm_key k = {.prefixlen = c % 33, .addr = {a, b, a ^ b, c}};
		return bpf_map_delete_elem(&lpm, &k);
	}
	case 13: {
		struct lpm_key k = {.prefixlen = 32, .addr = {a, b, a ^ b, c}};
		return bpf_map_lookup_elem(&lpm, &k) ? 0 : -1;
	}
	case 14:
		if (c & 1)
			return bpf_ringbuf_output(&ring, bytes, sizeof(bytes), 0);
		return bpf_ringbuf_output(&ring, bytes, 8, 0);
	default:
		if (c & 1)
			return bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, bytes, sizeof(bytes));
		return bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, bytes, 0);
	}
}

SEC("xdp")
int fill(struct xdp_md *ctx)
{
	for (int i = 0; i < 64; i++) {
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;
		__u8 *p = data + i * 4;
		if ((void *)(p + 4) > data_end)
			break;
		__u8 op = p[0] % OPS;
		count(op, step(ctx, op, p[1], p[2], p[3]));
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
