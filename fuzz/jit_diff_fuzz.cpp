// libFuzzer target: the fuzzer's bytes drive fuzz/program_gen.hpp; the program runs in the checked
// interpreter and in the JIT, which must agree on r0 and memory. A disagreement aborts.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "program_gen.hpp"

namespace {

struct Bytes : ebpfvm::gen::Source {
  const uint8_t* p;
  size_t n, i = 0;
  Bytes(const uint8_t* d, size_t s) : p(d), n(s) {}
  uint64_t next() override {
    uint64_t v = 0;
    for (int k = 0; k < 8 && i < n; ++k) v |= uint64_t{p[i++]} << (8 * k);
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes src(data, size);
  auto prog = ebpfvm::Program::from_assembly(ebpfvm::gen::program(src, 32));
  if (!prog) std::abort();  // the generator only writes valid programs
  std::vector<uint8_t> mem(ebpfvm::gen::kBufferSize);
  for (auto& b : mem) b = static_cast<uint8_t>(src.next());
  auto interp = ebpfvm::Interpreter::create(*prog, {}, {ebpfvm::Safety::Checked});
  std::vector<uint8_t> mi = mem, mj = mem;
  auto ri = interp->run(mi);
  if (!ri) std::abort();  // an unsafe program: a generator bug
  auto jit = ebpfvm::JitProgram::compile_trusted(*prog, {});
  if (!jit) std::abort();
  auto rj = jit->run(mj);
  if (!rj || *ri != *rj || mi != mj) std::abort();
  return 0;
}
