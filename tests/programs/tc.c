/* tc (sched_cls) and socket-filter programs of realistic shape, compared with the kernel's
 * BPF_PROG_TEST_RUN packet by packet: verdict, bytes, struct __sk_buff after the run, and res[],
 * where each program adds up what its helpers returned. */
#include "common.h"
#include <linux/pkt_cls.h>
#include <linux/if_packet.h>
#include <stddef.h>

__s64 res[128];

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 2);
} cgroups SEC(".maps");

#define ETH_LEN 14
#define IP_CSUM_OFF (ETH_LEN + offsetof(struct iphdr, check))
#define IP_DST_OFF (ETH_LEN + offsetof(struct iphdr, daddr))

static __always_inline __u16 fold(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return ~c;
}

/* A destination NAT: 10.0.0.2 -> 192.168.1.9, port 80 -> 8080, the checksums updated with
 * l3/l4_csum_replace as tc NATs do (the L4 one with the pseudo-header flag; UDP's 0 kept). */
SEC("tc")
int tc_nat(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->daddr != bpf_htonl(0x0a000002))
		return TC_ACT_OK;
	__u32 old_dst = ip->daddr, new_dst = bpf_htonl(0xc0a80109);
	__u8 proto = ip->protocol;
	int l4_csum = proto == IPPROTO_TCP ? ETH_LEN + 20 + 16 : proto == IPPROTO_UDP ? ETH_LEN + 20 + 6 : 0;
	__u64 mangled = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	if (l4_csum)
		res[0] += bpf_l4_csum_replace(skb, l4_csum, old_dst, new_dst, BPF_F_PSEUDO_HDR | mangled | sizeof(new_dst));
	res[1] += bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_dst, new_dst, sizeof(new_dst));
	res[2] += bpf_skb_store_bytes(skb, IP_DST_OFF, &new_dst, sizeof(new_dst), 0);
	__be16 port, new_port = bpf_htons(8080);
	if (l4_csum && bpf_skb_load_bytes(skb, ETH_LEN + 20 + 2, &port, 2) == 0 && port == bpf_htons(80)) {
		res[3] += bpf_l4_csum_replace(skb, l4_csum, port, new_port, mangled | sizeof(new_port));
		res[4] += bpf_skb_store_bytes(skb, ETH_LEN + 20 + 2, &new_port, 2, BPF_F_INVALIDATE_HASH);
	}
	/* the checksum of a diff, as a NAT of a whole address pair would compute it */
	__u32 from[2] = {old_dst, 0}, to[2] = {new_dst, 0};
	__s64 diff = bpf_csum_diff(from, sizeof(from), to, sizeof(to), 0);
	res[5] += diff;
	/* the error paths */
	res[6] += bpf_l3_csum_replace(skb, IP_CSUM_OFF + 1, 0, 0, 2);   /* odd offset: -EFAULT */
	res[7] += bpf_l3_csum_replace(skb, IP_CSUM_OFF, 1, 0, 0);       /* a diff with "from": -EINVAL */
	res[8] += bpf_l3_csum_replace(skb, IP_CSUM_OFF, 0, 0, 3);       /* no 3-byte field: -EINVAL */
	res[9] += bpf_l4_csum_replace(skb, 0x10000, 0, 0, 2);           /* past 64 KiB: -EFAULT */
	res[10] += bpf_l4_csum_replace(skb, IP_CSUM_OFF, 0, 0, 1 << 12); /* unknown flag: -EINVAL */
	res[11] += bpf_skb_store_bytes(skb, skb->len - 1, &new_dst, 4, 0); /* past the end */
	res[12] += bpf_skb_store_bytes(skb, 0, &new_dst, 4, 4);           /* unknown flag: -EINVAL */
	return TC_ACT_OK;
}

/* IPIP encapsulation: room for an outer IPv4 header after the Ethernet header. */
SEC("tc")
int tc_encap(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr inner;
	if (bpf_skb_load_bytes(skb, ETH_LEN, &inner, sizeof(inner)))
		return TC_ACT_SHOT;
	long rc = bpf_skb_adjust_room(skb, sizeof(struct iphdr), BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4);
	res[16] += rc;
	if (rc)
		return TC_ACT_SHOT;
	struct iphdr outer = {.version = 4, .ihl = 5, .ttl = 64, .protocol = IPPROTO_IPIP,
			      .saddr = bpf_htonl(0x0a000001), .daddr = bpf_htonl(0x0a000063)};
	outer.tot_len = bpf_htons(bpf_ntohs(inner.tot_len) + sizeof(outer));
	outer.check = fold(bpf_csum_diff(0, 0, (__be32 *)&outer, sizeof(outer), 0));
	res[17] += bpf_skb_store_bytes(skb, ETH_LEN, &outer, sizeof(outer), 0);
	res[18] += skb->len;
	res[19] += bpf_skb_adjust_room(skb, 8, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4); /* -EALREADY */
	res[20] += bpf_skb_adjust_room(skb, 0x1000, BPF_ADJ_ROOM_MAC, 0);  /* -EFAULT */
	res[21] += bpf_skb_adjust_room(skb, 4, 7, 0);                      /* unknown mode: -ENOTSUPP */
	res[22] += bpf_skb_adjust_room(skb, 4, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L3_IPV6);
	/* room after the outer IP header (BPF_ADJ_ROOM_NET), then taken out again */
	res[23] += bpf_skb_adjust_room(skb, 8, BPF_ADJ_ROOM_NET, 0);
	res[24] += bpf_skb_adjust_room(skb, -8, BPF_ADJ_ROOM_NET, 0);
	res[25] += bpf_skb_adjust_room(skb, -4000, BPF_ADJ_ROOM_NET, 0);   /* more than there is: -ENOTSUPP */
	return TC_ACT_OK;
}

/* VLANs: a tagged frame loses its tag; an untagged one gets two (the second push moves the
 * first into the packet), then pops one. */
SEC("tc")
int tc_vlan(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_8021Q)) {
		res[32] += bpf_skb_vlan_pop(skb);
		res[33] += skb->protocol + skb->len + skb->vlan_present;
		return TC_ACT_OK;
	}
	res[34] += bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), 100);
	res[35] += skb->vlan_present + skb->vlan_tci + skb->vlan_proto + skb->len;
	res[36] += bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021AD), 200);
	res[37] += skb->len + skb->protocol + skb->vlan_tci + skb->vlan_proto;
	res[38] += bpf_skb_vlan_pop(skb);
	res[39] += skb->vlan_present + skb->vlan_tci + skb->vlan_proto + skb->len + skb->protocol;
	res[40] += bpf_skb_vlan_push(skb, 0x1234, 7); /* an unknown protocol becomes 802.1Q */
	res[41] += skb->vlan_proto + skb->len;
	return TC_ACT_OK;
}

/* A classifier: class, mark and priority from the packet, and the metadata read back. */
SEC("tc")
int tc_classify(struct __sk_buff *skb)
{
	skb->tc_classid = 0x1000a;  /* TC_H_MAKE(1, 10): the kernel keeps 16 bits */
	skb->mark = skb->mark + skb->len;
	skb->priority = skb->protocol == bpf_htons(ETH_P_IPV6) ? 6 : 2;
	skb->tc_index = 0x12345;
	skb->queue_mapping = 3;
	skb->cb[0] = skb->len;
	skb->cb[4] = 0xabcd;
	skb->tstamp = skb->tstamp + 1000;
	res[48] += skb->tc_classid + skb->tc_index + skb->queue_mapping + skb->mark + skb->priority;
	res[49] += skb->len + skb->pkt_type + skb->protocol + skb->vlan_present + skb->vlan_tci;
	res[50] += skb->ingress_ifindex + skb->ifindex + skb->hash + skb->napi_id;
	res[51] += skb->wire_len + skb->gso_segs + skb->gso_size + skb->hwtstamp + skb->tstamp;
	res[52] += skb->data_meta == skb->data;
	res[53] += *(volatile __u8 *)((void *)skb + offsetof(struct __sk_buff, protocol) + 1);
	res[54] += *(volatile __u16 *)((void *)skb + offsetof(struct __sk_buff, cb) + 2);
	*(volatile __u64 *)((void *)skb + offsetof(struct __sk_buff, cb) + 8) = 0x0102030405060708ull;
	return skb->protocol == bpf_htons(ETH_P_IPV6) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* Growing and shrinking: tail, head, pulls, and what a helper given bad arguments says. */
SEC("tc")
int tc_resize(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	__u8 pad[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
	res[56] += bpf_skb_change_tail(skb, len + 10, 0);
	res[57] += bpf_skb_store_bytes(skb, len, pad, sizeof(pad), 0);
	res[58] += bpf_skb_change_tail(skb, 13, 0);     /* below the network header: -EINVAL */
	res[59] += bpf_skb_change_tail(skb, 16065, 0);  /* past BPF_SKB_MAX_LEN: -EINVAL */
	res[60] += bpf_skb_change_tail(skb, len, 1);    /* flags: -EINVAL */
	res[61] += bpf_skb_change_tail(skb, 40, 0);
	res[62] += bpf_skb_change_head(skb, 14, 0);
	res[63] += skb->len;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) <= end)
		eth->h_proto = bpf_htons(0x88b5);
	res[64] += bpf_skb_change_head(skb, 20000, 0);  /* -EINVAL */
	res[65] += bpf_skb_change_head(skb, 4, 1);      /* -EINVAL */
	res[66] += bpf_skb_pull_data(skb, 20) + bpf_skb_pull_data(skb, 0);
	res[67] += bpf_skb_pull_data(skb, 60000);       /* more than the packet */
	return TC_ACT_OK;
}

/* The rest: ECN, checksum level, hashes, types, classid, realm, redirects and loads. */
SEC("tc")
int tc_misc(struct __sk_buff *skb)
{
	char buf[16];
	res[72] += bpf_skb_ecn_set_ce(skb);
	res[73] += bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY);
	res[74] += bpf_csum_level(skb, BPF_CSUM_LEVEL_INC) + bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	res[75] += bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY);
	res[76] += bpf_csum_level(skb, BPF_CSUM_LEVEL_DEC) + bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY);
	res[77] += bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET) + bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) + bpf_csum_level(skb, 9);
	res[78] += bpf_set_hash(skb, 0x1234);
	res[79] += bpf_get_hash_recalc(skb) + skb->hash;
	bpf_set_hash_invalid(skb);
	res[80] += skb->hash;
	res[81] += bpf_skb_change_type(skb, PACKET_HOST) + skb->pkt_type;
	res[82] += bpf_skb_change_type(skb, 7);
	res[83] += bpf_get_cgroup_classid(skb) + bpf_get_route_realm(skb);
	res[84] += bpf_csum_update(skb, 5);
	res[85] += bpf_skb_load_bytes(skb, skb->len - 4, buf, 8);
	res[86] += bpf_skb_load_bytes_relative(skb, 0, buf, 16, BPF_HDR_START_MAC) + buf[12];
	res[87] += bpf_skb_load_bytes_relative(skb, 0, buf, 16, BPF_HDR_START_NET) + buf[0];
	res[88] += bpf_skb_load_bytes_relative(skb, 0, buf, 16, 5);
	res[89] += bpf_skb_load_bytes_relative(skb, 0x10000, buf, 4, BPF_HDR_START_MAC);
	long rc = bpf_redirect(7, BPF_F_INGRESS);
	res[90] += rc + bpf_redirect(7, 2);
	return rc;
}

/* Tunnel metadata (set, read back, options, the error paths), NAT64's protocol change, and the
 * redirects through the neighbour table and to a veth peer. */
SEC("tc")
int tc_tunnel(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {}, back = {};
	__u8 opts[8] = {1, 2, 3, 4, 5, 6, 7, 8}, got[12];
	res[96] += bpf_skb_get_tunnel_key(skb, &back, sizeof(back), 0);  /* no tunnel yet: -EINVAL */
	res[97] += bpf_skb_get_tunnel_opt(skb, got, sizeof(got));        /* -ENOENT */
	res[98] += bpf_skb_set_tunnel_opt(skb, opts, sizeof(opts));      /* no key set: -EINVAL */
	key.tunnel_id = 42;
	key.remote_ipv4 = 0x0a000063;
	key.local_ipv4 = 0x0a000001;
	key.tunnel_tos = 4;
	key.tunnel_ttl = 64;
	res[99] += bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX | BPF_F_SEQ_NUMBER);
	res[100] += bpf_skb_set_tunnel_opt(skb, opts, sizeof(opts));
	res[101] += bpf_skb_set_tunnel_opt(skb, opts, 6);                /* not 4-byte words: -EINVAL */
	res[102] += bpf_skb_get_tunnel_key(skb, &back, sizeof(back), BPF_F_TUNINFO_FLAGS);
	res[103] += back.tunnel_id + back.remote_ipv4 + back.local_ipv4 + back.tunnel_tos + back.tunnel_ttl + back.tunnel_flags;
	res[104] += bpf_skb_get_tunnel_key(skb, &back, sizeof(back), BPF_F_TUNINFO_IPV6);  /* -EPROTO */
	res[105] += bpf_skb_get_tunnel_opt(skb, got, sizeof(got)) + got[7] + got[11];
	res[106] += bpf_skb_get_tunnel_opt(skb, got, 4);                 /* too small: -ENOMEM */
	res[107] += bpf_skb_get_tunnel_key(skb, &back, 24, 0) + back.tunnel_id;  /* an older layout's size */
	struct bpf_tunnel_key k6 = {.tunnel_id = 7, .tunnel_label = 0x12345};
	k6.remote_ipv6[0] = 0x20010db8;
	k6.remote_ipv6[3] = 1;
	res[108] += bpf_skb_set_tunnel_key(skb, &k6, sizeof(k6), BPF_F_TUNINFO_IPV6);
	res[109] += bpf_skb_get_tunnel_key(skb, &back, sizeof(back), BPF_F_TUNINFO_IPV6);
	res[110] += back.tunnel_label + back.local_ipv6[0] + back.local_ipv6[3] + back.remote_ipv6[0];
	res[111] += bpf_skb_set_tunnel_key(skb, &k6, sizeof(k6), 0);    /* a label without IPv6: -EINVAL */
	res[112] += bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0) + skb->len + skb->protocol;
	res[113] += bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0) + skb->len;
	res[114] += bpf_skb_change_proto(skb, bpf_htons(ETH_P_ARP), 0);
	res[115] += bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 1);
	res[116] += bpf_redirect_neigh(3, 0, 0, 0) + bpf_redirect_neigh(3, 0, 0, 1);
	res[117] += bpf_redirect_peer(4, 0) + bpf_redirect_peer(4, 1);
	/* a copy into the loopback device's receive path (the kernel drops it there: not for this
	 * host), an unknown flag, no device */
	res[121] += bpf_clone_redirect(skb, 1, BPF_F_INGRESS);
	res[122] += bpf_clone_redirect(skb, 1, 2) + bpf_clone_redirect(skb, 0, 0);
	res[123] += bpf_skb_under_cgroup(skb, &cgroups, 1) + bpf_skb_under_cgroup(skb, &cgroups, 5);
	return TC_ACT_OK;
}

/* IPv4 to IPv6 and back as a NAT64 gateway does it: the new header written after the change. */
SEC("tc")
int tc_nat64(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr ip4;
	if (bpf_skb_load_bytes(skb, ETH_LEN, &ip4, sizeof(ip4)))
		return TC_ACT_SHOT;
	long rc = bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0);
	res[118] += rc;
	if (rc)
		return TC_ACT_SHOT;
	struct ipv6hdr ip6 = {.version = 6, .nexthdr = ip4.protocol, .hop_limit = ip4.ttl};
	ip6.payload_len = bpf_htons(bpf_ntohs(ip4.tot_len) - 20);
	ip6.saddr.in6_u.u6_addr32[0] = bpf_htonl(0x0064ff9b);
	ip6.saddr.in6_u.u6_addr32[3] = ip4.saddr;
	ip6.daddr.in6_u.u6_addr32[0] = bpf_htonl(0x0064ff9b);
	ip6.daddr.in6_u.u6_addr32[3] = ip4.daddr;
	__be16 type = bpf_htons(ETH_P_IPV6);
	res[119] += bpf_skb_store_bytes(skb, 12, &type, 2, 0);
	res[120] += bpf_skb_store_bytes(skb, ETH_LEN, &ip6, sizeof(ip6), 0);
	return TC_ACT_OK;
}

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

/* A socket filter as tcpdump's "ip and tcp port 22" compiles, with LD_ABS and LD_IND: keeps the
 * whole packet or drops it. Offsets are from the start of what the socket sees. */
SEC("socket")
int sock_ssh(struct __sk_buff *skb)
{
	__u32 l3 = skb->cb[1];  /* where the network header starts: 0 in a test run, 14 on AF_PACKET */
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 0;
	if (load_byte(skb, l3 + 9) != IPPROTO_TCP)
		return 0;
	__u32 ihl = (load_byte(skb, l3) & 0xf) << 2;
	__u32 ports = load_word(skb, l3 + ihl);
	skb->cb[0] = ports;
	if ((ports >> 16) == 22 || (ports & 0xffff) == 22)
		return 0x40000;
	return 0;
}

/* A socket filter that reads with the helpers, and keeps the first 40 bytes of UDP. */
SEC("socket")
int sock_udp_head(struct __sk_buff *skb)
{
	__u8 mac[ETH_LEN], ip[20];
	res[92] += bpf_skb_load_bytes_relative(skb, 0, mac, sizeof(mac), BPF_HDR_START_MAC) + mac[13];
	res[93] += bpf_skb_load_bytes_relative(skb, 0, ip, sizeof(ip), BPF_HDR_START_NET);
	res[94] += skb->len + skb->pkt_type + skb->ifindex + skb->mark + skb->priority + load_half(skb, skb->cb[1] + 2);
	if (skb->protocol != bpf_htons(ETH_P_IP) || ip[9] != IPPROTO_UDP)
		return 0;
	return 40;
}
