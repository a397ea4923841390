// ubpf-run test: the spec, its packets built from a layered description, each case's run, and
// the comparison of what the program did with what the case expects.
#include "spec_test.hpp"

#include <arpa/inet.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common.hpp"
#include "ebpfvm/ebpfvm.hpp"
#include "maps/map_impl.hpp"
#include "pcap.hpp"
#include "util/json.hpp"

namespace ubpf {
namespace {

using ebpfvm::json::Value;
using Bytes = std::vector<uint8_t>;

// A spec error: what is wrong and where in the spec.
struct SpecError {
  std::string what;
};
[[noreturn]] void bad(const std::string& what) { throw SpecError{what}; }

std::string hex(std::span<const uint8_t> b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t x : b) s += kHex[x >> 4], s += kHex[x & 15];
  return s;
}

uint64_t whole(const Value& v, const std::string& at, uint64_t max) {
  if (!v.is_number() || v.number() < 0 || v.number() > static_cast<double>(max) || v.number() != static_cast<double>(static_cast<uint64_t>(v.number())))
    bad(at + ": expected a whole number from 0 to " + std::to_string(max));
  return static_cast<uint64_t>(v.number());
}
uint64_t field(const Value& obj, const char* name, uint64_t dflt, uint64_t max, const std::string& at) {
  const Value* v = obj.get(name);
  return v ? whole(*v, at + "." + name, max) : dflt;
}
Bytes hex_bytes(const std::string& text, const std::string& at) {
  auto b = ebpfvm::tools::parse_hex(text);
  if (!b) bad(at + ": " + b.error().message);
  return *b;
}
// Bytes as a spec gives them: a hex string, an array of byte strings/numbers (bpftool's), or a
// number packed little-endian in `size` bytes.
Bytes bytes_of(const Value& v, size_t size, const std::string& at) {
  if (v.is_string()) return hex_bytes(v.string(), at);
  auto b = ebpfvm::detail::json_key(v, size, at);
  if (!b) bad(b.error().message);
  return *b;
}

// ---- packets from a layered description ----
std::array<uint8_t, 6> mac_of(const Value* v, std::array<uint8_t, 6> dflt, const std::string& at) {
  if (!v) return dflt;
  if (!v->is_string()) bad(at + ": a MAC address is a string (02:00:00:00:00:01)");
  std::array<uint8_t, 6> m{};
  unsigned x[6];
  if (std::sscanf(v->string().c_str(), "%x:%x:%x:%x:%x:%x", &x[0], &x[1], &x[2], &x[3], &x[4], &x[5]) != 6) bad(at + ": not a MAC address: " + v->string());
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(x[i]);
  return m;
}
void put16(Bytes& b, size_t at, uint16_t v) { b[at] = static_cast<uint8_t>(v >> 8), b[at + 1] = static_cast<uint8_t>(v); }
void put32(Bytes& b, size_t at, uint32_t v) { put16(b, at, static_cast<uint16_t>(v >> 16)), put16(b, at + 2, static_cast<uint16_t>(v)); }
uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
void address(const Value* v, int family, uint8_t* out, const char* dflt, const std::string& at) {
  const std::string s = v ? (v->is_string() ? v->string() : (bad(at + ": an address is a string"), "")) : dflt;
  if (inet_pton(family, s.c_str(), out) != 1) bad(at + ": not an IPv" + std::string(family == AF_INET ? "4" : "6") + " address: " + s);
}
uint8_t tcp_flags(const Value* v, const std::string& at) {
  if (!v) return 0x02;  // SYN
  if (v->is_number()) return static_cast<uint8_t>(whole(*v, at, 255));
  if (!v->is_string()) bad(at + ": flags are letters (FSRPAUEC) or a number");
  uint8_t f = 0;
  for (char c : v->string()) {
    const char* letters = "FSRPAUEC";
    const char* p = std::strchr(letters, c);
    if (!p || !c) bad(at + ": unknown TCP flag '" + std::string(1, c) + "' (FSRPAUEC)");
    f |= static_cast<uint8_t>(1u << (p - letters));
  }
  return f;
}

// {"eth": {...}, "vlan": {...}, "ip" | "ip6": {...}, "tcp" | "udp": {...}, "payload": "hex" | N}
Bytes build_packet(const Value& d, const std::string& at) {
  static const char* const kLayers[] = {"eth", "vlan", "ip", "ip6", "tcp", "udp", "payload"};
  for (const auto& [k, v] : d.object())
    if (std::find(std::begin(kLayers), std::end(kLayers), k) == std::end(kLayers))
      bad(at + ": unknown layer '" + k + "' (eth, vlan, ip, ip6, tcp, udp, payload)");
  const Value* eth = d.get("eth");
  const Value* vlan = d.get("vlan");
  const Value* ip = d.get("ip");
  const Value* ip6 = d.get("ip6");
  const Value* tcp = d.get("tcp");
  const Value* udp = d.get("udp");
  if (ip && ip6) bad(at + ": ip and ip6 both given");
  if (tcp && udp) bad(at + ": tcp and udp both given");
  if ((tcp || udp) && !ip && !ip6) bad(at + ": tcp or udp needs ip or ip6");
  Bytes payload;
  if (const Value* p = d.get("payload")) payload = p->is_number() ? Bytes(whole(*p, at + ".payload", 65000), 0) : bytes_of(*p, 0, at + ".payload");
  Bytes l4;
  if (tcp || udp) {
    const Value& t = tcp ? *tcp : *udp;
    const std::string lat = at + (tcp ? ".tcp" : ".udp");
    l4.assign(tcp ? 20 : 8, 0);
    put16(l4, 0, static_cast<uint16_t>(field(t, "sport", 1234, 65535, lat)));
    put16(l4, 2, static_cast<uint16_t>(field(t, "dport", 80, 65535, lat)));
    if (tcp) {
      put32(l4, 4, static_cast<uint32_t>(field(t, "seq", 1, UINT32_MAX, lat)));
      put32(l4, 8, static_cast<uint32_t>(field(t, "ack", 0, UINT32_MAX, lat)));
      l4[12] = 0x50;
      l4[13] = tcp_flags(t.get("flags"), lat + ".flags");
      put16(l4, 14, static_cast<uint16_t>(field(t, "window", 65535, 65535, lat)));
    } else {
      put16(l4, 4, static_cast<uint16_t>(8 + payload.size()));
    }
  }
  l4.insert(l4.end(), payload.begin(), payload.end());
  Bytes l3;
  uint16_t ethertype = eth ? static_cast<uint16_t>(field(*eth, "type", 0x0800, 65535, at + ".eth")) : 0x0800;
  if (ip) {
    const std::string lat = at + ".ip";
    l3.assign(20, 0);
    l3[0] = 0x45;
    l3[1] = static_cast<uint8_t>(field(*ip, "tos", 0, 255, lat));
    put16(l3, 2, static_cast<uint16_t>(20 + l4.size()));
    put16(l3, 4, static_cast<uint16_t>(field(*ip, "id", 1, 65535, lat)));
    l3[8] = static_cast<uint8_t>(field(*ip, "ttl", 64, 255, lat));
    l3[9] = static_cast<uint8_t>(field(*ip, "proto", tcp ? 6 : udp ? 17 : 0, 255, lat));
    address(ip->get("src"), AF_INET, &l3[12], "10.0.0.1", lat + ".src");
    address(ip->get("dst"), AF_INET, &l3[16], "10.0.0.2", lat + ".dst");
    put16(l3, 10, checksum(l3.data(), 20));
    ethertype = 0x0800;
  } else if (ip6) {
    const std::string lat = at + ".ip6";
    l3.assign(40, 0);
    const uint32_t tc = static_cast<uint32_t>(field(*ip6, "tc", 0, 255, lat));
    put32(l3, 0, 6u << 28 | tc << 20);
    put16(l3, 4, static_cast<uint16_t>(l4.size()));
    l3[6] = static_cast<uint8_t>(field(*ip6, "nh", tcp ? 6 : udp ? 17 : 59, 255, lat));
    l3[7] = static_cast<uint8_t>(field(*ip6, "hlim", 64, 255, lat));
    address(ip6->get("src"), AF_INET6, &l3[8], "2001:db8::1", lat + ".src");
    address(ip6->get("dst"), AF_INET6, &l3[24], "2001:db8::2", lat + ".dst");
    ethertype = 0x86dd;
  }
  if (tcp || udp) {  // the checksum over the pseudo-header
    uint32_t sum = 0;
    const size_t addr = ip ? 12 : 8, alen = ip ? 8 : 32;
    for (size_t i = 0; i < alen; i += 2) sum += static_cast<uint32_t>(l3[addr + i] << 8 | l3[addr + i + 1]);
    sum += tcp ? 6u : 17u;
    sum += static_cast<uint32_t>(l4.size());
    uint16_t c = checksum(l4.data(), l4.size(), sum);
    if (udp && c == 0) c = 0xffff;
    put16(l4, tcp ? 16 : 6, c);
  }
  Bytes frame(12, 0);
  const auto dst = mac_of(eth ? eth->get("dst") : nullptr, {2, 0, 0, 0, 0, 2}, at + ".eth.dst");
  const auto src = mac_of(eth ? eth->get("src") : nullptr, {2, 0, 0, 0, 0, 1}, at + ".eth.src");
  std::copy(dst.begin(), dst.end(), frame.begin());
  std::copy(src.begin(), src.end(), frame.begin() + 6);
  if (vlan) {
    frame.resize(16);
    put16(frame, 12, 0x8100);
    put16(frame, 14, static_cast<uint16_t>(field(*vlan, "pcp", 0, 7, at + ".vlan") << 13 | field(*vlan, "id", 1, 4095, at + ".vlan")));
  }
  frame.resize(frame.size() + 2);
  put16(frame, frame.size() - 2, ethertype);
  frame.insert(frame.end(), l3.begin(), l3.end());
  frame.insert(frame.end(), l4.begin(), l4.end());
  return frame;
}

Bytes packet_of(const Value& v, const std::filesystem::path& dir, const std::string& at) {
  if (v.is_string()) return hex_bytes(v.string(), at);
  if (!v.is_object()) bad(at + ": a packet is hex, {\"pcap\": FILE, \"index\": N} or layers {\"eth\": ..., \"ip\": ..., \"tcp\": ...}");
  if (const Value* f = v.get("pcap")) {
    if (!f->is_string()) bad(at + ".pcap: a file name");
    const uint64_t index = field(v, "index", 0, UINT32_MAX, at);
    const std::string path = (dir / f->string()).string();
    auto reader = CaptureReader::open(path, nullptr);
    if (!reader) bad(at + ": " + reader.error().to_string());
    Packet p;
    for (uint64_t i = 0;; ++i) {
      auto got = (*reader)->next(p);
      if (!got) bad(at + ": " + got.error().to_string());
      if (!*got) bad(at + ": " + path + " has no packet " + std::to_string(index) + " (it has " + std::to_string(i) + ")");
      if (i == index) return Bytes(p.data.begin(), p.data.end());
    }
  }
  return build_packet(v, at);
}

// ---- one case ----
struct Outcome {
  std::string action;
  uint64_t r0 = 0;
  Bytes packet;
  ebpfvm::SkbFields fields;
  uint32_t keep = 0;
  std::string redirect;
};

std::string redirect_text(const ebpfvm::RedirectTarget& t) {
  using K = ebpfvm::RedirectTarget::Kind;
  if (t.kind == K::Ifindex) return "ifindex " + std::to_string(t.ifindex);
  if (t.kind == K::Map) return "map '" + t.map_name + "' slot " + std::to_string(t.key);
  return "";
}

ebpfvm::Result<Outcome> run_case(const ebpfvm::LoadedProgram& prog, const Value& c, const Bytes& pkt, const std::string& at) {
  Outcome out;
  if (prog.type() == ebpfvm::ProgType::Xdp) {
    ebpfvm::XdpBuffer buf(pkt);
    auto r = prog.run_xdp(buf, {0, static_cast<uint32_t>(field(c, "ifindex", 1, UINT32_MAX, at)), static_cast<uint32_t>(field(c, "rxq", 0, UINT32_MAX, at))});
    if (!r) return r.error();
    out.action = std::string(ebpfvm::to_string(r->action));
    out.r0 = r->r0;
    out.packet.assign(buf.packet().begin(), buf.packet().end());
    out.redirect = redirect_text(r->redirect);
    return out;
  }
  ebpfvm::SkbFields f;
  if (const Value* in = c.get("fields")) {
    if (!in->is_object()) bad(at + ".fields: an object");
    for (const auto& [k, v] : in->object()) {
      const std::string fat = at + ".fields." + k;
      if (k == "mark") f.mark = static_cast<uint32_t>(whole(v, fat, UINT32_MAX));
      else if (k == "priority") f.priority = static_cast<uint32_t>(whole(v, fat, UINT32_MAX));
      else if (k == "ifindex") f.ifindex = static_cast<uint32_t>(whole(v, fat, UINT32_MAX));
      else if (k == "ingress_ifindex") f.ingress_ifindex = static_cast<uint32_t>(whole(v, fat, UINT32_MAX));
      else if (k == "tstamp") f.tstamp = whole(v, fat, uint64_t{1} << 53);
      else bad(fat + ": not an input of struct __sk_buff here (mark, priority, ifindex, ingress_ifindex, tstamp)");
    }
  }
  ebpfvm::SkbBuffer skb(pkt, f);
  auto r = prog.run_skb(skb);
  if (!r) return r.error();
  out.r0 = r->r0;
  out.fields = skb.fields();
  if (prog.type() == ebpfvm::ProgType::SocketFilter) {
    out.keep = r->keep;
    out.action = r->keep ? "ACCEPT" : "DROP";
    out.packet.assign(skb.packet().begin(), skb.packet().begin() + r->keep);
  } else {
    out.action = std::string(ebpfvm::to_string(r->tc_action));
    out.packet.assign(skb.packet().begin(), skb.packet().end());
    out.redirect = redirect_text(r->redirect);
  }
  return out;
}

// What differs between the expectation and the outcome: one "key: expected X, got Y" per line.
std::vector<std::string> compare(const Value& e, const Outcome& o, ebpfvm::Object& obj, const std::string& at) {
  std::vector<std::string> diffs;
  auto differ = [&](const std::string& what, const std::string& want, const std::string& got) {
    if (want != got) diffs.push_back(what + ": expected " + want + ", got " + got);
  };
  for (const auto& [k, v] : e.object()) {
    const std::string eat = at + ".expect." + k;
    if (k == "action") {
      if (v.is_number()) differ("r0", std::to_string(whole(v, eat, UINT32_MAX)), std::to_string(o.r0));
      else if (v.is_string()) differ("action", v.string(), o.action);
      else bad(eat + ": a verdict's name (XDP_DROP, TC_ACT_SHOT, ACCEPT) or a number");
    } else if (k == "r0") {
      differ("r0", std::to_string(whole(v, eat, UINT64_MAX)), std::to_string(o.r0));
    } else if (k == "packet") {
      differ("packet", hex(bytes_of(v, 0, eat)), hex(o.packet));
    } else if (k == "len") {
      differ("len", std::to_string(whole(v, eat, UINT32_MAX)), std::to_string(o.packet.size()));
    } else if (k == "keep") {
      differ("keep", std::to_string(whole(v, eat, UINT32_MAX)), std::to_string(o.keep));
    } else if (k == "redirect") {
      if (!v.is_string()) bad(eat + ": \"ifindex N\" or \"map 'NAME' slot N\"");
      differ("redirect", v.string(), o.redirect.empty() ? "none" : o.redirect);
    } else if (k == "fields") {
      if (!v.is_object()) bad(eat + ": an object of struct __sk_buff fields");
      const ebpfvm::SkbFields& f = o.fields;
      for (const auto& [name, want] : v.object()) {
        const uint64_t got = name == "mark" ? f.mark : name == "priority" ? f.priority : name == "tc_classid" ? f.tc_classid
                           : name == "tc_index" ? f.tc_index : name == "queue_mapping" ? f.queue_mapping : name == "hash" ? f.hash
                           : name == "pkt_type" ? f.pkt_type : name == "protocol" ? f.protocol : name == "vlan_tci" ? f.vlan_tci
                           : name == "vlan_present" ? f.vlan_present : UINT64_MAX;
        if (got == UINT64_MAX)
          bad(eat + "." + name + ": not a field ubpf-run test compares (mark, priority, tc_classid, tc_index, queue_mapping, hash, "
                                 "pkt_type, protocol, vlan_tci, vlan_present)");
        differ("fields." + name, std::to_string(whole(want, eat + "." + name, UINT32_MAX)), std::to_string(got));
      }
    } else if (k == "maps") {
      if (!v.is_object()) bad(eat + ": {\"map\": [{\"key\": K, \"value\": V or null}, ...]}");
      for (const auto& [name, entries] : v.object()) {
        auto m = obj.map(name);
        if (!m) bad(eat + ": " + m.error().message);
        if (!entries.is_array()) bad(eat + "." + name + ": an array of entries");
        for (size_t i = 0; i < entries.array().size(); ++i) {
          const Value& en = entries.array()[i];
          const std::string nat = eat + "." + name + "[" + std::to_string(i) + "]";
          if (!en.is_object() || !en.get("key") || !en.get("value")) bad(nat + ": {\"key\": K, \"value\": V or null}");
          const Bytes key = bytes_of(*en.get("key"), m->spec().key_size, nat + ".key");
          auto got = m->lookup(key);
          const std::string what = "map " + name + " key " + hex(key);
          if (en.get("value")->is_null()) {
            differ(what, "no entry", got ? hex(*got) : "no entry");
            continue;
          }
          const Bytes want = bytes_of(*en.get("value"), m->user_value_size(), nat + ".value");
          differ(what, hex(want), got ? hex(*got) : "no entry");
        }
      }
    } else {
      bad(eat + ": unknown expectation (action, r0, packet, len, keep, redirect, fields, maps)");
    }
  }
  return diffs;
}

std::string xml(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return o;
}

struct CaseResult {
  std::string name;
  std::vector<std::string> diffs;  // empty: passed
  std::string error;               // the run failed
  double seconds = 0;
};

ebpfvm::Result<ebpfvm::Object> open_spec_object(const Value& spec, const std::filesystem::path& dir, const SpecOptions& o) {
  const Value* objv = spec.get("object");
  if (!objv || !objv->is_string()) bad("\"object\": the BPF object's path (relative to the spec) is required");
  auto obj = ebpfvm::Object::open((dir / objv->string()).string());
  if (!obj) return obj.error();
  if (const Value* t = spec.get("type")) {
    auto type = t->is_string() ? ebpfvm::prog_type_from_string(t->string()) : std::nullopt;
    if (!type) bad("\"type\": xdp, tc or socket");
    for (const auto& p : obj->programs()) (void)obj->set_program_type(p.name, *type);
  }
  if (const Value* g = spec.get("globals")) {
    if (!g->is_object()) bad("\"globals\": {\"name\": value}");
    for (const auto& [name, v] : g->object()) {
      size_t size = 0;
      for (const auto& x : obj->globals())
        if (x.name == name) size = x.size;
      if (!size) bad("\"globals\": the object has no global '" + name + "'");
      const Bytes b = bytes_of(v, size, "\"globals\"." + name);
      if (auto r = obj->set_global(name, b); !r) bad("\"globals\"." + name + ": " + r.error().message);
    }
  }
  std::string engine = o.engine;
  if (engine.empty())
    if (const Value* e = spec.get("engine")) engine = e->is_string() ? e->string() : "";
  ebpfvm::LoadOptions lo;
  if (engine == "jit") lo.engine = ebpfvm::Engine::Jit;
  else if (!engine.empty() && engine != "interp") bad("engine: jit or interp");
  if (auto r = obj->load(lo); !r) return r.error();
  if (const Value* m = spec.get("maps")) {
    std::ostringstream text;
    if (!m->is_object()) bad("\"maps\": {\"map\": [entries]}, as --map-load takes them");
    // back to text for load_maps_json: the spec's own JSON, re-serialised
    auto emit = [&](auto&& self, const Value& v) -> void {
      if (v.is_null()) text << "null";
      else if (v.is_bool()) text << (v.boolean() ? "true" : "false");
      else if (v.is_number()) text << std::to_string(static_cast<long long>(v.number()));
      else if (v.is_string()) text << ebpfvm::json::quote(v.string());
      else if (v.is_array()) {
        text << "[";
        for (size_t i = 0; i < v.array().size(); ++i) text << (i ? "," : ""), self(self, v.array()[i]);
        text << "]";
      } else {
        text << "{";
        bool first = true;
        for (const auto& [k, x] : v.object()) text << (first ? "" : ",") << ebpfvm::json::quote(k) << ":", self(self, x), first = false;
        text << "}";
      }
    };
    emit(emit, *m);
    if (auto r = obj->load_maps_json(text.str()); !r) bad("\"maps\": " + r.error().to_string());
  }
  return obj;
}

}  // namespace

int run_spec(const SpecOptions& o) {
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "ubpf-run test: %s: %s\n", o.spec.c_str(), why.c_str());
    return 2;
  };
  auto text = ebpfvm::tools::read_file(o.spec);
  if (!text) return fail(text.error().message);
  auto spec = ebpfvm::json::parse(std::string_view(reinterpret_cast<const char*>(text->data()), text->size()));
  if (!spec) return fail("not JSON: " + spec.error().message);
  if (!spec->is_object()) return fail("the spec is a JSON object: {\"object\": ..., \"cases\": [...]}");
  const std::filesystem::path dir = std::filesystem::path(o.spec).parent_path();
  std::vector<CaseResult> results;
  try {
    auto obj = open_spec_object(*spec, dir, o);
    if (!obj) return fail(obj.error().to_string());
    const Value* pv = spec->get("program");
    std::string name;
    if (pv && pv->is_string()) name = pv->string();
    else if (pv) bad("\"program\": a program's name");
    else if (obj->programs().size() == 1) name = obj->programs()[0].name;
    else bad("\"program\": the object has several programs; name one");
    auto prog = obj->program(name);
    if (!prog) return fail(prog.error().to_string());
    const Value* cases = spec->get("cases");
    if (!cases || !cases->is_array() || cases->array().empty()) bad("\"cases\": a non-empty array of cases");
    std::vector<Bytes> packets;  // every case's packet first: a bad one fails the spec before anything runs
    for (size_t i = 0; i < cases->array().size(); ++i) {
      const Value& c = cases->array()[i];
      const std::string at = "cases[" + std::to_string(i) + "]";
      if (!c.is_object() || !c.get("packet")) bad(at + ": {\"name\": ..., \"packet\": ..., \"expect\": {...}}");
      if (const Value* e = c.get("expect"); e && !e->is_object()) bad(at + ".expect: an object");
      packets.push_back(packet_of(*c.get("packet"), dir, at + ".packet"));
    }
    std::printf("TAP version 13\n1..%zu\n", cases->array().size());
    for (size_t i = 0; i < cases->array().size(); ++i) {
      const Value& c = cases->array()[i];
      const std::string at = "cases[" + std::to_string(i) + "]";
      CaseResult r;
      r.name = c.get("name") && c.get("name")->is_string() ? c.get("name")->string() : at;
      const auto t0 = std::chrono::steady_clock::now();
      auto out = run_case(*prog, c, packets[i], at);
      if (!out) r.error = out.error().to_string();
      else if (const Value* e = c.get("expect")) r.diffs = compare(*e, *out, *obj, at);
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const bool ok = r.error.empty() && r.diffs.empty();
      std::printf("%s %zu - %s\n", ok ? "ok" : "not ok", i + 1, r.name.c_str());
      if (!ok) {
        std::printf("  ---\n");
        if (!r.error.empty()) std::printf("  error: %s\n", r.error.c_str());
        for (const std::string& d : r.diffs) std::printf("  %s\n", d.c_str());
        std::printf("  ...\n");
      }
      results.push_back(std::move(r));
    }
  } catch (const SpecError& e) {
    return fail(e.what);
  }
  size_t failed = 0;
  for (const CaseResult& r : results) failed += !(r.error.empty() && r.diffs.empty());
  std::printf("# %zu of %zu cases passed\n", results.size() - failed, results.size());
  if (!o.junit.empty()) {
    std::ofstream x(o.junit);
    x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"" << xml(o.spec) << "\" tests=\"" << results.size()
      << "\" failures=\"" << failed << "\" errors=\"0\">\n";
    for (const CaseResult& r : results) {
      x << "    <testcase classname=\"" << xml(std::filesystem::path(o.spec).stem().string()) << "\" name=\"" << xml(r.name) << "\" time=\""
        << r.seconds << "\"";
      if (r.error.empty() && r.diffs.empty()) {
        x << "/>\n";
        continue;
      }
      std::string body = r.error;
      for (const std::string& d : r.diffs) body += (body.empty() ? "" : "\n") + d;
      x << ">\n      <failure message=\"" << xml(r.diffs.empty() ? r.error : r.diffs[0]) << "\">" << xml(body) << "</failure>\n    </testcase>\n";
    }
    x << "  </testsuite>\n</testsuites>\n";
    if (!x) return fail("cannot write " + o.junit);
  }
  return failed ? 1 : 0;
}

}  // namespace ubpf
