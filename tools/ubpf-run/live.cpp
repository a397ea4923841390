#include "live.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#ifdef EBPFVM_HAVE_XSK
#include "ebpfvm/xsk.hpp"
#endif

namespace ubpf {

ebpfvm::Result<std::pair<std::string, uint32_t>> parse_iface(const std::string& arg) {
  const size_t at = arg.rfind('@');
  if (at == std::string::npos) return std::pair{arg, 0u};
  const std::string q = arg.substr(at + 1);
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(q.c_str(), &end, 10);
  if (at == 0 || q.empty() || *end || errno || v > 255)
    return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--iface " + arg + ": expected IF or IF@QUEUE (queue 0 to 255)");
  return std::pair{arg.substr(0, at), static_cast<uint32_t>(v)};
}

size_t live_workers(const LiveConfig& cfg) { return std::max<size_t>(1, cfg.ifaces.size()); }

#ifndef EBPFVM_HAVE_XSK

ebpfvm::Result<LiveTotals> run_live(const ebpfvm::LoadedProgram&, const ebpfvm::Object&, const LiveConfig&) {
  return ebpfvm::make_error(ebpfvm::Errc::Unsupported, "this ubpf-run was built without libxdp: no AF_XDP (install libxdp-dev and rebuild)");
}
int replay(const ReplayConfig&) {
  std::fprintf(stderr, "ubpf-run: this ubpf-run was built without libxdp: no AF_XDP (install libxdp-dev and rebuild)\n");
  return 2;
}
void print_live_ports(const LiveTotals&) {}
std::string live_ports_json(const LiveTotals&) { return ""; }

#else

namespace {

using Clock = std::chrono::steady_clock;

uint64_t now_realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// What a worker counts, read by the main thread for the live lines (relaxed: a line may be a
// packet behind).
struct LiveCounters {
  std::array<std::atomic<uint64_t>, kMaxVerdicts> actions{}, action_bytes{};
  std::atomic<uint64_t> rx{0}, rx_bytes{0};
};

// A TAP device that XDP_PASS frames are written to, so they reach the kernel's stack.
class Tap {
 public:
  static ebpfvm::Result<Tap> open(const std::string& name) {
    const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return ebpfvm::make_error(ebpfvm::Errc::Io, "--pass-to-kernel " + name + ": /dev/net/tun: " + std::strerror(errno));
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
    if (name.size() >= IFNAMSIZ || ioctl(fd, TUNSETIFF, &ifr) < 0) {
      const int err = name.size() >= IFNAMSIZ ? ENAMETOOLONG : errno;
      ::close(fd);
      return ebpfvm::make_error(ebpfvm::Errc::Io, "--pass-to-kernel " + name + ": cannot open the TAP device: " + std::strerror(err));
    }
    return Tap(fd);
  }
  Tap(Tap&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ~Tap() {
    if (fd_ >= 0) ::close(fd_);
  }
  // One frame per write; a TAP device that is down drops it (EIO), which is what the kernel's
  // stack would do with a frame on a link that is down.
  bool write(std::span<const uint8_t> frame) const { return ::write(fd_, frame.data(), frame.size()) == static_cast<ssize_t>(frame.size()); }

 private:
  explicit Tap(int fd) : fd_(fd) {}
  int fd_ = -1;
};

struct Worker {
  ebpfvm::XskPort* port = nullptr;
  Totals totals;
  PortTotals pt;
  LiveCounters live;
  Clock::time_point first{}, last{};  // its first and last batch with frames
  std::optional<ebpfvm::Error> error;
};

void pin(std::thread& t, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(t.native_handle(), sizeof set, &set);
}

std::string rate(double v) {
  char b[32];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

// A line per port and interval, as xdp-bench prints them: packets and bits per second, and the
// rate of each verdict seen in the interval.
class RateLines {
 public:
  RateLines(const std::vector<Worker>& w, FILE* out)
      : w_(w), out_(out), prev_(w.size()), prev_actions_(w.size()), prev_action_bytes_(w.size()) {}
  void maybe_print(double elapsed, double interval) {
    const double dt = elapsed - last_;
    if (dt < interval) return;
    const Verdicts& verdicts = verdicts_for(ebpfvm::ProgType::Xdp);
    for (size_t i = 0; i < w_.size(); ++i) {
      const LiveCounters& c = w_[i].live;
      const uint64_t rx = c.rx.load(std::memory_order_relaxed), bytes = c.rx_bytes.load(std::memory_order_relaxed);
      std::string line;
      for (size_t a = 0; a < verdicts.names.size(); ++a) {
        const uint64_t v = c.actions[a].load(std::memory_order_relaxed);
        const uint64_t b = c.action_bytes[a].load(std::memory_order_relaxed);
        if (v != prev_actions_[i][a]) {
          char mbit[32];
          std::snprintf(mbit, sizeof mbit, " (%.2f Mbit/s)", static_cast<double>(b - prev_action_bytes_[i][a]) * 8 / dt / 1e6);
          line += "  " + verdicts.names[a] + " " + rate(static_cast<double>(v - prev_actions_[i][a]) / dt) + mbit;
        }
        prev_actions_[i][a] = v;
        prev_action_bytes_[i][a] = b;
      }
      std::fprintf(out_, "[%7.1fs] %-14s %8s pps %9.2f Mbit/s%s\n", elapsed, w_[i].pt.name.c_str(),
                   rate(static_cast<double>(rx - prev_[i].first) / dt).c_str(), static_cast<double>(bytes - prev_[i].second) * 8 / dt / 1e6,
                   line.c_str());
      prev_[i] = {rx, bytes};
    }
    std::fflush(out_);
    last_ = elapsed;
  }

 private:
  const std::vector<Worker>& w_;
  FILE* out_;
  double last_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> prev_;  // rx packets and bytes at the last line
  std::vector<std::array<uint64_t, kMaxVerdicts>> prev_actions_, prev_action_bytes_;
};

}  // namespace

ebpfvm::Result<LiveTotals> run_live(const ebpfvm::LoadedProgram& prog, const ebpfvm::Object& obj, const LiveConfig& cfg) {
  if (prog.type() != ebpfvm::ProgType::Xdp)
    return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--iface runs XDP programs; '" + prog.name() + "' is " + std::string(ebpfvm::to_string(prog.type())));
  ebpfvm::XskPortOptions base;
  if (cfg.xdp_mode == "native") base.attach = ebpfvm::XdpAttachMode::Native;
  else if (cfg.xdp_mode == "generic" || cfg.xdp_mode == "skb") base.attach = ebpfvm::XdpAttachMode::Generic;
  else if (cfg.xdp_mode != "auto")
    return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--xdp-mode " + cfg.xdp_mode + ": expected native, generic or auto");
  if (cfg.copy && cfg.zero_copy) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--copy and --zero-copy exclude each other");
  base.bind = cfg.copy ? ebpfvm::XskBindMode::Copy : cfg.zero_copy ? ebpfvm::XskBindMode::ZeroCopy : ebpfvm::XskBindMode::Auto;
  base.xsk_map = cfg.xsk_map;
  std::optional<Tap> tap;
  if (!cfg.pass_to_kernel.empty()) {
    auto t = Tap::open(cfg.pass_to_kernel);
    if (!t) return t.error();
    tap.emplace(std::move(*t));
  }
  std::vector<std::unique_ptr<ebpfvm::XskPort>> ports;
  for (const std::string& arg : cfg.ifaces) {
    auto parsed = parse_iface(arg);
    if (!parsed) return parsed.error();
    ebpfvm::XskPortOptions o = base;
    o.iface = parsed->first;
    o.queue = parsed->second;
    for (const auto& p : ports)
      if (p->iface() == o.iface && p->queue() == o.queue) return ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, "--iface " + arg + " is given twice");
    auto port = ebpfvm::XskPort::open(o);
    if (!port) return port.error();
    ports.push_back(std::move(*port));
  }
  std::vector<ebpfvm::XskPort*> all;
  for (auto& p : ports) all.push_back(p.get());
  std::vector<Worker> workers(ports.size());
  std::mutex write_mu;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> budget{cfg.count ? cfg.count : UINT64_MAX};  // frames not yet taken by a worker
  std::atomic<uint64_t> handled{0};
  const Verdicts& verdicts = verdicts_for(ebpfvm::ProgType::Xdp);
  auto work = [&](size_t i) {
    Worker& w = workers[i];
    ebpfvm::PacketLoopOptions lo;
    lo.worker = static_cast<uint32_t>(i);
    lo.on_frame = [&](const ebpfvm::FrameEvent& ev) {
      const size_t a = static_cast<size_t>(ev.result.action);
      const ebpfvm::RedirectTarget* target = ev.result.action == ebpfvm::XdpAction::Redirect ? &ev.result.redirect : nullptr;
      ++w.totals.packets;
      w.totals.bytes_in += ev.len_in;
      ++w.totals.actions[a];
      w.totals.action_bytes[a] += ev.len_in;
      if (target) ++w.totals.redirects[describe(*target)];
      w.live.actions[a].fetch_add(1, std::memory_order_relaxed);
      w.live.action_bytes[a].fetch_add(ev.len_in, std::memory_order_relaxed);
      w.live.rx.fetch_add(1, std::memory_order_relaxed);
      w.live.rx_bytes.fetch_add(ev.len_in, std::memory_order_relaxed);
      using F = ebpfvm::FrameEvent::Fate;
      w.pt.sent += ev.fate == F::Sent ? ev.copies : 0;
      w.pt.delivered += ev.fate == F::Delivered;
      w.pt.no_route += ev.fate == F::NoRoute;
      w.pt.full += ev.fate == F::Full;
      if (cfg.writer && cfg.write_actions[a]) {
        std::lock_guard lk(write_mu);
        cfg.writer->write(now_realtime_ns(), ev.packet, static_cast<uint32_t>(ev.packet.size()), "verdict: " + verdicts.names[a] + " on " + w.pt.name);
      }
    };
    if (tap)
      lo.on_pass = [&](std::span<const uint8_t> frame) { w.pt.passed_to_kernel += tap->write(frame); };
    ebpfvm::PacketLoop loop(prog, obj, {w.port}, all, std::move(lo));
    Clock::time_point idle_since{};
    while (!done.load(std::memory_order_relaxed)) {
      // --count: each batch takes what is left of the budget first, so the count is exact
      uint64_t left = budget.load(std::memory_order_relaxed), take = 0;
      do {
        take = std::min<uint64_t>(left, 64);
      } while (take && !budget.compare_exchange_weak(left, left - take, std::memory_order_relaxed));
      if (!take) {  // --count is taken: the run ends once the others' batches are done
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      // Without waiting: a worker must not sit on part of --count while its queue is quiet.
      auto n = loop.poll(0, static_cast<size_t>(take));
      if (!n) {
        w.error = n.error();
        done = true;
        break;
      }
      if (*n < take) budget.fetch_add(take - *n, std::memory_order_relaxed);
      handled.fetch_add(*n, std::memory_order_relaxed);
      if (*n) {
        w.last = Clock::now();
        if (w.first == Clock::time_point{}) w.first = w.last;
        idle_since = {};
      } else if (idle_since == Clock::time_point{}) {
        idle_since = Clock::now();  // look again for a while before sleeping (as PacketLoop::poll)
      } else if (Clock::now() - idle_since > std::chrono::microseconds(50)) {
        pollfd p{w.port->fd(), POLLIN, 0};
        (void)::poll(&p, 1, 50);
        idle_since = {};
      }
    }
  };
  for (size_t i = 0; i < ports.size(); ++i) {
    workers[i].port = ports[i].get();
    PortTotals& pt = workers[i].pt;
    pt.name = ports[i]->iface() + "@" + std::to_string(ports[i]->queue());
    pt.zero_copy = ports[i]->zero_copy();
    const auto m = ports[i]->attach_mode();
    pt.mode = m == ebpfvm::XdpAttachMode::Native ? "native" : m == ebpfvm::XdpAttachMode::Generic ? "generic" : "own program";
  }
  // Like tcpdump's: scripts wait for this line before sending.
  for (const Worker& w : workers)
    std::fprintf(stderr, "ubpf-run: listening on %s (%s, %s)\n", w.pt.name.c_str(),
                 w.pt.mode == "own program" ? "your XDP program's xskmap" : (w.pt.mode + " XDP").c_str(), w.pt.zero_copy ? "zero-copy" : "copy mode");
  std::fflush(stderr);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ports.size(); ++i) {
    threads.emplace_back(work, i);
    if (!cfg.cpus.empty()) pin(threads.back(), cfg.cpus[i % cfg.cpus.size()]);
  }
  RateLines lines(workers, cfg.live);
  while (!done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const bool all_done = cfg.count != 0 && handled.load() >= cfg.count;
    if ((cfg.stop && cfg.stop->load()) || (cfg.duration > 0 && elapsed >= cfg.duration) || all_done) break;
    if (cfg.interval > 0) lines.maybe_print(elapsed, cfg.interval);
  }
  done = true;
  for (auto& t : threads) t.join();
  LiveTotals out;
  Clock::time_point first = Clock::time_point::max(), last{};
  for (const Worker& w : workers)
    if (w.first != Clock::time_point{}) first = std::min(first, w.first), last = std::max(last, w.last);
  if (last != Clock::time_point{})
    out.active_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(last - first).count());
  for (size_t i = 0; i < workers.size(); ++i) {
    Worker& w = workers[i];
    if (w.error) return *w.error;
    Totals& t = out.totals;
    t.packets += w.totals.packets;
    t.bytes_in += w.totals.bytes_in;
    for (size_t a = 0; a < kMaxVerdicts; ++a) t.actions[a] += w.totals.actions[a], t.action_bytes[a] += w.totals.action_bytes[a];
    for (const auto& [k, v] : w.totals.redirects) t.redirects[k] += v;
    w.pt.rx = w.totals.packets;
    w.pt.rx_bytes = w.totals.bytes_in;
    w.pt.kernel_dropped = ports[i]->kernel_stats().rx_dropped;
    // Sends still in flight get a moment to leave before the sockets close.
    for (int k = 0; k < 100 && ports[i]->in_flight(); ++k) {
      ports[i]->flush_send();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    out.ports.push_back(w.pt);
  }
  out.totals.wall_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  out.totals.stopped = cfg.stop && cfg.stop->load();
  return out;
}

void print_live_ports(const LiveTotals& t) {
  if (t.active_ns)
    std::printf("traffic  %.0f packets/s while it flowed (%.3f s from the first batch to the last)\n",
                static_cast<double>(t.totals.packets) * 1e9 / static_cast<double>(t.active_ns), t.active_ns / 1e9);
  std::printf("\n%-16s %-8s %-5s %12s %10s %10s %10s %8s %8s %10s\n", "interface", "xdp", "bind", "received", "sent", "to xsk", "to kernel", "no route",
              "full", "kernel drop");
  for (const PortTotals& p : t.ports)
    std::printf("%-16s %-8s %-5s %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %10" PRIu64 "\n", p.name.c_str(),
                p.mode.c_str(), p.zero_copy ? "zc" : "copy", p.rx, p.sent, p.delivered, p.passed_to_kernel, p.no_route, p.full, p.kernel_dropped);
}

std::string live_ports_json(const LiveTotals& t) {
  std::ostringstream s;
  // packets per second while traffic flowed: the first batch's packets arrived before the span began
  const double active = t.active_ns ? static_cast<double>(t.totals.packets) * 1e9 / static_cast<double>(t.active_ns) : 0.0;
  s << ",\"active_ns\":" << t.active_ns << ",\"active_packets_per_second\":" << active << ",\"interfaces\":[";
  for (size_t i = 0; i < t.ports.size(); ++i) {
    const PortTotals& p = t.ports[i];
    s << (i ? "," : "") << "{\"interface\":\"" << p.name << "\",\"xdp_mode\":\"" << p.mode << "\",\"zero_copy\":" << (p.zero_copy ? "true" : "false")
      << ",\"received\":" << p.rx << ",\"received_bytes\":" << p.rx_bytes << ",\"sent\":" << p.sent << ",\"delivered\":" << p.delivered
      << ",\"passed_to_kernel\":" << p.passed_to_kernel << ",\"no_route\":" << p.no_route << ",\"full\":" << p.full
      << ",\"kernel_dropped\":" << p.kernel_dropped << "}";
  }
  s << "]";
  return s.str();
}

int replay(const ReplayConfig& cfg) {
  ebpfvm::XskPortOptions o;
  o.iface = cfg.iface;
  o.queue = cfg.queue;
  o.receive = false;
  o.bind = cfg.copy ? ebpfvm::XskBindMode::Copy : cfg.zero_copy ? ebpfvm::XskBindMode::ZeroCopy : ebpfvm::XskBindMode::Auto;
  auto port = ebpfvm::XskPort::open(o);
  if (!port) {
    std::fprintf(stderr, "ubpf-run: replay: %s\n", port.error().to_string().c_str());
    return 2;
  }
  ebpfvm::XskPort& p = **port;
  uint64_t sent = 0, bytes = 0, too_big = 0;
  const auto start = Clock::now();
  auto stopped = [&] { return cfg.stop && cfg.stop->load(); };
  for (uint64_t loop = 0; (cfg.loops == 0 || loop < cfg.loops) && !stopped(); ++loop) {
    auto in = CaptureReader::open(cfg.capture, cfg.stop);
    if (!in) {
      std::fprintf(stderr, "ubpf-run: replay: %s\n", in.error().to_string().c_str());
      return 2;
    }
    Packet pk;
    for (;;) {
      if (stopped() || (cfg.count && sent >= cfg.count)) break;
      auto more = (*in)->next(pk);
      if (!more) {
        std::fprintf(stderr, "ubpf-run: replay: %s\n", more.error().to_string().c_str());
        return 2;
      }
      if (!*more) break;
      if (cfg.rate > 0) {  // packet n leaves at n / rate seconds
        const auto due = start + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(sent) * 1e9 / cfg.rate));
        while (Clock::now() < due) {
          p.flush();
          if (due - Clock::now() > std::chrono::microseconds(100)) std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
      }
      bool ok = true;
      if (pk.data.size() > 3840) {  // the frame leaves a page's headroom: larger ones cannot be sent
        ++too_big;
        ok = false;
      }
      while (ok && !p.send(pk.data)) {
        p.flush();
        if (stopped()) break;
      }
      if (ok && !stopped()) ++sent, bytes += pk.data.size();
      (*in)->release((*in)->offset());
    }
    if (cfg.count && sent >= cfg.count) break;
  }
  // Every frame out before the socket closes (a closed socket's frames are lost).
  for (int i = 0; i < 2000 && p.in_flight(); ++i) {
    p.flush();
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const auto ks = p.kernel_stats();
  if (cfg.json)
    std::printf("{\"interface\":\"%s\",\"queue\":%u,\"zero_copy\":%s,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"too_big\":%" PRIu64
                ",\"tx_invalid\":%" PRIu64 ",\"unsent\":%u,\"seconds\":%.6f,\"packets_per_second\":%.1f,\"interrupted\":%s}\n",
                cfg.iface.c_str(), cfg.queue, p.zero_copy() ? "true" : "false", sent, bytes, too_big, ks.tx_invalid, p.in_flight(), secs,
                secs > 0 ? static_cast<double>(sent) / secs : 0.0, stopped() ? "true" : "false");
  else
    std::printf("sent %" PRIu64 " packets (%" PRIu64 " bytes) out of %s@%u in %.3f s: %s pps (%s)%s%s\n", sent, bytes, cfg.iface.c_str(), cfg.queue, secs,
                rate(secs > 0 ? static_cast<double>(sent) / secs : 0).c_str(), p.zero_copy() ? "zero-copy" : "copy mode",
                too_big ? (", " + std::to_string(too_big) + " too large to send").c_str() : "", stopped() ? " (interrupted)" : "");
  if (p.in_flight()) std::fprintf(stderr, "ubpf-run: replay: %u packets were not sent before the socket closed\n", p.in_flight());
  if (ks.tx_invalid) std::fprintf(stderr, "ubpf-run: replay: the kernel refused %" PRIu64 " descriptors as invalid\n", ks.tx_invalid);
  return stopped() ? 128 + cfg.stop->load() : 0;
}

#endif

}  // namespace ubpf
