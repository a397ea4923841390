// What a JIT may assume about registers beyond the instruction at hand, from two dataflow passes
// over the bytecode (independent of the target, so any backend can read them):
//  - forward: each register's unsigned range, whether it holds the frame pointer plus a constant
//    or a map (lddw), which other register it equals plus a constant, and what a few stack slots
//    hold. A mask that changes nothing, or a bounds check that cannot fail, can then be left out.
//    Branches narrow the ranges on each edge; the relations carry that to a register clang copied
//    before stepping it (`i2 = i; i += 2; if i2 < N`), which bounds the copy's source too.
//  - backward: which registers some later instruction still reads. A temporary nobody reads again
//    need not be computed.
// Both hold for any run of the program, verified or not: nothing here relies on the verifier.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "isa/isa.hpp"

namespace ebpfvm::jit {

struct Range {
  uint64_t min = 0, max = UINT64_MAX;
  bool operator==(const Range&) const = default;
};

struct State {
  static constexpr int32_t kNone = INT32_MIN;
  struct Slot {
    int32_t off;   // from r10
    uint8_t size;  // bytes
    uint64_t max;  // unsigned bound of what was stored there
    bool operator==(const Slot&) const = default;
  };
  std::array<Range, 11> reg;
  std::array<int32_t, 11> fp;   // the register is r10 + fp[r], or kNone
  std::array<int32_t, 11> map;  // the register holds map number map[r] (an lddw), or kNone
  std::array<int8_t, 11> base;   // the register equals base[r] + delta[r] (mod 2^64), or -1
  std::array<uint64_t, 11> delta;
  std::array<Slot, 4> slots{};
  uint8_t nslots = 0;

  // Nothing known, but r10: the frame pointer of a function's entry.
  static State entry();
  std::optional<uint64_t> slot(int32_t off, unsigned size) const;
  bool operator==(const State&) const = default;
};

// The registers an instruction reads and writes, as bit sets (bit r for register r). A call reads r1-r5
// and writes r0 only: conservative for liveness.
struct RegSets {
  uint16_t read, written;
};
RegSets regs_of(const isa::Insn& in);
// The registers an instruction changes, calls' scratch registers (r1-r5) and fetched values included.
uint16_t clobbered(const isa::Insn& in);
// No jump, call, exit, lddw or atomic: code around it may be reordered by regs_of alone.
bool plain(const isa::Insn& in);

class Facts {
 public:
  // inline_entries(m): when the backend inlines lookups in map m (a plain array), its
  // max_entries; 0 otherwise. A lookup there with a key known in range is never NULL.
  using InlineEntries = std::function<uint32_t(uint32_t map)>;
  Facts(const isa::Program& prog, InlineEntries inline_entries);

  // The state where a block starts (a jump target or a function entry); a backend steps it
  // through the block's instructions with step().
  const State& at_block(size_t pc) const { return states_[block_[pc]]; }
  bool is_block(size_t pc) const { return block_[pc] >= 0; }
  void step(State& s, size_t pc) const;
  // The start of the block slot pc stands in, and the state just before pc, stepped from there
  // (an lddw as one step); visit, when given, sees each slot passed with the state before it.
  size_t block_start(size_t pc) const;
  using Visit = std::function<void(size_t pc, const State& before)>;
  State before(size_t pc, const Visit& visit = nullptr) const;

  // Whether some path from after slot pc reads r before writing it.
  bool live_after(size_t pc, unsigned r) const { return (live_out_[pc] >> r) & 1; }
  // Whether some path from slot pc (itself included) reads r before writing it.
  bool live_at(size_t pc, unsigned r) const { return (live_in_[pc] >> r) & 1; }

  // The call at pc is a lookup the backend inlines (inline_entries says so for the map in r1)
  // with the key in a stack slot at a known offset: it reads neither r1 nor r2, only the frame.
  bool frame_lookup(size_t pc) const { return frame_lookup_[pc]; }

 private:
  using Edge = std::function<void(size_t target, const State& s)>;
  void step_values(State& s, size_t pc) const;
  void forward();
  void narrow();
  void backward();
  // Steps s from block start through its block, calling edge for each way out.
  void walk(size_t start, State s, const Edge& edge);
  bool join(size_t pc, const State& in, bool widen);  // into the block starting at pc

  const isa::Program& p_;
  InlineEntries inline_entries_;
  std::vector<int32_t> block_;  // index into states_ at block starts, -1 elsewhere
  std::vector<State> states_;
  std::vector<bool> seen_;      // per block: some state has reached it
  std::vector<uint16_t> live_out_, live_in_;
  std::vector<bool> frame_lookup_;
};

}  // namespace ebpfvm::jit
