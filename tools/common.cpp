#include "common.hpp"

#include "util/file.hpp"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace ebpfvm::tools {

Result<std::vector<uint8_t>> read_file(const std::string& path) {
  // pipes and "-" too: text and JSON are often made on the fly (`<(...)`)
  auto bytes = detail::read_regular_file(path, {256ull << 20, {}, "", true});
  if (!bytes) return make_error(bytes.error().code, path + ": " + bytes.error().message);
  return bytes;
}

Result<void> write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return make_error(Errc::Io, tmp + ": " + std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    return make_error(Errc::Io, path + ": " + why);
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
