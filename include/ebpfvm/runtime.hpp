// The world programs run in: where bpf_printk output goes, the PRNG seed, the routes bpf_fib_lookup
// consults, and where an XDP program asked to send its packet.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ebpfvm {

// A route for bpf_fib_lookup: packets whose destination matches prefix/prefix_len (in network
// byte order; 4 bytes used for IPv4) are forwarded out of ifindex with these MAC addresses.
struct FibRoute {
  uint8_t family = 2;  // AF_INET (2) or AF_INET6 (10)
  std::array<uint8_t, 16> prefix{};
  uint8_t prefix_len = 0;
  uint32_t ifindex = 0;
  std::array<uint8_t, 6> smac{};
  std::array<uint8_t, 6> dmac{};
};

struct Environment {
  // bpf_printk / bpf_trace_printk / bpf_trace_vprintk output, one formatted message per call,
  // with the worker that printed it. Unset: the output is dropped (the library never prints).
  std::function<void(uint32_t worker, std::string_view message)> printk;
  // Seed of bpf_get_prandom_u32; worker w's sequence is determined by (seed, w). 0: random.
  uint64_t seed = 0;
  // Routes for bpf_fib_lookup, longest prefix wins. None matching: BPF_FIB_LKUP_RET_NOT_FWDED.
  std::vector<FibRoute> routes;
};

// Where XDP_REDIRECT sends a packet.
struct RedirectTarget {
  enum class Kind : uint8_t { None, Ifindex, Map } kind = Kind::None;
  uint32_t ifindex = 0;   // Kind::Ifindex
  uint32_t map_id = 0;    // Kind::Map: the devmap/cpumap/xskmap
  std::string map_name;
  uint32_t key = 0;       // Kind::Map: the slot
  uint64_t flags = 0;     // e.g. BPF_F_BROADCAST
};

}  // namespace ebpfvm
