// Equivalent bytecode that compiles to better code, rewritten in place before the JIT reads it
// (slot for slot: indexes, jumps and error positions stay those of the program given).
#pragma once

#include "isa/isa.hpp"

namespace ebpfvm::jit {

// clang accumulates through a copy: `D += Y; ...; Y = D` (any commutative operation). Written
// `Y += D; ...; D = Y` instead, the running value lives in Y alone: its chain of dependences is
// one operation per round, not an operation and a move, and `D = Y` is left for sinking when only
// a loop's exit reads D. Both forms leave D and Y equal; the code between reads neither.
// Returns how many pairs were rewritten.
uint32_t swap_accumulators(isa::Program& prog);

}  // namespace ebpfvm::jit
