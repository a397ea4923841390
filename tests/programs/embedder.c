/* Calls a helper the embedding application registers (id 1000), as a kernel module's helper would be. */
#include "common.h"

static long (*app_lookup_tenant)(__u32 ifindex, __u32 *out) = (void *)1000;

SEC("xdp")
int tenant(struct xdp_md *ctx)
{
	__u32 t = 0;
	if (app_lookup_tenant(ctx->ingress_ifindex, &t) < 0)
		return XDP_ABORTED;
	return t == 7 ? XDP_DROP : XDP_PASS;
}
