// ebpfvm against the Linux kernel: the same objects loaded by libbpf and run with
// BPF_PROG_TEST_RUN, packet by packet: same verdict, same packet bytes out, same global data.
// What the host's kernel cannot load is skipped alone, with a printed reason (kernel.hpp).
#include <catch2/catch.hpp>
#include <fstream>

#include "kernel.hpp"
#include "packets.hpp"
#include "support.hpp"
#include "util/json.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;
using kernel::KernelObject;

namespace {

std::vector<std::vector<uint8_t>> traffic() {
  PacketSpec ssh;
  ssh.l4 = 6;
  ssh.dport = 22;
  PacketSpec web;
  web.l4 = 6;
  web.dport = 80;
  web.src4 = {10, 9, 3, 4};
  PacketSpec v6;
  v6.ipv6 = true;
  v6.l4 = 17;
  PacketSpec vlan;
  vlan.vlan = true;
  PacketSpec big;
  big.payload = 1400;
  std::vector<std::vector<uint8_t>> out;
  for (int round = 0; round < 3; ++round)
    for (const auto& p : {make_packet({}), make_packet(ssh), make_packet(web), make_packet(v6), make_packet(vlan),
                          make_packet(big), make_arp(), counting_bytes(60)})
      out.push_back(p);
  return out;
}

// Runs every packet through both; compares verdicts and bytes, then the named global sections.
void compare(const std::string& path, const std::vector<std::string>& programs, const std::vector<const char*>& globals = {}) {
  INFO(path);
  KernelObject k(path);
  if (!k.loaded()) return;
  auto ours = Object::open(path);
  REQUIRE(ours.ok());
  REQUIRE(ours->load().ok());
  // A program the kernel cannot load runs on neither side, so that the globals still agree.
  for (const std::string& name : programs) {
    if (!k.has(name)) continue;
    INFO(name);
    auto prog = ours->program(name);
    REQUIRE(prog.ok());
    size_t i = 0;
    for (const auto& pkt : traffic()) {
      INFO("packet " << i++);
      auto [k_action, k_bytes] = k.run(name, pkt);
      XdpBuffer buf(pkt);
      auto r = prog->run_xdp(buf);
      REQUIRE(r.ok());
      CHECK(r->r0 == k_action);
      // The kernel hands back the metadata area too, in front of the packet.
      std::vector<uint8_t> mine(buf.metadata().begin(), buf.metadata().end());
      mine.insert(mine.end(), buf.packet().begin(), buf.packet().end());
      INFO("ebpfvm " << hex(mine) << "\nkernel " << hex(k_bytes));
      CHECK(mine == k_bytes);
    }
    kernel::count_compared(path, i);
  }
  for (const char* g : globals) {
    INFO(g);
    auto m = ours->map(g);
    REQUIRE(m.ok());
    CHECK(*m->lookup(as_bytes<uint32_t>(0)) == k.global_data(g));
  }
}

}  // namespace

TEST_CASE("kernel differential: verdicts, packets and globals match BPF_PROG_TEST_RUN", "[kernel]") {
  if (kernel::skip_all()) return;
  compare(EBPFVM_EXAMPLE_FIREWALL, {"xdp_firewall"});
  compare(program_path("parse"), {"firewall"});
  compare(program_path("globals"), {"first", "second"}, {".data", ".bss"});
  compare(program_path("adjust"), {"push_header", "pop_header", "grow_tail", "set_meta", "load_store"}, {".bss"});
  compare(program_path("tail_calls"), {"entry", "empty_slot"});
  compare(program_path("map_ops"), {"ops"});
  compare(program_path("ctx_copy"), {"ctx_via_fp_copy", "ctx_via_caller_slot"});  // issue 17, D
  compare(program_path("printk_strings"), {"print_name"});  // issue 17, H: root's kernel accepts it too
  // libxdp1's objects pin their maps (LIBBPF_PIN_BY_NAME) and load through libxdp's dispatcher;
  // plain libbpf cannot load them here, so they are compared with their own source's semantics in
  // real_objects_test instead.
}

TEST_CASE("kernel differential: helper results in map_ops match the kernel's exactly", "[kernel]") {
  if (kernel::skip_all()) return;
  const std::string path = program_path("map_ops");
  KernelObject k(path);
  if (!k.has("ops")) return;
  Object ours = open_loaded("map_ops");
  const auto pkt = make_packet({});
  CHECK(k.run("ops", pkt).first == static_cast<uint32_t>(XdpAction::Pass));
  XdpBuffer buf(pkt);
  REQUIRE(ours.program("ops")->run_xdp(buf).ok());
  // res[] in .bss: every return code the helpers gave, side by side.
  const auto theirs = k.global_data(".bss");
  auto mine = ours.map(".bss")->lookup(as_bytes<uint32_t>(0));
  REQUIRE(mine.ok());
  for (size_t i = 0; i < 24; ++i) {
    INFO("res[" << i << "]");
    CHECK(read_as<int64_t>(*mine, i * 8) == read_as<int64_t>(theirs, i * 8));
  }
  kernel::count_compared(path, 1);
}


TEST_CASE("kernel differential: ubpf-run gives BPF_PROG_TEST_RUN's verdict and bytes, packet by packet", "[kernel][jit]") {
  SKIP_WITHOUT_JIT();
  if (kernel::skip_all()) return;
  const auto pkts = traffic();
  const std::string in = test::temp_path("kdiff.pcap");
  test::write_capture(in, pkts);
  const std::vector<std::pair<std::string, std::string>> programs{
      {EBPFVM_EXAMPLE_FIREWALL, "xdp_firewall"}, {program_path("parse"), "firewall"}, {program_path("adjust"), "push_header"},
      {program_path("adjust"), "pop_header"},    {program_path("adjust"), "grow_tail"}, {program_path("map_ops"), "ops"}};
  for (const auto& [path, name] : programs) {
    for (const char* engine : {"jit", "interp"}) {
      INFO(path << " " << name << " --engine " << engine);
      KernelObject k(path);  // fresh maps for each run, as ubpf-run starts with
      if (!k.has(name)) continue;
      const std::string out = test::temp_path("kdiff-out.pcap"), records = test::temp_path("kdiff.ndjson");
      auto run = test::run_process({EBPFVM_UBPF_RUN, path, "--prog", name, "--pcap", in, "--engine", engine, "-w", out,
                                    "--write-actions", "all", "--ndjson", records},
                                   "", true);
      INFO(run.out);
      REQUIRE(run.exit_code == 0);
      const auto written = test::read_capture(out);
      REQUIRE(written.size() == pkts.size());
      std::ifstream nd(records);
      std::string line;
      for (size_t i = 0; i < pkts.size(); ++i) {
        INFO("packet " << i);
        REQUIRE(std::getline(nd, line));
        auto rec = json::parse(line);
        REQUIRE(rec.ok());
        auto [k_action, k_bytes] = k.run(name, pkts[i]);
        CHECK(rec->get("action")->string() == to_string(static_cast<XdpAction>(k_action)));
        CHECK(written[i] == k_bytes);
      }
      kernel::count_compared(path, pkts.size());
    }
  }
}

TEST_CASE("kernel probes: a helper, map type or program type the kernel refuses is told apart from one it has", "[kernel]") {
  if (kernel::skip_all()) return;
  // The probe's call passes no arguments: the kernel then objects to them, which means it knows
  // the helper for this type.
  CHECK(kernel::refuses_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_map_lookup_elem) == "");
  CHECK(kernel::refuses_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_ktime_get_ns) == "");  // takes none: the probe loads
  // A socket-buffer helper is not for XDP, on every kernel; an id past every helper is unknown.
  const std::string skb = kernel::refuses_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_skb_load_bytes);
  INFO(skb);
  CHECK(skb.starts_with("kernel refuses helper bpf_skb_load_bytes (26) for xdp (\""));
  CHECK((skb.find("cannot use helper") != std::string::npos || skb.find("unknown func") != std::string::npos));
  const std::string unknown = kernel::refuses_helper(BPF_PROG_TYPE_XDP, 100000);
  INFO(unknown);
  CHECK(unknown.starts_with("kernel refuses helper #100000 for xdp (\""));
  CHECK(unknown.find("invalid func") != std::string::npos);
  CHECK(kernel::refuses_map_type(BPF_MAP_TYPE_HASH) == "");
  CHECK(kernel::refuses_map_type(static_cast<bpf_map_type>(10000)).starts_with("kernel refuses map type type (10000)"));
  CHECK(kernel::refuses_prog_type(BPF_PROG_TYPE_XDP) == "");
  // What a program calls is read from its linked code, its subprograms included.
  Object adjust = open_loaded("adjust");
  const auto calls = kernel::helpers_called(adjust.program("set_meta")->code());
  CHECK(std::find(calls.begin(), calls.end(), uint32_t{BPF_FUNC_xdp_adjust_meta}) != calls.end());
}
