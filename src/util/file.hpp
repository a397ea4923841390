// Reading a file the user named: regular files (a directory, a FIFO with no writer or a device
// would fail late, hang or never end), or, where the caller allows streams, pipes and character
// devices read up to the size limit; no larger than the caller allows; and, when the caller knows
// what the file must start with, refused on its first bytes before the rest is read.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm::detail {

struct FileLimits {
  uint64_t max_size = UINT64_MAX;
  std::span<const uint8_t> magic;  // the first bytes the file must have, if any
  const char* magic_error = "";    // the message when it does not
  bool streams = false;            // pipes, FIFOs and character devices too, and "-" for standard input
};

// Errc::Io with "cannot open: ..."/"is a directory"/"not a regular file", Errc::Unsupported when
// too large, Errc::MalformedObject when the magic bytes differ; where.file is the path.
Result<std::vector<uint8_t>> read_regular_file(const std::string& path, const FileLimits& limits = {});

}  // namespace ebpfvm::detail
