#include <algorithm>
#include <cstring>

#include "ebpfvm/skb.hpp"
#include "progtype/skb.hpp"

namespace ebpfvm {

SkbBuffer::SkbBuffer() : ctx_(std::make_unique<detail::SkbCtx>()) { assign({}); }
SkbBuffer::SkbBuffer(std::span<const uint8_t> frame, const SkbFields& fields, SkbStart start) : ctx_(std::make_unique<detail::SkbCtx>()) {
  assign(frame, fields, start);
}
SkbBuffer::~SkbBuffer() = default;
SkbBuffer::SkbBuffer(SkbBuffer&&) noexcept = default;
SkbBuffer& SkbBuffer::operator=(SkbBuffer&&) noexcept = default;

namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// eth_type_trans on the loopback device (address 00:00:00:00:00:00).
uint32_t pkt_type_of(const uint8_t* dst) {
  constexpr uint32_t kHost = 0, kBroadcast = 1, kMulticast = 2, kOtherHost = 3;
  if (std::all_of(dst, dst + 6, [](uint8_t b) { return b == 0; })) return kHost;
  if (std::all_of(dst, dst + 6, [](uint8_t b) { return b == 0xff; })) return kBroadcast;
  return (dst[0] & 1) ? kMulticast : kOtherHost;
}
uint16_t protocol_of(std::span<const uint8_t> f) {
  const uint16_t type = be16(&f[12]);
  if (type >= 0x600) return type;
  // 802.3 frames: raw IPX (0xffff after the header) or 802.2 LLC
  return f.size() >= 16 && f[14] == 0xff && f[15] == 0xff ? 0x0001 : 0x0004;
}

}  // namespace

// The fields of an skb made from `frame` (already in place at `buf`, the MAC header at `mac`).
void SkbBuffer::init(std::span<const uint8_t> frame, const SkbFields& in, SkbStart start, uint8_t* buf, uint32_t buf_size, uint32_t mac) {
  detail::SkbCtx& s = *ctx_;
  s.md = {};
  s.st = {};  // the tunnel options' bytes stay: only st.tunnel.options_len of them are ever read
  s.buf = buf;
  s.buf_size = buf_size;
  s.st.mac = mac;
  s.st.network = mac + 14;
  const uint32_t skip = valid_ && start == SkbStart::Network ? 14 : 0;
  s.data = reinterpret_cast<uint64_t>(buf + mac + skip);
  s.data_end = reinterpret_cast<uint64_t>(buf + mac + frame.size());
  detail::skb_sync(s);
  detail::SkBuffMd& md = s.md;
  if (valid_) {
    md.pkt_type = in.egress ? 0 : pkt_type_of(frame.data());
    md.protocol = __builtin_bswap16(protocol_of(frame));
  }
  md.mark = in.mark;
  md.priority = in.priority;
  md.ingress_ifindex = in.ingress_ifindex;
  md.ifindex = in.ifindex;
  std::copy(std::begin(in.cb), std::end(in.cb), md.cb);
  md.tstamp = in.tstamp;
  md.wire_len = in.wire_len ? in.wire_len : md.len;
  md.gso_segs = in.gso_segs;
  md.gso_size = in.gso_size;
  md.hwtstamp = in.hwtstamp;
}

void SkbBuffer::assign(std::span<const uint8_t> frame, const SkbFields& in, SkbStart start) {
  if (buf_.size() != detail::kSkbBufSize) buf_.assign(detail::kSkbBufSize, 0);
  view_ = false;
  valid_ = frame.size() >= 14 && frame.size() <= detail::kSkbMaxInput;
  if (!valid_) frame = {};
  if (!frame.empty()) std::memcpy(buf_.data() + detail::kSkbHeadroom, frame.data(), frame.size());
  init(frame, in, start, buf_.data(), static_cast<uint32_t>(buf_.size()), detail::kSkbHeadroom);
}

void SkbBuffer::view(std::span<const uint8_t> frame, const SkbFields& in, SkbStart start) {
  view_ = true;
  valid_ = frame.size() >= 14 && frame.size() <= detail::kSkbMaxInput;
  if (!valid_) frame = {};
  // Never written: run_skb runs on a view only a program proven not to write the packet.
  uint8_t* at = const_cast<uint8_t*>(frame.data());
  init(frame, in, start, at, static_cast<uint32_t>(frame.size()), 0);
}

std::span<uint8_t> SkbBuffer::packet() {
  return {reinterpret_cast<uint8_t*>(ctx_->data), static_cast<size_t>(ctx_->data_end - ctx_->data)};
}
std::span<const uint8_t> SkbBuffer::packet() const {
  return {reinterpret_cast<const uint8_t*>(ctx_->data), static_cast<size_t>(ctx_->data_end - ctx_->data)};
}
uint32_t SkbBuffer::clones() const { return ctx_->st.redirect_clones; }

SkbFields SkbBuffer::fields() const {
  const detail::SkBuffMd& md = ctx_->md;
  SkbFields f;
  f.mark = md.mark;
  f.priority = md.priority;
  f.ingress_ifindex = md.ingress_ifindex;
  f.ifindex = md.ifindex;
  std::copy(std::begin(md.cb), std::end(md.cb), f.cb);
  f.tstamp = md.tstamp;
  f.wire_len = md.wire_len;
  f.gso_segs = md.gso_segs;
  f.gso_size = md.gso_size;
  f.hwtstamp = md.hwtstamp;
  f.tc_index = md.tc_index;
  f.tc_classid = md.tc_classid;
  f.queue_mapping = md.queue_mapping;
  f.hash = md.hash;
  f.pkt_type = md.pkt_type;
  f.protocol = __builtin_bswap16(static_cast<uint16_t>(md.protocol));
  f.vlan_present = md.vlan_present != 0;
  f.vlan_tci = static_cast<uint16_t>(md.vlan_tci);
  f.vlan_proto = __builtin_bswap16(static_cast<uint16_t>(md.vlan_proto));
  return f;
}

std::string_view to_string(TcAction a) {
  switch (a) {
    case TcAction::Unspec: return "TC_ACT_UNSPEC";
    case TcAction::Ok: return "TC_ACT_OK";
    case TcAction::Reclassify: return "TC_ACT_RECLASSIFY";
    case TcAction::Shot: return "TC_ACT_SHOT";
    case TcAction::Pipe: return "TC_ACT_PIPE";
    case TcAction::Stolen: return "TC_ACT_STOLEN";
    case TcAction::Queued: return "TC_ACT_QUEUED";
    case TcAction::Repeat: return "TC_ACT_REPEAT";
    case TcAction::Redirect: return "TC_ACT_REDIRECT";
    case TcAction::Trap: return "TC_ACT_TRAP";
  }
  return "TC_ACT_UNKNOWN";
}

}  // namespace ebpfvm
