/* Shapes that once broke the verifier's promise, as programs: each must verify and then behave the
 * same in every engine, with nothing of the host showing through. Not for the kernel comparison:
 * the kernel refuses some of them on purpose (reading r0 after bpf_tail_call). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} empty_table SEC(".maps");

/* r0 holds the stack's address when the tail call (to an empty slot) fails; what the program then
 * reads in r0 is what the call left there: 0, in every engine. */
SEC("xdp")
int r0_after_failed_tail_call(struct xdp_md *ctx)
{
	__u64 ret;
	asm volatile("r0 = r10\n"
		     "r1 = %[ctx]\n"
		     "r2 = %[table] ll\n"
		     "r3 = 2\n"
		     "call 12\n"
		     "%[ret] = r0\n"
		     : [ret] "=r"(ret)
		     : [ctx] "r"(ctx), [table] "i"(&empty_table)
		     : "r0", "r1", "r2", "r3", "r4", "r5", "memory");
	return ret == 0 ? XDP_PASS : XDP_DROP;
}
