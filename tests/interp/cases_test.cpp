// Runs every case of tests/cases/*.txt through the library in both interpreter modes.
#include <catch2/catch.hpp>

#include "support.hpp"

using namespace ebpfvm;

namespace {

// Expected error text may come from loading or from running.
std::string run_case(const test::Case& c, Safety safety, uint64_t* r0) {
  auto prog = Program::from_bytecode(test::must_assemble(c.source));
  if (!prog) return prog.error().to_string();
  auto vm = Interpreter::create(*prog, test::test_helpers(), {safety});
  if (!vm) return vm.error().to_string();
  auto mem = test::hex_bytes(c.mem_hex);
  auto r = vm->run(mem);
  if (!r) return r.error().to_string();
  *r0 = *r;
  return {};
}

}  // namespace

TEST_CASE("every semantics case gives its expected result in checked mode", "[interp]") {
  for (const auto& c : test::load_cases()) {
    INFO(c.where());
    uint64_t r0 = 0;
    std::string err = run_case(c, Safety::Checked, &r0);
    if (c.result) {
      CHECK(err == "");
      CHECK(r0 == *c.result);
    } else {
      CHECK_THAT(err, Catch::Matchers::Contains(c.error));
    }
  }
}

TEST_CASE("every case that succeeds gives the same result unchecked", "[interp]") {
  for (const auto& c : test::load_cases()) {
    if (!c.result) continue;  // faults are only caught in checked mode
    INFO(c.where());
    uint64_t r0 = 0;
    CHECK(run_case(c, Safety::TrustedUnchecked, &r0) == "");
    CHECK(r0 == *c.result);
  }
}
