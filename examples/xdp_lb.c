/* A layer-4 load balancer, the bundled map-driven example: IPv4 TCP and UDP packets to the virtual
 * address cfg_vip go to one of cfg_backends backends, picked from the backends map by a hash of the
 * source address and port (so a flow stays on its backend). The destination address and MAC are
 * rewritten, the IP and TCP/UDP checksums updated incrementally, and the packet sent back out
 * (XDP_TX); each backend's packets are counted in `hits`. Everything else passes.
 * Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c xdp_lb.c -o xdp_lb.o */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 cfg_vip = 0x0a0000fe;  /* 10.0.0.254 */
const volatile __u32 cfg_backends = 2;

struct backend {
	__be32 addr;
	__u8 mac[6];
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct backend);
	__uint(max_entries, 16);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} hits SEC(".maps");

/* A 16-bit ones' complement checksum updated for a 32-bit field that changed (RFC 1624). */
static __always_inline __u16 csum_replace(__u16 check, __be32 from, __be32 to)
{
	__u32 sum = (__u16)~check;
	sum += (__u16)~from + (__u16)~(from >> 16);
	sum += (__u16)to + (__u16)(to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->daddr != bpf_htonl(cfg_vip))
		return XDP_PASS;
	__u16 *l4_check;
	__be16 sport;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		l4_check = &tcp->check;
		sport = tcp->source;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end)
			return XDP_PASS;
		l4_check = &udp->check;
		sport = udp->source;
	} else {
		return XDP_PASS;
	}
	__u32 n = cfg_backends ? cfg_backends : 1;
	__u32 index = ((bpf_ntohl(ip->saddr) ^ bpf_ntohs(sport)) * 2654435761u >> 16) % n;
	struct backend *b = bpf_map_lookup_elem(&backends, &index);
	if (!b || !b->addr)
		return XDP_DROP;  /* no such backend configured */
	ip->check = csum_replace(ip->check, ip->daddr, b->addr);
	if (*l4_check || ip->protocol == IPPROTO_TCP)  /* a UDP checksum of 0 means none */
		*l4_check = csum_replace(*l4_check, ip->daddr, b->addr);
	ip->daddr = b->addr;
	__builtin_memcpy(eth->h_source, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, b->mac, 6);
	__u64 *count = bpf_map_lookup_elem(&hits, &index);
	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
