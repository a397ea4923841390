/* An XDP firewall, the bundled example:
 *   - TCP is allowed to the ports listed in the allowed_tcp map, UDP to cfg_udp_port only;
 *   - an IPv4 source that has sent more than cfg_max_packets packets is dropped (sources are kept in
 *     an LRU map, so a flood of new sources cannot fill it);
 *   - every verdict is counted per CPU, with bytes.
 * Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c firewall.c -o firewall.o */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u64 cfg_max_packets = 1000;
const volatile __u16 cfg_udp_port = 53;

struct source {
	__u64 packets;
	__u64 bytes;
};

struct verdict_count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __be32);
	__type(value, struct source);
	__uint(max_entries, 4096);
} sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u8);
	__uint(max_entries, 256);
} allowed_tcp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct verdict_count);
	__uint(max_entries, XDP_REDIRECT + 1);
} verdicts SEC(".maps");

/* A bounds-checked read position in the packet. */
struct cursor {
	void *pos;
	void *end;
};

static __always_inline void *take(struct cursor *c, __u32 len)
{
	void *p = c->pos;
	if (p + len > c->end)
		return 0;
	c->pos = p + len;
	return p;
}

static __always_inline int verdict(struct xdp_md *ctx, int action)
{
	__u32 key = action;
	struct verdict_count *v = bpf_map_lookup_elem(&verdicts, &key);
	if (v) {
		v->packets++;
		v->bytes += ctx->data_end - ctx->data;
	}
	return action;
}

static __always_inline int over_limit(__be32 saddr, __u64 len)
{
	struct source *s = bpf_map_lookup_elem(&sources, &saddr);
	if (!s) {
		struct source fresh = { .packets = 1, .bytes = len };
		bpf_map_update_elem(&sources, &saddr, &fresh, BPF_ANY);
		return 0;
	}
	__sync_fetch_and_add(&s->packets, 1);
	__sync_fetch_and_add(&s->bytes, len);
	return s->packets > cfg_max_packets;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	struct cursor c = { (void *)(long)ctx->data, (void *)(long)ctx->data_end };
	struct ethhdr *eth = take(&c, sizeof(*eth));
	if (!eth)
		return verdict(ctx, XDP_DROP);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(ctx, XDP_PASS); /* ARP, IPv6, ...: not this firewall's business */
	struct iphdr *ip = take(&c, sizeof(*ip));
	if (!ip || ip->ihl < 5)
		return verdict(ctx, XDP_DROP);
	if (over_limit(ip->saddr, ctx->data_end - ctx->data))
		return verdict(ctx, XDP_DROP);
	c.pos = (void *)ip + ip->ihl * 4;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = take(&c, sizeof(*tcp));
		if (!tcp)
			return verdict(ctx, XDP_DROP);
		__u16 port = bpf_ntohs(tcp->dest);
		return verdict(ctx, bpf_map_lookup_elem(&allowed_tcp, &port) ? XDP_PASS : XDP_DROP);
	}
	if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = take(&c, sizeof(*udp));
		if (!udp)
			return verdict(ctx, XDP_DROP);
		return verdict(ctx, bpf_ntohs(udp->dest) == cfg_udp_port ? XDP_PASS : XDP_DROP);
	}
	return verdict(ctx, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
