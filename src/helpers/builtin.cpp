// The Linux helpers ebpfvm implements, with the kernel's ids, prototypes and return values.
// Helpers reach the run they serve through current_run(). In checked mode the engine has already
// checked every pointer argument against the prototype before a helper runs; helpers still check
// map types and flags, as the kernel's do.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "ebpfvm/helpers.hpp"
#include "helpers/builtin.hpp"
#include "helpers/printk.hpp"
#include "helpers/skb.hpp"
#include "maps/map_impl.hpp"
#include "runtime/run_state.hpp"

namespace ebpfvm {
namespace {

using detail::MapImpl;
using detail::RunState;
namespace err = detail::err;
namespace run_use = detail::run_use;

constexpr uint64_t kXdpAborted = 0, kXdpRedirect = 4;

RunState& run() {
  static thread_local RunState fallback;  // a bare call outside any run (tests of helpers alone)
  RunState* r = detail::current_run();
  return r ? *r : fallback;
}
MapImpl* map_of(uint64_t p) { return reinterpret_cast<MapImpl*>(p); }
void* ptr(uint64_t p) { return reinterpret_cast<void*>(p); }
uint64_t ret(long v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); }
uint64_t clock_ns(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// ---- maps ----
uint64_t map_lookup(uint64_t m, uint64_t key, uint64_t, uint64_t, uint64_t, void*) {
  if (!map_of(m)->program_lookup_allowed()) return 0;
  return reinterpret_cast<uint64_t>(map_of(m)->lookup(ptr(key), run().worker));
}
uint64_t map_update(uint64_t m, uint64_t key, uint64_t value, uint64_t flags, uint64_t, void*) {
  MapImpl* map = map_of(m);
  if (!map->program_lookup_allowed() || map->is_map_in_map()) return ret(err::kInval);
  if (map->frozen()) return ret(err::kPerm);
  return ret(map->update(ptr(key), ptr(value), flags, run().worker));
}
uint64_t map_delete(uint64_t m, uint64_t key, uint64_t, uint64_t, uint64_t, void*) {
  MapImpl* map = map_of(m);
  if (!map->program_lookup_allowed() || map->is_map_in_map()) return ret(err::kInval);
  if (map->frozen()) return ret(err::kPerm);
  return ret(map->remove(ptr(key)));
}
uint64_t map_push(uint64_t m, uint64_t value, uint64_t flags, uint64_t, uint64_t, void*) {
  return ret(map_of(m)->push(ptr(value), flags));
}
uint64_t map_pop(uint64_t m, uint64_t value, uint64_t, uint64_t, uint64_t, void*) {
  return ret(map_of(m)->pop(ptr(value), false));
}
uint64_t map_peek(uint64_t m, uint64_t value, uint64_t, uint64_t, uint64_t, void*) {
  return ret(map_of(m)->pop(ptr(value), true));
}

// ---- time, randomness, cpu ----
uint64_t ktime_ns(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t ktime_boot_ns(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return clock_ns(CLOCK_BOOTTIME); }
uint64_t ktime_coarse_ns(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  return clock_ns(CLOCK_MONOTONIC_COARSE);
}
uint64_t prandom_u32(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  RunState& r = run();
  static thread_local uint64_t local = 0x2545f4914f6cdd1dull;
  uint64_t& x = r.shared && r.worker < r.shared->prandom.size() ? r.shared->prandom[r.worker] : local;
  x ^= x << 13;  // xorshift64
  x ^= x >> 7;
  x ^= x << 17;
  return static_cast<uint32_t>(x >> 16);
}
uint64_t smp_processor_id(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return run().worker; }

// ---- printk ----
void emit_printk(const std::string& msg) {
  RunState& r = run();
  if (r.shared && r.shared->env.printk) r.shared->env.printk(r.worker, msg);
}
uint64_t trace_printk(uint64_t fmt, uint64_t fmt_size, uint64_t a1, uint64_t a2, uint64_t a3, void*) {
  uint64_t args[3] = {a1, a2, a3};
  auto msg = detail::format_printk(static_cast<const char*>(ptr(fmt)), fmt_size, args, 3);
  if (!msg) return ret(err::kInval);
  emit_printk(*msg);
  return msg->size();
}
uint64_t trace_vprintk(uint64_t fmt, uint64_t fmt_size, uint64_t data, uint64_t data_len, uint64_t, void*) {
  if (data_len % 8 || data_len > 8 * 12 || (data_len && !data)) return ret(err::kInval);
  uint64_t args[12] = {};
  if (data_len) std::memcpy(args, ptr(data), data_len);
  auto msg = detail::format_printk(static_cast<const char*>(ptr(fmt)), fmt_size, args, data_len / 8);
  if (!msg) return ret(err::kInval);
  emit_printk(*msg);
  return msg->size();
}

// ---- checksums ----
// csum_diff: the ones'-complement sum of ~from and to, added to seed (lib/checksum.c semantics:
// the buffer sum folded to 16 bits, then added to the 32-bit seed with end-around carry).
uint64_t csum_diff(uint64_t from, uint64_t from_size, uint64_t to, uint64_t to_size, uint64_t seed, void*) {
  if ((from_size | to_size) % 4 || from_size + to_size > 512) return ret(err::kInval);
  uint64_t sum = 0;
  auto add_words = [&](uint64_t p, uint64_t n, bool invert) {
    for (uint64_t i = 0; i < n; i += 4) {
      uint32_t w;
      std::memcpy(&w, static_cast<const uint8_t*>(ptr(p)) + i, 4);
      if (invert) w = ~w;
      sum += (w & 0xffff) + (w >> 16);
    }
  };
  add_words(from, from_size, true);
  add_words(to, to_size, false);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  uint32_t result = static_cast<uint32_t>(sum) + static_cast<uint32_t>(seed);
  if (static_cast<uint32_t>(seed) > result) result += 1;
  return result;
}

// ---- XDP ----
detail::XdpCtx* xdp_of(uint64_t ctx) {
  RunState& r = run();
  return r.xdp && reinterpret_cast<uint64_t>(r.xdp) == ctx ? r.xdp : nullptr;
}
uint64_t xdp_adjust_head(uint64_t ctx, uint64_t delta, uint64_t, uint64_t, uint64_t, void*) {
  auto* x = xdp_of(ctx);
  if (!x) return ret(err::kInval);
  const int64_t off = static_cast<int32_t>(delta);
  const uint64_t metalen = x->data - x->data_meta;
  const uint64_t data_start = reinterpret_cast<uint64_t>(x->hard_start) + detail::kXdpFrameHeader + metalen;
  const uint64_t data = x->data + static_cast<uint64_t>(off);
  if (static_cast<int64_t>(data - data_start) < 0 ||
      static_cast<int64_t>(data - (x->data_end - detail::kEthHeaderLen)) > 0)
    return ret(err::kInval);
  if (metalen) std::memmove(ptr(x->data_meta + static_cast<uint64_t>(off)), ptr(x->data_meta), metalen);
  if (off < 0) std::memset(ptr(data), 0, static_cast<size_t>(-off));  // grown headers start zeroed
  x->data_meta += static_cast<uint64_t>(off);
  x->data = data;
  return 0;
}
uint64_t xdp_adjust_meta(uint64_t ctx, uint64_t delta, uint64_t, uint64_t, uint64_t, void*) {
  auto* x = xdp_of(ctx);
  if (!x) return ret(err::kInval);
  const uint64_t frame_end = reinterpret_cast<uint64_t>(x->hard_start) + detail::kXdpFrameHeader;
  const uint64_t meta = x->data_meta + static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(delta)));
  if (meta < frame_end || meta > x->data) return ret(err::kInval);
  const uint64_t metalen = x->data - meta;
  if (metalen % 4 || metalen > detail::kXdpMaxMetaLen) return ret(-13);  // -EACCES
  if (meta < x->data_meta) std::memset(ptr(meta), 0, x->data_meta - meta);
  x->data_meta = meta;
  return 0;
}
uint64_t xdp_adjust_tail(uint64_t ctx, uint64_t delta, uint64_t, uint64_t, uint64_t, void*) {
  auto* x = xdp_of(ctx);
  if (!x) return ret(err::kInval);
  const int64_t off = static_cast<int32_t>(delta);
  const uint64_t hard_end = reinterpret_cast<uint64_t>(x->hard_start) + x->frame_size - detail::kXdpSharedInfo;
  const uint64_t data_end = x->data_end + static_cast<uint64_t>(off);
  if (off > 0 && data_end > hard_end) return ret(err::kInval);
  if (static_cast<int64_t>(data_end - (x->data + detail::kEthHeaderLen)) < 0) return ret(err::kInval);
  if (off > 0) std::memset(ptr(x->data_end), 0, static_cast<size_t>(off));
  x->data_end = data_end;
  return 0;
}
uint64_t xdp_get_buff_len(uint64_t ctx, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  auto* x = xdp_of(ctx);
  return x ? x->data_end - x->data : 0;
}
uint64_t xdp_load_bytes(uint64_t ctx, uint64_t off, uint64_t buf, uint64_t len, uint64_t, void*) {
  auto* x = xdp_of(ctx);
  if (!x) return ret(err::kInval);
  const uint64_t size = x->data_end - x->data;
  if (static_cast<uint32_t>(off) != off || off > size || size - off < len) return ret(err::kInval);
  std::memcpy(ptr(buf), ptr(x->data + off), len);
  return 0;
}
uint64_t xdp_store_bytes(uint64_t ctx, uint64_t off, uint64_t buf, uint64_t len, uint64_t, void*) {
  auto* x = xdp_of(ctx);
  if (!x) return ret(err::kInval);
  const uint64_t size = x->data_end - x->data;
  if (static_cast<uint32_t>(off) != off || off > size || size - off < len) return ret(err::kInval);
  std::memmove(ptr(x->data + off), ptr(buf), len);
  return 0;
}
// Field by field: assigning a fresh RedirectTarget would build and move a string per call.
void set_redirect(RedirectTarget& t, RedirectTarget::Kind kind, uint32_t ifindex, uint32_t map_id, std::string_view map_name,
                  uint32_t key, uint64_t flags) {
  t.kind = kind;
  t.ifindex = ifindex;
  t.map_id = map_id;
  t.map_name.assign(map_name);
  t.key = key;
  t.flags = flags;
}
uint64_t redirect(uint64_t ifindex, uint64_t flags, uint64_t, uint64_t, uint64_t, void*) {
  if (run().skb) return detail::tc_redirect(ifindex, flags);  // tc's own verdicts and flags
  if (flags) return kXdpAborted;
  set_redirect(run().redirect, RedirectTarget::Kind::Ifindex, static_cast<uint32_t>(ifindex), 0, {}, 0, 0);
  return kXdpRedirect;
}
uint64_t redirect_map(uint64_t m, uint64_t key, uint64_t flags, uint64_t, uint64_t, void*) {
  constexpr uint64_t kActionMask = 3, kBroadcast = 1 << 3, kExcludeIngress = 1 << 4;
  if (flags & ~(kActionMask | kBroadcast | kExcludeIngress)) return kXdpAborted;
  MapImpl* map = map_of(m);
  const MapType t = map->spec().type;
  if (t != MapType::Devmap && t != MapType::DevmapHash && t != MapType::Cpumap && t != MapType::Xskmap)
    return kXdpAborted;
  const uint32_t k = static_cast<uint32_t>(key);
  if (!(flags & kBroadcast) && !map->lookup(&k, 0)) return flags & kActionMask;
  set_redirect(run().redirect, RedirectTarget::Kind::Map, 0, map->id(), map->spec().name, k, flags & (kBroadcast | kExcludeIngress));
  return kXdpRedirect;
}
uint64_t perf_event_output(uint64_t ctx, uint64_t m, uint64_t flags, uint64_t data, uint64_t size, void*) {
  constexpr uint64_t kIndexMask = 0xffffffffull, kCurrentCpu = 0xffffffffull, kCtxLenMask = 0xfffffull << 32;
  if (flags & ~(kIndexMask | kCtxLenMask)) return ret(err::kInval);
  RunState& r = run();
  uint64_t index = flags & kIndexMask;
  if (index == kCurrentCpu) index = r.worker;
  const uint64_t ctx_len = (flags & kCtxLenMask) >> 32;
  const void* extra = nullptr;
  if (ctx_len) {
    // The packet's first bytes: an XDP frame's or an skb's
    auto* x = xdp_of(ctx);
    auto* s = detail::skb_of(ctx);
    const uint64_t data = x ? x->data : s ? s->data : 0, end = x ? x->data_end : s ? s->data_end : 0;
    if (!data || ctx_len > end - data) return ret(-14);  // -EFAULT
    extra = ptr(data);
  }
  return ret(detail::perf_output(*map_of(m), index, r.worker, ptr(data), size, extra, ctx_len));
}

// The kernel's XDP helper: plen and flags checked, then a lookup that always checks the MTU.
uint64_t fib_lookup(uint64_t, uint64_t params, uint64_t plen, uint64_t flags, uint64_t, void*) {
  constexpr uint64_t kParamsSize = 64, kKnownFlags = 0x3f;  // DIRECT OUTPUT SKIP_NEIGH TBID SRC MARK
  if (plen < kParamsSize || (flags & ~kKnownFlags)) return ret(err::kInval);
  auto* p = static_cast<uint8_t*>(ptr(params));
  if (p[0] != 2 && p[0] != 10) return ret(-97);  // -EAFNOSUPPORT
  RunState& r = run();
  if (!r.shared) return ret(-19);  // a bare run has no links: -ENODEV, as for an unknown ifindex
  if (!r.skb) return ret(r.shared->fib.lookup(p, flags, true));
  // tc's variant checks tot_len against the route's MTU when it is given; otherwise, after a
  // successful lookup, the skb's length against the output link's (is_skb_forwardable: the MTU
  // plus an Ethernet header and a VLAN tag), and reports that MTU.
  uint16_t tot_len;
  std::memcpy(&tot_len, p + 6, 2);
  int64_t rc = r.shared->fib.lookup(p, flags, tot_len != 0);
  if (rc == 0 && tot_len == 0) {
    uint32_t out;
    std::memcpy(&out, p + 8, 4);
    const uint32_t mtu = r.shared->fib.link_mtu(out);
    if (r.skb->data_end - r.skb->data > uint64_t{mtu} + 14 + 4) rc = 8;  // BPF_FIB_LKUP_RET_FRAG_NEEDED
    const uint16_t result = static_cast<uint16_t>(mtu);
    std::memcpy(p + 6, &result, 2);  // mtu_result
  }
  return ret(rc);
}

// ---- locks ----
// One lock at a time per run, released before exit: the kernel's verifier enforces this; here the
// run state does, so an unverified program cannot deadlock the host on a word it set itself.
uint64_t spin_lock(uint64_t lock, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  RunState& r = run();
  if (r.held_lock) {
    r.fault = "bpf_spin_lock while already holding a lock";
    return 0;
  }
  auto* l = static_cast<uint32_t*>(ptr(lock));
  // Holders are program runs that cannot sleep or call helpers with the lock held, so a lock busy
  // for half a second was never going to be released (a program that set the word itself).
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t spins = 1; __atomic_exchange_n(l, 1u, __ATOMIC_ACQUIRE); ++spins) {
    if (spins % 4096 == 0 && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(500)) {
      r.fault = "bpf_spin_lock: the lock is never released";
      return 0;
    }
  }
  r.held_lock = lock;
  return 0;
}
uint64_t spin_unlock(uint64_t lock, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  RunState& r = run();
  if (r.held_lock != lock) {
    r.fault = "bpf_spin_unlock of a lock this run does not hold";
    return 0;
  }
  r.held_lock = 0;
  __atomic_store_n(static_cast<uint32_t*>(ptr(lock)), 0u, __ATOMIC_RELEASE);
  return 0;
}

// ---- ring buffers ----
uint64_t ringbuf_output(uint64_t m, uint64_t data, uint64_t size, uint64_t flags, uint64_t, void*) {
  if (flags & ~3ull) return ret(err::kInval);
  if (map_of(m)->spec().type != MapType::Ringbuf) return ret(err::kInval);
  return ret(detail::ringbuf_output(*map_of(m), ptr(data), size, run().worker));
}
uint64_t ringbuf_reserve(uint64_t m, uint64_t size, uint64_t flags, uint64_t, uint64_t, void*) {
  if (flags) return 0;
  RunState& r = run();
  void* p = detail::ringbuf_reserve(*map_of(m), size, r.worker);
  if (p && r.checked) r.add_region({reinterpret_cast<uint64_t>(p), size, true, true});
  return reinterpret_cast<uint64_t>(p);
}
uint64_t ringbuf_commit(uint64_t data, bool discard) {
  RunState& r = run();
  if (r.checked && !r.take_alloc(data)) {
    r.fault = "ring buffer record at " + std::to_string(data) + " was not reserved in this run, or was already submitted";
    return 0;
  }
  detail::ringbuf_commit(ptr(data), discard);
  return 0;
}
uint64_t ringbuf_submit(uint64_t data, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return ringbuf_commit(data, false); }
uint64_t ringbuf_discard(uint64_t data, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return ringbuf_commit(data, true); }

// ---- callbacks ----
bool call_back(RunState& r, uint64_t fn, const uint64_t args[5], uint64_t* r0) {
  if (!r.callbacks.invoke) {
    r.fault = "callback called outside a program run";
    return false;
  }
  return r.callbacks.invoke(r.callbacks.engine, fn, args, r0);
}
uint64_t loop(uint64_t nr, uint64_t fn, uint64_t cb_ctx, uint64_t flags, uint64_t, void*) {
  constexpr uint64_t kMaxLoops = 1u << 23;
  if (flags) return ret(err::kInval);
  if (nr > kMaxLoops) return ret(err::kTooBig);
  RunState& r = run();
  for (uint64_t i = 0; i < nr; ++i) {
    const uint64_t args[5] = {i, cb_ctx, 0, 0, 0};
    uint64_t rc = 0;
    if (!call_back(r, fn, args, &rc)) return 0;
    if (rc) return i + 1;
  }
  return nr;
}
uint64_t for_each_map_elem(uint64_t m, uint64_t fn, uint64_t cb_ctx, uint64_t flags, uint64_t, void*) {
  if (flags) return ret(err::kInval);
  MapImpl* map = map_of(m);
  const MapType t = map->spec().type;
  if (t != MapType::Array && t != MapType::PercpuArray && t != MapType::Hash && t != MapType::PercpuHash &&
      t != MapType::LruHash && t != MapType::LruPercpuHash)
    return ret(err::kInval);
  RunState& r = run();
  // The callback gets a pointer to a copy of the key, as the kernel's does for hash maps.
  std::vector<uint8_t> key(map->spec().key_size), next(map->spec().key_size);
  uint64_t visited = 0;
  for (long rc = map->next_key(nullptr, key.data()); rc == 0 && visited <= map->spec().max_entries;
       rc = map->next_key(key.data(), next.data()), key.swap(next)) {
    void* value = map->lookup(key.data(), r.worker);
    if (!value) continue;
    ++visited;
    std::vector<uint8_t> key_copy = key;
    size_t regions_before = r.regions.size();
    if (r.checked) {
      r.add_region({reinterpret_cast<uint64_t>(key_copy.data()), key_copy.size(), false, false});
      r.add_region({reinterpret_cast<uint64_t>(value), map->spec().value_size, !map->frozen(), false});
    }
    const uint64_t args[5] = {m, reinterpret_cast<uint64_t>(key_copy.data()), reinterpret_cast<uint64_t>(value), cb_ctx, 0};
    uint64_t stop = 0;
    bool ok = call_back(r, fn, args, &stop);
    if (r.checked) r.regions.resize(std::min(r.regions.size(), regions_before));  // the key copy dies here
    if (!ok || stop) break;
  }
  return visited;
}

uint64_t tail_call_outside(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  return ret(err::kInval);  // the engine implements bpf_tail_call itself; reached only through callx
}

HelperRegistry make_builtin() {
  using A = ArgKind;
  using R = RetKind;
  struct Def {
    uint32_t id;
    const char* name;
    HelperFn fn;
    R ret;
    std::array<A, 5> args;
    Resource resource = Resource::None;
  };
  const Def defs[] = {
      {1, "bpf_map_lookup_elem", map_lookup, R::MapValueOrNull, {A::ConstMapPtr, A::PtrToMapKey}},
      {2, "bpf_map_update_elem", map_update, R::Integer, {A::ConstMapPtr, A::PtrToMapKey, A::PtrToMapValue, A::Anything}},
      {3, "bpf_map_delete_elem", map_delete, R::Integer, {A::ConstMapPtr, A::PtrToMapKey}},
      {5, "bpf_ktime_get_ns", ktime_ns, R::Integer, {}},
      // r3..r5 are read as the format says, set or not (as the kernel declares it: two arguments)
      {6, "bpf_trace_printk", trace_printk, R::Integer, {A::PtrToMem, A::ConstSize}},
      {7, "bpf_get_prandom_u32", prandom_u32, R::Integer, {}},
      {8, "bpf_get_smp_processor_id", smp_processor_id, R::Integer, {}},
      {12, "bpf_tail_call", tail_call_outside, R::Integer, {A::PtrToCtx, A::ConstMapPtr, A::Anything}},
      {23, "bpf_redirect", redirect, R::Integer, {A::Anything, A::Anything}},
      {25, "bpf_perf_event_output", perf_event_output, R::Integer,
       {A::PtrToCtx, A::ConstMapPtr, A::Anything, A::PtrToMem, A::ConstSizeOrZero}},
      {28, "bpf_csum_diff", csum_diff, R::Integer,
       {A::PtrToMemOrNull, A::ConstSizeOrZero, A::PtrToMemOrNull, A::ConstSizeOrZero, A::Anything}},
      {44, "bpf_xdp_adjust_head", xdp_adjust_head, R::Integer, {A::PtrToCtx, A::Anything}},
      {51, "bpf_redirect_map", redirect_map, R::Integer, {A::ConstMapPtr, A::Anything, A::Anything}},
      {54, "bpf_xdp_adjust_meta", xdp_adjust_meta, R::Integer, {A::PtrToCtx, A::Anything}},
      {65, "bpf_xdp_adjust_tail", xdp_adjust_tail, R::Integer, {A::PtrToCtx, A::Anything}},
      {69, "bpf_fib_lookup", fib_lookup, R::Integer, {A::PtrToCtx, A::PtrToUninitMem, A::ConstSize, A::Anything}},
      {87, "bpf_map_push_elem", map_push, R::Integer, {A::ConstMapPtr, A::PtrToMapValue, A::Anything}},
      {88, "bpf_map_pop_elem", map_pop, R::Integer, {A::ConstMapPtr, A::PtrToUninitMapValue}},
      {89, "bpf_map_peek_elem", map_peek, R::Integer, {A::ConstMapPtr, A::PtrToUninitMapValue}},
      {93, "bpf_spin_lock", spin_lock, R::Void, {A::PtrToSpinLock}, Resource::TakesLock},
      {94, "bpf_spin_unlock", spin_unlock, R::Void, {A::PtrToSpinLock}, Resource::GivesLock},
      {125, "bpf_ktime_get_boot_ns", ktime_boot_ns, R::Integer, {}},
      {130, "bpf_ringbuf_output", ringbuf_output, R::Integer, {A::ConstMapPtr, A::PtrToMem, A::ConstSizeOrZero, A::Anything}},
      {131, "bpf_ringbuf_reserve", ringbuf_reserve, R::AllocMemOrNull, {A::ConstMapPtr, A::Anything, A::Anything},
       Resource::AcquiresRef},
      {132, "bpf_ringbuf_submit", ringbuf_submit, R::Void, {A::PtrToAllocMem, A::Anything}, Resource::ReleasesRef},
      {133, "bpf_ringbuf_discard", ringbuf_discard, R::Void, {A::PtrToAllocMem, A::Anything}, Resource::ReleasesRef},
      {160, "bpf_ktime_get_coarse_ns", ktime_coarse_ns, R::Integer, {}},
      {164, "bpf_for_each_map_elem", for_each_map_elem, R::Integer, {A::ConstMapPtr, A::PtrToFunc, A::Anything, A::Anything}},
      {177, "bpf_trace_vprintk", trace_vprintk, R::Integer,
       {A::PtrToMem, A::ConstSize, A::PtrToFormatArgsOrNull, A::ConstSizeOrZero}},
      {181, "bpf_loop", loop, R::Integer, {A::Anything, A::PtrToFunc, A::Anything, A::Anything}},
      {188, "bpf_xdp_get_buff_len", xdp_get_buff_len, R::Integer, {A::PtrToCtx}},
      {189, "bpf_xdp_load_bytes", xdp_load_bytes, R::Integer, {A::PtrToCtx, A::Anything, A::PtrToUninitMem, A::ConstSize}},
      {190, "bpf_xdp_store_bytes", xdp_store_bytes, R::Integer, {A::PtrToCtx, A::Anything, A::PtrToMem, A::ConstSize}},
  };
  HelperRegistry reg;
  for (const detail::SkbHelperDef& d : detail::skb_helpers())
    reg.set(Helper{d.id, d.name, d.fn, nullptr, HelperProto{d.ret, d.args, d.changes_packet, d.writes_packet || d.changes_packet}});
  for (const Def& d : defs) {
    const bool moves_packet = d.id == 44 || d.id == 54 || d.id == 65;  // adjust_head, adjust_meta, adjust_tail
    const bool writes = moves_packet || d.id == 190 || d.id == 12;       // xdp_store_bytes, tail_call
    reg.set(Helper{d.id, d.name, d.fn, nullptr, HelperProto{d.ret, d.args, moves_packet, writes, d.resource}});
  }
  return reg;
}

// Each built-in's detail::run_uses. Ring buffer records need none in an unchecked run: the
// regions they add are checked mode's, and a verified program submits what it reserves.
struct RunUse {
  HelperFn fn;
  uint32_t uses;
};
const RunUse kRunUses[] = {
    {map_lookup, run_use::kNothing},      {map_update, run_use::kNothing},         {map_delete, run_use::kNothing},
    {map_push, run_use::kNothing},        {map_pop, run_use::kNothing},            {map_peek, run_use::kNothing},
    {ktime_ns, run_use::kNothing},        {ktime_boot_ns, run_use::kNothing},      {ktime_coarse_ns, run_use::kNothing},
    {prandom_u32, run_use::kNothing},     {smp_processor_id, run_use::kNothing},   {trace_printk, run_use::kNothing},
    {trace_vprintk, run_use::kNothing},   {csum_diff, run_use::kNothing},          {ringbuf_output, run_use::kNothing},
    {ringbuf_reserve, run_use::kNothing}, {ringbuf_submit, run_use::kNothing},     {ringbuf_discard, run_use::kNothing},
    {perf_event_output, run_use::kNothing}, {fib_lookup, run_use::kNothing},       {xdp_adjust_head, run_use::kNothing},
    {xdp_adjust_meta, run_use::kNothing}, {xdp_adjust_tail, run_use::kNothing},    {xdp_get_buff_len, run_use::kNothing},
    {xdp_load_bytes, run_use::kNothing},  {xdp_store_bytes, run_use::kNothing},    {tail_call_outside, run_use::kNothing},
    {redirect, run_use::kRedirect},       {redirect_map, run_use::kRedirect},      {loop, run_use::kCallbacks},
    {for_each_map_elem, run_use::kCallbacks}, {spin_lock, run_use::kLock},         {spin_unlock, run_use::kLock},
};

}  // namespace

const HelperRegistry& HelperRegistry::builtin() {
  static const HelperRegistry reg = make_builtin();
  return reg;
}

uint32_t detail::run_uses(HelperFn fn) {
  for (const RunUse& u : kRunUses)
    if (u.fn == fn) return u.uses;
  for (const detail::SkbHelperDef& d : detail::skb_helpers())  // they read the run's skb, as others its XDP context
    if (d.fn == fn) return run_use::kNothing;
  for (const Helper& h : HelperRegistry::builtin().all())
    if (h.fn == fn) return run_use::kEverything;
  return run_use::kNothing;
}

}  // namespace ebpfvm
