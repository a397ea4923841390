// Every conditional jump, 64- and 32-bit, register and immediate, on values chosen at the signed
// and unsigned boundaries, in the interpreter and the JIT. The expected outcome comes from a reference written from RFC 9669's
// table, not from the interpreter.
#include <catch2/catch.hpp>

#include <functional>

#include "support.hpp"

using namespace ebpfvm;

namespace {

struct Cmp {
  const char* op;
  std::function<bool(uint64_t, uint64_t)> u64;  // on 64-bit operands
};

const Cmp kCmps[] = {
    {"==", [](uint64_t a, uint64_t b) { return a == b; }},
    {"!=", [](uint64_t a, uint64_t b) { return a != b; }},
    {">", [](uint64_t a, uint64_t b) { return a > b; }},
    {">=", [](uint64_t a, uint64_t b) { return a >= b; }},
    {"<", [](uint64_t a, uint64_t b) { return a < b; }},
    {"<=", [](uint64_t a, uint64_t b) { return a <= b; }},
    {"&", [](uint64_t a, uint64_t b) { return (a & b) != 0; }},
    {"s>", [](uint64_t a, uint64_t b) { return int64_t(a) > int64_t(b); }},
    {"s>=", [](uint64_t a, uint64_t b) { return int64_t(a) >= int64_t(b); }},
    {"s<", [](uint64_t a, uint64_t b) { return int64_t(a) < int64_t(b); }},
    {"s<=", [](uint64_t a, uint64_t b) { return int64_t(a) <= int64_t(b); }},
};

// For 32-bit jumps the reference sees the low halves, sign-extended for signed comparisons.
uint64_t as32(uint64_t v, bool is_signed) {
  return is_signed ? uint64_t(int64_t(int32_t(uint32_t(v)))) : uint32_t(v);
}

const uint64_t kValues[] = {0, 1, 5, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000005,
                            0x8000000000000000, 0xfffffffffffffffe, 0xffffffffffffffff};

uint64_t run(const std::string& text) {
  auto prog = Program::from_assembly(text);
  REQUIRE(prog.ok());
  auto vm = Interpreter::create(*prog, {}, {Safety::Checked});
  REQUIRE(vm.ok());
  auto r = vm->run(RunArgs{});
  REQUIRE(r.ok());
  // The JIT emits its own compare-and-branch for each form: it must agree.
  auto jit = JitProgram::compile_trusted(*prog, {});
  REQUIRE(jit.ok());
  auto j = jit->run(RunArgs{});
  REQUIRE(j.ok());
  CHECK(*j == *r);
  return *r;
}

std::string program(char w, const Cmp& c, uint64_t a, uint64_t b, bool use_imm) {
  std::string rhs = use_imm ? std::to_string(int32_t(uint32_t(b))) : std::string(1, w) + "2";
  return "r0 = 0\n"
         "r1 = " + std::to_string(a) + " ll\n"
         "r2 = " + std::to_string(b) + " ll\n"
         "if " + std::string(1, w) + "1 " + c.op + " " + rhs + " goto +1\n"
         "exit\n"
         "r0 = 1\n"
         "exit\n";
}

}  // namespace

TEST_CASE("conditional jumps follow the RFC's comparisons", "[interp][jump][jit]") {
  SKIP_WITHOUT_JIT();
  int checked = 0;
  for (const Cmp& c : kCmps) {
    const bool is_signed = c.op[0] == 's';
    for (uint64_t a : kValues) {
      for (uint64_t b : kValues) {
        // Register forms, 64 and 32 bit.
        CHECK(run(program('r', c, a, b, false)) == c.u64(a, b));
        CHECK(run(program('w', c, a, b, false)) == c.u64(as32(a, is_signed), as32(b, is_signed)));
        // Immediate forms: the immediate is sign-extended to 64 bits for JMP.
        uint64_t imm64 = uint64_t(int64_t(int32_t(uint32_t(b))));
        CHECK(run(program('r', c, a, b, true)) == c.u64(a, imm64));
        CHECK(run(program('w', c, a, b, true)) == c.u64(as32(a, is_signed), as32(b, is_signed)));
        checked += 4;
      }
    }
  }
  CHECK(checked == 11 * 10 * 10 * 4);
}
