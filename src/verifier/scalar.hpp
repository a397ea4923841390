// The verifier's numeric domain: what is known about a 64-bit value.
//
// Four interval views (unsigned and signed, 64 and 32 bits) plus known bits (a tristate number,
// "tnum": `value` holds the known bits, `mask` the unknown ones). Each view catches what the others
// lose: `x & 0xff` is precise in bits, `x < 10` in ranges, JMP32 comparisons in the 32-bit views.
// After every operation `sync()` passes information between the views; a contradiction among them
// means the value cannot exist (an infeasible branch), reported by `empty()`.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ebpfvm::verifier {

struct Tnum {
  uint64_t value = 0;
  uint64_t mask = ~0ull;

  static Tnum constant(uint64_t v) { return {v, 0}; }
  static Tnum range(uint64_t min, uint64_t max);  // the bits min..max share
  bool operator==(const Tnum&) const = default;
};

Tnum tnum_add(Tnum a, Tnum b);
Tnum tnum_sub(Tnum a, Tnum b);
Tnum tnum_and(Tnum a, Tnum b);
Tnum tnum_or(Tnum a, Tnum b);
Tnum tnum_xor(Tnum a, Tnum b);
Tnum tnum_union(Tnum a, Tnum b);  // every value of either

inline constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
inline constexpr int64_t kS64Min = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kS64Max = std::numeric_limits<int64_t>::max();

enum class Cmp : uint8_t { Eq, Ne, Gt, Ge, Lt, Le, Sgt, Sge, Slt, Sle, Set, NotSet };
Cmp negate(Cmp c);
Cmp swap_sides(Cmp c);  // a OP b  ==  b swap(OP) a

struct Scalar {
  Tnum t;
  uint64_t umin = 0, umax = kU64Max;
  int64_t smin = kS64Min, smax = kS64Max;
  uint32_t u32min = 0, u32max = 0xffffffffu;
  int32_t s32min = INT32_MIN, s32max = INT32_MAX;

  static Scalar unknown() { return {}; }
  static Scalar constant(uint64_t v);
  static Scalar urange(uint64_t min, uint64_t max);  // a value in [min, max] (unsigned)
  static Scalar srange(int64_t min, int64_t max);
  static Scalar bits(unsigned width);                // any zero-extended value of `width` bits

  bool is_const() const { return t.mask == 0; }
  uint64_t value() const { return t.value; }
  bool empty() const;
  bool contains(uint64_t v) const;  // v is one of the values this stands for
  void sync();  // tighten every view from the others

  bool operator==(const Scalar&) const = default;
  std::string str() const;
};

Scalar join(const Scalar& a, const Scalar& b);

// Where widening may stop a growing bound short of its limit: the program's own constants (and
// their neighbours, for `<` against `<=`), in each view's order. A loop `i < 100000` widens i to
// [0, 100000], not to [0, 2^64).
struct Thresholds {
  std::vector<uint64_t> u64;
  std::vector<int64_t> s64;
  std::vector<uint32_t> u32;
  std::vector<int32_t> s32;
  static Thresholds of(const std::vector<uint64_t>& constants);
};

// join that jumps bounds which grew since `old` to the next threshold past them (to their limits
// without thresholds), so that repeated joins settle: each bound only moves through a finite set.
// Known bits that changed become unknown (what the bounds imply is then learnt from them).
Scalar widen(const Scalar& old, const Scalar& next, const Thresholds* thresholds = nullptr);

// ALU: the operation on every pair of values of a and b. `alu` covers 64-bit operations with the
// ALU opcode's operation bits (BPF_ADD = 0x00 ... BPF_ARSH = 0xc0); signed = the v4 sdiv/smod.
Scalar alu64(uint8_t op, const Scalar& a, const Scalar& b, bool is_signed);
Scalar alu32(uint8_t op, const Scalar& a, const Scalar& b, bool is_signed);
Scalar truncate(const Scalar& a, unsigned bytes);     // zero-extend the low `bytes` bytes
Scalar sign_extend(const Scalar& a, unsigned bytes);  // sign-extend the low `bytes` bytes
Scalar byte_swap(const Scalar& a, unsigned bytes);    // be16/32/64, bswap: only the width survives

// Refines a and b to the values for which `a OP b` holds (on the low 32 bits when is32).
// Either may come out empty: that branch cannot be taken.
void refine(Scalar& a, Scalar& b, Cmp op, bool is32);

}  // namespace ebpfvm::verifier
