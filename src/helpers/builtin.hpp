// What engines need to know about the built-in helpers beyond their prototypes.
#pragma once

#include "ebpfvm/helpers.hpp"

namespace ebpfvm::detail {

// What of a run's own state a call of fn reads or writes, for engines that skip the parts no
// call of a program touches (a JIT run of compiled code sets up and clears only those). A
// built-in that is not listed, or a call the engine cannot see the target of, uses everything.
// Reading the worker, environment or XDP context is not a use: where a run has none of these,
// the defaults a missing run state supplies are what a fresh one would hold. An embedder's
// helper cannot reach run state at all: it uses nothing.
namespace run_use {
constexpr uint32_t kNothing = 0;
constexpr uint32_t kRedirect = 1;   // records the XDP redirect (RunState::redirect)
constexpr uint32_t kCallbacks = 2;  // calls back into the program (RunState::callbacks), may fault
constexpr uint32_t kPacket = 4;     // reads the LD_ABS packet (RunState::packet)
constexpr uint32_t kLock = 8;       // holds a bpf_spin_lock (RunState::held_lock), may fault
constexpr uint32_t kEverything = ~0u;
}  // namespace run_use

uint32_t run_uses(HelperFn fn);

}  // namespace ebpfvm::detail
