// libFuzzer target: the fuzzer's bytes drive fuzz/program_gen.hpp; the program runs in the checked
// interpreter and in the JIT (constants blinded or not), which must agree on r0 and memory. A
// disagreement aborts.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "program_gen.hpp"

// One input; aborts on a disagreement. True when both engines ran it (false: the verifier refused
// it). Also run by the tests (tests/jit/random_test.cpp), on every host the JIT has a backend for
// (arm64 under qemu included).
bool ebpfvm_jit_diff_fuzz_one(const uint8_t* data, size_t size) {
  ebpfvm::gen::ByteSource src(data, size);
  auto prog = ebpfvm::Program::from_assembly(ebpfvm::gen::program(src, 32));
  if (!prog) std::abort();  // the generator only writes valid programs
  std::vector<uint8_t> mem(ebpfvm::gen::kBufferSize);
  for (auto& b : mem) b = static_cast<uint8_t>(src.next());
  auto interp = ebpfvm::Interpreter::create(*prog, {}, {ebpfvm::Safety::Checked});
  std::vector<uint8_t> mi = mem, mj = mem;
  auto ri = interp->run(mi);
  if (!ri) std::abort();  // an unsafe program: a generator bug
  ebpfvm::JitOptions o;
  o.blind_constants = src.next() & 1;  // blinded code must compute the same
  auto jit = ebpfvm::JitProgram::compile(*prog, {}, {}, ebpfvm::gen::kBufferSize, o);
  if (!jit) {
    if (jit.error().code == ebpfvm::Errc::VerifierRejected) return false;  // imprecise, not unsafe
    std::abort();
  }
  auto rj = jit->run(mj);
  if (!rj || *ri != *rj || mi != mj) std::abort();
  return true;
}

#ifndef EBPFVM_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ebpfvm_jit_diff_fuzz_one(data, size);
  return 0;
}
#endif
