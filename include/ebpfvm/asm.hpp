// Assembler and disassembler for the syntax of llvm-objdump's BPF output:
//   r0 = *(u32 *)(r1 + 4)      if r2 > r3 goto +5      call 1      r1 = 0x1234 ll
//   lock *(u64 *)(r10 - 8) += r1      w0 = atomic_fetch_add((u32 *)(r1 + 0), w0)
// Labels ("loop:") may stand for jump and call targets; "; # //" start comments; a leading
// "12:" instruction index, as the disassembler prints, is ignored.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm {

// Text -> bytecode (8 bytes per slot). Errors carry the line number in where.line.
Result<std::vector<uint8_t>> assemble(std::string_view text);

struct DisasmOptions {
  bool show_index = true;  // "   3: " before each instruction
  bool show_bytes = false; // the 8 encoded bytes, as llvm-objdump prints them
};

// Bytecode -> text, one instruction per line. Fails on bytecode that does not decode.
Result<std::string> disassemble(std::span<const uint8_t> bytecode, const DisasmOptions& options = {});

}  // namespace ebpfvm
