// Equivalent bytecode that compiles to better code, rewritten before the JIT reads it: in place,
// slot for slot, except unroll_counted_loops, which inserts slots.
#pragma once

#include <functional>

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

// Small loops whose counter starts at a constant and steps by a power of two are unrolled 4 times
// where that decides an equality test on the counter in some copies: `i += 1; if i == N goto out`
// with N % 4 == 0 can only be true in one copy of four, so the other three lose the test. Unlike
// the rewrites above this one inserts slots (jumps, calls and functions are renumbered); it does
// nothing when an offset would not fit. skip(head) keeps a loop as it is (one the backend compiles
// better whole). Returns how many loops were unrolled; facts are stale once it returns non-zero.
uint32_t unroll_counted_loops(isa::Program& prog, const Facts& facts, const std::function<bool(size_t head)>& skip);

}  // namespace ebpfvm::jit
