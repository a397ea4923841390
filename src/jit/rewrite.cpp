#include "jit/rewrite.hpp"

#include <vector>

#include "jit/facts.hpp"

namespace ebpfvm::jit {

namespace {

bool commutative(uint8_t op) { return op == 0x00 || op == 0x20 || op == 0x40 || op == 0x50 || op == 0xa0; }

bool plain_mov(const isa::Insn& in) {
  return isa::info(in.op).kind == isa::Kind::Alu && isa::op_code(in.opcode) == 0xb0 && isa::uses_src_reg(in.opcode) && in.off == 0;
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

}  // namespace ebpfvm::jit
