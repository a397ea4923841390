// The Linux kernel as the oracle of the differential tests.
//
// Kernels differ in what they let a program use: a helper refused for a program type (Linux 6.18
// builds that refuse bpf_xdp_adjust_meta in XDP), a map type missing, no bpf() rights at all. So
// before an object is compared, every feature it needs is probed: the program type, each helper
// each program calls (its subprograms' included) and each map type it declares. A program the
// host cannot load is skipped alone, with a printed `SKIP` line naming it and the missing feature,
// and everything else is still compared. A refusal that no probe explains fails the test and
// prints the kernel's verifier log: a real disagreement is never skipped.
//
// At exit the process prints what it compared and what it skipped, and says loudly when it
// compared nothing.
//
// Two variables exercise these paths on a host whose kernel has everything (scripts/test.sh uses
// both): EBPFVM_TEST_KERNEL_REFUSES=helper:54,map:27,prog:6 makes the probes report those
// features missing, and EBPFVM_TEST_KERNEL_CORRUPT=1 flips one byte of the kernel's first packet,
// which must fail the comparison.
#pragma once

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace ebpfvm::test::kernel {

// Empty when this process may load XDP programs into the kernel, otherwise why not.
const std::string& unavailable();
// True (and says so, once) when nothing can be compared with the kernel here.
bool skip_all();

// Why the running kernel cannot give a program what it needs; empty when it can.
std::string refuses_prog_type(bpf_prog_type type);
std::string refuses_helper(bpf_prog_type type, uint32_t helper);
std::string refuses_map_type(bpf_map_type type);

// The helper ids a program calls, from its linked bytecode (so its subprograms' calls too).
std::vector<uint32_t> helpers_called(const Program& code);

// An object loaded with libbpf into the kernel, without the programs whose needs the kernel
// refuses. Each skip is printed once per process.
class KernelObject {
 public:
  explicit KernelObject(const std::string& path);
  ~KernelObject();
  KernelObject(const KernelObject&) = delete;
  KernelObject& operator=(const KernelObject&) = delete;

  // False when the whole object was skipped (a map type the kernel lacks).
  bool loaded() const { return obj_ != nullptr; }
  // Whether the kernel loaded `program`: false when it was skipped.
  bool has(const std::string& program) const;
  // The action and the packet (metadata in front) after `program` ran on `packet`.
  std::pair<uint32_t, std::vector<uint8_t>> run(const std::string& program, const std::vector<uint8_t>& packet);
  // A tc or socket-filter program's run: r0, the packet after it, and struct __sk_buff as the
  // kernel reports it (ctx_out), from `ctx` given as ctx_in.
  struct SkbRun {
    uint32_t retval = 0;
    std::vector<uint8_t> data;
    __sk_buff ctx{};
  };
  SkbRun run_skb(const std::string& program, const std::vector<uint8_t>& packet, const __sk_buff& ctx);
  // Element 0 of a global data section's array map (".data", ".bss", ...).
  std::vector<uint8_t> global_data(const char* section);

 private:
  std::string name_;  // the file's base name, as SKIP lines show it
  bpf_object* obj_ = nullptr;
  std::map<std::string, std::string> skipped_;  // program -> why
};

// Counts one program of `object` compared on `packets` packets, for the summary printed at exit.
void count_compared(const std::string& object, size_t packets);

}  // namespace ebpfvm::test::kernel
