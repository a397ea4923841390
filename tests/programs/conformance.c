/* For the conformance plugin's --elf mode: a program run on raw memory (r1 = memory). */
#include "common.h"

SEC("socket")
int first_plus_last(__u8 *mem)
{
	return mem[0] + mem[3];
}
