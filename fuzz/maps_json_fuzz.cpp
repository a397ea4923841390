// libFuzzer target: arbitrary bytes as the JSON `--map-load` and Object::load_maps_json take, for
// one map whose kind and shape the first byte picks. Bad input must give an error, never a crash.
// When the entries load, each key of a hash or array map must hold the last value given for it,
// and the map's dump must load into a fresh map of the same shape and dump again with the same
// entries (and, for an LRU map, in the same order).
#include <algorithm>
#include <cstdlib>
#include <string>
#include <map>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "util/json.hpp"

namespace {

using ebpfvm::MapSpec;
using ebpfvm::MapType;

const MapSpec kSpecs[] = {
    {"hash", MapType::Hash, 4, 8, 16, 0, nullptr},
    {"hash_odd", MapType::Hash, 3, 5, 4, 0, nullptr},
    {"array", MapType::Array, 4, 6, 8, 0, nullptr},
    {"percpu_hash", MapType::PercpuHash, 2, 4, 8, 0, nullptr},
    {"percpu_array", MapType::PercpuArray, 4, 3, 4, 0, nullptr},
    {"lru", MapType::LruHash, 4, 4, 4, 0, nullptr},
    {"lpm", MapType::LpmTrie, 8, 4, 8, 1, nullptr},  // BPF_F_NO_PREALLOC
    {"queue", MapType::Queue, 0, 4, 4, 0, nullptr},
    {"stack", MapType::Stack, 0, 2, 4, 0, nullptr},
    {"devmap", MapType::Devmap, 4, 4, 4, 0, nullptr},
};
constexpr uint32_t kWorkers = 2;

void check(bool ok) {
  if (!ok) std::abort();
}

bool exact(MapType t) { return t == MapType::Hash || t == MapType::Array || t == MapType::PercpuHash || t == MapType::PercpuArray; }

// A byte as the format defines it: a string strtoll reads whole (base prefixes allowed), or a
// whole number, 0..255. The map accepted the document, so every byte here is one.
std::vector<uint8_t> bytes(const ebpfvm::json::Value& v) {
  std::vector<uint8_t> out;
  for (const auto& e : v.array()) {
    const double n = e.is_string() ? static_cast<double>(std::strtoll(e.string().c_str(), nullptr, 0)) : e.number();
    check(n >= 0 && n <= 255 && n == static_cast<double>(static_cast<int>(n)));
    out.push_back(static_cast<uint8_t>(n));
  }
  return out;
}

// A key as the format defines it: bytes, or a whole number stored little-endian in the key's size.
std::vector<uint8_t> key_bytes(const MapSpec& spec, const ebpfvm::json::Value& v) {
  if (!v.is_number()) return bytes(v);
  const double n = v.number();
  check(n >= 0 && n == static_cast<double>(static_cast<uint64_t>(n)));
  std::vector<uint8_t> out(spec.key_size);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (8 * i));
  return out;
}

// What each key was last given: the user-side value (per-CPU: every slot, 8-byte aligned).
std::map<std::vector<uint8_t>, std::vector<uint8_t>> expected(const MapSpec& spec, const ebpfvm::json::Value& doc, bool per_cpu) {
  std::map<std::vector<uint8_t>, std::vector<uint8_t>> last;
  const size_t slot = (spec.value_size + 7) / 8 * 8;
  for (const auto& e : doc.array()) {
    std::vector<uint8_t> value;
    if (per_cpu) {
      value.assign(kWorkers * slot, 0);
      for (const auto& cv : e.get("values")->array()) {
        const auto b = bytes(*cv.get("value"));
        std::copy(b.begin(), b.end(), value.begin() + static_cast<ptrdiff_t>(cv.get("cpu")->number()) * static_cast<ptrdiff_t>(slot));
      }
    } else {
      value = bytes(*e.get("value"));
    }
    last[key_bytes(spec, *e.get("key"))] = value;
  }
  return last;
}

// A dump's entries, sorted: [{"key":...},{"key":...}]
std::vector<std::string> entries(const std::string& dump) {
  std::vector<std::string> out;
  const std::string start = "{\"key\":";
  for (size_t at = dump.find(start); at != std::string::npos;) {
    const size_t next = dump.find(start, at + 1);
    out.push_back(dump.substr(at, (next == std::string::npos ? dump.size() - 1 : next - 1) - at));  // without "," or "]"
    at = next;
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const MapSpec& spec = kSpecs[data[0] % std::size(kSpecs)];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto map = ebpfvm::Map::create(spec, kWorkers);
  check(map.ok());
  if (!map->load_json(text).ok()) return 0;
  if (exact(spec.type)) {
    auto doc = ebpfvm::json::parse(text);
    check(doc.ok());
    const auto last = expected(spec, *doc, map->per_cpu());
    for (const auto& [key, value] : last) {
      auto got = map->lookup(key);
      check(got.ok() && *got == value);
    }
    if (spec.type == MapType::Hash || spec.type == MapType::PercpuHash) check(map->keys().size() == last.size());
  }
  const std::string dump = map->dump_json();
  auto again = ebpfvm::Map::create(spec, kWorkers);
  check(again.ok());
  check(again->load_json(dump).ok());
  // The same entries; in the same order only where order means something (LRU: which goes
  // first). A hash map lists its entries in bucket order, which depends on the order of insertion.
  const bool lru = spec.type == MapType::LruHash;
  check(lru ? again->dump_json() == dump : entries(again->dump_json()) == entries(dump));
  return 0;
}
