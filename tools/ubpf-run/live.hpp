// ubpf-run on live interfaces: a loaded XDP program on the frames of AF_XDP sockets (--iface), and
// captures sent out of an interface (replay). Built when libxdp is (EBPFVM_HAVE_XSK).
#pragma once

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "runner.hpp"

namespace ubpf {

struct LiveConfig {
  std::vector<std::string> ifaces;  // IF or IF@QUEUE
  std::string xdp_mode = "auto";    // native, generic (xdp-tools' --mode), auto
  bool copy = false, zero_copy = false;
  std::string xsk_map;               // a pinned xskmap of the user's own XDP program
  std::vector<int> cpus;             // --cpus: worker i runs on cpus[i % n]
  double duration = 0;               // seconds; 0: until stopped
  uint64_t count = 0;                // packets; 0: until stopped
  double interval = 1;               // seconds between live lines; 0: none
  std::string pass_to_kernel;        // a TAP device XDP_PASS frames are written to
  CaptureWriter* writer = nullptr;
  std::array<bool, kMaxVerdicts> write_actions{};
  FILE* live = stdout;               // where the live lines go
  const std::atomic<int>* stop = nullptr;
};

// A port's counts, for the live lines and the summary.
struct PortTotals {
  std::string name;  // IF@QUEUE
  bool zero_copy = false;
  std::string mode;  // native, generic, or "own program" (--xsk-map)
  uint64_t rx = 0, rx_bytes = 0, sent = 0, delivered = 0, no_route = 0, full = 0, passed_to_kernel = 0;
  uint64_t kernel_dropped = 0;  // the socket's XDP_STATISTICS: dropped for a full ring or no free frame
};

struct LiveTotals {
  Totals totals;
  uint64_t active_ns = 0;  // from the first batch to the last one (any port): the rate while traffic flowed
  std::vector<PortTotals> ports;
};

// --iface's IF or IF@QUEUE: the interface and the queue (0 when not given).
ebpfvm::Result<std::pair<std::string, uint32_t>> parse_iface(const std::string& arg);
// How many workers a live run needs (one per interface queue), for LoadOptions::workers.
size_t live_workers(const LiveConfig& cfg);
// Runs until a signal, --duration or --count: the program's verdicts carried out on each frame.
ebpfvm::Result<LiveTotals> run_live(const ebpfvm::LoadedProgram& prog, const ebpfvm::Object& obj, const LiveConfig& cfg);
void print_live_ports(const LiveTotals& t);
// The JSON summary's live members (the active rate, "interfaces"), each after a comma.
std::string live_ports_json(const LiveTotals& t);

struct ReplayConfig {
  std::string capture, iface;
  uint32_t queue = 0;
  double rate = 0;     // packets per second; 0: as fast as the socket takes them
  uint64_t loops = 1;  // times through the capture; 0: until stopped
  uint64_t count = 0;  // packets; 0: all
  bool copy = false, zero_copy = false, json = false;
  const std::atomic<int>* stop = nullptr;
};
// Sends a capture's packets out of an interface through AF_XDP; prints what it sent. Exit status.
int replay(const ReplayConfig& cfg);

}  // namespace ubpf
