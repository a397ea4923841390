// The world programs run in: where bpf_printk output goes, the PRNG seed, the network
// bpf_fib_lookup consults, and where an XDP program asked to send its packet.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm {

// The network bpf_fib_lookup consults: links, routes and neighbours, as `ip -j addr`, `ip -j route`
// and `ip -j neigh` describe a host. The helper answers as the kernel's does (net/core/filter.c):
// the same result codes, the same fields written in the same cases.
struct IpAddress {
  uint8_t family = 2;  // AF_INET (2) or AF_INET6 (10)
  std::array<uint8_t, 16> bytes{};  // network byte order; 4 used for IPv4
  bool operator==(const IpAddress&) const = default;
};

struct FibLink {
  uint32_t ifindex = 0;
  std::string name;
  std::array<uint8_t, 6> mac{};  // what bpf_fib_lookup writes to smac
  uint32_t mtu = 1500;
  // Its own addresses: the local routes the kernel makes of them (a packet to one is not
  // forwarded), and the source BPF_FIB_LOOKUP_SRC falls back to. prefix_len is the address's.
  struct Address {
    IpAddress ip;
    uint8_t prefix_len = 0;
    bool link_scope = false;  // IPv6 fe80::/10 and the like: not a source for global destinations
  };
  std::vector<Address> addresses;
  // Forwarding on this link (net.ipv4.conf.IF.forwarding / net.ipv6.conf.IF.forwarding); a lookup
  // from a link without it answers BPF_FIB_LKUP_RET_FWD_DISABLED.
  bool forwarding = true;
};

struct FibRoute {
  // Throw sends the lookup on to the next table; Other (anycast, nat) is never forwarded.
  enum class Type : uint8_t { Unicast, Local, Broadcast, Multicast, Blackhole, Unreachable, Prohibit, Throw, Other };
  Type type = Type::Unicast;
  uint8_t family = 2;
  std::array<uint8_t, 16> prefix{};  // network byte order
  uint8_t prefix_len = 0;
  uint32_t table = 254;  // RT_TABLE_MAIN; local is 255, default 253
  uint32_t metric = 0;   // what the helper returns in rt_metric
  uint32_t ifindex = 0;  // the link packets leave by (none for blackhole and the like)
  std::optional<IpAddress> gateway;  // none: the destination is on the link
  std::optional<IpAddress> prefsrc;
  // The route's mtu metric. The kernel checks a forwarded packet against it only when it is
  // locked (`ip route add ... mtu lock N`), otherwise against the link's MTU. `ip -j route`
  // does not show the lock: add "lock": ["mtu"] to the metrics object to say it.
  uint32_t mtu = 0;
  bool mtu_locked = false;
  bool encap = false;    // lightweight tunnel: the helper answers BPF_FIB_LKUP_RET_UNSUPP_LWT
};

struct FibNeighbour {
  uint32_t ifindex = 0;
  IpAddress ip;
  std::array<uint8_t, 6> mac{};
  bool valid = true;  // NUD_VALID: reachable, stale, delay, probe, permanent or noarp
};

struct Fib {
  std::vector<FibLink> links;
  std::vector<FibRoute> routes;
  std::vector<FibNeighbour> neighbours;

  // Each adds what one listing of iproute2's JSON output holds; routes and neighbours name their
  // links, so links come first. Errors name the entry. Nothing is added when one fails.
  Result<void> add_links_json(std::string_view ip_j_addr_or_link_show);
  Result<void> add_routes_json(std::string_view ip_j_route_show);
  Result<void> add_neighbours_json(std::string_view ip_j_neigh_show);
  // This host's links and addresses, as `ip -j addr show` would list them.
  Result<void> add_host_links();
};

struct Environment {
  // bpf_printk / bpf_trace_printk / bpf_trace_vprintk output, one formatted message per call,
  // with the worker that printed it. Unset: the output is dropped (the library never prints).
  std::function<void(uint32_t worker, std::string_view message)> printk;
  // Seed of bpf_get_prandom_u32; worker w's sequence is determined by (seed, w). 0: random.
  uint64_t seed = 0;
  // What bpf_fib_lookup sees. Empty: every lookup answers -ENODEV, as for an unknown ifindex.
  Fib fib;
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
