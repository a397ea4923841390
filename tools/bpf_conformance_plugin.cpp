// Plugin for the public bpf_conformance suite.
//   bpf_conformance_plugin [MEMHEX] [OPTIONS...] [--elf]
// stdin: the program as hex bytes (8 per instruction). Prints r0 in hex and exits 0, or prints
// one line describing the failure and exits 1 (2 for a usage error).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "common.hpp"

namespace {

uint64_t nop_helper(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return 0; }

int fail(const std::string& message, int code = 1) {
  std::cout << message << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ebpfvm;
  // The suite passes memory and options as single arguments that may hold several words,
  // and may pass an empty argument where there is no memory.
  std::string memhex;
  bool jit = false, elf = false;
  for (int i = 1; i < argc; ++i) {
    std::istringstream words(argv[i]);
    for (std::string w; words >> w;) {
      if (w == "--interpret") jit = false;
      else if (w == "--jit") jit = true;
      else if (w == "--elf") elf = true;
      else if (w.rfind("--", 0) == 0) return fail("unknown option " + w, 2);
      else memhex += w + " ";
    }
  }
  if (jit) return fail("--jit: this build has no JIT yet; use --interpret");
  if (elf) return fail("--elf: ELF input is not supported by this build yet");

  auto memory = tools::parse_hex(memhex);
  if (!memory) return fail("input memory: " + memory.error().message, 2);
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto code = tools::parse_hex(input);
  if (!code) return fail("program: " + code.error().message, 2);

  auto program = Program::from_bytecode(*code);
  if (!program) return fail(program.error().to_string());
  HelperRegistry helpers;
  (void)helpers.add({5, "nop", nop_helper, nullptr, {}});
  auto vm = Interpreter::create(*program, helpers, {Safety::Checked});
  if (!vm) return fail(vm.error().to_string());
  auto r0 = vm->run(*memory);
  if (!r0) return fail(r0.error().to_string());
  std::printf("0x%llx\n", static_cast<unsigned long long>(*r0));
  return 0;
}
