// Differential: thousands of random valid programs (fuzz/program_gen.hpp) through the checked
// interpreter and the JIT (every other one with constants blinded): same r0, same memory afterwards.
#include <catch2/catch.hpp>
#include <random>

#include "../fuzz/program_gen.hpp"
#include "support.hpp"

using namespace ebpfvm;

bool ebpfvm_jit_diff_fuzz_one(const uint8_t* data, size_t size);  // fuzz/jit_diff_fuzz.cpp

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
  if (test::x86_codegen()) {  // what the x86-64 backend's own optimisations did
    CHECK(seen.byte_pairs > 4200);  // about 1,400 of them through two registers (gen::shape)
    CHECK(seen.sunk > 300);
  }
  CHECK(seen.folded > 500);
  CHECK(seen.unrolled_loops > 150);
}

// The libFuzzer target's own input function, on random bytes: on a host where libFuzzer cannot run
// (arm64 under qemu, cross-compiled) this is the differential fuzzing. EBPFVM_TEST_JIT_FUZZ_RUNS
// sets how many inputs.
TEST_CASE("jit: the JIT/interpreter differential fuzz target agrees on random inputs", "[jit]") {
  SKIP_WITHOUT_JIT();
  const char* env = std::getenv("EBPFVM_TEST_JIT_FUZZ_RUNS");
  const int runs = env ? std::atoi(env) : 2000;
  std::mt19937_64 rng(29);
  int compared = 0;
  for (int i = 0; i < runs; ++i) {
    std::vector<uint8_t> bytes(512);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    compared += ebpfvm_jit_diff_fuzz_one(bytes.data(), bytes.size());  // aborts on a disagreement
  }
  std::printf("jit differential fuzz inputs: %d run, %d compared\n", runs, compared);
  CHECK(compared > runs / 2);
}
