/* Benchmark kernels, compiled twice: to BPF (clang -target bpf, run by ebpfvm) and natively (the
 * host C compiler at -O2, called directly), from this one source. Each takes a 1 MiB + 4 KiB
 * buffer; sizes are constants so the BPF and native code do the same work. */
#include <linux/types.h>

#ifdef __bpf__
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#define KERNEL(name) __attribute__((section("socket/" #name), used)) __u64 name(__u8 *mem)

/* Helper 1000 is the benchmark's own (bench_mix in jit_bench.cpp), registered beside the built-ins. */
static __u64 (*bench_mix)(__u64 x) = (void *)1000;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 256);
} bench_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 256);
} bench_hash SEC(".maps");

#define ARRAY_LOOKUP(key) ((__u64 *)bpf_map_lookup_elem(&bench_array, key))
#define HASH_LOOKUP(key) ((__u64 *)bpf_map_lookup_elem(&bench_hash, key))
#else
/* Natively with the JIT's entry signature (r1..r5), so that jit_bench times native code and the
 * JIT's code through the very same call loop: a 2 ns kernel moves by 30% with its call site's
 * layout alone. */
#define KERNEL(name)                                                                  \
	static inline __u64 name##_body(__u8 *mem);                                   \
	__u64 native_##name(__u64 r1, __u64 r2 __attribute__((unused)), __u64 r3 __attribute__((unused)), \
			    __u64 r4 __attribute__((unused)), __u64 r5 __attribute__((unused))) \
	{                                                                             \
		return name##_body((__u8 *)r1);                                       \
	}                                                                             \
	static inline __u64 name##_body(__u8 *mem __attribute__((unused)))

/* Provided by jit_bench.cpp, in another translation unit so that calls stay calls. */
__u64 bench_mix(__u64 x);
extern __u64 bench_array_native[256];
/* The hash map and ebpfvm's bpf_map_lookup_elem helper, called directly as the JIT calls it. */
extern __u64 (*bench_lookup)(__u64 map, __u64 key, __u64, __u64, __u64, void *user);
extern __u64 bench_hash_map;
extern void *bench_lookup_user;
/* ebpfvm's bpf_redirect helper, called directly. */
extern __u64 (*bench_redirect)(__u64 ifindex, __u64 flags, __u64, __u64, __u64, void *user);
#define bpf_redirect(ifindex, flags) bench_redirect(ifindex, flags, 0, 0, 0, (void *)0)

#define ARRAY_LOOKUP(key) (*(key) < 256 ? &bench_array_native[*(key)] : (__u64 *)0)
#define HASH_LOOKUP(key) ((__u64 *)bench_lookup(bench_hash_map, (__u64)(key), 0, 0, 0, bench_lookup_user))
#endif

#define MIB (1u << 20)

KERNEL(invoke)
{
	/* Next to nothing: what one call of the program costs. */
	return mem[0];
}

KERNEL(invoke_helper)
{
	/* One helper call: what a run costs once the program may reach helpers (its run state). */
	return bench_mix(mem[0]);
}

KERNEL(invoke_stateful)
{
	/* One call of a helper that records what the run did (the redirect target). run(mem) reports
	 * only r0, so the JIT runs this without a run state; xdp_invoke.c measures the run state's
	 * cost, through run_xdp, where the redirect is part of the result. */
	return bpf_redirect(mem[0], 0);
}

KERNEL(alu_loop)
{
	__u64 x = (__u64)mem[0];
	for (__u32 i = 0; i < 100000; i++) {
		x = x * 6364136223846793005ull + i;
		x ^= x >> 17;
	}
	return x;
}

KERNEL(checksum_1500)
{
	__u32 sum = 0;
	for (__u32 i = 0; i < 1500; i += 2)
		sum += (__u32)mem[i] << 8 | mem[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

KERNEL(primes)
{
	__u32 count = 0;
	for (__u32 n = 2; n < 3000; n++) {
		__u32 prime = 1;
		for (__u32 d = 2; d * d <= n; d++)
			if (n % d == 0) {
				prime = 0;
				break;
			}
		count += prime;
	}
	return count;
}

KERNEL(log2_array)
{
	__u64 total = 0;
	__u32 *v = (__u32 *)mem;
	for (__u32 i = 0; i < 4096; i++) {
		__u32 x = v[i] | 1, l = 0;
		while (x >>= 1)
			l++;
		total += l;
	}
	return total;
}

KERNEL(strcmp_1mib)
{
	/* The two halves are equal: the loop runs to the end. */
	const __u8 *a = mem, *b = mem + MIB / 2;
	for (__u32 i = 0; i < MIB / 2; i++)
		if (a[i] != b[i])
			return i;
	return 0;
}

KERNEL(copy_4k)
{
	/* A byte loop (with a transform, so that compilers cannot turn it into a memcpy call). */
	__u8 *dst = mem + MIB, *src = mem;
	for (__u32 i = 0; i < 4096; i++)
		dst[i] = src[i] ^ 0x5a;
	return dst[4095];
}

KERNEL(switch_4k)
{
	__u64 total = 0;
	for (__u32 i = 0; i < 4096; i++) {
		switch (mem[i] & 15) {
		case 0: total += 3; break;
		case 1: total += 7; break;
		case 2: total ^= 11; break;
		case 3: total += 13; break;
		case 4: total *= 3; break;
		case 5: total -= 1; break;
		case 6: total += 29; break;
		case 7: total ^= 31; break;
		case 8: total += 37; break;
		case 9: total >>= 1; break;
		case 10: total += 41; break;
		case 11: total ^= 43; break;
		case 12: total += 47; break;
		case 13: total += 53; break;
		case 14: total |= 59; break;
		default: total += 61; break;
		}
	}
	return total;
}

KERNEL(parse_packet)
{
	/* Ethernet / optional VLAN / IPv4 or IPv6 / TCP or UDP: the destination port. */
	__u32 off = 12;
	__u16 proto = (__u16)mem[off] << 8 | mem[off + 1];
	if (proto == 0x8100) {
		off += 4;
		proto = (__u16)mem[off] << 8 | mem[off + 1];
	}
	off += 2;
	__u8 l4;
	if (proto == 0x0800) {
		l4 = mem[off + 9];
		off += (mem[off] & 15) * 4;
	} else if (proto == 0x86dd) {
		l4 = mem[off + 6];
		off += 40;
	} else {
		return 0;
	}
	if (l4 != 6 && l4 != 17)
		return 1;
	return (__u32)mem[off + 2] << 8 | mem[off + 3];
}

KERNEL(helper_loop)
{
	__u64 x = mem[0];
	for (__u32 i = 0; i < 1000; i++)
		x = bench_mix(x + i);
	return x;
}

/* 1000 packets' worth of lookups, keyed by a byte of each. */
#define LOOKUP_KERNEL(name, LOOKUP)                   \
	KERNEL(name)                                  \
	{                                             \
		__u64 total = 0;                      \
		for (__u32 i = 0; i < 1000; i++) {    \
			__u32 key = mem[i];           \
			__u64 *v = LOOKUP(&key);      \
			if (v)                        \
				total += *v;          \
		}                                     \
		return total;                         \
	}

LOOKUP_KERNEL(array_lookup, ARRAY_LOOKUP)
LOOKUP_KERNEL(hash_lookup, HASH_LOOKUP)

#ifdef __bpf__
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
#endif
