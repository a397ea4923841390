// The test runner: Catch2's, after a check of the host that would otherwise show as many
// unrelated failures.
#define CATCH_CONFIG_RUNNER
#include <sys/prctl.h>
#include <sys/statvfs.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// EBPFVM_TEST_NO_EXEC_MEMORY=1 asks the kernel to refuse executable memory made from written
// memory (memory-deny-write-execute, Linux 6.3+; inherited by the tools the tests start), as
// SELinux's execmem rule does on some hosts: the JIT then cannot make code, and the tests that
// need it must skip (test::jit_available).
void deny_exec_memory_if_asked() {
  if (!std::getenv("EBPFVM_TEST_NO_EXEC_MEMORY")) return;
  constexpr int kSetMdwe = 65, kRefuseExecGain = 1;  // PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
  if (prctl(kSetMdwe, kRefuseExecGain, 0L, 0L, 0L) != 0)
    std::printf("EBPFVM_TEST_NO_EXEC_MEMORY: this kernel has no memory-deny-write-execute (%s); nothing refused\n",
                std::strerror(errno));
}

}  // namespace

int main(int argc, char* argv[]) {
  if (!enough_temp_space()) return 2;
  deny_exec_memory_if_asked();
  return Catch::Session().run(argc, argv);
}
