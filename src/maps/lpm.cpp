// lpm_trie: longest-prefix match on keys {u32 prefixlen; u8 data[]} (struct bpf_lpm_trie_key).
// Stored as one hash table per prefix length in use; a lookup probes the lengths present, longest
// first, so its cost grows with the number of distinct lengths, not with the number of prefixes.
// Readers take a shared lock; nodes are reclaimed through maps/reclaim like hash map nodes.
#include <new>
#include <map>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"

namespace ebpfvm::detail {
namespace {

class LpmMap final : public MapImpl {
 public:
  LpmMap(const MapSpec& s, uint32_t workers) : MapImpl(s, workers), data_bytes_(s.key_size - 4) {}
  ~LpmMap() override {
    for (auto& [len, table] : by_len_)
      for (auto& [k, v] : table) ::operator delete(v);
  }

  void* lookup(const void* key, uint32_t) override {
    uint32_t want = prefixlen(key);
    std::shared_lock lk(mu_);
    for (auto it = by_len_.begin(); it != by_len_.end(); ++it) {  // longest first
      if (it->first > want) continue;
      auto hit = it->second.find(masked(key, it->first));
      if (hit != it->second.end()) return hit->second;
    }
    return nullptr;
  }

  long update(const void* key, const void* value, uint64_t flags, uint32_t) override {
    if (flags > kExist) return err::kInval;
    uint32_t len = prefixlen(key);
    if (len > max_bits()) return err::kInval;
    std::unique_lock lk(mu_);
    auto& table = by_len_[len];
    std::string k = masked(key, len);
    auto it = table.find(k);
    if (it != table.end() && flags == kNoExist) return err::kExist;
    if (it == table.end() && flags == kExist) return err::kNoEnt;
    if (it == table.end() && count_ >= spec().max_entries) return err::kNoSpc;
    void* v = ::operator new(round8(spec().value_size), std::nothrow);
    if (!v) return err::kNoMem;  // as the kernel: a failed update, not an exception through the program
    std::memcpy(v, value, spec().value_size);
    if (it != table.end()) {
      maps::reclaim::retire(it->second, [](void* p) { ::operator delete(p); });
      it->second = v;
      return 0;
    }
    try {
      table.emplace(std::move(k), v);
    } catch (const std::bad_alloc&) {
      ::operator delete(v);
      return err::kNoMem;
    }
    ++count_;
    return 0;
  }

  long remove(const void* key) override {
    uint32_t len = prefixlen(key);
    if (len > max_bits()) return err::kInval;
    std::unique_lock lk(mu_);
    auto t = by_len_.find(len);
    if (t == by_len_.end()) return err::kNoEnt;
    auto it = t->second.find(masked(key, len));
    if (it == t->second.end()) return err::kNoEnt;
    maps::reclaim::retire(it->second, [](void* p) { ::operator delete(p); });
    t->second.erase(it);
    if (t->second.empty()) by_len_.erase(t);
    --count_;
    return 0;
  }

  // Order: longest prefixes first, then by key bytes (a stable order; the kernel's differs).
  long next_key(const void* key, void* next) const override {
    std::shared_lock lk(mu_);
    std::vector<std::pair<uint32_t, std::string>> all;
    for (const auto& [len, table] : by_len_) {
      std::map<std::string, bool> sorted;
      for (const auto& [k, v] : table) sorted.emplace(k, true);
      for (const auto& [k, v] : sorted) all.emplace_back(len, k);
    }
    size_t i = 0;
    if (key) {
      uint32_t len = prefixlen(key);
      std::string k = len <= max_bits() ? masked(key, len) : std::string();
      for (; i < all.size(); ++i)
        if (all[i].first == len && all[i].second == k) break;
      i = i < all.size() ? i + 1 : 0;  // an unknown key restarts from the first
    }
    if (i >= all.size()) return err::kNoEnt;
    std::memcpy(next, &all[i].first, 4);
    std::memcpy(static_cast<uint8_t*>(next) + 4, all[i].second.data(), data_bytes_);
    return 0;
  }

 private:
  uint32_t max_bits() const { return data_bytes_ * 8; }
  static uint32_t prefixlen(const void* key) {
    uint32_t l;
    std::memcpy(&l, key, 4);
    return l;
  }
  // The key's data with every bit after `len` cleared.
  std::string masked(const void* key, uint32_t len) const {
    std::string k(static_cast<const char*>(key) + 4, data_bytes_);
    for (uint32_t byte = 0; byte < data_bytes_; ++byte) {
      uint32_t bits = len > byte * 8 ? std::min(8u, len - byte * 8) : 0;
      k[byte] = static_cast<char>(static_cast<uint8_t>(k[byte]) & static_cast<uint8_t>(0xff00u >> bits));
    }
    return k;
  }

  const uint32_t data_bytes_;
  mutable std::shared_mutex mu_;
  std::map<uint32_t, std::unordered_map<std::string, void*>, std::greater<>> by_len_;
  uint32_t count_ = 0;
};

}  // namespace

std::shared_ptr<MapImpl> make_lpm(const MapSpec& s, uint32_t workers) { return std::make_shared<LpmMap>(s, workers); }

}  // namespace ebpfvm::detail
