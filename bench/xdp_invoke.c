/* XDP programs for the fixed cost of one LoadedProgram::run_xdp, compiled to BPF (run by ebpfvm's
 * JIT on a verified load) and natively (called directly on a stand-in for xdp_md). */
#include <linux/types.h>

#ifdef __bpf__
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int xdp_pass(struct xdp_md *ctx)
{
	return ctx->ingress_ifindex ? XDP_PASS : XDP_DROP;
}

/* A helper that records what the run did: the run needs a run state, set up and cleared. */
SEC("xdp") int xdp_redirect_back(struct xdp_md *ctx)
{
	return bpf_redirect(ctx->ingress_ifindex, 0);
}

char _license[] SEC("license") = "GPL";
#else
struct native_md {
	__u32 data, data_end, data_meta, ingress_ifindex;
};
/* ebpfvm's bpf_redirect helper, called directly (set by jit_bench.cpp). */
extern __u64 (*bench_redirect)(__u64 ifindex, __u64 flags, __u64, __u64, __u64, void *user);

__u64 native_xdp_pass(struct native_md *ctx)
{
	return ctx->ingress_ifindex ? 2 : 1;
}

__u64 native_xdp_redirect_back(struct native_md *ctx)
{
	return bench_redirect(ctx->ingress_ifindex, 0, 0, 0, 0, (void *)0);
}
#endif
