// libFuzzer target: arbitrary bytes as a BPF object. Open, load and run every program on a small
// packet: verified first, in the interpreter and then compiled by the JIT (a program the verifier
// accepts then runs unchecked, so a verifier or JIT bug shows as a crash), and when the verifier
// refuses, again unverified in the checked interpreter. Any crash, sanitizer report or hang is a
// bug: bad input must give an error, and an unverified program must fault cleanly.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "run_programs.hpp"

namespace {

void load_and_run(std::span<const uint8_t> bytes, ebpfvm::Safety safety, ebpfvm::Engine engine = ebpfvm::Engine::Interpreter) {
  auto obj = ebpfvm::Object::open(bytes, "fuzz.o");
  if (!obj) return;
  for (const ebpfvm::ProgramInfo& p : obj->programs())
    if (p.type == ebpfvm::ProgType::Unspec) (void)obj->set_program_type(p.name, ebpfvm::ProgType::Xdp);
  ebpfvm::LoadOptions opts;
  opts.safety = safety;
  opts.engine = engine;
  opts.insn_budget = 20'000;
  opts.verify.complexity_limit = 20'000;  // flipped loop bounds are common: give up on them early
  opts.verify.context = ebpfvm::VerifyOptions::Context::Memory;  // for the non-XDP programs
  opts.verify.memory_size = 64;
  opts.max_map_memory = 64u << 20;
  opts.env.seed = 1;
  if (auto r = obj->load(opts); !r) {
    if (safety == ebpfvm::Safety::Verified && engine == ebpfvm::Engine::Interpreter && r.error().code == ebpfvm::Errc::VerifierRejected)
      load_and_run(bytes, ebpfvm::Safety::Checked);
    return;
  }
  ebpfvm::fuzz::run_each_program(*obj);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  load_and_run(bytes, ebpfvm::Safety::Verified);
#if defined(__x86_64__)
  load_and_run(bytes, ebpfvm::Safety::Verified, ebpfvm::Engine::Jit);
#endif
  return 0;
}
