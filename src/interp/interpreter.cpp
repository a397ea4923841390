// Direct-threaded interpreter. Each decoded slot becomes a 16-byte TInsn whose first word is the
// address of its handler, so dispatch is one indirect jump. The same source is instantiated twice:
// kChecked adds bounds checks on memory, alignment checks on atomics and an instruction budget;
// the unchecked instantiation has none of them in its hot loop.
#include "ebpfvm/interpreter.hpp"

#include <bit>
#include <cstring>
#include <string>

#include "program_data.hpp"

static_assert(std::endian::native == std::endian::little, "the interpreter assumes a little-endian host");

namespace ebpfvm {
namespace detail {

struct TInsn {
  const void* label;
  uint8_t dst;
  uint8_t src;
  int16_t off;
  int32_t imm;
};
static_assert(sizeof(TInsn) == 16);

struct HelperSlot {
  HelperFn fn;
  void* user;
};

struct InterpImage {
  std::vector<TInsn> code;
  std::vector<HelperSlot> calls;  // static helper calls, indexed by TInsn::imm
  HelperRegistry registry;        // callx looks helpers up at run time
  InterpreterOptions options;
};

}  // namespace detail

namespace {

using detail::HelperSlot;
using detail::InterpImage;
using detail::TInsn;

enum class Fault : uint8_t { None, OutOfBounds, Misaligned, CallDepth, UnknownHelper, Budget, Internal };

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
  uint64_t saved[4];  // r6..r9
  uint64_t fp;        // r10
};

constexpr uint32_t kStackBytes = isa::kStackSize * isa::kMaxCallFrames;

// Memory an unverified program may touch.
struct Guard {
  const uint8_t* stack;
  std::span<uint8_t> packet;
  std::span<const Region> regions;

  static bool inside(uint64_t addr, uint64_t size, uint64_t base, uint64_t len) {
    return addr >= base && size <= len && addr - base <= len - size;
  }
  bool allows(uint64_t addr, uint64_t size, bool write) const {
    if (inside(addr, size, reinterpret_cast<uintptr_t>(stack), kStackBytes)) return true;
    if (inside(addr, size, reinterpret_cast<uintptr_t>(packet.data()), packet.size())) return true;
    for (const Region& r : regions)
      if ((r.writable || !write) && inside(addr, size, reinterpret_cast<uintptr_t>(r.base), r.size)) return true;
    return false;
  }
};

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

// Runs img from slot 0. With img == nullptr, only stores the handler table in *labels_out.
template <bool kChecked>
Outcome execute(const InterpImage* img, const RunArgs* args, const void* const** labels_out) {
  static const void* const kLabels[] = {
#define EBPFVM_OP(name, ...) &&L_##name,
#include "isa/opcodes.def"
#undef EBPFVM_OP
      &&L_LDDW_HI,
  };
  static_assert(std::size(kLabels) == isa::kOpCount);
  if (!img) {
    *labels_out = kLabels;
    return {};
  }

  Outcome out;
  alignas(16) uint8_t stack[kStackBytes];
  Frame frames[isa::kMaxCallFrames];
  uint32_t depth = 0;
  uint64_t R[11] = {};
  for (int i = 0; i < 5; ++i) R[i + 1] = args->regs[i];
  R[10] = reinterpret_cast<uintptr_t>(stack) + kStackBytes;
  const Guard guard{stack, args->packet, args->regions};
  uint64_t budget = img->options.insn_budget;
  const TInsn* const base = img->code.data();
  const TInsn* ip = base;

#define DST R[ip->dst]
#define SRC R[ip->src]
#define IMM static_cast<uint64_t>(static_cast<int64_t>(ip->imm))
#define DST32 static_cast<uint32_t>(R[ip->dst])
#define SRC32 static_cast<uint32_t>(R[ip->src])
#define IMM32 static_cast<uint32_t>(ip->imm)
#define DISPATCH                                   \
  do {                                             \
    if constexpr (kChecked) {                      \
      if (budget == 0) goto fault_budget;          \
      --budget;                                    \
    }                                              \
    goto *ip->label;                               \
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
  const HelperSlot& h = img->calls[static_cast<uint32_t>(ip->imm)];
  R[0] = h.fn(R[1], R[2], R[3], R[4], R[5], h.user);
  NEXT;
}
L_CALLX: {
  const Helper* h = DST <= UINT32_MAX ? img->registry.find(static_cast<uint32_t>(DST)) : nullptr;
  if (!h) FAULT(Fault::UnknownHelper, DST, 0, false);
  R[0] = h->fn(R[1], R[2], R[3], R[4], R[5], h->user);
  NEXT;
}
L_CALL_LOCAL:
  if (depth + 1 >= isa::kMaxCallFrames) FAULT(Fault::CallDepth, 0, 0, false);
  frames[depth] = Frame{ip, {R[6], R[7], R[8], R[9]}, R[10]};
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
    if (o > args->packet.size() || args->packet.size() - o < sizeof(T)) {                   \
      out.r0 = 0;                                                                           \
      goto finish;                                                                          \
    }                                                                                       \
    T v;                                                                                    \
    std::memcpy(&v, args->packet.data() + o, sizeof v);                                     \
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
  out.executed = img->options.insn_budget - budget;
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
  if (safety == Safety::Checked) execute<true>(nullptr, nullptr, &labels);
  else execute<false>(nullptr, nullptr, &labels);
  return labels;
}

Error fault_error(const Outcome& o, const InterpImage& img) {
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
    default:
      std::snprintf(buf, sizeof buf, "internal error: reached an instruction that cannot run");
  }
  return make_error_at(Errc::RuntimeFault, o.pc, buf);
}

// Builds the threaded code: handler addresses, helper slots, resolved immediates.
Result<void> lower(const isa::Program& prog, const HelperRegistry& helpers, InterpImage& img) {
  const void* const* labels = labels_for(img.options.safety);
  img.code.reserve(prog.insns.size());
  for (size_t pc = 0; pc < prog.insns.size(); ++pc) {
    const isa::Insn& in = prog.insns[pc];
    TInsn t{labels[static_cast<size_t>(in.op)], in.dst, in.src, in.off, in.imm};
    const auto at = static_cast<uint32_t>(pc);
    switch (isa::info(in.op).kind) {
      case isa::Kind::Call: {
        const Helper* h = helpers.find(static_cast<uint32_t>(in.imm));
        if (!h) return make_error_at(Errc::UnknownHelper, at, "unknown helper " + std::to_string(in.imm));
        t.imm = static_cast<int32_t>(img.calls.size());
        img.calls.push_back({h->fn, h->user});
        break;
      }
      case isa::Kind::CallKfunc:
        return make_error_at(Errc::Unsupported, at,
                             "call to kernel function (BTF id " + std::to_string(in.imm) + ") is not supported");
      case isa::Kind::Lddw:
        if (in.src != 0)
          return make_error_at(Errc::Unsupported, at,
                               "lddw with src " + std::to_string(in.src) +
                                   " refers to a map, variable or function; load the program from an ELF object");
        break;
      default: break;
    }
    img.code.push_back(t);
  }
  return {};
}

}  // namespace

Result<Interpreter> Interpreter::create(const Program& program, const HelperRegistry& helpers,
                                        const InterpreterOptions& options) {
  if (options.safety == Safety::Checked && options.insn_budget == 0)
    return make_error(Errc::InvalidArgument, "checked mode needs an instruction budget above 0");
  auto img = std::make_shared<InterpImage>();
  img->options = options;
  if (options.safety == Safety::TrustedUnchecked) img->options.insn_budget = 0;
  img->registry = helpers;
  if (auto r = lower(program.data().decoded, helpers, *img); !r) return r.error();
  return Interpreter(std::move(img));
}

Result<uint64_t> Interpreter::run(std::span<uint8_t> mem) const {
  RunArgs args;
  args.regs[0] = mem.empty() ? 0 : reinterpret_cast<uintptr_t>(mem.data());
  args.regs[1] = mem.size();
  args.packet = mem;
  return run(args);
}

Result<uint64_t> Interpreter::run(const RunArgs& args, RunStats* stats) const {
  const bool checked = img_->options.safety == Safety::Checked;
  Outcome o = checked ? execute<true>(img_.get(), &args, nullptr) : execute<false>(img_.get(), &args, nullptr);
  if (stats) stats->insns_executed = checked ? o.executed : 0;
  if (o.fault != Fault::None) return fault_error(o, *img_);
  return o.r0;
}

Safety Interpreter::safety() const { return img_->options.safety; }

}  // namespace ebpfvm
