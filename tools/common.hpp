// Small pieces the command-line tools share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace ebpfvm::tools {

Result<std::vector<uint8_t>> read_file(const std::string& path);

// A file the user asked a tool to write. A regular file (or a name not taken yet) is written to
// PATH.tmp.<pid> and renamed into place by commit(), so a failed run leaves what was there; "-"
// (standard output), a symlink and what is not a regular file (a pipe, /dev/stdout) are written
// directly: a link is written through, never replaced by a file. Open outputs before the work, so
// that a bad path fails first; a temporary that was not committed is removed with the object.
class OutputFile {
 public:
  static Result<OutputFile> open(const std::string& path);
  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  ~OutputFile();

  FILE* file() const { return f_; }
  const std::string& path() const { return path_; }
  // Every byte written, closed, in place; an error (a full disk, a rename) names the user's path.
  Result<void> commit();

 private:
  OutputFile() = default;
  std::string path_, tmp_;  // tmp_ empty: written directly
  FILE* f_ = nullptr;
};

// PATH in one go, through an OutputFile.
Result<void> write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

// Refuses when an output is the same file as an input (device and inode, whatever the names):
// writing it would destroy the input. Each entry is {"--flag", path}.
Result<void> refuse_overwriting_inputs(const std::vector<std::pair<std::string, std::string>>& inputs,
                                       const std::vector<std::pair<std::string, std::string>>& outputs);
// "b7 00 00 00 2a 00 00 00" (any whitespace, optional 0x prefixes) -> bytes.
Result<std::vector<uint8_t>> parse_hex(std::string_view text);
std::string to_hex(std::span<const uint8_t> bytes);
// Assembler text when the name ends in .s or .asm, raw bytecode otherwise.
Result<Program> load_program(const std::string& path);

}  // namespace ebpfvm::tools
