// A compiled program (the JIT's output) and its outermost run, inline for the callers that run
// it per packet (JitProgram::run, LoadedProgram::run_xdp).
#pragma once

#include <optional>
#include <vector>

#include "ebpfvm/helpers.hpp"
#include "ebpfvm/jit.hpp"
#include "helpers/builtin.hpp"
#include "jit/code_memory.hpp"
#include "maps/reclaim.hpp"
#include "runtime/bindings.hpp"
#include "runtime/run_state.hpp"

namespace ebpfvm::detail {

struct JitImage {
  using EntryFn = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
  CodeMemory memory;
  EntryFn entry = nullptr;
  JitTarget target = JitTarget::Host;  // what the code is for (jit/backend.hpp); only the host's runs
  std::vector<uint64_t> callbacks;   // native addresses of functions whose address the program takes
  Bindings bindings;
  bool uses_maps = false;            // runs take an epoch guard only if the program names a map
  uint32_t run_uses = 0;             // what its calls use of a run state (detail::run_use)
  // A program whose only use of a run is the LD_ABS/LD_IND packet (no calls of any kind): the
  // packet comes in the call's 5th and 6th arguments (size, data), and its loads are inlined.
  bool packet_args = false;
  std::vector<MemRegion> regions;
  HelperRegistry registry;
  JitStats stats;
};

// Calls the program's entry: r1..r5, and the packet as packet_args images take it.
inline uint64_t call_entry(const JitImage& img, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5,
                           std::span<const uint8_t> packet) {
  if (!img.packet_args) return img.entry(r1, r2, r3, r4, r5);
  using PacketFn = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
  return reinterpret_cast<PacketFn>(reinterpret_cast<void*>(img.entry))(r1, r2, r3, r4, packet.size(), reinterpret_cast<uintptr_t>(packet.data()));
}

// CallbackInvoker::invoke for JIT runs: engine is the JitImage.
bool jit_invoke(const void* engine, uint64_t code, const uint64_t args[5], uint64_t* r0);

// What outermost() clears by itself; a program whose calls use anything else leaves the state to
// the general check (RunState::clean).
inline constexpr uint32_t kClearedUses = run_use::kRedirect | run_use::kCallbacks | run_use::kPacket;

// r0 in registers, no Result: on a fault, outermost_fault() gives the error, and must be called
// before anything else runs on the thread.
struct RunEnd {
  uint64_t r0;
  bool faulted;
};
Error outermost_fault();

// A run that finds no run in progress on its thread (current_run() is nullptr), on the thread's
// outermost state. The state is clean, so nothing needs saving around the call. Clearing what
// set() set (clear()), and what the program's calls use, leaves it clean again; a program whose
// calls may use more is checked field by field. A fault is left in the state for outermost_fault().
template <class Set, class Clear>
inline RunEnd outermost(const JitImage& img, uint64_t r1, uint64_t r2, Set set, Clear clear) {
  std::optional<maps::reclaim::Guard> epoch;
  if (img.uses_maps) epoch.emplace();
  const uint32_t uses = img.run_uses;
  RunState& s = begin_outermost();
  if (uses & run_use::kCallbacks) s.callbacks = {jit_invoke, &img};
  set(s);
  const uint64_t r0 = call_entry(img, r1, r2, 0, 0, 0, s.packet);
  clear(s, r0);
  if (uses & run_use::kRedirect) clear_redirect(s.redirect);
  bool faulted = false;
  if (uses & ~run_use::kRedirect) [[unlikely]] {
    s.callbacks = {};
    s.tail_calls = 0;
    faulted = !s.fault.empty();
    if (!faulted && (uses & ~kClearedUses) && !s.clean()) s.reset();
  }
  leave_outermost();
  return {r0, faulted};
}

// An XDP run on the outermost state. On XDP_REDIRECT the target is moved into `redirect`.
inline RunEnd run_jit_xdp(const JitImage& img, uint32_t worker, RuntimeShared* shared, XdpCtx& ctx, RedirectTarget& redirect) {
  return outermost(
      img, reinterpret_cast<uint64_t>(&ctx), 0,
      [&](RunState& s) {
        s.worker = worker;
        s.shared = shared;
        s.xdp = &ctx;
      },
      [&](RunState& s, uint64_t r0) {
        s.worker = 0;
        s.shared = nullptr;
        s.xdp = nullptr;
        if (r0 == 4 && s.redirect.kind != RedirectTarget::Kind::None) take_redirect(redirect, s.redirect);  // XDP_REDIRECT
      });
}

}  // namespace ebpfvm::detail
