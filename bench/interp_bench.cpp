// Interpreter speed: ns per executed eBPF instruction (wall clock, best of several rounds) and
// host instructions per eBPF instruction (valgrind --tool=callgrind, deterministic).
//
//   interp_bench                  run everything; uses valgrind when it is installed
//   interp_bench --count NAME N   (internal) one unchecked run under callgrind's collection
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

using namespace ebpfvm;

namespace {

struct Kernel {
  const char* name;
  const char* what;
  const char* source;  // r1 = memory, r2 = its length, r3 = iterations
  size_t mem_size;
};

const Kernel kKernels[] = {
    {"alu64_loop", "ALU64 + branch loop, 8 insns/iteration",
     "r0 = 0\n r2 = 1\n"
     "loop: r0 += r2\n r2 *= 3\n r4 = r0\n r4 >>= 3\n r0 ^= r4\n r2 &= 0xffff\n r3 -= 1\n"
     " if r3 != 0 goto loop\n exit\n",
     0},
    {"alu32_loop", "ALU32 + jmp32 loop (clang -mcpu=v3 style), 8 insns/iteration",
     "w0 = 0\n w2 = 1\n"
     "loop: w0 += w2\n w2 *= 3\n w4 = w0\n w4 >>= 3\n w0 ^= w4\n w2 &= 0xffff\n w3 -= 1\n"
     " if w3 != 0 goto loop\n exit\n",
     0},
    {"branchy_loop", "compare-heavy loop, 4 conditional jumps/iteration",
     "r0 = 0\n"
     "loop: r4 = r3\n r4 &= 7\n if r4 > 3 goto big\n r0 += 1\n goto next\n"
     "big: if r4 == 5 goto five\n r0 += 2\n goto next\n five: r0 ^= 3\n"
     "next: r3 -= 1\n if r3 s> 0 goto loop\n exit\n",
     0},
    {"checksum_mem", "RFC 1071 checksum over memory (loads + ALU), per byte pair",
     "r0 = 0\n"
     "again: r5 = r1\n r6 = r1\n r6 += r2\n"
     "words: r4 = r5\n r4 += 2\n if r4 > r6 goto fold\n r7 = *(u16 *)(r5 + 0)\n r7 = be16 r7\n"
     " r0 += r7\n r5 += 2\n goto words\n"
     "fold: r7 = r0\n r7 >>= 16\n if r7 == 0 goto done\n r0 &= 0xffff\n r0 += r7\n goto fold\n"
     "done: r3 -= 1\n if r3 != 0 goto again\n exit\n",
     1500},
};

struct Setup {
  Interpreter unchecked, checked;
  std::vector<uint8_t> mem;
};

Setup setup(const Kernel& k) {
  auto prog = Program::from_assembly(k.source);
  if (!prog) {
    std::fprintf(stderr, "%s: %s\n", k.name, prog.error().to_string().c_str());
    std::exit(1);
  }
  auto u = Interpreter::create(*prog, {}, {Safety::TrustedUnchecked});
  auto c = Interpreter::create(*prog, {}, {Safety::Checked, ~0ull});
  std::vector<uint8_t> mem(k.mem_size);
  for (size_t i = 0; i < mem.size(); ++i) mem[i] = static_cast<uint8_t>(i * 7 + 3);
  return {*u, *c, mem};
}

RunArgs args_for(Setup& s, uint64_t iterations) {
  RunArgs a;
  a.regs[0] = reinterpret_cast<uintptr_t>(s.mem.data());
  a.regs[1] = s.mem.size();
  a.regs[2] = iterations;
  a.packet = s.mem;
  return a;
}

double time_ns(const Interpreter& vm, const RunArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  auto res = vm.run(a);
  auto t1 = std::chrono::steady_clock::now();
  if (!res) {
    std::fprintf(stderr, "run failed: %s\n", res.error().to_string().c_str());
    std::exit(1);
  }
  return std::chrono::duration<double, std::nano>(t1 - t0).count();
}

struct Timing {
  double best, median;
};

// Rounds of the two modes interleave, so that a slow patch of the machine hits both alike.
std::pair<Timing, Timing> measure(const Setup& s, const RunArgs& a, int rounds) {
  std::vector<double> u, c;
  for (int r = 0; r < rounds; ++r) {
    u.push_back(time_ns(s.unchecked, a));
    c.push_back(time_ns(s.checked, a));
  }
  auto summarise = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return Timing{v.front(), v[v.size() / 2]};
  };
  return {summarise(u), summarise(c)};
}

const Kernel* find(const std::string& name) {
  for (const Kernel& k : kKernels)
    if (name == k.name) return &k;
  return nullptr;
}

// Host instructions that callgrind counted for one unchecked run of N iterations.
double callgrind_ir(const char* self, const Kernel& k, uint64_t iterations) {
  std::string out = "/tmp/ebpfvm-callgrind." + std::to_string(getpid()) + "." + k.name;
  std::string cmd = std::string("valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=") + out + " " +
                    self + " --count " + k.name + " " + std::to_string(iterations) + " > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) return -1;
  std::ifstream in(out);
  double ir = -1;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("totals:", 0) == 0 || line.rfind("summary:", 0) == 0) ir = std::stod(line.substr(line.find(':') + 1));
  std::remove(out.c_str());
  return ir;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--count") {
    const Kernel* k = find(argv[2]);
    if (!k) return 2;
    Setup s = setup(*k);
    RunArgs a = args_for(s, std::stoull(argv[3]));
    CALLGRIND_TOGGLE_COLLECT;
    auto r = s.unchecked.run(a);
    CALLGRIND_TOGGLE_COLLECT;
    return r ? 0 : 1;
  }
  const bool have_valgrind = std::system("valgrind --version > /dev/null 2>&1") == 0;
  std::printf("ebpfvm interpreter benchmark: ns per executed eBPF instruction, best (median) of 21 rounds\n\n");
  std::printf("%-14s %10s %18s %18s %16s\n", "kernel", "insns/run", "trusted", "checked", "host insns/insn");
  for (const Kernel& k : kKernels) {
    Setup s = setup(k);
    const uint64_t iterations = k.mem_size ? 500 : 500'000;
    RunArgs a = args_for(s, iterations);
    RunStats stats;
    if (!s.checked.run(a, &stats)) return 1;
    auto [tu, tc] = measure(s, a, 21);
    const double n = static_cast<double>(stats.insns_executed);
    // Two run lengths under callgrind; their difference removes the fixed cost of one run.
    std::string host = "n/a";
    if (have_valgrind) {
      const uint64_t small = k.mem_size ? 2 : 1000, large = k.mem_size ? 22 : 21000;
      RunStats s1, s2;
      (void)s.checked.run(args_for(s, small), &s1);
      (void)s.checked.run(args_for(s, large), &s2);
      double ir1 = callgrind_ir(argv[0], k, small), ir2 = callgrind_ir(argv[0], k, large);
      if (ir1 > 0 && ir2 > 0) host = std::to_string((ir2 - ir1) / double(s2.insns_executed - s1.insns_executed)).substr(0, 5);
    }
    std::printf("%-14s %10llu %8.3f (%6.3f) %8.3f (%6.3f) %16s   %s\n", k.name,
                static_cast<unsigned long long>(stats.insns_executed), tu.best / n, tu.median / n, tc.best / n,
                tc.median / n, host.c_str(), k.what);
  }
  std::printf("\ntargets: <= 1.2 ns and <= 8 host instructions per eBPF instruction on ALU/branch loops\n");
  return 0;
}
