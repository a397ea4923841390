// libFuzzer target: arbitrary bytes as a BPF object. Open, load (checked mode) and run every
// program on a small packet. Any crash, sanitizer report or hang is a bug: bad input must give an
// error, and an unverified program must fault cleanly.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto obj = ebpfvm::Object::open(std::span<const uint8_t>(data, size), "fuzz.o");
  if (!obj) return 0;
  for (const ebpfvm::ProgramInfo& p : obj->programs())
    if (p.type == ebpfvm::ProgType::Unspec) (void)obj->set_program_type(p.name, ebpfvm::ProgType::Xdp);
  ebpfvm::LoadOptions opts;
  opts.insn_budget = 20'000;
  opts.max_map_memory = 64u << 20;
  opts.env.seed = 1;
  if (!obj->load(opts)) return 0;
  std::vector<uint8_t> packet(64);
  for (size_t i = 0; i < packet.size(); ++i) packet[i] = static_cast<uint8_t>(i * 7);
  for (const ebpfvm::ProgramInfo& p : obj->programs()) {
    auto prog = obj->program(p.name);
    if (!prog) continue;
    if (prog->type() == ebpfvm::ProgType::Xdp) {
      ebpfvm::XdpBuffer buf(packet);
      (void)prog->run_xdp(buf);
    } else {
      std::vector<uint8_t> mem = packet;
      (void)prog->run_raw(mem);
    }
  }
  return 0;
}
