#include "helpers/fib.hpp"

#include <algorithm>
#include <cstring>

namespace ebpfvm::detail {
namespace {

constexpr uint8_t kInet = 2, kInet6 = 10;
constexpr uint32_t kTableDefault = 253, kTableMain = 254, kTableLocal = 255;
// BPF_FIB_LOOKUP_* flags and BPF_FIB_LKUP_RET_* codes (include/uapi/linux/bpf.h).
constexpr uint64_t kDirect = 1, kOutput = 2, kSkipNeigh = 4, kTbid = 8, kSrc = 16;
enum Ret : int64_t { kSuccess, kBlackhole, kUnreachable, kProhibit, kNotFwded, kFwdDisabled, kUnsuppLwt, kNoNeigh, kFragNeeded, kNoSrcAddr };
constexpr int64_t kENoDev = -19;
// struct bpf_fib_lookup offsets
constexpr size_t kFamily = 0, kTotLen = 6, kIfindex = 8, kMetric = 12, kSrcAddr = 16, kDstAddr = 32, kVlan = 48, kSmac = 52, kDmac = 58;

size_t addr_len(uint8_t family) { return family == kInet ? 4 : 16; }

std::array<uint8_t, 16> masked(const uint8_t* addr, uint8_t family, uint8_t len) {
  std::array<uint8_t, 16> out{};
  std::memcpy(out.data(), addr, addr_len(family));
  for (size_t bit = len; bit < 128; ++bit) out[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  return out;
}

bool in_prefix(const uint8_t* addr, const IpAddress& net, uint8_t len) {
  return masked(addr, net.family, len) == masked(net.bytes.data(), net.family, len);
}

// rt6_need_strict: multicast, link-local and loopback addresses are never forwarded.
bool ipv6_strict(const uint8_t* a) {
  static constexpr uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || std::memcmp(a, kLoopback, 16) == 0;
}

uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
int common_bits(const uint8_t* a, const uint8_t* b, size_t n) {
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t x = a[i] ^ b[i];
    if (x) return bits + __builtin_clz(x) - 24;
    bits += 8;
  }
  return bits;
}
void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
void store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// The local route the kernel makes for an address of a link's own.
FibRoute local_route(const FibLink& l, const FibLink::Address& a) {
  FibRoute r;
  r.type = FibRoute::Type::Local;
  r.family = a.ip.family;
  r.prefix = a.ip.bytes;
  r.prefix_len = static_cast<uint8_t>(addr_len(a.ip.family) * 8);
  r.table = kTableLocal;
  r.ifindex = l.ifindex;
  return r;
}

}  // namespace

size_t FibTables::PrefixHash::operator()(const Prefix& p) const {
  uint64_t h = (uint64_t{p.table} << 16) ^ (uint64_t{p.family} << 8) ^ p.len;
  for (uint8_t b : p.bits) h = (h ^ b) * 0x100000001b3ull;
  return static_cast<size_t>(h);
}

FibTables::FibTables(const Fib& fib) : fib_(fib) {
  for (const FibLink& l : fib.links)
    for (const FibLink::Address& a : l.addresses) fib_.routes.push_back(local_route(l, a));
  for (const FibLink& l : fib_.links) links_.emplace(l.ifindex, &l);
  for (const FibNeighbour& n : fib_.neighbours)
    if (n.ip.family == kInet || n.ip.family == kInet6)
      neighbours_.emplace(Prefix{n.ifindex, n.ip.family, 128, masked(n.ip.bytes.data(), n.ip.family, 128)}, &n);
  for (const FibRoute& r : fib_.routes) {
    if ((r.family != kInet && r.family != kInet6) || r.prefix_len > addr_len(r.family) * 8) continue;
    by_prefix_[Prefix{r.table, r.family, r.prefix_len, masked(r.prefix.data(), r.family, r.prefix_len)}].push_back(&r);
    std::vector<uint8_t>& lens = lengths_[{r.table, r.family}];
    if (std::find(lens.begin(), lens.end(), r.prefix_len) == lens.end()) lens.push_back(r.prefix_len);
  }
  for (auto& [key, routes] : by_prefix_)
    std::stable_sort(routes.begin(), routes.end(), [](const FibRoute* a, const FibRoute* b) { return a->metric < b->metric; });
  for (auto& [key, lens] : lengths_) std::sort(lens.rbegin(), lens.rend());
}

const FibLink* FibTables::link(uint32_t ifindex) const {
  auto it = links_.find(ifindex);
  return it == links_.end() ? nullptr : it->second;
}

// Longest prefix first, lowest metric among equals. A reject route (blackhole, unreachable,
// prohibit) ends the lookup whatever the flow's output link; others must leave by it when the
// lookup is made from the egress side (BPF_FIB_LOOKUP_OUTPUT). A throw route sends the lookup on
// to the next table.
FibTables::Found FibTables::find(uint32_t table, uint8_t family, const uint8_t* dst, uint32_t oif, const FibRoute** out) const {
  auto lens = lengths_.find({table, family});
  if (lens == lengths_.end()) return Found::None;
  for (uint8_t len : lens->second) {
    auto it = by_prefix_.find(Prefix{table, family, len, masked(dst, family, len)});
    if (it == by_prefix_.end()) continue;
    for (const FibRoute* r : it->second) {
      using T = FibRoute::Type;
      if (r->type == T::Throw) return Found::Throw;
      const bool reject = r->type == T::Blackhole || r->type == T::Unreachable || r->type == T::Prohibit;
      if (!reject && oif && r->ifindex != oif) continue;
      *out = r;
      return Found::Route;
    }
  }
  return Found::None;
}

// Without BPF_FIB_LOOKUP_DIRECT the kernel's default rules apply: the local table, then main,
// then default. With it, one table: main (IPv4's holds the local routes too, the two tables
// being merged while no custom rule exists) or params->tbid with BPF_FIB_LOOKUP_TBID.
const FibRoute* FibTables::route_for(uint8_t family, const uint8_t* dst, uint64_t flags, uint32_t ifindex, uint32_t tbid) const {
  // (per lookup, so no allocation: a fixed array and a count)
  std::array<uint32_t, 3> tables{kTableLocal, kTableMain, kTableDefault};
  size_t n = 3;
  if (flags & kDirect) {
    if (flags & kTbid) tables[0] = tbid, n = 1;
    else if (family == kInet) n = 2;
    else tables[0] = kTableMain, n = 1;
  }
  const uint32_t oif = flags & kOutput ? ifindex : 0;
  for (size_t i = 0; i < n; ++i) {
    const FibRoute* r = nullptr;
    if (find(tables[i], family, dst, oif, &r) == Found::Route) return r;  // none or a throw: the next table
  }
  return nullptr;
}

const FibNeighbour* FibTables::neighbour(uint32_t ifindex, uint8_t family, const uint8_t* addr) const {
  auto it = neighbours_.find(Prefix{ifindex, family, 128, masked(addr, family, 128)});  // `table` holds the link here
  return it == neighbours_.end() ? nullptr : it->second;
}

// BPF_FIB_LOOKUP_SRC. IPv4 (inet_select_addr): the route's preferred source, else an address of
// the output link, one on the gateway's (or destination's) subnet first, else one of any link,
// else 0. IPv6 (ipv6_dev_get_saddr, simplified): the preferred source, else a usable address of
// the output link or any other, the one sharing the longest prefix with the destination; none
// is BPF_FIB_LKUP_RET_NO_SRC_ADDR.
bool FibTables::source(const FibRoute& r, const FibLink& out, const uint8_t* dst, uint8_t* src) const {
  const size_t n = addr_len(r.family);
  if (r.prefsrc && r.prefsrc->family == r.family) {
    std::memcpy(src, r.prefsrc->bytes.data(), n);
    return true;
  }
  const uint8_t* gw_or_dst = r.gateway && r.gateway->family == r.family ? r.gateway->bytes.data() : dst;
  const FibLink::Address* best = nullptr;
  int best_score = -1;
  auto consider = [&](const FibLink& l, int bonus) {
    for (const FibLink::Address& a : l.addresses) {
      if (a.ip.family != r.family || (r.family == kInet6 && a.link_scope)) continue;
      const int score = bonus + (r.family == kInet ? in_prefix(gw_or_dst, a.ip, a.prefix_len) : common_bits(a.ip.bytes.data(), gw_or_dst, n));
      if (score > best_score) best = &a, best_score = score;
    }
  };
  consider(out, 1000);
  if (!best)
    for (const FibLink& l : fib_.links)
      if (&l != &out) consider(l, 0);
  if (best) std::memcpy(src, best->ip.bytes.data(), n);
  else if (r.family == kInet) std::memset(src, 0, 4);
  return best || r.family == kInet;
}

uint32_t FibTables::link_mtu(uint32_t ifindex) const {
  const FibLink* l = link(ifindex);
  return l ? l->mtu : 0;
}

int64_t FibTables::lookup(uint8_t* p, uint64_t flags, bool check_mtu) const {
  const uint8_t family = p[kFamily];
  if (family == kInet6 && (ipv6_strict(p + kDstAddr) || ipv6_strict(p + kSrcAddr))) return kNotFwded;
  const uint32_t ifindex = load32(p + kIfindex);
  const FibLink* in = link(ifindex);
  if (!in) return kENoDev;
  if (!in->forwarding) return kFwdDisabled;

  const uint32_t tbid = load32(p + kVlan);
  if (flags & kDirect) store32(p + kVlan, 0);  // the kernel clears tbid here: it is the VLAN output
  const FibRoute* r = route_for(family, p + kDstAddr, flags, ifindex, tbid);
  if (!r) return kNotFwded;
  switch (r->type) {
    case FibRoute::Type::Unicast: break;
    case FibRoute::Type::Blackhole: return kBlackhole;
    case FibRoute::Type::Unreachable: return kUnreachable;
    case FibRoute::Type::Prohibit: return kProhibit;
    default: return kNotFwded;  // local, broadcast, multicast, ...
  }
  const FibLink* out = link(r->ifindex);
  if (!out) return kNotFwded;  // Fib::add_routes_json never makes one

  uint32_t mtu = 0;
  if (check_mtu) {
    mtu = r->mtu && r->mtu_locked ? r->mtu : family == kInet ? std::min<uint32_t>(out->mtu, 0xffff) : out->mtu;
    uint16_t tot_len;
    std::memcpy(&tot_len, p + kTotLen, 2);
    if (tot_len > mtu) {
      store16(p + kTotLen, static_cast<uint16_t>(mtu));  // mtu_result, a union with tot_len
      return kFragNeeded;
    }
  }
  if (r->encap) return kUnsuppLwt;
  store32(p + kMetric, r->metric);
  store32(p + kIfindex, out->ifindex);
  if ((flags & kSrc) && !source(*r, *out, p + kDstAddr, p + kSrcAddr)) return kNoSrcAddr;

  uint8_t next_family = family;
  if (r->gateway) {
    next_family = r->gateway->family;
    if (next_family != family) p[kFamily] = next_family;  // an IPv4 route through an IPv6 gateway
    std::memcpy(p + kDstAddr, r->gateway->bytes.data(), addr_len(next_family));
  }
  if (!(flags & kSkipNeigh)) {
    const FibNeighbour* nb = neighbour(out->ifindex, next_family, p + kDstAddr);
    if (!nb || !nb->valid) return kNoNeigh;
    std::memcpy(p + kDmac, nb->mac.data(), 6);
    std::memcpy(p + kSmac, out->mac.data(), 6);
  }
  store32(p + kVlan, 0);  // h_vlan_proto, h_vlan_TCI
  if (mtu) store16(p + kTotLen, static_cast<uint16_t>(mtu));
  return kSuccess;
}

}  // namespace ebpfvm::detail
