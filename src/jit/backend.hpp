// What every JIT backend shares, and what each one provides.
//
// The driver (jit/driver.cpp) picks a backend for the target JitOptions names (the host's by
// default) and runs its compile(); everything above instruction selection is here, so that a new
// backend is one file: the front end (the program rewritten, jit/rewrite.hpp, and its facts,
// jit/facts.hpp), which helper calls a backend may compile inline, the run-time support the code
// calls (packet loads, callx, tail calls), and installing the assembled code in sealed memory.
#pragma once

#ifndef EBPFVM_NO_ASMJIT
#include <asmjit/core.h>
#endif

#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "ebpfvm/helpers.hpp"
#include "ebpfvm/jit.hpp"
#include "isa/isa.hpp"
#include "jit/facts.hpp"
#include "jit/image.hpp"

namespace ebpfvm::detail {
class MapImpl;
}

namespace ebpfvm::jit {

// ---- run-time support, called from generated code with the platform's C calling convention ----
struct LdResult {  // two registers on both targets (rax:rdx, x0:x1)
  uint64_t value;
  uint64_t ok;
};
// LD_ABS/LD_IND: the big-endian value of `size` bytes at packet offset (u32)off; ok = 0 when they
// are not all inside the packet (the program then ends with r0 = 0).
LdResult rt_ld(uint64_t off, uint64_t size);
// callx: the helper whose id is in a register, or -EINVAL.
uint64_t rt_callx(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5, const detail::JitImage* img, uint64_t id);
// bpf_tail_call: the target program's entry, or nullptr (then execution goes on after the call).
const void* rt_tail_target(uint64_t map, uint64_t index);

// ---- what a backend may compile itself instead of calling ----
// bpf_map_lookup_elem on a plain array map known at compile time, as the kernel inlines it.
bool inlinable_lookup(const Helper& h, const detail::MapImpl* m);
// A call of the built-in bpf_tail_call (a registry may replace helper 12 with its own).
bool is_tail_call(const HelperRegistry& helpers, const isa::Insn& in);

// ---- the front end ----
// The maps whose lookups the backend inlines, for Facts: max_entries, or 0.
Facts::InlineEntries inline_entries(const HelperRegistry& helpers, const detail::JitImage& img);
struct FrontEnd {
  std::optional<Facts> facts;  // of the program as rewritten
  uint32_t folded = 0;         // counter copies folded (jit::fold_counter_copies)
  uint32_t unrolled = 0;       // loops unrolled (jit::unroll_counted_loops)
};
// Rewrites prog in place (rewrite.hpp) and computes its facts. keep_whole(head): a loop the
// backend compiles better whole than unrolled. marked(): called after slots were inserted, so
// that the backend can recompute what it derived from the program before.
FrontEnd front_end(isa::Program& prog, const Facts::InlineEntries& entries, const std::function<bool(size_t head)>& keep_whole,
                   const std::function<void()>& marked);

// ---- the backends ----
// Each compiles prog into img (code, entry, callbacks, stats, run_uses...), or says why not.
Result<void> compile_x64(const isa::Program& prog, const HelperRegistry& helpers, const JitOptions& options, detail::JitImage& img);
Result<void> compile_a64(const isa::Program& prog, const HelperRegistry& helpers, const JitOptions& options, detail::JitImage& img);

#ifndef EBPFVM_NO_ASMJIT
// Copies what `code` holds into fresh code memory (near `near` when the backend calls host code
// with 32-bit displacements), flushes the instruction cache over it, seals it read+execute (code
// for another CPU than img.target's host: read-only), and sets img's memory, code size, entry
// (label `entry`) and callback addresses. Returns the base.
Result<uint64_t> install(asmjit::CodeHolder& code, detail::JitImage& img, const asmjit::Label& entry,
                         std::span<const asmjit::Label> callbacks, const void* near);
#endif

}  // namespace ebpfvm::jit
