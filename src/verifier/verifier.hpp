// The verifier's entry point inside the library: the loader passes live maps and the program
// type's context description; the public verify() builds the same input from user maps.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "ebpfvm/verifier.hpp"
#include "isa/isa.hpp"
#include "progtype/progtype.hpp"

namespace ebpfvm::detail {
class MapImpl;
}

namespace ebpfvm::verifier {

struct MapRef {
  const MapSpec* spec = nullptr;
  // A frozen single-element array (.rodata): its value, read as constants. Otherwise null.
  const uint8_t* frozen = nullptr;
  // The map itself, for the containment oracle (VerifyOptions::record_states) to find its values.
  std::shared_ptr<const detail::MapImpl> impl = nullptr;
};

struct Input {
  const isa::Program* prog = nullptr;
  const HelperRegistry* helpers = nullptr;
  std::vector<MapRef> maps;
  VerifyOptions options;
  // The program type whose context r1 holds; null for Context::Memory.
  const detail::ProgTypeDesc* type = nullptr;
  // Filled with the instructions that access a context field the program type rewrites (loads of
  // data, data_end, data_meta; stores to fields kept narrower): the loader rewrites exactly these.
  std::vector<uint32_t>* rewritten_loads = nullptr;
  // Filled with the maps (indexes) the program tail-calls through.
  std::vector<uint32_t>* tail_call_maps = nullptr;
};

Result<VerifyReport> analyse(const Input& in);

}  // namespace ebpfvm::verifier
