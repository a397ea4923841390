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

TEST_CASE("plugin --jit runs the semantics cases as native code", "[plugin]") {
  for (const auto& c : test::load_cases()) {
    if (!c.result || c.test_helpers) continue;
    if (c.source.find("skb[") != std::string::npos) continue;  // LD_ABS with local calls: refused by the JIT
    INFO(c.where());
    auto r = test::run_process({EBPFVM_PLUGIN, c.mem_hex, "--jit"}, hex_of(test::must_assemble(c.source)));
    char want[32];
    std::snprintf(want, sizeof want, "0x%llx\n", static_cast<unsigned long long>(*c.result));
    CHECK(r.out == want);
  }
}

TEST_CASE("plugin runs every semantics case through the conformance protocol", "[plugin]") {
  int ran = 0;
  for (const auto& c : test::load_cases()) {
    if (c.test_helpers) continue;  // helpers 1 and 2 exist only in the library tests
    INFO(c.where());
    std::vector<std::string> args;
    if (!c.mem_hex.empty()) args.push_back(c.mem_hex);
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
  CHECK_THAT(oob.out, Catch::Matchers::Contains("out-of-bounds read of 1 bytes"));
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
  CHECK(helper.out == "insn 0: unknown helper 6\n");
}
