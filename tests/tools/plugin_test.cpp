// bpf_conformance_plugin through its real protocol: memory in argv, program as hex on stdin.
#include <catch2/catch.hpp>

#include <cstdio>

#include "support.hpp"

using namespace ebpfvm;

namespace {

std::string hex_of(const std::vector<uint8_t>& bytes) {
  std::string s;
  char buf[8];
  for (uint8_t b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x  ", b);  // the suite separates bytes with two spaces
    s += buf;
  }
  return s + "\n";
}

test::Proc plugin(const std::vector<std::string>& args, const std::string& text) {
  std::vector<std::string> argv{EBPFVM_PLUGIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run_process(argv, hex_of(test::must_assemble(text)));
}

}  // namespace

TEST_CASE("plugin --jit runs the semantics cases as native code", "[plugin][jit]") {
  SKIP_WITHOUT_JIT();
  int compiled = 0;
  for (const auto& c : test::load_cases()) {
    if (!c.result || c.test_helpers) continue;
    if (c.source.find("skb[") != std::string::npos) continue;  // LD_ABS with local calls: refused by the JIT
    INFO(c.where());
    // the same verdict as the verified interpreter: the same result, or the same rejection
    auto interp = test::run_process({EBPFVM_PLUGIN, c.mem_hex}, hex_of(test::must_assemble(c.source)));
    auto r = test::run_process({EBPFVM_PLUGIN, c.mem_hex, "--jit"}, hex_of(test::must_assemble(c.source)));
    CHECK(r.out == interp.out);
    if (interp.exit_code == 0) {
      char want[32];
      std::snprintf(want, sizeof want, "0x%llx\n", static_cast<unsigned long long>(*c.result));
      CHECK(r.out == want);
      ++compiled;
    }
  }
  CHECK(compiled > 100);
}

TEST_CASE("plugin runs every semantics case through the conformance protocol", "[plugin]") {
  int ran = 0;
  for (const auto& c : test::load_cases()) {
    if (c.test_helpers) continue;  // helpers 1 and 2 exist only in the library tests
    INFO(c.where());
    std::vector<std::string> args{c.mem_hex, "--no-verify"};  // the interpreter's own checks
    auto p = plugin(args, c.source);
    INFO(p.out);
    if (c.result) {
      char expect[32];
      std::snprintf(expect, sizeof expect, "0x%llx\n", static_cast<unsigned long long>(*c.result));
      CHECK(p.exit_code == 0);
      CHECK(p.out == expect);
    } else {
      CHECK(p.exit_code == 1);
      CHECK_THAT(p.out, Catch::Matchers::Contains(c.error));
      CHECK(std::count(p.out.begin(), p.out.end(), '\n') == 1);
    }
    ++ran;
  }
  CHECK(ran > 100);
}

TEST_CASE("plugin verifies first: what runs cleanly is accepted, what faults is refused before it runs", "[plugin]") {
  int accepted = 0, refused = 0;
  for (const auto& c : test::load_cases()) {
    if (c.test_helpers) continue;
    INFO(c.where());
    auto p = plugin({c.mem_hex}, c.source);
    INFO(p.out);
    if (!c.result) {
      // a program that faults in the checked interpreter must never pass the verifier
      CHECK(p.exit_code == 1);
      refused += p.exit_code == 1;
      continue;
    }
    if (p.exit_code == 0) {
      char expect[32];
      std::snprintf(expect, sizeof expect, "0x%llx\n", static_cast<unsigned long long>(*c.result));
      CHECK(p.out == expect);
      ++accepted;
    } else {
      WARN("refused: " << c.where() << ": " << p.out);
    }
  }
  CHECK(accepted > 100);
  CHECK(refused > 10);
}

TEST_CASE("plugin accepts the argument shapes the suite uses", "[plugin]") {
  const std::string text = "r0 = r2\nexit\n";
  CHECK(plugin({}, text).out == "0x0\n");                       // no memory: r1 = 0, r2 = 0
  CHECK(plugin({""}, text).out == "0x0\n");                     // an empty memory argument
  CHECK(plugin({"01  02  03", ""}, text).out == "0x3\n");       // memory, empty options
  CHECK(plugin({"01 02", "--interpret"}, text).out == "0x2\n");
  CHECK(plugin({"--interpret"}, text).out == "0x0\n");
}

TEST_CASE("plugin --elf runs the first program of an object on the memory", "[plugin]") {
  std::FILE* f = std::fopen(EBPFVM_TEST_PROGRAMS "/conformance.o", "rb");
  REQUIRE(f);
  std::vector<uint8_t> obj;
  for (int c; (c = std::fgetc(f)) != EOF;) obj.push_back(static_cast<uint8_t>(c));
  std::fclose(f);
  auto r = test::run_process({EBPFVM_PLUGIN, "01 02 03 04", "--elf"}, hex_of(obj));
  CHECK(r.exit_code == 0);
  CHECK(r.out == "0x5\n");
  auto oob = test::run_process({EBPFVM_PLUGIN, "01 02", "--elf"}, hex_of(obj));
  CHECK(oob.exit_code == 1);
  // verified for 2 bytes of memory, the program reads the fourth: refused before it runs
  CHECK_THAT(oob.out, Catch::Matchers::Contains("invalid access to memory, mem_size=2 off=3 size=1"));
  auto unverified = test::run_process({EBPFVM_PLUGIN, "01 02", "--elf --no-verify"}, hex_of(obj));
  CHECK(unverified.exit_code == 1);
  CHECK_THAT(unverified.out, Catch::Matchers::Contains("out-of-bounds read of 1 bytes"));
}

TEST_CASE("plugin reports errors on one line with a non-zero exit", "[plugin]") {
  auto elf = plugin({"--elf"}, "r0 = 0\nexit\n");
  CHECK(elf.exit_code == 1);
  CHECK(elf.out == "<stdin>: not an ELF file\n");
  auto unknown = plugin({"--frobnicate"}, "r0 = 0\nexit\n");
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.out == "unknown option --frobnicate\n");

  auto bad_hex = test::run_process({EBPFVM_PLUGIN}, "b7 00 zz\n");
  CHECK(bad_hex.exit_code == 2);
  CHECK_THAT(bad_hex.out, Catch::Matchers::StartsWith("program: invalid hex byte"));
  auto malformed = test::run_process({EBPFVM_PLUGIN}, "b7 00 00 00 00 00 00 00\n");
  CHECK(malformed.exit_code == 1);
  CHECK(malformed.out == "insn 0: last instruction is not exit or goto\n");
  auto empty = test::run_process({EBPFVM_PLUGIN}, "");
  CHECK(empty.exit_code == 1);
  CHECK(empty.out == "empty program\n");
  auto helper = plugin({}, "call 6\nexit\n");
  CHECK(helper.exit_code == 1);
  CHECK(helper.out == "insn 0: invalid func unknown#6\n");
  auto jit_unverified = plugin({"--jit --no-verify"}, "r0 = 0\nexit\n");
  CHECK(jit_unverified.exit_code == 2);
}
