// JIT against native code and the interpreter: the kernels of bench/kernels.c, compiled natively
// (clang -O2) and to BPF (clang -target bpf: the default ISA, -mcpu=v3, and -mcpu=v4 when
// clang-19 built it), run in one process in interleaved rounds. Prints ns per run (best and median
// of the rounds), JIT/native (through JitProgram::run) and fn/native (the code called through
// JitProgram::function(), where the program has one, by the same loop as the native code: the
// code's own speed), interp/JIT, the JIT's
// compile time per program and what the compiler did (inlined lookups, direct and tail helper
// calls, aligned, vectorized and unrolled loops); then the fixed cost of LoadedProgram::run_xdp
// (bench/xdp_invoke.c) and compile times of real programs.
//
//   jit_bench [OBJECT:LABEL,...] [ROUNDS] [KERNEL | run_xdp]
//
// With JIT_BENCH_DUMP=DIR set, each kernel's machine code is also written to DIR/KERNEL.LABEL.bin,
// for `objdump -D -b binary -m i386:x86-64`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

extern "C" {
#define K(name) uint64_t native_##name(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
K(invoke) K(invoke_helper) K(invoke_stateful) K(alu_loop) K(checksum_1500) K(primes) K(log2_array) K(strcmp_1mib) K(copy_4k) K(switch_4k) K(parse_packet)
K(helper_loop) K(array_lookup) K(hash_lookup)
#undef K
struct native_md {
  uint32_t data, data_end, data_meta, ingress_ifindex;
};
uint64_t native_xdp_pass(native_md*);
uint64_t native_xdp_redirect_back(native_md*);

// What the native kernels call; the BPF kernels reach the same code as helpers.
[[gnu::noinline]] uint64_t bench_mix(uint64_t x) { return (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ull; }
uint64_t bench_array_native[256];
uint64_t (*bench_lookup)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*);
uint64_t (*bench_redirect)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*);
uint64_t bench_hash_map;
void* bench_lookup_user;
}

namespace {

using Clock = std::chrono::steady_clock;

uint64_t bench_mix_helper(uint64_t r1, uint64_t, uint64_t, uint64_t, uint64_t, void*) {
  return (r1 ^ (r1 >> 29)) * 0xbf58476d1ce4e5b9ull;
}

struct Kernel {
  const char* name;
  ebpfvm::JitProgram::Function native;  // r1 = the memory, as the JIT's code takes it
};
const Kernel kKernels[] = {
    {"invoke", native_invoke},           {"invoke_helper", native_invoke_helper}, {"invoke_stateful", native_invoke_stateful},
    {"alu_loop", native_alu_loop},       {"checksum_1500", native_checksum_1500},
    {"primes", native_primes},           {"log2_array", native_log2_array},   {"strcmp_1mib", native_strcmp_1mib},
    {"copy_4k", native_copy_4k},         {"switch_4k", native_switch_4k},     {"parse_packet", native_parse_packet},
    {"helper_loop", native_helper_loop}, {"array_lookup", native_array_lookup}, {"hash_lookup", native_hash_lookup},
};

// ns per call of f, over enough calls to take about 5 ms.
template <class F>
double time_one(F&& f) {
  uint64_t n = 1;
  for (;;) {
    const auto t0 = Clock::now();
    for (uint64_t i = 0; i < n; ++i) f();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    if (ns > 5e6 || n > (1u << 26)) return ns / static_cast<double>(n);
    n *= 2;
  }
}

// One machine-code loop for every function timed through it (native kernels and the JIT's code
// alike), so that neither gains from where its loop happens to land.
[[gnu::noinline]] double time_call(ebpfvm::JitProgram::Function f, uint64_t r1, uint64_t r2) {
  volatile uint64_t sink = 0;
  return time_one([&] { sink = sink + f(r1, r2, 0, 0, 0); });
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

ebpfvm::HelperRegistry registry() {
  ebpfvm::HelperRegistry r = ebpfvm::HelperRegistry::builtin();
  ebpfvm::Helper h;
  h.id = 1000;
  h.name = "bench_mix";
  h.fn = bench_mix_helper;
  h.proto.args[0] = ebpfvm::ArgKind::Anything;
  (void)r.add(h);
  return r;
}

// Array value k = 3k + 1; the hash holds the even keys, value 5k + 2.
bool fill_maps(ebpfvm::Object& obj) {
  for (ebpfvm::Map& m : obj.maps()) {
    for (uint32_t k = 0; k < 256; ++k) {
      const bool hash = m.name() == "bench_hash";
      if (hash && k % 2) continue;
      const uint64_t v = hash ? 5ull * k + 2 : 3ull * k + 1;
      uint8_t key[4], val[8];
      std::memcpy(key, &k, 4);
      std::memcpy(val, &v, 8);
      if (!m.update(key, val)) return false;
      if (!hash) bench_array_native[k] = v;
    }
    if (m.name() == "bench_hash") bench_hash_map = reinterpret_cast<uint64_t>(m.impl().get());
  }
  return true;
}

std::vector<uint8_t> bench_memory() {
  std::vector<uint8_t> mem((1u << 20) + 8192);
  for (size_t i = 0; i < (1u << 19); ++i) mem[i] = static_cast<uint8_t>(i * 7 + (i >> 8));
  const uint8_t pkt[] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6,
                         0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb};
  std::memcpy(mem.data(), pkt, sizeof pkt);
  std::memcpy(mem.data() + (1u << 19), mem.data(), 1u << 19);  // strcmp's halves are equal
  return mem;
}

std::string flags(const ebpfvm::JitStats& s) {
  std::ostringstream o;
  if (s.inlined_lookups) o << " inlined:" << s.inlined_lookups;
  if (s.direct_calls) o << " direct:" << s.direct_calls;
  if (s.table_calls) o << " table:" << s.table_calls;
  if (s.tail_helper_calls) o << " tail:" << s.tail_helper_calls;
  if (s.aligned_loops) o << " loops:" << s.aligned_loops;
  if (s.vectorized_loops) o << " vectorized:" << s.vectorized_loops;
  if (s.unrolled_loops) o << " unrolled:" << s.unrolled_loops;
  if (s.byte_pairs) o << " pairs:" << s.byte_pairs;
  if (s.sunk) o << " sunk:" << s.sunk;
  if (s.folded) o << " folded:" << s.folded;
  return o.str();
}

// Code size per eBPF instruction of each backend, on the kernels (any host compiles for both).
struct CodeSize {
  std::string kernel, isa;
  size_t insns, x64, a64;
};
std::vector<CodeSize> code_sizes;

void measure_code_size(const char* name, const std::string& label, const ebpfvm::Program& code, const ebpfvm::HelperRegistry& helpers,
                       const std::vector<ebpfvm::Map>& maps) {
  size_t bytes[2] = {};
  const ebpfvm::JitTarget targets[2] = {ebpfvm::JitTarget::X86_64, ebpfvm::JitTarget::AArch64};
  for (int t = 0; t < 2; ++t) {
    ebpfvm::JitOptions o;
    o.target = targets[t];
    auto c = ebpfvm::JitProgram::compile_trusted(code, helpers, maps, o);
    bytes[t] = c ? c->code_size() : 0;
  }
  code_sizes.push_back({name, label, code.slot_count(), bytes[0], bytes[1]});
}

void print_code_sizes() {
  std::printf("\n%-14s %-7s %8s %14s %14s %12s\n", "code size", "isa", "insns", "x86-64 B/insn", "aarch64 B/insn", "instr/insn");
  for (const CodeSize& c : code_sizes) {
    const double n = static_cast<double>(c.insns);
    // AArch64 instructions are 4 bytes each: its bytes per eBPF instruction / 4 is the instruction count.
    std::printf("%-14s %-7s %8zu %14.1f %14.1f %12.2f\n", c.kernel.c_str(), c.isa.c_str(), c.insns, static_cast<double>(c.x64) / n,
                static_cast<double>(c.a64) / n, static_cast<double>(c.a64) / 4 / n);
  }
  std::printf("(aarch64: compiled here, run only under emulation in the tests; its speed against native C needs arm64 hardware)\n");
}

// One object (one ISA version): every kernel, or just `only`. False on a failure.
bool run_object(const std::string& path, const std::string& label, int rounds, const std::string& only) {
  const ebpfvm::HelperRegistry helpers = registry();
  auto obj = ebpfvm::Object::open(path);
  if (!obj) {
    std::fprintf(stderr, "%s\n", obj.error().to_string().c_str());
    return false;
  }
  // The kernels loop up to 100,000 times, beyond what the verifier unrolls (and beyond the
  // kernel's limit too): they run as trusted code, linked by the loader, compiled and interpreted raw.
  // Raw memory, not the socket filters their section names (socket/NAME) would make them.
  for (const auto& p : obj->programs()) (void)obj->set_program_type(p.name, ebpfvm::ProgType::Unspec);
  ebpfvm::LoadOptions o;
  o.safety = ebpfvm::Safety::Checked;  // only to link; the runs below use the raw engines
  o.helpers = &helpers;
  if (auto r = obj->load(o); !r) {
    std::fprintf(stderr, "%s\n", r.error().to_string().c_str());
    return false;
  }
  if (!fill_maps(*obj)) {
    std::fprintf(stderr, "%s: its maps could not be filled\n", path.c_str());
    return false;
  }
  const std::vector<ebpfvm::Map> maps = obj->maps();
  std::vector<uint8_t> mem = bench_memory();
  for (const Kernel& k : kKernels) {
    if (!only.empty() && only != k.name) continue;
    auto linked = obj->program(k.name);
    if (!linked) {
      std::fprintf(stderr, "%s: missing\n", k.name);
      return false;
    }
    measure_code_size(k.name, label, linked->code(), helpers, maps);
    auto pj = ebpfvm::JitProgram::compile_trusted(linked->code(), helpers, maps);
    auto pi = ebpfvm::Interpreter::create(linked->code(), helpers, {ebpfvm::Safety::TrustedUnchecked}, maps);
    if (!pj || !pi) return false;
    if (const char* dir = std::getenv("JIT_BENCH_DUMP")) {
      const std::string file = std::string(dir) + "/" + k.name + "." + label + ".bin";
      if (FILE* f = std::fopen(file.c_str(), "wb")) {
        std::fwrite(pj->code().data(), 1, pj->code().size(), f);
        std::fclose(f);
      }
    }
    const uint64_t r1 = reinterpret_cast<uintptr_t>(mem.data());
    const uint64_t want = k.native(r1, mem.size(), 0, 0, 0);
    if (*pj->run(mem) != want || *pi->run(mem) != want) {
      std::fprintf(stderr, "%s (%s): results differ (native %llu)\n", k.name, label.c_str(), static_cast<unsigned long long>(want));
      return false;
    }
    std::vector<double> tn, tj, ti, tf;
    volatile uint64_t sink = 0;
    // Held as an embedder holds them, not through the Result of their creation (whose check would
    // be timed with every call).
    const ebpfvm::JitProgram& jit = *pj;
    const ebpfvm::Interpreter& interp = *pi;
    // The code called as a function, through the same loop as the native kernel.
    const ebpfvm::JitProgram::Function fn = jit.function();
    for (int r = 0; r < rounds; ++r) {
      tn.push_back(time_call(k.native, r1, mem.size()));
      tj.push_back(time_one([&] { sink = sink + *jit.run(mem); }));
      ti.push_back(time_one([&] { sink = sink + *interp.run(mem); }));
      if (fn) tf.push_back(time_call(fn, r1, mem.size()));
    }
    double compile_us = 1e30;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = Clock::now();
      auto compiled = ebpfvm::JitProgram::compile_trusted(linked->code(), helpers, maps);
      compile_us = std::min(compile_us, std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      if (!compiled) return false;
    }
    const double n = best(tn), j = best(tj), i = best(ti);
    char fn_ratio[16] = "-";
    if (fn) std::snprintf(fn_ratio, sizeof fn_ratio, "%.2fx", best(tf) / n);
    std::printf("%-14s %-7s %11.1f %11.1f %11.1f %9.2fx %9s %9.2fx %9.1f   (median %.1f / %.1f / %.1f)%s\n", k.name, label.c_str(), n, j,
                i, j / n, fn_ratio, i / j, compile_us, median(tn), median(tj), median(ti), flags(pj->stats()).c_str());
  }
  return true;
}

// The fixed cost of LoadedProgram::run_xdp (the JIT on a verified load), against a native call
// doing the program's work: the context set up, the run state (for a helper that records a
// redirect), and the result.
bool xdp_invocations(int rounds) {
  auto obj = ebpfvm::Object::open(EBPFVM_BENCH_XDP);
  ebpfvm::LoadOptions o;
  o.engine = ebpfvm::Engine::Jit;
  if (!obj || !obj->load(o)) {
    std::fprintf(stderr, "%s: load failed\n", EBPFVM_BENCH_XDP);
    return false;
  }
  std::printf("\n%-24s %11s %11s %12s\n", "run_xdp (JIT)", "native ns", "jit ns", "fixed cost");
  std::vector<uint8_t> packet(64, 0x5a);
  ebpfvm::XdpBuffer buffer(packet);
  const ebpfvm::XdpRunOptions opt;  // ingress_ifindex 1
  native_md md{0, 64, 0, opt.ingress_ifindex};
  const std::pair<const char*, uint64_t (*)(native_md*)> programs[] = {{"xdp_pass", native_xdp_pass},
                                                                       {"xdp_redirect_back", native_xdp_redirect_back}};
  for (const auto& [name, native] : programs) {
    auto prog = obj->program(name);
    if (!prog) return false;
    const ebpfvm::LoadedProgram& p = *prog;
    auto first = p.run_xdp(buffer, opt);
    if (!first || first->r0 != native(&md)) {
      std::fprintf(stderr, "%s: results differ\n", name);
      return false;
    }
    std::vector<double> tn, tj;
    volatile uint64_t sink = 0;
    for (int r = 0; r < rounds; ++r) {
      tn.push_back(time_one([&] { sink = sink + native(&md); }));
      tj.push_back(time_one([&] { sink = sink + p.run_xdp(buffer, opt)->r0; }));
    }
    std::printf("%-24s %11.1f %11.1f %9.1f ns   (median %.1f / %.1f)\n", name, best(tn), best(tj), best(tj) - best(tn), median(tn),
                median(tj));
  }
  return true;
}

// Compile time of real programs (the example firewall, libxdp's objects when installed).
void compile_times() {
  const ebpfvm::HelperRegistry& helpers = ebpfvm::HelperRegistry::builtin();
  std::printf("\n%-44s %8s %12s %14s\n", "program", "insns", "compile us", "us/250 insns");
  for (const std::string& path : {std::string(EBPFVM_BENCH_FIREWALL), std::string(EBPFVM_LIBXDP_OBJECTS "/xdp-dispatcher.o"),
                                 std::string(EBPFVM_LIBXDP_OBJECTS "/xsk_def_xdp_prog.o")}) {
    auto obj = ebpfvm::Object::open(path);
    if (!obj || !obj->load()) continue;
    for (const ebpfvm::ProgramInfo& info : obj->programs()) {
      const std::string& name = info.name;
      auto p = obj->program(name);
      if (!p) continue;
      double us = 1e30;
      for (int r = 0; r < 20; ++r) {
        const auto t0 = Clock::now();
        auto c = ebpfvm::JitProgram::compile_trusted(p->code(), helpers, obj->maps());
        us = std::min(us, std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        if (!c) break;
      }
      const size_t insns = p->code().slot_count();
      std::printf("%-44s %8zu %12.1f %14.1f\n", (path.substr(path.rfind('/') + 1) + ":" + name).c_str(), insns, us,
                  us * 250.0 / static_cast<double>(insns));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string objects = argc > 1 && argv[1][0] ? argv[1] : EBPFVM_BENCH_KERNELS;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  const std::string only = argc > 3 ? argv[3] : "";  // run just this kernel
  const ebpfvm::Helper* lookup = ebpfvm::HelperRegistry::builtin().find(1);
  bench_lookup = lookup->fn;
  bench_redirect = ebpfvm::HelperRegistry::builtin().find(23)->fn;
  bench_lookup_user = lookup->user;
  std::printf("%-14s %-7s %11s %11s %11s %10s %9s %10s %9s\n", "kernel", "isa", "native ns", "jit ns", "interp ns", "jit/native",
              "fn/native", "interp/jit", "compile us");
  std::stringstream list(objects);
  for (std::string item; std::getline(list, item, ',');) {
    const size_t colon = item.rfind(':');
    if (!run_object(item.substr(0, colon), colon == std::string::npos ? "" : item.substr(colon + 1), rounds, only)) return 1;
  }
  if ((only.empty() || only == "run_xdp") && !xdp_invocations(rounds)) return 1;
  print_code_sizes();
  if (only.empty()) compile_times();
  return 0;
}
