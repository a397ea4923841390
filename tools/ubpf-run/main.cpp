// ubpf-run: run XDP programs from BPF objects over pcap captures.
//   ubpf-run PROG.o --pcap IN.pcap [options]     run (the default subcommand)
//   ubpf-run disasm PROG.o [--prog NAME]          linked code, with maps and source lines
//   ubpf-run maps PROG.o                          the maps the object declares
// Exit status: 0 ran, 1 the object did not load, 2 usage error, 3 runtime fault.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <mutex>
#include <sstream>

#include "common.hpp"
#include "live.hpp"
#include "pcap.hpp"
#include "runner.hpp"
#include "spec_test.hpp"

namespace {

using ebpfvm::Error;
using ebpfvm::Object;

constexpr int kLoadFailure = 1, kUsage = 2, kFault = 3;

// SIGINT or SIGTERM: the run stops at a packet boundary, writes what it has (as tcpdump -w
// does), marks the summary interrupted, and exits 128 + the signal.
std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal.store(sig); }
void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string json_quote(const std::string& x) {
  std::string out = "\"";
  for (unsigned char c : x) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

// With --json a failure is one JSON object on standard output too, for scripts:
// {"error": {"code": ..., "message": ..., "file": ..., "section": ..., "program": ..., "insn": N,
// "line": N}, "exit": N} (the parts the error knows).
bool g_json_errors = false;

int fail(int code, const std::string& msg, const Error* e = nullptr) {
  std::fprintf(stderr, "ubpf-run: %s\n", msg.c_str());
  if (!g_json_errors) return code;
  std::string j = "{\"error\":{";
  if (e) j += "\"code\":" + json_quote(ebpfvm::to_string(e->code)) + ",";
  j += "\"message\":" + json_quote(e ? e->message : msg);
  if (e) {
    for (const auto& [key, text] : {std::pair{"file", &e->where.file}, {"section", &e->where.section}, {"program", &e->where.program}})
      if (!text->empty()) j += std::string(",\"") + key + "\":" + json_quote(*text);
    if (e->where.insn) j += ",\"insn\":" + std::to_string(*e->where.insn);
    if (!e->where.function.empty()) j += ",\"function\":" + json_quote(e->where.function);
    if (e->where.line) j += ",\"line\":" + std::to_string(*e->where.line);
    if (!e->where.source.empty()) j += ",\"source\":" + json_quote(e->where.source);
  }
  std::printf("%s},\"exit\":%d}\n", j.c_str(), code);
  return code;
}
int fail(int code, const Error& e) {
  std::string msg = e.to_string();
  // the library names its option; here it is a flag
  if (msg.find("LoadOptions::max_map_memory") != std::string::npos) msg += " (raise it with --max-map-memory SIZE)";
  return fail(code, msg, &e);
}

struct FilterCli {
  std::vector<std::string> words;  // the expression, as tcpdump takes it: its words joined by spaces
  std::string read, write, cbpf;
  int dump = 0;  // -d: the eBPF; -dd: the classic listing (tcpdump -d); -ddd: tcpdump -ddd's numbers
  bool count_only = false, no_optimize = false;
};

struct Options {
  FilterCli filter;
  ubpf::LiveConfig live;  // --iface
  ubpf::ReplayConfig replay;
  std::string filter_expr;  // run --filter
  std::string object, prog, section, type, engine = "jit", pcap, write, write_actions, direction = "ingress", ndjson,
      map_load, map_dump, printk, links, neighbours;
  std::vector<std::string> globals, tail_calls, dump_maps, map_sizes, routes;
  uint64_t count = 0, repeat = 1, seed = 0, budget = 100'000'000, max_map_memory = 1ull << 30;
  uint32_t ifindex = 1, rxq = 0, workers = 1;
  bool json = false, no_verify = false, verbose = false, ndjson_bytes = false, nonzero = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// NAME=VALUE: an integer (decimal or 0x hex) stored little-endian in the variable's size, or
// hex:BYTES for any size.
ebpfvm::Result<void> set_global(Object& obj, const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--global " + arg + ": expected NAME=VALUE");
  const std::string name = arg.substr(0, eq), value = arg.substr(eq + 1);
  const Object::Global* g = nullptr;
  for (const auto& x : obj.globals())
    if (x.name == name) g = &x;
  if (!g) return obj.set_global(name, {});  // names the missing variable
  std::vector<uint8_t> bytes;
  if (value.rfind("hex:", 0) == 0) {
    auto b = ebpfvm::tools::parse_hex(value.substr(4));
    if (!b) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--global " + name + ": " + b.error().message);
    bytes = *b;
  } else {
    errno = 0;
    char* end = nullptr;
    const bool neg = !value.empty() && value[0] == '-';
    uint64_t v = neg ? static_cast<uint64_t>(std::strtoll(value.c_str(), &end, 0)) : std::strtoull(value.c_str(), &end, 0);
    if (value.empty() || *end || errno) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--global " + name + ": '" + value + "' is not a number (use hex:BYTES for raw bytes)");
    if (g->size > 8) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--global " + name + " is " + std::to_string(g->size) + " bytes: give it as hex:BYTES");
    if (!neg && g->size < 8 && v >> (g->size * 8)) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--global " + name + ": " + value + " does not fit in " + std::to_string(g->size) + " bytes");
    bytes.resize(g->size);
    std::memcpy(bytes.data(), &v, g->size);
  }
  return obj.set_global(name, bytes);
}

// MAP[INDEX]=PROG: the program in slot INDEX of the prog array MAP (bpftool's `map update ...
// key INDEX value name PROG`).
ebpfvm::Result<void> set_tail_call_arg(Object& obj, const std::string& arg) {
  const size_t open = arg.find('['), close = arg.find("]=");
  const auto bad = [&](const std::string& why) { return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--tail-call " + arg + ": " + why); };
  if (open == std::string::npos || close == std::string::npos || close < open || open == 0 || close + 2 == arg.size())
    return bad("expected MAP[INDEX]=PROG");
  const std::string index_text = arg.substr(open + 1, close - open - 1);
  errno = 0;
  char* end = nullptr;
  const unsigned long long index = std::strtoull(index_text.c_str(), &end, 0);
  if (index_text.empty() || *end || errno || index_text[0] == '-' || index > UINT32_MAX) return bad("'" + index_text + "' is not an index");
  auto map = obj.map(arg.substr(0, open));
  if (!map) return bad(map.error().message);
  auto prog = obj.program(arg.substr(close + 2));
  if (!prog) return bad(prog.error().message);
  if (map->spec().type != ebpfvm::MapType::ProgArray) return bad("map '" + map->name() + "' is not a prog_array");
  if (auto r = ebpfvm::set_tail_call(*map, static_cast<uint32_t>(index), *prog); !r) return bad(r.error().message);
  return {};
}

ebpfvm::Result<std::string> read_text(const std::string& path) {
  auto b = ebpfvm::tools::read_file(path);
  if (!b) return b.error();
  return std::string(b->begin(), b->end());
}

// Opens the object and picks the program: --prog, else --section, else the only program.
ebpfvm::Result<std::string> pick_program(const Object& obj, const Options& o) {
  if (!o.prog.empty()) return o.prog;
  std::vector<std::string> names;
  for (const auto& p : obj.programs())
    if (o.section.empty() || p.section == o.section) names.push_back(p.name);
  if (names.size() == 1) return names[0];
  // Several: the one packet program among tracing (and other) programs is the one to run.
  std::vector<std::string> packet;
  for (const auto& p : obj.programs())
    if ((o.section.empty() || p.section == o.section) && p.type != ebpfvm::ProgType::Other) packet.push_back(p.name);
  if (packet.size() == 1) return packet[0];
  std::string all;
  for (const auto& p : obj.programs()) all += "\n  " + p.name + " (section " + p.section + ")";
  if (names.empty()) return ebpfvm::make_error(ebpfvm::Errc::NotFound, "no program in section '" + o.section + "'; programs:" + all);
  return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "the object has several programs; choose one with --prog:" + all);
}

// NAME=N: the map's max_entries (libbpf's bpf_map__set_max_entries), before load.
ebpfvm::Result<void> set_map_size(Object& obj, const std::string& arg) {
  const size_t eq = arg.find('=');
  const auto bad = [&](const std::string& why) { return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--map-size " + arg + ": " + why); };
  if (eq == std::string::npos || eq == 0) return bad("expected NAME=N");
  const std::string n = arg.substr(eq + 1);
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(n.c_str(), &end, 0);
  if (n.empty() || *end || errno || n[0] == '-' || v > UINT32_MAX) return bad("'" + n + "' is not a number of entries");
  if (auto r = obj.set_max_entries(arg.substr(0, eq), static_cast<uint32_t>(v)); !r) return bad(r.error().message);
  return {};
}

ebpfvm::Result<Object> open_object(const Options& o, const std::string& program) {
  auto obj = Object::open(o.object);
  if (!obj) return obj.error();
  static bool warned = false;  // verify opens the object again for each rejection
  if (!warned)
    for (const std::string& w : obj->warnings()) std::fprintf(stderr, "ubpf-run: warning: %s: %s\n", o.object.c_str(), w.c_str());
  warned = true;
  if (!o.type.empty()) {
    auto t = ebpfvm::prog_type_from_string(o.type);
    if (!t) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--type " + o.type + ": expected xdp, tc or socket");
    for (const auto& p : obj->programs())
      if (program.empty() || p.name == program) (void)obj->set_program_type(p.name, *t);
  }
  return obj;
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= 10'000'000) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else if (b >= 10'000) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
  return buf;
}

void print_table(const Options& o, const ebpfvm::LoadedProgram& p, const ubpf::Totals& t) {
  std::printf("program  %s: %s (section %s, %s, %zu instructions)\n", o.object.c_str(), p.name().c_str(), p.section().c_str(),
              std::string(ebpfvm::to_string(p.type())).c_str(), p.code().slot_count());
  if (const ebpfvm::VerifyReport* v = p.verify_report())
    std::printf("engine   %s, verified (%" PRIu64 " instructions analysed in %.1f ms)\n",
                p.engine() == ebpfvm::Engine::Jit ? (std::string(ebpfvm::to_string(ebpfvm::host_jit_target())) + " JIT").c_str() : "interpreter",
                v->insns_analysed, v->micros / 1e3);
  else
    std::printf("engine   interpreter, not verified (--no-verify): every access checked at run time\n");
  if (o.live.ifaces.empty())
    std::printf("input    %s: %" PRIu64 " packets, %s, %u worker%s%s\n", o.pcap.c_str(), t.packets, human_bytes(t.bytes_in).c_str(),
                o.workers, o.workers == 1 ? "" : "s", t.stopped ? " (interrupted)" : "");
  else {
    std::string ifaces;
    for (const std::string& i : o.live.ifaces) ifaces += (ifaces.empty() ? "" : ", ") + i;
    std::printf("input    live on %s (AF_XDP): %" PRIu64 " packets, %s, one worker per queue%s\n", ifaces.c_str(), t.packets,
                human_bytes(t.bytes_in).c_str(), t.stopped ? " (stopped by a signal)" : "");
  }
  if (!o.filter_expr.empty())
    std::printf("filter   '%s': %" PRIu64 " packets (%s) filtered out, not run\n", o.filter_expr.c_str(), t.filtered,
                human_bytes(t.filtered_bytes).c_str());
  const ubpf::Verdicts& v = ubpf::verdicts_for(p.type());
  const int w = p.type() == ebpfvm::ProgType::SchedCls ? 18 : 14;  // TC_ACT_RECLASSIFY is the longest name
  std::printf("\n%-*s %12s %8s %14s\n", w, p.type() == ebpfvm::ProgType::Xdp ? "action" : "verdict", "packets", "%", "bytes");
  for (size_t a = 0; a < v.names.size(); ++a) {
    if (p.type() == ebpfvm::ProgType::SchedCls && !t.actions[a] && a != 1 && a != 3) continue;  // tc: OK and SHOT always, the rest when seen
    std::printf("%-*s %12" PRIu64 " %7.1f%% %14" PRIu64 "\n", w, v.names[a].c_str(), t.actions[a],
                t.packets ? 100.0 * t.actions[a] / t.packets : 0.0, t.action_bytes[a]);
  }
  for (const auto& [target, n] : t.redirects) std::printf("  -> %-30s %8" PRIu64 "\n", target.c_str(), n);
  if (p.type() == ebpfvm::ProgType::SocketFilter) std::printf("bytes kept %" PRIu64 " of %" PRIu64 "\n", t.kept_bytes, t.bytes_in);
  if (t.clones) std::printf("clones   %" PRIu64 " (bpf_clone_redirect)\n", t.clones);
  if (t.not_run) std::printf("not run  %" PRIu64 " frames shorter than an Ethernet header (no skb can hold them)\n", t.not_run);
  if (!o.live.ifaces.empty()) {  // the wall time is mostly waiting for packets: rates, not costs
    std::printf("\ntime     %.3f s live, %.0f packets/s on average; start-up %.3f ms (open, load, verify, compile)\n", t.wall_ns / 1e9,
                t.wall_ns ? t.packets * 1e9 / static_cast<double>(t.wall_ns) : 0.0, t.startup_ns / 1e6);
    return;
  }
  const double runs = static_cast<double>(t.packets) * static_cast<double>(o.repeat);
  std::printf("\ntime     %.3f s; program %.1f ns/packet, end to end %.1f ns/packet (%.2f Mpps)\n", t.wall_ns / 1e9,
              runs ? t.program_ns / runs : 0.0, t.packets ? static_cast<double>(t.wall_ns) / t.packets : 0.0,
              t.wall_ns ? t.packets * 1e3 / static_cast<double>(t.wall_ns) : 0.0);
  std::printf("         start-up %.3f ms (open, load, verify, compile); reading %.3f ms and writing %.3f ms, beside the program\n",
              t.startup_ns / 1e6, t.read_ns / 1e6, t.write_ns / 1e6);
}


// `extra`: more members, each starting with a comma (a live run's interfaces).
void print_json(const Options& o, const ebpfvm::LoadedProgram& p, const ubpf::Totals& t, const std::string& extra = "") {
  std::ostringstream s;
  const auto q = json_quote;
  s << "{\"file\":" << q(o.object) << ",\"program\":" << q(p.name()) << ",\"section\":" << q(p.section())
    << ",\"type\":" << q(std::string(ebpfvm::to_string(p.type()))) << ",\"instructions\":" << p.code().slot_count()
    << ",\"engine\":\"" << (p.engine() == ebpfvm::Engine::Jit ? "jit" : "interp") << "\",\"verified\":" << (p.verify_report() ? "true" : "false") << ",\"workers\":" << o.workers << ",\"packets\":" << t.packets << ",\"filtered\":" << t.filtered << ",\"interrupted\":" << (t.stopped ? "true" : "false") << ",\"actions\":{";
  const ubpf::Verdicts& v = ubpf::verdicts_for(p.type());
  for (size_t a = 0; a < v.names.size(); ++a) s << (a ? "," : "") << q(v.names[a]) << ":" << t.actions[a];
  s << "},\"bytes\":{";
  for (size_t a = 0; a < v.names.size(); ++a) s << (a ? "," : "") << q(v.names[a]) << ":" << t.action_bytes[a];
  s << "}";
  if (p.type() == ebpfvm::ProgType::SocketFilter) s << ",\"bytes_kept\":" << t.kept_bytes;
  if (p.type() == ebpfvm::ProgType::SchedCls) s << ",\"clones\":" << t.clones;
  if (p.type() != ebpfvm::ProgType::Xdp) s << ",\"not_run\":" << t.not_run;
  s << ",\"redirects\":{";
  bool first = true;
  for (const auto& [target, n] : t.redirects) {
    s << (first ? "" : ",") << q(target) << ":" << n;
    first = false;
  }
  const double runs = static_cast<double>(t.packets) * static_cast<double>(o.repeat);
  s << "},\"ns_per_packet\":" << (runs ? t.program_ns / runs : 0.0)
    << ",\"ns_per_packet_total\":" << (t.packets ? static_cast<double>(t.wall_ns) / t.packets : 0.0)
    << ",\"packets_per_second\":" << (t.wall_ns ? t.packets * 1e9 / static_cast<double>(t.wall_ns) : 0.0)
    << ",\"time_ns\":{\"startup\":" << t.startup_ns << ",\"read\":" << t.read_ns << ",\"program\":" << t.program_ns
    << ",\"write\":" << t.write_ns << ",\"wall\":" << t.wall_ns << "}" << extra << "}";
  std::puts(s.str().c_str());
}

// The network bpf_fib_lookup sees: the links of --links (`ip -j addr show`; this host's own when
// routes or neighbours come without it), then --routes (`ip -j route show`, repeatable: IPv4 and
// IPv6 listings) and --neighbours (`ip -j neigh show`). Errors name the file.
ebpfvm::Result<ebpfvm::Fib> read_fib(const Options& o) {
  ebpfvm::Fib fib;
  const auto add = [&](const std::string& flag, const std::string& path, auto method) -> ebpfvm::Result<void> {
    auto text = read_text(path);
    if (!text) return text.error();
    if (auto r = (fib.*method)(*text); !r) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, flag + " " + path + ": " + r.error().message);
    return {};
  };
  if (!o.links.empty()) {
    if (auto r = add("--links", o.links, &ebpfvm::Fib::add_links_json); !r) return r.error();
  } else if (!o.routes.empty() || !o.neighbours.empty()) {
    if (auto r = fib.add_host_links(); !r) return r.error();
  }
  for (const std::string& path : o.routes)
    if (auto r = add("--routes", path, &ebpfvm::Fib::add_routes_json); !r) return r.error();
  if (!o.neighbours.empty())
    if (auto r = add("--neighbours", o.neighbours, &ebpfvm::Fib::add_neighbours_json); !r) return r.error();
  return fib;
}

// The live half of cmd_run, once the program is loaded: until a signal, --duration or --count; then
// the same outputs as a capture's run. Ctrl-C is how a live run ends, so it exits 0.
int run_live(const Options& o, Object& obj, const ebpfvm::LoadedProgram& prog, const ubpf::RunConfig& cfg, ubpf::CaptureWriter* writer,
             std::optional<ebpfvm::tools::OutputFile>& printk_file, std::optional<ebpfvm::tools::OutputFile>& dump_file,
             std::chrono::steady_clock::time_point startup) {
  ubpf::LiveConfig lc = o.live;
  lc.count = o.count;
  lc.writer = writer;
  lc.write_actions = cfg.write_actions;
  lc.stop = &g_signal;
  lc.live = o.json ? stderr : stdout;
  const uint64_t startup_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - startup).count());
  auto t = ubpf::run_live(prog, obj, lc);
  if (!t) return fail(t.error().code == ebpfvm::Errc::InvalidArgument ? kUsage : kLoadFailure, t.error());
  t->totals.startup_ns = startup_ns;
  if (writer)
    if (auto r = writer->finish(); !r) return fail(kUsage, r.error().message);
  if (dump_file) {
    FILE* f = dump_file->file();
    (void)obj.dump_maps_json([f](std::string_view piece) { std::fwrite(piece.data(), 1, piece.size(), f); }, o.dump_maps, o.nonzero);
    std::fputc('\n', f);
  }
  for (auto* file : {&printk_file, &dump_file})
    if (*file)
      if (auto r = (*file)->commit(); !r) return fail(kUsage, r.error().message);
  if (o.json) {
    print_json(o, prog, t->totals, ubpf::live_ports_json(*t));
  } else {
    print_table(o, prog, t->totals);
    ubpf::print_live_ports(*t);
  }
  return 0;
}

int cmd_run(const Options& o) {
  if (o.engine != "interp" && o.engine != "jit") return fail(kUsage, "--engine " + o.engine + ": expected jit or interp");
  if (o.engine == "jit" && o.no_verify)
    return fail(kUsage, "--no-verify runs the program unproven, so only the checked interpreter may run it: add --engine interp");
  if (o.workers == 0 || o.workers > 256) return fail(kUsage, "--workers must be 1 to 256");
  if (!o.type.empty() && !ebpfvm::prog_type_from_string(o.type)) return fail(kUsage, "--type " + o.type + ": expected xdp, tc or socket");
  if (o.repeat == 0) return fail(kUsage, "--repeat must be at least 1");
  const bool live = !o.live.ifaces.empty();
  if (live == !o.pcap.empty()) return fail(kUsage, "give a capture (--pcap FILE) or live interfaces (--iface IF[@QUEUE]), one of them");
  if (live) {
    for (const auto& [flag, given] : {std::pair{"--filter", !o.filter_expr.empty()}, {"--ndjson", !o.ndjson.empty()}, {"--repeat", o.repeat != 1},
                                      {"--workers", o.workers != 1}, {"--direction", o.direction != "ingress"}})
      if (given) return fail(kUsage, std::string(flag) + " is for captures; live runs (--iface) take one worker per queue and run every frame once");
  } else {
    for (const auto& [flag, given] : {std::pair{"--duration", o.live.duration != 0}, {"--pass-to-kernel", !o.live.pass_to_kernel.empty()},
                                      {"--cpus", !o.live.cpus.empty()}, {"--copy/--zero-copy", o.live.copy || o.live.zero_copy},
                                      {"--xdp-mode", o.live.xdp_mode != "auto"}, {"--xsk-map", !o.live.xsk_map.empty()}})
      if (given) return fail(kUsage, std::string(flag) + " is for live runs: give --iface IF[@QUEUE]");
  }
  ubpf::RunConfig cfg;
  if (o.direction != "ingress" && o.direction != "egress") return fail(kUsage, "--direction " + o.direction + ": expected ingress or egress");
  cfg.egress = o.direction == "egress";
  // --write-actions' names, checked now against every type's (and against the program's once it is loaded)
  std::vector<std::string> write_names;
  {
    std::stringstream ss(o.write_actions);
    for (std::string a; std::getline(ss, a, ',');) {
      bool known = a == "all";
      for (ebpfvm::ProgType t : {ebpfvm::ProgType::Xdp, ebpfvm::ProgType::SchedCls, ebpfvm::ProgType::SocketFilter})
        for (const std::string& f : ubpf::verdicts_for(t).flags) known = known || a == f;
      if (!known)
        return fail(kUsage, "--write-actions " + a + ": expected verdicts of the program's type (XDP: aborted, drop, pass, tx, redirect; "
                            "tc: ok, shot, redirect, pipe, reclassify, unspec, stolen, queued, repeat, trap, unknown; socket: accept, drop) or all");
      write_names.push_back(a);
    }
  }
  std::unique_ptr<ubpf::CaptureReader> input;
  if (!live) {
    auto in = ubpf::CaptureReader::open(o.pcap, &g_signal);
    if (!in) return fail(kUsage, in.error());
    input = std::move(*in);
  }
  // Outputs: none may be an input, and each is opened now, so that a bad path fails before the
  // first packet. What is not committed at the end (a fault, an error) leaves no file behind.
  std::vector<std::pair<std::string, std::string>> inputs{
      {"the object", o.object}, {"--pcap", o.pcap}, {"--map-load", o.map_load}, {"--links", o.links}, {"--neighbours", o.neighbours}};
  for (const std::string& r : o.routes) inputs.emplace_back("--routes", r);
  if (auto r = ebpfvm::tools::refuse_overwriting_inputs(inputs, {{"-w", o.write}, {"--ndjson", o.ndjson}, {"--map-dump", o.map_dump}, {"--printk", o.printk}});
      !r)
    return fail(kUsage, r.error().message);
  std::optional<ebpfvm::tools::OutputFile> printk_file, ndjson_file, dump_file;
  std::unique_ptr<ubpf::CaptureWriter> writer;
  for (auto [path, file] : {std::pair{&o.printk, &printk_file}, std::pair{&o.ndjson, &ndjson_file}, std::pair{&o.map_dump, &dump_file}}) {
    if (path->empty()) continue;
    auto f = ebpfvm::tools::OutputFile::open(*path);
    if (!f) return fail(kUsage, f.error().message);
    file->emplace(std::move(*f));
  }
  if (!o.write.empty()) {
    auto f = ebpfvm::tools::OutputFile::open(o.write);
    if (!f) return fail(kUsage, f.error().message);
    writer = ubpf::CaptureWriter::create(std::move(*f), ends_with(o.write, ".pcapng"), live || input->nanosecond());
    cfg.writer = writer.get();
  }
  if (ndjson_file) cfg.ndjson = ndjson_file->file();
  cfg.ndjson_bytes = o.ndjson_bytes;

  const auto startup = std::chrono::steady_clock::now();
  auto preliminary = Object::open(o.object);
  if (!preliminary) return fail(kLoadFailure, preliminary.error());
  auto program = pick_program(*preliminary, o);
  if (!program) return fail(kUsage, program.error());
  auto obj = open_object(o, *program);
  if (!obj) return fail(kLoadFailure, obj.error());
  for (const std::string& m : o.map_sizes)
    if (auto r = set_map_size(*obj, m); !r) return fail(kUsage, r.error());
  for (const std::string& g : o.globals)
    if (auto r = set_global(*obj, g); !r) return fail(kUsage, r.error());
  if ((!o.dump_maps.empty() || o.nonzero) && o.map_dump.empty()) return fail(kUsage, "--maps and --nonzero choose what --map-dump writes: give --map-dump FILE");
  for (const std::string& m : o.dump_maps) {
    const auto specs = obj->map_specs();
    if (std::none_of(specs.begin(), specs.end(), [&](const ebpfvm::MapSpec& s) { return s.name == m; }))
      return fail(kUsage, "--maps: the object has no map '" + m + "'");
  }

  std::mutex printk_mu;
  FILE* printk_out = printk_file ? printk_file->file() : stderr;
  ebpfvm::LoadOptions lo;
  lo.workers = live ? static_cast<uint32_t>(ubpf::live_workers(o.live)) : o.workers;
  lo.insn_budget = o.budget;
  lo.max_map_memory = o.max_map_memory;
  if (o.engine == "jit") lo.engine = ebpfvm::Engine::Jit;
  if (o.no_verify) lo.safety = ebpfvm::Safety::Checked;
  lo.env.seed = o.seed;
  auto fib = read_fib(o);
  if (!fib) return fail(kUsage, fib.error());
  lo.env.fib = std::move(*fib);
  lo.env.printk = [&](uint32_t w, std::string_view m) {
    std::lock_guard lk(printk_mu);
    std::fprintf(printk_out, "[%u] %.*s\n", w, static_cast<int>(m.size()), m.data());
  };
  if (auto r = obj->load(lo); !r) return fail(kLoadFailure, r.error());
  auto prog = obj->program(*program);
  if (!prog) return fail(kLoadFailure, prog.error());
  const ebpfvm::ProgType type = prog->type();
  if (type != ebpfvm::ProgType::Xdp && type != ebpfvm::ProgType::SchedCls && type != ebpfvm::ProgType::SocketFilter)
    return fail(kUsage, "program '" + prog->name() + "' is " + std::string(ebpfvm::to_string(type)) +
                            ": ubpf-run runs xdp, tc (sched_cls) and socket-filter programs (give --type xdp|tc|socket if its section name misleads)");
  cfg.type = type;
  const ubpf::Verdicts& verdicts = ubpf::verdicts_for(type);
  cfg.write_actions = verdicts.write_default;
  if (!write_names.empty()) cfg.write_actions.fill(false);
  for (const std::string& a : write_names) {
    bool known = false;
    for (size_t i = 0; i < verdicts.flags.size(); ++i)
      if (a == verdicts.flags[i] || a == "all") cfg.write_actions[i] = known = true;
    if (!known) return fail(kUsage, "--write-actions " + a + ": not a verdict of " + std::string(ebpfvm::to_string(type)) + " programs");
  }
  if (cfg.egress && type != ebpfvm::ProgType::SchedCls) return fail(kUsage, "--direction egress is for tc programs");
  if (!o.map_load.empty()) {
    auto text = read_text(o.map_load);
    if (!text) return fail(kUsage, text.error());
    if (auto r = obj->load_maps_json(*text); !r) return fail(kUsage, o.map_load + ": " + r.error().to_string());
  }
  for (const std::string& t : o.tail_calls)
    if (auto r = set_tail_call_arg(*obj, t); !r) return fail(kUsage, r.error());

  catch_stop_signals();
  cfg.stop = &g_signal;
  std::optional<ebpfvm::PacketFilter> filter;
  if (!o.filter_expr.empty()) {
    auto f = ebpfvm::PacketFilter::compile(o.filter_expr, {lo.engine});
    if (!f) return fail(kUsage, "--filter: " + f.error().message);
    filter.emplace(std::move(*f));
    cfg.filter = &*filter;
  }
  if (live) return run_live(o, *obj, *prog, cfg, writer.get(), printk_file, dump_file, startup);  // --ndjson was refused
  cfg.workers = o.workers;
  cfg.count = o.count;
  cfg.ifindex = o.ifindex;
  cfg.rxq = o.rxq;
  cfg.repeat = o.repeat;
  const bool tty = isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  bool drew = false;
  const uint64_t total = input->file_size();
  if (tty && total > 0)  // a stream's size is not known: no bar
    cfg.progress = [&](uint64_t done) {
      if (std::chrono::steady_clock::now() - started < std::chrono::seconds(1)) return;
      const int pct = total ? static_cast<int>(100.0 * done / total) : 100;
      std::fprintf(stderr, "\r[%-40s] %3d%%", std::string(static_cast<size_t>(pct * 40 / 100), '=').c_str(), pct);
      drew = true;
    };
  const uint64_t startup_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - startup).count());
  auto totals = ubpf::run_capture(*prog, *input, cfg);
  if (totals) totals->startup_ns = startup_ns;
  if (drew) std::fprintf(stderr, "\r%60s\r", "");
  if (!totals) return fail(kUsage, totals.error());
  totals->stopped = totals->stopped || g_signal.load() != 0;
  if (totals->fault) return fail(kFault, "packet " + std::to_string(totals->fault_packet + 1) + ": " + totals->fault->to_string());
  if (writer)
    if (auto r = writer->finish(); !r) return fail(kUsage, r.error().message);
  if (dump_file) {
    FILE* f = dump_file->file();
    (void)obj->dump_maps_json([f](std::string_view piece) { std::fwrite(piece.data(), 1, piece.size(), f); }, o.dump_maps, o.nonzero);
    std::fputc('\n', f);
  }
  for (auto* file : {&ndjson_file, &printk_file, &dump_file})
    if (*file)
      if (auto r = (*file)->commit(); !r) return fail(kUsage, r.error().message);
  if (o.json) print_json(o, *prog, *totals);
  else print_table(o, *prog, *totals);
  return totals->stopped ? 128 + g_signal.load() : 0;
}

int cmd_maps(const Options& o) {
  auto obj = open_object(o, "");
  if (!obj) return fail(kLoadFailure, obj.error());
  for (const std::string& m : o.map_sizes)
    if (auto r = set_map_size(*obj, m); !r) return fail(kUsage, r.error());
  std::printf("%-24s %-18s %6s %8s %12s %8s\n", "name", "type", "key", "value", "max_entries", "flags");
  for (const ebpfvm::MapSpec& m : obj->map_specs())
    std::printf("%-24s %-18s %6u %8u %12u %#8x\n", m.name.c_str(), std::string(ebpfvm::to_string(m.type)).c_str(), m.key_size,
                m.value_size, m.max_entries, m.map_flags);
  return 0;
}

// Loads the object until it loads: a rejected program is set aside and the rest loaded again, so
// that one rejection does not hide the others' results (and tail-call targets still load).
int cmd_verify(const Options& o) {
  auto first = Object::open(o.object);
  if (!first) return fail(kLoadFailure, first.error());
  std::map<std::string, ebpfvm::Error> rejected;
  std::optional<Object> loaded;
  while (!loaded) {
    auto obj = open_object(o, "");
    if (!obj) return fail(kLoadFailure, obj.error());
    for (const std::string& m : o.map_sizes)
      if (auto r = set_map_size(*obj, m); !r) return fail(kUsage, r.error());
    for (const std::string& g : o.globals)
      if (auto r = set_global(*obj, g); !r) return fail(kUsage, r.error());
    for (const auto& [name, e] : rejected) (void)obj->set_program_type(name, ebpfvm::ProgType::Unspec);
    ebpfvm::LoadOptions lo;
    lo.verify.verbose = o.verbose;
    lo.max_map_memory = o.max_map_memory;
    auto r = obj->load(lo);
    if (r) {
      loaded = std::move(*obj);
      break;
    }
    const std::string& prog = r.error().where.program;
    if (prog.empty() || rejected.count(prog)) return fail(kLoadFailure, r.error());
    rejected.emplace(prog, r.error());
  }
  int failures = 0;
  bool any = false;
  std::string json = "{\"file\":" + json_quote(o.object) + ",\"programs\":[";
  for (const ebpfvm::ProgramInfo& info : first->programs()) {
    if (!o.prog.empty() && info.name != o.prog) continue;
    any = true;
    if (json.back() != '[') json += ",";
    json += "{\"program\":" + json_quote(info.name);
    if (info.type == ebpfvm::ProgType::Other) {  // listed, not a failure: the object's packet programs are what counts
      json += ",\"verified\":false,\"skipped\":\"not a packet program\",\"section\":" + json_quote(info.section) + "}";
      if (!o.json) std::printf("%s: not a packet program (section %s), skipped\n", info.name.c_str(), info.section.c_str());
      continue;
    }
    if (auto it = rejected.find(info.name); it != rejected.end()) {
      ++failures;
      const ebpfvm::Error& e = it->second;
      json += ",\"verified\":false,\"error\":" + json_quote(e.message);
      if (e.where.insn) json += ",\"insn\":" + std::to_string(*e.where.insn);
      if (!e.where.function.empty()) json += ",\"function\":" + json_quote(e.where.function);
      if (e.where.line) json += ",\"line\":" + std::to_string(*e.where.line);
      json += ",\"detail\":" + json_quote(e.detail) + "}";
      if (!o.json) std::printf("%s: REJECTED\n  %s\n%s\n", info.name.c_str(), e.to_string().c_str(), e.detail.c_str());
      continue;
    }
    auto p = loaded->program(info.name);
    if (!p || !p->verify_report()) {
      ++failures;
      const std::string why = p ? "not verified" : p.error().message;
      json += ",\"verified\":false,\"error\":" + json_quote(why) + "}";
      if (!o.json) std::printf("%s: %s\n", info.name.c_str(), why.c_str());
      continue;
    }
    const ebpfvm::VerifyReport& v = *p->verify_report();
    json += ",\"verified\":true,\"insns\":" + std::to_string(p->code().slot_count()) + ",\"insns_analysed\":" +
            std::to_string(v.insns_analysed) + ",\"states\":" + std::to_string(v.states) + ",\"state_bytes\":" + std::to_string(v.state_bytes) + ",\"micros\":" + std::to_string(v.micros) +
            ",\"max_insns\":" + std::to_string(v.max_insns) + ",\"max_callback_iterations\":" + std::to_string(v.max_callback_iterations) +
            ",\"summarised_loops\":" + std::to_string(v.summarised_loops) + "}";
    if (!o.json) {
      if (o.verbose) std::printf("%s", v.log.c_str());
      const std::string loops = v.summarised_loops == 0 ? ""
                                : "; " + std::to_string(v.summarised_loops) + (v.summarised_loops == 1 ? " loop" : " loops") +
                                      " too long to unroll, summarised";
      std::printf("%s: verified (%zu instructions; %" PRIu64 " analysed, %" PRIu64 " states, %.2f ms%s); a run executes at most %" PRIu64
                  " instructions and %" PRIu64 " callbacks\n",
                  info.name.c_str(), p->code().slot_count(), v.insns_analysed, v.states, v.micros / 1e3, loops.c_str(), v.max_insns,
                  v.max_callback_iterations);
    }
  }
  if (!any) return fail(kUsage, "no program '" + o.prog + "'");
  if (o.json) std::printf("%s]}\n", json.c_str());
  return failures ? kLoadFailure : 0;
}

// Disassembly runs nothing, so a helper ebpfvm lacks (an embedder's) is no reason to refuse: each
// one the load names gets a placeholder, and the object is loaded again.
ebpfvm::Result<Object> load_for_disasm(const Options& o) {
  ebpfvm::HelperRegistry helpers = ebpfvm::HelperRegistry::builtin();
  for (;;) {
    auto obj = open_object(o, o.prog);
    if (!obj) return obj;
    ebpfvm::LoadOptions lo;
    lo.safety = ebpfvm::Safety::Checked;  // disassembly needs no proof
    lo.helpers = &helpers;
    auto r = obj->load(lo);
    if (r) return obj;
    const std::string& m = r.error().message;
    const size_t digits = m.find_last_not_of("0123456789") + 1;
    if (r.error().code != ebpfvm::Errc::UnknownHelper || digits == m.size() || m.size() - digits > 9) return r.error();
    ebpfvm::Helper placeholder;
    placeholder.id = static_cast<uint32_t>(std::stoul(m.substr(digits)));
    placeholder.name = "helper_" + m.substr(digits);
    placeholder.fn = [](uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) -> uint64_t { return 0; };
    for (auto& a : placeholder.proto.args) a = ebpfvm::ArgKind::Anything;
    if (!helpers.add(placeholder)) return r.error();  // already there: the failure is another one
  }
}

int cmd_disasm(const Options& o) {
  auto obj = load_for_disasm(o);
  if (!obj) return fail(kLoadFailure, obj.error());
  bool any = false;
  for (const ebpfvm::ProgramInfo& info : obj->programs()) {
    if (!o.prog.empty() && info.name != o.prog) continue;
    any = true;
    auto p = obj->program(info.name);
    if (!p) {
      std::printf("%s: %s\n\n", info.name.c_str(), p.error().message.c_str());
      continue;
    }
    std::printf("%s (section %s, %s, %zu instructions):\n", info.name.c_str(), info.section.c_str(),
                std::string(ebpfvm::to_string(info.type)).c_str(), p->code().slot_count());
    std::istringstream lines(p->code().disassemble());
    std::string last_source;
    for (std::string line; std::getline(lines, line);) {
      const uint32_t insn = static_cast<uint32_t>(std::strtoul(line.c_str(), nullptr, 10));
      if (auto src = p->source_line(insn); src && src->line != 0) {  // line 0: code of no line (clang's)
        std::string where = src->file.substr(src->file.rfind('/') + 1) + ":" + std::to_string(src->line);
        if (where != last_source) std::printf("; %s%s%s\n", where.c_str(), src->text.empty() ? "" : ": ", src->text.c_str());
        last_source = where;
      }
      std::string note;
      const auto map_at = line.find("map_idx(");
      if (map_at != std::string::npos) {
        const size_t idx = std::strtoul(line.c_str() + map_at + 8, nullptr, 10);
        if (idx < obj->map_specs().size()) note = "  ; map " + obj->map_specs()[idx].name;
      }
      std::printf("%s%s\n", line.c_str(), note.c_str());
    }
    std::printf("\n");
  }
  if (!any) return fail(kUsage, "no program '" + o.prog + "'");
  return 0;
}

}  // namespace

// ubpf-run filter EXPR -r IN [-w OUT] [-c N]: the packets of a capture a tcpdump expression (or a
// classic program, --cbpf) matches, counted and written out unchanged.
int cmd_filter(const Options& o) {
  const FilterCli& f = o.filter;
  if (o.engine != "interp" && o.engine != "jit") return fail(kUsage, "--engine " + o.engine + ": expected jit or interp");
  if (!f.words.empty() && !f.cbpf.empty()) return fail(kUsage, "give a filter expression or --cbpf FILE, not both");
  std::string expression;
  for (const std::string& w : f.words) expression += (expression.empty() ? "" : " ") + w;
  // arguments first: a usage error costs no compilation
  if (f.read.empty() && !f.dump) return fail(kUsage, "filter: give a capture to read with -r FILE (or -d, -dd, -ddd to print the program)");
  if (auto r = ebpfvm::tools::refuse_overwriting_inputs({{"-r", f.read}, {"--cbpf", f.cbpf}}, {{"-w", f.write}}); !r)
    return fail(kUsage, r.error().message);
  ebpfvm::FilterOptions fo;
  fo.engine = o.engine == "jit" ? ebpfvm::Engine::Jit : ebpfvm::Engine::Interpreter;
  fo.optimize = !f.no_optimize;
  ebpfvm::Result<ebpfvm::PacketFilter> filter = ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "");
  if (!f.cbpf.empty()) {
    auto text = read_text(f.cbpf);
    if (!text) return fail(kUsage, text.error());
    auto prog = ebpfvm::parse_classic(*text);
    if (!prog) return fail(kUsage, f.cbpf + ": " + prog.error().message);
    filter = ebpfvm::PacketFilter::from_classic(*prog, fo);
    if (!filter) return fail(kUsage, f.cbpf + ": " + filter.error().message);
  } else {
    filter = ebpfvm::PacketFilter::compile(expression, fo);  // "" matches every packet, as in tcpdump
    if (!filter) return fail(kUsage, filter.error().message);
  }
  if (f.dump) {
    const auto classic = filter->classic();
    if (f.dump == 1) std::printf("%s", filter->ebpf().disassemble().c_str());
    else if (f.dump == 2) std::printf("%s", ebpfvm::format_classic(classic).c_str());
    else {
      std::printf("%zu\n", classic.size());
      for (const ebpfvm::ClassicInsn& in : classic) std::printf("%u %u %u %u\n", in.code, in.jt, in.jf, in.k);
    }
    if (f.read.empty()) return 0;
  }
  auto input = ubpf::CaptureReader::open(f.read, &g_signal);
  if (!input) return fail(kUsage, input.error());
  std::unique_ptr<ubpf::CaptureWriter> writer;
  if (!f.write.empty()) {
    auto out = ebpfvm::tools::OutputFile::open(f.write);
    if (!out) return fail(kUsage, out.error().message);
    writer = ubpf::CaptureWriter::create(std::move(*out), (*input)->pcapng(), (*input)->nanosecond());
  }
  catch_stop_signals();
  const bool tty = isatty(STDERR_FILENO);
  const uint64_t total = (*input)->file_size();
  const auto started = std::chrono::steady_clock::now();
  auto last_bar = started;
  bool drew = false;
  uint64_t packets = 0, bytes = 0, matched = 0, matched_bytes = 0;
  // In chunks: a cut of the file is looked for once per chunk (it costs a system call), before
  // anything is made of the chunk's packets.
  std::vector<ubpf::Packet> chunk;
  bool end = false;
  while (!end && g_signal.load() == 0 && (o.count == 0 || matched < o.count)) {
    chunk.clear();
    for (ubpf::Packet pkt; chunk.size() < 512;) {
      auto more = (*input)->next(pkt);
      if (!more) return fail(kUsage, more.error());
      if (!*more) {
        end = true;
        break;
      }
      chunk.push_back(pkt);
    }
    if (auto ok = (*input)->check(chunk); !ok) return fail(kUsage, ok.error());
    for (const ubpf::Packet& pkt : chunk) {
      if (o.count && matched >= o.count) break;
      ++packets, bytes += pkt.data.size();
      if (filter->matches(pkt.data, std::max<uint32_t>(pkt.orig_len, static_cast<uint32_t>(pkt.data.size())))) {
        ++matched, matched_bytes += pkt.data.size();
        if (writer) writer->write(pkt.ts_ns, pkt.data, pkt.orig_len, {});
      }
    }
    (*input)->release((*input)->offset());
    const auto now = std::chrono::steady_clock::now();
    if (tty && total && now - last_bar > std::chrono::milliseconds(200) && now - started > std::chrono::seconds(1)) {
      const int pct = static_cast<int>(100.0 * static_cast<double>((*input)->offset()) / static_cast<double>(total));
      std::fprintf(stderr, "\r[%-40s] %3d%%", std::string(static_cast<size_t>(pct * 40 / 100), '=').c_str(), pct);
      drew = true, last_bar = now;
    }
  }
  if (drew) std::fprintf(stderr, "\r%60s\r", "");
  if (writer)
    if (auto r = writer->finish(); !r) return fail(kUsage, r.error().message);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const bool stopped = g_signal.load() != 0;
  const std::string what = f.cbpf.empty() ? expression : f.cbpf;
  if (o.json) {
    std::printf("{\"filter\":%s,\"engine\":\"%s\",\"classic_insns\":%zu,\"ebpf_insns\":%zu,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64
                ",\"matched\":%" PRIu64 ",\"matched_bytes\":%" PRIu64 ",\"seconds\":%.6f,\"interrupted\":%s}\n",
                json_quote(what).c_str(), filter->engine() == ebpfvm::Engine::Jit ? "jit" : "interp", filter->classic().size(),
                filter->ebpf().slot_count(), packets, bytes, matched, matched_bytes, secs, stopped ? "true" : "false");
  } else if (f.count_only) {
    std::printf("%" PRIu64 " packets\n", matched);  // tcpdump --count
  } else {
    std::printf("%" PRIu64 " of %" PRIu64 " packets matched (%.1f%%), %" PRIu64 " of %" PRIu64 " bytes; %.3f s, %.2f Mpps read and filtered (%s)%s\n",
                matched, packets, packets ? 100.0 * static_cast<double>(matched) / static_cast<double>(packets) : 0.0, matched_bytes, bytes,
                secs, secs > 0 ? static_cast<double>(packets) / secs / 1e6 : 0.0, filter->engine() == ebpfvm::Engine::Jit ? "jit" : "interpreter",
                stopped ? " (interrupted)" : "");
  }
  return stopped ? 128 + g_signal.load() : 0;
}

// ubpf-run replay IN.pcap --iface IF[@QUEUE]
int cmd_replay(const Options& o) {
  ubpf::ReplayConfig rc = o.replay;
  auto iface = ubpf::parse_iface(rc.iface);
  if (!iface) return fail(kUsage, iface.error().message);
  rc.iface = iface->first;
  rc.queue = iface->second;
  if (rc.rate < 0) return fail(kUsage, "--rate must not be negative");
  if (rc.copy && rc.zero_copy) return fail(kUsage, "--copy and --zero-copy exclude each other");
  catch_stop_signals();
  rc.stop = &g_signal;
  return ubpf::replay(rc);
}

int main(int argc, char** argv) {
  // `run` is the default subcommand: `ubpf-run prog.o --pcap x.pcap`.
  std::vector<std::string> args(argv, argv + argc);
  // `ubpf-run --replay IN.pcap --iface IF` is `ubpf-run replay IN.pcap --iface IF`
  if (args.size() > 2 && args[1] == "--replay") args[1] = "replay";
  if (args.size() > 1 && args[1] != "run" && args[1] != "maps" && args[1] != "disasm" && args[1] != "verify" && args[1] != "filter" && args[1] != "test" && args[1] != "replay" &&
      args[1] != "-h" && args[1] != "--help")
    args.insert(args.begin() + 1, "run");
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());

  Options o;
  CLI::App app{"ubpf-run: run XDP programs from BPF objects (clang -target bpf) over pcap captures"};
  app.require_subcommand(1);
  auto* run = app.add_subcommand("run", "run a program over a capture (the default)");
  run->add_option("object", o.object, "BPF object (.o)")->required();
  run->add_option("--pcap", o.pcap, "input capture, pcap or pcapng, Ethernet");
  run->add_option("--iface", o.live.ifaces, "run live on an interface queue through AF_XDP: IF or IF@QUEUE (repeatable; one worker each)");
  run->add_option("--xdp-mode", o.live.xdp_mode, "live: how the AF_XDP redirect is attached: native, generic (skb) or auto (native, else generic)");
  run->add_flag("--copy", o.live.copy, "live: bind the AF_XDP sockets in copy mode");
  run->add_flag("--zero-copy", o.live.zero_copy, "live: bind the AF_XDP sockets in zero-copy mode (drivers that support it)");
  run->add_option("--xsk-map", o.live.xsk_map, "live: a pinned xskmap your own XDP program redirects into; nothing is attached");
  run->add_option("--cpus", o.live.cpus, "live: pin worker i to the i-th CPU of this list: 0,1,...")->delimiter(',');
  run->add_option("--duration", o.live.duration, "live: stop after this many seconds");
  run->add_option("--interval", o.live.interval, "live: seconds between rate lines (0: none; default 1)");
  run->add_option("--pass-to-kernel", o.live.pass_to_kernel, "live: write XDP_PASS frames to this TAP device (created if missing) instead of dropping them");
  run->add_option("--prog", o.prog, "program (function name)");
  run->add_option("--section", o.section, "program by ELF section");
  run->add_option("--type", o.type, "program type when the section name does not tell: xdp, tc, socket");
  run->add_option("--engine", o.engine, "jit (this CPU's: x86-64 or aarch64; the default) or interp");
  run->add_flag("--no-verify", o.no_verify, "run unverified, every memory access checked at run time (needs --engine interp)");
  run->add_option("-c,--count", o.count, "stop after N packets");
  run->add_option("--filter", o.filter_expr, "only the packets this tcpdump expression matches reach the program; the others are counted");
  run->add_option("--ifindex", o.ifindex, "xdp_md.ingress_ifindex (default 1)");
  run->add_option("--rxq", o.rxq, "xdp_md.rx_queue_index (default 0)");
  run->add_option("--map-load", o.map_load,
                  "preload maps: {\"map\": [bpftool -j map dump entries], ...}; a prog_array's values name programs, keys may be numbers");
  run->add_option("--map-size", o.map_sizes, "a map's max_entries before load, as a loader would set it: NAME=N (repeatable)");
  run->add_option("--tail-call", o.tail_calls, "put a program in a prog_array slot after --map-load: MAP[INDEX]=PROG (repeatable)");
  run->add_option("--global", o.globals, "set a .rodata/.data/.bss variable before load: NAME=VALUE or NAME=hex:BYTES");
  run->add_option("--links", o.links, "links for bpf_fib_lookup: ip -j addr show (default: this host's, when --routes or --neighbours is given)");
  run->add_option("--routes", o.routes, "routes for bpf_fib_lookup: ip -j route show table all (repeatable: -4 and -6 listings)");
  run->add_option("--neighbours,--neighbors", o.neighbours, "neighbours for bpf_fib_lookup: ip -j neigh show");
  run->add_option("--seed", o.seed, "seed of bpf_get_prandom_u32 (default: random)");
  run->add_option("--workers", o.workers, "threads; packets are sharded by flow (default 1)");
  run->add_option("-w,--write", o.write, "write packets after the program (.pcapng: with their verdicts)");
  run->add_option("--write-actions", o.write_actions,
                  "which verdicts -w writes, or all. XDP: aborted,drop,pass,tx,redirect (default pass,tx,redirect); tc: ok,shot,redirect,"
                  "pipe,reclassify,unspec,stolen,queued,repeat,trap,unknown (default: what tc lets through: all but shot,stolen,queued,trap); "
                  "socket: accept,drop (default accept: the bytes kept)");
  run->add_option("--direction", o.direction, "tc: ingress (default) or egress: the packets arrive on --ifindex, or leave through it");
  run->add_flag("--json", o.json, "print one JSON summary instead of the table");
  run->add_option("--ndjson", o.ndjson, "write one JSON record per packet (verdict, lengths, CRC-32 of the output packet, ...)");
  run->add_flag("--ndjson-bytes", o.ndjson_bytes, "with --ndjson: each record also has the output packet in hex");
  run->add_option("--map-dump", o.map_dump, "write every map at the end as JSON");
  run->add_option("--maps", o.dump_maps, "--map-dump writes only these maps: NAME,NAME")->delimiter(',');
  run->add_flag("--nonzero", o.nonzero, "--map-dump leaves out entries whose value is all zeros (untouched array slots)");
  run->add_option("--printk", o.printk, "bpf_printk output (default: stderr)");
  run->add_option("--repeat", o.repeat, "run each packet N times (restoring it) to measure");
  run->add_option("--budget", o.budget, "instructions one run may execute (default 100000000)");
  const char* map_memory_help = "memory the object's maps may take when full: bytes, or with k, M, G (default 1G)";
  run->add_option("--max-map-memory", o.max_map_memory, map_memory_help)->transform(CLI::AsSizeValue(false));
  auto* rpl = app.add_subcommand("replay", "send a capture's packets out of an interface through AF_XDP");
  rpl->add_option("capture", o.replay.capture, "capture to send, pcap or pcapng")->required();
  rpl->add_option("--iface", o.replay.iface, "interface to send out of: IF or IF@QUEUE")->required();
  rpl->add_option("--rate", o.replay.rate, "packets per second (default: as fast as the socket takes them)");
  rpl->add_option("--loop", o.replay.loops, "send the capture N times (0: until stopped; default 1)");
  rpl->add_option("-c,--count", o.replay.count, "stop after N packets");
  rpl->add_flag("--copy", o.replay.copy, "bind in copy mode");
  rpl->add_flag("--zero-copy", o.replay.zero_copy, "bind in zero-copy mode");
  rpl->add_flag("--json", o.replay.json, "print one JSON summary");
  auto* maps = app.add_subcommand("maps", "list the maps an object declares");
  maps->add_option("object", o.object, "BPF object (.o)")->required();
  maps->add_option("--map-size", o.map_sizes, "a map's max_entries, as a loader would set it: NAME=N (repeatable)");
  auto* ver = app.add_subcommand("verify", "verify the programs of an object, as the kernel's verifier would");
  ver->add_option("object", o.object, "BPF object (.o)")->required();
  ver->add_option("--prog", o.prog, "only this program");
  ver->add_option("--max-map-memory", o.max_map_memory, map_memory_help)->transform(CLI::AsSizeValue(false));
  ver->add_option("--type", o.type, "program type when the section name does not tell");
  ver->add_option("--global", o.globals, "set a .rodata/.data/.bss variable first: NAME=VALUE or NAME=hex:BYTES");
  ver->add_option("--map-size", o.map_sizes, "a map's max_entries, as a loader would set it: NAME=N (repeatable)");
  ver->add_flag("-v,--verbose", o.verbose, "print the abstract state after every instruction");
  ver->add_flag("--json", o.json, "print the results as JSON");
  auto* dis = app.add_subcommand("disasm", "disassemble the linked programs, with maps and source lines");
  dis->add_option("object", o.object, "BPF object (.o)")->required();
  dis->add_option("--prog", o.prog, "only this program");
  dis->add_option("--type", o.type, "program type when the section name does not tell");
  auto* flt = app.add_subcommand("filter", "the packets of a capture a tcpdump expression matches, compiled to eBPF");
  flt->add_option("expression", o.filter.words, "tcpdump filter expression (its words are joined, as tcpdump joins them)");
  flt->add_option("-r", o.filter.read, "input capture, pcap or pcapng (- for standard input)");
  flt->add_option("-w", o.filter.write, "write the matching packets, unchanged, in the input's format");
  flt->add_option("-c", o.count, "stop after N matching packets");
  flt->add_flag("--count-only,--count", o.filter.count_only, "print only the number of matching packets, as tcpdump --count");
  flt->add_option("--cbpf", o.filter.cbpf, "a classic BPF program instead of an expression: tcpdump -ddd or -dd output");
  flt->add_flag("-d", o.filter.dump, "print the program: -d the eBPF it runs, -dd the classic listing (tcpdump -d), -ddd its numbers (tcpdump -ddd)");
  flt->add_flag("-O,--no-optimize", o.filter.no_optimize, "do not run libpcap's optimiser (tcpdump -O)");
  flt->add_option("--engine", o.engine, "jit (the default) or interp");
  flt->add_flag("--json", o.json, "print one JSON summary");
  ubpf::SpecOptions spec;
  auto* tst = app.add_subcommand("test", "run a declarative test spec (JSON): cases of packets and what the program must do; TAP output");
  tst->add_option("spec", spec.spec, "the spec file")->required();
  tst->add_option("--engine", spec.engine, "jit or interp (default: the spec's \"engine\", else the interpreter)");
  tst->add_option("--junit", spec.junit, "also write the results as JUnit XML to this file");
  try {
    app.parse(static_cast<int>(av.size()), av.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    g_json_errors = std::find(av.begin(), av.end(), std::string_view("--json")) != av.end();
    return fail(kUsage, e.what());
  }
  g_json_errors = o.json;
  if (*tst) return ubpf::run_spec(spec);
  if (*rpl) return cmd_replay(o);
  if (*flt) return cmd_filter(o);
  if (*maps) return cmd_maps(o);
  if (*dis) return cmd_disasm(o);
  if (*ver) return cmd_verify(o);
  return cmd_run(o);
}
