// libFuzzer target: the verifier's promise for tc and socket-filter programs. The fuzzer's bytes
// write a program over struct __sk_buff (field loads and stores of every size, packet accesses
// behind data_end checks, LD_ABS/LD_IND, the tc helpers with arguments near their limits, ALU and
// forward jumps), then mutate a few of its instructions. One the verifier accepts (for sched_cls or
// socket_filter) runs, rewritten as the loader rewrites it, on a random frame and random fields:
//   - in the checked interpreter under the containment oracle: no out-of-bounds access, no endless
//     run, every register inside the verifier's abstract state before every instruction;
//   - unchecked in the interpreter and in the JIT, which must agree on r0, the packet and every
//     field of struct __sk_buff.
// A violation aborts.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "interp/image.hpp"
#include "jit/image.hpp"
#include "program_data.hpp"
#include "program_gen.hpp"
#include "progtype/skb.hpp"
#include "runtime/run_state.hpp"
#include "verifier/oracle.hpp"
#include "verifier/verifier.hpp"

namespace {

using ebpfvm::gen::Source;

// Registers the generator may write: never r1 (at entry), r6 (the context) or r9/r10.
constexpr unsigned kRegs[] = {0, 2, 3, 4, 5, 7, 8};
std::string r(Source& s) { return "r" + std::to_string(kRegs[s.below(std::size(kRegs))]); }

// gen::alu and gen::jump pick r0..r7: r6 and r1 become r8 and r3, so the context stays put.
std::string keep_ctx(std::string text) {
  for (size_t i = 0; i + 1 < text.size(); ++i)
    if ((text[i] == 'r' || text[i] == 'w') && (i == 0 || !std::isalnum(static_cast<unsigned char>(text[i - 1]))) &&
        (text[i + 1] == '6' || text[i + 1] == '1') && (i + 2 == text.size() || !std::isdigit(static_cast<unsigned char>(text[i + 2]))))
      text[i + 1] = text[i + 1] == '6' ? '8' : '3';
  return text;
}

// Mostly accesses the type allows (a field at its size, narrower loads, cb[] at any size, the
// writable fields), one in 32 anywhere in the struct.
std::string ctx_access(Source& s, bool socket) {
  static const char* const kSize[] = {"u8", "u16", "u32", "u64"};
  struct Field {
    int off, size;
    bool tc_write, socket_read;
  };
  static const Field kFields[] = {{0, 4, false, true},    {4, 4, false, true},   {8, 4, true, true},     {12, 4, true, true},
                                  {16, 4, false, true},   {20, 4, false, true},  {24, 4, false, true},   {28, 4, false, true},
                                  {32, 4, true, true},    {36, 4, false, true},  {40, 4, false, true},   {44, 4, true, true},
                                  {48, 8, true, true},    {56, 8, true, true},   {64, 4, true, true},    {68, 4, false, true},
                                  {72, 4, true, false},   {84, 4, false, true},  {152, 8, true, false},  {160, 4, false, false},
                                  {164, 4, false, true},  {176, 4, false, true}, {184, 8, false, false}};
  int off, size;
  bool write = s.below(3) == 0;
  if (s.below(32) == 0) {
    off = static_cast<int>(s.below(192));
    size = 1 << s.below(4);
  } else {
    const Field& f = kFields[s.below(std::size(kFields))];
    const bool cb = f.off >= 48 && f.off < 68;
    if (socket && !f.socket_read) return r(s) + " = *(u32 *)(r6 + 0)";
    write = write && (socket ? cb : f.tc_write);
    size = f.size;
    if (!write && f.size == 4 && s.below(4) == 0) size = 1 << s.below(2);  // a narrower load
    if (cb && s.below(2)) size = 1 << s.below(f.size == 8 ? 4 : 3);       // cb[] at any size, inside cb
    off = f.off + (size < f.size ? static_cast<int>(s.below(static_cast<uint64_t>(f.size / size))) * size : 0);
  }
  const unsigned z = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;
  const std::string at = "(r6 + " + std::to_string(off) + ")";
  if (!write) return r(s) + " = *(" + kSize[z] + " *)" + at;
  return "*(" + std::string(kSize[z]) + " *)" + at + " = " + (s.below(2) ? r(s) : std::to_string(static_cast<int32_t>(s.next())));
}

std::string packet_access(Source& s, unsigned n) {
  const std::string l = "p" + std::to_string(n);
  const unsigned len = static_cast<unsigned>(1 + s.below(64));
  std::string p = "r2 = *(u32 *)(r6 + 76)\nr3 = *(u32 *)(r6 + 80)\nr4 = r2\nr4 += " + std::to_string(len) + "\nif r4 > r3 goto " + l + "\n";
  p += r(s) + " = *(u8 *)(r2 + " + std::to_string(s.below(len)) + ")\n";
  if (s.below(2)) p += "*(u8 *)(r2 + " + std::to_string(s.below(len)) + ") = r7\n";
  return p + l + ":\nr2 = 0\nr3 = 0\nr4 = 0\n";
}

std::string legacy_load(Source& s) {
  static const char* const kSize[] = {"u8", "u16", "u32"};
  const std::string size = kSize[s.below(3)];
  const std::string k = std::to_string(s.below(80));
  // the load leaves r1..r5 unreadable, as a call does
  const std::string load = s.below(2) ? "r0 = *(" + size + " *)skb[" + k + "]" : "r0 = *(" + size + " *)skb[r7 + " + k + "]";
  return load + "\nr1 = 1\nr2 = 2\nr3 = 3\nr4 = 4\nr5 = 5";
}

// A helper call with the context in r1 and arguments near the edges of what it takes; the stack's
// top 64 bytes are initialised, so memory arguments point there.
std::string helper(Source& s, bool socket) {
  const auto v = [&](uint64_t below) { return std::to_string(s.below(below)); };
  const auto sv = [&](int64_t lo, uint64_t span) { return std::to_string(lo + static_cast<int64_t>(s.below(span))); };
  const std::string mem = "r3 = r10\nr3 += -64\n";
  std::string c = "r1 = r6\n";
  if (socket) {
    switch (s.below(2)) {
      case 0: c += "r2 = " + v(100) + "\n" + mem + "r4 = " + sv(1, 64) + "\ncall 26\n"; break;
      default: c += "r2 = " + v(100) + "\n" + mem + "r4 = " + sv(1, 64) + "\nr5 = " + v(3) + "\ncall 68\n"; break;
    }
  } else {
    switch (s.below(20)) {
      case 0: c += "r2 = " + v(100) + "\n" + mem + "r4 = " + sv(1, 64) + "\ncall 26\n"; break;
      case 1: c += "r2 = " + v(100) + "\n" + mem + "r4 = " + sv(1, 64) + "\nr5 = " + v(3) + "\ncall 68\n"; break;
      case 2: c += "r2 = " + v(100) + "\n" + mem + "r4 = " + sv(1, 64) + "\nr5 = " + v(4) + "\ncall 9\n"; break;
      case 3: c += "r2 = " + v(60) + "\nr3 = " + std::to_string(static_cast<int32_t>(s.next())) + "\nr4 = " + std::to_string(static_cast<int32_t>(s.next())) +
                   "\nr5 = " + std::to_string(std::vector<int>{0, 2, 4, 0x14, 0x22, 0x24}[s.below(6)]) + "\ncall " + (s.below(2) ? "10" : "11") + "\n"; break;
      case 4: c += "r2 = " + v(200) + "\nr3 = 0\ncall 38\n"; break;
      case 5: c += "r2 = " + v(80) + "\nr3 = 0\ncall 43\n"; break;
      case 6: c += "r2 = " + v(120) + "\ncall 39\n"; break;
      case 7: c += "r2 = " + sv(-48, 96) + "\nr3 = " + v(3) + "\nr4 = " + std::to_string(std::vector<int>{0, 2, 4, 0x12, 0x20, 0x80}[s.below(6)]) + "\ncall 50\n"; break;
      case 8: c += "r2 = " + std::string(s.below(2) ? "129" : "43144") + "\nr3 = " + v(4096) + "\ncall 18\n"; break;
      case 9: c += "call 19\n"; break;
      case 10: c += "r2 = " + std::string(s.below(2) ? "56710" : "8") + "\nr3 = 0\ncall 31\n"; break;
      case 11: c += "call 97\n"; break;
      case 12: c += "call 34\n"; break;
      case 13: c += "r2 = " + v(1000) + "\ncall 48\n"; break;
      case 14: c += "r2 = " + v(5) + "\ncall 135\n"; break;
      case 15: c += "r2 = " + v(5) + "\ncall 32\n"; break;
      case 16: c = "r1 = " + v(8) + "\nr2 = " + v(3) + "\ncall 23\n"; break;
      case 17: c += "r2 = r10\nr2 += -64\nr3 = 44\nr4 = " + v(32) + "\ncall " + (s.below(2) ? "20" : "21") + "\n"; break;
      case 18: c += "r2 = r10\nr2 += -64\nr3 = " + std::to_string(4 * s.below(10)) + "\ncall " + (s.below(2) ? "29" : "30") + "\n"; break;
      default: c += "r2 = " + v(8) + "\nr3 = 0\ncall 13\n"; break;
    }
  }
  // r1..r5 are unreadable after a call, and r0 after one that returns nothing
  return c + "r1 = 1\nr2 = 2\nr3 = 3\nr4 = 4\nr5 = 5\n" + (c.find("call 41\n") != std::string::npos ? "r0 = 0\n" : "");
}

std::string program(Source& s, bool socket) {
  std::string p = "r6 = r1\n";
  for (unsigned x : {0u, 2u, 3u, 4u, 5u, 7u, 8u}) p += "r" + std::to_string(x) + " = " + std::to_string(static_cast<int32_t>(s.next())) + "\n";
  for (int i = 0; i < 8; ++i) p += "*(u64 *)(r10 - " + std::to_string(8 * (i + 1)) + ") = " + std::to_string(static_cast<int32_t>(s.next())) + "\n";
  const unsigned items = static_cast<unsigned>(4 + s.below(20));
  for (unsigned i = 0; i < items; ++i) {
    p += "i" + std::to_string(i) + ":\n";
    switch (s.below(8)) {
      case 0: case 1: p += ctx_access(s, socket) + "\n"; break;
      case 2: p += socket ? ctx_access(s, socket) + "\n" : packet_access(s, i); break;  // socket filters have no packet pointers
      case 3: p += legacy_load(s) + "\n"; break;
      case 4: case 5: p += helper(s, socket); break;
      case 6: p += keep_ctx(ebpfvm::gen::jump(s, i, items - i - 1)) + "\n"; break;
      default: p += keep_ctx(ebpfvm::gen::alu(s)) + "\n"; break;
    }
  }
  return p + "i" + std::to_string(items) + ":\nr0 = " + r(s) + "\nexit\n";
}

void mutate(std::vector<uint8_t>& code, Source& s, size_t keep) {
  const size_t slots = code.size() / 8;
  if (slots <= keep) return;
  const unsigned n = static_cast<unsigned>(s.below(3));
  for (unsigned k = 0; k < n; ++k) {
    uint8_t* in = &code[8 * (keep + s.below(slots - keep))];
    switch (s.below(4)) {
      case 0: in[2] = static_cast<uint8_t>(s.next()); in[3] = static_cast<uint8_t>(s.next()); break;
      case 1: for (int b = 4; b < 8; ++b) in[b] = static_cast<uint8_t>(s.next()); break;
      case 2: in[1] = static_cast<uint8_t>(s.below(11) | (s.below(11) << 4)); break;
      default: in[0] = static_cast<uint8_t>(s.next()); break;
    }
  }
}

// Whether this host lets the JIT map code executable (a trivial program compiles).
bool jit_here() {
  static const bool ok = [] {
    auto p = ebpfvm::assemble("r0 = 0\nexit\n");
    auto prog = p ? ebpfvm::Program::from_bytecode(*p) : ebpfvm::Result<ebpfvm::Program>(p.error());
    return prog && ebpfvm::JitProgram::compile_trusted(*prog, ebpfvm::HelperRegistry::builtin()).ok();
  }();
  return ok;
}

[[noreturn]] void fail(const std::string& why, const ebpfvm::Program& prog) {
  std::fprintf(stderr, "verified, yet %s\n%s\n", why.c_str(), prog.disassemble().c_str());
  std::abort();
}

struct Frame {
  std::vector<uint8_t> bytes;
  ebpfvm::SkbFields fields;
  ebpfvm::SkbStart start;
};

}  // namespace

// Returns false when the input made no program the verifier accepted.
bool ebpfvm_skb_fuzz_one(const uint8_t* data, size_t size) {
  ebpfvm::gen::ByteSource src(data, size);
  const bool socket = src.below(4) == 0;
  const std::string text = program(src, socket);
  auto base = ebpfvm::assemble(text);
  if (!base) {
    std::fprintf(stderr, "%s\n%s\n", base.error().to_string().c_str(), text.c_str());
    std::abort();  // the generator only writes valid programs
  }
  std::vector<uint8_t> code = *base;
  mutate(code, src, 1);
  auto prog = ebpfvm::Program::from_bytecode(code);
  if (!prog) return false;
  const ebpfvm::detail::ProgTypeDesc* type =
      ebpfvm::detail::prog_type_desc(socket ? ebpfvm::ProgType::SocketFilter : ebpfvm::ProgType::SchedCls);
  std::vector<uint32_t> ctx_accesses;
  ebpfvm::verifier::Input in;
  in.prog = &prog->data().decoded;
  in.helpers = &ebpfvm::HelperRegistry::builtin();
  in.options.context = type->context;
  in.options.complexity_limit = 50'000;
  in.options.max_loop_iterations = 1 << 9;
  in.options.record_states = true;
  in.type = type;
  in.rewritten_loads = &ctx_accesses;
  auto report = ebpfvm::verifier::analyse(in);
  if (!report) {
    if (std::getenv("SKB_FUZZ_VERBOSE")) std::fprintf(stderr, "rejected: %s\n", report.error().to_string().c_str());
    return false;
  }
  // as the loader rewrites it
  std::sort(ctx_accesses.begin(), ctx_accesses.end());
  ctx_accesses.erase(std::unique(ctx_accesses.begin(), ctx_accesses.end()), ctx_accesses.end());
  std::vector<uint8_t> bytes = code;
  if (auto rw = ebpfvm::detail::rewrite_ctx_loads(prog->data().decoded, type->fields, ctx_accesses, bytes); !rw)
    fail("the context rewrite refuses it: " + rw.error().to_string(), *prog);
  auto rewritten = ebpfvm::Program::from_bytecode(bytes);
  if (!rewritten) fail("rewritten, it does not decode", *prog);

  Frame f;
  f.bytes.resize(src.below(4) == 0 ? src.below(20) : 14 + src.below(200));
  for (auto& b : f.bytes) b = static_cast<uint8_t>(src.next());
  if (f.bytes.size() >= 14 && src.below(2)) f.bytes[12] = 0x08, f.bytes[13] = src.below(2) ? 0x00 : 0x06;  // IPv4 or ARP
  if (f.bytes.size() >= 34 && src.below(2)) f.bytes[14] = 0x45;
  f.fields.mark = static_cast<uint32_t>(src.next());
  for (uint32_t& cb : f.fields.cb) cb = static_cast<uint32_t>(src.below(64));
  f.start = socket && src.below(2) ? ebpfvm::SkbStart::Network : ebpfvm::SkbStart::Mac;

  // 1. checked, under the oracle
  const uint64_t budget = std::min<uint64_t>(report->max_insns, 50'000'000);
  auto checked = ebpfvm::Interpreter::create(*rewritten, ebpfvm::HelperRegistry::builtin(), {ebpfvm::Safety::Checked, budget, 0});
  if (!checked) fail("the checked interpreter refuses it: " + checked.error().to_string(), *prog);
  ebpfvm::SkbBuffer skb(f.bytes, f.fields, f.start);
  if (!skb.valid()) return true;
  {
    ebpfvm::detail::SkbCtx& s = skb.ctx();
    ebpfvm::detail::PooledRun pooled;
    pooled.state().skb = &s;
    const ebpfvm::Region regions[] = {{&s, ebpfvm::detail::kSkbCtxVisible, true}, {&s.data, 24, false}};
    ebpfvm::detail::ContainmentOracle oracle;
    oracle.add(nullptr, report->abstract_states);
    auto rc = checked->run({{reinterpret_cast<uint64_t>(&s), 0, 0, 0, 0}, {}, regions});
    if (!rc) fail("the checked run failed: " + rc.error().to_string(), *prog);
    if (!oracle.failure().empty()) fail("a state outside the verifier's: " + oracle.failure(), *prog);
  }
  // 2. unchecked interpreter against the JIT
  if (!jit_here()) return true;
  auto interp = ebpfvm::Interpreter::create(*rewritten, ebpfvm::HelperRegistry::builtin(), {ebpfvm::Safety::TrustedUnchecked, 0, 0});
  auto jit = ebpfvm::JitProgram::compile_trusted(*rewritten, ebpfvm::HelperRegistry::builtin());
  if (!interp || !jit) fail("an engine refuses it: " + (interp ? jit.error() : interp.error()).to_string(), *prog);
  ebpfvm::SkbBuffer a(f.bytes, f.fields, f.start), b(f.bytes, f.fields, f.start);
  uint64_t ra, rb;
  {
    ebpfvm::detail::PooledRun pooled;
    pooled.state().skb = &a.ctx();
    auto x = interp->run({{reinterpret_cast<uint64_t>(&a.ctx()), 0, 0, 0, 0}, a.packet(), {}});
    if (!x) fail("the interpreter failed: " + x.error().to_string(), *prog);
    ra = *x;
  }
  {
    ebpfvm::detail::PooledRun pooled;
    pooled.state().skb = &b.ctx();
    auto x = jit->run({{reinterpret_cast<uint64_t>(&b.ctx()), 0, 0, 0, 0}, b.packet(), {}});
    if (!x) fail("the JIT failed: " + x.error().to_string(), *prog);
    rb = *x;
  }
  const auto pa = a.packet(), pb = b.packet();
  if (ra != rb || !std::equal(pa.begin(), pa.end(), pb.begin(), pb.end()) || std::memcmp(&a.ctx().md, &b.ctx().md, sizeof a.ctx().md) != 0)
    fail("the interpreter and the JIT disagree (r0 " + std::to_string(ra) + " and " + std::to_string(rb) + ")", *prog);
  return true;
}

#ifndef EBPFVM_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ebpfvm_skb_fuzz_one(data, size);
  return 0;
}
#endif
