// Maps: the state BPF programs share with each other and with the application, with Linux's
// semantics (update flags, error codes, per-CPU values). A Map is a shared handle: copies refer
// to the same map, which lives as long as any handle or any loaded program that uses it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm {

// The values of enum bpf_map_type in <linux/bpf.h>.
enum class MapType : uint32_t {
  Unspec = 0, Hash = 1, Array = 2, ProgArray = 3, PerfEventArray = 4, PercpuHash = 5, PercpuArray = 6,
  // StackTrace and CgroupArray load (objects declare them beside their packet programs), but no
  // helper ebpfvm has may use them, and they stay empty: there are no stacks or cgroups to record.
  StackTrace = 7, CgroupArray = 8,
  LruHash = 9, LruPercpuHash = 10, LpmTrie = 11, ArrayOfMaps = 12, HashOfMaps = 13, Devmap = 14,
  Cpumap = 16, Xskmap = 17, Queue = 22, Stack = 23, DevmapHash = 25, Ringbuf = 27,
};

// bpftool's name for the type ("hash", "percpu_array", "lpm_trie", ...).
std::string_view to_string(MapType type);
std::optional<MapType> map_type_from_string(std::string_view name);

// Update flags of bpf_map_update_elem.
inline constexpr uint64_t kAny = 0, kNoExist = 1, kExist = 2;

struct MapSpec {
  std::string name;
  MapType type = MapType::Unspec;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t map_flags = 0;
  std::shared_ptr<const MapSpec> inner;  // array_of_maps / hash_of_maps: the inner map's shape
  // Where the value's `struct bpf_spin_lock` is (from BTF), -1 when it has none. Programs may
  // take that lock and no other, and never load or store its word; updates leave it as it is.
  int32_t spin_lock_off = -1;
};

// A record a program sent to a ring buffer or perf event array.
struct MapRecord {
  uint32_t cpu = 0;  // worker that wrote it
  std::vector<uint8_t> data;
};

namespace detail {
class MapImpl;
}

class Map {
 public:
  // A new map not tied to any object (for example an inner map for a map-in-map).
  // `workers`: how many per-CPU slots per-CPU maps have.
  static Result<Map> create(const MapSpec& spec, uint32_t workers = 1);

  const MapSpec& spec() const;
  const std::string& name() const { return spec().name; }
  uint32_t id() const;          // unique in the process, as a map id is in the kernel
  uint32_t workers() const;     // per-CPU slots
  bool per_cpu() const;
  bool frozen() const;          // .rodata after load: read-only for programs and users
  // Bytes of a user-side value: value_size, or workers * round_up(value_size, 8) for per-CPU maps
  // (the layout of the bpf() syscall).
  size_t user_value_size() const;

  // The user side of bpf_map_{lookup,update,delete}_elem and bpf_map_get_next_key.
  // Errors: Errc::NotFound (-ENOENT), Exists (-EEXIST), MapFull (-E2BIG), InvalidArgument
  // (-EINVAL), PermissionDenied (-EPERM, frozen map), Unsupported (no such operation on this type).
  Result<std::vector<uint8_t>> lookup(std::span<const uint8_t> key) const;
  Result<void> update(std::span<const uint8_t> key, std::span<const uint8_t> value, uint64_t flags = kAny);
  Result<void> remove(std::span<const uint8_t> key);
  // The key after `key` (the first key when key is empty); NotFound after the last.
  Result<std::vector<uint8_t>> next_key(std::span<const uint8_t> key = {}) const;
  std::vector<std::vector<uint8_t>> keys() const;

  // Queue and stack maps (key_size 0).
  Result<void> push(std::span<const uint8_t> value, uint64_t flags = kAny);
  Result<std::vector<uint8_t>> pop();
  Result<std::vector<uint8_t>> peek() const;

  // Ring buffer and perf event array: records programs have sent, oldest first, removed from
  // the map. A sink, when set, receives records as they are submitted instead.
  std::vector<MapRecord> drain();
  void set_sink(std::function<void(const MapRecord&)> sink);

  // prog_array: the slot's program by id (see LoadedProgram::id), 0 to clear.
  // array_of_maps / hash_of_maps: update with a 4-byte map id as the value.

  // JSON in the shape of `bpftool -j map dump`: [{"key":["0x00",...],"value":["0x01",...]}, ...],
  // per-CPU maps with "values":[{"cpu":0,"value":[...]}, ...].
  // LRU maps: least recently used first, so that load_json of the dump restores their order.
  std::string dump_json() const;
  // The same, handed to `write` a piece at a time (a large map is never one string); `nonzero`
  // leaves out entries whose value is all zero bytes (untouched array slots).
  void dump_json(const std::function<void(std::string_view)>& write, bool nonzero = false) const;
  // Applies entries in the same shape (update with BPF_ANY). Fails, changing nothing, when an
  // entry's key or value has the wrong size.
  Result<void> load_json(std::string_view json);

  const std::shared_ptr<detail::MapImpl>& impl() const { return impl_; }
  explicit Map(std::shared_ptr<detail::MapImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<detail::MapImpl> impl_;
};

}  // namespace ebpfvm
