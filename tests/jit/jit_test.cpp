// The JIT (the host's backend: x86-64, or AArch64 under qemu in scripts/test.sh) against the interpreter: every semantics case, the conditional jumps exhaustively,
// and programs loaded from objects.
#include <catch2/catch.hpp>

#include "support.hpp"

using namespace ebpfvm;

namespace {

std::string jit_case(const test::Case& c, uint64_t* r0) {
  auto prog = Program::from_bytecode(test::must_assemble(c.source));
  if (!prog) return prog.error().to_string();
  auto jit = JitProgram::compile_trusted(*prog, test::test_helpers());
  if (!jit) return jit.error().to_string();
  auto mem = test::hex_bytes(c.mem_hex);
  auto r = jit->run(mem);
  if (!r) return r.error().to_string();
  *r0 = *r;
  return {};
}

}  // namespace

TEST_CASE("jit: every semantics case that succeeds gives the interpreter's result", "[jit]") {
  SKIP_WITHOUT_JIT();
  size_t n = 0, refused = 0;
  for (const auto& c : test::load_cases()) {
    if (!c.result) continue;  // faults are caught by the checked interpreter only
    INFO(c.where() << "\n" << c.source);
    uint64_t r0 = 0;
    const std::string err = jit_case(c, &r0);
    if (err == "LD_ABS/LD_IND in a program with bpf-to-bpf calls (the kernel refuses these too)") {
      ++refused;
      continue;
    }
    CHECK(err == "");
    CHECK(r0 == *c.result);
    ++n;
  }
  CHECK(n > 150);
  CHECK(refused == 1);
}
