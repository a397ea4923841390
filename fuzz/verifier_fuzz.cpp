// libFuzzer target: the verifier's promise. The fuzzer's bytes drive fuzz/program_gen.hpp, then
// mutate a few instructions of the result (offsets, immediates, registers, opcodes), which makes
// many programs unsafe. Each is verified for its 256-byte buffer; an accepted one then runs in the
// checked interpreter, which must see no out-of-bounds access and no endless run, and in which
// every register before every instruction must lie inside the verifier's abstract state (the
// containment oracle). A violation is a verifier bug and aborts.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "program_gen.hpp"
#include "verifier/oracle.hpp"

namespace {


void mutate(std::vector<uint8_t>& code, ebpfvm::gen::Source& s) {
  const size_t slots = code.size() / 8;
  const unsigned n = static_cast<unsigned>(s.below(4));
  for (unsigned k = 0; k < n; ++k) {
    uint8_t* in = &code[8 * s.below(slots)];
    switch (s.below(5)) {
      case 0: in[2] = static_cast<uint8_t>(s.next()); in[3] = static_cast<uint8_t>(s.next()); break;  // off
      case 1: for (int b = 4; b < 8; ++b) in[b] = static_cast<uint8_t>(s.next()); break;              // imm
      case 2: in[1] = static_cast<uint8_t>(s.below(11) | (s.below(11) << 4)); break;                 // registers
      case 3: in[0] = static_cast<uint8_t>(s.next()); break;                                          // opcode
      default: in[2] = static_cast<uint8_t>(in[2] + s.below(16) - 8); break;                          // nudge off
    }
  }
}

}  // namespace

// Returns false when the input made no program the verifier accepted.
bool ebpfvm_verifier_fuzz_one(const uint8_t* data, size_t size) {
  ebpfvm::gen::ByteSource src(data, size);
  auto text = ebpfvm::gen::program(src, 24, false, true);
  auto base = ebpfvm::assemble(text);
  if (!base) std::abort();  // the generator only writes valid programs
  std::vector<uint8_t> code = *base;
  mutate(code, src);
  auto prog = ebpfvm::Program::from_bytecode(code);
  if (!prog) return false;
  ebpfvm::VerifyOptions vo;
  vo.context = ebpfvm::VerifyOptions::Context::Memory;
  vo.memory_size = ebpfvm::gen::kBufferSize;
  vo.complexity_limit = 50'000;  // mutated loops that never end are common: give up on them early
  vo.max_loop_iterations = 1 << 9;  // summarised loops that run long would take the checked runs too long
  vo.record_states = true;
  auto report = ebpfvm::verify(*prog, {}, {}, vo);
  if (!report) return false;
  ebpfvm::detail::ContainmentOracle oracle;
  oracle.add(nullptr, report->abstract_states);
  // The budget is the verifier's bound on the instructions of one run: a run past it fails.
  auto checked = ebpfvm::Interpreter::create(*prog, {}, {ebpfvm::Safety::Checked, std::min<uint64_t>(report->max_insns, 50'000'000), 0});
  if (!checked) std::abort();
  std::vector<uint8_t> mem(ebpfvm::gen::kBufferSize);
  for (auto& b : mem) b = static_cast<uint8_t>(src.next());
  auto r = checked->run(mem);
  if (!r) {
    std::fprintf(stderr, "verified, yet the checked run failed: %s\n%s\n", r.error().to_string().c_str(),
                 prog->disassemble().c_str());
    std::abort();
  }
  if (!oracle.failure().empty()) {
    std::fprintf(stderr, "a state outside the verifier's: %s\n%s\n", oracle.failure().c_str(), prog->disassemble().c_str());
    std::abort();
  }
  return true;
}

#ifndef EBPFVM_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ebpfvm_verifier_fuzz_one(data, size);
  return 0;
}
#endif
