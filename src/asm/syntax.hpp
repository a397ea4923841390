// Text form of one decoded instruction, shared by the disassembler, ebpfvm-disasm and
// (later) verifier diagnostics.
#pragma once

#include <span>
#include <string>

#include "isa/isa.hpp"

namespace ebpfvm::asmtext {

// The instruction at slot pc (must not be an LDDW_HI slot).
std::string format_insn(std::span<const isa::Insn> insns, size_t pc);

// "LE16" -> "le16": the mnemonic of End and MovSx rows is their lowercased table name.
std::string lower_name(const isa::OpInfo& row);

// lddw pseudo-source forms: "map_fd", "map_value_fd", "var", "code", "map_idx", "map_value_idx";
// empty for src 0 (a plain immediate).
std::string_view lddw_pseudo_name(uint8_t src);

}  // namespace ebpfvm::asmtext
