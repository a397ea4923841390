/* Raw-memory programs (run_raw): a program verified for N bytes of memory sees exactly N, however
 * much memory it is given, as the verifier assumed. */
#include "common.h"

/* Its length, as the program sees it. */
SEC("socket")
__u64 mem_len(void *mem, __u64 len)
{
	return len;
}

/* Reads far before its memory when told it has more than 8 bytes: code the verifier, told 8, found
 * unreachable. */
SEC("socket")
int past_when_longer(__u8 *mem, __u64 len)
{
	if (len > 8)
		return *(volatile __u8 *)(mem - 100000000);
	return mem[7];
}
