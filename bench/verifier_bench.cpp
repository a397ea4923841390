// Verifier speed: the time to verify every XDP program of the given objects (default: the test
// programs, the example and the Debian libxdp1 objects), median and max, and a generated
// 10,000-instruction program (target: < 50 ms).
//   verifier_bench [OBJECT.o ...]
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace {

void add_objects(const std::string& dir, std::vector<std::string>& out) {
  std::vector<std::string> found;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 2 && n.substr(n.size() - 2) == ".o" && n != "xdpdump_bpf.o") found.push_back(dir + "/" + n);
    }
    closedir(d);
  }
  std::sort(found.begin(), found.end());
  out.insert(out.end(), found.begin(), found.end());
}

// The project's test programs and example, then the XDP objects Debian ships (libxdp1).
std::vector<std::string> default_objects() {
  std::vector<std::string> out;
  add_objects(EBPFVM_BENCH_TEST_PROGRAMS, out);
  out.push_back(EBPFVM_BENCH_FIREWALL);
  add_objects(EBPFVM_LIBXDP_OBJECTS, out);
  return out;
}

// Straight-line packet parsing repeated: bounds checks, loads, ALU, spills, and stack traffic,
// the way long unrolled XDP programs look.
std::string big_program(unsigned insns) {
  std::string p = "r6 = r1\nr2 = *(u32 *)(r6 + 0)\nr3 = *(u32 *)(r6 + 4)\nr4 = r2\nr4 += 64\nif r4 > r3 goto out\n";
  for (int i = 1; i <= 8; ++i) p += "*(u64 *)(r10 - " + std::to_string(8 * i) + ") = 0\n";
  unsigned n = 14;
  for (unsigned i = 0; n + 12 < insns; ++i) {
    const unsigned off = (i * 7) % 56;
    p += "r5 = *(u8 *)(r2 + " + std::to_string(off) + ")\n";
    p += "r5 &= 31\n";
    p += "r7 = r10\nr7 += -64\nr7 += r5\n";
    p += "*(u64 *)(r10 - " + std::to_string(8 * (1 + i % 8)) + ") = r5\n";
    p += "r8 = *(u64 *)(r10 - " + std::to_string(8 * (1 + i % 8)) + ")\n";
    p += "r0 = *(u8 *)(r7 + 0)\n";
    p += "if r5 > 20 goto skip" + std::to_string(i) + "\n";
    p += "r8 += r0\n";
    p += "skip" + std::to_string(i) + ":\n";
    p += "r9 = r8\nr9 <<= 2\n";
    n += 12;
  }
  return p + "out:\nr0 = 2\nexit\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> objects(argv + 1, argv + argc);
  if (objects.empty()) objects = default_objects();
  std::vector<double> ms;
  double worst = 0;
  std::string worst_name;
  for (const std::string& path : objects) {
    auto obj = ebpfvm::Object::open(path);
    if (!obj) continue;
    if (auto r = obj->load(); !r) {
      std::printf("%-60s rejected: %s\n", path.c_str(), r.error().message.c_str());
      continue;
    }
    for (const auto& info : obj->programs()) {
      auto p = obj->program(info.name);
      if (!p || !p->verify_report()) continue;
      const double t = p->verify_report()->micros / 1e3;
      ms.push_back(t);
      if (t > worst) worst = t, worst_name = info.name;
      std::printf("%-24s %6zu insns %8llu analysed %8.3f ms\n", info.name.c_str(), p->code().slot_count(),
                  static_cast<unsigned long long>(p->verify_report()->insns_analysed), t);
    }
  }
  if (!ms.empty()) {
    std::sort(ms.begin(), ms.end());
    std::printf("\n%zu programs: median %.3f ms, max %.3f ms (%s)\n", ms.size(), ms[ms.size() / 2], ms.back(), worst_name.c_str());
  }
  auto prog = ebpfvm::Program::from_assembly(big_program(10000));
  if (!prog) {
    std::printf("generator: %s\n", prog.error().to_string().c_str());
    return 1;
  }
  ebpfvm::VerifyReport best;
  double best_ms = 1e9;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = ebpfvm::verify(*prog, ebpfvm::HelperRegistry::builtin(), {}, {});
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!r) {
      std::printf("10k program rejected: %s\n%s\n", r.error().to_string().c_str(), r.error().detail.c_str());
      return 1;
    }
    if (t < best_ms) best_ms = t, best = *r;
  }
  std::printf("%zu-instruction program: %.2f ms (target < 50 ms; %.2fx of the target), %llu states\n", prog->slot_count(), best_ms,
              best_ms / 50.0, static_cast<unsigned long long>(best.states));
  return 0;
}
