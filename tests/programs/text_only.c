/* Code only in .text, as verifier test objects and the conformance suite's ELF mode have it: the
 * global functions are the programs (of no type the section tells); the static one is a
 * subprogram they call. */
#include "common.h"

static __attribute__((noinline)) __u64 twice(__u64 x)
{
	return 2 * x;
}

__u64 first_byte_twice(__u8 *mem, __u64 len)
{
	return len ? twice(mem[0]) : 0;
}

__u64 length(void *mem, __u64 len)
{
	return len;
}
