// Direct-threaded interpreter. Each decoded slot becomes a 16-byte TInsn whose first word is the
// address of its handler, so dispatch is one indirect jump. The same source is instantiated twice:
// kChecked adds bounds checks on memory, alignment checks on atomics and an instruction budget;
// the unchecked instantiation has none of them in its hot loop.
#include "ebpfvm/interpreter.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <string>

#include "interp/image.hpp"
#include "ebpfvm/verifier.hpp"
#include "maps/reclaim.hpp"
#include "program_data.hpp"

static_assert(std::endian::native == std::endian::little, "the interpreter assumes a little-endian host");

namespace ebpfvm {

namespace {

using detail::HelperSlot;
using detail::InterpImage;
using detail::MemRegion;
using detail::RunState;
using detail::TInsn;

enum class Fault : uint8_t { None, OutOfBounds, Misaligned, CallDepth, UnknownHelper, Budget, Helper, Internal };

struct Outcome {
  uint64_t r0 = 0;
  Fault fault = Fault::None;
  uint32_t pc = 0;
  uint64_t addr = 0;  // faulting address, or helper id for UnknownHelper
  uint32_t size = 0;
  bool write = false;
  uint64_t executed = 0;
};

struct Frame {
  const TInsn* ret;
  const InterpImage* img;  // a tail call in a subprogram switches images below this frame
  uint64_t saved[4];       // r6..r9
  uint64_t fp;             // r10
};

// Extra slots of the handler table after the ISA's: pseudo-instructions the lowering emits.
enum Pseudo : size_t { kTailCall = isa::kOpCount, kLabelCount };
constexpr uint32_t kMaxCallbackDepth = 8;

constexpr uint32_t kStackBytes = isa::kStackSize * isa::kMaxCallFrames;

// Memory an unverified program may touch.
struct Guard {
  const uint8_t* stack;
  std::span<uint8_t> packet;
  std::span<const Region> regions;
  const InterpImage* img;  // its map values (global data)
  const RunState* run;     // memory handed out during the run

  static bool inside(uint64_t addr, uint64_t size, uint64_t base, uint64_t len) {
    return addr >= base && size <= len && addr - base <= len - size;
  }
  bool allows(uint64_t addr, uint64_t size, bool write) const {
    if (inside(addr, size, reinterpret_cast<uintptr_t>(stack), kStackBytes)) return true;
    if (inside(addr, size, reinterpret_cast<uintptr_t>(packet.data()), packet.size())) return true;
    for (const Region& r : regions)
      if ((r.writable || !write) && inside(addr, size, reinterpret_cast<uintptr_t>(r.base), r.size)) return true;
    for (const MemRegion& r : img->static_regions)
      if ((r.writable || !write) && inside(addr, size, r.base, r.size)) return true;
    return run->allows(addr, size, write);
  }
};

bool guard_allows(const void* guard, uint64_t addr, uint64_t size, bool write) {
  return static_cast<const Guard*>(guard)->allows(addr, size, write);
}

// What a callback invocation needs to run nested in the same run.
struct CallbackEngine {
  const InterpImage* img;  // the image whose helper call is running
  const RunArgs* args;
  const uint8_t* stack;    // the caller's stack, which the callback may read through pointers
  uint64_t ctx;
};

bool invoke_callback(const void* engine, uint64_t code, const uint64_t args[5], uint64_t* r0);
std::string check_helper_args(const HelperSlot& h, const uint64_t* R, const Guard& guard, const RunState& run,
                              const InterpImage& img, uint64_t ctx);
void after_helper(const HelperSlot& h, uint64_t r0, const uint64_t* args, RunState& run);

template <class T>
T load(uint64_t addr) {
  T v;
  std::memcpy(&v, reinterpret_cast<const void*>(addr), sizeof v);
  return v;
}

template <class T>
void store(uint64_t addr, T v) {
  std::memcpy(reinterpret_cast<void*>(addr), &v, sizeof v);
}

template <class T>
T* atomic_ptr(uint64_t addr) {
  return reinterpret_cast<T*>(addr);
}

// Where a run starts: slot 0 with RunArgs' registers, or a callback entry with its arguments.
struct Entry {
  const TInsn* ip;
  uint64_t regs[5];
  uint64_t ctx;  // the program's context (PtrToCtx arguments must be it)
};

// Runs img from entry. With img == nullptr, only stores the handler table in *labels_out.
template <bool kChecked>
Outcome execute(const InterpImage* img, const RunArgs* args, RunState* run, const Entry* entry,
                const void* const** labels_out) {
  static const void* const kLabels[] = {
#define EBPFVM_OP(name, ...) &&L_##name,
#include "isa/opcodes.def"
#undef EBPFVM_OP
      &&L_LDDW_HI,
      &&L_TAIL_CALL,
  };
  static_assert(std::size(kLabels) == kLabelCount);
  if (!img) {
    *labels_out = kLabels;
    return {};
  }

  Outcome out;
  alignas(16) uint8_t stack[kStackBytes];
  Frame frames[isa::kMaxCallFrames];
  uint32_t depth = 0;
  uint64_t R[11] = {};
  for (int i = 0; i < 5; ++i) R[i + 1] = entry->regs[i];
  R[10] = reinterpret_cast<uintptr_t>(stack) + kStackBytes;
  const InterpImage* cur = img;
  Guard guard{stack, args->packet, args->regions, cur, run};
  CallbackEngine cb{cur, args, stack, entry->ctx};
  const detail::CallbackInvoker saved_invoker = run->callbacks;
  const detail::MemChecker saved_memory = run->memory;
  run->callbacks = {invoke_callback, &cb};
  run->memory = {guard_allows, &guard};
  uint64_t budget = run->budget;
  const TInsn* base = cur->code.data();
  const TInsn* ip = entry->ip;
  detail::StepObserver* const observer = kChecked ? detail::t_step_observer : nullptr;

#define DST R[ip->dst]
#define SRC R[ip->src]
#define IMM static_cast<uint64_t>(static_cast<int64_t>(ip->imm))
#define DST32 static_cast<uint32_t>(R[ip->dst])
#define SRC32 static_cast<uint32_t>(R[ip->src])
#define IMM32 static_cast<uint32_t>(ip->imm)
#define DISPATCH                                                                            \
  do {                                                                                      \
    if constexpr (kChecked) {                                                               \
      if (observer) [[unlikely]]                                                            \
        observer->step(cur, static_cast<size_t>(ip - base), R, *run);                       \
      if (budget == 0) goto fault_budget;                                                   \
      --budget;                                                                             \
    }                                                                                       \
    goto *ip->label;                                                                        \
  } while (0)
#define NEXT \
  do {       \
    ++ip;    \
    DISPATCH; \
  } while (0)
#define FAULT(kind, a, sz, wr)                          \
  do {                                                  \
    out.fault = kind;                                   \
    out.addr = a;                                       \
    out.size = sz;                                      \
    out.write = wr;                                     \
    goto finish;                                        \
  } while (0)
#define CHECK(addr, sz, wr)                                                          \
  do {                                                                               \
    if constexpr (kChecked) {                                                        \
      if (!guard.allows(addr, sz, wr)) FAULT(Fault::OutOfBounds, addr, sz, wr);      \
    }                                                                                \
  } while (0)
#define CHECK_ALIGNED(addr, sz)                                                      \
  do {                                                                               \
    if constexpr (kChecked) {                                                        \
      CHECK(addr, sz, true);                                                         \
      if ((addr) % (sz) != 0) FAULT(Fault::Misaligned, addr, sz, true);              \
    }                                                                                \
  } while (0)

  DISPATCH;

  // ---- ALU64 ----
L_ADD64_K: DST += IMM; NEXT;
L_ADD64_X: DST += SRC; NEXT;
L_SUB64_K: DST -= IMM; NEXT;
L_SUB64_X: DST -= SRC; NEXT;
L_MUL64_K: DST *= IMM; NEXT;
L_MUL64_X: DST *= SRC; NEXT;
L_DIV64_K: DST = IMM ? DST / IMM : 0; NEXT;
L_DIV64_X: DST = SRC ? DST / SRC : 0; NEXT;
L_SDIV64_K: { int64_t d = static_cast<int64_t>(IMM); DST = d == 0 ? 0 : d == -1 ? 0 - DST : static_cast<uint64_t>(static_cast<int64_t>(DST) / d); } NEXT;
L_SDIV64_X: { int64_t d = static_cast<int64_t>(SRC); DST = d == 0 ? 0 : d == -1 ? 0 - DST : static_cast<uint64_t>(static_cast<int64_t>(DST) / d); } NEXT;
L_OR64_K: DST |= IMM; NEXT;
L_OR64_X: DST |= SRC; NEXT;
L_AND64_K: DST &= IMM; NEXT;
L_AND64_X: DST &= SRC; NEXT;
L_LSH64_K: DST <<= (IMM & 63); NEXT;
L_LSH64_X: DST <<= (SRC & 63); NEXT;
L_RSH64_K: DST >>= (IMM & 63); NEXT;
L_RSH64_X: DST >>= (SRC & 63); NEXT;
L_NEG64: DST = 0 - DST; NEXT;
L_MOD64_K: DST = IMM ? DST % IMM : DST; NEXT;
L_MOD64_X: DST = SRC ? DST % SRC : DST; NEXT;
L_SMOD64_K: { int64_t d = static_cast<int64_t>(IMM); DST = d == 0 ? DST : d == -1 ? 0 : static_cast<uint64_t>(static_cast<int64_t>(DST) % d); } NEXT;
L_SMOD64_X: { int64_t d = static_cast<int64_t>(SRC); DST = d == 0 ? DST : d == -1 ? 0 : static_cast<uint64_t>(static_cast<int64_t>(DST) % d); } NEXT;
L_XOR64_K: DST ^= IMM; NEXT;
L_XOR64_X: DST ^= SRC; NEXT;
L_MOV64_K: DST = IMM; NEXT;
L_MOV64_X: DST = SRC; NEXT;
L_MOVSX64_8: DST = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(SRC))); NEXT;
L_MOVSX64_16: DST = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(SRC))); NEXT;
L_MOVSX64_32: DST = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(SRC))); NEXT;
L_ARSH64_K: DST = static_cast<uint64_t>(static_cast<int64_t>(DST) >> (IMM & 63)); NEXT;
L_ARSH64_X: DST = static_cast<uint64_t>(static_cast<int64_t>(DST) >> (SRC & 63)); NEXT;
L_BSWAP16: DST = __builtin_bswap16(static_cast<uint16_t>(DST)); NEXT;
L_BSWAP32: DST = __builtin_bswap32(static_cast<uint32_t>(DST)); NEXT;
L_BSWAP64: DST = __builtin_bswap64(DST); NEXT;

  // ---- ALU32: every result is zero-extended ----
L_ADD32_K: DST = DST32 + IMM32; NEXT;
L_ADD32_X: DST = DST32 + SRC32; NEXT;
L_SUB32_K: DST = static_cast<uint32_t>(DST32 - IMM32); NEXT;
L_SUB32_X: DST = static_cast<uint32_t>(DST32 - SRC32); NEXT;
L_MUL32_K: DST = static_cast<uint32_t>(DST32 * IMM32); NEXT;
L_MUL32_X: DST = static_cast<uint32_t>(DST32 * SRC32); NEXT;
L_DIV32_K: DST = IMM32 ? DST32 / IMM32 : 0; NEXT;
L_DIV32_X: DST = SRC32 ? DST32 / SRC32 : 0; NEXT;
L_SDIV32_K: { int32_t d = static_cast<int32_t>(IMM32); DST = d == 0 ? 0 : d == -1 ? static_cast<uint32_t>(0u - DST32) : static_cast<uint32_t>(static_cast<int32_t>(DST32) / d); } NEXT;
L_SDIV32_X: { int32_t d = static_cast<int32_t>(SRC32); DST = d == 0 ? 0 : d == -1 ? static_cast<uint32_t>(0u - DST32) : static_cast<uint32_t>(static_cast<int32_t>(DST32) / d); } NEXT;
L_OR32_K: DST = DST32 | IMM32; NEXT;
L_OR32_X: DST = DST32 | SRC32; NEXT;
L_AND32_K: DST = DST32 & IMM32; NEXT;
L_AND32_X: DST = DST32 & SRC32; NEXT;
L_LSH32_K: DST = static_cast<uint32_t>(DST32 << (IMM32 & 31)); NEXT;
L_LSH32_X: DST = static_cast<uint32_t>(DST32 << (SRC32 & 31)); NEXT;
L_RSH32_K: DST = DST32 >> (IMM32 & 31); NEXT;
L_RSH32_X: DST = DST32 >> (SRC32 & 31); NEXT;
L_NEG32: DST = static_cast<uint32_t>(0u - DST32); NEXT;
L_MOD32_K: DST = IMM32 ? DST32 % IMM32 : DST32; NEXT;
L_MOD32_X: DST = SRC32 ? DST32 % SRC32 : DST32; NEXT;
L_SMOD32_K: { int32_t d = static_cast<int32_t>(IMM32); DST = d == 0 ? DST32 : d == -1 ? 0 : static_cast<uint32_t>(static_cast<int32_t>(DST32) % d); } NEXT;
L_SMOD32_X: { int32_t d = static_cast<int32_t>(SRC32); DST = d == 0 ? DST32 : d == -1 ? 0 : static_cast<uint32_t>(static_cast<int32_t>(DST32) % d); } NEXT;
L_XOR32_K: DST = DST32 ^ IMM32; NEXT;
L_XOR32_X: DST = DST32 ^ SRC32; NEXT;
L_MOV32_K: DST = IMM32; NEXT;
L_MOV32_X: DST = SRC32; NEXT;
L_MOVSX32_8: DST = static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(SRC))); NEXT;
L_MOVSX32_16: DST = static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(SRC))); NEXT;
L_ARSH32_K: DST = static_cast<uint32_t>(static_cast<int32_t>(DST32) >> (IMM32 & 31)); NEXT;
L_ARSH32_X: DST = static_cast<uint32_t>(static_cast<int32_t>(DST32) >> (SRC32 & 31)); NEXT;
L_LE16: DST = static_cast<uint16_t>(DST); NEXT;
L_LE32: DST = DST32; NEXT;
L_LE64: NEXT;
L_BE16: DST = __builtin_bswap16(static_cast<uint16_t>(DST)); NEXT;
L_BE32: DST = __builtin_bswap32(DST32); NEXT;
L_BE64: DST = __builtin_bswap64(DST); NEXT;

  // ---- jumps: a taken branch adds off (or imm) to the slot after the jump ----
#define JUMP_IF(cond)        \
  do {                       \
    if (cond) ip += ip->off; \
    NEXT;                    \
  } while (0)
#define S64(x) static_cast<int64_t>(x)
#define S32(x) static_cast<int32_t>(x)
L_JA: ip += ip->off; NEXT;
L_JA32: ip += ip->imm; NEXT;
#define U64(x) (x)
#define U32(x) (x)
  // One comparison, four encodings: 64/32-bit, immediate/register.
#define JCOND(NAME, CMP, C64, C32)                       \
  L_##NAME##_K: JUMP_IF(C64(DST) CMP C64(IMM));          \
  L_##NAME##_X: JUMP_IF(C64(DST) CMP C64(SRC));          \
  L_##NAME##32_K: JUMP_IF(C32(DST32) CMP C32(IMM32));    \
  L_##NAME##32_X: JUMP_IF(C32(DST32) CMP C32(SRC32));
  JCOND(JEQ, ==, U64, U32)
  JCOND(JNE, !=, U64, U32)
  JCOND(JGT, >, U64, U32)
  JCOND(JGE, >=, U64, U32)
  JCOND(JLT, <, U64, U32)
  JCOND(JLE, <=, U64, U32)
  JCOND(JSET, &, U64, U32)
  JCOND(JSGT, >, S64, S32)
  JCOND(JSGE, >=, S64, S32)
  JCOND(JSLT, <, S64, S32)
  JCOND(JSLE, <=, S64, S32)
#undef JCOND
#undef U64
#undef U32

  // ---- calls ----
L_CALL: {
  const HelperSlot& h = cur->calls[static_cast<uint32_t>(ip->imm)];
  if constexpr (kChecked) {
    std::string why = check_helper_args(h, R, guard, *run, *cur, entry->ctx);
    if (!why.empty()) {
      run->fault = "call to " + (h.id ? std::to_string(h.id) : std::string()) + ": " + why;
      FAULT(Fault::Helper, 0, 0, false);
    }
    run->budget = budget;
  }
  cb.img = cur;
  const uint64_t args5[5] = {R[1], R[2], R[3], R[4], R[5]};
  R[0] = h.fn(R[1], R[2], R[3], R[4], R[5], h.user);
  if (!run->fault.empty()) FAULT(Fault::Helper, 0, 0, false);
  if constexpr (kChecked) {
    budget = run->budget;
    after_helper(h, R[0], args5, *run);
    if (!run->fault.empty()) FAULT(Fault::Helper, 0, 0, false);
  }
  (void)args5;
  NEXT;
}
L_CALLX: {
  const Helper* h = DST <= UINT32_MAX ? cur->registry.find(static_cast<uint32_t>(DST)) : nullptr;
  if (!h) FAULT(Fault::UnknownHelper, DST, 0, false);
  if constexpr (kChecked) {
    // An unverified callx may only reach helpers without pointer arguments.
    for (ArgKind k : h->proto.args)
      if (k != ArgKind::None && k != ArgKind::Anything) FAULT(Fault::UnknownHelper, DST, 0, false);
  }
  R[0] = h->fn(R[1], R[2], R[3], R[4], R[5], h->user);
  NEXT;
}
L_TAIL_CALL: {
  // bpf_tail_call(ctx, prog_array, index): on success the target replaces the running function
  // (same frame, same stack, r1 = ctx) and never returns here; on failure execution continues.
  auto* map = reinterpret_cast<detail::MapImpl*>(R[2]);
  if constexpr (kChecked) {
    const bool known = std::find(cur->map_ptrs.begin(), cur->map_ptrs.end(), map) != cur->map_ptrs.end() ||
                       run->knows_map(map);
    if (!known) {
      run->fault = "bpf_tail_call: R2 is not a map";
      FAULT(Fault::Helper, 0, 0, false);
    }
  }
  if (map->spec().type == MapType::ProgArray && run->tail_calls < RunState::kMaxTailCalls) {
    const auto* target = static_cast<const detail::ProgEntry*>(detail::prog_array_get(*map, static_cast<uint32_t>(R[3])));
    if (target && target->image->options.safety == cur->options.safety) {
      ++run->tail_calls;
      cur = target->image.get();
      guard.img = cur;
      base = cur->code.data();
      ip = base;
      DISPATCH;
    }
  }
  R[0] = 0;  // failed: r0 is 0, as in the JIT (the prototype says an integer; no earlier value shows through)
  NEXT;
}
L_CALL_LOCAL:
  if (depth + 1 >= isa::kMaxCallFrames) FAULT(Fault::CallDepth, 0, 0, false);
  frames[depth] = Frame{ip, cur, {R[6], R[7], R[8], R[9]}, R[10]};
  ++depth;
  R[10] -= isa::kStackSize;
  ip += ip->imm;
  NEXT;
L_EXIT:
  if (depth == 0) {
    out.r0 = R[0];
    goto finish;
  }
  --depth;
  ip = frames[depth].ret;
  cur = frames[depth].img;
  guard.img = cur;
  base = cur->code.data();
  R[6] = frames[depth].saved[0];
  R[7] = frames[depth].saved[1];
  R[8] = frames[depth].saved[2];
  R[9] = frames[depth].saved[3];
  R[10] = frames[depth].fp;
  NEXT;

  // ---- 64-bit immediates: every pseudo source is resolved to a value when the image is built ----
L_LDDW_MAP_FD:
L_LDDW_MAP_VALUE:
L_LDDW_VAR:
L_LDDW_CODE:
L_LDDW_MAP_IDX:
L_LDDW_MAP_IDX_VALUE:
L_LDDW:
  DST = static_cast<uint32_t>(ip->imm) | (static_cast<uint64_t>(static_cast<uint32_t>(ip[1].imm)) << 32);
  ip += 2;
  DISPATCH;
L_CALL_KFUNC:  // rejected when the image is built
L_LDDW_HI:     // jumps into an lddw are rejected by the decoder
  FAULT(Fault::Internal, 0, 0, false);

  // ---- legacy packet loads: out of bounds ends the program with r0 = 0 ----
#define PACKET_LOAD(T, offset)                                                              \
  do {                                                                                      \
    uint64_t o = static_cast<uint32_t>(offset);                                             \
    const std::span<uint8_t> pkt = detail::ld_packet(*run, args->packet);                   \
    if (o > pkt.size() || pkt.size() - o < sizeof(T)) {                                     \
      out.r0 = 0;                                                                           \
      goto finish;                                                                          \
    }                                                                                       \
    T v;                                                                                    \
    std::memcpy(&v, pkt.data() + o, sizeof v);                                              \
    R[0] = sizeof(T) == 1 ? v : sizeof(T) == 2 ? __builtin_bswap16(static_cast<uint16_t>(v)) \
                                               : __builtin_bswap32(static_cast<uint32_t>(v)); \
    NEXT;                                                                                   \
  } while (0)
L_LDABSW: PACKET_LOAD(uint32_t, IMM32);
L_LDABSH: PACKET_LOAD(uint16_t, IMM32);
L_LDABSB: PACKET_LOAD(uint8_t, IMM32);
L_LDINDW: PACKET_LOAD(uint32_t, SRC32 + IMM32);
L_LDINDH: PACKET_LOAD(uint16_t, SRC32 + IMM32);
L_LDINDB: PACKET_LOAD(uint8_t, SRC32 + IMM32);

  // ---- loads and stores ----
#define LDX(T, Ext)                                  \
  do {                                               \
    uint64_t a = SRC + static_cast<uint64_t>(static_cast<int64_t>(ip->off)); \
    CHECK(a, sizeof(T), false);                      \
    DST = static_cast<uint64_t>(static_cast<Ext>(load<T>(a))); \
    NEXT;                                            \
  } while (0)
#define STORE(T, value)                              \
  do {                                               \
    uint64_t a = DST + static_cast<uint64_t>(static_cast<int64_t>(ip->off)); \
    CHECK(a, sizeof(T), true);                       \
    store<T>(a, static_cast<T>(value));              \
    NEXT;                                            \
  } while (0)
L_LDXW: LDX(uint32_t, uint64_t);
L_LDXH: LDX(uint16_t, uint64_t);
L_LDXB: LDX(uint8_t, uint64_t);
L_LDXDW: LDX(uint64_t, uint64_t);
L_LDXSW: LDX(int32_t, int64_t);
L_LDXSH: LDX(int16_t, int64_t);
L_LDXSB: LDX(int8_t, int64_t);
L_STW: STORE(uint32_t, IMM);
L_STH: STORE(uint16_t, IMM);
L_STB: STORE(uint8_t, IMM);
L_STDW: STORE(uint64_t, IMM);
L_STXW: STORE(uint32_t, SRC);
L_STXH: STORE(uint16_t, SRC);
L_STXB: STORE(uint8_t, SRC);
L_STXDW: STORE(uint64_t, SRC);

  // ---- atomics: 32-bit forms zero-extend the value they fetch ----
#define ATOMIC(T, builtin, fetch)                                                \
  do {                                                                           \
    uint64_t a = DST + static_cast<uint64_t>(static_cast<int64_t>(ip->off));     \
    CHECK_ALIGNED(a, sizeof(T));                                                 \
    T old = builtin(atomic_ptr<T>(a), static_cast<T>(SRC), __ATOMIC_SEQ_CST);     \
    if (fetch) SRC = old;                                                        \
    NEXT;                                                                        \
  } while (0)
L_AADD32: ATOMIC(uint32_t, __atomic_fetch_add, false);
L_AFADD32: ATOMIC(uint32_t, __atomic_fetch_add, true);
L_AOR32: ATOMIC(uint32_t, __atomic_fetch_or, false);
L_AFOR32: ATOMIC(uint32_t, __atomic_fetch_or, true);
L_AAND32: ATOMIC(uint32_t, __atomic_fetch_and, false);
L_AFAND32: ATOMIC(uint32_t, __atomic_fetch_and, true);
L_AXOR32: ATOMIC(uint32_t, __atomic_fetch_xor, false);
L_AFXOR32: ATOMIC(uint32_t, __atomic_fetch_xor, true);
L_AXCHG32: ATOMIC(uint32_t, __atomic_exchange_n, true);
L_AADD64: ATOMIC(uint64_t, __atomic_fetch_add, false);
L_AFADD64: ATOMIC(uint64_t, __atomic_fetch_add, true);
L_AOR64: ATOMIC(uint64_t, __atomic_fetch_or, false);
L_AFOR64: ATOMIC(uint64_t, __atomic_fetch_or, true);
L_AAND64: ATOMIC(uint64_t, __atomic_fetch_and, false);
L_AFAND64: ATOMIC(uint64_t, __atomic_fetch_and, true);
L_AXOR64: ATOMIC(uint64_t, __atomic_fetch_xor, false);
L_AFXOR64: ATOMIC(uint64_t, __atomic_fetch_xor, true);
L_AXCHG64: ATOMIC(uint64_t, __atomic_exchange_n, true);
#define CMPXCHG(T)                                                               \
  do {                                                                           \
    uint64_t a = DST + static_cast<uint64_t>(static_cast<int64_t>(ip->off));     \
    CHECK_ALIGNED(a, sizeof(T));                                                 \
    T expected = static_cast<T>(R[0]);                                           \
    __atomic_compare_exchange_n(atomic_ptr<T>(a), &expected, static_cast<T>(SRC), false, __ATOMIC_SEQ_CST, \
                                __ATOMIC_SEQ_CST);                               \
    R[0] = expected; /* the old value, whether or not it was replaced */         \
    NEXT;                                                                        \
  } while (0)
L_ACMPXCHG32: CMPXCHG(uint32_t);
L_ACMPXCHG64: CMPXCHG(uint64_t);

fault_budget: __attribute__((unused));
  out.fault = Fault::Budget;
finish:
  out.pc = static_cast<uint32_t>(ip - base);
  run->budget = budget;
  run->callbacks = saved_invoker;
  run->memory = saved_memory;
  return out;

#undef DST
#undef SRC
#undef IMM
#undef DST32
#undef SRC32
#undef IMM32
#undef DISPATCH
#undef NEXT
#undef FAULT
#undef CHECK
#undef CHECK_ALIGNED
#undef JUMP_IF
#undef S64
#undef S32
#undef PACKET_LOAD
#undef LDX
#undef STORE
#undef ATOMIC
#undef CMPXCHG
}

const void* const* labels_for(Safety safety) {
  const void* const* labels = nullptr;
  if (safety == Safety::Checked) execute<true>(nullptr, nullptr, nullptr, nullptr, &labels);
  else execute<false>(nullptr, nullptr, nullptr, nullptr, &labels);
  return labels;
}

Error fault_error(const Outcome& o, const InterpImage& img, const RunState& run) {
  char buf[160];
  switch (o.fault) {
    case Fault::OutOfBounds:
      std::snprintf(buf, sizeof buf, "out-of-bounds %s of %u bytes at 0x%llx", o.write ? "write" : "read", o.size,
                    static_cast<unsigned long long>(o.addr));
      break;
    case Fault::Misaligned:
      std::snprintf(buf, sizeof buf, "misaligned atomic access of %u bytes at 0x%llx", o.size,
                    static_cast<unsigned long long>(o.addr));
      break;
    case Fault::CallDepth:
      std::snprintf(buf, sizeof buf, "call depth exceeds %u frames", isa::kMaxCallFrames);
      break;
    case Fault::UnknownHelper:
      std::snprintf(buf, sizeof buf, "callx to unknown helper id %llu", static_cast<unsigned long long>(o.addr));
      break;
    case Fault::Budget:
      std::snprintf(buf, sizeof buf, "instruction budget of %llu exceeded",
                    static_cast<unsigned long long>(img.options.insn_budget));
      break;
    case Fault::Helper:
      return make_error_at(Errc::RuntimeFault, o.pc, run.fault);
    default:
      std::snprintf(buf, sizeof buf, "internal error: reached an instruction that cannot run");
  }
  return make_error_at(Errc::RuntimeFault, o.pc, buf);
}

// The fault of a run, and the enclosing run's fault (if this one was nested) back in place.
[[gnu::cold, gnu::noinline]] Error nested_fault(const Outcome& o, const InterpImage& img, RunState& run, std::string enclosing) {
  Error e = fault_error(o, img, run);
  run.fault = std::move(enclosing);
  return e;
}

// ---- checked mode: helper arguments against the prototype ----------------------------------------
std::string reg(unsigned i) { return "R" + std::to_string(i + 1); }

std::string check_helper_args(const HelperSlot& h, const uint64_t* R, const Guard& guard, const RunState& run,
                              const InterpImage& img, uint64_t ctx) {
  const detail::MapImpl* map = nullptr;
  const auto& a = h.proto.args;
  for (unsigned i = 0; i < a.size() && a[i] != ArgKind::None; ++i) {
    const uint64_t v = R[i + 1];
    const uint64_t next = i + 1 < a.size() ? R[i + 2] : 0;
    auto mem = [&](uint64_t size, bool write) -> std::string {
      if (size > (1u << 30)) return reg(i + 1) + " size " + std::to_string(size) + " is too large";
      if (size && !guard.allows(v, size, write))
        return reg(i) + " does not point to " + std::to_string(size) + (write ? " writable" : " readable") + " bytes";
      return {};
    };
    std::string why;
    switch (a[i]) {
      case ArgKind::ConstMapPtr:
        map = reinterpret_cast<const detail::MapImpl*>(v);
        if (std::find(img.map_ptrs.begin(), img.map_ptrs.end(), map) == img.map_ptrs.end() && !run.knows_map(map))
          return reg(i) + " is not a map";
        break;
      case ArgKind::PtrToMapKey: why = map ? mem(map->spec().key_size, false) : "no map argument"; break;
      case ArgKind::PtrToMapValue: why = map ? mem(map->spec().value_size, false) : "no map argument"; break;
      case ArgKind::PtrToUninitMapValue: why = map ? mem(map->spec().value_size, true) : "no map argument"; break;
      case ArgKind::PtrToMem:
      case ArgKind::PtrToUninitMem:
        if (!next && a[i + 1] == ArgKind::ConstSize) return reg(i + 1) + " (size) must be above 0";
        why = mem(next, a[i] == ArgKind::PtrToUninitMem);
        if (next && !v) why = reg(i) + " is null";
        break;
      case ArgKind::PtrToMemOrNull: case ArgKind::PtrToFormatArgsOrNull:
        if (v) why = mem(next, false);
        else if (next) why = reg(i) + " is null but the size is " + std::to_string(next);
        break;
      case ArgKind::PtrToInt: why = mem(4, true); break;
      case ArgKind::PtrToLong: why = mem(8, true); break;
      case ArgKind::PtrToSpinLock:
        why = v % 4 ? reg(i) + " is not 4-byte aligned" : mem(4, true);
        break;
      case ArgKind::PtrToCtx:
        if (v != ctx) return reg(i) + " is not the context";
        break;
      default: break;  // scalars; callbacks and ring buffer records are checked where they are used
    }
    if (!why.empty()) return why;
  }
  return {};
}

// Checked mode: memory a helper handed to the program becomes accessible for the rest of the run.
void after_helper(const HelperSlot& h, uint64_t r0, const uint64_t* args, RunState& run) {
  if (h.proto.ret != RetKind::MapValueOrNull || !r0) return;
  const auto* map = reinterpret_cast<const detail::MapImpl*>(args[0]);
  if (map->is_map_in_map()) {
    run.maps.push_back(reinterpret_cast<const detail::MapImpl*>(r0));
    return;
  }
  run.add_region({r0, map->spec().value_size, !map->frozen(), false});
}

// ---- callbacks (bpf_loop, bpf_for_each_map_elem) ---------------------------------------------------
bool invoke_callback(const void* engine, uint64_t code, const uint64_t args[5], uint64_t* r0) {
  const auto* cb = static_cast<const CallbackEngine*>(engine);
  RunState* run = detail::current_run();
  const auto* target = reinterpret_cast<const TInsn*>(code);
  const auto& entries = cb->img->callbacks;
  if (!std::binary_search(entries.begin(), entries.end(), target)) {
    run->fault = "callback address is not a function of the program";
    return false;
  }
  if (run->callback_depth >= kMaxCallbackDepth) {
    run->fault = "callbacks nested deeper than " + std::to_string(kMaxCallbackDepth);
    return false;
  }
  const bool checked = cb->img->options.safety == Safety::Checked;
  const size_t regions_before = run->regions.size();
  if (checked) run->add_region({reinterpret_cast<uint64_t>(cb->stack), kStackBytes, true, false});
  Entry e{target, {args[0], args[1], args[2], args[3], args[4]}, cb->ctx};
  ++run->callback_depth;
  Outcome o = checked ? execute<true>(cb->img, cb->args, run, &e, nullptr)
                      : execute<false>(cb->img, cb->args, run, &e, nullptr);
  --run->callback_depth;
  if (checked && run->regions.size() > regions_before) {
    // The caller's stack stops being reachable; records and values handed out inside stay.
    auto it = std::find_if(run->regions.begin() + static_cast<long>(regions_before), run->regions.end(),
                           [&](const MemRegion& r) { return r.base == reinterpret_cast<uint64_t>(cb->stack); });
    if (it != run->regions.end()) run->regions.erase(it);
  }
  if (o.fault != Fault::None) {
    if (run->fault.empty()) run->fault = "in callback: " + fault_error(o, *cb->img, *run).message;
    return false;
  }
  *r0 = o.r0;
  return true;
}

// ---- lowering -------------------------------------------------------------------------------------
// Builds the threaded code: handler addresses, helper slots, resolved immediates.
Result<void> lower(const isa::Program& prog, const HelperRegistry& helpers, InterpImage& img) {
  const void* const* labels = labels_for(img.options.safety);
  img.code.reserve(prog.insns.size());  // never reallocated: code addresses are taken below
  const TInsn* code_base = img.code.data();
  for (size_t pc = 0; pc < prog.insns.size(); ++pc) {
    const isa::Insn& in = prog.insns[pc];
    TInsn t{labels[static_cast<size_t>(in.op)], in.dst, in.src, in.off, in.imm};
    const auto at = static_cast<uint32_t>(pc);
    switch (isa::info(in.op).kind) {
      case isa::Kind::Call: {
        const Helper* h = helpers.find(static_cast<uint32_t>(in.imm));
        if (!h) return make_error_at(Errc::UnknownHelper, at, "unknown helper " + std::to_string(in.imm));
        if (h->id == 12 && h->fn == HelperRegistry::builtin().find(12)->fn) t.label = labels[kTailCall];
        t.imm = static_cast<int32_t>(img.calls.size());
        img.calls.push_back({h->fn, h->user, h->proto, h->id});
        break;
      }
      case isa::Kind::CallKfunc:
        return make_error_at(Errc::Unsupported, at,
                             "call to kernel function (BTF id " + std::to_string(in.imm) + ") is not supported");
      case isa::Kind::Lddw: {
        auto v = in.op == isa::Op::LDDW_CODE
                     ? Result<uint64_t>(reinterpret_cast<uint64_t>(code_base + isa::jump_target(in, pc)))
                     : detail::resolve_lddw(prog, pc, img.bindings, img.static_regions);
        if (!v) return v.error();
        if (in.op == isa::Op::LDDW_CODE) img.callbacks.push_back(reinterpret_cast<const TInsn*>(*v));
        t.imm = static_cast<int32_t>(static_cast<uint32_t>(*v));
        img.code.push_back(t);
        const isa::Insn& hi = prog.insns[++pc];
        img.code.push_back(TInsn{labels[static_cast<size_t>(hi.op)], 0, 0, 0, static_cast<int32_t>(*v >> 32)});
        continue;
      }
      default: break;
    }
    img.code.push_back(t);
  }
  std::sort(img.callbacks.begin(), img.callbacks.end());
  for (const auto& m : img.bindings.maps) img.map_ptrs.push_back(m.get());
  return {};
}

}  // namespace

namespace detail {
Result<std::shared_ptr<const InterpImage>> build_image(const isa::Program& prog, const HelperRegistry& helpers,
                                                        const InterpreterOptions& options, Bindings bindings) {
  if (options.safety == Safety::Checked && options.insn_budget == 0)
    return make_error(Errc::InvalidArgument, "checked mode needs an instruction budget above 0");
  auto img = std::make_shared<InterpImage>();
  img->options = options;
  if (options.safety == Safety::TrustedUnchecked) img->options.insn_budget = 0;
  img->registry = helpers;
  img->bindings = std::move(bindings);
  if (auto r = lower(prog, helpers, *img); !r) return r.error();
  return std::shared_ptr<const InterpImage>(std::move(img));
}
}  // namespace detail

Result<Interpreter> Interpreter::create(const Program& program, const HelperRegistry& helpers,
                                        const InterpreterOptions& options) {
  return create(program, helpers, options, {});
}

Result<Interpreter> Interpreter::create(const Program& program, const HelperRegistry& helpers,
                                        const InterpreterOptions& options, std::span<const Map> maps) {
  InterpreterOptions opts = options;
  if (options.safety == Safety::Verified) {
    VerifyOptions vo;
    vo.context = VerifyOptions::Context::Memory;
    vo.memory_size = options.memory_size;
    if (auto r = verify(program, helpers, maps, vo); !r) return r.error();
    opts.safety = Safety::TrustedUnchecked;
  }
  auto img = detail::build_image(program.data().decoded, helpers, opts, detail::bindings_of(maps));
  if (img && options.safety == Safety::Verified) const_cast<detail::InterpImage&>(**img).options.safety = Safety::Verified;
  if (!img) return img.error();
  return Interpreter(std::move(*img));
}

RunArgs memory_args(std::span<uint8_t> mem) {
  RunArgs args;
  args.regs[0] = mem.empty() ? 0 : reinterpret_cast<uintptr_t>(mem.data());
  args.regs[1] = mem.size();
  args.packet = mem;
  return args;
}

Result<uint64_t> Interpreter::run(std::span<uint8_t> mem) const {
  if (img_->options.safety == Safety::Verified && mem.size() < img_->options.memory_size)
    return make_error(Errc::InvalidArgument, "the program was verified for " + std::to_string(img_->options.memory_size) +
                                                 " bytes of memory; " + std::to_string(mem.size()) + " given");
  if (img_->options.safety == Safety::Verified) return run(memory_args(mem.first(img_->options.memory_size)));
  return run(memory_args(mem));
}

Result<uint64_t> Interpreter::run(const RunArgs& args, RunStats* stats) const {
  const bool checked = img_->options.safety == Safety::Checked;
  maps::reclaim::Guard epoch;
  RunState* run = detail::current_run();
  std::optional<detail::PooledRun> pooled;
  if (!run) run = &pooled.emplace().state();
  ++run->depth;
  run->checked = checked;
  run->budget = img_->options.insn_budget;
  // A run nested in another (a helper running a program) reports its own fault, not the
  // enclosing run's, and leaves the enclosing run's as it was.
  std::string enclosing_fault;
  if (!run->fault.empty()) [[unlikely]] enclosing_fault = std::exchange(run->fault, {});
  const size_t regions_before = run->regions.size();
  Entry e{img_->code.data(), {args.regs[0], args.regs[1], args.regs[2], args.regs[3], args.regs[4]}, args.regs[0]};
  Outcome o = checked ? execute<true>(img_.get(), &args, run, &e, nullptr) : execute<false>(img_.get(), &args, run, &e, nullptr);
  if (stats) stats->insns_executed = checked ? img_->options.insn_budget - run->budget : 0;
  // Ring buffer records reserved and never submitted are discarded (a verified program cannot
  // leave one; an unverified one must not leak them).
  for (size_t i = regions_before; i < run->regions.size(); ++i)
    if (run->regions[i].alloc) detail::ringbuf_commit(reinterpret_cast<void*>(run->regions[i].base), true);
  run->regions.resize(regions_before);
  --run->depth;
  // A lock left held would block every other run forever: release it, and fail the run (only the
  // outermost run of a RunState decides; a nested one may legitimately run inside the lock).
  if (run->held_lock && run->depth == 0) {
    __atomic_store_n(reinterpret_cast<uint32_t*>(run->held_lock), 0u, __ATOMIC_RELEASE);
    run->held_lock = 0;
    if (o.fault == Fault::None) return make_error(Errc::RuntimeFault, "bpf_spin_lock still held when the program exited");
  }
  if (o.fault != Fault::None) [[unlikely]] return nested_fault(o, *img_, *run, std::move(enclosing_fault));
  if (!run->fault.empty() || !enclosing_fault.empty()) [[unlikely]] run->fault = std::move(enclosing_fault);
  return o.r0;
}

Safety Interpreter::safety() const { return img_->options.safety; }

}  // namespace ebpfvm
