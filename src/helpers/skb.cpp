// tc and socket-filter helpers. The packet lives in SkbCtx's fixed buffer, which has room for any
// packet the helpers may make, so nothing is reallocated during a run. What the kernel's skb
// tracks beyond struct __sk_buff (the MAC and network header offsets, hash and checksum state)
// is in SkbCtx::st. Bytes a helper exposes (new head or tail room) are zeroed first.
#include "helpers/skb.hpp"

#include <algorithm>
#include <climits>
#include <cstring>

#include "maps/map_impl.hpp"
#include "runtime/run_state.hpp"

namespace ebpfvm::detail {
namespace {

constexpr long kEFault = -14, kENoMem = -12, kEInval = -22, kENotSupp = -524, kEAcces = -13, kEAlready = -114;
constexpr uint16_t kEthPIp = 0x0800, kEthPIpv6 = 0x86dd, kEthP8021Q = 0x8100, kEthP8021AD = 0x88a8;
constexpr uint32_t kEthHlen = 14, kVlanHlen = 4;

uint64_t ret(long v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); }
uint8_t* at(SkbCtx& s, uint32_t off) { return reinterpret_cast<uint8_t*>(s.data) + off; }
uint8_t* buf_at(SkbCtx& s, uint32_t off) { return s.buf + off; }
uint16_t rd16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void wr16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
uint16_t proto(const SkbCtx& s) { return __builtin_bswap16(static_cast<uint16_t>(s.md.protocol)); }
void set_proto(SkbCtx& s, uint16_t p) { s.md.protocol = __builtin_bswap16(p); }
bool is_vlan(uint16_t p) { return p == kEthP8021Q || p == kEthP8021AD; }
// The network header's offset from data (negative when data is past it: a socket filter's).
int64_t network_offset(const SkbCtx& s) { return int64_t{s.st.network} - skb_data_off(s); }

// Moves data back by n bytes (the new bytes are the caller's to fill); false when the buffer has
// no room left in front (the kernel would fail to reallocate: -ENOMEM).
bool push(SkbCtx& s, uint32_t n) {
  if (skb_data_off(s) < n) return false;
  s.data -= n;
  skb_sync(s);
  return true;
}
void pull(SkbCtx& s, uint32_t n) {
  s.data += n;
  skb_sync(s);
}

// ---- checksum arithmetic, as the kernel's (include/net/checksum.h) ----
uint32_t csum_add(uint32_t a, uint32_t b) {
  const uint32_t r = a + b;
  return r + (r < b);
}
uint32_t csum_sub(uint32_t a, uint32_t b) { return csum_add(a, ~b); }
uint16_t csum_fold(uint32_t c) {
  c = (c & 0xffff) + (c >> 16);
  c = (c & 0xffff) + (c >> 16);
  return static_cast<uint16_t>(~c);
}
uint16_t csum16_add(uint16_t c, uint16_t addend) {
  uint16_t r = static_cast<uint16_t>(c + addend);
  return static_cast<uint16_t>(r + (r < addend));
}
uint16_t csum16_sub(uint16_t c, uint16_t addend) { return csum16_add(c, static_cast<uint16_t>(~addend)); }
void csum_replace4(uint8_t* p, uint32_t from, uint32_t to) {
  wr16(p, csum_fold(csum_add(csum_sub(~uint32_t{rd16(p)}, from), to)));
}
void csum_replace2(uint8_t* p, uint16_t from, uint16_t to) {
  wr16(p, static_cast<uint16_t>(~csum16_add(csum16_sub(static_cast<uint16_t>(~rd16(p)), from), to)));
}
void csum_replace_by_diff(uint8_t* p, uint32_t diff) { wr16(p, csum_fold(csum_add(diff, ~uint32_t{rd16(p)}))); }

// ---- loads and stores ----
uint64_t skb_load_bytes(uint64_t ctx, uint64_t off, uint64_t to, uint64_t len, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  const uint64_t o = static_cast<uint32_t>(off);
  if (!s || o > INT_MAX || o + len > skb_len(*s)) {
    std::memset(reinterpret_cast<void*>(to), 0, len);
    return ret(kEFault);
  }
  std::memcpy(reinterpret_cast<void*>(to), at(*s, static_cast<uint32_t>(o)), len);
  return 0;
}
uint64_t skb_load_bytes_relative(uint64_t ctx, uint64_t off, uint64_t to, uint64_t len, uint64_t start, void*) {
  constexpr uint64_t kStartMac = 0, kStartNet = 1;
  SkbCtx* s = skb_of(ctx);
  const uint64_t o = static_cast<uint32_t>(off);
  const bool header = s && o <= 0xffff && ((start == kStartMac && s->st.mac_set) || start == kStartNet);
  const uint64_t from = header ? (start == kStartMac ? s->st.mac : s->st.network) + o : 0;
  if (!header || reinterpret_cast<uint64_t>(s->buf) + from + len > s->data_end) {
    std::memset(reinterpret_cast<void*>(to), 0, len);
    return ret(kEFault);
  }
  std::memcpy(reinterpret_cast<void*>(to), buf_at(*s, static_cast<uint32_t>(from)), len);
  return 0;
}
uint64_t skb_store_bytes(uint64_t ctx, uint64_t off, uint64_t from, uint64_t len, uint64_t flags, void*) {
  constexpr uint64_t kRecomputeCsum = 1, kInvalidateHash = 2;
  SkbCtx* s = skb_of(ctx);
  if (!s || (flags & ~(kRecomputeCsum | kInvalidateHash))) return ret(kEInval);
  const uint64_t o = static_cast<uint32_t>(off);
  if (o > INT_MAX) return ret(kEFault);
  if (o + len > skb_len(*s)) return ret(kEFault);  // past the packet (the kernel says -EFAULT here, -ENOMEM in pull_data)
  std::memmove(at(*s, static_cast<uint32_t>(o)), reinterpret_cast<const void*>(from), len);
  if (flags & kInvalidateHash) s->md.hash = 0, s->st.sw_hash = s->st.l4_hash = false;
  return 0;
}

// ---- checksums ----
constexpr uint64_t kHdrFieldMask = 0xf, kPseudoHdr = 1 << 4, kMarkMangled0 = 1 << 5, kMarkEnforce = 1 << 6, kIpv6 = 1 << 7;

// The 16-bit checksum at off, or null: the kernel's checks of both csum_replace helpers.
uint8_t* csum_field(SkbCtx& s, uint64_t off, long& err) {
  const uint64_t o = static_cast<uint32_t>(off);
  err = kEFault;
  if (o > 0xffff || (o & 1) || o + 2 > skb_len(s)) return nullptr;
  return at(s, static_cast<uint32_t>(o));
}
uint64_t l3_csum_replace(uint64_t ctx, uint64_t off, uint64_t from, uint64_t to, uint64_t flags, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s || (flags & ~kHdrFieldMask)) return ret(kEInval);
  long err;
  uint8_t* p = csum_field(*s, off, err);
  if (!p) return ret(err);
  switch (flags & kHdrFieldMask) {
    case 0:
      if (from) return ret(kEInval);
      csum_replace_by_diff(p, static_cast<uint32_t>(to));
      return 0;
    case 2: csum_replace2(p, static_cast<uint16_t>(from), static_cast<uint16_t>(to)); return 0;
    case 4: csum_replace4(p, static_cast<uint32_t>(from), static_cast<uint32_t>(to)); return 0;
    default: return ret(kEInval);
  }
}
// An skb here is never CHECKSUM_PARTIAL (BPF_PROG_TEST_RUN's is not either), so the pseudo-header
// flag changes nothing: the field is updated as a full checksum.
uint64_t l4_csum_replace(uint64_t ctx, uint64_t off, uint64_t from, uint64_t to, uint64_t flags, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s || (flags & ~(kHdrFieldMask | kPseudoHdr | kMarkMangled0 | kMarkEnforce | kIpv6))) return ret(kEInval);
  long err;
  uint8_t* p = csum_field(*s, off, err);
  if (!p) return ret(err);
  const bool mangled0 = flags & kMarkMangled0;
  if (mangled0 && !(flags & kMarkEnforce) && rd16(p) == 0) return 0;  // a UDP datagram without a checksum
  switch (flags & kHdrFieldMask) {
    case 0:
      if (from) return ret(kEInval);
      csum_replace_by_diff(p, static_cast<uint32_t>(to));
      break;
    case 2: csum_replace4(p, static_cast<uint16_t>(from), static_cast<uint16_t>(to)); break;
    case 4: csum_replace4(p, static_cast<uint32_t>(from), static_cast<uint32_t>(to)); break;
    default: return ret(kEInval);
  }
  if (mangled0 && rd16(p) == 0) wr16(p, 0xffff);  // CSUM_MANGLED_0
  return 0;
}
uint64_t csum_update(uint64_t ctx, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  return ret(skb_of(ctx) ? kENotSupp : kEInval);  // only CHECKSUM_COMPLETE skbs carry a csum to update
}
uint64_t csum_level(uint64_t ctx, uint64_t level, uint64_t, uint64_t, uint64_t, void*) {
  constexpr uint64_t kQuery = 0, kInc = 1, kDec = 2, kReset = 3;
  constexpr uint8_t kMaxLevel = 3;
  SkbCtx* s = skb_of(ctx);
  if (!s) return ret(kEInval);
  SkbState& st = s->st;
  switch (level) {
    case kQuery: return st.csum_unnecessary ? st.csum_level : ret(kEAcces);
    case kInc:
      if (!st.csum_unnecessary) st.csum_unnecessary = true, st.csum_level = 0;
      else if (st.csum_level < kMaxLevel) ++st.csum_level;
      return 0;
    case kDec:
      if (st.csum_unnecessary && st.csum_level == 0) st.csum_unnecessary = false;
      else if (st.csum_unnecessary) --st.csum_level;
      return 0;
    case kReset:
      st.csum_unnecessary = false, st.csum_level = 0;
      return 0;
    default: return ret(kEInval);
  }
}

// ---- metadata ----
uint64_t get_cgroup_classid(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return 0; }  // the root net_cls cgroup
uint64_t get_route_realm(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return 0; }     // no route attached
uint64_t skb_change_type(uint64_t ctx, uint64_t type, uint64_t, uint64_t, uint64_t, void*) {
  constexpr uint32_t kOtherHost = 3;
  SkbCtx* s = skb_of(ctx);
  if (!s || s->md.pkt_type > kOtherHost || static_cast<uint32_t>(type) > kOtherHost) return ret(kEInval);
  s->md.pkt_type = static_cast<uint32_t>(type);
  return 0;
}
uint64_t set_hash(uint64_t ctx, uint64_t hash, uint64_t, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return ret(kEInval);
  s->md.hash = static_cast<uint32_t>(hash);
  s->st.sw_hash = true, s->st.l4_hash = false;
  return 0;
}
uint64_t set_hash_invalid(uint64_t ctx, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  if (SkbCtx* s = skb_of(ctx)) s->md.hash = 0, s->st.sw_hash = s->st.l4_hash = false;
  return 0;
}
// The flow hash: the kernel's is keyed with a secret chosen at boot, so no two hosts agree on it;
// ebpfvm's is FNV-1a over the flow's addresses and ports, ordered so both directions hash alike,
// and never 0 (0 means "no hash").
uint32_t flow_hash(SkbCtx& s, bool& l4) {
  const int64_t nh = network_offset(s);
  const uint32_t len = skb_len(s);
  std::array<uint8_t, 36> a{}, b{};
  size_t n = 0;
  uint8_t l4proto = 0;
  uint32_t l4off = 0;
  const uint8_t* p = nh >= 0 ? at(s, static_cast<uint32_t>(nh)) : nullptr;
  if (p && proto(s) == kEthPIp && nh + 20 <= len) {
    std::memcpy(a.data(), p + 12, 4), std::memcpy(b.data(), p + 16, 4), n = 4;
    l4proto = p[9];
    l4off = static_cast<uint32_t>(nh) + (p[0] & 0xf) * 4u;
  } else if (p && proto(s) == kEthPIpv6 && nh + 40 <= len) {
    std::memcpy(a.data(), p + 8, 16), std::memcpy(b.data(), p + 24, 16), n = 16;
    l4proto = p[6];
    l4off = static_cast<uint32_t>(nh) + 40;
  }
  l4 = n && (l4proto == 6 || l4proto == 17) && l4off + 4 <= len;
  if (l4) std::memcpy(a.data() + n, at(s, l4off), 2), std::memcpy(b.data() + n, at(s, l4off + 2), 2);
  const size_t m = n + (l4 ? 2 : 0);
  if (std::lexicographical_compare(b.begin(), b.begin() + static_cast<long>(m), a.begin(), a.begin() + static_cast<long>(m))) std::swap(a, b);
  uint32_t h = 2166136261u;
  auto mix = [&](uint8_t x) { h = (h ^ x) * 16777619u; };
  for (size_t i = 0; i < m; ++i) mix(a[i]);
  for (size_t i = 0; i < m; ++i) mix(b[i]);
  mix(l4proto);
  mix(static_cast<uint8_t>(s.md.protocol)), mix(static_cast<uint8_t>(s.md.protocol >> 8));
  return h ? h : 1;
}
uint64_t get_hash_recalc(uint64_t ctx, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return 0;
  if (!s->st.sw_hash && !s->st.l4_hash) {
    bool l4 = false;
    s->md.hash = flow_hash(*s, l4);
    s->st.l4_hash = l4;
  }
  return s->md.hash;
}
uint64_t skb_ecn_set_ce(uint64_t ctx, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return 0;
  const int64_t nh = network_offset(*s);
  if (nh < 0) return 0;
  uint8_t* p = at(*s, static_cast<uint32_t>(nh));
  if (proto(*s) == kEthPIp && nh + 20 <= skb_len(*s)) {
    const uint32_t ecn = (p[1] + 1u) & 3;
    if (!(ecn & 2)) return !ecn;  // not ECN-capable (0), or CE already (1)
    const uint16_t add = static_cast<uint16_t>(__builtin_bswap16(0xfffb) + __builtin_bswap16(static_cast<uint16_t>(ecn)));
    wr16(p + 10, csum16_add(rd16(p + 10), add));
    p[1] |= 3;
    return 1;
  }
  if (proto(*s) == kEthPIpv6 && nh + 40 <= skb_len(*s)) {
    const uint8_t dsfield = static_cast<uint8_t>(((p[0] & 0xf) << 4) | (p[1] >> 4));
    if ((dsfield & 3) == 0) return 0;
    p[1] |= 0x30;  // ECN CE in the traffic class
    return 1;
  }
  return 0;
}

// ---- resizing ----
uint64_t skb_pull_data(uint64_t ctx, uint64_t len, uint64_t, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return ret(kEInval);
  return static_cast<uint32_t>(len) <= skb_len(*s) ? 0 : ret(kENoMem);  // the data is all linear already
}
uint64_t skb_change_tail(uint64_t ctx, uint64_t len, uint64_t flags, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return ret(kEInval);
  const uint32_t new_len = static_cast<uint32_t>(len);
  const int64_t min_len = std::max<int64_t>(0, network_offset(*s));
  if (flags || new_len > kSkbMaxLen || new_len < min_len) return ret(kEInval);
  const uint32_t cur = skb_len(*s);
  if (new_len > cur) {
    if (skb_data_off(*s) + uint64_t{new_len} > s->buf_size) return ret(kENoMem);
    std::memset(at(*s, cur), 0, new_len - cur);
  }
  s->data_end = s->data + new_len;
  skb_sync(*s);
  return 0;
}
uint64_t skb_change_head(uint64_t ctx, uint64_t len, uint64_t flags, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return ret(kEInval);
  const uint32_t room = static_cast<uint32_t>(len);
  const uint64_t new_len = uint64_t{skb_len(*s)} + room;
  if (flags || new_len > kSkbMaxLen) return ret(kEInval);
  if (!push(*s, room)) return ret(kENoMem);
  std::memset(at(*s, 0), 0, room);
  s->st.mac = skb_data_off(*s);  // skb_reset_mac_header
  s->st.mac_set = true;
  return 0;
}

// Room at off (from data): the first off bytes move to the front, len zeroed bytes follow them.
// Bytes past the packet that the move reads read as zero (the kernel reads its zeroed tailroom).
bool hdr_push(SkbCtx& s, uint32_t off, uint32_t len) {
  if (skb_data_off(s) + uint64_t{off} > s.buf_size || skb_data_off(s) < len) return false;
  if (off > skb_len(s)) std::memset(at(s, skb_len(s)), 0, off - skb_len(s));
  if (!push(s, len)) return false;
  std::memmove(at(s, 0), at(s, len), off);
  std::memset(at(s, off), 0, len);
  s.st.mac -= len;
  s.st.network -= len;
  return true;
}
void hdr_pop(SkbCtx& s, uint32_t off, uint32_t len) {
  std::memmove(at(s, len), at(s, 0), off);
  pull(s, len);
  s.st.mac += len;
  s.st.network += len;
}
uint64_t skb_adjust_room(uint64_t ctx, uint64_t diff, uint64_t mode, uint64_t flags, uint64_t, void*) {
  constexpr uint64_t kFixedGso = 1, kEncapV4 = 1 << 1, kEncapV6 = 1 << 2, kEncapGre = 1 << 3, kEncapUdp = 1 << 4,
                     kNoCsumReset = 1 << 5, kEncapEth = 1 << 6, kDecapV4 = 1 << 7, kDecapV6 = 1 << 8,
                     kEncapL2Mask = 0xffull << 56;
  constexpr uint64_t kEncapL3 = kEncapV4 | kEncapV6, kDecapL3 = kDecapV4 | kDecapV6;
  constexpr uint64_t kKnown = kFixedGso | kEncapL3 | kEncapGre | kEncapUdp | kEncapEth | kEncapL2Mask | kDecapL3 | kNoCsumReset;
  constexpr uint32_t kRoomNet = 0, kRoomMac = 1;
  SkbCtx* s = skb_of(ctx);
  if (!s || (flags & ~kKnown)) return ret(kEInval);
  const int32_t len_diff = static_cast<int32_t>(diff);
  const bool shrink = len_diff < 0;
  const uint32_t abs_diff = shrink ? 0u - static_cast<uint32_t>(len_diff) : static_cast<uint32_t>(len_diff);
  if (abs_diff > 0xfff) return ret(kEFault);
  const uint16_t p = proto(*s);
  if (p != kEthPIp && p != kEthPIpv6) return ret(kENotSupp);
  const uint32_t base_len = p == kEthPIp ? 20 : 40;
  uint32_t off = s->st.network - s->st.mac;
  if (static_cast<uint32_t>(mode) == kRoomNet) off += base_len;
  else if (static_cast<uint32_t>(mode) != kRoomMac) return ret(kENotSupp);
  uint32_t len_min = base_len;
  if (flags & kDecapL3) {
    if (!shrink) return ret(kEInval);
    if ((flags & kDecapL3) == kDecapL3) return ret(kEInval);
    len_min = (flags & kDecapV4) ? 20 : 40;
  }
  const int64_t nh = network_offset(*s);
  const int64_t len_cur = int64_t{skb_len(*s)} - nh;
  if ((shrink && (abs_diff >= len_cur || len_cur - abs_diff < len_min)) || (!shrink && uint64_t{skb_len(*s)} + abs_diff > kSkbMaxLen))
    return ret(kENotSupp);
  if (skb_data_off(*s) + uint64_t{off} + abs_diff > s->buf_size) return ret(kENoMem);
  if (shrink) {
    if (uint64_t{off} + abs_diff > skb_len(*s)) return ret(kENoMem);  // pskb_may_pull fails
    if (flags & ~(kFixedGso | kDecapL3 | kNoCsumReset)) return ret(kEInval);
    hdr_pop(*s, off, abs_diff);
    if (p == kEthPIp && (flags & kDecapV6)) set_proto(*s, kEthPIpv6);
    else if (p == kEthPIpv6 && (flags & kDecapV4)) set_proto(*s, kEthPIp);
  } else {
    const bool encap = flags & kEncapL3;
    const uint32_t inner_mac = static_cast<uint32_t>((flags & kEncapL2Mask) >> 56);
    if (encap) {
      if ((flags & kEncapL3) == kEncapL3) return ret(kEInval);
      if ((flags & kEncapGre) && (flags & kEncapUdp)) return ret(kEInval);
      if ((flags & kEncapEth) && inner_mac != kEthHlen) return ret(kEInval);
      if (s->st.encapsulation) return ret(kEAlready);
      if (inner_mac > abs_diff) return ret(kEInval);
    }
    if (!hdr_push(*s, off, abs_diff)) return ret(kENoMem);
    if (encap) {
      s->st.encapsulation = true;
      if (p == kEthPIp && (flags & kEncapV6)) set_proto(*s, kEthPIpv6);
      else if (p == kEthPIpv6 && (flags & kEncapV4)) set_proto(*s, kEthPIp);
    }
  }
  if (!(flags & kNoCsumReset)) s->st.csum_unnecessary = false, s->st.csum_level = 0;
  return 0;
}

// ---- VLANs: the outermost tag as metadata (hardware-accelerated), the others in the packet ----
// Inserts the metadata tag into the packet after the MAC addresses.
long vlan_insert(SkbCtx& s) {
  if (skb_data_off(s) != s.st.mac) return kEInval;  // data must be at the MAC header
  if (skb_len(s) < 12 || !push(s, kVlanHlen)) return kENoMem;
  std::memmove(at(s, 0), at(s, kVlanHlen), 12);
  wr16(at(s, 12), static_cast<uint16_t>(s.md.vlan_proto));
  wr16(at(s, 14), __builtin_bswap16(static_cast<uint16_t>(s.md.vlan_tci)));
  s.st.mac -= kVlanHlen;
  s.st.network -= kVlanHlen;
  set_proto(s, __builtin_bswap16(static_cast<uint16_t>(s.md.vlan_proto)));
  return 0;
}
// Takes the tag after the MAC addresses out of the packet.
long vlan_remove(SkbCtx& s, uint16_t& tci) {
  if (skb_data_off(s) != s.st.mac) return kEInval;
  if (skb_len(s) < kEthHlen + kVlanHlen) return kENoMem;
  tci = __builtin_bswap16(rd16(at(s, kEthHlen)));
  const uint16_t inner = __builtin_bswap16(rd16(at(s, kEthHlen + 2)));
  std::memmove(at(s, kVlanHlen), at(s, 0), 12);
  pull(s, kVlanHlen);
  if (inner >= 0x600) set_proto(s, inner);
  else set_proto(s, skb_len(s) >= 16 && rd16(at(s, 14)) == 0xffff ? 0x0001 : 0x0004);
  s.st.mac += kVlanHlen;
  if (s.st.network < s.st.mac + kEthHlen) s.st.network = s.st.mac + kEthHlen;
  return 0;
}
void vlan_put_meta(SkbCtx& s, uint16_t proto_be, uint16_t tci) {
  s.md.vlan_present = 1;
  s.md.vlan_proto = proto_be;
  s.md.vlan_tci = tci;
}
uint64_t skb_vlan_push(uint64_t ctx, uint64_t vlan_proto, uint64_t vlan_tci, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return ret(kEInval);
  uint16_t p = static_cast<uint16_t>(vlan_proto);  // network byte order
  if (p != __builtin_bswap16(kEthP8021Q) && p != __builtin_bswap16(kEthP8021AD)) p = __builtin_bswap16(kEthP8021Q);
  if (s->md.vlan_present)
    if (long e = vlan_insert(*s)) return ret(e);
  vlan_put_meta(*s, p, static_cast<uint16_t>(vlan_tci));
  return 0;
}
uint64_t skb_vlan_pop(uint64_t ctx, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s) return ret(kEInval);
  uint16_t tci = 0;
  if (s->md.vlan_present) {
    s->md.vlan_present = s->md.vlan_proto = s->md.vlan_tci = 0;
  } else {
    if (!is_vlan(proto(*s))) return 0;
    if (long e = vlan_remove(*s, tci)) return ret(e);
  }
  if (!is_vlan(proto(*s))) return 0;
  const uint16_t outer = static_cast<uint16_t>(s->md.protocol);
  if (long e = vlan_remove(*s, tci)) return ret(e);
  vlan_put_meta(*s, outer, tci);
  return 0;
}

// ---- redirects ----
uint64_t clone_redirect(uint64_t ctx, uint64_t ifindex, uint64_t flags, uint64_t, uint64_t, void*) {
  constexpr uint64_t kIngress = 1;
  SkbCtx* s = skb_of(ctx);
  if (!s || (flags & ~kIngress) || static_cast<uint32_t>(ifindex) == 0) return ret(kEInval);
  ++s->st.redirect_clones;
  return 0;
}

uint64_t skb_change_proto(uint64_t ctx, uint64_t to, uint64_t flags, uint64_t, uint64_t, void*) {
  constexpr uint32_t kLenDiff = 40 - 20;  // sizeof(struct ipv6hdr) - sizeof(struct iphdr)
  SkbCtx* s = skb_of(ctx);
  if (!s || flags) return ret(kEInval);
  const uint16_t from = proto(*s), want = __builtin_bswap16(static_cast<uint16_t>(to));
  const uint32_t off = s->st.network - s->st.mac;
  if (from == kEthPIp && want == kEthPIpv6) {
    if (!hdr_push(*s, off, kLenDiff)) return ret(kENoMem);
  } else if (from == kEthPIpv6 && want == kEthPIp) {
    if (uint64_t{off} + kLenDiff > skb_len(*s)) return ret(kENoMem);
    hdr_pop(*s, off, kLenDiff);
  } else {
    return ret(kENotSupp);
  }
  set_proto(*s, want);
  s->md.hash = 0, s->st.sw_hash = s->st.l4_hash = false;
  return 0;
}

// ---- tunnel metadata ----
struct TunnelKey {  // struct bpf_tunnel_key (44 bytes)
  uint32_t tunnel_id;
  uint32_t remote_ipv6[4];
  uint8_t tunnel_tos, tunnel_ttl;
  uint16_t tunnel_ext;  // tunnel_flags with BPF_F_TUNINFO_FLAGS
  uint32_t tunnel_label;
  uint32_t local_ipv6[4];
};
static_assert(sizeof(TunnelKey) == 44);
constexpr uint64_t kTunInfoIpv6 = 1, kZeroCsumTx = 1 << 1, kDontFragment = 1 << 2, kSeqNumber = 1 << 3, kNoTunnelKey = 1 << 4,
                   kTunInfoFlags = 1 << 4;
// TUNNEL_* flags as the kernel's ip_tunnel_flags_to_be16 gives them (network byte order)
constexpr uint16_t kTunCsum = 0x0100, kTunKey = 0x0400, kTunSeq = 0x0800, kTunDontFragment = 0x0001, kTunNoCache = 0x0020,
                   kTunOptionsPresent = 0x0008 | 0x0010 | 0x0040 | 0x0080;  // GENEVE, VXLAN, ERSPAN, GTP options
// The sizes older struct bpf_tunnel_key layouts had, which the kernel still takes.
bool compat_key_size(uint64_t size) {
  return size == offsetof(TunnelKey, local_ipv6) || size == offsetof(TunnelKey, tunnel_label) ||
         size == offsetof(TunnelKey, tunnel_ext) || size == offsetof(TunnelKey, remote_ipv6) + 4;
}
uint64_t skb_set_tunnel_key(uint64_t ctx, uint64_t from, uint64_t size, uint64_t flags, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  if (!s || (flags & ~(kTunInfoIpv6 | kZeroCsumTx | kDontFragment | kSeqNumber | kNoTunnelKey))) return ret(kEInval);
  if (size != sizeof(TunnelKey) && !compat_key_size(size)) return ret(kEInval);
  TunnelKey k{};
  std::memcpy(&k, reinterpret_cast<const void*>(from), size);
  if ((!(flags & kTunInfoIpv6) && k.tunnel_label) || k.tunnel_ext) return ret(kEInval);
  SkbState::Tunnel& t = s->st.tunnel;
  t = {};
  t.set = true;
  t.ipv6 = flags & kTunInfoIpv6;
  t.flags = kTunKey | kTunCsum | kTunNoCache;
  if (flags & kDontFragment) t.flags |= kTunDontFragment;
  if (flags & kZeroCsumTx) t.flags &= static_cast<uint16_t>(~kTunCsum);
  if (flags & kSeqNumber) t.flags |= kTunSeq;
  if (flags & kNoTunnelKey) t.flags &= static_cast<uint16_t>(~kTunKey);
  t.id = k.tunnel_id;
  t.tos = k.tunnel_tos;
  t.ttl = k.tunnel_ttl;
  if (t.ipv6) {
    std::memcpy(t.dst, k.remote_ipv6, 16);
    std::memcpy(t.src, k.local_ipv6, 16);
    t.label = __builtin_bswap32(k.tunnel_label) & __builtin_bswap32(0x000fffff);
  } else {
    const uint32_t dst = __builtin_bswap32(k.remote_ipv6[0]), src = __builtin_bswap32(k.local_ipv6[0]);
    std::memcpy(t.dst, &dst, 4);
    std::memcpy(t.src, &src, 4);
  }
  return 0;
}
uint64_t skb_get_tunnel_key(uint64_t ctx, uint64_t to, uint64_t size, uint64_t flags, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  auto fail = [&](long e) {
    std::memset(reinterpret_cast<void*>(to), 0, size);
    return ret(e);
  };
  if (!s || !s->st.tunnel.set || (flags & ~(kTunInfoIpv6 | kTunInfoFlags))) return fail(kEInval);
  const SkbState::Tunnel& t = s->st.tunnel;
  if (t.ipv6 != static_cast<bool>(flags & kTunInfoIpv6)) return fail(-71);  // -EPROTO
  if (size != sizeof(TunnelKey)) {
    if (!compat_key_size(size)) return fail(kEInval);
    if (size == offsetof(TunnelKey, remote_ipv6) + 4 && t.ipv6) return fail(kEInval);
  }
  // As the kernel's: built for a received packet's metadata, so "remote" is the info's source.
  TunnelKey k{};
  k.tunnel_id = static_cast<uint32_t>(t.id);
  k.tunnel_tos = t.tos;
  k.tunnel_ttl = t.ttl;
  k.tunnel_ext = flags & kTunInfoFlags ? t.flags : 0;
  if (t.ipv6) {
    std::memcpy(k.remote_ipv6, t.src, 16);
    std::memcpy(k.local_ipv6, t.dst, 16);
    k.tunnel_label = __builtin_bswap32(t.label);
  } else {
    uint32_t src, dst;
    std::memcpy(&src, t.src, 4);
    std::memcpy(&dst, t.dst, 4);
    k.remote_ipv6[0] = __builtin_bswap32(src);
    k.local_ipv6[0] = __builtin_bswap32(dst);
  }
  std::memcpy(reinterpret_cast<void*>(to), &k, size);
  return 0;
}
uint64_t skb_set_tunnel_opt(uint64_t ctx, uint64_t from, uint64_t size, uint64_t, uint64_t, void*) {
  constexpr uint64_t kMaxOpts = 255;  // IP_TUNNEL_OPTS_MAX
  SkbCtx* s = skb_of(ctx);
  if (!s || !s->st.tunnel.set || (size & 3)) return ret(kEInval);
  if (size > kMaxOpts) return ret(kENoMem);
  SkbState::Tunnel& t = s->st.tunnel;
  std::memcpy(s->tunnel_options, reinterpret_cast<const void*>(from), size);
  t.options_len = static_cast<uint32_t>(size);
  if (size) t.flags |= kTunOptionsPresent;
  return 0;
}
uint64_t skb_get_tunnel_opt(uint64_t ctx, uint64_t to, uint64_t size, uint64_t, uint64_t, void*) {
  SkbCtx* s = skb_of(ctx);
  const SkbState::Tunnel* t = s ? &s->st.tunnel : nullptr;
  long err = 0;
  if (!t || !t->set || !(t->flags & kTunOptionsPresent)) err = -2;  // -ENOENT
  else if (size < t->options_len) err = kENoMem;
  if (err) {
    std::memset(reinterpret_cast<void*>(to), 0, size);
    return ret(err);
  }
  std::memcpy(reinterpret_cast<void*>(to), s->tunnel_options, t->options_len);
  std::memset(reinterpret_cast<uint8_t*>(to) + t->options_len, 0, size - t->options_len);
  return t->options_len;
}

// ---- redirects through the neighbour table and to a veth peer ----
constexpr uint64_t kRedirectNeigh = 1 << 1, kRedirectPeer = 1 << 2, kRedirectNexthop = 1 << 3;  // the kernel's internal flags
uint64_t record_redirect(uint64_t ifindex, uint64_t flags) {
  RedirectTarget& t = current_run()->redirect;
  t.kind = RedirectTarget::Kind::Ifindex;
  t.ifindex = static_cast<uint32_t>(ifindex);
  t.map_id = 0;
  if (!t.map_name.empty()) t.map_name.clear();
  t.key = 0;
  t.flags = flags;
  return 7;  // TC_ACT_REDIRECT
}
uint64_t redirect_neigh(uint64_t ifindex, uint64_t params, uint64_t plen, uint64_t flags, uint64_t, void*) {
  constexpr uint64_t kParamsSize = 20;  // struct bpf_redir_neigh
  if ((plen && plen < kParamsSize) || flags || !current_run()) return 2;  // TC_ACT_SHOT
  (void)params;
  return record_redirect(ifindex, kRedirectNeigh | (plen ? kRedirectNexthop : 0));
}
uint64_t redirect_peer(uint64_t ifindex, uint64_t flags, uint64_t, uint64_t, uint64_t, void*) {
  if (flags || !current_run()) return 2;  // TC_ACT_SHOT
  return record_redirect(ifindex, kRedirectPeer);
}

// The test run's skb has a socket (a full one): the cgroup array's slot decides, and ebpfvm's are
// always empty (there are no cgroups to put in them).
uint64_t skb_under_cgroup(uint64_t ctx, uint64_t m, uint64_t idx, uint64_t, uint64_t, void*) {
  const auto* map = reinterpret_cast<const MapImpl*>(m);
  if (!skb_of(ctx) || map->spec().type != MapType::CgroupArray) return ret(kEInval);
  if (static_cast<uint32_t>(idx) >= map->spec().max_entries) return ret(-7);  // -E2BIG
  return ret(-11);  // -EAGAIN: an empty slot
}

constexpr SkbHelperDef kDefs[] = {
    // clang-format off
    {9, "bpf_skb_store_bytes", skb_store_bytes, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::PtrToMem, ArgKind::ConstSize, ArgKind::Anything}, true, true},
    {10, "bpf_l3_csum_replace", l3_csum_replace, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything, ArgKind::Anything, ArgKind::Anything}, true, true},
    {11, "bpf_l4_csum_replace", l4_csum_replace, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything, ArgKind::Anything, ArgKind::Anything}, true, true},
    {13, "bpf_clone_redirect", clone_redirect, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything}, true, false},
    {17, "bpf_get_cgroup_classid", get_cgroup_classid, RetKind::Integer, {ArgKind::PtrToCtx}, false, false},
    {18, "bpf_skb_vlan_push", skb_vlan_push, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything}, true, true},
    {19, "bpf_skb_vlan_pop", skb_vlan_pop, RetKind::Integer, {ArgKind::PtrToCtx}, true, true},
    {24, "bpf_get_route_realm", get_route_realm, RetKind::Integer, {ArgKind::PtrToCtx}, false, false},
    {26, "bpf_skb_load_bytes", skb_load_bytes, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::PtrToUninitMem, ArgKind::ConstSize}, false, false},
    {32, "bpf_skb_change_type", skb_change_type, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything}, false, false},
    {34, "bpf_get_hash_recalc", get_hash_recalc, RetKind::Integer, {ArgKind::PtrToCtx}, false, false},
    {38, "bpf_skb_change_tail", skb_change_tail, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything}, true, true},
    {39, "bpf_skb_pull_data", skb_pull_data, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything}, true, true},
    {40, "bpf_csum_update", csum_update, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything}, false, false},
    {41, "bpf_set_hash_invalid", set_hash_invalid, RetKind::Void, {ArgKind::PtrToCtx}, false, false},
    {43, "bpf_skb_change_head", skb_change_head, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything}, true, true},
    {48, "bpf_set_hash", set_hash, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything}, false, false},
    {50, "bpf_skb_adjust_room", skb_adjust_room, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything, ArgKind::Anything}, true, true},
    {68, "bpf_skb_load_bytes_relative", skb_load_bytes_relative, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::PtrToUninitMem, ArgKind::ConstSize, ArgKind::Anything}, false, false},
    {97, "bpf_skb_ecn_set_ce", skb_ecn_set_ce, RetKind::Integer, {ArgKind::PtrToCtx}, false, true},
    {20, "bpf_skb_get_tunnel_key", skb_get_tunnel_key, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::PtrToUninitMem, ArgKind::ConstSize, ArgKind::Anything}, false, false},
    {21, "bpf_skb_set_tunnel_key", skb_set_tunnel_key, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::PtrToMem, ArgKind::ConstSize, ArgKind::Anything}, false, false},
    {29, "bpf_skb_get_tunnel_opt", skb_get_tunnel_opt, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::PtrToUninitMem, ArgKind::ConstSize}, false, false},
    {30, "bpf_skb_set_tunnel_opt", skb_set_tunnel_opt, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::PtrToMem, ArgKind::ConstSize}, false, false},
    {31, "bpf_skb_change_proto", skb_change_proto, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything, ArgKind::Anything}, true, true},
    {33, "bpf_skb_under_cgroup", skb_under_cgroup, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::ConstMapPtr, ArgKind::Anything}, false, false},
    {152, "bpf_redirect_neigh", redirect_neigh, RetKind::Integer, {ArgKind::Anything, ArgKind::PtrToMemOrNull, ArgKind::ConstSizeOrZero, ArgKind::Anything}, false, false},
    {155, "bpf_redirect_peer", redirect_peer, RetKind::Integer, {ArgKind::Anything, ArgKind::Anything}, false, false},
    {135, "bpf_csum_level", csum_level, RetKind::Integer, {ArgKind::PtrToCtx, ArgKind::Anything}, false, false},
    // clang-format on
};

}  // namespace

std::span<const SkbHelperDef> skb_helpers() { return kDefs; }

SkbCtx* skb_of(uint64_t ctx) {
  RunState* r = current_run();
  return r && r->skb && reinterpret_cast<uint64_t>(r->skb) == ctx ? r->skb : nullptr;
}

uint64_t tc_redirect(uint64_t ifindex, uint64_t flags) {
  constexpr uint64_t kIngress = 1, kTcActShot = 2;
  if (flags & ~kIngress) return kTcActShot;
  return record_redirect(ifindex, flags);
}

}  // namespace ebpfvm::detail
