#include "kernel.hpp"

#include <bpf/bpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <set>
#include <sstream>

namespace ebpfvm::test::kernel {
namespace {

// ---- what the kernel is told to lack: EBPFVM_TEST_KERNEL_REFUSES=helper:54,map:27,prog:6 ----

bool simulated_refusal(const char* kind, uint32_t id) {
  static const std::set<std::string> refused = [] {
    std::set<std::string> out;
    std::stringstream list(std::getenv("EBPFVM_TEST_KERNEL_REFUSES") ? std::getenv("EBPFVM_TEST_KERNEL_REFUSES") : "");
    for (std::string item; std::getline(list, item, ',');) out.insert(item);
    return out;
  }();
  return refused.count(std::string(kind) + ":" + std::to_string(id)) != 0;
}
constexpr const char* kSimulated = " (simulated: EBPFVM_TEST_KERNEL_REFUSES)";

std::string prog_type_name(bpf_prog_type t) {
  const char* s = libbpf_bpf_prog_type_str(t);
  return s ? s : "program type " + std::to_string(t);
}

// "bpf_xdp_adjust_meta (54)" for the helpers ebpfvm knows, "#26" for the others.
std::string helper_name(uint32_t id) {
  const Helper* h = HelperRegistry::builtin().find(id);
  return h ? h->name + " (" + std::to_string(id) + ")" : "#" + std::to_string(id);
}

// The first line of a verifier log that contains `needle`, or "".
std::string log_line(const char* log, const char* needle) {
  const char* at = std::strstr(log, needle);
  if (!at) return "";
  const char* start = at;
  while (start > log && start[-1] != '\n') --start;
  const char* end = std::strchr(at, '\n');
  return end ? std::string(start, end) : std::string(start);
}

// libbpf's messages (the verifier log of a refused load among them), kept for a failure report.
std::string& libbpf_log() {
  static std::string log;
  return log;
}
int capture_libbpf(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[4096];
  const int n = std::vsnprintf(buf, sizeof buf, format, args);
  libbpf_log() += buf;
  return n;
}

// ---- the summary printed at exit ----

struct Tally {
  std::set<std::string> objects;
  size_t programs = 0, packets = 0;
  std::vector<std::string> skips;  // one line each, in order
  std::string nothing;             // why nothing could be compared, if so
  bool used = false;

  ~Tally() {
    if (!used) return;
    if (!nothing.empty()) {
      std::printf("kernel differential: NOTHING was compared with the kernel: %s\n", nothing.c_str());
    } else {
      std::printf("kernel differential: compared %zu objects, %zu program runs, %zu packets; skipped %zu\n", objects.size(),
                  programs, packets, skips.size());
      for (const std::string& s : skips) std::printf("  skipped %s\n", s.c_str());
    }
    std::fflush(stdout);
  }
};
Tally& tally() {
  static Tally t;
  t.used = true;
  return t;
}

void print_skip(const std::string& what, const std::string& why) {
  const std::string line = what + ": " + why;
  Tally& t = tally();
  if (std::find(t.skips.begin(), t.skips.end(), line) != t.skips.end()) return;
  t.skips.push_back(line);
  std::printf("SKIP %s\n", line.c_str());
  std::fflush(stdout);
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Why the kernel cannot run `p` (of `ours`'s object, same name): its type or a helper it calls.
std::string refuses_program(bpf_program* p, const Object& ours) {
  const bpf_prog_type type = bpf_program__type(p);
  if (std::string why = refuses_prog_type(type); !why.empty()) return why;
  auto loaded = ours.program(bpf_program__name(p));
  if (!loaded) return "";  // not a program ebpfvm loads: the kernel's load decides
  for (uint32_t id : helpers_called(loaded->code()))
    if (std::string why = refuses_helper(type, id); !why.empty()) return why;
  return "";
}

}  // namespace

const std::string& unavailable() {
  static const std::string why = [] {
    libbpf_set_print(capture_libbpf);
    if (simulated_refusal("prog", BPF_PROG_TYPE_XDP)) return std::string("kernel refuses program type xdp") + kSimulated;
    const bpf_insn prog[] = {{BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS}, {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "probe", "GPL", prog, 2, nullptr);
    if (fd < 0)
      return "this process may not load XDP programs (bpf(BPF_PROG_LOAD): " + std::string(std::strerror(errno)) +
             "; loading needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN)";
    close(fd);
    return std::string();
  }();
  return why;
}

bool skip_all() {
  const std::string& why = unavailable();
  if (why.empty()) return false;
  Tally& t = tally();
  if (t.nothing.empty()) {
    t.nothing = why;
    std::printf("SKIP every kernel comparison: %s\n", why.c_str());
    std::fflush(stdout);
  }
  return true;
}

std::string refuses_prog_type(bpf_prog_type type) {
  if (simulated_refusal("prog", type)) return "kernel refuses program type " + prog_type_name(type) + kSimulated;
  const int ok = libbpf_probe_bpf_prog_type(type, nullptr);
  if (ok == 1) return "";
  return "kernel refuses program type " + prog_type_name(type) + (ok < 0 ? std::string(": ") + std::strerror(-ok) : "");
}

std::string refuses_map_type(bpf_map_type type) {
  const char* s = libbpf_bpf_map_type_str(type);
  const std::string name = (s ? s : "type") + std::string(" (") + std::to_string(type) + ")";
  if (simulated_refusal("map", type)) return "kernel refuses map type " + name + kSimulated;
  const int ok = libbpf_probe_bpf_map_type(type, nullptr);
  if (ok == 1) return "";
  return "kernel refuses map type " + name + (ok < 0 ? std::string(": ") + std::strerror(-ok) : "");
}

// One call of the helper, as its only instruction. libbpf_probe_bpf_helper is not used: the
// libbpf of Debian 12 looks only for "unknown func", and newer kernels say "program of this type
// cannot use helper", which it takes as support. A refusal of the arguments (the probe passes
// none) means the kernel knows the helper for this type.
std::string refuses_helper(bpf_prog_type type, uint32_t helper) {
  static std::map<std::pair<bpf_prog_type, uint32_t>, std::string> cache;
  const auto key = std::pair{type, helper};
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const std::string what =
      "kernel refuses helper " + helper_name(helper) + " for " + prog_type_name(type);
  std::string why;
  if (simulated_refusal("helper", helper)) {
    why = what + kSimulated;
  } else {
    const bpf_insn prog[] = {{BPF_JMP | BPF_CALL, 0, 0, 0, static_cast<int32_t>(helper)},
                             {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
                             {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    char log[8192] = "";
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 1, .log_size = sizeof log, .log_buf = log);
    const int fd = bpf_prog_load(type, "helper_probe", "GPL", prog, 3, &opts);
    if (fd >= 0) close(fd);
    for (const char* refusal : {"invalid func ", "unknown func ", "cannot use helper "})
      if (std::string line = log_line(log, refusal); fd < 0 && !line.empty()) {
        why = what + " (\"" + line + "\")";
        break;
      }
  }
  return cache[key] = why;
}

std::vector<uint32_t> helpers_called(const Program& code) {
  std::set<uint32_t> ids;
  const auto bytes = code.bytecode();
  for (size_t at = 0; at + 8 <= bytes.size(); at += 8) {
    const bool call = bytes[at] == (BPF_JMP | BPF_CALL);
    const uint8_t src = bytes[at + 1] >> 4;  // 0: a helper; 1 a local call; 2 a kfunc
    if (!call || src != 0) continue;
    int32_t imm;
    std::memcpy(&imm, &bytes[at + 4], sizeof imm);
    ids.insert(static_cast<uint32_t>(imm));
  }
  return {ids.begin(), ids.end()};
}

KernelObject::KernelObject(const std::string& path) : name_(base_name(path)) {
  INFO(path);
  auto ours = Object::open(path);
  REQUIRE(ours.ok());
  REQUIRE(ours->load().ok());  // its linked code tells what each program calls
  (void)unavailable();         // installs the libbpf log capture
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  REQUIRE(obj);
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    if (std::string why = refuses_map_type(bpf_map__type(m)); !why.empty()) {
      print_skip(name_, why + " (map " + bpf_map__name(m) + ")");
      bpf_object__close(obj);
      return;
    }
  }
  bpf_program* p;
  bpf_object__for_each_program(p, obj) {
    if (std::string why = refuses_program(p, *ours); !why.empty()) {
      skipped_[bpf_program__name(p)] = why;
      print_skip(name_ + " " + bpf_program__name(p), why);
      bpf_program__set_autoload(p, false);
    }
  }
  libbpf_log().clear();
  if (bpf_object__load(obj) != 0) {
    bpf_object__close(obj);
    FAIL("the kernel refused " << path << " for a reason no probe explains; libbpf and the kernel's verifier said:\n"
                               << libbpf_log());
  }
  obj_ = obj;
}

KernelObject::~KernelObject() {
  if (obj_) bpf_object__close(obj_);
}

bool KernelObject::has(const std::string& program) const { return obj_ && !skipped_.count(program); }

std::pair<uint32_t, std::vector<uint8_t>> KernelObject::run(const std::string& program, const std::vector<uint8_t>& pkt) {
  bpf_program* p = bpf_object__find_program_by_name(obj_, program.c_str());
  REQUIRE(p);
  std::vector<uint8_t> out(8192);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(pkt.size()), .data_size_out = static_cast<uint32_t>(out.size()),
              .repeat = 1);
  const int err = bpf_prog_test_run_opts(bpf_program__fd(p), &opts);
  INFO("BPF_PROG_TEST_RUN of " << name_ << " " << program << ": " << std::strerror(-err));
  REQUIRE(err == 0);
  out.resize(opts.data_size_out);
  static bool corrupt = std::getenv("EBPFVM_TEST_KERNEL_CORRUPT") != nullptr;
  if (corrupt && !out.empty()) {  // once: the comparison must fail on it
    out[out.size() / 2] ^= 0x01;
    corrupt = false;
  }
  return {opts.retval, out};
}

KernelObject::SkbRun KernelObject::run_skb(const std::string& program, const std::vector<uint8_t>& pkt, const __sk_buff& ctx) {
  bpf_program* p = bpf_object__find_program_by_name(obj_, program.c_str());
  REQUIRE(p);
  SkbRun out;
  out.data.resize(16384);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(), .data_out = out.data.data(),
              .data_size_in = static_cast<uint32_t>(pkt.size()), .data_size_out = static_cast<uint32_t>(out.data.size()),
              .ctx_in = &ctx, .ctx_out = &out.ctx, .ctx_size_in = sizeof ctx, .ctx_size_out = sizeof out.ctx, .repeat = 1);
  const int err = bpf_prog_test_run_opts(bpf_program__fd(p), &opts);
  INFO("BPF_PROG_TEST_RUN of " << name_ << " " << program << ": " << std::strerror(-err));
  REQUIRE(err == 0);
  out.data.resize(opts.data_size_out);
  out.retval = opts.retval;
  return out;
}

std::vector<uint8_t> KernelObject::global_data(const char* section) {
  bpf_map* m = bpf_object__find_map_by_name(obj_, section);
  REQUIRE(m);
  std::vector<uint8_t> v(bpf_map__value_size(m));
  uint32_t zero = 0;
  REQUIRE(bpf_map__lookup_elem(m, &zero, sizeof zero, v.data(), v.size(), 0) == 0);
  return v;
}

void count_compared(const std::string& object, size_t packets) {
  Tally& t = tally();
  t.objects.insert(base_name(object));
  t.programs += 1;
  t.packets += packets;
}

}  // namespace ebpfvm::test::kernel
