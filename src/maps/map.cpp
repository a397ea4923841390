// The map base class, the id registry, BPF_MAP_CREATE's checks, and the public Map handle.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"
#include "util/json.hpp"

namespace ebpfvm {
namespace detail {
namespace {

struct Registry {
  std::mutex mu;
  uint32_t next_id = 1;
  std::unordered_map<uint32_t, std::weak_ptr<MapImpl>> by_id;
};
Registry& registry() {
  static Registry* r = new Registry;  // outlives every map, whatever the destruction order
  return *r;
}

bool is_per_cpu(MapType t) {
  return t == MapType::PercpuArray || t == MapType::PercpuHash || t == MapType::LruPercpuHash;
}

}  // namespace

MapImpl::MapImpl(MapSpec spec, uint32_t workers)
    : spec_(std::move(spec)),
      workers_(workers ? workers : 1),
      per_cpu_(is_per_cpu(spec_.type)),
      program_lookup_(spec_.type != MapType::ProgArray && spec_.type != MapType::PerfEventArray && spec_.type != MapType::Ringbuf &&
                      spec_.type != MapType::StackTrace && spec_.type != MapType::CgroupArray) {
  std::lock_guard lk(registry().mu);
  id_ = registry().next_id++;
}

MapImpl::~MapImpl() {
  std::lock_guard lk(registry().mu);
  registry().by_id.erase(id_);
}

std::shared_ptr<MapImpl> find_map(uint32_t id) {
  std::lock_guard lk(registry().mu);
  auto it = registry().by_id.find(id);
  return it == registry().by_id.end() ? nullptr : it->second.lock();
}

long MapImpl::user_lookup(const void* key, void* out) {
  if (!per_cpu_) {
    void* v = lookup(key, 0);
    if (!v) return err::kNoEnt;
    std::memcpy(out, v, spec_.value_size);
    if (spec_.spin_lock_off >= 0) std::memset(static_cast<uint8_t*>(out) + spec_.spin_lock_off, 0, 4);  // as the kernel shows it
    return 0;
  }
  for (uint32_t w = 0; w < workers_; ++w) {
    void* v = lookup(key, w);
    if (!v) return err::kNoEnt;
    std::memset(static_cast<uint8_t*>(out) + size_t{w} * value_stride(), 0, value_stride());
    std::memcpy(static_cast<uint8_t*>(out) + size_t{w} * value_stride(), v, spec_.value_size);
  }
  return 0;
}

long MapImpl::user_update(const void* key, const void* value, uint64_t flags) {
  return update(key, value, flags, 0);
}

void MapImpl::set_sink(std::function<void(const MapRecord&)> sink) {
  std::lock_guard lk(sink_mu_);
  sink_ = std::move(sink);
}

uint64_t prealloc_bytes(const MapSpec& s, uint32_t workers) {
  const uint64_t n = s.max_entries, w = workers ? workers : 1;
  switch (s.type) {
    case MapType::Array: case MapType::Devmap: case MapType::Cpumap: case MapType::Xskmap: case MapType::StackTrace: case MapType::CgroupArray:
      return n * (round8(s.value_size) + 1);
    case MapType::PercpuArray: return n * round8(s.value_size) * w;
    case MapType::ArrayOfMaps: case MapType::ProgArray: return n * 32;
    case MapType::Hash: case MapType::PercpuHash: case MapType::LruHash: case MapType::LruPercpuHash:
    case MapType::DevmapHash: case MapType::HashOfMaps: {
      uint64_t buckets = 1;
      while (buckets < n && buckets < (1u << 22)) buckets <<= 1;
      return buckets * 16;
    }
    default: return 0;
  }
}

uint64_t worst_bytes(const MapSpec& s, uint32_t workers) {
  const uint64_t n = s.max_entries, w = workers ? workers : 1;
  const uint64_t value = round8(s.value_size), key = round8(s.key_size);
  switch (s.type) {
    case MapType::Hash: case MapType::LruHash: case MapType::DevmapHash:  // and a spare node per worker and the user side
      return prealloc_bytes(s, workers) + (n + w + 1) * (kHashNodeBytes + key + value);
    case MapType::PercpuHash: case MapType::LruPercpuHash:
      return prealloc_bytes(s, workers) + n * (kHashNodeBytes + key + value * w);
    case MapType::HashOfMaps: return prealloc_bytes(s, workers) + n * (kHashNodeBytes + key + 8);
    case MapType::Queue: case MapType::Stack: return n * (value + 48);  // a deque slot and a vector each
    case MapType::LpmTrie: return n * (2 * key + value + 112);         // a node (key, value) and an intermediate one each
    case MapType::Ringbuf: return n;                                    // the ring; records live in it
    default: return prealloc_bytes(s, workers);
  }
}

Result<std::shared_ptr<MapImpl>> create_map(const MapSpec& given, uint32_t workers) {
  MapSpec s = given;
  // As libbpf does: a perf event array without max_entries gets one slot per CPU.
  if (s.type == MapType::PerfEventArray && s.max_entries == 0) s.max_entries = workers ? workers : 1;
  auto bad = [&](const std::string& why) {
    return make_error(Errc::InvalidArgument, "map '" + s.name + "' (" + std::string(to_string(s.type)) + "): " + why);
  };
  const bool keyless = s.type == MapType::Queue || s.type == MapType::Stack || s.type == MapType::Ringbuf;
  if (s.max_entries == 0) return bad("max_entries must be above 0");
  if (!keyless && s.key_size == 0) return bad("key_size must be above 0");
  if (keyless && s.key_size != 0) return bad("key_size must be 0");
  if (s.type != MapType::Ringbuf && s.value_size == 0) return bad("value_size must be above 0");
  if (s.key_size > 512 || s.value_size > (1u << 20)) return bad("key or value is too large");
  if (s.spin_lock_off >= 0) {
    // as the kernel allows it: in the values of plain hash and array maps (and their LRU form)
    if (s.type != MapType::Hash && s.type != MapType::Array && s.type != MapType::LruHash)
      return bad("a bpf_spin_lock in its value is not supported for this map type");
    if (s.spin_lock_off % 4 || uint64_t{static_cast<uint32_t>(s.spin_lock_off)} + 4 > s.value_size)
      return bad("its bpf_spin_lock at offset " + std::to_string(s.spin_lock_off) + " is misaligned or outside the " +
                 std::to_string(s.value_size) + "-byte value");
  }
  if (worst_bytes(s, workers) > kDefaultMaxMapMemory)
    return bad("max_entries " + std::to_string(s.max_entries) + " may take " + std::to_string(worst_bytes(s, workers) >> 20) +
               " MiB when full, more than the limit of " + std::to_string(kDefaultMaxMapMemory >> 20) + " MiB");
  auto need_u32_key = [&]() { return s.key_size == 4; };
  std::shared_ptr<MapImpl> m;
  switch (s.type) {
    case MapType::StackTrace: case MapType::CgroupArray:
      // as the kernel checks them: u32 keys; a stack of u64 addresses; a cgroup's fd
      if (!need_u32_key()) return bad("key_size must be 4");
      if (s.type == MapType::StackTrace && (s.value_size % 8 || s.value_size > 127 * 8)) return bad("value_size must be a multiple of 8, at most 1016");
      if (s.type == MapType::CgroupArray && s.value_size != 4) return bad("value_size must be 4");
      m = make_array(s, workers);
      break;
    case MapType::Array: case MapType::PercpuArray: case MapType::Devmap: case MapType::Cpumap:
    case MapType::Xskmap: case MapType::ArrayOfMaps:
      if (!need_u32_key()) return bad("key_size must be 4");
      if (uint64_t{s.max_entries} * round8(s.value_size) * (is_per_cpu(s.type) ? workers : 1) > (1ull << 32))
        return bad("the array would take more than 4 GiB");
      if (s.type == MapType::ArrayOfMaps && (!s.inner || s.value_size != 4))
        return bad("needs an inner map definition and value_size 4");
      m = make_array(s, workers);
      break;
    case MapType::Hash: case MapType::PercpuHash: case MapType::LruHash: case MapType::LruPercpuHash:
    case MapType::DevmapHash: case MapType::HashOfMaps:
      if (s.type == MapType::HashOfMaps && (!s.inner || s.value_size != 4))
        return bad("needs an inner map definition and value_size 4");
      m = make_hash(s, workers);
      break;
    case MapType::LpmTrie:
      if (s.key_size <= 4 || s.key_size > 4 + 256) return bad("key_size must be 4 + 1..256 (struct bpf_lpm_trie_key)");
      m = make_lpm(s, workers);
      break;
    case MapType::ProgArray:
      if (!need_u32_key() || s.value_size != 4) return bad("key_size and value_size must be 4");
      m = make_prog_array(s, workers);
      break;
    case MapType::PerfEventArray:
      if (!need_u32_key() || s.value_size != 4) return bad("key_size and value_size must be 4");
      m = make_perf_array(s, workers);
      break;
    case MapType::Queue: case MapType::Stack:
      m = make_queue(s, workers);
      break;
    case MapType::Ringbuf:
      if (s.value_size != 0) return bad("value_size must be 0");
      if (s.max_entries < 4096 || (s.max_entries & (s.max_entries - 1)))
        return bad("max_entries must be a power of 2 and at least 4096 (a page)");
      m = make_ringbuf(s, workers);
      break;
    default:
      return make_error(Errc::Unsupported, "map '" + s.name + "': map type " +
                                               std::to_string(static_cast<uint32_t>(s.type)) + " is not supported");
  }
  if (!m) return make_error(Errc::OutOfMemory, "map '" + s.name + "': no memory for its " + std::to_string(s.max_entries) + " slots");
  std::lock_guard lk(registry().mu);
  registry().by_id[m->id()] = m;
  return m;
}

}  // namespace detail

// ---- names ------------------------------------------------------------------------------------
namespace {
struct TypeName {
  MapType type;
  std::string_view name;
};
constexpr TypeName kTypeNames[] = {
    {MapType::Hash, "hash"}, {MapType::Array, "array"}, {MapType::ProgArray, "prog_array"},
    {MapType::PerfEventArray, "perf_event_array"}, {MapType::PercpuHash, "percpu_hash"},
    {MapType::PercpuArray, "percpu_array"}, {MapType::LruHash, "lru_hash"},
    {MapType::LruPercpuHash, "lru_percpu_hash"}, {MapType::LpmTrie, "lpm_trie"},
    {MapType::ArrayOfMaps, "array_of_maps"}, {MapType::HashOfMaps, "hash_of_maps"}, {MapType::Devmap, "devmap"},
    {MapType::Cpumap, "cpumap"}, {MapType::Xskmap, "xskmap"}, {MapType::Queue, "queue"}, {MapType::Stack, "stack"},
    {MapType::DevmapHash, "devmap_hash"}, {MapType::Ringbuf, "ringbuf"}, {MapType::StackTrace, "stack_trace"},
    {MapType::CgroupArray, "cgroup_array"},
};

Error map_errno(long rc, const std::string& name, const char* op) {
  std::string where = "map '" + name + "': " + op + ": ";
  switch (rc) {
    case detail::err::kNoEnt: return make_error(Errc::NotFound, where + "no such element (-ENOENT)");
    case detail::err::kExist: return make_error(Errc::Exists, where + "element exists (-EEXIST)");
    case detail::err::kTooBig: return make_error(Errc::MapFull, where + "map is full (-E2BIG)");
    case detail::err::kPerm: return make_error(Errc::PermissionDenied, where + "map is frozen (-EPERM)");
    case detail::err::kNoMem: return make_error(Errc::OutOfMemory, where + "out of memory (-ENOMEM)");
    case detail::err::kNotSupp: return make_error(Errc::Unsupported, where + "not supported on this map type");
    default: return make_error(Errc::InvalidArgument, where + "invalid argument (" + std::to_string(rc) + ")");
  }
}

Result<void> check_len(const detail::MapImpl& m, std::span<const uint8_t> b, size_t want, const char* what) {
  if (b.size() == want) return {};
  return make_error(Errc::InvalidArgument, "map '" + m.spec().name + "': " + what + " is " + std::to_string(b.size()) +
                                               " bytes, the map's is " + std::to_string(want));
}

}  // namespace

std::string_view to_string(MapType type) {
  for (const auto& t : kTypeNames)
    if (t.type == type) return t.name;
  return "unknown";
}

std::optional<MapType> map_type_from_string(std::string_view name) {
  for (const auto& t : kTypeNames)
    if (t.name == name) return t.type;
  return std::nullopt;
}

// ---- the handle ------------------------------------------------------------------------------
Result<Map> Map::create(const MapSpec& spec, uint32_t workers) {
  auto m = detail::create_map(spec, workers);
  if (!m) return m.error();
  return Map(std::move(*m));
}

const MapSpec& Map::spec() const { return impl_->spec(); }
uint32_t Map::id() const { return impl_->id(); }
uint32_t Map::workers() const { return impl_->workers(); }
bool Map::per_cpu() const { return impl_->per_cpu(); }
bool Map::frozen() const { return impl_->frozen(); }
size_t Map::user_value_size() const { return impl_->user_value_size(); }

Result<std::vector<uint8_t>> Map::lookup(std::span<const uint8_t> key) const {
  if (auto r = check_len(*impl_, key, spec().key_size, "key"); !r) return r.error();
  maps::reclaim::Guard g;
  std::vector<uint8_t> out(impl_->user_value_size());
  long rc = impl_->user_lookup(key.data(), out.data());
  if (rc < 0) return map_errno(rc, name(), "lookup");
  return out;
}

Result<void> Map::update(std::span<const uint8_t> key, std::span<const uint8_t> value, uint64_t flags) {
  if (auto r = check_len(*impl_, key, spec().key_size, "key"); !r) return r.error();
  if (auto r = check_len(*impl_, value, impl_->user_value_size(), "value"); !r) return r.error();
  if (impl_->frozen()) return map_errno(detail::err::kPerm, name(), "update");
  maps::reclaim::Guard g;
  long rc = impl_->user_update(key.data(), value.data(), flags);
  if (rc < 0) return map_errno(rc, name(), "update");
  return {};
}

Result<void> Map::remove(std::span<const uint8_t> key) {
  if (auto r = check_len(*impl_, key, spec().key_size, "key"); !r) return r.error();
  if (impl_->frozen()) return map_errno(detail::err::kPerm, name(), "delete");
  maps::reclaim::Guard g;
  long rc = impl_->user_remove(key.data());
  if (rc < 0) return map_errno(rc, name(), "delete");
  return {};
}

Result<std::vector<uint8_t>> Map::next_key(std::span<const uint8_t> key) const {
  if (!key.empty())
    if (auto r = check_len(*impl_, key, spec().key_size, "key"); !r) return r.error();
  maps::reclaim::Guard g;
  std::vector<uint8_t> out(spec().key_size);
  long rc = impl_->next_key(key.empty() ? nullptr : key.data(), out.data());
  if (rc < 0) return map_errno(rc, name(), "next key");
  return out;
}

std::vector<std::vector<uint8_t>> Map::keys() const {
  std::vector<std::vector<uint8_t>> out;
  if (spec().key_size == 0) return out;
  auto k = next_key();
  // Bounded: a map changing under us cannot make this loop forever.
  for (uint64_t n = 0; k && n <= uint64_t{spec().max_entries} * 2; ++n) {
    out.push_back(*k);
    k = next_key(out.back());
  }
  return out;
}

Result<void> Map::push(std::span<const uint8_t> value, uint64_t flags) {
  if (auto r = check_len(*impl_, value, spec().value_size, "value"); !r) return r.error();
  long rc = impl_->push(value.data(), flags);
  if (rc < 0) return map_errno(rc, name(), "push");
  return {};
}

Result<std::vector<uint8_t>> Map::pop() {
  std::vector<uint8_t> out(spec().value_size);
  long rc = impl_->pop(out.data(), false);
  if (rc < 0) return map_errno(rc, name(), "pop");
  return out;
}

Result<std::vector<uint8_t>> Map::peek() const {
  std::vector<uint8_t> out(spec().value_size);
  long rc = impl_->pop(out.data(), true);
  if (rc < 0) return map_errno(rc, name(), "peek");
  return out;
}

std::vector<MapRecord> Map::drain() { return impl_->drain(); }
void Map::set_sink(std::function<void(const MapRecord&)> sink) { impl_->set_sink(std::move(sink)); }

// ---- JSON ------------------------------------------------------------------------------------
namespace {

void hex_array(std::string& out, const uint8_t* p, size_t n) {
  out += '[';
  for (size_t i = 0; i < n; ++i) {
    char b[8];
    std::snprintf(b, sizeof b, "%s\"0x%02x\"", i ? "," : "", p[i]);
    out += b;
  }
  out += ']';
}

// A JSON number as a whole number in [lo, hi], or -1 (the callers' "not one"): a double outside
// the integer type does not convert (undefined behaviour), and 1e300 or 2.5 is no byte or CPU.
long long whole(double d, long long lo, long long hi) {
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) return -1;
  return static_cast<long long>(d);
}

Result<std::vector<uint8_t>> bytes_of(const json::Value& v, const std::string& what) {
  if (!v.is_array()) return make_error(Errc::InvalidArgument, what + " is not an array of bytes");
  std::vector<uint8_t> out;
  for (const json::Value& e : v.array()) {
    long long b = -1;
    if (e.is_string()) {
      const std::string& s = e.string();
      char* end = nullptr;
      b = std::strtoll(s.c_str(), &end, 0);
      if (s.empty() || *end) b = -1;
    } else if (e.is_number()) {
      b = whole(e.number(), 0, 255);
    }
    if (b < 0 || b > 255) return make_error(Errc::InvalidArgument, what + " holds something that is not a byte");
    out.push_back(static_cast<uint8_t>(b));
  }
  return out;
}

}  // namespace

Result<std::vector<uint8_t>> detail::json_key(const json::Value& v, size_t key_size, const std::string& what) {
  if (!v.is_number()) return bytes_of(v, what);
  if (key_size != 1 && key_size != 2 && key_size != 4 && key_size != 8)
    return make_error(Errc::InvalidArgument, what + " is a number, but the key is " + std::to_string(key_size) + " bytes: give its bytes");
  // 2^53 is the largest whole number every double holds exactly
  const long long hi = key_size == 8 ? (1ll << 53) : static_cast<long long>((uint64_t{1} << (8 * key_size)) - 1);
  const long long n = whole(v.number(), 0, hi);
  if (n < 0) return make_error(Errc::InvalidArgument, what + " is not a whole number from 0 to " + std::to_string(hi));
  std::vector<uint8_t> out(key_size);
  for (size_t i = 0; i < key_size; ++i) out[i] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (8 * i));
  return out;
}

std::string Map::dump_json() const {
  std::string out;
  dump_json([&](std::string_view piece) { out += piece; });
  return out;
}

namespace {

// One entry of a dump, appended to `out`.
void entry_json(std::string& out, const detail::MapImpl& m, bool per_cpu, uint32_t workers, std::span<const uint8_t> key,
                const uint8_t* value) {
  out += "{\"key\":";
  hex_array(out, key.data(), key.size());
  if (per_cpu) {
    out += ",\"values\":[";
    const size_t stride = detail::round8(m.spec().value_size);
    for (uint32_t w = 0; w < workers; ++w) {
      out += w ? ",{\"cpu\":" : "{\"cpu\":";
      out += std::to_string(w) + ",\"value\":";
      hex_array(out, value + w * stride, m.spec().value_size);
      out += '}';
    }
    out += ']';
  } else {
    out += ",\"value\":";
    hex_array(out, value, m.spec().value_size);
  }
  out += '}';
}

}  // namespace

void Map::dump_json(const std::function<void(std::string_view)>& write, bool nonzero) const {
  std::string out = "[";
  bool first = true;
  std::vector<uint8_t> value(impl_->user_value_size());
  const auto emit = [&](std::span<const uint8_t> key) {
    if (nonzero && std::all_of(value.begin(), value.end(), [](uint8_t b) { return b == 0; })) return;
    if (!first) out += ',';
    first = false;
    entry_json(out, *impl_, per_cpu(), workers(), key, value.data());
    if (out.size() >= (1u << 16)) write(out), out.clear();  // in pieces: a map may hold millions
  };
  maps::reclaim::Guard g;
  if ((spec().type == MapType::Array || spec().type == MapType::PercpuArray) && spec().key_size == 4) {
    // Every index in turn, without building the list of keys (50 million in some programs).
    for (uint32_t i = 0; i < spec().max_entries; ++i) {
      const uint8_t key[4] = {static_cast<uint8_t>(i), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 24)};
      if (impl_->user_lookup(key, value.data()) == 0) emit(key);
    }
  } else {
    // An LRU map lists its keys most recently used first; dumped least recently used first, the
    // dump loaded back (in document order) leaves the same order, so the same entries go first.
    std::vector<std::vector<uint8_t>> order = keys();
    if (spec().type == MapType::LruHash || spec().type == MapType::LruPercpuHash) std::reverse(order.begin(), order.end());
    for (const auto& key : order)
      if (impl_->user_lookup(key.data(), value.data()) == 0) emit(key);  // else deleted meanwhile, or unreadable
  }
  out += ']';
  write(out);
}

Result<void> Map::load_json(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc) return doc.error();
  return detail::load_json_value(*this, *doc);
}

Result<void> detail::load_json_value(Map& map, const json::Value& doc) {
  const detail::MapImpl& impl = *map.impl();
  const MapSpec& spec = map.spec();
  if (!doc.is_array()) return make_error(Errc::InvalidArgument, "map '" + map.name() + "': JSON is not an array of entries");
  if (spec.type == MapType::ProgArray)
    return make_error(Errc::Unsupported, "map '" + map.name() + "': a prog_array holds programs: load it with its object "
                                             "(Object::load_maps_json, values naming programs) or set_tail_call");
  std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> entries;
  size_t i = 0;
  for (const json::Value& e : doc.array()) {
    const std::string at = "map '" + map.name() + "': entry " + std::to_string(i);
    const std::string entry = "entry " + std::to_string(i++);
    if (!e.is_object() || !e.get("key")) return make_error(Errc::InvalidArgument, at + " has no \"key\"");
    auto key = json_key(*e.get("key"), spec.key_size, at + " key");
    if (!key) return key.error();
    if (auto r = check_len(impl, *key, spec.key_size, (entry + " key").c_str()); !r) return r.error();
    std::vector<uint8_t> value;
    if (map.per_cpu()) {
      const json::Value* vs = e.get("values");
      if (!vs || !vs->is_array()) return make_error(Errc::InvalidArgument, at + " has no \"values\" (per-CPU map)");
      value.assign(impl.user_value_size(), 0);
      for (const json::Value& cv : vs->array()) {
        const json::Value* cpu = cv.get("cpu");
        const json::Value* val = cv.get("value");
        if (!cpu || !cpu->is_number() || !val) return make_error(Errc::InvalidArgument, at + " has a bad per-CPU value");
        const long long cpu_n = whole(cpu->number(), 0, static_cast<long long>(map.workers()) - 1);
        if (cpu_n < 0) {
          char n[32];
          std::snprintf(n, sizeof n, "%.17g", cpu->number());
          return make_error(Errc::InvalidArgument, at + " names cpu " + n + ", the map has " + std::to_string(map.workers()));
        }
        auto b = bytes_of(*val, at + " value");
        if (!b) return b.error();
        if (auto r = check_len(impl, *b, spec.value_size, (entry + " value").c_str()); !r) return r.error();
        std::copy(b->begin(), b->end(), value.begin() + cpu_n * detail::round8(spec.value_size));
      }
    } else {
      const json::Value* v = e.get("value");
      if (!v) return make_error(Errc::InvalidArgument, at + " has no \"value\"");
      auto b = bytes_of(*v, at + " value");
      if (!b) return b.error();
      if (auto r = check_len(impl, *b, spec.value_size, (entry + " value").c_str()); !r) return r.error();
      value = std::move(*b);
    }
    entries.emplace_back(std::move(*key), std::move(value));
  }
  for (const auto& [k, v] : entries)
    if (auto r = map.update(k, v, kAny); !r) return r;
  return {};
}

}  // namespace ebpfvm
