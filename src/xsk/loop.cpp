// PacketLoop: a batch from each receiving port, the program run on each frame in place, and the
// verdict carried out. Redirect targets are resolved per frame from the maps as they are then
// (a devmap slot may change between packets, as in the kernel).
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "ebpfvm/xsk.hpp"
#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"

namespace ebpfvm {

struct PacketLoop::State {
  LoadedProgram program;
  std::vector<XskPort*> rx, tx;
  PacketLoopOptions opt;
  std::unordered_map<uint32_t, Map> maps;  // by id: the targets of bpf_redirect_map
  XdpBuffer buf;
  std::vector<XskFrame> frames;
  std::vector<XskPort*> touched;  // ports sent to in this batch, to flush

  XskPort* port_for(uint32_t ifindex, XskPort* in) const {
    if (in->ifindex() == ifindex) return in;
    for (XskPort* p : tx)
      if (p->ifindex() == ifindex) return p;
    for (XskPort* p : rx)
      if (p->ifindex() == ifindex) return p;
    return nullptr;
  }
  // The interface a devmap/devmap_hash value names (its first 4 bytes; struct bpf_devmap_val
  // starts with the ifindex), 0 for an empty slot. Read in place, as a program's lookup reads it:
  // no copy, no allocation per redirected frame.
  uint32_t devmap_ifindex(const Map& m, uint32_t key) const {
    maps::reclaim::Guard g;
    const void* v = m.impl()->lookup(&key, opt.worker);
    if (!v) return 0;
    uint32_t ifindex;
    std::memcpy(&ifindex, v, 4);
    return ifindex;
  }
  void send_to(XskPort* out, XskPort* in, FrameEvent& ev, bool& in_place) {
    if (!out) {
      ev.fate = FrameEvent::Fate::NoRoute;
      return;
    }
    ev.out = out;
    // The frame itself where it can leave by the port it came in on; a copy elsewhere.
    const bool ok = out == in && !in_place ? (in_place = true, in->transmit(buf)) : out->send(buf.packet());
    ev.fate = ok ? FrameEvent::Fate::Sent : FrameEvent::Fate::Full;
    if (ok) ++ev.copies;
    if (out != in) touch(out);
  }
  // Each port sent to is flushed once per batch, not once per frame (a flush may be a system call).
  void touch(XskPort* p) {
    if (std::find(touched.begin(), touched.end(), p) == touched.end()) touched.push_back(p);
  }
  void redirect(XskPort* in, FrameEvent& ev, bool& in_place) {
    const RedirectTarget& t = ev.result.redirect;
    if (t.kind == RedirectTarget::Kind::Ifindex) return send_to(port_for(t.ifindex, in), in, ev, in_place);
    auto it = maps.find(t.map_id);
    if (t.kind != RedirectTarget::Kind::Map || it == maps.end()) {
      ev.fate = FrameEvent::Fate::NoRoute;
      return;
    }
    const Map& m = it->second;
    const MapType type = m.spec().type;
    if (type == MapType::Xskmap) {
      ev.fate = FrameEvent::Fate::Delivered;
      if (opt.on_deliver) opt.on_deliver(buf.packet(), t.key);
      return;
    }
    if (type != MapType::Devmap && type != MapType::DevmapHash) {  // cpumap: no CPUs to hand frames to here
      ev.fate = FrameEvent::Fate::NoRoute;
      return;
    }
    constexpr uint64_t kBroadcast = 1 << 3, kExcludeIngress = 1 << 4;
    if (!(t.flags & kBroadcast)) return send_to(port_for(devmap_ifindex(m, t.key), in), in, ev, in_place);
    // A copy to every slot's interface (not the one it came in on, with BPF_F_EXCLUDE_INGRESS).
    ev.fate = FrameEvent::Fate::NoRoute;
    for (const auto& key : m.keys()) {
      uint32_t k;
      std::memcpy(&k, key.data(), 4);
      const uint32_t ifindex = devmap_ifindex(m, k);
      if (!ifindex || ((t.flags & kExcludeIngress) && ifindex == in->ifindex())) continue;
      XskPort* out = port_for(ifindex, in);
      if (!out) continue;
      // copies only: the frame itself stays until every copy is made
      const bool ok = out->send(buf.packet());
      ev.copies += ok;
      ev.out = out;
      touch(out);
    }
    if (ev.copies) ev.fate = FrameEvent::Fate::Sent;
  }
  Result<void> handle(XskPort* in, const XskFrame& f) {
    in->wrap(f, buf);
    FrameEvent ev;
    ev.in = in;
    ev.len_in = f.len;
    auto r = program.run_xdp(buf, {opt.worker, in->ifindex(), in->queue()});
    if (!r) {
      in->recycle(f);
      return r.error();
    }
    ev.result = std::move(*r);
    ev.packet = buf.packet();
    bool in_place = false;  // the frame went out as it is: not to be recycled
    switch (ev.result.action) {
      case XdpAction::Tx:
        send_to(in, in, ev, in_place);
        break;
      case XdpAction::Redirect:
        redirect(in, ev, in_place);
        break;
      case XdpAction::Pass:
        if (opt.on_pass) opt.on_pass(buf.packet());
        break;
      default:
        break;
    }
    if (opt.on_frame) opt.on_frame(ev);
    if (!in_place) in->recycle(f);
    return {};
  }
};

PacketLoop::PacketLoop(const LoadedProgram& program, const Object& object, std::vector<XskPort*> rx, std::vector<XskPort*> tx,
                       PacketLoopOptions options)
    : s_(new State{program, std::move(rx), std::move(tx), std::move(options), {}, {}, {}, {}}) {
  for (Map& m : object.maps())
    if (m.spec().type == MapType::Devmap || m.spec().type == MapType::DevmapHash || m.spec().type == MapType::Xskmap ||
        m.spec().type == MapType::Cpumap)
      s_->maps.emplace(m.id(), m);
  s_->frames.resize(std::max<uint32_t>(1, s_->opt.batch));
}
PacketLoop::~PacketLoop() = default;
PacketLoop::PacketLoop(PacketLoop&&) noexcept = default;

Result<size_t> PacketLoop::poll(int timeout_ms, size_t max_frames) {
  State& s = *s_;
  size_t total = 0;
  std::optional<Error> fault;
  // One batch from each receiving port, each frame run and acted on; an error of the socket only.
  auto take = [&]() -> Result<void> {
    for (XskPort* in : s.rx) {
      if (total >= max_frames) break;
      auto n = in->receive(std::span(s.frames).first(std::min(s.frames.size(), max_frames - total)), 0);
      if (!n) return n.error();
      for (size_t i = 0; i < *n; ++i)
        if (auto r = s.handle(in, s.frames[i]); !r && !fault) fault = r.error();
      total += *n;
    }
    return {};
  };
  if (auto r = take(); !r) return r.error();
  if (!total && timeout_ms != 0) {
    // Nothing yet: look again for a while before sleeping (a loop that sleeps has the kernel wake
    // it for nearly every packet), then wait on every receiving socket at once.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(s.opt.spin_us);
    while (!total && std::chrono::steady_clock::now() < until)
      if (auto r = take(); !r) return r.error();
    if (!total) {
      std::vector<pollfd> fds;
      for (XskPort* in : s.rx) fds.push_back({in->fd(), POLLIN, 0});
      (void)::poll(fds.data(), fds.size(), timeout_ms);
      if (auto r = take(); !r) return r.error();
    }
  }
  for (XskPort* p : s.rx) p->flush();
  for (XskPort* p : s.touched) p->flush_send();
  s.touched.clear();
  if (fault) return *fault;
  return total;
}

}  // namespace ebpfvm
