// What one program run owns: which worker it is, the packet, the redirect it asked for, the tail
// calls it made, and (in checked mode) the memory it has been handed. Helpers reach it through
// current_run(); the engine installs it for the duration of a run (runs on one thread may nest:
// bpf_loop callbacks, or an embedder's helper that runs another program).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ebpfvm/runtime.hpp"
#include "helpers/fib.hpp"
#include "progtype/skb.hpp"
#include "progtype/xdp.hpp"

namespace ebpfvm::detail {

class MapImpl;

struct MemRegion {
  uint64_t base = 0;
  uint64_t size = 0;
  bool writable = false;
  bool alloc = false;  // a ring buffer reservation, to be submitted or discarded
};

// Per-Object state shared by its programs' runs: the environment (its FIB indexed for
// bpf_fib_lookup) and per-worker PRNG states.
struct RuntimeShared {
  Environment env;
  FibTables fib;
  std::vector<uint64_t> prandom;  // one per worker, seeded from env.seed
  explicit RuntimeShared(Environment e, uint32_t workers);
};

// How an engine runs a callback (bpf_loop, for_each_map_elem) at a code address it handed out.
struct CallbackInvoker {
  // Returns false (and the run faults) if `code` is not a callback entry of the running program.
  bool (*invoke)(const void* engine, uint64_t code, const uint64_t args[5], uint64_t* r0) = nullptr;
  const void* engine = nullptr;
};

// The engine's full view of what the program may access (its stack and static regions included).
struct MemChecker {
  bool (*allows)(const void* guard, uint64_t addr, uint64_t size, bool write) = nullptr;
  const void* guard = nullptr;
};

struct RunState {
  static constexpr size_t kMaxRegions = 4096;
  uint32_t worker = 0;
  RuntimeShared* shared = nullptr;  // nullptr for a bare Interpreter run
  XdpCtx* xdp = nullptr;
  SkbCtx* skb = nullptr;  // tc and socket-filter runs: the skb (its packet is what LD_ABS/LD_IND read)
  bool checked = false;

  // XDP redirect recorded by bpf_redirect / bpf_redirect_map.
  RedirectTarget redirect;

  // Tail calls made so far in this run; every engine stops at kMaxTailCalls (MAX_TAIL_CALL_CNT).
  static constexpr uint32_t kMaxTailCalls = 33;
  uint32_t tail_calls = 0;

  // Checked mode: memory handed to the program at run time (map values, ring buffer
  // reservations, the stacks of enclosing frames while a callback runs) and maps it may name.
  std::vector<MemRegion> regions;
  std::vector<const MapImpl*> maps;
  std::string fault;  // set by a helper that found a checked-mode violation

  CallbackInvoker callbacks;
  MemChecker memory;  // checked mode: what helpers that read program memory on their own consult
  uint32_t callback_depth = 0;
  uint64_t budget = 0;  // checked mode: instructions left, shared by nested callback runs
  uint32_t depth = 0;      // Interpreter::run calls in progress on this state
  std::span<uint8_t> packet;  // what LD_ABS/LD_IND read (JIT runs without an skb)
  uint64_t held_lock = 0;  // the bpf_spin_lock this run holds (the kernel allows one at a time)

  // Back to a fresh state, keeping the vectors' capacity.
  void reset();
  // As reset() leaves it (loads only: checking is cheaper than resetting).
  bool clean() const;

  bool allows(uint64_t addr, uint64_t size, bool write) const;
  // allows() plus the engine's stack and static regions.
  bool may_access(uint64_t addr, uint64_t size, bool write) const {
    return memory.allows ? memory.allows(memory.guard, addr, size, write) : allows(addr, size, write);
  }
  bool knows_map(const void* p) const;
  void add_region(const MemRegion& r);
  // Drops a ring buffer reservation from the regions; false when ptr is not one.
  bool take_alloc(uint64_t ptr);
};

// What LD_ABS/LD_IND read in a run: the skb's packet as it is now (helpers move and resize it),
// else the packet the run was given.
inline std::span<uint8_t> ld_packet(const RunState& r, std::span<uint8_t> given) {
  if (r.skb) [[unlikely]]
    return {reinterpret_cast<uint8_t*>(r.skb->data), static_cast<size_t>(r.skb->data_end - r.skb->data)};
  return given;
}

// Copies a recorded redirect into a result (the run's own is cleared after, keeping its memory).
// Field by field, each as wide as the helper stored it: a copy the compiler merges (ifindex and
// map_id as one 8-byte load, the name's inline buffer as 16) cannot be served from the helper's
// narrower stores just made, and stalls (~4 ns a packet).
inline void take_redirect(RedirectTarget& to, const RedirectTarget& from) {
  to.kind = from.kind;
  to.ifindex = from.ifindex;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // keeps the two 4-byte copies apart
  to.map_id = from.map_id;
  to.key = from.key;
  to.flags = from.flags;
  if (from.map_name.empty()) to.map_name.clear();
  else to.map_name.assign(from.map_name);
}
// Back to no redirect, the name's memory kept.
inline void clear_redirect(RedirectTarget& r) {
  r.kind = RedirectTarget::Kind::None;
  if (!r.map_name.empty()) r.map_name.clear();
}

// constinit, here and below: no dynamic initialisation, so other files reach these without a
// call to the TLS wrapper.
extern thread_local constinit RunState* t_current_run;

// Tests and fuzzers (the containment oracle, verifier/oracle.hpp): told before every instruction
// a checked interpreter run on this thread executes. `image` is the running InterpImage, `slot`
// the instruction, `regs` r0..r10.
struct StepObserver {
  virtual void step(const void* image, size_t slot, const uint64_t* regs, const RunState& run) = 0;

 protected:
  ~StepObserver() = default;
};
extern thread_local constinit StepObserver* t_step_observer;
inline RunState* current_run() { return t_current_run; }

// States are clean (as reset() leaves them) while nobody holds them.
//
// The thread's outermost state, for a run that finds none in progress (current_run() is
// nullptr): installed as current_run() until leave_outermost(). PooledRun without its
// bookkeeping, inline for the engines' most common path: the caller leaves the state clean,
// clearing what it set and what its program used (or, when it cannot know, checking clean() and
// resetting).
extern thread_local constinit RunState* t_first;  // the thread's outermost state, once made
extern thread_local constinit bool t_first_busy;
RunState& make_first();
inline RunState& begin_outermost() {
  RunState* s = t_first;
  if (!s) [[unlikely]]
    s = &make_first();
  t_first_busy = true;
  t_current_run = s;
  return *s;
}
inline void leave_outermost() {
  t_current_run = nullptr;
  t_first_busy = false;
}

// A RunState for one run on this thread, reused from run to run (so a run allocates nothing once
// warm) and never shared by nested runs. Installs itself as current_run() while it lives, and
// resets the state when it ends.
class PooledRun {
 public:
  PooledRun();
  ~PooledRun();
  PooledRun(const PooledRun&) = delete;
  PooledRun& operator=(const PooledRun&) = delete;
  RunState& state() { return *state_; }

 private:
  RunState* state_;
  RunState* prev_;
};


}  // namespace ebpfvm::detail
