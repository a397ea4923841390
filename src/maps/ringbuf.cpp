// ringbuf: records reserved by a program, then submitted (visible to the reader) or discarded.
// Space works as in the kernel's ring: reserved and unread records together may not exceed
// max_entries bytes (each with an 8-byte header, rounded to 8), so a producer that outruns the
// reader sees reserve fail (NULL) and output fail with -EAGAIN.
#include <new>
#include <deque>
#include <vector>

#include "maps/map_impl.hpp"

namespace ebpfvm::detail {
namespace {

class RingbufMap;

struct Record {
  RingbufMap* owner;
  uint32_t size;
  uint32_t worker;
  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
};
static_assert(sizeof(Record) % 8 == 0);

class RingbufMap final : public MapImpl {
 public:
  RingbufMap(const MapSpec& s, uint32_t workers) : MapImpl(s, workers) {}

  void* lookup(const void*, uint32_t) override { return nullptr; }
  long update(const void*, const void*, uint64_t, uint32_t) override { return err::kNotSupp; }
  long remove(const void*) override { return err::kNotSupp; }
  long next_key(const void*, void*) const override { return err::kNotSupp; }
  long user_lookup(const void*, void*) override { return err::kNotSupp; }
  long user_update(const void*, const void*, uint64_t) override { return err::kNotSupp; }

  void* reserve(uint64_t size, uint32_t worker) {
    uint64_t cost = 8 + round8(static_cast<uint32_t>(std::min<uint64_t>(size, UINT32_MAX - 8)));
    std::lock_guard lk(mu_);
    if (size > spec().max_entries || used_ + cost > spec().max_entries) return nullptr;
    void* mem = ::operator new(sizeof(Record) + round8(static_cast<uint32_t>(size)), std::nothrow);
    if (!mem) return nullptr;  // no memory: a failed reservation, never an exception through the program
    used_ += cost;
    auto* r = new (mem) Record{this, static_cast<uint32_t>(size), worker};
    std::memset(r->data(), 0, size);
    return r->data();
  }

  void commit(Record* r, bool discard) {
    MapRecord rec{r->worker, {}};
    if (!discard) rec.data.assign(r->data(), r->data() + r->size);
    const uint64_t cost = 8 + round8(r->size);
    ::operator delete(r);
    std::lock_guard slk(sink_mu_);
    std::lock_guard lk(mu_);
    if (discard || sink_) {
      used_ -= cost;
      if (!discard) sink_(rec);
      return;
    }
    queued_.push_back(std::move(rec));  // its space is freed when the reader drains it
  }

  std::vector<MapRecord> drain() override {
    std::lock_guard lk(mu_);
    std::vector<MapRecord> out(std::make_move_iterator(queued_.begin()), std::make_move_iterator(queued_.end()));
    for (const MapRecord& r : out) used_ -= 8 + round8(static_cast<uint32_t>(r.data.size()));
    queued_.clear();
    return out;
  }

 private:
  std::mutex mu_;
  uint64_t used_ = 0;
  std::deque<MapRecord> queued_;
};

}  // namespace

std::shared_ptr<MapImpl> make_ringbuf(const MapSpec& s, uint32_t workers) {
  return std::make_shared<RingbufMap>(s, workers);
}

void* ringbuf_reserve(MapImpl& m, uint64_t size, uint32_t worker) {
  if (m.spec().type != MapType::Ringbuf) return nullptr;
  return static_cast<RingbufMap&>(m).reserve(size, worker);
}

void ringbuf_commit(void* data, bool discard) {
  auto* r = reinterpret_cast<Record*>(static_cast<uint8_t*>(data) - sizeof(Record));
  r->owner->commit(r, discard);
}

long ringbuf_output(MapImpl& m, const void* data, uint64_t size, uint32_t worker) {
  void* p = ringbuf_reserve(m, size, worker);
  if (!p) return err::kAgain;
  std::memcpy(p, data, size);
  ringbuf_commit(p, false);
  return 0;
}

}  // namespace ebpfvm::detail
