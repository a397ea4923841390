/* Global data (.rodata set before load, .data, .bss), bpf-to-bpf calls (static and global
 * functions), and two programs in one section. */
#include "common.h"

const volatile __u32 cfg_action = XDP_PASS;
const volatile __u16 cfg_port = 53;
__u32 base = 100;      /* .data */
__u64 runs;            /* .bss */
__u32 last_sum;        /* .bss */

static __noinline __u32 add_base(__u32 x) { return x + base; }

__noinline int ifindex_of(struct xdp_md *ctx) { return ctx->ingress_ifindex; }

static __noinline __u32 sum_bytes(void *data, void *data_end)
{
	__u32 sum = 0;
	__u8 *p = data;
	for (int i = 0; i < 64; i++) {
		if ((void *)(p + i + 1) > data_end)
			break;
		sum += p[i];
	}
	return sum;
}

SEC("xdp")
int first(struct xdp_md *ctx)
{
	runs++;
	last_sum = sum_bytes((void *)(long)ctx->data, (void *)(long)ctx->data_end);
	return cfg_action;
}

SEC("xdp")
int second(struct xdp_md *ctx)
{
	base = add_base(ifindex_of(ctx)) + cfg_port;
	return XDP_DROP;
}
