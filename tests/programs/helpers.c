/* Helpers: printk, PRNG, CPU id, checksums, FIB, loops, map iteration, spin locks, redirects,
 * ring buffer and perf output. Results go to res[]. */
#include "common.h"

struct val_lock {
	struct bpf_spin_lock lock;
	__u32 count;
};

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, struct val_lock); __uint(max_entries, 1); } locked SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, __u32); __type(value, __u64); __uint(max_entries, 16); } sums SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __type(key, __u32); __type(value, __u32); __uint(max_entries, 8); } ports SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, sizeof(__u32)); __uint(value_size, sizeof(__u32)); } perf SEC(".maps");

__s64 res[32];

struct loop_ctx {
	__u64 sum;
};

static long add_index(__u32 i, struct loop_ctx *c)
{
	c->sum += i;
	return i == 9 ? 1 : 0; /* stop after index 9 */
}

static long sum_values(void *map, __u32 *key, __u64 *val, struct loop_ctx *c)
{
	c->sum += *val;
	return 0;
}

SEC("xdp")
int misc(struct xdp_md *ctx)
{
	res[0] = bpf_printk("hello %d %s", 42, "xdp");
	res[1] = bpf_get_prandom_u32();
	res[2] = bpf_get_prandom_u32();
	res[3] = bpf_get_smp_processor_id();

	__be32 from[1] = { bpf_htonl(0x0a000001) }, to[1] = { bpf_htonl(0x0a000002) };
	res[4] = bpf_csum_diff(from, 4, to, 4, 0);
	res[5] = bpf_csum_diff(from, 3, to, 4, 0); /* not a multiple of 4: -EINVAL */

	struct bpf_fib_lookup fib = {};
	fib.family = 2; /* AF_INET */
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_dst = bpf_htonl(0xc0a80105); /* 192.168.1.5 */
	res[6] = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	res[7] = fib.ifindex;
	res[8] = fib.dmac[5];
	fib.ipv4_dst = bpf_htonl(0x08080808);
	res[9] = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0); /* no route: NOT_FWDED (4) */

	struct loop_ctx lc = {};
	res[10] = bpf_loop(100, add_index, &lc, 0); /* 10 iterations */
	res[11] = lc.sum;                           /* 0 + ... + 9 = 45 */

	lc.sum = 0;
	res[12] = bpf_for_each_map_elem(&sums, sum_values, &lc, 0);
	res[13] = lc.sum;

	__u32 zero = 0;
	struct val_lock *vl = bpf_map_lookup_elem(&locked, &zero);
	if (vl) {
		bpf_spin_lock(&vl->lock);
		vl->count++;
		bpf_spin_unlock(&vl->lock);
		res[14] = vl->count;
	}

	__u64 *rec = bpf_ringbuf_reserve(&events, 16, 0);
	if (rec) {
		rec[0] = 0xabcdef;
		rec[1] = 7;
		bpf_ringbuf_submit(rec, 0);
	}
	rec = bpf_ringbuf_reserve(&events, 8, 0);
	if (rec)
		bpf_ringbuf_discard(rec, 0);
	__u32 word = 0x12345678;
	res[15] = bpf_ringbuf_output(&events, &word, sizeof(word), 0);
	rec = bpf_ringbuf_reserve(&events, 8192, 0); /* larger than the ring */
	res[16] = rec == 0;
	if (rec) /* never; without it the reference would leak, and the verifier refuses that */
		bpf_ringbuf_discard(rec, 0);

	__u64 sample = 0x1122;
	res[17] = bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU | (4ULL << 32), &sample, sizeof(sample));

	__u64 t1 = bpf_ktime_get_ns(), t2 = bpf_ktime_get_ns();
	res[18] = t1 > 0 && t2 >= t1;
	res[19] = bpf_ktime_get_boot_ns() >= t1; /* boot time includes suspend: never behind */
	res[20] = bpf_ktime_get_coarse_ns() > 0;
	res[21] = bpf_printk("%d-%d-%d-%d", 1, 2, 3, 4); /* four arguments: bpf_trace_vprintk */
	return XDP_PASS;
}

SEC("xdp")
int redirect_port(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index; /* the test picks the devmap slot through the rx queue */
	return bpf_redirect_map(&ports, key, XDP_DROP);
}

SEC("xdp")
int redirect_if(struct xdp_md *ctx)
{
	return bpf_redirect(7, 0);
}

/* Records a redirect, then passes: the redirect is not the result's. */
SEC("xdp")
int redirect_then_pass(struct xdp_md *ctx)
{
	bpf_redirect(7, 0);
	return XDP_PASS;
}

/* Returns XDP_REDIRECT without naming a target. */
SEC("xdp")
int redirect_nowhere(struct xdp_md *ctx)
{
	return XDP_REDIRECT;
}
