// libFuzzer target: arbitrary bytes as a capture file for ubpf-run's reader. Every packet it
// accepts is written by the capture writer (pcap or pcapng, chosen by the input's length), and the
// written file is read back: it must open, and give exactly the packets written (bytes, original
// length, timestamp as the format keeps it), then end. Bad input must give an error, never a
// crash, and the writer must never produce a file its own reader (or libpcap) refuses.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "ubpf-run/pcap.hpp"

namespace {

struct Expected {
  uint64_t ts_ns;
  uint32_t orig_len;
  std::vector<uint8_t> data;
};

// What a timestamp reads back as: pcap keeps 32-bit seconds and micro- or nanoseconds.
uint64_t as_kept(uint64_t ts_ns, bool pcapng, bool nsec) {
  if (pcapng) return ts_ns;
  const uint64_t sec = static_cast<uint32_t>(ts_ns / 1'000'000'000ull), sub = ts_ns % 1'000'000'000ull;
  return sec * 1'000'000'000ull + (nsec ? sub : sub / 1000 * 1000);
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int in_fd = memfd_create("capture-in", MFD_CLOEXEC), out_fd = memfd_create("capture-out", MFD_CLOEXEC);
  check(in_fd >= 0 && out_fd >= 0);
  check(ftruncate(in_fd, 0) == 0 && pwrite(in_fd, data, size, 0) == static_cast<ssize_t>(size));
  auto in = ubpf::CaptureReader::open(fd_path(in_fd));
  if (!in) return 0;
  const bool pcapng = size & 1, nsec = (*in)->nanosecond();
  auto out = ebpfvm::tools::OutputFile::open(fd_path(out_fd));  // a link to the memfd: written in place
  check(out.ok());
  auto writer = ubpf::CaptureWriter::create(std::move(*out), pcapng, nsec);
  std::vector<Expected> written;
  ubpf::Packet p;
  for (;;) {
    auto got = (*in)->next(p);
    if (!got || !*got) break;
    const std::string comment = p.index % 3 ? "" : "verdict: " + std::to_string(p.index);
    writer->write(p.ts_ns, p.data, p.orig_len, comment);
    const size_t cap = std::min<size_t>(p.data.size(), ubpf::kMaxSnap);
    written.push_back({as_kept(p.ts_ns, pcapng, nsec), static_cast<uint32_t>(std::max<uint64_t>(p.orig_len, p.data.size())),
                       {p.data.begin(), p.data.begin() + static_cast<ptrdiff_t>(cap)}});
    if (p.index % 2) (*in)->release((*in)->offset());  // blocks go back to be reused
  }
  check(writer->finish().ok());
  auto back = ubpf::CaptureReader::open(fd_path(out_fd));
  check(back.ok());
  for (const Expected& e : written) {
    auto got = (*back)->next(p);
    check(got.ok() && *got);
    check(p.ts_ns == e.ts_ns && p.orig_len == e.orig_len && std::equal(p.data.begin(), p.data.end(), e.data.begin(), e.data.end()));
  }
  auto end = (*back)->next(p);
  check(end.ok() && !*end);
  return 0;
}
