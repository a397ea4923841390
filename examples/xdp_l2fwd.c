/* The XDP program of examples/xdp_forwarder: a two-port L2 forwarder with a source block list.
 *   - IPv4 packets from a source in `blocked` are dropped (and counted there);
 *   - every other frame leaves by the interface `tx_port` names for the interface it came in on
 *     (a devmap_hash: ingress ifindex -> egress ifindex), unchanged: a bump in the wire;
 *   - a frame from an interface without an entry is passed to the kernel.
 * Per-port packet and byte counts are kept per CPU in `port_stats`, keyed by ingress ifindex. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
} tx_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, __u64);
	__uint(max_entries, 1024);
} blocked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, 64);
} port_stats SEC(".maps");

static __always_inline void count(struct xdp_md *ctx)
{
	__u32 port = ctx->ingress_ifindex;
	struct counter *c = bpf_map_lookup_elem(&port_stats, &port);
	if (!c) {
		struct counter fresh = {};
		bpf_map_update_elem(&port_stats, &port, &fresh, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&port_stats, &port);
		if (!c)
			return;
	}
	c->packets++;
	c->bytes += ctx->data_end - ctx->data;
}

SEC("xdp")
int xdp_l2fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	count(ctx);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_DROP;
		__u64 *hits = bpf_map_lookup_elem(&blocked, &ip->saddr);
		if (hits) {
			__sync_fetch_and_add(hits, 1);
			return XDP_DROP;
		}
	}
	return bpf_redirect_map(&tx_port, ctx->ingress_ifindex, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
