// A packet buffer laid out as the kernel's XDP frames are: 256 bytes of headroom before the packet
// (for bpf_xdp_adjust_head and bpf_xdp_adjust_meta) and tailroom after it (for
// bpf_xdp_adjust_tail, up to the frame minus struct skb_shared_info, as in the kernel).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace ebpfvm {

namespace detail {
struct XdpCtx;
}

class XdpBuffer {
 public:
  XdpBuffer();
  explicit XdpBuffer(std::span<const uint8_t> packet);
  ~XdpBuffer();
  XdpBuffer(XdpBuffer&&) noexcept;
  XdpBuffer& operator=(XdpBuffer&&) noexcept;

  // Replaces the packet; headroom, metadata and tailroom start over. Frames grow to fit: the frame
  // is 4 KiB (a page) or, for larger packets, the packet plus headroom and tailroom.
  void assign(std::span<const uint8_t> packet);
  // Points the buffer at `packet` itself, without a copy and without headroom or tailroom: only
  // for verified programs that do not write the packet (VerifyReport::writes_packet is false);
  // run_xdp refuses others. `packet` must outlive the run.
  void view(std::span<const uint8_t> packet);
  bool is_view() const { return view_; }
  // Points the buffer at a frame the caller owns, such as an AF_XDP UMEM frame: the packet is
  // `len` bytes from `headroom` into `frame`, and the program may use the whole frame as it would
  // a kernel frame of that size (headroom for adjust_head/meta, tailroom up to the frame minus
  // struct skb_shared_info for adjust_tail). `frame` must outlive the run.
  void wrap(std::span<uint8_t> frame, uint32_t headroom, uint32_t len);

  std::span<uint8_t> packet();          // [data, data_end) as the program left it
  std::span<const uint8_t> packet() const;
  std::span<uint8_t> metadata();        // [data_meta, data)
  uint32_t headroom() const;            // bytes before data
  uint32_t frame_size() const;

  detail::XdpCtx& ctx() { return *ctx_; }

 private:
  std::vector<uint8_t> frame_;
  std::unique_ptr<detail::XdpCtx> ctx_;
  bool view_ = false;
};

}  // namespace ebpfvm
