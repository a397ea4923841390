// A packet as the socket-buffer program types see it: tc (sched_cls, sched_act) and socket
// filters. The buffer is built as the kernel's BPF_PROG_TEST_RUN builds an skb from a frame: the
// protocol from the Ethernet header (eth_type_trans), pkt_type from the destination address as
// the loopback device sees it (00:00:00:00:00:00: PACKET_HOST; ff:..:ff: BROADCAST; other
// multicast: MULTICAST; anything else: OTHERHOST), ifindex 1, and struct __sk_buff's inputs
// (mark, priority, cb, tstamp, ...) from SkbFields.
//
//   ebpfvm::SkbBuffer skb(frame);
//   auto r = prog->run_skb(skb);           // r->tc_action == TcAction::Ok ...
//   skb.packet();                          // the frame as the program left it
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace ebpfvm {

namespace detail {
struct SkbCtx;
}

// The fields of struct __sk_buff a run starts with (as BPF_PROG_TEST_RUN's ctx_in sets them) and
// ends with (as its ctx_out reports them), plus the tc metadata a program may write.
struct SkbFields {
  uint32_t mark = 0;
  uint32_t priority = 0;
  uint32_t ingress_ifindex = 0;
  uint32_t ifindex = 1;
  uint32_t cb[5] = {};
  uint64_t tstamp = 0;
  uint32_t wire_len = 0;  // 0: the packet's length
  uint32_t gso_segs = 0;
  uint32_t gso_size = 0;
  uint64_t hwtstamp = 0;
  // A packet the host sends (tc egress): pkt_type PACKET_HOST, whatever its destination.
  bool egress = false;
  // Outputs only (a run starts them at 0): tc metadata and what the helpers changed.
  uint32_t tc_index = 0;
  uint32_t tc_classid = 0;
  uint32_t queue_mapping = 0;
  uint32_t hash = 0;
  uint32_t pkt_type = 0;
  uint16_t protocol = 0;  // host byte order (0x0800 for IPv4)
  bool vlan_present = false;
  uint16_t vlan_tci = 0;
  uint16_t vlan_proto = 0;  // host byte order
};

// Where the data of a socket filter's skb starts. A socket filter on a packet socket (AF_PACKET,
// what tcpdump and Suricata use) sees the frame from its MAC header; the kernel's BPF_PROG_TEST_RUN
// gives socket filters the frame from its network header (the Ethernet header pulled). tc
// programs always see the frame from its MAC header.
enum class SkbStart : uint8_t { Mac, Network };

class SkbBuffer {
 public:
  SkbBuffer();
  explicit SkbBuffer(std::span<const uint8_t> frame, const SkbFields& fields = {}, SkbStart start = SkbStart::Mac);
  ~SkbBuffer();
  SkbBuffer(SkbBuffer&&) noexcept;
  SkbBuffer& operator=(SkbBuffer&&) noexcept;

  // Replaces the packet and every field. Frames shorter than an Ethernet header (14 bytes) or
  // longer than 65549 bytes are refused when the program runs, as the kernel refuses them.
  void assign(std::span<const uint8_t> frame, const SkbFields& fields = {}, SkbStart start = SkbStart::Mac);
  // The skb over `frame` itself, without a copy and without head or tail room: only for verified
  // programs that do not write the packet (VerifyReport::writes_packet is false: no stores into
  // it, no helper that moves or changes it); run_skb refuses others. `frame` must outlive the run.
  void view(std::span<const uint8_t> frame, const SkbFields& fields = {}, SkbStart start = SkbStart::Mac);
  bool is_view() const { return view_; }

  std::span<uint8_t> packet();  // [data, data_end) as the program left it
  std::span<const uint8_t> packet() const;
  // The fields as the program left them.
  SkbFields fields() const;
  // False when the frame given to assign() cannot be an skb (see assign).
  bool valid() const { return valid_; }
  // Copies bpf_clone_redirect made during the last run.
  uint32_t clones() const;

  detail::SkbCtx& ctx() { return *ctx_; }

 private:
  void init(std::span<const uint8_t> frame, const SkbFields& fields, SkbStart start, uint8_t* buf, uint32_t buf_size, uint32_t mac);
  std::vector<uint8_t> buf_;
  std::unique_ptr<detail::SkbCtx> ctx_;
  bool valid_ = false;
  bool view_ = false;
};

// tc verdicts, with the kernel's values (TC_ACT_*).
enum class TcAction : int32_t {
  Unspec = -1, Ok = 0, Reclassify = 1, Shot = 2, Pipe = 3, Stolen = 4, Queued = 5, Repeat = 6, Redirect = 7, Trap = 8,
};
std::string_view to_string(TcAction a);  // "TC_ACT_OK", ... as the kernel names them; "TC_ACT_UNKNOWN" otherwise

}  // namespace ebpfvm
