// Hash-shaped maps: hash, percpu_hash, lru_hash, lru_percpu_hash, devmap_hash, hash_of_maps.
//
// Readers never lock: they walk bucket lists of nodes that are unlinked, not freed, by writers and
// reclaimed once every run that could hold them ended (maps/reclaim). Writers lock the bucket,
// or, for LRU maps, the whole map (eviction unlinks from another bucket). Updating an existing
// key links a new node in place of the old one, as the kernel does, so a value pointer a program
// holds is never overwritten under it by another key's data. Per-CPU values are updated in place.
#include <new>
#include <vector>

#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"

namespace ebpfvm::detail {
namespace {

// The last n < 8 bytes as a little-endian word, without a call (keys are usually 2, 4 or 8 bytes
// and a variable-length memcpy is a library call per lookup).
inline uint64_t tail_word(const uint8_t* b, size_t n) {
  uint64_t w = 0;
  size_t o = 0;
  if (n & 4) {
    uint32_t x;
    std::memcpy(&x, b, 4);
    w = x;
    o = 4;
  }
  if (n & 2) {
    uint16_t x;
    std::memcpy(&x, b + o, 2);
    w |= uint64_t{x} << (o * 8);
    o += 2;
  }
  if (n & 1) w |= uint64_t{b[o]} << (o * 8);
  return w;
}

inline uint64_t word(const uint8_t* b) {
  uint64_t w;
  std::memcpy(&w, b, 8);
  return w;
}

uint64_t hash_bytes(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  for (; n >= 8; b += 8, n -= 8) {
    h = (h ^ word(b)) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  h = (h ^ tail_word(b, n)) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 29);
}

inline bool same_key(const uint8_t* a, const uint8_t* b, size_t n) {
  for (; n >= 8; a += 8, b += 8, n -= 8)
    if (word(a) != word(b)) return false;
  return tail_word(a, n) == tail_word(b, n);
}

// A chain link: a node's address, or (low bit set) the end of bucket i's chain, i << 1 | 1 (the
// kernel's "nulls" lists). A reader that ends on another bucket's end was moved there by a node
// that was reused while it walked (see Spares below), and walks its own bucket again.
using Link = uintptr_t;
inline bool is_end(Link l) { return l & 1; }
inline Link end_of(size_t bucket) { return Link{bucket} << 1 | 1; }

struct Node {
  std::atomic<Link> next{0};
  uint64_t hash = 0;
  Node* lru_prev = nullptr;
  Node* lru_next = nullptr;
  bool in_lru = false;
  std::atomic<bool> referenced{false};  // LRU: looked up since it last reached the tail
  std::shared_ptr<MapImpl> inner;  // hash_of_maps
  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
};
static_assert(sizeof(Node) % 8 == 0);
static_assert(sizeof(Node) + 16 <= kHashNodeBytes, "worst_bytes counts a node as kHashNodeBytes with malloc's header");

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

struct SpinLock {
  std::atomic<bool> held{false};
  void lock() {
    while (held.exchange(true, std::memory_order_acquire))
      while (held.load(std::memory_order_relaxed)) cpu_relax();
  }
  void unlock() { held.store(false, std::memory_order_release); }
};

inline Node* node_at(Link l) { return reinterpret_cast<Node*>(l); }
inline Link link_of(Node* n) { return reinterpret_cast<Link>(n); }

struct Bucket {
  std::atomic<Link> head{0};
  SpinLock lock;
};

class HashMap final : public MapImpl {
 public:
  HashMap(const MapSpec& s, uint32_t workers)
      : MapImpl(s, workers),
        lru_(s.type == MapType::LruHash || s.type == MapType::LruPercpuHash),
        of_maps_(s.type == MapType::HashOfMaps),
        key_stride_(round8(s.key_size)),
        value_bytes_(of_maps_ ? 8 : size_t{value_stride()} * (per_cpu() ? this->workers() : 1)),
        buckets_(bucket_count(s.max_entries)),
        spares_(size_t{this->workers()} + 1) {
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i].head.store(end_of(i), std::memory_order_relaxed);
  }

  ~HashMap() override {
    for (auto& s : spares_)
      if (Node* n = s.load()) free_node(n);
    for (Bucket& b : buckets_)
      for (Link l = b.head.load(); !is_end(l);) {
        Node* n = node_at(l);
        l = n->next.load();
        free_node(n);
      }
  }

  void* lookup(const void* key, uint32_t worker) override {
    const uint64_t h = hash_bytes(key, spec().key_size);
    Node* n = find(key, h);
    if (!n) return nullptr;
    if (lru_) touch(n);
    if (of_maps_) return n->inner.get();
    return n->data() + key_stride_ + (per_cpu() ? size_t{value_stride()} * worker : 0);
  }

  long update(const void* key, const void* value, uint64_t flags, uint32_t worker) override {
    if (of_maps_) return err::kNotSupp;
    return upsert(key, value, flags, static_cast<int>(worker), nullptr);
  }

  long user_update(const void* key, const void* value, uint64_t flags) override {
    if (of_maps_) {
      uint32_t id;
      std::memcpy(&id, value, 4);
      auto inner = find_map(id);
      const MapSpec& want = *spec().inner;
      if (!inner || inner->spec().type != want.type || inner->spec().key_size != want.key_size ||
          inner->spec().value_size != want.value_size)
        return err::kInval;
      return upsert(key, value, flags, -1, std::move(inner));
    }
    return upsert(key, value, flags, per_cpu() ? -1 : 0, nullptr);
  }

  long user_lookup(const void* key, void* out) override {
    if (!of_maps_) return MapImpl::user_lookup(key, out);
    auto* m = static_cast<MapImpl*>(lookup(key, 0));
    if (!m) return err::kNoEnt;
    uint32_t id = m->id();
    std::memcpy(out, &id, 4);
    return 0;
  }

  long remove(const void* key) override {
    const uint64_t h = hash_bytes(key, spec().key_size);
    Bucket& b = bucket(h);
    WriteLock lk(*this, b);
    std::atomic<Link>* link = &b.head;
    for (Link l = link->load(); !is_end(l); link = &node_at(l)->next, l = link->load()) {
      Node* n = node_at(l);
      if (n->hash == h && std::memcmp(n->data(), key, spec().key_size) == 0) {
        unlink(link, n);
        return 0;
      }
    }
    return err::kNoEnt;
  }

  void each_value(const std::function<bool(const uint8_t*, size_t)>& f) const override {
    if (of_maps_) return;
    for (const Bucket& b : buckets_)
      for (Link l = b.head.load(std::memory_order_acquire); !is_end(l); l = node_at(l)->next.load(std::memory_order_acquire))
        if (!f(node_at(l)->data() + key_stride_, value_bytes_)) return;
  }

  long next_key(const void* key, void* next) const override {
    size_t start = 0;
    if (key) {
      const uint64_t h = hash_bytes(key, spec().key_size);
      size_t bi = h & (buckets_.size() - 1);
      if (Node* n = find(key, h)) {
        const Link nl = n->next.load(std::memory_order_acquire);
        if (!is_end(nl)) {
          std::memcpy(next, node_at(nl)->data(), spec().key_size);
          return 0;
        }
        start = bi + 1;
      }
    }
    for (size_t i = start; i < buckets_.size(); ++i)
      if (const Link l = buckets_[i].head.load(std::memory_order_acquire); !is_end(l)) {
        std::memcpy(next, node_at(l)->data(), spec().key_size);
        return 0;
      }
    return err::kNoEnt;
  }

 private:
  // Bucket lock, or the map lock for LRU maps (whose eviction writes to other buckets).
  struct WriteLock {
    WriteLock(HashMap& m, Bucket& b) : m_(m), b_(b) {
      if (m_.lru_) m_.write_mu_.lock();
      else b_.lock.lock();
    }
    ~WriteLock() {
      if (m_.lru_) m_.write_mu_.unlock();
      else b_.lock.unlock();
    }
    HashMap& m_;
    Bucket& b_;
  };

  static size_t bucket_count(uint32_t max_entries) {
    size_t n = 1;
    while (n < max_entries && n < (1u << 22)) n <<= 1;
    return n;
  }
  Bucket& bucket(uint64_t h) { return buckets_[h & (buckets_.size() - 1)]; }

  Node* find(const void* key, uint64_t h) const {
    const size_t bi = h & (buckets_.size() - 1);
    for (;;) {
      Link l = buckets_[bi].head.load(std::memory_order_acquire);
      for (; !is_end(l); l = node_at(l)->next.load(std::memory_order_acquire)) {
        Node* n = node_at(l);
        if (n->hash == h && same_key(n->data(), static_cast<const uint8_t*>(key), spec().key_size)) return n;
      }
      if (l == end_of(bi)) return nullptr;
      // moved to another bucket's chain by a reused node: this bucket again
    }
  }

  // nullptr when the host has no memory left: the update fails with -ENOMEM, as in the kernel,
  // rather than throwing through the program that called it
  Node* new_node(const void* key, uint64_t h) {
    void* mem = ::operator new(sizeof(Node) + key_stride_ + value_bytes_, std::nothrow);
    if (!mem) return nullptr;
    Node* n = new (mem) Node;
    n->hash = h;
    std::memset(n->data(), 0, key_stride_ + value_bytes_);
    std::memcpy(n->data(), key, spec().key_size);
    return n;
  }
  static void free_node(void* p) {
    auto* n = static_cast<Node*>(p);
    n->~Node();
    ::operator delete(p);
  }

  // worker >= 0: value is one value (for per-CPU maps, that worker's slot); -1: all slots.
  void fill(Node* n, const void* value, int worker) {
    uint8_t* v = n->data() + key_stride_;
    if (of_maps_) return;
    if (!per_cpu()) {
      copy_in(v, value);  // a new node's lock word is 0
    } else if (worker >= 0) {
      std::memcpy(v + size_t{value_stride()} * worker, value, spec().value_size);
    } else {
      for (uint32_t w = 0; w < workers(); ++w)
        std::memcpy(v + size_t{value_stride()} * w, static_cast<const uint8_t*>(value) + size_t{value_stride()} * w,
                    spec().value_size);
    }
  }

  long upsert(const void* key, const void* value, uint64_t flags, int worker, std::shared_ptr<MapImpl> inner) {
    constexpr uint64_t kLock = 4;
    if ((flags & ~kLock) > kExist) return err::kInval;
    flags &= ~kLock;
    const uint64_t h = hash_bytes(key, spec().key_size);
    Bucket& b = bucket(h);
    WriteLock lk(*this, b);
    std::atomic<Link>* link = &b.head;
    Node* old = nullptr;
    for (Link l = link->load(); !is_end(l); link = &node_at(l)->next, l = link->load())
      if (Node* n = node_at(l); n->hash == h && std::memcmp(n->data(), key, spec().key_size) == 0) {
        old = n;
        break;
      }
    if (old && flags == kNoExist) return err::kExist;
    if (!old && flags == kExist) return err::kNoEnt;
    if (old && per_cpu()) {  // in place, as the kernel's per-CPU hash does
      fill(old, value, worker);
      if (lru_) touch(old);
      return 0;
    }
    if (!old) {
      if (lru_) {
        // LRU writers hold the map lock, so the count cannot change under us.
        if (count_.load() >= spec().max_entries && !evict_one()) return err::kTooBig;
        count_.fetch_add(1);
      } else if (count_.fetch_add(1) >= spec().max_entries) {
        // Writers of other buckets run concurrently: reserve the slot first, so that they cannot
        // all see room for one more.
        count_.fetch_sub(1);
        return err::kTooBig;
      }
    }
    // the worker's own spare; the user side (and a worker index out of range) the last one
    const size_t slot = worker >= 0 && static_cast<size_t>(worker) < workers() ? static_cast<size_t>(worker) : workers();
    std::atomic<Node*>* spare = old && spares_ok() ? &spares_[slot] : nullptr;
    Node* n = spare ? reuse(*spare, key, h) : nullptr;
    if (!n) n = new_node(key, h);
    if (!n) {
      if (!old) count_.fetch_sub(1);
      return err::kNoMem;
    }
    fill(n, value, worker);
    if (inner) n->inner = std::move(inner);
    if (old) {
      n->next.store(old->next.load());
      link->store(link_of(n), std::memory_order_release);
      lru_remove(old);
      // The replaced node is the next spare; one found there (another thread's) waits for readers.
      Node* left = spare ? spare->exchange(old) : old;
      if (left) maps::reclaim::retire(left, free_node);
    } else {
      n->next.store(b.head.load());
      b.head.store(link_of(n), std::memory_order_release);
    }
    lru_insert(n);
    return 0;
  }

  // Spares. Replacing a key's value links a new node in place of the old one, so that readers see
  // one or the other whole. The old node becomes the updating worker's spare and the worker's next
  // replacement fills it, with no allocation and no deferred free, as the kernel's preallocated
  // elements (and its per-CPU extra elements) are recycled. A spare is freed only with the map, so
  // a program still holding a pointer into it reads map memory, perhaps a later value (the kernel's
  // preallocated maps behave the same); a reader walking the chain it was in may be carried into
  // another bucket's chain, and walks its own again when it ends there (find()). Hash and LRU maps
  // have spares; per-CPU maps (updated in place) and maps of maps (a node owns a map) do not.
  // Deleted and evicted nodes are retired to maps/reclaim as before.
  bool spares_ok() const { return !of_maps_ && !per_cpu(); }
  // The worker's spare as a fresh node for `key`, or null.
  Node* reuse(std::atomic<Node*>& spare, const void* key, uint64_t h) {
    Node* n = spare.exchange(nullptr);
    if (!n) return nullptr;
    n->hash = h;
    n->referenced.store(false, std::memory_order_relaxed);
    std::memcpy(n->data(), key, spec().key_size);
    std::memset(n->data() + key_stride_, 0, value_bytes_);  // a value's lock word and padding start at 0
    return n;
  }

  // Caller holds the write lock.
  void unlink(std::atomic<Link>* link, Node* n) {
    link->store(n->next.load(), std::memory_order_release);
    lru_remove(n);
    count_.fetch_sub(1);
    maps::reclaim::retire(n, free_node);
  }

  // LRU maps only; the caller holds write_mu_. Second chance, as the kernel's LRU: a victim
  // looked up since it last got here goes back to the front instead (once per pass).
  bool evict_one() {
    Node* victim = nullptr;
    for (uint32_t spared = 0; (victim = lru_tail_) && victim->referenced.load(std::memory_order_relaxed) && spared <= count_.load(); ++spared) {
      victim->referenced.store(false, std::memory_order_relaxed);
      detach(victim);
      attach_front(victim);
    }
    if (!victim) return false;
    Bucket& b = bucket(victim->hash);
    std::atomic<Link>* link = &b.head;
    for (Link l = link->load(); !is_end(l); link = &node_at(l)->next, l = link->load())
      if (node_at(l) == victim) {
        unlink(link, victim);
        return true;
      }
    return false;
  }

  // A lookup only marks the element: reordering the list on every lookup would serialise every
  // reader of the map on one lock.
  static void touch(Node* n) {
    if (!n->referenced.load(std::memory_order_relaxed)) n->referenced.store(true, std::memory_order_relaxed);
  }
  void lru_insert(Node* n) {
    if (!lru_) return;
    attach_front(n);
  }
  void lru_remove(Node* n) {
    if (!lru_) return;
    if (n->in_lru) detach(n);
  }
  void attach_front(Node* n) {
    n->lru_prev = nullptr;
    n->lru_next = lru_head_;
    if (lru_head_) lru_head_->lru_prev = n;
    lru_head_ = n;
    if (!lru_tail_) lru_tail_ = n;
    n->in_lru = true;
  }
  void detach(Node* n) {
    (n->lru_prev ? n->lru_prev->lru_next : lru_head_) = n->lru_next;
    (n->lru_next ? n->lru_next->lru_prev : lru_tail_) = n->lru_prev;
    n->in_lru = false;
  }

  const bool lru_;
  const bool of_maps_;
  const size_t key_stride_;
  const size_t value_bytes_;
  std::vector<Bucket> buckets_;
  std::vector<std::atomic<Node*>> spares_;  // one per worker, and one for the user side
  std::atomic<uint32_t> count_{0};
  std::mutex write_mu_;  // LRU maps: all writers, and so the recency list (lookups only mark nodes)
  Node* lru_head_ = nullptr;
  Node* lru_tail_ = nullptr;
};

}  // namespace

std::shared_ptr<MapImpl> make_hash(const MapSpec& s, uint32_t workers) { return std::make_shared<HashMap>(s, workers); }

}  // namespace ebpfvm::detail
