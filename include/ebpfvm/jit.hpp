// The x86-64 JIT: a program compiled to native code with asmjit, eBPF registers mapped onto host
// registers, helpers called directly.
//
// Native code does no run-time checks: a JIT-compiled program must be safe before it runs. Until
// the verifier lands, the JIT therefore compiles only programs the caller vouches for, through
// compile_trusted(); once the verifier exists, verified programs will compile without that word.
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
  static Result<JitProgram> compile_trusted(const Program& program, const HelperRegistry& helpers,
                                            std::span<const Map> maps = {});

  // r1 = mem.data() (0 when empty), r2 = mem.size(); mem is also the LD_ABS packet.
  Result<uint64_t> run(std::span<uint8_t> mem) const;
  Result<uint64_t> run(const RunArgs& args) const;
  size_t code_size() const;

  const std::shared_ptr<const detail::JitImage>& image() const { return img_; }
  explicit JitProgram(std::shared_ptr<const detail::JitImage> img) : img_(std::move(img)) {}

 private:
  std::shared_ptr<const detail::JitImage> img_;
};

}  // namespace ebpfvm
