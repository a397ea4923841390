// ubpf-run --iface, ubpf-run replay and examples/xdp_forwarder on veth pairs in a network
// namespace of the test's own: verdict counts and packets compared with a capture run of the same
// program, packets that leave captured by tcpdump and compared byte for byte. Where the host
// cannot make namespaces or AF_XDP sockets, one SKIP line says why and the tests pass.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "packets.hpp"
#include "support.hpp"
#include "util/json.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

const std::string kIp = "/usr/sbin/ip";
const std::string kTcpdump = "/usr/bin/tcpdump";

// A process running in the background, its standard output and error read as they come.
class Background {
 public:
  explicit Background(const std::vector<std::string>& argv) {
    int out[2];
    REQUIRE(pipe(out) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(out[1], 2);
      close(out[0]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
  }
  ~Background() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  // Reads until `text` has appeared in the output; false after `seconds` or at its end.
  bool wait_for(const std::string& text, double seconds = 20) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (out_.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
      if (left <= 0 || read_some(static_cast<int>(left)) != Read::Data) return false;
    }
    return true;
  }
  void signal(int sig) { kill(pid_, sig); }
  // Waits for it to end (killing it after `seconds`): its exit status and whole output.
  std::pair<int, std::string> finish(double seconds = 30) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
      if (left <= 0) {  // interrupted, so that it says what it has (tcpdump: its counts), then killed
        kill(pid_, SIGINT);
        for (int i = 0; i < 20 && read_some(100) != Read::End; ++i) {
        }
        kill(pid_, SIGKILL);
        out_ += "\n(stopped after " + std::to_string(seconds) + " s)";
        break;
      }
      if (read_some(static_cast<int>(left)) == Read::End) break;
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out_};
  }
  const std::string& out() const { return out_; }

 private:
  enum class Read { Data, End, Timeout };
  Read read_some(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    const int r = poll(&p, 1, timeout_ms);
    if (r == 0) return Read::Timeout;
    if (r < 0) return errno == EINTR ? Read::Timeout : Read::End;
    char buf[4096];
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) return Read::End;
    out_.append(buf, static_cast<size_t>(n));
    return Read::Data;
  }
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
};

// A network namespace with veth pairs, gone with the object. `skip` says why none could be made.
struct Netns {
  std::string name, skip;
  // `ends`: veth pairs, two names each
  explicit Netns(const std::vector<std::string>& ends) {
    static int n = 0;
    name = "ebpfvm-live-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    const int xsk = socket(AF_XDP, SOCK_RAW, 0);
    if (xsk < 0) {
      skip = errno == EPERM || errno == EACCES ? std::string("this process may not open AF_XDP sockets (CAP_NET_RAW): ") + std::strerror(errno)
                                               : std::string("this host has no AF_XDP sockets: ") + std::strerror(errno);
      return;
    }
    close(xsk);
    if (access(kIp.c_str(), X_OK) != 0) {
      skip = "iproute2's ip is not installed";
      return;
    }
    if (auto r = run_process({kIp, "netns", "add", name}, "", true); r.exit_code != 0) {
      skip = "cannot make a network namespace: " + r.out;
      name.clear();
      return;
    }
    // No IPv6: its router and neighbour solicitations would be packets of their own.
    std::vector<std::vector<std::string>> steps = {{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
                                                   {"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"}};
    for (size_t i = 0; i + 1 < ends.size(); i += 2) {
      const std::string &a = ends[i], &b = ends[i + 1];
      steps.push_back({kIp, "link", "add", a, "type", "veth", "peer", "name", b});
      steps.push_back({kIp, "link", "set", a, "up"});
      steps.push_back({kIp, "link", "set", b, "up"});
    }
    for (auto& s : steps) {
      if (s[0] == "sysctl") s[0] = "/usr/sbin/sysctl";
      const auto r = exec(s);
      if (r.exit_code != 0) {
        skip = "cannot set up veth pairs in a namespace: " + r.out;
        return;
      }
    }
  }
  ~Netns() {
    if (!name.empty()) run_process({kIp, "netns", "del", name}, "", true);
  }
  std::vector<std::string> in_ns(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {kIp, "netns", "exec", name});
    return argv;
  }
  Proc exec(const std::vector<std::string>& argv) const { return run_process(in_ns(argv), "", true); }
  bool ok() const {
    if (skip.empty()) return true;
    std::printf("SKIP the live AF_XDP tests: %s\n", skip.c_str());
    return false;
  }
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string sample(int count) {
  const std::string path = temp_path("live_sample" + std::to_string(count) + ".pcap");
  if (!std::filesystem::exists(path)) REQUIRE(run_process({EBPFVM_GEN_PCAP, path, std::to_string(count)}).exit_code == 0);
  return path;
}

// Waits for `text` in a background process's output; fails with all it printed when it does not come.
void require_line(Background& bg, const std::string& text) {
  if (bg.wait_for(text)) return;
  auto [code, out] = bg.finish(5);
  FAIL("no '" << text << "' (exit " << code << "):\n" << out);
}

json::Value parse_json(const std::string& text) {
  // the JSON summary is the last line (listening lines come first, on stderr, merged here)
  const size_t at = text.rfind("\n{");
  auto v = json::parse(at == std::string::npos ? text : text.substr(at + 1));
  INFO(text);
  REQUIRE(v.ok());
  return *v;
}

// Whether tcpdump is here to capture what a test sends out (it is how the packets are compared).
bool have_tcpdump() {
  if (access(kTcpdump.c_str(), X_OK) == 0) return true;
  std::printf("SKIP this live test: tcpdump is not installed (%s)\n", kTcpdump.c_str());
  return false;
}

// tcpdump on `iface` in the namespace, writing what arrives to `path`; ready when it listens. Its
// buffer is large (64 MiB): beside other tests it may not be scheduled in time to read a burst.
std::unique_ptr<Background> capture_on(const Netns& ns, const std::string& iface, const std::string& path, size_t count) {
  auto bg = std::make_unique<Background>(
      ns.in_ns({kTcpdump, "-i", iface, "-Q", "in", "-B", "65536", "-w", path, "-c", std::to_string(count), "--immediate-mode", "-U"}));
  require_line(*bg, "listening on");
  return bg;
}

// Paced: a burst larger than veth's ring (256 frames) or the kernel's backlog, which every test
// running beside this one shares, would lose packets before any program sees them.
void replay(const Netns& ns, const std::string& capture, const std::string& iface) {
  const auto r = ns.exec({EBPFVM_UBPF_RUN, "replay", capture, "--iface", iface, "--rate", "20000"});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("ubpf-run --iface: verdicts on a veth equal a capture run's, -w packet for packet", "[live]") {
  Netns ns({"va", "vb"});
  if (!ns.ok()) return;
  const std::string cap = sample(1000), fw = EBPFVM_EXAMPLE_FIREWALL;
  const std::string ref = temp_path("live_ref.pcap"), got = temp_path("live_got.pcap");
  const auto expected = run_process({EBPFVM_UBPF_RUN, fw, "--pcap", cap, "--json", "-w", ref, "--engine", "interp"});
  REQUIRE(expected.exit_code == 0);
  for (const char* engine : {"interp", "jit"}) {
    if (std::string(engine) == "jit" && !jit_available()) continue;
    Background live(ns.in_ns({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "-c", "1000", "--duration", "60", "--json", "-w", got, "--interval", "0",
                              "--engine", engine}));
    require_line(live, "ubpf-run: listening on vb@0 (");
    replay(ns, cap, "va");
    auto [code, out] = live.finish();
    INFO(out);
    REQUIRE(code == 0);
    const json::Value want = parse_json(expected.out), have = parse_json(out);
    CHECK(have.get("packets")->number() == 1000);
    for (const char* a : {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}) {
      CHECK(have.get("actions")->get(a)->number() == want.get("actions")->get(a)->number());
      CHECK(have.get("bytes")->get(a)->number() == want.get("bytes")->get(a)->number());
    }
    const auto& port = have.get("interfaces")->array().at(0);
    CHECK(port.get("interface")->string() == "vb@0");
    CHECK(port.get("received")->number() == 1000);
    CHECK(port.get("kernel_dropped")->number() == 0);
    CHECK(read_capture(got) == read_capture(ref));  // XDP_PASS packets, in order
  }
  // the redirect program is gone from the interface
  const auto link = ns.exec({kIp, "link", "show", "vb"});
  CHECK(link.out.find(" xdp") == std::string::npos);
}

TEST_CASE("ubpf-run --iface: XDP_TX sends the changed frame back out, byte for byte, and after adjust_head inside the frame", "[live]") {
  Netns ns({"va", "vb"});
  if (!ns.ok() || !have_tcpdump()) return;
  const std::string cap = sample(500);
  for (const char* prog : {"xdp_echo", "xdp_grow"}) {
    const std::string ref = temp_path(std::string("live_tx_ref_") + prog + ".pcap"), back = temp_path(std::string("live_tx_back_") + prog + ".pcap");
    const auto expected = run_process({EBPFVM_UBPF_RUN, program_path("live"), "--prog", prog, "--pcap", cap, "--json", "-w", ref,
                                       "--write-actions", "tx", "--engine", "interp"});
    REQUIRE(expected.exit_code == 0);
    const json::Value want = parse_json(expected.out);
    const auto tx = static_cast<size_t>(want.get("actions")->get("XDP_TX")->number());
    REQUIRE(tx > 50);
    auto dump = capture_on(ns, "va", back, tx);
    Background live(ns.in_ns({EBPFVM_UBPF_RUN, program_path("live"), "--prog", prog, "--iface", "vb", "-c", "500", "--duration", "60", "--json",
                              "--interval", "0", "--engine", "interp"}));
    require_line(live, "listening on vb@0");
    replay(ns, cap, "va");
    auto [code, out] = live.finish();
    INFO(out);
    REQUIRE(code == 0);
    const json::Value have = parse_json(out);
    CHECK(have.get("actions")->get("XDP_TX")->number() == static_cast<double>(tx));
    CHECK(have.get("interfaces")->array().at(0).get("sent")->number() == static_cast<double>(tx));
    auto [dcode, dout] = dump->finish(20);
    INFO(dout);
    INFO(ns.exec({kIp, "-s", "link", "show", "va"}).out);
    INFO(ns.exec({kIp, "-s", "link", "show", "vb"}).out);
    CHECK(dcode == 0);
    CHECK(read_capture(back) == read_capture(ref));
  }
}

TEST_CASE("ubpf-run --iface: xskmap redirects are delivered to -w, passed frames to a TAP device", "[live]") {
  Netns ns({"va", "vb"});
  if (!ns.ok() || !have_tcpdump()) return;
  if (access("/dev/net/tun", R_OK | W_OK) != 0) {
    std::printf("SKIP --pass-to-kernel: no /dev/net/tun\n");
    return;
  }
  REQUIRE(ns.exec({kIp, "tuntap", "add", "dev", "tp0", "mode", "tap"}).exit_code == 0);
  REQUIRE(ns.exec({kIp, "link", "set", "tp0", "up"}).exit_code == 0);
  const std::string cap = sample(400), ref = temp_path("live_app_ref.pcap"), got = temp_path("live_app_got.pcap"),
                    passed = temp_path("live_tap.pcap"), maps = temp_path("live_xsks.json");
  std::ofstream(maps) << R"({"xsks": [{"key": 0, "value": ["0x01", "0x00", "0x00", "0x00"]}]})";
  const auto expected = run_process({EBPFVM_UBPF_RUN, program_path("live"), "--prog", "xdp_to_app", "--pcap", cap, "--json", "-w", ref,
                                     "--write-actions", "redirect", "--map-load", maps, "--engine", "interp"});
  INFO(expected.out);
  REQUIRE(expected.exit_code == 0);
  const json::Value want = parse_json(expected.out);
  const auto pass = static_cast<size_t>(want.get("actions")->get("XDP_PASS")->number());
  const auto redirected = want.get("actions")->get("XDP_REDIRECT")->number();
  REQUIRE(pass > 20);
  REQUIRE(redirected > 20);
  auto dump = capture_on(ns, "tp0", passed, pass);
  Background live(ns.in_ns({EBPFVM_UBPF_RUN, program_path("live"), "--prog", "xdp_to_app", "--iface", "vb", "-c", "400", "--duration", "60",
                            "--json", "--interval", "0", "-w", got, "--write-actions", "redirect", "--map-load", maps, "--pass-to-kernel", "tp0",
                            "--engine", "interp"}));
  require_line(live, "listening on vb@0");
  replay(ns, cap, "va");
  auto [code, out] = live.finish();
  INFO(out);
  REQUIRE(code == 0);
  const json::Value have = parse_json(out);
  const auto& port = have.get("interfaces")->array().at(0);
  CHECK(port.get("delivered")->number() == redirected);
  CHECK(port.get("passed_to_kernel")->number() == static_cast<double>(pass));
  CHECK(have.get("redirects")->get("map 'xsks' slot 0")->number() == redirected);
  CHECK(read_capture(got) == read_capture(ref));
  auto [dcode, dout] = dump->finish(20);
  INFO(dout);
  CHECK(dcode == 0);
  std::vector<std::vector<uint8_t>> passed_ref;
  const auto all_packets = read_capture(cap);
  const auto app = read_capture(ref);
  // what was passed: the capture's packets that the program did not redirect, in order
  size_t k = 0;
  for (const auto& p : all_packets) {
    if (k < app.size() && p == app[k]) ++k;
    else passed_ref.push_back(p);
  }
  CHECK(read_capture(passed) == passed_ref);
}

TEST_CASE("ubpf-run --iface: Ctrl-C stops cleanly with the summary, and errors name the interface", "[live]") {
  Netns ns({"va", "vb"});
  if (!ns.ok()) return;
  const std::string fw = EBPFVM_EXAMPLE_FIREWALL;
  {
    Background live(ns.in_ns({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "--engine", "interp", "--interval", "0.2"}));
    require_line(live, "listening on vb@0");
    CHECK(ns.exec({kIp, "link", "show", "vb"}).out.find(" xdp") != std::string::npos);
    // --loop: the capture three times over
    const auto r = ns.exec({EBPFVM_UBPF_RUN, "replay", sample(100), "--iface", "va", "--loop", "3", "--rate", "20000", "--json"});
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("\"packets\":300,") != std::string::npos);
    require_line(live, "vb@0 ");  // a rate line
    live.signal(SIGINT);
    auto [code, out] = live.finish();
    INFO(out);
    CHECK(code == 0);
    CHECK(out.find("input    live on vb (AF_XDP): 300 packets") != std::string::npos);
    CHECK(out.find("(stopped by a signal)") != std::string::npos);
    CHECK(out.find("XDP_DROP") != std::string::npos);
    CHECK(ns.exec({kIp, "link", "show", "vb"}).out.find(" xdp") == std::string::npos);
  }
  // errors
  auto r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "nosuch0", "--engine", "interp"});
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("no interface 'nosuch0'") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "vb@x", "--engine", "interp"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("--iface vb@x: expected IF or IF@QUEUE") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "--pcap", sample(100), "--engine", "interp"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("give a capture (--pcap FILE) or live interfaces (--iface IF[@QUEUE]), one of them") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, fw, "--pcap", sample(100), "--duration", "3", "--engine", "interp"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("--duration is for live runs") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "--workers", "2", "--engine", "interp"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("--workers is for captures") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "--iface", "vb@0", "--engine", "interp"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("--iface vb@0 is given twice") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "--xdp-mode", "fast", "--engine", "interp"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("--xdp-mode fast: expected native, generic or auto") != std::string::npos);
  // an interface with someone else's XDP program is left alone
  REQUIRE(ns.exec({kIp, "link", "set", "dev", "vb", "xdpgeneric", "obj", fw, "sec", "xdp"}).exit_code == 0);
  r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "--engine", "interp"});
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("vb already has an XDP program (id ") != std::string::npos);
  CHECK(ns.exec({kIp, "link", "show", "vb"}).out.find("xdpgeneric") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, "replay", sample(100), "--iface", "nosuch0"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("no interface 'nosuch0'") != std::string::npos);
  r = ns.exec({EBPFVM_UBPF_RUN, "replay", sample(100), "--iface", "va", "--rate", "-5"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("--rate must not be negative") != std::string::npos);
  {
    const std::string whole = read_text(sample(100)), cut = temp_path("live_cut.pcap");
    std::ofstream(cut, std::ios::binary) << whole.substr(0, whole.size() - 10);
    r = ns.exec({EBPFVM_UBPF_RUN, "replay", cut, "--iface", "va"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.find("live_cut.pcap: packet 100 at byte ") != std::string::npos);
    CHECK(r.out.find(" is truncated: ") != std::string::npos);
  }
}

#ifdef EBPFVM_XDP_FORWARDER
TEST_CASE("examples/xdp_forwarder forwards between two veths, its block list applied", "[live]") {
  Netns ns({"a0", "a1", "b0", "b1"});
  if (!ns.ok() || !have_tcpdump()) return;
  const std::string cap = sample(600), out_b = temp_path("fwd_b0.pcap");
  const auto input = read_capture(cap);
  // 10.1.0.1 is the sample's busiest source: its packets must not come out
  std::vector<std::vector<uint8_t>> want;
  for (const auto& p : input) {
    const bool blocked = p.size() >= 34 && p[12] == 0x08 && p[13] == 0x00 && p[26] == 10 && p[27] == 1 && p[28] == 0 && p[29] == 1;
    if (!blocked) want.push_back(p);
  }
  REQUIRE(want.size() < input.size());
  auto dump = capture_on(ns, "b0", out_b, want.size());
  std::vector<std::string> argv{EBPFVM_XDP_FORWARDER, "a1", "b1", "--block", "10.1.0.1", "--duration", "60"};
  if (!jit_available()) argv.push_back("--interp");  // a host that refuses the JIT executable memory
  Background fwd(ns.in_ns(argv));
  require_line(fwd, "forwarding a1 <-> b1 (");
  replay(ns, cap, "a0");
  auto [dcode, dout] = dump->finish(20);
  fwd.signal(SIGINT);
  auto [code, out] = fwd.finish();
  INFO(out);
  INFO(dout);
  CHECK(dcode == 0);
  const auto got = read_capture(out_b);
  CHECK(got.size() == want.size());
  CHECK(got == want);
  CHECK(code == 0);
  CHECK(out.find("a1: received " + std::to_string(input.size()) + ", forwarded " + std::to_string(want.size())) != std::string::npos);
  CHECK(out.find("blocked 10.1.0.1: " + std::to_string(input.size() - want.size()) + " packets") != std::string::npos);
}
#endif

TEST_CASE("ubpf-run --iface IF@0 --iface IF@1: a worker per queue, each with its own per-CPU map slot", "[live]") {
  Netns ns({});
  if (!ns.ok()) return;
  if (ns.exec({kIp, "link", "add", "va", "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer", "name", "vb", "numtxqueues", "2",
               "numrxqueues", "2"}).exit_code != 0) {
    std::printf("SKIP multi-queue veth: this kernel cannot make one\n");
    return;
  }
  REQUIRE(ns.exec({kIp, "link", "set", "va", "up"}).exit_code == 0);
  REQUIRE(ns.exec({kIp, "link", "set", "vb", "up"}).exit_code == 0);
  const std::string fw = EBPFVM_EXAMPLE_FIREWALL, dump = temp_path("live_mq_maps.json");
  const std::string cap0 = sample(300), cap1 = sample(200);
  const auto c0 = parse_json(run_process({EBPFVM_UBPF_RUN, fw, "--pcap", cap0, "--json", "--engine", "interp"}).out);
  const auto c1 = parse_json(run_process({EBPFVM_UBPF_RUN, fw, "--pcap", cap1, "--json", "--engine", "interp"}).out);
  Background live(ns.in_ns({EBPFVM_UBPF_RUN, fw, "--iface", "vb@0", "--iface", "vb@1", "--cpus", "0", "-c", "500", "--duration", "60", "--json",
                            "--interval", "0", "--engine", "interp", "--map-dump", dump, "--maps", "verdicts"}));
  require_line(live, "listening on vb@1");
  // AF_XDP sends out of queue N of one end arrive on queue N of the other
  for (const auto& [cap, q] : {std::pair{cap0, "va@0"}, std::pair{cap1, "va@1"}}) {
    const auto r = ns.exec({EBPFVM_UBPF_RUN, "replay", cap, "--iface", q, "--rate", "20000"});
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
  }
  auto [code, out] = live.finish();
  INFO(out);
  REQUIRE(code == 0);
  const json::Value have = parse_json(out);
  const auto& ports = have.get("interfaces")->array();
  REQUIRE(ports.size() == 2);
  CHECK(ports[0].get("interface")->string() == "vb@0");
  CHECK(ports[0].get("received")->number() == 300);
  CHECK(ports[1].get("interface")->string() == "vb@1");
  CHECK(ports[1].get("received")->number() == 200);
  CHECK(have.get("actions")->get("XDP_DROP")->number() ==
        c0.get("actions")->get("XDP_DROP")->number() + c1.get("actions")->get("XDP_DROP")->number());
  // the firewall's per-CPU verdict counters: worker 0's slot saw queue 0's packets, worker 1's queue 1's
  auto maps = json::parse(read_text(dump));
  REQUIRE(maps.ok());
  const json::Value* verdicts = maps->get("verdicts");
  REQUIRE(verdicts);
  std::array<uint64_t, 2> per_worker{};
  for (const json::Value& e : verdicts->array())
    for (const json::Value& slot : e.get("values")->array()) {
      const auto cpu = static_cast<size_t>(slot.get("cpu")->number());
      const auto& v = slot.get("value")->array();
      uint64_t packets = 0;
      for (size_t b = 0; b < 8; ++b) packets |= static_cast<uint64_t>(std::strtoul(v[b].string().c_str(), nullptr, 16)) << (8 * b);
      REQUIRE(cpu < 2);
      per_worker[cpu] += packets;
    }
  CHECK(per_worker[0] == 300);
  CHECK(per_worker[1] == 200);
  CHECK(have.get("active_packets_per_second")->number() > 0);
}

TEST_CASE("ubpf-run --iface --xsk-map: the user's own XDP program redirects into its pinned xskmap, and stays", "[live]") {
  Netns ns({"va", "vb"});
  if (!ns.ok()) return;
  const std::string fw = EBPFVM_EXAMPLE_FIREWALL, cap = sample(200);
  const auto expected = parse_json(run_process({EBPFVM_UBPF_RUN, fw, "--pcap", cap, "--json", "--engine", "interp"}).out);
  // iproute2 loads the program and pins its map (LIBBPF_PIN_BY_NAME) in the bpffs it mounts in
  // this command's mount namespace: ubpf-run runs in the same one
  const std::string script = "ip link set dev vb xdp obj " + program_path("live") + " sec xdp program xdp_own_redirect || exit 77; "
                             "exec " + std::string(EBPFVM_UBPF_RUN) + " " + fw + " --iface vb --xsk-map /sys/fs/bpf/tc/globals/own_xsks "
                             "-c 200 --duration 60 --json --interval 0 --engine interp";
  Background live(ns.in_ns({"/bin/sh", "-c", script}));
  if (!live.wait_for("listening on vb@0")) {
    auto [code, out] = live.finish();
    if (code == 77) {
      std::printf("SKIP --xsk-map: iproute2 cannot load an XDP object here: %s\n", out.c_str());
      return;
    }
    FAIL(out);
  }
  CHECK(live.out().find("listening on vb@0 (your XDP program's xskmap, copy mode)") != std::string::npos);
  replay(ns, cap, "va");
  auto [code, out] = live.finish();
  INFO(out);
  REQUIRE(code == 0);
  const json::Value have = parse_json(out);
  CHECK(have.get("interfaces")->array().at(0).get("xdp_mode")->string() == "own program");
  for (const char* a : {"XDP_DROP", "XDP_PASS"}) CHECK(have.get("actions")->get(a)->number() == expected.get("actions")->get(a)->number());
  CHECK(ns.exec({kIp, "link", "show", "vb"}).out.find("xdp_own_redirec") != std::string::npos);  // not ours to remove
  auto r = ns.exec({EBPFVM_UBPF_RUN, fw, "--iface", "vb", "--xsk-map", "/nonexistent/xsks", "--engine", "interp"});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("vb@0: cannot open the pinned xskmap /nonexistent/xsks") != std::string::npos);
}

TEST_CASE("ubpf-run --iface a1 --iface b1: devmap redirects leave by the other interface, counted by target", "[live]") {
  Netns ns({"a0", "a1", "b0", "b1"});
  if (!ns.ok() || !have_tcpdump()) return;
  const auto ifindex = [&](const std::string& dev) {
    const auto r = ns.exec({"/bin/cat", "/sys/class/net/" + dev + "/ifindex"});
    REQUIRE(r.exit_code == 0);
    return std::stoul(r.out);
  };
  const unsigned long a1 = ifindex("a1"), b1 = ifindex("b1");
  const std::string maps = temp_path("live_l2fwd_maps.json"), cap = sample(300), out_b = temp_path("live_l2fwd_b0.pcap");
  const auto le32 = [](unsigned long v) {  // a value as bpftool's bytes
    std::string out = "[";
    for (int i = 0; i < 4; ++i) out += (i ? ",\"0x" : "\"0x") + std::string(1, "0123456789abcdef"[(v >> (8 * i + 4)) & 15]) + "0123456789abcdef"[(v >> (8 * i)) & 15] + "\"";
    return out + "]";
  };
  std::ofstream(maps) << R"({"tx_port": [{"key": )" << a1 << R"(, "value": )" << le32(b1) << R"(}, {"key": )" << b1 << R"(, "value": )" << le32(a1)
                      << "}]}";
  const auto input = read_capture(cap);
  auto dump = capture_on(ns, "b0", out_b, input.size());
  Background live(ns.in_ns({EBPFVM_UBPF_RUN, EBPFVM_EXAMPLE_L2FWD, "--iface", "a1", "--iface", "b1", "--map-load", maps, "-c", "300",
                            "--duration", "60", "--json", "--interval", "0", "--engine", "interp"}));
  require_line(live, "listening on b1@0");
  replay(ns, cap, "a0");
  auto [code, out] = live.finish();
  INFO(out);
  REQUIRE(code == 0);
  auto [dcode, dout] = dump->finish(20);
  INFO(dout);
  CHECK(dcode == 0);
  CHECK(read_capture(out_b) == input);  // every frame, unchanged, out of b1 into b0
  const json::Value have = parse_json(out);
  CHECK(have.get("actions")->get("XDP_REDIRECT")->number() == 300);
  CHECK(have.get("redirects")->get("map 'tx_port' slot " + std::to_string(a1))->number() == 300);
  const auto& ports = have.get("interfaces")->array();
  CHECK(ports.at(0).get("received")->number() == 300);
  CHECK(ports.at(0).get("sent")->number() == 300);
  CHECK(ports.at(1).get("received")->number() == 0);
}
