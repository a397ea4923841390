// The context analysis: which loads read struct xdp_md, what they become, and what is refused.
#include <catch2/catch.hpp>

#include "progtype/ctx_rewrite.hpp"
#include "support.hpp"

using namespace ebpfvm;

namespace {

// Runs the XDP rewrite over assembler text; returns the rewritten disassembly or the error.
std::string rewrite(const std::string& text) {
  auto bytes = test::must_assemble(text);
  auto prog = isa::decode(bytes);
  REQUIRE(prog.ok());
  auto r = detail::rewrite_ctx_accesses(*prog, detail::xdp_ctx_fields(), bytes);
  if (!r) return "error: " + r.error().to_string();
  auto out = disassemble(bytes, {false, false});
  REQUIRE(out.ok());
  return *out;
}

}  // namespace

TEST_CASE("context rewrite: data, data_end and data_meta become 64-bit pointer loads") {
  CHECK(rewrite("r2 = *(u32 *)(r1 + 0)\n"
                "r3 = *(u32 *)(r1 + 4)\n"
                "r4 = *(u32 *)(r1 + 8)\n"
                "r5 = *(u32 *)(r1 + 12)\n"
                "r0 = *(u8 *)(r1 + 16)\n"
                "exit\n") ==
        "r2 = *(u64 *)(r1 + 24)\n"
        "r3 = *(u64 *)(r1 + 32)\n"
        "r4 = *(u64 *)(r1 + 40)\n"
        "r5 = *(u32 *)(r1 + 12)\n"
        "r0 = *(u8 *)(r1 + 16)\n"
        "exit\n");
}

TEST_CASE("context rewrite: the context is followed through copies, spills and calls") {
  CHECK(rewrite("r6 = r1\n"
                "*(u64 *)(r10 - 16) = r6\n"
                "r1 = 0\n"
                "r7 = *(u64 *)(r10 - 16)\n"
                "r2 = *(u32 *)(r7 + 4)\n"
                "r1 = r7\n"
                "call pc+1\n"
                "exit\n"
                "r0 = *(u32 *)(r1 + 0)\n"
                "exit\n") ==
        "r6 = r1\n"
        "*(u64 *)(r10 - 16) = r6\n"
        "r1 = 0\n"
        "r7 = *(u64 *)(r10 - 16)\n"
        "r2 = *(u64 *)(r7 + 32)\n"
        "r1 = r7\n"
        "call pc+1\n"
        "exit\n"
        "r0 = *(u64 *)(r1 + 24)\n"
        "exit\n");
  // After a helper call r1 is no longer the context: the load below reads ordinary memory.
  CHECK(rewrite("r6 = r10\nr6 += -8\ncall 7\nr1 = r6\nr0 = *(u32 *)(r1 + 0)\nexit\n") ==
        "r6 = r10\nr6 += -8\ncall 7\nr1 = r6\nr0 = *(u32 *)(r1 + 0)\nexit\n");
}

TEST_CASE("context rewrite: what the kernel refuses is refused") {
  CHECK(rewrite("*(u32 *)(r1 + 0) = r2\nexit\n") ==
        "error: insn 0: invalid bpf_context access off=0 size=4 (the context is read-only)");
  CHECK(rewrite("r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit\n") ==
        "error: insn 1: dereference of modified ctx ptr R1 off=0 size=4 disallowed");
  CHECK(rewrite("r0 = *(u16 *)(r1 + 0)\nexit\n") == "error: insn 0: invalid bpf_context access off=0 size=2");
  CHECK(rewrite("r0 = *(u32 *)(r1 + 24)\nexit\n") == "error: insn 0: invalid bpf_context access off=24 size=4");
  CHECK(rewrite("r0 = *(u64 *)(r1 + 0)\nexit\n") == "error: insn 0: invalid bpf_context access off=0 size=8");
  CHECK(rewrite("if r2 == 0 goto +1\nr1 = r10\nr0 = *(u32 *)(r1 - 8)\nexit\n") ==
        "error: insn 2: R1 is the context on some paths and not on others; the same instruction cannot access both");
  CHECK(rewrite("r2 = r10\n*(u64 *)(r2 - 8) = r1\nexit\n") ==
        "error: insn 1: context pointer stored to memory other than the stack");
  CHECK(rewrite("*(u32 *)(r10 - 8) = r1\nexit\n") ==
        "error: insn 0: context pointer spilled with a partial or unaligned store");
  CHECK(rewrite("lock *(u32 *)(r1 + 12) += r2\nexit\n") ==
        "error: insn 0: invalid bpf_context access off=12 size=4 (the context is read-only)");
}
