// A BPF ELF object read through libelf into plain, bounds-checked tables. Nothing here trusts the
// file: section ranges are checked against the file size, symbol and section indexes against
// their tables, and names against the string tables.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm::elf {

struct Section {
  uint32_t index = 0;
  std::string name;
  uint32_t type = 0;   // SHT_*
  uint64_t flags = 0;  // SHF_*
  uint64_t size = 0;   // also for SHT_NOBITS, which has no bytes
  uint32_t link = 0;
  uint32_t info = 0;
  std::span<const uint8_t> bytes;  // empty for SHT_NOBITS
};

struct Symbol {
  std::string name;
  uint64_t value = 0;
  uint64_t size = 0;
  uint8_t type = 0;  // STT_*
  uint8_t bind = 0;  // STB_*
  uint32_t shndx = 0;
};

struct Reloc {
  uint64_t offset = 0;  // in the target section
  uint32_t sym = 0;     // symbol index
  uint32_t type = 0;    // R_BPF_*
  int64_t addend = 0;   // RELA only
};

struct RelocSection {
  uint32_t index = 0;   // the SHT_REL/SHT_RELA section itself
  uint32_t target = 0;  // the section it applies to (sh_info)
  std::vector<Reloc> relocs;
};

class File {
 public:
  // `name` is used in messages. The bytes are copied and kept for the File's lifetime.
  static Result<File> parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::vector<Section>& sections() const { return sections_; }
  const std::vector<Symbol>& symbols() const { return symbols_; }
  const std::vector<RelocSection>& relocs() const { return relocs_; }
  const Section* section(uint32_t index) const { return index < sections_.size() ? &sections_[index] : nullptr; }
  const Section* section(const std::string& name) const;
  const std::string& name() const { return name_; }
  bool has_symtab() const { return has_symtab_; }
  // What was accepted though not as it should be (an object of old clang with no ELF machine).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The file's bytes, which sections' spans point into.
  std::shared_ptr<const std::vector<uint8_t>> storage() const { return bytes_; }

 private:
  std::string name_;
  std::shared_ptr<std::vector<uint8_t>> bytes_;
  std::vector<Section> sections_;
  std::vector<Symbol> symbols_;
  std::vector<RelocSection> relocs_;
  bool has_symtab_ = false;
  std::vector<std::string> warnings_;
};

// R_BPF_* relocation types (llvm's BPF ELF ABI).
inline constexpr uint32_t kRBpfNone = 0, kRBpf64_64 = 1, kRBpf64Abs64 = 2, kRBpf64Abs32 = 3, kRBpf64NoDyld32 = 4,
                          kRBpf64_32 = 10;

}  // namespace ebpfvm::elf
