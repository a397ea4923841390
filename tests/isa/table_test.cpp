// The ISA table against the opcode list of RFC 9669's appendix, written out independently here.
#include <catch2/catch.hpp>

#include <set>

#include "isa/isa.hpp"

using namespace ebpfvm;

TEST_CASE("the table holds exactly the opcodes of RFC 9669 plus legacy packet loads", "[isa]") {
  const std::set<int> rfc = {
      // ALU64
      0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77, 0x7f, 0x87,
      0x97, 0x9f, 0xa7, 0xaf, 0xb7, 0xbf, 0xc7, 0xcf, 0xd7,
      // ALU
      0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74, 0x7c, 0x84,
      0x94, 0x9c, 0xa4, 0xac, 0xb4, 0xbc, 0xc4, 0xcc, 0xd4, 0xdc,
      // JMP
      0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x55, 0x5d, 0x65, 0x6d, 0x75, 0x7d, 0x85, 0x8d,
      0x95, 0xa5, 0xad, 0xb5, 0xbd, 0xc5, 0xcd, 0xd5, 0xdd,
      // JMP32
      0x06, 0x16, 0x1e, 0x26, 0x2e, 0x36, 0x3e, 0x46, 0x4e, 0x56, 0x5e, 0x66, 0x6e, 0x76, 0x7e, 0xa6, 0xae,
      0xb6, 0xbe, 0xc6, 0xce, 0xd6, 0xde,
      // LD, LDX, ST, STX
      0x18, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6a, 0x72,
      0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb};
  std::set<int> table;
  for (const auto& row : isa::op_table()) table.insert(row.opcode);
  CHECK(table == rfc);
  for (int op = 0; op < 256; ++op) CHECK(isa::rows_for_opcode(static_cast<uint8_t>(op)).empty() == !rfc.count(op));
}

TEST_CASE("rows sharing an opcode are told apart by one field with distinct values", "[isa]") {
  for (int op = 0; op < 256; ++op) {
    auto rows = isa::rows_for_opcode(static_cast<uint8_t>(op));
    if (rows.size() < 2) continue;
    std::set<int32_t> values;
    for (const auto* r : rows) {
      INFO(r->name);
      CHECK(r->discr == rows.front()->discr);
      CHECK(r->discr != isa::Field::None);
      CHECK(values.insert(r->dval).second);
    }
  }
}

TEST_CASE("instruction counts per class match the RFC", "[isa]") {
  int atomics = 0, lddw = 0, v4 = 0;
  for (const auto& row : isa::op_table()) {
    atomics += row.kind == isa::Kind::Atomic;
    lddw += row.kind == isa::Kind::Lddw;
    v4 += row.version == 4;
  }
  CHECK(atomics == 20);  // add/or/and/xor with and without fetch, xchg, cmpxchg; 32 and 64 bit
  CHECK(lddw == 7);      // src 0..6
  // v4: sdiv/smod (8), movsx (5), bswap (3), memsx loads (3), gotol (1)
  CHECK(v4 == 20);
}

TEST_CASE("jump comparisons invert and mirror within the table, and targets go where they fit", "[isa]") {
  using namespace ebpfvm::isa;
  for (const OpInfo& row : op_table()) {
    if (row.kind != Kind::Jcond) continue;
    const uint8_t op = op_code(row.opcode);
    INFO(row.name);
    if (op == 0x40) {
      CHECK(inverted_jump(op) == 0);  // & has no inverse
    } else {
      CHECK(inverted_jump(inverted_jump(op)) == op);
      CHECK(inverted_jump(op) != op);
      CHECK_FALSE(rows_for_opcode(static_cast<uint8_t>((row.opcode & 0x0f) | inverted_jump(op))).empty());
    }
    CHECK(mirrored_jump(mirrored_jump(op)) == op);
    CHECK_FALSE(rows_for_opcode(static_cast<uint8_t>((row.opcode & 0x0f) | mirrored_jump(op))).empty());
  }
  CHECK(inverted_jump(0x20) == 0xb0);  // >  is not <=
  CHECK(mirrored_jump(0x20) == 0xa0);  // a > b is b < a
  CHECK(mirrored_jump(0x70) == 0xd0);  // a s>= b is b s<= a

  Insn jeq{Op::JEQ_K, 0x15, 1, 0, 0, 0};
  CHECK(set_jump_target(jeq, 10, 20));
  CHECK(jeq.off == 9);
  CHECK(jump_target(jeq, 10) == 20);
  CHECK(set_jump_target(jeq, 40000, 0) == false);  // -40001 does not fit in off
  Insn gotol{Op::JA32, 0x06, 0, 0, 0, 0};
  CHECK(set_jump_target(gotol, 40000, 0));  // imm holds it
  CHECK(jump_target(gotol, 40000) == 0);
  CHECK(has_target(gotol));
  CHECK_FALSE(has_target(Insn{Op::EXIT, 0x95, 0, 0, 0, 0}));
}
