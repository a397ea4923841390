// Shared by the fuzz targets that load whole objects: every loaded program of `obj` runs once on
// a 64-byte packet (XDP) or as raw memory (other types). Results do not matter here: a crash or a
// sanitizer report does.
#pragma once

#include <cstdint>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace ebpfvm::fuzz {

inline void run_each_program(const Object& obj) {
  std::vector<uint8_t> packet(64);
  for (size_t i = 0; i < packet.size(); ++i) packet[i] = static_cast<uint8_t>(i * 7);
  for (const ProgramInfo& p : obj.programs()) {
    auto prog = obj.program(p.name);
    if (!prog) continue;
    if (prog->type() == ProgType::Xdp) {
      XdpBuffer buf(packet);
      (void)prog->run_xdp(buf);
    } else {
      std::vector<uint8_t> mem = packet;
      (void)prog->run_raw(mem);
    }
  }
}

}  // namespace ebpfvm::fuzz
