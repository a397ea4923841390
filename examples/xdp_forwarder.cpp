// A DPDK-free two-port forwarder embedding ebpfvm: an XDP program (examples/xdp_l2fwd.c by
// default) runs in user space on every frame that arrives on either interface, through AF_XDP,
// and what it redirects through its devmap leaves by the other interface. One thread per port.
//
//   xdp_forwarder IF_A IF_B [--prog OBJ.o] [--block IPV4]... [--duration S] [--generic] [--copy] [--interp]
//
// The program's `tx_port` map is filled so that A forwards to B and B to A; `--block` puts
// sources in its `blocked` map. A line per second shows the rates; Ctrl-C (or --duration) stops,
// detaches everything and prints the totals and the program's per-port counters.
#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "ebpfvm/xsk.hpp"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

int fail(const std::string& what, const ebpfvm::Error& e) {
  std::fprintf(stderr, "xdp_forwarder: %s: %s\n", what.c_str(), e.to_string().c_str());
  return 1;
}

struct PortCounts {
  std::atomic<uint64_t> rx{0}, forwarded{0}, dropped{0}, passed{0}, other{0};
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> ifaces, blocks;
  std::string object = EBPFVM_EXAMPLE_L2FWD;
  double duration = 0;
  ebpfvm::XskPortOptions base;
  ebpfvm::Engine engine = ebpfvm::Engine::Jit;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--prog" && has_value) object = argv[++i];
    else if (a == "--block" && has_value) blocks.push_back(argv[++i]);
    else if (a == "--duration" && has_value) duration = std::atof(argv[++i]);
    else if (a == "--generic") base.attach = ebpfvm::XdpAttachMode::Generic;
    else if (a == "--copy") base.bind = ebpfvm::XskBindMode::Copy;
    else if (a == "--interp") engine = ebpfvm::Engine::Interpreter;
    else if (a.rfind("--", 0) != 0) ifaces.push_back(a);
    else {
      std::fprintf(stderr, "xdp_forwarder: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (ifaces.size() != 2) {
    std::fprintf(stderr, "usage: xdp_forwarder IF_A IF_B [--prog OBJ.o] [--block IPV4]... [--duration S] [--generic] [--copy] [--interp]\n");
    return 2;
  }

  // The program, with one per-CPU slot per port thread.
  auto obj = ebpfvm::Object::open(object);
  if (!obj) return fail(object, obj.error());
  ebpfvm::LoadOptions lo;
  lo.engine = engine;  // the JIT, unless --interp (a host that refuses executable memory)
  lo.workers = 2;
  if (auto r = obj->load(lo); !r) return fail(object, r.error());
  auto prog = obj->program("xdp_l2fwd");
  if (!prog) return fail(object, prog.error());

  // The ports: opening one attaches a redirect to its interface's queue 0.
  std::vector<std::unique_ptr<ebpfvm::XskPort>> ports;
  for (const std::string& name : ifaces) {
    ebpfvm::XskPortOptions o = base;
    o.iface = name;
    auto p = ebpfvm::XskPort::open(o);
    if (!p) return fail(name, p.error());
    ports.push_back(std::move(*p));
  }
  // A -> B and B -> A, by ifindex, as a control plane would write them with bpf_map_update_elem.
  auto tx_port = obj->map("tx_port");
  if (!tx_port) return fail(object, tx_port.error());
  for (size_t i = 0; i < 2; ++i)
    if (auto r = tx_port->update(ebpfvm::as_bytes(ports[i]->ifindex()), ebpfvm::as_bytes(ports[1 - i]->ifindex())); !r)
      return fail("tx_port", r.error());
  auto blocked = obj->map("blocked");
  for (const std::string& b : blocks) {
    in_addr a{};
    if (!blocked || inet_pton(AF_INET, b.c_str(), &a) != 1) {
      std::fprintf(stderr, "xdp_forwarder: --block %s: not an IPv4 address\n", b.c_str());
      return 2;
    }
    if (auto r = blocked->update(ebpfvm::as_bytes(a.s_addr), ebpfvm::as_bytes(uint64_t{0})); !r) return fail("blocked", r.error());
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  PortCounts counts[2];
  std::vector<ebpfvm::XskPort*> all{ports[0].get(), ports[1].get()};
  std::atomic<bool> failed{false};
  auto run_port = [&](size_t i) {
    ebpfvm::PacketLoopOptions po;
    po.worker = static_cast<uint32_t>(i);
    po.on_frame = [&counts, i](const ebpfvm::FrameEvent& ev) {
      PortCounts& c = counts[i];
      c.rx.fetch_add(1, std::memory_order_relaxed);
      if (ev.fate == ebpfvm::FrameEvent::Fate::Sent) c.forwarded.fetch_add(1, std::memory_order_relaxed);
      else if (ev.result.action == ebpfvm::XdpAction::Drop) c.dropped.fetch_add(1, std::memory_order_relaxed);
      else if (ev.result.action == ebpfvm::XdpAction::Pass) c.passed.fetch_add(1, std::memory_order_relaxed);
      else c.other.fetch_add(1, std::memory_order_relaxed);
    };
    ebpfvm::PacketLoop loop(*prog, *obj, {all[i]}, all, std::move(po));
    while (!g_stop.load(std::memory_order_relaxed))
      if (auto n = loop.poll(50); !n) {
        std::fprintf(stderr, "xdp_forwarder: %s: %s\n", all[i]->iface().c_str(), n.error().to_string().c_str());
        failed = g_stop = true;
      }
  };
  std::thread threads[2] = {std::thread(run_port, 0), std::thread(run_port, 1)};
  std::printf("forwarding %s <-> %s (%s XDP, %s)\n", ifaces[0].c_str(), ifaces[1].c_str(),
              ports[0]->attach_mode() == ebpfvm::XdpAttachMode::Native ? "native" : "generic", ports[0]->zero_copy() ? "zero-copy" : "copy mode");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  uint64_t last[2] = {};
  while (!g_stop) {
    for (int k = 0; k < 50 && !g_stop; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (duration > 0 && t >= duration) break;
    if (g_stop) break;
    for (size_t i = 0; i < 2; ++i) {
      const uint64_t rx = counts[i].rx.load();
      std::printf("[%6.1fs] %s -> %s: %llu pps\n", t, ifaces[i].c_str(), ifaces[1 - i].c_str(), static_cast<unsigned long long>(rx - last[i]));
      last[i] = rx;
    }
    std::fflush(stdout);
  }
  g_stop = true;
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < 2; ++i)
    for (int k = 0; k < 100 && ports[i]->in_flight(); ++k) {
      ports[i]->flush_send();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  for (size_t i = 0; i < 2; ++i)
    std::printf("%s: received %llu, forwarded %llu, dropped %llu, passed %llu, other %llu\n", ifaces[i].c_str(),
                static_cast<unsigned long long>(counts[i].rx.load()), static_cast<unsigned long long>(counts[i].forwarded.load()),
                static_cast<unsigned long long>(counts[i].dropped.load()), static_cast<unsigned long long>(counts[i].passed.load()),
                static_cast<unsigned long long>(counts[i].other.load()));
  if (blocked)
    for (const auto& key : blocked->keys()) {
      auto v = blocked->lookup(key);
      uint64_t hits = 0;
      if (v && v->size() == 8) std::memcpy(&hits, v->data(), 8);
      char text[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, key.data(), text, sizeof text);
      std::printf("blocked %s: %llu packets\n", text, static_cast<unsigned long long>(hits));
    }
  return failed ? 1 : 0;
}
