// The verifier's abstract state: what each register and stack byte may hold at one point.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "isa/isa.hpp"
#include "verifier/scalar.hpp"

namespace ebpfvm::verifier {

enum class Kind : uint8_t {
  Uninit,          // never written, clobbered by a call, or paths disagree: not readable
  Scalar,
  Ctx,             // the program's context (struct xdp_md)
  Packet,          // data + offset
  PacketMeta,      // data_meta + offset
  PacketEnd,       // data_end
  Stack,           // a frame's r10 + offset (aux = frame)
  MapPtr,          // a map reference (aux = map)
  MapPtrOrNull,    // an inner map from a map-of-maps lookup, or 0
  MapValue,        // inside a map value (aux = map)
  MapValueOrNull,
  Mem,             // memory of known size: the raw input of a memory program (aux = size)
  AllocMem,        // a ring buffer reservation (aux = size)
  AllocMemOrNull,
  Func,            // a callback's address (aux = entry slot)
};
const char* kind_name(Kind k);  // the kernel's names: "scalar", "pkt", "map_value_or_null", ...
bool is_pointer(Kind k);
bool is_or_null(Kind k);
Kind non_null(Kind k);

// Ids link registers that hold the same lookup result or the same variable packet offset, so
// that one check refines every copy. kUnlinked: a value only its own register may refine.
inline constexpr uint32_t kUnlinked = 0xffffffffu;
inline constexpr uint32_t kKeyMem = 0x80000000u;

struct Value {
  Kind kind = Kind::Uninit;
  Scalar s;          // Scalar: the value; pointers: the variable part of the offset
  int32_t off = 0;   // pointers: the fixed part of the offset; a linked Scalar: its distance
                     // from the link's base (the values of one id are base + off, each its off)
  uint32_t id = 0;   // Packet/PacketMeta: the variable part (0: none), which is the base of
                     // the Scalar link of the same id when there is one; Scalar: the link;
                     // *OrNull: the lookup;
                     // Mem: 0 the program's input, kKeyMem + frame a for_each callback's key
  uint32_t range = 0;  // Packet/PacketMeta: bytes past (base + variable part) proven readable
  uint32_t aux = 0;  // see Kind

  static Value scalar(const Scalar& s) { return {Kind::Scalar, s, 0, 0, 0, 0}; }
  static Value constant(uint64_t v) { return scalar(Scalar::constant(v)); }
  static Value pointer(Kind k, uint32_t aux, int32_t off = 0) { return {k, Scalar::constant(0), off, 0, 0, aux}; }
  bool readable() const { return kind != Kind::Uninit; }
  bool operator==(const Value&) const = default;
  std::string str(const std::vector<std::string>& map_names) const;
};

// 8 bytes of a frame's stack: which bytes hold data, and a register spilled there whole.
struct Slot {
  uint8_t init = 0;        // bit i: byte i was written
  uint8_t spill_off = 0;   // the spilled register covers bytes [spill_off, spill_off + spill_size)
  uint8_t spill_size = 0;  // 0: no spill
  Value spill;
  bool operator==(const Slot&) const = default;
};

inline constexpr int kSlots = isa::kStackSize / 8;

struct Frame {
  std::array<Value, 11> regs{};
  std::array<Slot, kSlots> stack{};
  // A callback's frame: the references held when it was called. It returns holding exactly
  // these (it may run any number of times: what it takes it gives back, and nothing else).
  std::vector<uint32_t> entry_refs;
  bool operator==(const Frame&) const = default;
};

struct State {
  std::vector<Frame> frames;
  // References the program holds (Resource::AcquiresRef), sorted: each is the id its pointer
  // values carry, the instruction after the acquiring call. Joined paths hold what either holds.
  std::vector<uint32_t> refs;
  // The spin lock held: 0 for none, else lock_id() of its map value and offset.
  uint64_t lock = 0;
  bool operator==(const State&) const = default;
  Frame& top() { return frames.back(); }
  const Frame& top() const { return frames.back(); }
};

// What a join needs from the analysis. Packet pointers with different fixed offsets join into one
// with a variable offset, which needs an id of its own: `id` gives one per pair of joined values
// (the same pair, the same id). Values of two maps join into a value of a map shape that allows
// only what both allow: `map` names it.
struct JoinHooks {
  std::function<uint32_t(const Value& a, const Value& b)> id;
  std::function<uint32_t(uint32_t map_a, uint32_t map_b)> map;
  const Thresholds* thresholds = nullptr;  // where widening stops growing bounds
};

Value join(const Value& a, const Value& b, bool widening, const JoinHooks* hooks = nullptr);
// Unreadable because paths that met disagreed: its aux says what each held (kMixed | kinds).
inline constexpr uint32_t kMixed = 0x10000;
Value mixed(const Value& a, const Value& b);
// ": it is map_value on one path and scalar on another ..." for such a value; empty otherwise.
std::string unreadable_reason(const Value& v);
// Both states have the same frames (they come from the same calling context) and hold the same
// lock (the analysis refuses paths that meet holding different ones).
State join(const State& a, const State& b, bool widening = false, const JoinHooks* hooks = nullptr);

bool holds_ref(const State& s, uint32_t id);
// Gives back reference `id`: every copy of its pointer, in every frame, becomes unusable.
void release_ref(State& s, uint32_t id);

// Every register and stack slot holding `id` gets kUnlinked: the instruction that created the id
// runs again (a loop), and its new value must not be mistaken for the old one.
void retire_id(State& s, uint32_t id);

}  // namespace ebpfvm::verifier
