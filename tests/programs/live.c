/* Programs for the live (AF_XDP) tests: XDP_TX with the packet changed, xskmap delivery, and
 * adjust_head inside a UMEM frame. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 4);
} xsks SEC(".maps");

/* UDP comes back out of the interface it came in on, its MAC addresses swapped and its IPv4 TTL
 * lowered; everything else is dropped. */
SEC("xdp")
int xdp_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_DROP;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP)
		return XDP_DROP;
	unsigned char tmp[ETH_ALEN];
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	ip->ttl--;
	return XDP_TX;
}

/* TCP to the application (the xskmap's slot 0), the rest passed. */
SEC("xdp")
int xdp_to_app(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	return bpf_redirect_map(&xsks, 0, XDP_DROP);
}

/* Every frame back out with 4 bytes of zeros before it (adjust_head into the headroom). */
SEC("xdp")
int xdp_grow(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_head(ctx, -4))
		return XDP_ABORTED;
	return XDP_TX;
}


/* A user's own XDP program that sends queue 0 to an AF_XDP socket through a map iproute2 pins
 * (ubpf-run --xsk-map), and lets everything else through. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} own_xsks SEC(".maps");

SEC("xdp")
int xdp_own_redirect(struct xdp_md *ctx)
{
	return bpf_redirect_map(&own_xsks, ctx->rx_queue_index, XDP_PASS);
}
