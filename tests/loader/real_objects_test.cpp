// The XDP objects Debian ships in libxdp1 (built by the xdp-tools project, not by us) load and run.
#include <catch2/catch.hpp>
#include <filesystem>

#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

// xdpdump_bpf.o holds fentry/fexit tracing programs: out of scope for an XDP runtime.
std::vector<std::string> shipped_objects() {
  std::vector<std::string> out;
  for (const std::string& path : libxdp_objects())
    if (std::filesystem::path(path).filename() != "xdpdump_bpf.o") out.push_back(path);
  return out;
}

// One of libxdp1's objects by file name; "" where libxdp1 is absent (libxdp_objects says so).
std::string shipped(const std::string& file) {
  for (const std::string& path : libxdp_objects())
    if (std::filesystem::path(path).filename() == file) return path;
  return "";
}

std::vector<std::vector<uint8_t>> sample_packets() {
  PacketSpec v6;
  v6.ipv6 = true;
  v6.l4 = 6;
  PacketSpec vlan;
  vlan.vlan = true;
  return {make_packet({}), make_packet(v6), make_arp(), make_packet(vlan)};
}

}  // namespace

TEST_CASE("every XDP object of libxdp1 loads and runs") {
  auto paths = shipped_objects();
  if (paths.empty()) return;
  CHECK(paths.size() >= 14);  // the dispatcher, 10 xdp-filter variants, xdpdump_xdp, 2 AF_XDP defaults
  for (const std::string& n : paths) {
    INFO(n);
    auto obj = Object::open(n);
    REQUIRE(obj.ok());
    auto loaded = obj->load({});
    if (!loaded) FAIL(loaded.error().to_string());
    for (const ProgramInfo& p : obj->programs()) {
      auto prog = obj->program(p.name);
      REQUIRE(prog.ok());
      for (const auto& pkt : sample_packets()) {
        XdpBuffer buf(pkt);
        auto r = prog->run_xdp(buf);
        if (!r) FAIL(r.error().to_string());
        // Empty filter maps: deny-mode filters (VERDICT_MISS = XdpAction::Drop) drop, the others pass.
        CHECK(r->action == (n.find("_dny_") != std::string::npos ? XdpAction::Drop : XdpAction::Pass));
      }
    }
  }
}

TEST_CASE("xdp-filter: the deny-mode programs drop what no rule allows, and count it") {
  for (const char* name : {"xdpfilt_dny_all", "xdpfilt_dny_udp", "xdpfilt_alw_all", "xdpfilt_alw_udp"}) {
    INFO(name);
    const bool deny = std::string(name).find("dny") != std::string::npos;
    const std::string path = shipped(std::string(name) + ".o");
    if (path.empty()) return;
    auto obj = Object::open(path);
    REQUIRE(obj.ok());
    REQUIRE(obj->load({}).ok());
    auto prog = obj->program(name);
    REQUIRE(prog.ok());
    uint64_t bytes = 0;
    for (const auto& pkt : sample_packets()) {
      XdpBuffer buf(pkt);
      auto r = prog->run_xdp(buf);
      REQUIRE(r.ok());
      CHECK(r->action == (deny ? XdpAction::Drop : XdpAction::Pass));
      bytes += pkt.size();
    }
    // xdp_stats_map: per-CPU array of {rx_packets, rx_bytes} indexed by action.
    auto stats = obj->map("xdp_stats_map");
    REQUIRE(stats.ok());
    auto rec = stats->lookup(as_bytes(deny ? XdpAction::Drop : XdpAction::Pass));
    REQUIRE(rec.ok());
    CHECK(read_as<uint64_t>(*rec, 0) == 4);
    CHECK(read_as<uint64_t>(*rec, 8) == bytes);
  }
}

TEST_CASE("the AF_XDP default program redirects to the socket of the receive queue") {
  const std::string path = shipped("xsk_def_xdp_prog.o");
  if (path.empty()) return;
  auto obj = Object::open(path);
  REQUIRE(obj.ok());
  REQUIRE(obj->set_global("refcnt", as_bytes<uint32_t>(1)).ok());
  REQUIRE(obj->load({}).ok());
  auto xsks = obj->map("xsks_map");
  REQUIRE(xsks.ok());
  CHECK(xsks->spec().type == MapType::Xskmap);
  REQUIRE(xsks->update(as_bytes<uint32_t>(3), as_bytes<uint32_t>(77)).ok());
  auto prog = obj->program("xsk_def_prog");
  REQUIRE(prog.ok());
  XdpBuffer buf(make_packet({}));
  auto hit = prog->run_xdp(buf, {0, 1, 3});
  REQUIRE(hit.ok());
  CHECK(hit->action == XdpAction::Redirect);
  CHECK(hit->redirect.kind == RedirectTarget::Kind::Map);
  CHECK(hit->redirect.map_name == "xsks_map");
  CHECK(hit->redirect.key == 3);
  buf.assign(make_packet({}));
  auto miss = prog->run_xdp(buf, {0, 1, 4});
  REQUIRE(miss.ok());
  CHECK(miss->action == XdpAction::Pass);
}
