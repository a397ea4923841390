#include "runtime/run_state.hpp"

#include <chrono>
#include <memory>

namespace ebpfvm::detail {
namespace {

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

RuntimeShared::RuntimeShared(Environment e, uint32_t workers) : env(std::move(e)), fib(env.fib), prandom(workers ? workers : 1) {
  env.fib = {};  // the tables hold their own copy, indexed: a full routing table once is enough
  uint64_t seed = env.seed ? env.seed : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (size_t w = 0; w < prandom.size(); ++w) {
    uint64_t x = seed + w * 0x1000193ull;
    prandom[w] = splitmix(x) | 1;  // xorshift state must not be 0
  }
}

bool RunState::allows(uint64_t addr, uint64_t size, bool write) const {
  auto inside = [&](uint64_t base, uint64_t len) { return addr >= base && size <= len && addr - base <= len - size; };
  if (xdp && inside(xdp->data_meta, xdp->data_end - xdp->data_meta)) return true;
  if (skb && inside(skb->data, skb->data_end - skb->data)) return true;
  for (const MemRegion& r : regions)
    if ((r.writable || !write) && inside(r.base, r.size)) return true;
  return false;
}

bool RunState::knows_map(const void* p) const {
  for (const MapImpl* m : maps)
    if (m == p) return true;
  return false;
}

void RunState::add_region(const MemRegion& r) {
  for (MemRegion& have : regions)
    if (have.base == r.base && have.size == r.size && have.alloc == r.alloc) {
      have.writable = have.writable && r.writable;
      return;
    }
  // Every checked access scans this list: a run handed thousands of distinct values would make
  // each access slow without spending its instruction budget.
  if (regions.size() >= kMaxRegions) {
    if (fault.empty()) fault = "more than " + std::to_string(kMaxRegions) + " map values or records handed out in one run";
    return;
  }
  regions.push_back(r);
}

bool RunState::take_alloc(uint64_t ptr) {
  for (size_t i = 0; i < regions.size(); ++i)
    if (regions[i].alloc && regions[i].base == ptr) {
      regions.erase(regions.begin() + static_cast<long>(i));
      return true;
    }
  return false;
}

thread_local constinit RunState* t_current_run = nullptr;
thread_local constinit StepObserver* t_step_observer = nullptr;
thread_local constinit RunState* t_first = nullptr;
thread_local constinit bool t_first_busy = false;

void RunState::reset() {
  worker = 0;
  shared = nullptr;
  xdp = nullptr;
  skb = nullptr;
  checked = false;
  redirect.kind = RedirectTarget::Kind::None;
  // Mostly empty already: a test is a load, a clear is stores (every run pays this).
  if (!redirect.map_name.empty()) redirect.map_name.clear();
  tail_calls = 0;
  if (!regions.empty()) regions.clear();
  if (!maps.empty()) maps.clear();
  if (!fault.empty()) fault.clear();
  callbacks = {};
  memory = {};
  callback_depth = 0;
  budget = 0;
  depth = 0;
  held_lock = 0;
  packet = {};
}

bool RunState::clean() const {
  // Or-ed, not short-circuited: one branch for the whole test.
  const uint64_t words = uint64_t{worker} | reinterpret_cast<uintptr_t>(shared) | reinterpret_cast<uintptr_t>(xdp) | reinterpret_cast<uintptr_t>(skb) |
                         uint64_t{checked} | uint64_t{redirect.kind != RedirectTarget::Kind::None} | redirect.map_name.size() |
                         tail_calls | regions.size() | maps.size() | fault.size() |
                         reinterpret_cast<uintptr_t>(callbacks.invoke) | reinterpret_cast<uintptr_t>(callbacks.engine) |
                         reinterpret_cast<uintptr_t>(memory.allows) | reinterpret_cast<uintptr_t>(memory.guard) | callback_depth |
                         budget | depth | reinterpret_cast<uintptr_t>(packet.data()) | packet.size() | held_lock;
  return words == 0;
}

namespace {
// The outermost run of a thread (nearly every run) uses t_first_state; nested runs (callbacks,
// helpers that run programs) take states from the pool. t_first, a pointer with no dynamic
// initialisation, reaches it from other files without a call to the TLS wrapper.
struct Pool {
  std::vector<std::unique_ptr<RunState>> states;
  size_t used = 0;
};
thread_local Pool t_pool;
thread_local RunState t_first_state;
}  // namespace

RunState& make_first() {
  t_first = &t_first_state;
  return t_first_state;
}

PooledRun::PooledRun() : prev_(t_current_run) {
  if (!t_first_busy) {
    t_first_busy = true;
    state_ = t_first ? t_first : &make_first();
  } else {
    if (t_pool.used == t_pool.states.size()) t_pool.states.push_back(std::make_unique<RunState>());
    state_ = t_pool.states[t_pool.used++].get();
  }
  t_current_run = state_;
}

PooledRun::~PooledRun() {
  state_->reset();  // its runs set the XDP context, worker and environment: rarely clean
  t_current_run = prev_;
  if (state_ == t_first) t_first_busy = false;
  else --t_pool.used;
}


}  // namespace ebpfvm::detail
