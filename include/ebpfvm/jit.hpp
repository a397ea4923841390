// The x86-64 JIT: a program compiled to native code with asmjit, eBPF registers mapped onto host
// registers, helpers called directly.
//
// Native code does no run-time checks: a JIT-compiled program must be proven safe before it runs.
// compile() verifies first; objects loaded with Engine::Jit are verified by Object::load.
#pragma once

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

class JitProgram {
 public:
  // Fails on an unknown helper, a kfunc call, an lddw whose map is not bound, LD_ABS/LD_IND in a
  // program with bpf-to-bpf calls, or when the host is not x86-64.
  // Verifies the program for r1 = memory_size bytes of memory (r2 = memory_size), then compiles
  // it; run(mem) refuses smaller memory. Verifier rejections come back as Errc::VerifierRejected.
  static Result<JitProgram> compile(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps,
                                    uint32_t memory_size);
  // Compiles without verifying: for benchmarks and differential tests of programs their author
  // vouches for. A bad program compiled this way can crash the host.
  static Result<JitProgram> compile_trusted(const Program& program, const HelperRegistry& helpers,
                                            std::span<const Map> maps = {});

  // r1 = mem.data() (0 when empty), r2 = mem.size(); mem is also the LD_ABS packet.
  Result<uint64_t> run(std::span<uint8_t> mem) const;
  Result<uint64_t> run(const RunArgs& args) const;
  size_t code_size() const;

  const std::shared_ptr<const detail::JitImage>& image() const { return img_; }
  explicit JitProgram(std::shared_ptr<const detail::JitImage> img, uint32_t memory_size = 0)
      : img_(std::move(img)), memory_size_(memory_size) {}

 private:
  std::shared_ptr<const detail::JitImage> img_;
  uint32_t memory_size_ = 0;  // compile(): the memory the program was verified for
};

}  // namespace ebpfvm
