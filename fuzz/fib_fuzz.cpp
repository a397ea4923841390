// libFuzzer target: arbitrary bytes as the three iproute2 JSON listings --links, --routes and
// --neighbours take, then as bpf_fib_lookup queries on the network they built. Bad input must give
// an error, never a crash, and a listing that fails must add nothing. A lookup must return one of
// the helper's codes, and a success must name a link the network has (and, unless the query
// skipped the neighbour table, the MAC of a valid neighbour on it as dmac and the link's as smac).
//
// Input: three JSON documents and the queries, separated by 0x00 bytes (links, routes,
// neighbours, then 64-byte struct bpf_fib_lookup images each followed by a flags byte).
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "ebpfvm/runtime.hpp"
#include "helpers/fib.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// The next 0x00-separated piece of the input.
std::string_view take(std::string_view& in) {
  const size_t end = in.find('\0');
  std::string_view piece = in.substr(0, end);
  in = end == std::string_view::npos ? std::string_view() : in.substr(end + 1);
  return piece;
}

template <class Add>
void add_checked(ebpfvm::Fib& fib, Add add) {
  const size_t links = fib.links.size(), routes = fib.routes.size(), neighbours = fib.neighbours.size();
  auto r = add();
  if (!r) {
    check(!r.error().message.empty());
    check(fib.links.size() == links && fib.routes.size() == routes && fib.neighbours.size() == neighbours);
  }
}

void query(const ebpfvm::Fib& fib, const ebpfvm::detail::FibTables& tables, const uint8_t* image, uint8_t flag_bits) {
  uint8_t p[64];
  std::memcpy(p, image, 64);
  p[0] = p[0] & 1 ? 10 : 2;  // the helper refuses other families before it looks
  const uint64_t flags = flag_bits & 0x3f;
  const int64_t rc = tables.lookup(p, flags, (flag_bits & 0x40) != 0);
  check(rc == -19 || (rc >= 0 && rc <= 9));
  if (rc != 0) return;
  uint32_t ifindex;
  std::memcpy(&ifindex, p + 8, 4);
  const ebpfvm::FibLink* out = nullptr;
  for (const ebpfvm::FibLink& l : fib.links)
    if (l.ifindex == ifindex) out = &l;
  check(out != nullptr);
  if (flags & 4) return;  // BPF_FIB_LOOKUP_SKIP_NEIGH
  check(std::memcmp(p + 52, out->mac.data(), 6) == 0);
  bool known = false;
  for (const ebpfvm::FibNeighbour& n : fib.neighbours)
    known |= n.valid && n.ifindex == ifindex && std::memcmp(p + 58, n.mac.data(), 6) == 0;
  check(known);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string_view links = take(in), routes = take(in), neighbours = take(in);
  ebpfvm::Fib fib;
  add_checked(fib, [&] { return fib.add_links_json(links); });
  add_checked(fib, [&] { return fib.add_routes_json(routes); });
  add_checked(fib, [&] { return fib.add_neighbours_json(neighbours); });
  const ebpfvm::detail::FibTables tables(fib);
  for (size_t at = 0; at + 65 <= in.size() && at < 65 * 64; at += 65)
    query(fib, tables, reinterpret_cast<const uint8_t*>(in.data()) + at, static_cast<uint8_t>(in[at + 64]));
  return 0;
}
