// bpf_conformance_plugin through its real protocol: memory in argv, program as hex on stdin.
#include <catch2/catch.hpp>

#include <elf.h>

#include <cstdio>
#include <cstring>

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

// The object the conformance suite's ELF mode makes of a program: the code in .text, one global
// function "main" covering it, no sections beyond the symbol and string tables.
std::vector<uint8_t> suite_elf(const std::vector<uint8_t>& code) {
  std::vector<uint8_t> out(64);
  const auto put = [&out](const void* p, size_t n) {
    const size_t at = out.size();
    out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return static_cast<uint64_t>(at);
  };
  const char shstr[] = "\0.text\0.symtab\0.strtab\0.shstrtab";  // names at 1, 7, 15, 23
  const char str[] = "\0main";
  Elf64_Sym syms[2] = {};
  syms[1].st_name = 1;
  syms[1].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC);
  syms[1].st_shndx = 1;
  syms[1].st_size = code.size();
  const uint64_t text = put(code.data(), code.size()), symtab = put(syms, sizeof syms), strtab = put(str, sizeof str),
                 shstrtab = put(shstr, sizeof shstr);
  out.resize((out.size() + 7) / 8 * 8);
  Elf64_Shdr sh[5] = {};
  sh[1] = {1, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 0, text, code.size(), 0, 0, 8, 0};
  sh[2] = {7, SHT_SYMTAB, 0, 0, symtab, sizeof syms, 3, 1, 8, sizeof(Elf64_Sym)};
  sh[3] = {15, SHT_STRTAB, 0, 0, strtab, sizeof str, 0, 0, 1, 0};
  sh[4] = {23, SHT_STRTAB, 0, 0, shstrtab, sizeof shstr, 0, 0, 1, 0};
  Elf64_Ehdr eh = {};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64, eh.e_ident[EI_DATA] = ELFDATA2LSB, eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_REL, eh.e_machine = EM_BPF, eh.e_version = EV_CURRENT;
  eh.e_shoff = put(sh, sizeof sh);
  eh.e_ehsize = sizeof eh, eh.e_shentsize = sizeof(Elf64_Shdr), eh.e_shnum = 5, eh.e_shstrndx = 4;
  std::memcpy(out.data(), &eh, sizeof eh);
  return out;
}

}  // namespace

TEST_CASE("plugin --elf runs every semantics case as the suite's ELF mode wraps it, with raw bytecode's verdict (issue 20)", "[plugin]") {
  // Before, such an object had "no programs" (its code is only in .text), and a call into the
  // middle of "main" (the suite's call_local) did not link: the suite's ELF mode passed 0 of 313.
  int ran = 0, ok = 0;
  for (const auto& c : test::load_cases()) {
    if (c.test_helpers) continue;
    INFO(c.where());
    const std::vector<uint8_t> code = test::must_assemble(c.source);
    // verified, as the suite runs it (the unverified path loads the object the same way)
    auto raw = test::run_process({EBPFVM_PLUGIN, c.mem_hex}, hex_of(code));
    auto elf = test::run_process({EBPFVM_PLUGIN, c.mem_hex, "--elf"}, hex_of(suite_elf(code)));
    CHECK(elf.exit_code == raw.exit_code);
    if (raw.exit_code == 0) CHECK(elf.out == raw.out);  // errors differ by the object's file and section
    ok += raw.exit_code == 0 && elf.out == raw.out;
    ++ran;
  }
  CHECK(ran > 100);
  CHECK(ok > 100);
}

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
