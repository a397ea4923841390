// The containment oracle: what the verifier proved, held against what a run does. With
// VerifyOptions::record_states the analysis keeps, for every instruction, the abstract registers
// of the innermost frame joined over every state that reaches it. A checked run (tests, fuzzers)
// then checks before each instruction that every register's concrete value lies inside its
// abstract value: a number within its ranges and known bits, a packet pointer within the packet
// and its proven range, a stack pointer at its offsets, the context itself. Any mismatch is a
// verifier bug, even where the run did not fault.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/run_state.hpp"
#include "verifier/state.hpp"

namespace ebpfvm::detail {

struct XdpCtx;
class MapImpl;

struct AbstractStates {
  struct At {
    std::array<verifier::Value, 11> regs;
    uint32_t frame = 0;  // the innermost frame's index (its stack pointers' aux); UINT32_MAX: several
  };
  std::vector<std::optional<At>> at;  // by instruction slot; empty where never reached
  std::vector<std::string> map_names;  // for messages
  std::vector<std::shared_ptr<const MapImpl>> maps;  // by map index: where array maps' values are
};

// What a run holds when it is about to execute an instruction.
struct Concrete {
  const uint64_t* regs = nullptr;  // r0..r10; r10 is the innermost frame's
  // Callers' r10 by frame index (call depth, as the verifier counts it; a callback's frame is one
  // below its caller's): 0 where not known. Stack pointers into a frame not known are not checked.
  std::span<const uint64_t> frames;
  // The context of the run (an XDP frame's or an skb's) and its packet; ctx 0 for raw memory.
  struct Packet {
    uint64_t ctx = 0, data = 0, data_end = 0, data_meta = 0;
  } ctx;
  uint64_t mem = 0, mem_size = 0;  // raw memory programs: the memory (r1, r2 at the first instruction)
};

// The context and packet of a run, as Concrete::ctx holds them.
Concrete::Packet context_of(const RunState& run);

// Empty when every register of `c` lies inside the abstract state at `slot`; otherwise which
// register does not, with both values.
std::string check_containment(const AbstractStates& states, size_t slot, const Concrete& c);

// The oracle on this thread's checked interpreter runs while it lives: each instruction of a
// program it was given states for (by interpreter image; nullptr: any image) is checked, and the
// first mismatch kept.
class ContainmentOracle final : public StepObserver {
 public:
  ContainmentOracle();
  ~ContainmentOracle();
  ContainmentOracle(const ContainmentOracle&) = delete;
  ContainmentOracle& operator=(const ContainmentOracle&) = delete;

  void add(const void* image, std::shared_ptr<const AbstractStates> states) { states_[image] = std::move(states); }
  const std::string& failure() const { return failure_; }
  uint64_t steps() const { return steps_; }

  void step(const void* image, size_t slot, const uint64_t* regs, const RunState& run) override;

 private:
  std::map<const void*, std::shared_ptr<const AbstractStates>> states_;
  std::string failure_;
  uint64_t steps_ = 0;
  uint64_t mem_ = 0, mem_size_ = 0;
  std::vector<uint64_t> frames_;  // each frame's r10, as last seen running (Concrete::frames)
  StepObserver* outer_ = nullptr;
};

}  // namespace ebpfvm::detail
