#include "util/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ebpfvm::detail {
namespace {

Error file_error(Errc code, const std::string& path, const std::string& message) {
  Error e = make_error(code, message);
  e.where.file = path;
  return e;
}

std::string kind_of(mode_t m) {
  if (S_ISDIR(m)) return "is a directory";
  if (S_ISFIFO(m)) return "is a FIFO, not a regular file";
  if (S_ISCHR(m) || S_ISBLK(m)) return "is a device, not a regular file";
  if (S_ISSOCK(m)) return "is a socket, not a regular file";
  return "is not a regular file";
}

// read() until `want` bytes or the end; false with errno on an error.
bool read_all(int fd, uint8_t* out, size_t want, size_t& got) {
  got = 0;
  while (got < want) {
    const ssize_t n = ::read(fd, out + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return true;
}

// A stream (pipe, FIFO, character device) read to its end, up to the limit.
Result<std::vector<uint8_t>> read_stream(int fd, const std::string& path, uint64_t max_size) {
  // blocking again: a FIFO whose writer has not written yet is waited for, one with none is empty
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::vector<uint8_t> bytes;
  uint8_t chunk[65536];
  for (;;) {
    size_t got = 0;
    if (!read_all(fd, chunk, sizeof chunk, got)) return file_error(Errc::Io, path, std::string("read failed: ") + std::strerror(errno));
    if (bytes.size() + got > max_size)
      return file_error(Errc::Unsupported, path, "holds more than the " + std::to_string(max_size) + " bytes allowed");
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof chunk) return bytes;
  }
}

}  // namespace

Result<std::vector<uint8_t>> read_regular_file(const std::string& path, const FileLimits& limits) {
  if (limits.streams && path == "-") return read_stream(0, "<stdin>", limits.max_size);
  // O_NONBLOCK: opening a FIFO that has no writer returns at once instead of waiting for one
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return file_error(Errc::Io, path, std::string("cannot open: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return file_error(Errc::Io, path, std::string("cannot stat: ") + std::strerror(errno));
  if (limits.streams && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode))) return read_stream(fd, path, limits.max_size);
  if (!S_ISREG(st.st_mode)) return file_error(Errc::Io, path, kind_of(st.st_mode));
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > limits.max_size)
    return file_error(Errc::Unsupported, path,
                      "is " + std::to_string(size) + " bytes, more than the " + std::to_string(limits.max_size) + " allowed");
  std::vector<uint8_t> bytes(static_cast<size_t>(std::max<uint64_t>(size, limits.magic.size())));
  size_t got = 0;
  // the magic first: a capture or an archive given by mistake is refused before it is read
  if (!limits.magic.empty()) {
    if (!read_all(fd, bytes.data(), limits.magic.size(), got)) return file_error(Errc::Io, path, std::string("read failed: ") + std::strerror(errno));
    if (got < limits.magic.size() || !std::equal(limits.magic.begin(), limits.magic.end(), bytes.begin()))
      return file_error(Errc::MalformedObject, path, limits.magic_error);
  }
  size_t rest = 0;
  if (!read_all(fd, bytes.data() + got, bytes.size() - got, rest)) return file_error(Errc::Io, path, std::string("read failed: ") + std::strerror(errno));
  bytes.resize(got + rest);  // the file may have shrunk since fstat
  return bytes;
}

}  // namespace ebpfvm::detail
