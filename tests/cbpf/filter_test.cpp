// Classic BPF filters translated to eBPF: against libpcap's own interpreter (bpf_filter) on random
// classic programs and on tcpdump expressions over crafted packets, in both engines; and every
// error a user can meet.
#include <pcap/pcap.h>

#include <catch2/catch.hpp>
#include <random>

#include "cbpf/cbpf.hpp"
#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

std::vector<Engine> engines() {
  std::vector<Engine> out{Engine::Interpreter};
  if (jit_available()) out.push_back(Engine::Jit);
  return out;
}

uint32_t libpcap_result(std::span<const ClassicInsn> prog, std::span<const uint8_t> pkt, uint32_t wire_len) {
  std::vector<bpf_insn> raw;
  for (const ClassicInsn& in : prog) raw.push_back({in.code, in.jt, in.jf, in.k});
  return bpf_filter(raw.data(), pkt.data(), wire_len, static_cast<u_int>(pkt.size()));
}

// A random classic program libpcap's validator accepts: scratch words written first (libpcap
// leaves unwritten ones undefined), then loads of every kind, ALU operations, forward jumps and
// returns, ending with a return.
std::vector<ClassicInsn> random_classic(std::mt19937_64& rng) {
  auto below = [&](uint64_t n) { return static_cast<uint32_t>(rng() % n); };
  auto small_k = [&] { return below(4) == 0 ? static_cast<uint32_t>(rng()) : below(80); };
  std::vector<ClassicInsn> p;
  for (uint32_t k = 0; k < 16; ++k) {
    p.push_back({0x00, 0, 0, static_cast<uint32_t>(rng())});  // ld #imm
    p.push_back({0x02, 0, 0, k});                              // st M[k]
  }
  const size_t body = 4 + below(40);
  const size_t start = p.size(), end = start + body;  // a return follows at `end`
  static const uint16_t kLoads[] = {0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x00, 0x60, 0x01, 0x61, 0x81, 0xb1};
  static const uint16_t kAluOps[] = {0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0};
  static const uint16_t kJumps[] = {0x10, 0x20, 0x30, 0x40};
  for (size_t i = start; i < end; ++i) {
    const size_t room = end - i;  // instructions after this one, the final return included
    ClassicInsn in;
    switch (below(7)) {
      case 0: case 1: {
        in.code = kLoads[below(std::size(kLoads))];
        in.k = (in.code & 0xe0) == 0x60 ? below(16) : small_k();  // M[k], or a packet offset or constant
        break;
      }
      case 2: case 3: {
        const uint16_t op = kAluOps[below(std::size(kAluOps))];
        const bool x = below(2);
        in.code = static_cast<uint16_t>(0x04 | op | (x ? 0x08 : 0));
        in.k = static_cast<uint32_t>(rng());
        if (!x && (op == 0x30 || op == 0x90) && in.k == 0) in.k = 7;
        if (!x && (op == 0x60 || op == 0x70)) in.k %= 32;
        if (below(5) == 0) in = {0x84, 0, 0, 0};  // neg
        break;
      }
      case 4: {
        in.code = static_cast<uint16_t>(0x05 | kJumps[below(4)] | (below(2) ? 0x08 : 0));
        in.k = below(3) == 0 ? static_cast<uint32_t>(rng()) : below(80);
        in.jt = static_cast<uint8_t>(below(static_cast<uint64_t>(std::min<size_t>(room, 255))));
        in.jf = static_cast<uint8_t>(below(static_cast<uint64_t>(std::min<size_t>(room, 255))));
        break;
      }
      case 5:
        if (below(3) == 0) in = {0x05, 0, 0, below(static_cast<uint64_t>(room))};  // ja
        else in = {static_cast<uint16_t>(below(2) ? 0x07 : 0x87), 0, 0, 0};   // tax, txa
        break;
      default:
        if (below(3) == 0) in = {static_cast<uint16_t>(below(2) ? 0x06 : 0x16), 0, 0, small_k()};  // ret #k, ret a
        else in = {static_cast<uint16_t>(below(2) ? 0x02 : 0x03), 0, 0, below(16)};            // st, stx
    }
    p.push_back(in);
  }
  p.push_back({0x16, 0, 0, 0});  // ret a
  return p;
}

std::vector<uint8_t> random_packet(std::mt19937_64& rng) {
  std::vector<uint8_t> pkt(rng() % 100);
  for (auto& b : pkt) b = static_cast<uint8_t>(rng() % 4 == 0 ? rng() % 16 : rng());
  return pkt;
}

}  // namespace

TEST_CASE("filter: random classic programs give what libpcap's bpf_filter gives, in every engine") {
  std::mt19937_64 rng(41);
  size_t programs = 0, runs = 0;
  for (int n = 0; n < 600; ++n) {
    const auto prog = random_classic(rng);
    std::vector<bpf_insn> raw;
    for (const ClassicInsn& in : prog) raw.push_back({in.code, in.jt, in.jf, in.k});
    REQUIRE(bpf_validate(raw.data(), static_cast<int>(raw.size())));
    INFO(format_classic(prog));
    for (Engine e : engines()) {
      auto f = PacketFilter::from_classic(prog, {e});
      if (!f) FAIL(f.error().to_string());
      CHECK(f->engine() == e);
      std::mt19937_64 packets(static_cast<uint64_t>(n));
      for (int k = 0; k < 20; ++k) {
        const auto pkt = random_packet(packets);
        const auto wire = static_cast<uint32_t>(pkt.size() + packets() % 3 * 100);
        INFO("packet of " << pkt.size() << " bytes, " << wire << " on the wire");
        REQUIRE(f->run(pkt, wire) == libpcap_result(prog, pkt, wire));
        ++runs;
      }
    }
    ++programs;
  }
  CHECK(programs == 600);
  CHECK(runs >= 600 * 20);
}

TEST_CASE("filter: tcpdump expressions match the packets libpcap matches, in every engine") {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> packets;
  auto add = [&](const std::string& what, std::vector<uint8_t> p) { packets.emplace_back(what, std::move(p)); };
  PacketSpec udp;
  add("udp 1234 > 53", make_packet(udp));
  PacketSpec ssh;
  ssh.l4 = 6, ssh.dport = 22, ssh.sport = 40000;
  add("tcp 40000 > 22", make_packet(ssh));
  PacketSpec web = ssh;
  web.dport = 80, web.dst4 = {192, 168, 7, 9};
  add("tcp to 192.168.7.9:80", make_packet(web));
  PacketSpec syn = web;
  auto syn_pkt = make_packet(syn);
  syn_pkt[14 + 20 + 13] = 0x02;  // TCP flags: SYN
  add("tcp syn", syn_pkt);
  PacketSpec v6 = ssh;
  v6.ipv6 = true;
  add("tcp over ipv6", make_packet(v6));
  PacketSpec v6udp;
  v6udp.ipv6 = true;
  add("udp over ipv6", make_packet(v6udp));
  PacketSpec vlan = web;
  vlan.vlan = true;
  add("vlan tcp", make_packet(vlan));
  PacketSpec big = udp;
  big.payload = 1400;
  add("big udp", make_packet(big));
  PacketSpec icmp;
  icmp.l4 = 1;
  add("icmp", make_packet(icmp));
  auto frag = make_packet(udp);
  frag[14 + 6] = 0x20;  // more fragments
  frag[14 + 7] = 0x10;  // offset 16
  add("a fragment", frag);
  add("arp", make_arp());
  add("short", std::vector<uint8_t>(10, 0xff));
  add("empty", {});
  auto bcast = make_packet(udp);
  std::fill(bcast.begin(), bcast.begin() + 6, 0xff);
  add("broadcast", bcast);

  const char* const expressions[] = {
      "tcp", "udp", "icmp", "ip", "ip6", "arp", "vlan", "vlan and tcp", "tcp port 22", "tcp dst port 80 or udp src port 1234",
      "host 10.0.0.1", "dst host 192.168.7.9", "net 192.168.0.0/16", "not net 10.0.0.0/8", "ip[8] > 32", "ip[9] = 17",
      "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn", "len > 100", "greater 1000", "less 64",
      "ether broadcast", "ether dst ff:ff:ff:ff:ff:ff", "ether proto 0x0806", "ip6 and tcp", "ip6 and udp dst port 53",
      "portrange 20-25", "tcp and not port 22", "ip[6:2] & 0x1fff != 0", "udp[0:2] = 1234", "ip and (tcp or icmp)",
      "ether[12:2] = 0x8100 and ether[16:2] = 0x0800", "ip[0] & 0xf > 5", "tcp[12] >> 4 > 5",
      "udp and ip[2:2] - ((ip[0] & 0xf) << 2) > 100", "ip[2:2] / 4 > 10", "ip[2:2] % 7 = 3", "ip[2:2] * 3 > 300",
      "len - 14 > 40", "ip[1] ^ 0xff = 0xff", "(ip[2:2] << 2) > 1000", ""};
  for (Engine e : engines())
    for (const char* expr : expressions) {
      INFO("'" << expr << "', " << (e == Engine::Jit ? "jit" : "interpreter"));
      auto f = PacketFilter::compile(expr, {e});
      if (!f) FAIL(f.error().to_string());
      for (const auto& [what, pkt] : packets) {
        INFO(what);
        const uint32_t wire = static_cast<uint32_t>(pkt.size());
        REQUIRE(f->run(pkt, wire) == libpcap_result(f->classic(), pkt, wire));
        // a capture cut short: loads past the captured bytes end the program with 0, as in libpcap
        const auto cut = std::span(pkt).first(std::min<size_t>(pkt.size(), 30));
        REQUIRE(f->run(cut, wire) == libpcap_result(f->classic(), cut, wire));
      }
    }
}

TEST_CASE("filter: what tcpdump -d, -dd and -ddd print, and the text forms read back") {
  auto f = PacketFilter::compile("ip and udp", {Engine::Interpreter});
  REQUIRE(f.ok());
  const std::string listing = format_classic(f->classic());
  CHECK_THAT(listing, Catch::Matchers::StartsWith("(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 5\n"));
  const std::string c = format_classic_c(f->classic());
  CHECK_THAT(c, Catch::Matchers::StartsWith("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 3, 0x00000800 },\n"));
  auto from_c = parse_classic(c);
  REQUIRE(from_c.ok());
  CHECK(*from_c == std::vector<ClassicInsn>(f->classic().begin(), f->classic().end()));
  std::string ddd = std::to_string(f->classic().size()) + "\n";
  for (const ClassicInsn& in : f->classic())
    ddd += std::to_string(in.code) + " " + std::to_string(in.jt) + " " + std::to_string(in.jf) + " " + std::to_string(in.k) + "\n";
  auto from_ddd = parse_classic(ddd);
  REQUIRE(from_ddd.ok());
  CHECK(*from_ddd == *from_c);
  // the eBPF: A in w0, X in w7, the wire length in w8, a packet load per classic load
  const std::string ebpf = f->ebpf().disassemble();
  CHECK_THAT(ebpf, Catch::Matchers::Contains("r0 = *(u16 *)skb[12]"));
  CHECK_THAT(ebpf, Catch::Matchers::Contains("r0 = *(u8 *)skb[23]"));
}

TEST_CASE("filter: bad expressions, programs and texts are clear errors") {
  auto syntax = PacketFilter::compile("tcp port", {Engine::Interpreter});
  REQUIRE_FALSE(syntax.ok());
  CHECK(syntax.error().message == "can't parse filter expression: syntax error (filter 'tcp port')");
  auto protochain = PacketFilter::compile("ip6 protochain 6", {Engine::Interpreter});
  REQUIRE_FALSE(protochain.ok());
  CHECK_THAT(protochain.error().message, Catch::Matchers::EndsWith(
      "(ja): a backward jump (to 4): classic programs may only jump forward (libpcap's 'protochain' needs one)"));
  auto unknown = PacketFilter::compile("host no.such.host.invalid", {Engine::Interpreter});
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.error().message, Catch::Matchers::Contains("no.such.host.invalid"));

  auto refuse = [](std::vector<ClassicInsn> prog) {
    auto f = PacketFilter::from_classic(prog, {Engine::Interpreter});
    REQUIRE_FALSE(f.ok());
    CHECK(f.error().code == Errc::InvalidArgument);
    return f.error().message;
  };
  CHECK(refuse({}) == "classic BPF program is empty");
  CHECK(refuse(std::vector<ClassicInsn>(4097, {0x06, 0, 0, 0})) == "classic BPF program has 4097 instructions, more than 4096");
  CHECK(refuse({{0x15, 3, 0, 1}, {0x06, 0, 0, 0}}) == "classic BPF instruction 0 (jeq): true jump to 4 is past the end (2 instructions)");
  CHECK(refuse({{0x05, 0, 0, 7}, {0x06, 0, 0, 0}}) == "classic BPF instruction 0 (ja): jump to 8 is past the end (2 instructions)");
  CHECK(refuse({{0x00, 0, 0, 1}}) == "classic BPF instruction 0 (ld): the program must end with ret");
  CHECK(refuse({{0x60, 0, 0, 16}, {0x16, 0, 0, 0}}) == "classic BPF instruction 0 (ld): scratch memory M[16] does not exist (M[0] to M[15])");
  CHECK(refuse({{0x02, 0, 0, 99}, {0x16, 0, 0, 0}}) == "classic BPF instruction 0 (st): scratch memory M[99] does not exist (M[0] to M[15])");
  CHECK(refuse({{0x34, 0, 0, 0}, {0x16, 0, 0, 0}}) == "classic BPF instruction 0 (div): division by the constant 0");
  CHECK(refuse({{0x64, 0, 0, 32}, {0x16, 0, 0, 0}}) == "classic BPF instruction 0 (lsh): shift by 32, 32 or more");
  CHECK(refuse({{0xff, 0, 0, 0}, {0x16, 0, 0, 0}}) == "classic BPF instruction 0 (code 0xff): unknown opcode");
  CHECK(refuse({{0x20, 0, 0, 0xfffff000}, {0x16, 0, 0, 0}}) ==
        "classic BPF instruction 0 (ld): Linux ancillary data (SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF) cannot be read from a capture");

  auto text = [](std::string_view t) {
    auto r = parse_classic(t);
    REQUIRE_FALSE(r.ok());
    return r.error().message;
  };
  CHECK(text("") == "classic BPF text holds no instruction");
  CHECK(text("2\n6 0 0 0\n") == "classic BPF text says 2 instructions but holds 1");
  CHECK(text("1\n6 0 0\n") == "classic BPF text, line 2: expected an instruction 'code jt jf k' (tcpdump -ddd) or '{ code, jt, jf, k },' (tcpdump -dd)");
  CHECK(text("6 0 0 99999999999\n") == "classic BPF text, line 1: a number out of range");
}

TEST_CASE("filter: unreachable classic code is left out, as the verifier refuses dead eBPF") {
  // ret #1 at 0; what follows is never run
  auto f = PacketFilter::from_classic(std::vector<ClassicInsn>{{0x06, 0, 0, 1}, {0x00, 0, 0, 5}, {0x16, 0, 0, 0}}, {Engine::Interpreter});
  REQUIRE(f.ok());
  CHECK(f->run(std::vector<uint8_t>(4, 0)) == 1);
}
