// Differential: thousands of random valid programs (fuzz/program_gen.hpp) through the checked
// interpreter and the JIT (every other one with constants blinded): same r0, same memory afterwards.
#include <catch2/catch.hpp>
#include <random>

#include "../fuzz/program_gen.hpp"
#include "support.hpp"

using namespace ebpfvm;

namespace {

struct Rng : gen::Source {
  std::mt19937_64 r;
  explicit Rng(uint64_t seed) : r(seed) {}
  uint64_t next() override { return r(); }
};

}  // namespace

TEST_CASE("jit: random programs agree with the checked interpreter", "[jit]") {
  SKIP_WITHOUT_JIT();
  int compared = 0;
  JitStats seen;  // the shortcuts these programs made the JIT take, summed
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    Rng rng(seed);
    const std::string text = gen::program(rng);
    INFO("seed " << seed << "\n" << text);
    auto prog = Program::from_assembly(text);
    REQUIRE(prog.ok());
    std::vector<uint8_t> init(gen::kBufferSize);
    for (auto& b : init) b = static_cast<uint8_t>(rng.next());
    auto interp = Interpreter::create(*prog, {}, {Safety::Checked});
    REQUIRE(interp.ok());
    std::vector<uint8_t> mi = init, mj = init;
    auto ri = interp->run(mi);
    if (!ri) FAIL(ri.error().to_string());  // the generator must only make safe programs
    JitOptions o;
    o.blind_constants = seed % 2 == 0;  // blinded code computes the same
    auto jit = JitProgram::compile(*prog, {}, {}, gen::kBufferSize, o);  // verified first
    if (!jit) FAIL(jit.error().to_string() << "\n" << jit.error().detail);
    auto rj = jit->run(mj);
    REQUIRE(rj.ok());
    CHECK(*ri == *rj);
    CHECK(mi == mj);
    ++compared;
    seen.byte_pairs += jit->stats().byte_pairs;
    seen.sunk += jit->stats().sunk;
    seen.folded += jit->stats().folded;
    seen.unrolled_loops += jit->stats().unrolled_loops;
  }
  CHECK(compared == 2000);
  CHECK(seen.byte_pairs > 4200);  // about 1,400 of them through two registers (gen::shape)
  CHECK(seen.sunk > 300);
  CHECK(seen.folded > 500);
  CHECK(seen.unrolled_loops > 150);
}
