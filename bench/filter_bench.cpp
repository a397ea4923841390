// tcpdump filters: ebpfvm's translation against libpcap, measured in the same run.
//  1. The filter itself: ns per packet of libpcap's bpf_filter() (the interpreter tcpdump and
//     every libpcap reader run on each packet of a capture), ebpfvm's JIT and its interpreter, on
//     a working set of 1024 packets held in cache, then on 200,000 packets in memory. Goal: the JIT
//     at least 3x libpcap's interpreter on the filter itself, on every expression.
//  2. Whole programs over a generated capture (examples/gen_pcap; 1,000,000 packets by default),
//     page cache warm: `ubpf-run filter -r CAP -w /dev/null EXPR`, `tcpdump -r CAP -w /dev/null
//     EXPR`, and a libpcap loop (pcap_next_ex + pcap_offline_filter, nothing written), packets per
//     second and ratios. Best of five (filter) or three (programs) alternating rounds.
//   filter_bench [PACKETS]
#include <fcntl.h>
#include <pcap/pcap.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "spawn.hpp"

namespace {

struct Packet {
  std::vector<uint8_t> data;
  uint32_t wire_len;
};

std::vector<Packet> read_capture(const std::string& path, size_t limit) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  std::vector<Packet> out;
  if (!p) return out;
  pcap_pkthdr* h;
  const u_char* d;
  while (out.size() < limit && pcap_next_ex(p, &h, &d) == 1) out.push_back({{d, d + h->caplen}, h->len});
  pcap_close(p);
  return out;
}

// pcap_offline_filter over the capture, as a libpcap program reads one; the seconds taken.
double libpcap_loop(const std::string& path, const char* expr, uint64_t& matched) {
  const auto t0 = std::chrono::steady_clock::now();
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (!p) return -1;
  bpf_program bp{};
  if (pcap_compile(p, &bp, expr, 1, 0) != 0) return -1;
  pcap_pkthdr* h;
  const u_char* d;
  matched = 0;
  while (pcap_next_ex(p, &h, &d) == 1) matched += pcap_offline_filter(&bp, h, d) != 0;
  pcap_freecode(&bp);
  pcap_close(p);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class F>
double ns_per_packet(const std::vector<Packet>& pkts, size_t rounds, uint64_t& matched, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t m = 0;
  for (size_t r = 0; r < rounds; ++r)
    for (const Packet& p : pkts) m += f(p) != 0;
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  matched = m;
  return ns / static_cast<double>(pkts.size() * rounds);
}

}  // namespace

int main(int argc, char** argv) {
  const long packets = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const std::string cap = (std::filesystem::temp_directory_path() / ("filter-bench-" + std::to_string(packets) + ".pcap")).string();
  if (!std::filesystem::exists(cap) && bench::spawn({EBPFVM_GEN_PCAP, cap, std::to_string(packets)}) < 0) {
    std::fprintf(stderr, "gen_pcap failed\n");
    return 1;
  }
  const auto all = read_capture(cap, 200'000);
  if (all.size() < 1024) {
    std::fprintf(stderr, "%s: too few packets\n", cap.c_str());
    return 1;
  }
  const std::vector<Packet> hot(all.begin(), all.begin() + 1024);
  std::printf("capture %s: %ld packets, %.1f MB\n\n", cap.c_str(), packets, std::filesystem::file_size(cap) / 1e6);
  struct Expr {
    const char* kind;
    const char* text;
  };
  const Expr expressions[] = {{"simple", "tcp"},
                              {"medium", "tcp port 80 or udp port 53"},
                              {"complex", "vlan and ip and tcp dst portrange 1000-2000 and (tcp[tcpflags] & tcp-syn) != 0 and ip[6:2] & 0x1fff = 0"},
                              {"hosts", "host 10.0.0.1 or host 10.0.0.2"},
                              {"ip6", "ip6 and udp and not port 53"}};
  std::printf("the filter itself, ns per packet (1024 packets in cache | 200,000 in memory)\n");
  std::printf("%-8s %-22s %-22s %-22s %-15s\n", "", "libpcap bpf_filter", "ebpfvm jit", "ebpfvm interp", "jit x libpcap");
  bool goal = true;
  for (const Expr& e : expressions) {
    auto jit = ebpfvm::PacketFilter::compile(e.text, {ebpfvm::Engine::Jit});
    auto interp = ebpfvm::PacketFilter::compile(e.text, {ebpfvm::Engine::Interpreter});
    if (!jit || !interp) {
      std::fprintf(stderr, "%s: %s\n", e.text, (!jit ? jit : interp).error().to_string().c_str());
      return 1;
    }
    std::vector<bpf_insn> raw;
    for (const ebpfvm::ClassicInsn& in : jit->classic()) raw.push_back({in.code, in.jt, in.jf, in.k});
    double best[2][3] = {{1e18, 1e18, 1e18}, {1e18, 1e18, 1e18}};
    for (int set = 0; set < 2; ++set) {
      const auto& pkts = set == 0 ? hot : all;
      const size_t rounds = set == 0 ? 200 : 1;
      uint64_t m[3] = {};
      for (int round = 0; round < 5; ++round) {
        best[set][0] = std::min(best[set][0], ns_per_packet(pkts, rounds, m[0], [&](const Packet& p) {
          return bpf_filter(raw.data(), p.data.data(), p.wire_len, static_cast<u_int>(p.data.size()));
        }));
        best[set][1] = std::min(best[set][1], ns_per_packet(pkts, rounds, m[1], [&](const Packet& p) { return jit->run(p.data, p.wire_len); }));
        best[set][2] = std::min(best[set][2], ns_per_packet(pkts, rounds, m[2], [&](const Packet& p) { return interp->run(p.data, p.wire_len); }));
      }
      if (m[0] != m[1] || m[0] != m[2]) {
        std::fprintf(stderr, "%s: matches differ: libpcap %llu, jit %llu, interpreter %llu\n", e.text, (unsigned long long)m[0],
                     (unsigned long long)m[1], (unsigned long long)m[2]);
        return 1;
      }
    }
    goal = goal && best[0][0] / best[0][1] >= 3.0;
    auto cell = [](double a, double b) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%5.1f | %5.1f", a, b);
      return std::string(buf);
    };
    std::printf("%-8s %-22s %-22s %-22s %4.1fx | %4.1fx   %s\n", e.kind, cell(best[0][0], best[1][0]).c_str(), cell(best[0][1], best[1][1]).c_str(),
                cell(best[0][2], best[1][2]).c_str(), best[0][0] / best[0][1], best[1][0] / best[1][1], e.text);
  }
  std::printf("goal (the JIT at least 3x libpcap's interpreter on the filter itself, every expression): %s\n\n", goal ? "met" : "NOT met");

  const std::string tcpdump = std::filesystem::exists("/usr/bin/tcpdump") ? "/usr/bin/tcpdump" : "/usr/sbin/tcpdump";
  const bool have_tcpdump = std::filesystem::exists(tcpdump);
  (void)bench::spawn({EBPFVM_UBPF_RUN, "filter", "-r", cap, "--count", "tcp"});  // warm the page cache
  std::printf("whole programs over the capture, Mpps (page cache warm)\n");
  std::printf("%-8s %12s %12s %12s %14s %14s\n", "", "ubpf-run", "tcpdump", "libpcap loop", "x tcpdump", "x libpcap loop");
  for (const Expr& e : expressions) {
    double best[3] = {1e18, 1e18, 1e18};
    uint64_t matched = 0;
    for (int round = 0; round < 3; ++round) {
      const double u = bench::spawn({EBPFVM_UBPF_RUN, "filter", "-r", cap, "-w", "/dev/null", e.text}, true);
      const double t = have_tcpdump ? bench::spawn({tcpdump, "-r", cap, "-w", "/dev/null", e.text}, true) : 1e18;
      const double l = libpcap_loop(cap, e.text, matched);
      if (u < 0 || t < 0 || l < 0) {
        std::fprintf(stderr, "%s: a run failed\n", e.text);
        return 1;
      }
      best[0] = std::min(best[0], u), best[1] = std::min(best[1], t), best[2] = std::min(best[2], l);
    }
    const double n = static_cast<double>(packets) / 1e6;
    std::printf("%-8s %12.2f %12.2f %12.2f %13.2fx %13.2fx\n", e.kind, n / best[0], have_tcpdump ? n / best[1] : 0.0, n / best[2],
                best[1] / best[0], best[2] / best[0]);
  }
  if (!have_tcpdump) std::printf("(tcpdump is not installed: scripts/setup.sh installs it)\n");
  return 0;
}
