// Hash and LRU hash updates from a program, ebpfvm against the kernel in the same run: the same
// object (bench/map_update.c: 64 bpf_map_update_elem calls per run over 1,024 keys that exist
// after the first run; "churn": 32 deletes and 32 inserts of the same keys) run by the kernel's
// BPF_PROG_TEST_RUN with `repeat` and by ebpfvm's JIT in a loop. ns per operation, best of five
// alternating rounds, and the ratio (goal: <= 1.0). Where this process may not load programs,
// the kernel's side is skipped with the reason.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace {

constexpr int kPerRun = 64;
constexpr int kRuns = 20000;

double ebpfvm_ns(const ebpfvm::LoadedProgram& prog) {
  std::vector<uint8_t> pkt(64, 0);
  ebpfvm::XdpBuffer buf(pkt);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) {
    buf.assign(pkt);
    auto r = prog.run_xdp(buf);
    if (!r || r->action != ebpfvm::XdpAction::Pass) {
      std::fprintf(stderr, "map_bench: ebpfvm run failed\n");
      std::exit(1);
    }
  }
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / (double(kRuns) * kPerRun);
}

// The kernel's own average over `repeat` runs (its duration field), per update.
double kernel_ns(int fd) {
  std::vector<uint8_t> pkt(64, 0);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(), .data_size_in = static_cast<uint32_t>(pkt.size()), .repeat = kRuns);
  if (bpf_prog_test_run_opts(fd, &opts) != 0 || opts.retval != 2) return -1;
  return static_cast<double>(opts.duration) / kPerRun;
}

const char* label(const std::string& prog) {
  return prog == "update_hash" ? "hash" : prog == "update_lru" ? "lru" : "hash churn";
}

}  // namespace

int main() {
  auto obj = ebpfvm::Object::open(EBPFVM_BENCH_MAP_UPDATE);
  if (!obj) return std::fprintf(stderr, "%s\n", obj.error().to_string().c_str()), 1;
  ebpfvm::LoadOptions lo;
  lo.engine = ebpfvm::Engine::Jit;
  if (auto r = obj->load(lo); !r) return std::fprintf(stderr, "%s\n", r.error().to_string().c_str()), 1;

  bpf_object* kobj = bpf_object__open_file(EBPFVM_BENCH_MAP_UPDATE, nullptr);
  std::string skip;
  if (!kobj || bpf_object__load(kobj) != 0) skip = "the kernel did not load map_update.o (needs CAP_BPF and CAP_NET_ADMIN, or root)";

  std::printf("map updates from a program: 64 operations per run over 1,024 keys, %d runs, best of 5 alternating rounds\n", kRuns);
  std::printf("%-10s %12s %12s %8s\n", "map", "ebpfvm ns", "kernel ns", "ratio");
  for (const char* name : {"update_hash", "update_lru", "churn_hash"}) {
    auto prog = obj->program(name);
    if (!prog) return std::fprintf(stderr, "%s\n", prog.error().to_string().c_str()), 1;
    const int kfd = skip.empty() ? bpf_program__fd(bpf_object__find_program_by_name(kobj, name)) : -1;
    double mine = 1e18, theirs = 1e18;
    for (int round = 0; round < 5; ++round) {
      mine = std::min(mine, ebpfvm_ns(*prog));
      if (kfd >= 0) {
        const double k = kernel_ns(kfd);
        if (k > 0) theirs = std::min(theirs, k);
      }
    }
    if (theirs < 1e18)
      std::printf("%-10s %12.1f %12.1f %8.2f\n", label(name), mine, theirs, mine / theirs);
    else
      std::printf("%-10s %12.1f %12s %8s\n", label(name), mine, "-", "-");
  }
  if (!skip.empty()) std::printf("SKIP the kernel's side: %s\n", skip.c_str());
  if (kobj) bpf_object__close(kobj);
  return 0;
}
