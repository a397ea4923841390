// The JIT's register facts (src/jit/facts.hpp) on small programs: ranges where blocks start,
// widening at loop heads, stack slots, liveness, and which lookups read their key from the frame.
#include <catch2/catch.hpp>

#include "jit/facts.hpp"
#include "support.hpp"

using namespace ebpfvm;

namespace {

isa::Program decoded(const std::string& text) {
  auto p = isa::decode(test::must_assemble(text));
  REQUIRE(p.ok());
  return std::move(*p);
}

uint32_t no_inlining(uint32_t) { return 0; }

// The state just before slot `pc`, stepped from the block that holds it.
jit::State before(const jit::Facts& f, size_t pc) {
  size_t start = pc;
  while (!f.is_block(start)) --start;
  jit::State s = f.at_block(start);
  for (size_t i = start; i < pc; ++i) f.step(s, i);
  return s;
}

}  // namespace

TEST_CASE("jit facts: ranges and frame offsets join where paths meet", "[jit]") {
  const isa::Program p = decoded(R"(
r2 = *(u8 *)(r1 + 0)
r3 = 7
r4 = r10
r4 += -16
if r2 == 3 goto +1
r3 = 9
r0 = r3
exit
)");
  const jit::Facts f(p, no_inlining);
  REQUIRE(f.is_block(6));
  const jit::State& s = f.at_block(6);
  CHECK(s.reg[2] == jit::Range{0, 255});
  CHECK(s.reg[3] == jit::Range{7, 9});
  CHECK(s.fp[4] == -16);
  CHECK(s.fp[10] == 0);
  CHECK(s.fp[3] == jit::State::kNone);
}

TEST_CASE("jit facts: a loop counter widens, a constant set before the loop stays", "[jit]") {
  const isa::Program p = decoded(R"(
r2 = 0
r5 = 40
r0 = 0
r0 += r2
r2 += 1
if r2 != 1000 goto -3
exit
)");
  const jit::Facts f(p, no_inlining);
  REQUIRE(f.is_block(3));
  const jit::State& s = f.at_block(3);
  CHECK(s.reg[2] == jit::Range{0, UINT64_MAX});
  CHECK(s.reg[5] == jit::Range{40, 40});
}

TEST_CASE("jit facts: stack slots hold the range stored until something may overwrite them", "[jit]") {
  const isa::Program p = decoded(R"(
r2 = *(u16 *)(r1 + 0)
*(u32 *)(r10 - 8) = r2
r3 = *(u32 *)(r10 - 8)
*(u8 *)(r10 - 5) = 1
r4 = *(u32 *)(r10 - 8)
*(u32 *)(r10 - 8) = r2
*(u8 *)(r1 + 0) = 1
r5 = *(u32 *)(r10 - 8)
exit
)");
  const jit::Facts f(p, no_inlining);
  CHECK(before(f, 3).reg[3] == jit::Range{0, 0xffff});
  CHECK(before(f, 5).reg[4] == jit::Range{0, UINT32_MAX});  // a byte of the slot was replaced
  CHECK(before(f, 8).reg[5] == jit::Range{0, UINT32_MAX});  // r1 might point into the stack
}

TEST_CASE("jit facts: a register is live after an instruction only if a later one reads it first", "[jit]") {
  const isa::Program p = decoded(R"(
r2 = 5
r2 = 6
r0 = r2
r1 = 3
call 7
exit
)");
  const jit::Facts f(p, no_inlining);
  CHECK_FALSE(f.live_after(0, 2));
  CHECK(f.live_after(1, 2));
  CHECK(f.live_after(2, 2));  // a call counts as reading all of r1-r5
  CHECK(f.live_after(3, 1));  // the call reads its arguments
  CHECK(f.live_after(4, 0));  // exit reads r0
  CHECK_FALSE(f.live_after(4, 1));
}

TEST_CASE("jit facts: an inlined lookup with its key in a known slot reads neither r1 nor r2", "[jit]") {
  const std::string text = R"(
r6 = *(u8 *)(r1 + 0)
*(u32 *)(r10 - 4) = r6
r2 = r10
r2 += -4
r1 = map_fd(0) ll
call 1
exit
)";
  const isa::Program p = decoded(text);
  const jit::Facts inlined(p, [](uint32_t m) { return m == 0 ? 256u : 0u; });
  CHECK(inlined.frame_lookup(6));
  CHECK_FALSE(inlined.live_after(3, 2));  // so r2 = r10 - 4 need not be computed
  CHECK_FALSE(inlined.live_after(4, 1));  // nor the map's address
  jit::State s = before(inlined, 6);
  inlined.step(s, 6);
  CHECK(s.reg[0].min == 1);  // never NULL: the key is below 256

  const jit::Facts small(p, [](uint32_t) { return 200u; });
  s = before(small, 6);
  small.step(s, 6);
  CHECK(s.reg[0].min == 0);  // a byte key may miss 200 entries

  const jit::Facts called(p, no_inlining);
  CHECK_FALSE(called.frame_lookup(6));
  CHECK(called.live_after(3, 2));
}

TEST_CASE("jit facts: a branch's bound carries to a register a constant away from its operand", "[jit]") {
  // (Each comparison's own bounds: the table test below.)
  const isa::Program p = decoded(R"(
r2 = *(u16 *)(r1 + 0)
r3 = r2
r3 += 10
if r2 > 99 goto +2
r0 = r3
exit
r0 = r2
exit
)");
  const jit::Facts f(p, no_inlining);
  REQUIRE(f.is_block(6));
  CHECK(f.at_block(6).reg[2] == jit::Range{100, 0xffff});
  CHECK(f.at_block(6).reg[3] == jit::Range{110, 0xffff + 10});  // r3 = r2 + 10 follows r2
}

TEST_CASE("jit facts: a loop that tests a copy taken before its counter steps keeps the counter bounded", "[jit]") {
  // clang's `for (i = 0; i < 1500; i += 2)` with the test on the value before the step.
  const isa::Program p = decoded(R"(
r2 = 0
r3 = 1498
r0 = 0
r5 = r2
r0 += r5
r2 += 2
if r3 > r5 goto -4
exit
)");
  const jit::Facts f(p, no_inlining);
  REQUIRE(f.is_block(3));
  CHECK(f.at_block(3).reg[2] == jit::Range{0, 1499});  // widened, then narrowed by the exit test
  const jit::State s = before(f, 6);
  CHECK(s.reg[5] == jit::Range{0, 1499});
  CHECK(s.base[5] == 2);
  CHECK(s.delta[5] == uint64_t{0} - 2);  // r5 = r2 - 2

  // The same loop stepping by a register: the copy is not a constant away from the counter.
  const isa::Program q = decoded(R"(
r2 = 0
r3 = 1498
r4 = 2
r0 = 0
r5 = r2
r0 += r5
r2 += r4
if r3 > r5 goto -4
exit
)");
  const jit::Facts g(q, no_inlining);
  CHECK(g.at_block(4).reg[2].max == UINT64_MAX);
}

TEST_CASE("jit facts: each comparison bounds a byte on its taken and its fall-through edge", "[jit]") {
  struct Row {
    const char* test;
    jit::Range taken, fall;
  };
  const Row rows[] = {
      {"r2 > 100", {101, 255}, {0, 100}},   {"r2 >= 100", {100, 255}, {0, 99}},
      {"r2 < 100", {0, 99}, {100, 255}},    {"r2 <= 100", {0, 100}, {101, 255}},
      {"r2 == 100", {100, 100}, {0, 255}},  {"r2 != 100", {0, 255}, {100, 100}},
      {"r2 != 0", {1, 255}, {0, 0}},        {"r2 != 255", {0, 254}, {255, 255}},
      {"r2 s> 100", {0, 255}, {0, 255}},    {"w2 > 100", {0, 255}, {0, 255}},  // signed and 32-bit: not narrowed
      {"r2 & 100", {0, 255}, {0, 255}},     {"r3 > r2", {0, 99}, {100, 255}},  // r3 = 100
      {"r2 > 300", {0, 255}, {0, 255}},     // never taken: no state worth keeping there
  };
  for (const Row& row : rows) {
    INFO(row.test);
    // The fall-through reaches slot 5 and the taken edge slot 7, each by a plain jump.
    const isa::Program p = decoded(std::string(R"(
r2 = *(u8 *)(r1 + 0)
r3 = 100
if )") + row.test + R"( goto +1
goto +1
goto +2
r0 = r2
exit
r0 = r2
exit
)");
    const jit::Facts f(p, no_inlining);
    REQUIRE(f.is_block(5));
    REQUIRE(f.is_block(7));
    CHECK(f.at_block(7).reg[2] == row.taken);
    CHECK(f.at_block(5).reg[2] == row.fall);
  }
}
