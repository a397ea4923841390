// Array-shaped maps: u32 index keys, every slot preallocated. Lookups are lock-free: an index
// check and address arithmetic.
//   array, percpu_array      every slot always exists; delete is -EINVAL
//   devmap, cpumap, xskmap   slots exist once the user sets them (redirect targets)
//   array_of_maps            slots hold inner maps; a program's lookup yields the inner map
//   prog_array               slots hold programs for bpf_tail_call
//   perf_event_array         slots are per-CPU event streams; records go to the sink
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"

namespace ebpfvm::detail {
namespace {

uint32_t index_of(const void* key) {
  uint32_t i;
  std::memcpy(&i, key, 4);
  return i;
}

long check_flags(uint64_t flags) {
  constexpr uint64_t kLock = 4;
  if ((flags & ~kLock) > kExist) return err::kInval;
  return 0;
}

long array_next_key(const void* key, void* next, uint32_t max) {
  uint32_t i = key ? index_of(key) : UINT32_MAX;
  uint32_t n = (!key || i >= max) ? 0 : i + 1;
  if (n >= max) return err::kNoEnt;
  std::memcpy(next, &n, 4);
  return 0;
}

class ArrayMap final : public MapImpl {
 public:
  ArrayMap(const MapSpec& s, uint32_t workers)
      : MapImpl(s, workers),
        elem_(size_t{value_stride()} * (per_cpu() ? this->workers() : 1)),
        sparse_(s.type == MapType::Devmap || s.type == MapType::Cpumap || s.type == MapType::Xskmap || s.type == MapType::StackTrace ||
                s.type == MapType::CgroupArray),
        data_(static_cast<uint64_t*>(std::calloc(elem_ * s.max_entries / 8 + 1, 8))),
        present_(sparse_ ? s.max_entries : 0) {}

  void* lookup(const void* key, uint32_t worker) override {
    uint32_t i = index_of(key);
    if (i >= spec().max_entries) return nullptr;
    if (sparse_ && !present_[i].load(std::memory_order_acquire)) return nullptr;
    return slot(i, per_cpu() ? worker : 0);
  }

  long update(const void* key, const void* value, uint64_t flags, uint32_t worker) override {
    if (long rc = check_flags(flags); rc) return rc;
    uint32_t i = index_of(key);
    if (i >= spec().max_entries) return err::kTooBig;
    if (!sparse_ && flags == kNoExist) return err::kExist;
    if (sparse_ && flags == kNoExist && present_[i].load()) return err::kExist;
    if (sparse_ && flags == kExist && !present_[i].load()) return err::kNoEnt;
    if (per_cpu()) std::memcpy(slot(i, worker), value, spec().value_size);
    else copy_in(slot(i, 0), value);
    if (sparse_) present_[i].store(true, std::memory_order_release);
    return 0;
  }

  long user_update(const void* key, const void* value, uint64_t flags) override {
    // stacks are recorded by bpf_get_stackid, cgroups named by an fd: neither exists here
    if (spec().type == MapType::StackTrace || spec().type == MapType::CgroupArray) return err::kNotSupp;
    if (!per_cpu()) return update(key, value, flags, 0);
    if (long rc = check_flags(flags); rc) return rc;
    uint32_t i = index_of(key);
    if (i >= spec().max_entries) return err::kTooBig;
    if (flags == kNoExist) return err::kExist;
    for (uint32_t w = 0; w < workers(); ++w)
      std::memcpy(slot(i, w), static_cast<const uint8_t*>(value) + size_t{w} * value_stride(), spec().value_size);
    return 0;
  }

  long remove(const void* key) override {
    if (!sparse_) return err::kInval;
    uint32_t i = index_of(key);
    if (i >= spec().max_entries) return err::kInval;
    if (!present_[i].exchange(false)) return err::kNoEnt;
    return 0;
  }

  long next_key(const void* key, void* next) const override { return array_next_key(key, next, spec().max_entries); }

  // Global data: the whole value of slot 0 (used by the loader for .data/.rodata/.bss).
  uint8_t* base() { return reinterpret_cast<uint8_t*>(data_.get()); }
  bool allocated() const { return data_ != nullptr; }

 private:
  void* slot(uint32_t i, uint32_t worker) { return base() + elem_ * i + size_t{value_stride()} * worker; }

  size_t elem_;
  bool sparse_;
  // 8-byte aligned, zero-filled as the kernel's. calloc, not a vector: a large array comes as
  // fresh pages the kernel zeroes when first touched, instead of a memset of all of it at load.
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<uint64_t[], Free> data_;
  std::vector<std::atomic<bool>> present_;
};

// Slots holding shared objects (maps, programs): a raw pointer for the program's fast path and
// a keepalive that is retired, not dropped, when replaced.
class ObjectSlots {
 public:
  explicit ObjectSlots(uint32_t n) : ptr_(n), keep_(n) {}
  const void* get(uint32_t i) const { return i < ptr_.size() ? ptr_[i].load(std::memory_order_acquire) : nullptr; }
  std::shared_ptr<const void> get_shared(uint32_t i) const {
    std::lock_guard lk(mu_);
    return i < keep_.size() ? keep_[i] : nullptr;
  }
  // Returns the previous holder so the caller can check NOEXIST/EXIST before calling.
  void set(uint32_t i, std::shared_ptr<const void> obj) {
    std::lock_guard lk(mu_);
    ptr_[i].store(obj.get(), std::memory_order_release);
    if (keep_[i]) {
      // A program may be running the old object: free the last reference only after it ended.
      auto* old = new std::shared_ptr<const void>(std::move(keep_[i]));
      maps::reclaim::retire(old, [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); });
    }
    keep_[i] = std::move(obj);
  }
  size_t size() const { return ptr_.size(); }

 private:
  mutable std::mutex mu_;
  std::vector<std::atomic<const void*>> ptr_;
  std::vector<std::shared_ptr<const void>> keep_;
};

long object_update(ObjectSlots& slots, const void* key, uint64_t flags, std::shared_ptr<const void> obj) {
  if (long rc = check_flags(flags); rc) return rc;
  uint32_t i = index_of(key);
  if (i >= slots.size()) return err::kTooBig;
  bool has = slots.get(i) != nullptr;
  if (flags == kNoExist && has) return err::kExist;
  if (flags == kExist && !has) return err::kNoEnt;
  slots.set(i, std::move(obj));
  return 0;
}

long object_remove(ObjectSlots& slots, const void* key) {
  uint32_t i = index_of(key);
  if (i >= slots.size()) return err::kInval;
  if (!slots.get(i)) return err::kNoEnt;
  slots.set(i, nullptr);
  return 0;
}

bool inner_matches(const MapSpec& want, const MapSpec& got) {
  return want.type == got.type && want.key_size == got.key_size && want.value_size == got.value_size &&
         (want.type == MapType::Array ? want.max_entries == got.max_entries : true);
}

class ArrayOfMaps final : public MapImpl {
 public:
  ArrayOfMaps(const MapSpec& s, uint32_t workers) : MapImpl(s, workers), slots_(s.max_entries) {}
  // The "value" a program sees is the inner map itself.
  void* lookup(const void* key, uint32_t) override { return const_cast<void*>(slots_.get(index_of(key))); }
  long update(const void*, const void*, uint64_t, uint32_t) override { return err::kNotSupp; }
  long remove(const void*) override { return err::kNotSupp; }
  long next_key(const void* key, void* next) const override { return array_next_key(key, next, spec().max_entries); }
  long user_lookup(const void* key, void* out) override {
    const auto* m = static_cast<const MapImpl*>(slots_.get(index_of(key)));
    if (!m) return err::kNoEnt;
    uint32_t id = m->id();
    std::memcpy(out, &id, 4);
    return 0;
  }
  long user_update(const void* key, const void* value, uint64_t flags) override {
    uint32_t id;
    std::memcpy(&id, value, 4);
    auto inner = find_map(id);
    if (!inner || !inner_matches(*spec().inner, inner->spec())) return err::kInval;
    return object_update(slots_, key, flags, std::shared_ptr<const void>(inner, inner.get()));
  }
  long user_remove(const void* key) override { return object_remove(slots_, key); }

 private:
  ObjectSlots slots_;
};

class ProgArray final : public MapImpl {
 public:
  ProgArray(const MapSpec& s, uint32_t workers) : MapImpl(s, workers), slots_(s.max_entries) {}
  void* lookup(const void*, uint32_t) override { return nullptr; }
  long update(const void*, const void*, uint64_t, uint32_t) override { return err::kNotSupp; }
  long remove(const void*) override { return err::kNotSupp; }
  long next_key(const void* key, void* next) const override { return array_next_key(key, next, spec().max_entries); }
  long user_lookup(const void*, void*) override { return err::kNotSupp; }  // as the kernel: ids are not readable
  long user_update(const void*, const void*, uint64_t) override { return err::kNotSupp; }  // use set_program
  long user_remove(const void* key) override { return object_remove(slots_, key); }
  ObjectSlots& slots() { return slots_; }
  bool claim(uint64_t tag) {
    uint64_t none = 0;
    return owner_.compare_exchange_strong(none, tag) || none == tag;
  }

 private:
  ObjectSlots slots_;
  std::atomic<uint64_t> owner_{0};
};

class PerfArray final : public MapImpl {
 public:
  PerfArray(const MapSpec& s, uint32_t workers) : MapImpl(s, workers) {}
  void* lookup(const void*, uint32_t) override { return nullptr; }
  long update(const void*, const void*, uint64_t, uint32_t) override { return err::kNotSupp; }
  long remove(const void*) override { return err::kNotSupp; }
  long next_key(const void*, void*) const override { return err::kNoEnt; }
  long user_lookup(const void*, void*) override { return err::kNotSupp; }
  long user_update(const void*, const void*, uint64_t) override { return err::kNotSupp; }

  void output(MapRecord rec) {
    {
      std::lock_guard lk(sink_mu_);
      if (sink_) {
        sink_(rec);
        return;
      }
    }
    std::lock_guard lk(mu_);
    // the reader fell behind: dropped, as a full perf ring drops. Each record counts its header
    // too (as the kernel's perf ring stores one), so empty records cannot pile up without limit.
    const size_t cost = rec.data.size() + sizeof(MapRecord);
    if (queued_ + cost > kMaxQueued) return;
    try {
      records_.push_back(std::move(rec));
    } catch (const std::bad_alloc&) {
      return;  // no memory: lost like a record that finds the ring full
    }
    queued_ += cost;
  }
  std::vector<MapRecord> drain() override {
    std::lock_guard lk(mu_);
    queued_ = 0;
    return std::move(records_);
  }

 private:
  static constexpr size_t kMaxQueued = 64u << 20;  // bytes held for drain() before records are lost
  std::mutex mu_;
  std::vector<MapRecord> records_;
  size_t queued_ = 0;
};

}  // namespace

std::shared_ptr<MapImpl> make_array(const MapSpec& s, uint32_t workers) {
  if (s.type == MapType::ArrayOfMaps) return std::make_shared<ArrayOfMaps>(s, workers);
  auto m = std::make_shared<ArrayMap>(s, workers);
  return m->allocated() ? m : nullptr;  // nullptr: no memory for the slots
}
std::shared_ptr<MapImpl> make_prog_array(const MapSpec& s, uint32_t workers) {
  return std::make_shared<ProgArray>(s, workers);
}
std::shared_ptr<MapImpl> make_perf_array(const MapSpec& s, uint32_t workers) {
  return std::make_shared<PerfArray>(s, workers);
}

uint8_t* array_base(MapImpl& m) { return static_cast<ArrayMap&>(m).base(); }

const void* prog_array_get(MapImpl& m, uint32_t index) {
  if (m.spec().type != MapType::ProgArray) return nullptr;
  return static_cast<ProgArray&>(m).slots().get(index);
}

long prog_array_set(MapImpl& m, uint32_t index, std::shared_ptr<const void> entry) {
  if (m.spec().type != MapType::ProgArray) return err::kInval;
  auto& slots = static_cast<ProgArray&>(m).slots();
  if (index >= slots.size()) return err::kTooBig;
  slots.set(index, std::move(entry));
  return 0;
}

bool prog_array_claim(MapImpl& m, uint64_t tag) {
  return m.spec().type == MapType::ProgArray && static_cast<ProgArray&>(m).claim(tag);
}

long perf_output(MapImpl& m, uint64_t index, uint32_t worker, const void* data, uint64_t size, const void* extra,
                 uint64_t extra_size) {
  if (m.spec().type != MapType::PerfEventArray) return err::kInval;
  if (index >= m.spec().max_entries) return err::kTooBig;
  MapRecord rec;
  rec.cpu = worker;
  rec.data.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  if (extra_size) rec.data.insert(rec.data.end(), static_cast<const uint8_t*>(extra),
                                  static_cast<const uint8_t*>(extra) + extra_size);
  static_cast<PerfArray&>(m).output(std::move(rec));
  return 0;
}

}  // namespace ebpfvm::detail
