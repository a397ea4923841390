// ebpfvm-exec PROG [--mem-hex "..."|--mem FILE] [--unchecked] [--repeat N] [--json]
// Runs one program (assembler text .s/.asm, or raw bytecode) with r1 = memory, r2 = its length.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <string>

#include "common.hpp"

namespace {

int die(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "ebpfvm-exec: %s\n", msg.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ebpfvm;
  CLI::App app{"Run a BPF program in the ebpfvm interpreter"};
  std::string path, mem_hex, mem_file;
  bool unchecked = false, json = false;
  uint64_t repeat = 1, budget = InterpreterOptions{}.insn_budget;
  app.add_option("program", path, "assembler text (.s, .asm) or raw bytecode")->required();
  auto* mh = app.add_option("--mem-hex", mem_hex, "input memory as hex bytes");
  app.add_option("--mem", mem_file, "input memory from a file (hex text when it ends in .hex)")->excludes(mh);
  app.add_flag("--unchecked", unchecked, "trust the program: no bounds checks (unsafe for unverified code)");
  app.add_option("--budget", budget, "checked mode: instructions a run may execute")->check(CLI::PositiveNumber);
  app.add_option("--repeat", repeat, "run N times and report the time per run")->check(CLI::PositiveNumber);
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  auto prog = tools::load_program(path);
  if (!prog) return die(prog.error().to_string());
  std::vector<uint8_t> mem;
  if (!mem_file.empty()) {
    auto m = tools::read_file(mem_file);
    if (!m) return die(m.error().to_string());
    if (mem_file.size() > 4 && mem_file.ends_with(".hex")) {
      auto parsed = tools::parse_hex(std::string_view(reinterpret_cast<const char*>(m->data()), m->size()));
      if (!parsed) return die(mem_file + ": " + parsed.error().message);
      m = std::move(parsed);
    }
    mem = std::move(*m);
  } else if (!mem_hex.empty()) {
    auto m = tools::parse_hex(mem_hex);
    if (!m) return die("--mem-hex: " + m.error().message, 2);
    mem = std::move(*m);
  }

  HelperRegistry helpers;
  InterpreterOptions opts{unchecked ? Safety::TrustedUnchecked : Safety::Checked, budget};
  auto vm = Interpreter::create(*prog, helpers, opts);
  if (!vm) return die(vm.error().to_string());

  // One checked-accounting run gives the instruction count; the timed runs use the chosen mode.
  std::vector<uint8_t> work = mem;
  RunArgs args;
  auto reset = [&] {
    work = mem;
    args.regs[0] = work.empty() ? 0 : reinterpret_cast<uintptr_t>(work.data());
    args.regs[1] = work.size();
    args.packet = work;
  };
  reset();
  RunStats stats;
  auto counter = Interpreter::create(*prog, helpers, {Safety::Checked, budget});
  if (!counter) return die(counter.error().to_string());
  auto counted = counter->run(args, &stats);
  if (!counted) return die(counted.error().to_string(), 3);

  uint64_t r0 = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < repeat; ++i) {
    reset();
    auto r = vm->run(args);
    if (!r) return die(r.error().to_string(), 3);
    r0 = *r;
  }
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / repeat;
  const char* mode = unchecked ? "unchecked" : "checked";
  if (json) {
    std::printf("{\"program\": \"%s\", \"slots\": %zu, \"mode\": \"%s\", \"r0\": %" PRIu64
                ", \"insns_executed\": %" PRIu64 ", \"ns_per_run\": %.1f}\n",
                path.c_str(), prog->slot_count(), mode, r0, stats.insns_executed, ns);
    return 0;
  }
  std::printf("program   %s (%zu instructions)\n", path.c_str(), prog->slot_count());
  std::printf("input     %zu bytes\n", mem.size());
  std::printf("mode      interpreter, %s\n", mode);
  std::printf("r0        0x%" PRIx64 " (%" PRIu64 ")\n", r0, r0);
  std::printf("executed  %" PRIu64 " instructions\n", stats.insns_executed);
  std::printf("time      %.1f ns/run over %" PRIu64 " runs (%.2f ns/instruction)\n", ns, repeat,
              stats.insns_executed ? ns / stats.insns_executed : 0.0);
  return 0;
}
