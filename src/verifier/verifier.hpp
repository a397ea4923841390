// The verifier's entry point inside the library: the loader passes live maps and the program
// type's context description; the public verify() builds the same input from user maps.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "ebpfvm/verifier.hpp"
#include "isa/isa.hpp"
#include "progtype/ctx_rewrite.hpp"

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
  std::span<const detail::CtxField> ctx_fields;  // Context::Xdp
  // Filled with the instructions that load a context field the program type rewrites (data,
  // data_end, data_meta): the loader checks that exactly these were rewritten.
  std::vector<uint32_t>* rewritten_loads = nullptr;
  // Filled with the maps (indexes) the program tail-calls through.
  std::vector<uint32_t>* tail_call_maps = nullptr;
};

Result<VerifyReport> analyse(const Input& in);

}  // namespace ebpfvm::verifier
