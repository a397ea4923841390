// ebpfvm-asm, ebpfvm-disasm and ebpfvm-exec end to end.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "support.hpp"

using namespace ebpfvm;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("ebpfvm-asm and ebpfvm-disasm round-trip the bundled example", "[tools]") {
  const std::string src = EBPFVM_EXAMPLES_DIR "/checksum.s";
  const std::string bin = test::temp_path("checksum.bin");
  auto as = test::run_process({EBPFVM_ASM, src, "-o", bin}, "", true);
  REQUIRE(as.exit_code == 0);
  auto bytes = slurp(bin);
  CHECK(bytes.size() == 23 * 8);
  auto dis = test::run_process({EBPFVM_DISASM, bin});
  REQUIRE(dis.exit_code == 0);
  CHECK_THAT(dis.out, Catch::Matchers::Contains("    6: r5 = *(u16 *)(r1 + 0)\n"));
  CHECK_THAT(dis.out, Catch::Matchers::Contains("    7: r5 = be16 r5\n"));
  // The listing assembles back to the same bytes.
  auto again = assemble(dis.out);
  REQUIRE(again.ok());
  CHECK(std::string(again->begin(), again->end()) == bytes);
}

TEST_CASE("ebpfvm-asm reports errors with file and line and writes nothing", "[tools]") {
  const std::string src = test::temp_path("bad.s");
  const std::string out = test::temp_path("bad.bin");
  std::ofstream(src) << "r0 = 0\nr0 += r99\nexit\n";
  std::filesystem::remove(out);
  auto as = test::run_process({EBPFVM_ASM, src, "-o", out}, "", true);
  CHECK(as.exit_code == 1);
  CHECK_THAT(as.out, Catch::Matchers::Contains(src + ": line 2: "));
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("ebpfvm-disasm rejects malformed bytecode with the instruction index", "[tools]") {
  const std::string bin = test::temp_path("bad2.bin");
  std::ofstream(bin, std::ios::binary) << std::string("\x07\x00\x00\x00\x01\x00\x00\x00", 8);
  auto dis = test::run_process({EBPFVM_DISASM, bin}, "", true);
  CHECK(dis.exit_code == 1);
  CHECK(dis.out == "ebpfvm-disasm: " + bin + ": insn 0: last instruction is not exit or goto\n");
  auto missing = test::run_process({EBPFVM_DISASM, test::temp_path("missing.bin")}, "", true);
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.out, Catch::Matchers::Contains("No such file or directory"));
}

TEST_CASE("ebpfvm-exec runs the bundled example and reports JSON", "[tools]") {
  auto run = test::run_process({EBPFVM_EXEC, EBPFVM_EXAMPLES_DIR "/checksum.s", "--mem",
                                EBPFVM_EXAMPLES_DIR "/ipv4-header.hex"});
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Catch::Matchers::Contains("r0        0xb861 (47201)\n"));
  CHECK_THAT(run.out, Catch::Matchers::Contains("executed  98 instructions\n"));
  auto json = test::run_process({EBPFVM_EXEC, EBPFVM_EXAMPLES_DIR "/checksum.s", "--mem-hex",
                                 "45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7", "--json",
                                 "--unchecked"});
  REQUIRE(json.exit_code == 0);
  // With the checksum field filled in, the header sums to zero.
  CHECK_THAT(json.out, Catch::Matchers::Contains("\"r0\": 0,"));
  CHECK_THAT(json.out, Catch::Matchers::Contains("\"mode\": \"unchecked\""));
}

TEST_CASE("ebpfvm-exec exits 3 on a runtime fault and 1 on a load error", "[tools]") {
  const std::string src = test::temp_path("oob.s");
  std::ofstream(src) << "r0 = *(u64 *)(r1 + 0)\nexit\n";
  auto fault = test::run_process({EBPFVM_EXEC, src, "--mem-hex", "01 02"}, "", true);
  CHECK(fault.exit_code == 3);
  CHECK_THAT(fault.out, Catch::Matchers::Contains("insn 0: out-of-bounds read of 8 bytes"));
  const std::string bad = test::temp_path("bad3.s");
  std::ofstream(bad) << "call 1\nexit\n";
  auto load = test::run_process({EBPFVM_EXEC, bad}, "", true);
  CHECK(load.exit_code == 1);
  CHECK_THAT(load.out, Catch::Matchers::Contains("insn 0: unknown helper 1"));
}

TEST_CASE("the tools refuse a directory, and read pipes and standard input", "[tools]") {
  const std::string dir = test::temp_path("dir-input");
  std::filesystem::create_directories(dir);
  for (const char* tool : {EBPFVM_ASM, EBPFVM_DISASM, EBPFVM_EXEC, EBPFVM_UBPF_RUN}) {
    INFO(tool);
    std::vector<std::string> argv{tool, dir};
    if (std::string(tool) == EBPFVM_UBPF_RUN) argv = {tool, "maps", dir};
    auto r = test::run_process(argv, "", true);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find(dir + ": is a directory") != std::string::npos);
    CHECK(r.out.find("terminate") == std::string::npos);
  }
  auto piped = test::run_process({EBPFVM_ASM, "-"}, "r0 = 7\nexit\n", true);
  CHECK(piped.exit_code == 0);
  CHECK(piped.out == "b7 00 00 00 07 00 00 00\n95 00 00 00 00 00 00 00\n");
  auto zero = test::run_process({EBPFVM_DISASM, "/dev/zero"}, "", true);
  CHECK(zero.exit_code == 1);
  CHECK(zero.out == "ebpfvm-disasm: /dev/zero: holds more than the 268435456 bytes allowed\n");
}
