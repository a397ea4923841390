// A decoded program: immutable after creation, cheap to copy, safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/asm.hpp"
#include "ebpfvm/error.hpp"

namespace ebpfvm {

namespace detail {
struct ProgramData;
}

class Program {
 public:
  // Raw bytecode, 8 bytes per slot, little-endian (as in an ELF section or BPF_PROG_LOAD).
  static Result<Program> from_bytecode(std::span<const uint8_t> bytecode);
  // Assembler text (see asm.hpp).
  static Result<Program> from_assembly(std::string_view text);

  size_t slot_count() const;                  // 8-byte slots; lddw counts twice
  std::span<const uint8_t> bytecode() const;  // the encoding, as given
  std::string disassemble(const DisasmOptions& options = {}) const;

  const detail::ProgramData& data() const { return *d_; }

 private:
  explicit Program(std::shared_ptr<const detail::ProgramData> d) : d_(std::move(d)) {}
  std::shared_ptr<const detail::ProgramData> d_;
};

}  // namespace ebpfvm
