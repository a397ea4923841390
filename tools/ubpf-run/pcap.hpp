// Capture files read and written directly (not through libpcap's one-call-per-packet path): the
// input is mapped and walked in place, so reading costs no copy and no syscall per packet.
// Formats: pcap (microsecond and nanosecond, either byte order) and pcapng (SHB/IDB/EPB/SPB),
// Ethernet link type only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "ebpfvm/error.hpp"

namespace ubpf {

struct Packet {
  uint64_t index = 0;  // 0-based position in the file
  uint64_t ts_ns = 0;  // timestamp, nanoseconds since the epoch
  uint32_t orig_len = 0;
  std::span<const uint8_t> data;
};

class Mapping;

class CaptureReader {
 public:
  static ebpfvm::Result<std::unique_ptr<CaptureReader>> open(const std::string& path);
  ~CaptureReader();

  // The next packet, false at the end; an error for a malformed or truncated file.
  ebpfvm::Result<bool> next(Packet& out);
  bool pcapng() const { return ng_; }
  bool nanosecond() const { return nsec_; }
  uint64_t file_size() const { return size_; }
  uint64_t offset() const { return pos_; }
  // The caller is done with every packet before this file offset: its memory may go.
  void release(uint64_t below);

 private:
  CaptureReader() = default;
  ebpfvm::Result<bool> next_pcap(Packet& out);
  ebpfvm::Result<bool> next_pcapng(Packet& out);
  ebpfvm::Error bad(const std::string& msg) const;
  uint32_t rd32(uint64_t off) const;
  uint16_t rd16(uint64_t off) const;
  void stream_ahead();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t pos_ = 0;
  uint64_t count_ = 0;
  std::unique_ptr<Mapping> map_;
  uint64_t wanted_ = 0;    // asked the mapping to be filled in up to here
  uint64_t streamed_ = 0;  // prefetched up to here
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
  std::vector<char> buf_;  // stdio's buffer: declared before out_, so freed after it closes the file
  ebpfvm::tools::OutputFile out_;
  FILE* f_;
  bool ng_ = false;
  bool nsec_ = false;
};

}  // namespace ubpf
