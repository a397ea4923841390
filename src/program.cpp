#include "program_data.hpp"

namespace ebpfvm {

Result<Program> Program::from_bytecode(std::span<const uint8_t> bytecode) {
  auto decoded = isa::decode(bytecode);
  if (!decoded) return decoded.error();
  auto d = std::make_shared<detail::ProgramData>();
  d->bytecode.assign(bytecode.begin(), bytecode.end());
  d->decoded = std::move(*decoded);
  return Program(std::move(d));
}

Result<Program> Program::from_assembly(std::string_view text) {
  auto bytes = assemble(text);
  if (!bytes) return bytes.error();
  return from_bytecode(*bytes);
}

size_t Program::slot_count() const { return d_->decoded.insns.size(); }

std::span<const uint8_t> Program::bytecode() const { return d_->bytecode; }

std::string Program::disassemble(const DisasmOptions& options) const {
  auto text = ebpfvm::disassemble(d_->bytecode, options);
  return text ? *text : text.error().to_string();  // cannot fail: the bytecode decoded at creation
}

}  // namespace ebpfvm
