// Classic BPF: checking a program as libpcap's bpf_validate and the kernel's sk_chk_filter do, and
// translating it into eBPF for the verifier and the engines (see include/ebpfvm/filter.hpp).
#pragma once

#include <span>
#include <string>

#include "ebpfvm/error.hpp"
#include "ebpfvm/filter.hpp"

namespace ebpfvm::cbpf {

inline constexpr size_t kMaxInsns = 4096;  // BPF_MAXINSNS
inline constexpr uint32_t kMemWords = 16;  // BPF_MEMWORDS

// Errors name the instruction: "classic BPF instruction 3 (jeq): jump to 9 is past the end (7
// instructions)".
Result<void> validate(std::span<const ClassicInsn> prog);

// eBPF assembler text for a valid program. The translation is called with r1 pointing at the
// packet's length on the wire (a u32: 4 bytes of memory, r2 = 4) and the captured bytes as the
// LD_ABS/LD_IND packet. A lives in w0 (where LD_ABS leaves its result), X in w7, the wire
// length in w8 (each set up only where the program reads it), M[k] in the stack's u32 at
// r10 - 64 + 4k. Only instructions reachable from the
// first are translated (the eBPF verifier refuses dead code; classic loaders do not).
std::string translate(std::span<const ClassicInsn> prog);

// The mnemonic tcpdump -d prints for an instruction ("ldh", "jeq", ...).
std::string mnemonic(const ClassicInsn& in);

}  // namespace ebpfvm::cbpf
