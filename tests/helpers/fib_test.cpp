// bpf_fib_lookup: the network read from iproute2's JSON, and its answers against the kernel's.
//
// The kernel comparison builds a network in a fresh network namespace with `ip` (two veth pairs,
// addresses, routes of every type, neighbours, a second table), runs tests/programs/fib.c there
// through BPF_PROG_TEST_RUN, dumps the namespace with `ip -j addr / route / neigh`, and runs the
// same packets in ebpfvm on a Fib read from those dumps: every packet must come out identical
// (the return code and the whole struct bpf_fib_lookup). Hosts that cannot make the namespace
// skip it with the reason; a query using a flag the running kernel does not know is skipped alone.
#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "kernel.hpp"
#include "packets.hpp"
#include "support.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

// What the test network holds; `ip` runs these in the namespace, in order.
const char* const kNetwork = R"(set -e
sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
ip link set lo up
ip link add v0 type veth peer name v1
ip link add v2 type veth peer name v3
ip link set v0 address 02:00:00:00:00:10
ip link set v2 address 02:00:00:00:00:20 mtu 1400
for l in v0 v1 v2 v3; do ip link set $l up; done
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
sysctl -qw net.ipv4.conf.v3.forwarding=0 net.ipv6.conf.v3.forwarding=0
ip addr add 10.1.0.1/24 dev v0
ip addr add 10.2.0.1/24 dev v2
ip -6 addr add 2001:db8:1::1/64 dev v0
ip -6 addr add 2001:db8:2::1/64 dev v2
ip route add 192.0.2.0/25 via 10.1.0.2
ip route add 198.51.100.0/24 via 10.1.0.3
ip route add 203.0.113.0/24 via 10.2.0.2 metric 50 mtu lock 1300
ip route add 203.0.113.0/24 via 10.1.0.2 metric 60
ip route add blackhole 198.18.0.0/16
ip route add unreachable 198.19.0.0/16
ip route add prohibit 100.64.0.0/10
ip route add throw 172.16.0.0/12
ip route add default via 10.1.0.2
ip route add default via 10.2.0.2 table 100
ip route add 192.0.2.128/25 via inet6 2001:db8:1::2 dev v0
ip -6 route add 2001:db8:99::/48 via 2001:db8:1::2
ip -6 route add 2001:db8:77::/48 via 2001:db8:2::2 mtu 1280
ip -6 route add blackhole 2001:db8:bad::/48
ip -6 route add default via 2001:db8:1::2 metric 1024
ip neigh add 10.1.0.2 lladdr 02:00:00:00:01:02 dev v0 nud permanent
ip neigh add 10.2.0.2 lladdr 02:00:00:00:02:02 dev v2 nud stale
ip -6 neigh add 2001:db8:1::2 lladdr 02:00:00:00:01:62 dev v0 nud permanent
ip -6 neigh add 2001:db8:2::2 lladdr 02:00:00:00:02:62 dev v2 nud reachable
)";

constexpr uint32_t kDirect = 1, kOutput = 2, kSkipNeigh = 4, kTbid = 8, kSrc = 16;

struct Query {
  std::string dst, src;
  uint32_t flags, tbid;
  std::string link;  // the lookup's ifindex: a link name, "" for the ingress link (lo), "#N" for N
  uint16_t tot_len;
  bool short_plen;
  Query(std::string d, std::string s, uint32_t f = 0, uint32_t t = 0, std::string l = "", uint16_t len = 100, bool shrt = false)
      : dst(std::move(d)), src(std::move(s)), flags(f), tbid(t), link(std::move(l)), tot_len(len), short_plen(shrt) {}
  std::string what() const {
    return dst + " flags " + std::to_string(flags) + (link.empty() ? "" : " from " + link) + " tot_len " + std::to_string(tot_len) +
           (short_plen ? " plen 32" : "");
  }
};

const std::vector<Query>& queries() {
  static const std::vector<Query> q = {
      {"192.0.2.5", "10.9.0.1"},                       // through a gateway with a permanent neighbour
      {"198.51.100.7", "10.9.0.1"},                    // a gateway nobody resolved: NO_NEIGH
      {"198.51.100.7", "10.9.0.1", kSkipNeigh},        // ... not asked for
      {"203.0.113.9", "10.9.0.1"},                     // the lower metric of two, stale neighbour
      {"203.0.113.9", "10.9.0.1", 0, 0, "", 1400},     // over its locked MTU: FRAG_NEEDED
      {"203.0.113.9", "10.9.0.1", kOutput, 0, "v0"},   // the route leaving by v0
      {"198.18.1.1", "10.9.0.1"},                      // blackhole
      {"198.19.1.1", "10.9.0.1"},                      // unreachable
      {"100.64.1.1", "10.9.0.1"},                      // prohibit
      {"172.16.5.5", "10.9.0.1"},                      // throw: the default table has nothing
      {"10.1.0.1", "10.9.0.1"},                        // the host's own address
      {"10.1.0.255", "10.9.0.1"},                      // a broadcast address
      {"10.1.0.2", "10.9.0.1"},                        // on the link
      {"10.1.0.50", "10.9.0.1"},                       // on the link, unknown
      {"8.8.8.8", "10.9.0.1"},                         // the default route
      {"8.8.8.8", "10.9.0.1", kSrc},                   // with the source it would use
      {"8.8.8.8", "10.9.0.1", kDirect},                // main table only
      {"8.8.8.8", "10.9.0.1", kDirect | kTbid, 100},   // table 100
      {"8.8.8.8", "10.9.0.1", kDirect | kTbid, 200},   // no such table
      {"192.0.2.200", "10.9.0.1"},                     // an IPv4 route through an IPv6 gateway
      {"8.8.8.8", "10.9.0.1", 0, 0, "#99"},            // no such link: -ENODEV
      {"8.8.8.8", "10.9.0.1", 0, 0, "v3"},             // forwarding off there
      {"8.8.8.8", "10.9.0.1", kOutput, 0, "v3"},       // ... from the egress side
      {"8.8.8.8", "10.9.0.1", 0, 0, "", 100, true},    // plen too short: -EINVAL
      {"8.8.8.8", "10.9.0.1", 0x80},                   // an unknown flag: -EINVAL
      {"2001:db8:99::5", "2001:db8:5::1"},             // IPv6 through a gateway
      {"2001:db8:99::5", "2001:db8:5::1", kDirect},
      {"2001:db8:77::5", "2001:db8:5::1", 0, 0, "", 1300},  // over the route's MTU
      {"2001:db8:77::5", "2001:db8:5::1", 0, 0, "", 1200},
      {"2001:db8:bad::1", "2001:db8:5::1"},            // blackhole
      {"2001:db8:2::2", "2001:db8:5::1"},              // on the link, reachable
      {"2001:db8:2::9", "2001:db8:5::1"},              // on the link, unknown
      {"fe80::1", "2001:db8:5::1"},                    // link-local: never forwarded
      {"ff02::1", "2001:db8:5::1"},                    // multicast
      {"2001:db8:1::1", "2001:db8:5::1"},              // the host's own
      {"2600::1", "2001:db8:5::1"},                    // the default route
      {"2600::1", "2001:db8:5::1", kSrc},
      {"2600::1", "fe80::9"},                          // a link-local source: never forwarded
  };
  return q;
}

std::vector<uint8_t> packet(const Query& q, const std::map<std::string, uint32_t>& ifindex) {
  const bool v6 = q.dst.find(':') != std::string::npos;
  std::vector<uint8_t> p(14 + (v6 ? 40 : 20) + 88 + 8);
  p[12] = v6 ? 0x86 : 0x08;
  p[13] = v6 ? 0xdd : 0x00;
  uint8_t* ip = p.data() + 14;
  if (v6) {
    ip[0] = 0x60;
    const uint16_t payload = htons(static_cast<uint16_t>(q.tot_len - 40));
    std::memcpy(ip + 4, &payload, 2);
    ip[6] = 17;
    REQUIRE(inet_pton(AF_INET6, q.src.c_str(), ip + 8) == 1);
    REQUIRE(inet_pton(AF_INET6, q.dst.c_str(), ip + 24) == 1);
  } else {
    ip[0] = 0x45;
    const uint16_t tot = htons(q.tot_len);
    std::memcpy(ip + 2, &tot, 2);
    ip[9] = 17;
    REQUIRE(inet_pton(AF_INET, q.src.c_str(), ip + 12) == 1);
    REQUIRE(inet_pton(AF_INET, q.dst.c_str(), ip + 16) == 1);
  }
  uint32_t link = 0;
  if (q.link.rfind("#", 0) == 0) link = static_cast<uint32_t>(std::stoul(q.link.substr(1)));
  else if (!q.link.empty()) link = ifindex.at(q.link);
  const uint32_t request[4] = {q.flags, q.tbid, link, q.short_plen ? 1u : 0u};
  std::memcpy(ip + (v6 ? 40 : 20), request, sizeof request);
  return p;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// What the kernel answered in the namespace, and the namespace's own description.
struct KernelSide {
  std::string skip;  // why the comparison cannot run here
  std::map<std::string, std::string> dumps;  // addr, route4, route6, neigh
  std::map<std::string, std::vector<std::vector<uint8_t>>> results;  // per program, per query: the packet
};

// In a child (a process of its own, so that the test's namespace stays as it was): unshare the
// network namespace, build the network, dump it, and run every query through the kernel. Writes
// its findings to files in `dir`; exits 0, 77 (skip: the reason in dir/skip) or 1 (dir/error).
[[noreturn]] void kernel_child(const std::string& dir, const std::string& object) {
  auto fail = [&](const char* file, const std::string& why, int code) {
    std::ofstream(dir + "/" + file) << why;
    _exit(code);
  };
  if (unshare(CLONE_NEWNET) != 0) fail("skip", std::string("cannot make a network namespace: unshare: ") + std::strerror(errno), 77);
  {
    std::ofstream(dir + "/network.sh") << kNetwork;
  }
  const std::string log = dir + "/network.log";
  if (std::system(("sh " + dir + "/network.sh > " + log + " 2>&1").c_str()) != 0)
    fail("skip", "cannot build the test network with ip (veth, routes via inet6, mtu lock): " + slurp(log), 77);
  for (const auto& [name, cmd] : {std::pair{"addr", "ip -j addr show"}, {"route4", "ip -j -4 route show table all"},
                                  {"route6", "ip -j -6 route show table all"}, {"neigh", "ip -j neigh show"}})
    if (std::system((std::string(cmd) + " > " + dir + "/" + name + ".json").c_str()) != 0) fail("error", std::string(cmd) + " failed", 1);
  bpf_object* obj = bpf_object__open_file(object.c_str(), nullptr);
  if (!obj || bpf_object__load(obj) != 0) fail("error", "the kernel did not load fib.o: " + std::string(std::strerror(errno)), 1);
  std::map<std::string, uint32_t> ifindex;
  for (const char* l : {"v0", "v1", "v2", "v3"}) ifindex[l] = if_nametoindex(l);
  for (const char* prog : {"fib_probe", "fib_probe_tc"}) {
    const int fd = bpf_program__fd(bpf_object__find_program_by_name(obj, prog));
    std::ofstream out(dir + "/results_" + prog, std::ios::binary);
    for (const Query& q : queries()) {
      std::vector<uint8_t> in = packet(q, ifindex), data(in.size());
      LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = data.data(), .data_size_in = static_cast<uint32_t>(in.size()),
                  .data_size_out = static_cast<uint32_t>(data.size()), .repeat = 1);
      if (bpf_prog_test_run_opts(fd, &opts) != 0) fail("error", std::string(prog) + ": BPF_PROG_TEST_RUN: " + std::strerror(errno), 1);
      out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    }
    out.close();
    if (!out) _exit(1);
  }
  _exit(0);
}

KernelSide run_kernel() {
  KernelSide k;
  if (kernel::skip_all()) {
    k.skip = kernel::unavailable();
    return k;
  }
  for (bpf_prog_type t : {BPF_PROG_TYPE_XDP, BPF_PROG_TYPE_SCHED_CLS})
    if (std::string why = kernel::refuses_helper(t, BPF_FUNC_fib_lookup); !why.empty()) {
      k.skip = why;
      return k;
    }
  if (std::system("ip -V > /dev/null 2>&1") != 0) {
    k.skip = "iproute2's ip is not installed";
    return k;
  }
  const std::string dir = temp_path("fib_netns");
  REQUIRE(std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()) == 0);
  std::fflush(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) kernel_child(dir, program_path("fib"));
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    k.skip = slurp(dir + "/skip");
    return k;
  }
  if (WEXITSTATUS(status) != 0) FAIL(slurp(dir + "/error"));
  for (const char* name : {"addr", "route4", "route6", "neigh"}) k.dumps[name] = slurp(dir + "/" + name + ".json");
  for (const char* prog : {"fib_probe", "fib_probe_tc"}) {
    const std::string results = slurp(dir + "/results_" + prog);
    size_t at = 0;
    for (const Query& q : queries()) {
      const size_t n = 14 + (q.dst.find(':') != std::string::npos ? 40 : 20) + 96;
      REQUIRE(at + n <= results.size());
      k.results[prog].push_back(std::vector<uint8_t>(results.begin() + static_cast<long>(at), results.begin() + static_cast<long>(at + n)));
      at += n;
    }
  }
  if (std::getenv("EBPFVM_TEST_KERNEL_CORRUPT")) k.results["fib_probe"][0][k.results["fib_probe"][0].size() / 2] ^= 1;  // must fail
  return k;
}

// The helper's return and struct bpf_fib_lookup, as a reader wants them in a failure.
std::string decode(const std::vector<uint8_t>& p) {
  const size_t l3 = p[12] == 0x86 ? 40 : 20, at = 14 + l3 + 16;
  int64_t rc;
  std::memcpy(&rc, p.data() + at, 8);
  std::string s = "rc " + std::to_string(rc) + " params";
  char b[4];
  for (size_t i = 0; i < 64; ++i) {
    std::snprintf(b, sizeof b, i % 4 ? "%02x" : " %02x", p[at + 8 + i]);
    s += b;
  }
  return s;
}

}  // namespace

TEST_CASE("fib: bpf_fib_lookup answers as the kernel's, on a network iproute2 describes", "[kernel]") {
  KernelSide k = run_kernel();
  if (!k.skip.empty()) {
    std::printf("SKIP fib.o against the kernel: %s\n", k.skip.c_str());
    return;
  }
  LoadOptions o;
  REQUIRE(o.env.fib.add_links_json(k.dumps["addr"]).ok());
  for (const char* r : {"route4", "route6"}) {
    auto ok = o.env.fib.add_routes_json(k.dumps[r]);
    INFO(k.dumps[r]);
    REQUIRE(ok.ok());
  }
  REQUIRE(o.env.fib.add_neighbours_json(k.dumps["neigh"]).ok());
  // What `ip -j` does not show: forwarding as the sysctls set it, and the MTU lock.
  for (FibLink& l : o.env.fib.links) l.forwarding = l.name != "v3";
  for (FibRoute& r : o.env.fib.routes) r.mtu_locked = r.mtu == 1300;
  std::map<std::string, uint32_t> ifindex;
  for (const FibLink& l : o.env.fib.links) ifindex[l.name] = l.ifindex;
  Object obj = open_loaded("fib", o);
  size_t compared = 0;
  for (const char* name : {"fib_probe", "fib_probe_tc"}) {
    INFO(name);
    auto prog = obj.program(name);
    REQUIRE(prog.ok());
    for (size_t i = 0; i < queries().size(); ++i) {
      const Query& q = queries()[i];
      INFO(q.what());
      const std::vector<uint8_t> in = packet(q, ifindex);
      std::vector<uint8_t> mine;
      if (prog->type() == ProgType::Xdp) {
        XdpBuffer buf(in);
        REQUIRE(prog->run_xdp(buf, {}).ok());
        mine.assign(buf.packet().begin(), buf.packet().end());
      } else {
        SkbBuffer skb(in);
        REQUIRE(prog->run_skb(skb).ok());
        mine.assign(skb.packet().begin(), skb.packet().end());
      }
      const std::vector<uint8_t>& theirs = k.results[name][i];
      int64_t kernel_rc;
      std::memcpy(&kernel_rc, theirs.data() + 14 + (q.dst.find(':') != std::string::npos ? 40 : 20) + 16, 8);
      // Flags newer than the running kernel (SKIP_NEIGH 6.3?, TBID, SRC 6.5...): it says -EINVAL.
      if (kernel_rc == -22 && (q.flags & ~(kDirect | kOutput)) && q.flags != 0x80 && decode(mine) != decode(theirs)) {
        std::printf("SKIP fib.o %s query %s: the running kernel does not know flag %#x\n", name, q.what().c_str(), q.flags);
        continue;
      }
      INFO("kernel:  " << decode(theirs));
      INFO("ebpfvm:  " << decode(mine));
      CHECK(mine == theirs);
      ++compared;
    }
  }
  kernel::count_compared(program_path("fib"), compared);
}

TEST_CASE("fib: iproute2's JSON read, its errors named") {
  Fib f;
  CHECK(f.add_routes_json(R"([{"dst":"10.0.0.0/8","dev":"eth0"}])").error().message ==
        "routes: route 0 (10.0.0.0/8): dev 'eth0' is not among the links (give them first: ip -j addr show)");
  REQUIRE(f.add_links_json(R"([{"ifindex":2,"ifname":"eth0","mtu":9000,"address":"02:00:00:00:00:02",
      "addr_info":[{"family":"inet","local":"10.0.0.1","prefixlen":8},{"family":"inet6","local":"fe80::1","prefixlen":64,"tentative":true}]}])")
              .ok());
  REQUIRE(f.links.size() == 1);
  CHECK(f.links[0].mtu == 9000);
  CHECK(f.links[0].mac == std::array<uint8_t, 6>{2, 0, 0, 0, 0, 2});
  CHECK(f.links[0].addresses.size() == 1);  // the tentative one is not usable yet
  CHECK(f.add_links_json(R"([{"ifindex":2,"ifname":"eth1"}])").error().message ==
        "links: entry 0 (eth1): a second link with ifindex 2 or name 'eth1'");
  CHECK(f.add_links_json(R"({"ifindex":3})").error().message == "links: expected a JSON array, as `ip -j` prints");
  CHECK(f.add_links_json(R"([{"ifname":"x"}])").error().message == "links: entry 0 (x): needs \"ifindex\" and \"ifname\"");
  CHECK(f.add_links_json("[{").error().message.find("JSON:") == 0);

  CHECK(f.add_routes_json(R"([{"dst":"10.0.0.0/33","dev":"eth0"}])").error().message ==
        "routes: route 0 (10.0.0.0/33): \"dst\" '10.0.0.0/33' has a bad prefix length");
  CHECK(f.add_routes_json(R"([{"type":"weird","dst":"10.0.0.0/8"}])").error().message == "routes: route 0 (10.0.0.0/8): unknown route type 'weird'");
  CHECK(f.add_routes_json(R"([{"dst":"10.0.0.0/8"}])").error().message == "routes: route 0 (10.0.0.0/8): a unicast route without \"dev\"");
  CHECK(f.add_routes_json(R"([{"dst":"default","dev":"eth0"}])").error().message.find("its family is unknown") != std::string::npos);
  CHECK(f.add_routes_json(R"([{"dst":"10.1.0.0/16","dev":"eth0"},{"dst":"10.0.0.0/8","gateway":"10.0.0.300","dev":"eth0"}])").error().message ==
        "routes: route 1 (10.0.0.0/8): gateway '10.0.0.300' is not an address");
  CHECK(f.routes.empty());  // nothing of a listing that failed
  REQUIRE(f.add_routes_json(R"([{"dst":"default","dev":"eth0"},{"dst":"10.0.0.0/8","dev":"eth0","table":"100","metric":5,
      "metrics":[{"mtu":1400,"lock":["mtu"]}],"nexthops":[{"gateway":"10.0.0.2","dev":"eth0"}]}])").ok());
  REQUIRE(f.routes.size() == 2);
  CHECK(f.routes[0].family == 2);  // "default" takes its listing's family
  CHECK((f.routes[1].table == 100 && f.routes[1].metric == 5 && f.routes[1].mtu == 1400 && f.routes[1].mtu_locked && f.routes[1].gateway->bytes[3] == 2));

  CHECK(f.add_neighbours_json(R"([{"dst":"10.0.0.2","dev":"eth0","lladdr":"02:00:00:00:00:zz","state":["REACHABLE"]}])").error().message ==
        "neighbours: entry 0 (10.0.0.2): lladdr '02:00:00:00:00:zz' is not an Ethernet address");
  REQUIRE(f.add_neighbours_json(R"([{"dst":"10.0.0.2","dev":"eth0","lladdr":"02:00:00:00:00:09","state":["STALE"]},
      {"dst":"10.0.0.3","dev":"eth0","state":["FAILED"]},{"dst":"10.0.0.4","dev":"eth0","lladdr":"02:00:00:00:00:04","state":["INCOMPLETE"]}])")
              .ok());
  REQUIRE(f.neighbours.size() == 3);
  CHECK(f.neighbours[0].valid);
  CHECK_FALSE(f.neighbours[1].valid);
  CHECK_FALSE(f.neighbours[2].valid);
}

TEST_CASE("fib: this host's links, as ip -j addr lists them") {
  Fib f;
  REQUIRE(f.add_host_links().ok());
  bool lo = false;
  for (const FibLink& l : f.links)
    if (l.name == "lo") lo = l.ifindex == if_nametoindex("lo") && l.mtu > 0;
  CHECK(lo);
  CHECK(f.add_host_links().error().message.find("is given already") != std::string::npos);
}
