/* CO-RE field accesses (preserve_access_index): resolved against the object's own BTF, so the
 * offsets clang wrote stand. */
#include "common.h"

struct pair {
	__u32 first;
	__u32 second;
} __attribute__((preserve_access_index));

SEC("xdp")
int read_second(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pair *p = data;
	if ((void *)(p + 1) > data_end)
		return XDP_ABORTED;
	if (!bpf_core_field_exists(p->second))
		return XDP_DROP;
	return p->second == 0x07060504 ? XDP_TX : XDP_PASS;
}
