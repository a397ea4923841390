// The JIT: a program compiled to native code with asmjit, for x86-64 or AArch64 (the host's by
// default), eBPF registers mapped onto host registers, helpers called directly.
//
// Native code does no run-time checks: a JIT-compiled program must be proven safe before it runs.
// compile() verifies first; objects loaded with Engine::Jit are verified by Object::load.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>

#include "ebpfvm/error.hpp"
#include "ebpfvm/helpers.hpp"
#include "ebpfvm/interpreter.hpp"
#include "ebpfvm/maps.hpp"
#include "ebpfvm/program.hpp"

namespace ebpfvm {

namespace detail {
struct JitImage;
}

// What the JIT emits code for. Host: this machine's CPU (x86-64 or AArch64). Code for another
// target can be compiled and looked at (code(), stats()), not run.
enum class JitTarget : uint8_t { Host, X86_64, AArch64 };
// The host's target, or Host when the JIT has no backend for this CPU.
JitTarget host_jit_target();
const char* to_string(JitTarget t);  // "x86-64", "aarch64", "host"

struct JitOptions {
  // Constant blinding, as the kernel's bpf_jit_harden: every immediate the program chose is
  // emitted XORed with a fresh random key and decoded at run time, so no program-chosen bytes
  // (4 at a time, the material of JIT spraying) appear in executable memory. Shift counts, one
  // masked byte, are left alone. Costs one or two instructions per constant.
  bool blind_constants = false;
  JitTarget target = JitTarget::Host;
};

// What the compiler did, for tests and for people tuning programs.
struct JitStats {
  size_t code_size = 0;
  uint32_t direct_calls = 0;       // calls to host code as call rel32
  uint32_t table_calls = 0;        // calls through an address table (the helper was out of rel32 reach)
  uint32_t tail_helper_calls = 0;  // `call helper; exit` as a jump: the helper returns to the program's caller
  uint32_t inlined_lookups = 0;    // array-map lookups compiled to an index check and arithmetic
  uint32_t aligned_loops = 0;      // loop heads placed so a short loop sits in one cache line
  uint32_t vectorized_loops = 0;   // byte loops (copy, or one ALU op with a constant) run 16 bytes at a time
  uint32_t unrolled_loops = 0;     // short counted loops laid out 4 times, so that most copies lose the counter's test
  uint32_t blinded_constants = 0;
  uint32_t folded = 0;             // masks, extensions, bounds checks and branches the register ranges made unnecessary
  uint32_t byte_pairs = 0;
  uint32_t sunk = 0;               // instructions moved past a branch onto the one edge that reads their result         // big-endian 16-bit fields built from two byte loads, loaded as one
};

class JitProgram {
 public:
  // Fails on an unknown helper, a kfunc call, an lddw whose map is not bound, LD_ABS/LD_IND in a
  // program with bpf-to-bpf calls, or when the host is neither x86-64 nor AArch64.
  // Verifies the program for r1 = memory_size bytes of memory (r2 = memory_size), then compiles
  // it; run(mem) refuses smaller memory and runs it on the first memory_size bytes of larger
  // memory (r2 = memory_size; r1 = 0 when it is 0), as the verifier assumed. Verifier rejections
  // come back as Errc::VerifierRejected.
  static Result<JitProgram> compile(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps,
                                    uint32_t memory_size, const JitOptions& options = {});
  // Compiles without verifying: for benchmarks and differential tests of programs their author
  // vouches for. A bad program compiled this way can crash the host.
  static Result<JitProgram> compile_trusted(const Program& program, const HelperRegistry& helpers,
                                            std::span<const Map> maps = {}, const JitOptions& options = {});

  // r1 = mem.data() (0 when empty), r2 = mem.size(), for compile() the first memory_size bytes of
  // mem; that memory is also the LD_ABS packet.
  Result<uint64_t> run(std::span<uint8_t> mem) const {
    // A program that needs no run state is called directly: the call is the cost, after one
    // compare (plain_min_ is beyond any size for the others; empty memory takes the general path).
    if (mem.size() >= plain_min_) return plain_(reinterpret_cast<uintptr_t>(mem.data()), std::min(mem.size(), plain_r2_max_), 0, 0, 0);
    return run_general(mem);
  }
  Result<uint64_t> run(const RunArgs& args) const;

  // The compiled code as a plain function, for an embedder that calls it itself (as uBPF's
  // compiled programs are called): r1..r5 in, r0 out, no Result and no checks. Only for a
  // program that names no map and calls no helper keeping per-run state; nullptr for others,
  // which need run() to set those up. The caller passes r1 = memory of at least memory_size()
  // bytes and r2 = memory_size() (for compile_trusted(), the memory's size), as run(mem) would:
  // the verifier's proof holds for those values only.
  using Function = uint64_t (*)(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5);
  Function function() const { return plain_; }
  uint32_t memory_size() const { return memory_size_; }  // compile(): the memory it was verified for

  size_t code_size() const;
  const JitStats& stats() const;
  std::span<const uint8_t> code() const;  // the machine code, e.g. for a disassembler

  const std::shared_ptr<const detail::JitImage>& image() const { return img_; }
  // `verified`: compile()'s, run on exactly memory_size bytes.
  explicit JitProgram(std::shared_ptr<const detail::JitImage> img, uint32_t memory_size = 0, bool verified = false);

 private:
  // Cold only for the callers' sake: it keeps run()'s plain path from sharing the result's memory
  // with this one, so a caller gets a plain run's r0 in a register (1 ns per call measured).
  [[gnu::cold]] Result<uint64_t> run_general(std::span<uint8_t> mem) const;

  std::shared_ptr<const detail::JitImage> img_;
  uint32_t memory_size_ = 0;  // compile(): the memory the program was verified for
  bool verified_ = false;     // compile(): run on the first memory_size_ bytes
  Function plain_ = nullptr;  // the code, when run() may call it directly
  size_t plain_r2_max_ = SIZE_MAX;  // with plain_: the most r2 may be (memory_size_ for compile())
  size_t plain_min_ = SIZE_MAX;  // with plain_: the least memory run() calls it with directly (memory_size_, at least 1)
};

}  // namespace ebpfvm
