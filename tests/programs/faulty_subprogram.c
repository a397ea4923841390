/* A read past the packet inside a function the program calls (in .text, linked after the
 * program's own code): the error must number it as the linked code is numbered, and name the
 * function and its offset. */
#include "common.h"

static __attribute__((noinline)) int read_far(struct xdp_md *ctx, int k)
{
	__u8 *p = (void *)(long)ctx->data;
	return p[k + 100];
}

SEC("xdp")
int calls_far(struct xdp_md *ctx)
{
	return read_far(ctx, 3) ? XDP_PASS : XDP_DROP;
}
