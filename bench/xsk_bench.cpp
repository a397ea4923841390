// The example firewall on live traffic, in the same run: ebpfvm in user space through AF_XDP (the
// library's XskPort and PacketLoop, and the `ubpf-run --iface` process) against the same object
// attached to the kernel's XDP hook of the same veth. A network namespace of its own (unshare),
// a veth pair, and a generator thread sending a capture out of one end through AF_XDP as fast as
// the socket takes it; the other end runs the firewall, one way then the other, round after round.
//
//   xsk_bench [--mode generic|native] [--packets N] [--rounds R]
//
// Each figure is packets per second while traffic flowed: from the first packet the receiver
// handled to the last. The kernel keeps pace with this generator, so its figure is at most the
// offered rate, also printed: where ebpfvm's equals it too, the ratio says only that both kept up.
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "ebpfvm/xsk.hpp"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "xsk_bench: %s\n", why.c_str());
  std::exit(1);
}

void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &s);
  (void)pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

// gen_pcap's output: a classic pcap file in this host's byte order (libpcap's headers would clash
// with <linux/bpf.h> here).
std::vector<std::vector<uint8_t>> read_capture(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string b{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::vector<std::vector<uint8_t>> out;
  for (size_t at = 24; at + 16 <= b.size();) {
    uint32_t caplen;
    std::memcpy(&caplen, b.data() + at + 8, 4);
    at += 16;
    if (at + caplen > b.size()) break;
    out.emplace_back(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + caplen));
    at += caplen;
  }
  if (out.empty()) die(path + ": no packets");
  return out;
}

// Sends `n` packets (the capture, over and over) out of `port`, on CPU 1; returns the offered rate.
double generate(ebpfvm::XskPort& port, const std::vector<std::vector<uint8_t>>& packets, uint64_t n) {
  pin(1);
  const auto t0 = Clock::now();
  for (uint64_t i = 0; i < n; ++i)
    while (!port.send(packets[i % packets.size()])) port.flush();
  while (port.in_flight()) port.flush();
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Round {
  double pps = 0, offered = 0;
  uint64_t handled = 0;
  ebpfvm::XskPort::KernelStats socket;  // ebpfvm's: what the kernel could not hand the socket
};

Round run_ebpfvm(const ebpfvm::LoadedProgram& prog, const ebpfvm::Object& obj, ebpfvm::XdpAttachMode mode, ebpfvm::XskPort& tx,
                 const std::vector<std::vector<uint8_t>>& packets, uint64_t n) {
  ebpfvm::XskPortOptions o;
  o.iface = "vb";
  o.attach = mode;
  o.bind = ebpfvm::XskBindMode::Copy;
  auto rx = ebpfvm::XskPort::open(o);
  if (!rx) die(rx.error().to_string());
  std::atomic<uint64_t> handled{0};
  std::atomic<bool> stop{false};
  Clock::time_point first{}, last{};
  std::thread receiver([&] {
    pin(0);
    ebpfvm::PacketLoop loop(prog, obj, {rx->get()}, {}, {});
    while (!stop.load(std::memory_order_relaxed)) {
      auto got = loop.poll(10);
      if (!got) die(got.error().to_string());
      if (!*got) continue;
      last = Clock::now();
      if (first == Clock::time_point{}) first = last;
      handled.fetch_add(*got, std::memory_order_relaxed);
    }
  });
  Round r;
  r.offered = generate(tx, packets, n);
  // what the kernel delivered is handled once the receiver has been idle a while
  for (uint64_t seen = UINT64_MAX; seen != handled.load();) {
    seen = handled.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  receiver.join();
  r.handled = handled.load();
  r.socket = (*rx)->kernel_stats();
  r.pps = last > first ? static_cast<double>(r.handled) / std::chrono::duration<double>(last - first).count() : 0;
  return r;
}

// The same through the ubpf-run process as users run it (`--iface vb --cpus 0`): its JSON summary's
// packets and rate while traffic flowed. Stopped with SIGINT once the generator is done.
Round run_ubpf_run(const std::string& mode, ebpfvm::XskPort& tx, const std::vector<std::vector<uint8_t>>& packets, uint64_t n) {
  const std::string out_path = "/tmp/xsk_bench_ubpf_run.json";
  int err[2];
  if (pipe(err) != 0) die("pipe");
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, 1);
    dup2(err[1], 2);
    close(err[0]);
    execl(EBPFVM_UBPF_RUN, EBPFVM_UBPF_RUN, EBPFVM_EXAMPLE_FIREWALL, "--iface", "vb", "--xdp-mode", mode.c_str(), "--copy", "--cpus", "0",
          "--json", "--interval", "0", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err[1]);
  std::string said;
  while (said.find("listening on") == std::string::npos) {
    char buf[512];
    pollfd p{err[0], POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) die("ubpf-run did not start: " + said);
    const ssize_t got = read(err[0], buf, sizeof buf);
    if (got <= 0) die("ubpf-run did not start: " + said);
    said.append(buf, static_cast<size_t>(got));
  }
  Round r;
  r.offered = generate(tx, packets, n);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  close(err[0]);
  std::ifstream in(out_path);
  const std::string json{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const auto number = [&](const std::string& key) {
    const size_t at = json.find("\"" + key + "\":");
    return at == std::string::npos ? 0.0 : std::strtod(json.c_str() + at + key.size() + 3, nullptr);
  };
  r.handled = static_cast<uint64_t>(number("packets"));
  r.pps = number("active_packets_per_second");
  return r;
}

// The firewall counts every packet in its per-CPU `verdicts` map: the kernel's progress, polled.
uint64_t kernel_count(int map_fd) {
  const int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> v(static_cast<size_t>(cpus) * 2);  // struct { packets; bytes; } per CPU
  uint64_t total = 0;
  for (uint32_t k = 0; k < 5; ++k)
    if (bpf_map_lookup_elem(map_fd, &k, v.data()) == 0)
      for (int c = 0; c < cpus; ++c) total += v[static_cast<size_t>(c) * 2];
  return total;
}

Round run_kernel(const std::string& object, ebpfvm::XdpAttachMode mode, ebpfvm::XskPort& tx, const std::vector<std::vector<uint8_t>>& packets,
                 uint64_t n) {
  bpf_object* obj = bpf_object__open_file(object.c_str(), nullptr);
  if (!obj || bpf_object__load(obj)) die("the kernel did not load " + object);
  const int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "xdp_firewall"));
  const int map = bpf_map__fd(bpf_object__find_map_by_name(obj, "verdicts"));
  const int ifindex = static_cast<int>(if_nametoindex("vb"));
  const uint32_t flags = mode == ebpfvm::XdpAttachMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  if (bpf_xdp_attach(ifindex, prog, flags, nullptr)) die("cannot attach the firewall to vb");
  std::atomic<bool> stop{false};
  Clock::time_point first{}, last{};
  uint64_t counted = 0;
  std::thread watcher([&] {
    pin(0);
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t c = kernel_count(map);
      if (c != counted) {
        last = Clock::now();
        if (!counted) first = last;
        counted = c;
      }
    }
  });
  Round r;
  r.offered = generate(tx, packets, n);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  watcher.join();
  bpf_xdp_detach(ifindex, flags, nullptr);
  bpf_object__close(obj);
  r.handled = counted;
  r.pps = last > first ? static_cast<double>(counted) / std::chrono::duration<double>(last - first).count() : 0;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode_name = "generic";
  uint64_t n = 300'000;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mode") mode_name = argv[i + 1];
    else if (a == "--packets") n = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
  }
  const auto mode = mode_name == "native" ? ebpfvm::XdpAttachMode::Native : ebpfvm::XdpAttachMode::Generic;
  if (unshare(CLONE_NEWNET) != 0) {
    std::printf("SKIP xsk_bench: cannot make a network namespace (needs root): %s\n", std::strerror(errno));
    return 0;
  }
  if (std::system("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && "
                  "ip link add va type veth peer name vb && ip link set va up && ip link set vb up") != 0) {
    std::printf("SKIP xsk_bench: cannot make a veth pair\n");
    return 0;
  }
  const std::string capture = "/tmp/xsk_bench.pcap";
  if (std::system((std::string(EBPFVM_GEN_PCAP) + " " + capture + " 4096 > /dev/null").c_str()) != 0) die("gen_pcap failed");
  const auto packets = read_capture(capture);

  auto obj = ebpfvm::Object::open(EBPFVM_EXAMPLE_FIREWALL);
  if (!obj) die(obj.error().to_string());
  ebpfvm::LoadOptions lo;
  lo.engine = ebpfvm::Engine::Jit;
  if (auto r = obj->load(lo); !r) die(r.error().to_string());
  auto prog = obj->program("xdp_firewall");
  if (!prog) die(prog.error().to_string());
  ebpfvm::XskPortOptions to;
  to.iface = "va";
  to.receive = false;
  to.bind = ebpfvm::XskBindMode::Copy;
  auto tx = ebpfvm::XskPort::open(to);
  if (!tx) {
    std::printf("SKIP xsk_bench: %s\n", tx.error().to_string().c_str());
    return 0;
  }

  std::printf("firewall on a veth (%s XDP, AF_XDP copy mode), %llu packets a round from a generator thread; receiver on CPU 0\n",
              mode_name.c_str(), static_cast<unsigned long long>(n));
  std::printf("%-6s %14s %14s %14s %14s %14s %8s %8s\n", "round", "library pps", "(offered)", "ubpf-run pps", "kernel pps", "(offered)", "ratio", "ubpf-run");
  std::vector<double> ratios, cli_ratios;
  for (int round = 1; round <= rounds; ++round) {
    const Round e = run_ebpfvm(*prog, *obj, mode, **tx, packets, n);
    const Round u = run_ubpf_run(mode_name, **tx, packets, n);
    const Round k = run_kernel(EBPFVM_EXAMPLE_FIREWALL, mode, **tx, packets, n);
    const double ratio = k.pps > 0 ? e.pps / k.pps : 0, cli_ratio = k.pps > 0 ? u.pps / k.pps : 0;
    ratios.push_back(ratio);
    cli_ratios.push_back(cli_ratio);
    std::string lost;
    if (e.handled != n || u.handled != n || k.handled != n)
      lost = "  (not handled: " + std::to_string(n - std::min(n, e.handled)) + " / " + std::to_string(n - std::min(n, u.handled)) + " / " +
             std::to_string(n - std::min(n, k.handled)) +
             "; the socket's receive ring was full " + std::to_string(e.socket.rx_ring_full) + " times, its fill ring empty " +
             std::to_string(e.socket.fill_ring_empty) + ")";
    std::printf("%-6d %14.0f %14.0f %14.0f %14.0f %14.0f %8.2f %8.2f%s\n", round, e.pps, e.offered, u.pps, k.pps, k.offered, ratio, cli_ratio,
                lost.c_str());
  }
  for (auto* v : {&ratios, &cli_ratios}) std::sort(v->begin(), v->end());
  std::printf("library / kernel: median %.2f (min %.2f, max %.2f over %d rounds); ubpf-run --iface / kernel: median %.2f (min %.2f, max %.2f)\n",
              ratios[ratios.size() / 2], ratios.front(), ratios.back(), rounds, cli_ratios[cli_ratios.size() / 2], cli_ratios.front(),
              cli_ratios.back());
  return 0;
}
