#include <cctype>
#include <cinttypes>
#include <cstdio>

#include "asm/syntax.hpp"
#include "ebpfvm/asm.hpp"

namespace ebpfvm::asmtext {
namespace {

using isa::Insn;
using isa::Kind;

std::string reg(char prefix, unsigned n) { return prefix + std::to_string(n); }

std::string signed_offset(int64_t off) { return (off < 0 ? "-" : "+") + std::to_string(off < 0 ? -off : off); }

// "(r1 + 4)" / "(r10 - 8)" without the parentheses.
std::string address(unsigned base, int16_t off) {
  std::string s = "r" + std::to_string(base);
  return off < 0 ? s + " - " + std::to_string(-static_cast<int>(off)) : s + " + " + std::to_string(off);
}

std::string sized(char sign, unsigned bytes) { return "*(" + std::string(1, sign) + std::to_string(bytes * 8) + " *)"; }

std::string format_alu(const Insn& in) {
  char p = isa::is_alu64(in.opcode) ? 'r' : 'w';
  std::string rhs = isa::uses_src_reg(in.opcode) ? reg(p, in.src) : std::to_string(in.imm);
  int16_t signed_flag = isa::info(in.op).discr == isa::Field::Off ? in.off : 0;
  return reg(p, in.dst) + " " + std::string(isa::alu_operator(in.opcode, signed_flag)) + " " + rhs;
}

std::string format_jcond(const Insn& in) {
  char p = isa::is_jmp32(in.opcode) ? 'w' : 'r';
  std::string rhs = isa::uses_src_reg(in.opcode) ? reg(p, in.src) : std::to_string(in.imm);
  return "if " + reg(p, in.dst) + " " + std::string(isa::jump_operator(in.opcode)) + " " + rhs + " goto " +
         signed_offset(in.off);
}

std::string format_atomic(const Insn& in) {
  unsigned size = isa::mem_size(in.opcode);
  char p = size == 8 ? 'r' : 'w';
  std::string bits = std::to_string(size * 8);
  std::string addr = address(in.dst, in.off);
  if (in.imm == isa::kAtomicXchg)
    return reg(p, in.src) + " = xchg" + (size == 8 ? "" : "32") + "_" + bits + "(" + addr + ", " + reg(p, in.src) + ")";
  if (in.imm == isa::kAtomicCmpxchg)
    return reg(p, 0) + " = cmpxchg" + (size == 8 ? "" : "32") + "_" + bits + "(" + addr + ", " + reg(p, 0) + ", " +
           reg(p, in.src) + ")";
  if (in.imm & isa::kAtomicFetch)
    return reg(p, in.src) + " = atomic_fetch_" + std::string(isa::atomic_name(in.imm)) + "((u" + bits + " *)(" +
           addr + "), " + reg(p, in.src) + ")";
  return "lock " + sized('u', size) + "(" + addr + ") " + std::string(isa::atomic_operator(in.imm)) + " " +
         reg(p, in.src);
}

std::string format_lddw(std::span<const Insn> insns, size_t pc) {
  const Insn& in = insns[pc];
  std::string lhs = reg('r', in.dst) + " = ";
  char buf[32];
  if (in.src == 0) {
    std::snprintf(buf, sizeof buf, "0x%" PRIx64, isa::lddw_imm64(insns, pc));
    return lhs + buf + " ll";
  }
  std::string name(lddw_pseudo_name(in.src));
  if (in.op == isa::Op::LDDW_CODE) return lhs + name + "(pc" + signed_offset(in.imm) + ") ll";
  std::string s = lhs + name + "(" + std::to_string(in.imm) + ")";
  int32_t next = insns[pc + 1].imm;
  if (in.op == isa::Op::LDDW_MAP_VALUE || in.op == isa::Op::LDDW_MAP_IDX_VALUE) s += " + " + std::to_string(next);
  return s + " ll";
}

}  // namespace

std::string lower_name(const isa::OpInfo& row) {
  std::string s = row.name;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string_view lddw_pseudo_name(uint8_t src) {
  switch (src) {
    case 1: return "map_fd";
    case 2: return "map_value_fd";
    case 3: return "var";
    case 4: return "code";
    case 5: return "map_idx";
    case 6: return "map_value_idx";
    default: return {};
  }
}

std::string format_insn(std::span<const isa::Insn> insns, size_t pc) {
  const Insn& in = insns[pc];
  const isa::OpInfo& row = isa::info(in.op);
  char p = isa::is_alu64(in.opcode) ? 'r' : 'w';
  switch (row.kind) {
    case Kind::Alu: return format_alu(in);
    case Kind::Neg: return reg(p, in.dst) + " = -" + reg(p, in.dst);
    case Kind::End: {
      std::string name = lower_name(row);  // le16, be32, bswap64
      return reg('r', in.dst) + " = " + name + " " + reg('r', in.dst);
    }
    case Kind::MovSx:
      return reg(p, in.dst) + " = (s" + std::to_string(in.off) + ")" + reg(p, in.src);
    case Kind::Ja:
      return in.op == isa::Op::JA32 ? "gotol " + signed_offset(in.imm) : "goto " + signed_offset(in.off);
    case Kind::Jcond: return format_jcond(in);
    case Kind::Call: return "call " + std::to_string(in.imm);
    case Kind::CallLocal: return "call pc" + signed_offset(in.imm);
    case Kind::CallKfunc: return "call kfunc " + std::to_string(in.imm);
    case Kind::Callx: return "callx " + reg('r', in.dst);
    case Kind::Exit: return "exit";
    case Kind::Lddw: return format_lddw(insns, pc);
    case Kind::LdAbs:
      return "r0 = " + sized('u', isa::mem_size(in.opcode)) + "skb[" + std::to_string(in.imm) + "]";
    case Kind::LdInd:
      return "r0 = " + sized('u', isa::mem_size(in.opcode)) + "skb[" + reg('r', in.src) + " + " +
             std::to_string(in.imm) + "]";
    case Kind::Ldx: {
      char sign = isa::is_sign_extending_load(in.opcode) ? 's' : 'u';
      return reg('r', in.dst) + " = " + sized(sign, isa::mem_size(in.opcode)) + "(" + address(in.src, in.off) + ")";
    }
    case Kind::St:
      return sized('u', isa::mem_size(in.opcode)) + "(" + address(in.dst, in.off) + ") = " + std::to_string(in.imm);
    case Kind::Stx:
      return sized('u', isa::mem_size(in.opcode)) + "(" + address(in.dst, in.off) + ") = " + reg('r', in.src);
    case Kind::Atomic: return format_atomic(in);
  }
  return "<unknown>";
}

}  // namespace ebpfvm::asmtext

namespace ebpfvm {

Result<std::string> disassemble(std::span<const uint8_t> bytecode, const DisasmOptions& options) {
  auto prog = isa::decode(bytecode);
  if (!prog) return prog.error();
  const auto& insns = prog->insns;
  std::string out;
  for (size_t pc = 0; pc < insns.size(); ++pc) {
    if (insns[pc].op == isa::Op::LDDW_HI) continue;
    if (options.show_index) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%5zu: ", pc);
      out += buf;
    }
    if (options.show_bytes) {
      size_t slots = isa::info(insns[pc].op).kind == isa::Kind::Lddw ? 2 : 1;
      for (size_t b = 0; b < 8 * slots; ++b) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%02x ", bytecode[pc * 8 + b]);
        out += buf;
      }
      out += "\t";
    }
    out += asmtext::format_insn(insns, pc);
    out += '\n';
  }
  return out;
}

}  // namespace ebpfvm
