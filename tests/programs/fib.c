// bpf_fib_lookup as a router calls it, with what to ask carried by the packet itself so that one
// program serves every case of the FIB tests (ebpfvm and the kernel run the same packets).
//
// The packet: Ethernet, then IPv4 (20 bytes) or IPv6 (40), then a request:
//   u32 flags, u32 tbid, u32 ifindex (0: the ingress link's), u32 short_plen (1: pass 32 as plen)
// The program writes after the request: s64 the helper's return, then the whole struct
// bpf_fib_lookup as the helper left it. The packet is returned with XDP_PASS.
#include "common.h"
#include <linux/pkt_cls.h>

#define AF_INET 2
#define AF_INET6 10

struct request {
	__u32 flags, tbid, ifindex, short_plen;
	__s64 rc;
	struct bpf_fib_lookup params;
};

/* struct bpf_fib_lookup's inputs from the packet's IPv4 or IPv6 header, as a router fills them;
 * returns the end of that header, or NULL (too short, or neither family). */
static __always_inline void *from_headers(struct bpf_fib_lookup *p, void *data, void *end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return 0;
		p->family = AF_INET;
		p->tos = ip->tos;
		p->l4_protocol = ip->protocol;
		p->tot_len = bpf_ntohs(ip->tot_len);
		p->ipv4_src = ip->saddr;
		p->ipv4_dst = ip->daddr;
		return ip + 1;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return 0;
		p->family = AF_INET6;
		p->flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		p->l4_protocol = ip6->nexthdr;
		p->tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		__builtin_memcpy(p->ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(p->ipv6_dst, &ip6->daddr, 16);
		return ip6 + 1;
	}
	return 0;
}

SEC("xdp")
int fib_probe(struct xdp_md *ctx)
{
	void *end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup p = {};
	struct request *rq = from_headers(&p, (void *)(long)ctx->data, end);

	if (!rq || (void *)(rq + 1) > end)
		return XDP_DROP;
	p.ifindex = rq->ifindex ? rq->ifindex : ctx->ingress_ifindex;
	if (rq->flags & 8) /* BPF_FIB_LOOKUP_TBID */
		p.tbid = rq->tbid;
	rq->rc = bpf_fib_lookup(ctx, &p, rq->short_plen ? 32 : sizeof(p), rq->flags);
	__builtin_memcpy(&rq->params, &p, sizeof(p));
	return XDP_PASS;
}

// The same from tc (whose lookup checks tot_len when it is set, and otherwise the skb's length
// against the output link's MTU, which it reports), then the lookup again with tot_len 0: its
// return and mtu_result go to the request's last 8 bytes (s32 rc, u16 mtu_result).
SEC("tc")
int fib_probe_tc(struct __sk_buff *skb)
{
	void *end = (void *)(long)skb->data_end;
	struct bpf_fib_lookup p = {};
	struct request *rq = from_headers(&p, (void *)(long)skb->data, end);

	if (!rq || (void *)(rq + 1) + 8 > end)
		return TC_ACT_SHOT;
	p.ifindex = rq->ifindex ? rq->ifindex : skb->ifindex;
	if (rq->flags & 8) /* BPF_FIB_LOOKUP_TBID */
		p.tbid = rq->tbid;
	struct bpf_fib_lookup again = p;
	rq->rc = bpf_fib_lookup(skb, &p, rq->short_plen ? 32 : sizeof(p), rq->flags);
	__builtin_memcpy(&rq->params, &p, sizeof(p));
	again.tot_len = 0;
	__s32 *rc2 = (void *)(rq + 1);
	*rc2 = bpf_fib_lookup(skb, &again, sizeof(again), rq->flags);
	*(__u16 *)(rc2 + 1) = again.mtu_result;
	return TC_ACT_OK;
}

// A router's fast path, as the kernel's xdp_fwd sample and xdp-forward do it: look the
// destination up from the ingress link, and on success rewrite the Ethernet addresses and
// redirect out of the link the FIB chose. Routes that reject drop; anything else goes up the stack.
SEC("xdp")
int fib_forward(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct bpf_fib_lookup p = {};

	if (!from_headers(&p, data, (void *)(long)ctx->data_end))
		return XDP_PASS;
	p.ifindex = ctx->ingress_ifindex;
	long rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	if (rc == BPF_FIB_LKUP_RET_BLACKHOLE || rc == BPF_FIB_LKUP_RET_UNREACHABLE || rc == BPF_FIB_LKUP_RET_PROHIBIT)
		return XDP_DROP;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, p.dmac, 6);
	__builtin_memcpy(eth->h_source, p.smac, 6);
	return bpf_redirect(p.ifindex, 0);
}
