// PacketFilter: tcpdump expressions through libpcap's compiler, classic programs through
// cbpf::translate, then the verifier and an engine (see include/ebpfvm/filter.hpp).
#include <pcap/pcap.h>

#include <charconv>
#include <cstdio>
#include <mutex>
#include <optional>

#include "cbpf/cbpf.hpp"
#include "ebpfvm/asm.hpp"
#include "ebpfvm/jit.hpp"
#include "jit/image.hpp"

namespace ebpfvm {

namespace detail {

struct FilterImpl {
  std::vector<ClassicInsn> classic;
  Program ebpf;
  std::optional<JitProgram> jit;
  std::optional<Interpreter> interp;
  // The JIT's code, when it takes the packet as arguments (it loads from the packet and calls
  // nothing): run() calls it straight, the whole cost of a filter being the filter.
  const JitImage* direct = nullptr;
};

}  // namespace detail

namespace {

// The translation runs with r1 pointing at the wire length: 4 bytes of memory (r2 = 4).
constexpr uint32_t kCtxSize = 4;

// pcap_compile is not thread-safe before libpcap 1.8 and shares a lexer state in some builds:
// one compilation at a time.
std::mutex g_pcap_compile;

}  // namespace

Result<PacketFilter> PacketFilter::from_classic(std::span<const ClassicInsn> program, const FilterOptions& options) {
  if (auto ok = cbpf::validate(program); !ok) return ok.error();
  const std::string text = cbpf::translate(program);
  auto ebpf = Program::from_assembly(text);
  if (!ebpf) return make_error(Errc::Unsupported, "classic BPF translation does not assemble: " + ebpf.error().to_string());
  auto impl = std::make_shared<detail::FilterImpl>(detail::FilterImpl{{program.begin(), program.end()}, std::move(*ebpf), {}, {}});
  // Both engines verify the translation first (a rejection would be a translator bug).
  if (options.engine == Engine::Jit) {
    auto jit = JitProgram::compile(impl->ebpf, HelperRegistry::builtin(), {}, kCtxSize);
    if (!jit) return jit.error();
    impl->jit = std::move(*jit);
    const detail::JitImage& img = *impl->jit->image();
    if (img.packet_args && !img.uses_maps && img.run_uses == 0) impl->direct = &img;
  } else {
    auto interp = Interpreter::create(impl->ebpf, HelperRegistry::builtin(), {Safety::Verified, 0, kCtxSize});
    if (!interp) return interp.error();
    impl->interp = std::move(*interp);
  }
  return PacketFilter(std::move(impl));
}

Result<PacketFilter> PacketFilter::compile(const std::string& expression, const FilterOptions& options) {
  std::vector<ClassicInsn> prog;
  {
    std::lock_guard lock(g_pcap_compile);
    pcap_t* dead = pcap_open_dead(options.linktype, static_cast<int>(options.snaplen));
    if (!dead) return make_error(Errc::Unsupported, "pcap_open_dead failed for link type " + std::to_string(options.linktype));
    bpf_program bp{};
    if (pcap_compile(dead, &bp, expression.c_str(), options.optimize ? 1 : 0, options.netmask) != 0) {
      Error e = make_error(Errc::InvalidArgument, std::string(pcap_geterr(dead)) + " (filter '" + expression + "')");
      pcap_close(dead);
      return e;
    }
    for (u_int i = 0; i < bp.bf_len; ++i) prog.push_back({bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf, bp.bf_insns[i].k});
    pcap_freecode(&bp);
    pcap_close(dead);
  }
  return from_classic(prog, options);
}

uint32_t PacketFilter::run(std::span<const uint8_t> data, uint32_t wire_len) const {
  uint32_t len = wire_len;
  if (impl_->direct) return static_cast<uint32_t>(detail::call_entry(*impl_->direct, reinterpret_cast<uintptr_t>(&len), kCtxSize, 0, 0, 0, data));
  RunArgs args;
  args.regs[0] = reinterpret_cast<uintptr_t>(&len);
  args.regs[1] = kCtxSize;
  // LD_ABS and LD_IND only read the packet
  args.packet = std::span<uint8_t>(const_cast<uint8_t*>(data.data()), data.size());
  auto r = impl_->jit ? impl_->jit->run(args) : impl_->interp->run(args);
  return r ? static_cast<uint32_t>(*r) : 0;
}

std::span<const ClassicInsn> PacketFilter::classic() const { return impl_->classic; }
const Program& PacketFilter::ebpf() const { return impl_->ebpf; }
Engine PacketFilter::engine() const { return impl_->jit ? Engine::Jit : Engine::Interpreter; }

// ---- text forms -----------------------------------------------------------------------------------

Result<std::vector<ClassicInsn>> parse_classic(std::string_view text) {
  std::vector<ClassicInsn> out;
  std::optional<uint64_t> count;  // tcpdump -ddd's first line
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    // numbers in decimal or 0x hex, separated by anything else ("{ 0x28, 0, 0, 0x0000000c },")
    std::vector<uint64_t> nums;
    for (size_t i = 0; i < line.size();) {
      if (line[i] < '0' || line[i] > '9') {
        ++i;
        continue;
      }
      const bool hex = line.substr(i, 2) == "0x" || line.substr(i, 2) == "0X";
      const size_t from = hex ? i + 2 : i;
      uint64_t v = 0;
      auto [end, ec] = std::from_chars(line.data() + from, line.data() + line.size(), v, hex ? 16 : 10);
      if (ec != std::errc() || v > 0xffffffffu)
        return make_error(Errc::InvalidArgument, "classic BPF text, line " + std::to_string(line_no) + ": a number out of range");
      nums.push_back(v);
      i = static_cast<size_t>(end - line.data());
    }
    if (nums.empty()) continue;
    if (nums.size() == 1 && !count && out.empty()) {
      count = nums[0];
      continue;
    }
    if (nums.size() != 4 || nums[0] > 0xffff || nums[1] > 0xff || nums[2] > 0xff)
      return make_error(Errc::InvalidArgument, "classic BPF text, line " + std::to_string(line_no) +
                                                   ": expected an instruction 'code jt jf k' (tcpdump -ddd) or '{ code, jt, jf, k },' (tcpdump -dd)");
    out.push_back({static_cast<uint16_t>(nums[0]), static_cast<uint8_t>(nums[1]), static_cast<uint8_t>(nums[2]), static_cast<uint32_t>(nums[3])});
  }
  if (count && *count != out.size())
    return make_error(Errc::InvalidArgument, "classic BPF text says " + std::to_string(*count) + " instructions but holds " +
                                                 std::to_string(out.size()));
  if (out.empty()) return make_error(Errc::InvalidArgument, "classic BPF text holds no instruction");
  return out;
}

std::string format_classic(std::span<const ClassicInsn> program) {
  std::string out;
  for (size_t i = 0; i < program.size(); ++i) {
    const bpf_insn raw{program[i].code, program[i].jt, program[i].jf, program[i].k};
    out += bpf_image(&raw, static_cast<int>(i));
    out += "\n";
  }
  return out;
}

std::string format_classic_c(std::span<const ClassicInsn> program) {
  std::string out;
  char buf[64];
  for (const ClassicInsn& in : program) {
    std::snprintf(buf, sizeof buf, "{ 0x%x, %d, %d, 0x%08x },\n", in.code, in.jt, in.jf, in.k);
    out += buf;
  }
  return out;
}

}  // namespace ebpfvm
