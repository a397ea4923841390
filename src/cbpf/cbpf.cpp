// Classic BPF checked and translated to eBPF (see cbpf.hpp). Opcode fields as in
// <linux/filter.h> and <pcap/bpf.h>: class in bits 0-2, size 3-4, mode 5-7 for loads; operation
// 4-7 and source bit 3 for ALU and jumps.
#include "cbpf/cbpf.hpp"

#include <pcap/bpf.h>

#include <cstdio>
#include <vector>

namespace ebpfvm::cbpf {
namespace {

constexpr uint16_t kLd = 0x00, kLdx = 0x01, kSt = 0x02, kStx = 0x03, kAlu = 0x04, kJmp = 0x05, kRet = 0x06, kMisc = 0x07;
constexpr uint16_t kW = 0x00, kB = 0x10;  // and BPF_H = 0x08
constexpr uint16_t kImm = 0x00, kAbs = 0x20, kInd = 0x40, kMem = 0x60, kLen = 0x80, kMsh = 0xa0;
constexpr uint16_t kAdd = 0x00, kSub = 0x10, kMul = 0x20, kDiv = 0x30, kOr = 0x40, kAnd = 0x50, kLsh = 0x60, kRsh = 0x70,
                   kNeg = 0x80, kMod = 0x90, kXor = 0xa0;
constexpr uint16_t kJa = 0x00, kJeq = 0x10, kJgt = 0x20, kJge = 0x30, kJset = 0x40;
constexpr uint16_t kSrcX = 0x08;
constexpr uint16_t kRetK = 0x00, kRetA = 0x10;
constexpr uint16_t kTax = 0x00, kTxa = 0x80;
constexpr uint32_t kAncillary = 0xfffff000u;  // SKF_AD_OFF (-0x1000) and the Linux offsets below it

uint16_t cls(uint16_t c) { return c & 0x07; }
uint16_t size(uint16_t c) { return c & 0x18; }
uint16_t mode(uint16_t c) { return c & 0xe0; }
uint16_t op(uint16_t c) { return c & 0xf0; }

// The instructions a program may hold: every known opcode, no other bits set.
bool known(uint16_t c) {
  if (c > 0xff) return false;
  switch (cls(c)) {
    case kLd:
      if (size(c) == 0x18) return false;
      if (mode(c) == kAbs || mode(c) == kInd) return true;
      return size(c) == kW && (mode(c) == kImm || mode(c) == kMem || mode(c) == kLen);
    case kLdx:
      if (mode(c) == kMsh) return size(c) == kB;
      return size(c) == kW && (mode(c) == kImm || mode(c) == kMem || mode(c) == kLen);
    case kSt: case kStx: return c == kSt || c == kStx;
    case kAlu:
      if (op(c) == kNeg) return c == (kAlu | kNeg);
      return op(c) <= kXor && (c & 0x07) == kAlu;
    case kJmp:
      if (op(c) == kJa) return c == (kJmp | kJa);
      return op(c) <= kJset;
    case kRet: return c == (kRet | kRetK) || c == (kRet | kRetA);
    case kMisc: return c == (kMisc | kTax) || c == (kMisc | kTxa);
  }
  return false;
}

// A packet load at an offset of 2^31 or more: past any packet, so the program returns 0 there.
bool always_zero(const ClassicInsn& in) {
  const uint16_t m = mode(in.code);
  return (cls(in.code) == kLd && (m == kAbs || m == kInd)) || (cls(in.code) == kLdx && m == kMsh) ? in.k >= 0x80000000u : false;
}

std::string imm(uint32_t k) { return std::to_string(static_cast<int32_t>(k)); }
std::string slot(uint32_t k) { return "(r10 - " + std::to_string(64 - 4 * k) + ")"; }
std::string label(size_t i) { return "c" + std::to_string(i); }

}  // namespace

std::string mnemonic(const ClassicInsn& in) {
  const bpf_insn raw{in.code, in.jt, in.jf, in.k};
  const std::string image = bpf_image(&raw, 0);
  // "(000) ldh      [12]": the word after the index
  const size_t start = image.find(')') + 2;
  return image.substr(start, image.find(' ', start) - start);
}

Result<void> validate(std::span<const ClassicInsn> prog) {
  if (prog.empty()) return make_error(Errc::InvalidArgument, "classic BPF program is empty");
  if (prog.size() > kMaxInsns)
    return make_error(Errc::InvalidArgument, "classic BPF program has " + std::to_string(prog.size()) + " instructions, more than " +
                                                 std::to_string(kMaxInsns));
  const size_t n = prog.size();
  for (size_t i = 0; i < n; ++i) {
    const ClassicInsn& in = prog[i];
    char code[16];
    std::snprintf(code, sizeof code, "0x%02x", in.code);
    auto bad = [&](const std::string& why) {
      return make_error(Errc::InvalidArgument, "classic BPF instruction " + std::to_string(i) + " (" +
                                                   (known(in.code) ? mnemonic(in) : std::string("code ") + code) + "): " + why);
    };
    if (!known(in.code)) return bad("unknown opcode");
    const uint16_t c = in.code;
    if ((cls(c) == kLd || cls(c) == kLdx) && mode(c) == kMem && in.k >= kMemWords) return bad("scratch memory M[" + std::to_string(in.k) + "] does not exist (M[0] to M[15])");
    if ((cls(c) == kSt || cls(c) == kStx) && in.k >= kMemWords) return bad("scratch memory M[" + std::to_string(in.k) + "] does not exist (M[0] to M[15])");
    if (cls(c) == kLd && mode(c) == kAbs && in.k >= kAncillary)
      return bad("Linux ancillary data (SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF) cannot be read from a capture");
    if (cls(c) == kAlu && !(c & kSrcX) && (op(c) == kDiv || op(c) == kMod) && in.k == 0) return bad("division by the constant 0");
    if (cls(c) == kAlu && !(c & kSrcX) && (op(c) == kLsh || op(c) == kRsh) && in.k >= 32) return bad("shift by " + std::to_string(in.k) + ", 32 or more");
    if (cls(c) == kJmp) {
      auto target = [&](uint64_t off, const char* what) -> Result<void> {
        if (i + 1 + off >= n)
          return bad(std::string(what) + "jump to " + std::to_string(i + 1 + off) + " is past the end (" + std::to_string(n) + " instructions)");
        return {};
      };
      if (op(c) == kJa) {
        // libpcap's protochain emits one (its validator's sum wraps); the kernel refuses them
        if (in.k >= 0x80000000u)
          return bad("a backward jump (to " + std::to_string(static_cast<int64_t>(i) + 1 + static_cast<int32_t>(in.k)) +
                     "): classic programs may only jump forward (libpcap's 'protochain' needs one)");
        if (auto r = target(in.k, ""); !r) return r;
      } else {
        if (auto r = target(in.jt, "true "); !r) return r;
        if (auto r = target(in.jf, "false "); !r) return r;
      }
    }
  }
  if (cls(prog[n - 1].code) != kRet)
    return make_error(Errc::InvalidArgument, "classic BPF instruction " + std::to_string(n - 1) + " (" + mnemonic(prog[n - 1]) +
                                                 "): the program must end with ret");
  return {};
}

std::string translate(std::span<const ClassicInsn> prog) {
  const size_t n = prog.size();
  // Reachable instructions, and the scratch words read anywhere (zeroed first: the verifier
  // refuses reads of unwritten stack; libpcap's own compiler never reads before writing).
  std::vector<bool> live(n, false);
  std::vector<size_t> todo{0};
  uint32_t read_words = 0;
  bool len = false, x = false;  // BPF_LEN read; X written or read (else w7 needs no zero)
  while (!todo.empty()) {
    const size_t i = todo.back();
    todo.pop_back();
    if (live[i]) continue;
    live[i] = true;
    const ClassicInsn& in = prog[i];
    if ((cls(in.code) == kLd || cls(in.code) == kLdx) && mode(in.code) == kMem) read_words |= 1u << in.k;
    len = len || ((cls(in.code) == kLd || cls(in.code) == kLdx) && mode(in.code) == kLen);
    x = x || cls(in.code) == kLdx || cls(in.code) == kStx || cls(in.code) == kMisc || ((cls(in.code) == kAlu || cls(in.code) == kJmp) && (in.code & kSrcX)) ||
        (cls(in.code) == kLd && mode(in.code) == kInd);
    if (cls(in.code) == kRet || always_zero(in)) continue;
    if (cls(in.code) == kJmp) {
      if (op(in.code) == kJa) {
        todo.push_back(i + 1 + in.k);
      } else {
        todo.push_back(i + 1 + in.jt);
        todo.push_back(i + 1 + in.jf);
      }
      continue;
    }
    todo.push_back(i + 1);
  }

  // Each register set up only if the program reads it: callee-saved ones cost a push and a pop
  // in the JIT, and a filter's whole run is a few nanoseconds.
  std::string out = "w0 = 0\n";
  if (len) out += "w8 = *(u32 *)(r1 + 0)\n";
  if (x) out += "w7 = 0\n";
  for (uint32_t k = 0; k < kMemWords; ++k)
    if (read_words & (1u << k)) out += "*(u32 *)" + slot(k) + " = 0\n";
  bool ret0 = false;  // some instruction returns 0 through the shared block
  auto emit = [&](const std::string& line) { out += line + "\n"; };
  auto to_ret0 = [&](const std::string& cond) {
    ret0 = true;
    emit(cond.empty() ? "goto ret0" : "if " + cond + " goto ret0");
  };
  static const char* const kSize[] = {"u32", "u16", "u8", ""};  // by the size field (loads only; 0x18 is no size)
  for (size_t i = 0; i < n; ++i) {
    if (!live[i]) continue;
    const ClassicInsn& in = prog[i];
    const uint16_t c = in.code;
    const char* sz = kSize[size(c) >> 3];
    emit(label(i) + ":");
    if (always_zero(in)) {
      to_ret0("");
      continue;
    }
    switch (cls(c)) {
      case kLd:
        switch (mode(c)) {
          case kAbs: emit(std::string("r0 = *(") + sz + " *)skb[" + std::to_string(in.k) + "]"); break;
          case kInd:
            // libpcap returns 0 when X + k passes 2^32; eBPF would wrap
            if (in.k) to_ret0("w7 > " + imm(0xffffffffu - in.k));
            emit(std::string("r0 = *(") + sz + " *)skb[r7 + " + std::to_string(in.k) + "]");
            break;
          case kLen: emit("w0 = w8"); break;
          case kImm: emit("w0 = " + imm(in.k)); break;
          case kMem: emit("w0 = *(u32 *)" + slot(in.k)); break;
        }
        break;
      case kLdx:
        switch (mode(c)) {
          case kMsh:
            // X = 4 * (P[k] & 0xf): the load goes through r0, which holds A
            emit("r9 = r0");
            emit("r0 = *(u8 *)skb[" + std::to_string(in.k) + "]");
            emit("w0 &= 15");
            emit("w0 <<= 2");
            emit("w7 = w0");
            emit("r0 = r9");
            break;
          case kLen: emit("w7 = w8"); break;
          case kImm: emit("w7 = " + imm(in.k)); break;
          case kMem: emit("w7 = *(u32 *)" + slot(in.k)); break;
        }
        break;
      case kSt: emit("*(u32 *)" + slot(in.k) + " = r0"); break;
      case kStx: emit("*(u32 *)" + slot(in.k) + " = r7"); break;
      case kAlu: {
        const bool x = c & kSrcX;
        const std::string src = x ? "w7" : imm(in.k);
        switch (op(c)) {
          case kAdd: emit("w0 += " + src); break;
          case kSub: emit("w0 -= " + src); break;
          case kMul: emit("w0 *= " + src); break;
          case kOr: emit("w0 |= " + src); break;
          case kAnd: emit("w0 &= " + src); break;
          case kXor: emit("w0 ^= " + src); break;
          case kNeg: emit("w0 = -w0"); break;
          case kDiv: case kMod:
            if (x) to_ret0("w7 == 0");  // classic BPF: division by zero ends the program with 0
            emit(std::string("w0 ") + (op(c) == kDiv ? "/=" : "%=") + " " + src);
            break;
          case kLsh: case kRsh: {
            const std::string shift = op(c) == kLsh ? "<<=" : ">>=";
            if (!x) {
              emit("w0 " + shift + " " + src);
              break;
            }
            // libpcap: A = 0 for X of 32 or more (eBPF would take X mod 32)
            emit("if w7 > 31 goto z" + std::to_string(i));
            emit("w0 " + shift + " w7");
            emit("goto " + label(i + 1));
            emit("z" + std::to_string(i) + ":");
            emit("w0 = 0");
            break;
          }
        }
        break;
      }
      case kJmp: {
        if (op(c) == kJa) {
          emit("goto " + label(i + 1 + in.k));
          break;
        }
        const size_t t = i + 1 + in.jt, f = i + 1 + in.jf;
        if (t == f) {
          emit("goto " + label(t));
          break;
        }
        const std::string rhs = (c & kSrcX) ? "w7" : imm(in.k);
        const char* cond = op(c) == kJeq ? "==" : op(c) == kJgt ? ">" : op(c) == kJge ? ">=" : "&";
        const char* negated = op(c) == kJeq ? "!=" : op(c) == kJgt ? "<=" : op(c) == kJge ? "<" : nullptr;
        if (t == i + 1 && negated) {
          emit(std::string("if w0 ") + negated + " " + rhs + " goto " + label(f));
          break;
        }
        emit(std::string("if w0 ") + cond + " " + rhs + " goto " + label(t));
        if (f != i + 1) emit("goto " + label(f));
        break;
      }
      case kRet:
        if (size(c) == kRetK) emit("w0 = " + imm(in.k));
        emit("exit");
        break;
      case kMisc: emit(op(c) == kTax ? "w7 = w0" : "w0 = w7"); break;
    }
  }
  if (ret0) out += "ret0:\nw0 = 0\nexit\n";
  return out;
}

}  // namespace ebpfvm::cbpf
