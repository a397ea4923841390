// AF_XDP ports: one socket per interface queue over a UMEM of 4 KiB frames (libxdp's xsk rings),
// and the kernel XDP program that sends the queue's packets to it.
//
// Frames are owned by exactly one of: the kernel's receive side (the fill ring, then the receive
// ring), the caller (received, not yet recycled or transmitted), the kernel's send side (the send
// ring, then the completion ring), or the free list (frames for send() and for topping up the fill
// ring). The receive side is the port's loop thread's alone; the send side and the free list are
// shared with other loops that send here, under one lock.
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "ebpfvm/xsk.hpp"
#include "xsk/attach.hpp"

namespace ebpfvm {

namespace {
constexpr uint32_t kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;  // 4096: one page, aligned chunks
constexpr uint32_t kTxOffset = 256;  // send() copies leave the kernel's usual headroom free
}  // namespace

struct XskPort::Impl {
  std::string iface;
  uint32_t ifindex = 0, queue = 0;
  uint8_t* area = nullptr;
  size_t area_size = 0;
  xsk_umem* umem = nullptr;
  xsk_socket* xsk = nullptr;
  xsk_ring_prod fill{}, tx{};
  xsk_ring_cons comp{}, rx{};
  int fd = -1;
  bool receiving = false, zero_copy = false;
  XdpAttachMode mode = XdpAttachMode::Auto;
  std::shared_ptr<xsk::Attachment> attachment;
  // receive side (the loop's thread)
  std::vector<uint64_t> to_fill;  // recycled, not yet in the fill ring
  uint32_t fill_target = 0;       // frames the receive side should own
  uint32_t rx_owned = 0;          // frames it owns now (fill ring, receive ring, being written)
  // send side and free list
  mutable std::mutex mu;
  std::vector<uint64_t> free;
  uint32_t in_flight = 0;  // in the send ring or the completion ring

  ~Impl() {
    if (xsk) xsk_socket__delete(xsk);
    if (umem) xsk_umem__delete(umem);
    if (area) munmap(area, area_size);
  }
  uint64_t chunk(uint64_t addr) const { return addr & ~uint64_t{kFrameSize - 1}; }
  // Completed sends back to the free list (under mu).
  void reap() {
    uint32_t idx = 0;
    const uint32_t n = xsk_ring_cons__peek(&comp, 1024, &idx);
    for (uint32_t i = 0; i < n; ++i) free.push_back(chunk(*xsk_ring_cons__comp_addr(&comp, idx + i)));
    if (n) xsk_ring_cons__release(&comp, n);
    in_flight -= std::min(in_flight, n);
  }
  // Queues one descriptor on the send ring (under mu).
  bool queue_tx(uint64_t addr, uint32_t len) {
    uint32_t idx = 0;
    if (xsk_ring_prod__reserve(&tx, 1, &idx) != 1) return false;
    xdp_desc* d = xsk_ring_prod__tx_desc(&tx, idx);
    d->addr = addr;
    d->len = len;
    d->options = 0;
    xsk_ring_prod__submit(&tx, 1);
    ++in_flight;
    return true;
  }
  // Copy mode sends only when asked (sendto); zero-copy drivers when they say they need waking.
  void kick_tx() {
    if (!in_flight) return;
    if (zero_copy && !xsk_ring_prod__needs_wakeup(&tx)) return;
    (void)sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0);  // EAGAIN/EBUSY/ENOBUFS: later
  }
  void refill() {
    if (!receiving) return;
    if (rx_owned + to_fill.size() < fill_target) {
      std::lock_guard lk(mu);
      if (free.size() < 64) reap();
      while (rx_owned + to_fill.size() < fill_target && !free.empty()) {
        to_fill.push_back(free.back());
        free.pop_back();
      }
    }
    if (to_fill.empty()) return;
    uint32_t idx = 0;
    const uint32_t n = xsk_ring_prod__reserve(&fill, static_cast<uint32_t>(to_fill.size()), &idx);
    for (uint32_t i = 0; i < n; ++i) *xsk_ring_prod__fill_addr(&fill, idx + i) = to_fill[to_fill.size() - 1 - i];
    if (n) xsk_ring_prod__submit(&fill, n);
    to_fill.resize(to_fill.size() - n);
    rx_owned += n;
  }
};

XskPort::XskPort(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
XskPort::~XskPort() = default;
const std::string& XskPort::iface() const { return impl_->iface; }
uint32_t XskPort::ifindex() const { return impl_->ifindex; }
uint32_t XskPort::queue() const { return impl_->queue; }
int XskPort::fd() const { return impl_->fd; }
bool XskPort::zero_copy() const { return impl_->zero_copy; }
XdpAttachMode XskPort::attach_mode() const { return impl_->mode; }

Result<std::unique_ptr<XskPort>> XskPort::open(const XskPortOptions& o) {
  const std::string where = o.iface + "@" + std::to_string(o.queue);
  auto fail = [&](const std::string& what, int err) {
    return make_error(err == EPERM || err == EACCES ? Errc::PermissionDenied : Errc::Io,
                      where + ": " + what + (err ? std::string(": ") + std::strerror(err) : ""));
  };
  if (o.frames < 64 || o.frames > (1u << 20) || (o.frames & (o.frames - 1)))
    return make_error(Errc::InvalidArgument, where + ": frames must be a power of two from 64 to 1048576");
  if (o.ring_size < 64 || o.ring_size > o.frames || (o.ring_size & (o.ring_size - 1)))
    return make_error(Errc::InvalidArgument, where + ": the ring size must be a power of two from 64 to the frame count");
  auto impl = std::make_unique<Impl>();
  impl->iface = o.iface;
  impl->queue = o.queue;
  impl->ifindex = if_nametoindex(o.iface.c_str());
  if (!impl->ifindex) return make_error(Errc::NotFound, "no interface '" + o.iface + "'");
  impl->area_size = size_t{o.frames} * kFrameSize;
  void* area = mmap(nullptr, impl->area_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (area == MAP_FAILED) return fail("cannot map " + std::to_string(impl->area_size) + " bytes of UMEM", errno);
  impl->area = static_cast<uint8_t*>(area);
  // The fill ring twice the receive ring, as libxdp's defaults have it: a burst that arrives while
  // the loop is descheduled finds frames to land in.
  const uint32_t fill_size = std::min(o.frames, 2 * o.ring_size);
  const xsk_umem_config ucfg{fill_size, o.ring_size, kFrameSize, 0, 0};
  if (int r = xsk_umem__create(&impl->umem, impl->area, impl->area_size, &impl->fill, &impl->comp, &ucfg); r)
    return fail("cannot register the UMEM (AF_XDP sockets need Linux 4.18 or later and CAP_NET_RAW)", -r);

  impl->receiving = o.receive;
  if (o.receive && o.xsk_map.empty()) {
    auto a = xsk::attach(impl->ifindex, o.iface, o.attach);
    if (!a) return a.error();
    impl->attachment = *a;
    impl->mode = (*a)->mode;
  }
  if (o.bind == XskBindMode::ZeroCopy && impl->mode == XdpAttachMode::Generic)
    return make_error(Errc::InvalidArgument, where + ": zero-copy needs the driver's (native) XDP hook, not generic XDP");
  xsk_socket_config scfg{};
  scfg.rx_size = o.receive ? o.ring_size : 0;
  scfg.tx_size = o.ring_size;
  scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  scfg.bind_flags = XDP_USE_NEED_WAKEUP;
  // Generic XDP hands the socket skbs: only copy mode takes them.
  if (o.bind == XskBindMode::Copy || impl->mode == XdpAttachMode::Generic) scfg.bind_flags |= XDP_COPY;
  if (o.bind == XskBindMode::ZeroCopy) scfg.bind_flags |= XDP_ZEROCOPY;
  int r = 0;
  // A socket closed a moment ago (a previous run's) keeps its queue until the kernel has finished
  // releasing it, which it does shortly after: EBUSY that long is not another user.
  for (int tries = 0; tries < 40; ++tries) {
    r = xsk_socket__create(&impl->xsk, o.iface.c_str(), o.queue, impl->umem, o.receive ? &impl->rx : nullptr, &impl->tx, &scfg);
    if (r != -EBUSY) break;
    usleep(50'000);
  }
  if (r) {
    const int err = -r;
    std::string why = "cannot bind an AF_XDP socket";
    if (err == EOPNOTSUPP || (err == EINVAL && o.bind == XskBindMode::ZeroCopy)) why += " (the driver has no zero-copy support: use copy mode)";
    else if (err == EBUSY) why += " (another AF_XDP socket has this queue)";
    else if (err == EINVAL) why += " (no such queue?)";
    return fail(why, err);
  }
  impl->fd = xsk_socket__fd(impl->xsk);
  xdp_options opts{};
  socklen_t optlen = sizeof opts;
  if (getsockopt(impl->fd, SOL_XDP, XDP_OPTIONS, &opts, &optlen) == 0) impl->zero_copy = opts.flags & XDP_OPTIONS_ZEROCOPY;

  if (o.receive) {
    int map_fd = impl->attachment ? impl->attachment->xsks_map : -1;
    int pinned = -1;
    if (!o.xsk_map.empty()) {
      pinned = bpf_obj_get(o.xsk_map.c_str());
      if (pinned < 0) return fail("cannot open the pinned xskmap " + o.xsk_map, errno);
      map_fd = pinned;
    }
    const uint32_t key = o.queue;
    const int fd = impl->fd;
    const int r = bpf_map_update_elem(map_fd, &key, &fd, 0);
    const int err = errno;
    if (pinned >= 0) close(pinned);
    if (r) return fail("cannot put the socket in the xskmap" + (o.xsk_map.empty() ? std::string() : " " + o.xsk_map), err);
  }
  // Half the frames wait for packets, half are for sending (all of them on a send-only port).
  impl->free.reserve(o.frames);
  impl->fill_target = o.receive ? std::min(o.frames / 2, fill_size) : 0;
  for (uint32_t i = o.frames; i-- > 0;) impl->free.push_back(uint64_t{i} * kFrameSize);
  impl->refill();
  return std::unique_ptr<XskPort>(new XskPort(std::move(impl)));
}

Result<size_t> XskPort::receive(std::span<XskFrame> out, int timeout_ms) {
  Impl& m = *impl_;
  if (!m.receiving) return size_t{0};
  m.refill();
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(&m.rx, static_cast<uint32_t>(out.size()), &idx);
  if (!n) {
    // The kernel asks to be woken when the fill ring was empty: a packet may wait for a frame.
    if (xsk_ring_prod__needs_wakeup(&m.fill)) (void)recvfrom(m.fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    if (timeout_ms == 0) return size_t{0};
    pollfd p{m.fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) < 0 && errno != EINTR) return make_error(Errc::Io, m.iface + ": poll: " + std::strerror(errno));
    n = xsk_ring_cons__peek(&m.rx, static_cast<uint32_t>(out.size()), &idx);
  }
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&m.rx, idx + i);
    out[i] = {d->addr, d->len};
  }
  if (n) xsk_ring_cons__release(&m.rx, n);
  m.rx_owned -= std::min(m.rx_owned, n);
  return size_t{n};
}

void XskPort::wrap(const XskFrame& f, XdpBuffer& buffer) {
  const uint64_t base = impl_->chunk(f.addr);
  buffer.wrap({impl_->area + base, kFrameSize}, static_cast<uint32_t>(f.addr - base), f.len);
}

void XskPort::recycle(const XskFrame& f) { impl_->to_fill.push_back(impl_->chunk(f.addr)); }

bool XskPort::transmit(const XdpBuffer& buffer) {
  Impl& m = *impl_;
  const auto p = buffer.packet();
  const uint64_t addr = static_cast<uint64_t>(p.data() - m.area);
  std::lock_guard lk(m.mu);
  if (m.queue_tx(addr, static_cast<uint32_t>(p.size()))) return true;
  m.to_fill.push_back(m.chunk(addr));
  return false;
}

bool XskPort::send(std::span<const uint8_t> packet) {
  Impl& m = *impl_;
  if (packet.size() > kFrameSize - kTxOffset) return false;
  std::lock_guard lk(m.mu);
  if (m.free.empty()) m.reap();
  if (m.free.empty()) {
    m.kick_tx();  // copy mode: completions come only from sending
    m.reap();
    if (m.free.empty()) return false;
  }
  const uint64_t frame = m.free.back();
  std::memcpy(m.area + frame + kTxOffset, packet.data(), packet.size());
  if (!m.queue_tx(frame + kTxOffset, static_cast<uint32_t>(packet.size()))) return false;
  m.free.pop_back();
  return true;
}

void XskPort::flush() {
  Impl& m = *impl_;
  m.refill();
  std::lock_guard lk(m.mu);
  m.kick_tx();
  m.reap();
}

void XskPort::flush_send() {
  std::lock_guard lk(impl_->mu);
  impl_->kick_tx();
  impl_->reap();
}

uint32_t XskPort::in_flight() const {
  std::lock_guard lk(impl_->mu);
  return impl_->in_flight;
}

XskPort::KernelStats XskPort::kernel_stats() const {
  xdp_statistics s{};
  socklen_t len = sizeof s;
  KernelStats k;
  if (getsockopt(impl_->fd, SOL_XDP, XDP_STATISTICS, &s, &len) != 0) return k;
  k.rx_dropped = s.rx_dropped;
  k.rx_invalid = s.rx_invalid_descs;
  k.tx_invalid = s.tx_invalid_descs;
  if (len >= sizeof s) {  // Linux 5.9+
    k.rx_ring_full = s.rx_ring_full;
    k.fill_ring_empty = s.rx_fill_ring_empty_descs;
    k.tx_ring_empty = s.tx_ring_empty_descs;
  }
  return k;
}

}  // namespace ebpfvm
