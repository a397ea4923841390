// The XDP buffer and the helpers that reshape it, on programs compiled from tests/programs/adjust.c.
#include <catch2/catch.hpp>

#include "packets.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {


XdpResult run(const Object& obj, const char* name, XdpBuffer& buf) {
  auto p = obj.program(name);
  REQUIRE(p.ok());
  auto r = p->run_xdp(buf);
  if (!r) FAIL(r.error().to_string());
  return *r;
}

}  // namespace

TEST_CASE("XdpBuffer: 256 bytes of headroom in a 4 KiB frame, larger frames for larger packets") {
  XdpBuffer b(counting_bytes(100));
  CHECK(b.headroom() == 256);
  CHECK(b.frame_size() == 4096);
  CHECK(b.packet().size() == 100);
  CHECK(b.metadata().empty());
  b.assign(counting_bytes(9000));
  CHECK(b.frame_size() == 12288);
  CHECK(b.packet().size() == 9000);
  CHECK(b.packet()[8999] == static_cast<uint8_t>(8999));
}

TEST_CASE("bpf_xdp_adjust_head: push and pop headers") {
  Object obj = open_loaded("adjust");
  const auto pkt = counting_bytes(60);
  XdpBuffer buf(pkt);
  CHECK(run(obj, "push_header", buf).action == XdpAction::Tx);
  CHECK(res_at(obj, 0) == 0);
  CHECK(res_at(obj, 1) == 0);   // the new bytes were zero
  CHECK(res_at(obj, 2) == 64);  // bpf_xdp_get_buff_len
  CHECK(res_at(obj, 3) == -22);
  CHECK(buf.headroom() == 252);
  auto out = buf.packet();
  REQUIRE(out.size() == 64);
  CHECK(std::vector<uint8_t>(out.begin(), out.begin() + 4) == std::vector<uint8_t>{0xde, 0xad, 0xbe, 0xef});
  CHECK(std::vector<uint8_t>(out.begin() + 4, out.end()) == pkt);

  buf.assign(pkt);
  CHECK(run(obj, "pop_header", buf).action == XdpAction::Pass);
  CHECK(res_at(obj, 0) == 0);
  CHECK(res_at(obj, 1) == -22);
  CHECK(std::vector<uint8_t>(buf.packet().begin(), buf.packet().end()) == std::vector<uint8_t>(pkt.begin() + 14, pkt.end()));
}

TEST_CASE("bpf_xdp_adjust_tail: grow zero-filled up to the frame, and shrink") {
  Object obj = open_loaded("adjust");
  XdpBuffer buf(counting_bytes(60));
  CHECK(run(obj, "grow_tail", buf).action == XdpAction::Pass);
  CHECK(res_at(obj, 0) == 0);
  CHECK(res_at(obj, 1) == 0);
  CHECK(res_at(obj, 2) == -22);
  CHECK(res_at(obj, 3) == 0);
  CHECK(res_at(obj, 4) == 64);  // 60 + 8 - 4
  auto out = buf.packet();
  REQUIRE(out.size() == 64);
  CHECK(out[59] == 59);
  CHECK(out[60] == 0);
  CHECK(out[63] == 0);
}

TEST_CASE("bpf_xdp_adjust_meta: metadata before the packet, 4-byte multiples, within the headroom") {
  Object obj = open_loaded("adjust");
  XdpBuffer buf(counting_bytes(60));
  CHECK(run(obj, "set_meta", buf).action == XdpAction::Pass);
  CHECK(res_at(obj, 0) == 0);
  CHECK(res_at(obj, 1) == -13);
  CHECK(res_at(obj, 2) == -22);
  CHECK(res_at(obj, 3) == 8);
  auto meta = buf.metadata();
  CHECK(std::vector<uint8_t>(meta.begin(), meta.end()) == std::vector<uint8_t>{0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55});
  CHECK(buf.packet().size() == 60);
}

TEST_CASE("bpf_xdp_load_bytes and bpf_xdp_store_bytes") {
  Object obj = open_loaded("adjust");
  XdpBuffer buf(counting_bytes(64));
  CHECK(run(obj, "load_store", buf).action == XdpAction::Pass);
  CHECK(res_at(obj, 0) == 0);
  CHECK(res_at(obj, 1) == 0x05040302);
  CHECK(res_at(obj, 2) == 0);
  CHECK(res_at(obj, 3) == -22);
  auto p = buf.packet();
  CHECK(std::vector<uint8_t>(p.begin(), p.begin() + 6) == std::vector<uint8_t>{2, 3, 4, 5, 4, 5});
}

TEST_CASE("a firewall: parsing, per-CPU counters, LPM blocklist, port blocklist") {
  LoadOptions opts;
  opts.workers = 2;
  Object obj = open_loaded("parse", opts);
  auto fw = obj.program("firewall");
  REQUIRE(fw.ok());
  auto lpm_key = std::vector<uint8_t>{16, 0, 0, 0, 10, 9, 0, 0};
  REQUIRE(obj.map("blocklist")->update(lpm_key, as_bytes<uint32_t>(1)).ok());
  REQUIRE(obj.map("blocked_ports")->update(as_bytes<uint16_t>(22), std::vector<uint8_t>{1}).ok());

  PacketSpec udp;  // 10.0.0.1 -> 10.0.0.2 udp/53
  PacketSpec ssh;
  ssh.l4 = 6;
  ssh.dport = 22;
  PacketSpec blocked;
  blocked.src4 = {10, 9, 3, 4};
  PacketSpec v6;
  v6.ipv6 = true;
  v6.l4 = 6;
  v6.dport = 80;
  PacketSpec vlan;
  vlan.vlan = true;
  vlan.src4 = {10, 0, 0, 7};
  struct Case {
    std::vector<uint8_t> pkt;
    XdpAction want;
    uint32_t worker;
  };
  const std::vector<Case> cases = {
      {make_packet(udp), XdpAction::Pass, 0},      {make_packet(ssh), XdpAction::Drop, 1},
      {make_packet(blocked), XdpAction::Drop, 0},  {make_packet(v6), XdpAction::Pass, 1},
      {make_packet(vlan), XdpAction::Pass, 0},     {make_arp(), XdpAction::Pass, 0},
      {std::vector<uint8_t>(10, 0), XdpAction::Aborted, 1},
  };
  for (const Case& c : cases) {
    XdpBuffer buf(c.pkt);
    auto r = fw->run_xdp(buf, {c.worker, 1, 0});
    REQUIRE(r.ok());
    CHECK(r->action == c.want);
  }
  // counters: per-CPU array of u64 indexed ETH, IPV4, IPV6, TCP, UDP, OTHER, BLOCKED.
  auto counters = obj.map("counters");
  auto total = [&](uint32_t i) {
    auto v = counters->lookup(as_bytes(i));
    REQUIRE(v.ok());
    return read_as<uint64_t>(*v, 0) + read_as<uint64_t>(*v, 8);
  };
  CHECK(total(0) == 6);  // every frame with a full Ethernet header
  CHECK(total(1) == 4);  // udp, ssh, blocked, vlan
  CHECK(total(2) == 1);
  CHECK(total(3) == 2);  // ssh, v6
  CHECK(total(4) == 2);  // udp, vlan
  CHECK(total(5) == 1);  // arp
  CHECK(total(6) == 1);
  auto per_worker = counters->lookup(as_bytes<uint32_t>(0));
  CHECK(read_as<uint64_t>(*per_worker, 0) == 4);
  CHECK(read_as<uint64_t>(*per_worker, 8) == 2);
  // bytes per IPv4 source: 10.0.0.1 sent udp and ssh, 10.0.0.7 the VLAN frame.
  auto bytes = obj.map("bytes_by_src");
  CHECK(read_as<uint64_t>(*bytes->lookup(std::vector<uint8_t>{10, 0, 0, 1})) == make_packet(udp).size() + make_packet(ssh).size());
  CHECK(read_as<uint64_t>(*bytes->lookup(std::vector<uint8_t>{10, 0, 0, 7})) == make_packet(vlan).size());
  CHECK(bytes->keys().size() == 2);
}

TEST_CASE("XdpBuffer::view: programs that never write the packet read it in place, others are refused") {
  Object parse = open_loaded("parse");
  auto reader = parse.program("firewall");
  REQUIRE(reader.ok());
  REQUIRE(reader->verify_report() != nullptr);
  CHECK_FALSE(reader->verify_report()->writes_packet);
  PacketSpec ssh;
  ssh.l4 = 6, ssh.dport = 22;
  for (const auto& packet : {make_packet({}), make_packet(ssh), make_arp()}) {
    XdpBuffer copy(packet), view;
    view.view(packet);
    CHECK(view.is_view());
    CHECK(view.packet().data() == packet.data());
    auto a = reader->run_xdp(copy), b = reader->run_xdp(view);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->action == b->action);
  }
  Object adjust = open_loaded("adjust");
  auto writer = adjust.program("push_header");
  REQUIRE(writer.ok());
  CHECK(writer->verify_report()->writes_packet);
  const auto packet = make_packet({});
  XdpBuffer view;
  view.view(packet);
  auto refused = writer->run_xdp(view);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message == "program 'push_header' may write the packet: run it on a copy (XdpBuffer::assign), not a view");
  view.assign(packet);
  CHECK_FALSE(view.is_view());
  CHECK(writer->run_xdp(view).ok());
}
