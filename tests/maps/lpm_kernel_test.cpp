// lpm_trie against the kernel's: the same random updates (every flag), deletes, lookups and
// get_next_key walks on both, compared result by result: return codes, values, the order of
// iteration and the keys it returns (stored as given, bits past the prefix included).
#include <bpf/bpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <random>

#include "kernel.hpp"
#include "maps/map_impl.hpp"
#include "support.hpp"

using namespace ebpfvm;

namespace {

// Every key of a walk from the start (next_key of nothing) to ENOENT.
template <class Next>
std::vector<std::vector<uint8_t>> walk(size_t key_size, Next next) {
  std::vector<std::vector<uint8_t>> out;
  std::vector<uint8_t> key(key_size), got(key_size);
  bool first = true;
  while (out.size() < 100000 && next(first ? nullptr : key.data(), got.data()) == 0) {
    out.push_back(got);
    key = got;
    first = false;
  }
  return out;
}

// one_length: every prefix as long (the one-length index's path), else lengths spread over the width.
void compare(uint32_t data_bytes, uint32_t seed, uint32_t one_length = 0) {
  INFO("data " << data_bytes << " bytes, seed " << seed);
  const uint32_t key_size = 4 + data_bytes, max = 300;
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  const int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "lpm_diff", key_size, 4, max, &opts);
  REQUIRE(fd >= 0);
  auto created = Map::create({"m", MapType::LpmTrie, key_size, 4, max, BPF_F_NO_PREALLOC, nullptr}, 1);
  REQUIRE(created.ok());
  detail::MapImpl& ours = *created->impl();
  std::mt19937 rng(seed);
  // Keys from few first bytes and lengths spread over the width: prefixes nest, share and part.
  auto random_key = [&] {
    std::vector<uint8_t> k(key_size);
    uint32_t len = rng() % 3 == 0 ? data_bytes * 8 : rng() % (data_bytes * 8 + 2);  // now and then past the width
    if (one_length) len = rng() % 50 ? one_length : rng() % (data_bytes * 8 + 1);   // and now and then another
    std::memcpy(k.data(), &len, 4);
    for (uint32_t i = 0; i < data_bytes; ++i) k[4 + i] = static_cast<uint8_t>(i < 2 ? rng() % 4 * 64 : rng());
    return k;
  };
  const auto kernel_rc = [](int r) { return r < 0 ? static_cast<long>(-errno) : 0L; };
  for (int op = 0; op < 3000; ++op) {
    INFO("operation " << op);
    std::vector<uint8_t> key = random_key();
    const uint32_t value = rng();
    switch (rng() % 4) {
      case 0: case 1: {
        const uint64_t flags = rng() % 3;  // BPF_ANY, BPF_NOEXIST, BPF_EXIST
        const long k = kernel_rc(bpf_map_update_elem(fd, key.data(), &value, flags));
        CHECK(ours.update(key.data(), &value, flags, 0) == k);
        break;
      }
      case 2: {
        const long k = kernel_rc(bpf_map_delete_elem(fd, key.data()));
        CHECK(ours.remove(key.data()) == k);
        break;
      }
      default: {
        // a lookup of a whole address (prefixlen = the width), as programs look up
        const uint32_t full = data_bytes * 8;
        std::memcpy(key.data(), &full, 4);
        uint32_t theirs = 0;
        const long k = kernel_rc(bpf_map_lookup_elem(fd, key.data(), &theirs));
        const void* mine = ours.lookup(key.data(), 0);
        CHECK((mine != nullptr) == (k == 0));
        if (mine && k == 0) CHECK(std::memcmp(mine, &theirs, 4) == 0);
      }
    }
    if (op % 100 == 99) {
      const auto kw = walk(key_size, [&](const void* k, void* n) { return bpf_map_get_next_key(fd, k, n); });
      const auto ow = walk(key_size, [&](const void* k, void* n) { return static_cast<int>(ours.next_key(k, n)); });
      CHECK(kw.size() == ow.size());
      CHECK(kw == ow);
      // from a key that may not be there
      std::vector<uint8_t> from = random_key(), kn(key_size), on(key_size);
      const long k = kernel_rc(bpf_map_get_next_key(fd, from.data(), kn.data()));
      CHECK(ours.next_key(from.data(), on.data()) == k);
      if (k == 0) CHECK(kn == on);
    }
  }
  close(fd);
}

}  // namespace

TEST_CASE("lpm_trie: updates, deletes, lookups and get_next_key's order are the kernel's", "[kernel]") {
  if (test::kernel::skip_all()) return;
  if (std::string why = test::kernel::refuses_map_type(BPF_MAP_TYPE_LPM_TRIE); !why.empty()) {
    std::printf("SKIP lpm_trie against the kernel: %s\n", why.c_str());
    return;
  }
  for (uint32_t seed : {1u, 2u, 3u}) {
    compare(4, seed);   // IPv4
    compare(16, seed);  // IPv6
    compare(1, seed);
    compare(4, seed, 24);  // one length: looked up through the index, which comes and goes as others appear
    compare(16, seed, 64);
  }
}
