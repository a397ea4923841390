// The interpreter's executable form of a program, and what binds it to maps. Internal: loaded
// programs (src/loader) build images with map bindings; prog_array slots point at ProgEntry.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ebpfvm/interpreter.hpp"
#include "ebpfvm/jit.hpp"
#include "isa/isa.hpp"
#include "maps/map_impl.hpp"
#include "runtime/bindings.hpp"
#include "runtime/run_state.hpp"

namespace ebpfvm::detail {

struct TInsn {
  const void* label;
  uint8_t dst;
  uint8_t src;
  int16_t off;
  int32_t imm;
};
static_assert(sizeof(TInsn) == 16);

struct HelperSlot {
  HelperFn fn;
  void* user;
  HelperProto proto;
  uint32_t id;
};


struct InterpImage {
  std::vector<TInsn> code;
  std::vector<HelperSlot> calls;  // static helper calls, indexed by TInsn::imm
  HelperRegistry registry;        // callx looks helpers up at run time
  InterpreterOptions options;
  Bindings bindings;
  std::vector<const MapImpl*> map_ptrs;   // the maps this program may name
  std::vector<MemRegion> static_regions;  // map values addressed directly (global data)
  std::vector<const TInsn*> callbacks;    // function entries whose address the program takes
};

struct JitImage;

// A program as a prog_array slot holds it: bpf_tail_call jumps into `image`, or, from JIT code,
// into `jit` (programs loaded for the JIT have both).
struct ProgEntry {
  uint32_t id = 0;
  std::string name;
  std::shared_ptr<const InterpImage> image;
  std::shared_ptr<const JitImage> jit;
};

Result<std::shared_ptr<const JitImage>> build_jit(const isa::Program& prog, const HelperRegistry& helpers, Bindings bindings,
                                                  const JitOptions& options);
Result<uint64_t> run_jit(const JitImage& img, RunState& run, const RunArgs& args);
// A context program's run (r1 = ctx, nothing else), its argument in a register: a freshly built
// RunArgs read back through a reference costs a store-forwarding stall per packet.
// r1 = ctx; `packet` is what LD_ABS/LD_IND read when the run has no skb (and, for an image that
// takes the packet as arguments, what it is given).
Result<uint64_t> run_jit_ctx(const JitImage& img, RunState& run, uint64_t ctx, std::span<uint8_t> packet = {});
// The same for r1 = mem, r2 = its size, mem the LD_ABS packet (memory_args without the RunArgs).
Result<uint64_t> run_jit_memory(const JitImage& img, RunState& run, std::span<uint8_t> mem);

// The one way to wrap an image in the public handle.
struct InterpreterAccess {
  static Interpreter make(std::shared_ptr<const InterpImage> img) { return Interpreter(std::move(img)); }
};

Result<std::shared_ptr<const InterpImage>> build_image(const isa::Program& prog, const HelperRegistry& helpers,
                                                        const InterpreterOptions& options, Bindings bindings);

}  // namespace ebpfvm::detail
