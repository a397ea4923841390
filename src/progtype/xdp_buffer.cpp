#include <algorithm>
#include <cstring>

#include "ebpfvm/xdp.hpp"
#include "progtype/xdp.hpp"

namespace ebpfvm {

XdpBuffer::XdpBuffer() : ctx_(std::make_unique<detail::XdpCtx>()) { assign({}); }
XdpBuffer::XdpBuffer(std::span<const uint8_t> packet) : ctx_(std::make_unique<detail::XdpCtx>()) { assign(packet); }
XdpBuffer::~XdpBuffer() = default;
XdpBuffer::XdpBuffer(XdpBuffer&&) noexcept = default;
XdpBuffer& XdpBuffer::operator=(XdpBuffer&&) noexcept = default;

void XdpBuffer::view(std::span<const uint8_t> packet) {
  view_ = true;
  detail::XdpCtx& x = *ctx_;
  x.md = {};
  x.hard_start = nullptr;
  x.frame_size = 0;
  x.data = reinterpret_cast<uint64_t>(packet.data());
  x.data_end = x.data + packet.size();
  x.data_meta = x.data;
}

void XdpBuffer::wrap(std::span<uint8_t> frame, uint32_t headroom, uint32_t len) {
  view_ = false;
  // A frame too small for its own packet is cut to what it holds: nothing past it is reachable.
  headroom = static_cast<uint32_t>(std::min<size_t>(headroom, frame.size()));
  len = static_cast<uint32_t>(std::min<size_t>(len, frame.size() - headroom));
  detail::XdpCtx& x = *ctx_;
  x.md = {};
  x.hard_start = frame.data();
  x.frame_size = static_cast<uint32_t>(frame.size());
  x.data = reinterpret_cast<uint64_t>(frame.data() + headroom);
  x.data_end = x.data + len;
  x.data_meta = x.data;
}

void XdpBuffer::assign(std::span<const uint8_t> packet) {
  view_ = false;
  const size_t need = detail::kXdpHeadroom + packet.size() + detail::kXdpSharedInfo;
  const size_t frame = std::max<size_t>(4096, (need + 4095) & ~size_t{4095});
  // Stale bytes outside the packet are never visible: the helpers that expose headroom or
  // tailroom (adjust_head/meta/tail) zero what they expose.
  if (frame_.size() != frame) frame_.assign(frame, 0);
  if (!packet.empty()) std::memcpy(frame_.data() + detail::kXdpHeadroom, packet.data(), packet.size());
  detail::XdpCtx& x = *ctx_;
  x.md = {};
  x.hard_start = frame_.data();
  x.frame_size = static_cast<uint32_t>(frame);
  x.data = reinterpret_cast<uint64_t>(frame_.data() + detail::kXdpHeadroom);
  x.data_end = x.data + packet.size();
  x.data_meta = x.data;
}

std::span<uint8_t> XdpBuffer::packet() {
  return {reinterpret_cast<uint8_t*>(ctx_->data), static_cast<size_t>(ctx_->data_end - ctx_->data)};
}
std::span<const uint8_t> XdpBuffer::packet() const {
  return {reinterpret_cast<const uint8_t*>(ctx_->data), static_cast<size_t>(ctx_->data_end - ctx_->data)};
}
std::span<uint8_t> XdpBuffer::metadata() {
  return {reinterpret_cast<uint8_t*>(ctx_->data_meta), static_cast<size_t>(ctx_->data - ctx_->data_meta)};
}
uint32_t XdpBuffer::headroom() const {
  return static_cast<uint32_t>(ctx_->data - reinterpret_cast<uint64_t>(ctx_->hard_start));
}
uint32_t XdpBuffer::frame_size() const { return ctx_->frame_size; }

}  // namespace ebpfvm
