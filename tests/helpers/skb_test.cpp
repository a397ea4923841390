// struct __sk_buff programs in ebpfvm alone: SkbBuffer, run_skb's refusals, and what the verifier
// lets tc programs and socket filters do with their context. (Their results against the kernel's
// are in loader/skb_kernel_diff_test.cpp.)
#include <catch2/catch.hpp>

#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

// The verifier's verdict on `text` for a program type's context: "" when it accepts.
std::string verdict(const std::string& text, VerifyOptions::Context context) {
  auto code = assemble(text);
  REQUIRE(code.ok());
  auto prog = Program::from_bytecode(*code);
  REQUIRE(prog.ok());
  VerifyOptions o;
  o.context = context;
  auto r = verify(*prog, HelperRegistry::builtin(), {}, o);
  return r ? "" : r.error().message;
}
constexpr auto kTc = VerifyOptions::Context::SchedCls;
constexpr auto kSocket = VerifyOptions::Context::SocketFilter;

}  // namespace

TEST_CASE("SkbBuffer: the skb BPF_PROG_TEST_RUN makes of a frame") {
  const auto udp = make_packet({});
  SkbFields in;
  in.mark = 9;
  in.cb[2] = 7;
  SkbBuffer skb(udp, in);
  REQUIRE(skb.valid());
  CHECK(skb.packet().size() == udp.size());
  const SkbFields f = skb.fields();
  CHECK(f.protocol == 0x0800);
  CHECK(f.mark == 9);
  CHECK(f.cb[2] == 7);
  CHECK(f.ifindex == 1);
  CHECK(f.wire_len == udp.size());  // 0 given: the packet's length
  CHECK(f.pkt_type == 3);           // not the loopback device's address (00:..:00): PACKET_OTHERHOST
  auto bcast = udp;
  std::fill(bcast.begin(), bcast.begin() + 6, 0xff);
  CHECK(SkbBuffer(bcast).fields().pkt_type == 1);
  auto mcast = udp;
  mcast[0] = 0x01;
  CHECK(SkbBuffer(mcast).fields().pkt_type == 2);
  std::fill(mcast.begin(), mcast.begin() + 6, 0);
  CHECK(SkbBuffer(mcast).fields().pkt_type == 0);
  in.egress = true;
  CHECK(SkbBuffer(bcast, in).fields().pkt_type == 0);  // a packet the host sends
  // 802.3 lengths: raw IPX after the header, else LLC
  auto llc = counting_bytes(60);
  llc[12] = 0x00, llc[13] = 0x2e;
  CHECK(SkbBuffer(llc).fields().protocol == 0x0004);
  llc[14] = llc[15] = 0xff;
  CHECK(SkbBuffer(llc).fields().protocol == 0x0001);
  // a socket filter in a test run sees the frame from the network header
  SkbBuffer l3(udp, {}, SkbStart::Network);
  CHECK(l3.packet().size() == udp.size() - 14);
  CHECK(l3.fields().wire_len == udp.size() - 14);
  // no skb can be made of a runt
  CHECK_FALSE(SkbBuffer(std::vector<uint8_t>(13, 1)).valid());
  CHECK_FALSE(SkbBuffer(std::vector<uint8_t>(65550, 1)).valid());
}

TEST_CASE("run_skb: refusals name the program and why, and a view runs only what never writes the packet") {
  Object obj = open_loaded("tc");
  SkbBuffer runt(std::vector<uint8_t>(10, 0));
  auto r = obj.program("tc_classify")->run_skb(runt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("an skb is built from a frame of 14 (an Ethernet header) to 65549 bytes") != std::string::npos);
  const auto udp = make_packet({});
  // tc_nat writes the packet: not on a view
  SkbBuffer view;
  view.view(udp);
  auto nat = obj.program("tc_nat")->run_skb(view);
  REQUIRE_FALSE(nat.ok());
  CHECK(nat.error().message.find("may write the packet: run it on a copy (SkbBuffer::assign), not a view") != std::string::npos);
  // sock_udp_head reads only: a view gives what a copy gives
  SkbBuffer copy(udp, {}, SkbStart::Mac);
  view.view(udp);
  auto a = obj.program("sock_udp_head")->run_skb(copy);
  auto b = obj.program("sock_udp_head")->run_skb(view);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->keep == 40);
  CHECK(b->keep == 40);
  CHECK(std::equal(view.packet().begin(), view.packet().end(), udp.begin(), udp.end()));
  // an XDP program is not run on an skb, nor a tc program on an XDP frame
  Object xdp = open_loaded("parse");
  SkbBuffer skb(udp);
  auto wrong = xdp.program("firewall")->run_skb(skb);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().message.find("is not a tc or socket-filter program (type xdp)") != std::string::npos);
  XdpBuffer frame(udp);
  CHECK(obj.program("tc_nat")->run_xdp(frame).error().message.find("not an XDP program (type sched_cls)") != std::string::npos);
}

TEST_CASE("verifier: struct __sk_buff as tc programs and socket filters may use it") {
  // tc: the writable fields whole, narrower loads, cb[] at any size; nothing else written
  CHECK(verdict("r2 = 7\n*(u32 *)(r1 + 8) = r2\n*(u32 *)(r1 + 72) = r2\n*(u64 *)(r1 + 152) = r2\nr0 = 0\nexit\n", kTc) == "");
  CHECK(verdict("r0 = *(u8 *)(r1 + 17)\n*(u8 *)(r1 + 49) = r0\n*(u64 *)(r1 + 56) = r0\nexit\n", kTc) == "");
  CHECK(verdict("r2 = 1\n*(u32 *)(r1 + 0) = r2\nr0 = 0\nexit\n", kTc) == "invalid bpf_context access off=0 size=4");  // len
  CHECK(verdict("r2 = 1\n*(u16 *)(r1 + 8) = r2\nr0 = 0\nexit\n", kTc) == "invalid bpf_context access off=8 size=2");  // mark, narrowly
  CHECK(verdict("r0 = *(u32 *)(r1 + 152)\nexit\n", kTc) == "invalid bpf_context access off=152 size=4");  // tstamp is read whole
  CHECK(verdict("r0 = *(u32 *)(r1 + 92)\nexit\n", kTc) == "invalid bpf_context access off=92 size=4");  // remote_ip4: sockets only
  CHECK(verdict("r0 = *(u64 *)(r1 + 64)\nexit\n", kTc) == "invalid bpf_context access off=64 size=8");  // past cb[4]
  CHECK(verdict("r2 = 1\nlock *(u32 *)(r1 + 8) += r2\nr0 = 0\nexit\n", kTc) == "BPF_ATOMIC stores into R1 ctx is not allowed");
  // socket filters: no packet pointers, only cb[] written, no tc helpers
  CHECK(verdict("r0 = *(u32 *)(r1 + 76)\nr0 = 0\nexit\n", kSocket) == "invalid bpf_context access off=76 size=4");
  CHECK(verdict("r2 = 1\n*(u32 *)(r1 + 8) = r2\nr0 = 0\nexit\n", kSocket) == "invalid bpf_context access off=8 size=4");
  CHECK(verdict("r2 = 1\n*(u32 *)(r1 + 48) = r2\nr0 = *(u32 *)(r1 + 0)\nexit\n", kSocket) == "");
  CHECK(verdict("r2 = 0\nr3 = r10\nr3 += -8\nr4 = 8\nr5 = 0\ncall 9\nr0 = 0\nexit\n", kSocket) ==
        "program of this type cannot use helper bpf_skb_store_bytes#9");
  CHECK(verdict("r1 = 3\nr2 = 0\ncall 44\nr0 = 0\nexit\n", kTc) == "program of this type cannot use helper bpf_xdp_adjust_head#44");
  // LD_ABS: tc and socket filters, with the skb in r6
  CHECK(verdict("r6 = r1\nr0 = *(u16 *)skb[12]\nexit\n", kSocket) == "");
  CHECK(verdict("r6 = 0\nr0 = *(u16 *)skb[12]\nexit\n", kSocket) == "at the time of BPF_LD_ABS|IND R6 != pointer to skb");
  CHECK(verdict("r6 = r1\nr0 = *(u16 *)skb[12]\nexit\n", VerifyOptions::Context::Xdp) ==
        "BPF_LD_[ABS|IND] instructions not allowed for this program type");
  // packet pointers die with a helper that moves the packet
  CHECK(verdict("r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr4 = r2\nr4 += 1\nif r4 > r3 goto out\nr6 = r1\n"
                "r1 = r6\nr2 = 0\nr3 = 0\ncall 43\nr0 = *(u8 *)(r2 + 0)\nout:\nr0 = 0\nexit\n",
                kTc) == "R2 !read_ok");
}
