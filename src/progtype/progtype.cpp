#include "progtype/progtype.hpp"

#include <algorithm>

#include "ebpfvm/helpers.hpp"
#include "progtype/skb.hpp"
#include "progtype/xdp.hpp"

namespace ebpfvm::detail {
namespace {

constexpr int32_t kInPlace = -1;
constexpr auto kScalar = CtxValue::Scalar;

constexpr CtxField kXdpFields[] = {
    {0, 4, "data", false, static_cast<int32_t>(offsetof(XdpCtx, data)), CtxValue::Packet},
    {4, 4, "data_end", false, static_cast<int32_t>(offsetof(XdpCtx, data_end)), CtxValue::PacketEnd},
    {8, 4, "data_meta", false, static_cast<int32_t>(offsetof(XdpCtx, data_meta)), CtxValue::PacketMeta},
    {12, 4, "ingress_ifindex", true, kInPlace},
    {16, 4, "rx_queue_index", true, kInPlace},
    {20, 4, "egress_ifindex", true, kInPlace},
};

// struct __sk_buff as tc programs may use it (the kernel's tc_cls_act_is_valid_access): the socket
// fields (family .. local_port), flow_keys, sk and tstamp_type are refused.
constexpr CtxField kTcFields[] = {
    {0, 4, "len", true, kInPlace},
    {4, 4, "pkt_type", true, kInPlace},
    {8, 4, "mark", true, kInPlace, kScalar, 4},
    {12, 4, "queue_mapping", true, kInPlace, kScalar, 2},
    {16, 4, "protocol", true, kInPlace},
    {20, 4, "vlan_present", true, kInPlace},
    {24, 4, "vlan_tci", true, kInPlace},
    {28, 4, "vlan_proto", true, kInPlace},
    {32, 4, "priority", true, kInPlace, kScalar, 4},
    {36, 4, "ingress_ifindex", true, kInPlace},
    {40, 4, "ifindex", true, kInPlace},
    {44, 4, "tc_index", true, kInPlace, kScalar, 2},
    {48, 20, "cb", true, kInPlace, kScalar, 8, true},
    {68, 4, "hash", true, kInPlace},
    {72, 4, "tc_classid", true, kInPlace, kScalar, 2},
    {76, 4, "data", false, static_cast<int32_t>(offsetof(SkbCtx, data)), CtxValue::Packet},
    {80, 4, "data_end", false, static_cast<int32_t>(offsetof(SkbCtx, data_end)), CtxValue::PacketEnd},
    {84, 4, "napi_id", true, kInPlace},
    {140, 4, "data_meta", false, static_cast<int32_t>(offsetof(SkbCtx, data_meta)), CtxValue::PacketMeta},
    {152, 8, "tstamp", false, kInPlace, kScalar, 8},
    {160, 4, "wire_len", true, kInPlace},
    {164, 4, "gso_segs", true, kInPlace},
    {176, 4, "gso_size", true, kInPlace},
    {184, 8, "hwtstamp", false, kInPlace},
};

// Socket filters (sk_filter_is_valid_access): no packet pointers, no tc fields; only cb is writable.
constexpr CtxField kSocketFields[] = {
    {0, 4, "len", true, kInPlace},
    {4, 4, "pkt_type", true, kInPlace},
    {8, 4, "mark", true, kInPlace},
    {12, 4, "queue_mapping", true, kInPlace},
    {16, 4, "protocol", true, kInPlace},
    {20, 4, "vlan_present", true, kInPlace},
    {24, 4, "vlan_tci", true, kInPlace},
    {28, 4, "vlan_proto", true, kInPlace},
    {32, 4, "priority", true, kInPlace},
    {36, 4, "ingress_ifindex", true, kInPlace},
    {40, 4, "ifindex", true, kInPlace},
    {44, 4, "tc_index", true, kInPlace},
    {48, 20, "cb", true, kInPlace, kScalar, 8, true},
    {68, 4, "hash", true, kInPlace},
    {84, 4, "napi_id", true, kInPlace},
    {164, 4, "gso_segs", true, kInPlace},
    {176, 4, "gso_size", true, kInPlace},
};

// Helpers every type may call (the kernel's bpf_base_func_proto, as far as ebpfvm has them).
#define EBPFVM_BASE_HELPERS 1, 2, 3, 5, 6, 7, 8, 12, 87, 88, 89, 93, 94, 125, 130, 131, 132, 133, 160, 164, 177, 181

constexpr uint32_t kXdpHelpers[] = {EBPFVM_BASE_HELPERS, 23, 25, 28, 44, 51, 54, 65, 69, 188, 189, 190};
// tc (tc_cls_act_func_proto): skb_store_bytes, l3/l4_csum_replace, clone_redirect,
// get_cgroup_classid, vlan push/pop, get/set_tunnel_key, redirect, get_route_realm,
// perf_event_output, skb_load_bytes, csum_diff, get/set_tunnel_opt, change_proto, change_type,
// under_cgroup, get_hash_recalc, change_tail, pull_data, csum_update, set_hash_invalid,
// change_head, set_hash, adjust_room, load_bytes_relative, fib_lookup, ecn_set_ce, csum_level,
// redirect_neigh, redirect_peer.
constexpr uint32_t kTcHelpers[] = {EBPFVM_BASE_HELPERS, 9, 10, 11, 13, 17, 18, 19, 20, 21, 23, 24, 25, 26, 28, 29, 30,
                                   31, 32, 33, 34, 38, 39, 40, 41, 43, 48, 50, 68, 69, 97, 135, 152, 155};
// Socket filters: skb_load_bytes, skb_load_bytes_relative, perf_event_output.
constexpr uint32_t kSocketHelpers[] = {EBPFVM_BASE_HELPERS, 25, 26, 68};
#undef EBPFVM_BASE_HELPERS

constexpr ProgTypeDesc kTypes[] = {
    {ProgType::Xdp, "xdp", VerifyOptions::Context::Xdp, kXdpFields, kXdpCtxVisible, false, false, kXdpHelpers,
     "an XDP action (XDP_ABORTED 0, XDP_DROP 1, XDP_PASS 2, XDP_TX 3, XDP_REDIRECT 4)"},
    {ProgType::SchedCls, "sched_cls", VerifyOptions::Context::SchedCls, kTcFields, kSkbCtxVisible, true, true, kTcHelpers,
     "a tc action (TC_ACT_OK 0, TC_ACT_SHOT 2, TC_ACT_REDIRECT 7, ...; TC_ACT_UNSPEC -1)"},
    {ProgType::SocketFilter, "socket_filter", VerifyOptions::Context::SocketFilter, kSocketFields, kSkbCtxVisible, true, true,
     kSocketHelpers, "the number of bytes of the packet to keep (0 drops it)"},
};

}  // namespace

const ProgTypeDesc* prog_type_desc(ProgType t) {
  for (const ProgTypeDesc& d : kTypes)
    if (d.type == t) return &d;
  return nullptr;
}

const ProgTypeDesc* prog_type_desc(VerifyOptions::Context c) {
  for (const ProgTypeDesc& d : kTypes)
    if (d.context == c) return &d;
  return nullptr;
}

bool helper_allowed(const ProgTypeDesc& d, uint32_t id) {
  if (std::find(d.helpers.begin(), d.helpers.end(), id) != d.helpers.end()) return true;
  return !HelperRegistry::builtin().find(id);
}

std::span<const CtxField> xdp_ctx_fields() { return kXdpFields; }

const CtxField* ctx_field_for(std::span<const CtxField> fields, int64_t off, unsigned size, bool write) {
  for (const CtxField& f : fields) {
    const int64_t fo = f.off, fs = f.size;
    if (off < fo || off >= fo + fs) continue;
    if (write && !f.store_size) return nullptr;
    if (off == fo && size == f.size) return &f;
    const bool aligned = size && off % size == 0 && off + size <= fo + fs;
    if (f.any_access && aligned && size <= 8) return &f;
    if (!write && f.narrow_ok && aligned && size < f.size) return &f;
    return nullptr;
  }
  return nullptr;
}

}  // namespace ebpfvm::detail
