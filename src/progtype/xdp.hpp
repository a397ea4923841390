// The XDP program type: struct xdp_md as programs see it, and the buffer behind it.
//
// Programs are compiled against the kernel's struct xdp_md, whose data/data_end/data_meta are u32.
// As the kernel does, ebpfvm rewrites the program's loads of those three fields (found by the
// context analysis in progtype/ctx_rewrite) into 64-bit loads of the real pointers kept after the
// struct. The remaining fields are read in place.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ebpfvm::detail {

struct XdpMd {  // the layout of the kernel's struct xdp_md
  uint32_t data;
  uint32_t data_end;
  uint32_t data_meta;
  uint32_t ingress_ifindex;
  uint32_t rx_queue_index;
  uint32_t egress_ifindex;
};

struct XdpCtx {
  XdpMd md;            // data/data_end/data_meta stay 0: a load the analysis missed reads null
  uint64_t data;       // rewritten loads of md.data read this
  uint64_t data_end;   // ... of md.data_end
  uint64_t data_meta;  // ... of md.data_meta
  uint8_t* hard_start; // the start of the frame (headroom begins here)
  uint32_t frame_size; // bytes from hard_start the frame may use, tailroom included
};

inline constexpr uint32_t kXdpCtxVisible = 48;  // bytes of XdpCtx a program may read
static_assert(offsetof(XdpCtx, data) == 24 && offsetof(XdpCtx, data_meta) == 40);

// The kernel's frame geometry (x86-64): 256 bytes of headroom (XDP_PACKET_HEADROOM), room for
// struct xdp_frame at the start of the headroom, and struct skb_shared_info at the end of the frame.
inline constexpr uint32_t kXdpHeadroom = 256;
inline constexpr uint32_t kXdpFrameHeader = 40;   // sizeof(struct xdp_frame)
inline constexpr uint32_t kXdpSharedInfo = 320;   // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
// Metadata: 4-byte multiples up to 255 bytes, as current kernels allow (before Linux 6.x it was 32);
// with 256 bytes of headroom the frame header limits it to 216 first.
inline constexpr uint32_t kXdpMaxMetaLen = 255;
inline constexpr uint32_t kEthHeaderLen = 14;

}  // namespace ebpfvm::detail
