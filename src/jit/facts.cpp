#include "jit/facts.hpp"

#include <algorithm>
#include <bit>
#include <set>

#include "verifier/cfg.hpp"

namespace ebpfvm::jit {

namespace {

using isa::Kind;

constexpr uint64_t kU32 = UINT32_MAX;
constexpr Range kTop{};

// All bits up to the highest one of v: the largest value an or/xor of values <= v can give.
uint64_t fill(uint64_t v) { return v == 0 ? 0 : UINT64_MAX >> std::countl_zero(v); }

Range low32(const Range& r) { return r.max <= kU32 ? r : Range{0, kU32}; }

Range konst(uint64_t v) { return {v, v}; }

bool add_overflows(uint64_t a, uint64_t b, uint64_t limit) { return a > limit - b || b > limit; }

// dst OP src on unsigned ranges of `limit`-wide values (UINT64_MAX or UINT32_MAX).
Range binary(uint8_t op, const Range& a, const Range& b, bool is_signed, uint64_t limit) {
  const Range top{0, limit};
  switch (op) {
    case 0x00: return add_overflows(a.max, b.max, limit) ? top : Range{a.min + b.min, a.max + b.max};
    case 0x10: return a.min >= b.max ? Range{a.min - b.max, a.max - b.min} : top;
    case 0x20:
      if (a.max != 0 && b.max > limit / a.max) return top;
      return {a.min * b.min, a.max * b.max};
    case 0x30:  // a zero divisor gives 0
      if (is_signed) return top;
      return b.min >= 1 ? Range{a.min / b.max, a.max / b.min} : Range{0, a.max};
    case 0x90:  // a zero divisor leaves dst
      if (is_signed) return top;
      return {0, b.min >= 1 ? std::min(a.max, b.max - 1) : a.max};
    case 0x40: return {std::max(a.min, b.min), fill(std::max(a.max, b.max))};
    case 0x50: return {0, std::min(a.max, b.max)};
    case 0xa0: return {0, fill(std::max(a.max, b.max))};
    case 0x60:
      if (b.min != b.max || b.max >= 64 || (a.max != 0 && std::countl_zero(a.max) < static_cast<int>(b.max))) return top;
      return (a.max << b.max) > limit ? top : Range{a.min << b.max, a.max << b.max};
    case 0x70: return b.min == b.max && b.max < 64 ? Range{a.min >> b.max, a.max >> b.max} : Range{0, a.max};
    case 0xc0:  // arithmetic shift of a value whose sign bit is clear is a logical one
      if (a.max > limit / 2) return top;
      return b.min == b.max && b.max < 64 ? Range{a.min >> b.max, a.max >> b.max} : Range{0, a.max};
    default: return top;
  }
}

void forget(State& s, unsigned r) {
  s.reg[r] = kTop;
  s.fp[r] = State::kNone;
  s.map[r] = State::kNone;
}

void clear_slots(State& s) { s.nslots = 0; }

// r10 + fp + off, when base holds r10 + fp and the sum fits.
std::optional<int32_t> stack_at(const State& s, unsigned base, int16_t off) {
  if (s.fp[base] == State::kNone) return std::nullopt;
  const int64_t at = int64_t{s.fp[base]} + off;
  if (at != static_cast<int32_t>(at) || at == State::kNone) return std::nullopt;
  return static_cast<int32_t>(at);
}

// A write of `size` bytes at r10 + off: slots it overlaps are no longer known.
void overwrite(State& s, int32_t off, unsigned size) {
  uint8_t n = 0;
  for (uint8_t i = 0; i < s.nslots; ++i) {
    const State::Slot& t = s.slots[i];
    if (t.off + static_cast<int32_t>(t.size) <= off || off + static_cast<int32_t>(size) <= t.off) s.slots[n++] = t;
  }
  s.nslots = n;
}

void store(State& s, unsigned base, int16_t off, unsigned size, const Range& value) {
  const auto at = stack_at(s, base, off);
  if (!at) {
    clear_slots(s);  // it may point into the stack
    return;
  }
  overwrite(s, *at, size);
  const uint64_t mask = size == 8 ? UINT64_MAX : (uint64_t{1} << (8 * size)) - 1;
  const uint64_t max = value.max <= mask ? value.max : mask;
  if (s.nslots == s.slots.size()) {  // the oldest goes
    std::move(s.slots.begin() + 1, s.slots.end(), s.slots.begin());
    --s.nslots;
  }
  s.slots[s.nslots++] = {*at, static_cast<uint8_t>(size), max};
}

void alu(State& s, const isa::Insn& in) {
  const bool w = isa::is_alu64(in.opcode), x = isa::uses_src_reg(in.opcode);
  const uint8_t op = isa::op_code(in.opcode);
  Range b = x ? s.reg[in.src] : konst(w ? static_cast<uint64_t>(int64_t{in.imm}) : static_cast<uint32_t>(in.imm));
  if ((op == 0x60 || op == 0x70 || op == 0xc0) && b.min == b.max) b = konst(b.min & (w ? 63 : 31));  // counts are masked
  if (op == 0xb0) {  // mov
    if (x && w) {
      s.reg[in.dst] = s.reg[in.src];
      s.fp[in.dst] = s.fp[in.src];
      s.map[in.dst] = s.map[in.src];
    } else {
      forget(s, in.dst);
      s.reg[in.dst] = x ? low32(b) : b;
    }
    return;
  }
  const int32_t fp = s.fp[in.dst];
  const bool step_fp = w && !x && fp != State::kNone && (op == 0x00 || op == 0x10);
  const Range a = s.reg[in.dst];
  forget(s, in.dst);
  if (step_fp) {
    const int64_t moved = int64_t{fp} + (op == 0x00 ? in.imm : -int64_t{in.imm});
    if (moved == static_cast<int32_t>(moved) && moved != State::kNone) s.fp[in.dst] = static_cast<int32_t>(moved);
  }
  s.reg[in.dst] = w ? binary(op, a, b, in.off == 1, UINT64_MAX) : binary(op, low32(a), low32(b), in.off == 1, kU32);
}

void call(State& s, const isa::Insn& in, const Facts::InlineEntries& inline_entries) {
  bool nonnull = false;
  if (in.imm == 1 && s.map[1] != State::kNone && s.fp[2] != State::kNone) {
    const uint32_t entries = inline_entries(static_cast<uint32_t>(s.map[1]));
    const auto key = s.slot(s.fp[2], 4);
    nonnull = entries != 0 && key && *key < entries;
  }
  for (unsigned r = 0; r <= 5; ++r) forget(s, r);
  if (nonnull) s.reg[0].min = 1;
  clear_slots(s);  // helpers write through the pointers they are given
}



// The constant a 64-bit `dst += imm` or `dst -= imm` adds to dst (mod 2^64).
std::optional<uint64_t> added(const isa::Insn& in) {
  if (isa::info(in.op).kind != Kind::Alu || !isa::is_alu64(in.opcode) || isa::uses_src_reg(in.opcode)) return std::nullopt;
  const auto imm = static_cast<uint64_t>(int64_t{in.imm});
  if (isa::op_code(in.opcode) == 0x00) return imm;
  if (isa::op_code(in.opcode) == 0x10) return 0 - imm;
  return std::nullopt;
}

// Keeps "r == base + delta" true across the instruction, or drops it.
void relate(State& s, const isa::Insn& in) {
  const uint16_t changed = clobbered(in);
  if (!changed) return;
  const std::optional<uint64_t> step = added(in);
  for (unsigned w = 0; w <= isa::kMaxReg; ++w) {
    if (!((changed >> w) & 1)) continue;
    for (unsigned r = 0; r <= isa::kMaxReg; ++r)
      if (s.base[r] == static_cast<int8_t>(w)) {
        if (step) s.delta[r] -= *step;  // r = old w + d = new w - step + d
        else s.base[r] = -1;
      }
    if (step && s.base[w] >= 0) s.delta[w] += *step;
    else s.base[w] = -1;
  }
  const bool copy = isa::info(in.op).kind == Kind::Alu && isa::op_code(in.opcode) == 0xb0 && isa::is_alu64(in.opcode) &&
                    isa::uses_src_reg(in.opcode) && in.off == 0;
  if (copy && in.dst != in.src) {
    s.base[in.dst] = static_cast<int8_t>(in.src);
    s.delta[in.dst] = 0;
  }
}

// r narrowed to what also lies in [lo, hi]; false if nothing would be left.
bool meet(Range& r, uint64_t lo, uint64_t hi) {
  const Range m{std::max(r.min, lo), std::min(r.max, hi)};
  if (m.min > m.max) return false;
  r = m;
  return true;
}

// [r.min + d, r.max + d] when adding d wraps neither bound apart.
std::optional<Range> shifted(const Range& r, uint64_t d) {
  const Range m{r.min + d, r.max + d};
  if (m.min > m.max) return std::nullopt;
  return m;
}

// What `dst OP src` (taken) or its negation (not taken) says about both operands, for 64-bit
// unsigned and equality compares; carried on to registers related to them.
void refine(State& s, const isa::Insn& in, bool taken) {
  if (isa::is_jmp32(in.opcode)) return;
  const bool x = isa::uses_src_reg(in.opcode);
  Range l = s.reg[in.dst];
  Range r = x ? s.reg[in.src] : konst(static_cast<uint64_t>(int64_t{in.imm}));
  uint8_t op = isa::op_code(in.opcode);
  if (!taken) {
    switch (op) {
      case 0x10: op = 0x50; break;  // == / !=
      case 0x50: op = 0x10; break;
      case 0x20: op = 0xb0; break;  // > / <=
      case 0xb0: op = 0x20; break;
      case 0x30: op = 0xa0; break;  // >= / <
      case 0xa0: op = 0x30; break;
      default: return;
    }
  }
  auto less = [](Range& a, Range& b, bool strict) {  // a < b, or a <= b
    if (strict && b.max == 0) return false;
    return meet(a, 0, strict ? b.max - 1 : b.max) && meet(b, strict ? a.min + 1 : a.min, UINT64_MAX);
  };
  bool ok = true;
  switch (op) {
    case 0x10: ok = meet(l, r.min, r.max) && meet(r, l.min, l.max); break;
    case 0x50:  // only a constant at one end of the other's range says anything
      if (r.min == r.max && l.min != l.max) {
        if (l.min == r.min) ++l.min;
        else if (l.max == r.min) --l.max;
      }
      break;
    case 0xa0: ok = less(l, r, true); break;
    case 0xb0: ok = less(l, r, false); break;
    case 0x20: ok = less(r, l, true); break;
    case 0x30: ok = less(r, l, false); break;
    default: return;
  }
  if (!ok) return;  // the edge cannot be taken: what holds there does not matter
  s.reg[in.dst] = l;
  if (x && in.src != in.dst) s.reg[in.src] = r;
  for (const unsigned v : {unsigned{in.dst}, x ? unsigned{in.src} : 99u}) {
    if (v > isa::kMaxReg) continue;
    for (unsigned o = 0; o <= isa::kMaxReg; ++o)
      if (s.base[o] == static_cast<int8_t>(v))
        if (const auto m = shifted(s.reg[v], s.delta[o])) meet(s.reg[o], m->min, m->max);
    if (s.base[v] >= 0)
      if (const auto m = shifted(s.reg[v], 0 - s.delta[v])) meet(s.reg[static_cast<unsigned>(s.base[v])], m->min, m->max);
  }
}

}  // namespace

State State::entry() {
  State s;
  s.fp.fill(kNone);
  s.map.fill(kNone);
  s.base.fill(-1);
  s.delta.fill(0);
  s.fp[10] = 0;
  return s;
}

std::optional<uint64_t> State::slot(int32_t off, unsigned size) const {
  for (uint8_t i = 0; i < nslots; ++i)
    if (slots[i].off == off && slots[i].size == size) return slots[i].max;
  return std::nullopt;
}

void Facts::step(State& s, size_t pc) const {
  const isa::Insn& in = p_.insns[pc];
  step_values(s, pc);
  relate(s, in);
}

void Facts::step_values(State& s, size_t pc) const {
  const isa::Insn& in = p_.insns[pc];
  switch (isa::info(in.op).kind) {
    case Kind::Alu: alu(s, in); return;
    case Kind::Neg: forget(s, in.dst); if (!isa::is_alu64(in.opcode)) s.reg[in.dst] = {0, kU32}; return;
    case Kind::End: {
      const Range old = s.reg[in.dst];
      forget(s, in.dst);
      const uint64_t mask = in.imm == 64 ? UINT64_MAX : (uint64_t{1} << in.imm) - 1;
      const bool keeps = in.op == isa::Op::LE16 || in.op == isa::Op::LE32 || in.op == isa::Op::LE64;
      s.reg[in.dst] = keeps && old.max <= mask ? old : Range{0, mask};
      return;
    }
    case Kind::MovSx: {
      const Range src = s.reg[in.src];
      const bool w = isa::is_alu64(in.opcode);
      forget(s, in.dst);
      // A value whose sign bit (of the source width) is clear is extended with zeros.
      if (src.max < (uint64_t{1} << (in.off - 1))) s.reg[in.dst] = src;
      else if (!w) s.reg[in.dst] = {0, kU32};
      return;
    }
    case Kind::Ldx: {
      const unsigned size = isa::mem_size(in.opcode);
      std::optional<uint64_t> slot;
      if (const auto at = stack_at(s, in.src, in.off)) slot = s.slot(*at, size);
      forget(s, in.dst);
      if (isa::is_sign_extending_load(in.opcode)) return;
      if (size < 8) s.reg[in.dst] = {0, (uint64_t{1} << (8 * size)) - 1};
      if (slot) s.reg[in.dst] = {0, *slot};
      return;
    }
    case Kind::St: {
      const unsigned size = isa::mem_size(in.opcode);
      store(s, in.dst, in.off, size, konst(static_cast<uint64_t>(int64_t{in.imm})));
      return;
    }
    case Kind::Stx: store(s, in.dst, in.off, isa::mem_size(in.opcode), s.reg[in.src]); return;
    case Kind::Atomic:
      if (const auto at = stack_at(s, in.dst, in.off)) overwrite(s, *at, isa::mem_size(in.opcode));
      else clear_slots(s);
      if (in.imm == isa::kAtomicCmpxchg) forget(s, 0);
      else if (in.imm & isa::kAtomicFetch) forget(s, in.src);
      return;
    case Kind::Lddw:
      forget(s, in.dst);
      if (in.op == isa::Op::LDDW) s.reg[in.dst] = konst(isa::lddw_imm64(p_.insns, pc));
      else if (in.op == isa::Op::LDDW_MAP_FD || in.op == isa::Op::LDDW_MAP_IDX) s.map[in.dst] = in.imm;
      return;
    case Kind::Call: call(s, in, inline_entries_); return;
    case Kind::CallLocal: case Kind::CallKfunc: case Kind::Callx: case Kind::LdAbs: case Kind::LdInd:
      for (unsigned r = 0; r <= 5; ++r) forget(s, r);
      clear_slots(s);
      if (isa::info(in.op).kind == Kind::LdAbs || isa::info(in.op).kind == Kind::LdInd)
        s.reg[0] = {0, (uint64_t{1} << (8 * isa::mem_size(in.opcode))) - 1};
      return;
    case Kind::Ja: case Kind::Jcond: case Kind::Exit: return;
  }
}

Facts::Facts(const isa::Program& prog, InlineEntries inline_entries) : p_(prog), inline_entries_(std::move(inline_entries)) {
  block_.assign(p_.insns.size() + 1, -1);
  const std::vector<bool> starts = isa::block_starts(p_);
  for (size_t pc = 0; pc < starts.size(); ++pc)
    if (starts[pc]) {
      block_[pc] = static_cast<int32_t>(states_.size());
      states_.push_back(State::entry());  // what a block no path reaches may assume
    }
  forward();
  backward();
}

// Joins `in` into the state at a block; after a few rounds a bound that still moves goes to its
// extreme, so loops settle (narrow() then wins back what the bounds at loop exits say). True when
// the block's state changed.
bool Facts::join(size_t pc, const State& in, bool widen) {
  const auto b = static_cast<size_t>(block_[pc]);
  State& old = states_[b];
  if (!seen_[b]) {
    old = in;
    seen_[b] = true;
    return true;
  }
  State j = old;
  for (unsigned r = 0; r <= isa::kMaxReg; ++r) {
    j.reg[r] = {std::min(old.reg[r].min, in.reg[r].min), std::max(old.reg[r].max, in.reg[r].max)};
    if (widen && j.reg[r].min < old.reg[r].min) j.reg[r].min = 0;
    if (widen && j.reg[r].max > old.reg[r].max) j.reg[r].max = UINT64_MAX;
    if (in.fp[r] != old.fp[r]) j.fp[r] = State::kNone;
    if (in.map[r] != old.map[r]) j.map[r] = State::kNone;
    if (in.base[r] != old.base[r] || in.delta[r] != old.delta[r]) j.base[r] = -1;
  }
  j.nslots = 0;
  for (uint8_t i = 0; i < old.nslots; ++i) {
    const State::Slot& t = old.slots[i];
    const auto other = in.slot(t.off, t.size);
    if (other && (!widen || *other <= t.max)) j.slots[j.nslots++] = {t.off, t.size, std::max(t.max, *other)};
  }
  if (j == old) return false;
  old = j;
  return true;
}

void Facts::walk(size_t start, State s, const Edge& edge) {
  for (size_t pc = start; pc < p_.insns.size();) {
    if (pc != start && is_block(pc)) {
      edge(pc, s);
      return;
    }
    const isa::Insn& in = p_.insns[pc];
    const Kind k = isa::info(in.op).kind;
    if (k == Kind::Jcond) {
      State taken = s;
      refine(taken, in, true);
      edge(static_cast<size_t>(isa::jump_target(in, pc)), taken);
    }
    if (k == Kind::Ja) edge(static_cast<size_t>(isa::jump_target(in, pc)), s);
    if (k == Kind::Ja || k == Kind::Exit) return;
    if (k == Kind::Call)  // the last walk has the final state
      frame_lookup_[pc] = in.imm == 1 && s.map[1] != State::kNone && s.fp[2] != State::kNone && s.fp[10] != State::kNone &&
                          inline_entries_(static_cast<uint32_t>(s.map[1])) != 0;
    step(s, pc);
    if (k == Kind::Jcond) refine(s, in, false);
    pc += k == Kind::Lddw ? 2 : 1;
  }
}

void Facts::forward() {
  seen_.assign(states_.size(), false);
  frame_lookup_.assign(p_.insns.size(), false);
  std::vector<uint8_t> rounds(states_.size(), 0);
  std::set<size_t> work;
  for (const isa::Function& f : p_.functions) {
    seen_[static_cast<size_t>(block_[f.entry])] = true;
    work.insert(f.entry);
  }
  const Edge reach = [&](size_t target, const State& s) {
    auto& n = rounds[static_cast<size_t>(block_[target])];
    if (join(target, s, n >= 3)) {
      n = static_cast<uint8_t>(std::min(n + 1, 255));
      work.insert(target);
    }
  };
  while (!work.empty()) {
    const size_t start = *work.begin();
    work.erase(work.begin());
    walk(start, at_block(start), reach);
  }
  narrow();
}

// States that hold for every run, recomputed from themselves: what each block's predecessors
// hand it is still true, and no longer widened. Two rounds recover the bounds of nested loops.
void Facts::narrow() {
  std::vector<size_t> start_of(states_.size());
  for (size_t pc = 0; pc < p_.insns.size(); ++pc)
    if (is_block(pc)) start_of[static_cast<size_t>(block_[pc])] = pc;
  for (int round = 0; round < 2; ++round) {
    const std::vector<State> old = states_;
    const std::vector<bool> reached = seen_;
    seen_.assign(states_.size(), false);
    for (const isa::Function& f : p_.functions) {
      states_[static_cast<size_t>(block_[f.entry])] = State::entry();
      seen_[static_cast<size_t>(block_[f.entry])] = true;
    }
    const Edge gather = [&](size_t target, const State& s) { join(target, s, false); };
    for (size_t b = 0; b < old.size(); ++b)
      if (reached[b]) walk(start_of[b], old[b], gather);
  }
  // frame_lookup_ is as the last round's walks left it: it depends on maps and frame offsets
  // only, which widening never touched, so narrowing does not change them.
}

size_t Facts::block_start(size_t pc) const {
  while (pc > 0 && !is_block(pc)) --pc;
  return pc;
}

State Facts::before(size_t pc, const Visit& visit) const {
  const size_t b = block_start(pc);
  State s = at_block(b);
  for (size_t i = b; i < pc; ++i) {
    if (visit) visit(i, s);
    step(s, i);
    if (isa::info(p_.insns[i].op).kind == Kind::Lddw) ++i;
  }
  return s;
}

uint16_t clobbered(const isa::Insn& in) {
  switch (isa::info(in.op).kind) {
    case Kind::Call: case Kind::CallLocal: case Kind::CallKfunc: case Kind::Callx: case Kind::LdAbs: case Kind::LdInd:
      return 0x3f;  // r0-r5
    case Kind::Atomic:
      if (in.imm == isa::kAtomicCmpxchg) return 1;
      return (in.imm & isa::kAtomicFetch) ? static_cast<uint16_t>(1u << in.src) : 0;
    default: return regs_of(in).written;
  }
}

RegSets regs_of(const isa::Insn& in) {
  const bool x = isa::uses_src_reg(in.opcode);
  const auto bit = [](unsigned r) { return static_cast<uint16_t>(1u << r); };
  constexpr uint16_t kArgs = 0x3e;  // r1-r5
  switch (isa::info(in.op).kind) {
    case Kind::Alu: return {static_cast<uint16_t>((isa::op_code(in.opcode) == 0xb0 ? 0 : bit(in.dst)) | (x ? bit(in.src) : 0)), bit(in.dst)};
    case Kind::Neg: case Kind::End: return {bit(in.dst), bit(in.dst)};
    case Kind::MovSx: case Kind::Ldx: return {bit(in.src), bit(in.dst)};
    case Kind::Jcond: return {static_cast<uint16_t>(bit(in.dst) | (x ? bit(in.src) : 0)), 0};
    // r1-r5 are not counted as written by a call, so a program that reads them after one still
    // sees what the interpreter would show.
    case Kind::Call: case Kind::CallLocal: case Kind::CallKfunc: return {kArgs, 1};
    case Kind::Callx: return {static_cast<uint16_t>(kArgs | bit(in.dst)), 1};
    case Kind::LdAbs: case Kind::LdInd: return {static_cast<uint16_t>(bit(6) | bit(in.src)), 1};
    case Kind::Exit: return {1, 0};
    case Kind::Lddw: return {0, bit(in.dst)};
    case Kind::St: return {bit(in.dst), 0};
    case Kind::Stx: return {static_cast<uint16_t>(bit(in.dst) | bit(in.src)), 0};
    case Kind::Atomic: {  // the fetched value is not counted as written either
      const uint16_t read = bit(in.dst) | bit(in.src) | (in.imm == isa::kAtomicCmpxchg ? 1 : 0);
      return {read, 0};
    }
    case Kind::Ja: break;
  }
  return {0, 0};
}

bool plain(const isa::Insn& in) {
  const Kind k = isa::info(in.op).kind;
  return k == Kind::Alu || k == Kind::Neg || k == Kind::End || k == Kind::MovSx || k == Kind::Ldx || k == Kind::St || k == Kind::Stx;
}

void Facts::backward() {
  const size_t n = p_.insns.size();
  live_out_.assign(n, 0);
  live_in_.assign(n + 1, 0);
  std::vector<uint32_t> succ;
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t pc = n; pc-- > 0;) {
      const isa::Insn& in = p_.insns[pc];
      if (in.op == isa::Op::LDDW_HI) continue;
      verifier::successors(p_, static_cast<uint32_t>(pc), succ);
      uint16_t out = 0;
      for (uint32_t t : succ) out |= live_in_[t];
      RegSets r = regs_of(in);
      if (frame_lookup_[pc]) r.read = 0;
      const uint16_t in_set = static_cast<uint16_t>(r.read | (out & ~r.written));
      if (out != live_out_[pc] || in_set != live_in_[pc]) changed = true;
      live_out_[pc] = out;
      live_in_[pc] = in_set;
    }
  }
}

}  // namespace ebpfvm::jit
