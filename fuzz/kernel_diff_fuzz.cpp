// libFuzzer target: ebpfvm's verifier against the Linux kernel's, where this process may load
// programs (probed once; otherwise every input is skipped and the first says why).
//
// The fuzzer's bytes drive fuzz/program_gen.hpp, whose 256-byte buffer is here the value of an
// array map (so that both verifiers see the same kind of memory: the kernel refuses atomics on
// packets), with its helper shapes (ring buffer records, bpf_loop callbacks), then mutate a few
// instructions as verifier_fuzz does. Each program is verified as
// XDP by both. A program ebpfvm accepts and the kernel refuses is a finding, unless the kernel's
// reason is one of the differences docs/verifier.md lists as deliberate (kDeliberate below), or
// the kernel refused at an instruction ebpfvm proved unreachable (the kernel's bounds are looser
// there); then the program must also run clean under the containment oracle, as in verifier_fuzz.
// A program the kernel accepts and ebpfvm refuses is imprecision, counted and not a failure.
// KDIFF_VERBOSE=1 prints each disagreement the oracle settled (=2: with the program).
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/btf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "program_gen.hpp"
#include "verifier/oracle.hpp"

namespace {

// Kernel messages for programs ebpfvm accepts on purpose (docs/verifier.md, "Deliberate
// differences from the kernel"), each with its reason there.
constexpr const char* kDeliberate[] = {
    "misaligned stack access",  // ebpfvm tracks the stack byte by byte
    "div by zero",              // an immediate 0 divisor: RFC 9669 defines the result, as at run time
    "invalid shift ",           // an immediate shift past the width: RFC 9669 masks it, as at run time
    "verifier bug",             // the kernel's own (e.g. "No program to jit ... (subprog < 0)")
};

// The kernel's twins of the programs' maps: 0 the buffer (an array of one 256-byte value), 1 a
// ring buffer. Empty where this process may not create maps (root, CAP_BPF).
const std::vector<int>& kernel_maps() {
  static const std::vector<int> fds = [] {
    const int a = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kdiff", 4, ebpfvm::gen::kBufferSize, 1, nullptr);
    const int r = a < 0 ? -1 : bpf_map_create(BPF_MAP_TYPE_RINGBUF, "kdiff_ring", 0, 0, 4096, nullptr);
    if (a < 0 || r < 0) {
      std::fprintf(stderr, "kernel_diff_fuzz: SKIP every input: this process may not create maps (%s)\n", std::strerror(errno));
      return std::vector<int>{};
    }
    return std::vector<int>{a, r};
  }();
  return fds;
}

// The generator's program with its buffer as the map's value: r9 = the looked-up value.
std::string with_map_value(const std::string& text) {
  const std::string prologue =
      "*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nr1 = map_idx(0) ll\ncall 1\nif r0 != 0 goto have_value\nexit\nhave_value:\nr9 = r0\n";
  return prologue + text.substr(text.find('\n') + 1);  // the generator's first line is r9 = r1
}

void mutate(std::vector<uint8_t>& code, ebpfvm::gen::Source& s, size_t keep) {
  const size_t slots = code.size() / 8;
  const unsigned n = static_cast<unsigned>(s.below(4));
  for (unsigned k = 0; k < n; ++k) {
    uint8_t* in = &code[8 * (keep + s.below(slots - keep))];  // not the prologue
    switch (s.below(5)) {
      case 0: in[2] = static_cast<uint8_t>(s.next()); in[3] = static_cast<uint8_t>(s.next()); break;
      case 1: for (int b = 4; b < 8; ++b) in[b] = static_cast<uint8_t>(s.next()); break;
      case 2: in[1] = static_cast<uint8_t>(s.below(11) | (s.below(11) << 4)); break;
      case 3: in[0] = static_cast<uint8_t>(s.next()); break;
      default: in[2] = static_cast<uint8_t>(in[2] + s.below(16) - 8); break;
    }
  }
}

// BTF with a FUNC type per function (f0, f1, ...): the kernel wants func_info for programs with
// subprograms and callbacks. -1 where it cannot be loaded.
constexpr size_t kMaxFuncs = 32;
int func_btf_fd() {
  static btf* const b = [] {  // kept for the process's life (its fd with it)
    btf* t = btf__new_empty();
    if (!t) return t;
    const int int_id = btf__add_int(t, "int", 4, BTF_INT_SIGNED);
    const int proto = btf__add_func_proto(t, int_id);
    for (size_t i = 0; i < kMaxFuncs; ++i) btf__add_func(t, ("f" + std::to_string(i)).c_str(), BTF_FUNC_STATIC, proto);
    if (btf__load_into_kernel(t) != 0) {
      btf__free(t);
      return static_cast<btf*>(nullptr);
    }
    return t;
  }();
  return b ? btf__fd(b) : -1;
}

// Where each function starts: 0, and every local call's and code address's target.
std::vector<bpf_func_info> func_info(const std::vector<uint8_t>& code) {
  std::vector<uint32_t> starts{0};
  const int64_t slots = static_cast<int64_t>(code.size() / 8);
  for (int64_t i = 0; i < slots; ++i) {
    int32_t imm;
    std::memcpy(&imm, &code[static_cast<size_t>(i) * 8 + 4], 4);
    const uint8_t op = code[static_cast<size_t>(i) * 8], src = code[static_cast<size_t>(i) * 8 + 1] >> 4;
    if ((op == 0x85 && src == 1) || (op == 0x18 && src == 4)) {
      const int64_t target = i + imm + 1;
      if (target > 0 && target < slots) starts.push_back(static_cast<uint32_t>(target));
    }
    if (op == 0x18) ++i;
  }
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
  std::vector<bpf_func_info> out;
  for (size_t k = 0; k < starts.size() && k < kMaxFuncs; ++k) out.push_back({starts[k], static_cast<uint32_t>(3 + k)});  // int, proto, f0..
  return out;
}

struct KernelVerdict {
  bool loaded = false;
  std::string why;   // the log's line that says why it refused
  int64_t insn = -1;  // the instruction it refused at, from the log's trace
};

// `why`: with the log that says why, when it refuses (the log costs the kernel most of its time).
KernelVerdict kernel_verdict(std::vector<uint8_t> code, const std::vector<int>& map_fds, bool why) {
  // ebpfvm's map references name maps by index (map_fd(N) and map_idx(N) alike): the kernel's
  // name them by fd (an index past the maps stays as it is: both refuse it)
  for (size_t i = 0; i + 16 <= code.size(); i += 8) {
    if (code[i] != 0x18) continue;
    const uint8_t src = code[i + 1] >> 4;
    uint32_t idx;
    std::memcpy(&idx, &code[i + 4], 4);
    if ((src == 1 || src == 2 || src == 5 || src == 6) && idx < map_fds.size()) {
      const uint8_t by_fd = src == 5 ? 1 : src == 6 ? 2 : src;  // BPF_PSEUDO_MAP_FD, _VALUE
      code[i + 1] = static_cast<uint8_t>((code[i + 1] & 0x0f) | (by_fd << 4));
      std::memcpy(&code[i + 4], &map_fds[idx], 4);
    }
    i += 8;
  }
  static std::vector<char> log(1 << 22);
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 1, .log_size = static_cast<__u32>(log.size()), .log_buf = log.data());
  if (!why) opts.log_level = 0, opts.log_size = 0, opts.log_buf = nullptr;
  const std::vector<bpf_func_info> funcs = func_info(code);
  if (funcs.size() > 1 && func_btf_fd() >= 0) {
    opts.prog_btf_fd = static_cast<__u32>(func_btf_fd());
    opts.func_info = funcs.data();
    opts.func_info_cnt = static_cast<__u32>(funcs.size());
    opts.func_info_rec_size = sizeof(bpf_func_info);
  }
  log[0] = 0;
  const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "kdiff", "GPL", reinterpret_cast<const bpf_insn*>(code.data()), code.size() / 8, &opts);
  KernelVerdict v;
  if (fd >= 0) {
    close(fd);
    v.loaded = true;
    return v;
  }
  if (!why) return v;
  // The log ends with the reason, then "processed N insns ..."; before the reason, the trace's
  // last instruction ("43: (71) r6 = *(u8 *)(r7 +1124)") is where it refused.
  std::string text(log.data());
  if (const size_t p = text.rfind("\nprocessed "); p != std::string::npos) text.resize(p);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t nl = text.rfind('\n');
  v.why = nl == std::string::npos ? text : text.substr(nl + 1);
  if (v.why.empty()) v.why = std::string("errno ") + std::strerror(errno);
  for (size_t end = nl; end != std::string::npos && end > 0;) {
    const size_t start = text.rfind('\n', end - 1);
    const std::string line = text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1));
    char* rest = nullptr;
    const long n = std::strtol(line.c_str(), &rest, 10);
    if (rest != line.c_str() && rest[0] == ':' && rest[1] == ' ' && rest[2] == '(') {
      v.insn = n;
      break;
    }
    end = start;
  }
  return v;
}

// The program, verified for raw memory (its prologue never reads the context), run in the checked
// interpreter under the containment oracle (map value pointers checked at their offsets from the
// value): what ebpfvm claims, with the kernel or beyond it, must hold.
void check_contained(const ebpfvm::Program& prog, std::span<const ebpfvm::Map> maps, const std::shared_ptr<const ebpfvm::detail::AbstractStates>& states,
                     ebpfvm::gen::Source& src) {
  ebpfvm::detail::ContainmentOracle oracle;
  oracle.add(nullptr, states);
  auto checked = ebpfvm::Interpreter::create(prog, ebpfvm::HelperRegistry::builtin(), {ebpfvm::Safety::Checked, 50'000'000, 0}, maps);
  if (!checked) {
    std::fprintf(stderr, "verified, yet the interpreter refuses it: %s\n", checked.error().to_string().c_str());
    std::abort();
  }
  std::vector<uint8_t> mem(ebpfvm::gen::kBufferSize);
  for (auto& b : mem) b = static_cast<uint8_t>(src.next());
  auto r = checked->run(mem);
  if (!r || !oracle.failure().empty()) {
    std::fprintf(stderr, "verified, yet: %s\n%s\n", r ? oracle.failure().c_str() : r.error().to_string().c_str(),
                 prog.disassemble().c_str());
    std::abort();
  }
}

}  // namespace

// Returns 1 when both accept, 2 when only the kernel does, 3 when only ebpfvm does (a deliberate
// difference, or code ebpfvm proved unreachable), 4 when only ebpfvm does and its states held on
// every run, 0 otherwise; aborts on a finding.
int ebpfvm_kernel_diff_one(const uint8_t* data, size_t size) {
  const std::vector<int>& map_fds = kernel_maps();
  if (map_fds.empty()) return 0;
  ebpfvm::gen::ByteSource src(data, size);
  const std::string text = with_map_value(ebpfvm::gen::program(src, 24, true));
  auto base = ebpfvm::assemble(text);
  if (!base) {
    std::fprintf(stderr, "%s\n%s\n", base.error().to_string().c_str(), text.c_str());
    std::abort();  // the generator only writes valid programs
  }
  std::vector<uint8_t> code = *base;
  mutate(code, src, 9);  // the prologue's 9 slots stay
  auto prog = ebpfvm::Program::from_bytecode(code);
  if (!prog) return 0;
  static const auto maps = [] {
    auto m = ebpfvm::Map::create({"kdiff", ebpfvm::MapType::Array, 4, ebpfvm::gen::kBufferSize, 1, 0, nullptr});
    auto ring = ebpfvm::Map::create({"kdiff_ring", ebpfvm::MapType::Ringbuf, 0, 0, 4096, 0, nullptr});
    if (!m || !ring) std::abort();
    return std::vector<ebpfvm::Map>{*m, *ring};
  }();
  ebpfvm::VerifyOptions vo;
  vo.complexity_limit = 50'000;
  auto ours = ebpfvm::verify(*prog, ebpfvm::HelperRegistry::builtin(), maps, vo);
  if (!ours) return kernel_verdict(code, map_fds, false).loaded ? 2 : 0;
  vo.context = ebpfvm::VerifyOptions::Context::Memory;
  vo.memory_size = ebpfvm::gen::kBufferSize;
  vo.record_states = true;
  auto states = ebpfvm::verify(*prog, ebpfvm::HelperRegistry::builtin(), maps, vo);
  if (!states) {
    std::fprintf(stderr, "accepted as XDP, refused for raw memory: %s\n", states.error().to_string().c_str());
    std::abort();
  }
  if (kernel_verdict(code, map_fds, false).loaded) {
    check_contained(*prog, maps, states->abstract_states, src);  // map value pointers included
    return 1;
  }
  const KernelVerdict kernel = kernel_verdict(code, map_fds, true);
  const auto& at = states->abstract_states->at;
  bool explained = kernel.insn >= 0 && (static_cast<size_t>(kernel.insn) >= at.size() || !at[static_cast<size_t>(kernel.insn)]);
  for (const char* d : kDeliberate) explained = explained || kernel.why.find(d) != std::string::npos;
  // Otherwise the kernel's bounds were looser than ebpfvm's (its register shifts past the width,
  // 32-bit division results, ...): ebpfvm's must then hold on every run, which the oracle checks
  // over several memory contents.
  for (int run = 0; run < (explained ? 1 : 8); ++run) check_contained(*prog, maps, states->abstract_states, src);
  if (!explained && std::getenv("KDIFF_VERBOSE"))
    std::fprintf(stderr, "kernel refuses at insn %lld (%s); ebpfvm accepts and holds\n%s", static_cast<long long>(kernel.insn), kernel.why.c_str(),
                 std::getenv("KDIFF_VERBOSE")[0] == '2' ? prog->disassemble().c_str() : "");
  return explained ? 3 : 4;
}

#ifndef EBPFVM_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ebpfvm_kernel_diff_one(data, size);
  return 0;
}
#endif
