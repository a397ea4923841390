// Objects loaded for the JIT and for the interpreter behave the same: verdicts, packets, redirects,
// and every map afterwards.
#include <catch2/catch.hpp>

#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

std::vector<std::vector<uint8_t>> traffic() {
  PacketSpec ssh;
  ssh.l4 = 6;
  ssh.dport = 22;
  PacketSpec v6;
  v6.ipv6 = true;
  v6.l4 = 6;
  PacketSpec vlan;
  vlan.vlan = true;
  std::vector<std::vector<uint8_t>> out;
  for (int i = 0; i < 3; ++i)
    for (auto p : {make_packet({}), make_packet(ssh), make_packet(v6), make_packet(vlan), make_arp(), counting_bytes(60)})
      out.push_back(p);
  return out;
}

Object load(const std::string& path, Engine engine) {
  auto obj = Object::open(path);
  REQUIRE(obj.ok());
  LoadOptions o;
  o.engine = engine;
  // both verified: the interpreter then runs without checks too
  o.env.seed = 99;
  o.workers = 2;
  FibLink lo, eth3;
  lo.ifindex = 1;
  eth3.ifindex = 3;
  eth3.mac = {2, 0, 0, 0, 0, 3};
  o.env.fib.links = {lo, eth3};
  FibRoute r;
  r.prefix = {192, 168, 1, 0};
  r.prefix_len = 24;
  r.ifindex = 3;
  o.env.fib.routes.push_back(r);
  FibNeighbour n;
  n.ifindex = 3;
  n.ip.bytes = {192, 168, 1, 5};
  n.mac = {0, 0, 0x5e, 0, 0x53, 0x5e};
  o.env.fib.neighbours.push_back(n);
  auto loaded = obj->load(o);
  if (!loaded) FAIL(loaded.error().to_string());
  return std::move(*obj);
}

void same(const std::string& path, const std::vector<std::string>& programs, const std::function<void(Object&)>& setup = {}) {
  INFO(path);
  Object interp = load(path, Engine::Interpreter), jit = load(path, Engine::Jit);
  if (setup) {
    setup(interp);
    setup(jit);
  }
  for (const std::string& name : programs) {
    INFO(name);
    auto pi = interp.program(name), pj = jit.program(name);
    REQUIRE((pi.ok() && pj.ok()));
    CHECK(pj->engine() == Engine::Jit);
    uint32_t worker = 0;
    for (const auto& pkt : traffic()) {
      XdpBuffer bi(pkt), bj(pkt);
      auto ri = pi->run_xdp(bi, {worker, 1, worker});
      auto rj = pj->run_xdp(bj, {worker, 1, worker});
      REQUIRE(ri.ok());
      REQUIRE(rj.ok());
      CHECK(ri->r0 == rj->r0);
      CHECK(ri->redirect.map_name == rj->redirect.map_name);
      CHECK(ri->redirect.key == rj->redirect.key);
      CHECK(std::vector<uint8_t>(bi.packet().begin(), bi.packet().end()) == std::vector<uint8_t>(bj.packet().begin(), bj.packet().end()));
      CHECK(std::vector<uint8_t>(bi.metadata().begin(), bi.metadata().end()) == std::vector<uint8_t>(bj.metadata().begin(), bj.metadata().end()));
      worker ^= 1;
    }
  }
  // Every map the same afterwards (maps of maps hold map ids, which differ between two loads).
  auto mi = interp.maps(), mj = jit.maps();
  REQUIRE(mi.size() == mj.size());
  for (size_t i = 0; i < mi.size(); ++i) {
    INFO(mi[i].name());
    const MapType t = mi[i].spec().type;
    if (t == MapType::ArrayOfMaps || t == MapType::HashOfMaps) continue;
    CHECK(mi[i].dump_json() == mj[i].dump_json());
  }
}

}  // namespace

TEST_CASE("engines: the JIT and the interpreter agree on every test program", "[jit]") {
  SKIP_WITHOUT_JIT();
  same(EBPFVM_EXAMPLE_FIREWALL, {"xdp_firewall"}, [](Object& o) {
    REQUIRE(o.map("allowed_tcp")->update(as_bytes<uint16_t>(22), std::vector<uint8_t>{1}).ok());
  });
  same(program_path("parse"), {"firewall"});
  same(program_path("globals"), {"first", "second"});
  same(program_path("adjust"), {"push_header", "pop_header", "grow_tail", "set_meta", "load_store"});
  same(program_path("map_ops"), {"ops"});
  same(program_path("core"), {"read_second"});
  same(program_path("helpers"), {"misc", "redirect_port", "redirect_if"}, [](Object& o) {
    REQUIRE(o.map("ports")->update(as_bytes<uint32_t>(1), as_bytes<uint32_t>(9)).ok());
    REQUIRE(o.map("sums")->update(as_bytes<uint32_t>(4), as_bytes<uint64_t>(40)).ok());
  });
  same(program_path("tail_calls"), {"entry", "empty_slot", "chain"}, [](Object& o) {
    auto table = o.map("jump_table");
    REQUIRE(set_tail_call(*table, 3, *o.program("chain")).ok());
  });
  for (const std::string& path : libxdp_objects())
    for (const char* f : {"xdpfilt_dny_all", "xdpfilt_alw_all", "xdp-dispatcher"})
      if (path.ends_with(std::string("/") + f + ".o")) same(path, {f[3] == '-' ? "xdp_dispatcher" : f});
}

TEST_CASE("engines: the JIT compiles only verified programs") {
  auto obj = Object::open(program_path("globals"));
  REQUIRE(obj.ok());
  LoadOptions o;
  o.engine = Engine::Jit;
  o.safety = Safety::Checked;
  auto r = obj->load(o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "the JIT compiles only verified programs: load with safety = Verified (the default)");
  auto faulty = Object::open(program_path("faulty"));
  REQUIRE(faulty.ok());
  LoadOptions jit;
  jit.engine = Engine::Jit;
  auto refused = faulty->load(jit);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == Errc::VerifierRejected);
  CHECK(refused.error().message == "invalid access to packet, off=100 size=1, R1 offset is outside of the packet");
  CHECK(refused.error().where.source.find("faulty.c:9") != std::string::npos);
}

TEST_CASE("engines: loops the verifier summarised compute what the same loops compute in C, in every engine (issue 17 I)") {
  // length_rounds: 4 rounds per byte of the packet's length (up to 4092); countdown: 5000 rounds
  // from the receive queue's index. Each leaves its result in `out`.
  auto length_rounds = [](uint64_t len) {
    uint64_t acc = 5381;
    for (uint32_t i = 0; i < ((len & 0x3ff) * 4); ++i) acc = acc * 33 + i;
    return acc;
  };
  auto countdown = [](uint64_t acc) {
    for (uint64_t n = 5000; n != 0; --n) acc ^= (acc << 7) + n;
    return acc;
  };
  std::vector<Engine> engines{Engine::Interpreter};
  if (jit_available()) engines.push_back(Engine::Jit);
  for (Engine e : engines) {
    INFO((e == Engine::Jit ? "jit" : "interpreter"));
    Object o = load(program_path("long_loops"), e);
    for (const uint32_t len : {0u, 1u, 60u, 1023u, 1024u, 1514u, 9000u}) {
      XdpBuffer buf(std::vector<uint8_t>(len, 0xab));
      auto r = o.program("length_rounds")->run_xdp(buf);
      REQUIRE(r.ok());
      CHECK(test::read_as<uint64_t>(*o.map("out")->lookup(as_bytes<uint32_t>(0)), 0) == length_rounds(len));
    }
    for (const uint32_t queue : {0u, 3u, 77u}) {
      XdpBuffer buf(std::vector<uint8_t>(64, 0));
      auto r = o.program("countdown")->run_xdp(buf, {0, 1, queue});
      REQUIRE(r.ok());
      CHECK(r->action == XdpAction::Drop);
      CHECK(test::read_as<uint64_t>(*o.map("out")->lookup(as_bytes<uint32_t>(1)), 0) == countdown(queue));
    }
  }
}
