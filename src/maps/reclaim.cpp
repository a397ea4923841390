#include "maps/reclaim.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ebpfvm::maps::reclaim {
namespace {

struct Slot {
  std::atomic<uint64_t> active{0};  // epoch at entry, 0 when outside any Guard
};

struct Retired {
  void* p;
  void (*free_fn)(void*);
  uint64_t epoch;
};

struct State {
  std::atomic<uint64_t> epoch{1};
  std::mutex mu;  // slots, retired and next_collect
  std::vector<std::shared_ptr<Slot>> slots;
  std::vector<Retired> retired;
  size_t next_collect = 64;
  // With membarrier(2), readers entering a Guard need no fence of their own: the collector forces
  // one on every running thread of the process before it reads the slots (the asymmetric fence of
  // userspace RCU). Without it (old kernels, seccomp), readers fence.
  bool asymmetric = false;
  State() {
    asymmetric = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }
};

State& state() {
  static State* s = new State;  // never destroyed: threads may exit after static destruction
  return *s;
}

// Registered while the process is still likely to have one thread: the kernel then skips the RCU
// grace period it waits for when other threads share the mm (measured 11 ms per process, paid by
// the first map access of every run of ubpf-run).
[[maybe_unused]] const bool g_registered_early = (state(), true);

// One slot per thread, registered at the thread's first Guard and unregistered when it ends.
struct ThreadSlot {
  std::shared_ptr<Slot> slot = std::make_shared<Slot>();
  ThreadSlot() {
    std::lock_guard lk(state().mu);
    state().slots.push_back(slot);
  }
  ~ThreadSlot() {
    std::lock_guard lk(state().mu);
    auto& v = state().slots;
    v.erase(std::remove(v.begin(), v.end(), slot), v.end());
  }
};

// The fast path reads only these, which need no thread_local initialisation guard.
thread_local Slot* t_slot = nullptr;
thread_local unsigned t_depth = 0;
thread_local State* t_state = nullptr;

[[gnu::noinline]] void register_thread() {
  thread_local ThreadSlot t;
  t_slot = t.slot.get();
  t_state = &state();
}

void full_fence(const State& s) {
  if (s.asymmetric) syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  else std::atomic_thread_fence(std::memory_order_seq_cst);
}

// Caller holds state().mu.
void collect_locked(State& s) {
  full_fence(s);
  uint64_t oldest = s.epoch.load(std::memory_order_seq_cst);
  for (const auto& slot : s.slots) {
    uint64_t a = slot->active.load(std::memory_order_seq_cst);
    if (a != 0) oldest = std::min(oldest, a);
  }
  std::vector<Retired> keep;
  std::vector<Retired> free_now;
  for (const Retired& r : s.retired) (r.epoch < oldest ? free_now : keep).push_back(r);
  s.retired.swap(keep);
  for (const Retired& r : free_now) r.free_fn(r.p);
  // A long run keeps elements alive: do not pay a collection (and a membarrier) per retire then.
  s.next_collect = std::max<size_t>(64, 2 * s.retired.size());
}

}  // namespace

Guard::Guard() {
  if (t_depth++ != 0) return;
  if (!t_slot) register_thread();
  const State& s = *t_state;
  // The epoch read before the slot is published and the map reads after it: acquire keeps them in
  // that order; the store-then-load order is what the fence (or the collector's membarrier) gives.
  t_slot->active.store(s.epoch.load(std::memory_order_acquire), std::memory_order_relaxed);
  if (s.asymmetric) std::atomic_signal_fence(std::memory_order_seq_cst);
  else std::atomic_thread_fence(std::memory_order_seq_cst);
}

Guard::~Guard() {
  if (--t_depth == 0) t_slot->active.store(0, std::memory_order_release);
}

void retire(void* p, void (*free_fn)(void*)) {
  State& s = state();
  std::lock_guard lk(s.mu);
  // The element was unlinked before this point: readers entering from the next epoch on cannot
  // reach it, so it may be freed once every reader of this epoch or earlier has left.
  s.retired.push_back({p, free_fn, s.epoch.fetch_add(1, std::memory_order_seq_cst)});
  if (s.retired.size() >= s.next_collect) collect_locked(s);
}

void collect() {
  State& s = state();
  std::lock_guard lk(s.mu);
  s.epoch.fetch_add(1, std::memory_order_seq_cst);
  collect_locked(s);
}

uint64_t pending() {
  std::lock_guard lk(state().mu);
  return state().retired.size();
}

}  // namespace ebpfvm::maps::reclaim
