// ebpfvm against the Linux kernel: the same objects loaded by libbpf and run with
// BPF_PROG_TEST_RUN, packet by packet: same verdict, same packet bytes out, same global data.
// Skipped (with a warning) where this process may not load BPF programs.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "packets.hpp"
#include "support.hpp"
#include "util/json.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

bool kernel_can_run_xdp() {
  static const int ok = [] {
    libbpf_set_print(nullptr);
    const bpf_insn prog[] = {{BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_PASS}, {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "probe", "GPL", prog, 2, nullptr);
    if (fd < 0) return 0;
    close(fd);
    return 1;
  }();
  return ok == 1;
}

struct KernelObject {
  bpf_object* obj = nullptr;
  explicit KernelObject(const std::string& path) {
    obj = bpf_object__open_file(path.c_str(), nullptr);
    if (obj && bpf_object__load(obj) != 0) {
      bpf_object__close(obj);
      obj = nullptr;
    }
  }
  ~KernelObject() {
    if (obj) bpf_object__close(obj);
  }
  // Action and packet after the program.
  std::pair<uint32_t, std::vector<uint8_t>> run(const std::string& prog, const std::vector<uint8_t>& pkt) {
    bpf_program* p = bpf_object__find_program_by_name(obj, prog.c_str());
    REQUIRE(p);
    std::vector<uint8_t> out(8192);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(pkt.size()), .data_size_out = static_cast<uint32_t>(out.size()),
                .repeat = 1);
    REQUIRE(bpf_prog_test_run_opts(bpf_program__fd(p), &opts) == 0);
    out.resize(opts.data_size_out);
    return {opts.retval, out};
  }
  std::vector<uint8_t> global_data(const char* section) {
    bpf_map* m = bpf_object__find_map_by_name(obj, section);
    REQUIRE(m);
    std::vector<uint8_t> v(bpf_map__value_size(m));
    uint32_t zero = 0;
    REQUIRE(bpf_map__lookup_elem(m, &zero, sizeof zero, v.data(), v.size(), 0) == 0);
    return v;
  }
};

std::string hex(const std::vector<uint8_t>& b) {
  std::string s;
  char buf[4];
  for (uint8_t x : b) {
    std::snprintf(buf, sizeof buf, "%02x", x);
    s += buf;
  }
  return s;
}

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
  REQUIRE(k.obj);  // the kernel's verifier accepts every object used here
  auto ours = Object::open(path);
  REQUIRE(ours.ok());
  REQUIRE(ours->load().ok());
  for (const std::string& name : programs) {
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
  }
  for (const char* g : globals) {
    INFO(g);
    auto m = ours->map(g);
    REQUIRE(m.ok());
    CHECK(*m->lookup(as_bytes<uint32_t>(0)) == k.global_data(g));
  }
}

}  // namespace

TEST_CASE("kernel differential: verdicts, packets and globals match BPF_PROG_TEST_RUN") {
  if (!kernel_can_run_xdp()) {
    WARN("skipped: this process may not load XDP programs into the kernel");
    return;
  }
  compare(EBPFVM_EXAMPLE_FIREWALL, {"xdp_firewall"});
  compare(program_path("parse"), {"firewall"});
  compare(program_path("globals"), {"first", "second"}, {".data", ".bss"});
  compare(program_path("adjust"), {"push_header", "pop_header", "grow_tail", "set_meta", "load_store"}, {".bss"});
  compare(program_path("tail_calls"), {"entry", "empty_slot"});
  compare(program_path("map_ops"), {"ops"});
  // libxdp1's objects pin their maps (LIBBPF_PIN_BY_NAME) and load through libxdp's dispatcher;
  // plain libbpf cannot load them here, so they are compared with their own source's semantics in
  // real_objects_test instead.
}

TEST_CASE("kernel differential: helper results in map_ops match the kernel's exactly") {
  if (!kernel_can_run_xdp()) {
    WARN("skipped: this process may not load XDP programs into the kernel");
    return;
  }
  const std::string path = program_path("map_ops");
  KernelObject k(path);
  REQUIRE(k.obj);
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
}


TEST_CASE("kernel differential: ubpf-run gives BPF_PROG_TEST_RUN's verdict and bytes, packet by packet") {
  if (!kernel_can_run_xdp()) {
    WARN("skipped: this process may not load XDP programs into the kernel");
    return;
  }
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
      REQUIRE(k.obj);
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
    }
  }
}
