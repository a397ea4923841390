// JitOptions::target: each backend compiles every semantics case on any host (the other target's
// code to look at, not to run), and code for another CPU is refused a run with a clear error.
#include <catch2/catch.hpp>

#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;

namespace {

JitTarget other_target() { return host_jit_target() == JitTarget::AArch64 ? JitTarget::X86_64 : JitTarget::AArch64; }

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
        JitOptions o;
        o.target = t;
        o.blind_constants = blind;
        auto jit = JitProgram::compile_trusted(*prog, test::test_helpers(), {}, o);
        if (!jit && jit.error().message == "LD_ABS/LD_IND in a program with bpf-to-bpf calls (the kernel refuses these too)") continue;
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
