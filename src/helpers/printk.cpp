#include "helpers/printk.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <cstdio>
#include <cstring>

#include "runtime/run_state.hpp"

namespace ebpfvm::detail {
namespace {

// Where process_vm_readv fails (container seccomp profiles refuse it; qemu-user passes its
// addresses on untranslated), the string from byte `got` on, one byte at a time through a pipe:
// write() says EFAULT for a bad address instead of faulting, and a byte at a time reads nothing
// past the terminator. Returns the bytes now in buf.
size_t read_through_pipe(uint64_t addr, size_t got, char* buf, size_t size) {
  thread_local struct Pipe {
    int fd[2] = {-1, -1};
    Pipe() {
      if (pipe2(fd, O_CLOEXEC) != 0) fd[0] = fd[1] = -1;
    }
    ~Pipe() {
      if (fd[0] >= 0) close(fd[0]), close(fd[1]);
    }
  } pipe;
  if (pipe.fd[0] < 0) return got;
  for (; got < size; ++got) {
    if (write(pipe.fd[1], reinterpret_cast<const void*>(addr + got), 1) != 1 || read(pipe.fd[0], buf + got, 1) != 1) break;
    if (buf[got] == '\0') return got + 1;
  }
  return got;
}

// %s reads program memory: in checked mode only where the run may read, at most 1 KiB.
std::string read_string(uint64_t addr) {
  const RunState* r = current_run();
  std::string s;
  if (!addr) return "(invalid)";
  if (r && r->checked) {
    for (uint64_t i = 0; i < 1024; ++i) {
      if (!r->may_access(addr + i, 1, false)) return s.empty() ? "(invalid)" : s;
      char c = *reinterpret_cast<const char*>(addr + i);
      if (!c) break;
      s += c;
    }
    return s;
  }
  // Verified programs may pass any number for %s (the kernel reads it with a fault-tolerant copy):
  // read through the kernel, which reports a bad address instead of faulting.
  char buf[1024];
  size_t got = 0;
  while (got < sizeof buf) {
    const uint64_t page_left = 4096 - ((addr + got) & 4095);
    iovec local{buf + got, std::min<size_t>(sizeof buf - got, page_left)};
    iovec remote{reinterpret_cast<void*>(addr + got), local.iov_len};
    const ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (n <= 0) {
      got = read_through_pipe(addr, got, buf, sizeof buf);
      break;
    }
    const bool end = std::memchr(buf + got, 0, static_cast<size_t>(n)) != nullptr;
    got += static_cast<size_t>(n);
    if (end) break;
  }
  if (got == 0) return "(invalid)";
  s.assign(buf, strnlen(buf, got));
  return s;
}

}  // namespace

std::optional<std::string> format_printk(const char* fmt, uint64_t fmt_size, const uint64_t* args, uint64_t nargs) {
  if (!fmt || fmt_size == 0 || fmt[fmt_size - 1] != '\0') return std::nullopt;
  std::string out;
  uint64_t used = 0;
  for (const char* p = fmt; *p; ++p) {
    if (*p != '%') {
      out += *p;
      continue;
    }
    if (p[1] == '%') {
      out += '%';
      ++p;
      continue;
    }
    std::string spec = "%";
    ++p;
    while (*p && std::strchr("-0+ ", *p)) spec += *p++;
    while (*p >= '0' && *p <= '9' && spec.size() < 8) spec += *p++;
    int longs = 0;
    bool half = false;
    while (*p == 'l' || *p == 'h' || *p == 'z') {
      if (*p == 'h') half = true;
      else longs = *p == 'z' ? 2 : longs + 1;
      ++p;
    }
    if (longs > 2 || !*p) return std::nullopt;
    if (used >= nargs) return std::nullopt;
    const uint64_t a = args[used++];
    char buf[1100];
    switch (*p) {
      case 'd': case 'i': {
        int64_t v = longs ? static_cast<int64_t>(a) : half ? static_cast<int16_t>(a) : static_cast<int32_t>(a);
        std::snprintf(buf, sizeof buf, (spec + "lld").c_str(), static_cast<long long>(v));
        break;
      }
      case 'u': case 'x': case 'X': {
        uint64_t v = longs ? a : half ? static_cast<uint16_t>(a) : static_cast<uint32_t>(a);
        std::snprintf(buf, sizeof buf, (spec + "ll" + *p).c_str(), static_cast<unsigned long long>(v));
        break;
      }
      case 'c':
        std::snprintf(buf, sizeof buf, (spec + "c").c_str(), static_cast<int>(static_cast<char>(a)));
        break;
      case 'p':
        std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(a));
        break;
      case 's':
        std::snprintf(buf, sizeof buf, (spec + "s").c_str(), read_string(a).c_str());
        break;
      default:
        return std::nullopt;
    }
    out += buf;
  }
  return out;
}

}  // namespace ebpfvm::detail
