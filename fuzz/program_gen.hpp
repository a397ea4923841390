// Random valid eBPF programs for differential testing of the engines, driven by any byte source
// (a seeded PRNG in the tests, the fuzzer's input in fuzz/jit_diff_fuzz.cpp).
//
// Shape: r9 holds the 256-byte buffer (r1 at entry) and r10 the stack; neither is ever written.
// r0..r7 start from random 64-bit values; r8 counts a bounded loop. The body mixes every ALU
// operation (64/32-bit, immediate/register, div/mod/sdiv/smod, shifts, movsx, byte swaps), loads
// and stores of every size (sign-extending loads included) at in-bounds offsets of the buffer and
// the initialised stack, aligned atomics of every kind, and forward conditional jumps of every
// comparison, and the address shapes clang emits (byte pairs, also through two registers from
// 32-bit offsets, loads through a sum, a loop tested through a copy of its counter). One program
// in four has a short loop (the JIT unrolls it), one in sixteen a loop of 257..400 rounds (the
// verifier summarises it). On request, local calls that return pointers
// (call_shape) and, for XDP programs with maps, helper shapes: ring buffer records, bpf_loop and
// bpf_for_each_map_elem callbacks, tail calls, spin locks, packets moved under their pointers.
// Every such program is safe to run unchecked and ends: its result folds r0..r7.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace ebpfvm::gen {

inline constexpr unsigned kBufferSize = 256;

class Source {
 public:
  virtual ~Source() = default;
  virtual uint64_t next() = 0;
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

// A fuzzer's input as the source: 8 bytes a number, zeros once it runs out.
class ByteSource : public Source {
 public:
  ByteSource(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  uint64_t next() override {
    uint64_t v = 0;
    for (int k = 0; k < 8 && i_ < n_; ++k) v |= uint64_t{p_[i_++]} << (8 * k);
    return v;
  }

 private:
  const uint8_t* p_;
  size_t n_, i_ = 0;
};

inline std::string reg(unsigned r, bool w64) { return (w64 ? "r" : "w") + std::to_string(r); }

inline std::string alu(Source& s) {
  static const char* const kOps[] = {"+=", "-=", "*=", "/=", "%=", "s/=", "s%=", "|=", "&=", "^=", "<<=", ">>=", "s>>=", "="};
  const bool w = s.below(2);
  const unsigned dst = static_cast<unsigned>(s.below(8));
  switch (s.below(8)) {
    case 0: return reg(dst, w) + " = -" + reg(dst, w);
    case 1: {
      static const char* const kEnd[] = {"be16", "be32", "be64", "le16", "le32", "le64", "bswap16", "bswap32", "bswap64"};
      return "r" + std::to_string(dst) + " = " + kEnd[s.below(9)] + " r" + std::to_string(dst);
    }
    case 2: {
      static const int kBits[] = {8, 16, 32};
      const int bits = kBits[s.below(w ? 3 : 2)];
      return reg(dst, w) + " = (s" + std::to_string(bits) + ")" + reg(static_cast<unsigned>(s.below(8)), w);
    }
    default: {
      const std::string op = kOps[s.below(std::size(kOps))];
      const bool shift = op.find("<<") != std::string::npos || op.find(">>") != std::string::npos;
      if (s.below(2)) return reg(dst, w) + " " + op + " " + reg(static_cast<unsigned>(s.below(8)), w);
      int64_t imm = static_cast<int32_t>(s.next());
      if (shift) imm = static_cast<int64_t>(s.below(w ? 64 : 32));
      else if (s.below(4) == 0) imm = static_cast<int64_t>(s.below(5)) - 2;  // 0, -1 and friends for division
      return reg(dst, w) + " " + op + " " + std::to_string(imm);
    }
  }
}

inline std::string memory(Source& s) {
  static const char* const kSize[] = {"u8", "u16", "u32", "u64"};
  static const unsigned kBytes[] = {1, 2, 4, 8};
  const unsigned z = static_cast<unsigned>(s.below(4));
  const bool stack = s.below(3) == 0;
  // The stack's top 64 bytes are initialised by the prologue.
  const int64_t off = stack ? -static_cast<int64_t>(kBytes[z] + s.below(64 - kBytes[z] + 1)) : static_cast<int64_t>(s.below(kBufferSize - kBytes[z] + 1));
  const std::string base = stack ? "r10" : "r9";
  const std::string at = "(" + base + (off < 0 ? " - " + std::to_string(-off) : " + " + std::to_string(off)) + ")";
  const std::string r = "r" + std::to_string(s.below(8));
  switch (s.below(4)) {
    case 0: return r + " = *(" + kSize[z] + " *)" + at;
    case 1: return z < 3 ? r + " = *(s" + std::string(kSize[z]).substr(1) + " *)" + at : r + " = *(u64 *)" + at;
    case 2: return "*(" + std::string(kSize[z]) + " *)" + at + " = " + r;
    default: return "*(" + std::string(kSize[z]) + " *)" + at + " = " + std::to_string(static_cast<int32_t>(s.next()));
  }
}

inline std::string atomic(Source& s) {
  const bool w64 = s.below(2);
  const unsigned size = w64 ? 8 : 4;
  const int64_t off = static_cast<int64_t>(s.below(kBufferSize / size) * size);
  const std::string t = w64 ? "u64" : "u32";
  const std::string at = "(r9 + " + std::to_string(off) + ")";
  const unsigned src = static_cast<unsigned>(1 + s.below(7));  // not r0: cmpxchg owns it
  const std::string r = reg(src, w64);
  static const char* const kOps[] = {"add", "or", "and", "xor"};
  static const char* const kSym[] = {"+=", "|=", "&=", "^="};
  const unsigned op = static_cast<unsigned>(s.below(4));
  switch (s.below(4)) {
    case 0: return "lock *(" + t + " *)" + at + " " + kSym[op] + " " + r;
    case 1: return r + " = atomic_fetch_" + kOps[op] + "((" + t + " *)" + at + ", " + r + ")";
    case 2: return r + " = xchg" + (w64 ? "_64" : "32_32") + "(" + at.substr(1, at.size() - 2) + ", " + r + ")";
    default: return std::string(w64 ? "r0" : "w0") + " = cmpxchg" + (w64 ? "_64" : "32_32") + "(" + at.substr(1, at.size() - 2) + ", " + (w64 ? "r0" : "w0") + ", " + r + ")";
  }
}

// A forward conditional jump to one of the next `room` items (labels iN: between items only, so
// no jump lands inside a multi-instruction shape).
inline std::string jump(Source& s, unsigned item, unsigned room) {
  static const char* const kCmp[] = {"==", "!=", ">", ">=", "<", "<=", "&", "s>", "s>=", "s<", "s<="};
  const bool w = s.below(2);
  const std::string rhs = s.below(2) ? reg(static_cast<unsigned>(s.below(8)), w) : std::to_string(static_cast<int32_t>(s.next() % 1000) - 500);
  const uint64_t target = item + 1 + s.below(room + 1);
  return "if " + reg(static_cast<unsigned>(s.below(8)), w) + " " + kCmp[s.below(11)] + " " + rhs + " goto i" + std::to_string(target);
}

// clang's address shapes that the JIT folds: a big-endian pair of byte loads (off the buffer, or
// off a sum), and loads through a sum at constant distances (the sum indexed by an immediate or
// by a register), the last load then often compared with the first (clang's `a[i] != b[i]`).
// Every pointer made here is replaced by a scalar before the shape ends.
inline std::string shape(Source& s, unsigned item, unsigned room) {
  const auto r = [](unsigned x) { return "r" + std::to_string(x); };
  const unsigned a = static_cast<unsigned>(s.below(8));
  const unsigned b = (a + 1 + static_cast<unsigned>(s.below(7))) % 8;  // != a
  const bool w = s.below(2);
  // D = (hi << 8) | lo, from the bytes at base + k and base + k + 1; `first_lo` loads lo first.
  auto pair = [&](unsigned d, unsigned t, const std::string& base, uint64_t k, bool first_lo) {
    const std::string hi = reg(d, true) + " = *(u8 *)(" + base + " + " + std::to_string(k) + ")\n";
    const std::string lo = reg(t, true) + " = *(u8 *)(" + base + " + " + std::to_string(k + 1) + ")\n";
    return (first_lo ? lo + hi : hi + lo) + reg(d, w) + " <<= 8\n" + reg(d, w) + " |= " + reg(t, w);
  };
  switch (s.below(4)) {
    case 0: return pair(a, b, "r9", s.below(kBufferSize - 1), s.below(2));
    case 3: {  // clang -mcpu=v3: each byte's address from a 32-bit offset, in a register of its own
      unsigned reg_of[8] = {0, 1, 2, 3, 4, 5, 6, 7};
      for (unsigned i = 0; i < 6; ++i) std::swap(reg_of[i], reg_of[i + s.below(8 - i)]);
      const unsigned x = reg_of[0], e = reg_of[1], f = reg_of[2], g = reg_of[3], d = reg_of[4], t = reg_of[5];
      const uint64_t j = s.below(8), apart = 1 + s.below(4) / 3;  // mostly a byte apart
      std::string p = s.below(2) ? reg(x, false) + " = " + std::to_string(s.below(kBufferSize - 12))
                                 : reg(x, false) + " &= " + std::to_string(kBufferSize / 2 - 1);  // a value the facts bound
      p += "\n" + reg(e, false) + " = " + reg(x, false) + "\n" + reg(e, false) + " += " + std::to_string(j) + "\n";
      p += r(f) + " = r9\n" + r(f) + " += " + r(e) + "\n" + reg(x, false) + " += " + std::to_string(j + apart) + "\n";
      p += r(g) + " = r9\n" + r(g) + " += " + r(x) + "\n";
      p += r(t) + " = *(u8 *)(" + r(g) + " + 0)\n" + r(d) + " = *(u8 *)(" + r(f) + " + 0)\n";
      return p + reg(d, w) + " <<= 8\n" + reg(d, w) + " |= " + reg(t, w) + "\n" + r(f) + " = " + std::to_string(j) + "\n" + r(g) +
             " = " + std::to_string(apart);
    }
    case 1: {  // the sum's register is the high byte, the low byte, or neither (then it is reset)
      const unsigned pick = static_cast<unsigned>(s.below(3));
      unsigned other = (a + 1) % 8;
      if (other == b) other = (other + 1) % 8;
      const unsigned sum = pick == 0 ? a : pick == 1 ? b : other;
      const uint64_t k = s.below(kBufferSize - 1);
      std::string p = r(sum) + " = r9\n" + r(sum) + " += " + std::to_string(k) + "\n";
      p += pair(a, b, r(sum), 0, sum == a);  // the load into the sum's register comes second
      if (sum != a && sum != b) p += "\n" + r(sum) + " = " + std::to_string(k);
      return p;
    }
    default: {
      static const unsigned kBytes[] = {1, 2, 4, 8};
      static const char* const kSize[] = {"u8", "u16", "u32", "u64"};
      const unsigned z1 = static_cast<unsigned>(s.below(4)), z2 = static_cast<unsigned>(s.below(4));
      const uint64_t k = s.below(kBufferSize / 2), o1 = s.below(kBufferSize / 2 - kBytes[z1] + 1);
      const uint64_t d = s.below(kBufferSize / 4), o2 = s.below(kBufferSize / 4 - kBytes[z2] + 1);
      std::string p;
      if (s.below(2)) {  // indexed by a register, which the first load may then overwrite
        const unsigned i = (a + 1 + static_cast<unsigned>(s.below(7))) % 8;
        p = r(i) + " = " + std::to_string(k) + "\n" + r(a) + " = r9\n" + r(a) + " += " + r(i) + "\n";
        p += r(s.below(2) ? i : b) + " = *(" + kSize[z1] + " *)(" + r(a) + " + " + std::to_string(o1) + ")\n";
      } else {
        p = r(a) + " = r9\n" + r(a) + " += " + std::to_string(k) + "\n";
        p += r(b) + " = *(" + kSize[z1] + " *)(" + r(a) + " + " + std::to_string(o1) + ")\n";
      }
      p += r(a) + " += " + std::to_string(d) + "\n" + r(a) + " = *(" + kSize[z2] + " *)(" + r(a) + " + " + std::to_string(o2) + ")";
      switch (s.below(3)) {
        case 0:  // the loaded value is not read again: the compare can read memory
          p += std::string("\nif ") + r(b) + (s.below(2) ? " != " : " == ") + r(a) + " goto c" + std::to_string(item) + "\n" + r(b) +
               " += 1\nc" + std::to_string(item) + ":\n" + r(a) + " = " + std::to_string(s.below(1000));
          break;
        case 1:  // a jump to a later item
          if (room)
            p += std::string("\nif ") + r(b) + (s.below(2) ? " != " : " == ") + r(a) + " goto i" +
                 std::to_string(item + 1 + s.below(room + 1));
          break;
        default: break;
      }
      return p;
    }
  }
}

// A pointer through the stack: the buffer's address spilled below the prologue's slots (r10 - 72
// .. -128), filled back, moved by a bounded variable offset and dereferenced, then replaced by
// what it read. Safe as written; mutations make partial spills and fills, fills of other slots,
// offsets that escape, which the verifiers must refuse.
inline std::string spill_shape(Source& s) {
  const unsigned a = static_cast<unsigned>(s.below(8)), b = (a + 1 + static_cast<unsigned>(s.below(7))) % 8;
  const std::string slot = "(r10 - " + std::to_string(72 + 8 * s.below(8)) + ")";
  const std::string ra = "r" + std::to_string(a), rb = "r" + std::to_string(b);
  std::string p = "*(u64 *)" + slot + " = r9\n" + ra + " = *(u64 *)" + slot + "\n";
  p += rb + " &= " + std::to_string(kBufferSize / 2 - 1) + "\n" + ra + " += " + rb + "\n";  // [0, 127]
  p += rb + " = *(u" + std::to_string(8u << s.below(3)) + " *)(" + ra + " + " + std::to_string(s.below(kBufferSize / 2 - 4)) + ")\n";
  return p + ra + " = " + rb;
}

// A local call given a pointer, into the buffer or the caller's initialised stack, and an offset
// it bounds; it returns the pointer moved by the offset (or, one call in four, writes through it
// and returns a number), and the caller reads through what came back. Mutations make functions
// that return their own stack, offsets that escape, pointers the caller's checks never saw.
inline std::string call_shape(Source& s, unsigned item, std::string& subprograms) {
  const std::string n = std::to_string(item);
  const unsigned dst = static_cast<unsigned>(s.below(8));
  const bool stack = s.below(3) == 0;
  const uint64_t room = stack ? 64 : kBufferSize, mask = stack ? 31 : 127;  // the offset's bound
  std::string p = stack ? "r1 = r10\nr1 += -64\n" : "r1 = r9\n";
  p += "r2 = " + std::to_string(s.next()) + " ll\ncall f" + n + "\n";
  std::string f = "f" + n + ":\nr2 &= " + std::to_string(mask) + "\nr1 += r2\n";
  if (s.below(4) == 0) {
    subprograms += f + "*(u8 *)(r1 + " + std::to_string(s.below(room - mask)) + ") = r2\nr0 = r2\nexit\n";
    p += "r" + std::to_string(dst) + " = r0\n";
  } else {
    subprograms += f + "r0 = r1\nexit\n";
    p += "r" + std::to_string(dst) + " = *(u8 *)(r0 + " + std::to_string(s.below(room - mask)) + ")\n";
  }
  // The call left r1..r5 unreadable, and r0 may be a pointer: they get numbers again.
  for (unsigned r = 0; r <= 5; ++r)
    if (r != dst) p += "r" + std::to_string(r) + " = " + std::to_string(s.next()) + " ll\n";
  p.pop_back();
  return p;
}

// Helper calls, for programs run as XDP (kernel_diff_fuzz) with these maps: 0 an array of one
// kBufferSize-byte value, 1 a ring buffer, 2 a prog array of 4 (empty), 3 an array of one 16-byte
// value whose first word is its struct bpf_spin_lock; and the context saved at kCtxSlot. Each
// shape is safe as written, but for the stale-pointer variant of adjust_shape, which both verifiers
// must refuse; mutations then make records submitted twice, callbacks that return other values,
// locks taken twice or never released, and so on. A call leaves r1..r5 unreadable: they, r0 and
// what the shape used get values again after it.
inline constexpr int kCtxSlot = -136;

// A ring buffer record reserved, written and submitted or discarded.
inline std::string ringbuf_shape(Source& s, const std::string& n) {
  const uint64_t size = 8 * (1 + s.below(4));
  std::string p = "r1 = map_idx(1) ll\nr2 = " + std::to_string(size) + "\nr3 = 0\ncall 131\nif r0 == 0 goto h" + n + "\n";
  p += "*(u64 *)(r0 + " + std::to_string(8 * s.below(size / 8)) + ") = r" + std::to_string(6 + s.below(2)) + "\n";
  return p + "r1 = r0\nr2 = 0\ncall " + std::string(s.below(2) ? "132" : "133") + "\nh" + n + ":\n";
}

// bpf_loop, or bpf_for_each_map_elem over map 0, with a callback (appended to `subprograms`) that
// adds into a slot of the caller's stack (its context); for_each's also reads the key and reads
// and writes the value, and may stop the walk.
inline std::string callback_shape(Source& s, const std::string& n, std::string& subprograms) {
  const std::string slot = "r3 = r10\nr3 += -" + std::to_string(8 * (1 + s.below(8))) + "\n";
  if (s.below(2)) {
    subprograms += "cb" + n + ":\nr3 = *(u64 *)(r2 + 0)\nr3 += r1\n*(u64 *)(r2 + 0) = r3\nr0 = 0\nexit\n";
    return "r1 = " + std::to_string(1 + s.below(8)) + "\nr2 = code(cb" + n + ") ll\n" + slot + "r4 = 0\ncall 181\n";
  }
  const uint64_t at = 8 * s.below(kBufferSize / 8), to = 8 * s.below(kBufferSize / 8);
  subprograms += "cb" + n + ":\nr5 = *(u32 *)(r2 + 0)\nr0 = *(u64 *)(r3 + " + std::to_string(at) + ")\nr0 += r5\n" +
                 "r5 = *(u64 *)(r4 + 0)\nr5 += r0\n*(u64 *)(r4 + 0) = r5\n*(u64 *)(r3 + " + std::to_string(to) + ") = r5\nr0 = " +
                 std::to_string(s.below(2)) + "\nexit\n";
  return "r1 = map_idx(0) ll\nr2 = code(cb" + n + ") ll\n" + slot + "r4 = 0\ncall 164\n";
}

// A tail call into the empty prog array (index 4 is past its end): it fails, and the program goes
// on with r0 a number.
inline std::string tail_call_shape(Source& s) {
  return "r1 = *(u64 *)(r10 " + std::to_string(kCtxSlot) + ")\nr2 = map_idx(2) ll\nr3 = " + std::to_string(s.below(5)) + "\ncall 12\n";
}

// Map 3's lock taken, its counter after the lock word updated, the lock released.
inline std::string spin_lock_shape(Source& s, const std::string& n) {
  std::string p = "*(u32 *)(r10 - 144) = 0\nr2 = r10\nr2 += -144\nr1 = map_idx(3) ll\ncall 1\nif r0 == 0 goto l" + n + "\n";
  p += "r6 = r0\nr1 = r6\ncall 93\nr7 = *(u64 *)(r6 + 8)\nr7 += " + std::to_string(1 + s.below(100)) + "\n*(u64 *)(r6 + 8) = r7\n";
  return p + "r1 = r6\ncall 94\nl" + n + ":\n";
}

// The packet checked and read, then moved by bpf_xdp_adjust_head, _tail or _meta: every packet
// pointer taken before is stale. The packet is read again through fresh pointers, or (one shape in
// eight) through the stale one, which the verifiers must refuse.
inline std::string adjust_shape(Source& s, const std::string& n) {
  static const char* const kCall[] = {"44", "65", "54"};  // adjust_head, adjust_tail, adjust_meta
  const unsigned which = static_cast<unsigned>(s.below(3));
  const int64_t delta = which == 0 ? static_cast<int64_t>(s.below(129)) - 64
                        : which == 1 ? static_cast<int64_t>(s.below(33)) - 16
                                     : -4 * static_cast<int64_t>(s.below(9));
  const std::string ctx = "r1 = *(u64 *)(r10 " + std::to_string(kCtxSlot) + ")\n";
  const auto fresh = [&](uint64_t len) {
    return ctx + "r6 = *(u32 *)(r1 + 0)\nr7 = *(u32 *)(r1 + 4)\nr2 = r6\nr2 += " + std::to_string(len) + "\nif r2 > r7 goto a" + n + "\n";
  };
  std::string p = fresh(16) + "r3 = *(u8 *)(r6 + " + std::to_string(s.below(16)) + ")\n";
  p += ctx + "r2 = " + std::to_string(delta) + "\ncall " + kCall[which] + "\n";
  if (s.below(8)) p += fresh(8);
  return p + "r3 = *(u8 *)(r6 + " + std::to_string(s.below(8)) + ")\na" + n + ":\n";
}

inline std::string helper_shape(Source& s, unsigned item, std::string& subprograms) {
  const std::string n = std::to_string(item);
  std::string p;
  switch (s.below(5)) {
    case 0: p = ringbuf_shape(s, n); break;
    case 1: p = callback_shape(s, n, subprograms); break;
    case 2: p = tail_call_shape(s); break;
    case 3: p = spin_lock_shape(s, n); break;
    default: p = adjust_shape(s, n); break;
  }
  for (unsigned r = 0; r <= 7; ++r) p += "r" + std::to_string(r) + " = " + std::to_string(s.next()) + " ll\n";
  return p;
}

// One program, as assembler text. `helpers`: with helper_shape() items (an XDP program with the
// maps and the saved context helper_shape() names). `calls`: with call_shape() items.
inline std::string program(Source& s, unsigned body = 48, bool helpers = false, bool calls = false) {
  std::string subprograms;
  // One program in four has a short body, a loop small enough for the JIT to unroll.
  if (s.below(4) == 0) body = 2 + static_cast<unsigned>(s.below(8));
  std::string p = "r9 = r1\n";
  for (int i = 0; i < 8; ++i) p += "*(u64 *)(r10 - " + std::to_string(8 * (i + 1)) + ") = " + std::to_string(static_cast<int32_t>(s.next())) + "\n";
  for (unsigned r = 0; r < 8; ++r) p += "r" + std::to_string(r) + " = " + std::to_string(s.next()) + " ll\n";
  // One in sixteen loops runs past what the verifier unrolls (256 iterations), so that it
  // summarises them (issue 17, shape I) and the oracle checks the summary. (On 15, not 0: a
  // fuzzer's first inputs are mostly zeros, and these programs take longer to check.)
  const uint64_t rounds = s.below(16) == 15 ? 257 + s.below(144) : 1 + s.below(body < 12 ? 12 : 4);
  p += "r8 = " + std::to_string(rounds) + "\n";
  p += "loop:\n";
  for (unsigned i = 0; i < body; ++i) {
    const unsigned room = body - i - 1;
    p += "i" + std::to_string(i) + ":\n";
    switch (s.below(11)) {
      case 0: case 1: case 2: case 3: p += alu(s); break;
      case 4: case 5: p += memory(s); break;
      case 6: p += atomic(s); break;
      case 7: p += room ? jump(s, i, room) : alu(s); break;
      case 8: p += shape(s, i, room); break;
      case 9: p += helpers ? helper_shape(s, i, subprograms) : alu(s); break;
      case 10: p += s.below(2) ? spill_shape(s) : calls && s.below(2) ? call_shape(s, i, subprograms) : alu(s); break;
      default: p += alu(s); break;
    }
    p += "\n";
  }
  p += "i" + std::to_string(body) + ":\n";
  // The loop's test, on the counter or (as clang often writes it) on a copy taken before the step.
  const auto c = static_cast<unsigned>(s.below(8)), other = (c + 1 + static_cast<unsigned>(s.below(7))) % 8;
  const std::string t = reg(c, true);
  switch (s.below(3)) {
    case 0: p += "r8 -= 1\nif r8 != 0 goto loop\n"; break;
    case 1: p += t + " = r8\nr8 -= 1\nif " + t + " > 1 goto loop\n"; break;
    default: p += t + " = r8\n" + reg(other, true) + " += " + t + "\nr8 += -1\nif " + t + " != 1 goto loop\n"; break;
  }
  for (unsigned r = 1; r < 8; ++r) p += "r0 ^= r" + std::to_string(r) + "\n";
  return p + "exit\n" + subprograms;
}

}  // namespace ebpfvm::gen
