// Running a loaded XDP program over a capture: chunks of packets are sharded over workers by flow
// (as RSS spreads flows over queues, so each flow stays on one worker), run, and reported in the
// capture's order.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "pcap.hpp"

namespace ubpf {

// A program type's verdicts as ubpf-run counts, names and writes them: XDP's actions, tc's
// TC_ACT_* codes, a socket filter's accept or drop.
inline constexpr size_t kMaxVerdicts = 11;
struct Verdicts {
  std::vector<std::string> names;  // as the kernel names them ("XDP_PASS", "TC_ACT_SHOT", ...)
  std::vector<std::string> flags;  // --write-actions' names ("pass", "shot", ...)
  std::array<bool, kMaxVerdicts> write_default{};  // what -w writes unless told
  size_t redirect = SIZE_MAX;      // the verdict whose packets have a redirect target
};
const Verdicts& verdicts_for(ebpfvm::ProgType type);

struct RunConfig {
  uint32_t workers = 1;
  uint64_t count = 0;  // 0: every packet
  uint32_t ifindex = 1;
  uint32_t rxq = 0;
  uint64_t repeat = 1;
  CaptureWriter* writer = nullptr;
  ebpfvm::ProgType type = ebpfvm::ProgType::Xdp;
  std::array<bool, kMaxVerdicts> write_actions = verdicts_for(ebpfvm::ProgType::Xdp).write_default;
  bool egress = false;  // tc: the packets leave the host (--direction egress)
  FILE* ndjson = nullptr;
  bool ndjson_bytes = false;  // each record also has the output packet in hex
  std::function<void(uint64_t done_bytes)> progress;  // called now and then from the main thread
  // Set (by a signal handler) to stop: no packet is read after it; those read still run, so the
  // run ends at a packet boundary with every output consistent.
  const std::atomic<int>* stop = nullptr;
  // --filter: only the packets it matches reach the program (and count towards `count`).
  const ebpfvm::PacketFilter* filter = nullptr;
};

struct Totals {
  uint64_t packets = 0;
  uint64_t bytes_in = 0;
  uint64_t filtered = 0, filtered_bytes = 0;  // packets --filter did not match: not run, not written
  std::array<uint64_t, kMaxVerdicts> actions{};       // by verdict (Verdicts::names)
  std::array<uint64_t, kMaxVerdicts> action_bytes{};  // their bytes as the capture had them
  uint64_t not_run = 0;  // tc and socket filters: frames too short to be an skb (no Ethernet header)
  uint64_t kept_bytes = 0;                            // socket filters: the bytes the socket would get
  uint64_t clones = 0;                                // tc: copies bpf_clone_redirect sent
  std::map<std::string, uint64_t> redirects;  // "devmap 'ports' slot 2", "ifindex 7"
  uint64_t program_ns = 0;                     // summed over workers: time inside the program runs
  uint64_t wall_ns = 0;
  // The reader's thread, while the workers run the chunk before: reading and parsing packets,
  // and writing out results (-w, --ndjson). Start-up (open, load, verify, compile) is the caller's.
  uint64_t read_ns = 0, write_ns = 0, startup_ns = 0;
  std::optional<ebpfvm::Error> fault;          // the first runtime fault; processing stopped there
  uint64_t fault_packet = 0;
  bool stopped = false;                        // RunConfig::stop ended the run early
};

std::string describe(const ebpfvm::RedirectTarget& t);

ebpfvm::Result<Totals> run_capture(const ebpfvm::LoadedProgram& prog, CaptureReader& in, const RunConfig& cfg);

}  // namespace ubpf
