#include "common.hpp"

#include "util/file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

namespace ebpfvm::tools {

Result<std::vector<uint8_t>> read_file(const std::string& path) {
  // pipes and "-" too: text and JSON are often made on the fly (`<(...)`)
  auto bytes = detail::read_regular_file(path, {256ull << 20, {}, "", true});
  if (!bytes) return make_error(bytes.error().code, path + ": " + bytes.error().message);
  return bytes;
}

Result<OutputFile> OutputFile::open(const std::string& path) {
  OutputFile out;
  out.path_ = path;
  if (path == "-") {
    out.f_ = stdout;
    return out;
  }
  struct stat st {};
  const bool direct = ::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);  // a link, a pipe, a device
  if (direct && S_ISDIR(st.st_mode)) return make_error(Errc::Io, path + ": is a directory");
  if (!direct) out.tmp_ = path + ".tmp." + std::to_string(getpid());
  out.f_ = std::fopen(direct ? path.c_str() : out.tmp_.c_str(), "wb");
  if (!out.f_) {
    std::string why = std::strerror(errno);
    out.tmp_.clear();
    return make_error(Errc::Io, path + ": cannot create: " + why);
  }
  return out;
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), f_(std::exchange(o.f_, nullptr)) {
  o.tmp_.clear();
}

OutputFile::~OutputFile() {
  if (f_ && f_ != stdout) std::fclose(f_);
  if (!tmp_.empty()) std::remove(tmp_.c_str());
}

Result<void> OutputFile::commit() {
  if (!f_) return make_error(Errc::Io, path_ + ": already written");
  errno = 0;
  bool ok = std::fflush(f_) == 0 && std::ferror(f_) == 0;
  std::string why = errno ? std::strerror(errno) : "write failed";
  if (f_ != stdout && std::fclose(f_) != 0 && ok) ok = false, why = std::strerror(errno);
  f_ = nullptr;
  if (ok && !tmp_.empty() && std::rename(tmp_.c_str(), path_.c_str()) != 0) ok = false, why = std::strerror(errno);
  if (!ok) return make_error(Errc::Io, path_ + ": cannot write: " + why);  // the destructor removes the temporary
  tmp_.clear();
  return {};
}

Result<void> write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  auto out = OutputFile::open(path);
  if (!out) return out.error();
  std::fwrite(bytes.data(), 1, bytes.size(), out->file());
  return out->commit();
}

Result<void> refuse_overwriting_inputs(const std::vector<std::pair<std::string, std::string>>& inputs,
                                       const std::vector<std::pair<std::string, std::string>>& outputs) {
  for (const auto& [oflag, opath] : outputs) {
    struct stat o {};
    if (opath.empty() || opath == "-" || ::stat(opath.c_str(), &o) != 0) continue;  // not there yet: no input
    for (const auto& [iflag, ipath] : inputs) {
      struct stat i {};
      if (!ipath.empty() && ::stat(ipath.c_str(), &i) == 0 && i.st_dev == o.st_dev && i.st_ino == o.st_ino && S_ISREG(i.st_mode))
        return make_error(Errc::InvalidArgument, oflag + " " + opath + " is the input " + (iflag.empty() ? "" : iflag + " ") + ipath +
                                                     ": writing it would destroy it");
    }
  }
  return {};
}

Result<std::vector<uint8_t>> parse_hex(std::string_view text) {
  std::vector<uint8_t> out;
  size_t i = 0;
  auto digit = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  auto value = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10); };
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    if (text.substr(i, 2) == "0x" || text.substr(i, 2) == "0X") i += 2;
    if (i + 1 >= text.size() || !digit(text[i]) || !digit(text[i + 1]))
      return make_error(Errc::InvalidArgument, "invalid hex byte at offset " + std::to_string(i));
    out.push_back(static_cast<uint8_t>(value(text[i]) * 16 + value(text[i + 1])));
    i += 2;
    if (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) && !digit(text[i]))
      return make_error(Errc::InvalidArgument, "invalid hex byte at offset " + std::to_string(i));
  }
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", bytes[i]);
    if (i) s += (i % 8 == 0) ? '\n' : ' ';
    s += buf;
  }
  return s + "\n";
}

Result<Program> load_program(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes) return bytes.error();
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  auto prog = (ends_with(".s") || ends_with(".asm"))
                  ? Program::from_assembly(std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()))
                  : Program::from_bytecode(*bytes);
  if (!prog) prog.error().where.file = path;
  return prog;
}

}  // namespace ebpfvm::tools
