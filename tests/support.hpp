// Test support: the case-file format of tests/cases/*.txt and helpers shared by the test files.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace ebpfvm::test {

struct Case {
  std::string file;
  std::string name;
  int line = 0;                // line of the "==" header
  std::string source;          // assembler text
  std::string mem_hex;         // input memory, possibly empty
  bool test_helpers = false;   // needs helpers 1 and 2 (not available in the plugin)
  std::optional<uint64_t> result;
  std::string error;           // expected error text when no result
  std::string where() const { return file + ":" + std::to_string(line) + " '" + name + "'"; }
};

// Every case of every tests/cases/*.txt file.
std::vector<Case> load_cases();

// Helper 5 returns 0; helper 1 returns r1+..+r5; helper 2 returns r1*r2.
HelperRegistry test_helpers(bool with_test_ids = true);

std::vector<uint8_t> hex_bytes(const std::string& hex);
std::vector<uint8_t> must_assemble(const std::string& text);

}  // namespace ebpfvm::test

namespace ebpfvm::test {

struct Proc {
  int exit_code = -1;
  std::string out;  // stdout (stderr too when merged)
};
// Runs argv (no shell interpretation of its words) with `input` on stdin.
// argv as it must be exec'd: under EBPFVM_TEST_EMULATOR (e.g. "qemu-aarch64")
// when the tests run emulated and argv[0] is one of the project's programs built for that CPU.
std::vector<std::string> under_emulator(std::vector<std::string> argv);
Proc run_process(const std::vector<std::string>& argv, const std::string& input = "", bool merge_stderr = false);
std::string temp_path(const std::string& name);
// Bytes as lowercase hex, no separators (failure messages of the kernel comparisons).
std::string hex(std::span<const uint8_t> bytes);
// libxdp1's prebuilt XDP objects, sorted paths: from $LIBXDP_OBJECT_PATH when set (libxdp's own
// override), else the directory the build found. Where there are none, one SKIP line says so and
// the list is empty: tests then go on with their other inputs.
std::vector<std::string> libxdp_objects();
// Whether this process may turn written memory into code, as the JIT does (map writable, fill,
// make read+execute). Where the host refuses (SELinux's execmem rule, memory-deny-write-execute),
// one SKIP line says so, and the tests that run JIT code return early through SKIP_WITHOUT_JIT().
bool jit_available();
#define SKIP_WITHOUT_JIT() \
  if (!::ebpfvm::test::jit_available()) return
// The JIT in use is the x86-64 backend: its optimisations (direct calls, loop alignment, byte pairs,
// sinking, vectorised byte loops...) are what the stats checks count. Other backends must give
// the same results, which the same tests check everywhere.
inline bool x86_codegen() { return host_jit_target() == JitTarget::X86_64; }
// A program with seven constants of its own choosing (the blinding tests look for them in the
// code), and what it returns.
inline constexpr const char* kSevenConstants = R"(
r0 = 0x3c3c3c3c
r0 += 0x11223344
*(u32 *)(r10 - 8) = 0x55667788
r1 = *(u32 *)(r10 - 8)
r0 += r1
if r0 == 0x61436587 goto +1
r0 |= 0x6a6b6c6d
r2 = 0x0102030405060708 ll
r0 ^= r2
r3 = 0x7e7e7e7e
r0 /= r3
exit
)";
inline constexpr uint64_t kSevenConstantsResult = (((0x3c3c3c3cull + 0x11223344 + 0x55667788) | 0x6a6b6c6d) ^ 0x0102030405060708ull) / 0x7e7e7e7e;
// Ethernet pcap files through libpcap, as capture tools write and read them.
void write_capture(const std::string& path, const std::vector<std::vector<uint8_t>>& packets);
std::vector<std::vector<uint8_t>> read_capture(const std::string& path);

}  // namespace ebpfvm::test
