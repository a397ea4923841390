// The verifier's must-reject and must-accept suites (tests/verifier/*.txt), and its diagnostics.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "maps/map_impl.hpp"
#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;

namespace {

struct Case {
  std::string name, source, expect;
  int line = 0;
};

std::vector<Case> load(const std::string& file) {
  std::ifstream in(std::string(EBPFVM_TEST_SOURCE_DIR) + "/verifier/" + file);
  REQUIRE(in);
  std::vector<Case> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.rfind("== ", 0) == 0) {
      out.push_back({line.substr(3), "", "", n});
    } else if (line.rfind("-> ", 0) == 0) {
      REQUIRE(!out.empty());
      out.back().expect = line.substr(3);
    } else if (!out.empty() && out.back().expect.empty()) {
      out.back().source += line + "\n";
    }
  }
  return out;
}

// The maps the suites' programs refer to by index (see the header of reject.txt).
std::vector<Map> suite_maps() {
  std::vector<Map> maps;
  auto add = [&](MapType t, uint32_t k, uint32_t v, uint32_t n, int32_t lock = -1) {
    MapSpec s;
    s.name = "m" + std::to_string(maps.size());
    s.type = t, s.key_size = k, s.value_size = v, s.max_entries = n, s.spin_lock_off = lock;
    if (t == MapType::ArrayOfMaps) {
      auto inner = std::make_shared<MapSpec>();
      inner->type = MapType::Array, inner->key_size = 4, inner->value_size = 8, inner->max_entries = 1;
      s.inner = inner;
    }
    auto m = Map::create(s);
    REQUIRE(m.ok());
    maps.push_back(*m);
  };
  add(MapType::Hash, 4, 8, 16);
  add(MapType::Array, 4, 16, 4);
  add(MapType::ProgArray, 4, 4, 4);
  add(MapType::Ringbuf, 0, 0, 4096);
  add(MapType::Array, 4, 8, 1);
  REQUIRE(maps.back().update(as_bytes<uint32_t>(0), as_bytes<uint64_t>(3)).ok());
  maps.back().impl()->freeze();
  add(MapType::ArrayOfMaps, 4, 4, 2);
  add(MapType::Array, 4, 16, 4, 4);  // { u32 a; struct bpf_spin_lock lock; u64 counter; }
  add(MapType::StackTrace, 4, 64, 16);
  add(MapType::CgroupArray, 4, 4, 2);
  return maps;
}

Result<VerifyReport> verify_text(const Case& c, const std::vector<Map>& maps) {
  auto p = Program::from_assembly(c.source);
  if (!p) return p.error();
  return verify(*p, HelperRegistry::builtin(), maps, {});
}

}  // namespace

TEST_CASE("verifier: every unsafe program of the must-reject suite is refused, for its reason") {
  const auto maps = suite_maps();
  const auto cases = load("reject.txt");
  CHECK(cases.size() >= 50);
  for (const Case& c : cases) {
    INFO("reject.txt:" << c.line << " " << c.name);
    auto r = verify_text(c, maps);
    REQUIRE_FALSE(r.ok());
    INFO(r.error().to_string() << "\n" << r.error().detail);
    CHECK(r.error().code != Errc::AssemblyError);
    CHECK_THAT(r.error().message, Catch::Matchers::Contains(c.expect));
    CHECK(r.error().where.insn.has_value());
  }
}

TEST_CASE("verifier: every program of the must-accept suite is accepted") {
  const auto maps = suite_maps();
  const auto cases = load("accept.txt");
  CHECK(cases.size() >= 10);
  for (const Case& c : cases) {
    INFO("accept.txt:" << c.line << " " << c.name);
    auto r = verify_text(c, maps);
    if (!r) {
      FAIL_CHECK(r.error().to_string() << "\n" << r.error().detail);  // and go on: every refusal is shown
      continue;
    }
    CHECK(r->insns_analysed >= 2);  // every suite program has at least an assignment and exit
  }
}

TEST_CASE("verifier: a rejection shows the instruction and the registers, verbose mode every state") {
  const auto maps = suite_maps();
  Case c{"", "r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 0)\nexit\n", "", 0};
  auto r = verify_text(c, maps);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::VerifierRejected);
  CHECK(r.error().to_string() == "insn 1: invalid access to packet, off=0 size=1, R2 offset is outside of the packet");
  CHECK(r.error().detail == "1: r0 = *(u8 *)(r2 + 0)\n      ; R1=ctx(off=0) R2=pkt(id=0,off=0,r=0) R10=fp0");
  auto p = Program::from_assembly("r0 = 1\nr0 += 2\nexit\n");
  VerifyOptions v;
  v.verbose = true;
  auto ok = verify(*p, HelperRegistry::builtin(), {}, v);
  REQUIRE(ok.ok());
  CHECK(ok->log == "0: r0 = 1\n      ; R0=1 R1=ctx(off=0) R10=fp0\n1: r0 += 2\n      ; R0=3 R1=ctx(off=0) R10=fp0\n"
                   "2: exit\n      ; R0=3 R1=ctx(off=0) R10=fp0\n");
  CHECK(ok->insns_analysed == 3);
  CHECK(ok->states == 1);
}

TEST_CASE("verifier: raw memory programs are verified for the memory given", "[jit]") {
  SKIP_WITHOUT_JIT();
  auto p = Program::from_assembly("r0 = *(u32 *)(r1 + 4)\nexit\n");
  VerifyOptions v;
  v.context = VerifyOptions::Context::Memory;
  v.memory_size = 8;
  CHECK(verify(*p, HelperRegistry::builtin(), {}, v).ok());
  v.memory_size = 7;
  auto r = verify(*p, HelperRegistry::builtin(), {}, v);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "invalid access to memory, mem_size=7 off=4 size=4");
  InterpreterOptions io;
  io.safety = Safety::Verified;
  io.memory_size = 8;
  auto vm = Interpreter::create(*p, HelperRegistry::builtin(), io);
  REQUIRE(vm.ok());
  std::vector<uint8_t> mem{0, 0, 0, 0, 7, 0, 0, 0};
  CHECK(*vm->run(mem) == 7);
  std::vector<uint8_t> small(4);
  CHECK(vm->run(small).error().message == "the program was verified for 8 bytes of memory; 4 given");
  auto jit = JitProgram::compile(*p, HelperRegistry::builtin(), {}, 8);
  REQUIRE(jit.ok());
  CHECK(*jit->run(mem) == 7);
  CHECK_FALSE(JitProgram::compile(*p, HelperRegistry::builtin(), {}, 7).ok());
}

TEST_CASE("verifier: pointers into the input memory, or into one stack frame, compare as their offsets (issue 17, J)") {
  VerifyOptions v;
  v.context = VerifyOptions::Context::Memory;
  const auto check = [&](const char* text, uint32_t size) {
    auto p = Program::from_assembly(text);
    REQUIRE(p.ok());
    v.memory_size = size;
    auto r = verify(*p, HelperRegistry::builtin(), {}, v);
    return r ? std::string("ok") : r.error().message;
  };
  // end = r1 + r2, as data_end is for packets: a check against it bounds the pointer.
  const char* past_end = "r3 = r1\nr3 += r2\nr4 = r1\nr4 += 10\nr5 = r4\nr5 += 2\nif r5 > r3 goto out\nr0 = *(u16 *)(r4 + 0)\nexit\n"
                         "out:\nr0 = 0\nexit\n";
  CHECK(check(past_end, 64) == "ok");
  CHECK(check(past_end, 8) == "ok");  // the read is after a check that always fails
  // A loop walking the memory two bytes at a time up to its end.
  const char* walk = "r3 = r1\nr3 += r2\nr4 = r1\nr0 = 0\nloop:\nr5 = r4\nr5 += 2\nif r5 > r3 goto out\nr6 = *(u16 *)(r4 + 0)\n"
                     "r0 += r6\nr4 += 2\ngoto loop\nout:\nexit\n";
  CHECK(check(walk, 64) == "ok");
  CHECK(check(walk, 1500) == "ok");
  CHECK(check(walk, 0) == "ok");  // r1 = r2 = 0: the first check ends the loop
  // Its twin one byte off: from an odd offset, the check covers one byte, the read two.
  const char* walk_short = "r3 = r1\nr3 += r2\nr4 = r1\nr4 += 1\nr0 = 0\nloop:\nr5 = r4\nr5 += 1\nif r5 > r3 goto out\nr6 = *(u16 *)(r4 + 0)\n"
                           "r0 += r6\nr4 += 2\ngoto loop\nout:\nexit\n";
  CHECK(check(walk_short, 64) == "invalid access to memory, mem_size=64 off=63 size=2");
  // Stack pointers of one frame: r10 - 16 is never above r10 - 8.
  const char* stack = "r1 = r10\nr1 += -8\nr2 = r10\nr2 += -16\nif r2 > r1 goto bad\nr0 = 0\nexit\nbad:\nr0 = *(u64 *)(r10 + 8)\nexit\n";
  CHECK(check(stack, 8) == "ok");
  const char* stack_twin = "r1 = r10\nr1 += -8\nr2 = r10\nr2 += -16\nif r2 < r1 goto bad\nr0 = 0\nexit\nbad:\nr0 = *(u64 *)(r10 + 8)\nexit\n";
  CHECK(check(stack_twin, 8) == "invalid read from stack R10 off=8 size=8");
}

TEST_CASE("verifier: clang's code for real parsing shapes is accepted and runs as written") {
  // VLAN, IPv4 IHL, IPv6 extension-header loop, TCP-option loop in a subprogram with pointer
  // arguments, bounded array index, frozen configuration, bpf_loop, tail call.
  Object obj = test::open_loaded("verifier_accept");
  auto p = obj.program("parse_all");
  REQUIRE(p.ok());
  REQUIRE(p->verify_report() != nullptr);
  CHECK(p->verify_report()->insns_analysed > p->code().slot_count());  // the loops were unrolled
  auto run = [&](std::vector<uint8_t> packet) {
    XdpBuffer buf(packet);
    auto r = p->run_xdp(buf);
    REQUIRE(r.ok());
    return r->action;
  };
  test::PacketSpec tcp;
  tcp.l4 = 6;
  CHECK(run(test::make_packet(tcp)) == XdpAction::Pass);
  auto fragment = test::make_packet({});
  fragment[14 + 6] = 0x20;  // more fragments
  CHECK(run(fragment) == XdpAction::Drop);
  CHECK(run(std::vector<uint8_t>(10, 0)) == XdpAction::Drop);  // shorter than Ethernet
  auto h = obj.map("hist");
  REQUIRE(h.ok());
  const auto value = *h->lookup(as_bytes<uint32_t>(0));
  CHECK(test::read_as<uint64_t>(value, 5 * 8) == 1);    // one TCP header of 5 words
  CHECK(test::read_as<uint64_t>(value, 15 * 8) == 8);   // bpf_loop ran the callback 8 times, once per passed packet
}

TEST_CASE("verifier: the report bounds one run's instructions and callback invocations") {
  auto bounds = [](const std::string& text, uint64_t limit = 1ull << 23) {
    auto p = Program::from_assembly(text);
    REQUIRE(p.ok());
    VerifyOptions v;
    v.max_callback_iterations = limit;
    return verify(*p, HelperRegistry::builtin(), {}, v);
  };
  // Straight line: its instructions (lddw counts once, as it runs once).
  auto line = bounds("r0 = 1 ll\nr0 += 2\nexit\n");
  REQUIRE(line.ok());
  CHECK(line->max_insns == 3);
  CHECK(line->max_callback_iterations == 0);
  // The blocks add up (6), more than either path runs (4): an upper bound, not the longest path.
  auto branches = bounds("r0 = *(u32 *)(r1 + 16)\nif r0 == 0 goto z\nr0 = 1\nexit\nz:\nr0 = 2\nexit\n");
  REQUIRE(branches.ok());
  CHECK(branches->max_insns == 6);
  // A loop of 4 iterations, 3 instructions each, after 1 and before 1.
  auto loop = bounds("r0 = 0\nl:\nr0 += 1\nif r0 < 4 goto l\nexit\n");
  REQUIRE(loop.ok());
  CHECK(loop->max_insns == 1 + 4 * 2 + 1);
  // bpf_loop 10 times over a 2-instruction callback, inside 6 instructions of the program.
  const std::string ten = "r1 = 10\nr2 = code(cb) ll\nr3 = 0\nr4 = 0\ncall 181\nexit\ncb:\nr0 = 0\nexit\n";
  auto calls = bounds(ten);
  REQUIRE(calls.ok());
  CHECK(calls->max_callback_iterations == 10);
  CHECK(calls->max_insns == 6 + 10 * 2);
  // The limit is an option: 10 invocations against a limit of 9.
  auto over = bounds(ten, 9);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().where.insn == std::optional<uint32_t>(5));
  CHECK(over.error().message ==
        "one run may invoke callbacks 10 times, more than the limit of 9: bpf_loop at insn 5 (10 times)");
}

TEST_CASE("verifier: a loop too long to unroll is summarised, and its bound is the counter's range over its step") {
  auto check = [](const std::string& text, uint64_t limit = 1ull << 30) {
    auto p = Program::from_assembly(text);
    REQUIRE(p.ok());
    VerifyOptions v;
    v.max_loop_iterations = limit;
    return verify(*p, HelperRegistry::builtin(), {}, v);
  };
  // 100000 iterations of 2 instructions, after 1 and before 2: exactly what a run executes (the
  // header holds r6 in [2, 99999] after two unrolled iterations, one visit per value).
  const std::string up = "r6 = 0\nl:\nr6 += 1\nif r6 < 100000 goto l\nr0 = 0\nexit\n";
  auto r = check(up);
  REQUIRE(r.ok());
  CHECK(r->summarised_loops == 1);
  CHECK(r->max_insns == 1 + 100000 * 2 + 2);
  // a handful of states, whatever the trip count: a few kilobytes each
  CHECK(r->states < 16);
  CHECK(r->state_bytes > r->states * 1000);
  CHECK(r->state_bytes < 16 * 16384);
  // Steps of 3: r6 is 0, 3, ..., 99999 at the header, 33334 values; the summarised ones are
  // [6, 99999], (99999 - 6) / 3 + 1 visits.
  auto by3 = check("r6 = 0\nl:\nr6 += 3\nif r6 < 100000 goto l\nr0 = 0\nexit\n");
  REQUIRE(by3.ok());
  CHECK(by3->max_insns == 1 + (2 + 33332) * 2 + 2);
  // Unrolled loops stay unrolled: 4 iterations are no reason to summarise.
  auto small = check("r0 = 0\nl:\nr0 += 1\nif r0 < 4 goto l\nexit\n");
  REQUIRE(small.ok());
  CHECK(small->summarised_loops == 0);
  // The limit counts the iterations of one run, the enclosing loops' included: 100000 > 99999.
  auto over = check(up, 99999);
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().where.insn == std::optional<uint32_t>(1));
  CHECK_THAT(over.error().message, Catch::Matchers::StartsWith("program too complex: more than 20000 states"));
  CHECK_THAT(over.error().message, Catch::Matchers::EndsWith(
      "with the loops at insn 1 summarised, not unrolled: the loop at insn 1 may run 100000 iterations in one run, more than the "
      "limit of 99999"));
  // Nested: 1000 outer iterations, each running the inner loop 1000 times.
  auto nested = check("r6 = 0\no:\nr7 = 0\ni:\nr7 += 1\nif r7 < 1000 goto i\nr6 += 1\nif r6 < 1000 goto o\nr0 = 0\nexit\n");
  REQUIRE(nested.ok());
  CHECK(nested->summarised_loops == 2);
  CHECK(nested->max_insns == 1 + 1000 * (1 + 1000 * 2 + 2) + 2);
}
