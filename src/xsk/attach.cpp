#include "xsk/attach.hpp"

#include <linux/bpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

namespace ebpfvm::xsk {
namespace {

std::mutex g_mu;
std::map<uint32_t, std::weak_ptr<Attachment>> g_attached;

constexpr uint32_t kMaxQueues = 256;
constexpr int kEnotsupp = 524;  // the kernel's own ENOTSUPP, which bpf() can return  // xskmap slots: one per receive queue

// r2 = ctx->rx_queue_index; return bpf_redirect_map(&xsks, r2, XDP_PASS): the low bits of the
// flags are what the helper returns when the slot is empty (Linux 5.3+).
int load_program(int map_fd, std::string& log) {
  const bpf_insn insns[] = {
      {BPF_LDX | BPF_W | BPF_MEM, 2, 1, 16, 0},
      {BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map_fd},
      {0, 0, 0, 0, 0},
      {BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, XDP_PASS},
      {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  char buf[2048] = {};
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 0, .log_size = sizeof buf, .log_buf = buf);
  const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "ebpfvm_xsk", "GPL", insns, sizeof insns / sizeof insns[0], &opts);
  if (fd < 0) {
    const int err = errno;
    opts.log_level = 1;
    (void)bpf_prog_load(BPF_PROG_TYPE_XDP, "ebpfvm_xsk", "GPL", insns, sizeof insns / sizeof insns[0], &opts);
    log = buf;
    errno = err;
  }
  return fd;
}

const char* mode_name(XdpAttachMode m) { return m == XdpAttachMode::Native ? "native" : m == XdpAttachMode::Generic ? "generic" : "any"; }

// Attaches in one mode: a bpf_link where the kernel has them, netlink otherwise. 0 or -errno.
int attach_in(Attachment& a, XdpAttachMode mode) {
  const uint32_t flags = mode == XdpAttachMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  LIBBPF_OPTS(bpf_link_create_opts, lopts, .flags = flags);
  a.link = bpf_link_create(a.prog, static_cast<int>(a.ifindex), BPF_XDP, &lopts);
  if (a.link >= 0) {
    a.mode = mode;
    return 0;
  }
  const int err = errno;
  if (err != EINVAL && err != EOPNOTSUPP && err != kEnotsupp) return -err;
  if (int r = bpf_xdp_attach(static_cast<int>(a.ifindex), a.prog, flags | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr); r) return r;
  a.flags = flags;
  a.mode = mode;
  return 0;
}

}  // namespace

Attachment::~Attachment() {
  if (link >= 0) close(link);  // detaches
  else if (flags) {
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = prog);
    (void)bpf_xdp_detach(static_cast<int>(ifindex), flags | XDP_FLAGS_REPLACE, &opts);  // only if still ours
  }
  if (prog >= 0) close(prog);
  if (xsks_map >= 0) close(xsks_map);
}

Result<std::shared_ptr<Attachment>> attach(uint32_t ifindex, const std::string& iface, XdpAttachMode mode) {
  std::lock_guard lk(g_mu);
  if (auto it = g_attached.find(ifindex); it != g_attached.end())
    if (auto a = it->second.lock()) {
      if (mode != XdpAttachMode::Auto && mode != a->mode)
        return make_error(Errc::InvalidArgument, iface + ": already attached in " + mode_name(a->mode) + " mode by another port");
      return a;
    }
  uint32_t existing = 0;
  if (bpf_xdp_query_id(static_cast<int>(ifindex), 0, &existing) == 0 && existing)
    return make_error(Errc::Exists, iface + " already has an XDP program (id " + std::to_string(existing) +
                                        "): detach it (ip link set dev " + iface + " xdp off) or have it redirect into a pinned xskmap and give that");
  auto a = std::make_shared<Attachment>();
  a->ifindex = ifindex;
  LIBBPF_OPTS(bpf_map_create_opts, mopts);
  a->xsks_map = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "ebpfvm_xsks", 4, 4, kMaxQueues, &mopts);
  if (a->xsks_map < 0) {
    const int err = errno;
    return make_error(err == EPERM ? Errc::PermissionDenied : Errc::Io,
                      iface + ": cannot create an xskmap: " + std::strerror(err) + (err == EPERM ? " (needs CAP_BPF and CAP_NET_ADMIN)" : ""));
  }
  std::string log;
  a->prog = load_program(a->xsks_map, log);
  if (a->prog < 0) return make_error(Errc::Io, iface + ": the kernel refused the AF_XDP redirect program: " + std::strerror(errno) + (log.empty() ? "" : "\n" + log));
  int r = 0;
  if (mode == XdpAttachMode::Auto) {
    r = attach_in(*a, XdpAttachMode::Native);
    if (r) r = attach_in(*a, XdpAttachMode::Generic);
  } else {
    r = attach_in(*a, mode);
  }
  if (r)
    return make_error(-r == EPERM ? Errc::PermissionDenied : Errc::Io, iface + ": cannot attach XDP in " + mode_name(mode) + " mode: " + std::strerror(-r) +
                                                                          (-r == EOPNOTSUPP ? " (the driver has no native XDP: use generic mode)" : ""));
  g_attached[ifindex] = a;
  return a;
}

}  // namespace ebpfvm::xsk
