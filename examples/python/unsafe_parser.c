/* A parser with a bug the verifier finds: the UDP header is read before its bounds are checked
 * (test_verification_error.py expects the line marked below).
 * Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c unsafe_parser.c -o unsafe_parser.o */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int count_dns(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	struct udphdr *udp = (void *)(ip + 1);
	if (udp->dest == bpf_htons(53))  /* BUG: udp + 1 was never compared with data_end */
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
