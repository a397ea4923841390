// JIT against native code and the interpreter: the kernels of bench/kernels.c, compiled natively
// (the host C compiler, -O2) and to BPF (clang -target bpf), run in one process in interleaved
// rounds. Prints ns per run (best and median of the rounds), JIT/native and interp/JIT, and the
// JIT's compile time per program.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

extern "C" {
#define K(name) uint64_t native_##name(uint8_t*);
K(invoke) K(alu_loop) K(checksum_1500) K(primes) K(log2_array) K(strcmp_1mib) K(copy_4k) K(switch_4k) K(parse_packet)
#undef K
}

namespace {

using Clock = std::chrono::steady_clock;

struct Kernel {
  const char* name;
  uint64_t (*native)(uint8_t*);
};
const Kernel kKernels[] = {
    {"invoke", native_invoke},         {"alu_loop", native_alu_loop},     {"checksum_1500", native_checksum_1500}, {"primes", native_primes},
    {"log2_array", native_log2_array}, {"strcmp_1mib", native_strcmp_1mib},     {"copy_4k", native_copy_4k},
    {"switch_4k", native_switch_4k},   {"parse_packet", native_parse_packet},
};

// ns per call of f, over enough calls to take about 5 ms.
template <class F>
double time_one(F&& f) {
  uint64_t n = 1;
  for (;;) {
    const auto t0 = Clock::now();
    for (uint64_t i = 0; i < n; ++i) f();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    if (ns > 5e6 || n > (1u << 26)) return ns / static_cast<double>(n);
    n *= 2;
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : EBPFVM_BENCH_KERNELS;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  const std::string only = argc > 3 ? argv[3] : "";  // run just this kernel
  std::vector<uint8_t> mem((1u << 20) + 8192);
  for (size_t i = 0; i < (1u << 19); ++i) mem[i] = static_cast<uint8_t>(i * 7 + (i >> 8));
  const uint8_t pkt[] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6,
                         0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb};
  std::memcpy(mem.data(), pkt, sizeof pkt);
  std::memcpy(mem.data() + (1u << 19), mem.data(), 1u << 19);  // strcmp's halves are equal

  // The kernels loop 100,000 times, beyond what the verifier unrolls (and beyond the kernel's
  // limit too): they run as trusted code, linked by the loader, compiled and interpreted raw.
  auto obj = ebpfvm::Object::open(path);
  if (!obj) {
    std::fprintf(stderr, "%s\n", obj.error().to_string().c_str());
    return 1;
  }
  ebpfvm::LoadOptions o;
  o.safety = ebpfvm::Safety::Checked;  // only to link; the runs below use the raw engines
  if (auto r = obj->load(o); !r) {
    std::fprintf(stderr, "%s\n", r.error().to_string().c_str());
    return 1;
  }
  std::printf("%-14s %10s %10s %10s %10s %10s %12s\n", "kernel", "native ns", "jit ns", "interp ns", "jit/native",
              "interp/jit", "compile us");
  for (const Kernel& k : kKernels) {
    if (!only.empty() && only != k.name) continue;
    auto linked = obj->program(k.name);
    if (!linked) {
      std::fprintf(stderr, "%s: missing\n", k.name);
      return 1;
    }
    auto pj = ebpfvm::JitProgram::compile_trusted(linked->code(), ebpfvm::HelperRegistry::builtin());
    auto pi = ebpfvm::Interpreter::create(linked->code(), ebpfvm::HelperRegistry::builtin(), {ebpfvm::Safety::TrustedUnchecked});
    if (!pj || !pi) return 1;
    const uint64_t want = k.native(mem.data());
    if (*pj->run(mem) != want || *pi->run(mem) != want) {
      std::fprintf(stderr, "%s: results differ (native %llu)\n", k.name, static_cast<unsigned long long>(want));
      return 1;
    }
    std::vector<double> tn, tj, ti;
    volatile uint64_t sink = 0;
    for (int r = 0; r < rounds; ++r) {
      tn.push_back(time_one([&] { sink = sink + k.native(mem.data()); }));
      tj.push_back(time_one([&] { sink = sink + *pj->run(mem); }));
      ti.push_back(time_one([&] { sink = sink + *pi->run(mem); }));
    }
    const auto t0 = Clock::now();
    auto compiled = ebpfvm::JitProgram::compile_trusted(linked->code(), ebpfvm::HelperRegistry::builtin());
    const double compile_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (!compiled) return 1;
    const double n = *std::min_element(tn.begin(), tn.end()), j = *std::min_element(tj.begin(), tj.end()),
                 i = *std::min_element(ti.begin(), ti.end());
    std::printf("%-14s %10.1f %10.1f %10.1f %9.2fx %9.2fx %12.1f   (median %.1f / %.1f / %.1f)\n", k.name, n, j, i, j / n, i / j,
                compile_us, median(tn), median(tj), median(ti));
  }
  return 0;
}
