// Classic BPF programs from the fuzzer's bytes (8 per instruction, then a packet), checked by
// ebpfvm and by libpcap's bpf_validate, then run on the packet by both engines and by libpcap's
// bpf_filter: ebpfvm must accept only what libpcap accepts, and return what libpcap returns.
// Scratch words are written first (libpcap leaves unwritten ones undefined).
#include <pcap/pcap.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t n = std::min<size_t>(data[0] % 64 + 1, (size - 1) / 8);
  if (n == 0) return 0;
  std::vector<ebpfvm::ClassicInsn> prog;
  for (uint32_t k = 0; k < 16; ++k) prog.push_back({0x02, 0, 0, k});  // st M[k] (A = 0)
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = data + 1 + 8 * i;
    ebpfvm::ClassicInsn in;
    std::memcpy(&in.code, p, 2);
    in.code &= 0xff;
    in.jt = p[2], in.jf = p[3];
    std::memcpy(&in.k, p + 4, 4);
    prog.push_back(in);
  }
  prog.push_back({0x16, 0, 0, 0});  // ret a
  const std::vector<uint8_t> packet(data + 1 + 8 * n, data + size);
  std::vector<bpf_insn> raw;
  for (const auto& in : prog) raw.push_back({in.code, in.jt, in.jf, in.k});
  const bool theirs = bpf_validate(raw.data(), static_cast<int>(raw.size())) != 0;
  for (ebpfvm::Engine e : {ebpfvm::Engine::Interpreter, ebpfvm::Engine::Jit}) {
    auto f = ebpfvm::PacketFilter::from_classic(prog, {e});
    if (!f) {
      if (f.error().code != ebpfvm::Errc::InvalidArgument) {
        std::fprintf(stderr, "a valid-looking classic program failed: %s\n%s", f.error().to_string().c_str(), ebpfvm::format_classic(prog).c_str());
        std::abort();
      }
      continue;
    }
    if (!theirs) {
      std::fprintf(stderr, "ebpfvm accepts a classic program libpcap refuses:\n%s", ebpfvm::format_classic(prog).c_str());
      std::abort();
    }
    for (uint32_t extra : {0u, 100u}) {
      const auto wire = static_cast<uint32_t>(packet.size()) + extra;
      const uint32_t ours = f->run(packet, wire);
      const uint32_t want = bpf_filter(raw.data(), packet.data(), wire, static_cast<u_int>(packet.size()));
      if (ours != want) {
        std::fprintf(stderr, "%s returns %u, libpcap %u, on %zu bytes (%u on the wire):\n%s",
                     e == ebpfvm::Engine::Jit ? "the JIT" : "the interpreter", ours, want, packet.size(), wire,
                     ebpfvm::format_classic(prog).c_str());
        std::abort();
      }
    }
  }
  return 0;
}
