// Packet filters as tcpdump writes them: classic BPF (what `tcpdump -d` prints and libpcap
// interprets for every packet of a capture), translated to eBPF, verified and run by ebpfvm's
// engines, JIT-compiled by default.
//
//   auto f = ebpfvm::PacketFilter::compile("tcp dst port 80");  // libpcap's pcap_compile
//   if (!f) std::cerr << f.error().to_string();                  // libpcap's own message
//   if (f->matches(packet, wire_len)) ...
//
// The result of a packet is what the classic program returns: 0 for no match, else the bytes to
// keep (tcpdump's snap length). Semantics are libpcap's bpf_filter(): loads past the captured
// bytes and division by a zero X return 0, BPF_LEN is the packet's length on the wire, shifts by
// X of 32 or more give 0.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/error.hpp"
#include "ebpfvm/object.hpp"
#include "ebpfvm/program.hpp"

namespace ebpfvm {

// One classic BPF instruction (struct sock_filter / struct bpf_insn).
struct ClassicInsn {
  uint16_t code = 0;
  uint8_t jt = 0;
  uint8_t jf = 0;
  uint32_t k = 0;
  bool operator==(const ClassicInsn&) const = default;
};

struct FilterOptions {
  Engine engine = Engine::Jit;
  // For expressions: the capture's link type (DLT_EN10MB: Ethernet) and snap length, as
  // pcap_open_dead takes them, and whether libpcap optimises the program (tcpdump -O turns it off).
  int linktype = 1;
  uint32_t snaplen = 262144;
  bool optimize = true;
  // The network's mask, for `ip broadcast` (host byte order); 0, as tcpdump takes it for a file.
  uint32_t netmask = 0;
};

namespace detail {
struct FilterImpl;
}

class PacketFilter {
 public:
  // A tcpdump expression, compiled by libpcap. Errors are libpcap's ("syntax error in filter
  // expression"), with the expression.
  static Result<PacketFilter> compile(const std::string& expression, const FilterOptions& options = {});
  // A classic program, checked as the kernel and libpcap check one (jumps in range, a RET at the
  // end, scratch memory M[0..15], no division by a constant 0, known opcodes); errors name the
  // instruction.
  static Result<PacketFilter> from_classic(std::span<const ClassicInsn> program, const FilterOptions& options = {});

  // What the program returns for a packet: `data` the captured bytes, `wire_len` its length on the
  // wire (at least data.size()).
  uint32_t run(std::span<const uint8_t> data, uint32_t wire_len) const;
  uint32_t run(std::span<const uint8_t> data) const { return run(data, static_cast<uint32_t>(data.size())); }
  bool matches(std::span<const uint8_t> data, uint32_t wire_len) const { return run(data, wire_len) != 0; }
  bool matches(std::span<const uint8_t> data) const { return run(data) != 0; }

  std::span<const ClassicInsn> classic() const;
  const Program& ebpf() const;  // the translation, as verified and run
  Engine engine() const;

 private:
  explicit PacketFilter(std::shared_ptr<const detail::FilterImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const detail::FilterImpl> impl_;
};

// A classic program as text: tcpdump -ddd (a count, then "code jt jf k" per line) or tcpdump -dd
// ("{ 0x28, 0, 0, 0x0000000c }," per line). Errors name the line.
Result<std::vector<ClassicInsn>> parse_classic(std::string_view text);
// tcpdump -d's listing: "(000) ldh      [12]" ...
std::string format_classic(std::span<const ClassicInsn> program);
// tcpdump -dd's C array lines.
std::string format_classic_c(std::span<const ClassicInsn> program);

}  // namespace ebpfvm
