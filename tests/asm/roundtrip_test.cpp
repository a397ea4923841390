// The disassembler's output assembles back to the same bytes, for every test program.
#include <catch2/catch.hpp>

#include "isa/isa.hpp"
#include "support.hpp"

using namespace ebpfvm;

TEST_CASE("disassembly round-trips through the assembler for every case", "[asm]") {
  for (const auto& c : test::load_cases()) {
    INFO(c.where());
    auto bytes = test::must_assemble(c.source);
    auto text = disassemble(bytes);
    REQUIRE(text.ok());
    auto again = assemble(*text);
    REQUIRE(again.ok());
    CHECK(*again == bytes);
    auto plain = disassemble(bytes, {.show_index = false});
    REQUIRE(plain.ok());
    auto again2 = assemble(*plain);
    REQUIRE(again2.ok());
    CHECK(*again2 == bytes);
  }
}

TEST_CASE("every instruction of the ISA round-trips", "[asm]") {
  // One instance of every table row, with registers and fields that exercise the printer.
  for (const auto& row : isa::op_table()) {
    INFO(row.name);
    isa::Insn in{row.op, row.opcode, 3, 4, -12, 77};
    if (row.zero & isa::kZeroDst) in.dst = 0;
    if (row.zero & isa::kZeroSrc) in.src = 0;
    if (row.zero & isa::kZeroOff) in.off = 0;
    if (row.zero & isa::kZeroImm) in.imm = 0;
    if (row.discr == isa::Field::Src) in.src = static_cast<uint8_t>(row.dval);
    if (row.discr == isa::Field::Off) in.off = static_cast<int16_t>(row.dval);
    if (row.discr == isa::Field::Imm) in.imm = row.dval;
    if (row.kind == isa::Kind::Atomic && row.dval == isa::kAtomicCmpxchg) in.src = 4;
    std::vector<isa::Insn> prog{in};
    // Only plain immediates and map values have a meaningful second imm; it is 0 for the rest.
    bool hi_imm = in.src == 0 || in.src == 2 || in.src == 6;
    if (row.kind == isa::Kind::Lddw) prog.push_back({isa::Op::LDDW_HI, 0, 0, 0, 0, hi_imm ? 0x55 : 0});
    if (row.kind == isa::Kind::Jcond || row.kind == isa::Kind::Ja) {
      prog[0].off = row.op == isa::Op::JA32 ? 0 : 1;
      if (row.op == isa::Op::JA32) prog[0].imm = 1;
      prog.push_back({isa::Op::MOV64_K, 0xb7, 0, 0, 0, 1});
    }
    if (row.kind == isa::Kind::CallLocal || row.op == isa::Op::LDDW_CODE) prog[0].imm = 1 + (row.kind == isa::Kind::Lddw);
    if (row.kind == isa::Kind::CallLocal) prog.push_back({isa::Op::EXIT, 0x95, 0, 0, 0, 0});
    prog.push_back({isa::Op::EXIT, 0x95, 0, 0, 0, 0});
    if (row.kind == isa::Kind::CallLocal || row.op == isa::Op::LDDW_CODE)
      prog.push_back({isa::Op::EXIT, 0x95, 0, 0, 0, 0});
    auto bytes = isa::encode(prog);
    auto decoded = isa::decode(bytes);
    INFO((decoded ? "" : decoded.error().to_string()));
    REQUIRE(decoded.ok());
    CHECK(decoded->insns[0].op == row.op);
    auto text = disassemble(bytes);
    REQUIRE(text.ok());
    INFO(*text);
    auto again = assemble(*text);
    INFO((again ? "" : again.error().to_string()));
    REQUIRE(again.ok());
    CHECK(*again == bytes);
  }
}
