// The x86-64 JIT. eBPF registers live in host registers, chosen so that the SysV calling
// convention does the work of eBPF's: r1-r5 are the first five argument registers (a helper call
// is a plain call), r0 is rax (the return value), r6-r9 are callee-saved, r10 is rbp.
// r10/r11 of the host are scratch, r12 too (saved when used). Every BPF function (the program,
// each subprogram) is a native function that saves only the callee-saved registers it uses and
// has a 512-byte stack only if it uses r10, so a small program costs a call and a return; a tail
// call unwinds the caller's frame and jumps to the target's entry.
#ifndef EBPFVM_NO_ASMJIT  // the Python extension's copy of the library: Debian's asmjit is not position-independent
#include <asmjit/x86.h>
#endif

#include <algorithm>
#include <bit>
#include <functional>
#include <optional>
#include <random>

#include "ebpfvm/jit.hpp"
#include "helpers/builtin.hpp"
#include "jit/backend.hpp"
#include "jit/facts.hpp"
#include "jit/image.hpp"
#include "jit/rewrite.hpp"
#include "maps/map_impl.hpp"
#include "runtime/bindings.hpp"

#ifndef EBPFVM_NO_ASMJIT
namespace ebpfvm::jit {

using detail::JitImage;

namespace {

using namespace asmjit;

const x86::Gp kReg[11] = {x86::rax, x86::rdi, x86::rsi, x86::rdx, x86::rcx, x86::r8,
                          x86::rbx, x86::r13, x86::r14, x86::r15, x86::rbp};


bool is_call(isa::Kind k) {
  return k == isa::Kind::Call || k == isa::Kind::CallLocal || k == isa::Kind::Callx || k == isa::Kind::LdAbs || k == isa::Kind::LdInd;
}

bool fetches_bitwise(const isa::Insn& in) {
  return info(in.op).kind == isa::Kind::Atomic && (in.imm & isa::kAtomicFetch) && in.imm != isa::kAtomicXchg &&
         in.imm != isa::kAtomicCmpxchg && (in.imm & ~isa::kAtomicFetch) != 0x00;
}

// What one function saves and reserves: the callee-saved registers it uses, and its stack.
struct Frame {
  std::vector<x86::Gp> saved;  // in push order
  uint32_t size = 0;           // bytes below the pushes
  bool stack = false;          // r10 is used: a 512-byte BPF stack below rbp
};

// A counted byte loop, as clang writes `for (i = i0; i != N; i++) dst[i] = src[i] OP K`:
//   head: A = B; A += I; V = *(u8 *)(A + load_off); [A += step]; [V op= K]; *(u8 *)(A + store_off) = V;
//         I += 1; if I == N goto out; goto head        (or: if I != N goto head)
struct ByteLoop {
  uint8_t base, index, addr, value;
  int32_t load_off, store_at;  // store_at: step + store_off, from the element address B + I
  uint8_t op = 0xff;           // ALU operation code, 0xff for a plain copy
  int32_t k = 0;
  int32_t end;                 // N
};

// One pass over the program: emitted twice, first to measure loop sizes, then to align them.
struct Layout {
  std::vector<uint32_t> start, end;  // code offset of each slot's first and past-last byte
};

class Compiler {
 public:
  // Compiles an equivalent rewrite of p (jit/rewrite.hpp), slot for slot.
  Compiler(const isa::Program& p, const HelperRegistry& h, const JitOptions& o, JitImage& img)
      : own_(p), p_(own_), helpers_(h), opts_(o), img_(img) {
    if (o.blind_constants) rng_.seed(std::random_device{}());  // opening the device costs more than a small compile
  }

  Result<void> compile() {
    mark_targets();
    // Byte loops are kept whole: the emitter runs them 16 bytes at a time.
    const auto vectorized = [this](size_t head) { return !opts_.blind_constants && byte_loop(head, function_end(head)).has_value(); };
    FrontEnd fe = front_end(own_, inline_entries(helpers_, img_), vectorized, [this] { mark_targets(); });
    facts_.emplace(std::move(*fe.facts));
    img_.stats.folded += fe.folded;
    unrolled_ = fe.unrolled;
    Layout first;
    if (auto r = emit(nullptr, first); !r) return r;
    measure_loops(first);
    Layout second;
    shorten_ = !opts_.blind_constants;
    if (auto r = emit(&first, second); !r) return r;
    if (errors_.first != kErrorOk && shorten_) {
      shorten_ = false;
      if (auto r = emit(&first, second); !r) return r;
    }
    if (errors_.first != kErrorOk)
      return make_error(Errc::Unsupported, std::string("JIT: asmjit: ") + DebugUtils::errorAsString(errors_.first));
    return install();
  }

 private:
  struct CallSite {
    Label after;
    uint64_t target;
  };
  // An instruction moved past a branch, and the stub that runs such instructions on a taken edge.
  struct Sunk {
    size_t pc;
    bool on_taken;
    jit::State state;  // the facts where the instruction stood
  };
  struct Stub {
    Label label;
    std::vector<Sunk> insns;
    size_t target;
  };

  x86::Gp reg(unsigned r, bool w64) const { return width(kReg[r], w64); }
  static x86::Gp width(const x86::Gp& r, bool w64) { return w64 ? x86::Gp(r.r64()) : x86::Gp(r.r32()); }

  void mark_targets() {
    target_ = isa::block_starts(p_);
    // loop_end_[pc]: the last slot of the outermost loop around pc (a back edge's source), else 0.
    std::vector<size_t> last_src(p_.insns.size(), 0);  // by loop head
    for (size_t src = 0; src < p_.insns.size(); ++src) {
      const isa::Kind k = info(p_.insns[src].op).kind;
      if (k != isa::Kind::Ja && k != isa::Kind::Jcond) continue;
      const auto head = static_cast<size_t>(isa::jump_target(p_.insns[src], src));
      if (head <= src) last_src[head] = std::max(last_src[head], src);
    }
    loop_end_.assign(p_.insns.size(), 0);
    for (size_t pc = 0, reach = 0; pc < p_.insns.size(); ++pc) {  // the furthest back edge from a head at or before pc
      reach = std::max(reach, last_src[pc]);
      if (reach >= pc) loop_end_[pc] = reach;
    }
  }

  size_t function_end(size_t pc) const {
    for (const isa::Function& f : p_.functions)
      if (pc >= f.entry && pc < f.end) return f.end;
    return p_.insns.size();
  }

  size_t function_of(size_t target) const {
    for (size_t f = 0; f < p_.functions.size(); ++f)
      if (p_.functions[f].entry == target) return f;
    return 0;
  }

  bool is_tail_call(const isa::Insn& in) const { return jit::is_tail_call(helpers_, in); }

  Frame frame_of(const isa::Function& fn) const {
    bool used[11] = {}, r12 = false, calls = false;
    for (size_t pc = fn.entry; pc < fn.end; ++pc) {
      const isa::Insn& in = p_.insns[pc];
      used[in.dst] = used[in.src] = true;  // conservative: some forms use these fields otherwise
      calls = calls || is_call(info(in.op).kind);
      r12 = r12 || is_tail_call(in) || fetches_bitwise(in);
    }
    r12 = r12 || packet_args_;  // the packet's size
    Frame f;
    f.stack = used[10];
    if (f.stack) f.saved.push_back(x86::rbp);
    if (used[6]) f.saved.push_back(x86::rbx);
    if (r12) f.saved.push_back(x86::r12);
    for (unsigned r = 7; r <= 9; ++r)
      if (used[r]) f.saved.push_back(kReg[r]);
    f.size = f.stack ? isa::kStackSize : 0;
    // Calls need rsp 16-byte aligned; at entry it is 8 off (the return address).
    if (calls && (8 + 8 * f.saved.size() + f.size) % 16 != 0) f.size += 8;
    return f;
  }

  Result<void> emit(const Layout* measured, Layout& out) {
    a_.reset();
    code_.reset();
    code_.init(asmjit::Environment(asmjit::Arch::kX64));
    errors_.first = kErrorOk;
    code_.setErrorHandler(&errors_);
    a_ = std::make_unique<x86::Assembler>(&code_);
    if (!a_->isInitialized())  // asmjit built for this host only (ASMJIT_NO_FOREIGN)
      return make_error(Errc::Unsupported, "JIT: this build of asmjit has no x86-64 assembler (it was built for its host's CPU only)");
    // Loop alignment pads with a few long nops, not up to 15 one-byte ones: the padding before an
    // inner loop's head runs every time round an outer loop.
    a_->addEncodingOptions(EncodingOptions::kOptimizedAlign);
    measured_ = measured;
    layout_ = &out;
    out.start.assign(p_.insns.size(), 0);
    out.end.assign(p_.insns.size(), 0);
    insn_labels_.clear();
    func_labels_.clear();
    pending_.reset();
    calls_.clear();
    callback_functions_.clear();
    img_.regions.clear();
    img_.stats = {};
    img_.stats.unrolled_loops = unrolled_;
    for (size_t i = 0; i < p_.insns.size(); ++i) insn_labels_.push_back(a_->newLabel());
    for (size_t i = 0; i < p_.functions.size(); ++i) func_labels_.push_back(a_->newLabel());
    // A program that loads from the packet and calls nothing takes the packet as arguments
    // (JitImage::packet_args): no run state, and its loads inlined.
    bool loads = false, calls = false;
    for (const isa::Insn& in : p_.insns) {
      const isa::Kind k = info(in.op).kind;
      loads = loads || k == isa::Kind::LdAbs || k == isa::Kind::LdInd;
      calls = calls || k == isa::Kind::Call || k == isa::Kind::CallLocal || k == isa::Kind::Callx || k == isa::Kind::CallKfunc ||
              in.op == isa::Op::LDDW_CODE;
    }
    packet_args_ = loads && !calls && p_.functions.size() == 1;
    img_.packet_args = packet_args_;
    for (size_t f = 0; f < p_.functions.size(); ++f)
      if (auto r = function(f); !r) return r;
    return {};
  }

  Result<void> install() {
    std::vector<Label> callbacks;
    for (size_t t : callback_functions_) callbacks.push_back(func_labels_[t]);
    auto base = jit::install(code_, img_, func_labels_[0], callbacks, reinterpret_cast<const void*>(&rt_ld));
    if (!base) return base.error();
    // asmjit kept a call direct (rel32) when its target was in reach, else went through a table.
    for (const CallSite& c : calls_) {
      const int64_t rel = static_cast<int64_t>(c.target - (*base + code_.labelOffsetFromBase(c.after)));
      (rel == static_cast<int32_t>(rel) ? img_.stats.direct_calls : img_.stats.table_calls)++;
    }
    return {};
  }

  // ---- functions, frames, loops ----

  void prologue(const Frame& f) {
    for (const x86::Gp& r : f.saved) a_->push(r);
    if (f.size) a_->sub(x86::rsp, f.size);
    if (f.stack) a_->lea(x86::rbp, x86::ptr(x86::rsp, isa::kStackSize));
    // packet_args: the size came as r5 (which the program may overwrite), the data in r9 (which
    // nothing else uses where there are no calls)
    if (packet_args_) a_->mov(x86::r12, x86::r8);
  }

  // Restores the caller's registers; `ret` or a tail call's jump follows.
  void unwind(const Frame& f) {
    if (f.size) a_->add(x86::rsp, f.size);
    for (auto r = f.saved.rbegin(); r != f.saved.rend(); ++r) a_->pop(*r);
  }

  Result<void> function(size_t fi) {
    x86::Assembler& a = *a_;
    const isa::Function& fn = p_.functions[fi];
    frame_ = frame_of(fn);
    a.align(AlignMode::kCode, 16);
    a.bind(func_labels_[fi]);
    prologue(frame_);
    epilogue_ = a.newLabel();
    for (size_t pc = fn.entry; pc < fn.end; ++pc) {
      if (!opts_.blind_constants)
        if (auto loop = byte_loop(pc, fn.end)) vector_prefix(*loop);
      align_loop(pc);
      a.bind(insn_labels_[pc]);
      layout_->start[pc] = static_cast<uint32_t>(a.offset());
      if (facts_->is_block(pc)) {
        now_ = facts_->at_block(pc);
        spill_.valid = false;
      }
      skipped_ = false;
      const size_t first = pc;
      if (pending_ && pending_->at == pc) {
        if (auto r = insn(pc); !r) return r;
      } else if (const size_t n = fused(pc); n > 0) {
        for (size_t last = pc + n - 1; pc < last;) {
          facts_->step(now_, pc);
          a.bind(insn_labels_[++pc]);
          layout_->start[pc] = layout_->end[pc - 1] = static_cast<uint32_t>(a.offset());
        }
      } else if (auto r = insn(pc); !r) {
        return r;
      }
      facts_->step(now_, pc);
      track_spill(first, pc);
      layout_->end[pc] = static_cast<uint32_t>(a.offset());
      if (pending_ && pending_->at <= pc)  // a load left for a compare that did not take it
        return make_error(Errc::Unsupported,
                          "JIT: internal error: byte load deferred to slot " + std::to_string(pending_->at) + " was not emitted");
      if (info(p_.insns[pc].op).kind == isa::Kind::Lddw) ++pc;
    }
    if (ret_zero_.isValid()) {  // an inlined packet load out of bounds: the program ends with r0 = 0
      a.bind(ret_zero_);
      a.xor_(x86::eax, x86::eax);
    }
    a.bind(epilogue_);
    unwind(frame_);
    a.ret();
    ret_zero_ = Label();
    for (const Stub& stub : stubs_) {
      a.bind(stub.label);
      for (const Sunk& s : stub.insns) emit_sunk(s);
      a.jmp(insn_labels_[stub.target]);
    }
    stubs_.clear();
    for (const auto& emit_cold : cold_) emit_cold();
    cold_.clear();
    return {};
  }

  // ---- instructions moved past a branch, onto the one edge that reads their result ----
  // `rX = ...; <code that neither reads rX nor changes its operands>; if ... goto T` where only
  // one edge reads rX: the instruction runs on that edge alone, after the branch or in a stub on
  // the way to T. A loop then stops computing, every time round, what only its exit reads.

  // The branch an ALU instruction at pc can move past, and whether it goes to the taken edge.
  std::optional<std::pair<size_t, bool>> sink_point(size_t pc) const {
    const isa::Insn& in = p_.insns[pc];
    const uint8_t op = isa::op_code(in.opcode);
    if (info(in.op).kind != isa::Kind::Alu || in.dst == 10 || op == 0x30 || op == 0x90) return std::nullopt;
    const jit::RegSets self = jit::regs_of(in);
    for (size_t j = pc + 1; j < p_.insns.size() && j <= pc + 6 && !target_[j]; ++j) {
      const isa::Insn& next = p_.insns[j];
      const isa::Kind k = info(next.op).kind;
      const jit::RegSets r = jit::regs_of(next);
      if (r.read & self.written) return std::nullopt;
      if (k == isa::Kind::Jcond) {
        // A stub costs a jump on its edge: only on a branch that leaves a loop, which is rarely taken.
        const auto target = static_cast<size_t>(isa::jump_target(next, j));
        const bool taken = facts_->live_at(target, in.dst);
        const bool leaves_loop = loop_end_[j] != 0 && target > loop_end_[j];
        if (taken == facts_->live_at(j + 1, in.dst) || (taken && !leaves_loop)) return std::nullopt;
        return std::pair{j, taken};
      }
      if (!jit::plain(next) || (r.written & (self.written | self.read))) return std::nullopt;
    }
    return std::nullopt;
  }

  bool defer(size_t pc) {
    const auto at = sink_point(pc);
    if (!at) return false;
    sunk_.push_back({at->first, {pc, at->second, now_}});
    skipped_ = true;
    ++img_.stats.sunk;
    return true;
  }

  void emit_sunk(const Sunk& s) {
    const jit::State here = now_;
    now_ = s.state;
    (void)insn(s.pc);  // an ALU instruction: nothing to fail
    now_ = here;
    spill_.valid = false;
  }

  // What moved past the branch at pc, for the taken edge and for the fall-through.
  std::pair<std::vector<Sunk>, std::vector<Sunk>> sunk_at(size_t pc) {
    std::pair<std::vector<Sunk>, std::vector<Sunk>> out;
    for (const auto& [branch, s] : sunk_)
      if (branch == pc) (s.on_taken ? out.first : out.second).push_back(s);
    std::erase_if(sunk_, [pc](const auto& e) { return e.first == pc; });
    return out;
  }

  // A loop head (the target of a backward jump) is aligned so that a loop of up to 64 bytes sits
  // in one cache line and a longer one starts on a 16-byte boundary; sizes come from the first pass.
  void measure_loops(const Layout& l) {
    loop_bytes_.assign(p_.insns.size(), 0);
    for (size_t src = 0; src < p_.insns.size(); ++src) {
      const isa::Kind k = info(p_.insns[src].op).kind;
      if (k != isa::Kind::Ja && k != isa::Kind::Jcond) continue;
      const auto head = static_cast<size_t>(isa::jump_target(p_.insns[src], src));
      if (head <= src) loop_bytes_[head] = std::max(loop_bytes_[head], l.end[src] - l.start[head]);
    }
  }

  void align_loop(size_t pc) {
    if (!measured_ || !target_[pc]) return;
    const uint32_t size = loop_bytes_[pc];
    if (size == 0) return;
    const uint64_t off = a_->offset();
    if (size <= 64 && off % 64 + size > 64) a_->align(AlignMode::kCode, (off + 15) / 16 * 16 % 64 + size <= 64 ? 16 : 64);
    else if (size > 64) a_->align(AlignMode::kCode, 16);
    ++img_.stats.aligned_loops;
  }

  // ---- address arithmetic fused into x86 addressing (the way clang forms addresses) ----
  //   rX = rY; rX += rZ|imm; rX = *(rX + off)  ->  one load from [rY + rZ|imm + off]
  //   rX = rY; rX += rZ|imm                    ->  lea
  //   rX += rZ|imm; rX = *(rX + off)           ->  one load from [rX + rZ|imm + off]
  // Only straight-line code (no jump lands inside); BPF has no flags, so skipping the add's
  // changes nothing. Returns how many slots were compiled, 0 for none.

  bool is_mov_reg(const isa::Insn& in) const {
    return info(in.op).kind == isa::Kind::Alu && in.opcode == (isa::kAlu64 | 0xb0 | 0x08) && in.dst != in.src;
  }
  bool is_add64(const isa::Insn& in, uint8_t dst) const {
    return info(in.op).kind == isa::Kind::Alu && isa::is_alu64(in.opcode) && isa::op_code(in.opcode) == 0x00 && in.dst == dst &&
           (isa::uses_src_reg(in.opcode) || !opts_.blind_constants);
  }
  bool is_self_load(const isa::Insn& in, uint8_t reg) const {
    return info(in.op).kind == isa::Kind::Ldx && in.src == reg && in.dst == reg;
  }
  bool straight(size_t pc, size_t n) const {
    if (pc + n > p_.insns.size()) return false;
    for (size_t i = 1; i < n; ++i)
      if (target_[pc + i]) return false;
    return true;
  }

  // [base + add's operand + off], where an operand register `x` stands for base itself; nullopt
  // when the displacement does not fit.
  std::optional<x86::Mem> sum_address(const x86::Gp& base, const isa::Insn& add, uint8_t x, int64_t off) const {
    if (isa::uses_src_reg(add.opcode)) return x86::ptr(base, add.src == x ? base : kReg[add.src], 0, static_cast<int32_t>(off));
    const int64_t disp = int64_t{add.imm} + off;
    if (disp != static_cast<int32_t>(disp)) return std::nullopt;
    return x86::ptr(base, static_cast<int32_t>(disp));
  }

  // `rX <<= 32; rX >>= 32` (s>>=): how ISA v1 code zero- (sign-) extends a 32-bit value; one mov.
  // After `rX = rY`, the copy and the extension are one mov from rY's low half.
  size_t extension(size_t pc) {
    auto shift64_by_32 = [](const isa::Insn& in, uint8_t op) {
      return info(in.op).kind == isa::Kind::Alu && in.opcode == (isa::kAlu64 | op) && in.imm == 32;
    };
    if (const isa::Insn& copy = p_.insns[pc]; is_mov_reg(copy) && copy.dst != 10 && straight(pc, 3)) {
      const isa::Insn &shl = p_.insns[pc + 1], &shr = p_.insns[pc + 2];
      if (!shift64_by_32(shl, 0x60) || shl.dst != copy.dst || shr.dst != copy.dst) return 0;
      const x86::Gp X = kReg[copy.dst], Y = kReg[copy.src];
      if (shift64_by_32(shr, 0x70)) a_->mov(X.r32(), Y.r32());
      else if (shift64_by_32(shr, 0xc0)) a_->movsxd(X, Y.r32());
      else return 0;
      return 3;
    }
    const isa::Insn& shl = p_.insns[pc];
    if (!shift64_by_32(shl, 0x60) || !straight(pc, 2)) return 0;
    const x86::Gp D = kReg[shl.dst];
    const isa::Insn& shr = p_.insns[pc + 1];
    if (shr.dst == shl.dst) {
      if (shift64_by_32(shr, 0x70) && now_.reg[shl.dst].max <= UINT32_MAX) ++img_.stats.folded;
      else if (shift64_by_32(shr, 0x70)) a_->mov(D.r32(), D.r32());
      else if (shift64_by_32(shr, 0xc0)) a_->movsxd(D, D.r32());
      else return 0;
      return 2;
    }
    // `rX <<= 32; rY = rX; rY >>= 32`: rY from rX's low half directly, then rX's own shift (one
    // instruction less, and rY no longer waits for the shift), which goes too if nothing reads rX.
    const isa::Insn& mov = shr;
    if (!straight(pc, 3) || !is_mov_reg(mov) || mov.src != shl.dst) return 0;
    const isa::Insn& ext = p_.insns[pc + 2];
    const x86::Gp Y = kReg[mov.dst];
    if (ext.dst != mov.dst) return 0;
    if (shift64_by_32(ext, 0x70)) a_->mov(Y.r32(), D.r32());
    else if (shift64_by_32(ext, 0xc0)) a_->movsxd(Y, D.r32());
    else return 0;
    if (shl.dst == 10 || facts_->live_after(pc + 2, shl.dst)) a_->shl(D, 32);
    else ++img_.stats.folded;
    return 3;
  }

  // clang builds a big-endian 16-bit field from two byte loads, in either order:
  //   T = *(u8 *)(A + o + 1); D = *(u8 *)(A + o); D <<= 8; D |= T
  // That is one 16-bit load and a byte swap; T is loaded as well only if something reads it later.
  struct BytePair {
    uint8_t d, t, a;
    int16_t off;   // o
    uint8_t b;     // the low byte's address register: a, or one holding a + o + 1 - its offset
  };

  // The loads may go through two registers (clang -mcpu=v3 forms each byte's address in its own,
  // from 32-bit offsets) when the low byte's address is provably the high byte's plus one.
  std::optional<BytePair> byte_pair(size_t pc) const {
    if (!straight(pc, 4)) return std::nullopt;
    const isa::Insn* in = &p_.insns[pc];
    auto byte_load = [](const isa::Insn& i) { return i.opcode == (isa::kLdx | 0x60 | 0x10); };
    const isa::Insn &l0 = in[0], &l1 = in[1], &shl = in[2], &orr = in[3];
    if (!byte_load(l0) || !byte_load(l1) || l1.src == l0.dst || l0.dst == l1.dst) return std::nullopt;
    auto alu_op = [](const isa::Insn& i, uint8_t op, bool x) {  // 32- or 64-bit alike: the value fits in 16 bits
      return info(i.op).kind == isa::Kind::Alu && isa::op_code(i.opcode) == op && isa::uses_src_reg(i.opcode) == x;
    };
    if (!alu_op(shl, 0x60, false) || shl.imm != 8 || !alu_op(orr, 0x40, true)) return std::nullopt;
    const uint8_t d = shl.dst, t = orr.src;
    const isa::Insn& hi = l0.dst == d ? l0 : l1;
    const isa::Insn& lo = l0.dst == d ? l1 : l0;
    if (orr.dst != d || hi.dst != d || lo.dst != t) return std::nullopt;
    const bool one_base = lo.src == hi.src && int32_t{lo.off} == int32_t{hi.off} + 1;
    if (!one_base && (lo.src == hi.src || !next_byte(pc, hi.src, lo.src, int64_t{lo.off} - hi.off))) return std::nullopt;
    return BytePair{d, t, hi.src, hi.off, lo.src};
  }

  // Whether, at slot pc, register b holds register a's value plus 1 - diff: both reached, since
  // the block began, from the same values by copies and additions (32-bit ones where the facts
  // show they do not wrap). Each register is tracked as a sum of at most four leaves plus a
  // constant; a leaf is a register's value where the block begins, or what an instruction the
  // sums cannot follow left (ids from 11 up).
  bool next_byte(size_t pc, uint8_t a, uint8_t b, int64_t diff) const {
    struct Sum {
      std::array<uint32_t, 4> leaf{};
      uint8_t n = 0;
      uint64_t k = 0;
      bool operator==(const Sum&) const = default;
    };
    if (pc - facts_->block_start(pc) > 256) return false;
    std::array<Sum, 11> sum;
    for (uint32_t r = 0; r <= 10; ++r) sum[r] = {{r}, 1, 0};
    auto add = [](Sum x, const Sum& y) -> std::optional<Sum> {
      if (x.n + y.n > 4) return std::nullopt;
      for (uint8_t i = 0; i < y.n; ++i) {  // kept sorted, so that equal sums compare equal
        uint8_t at = x.n++;
        for (; at > 0 && x.leaf[at - 1] > y.leaf[i]; --at) x.leaf[at] = x.leaf[at - 1];
        x.leaf[at] = y.leaf[i];
      }
      x.k += y.k;
      return x;
    };
    constexpr uint64_t kU32 = UINT32_MAX;
    facts_->before(pc, [&](size_t j, const jit::State& s) {
      const isa::Insn& in = p_.insns[j];
      const uint8_t op = isa::op_code(in.opcode);
      const bool x = isa::uses_src_reg(in.opcode), w = isa::is_alu64(in.opcode);
      const Sum imm{{}, 0, w ? static_cast<uint64_t>(int64_t{in.imm}) : static_cast<uint32_t>(in.imm)};
      std::optional<Sum> next;
      if (info(in.op).kind == isa::Kind::Alu && in.off == 0 && op == 0xb0) {
        if (!x) next = imm;
        else if (w || s.reg[in.src].max <= kU32) next = sum[in.src];  // a 32-bit copy of a 32-bit value is the value
      } else if (info(in.op).kind == isa::Kind::Alu && in.off == 0 && op == 0x00) {
        const uint64_t y_max = x ? s.reg[in.src].max : (in.imm >= 0 ? static_cast<uint64_t>(in.imm) : UINT64_MAX);
        const uint64_t d_max = s.reg[in.dst].max;
        if (w || (d_max <= kU32 && y_max <= kU32 && d_max + y_max <= kU32)) next = add(sum[in.dst], x ? sum[in.src] : imm);
      }
      const uint16_t changed = jit::clobbered(in);
      for (unsigned r = 0; r <= 10; ++r)
        if ((changed >> r) & 1) sum[r] = {{static_cast<uint32_t>(11 + j)}, 1, 0};
      if (next) sum[in.dst] = *next;
    });
    Sum want = sum[a];
    want.k += static_cast<uint64_t>(1 - diff);
    return sum[b] == want;
  }

  // `at` addresses A + o; `after` is the pair's last slot.
  bool emit_byte_pair(const BytePair& b, x86::Mem at, size_t after) {
    const bool t_live = facts_->live_after(after, b.t);
    auto in_address = [&](uint8_t r) {
      const uint32_t id = kReg[r].id();
      return (at.hasBase() && at.baseId() == id) || (at.hasIndex() && at.indexId() == id);
    };
    const bool t_first = in_address(b.d);
    if (t_first && t_live && in_address(b.t)) return false;
    x86::Mem lo = at;
    lo.addOffset(1);
    lo.setSize(1);
    at.setSize(2);
    if (t_first && t_live) a_->movzx(kReg[b.t].r32(), lo);
    a_->movzx(kReg[b.d].r32(), at);
    if (!t_first && t_live) a_->movzx(kReg[b.t].r32(), lo);
    a_->rol(kReg[b.d].r16(), 8);
    ++img_.stats.byte_pairs;
    return true;
  }

  // An instruction that only computes its dst (or loads it), when nothing reads dst afterwards.
  bool dead(size_t pc) {
    const isa::Insn& in = p_.insns[pc];
    const isa::Kind k = info(in.op).kind;
    const bool pure = k == isa::Kind::Alu || k == isa::Kind::Neg || k == isa::Kind::End || k == isa::Kind::MovSx ||
                      k == isa::Kind::Ldx || (k == isa::Kind::Lddw && in.op != isa::Op::LDDW_CODE);
    if (!pure || in.dst == 10 || facts_->live_after(pc, in.dst)) return false;
    ++img_.stats.folded;
    skipped_ = true;
    return true;
  }

  // After compiling slots first..last: whether the last 32-bit store to the frame still has its
  // value in the host register it came from. Skipped instructions changed no host register.
  void track_spill(size_t first, size_t last) {
    if (skipped_) return;
    for (size_t pc = first; pc <= last; ++pc) {
      const isa::Insn& in = p_.insns[pc];
      const isa::Kind k = info(in.op).kind;
      const int64_t end = int64_t{in.off} + isa::mem_size(in.opcode);
      if (k == isa::Kind::Stx && in.dst == 10 && isa::mem_size(in.opcode) == 4) {
        spill_ = {in.off, in.src, true};
      } else if (k == isa::Kind::St || k == isa::Kind::Stx || k == isa::Kind::Atomic) {
        const bool apart = in.dst == 10 && (end <= spill_.off || spill_.off + 4 <= in.off);
        if (!apart) spill_.valid = false;
        if (k == isa::Kind::Atomic && (in.imm & isa::kAtomicFetch) && (in.src == spill_.reg || spill_.reg == 0)) spill_.valid = false;
      } else if (is_call(k) || k == isa::Kind::CallKfunc) {
        spill_.valid = false;
      } else if (k != isa::Kind::Ja && k != isa::Kind::Jcond && k != isa::Kind::Exit && (in.dst == spill_.reg || in.dst == 10)) {
        spill_.valid = false;  // the register changed, or the frame it was stored to moved (trusted code)
      }
    }
  }

  // After `rX = rY; rX += rZ|imm` at pc: loads through rX into other registers and `rX += imm`,
  // ended by a load of rX into itself, or into rY or rZ, or by rX no longer read. Each load addresses
  // [rY + rZ|imm + ...] directly and rX is never formed: clang's shape for a[i] and b[i] at a
  // constant distance. Returns the slots compiled, 0 when the shape is not there.
  size_t address_run(size_t pc) {
    const isa::Insn& mov = p_.insns[pc];
    const isa::Insn& add = p_.insns[pc + 1];
    const uint8_t x = mov.dst;
    auto holds_base = [&](uint8_t r) { return r == mov.src || (isa::uses_src_reg(add.opcode) && add.src != x && add.src == r); };
    std::vector<std::pair<size_t, x86::Mem>> loads;  // planned whole before anything is emitted
    int64_t disp = 0;
    bool closed = false;
    size_t j = pc + 2;
    for (; j < p_.insns.size() && !target_[j] && !closed; ++j) {
      const isa::Insn& in = p_.insns[j];
      if (info(in.op).kind == isa::Kind::Ldx && in.src == x) {
        const auto m = sum_address(kReg[mov.src], add, x, disp + in.off);
        if (!m) return 0;
        loads.emplace_back(j, *m);
        closed = in.dst == x;
        if (!closed && holds_base(in.dst)) {  // the load overwrites a base: the last of the run
          ++j;
          break;
        }
      } else if (is_add64(in, x) && !isa::uses_src_reg(in.opcode)) {
        disp += in.imm;
      } else {
        break;
      }
    }
    if (loads.empty() || (!closed && facts_->live_after(j - 1, x))) return 0;
    const auto& [last, last_m] = loads.back();
    const auto cmp_at = compared_byte(j, p_.insns[last], last_m);
    for (const auto& [at, m] : loads)
      if (!cmp_at || at != last) load(p_.insns[at], m);
    if (cmp_at) {
      pending_ = Pending{*cmp_at, last_m, p_.insns[last]};
      ++img_.stats.folded;
    }
    return j - pc;
  }

  // clang's byte search compares two loaded bytes (`a[i] != b[i]`): the second load can be the
  // compare's memory operand when nothing else reads it. The Jcond where that is possible: within
  // a few slots after `from`, with only ALU code between that neither reads the loaded register
  // nor changes the address's registers.
  std::optional<size_t> compared_byte(size_t from, const isa::Insn& ld, const x86::Mem& m) const {
    if (isa::mem_size(ld.opcode) != 1 || isa::is_sign_extending_load(ld.opcode) || ld.dst == 10) return std::nullopt;
    const auto bit = static_cast<uint16_t>(1u << ld.dst);
    uint16_t addr = 0;  // the BPF registers the address reads
    for (unsigned r = 0; r <= 10; ++r)
      if (kReg[r].id() == m.baseId() || (m.hasIndex() && kReg[r].id() == m.indexId())) addr |= static_cast<uint16_t>(1u << r);
    for (size_t t = from; t < p_.insns.size() && t <= from + 3 && !target_[t]; ++t) {
      const isa::Insn& in = p_.insns[t];
      const jit::RegSets r = jit::regs_of(in);
      if (info(in.op).kind == isa::Kind::Jcond) {
        const uint8_t op = isa::op_code(in.opcode);
        const bool ok = isa::uses_src_reg(in.opcode) && (op == 0x10 || op == 0x50) && in.dst != in.src &&
                        (in.dst == ld.dst || in.src == ld.dst) && !facts_->live_after(t, ld.dst);
        return ok ? std::optional(t) : std::nullopt;
      }
      if (info(in.op).kind != isa::Kind::Alu || ((r.read | r.written) & bit) || (r.written & addr)) return std::nullopt;
    }
    return std::nullopt;
  }

  size_t fused(size_t pc) {
    if (defer(pc)) return 1;
    if (info(p_.insns[pc].op).kind != isa::Kind::Lddw && dead(pc)) return 1;
    if (const size_t n = tail_helper_call(pc)) return n;
    if (const size_t n = extension(pc)) return n;
    const isa::Insn& first = p_.insns[pc];
    if (is_mov_reg(first) && straight(pc, 2) && is_add64(p_.insns[pc + 1], first.dst)) {
      const isa::Insn& add = p_.insns[pc + 1];
      if (first.dst != 10 && !facts_->live_after(pc + 1, first.dst)) {
        img_.stats.folded += 2;
        return 2;
      }
      const x86::Gp S = kReg[first.src];  // after rX = rY, "rX += rX" adds rY: sum_address's `x`
      // The address of a byte pair, when rX itself is not needed after it.
      if (const auto bp = byte_pair(pc + 2); bp && bp->a == first.dst)
        if (bp->d == bp->a || bp->t == bp->a || !facts_->live_after(pc + 5, bp->a))
          if (auto m = sum_address(S, add, first.dst, bp->off); m && emit_byte_pair(*bp, *m, pc + 5)) return 6;
      if (const size_t n = unformed_low_address(pc, 2)) return n;
      if (const size_t n = address_run(pc)) return n;
      if (auto m = sum_address(S, add, first.dst, 0)) {
        a_->lea(kReg[first.dst], *m);
        return 2;
      }
      return 0;
    }
    // `rX += rY` then a byte pair through rX: the pair addresses [rX + rY + off], and the sum is
    // not formed when nothing reads rX after the pair.
    if (is_add64(first, first.dst) && isa::uses_src_reg(first.opcode) && first.src != first.dst && first.dst != 10 &&
        straight(pc, 5))
      if (const auto bp = byte_pair(pc + 1); bp && bp->a == first.dst)
        if (bp->d == bp->a || bp->t == bp->a || !facts_->live_after(pc + 4, bp->a))
          if (emit_byte_pair(*bp, x86::ptr(kReg[first.dst], kReg[first.src], 0, bp->off), pc + 4)) return 5;
    if (is_add64(first, first.dst))
      if (const size_t n = unformed_low_address(pc, 1)) return n;
    if (const auto bp = byte_pair(pc); bp && emit_byte_pair(*bp, x86::ptr(kReg[bp->a], bp->off), pc + 3)) return 4;
    if (is_add64(first, first.dst) && straight(pc, 2) && is_self_load(p_.insns[pc + 1], first.dst))
      if (auto m = sum_address(kReg[first.dst], first, first.dst, p_.insns[pc + 1].off)) {
        load(p_.insns[pc + 1], *m);
        return 2;
      }
    return 0;
  }

  // `n` slots from pc that only form rB, the low byte's address of a pair addressed through
  // another register (`rB += rY`, or `rB = rX; rB += rY`): the pair needs neither, so rB is not
  // formed when nothing else reads it. Returns the slots compiled, 0 when the shape is not there.
  size_t unformed_low_address(size_t pc, size_t n) {
    const uint8_t b = p_.insns[pc].dst;
    if (b == 10 || !straight(pc, n + 4)) return 0;
    const auto bp = byte_pair(pc + n);
    if (!bp || bp->b != b || bp->a == b || (bp->t != b && facts_->live_after(pc + n + 3, b))) return 0;
    if (!emit_byte_pair(*bp, x86::ptr(kReg[bp->a], bp->off), pc + n + 3)) return 0;
    img_.stats.folded += static_cast<uint32_t>(n);
    return n + 4;
  }

  // ---- byte loops, 16 bytes at a time ----
  // Before the head of a ByteLoop (reached by falling into it; the back edge lands after this),
  // as many whole 16-byte blocks as leave at least one iteration run with SSE2, then the loop's own
  // code does the rest and leaves every register as the bytecode says. Safe because the blocks
  // touch exactly the bytes the iterations they replace touch, which the verifier proved; exact
  // because a store lands at or behind its load (distance <= 0) or a whole block ahead (>= 16), so
  // every load sees what the byte-at-a-time loop would see.

  std::optional<ByteLoop> byte_loop(size_t h, size_t fn_end) const {
    size_t k = h;
    auto next = [&]() -> const isa::Insn* {
      if (k >= fn_end || (k > h && target_[k])) return nullptr;
      return &p_.insns[k++];
    };
    auto alu = [](const isa::Insn* in, uint8_t op, bool x) {
      return in && info(in->op).kind == isa::Kind::Alu && isa::op_code(in->opcode) == op && isa::uses_src_reg(in->opcode) == x;
    };
    ByteLoop l{};
    const isa::Insn* in = next();
    if (!alu(in, 0xb0, true) || !isa::is_alu64(in->opcode) || in->dst == in->src) return std::nullopt;
    l.addr = in->dst;
    l.base = in->src;
    in = next();
    if (!alu(in, 0x00, true) || !isa::is_alu64(in->opcode) || in->dst != l.addr || in->src == l.addr || in->src == l.base)
      return std::nullopt;
    l.index = in->src;
    in = next();
    if (!in || in->opcode != (isa::kLdx | 0x60 | 0x10) || in->src != l.addr) return std::nullopt;
    l.value = in->dst;
    l.load_off = in->off;
    if (l.value == l.addr || l.value == l.base || l.value == l.index) return std::nullopt;
    int64_t step = 0;
    in = next();
    if (alu(in, 0x00, false) && isa::is_alu64(in->opcode) && in->dst == l.addr) {
      step = in->imm;
      in = next();
    }
    if (in && in->dst == l.value && (alu(in, 0xa0, false) || alu(in, 0x40, false) || alu(in, 0x50, false) ||
                                     alu(in, 0x00, false) || alu(in, 0x10, false))) {
      l.op = isa::op_code(in->opcode);
      l.k = in->imm;
      in = next();
    }
    if (!in || in->opcode != (isa::kStx | 0x60 | 0x10) || in->dst != l.addr || in->src != l.value) return std::nullopt;
    const int64_t store_at = step + in->off;
    in = next();
    if (!alu(in, 0x00, false) || !isa::is_alu64(in->opcode) || in->dst != l.index || in->imm != 1) return std::nullopt;
    const size_t test = k;
    in = next();
    if (!in || isa::uses_src_reg(in->opcode) || isa::is_jmp32(in->opcode) || info(in->op).kind != isa::Kind::Jcond ||
        in->dst != l.index)
      return std::nullopt;
    l.end = in->imm;
    bool closed = false;
    if (isa::op_code(in->opcode) == 0x50) {  // if I != N goto head
      closed = static_cast<size_t>(isa::jump_target(*in, test)) == h;
    } else if (isa::op_code(in->opcode) == 0x10 && static_cast<size_t>(isa::jump_target(*in, test)) == test + 2) {
      const size_t back = k;
      in = next();  // if I == N goto out; goto head
      closed = in && info(in->op).kind == isa::Kind::Ja && static_cast<size_t>(isa::jump_target(*in, back)) == h;
    }
    const int64_t distance = store_at - l.load_off;
    if (!closed || store_at != static_cast<int32_t>(store_at) || (distance > 0 && distance < 16)) return std::nullopt;
    l.store_at = static_cast<int32_t>(store_at);
    return l;
  }

  void vector_prefix(const ByteLoop& l) {
    x86::Assembler& a = *a_;
    const x86::Gp I = kReg[l.index], B = kReg[l.base];
    Label scalar = a.newLabel(), block = a.newLabel();
    a.mov(x86::r11, int64_t{l.end});
    a.cmp(I, x86::r11);
    a.jae(scalar);  // not counting up to N: the loop's own code
    a.sub(x86::r11, I);
    a.sub(x86::r11, 1);  // at least one iteration left for the loop's own code
    a.and_(x86::r11, -16);
    a.jz(scalar);
    if (l.op != 0xff) {
      a.mov(x86::r10d, (static_cast<uint32_t>(l.k) & 0xff) * 0x01010101u);
      a.movd(x86::xmm1, x86::r10d);
      a.pshufd(x86::xmm1, x86::xmm1, 0);
    }
    a.lea(x86::r10, x86::ptr(B, I));
    a.add(I, x86::r11);
    a.bind(block);
    a.movdqu(x86::xmm0, x86::ptr(x86::r10, l.load_off));
    switch (l.op) {
      case 0xa0: a.pxor(x86::xmm0, x86::xmm1); break;
      case 0x40: a.por(x86::xmm0, x86::xmm1); break;
      case 0x50: a.pand(x86::xmm0, x86::xmm1); break;
      case 0x00: a.paddb(x86::xmm0, x86::xmm1); break;
      case 0x10: a.psubb(x86::xmm0, x86::xmm1); break;
      default: break;
    }
    a.movdqu(x86::ptr(x86::r10, l.store_at), x86::xmm0);
    a.add(x86::r10, 16);
    a.sub(x86::r11, 16);
    a.jnz(block);
    a.bind(scalar);
    ++img_.stats.vectorized_loops;
  }

  // ---- constants (blinded on request, so no program-chosen bytes appear in executable memory) ----

  uint32_t key() { return static_cast<uint32_t>(rng_()); }

  // The immediate of a 32- or 64-bit operation, as an operand: itself, or r10 holding it.
  Operand imm_operand(int64_t v, bool w) {
    if (!opts_.blind_constants) return Imm(w ? v : static_cast<int64_t>(static_cast<uint32_t>(v)));
    ++img_.stats.blinded_constants;
    const uint32_t k = key();
    if (w) {
      const int64_t kk = static_cast<int32_t>(k);
      a_->mov(x86::r10, v ^ kk);
      a_->xor_(x86::r10, static_cast<int32_t>(k));
      return x86::r10;
    }
    a_->mov(x86::r10d, static_cast<uint32_t>(v) ^ k);
    a_->xor_(x86::r10d, k);
    return x86::r10d;
  }

  void load_imm64(const x86::Gp& d, uint64_t v) {
    if (!opts_.blind_constants) {
      a_->mov(d, v);
      return;
    }
    ++img_.stats.blinded_constants;
    const uint64_t k = rng_();
    a_->mov(d, v ^ k);
    a_->mov(x86::r10, k);
    a_->xor_(d, x86::r10);
  }

  // ---- instructions ----

  void shift(uint8_t op, const x86::Gp& d, const x86::Gp& c) {
    x86::Assembler& a = *a_;
    if (op == 0x60) a.shl(d, c);
    else if (op == 0x70) a.shr(d, c);
    else a.sar(d, c);
  }

  void shifts(const isa::Insn& in, bool w, bool x) {
    x86::Assembler& a = *a_;
    const uint8_t op = isa::op_code(in.opcode);
    const x86::Gp D = reg(in.dst, w);
    if (!x) {
      // A shift count is one masked byte, not a constant worth blinding.
      const uint32_t n = static_cast<uint32_t>(in.imm) & (w ? 63 : 31);
      if (op == 0x60) a.shl(D, n);
      else if (op == 0x70) a.shr(D, n);
      else a.sar(D, n);
    } else if (in.src == 4) {
      shift(op, D, x86::cl);
    } else {
      // The count must be in cl, which holds r4: park r4 in r11 meanwhile.
      a.mov(x86::r11, x86::rcx);
      a.mov(x86::rcx, kReg[in.src]);
      shift(op, in.dst == 4 ? width(x86::r11, w) : D, x86::cl);
      a.mov(x86::rcx, x86::r11);
    }
  }

  // An `and` whose mask keeps every bit the register can have, or a 32-bit move of a register
  // onto itself (a zero-extension) when the value already fits in 32 bits.
  bool changes_nothing(const isa::Insn& in) const {
    const bool w = isa::is_alu64(in.opcode), x = isa::uses_src_reg(in.opcode);
    const uint64_t max = now_.reg[in.dst].max;
    const uint64_t bits = max == 0 ? 0 : UINT64_MAX >> std::countl_zero(max);
    if (isa::op_code(in.opcode) == 0x50 && !x) {
      const uint64_t mask = w ? static_cast<uint64_t>(int64_t{in.imm}) : static_cast<uint32_t>(in.imm);
      return (bits & ~mask) == 0;  // a 32-bit mask leaves no bit above 31 either
    }
    return isa::op_code(in.opcode) == 0xb0 && x && !w && in.src == in.dst && max <= UINT32_MAX;
  }

  void alu(const isa::Insn& in) {
    x86::Assembler& a = *a_;
    if (changes_nothing(in)) {
      ++img_.stats.folded;
      return;
    }
    const bool w = isa::is_alu64(in.opcode), x = isa::uses_src_reg(in.opcode);
    const x86::Gp D = reg(in.dst, w);
    const uint8_t op = isa::op_code(in.opcode);
    switch (op) {
      case 0x60: case 0x70: case 0xc0: shifts(in, w, x); return;
      case 0x30: case 0x90: divmod(in, op == 0x90, in.off == 1, w, x); return;
      default: break;
    }
    if (op == 0xb0 && !x && in.imm == 0) {
      a.xor_(D.r32(), D.r32());  // zero-extends to 64 bits either way
      return;
    }
    if (op == 0xb0 && !x && in.imm > 0 && !opts_.blind_constants) {
      a.mov(D.r32(), in.imm);  // the same value, zero-extended, in 5 bytes instead of 7
      return;
    }
    const Operand S = x ? Operand(reg(in.src, w)) : imm_operand(in.imm, w);
    if (op == 0x20) {
      if (S.isImm()) a.imul(D, D, S.as<Imm>());
      else a.imul(D, S.as<x86::Gp>());
      return;
    }
    static constexpr struct {
      uint8_t op;
      InstId id;
    } kOps[] = {{0x00, x86::Inst::kIdAdd}, {0x10, x86::Inst::kIdSub}, {0x40, x86::Inst::kIdOr},
                {0x50, x86::Inst::kIdAnd}, {0xa0, x86::Inst::kIdXor}, {0xb0, x86::Inst::kIdMov}};
    for (const auto& o : kOps)
      if (o.op == op) a.emit(o.id, D, S);
  }

  // div/mod with eBPF's results for a zero divisor (div: 0, mod: dst) and for signed -1. What the
  // facts know shortens it: an unsigned 64-bit division of values that fit in 32 bits is a 32-bit
  // one (several times faster on some cores), a divisor known non-zero needs no test, and rax/rdx
  // (r0/r3) are saved around the division only if their values are read later.
  void divmod(const isa::Insn& in, bool mod, bool sign, bool w, bool x) {
    x86::Assembler& a = *a_;
    const jit::Range dr = now_.reg[in.dst];
    const jit::Range sr = x ? now_.reg[in.src] : jit::Range{static_cast<uint64_t>(int64_t{in.imm}), static_cast<uint64_t>(int64_t{in.imm})};
    if (w && !sign && dr.max <= UINT32_MAX && sr.max <= UINT32_MAX) w = false;
    const bool nonzero = w ? sr.min > 0 : sr.min > 0 && sr.max <= UINT32_MAX;
    const bool not_minus1 = x ? sr.max < (w ? UINT64_MAX : UINT32_MAX) : in.imm != -1;
    const bool keep_rax = in.dst != 0 && facts_->live_after(at_, 0), keep_rdx = in.dst != 3 && facts_->live_after(at_, 3);
    if (!sign) return udivmod(in, mod, w, x, nonzero, keep_rax, keep_rdx);
    const x86::Gp D = reg(in.dst, w);
    const x86::Gp div = width(x86::r10, w), res = width(x86::r11, w);
    if (x) a.mov(div, reg(in.src, w));
    else if (const Operand v = imm_operand(in.imm, w); v.isImm()) a.mov(div, v.as<Imm>());
    if (mod) a.mov(res, D);
    else a.xor_(x86::r11d, x86::r11d);
    Label done = a.newLabel();
    if (!nonzero) {
      a.test(div, div);
      a.jz(done);
    }
    if (sign && !not_minus1) {
      Label normal = a.newLabel();
      a.cmp(div, -1);
      a.jne(normal);
      if (mod) a.xor_(x86::r11d, x86::r11d);
      else {
        a.mov(res, D);
        a.neg(res);
      }
      a.jmp(done);
      a.bind(normal);
    }
    if (keep_rax) a.push(x86::rax);
    if (keep_rdx) a.push(x86::rdx);
    a.mov(width(x86::rax, w), D);
    if (sign) w ? a.cqo() : a.cdq();
    else a.xor_(x86::edx, x86::edx);
    sign ? a.idiv(div) : a.div(div);
    a.mov(res, width(mod ? x86::rdx : x86::rax, w));
    if (keep_rdx) a.pop(x86::rdx);
    if (keep_rax) a.pop(x86::rax);
    a.bind(done);
    a.mov(D, res);
  }

  // Unsigned: rax and rdx are parked in r10/r11 rather than pushed. The divisor stays where it is
  // unless it is rax, rdx or a constant; then r10 holds it, and for rax or rdx that is their copy.
  void udivmod(const isa::Insn& in, bool mod, bool w, bool x, bool nonzero, bool keep_rax, bool keep_rdx) {
    x86::Assembler& a = *a_;
    const x86::Gp D = reg(in.dst, w);
    const bool in_r10 = !x || in.src == 0 || in.src == 3;
    x86::Gp dv = in_r10 ? width(x86::r10, w) : reg(in.src, w);
    if (x && in_r10) a.mov(x86::r10, kReg[in.src]);  // all 64 bits: r10 is also rax's or rdx's copy
    else if (!x) {
      const Operand v = imm_operand(in.imm, w);
      if (v.isImm()) a.mov(dv, v.as<Imm>());
    }
    // Where rax and rdx are kept meanwhile: a scratch register, or the stack when none is left.
    std::vector<x86::Gp> free;
    if (!in_r10) free.push_back(x86::r10);
    free.push_back(x86::r11);
    auto park = [&](bool keep, unsigned bpf, const x86::Gp& host) -> std::optional<x86::Gp> {
      if (!keep || (x && in.src == bpf)) return std::nullopt;  // not needed, or r10 holds it already
      if (free.empty()) return host;                           // pushed
      const x86::Gp at = free.front();
      free.erase(free.begin());
      return at;
    };
    const auto rax_at = park(keep_rax, 0, x86::rax), rdx_at = park(keep_rdx, 3, x86::rdx);
    Label zero = a.newLabel(), done = a.newLabel();
    if (!nonzero) {
      a.test(dv, dv);
      a.jz(zero);
    }
    for (const auto& [at, host] : {std::pair{rax_at, x86::rax}, std::pair{rdx_at, x86::rdx}})
      if (at) at->id() == host.id() ? a.push(host) : a.mov(*at, host);
    if (in.dst != 0) a.mov(width(x86::rax, w), D);
    a.xor_(x86::edx, x86::edx);
    a.div(dv);
    const x86::Gp R = width(mod ? x86::rdx : x86::rax, w);
    if (D.id() != R.id()) a.mov(D, R);
    // Restored in reverse, so that a push pops in order.
    if (keep_rdx) {
      if (rdx_at) rdx_at->id() == x86::rdx.id() ? a.pop(x86::rdx) : a.mov(x86::rdx, *rdx_at);
      else a.mov(x86::rdx, x86::r10);  // the divisor's copy
    }
    if (keep_rax) {
      if (rax_at) rax_at->id() == x86::rax.id() ? a.pop(x86::rax) : a.mov(x86::rax, *rax_at);
      else a.mov(x86::rax, x86::r10);
    }
    if (nonzero) return;
    a.bind(done);
    cold_.push_back([this, zero, done, D, mod, w] {  // eBPF: x / 0 = 0, x % 0 = x
      a_->bind(zero);
      if (!mod) a_->xor_(D.r32(), D.r32());
      else if (!w) a_->mov(D.r32(), D.r32());
      a_->jmp(done);
    });
  }

  void end(const isa::Insn& in) {
    x86::Assembler& a = *a_;
    const x86::Gp D = kReg[in.dst];
    const bool swap = in.op == isa::Op::BE16 || in.op == isa::Op::BE32 || in.op == isa::Op::BE64 || in.op == isa::Op::BSWAP16 ||
                      in.op == isa::Op::BSWAP32 || in.op == isa::Op::BSWAP64;
    const int bits = in.imm;
    if (bits == 16) {
      if (swap) a.rol(D.r16(), 8);
      a.movzx(D.r32(), D.r16());
    } else if (bits == 32) {
      if (swap) a.bswap(D.r32());
      else a.mov(D.r32(), D.r32());
    } else if (swap) {
      a.bswap(D);
    }
  }

  x86::Mem mem(unsigned base, int16_t off, unsigned size) const {
    switch (size) {
      case 1: return x86::byte_ptr(kReg[base], off);
      case 2: return x86::word_ptr(kReg[base], off);
      case 4: return x86::dword_ptr(kReg[base], off);
      default: return x86::qword_ptr(kReg[base], off);
    }
  }
  static x86::Gp sized(const x86::Gp& r, unsigned size) {
    if (size == 1) return r.r8();
    if (size == 2) return r.r16();
    return size == 4 ? x86::Gp(r.r32()) : x86::Gp(r.r64());
  }

  void atomic(const isa::Insn& in) {
    x86::Assembler& a = *a_;
    const unsigned size = isa::mem_size(in.opcode);
    const x86::Mem m = mem(in.dst, in.off, size);
    const x86::Gp S = sized(kReg[in.src], size);
    const int32_t op = in.imm;
    if (op == isa::kAtomicCmpxchg) {
      a.lock().cmpxchg(m, S);
      if (size == 4) a.mov(x86::eax, x86::eax);  // r0 is the zero-extended old value either way
      return;
    }
    if (op == isa::kAtomicXchg) {
      a.xchg(m, S);
      return;
    }
    const bool fetch = op & isa::kAtomicFetch;
    const int base = op & ~isa::kAtomicFetch;
    if (base == 0x00) {
      fetch ? a.lock().xadd(m, S) : a.lock().add(m, S);
      return;
    }
    if (!fetch) {
      if (base == 0x40) a.lock().or_(m, S);
      else if (base == 0x50) a.lock().and_(m, S);
      else a.lock().xor_(m, S);
      return;
    }
    // Fetching or/and/xor: a cmpxchg loop, which needs rax (r0): park r0 in r10.
    a.lea(x86::r12, x86::ptr(kReg[in.dst], in.off));
    a.mov(x86::r10, x86::rax);
    const x86::Gp val = sized(in.src == 0 ? x86::r10 : kReg[in.src], size);
    const x86::Gp acc = sized(x86::rax, size), tmp = sized(x86::r11, size);
    const x86::Mem at = size == 4 ? x86::dword_ptr(x86::r12) : x86::qword_ptr(x86::r12);
    a.mov(acc, at);
    Label again = a.newLabel();
    a.bind(again);
    a.mov(tmp, acc);
    if (base == 0x40) a.or_(tmp, val);
    else if (base == 0x50) a.and_(tmp, val);
    else a.xor_(tmp, val);
    a.lock().cmpxchg(at, tmp);
    a.jnz(again);
    if (in.src != 0) {
      a.mov(S, acc);  // 32-bit moves zero-extend
      a.mov(x86::rax, x86::r10);
    } else if (size == 4) {
      a.mov(x86::eax, x86::eax);
    }
  }

  // The outcome of an unsigned comparison the registers' ranges already decide.
  std::optional<bool> decided(const isa::Insn& in) const {
    const bool w = !isa::is_jmp32(in.opcode), x = isa::uses_src_reg(in.opcode);
    jit::Range l = now_.reg[in.dst];
    jit::Range r = x ? now_.reg[in.src] : jit::Range{};
    if (!x) r.min = r.max = w ? static_cast<uint64_t>(int64_t{in.imm}) : static_cast<uint32_t>(in.imm);
    if (!w && (l.max > UINT32_MAX || r.max > UINT32_MAX)) return std::nullopt;
    auto less = [](const jit::Range& p, const jit::Range& q) -> std::optional<bool> {  // p < q
      if (p.max < q.min) return true;
      if (p.min >= q.max) return false;
      return std::nullopt;
    };
    auto negate = [](std::optional<bool> v) { return v ? std::optional<bool>(!*v) : std::nullopt; };
    switch (isa::op_code(in.opcode)) {
      case 0x10: case 0x50: {
        std::optional<bool> eq;
        if (l.max < r.min || r.max < l.min) eq = false;
        else if (l.min == l.max && r.min == r.max) eq = true;
        return isa::op_code(in.opcode) == 0x10 ? eq : negate(eq);
      }
      case 0xa0: return less(l, r);
      case 0x30: return negate(less(l, r));
      case 0x20: return less(r, l);
      case 0xb0: return negate(less(r, l));
      default: return std::nullopt;
    }
  }

  void jcond(const isa::Insn& in, size_t pc) {
    x86::Assembler& a = *a_;
    const auto [on_taken, on_fall] = sunk_at(pc);
    const size_t target = static_cast<size_t>(isa::jump_target(in, pc));
    // A byte load address_run left for this compare: the compare reads memory, if the other side
    // is a byte too; otherwise the load happens here.
    std::optional<Pending> byte;
    if (pending_ && pending_->at == pc) {
      byte = pending_;
      pending_.reset();
      const uint8_t other = in.dst == byte->load.dst ? in.src : in.dst;
      if (decided(in) || now_.reg[other].max > 0xff) {
        load(byte->load, byte->m);
        byte.reset();
      }
    }
    if (const auto taken = decided(in)) {
      for (const Sunk& s : *taken ? on_taken : on_fall) emit_sunk(s);
      if (*taken) jump_to(pc, target);
      ++img_.stats.folded;
      return;
    }
    Label t = insn_labels_[target];
    if (!on_taken.empty()) {
      t = a.newLabel();
      stubs_.push_back({t, on_taken, target});
    }
    const bool short_form = on_taken.empty() && near(pc, target);
    if (byte) {
      x86::Mem m = byte->m;
      m.setSize(1);
      a.cmp(m, kReg[in.dst == byte->load.dst ? in.src : in.dst].r8());
      if (short_form) a.short_();
      isa::op_code(in.opcode) == 0x10 ? a.je(t) : a.jne(t);
    } else {
      branch(in, t, short_form);
    }
    for (const Sunk& s : on_fall) emit_sunk(s);
  }

  // A forward jump from slot pc to slot target takes the 2-byte form when the first pass shows it
  // fits. The second pass only adds loop-head padding (at most 63 bytes a head) and shortens other
  // jumps, so the first pass's distance from pc's start plus that padding bounds it. Not with
  // blinding: blinded constants are drawn again each pass and may encode longer. A jump that
  // still does not fit makes asmjit report an error, and the pass is redone without short forms.
  bool near(size_t pc, size_t target) const {
    if (!shorten_ || !measured_ || target <= pc) return false;  // backward: asmjit picks the form itself
    int64_t d = int64_t{measured_->start[target]} - int64_t{measured_->start[pc]};
    for (size_t h = pc + 1; h <= target && d < 128; ++h)
      if (target_[h] && loop_bytes_[h] != 0) d += 63;
    return d < 120;
  }

  void jump_to(size_t pc, size_t target) {
    if (near(pc, target)) a_->short_();
    a_->jmp(insn_labels_[target]);
  }

  void branch(const isa::Insn& in, const Label& t, bool short_form) {
    x86::Assembler& a = *a_;
    const bool w = !isa::is_jmp32(in.opcode), x = isa::uses_src_reg(in.opcode);
    const x86::Gp D = reg(in.dst, w);
    const uint8_t op = isa::op_code(in.opcode);
    Operand S = x ? Operand(reg(in.src, w)) : imm_operand(in.imm, w);
    if (!x && in.imm == 0 && (op == 0x10 || op == 0x50)) {
      a.test(D, D);  // == 0 and != 0: shorter than cmp with 0
    } else if (op == 0x40) {
      // test takes no sign-extended 64-bit immediate the way cmp does.
      if (S.isImm() && w) {
        a.mov(x86::r10, S.as<Imm>());
        S = x86::r10;
      }
      a.emit(x86::Inst::kIdTest, D, S);
    } else {
      a.emit(x86::Inst::kIdCmp, D, S);
    }
    if (short_form) a.short_();
    switch (op) {
      case 0x10: a.je(t); break;
      case 0x50: a.jne(t); break;
      case 0x20: a.ja(t); break;
      case 0x30: a.jae(t); break;
      case 0xa0: a.jb(t); break;
      case 0xb0: a.jbe(t); break;
      case 0x40: a.jnz(t); break;
      case 0x60: a.jg(t); break;
      case 0x70: a.jge(t); break;
      case 0xc0: a.jl(t); break;
      case 0xd0: a.jle(t); break;
      default: break;
    }
  }

  // A call to host code: rel32 when the code lands in reach, through asmjit's address table if not.
  // With `tail`, a jump instead: the callee returns to this function's caller.
  void call_abs(const void* fn, uint32_t run_uses, bool tail = false) {
    img_.run_uses |= run_uses;
    Label after = a_->newLabel();
    if (tail) a_->jmp(Imm(reinterpret_cast<uint64_t>(fn)));
    else a_->call(Imm(reinterpret_cast<uint64_t>(fn)));
    a_->bind(after);
    calls_.push_back({after, reinterpret_cast<uint64_t>(fn)});
  }

  // `call helper; exit` as a tail call (clang's native `return f(...)`): the frame is unwound and
  // the helper returns straight to this function's caller with r0. Only when the function has no
  // BPF stack, which the helper's pointer arguments could point into and which the unwinding frees.
  size_t tail_helper_call(size_t pc) {
    const isa::Insn& in = p_.insns[pc];
    if (info(in.op).kind != isa::Kind::Call || frame_.stack || !straight(pc, 2) || info(p_.insns[pc + 1].op).kind != isa::Kind::Exit)
      return 0;
    const Helper* h = helpers_.find(static_cast<uint32_t>(in.imm));
    if (!h || is_tail_call(in)) return 0;
    if (inline_array_lookup(*h, pc)) return 1;
    a_->mov(x86::r9, reinterpret_cast<uint64_t>(h->user));
    unwind(frame_);
    call_abs(reinterpret_cast<const void*>(h->fn), detail::run_uses(h->fn), true);
    ++img_.stats.tail_helper_calls;
    return 2;
  }

  // bpf_tail_call: on success the caller's frame is gone and the target starts as if called.
  void tail_call() {
    x86::Assembler& a = *a_;
    Label cont = a.newLabel();
    a.mov(x86::r12, x86::rdi);  // the context, r1 of the target
    a.mov(x86::rdi, x86::rsi);
    a.mov(x86::rsi, x86::rdx);
    call_abs(reinterpret_cast<const void*>(&rt_tail_target), detail::run_use::kEverything);  // the target may use anything
    a.test(x86::rax, x86::rax);
    a.jz(cont);
    a.mov(x86::rdi, x86::r12);
    unwind(frame_);
    a.jmp(x86::rax);
    a.bind(cont);
  }

  detail::MapImpl* r1_map() const {
    const int32_t m = now_.map[1];
    return m >= 0 && static_cast<size_t>(m) < img_.bindings.maps.size() ? img_.bindings.maps[static_cast<size_t>(m)].get() : nullptr;
  }

  // When the key's range is known to be inside the array (r2 points at a stack slot written from
  // a known range), the check goes too: the lookup is address arithmetic alone.
  bool key_in_range(uint32_t max_entries) const {
    const auto key = now_.fp[2] == jit::State::kNone ? std::nullopt : now_.slot(now_.fp[2], 4);
    return key && *key < max_entries;
  }

  bool inline_array_lookup(const Helper& h, size_t pc) {
    detail::MapImpl* map = r1_map();
    if (!inlinable_lookup(h, map)) return false;
    x86::Assembler& a = *a_;
    const uint32_t stride = map->value_stride();
    const bool checked = !key_in_range(map->spec().max_entries);
    const x86::Gp at = checked ? x86::r11 : x86::rax;
    // The key straight from its stack slot: then r2 (and the map in r1) need not exist at all.
    if (facts_->frame_lookup(pc)) {
      const int32_t off = now_.fp[2] - now_.fp[10];
      if (spill_.valid && spill_.off == off) a.mov(x86::eax, kReg[spill_.reg].r32());  // no wait for the store
      else a.mov(x86::eax, x86::dword_ptr(x86::rbp, off));
    } else {
      a.mov(x86::eax, x86::dword_ptr(x86::rsi));
    }
    a.mov(x86::r11, reinterpret_cast<uint64_t>(detail::array_base(*map)));
    if (stride == 1 || stride == 2 || stride == 4 || stride == 8) {
      a.lea(at, x86::ptr(x86::r11, x86::rax, static_cast<uint32_t>(std::countr_zero(stride))));
    } else {
      a.imul(x86::r10, x86::rax, stride);
      a.lea(at, x86::ptr(x86::r11, x86::r10));
    }
    if (checked) {
      a.xor_(x86::r10d, x86::r10d);
      a.cmp(x86::eax, map->spec().max_entries);
      a.cmovb(x86::r10, x86::r11);
      a.mov(x86::rax, x86::r10);
    } else {
      ++img_.stats.folded;
    }
    ++img_.stats.inlined_lookups;
    return true;
  }

  Result<void> helper_call(const isa::Insn& in, uint32_t at) {
    const size_t pc = at;
    const Helper* h = helpers_.find(static_cast<uint32_t>(in.imm));
    if (!h) return make_error_at(Errc::UnknownHelper, at, "unknown helper " + std::to_string(in.imm));
    if (is_tail_call(in)) {
      tail_call();
      return {};
    }
    if (inline_array_lookup(*h, pc)) return {};
    a_->mov(x86::r9, reinterpret_cast<uint64_t>(h->user));
    call_abs(reinterpret_cast<const void*>(h->fn), detail::run_uses(h->fn));
    return {};
  }

  void load(const isa::Insn& in) { load(in, x86::ptr(kReg[in.src], in.off)); }

  void load(const isa::Insn& in, x86::Mem m) {
    x86::Assembler& a = *a_;
    const unsigned size = isa::mem_size(in.opcode);
    m.setSize(size);
    const x86::Gp D = kReg[in.dst];
    if (isa::is_sign_extending_load(in.opcode)) {
      if (size == 4) a.movsxd(D, m);
      else a.movsx(D, m);
    } else if (size < 4) {
      a.movzx(D.r32(), m);
    } else {
      a.mov(size == 4 ? D.r32() : D, m);
    }
  }

  void store_imm(const isa::Insn& in) {
    const unsigned size = isa::mem_size(in.opcode);
    const int64_t v = size == 8 ? static_cast<int64_t>(in.imm) : static_cast<int64_t>(in.imm) & ((int64_t{1} << (size * 8)) - 1);
    const Operand S = imm_operand(v, size == 8);
    if (S.isImm()) a_->mov(mem(in.dst, in.off, size), S.as<Imm>());
    else a_->mov(mem(in.dst, in.off, size), sized(x86::r10, size));
  }

  void ld_packet(const isa::Insn& in) {
    x86::Assembler& a = *a_;
    if (packet_args_) {
      ld_packet_inline(in);
      return;
    }
    if (info(in.op).kind == isa::Kind::LdInd) {
      a.mov(x86::r10d, kReg[in.src].r32());
      a.add(x86::r10d, in.imm);
      a.mov(x86::edi, x86::r10d);
    } else {
      a.mov(x86::edi, static_cast<uint32_t>(in.imm));
    }
    a.mov(x86::esi, isa::mem_size(in.opcode));
    call_abs(reinterpret_cast<const void*>(&rt_ld), detail::run_use::kPacket);
    a.test(x86::rdx, x86::rdx);
    a.jz(epilogue_);  // out of bounds: the program ends with r0 = 0
  }

  // LD_ABS/LD_IND with the packet in r9 (data) and r12 (size): offset o = imm, or (u32)(src + imm)
  // as the interpreter computes it; [o, o + size) must be inside the packet, else r0 = 0 and the
  // program ends. r0 is the big-endian value, zero-extended.
  void ld_packet_inline(const isa::Insn& in) {
    x86::Assembler& a = *a_;
    const unsigned size = isa::mem_size(in.opcode);
    if (!ret_zero_.isValid()) ret_zero_ = a.newLabel();
    x86::Mem at;
    const uint32_t off = static_cast<uint32_t>(in.imm);
    if (info(in.op).kind == isa::Kind::LdInd || off > 0x7fffffffu - 4) {  // an offset in a register
      if (info(in.op).kind == isa::Kind::LdInd) {
        a.mov(x86::r10d, kReg[in.src].r32());
        a.add(x86::r10d, in.imm);  // 32-bit: wraps as the interpreter's offset does; zero-extends r10
      } else {
        a.mov(x86::r10d, off);  // past a signed 32-bit displacement
      }
      a.lea(x86::r11, x86::ptr(x86::r10, static_cast<int32_t>(size)));
      a.cmp(x86::r12, x86::r11);
      a.jb(ret_zero_);
      at = x86::ptr(x86::r9, x86::r10, 0, 0, size);
    } else {
      a.cmp(x86::r12, off + size);
      a.jb(ret_zero_);
      at = x86::ptr(x86::r9, static_cast<int32_t>(off), size);
    }
    if (size == 1) {
      a.movzx(x86::eax, at);
    } else if (size == 2) {
      a.movzx(x86::eax, at);
      a.rol(x86::ax, 8);
    } else {
      a.mov(x86::eax, at);
      a.bswap(x86::eax);
    }
  }

  Result<void> lddw(const isa::Insn& in, size_t pc) {
    if (in.op == isa::Op::LDDW_CODE) {
      const size_t f = function_of(static_cast<size_t>(isa::jump_target(in, pc)));
      callback_functions_.push_back(f);
      a_->lea(kReg[in.dst], x86::ptr(func_labels_[f]));
      return {};
    }
    auto v = detail::resolve_lddw(p_, pc, img_.bindings, img_.regions);
    if (!v) return v.error();
    if (dead(pc)) return {};  // e.g. the map of an inlined lookup
    // Array values (global data) never go away; a map itself hands out elements that may.
    if (in.op == isa::Op::LDDW_MAP_FD || in.op == isa::Op::LDDW_MAP_IDX) img_.uses_maps = true;
    load_imm64(kReg[in.dst], *v);
    return {};
  }

  Result<void> insn(size_t pc) {
    x86::Assembler& a = *a_;
    const isa::Insn& in = p_.insns[pc];
    at_ = pc;
    const auto at = static_cast<uint32_t>(pc);
    switch (info(in.op).kind) {
      case isa::Kind::Alu: alu(in); break;
      case isa::Kind::Neg: a.neg(reg(in.dst, isa::is_alu64(in.opcode))); break;
      case isa::Kind::End: end(in); break;
      case isa::Kind::MovSx: {
        const bool w = isa::is_alu64(in.opcode);
        const x86::Gp D = reg(in.dst, w);
        if (in.off == 8) a.movsx(D, kReg[in.src].r8());
        else if (in.off == 16) a.movsx(D, kReg[in.src].r16());
        else a.movsxd(D, kReg[in.src].r32());
        break;
      }
      case isa::Kind::Ja: jump_to(pc, static_cast<size_t>(isa::jump_target(in, pc))); break;
      case isa::Kind::Jcond: jcond(in, pc); break;
      case isa::Kind::Exit:
        unwind(frame_);
        a.ret();
        break;
      case isa::Kind::CallLocal: a.call(func_labels_[function_of(static_cast<size_t>(isa::jump_target(in, pc)))]); break;
      case isa::Kind::Call: return helper_call(in, at);
      case isa::Kind::Callx:
        a.sub(x86::rsp, 8);
        a.push(kReg[in.dst]);
        a.mov(x86::r9, reinterpret_cast<uint64_t>(&img_));
        call_abs(reinterpret_cast<const void*>(&rt_callx), detail::run_use::kEverything);
        a.add(x86::rsp, 16);
        break;
      case isa::Kind::CallKfunc:
        return make_error_at(Errc::Unsupported, at, "call to kernel function (BTF id " + std::to_string(in.imm) + ") is not supported");
      case isa::Kind::Lddw: return lddw(in, pc);
      case isa::Kind::LdAbs: case isa::Kind::LdInd: ld_packet(in); break;
      case isa::Kind::Ldx: load(in); break;
      case isa::Kind::St: store_imm(in); break;
      case isa::Kind::Stx: {
        const unsigned size = isa::mem_size(in.opcode);
        a.mov(mem(in.dst, in.off, size), sized(kReg[in.src], size));
        break;
      }
      case isa::Kind::Atomic: atomic(in); break;
    }
    return {};
  }

  isa::Program own_;
  const isa::Program& p_;
  const HelperRegistry& helpers_;
  const JitOptions opts_;
  JitImage& img_;
  std::mt19937_64 rng_;
  CodeHolder code_;
  std::unique_ptr<x86::Assembler> a_;
  std::vector<bool> target_;  // slots a jump or call lands on
  std::vector<uint32_t> loop_bytes_;
  std::vector<size_t> loop_end_;  // at a loop head: the loop's code size in the first pass
  const Layout* measured_ = nullptr;
  Layout* layout_ = nullptr;
  std::vector<Label> insn_labels_, func_labels_;
  std::vector<size_t> callback_functions_;
  std::vector<CallSite> calls_;
  Frame frame_;
  Label epilogue_;
  Label ret_zero_;            // an inlined packet load's way out (packet_args_)
  bool packet_args_ = false;  // see JitImage::packet_args
  std::optional<jit::Facts> facts_;
  size_t at_ = 0;  // the slot insn() compiles
  bool shorten_ = false;  // near() may pick 2-byte forward jumps in this pass
  // The first error asmjit reports while a pass is emitted (a short jump that did not fit).
  struct Errors : ErrorHandler {
    asmjit::Error first = kErrorOk;
    void handleError(asmjit::Error err, const char*, BaseEmitter*) override {
      if (first == kErrorOk) first = err;
    }
  } errors_;
  uint32_t unrolled_ = 0;
  struct {
    int32_t off = 0;
    uint8_t reg = 0;
    bool valid = false;
  } spill_;
  bool skipped_ = false;  // the slot just compiled emitted nothing
  std::vector<std::pair<size_t, Sunk>> sunk_;  // by the pc of the branch they wait for
  std::vector<Stub> stubs_;                     // emitted after the function
  std::vector<std::function<void()>> cold_;     // rarely taken paths, emitted after the function
  // A byte load address_run left to the compare at slot `at` (compared_byte).
  struct Pending {
    size_t at;
    x86::Mem m;
    isa::Insn load;
  };
  std::optional<Pending> pending_;
  jit::State now_ = jit::State::entry();  // what holds before the instruction being compiled
};

}  // namespace

Result<void> compile_x64(const isa::Program& prog, const HelperRegistry& helpers, const JitOptions& options, JitImage& img) {
  Compiler c(prog, helpers, options, img);
  return c.compile();
}

}  // namespace ebpfvm::jit
#endif
