// The socket-buffer program types (sched_cls, sched_act, socket_filter): struct __sk_buff as
// programs see it, and the buffer behind it.
//
// As for XDP, the u32 fields data/data_end/data_meta are never read in place: the loads the
// verifier proves to read them are rewritten into 64-bit loads of the real pointers kept after the
// struct. Every other field is read in place, so SkbCtx::md holds the values the kernel would
// give; the helpers keep it current (len after a resize, hash, vlan_*, protocol...). Stores to the
// fields the kernel keeps in 16 bits (tc_index, tc_classid, queue_mapping) are rewritten to
// 16-bit stores, so a program reads back what the kernel would.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ebpfvm::detail {

struct SkBuffMd {  // the layout of the kernel's struct __sk_buff (192 bytes)
  uint32_t len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex,
      tc_index, cb[5], hash, tc_classid, data, data_end, napi_id;
  uint32_t family, remote_ip4, local_ip4, remote_ip6[4], local_ip6[4], remote_port, local_port;
  uint32_t data_meta;
  uint64_t flow_keys;
  uint64_t tstamp;
  uint32_t wire_len, gso_segs;
  uint64_t sk;
  uint32_t gso_size;
  uint8_t tstamp_type, pad[3];
  uint64_t hwtstamp;
};
static_assert(sizeof(SkBuffMd) == 192);
static_assert(offsetof(SkBuffMd, data) == 76 && offsetof(SkBuffMd, data_meta) == 140 && offsetof(SkBuffMd, tstamp) == 152 &&
              offsetof(SkBuffMd, gso_size) == 176 && offsetof(SkBuffMd, hwtstamp) == 184);

// What the kernel's skb holds beyond struct __sk_buff that the helpers read or change.
struct SkbState {
  uint32_t mac = 0;        // the MAC header's offset in the buffer
  uint32_t network = 0;    // the network header's offset in the buffer
  bool mac_set = true;     // skb_mac_header_was_set
  bool sw_hash = false, l4_hash = false;
  bool csum_unnecessary = false;  // ip_summed: CHECKSUM_UNNECESSARY, else CHECKSUM_NONE
  uint8_t csum_level = 0;
  bool encapsulation = false;
  uint32_t redirect_clones = 0;  // bpf_clone_redirect copies made in the run
  // Tunnel metadata bpf_skb_set_tunnel_key attached (the kernel's metadata dst): for the
  // encapsulating device the packet is redirected to.
  struct Tunnel {
    bool set = false, ipv6 = false;
    uint64_t id = 0;
    uint8_t tos = 0, ttl = 0;
    uint16_t flags = 0;       // TUNNEL_* in network byte order, as ip_tunnel_flags_to_be16 gives them
    uint32_t label = 0;       // IPv6 flow label, network byte order
    uint8_t dst[16] = {}, src[16] = {};  // network byte order; IPv4 in the first 4 bytes
    uint32_t options_len = 0;             // SkbCtx::tunnel_options' bytes that are set
  } tunnel;
};

struct SkbCtx {
  SkBuffMd md;          // data/data_end/data_meta stay 0: a load the analysis missed reads null
  uint64_t data;        // rewritten loads of md.data read this
  uint64_t data_end;    // ... of md.data_end
  uint64_t data_meta;   // ... of md.data_meta
  uint8_t* buf;         // the buffer (headroom begins here); null for a view
  uint32_t buf_size;
  SkbState st;
  // Options of the tunnel metadata (bpf_skb_set_tunnel_opt): apart from SkbState, so that a new
  // packet clears st without writing 255 bytes; only the first st.tunnel.options_len are read.
  uint8_t tunnel_options[255];
};

inline constexpr uint32_t kSkbCtxVisible = 192;  // bytes of SkbCtx a program may address
static_assert(offsetof(SkbCtx, data) == 192 && offsetof(SkbCtx, data_meta) == 208);

// The largest packet the resizing helpers make: the kernel's BPF_SKB_MAX_LEN (SKB_MAX_ALLOC: four
// pages less struct skb_shared_info). Packets given to a run may be larger (up to kSkbMaxInput).
inline constexpr uint32_t kSkbMaxLen = 16384 - 320;
inline constexpr uint32_t kSkbMaxInput = 65535 + 14;
// The buffer has room for any packet the helpers may make in front of and behind the packet, so
// it is never reallocated during a run and pointers into it never dangle.
inline constexpr uint32_t kSkbHeadroom = kSkbMaxInput + 64;
inline constexpr uint32_t kSkbBufSize = kSkbHeadroom + kSkbMaxInput + 64;

inline uint32_t skb_len(const SkbCtx& s) { return static_cast<uint32_t>(s.data_end - s.data); }
inline uint32_t skb_data_off(const SkbCtx& s) { return static_cast<uint32_t>(s.data - reinterpret_cast<uint64_t>(s.buf)); }

// After the packet moved or changed size: len and data_meta follow (a run has no metadata).
inline void skb_sync(SkbCtx& s) {
  s.md.len = skb_len(s);
  s.data_meta = s.data;
}

}  // namespace ebpfvm::detail
