/* A socket filter, the bundled one: what a packet socket (AF_PACKET, as tcpdump and Suricata
 * open) keeps of each frame. DNS over UDP (port 53, IPv4, after at most one VLAN tag) is kept
 * whole up to cfg_snaplen bytes; other UDP keeps its headers only (42 bytes); everything else is
 * dropped. Written with the legacy packet loads (LD_ABS/LD_IND), as classic BPF and Suricata's
 * filters are: offsets count from the MAC header, and a load past the end drops the packet.
 * Attach: setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof prog_fd)
 * Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c socket_filter.c -o socket_filter.o */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

const volatile __u32 cfg_snaplen = 512;

SEC("socket")
int dns_only(struct __sk_buff *skb)
{
	__u32 l3 = ETH_HLEN;
	__u32 proto = load_half(skb, 12);
	if (proto == ETH_P_8021Q) {
		proto = load_half(skb, 16);
		l3 += 4;
	}
	if (proto != ETH_P_IP || load_byte(skb, l3 + 9) != IPPROTO_UDP)
		return 0;
	if (load_half(skb, l3 + 6) & 0x1fff)  /* a fragment after the first: no UDP header */
		return 0;
	__u32 l4 = l3 + ((load_byte(skb, l3) & 0xf) << 2);
	if (load_half(skb, l4) == 53 || load_half(skb, l4 + 2) == 53)
		return cfg_snaplen;
	return l4 + 8;
}

char LICENSE[] SEC("license") = "GPL";
