// Verifier speed against the kernel's: the time ebpfvm takes to verify every XDP program of the
// given objects (default: the test programs, the example and the Debian libxdp1 objects), beside
// the Linux verifier's own time for the same program (its BPF_LOG_STATS "verification time"),
// measured in the same run where this process may load programs; their ratio per program and the
// median ratio (goal: <= 1.0, faster than the kernel), the worst time, and the states kept. Then a
// generated 10,000-instruction program (target: < 50 ms). Best of three for both verifiers.
//   verifier_bench [OBJECT.o ...]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
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

int silent(libbpf_print_level, const char*, va_list) { return 0; }

// The kernel's verification time of each program of `path`, in µs (BPF_LOG_STATS), best of
// `rounds` loads; a program the kernel refuses (or the object libbpf cannot load) is absent,
// with the reason in `why`.
std::map<std::string, double> kernel_micros(const std::string& path, int rounds, std::string& why) {
  std::map<std::string, double> best;
  for (int round = 0; round < rounds; ++round) {
    bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
    if (!obj) {
      why = "libbpf cannot open it";
      return {};
    }
    bpf_map* m;
    bpf_object__for_each_map(m, obj) bpf_map__set_pin_path(m, nullptr);  // libxdp's pin by name: not here
    std::map<std::string, std::vector<char>> logs;
    bpf_program* p;
    bpf_object__for_each_program(p, obj) {
      auto& log = logs[bpf_program__name(p)];
      log.assign(1 << 16, 0);
      bpf_program__set_log_level(p, 4);  // BPF_LOG_STATS
      bpf_program__set_log_buf(p, log.data(), log.size());
    }
    if (bpf_object__load(obj) != 0) {
      why = std::string("the kernel refuses it: ") + std::strerror(errno);
      bpf_object__close(obj);
      return {};
    }
    for (auto& [name, log] : logs) {
      const char* at = std::strstr(log.data(), "verification time ");
      if (!at) continue;
      const double us = std::strtod(at + std::strlen("verification time "), nullptr);
      if (!best.count(name) || us < best[name]) best[name] = us;
    }
    bpf_object__close(obj);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> objects(argv + 1, argv + argc);
  if (objects.empty()) objects = default_objects();
  libbpf_set_print(silent);
  std::vector<double> ms, ratios;
  double worst = 0;
  std::string worst_name;
  uint64_t most_states = 0, most_bytes = 0;
  std::printf("%-22s %-24s %6s %8s %7s %10s %10s %7s\n", "object", "program", "insns", "analysed", "states", "ebpfvm us", "kernel us",
              "ratio");
  for (const std::string& path : objects) {
    const std::string file = path.substr(path.rfind('/') + 1);
    std::map<std::string, double> ours;
    std::map<std::string, std::pair<size_t, ebpfvm::VerifyReport>> reports;
    bool loaded = false;
    for (int round = 0; round < 3; ++round) {
      auto obj = ebpfvm::Object::open(path);
      if (!obj) break;
      if (auto r = obj->load(); !r) {
        if (round == 0) std::printf("%-22s rejected: %s\n", file.c_str(), r.error().message.c_str());
        break;
      }
      loaded = true;
      for (const auto& info : obj->programs()) {
        auto p = obj->program(info.name);
        if (!p || !p->verify_report()) continue;
        const double us = static_cast<double>(p->verify_report()->micros);
        if (!ours.count(info.name) || us < ours[info.name]) ours[info.name] = us, reports[info.name] = {p->code().slot_count(), *p->verify_report()};
      }
    }
    if (!loaded) continue;
    std::string why;
    const std::map<std::string, double> kernel = kernel_micros(path, 3, why);
    for (const auto& [name, us] : ours) {
      const auto& [insns, rep] = reports[name];
      ms.push_back(us / 1e3);
      most_states = std::max(most_states, rep.states);
      most_bytes = std::max(most_bytes, rep.state_bytes);
      if (us / 1e3 > worst) worst = us / 1e3, worst_name = file + " " + name;
      auto k = kernel.find(name);
      char kcol[32] = "-", rcol[32] = "-";
      if (k != kernel.end() && k->second > 0) {
        std::snprintf(kcol, sizeof kcol, "%.0f", k->second);
        std::snprintf(rcol, sizeof rcol, "%.2f", us / k->second);
        ratios.push_back(us / k->second);
      }
      std::printf("%-22s %-24s %6zu %8llu %7llu %10.0f %10s %7s\n", file.c_str(), name.c_str(), insns,
                  static_cast<unsigned long long>(rep.insns_analysed), static_cast<unsigned long long>(rep.states), us, kcol, rcol);
    }
    if (kernel.empty()) std::printf("%-22s (no kernel figure: %s)\n", file.c_str(), why.empty() ? "no statistics in its log" : why.c_str());
  }
  if (!ms.empty()) {
    std::sort(ms.begin(), ms.end());
    std::printf("\n%zu programs: median %.3f ms, max %.3f ms (%s), at most %llu states kept, at most %.1f MB of states\n", ms.size(),
                ms[ms.size() / 2], ms.back(), worst_name.c_str(), static_cast<unsigned long long>(most_states), most_bytes / 1e6);
  }
  if (!ratios.empty()) {
    std::sort(ratios.begin(), ratios.end());
    std::printf("against the kernel's verifier (%zu programs both verified): median ratio %.2f (goal <= 1.0), best %.2f, worst %.2f\n",
                ratios.size(), ratios[ratios.size() / 2], ratios.front(), ratios.back());
  } else {
    std::printf("no kernel figures: this process may not load programs into the kernel here\n");
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
  std::printf("%zu-instruction program: %.2f ms (target < 50 ms; %.2fx of the target), %llu states, %.1f MB\n", prog->slot_count(), best_ms,
              best_ms / 50.0, static_cast<unsigned long long>(best.states), best.state_bytes / 1e6);
  return 0;
}
