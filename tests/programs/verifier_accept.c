/* Must-accept: XDP code in the shapes real programs take, compiled by clang, which the verifier
 * has to follow: VLAN tags, IPv4 with IHL, IPv6 with an extension-header loop, TCP options in a
 * bounded loop, array values indexed by bounded scalars, frozen configuration, a subprogram taking
 * packet and stack pointers, bpf_loop with a callback, and a tail call. */
#include "common.h"

#define MAX_EXT_HEADERS 6
#define MAX_TCP_OPTIONS 10

const volatile __u8 cfg_drop_fragments = 1;
const volatile __u16 cfg_mss_floor = 536;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64[16]);
	__uint(max_entries, 1);
} hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} next_stage SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct summary {
	__u32 packets;
	__u32 bytes;
};

/* A subprogram with a packet pointer, the packet end and a stack pointer as arguments. */
static __attribute__((noinline)) int tcp_mss(void *opt, void *end, __u16 *mss)
{
	__u8 *p = opt;
#pragma clang loop unroll(disable)
	for (int i = 0; i < MAX_TCP_OPTIONS; i++) {
		if ((void *)(p + 1) > end)
			return -1;
		__u8 kind = p[0];
		if (kind == 0)
			return -1;
		if (kind == 1) {
			p++;
			continue;
		}
		if ((void *)(p + 2) > end)
			return -1;
		__u8 len = p[1];
		if (len < 2)
			return -1;
		if (kind == 2 && len == 4) {
			if ((void *)(p + 4) > end)
				return -1;
			*mss = ((__u16)p[2] << 8) | p[3];
			return 0;
		}
		p += len;
	}
	return -1;
}

static long add_up(__u32 index, void *ctx)
{
	struct summary *s = ctx;
	s->packets += 1;
	s->bytes += index;
	return index >= 7;
}

SEC("xdp")
int parse_all(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vh = l3;
		if ((void *)(vh + 1) > end)
			return XDP_DROP;
		proto = vh->proto;
		l3 = vh + 1;
	}
	__u8 l4proto = 0;
	void *l4 = 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return XDP_DROP;
		if (ip->ihl < 5)
			return XDP_DROP;
		if (cfg_drop_fragments && (ip->frag_off & bpf_htons(0x3fff)))
			return XDP_DROP;
		l4 = (void *)ip + ip->ihl * 4;
		l4proto = ip->protocol;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return XDP_DROP;
		__u8 next = ip6->nexthdr;
		void *p = ip6 + 1;
#pragma clang loop unroll(disable)
		for (int i = 0; i < MAX_EXT_HEADERS; i++) {
			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS)
				break;
			__u8 *ext = p;
			if ((void *)(ext + 2) > end)
				return XDP_DROP;
			next = ext[0];
			p = ext + (ext[1] + 1) * 8;
		}
		l4 = p;
		l4proto = next;
	} else {
		return XDP_PASS;
	}

	__u32 zero = 0;
	__u64 *h = bpf_map_lookup_elem(&hist, &zero);
	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return XDP_DROP;
		__u16 mss = 0;
		if (tcp->doff > 5 && tcp_mss(tcp + 1, end, &mss) == 0 && mss < cfg_mss_floor)
			return XDP_DROP;
		if (h) {
			__u32 bucket = tcp->doff;
			if (bucket < 16)
				h[bucket] += 1;
		}
	} else if (l4proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return XDP_DROP;
		if (udp->dest == bpf_htons(9))
			bpf_tail_call(ctx, &next_stage, 0);
	}

	struct summary s = {};
	bpf_loop(8, add_up, &s, 0);
	if (h)
		h[15] += s.packets;
	return XDP_PASS;
}
