#include "jit/code_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace ebpfvm::detail {
namespace {

constexpr uint64_t kReach = 1ull << 30;  // well inside rel32's +-2 GiB, whatever the code's size

void* try_map(uintptr_t at, size_t len) {
  void* p = mmap(reinterpret_cast<void*>(at), len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  // Kernels before 4.17 (and some sandboxes) take MAP_FIXED_NOREPLACE as a mere hint and map
  // elsewhere: that memory may be out of reach.
  if (p != reinterpret_cast<void*>(at)) {
    munmap(p, len);
    return nullptr;
  }
  return p;
}

// Free address space within kReach of `near`: try fixed addresses below and above it (below first:
// a PIE's heap grows above its image).
void* map_near(uintptr_t near, size_t len) {
  constexpr uintptr_t kStep = 64ull << 20;
  const uintptr_t base = near & ~(kStep - 1);
  for (uintptr_t d = kStep; d < kReach; d += kStep) {
    if (base > d)
      if (void* p = try_map(base - d, len)) return p;
    if (void* p = try_map(base + d, len)) return p;
  }
  return nullptr;
}

}  // namespace

Result<CodeMemory> CodeMemory::map(size_t size, const void* near) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t len = (size + page - 1) / page * page;
  void* p = near ? map_near(reinterpret_cast<uintptr_t>(near), len) : nullptr;  // no reach wanted: anywhere
  if (!p) {
    p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return make_error(Errc::Unsupported, std::string("JIT: cannot map code memory: ") + std::strerror(errno));
  }
  CodeMemory m;
  m.p_ = static_cast<uint8_t*>(p);
  m.len_ = len;
  return m;
}

CodeMemory::~CodeMemory() {
  if (p_) munmap(p_, len_);
}

CodeMemory& CodeMemory::operator=(CodeMemory&& o) noexcept {
  if (this != &o) {
    if (p_) munmap(p_, len_);
    p_ = std::exchange(o.p_, nullptr);
    len_ = o.len_;
  }
  return *this;
}

Result<void> CodeMemory::seal(bool executable) {
  if (mprotect(p_, len_, executable ? PROT_READ | PROT_EXEC : PROT_READ) != 0)
    return make_error(Errc::Unsupported, std::string("JIT: cannot make code executable: ") + std::strerror(errno));
  return {};
}

}  // namespace ebpfvm::detail
