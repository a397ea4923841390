#include "maps/reclaim.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

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
  std::mutex mu;  // slots and retired
  std::vector<std::shared_ptr<Slot>> slots;
  std::vector<Retired> retired;
};

State& state() {
  static State* s = new State;  // never destroyed: threads may exit after static destruction
  return *s;
}

// One slot per thread, unregistered when the thread ends.
struct ThreadSlot {
  std::shared_ptr<Slot> slot = std::make_shared<Slot>();
  unsigned depth = 0;
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

ThreadSlot& me() {
  thread_local ThreadSlot t;
  return t;
}

// Caller holds state().mu.
void collect_locked(State& s) {
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
}

}  // namespace

Guard::Guard() {
  ThreadSlot& t = me();
  if (t.depth++ == 0) {
    t.slot->active.store(state().epoch.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

Guard::~Guard() {
  ThreadSlot& t = me();
  if (--t.depth == 0) t.slot->active.store(0, std::memory_order_release);
}

void retire(void* p, void (*free_fn)(void*)) {
  State& s = state();
  std::lock_guard lk(s.mu);
  // The element was unlinked before this point: readers entering from the next epoch on cannot
  // reach it, so it may be freed once every reader of this epoch or earlier has left.
  s.retired.push_back({p, free_fn, s.epoch.fetch_add(1, std::memory_order_seq_cst)});
  if (s.retired.size() >= 64) collect_locked(s);
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
