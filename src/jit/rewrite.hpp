// Equivalent bytecode that compiles to better code, rewritten in place before the JIT reads it
// (slot for slot: indexes, jumps and error positions stay those of the program given).
#pragma once

#include "isa/isa.hpp"
#include "jit/facts.hpp"

namespace ebpfvm::jit {

// clang accumulates through a copy: `D += Y; ...; Y = D` (any commutative operation). Written
// `Y += D; ...; D = Y` instead, the running value lives in Y alone: its chain of dependences is
// one operation per round, not an operation and a move, and `D = Y` is left for sinking when only
// a loop's exit reads D. Both forms leave D and Y equal; the code between reads neither.
// Returns how many pairs were rewritten.
uint32_t swap_accumulators(isa::Program& prog);

// clang often tests a loop counter through a copy taken before the counter steps:
//   C = I; ...reads of C...; I += c; ...; if C < K goto head
// The reads of C before the step read I instead, and the test becomes `if I < K + c`: the copy
// is then dead when nothing else reads C, and the loop is one move shorter. An ordered
// test is rewritten only when facts bound C so that C + c cannot wrap (equality tests always can
// be). `facts` describe prog as given; they are stale once this returns a non-zero count.
uint32_t fold_counter_copies(isa::Program& prog, const Facts& facts);

}  // namespace ebpfvm::jit
