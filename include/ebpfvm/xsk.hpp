// XDP programs on live interfaces, in user space, over AF_XDP sockets (libxdp's xsk API): the
// library `ebpfvm_xsk` beside the core, for packet applications without DPDK.
//
//   auto port = ebpfvm::XskPort::open({.iface = "eth0", .queue = 0});   // attaches the redirect
//   ebpfvm::PacketLoop loop(*prog, obj, {port.get()}, {});             // program from Object::load
//   while (running) loop.poll(100);                                     // receive, run, act
//
// An XskPort owns one socket on one interface queue, its UMEM (the frames the kernel writes
// received packets into and reads sent ones from) and, unless told otherwise, a small XDP program
// on the interface that redirects the queue's packets into the socket. The program runs on each
// frame in place, in the UMEM, with the headroom the kernel left before the packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ebpfvm/error.hpp"
#include "ebpfvm/object.hpp"

namespace ebpfvm {

// How the redirect program is attached (xdp-tools' --mode): Native is the driver's hook, Generic
// the kernel's skb-based one that every interface has; Auto asks for native and falls back.
enum class XdpAttachMode : uint8_t { Auto, Native, Generic };
// How the socket is bound: ZeroCopy maps the UMEM into the driver's rings (drivers that support
// it, native mode only); Copy has the kernel copy each packet; Auto tries zero-copy first.
enum class XskBindMode : uint8_t { Auto, Copy, ZeroCopy };

struct XskPortOptions {
  std::string iface;
  uint32_t queue = 0;
  XdpAttachMode attach = XdpAttachMode::Auto;
  XskBindMode bind = XskBindMode::Auto;
  uint32_t frames = 8192;      // UMEM frames of 4 KiB: half wait in the fill ring, half for sending
  uint32_t ring_size = 2048;   // entries of the receive, send and completion rings (a power of two);
                               // the fill ring has twice as many
  bool receive = true;         // false: a send-only socket (replay); nothing is attached
  // The path of a pinned xskmap that the user's own XDP program (a dispatcher, say) redirects
  // into: the socket is put in it at `queue` and no program is attached.
  std::string xsk_map;
};

// A received frame: where its packet starts in the port's UMEM and how long it is.
struct XskFrame {
  uint64_t addr = 0;
  uint32_t len = 0;
};

class XskPort {
 public:
  // Errors name the interface and queue, and say what the kernel refused (a busy queue, an
  // interface without native XDP, zero-copy the driver lacks).
  static Result<std::unique_ptr<XskPort>> open(const XskPortOptions& options);
  ~XskPort();  // the program detached (if this port attached it), the socket and UMEM freed
  XskPort(const XskPort&) = delete;
  XskPort& operator=(const XskPort&) = delete;

  const std::string& iface() const;
  uint32_t ifindex() const;
  uint32_t queue() const;
  int fd() const;                     // the socket, for poll()
  bool zero_copy() const;             // as bound
  XdpAttachMode attach_mode() const;  // as attached (Native or Generic); Auto when nothing was attached

  // Up to out.size() received frames, waiting at most timeout_ms (0: not at all) for the first.
  // Each frame belongs to the caller until it is given back with recycle() or transmit().
  Result<size_t> receive(std::span<XskFrame> out, int timeout_ms);
  // The frame's packet as XdpBuffer::wrap takes it: the whole UMEM frame and the packet's place.
  void wrap(const XskFrame& frame, XdpBuffer& buffer);
  void recycle(const XskFrame& frame);  // back to the kernel for the next packet
  // Sends a received frame of this port, as the program left it in `buffer` (wrapped with wrap()),
  // without copying it. False (the frame recycled) when the send ring is full.
  bool transmit(const XdpBuffer& buffer);
  // Sends a copy of `packet` (any memory): false when no frame or ring slot is free. Thread-safe
  // against this port's own loop.
  bool send(std::span<const uint8_t> packet);
  // Hands what was recycled and transmitted to the kernel, waking it where it asks to be woken,
  // and takes back the frames it has finished sending. Call after each batch, from the thread
  // that receives on this port.
  void flush();
  // The sending half of flush(), from any thread: after send() to another loop's port.
  void flush_send();
  // Frames given to send() or transmit() that the kernel has not yet finished sending.
  uint32_t in_flight() const;

  // The kernel's counters for the socket (XDP_STATISTICS): packets it dropped because the receive
  // ring was full or no frame was free, and descriptors it found invalid.
  struct KernelStats {
    uint64_t rx_dropped = 0, rx_invalid = 0, tx_invalid = 0, rx_ring_full = 0, fill_ring_empty = 0, tx_ring_empty = 0;
  };
  KernelStats kernel_stats() const;

  struct Impl;

 private:
  explicit XskPort(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What a PacketLoop did with one frame, for the caller's counters and outputs.
struct FrameEvent {
  const XskPort* in = nullptr;      // the port it arrived on
  XdpResult result;                 // the verdict, r0 and the redirect target
  std::span<const uint8_t> packet;  // as the program left it (valid during the callback only)
  uint32_t len_in = 0;              // the packet's length as received
  // XDP_TX and XDP_REDIRECT: how the frame left. Sent: on `out` (the same port for XDP_TX).
  // Delivered: the redirect named an xskmap, so the frame went to on_deliver. NoRoute: the target
  // has no port in this loop (an empty devmap slot, an interface without a socket). Full: the
  // output's send ring or frames were exhausted.
  enum class Fate : uint8_t { None, Sent, Delivered, NoRoute, Full } fate = Fate::None;
  const XskPort* out = nullptr;
  uint32_t copies = 0;  // broadcast redirects: the ports a copy went to
};

struct PacketLoopOptions {
  uint32_t worker = 0;  // the program's per-CPU slot (below LoadOptions::workers)
  uint32_t batch = 64;  // frames taken per receive
  // poll() with a timeout looks for frames this long before it sleeps: a loop that sleeps costs
  // the kernel a wakeup for nearly every packet (0: sleep at once).
  uint32_t spin_us = 50;
  // Called for every frame after its verdict has been acted on.
  std::function<void(const FrameEvent&)> on_frame;
  // XDP_PASS frames, before they are recycled (ubpf-run writes them to a TAP device).
  std::function<void(std::span<const uint8_t>)> on_pass;
  // Frames redirected into an xskmap: the application's own packets.
  std::function<void(std::span<const uint8_t>, uint32_t key)> on_deliver;
};

// Runs one program on the frames of its ports and acts on each verdict: XDP_DROP and XDP_ABORTED
// give the frame back; XDP_TX sends it out of its own port, in place; XDP_REDIRECT to an ifindex
// (bpf_redirect) or a devmap/devmap_hash slot sends it out of the port on that interface (in
// place on the same port, a copy on another; a broadcast to every slot's port), into an xskmap
// hands it to on_deliver; XDP_PASS hands it to on_pass. The loop receives only on the ports it
// is given for receiving (`rx`); `tx` are ports it may send to (other loops' ports included).
class PacketLoop {
 public:
  PacketLoop(const LoadedProgram& program, const Object& object, std::vector<XskPort*> rx, std::vector<XskPort*> tx,
             PacketLoopOptions options);
  ~PacketLoop();
  PacketLoop(PacketLoop&&) noexcept;
  // One batch (at most max_frames frames in all) from the receiving ports, waiting at most
  // timeout_ms for the first: returns the frames handled, or the first runtime fault (checked
  // mode; the other frames of the batch are still handled).
  Result<size_t> poll(int timeout_ms, size_t max_frames = SIZE_MAX);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace ebpfvm
