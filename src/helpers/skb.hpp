// The helpers of the socket-buffer program types (tc, socket filters), with the kernel's ids,
// prototypes and return codes. builtin.cpp registers them beside the others.
#pragma once

#include <span>

#include "ebpfvm/helpers.hpp"

namespace ebpfvm::detail {

struct SkbCtx;

struct SkbHelperDef {
  uint32_t id;
  const char* name;
  HelperFn fn;
  RetKind ret;
  std::array<ArgKind, 5> args;
  bool changes_packet;  // moves or resizes the packet (the kernel's bpf_helper_changes_pkt_data)
  bool writes_packet;
};
std::span<const SkbHelperDef> skb_helpers();

// The run's skb when `ctx` is it; else null.
SkbCtx* skb_of(uint64_t ctx);
// bpf_redirect in a tc run: TC_ACT_REDIRECT, or TC_ACT_SHOT for flags other than BPF_F_INGRESS.
uint64_t tc_redirect(uint64_t ifindex, uint64_t flags);

}  // namespace ebpfvm::detail
