// tcpdump filters: ns per packet of ebpfvm's translation (JIT and interpreter) against libpcap's
// own interpreter, bpf_filter(), which tcpdump and every libpcap reader run for each packet of a
// capture (pcap_offline_filter) - measured in the same run, over the same packets in memory: a
// generated capture of mixed traffic (examples/gen_pcap). Best of five alternating rounds.
// Target: the JIT faster than libpcap on every expression (ratio > 1).
//   filter_bench [PACKETS]
#include <pcap/pcap.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

extern char** environ;

namespace {

struct Packet {
  std::vector<uint8_t> data;
  uint32_t wire_len;
};

std::vector<Packet> read_capture(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  std::vector<Packet> out;
  if (!p) return out;
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1) out.push_back({{d, d + h->caplen}, h->len});
  pcap_close(p);
  return out;
}

template <class F>
double ns_per_packet(const std::vector<Packet>& pkts, uint64_t& matched, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t m = 0;
  for (const Packet& p : pkts) m += f(p) != 0;
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  matched = m;
  return ns / static_cast<double>(pkts.size());
}

}  // namespace

int main(int argc, char** argv) {
  const long packets = argc > 1 ? std::atol(argv[1]) : 200'000;
  const std::string cap = (std::filesystem::temp_directory_path() / ("filter-bench-" + std::to_string(packets) + ".pcap")).string();
  if (!std::filesystem::exists(cap)) {
    std::string n = std::to_string(packets);
    std::vector<char*> av{const_cast<char*>(EBPFVM_GEN_PCAP), const_cast<char*>(cap.c_str()), n.data(), nullptr};
    pid_t pid;
    int status = 0;
    if (posix_spawn(&pid, av[0], nullptr, nullptr, av.data(), environ) != 0 || waitpid(pid, &status, 0) < 0 || status != 0) {
      std::fprintf(stderr, "gen_pcap failed\n");
      return 1;
    }
  }
  const auto pkts = read_capture(cap);
  if (pkts.empty()) {
    std::fprintf(stderr, "%s: no packets\n", cap.c_str());
    return 1;
  }
  std::printf("%zu packets of %s, in memory\n", pkts.size(), cap.c_str());
  std::printf("%-44s %9s %9s %9s %7s %7s\n", "expression", "libpcap", "jit", "interp", "jit x", "interp x");
  const char* const expressions[] = {"tcp", "tcp port 22", "udp and dst port 53", "host 10.0.0.1 or host 10.0.0.2",
                                     "tcp[tcpflags] & tcp-syn != 0", "ip6 and tcp dst portrange 1000-2000",
                                     "vlan and ip and udp", "not arp and len > 100 and (ip[6:2] & 0x1fff) = 0"};
  bool all_faster = true;
  for (const char* expr : expressions) {
    auto jit = ebpfvm::PacketFilter::compile(expr, {ebpfvm::Engine::Jit});
    auto interp = ebpfvm::PacketFilter::compile(expr, {ebpfvm::Engine::Interpreter});
    if (!jit || !interp) {
      std::fprintf(stderr, "%s: %s\n", expr, (!jit ? jit : interp).error().to_string().c_str());
      return 1;
    }
    std::vector<bpf_insn> raw;
    for (const ebpfvm::ClassicInsn& in : jit->classic()) raw.push_back({in.code, in.jt, in.jf, in.k});
    double best[3] = {1e18, 1e18, 1e18};
    uint64_t m[3] = {};
    for (int round = 0; round < 5; ++round) {
      best[0] = std::min(best[0], ns_per_packet(pkts, m[0], [&](const Packet& p) {
        return bpf_filter(raw.data(), p.data.data(), p.wire_len, static_cast<u_int>(p.data.size()));
      }));
      best[1] = std::min(best[1], ns_per_packet(pkts, m[1], [&](const Packet& p) { return jit->run(p.data, p.wire_len); }));
      best[2] = std::min(best[2], ns_per_packet(pkts, m[2], [&](const Packet& p) { return interp->run(p.data, p.wire_len); }));
    }
    if (m[0] != m[1] || m[0] != m[2]) {
      std::fprintf(stderr, "%s: matches differ: libpcap %llu, jit %llu, interpreter %llu\n", expr, (unsigned long long)m[0],
                   (unsigned long long)m[1], (unsigned long long)m[2]);
      return 1;
    }
    all_faster = all_faster && best[1] < best[0];
    std::printf("%-44s %7.1fns %7.1fns %7.1fns %6.2fx %6.2fx\n", expr, best[0], best[1], best[2], best[0] / best[1], best[0] / best[2]);
  }
  std::printf("target (the JIT faster than libpcap on every expression): %s\n", all_faster ? "met" : "NOT met");
  return 0;
}
