// The ISA description and the decoded instruction form shared by every engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm::isa {

enum Class : uint8_t { kLd = 0, kLdx = 1, kSt = 2, kStx = 3, kAlu = 4, kJmp = 5, kJmp32 = 6, kAlu64 = 7 };

enum class Field : uint8_t { None, Src, Off, Imm };

enum class Kind : uint8_t {
  Alu,        // dst OP= src|imm (mov included)
  Neg,        // dst = -dst
  End,        // byte order conversion (le/be) or unconditional bswap
  MovSx,      // dst = (sN)src
  Ja,         // goto (off), or gotol (imm) for JMP32
  Jcond,      // if dst CMP src|imm goto off
  Call,       // helper by id
  CallLocal,  // bpf-to-bpf call
  CallKfunc,  // helper by BTF id
  Callx,      // helper whose id is in a register
  Exit,
  Lddw,       // 64-bit immediate; occupies two slots
  LdAbs,      // legacy packet load, absolute offset
  LdInd,      // legacy packet load, register + offset
  Ldx,        // dst = *(size *)(src + off), zero- or sign-extended
  St,         // *(size *)(dst + off) = imm
  Stx,        // *(size *)(dst + off) = src
  Atomic,     // lock-prefixed read-modify-write on *(size *)(dst + off)
};

// Reserved-field bits used in the ZERO column of opcodes.def.
inline constexpr uint8_t kZeroDst = 1, kZeroSrc = 2, kZeroOff = 4, kZeroImm = 8;

enum class Op : uint16_t {
#define EBPFVM_OP(name, ...) name,
#include "isa/opcodes.def"
#undef EBPFVM_OP
  LDDW_HI,  // second slot of an lddw; never executed on its own
  COUNT_,
};
inline constexpr size_t kOpCount = static_cast<size_t>(Op::COUNT_);

struct OpInfo {
  Op op;
  const char* name;
  uint8_t opcode;
  Field discr;
  int32_t dval;
  uint8_t zero;  // kZero* bits
  uint8_t version;
  Kind kind;
};

// Every instruction of the ISA, in opcodes.def order.
std::span<const OpInfo> op_table();
const OpInfo& info(Op op);
// The table rows that share an opcode byte (empty when the opcode is unknown).
std::span<const OpInfo* const> rows_for_opcode(uint8_t opcode);

// Fields of the opcode byte.
constexpr uint8_t op_class(uint8_t opcode) { return opcode & 0x07; }
constexpr bool uses_src_reg(uint8_t opcode) { return (opcode & 0x08) != 0; }
constexpr uint8_t op_code(uint8_t opcode) { return opcode & 0xf0; }  // ALU/JMP operation
constexpr bool is_alu64(uint8_t opcode) { return op_class(opcode) == kAlu64; }
constexpr bool is_jmp32(uint8_t opcode) { return op_class(opcode) == kJmp32; }
// Memory access width in bytes for LD/LDX/ST/STX.
constexpr unsigned mem_size(uint8_t opcode) {
  switch (opcode & 0x18) {
    case 0x00: return 4;
    case 0x08: return 2;
    case 0x10: return 1;
    default: return 8;
  }
}
constexpr bool is_sign_extending_load(uint8_t opcode) {
  return op_class(opcode) == kLdx && (opcode & 0xe0) == 0x80;
}

// Atomic operation encodings (imm of an Atomic instruction).
inline constexpr int32_t kAtomicFetch = 0x01;
inline constexpr int32_t kAtomicXchg = 0xe1;
inline constexpr int32_t kAtomicCmpxchg = 0xf1;

// The operator vocabulary of llvm-objdump's BPF syntax, one entry per encoding.
// ALU: "+=", "s/=", "=", ...; indexed by op_code(opcode) and the signed flag (off == 1).
std::string_view alu_operator(uint8_t opcode, int16_t off);
// Jumps: "==", "s>", "&", ...; empty for non-conditional opcodes.
std::string_view jump_operator(uint8_t opcode);
// The comparison (a JMP op_code) that holds exactly when `op` does not (0 for `&`, which has
// none), and the one that compares the same operands the other way round (`a > b` is `b < a`).
uint8_t inverted_jump(uint8_t op);
uint8_t mirrored_jump(uint8_t op);
// Atomics: "+=", "|=", "&=", "^=" for imm without the fetch bit; empty for xchg/cmpxchg.
std::string_view atomic_operator(int32_t imm);
std::string_view atomic_name(int32_t imm);  // "add", "or", "and", "xor", "xchg", "cmpxchg"

// A decoded instruction: one per 8-byte slot, the second slot of lddw included (op LDDW_HI).
struct Insn {
  Op op = Op::EXIT;
  uint8_t opcode = 0;
  uint8_t dst = 0;
  uint8_t src = 0;
  int16_t off = 0;
  int32_t imm = 0;
};

// Raw 8-byte encoding, little-endian as in ELF objects and the kernel's struct bpf_insn.
struct RawInsn {
  uint8_t opcode = 0;
  uint8_t dst = 0;
  uint8_t src = 0;
  int16_t off = 0;
  int32_t imm = 0;
};
RawInsn read_raw(const uint8_t* p);
void write_raw(const RawInsn& in, uint8_t* p);

struct Function {
  uint32_t entry;  // first slot
  uint32_t end;    // one past the last slot
};

// A program that decoded cleanly: every opcode known, reserved fields zero, registers valid,
// lddw pairs complete, every jump and call inside its function and not into an lddw,
// every function ending in exit or an unconditional jump.
struct Program {
  std::vector<Insn> insns;
  std::vector<Function> functions;  // sorted by entry; functions[0] is the entry point
};

inline constexpr uint8_t kMaxReg = 10;         // r0..r10
inline constexpr size_t kMaxInsns = 1000000;   // the kernel's limit for privileged programs
inline constexpr uint32_t kStackSize = 512;    // per frame
inline constexpr uint32_t kMaxCallFrames = 8;  // the entry function's frame included

Result<Program> decode(std::span<const uint8_t> bytecode);
std::vector<uint8_t> encode(std::span<const Insn> insns);

// Branch and call targets: the slot execution continues at.
int64_t jump_target(const Insn& in, size_t pc);
// Whether jump_target means anything for `in`: jumps, local calls and lddw of a code address.
bool has_target(const Insn& in);
// Points `in`, standing at slot pc, at slot target; false when the offset does not fit its field.
bool set_jump_target(Insn& in, size_t pc, size_t target);
// Slots where straight-line code ends: jump targets and function entries (size insns + 1).
std::vector<bool> block_starts(const Program& prog);
// The 64-bit immediate of the lddw at slot pc (the caller guarantees slot pc + 1 exists).
uint64_t lddw_imm64(std::span<const Insn> insns, size_t pc);

}  // namespace ebpfvm::isa
