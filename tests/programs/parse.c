/* A small firewall: parse Ethernet (with one VLAN tag), IPv4/IPv6, TCP/UDP; count per protocol in
 * a per-CPU array, bytes per IPv4 source in a hash, and drop sources on an LPM blocklist or
 * destination ports in a hash. */
#include "common.h"

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

enum { C_ETH, C_IPV4, C_IPV6, C_TCP, C_UDP, C_OTHER, C_BLOCKED, C_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, C_MAX);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);   /* IPv4 source, network order */
	__type(value, __u64); /* bytes */
	__uint(max_entries, 1024);
} bytes_by_src SEC(".maps");

struct lpm_v4 {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_v4);
	__type(value, __u32);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);  /* destination port, host order */
	__type(value, __u8);
	__uint(max_entries, 64);
} blocked_ports SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &what);
	if (c)
		*c += 1;
}

static __always_inline int check_port(__u16 port)
{
	return bpf_map_lookup_elem(&blocked_ports, &port) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;
	__u8 l4;
	void *l4hdr;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	count(C_ETH);
	proto = eth->h_proto;
	data = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *v = data;
		if ((void *)(v + 1) > data_end)
			return XDP_DROP;
		proto = v->proto;
		data = v + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > data_end)
			return XDP_DROP;
		count(C_IPV4);
		struct lpm_v4 key = { .prefixlen = 32, .addr = ip->saddr };
		if (bpf_map_lookup_elem(&blocklist, &key)) {
			count(C_BLOCKED);
			return XDP_DROP;
		}
		__u32 src = ip->saddr;
		__u64 len = (__u64)((long)data_end - (long)ctx->data);
		__u64 *b = bpf_map_lookup_elem(&bytes_by_src, &src);
		if (b)
			__sync_fetch_and_add(b, len);
		else
			bpf_map_update_elem(&bytes_by_src, &src, &len, BPF_NOEXIST);
		l4 = ip->protocol;
		l4hdr = (void *)ip + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP;
		count(C_IPV6);
		l4 = ip6->nexthdr;
		l4hdr = ip6 + 1;
	} else {
		count(C_OTHER);
		return XDP_PASS;
	}
	if (l4 == IPPROTO_TCP) {
		struct tcphdr *t = l4hdr;
		if ((void *)(t + 1) > data_end)
			return XDP_DROP;
		count(C_TCP);
		return check_port(bpf_ntohs(t->dest));
	}
	if (l4 == IPPROTO_UDP) {
		struct udphdr *u = l4hdr;
		if ((void *)(u + 1) > data_end)
			return XDP_DROP;
		count(C_UDP);
		return check_port(bpf_ntohs(u->dest));
	}
	count(C_OTHER);
	return XDP_PASS;
}
