#include "isa/isa.hpp"

#include <array>
#include <cstring>

namespace ebpfvm::isa {
namespace {

constexpr uint8_t D = kZeroDst, S = kZeroSrc, O = kZeroOff, I = kZeroImm;

constexpr OpInfo kTable[] = {
#define EBPFVM_OP(name, opcode, discr, dval, zero, version, kind) \
  {Op::name, #name, opcode, Field::discr, dval, zero, version, Kind::kind},
#include "isa/opcodes.def"
#undef EBPFVM_OP
};
static_assert(std::size(kTable) == kOpCount - 1, "every Op but LDDW_HI has a table row");

constexpr OpInfo kLddwHi{Op::LDDW_HI, "LDDW_HI", 0, Field::None, 0, D | S | O, 1, Kind::Lddw};

// Rows grouped by opcode byte, built once.
struct ByOpcode {
  std::array<std::vector<const OpInfo*>, 256> rows;
  ByOpcode() {
    for (const OpInfo& row : kTable) rows[row.opcode].push_back(&row);
  }
};
const ByOpcode& by_opcode() {
  static const ByOpcode index;
  return index;
}

}  // namespace

std::span<const OpInfo> op_table() { return kTable; }

const OpInfo& info(Op op) {
  if (op == Op::LDDW_HI) return kLddwHi;
  return kTable[static_cast<size_t>(op)];
}

std::span<const OpInfo* const> rows_for_opcode(uint8_t opcode) {
  return by_opcode().rows[opcode];
}

std::string_view alu_operator(uint8_t opcode, int16_t off) {
  bool is_signed = off == 1;
  switch (op_code(opcode)) {
    case 0x00: return "+=";
    case 0x10: return "-=";
    case 0x20: return "*=";
    case 0x30: return is_signed ? "s/=" : "/=";
    case 0x40: return "|=";
    case 0x50: return "&=";
    case 0x60: return "<<=";
    case 0x70: return ">>=";
    case 0x90: return is_signed ? "s%=" : "%=";
    case 0xa0: return "^=";
    case 0xb0: return "=";
    case 0xc0: return "s>>=";
    default: return {};
  }
}

std::string_view jump_operator(uint8_t opcode) {
  switch (op_code(opcode)) {
    case 0x10: return "==";
    case 0x20: return ">";
    case 0x30: return ">=";
    case 0x40: return "&";
    case 0x50: return "!=";
    case 0x60: return "s>";
    case 0x70: return "s>=";
    case 0xa0: return "<";
    case 0xb0: return "<=";
    case 0xc0: return "s<";
    case 0xd0: return "s<=";
    default: return {};
  }
}

std::string_view atomic_operator(int32_t imm) {
  switch (imm & ~kAtomicFetch) {
    case 0x00: return "+=";
    case 0x40: return "|=";
    case 0x50: return "&=";
    case 0xa0: return "^=";
    default: return {};
  }
}

std::string_view atomic_name(int32_t imm) {
  switch (imm & ~kAtomicFetch) {
    case 0x00: return "add";
    case 0x40: return "or";
    case 0x50: return "and";
    case 0xa0: return "xor";
    case 0xe0: return "xchg";
    case 0xf0: return "cmpxchg";
    default: return {};
  }
}

RawInsn read_raw(const uint8_t* p) {
  RawInsn r;
  r.opcode = p[0];
  r.dst = p[1] & 0x0f;
  r.src = p[1] >> 4;
  r.off = static_cast<int16_t>(static_cast<uint16_t>(p[2] | (p[3] << 8)));
  uint32_t imm = static_cast<uint32_t>(p[4]) | (static_cast<uint32_t>(p[5]) << 8) |
                 (static_cast<uint32_t>(p[6]) << 16) | (static_cast<uint32_t>(p[7]) << 24);
  r.imm = static_cast<int32_t>(imm);
  return r;
}

void write_raw(const RawInsn& in, uint8_t* p) {
  p[0] = in.opcode;
  p[1] = static_cast<uint8_t>((in.dst & 0x0f) | (in.src << 4));
  auto off = static_cast<uint16_t>(in.off);
  p[2] = off & 0xff;
  p[3] = off >> 8;
  auto imm = static_cast<uint32_t>(in.imm);
  for (int i = 0; i < 4; ++i) p[4 + i] = (imm >> (8 * i)) & 0xff;
}

std::vector<uint8_t> encode(std::span<const Insn> insns) {
  std::vector<uint8_t> out(insns.size() * 8);
  for (size_t i = 0; i < insns.size(); ++i) {
    const Insn& in = insns[i];
    write_raw({in.opcode, in.dst, in.src, in.off, in.imm}, &out[i * 8]);
  }
  return out;
}

namespace {
// gotol, local calls and code addresses keep their offset in imm; other jumps in off.
bool target_in_imm(const Insn& in) { return info(in.op).kind == Kind::CallLocal || in.op == Op::JA32 || in.op == Op::LDDW_CODE; }
}  // namespace

int64_t jump_target(const Insn& in, size_t pc) {
  return static_cast<int64_t>(pc) + 1 + (target_in_imm(in) ? in.imm : in.off);
}

bool has_target(const Insn& in) {
  const Kind k = info(in.op).kind;
  return k == Kind::Ja || k == Kind::Jcond || k == Kind::CallLocal || in.op == Op::LDDW_CODE;
}

bool set_jump_target(Insn& in, size_t pc, size_t target) {
  const int64_t rel = static_cast<int64_t>(target) - static_cast<int64_t>(pc) - 1;
  if (target_in_imm(in)) {
    if (rel != static_cast<int32_t>(rel)) return false;
    in.imm = static_cast<int32_t>(rel);
  } else {
    if (rel != static_cast<int16_t>(rel)) return false;
    in.off = static_cast<int16_t>(rel);
  }
  return true;
}

uint8_t inverted_jump(uint8_t op) {
  switch (op) {
    case 0x10: return 0x50;  // == / !=
    case 0x50: return 0x10;
    case 0x20: return 0xb0;  // > / <=
    case 0xb0: return 0x20;
    case 0x30: return 0xa0;  // >= / <
    case 0xa0: return 0x30;
    case 0x60: return 0xd0;  // s> / s<=
    case 0xd0: return 0x60;
    case 0x70: return 0xc0;  // s>= / s<
    case 0xc0: return 0x70;
    default: return 0;
  }
}

uint8_t mirrored_jump(uint8_t op) {
  switch (op) {
    case 0x20: return 0xa0;  // >  <->  <
    case 0xa0: return 0x20;
    case 0x30: return 0xb0;  // >= <-> <=
    case 0xb0: return 0x30;
    case 0x60: return 0xc0;  // s> <-> s<
    case 0xc0: return 0x60;
    case 0x70: return 0xd0;  // s>= <-> s<=
    case 0xd0: return 0x70;
    default: return op;      // ==, != and & are symmetric
  }
}

std::vector<bool> block_starts(const Program& prog) {
  std::vector<bool> start(prog.insns.size() + 1, false);
  for (size_t pc = 0; pc < prog.insns.size(); ++pc) {
    const Kind k = info(prog.insns[pc].op).kind;
    if (k == Kind::Ja || k == Kind::Jcond) start[static_cast<size_t>(jump_target(prog.insns[pc], pc))] = true;
  }
  for (const Function& f : prog.functions) start[f.entry] = true;
  return start;
}

uint64_t lddw_imm64(std::span<const Insn> insns, size_t pc) {
  return static_cast<uint32_t>(insns[pc].imm) |
         (static_cast<uint64_t>(static_cast<uint32_t>(insns[pc + 1].imm)) << 32);
}

}  // namespace ebpfvm::isa
