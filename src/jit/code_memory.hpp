// Memory for one program's native code. It is mapped writable, filled, then sealed read+execute:
// never writable and executable at once. It is placed within reach of a rel32 call from the
// host's own code when the address space allows, so helper calls can be direct calls.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ebpfvm/error.hpp"

namespace ebpfvm::detail {

class CodeMemory {
 public:
  CodeMemory() = default;
  // At least `size` bytes, preferably within +-1 GiB of `near` (anywhere when it is nullptr: the
  // AArch64 backend calls host code through registers and needs no reach).
  static Result<CodeMemory> map(size_t size, const void* near);
  ~CodeMemory();
  CodeMemory(CodeMemory&& o) noexcept : p_(o.p_), len_(o.len_) { o.p_ = nullptr; }
  CodeMemory& operator=(CodeMemory&& o) noexcept;
  CodeMemory(const CodeMemory&) = delete;
  CodeMemory& operator=(const CodeMemory&) = delete;

  uint8_t* data() const { return p_; }
  size_t size() const { return len_; }
  // Read+execute from now on; read-only when not `executable` (code for another CPU, to look at).
  Result<void> seal(bool executable = true);

 private:
  uint8_t* p_ = nullptr;
  size_t len_ = 0;
};

}  // namespace ebpfvm::detail
