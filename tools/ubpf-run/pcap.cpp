#include "pcap.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

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
constexpr uint64_t kAhead = 8ull << 20;  // a mapped file's population window (a multiple of the page size)
constexpr int kPopulateRead = 22;         // MADV_POPULATE_READ (Linux 5.14), not in every libc's headers
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

// A mapped capture cut while it is read makes the pages past its new end raise SIGBUS where a
// reader or a worker touches them. The guard's handler maps zero pages over the rest of the
// mapping instead (so the access completes) and marks it hit; the reader then reports the cut
// (CaptureReader::check), and the run ends before anything read from those pages is written.
// Faults anywhere else keep their old action.
struct BusSlot {
  std::atomic<uintptr_t> base{0}, end{0};
  std::atomic<bool> hit{false};
};
constexpr int kBusSlots = 8;
BusSlot g_bus_slots[kBusSlots];
struct sigaction g_bus_previous {};
uintptr_t g_page = 4096;

class BusGuard {
 public:
  static int claim(const uint8_t* base, uint64_t size) {
    static const bool installed = install();
    if (!installed) return -1;
    for (int i = 0; i < kBusSlots; ++i) {
      uintptr_t expect = 0;
      if (g_bus_slots[i].base.compare_exchange_strong(expect, reinterpret_cast<uintptr_t>(base))) {
        g_bus_slots[i].hit.store(false);
        g_bus_slots[i].end.store(reinterpret_cast<uintptr_t>(base) + size);
        return i;
      }
    }
    return -1;
  }
  static void release(int slot) {
    if (slot < 0) return;
    g_bus_slots[slot].end.store(0);
    g_bus_slots[slot].base.store(0);
  }
  static bool hit(int slot) { return slot >= 0 && g_bus_slots[slot].hit.load(std::memory_order_relaxed); }

 private:
  static bool install() {
    g_page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    struct sigaction sa {};
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGBUS, &sa, &g_bus_previous) == 0;
  }
  static void on_bus(int, siginfo_t* si, void*) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
    for (BusSlot& s : g_bus_slots) {
      const uintptr_t base = s.base.load(), end = s.end.load();
      if (!base || a < base || a >= end) continue;
      const uintptr_t from = a & ~(g_page - 1), to = (end + g_page - 1) & ~(g_page - 1);
      if (mmap(reinterpret_cast<void*>(from), to - from, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
        s.hit.store(true);
        return;  // the access is retried, on zeros
      }
    }
    sigaction(SIGBUS, &g_bus_previous, nullptr);  // not ours: the fault happens again, as it would have
  }
};

// A mapped capture, kept by a thread of its own: it fills the page tables 8 MiB ahead of the
// reader and unmaps what the caller released. Page faults cost a third of a reader's time on a
// large capture, and the final unmap a tenth; done here they run when a core is idle (the reader
// or the workers waiting), and filling 8 MiB at once costs half as much as faulting. (Reading the
// file into reused buffers instead costs the kernel's copy on the reader's thread: measured 42%
// slower for an XDP_PASS program, 11% for the example firewall.)
class Mapping {
 public:
  Mapping(const uint8_t* base, uint64_t size) : base_(const_cast<uint8_t*>(base)), size_(size), thread_([this] { loop(); }) {}
  ~Mapping() {
    stop_ = true;
    poke();
    thread_.join();
    munmap(base_ + unmapped_, size_ - unmapped_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  void want(uint64_t upto) {
    want_.store(upto, std::memory_order_relaxed);
    poke();
  }
  void release(uint64_t below) {
    release_.store(below, std::memory_order_relaxed);
    poke();
  }
  // Below this, pages are mapped: prefetching them is cheap.
  uint64_t populated() const { return populated_.load(std::memory_order_acquire); }

 private:
  void poke() {
    wake_.fetch_add(1, std::memory_order_release);
    wake_.notify_one();
  }

  bool step() {
    const uint64_t p = populated_.load(std::memory_order_relaxed);
    if (p < size_ && p < want_.load(std::memory_order_relaxed)) {
      const uint64_t len = std::min<uint64_t>(kAhead, size_ - p);
      // Best effort (Linux 5.14+): the reader's faults do it otherwise; then nothing is
      // reported populated, so nothing is prefetched either. A file cut short fails here too.
      if (madvise(base_ + p, len, kPopulateRead) != 0) {
        want_.store(0, std::memory_order_relaxed);
        return false;
      }
      populated_.store(p + len, std::memory_order_release);
      return true;
    }
    if (unmapped_ + kAhead <= release_.load(std::memory_order_relaxed)) {
      munmap(base_ + unmapped_, kAhead);
      unmapped_ += kAhead;
      return true;
    }
    return false;
  }

  void loop() {
    while (!stop_) {
      const uint32_t seen = wake_.load(std::memory_order_acquire);
      if (!step() && !stop_) wake_.wait(seen);
    }
  }

  uint8_t* const base_;
  const uint64_t size_;
  std::atomic<uint64_t> want_{0}, populated_{0}, release_{0};
  std::atomic<uint32_t> wake_{0};
  std::atomic<bool> stop_{false};
  uint64_t unmapped_ = 0;  // the thread's
  std::thread thread_;
};

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
    // Files are mapped and walked in place; streams, and files that cannot be mapped, are read.
    void* m = r->size_ ? mmap(nullptr, r->size_, PROT_READ, MAP_PRIVATE, r->fd_, 0) : MAP_FAILED;
    if (m != MAP_FAILED) {
      madvise(m, r->size_, MADV_SEQUENTIAL);
      r->base_ = static_cast<const uint8_t*>(m);
      r->map_ = std::make_unique<Mapping>(r->base_, r->size_);
      r->guard_ = BusGuard::claim(r->base_, r->size_);
    } else {
      posix_fadvise(r->fd_, 0, 0, POSIX_FADV_SEQUENTIAL);  // larger read-ahead
    }
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
  BusGuard::release(guard_);
  map_.reset();  // unmaps
  if (fd_ >= 0) ::close(fd_);
}

uint64_t CaptureReader::available() const {
  if (base_) return size_ - pos_;
  return live_.empty() ? 0 : live_.back().start + live_.back().len - pos_;
}

uint64_t CaptureReader::size_now() const {
  struct stat st {};
  return fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool CaptureReader::guard_hit() const { return BusGuard::hit(guard_); }

bool CaptureReader::cut() const { return base_ && (BusGuard::hit(guard_) || size_now() < size_); }

ebpfvm::Result<void> CaptureReader::check(std::span<const Packet> chunk) const {
  if (!cut()) return {};
  const uint64_t now = size_now();
  for (const Packet& p : chunk)
    if (static_cast<uint64_t>(p.data.data() + p.data.size() - base_) > now) return shrank(p.index, p.at);
  return {};
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

ebpfvm::Error CaptureReader::shrank(uint64_t index, uint64_t at) const {
  return bad("the capture shrank while it was read: packet " + std::to_string(index + 1) + " at byte " + std::to_string(at) +
             " is past its end (" + std::to_string(size_now()) + " bytes now, " + std::to_string(size_) + " when it was opened)");
}

ebpfvm::Result<const uint8_t*> CaptureReader::need(uint64_t n) {
  if (base_) {
    // What a cut file's mapping holds past its new end is zeros: not records.
    if (BusGuard::hit(guard_) || available() < n) {
      if (cut()) return shrank(count_, pos_);
      if (available() < n) return nullptr;
    }
    return base_ + pos_;
  }
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
  if (regular_ && b.start + b.len < size_) return shrank(count_, pos_);
  return nullptr;
}

// Records chain (each header says where the next starts), so neither the hardware nor a prefetch
// of the next header can run ahead: a header would be a cache miss every time. Prefetching every
// line 16 KiB ahead turns the walk into a stream at memory bandwidth.
void CaptureReader::stream_ahead() {
  if (base_) {  // only into pages already mapped: a prefetch that needs a page walk stalls
    const uint64_t until = std::min<uint64_t>(pos_ + kStream, map_->populated());
    for (; streamed_ < until; streamed_ += 128) __builtin_prefetch(base_ + streamed_);
    return;
  }
  if (live_.empty()) return;
  const Block& b = live_.back();
  const uint64_t until = std::min<uint64_t>(pos_ + kStream, b.start + b.len);
  if (streamed_ < pos_) streamed_ = pos_;
  for (; streamed_ < until; streamed_ += 128) __builtin_prefetch(b.data.get() + (streamed_ - b.start));  // the hardware fetches line pairs
}

void CaptureReader::release(uint64_t below) {
  if (map_) {
    map_->release(below);
    return;
  }
  // A block's packets all start before the next block does.
  while (live_.size() > 1 && live_[1].start <= below) {
    spare_.push_back(std::move(live_.front()));
    live_.pop_front();
  }
}

ebpfvm::Result<bool> CaptureReader::next(Packet& out) {
  if (map_ && pos_ + kAhead > wanted_) map_->want(wanted_ = pos_ + 2 * kAhead);
  const uint64_t at = pos_;
  auto r = ng_ ? next_pcapng(out) : next_pcap(out);
  stream_ahead();
  // a record read from the zeros of a cut file is nonsense: the cut is the error
  if (!r && cut()) return shrank(count_, at);
  if (interrupted_) return false;  // not a truncated record: the run was stopped while waiting
  return r;
}

ebpfvm::Result<bool> CaptureReader::next_pcap(Packet& out) {
  auto where = [&] { return "packet " + std::to_string(count_ + 1) + " at byte " + std::to_string(pos_); };
  const uint8_t* p = at_hand(16);  // the common case: the record is there
  uint32_t incl = p ? rd32(p + 8) : 0;
  if (!p || incl > kMaxSnap || !(p = at_hand(16 + uint64_t{incl}))) {
    auto h = need(16);
    if (!h) return h.error();
    if (!*h) {
      if (available() == 0) return false;
      return bad(where() + ": record header is truncated");
    }
    incl = rd32(*h + 8);
    if (incl > kMaxSnap) return bad(where() + ": length " + std::to_string(incl) + " is not plausible");
    auto rec = need(16 + uint64_t{incl});
    if (!rec) return rec.error();
    if (!*rec)
      return bad(where() + " is truncated: " + std::to_string(incl) + " bytes announced, " + std::to_string(available() - 16) +
                 " left in the file");
    p = *rec;
  }
  out.index = count_++;
  out.at = pos_;
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
      out.at = b;
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
