// Text -> bytecode. The syntax is the disassembler's; every encoding is found in the ISA table
// through the same operator vocabulary (isa::alu_operator, jump_operator, ...), so no opcode
// number is written here.
#include <cctype>
#include <map>
#include <optional>
#include <string>

#include "asm/syntax.hpp"
#include "ebpfvm/asm.hpp"

namespace ebpfvm {
namespace {

using isa::Insn;
using isa::Kind;
using isa::OpInfo;
using i128 = __int128;

struct Reg {
  char width;  // 'r' or 'w'
  uint8_t num;
};

struct ParseError {
  std::string message;
};

// A cursor over one line of text.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool done() {
    ws();
    return i_ == s_.size();
  }
  bool eat(std::string_view lit) {
    ws();
    if (s_.substr(i_).substr(0, lit.size()) != lit) return false;
    i_ += lit.size();
    return true;
  }
  void expect(std::string_view lit) {
    if (!eat(lit)) fail("expected '" + std::string(lit) + "'");
  }
  size_t pos() const { return i_; }
  void reset(size_t p) { i_ = p; }

  std::optional<Reg> reg() {
    ws();
    size_t p = i_;
    if (i_ < s_.size() && (s_[i_] == 'r' || s_[i_] == 'w')) {
      char width = s_[i_++];
      size_t start = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (i_ > start && i_ - start <= 2 && !ident_char_at(i_)) {
        int n = std::stoi(std::string(s_.substr(start, i_ - start)));
        if (n > isa::kMaxReg) fail("invalid register " + std::string(1, width) + std::to_string(n));
        return Reg{width, static_cast<uint8_t>(n)};
      }
    }
    i_ = p;
    return std::nullopt;
  }
  Reg expect_reg() {
    auto r = reg();
    if (!r) fail("expected a register");
    return *r;
  }

  // [+-]? (0x[hex]+ | [0-9]+)
  std::optional<i128> number() {
    ws();
    size_t p = i_;
    bool neg = false;
    if (i_ < s_.size() && (s_[i_] == '-' || s_[i_] == '+')) neg = s_[i_++] == '-';
    ws();
    int base = 10;
    if (s_.substr(i_).substr(0, 2) == "0x" || s_.substr(i_).substr(0, 2) == "0X") {
      base = 16;
      i_ += 2;
    }
    size_t start = i_;
    i128 v = 0;
    while (i_ < s_.size() && std::isxdigit(static_cast<unsigned char>(s_[i_]))) {
      char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[i_])));
      int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : c - 'a' + 10;
      if (d >= base) break;
      v = v * base + d;
      if (v > (i128(1) << 65)) fail("number too large");
      ++i_;
    }
    if (i_ == start || ident_char_at(i_)) {
      i_ = p;
      return std::nullopt;
    }
    return neg ? -v : v;
  }
  i128 expect_number() {
    auto n = number();
    if (!n) fail("expected a number");
    return *n;
  }

  std::string ident() {
    ws();
    size_t start = i_;
    while (i_ < s_.size() && ident_char_at(i_)) ++i_;
    if (start < i_ && std::isdigit(static_cast<unsigned char>(s_[start]))) {
      i_ = start;
      return {};
    }
    return std::string(s_.substr(start, i_ - start));
  }

  [[noreturn]] void fail(const std::string& msg) const {
    throw ParseError{msg + (i_ < s_.size() ? " at '" + std::string(s_.substr(i_)) + "'" : " at end of line")};
  }

 private:
  bool ident_char_at(size_t k) const {
    return k < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[k])) || s_[k] == '_' || s_[k] == '.');
  }
  std::string_view s_;
  size_t i_ = 0;
};

int32_t imm32(i128 v, const Cursor& c) {
  if (v < INT32_MIN || v > UINT32_MAX) c.fail("immediate " + std::to_string(static_cast<int64_t>(v)) + " does not fit in 32 bits");
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<int64_t>(v)));
}

int16_t off16(i128 v, const Cursor& c) {
  if (v < INT16_MIN || v > INT16_MAX) c.fail("offset " + std::to_string(static_cast<int64_t>(v)) + " does not fit in 16 bits");
  return static_cast<int16_t>(v);
}

template <class Pred>
const OpInfo& find_row(Pred pred, const Cursor& c, const char* what) {
  for (const OpInfo& row : isa::op_table())
    if (pred(row)) return row;
  c.fail(std::string("no instruction for this ") + what);
}

int16_t discr_off(const OpInfo& row) { return row.discr == isa::Field::Off ? static_cast<int16_t>(row.dval) : 0; }

Insn make(const OpInfo& row, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  return Insn{row.op, row.opcode, dst, src, off, imm};
}

// A jump/call target that names a label, resolved once every label is known.
struct Fixup {
  size_t slot;
  std::string label;
  bool in_imm;  // the target is in imm (call, gotol, code address) rather than off
  uint32_t line;
};

class Assembler {
 public:
  Result<std::vector<uint8_t>> run(std::string_view text);

 private:
  void statement(Cursor& c);
  void assignment(Cursor& c, Reg dst);
  void alu(Cursor& c, Reg dst);
  void jump_target(Cursor& c, bool in_imm, Insn in);
  void memory_ref(Cursor& c, uint8_t& base, int16_t& off);
  void load(Cursor& c, Reg dst);
  void lddw_pseudo(Cursor& c, Reg dst, uint8_t src);
  void atomic_call(Cursor& c, Reg dst, const std::string& name);

  void emit(Insn in) { out_.push_back(in); }

  std::vector<Insn> out_;
  std::map<std::string, size_t> labels_;
  std::vector<Fixup> fixups_;
  uint32_t line_ = 0;
};

void Assembler::jump_target(Cursor& c, bool in_imm, Insn in) {
  if (auto n = c.number()) {
    if (in_imm) in.imm = imm32(*n, c);
    else in.off = off16(*n, c);
  } else {
    std::string label = c.ident();
    if (label.empty()) c.fail("expected a jump target (+N, -N or a label)");
    fixups_.push_back({out_.size(), label, in_imm, line_});
  }
  emit(in);
}

// "(r1 + 4)" / "(r10 - 8)" / "(r1)"
void Assembler::memory_ref(Cursor& c, uint8_t& base, int16_t& off) {
  c.expect("(");
  base = c.expect_reg().num;
  off = 0;
  if (!c.eat(")")) {
    off = off16(c.expect_number(), c);
    c.expect(")");
  }
}

// "u32 *)" after its opening parenthesis -> 4, sign 'u'
unsigned type_spec(Cursor& c, char& sign) {
  std::string t = c.ident();
  c.expect("*)");
  if (t.size() < 2 || (t[0] != 'u' && t[0] != 's')) c.fail("expected u8/u16/u32/u64 or s8/s16/s32");
  sign = t[0];
  std::string bits = t.substr(1);
  if (bits == "8") return 1;
  if (bits == "16") return 2;
  if (bits == "32") return 4;
  if (bits == "64") return 8;
  c.fail("unknown access size '" + t + "'");
}

// "*(u32 *)"
unsigned size_spec(Cursor& c, char& sign) {
  c.expect("*(");
  return type_spec(c, sign);
}

void Assembler::load(Cursor& c, Reg dst) {
  char sign;
  unsigned size = size_spec(c, sign);
  if (c.eat("skb[")) {  // legacy packet load into r0
    if (dst.num != 0) c.fail("legacy packet loads write r0");
    auto src = c.reg();
    int32_t imm = 0;
    if (auto n = c.number()) imm = imm32(*n, c);
    else if (!src) c.fail("expected an offset");
    c.expect("]");
    Kind kind = src ? Kind::LdInd : Kind::LdAbs;
    const OpInfo& row = find_row([&](const OpInfo& r) { return r.kind == kind && isa::mem_size(r.opcode) == size; }, c,
                                 "packet load size");
    emit(make(row, 0, src ? src->num : 0, 0, imm));
    return;
  }
  uint8_t base;
  int16_t off;
  memory_ref(c, base, off);
  bool sx = sign == 's';
  const OpInfo& row = find_row(
      [&](const OpInfo& r) {
        return r.kind == Kind::Ldx && isa::mem_size(r.opcode) == size && isa::is_sign_extending_load(r.opcode) == sx;
      },
      c, "load size");
  emit(make(row, dst.num, base, off, 0));
}

void Assembler::lddw_pseudo(Cursor& c, Reg dst, uint8_t src) {
  const OpInfo& row = find_row([&](const OpInfo& r) { return r.kind == Kind::Lddw && r.dval == src; }, c, "lddw form");
  c.expect("(");
  Insn lo = make(row, dst.num, src, 0, 0);
  int32_t next = 0;
  if (row.op == isa::Op::LDDW_CODE) {
    c.eat("pc");
    jump_target(c, true, lo);
    c.expect(")");
  } else {
    lo.imm = imm32(c.expect_number(), c);
    c.expect(")");
    if (row.op == isa::Op::LDDW_MAP_VALUE || row.op == isa::Op::LDDW_MAP_IDX_VALUE)
      if (c.eat("+")) next = imm32(c.expect_number(), c);
    emit(lo);
  }
  c.expect("ll");
  emit(Insn{isa::Op::LDDW_HI, 0, 0, 0, 0, next});
}

// atomic_fetch_add((u64 *)(r1 + 0), r2), xchg_64(r1 + 0, r2), cmpxchg32_32(r1 + 0, w0, w2)
void Assembler::atomic_call(Cursor& c, Reg dst, const std::string& name) {
  int32_t want;
  unsigned size;
  uint8_t base;
  int16_t off = 0;
  c.expect("(");
  if (name.rfind("atomic_fetch_", 0) == 0) {
    std::string op = name.substr(13);
    const OpInfo& row = find_row(
        [&](const OpInfo& r) {
          return r.kind == Kind::Atomic && (r.dval & isa::kAtomicFetch) && isa::atomic_name(r.dval) == op &&
                 r.dval != isa::kAtomicXchg && r.dval != isa::kAtomicCmpxchg;
        },
        c, "atomic operation");
    want = row.dval;
    char sign;
    c.expect("(");
    size = type_spec(c, sign);
    memory_ref(c, base, off);
  } else {
    want = name.rfind("cmpxchg", 0) == 0 ? isa::kAtomicCmpxchg : isa::kAtomicXchg;
    size = name.size() > 3 && name.substr(name.size() - 2) == "64" ? 8 : 4;
    base = c.expect_reg().num;
    if (auto n = c.number()) off = off16(*n, c);
  }
  c.expect(",");
  if (want == isa::kAtomicCmpxchg) {
    if (c.expect_reg().num != 0 || dst.num != 0) c.fail("cmpxchg compares with and writes r0");
    c.expect(",");
  }
  Reg src = c.expect_reg();
  c.expect(")");
  if (want != isa::kAtomicCmpxchg && src.num != dst.num) c.fail("the fetched value goes to the source register");
  const OpInfo& row = find_row(
      [&](const OpInfo& r) { return r.kind == Kind::Atomic && r.dval == want && isa::mem_size(r.opcode) == size; }, c,
      "atomic size");
  emit(make(row, base, src.num, off, want));
}

void Assembler::alu(Cursor& c, Reg dst) {
  static const char* const kOps[] = {"s>>=", "s/=", "s%=", "<<=", ">>=", "+=", "-=", "*=", "/=", "|=", "&=", "%=", "^="};
  for (const char* op : kOps) {
    if (!c.eat(op)) continue;
    auto src = c.reg();
    int32_t imm = src ? 0 : imm32(c.expect_number(), c);
    bool is64 = dst.width == 'r';
    const OpInfo& row = find_row(
        [&](const OpInfo& r) {
          return r.kind == Kind::Alu && isa::is_alu64(r.opcode) == is64 && isa::uses_src_reg(r.opcode) == src.has_value() &&
                 isa::alu_operator(r.opcode, discr_off(r)) == op;
        },
        c, "operator");
    emit(make(row, dst.num, src ? src->num : 0, discr_off(row), imm));
    return;
  }
  c.expect("=");
  assignment(c, dst);
}

void Assembler::assignment(Cursor& c, Reg dst) {
  const bool is64 = dst.width == 'r';
  size_t mark = c.pos();
  if (c.eat("-")) {
    if (auto r = c.reg()) {
      if (r->num != dst.num) c.fail("negation is in place: dst = -dst");
      emit(make(find_row([&](const OpInfo& x) { return x.kind == Kind::Neg && isa::is_alu64(x.opcode) == is64; }, c,
                         "negation"),
                dst.num, 0, 0, 0));
      return;
    }
    c.reset(mark);
  }
  if (c.eat("(s")) {  // movsx
    int bits = static_cast<int>(c.expect_number());
    c.expect(")");
    Reg src = c.expect_reg();
    const OpInfo& row = find_row(
        [&](const OpInfo& r) { return r.kind == Kind::MovSx && isa::is_alu64(r.opcode) == is64 && r.dval == bits; }, c,
        "sign-extension width");
    emit(make(row, dst.num, src.num, static_cast<int16_t>(bits), 0));
    return;
  }
  if (c.eat("*(")) {
    c.reset(c.pos() - 2);
    load(c, dst);
    return;
  }
  mark = c.pos();
  std::string word = c.ident();
  if (!word.empty()) {
    for (const OpInfo& row : isa::op_table()) {
      if (row.kind == Kind::End && asmtext::lower_name(row) == word) {
        if (c.expect_reg().num != dst.num) c.fail("byte swaps are in place: dst = be16 dst");
        emit(make(row, dst.num, 0, 0, row.dval));
        return;
      }
    }
    for (uint8_t src = 1; src <= 6; ++src)
      if (asmtext::lddw_pseudo_name(src) == word) return lddw_pseudo(c, dst, src);
    if (word.rfind("atomic_fetch_", 0) == 0 || word.rfind("xchg", 0) == 0 || word.rfind("cmpxchg", 0) == 0)
      return atomic_call(c, dst, word);
    c.reset(mark);
  }
  if (auto src = c.reg()) {
    const OpInfo& row = find_row(
        [&](const OpInfo& r) {
          return r.kind == Kind::Alu && isa::is_alu64(r.opcode) == is64 && isa::uses_src_reg(r.opcode) &&
                 isa::alu_operator(r.opcode, 0) == "=";
        },
        c, "move");
    emit(make(row, dst.num, src->num, 0, 0));
    return;
  }
  i128 v = c.expect_number();
  if (c.eat("ll")) {
    if (!is64) c.fail("lddw loads a 64-bit register");
    if (v < INT64_MIN || v > static_cast<i128>(UINT64_MAX)) c.fail("immediate does not fit in 64 bits");
    auto u = static_cast<uint64_t>(v);  // i128 -> u64 is modulo 2^64: negative values keep their bits
    emit(make(isa::info(isa::Op::LDDW), dst.num, 0, 0, static_cast<int32_t>(static_cast<uint32_t>(u))));
    emit(Insn{isa::Op::LDDW_HI, 0, 0, 0, 0, static_cast<int32_t>(static_cast<uint32_t>(u >> 32))});
    return;
  }
  const OpInfo& row = find_row(
      [&](const OpInfo& r) {
        return r.kind == Kind::Alu && isa::is_alu64(r.opcode) == is64 && !isa::uses_src_reg(r.opcode) &&
               isa::alu_operator(r.opcode, 0) == "=";
      },
      c, "move");
  emit(make(row, dst.num, 0, 0, imm32(v, c)));
}

void Assembler::statement(Cursor& c) {
  if (c.eat("exit")) return emit(make(isa::info(isa::Op::EXIT), 0, 0, 0, 0));
  if (c.eat("gotol")) return jump_target(c, true, make(isa::info(isa::Op::JA32), 0, 0, 0, 0));
  if (c.eat("goto")) return jump_target(c, false, make(isa::info(isa::Op::JA), 0, 0, 0, 0));
  if (c.eat("callx")) {
    Reg r = c.expect_reg();
    return emit(make(isa::info(isa::Op::CALLX), r.num, 0, 0, 0));
  }
  if (c.eat("call")) {
    if (c.eat("kfunc")) return emit(make(isa::info(isa::Op::CALL_KFUNC), 0, 2, 0, imm32(c.expect_number(), c)));
    if (c.eat("pc")) return jump_target(c, true, make(isa::info(isa::Op::CALL_LOCAL), 0, 1, 0, 0));
    if (auto n = c.number()) return emit(make(isa::info(isa::Op::CALL), 0, 0, 0, imm32(*n, c)));
    return jump_target(c, true, make(isa::info(isa::Op::CALL_LOCAL), 0, 1, 0, 0));
  }
  if (c.eat("if")) {
    Reg dst = c.expect_reg();
    static const char* const kCmps[] = {"s>=", "s<=", "s>", "s<", "==", "!=", ">=", "<=", ">", "<", "&"};
    const char* cmp = nullptr;
    for (const char* k : kCmps)
      if (c.eat(k)) {
        cmp = k;
        break;
      }
    if (!cmp) c.fail("expected a comparison");
    auto src = c.reg();
    int32_t imm = src ? 0 : imm32(c.expect_number(), c);
    c.expect("goto");
    bool is32 = dst.width == 'w';
    const OpInfo& row = find_row(
        [&](const OpInfo& r) {
          return r.kind == Kind::Jcond && isa::is_jmp32(r.opcode) == is32 && isa::uses_src_reg(r.opcode) == src.has_value() &&
                 isa::jump_operator(r.opcode) == cmp;
        },
        c, "comparison");
    return jump_target(c, false, make(row, dst.num, src ? src->num : 0, 0, imm));
  }
  if (c.eat("lock")) {
    char sign;
    unsigned size = size_spec(c, sign);
    uint8_t base;
    int16_t off;
    memory_ref(c, base, off);
    static const char* const kAops[] = {"+=", "|=", "&=", "^="};
    for (const char* op : kAops) {
      if (!c.eat(op)) continue;
      Reg src = c.expect_reg();
      const OpInfo& row = find_row(
          [&](const OpInfo& r) {
            return r.kind == Kind::Atomic && isa::mem_size(r.opcode) == size && !(r.dval & isa::kAtomicFetch) &&
                   isa::atomic_operator(r.dval) == op;
          },
          c, "atomic size");
      return emit(make(row, base, src.num, off, row.dval));
    }
    c.fail("expected +=, |=, &= or ^=");
  }
  if (c.eat("*(")) {  // store
    c.reset(c.pos() - 2);
    char sign;
    unsigned size = size_spec(c, sign);
    uint8_t base;
    int16_t off;
    memory_ref(c, base, off);
    c.expect("=");
    auto src = c.reg();
    Kind kind = src ? Kind::Stx : Kind::St;
    const OpInfo& row =
        find_row([&](const OpInfo& r) { return r.kind == kind && isa::mem_size(r.opcode) == size; }, c, "store size");
    return emit(make(row, base, src ? src->num : 0, off, src ? 0 : imm32(c.expect_number(), c)));
  }
  if (auto dst = c.reg()) return alu(c, *dst);
  c.fail("unknown instruction");
}

std::string_view strip_comment(std::string_view line) {
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == ';' || line[i] == '#' || (line[i] == '/' && i + 1 < line.size() && line[i + 1] == '/'))
      return line.substr(0, i);
  }
  return line;
}

Result<std::vector<uint8_t>> Assembler::run(std::string_view text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    start = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_;
    Cursor c(strip_comment(line));
    try {
      // "12:" (an index as the disassembler prints it) or "name:" (a label), possibly several.
      for (;;) {
        size_t mark = c.pos();
        c.ws();
        std::string word = c.ident();
        if (word.empty()) {
          if (c.number() && c.eat(":")) continue;
          c.reset(mark);
          break;
        }
        if (!c.eat(":")) {
          c.reset(mark);
          break;
        }
        if (labels_.count(word)) throw ParseError{"duplicate label '" + word + "'"};
        labels_[word] = out_.size();
      }
      if (c.done()) continue;
      statement(c);
      if (!c.done()) c.fail("unexpected text");
    } catch (const ParseError& e) {
      Error err = make_error(Errc::AssemblyError, e.message);
      err.where.line = line_;
      err.where.source = std::string(line);
      return err;
    }
  }
  for (const Fixup& f : fixups_) {
    auto it = labels_.find(f.label);
    Error err = make_error(Errc::AssemblyError, "");
    err.where.line = f.line;
    if (it == labels_.end()) {
      err.message = "unknown label '" + f.label + "'";
      return err;
    }
    int64_t rel = static_cast<int64_t>(it->second) - static_cast<int64_t>(f.slot) - 1;
    if (f.in_imm) {
      out_[f.slot].imm = static_cast<int32_t>(rel);
    } else if (rel < INT16_MIN || rel > INT16_MAX) {
      err.message = "jump to '" + f.label + "' is too far for a 16-bit offset (use gotol)";
      return err;
    } else {
      out_[f.slot].off = static_cast<int16_t>(rel);
    }
  }
  if (out_.empty()) return make_error(Errc::AssemblyError, "no instructions");
  return isa::encode(out_);
}

}  // namespace

Result<std::vector<uint8_t>> assemble(std::string_view text) {
  Assembler a;
  return a.run(text);
}

}  // namespace ebpfvm
