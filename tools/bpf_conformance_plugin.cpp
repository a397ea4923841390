// Plugin for the public bpf_conformance suite.
//   bpf_conformance_plugin [MEMHEX] [OPTIONS...] [--elf]
// stdin: the program as hex bytes (8 per instruction). Prints r0 in hex and exits 0, or prints
// one line describing the failure and exits 1 (2 for a usage error). Programs are verified for
// the memory given first; --no-verify runs them unverified in the checked interpreter.
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

// --elf: stdin holds an ELF object; its first program runs on the memory with r1 = memory,
// r2 = its size, whatever its section says (the suite's objects are not typed).
int run_elf(const std::vector<uint8_t>& bytes, std::vector<uint8_t>& memory, bool jit, bool verify) {
  using namespace ebpfvm;
  auto obj = Object::open(bytes, "<stdin>");
  if (!obj) return fail(obj.error().to_string());
  const std::string first = obj->programs().front().name;
  for (const ProgramInfo& p : obj->programs()) (void)obj->set_program_type(p.name, ProgType::SocketFilter);
  HelperRegistry extra;
  (void)extra.add({5, "nop", nop_helper, nullptr, {}});
  LoadOptions opts;
  opts.helpers = &extra;
  opts.verify.context = VerifyOptions::Context::Memory;
  opts.verify.memory_size = static_cast<uint32_t>(memory.size());
  if (jit) opts.engine = Engine::Jit;
  if (!verify) opts.safety = Safety::Checked;
  if (auto r = obj->load(opts); !r) return fail(r.error().to_string());
  auto prog = obj->program(first);
  if (!prog) return fail(prog.error().to_string());
  auto r0 = prog->run_raw(memory);
  if (!r0) return fail(r0.error().to_string());
  std::printf("0x%llx\n", static_cast<unsigned long long>(*r0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ebpfvm;
  // The suite passes memory and options as single arguments that may hold several words,
  // and may pass an empty argument where there is no memory.
  std::string memhex;
  bool jit = false, elf = false, verify = true;
  for (int i = 1; i < argc; ++i) {
    std::istringstream words(argv[i]);
    for (std::string w; words >> w;) {
      if (w == "--interpret") jit = false;
      else if (w == "--jit") jit = true;
      else if (w == "--elf") elf = true;
      else if (w == "--no-verify") verify = false;
      else if (w.rfind("--", 0) == 0) return fail("unknown option " + w, 2);
      else memhex += w + " ";
    }
  }


  auto memory = tools::parse_hex(memhex);
  if (!memory) return fail("input memory: " + memory.error().message, 2);
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto code = tools::parse_hex(input);
  if (!code) return fail("program: " + code.error().message, 2);
  if (jit && !verify) return fail("--no-verify runs the program unproven: only the checked interpreter may (drop --jit)", 2);
  if (elf) return run_elf(*code, *memory, jit, verify);

  auto program = Program::from_bytecode(*code);
  if (!program) return fail(program.error().to_string());
  HelperRegistry helpers;
  (void)helpers.add({5, "nop", nop_helper, nullptr, {}});
  // Verified for the memory given (r1 = its address, r2 = its size), unless --no-verify: then
  // only the checked interpreter runs it.
  const auto size = static_cast<uint32_t>(memory->size());
  auto r0 = jit ? [&]() -> Result<uint64_t> {
    auto native = JitProgram::compile(*program, helpers, {}, size);
    if (!native) return native.error();
    return native->run(*memory);
  }()
                : [&]() -> Result<uint64_t> {
    InterpreterOptions io;
    io.safety = verify ? Safety::Verified : Safety::Checked;
    io.memory_size = size;
    auto vm = Interpreter::create(*program, helpers, io);
    if (!vm) return vm.error();
    return vm->run(*memory);
  }();
  if (!r0) return fail(r0.error().to_string());
  std::printf("0x%llx\n", static_cast<unsigned long long>(*r0));
  return 0;
}
