#include "runner.hpp"

#include <chrono>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ubpf {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = 4096;
constexpr uint8_t kNotRun = 255;  // Result1::action of a frame that cannot be an skb

uint64_t ns_since(Clock::time_point t) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
}

// A flow hash over the 5-tuple (IPv4/IPv6 after at most one VLAN tag), the MACs otherwise. Every
// worker hashes every packet of a chunk, so it mixes whole words: byte-at-a-time hashing (FNV)
// was a third of each worker's time with two workers.
uint64_t mix(uint64_t h, uint64_t v) {
  h = (h ^ v) * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 32);
}
template <class T>
T word(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint32_t flow_hash(std::span<const uint8_t> p) {
  uint64_t h = 0x243f6a8885a308d3ull;
  if (p.size() < 14) {
    for (uint8_t b : p) h = mix(h, b);
    return static_cast<uint32_t>(h);
  }
  size_t off = 12;
  uint16_t type = static_cast<uint16_t>(p[off] << 8 | p[off + 1]);
  if (type == 0x8100 && p.size() >= 18) {
    off += 4;
    type = static_cast<uint16_t>(p[off] << 8 | p[off + 1]);
  }
  off += 2;
  size_t l4 = 0;
  uint8_t proto = 0;
  if (type == 0x0800 && p.size() >= off + 20) {
    h = mix(h, word<uint64_t>(&p[off + 12]));
    proto = p[off + 9];
    l4 = off + (p[off] & 0x0f) * 4u;
  } else if (type == 0x86dd && p.size() >= off + 40) {
    for (size_t i = 8; i < 40; i += 8) h = mix(h, word<uint64_t>(&p[off + i]));
    proto = p[off + 6];
    l4 = off + 40;
  } else {
    return static_cast<uint32_t>(mix(mix(h, word<uint64_t>(p.data())), word<uint32_t>(&p[8])));
  }
  const uint64_t ports = (proto == 6 || proto == 17) && p.size() >= l4 + 4 ? word<uint32_t>(&p[l4]) : 0;
  return static_cast<uint32_t>(mix(h, ports << 8 | proto));
}

constexpr size_t kUnchanged = SIZE_MAX;

// CRC-32 as zlib's crc32() and Ethernet compute it (reflected, polynomial 0xEDB88320): a packet's
// fingerprint in --ndjson, for comparing runs with another engine's.
uint32_t crc32(std::span<const uint8_t> data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (const uint8_t b : data) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

// One packet's outcome, at its position in the chunk, written by the worker that ran it (no
// per-chunk reset); a redirect's target is kept by that worker.
struct Result1 {
  uint8_t action = 0;  // the verdict's index (Verdicts)
  uint32_t crc = 0;  // of the output packet (with --ndjson)
  uint64_t r0 = 0;   // the program's return value
  uint32_t len_out = 0;
  size_t out_off = kUnchanged;  // into the worker's output arena; kUnchanged: the input bytes are the output
  uint32_t worker = 0;
  uint32_t redirect = UINT32_MAX;  // index into the worker's redirects; UINT32_MAX: none
  uint32_t clones = 0;             // tc: bpf_clone_redirect copies
  // tc: the metadata the program may set, for --ndjson
  uint32_t mark = 0, priority = 0, tc_classid = 0, tc_index = 0, queue_mapping = 0;
};

// What the totals take from one packet.
void count(Totals& t, size_t len_in, uint8_t action, const ebpfvm::RedirectTarget* redirect, uint32_t kept, uint32_t clones) {
  ++t.packets;
  t.kept_bytes += kept;
  t.clones += clones;
  t.bytes_in += len_in;
  ++t.actions[action];
  t.action_bytes[action] += len_in;
  if (redirect) ++t.redirects[describe(*redirect)];
}

void merge(Totals& into, const Totals& from) {
  into.packets += from.packets;
  into.bytes_in += from.bytes_in;
  into.kept_bytes += from.kept_bytes;
  into.not_run += from.not_run;
  into.clones += from.clones;
  for (size_t a = 0; a < into.actions.size(); ++a) {
    into.actions[a] += from.actions[a];
    into.action_bytes[a] += from.action_bytes[a];
  }
  for (const auto& [k, v] : from.redirects) into.redirects[k] += v;
}

// What one worker made of one chunk.
struct Share {
  Totals counts;               // the packets it ran, counted by it
  std::vector<uint32_t> todo;  // chunk positions it runs, in capture order
  std::vector<uint8_t> arena;  // packets as the program left them (when they are written)
  std::vector<ebpfvm::RedirectTarget> redirects;
  std::optional<ebpfvm::Error> fault;
  uint64_t fault_pos = 0;
  std::optional<uint64_t> stop_pos;  // RunConfig::stop seen before running this packet
};

// A chunk in flight: the workers run one while the main thread reads the next and writes out the
// one before.
struct Batch {
  std::vector<Packet> packets;
  std::vector<Result1> results;
  std::vector<Share> shares;  // one per worker
  uint64_t start = 0;         // file offset of its first record
  std::function<void(size_t)> job;
};

struct Worker {
  uint32_t id = 0;
  uint64_t ns = 0;
  ebpfvm::XdpBuffer buf;
  ebpfvm::SkbBuffer skb;
};

// One run's outcome, whatever the program type.
struct Outcome {
  uint8_t verdict = 0;
  ebpfvm::SkbFields fields;  // tc: struct __sk_buff after the run
  uint64_t r0 = 0;
  std::span<const uint8_t> out;  // the packet as the program left it (a socket filter's: the bytes kept)
  uint32_t kept = 0, clones = 0;
  ebpfvm::RedirectTarget redirect;
};

// The program's run of one packet, repeated as --repeat asks (the packet restored each time).
ebpfvm::Result<ebpfvm::XdpResult> run_xdp(const ebpfvm::LoadedProgram& prog, const RunConfig& cfg, Worker& w,
                                          const ebpfvm::XdpRunOptions& opts, std::span<const uint8_t> data, bool in_place) {
  for (uint64_t rep = 1;; ++rep) {
    if (in_place) w.buf.view(data);
    else w.buf.assign(data);
    auto r = prog.run_xdp(w.buf, opts);
    if (!r || rep >= cfg.repeat) return r;
  }
}

// A tc program or socket filter: the frame as an skb that arrived on (or, egress, leaves through)
// --ifindex. A socket filter sees it from the MAC header, as on a packet socket.
ebpfvm::Result<void> run_skb(const ebpfvm::LoadedProgram& prog, const RunConfig& cfg, Worker& w, std::span<const uint8_t> data,
                             bool in_place, Outcome& out) {
  ebpfvm::SkbFields f;
  f.ifindex = cfg.ifindex;
  f.ingress_ifindex = cfg.egress ? 0 : cfg.ifindex;
  f.egress = cfg.egress;
  for (uint64_t rep = 1;; ++rep) {
    if (in_place) w.skb.view(data, f);
    else w.skb.assign(data, f);
    if (!w.skb.valid()) {  // a runt (or a giant): no skb could hold it, so the program never sees it
      out.verdict = kNotRun;
      return {};
    }
    auto r = prog.run_skb(w.skb, {w.id});
    if (!r) return r.error();
    if (rep < cfg.repeat) continue;
    out.r0 = r->r0;
    out.clones = r->clones;
    if (cfg.type == ebpfvm::ProgType::SocketFilter) {
      out.verdict = r->keep ? 1 : 0;
      out.kept = r->keep;
      out.out = w.skb.packet().first(r->keep);
      return {};
    }
    const int32_t code = static_cast<int32_t>(r->r0);
    out.verdict = static_cast<uint8_t>(code >= -1 && code <= 8 ? code + 1 : 10);
    out.out = w.skb.packet();
    if (cfg.ndjson) out.fields = w.skb.fields();
    if (r->tc_action == ebpfvm::TcAction::Redirect) out.redirect = std::move(r->redirect);
    return {};
  }
}

ebpfvm::Result<void> run_packet(const ebpfvm::LoadedProgram& prog, const RunConfig& cfg, Worker& w, const ebpfvm::XdpRunOptions& opts,
                                std::span<const uint8_t> data, bool in_place, Outcome& out) {
  if (cfg.type != ebpfvm::ProgType::Xdp) return run_skb(prog, cfg, w, data, in_place, out);
  auto r = run_xdp(prog, cfg, w, opts, data, in_place);
  if (!r) return r.error();
  out.verdict = static_cast<uint8_t>(r->action);
  out.r0 = r->r0;
  out.out = w.buf.packet();
  if (r->action == ebpfvm::XdpAction::Redirect) out.redirect = std::move(r->redirect);
  return {};
}

void run_share(const ebpfvm::LoadedProgram& prog, const RunConfig& cfg, Batch& batch, Worker& w, bool keep_bytes) {
  const std::vector<Packet>& chunk = batch.packets;
  std::vector<Result1>& results = batch.results;
  Share& sh = batch.shares[w.id];
  sh.arena.clear();
  sh.redirects.clear();
  sh.counts = {};
  sh.fault.reset();
  sh.stop_pos.reset();
  // Each worker picks its own flows (hashing in parallel, off the reader's thread).
  sh.todo.clear();
  for (uint32_t i = 0; i < chunk.size(); ++i) {
    // The headers come from another core's cache or from memory: ask for them well ahead.
    if (cfg.workers > 1 && i + 16 < chunk.size()) __builtin_prefetch(chunk[i + 16].data.data() + 12);
    if (cfg.workers == 1 || flow_hash(chunk[i].data) % cfg.workers == w.id) sh.todo.push_back(i);
  }
  // A verified program that never writes the packet reads it where the capture holds it.
  const bool in_place = prog.verify_report() && !prog.verify_report()->writes_packet;
  const Verdicts& verdicts = verdicts_for(cfg.type);
  // Built once: a fresh copy per packet, read back as one 8-byte word, stalls store forwarding.
  const ebpfvm::XdpRunOptions opts{w.id, cfg.ifindex, cfg.rxq};
  const auto t0 = Clock::now();
  const size_t n = sh.todo.size();
  for (size_t k = 0; k < n; ++k) {
    // Headers of the packets after next, so they are in cache by the time the program reads them.
    if (k + 2 < n) {
      const uint8_t* ahead = chunk[sh.todo[k + 2]].data.data();
      __builtin_prefetch(ahead);
      __builtin_prefetch(ahead + 63);
    }
    const uint32_t pos = sh.todo[k];
    if (cfg.stop && cfg.stop->load(std::memory_order_relaxed)) {
      sh.stop_pos = pos;
      break;
    }
    const Packet& p = chunk[pos];
    Outcome o;
    if (auto r = run_packet(prog, cfg, w, opts, p.data, in_place, o); !r) {
      sh.fault = r.error();
      sh.fault_pos = pos;
      break;
    }
    Result1& out = results[pos];
    out.action = o.verdict;
    out.worker = w.id;
    if (o.verdict == kNotRun) {
      ++sh.counts.not_run;
      continue;
    }
    const std::span<const uint8_t> data = o.out;
    out.len_out = static_cast<uint32_t>(data.size());
    out.r0 = o.r0;
    if (cfg.ndjson) out.crc = crc32(data);
    const ebpfvm::RedirectTarget* redirect = nullptr;
    out.redirect = UINT32_MAX;
    out.clones = o.clones;
    if (cfg.ndjson && cfg.type == ebpfvm::ProgType::SchedCls) {
      out.mark = o.fields.mark, out.priority = o.fields.priority, out.tc_classid = o.fields.tc_classid;
      out.tc_index = o.fields.tc_index, out.queue_mapping = o.fields.queue_mapping;
    }
    if (out.action == verdicts.redirect && o.redirect.kind != ebpfvm::RedirectTarget::Kind::None) {
      out.redirect = static_cast<uint32_t>(sh.redirects.size());
      redirect = &sh.redirects.emplace_back(std::move(o.redirect));
    }
    count(sh.counts, p.data.size(), out.action, redirect, o.kept, o.clones);
    // Only packets that will be written are kept, and a program that never writes the packet
    // (run in place) leaves it as the capture holds it.
    out.out_off = kUnchanged;
    if (keep_bytes && !in_place && (cfg.ndjson_bytes || cfg.write_actions[out.action])) {
      out.out_off = sh.arena.size();
      sh.arena.insert(sh.arena.end(), data.begin(), data.end());
    }
  }
  w.ns += ns_since(t0);
}

// Runs `job` on every worker, each on its own thread, while the caller reads the next chunk:
// start() hands the job out, wait() returns when every worker is done with it.
class Pool {
 public:
  explicit Pool(size_t n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void start(const std::function<void(size_t)>& job) {
    {
      std::lock_guard lk(mu_);
      job_ = &job;
      pending_ = threads_.size();
      ++generation_;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lk(mu_);
    done_.wait(lk, [&] { return pending_ == 0; });
  }

 private:
  void loop(size_t i) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(size_t)>* job;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
      }
      (*job)(i);
      std::lock_guard lk(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// `bytes`: the output packet, for --ndjson-bytes (null otherwise).
void write_ndjson(FILE* f, const RunConfig& cfg, const Packet& p, const Result1& r, const ebpfvm::RedirectTarget* redirect,
                  const std::span<const uint8_t>* bytes) {
  std::fprintf(f, "{\"index\":%llu,\"action\":\"%s\",\"len_in\":%zu,\"len_out\":%u,\"worker\":%u,\"crc32\":\"%08x\"",
               static_cast<unsigned long long>(p.index), verdicts_for(cfg.type).names[r.action].c_str(), p.data.size(), r.len_out, r.worker,
               r.crc);
  // A value no verdict has (XDP takes it as XDP_ABORTED), or a socket filter's: what the program returned.
  const bool named = cfg.type == ebpfvm::ProgType::Xdp ? r.r0 <= static_cast<uint64_t>(ebpfvm::XdpAction::Redirect)
                     : cfg.type == ebpfvm::ProgType::SchedCls ? r.action != 10 : false;
  if (!named) std::fprintf(f, ",\"ret\":%llu", static_cast<unsigned long long>(r.r0));
  if (redirect) std::fprintf(f, ",\"redirect\":\"%s\"", describe(*redirect).c_str());
  if (cfg.type == ebpfvm::ProgType::SchedCls)
    std::fprintf(f, ",\"mark\":%u,\"priority\":%u,\"tc_classid\":%u,\"tc_index\":%u,\"queue_mapping\":%u", r.mark, r.priority,
                 r.tc_classid, r.tc_index, r.queue_mapping);
  if (r.clones) std::fprintf(f, ",\"clones\":%u", r.clones);
  if (bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes->size() * 2);
    for (const uint8_t b : *bytes) hex += kHex[b >> 4], hex += kHex[b & 15];
    std::fprintf(f, ",\"bytes\":\"%s\"", hex.c_str());
  }
  std::fputs("}\n", f);
}

}  // namespace

const Verdicts& verdicts_for(ebpfvm::ProgType type) {
  static const Verdicts xdp{{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"},
                            {"aborted", "drop", "pass", "tx", "redirect"},
                            {false, false, true, true, true},
                            4};
  // Indexed by the code + 1; other values (which tc lets through as it does TC_ACT_OK) last.
  static const Verdicts tc{{"TC_ACT_UNSPEC", "TC_ACT_OK", "TC_ACT_RECLASSIFY", "TC_ACT_SHOT", "TC_ACT_PIPE", "TC_ACT_STOLEN",
                            "TC_ACT_QUEUED", "TC_ACT_REPEAT", "TC_ACT_REDIRECT", "TC_ACT_TRAP", "TC_ACT_UNKNOWN"},
                           {"unspec", "ok", "reclassify", "shot", "pipe", "stolen", "queued", "repeat", "redirect", "trap", "unknown"},
                           {true, true, true, false, true, false, false, true, true, false, true},
                           8};
  static const Verdicts socket{{"DROP", "ACCEPT"}, {"drop", "accept"}, {false, true}, SIZE_MAX};
  return type == ebpfvm::ProgType::SchedCls ? tc : type == ebpfvm::ProgType::SocketFilter ? socket : xdp;
}

std::string describe(const ebpfvm::RedirectTarget& t) {
  using K = ebpfvm::RedirectTarget::Kind;
  // tc's flags: BPF_F_INGRESS, and the kernel's own for bpf_redirect_neigh (2) and _peer (4)
  if (t.kind == K::Ifindex)
    return "ifindex " + std::to_string(t.ifindex) + (t.flags & 1 ? " ingress" : "") + (t.flags & 2 ? " neigh" : "") + (t.flags & 4 ? " peer" : "");
  if (t.kind == K::Map)
    return "map '" + t.map_name + "' slot " + std::to_string(t.key) + ((t.flags & 8) ? " (broadcast)" : "");
  return "nowhere";
}

ebpfvm::Result<Totals> run_capture(const ebpfvm::LoadedProgram& prog, CaptureReader& in, const RunConfig& cfg) {
  Totals t;
  const auto start = Clock::now();
  std::vector<Worker> workers(cfg.workers);
  for (uint32_t i = 0; i < cfg.workers; ++i) workers[i].id = i;
  Pool pool(cfg.workers);
  const bool keep_bytes = cfg.writer != nullptr || cfg.ndjson_bytes;
  uint64_t read = 0;  // packets taken from the capture so far
  // Up to kChunk packets, stopping at --count.
  auto read_chunk = [&](Batch& b) -> ebpfvm::Result<void> {
    b.packets.clear();
    b.start = in.offset();
    Packet p;
    while (b.packets.size() < kChunk && (cfg.count == 0 || read < cfg.count)) {
      if (cfg.stop && cfg.stop->load(std::memory_order_relaxed)) break;
      auto got = in.next(p);
      if (!got) return got.error();
      if (!*got) break;
      if (cfg.filter && !cfg.filter->matches(p.data, std::max<uint32_t>(p.orig_len, static_cast<uint32_t>(p.data.size())))) {
        ++t.filtered, t.filtered_bytes += p.data.size();
        continue;
      }
      b.packets.push_back(p);
      ++read;
    }
    return {};
  };
  auto launch = [&](Batch& b) {
    b.results.resize(b.packets.size());  // every entry the chunk uses is written by its worker
    b.shares.resize(cfg.workers);
    b.job = [&, bp = &b](size_t i) { run_share(prog, cfg, *bp, workers[i], keep_bytes); };
    pool.start(b.job);
  };
  Batch batches[2];
  Batch* cur = &batches[0];
  Batch* nxt = &batches[1];
  auto t_read = Clock::now();
  if (auto r = read_chunk(*cur); !r) return r.error();
  t.read_ns += ns_since(t_read);
  if (!cur->packets.empty()) launch(*cur);
  while (!cur->packets.empty()) {
    t_read = Clock::now();
    auto ahead = read_chunk(*nxt);  // the next chunk's headers, while the workers run this one
    t.read_ns += ns_since(t_read);
    pool.wait();
    // A file cut while it was read: nothing from past its new end is counted or written.
    if (auto cut = in.check(cur->packets); !cut) return cut.error();
    if (!ahead)
      if (auto cut = in.check(nxt->packets); !cut) return cut.error();
    // The first fault in capture order wins; packets after it are not counted.
    size_t limit = cur->packets.size();
    for (const Share& sh : cur->shares) {
      if (sh.fault && sh.fault_pos < limit) {
        limit = sh.fault_pos;
        t.fault = sh.fault;
        t.fault_packet = cur->packets[sh.fault_pos].index;
      }
      // stopped: the packets before the first one a worker did not run were all run
      if (sh.stop_pos && *sh.stop_pos < limit) limit = *sh.stop_pos, t.stopped = true;
    }
    // The workers run the next chunk while this one is counted and written out.
    const bool more = ahead && !t.fault && !t.stopped && !nxt->packets.empty();
    if (more) launch(*nxt);
    // Without a fault, a stop or per-packet output, the workers' own counts are the chunk's.
    const bool ordered = t.fault || t.stopped || cfg.writer || cfg.ndjson;
    if (!ordered)
      for (const Share& sh : cur->shares) merge(t, sh.counts);
    const auto t_write = Clock::now();
    for (size_t i = 0; ordered && i < limit; ++i) {
      const Packet& pk = cur->packets[i];
      const Result1& r = cur->results[i];
      if (r.action == kNotRun) {
        ++t.not_run;
        if (cfg.ndjson)
          std::fprintf(cfg.ndjson, "{\"index\":%llu,\"action\":\"NOT_RUN\",\"len_in\":%zu}\n", static_cast<unsigned long long>(pk.index),
                       pk.data.size());
        continue;
      }
      const Share& sh = cur->shares[r.worker];
      const bool redirected = r.action == verdicts_for(cfg.type).redirect && r.redirect < sh.redirects.size();
      const ebpfvm::RedirectTarget* redirect = redirected ? &sh.redirects[r.redirect] : nullptr;
      count(t, pk.data.size(), r.action, redirect, cfg.type == ebpfvm::ProgType::SocketFilter ? r.len_out : 0, r.clones);
      if (cfg.writer && cfg.write_actions[r.action]) {
        const auto bytes = r.out_off == kUnchanged ? pk.data.first(std::min<size_t>(r.len_out, pk.data.size())) : std::span<const uint8_t>(sh.arena.data() + r.out_off, r.len_out);
        // what the capture had cut off still follows the packet; a record whose original length
        // is below its captured length (malformed) had none
        const uint64_t cut = pk.orig_len > pk.data.size() ? pk.orig_len - pk.data.size() : 0;
        cfg.writer->write(pk.ts_ns, bytes, static_cast<uint32_t>(std::min<uint64_t>(r.len_out + cut, UINT32_MAX)),
                          "verdict: " + verdicts_for(cfg.type).names[r.action]);
      }
      if (cfg.ndjson) {
        const auto bytes = r.out_off == kUnchanged ? pk.data.first(std::min<size_t>(r.len_out, pk.data.size())) : std::span<const uint8_t>(sh.arena.data() + r.out_off, r.len_out);
        write_ndjson(cfg.ndjson, cfg, pk, r, redirect, cfg.ndjson_bytes ? &bytes : nullptr);
      }
    }
    if (ordered) t.write_ns += ns_since(t_write);
    in.release(nxt->start);  // this chunk's packets are done with
    if (cfg.progress) cfg.progress(in.offset());
    if (t.fault || t.stopped) break;
    if (!ahead) return ahead.error();  // after this chunk's packets, the bad record
    std::swap(cur, nxt);
  }
  for (const Worker& w : workers) t.program_ns += w.ns;
  t.wall_ns = ns_since(start);
  return t;
}

}  // namespace ubpf
