// ubpf-run end to end, through the real binary: captures in and out, every option, every error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "packets.hpp"
#include "support.hpp"
#include "util/json.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

const std::string kFirewall = EBPFVM_EXAMPLE_FIREWALL;

// A capture with known packets for exact counts against examples/firewall.c:
//   0 UDP/53 from 10.0.0.1   PASS (cfg_udp_port)
//   1 UDP/123 from 10.0.0.1  DROP
//   2 TCP/80 from 10.0.0.2   DROP (allowed_tcp empty)
//   3 ARP                    PASS
//   4 10 bytes               DROP (no Ethernet header)
std::string known_capture() {
  const std::string path = temp_path("known.pcap");
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  REQUIRE(d);
  PacketSpec ntp;
  ntp.dport = 123;
  PacketSpec web;
  web.l4 = 6;
  web.dport = 80;
  web.src4 = {10, 0, 0, 2};
  const std::vector<std::vector<uint8_t>> pkts = {make_packet({}), make_packet(ntp), make_packet(web), make_arp(),
                                                  std::vector<uint8_t>(10, 0xee)};
  for (size_t i = 0; i < pkts.size(); ++i) {
    pcap_pkthdr h{};
    h.ts.tv_sec = 1000 + static_cast<long>(i);
    h.ts.tv_usec = 5;
    h.caplen = h.len = static_cast<bpf_u_int32>(pkts[i].size());
    pcap_dump(reinterpret_cast<u_char*>(d), &h, pkts[i].data());
  }
  pcap_dump_close(d);
  pcap_close(dead);
  return path;
}

std::string sample_capture(int count) {
  const std::string path = temp_path("sample" + std::to_string(count) + ".pcap");
  if (!std::filesystem::exists(path)) REQUIRE(run_process({EBPFVM_GEN_PCAP, path, std::to_string(count)}).exit_code == 0);
  return path;
}

Proc ubpf(std::vector<std::string> args) {
  args.insert(args.begin(), EBPFVM_UBPF_RUN);
  return run_process(args, "", true);
}

json::Value json_of(const Proc& p) {
  INFO(p.out);
  REQUIRE(p.exit_code == 0);
  auto v = json::parse(p.out);
  REQUIRE(v.ok());
  return *v;
}

uint64_t count_of(const json::Value& summary, const char* action) {
  return static_cast<uint64_t>(summary.get("actions")->get(action)->number());
}

// Packets of a capture file, read back through libpcap.
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs tests/programs/helpers.c's `misc` (a bpf_printk line per packet) under ubpf-run with
// `args`, its printk output into a FIFO this test reads: once the first line is there, packets are
// running (no clock needed) and `then(pid)` runs; while the test does not read, the run waits on
// the FIFO once it has printed what a pipe holds. The FIFO is then drained so that the run ends.
// Returns the exit status (as waitpid gives it) and what ubpf-run printed.
std::pair<int, std::string> run_paced_by_printk(const std::vector<std::string>& args, const std::function<void(pid_t)>& then) {
  const std::string fifo = temp_path("printk-" + std::to_string(std::rand()) + ".fifo");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  std::vector<std::string> argv{EBPFVM_UBPF_RUN, program_path("helpers"), "--prog", "misc", "--printk", fifo};
  argv.insert(argv.end(), args.begin(), args.end());
  argv = under_emulator(std::move(argv));
  int report[2];
  REQUIRE(pipe(report) == 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(report[1], 1);
    dup2(report[1], 2);
    close(report[0]);
    std::vector<char*> av;
    for (auto& a : argv) av.push_back(a.data());
    av.push_back(nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  close(report[1]);
  FILE* printk = std::fopen(fifo.c_str(), "r");
  REQUIRE(printk);
  char line[256];
  REQUIRE(std::fgets(line, sizeof line, printk));
  CHECK(std::string(line).find("[0] ") == 0);
  then(pid);
  while (std::fgets(line, sizeof line, printk)) {
  }
  std::fclose(printk);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(report[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(report[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return {status, text};
}

}  // namespace

TEST_CASE("ubpf-run: the table, exact verdicts on a known capture", "[jit]") {
  SKIP_WITHOUT_JIT();
  auto r = ubpf({kFirewall, "--pcap", known_capture()});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("program  " + kFirewall + ": xdp_firewall (section xdp, xdp, ") != std::string::npos);
  CHECK(r.out.find(std::string("engine   ") + to_string(host_jit_target()) + " JIT, verified (") != std::string::npos);
  CHECK(r.out.find("5 packets") != std::string::npos);
  CHECK(r.out.find("XDP_DROP                  3    60.0%") != std::string::npos);
  CHECK(r.out.find("XDP_PASS                  2    40.0%") != std::string::npos);
}

TEST_CASE("ubpf-run: --json, --global and --map-load change verdicts exactly", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = known_capture();
  auto plain = json_of(ubpf({kFirewall, "--pcap", cap, "--json"}));
  CHECK(plain.get("packets")->number() == 5);
  CHECK(plain.get("engine")->string() == "jit");
  CHECK(plain.get("verified")->boolean() == true);
  CHECK(count_of(plain, "XDP_PASS") == 2);
  CHECK(count_of(plain, "XDP_DROP") == 3);
  CHECK(plain.get("ns_per_packet")->number() > 0);
  // Time apart: start-up (load, verify, compile), reading, the program, writing (issue 20).
  const json::Value* time = plain.get("time_ns");
  REQUIRE(time);
  for (const char* part : {"startup", "read", "program", "write", "wall"}) CHECK(time->get(part));
  CHECK(time->get("write")->number() == 0);  // no -w, no --ndjson
  CHECK(time->get("startup")->number() > 0);
  auto written = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "-w", temp_path("timed.pcap")}));
  CHECK(written.get("time_ns")->get("write")->number() > 0);

  // UDP allowed to 123 instead of 53: packets 0 and 1 swap verdicts.
  auto ntp = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--global", "cfg_udp_port=123"}));
  CHECK(count_of(ntp, "XDP_PASS") == 2);
  // At most one packet per source: 10.0.0.1's second packet is dropped too.
  auto limited = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--global", "cfg_max_packets=1", "--global", "cfg_udp_port=123"}));
  CHECK(count_of(limited, "XDP_PASS") == 1);  // only ARP

  // allowed_tcp = {80}: packet 2 passes.
  const std::string maps = temp_path("allow80.json");
  std::ofstream(maps) << R"({"allowed_tcp": [{"key": ["0x50", "0x00"], "value": ["0x01"]}]})";
  auto web = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--map-load", maps}));
  CHECK(count_of(web, "XDP_PASS") == 3);
}

TEST_CASE("ubpf-run: prog arrays from --map-load (program names as values) and --tail-call, dumped as names, loaded back (issue 20)", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = known_capture(), obj = program_path("tail_calls");
  // empty_slot tail-calls slot 2 and drops when that fails; target returns XDP_TX.
  CHECK(count_of(json_of(ubpf({obj, "--prog", "empty_slot", "--pcap", cap, "--json"})), "XDP_DROP") == 5);
  const std::string table = temp_path("jump_table.json");
  std::ofstream(table) << R"({"jump_table": [{"key": 2, "value": "target"}]})";  // a number as the key
  CHECK(count_of(json_of(ubpf({obj, "--prog", "empty_slot", "--pcap", cap, "--json", "--map-load", table})), "XDP_TX") == 5);
  const std::string dump = temp_path("jump_table_dump.json");
  REQUIRE(ubpf({obj, "--prog", "empty_slot", "--pcap", cap, "--tail-call", "jump_table[2]=target", "--map-dump", dump}).exit_code == 0);
  const std::string text = slurp(dump);
  // slot 1 from the object's static initialiser, slot 2 from the option
  CHECK(text.find(R"("jump_table":[{"key":["0x01","0x00","0x00","0x00"],"value":"target"},{"key":["0x02","0x00","0x00","0x00"],"value":"target"}])") !=
        std::string::npos);
  CHECK(count_of(json_of(ubpf({obj, "--prog", "empty_slot", "--pcap", cap, "--json", "--map-load", dump})), "XDP_TX") == 5);
  // null empties a slot: entry's tail call through slot 1 then fails.
  const std::string cleared = temp_path("jump_table_cleared.json");
  std::ofstream(cleared) << R"({"jump_table": [{"key": ["0x01", "0x00", "0x00", "0x00"], "value": null}]})";
  CHECK(count_of(json_of(ubpf({obj, "--prog", "entry", "--pcap", cap, "--json"})), "XDP_TX") == 5);
  CHECK(count_of(json_of(ubpf({obj, "--prog", "entry", "--pcap", cap, "--json", "--map-load", cleared})), "XDP_ABORTED") == 5);
  // A number as the key of any map of 1, 2, 4 or 8-byte keys: the firewall's allowed_tcp = {80}.
  const std::string web = temp_path("allow80_number.json");
  std::ofstream(web) << R"({"allowed_tcp": [{"key": 80, "value": ["0x01"]}]})";
  CHECK(count_of(json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--map-load", web})), "XDP_PASS") == 3);

  const auto expect = [](const Proc& p, const std::string& text) {
    INFO(p.out);
    CHECK(p.exit_code == 2);
    CHECK(p.out.find(text) != std::string::npos);
  };
  expect(ubpf({obj, "--prog", "entry", "--pcap", cap, "--tail-call", "jump_table[9]=target"}),
         "ubpf-run: --tail-call jump_table[9]=target: map 'jump_table': index 9 is beyond max_entries");
  expect(ubpf({obj, "--prog", "entry", "--pcap", cap, "--tail-call", "jump_table[2]=nope"}), "--tail-call jump_table[2]=nope: no program or section 'nope'");
  expect(ubpf({obj, "--prog", "entry", "--pcap", cap, "--tail-call", "jump_table2=target"}), "expected MAP[INDEX]=PROG");
  expect(ubpf({obj, "--prog", "entry", "--pcap", cap, "--tail-call", ".bss[0]=target"}), "map '.bss' is not a prog_array");
  const std::string bad = temp_path("bad_table.json");
  std::ofstream(bad) << R"({"jump_table": [{"key": 1, "value": "target"}, {"key": 2, "value": 5}]})";
  expect(ubpf({obj, "--prog", "entry", "--pcap", cap, "--map-load", bad}), "map 'jump_table': entry 1 value is not a program's name (a string) or null");
  std::ofstream(bad) << R"({"jump_table": [{"key": 4, "value": "target"}]})";
  expect(ubpf({obj, "--prog", "entry", "--pcap", cap, "--map-load", bad}), "map 'jump_table': entry 0: index 4 is beyond max_entries (4)");
  std::ofstream(bad) << R"({"allowed_tcp": [{"key": 65536, "value": ["0x01"]}]})";
  expect(ubpf({kFirewall, "--pcap", cap, "--map-load", bad}), "entry 0 key is not a whole number from 0 to 65535");
}

TEST_CASE("ubpf-run: --map-size sizes a map its object leaves at 0, for run, verify and maps (issue 17)", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string obj = program_path("sized_by_loader"), cap = known_capture(), dump = temp_path("sized.json");
  const Proc unsized = ubpf({obj, "--pcap", cap});
  CHECK(unsized.exit_code == 1);
  CHECK(unsized.out.find("map 'counts' declares max_entries 0 (its own loader sizes it): set it with Object::set_max_entries, or "
                         "ubpf-run --map-size counts=N") != std::string::npos);
  const Proc listed = ubpf({"maps", obj, "--map-size", "counts=4"});
  CHECK(listed.exit_code == 0);
  CHECK(listed.out.find("counts                   array                   4        8            4        0") != std::string::npos);
  CHECK(ubpf({"verify", obj, "--map-size", "counts=4"}).exit_code == 0);
  REQUIRE(ubpf({obj, "--pcap", cap, "--map-size", "counts=4", "--map-dump", dump, "--maps", "counts", "--nonzero"}).exit_code == 0);
  CHECK(slurp(dump) == R"({"counts":[{"key":["0x03","0x00","0x00","0x00"],"value":["0x05","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]})" "\n");
  const Proc zero = ubpf({obj, "--pcap", cap, "--map-size", "counts=0"});
  CHECK(zero.exit_code == 2);
  CHECK(zero.out == "ubpf-run: --map-size counts=0: map 'counts': max_entries must be above 0\n");
  CHECK(ubpf({obj, "--pcap", cap, "--map-size", "nope=3"}).out == "ubpf-run: --map-size nope=3: map 'nope': no such map\n");
  CHECK(ubpf({obj, "--pcap", cap, "--map-size", "counts"}).out == "ubpf-run: --map-size counts: expected NAME=N\n");
}

TEST_CASE("ubpf-run: verify and disasm number a subprogram's instruction alike, and verify names the function (issue 20)") {
  const std::string obj = program_path("faulty_subprogram");
  const Proc v = ubpf({"verify", obj});
  INFO(v.out);
  CHECK(v.exit_code == 1);
  // "insn N (read_far+K)": N as disasm numbers the linked program, K inside the function
  const size_t at = v.out.find(": insn ");
  REQUIRE(at != std::string::npos);
  const unsigned n = static_cast<unsigned>(std::stoul(v.out.substr(at + 7)));
  CHECK(v.out.find("insn " + std::to_string(n) + " (read_far+") != std::string::npos);
  CHECK(v.out.find("section xdp: program calls_far: ") != std::string::npos);
  CHECK(v.out.find("invalid access to packet, off=103 size=1") != std::string::npos);
  // the detail's first line is the instruction, as disasm prints it at the same number
  const std::string detail_line = std::to_string(n) + ": r0 = *(u8 *)(r";
  CHECK(v.out.find("\n" + detail_line) != std::string::npos);
  const Proc d = ubpf({"disasm", obj});
  CHECK(d.exit_code == 0);
  char disasm_line[64];
  std::snprintf(disasm_line, sizeof disasm_line, "%5u: r0 = *(u8 *)(r", n);
  CHECK(d.out.find(disasm_line) != std::string::npos);
  auto j = json::parse(ubpf({"verify", obj, "--json"}).out.substr(0, ubpf({"verify", obj, "--json"}).out.find('\n')));
  REQUIRE(j.ok());
  const json::Value& p = j->get("programs")->array()[0];
  CHECK(p.get("insn")->number() == n);
  CHECK(p.get("function")->string().rfind("read_far+", 0) == 0);
}

TEST_CASE("ubpf-run: with --json a failure is one JSON object on standard output, its parts named (issue 20)") {
  const auto failure = [](std::vector<std::string> args, int code) {
    args.insert(args.begin(), EBPFVM_UBPF_RUN);
    const Proc p = run_process(args);  // standard output only: the human line goes to standard error
    INFO(p.out);
    CHECK(p.exit_code == code);
    auto v = json::parse(p.out);
    REQUIRE(v.ok());
    CHECK(v->get("exit")->number() == code);
    REQUIRE(v->get("error"));
    return *v->get("error");
  };
  const json::Value rejected = failure({program_path("faulty"), "--prog", "overread", "--pcap", known_capture(), "--json"}, 1);
  CHECK(rejected.get("code")->string() == "verifier rejected the program");
  CHECK(rejected.get("message")->string() == "invalid access to packet, off=100 size=1, R1 offset is outside of the packet");
  CHECK(rejected.get("program")->string() == "overread");
  CHECK(rejected.get("section")->string() == "xdp");
  CHECK(rejected.get("insn")->number() == 1);
  CHECK(rejected.get("line")->number() == 9);
  CHECK(rejected.get("file")->string() == program_path("faulty"));
  const json::Value missing = failure({"/nonexistent.o", "--pcap", known_capture(), "--json"}, 1);
  CHECK(missing.get("message")->string() == "cannot open: No such file or directory");
  CHECK(missing.get("file")->string() == "/nonexistent.o");
  CHECK(failure({kFirewall, "--json"}, 2).get("message")->string() == "give a capture (--pcap FILE) or live interfaces (--iface IF[@QUEUE]), one of them");
  CHECK(failure({kFirewall, "--pcap", known_capture(), "--json", "--engine", "interp", "--tail-call", "a[1]=b"}, 2).get("message")->string() ==
        "--tail-call a[1]=b: no map 'a'");
  // Without --json, standard output stays empty.
  CHECK(run_process({EBPFVM_UBPF_RUN, "/nonexistent.o", "--pcap", known_capture()}).out.empty());
}

TEST_CASE("ubpf-run: -w writes the packets after the program, readable by libpcap and tcpdump", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = known_capture();
  const std::string out = temp_path("out.pcap");
  auto r = ubpf({kFirewall, "--pcap", cap, "-w", out});
  REQUIRE(r.exit_code == 0);
  auto in = read_capture(cap), written = read_capture(out);
  REQUIRE(written.size() == 2);  // the PASS verdicts: packets 0 and 3
  CHECK(written[0] == in[0]);
  CHECK(written[1] == in[3]);
  const std::string tcpdump = std::filesystem::exists("/usr/bin/tcpdump") ? "/usr/bin/tcpdump" : "/usr/sbin/tcpdump";
  if (!std::filesystem::exists(tcpdump)) WARN("SKIP reading the output with tcpdump: not installed (scripts/setup.sh installs it)");
  if (std::filesystem::exists(tcpdump)) {
    auto td = run_process({tcpdump, "-nn", "-r", out}, "", false);
    CHECK(td.exit_code == 0);
    CHECK(std::count(td.out.begin(), td.out.end(), '\n') == 2);
    CHECK(td.out.find("IP 10.0.0.1.1234 > 10.0.0.2.53: ") != std::string::npos);
    CHECK(td.out.find("ARP") != std::string::npos);
  }
  // pcapng: chosen verdicts, each packet with its verdict as a comment.
  const std::string ng = temp_path("drops.pcapng");
  REQUIRE(ubpf({kFirewall, "--pcap", cap, "-w", ng, "--write-actions", "drop"}).exit_code == 0);
  auto drops = read_capture(ng);
  REQUIRE(drops.size() == 3);
  CHECK(drops[2] == in[4]);
  const std::string bytes = slurp(ng);
  CHECK(bytes.find("verdict: XDP_DROP") != std::string::npos);
  CHECK(bytes.find("verdict: XDP_PASS") == std::string::npos);
  // Read back as input, the pcapng gives the same packets.
  auto again = json_of(ubpf({kFirewall, "--pcap", ng, "--json"}));
  CHECK(again.get("packets")->number() == 3);
}

TEST_CASE("ubpf-run: captures larger than the reader's blocks come out whole, byte for byte, from a file or a pipe", "[jit]") {
  SKIP_WITHOUT_JIT();
  // About 32 MB: the reader reads into 1 MiB blocks, reused once their packets are done, and moves
  // a record that does not fit the rest of a block to the next; every one of those steps is
  // crossed while packets are still being read and written. Through a pipe, reads come back short
  // (64 KiB at a time) and end in the middle of records.
  const std::string cap = sample_capture(40000);
  REQUIRE(std::filesystem::file_size(cap) > 24u << 20);
  const auto in = read_capture(cap);
  REQUIRE(in.size() == 40000);
  for (const std::string workers : {"1", "2"}) {
    INFO("workers " << workers);
    const std::string ng = temp_path("all" + workers + ".pcapng");
    REQUIRE(ubpf({kFirewall, "--pcap", cap, "-w", ng, "--write-actions", "all", "--workers", workers}).exit_code == 0);
    CHECK(read_capture(ng) == in);  // the firewall never changes a packet
    // The pcapng written, read as input.
    const std::string back = temp_path("back" + workers + ".pcap");
    REQUIRE(ubpf({kFirewall, "--pcap", ng, "-w", back, "--write-actions", "all", "--workers", workers}).exit_code == 0);
    CHECK(read_capture(back) == in);
  }
  // "-" reads standard input, here a pipe.
  const std::string piped = temp_path("piped.pcap");
  std::string ubpf_run;  // through the emulator when the tests run under one
  for (const std::string& w : under_emulator({EBPFVM_UBPF_RUN})) ubpf_run += w + " ";
  auto p = run_process({"/bin/sh", "-c", "cat " + cap + " | " + ubpf_run + kFirewall + " --pcap - -w " + piped + " --write-actions all"},
                       "", true);
  INFO(p.out);
  REQUIRE(p.exit_code == 0);
  CHECK(read_capture(piped) == in);
  // Stopping early leaves the rest unread.
  const std::string part = temp_path("part.pcap");
  REQUIRE(ubpf({kFirewall, "--pcap", cap, "-c", "30001", "-w", part, "--write-actions", "all"}).exit_code == 0);
  const auto got = read_capture(part);
  REQUIRE(got.size() == 30001);
  CHECK(std::equal(got.begin(), got.end(), in.begin()));
}

TEST_CASE("ubpf-run: a capture cut while it is read fails the run, naming the first packet lost", "[jit]") {
  SKIP_WITHOUT_JIT();
  // Once packets run (and while the run waits on its printk FIFO), the capture is cut past what
  // the reader can have read so far: two chunks of 4096 packets and one 1 MiB block.
  const std::string cap = temp_path("shrinking.pcap"), out = temp_path("shrinking-out.pcap");
  std::filesystem::copy_file(sample_capture(20000), cap, std::filesystem::copy_options::overwrite_existing);
  const auto packets = read_capture(cap);
  const uint64_t size = std::filesystem::file_size(cap);
  uint64_t read_at_most = 24;
  for (size_t i = 0; i < 8192; ++i) read_at_most += 16 + packets[i].size();
  const uint64_t cut = read_at_most + (1u << 20) + 100;
  REQUIRE(cut + 2000 < size);
  // the first packet whose record does not fit below the cut
  uint64_t lost = 0, lost_at = 24;
  while (lost_at + 16 + packets[lost].size() <= cut) lost_at += 16 + packets[lost++].size();
  auto [status, text] = run_paced_by_printk({"--pcap", cap, "-w", out},
                                            [&](pid_t) { REQUIRE(truncate(cap.c_str(), static_cast<off_t>(cut)) == 0); });
  INFO(text);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(text == "ubpf-run: " + cap + ": the capture shrank while it was read: packet " + std::to_string(lost + 1) + " at byte " +
                    std::to_string(lost_at) + " is past its end (" + std::to_string(cut) + " bytes now, " + std::to_string(size) +
                    " when it was opened)\n");
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("ubpf-run: --map-dump --maps NAME,NAME writes those maps only, --nonzero leaves out untouched slots (issue 20)", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = known_capture(), dump = temp_path("some_maps.json");
  const auto dumped = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{kFirewall, "--pcap", cap, "--map-dump", dump};
    args.insert(args.end(), extra.begin(), extra.end());
    REQUIRE(ubpf(args).exit_code == 0);
    auto v = json::parse(slurp(dump));
    REQUIRE(v.ok());
    return *v;
  };
  const json::Value all = dumped({"--maps", "verdicts"});
  CHECK(all.object().size() == 1);
  CHECK(all.get("verdicts")->array().size() == 5);  // XDP_ABORTED .. XDP_REDIRECT
  const json::Value touched = dumped({"--maps", "verdicts,sources", "--nonzero"});
  CHECK(touched.object().size() == 2);
  const auto& verdicts = touched.get("verdicts")->array();
  REQUIRE(verdicts.size() == 2);  // 3 drops, 2 passes
  CHECK(verdicts[0].get("key")->array()[0].string() == "0x01");
  CHECK(verdicts[1].get("key")->array()[0].string() == "0x02");
  CHECK(touched.get("sources"));
  const Proc bad = ubpf({kFirewall, "--pcap", cap, "--map-dump", dump, "--maps", "verdicts,nope"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out == "ubpf-run: --maps: the object has no map 'nope'\n");
  const Proc alone = ubpf({kFirewall, "--pcap", cap, "--nonzero"});
  CHECK(alone.exit_code == 2);
  CHECK(alone.out == "ubpf-run: --maps and --nonzero choose what --map-dump writes: give --map-dump FILE\n");
}

TEST_CASE("ubpf-run: --ndjson-bytes gives each output packet in hex, and a value no action has is given as ret (issue 20)", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = known_capture(), nd = temp_path("bytes.ndjson");
  const auto packets = read_capture(cap);
  REQUIRE(ubpf({program_path("run_options"), "--prog", "unknown_action", "--pcap", cap, "--ndjson", nd, "--ndjson-bytes"}).exit_code == 0);
  std::istringstream lines(slurp(nd));
  size_t i = 0;
  for (std::string l; std::getline(lines, l); ++i) {
    INFO(l);
    auto rec = json::parse(l);
    REQUIRE(rec.ok());
    REQUIRE(i < packets.size());
    CHECK(rec->get("action")->string() == "XDP_ABORTED");
    CHECK(rec->get("ret")->number() == 7);
    std::string hex;
    for (uint8_t b : packets[i]) {
      char x[3];
      std::snprintf(x, sizeof x, "%02x", b);
      hex += x;
    }
    CHECK(rec->get("bytes")->string() == hex);
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08lx", crc32(0, packets[i].data(), static_cast<uInt>(packets[i].size())));
    CHECK(rec->get("crc32")->string() == crc);
  }
  CHECK(i == packets.size());
}

TEST_CASE("ubpf-run: --ndjson, --map-dump, -c, --repeat", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = known_capture();
  const std::string nd = temp_path("p.ndjson"), dump = temp_path("maps.json");
  auto s = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--ndjson", nd, "--map-dump", dump, "-c", "4", "--repeat", "3"}));
  CHECK(s.get("packets")->number() == 4);
  std::istringstream lines(slurp(nd));
  std::vector<std::string> recs;
  for (std::string l; std::getline(lines, l);) recs.push_back(l);
  REQUIRE(recs.size() == 4);
  // The output packet's CRC-32, as zlib computes it (the packet is dropped unchanged).
  const auto packets = read_capture(cap);
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08lx", crc32(0, packets[1].data(), static_cast<uInt>(packets[1].size())));
  CHECK(recs[1] == "{\"index\":1,\"action\":\"XDP_DROP\",\"len_in\":60,\"len_out\":60,\"worker\":0,\"crc32\":\"" + std::string(crc) + "\"}");
  auto maps = json::parse(slurp(dump));
  REQUIRE(maps.ok());
  REQUIRE(maps->get("verdicts"));
  REQUIRE(maps->get("sources"));
  // 10.0.0.1 sent packets 0 and 1; --repeat runs each 3 times, so its counter says 6.
  bool found = false;
  for (const json::Value& e : maps->get("sources")->array()) {
    const auto& key = e.get("key")->array();
    if (key[3].string() == "0x01") {
      found = true;
      CHECK(e.get("value")->array()[0].string() == "0x06");
    }
  }
  CHECK(found);
}

TEST_CASE("ubpf-run: the JIT gives the interpreter's verdicts, packets and maps", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = sample_capture(6000);
  const std::string di = temp_path("interp.json"), dj = temp_path("jit.json"), oi = temp_path("i.pcap"), oj = temp_path("j.pcap");
  auto interp = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--map-dump", di, "-w", oi, "--write-actions", "all",
                              "--engine", "interp"}));
  auto jit = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--map-dump", dj, "-w", oj, "--write-actions", "all"}));
  CHECK(jit.get("engine")->string() == "jit");
  CHECK(interp.get("engine")->string() == "interp");
  for (const char* a : {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}) CHECK(count_of(interp, a) == count_of(jit, a));
  CHECK(slurp(di) == slurp(dj));
  CHECK(slurp(oi) == slurp(oj));
  auto table = ubpf({kFirewall, "--pcap", cap, "--engine", "interp", "-c", "10"});
  CHECK(table.out.find("engine   interpreter, verified (") != std::string::npos);
  auto checked = ubpf({kFirewall, "--pcap", cap, "--engine", "interp", "--no-verify", "-c", "10"});
  CHECK(checked.out.find("engine   interpreter, not verified (--no-verify): every access checked at run time") != std::string::npos);
}

TEST_CASE("ubpf-run: one worker or two give the same verdicts and map totals", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = sample_capture(6000);
  const std::string d1 = temp_path("w1.json"), d2 = temp_path("w2.json");
  auto one = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--workers", "1", "--map-dump", d1}));
  auto two = json_of(ubpf({kFirewall, "--pcap", cap, "--json", "--workers", "2", "--map-dump", d2}));
  CHECK(one.get("packets")->number() == 6000);
  for (const char* a : {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}) CHECK(count_of(one, a) == count_of(two, a));
  // The LRU map of sources holds the same entries; per-CPU verdict counters add up to the same.
  auto m1 = json::parse(slurp(d1)), m2 = json::parse(slurp(d2));
  REQUIRE((m1.ok() && m2.ok()));
  CHECK(m1->get("sources")->array().size() == m2->get("sources")->array().size());
  auto total = [](const json::Value& maps) {
    uint64_t sum = 0;
    for (const json::Value& e : maps.get("verdicts")->array())
      for (const json::Value& cpu : e.get("values")->array())
        for (int b = 0; b < 8; ++b)  // the u64 packets field, little-endian
          sum += std::stoull(cpu.get("value")->array()[static_cast<size_t>(b)].string(), nullptr, 16) << (8 * b);
    return sum;
  };
  CHECK(total(*m1) == 6000);
  CHECK(total(*m2) == 6000);
  CHECK(m2->get("verdicts")->array()[0].get("values")->array().size() == 2);
}

TEST_CASE("ubpf-run: bpf_printk output to a file", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string log = temp_path("printk.txt");
  auto r = ubpf({program_path("helpers"), "--prog", "misc", "--pcap", known_capture(), "-c", "2", "--printk", log});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(slurp(log) == "[0] hello 42 xdp\n[0] 1-2-3-4\n[0] hello 42 xdp\n[0] 1-2-3-4\n");
}

TEST_CASE("ubpf-run: maps and disasm subcommands") {
  auto maps = ubpf({"maps", kFirewall});
  REQUIRE(maps.exit_code == 0);
  CHECK(maps.out.find("sources                  lru_hash                4       16         4096") != std::string::npos);
  CHECK(maps.out.find(".rodata                  array                   4       10            1") != std::string::npos);
  auto dis = ubpf({"disasm", kFirewall});
  REQUIRE(dis.exit_code == 0);
  CHECK(dis.out.find("xdp_firewall (section xdp, xdp, ") != std::string::npos);
  CHECK(dis.out.find("; map verdicts") != std::string::npos);
  CHECK(dis.out.find("; firewall.c:") != std::string::npos);
  // A helper only an embedder registers does not stop the disassembly (running it would).
  auto app = ubpf({"disasm", program_path("embedder")});
  INFO(app.out);
  REQUIRE(app.exit_code == 0);
  CHECK(app.out.find("call 1000") != std::string::npos);
  CHECK(app.out.find("; embedder.c:10: \tif (app_lookup_tenant(ctx->ingress_ifindex, &t) < 0)") != std::string::npos);
  CHECK(app.out.find("; embedder.c:0") == std::string::npos);  // compiler-made code has no line to show
}

TEST_CASE("ubpf-run: every error gives one line and its exit status", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string cap = known_capture();
  auto expect = [](const Proc& p, int code, const std::string& text, long lines = 1) {
    INFO(p.out);
    CHECK(p.exit_code == code);
    CHECK(p.out.find(text) != std::string::npos);
    CHECK(std::count(p.out.begin(), p.out.end(), '\n') == lines);
  };
  expect(ubpf({"/nonexistent.o", "--pcap", cap}), 1, "/nonexistent.o: cannot open: No such file or directory");
  expect(ubpf({cap, "--pcap", cap}), 1, "not an ELF file");
  expect(ubpf({kFirewall, "--pcap", "/nonexistent.pcap"}), 2, "/nonexistent.pcap: cannot open");
  expect(ubpf({kFirewall, "--pcap", kFirewall}), 2, "not a pcap or pcapng file");
  const std::string dir = std::filesystem::path(cap).parent_path().string();
  expect(ubpf({kFirewall, "--pcap", dir}), 2, "ubpf-run: " + dir + ": is a directory");
  expect(ubpf({kFirewall, "--pcap", "/dev/zero"}), 2, "/dev/zero: not a pcap or pcapng file (unknown magic number)");
  expect(ubpf({kFirewall, "--pcap", cap, "--prog", "nope"}), 1, "no program or section 'nope'");
  expect(ubpf({kFirewall, "--pcap", cap, "--no-verify"}), 2, "only the checked interpreter may run it: add --engine interp");
  expect(ubpf({kFirewall, "--pcap", cap, "--engine", "fast"}), 2, "--engine fast: expected jit or interp");
  expect(ubpf({kFirewall, "--pcap", cap, "--frobnicate"}), 2, "frobnicate");
  expect(ubpf({kFirewall, "--pcap", cap, "--global", "nope=1"}), 2, "no global variable 'nope'");
  expect(ubpf({kFirewall, "--pcap", cap, "--global", "cfg_udp_port=70000"}), 2, "does not fit in 2 bytes");
  const std::string bad_map = temp_path("bad.json");
  std::ofstream(bad_map) << R"({"allowed_tcp": [{"key": ["0x50"], "value": ["0x01"]}]})";
  expect(ubpf({kFirewall, "--pcap", cap, "--map-load", bad_map}), 2, "entry 0 key is 1 bytes, the map's is 2");
  std::ofstream(bad_map) << R"({"nope": []})";
  expect(ubpf({kFirewall, "--pcap", cap, "--map-load", bad_map}), 2, "no map 'nope'");

  // A capture cut in the middle of a packet: an error naming the packet, and no output file.
  const std::string cut = temp_path("cut.pcap"), out = temp_path("never.pcap");
  const std::string whole = slurp(cap);
  std::ofstream(cut, std::ios::binary) << whole.substr(0, whole.size() - 5);
  expect(ubpf({kFirewall, "--pcap", cut, "-w", out}), 2, "packet 5 at byte");
  CHECK_FALSE(std::filesystem::exists(out));
  // A link type other than Ethernet.
  std::string raw_ip = whole;
  raw_ip[20] = 101;
  const std::string rawp = temp_path("raw.pcap");
  std::ofstream(rawp, std::ios::binary) << raw_ip;
  expect(ubpf({kFirewall, "--pcap", rawp}), 2, "raw IP captures are not supported");

  // A program that reads past the packet: the verifier refuses it, naming instruction and line.
  auto refused = ubpf({program_path("faulty"), "--pcap", cap, "-w", out});
  expect(refused, 1, "insn 1: invalid access to packet, off=100 size=1, R1 offset is outside of the packet", 2);
  CHECK(refused.out.find("faulty.c:9") != std::string::npos);
  // Unverified, it runs checked: a runtime fault, exit 3, naming packet and instruction.
  auto fault = ubpf({program_path("faulty"), "--pcap", cap, "-w", out, "--engine", "interp", "--no-verify"});
  expect(fault, 3, "packet 1: ", 2);  // the error, then the C source line
  CHECK(fault.out.find("out-of-bounds read of 1 bytes") != std::string::npos);
  CHECK(fault.out.find("faulty.c:") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("ubpf-run verify: each program's verdict, the rejection with its line, JSON for scripts") {
  auto ok = ubpf({"verify", kFirewall});
  CHECK(ok.exit_code == 0);
  // The count is the installed clang's (190 with Debian 12's clang 14): taken from the object.
  auto firewall = Object::open(kFirewall);
  REQUIRE(firewall.ok());
  REQUIRE(firewall->load().ok());
  const size_t insns = firewall->program("xdp_firewall")->code().slot_count();
  CHECK(ok.out.find("xdp_firewall: verified (" + std::to_string(insns) + " instructions; ") != std::string::npos);

  // tail_calls.o: every program verifies, the prog array's initialiser included
  auto tails = ubpf({"verify", program_path("tail_calls")});
  CHECK(tails.exit_code == 0);
  CHECK(std::count(tails.out.begin(), tails.out.end(), '\n') == 4);  // entry, target, empty_slot, chain

  auto bad = ubpf({"verify", program_path("faulty")});
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.find("overread: REJECTED") != std::string::npos);
  CHECK(bad.out.find("insn 1: invalid access to packet, off=100 size=1, R1 offset is outside of the packet") != std::string::npos);
  CHECK(bad.out.find("faulty.c:9") != std::string::npos);
  CHECK(bad.out.find("1: r1 = *(u8 *)(r1 + 100)") != std::string::npos);
  CHECK(bad.out.find("R1=pkt(id=0,off=0,r=0)") != std::string::npos);

  const std::string joined = ubpf({"verify", program_path("faulty"), "--json"}).out;
  auto doc = json::parse(joined);
  REQUIRE(doc.ok());
  const auto& progs = doc->get("programs")->array();
  REQUIRE(progs.size() == 1);
  CHECK(progs[0].get("verified")->boolean() == false);
  CHECK(progs[0].get("insn")->number() == 1);
  CHECK(progs[0].get("line")->number() == 9);
  CHECK(progs[0].get("error")->string() == "invalid access to packet, off=100 size=1, R1 offset is outside of the packet");

  auto verbose = ubpf({"verify", kFirewall, "-v"});
  CHECK(verbose.out.find("0: r") != std::string::npos);
  CHECK(verbose.out.find("      ; R") != std::string::npos);
  auto missing = ubpf({"verify", kFirewall, "--prog", "nope"});
  CHECK(missing.exit_code == 2);
}

TEST_CASE("ubpf-run: a progress bar on a terminal once a run takes more than a second", "[jit]") {
  SKIP_WITHOUT_JIT();
  // stderr on a pseudo-terminal; the run repeats every packet so that it lasts more than a
  // second, in chunks short enough for the bar to move soon even under ASan. Once the bar shows,
  // SIGINT ends the run (under ASan the whole run took minutes).
  const std::string cap = sample_capture(200000);
  const int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0) {
    WARN("SKIP the progress bar: no pseudo-terminals here (posix_openpt: " << std::strerror(errno) << ")");
    return;
  }
  REQUIRE(grantpt(master) == 0);
  REQUIRE(unlockpt(master) == 0);
  const std::string slave_name = ptsname(master);
  const pid_t pid = fork();
  if (pid == 0) {
    const int slave = open(slave_name.c_str(), O_RDWR | O_NOCTTY);
    const int null = open("/dev/null", O_WRONLY);
    dup2(slave, 2);
    dup2(null, 1);
    std::vector<std::string> argv = under_emulator({EBPFVM_UBPF_RUN, kFirewall, "--pcap", cap, "--repeat", "600", "--json"});
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  // Read until the bar shows, interrupt, then read the rest: read() fails (EIO) once the run
  // has closed the terminal.
  std::string tty;
  char buf[4096];
  bool interrupted = false;
  for (ssize_t n; (n = read(master, buf, sizeof buf)) > 0;) {
    tty.append(buf, static_cast<size_t>(n));
    if (!interrupted && tty.find("\r[====") != std::string::npos) interrupted = kill(pid, SIGINT) == 0;
  }
  close(master);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK((WEXITSTATUS(status) == 130 || WEXITSTATUS(status) == 0));  // 0: it ended before the signal came
  INFO(tty);
  CHECK(tty.find("\r[====") != std::string::npos);  // the bar, redrawn in place
  CHECK(tty.find("%") != std::string::npos);
  CHECK(tty.rfind("\r") == tty.size() - 1);          // and wiped at the end, leaving the line clean
}

TEST_CASE("ubpf-run: --section, --type, --ifindex, --rxq, --seed and --budget", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string obj = EBPFVM_TEST_PROGRAMS "/run_options.o";
  const std::string cap = sample_capture(200);
  // Several programs: --prog or a --section holding one of them.
  auto several = ubpf({obj, "--pcap", cap});
  CHECK(several.exit_code == 2);
  CHECK(several.out.find("several programs; choose one with --prog") != std::string::npos);
  // A section whose name tells no type needs --type; then its program runs as XDP.
  auto untyped = ubpf({obj, "--pcap", cap, "--section", "custom/drop"});
  CHECK(untyped.exit_code == 1);
  CHECK(untyped.out.find("section 'custom/drop' does not tell the program type") != std::string::npos);
  auto typed = json_of(ubpf({obj, "--pcap", cap, "--section", "custom/drop", "--type", "xdp", "--json"}));
  CHECK(typed.get("program")->string() == "custom_drop");
  CHECK(count_of(typed, "XDP_DROP") == 200);
  auto bad_type = ubpf({obj, "--pcap", cap, "--section", "custom/drop", "--type", "lwt"});
  CHECK(bad_type.exit_code == 2);
  CHECK(bad_type.out.find("--type lwt: expected xdp, tc or socket") != std::string::npos);
  // --ifindex and --rxq reach xdp_md: the program drops only interface 7, queue 3, and records both.
  const std::string dump = temp_path("ctx.json");
  auto ctx = json_of(ubpf({obj, "--pcap", cap, "--prog", "by_ctx", "--ifindex", "7", "--rxq", "3", "--json", "--map-dump", dump}));
  CHECK(count_of(ctx, "XDP_DROP") == 200);
  const std::string seen = slurp(dump);
  CHECK(seen.find(R"({"key":["0x00","0x00","0x00","0x00"],"value":["0x03","0x00","0x00","0x00","0x07","0x00","0x00","0x00"]})") !=
        std::string::npos);
  CHECK(count_of(json_of(ubpf({obj, "--pcap", cap, "--prog", "by_ctx", "--ifindex", "7", "--json"})), "XDP_PASS") == 200);
  CHECK(count_of(json_of(ubpf({obj, "--pcap", cap, "--prog", "by_ctx", "--rxq", "3", "--json"})), "XDP_PASS") == 200);
  // --seed makes bpf_get_prandom_u32 repeat: the same verdicts and the same sum for the same seed.
  auto random = [&](const char* seed) {
    const std::string d = temp_path(std::string("rand") + seed + ".json");
    auto s = json_of(ubpf({obj, "--pcap", cap, "--prog", "by_random", "--seed", seed, "--json", "--map-dump", d}));
    return std::pair{count_of(s, "XDP_PASS"), slurp(d)};
  };
  const auto a = random("42"), b = random("42"), c = random("43");
  CHECK(a == b);
  CHECK(a.first > 50);
  CHECK(a.first < 150);
  CHECK(a.second != c.second);
  // --budget bounds what one run of an unverified program may execute: exit status 3.
  auto budget = ubpf({kFirewall, "--pcap", cap, "--no-verify", "--engine", "interp", "--budget", "5"});
  CHECK(budget.exit_code == 3);
  CHECK(budget.out.find("packet 1: ") != std::string::npos);
  CHECK(budget.out.find("instruction budget of 5 exceeded") != std::string::npos);
  CHECK(ubpf({kFirewall, "--pcap", cap, "--no-verify", "--engine", "interp", "--budget", "100000", "--json"}).exit_code == 0);
}

TEST_CASE("ubpf-run: --max-map-memory bounds what the maps may take when full", "[jit]") {
  SKIP_WITHOUT_JIT();
  // The firewall's maps take 520,689 bytes when full (its LRU of 4,096 sources the most).
  auto refused = ubpf({"verify", kFirewall, "--max-map-memory", "500k"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.out.find("the maps may take 520689 bytes when full, more than LoadOptions::max_map_memory (512000 bytes); the largest "
                         "is 'sources' (lru_hash, 4096 entries: 491728 bytes) (raise it with --max-map-memory SIZE)") != std::string::npos);
  const std::string cap = sample_capture(50);
  CHECK(ubpf({kFirewall, "--pcap", cap, "--max-map-memory", "600k"}).exit_code == 0);
  CHECK(ubpf({kFirewall, "--pcap", cap, "--max-map-memory", "500k"}).exit_code == 1);
  CHECK(ubpf({kFirewall, "--pcap", cap, "--max-map-memory", "lots"}).exit_code == 2);
}

namespace {

void put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }

// A pcapng file, block by block: a section, an Ethernet interface with `idb_options`, then the
// packets as Simple Packet Blocks (no interface number, no timestamp).
std::string pcapng_spb(const std::vector<std::vector<uint8_t>>& packets, const std::string& idb_options = "") {
  std::string f;
  put32(f, 0x0a0d0d0a), put32(f, 28), put32(f, 0x1a2b3c4d), put32(f, 0x00000001), put32(f, 0xffffffff), put32(f, 0xffffffff), put32(f, 28);
  const auto idb_len = static_cast<uint32_t>(20 + idb_options.size());
  put32(f, 1), put32(f, idb_len), put32(f, 1), put32(f, 0);  // link type 1, reserved, snaplen 0
  f += idb_options;
  put32(f, idb_len);
  for (const auto& p : packets) {
    const auto padded = static_cast<uint32_t>((p.size() + 3) & ~size_t{3});
    put32(f, 3), put32(f, 16 + padded), put32(f, static_cast<uint32_t>(p.size()));
    f.append(p.begin(), p.end());
    f.append(padded - p.size(), '\0');
    put32(f, 16 + padded);
  }
  return f;
}

}  // namespace

TEST_CASE("ubpf-run: pcapng Simple Packet Blocks, and the interface's time resolution, read as libpcap reads them", "[jit]") {
  SKIP_WITHOUT_JIT();
  PacketSpec ntp;
  ntp.dport = 123;
  const std::vector<std::vector<uint8_t>> pkts = {make_packet({}), make_packet(ntp), make_arp(), make_packet({})};
  const std::string spb = temp_path("spb.pcapng");
  std::ofstream(spb, std::ios::binary) << pcapng_spb(pkts);
  REQUIRE(read_capture(spb) == pkts);  // libpcap reads the file as written
  const std::string out = temp_path("spb-out.pcap");
  auto r = ubpf({kFirewall, "--pcap", spb, "-w", out, "--write-actions", "all"});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(read_capture(out) == pkts);  // every byte from offset 12 of each block, none from 16
  // if_tsresol: 2^64 units per second cannot be counted in 64 bits; said so, not shifted past 63
  std::string opt;
  put32(opt, 0x00010009), put32(opt, 0xc0), put32(opt, 0);  // if_tsresol = 2^64, opt_endofopt
  const std::string fine = temp_path("tsresol.pcapng");
  std::ofstream(fine, std::ios::binary) << pcapng_spb(pkts, opt);
  auto bad = ubpf({kFirewall, "--pcap", fine});
  CHECK(bad.exit_code == 2);  // a bad input, as a bad capture always is
  CHECK(bad.out.find("interface block at byte 28: if_tsresol 2^64 units per second is finer than 64-bit timestamps can count") !=
        std::string::npos);
}

TEST_CASE("ubpf-run: -w writes original lengths that do not wrap, and records no longer than the snap length", "[jit]") {
  SKIP_WITHOUT_JIT();
  // A record whose original length (1) is below its captured length (60), malformed; the program
  // pops 14 bytes. The output's original length was 1 + 46 - 60, wrapped to 4 GiB.
  std::string f;
  put32(f, 0xa1b2c3d4), put32(f, 0x00040002), put32(f, 0), put32(f, 0), put32(f, 65535), put32(f, 1);
  const auto pkt = make_packet({});
  put32(f, 1), put32(f, 0), put32(f, static_cast<uint32_t>(pkt.size())), put32(f, 1);
  f.append(pkt.begin(), pkt.end());
  const std::string in = temp_path("short-orig.pcap"), out = temp_path("short-orig-out.pcap");
  std::ofstream(in, std::ios::binary) << f;
  auto r = ubpf({program_path("adjust"), "--prog", "pop_header", "--pcap", in, "-w", out});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  const std::string written = slurp(out);
  REQUIRE(written.size() == 24 + 16 + pkt.size() - 14);
  uint32_t incl = 0, orig = 0;
  std::memcpy(&incl, written.data() + 24 + 8, 4);
  std::memcpy(&orig, written.data() + 24 + 12, 4);
  CHECK(incl == pkt.size() - 14);
  CHECK(orig == pkt.size() - 14);
}

TEST_CASE("ubpf-run: outputs never destroy an input, write through links, open before the run and leave no debris", "[jit]") {
  SKIP_WITHOUT_JIT();
  const std::string dir = temp_path("outputs");
  std::filesystem::create_directories(dir);
  const std::string cap = dir + "/in.pcap", obj = dir + "/fw.o";
  std::filesystem::copy_file(known_capture(), cap);
  std::filesystem::copy_file(kFirewall, obj);
  const std::string cap_bytes = slurp(cap), obj_bytes = slurp(obj);
  // The same file under another name (a hard link, a path through "."): refused, left as it was.
  std::filesystem::create_hard_link(cap, dir + "/same.pcap");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {obj, "--pcap", cap, "-w", dir + "/same.pcap"},
           {obj, "--pcap", cap, "--map-dump", dir + "/./fw.o"},
           {obj, "--pcap", cap, "--printk", cap},
           {obj, "--pcap", cap, "--ndjson", dir + "/../outputs/fw.o"}}) {
    auto r = ubpf(args);
    INFO(r.out);
    CHECK(r.exit_code == 2);
    CHECK(r.out.find("writing it would destroy it") != std::string::npos);
  }
  CHECK(slurp(cap) == cap_bytes);
  CHECK(slurp(obj) == obj_bytes);
  // A symlink is written through, not replaced by a file; "-" is standard output.
  const std::string target = dir + "/target.pcap", link = dir + "/link.pcap";
  std::filesystem::create_symlink(target, link);
  REQUIRE(ubpf({obj, "--pcap", cap, "-w", link}).exit_code == 0);
  CHECK(std::filesystem::is_symlink(link));
  CHECK(read_capture(target).size() == 2);
  auto piped = run_process({EBPFVM_UBPF_RUN, obj, "--pcap", cap, "-w", "-", "--json"}, "", false);
  CHECK(piped.exit_code == 0);
  CHECK(piped.out.rfind("\xd4\xc3\xb2\xa1", 0) == 0);  // the capture first (little-endian pcap magic)
  // A bad output path fails before the first packet, naming the path given; no file is left.
  auto bad = ubpf({obj, "--pcap", cap, "--ndjson", dir + "/n.ndjson", "--map-dump", dir + "/missing/maps.json"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out == "ubpf-run: " + dir + "/missing/maps.json: cannot create: No such file or directory\n");
  size_t others = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    INFO(n);
    CHECK(n.find(".tmp.") == std::string::npos);
    others += n != "in.pcap" && n != "fw.o" && n != "same.pcap" && n != "target.pcap" && n != "link.pcap";
  }
  CHECK(others == 0);  // no n.ndjson either
  // A full disk (/dev/full) fails the run, naming the output, instead of leaving it truncated.
  auto full = ubpf({program_path("helpers"), "--prog", "misc", "--pcap", cap, "--printk", "/dev/full"});
  CHECK(full.exit_code == 2);
  CHECK(full.out.find("ubpf-run: /dev/full: cannot write: No space left on device") != std::string::npos);
}

TEST_CASE("ubpf-run: SIGINT stops at a packet boundary, writes what it has, marks the summary and exits 130", "[jit]") {
  SKIP_WITHOUT_JIT();
  // Once packets run, SIGINT.
  const std::string out = temp_path("interrupted.pcap");
  pid_t pid = 0;
  auto [status, text] = run_paced_by_printk({"--pcap", sample_capture(20000), "--repeat", "100000", "-w", out, "--json"}, [&](pid_t p) {
    pid = p;
    REQUIRE(kill(p, SIGINT) == 0);
  });
  INFO(text);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  auto doc = json::parse(text);
  REQUIRE(doc.ok());
  CHECK(doc->get("interrupted")->boolean());
  // the output holds whole packets, one per packet counted as passed (misc passes every one)
  const auto written = read_capture(out);
  CHECK(written.size() == static_cast<size_t>(doc->get("actions")->get("XDP_PASS")->number()));
  CHECK_FALSE(std::filesystem::exists(out + ".tmp." + std::to_string(pid)));
}

TEST_CASE("ubpf-run: --links, --routes and --neighbours give bpf_fib_lookup the network ip -j describes (issue 20)") {
  // tests/data/fib: `ip -j addr show`, `ip -j -4 / -6 route show table all` and `ip -j neigh show`
  // of the network tests/helpers/fib_test.cpp builds (v0 is ifindex 3, v2 is 5).
  const std::string data = std::string(EBPFVM_TEST_SOURCE_DIR) + "/data/fib/", cap = temp_path("fib.pcap"), out = temp_path("fib_out.pcap");
  auto v4 = [](std::array<uint8_t, 4> dst) {
    PacketSpec s;
    s.dst4 = dst;
    return make_packet(s);
  };
  auto v6 = [](const char* dst) {
    PacketSpec s;
    s.ipv6 = true;
    auto p = make_packet(s);
    REQUIRE(inet_pton(AF_INET6, dst, p.data() + 14 + 24) == 1);
    return p;
  };
  const std::vector<std::vector<uint8_t>> in = {v4({192, 0, 2, 5}),   v4({203, 0, 113, 9}), v4({198, 18, 1, 1}),
                                                v4({198, 51, 100, 7}), v6("2001:db8:99::5"),   v6("2001:db8:bad::1")};
  write_capture(cap, in);
  auto p = ubpf({program_path("fib"), "--prog", "fib_forward", "--engine", "interp", "--pcap", cap, "--links", data + "addr.json", "--routes",
                 data + "route4.json", "--routes", data + "route6.json", "--neighbours", data + "neigh.json", "-w", out, "--write-actions", "all",
                 "--json"});
  const json::Value summary = json_of(p);
  CHECK(count_of(summary, "XDP_REDIRECT") == 3);
  CHECK(count_of(summary, "XDP_DROP") == 2);     // blackholes, one of each family
  CHECK(count_of(summary, "XDP_PASS") == 1);     // a gateway with no neighbour entry
  CHECK(summary.get("redirects")->get("ifindex 3")->number() == 2);
  CHECK(summary.get("redirects")->get("ifindex 5")->number() == 1);
  const auto got = read_capture(out);
  REQUIRE(got.size() == in.size());
  auto macs = [](const std::vector<uint8_t>& pkt) { return std::vector<uint8_t>(pkt.begin(), pkt.begin() + 12); };
  CHECK(macs(got[0]) == std::vector<uint8_t>{2, 0, 0, 0, 1, 2, 2, 0, 0, 0, 0, 0x10});     // to 10.1.0.2, from v0
  CHECK(macs(got[1]) == std::vector<uint8_t>{2, 0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0x20});     // metric 50 via v2
  CHECK(macs(got[4]) == std::vector<uint8_t>{2, 0, 0, 0, 1, 0x62, 2, 0, 0, 0, 0, 0x10});  // to 2001:db8:1::2
  CHECK(got[2] == in[2]);
  CHECK(got[3] == in[3]);

  // Without the network every lookup fails as the kernel's does for an unknown link: -ENODEV.
  p = ubpf({program_path("fib"), "--prog", "fib_forward", "--engine", "interp", "--pcap", cap, "--json"});
  CHECK(count_of(json_of(p), "XDP_PASS") == in.size());
  // Routes naming a link the host does not have (no --links: this host's links are used).
  if (if_nametoindex("v2") != 0) {
    std::printf("SKIP --routes without --links: this host has a link named v2, which the test's routes name\n");
  } else {
    p = ubpf({program_path("fib"), "--prog", "fib_forward", "--pcap", cap, "--routes", data + "route4.json"});
    CHECK(p.exit_code == 2);
    CHECK(p.out.find("ubpf-run: --routes " + data + "route4.json: routes: route 0 (default): dev 'v2' is not among the links") == 0);
  }
  // A file that is not iproute2's JSON.
  p = ubpf({program_path("fib"), "--prog", "fib_forward", "--pcap", cap, "--links", cap});
  CHECK(p.exit_code == 2);
  CHECK(p.out.find("ubpf-run: --links " + cap + ": JSON: ") == 0);
}

TEST_CASE("ubpf-run: maps only tracing programs use (stack_trace, cgroup_array) load, stay empty and refuse updates (issue 17)") {
  const std::string obj = program_path("declared_maps"), dump = temp_path("declared.json"), load = temp_path("declared_load.json");
  auto p = ubpf({"maps", obj});
  REQUIRE(p.exit_code == 0);
  CHECK(p.out.find("stacks                   stack_trace             4      256         1024") != std::string::npos);
  CHECK(p.out.find("cgroups                  cgroup_array            4        4            1") != std::string::npos);
  const std::string cap = known_capture();
  p = ubpf({obj, "--engine", "interp", "--pcap", cap, "--map-dump", dump, "--json"});
  CHECK(count_of(json_of(p), "XDP_PASS") == read_capture(cap).size());
  const std::string dumped = slurp(dump);
  CHECK(dumped.find("\"stacks\":[]") != std::string::npos);
  CHECK(dumped.find("\"cgroups\":[]") != std::string::npos);
  std::string zeros;
  for (int i = 0; i < 256; ++i) zeros += std::string(i ? "," : "") + "\"0x00\"";
  std::ofstream(load) << R"({"stacks":[{"key":1,"value":[)" << zeros << "]}]}";
  p = ubpf({obj, "--engine", "interp", "--pcap", cap, "--map-load", load});
  CHECK(p.exit_code == 2);
  CHECK(p.out.find("map 'stacks': update: not supported on this map type") != std::string::npos);
}

TEST_CASE("ubpf-run: an object of old clang with no ELF machine runs, with a warning (issue 17)") {
  std::ifstream in(program_path("globals"), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() > 20);
  bytes[18] = bytes[19] = 0;  // e_machine = EM_NONE
  const std::string old = temp_path("old_clang.o");
  std::ofstream(old, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  auto p = ubpf({"maps", old});
  CHECK(p.exit_code == 0);
  CHECK(p.out.find("ubpf-run: warning: " + old + ": ELF machine is 0 (none), as old clang wrote it: read as BPF (247)") == 0);
  CHECK(p.out.find(".rodata") != std::string::npos);
}

TEST_CASE("ubpf-run: tracing programs beside a packet program are listed, not failures, and the packet program is the one run (issue 17)") {
  const std::string obj = program_path("mixed_kinds");
  auto p = ubpf({"verify", obj});
  CHECK(p.exit_code == 0);
  CHECK(p.out.find("pass_all: verified") != std::string::npos);
  CHECK(p.out.find("trace_exception: not a packet program (section tracepoint/xdp/xdp_exception), skipped") != std::string::npos);
  CHECK(p.out.find("probe_generic: not a packet program (section kprobe/do_xdp_generic), skipped") != std::string::npos);
  p = ubpf({"verify", obj, "--json"});
  CHECK(p.exit_code == 0);
  CHECK(p.out.find(R"({"program":"trace_exception","verified":false,"skipped":"not a packet program","section":"tracepoint/xdp/xdp_exception"})") !=
        std::string::npos);
  const std::string cap = known_capture();
  p = ubpf({obj, "--engine", "interp", "--pcap", cap, "--json"});  // no --prog: the one packet program
  CHECK(count_of(json_of(p), "XDP_PASS") == read_capture(cap).size());
  p = ubpf({obj, "--engine", "interp", "--pcap", cap, "--prog", "trace_exception"});
  CHECK(p.exit_code == 1);
  CHECK(p.out.find("not a packet program (section 'tracepoint/xdp/xdp_exception'): ebpfvm runs XDP, tc and socket-filter programs") !=
        std::string::npos);
}

TEST_CASE("ubpf-run: bpf_printk's %s among more than three arguments prints the string, in every engine (issue 17, H)") {
  const std::string log = temp_path("strings.log"), cap = known_capture();
  std::vector<std::string> engines{"interp"};
  if (jit_available()) engines.push_back("jit");
  for (const std::string& engine : engines) {
    INFO(engine);
    auto p = ubpf({program_path("printk_strings"), "--engine", engine, "--pcap", cap, "-c", "2", "--rxq", "3", "--printk", log});
    REQUIRE(p.exit_code == 0);
    CHECK(slurp(log) == "[0] eth0 1 2 3 3\n[0] eth0 1 2 3 3\n");
  }
  auto p = ubpf({program_path("printk_strings"), "--engine", "interp", "--no-verify", "--pcap", cap, "-c", "1", "--printk", log});
  REQUIRE(p.exit_code == 0);
  CHECK(slurp(log) == "[0] eth0 1 2 3 0\n");
}

namespace {

// What libpcap selects from a capture with an expression: each packet's timestamp and bytes.
std::vector<std::pair<uint64_t, std::string>> libpcap_selects(const std::string& path, const std::string& expr) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  REQUIRE(p);
  bpf_program bp{};
  REQUIRE(pcap_compile(p, &bp, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0);
  std::vector<std::pair<uint64_t, std::string>> out;
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1)
    if (pcap_offline_filter(&bp, h, d))
      out.emplace_back(static_cast<uint64_t>(h->ts.tv_sec) * 1000000 + static_cast<uint64_t>(h->ts.tv_usec),
                       std::string(reinterpret_cast<const char*>(d), h->caplen));
  pcap_freecode(&bp);
  pcap_close(p);
  return out;
}

}  // namespace

TEST_CASE("ubpf-run filter: the packets tcpdump would select, counted and written unchanged (issue 23)") {
  const std::string cap = sample_capture(3000);
  for (const std::string expr : {"tcp port 22", "udp", "ip6 and tcp", "vlan", "not ip"}) {
    INFO(expr);
    const auto want = libpcap_selects(cap, expr);
    const std::string out = temp_path("filtered.pcap");
    std::filesystem::remove(out);
    auto r = ubpf({"filter", "--engine", "interp", "-r", cap, "-w", out, "--json", expr});
    const auto j = json_of(r);
    CHECK(j.get("packets")->number() == 3000);
    CHECK(j.get("matched")->number() == static_cast<double>(want.size()));
    CHECK(j.get("engine")->string() == "interp");
    CHECK(libpcap_selects(out, "") == want);  // the same packets, timestamps and bytes
    // the words of an expression are joined, as tcpdump joins them
    auto words = ubpf({"filter", "--engine", "interp", "-r", cap, "--count"});
    REQUIRE(words.exit_code == 0);
    CHECK(words.out == "3000 packets\n");
  }
  auto split = ubpf({"filter", "--engine", "interp", "-r", cap, "--count", "tcp", "port", "22"});
  REQUIRE(split.exit_code == 0);
  CHECK(split.out == std::to_string(libpcap_selects(cap, "tcp port 22").size()) + " packets\n");
  // -c: the first N matching packets
  auto first = ubpf({"filter", "--engine", "interp", "-r", cap, "-c", "5", "--json", "udp"});
  CHECK(json_of(first).get("matched")->number() == 5);
  // a pcapng input gives a pcapng output with the same records (here: ubpf-run's own pcapng of
  // every packet of the capture, verdict comments and all)
  const std::string ng = temp_path("every.pcapng"), ng_out = temp_path("every-udp.pcapng");
  std::filesystem::remove(ng), std::filesystem::remove(ng_out);
  REQUIRE(ubpf({kFirewall, "--pcap", cap, "--engine", "interp", "-w", ng, "--write-actions", "all"}).exit_code == 0);
  REQUIRE(ubpf({"filter", "--engine", "interp", "-r", ng, "-w", ng_out, "udp"}).exit_code == 0);
  CHECK(slurp(ng_out).substr(0, 4) == std::string("\x0a\x0d\x0d\x0a", 4));  // a pcapng section header
  const auto udp_in_ng = libpcap_selects(ng, "udp");
  CHECK(udp_in_ng.size() > 100);
  CHECK(libpcap_selects(ng_out, "") == udp_in_ng);
  // the table for people
  auto table = ubpf({"filter", "--engine", "interp", "-r", cap, "udp"});
  REQUIRE(table.exit_code == 0);
  CHECK_THAT(table.out, Catch::Matchers::StartsWith(std::to_string(libpcap_selects(cap, "udp").size()) + " of 3000 packets matched ("));
}

TEST_CASE("ubpf-run filter: -d prints the eBPF, -dd tcpdump -d's listing, -ddd its numbers, which --cbpf reads back (issue 23)") {
  auto ebpf = ubpf({"filter", "--engine", "interp", "-d", "ip and udp"});
  REQUIRE(ebpf.exit_code == 0);
  CHECK(ebpf.out.find("r0 = *(u16 *)skb[12]") != std::string::npos);
  auto listing = ubpf({"filter", "--engine", "interp", "-dd", "ip and udp"});
  REQUIRE(listing.exit_code == 0);
  CHECK(listing.out ==
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 5\n(002) ldb      [23]\n(003) jeq      #0x11            jt 4\tjf 5\n"
        "(004) ret      #262144\n(005) ret      #0\n");
  auto numbers = ubpf({"filter", "--engine", "interp", "-ddd", "ip and udp"});
  REQUIRE(numbers.exit_code == 0);
  CHECK(numbers.out == "6\n40 0 0 12\n21 0 3 2048\n48 0 0 23\n21 0 1 17\n6 0 0 262144\n6 0 0 0\n");
  const std::string prog = temp_path("ip-udp.cbpf");
  std::ofstream(prog) << numbers.out;
  const std::string cap = sample_capture(3000);
  auto from_file = ubpf({"filter", "--engine", "interp", "-r", cap, "--count", "--cbpf", prog});
  REQUIRE(from_file.exit_code == 0);
  CHECK(from_file.out == std::to_string(libpcap_selects(cap, "ip and udp").size()) + " packets\n");
}

TEST_CASE("ubpf-run filter: bad expressions, programs and arguments are one line and exit 2 (issue 23)") {
  const std::string cap = sample_capture(3000);
  auto expect = [](const Proc& p, const std::string& text) {
    INFO(p.out);
    CHECK(p.exit_code == 2);
    CHECK(p.out == "ubpf-run: " + text + "\n");
  };
  expect(ubpf({"filter", "-r", cap, "tcp", "port"}), "can't parse filter expression: syntax error (filter 'tcp port')");
  expect(ubpf({"filter", "udp"}), "filter: give a capture to read with -r FILE (or -d, -dd, -ddd to print the program)");
  const std::string bad = temp_path("bad.cbpf");
  std::ofstream(bad) << "2\n6 0 0 0\n";
  expect(ubpf({"filter", "-r", cap, "--cbpf", bad}), bad + ": classic BPF text says 2 instructions but holds 1");
  std::ofstream(bad) << "1\n21 5 0 1\n";
  expect(ubpf({"filter", "-r", cap, "--cbpf", bad}), bad + ": classic BPF instruction 0 (jeq): true jump to 6 is past the end (1 instructions)");
  expect(ubpf({"filter", "-r", cap, "--cbpf", bad, "udp"}), "give a filter expression or --cbpf FILE, not both");
  expect(ubpf({"filter", "-r", cap, "-w", cap, "udp"}), "-w " + cap + " is the input -r " + cap + ": writing it would destroy it");
}

TEST_CASE("ubpf-run --filter: only the packets an expression matches reach the program, the others are counted (issue 23)") {
  const std::string cap = known_capture();
  auto r = ubpf({kFirewall, "--pcap", cap, "--engine", "interp", "--json", "--filter", "udp"});
  const auto j = json_of(r);
  CHECK(j.get("packets")->number() == 2);   // UDP/53 passes, UDP/123 is dropped
  CHECK(j.get("filtered")->number() == 3);  // TCP, ARP and the 10-byte frame never ran
  CHECK(count_of(j, "XDP_PASS") == 1);
  CHECK(count_of(j, "XDP_DROP") == 1);
  auto table = ubpf({kFirewall, "--pcap", cap, "--engine", "interp", "--filter", "not udp"});
  INFO(table.out);
  REQUIRE(table.exit_code == 0);
  // the 10-byte frame is too short for the expression's first load, so libpcap's program (and
  // this one) returns 0 for it, `not` or not
  CHECK(table.out.find("input    " + cap + ": 2 packets, 114 B") != std::string::npos);
  CHECK(table.out.find("filter   'not udp': 3 packets (130 B) filtered out, not run") != std::string::npos);
  auto bad = ubpf({kFirewall, "--pcap", cap, "--engine", "interp", "--filter", "udp port"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out == "ubpf-run: --filter: can't parse filter expression: syntax error (filter 'udp port')\n");
}

namespace {

// A capture for the filter comparisons: every protocol the expressions name, crafted (IPv4 and
// IPv6 TCP/UDP, ICMP, ICMPv6, SCTP, ARP, one and two VLAN tags, fragments, broadcast, multicast,
// short frames, frames cut by the snap length), then gen_pcap's mixed traffic.
std::string filter_capture() {
  const std::string path = temp_path("filter-mix.pcap");
  if (std::filesystem::exists(path)) return path;
  std::vector<std::vector<uint8_t>> pkts;
  for (uint16_t port : {22, 53, 80, 443, 1000, 1500, 2000, 8080}) {
    PacketSpec tcp;
    tcp.l4 = 6, tcp.dport = port, tcp.sport = static_cast<uint16_t>(40000 + port);
    pkts.push_back(make_packet(tcp));
    PacketSpec udp;
    udp.dport = port, udp.src4 = {192, 168, 1, static_cast<uint8_t>(port & 0xff)};
    pkts.push_back(make_packet(udp));
    tcp.ipv6 = true;
    pkts.push_back(make_packet(tcp));
    udp.ipv6 = true;
    pkts.push_back(make_packet(udp));
  }
  for (uint8_t proto : {1, 58, 132, 47}) {  // ICMP, ICMPv6 (over IPv6), SCTP, GRE
    PacketSpec s;
    s.l4 = proto, s.ipv6 = proto == 58, s.payload = 24;
    pkts.push_back(make_packet(s));
  }
  PacketSpec syn;
  syn.l4 = 6, syn.dport = 80;
  auto synack = make_packet(syn);
  synack[14 + 20 + 13] = 0x12;
  pkts.push_back(synack);
  auto fin = make_packet(syn);
  fin[14 + 20 + 13] = 0x11;
  pkts.push_back(fin);
  PacketSpec tagged = syn;
  tagged.vlan = true;
  pkts.push_back(make_packet(tagged));
  auto qinq = make_packet(tagged);  // an outer 802.1ad tag before the 802.1Q one
  const std::vector<uint8_t> outer{0x88, 0xa8, 0x00, 0x07};
  qinq.insert(qinq.begin() + 12, outer.begin(), outer.end());
  pkts.push_back(qinq);
  auto frag = make_packet({});
  frag[14 + 6] = 0x20, frag[14 + 7] = 0x08;
  pkts.push_back(frag);
  auto bcast = make_packet({});
  std::fill(bcast.begin(), bcast.begin() + 6, 0xff);
  pkts.push_back(bcast);
  auto mcast = make_packet({});
  mcast[0] = 0x01, mcast[1] = 0x00, mcast[2] = 0x5e;
  mcast[14 + 16] = 224;
  pkts.push_back(mcast);
  PacketSpec big;
  big.payload = 1200;
  pkts.push_back(make_packet(big));
  pkts.push_back(make_arp());
  pkts.push_back(std::vector<uint8_t>(10, 0xee));
  pkts.push_back({});
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  REQUIRE(d);
  uint32_t t = 0;
  auto dump = [&](const uint8_t* data, uint32_t caplen, uint32_t len) {
    pcap_pkthdr h{};
    h.ts.tv_sec = 2000 + t++;
    h.caplen = caplen, h.len = len;
    pcap_dump(reinterpret_cast<u_char*>(d), &h, data);
  };
  for (const auto& p : pkts) dump(p.data(), static_cast<uint32_t>(p.size()), static_cast<uint32_t>(p.size()));
  for (const auto& p : pkts)  // cut at 34 bytes, as a small snap length leaves them
    if (p.size() > 34) dump(p.data(), 34, static_cast<uint32_t>(p.size()));
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* mix = pcap_open_offline(sample_capture(3000).c_str(), err);
  REQUIRE(mix);
  pcap_pkthdr* h;
  const u_char* data;
  while (pcap_next_ex(mix, &h, &data) == 1) dump(data, h->caplen, h->len);
  pcap_close(mix);
  pcap_dump_close(d);
  pcap_close(dead);
  return path;
}

// The records of a capture: timestamp, lengths and bytes, as libpcap reads them.
std::vector<std::string> records_of(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  REQUIRE(p);
  std::vector<std::string> out;
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1)
    out.push_back(std::to_string(h->ts.tv_sec) + "." + std::to_string(h->ts.tv_usec) + " " + std::to_string(h->caplen) + "/" +
                  std::to_string(h->len) + " " + std::string(reinterpret_cast<const char*>(d), h->caplen));
  pcap_close(p);
  return out;
}

}  // namespace

TEST_CASE("ubpf-run filter: 66 expressions select exactly the records tcpdump -r -w selects, in both engines (issue 23)") {
  const std::string tcpdump = std::filesystem::exists("/usr/bin/tcpdump") ? "/usr/bin/tcpdump" : "/usr/sbin/tcpdump";
  if (!std::filesystem::exists(tcpdump)) {
    WARN("SKIP comparing ubpf-run filter with tcpdump: tcpdump is not installed (scripts/setup.sh installs it)");
    return;
  }
  const std::string cap = filter_capture();
  const char* const expressions[] = {
      "tcp", "udp", "icmp", "icmp6", "sctp", "arp", "ip", "ip6", "ip proto 47", "ip6 and icmp6",
      "host 10.0.0.1", "src host 10.0.0.1", "dst host 10.0.0.2", "host 192.168.1.22 or host 192.168.1.80", "net 192.168.0.0/16",
      "src net 192.168.1.0/24", "not net 10.0.0.0/8", "ip6 host 2000::2", "ip6 net 2000::/16",
      "port 22", "tcp port 80", "udp port 53", "dst port 443", "src port 41000", "tcp dst port 8080", "portrange 1000-2000",
      "tcp portrange 20-100", "udp dst portrange 50-60", "sctp or icmp", "tcp port 80 or udp port 53", "not port 22",
      "vlan", "vlan 100", "vlan and tcp", "vlan and vlan", "ether proto 0x88a8", "not vlan",
      "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) = (tcp-syn|tcp-ack)", "tcp[tcpflags] & tcp-fin != 0",
      "tcp[13] = 2", "ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0", "ip[8] = 64", "ip[2:2] > 1000", "udp[4:2] > 100",
      "tcp[0:2] > 40000", "ip[0] & 0xf = 5", "(ip[2:2] - ((ip[0] & 0xf) << 2)) > 100", "ip[9] + 1 = 7",
      "len > 1000", "len <= 60", "greater 100", "less 50", "len = 34",
      "ether broadcast", "ether multicast", "ether host 02:00:00:00:00:02", "ether src 02:00:00:00:00:01", "ether[0] & 1 = 1",
      "ip multicast", "ip broadcast", "tcp and (port 22 or port 80) and not src host 10.0.0.2",
      "(udp or tcp) and ip6", "not (tcp or udp or arp)", ""};
  static_assert(std::size(expressions) == 66);
  for (const char* expr : expressions) {
    INFO("'" << expr << "'");
    const std::string want = temp_path("tcpdump-filtered.pcap");
    std::filesystem::remove(want);
    std::vector<std::string> td{tcpdump, "-r", cap, "-w", want};
    if (*expr) td.push_back(expr);
    REQUIRE(run_process(td, "", true).exit_code == 0);
    const auto expected = records_of(want);
    for (const char* engine : {"interp", "jit"}) {
      if (std::string(engine) == "jit" && !jit_available()) continue;
      INFO(engine);
      const std::string got = temp_path("ubpf-filtered.pcap");
      std::filesystem::remove(got);
      std::vector<std::string> args{"filter", "--engine", engine, "-r", cap, "-w", got};
      if (*expr) args.push_back(expr);
      auto r = ubpf(args);
      INFO(r.out);
      REQUIRE(r.exit_code == 0);
      CHECK(records_of(got) == expected);
    }
  }
}

// ---- tc and socket filters ----

namespace {

// tests/programs/tc.c's tc_classify shoots IPv6 and passes the rest; sock_udp_head keeps the first
// 40 bytes of IPv4 UDP. The known capture: UDP, UDP, TCP, ARP, a 10-byte runt.
const std::string kTc = std::string(EBPFVM_TEST_PROGRAMS) + "/tc.o";

}  // namespace

TEST_CASE("ubpf-run runs a tc program: the kernel's verdict names, -w writes what tc lets through, runts are not run", "[jit]") {
  const std::string in = known_capture();
  PacketSpec v6;
  v6.ipv6 = true;
  const std::string mixed = temp_path("tc-mixed.pcap");
  write_capture(mixed, {make_packet({}), make_packet(v6), make_arp(), make_packet(v6)});
  for (const char* engine : {"interp", "jit"}) {
    if (std::string(engine) == "jit" && !jit_available()) continue;
    INFO(engine);
    const std::string out = temp_path("tc-out.pcap");
    const auto v = json_of(ubpf({kTc, "--prog", "tc_classify", "--pcap", mixed, "--engine", engine, "--json", "-w", out}));
    CHECK(v.get("type")->string() == "sched_cls");
    CHECK(v.get("packets")->number() == 4);
    CHECK(v.get("actions")->get("TC_ACT_OK")->number() == 2);
    CHECK(v.get("actions")->get("TC_ACT_SHOT")->number() == 2);
    CHECK(v.get("not_run")->number() == 0);
    const auto written = read_capture(out);
    REQUIRE(written.size() == 2);  // the shot IPv6 packets are not written
    CHECK(written[0] == make_packet({}));
    CHECK(written[1] == make_arp());
    // --write-actions takes tc's names
    const auto shot = json_of(ubpf({kTc, "--prog", "tc_classify", "--pcap", mixed, "--engine", engine, "--json", "-w", out, "--write-actions", "shot"}));
    CHECK(read_capture(out).size() == 2);
    CHECK(read_capture(out)[0] == make_packet(v6));
  }
  // the runt of the known capture never reaches the program
  auto text = ubpf({kTc, "--prog", "tc_classify", "--pcap", in, "--engine", "interp"});
  INFO(text.out);
  REQUIRE(text.exit_code == 0);
  CHECK(text.out.find("TC_ACT_OK                     4") != std::string::npos);
  CHECK(text.out.find("not run  1 frames shorter than an Ethernet header") != std::string::npos);
}

TEST_CASE("ubpf-run runs a tc program's redirects and a socket filter's truncation") {
  const std::string in = known_capture();
  auto misc = json_of(ubpf({kTc, "--prog", "tc_misc", "--pcap", in, "--engine", "interp", "--json"}));
  CHECK(misc.get("actions")->get("TC_ACT_REDIRECT")->number() == 4);
  CHECK(misc.get("redirects")->get("ifindex 7 ingress")->number() == 4);
  const std::string out = temp_path("sock-out.pcap");
  auto sock = json_of(ubpf({kTc, "--prog", "sock_udp_head", "--pcap", in, "--engine", "interp", "--json", "-w", out}));
  CHECK(sock.get("type")->string() == "socket_filter");
  CHECK(sock.get("actions")->get("ACCEPT")->number() == 2);  // the two UDP packets
  CHECK(sock.get("actions")->get("DROP")->number() == 2);
  CHECK(sock.get("bytes_kept")->number() == 80);
  const auto written = read_capture(out);
  REQUIRE(written.size() == 2);
  const auto udp = make_packet({});
  CHECK(written[0] == std::vector<uint8_t>(udp.begin(), udp.begin() + 40));
}

TEST_CASE("ubpf-run: tc and socket-filter usage errors name what is allowed") {
  const std::string in = known_capture();
  auto bad = ubpf({kTc, "--prog", "sock_ssh", "--pcap", in, "--engine", "interp", "--write-actions", "shot"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find("--write-actions shot: not a verdict of socket_filter programs") != std::string::npos);
  auto unknown = ubpf({kTc, "--prog", "sock_ssh", "--pcap", in, "--engine", "interp", "--write-actions", "bogus"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.out.find("tc: ok, shot, redirect") != std::string::npos);
  auto dir = ubpf({kTc, "--prog", "sock_ssh", "--pcap", in, "--engine", "interp", "--direction", "egress"});
  CHECK(dir.exit_code == 2);
  CHECK(dir.out.find("--direction egress is for tc programs") != std::string::npos);
  auto dir2 = ubpf({kTc, "--prog", "tc_nat", "--pcap", in, "--engine", "interp", "--direction", "sideways"});
  CHECK(dir2.exit_code == 2);
  CHECK(dir2.out.find("expected ingress or egress") != std::string::npos);
  // a type ubpf-run does not run: the message names it and what runs
  auto other = ubpf({std::string(EBPFVM_TEST_PROGRAMS) + "/mixed_kinds.o", "--prog", "probe_generic", "--pcap", in, "--engine", "interp"});
  CHECK(other.exit_code == 1);
  CHECK(other.out.find("not a packet program (section 'kprobe/do_xdp_generic'): ebpfvm runs XDP, tc and socket-filter programs") !=
        std::string::npos);
  // a tc program forced to XDP reads __sk_buff's fields as xdp_md's: the verifier says where
  auto forced = ubpf({kTc, "--prog", "tc_classify", "--pcap", in, "--engine", "interp", "--type", "xdp"});
  CHECK(forced.exit_code == 1);
  CHECK(forced.out.find("invalid bpf_context access") != std::string::npos);
}

TEST_CASE("the bundled tc classifier and socket filter: exact verdicts, metadata, maps and bytes kept") {
  const std::string dir = std::string(EBPFVM_EXAMPLE_FIREWALL).substr(0, std::string(EBPFVM_EXAMPLE_FIREWALL).rfind('/'));
  // EF (DSCP 46) UDP, telnet (shot), IPv6 with the default class, ARP
  auto ef = make_packet({});
  ef[15] = 46 << 2;
  PacketSpec telnet;
  telnet.l4 = 6;
  telnet.dport = 23;
  PacketSpec v6;
  v6.ipv6 = true;
  const std::string in = temp_path("classes.pcap");
  write_capture(in, {ef, make_packet(telnet), make_packet(v6), make_arp()});
  const std::string map = temp_path("dscp.json"), nd = temp_path("classes.ndjson"), dump = temp_path("classes-maps.json");
  std::ofstream(map) << R"({"dscp_class": [{"key": 46, "value": ["0x0a","0x00","0x00","0x00"]}]})";
  auto tc = ubpf({dir + "/tc_classifier.o", "--pcap", in, "--engine", "interp", "--map-load", map, "--ndjson", nd, "--map-dump", dump,
                  "--maps", "class_stats", "--json"});
  const auto v = json_of(tc);
  CHECK(v.get("actions")->get("TC_ACT_OK")->number() == 3);
  CHECK(v.get("actions")->get("TC_ACT_SHOT")->number() == 1);
  std::ifstream records(nd);
  std::vector<json::Value> rec;
  for (std::string line; std::getline(records, line);) rec.push_back(*json::parse(line));
  REQUIRE(rec.size() == 4);
  CHECK(rec[0].get("tc_classid")->number() == 10);  // from the map; tc keeps the minor number
  CHECK(rec[0].get("priority")->number() == 0x1000a);
  CHECK(rec[0].get("mark")->number() == 0xef);
  CHECK(rec[1].get("action")->string() == "TC_ACT_SHOT");
  CHECK(rec[2].get("tc_classid")->number() == 30);  // cfg_default_class
  CHECK(rec[2].get("mark")->number() == 0);
  auto maps = json::parse(slurp(dump));
  REQUIRE(maps.ok());
  // classes 10, 30 (IPv6 and ARP) and the shot packets' 0xffff: packets and bytes each
  const auto& stats = maps->get("class_stats")->array();
  auto le = [](const json::Value& bytes, size_t off, size_t n) {
    uint64_t x = 0;
    for (size_t i = 0; i < n; ++i) x |= std::stoull(bytes.array()[off + i].string(), nullptr, 16) << (8 * i);
    return x;
  };
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> got;
  for (const json::Value& e : stats) got[le(*e.get("key"), 0, 4)] = {le(*e.get("value"), 0, 8), le(*e.get("value"), 8, 8)};
  const std::map<uint64_t, std::pair<uint64_t, uint64_t>> want{{10, {1, ef.size()}},
                                                                {30, {2, make_packet(v6).size() + make_arp().size()}},
                                                                {0xffff, {1, make_packet(telnet).size()}}};
  CHECK(got == want);

  // the socket filter: DNS kept whole, NTP's headers (42 bytes), TCP and ARP dropped, the runt not run
  const std::string known = known_capture(), out = temp_path("dns.pcap");
  auto sock = json_of(ubpf({dir + "/socket_filter.o", "--pcap", known, "--engine", "interp", "--json", "-w", out}));
  CHECK(sock.get("actions")->get("ACCEPT")->number() == 2);
  CHECK(sock.get("actions")->get("DROP")->number() == 2);
  CHECK(sock.get("not_run")->number() == 1);
  CHECK(sock.get("bytes_kept")->number() == make_packet({}).size() + 42);
  const auto kept = read_capture(out);
  REQUIRE(kept.size() == 2);
  CHECK(kept[0] == make_packet({}));
  CHECK(kept[1].size() == 42);
}
