// Maps shared by threads running programs at once: exact final counts, and values that stay valid
// while other threads delete them (deferred reclamation; the ASan build would report a
// use-after-free here).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"
#include "packets.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

TEST_CASE("concurrency: four workers run the firewall, per-CPU and shared counts are exact") {
  LoadOptions opts;
  opts.workers = 4;
  Object obj = open_loaded("parse", opts);
  auto fw = obj.program("firewall");
  REQUIRE(fw.ok());
  constexpr int kPerWorker = 5000;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (uint32_t w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      XdpBuffer buf;
      for (int i = 0; i < kPerWorker; ++i) {
        PacketSpec s;
        s.src4 = {10, 0, static_cast<uint8_t>(i % 4), static_cast<uint8_t>(1 + w)};  // 16 sources
        buf.assign(make_packet(s));
        auto r = fw->run_xdp(buf, {w, 1, 0});
        if (!r || r->action != XdpAction::Pass) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  auto eth = obj.map("counters")->lookup(as_bytes<uint32_t>(0));
  REQUIRE(eth.ok());
  for (uint32_t w = 0; w < 4; ++w) CHECK(read_as<uint64_t>(*eth, w * 8) == kPerWorker);
  auto bytes = obj.map("bytes_by_src");
  uint64_t total = 0;
  for (const auto& k : bytes->keys()) total += read_as<uint64_t>(*bytes->lookup(k));
  CHECK(bytes->keys().size() == 16);
  CHECK(total == 4ull * kPerWorker * make_packet({}).size());
}

TEST_CASE("concurrency: a value pointer stays valid while other threads delete and re-insert it") {
  auto m = Map::create({"h", MapType::Hash, 4, 64, 64, 0, nullptr});
  REQUIRE(m.ok());
  detail::MapImpl& impl = *m->impl();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  const uint32_t key = 7;
  std::vector<uint8_t> value(64, 0x5a);
  REQUIRE(m->update(as_bytes(key), value).ok());
  // The writer keeps going until the readers have read through many of its cycles (on a loaded
  // machine they may start late), within a time limit.
  std::thread writer([&] {
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int i = 0; i < 20000 || (reads < 2000 && std::chrono::steady_clock::now() < limit); ++i) {
      (void)m->remove(as_bytes(key));
      (void)m->update(as_bytes(key), value);
    }
    stop = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] {
      while (!stop) {
        maps::reclaim::Guard run;  // what a program run holds
        auto* v = static_cast<const uint8_t*>(impl.lookup(&key, 0));
        if (!v) continue;
        uint64_t sum = 0;
        for (int rep = 0; rep < 50; ++rep)
          for (int i = 0; i < 64; ++i) sum += v[i];
        if (sum != 50ull * 64 * 0x5a) FAIL("value changed under a reader");
        ++reads;
      }
    });
  writer.join();
  for (auto& t : readers) t.join();
  CHECK(reads >= 2000);
  maps::reclaim::collect();
  CHECK(maps::reclaim::pending() == 0);
}

TEST_CASE("concurrency: a full hash map holds exactly max_entries, however many threads insert") {
  auto m = Map::create({"h", MapType::Hash, 4, 4, 1000, 0, nullptr});
  REQUIRE(m.ok());
  std::atomic<int> full{0};
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (uint32_t i = 0; i < 1000; ++i) {
        auto r = m->update(as_bytes(t * 1000 + i), as_bytes(i), kNoExist);
        if (!r && r.error().code == Errc::MapFull) ++full;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(m->keys().size() == 1000);
  CHECK(full == 3000);
}

TEST_CASE("concurrency: values replaced while other threads read them: no freed memory reached, exact at the end") {
  // Replacing a key's value fills the updating worker's spare node and keeps the one it replaces
  // as the next spare, never freed while the map lives: a reader still on it reads map memory (a
  // later value, as in the kernel's preallocated hash maps), never freed memory (ASan checks that
  // here), and a reader carried into another bucket's chain by a reused node walks its own again.
  // Two writers on worker slots 0 and 1, so nodes move between buckets all the time.
  for (MapType type : {MapType::Hash, MapType::LruHash}) {
    auto m = Map::create({"h", type, 4, 64, 8, 0, nullptr});
    REQUIRE(m.ok());
    detail::MapImpl& impl = *m->impl();
    for (uint32_t k = 0; k < 8; ++k) REQUIRE(m->update(as_bytes(k), std::vector<uint8_t>(64, static_cast<uint8_t>(k))).ok());
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0}, failed{0};  // Catch2's assertions are not for other threads
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < 2; ++t)
      threads.emplace_back([&, t] {
        maps::reclaim::Guard run;
        // until the readers have read through many replacements (on a loaded machine they may
        // start late), within a time limit
        const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        for (uint32_t i = 0; i < 100000 || (reads < 2000 && std::chrono::steady_clock::now() < limit); ++i) {
          const uint32_t k = (i * 7 + t) % 8;
          std::vector<uint8_t> v(64, static_cast<uint8_t>(k));
          if (impl.update(&k, v.data(), 0, t) != 0) ++failed;
        }
      });
    for (int t = 0; t < 2; ++t)
      threads.emplace_back([&, t] {
        uint64_t sum = 0;
        while (!stop) {
          maps::reclaim::Guard run;
          const uint32_t k = static_cast<uint32_t>(reads.load() + t) % 8;
          if (auto* v = static_cast<const uint8_t*>(impl.lookup(&k, 0)))
            for (int i = 0; i < 64; ++i) sum += v[i];
          ++reads;
        }
        if (sum == UINT64_MAX) ++failed;  // keeps the reads
      });
    threads[0].join();
    threads[1].join();
    stop = true;
    threads[2].join();
    threads[3].join();
    CHECK(failed == 0);
    CHECK(reads >= 2000);
    CHECK(m->keys().size() == 8);
    for (uint32_t k = 0; k < 8; ++k) {
      auto v = m->lookup(as_bytes(k));
      REQUIRE(v.ok());
      CHECK(*v == std::vector<uint8_t>(64, static_cast<uint8_t>(k)));
    }
    maps::reclaim::collect();
    CHECK(maps::reclaim::pending() == 0);
  }
}
