// Capture files read and written directly (not through libpcap's one-call-per-packet path): a
// file is mapped and walked in place, a stream (a pipe, standard input) read with read(2) into
// large reused blocks, so a packet costs no copy and no syscall of its own. A file cut while it is
// read is reported (CaptureReader::check), never a fault.
// Formats: pcap (microsecond and nanosecond, either byte order) and pcapng (SHB/IDB/EPB/SPB),
// Ethernet link type only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <atomic>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "ebpfvm/error.hpp"

namespace ubpf {

// Records longer than this are refused when read and cut to it when written (libpcap's largest
// snap length).
inline constexpr uint32_t kMaxSnap = 256 * 1024;

struct Packet {
  uint64_t index = 0;  // 0-based position in the file
  uint64_t at = 0;     // file offset of its record
  uint64_t ts_ns = 0;  // timestamp, nanoseconds since the epoch
  uint32_t orig_len = 0;
  std::span<const uint8_t> data;
};

class Mapping;

class CaptureReader {
 public:
  // `path` "-" is standard input. A run stopped by a signal (`stop` set) while the reader waits
  // on a pipe ends the capture there.
  static ebpfvm::Result<std::unique_ptr<CaptureReader>> open(const std::string& path, const std::atomic<int>* stop = nullptr);
  ~CaptureReader();
  CaptureReader(const CaptureReader&) = delete;
  CaptureReader& operator=(const CaptureReader&) = delete;

  // The next packet, false at the end; an error for a malformed or truncated file, or one that
  // shrank while it was read. The packet's bytes stay valid until release() passes its offset.
  ebpfvm::Result<bool> next(Packet& out);
  bool pcapng() const { return ng_; }
  bool nanosecond() const { return nsec_; }
  uint64_t file_size() const { return size_; }  // 0 when not known (a pipe)
  uint64_t offset() const { return pos_; }
  // The caller is done with every packet that starts before this file offset: its memory may go.
  void release(uint64_t below);
  // Before anything is made of `chunk`'s packets: an error naming the first of them a cut of the
  // file took away (a mapped file's pages past its new end read as zeros).
  ebpfvm::Result<void> check(std::span<const Packet> chunk) const;

 private:
  // File bytes [start, start + len) in data, of room cap. A block is filled by read(2) at its end
  // while packets earlier in it are being run, so it never moves; when the next record does not
  // fit, the record's first bytes are copied into a fresh block that starts with them.
  struct Block {
    uint64_t start = 0;
    size_t len = 0, cap = 0;
    std::unique_ptr<uint8_t[]> data;
  };

  CaptureReader() = default;
  ebpfvm::Result<bool> next_pcap(Packet& out);
  ebpfvm::Result<bool> next_pcapng(Packet& out);
  // The file's bytes [pos_, pos_ + n) in one piece; nullptr when the file ends first (then
  // available() says how many there are), or an error when it was cut while it was read.
  ebpfvm::Result<const uint8_t*> need(uint64_t n);
  uint64_t available() const;
  // need(n)'s common case, inline: the bytes are already there (nullptr: ask need()).
  const uint8_t* at_hand(uint64_t n) const {
    if (base_) return size_ - pos_ >= n && !guard_hit() ? base_ + pos_ : nullptr;
    if (live_.empty()) return nullptr;
    const Block& b = live_.back();
    return b.start + b.len - pos_ >= n ? b.data.get() + (pos_ - b.start) : nullptr;
  }
  bool guard_hit() const;
  void stream_ahead();
  Block fresh_block(size_t at_least);
  ebpfvm::Error bad(const std::string& msg) const;
  ebpfvm::Error shrank(uint64_t index, uint64_t at) const;
  uint64_t size_now() const;
  bool cut() const;  // a mapped file is shorter than when it was opened
  uint32_t rd32(const uint8_t* p) const;
  uint16_t rd16(const uint8_t* p) const;

  std::string path_;
  int fd_ = -1;
  // A mapped file: its bytes, the thread that fills and drops its pages, its SIGBUS guard slot.
  const uint8_t* base_ = nullptr;
  std::unique_ptr<Mapping> map_;
  uint64_t wanted_ = 0;  // asked the mapping to be filled in up to here
  int guard_ = -1;
  const std::atomic<int>* stop_ = nullptr;
  uint64_t size_ = 0;  // a regular file's size when opened
  bool regular_ = false;
  bool eof_ = false;
  bool interrupted_ = false;
  uint64_t pos_ = 0;
  uint64_t count_ = 0;
  uint64_t streamed_ = 0;  // prefetched up to here
  std::deque<Block> live_;   // blocks holding packets not yet released, oldest first
  std::vector<Block> spare_;  // released blocks, reused: their pages are already there
  bool swap_ = false;  // file byte order differs from ours
  bool nsec_ = false;
  bool ng_ = false;
  struct Iface {
    uint64_t ts_per_sec = 1'000'000;
  };
  std::vector<Iface> ifaces_;  // pcapng interfaces of the current section
};

// Writes a capture to `path` through a temporary file renamed into place by finish(), so an
// interrupted run never leaves a half-written file under the name the user gave.
class CaptureWriter {
 public:
  // Writes the capture's header into `out` (opened before the run, see tools::OutputFile).
  static std::unique_ptr<CaptureWriter> create(ebpfvm::tools::OutputFile out, bool pcapng, bool nanosecond);
  ~CaptureWriter() = default;  // the output's temporary goes if finish() was not reached
  // `comment` is written as the packet's opt_comment (pcapng only), e.g. its XDP verdict.
  void write(uint64_t ts_ns, std::span<const uint8_t> data, uint32_t orig_len, std::string_view comment);
  ebpfvm::Result<void> finish();

 private:
  explicit CaptureWriter(ebpfvm::tools::OutputFile out) : out_(std::move(out)), f_(out_.file()) {}
  std::unique_ptr<char[]> buf_;  // stdio's buffer (not zeroed: only what is written is touched); declared before out_, so freed after it closes the file
  ebpfvm::tools::OutputFile out_;
  FILE* f_;
  bool ng_ = false;
  bool nsec_ = false;
};

}  // namespace ubpf
