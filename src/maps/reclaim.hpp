// Deferred reclamation (epoch based): a map element removed while a program on another thread may
// still hold a pointer to its value is freed only after every run that could have seen it ended.
// Program runs and user-side map calls hold a Guard; deleters call retire() instead of freeing.
#pragma once

#include <cstdint>

namespace ebpfvm::maps::reclaim {

class Guard {
 public:
  Guard();
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
};

// Frees p with free_fn once no Guard that was active at this moment is still active.
void retire(void* p, void (*free_fn)(void*));
// Frees whatever can be freed now (tests and shutdown).
void collect();
// Elements retired and not yet freed (tests).
uint64_t pending();

}  // namespace ebpfvm::maps::reclaim
