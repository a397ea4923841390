#include "jit/rewrite.hpp"

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

uint8_t mirrored(uint8_t op) {
  switch (op) {
    case 0x20: return 0xa0;  // >  <->  <
    case 0xa0: return 0x20;
    case 0x30: return 0xb0;  // >= <-> <=
    case 0xb0: return 0x30;
    default: return op;      // == and !=
  }
}

std::vector<Test> tests_of(const isa::Insn& br, const State& s) {
  const uint8_t op = isa::op_code(br.opcode);
  const bool ordered = op == 0x20 || op == 0x30 || op == 0xa0 || op == 0xb0;
  if (isa::info(br.op).kind != isa::Kind::Jcond || isa::is_jmp32(br.opcode) || !(ordered || op == 0x10 || op == 0x50)) return {};
  if (!isa::uses_src_reg(br.opcode)) return {{br.dst, static_cast<uint64_t>(int64_t{br.imm}), op}};
  std::vector<Test> t;
  const Range& d = s.reg[br.dst];
  const Range& r = s.reg[br.src];
  if (r.min == r.max) t.push_back({br.dst, r.min, op});
  if (d.min == d.max) t.push_back({br.src, d.min, mirrored(op)});
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

}  // namespace ebpfvm::jit
