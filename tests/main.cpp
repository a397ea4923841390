// The test runner: Catch2's, after one check of the host that would otherwise show as many
// unrelated failures.
#define CATCH_CONFIG_RUNNER
#include <sys/statvfs.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>

namespace {

// The tests write captures, objects and outputs under the temp directory: about 225 MiB at most
// for the whole suite in one process, and ctest runs two processes at once.
constexpr unsigned long long kTempMiB = 512;

bool enough_temp_space() {
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
  struct statvfs fs {};
  if (ec || statvfs(dir.c_str(), &fs) != 0) return true;  // the tests that write will say what fails
  const unsigned long long free_mib = static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize >> 20;
  if (free_mib >= kTempMiB) return true;
  std::fprintf(stderr, "the tests need about %llu MiB free in the temp directory %s; it has %llu MiB (set TMPDIR to a folder with room)\n",
               kTempMiB, dir.c_str(), free_mib);
  return false;
}

}  // namespace

int main(int argc, char* argv[]) {
  if (!enough_temp_space()) return 2;
  return Catch::Session().run(argc, argv);
}
