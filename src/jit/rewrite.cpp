#include "jit/rewrite.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <optional>
#include <vector>

#include "jit/facts.hpp"

namespace ebpfvm::jit {

namespace {

bool commutative(uint8_t op) { return op == 0x00 || op == 0x20 || op == 0x40 || op == 0x50 || op == 0xa0; }

bool plain_mov(const isa::Insn& in) {
  return isa::info(in.op).kind == isa::Kind::Alu && isa::op_code(in.opcode) == 0xb0 && isa::uses_src_reg(in.opcode) && in.off == 0;
}

// Where the test compares a register with a constant: the register, the constant, and the
// comparison as `reg OP K` (so `if K > r` reads `r < K`).
struct Test {
  uint8_t reg;
  uint64_t k;
  uint8_t op;  // JMP op_code
};

std::vector<Test> tests_of(const isa::Insn& br, const State& s) {
  const uint8_t op = isa::op_code(br.opcode);
  const bool ordered = op == 0x20 || op == 0x30 || op == 0xa0 || op == 0xb0;
  if (isa::info(br.op).kind != isa::Kind::Jcond || isa::is_jmp32(br.opcode) || !(ordered || op == 0x10 || op == 0x50)) return {};
  if (!isa::uses_src_reg(br.opcode)) return {{br.dst, static_cast<uint64_t>(int64_t{br.imm}), op}};
  std::vector<Test> t;
  const Range& d = s.reg[br.dst];
  const Range& r = s.reg[br.src];
  if (r.min == r.max) t.push_back({br.dst, r.min, op});
  if (d.min == d.max) t.push_back({br.src, d.min, isa::mirrored_jump(op)});
  return t;
}

// Points the reads of `from` in `in` at `to`; false when `in` reads it in a way that cannot be.
bool reread(isa::Insn& in, uint8_t from, uint8_t to) {
  if (!(regs_of(in).read & (1u << from))) return true;
  switch (isa::info(in.op).kind) {
    case isa::Kind::Alu: case isa::Kind::MovSx:
      if (in.dst == from) return false;  // read and written: not a plain read
      in.src = to;
      return true;
    case isa::Kind::Ldx: in.src = to; return true;
    case isa::Kind::St: in.dst = to; return true;
    case isa::Kind::Stx:
      if (in.dst == from) in.dst = to;
      if (in.src == from) in.src = to;
      return true;
    default: return false;
  }
}

bool is_step(const isa::Insn& in) { return in.op == isa::Op::ADD64_K || in.op == isa::Op::SUB64_K; }

// The copy `C = counter` that starts the pattern ending with the test at pc: the last write of C
// in the block, if it is such a copy and everything between is plain code.
std::optional<size_t> copy_before(const isa::Program& prog, size_t start, size_t pc, uint8_t c) {
  for (size_t i = pc; i-- > start;) {
    const isa::Insn& in = prog.insns[i];
    if (!plain(in)) return std::nullopt;
    if (regs_of(in).written & (1u << c))
      return plain_mov(in) && isa::is_alu64(in.opcode) && in.src != c && in.src != 10 ? std::optional(i) : std::nullopt;
  }
  return std::nullopt;
}

// The test at pc rewritten to read the counter after its step, if the block allows it.
bool fold_one(isa::Program& prog, size_t start, size_t pc, const Test& t, const State& at_test) {
  const uint8_t c = t.reg;
  const auto copy = copy_before(prog, start, pc, c);
  if (!copy) return false;
  const uint8_t counter = prog.insns[*copy].src;
  // Exactly one write of the counter between copy and test, a constant step. Reads of C after it
  // stay as they are: the copy stays too, and is left out only if nothing reads C.
  std::optional<size_t> step_at;
  for (size_t i = *copy + 1; i < pc; ++i) {
    if (!(regs_of(prog.insns[i]).written & (1u << counter))) continue;
    if (step_at || !is_step(prog.insns[i])) return false;
    step_at = i;
  }
  if (!step_at) return false;
  const isa::Insn& st = prog.insns[*step_at];
  const uint64_t step = static_cast<uint64_t>(int64_t{st.imm});
  const uint64_t delta = st.op == isa::Op::ADD64_K ? step : 0 - step;
  const uint64_t k = t.k + delta;
  // Ordered tests keep their outcome only if adding delta wraps neither side.
  const bool ordered = t.op != 0x10 && t.op != 0x50;
  const Range& cr = at_test.reg[c];
  const bool k_wraps = delta <= INT64_MAX ? k < t.k : k > t.k;
  if (ordered && (cr.min + delta > cr.max + delta || k_wraps)) return false;
  if (static_cast<uint64_t>(int64_t{static_cast<int32_t>(k)}) != k) return false;
  // Rewritten on a copy: a read that cannot be redirected leaves the program as it was.
  std::vector<isa::Insn> body(prog.insns.begin() + static_cast<long>(*copy) + 1, prog.insns.begin() + static_cast<long>(*step_at));
  for (isa::Insn& in : body)
    if (!reread(in, c, counter)) return false;
  std::copy(body.begin(), body.end(), prog.insns.begin() + static_cast<long>(*copy) + 1);
  isa::Insn& br = prog.insns[pc];
  br.opcode = static_cast<uint8_t>(isa::kJmp | t.op);  // BPF_K
  br.op = isa::rows_for_opcode(br.opcode)[0]->op;
  br.dst = counter;
  br.src = 0;
  br.imm = static_cast<int32_t>(k);
  return true;
}


// ---- unrolling ----

constexpr uint32_t kUnroll = 4;
constexpr size_t kMaxUnrolledSlots = 48;  // per copy: the gain is in short loops

// What a test on the counter does in one copy: left as it is, or decided.
enum class Fate : uint8_t { Keep, Taken, NotTaken };

struct Unroll {
  size_t head, back;                           // the loop is [head, back]; back jumps to head
  std::vector<std::array<Fate, kUnroll>> fate;  // per slot of the loop, per copy
};

// A body the copies may repeat as it is: no calls (their cost dwarfs a test), no atomics (they
// write registers regs_of does not count).
bool unrollable(const isa::Insn& in) {
  switch (isa::info(in.op).kind) {
    case isa::Kind::Alu: case isa::Kind::Neg: case isa::Kind::End: case isa::Kind::MovSx: case isa::Kind::Ldx:
    case isa::Kind::St: case isa::Kind::Stx: case isa::Kind::Ja: case isa::Kind::Jcond: case isa::Kind::Exit:
    case isa::Kind::Lddw:
      return true;
    default: return false;
  }
}

bool falls_through(const isa::Insn& in) {
  const isa::Kind k = isa::info(in.op).kind;
  return k != isa::Kind::Ja && k != isa::Kind::Exit;
}

// The value the counter enters the loop with (one entry slot, a constant on every edge into it).
struct Entry {
  size_t at;
  uint64_t value;
};
using JumpsTo = std::vector<std::vector<uint32_t>>;  // by target slot, the jumps (not calls) there

std::optional<Entry> loop_entry(const isa::Program& prog, const Facts& facts, const JumpsTo& jumps_to, const isa::Function& fn,
                                size_t head, size_t back, uint8_t r) {
  std::optional<Entry> e;
  auto edge = [&](size_t at, const State& s) {
    const Range v = s.reg[r];
    if (v.min != v.max || (e && (e->at != at || e->value != v.min))) return false;
    e = Entry{at, v.min};
    return true;
  };
  if (head == fn.entry) return std::nullopt;
  if (falls_through(prog.insns[head - 1])) {
    const size_t prev = prog.insns[head - 1].op == isa::Op::LDDW_HI ? head - 2 : head - 1;  // steps as a pair
    State s = facts.before(prev);
    facts.step(s, prev);
    if (!edge(head, s)) return std::nullopt;
  }
  for (size_t t = head; t <= back; ++t)
    for (const uint32_t j : jumps_to[t])
      if ((j < head || j > back) && !edge(t, facts.before(j))) return std::nullopt;
  return e;
}

// One round runs forward from head to back (no other backward jump, nothing unrollable left out),
// so every path through a round passes each slot that no jump skips.
bool forward_round(const isa::Program& prog, size_t head, size_t back) {
  if (back - head + 1 > kMaxUnrolledSlots) return false;
  const isa::Insn& be = prog.insns[back];
  if (isa::info(be.op).kind == isa::Kind::Jcond && isa::inverted_jump(isa::op_code(be.opcode)) == 0) return false;
  for (size_t j = head; j <= back; ++j) {
    const isa::Insn& in = prog.insns[j];
    const isa::Kind k = isa::info(in.op).kind;
    if (!unrollable(in)) return false;
    if (j != back && (k == isa::Kind::Ja || k == isa::Kind::Jcond) && static_cast<size_t>(isa::jump_target(in, j)) <= j) return false;
  }
  return true;
}

// The slot where register r steps, if it is the round's only write of r, a `+= c` or `-= c` with
// |c| a power of two, and no jump passes over it. c (mod 2^64) goes to *c.
std::optional<size_t> counter_step(const isa::Program& prog, size_t head, size_t back, uint8_t r, uint64_t* c) {
  std::optional<size_t> step;
  for (size_t j = head; j <= back; ++j) {
    if (!(regs_of(prog.insns[j]).written & (1u << r))) continue;
    const isa::Op op = prog.insns[j].op;
    if (step || (op != isa::Op::ADD64_K && op != isa::Op::SUB64_K && op != isa::Op::ADD32_K && op != isa::Op::SUB32_K)) return std::nullopt;
    step = j;
  }
  if (!step) return std::nullopt;
  for (size_t j = head; j < *step; ++j) {
    const isa::Kind k = isa::info(prog.insns[j].op).kind;
    if (k != isa::Kind::Ja && k != isa::Kind::Jcond) continue;
    const auto t = static_cast<size_t>(isa::jump_target(prog.insns[j], j));
    if (t > *step && t <= back) return std::nullopt;
  }
  const isa::Insn& st = prog.insns[*step];
  const bool sub = st.op == isa::Op::SUB64_K || st.op == isa::Op::SUB32_K;
  *c = sub ? 0 - static_cast<uint64_t>(int64_t{st.imm}) : static_cast<uint64_t>(int64_t{st.imm});
  const uint64_t mag = static_cast<int64_t>(*c) < 0 ? 0 - *c : *c;
  // Congruences mod kUnroll * |c| survive 32- and 64-bit wrapping alike when that divides 2^32.
  if (mag == 0 || !std::has_single_bit(mag) || mag > (uint64_t{1} << 30)) return std::nullopt;
  return step;
}

// Decides, copy by copy, the equality tests of counter r against constants; false if none is.
bool decide_tests(const isa::Program& prog, Unroll& u, uint8_t r, size_t step, uint64_t c, const Entry& entry) {
  const uint64_t m = (static_cast<int64_t>(c) < 0 ? 0 - c : c) * kUnroll;
  bool decided = false;
  for (size_t t = u.head; t <= u.back; ++t) {
    const isa::Insn& in = prog.insns[t];
    const uint8_t op = isa::op_code(in.opcode);
    if (isa::info(in.op).kind != isa::Kind::Jcond || isa::uses_src_reg(in.opcode) || in.dst != r || (op != 0x10 && op != 0x50)) continue;
    const uint64_t n = isa::is_jmp32(in.opcode) ? static_cast<uint32_t>(in.imm) : static_cast<uint64_t>(int64_t{in.imm});
    for (uint32_t k = 0; k < kUnroll; ++k) {
      // Steps taken since the entry, mod kUnroll: copy 0 is entered first, and again after copy kUnroll - 1.
      const uint64_t steps = (step >= entry.at) + (k == 0 ? kUnroll - 1 : k - 1) + (t > step);
      if (((entry.value + steps * c - n) & (m - 1)) == 0) continue;  // may be equal here
      u.fate[t - u.head][k] = op == 0x10 ? Fate::NotTaken : Fate::Taken;
      decided = true;
    }
  }
  return decided;
}

// The loop [head, back] as an Unroll, if it has a counter whose steps decide an equality test.
std::optional<Unroll> plan_unroll(const isa::Program& prog, const Facts& facts, const JumpsTo& jumps_to, const isa::Function& fn,
                                  size_t head, size_t back) {
  if (!forward_round(prog, head, back)) return std::nullopt;
  for (uint8_t r = 0; r < 10; ++r) {
    uint64_t c = 0;
    const auto step = counter_step(prog, head, back, r, &c);
    const auto entry = step ? loop_entry(prog, facts, jumps_to, fn, head, back, r) : std::nullopt;
    if (!entry) continue;
    Unroll u{head, back, std::vector<std::array<Fate, kUnroll>>(back - head + 1)};
    if (decide_tests(prog, u, r, *step, c, *entry)) return u;
  }
  return std::nullopt;
}

isa::Insn with_opcode(isa::Insn in, uint8_t opcode) {
  in.opcode = opcode;
  in.op = isa::rows_for_opcode(opcode)[0]->op;
  return in;
}

// Where an emitted slot's jump goes, before renumbering.
enum class To : uint8_t { Same, Exit, Head };
struct Emitted {
  size_t old;
  int loop;       // index into the plans, -1 outside every unrolled loop
  uint32_t copy;
  To to;
};

// Lays the plans' copies out after their loops and renumbers every jump, call and function.
bool apply_unrolls(isa::Program& prog, const std::vector<Unroll>& plans) {
  const size_t n = prog.insns.size();
  std::vector<isa::Insn> out;
  std::vector<Emitted> from;
  std::vector<size_t> pos(n + 1);  // copy 0 for slots inside a loop
  std::vector<std::array<std::vector<size_t>, kUnroll>> cpos(plans.size());
  auto put = [&](const isa::Insn& in, Emitted e) {
    out.push_back(in);
    from.push_back(e);
  };
  size_t next = 0;  // the next plan, by head
  for (size_t old = 0; old < n; ++old) {
    if (next < plans.size() && plans[next].head == old) {
      const Unroll& u = plans[next];
      const int li = static_cast<int>(next++);
      const isa::Insn be = prog.insns[u.back];
      const bool cond = isa::info(be.op).kind == isa::Kind::Jcond;
      const isa::Insn inverse = cond ? with_opcode(be, static_cast<uint8_t>((be.opcode & 0x0f) | isa::inverted_jump(isa::op_code(be.opcode)))) : be;
      const isa::Insn ja = with_opcode(isa::Insn{}, isa::kJmp | 0x00);
      for (uint32_t k = 0; k < kUnroll; ++k) {
        const bool last = k + 1 == kUnroll;
        cpos[li][k].resize(u.back - u.head + 1);
        for (size_t s = u.head; s <= u.back; ++s) {
          cpos[li][k][s - u.head] = out.size();
          const isa::Insn& in = prog.insns[s];
          const Fate f = u.fate[s - u.head][k];
          if (s != u.back) {
            if (f == Fate::Taken) put(ja, {s, li, k, To::Same});
            else if (f == Fate::Keep) put(in, {s, li, k, To::Same});
            continue;
          }
          // The back edge: a copy's taken edge goes on to the next copy, which follows it.
          const bool taken = !cond || f == Fate::Taken, never = cond && f == Fate::NotTaken;
          if (!last) {
            if (never) put(ja, {s, li, k, To::Exit});
            else if (!taken) put(inverse, {s, li, k, To::Exit});
          } else {
            if (taken) put(ja, {s, li, k, To::Head});
            else if (!never) put(be, {s, li, k, To::Head});
          }
        }
      }
      for (size_t s = u.head; s <= u.back; ++s) pos[s] = cpos[li][0][s - u.head];
      old = u.back;
      continue;
    }
    pos[old] = out.size();
    put(prog.insns[old], {old, -1, 0, To::Same});
  }
  pos[n] = out.size();
  for (size_t pc = 0; pc < out.size(); ++pc) {
    isa::Insn& in = out[pc];
    if (!isa::has_target(in)) continue;
    const Emitted& e = from[pc];
    size_t to;
    if (e.to == To::Exit) to = pos[plans[e.loop].back + 1];
    else if (e.to == To::Head) to = cpos[e.loop][0][0];
    else {
      const auto t = static_cast<size_t>(isa::jump_target(prog.insns[e.old], e.old));
      const bool inside = e.loop >= 0 && t >= plans[e.loop].head && t <= plans[e.loop].back;
      to = inside ? cpos[e.loop][e.copy][t - plans[e.loop].head] : pos[t];
    }
    if (!isa::set_jump_target(in, pc, to)) return false;
  }
  prog.insns = std::move(out);
  for (isa::Function& f : prog.functions) {
    f.entry = static_cast<uint32_t>(pos[f.entry]);
    f.end = static_cast<uint32_t>(pos[f.end]);
  }
  return true;
}
}  // namespace

uint32_t swap_accumulators(isa::Program& prog) {
  const std::vector<bool> target = isa::block_starts(prog);
  uint32_t swapped = 0;
  for (size_t pc = 0; pc < prog.insns.size(); ++pc) {
    isa::Insn& op = prog.insns[pc];
    const uint8_t d = op.dst, y = op.src;
    if (isa::info(op.op).kind != isa::Kind::Alu || !isa::uses_src_reg(op.opcode) || !commutative(isa::op_code(op.opcode)) ||
        op.off != 0 || d == y || d == 10 || y == 10)
      continue;
    const auto both = static_cast<uint16_t>((1u << d) | (1u << y));
    for (size_t j = pc + 1; j < prog.insns.size() && j <= pc + 4 && !target[j]; ++j) {
      isa::Insn& mov = prog.insns[j];
      // A 32-bit copy of a 64-bit result would keep only its low half: the copy must be as wide.
      if (plain_mov(mov) && mov.dst == y && mov.src == d && (isa::is_alu64(mov.opcode) || !isa::is_alu64(op.opcode))) {
        std::swap(op.dst, op.src);
        std::swap(mov.dst, mov.src);
        ++swapped;
        break;
      }
      const RegSets r = regs_of(mov);
      if (!plain(mov) || ((r.read | r.written) & both)) break;
    }
  }
  return swapped;
}

uint32_t fold_counter_copies(isa::Program& prog, const Facts& facts) {
  uint32_t folded = 0;
  size_t start = 0;
  State s = State::entry();
  for (size_t pc = 0; pc < prog.insns.size(); ++pc) {
    if (facts.is_block(pc)) {
      start = pc;
      s = facts.at_block(pc);
    }
    for (const Test& t : tests_of(prog.insns[pc], s))
      if (t.reg != 10 && fold_one(prog, start, pc, t, s)) {
        ++folded;
        break;
      }
    facts.step(s, pc);
  }
  return folded;
}

uint32_t unroll_counted_loops(isa::Program& prog, const Facts& facts, const std::function<bool(size_t head)>& skip) {
  JumpsTo jumps_to(prog.insns.size() + 1);
  for (size_t pc = 0; pc < prog.insns.size(); ++pc) {
    const isa::Kind k = isa::info(prog.insns[pc].op).kind;
    if (k != isa::Kind::Ja && k != isa::Kind::Jcond) continue;
    jumps_to[static_cast<size_t>(isa::jump_target(prog.insns[pc], pc))].push_back(static_cast<uint32_t>(pc));
  }
  // In slot order (functions are sorted), so a loop overlapping the last one planned (a later
  // back edge to an earlier head) is left alone. Code grows by at most the program's own size
  // (4096 slots for a small one).
  std::vector<Unroll> plans;
  size_t added = 0;
  for (const isa::Function& fn : prog.functions)
    for (size_t pc = fn.entry; pc < fn.end; ++pc) {
      const isa::Insn& in = prog.insns[pc];
      const isa::Kind k = isa::info(in.op).kind;
      if (k != isa::Kind::Ja && k != isa::Kind::Jcond) continue;
      const auto head = static_cast<size_t>(isa::jump_target(in, pc));
      const size_t more = (kUnroll - 1) * (pc - head + 1);
      if (head > pc || (!plans.empty() && plans.back().back >= head) || added + more > std::max<size_t>(4096, prog.insns.size()) ||
          skip(head))
        continue;
      if (auto u = plan_unroll(prog, facts, jumps_to, fn, head, pc)) {
        added += more;
        plans.push_back(std::move(*u));
      }
    }
  if (plans.empty() || !apply_unrolls(prog, plans)) return 0;
  return static_cast<uint32_t>(plans.size());
}

}  // namespace ebpfvm::jit
