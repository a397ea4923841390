// libFuzzer target: ebpfvm's verifier against the Linux kernel's, where this process may load
// programs (probed once; otherwise each input is only verified and run by ebpfvm under the
// containment oracle, and the first says why).
//
// The fuzzer's bytes drive fuzz/program_gen.hpp, whose 256-byte buffer is here the value of an
// array map (so that both verifiers see the same kind of memory: the kernel refuses atomics on
// packets), with its helper shapes (ring buffer records, bpf_loop and for_each_map_elem
// callbacks, tail calls, spin locks, packet pointers across bpf_xdp_adjust_*), then mutate a few
// instructions as verifier_fuzz does. Each program is verified as XDP by both. A program ebpfvm
// accepts and the kernel refuses is a finding, unless the kernel's reason is one of the
// differences docs/verifier.md lists as deliberate (kDeliberate below), or the kernel refused at
// an instruction ebpfvm proved unreachable (the kernel's bounds are looser there). Every program
// ebpfvm accepts then runs as XDP over a random packet in the checked interpreter under the
// containment oracle, as in verifier_fuzz. A program the kernel accepts and ebpfvm refuses is
// imprecision, counted and not a failure.
// KDIFF_VERBOSE=1 prints each program only the kernel accepts and each disagreement the oracle
// settled (=2: with the program).
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
#include "program_data.hpp"
#include "maps/map_impl.hpp"
#include "progtype/ctx_rewrite.hpp"
#include "progtype/xdp.hpp"
#include "runtime/run_state.hpp"
#include "verifier/oracle.hpp"
#include "verifier/verifier.hpp"

namespace {

// Kernel messages for programs ebpfvm accepts on purpose (docs/verifier.md, "Deliberate
// differences from the kernel"), each with its reason there.
constexpr const char* kDeliberate[] = {
    "misaligned stack access",  // ebpfvm tracks the stack byte by byte
    "div by zero",              // an immediate 0 divisor: RFC 9669 defines the result, as at run time
    "invalid shift ",           // an immediate shift past the width: RFC 9669 masks it, as at run time
    "verifier bug",             // the kernel's own (e.g. "No program to jit ... (subprog < 0)")
    "cannot return stack pointer to the caller",  // ebpfvm refuses only the callee's own frame
};

// BTF for map 3's value: struct { struct bpf_spin_lock lock; __u64 counter; }. Returns the value
// type's id in `value_id`; -1 where it cannot be loaded.
int lock_btf_fd(uint32_t& key_id, uint32_t& value_id) {
  static btf* t = btf__new_empty();  // kept for the process's life (its fd with it)
  if (!t) return -1;
  const int u32 = btf__add_int(t, "unsigned int", 4, 0), u64 = btf__add_int(t, "unsigned long long", 8, 0);
  const int lock = btf__add_struct(t, "bpf_spin_lock", 4);
  btf__add_field(t, "val", u32, 0, 0);
  const int value = btf__add_struct(t, "kdiff_locked", 16);
  btf__add_field(t, "lock", lock, 0, 0);
  btf__add_field(t, "counter", u64, 64, 0);
  if (btf__load_into_kernel(t) != 0) return -1;
  key_id = static_cast<uint32_t>(u32), value_id = static_cast<uint32_t>(value);
  return btf__fd(t);
}

std::string g_no_kernel;  // why the kernel is not asked, once kernel_maps() found out

// The kernel's twins of the programs' maps (program_gen.hpp's helper shapes): 0 the buffer (an
// array of one 256-byte value), 1 a ring buffer, 2 an empty prog array, 3 an array whose value
// holds a spin lock. Empty where the kernel refuses one (g_no_kernel says which): without root or
// CAP_BPF, or on an older kernel.
const std::vector<int>& kernel_maps() {
  static const std::vector<int> fds = [] {
    std::vector<int> out;
    // Each map made in turn; the first the kernel refuses says why (a BTF it refuses, too).
    const auto make = [&](const char* what, auto create) {
      if (!g_no_kernel.empty()) return;  // one refusal is enough
      const int fd = create();
      if (fd >= 0) out.push_back(fd);
      else g_no_kernel = std::string("the kernel refuses ") + what + " (" + std::strerror(errno) + ")";
    };
    make("an array map", [] { return bpf_map_create(BPF_MAP_TYPE_ARRAY, "kdiff", 4, ebpfvm::gen::kBufferSize, 1, nullptr); });
    make("a ring buffer", [] { return bpf_map_create(BPF_MAP_TYPE_RINGBUF, "kdiff_ring", 0, 0, 4096, nullptr); });
    make("a prog array", [] { return bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, "kdiff_progs", 4, 4, 4, nullptr); });
    make("an array map whose BTF value holds a spin lock", [] {
      uint32_t key_id = 0, value_id = 0;
      const int btf_fd = lock_btf_fd(key_id, value_id);
      if (btf_fd < 0) return -1;
      LIBBPF_OPTS(bpf_map_create_opts, locked, .btf_fd = static_cast<__u32>(btf_fd), .btf_key_type_id = key_id, .btf_value_type_id = value_id);
      return bpf_map_create(BPF_MAP_TYPE_ARRAY, "kdiff_locked", 4, 16, 1, &locked);
    });
    if (g_no_kernel.empty()) return out;
    std::fprintf(stderr, "kernel_diff_fuzz: SKIP the kernel for every input: %s\n", g_no_kernel.c_str());
    for (const int fd : out) close(fd);
    return std::vector<int>{};
  }();
  return fds;
}

// ebpfvm's maps, the same.
std::vector<ebpfvm::Map>& our_maps() {
  static std::vector<ebpfvm::Map> maps = [] {
    using ebpfvm::MapType;
    std::vector<ebpfvm::Map> out;
    for (const ebpfvm::MapSpec& spec : {ebpfvm::MapSpec{"kdiff", MapType::Array, 4, ebpfvm::gen::kBufferSize, 1, 0, nullptr},
                                        ebpfvm::MapSpec{"kdiff_ring", MapType::Ringbuf, 0, 0, 4096, 0, nullptr},
                                        ebpfvm::MapSpec{"kdiff_progs", MapType::ProgArray, 4, 4, 4, 0, nullptr},
                                        ebpfvm::MapSpec{"kdiff_locked", MapType::Array, 4, 16, 1, 0, nullptr, 0}}) {
      auto m = ebpfvm::Map::create(spec);
      if (!m) std::abort();
      out.push_back(*m);
    }
    return out;
  }();
  return maps;
}

// The generator's program with its buffer as the map's value (r9 = the looked-up value), the
// context saved where the helper shapes look for it.
std::string with_map_value(const std::string& text) {
  const std::string prologue = "*(u64 *)(r10 " + std::to_string(ebpfvm::gen::kCtxSlot) + ") = r1\n" +
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

// The program run as the loader runs a checked XDP program (its context loads rewritten, r1 the
// context) over a random packet, with random bytes in map 0's value, in the checked interpreter
// under the containment oracle (map value pointers checked at their offsets from the value): what
// ebpfvm claims, with the kernel or beyond it, must hold.
void check_contained(const ebpfvm::Program& prog, std::vector<ebpfvm::Map>& maps, const ebpfvm::VerifyReport& report,
                     const std::vector<uint32_t>& ctx_loads, ebpfvm::gen::Source& src) {
  const auto& states = report.abstract_states;
  const auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "verified, yet %s\n%s\n", why.c_str(), prog.disassemble().c_str());
    std::abort();
  };
  std::vector<uint8_t> bytes(prog.bytecode().begin(), prog.bytecode().end());
  // as the loader rewrites a verified program: the loads the verifier found (not those of code it
  // proved dead, which the unverified rewrite's own analysis would refuse)
  if (auto r = ebpfvm::detail::rewrite_ctx_loads(prog.data().decoded, ebpfvm::detail::xdp_ctx_fields(), ctx_loads, bytes); !r)
    fail("the context rewrite refuses it: " + r.error().to_string());
  auto rewritten = ebpfvm::Program::from_bytecode(bytes);
  if (!rewritten) fail("rewritten, it does not decode: " + rewritten.error().to_string());
  // The budget is the verifier's bound on the instructions of one run: a run past it fails.
  auto checked = ebpfvm::Interpreter::create(*rewritten, ebpfvm::HelperRegistry::builtin(),
                                             {ebpfvm::Safety::Checked, std::min<uint64_t>(report.max_insns, 50'000'000), 0}, maps);
  if (!checked) fail("the interpreter refuses it: " + checked.error().to_string());
  std::vector<uint8_t> value(ebpfvm::gen::kBufferSize), packet(src.below(300));
  for (auto& b : value) b = static_cast<uint8_t>(src.next());
  for (auto& b : packet) b = static_cast<uint8_t>(src.next());
  const uint32_t key = 0;
  if (!maps[0].update({reinterpret_cast<const uint8_t*>(&key), 4}, value)) std::abort();
  ebpfvm::XdpBuffer buf(packet);
  ebpfvm::detail::XdpCtx& x = buf.ctx();
  ebpfvm::detail::PooledRun pooled;  // the run's state, with the XDP context, as run_xdp gives it
  pooled.state().xdp = &x;
  const ebpfvm::Region ctx_region{&x, ebpfvm::detail::kXdpCtxVisible, false};
  ebpfvm::detail::ContainmentOracle oracle;
  oracle.add(nullptr, states);
  auto r = checked->run({{reinterpret_cast<uint64_t>(&x), 0, 0, 0, 0}, {}, std::span(&ctx_region, 1)});
  if (!r) fail("the checked run failed: " + r.error().to_string());
  if (!oracle.failure().empty()) fail("a state outside the verifier's: " + oracle.failure());
}

}  // namespace

// Empty when the kernel's verifier is asked; otherwise why not.
std::string ebpfvm_kernel_diff_unavailable() {
  kernel_maps();
  return g_no_kernel;
}

// Returns 1 when both accept, 2 when only the kernel does, 3 when only ebpfvm does (a deliberate
// difference, or code ebpfvm proved unreachable), 4 when only ebpfvm does and its states held on
// every run, 5 when ebpfvm accepts (its states held) and the kernel was not asked (`ask_kernel`
// false, or the kernel cannot be asked), 0 otherwise; aborts on a finding.
int ebpfvm_kernel_diff_one(const uint8_t* data, size_t size, bool ask_kernel) {
  static const std::vector<int> no_maps;
  const std::vector<int>& map_fds = ask_kernel ? kernel_maps() : no_maps;
  const bool kernel_here = !map_fds.empty();
  ebpfvm::gen::ByteSource src(data, size);
  const std::string text = with_map_value(ebpfvm::gen::program(src, 24, true, true));
  auto base = ebpfvm::assemble(text);
  if (!base) {
    std::fprintf(stderr, "%s\n%s\n", base.error().to_string().c_str(), text.c_str());
    std::abort();  // the generator only writes valid programs
  }
  std::vector<uint8_t> code = *base;
  mutate(code, src, 10);  // the prologue's 10 slots stay
  auto prog = ebpfvm::Program::from_bytecode(code);
  if (!prog) return 0;
  std::vector<ebpfvm::Map>& maps = our_maps();
  ebpfvm::VerifyOptions vo;
  vo.complexity_limit = 50'000;
  vo.max_loop_iterations = 1 << 9;  // summarised loops that run long would take the checked runs too long
  vo.record_states = true;
  // verify() as the loader runs it, for the context loads to rewrite
  std::vector<uint32_t> ctx_loads;
  ebpfvm::verifier::Input in;
  in.prog = &prog->data().decoded;
  in.helpers = &ebpfvm::HelperRegistry::builtin();
  in.options = vo;
  for (const ebpfvm::Map& m : maps) in.maps.push_back({&m.impl()->spec(), nullptr, m.impl()});
  in.type = ebpfvm::detail::prog_type_desc(ebpfvm::ProgType::Xdp);
  in.rewritten_loads = &ctx_loads;
  auto ours = ebpfvm::verifier::analyse(in);
  if (!ours) {
    if (!kernel_here || !kernel_verdict(code, map_fds, false).loaded) return 0;
    if (std::getenv("KDIFF_VERBOSE"))
      std::fprintf(stderr, "the kernel accepts, ebpfvm refuses: %s\n%s", ours.error().to_string().c_str(),
                   std::getenv("KDIFF_VERBOSE")[0] == '2' ? prog->disassemble().c_str() : "");
    return 2;
  }
  const auto& states = ours->abstract_states;
  if (!kernel_here || kernel_verdict(code, map_fds, false).loaded) {
    check_contained(*prog, maps, *ours, ctx_loads, src);
    return kernel_here ? 1 : 5;
  }
  const KernelVerdict kernel = kernel_verdict(code, map_fds, true);
  const auto& at = states->at;
  bool explained = kernel.insn >= 0 && (static_cast<size_t>(kernel.insn) >= at.size() || !at[static_cast<size_t>(kernel.insn)]);
  for (const char* d : kDeliberate) explained = explained || kernel.why.find(d) != std::string::npos;
  // Otherwise the kernel's bounds were looser than ebpfvm's (its register shifts past the width,
  // 32-bit division results, ...): ebpfvm's must then hold on every run, which the oracle checks
  // over several packets and map contents.
  for (int run = 0; run < (explained ? 1 : 8); ++run) check_contained(*prog, maps, *ours, ctx_loads, src);
  if (!explained && std::getenv("KDIFF_VERBOSE"))
    std::fprintf(stderr, "kernel refuses at insn %lld (%s); ebpfvm accepts and holds\n%s", static_cast<long long>(kernel.insn), kernel.why.c_str(),
                 std::getenv("KDIFF_VERBOSE")[0] == '2' ? prog->disassemble().c_str() : "");
  return explained ? 3 : 4;
}

#ifndef EBPFVM_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ebpfvm_kernel_diff_one(data, size, true);
  return 0;
}
#endif
