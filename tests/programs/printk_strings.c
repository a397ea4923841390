// bpf_printk with a string and more than three arguments: bpf_trace_vprintk's argument array holds
// a pointer to the stack, as root's loader lets the kernel's verifier accept (issue 17, H).
#include "common.h"

SEC("xdp")
int print_name(struct xdp_md *ctx)
{
	char name[] = "eth0";
	bpf_printk("%s %d %d %d %d", name, 1, 2, 3, ctx->rx_queue_index);
	return XDP_PASS;
}
