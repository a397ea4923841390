// tc and socket-filter programs against the Linux kernel: each packet run by BPF_PROG_TEST_RUN
// and by ebpfvm (both engines), then the verdicts, the packet bytes, struct __sk_buff as the kernel
// reports it after the run (ctx_out), and res[] (what the helpers returned, summed) compared;
// verified in the interpreter and the JIT, and unverified in the checked interpreter.
// Helpers or program types the host's kernel refuses are skipped per program (kernel.hpp).
#include <catch2/catch.hpp>

#include "kernel.hpp"
#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;
using kernel::KernelObject;

namespace {

std::vector<std::vector<uint8_t>> traffic() {
  PacketSpec web;
  web.l4 = 6;
  web.dport = 80;
  PacketSpec udp80;
  udp80.dport = 80;
  PacketSpec ssh;
  ssh.l4 = 6;
  ssh.sport = 22;
  ssh.dst4 = {10, 1, 1, 1};
  PacketSpec v6;
  v6.ipv6 = true;
  v6.l4 = 6;
  PacketSpec vlan;
  vlan.vlan = true;
  PacketSpec big;
  big.payload = 1400;
  auto ecn = make_packet(web);
  ecn[15] |= 2;  // ECT(0) in the IPv4 TOS byte
  std::vector<std::vector<uint8_t>> out;
  for (const auto& p : {make_packet({}), make_packet(web), make_packet(udp80), make_packet(ssh), make_packet(v6), make_packet(vlan),
                        make_packet(big), make_arp(), counting_bytes(60), ecn})
    out.push_back(p);
  return out;
}

// The inputs of struct __sk_buff the kernel takes (ctx_in), the same for ours.
__sk_buff ctx_in(size_t i, bool socket) {
  __sk_buff c{};
  c.mark = 0x1000 + static_cast<uint32_t>(i);
  c.priority = 3;
  c.ifindex = 1;
  c.cb[1] = socket ? 0 : 14;  // sock_ssh: where the network header is
  c.cb[2] = 0x55;
  c.tstamp = 1'000'000 + i;
  c.gso_segs = 1;
  c.hwtstamp = 77;
  return c;
}
SkbFields fields_of(const __sk_buff& c) {
  SkbFields f;
  f.mark = c.mark;
  f.priority = c.priority;
  f.ingress_ifindex = c.ingress_ifindex;
  f.ifindex = c.ifindex;
  std::copy(std::begin(c.cb), std::end(c.cb), f.cb);
  f.tstamp = c.tstamp;
  f.wire_len = c.wire_len;
  f.gso_segs = c.gso_segs;
  f.gso_size = c.gso_size;
  f.hwtstamp = c.hwtstamp;
  return f;
}

// `res`: compare tc.c's res[] in .bss after the runs.
void compare(const std::string& path, const std::vector<std::string>& programs, bool socket, bool res = true) {
  INFO(path);
  KernelObject k(path);
  if (!k.loaded()) return;
  auto opened = Object::open(path);
  REQUIRE(opened.ok());
  REQUIRE(opened->load().ok());
  Object& interp = *opened;
  LoadOptions jit_opts;
  jit_opts.engine = Engine::Jit;
  const bool with_jit = test::jit_available();
  auto jit = Object::open(path), checked = Object::open(path);
  REQUIRE(jit.ok());
  REQUIRE(checked.ok());
  if (with_jit) REQUIRE(jit->load(jit_opts).ok());
  LoadOptions checked_opts;  // unverified: every access checked, the context found by the rewrite's own analysis
  checked_opts.safety = Safety::Checked;
  REQUIRE(checked->load(checked_opts).ok());
  const auto engine = [&](const Object* o) { return o == &interp ? "interpreter" : o == &*checked ? "checked interpreter" : "JIT"; };
  for (const std::string& name : programs) {
    if (!k.has(name)) continue;
    INFO(name);
    const auto pkts = traffic();
    for (size_t i = 0; i < pkts.size(); ++i) {
      INFO("packet " << i << ": " << hex(pkts[i]));
      const __sk_buff in = ctx_in(i, socket);
      const auto theirs = k.run_skb(name, pkts[i], in);
      for (Object* obj : {&interp, &*checked, with_jit ? &*jit : nullptr}) {
        if (!obj) continue;
        INFO(engine(obj));
        SkbBuffer skb(pkts[i], fields_of(in), socket ? SkbStart::Network : SkbStart::Mac);
        auto r = obj->program(name)->run_skb(skb);
        REQUIRE(r.ok());
        CHECK(r->r0 == theirs.retval);
        // A socket filter's run hands back the Ethernet header it pulled, zeroed.
        std::vector<uint8_t> mine(socket ? 14 : 0, 0);
        mine.insert(mine.end(), skb.packet().begin(), skb.packet().end());
        INFO("ebpfvm " << hex(mine) << "\nkernel " << hex(theirs.data));
        CHECK(mine == theirs.data);
        const SkbFields f = skb.fields();
        const __sk_buff& c = theirs.ctx;
        CHECK(f.mark == c.mark);
        CHECK(f.priority == c.priority);
        CHECK(f.ingress_ifindex == c.ingress_ifindex);
        CHECK(f.ifindex == c.ifindex);
        for (int j = 0; j < 5; ++j) CHECK(f.cb[j] == c.cb[j]);
        CHECK(f.tstamp == c.tstamp);
        CHECK(f.wire_len == c.wire_len);
        CHECK(f.gso_segs == c.gso_segs);
        CHECK(f.hwtstamp == c.hwtstamp);
      }
    }
    kernel::count_compared(path, pkts.size());
  }
  if (!res) return;
  // res[]: the helpers' results, summed over every program and packet, on each side
  const auto want = k.global_data(".bss");
  for (Object* obj : {&interp, &*checked, with_jit ? &*jit : nullptr}) {
    if (!obj) continue;
    const auto mine = obj->map(".bss")->lookup(as_bytes<uint32_t>(0));
    REQUIRE(mine.ok());
    for (size_t j = 0; j < 128; ++j) {
      INFO(engine(obj) << " res[" << j << "]");
      CHECK(read_as<int64_t>(*mine, j * 8) == read_as<int64_t>(want, j * 8));
    }
  }
}

}  // namespace

TEST_CASE("kernel differential: tc programs (NAT, encapsulation, VLANs, classifier, resizing, the other helpers)", "[kernel]") {
  if (kernel::skip_all()) return;
  for (const char* prog : {"tc_nat", "tc_encap", "tc_vlan", "tc_classify", "tc_resize", "tc_misc", "tc_tunnel", "tc_nat64"}) compare(program_path("tc"), {prog}, false);
  const std::string example = std::string(EBPFVM_EXAMPLE_FIREWALL).substr(0, std::string(EBPFVM_EXAMPLE_FIREWALL).rfind('/'));
  compare(example + "/tc_classifier.o", {"tc_classify"}, false, false);
}

TEST_CASE("kernel differential: socket filters (LD_ABS, LD_IND, skb_load_bytes_relative, bytes kept)", "[kernel]") {
  if (kernel::skip_all()) return;
  for (const char* prog : {"sock_ssh", "sock_udp_head"}) compare(program_path("tc"), {prog}, true);
}
