// The control-flow facts the verifier needs before it interprets anything: which slots start a
// block, which are reachable, where the loops are and how they nest, and an order in which to
// visit states so that (almost) every state is complete before it is used.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <string>
#include <vector>

#include "isa/isa.hpp"

namespace ebpfvm::verifier {

struct Loop {
  uint32_t header;
  std::vector<uint32_t> body;  // sorted slots, header included
};

struct Cfg {
  std::vector<bool> leader;  // a block starts here (a join point, a branch target, after a call)
  std::vector<uint32_t> rank;  // reverse postorder within each function
  std::vector<Loop> loops;
  // loops_of[pc]: indexes into `loops` of the loops containing pc, outermost first
  std::vector<std::vector<uint32_t>> loops_of;
  std::vector<uint32_t> callbacks;  // entries reached through lddw of a function (callbacks)
};

struct CfgError {
  uint32_t insn;
  std::string reason;
};

// Fails on unreachable instructions and on loops with more than one entry (irreducible flow).
std::variant<Cfg, CfgError> build_cfg(const isa::Program& prog);

// Successors of pc inside its function (calls fall through to the next slot).
void successors(const isa::Program& prog, uint32_t pc, std::vector<uint32_t>& out);

}  // namespace ebpfvm::verifier
