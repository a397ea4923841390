// The kernel side of AF_XDP receive: an xskmap and a five-instruction XDP program that redirects
// each packet to the socket of the queue it arrived on (XDP_PASS where the queue has none), one
// per interface, shared by every port on it and detached when the last is closed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ebpfvm/error.hpp"
#include "ebpfvm/xsk.hpp"

namespace ebpfvm::xsk {

struct Attachment {
  uint32_t ifindex = 0;
  int prog = -1, xsks_map = -1;
  int link = -1;       // a bpf_link (Linux 5.9+): the kernel detaches the program when it closes
  uint32_t flags = 0;  // netlink attachment (older kernels): the mode, for detaching
  XdpAttachMode mode = XdpAttachMode::Auto;
  ~Attachment();
};

// The interface's attachment, made on first use. Refuses an interface that has an XDP program
// of someone else's, naming it.
Result<std::shared_ptr<Attachment>> attach(uint32_t ifindex, const std::string& iface, XdpAttachMode mode);

}  // namespace ebpfvm::xsk
