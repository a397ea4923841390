// The interpreter's public API: load errors, regions, statistics, helper context, threads.
#include <catch2/catch.hpp>

#include <thread>

#include "support.hpp"

using namespace ebpfvm;

namespace {

Program prog(const std::string& text) {
  auto p = Program::from_assembly(text);
  REQUIRE(p.ok());
  return *p;
}

uint64_t read_user(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void* user) {
  return *static_cast<uint64_t*>(user);
}

}  // namespace

TEST_CASE("creating an interpreter rejects what it cannot run", "[interp][api]") {
  auto unknown = Interpreter::create(prog("r0 = 0\ncall 99\nexit"), {});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == Errc::UnknownHelper);
  CHECK(unknown.error().to_string() == "insn 1: unknown helper 99");

  auto kfunc = Interpreter::create(prog("call kfunc 12\nexit"), {});
  REQUIRE_FALSE(kfunc.ok());
  CHECK(kfunc.error().code == Errc::Unsupported);
  CHECK(kfunc.error().to_string() == "insn 0: call to kernel function (BTF id 12) is not supported");

  auto map = Interpreter::create(prog("r1 = map_fd(3) ll\nr0 = 0\nexit"), {});
  REQUIRE_FALSE(map.ok());
  CHECK(map.error().code == Errc::MalformedProgram);
  CHECK(map.error().to_string() == "insn 0: lddw refers to map 3, but 0 maps are bound");

  auto var = Interpreter::create(prog("r1 = var(3) ll\nr0 = 0\nexit"), {});
  REQUIRE_FALSE(var.ok());
  CHECK(var.error().code == Errc::Unsupported);
  CHECK(var.error().to_string() == "insn 0: lddw with src 3 (a kernel variable) is not supported");

  auto budget = Interpreter::create(prog("r0 = 0\nexit"), {}, {Safety::Checked, 0});
  REQUIRE_FALSE(budget.ok());
  CHECK(budget.error().code == Errc::InvalidArgument);
}

TEST_CASE("programs are rejected at creation when malformed", "[interp][api]") {
  auto p = Program::from_bytecode(std::vector<uint8_t>{0xb7, 0, 0, 0, 0, 0, 0, 0});
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().to_string() == "insn 0: last instruction is not exit or goto");
  auto a = Program::from_assembly("r0 = 1\nbogus\nexit");
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().where.line == 2);
}

TEST_CASE("checked mode honours extra regions and their permissions", "[interp][api]") {
  uint64_t cell = 41;
  Region r{&cell, sizeof cell, false};
  RunArgs args;
  args.regs[0] = reinterpret_cast<uintptr_t>(&cell);
  args.regions = std::span(&r, 1);

  auto reader = Interpreter::create(prog("r0 = *(u64 *)(r1 + 0)\nr0 += 1\nexit"), {});
  REQUIRE(reader.ok());
  auto v = reader->run(args);
  REQUIRE(v.ok());
  CHECK(*v == 42);

  auto writer = Interpreter::create(prog("*(u64 *)(r1 + 0) = 7\nr0 = 0\nexit"), {});
  auto denied = writer->run(args);
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.error().code == Errc::RuntimeFault);
  CHECK_THAT(denied.error().to_string(), Catch::Matchers::StartsWith("insn 0: out-of-bounds write of 8 bytes at 0x"));
  CHECK(cell == 41);

  r.writable = true;
  REQUIRE(writer->run(args).ok());
  CHECK(cell == 7);
}

TEST_CASE("checked mode counts executed instructions and enforces the budget", "[interp][api]") {
  auto p = prog("r0 = 0\nloop: r0 += 1\nif r0 < 10 goto loop\nexit");
  auto vm = Interpreter::create(p, {}, {Safety::Checked, 1000});
  RunStats stats;
  auto r = vm->run(RunArgs{}, &stats);
  REQUIRE(r.ok());
  CHECK(*r == 10);
  CHECK(stats.insns_executed == 1 + 10 * 2 + 1);

  auto tight = Interpreter::create(p, {}, {Safety::Checked, 21});
  auto over = tight->run(RunArgs{});
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().to_string() == "insn 3: instruction budget of 21 exceeded");
  auto exact = Interpreter::create(p, {}, {Safety::Checked, 22});
  CHECK(exact->run(RunArgs{}).ok());
}

TEST_CASE("helpers receive the context pointer given at registration", "[interp][api]") {
  uint64_t secret = 0xfeed;
  HelperRegistry helpers;
  REQUIRE(helpers.add({7, "read_user", read_user, &secret, {}}).ok());
  auto dup = helpers.add({7, "other", read_user, nullptr, {}});
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().message == "helper id 7 is already registered");
  CHECK_FALSE(helpers.add({8, "read_user", read_user, nullptr, {}}).ok());
  CHECK_FALSE(helpers.add({9, "null", nullptr, nullptr, {}}).ok());
  CHECK(helpers.find("read_user")->id == 7);
  for (Safety s : {Safety::Checked, Safety::TrustedUnchecked}) {
    auto vm = Interpreter::create(prog("call 7\nexit"), helpers, {s});
    REQUIRE(vm.ok());
    CHECK(vm->safety() == s);
    CHECK(*vm->run(RunArgs{}) == 0xfeed);
  }
}

TEST_CASE("one interpreter runs on many threads at once", "[interp][api]") {
  // Each run uses its own stack: the result depends only on the thread's input.
  auto vm = Interpreter::create(prog("*(u64 *)(r10 - 8) = r2\n"
                                     "r0 = 0\n"
                                     "loop: r3 = *(u64 *)(r10 - 8)\n"
                                     "r0 += r3\n"
                                     "r2 -= 1\n"
                                     "*(u64 *)(r10 - 8) = r2\n"
                                     "if r2 != 0 goto loop\n"
                                     "exit"),
                                {}, {Safety::Checked});
  REQUIRE(vm.ok());
  std::vector<std::thread> threads;
  std::vector<uint64_t> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      RunArgs args;
      args.regs[1] = 1000 + t;
      uint64_t sum = 0;
      for (int i = 0; i < 200; ++i) {
        auto r = vm->run(args);
        sum = r ? *r : 0;
      }
      results[t] = sum;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    uint64_t n = 1000 + t;
    CHECK(results[t] == n * (n + 1) / 2);
  }
}
