#include "progtype/ctx_rewrite.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <deque>
#include <string>


namespace ebpfvm::detail {
namespace {

// What a register or stack slot may hold, as a set: joining two states ORs them.
constexpr uint8_t kScalar = 1, kCtx = 2, kCtxMoved = 4;  // 0: not reached
constexpr int kSlots = isa::kStackSize / 8;

struct State {
  std::array<uint8_t, 11> r{};
  std::array<uint8_t, kSlots> stack{};
  bool reached = false;

  bool join(const State& o) {
    bool changed = !reached;
    reached = true;
    for (size_t i = 0; i < r.size(); ++i) {
      uint8_t v = r[i] | o.r[i];
      changed |= v != r[i];
      r[i] = v;
    }
    for (size_t i = 0; i < stack.size(); ++i) {
      uint8_t v = stack[i] | o.stack[i];
      changed |= v != stack[i];
      stack[i] = v;
    }
    return changed;
  }
};

State entry_state(bool ctx_in_r1) {
  State s;
  s.r.fill(kScalar);
  s.stack.fill(kScalar);
  if (ctx_in_r1) s.r[1] = kCtx;
  s.reached = true;
  return s;
}

Error fail(size_t pc, const std::string& msg) { return make_error_at(Errc::MalformedProgram, static_cast<uint32_t>(pc), msg); }

std::string access(const isa::Insn& in, unsigned size) {
  return "off=" + std::to_string(in.off) + " size=" + std::to_string(size);
}

// 8-byte stack slot index for r10 + off, or -1.
int slot_of(int64_t off, unsigned size) {
  if (size != 8 || off >= 0 || off < -static_cast<int64_t>(isa::kStackSize) || off % 8) return -1;
  return static_cast<int>((off + isa::kStackSize) / 8);
}

// Marks every slot touched by a non-spill store as scalar.
void clobber_stack(State& s, int64_t off, unsigned size) {
  for (int64_t b = off; b < off + size; ++b) {
    if (b < -static_cast<int64_t>(isa::kStackSize) || b >= 0) continue;
    s.stack[static_cast<size_t>((b + isa::kStackSize) / 8)] = kScalar;
  }
}

class Analysis {
 public:
  Analysis(const isa::Program& p, std::span<const CtxField> fields) : p_(p), fields_(fields), in_(p.insns.size()) {}

  Result<void> run() {
    push(0, entry_state(true));
    for (size_t pc = 0; pc < p_.insns.size(); ++pc)
      if (p_.insns[pc].op == isa::Op::LDDW_CODE) push(static_cast<size_t>(isa::jump_target(p_.insns[pc], pc)), entry_state(false));
    while (!work_.empty()) {
      size_t pc = work_.front();
      work_.pop_front();
      queued_[pc] = false;
      (void)step(pc);
    }
    // Judge accesses only on the final states: a partial state may lack a path still to come.
    checking_ = true;
    for (size_t pc = 0; pc < in_.size(); ++pc)
      if (in_[pc].reached)
        if (auto r = step(pc); !r) return r;
    return {};
  }

  // Context loads found reachable with a base that is exactly the context.
  const std::vector<std::pair<size_t, const CtxField*>>& loads() const { return loads_; }

 private:
  void push(size_t pc, const State& s) {
    if (checking_ || pc >= in_.size()) return;
    if (in_[pc].join(s) && !queued_[pc]) {
      queued_[pc] = true;
      work_.push_back(pc);
    }
  }

  Result<void> check_base(size_t pc, const isa::Insn& in, uint8_t base, unsigned reg, unsigned size, bool write) {
    if (!checking_ || !(base & (kCtx | kCtxMoved))) return {};
    const std::string r = "R" + std::to_string(reg);
    if (base & kCtxMoved) return fail(pc, "dereference of modified ctx ptr " + r + " " + access(in, size) + " disallowed");
    if (base != kCtx) return fail(pc, r + " is the context on some paths and not on others; the same instruction cannot access both");
    const CtxField* f = ctx_field_for(fields_, in.off, size, write);
    if (!f) {
      const bool any_writable = std::any_of(fields_.begin(), fields_.end(), [](const CtxField& x) { return x.store_size != 0; });
      const char* why = !write ? "" : any_writable ? " (not a writable field, or not written whole)" : " (the context is read-only)";
      return fail(pc, "invalid bpf_context access " + access(in, size) + why);
    }
    if (write && isa::info(in.op).kind == isa::Kind::Atomic) return fail(pc, "BPF_ATOMIC stores into " + r + " context is not allowed");
    if (std::find(loads_.begin(), loads_.end(), std::make_pair(pc, f)) == loads_.end()) loads_.emplace_back(pc, f);
    return {};
  }

  Result<void> step(size_t pc) {
    State s = in_[pc];
    const isa::Insn& in = p_.insns[pc];
    const isa::Kind kind = isa::info(in.op).kind;
    const unsigned size = isa::mem_size(in.opcode);
    switch (kind) {
      case isa::Kind::Alu: {
        const bool mov = isa::op_code(in.opcode) == 0xb0;
        const bool src_reg = isa::uses_src_reg(in.opcode);
        if (mov && src_reg && isa::is_alu64(in.opcode)) s.r[in.dst] = s.r[in.src];
        else if (mov) s.r[in.dst] = kScalar;
        else if (s.r[in.dst] & (kCtx | kCtxMoved)) s.r[in.dst] = (s.r[in.dst] & kScalar) | kCtxMoved;
        else s.r[in.dst] = kScalar;
        break;
      }
      case isa::Kind::Neg: case isa::Kind::End: case isa::Kind::MovSx:
        s.r[in.dst] = (s.r[in.dst] & (kCtx | kCtxMoved)) ? kCtxMoved : kScalar;
        break;
      case isa::Kind::Lddw: case isa::Kind::LdAbs: case isa::Kind::LdInd:
        s.r[kind == isa::Kind::Lddw ? in.dst : 0] = kScalar;
        break;
      case isa::Kind::Ldx: {
        if (auto r = check_base(pc, in, s.r[in.src], in.src, size, false); !r) return r;
        int slot = in.src == 10 ? slot_of(in.off, size) : -1;
        s.r[in.dst] = slot >= 0 ? s.stack[static_cast<size_t>(slot)] : kScalar;
        break;
      }
      case isa::Kind::St: case isa::Kind::Stx: case isa::Kind::Atomic: {
        if (auto r = check_base(pc, in, s.r[in.dst], in.dst, size, true); !r) return r;
        const uint8_t value = kind == isa::Kind::St ? kScalar : s.r[in.src];
        if (in.dst == 10 && kind != isa::Kind::Atomic) {
          int slot = slot_of(in.off, size);
          if (slot >= 0) s.stack[static_cast<size_t>(slot)] = value;
          else if (checking_ && (value & (kCtx | kCtxMoved))) return fail(pc, "context pointer spilled with a partial or unaligned store");
          else clobber_stack(s, in.off, size);
        } else if (checking_ && (value & (kCtx | kCtxMoved))) {
          return fail(pc, "context pointer stored to memory other than the stack");
        }
        if (kind == isa::Kind::Atomic && (in.imm & isa::kAtomicFetch)) {
          s.r[in.imm == isa::kAtomicCmpxchg ? 0 : in.src] = kScalar;
        }
        break;
      }
      case isa::Kind::Call: case isa::Kind::CallKfunc: case isa::Kind::Callx:
        for (int i = 0; i <= 5; ++i) s.r[static_cast<size_t>(i)] = kScalar;
        break;
      case isa::Kind::CallLocal: {
        State callee = entry_state(false);
        for (int i = 1; i <= 5; ++i) callee.r[static_cast<size_t>(i)] = s.r[static_cast<size_t>(i)];
        push(static_cast<size_t>(isa::jump_target(in, pc)), callee);
        for (int i = 0; i <= 5; ++i) s.r[static_cast<size_t>(i)] = kScalar;
        break;
      }
      case isa::Kind::Exit:
        return {};
      case isa::Kind::Ja:
        push(static_cast<size_t>(isa::jump_target(in, pc)), s);
        return {};
      case isa::Kind::Jcond:
        push(static_cast<size_t>(isa::jump_target(in, pc)), s);
        break;
    }
    push(pc + (kind == isa::Kind::Lddw ? 2 : 1), s);
    return {};
  }

  const isa::Program& p_;
  std::span<const CtxField> fields_;
  std::vector<State> in_;
  std::vector<bool> queued_ = std::vector<bool>(p_.insns.size(), false);
  std::deque<size_t> work_;
  bool checking_ = false;
  std::vector<std::pair<size_t, const CtxField*>> loads_;
};

// Whether the access at pc needs rewriting: a load of a field kept elsewhere (a pointer behind a
// u32), or a store to a field kept narrower than programs write it.
bool needs_rewrite(const isa::Insn& in, const CtxField& f) {
  const bool load = isa::info(in.op).kind == isa::Kind::Ldx;
  return load ? f.rewrite_off >= 0 : f.store_size && f.store_size < isa::mem_size(in.opcode);
}

// Rewrites the access at pc to field f, in place in `bytes`.
void rewrite_access(const isa::Insn& in, const CtxField& f, size_t pc, std::vector<uint8_t>& bytes) {
  isa::RawInsn raw = isa::read_raw(&bytes[pc * 8]);
  if (isa::info(in.op).kind == isa::Kind::Ldx) {
    raw.opcode = 0x79;  // ldxdw: same registers, the 64-bit pointer behind the u32 field
    raw.off = static_cast<int16_t>(f.rewrite_off);
  } else {
    // st/stx of the field's low bytes (little-endian): the size bits become store_size's
    const uint8_t size_bits = f.store_size == 1 ? 0x10 : f.store_size == 2 ? 0x08 : f.store_size == 4 ? 0x00 : 0x18;
    raw.opcode = static_cast<uint8_t>((raw.opcode & ~0x18) | size_bits);
  }
  isa::write_raw(raw, &bytes[pc * 8]);
}

}  // namespace

Result<void> rewrite_ctx_loads(const isa::Program& prog, std::span<const CtxField> fields, std::span<const uint32_t> loads,
                               std::vector<uint8_t>& bytes) {
  for (uint32_t pc : loads) {
    const isa::Insn* in = pc < prog.insns.size() ? &prog.insns[pc] : nullptr;
    const bool write = in && isa::info(in->op).kind != isa::Kind::Ldx;
    const CtxField* f = in ? ctx_field_for(fields, in->off, isa::mem_size(in->opcode), write) : nullptr;
    if (!f || !needs_rewrite(*in, *f) || pc * 8 + 8 > bytes.size())
      return make_error_at(Errc::VerifierRejected, pc, "context access the verifier reported is not one of a rewritten field");
    rewrite_access(*in, *f, pc, bytes);
  }
  return {};
}

Result<void> rewrite_ctx_accesses(const isa::Program& prog, std::span<const CtxField> fields, std::vector<uint8_t>& bytes) {
  Analysis a(prog, fields);
  if (auto r = a.run(); !r) return r;
  for (const auto& [pc, f] : a.loads())
    if (needs_rewrite(prog.insns[pc], *f)) rewrite_access(prog.insns[pc], *f, pc, bytes);
  return {};
}

}  // namespace ebpfvm::detail
