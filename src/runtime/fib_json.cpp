// Fib from iproute2's JSON (`ip -j addr show`, `ip -j route show table all`, `ip -j neigh show`)
// and from this host's own links.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "ebpfvm/runtime.hpp"
#include "util/json.hpp"

namespace ebpfvm {
namespace {

constexpr uint8_t kInet = 2, kInet6 = 10;

Error bad(const std::string& what, const std::string& why) { return make_error(Errc::InvalidArgument, what + ": " + why); }

std::optional<IpAddress> parse_ip(const std::string& s) {
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  a.family = kInet6;
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return a;
  return std::nullopt;
}

std::optional<std::array<uint8_t, 6>> parse_mac(const std::string& s) {
  std::array<uint8_t, 6> m{};
  unsigned v[6];
  char end;
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6) return std::nullopt;
  for (int i = 0; i < 6; ++i) {
    if (v[i] > 0xff) return std::nullopt;
    m[i] = static_cast<uint8_t>(v[i]);
  }
  return m;
}

const std::string* string_at(const json::Value& o, const char* key) {
  const json::Value* v = o.get(key);
  return v && v->is_string() ? &v->string() : nullptr;
}
std::optional<uint32_t> u32_at(const json::Value& o, const char* key) {
  const json::Value* v = o.get(key);
  if (!v || !v->is_number() || v->number() < 0 || v->number() > 4294967295.0 || std::floor(v->number()) != v->number()) return std::nullopt;
  return static_cast<uint32_t>(v->number());
}

Result<json::Value::Array> entries(std::string_view text, const char* listing) {
  auto doc = json::parse(text);
  if (!doc) return doc.error();
  if (!doc->is_array()) return bad(listing, "expected a JSON array, as `ip -j` prints");
  return doc->array();
}

std::string nth(const char* kind, size_t i, const std::string* name) {
  return std::string(kind) + " " + std::to_string(i) + (name ? " (" + *name + ")" : "");
}

const FibLink* link_named(const std::vector<FibLink>& links, const std::string& name) {
  for (const FibLink& l : links)
    if (l.name == name) return &l;
  return nullptr;
}

bool link_scope(const IpAddress& a) { return a.family == kInet6 && a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80; }

Result<FibLink> parse_link(const json::Value& e, const std::string& what) {
  FibLink l;
  auto ifindex = u32_at(e, "ifindex");
  const std::string* name = string_at(e, "ifname");
  if (!ifindex || !*ifindex || !name) return bad(what, "needs \"ifindex\" and \"ifname\"");
  l.ifindex = *ifindex;
  l.name = *name;
  if (const std::string* mac = string_at(e, "address")) {
    // Links without an Ethernet address (tunnels: "0.0.0.0", none at all) give zeros.
    if (auto m = parse_mac(*mac)) l.mac = *m;
  }
  if (e.get("mtu")) {
    auto mtu = u32_at(e, "mtu");
    if (!mtu) return bad(what, "\"mtu\" is not a number");
    l.mtu = *mtu;
  }
  if (const json::Value* infos = e.get("addr_info"); infos && infos->is_array()) {
    for (const json::Value& ai : infos->array()) {
      const std::string* local = string_at(ai, "local");
      if (!local) continue;
      // Addresses still being checked for duplicates (or found duplicated) are not usable.
      if (const json::Value* t = ai.get("tentative"); t && t->is_bool() && t->boolean()) continue;
      if (const json::Value* t = ai.get("dadfailed"); t && t->is_bool() && t->boolean()) continue;
      auto ip = parse_ip(*local);
      auto len = u32_at(ai, "prefixlen");
      if (!ip || !len || *len > (ip->family == kInet ? 32u : 128u)) return bad(what, "address '" + *local + "' is not an address with a \"prefixlen\"");
      l.addresses.push_back({*ip, static_cast<uint8_t>(*len), link_scope(*ip)});
    }
  }
  return l;
}

std::optional<FibRoute::Type> route_type(const std::string& t) {
  using T = FibRoute::Type;
  static const std::pair<const char*, T> kTypes[] = {{"unicast", T::Unicast},         {"local", T::Local},         {"broadcast", T::Broadcast},
                                                     {"multicast", T::Multicast},     {"blackhole", T::Blackhole}, {"unreachable", T::Unreachable},
                                                     {"prohibit", T::Prohibit},       {"throw", T::Throw},         {"anycast", T::Other},
                                                     {"nat", T::Other}};
  for (const auto& [name, type] : kTypes)
    if (t == name) return type;
  return std::nullopt;
}

std::optional<uint32_t> table_id(const json::Value& e) {
  if (!e.get("table")) return 254u;
  if (auto n = u32_at(e, "table")) return n;
  const std::string* t = string_at(e, "table");
  if (!t) return std::nullopt;
  if (*t == "main") return 254u;
  if (*t == "local") return 255u;
  if (*t == "default") return 253u;
  char* end = nullptr;
  const unsigned long v = std::strtoul(t->c_str(), &end, 10);
  if (t->empty() || *end || v > 0xffffffffu) return std::nullopt;
  return static_cast<uint32_t>(v);
}

// "dst" ("default", "10.0.0.0/24", "10.0.0.1", "2001:db8::/64"); "default" has no family of its
// own: its gateway's, its preferred source's, or `family` (the listing's other routes').
Result<void> parse_dst(const json::Value& e, const std::string& what, uint8_t family, FibRoute& r) {
  const std::string* dst = string_at(e, "dst");
  if (!dst) return bad(what, "has no \"dst\"");
  if (*dst == "default") {
    r.family = r.gateway ? r.gateway->family : r.prefsrc ? r.prefsrc->family : family;
    if (!r.family) return bad(what, "\"default\" with no gateway or prefsrc: its family is unknown (list IPv4 and IPv6 routes with other routes, or separately with ip -4 / ip -6)");
    r.prefix_len = 0;
    return {};
  }
  const size_t slash = dst->find('/');
  auto ip = parse_ip(dst->substr(0, slash));
  if (!ip) return bad(what, "\"dst\" '" + *dst + "' is not an address or prefix");
  r.family = ip->family;
  r.prefix = ip->bytes;
  const unsigned max = ip->family == kInet ? 32 : 128;
  r.prefix_len = static_cast<uint8_t>(max);
  if (slash != std::string::npos) {
    char* end = nullptr;
    const std::string len = dst->substr(slash + 1);
    const unsigned long v = std::strtoul(len.c_str(), &end, 10);
    if (len.empty() || *end || v > max) return bad(what, "\"dst\" '" + *dst + "' has a bad prefix length");
    r.prefix_len = static_cast<uint8_t>(v);
  }
  return {};
}

// One nexthop's "gateway" / "via" and "dev". Of a multipath route, the first nexthop is used
// (the kernel picks one by a hash of the flow, keyed per boot).
Result<void> parse_nexthop(const json::Value& nh, const std::string& what, const std::vector<FibLink>& links, FibRoute& r) {
  if (const std::string* gw = string_at(nh, "gateway")) {
    auto ip = parse_ip(*gw);
    if (!ip) return bad(what, "gateway '" + *gw + "' is not an address");
    r.gateway = *ip;
  } else if (const json::Value* via = nh.get("via"); via && via->is_object()) {
    const std::string* host = string_at(*via, "host");
    auto ip = host ? parse_ip(*host) : std::nullopt;
    if (!ip) return bad(what, "\"via\" has no address in \"host\"");
    r.gateway = *ip;
  }
  if (const std::string* dev = string_at(nh, "dev")) {
    const FibLink* l = link_named(links, *dev);
    if (!l) return bad(what, "dev '" + *dev + "' is not among the links (give them first: ip -j addr show)");
    r.ifindex = l->ifindex;
  }
  return {};
}

Result<FibRoute> parse_route(const json::Value& e, const std::string& what, const std::vector<FibLink>& links, uint8_t family) {
  FibRoute r;
  if (const std::string* t = string_at(e, "type")) {
    auto type = route_type(*t);
    if (!type) return bad(what, "unknown route type '" + *t + "'");
    r.type = *type;
  }
  auto table = table_id(e);
  if (!table) return bad(what, "\"table\" is not a table name or number");
  r.table = *table;
  if (e.get("metric")) {
    auto m = u32_at(e, "metric");
    if (!m) return bad(what, "\"metric\" is not a number");
    r.metric = *m;
  }
  if (const std::string* src = string_at(e, "prefsrc")) {
    r.prefsrc = parse_ip(*src);
    if (!r.prefsrc) return bad(what, "prefsrc '" + *src + "' is not an address");
  }
  const json::Value* nexthops = e.get("nexthops");
  if (nexthops && nexthops->is_array() && !nexthops->array().empty()) {
    if (auto ok = parse_nexthop(nexthops->array()[0], what, links, r); !ok) return ok.error();
  } else if (auto ok = parse_nexthop(e, what, links, r); !ok) return ok.error();
  if (auto ok = parse_dst(e, what, family, r); !ok) return ok.error();
  if (r.type == FibRoute::Type::Unicast && !r.ifindex) return bad(what, "a unicast route without \"dev\"");
  if (const json::Value* metrics = e.get("metrics"); metrics && metrics->is_array())
    for (const json::Value& m : metrics->array())
      if (m.get("mtu")) {
        auto mtu = u32_at(m, "mtu");
        if (!mtu) return bad(what, "the \"mtu\" metric is not a number");
        r.mtu = *mtu;
        if (const json::Value* lock = m.get("lock"); lock && lock->is_array())
          for (const json::Value& what : lock->array()) r.mtu_locked |= what.is_string() && what.string() == "mtu";
      }
  r.encap = e.get("encap") != nullptr;
  return r;
}

// The family of a listing's "default" routes: that of its routes with an address.
uint8_t listing_family(const json::Value::Array& list) {
  uint8_t family = 0;
  for (const json::Value& e : list) {
    const std::string* dst = string_at(e, "dst");
    if (!dst || *dst == "default") continue;
    auto ip = parse_ip(dst->substr(0, dst->find('/')));
    if (!ip) continue;
    if (family && family != ip->family) return 0;  // mixed: each default must say
    family = ip->family;
  }
  return family;
}

bool nud_valid(const json::Value& e) {
  const json::Value* st = e.get("state");
  if (!st) return true;  // no state printed: a noarp-like entry
  static constexpr const char* kValid[] = {"PERMANENT", "NOARP", "REACHABLE", "PROBE", "STALE", "DELAY"};
  auto valid = [](const std::string& s) {
    for (const char* v : kValid)
      if (s == v) return true;
    return false;
  };
  if (st->is_string()) return valid(st->string());
  if (!st->is_array()) return false;
  for (const json::Value& s : st->array())
    if (s.is_string() && valid(s.string())) return true;
  return false;
}

}  // namespace

Result<void> Fib::add_links_json(std::string_view text) {
  auto list = entries(text, "links");
  if (!list) return list.error();
  std::vector<FibLink> added;
  for (size_t i = 0; i < list->size(); ++i) {
    const json::Value& e = (*list)[i];
    const std::string what = "links: " + nth("entry", i, e.is_object() ? string_at(e, "ifname") : nullptr);
    if (!e.is_object()) return bad(what, "not an object");
    auto l = parse_link(e, what);
    if (!l) return l.error();
    for (const auto* have : {&links, &added})
      for (const FibLink& o : *have)
        if (o.ifindex == l->ifindex || o.name == l->name) return bad(what, "a second link with ifindex " + std::to_string(l->ifindex) + " or name '" + l->name + "'");
    added.push_back(std::move(*l));
  }
  links.insert(links.end(), added.begin(), added.end());
  return {};
}

Result<void> Fib::add_routes_json(std::string_view text) {
  auto list = entries(text, "routes");
  if (!list) return list.error();
  const uint8_t family = listing_family(*list);
  std::vector<FibRoute> added;
  for (size_t i = 0; i < list->size(); ++i) {
    const json::Value& e = (*list)[i];
    const std::string what = "routes: " + nth("route", i, e.is_object() ? string_at(e, "dst") : nullptr);
    if (!e.is_object()) return bad(what, "not an object");
    auto r = parse_route(e, what, links, family);
    if (!r) return r.error();
    added.push_back(*r);
  }
  routes.insert(routes.end(), added.begin(), added.end());
  return {};
}

Result<void> Fib::add_neighbours_json(std::string_view text) {
  auto list = entries(text, "neighbours");
  if (!list) return list.error();
  std::vector<FibNeighbour> added;
  for (size_t i = 0; i < list->size(); ++i) {
    const json::Value& e = (*list)[i];
    const std::string what = "neighbours: " + nth("entry", i, e.is_object() ? string_at(e, "dst") : nullptr);
    if (!e.is_object()) return bad(what, "not an object");
    const std::string* dst = string_at(e, "dst");
    const std::string* dev = string_at(e, "dev");
    if (!dst || !dev) return bad(what, "needs \"dst\" and \"dev\"");
    FibNeighbour n;
    auto ip = parse_ip(*dst);
    if (!ip) return bad(what, "\"dst\" '" + *dst + "' is not an address");
    n.ip = *ip;
    const FibLink* l = link_named(links, *dev);
    if (!l) return bad(what, "dev '" + *dev + "' is not among the links (give them first: ip -j addr show)");
    n.ifindex = l->ifindex;
    const std::string* mac = string_at(e, "lladdr");
    n.valid = nud_valid(e) && mac;  // an entry still resolving (or failed) has no address
    if (mac) {
      auto m = parse_mac(*mac);
      if (!m) return bad(what, "lladdr '" + *mac + "' is not an Ethernet address");
      n.mac = *m;
    }
    added.push_back(n);
  }
  neighbours.insert(neighbours.end(), added.begin(), added.end());
  return {};
}

Result<void> Fib::add_host_links() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return make_error(Errc::Io, std::string("getifaddrs: ") + std::strerror(errno));
  std::vector<FibLink> found;
  auto link_for = [&](const char* name) -> FibLink* {
    for (FibLink& l : found)
      if (l.name == name) return &l;
    const unsigned idx = if_nametoindex(name);
    if (!idx) return nullptr;
    found.push_back(FibLink{});
    found.back().ifindex = idx;
    found.back().name = name;
    return &found.back();
  };
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_name || !a->ifa_addr) continue;
    FibLink* l = link_for(a->ifa_name);
    if (!l) continue;
    const int fam = a->ifa_addr->sa_family;
    if (fam == AF_PACKET) {
      const auto* ll = reinterpret_cast<const sockaddr_ll*>(a->ifa_addr);
      if (ll->sll_halen == 6) std::memcpy(l->mac.data(), ll->sll_addr, 6);
    } else if ((fam == AF_INET || fam == AF_INET6) && a->ifa_netmask) {
      FibLink::Address ad;
      uint8_t len = 0;
      if (fam == AF_INET) {
        std::memcpy(ad.ip.bytes.data(), &reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr, 4);
        const uint32_t mask = ntohl(reinterpret_cast<const sockaddr_in*>(a->ifa_netmask)->sin_addr.s_addr);
        len = static_cast<uint8_t>(__builtin_popcount(mask));
      } else {
        ad.ip.family = kInet6;
        std::memcpy(ad.ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(a->ifa_addr)->sin6_addr, 16);
        for (uint8_t b : reinterpret_cast<const sockaddr_in6*>(a->ifa_netmask)->sin6_addr.s6_addr) len = static_cast<uint8_t>(len + __builtin_popcount(b));
      }
      ad.prefix_len = len;
      ad.link_scope = link_scope(ad.ip);
      l->addresses.push_back(ad);
    }
  }
  freeifaddrs(list);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  for (FibLink& l : found) {
    ifreq req{};
    std::strncpy(req.ifr_name, l.name.c_str(), IFNAMSIZ - 1);
    if (fd >= 0 && ioctl(fd, SIOCGIFMTU, &req) == 0) l.mtu = static_cast<uint32_t>(req.ifr_mtu);
  }
  if (fd >= 0) close(fd);
  for (const FibLink& l : found)
    for (const FibLink& have : links)
      if (have.ifindex == l.ifindex || have.name == l.name) return bad("links", "this host's link '" + l.name + "' is given already");
  links.insert(links.end(), found.begin(), found.end());
  return {};
}

}  // namespace ebpfvm
