// Bytecode -> isa::Program. Rejects anything malformed with the slot index and the reason.
#include <algorithm>
#include <cstdio>
#include <string>

#include "isa/isa.hpp"

namespace ebpfvm::isa {
namespace {

std::string hex8(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", v & 0xff);
  return buf;
}

Error bad(uint32_t pc, std::string msg) { return make_error_at(Errc::MalformedProgram, pc, std::move(msg)); }

int32_t field_value(const RawInsn& r, Field f) {
  switch (f) {
    case Field::Src: return r.src;
    case Field::Off: return r.off;
    case Field::Imm: return r.imm;
    case Field::None: break;
  }
  return 0;
}

const char* field_name(Field f) {
  switch (f) {
    case Field::Src: return "src";
    case Field::Off: return "off";
    case Field::Imm: return "imm";
    case Field::None: break;
  }
  return "";
}

// Finds the table row for one slot and checks its reserved fields and registers.
Result<Insn> decode_one(const RawInsn& r, uint32_t pc) {
  auto rows = rows_for_opcode(r.opcode);
  if (rows.empty()) return bad(pc, "unknown opcode " + hex8(r.opcode));
  const OpInfo* row = nullptr;
  for (const OpInfo* candidate : rows) {
    if (candidate->discr == Field::None || field_value(r, candidate->discr) == candidate->dval) {
      row = candidate;
      break;
    }
  }
  if (!row) {
    Field f = rows.front()->discr;
    return bad(pc, "invalid " + std::string(field_name(f)) + " " + std::to_string(field_value(r, f)) +
                       " for opcode " + hex8(r.opcode));
  }
  struct Check { uint8_t bit; const char* name; int32_t value; };
  const Check checks[] = {{kZeroDst, "dst", r.dst}, {kZeroSrc, "src", r.src},
                          {kZeroOff, "off", r.off}, {kZeroImm, "imm", r.imm}};
  for (const Check& c : checks) {
    if ((row->zero & c.bit) && c.value != 0)
      return bad(pc, "reserved field " + std::string(c.name) + " must be 0, is " + std::to_string(c.value) +
                         " (opcode " + hex8(r.opcode) + ")");
  }
  if (r.dst > kMaxReg) return bad(pc, "invalid dst register r" + std::to_string(r.dst));
  // src is a register except where the table uses it to select the instruction.
  if (row->discr != Field::Src && r.src > kMaxReg)
    return bad(pc, "invalid src register r" + std::to_string(r.src));
  return Insn{row->op, r.opcode, r.dst, r.src, r.off, r.imm};
}

Result<void> decode_slots(std::span<const uint8_t> bytes, std::vector<Insn>& out) {
  const size_t n = bytes.size() / 8;
  out.reserve(n);
  for (size_t pc = 0; pc < n; ++pc) {
    RawInsn r = read_raw(&bytes[pc * 8]);
    auto insn = decode_one(r, static_cast<uint32_t>(pc));
    if (!insn) return insn.error();
    out.push_back(*insn);
    if (info(insn->op).kind != Kind::Lddw) continue;
    if (pc + 1 >= n) return bad(static_cast<uint32_t>(pc), "lddw is missing its second half");
    RawInsn hi = read_raw(&bytes[(pc + 1) * 8]);
    if (hi.opcode != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0)
      return bad(static_cast<uint32_t>(pc + 1),
                 "second half of lddw must have opcode, dst, src and off 0 (opcode " + hex8(hi.opcode) + ")");
    // A map's lddw names it in the first half alone, as the kernel requires ("unrecognized
    // bpf_ld_imm64 insn" otherwise): the second half's imm is 0.
    if ((insn->op == Op::LDDW_MAP_FD || insn->op == Op::LDDW_MAP_IDX) && hi.imm != 0)
      return bad(static_cast<uint32_t>(pc + 1), "second half of an lddw of a map must have imm 0 (" + std::to_string(hi.imm) + ")");
    out.push_back(Insn{Op::LDDW_HI, 0, 0, 0, 0, hi.imm});
    ++pc;
  }
  return {};
}

bool is_function_target(Op op) { return op == Op::CALL_LOCAL || op == Op::LDDW_CODE; }

// Function entries are slot 0 plus every local call or code-address target.
Result<std::vector<Function>> find_functions(const std::vector<Insn>& insns) {
  const int64_t n = static_cast<int64_t>(insns.size());
  std::vector<uint32_t> entries{0};
  for (size_t pc = 0; pc < insns.size(); ++pc) {
    if (!is_function_target(insns[pc].op)) continue;
    int64_t t = jump_target(insns[pc], pc);
    if (t < 0 || t >= n)
      return bad(static_cast<uint32_t>(pc), "call target " + std::to_string(t) + " is outside the program (0.." +
                                                std::to_string(n - 1) + ")");
    if (insns[t].op == Op::LDDW_HI)
      return bad(static_cast<uint32_t>(pc), "call target " + std::to_string(t) + " is the second half of an lddw");
    entries.push_back(static_cast<uint32_t>(t));
  }
  std::sort(entries.begin(), entries.end());
  entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
  std::vector<Function> fns;
  for (size_t i = 0; i < entries.size(); ++i)
    fns.push_back({entries[i], i + 1 < entries.size() ? entries[i + 1] : static_cast<uint32_t>(n)});
  return fns;
}

bool is_jump(Op op) {
  Kind k = info(op).kind;
  return k == Kind::Ja || k == Kind::Jcond;
}

Result<void> check_function(const std::vector<Insn>& insns, const Function& fn) {
  for (uint32_t pc = fn.entry; pc < fn.end; ++pc) {
    if (!is_jump(insns[pc].op)) continue;
    int64_t t = jump_target(insns[pc], pc);
    if (t < fn.entry || t >= fn.end)
      return bad(pc, "jump out of range from insn " + std::to_string(pc) + " to " + std::to_string(t));
    if (insns[t].op == Op::LDDW_HI)
      return bad(pc, "jump into the middle of lddw at insn " + std::to_string(t - 1));
  }
  const Insn& last = insns[fn.end - 1];
  Kind k = info(last.op).kind;
  if (k != Kind::Exit && k != Kind::Ja)
    return bad(fn.end - 1, fn.entry == 0 && fn.end == insns.size()
                               ? "last instruction is not exit or goto"
                               : "function at insn " + std::to_string(fn.entry) + " does not end in exit or goto");
  return {};
}

}  // namespace

Result<Program> decode(std::span<const uint8_t> bytecode) {
  if (bytecode.empty()) return make_error(Errc::MalformedProgram, "empty program");
  if (bytecode.size() % 8 != 0)
    return make_error(Errc::MalformedProgram,
                      "program size " + std::to_string(bytecode.size()) + " is not a multiple of 8 bytes");
  if (bytecode.size() / 8 > kMaxInsns)
    return make_error(Errc::MalformedProgram, "program has " + std::to_string(bytecode.size() / 8) +
                                                  " instructions, more than the limit of " +
                                                  std::to_string(kMaxInsns));
  Program prog;
  if (auto r = decode_slots(bytecode, prog.insns); !r) return r.error();
  auto fns = find_functions(prog.insns);
  if (!fns) return fns.error();
  prog.functions = std::move(*fns);
  for (const Function& fn : prog.functions)
    if (auto r = check_function(prog.insns, fn); !r) return r.error();
  return prog;
}

}  // namespace ebpfvm::isa
