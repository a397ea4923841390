// A tiny packet application embedding ebpfvm: load the bundled XDP firewall, configure it, run it
// over generated traffic, and read its maps, all through the library's API.
//
//   packet_loop [FIREWALL.o] [PACKETS]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace {

// Ethernet + IPv4 + TCP/UDP with the given source, protocol and destination port; ARP when proto is 0.
std::vector<uint8_t> frame(uint8_t src, uint8_t proto, uint16_t dport) {
  std::vector<uint8_t> f = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, proto ? uint8_t{0x00} : uint8_t{0x06}};
  if (!proto) {
    f.resize(42, 0);
    return f;
  }
  const uint8_t ip[20] = {0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0, 192, 0, 2, src, 198, 51, 100, 1};
  f.insert(f.end(), ip, ip + 20);
  const uint8_t l4[20] = {0x30, 0x39, static_cast<uint8_t>(dport >> 8), static_cast<uint8_t>(dport), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02};
  f.insert(f.end(), l4, l4 + (proto == 6 ? 20 : 8));
  f.resize(64, 0);
  return f;
}

int fail(const ebpfvm::Error& e) {
  std::fprintf(stderr, "packet_loop: %s\n", e.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : EBPFVM_EXAMPLE_FIREWALL;
  const long count = argc > 2 ? std::atol(argv[2]) : 100000;

  auto obj = ebpfvm::Object::open(path);
  if (!obj) return fail(obj.error());
  // Configuration the program reads as constants: at most 5000 packets per source.
  if (auto r = obj->set_global("cfg_max_packets", ebpfvm::as_bytes<uint64_t>(5000)); !r) return fail(r.error());
  if (auto r = obj->load({}); !r) return fail(r.error());
  auto prog = obj->program("xdp_firewall");
  if (!prog) return fail(prog.error());
  auto allowed = obj->map("allowed_tcp");
  for (uint16_t port : {80, 443})
    if (auto r = allowed->update(ebpfvm::as_bytes(port), std::vector<uint8_t>{1}); !r) return fail(r.error());

  // Traffic: source 1 floods; the others send web, DNS, NTP, SSH and ARP.
  struct Kind {
    uint8_t proto;
    uint16_t port;
  };
  const Kind kinds[] = {{6, 443}, {6, 80}, {17, 53}, {17, 123}, {6, 22}, {0, 0}};
  ebpfvm::XdpBuffer buf;
  long actions[5] = {};
  for (long i = 0; i < count; ++i) {
    const uint8_t src = i % 4 == 0 ? 1 : static_cast<uint8_t>(2 + i % 50);
    const Kind& k = kinds[i % 6];
    buf.assign(frame(src, k.proto, k.port));
    auto res = prog->run_xdp(buf);
    if (!res) return fail(res.error());
    ++actions[static_cast<int>(res->action)];
  }
  std::printf("%ld packets through %s (%s)\n", count, prog->name().c_str(), path.c_str());
  for (int a = 0; a <= 4; ++a)
    std::printf("  %-13s %8ld\n", std::string(ebpfvm::to_string(static_cast<ebpfvm::XdpAction>(a))).c_str(), actions[a]);
  std::printf("sources tracked: %zu\n", obj->map("sources")->keys().size());
  std::printf("verdicts map (bpftool -j map dump shape):\n%s\n", obj->map("verdicts")->dump_json().c_str());
  return 0;
}
