#include "pcap.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ubpf {
namespace {

constexpr uint32_t kPcapMagicUsec = 0xa1b2c3d4, kPcapMagicNsec = 0xa1b23c4d, kNgSection = 0x0a0d0d0a,
                   kNgByteOrder = 0x1a2b3c4d, kNgIdb = 1, kNgSpb = 3, kNgEpb = 6;
constexpr uint32_t kLinkEthernet = 1;
// Each read(2) fills what is left of a 1 MiB block; the blocks are reused once their packets are
// done, so after the first few no page is faulted in again (a fresh mapping faults on every 4 KiB
// page, which cost the mapped reader a third of its time).
constexpr size_t kBlock = 1 << 20;
constexpr uint64_t kStream = 16 << 10;  // prefetch distance
// pcapng blocks longer than this are refused, as libpcap refuses them: no packet needs more.
constexpr uint32_t kMaxBlock = 16 << 20;

std::string link_name(uint32_t lt) {
  switch (lt) {
    case 0: return "BSD loopback";
    case 101: return "raw IP";
    case 113: return "Linux cooked (SLL)";
    case 127: return "802.11 radiotap";
    case 276: return "Linux cooked v2 (SLL2)";
    default: return "link type " + std::to_string(lt);
  }
}

ebpfvm::Error io_error(const std::string& path, const std::string& what) {
  ebpfvm::Error e = ebpfvm::make_error(ebpfvm::Errc::Io, what + ": " + std::strerror(errno));
  e.where.file = path;
  return e;
}

}  // namespace

ebpfvm::Error CaptureReader::bad(const std::string& msg) const {
  ebpfvm::Error e = ebpfvm::make_error(ebpfvm::Errc::InvalidArgument, msg);
  e.where.file = path_;
  return e;
}

uint32_t CaptureReader::rd32(const uint8_t* p) const {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swap_ ? __builtin_bswap32(v) : v;
}
uint16_t CaptureReader::rd16(const uint8_t* p) const {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return swap_ ? __builtin_bswap16(v) : v;
}

ebpfvm::Result<std::unique_ptr<CaptureReader>> CaptureReader::open(const std::string& path, const std::atomic<int>* stop) {
  std::unique_ptr<CaptureReader> r(new CaptureReader);
  r->path_ = path;
  r->stop_ = stop;
  struct stat st {};
  if (path == "-") {
    r->path_ = "standard input";
    r->fd_ = dup(STDIN_FILENO);
    if (r->fd_ < 0) return io_error(r->path_, "cannot read");
  } else {
    // Opening a FIFO waits for its writer: say so on a terminal rather than hang in silence.
    if (::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode) && isatty(STDERR_FILENO))
      std::fprintf(stderr, "ubpf-run: %s is a FIFO: waiting for a writer\n", path.c_str());
    r->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (r->fd_ < 0) return io_error(path, "cannot open");
  }
  if (fstat(r->fd_, &st) != 0) return io_error(r->path_, "cannot stat");
  if (S_ISDIR(st.st_mode)) return r->bad("is a directory");
  r->regular_ = S_ISREG(st.st_mode);
  if (r->regular_) {
    r->size_ = static_cast<uint64_t>(st.st_size);
    posix_fadvise(r->fd_, 0, 0, POSIX_FADV_SEQUENTIAL);  // larger read-ahead
  }
  auto head = r->need(4);
  if (!head) return head.error();
  if (!*head) return r->bad("not a pcap or pcapng file (too short)");
  uint32_t magic;
  std::memcpy(&magic, *head, 4);
  if (magic == kNgSection) {
    r->ng_ = true;
    return r;
  }
  for (bool swap : {false, true}) {
    uint32_t m = swap ? __builtin_bswap32(magic) : magic;
    if (m == kPcapMagicUsec || m == kPcapMagicNsec) {
      r->swap_ = swap;
      r->nsec_ = m == kPcapMagicNsec;
      auto hdr = r->need(24);
      if (!hdr) return hdr.error();
      if (!*hdr) return r->bad("pcap file header is truncated");
      const uint32_t link = r->rd32(*hdr + 20) & 0x0fffffff;
      if (link != kLinkEthernet) return r->bad(link_name(link) + " captures are not supported: ubpf-run reads Ethernet (link type 1)");
      r->pos_ = 24;
      return r;
    }
  }
  return r->bad("not a pcap or pcapng file (unknown magic number)");
}

CaptureReader::~CaptureReader() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t CaptureReader::available() const {
  return live_.empty() ? 0 : live_.back().start + live_.back().len - pos_;
}

CaptureReader::Block CaptureReader::fresh_block(size_t at_least) {
  for (size_t i = 0; i < spare_.size(); ++i)
    if (spare_[i].cap >= at_least) {
      Block b = std::move(spare_[i]);
      spare_.erase(spare_.begin() + static_cast<ptrdiff_t>(i));
      return b;
    }
  Block b;
  // a small file needs no more than its size
  const uint64_t rest = regular_ && size_ > pos_ ? size_ - pos_ : kBlock;
  b.cap = std::max<size_t>(at_least, std::min<uint64_t>(kBlock, rest));
  b.data.reset(new uint8_t[b.cap]);
  return b;
}

ebpfvm::Error CaptureReader::shrank() const {
  struct stat st {};
  const uint64_t now = fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return bad("the capture shrank while it was read: packet " + std::to_string(count_ + 1) + " at byte " + std::to_string(pos_) +
             " is past its end (" + std::to_string(now) + " bytes now, " + std::to_string(size_) + " when it was opened)");
}

ebpfvm::Result<const uint8_t*> CaptureReader::need(uint64_t n) {
  if (available() >= n) return live_.back().data.get() + (pos_ - live_.back().start);
  // A record never spans blocks: one that does not fit where it starts moves to a fresh block.
  if (live_.empty() || pos_ - live_.back().start + n > live_.back().cap) {
    Block b = fresh_block(n);
    b.start = pos_;
    b.len = available();
    if (b.len) std::memcpy(b.data.get(), live_.back().data.get() + (pos_ - live_.back().start), b.len);
    // a block no packet came from (the record outgrew it) goes back at once
    if (!live_.empty() && live_.back().start == pos_) {
      spare_.push_back(std::move(live_.back()));
      live_.pop_back();
    }
    live_.push_back(std::move(b));
  }
  Block& b = live_.back();
  while (available() < n && !eof_) {
    const ssize_t got = ::read(fd_, b.data.get() + b.len, b.cap - b.len);
    if (got > 0) {
      b.len += static_cast<size_t>(got);
    } else if (got == 0) {
      eof_ = true;
    } else if (errno == EINTR) {
      if (stop_ && stop_->load(std::memory_order_relaxed)) {  // a signal ends the capture here
        interrupted_ = true;
        return nullptr;
      }
    } else {
      return io_error(path_, "cannot read");
    }
  }
  if (available() >= n) return b.data.get() + (pos_ - b.start);
  // A regular file that ends before the size it had at open was cut while it was read.
  if (regular_ && b.start + b.len < size_) return shrank();
  return nullptr;
}

// Records chain (each header says where the next starts), so neither the hardware nor a prefetch
// of the next header can run ahead: a header would be a cache miss every time. Prefetching every
// line 16 KiB ahead turns the walk into a stream at memory bandwidth.
void CaptureReader::stream_ahead() {
  if (live_.empty()) return;
  const Block& b = live_.back();
  const uint64_t until = std::min<uint64_t>(pos_ + kStream, b.start + b.len);
  if (streamed_ < pos_) streamed_ = pos_;
  for (; streamed_ < until; streamed_ += 128) __builtin_prefetch(b.data.get() + (streamed_ - b.start));  // the hardware fetches line pairs
}

void CaptureReader::release(uint64_t below) {
  // A block's packets all start before the next block does.
  while (live_.size() > 1 && live_[1].start <= below) {
    spare_.push_back(std::move(live_.front()));
    live_.pop_front();
  }
}

ebpfvm::Result<bool> CaptureReader::next(Packet& out) {
  auto r = ng_ ? next_pcapng(out) : next_pcap(out);
  stream_ahead();
  if (interrupted_) return false;  // not a truncated record: the run was stopped while waiting
  return r;
}

ebpfvm::Result<bool> CaptureReader::next_pcap(Packet& out) {
  auto h = need(16);
  if (!h) return h.error();
  auto where = [&] { return "packet " + std::to_string(count_ + 1) + " at byte " + std::to_string(pos_); };
  if (!*h) {
    if (available() == 0) return false;
    return bad(where() + ": record header is truncated");
  }
  const uint32_t incl = rd32(*h + 8);
  if (incl > kMaxSnap) return bad(where() + ": length " + std::to_string(incl) + " is not plausible");
  auto rec = need(16 + uint64_t{incl});
  if (!rec) return rec.error();
  if (!*rec)
    return bad(where() + " is truncated: " + std::to_string(incl) + " bytes announced, " + std::to_string(available() - 16) +
               " left in the file");
  const uint8_t* p = *rec;
  out.index = count_++;
  out.ts_ns = uint64_t{rd32(p)} * 1'000'000'000ull + uint64_t{rd32(p + 4)} * (nsec_ ? 1 : 1000);
  out.orig_len = rd32(p + 12);
  out.data = {p + 16, incl};
  pos_ += 16 + incl;
  return true;
}

ebpfvm::Result<bool> CaptureReader::next_pcapng(Packet& out) {
  for (;;) {
    auto h = need(12);
    if (!h) return h.error();
    if (!*h) {
      if (available() == 0) return false;
      return bad("block at byte " + std::to_string(pos_) + " is truncated");
    }
    uint32_t type;
    std::memcpy(&type, *h, 4);
    if (type == kNgSection) {
      uint32_t bom;
      std::memcpy(&bom, *h + 8, 4);
      if (bom == kNgByteOrder) swap_ = false;
      else if (bom == __builtin_bswap32(kNgByteOrder)) swap_ = true;
      else return bad("section header at byte " + std::to_string(pos_) + " has no valid byte-order magic");
      ifaces_.clear();
    } else if (swap_) {
      type = __builtin_bswap32(type);
    }
    const uint32_t len = rd32(*h + 4);
    if (len < 12 || len % 4 || len > kMaxBlock)
      return bad("block at byte " + std::to_string(pos_) + " has a bad length (" + std::to_string(len) + ")");
    auto block = need(len);
    if (!block) return block.error();
    if (!*block)
      return bad("block at byte " + std::to_string(pos_) + " is truncated: " + std::to_string(len) + " bytes announced, " +
                 std::to_string(available()) + " left in the file");
    const uint8_t* p = *block;
    const uint64_t b = pos_;
    pos_ += len;
    if (type == kNgIdb) {
      if (len < 20) return bad("interface block at byte " + std::to_string(b) + " is too short");
      const uint16_t link = rd16(p + 8);
      if (link != kLinkEthernet) return bad(link_name(link) + " captures are not supported: ubpf-run reads Ethernet (link type 1)");
      Iface iface;
      // Options: if_tsresol (9) changes the timestamp unit.
      for (uint64_t o = 16; o + 4 <= len - 4;) {
        const uint16_t code = rd16(p + o), olen = rd16(p + o + 2);
        if (code == 0) break;
        if (code == 9 && olen >= 1 && o + 4 < len) {
          // units per second: 2^e (high bit set) or 10^e; 64-bit timestamps count no finer than 2^63 or 10^19
          const uint8_t res = p[o + 4], e = res & 0x7f;
          if ((res & 0x80) ? e > 63 : e > 19)
            return bad("interface block at byte " + std::to_string(b) + ": if_tsresol " + ((res & 0x80) ? "2^" : "10^") +
                       std::to_string(e) + " units per second is finer than 64-bit timestamps can count");
          uint64_t units = 1;
          for (int i = 0; i < e; ++i) units *= (res & 0x80) ? 2 : 10;
          iface.ts_per_sec = units;
        }
        o += 4 + ((olen + 3u) & ~3u);
      }
      ifaces_.push_back(iface);
    } else if (type == kNgEpb || type == kNgSpb) {
      const bool epb = type == kNgEpb;
      const uint64_t hdr = epb ? 28 : 12;  // SPB: type, length, original length, then the data
      if (len < hdr + 4) return bad("packet block at byte " + std::to_string(b) + " is too short");
      const uint32_t iface = epb ? rd32(p + 8) : 0;
      if (iface >= ifaces_.size()) return bad("packet block at byte " + std::to_string(b) + " names interface " + std::to_string(iface) + ", which was not described");
      const uint32_t cap = epb ? rd32(p + 20) : std::min<uint32_t>(rd32(p + 8), len - 16);
      if (cap > len - hdr - 4) return bad("packet " + std::to_string(count_ + 1) + " at byte " + std::to_string(b) + " is truncated");
      out.index = count_++;
      out.orig_len = epb ? rd32(p + 24) : rd32(p + 8);
      out.data = {p + hdr, cap};
      out.ts_ns = 0;
      if (epb) {
        const uint64_t ts = (uint64_t{rd32(p + 12)} << 32) | rd32(p + 16);
        const uint64_t per = ifaces_[iface].ts_per_sec;
        out.ts_ns = static_cast<uint64_t>(ts / per * 1'000'000'000ull + static_cast<unsigned __int128>(ts % per) * 1'000'000'000ull / per);
      }
      return true;
    }
  }
}

// ---- writer ---------------------------------------------------------------------------------------
std::unique_ptr<CaptureWriter> CaptureWriter::create(ebpfvm::tools::OutputFile out, bool pcapng, bool nanosecond) {
  std::unique_ptr<CaptureWriter> w(new CaptureWriter(std::move(out)));
  w->ng_ = pcapng;
  w->nsec_ = nanosecond;
  // Our own buffer: given none, glibc ignores the size and writes 4 KiB at a time.
  constexpr size_t kBuffer = 1 << 20;
  w->buf_.reset(new char[kBuffer]);
  std::setvbuf(w->f_, w->buf_.get(), _IOFBF, kBuffer);
  if (!pcapng) {
    const uint32_t hdr[6] = {nanosecond ? kPcapMagicNsec : kPcapMagicUsec, 0x00040002u, 0, 0, kMaxSnap, kLinkEthernet};
    std::fwrite(hdr, sizeof hdr, 1, w->f_);
  } else {
    const uint32_t shb[7] = {kNgSection, 28, kNgByteOrder, 0x00000001u, 0xffffffffu, 0xffffffffu, 28};
    std::fwrite(shb, sizeof shb, 1, w->f_);
    // IDB: Ethernet, snaplen 0 (none), if_tsresol = 9 (nanoseconds).
    const uint32_t idb[8] = {kNgIdb, 32, kLinkEthernet, 0, 0x00010009u, 9, 0, 32};
    std::fwrite(idb, sizeof idb, 1, w->f_);
  }
  return w;
}

void CaptureWriter::write(uint64_t ts_ns, std::span<const uint8_t> data, uint32_t orig_len, std::string_view comment) {
  // a packet the program grew past the snap length is cut to it, as a capture tool cuts: readers
  // refuse longer records; its original length says how long it was
  orig_len = static_cast<uint32_t>(std::max<uint64_t>(orig_len, data.size()));
  const uint32_t cap = static_cast<uint32_t>(std::min<uint64_t>(data.size(), kMaxSnap));
  if (!ng_) {
    const uint32_t sub = static_cast<uint32_t>(nsec_ ? ts_ns % 1'000'000'000ull : ts_ns % 1'000'000'000ull / 1000);
    const uint32_t rec[4] = {static_cast<uint32_t>(ts_ns / 1'000'000'000ull), sub, cap, orig_len};
    std::fwrite(rec, sizeof rec, 1, f_);
    std::fwrite(data.data(), 1, cap, f_);
    return;
  }
  const uint32_t pad = (4 - cap % 4) % 4;
  const uint32_t clen = static_cast<uint32_t>(comment.size()), cpad = (4 - clen % 4) % 4;
  const uint32_t opts = comment.empty() ? 0 : 4 + clen + cpad + 4;
  const uint32_t len = 28 + cap + pad + opts + 4;
  const uint32_t hdr[7] = {kNgEpb, len, 0, static_cast<uint32_t>(ts_ns >> 32), static_cast<uint32_t>(ts_ns), cap, orig_len};
  std::fwrite(hdr, sizeof hdr, 1, f_);
  std::fwrite(data.data(), 1, cap, f_);
  const uint8_t zeros[4] = {};
  std::fwrite(zeros, 1, pad, f_);
  if (!comment.empty()) {
    const uint16_t opt[2] = {1, static_cast<uint16_t>(clen)};  // opt_comment
    std::fwrite(opt, sizeof opt, 1, f_);
    std::fwrite(comment.data(), 1, clen, f_);
    std::fwrite(zeros, 1, cpad, f_);
    std::fwrite(zeros, 1, 4, f_);  // opt_endofopt
  }
  std::fwrite(&len, 4, 1, f_);
}

ebpfvm::Result<void> CaptureWriter::finish() {
  f_ = nullptr;
  return out_.commit();
}

}  // namespace ubpf
