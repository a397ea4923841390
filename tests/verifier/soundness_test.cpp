// The verifier's promise, tried: programs it accepts run in the checked interpreter, which checks
// every access, over random and crafted inputs; a fault there is a verifier bug.
#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <catch2/catch.hpp>
#include <random>

#include "loader/object_data.hpp"
#include "kernel.hpp"
#include "packets.hpp"
#include "verifier/oracle.hpp"
#include "support.hpp"

bool ebpfvm_verifier_fuzz_one(const uint8_t* data, size_t size);
int ebpfvm_kernel_diff_one(const uint8_t* data, size_t size, bool ask_kernel);
bool ebpfvm_skb_fuzz_one(const uint8_t* data, size_t size);
std::string ebpfvm_kernel_diff_unavailable();

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

std::vector<std::string> xdp_objects() {
  std::vector<std::string> out;
  for (const char* p : {"globals", "parse", "map_ops", "tail_calls", "adjust", "helpers", "legacy_maps", "core", "verifier_accept",
                        "bench_xdp_invoke", "fib", "declared_maps", "iproute2_map_in_map", "long_loops", "tc"})
    // (not ctx_copy: checked mode, which this test runs too, finds context loads with an analysis
    // of its own that does not follow the context through a copy of r10)
    out.push_back(program_path(p));
  out.push_back(EBPFVM_EXAMPLE_FIREWALL);
  for (const std::string& path : libxdp_objects())
    if (!path.ends_with("/xdpdump_bpf.o")) out.push_back(path);
  std::sort(out.begin(), out.end());
  return out;
}

// Crafted packets cut at every length, then random bytes, and crafted packets with random bytes
// flipped: parsers meet short headers, odd lengths and nonsense fields.
std::vector<std::vector<uint8_t>> packets(std::mt19937& rng) {
  std::vector<std::vector<uint8_t>> out;
  PacketSpec tcp, v6, vlan;
  tcp.l4 = 6, tcp.dport = 22;
  v6.ipv6 = true;
  vlan.vlan = true;
  const std::vector<std::vector<uint8_t>> base{make_packet({}), make_packet(tcp), make_packet(v6), make_packet(vlan), make_arp()};
  for (const auto& p : base)
    for (size_t n = 0; n <= p.size(); ++n) out.emplace_back(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
  for (int i = 0; i < 100; ++i) {
    std::vector<uint8_t> p(rng() % 200);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    out.push_back(std::move(p));
  }
  for (int i = 0; i < 200; ++i) {
    auto p = base[rng() % base.size()];
    for (int f = 0; f < 4; ++f) p[rng() % p.size()] = static_cast<uint8_t>(rng());
    out.push_back(std::move(p));
  }
  return out;
}

// Random entries in every map a program reads (configuration, rules, counters): lookups then
// succeed with values the program never wrote.
void fill_maps(Object& obj, std::mt19937& rng) {
  for (Map& m : obj.maps()) {
    const MapType t = m.spec().type;
    if (m.frozen() || (t != MapType::Array && t != MapType::Hash && t != MapType::LruHash && t != MapType::PercpuArray &&
                       t != MapType::PercpuHash && t != MapType::LpmTrie))
      continue;
    for (int i = 0; i < 16; ++i) {
      std::vector<uint8_t> key(m.spec().key_size), value(m.user_value_size());
      for (auto& b : key) b = static_cast<uint8_t>(rng() % 4 ? rng() % 4 : rng());  // small keys hit, too
      for (auto& b : value) b = static_cast<uint8_t>(rng());
      if (t == MapType::LpmTrie && key.size() >= 4) key[0] = static_cast<uint8_t>(rng() % 33), key[1] = key[2] = key[3] = 0;
      (void)m.update(key, value);
    }
  }
}

}  // namespace

TEST_CASE("verifier soundness: every verified XDP, tc and socket-filter program runs without a fault when every access is checked, whatever its maps hold, "
          "and every state it reaches lies inside the verifier's") {
  std::mt19937 rng(5);
  const auto inputs = packets(rng);
  size_t programs = 0, runs = 0;
  uint64_t steps = 0;
  for (const std::string& path : xdp_objects()) {
    INFO(path);
    auto verified = Object::open(path), checked = Object::open(path);
    REQUIRE(verified.ok());
    REQUIRE(checked.ok());
    LoadOptions record;
    record.verify.record_states = true;
    if (!verified->load(record)) continue;  // not every object verifies as a whole (faulty.o is not listed)
    LoadOptions opts;
    opts.safety = Safety::Checked;
    REQUIRE(checked->load(opts).ok());
    fill_maps(*checked, rng);
    detail::ContainmentOracle oracle;
    // The states name the verified object's maps; the run uses the checked object's, the same
    // maps in the same order: the oracle looks for array values there.
    std::vector<std::shared_ptr<const detail::MapImpl>> run_maps;
    for (const Map& m : checked->maps()) run_maps.push_back(m.impl());
    for (const ProgramInfo& info : checked->programs())
      if (auto v = verified->program(info.name); v && v->verify_report()) {
        auto states = std::make_shared<detail::AbstractStates>(*v->verify_report()->abstract_states);
        REQUIRE(states->maps.size() == run_maps.size());
        states->maps = run_maps;
        oracle.add(checked->program(info.name)->data()->entry->image.get(), states);
      }
    for (const ProgramInfo& info : checked->programs()) {
      auto v = verified->program(info.name);
      auto p = checked->program(info.name);
      if (!v || !p || !v->verify_report()) continue;
      INFO(info.name);
      ++programs;
      for (const auto& packet : inputs) {
        // tc programs and socket filters on an skb (socket filters from either header), with
        // random metadata; XDP programs on a frame
        Result<uint64_t> r = uint64_t{0};
        if (p->type() == ProgType::Xdp) {
          XdpBuffer buf(packet);
          auto x = p->run_xdp(buf);
          r = x ? Result<uint64_t>(x->r0) : Result<uint64_t>(x.error());
        } else {
          SkbFields f;
          f.mark = static_cast<uint32_t>(rng());
          for (uint32_t& cb : f.cb) cb = static_cast<uint32_t>(rng() % 64);
          SkbBuffer skb(packet, f, rng() % 2 ? SkbStart::Mac : SkbStart::Network);
          if (!skb.valid()) continue;
          auto x = p->run_skb(skb);
          r = x ? Result<uint64_t>(x->r0) : Result<uint64_t>(x.error());
        }
        if (!r) FAIL("the verifier accepted it, yet: " << r.error().to_string());
        if (!oracle.failure().empty()) FAIL("a state outside the verifier's, packet " << runs << ": " << oracle.failure());
        ++runs;
      }
    }
    steps += oracle.steps();
  }
  CHECK(programs >= (libxdp_objects().empty() ? 20 : 30));  // libxdp1's objects hold 14
  CHECK(runs > 10000);
  CHECK(steps > (libxdp_objects().empty() ? 500'000 : 1'000'000));  // instructions checked against the abstract state
}

TEST_CASE("verifier soundness: mutated random programs it accepts never fault in the checked interpreter") {
  std::mt19937_64 rng(17);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> bytes(4096);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    accepted += ebpfvm_verifier_fuzz_one(bytes.data(), bytes.size());  // aborts on a violation
  }
  CHECK(accepted > 300);
}

TEST_CASE("verifier soundness: generated tc and socket-filter programs it accepts hold in the checked interpreter, and the JIT agrees "
          "with the interpreter on them") {
  std::mt19937_64 rng(23);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> bytes(2048);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    accepted += ebpfvm_skb_fuzz_one(bytes.data(), bytes.size());  // aborts on a violation
  }
  std::printf("skb programs accepted: %d of 3000\n", accepted);
  CHECK(accepted > 600);
}

TEST_CASE("verifier soundness: generated XDP programs with helper calls (ring buffer records, callbacks, tail calls, spin locks, "
          "packets moved by bpf_xdp_adjust_*) that it accepts hold in the checked interpreter, on any host") {
  // fuzz/kernel_diff_fuzz.cpp's programs, without the kernel: each one ebpfvm accepts runs as XDP
  // over random packets under the containment oracle, which aborts on a state outside ebpfvm's.
  std::mt19937_64 rng(29);
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> bytes(4096);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    accepted += ebpfvm_kernel_diff_one(bytes.data(), bytes.size(), false) == 5;
  }
  CHECK(accepted > 400);
}

TEST_CASE("verifier soundness: what ebpfvm accepts and the kernel refuses is a deliberate difference, code ebpfvm proved "
          "unreachable, or held by the containment oracle", "[kernel]") {
  // Generated and mutated programs (fuzz/kernel_diff_fuzz.cpp), their buffer an array map's value,
  // verified as XDP by both; a disagreement that is none of those aborts.
  if (kernel::skip_all()) return;
  if (const std::string why = ebpfvm_kernel_diff_unavailable(); !why.empty()) {
    std::printf("SKIP generated programs against the kernel's verifier: %s\n", why.c_str());
    return;
  }
  std::mt19937_64 rng(23);
  std::array<int, 6> outcomes{};
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> bytes(4096);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    ++outcomes.at(static_cast<size_t>(ebpfvm_kernel_diff_one(bytes.data(), bytes.size(), true)));
  }
  std::printf("generated programs against the kernel's verifier: both accept %d, only the kernel %d, only ebpfvm %d "
              "(deliberate or unreachable) + %d (held by the oracle), neither %d\n",
              outcomes[1], outcomes[2], outcomes[3], outcomes[4], outcomes[0]);
  CHECK(outcomes[1] > 400);
}

TEST_CASE("verifier soundness: after a failed tail call r0 is 0 in every engine, never what it held before", "[jit]") {
  SKIP_WITHOUT_JIT();
  // Before the call r0 holds the stack's address; the interpreter used to leave it there.
  for (auto [engine, safety] : {std::pair{Engine::Interpreter, Safety::Verified}, std::pair{Engine::Interpreter, Safety::Checked},
                                std::pair{Engine::Jit, Safety::Verified}}) {
    INFO("engine " << static_cast<int>(engine) << " safety " << static_cast<int>(safety));
    LoadOptions opts;
    opts.engine = engine;
    opts.safety = safety;
    Object obj = open_loaded("soundness", opts);
    XdpBuffer buf(make_packet({}));
    auto r = obj.program("r0_after_failed_tail_call")->run_xdp(buf);
    REQUIRE(r.ok());
    CHECK(r->action == XdpAction::Pass);
  }
}

TEST_CASE("containment oracle: hash map values at their offsets, callers' frames at theirs") {
  // check_containment itself, on states made by hand: each kind of pointer it checks is caught
  // one byte off, and what it cannot know (a pointer outside every live value) claims nothing.
  auto m = Map::create({"h", MapType::Hash, 4, 16, 4, 0, nullptr});
  REQUIRE(m.ok());
  const uint32_t key = 1;
  REQUIRE(m->update({reinterpret_cast<const uint8_t*>(&key), 4}, std::vector<uint8_t>(16, 7)).ok());
  const auto value = reinterpret_cast<uint64_t>(m->impl()->lookup(&key, 0));
  REQUIRE(value != 0);
  detail::AbstractStates states;
  states.maps.push_back(m->impl());
  states.map_names.push_back("h");
  detail::AbstractStates::At at;
  at.frame = 1;
  at.regs[1] = verifier::Value::pointer(verifier::Kind::MapValue, 0, 8);  // value + 8
  at.regs[2] = verifier::Value::pointer(verifier::Kind::Stack, 0, -16);   // the caller's r10 - 16
  at.regs[3] = verifier::Value::pointer(verifier::Kind::Stack, 1, -8);    // this frame's r10 - 8
  states.at.push_back(at);
  std::array<uint64_t, 11> regs{};
  const uint64_t caller_fp = 0x7000'0000'1000, fp = 0x7000'0000'0e00;
  const std::array<uint64_t, 2> frames{caller_fp, fp};
  regs[10] = fp;
  const auto check = [&](uint64_t r1, uint64_t r2, uint64_t r3) {
    regs[1] = r1, regs[2] = r2, regs[3] = r3;
    return detail::check_containment(states, 0, {regs.data(), frames, {}, 0, 0});
  };
  CHECK(check(value + 8, caller_fp - 16, fp - 8) == "");
  CHECK_THAT(check(value + 9, caller_fp - 16, fp - 8), Catch::Contains("R1 = ") && Catch::Contains("inside a value of map 'h', not at its offsets"));
  CHECK(check(value + 4096, caller_fp - 16, fp - 8) == "");  // not inside a live value: a deleted one, maybe
  CHECK_THAT(check(0, caller_fp - 16, fp - 8), Catch::Contains("is null"));
  CHECK_THAT(check(value + 8, caller_fp - 8, fp - 8), Catch::Contains("R2 = ") && Catch::Contains("not at its offsets from frame 0's r10"));
  CHECK_THAT(check(value + 8, caller_fp - 16, fp - 16), Catch::Contains("R3 = ") && Catch::Contains("not at its offsets from frame 1's r10"));
  // Where the caller's r10 is not known, pointers into it are not checked; nor any stack pointer
  // where the instruction runs at several depths.
  const std::array<uint64_t, 2> caller_unknown{0, fp};
  regs[1] = value + 8, regs[2] = caller_fp - 8, regs[3] = fp - 8;
  CHECK(detail::check_containment(states, 0, {regs.data(), caller_unknown, {}, 0, 0}) == "");
  states.at[0]->frame = UINT32_MAX;
  CHECK(check(value + 8, caller_fp - 8, fp - 16) == "");
}

TEST_CASE("verifier soundness: a raw-memory program verified for N bytes sees exactly N (r2 = N, and r1 = 0 for none) in every engine, "
          "however much memory it is given") {
  // The verifier takes r2 for the size it verifies for; a run that told the program more (the
  // memory's real size) reached code the verifier had found unreachable: a read far before the
  // memory, which crashed the host.
  std::vector<uint8_t> mem(64);
  for (size_t i = 0; i < mem.size(); ++i) mem[i] = static_cast<uint8_t>(i);
  const bool jit = jit_available();
  for (Engine engine : {Engine::Interpreter, Engine::Jit}) {
    if (engine == Engine::Jit && !jit) continue;
    INFO("engine " << static_cast<int>(engine));
    LoadOptions opts;
    opts.engine = engine;
    opts.verify.context = VerifyOptions::Context::Memory;
    opts.verify.memory_size = 8;
    Object obj = open_loaded("raw_memory", opts);
    CHECK(*obj.program("mem_len")->run_raw(mem) == 8);
    CHECK(*obj.program("past_when_longer")->run_raw(mem) == 7);
    // Verified for no memory, r1 is 0: the read is refused.
    opts.verify.memory_size = 0;
    auto none = Object::open(program_path("raw_memory"));
    REQUIRE(none.ok());
    auto refused = none->load(opts);
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error().to_string(), Catch::Contains("past_when_longer") && Catch::Contains("R1 invalid mem access 'scalar'"));
  }
  auto prog = Program::from_assembly("if r2 > 8 goto far\nr0 = r2\nexit\nfar:\nr1 += -100000000\nr0 = *(u8 *)(r1 + 0)\nexit\n");
  REQUIRE(prog.ok());
  auto interp = Interpreter::create(*prog, HelperRegistry::builtin(), {Safety::Verified, 0, 8});
  REQUIRE(interp.ok());
  CHECK(*interp->run(mem) == 8);
  // Verified for no memory: r1 is 0 and r2 is 0, whatever the caller has.
  auto none = Program::from_assembly("r0 = r1\nr0 |= r2\nexit\n");
  REQUIRE(none.ok());
  auto interp0 = Interpreter::create(*none, HelperRegistry::builtin(), {Safety::Verified, 0, 0});
  REQUIRE(interp0.ok());
  CHECK(*interp0->run(mem) == 0);
  if (!jit) return;
  auto compiled = JitProgram::compile(*prog, HelperRegistry::builtin(), {}, 8);
  REQUIRE(compiled.ok());
  REQUIRE(compiled->function() != nullptr);  // the direct path
  CHECK(*compiled->run(mem) == 8);
  auto compiled0 = JitProgram::compile(*none, HelperRegistry::builtin(), {}, 0);
  REQUIRE(compiled0.ok());
  CHECK(*compiled0->run(mem) == 0);
  CHECK(*compiled0->run(std::span<uint8_t>()) == 0);
}
