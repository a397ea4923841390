// The AArch64 JIT backend. eBPF registers live in host registers chosen so that AAPCS64 does the
// work of eBPF's calling convention: r1-r5 are x0-x4 (a helper call is a plain call), r6-r9 are
// callee-saved x19-x22, r10 is x25 (callee-saved), and r0 is x7, which a call's result is moved
// into (x0 is r1). Every BPF function is a native function (x0 returns r0 to a host caller) that
// saves the frame record only if it calls, the callee-saved pairs it uses, and has a 512-byte
// stack only if it uses r10. Scratch: x9-x13; x26 keeps the context across a tail call's lookup.
//
// AArch64 division already gives eBPF's results (x / 0 = 0, x % 0 = x through msub, INT_MIN / -1 =
// INT_MIN, INT_MIN % -1 = 0), and register shifts already take the count modulo the width. Atomics
// use the LSE instructions when the CPU has them (ARMv8.1), exclusive-load/store loops otherwise,
// chosen when the program is compiled. Host code is called through a register (blr): no reach
// limits, so the code memory can be anywhere.
#ifndef EBPFVM_NO_ASMJIT
#include <asmjit/arm/a64assembler.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include <bit>
#include <random>

#include "ebpfvm/jit.hpp"
#include "helpers/builtin.hpp"
#include "jit/backend.hpp"
#include "jit/image.hpp"
#include "maps/map_impl.hpp"
#include "runtime/bindings.hpp"

namespace ebpfvm::jit {

using detail::JitImage;

namespace {

using namespace asmjit;
using a64::Gp;

const Gp kReg[11] = {a64::x7, a64::x0, a64::x1, a64::x2, a64::x3, a64::x4, a64::x19, a64::x20, a64::x21, a64::x22, a64::x25};
const Gp kT0 = a64::x9, kT1 = a64::x10, kT2 = a64::x11, kT3 = a64::x12, kT4 = a64::x13;
const Gp kCtx = a64::x26;  // r1 across a tail call's lookup

// Whether this CPU has the ARMv8.1 atomics (LSE). Code for AArch64 compiled elsewhere assumes it.
bool has_lse() {
#if defined(__aarch64__)
  static const bool lse = (getauxval(AT_HWCAP) & (1ul << 8)) != 0;  // HWCAP_ATOMICS
  return lse;
#else
  return true;
#endif
}

Gp w(const Gp& r) { return r.w(); }
Gp sized(const Gp& r, bool w64) { return w64 ? Gp(r.x()) : Gp(r.w()); }

class Compiler {
 public:
  Compiler(const isa::Program& p, const HelperRegistry& h, const JitOptions& o, JitImage& img)
      : own_(p), p_(own_), helpers_(h), opts_(o), img_(img), lse_(has_lse()) {
    if (o.blind_constants) rng_.seed(std::random_device{}());
  }

  Result<void> compile() {
    FrontEnd fe = front_end(own_, inline_entries(helpers_, img_), nullptr, nullptr);
    facts_.emplace(std::move(*fe.facts));
    img_.stats.folded += fe.folded;
    img_.stats.unrolled_loops = fe.unrolled;
    code_.init(asmjit::Environment(asmjit::Arch::kAArch64));
    code_.setErrorHandler(&errors_);
    a_ = std::make_unique<a64::Assembler>(&code_);
    if (!a_->isInitialized())  // asmjit built for this host only (ASMJIT_NO_FOREIGN)
      return make_error(Errc::Unsupported, "JIT: this build of asmjit has no AArch64 assembler (it was built for its host's CPU only)");
    // b.cond and cbz reach +-1 MiB: past that (a program this long may emit more) a condition
    // skips over an unconditional branch, which reaches +-128 MiB.
    long_branches_ = p_.insns.size() > 20000;
    for (size_t i = 0; i < p_.insns.size(); ++i) insn_labels_.push_back(a_->newLabel());
    for (size_t i = 0; i < p_.functions.size(); ++i) func_labels_.push_back(a_->newLabel());
    for (size_t f = 0; f < p_.functions.size(); ++f)
      if (auto r = function(f); !r) return r;
    if (errors_.first != kErrorOk)
      return make_error(Errc::Unsupported, std::string("JIT (aarch64): asmjit: ") + DebugUtils::errorAsString(errors_.first) + ": " +
                                               errors_.message);
    std::vector<Label> callbacks;
    for (size_t t : callback_functions_) callbacks.push_back(func_labels_[t]);
    auto base = install(code_, img_, func_labels_[0], callbacks, nullptr);
    if (!base) return base.error();
    return {};
  }

 private:
  // ---- functions and frames ----

  struct Frame {
    std::vector<std::pair<Gp, Gp>> pairs;  // callee-saved pairs, in push order
    bool stack = false;                    // r10 is used: a 512-byte BPF stack below x25
    bool record = false;                   // it calls: the frame record (x29, x30) is saved
  };

  Frame frame_of(const isa::Function& fn) const {
    bool used[11] = {}, tail = false, calls = false;
    for (size_t pc = fn.entry; pc < fn.end; ++pc) {
      const isa::Insn& in = p_.insns[pc];
      used[in.dst] = used[in.src] = true;  // conservative: some forms use these fields otherwise
      tail = tail || is_tail_call(helpers_, in);
      const isa::Kind k = info(in.op).kind;
      calls = calls || k == isa::Kind::Call || k == isa::Kind::CallLocal || k == isa::Kind::Callx || k == isa::Kind::LdAbs ||
              k == isa::Kind::LdInd;
    }
    Frame f;
    f.stack = used[10];
    f.record = calls;  // a leaf keeps its return address in x30 throughout
    if (used[6] || used[7]) f.pairs.emplace_back(a64::x19, a64::x20);
    if (used[8] || used[9]) f.pairs.emplace_back(a64::x21, a64::x22);
    if (used[10] || tail) f.pairs.emplace_back(a64::x25, a64::x26);
    return f;
  }

  void prologue(const Frame& f) {
    a64::Assembler& a = *a_;
    if (f.record) {
      a.stp(a64::x29, a64::x30, a64::ptr_pre(a64::sp, -16));
      a.mov(a64::x29, a64::sp);
    }
    for (const auto& [lo, hi] : f.pairs) a.stp(lo, hi, a64::ptr_pre(a64::sp, -16));
    if (f.stack) {
      a.mov(kReg[10], a64::sp);
      a.sub(a64::sp, a64::sp, isa::kStackSize);
    }
  }

  // Restores the caller's registers and stack; `ret` or a tail call's jump follows.
  void unwind(const Frame& f) {
    a64::Assembler& a = *a_;
    if (f.stack) a.add(a64::sp, a64::sp, isa::kStackSize);
    for (auto p = f.pairs.rbegin(); p != f.pairs.rend(); ++p) a.ldp(p->first, p->second, a64::ptr_post(a64::sp, 16));
    if (f.record) a.ldp(a64::x29, a64::x30, a64::ptr_post(a64::sp, 16));
  }

  Result<void> function(size_t fi) {
    a64::Assembler& a = *a_;
    const isa::Function& fn = p_.functions[fi];
    frame_ = frame_of(fn);
    function_end_ = fn.end;
    a.bind(func_labels_[fi]);
    prologue(frame_);
    epilogue_ = a.newLabel();
    for (size_t pc = fn.entry; pc < fn.end; ++pc) {
      a.bind(insn_labels_[pc]);
      if (facts_->is_block(pc)) now_ = facts_->at_block(pc);
      if (auto r = insn(pc); !r) return r;
      facts_->step(now_, pc);
      if (info(p_.insns[pc].op).kind == isa::Kind::Lddw) ++pc;
    }
    a.bind(epilogue_);
    a.mov(a64::x0, kReg[0]);
    unwind(frame_);
    a.ret(a64::x30);
    return {};
  }

  // ---- constants (blinded on request: then no program-chosen bits appear in the code) ----

  // d = v with movz/movn and movk, 16 bits at a time.
  void mov_imm(const Gp& d, uint64_t v) {
    a64::Assembler& a = *a_;
    const unsigned chunks = d.isGpX() ? 4 : 2;
    if (!d.isGpX()) v &= 0xffffffff;
    unsigned ones = 0, zeros = 0;
    for (unsigned i = 0; i < chunks; ++i) {
      ones += ((v >> (16 * i)) & 0xffff) == 0xffff;
      zeros += ((v >> (16 * i)) & 0xffff) == 0;
    }
    const bool inverted = ones > zeros;  // movn, then movk for the chunks that are not all ones
    const uint64_t skip = inverted ? 0xffff : 0;
    bool first = true;
    for (unsigned i = 0; i < chunks; ++i) {
      const uint64_t c = (v >> (16 * i)) & 0xffff;
      if (c == skip) continue;
      if (first) inverted ? a.movn(d, (~c) & 0xffff, 16 * i) : a.movz(d, c, 16 * i);
      else a.movk(d, c, 16 * i);
      first = false;
    }
    if (first) inverted ? a.movn(d, 0, 0) : a.movz(d, 0, 0);
  }

  // A constant the program chose, into d (blinded when asked).
  void program_imm(const Gp& d, uint64_t v) {
    if (!opts_.blind_constants) {
      mov_imm(d, v);
      return;
    }
    ++img_.stats.blinded_constants;
    const uint64_t k = d.isGpX() ? rng_() : static_cast<uint32_t>(rng_());
    mov_imm(d, v ^ k);
    mov_imm(sized(kT4, d.isGpX()), k);
    a_->eor(d, d, sized(kT4, d.isGpX()));
  }

  // The immediate of a 32- or 64-bit operation, in a scratch register.
  Gp imm_reg(int32_t imm, bool w64, const Gp& scratch = kT0) {
    const Gp r = sized(scratch, w64);
    program_imm(r, w64 ? static_cast<uint64_t>(int64_t{imm}) : static_cast<uint32_t>(imm));
    return r;
  }

  // An immediate short enough for add/sub/cmp's 12-bit field (never with blinding).
  bool imm12(int64_t v) const { return !opts_.blind_constants && v >= 0 && v < 4096; }

  // ---- instructions ----

  void alu(const isa::Insn& in) {
    a64::Assembler& a = *a_;
    const bool w64 = isa::is_alu64(in.opcode), x = isa::uses_src_reg(in.opcode);
    const uint8_t op = isa::op_code(in.opcode);
    const Gp D = sized(kReg[in.dst], w64);
    if (op == 0x60 || op == 0x70 || op == 0xc0) return shift(in, D, w64, x);
    if (op == 0xb0) {  // mov
      if (x) a.mov(D, sized(kReg[in.src], w64));
      else program_imm(D, w64 ? static_cast<uint64_t>(int64_t{in.imm}) : static_cast<uint32_t>(in.imm));
      return;
    }
    const int64_t k = w64 ? int64_t{in.imm} : int64_t{static_cast<uint32_t>(in.imm)};
    if (!x && (op == 0x00 || op == 0x10) && imm12(k)) {
      op == 0x00 ? a.add(D, D, k) : a.sub(D, D, k);
      return;
    }
    const Gp S = x ? sized(kReg[in.src], w64) : imm_reg(in.imm, w64);
    const bool sign = in.off == 1;
    switch (op) {
      case 0x00: a.add(D, D, S); break;
      case 0x10: a.sub(D, D, S); break;
      case 0x20: a.mul(D, D, S); break;
      case 0x40: a.orr(D, D, S); break;
      case 0x50: a.and_(D, D, S); break;
      case 0xa0: a.eor(D, D, S); break;
      case 0x30: sign ? a.sdiv(D, D, S) : a.udiv(D, D, S); break;  // x / 0 = 0, INT_MIN / -1 = INT_MIN
      case 0x90: {                                                   // x - (x / y) * y: x % 0 = x
        const Gp q = sized(kT1, w64);
        sign ? a.sdiv(q, D, S) : a.udiv(q, D, S);
        a.msub(D, q, S, D);
        break;
      }
      default: break;
    }
  }

  void shift(const isa::Insn& in, const Gp& D, bool w64, bool x) {
    a64::Assembler& a = *a_;
    const uint8_t op = isa::op_code(in.opcode);
    if (x) {  // the count modulo the width, as eBPF masks it
      const Gp S = sized(kReg[in.src], w64);
      if (op == 0x60) a.lsl(D, D, S);
      else if (op == 0x70) a.lsr(D, D, S);
      else a.asr(D, D, S);
      return;
    }
    // A shift count is one masked number, not a constant worth blinding.
    const uint32_t n = static_cast<uint32_t>(in.imm) & (w64 ? 63 : 31);
    if (op == 0x60) a.lsl(D, D, n);
    else if (op == 0x70) a.lsr(D, D, n);
    else a.asr(D, D, n);
  }

  void end(const isa::Insn& in) {
    a64::Assembler& a = *a_;
    const Gp D = kReg[in.dst];
    const bool swap = in.op == isa::Op::BE16 || in.op == isa::Op::BE32 || in.op == isa::Op::BE64 || in.op == isa::Op::BSWAP16 ||
                      in.op == isa::Op::BSWAP32 || in.op == isa::Op::BSWAP64;
    if (in.imm == 16) {
      if (swap) a.rev16(w(D), w(D));
      a.uxth(w(D), w(D));
    } else if (in.imm == 32) {
      if (swap) a.rev(w(D), w(D));
      else a.mov(w(D), w(D));
    } else if (swap) {
      a.rev(D, D);
    }
  }

  void movsx(const isa::Insn& in) {
    a64::Assembler& a = *a_;
    const bool w64 = isa::is_alu64(in.opcode);
    const Gp D = sized(kReg[in.dst], w64), S = w(kReg[in.src]);
    if (in.off == 8) a.sxtb(D, S);
    else if (in.off == 16) a.sxth(D, S);
    else if (w64) a.sxtw(D, S);
    else a.mov(D, S);  // a 32-bit move sign-extending 32 bits is a move
  }

  // base + off as a memory operand of `size` bytes: an immediate offset where one encodes,
  // else the offset in kT3.
  a64::Mem mem(const Gp& base, int32_t off, unsigned size) {
    const bool unscaled = off >= -256 && off < 256;
    const bool scaled = off >= 0 && off % static_cast<int32_t>(size) == 0 && off / static_cast<int32_t>(size) < 4096;
    if (unscaled || scaled) return a64::ptr(base, off);
    mov_imm(kT3, static_cast<uint64_t>(int64_t{off}));
    return a64::ptr(base, kT3);
  }

  void load(const isa::Insn& in) {
    a64::Assembler& a = *a_;
    const unsigned size = isa::mem_size(in.opcode);
    const a64::Mem m = mem(kReg[in.src], in.off, size);
    const Gp D = kReg[in.dst];
    if (isa::is_sign_extending_load(in.opcode)) {
      if (size == 1) a.ldrsb(D, m);
      else if (size == 2) a.ldrsh(D, m);
      else a.ldrsw(D, m);
      return;
    }
    switch (size) {
      case 1: a.ldrb(w(D), m); break;
      case 2: a.ldrh(w(D), m); break;
      case 4: a.ldr(w(D), m); break;
      default: a.ldr(D, m); break;
    }
  }

  void store(const Gp& v, unsigned base, int16_t off, unsigned size) {
    a64::Assembler& a = *a_;
    const a64::Mem m = mem(kReg[base], off, size);
    switch (size) {
      case 1: a.strb(w(v), m); break;
      case 2: a.strh(w(v), m); break;
      case 4: a.str(w(v), m); break;
      default: a.str(v.x(), m); break;
    }
  }

  void store_imm(const isa::Insn& in) {
    const unsigned size = isa::mem_size(in.opcode);
    if (in.imm == 0 && !opts_.blind_constants) return store(a64::xzr, in.dst, in.off, size);
    store(imm_reg(in.imm, size == 8), in.dst, in.off, size);
  }

  // ---- atomics ----

  // kT1 = dst + off, the address an atomic works on.
  void atomic_address(const isa::Insn& in) {
    a64::Assembler& a = *a_;
    const Gp B = kReg[in.dst];
    if (in.off >= 0 && in.off < 4096) a.add(kT1, B, in.off);
    else if (in.off < 0 && in.off > -4096) a.sub(kT1, B, -in.off);
    else {
      mov_imm(kT1, static_cast<uint64_t>(int64_t{in.off}));
      a.add(kT1, kT1, B);
    }
  }

  void atomic(const isa::Insn& in) {
    const unsigned size = isa::mem_size(in.opcode);
    atomic_address(in);
    lse_ ? atomic_lse(in, size == 8) : atomic_exclusive(in, size == 8);
  }

  void atomic_lse(const isa::Insn& in, bool w64) {
    a64::Assembler& a = *a_;
    const a64::Mem at = a64::ptr(kT1);
    const Gp S = sized(kReg[in.src], w64), zr = w64 ? Gp(a64::xzr) : Gp(a64::wzr);
    const int32_t op = in.imm;
    if (op == isa::kAtomicCmpxchg) {  // r0 = old value (zero-extended), stored only if it equalled r0
      const Gp old = sized(kT2, w64);
      a.mov(old, sized(kReg[0], w64));
      a.casal(old, S, at);
      a.mov(sized(kReg[0], w64), old);
      return;
    }
    if (op == isa::kAtomicXchg) {
      a.swpal(S, S, at);
      return;
    }
    const bool fetch = op & isa::kAtomicFetch;
    const Gp out = fetch ? S : zr;
    switch (op & ~isa::kAtomicFetch) {
      case 0x00: a.ldaddal(S, out, at); break;
      case 0x40: a.ldsetal(S, out, at); break;
      case 0xa0: a.ldeoral(S, out, at); break;
      default: {  // and: clear the bits that are clear in src
        const Gp inv = sized(kT2, w64);
        a.mvn(inv, S);
        a.ldclral(inv, out, at);
        break;
      }
    }
  }

  // ARMv8.0: a load-exclusive/store-exclusive loop, then a full barrier (the kernel's sequence).
  void atomic_exclusive(const isa::Insn& in, bool w64) {
    a64::Assembler& a = *a_;
    const a64::Mem at = a64::ptr(kT1);
    const Gp S = sized(kReg[in.src], w64), old = sized(kT2, w64), next = sized(kT3, w64), status = sized(kT4, w64);
    const int32_t op = in.imm;
    Label again = a.newLabel(), done = a.newLabel();
    a.bind(again);
    a.ldaxr(old, at);
    if (op == isa::kAtomicCmpxchg) {
      a.cmp(old, sized(kReg[0], w64));
      a.b_ne(done);
      a.stlxr(status, S, at);
    } else if (op == isa::kAtomicXchg) {
      a.stlxr(status, S, at);
    } else {
      switch (op & ~isa::kAtomicFetch) {
        case 0x00: a.add(next, old, S); break;
        case 0x40: a.orr(next, old, S); break;
        case 0x50: a.and_(next, old, S); break;
        default: a.eor(next, old, S); break;
      }
      a.stlxr(status, next, at);
    }
    a.cbnz(w(status), again);
    a.bind(done);
    a.dmb(Imm(0xb));  // ish
    if (op == isa::kAtomicCmpxchg) a.mov(sized(kReg[0], w64), old);
    else if (op == isa::kAtomicXchg || (op & isa::kAtomicFetch)) a.mov(S, old);
  }

  // ---- jumps ----

  // The condition under which `dst OP src` holds after cmp/tst.
  static arm::CondCode cond(uint8_t op) {
    switch (op) {
      case 0x10: return arm::CondCode::kEQ;
      case 0x20: return arm::CondCode::kHI;
      case 0x30: return arm::CondCode::kHS;
      case 0x40: return arm::CondCode::kNE;  // tst: some bit in common
      case 0x50: return arm::CondCode::kNE;
      case 0x60: return arm::CondCode::kGT;
      case 0x70: return arm::CondCode::kGE;
      case 0xa0: return arm::CondCode::kLO;
      case 0xb0: return arm::CondCode::kLS;
      case 0xc0: return arm::CondCode::kLT;
      default: return arm::CondCode::kLE;
    }
  }

  void branch_if(arm::CondCode cc, const Label& target) {
    a64::Assembler& a = *a_;
    if (!long_branches_) {
      a.b(cc, target);
      return;
    }
    Label skip = a.newLabel();
    a.b(arm::negateCond(cc), skip);
    a.b(target);
    a.bind(skip);
  }

  void jcond(const isa::Insn& in, size_t pc) {
    a64::Assembler& a = *a_;
    const bool w64 = !isa::is_jmp32(in.opcode), x = isa::uses_src_reg(in.opcode);
    const uint8_t op = isa::op_code(in.opcode);
    const Gp D = sized(kReg[in.dst], w64);
    const Label& target = insn_labels_[static_cast<size_t>(isa::jump_target(in, pc))];
    const int64_t k = w64 ? int64_t{in.imm} : int64_t{static_cast<uint32_t>(in.imm)};
    if (!x && op != 0x40 && imm12(k)) {
      a.cmp(D, k);
    } else {
      const Gp S = x ? sized(kReg[in.src], w64) : imm_reg(in.imm, w64);
      op == 0x40 ? a.tst(D, S) : a.cmp(D, S);
    }
    branch_if(cond(op), target);
  }

  // ---- calls ----

  // Calls host code at fn (an absolute address in kT0: blr reaches anywhere).
  void call_host(const void* fn, uint32_t run_uses) {
    img_.run_uses |= run_uses;
    mov_imm(kT0, reinterpret_cast<uint64_t>(fn));
    a_->blr(kT0);
  }

  Result<void> helper_call(const isa::Insn& in, size_t pc) {
    a64::Assembler& a = *a_;
    const Helper* h = helpers_.find(static_cast<uint32_t>(in.imm));
    if (!h) return make_error_at(Errc::UnknownHelper, static_cast<uint32_t>(pc), "unknown helper " + std::to_string(in.imm));
    if (is_tail_call(helpers_, in)) {
      tail_call();
      return {};
    }
    if (inline_array_lookup(*h)) return {};
    mov_imm(a64::x5, reinterpret_cast<uint64_t>(h->user));
    call_host(reinterpret_cast<const void*>(h->fn), detail::run_uses(h->fn));
    a.mov(kReg[0], a64::x0);
    return {};
  }

  // bpf_tail_call(ctx, map, index): on success the caller's frame is gone and the target starts
  // as if called with r1 = ctx; otherwise execution goes on after the call with r0 = 0.
  void tail_call() {
    a64::Assembler& a = *a_;
    Label cont = a.newLabel();
    a.mov(kCtx, a64::x0);
    a.mov(a64::x0, a64::x1);
    a.mov(a64::x1, a64::x2);
    call_host(reinterpret_cast<const void*>(&rt_tail_target), detail::run_use::kEverything);  // the target may use anything
    a.mov(kReg[0], a64::x0);  // a failed tail call leaves r0 = 0, as the interpreter does
    a.cbz(a64::x0, cont);
    a.mov(kT1, a64::x0);
    a.mov(a64::x0, kCtx);
    unwind(frame_);
    a.br(kT1);
    a.bind(cont);
  }

  detail::MapImpl* r1_map() const {
    const int32_t m = now_.map[1];
    return m >= 0 && static_cast<size_t>(m) < img_.bindings.maps.size() ? img_.bindings.maps[static_cast<size_t>(m)].get() : nullptr;
  }

  // bpf_map_lookup_elem on a plain array map known here, as the kernel inlines it:
  // r0 = key < max_entries ? base + key * stride : 0, branch-free.
  bool inline_array_lookup(const Helper& h) {
    detail::MapImpl* map = r1_map();
    if (!inlinable_lookup(h, map)) return false;
    a64::Assembler& a = *a_;
    const uint32_t stride = map->value_stride();
    a.ldr(w(kT0), a64::ptr(kReg[2]));  // the u32 key r2 points at
    mov_imm(kT1, reinterpret_cast<uint64_t>(detail::array_base(*map)));
    if (std::has_single_bit(stride)) {
      a.add(kT2, kT1, kT0, arm::lsl(static_cast<uint32_t>(std::countr_zero(stride))));
    } else {
      mov_imm(kT3, stride);
      a.madd(kT2, kT0, kT3, kT1);
    }
    mov_imm(w(kT3), map->spec().max_entries);
    a.cmp(w(kT0), w(kT3));
    a.csel(kReg[0], kT2, a64::xzr, Imm(static_cast<uint32_t>(arm::CondCode::kLO)));
    ++img_.stats.inlined_lookups;
    return true;
  }

  // LD_ABS/LD_IND: rt_ld(offset, size) returns the value and whether it was in the packet; out of
  // bounds the program ends with r0 = 0.
  void ld_packet(const isa::Insn& in) {
    a64::Assembler& a = *a_;
    if (info(in.op).kind == isa::Kind::LdInd) {
      const Gp off = imm_reg(in.imm, false, kT1);
      a.add(a64::w0, w(kReg[in.src]), off);  // 32-bit: wraps as the interpreter's offset does
    } else {
      program_imm(a64::w0, static_cast<uint32_t>(in.imm));
    }
    mov_imm(a64::x1, isa::mem_size(in.opcode));
    call_host(reinterpret_cast<const void*>(&rt_ld), detail::run_use::kPacket);
    a.mov(kReg[0], a64::x0);
    if (long_branches_) {
      Label ok = a.newLabel();
      a.cbnz(a64::x1, ok);
      a.b(epilogue_);
      a.bind(ok);
    } else {
      a.cbz(a64::x1, epilogue_);
    }
  }

  Result<void> lddw(const isa::Insn& in, size_t pc) {
    if (in.op == isa::Op::LDDW_CODE) {
      const size_t target = static_cast<size_t>(isa::jump_target(in, pc));
      size_t f = 0;
      while (f < p_.functions.size() && p_.functions[f].entry != target) ++f;
      if (f == p_.functions.size()) f = 0;
      callback_functions_.push_back(f);
      a_->adr(kReg[in.dst], func_labels_[f]);
      return {};
    }
    auto v = detail::resolve_lddw(p_, pc, img_.bindings, img_.regions);
    if (!v) return v.error();
    // Array values (global data) never go away; a map itself hands out elements that may.
    if (in.op == isa::Op::LDDW_MAP_FD || in.op == isa::Op::LDDW_MAP_IDX) img_.uses_maps = true;
    if (in.op == isa::Op::LDDW) program_imm(kReg[in.dst], *v);
    else mov_imm(kReg[in.dst], *v);  // an address the program did not choose
    return {};
  }

  Result<void> insn(size_t pc) {
    a64::Assembler& a = *a_;
    const isa::Insn& in = p_.insns[pc];
    switch (info(in.op).kind) {
      case isa::Kind::Alu: alu(in); break;
      case isa::Kind::Neg: {
        const Gp D = sized(kReg[in.dst], isa::is_alu64(in.opcode));
        a.neg(D, D);
        break;
      }
      case isa::Kind::End: end(in); break;
      case isa::Kind::MovSx: movsx(in); break;
      case isa::Kind::Ja: a.b(insn_labels_[static_cast<size_t>(isa::jump_target(in, pc))]); break;
      case isa::Kind::Jcond: jcond(in, pc); break;
      case isa::Kind::Exit:
        if (pc + 1 != function_end_) a.b(epilogue_);  // the last slot falls through into it
        break;
      case isa::Kind::CallLocal: {
        const size_t target = static_cast<size_t>(isa::jump_target(in, pc));
        size_t f = 0;
        while (f < p_.functions.size() && p_.functions[f].entry != target) ++f;
        a.bl(func_labels_[f < p_.functions.size() ? f : 0]);  // r0 comes back in x7 (and x0)
        break;
      }
      case isa::Kind::Call: return helper_call(in, pc);
      case isa::Kind::Callx:
        a.mov(a64::x6, kReg[in.dst]);  // before x5: dst may be any register
        mov_imm(a64::x5, reinterpret_cast<uint64_t>(&img_));
        call_host(reinterpret_cast<const void*>(&rt_callx), detail::run_use::kEverything);
        a.mov(kReg[0], a64::x0);
        break;
      case isa::Kind::CallKfunc:
        return make_error_at(Errc::Unsupported, static_cast<uint32_t>(pc),
                             "call to kernel function (BTF id " + std::to_string(in.imm) + ") is not supported");
      case isa::Kind::Lddw: return lddw(in, pc);
      case isa::Kind::LdAbs: case isa::Kind::LdInd: ld_packet(in); break;
      case isa::Kind::Ldx: load(in); break;
      case isa::Kind::St: store_imm(in); break;
      case isa::Kind::Stx: store(kReg[in.src], in.dst, in.off, isa::mem_size(in.opcode)); break;
      case isa::Kind::Atomic: atomic(in); break;
    }
    return {};
  }

  isa::Program own_;
  const isa::Program& p_;
  const HelperRegistry& helpers_;
  const JitOptions opts_;
  JitImage& img_;
  const bool lse_;
  std::mt19937_64 rng_;
  CodeHolder code_;
  std::unique_ptr<a64::Assembler> a_;
  std::vector<Label> insn_labels_, func_labels_;
  std::vector<size_t> callback_functions_;
  Frame frame_;
  size_t function_end_ = 0;
  Label epilogue_;
  bool long_branches_ = false;
  std::optional<Facts> facts_;
  State now_ = State::entry();  // what holds before the instruction being compiled
  // The first error asmjit reports (an operand it cannot encode, a branch out of reach).
  struct Errors : ErrorHandler {
    asmjit::Error first = kErrorOk;
    std::string message;
    void handleError(asmjit::Error err, const char* msg, BaseEmitter*) override {
      if (first != kErrorOk) return;
      first = err;
      message = msg ? msg : "";
    }
  } errors_;
};

}  // namespace

Result<void> compile_a64(const isa::Program& prog, const HelperRegistry& helpers, const JitOptions& options, JitImage& img) {
  Compiler c(prog, helpers, options, img);
  return c.compile();
}

}  // namespace ebpfvm::jit
#endif
