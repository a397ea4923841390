// What binds a decoded program to the maps it names, shared by every engine: the lddw pseudo
// forms resolve to the same values whoever executes them.
#pragma once

#include <memory>
#include <vector>

#include "isa/isa.hpp"
#include "maps/map_impl.hpp"
#include "runtime/run_state.hpp"

namespace ebpfvm::detail {

// `lddw map_idx(N)` (and, for raw bytecode, `map_fd(N)`) is maps[N].
struct Bindings {
  std::vector<std::shared_ptr<MapImpl>> maps;
};

Bindings bindings_of(std::span<const Map> maps);

// The 64-bit value of the lddw at `pc`, for every form but LDDW_CODE (whose value is an engine's
// code address): the immediate, a map's address, or the address of a byte of an array map's first
// value (global data), which is then added to `regions` (for checked mode).
Result<uint64_t> resolve_lddw(const isa::Program& prog, size_t pc, const Bindings& b, std::vector<MemRegion>& regions);

}  // namespace ebpfvm::detail
