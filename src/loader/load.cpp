// Object: open, configure, load; LoadedProgram: run.
#include <algorithm>
#include <atomic>
#include <fstream>

#include "jit/image.hpp"
#include "loader/object_data.hpp"
#include "util/file.hpp"
#include "maps/reclaim.hpp"
#include "program_data.hpp"
#include "util/json.hpp"
#include "progtype/ctx_rewrite.hpp"
#include "progtype/progtype.hpp"
#include "progtype/skb.hpp"
#include "verifier/verifier.hpp"

namespace ebpfvm {

namespace {

using detail::LoadedData;
using detail::MapDecl;
using detail::ObjectData;

std::atomic<uint32_t> g_next_prog_id{1};

Error not_loaded(const ObjectData& o, const char* what) {
  Error e = make_error(Errc::InvalidArgument, std::string(what) + " needs a loaded object: call load() first");
  e.where.file = o.name;
  return e;
}

Result<std::vector<std::shared_ptr<detail::MapImpl>>> create_maps(const ObjectData& o, uint32_t workers, uint64_t limit) {
  uint64_t total = 0;
  const MapDecl* largest = nullptr;
  for (const MapDecl& d : o.maps) {
    const uint64_t b = detail::worst_bytes(d.spec, workers);
    total = b > UINT64_MAX - total ? UINT64_MAX : total + b;
    if (!largest || b > detail::worst_bytes(largest->spec, workers)) largest = &d;
  }
  if (total > limit) {
    Error e = make_error(Errc::InvalidArgument,
                         "the maps may take " + std::to_string(total) + " bytes when full, more than LoadOptions::max_map_memory (" +
                             std::to_string(limit) + " bytes); the largest is '" + largest->spec.name + "' (" +
                             std::string(to_string(largest->spec.type)) + ", " + std::to_string(largest->spec.max_entries) + " entries: " +
                             std::to_string(detail::worst_bytes(largest->spec, workers)) + " bytes)");
    e.where.file = o.name;
    return e;
  }
  std::vector<std::shared_ptr<detail::MapImpl>> out;
  for (const MapDecl& d : o.maps) {
    if (d.spec.max_entries == 0 && d.spec.type != MapType::PerfEventArray) {  // a perf array gets one slot per worker
      Error e = make_error(Errc::InvalidArgument, "map '" + d.spec.name + "' declares max_entries 0 (its own loader sizes it): set it with "
                                                  "Object::set_max_entries, or ubpf-run --map-size " + d.spec.name + "=N");
      e.where.file = o.name;
      return e;
    }
    auto m = detail::create_map(d.spec, workers);
    if (!m) {
      m.error().where.file = o.name;
      return m.error();
    }
    if (d.source == MapDecl::Source::Data && !d.init.empty()) std::memcpy(detail::array_base(**m), d.init.data(), d.init.size());
    out.push_back(std::move(*m));
  }
  return out;
}

// An error at an instruction of program `p`'s linked code: numbered as the linked code is (as
// `ubpf-run disasm` and the kernel's verifier log number it), with the program's section, the
// source line, and the function the instruction is in when it is a subprogram's ("name+offset").
Error at_origin(const ObjectData& o, const detail::Linked& l, const ProgramInfo& p, Error e) {
  if (e.where.insn && *e.where.insn < l.origin.size()) {
    auto [sec, slot] = l.origin[*e.where.insn];
    Error out = o.error_at(e.code, sec, slot, e.message);
    out.where.insn = e.where.insn;
    out.where.section = p.section;
    out.where.program = p.name;
    for (const detail::Function& f : o.functions)
      if (f.section == sec && slot >= f.start && slot < f.end && f.name != p.name) out.where.function = f.name + "+" + std::to_string(slot - f.start);
    out.detail = std::move(e.detail);
    return out;
  }
  e.where.file = o.name;
  e.where.section = p.section;
  e.where.program = p.name;
  return e;
}

// What a prog_array's programs must share: type, and what they were verified for. Never 0, which
// marks an array no program has claimed yet.
uint64_t owner_tag(ProgType type, bool verified, uint32_t memory) {
  return (uint64_t{verified} << 63) | (uint64_t{1} << 62) | (uint64_t{static_cast<uint8_t>(type)} << 32) | memory;
}

// The context a program runs on: its type's, unless it is loaded for raw memory (an XDP program
// never is). Null: raw memory.
const detail::ProgTypeDesc* ctx_type(ProgType type, const LoadOptions& opts) {
  if (type != ProgType::Xdp && opts.verify.context == VerifyOptions::Context::Memory) return nullptr;
  return detail::prog_type_desc(type);
}
// The raw memory a program is verified for (0 when it is verified for its context).
uint32_t verified_memory(ProgType type, const LoadOptions& opts) { return ctx_type(type, opts) ? 0 : opts.verify.memory_size; }
uint64_t owner_tag(const LoadedData& d) { return owner_tag(d.info.type, d.verified.has_value(), d.verified_memory); }

Result<VerifyReport> verify_program(const ObjectData& o, const ProgramInfo& p, const isa::Program& code, const HelperRegistry& helpers,
                            const LoadOptions& opts, std::vector<uint32_t>& ctx_loads) {
  verifier::Input in;
  in.rewritten_loads = &ctx_loads;
  std::vector<uint32_t> tail_maps;
  in.tail_call_maps = &tail_maps;
  in.prog = &code;
  in.helpers = &helpers;
  in.options = opts.verify;
  in.type = ctx_type(p.type, opts);
  if (in.type) {
    in.options.context = in.type->context;
  } else if (opts.verify.context != VerifyOptions::Context::Memory) {
    return make_error(Errc::Unsupported, "a program of type " + std::string(to_string(p.type)) +
                                             " has no context ebpfvm knows; to run it on raw memory (run_raw), verify it for that memory "
                                             "(LoadOptions::verify: context = Memory, memory_size) or load it unverified (safety = Checked)");
  }
  for (size_t i = 0; i < o.maps.size(); ++i) {
    const MapDecl& d = o.maps[i];
    const bool constant = d.read_only && d.spec.type == MapType::Array && d.spec.max_entries == 1;
    in.maps.push_back({&o.live_maps[i]->spec(), constant ? detail::array_base(*o.live_maps[i]) : nullptr, o.live_maps[i]});
  }
  auto r = verifier::analyse(in);
  if (!r) return r;
  for (uint32_t m : tail_maps)
    if (!detail::prog_array_claim(*o.live_maps[m], owner_tag(p.type, true, verified_memory(p.type, opts))))
      return make_error(Errc::VerifierRejected, "tail call through prog_array '" + o.maps[m].spec.name +
                                                    "', which holds programs of another type or verified for another context");
  return r;
}

Result<std::shared_ptr<const LoadedData>> load_program(const std::shared_ptr<ObjectData>& o, size_t i,
                                                         const HelperRegistry& helpers, const LoadOptions& opts) {
  const ProgramInfo& p = o->programs[i];
  auto linked = detail::link_program(*o, o->program_function[i]);
  if (!linked) return linked.error();
  auto decoded = Program::from_bytecode(linked->bytes);
  if (!decoded) return at_origin(*o, *linked, p, decoded.error());
  std::optional<VerifyReport> report;
  std::vector<uint32_t> ctx_loads;
  if (opts.safety == Safety::Verified) {
    auto r = verify_program(*o, p, decoded->data().decoded, helpers, opts, ctx_loads);
    if (!r) return at_origin(*o, *linked, p, r.error());
    report = std::move(*r);
  }
  if (const detail::ProgTypeDesc* type = ctx_type(p.type, opts)) {
    // Verified: the accesses the verifier proved to reach the context's rewritten fields (it
    // refuses an instruction that reads the context on one path and other memory on another).
    // Unverified: the rewrite's own analysis, which refuses what it cannot follow.
    std::sort(ctx_loads.begin(), ctx_loads.end());
    ctx_loads.erase(std::unique(ctx_loads.begin(), ctx_loads.end()), ctx_loads.end());
    auto r = report ? detail::rewrite_ctx_loads(decoded->data().decoded, type->fields, ctx_loads, linked->bytes)
                    : detail::rewrite_ctx_accesses(decoded->data().decoded, type->fields, linked->bytes);
    if (!r) return at_origin(*o, *linked, p, r.error());
    decoded = Program::from_bytecode(linked->bytes);
    if (!decoded) return at_origin(*o, *linked, p, decoded.error());
  }
  detail::Bindings b{o->live_maps};
  // A verified program needs no run-time checks.
  const Safety run_mode = opts.safety == Safety::Verified ? Safety::TrustedUnchecked : opts.safety;
  auto img = detail::build_image(decoded->data().decoded, helpers, {run_mode, opts.insn_budget}, std::move(b));
  if (!img) return at_origin(*o, *linked, p, img.error());
  auto d = std::make_shared<LoadedData>(std::move(*decoded));
  d->info = p;
  d->verified = std::move(report);
  if (d->verified) d->verified_memory = verified_memory(p.type, opts);
  d->ctx_type = ctx_type(p.type, opts);
  d->may_view = d->verified && !d->verified->writes_packet;
  d->file = o->name;
  d->id = g_next_prog_id++;
  d->origin = std::move(linked->origin);
  d->lines = o->lines;
  d->shared = o->shared;
  d->workers = opts.workers ? opts.workers : 1;
  auto entry = std::make_shared<detail::ProgEntry>();
  entry->id = d->id;
  entry->name = p.name;
  entry->image = std::move(*img);
  if (opts.engine == Engine::Jit) {
    if (opts.jit.target != JitTarget::Host && opts.jit.target != host_jit_target())  // a loaded program is there to run
      return at_origin(*o, *linked, p,
                       make_error(Errc::InvalidArgument, std::string("JitOptions::target is ") + to_string(opts.jit.target) +
                                                             ": a loaded program runs on this host, which is " + to_string(host_jit_target())));
    auto jit = detail::build_jit(d->code.data().decoded, helpers, detail::Bindings{o->live_maps}, opts.jit);
    if (!jit) return at_origin(*o, *linked, p, jit.error());
    entry->jit = std::move(*jit);
  }
  d->entry = std::move(entry);
  return std::shared_ptr<const LoadedData>(std::move(d));
}

Result<void> apply_initialisers(ObjectData& o) {
  for (size_t i = 0; i < o.maps.size(); ++i) {
    for (const MapDecl::Slot& s : o.maps[i].slots) {
      detail::MapImpl& m = *o.live_maps[i];
      long rc = detail::err::kInval;
      if (m.spec().type == MapType::ProgArray) {
        for (size_t p = 0; p < o.programs.size(); ++p)
          if (o.programs[p].name == s.target && o.loaded_programs[p])
            rc = detail::prog_array_claim(m, owner_tag(*o.loaded_programs[p])) ? detail::prog_array_set(m, s.index, o.loaded_programs[p]->entry)
                                                                                : detail::err::kInval;
      } else {
        for (size_t j = 0; j < o.maps.size(); ++j)
          if (o.maps[j].spec.name == s.target) {
            uint32_t id = o.live_maps[j]->id();
            rc = m.user_update(&s.index, &id, kAny);
          }
      }
      if (rc < 0) {
        Error e = make_error(Errc::MalformedObject, "map '" + m.spec().name + "': slot " + std::to_string(s.index) +
                                                        " cannot be initialised with '" + s.target + "'");
        e.where.file = o.name;
        e.where.section = ".maps";
        return e;
      }
    }
  }
  return {};
}

}  // namespace

// ---- names -------------------------------------------------------------------------------------------
std::string_view to_string(ProgType t) {
  switch (t) {
    case ProgType::Xdp: return "xdp";
    case ProgType::SchedCls: return "sched_cls";
    case ProgType::SocketFilter: return "socket_filter";
    case ProgType::Other: return "other";
    case ProgType::Unspec: break;
  }
  return "unspec";
}

std::optional<ProgType> prog_type_from_string(std::string_view s) {
  if (s == "xdp") return ProgType::Xdp;
  if (s == "tc" || s == "sched_cls" || s == "classifier" || s == "sched_act") return ProgType::SchedCls;
  if (s == "socket" || s == "socket_filter") return ProgType::SocketFilter;
  return std::nullopt;
}

ProgType prog_type_from_section(std::string_view s) {
  auto starts = [&](std::string_view p) { return s.substr(0, p.size()) == p; };
  if (starts("xdp")) return ProgType::Xdp;
  // sched_act ("action") programs get the same context and helpers as sched_cls in the kernel
  if (starts("tc") || starts("classifier") || starts("action")) return ProgType::SchedCls;
  // Suricata's socket filters (its own loader's sections: filter, loadbalancer, vlan_filter...)
  if (starts("socket") || s == "filter" || s == "loadbalancer" || s == "vlan_filter") return ProgType::SocketFilter;
  // libbpf's section names of the program kinds that see no packet as XDP, tc and socket filters do
  static constexpr std::string_view kOther[] = {
      "kprobe/", "kretprobe/", "uprobe", "uretprobe", "ksyscall/", "kretsyscall/", "usdt/", "tracepoint/", "tp/",
      "raw_tracepoint", "raw_tp", "tp_btf/", "fentry/", "fexit/", "fmod_ret/", "lsm/", "lsm.s/", "lsm_cgroup/", "iter/",
      "iter.s/", "perf_event", "cgroup/", "cgroup_skb/", "sockops", "sk_msg", "sk_skb", "sk_lookup", "sk_reuseport",
      "flow_dissector", "lirc_mode2", "lwt_", "struct_ops", "syscall", "netfilter", "freplace/", "kprobe.multi/",
      "kretprobe.multi/", "uprobe.multi/", "uretprobe.multi/", "fentry.s/", "fexit.s/", "fmod_ret.s/"};
  for (std::string_view p : kOther)
    if (starts(p)) return ProgType::Other;
  return ProgType::Unspec;
}

std::string_view to_string(XdpAction a) {
  static constexpr std::string_view kNames[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"};
  const auto i = static_cast<uint32_t>(a);
  return i < std::size(kNames) ? kNames[i] : "XDP_UNKNOWN";
}

// ---- Object --------------------------------------------------------------------------------------------
Result<Object> Object::open(const std::string& path) {
  static constexpr uint8_t kElfMagic[] = {0x7f, 'E', 'L', 'F'};
  auto bytes = detail::read_regular_file(path, {kMaxObjectSize, kElfMagic, "not an ELF file"});
  if (!bytes) return bytes.error();
  return open(*bytes, path);
}

Result<Object> Object::open(std::span<const uint8_t> bytes, const std::string& name) {
  auto d = detail::parse_object(bytes, name);
  if (!d) return d.error();
  return Object(std::move(*d));
}

const std::string& Object::name() const { return d_->name; }
const std::vector<ProgramInfo>& Object::programs() const { return d_->programs; }
const std::vector<std::string>& Object::warnings() const { return d_->file.warnings(); }
const std::vector<MapSpec>& Object::map_specs() const { return d_->specs; }
const std::vector<Object::Global>& Object::globals() const { return d_->globals; }
bool Object::has_btf() const { return d_->btf.has_value(); }
bool Object::loaded() const { return d_->loaded; }

Result<void> Object::set_global(std::string_view name, std::span<const uint8_t> value) {
  auto fail = [&](Errc c, const std::string& msg) {
    Error e = make_error(c, msg);
    e.where.file = d_->name;
    return e;
  };
  if (d_->loaded) return fail(Errc::InvalidArgument, "global '" + std::string(name) + "' cannot be set after load");
  for (const Global& g : d_->globals) {
    if (g.name != name) continue;
    if (value.size() != g.size)
      return fail(Errc::InvalidArgument, "global '" + g.name + "' is " + std::to_string(g.size) + " bytes, the value given is " +
                                             std::to_string(value.size()));
    for (MapDecl& m : d_->maps) {
      if (m.source != MapDecl::Source::Data || m.spec.name != g.section) continue;
      const uint64_t section_size = m.spec.value_size;
      if (g.offset > section_size || section_size - g.offset < value.size())  // collect_data's bound, kept where it matters
        return fail(Errc::MalformedObject, "global '" + g.name + "' lies outside its section " + g.section);
      if (m.init.size() < g.offset + value.size()) m.init.resize(g.offset + value.size(), 0);  // into the zeros of a .bss
      std::copy(value.begin(), value.end(), m.init.begin() + g.offset);
    }
    return {};
  }
  return fail(Errc::NotFound, "no global variable '" + std::string(name) + "' in .rodata, .data or .bss");
}

Result<void> Object::set_program_type(std::string_view program, ProgType type) {
  for (ProgramInfo& p : d_->programs)
    if (p.name == program || p.section == program) {
      if (d_->loaded) return make_error(Errc::InvalidArgument, "program type cannot change after load");
      p.type = type;
      return {};
    }
  Error e = make_error(Errc::NotFound, "no program '" + std::string(program) + "'");
  e.where.file = d_->name;
  return e;
}

Result<void> Object::set_max_entries(std::string_view map, uint32_t max_entries) {
  const auto fail = [&](Errc code, const std::string& why) {
    Error e = make_error(code, "map '" + std::string(map) + "': " + why);
    e.where.file = d_->name;
    return e;
  };
  for (size_t i = 0; i < d_->maps.size(); ++i) {
    MapDecl& d = d_->maps[i];
    if (d.spec.name != map) continue;
    if (d_->loaded) return fail(Errc::InvalidArgument, "max_entries cannot change after load");
    if (d.source == MapDecl::Source::Data) return fail(Errc::InvalidArgument, "a global data section has one entry, its own size");
    if (max_entries == 0) return fail(Errc::InvalidArgument, "max_entries must be above 0");
    d.spec.max_entries = max_entries;
    d_->specs[i].max_entries = max_entries;
    return {};
  }
  return fail(Errc::NotFound, "no such map");
}

Result<void> Object::load(const LoadOptions& opts) {
  if (d_->loaded) return make_error(Errc::InvalidArgument, d_->name + ": already loaded");
  if (opts.engine == Engine::Jit && opts.safety != Safety::Verified) {
    Error e = make_error(Errc::InvalidArgument, "the JIT compiles only verified programs: load with safety = Verified (the default)");
    e.where.file = d_->name;
    return e;
  }
  if (opts.safety == Safety::TrustedUnchecked) {
    Error e = make_error(Errc::InvalidArgument,
                         "objects run verified (the default) or, unverified, with every access checked (safety = Checked)");
    e.where.file = d_->name;
    return e;
  }
  const uint32_t workers = opts.workers ? opts.workers : 1;
  auto maps = create_maps(*d_, workers, opts.max_map_memory);
  if (!maps) return maps.error();
  d_->live_maps = std::move(*maps);
  d_->shared = std::make_shared<detail::RuntimeShared>(opts.env, workers);
  HelperRegistry helpers = HelperRegistry::builtin();
  if (opts.helpers)
    for (const Helper& h : opts.helpers->all()) helpers.set(h);
  for (size_t i = 0; i < d_->programs.size(); ++i) {
    // A program of no known type runs only on raw memory: verified for it, or checked.
    const bool raw = opts.verify.context == VerifyOptions::Context::Memory || opts.safety == Safety::Checked;
    if (d_->programs[i].type == ProgType::Other && !raw) {
      d_->load_errors[i] = "not a packet program (section '" + d_->programs[i].section +
                           "'): ebpfvm runs XDP, tc and socket-filter programs; this one is left unloaded";
      continue;
    }
    if (d_->programs[i].type == ProgType::Unspec && !raw) {
      d_->load_errors[i] = "section '" + d_->programs[i].section +
                           "' does not tell the program type; set it before load (set_program_type, ubpf-run --type), or load for "
                           "raw memory (LoadOptions::verify.context = Memory)";
      continue;
    }
    auto p = load_program(d_, i, helpers, opts);
    if (!p) {
      d_->live_maps.clear();
      std::fill(d_->loaded_programs.begin(), d_->loaded_programs.end(), nullptr);
      return p.error();
    }
    d_->loaded_programs[i] = std::move(*p);
  }
  if (auto r = apply_initialisers(*d_); !r) return r;
  for (size_t i = 0; i < d_->maps.size(); ++i)
    if (d_->maps[i].read_only) d_->live_maps[i]->freeze();
  d_->loaded = true;
  return {};
}

Result<LoadedProgram> Object::program(std::string_view name) const {
  auto fail = [&](Errc c, const std::string& msg) {
    Error e = make_error(c, msg);
    e.where.file = d_->name;
    return e;
  };
  if (!d_->loaded) return not_loaded(*d_, "program()");
  std::vector<size_t> hits;
  for (size_t i = 0; i < d_->programs.size(); ++i)
    if (d_->programs[i].name == name) hits = {i};
  if (hits.empty())
    for (size_t i = 0; i < d_->programs.size(); ++i)
      if (d_->programs[i].section == name) hits.push_back(i);
  if (hits.empty()) {
    std::string all;
    for (const ProgramInfo& p : d_->programs) all += (all.empty() ? "" : ", ") + p.name + " (" + p.section + ")";
    return fail(Errc::NotFound, "no program or section '" + std::string(name) + "'; programs: " + all);
  }
  if (hits.size() > 1)
    return fail(Errc::InvalidArgument, "section '" + std::string(name) + "' holds " + std::to_string(hits.size()) +
                                           " programs; select one by function name");
  if (!d_->loaded_programs[hits[0]]) return fail(Errc::Unsupported, "program '" + d_->programs[hits[0]].name + "': " + d_->load_errors[hits[0]]);
  return LoadedProgram(d_->loaded_programs[hits[0]]);
}

Result<Map> Object::map(std::string_view name) const {
  if (!d_->loaded) return not_loaded(*d_, "map()");
  for (size_t i = 0; i < d_->maps.size(); ++i)
    if (d_->maps[i].spec.name == name) return Map(d_->live_maps[i]);
  Error e = make_error(Errc::NotFound, "no map '" + std::string(name) + "'");
  e.where.file = d_->name;
  return e;
}

std::vector<Map> Object::maps() const {
  std::vector<Map> out;
  for (const auto& m : d_->live_maps) out.emplace_back(m);
  return out;
}

namespace {

// A prog array's slots as --map-load takes them back: {"key": [index bytes], "value": "program"}.
std::string dump_prog_array(detail::MapImpl& m) {
  std::string out = "[";
  for (uint32_t i = 0; i < m.spec().max_entries; ++i) {
    const auto* e = static_cast<const detail::ProgEntry*>(detail::prog_array_get(m, i));
    if (!e) continue;
    if (out.size() > 1) out += ",";
    char key[64];
    std::snprintf(key, sizeof key, "[\"0x%02x\",\"0x%02x\",\"0x%02x\",\"0x%02x\"]", i & 0xff, (i >> 8) & 0xff, (i >> 16) & 0xff, i >> 24);
    out += "{\"key\":" + std::string(key) + ",\"value\":" + json::quote(e->name) + "}";
  }
  return out + "]";
}

// A prog array's entries: each key an index, each value the name of a program of the object (or
// null: the slot is emptied), as bpftool's `map update ... value name PROG`. All are checked
// before any slot changes.
Result<void> load_prog_array(const Object& obj, Map& m, const json::Value& doc) {
  const std::string map = "map '" + m.name() + "'";
  if (!doc.is_array()) return make_error(Errc::InvalidArgument, map + ": JSON is not an array of entries");
  std::vector<std::pair<uint32_t, std::optional<LoadedProgram>>> slots;
  size_t i = 0;
  for (const json::Value& e : doc.array()) {
    const std::string at = map + ": entry " + std::to_string(i++);
    if (!e.is_object() || !e.get("key")) return make_error(Errc::InvalidArgument, at + " has no \"key\"");
    auto key = detail::json_key(*e.get("key"), m.spec().key_size, at + " key");
    if (!key) return key.error();
    if (key->size() != 4) return make_error(Errc::InvalidArgument, at + " key is " + std::to_string(key->size()) + " bytes, the map's is 4");
    const uint32_t index = uint32_t{(*key)[0]} | uint32_t{(*key)[1]} << 8 | uint32_t{(*key)[2]} << 16 | uint32_t{(*key)[3]} << 24;
    if (index >= m.spec().max_entries)
      return make_error(Errc::MapFull, at + ": index " + std::to_string(index) + " is beyond max_entries (" + std::to_string(m.spec().max_entries) + ")");
    const json::Value* v = e.get("value");
    if (!v || (!v->is_string() && !v->is_null()))
      return make_error(Errc::InvalidArgument, at + " value is not a program's name (a string) or null");
    if (v->is_null()) {
      slots.emplace_back(index, std::nullopt);
      continue;
    }
    auto prog = obj.program(v->string());
    if (!prog) return make_error(prog.error().code, at + ": " + prog.error().message);
    if (!detail::prog_array_claim(*m.impl(), owner_tag(*prog->data())))
      return make_error(Errc::InvalidArgument, at + ": the map holds programs of another type or verified for another context than '" +
                                                   prog->name() + "'");
    slots.emplace_back(index, *prog);
  }
  for (auto& [index, prog] : slots) {
    if (!prog) {
      detail::prog_array_set(*m.impl(), index, nullptr);
    } else if (auto r = set_tail_call(m, index, *prog); !r) {
      return r;
    }
  }
  return {};
}

}  // namespace

std::string Object::dump_maps_json() const {
  std::string out;
  (void)dump_maps_json([&](std::string_view piece) { out += piece; });
  return out;
}

Result<void> Object::dump_maps_json(const std::function<void(std::string_view)>& write, std::span<const std::string> names,
                                    bool nonzero) const {
  std::vector<size_t> which;
  for (const std::string& n : names) {
    auto m = map(n);
    if (!m) return m.error();
    for (size_t i = 0; i < d_->live_maps.size(); ++i)
      if (d_->live_maps[i] == m->impl()) which.push_back(i);
  }
  if (names.empty())
    for (size_t i = 0; i < d_->live_maps.size(); ++i) which.push_back(i);
  write("{");
  for (size_t k = 0; k < which.size(); ++k) {
    Map m(d_->live_maps[which[k]]);
    write((k ? "," : "") + json::quote(m.name()) + ":");
    if (m.spec().type == MapType::ProgArray) write(dump_prog_array(*d_->live_maps[which[k]]));
    else m.dump_json(write, nonzero);
  }
  write("}");
  return {};
}

Result<void> Object::load_maps_json(std::string_view text) {
  if (!d_->loaded) return not_loaded(*d_, "load_maps_json()");
  auto doc = json::parse(text);
  if (!doc) return doc.error();
  if (!doc->is_object()) return make_error(Errc::InvalidArgument, "map JSON must be an object: {\"map name\": [entries], ...}");
  std::vector<std::pair<Map, const json::Value*>> todo;
  for (const auto& [name, entries] : doc->object()) {
    auto m = map(name);
    if (!m) return m.error();
    todo.emplace_back(*m, &entries);
  }
  for (auto& [m, entries] : todo)
    if (auto r = m.spec().type == MapType::ProgArray ? load_prog_array(*this, m, *entries) : detail::load_json_value(m, *entries); !r)
      return r;
  return {};
}

Result<void> set_tail_call(Map& prog_array, uint32_t index, const LoadedProgram& program) {
  if (prog_array.spec().type == MapType::ProgArray && !detail::prog_array_claim(*prog_array.impl(), owner_tag(*program.data())))
    return make_error(Errc::InvalidArgument, "map '" + prog_array.name() + "' holds programs of another type or verified for another "
                                                 "context than '" + program.name() + "'");
  long rc = detail::prog_array_set(*prog_array.impl(), index, program.data()->entry);
  if (rc == detail::err::kTooBig)
    return make_error(Errc::MapFull, "map '" + prog_array.name() + "': index " + std::to_string(index) + " is beyond max_entries");
  if (rc < 0) return make_error(Errc::InvalidArgument, "map '" + prog_array.name() + "' is not a prog_array");
  return {};
}

// ---- LoadedProgram --------------------------------------------------------------------------------------
const std::string& LoadedProgram::name() const { return d_->info.name; }
const std::string& LoadedProgram::section() const { return d_->info.section; }
ProgType LoadedProgram::type() const { return d_->info.type; }
uint32_t LoadedProgram::id() const { return d_->id; }
Engine LoadedProgram::engine() const { return d_->entry->jit ? Engine::Jit : Engine::Interpreter; }
const Program& LoadedProgram::code() const { return d_->code; }
const VerifyReport* LoadedProgram::verify_report() const { return d_->verified ? &*d_->verified : nullptr; }

std::optional<SourceLine> LoadedProgram::source_line(uint32_t insn) const {
  if (insn >= d_->origin.size()) return std::nullopt;
  return d_->lines->at(d_->origin[insn].first, d_->origin[insn].second);
}

namespace {

Error run_error(const LoadedData& d, Error e) {
  e.where.file = d.file;
  e.where.section = d.info.section;
  e.where.program = d.info.name;
  if (e.where.insn && *e.where.insn < d.origin.size()) {
    if (auto l = d.lines->at(d.origin[*e.where.insn].first, d.origin[*e.where.insn].second)) {
      e.where.line = l->line;
      e.where.source = l->file + ":" + std::to_string(l->line) + (l->text.empty() ? "" : ": " + l->text);
    }
  }
  return e;
}

// Kept out of run_xdp's JIT path (its statistics are a checked-mode matter).
[[gnu::noinline]] Result<uint64_t> interpret(const LoadedData& d, const RunArgs& args, uint64_t* insns) {
  RunStats stats;
  auto r = detail::InterpreterAccess::make(d.entry->image).run(args, &stats);
  *insns = stats.insns_executed;
  return r;
}

// run_xdp inside another run (a helper running a program), or in the interpreter: on a pooled state.
[[gnu::noinline]] Result<uint64_t> run_xdp_pooled(const LoadedData& d, uint32_t worker, detail::XdpCtx& x, RedirectTarget& redirect,
                                                  uint64_t* insns) {
  detail::PooledRun pooled;
  detail::RunState& rs = pooled.state();
  rs.worker = worker;
  rs.shared = d.shared.get();
  rs.xdp = &x;
  const Region ctx_region{&x, detail::kXdpCtxVisible, false};
  auto r0 = d.entry->jit ? detail::run_jit_ctx(*d.entry->jit, rs, reinterpret_cast<uint64_t>(&x))
                         : interpret(d, {{reinterpret_cast<uint64_t>(&x), 0, 0, 0, 0}, {}, std::span<const Region>(&ctx_region, 1)}, insns);
  if (r0 && *r0 == static_cast<uint64_t>(XdpAction::Redirect)) redirect = rs.redirect;
  return r0;
}

}  // namespace

// The checks of run_xdp, out of its per-packet path.
[[gnu::noinline, gnu::cold]] Error xdp_refusal(const LoadedData& d, uint32_t worker) {
  if (d.info.type != ProgType::Xdp)
    return run_error(d, make_error(Errc::InvalidArgument, "not an XDP program (type " + std::string(to_string(d.info.type)) + ")"));
  if (worker >= d.workers)
    return run_error(d, make_error(Errc::InvalidArgument, "worker " + std::to_string(worker) + " is not below the " +
                                                               std::to_string(d.workers) + " workers given at load"));
  return run_error(d, make_error(Errc::InvalidArgument,
                                 "program '" + d.info.name + "' may write the packet: run it on a copy (XdpBuffer::assign), not a view"));
}

Result<XdpResult> LoadedProgram::run_xdp(XdpBuffer& buffer, const XdpRunOptions& opt) const {
  const LoadedData& d = *d_;
  // One result object, returned on every path, so it is built where the caller wants it.
  Result<XdpResult> out(std::in_place);
  const uint32_t worker = opt.worker;
  if (d.info.type != ProgType::Xdp || worker >= d.workers || (buffer.is_view() && !d.may_view)) [[unlikely]] {
    out = xdp_refusal(d, worker);
    return out;
  }
  detail::XdpCtx& x = buffer.ctx();
  x.md.ingress_ifindex = opt.ingress_ifindex;
  x.md.rx_queue_index = opt.rx_queue_index;
  XdpResult& res = *out;
  uint64_t insns = 0;
  // Nearly every run finds no run in progress on its thread: no pooled state to set up then.
  uint64_t r0;
  if (d.entry->jit && !detail::current_run()) {
    const detail::RunEnd end = detail::run_jit_xdp(*d.entry->jit, worker, d.shared.get(), x, res.redirect);
    if (end.faulted) [[unlikely]] {
      out = run_error(d, detail::outermost_fault());
      return out;
    }
    r0 = end.r0;
  } else {
    auto r = run_xdp_pooled(d, worker, x, res.redirect, &insns);
    if (!r) [[unlikely]] {
      out = run_error(d, r.error());
      return out;
    }
    r0 = *r;
  }
  res.r0 = r0;
  res.action = r0 <= static_cast<uint64_t>(XdpAction::Redirect) ? static_cast<XdpAction>(r0) : XdpAction::Aborted;
  res.insns = insns;
  return out;
}

namespace {
// What a run's r0 means for each of the socket-buffer types.
SkbResult& finish_skb(const detail::SkbCtx& s, uint64_t r0, SkbResult& res) {
  res.r0 = r0;
  res.tc_action = static_cast<TcAction>(static_cast<int32_t>(r0));
  const uint32_t len = detail::skb_len(s);
  res.keep = static_cast<uint32_t>(r0) < len ? static_cast<uint32_t>(r0) : len;
  res.clones = s.st.redirect_clones;
  return res;
}
}  // namespace

Result<SkbResult> LoadedProgram::run_skb(SkbBuffer& buffer, const SkbRunOptions& opt) const {
  const LoadedData& d = *d_;
  const bool skb_type = d.ctx_type && d.ctx_type->context != VerifyOptions::Context::Xdp;
  if (!skb_type)
    return run_error(d, make_error(Errc::InvalidArgument, "program '" + d.info.name + "' is not a tc or socket-filter program (type " +
                                                              std::string(to_string(d.info.type)) + (d.ctx_type ? "" : ", loaded for raw memory") +
                                                              ")"));
  if (opt.worker >= d.workers) return run_error(d, make_error(Errc::InvalidArgument, "worker is not below the workers given at load"));
  if (!buffer.valid())
    return run_error(d, make_error(Errc::InvalidArgument, "an skb is built from a frame of 14 (an Ethernet header) to " +
                                                              std::to_string(detail::kSkbMaxInput) + " bytes"));
  if (buffer.is_view() && !d.may_view)
    return run_error(d, make_error(Errc::InvalidArgument,
                                   "program '" + d.info.name + "' may write the packet: run it on a copy (SkbBuffer::assign), not a view"));
  detail::SkbCtx& s = buffer.ctx();
  s.st.redirect_clones = 0;
  const uint64_t ctx = reinterpret_cast<uint64_t>(&s);
  const std::span<uint8_t> packet = buffer.packet();
  Result<uint64_t> r0 = uint64_t{0};
  SkbResult res;
  if (d.entry->jit && !detail::current_run()) {
    // Nearly every run finds no run in progress on its thread: the thread's own state, set and
    // cleared field by field (as run_xdp's).
    const detail::RunEnd end = detail::outermost(
        *d.entry->jit, ctx, 0,
        [&](detail::RunState& rs) {
          rs.worker = opt.worker;
          rs.shared = d.shared.get();
          rs.skb = &s;
          rs.packet = packet;
        },
        [&](detail::RunState& rs, uint64_t ret) {
          rs.worker = 0;
          rs.shared = nullptr;
          rs.skb = nullptr;
          rs.packet = {};
          if (ret == static_cast<uint64_t>(TcAction::Redirect) && rs.redirect.kind != RedirectTarget::Kind::None)
            detail::take_redirect(res.redirect, rs.redirect);
        });
    if (end.faulted) [[unlikely]]
      return run_error(d, detail::outermost_fault());
    return std::move(finish_skb(s, end.r0, res));
  }
  detail::PooledRun pooled;
  detail::RunState& rs = pooled.state();
  rs.worker = opt.worker;
  rs.shared = d.shared.get();
  rs.skb = &s;
  if (d.entry->jit) {
    r0 = detail::run_jit_ctx(*d.entry->jit, rs, ctx, packet);
  } else {
    // struct __sk_buff is writable where the type allows; the checked interpreter lets a program
    // write any of its fields, which the helpers never trust. The packet's bounds after it, which
    // rewritten loads read, are read-only.
    const Region ctx_regions[] = {{&s, detail::kSkbCtxVisible, true}, {&s.data, 3 * sizeof(uint64_t), false}};
    r0 = interpret(d, {{ctx, 0, 0, 0, 0}, {}, ctx_regions}, &res.insns);
  }
  if (!r0) return run_error(d, r0.error());
  if (*r0 == static_cast<uint64_t>(TcAction::Redirect)) res.redirect = rs.redirect;
  return std::move(finish_skb(s, *r0, res));
}

Result<uint64_t> LoadedProgram::run_raw(std::span<uint8_t> mem, uint32_t worker) const {
  const LoadedData& d = *d_;
  if (worker >= d.workers) return run_error(d, make_error(Errc::InvalidArgument, "worker is not below the workers given at load"));
  detail::PooledRun pooled;
  detail::RunState& rs = pooled.state();
  rs.worker = worker;
  rs.shared = d.shared.get();
  if (d.verified && d.ctx_type)
    return run_error(d, make_error(Errc::InvalidArgument, "program '" + d.info.name + "' was verified for the " + d.ctx_type->name +
                                                              " context; run it with " + (d.ctx_type->type == ProgType::Xdp ? "run_xdp" : "run_skb")));
  if (d.verified && mem.size() < d.verified_memory)
    return run_error(d, make_error(Errc::InvalidArgument, "program '" + d.info.name + "' was verified for " +
                                                              std::to_string(d.verified_memory) + " bytes of memory; " +
                                                              std::to_string(mem.size()) + " given"));
  // A verified program runs on the memory it was verified for (r2 = that size, r1 = 0 for none),
  // as the verifier assumed.
  if (d.verified) mem = mem.first(d.verified_memory);
  RunArgs args;
  args.regs[0] = mem.empty() ? 0 : reinterpret_cast<uint64_t>(mem.data());
  args.regs[1] = mem.size();
  args.packet = mem;
  auto r0 = d.entry->jit ? detail::run_jit(*d.entry->jit, rs, args) : detail::InterpreterAccess::make(d.entry->image).run(args);
  if (!r0) return run_error(d, r0.error());
  return *r0;
}

}  // namespace ebpfvm
