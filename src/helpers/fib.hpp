// bpf_fib_lookup over a Fib: the answers the kernel's helper gives from its own tables
// (net/core/filter.c, bpf_ipv4_fib_lookup / bpf_ipv6_fib_lookup), with the same result codes and
// the same fields of struct bpf_fib_lookup written in the same cases.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

#include "ebpfvm/runtime.hpp"

namespace ebpfvm::detail {

class FibTables {
 public:
  explicit FibTables(const Fib& fib);

  // `params` is the program's 64-byte struct bpf_fib_lookup, read and written in place. XDP
  // always checks the MTU (tot_len); TC only when tot_len is set. Returns what the helper returns.
  int64_t lookup(uint8_t* params, uint64_t flags, bool check_mtu) const;
  // The MTU of link `ifindex` (0 when there is no such link).
  uint32_t link_mtu(uint32_t ifindex) const;

 private:
  struct Prefix {
    uint32_t table;
    uint8_t family, len;
    std::array<uint8_t, 16> bits;  // masked to len
    bool operator==(const Prefix&) const = default;
  };
  struct PrefixHash {
    size_t operator()(const Prefix& p) const;
  };
  enum class Found { None, Route, Throw };

  const FibLink* link(uint32_t ifindex) const;
  // The route a lookup of dst in one table settles on (reject types included), or none.
  Found find(uint32_t table, uint8_t family, const uint8_t* dst, uint32_t oif, const FibRoute** out) const;
  const FibRoute* route_for(uint8_t family, const uint8_t* dst, uint64_t flags, uint32_t ifindex, uint32_t tbid) const;
  const FibNeighbour* neighbour(uint32_t ifindex, uint8_t family, const uint8_t* addr) const;
  bool source(const FibRoute& r, const FibLink& out, const uint8_t* dst, uint8_t* src) const;

  Fib fib_;  // local routes for the links' own addresses added
  std::unordered_map<Prefix, std::vector<const FibRoute*>, PrefixHash> by_prefix_;  // lowest metric first
  std::map<std::pair<uint32_t, uint8_t>, std::vector<uint8_t>> lengths_;            // per table, longest first
  std::unordered_map<uint32_t, const FibLink*> links_;
  // by (link, address): the first entry listed wins, as a listing has one per address and link
  std::unordered_map<Prefix, const FibNeighbour*, PrefixHash> neighbours_;
};

}  // namespace ebpfvm::detail
