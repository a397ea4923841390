// lpm_trie: longest-prefix match on keys {u32 prefixlen; u8 data[]} (struct bpf_lpm_trie_key),
// as the kernel's kernel/bpf/lpm_trie.c builds it: a binary trie whose nodes hold a prefix (the
// data as given, bits past the prefix included), with intermediate nodes where two prefixes part.
// Lookups walk at most one node per bit of the key and take no lock: child pointers are atomic,
// a node is published only once complete, and nodes a writer unlinks are freed through
// maps/reclaim once no run can still be reading them. Writers take a mutex. Updates, deletes and
// get_next_key (a post-order walk) follow the kernel's algorithms step by step, so the order of
// iteration and the shape after deletes are the kernel's.
#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <new>
#include <vector>

#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"

namespace ebpfvm::detail {
namespace {

constexpr uint32_t kIntermediate = 1;

struct Node {
  std::atomic<Node*> child[2];
  uint32_t prefixlen;
  uint32_t flags;
  // then: data[data_size], padded to 8, then the value (real nodes only)
  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(this + 1); }
};

inline bool bit(const uint8_t* data, uint32_t index) { return data[index / 8] & (0x80u >> (index % 8)); }

class LpmMap final : public MapImpl {
 public:
  LpmMap(const MapSpec& s, uint32_t workers)
      : MapImpl(s, workers), data_size_(s.key_size - 4), value_off_(sizeof(Node) + round8(data_size_)) {}
  ~LpmMap() override { free_tree(root_.load(std::memory_order_relaxed)); }

  void* lookup(const void* key, uint32_t) override {
    const uint32_t want = prefixlen(key);
    const uint8_t* kd = static_cast<const uint8_t*>(key) + 4;
    // A table whose prefixes all have one length (a /24 or /32 block list) answers from a hash
    // table of them: one probe instead of a walk down the trie.
    if (index_len_.load(std::memory_order_acquire) != kNoIndex) {
      std::shared_lock lk(index_mu_);
      const uint32_t len = index_len_.load(std::memory_order_relaxed);
      if (len != kNoIndex) {
        if (want < len) return nullptr;
        Node* n = index_find(kd, len);
        return n ? value(n) : nullptr;
      }
    }
    Node* found = nullptr;
    for (Node* n = root_.load(std::memory_order_acquire); n;) {
      const uint32_t m = match(n, kd, want);
      if (m == max_bits()) {
        found = n;  // a whole-key match cannot have a longer one below it
        break;
      }
      if (m < n->prefixlen) break;
      if (!(n->flags & kIntermediate)) found = n;
      n = n->child[bit(kd, n->prefixlen)].load(std::memory_order_acquire);
    }
    return found ? value(found) : nullptr;
  }

  long update(const void* key, const void* val, uint64_t flags, uint32_t) override {
    if (flags > kExist) return err::kInval;
    const uint32_t len = prefixlen(key);
    if (len > max_bits()) return err::kInval;
    const uint8_t* kd = static_cast<const uint8_t*>(key) + 4;
    std::lock_guard lk(mu_);
    std::atomic<Node*>* slot = &root_;
    Node* n;
    uint32_t m = 0;
    while ((n = slot->load(std::memory_order_relaxed))) {
      m = match(n, kd, len);
      if (n->prefixlen != m || n->prefixlen == len || n->prefixlen == max_bits()) break;
      slot = &n->child[bit(kd, n->prefixlen)];
    }
    const bool replaces = n && n->prefixlen == m && m == len && !(n->flags & kIntermediate);
    if (replaces && flags == kNoExist) return err::kExist;
    if (!replaces && flags == kExist) return err::kNoEnt;
    if (!replaces && count_ >= spec().max_entries) return err::kNoSpc;
    Node* fresh = make(kd, len, 0);
    if (!fresh) return err::kNoMem;  // as the kernel: a failed update, not an exception through the program
    std::memcpy(value(fresh), val, spec().value_size);
    if (!indexed(fresh)) {
      free_node(fresh);
      return err::kNoMem;
    }
    if (!n) {  // an empty slot
      ++count_;
      slot->store(fresh, std::memory_order_release);
      return 0;
    }
    if (n->prefixlen == m && m == len) {  // the same prefix: the new node takes its place and children
      fresh->child[0].store(n->child[0].load(std::memory_order_relaxed), std::memory_order_relaxed);
      fresh->child[1].store(n->child[1].load(std::memory_order_relaxed), std::memory_order_relaxed);
      if (n->flags & kIntermediate) ++count_;
      slot->store(fresh, std::memory_order_release);
      retire(n);
      return 0;
    }
    ++count_;
    if (m == len) {  // the new prefix contains the node's: it goes above it
      fresh->child[bit(n->data(), m)].store(n, std::memory_order_relaxed);
      slot->store(fresh, std::memory_order_release);
      return 0;
    }
    // They part at bit m: an intermediate node of that length holds both.
    Node* im = make(n->data(), m, kIntermediate);
    if (!im) {
      --count_;
      unindex(fresh);
      free_node(fresh);
      return err::kNoMem;
    }
    const bool right = bit(kd, m);
    im->child[right].store(fresh, std::memory_order_relaxed);
    im->child[!right].store(n, std::memory_order_relaxed);
    slot->store(im, std::memory_order_release);
    return 0;
  }

  long remove(const void* key) override {
    const uint32_t len = prefixlen(key);
    if (len > max_bits()) return err::kInval;
    const uint8_t* kd = static_cast<const uint8_t*>(key) + 4;
    std::lock_guard lk(mu_);
    std::atomic<Node*>* trim = &root_;
    std::atomic<Node*>* trim2 = trim;
    Node* parent = nullptr;
    Node* n;
    uint32_t m = 0;
    while ((n = trim->load(std::memory_order_relaxed))) {
      m = match(n, kd, len);
      if (n->prefixlen != m || n->prefixlen == len) break;
      parent = n;
      trim2 = trim;
      trim = &n->child[bit(kd, n->prefixlen)];
    }
    if (!n || n->prefixlen != len || n->prefixlen != m || (n->flags & kIntermediate)) return err::kNoEnt;
    --count_;
    unindex(n);
    Node* c0 = n->child[0].load(std::memory_order_relaxed);
    Node* c1 = n->child[1].load(std::memory_order_relaxed);
    if (c0 && c1) {  // two children: it stays, as an intermediate node (its value is never read again)
      n->flags |= kIntermediate;
      return 0;
    }
    if (parent && (parent->flags & kIntermediate) && !c0 && !c1) {  // the parent goes too: its other child moves up
      Node* other = parent->child[0].load(std::memory_order_relaxed) == n ? parent->child[1].load(std::memory_order_relaxed)
                                                                           : parent->child[0].load(std::memory_order_relaxed);
      trim2->store(other, std::memory_order_release);
      retire(parent);
      retire(n);
      return 0;
    }
    trim->store(c0 ? c0 : c1, std::memory_order_release);
    retire(n);
    return 0;
  }

  // The kernel's order: post-order (children before their parent, left before right).
  long next_key(const void* key, void* next) const override {
    std::lock_guard lk(mu_);
    Node* search_root = root_.load(std::memory_order_relaxed);
    if (!search_root) return err::kNoEnt;
    const Node* found = nullptr;
    if (key && prefixlen(key) <= max_bits()) {
      const uint32_t len = prefixlen(key);
      const uint8_t* kd = static_cast<const uint8_t*>(key) + 4;
      std::vector<Node*> stack;
      Node* n;
      uint32_t m = 0;
      for (n = search_root; n;) {
        stack.push_back(n);
        m = match(n, kd, len);
        if (n->prefixlen != m || n->prefixlen == len) break;
        n = n->child[bit(kd, n->prefixlen)].load(std::memory_order_relaxed);
      }
      if (n && n->prefixlen == m && !(n->flags & kIntermediate)) {
        // the first node after it in post-order: its right sibling's subtree, else its parent
        n = stack.back();
        size_t at = stack.size() - 1;
        search_root = nullptr;
        while (at > 0 && !found) {
          Node* p = stack[at - 1];
          if (p->child[0].load(std::memory_order_relaxed) == n) {
            search_root = p->child[1].load(std::memory_order_relaxed);
            if (search_root) break;
          }
          if (!(p->flags & kIntermediate)) found = p;
          n = p;
          --at;
        }
        if (!found && !search_root) return err::kNoEnt;
      }
    }
    if (!found) {  // the leftmost node in post-order under search_root
      for (Node* n = search_root; n;) {
        if (n->flags & kIntermediate) {
          n = n->child[0].load(std::memory_order_relaxed);
        } else {
          found = n;
          n = n->child[0].load(std::memory_order_relaxed);
          if (!n) n = found->child[1].load(std::memory_order_relaxed);
        }
      }
    }
    std::memcpy(next, &found->prefixlen, 4);
    std::memcpy(static_cast<uint8_t*>(next) + 4, found->data(), data_size_);
    return 0;
  }

 private:
  uint32_t max_bits() const { return data_size_ * 8; }
  static uint32_t prefixlen(const void* key) {
    uint32_t l;
    std::memcpy(&l, key, 4);
    return l;
  }
  uint8_t* value(Node* n) const { return reinterpret_cast<uint8_t*>(n) + value_off_; }

  // The number of leading bits `n`'s prefix and the key share, at most both lengths.
  uint32_t match(const Node* n, const uint8_t* kd, uint32_t key_len) const {
    const uint32_t limit = std::min(n->prefixlen, key_len);
    const uint8_t* nd = n->data();
    uint32_t len = 0, i = 0;
    // eight bytes at a time (big-endian, so that the first differing bit is the highest), then one
    for (; i + 8 <= data_size_ && len < limit; i += 8, len += 64) {
      uint64_t a, b;
      std::memcpy(&a, nd + i, 8);
      std::memcpy(&b, kd + i, 8);
      if (const uint64_t diff = __builtin_bswap64(a ^ b)) return std::min(limit, len + static_cast<uint32_t>(__builtin_clzll(diff)));
    }
    if (i + 4 <= data_size_ && len < limit) {
      uint32_t a, b;
      std::memcpy(&a, nd + i, 4);
      std::memcpy(&b, kd + i, 4);
      if (const uint32_t diff = __builtin_bswap32(a ^ b)) return std::min(limit, len + static_cast<uint32_t>(__builtin_clz(diff)));
      i += 4, len += 32;
    }
    for (; i < data_size_ && len < limit; ++i, len += 8)
      if (const uint8_t diff = nd[i] ^ kd[i]) return std::min(limit, len + static_cast<uint32_t>(__builtin_clz(diff) - 24));
    return std::min(limit, len);
  }

  Node* make(const uint8_t* data, uint32_t len, uint32_t flags) {
    const size_t size = (flags & kIntermediate) ? value_off_ : value_off_ + round8(spec().value_size);
    void* mem = ::operator new(size, std::nothrow);
    if (!mem) return nullptr;
    Node* n = new (mem) Node{{nullptr, nullptr}, len, flags};
    std::memcpy(n->data(), data, data_size_);
    return n;
  }
  static void free_node(void* p) {
    static_cast<Node*>(p)->~Node();
    ::operator delete(p);
  }
  static void retire(Node* n) { maps::reclaim::retire(n, free_node); }
  static void free_tree(Node* n) {
    if (!n) return;
    free_tree(n->child[0].load(std::memory_order_relaxed));
    free_tree(n->child[1].load(std::memory_order_relaxed));
    free_node(n);
  }

  // ---- the one-length index: real nodes by their prefix, while every prefix has one length ----
  static constexpr uint32_t kNoIndex = UINT32_MAX;

  uint64_t hash(const uint8_t* d, uint32_t len) const {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    const uint32_t bytes = (len + 7) / 8;
    for (uint32_t i = 0; i < bytes; ++i) {
      const uint8_t b = i + 1 == bytes && len % 8 ? static_cast<uint8_t>(d[i] & (0xff00u >> (len % 8))) : d[i];
      h = (h ^ b) * 0x100000001b3ull;
    }
    return h ^ (h >> 29);
  }
  bool same_prefix(const uint8_t* a, const uint8_t* b, uint32_t len) const {
    const uint32_t whole = len / 8;
    if (std::memcmp(a, b, whole) != 0) return false;
    return len % 8 == 0 || ((a[whole] ^ b[whole]) & (0xff00u >> (len % 8))) == 0;
  }
  Node* index_find(const uint8_t* kd, uint32_t len) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = hash(kd, len) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      Node* n = slots_[i];
      if (!n) return nullptr;
      if (same_prefix(n->data(), kd, len)) return n;
    }
  }
  // Adds or replaces `n` in the index (writer side); false when memory runs out.
  bool indexed(Node* n) {
    const bool is_new_prefix = !find_real(n->data(), n->prefixlen);
    if (is_new_prefix) {
      try {
        ++lengths_[n->prefixlen];
      } catch (const std::bad_alloc&) {
        return false;
      }
    }
    std::unique_lock lk(index_mu_);
    if (lengths_.size() != 1) {
      drop_index();
      return true;
    }
    if (index_len_.load(std::memory_order_relaxed) == kNoIndex) return rebuild_index(n);
    return put(n);
  }
  void unindex(Node* n) {
    if (--lengths_[n->prefixlen] == 0) lengths_.erase(n->prefixlen);
    std::unique_lock lk(index_mu_);
    if (lengths_.size() != 1) {
      drop_index();
      return;
    }
    if (index_len_.load(std::memory_order_relaxed) == kNoIndex) {
      rebuild_index(nullptr, n);
      return;
    }
    erase(n);
  }
  // The real node holding exactly this prefix in the trie, or null (writer side).
  Node* find_real(const uint8_t* d, uint32_t len) const {
    for (Node* n = root_.load(std::memory_order_relaxed); n;) {
      const uint32_t m = match(n, d, len);
      if (n->prefixlen != m) return nullptr;
      if (n->prefixlen == len) return (n->flags & kIntermediate) ? nullptr : n;
      n = n->child[bit(d, n->prefixlen)].load(std::memory_order_relaxed);
    }
    return nullptr;
  }
  void drop_index() {
    index_len_.store(kNoIndex, std::memory_order_release);
    std::vector<Node*>().swap(slots_);
    used_ = 0;
  }
  // Every real node of the trie, plus `add`, less `skip`: the one length's index, from scratch.
  bool rebuild_index(Node* add, Node* skip = nullptr) {
    std::vector<Node*> all;
    std::vector<Node*> todo{root_.load(std::memory_order_relaxed)};
    while (!todo.empty()) {
      Node* n = todo.back();
      todo.pop_back();
      if (!n) continue;
      if (!(n->flags & kIntermediate) && n != skip) all.push_back(n);
      todo.push_back(n->child[0].load(std::memory_order_relaxed));
      todo.push_back(n->child[1].load(std::memory_order_relaxed));
    }
    if (add) all.push_back(add);
    size_t cap = 16;
    while (cap < all.size() * 2) cap *= 2;
    slots_.assign(cap, nullptr);
    used_ = 0;
    index_len_.store(all.empty() ? kNoIndex : all.front()->prefixlen, std::memory_order_release);
    if (all.empty()) return true;
    for (Node* n : all) put(n);
    return true;
  }
  bool put(Node* n) {
    if ((used_ + 1) * 2 > slots_.size()) return rebuild_index(n, find_real(n->data(), n->prefixlen));
    for (size_t i = hash(n->data(), n->prefixlen) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      if (!slots_[i]) {
        slots_[i] = n;
        ++used_;
        return true;
      }
      if (same_prefix(slots_[i]->data(), n->data(), n->prefixlen)) {  // the node replacing it
        slots_[i] = n;
        return true;
      }
    }
  }
  // Linear probing's deletion: later entries of the run move back into the hole.
  void erase(Node* n) {
    const size_t mask = slots_.size() - 1;
    size_t i = hash(n->data(), n->prefixlen) & mask;
    while (slots_[i] && slots_[i] != n) i = (i + 1) & mask;
    if (!slots_[i]) return;
    slots_[i] = nullptr;
    --used_;
    for (size_t j = (i + 1) & mask; slots_[j]; j = (j + 1) & mask) {
      const size_t home = hash(slots_[j]->data(), slots_[j]->prefixlen) & mask;
      // j's entry may fill the hole at i when its home is not in (i, j]
      if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
        slots_[i] = slots_[j];
        slots_[j] = nullptr;
        i = j;
      }
    }
  }

  const uint32_t data_size_;
  const size_t value_off_;
  std::map<uint32_t, uint32_t> lengths_;  // prefixes stored, by length (writer side)
  mutable std::shared_mutex index_mu_;     // the index: readers shared, writers exclusive
  std::atomic<uint32_t> index_len_{kNoIndex};
  std::vector<Node*> slots_;               // open addressing, linear probing; null: empty
  size_t used_ = 0;
  mutable std::mutex mu_;  // writers, and next_key (which walks with a stack)
  std::atomic<Node*> root_{nullptr};
  uint32_t count_ = 0;
};

}  // namespace

std::shared_ptr<MapImpl> make_lpm(const MapSpec& s, uint32_t workers) { return std::make_shared<LpmMap>(s, workers); }

}  // namespace ebpfvm::detail
