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

#include <set>

#include "isa/isa.hpp"

TEST_CASE("the semantics cases execute every instruction of the ISA", "[interp]") {
  // Conditional jumps are covered exhaustively by jump_test.cpp; kfunc calls and the lddw map
  // forms need a loader and are covered by their load errors in api_test.cpp.
  std::set<isa::Op> used;
  for (const auto& c : test::load_cases()) {
    auto prog = isa::decode(test::must_assemble(c.source));
    REQUIRE(prog.ok());
    for (const auto& in : prog->insns) used.insert(in.op);
  }
  std::vector<std::string> missing;
  for (const auto& row : isa::op_table()) {
    if (row.kind == isa::Kind::Jcond || row.kind == isa::Kind::CallKfunc) continue;
    if (row.kind == isa::Kind::Lddw && row.dval != 0) continue;
    if (!used.count(row.op)) missing.push_back(row.name);
  }
  INFO([&] {
    std::string s;
    for (auto& m : missing) s += m + " ";
    return s;
  }());
  CHECK(missing.empty());
}
