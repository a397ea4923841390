/* Reads past the packet without the bounds check the kernel's verifier would demand: the checked
 * interpreter must stop it with an error. */
#include "common.h"

SEC("xdp")
int overread(struct xdp_md *ctx)
{
	volatile __u8 *p = (void *)(long)ctx->data;
	return p[100] == 1 ? XDP_DROP : XDP_PASS;
}
