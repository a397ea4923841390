// Small pieces the command-line tools share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace ebpfvm::tools {

Result<std::vector<uint8_t>> read_file(const std::string& path);
// Writes to PATH.tmp.<pid> and renames, so a failed write never leaves a half-written PATH.
Result<void> write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);
// "b7 00 00 00 2a 00 00 00" (any whitespace, optional 0x prefixes) -> bytes.
Result<std::vector<uint8_t>> parse_hex(std::string_view text);
std::string to_hex(std::span<const uint8_t> bytes);
// Assembler text when the name ends in .s or .asm, raw bytecode otherwise.
Result<Program> load_program(const std::string& path);

}  // namespace ebpfvm::tools
