// What the JIT emits, checked through JitStats and the code bytes: inlined array lookups, direct
// helper calls, aligned loops, constant blinding; each with the results the program must give.
#include <sys/mman.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>

#include "support.hpp"

using namespace ebpfvm;

namespace {

// Whether this host has free address space within rel32 reach of the library's code, where the
// JIT asks for its code memory. Without it (or on a kernel that takes MAP_FIXED_NOREPLACE as a
// mere hint) helper calls go through a table instead.
bool near_code_mapping() {
  constexpr uintptr_t kStep = 64ull << 20;
  const uintptr_t code = reinterpret_cast<uintptr_t>(&HelperRegistry::builtin) & ~(kStep - 1);
  for (uintptr_t d = kStep; d < (1ull << 30); d += kStep)
    for (uintptr_t at : {code - d, code + d}) {
      void* p = mmap(reinterpret_cast<void*>(at), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (p == MAP_FAILED) continue;
      munmap(p, 4096);
      if (p == reinterpret_cast<void*>(at)) return true;
    }
  return false;
}

// `n` helper calls, direct where the host lets the JIT map its code near the library's.
void check_helper_calls(const JitStats& s, uint64_t n) {
  static const bool near = near_code_mapping();
  if (!near) WARN("SKIP the rel32 check: no address space near the library's code on this host (calls go through a table)");
  if (test::x86_codegen()) CHECK(s.direct_calls == (near ? n : 0));
  if (test::x86_codegen()) CHECK(s.table_calls == (near ? 0 : n));
}

Program prog(const std::string& text) {
  auto p = Program::from_bytecode(test::must_assemble(text));
  REQUIRE(p.ok());
  return std::move(*p);
}

Map array(MapType type, uint32_t max_entries) {
  MapSpec s;
  s.name = "values";
  s.type = type;
  s.key_size = 4;
  s.value_size = 8;
  s.max_entries = max_entries;
  auto m = Map::create(s);
  REQUIRE(m.ok());
  for (uint32_t k = 0; k < max_entries; ++k) {
    const uint64_t v = 100 + k;
    uint8_t key[4], val[8];
    std::memcpy(key, &k, 4);
    std::memcpy(val, &v, 8);
    REQUIRE(m->update(key, val).ok());
  }
  return std::move(*m);
}

uint64_t run_key(const JitProgram& p, uint32_t key) {
  std::vector<uint8_t> mem(8);
  std::memcpy(mem.data(), &key, 4);
  auto r = p.run(mem);
  REQUIRE(r.ok());
  return *r;
}

bool contains(std::span<const uint8_t> code, std::vector<uint8_t> bytes) {
  return std::search(code.begin(), code.end(), bytes.begin(), bytes.end()) != code.end();
}

// The lookup with r1 = the map and r2 = the key: r0 = the value, or 12345 when it misses.
const std::string kCallAndLoad = R"(
call 1
if r0 == 0 goto miss
r0 = *(u64 *)(r0 + 0)
exit
miss:
r0 = 12345
exit
)";

// r0 = values[*(u32 *)mem], or 12345 when the lookup misses.
const std::string kLookup = R"(
r6 = *(u32 *)(r1 + 0)
*(u32 *)(r10 - 4) = r6
r2 = r10
r2 += -4
r1 = map_fd(0) ll)" + kCallAndLoad;

}  // namespace

TEST_CASE("jit: a lookup in a constant array map is inlined and gives what the helper gives", "[jit]") {
  SKIP_WITHOUT_JIT();
  const Map m = array(MapType::Array, 4);
  auto p = JitProgram::compile(prog(kLookup), HelperRegistry::builtin(), std::span<const Map>(&m, 1), 8);
  REQUIRE(p.ok());
  CHECK(p->stats().inlined_lookups == 1);
  CHECK(p->stats().direct_calls + p->stats().table_calls == 0);
  for (uint32_t k = 0; k < 4; ++k) CHECK(run_key(*p, k) == 100 + k);
  CHECK(run_key(*p, 4) == 12345);
  CHECK(run_key(*p, 0x80000000u) == 12345);
  CHECK(run_key(*p, 0xffffffffu) == 12345);
}

namespace {

// r0 = values[mem[0]] (a byte key), or 12345 when the lookup misses.
const std::string kByteKeyLookup = R"(
r6 = *(u8 *)(r1 + 0)
*(u32 *)(r10 - 4) = r6
r2 = r10
r2 += -4
r1 = map_fd(0) ll)" + kCallAndLoad;

// The lookup program `text` (ending in kCallAndLoad) over a fresh array of `entries` values,
// verified for 8 bytes of memory, or compiled as trusted code.
JitProgram array_lookup(const std::string& text, uint32_t entries, bool verified = true) {
  const Map m = array(MapType::Array, entries);
  auto p = verified ? JitProgram::compile(prog(text), HelperRegistry::builtin(), std::span<const Map>(&m, 1), 8)
                    : JitProgram::compile_trusted(prog(text), HelperRegistry::builtin(), std::span<const Map>(&m, 1));
  REQUIRE(p.ok());
  CHECK(p->stats().inlined_lookups == 1);
  return std::move(*p);
}

}  // namespace

TEST_CASE("jit: a lookup whose key is known to be inside the array needs no check and no NULL test", "[jit]") {
  SKIP_WITHOUT_JIT();
  const JitProgram p = array_lookup(kByteKeyLookup, 256);
  // Folded: the index check, the NULL test, and r2 = r10 - 4 and the map address, which the
  // inlined lookup does not read.
  if (test::x86_codegen()) CHECK(p.stats().folded == 5);
  for (uint32_t k : {0u, 1u, 77u, 255u}) CHECK(run_key(p, k) == 100 + k);
  CHECK(run_key(p, 0x1ff) == 100 + 0xff);  // only the low byte is the key
}

TEST_CASE("jit: a byte key that may run past a smaller array keeps the check", "[jit]") {
  SKIP_WITHOUT_JIT();
  const JitProgram p = array_lookup(kByteKeyLookup, 200);
  if (test::x86_codegen()) CHECK(p.stats().folded == 3);  // only what the lookup does not read
  CHECK(run_key(p, 199) == 299);
  CHECK(run_key(p, 200) == 12345);
  CHECK(run_key(p, 255) == 12345);
}

TEST_CASE("jit: a key stored, then overwritten in the slot, is read back from the stack", "[jit]") {
  SKIP_WITHOUT_JIT();
  // The inlined lookup may take the key from the register it was stored from, unless the slot
  // has changed since: here a byte store replaces its low byte.
  const JitProgram p = array_lookup(R"(
r6 = *(u8 *)(r1 + 0)
*(u32 *)(r10 - 4) = r6
*(u8 *)(r10 - 4) = 9
r2 = r10
r2 += -4
r1 = map_fd(0) ll)" + kCallAndLoad, 256);
  CHECK(run_key(p, 5) == 109);
  CHECK(run_key(p, 0) == 109);
}

TEST_CASE("jit: a key stored before trusted code moves r10 is not taken from the register", "[jit]") {
  SKIP_WITHOUT_JIT();
  // After r10 -= 4 the slot at r10 - 8 is another one than the key was stored to (trusted code
  // only: the verifier refuses writes to r10).
  const JitProgram p = array_lookup(R"(
r6 = *(u8 *)(r1 + 0)
*(u32 *)(r10 - 8) = r6
*(u32 *)(r10 - 12) = 7
r10 += -4
r2 = r10
r2 += -8
r1 = map_fd(0) ll)" + kCallAndLoad, 256, false);
  CHECK(run_key(p, 5) == 107);
}

TEST_CASE("jit: big-endian fields built from byte pairs are loaded as 16-bit words", "[jit]") {
  SKIP_WITHOUT_JIT();
  // An EtherType and, after a VLAN tag, the inner one: clang's shape for `p[12] << 8 | p[13]`.
  auto p = JitProgram::compile_trusted(prog(R"(
r2 = *(u8 *)(r1 + 13)
r3 = *(u8 *)(r1 + 12)
r3 <<= 8
r3 |= r2
r0 = r3
if r3 != 0x8100 goto out
r2 = *(u8 *)(r1 + 17)
r0 = *(u8 *)(r1 + 16)
r0 <<= 8
r0 |= r2
out:
exit
)"),
                                       HelperRegistry::builtin());
  REQUIRE(p.ok());
  if (test::x86_codegen()) CHECK(p->stats().byte_pairs == 2);
  std::vector<uint8_t> pkt(20, 0);
  pkt[12] = 0x81;
  pkt[16] = 0x86;
  pkt[17] = 0xdd;
  CHECK(*p->run(pkt) == 0x86dd);
  pkt[12] = 0x08;
  CHECK(*p->run(pkt) == 0x0800);
}

TEST_CASE("jit: a byte pair through two registers is one 16-bit load when the sums prove them a byte apart", "[jit]") {
  SKIP_WITHOUT_JIT();
  // clang -mcpu=v3's shape for `p[x + 2] << 8 | p[x + 3]` with x a 32-bit offset: each address in
  // its own register. The sums prove it only where the 32-bit additions cannot wrap.
  auto pairs = [](const std::string& offset, uint32_t step) {
    auto p = JitProgram::compile_trusted(prog(offset + "\nw2 = w3\nw2 += 2\nr4 = r1\nr4 += r2\nw3 += " + std::to_string(step) +
                                              "\nr1 += r3\nr1 = *(u8 *)(r1 + 0)\nr0 = *(u8 *)(r4 + 0)\nr0 <<= 8\nr0 |= r1\nexit"),
                                         HelperRegistry::builtin());
    REQUIRE(p.ok());
    std::vector<uint8_t> mem = {2, 0, 0, 0, 0x14, 0x15, 0x16, 0x17};
    CHECK(*p->run(mem) == (step == 3 ? 0x1415u : 0x1416u));
    return p->stats().byte_pairs;
  };
  if (test::x86_codegen()) CHECK(pairs("r3 = *(u8 *)(r1 + 0)", 3) == 1);
  if (test::x86_codegen()) CHECK(pairs("r3 = *(u8 *)(r1 + 0)", 4) == 0);  // two bytes apart
  if (test::x86_codegen()) CHECK(pairs("r3 = *(u32 *)(r1 + 0)\nr3 &= 0xff", 3) == 1);
  if (test::x86_codegen()) CHECK(pairs("r3 = *(u32 *)(r1 + 0)\nr3 |= 0", 3) == 0);  // any 32-bit value: x + 3 may wrap where x + 2 does not
}

TEST_CASE("jit: what only a loop's exit reads is computed on the way out, not every time round", "[jit]") {
  SKIP_WITHOUT_JIT();
  // clang's search loop: r0 = i (read only when a byte differs) and r0 = 0 (read only when the
  // loop ends) are set on every iteration in the bytecode.
  auto p = JitProgram::compile_trusted(prog(R"(
r2 = 0
goto head
latch:
r0 = 0
r2 += 1
if r2 == 64 goto out
head:
r3 = r1
r3 += r2
r4 = *(u8 *)(r3 + 0)
r3 += 64
r3 = *(u8 *)(r3 + 0)
r0 = r2
if r4 == r3 goto latch
out:
exit
)"),
                                       HelperRegistry::builtin());
  REQUIRE(p.ok());
  // The loop is also unrolled (4 copies): r0 = i sinks in each, r0 = 0 in the one copy that
  // keeps the counter's test.
  CHECK(p->stats().unrolled_loops == 1);
  if (test::x86_codegen()) CHECK(p->stats().sunk == 5);
  std::vector<uint8_t> mem(128, 7);
  CHECK(*p->run(mem) == 0);
  for (uint64_t at : {0, 1, 2, 3, 41, 62, 63}) {  // an exit from every copy
    mem[64 + at] = 8;
    CHECK(*p->run(mem) == at);
    mem[64 + at] = 7;
  }
}

TEST_CASE("jit: counted loops are unrolled only where the counter's steps decide a test", "[jit]") {
  SKIP_WITHOUT_JIT();
  const auto unrolled = [](const char* text) {
    auto p = JitProgram::compile_trusted(prog(text), HelperRegistry::builtin());
    REQUIRE(p.ok());
    return p->stats().unrolled_loops;
  };
  // From a constant, by a power of two, tested for (in)equality: up, down, 32-bit.
  CHECK(unrolled("r2 = 0\nr0 = 0\nloop:\nr0 += r2\nr2 += 1\nif r2 != 10 goto loop\nexit") == 1);
  CHECK(unrolled("r2 = 11\nr0 = 0\nloop:\nr0 += r2\nr2 -= 1\nif r2 == 0 goto out\ngoto loop\nout:\nexit") == 1);
  CHECK(unrolled("r2 = 0\nr0 = 0\nloop:\nr0 += 1\nw2 += 4\nif w2 != 64 goto loop\nexit") == 1);
  CHECK(unrolled("r3 = 0\nr0 = 0 ll\nloop:\nr3 += 3\nr0 += 1\nif r0 != 6 goto loop\nr0 = r3\nexit") == 1);  // set by an lddw
  // Around and inside a local call: the call's offset and the functions are renumbered.
  CHECK(unrolled("r6 = 0\nr0 = 0\nfirst:\nr6 += 2\nr0 += 1\nif r6 != 8 goto first\nr1 = r0\ncall sum_to\nr7 = 0\n"
                 "after:\nr0 += r7\nr7 += 1\nif r7 != 5 goto after\nexit\nsum_to:\nr2 = 0\nr0 = 0\ninner:\nr0 += r2\n"
                 "r2 += 1\nif r2 != 12 goto inner\nr0 += r1\nexit") == 3);
  // Near misses: a start known only at run time, a step of 3, two writes of the counter, a test
  // on a register, an ordered test, a loop with a call.
  CHECK(unrolled("r2 = *(u8 *)(r1 + 0)\nr0 = 0\nloop:\nr0 += 1\nr2 += 1\nif r2 != 8 goto loop\nexit") == 0);
  CHECK(unrolled("r2 = 0\nr0 = 0\nloop:\nr0 += 1\nr2 += 3\nif r2 != 21 goto loop\nexit") == 0);
  CHECK(unrolled("r2 = 0\nr0 = 0\nloop:\nr0 += 1\nr2 += 1\nr2 += 2\nif r2 != 12 goto loop\nexit") == 0);
  CHECK(unrolled("r2 = 0\nr3 = 8\nr0 = 0\nloop:\nr0 += 1\nr2 += 1\nif r2 != r3 goto loop\nexit") == 0);
  CHECK(unrolled("r2 = 0\nr0 = 0\nloop:\nr0 += 1\nr2 += 1\nif r2 < 8 goto loop\nexit") == 0);
  CHECK(unrolled("r6 = 0\nr7 = 0\nloop:\ncall 7\nr7 += r0\nr6 += 1\nif r6 != 8 goto loop\nr0 = r7\nexit") == 0);
}

TEST_CASE("jit: unrolling at most doubles a program", "[jit]") {
  SKIP_WITHOUT_JIT();
  // 2000 loops of 3 slots, 8002 slots in all: each unrolled loop adds 9, so 889 fit in 8002.
  std::string text = "r0 = 0\n";
  for (int i = 0; i < 2000; ++i)
    text += "r2 = 0\nl" + std::to_string(i) + ":\nr0 += 1\nr2 += 1\nif r2 != 4 goto l" + std::to_string(i) + "\n";
  auto p = JitProgram::compile_trusted(prog(text + "exit"), HelperRegistry::builtin());
  REQUIRE(p.ok());
  CHECK(p->stats().unrolled_loops == 889);
  std::vector<uint8_t> mem(8);
  CHECK(*p->run(mem) == 8000);
}

TEST_CASE("jit: a loop's accumulator lives in its copy, and the copy back waits for the exit", "[jit]") {
  SKIP_WITHOUT_JIT();
  // clang's checksum loop keeps the sum in r4 and adds through r0 (r0 += r4; r4 = r0), and only
  // the code after the loop reads r0: compiled as r4 += r0, with r0 = r4 on the way out.
  auto p = JitProgram::compile_trusted(prog(R"(
r2 = 0
r4 = 0
loop:
r0 = *(u8 *)(r1 + 0)
r0 += r2
r0 += r4
r2 += 1
r4 = r0
if r2 != 100 goto loop
exit
)"),
                                       HelperRegistry::builtin());
  REQUIRE(p.ok());
  if (test::x86_codegen()) CHECK(p->stats().sunk == 1);
  std::vector<uint8_t> mem = {3};
  CHECK(*p->run(mem) == 100 * 3 + 4950);
}

TEST_CASE("jit: lookups in hash and per-CPU maps stay helper calls", "[jit]") {
  SKIP_WITHOUT_JIT();
  for (MapType t : {MapType::Hash, MapType::PercpuArray}) {
    INFO(static_cast<int>(t));
    const Map m = array(t, 4);
    auto p = JitProgram::compile(prog(kLookup), HelperRegistry::builtin(), std::span<const Map>(&m, 1), 8);
    REQUIRE(p.ok());
    CHECK(p->stats().inlined_lookups == 0);
    check_helper_calls(p->stats(), 1);
    CHECK(run_key(*p, 2) == 102);
    CHECK(run_key(*p, 7) == 12345);
  }
}

TEST_CASE("jit: a lookup whose map depends on the path taken is not inlined", "[jit]") {
  SKIP_WITHOUT_JIT();
  const Map maps[] = {array(MapType::Array, 4), array(MapType::Hash, 2)};
  // The call is a jump target: r1 is the array on one path and the hash on the other.
  auto p = JitProgram::compile_trusted(prog(R"(
r6 = *(u32 *)(r1 + 0)
r7 = *(u32 *)(r1 + 4)
*(u32 *)(r10 - 4) = r6
r2 = r10
r2 += -4
r1 = map_fd(0) ll
if r7 == 0 goto lookup
r1 = map_fd(1) ll
lookup:)" + kCallAndLoad),
                                       HelperRegistry::builtin(), maps);
  REQUIRE(p.ok());
  CHECK(p->stats().inlined_lookups == 0);
  std::vector<uint8_t> mem(8, 0);
  mem[0] = 3;
  CHECK(*p->run(mem) == 103);  // the array holds key 3
  mem[4] = 1;
  CHECK(*p->run(mem) == 12345);  // the hash holds keys 0 and 1 only
}

TEST_CASE("jit: built-in helpers are called with call rel32", "[jit]") {
  SKIP_WITHOUT_JIT();
  auto p = JitProgram::compile_trusted(prog("call 7\nr6 = r0\ncall 7\nr0 ^= r6\nexit"), HelperRegistry::builtin());
  REQUIRE(p.ok());
  CHECK(p->run(std::span<uint8_t>{}).ok());
  check_helper_calls(p->stats(), 2);
}

TEST_CASE("jit: a helper call that ends the program is a jump, unless the frame holds a stack", "[jit]") {
  SKIP_WITHOUT_JIT();
  // The helper returns r0 straight to the program's caller, as clang's native `return f(x)`. With
  // a BPF stack the call stays a call: the helper's pointers may point into the frame.
  static uint64_t seen;
  HelperRegistry helpers;
  Helper triple{1000, "triple", [](uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, void* user) {
                  return r1 * 3 + *static_cast<uint64_t*>(user);
                }, &seen, {}};
  triple.proto.args[0] = ArgKind::Anything;
  Helper deref{1001, "deref", [](uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
                 volatile uint8_t scratch[2048];  // the helper's own frame, over a freed BPF stack
                 for (auto& b : scratch) b = 0xee;
                 return *reinterpret_cast<const uint64_t*>(r1) + scratch[7];
               }, nullptr, {}};
  deref.proto.args[0] = ArgKind::Anything;
  REQUIRE(helpers.add(triple).ok());
  REQUIRE(helpers.add(deref).ok());
  seen = 100;
  auto run = [&](const std::string& text, uint32_t tails) {
    auto p = JitProgram::compile_trusted(prog(text), helpers);
    REQUIRE(p.ok());
    if (test::x86_codegen()) CHECK(p->stats().tail_helper_calls == tails);
    std::vector<uint8_t> mem(8, 1);
    return *p->run(mem);
  };
  CHECK(run("r1 = 5\ncall 1000\nexit", 1) == 115);
  CHECK(run("r6 = 7\nr1 = r6\ncall 1000\nexit", 1) == 121);  // r6 restored before the jump
  CHECK(run("r1 = 5\ncall 1000\nr0 += 1\nexit", 0) == 116);
  CHECK(run("*(u64 *)(r10 - 8) = 9\nr1 = r10\nr1 += -8\ncall 1001\nexit", 0) == 9 + 0xee);
  CHECK(run("r1 = 2\nif r1 == 2 goto +2\ncall 1000\nexit\ncall 1000\nexit", 2) == 106);
}

TEST_CASE("jit: a short loop's head is aligned and the loop still counts right", "[jit]") {
  SKIP_WITHOUT_JIT();
  auto p = JitProgram::compile_trusted(prog(R"(
r0 = 0
r2 = 1000
again:
r0 += r2
r2 -= 1
if r2 != 0 goto again
exit
)"),
                                       HelperRegistry::builtin());
  REQUIRE(p.ok());
  if (test::x86_codegen()) CHECK(p->stats().aligned_loops == 1);
  CHECK(*p->run(std::span<uint8_t>{}) == 500500);
}

TEST_CASE("jit: blinding keeps the program's constants out of executable memory", "[jit]") {
  SKIP_WITHOUT_JIT();
  const char* text = test::kSevenConstants;
  const std::vector<std::vector<uint8_t>> constants = {{0x3c, 0x3c, 0x3c, 0x3c}, {0x44, 0x33, 0x22, 0x11}, {0x88, 0x77, 0x66, 0x55},
                                                       {0x87, 0x65, 0x43, 0x61}, {0x6d, 0x6c, 0x6b, 0x6a}, {8, 7, 6, 5, 4, 3, 2, 1},
                                                       {0x7e, 0x7e, 0x7e, 0x7e}};
  auto plain = JitProgram::compile_trusted(prog(text), HelperRegistry::builtin());
  JitOptions o;
  o.blind_constants = true;
  auto blinded = JitProgram::compile_trusted(prog(text), HelperRegistry::builtin(), {}, o);
  REQUIRE((plain.ok() && blinded.ok()));
  for (const auto& c : constants) {
    if (test::x86_codegen()) CHECK(contains(plain->code(), c));
    CHECK_FALSE(contains(blinded->code(), c));
  }
  CHECK(plain->stats().blinded_constants == 0);
  CHECK(blinded->stats().blinded_constants == 7);
  CHECK(*plain->run(std::span<uint8_t>{}) == test::kSevenConstantsResult);
  CHECK(*blinded->run(std::span<uint8_t>{}) == test::kSevenConstantsResult);
}

TEST_CASE("jit: every semantics case gives its result with constants blinded", "[jit]") {
  SKIP_WITHOUT_JIT();
  JitOptions o;
  o.blind_constants = true;
  size_t n = 0;
  for (const auto& c : test::load_cases()) {
    if (!c.result) continue;
    INFO(c.where() << "\n" << c.source);
    auto p = Program::from_bytecode(test::must_assemble(c.source));
    REQUIRE(p.ok());
    auto jit = JitProgram::compile_trusted(*p, test::test_helpers(), {}, o);
    if (!jit) continue;  // LD_ABS with bpf-to-bpf calls, as without blinding
    auto mem = test::hex_bytes(c.mem_hex);
    auto r = jit->run(mem);
    REQUIRE(r.ok());
    CHECK(*r == *c.result);
    ++n;
  }
  CHECK(n > 150);
}

namespace {

// `for (i = i0; i != n; i++) mem[i + store] = mem[i + load] OP k` as clang writes it (the exit test
// before a goto back, or a jne back), optionally with the address moved between load and store;
// r0 then packs the last value, the index and the address register left behind.
std::string at(int off) { return off < 0 ? " - " + std::to_string(-off) : " + " + std::to_string(off); }

std::string byte_loop(int i0, int n, int load, int store, const std::string& op, bool jne, int step) {
  std::string t = "r2 = " + std::to_string(i0) + "\nloop:\nr3 = r1\nr3 += r2\nr4 = *(u8 *)(r3" + at(load) + ")\n";
  if (step) t += "r3 += " + std::to_string(step) + "\n";
  if (!op.empty()) t += "r4 " + op + "\n";
  t += "*(u8 *)(r3" + at(store) + ") = r4\nr2 += 1\n";
  t += jne ? "if r2 != " + std::to_string(n) + " goto loop\n" : "if r2 == " + std::to_string(n) + " goto out\ngoto loop\nout:\n";
  t += "r3 -= r1\nr0 = r4\nr0 <<= 16\nr0 |= r2\nr0 <<= 16\nr0 |= r3\nexit\n";
  return t;
}

}  // namespace

TEST_CASE("jit: byte loops run 16 bytes at a time and leave memory and registers as byte by byte", "[jit]") {
  SKIP_WITHOUT_JIT();
  struct Shape {
    int load, store, step;
    bool vector;  // the store lands at or behind its load, or a whole block ahead
  };
  const Shape shapes[] = {{0, 0, 0, true},    {1, 0, 0, true},    {40, 0, 0, true},  {0, 16, 0, true},  {0, 40, 0, true},
                          {0, 1, 0, false},   {0, 15, 0, false},  {3, 10, 0, false}, {0, 0, 100, true}, {0, -100, 100, true}, {0, -84, 100, true},
                          {0, -95, 100, false}};
  const char* ops[] = {"", "^= 0x5a", "+= 200", "&= 15", "-= 3", "|= 0x80", "w4 ^= 0x33"};
  int vectorized = 0;
  for (const Shape& sh : shapes)
    for (const char* op : ops)
      for (int i0 : {0, 5})
        for (int len : {1, 15, 16, 17, 33, 100})
          for (bool jne : {false, true}) {
            std::string o = op;
            if (o.rfind("w4 ", 0) == 0) o = o.substr(3);  // the 32-bit form below
            std::string text = byte_loop(i0, i0 + len, sh.load, sh.store, o, jne, sh.step);
            if (std::string(op).rfind("w4 ", 0) == 0) text.replace(text.find("r4 " + o), 3 + o.size(), std::string("w4 ") + o);
            INFO(text);
            auto p = Program::from_assembly(text);
            REQUIRE(p.ok());
            auto interp = Interpreter::create(*p, {}, {Safety::Checked});
            auto jit = JitProgram::compile_trusted(*p, {});
            REQUIRE((interp.ok() && jit.ok()));
            if (test::x86_codegen()) CHECK(jit->stats().vectorized_loops == (sh.vector ? 1u : 0u));
            vectorized += static_cast<int>(jit->stats().vectorized_loops);
            std::vector<uint8_t> mi(256), mj;
            for (size_t b = 0; b < mi.size(); ++b) mi[b] = static_cast<uint8_t>(b * 37 + 11);
            mj = mi;
            auto ri = interp->run(mi);
            auto rj = jit->run(mj);
            REQUIRE((ri.ok() && rj.ok()));
            CHECK(*ri == *rj);
            CHECK(mi == mj);
          }
  if (test::x86_codegen()) CHECK(vectorized > 1000);
}

TEST_CASE("jit: a 100,000-instruction program with 25,000 branches compiles and runs", "[jit]") {
  SKIP_WITHOUT_JIT();
  std::string text = "r0 = *(u8 *)(r1 + 0)\nr2 = 0\n";
  for (int i = 0; i < 24999; ++i) text += "r0 += 3\nif r0 > 1000 goto +1\nr0 ^= 5\nr2 += r0\n";
  text += "r0 += r2\nexit\n";
  const Program p = prog(text);
  REQUIRE(p.slot_count() == 100000);
  auto jit = JitProgram::compile_trusted(p, HelperRegistry::builtin());
  REQUIRE(jit.ok());
  auto interp = Interpreter::create(p, HelperRegistry::builtin(), {Safety::Checked});
  REQUIRE(interp.ok());
  std::vector<uint8_t> mem = {7, 0, 0, 0, 0, 0, 0, 0};
  const auto want = interp->run(mem);
  REQUIRE(want.ok());
  CHECK(*jit->run(mem) == *want);
}

TEST_CASE("jit: helpers that keep per-run state get a fresh run state each run, faults included", "[jit]") {
  SKIP_WITHOUT_JIT();
  // bpf_spin_lock records the lock it holds in the run state; the JIT's runs without a state are
  // only for programs whose helpers keep none (helpers/builtin.hpp).
  auto arr = Map::create({"a", MapType::Array, 4, 8, 1, 0, nullptr});
  REQUIRE(arr.ok());
  std::vector<Map> maps{*arr};
  const std::string lock = "r1 = map_value_fd(0) + 0 ll\ncall 93\n", unlock = "r1 = map_value_fd(0) + 0 ll\ncall 94\n";
  auto compile = [&](const std::string& text) {
    auto p = JitProgram::compile_trusted(prog(text + "r0 = 7\nexit"), HelperRegistry::builtin(), maps);
    REQUIRE(p.ok());
    return std::move(*p);
  };
  std::vector<uint8_t> mem(8);
  auto twice = compile(lock + lock + unlock).run(mem);
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().code == Errc::RuntimeFault);
  CHECK(twice.error().message == "bpf_spin_lock while already holding a lock");
  CHECK(*compile(lock + unlock).run(mem) == 7);
  // A run that exits holding the lock leaves the lock word set, but not its claim on it: the next
  // run does not hold it.
  CHECK(*compile(lock).run(mem) == 7);
  auto after = compile(unlock).run(mem);
  REQUIRE_FALSE(after.ok());
  CHECK(after.error().message == "bpf_spin_unlock of a lock this run does not hold");
}

TEST_CASE("jit: forward jumps that fit take the 2-byte form", "[jit]") {
  SKIP_WITHOUT_JIT();
  // A short forward branch and a goto: jcc rel8 (0x70-0x7f) and jmp rel8 (0xeb), no rel32 forms
  // (0x0f 0x8x, 0xe9). Blinded code keeps the long forms and computes the same.
  const char* text = "r0 = 1\nif r1 == 0 goto out\nr0 = 2\nif r2 > 3 goto out\nr0 = 3\ngoto out\nr0 = 4\nout:\nexit";
  auto p = JitProgram::compile_trusted(prog(text), HelperRegistry::builtin());
  REQUIRE(p.ok());
  const auto code = p->code();
  bool long_jump = false;
  for (size_t i = 0; i + 1 < code.size(); ++i) long_jump |= (code[i] == 0x0f && (code[i + 1] & 0xf0) == 0x80) || code[i] == 0xe9;
  if (test::x86_codegen()) {  // x86-64 encodings
    CHECK_FALSE(long_jump);
    CHECK(std::count_if(code.begin(), code.end(), [](uint8_t b) { return (b & 0xf0) == 0x70; }) >= 2);
  }
  JitOptions blind;
  blind.blind_constants = true;
  auto b = JitProgram::compile_trusted(prog(text), HelperRegistry::builtin(), {}, blind);
  REQUIRE(b.ok());
  RunArgs args;
  for (uint64_t r1 : {0, 1})
    for (uint64_t r2 : {2, 4}) {
      args.regs[0] = r1;
      args.regs[1] = r2;
      const uint64_t want = r1 == 0 ? 1 : r2 > 3 ? 2 : 3;
      CHECK(*p->run(args) == want);
      CHECK(*b->run(args) == want);
    }
}

TEST_CASE("jit: loops unrolled before a callback's address is taken and inside the callback", "[jit]") {
  SKIP_WITHOUT_JIT();
  // The lddw of the callback's code is pc-relative, so the unroller renumbers it.
  const char* text =
      "*(u64 *)(r10 - 8) = 0\nr6 = 0\nr7 = 0\npre:\nr7 += 3\nr6 += 1\nif r6 != 8 goto pre\nr1 = 4\n"
      "r2 = code(cb) ll\nr3 = r10\nr3 += -8\nr4 = 0\ncall 181\nr0 = *(u64 *)(r10 - 8)\nr0 += r7\nexit\n"
      "cb:\nr4 = 0\nr5 = 0\ncount:\nr5 += r1\nr4 += 1\nif r4 != 4 goto count\nr3 = *(u64 *)(r2 + 0)\n"
      "r3 += r5\n*(u64 *)(r2 + 0) = r3\nr0 = 0\nexit";
  auto p = JitProgram::compile_trusted(prog(text), HelperRegistry::builtin());
  REQUIRE(p.ok());
  CHECK(p->stats().unrolled_loops == 2);
  auto i = Interpreter::create(prog(text), HelperRegistry::builtin(), {Safety::TrustedUnchecked});
  REQUIRE(i.ok());
  std::vector<uint8_t> mem(8);
  CHECK(*i->run(mem) == 0x30);  // 8 * 3, plus 4 * (0 + 1 + 2 + 3) from the callback's four calls
  CHECK(*p->run(mem) == 0x30);
}
