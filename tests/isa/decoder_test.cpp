// Every reason the decoder rejects a program, with its message and instruction index.
#include <catch2/catch.hpp>

#include <random>

#include "isa/isa.hpp"

using namespace ebpfvm;
using isa::RawInsn;

namespace {

std::vector<uint8_t> raw(std::initializer_list<RawInsn> insns) {
  std::vector<uint8_t> out(insns.size() * 8);
  size_t i = 0;
  for (const RawInsn& r : insns) isa::write_raw(r, &out[8 * i++]);
  return out;
}

constexpr RawInsn kExit{0x95, 0, 0, 0, 0};
constexpr RawInsn kMov0{0xb7, 0, 0, 0, 0};

std::string reject(const std::vector<uint8_t>& bytes) {
  auto r = isa::decode(bytes);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::MalformedProgram);
  return r.error().to_string();
}

}  // namespace

TEST_CASE("decoder accepts a well-formed program and records functions", "[isa][decoder]") {
  // main: call f; exit   f: r0 = 0; exit
  auto r = isa::decode(raw({{0x85, 0, 1, 0, 1}, kExit, kMov0, kExit}));
  REQUIRE(r.ok());
  REQUIRE(r->functions.size() == 2);
  CHECK(r->functions[0].entry == 0);
  CHECK(r->functions[0].end == 2);
  CHECK(r->functions[1].entry == 2);
  CHECK(r->functions[1].end == 4);
}

TEST_CASE("decoder rejects malformed programs with the reason", "[isa][decoder]") {
  CHECK(reject({}) == "empty program");
  CHECK(reject(std::vector<uint8_t>(13)) == "program size 13 is not a multiple of 8 bytes");
  CHECK(reject(raw({kMov0, {0x00, 0, 0, 0, 0}, kExit})) == "insn 1: unknown opcode 0x00");
  CHECK(reject(raw({{0x38, 0, 0, 0, 0}, kExit})) == "insn 0: unknown opcode 0x38");  // LD_ABS DW
  CHECK(reject(raw({{0x3f, 0, 1, 2, 0}, kExit})) == "insn 0: invalid off 2 for opcode 0x3f");
  CHECK(reject(raw({{0xd4, 0, 0, 0, 8}, kExit})) == "insn 0: invalid imm 8 for opcode 0xd4");
  CHECK(reject(raw({{0xbc, 0, 1, 32, 0}, kExit})) == "insn 0: invalid off 32 for opcode 0xbc");
  CHECK(reject(raw({{0x85, 0, 3, 0, 1}, kExit})) == "insn 0: invalid src 3 for opcode 0x85");
  CHECK(reject(raw({{0x18, 0, 7, 0, 1}, {0, 0, 0, 0, 0}, kExit})) == "insn 0: invalid src 7 for opcode 0x18");
  CHECK(reject(raw({{0xdb, 1, 2, 0, 0x02}, kExit})) == "insn 0: invalid imm 2 for opcode 0xdb");
}

TEST_CASE("decoder rejects non-zero reserved fields", "[isa][decoder]") {
  CHECK(reject(raw({{0x95, 1, 0, 0, 0}})) == "insn 0: reserved field dst must be 0, is 1 (opcode 0x95)");
  CHECK(reject(raw({{0x07, 0, 3, 0, 1}, kExit})) == "insn 0: reserved field src must be 0, is 3 (opcode 0x07)");
  CHECK(reject(raw({{0x0f, 0, 1, 0, 9}, kExit})) == "insn 0: reserved field imm must be 0, is 9 (opcode 0x0f)");
  CHECK(reject(raw({{0x07, 0, 0, 4, 1}, kExit})) == "insn 0: reserved field off must be 0, is 4 (opcode 0x07)");
  CHECK(reject(raw({{0x05, 0, 0, 0, 5}, kExit})) == "insn 0: reserved field imm must be 0, is 5 (opcode 0x05)");
  CHECK(reject(raw({{0x06, 0, 0, 1, 0}, kExit})) == "insn 0: reserved field off must be 0, is 1 (opcode 0x06)");
  CHECK(reject(raw({{0x61, 0, 1, 0, 1}, kExit})) == "insn 0: reserved field imm must be 0, is 1 (opcode 0x61)");
  CHECK(reject(raw({{0x62, 1, 2, 0, 1}, kExit})) == "insn 0: reserved field src must be 0, is 2 (opcode 0x62)");
  CHECK(reject(raw({{0x20, 1, 0, 0, 1}, kExit})) == "insn 0: reserved field dst must be 0, is 1 (opcode 0x20)");
  CHECK(reject(raw({{0x8d, 1, 0, 0, 5}, kExit})) == "insn 0: reserved field imm must be 0, is 5 (opcode 0x8d)");
  CHECK(reject(raw({{0x87, 0, 0, 0, 1}, kExit})) == "insn 0: reserved field imm must be 0, is 1 (opcode 0x87)");
}

TEST_CASE("decoder rejects bad register numbers", "[isa][decoder]") {
  CHECK(reject(raw({{0xb7, 11, 0, 0, 0}, kExit})) == "insn 0: invalid dst register r11");
  CHECK(reject(raw({{0xbf, 0, 12, 0, 0}, kExit})) == "insn 0: invalid src register r12");
  CHECK(reject(raw({{0x61, 15, 1, 0, 0}, kExit})) == "insn 0: invalid dst register r15");
}

TEST_CASE("decoder checks lddw pairs", "[isa][decoder]") {
  CHECK(reject(raw({kMov0, {0x18, 0, 0, 0, 1}})) == "insn 1: lddw is missing its second half");
  CHECK(reject(raw({{0x18, 0, 0, 0, 1}, {0x07, 0, 0, 0, 0}, kExit})) ==
        "insn 1: second half of lddw must have opcode, dst, src and off 0 (opcode 0x07)");
  CHECK(reject(raw({{0x18, 0, 0, 0, 1}, {0x00, 1, 0, 0, 0}, kExit})) ==
        "insn 1: second half of lddw must have opcode, dst, src and off 0 (opcode 0x00)");
  // A map's lddw (map_fd, map_idx) has 0 in its second half's imm, as the kernel requires.
  for (uint8_t src : {1, 5})
    CHECK(reject(raw({{0x18, 1, src, 0, 0}, {0x00, 0, 0, 0, 7}, kExit})) == "insn 1: second half of an lddw of a map must have imm 0 (7)");
  // Every pseudo source decodes.
  for (uint8_t src = 0; src <= 6; ++src) {
    int32_t imm = src == 4 ? 2 : 3;  // a code address must start a function: the last exit
    auto r = isa::decode(raw({{0x18, 1, src, 0, imm}, {0, 0, 0, 0, 0}, kExit, kExit}));
    INFO(int(src));
    CHECK(r.ok());
  }
}

TEST_CASE("decoder checks jump and call targets", "[isa][decoder]") {
  CHECK(reject(raw({{0x05, 0, 0, 4, 0}, kExit})) == "insn 0: jump out of range from insn 0 to 5");
  CHECK(reject(raw({kMov0, {0x15, 0, 0, -3, 0}, kExit})) == "insn 1: jump out of range from insn 1 to -1");
  CHECK(reject(raw({kMov0, {0x06, 0, 0, 0, 7}, kExit})) == "insn 1: jump out of range from insn 1 to 9");
  CHECK(reject(raw({{0x05, 0, 0, 1, 0}, {0x18, 0, 0, 0, 1}, {0, 0, 0, 0, 0}, kExit})) ==
        "insn 0: jump into the middle of lddw at insn 1");
  CHECK(reject(raw({{0x85, 0, 1, 0, 8}, kExit})) == "insn 0: call target 9 is outside the program (0..1)");
  CHECK(reject(raw({{0x85, 0, 1, 0, -2}, kExit})) == "insn 0: call target -1 is outside the program (0..1)");
  CHECK(reject(raw({{0x85, 0, 1, 0, 2}, kExit, {0x18, 0, 0, 0, 1}, {0, 0, 0, 0, 0}, kExit})) ==
        "insn 0: call target 3 is the second half of an lddw");
  // A jump may not leave its function: main jumps into f.
  CHECK(reject(raw({{0x85, 0, 1, 0, 2}, {0x05, 0, 0, 1, 0}, kExit, kMov0, kExit})) ==
        "insn 1: jump out of range from insn 1 to 3");
}

TEST_CASE("decoder requires every function to end in exit or goto", "[isa][decoder]") {
  CHECK(reject(raw({kMov0})) == "insn 0: last instruction is not exit or goto");
  CHECK(reject(raw({kMov0, {0x15, 0, 0, -2, 0}})) == "insn 1: last instruction is not exit or goto");
  CHECK(reject(raw({{0x85, 0, 1, 0, 1}, kMov0, kMov0, kExit})) ==
        "insn 1: function at insn 0 does not end in exit or goto");
  CHECK(reject(raw({{0x85, 0, 1, 0, 1}, kExit, kMov0, kMov0})) ==
        "insn 3: function at insn 2 does not end in exit or goto");
  CHECK(isa::decode(raw({kMov0, {0x05, 0, 0, -2, 0}})).ok());  // ends in a goto
}

TEST_CASE("decoder limits the program size", "[isa][decoder]") {
  std::vector<uint8_t> big((isa::kMaxInsns + 1) * 8);
  CHECK(reject(big) == "program has 1000001 instructions, more than the limit of 1000000");
}

TEST_CASE("decoder never reads out of bounds on random input", "[isa][decoder]") {
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> bytes(rng() % 64);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    // Half end in exit so that the later checks (targets, functions) are reached.
    if (bytes.size() >= 8 && rng() % 2) isa::write_raw({0x95, 0, 0, 0, 0}, &bytes[bytes.size() / 8 * 8 - 8]);
    // Bias toward valid opcodes so that later checks are reached too.
    auto rows = isa::op_table();
    for (size_t k = 0; k + 16 <= bytes.size(); k += 8) {
      if (rng() % 2) bytes[k] = rows[rng() % rows.size()].opcode;
      if (rng() % 2) bytes[k + 1] &= 0x77;
      if (rng() % 2) bytes[k + 2] = static_cast<uint8_t>(rng() % 4), bytes[k + 3] = 0;
    }
    auto r = isa::decode(bytes);
    accepted += r.ok();
    if (!r.ok()) CHECK_FALSE(r.error().message.empty());
  }
  CHECK(accepted > 0);
}
