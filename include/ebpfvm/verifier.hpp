// The verifier: proves, before a program runs, that it cannot crash, hang or corrupt the host on
// any input. Object::load runs it on every program by default; use it directly for raw bytecode.
//
//   auto report = ebpfvm::verify(program, ebpfvm::HelperRegistry::builtin(), maps, {});
//   if (!report) std::cerr << report.error().to_string() << "\n" << report.error().detail;
//
// A rejection is an Error with code VerifierRejected: where.insn is the instruction, message the
// reason in the kernel verifier's words ("R0 invalid mem access 'map_value_or_null'"), and detail
// the disassembled instruction and the abstract values of the registers there.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "ebpfvm/error.hpp"
#include "ebpfvm/helpers.hpp"
#include "ebpfvm/maps.hpp"
#include "ebpfvm/program.hpp"

namespace ebpfvm {

namespace detail {
struct AbstractStates;
}

struct VerifyOptions {
  enum class Context : uint8_t {
    Xdp,     // r1 = struct xdp_md *; packet accesses need bounds checks against data_end
    SchedCls,      // r1 = struct __sk_buff * as tc programs see it (direct packet access, LD_ABS)
    SocketFilter,  // r1 = struct __sk_buff * as socket filters see it (LD_ABS, no packet pointers)
    // r1 = memory_size bytes of readable and writable memory (0 when memory_size is 0), r2 =
    // memory_size: the engines run the program so, on the first memory_size bytes of what they
    // are given.
    Memory,
  };
  Context context = Context::Xdp;
  uint32_t memory_size = 0;
  bool verbose = false;  // VerifyReport::log (and a rejection's detail) get the state at every instruction
  // Instructions the analysis may interpret (each loop iteration counts) before it gives up with
  // "program too complex"; the kernel's limit.
  uint64_t complexity_limit = 1'000'000;
  // Callback invocations one run may make in all (bpf_loop, bpf_for_each_map_elem, nested ones
  // multiplied): a program that could make more is refused. The kernel's bpf_loop allows 2^23
  // iterations per call; this bounds the whole run by the same number.
  uint64_t max_callback_iterations = 1ull << 23;
  // Iterations of one loop the analysis summarised rather than unrolled (counted with the loops
  // enclosing it) one run may make: a loop that could make more is refused.
  uint64_t max_loop_iterations = 1ull << 30;
  // For tests and fuzzers: keep the abstract registers before every instruction
  // (VerifyReport::abstract_states), which the checked interpreter can then hold every concrete run
  // against: the containment oracle (src/verifier/oracle.hpp).
  bool record_states = false;
};

struct VerifyReport {
  uint64_t insns_analysed = 0;  // instructions interpreted, each loop iteration and call counted
  uint64_t states = 0;          // distinct (instruction, calling context) states kept
  uint64_t state_bytes = 0;     // memory those states took (their peak: the analysis only adds states)
  uint64_t micros = 0;          // time spent
  // The program may write the packet or move its bounds: stores into it, bpf_xdp_store_bytes,
  // the adjust helpers, or a tail call into another program. When false, it may run on a
  // read-only view of the packet (XdpBuffer::view) without a copy.
  bool writes_packet = false;
  // Upper bounds for one run of the program, proven by the analysis: instructions executed (loops
  // as unrolled, callbacks times their iteration counts; saturates at UINT64_MAX) and callback
  // invocations. A tail call starts another program, which has its own bound: a run is at most
  // 33 tail calls long.
  uint64_t max_insns = 0;
  uint64_t max_callback_iterations = 0;
  // Loops too long to unroll within the budget, verified by summarising their later iterations in
  // one state widened until it holds them all, and by a counter that moves toward a bound.
  uint32_t summarised_loops = 0;
  std::string log;              // verbose mode only
  std::shared_ptr<const detail::AbstractStates> abstract_states;  // VerifyOptions::record_states only
};

// `maps`: what `lddw map_idx(N)` / `map_fd(N)` refer to. Frozen array maps (.rodata) are read as
// constants, so configuration branches fold as they do in the kernel.
Result<VerifyReport> verify(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps,
                            const VerifyOptions& options = {});

}  // namespace ebpfvm
