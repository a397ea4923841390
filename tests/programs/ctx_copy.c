/* The context reached through a copy of r10, and through a caller's stack slot (issue 17, D):
 * the kernel's verifier follows both, so ebpfvm's rewrite of the context's pointer loads must
 * too. Written in assembly: clang keeps the context in a register. */
#include "common.h"

SEC("xdp")
int ctx_via_fp_copy(struct xdp_md *ctx)
{
	long ret;
	asm volatile(
		"r6 = r10\n"
		"*(u64 *)(r6 - 32) = %[ctx]\n"
		"r7 = *(u64 *)(r6 - 32)\n"
		"r2 = *(u32 *)(r7 + 0)\n"
		"r3 = *(u32 *)(r7 + 4)\n"
		"r4 = r2\n"
		"r4 += 14\n"
		"%[ret] = 0\n"
		"if r4 > r3 goto +1\n"
		"%[ret] = *(u8 *)(r2 + 13)\n"
		: [ret] "=&r"(ret)
		: [ctx] "r"(ctx)
		: "r2", "r3", "r4", "r6", "r7", "memory");
	return ret == 0x00 ? XDP_DROP : XDP_PASS; /* IPv4's EtherType ends in 0x00 */
}

static __attribute__((noinline)) int read_through_slot(void **slot)
{
	struct xdp_md *ctx = *slot;
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	unsigned char *p = data;
	if (p + 14 > (unsigned char *)end)
		return XDP_ABORTED;
	return p[12] == 0x08 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int ctx_via_caller_slot(struct xdp_md *ctx)
{
	void *volatile slot = ctx;
	return read_through_slot((void **)&slot);
}
