// Writes a deterministic capture of mixed traffic for the examples, tests and benchmarks, so no
// binary capture is checked in: Ethernet (a tenth VLAN-tagged), IPv4 and IPv6, TCP/UDP/ICMP, 60 to
// 1514 bytes, from a pool of 200 sources, one of which sends a fifth of all packets.
// Written with libpcap, as any capture tool would write it.
//
//   gen_pcap OUT.pcap [COUNT] [SEED]
#include <pcap/pcap.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Rng {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  uint32_t below(uint32_t n) { return next() % n; }
};

void be16(std::vector<uint8_t>& p, uint16_t v) {
  p.push_back(static_cast<uint8_t>(v >> 8));
  p.push_back(static_cast<uint8_t>(v));
}

std::vector<uint8_t> make(Rng& r) {
  std::vector<uint8_t> p = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02};
  if (r.below(10) == 0) {
    be16(p, 0x8100);
    be16(p, static_cast<uint16_t>(1 + r.below(4000)));
  }
  const bool v6 = r.below(5) == 0;
  const uint32_t kind = r.below(20);  // 0..11 TCP, 12..18 UDP, 19 ICMP
  const uint8_t proto = kind < 12 ? 6 : kind < 19 ? 17 : (v6 ? 58 : 1);
  const uint32_t src = r.below(5) == 0 ? 1 : 2 + r.below(199);
  const size_t l4hdr = proto == 6 ? 20 : 8;
  const size_t iphdr = v6 ? 40 : 20;
  const size_t min_len = p.size() + 2 + iphdr + l4hdr;
  const size_t total = std::max<size_t>(min_len, 60 + r.below(1514 - 60 + 1));
  be16(p, v6 ? 0x86dd : 0x0800);
  const uint16_t ip_payload = static_cast<uint16_t>(total - p.size() - iphdr);
  if (!v6) {
    p.insert(p.end(), {0x45, 0});
    be16(p, static_cast<uint16_t>(iphdr + ip_payload));
    p.insert(p.end(), {0, 0, 0x40, 0, 64, proto, 0, 0, 10, 1, static_cast<uint8_t>(src >> 8), static_cast<uint8_t>(src), 10, 2, 0, 1});
  } else {
    p.insert(p.end(), {0x60, 0, 0, 0});
    be16(p, ip_payload);
    p.insert(p.end(), {proto, 64, 0x20, 0x01, 0x0d, 0xb8});
    for (int i = 0; i < 12; ++i) p.push_back(i == 11 ? static_cast<uint8_t>(src) : 0);
    p.insert(p.end(), {0x20, 0x01, 0x0d, 0xb8});
    for (int i = 0; i < 12; ++i) p.push_back(i == 11 ? 1 : 0);
  }
  static const uint16_t kPorts[] = {80, 443, 53, 22, 123, 8080, 25, 3306};
  const uint16_t dport = kPorts[r.below(8)];
  if (proto == 6 || proto == 17) {
    be16(p, static_cast<uint16_t>(1024 + r.below(60000)));
    be16(p, dport);
    if (proto == 6) p.insert(p.end(), {0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0});
    else {
      be16(p, static_cast<uint16_t>(ip_payload));
      be16(p, 0);
    }
  } else {
    p.insert(p.end(), {static_cast<uint8_t>(v6 ? 128 : 8), 0, 0, 0, 0, 1, 0, 1});
  }
  while (p.size() < total) p.push_back(static_cast<uint8_t>(r.next()));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: gen_pcap OUT.pcap [COUNT] [SEED]\n");
    return 2;
  }
  const long count = argc > 2 ? std::atol(argv[2]) : 10000;
  Rng rng{argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 1};
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
  const std::string tmp = std::string(argv[1]) + ".tmp";
  pcap_dumper_t* out = pcap_dump_open(dead, tmp.c_str());
  if (!out) {
    std::fprintf(stderr, "gen_pcap: %s: %s\n", argv[1], pcap_geterr(dead));
    return 1;
  }
  for (long i = 0; i < count; ++i) {
    auto pkt = make(rng);
    pcap_pkthdr h{};
    h.ts.tv_sec = 1700000000 + i / 1000;
    h.ts.tv_usec = static_cast<suseconds_t>((i % 1000) * 1000);
    h.caplen = h.len = static_cast<bpf_u_int32>(pkt.size());
    pcap_dump(reinterpret_cast<u_char*>(out), &h, pkt.data());
  }
  pcap_dump_close(out);
  pcap_close(dead);
  if (std::rename(tmp.c_str(), argv[1]) != 0) {
    std::perror("gen_pcap: rename");
    return 1;
  }
  return 0;
}
