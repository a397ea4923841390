// Packets for tests: Ethernet frames with IPv4/IPv6, TCP/UDP, optional VLAN tag. Header checksums
// are not computed: no test program checks them.
#pragma once

#include <array>
#include <cstring>
#include <stdexcept>
#include <cstdint>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace ebpfvm::test {

inline std::string program_path(const std::string& name) { return std::string(EBPFVM_TEST_PROGRAMS) + "/" + name + ".o"; }

// Opens tests/programs/<name>.o, loads it with `opts`, or fails the test.
Object open_loaded(const std::string& name, const LoadOptions& opts = {});

struct PacketSpec {
  bool ipv6 = false;
  uint8_t l4 = 17;  // IPPROTO_UDP; 6 for TCP, anything else for none
  std::array<uint8_t, 4> src4{10, 0, 0, 1};
  std::array<uint8_t, 4> dst4{10, 0, 0, 2};
  uint16_t sport = 1234;
  uint16_t dport = 53;
  bool vlan = false;
  size_t payload = 18;
};

std::vector<uint8_t> make_packet(const PacketSpec& s);
// Bytes 0, 1, 2, ... (mod 256).
std::vector<uint8_t> counting_bytes(size_t n);
// An Ethernet frame of another ethertype (ARP), `len` bytes.
std::vector<uint8_t> make_arp(size_t len = 42);

template <class T>
T read_as(std::span<const uint8_t> b, size_t off = 0) {
  if (off + sizeof(T) > b.size()) throw std::out_of_range("read_as past the end of the bytes");
  T v{};
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

// res[i] of a program's `__s64 res[N]` in .bss.
int64_t res_at(const Object& obj, size_t i);

}  // namespace ebpfvm::test
