// A packet program beside programs of other kinds, as objects ship them (xdp-tutorial's tracing
// lessons, xdp-tools): the tracing programs are listed and left unloaded, the packet program runs.
#include "common.h"

SEC("xdp")
int pass_all(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tracepoint/xdp/xdp_exception")
int trace_exception(void *ctx)
{
	return 0;
}

SEC("kprobe/do_xdp_generic")
int probe_generic(void *ctx)
{
	return 0;
}
