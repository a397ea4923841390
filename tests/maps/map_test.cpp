// Maps through the user-side API: Linux's semantics and error codes, iteration, JSON dump/load.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <set>

#include "maps/map_impl.hpp"
#include "packets.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

Map make(MapType t, uint32_t k, uint32_t v, uint32_t max, uint32_t workers = 1, uint32_t flags = 0) {
  auto m = Map::create({"m", t, k, v, max, flags, nullptr}, workers);
  if (!m) FAIL(m.error().to_string());
  return std::move(*m);
}

std::vector<uint8_t> u32(uint32_t v) { return as_bytes(v); }
std::vector<uint8_t> u64(uint64_t v) { return as_bytes(v); }

}  // namespace

TEST_CASE("array: fixed slots, zero-filled, no delete, NOEXIST fails") {
  Map m = make(MapType::Array, 4, 8, 3);
  CHECK(read_as<uint64_t>(*m.lookup(u32(2))) == 0);
  REQUIRE(m.update(u32(1), u64(77)).ok());
  CHECK(read_as<uint64_t>(*m.lookup(u32(1))) == 77);
  CHECK(m.update(u32(3), u64(1)).error().code == Errc::MapFull);
  CHECK(m.update(u32(0), u64(1), kNoExist).error().code == Errc::Exists);
  CHECK(m.remove(u32(0)).error().code == Errc::InvalidArgument);
  CHECK(m.lookup(u32(3)).error().code == Errc::NotFound);
  CHECK(m.update(u32(0), u64(1), 8).error().code == Errc::InvalidArgument);
  CHECK(m.keys().size() == 3);
  CHECK(read_as<uint32_t>(*m.next_key(u32(99))) == 0);  // an invalid key restarts
  CHECK(m.next_key(u32(2)).error().code == Errc::NotFound);
  auto bad = m.update(u32(0), u32(1));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "map 'm': value is 4 bytes, the map's is 8");
}

TEST_CASE("dump_json: in pieces for a map of millions, the same bytes as one string, and nonzero leaves out zero values") {
  Map big = make(MapType::Array, 4, 8, 1'000'000);
  REQUIRE(big.update(u32(7), u64(1)).ok());
  REQUIRE(big.update(u32(999'999), u64(0x0200)).ok());
  std::string touched;
  size_t pieces = 0;
  big.dump_json([&](std::string_view p) { touched += p, ++pieces; }, true);
  CHECK(touched == R"([{"key":["0x07","0x00","0x00","0x00"],"value":["0x01","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]},)"
                   R"({"key":["0x3f","0x42","0x0f","0x00"],"value":["0x00","0x02","0x00","0x00","0x00","0x00","0x00","0x00"]}])");
  size_t bytes = 0;
  pieces = 0;
  big.dump_json([&](std::string_view p) { bytes += p.size(), ++pieces; });
  CHECK(pieces > 1000);  // never one 100 MB string
  CHECK(bytes > 1'000'000u * 90);
  // Every kind: the pieces make the string dump_json() returns, which loads back.
  for (MapType t : {MapType::Hash, MapType::PercpuArray, MapType::LruHash}) {
    Map m = make(t, 4, 8, 16, 2);
    for (uint32_t k = 0; k < 5; ++k) REQUIRE(m.update(u32(k * 3), std::vector<uint8_t>(m.user_value_size(), static_cast<uint8_t>(k))).ok());
    std::string joined;
    m.dump_json([&](std::string_view p) { joined += p; });
    CHECK(joined == m.dump_json());
    Map copy = make(t, 4, 8, 16, 2);
    REQUIRE(copy.load_json(joined).ok());
    CHECK(copy.dump_json() == joined);
  }
}

TEST_CASE("hash: flags, capacity, delete, iteration") {
  Map m = make(MapType::Hash, 4, 4, 2);
  REQUIRE(m.update(u32(1), u32(10), kNoExist).ok());
  CHECK(m.update(u32(1), u32(11), kNoExist).error().code == Errc::Exists);
  CHECK(m.update(u32(2), u32(20), kExist).error().code == Errc::NotFound);
  REQUIRE(m.update(u32(2), u32(20)).ok());
  auto full = m.update(u32(3), u32(30));
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code == Errc::MapFull);
  CHECK(full.error().message == "map 'm': update: map is full (-E2BIG)");
  REQUIRE(m.update(u32(1), u32(12), kExist).ok());  // replacing needs no room
  CHECK(read_as<uint32_t>(*m.lookup(u32(1))) == 12);
  CHECK(m.remove(u32(3)).error().code == Errc::NotFound);
  REQUIRE(m.remove(u32(2)).ok());
  REQUIRE(m.update(u32(3), u32(30)).ok());
  auto keys = m.keys();
  REQUIRE(keys.size() == 2);
  std::set<uint32_t> got{read_as<uint32_t>(keys[0]), read_as<uint32_t>(keys[1])};
  CHECK(got == std::set<uint32_t>{1, 3});
}

TEST_CASE("lru_hash: the least recently used element goes") {
  Map m = make(MapType::LruHash, 4, 4, 3);
  for (uint32_t k : {1, 2, 3}) REQUIRE(m.update(u32(k), u32(k)).ok());
  REQUIRE(m.lookup(u32(1)).ok());  // 2 is now the oldest
  REQUIRE(m.update(u32(4), u32(4)).ok());
  CHECK(m.lookup(u32(2)).error().code == Errc::NotFound);
  REQUIRE(m.update(u32(5), u32(5)).ok());  // then 3
  CHECK(m.lookup(u32(3)).error().code == Errc::NotFound);
  for (uint32_t k : {1, 4, 5}) CHECK(m.lookup(u32(k)).ok());
}

TEST_CASE("lru_hash: a dump loaded back keeps which element goes first (found by maps_json_fuzz)") {
  // Dumped least recently used first: loaded in document order, the same element is the oldest.
  Map m = make(MapType::LruHash, 4, 4, 3);
  for (uint32_t k : {1, 2, 3}) REQUIRE(m.update(u32(k), u32(k)).ok());
  REQUIRE(m.lookup(u32(1)).ok());  // 2 is now the oldest, then 3, then 1
  CHECK(m.dump_json().find("\"key\":[\"0x02\"") == 2);
  Map copy = make(MapType::LruHash, 4, 4, 3);
  REQUIRE(copy.load_json(m.dump_json()).ok());
  CHECK(copy.dump_json() == m.dump_json());
  REQUIRE(copy.update(u32(4), u32(4)).ok());
  CHECK(copy.lookup(u32(2)).error().code == Errc::NotFound);
  for (uint32_t k : {1, 3, 4}) CHECK(copy.lookup(u32(k)).ok());
}

TEST_CASE("per-CPU maps: one slot per worker, values rounded to 8 bytes") {
  Map a = make(MapType::PercpuArray, 4, 4, 2, 3);
  CHECK(a.per_cpu());
  CHECK(a.user_value_size() == 24);
  std::vector<uint8_t> v(24, 0);
  v[0] = 1;
  v[8] = 2;
  v[16] = 3;
  REQUIRE(a.update(u32(1), v).ok());
  CHECK(*a.lookup(u32(1)) == v);
  CHECK(a.dump_json() ==
        "[{\"key\":[\"0x00\",\"0x00\",\"0x00\",\"0x00\"],\"values\":["
        "{\"cpu\":0,\"value\":[\"0x00\",\"0x00\",\"0x00\",\"0x00\"]},"
        "{\"cpu\":1,\"value\":[\"0x00\",\"0x00\",\"0x00\",\"0x00\"]},"
        "{\"cpu\":2,\"value\":[\"0x00\",\"0x00\",\"0x00\",\"0x00\"]}]},"
        "{\"key\":[\"0x01\",\"0x00\",\"0x00\",\"0x00\"],\"values\":["
        "{\"cpu\":0,\"value\":[\"0x01\",\"0x00\",\"0x00\",\"0x00\"]},"
        "{\"cpu\":1,\"value\":[\"0x02\",\"0x00\",\"0x00\",\"0x00\"]},"
        "{\"cpu\":2,\"value\":[\"0x03\",\"0x00\",\"0x00\",\"0x00\"]}]}]");
  Map h = make(MapType::PercpuHash, 4, 8, 4, 2);
  REQUIRE(h.update(u32(9), std::vector<uint8_t>(16, 5)).ok());
  CHECK(*h.lookup(u32(9)) == std::vector<uint8_t>(16, 5));
}

TEST_CASE("lpm_trie: the longest matching prefix wins") {
  Map m = make(MapType::LpmTrie, 8, 4, 16, 1, 1);
  auto key = [](uint32_t len, std::array<uint8_t, 4> a) {
    std::vector<uint8_t> k(8);
    std::memcpy(k.data(), &len, 4);
    std::memcpy(k.data() + 4, a.data(), 4);
    return k;
  };
  REQUIRE(m.update(key(8, {10, 0, 0, 0}), u32(1)).ok());
  REQUIRE(m.update(key(16, {10, 1, 99, 99}), u32(2)).ok());  // bits past the prefix are ignored
  REQUIRE(m.update(key(32, {10, 1, 2, 3}), u32(3)).ok());
  CHECK(read_as<uint32_t>(*m.lookup(key(32, {10, 1, 2, 3}))) == 3);
  CHECK(read_as<uint32_t>(*m.lookup(key(32, {10, 1, 2, 4}))) == 2);
  CHECK(read_as<uint32_t>(*m.lookup(key(32, {10, 9, 9, 9}))) == 1);
  CHECK(m.lookup(key(32, {11, 0, 0, 0})).error().code == Errc::NotFound);
  CHECK(read_as<uint32_t>(*m.lookup(key(12, {10, 1, 2, 3}))) == 1);  // a 12-bit query cannot use /16
  CHECK(m.update(key(33, {0, 0, 0, 0}), u32(1)).error().code == Errc::InvalidArgument);
  REQUIRE(m.remove(key(16, {10, 1, 0, 0})).ok());
  CHECK(read_as<uint32_t>(*m.lookup(key(32, {10, 1, 2, 4}))) == 1);
  auto keys = m.keys();
  REQUIRE(keys.size() == 2);
  CHECK(keys[0] == key(32, {10, 1, 2, 3}));  // longest first
  CHECK(keys[1] == key(8, {10, 0, 0, 0}));
}

TEST_CASE("queue and stack") {
  Map q = make(MapType::Queue, 0, 4, 2);
  REQUIRE(q.push(u32(1)).ok());
  REQUIRE(q.push(u32(2)).ok());
  CHECK(q.push(u32(3)).error().code == Errc::MapFull);
  REQUIRE(q.push(u32(3), kExist).ok());  // drops the oldest (1)
  CHECK(read_as<uint32_t>(*q.peek()) == 2);
  CHECK(read_as<uint32_t>(*q.pop()) == 2);
  CHECK(read_as<uint32_t>(*q.pop()) == 3);
  CHECK(q.pop().error().code == Errc::NotFound);
  Map s = make(MapType::Stack, 0, 4, 4);
  for (uint32_t v : {1, 2, 3}) REQUIRE(s.push(u32(v)).ok());
  CHECK(read_as<uint32_t>(*s.pop()) == 3);
  CHECK(read_as<uint32_t>(*s.pop()) == 2);
  CHECK(Map::create({"q", MapType::Queue, 4, 4, 2, 0, nullptr}).error().message == "map 'q' (queue): key_size must be 0");
}

TEST_CASE("map creation checks the definition as BPF_MAP_CREATE does") {
  CHECK(Map::create({"a", MapType::Array, 8, 4, 1, 0, nullptr}).error().message == "map 'a' (array): key_size must be 4");
  CHECK(Map::create({"h", MapType::Hash, 4, 4, 0, 0, nullptr}).error().message == "map 'h' (hash): max_entries must be above 0");
  CHECK(Map::create({"r", MapType::Ringbuf, 0, 0, 1000, 0, nullptr}).error().message ==
        "map 'r' (ringbuf): max_entries must be a power of 2 and at least 4096 (a page)");
  CHECK(Map::create({"o", MapType::ArrayOfMaps, 4, 4, 1, 0, nullptr}).error().message ==
        "map 'o' (array_of_maps): needs an inner map definition and value_size 4");
  CHECK(Map::create({"x", static_cast<MapType>(15), 4, 4, 1, 0, nullptr}).error().code == Errc::Unsupported);  // sockmap
  CHECK(Map::create({"s", MapType::StackTrace, 4, 12, 8, 0, nullptr}).error().message ==
        "map 's' (stack_trace): value_size must be a multiple of 8, at most 1016");
  CHECK(Map::create({"c", MapType::CgroupArray, 4, 8, 1, 0, nullptr}).error().message == "map 'c' (cgroup_array): value_size must be 4");
  auto st = Map::create({"s", MapType::StackTrace, 4, 16, 8, 0, nullptr});
  REQUIRE(st.ok());
  CHECK_FALSE(st->lookup(as_bytes<uint32_t>(0)).ok());  // no stack was ever recorded
  CHECK(st->update(as_bytes<uint32_t>(0), std::vector<uint8_t>(16)).error().message.find("not supported") != std::string::npos);
}

TEST_CASE("devmap, xskmap: slots exist once set") {
  Map d = make(MapType::Devmap, 4, 4, 4);
  CHECK(d.lookup(u32(1)).error().code == Errc::NotFound);
  REQUIRE(d.update(u32(1), u32(9)).ok());
  CHECK(read_as<uint32_t>(*d.lookup(u32(1))) == 9);
  REQUIRE(d.remove(u32(1)).ok());
  CHECK(d.remove(u32(1)).error().code == Errc::NotFound);
}

TEST_CASE("map of maps: values are map ids") {
  auto inner_spec = std::make_shared<MapSpec>(MapSpec{"inner", MapType::Array, 4, 8, 1, 0, nullptr});
  auto outer = Map::create({"outer", MapType::HashOfMaps, 4, 4, 4, 0, inner_spec});
  REQUIRE(outer.ok());
  auto inner = Map::create(*inner_spec);
  REQUIRE(inner.ok());
  REQUIRE(outer->update(u32(7), u32(inner->id())).ok());
  CHECK(read_as<uint32_t>(*outer->lookup(u32(7))) == inner->id());
  auto wrong = Map::create({"w", MapType::Hash, 4, 8, 1, 0, nullptr});
  CHECK(outer->update(u32(8), u32(wrong->id())).error().code == Errc::InvalidArgument);
  CHECK(outer->update(u32(8), u32(999999)).error().code == Errc::InvalidArgument);
}

TEST_CASE("JSON: dump in bpftool's shape, load back, reject wrong sizes without changing anything") {
  Map m = make(MapType::Hash, 4, 2, 8);
  REQUIRE(m.update(u32(0x01020304), std::vector<uint8_t>{0xab, 0xcd}).ok());
  CHECK(m.dump_json() == "[{\"key\":[\"0x04\",\"0x03\",\"0x02\",\"0x01\"],\"value\":[\"0xab\",\"0xcd\"]}]");
  Map copy = make(MapType::Hash, 4, 2, 8);
  REQUIRE(copy.load_json(m.dump_json()).ok());
  CHECK(copy.dump_json() == m.dump_json());
  REQUIRE(copy.load_json(R"([{"key":[1,0,0,0],"value":["0x10","0x20"]}, {"key":["2","0","0","0"],"value":[0,0]}])").ok());
  CHECK(copy.keys().size() == 3);
  auto bad = copy.load_json(R"([{"key":[5,0,0,0],"value":[1,2]}, {"key":[6,0,0],"value":[1,2]}])");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "map 'm': entry 1 key is 3 bytes, the map's is 4");
  CHECK(copy.lookup(u32(5)).error().code == Errc::NotFound);  // nothing applied
  CHECK(copy.load_json("[{\"key\":[1,0,0,0]}]").error().message == "map 'm': entry 0 has no \"value\"");
  CHECK(copy.load_json("{").error().message == "JSON: expected a member name at byte 1");
  CHECK(copy.load_json("[{\"key\":[300,0,0,0],\"value\":[0,0]}]").error().message ==
        "map 'm': entry 0 key holds something that is not a byte");
  // Numbers no integer holds (converting them was undefined behaviour), and fractions, are no bytes.
  for (const char* n : {"1e300", "-1e300", "1.5", "18446744073709551616"}) {
    INFO(n);
    CHECK(copy.load_json(std::string("[{\"key\":[") + n + ",0,0,0],\"value\":[0,0]}]").error().message ==
          "map 'm': entry 0 key holds something that is not a byte");
  }
  Map per_cpu = make(MapType::PercpuHash, 4, 8, 8);
  CHECK(per_cpu.load_json(R"([{"key":[1,0,0,0],"values":[{"cpu":1e300,"value":[0,0,0,0,0,0,0,0]}]}])").error().message ==
        "map 'm': entry 0 names cpu 1.0000000000000001e+300, the map has 1");
}

TEST_CASE("ring buffer: no user-side lookup, nothing to drain before a program writes") {
  Map rb = make(MapType::Ringbuf, 0, 0, 4096);
  CHECK(rb.lookup({}).error().code == Errc::Unsupported);
  CHECK(rb.drain().empty());
}

TEST_CASE("maps that grow fail an update with -ENOMEM when the host has no memory left, never throw") {
#if defined(__SANITIZE_ADDRESS__)
  WARN("SKIP: an address-space limit and AddressSanitizer's shadow memory do not mix");
#else
  if (std::getenv("EBPFVM_TEST_EMULATOR")) {  // qemu-user: the limit is on the emulator's address space, which it reserves up front
    WARN("SKIP: under emulation (EBPFVM_TEST_EMULATOR) RLIMIT_AS bounds the emulator, not the program");
    return;
  }
  // In a child whose address space is capped just above what it uses, each map that grows fills
  // until the host says no, and says so with -ENOMEM (the engine's view: a helper's return code).
  for (MapType t : {MapType::Hash, MapType::LruHash, MapType::LpmTrie, MapType::Queue}) {
    INFO(static_cast<int>(t));
    auto m = Map::create({"m", t, t == MapType::Queue ? 0u : 8u, 4096, 200'000, t == MapType::LpmTrie ? 1u : 0u, nullptr});
    REQUIRE(m.ok());
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::ifstream statm("/proc/self/statm");
      uint64_t pages = 0;
      statm >> pages;
      rlimit cap{};
      getrlimit(RLIMIT_AS, &cap);
      cap.rlim_cur = pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) + (64ull << 20);
      if (setrlimit(RLIMIT_AS, &cap) != 0) _exit(3);
      std::array<uint8_t, 8> key{};
      static uint8_t value[4096];
      for (uint32_t i = 0; i < 200'000; ++i) {
        if (t == MapType::LpmTrie) key[0] = 32;  // prefixlen 32 (little-endian u32), then the address
        std::memcpy(key.data() + 4, &i, 4);
        const long rc = m->impl()->update(key.data(), value, 0, 0);
        if (rc == detail::err::kNoMem) _exit(0);
        if (rc != 0) _exit(4);
      }
      _exit(5);  // never ran out
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
#endif
}

TEST_CASE("a large array takes memory as it is written, not at creation") {
#if defined(__SANITIZE_ADDRESS__)
  WARN("SKIP: AddressSanitizer's allocator fills what it hands out");
#else
  auto resident = [] {
    std::ifstream statm("/proc/self/statm");
    uint64_t size = 0, pages = 0;
    statm >> size >> pages;
    return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  };
  const uint64_t before = resident();
  auto m = Map::create({"big", MapType::Array, 4, 4096, 131072, 0, nullptr});  // 512 MiB of slots
  REQUIRE(m.ok());
  CHECK(resident() - before < (32ull << 20));  // a memset of it all made this 512 MiB
  std::vector<uint8_t> zeros(4096, 0);
  CHECK(*m->lookup(u32(131071)) == zeros);
  REQUIRE(m->update(u32(7), std::vector<uint8_t>(4096, 0x5a)).ok());
  CHECK(m->lookup(u32(7))->at(4095) == 0x5a);
#endif
}

TEST_CASE("maps with a bpf_spin_lock: updates leave the lock's word as it is, lookups show it as 0, only where the kernel allows one") {
  for (MapType t : {MapType::Array, MapType::Hash}) {
    INFO(to_string(t));
    MapSpec spec{"locked", t, 4, 16, 4, 0, nullptr};
    spec.spin_lock_off = 4;
    auto m = Map::create(spec);
    REQUIRE(m.ok());
    std::vector<uint8_t> value(16, 0xee);
    REQUIRE(m->update(u32(1), value).ok());
    // a new element's lock is free, whatever the value given held there
    uint8_t* in_map = static_cast<uint8_t*>(m->impl()->lookup(u32(1).data(), 0));
    REQUIRE(in_map);
    CHECK(std::vector<uint8_t>(in_map + 4, in_map + 8) == std::vector<uint8_t>(4, 0));
    auto seen = m->lookup(u32(1));
    REQUIRE(seen.ok());
    CHECK(*seen == std::vector<uint8_t>{0xee, 0xee, 0xee, 0xee, 0, 0, 0, 0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee});
    if (t == MapType::Array) {
      // a program holds the lock: an update of the value does not give it back
      in_map[4] = 1;
      std::vector<uint8_t> zeros(16, 0);
      REQUIRE(m->update(u32(1), zeros).ok());
      CHECK(in_map[4] == 1);
      CHECK(in_map[0] == 0);
      CHECK(in_map[8] == 0);
      CHECK((*m->lookup(u32(1)))[4] == 0);  // shown as free, as the kernel shows it
    }
  }
  MapSpec per_cpu{"pc", MapType::PercpuArray, 4, 16, 4, 0, nullptr};
  per_cpu.spin_lock_off = 0;
  CHECK(Map::create(per_cpu).error().message == "map 'pc' (percpu_array): a bpf_spin_lock in its value is not supported for this map type");
  MapSpec outside{"out", MapType::Array, 4, 16, 4, 0, nullptr};
  outside.spin_lock_off = 14;
  CHECK(Map::create(outside).error().message ==
        "map 'out' (array): its bpf_spin_lock at offset 14 is misaligned or outside the 16-byte value");
  // From BTF: tests/programs/helpers.c's `locked` holds { struct bpf_spin_lock lock; __u32 count; }.
  auto obj = Object::open(program_path("helpers"));
  REQUIRE(obj.ok());
  for (const MapSpec& s : obj->map_specs()) {
    INFO(s.name);
    CHECK(s.spin_lock_off == (s.name == "locked" ? 0 : -1));
  }
}
