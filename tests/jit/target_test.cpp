// JitOptions::target: each backend compiles every semantics case on any host (the other target's
// code to look at, not to run), and code for another CPU is refused a run with a clear error.
#include <catch2/catch.hpp>
#include <set>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;

namespace {

JitTarget other_target() { return host_jit_target() == JitTarget::AArch64 ? JitTarget::X86_64 : JitTarget::AArch64; }

// An asmjit built for its host only (ASMJIT_NO_FOREIGN) cannot compile for the other target: that
// is skipped, saying so. Debian's (amd64 and arm64) has both assemblers.
bool no_foreign_assembler(const Error& e) {
  if (e.message.find("this build of asmjit has no") == std::string::npos) return false;
  static bool said = false;
  if (!said) std::printf("SKIP code for %s on this host: %s\n", to_string(other_target()), e.message.c_str());
  said = true;
  return true;
}

}  // namespace

TEST_CASE("jit targets: the host's target is named, and Host means it", "[jit]") {
#if defined(__x86_64__)
  CHECK(host_jit_target() == JitTarget::X86_64);
#elif defined(__aarch64__)
  CHECK(host_jit_target() == JitTarget::AArch64);
#endif
  CHECK(std::string(to_string(JitTarget::X86_64)) == "x86-64");
  CHECK(std::string(to_string(JitTarget::AArch64)) == "aarch64");
}

TEST_CASE("jit targets: every semantics case compiles for both CPUs, with constants blinded too", "[jit]") {
  size_t n = 0;
  for (const auto& c : test::load_cases()) {
    if (!c.result) continue;
    INFO(c.where() << "\n" << c.source);
    auto prog = Program::from_bytecode(test::must_assemble(c.source));
    REQUIRE(prog);
    for (JitTarget t : {JitTarget::X86_64, JitTarget::AArch64})
      for (bool blind : {false, true}) {
        if (t == host_jit_target() && !test::jit_available()) continue;  // the host's code must be executable
        JitOptions o;
        o.target = t;
        o.blind_constants = blind;
        auto jit = JitProgram::compile_trusted(*prog, test::test_helpers(), {}, o);
        if (!jit && jit.error().message == "LD_ABS/LD_IND in a program with bpf-to-bpf calls (the kernel refuses these too)") continue;
        if (!jit && t != host_jit_target() && no_foreign_assembler(jit.error())) continue;
        REQUIRE(jit);
        CHECK(jit->code_size() > 0);
        if (t == JitTarget::AArch64) CHECK(jit->code_size() % 4 == 0);  // fixed-size instructions
      }
    ++n;
  }
  CHECK(n > 150);
}

TEST_CASE("jit targets: code for another CPU is looked at, not run", "[jit]") {
  auto prog = Program::from_bytecode(test::must_assemble("r0 = 7\nexit"));
  REQUIRE(prog);
  JitOptions o;
  o.target = other_target();
  auto jit = JitProgram::compile_trusted(*prog, HelperRegistry::builtin(), {}, o);
  if (!jit && no_foreign_assembler(jit.error())) return;
  REQUIRE(jit);
  CHECK(jit->function() == nullptr);
  std::vector<uint8_t> mem(8);
  auto r = jit->run(mem);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::Unsupported);
  CHECK_THAT(r.error().message, Catch::Contains(std::string("compiled for ") + to_string(other_target())) &&
                                    Catch::Contains("its code can be looked at, not run"));
  auto r2 = jit->run(RunArgs{});
  REQUIRE_FALSE(r2);
  CHECK(r2.error().code == Errc::Unsupported);
  // AArch64's `mov w7, #7` (movz) is in the code, and `ret`.
  if (o.target == JitTarget::AArch64) {
    const auto code = jit->code();
    const auto has_word = [&](uint32_t w) {
      for (size_t i = 0; i + 4 <= code.size(); i += 4)
        if ((code[i] | code[i + 1] << 8 | code[i + 2] << 16 | uint32_t{code[i + 3]} << 24) == w) return true;
      return false;
    };
    CHECK(has_word(0xd65f03c0));  // ret
  }
}

TEST_CASE("jit targets: a loaded program is for this host: another target is refused at load, naming both", "[jit]") {
  auto obj = Object::open(test::program_path("parse"));
  REQUIRE(obj);
  LoadOptions o;
  o.engine = Engine::Jit;
  o.jit.target = other_target();
  auto r = obj->load(o);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains(std::string("JitOptions::target is ") + to_string(other_target())) &&
                                    Catch::Contains(std::string("which is ") + to_string(host_jit_target())));
}

TEST_CASE("jit targets: AArch64 blinding keeps the program's constants out of the move-wide instructions", "[jit]") {
  const char* text = test::kSevenConstants;
  // AArch64 builds constants 16 bits at a time (movz/movn/movk): the program's 16-bit halves.
  const std::set<uint32_t> halves = {0x3c3c, 0x1122, 0x3344, 0x5566, 0x7788, 0x6143, 0x6587,
                                     0x6a6b, 0x6c6d, 0x0102, 0x0304, 0x0506, 0x0708, 0x7e7e};
  const auto moved = [](std::span<const uint8_t> code) {
    std::set<uint32_t> out;
    for (size_t i = 0; i + 4 <= code.size(); i += 4) {
      const uint32_t w = code[i] | code[i + 1] << 8 | code[i + 2] << 16 | uint32_t{code[i + 3]} << 24;
      if ((w & 0x1f800000) == 0x12800000) out.insert((w >> 5) & 0xffff);  // move wide (immediate)
    }
    return out;
  };
  auto p = Program::from_assembly(text);
  REQUIRE(p);
  JitOptions o;
  o.target = JitTarget::AArch64;
  if (host_jit_target() == JitTarget::AArch64 && !test::jit_available()) return;  // then it is the host's, and executable
  auto plain = JitProgram::compile_trusted(*p, HelperRegistry::builtin(), {}, o);
  o.blind_constants = true;
  auto blinded = JitProgram::compile_trusted(*p, HelperRegistry::builtin(), {}, o);
  REQUIRE((plain && blinded));
  const std::set<uint32_t> in_plain = moved(plain->code()), in_blinded = moved(blinded->code());
  size_t plain_hits = 0, blinded_hits = 0;
  for (uint32_t h : halves) {
    plain_hits += in_plain.count(h);
    blinded_hits += in_blinded.count(h);
  }
  CHECK(plain_hits == halves.size());
  CHECK(blinded_hits <= 1);  // a random key's half may equal one of them by chance (p ~ 1e-2); two, ~1e-5
  CHECK(blinded->stats().blinded_constants == 7);
  if (host_jit_target() == JitTarget::AArch64 && test::jit_available()) {
    CHECK(*plain->run(std::span<uint8_t>{}) == test::kSevenConstantsResult);
    CHECK(*blinded->run(std::span<uint8_t>{}) == test::kSevenConstantsResult);
  }
}

#if defined(__aarch64__)
// scripts/test.sh runs the [jit] tests under qemu twice: on a CPU with ARMv8.1's atomics (LSE) and on
// a Cortex-A53 (ARMv8.0), which has only exclusive loads and stores; every atomic case must pass on both.
TEST_CASE("jit targets: AArch64 atomics are LSE instructions where the CPU has them, exclusive loops otherwise", "[jit]") {
  SKIP_WITHOUT_JIT();
  auto p = Program::from_assembly("*(u64 *)(r10 - 8) = 10\nr1 = 5\nr1 = atomic_fetch_add((u64 *)(r10 - 8), r1)\nr0 = r1\nexit");
  REQUIRE(p);
  auto jit = JitProgram::compile_trusted(*p, HelperRegistry::builtin());
  REQUIRE(jit);
  bool ldaddal = false, ldaxr = false;
  const auto code = jit->code();
  for (size_t i = 0; i + 4 <= code.size(); i += 4) {
    const uint32_t w = code[i] | code[i + 1] << 8 | code[i + 2] << 16 | uint32_t{code[i + 3]} << 24;
    ldaddal = ldaddal || (w & 0xffe0fc00) == 0xf8e00000;  // ldaddal Xs, Xt, [Xn]
    ldaxr = ldaxr || (w & 0xfffffc00) == 0xc85ffc00;      // ldaxr Xt, [Xn]
  }
  const bool lse = (getauxval(AT_HWCAP) & (1ul << 8)) != 0;  // HWCAP_ATOMICS
  std::printf("AArch64 atomics on this CPU: %s\n", lse ? "LSE (ldaddal, casal, swpal...)" : "exclusive loops (ldaxr/stlxr)");
  CHECK(ldaddal == lse);
  CHECK(ldaxr == !lse);
  CHECK(*jit->run(std::span<uint8_t>{}) == 10);
}
#endif
