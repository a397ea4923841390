// queue (FIFO) and stack (LIFO) maps: no keys; push/pop/peek. Pushing to a full map fails with
// -E2BIG unless BPF_EXIST is given, which drops the oldest element to make room (as Linux does).
#include <new>
#include <deque>
#include <vector>

#include "maps/map_impl.hpp"

namespace ebpfvm::detail {
namespace {

class QueueMap final : public MapImpl {
 public:
  QueueMap(const MapSpec& s, uint32_t workers) : MapImpl(s, workers), lifo_(s.type == MapType::Stack) {}

  void* lookup(const void*, uint32_t) override { return nullptr; }
  long update(const void*, const void* value, uint64_t flags, uint32_t) override { return push(value, flags); }
  long remove(const void*) override { return err::kInval; }
  long next_key(const void*, void*) const override { return err::kInval; }
  long user_lookup(const void*, void* out) override { return pop(out, true); }

  long push(const void* value, uint64_t flags) override {
    if (flags & ~kExist) return err::kInval;
    std::lock_guard lk(mu_);
    if (items_.size() >= spec().max_entries) {
      if (flags != kExist) return err::kTooBig;
      items_.pop_front();  // the oldest, for a queue and a stack alike
    }
    const auto* b = static_cast<const uint8_t*>(value);
    try {
      items_.emplace_back(b, b + spec().value_size);
    } catch (const std::bad_alloc&) {
      return err::kNoMem;  // as the kernel: a failed push, not an exception through the program
    }
    return 0;
  }

  long pop(void* out, bool peek) override {
    std::lock_guard lk(mu_);
    if (items_.empty()) return err::kNoEnt;
    auto& v = lifo_ ? items_.back() : items_.front();
    std::memcpy(out, v.data(), v.size());
    if (!peek) {
      if (lifo_) items_.pop_back();
      else items_.pop_front();
    }
    return 0;
  }

 private:
  const bool lifo_;
  std::mutex mu_;
  std::deque<std::vector<uint8_t>> items_;
};

}  // namespace

std::shared_ptr<MapImpl> make_queue(const MapSpec& s, uint32_t workers) { return std::make_shared<QueueMap>(s, workers); }

}  // namespace ebpfvm::detail
