// ubpf-run end to end: packets per second of the whole process over a generated 1,000,000-packet
// capture of mixed traffic (60-1514 bytes, IPv4/IPv6, TCP/UDP/ICMP, VLAN), running the bundled
// firewall (parse, LRU hash of sources, hash lookup of ports, per-CPU counters) with the JIT, for
// 1 and 2 workers, from a warm page cache. Target: 8 Mpps on one worker.
//   ubpf_run_bench [PACKETS]
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "spawn.hpp"

int main(int argc, char** argv) {
  const long packets = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const std::string cap = (std::filesystem::temp_directory_path() / ("ubpf-run-bench-" + std::to_string(packets) + ".pcap")).string();
  if (!std::filesystem::exists(cap) && bench::spawn({EBPFVM_GEN_PCAP, cap, std::to_string(packets)}) < 0) {
    std::fprintf(stderr, "gen_pcap failed\n");
    return 1;
  }
  std::printf("capture  %s: %ld packets, %.1f MB\n", cap.c_str(), packets, std::filesystem::file_size(cap) / 1e6);
  (void)bench::spawn({EBPFVM_UBPF_RUN, EBPFVM_EXAMPLE_FIREWALL, "--pcap", cap, "--json"});  // warm the page cache
  for (const char* engine : {"jit", "interp"}) {
    for (int workers : {1, 2}) {
      double best = 1e9;
      for (int i = 0; i < 3; ++i) {
        const double t = bench::spawn({EBPFVM_UBPF_RUN, EBPFVM_EXAMPLE_FIREWALL, "--pcap", cap, "--json", "--engine", engine, "--workers",
                              std::to_string(workers)});
        if (t < 0) {
          std::fprintf(stderr, "ubpf-run failed\n");
          return 1;
        }
        best = std::min(best, t);
      }
      const double mpps = packets / best / 1e6;
      std::printf("%-6s %d worker%s  %6.2f Mpps  %6.1f ns/packet  (target 8 Mpps on one worker: %.2fx)\n", engine, workers,
                  workers == 1 ? " " : "s", mpps, best * 1e9 / packets, mpps / 8.0);
    }
  }
  return 0;
}
