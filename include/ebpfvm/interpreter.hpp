// The interpreter: decode once, then direct-threaded dispatch.
//
// Two modes, chosen when the interpreter is created:
//  - Safety::Checked: every memory access is checked against the regions the program may touch
//    (its stack, the input memory, RunArgs::regions), atomics must be aligned, and an instruction
//    budget bounds the run. A misbehaving program ends with Errc::RuntimeFault, never a crash.
//    This is the only way to run a program nobody has verified.
//  - Safety::TrustedUnchecked: no checks at all, for programs the caller vouches for (until the
//    verifier lands, benchmarks and trusted embedders). A bad program here can crash the host.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "ebpfvm/error.hpp"
#include "ebpfvm/helpers.hpp"
#include "ebpfvm/maps.hpp"
#include "ebpfvm/program.hpp"

namespace ebpfvm {

enum class Safety {
  Verified,          // proven safe by the verifier first, then run without checks (objects' default)
  Checked,           // not verified: every access checked at run time (the only way to run unproven code)
  TrustedUnchecked,  // raw programs the caller vouches for (benchmarks); never for objects
};

struct InterpreterOptions {
  Safety safety = Safety::Checked;
  // Checked mode: instructions a run may execute before it faults.
  uint64_t insn_budget = 100'000'000;
  // Safety::Verified: the program is verified for r1 = this many bytes of memory (r2 = the count),
  // and run(mem) refuses smaller memory and runs it on the first memory_size bytes of larger
  // memory (r2 = memory_size; r1 = 0 when it is 0), as the verifier assumed.
  uint32_t memory_size = 0;
};

// Memory an unverified program may access in checked mode, beyond its stack and input.
struct Region {
  const void* base = nullptr;
  size_t size = 0;
  bool writable = false;
};

struct RunArgs {
  std::array<uint64_t, 5> regs{};  // r1..r5 at entry
  std::span<uint8_t> packet;       // read by LD_ABS/LD_IND; readable and writable in checked mode
  std::span<const Region> regions; // checked mode: further accessible memory
};

// r1 = mem.data() (0 when mem is empty), r2 = mem.size(), and mem as the LD_ABS packet.
RunArgs memory_args(std::span<uint8_t> mem);

struct RunStats {
  uint64_t insns_executed = 0;  // counted in checked mode only
};

namespace detail {
struct InterpImage;
struct InterpreterAccess;
}

class Interpreter {
 public:
  // Fails on a call to an unregistered helper, a kfunc call, or an lddw that needs a map binding.
  static Result<Interpreter> create(const Program& program, const HelperRegistry& helpers,
                                    const InterpreterOptions& options = {});
  // With maps: `lddw map_fd(N)` / `map_idx(N)` load maps[N], `map_value_fd(N) + OFF` /
  // `map_value_idx(N) + OFF` the address of byte OFF of array map N's first value.
  static Result<Interpreter> create(const Program& program, const HelperRegistry& helpers,
                                    const InterpreterOptions& options, std::span<const Map> maps);

  // r1 = mem.data() (0 when mem is empty), r2 = mem.size(); mem is also the LD_ABS packet.
  Result<uint64_t> run(std::span<uint8_t> mem) const;
  Result<uint64_t> run(const RunArgs& args, RunStats* stats = nullptr) const;

  Safety safety() const;

 private:
  friend struct detail::InterpreterAccess;
  explicit Interpreter(std::shared_ptr<const detail::InterpImage> img) : img_(std::move(img)) {}
  std::shared_ptr<const detail::InterpImage> img_;
};

}  // namespace ebpfvm
