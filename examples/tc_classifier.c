/* A tc classifier (direct action), the bundled tc example, for an HTB or multiq setup on egress:
 *   - the packet's DSCP (IPv4 TOS or IPv6 traffic class, after at most one VLAN tag) picks a class
 *     from the dscp_class map (class 0: the default, cfg_default_class);
 *   - the class goes to tc_classid as TC_H_MAKE(1, class) (tc keeps its minor number, the class;
 *     the major is the filter's) and to priority; Expedited Forwarding
 *     (DSCP 46) is also marked with cfg_ef_mark, for a routing rule or a firewall;
 *   - TCP to cfg_blocked_port is shot (TC_ACT_SHOT); everything else is TC_ACT_OK;
 *   - bytes and packets are counted per class.
 * Attach: tc qdisc add dev eth0 clsact; tc filter add dev eth0 egress bpf da obj tc_classifier.o sec tc
 * Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c tc_classifier.c -o tc_classifier.o */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 cfg_default_class = 30;
const volatile __u32 cfg_ef_mark = 0xef;
const volatile __u16 cfg_blocked_port = 23;

struct class_count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
} dscp_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct class_count);
	__uint(max_entries, 256);
} class_stats SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline void count(__u32 class, __u32 len)
{
	struct class_count *c = bpf_map_lookup_elem(&class_stats, &class);
	if (!c) {
		struct class_count first = {1, len};
		bpf_map_update_elem(&class_stats, &class, &first, BPF_NOEXIST);
		return;
	}
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, len);
}

SEC("tc")
int tc_classify(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	void *l3 = eth + 1;
	__be16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *vlan = l3;
		if ((void *)(vlan + 1) > end)
			return TC_ACT_OK;
		proto = vlan->proto;
		l3 = vlan + 1;
	}
	__u32 dscp = 0;
	__u8 l4proto = 0;
	void *l4 = 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return TC_ACT_OK;
		dscp = ip->tos >> 2;
		l4proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return TC_ACT_OK;
		dscp = ((ip6->priority << 4) | (ip6->flow_lbl[0] >> 4)) >> 2;
		l4proto = ip6->nexthdr;
		l4 = ip6 + 1;
	}
	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) <= end && tcp->dest == bpf_htons(cfg_blocked_port)) {
			count(0xffff, skb->len);  /* the shot packets' own counter */
			return TC_ACT_SHOT;
		}
	}
	__u32 *mapped = bpf_map_lookup_elem(&dscp_class, &dscp);
	__u32 class = mapped && *mapped ? *mapped : cfg_default_class;
	skb->tc_classid = (1 << 16) | (class & 0xffff);  /* TC_H_MAKE(1 << 16, class) */
	skb->priority = (1 << 16) | (class & 0xffff);
	if (dscp == 46)
		skb->mark = cfg_ef_mark;
	count(class, skb->len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
