#include "packets.hpp"

#include <catch2/catch.hpp>

namespace ebpfvm::test {

Object open_loaded(const std::string& name, const LoadOptions& opts) {
  auto obj = Object::open(program_path(name));
  if (!obj) FAIL(obj.error().to_string());
  auto r = obj->load(opts);
  if (!r) FAIL(r.error().to_string());
  return std::move(*obj);
}

std::vector<uint8_t> make_packet(const PacketSpec& s) {
  std::vector<uint8_t> p = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  auto be16 = [&](uint16_t v) {
    p.push_back(static_cast<uint8_t>(v >> 8));
    p.push_back(static_cast<uint8_t>(v));
  };
  if (s.vlan) {
    be16(0x8100);
    be16(100);
  }
  const size_t l4len = (s.l4 == 6 ? 20 : s.l4 == 17 ? 8 : 0) + s.payload;
  if (!s.ipv6) {
    be16(0x0800);
    p.insert(p.end(), {0x45, 0});
    be16(static_cast<uint16_t>(20 + l4len));
    p.insert(p.end(), {0, 0, 0x40, 0, 64, s.l4, 0, 0});
    p.insert(p.end(), s.src4.begin(), s.src4.end());
    p.insert(p.end(), s.dst4.begin(), s.dst4.end());
  } else {
    be16(0x86dd);
    p.insert(p.end(), {0x60, 0, 0, 0});
    be16(static_cast<uint16_t>(l4len));
    p.insert(p.end(), {s.l4, 64});
    for (int i = 0; i < 32; ++i) p.push_back(static_cast<uint8_t>(i == 15 ? 1 : i == 31 ? 2 : i == 0 || i == 16 ? 0x20 : 0));
  }
  if (s.l4 == 6 || s.l4 == 17) {
    be16(s.sport);
    be16(s.dport);
    if (s.l4 == 6) p.insert(p.end(), {0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0});
    else {
      be16(static_cast<uint16_t>(8 + s.payload));
      be16(0);
    }
  }
  for (size_t i = 0; i < s.payload; ++i) p.push_back(static_cast<uint8_t>(i));
  return p;
}

std::vector<uint8_t> counting_bytes(size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i);
  return b;
}

std::vector<uint8_t> make_arp(size_t len) {
  std::vector<uint8_t> p(len, 0);
  p[0] = 0xff;
  p[12] = 0x08;
  p[13] = 0x06;
  return p;
}

int64_t res_at(const Object& obj, size_t i) {
  auto bss = obj.map(".bss");
  REQUIRE(bss.ok());
  auto v = bss->lookup(as_bytes<uint32_t>(0));
  REQUIRE(v.ok());
  return read_as<int64_t>(*v, i * 8);
}

}  // namespace ebpfvm::test
