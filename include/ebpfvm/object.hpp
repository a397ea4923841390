// BPF ELF objects as clang builds them (clang -O2 -g -target bpf, libbpf's bpf_helpers.h):
// open, look at and configure, load, run.
//
//   auto obj = ebpfvm::Object::open("firewall.o");          // parse: programs, maps, BTF
//   obj->set_global("cfg_port", ebpfvm::as_bytes<uint16_t>(53));   // const volatile variables
//   obj->load({});                                          // create maps, link, bind
//   auto prog = obj->program("xdp_firewall");
//   ebpfvm::XdpBuffer buf(packet);
//   auto res = prog->run_xdp(buf);                          // res->action == XDP_PASS ...
//
// Errors name the file, section, program and instruction, and the C source line when the object
// has BTF line info.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/error.hpp"
#include "ebpfvm/helpers.hpp"
#include "ebpfvm/jit.hpp"
#include "ebpfvm/interpreter.hpp"
#include "ebpfvm/maps.hpp"
#include "ebpfvm/program.hpp"
#include "ebpfvm/runtime.hpp"
#include "ebpfvm/skb.hpp"
#include "ebpfvm/verifier.hpp"
#include "ebpfvm/xdp.hpp"

namespace ebpfvm {

// Other: a program of a kind that is no packet program (tracing, cgroup, LSM, ...), as its
// section tells libbpf; objects hold them beside their packet programs, and they stay unloaded.
enum class ProgType : uint8_t { Unspec, Xdp, SchedCls, SocketFilter, Other };
std::string_view to_string(ProgType t);  // "xdp", "sched_cls", "socket_filter", "other", "unspec"
std::optional<ProgType> prog_type_from_string(std::string_view s);  // also "tc", "socket"
// The type libbpf infers from a section name: xdp* -> Xdp; tc*, classifier*, tcx/*, action*
// (sched_act, which runs as sched_cls) -> SchedCls; socket* -> SocketFilter, and Suricata's
// socket-filter sections (filter, loadbalancer, vlan_filter) too; kprobe/, tracepoint/, fentry/,
// cgroup/, lsm/, ... -> Other; anything else Unspec.
ProgType prog_type_from_section(std::string_view section);

struct ProgramInfo {
  std::string name;     // the function's symbol
  std::string section;  // its ELF section
  ProgType type = ProgType::Unspec;
  uint32_t insns = 0;   // 8-byte slots of the function itself (subprograms not counted)
};

enum class Engine : uint8_t { Interpreter, Jit };

struct LoadOptions {
  // Engine::Jit compiles every program to x86-64; it takes only verified programs.
  Engine engine = Engine::Interpreter;
  JitOptions jit;  // Engine::Jit: how to compile
  // Safety::Verified (the default): the verifier must prove each program safe, which then runs
  // without run-time checks. Safety::Checked skips the verifier: the interpreter checks every
  // memory access and helper argument, and a violation ends the run with Errc::RuntimeFault.
  Safety safety = Safety::Verified;
  VerifyOptions verify;  // the context is the program type's
  uint64_t insn_budget = 100'000'000;  // checked mode: instructions per run
  uint32_t workers = 1;                // per-CPU map slots: one per thread that runs programs
  // Memory the object's maps may take in all when full: what they preallocate (arrays, slots,
  // hash buckets) and, for maps that grow (hash, LRU, LPM trie, queue, stack), max_entries
  // entries. An object asking for more fails to load, naming its largest map, instead of letting
  // a program exhaust the host; a map that still finds no memory fails the update with -ENOMEM.
  uint64_t max_map_memory = 1ull << 30;
  Environment env;
  // Helpers added to the built-in Linux helpers; an id that exists replaces the built-in one.
  const HelperRegistry* helpers = nullptr;
};

// A source position from BTF line info.
struct SourceLine {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string text;
};

namespace detail {
struct ObjectData;
struct LoadedData;
}

// The XDP verdicts, with the kernel's values (scoped, so that <linux/bpf.h> can be included too).
enum class XdpAction : uint32_t { Aborted = 0, Drop = 1, Pass = 2, Tx = 3, Redirect = 4 };
std::string_view to_string(XdpAction a);  // "XDP_PASS", ... as the kernel names them

struct XdpRunOptions {
  uint32_t worker = 0;           // below LoadOptions::workers: per-CPU slot and PRNG stream
  uint32_t ingress_ifindex = 1;  // xdp_md.ingress_ifindex
  uint32_t rx_queue_index = 0;   // xdp_md.rx_queue_index
};

struct XdpResult {
  // User-provided, so that XdpResult() is not a zero-fill of the whole struct before the member
  // initialisers run (a per-packet cost).
  XdpResult() {}  // NOLINT(modernize-use-equals-default)
  XdpAction action = XdpAction::Aborted;  // r0, with values outside the five actions as Aborted
  uint64_t r0 = 0;                 // what the program returned
  RedirectTarget redirect;         // for XDP_REDIRECT
  uint64_t insns = 0;              // instructions executed (checked mode)
};

struct SkbRunOptions {
  uint32_t worker = 0;  // below LoadOptions::workers: per-CPU slot and PRNG stream
};

struct SkbResult {
  uint64_t r0 = 0;  // what the program returned
  // tc programs: r0 as a verdict (values the kernel does not name are kept: to_string says
  // "TC_ACT_UNKNOWN").
  TcAction tc_action = TcAction::Ok;
  // Socket filters: the bytes of the packet the socket keeps, r0 capped at the packet's length
  // (0: the packet is dropped).
  uint32_t keep = 0;
  RedirectTarget redirect;  // for TC_ACT_REDIRECT (bpf_redirect); flags hold BPF_F_INGRESS
  uint32_t clones = 0;      // copies bpf_clone_redirect sent
  uint64_t insns = 0;       // instructions executed (checked mode)
};

// A program linked with its subprograms, its maps bound, ready to run. Cheap to copy; safe to run
// from many threads at once (each with its own XdpRunOptions::worker).
class LoadedProgram {
 public:
  const std::string& name() const;
  const std::string& section() const;
  ProgType type() const;
  uint32_t id() const;          // for prog_array slots
  Engine engine() const;
  const Program& code() const;  // the linked, relocated and context-rewritten bytecode
  std::optional<SourceLine> source_line(uint32_t insn) const;
  // What the verifier reported when it accepted the program; null when loaded unverified.
  const VerifyReport* verify_report() const;

  Result<XdpResult> run_xdp(XdpBuffer& buffer, const XdpRunOptions& options = {}) const;
  // tc (sched_cls) and socket-filter programs, on an skb built from a frame (SkbBuffer), which
  // holds the packet and struct __sk_buff's fields as the program leaves them.
  Result<SkbResult> run_skb(SkbBuffer& skb, const SkbRunOptions& options = {}) const;
  // Any program type on raw memory: r1 = mem.data(), r2 = mem.size(). A program verified for N
  // bytes (LoadOptions::verify.memory_size) refuses less and runs on the first N bytes of more
  // (r2 = N; r1 = 0 when N is 0), as the verifier assumed.
  Result<uint64_t> run_raw(std::span<uint8_t> mem, uint32_t worker = 0) const;

  const std::shared_ptr<const detail::LoadedData>& data() const { return d_; }
  explicit LoadedProgram(std::shared_ptr<const detail::LoadedData> d) : d_(std::move(d)) {}

 private:
  std::shared_ptr<const detail::LoadedData> d_;
};

// Object::open(path) refuses what is not a regular file, files larger than this (the largest
// real-world BPF objects are a few MiB) and files that do not start as ELF, before reading them.
inline constexpr uint64_t kMaxObjectSize = 256ull << 20;
// The global data sections (.data, .bss, .rodata, ...) of one object add up to at most this.
inline constexpr uint64_t kMaxGlobalData = 1ull << 30;

class Object {
 public:
  static Result<Object> open(const std::string& path);
  static Result<Object> open(std::span<const uint8_t> bytes, const std::string& name);

  const std::string& name() const;
  // What the object had that was accepted though not as it should be (an object of old clang
  // with no ELF machine), one message each: tools show them, the library never prints.
  const std::vector<std::string>& warnings() const;
  const std::vector<ProgramInfo>& programs() const;
  // Maps the object declares: BTF .maps, the legacy maps section, and one array per global data
  // section (.rodata, .data, .bss, ... named after the section, as bpftool shows "obj.rodata").
  const std::vector<MapSpec>& map_specs() const;
  // Global variables (from BTF DATASEC, or the symbol table without BTF): name, section, size.
  struct Global {
    std::string name;
    std::string section;
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  const std::vector<Global>& globals() const;
  bool has_btf() const;

  // Before load(): set a global's initial value (its exact size), e.g. a `const volatile` config.
  Result<void> set_global(std::string_view name, std::span<const uint8_t> value);
  // Before load(): the type of a program whose section name does not tell it.
  Result<void> set_program_type(std::string_view program, ProgType type);
  // Before load: the map's max_entries, as libbpf's bpf_map__set_max_entries (maps an object
  // declares with 0 entries are sized by their own loader, as xdp-bench's are). Not for global
  // data sections, whose size is theirs.
  Result<void> set_max_entries(std::string_view map, uint32_t max_entries);

  // Creates the maps, links and relocates every program, applies context rewrites, binds helpers.
  Result<void> load(const LoadOptions& options = {});
  bool loaded() const;

  // After load(). A program by function name, or by section name when one program has it.
  Result<LoadedProgram> program(std::string_view name) const;
  Result<Map> map(std::string_view name) const;
  std::vector<Map> maps() const;
  // Every map as {"name": [entries in bpftool -j map dump shape], ...} (a prog array's values
  // name programs).
  std::string dump_maps_json() const;
  // The same, handed to `write` a piece at a time: only the maps `names` lists (all when empty;
  // a name the object lacks fails before anything is written), entries whose value is all zero
  // bytes left out with `nonzero`.
  Result<void> dump_maps_json(const std::function<void(std::string_view)>& write, std::span<const std::string> names = {},
                              bool nonzero = false) const;
  // Loads {"name": [entries], ...}. Every map named must exist before anything changes; each map's
  // entries are all checked before that map changes, and maps are loaded in document order.
  Result<void> load_maps_json(std::string_view json);

 private:
  explicit Object(std::shared_ptr<detail::ObjectData> d) : d_(std::move(d)) {}
  std::shared_ptr<detail::ObjectData> d_;
};

// Puts a program into a prog_array slot (the user side of bpf_map_update_elem on a prog array).
Result<void> set_tail_call(Map& prog_array, uint32_t index, const LoadedProgram& program);

template <class T>
std::vector<uint8_t> as_bytes(const T& v) {
  std::vector<uint8_t> b(sizeof v);
  std::memcpy(b.data(), &v, sizeof v);
  return b;
}

}  // namespace ebpfvm
