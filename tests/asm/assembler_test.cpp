// Assembler encodings (checked against llvm-mc's BPF backend for the forms it accepts) and errors.
#include <catch2/catch.hpp>

#include "support.hpp"

using namespace ebpfvm;

namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> b) {
  std::vector<uint8_t> v;
  for (int x : b) v.push_back(static_cast<uint8_t>(x));
  return v;
}

std::vector<uint8_t> one(const std::string& line) { return test::must_assemble(line + "\nexit\n"); }

std::vector<uint8_t> with_exit(std::vector<uint8_t> v) {
  for (int b : {0x95, 0, 0, 0, 0, 0, 0, 0}) v.push_back(static_cast<uint8_t>(b));
  return v;
}

std::string error_of(const std::string& text) {
  auto r = assemble(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::AssemblyError);
  return r.error().to_string();
}

}  // namespace

TEST_CASE("assembler encodes llvm-objdump syntax exactly", "[asm]") {
  CHECK(one("r0 = *(u32 *)(r1 + 4)") == with_exit(bytes({0x61, 0x10, 0x04, 0, 0, 0, 0, 0})));
  CHECK(one("if r2 > r3 goto +5") == with_exit(bytes({0x2d, 0x32, 0x05, 0, 0, 0, 0, 0})));
  CHECK(one("call 1") == with_exit(bytes({0x85, 0, 0, 0, 1, 0, 0, 0})));
  CHECK(one("r1 = 0x1234 ll") == with_exit(bytes({0x18, 0x01, 0, 0, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})));
  CHECK(one("lock *(u64 *)(r10 - 8) += r1") == with_exit(bytes({0xdb, 0x1a, 0xf8, 0xff, 0, 0, 0, 0})));
  CHECK(one("w1 += w2") == with_exit(bytes({0x0c, 0x21, 0, 0, 0, 0, 0, 0})));
  CHECK(one("w1 = -w1") == with_exit(bytes({0x84, 0x01, 0, 0, 0, 0, 0, 0})));
  CHECK(one("r1 s>>= r2") == with_exit(bytes({0xcf, 0x21, 0, 0, 0, 0, 0, 0})));
  CHECK(one("r2 = be16 r2") == with_exit(bytes({0xdc, 0x02, 0, 0, 0x10, 0, 0, 0})));
  CHECK(one("r2 = le32 r2") == with_exit(bytes({0xd4, 0x02, 0, 0, 0x20, 0, 0, 0})));
  CHECK(one("*(u8 *)(r1 + 3) = r2") == with_exit(bytes({0x73, 0x21, 0x03, 0, 0, 0, 0, 0})));
  CHECK(one("if w1 s< -3 goto -1") == with_exit(bytes({0xc6, 0x01, 0xff, 0xff, 0xfd, 0xff, 0xff, 0xff})));
  CHECK(one("r0 = *(u8 *)skb[12]") == with_exit(bytes({0x30, 0, 0, 0, 0x0c, 0, 0, 0})));
  CHECK(one("lock *(u32 *)(r1 + 0) |= w2") == with_exit(bytes({0xc3, 0x21, 0, 0, 0x40, 0, 0, 0})));
  // v4 forms and forms LLVM 14's parser lacks, from RFC 9669's encoding tables.
  CHECK(one("r1 s/= r2") == with_exit(bytes({0x3f, 0x21, 0x01, 0, 0, 0, 0, 0})));
  CHECK(one("w1 s%= 3") == with_exit(bytes({0x94, 0x01, 0x01, 0, 0x03, 0, 0, 0})));
  CHECK(one("r1 = (s16)r2") == with_exit(bytes({0xbf, 0x21, 0x10, 0, 0, 0, 0, 0})));
  CHECK(one("r1 = bswap64 r1") == with_exit(bytes({0xd7, 0x01, 0, 0, 0x40, 0, 0, 0})));
  CHECK(one("r1 = *(s16 *)(r2 - 2)") == with_exit(bytes({0x89, 0x21, 0xfe, 0xff, 0, 0, 0, 0})));
  CHECK(one("*(u16 *)(r10 - 2) = 7") == with_exit(bytes({0x6a, 0x0a, 0xfe, 0xff, 0x07, 0, 0, 0})));
  CHECK(one("r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)") == with_exit(bytes({0xdb, 0x1a, 0xf8, 0xff, 0x01, 0, 0, 0})));
  CHECK(one("w1 = xchg32_32(r10 - 8, w1)") == with_exit(bytes({0xc3, 0x1a, 0xf8, 0xff, 0xe1, 0, 0, 0})));
  CHECK(one("r0 = cmpxchg_64(r10 - 8, r0, r1)") == with_exit(bytes({0xdb, 0x1a, 0xf8, 0xff, 0xf1, 0, 0, 0})));
  CHECK(one("r0 = *(u16 *)skb[r1 + 4]") == with_exit(bytes({0x48, 0x10, 0, 0, 0x04, 0, 0, 0})));
  CHECK(one("callx r2") == with_exit(bytes({0x8d, 0x02, 0, 0, 0, 0, 0, 0})));
  CHECK(one("call kfunc 7") == with_exit(bytes({0x85, 0x20, 0, 0, 0x07, 0, 0, 0})));
  CHECK(one("gotol +0") == with_exit(bytes({0x06, 0, 0, 0, 0, 0, 0, 0})));
  CHECK(one("r1 = map_fd(3) ll") == with_exit(bytes({0x18, 0x11, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})));
  CHECK(one("r1 = map_value_idx(2) + 8 ll") ==
        with_exit(bytes({0x18, 0x61, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0})));
  CHECK(one("w0 = 0xffffffff") == with_exit(bytes({0xb4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})));
}

TEST_CASE("assembler resolves labels, skips comments and instruction indexes", "[asm]") {
  auto code = test::must_assemble(
      "; a comment\n"
      "   0: r0 = 0        # trailing comment\n"
      "loop: r0 += 1       // another\n"
      "   2: if r0 < 3 goto loop\n"
      "      call fn\n"
      "      exit\n"
      "fn:   exit\n");
  REQUIRE(code.size() == 6 * 8);
  CHECK(code[2 * 8 + 2] == 0xfe);  // off = -2
  CHECK(code[2 * 8 + 3] == 0xff);
  CHECK(code[3 * 8 + 4] == 1);     // call fn: imm = 5 - 3 - 1
}

TEST_CASE("assembler errors name the line and the problem", "[asm]") {
  CHECK(error_of("") == "no instructions");
  CHECK(error_of("r0 = 1\nfoo r1\nexit") == "line 2: unknown instruction at 'foo r1'\n  foo r1");
  CHECK(error_of("goto nowhere\nexit") == "line 1: unknown label 'nowhere'");
  CHECK(error_of("a: r0 = 0\na: exit") == "line 2: duplicate label 'a'\n  a: exit");
  CHECK_THAT(error_of("r0 += 0x100000000\nexit"), Catch::Matchers::Contains("immediate 4294967296 does not fit in 32 bits"));
  CHECK_THAT(error_of("r0 = *(u32 *)(r1 + 40000)\nexit"), Catch::Matchers::Contains("offset 40000 does not fit in 16 bits"));
  CHECK_THAT(error_of("r11 = 1\nexit"), Catch::Matchers::Contains("invalid register r11"));
  CHECK_THAT(error_of("r0 = *(u24 *)(r1 + 0)\nexit"), Catch::Matchers::Contains("unknown access size 'u24'"));
  CHECK_THAT(error_of("r0 = 1 2\nexit"), Catch::Matchers::Contains("unexpected text"));
  CHECK_THAT(error_of("r1 = -r2\nexit"), Catch::Matchers::Contains("negation is in place"));
  CHECK_THAT(error_of("w1 = 5 ll\nexit"), Catch::Matchers::Contains("lddw loads a 64-bit register"));
  CHECK_THAT(error_of("w1 = (s32)w2\nexit"), Catch::Matchers::Contains("no instruction for this sign-extension width"));
  CHECK_THAT(error_of("if r1 ~ r2 goto +1\nexit"), Catch::Matchers::Contains("expected a comparison"));
  CHECK_THAT(error_of("r1 = cmpxchg_64(r10 - 8, r0, r1)\nexit"), Catch::Matchers::Contains("cmpxchg compares with and writes r0"));
  CHECK_THAT(error_of("r1 = *(u32 *)skb[4]\nexit"), Catch::Matchers::Contains("legacy packet loads write r0"));
  std::string far = "goto end\n";
  for (int i = 0; i < 40000; ++i) far += "r0 = 0\n";
  far += "end: exit\n";
  CHECK_THAT(error_of(far), Catch::Matchers::Contains("too far for a 16-bit offset (use gotol)"));
}
