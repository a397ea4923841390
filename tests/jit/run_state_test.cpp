// The JIT's runs set up and clear only what the program's calls use of a run state
// (helpers/builtin.hpp): whatever they use, each run leaves the thread's state as it found it.
#include <catch2/catch.hpp>

#include "helpers/builtin.hpp"
#include "packets.hpp"
#include "runtime/run_state.hpp"
#include "support.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

// No run in progress, and the thread's outermost state (once made) is clean.
bool state_left_clean() {
  if (detail::current_run() || detail::t_first_busy) return false;
  return !detail::t_first || detail::t_first->clean();
}

Program prog_of(const std::string& text) {
  auto code = Program::from_bytecode(must_assemble(text));
  REQUIRE(code.ok());
  return std::move(*code);
}

JitProgram jit(const std::string& text, std::span<const Map> maps = {}) {
  auto p = JitProgram::compile_trusted(prog_of(text), HelperRegistry::builtin(), maps);
  REQUIRE(p.ok());
  return std::move(*p);
}

XdpResult run(const LoadedProgram& p, const std::vector<uint8_t>& pkt) {
  XdpBuffer buf(pkt);
  auto r = p.run_xdp(buf);
  if (!r) FAIL(r.error().to_string());
  return *r;
}

}  // namespace

TEST_CASE("jit run state: every built-in helper says what it uses of a run", "[jit]") {
  SKIP_WITHOUT_JIT();
  // Unlisted built-ins count as using everything (the safe side); each one has been looked at.
  for (const Helper& h : HelperRegistry::builtin().all()) {
    INFO(h.name);
    CHECK(detail::run_uses(h.fn) != detail::run_use::kEverything);
  }
  CHECK(detail::run_uses(HelperRegistry::builtin().find("bpf_redirect")->fn) == detail::run_use::kRedirect);
  CHECK(detail::run_uses(HelperRegistry::builtin().find("bpf_loop")->fn) == detail::run_use::kCallbacks);
  CHECK(detail::run_uses(HelperRegistry::builtin().find("bpf_spin_lock")->fn) == detail::run_use::kLock);
  CHECK(detail::run_uses(HelperRegistry::builtin().find("bpf_map_lookup_elem")->fn) == detail::run_use::kNothing);
  // An embedder's helper cannot reach run state.
  const HelperFn own = [](uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) -> uint64_t { return 0; };
  CHECK(detail::run_uses(own) == detail::run_use::kNothing);
}

TEST_CASE("jit run state: raw runs leave the thread's state clean, whatever their calls use", "[jit]") {
  SKIP_WITHOUT_JIT();
  std::vector<uint8_t> mem = {1, 2, 3, 4, 5, 6, 7, 8};
  // A redirect: run(mem) reports only r0.
  CHECK(*jit("r1 = 7\nr2 = 0\ncall 23\nexit").run(mem) == 4);
  CHECK(state_left_clean());
  // A callback: bpf_loop sums 0..3 into the stack through its context.
  JitProgram loop = jit(
      "*(u64 *)(r10 - 8) = 0\nr1 = 4\nr2 = code(cb) ll\nr3 = r10\nr3 += -8\nr4 = 0\ncall 181\n"
      "r0 = *(u64 *)(r10 - 8)\nexit\ncb:\nr3 = *(u64 *)(r2 + 0)\nr3 += r1\n*(u64 *)(r2 + 0) = r3\nr0 = 0\nexit");
  CHECK(*loop.run(mem) == 6);
  CHECK(state_left_clean());
  // The LD_ABS packet.
  CHECK(*jit("r6 = r1\nr0 = *(u16 *)skb[6]\nexit").run(mem) == 0x0708);
  CHECK(state_left_clean());
  // A callback address that is not a function of the program (trusted code can pass one): the run
  // fails with the fault, and the next run starts clean.
  auto bad = jit("r1 = 1\nr2 = 12345\nr3 = 0\nr4 = 0\ncall 181\nexit").run(mem);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Errc::RuntimeFault);
  CHECK(bad.error().message == "callback address is not a function of the program");
  CHECK(state_left_clean());
  CHECK(*loop.run(mem) == 6);
  // A lock held at exit: the general check resets the claim.
  auto arr = Map::create({"a", MapType::Array, 4, 8, 1, 0, nullptr});
  REQUIRE(arr.ok());
  std::vector<Map> maps{*arr};
  CHECK(*jit("r1 = map_value_fd(0) + 0 ll\ncall 93\nr0 = 5\nexit", maps).run(mem) == 5);
  CHECK(state_left_clean());
}

TEST_CASE("jit run state: an XDP run reports its own redirect only, and leaves none behind", "[jit]") {
  SKIP_WITHOUT_JIT();
  LoadOptions o;
  o.engine = Engine::Jit;
  Object obj = open_loaded("helpers", o);
  REQUIRE(obj.map("ports")->update(as_bytes<uint32_t>(2), as_bytes<uint32_t>(9)).ok());
  const std::vector<uint8_t> pkt = make_packet({});
  auto prog = [&](const char* name) {
    auto p = obj.program(name);
    REQUIRE(p.ok());
    return *p;
  };
  const XdpResult dev = run(prog("redirect_if"), pkt);
  CHECK(dev.action == XdpAction::Redirect);
  CHECK(dev.redirect.kind == RedirectTarget::Kind::Ifindex);
  CHECK(dev.redirect.ifindex == 7);
  CHECK(state_left_clean());
  // Recorded, then XDP_PASS: not reported, and not left for the next run.
  const XdpResult pass = run(prog("redirect_then_pass"), pkt);
  CHECK(pass.action == XdpAction::Pass);
  CHECK(pass.redirect.kind == RedirectTarget::Kind::None);
  CHECK(state_left_clean());
  const XdpResult nowhere = run(prog("redirect_nowhere"), pkt);
  CHECK(nowhere.action == XdpAction::Redirect);
  CHECK(nowhere.redirect.kind == RedirectTarget::Kind::None);
  // A devmap slot, then an ifindex: each result holds only its own run's target.
  XdpBuffer buf(pkt);
  auto port = prog("redirect_port").run_xdp(buf, {0, 1, 2});
  REQUIRE(port.ok());
  CHECK(port->redirect.kind == RedirectTarget::Kind::Map);
  CHECK(port->redirect.map_name == "ports");
  CHECK(port->redirect.key == 2);
  CHECK(state_left_clean());
  const XdpResult again = run(prog("redirect_if"), pkt);
  CHECK(again.redirect.kind == RedirectTarget::Kind::Ifindex);
  CHECK(again.redirect.map_name.empty());
  CHECK(run(prog("misc"), pkt).action == XdpAction::Pass);  // loops, map iteration, locks, ring buffer
  CHECK(state_left_clean());
}

TEST_CASE("jit run state: function() is the code itself, for programs that need no run state", "[jit]") {
  SKIP_WITHOUT_JIT();
  std::vector<uint8_t> mem = {1, 2, 3, 4, 5, 6, 7, 8};
  const auto call = [&](const JitProgram& p) {
    REQUIRE(p.function() != nullptr);
    return p.function()(reinterpret_cast<uintptr_t>(mem.data()), mem.size(), 0, 0, 0);
  };
  const JitProgram sum = jit("r0 = *(u8 *)(r1 + 7)\nr0 += r2\nexit");
  CHECK(call(sum) == 16);
  CHECK(*sum.run(mem) == 16);
  CHECK(call(jit("r1 = 7\nr2 = 0\ncall 23\nexit")) == 4);   // a redirect needs none (run(mem) reports only r0)
  CHECK(call(jit("call 7\nr0 = 1\nexit")) == 1);           // nor bpf_get_prandom_u32
  // A callback, the LD_ABS packet, a hash map (its values are freed by epochs the run takes part in).
  CHECK(jit("r1 = 1\nr2 = code(cb) ll\nr3 = 0\nr4 = 0\ncall 181\nexit\ncb:\nr0 = 0\nexit").function() == nullptr);
  CHECK(jit("r6 = r1\nr0 = *(u8 *)skb[0]\nexit").function() == nullptr);
  auto hash = Map::create({"h", MapType::Hash, 4, 8, 4, 0, nullptr});
  REQUIRE(hash.ok());
  std::vector<Map> maps{*hash};
  CHECK(jit("*(u32 *)(r10 - 4) = 0\nr1 = map_fd(0) ll\nr2 = r10\nr2 += -4\ncall 1\nexit", maps).function() == nullptr);
  // compile() verifies for a memory size, which function()'s callers must give.
  auto verified = JitProgram::compile(prog_of("r0 = *(u32 *)(r1 + 4)\nexit"), HelperRegistry::builtin(), {}, 8);
  REQUIRE(verified.ok());
  CHECK(verified->memory_size() == 8);
  CHECK(call(*verified) == 0x08070605);
  // run() calls the same code directly only with enough memory, and passes r1 = 0 for none.
  std::vector<uint8_t> small(4);
  auto refused = verified->run(small);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message == "the program was verified for 8 bytes of memory; 4 given");
  const JitProgram r1 = jit("r0 = r1\nexit");
  REQUIRE(r1.function() != nullptr);
  CHECK(*r1.run(std::span<uint8_t>(mem.data(), 0)) == 0);
  CHECK(*r1.run(mem) == reinterpret_cast<uintptr_t>(mem.data()));
}
