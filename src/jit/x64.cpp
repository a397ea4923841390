// The x86-64 JIT. eBPF registers live in host registers, chosen so that the SysV calling
// convention does the work of eBPF's: r1-r5 are the first five argument registers (a helper call
// is a plain call), r0 is rax (the return value), r6-r9 are callee-saved, r10 is rbp.
// r10/r11/r12 of the host are scratch. Every BPF function (the program, each subprogram) is a native
// function with the same frame: 6 saved registers and a 512-byte stack, so bpf-to-bpf calls are
// call/ret and a tail call is a jump into the target's body.
#include <asmjit/x86.h>

#include <algorithm>
#include <mutex>

#include "ebpfvm/jit.hpp"
#include "ebpfvm/verifier.hpp"
#include "interp/image.hpp"
#include "maps/reclaim.hpp"
#include "program_data.hpp"
#include "runtime/bindings.hpp"

namespace ebpfvm {
namespace detail {

struct JitImage {
  using EntryFn = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
  void* code = nullptr;
  size_t size = 0;
  EntryFn entry = nullptr;
  const void* body = nullptr;        // the entry function after its prologue: where tail calls land
  std::vector<uint64_t> callbacks;   // native addresses of functions whose address the program takes
  Bindings bindings;
  std::vector<MemRegion> regions;
  HelperRegistry registry;
  ~JitImage();
};

}  // namespace detail

namespace {

using namespace asmjit;
using detail::JitImage;

std::mutex& rt_mutex() {
  static std::mutex m;
  return m;
}
JitRuntime& runtime() {
  static JitRuntime* rt = new JitRuntime;  // outlives images released during static destruction
  return *rt;
}

const x86::Gp kReg[11] = {x86::rax, x86::rdi, x86::rsi, x86::rdx, x86::rcx, x86::r8,
                          x86::rbx, x86::r13, x86::r14, x86::r15, x86::rbp};
constexpr int kFrame = isa::kStackSize + 8;  // the stack, plus 8 to keep calls 16-byte aligned

// ---- run-time support called from generated code ----
struct LdResult {
  uint64_t value;
  uint64_t ok;
};
// LD_ABS/LD_IND: big-endian packet loads; out of bounds ends the program with r0 = 0.
LdResult jit_ld(uint64_t off, uint64_t size) {
  detail::RunState* r = detail::current_run();
  const uint64_t o = static_cast<uint32_t>(off);
  if (!r || o > r->packet.size() || r->packet.size() - o < size) return {0, 0};
  const uint8_t* p = r->packet.data() + o;
  uint64_t v = size == 1 ? p[0] : size == 2 ? (uint64_t{p[0]} << 8 | p[1]) : (uint64_t{p[0]} << 24 | uint64_t{p[1]} << 16 | uint64_t{p[2]} << 8 | p[3]);
  return {v, 1};
}

uint64_t jit_callx(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5, const JitImage* img, uint64_t id) {
  const Helper* h = id <= UINT32_MAX ? img->registry.find(static_cast<uint32_t>(id)) : nullptr;
  if (!h) return static_cast<uint64_t>(-22);
  return h->fn(r1, r2, r3, r4, r5, h->user);
}

// bpf_tail_call: the target program's body, or 0 (then execution continues after the call).
const void* jit_tail_target(uint64_t map, uint64_t index) {
  auto* m = reinterpret_cast<detail::MapImpl*>(map);
  detail::RunState* r = detail::current_run();
  if (m->spec().type != MapType::ProgArray || !r || r->tail_calls >= detail::RunState::kMaxTailCalls) return nullptr;
  const auto* e = static_cast<const detail::ProgEntry*>(detail::prog_array_get(*m, static_cast<uint32_t>(index)));
  if (!e || !e->jit) return nullptr;
  ++r->tail_calls;
  return e->jit->body;
}

bool jit_invoke(const void* engine, uint64_t code, const uint64_t args[5], uint64_t* r0) {
  const auto* img = static_cast<const JitImage*>(engine);
  if (!std::binary_search(img->callbacks.begin(), img->callbacks.end(), code)) {
    detail::current_run()->fault = "callback address is not a function of the program";
    return false;
  }
  *r0 = reinterpret_cast<JitImage::EntryFn>(code)(args[0], args[1], args[2], args[3], args[4]);
  return true;
}

class Compiler {
 public:
  Compiler(const isa::Program& p, const HelperRegistry& h, JitImage& img) : p_(p), helpers_(h), img_(img) {}

  Result<void> compile() {
    code_.init(runtime().environment());
    a_ = std::make_unique<x86::Assembler>(&code_);
    for (size_t i = 0; i < p_.insns.size(); ++i) insn_labels_.push_back(a_->newLabel());
    for (size_t i = 0; i < p_.functions.size(); ++i) func_labels_.push_back(a_->newLabel());
    body_ = a_->newLabel();
    for (const isa::Insn& in : p_.insns)
      if (info(in.op).kind == isa::Kind::LdAbs || info(in.op).kind == isa::Kind::LdInd)
        if (p_.functions.size() > 1)
          return make_error(Errc::Unsupported, "LD_ABS/LD_IND in a program with bpf-to-bpf calls (the kernel refuses these too)");
    for (size_t f = 0; f < p_.functions.size(); ++f)
      if (auto r = function(f); !r) return r;
    std::lock_guard lk(rt_mutex());
    void* fn = nullptr;
    if (asmjit::Error err = runtime().add(&fn, &code_); err != kErrorOk)
      return make_error(Errc::Unsupported, std::string("JIT: asmjit: ") + DebugUtils::errorAsString(err));
    img_.code = fn;
    img_.size = code_.codeSize();
    img_.entry = reinterpret_cast<JitImage::EntryFn>(fn);
    img_.body = static_cast<uint8_t*>(fn) + code_.labelOffsetFromBase(body_);
    for (size_t t : callback_functions_)
      img_.callbacks.push_back(reinterpret_cast<uint64_t>(fn) + code_.labelOffsetFromBase(func_labels_[t]));
    std::sort(img_.callbacks.begin(), img_.callbacks.end());
    return {};
  }

 private:
  x86::Gp reg(unsigned r, bool w64) const { return width(kReg[r], w64); }
  static x86::Gp width(const x86::Gp& r, bool w64) { return w64 ? x86::Gp(r.r64()) : x86::Gp(r.r32()); }

  size_t function_of(size_t target) const {
    for (size_t f = 0; f < p_.functions.size(); ++f)
      if (p_.functions[f].entry == target) return f;
    return 0;
  }

  Result<void> function(size_t f) {
    x86::Assembler& a = *a_;
    const isa::Function& fn = p_.functions[f];
    a.align(AlignMode::kCode, 16);
    a.bind(func_labels_[f]);
    a.push(x86::rbp);
    a.push(x86::rbx);
    a.push(x86::r12);
    a.push(x86::r13);
    a.push(x86::r14);
    a.push(x86::r15);
    a.sub(x86::rsp, kFrame);
    a.lea(x86::rbp, x86::ptr(x86::rsp, isa::kStackSize));
    if (f == 0) a.bind(body_);
    epilogue_ = a.newLabel();
    for (size_t pc = fn.entry; pc < fn.end; ++pc) {
      a.bind(insn_labels_[pc]);
      auto r = insn(pc);
      if (!r) return r;
      if (info(p_.insns[pc].op).kind == isa::Kind::Lddw) ++pc;
    }
    a.bind(epilogue_);
    a.add(x86::rsp, kFrame);
    a.pop(x86::r15);
    a.pop(x86::r14);
    a.pop(x86::r13);
    a.pop(x86::r12);
    a.pop(x86::rbx);
    a.pop(x86::rbp);
    a.ret();
    return {};
  }

  void shift(uint8_t op, const x86::Gp& d, const x86::Gp& c) {
    x86::Assembler& a = *a_;
    if (op == 0x60) a.shl(d, c);
    else if (op == 0x70) a.shr(d, c);
    else a.sar(d, c);
  }

  void alu(const isa::Insn& in) {
    x86::Assembler& a = *a_;
    const bool w = isa::is_alu64(in.opcode), x = isa::uses_src_reg(in.opcode);
    const x86::Gp D = reg(in.dst, w), S = reg(in.src, w);
    const uint8_t op = isa::op_code(in.opcode);
    const int64_t imm = in.imm;
    switch (op) {
      case 0x00: x ? a.add(D, S) : a.add(D, imm); break;
      case 0x10: x ? a.sub(D, S) : a.sub(D, imm); break;
      case 0x20: x ? a.imul(D, S) : a.imul(D, D, imm); break;
      case 0x40: x ? a.or_(D, S) : a.or_(D, imm); break;
      case 0x50: x ? a.and_(D, S) : a.and_(D, imm); break;
      case 0xa0: x ? a.xor_(D, S) : a.xor_(D, imm); break;
      case 0xb0:
        if (x) a.mov(D, S);
        else if (w) a.mov(D, imm);
        else a.mov(D, static_cast<uint32_t>(in.imm));
        break;
      case 0x60: case 0x70: case 0xc0:
        if (!x) {
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
          if (in.dst == 4) {
            shift(op, width(x86::r11, w), x86::cl);
            a.mov(x86::rcx, x86::r11);
          } else {
            shift(op, D, x86::cl);
            a.mov(x86::rcx, x86::r11);
          }
        }
        break;
      case 0x30: case 0x90: divmod(in, op == 0x90, in.off == 1, w, x); break;
      default: break;
    }
  }

  // div/mod with eBPF's results for a zero divisor (div: 0, mod: dst) and for signed -1.
  void divmod(const isa::Insn& in, bool mod, bool sign, bool w, bool x) {
    x86::Assembler& a = *a_;
    const x86::Gp D = reg(in.dst, w);
    const x86::Gp div = width(x86::r10, w), res = width(x86::r11, w);
    if (x) a.mov(div, reg(in.src, w));
    else if (w) a.mov(div, static_cast<int64_t>(in.imm));
    else a.mov(div, static_cast<uint32_t>(in.imm));
    if (mod) a.mov(res, D);
    else a.xor_(x86::r11d, x86::r11d);
    Label done = a.newLabel();
    a.test(div, div);
    a.jz(done);
    if (sign) {
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
    a.push(x86::rax);
    a.push(x86::rdx);
    a.mov(width(x86::rax, w), D);
    if (sign) w ? a.cqo() : a.cdq();
    else a.xor_(x86::edx, x86::edx);
    sign ? a.idiv(div) : a.div(div);
    a.mov(res, width(mod ? x86::rdx : x86::rax, w));
    a.pop(x86::rdx);
    a.pop(x86::rax);
    a.bind(done);
    a.mov(D, res);
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

  void jcond(const isa::Insn& in, size_t pc) {
    x86::Assembler& a = *a_;
    const bool w = !isa::is_jmp32(in.opcode), x = isa::uses_src_reg(in.opcode);
    const x86::Gp D = reg(in.dst, w);
    const uint8_t op = isa::op_code(in.opcode);
    if (op == 0x40) {
      if (x) a.test(D, reg(in.src, w));
      else if (w) {
        a.mov(x86::r10, static_cast<int64_t>(in.imm));
        a.test(D, x86::r10);
      } else {
        a.test(D, static_cast<uint32_t>(in.imm));
      }
    } else if (x) {
      a.cmp(D, reg(in.src, w));
    } else {
      a.cmp(D, w ? static_cast<int64_t>(in.imm) : static_cast<int64_t>(static_cast<uint32_t>(in.imm)));
    }
    const Label t = insn_labels_[static_cast<size_t>(isa::jump_target(in, pc))];
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

  void call_abs(const void* fn) {
    a_->mov(x86::r11, reinterpret_cast<uint64_t>(fn));
    a_->call(x86::r11);
  }

  Result<void> insn(size_t pc) {
    x86::Assembler& a = *a_;
    const isa::Insn& in = p_.insns[pc];
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
      case isa::Kind::Ja: a.jmp(insn_labels_[static_cast<size_t>(isa::jump_target(in, pc))]); break;
      case isa::Kind::Jcond: jcond(in, pc); break;
      case isa::Kind::Exit: a.jmp(epilogue_); break;
      case isa::Kind::CallLocal: a.call(func_labels_[function_of(static_cast<size_t>(isa::jump_target(in, pc)))]); break;
      case isa::Kind::Call: {
        const Helper* h = helpers_.find(static_cast<uint32_t>(in.imm));
        if (!h) return make_error_at(Errc::UnknownHelper, at, "unknown helper " + std::to_string(in.imm));
        if (h->id == 12 && h->fn == HelperRegistry::builtin().find(12)->fn) {
          Label cont = a.newLabel();
          a.mov(x86::r12, x86::rdi);  // the context, r1 of the target
          a.mov(x86::rdi, x86::rsi);
          a.mov(x86::rsi, x86::rdx);
          call_abs(reinterpret_cast<const void*>(&jit_tail_target));
          a.test(x86::rax, x86::rax);
          a.jz(cont);
          a.mov(x86::rdi, x86::r12);
          a.jmp(x86::rax);
          a.bind(cont);
          break;
        }
        a.mov(x86::r9, reinterpret_cast<uint64_t>(h->user));
        call_abs(reinterpret_cast<const void*>(h->fn));
        break;
      }
      case isa::Kind::Callx:
        a.sub(x86::rsp, 8);
        a.push(kReg[in.dst]);
        a.mov(x86::r9, reinterpret_cast<uint64_t>(&img_));
        call_abs(reinterpret_cast<const void*>(&jit_callx));
        a.add(x86::rsp, 16);
        break;
      case isa::Kind::CallKfunc:
        return make_error_at(Errc::Unsupported, at, "call to kernel function (BTF id " + std::to_string(in.imm) + ") is not supported");
      case isa::Kind::Lddw: {
        if (in.op == isa::Op::LDDW_CODE) {
          const size_t f = function_of(static_cast<size_t>(isa::jump_target(in, pc)));
          callback_functions_.push_back(f);
          a.lea(kReg[in.dst], x86::ptr(func_labels_[f]));
          break;
        }
        auto v = detail::resolve_lddw(p_, pc, img_.bindings, img_.regions);
        if (!v) return v.error();
        a.mov(kReg[in.dst], *v);
        break;
      }
      case isa::Kind::LdAbs: case isa::Kind::LdInd: {
        if (info(in.op).kind == isa::Kind::LdInd) {
          a.mov(x86::r10d, kReg[in.src].r32());
          a.add(x86::r10d, in.imm);
          a.mov(x86::edi, x86::r10d);
        } else {
          a.mov(x86::edi, static_cast<uint32_t>(in.imm));
        }
        a.mov(x86::esi, isa::mem_size(in.opcode));
        call_abs(reinterpret_cast<const void*>(&jit_ld));
        a.test(x86::rdx, x86::rdx);
        a.jz(epilogue_);  // out of bounds: the program ends with r0 = 0
        break;
      }
      case isa::Kind::Ldx: {
        const unsigned size = isa::mem_size(in.opcode);
        const x86::Mem m = mem(in.src, in.off, size);
        const x86::Gp D = kReg[in.dst];
        if (isa::is_sign_extending_load(in.opcode)) {
          if (size == 4) a.movsxd(D, m);
          else a.movsx(D, m);
        } else if (size < 4) {
          a.movzx(D.r32(), m);
        } else {
          a.mov(size == 4 ? D.r32() : D, m);
        }
        break;
      }
      case isa::Kind::St: {
        const unsigned size = isa::mem_size(in.opcode);
        a.mov(mem(in.dst, in.off, size), size == 8 ? static_cast<int64_t>(in.imm) : static_cast<int64_t>(in.imm) & ((int64_t{1} << (size * 8)) - 1));
        break;
      }
      case isa::Kind::Stx: {
        const unsigned size = isa::mem_size(in.opcode);
        a.mov(mem(in.dst, in.off, size), sized(kReg[in.src], size));
        break;
      }
      case isa::Kind::Atomic: atomic(in); break;
    }
    return {};
  }

  const isa::Program& p_;
  const HelperRegistry& helpers_;
  JitImage& img_;
  CodeHolder code_;
  std::unique_ptr<x86::Assembler> a_;
  std::vector<Label> insn_labels_, func_labels_;
  std::vector<size_t> callback_functions_;
  Label body_, epilogue_;
};

}  // namespace

detail::JitImage::~JitImage() {
  if (code) {
    std::lock_guard lk(rt_mutex());
    runtime().release(code);
  }
}

namespace detail {
Result<std::shared_ptr<const JitImage>> build_jit(const isa::Program& prog, const HelperRegistry& helpers, Bindings bindings) {
#if !defined(__x86_64__)
  (void)prog;
  (void)helpers;
  (void)bindings;
  return make_error(Errc::Unsupported, "the JIT emits x86-64 code; this host is not x86-64 (use the interpreter)");
#else
  auto img = std::make_shared<JitImage>();
  img->bindings = std::move(bindings);
  img->registry = helpers;
  Compiler c(prog, helpers, *img);
  if (auto r = c.compile(); !r) return r.error();
  return std::shared_ptr<const JitImage>(std::move(img));
#endif
}

Result<uint64_t> run_jit(const JitImage& img, const RunArgs& args, RunState& run) {
  maps::reclaim::Guard epoch;
  const CallbackInvoker saved = run.callbacks;
  run.callbacks = {jit_invoke, &img};
  run.packet = args.packet;
  run.fault.clear();
  const uint64_t r0 = img.entry(args.regs[0], args.regs[1], args.regs[2], args.regs[3], args.regs[4]);
  run.callbacks = saved;
  if (!run.fault.empty()) return make_error(Errc::RuntimeFault, run.fault);
  return r0;
}
}  // namespace detail

Result<JitProgram> JitProgram::compile_trusted(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps) {
  auto img = detail::build_jit(program.data().decoded, helpers, detail::bindings_of(maps));
  if (!img) return img.error();
  return JitProgram(std::move(*img));
}

Result<JitProgram> JitProgram::compile(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps,
                                       uint32_t memory_size) {
  VerifyOptions vo;
  vo.context = VerifyOptions::Context::Memory;
  vo.memory_size = memory_size;
  if (auto r = verify(program, helpers, maps, vo); !r) return r.error();
  auto img = detail::build_jit(program.data().decoded, helpers, detail::bindings_of(maps));
  if (!img) return img.error();
  return JitProgram(std::move(*img), memory_size);
}

Result<uint64_t> JitProgram::run(std::span<uint8_t> mem) const {
  if (mem.size() < memory_size_)
    return make_error(Errc::InvalidArgument, "the program was verified for " + std::to_string(memory_size_) +
                                                 " bytes of memory; " + std::to_string(mem.size()) + " given");
  return run(memory_args(mem));
}

Result<uint64_t> JitProgram::run(const RunArgs& args) const {
  detail::RunState local;
  detail::RunState* run = detail::current_run();
  std::optional<detail::RunScope> scope;
  if (!run) {
    run = &local;
    scope.emplace(local);
  }
  return detail::run_jit(*img_, args, *run);
}

size_t JitProgram::code_size() const { return img_->size; }

}  // namespace ebpfvm
