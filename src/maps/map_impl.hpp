// The one interface every map type implements. Program-side calls (lookup/update/remove with a
// worker index) are what helpers reach; user-side calls see per-CPU values as one buffer of
// `workers` slots. Return values are 0 or a negative errno, as the kernel's helpers return.
#pragma once

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>

#include "ebpfvm/maps.hpp"

namespace ebpfvm::json {
class Value;
}

namespace ebpfvm::detail {

// Map::load_json on a parsed document (also used for a whole object's maps at once).
Result<void> load_json_value(Map& map, const json::Value& doc);
// An entry's key in map JSON: bpftool's array of bytes, or (for keys of 1, 2, 4 or 8 bytes) a
// whole number, stored little-endian as a program's integer key is. `what` names it in errors.
Result<std::vector<uint8_t>> json_key(const json::Value& v, size_t key_size, const std::string& what);

namespace err {
inline constexpr long kPerm = -1, kNoEnt = -2, kNoMem = -12, kBusy = -16, kExist = -17, kInval = -22,
                      kNoSpc = -28, kTooBig = -7, kNotSupp = -524, kAgain = -11;
}

inline uint32_t round8(uint32_t n) { return (n + 7u) & ~7u; }

class MapImpl {
 public:
  MapImpl(MapSpec spec, uint32_t workers);
  virtual ~MapImpl();
  MapImpl(const MapImpl&) = delete;
  MapImpl& operator=(const MapImpl&) = delete;

  const MapSpec& spec() const { return spec_; }
  uint32_t id() const { return id_; }
  uint32_t workers() const { return workers_; }
  bool per_cpu() const { return per_cpu_; }
  uint32_t value_stride() const { return round8(spec_.value_size); }
  size_t user_value_size() const { return per_cpu_ ? size_t{workers_} * value_stride() : spec_.value_size; }
  bool frozen() const { return frozen_.load(std::memory_order_acquire); }
  // A value into the map, all but its bpf_spin_lock word, which keeps what the map holds (the
  // kernel's copy_map_value): an update never takes or gives back a lock a program holds.
  void copy_in(void* slot, const void* value) const {
    const auto* v = static_cast<const uint8_t*>(value);
    auto* d = static_cast<uint8_t*>(slot);
    const int32_t l = spec_.spin_lock_off;
    if (l < 0) {
      std::memcpy(d, v, spec_.value_size);
      return;
    }
    std::memcpy(d, v, static_cast<size_t>(l));
    std::memcpy(d + l + 4, v + l + 4, spec_.value_size - static_cast<size_t>(l) - 4);
  }
  void freeze() { frozen_.store(true, std::memory_order_release); }

  // ---- program side ----
  // Pointer to the value (this worker's slot for per-CPU maps), or nullptr.
  virtual void* lookup(const void* key, uint32_t worker) = 0;
  virtual long update(const void* key, const void* value, uint64_t flags, uint32_t worker) = 0;
  virtual long remove(const void* key) = 0;
  // key == nullptr: the first key. -ENOENT after the last.
  virtual long next_key(const void* key, void* next) const = 0;
  virtual long push(const void*, uint64_t) { return err::kInval; }
  virtual long pop(void*, bool /*peek*/) { return err::kInval; }
  // Whether a program may call lookup/update/delete on this map (not on prog arrays, perf event
  // arrays, ring buffers). Not virtual: every map helper call asks.
  bool program_lookup_allowed() const { return program_lookup_; }

  // ---- user side ----
  virtual long user_lookup(const void* key, void* out);
  virtual long user_update(const void* key, const void* value, uint64_t flags);
  virtual long user_remove(const void* key) { return remove(key); }

  // ---- tests (the containment oracle) ----
  // Calls `f(first byte, bytes)` for each live element's value (all its per-CPU slots), in no
  // order, touching nothing (no LRU recency), while `f` returns true. Maps whose values are not
  // kept as elements (arrays: array_base) call nothing.
  virtual void each_value(const std::function<bool(const uint8_t*, size_t)>& f) const { (void)f; }

  // ---- ring buffers and perf event arrays ----
  virtual std::vector<MapRecord> drain() { return {}; }
  void set_sink(std::function<void(const MapRecord&)> sink);

  // The inner map an array/hash of maps holds at `key` (for the value "pointer" programs see).
  bool is_map_in_map() const { return spec_.type == MapType::ArrayOfMaps || spec_.type == MapType::HashOfMaps; }

 protected:
  std::mutex sink_mu_;
  std::function<void(const MapRecord&)> sink_;

 private:
  MapSpec spec_;
  uint32_t id_;
  uint32_t workers_;
  bool per_cpu_;
  bool program_lookup_;
  std::atomic<bool> frozen_{false};
};

// Bytes a map of this spec allocates up front (arrays, slots, hash buckets), for limits.
uint64_t prealloc_bytes(const MapSpec& spec, uint32_t workers);
// The most memory the map can hold when full: what it preallocates, plus, for the maps that grow
// (hash, LRU, LPM trie, queue, stack, hash of maps), max_entries entries with their overhead.
// Loads account this against LoadOptions::max_map_memory, as the kernel charges a map's memory
// when it is created, so a verified program cannot grow maps past what the host allowed.
uint64_t worst_bytes(const MapSpec& spec, uint32_t workers);
inline constexpr uint64_t kHashNodeBytes = 80;  // a hash entry's header and the allocator's own
inline constexpr uint64_t kDefaultMaxMapMemory = 1ull << 30;

// Creates a map of any supported type; checks the spec the way BPF_MAP_CREATE does.
Result<std::shared_ptr<MapImpl>> create_map(const MapSpec& spec, uint32_t workers);
// Every live map by id (map-in-map values and prog-array lookups by id go through this).
std::shared_ptr<MapImpl> find_map(uint32_t id);

// Factories, one per family (each in its own file).
std::shared_ptr<MapImpl> make_array(const MapSpec&, uint32_t workers);
std::shared_ptr<MapImpl> make_hash(const MapSpec&, uint32_t workers);
std::shared_ptr<MapImpl> make_lpm(const MapSpec&, uint32_t workers);
std::shared_ptr<MapImpl> make_queue(const MapSpec&, uint32_t workers);
std::shared_ptr<MapImpl> make_ringbuf(const MapSpec&, uint32_t workers);
std::shared_ptr<MapImpl> make_perf_array(const MapSpec&, uint32_t workers);
std::shared_ptr<MapImpl> make_prog_array(const MapSpec&, uint32_t workers);

// Perf event array: records one sample for `worker` (BPF_F_CURRENT_CPU resolved by the caller).
long perf_output(MapImpl& m, uint64_t index, uint32_t worker, const void* data, uint64_t size,
                 const void* extra, uint64_t extra_size);
// Ring buffer records.
void* ringbuf_reserve(MapImpl& m, uint64_t size, uint32_t worker);
void ringbuf_commit(void* rec, bool discard);
long ringbuf_output(MapImpl& m, const void* data, uint64_t size, uint32_t worker);

// Array maps: the storage of slot 0 onwards (global data sections live in slot 0).
uint8_t* array_base(MapImpl& m);

// prog_array slots hold opaque program entries; the interpreter defines what they are.
const void* prog_array_get(MapImpl& m, uint32_t index);
long prog_array_set(MapImpl& m, uint32_t index, std::shared_ptr<const void> entry);
// The kind of program a prog_array's slots and callers are (the kernel's owner type: type, how it
// was verified), fixed by the first program put in it or proven to tail-call through it. A tail
// call then never enters a program proven for another context. False when `tag` differs.
bool prog_array_claim(MapImpl& m, uint64_t tag);

}  // namespace ebpfvm::detail
