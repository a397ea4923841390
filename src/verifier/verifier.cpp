// Abstract interpretation of a linked program (see docs/verifier.md).
//
// States live at block starts, keyed by calling context and loop iteration counts. The visit
// order (KeyLess) is topological in the unrolled graph, so a state is normally complete before it
// is interpreted; joins happen where paths of the same iteration meet. Loops are unrolled by
// their iteration counts: a loop terminates when its continuing branch becomes infeasible, is
// refused when an iteration repeats an earlier one, and the complexity limit bounds the rest.
#include "verifier/verifier.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "asm/syntax.hpp"
#include "maps/map_impl.hpp"
#include "program_data.hpp"
#include "verifier/cfg.hpp"
#include "verifier/oracle.hpp"
#include "verifier/state.hpp"

namespace ebpfvm::verifier {
namespace {

using isa::Insn;
using IKind = isa::Kind;

struct Reject {
  uint32_t pc;
  std::string reason;
  std::string state;  // the abstract state where it happened
  Errc code = Errc::VerifierRejected;
  bool too_complex = false;  // a budget ran out: summarising loops may help
  bool bailed = false;       // ... or a loop went round kBailIterations times (see analyse())
};

constexpr uint32_t kCallbackBit = 0x80000000u;
// A block's state may be one of several kept apart (a partition): its level then holds the
// partition's number after the pc (and callback iteration).
constexpr uint32_t kPartBit = 0x40000000u;
constexpr uint32_t kPcMask = ~(kCallbackBit | kPartBit);
constexpr uint32_t kPartitions = 4;  // states kept apart per block and context, at most
constexpr uint64_t kMaxPacketOff = 0xffff;      // the kernel's MAX_PACKET_OFF
constexpr int64_t kMaxVarOff = 1 << 29;         // the kernel's BPF_MAX_VAR_OFF
constexpr uint32_t kCallbackUnroll = 2;         // callback iterations kept apart before widening
constexpr uint32_t kHelperLoop = 181, kHelperForEach = 164, kHelperMapLookup = 1;
constexpr uint64_t kMaxLoops = 1ull << 23;      // bpf_loop's most iterations (the kernel's BPF_MAX_LOOPS)
constexpr size_t kMaxStates = 20'000;             // about 7 KB each per frame: 140 MB at most
// Summarised loops (see analyse() and Analyzer::flow): iterations kept apart before the rest are
// summarised, the iterations a loop must reach before a too complex analysis summarises it, the
// iterations at which a first pass stops unrolling to try summarising instead, passes that
// summarise at most, and widening rounds with thresholds before growing bounds go to their limits.
constexpr uint32_t kSummaryAt = 2;
constexpr uint32_t kHotIterations = 8;
constexpr uint32_t kBailIterations = 256;
constexpr int kMaxSummaryPasses = 3;
constexpr uint32_t kThresholdRounds = 16;
// Ids a summarised loop's header gives its scalars and packet offsets (Analyzer::canonical_ids):
// below the joins' ids, above every instruction index.
constexpr uint32_t kHeaderIds = 0x20000000u;
constexpr uint32_t kHeaderIdsPerLoop = 1024;      // 8 frames of 11 registers and 64 slots fit

// ---- keys ---------------------------------------------------------------------------------------
// A key is one level per frame, outermost first: [pc | kCallbackBit? | kPartBit?, callback
// iteration if that bit is set, partition if that one is, one count per loop enclosing pc]. The
// last level's pc is a block start (only it may be partitioned); outer levels hold their call sites.
using Key = std::vector<uint32_t>;

struct Level {
  uint32_t pc;
  bool callback;
  uint32_t iter;
  size_t counts;  // index of the first count in the key
  size_t n;       // number of counts
  size_t begin;   // index of the level in the key
  uint32_t part;  // partition (0: the block's first or only state)
};

struct KeyLess {
  const Cfg* cfg;

  std::vector<Level> levels(const Key& k) const {
    std::vector<Level> out;
    for (size_t i = 0; i < k.size();) out.push_back(level_at(k, i));
    return out;
  }

  // Within a level: counts of the loops both are in, then the rank of each one's outermost loop
  // the other is not in (or of the instruction itself). That order is topological.
  int compare_level(const Key& a, const Level& la, const Key& b, const Level& lb) const {
    const auto& xa = cfg->loops_of[la.pc];
    const auto& xb = cfg->loops_of[lb.pc];
    size_t i = 0;
    for (; i < xa.size() && i < xb.size() && xa[i] == xb[i]; ++i)
      if (a[la.counts + i] != b[lb.counts + i]) return a[la.counts + i] < b[lb.counts + i] ? -1 : 1;
    const uint32_t ra = cfg->rank[i < xa.size() ? cfg->loops[xa[i]].header : la.pc];
    const uint32_t rb = cfg->rank[i < xb.size() ? cfg->loops[xb[i]].header : lb.pc];
    if (ra != rb) return ra < rb ? -1 : 1;
    if (la.pc != lb.pc) return la.pc < lb.pc ? -1 : 1;
    if (la.callback != lb.callback) return la.callback ? 1 : -1;
    if (la.iter != lb.iter) return la.iter < lb.iter ? -1 : 1;
    for (size_t j = 0; j < la.n && j < lb.n; ++j)
      if (a[la.counts + j] != b[lb.counts + j]) return a[la.counts + j] < b[lb.counts + j] ? -1 : 1;
    if (la.part != lb.part) return la.part < lb.part ? -1 : 1;  // partitions of one block never feed each other
    return 0;
  }

  Level level_at(const Key& k, size_t& i) const {
    Level l{k[i] & kPcMask, (k[i] & kCallbackBit) != 0, 0, 0, 0, i, 0};
    const bool partitioned = (k[i] & kPartBit) != 0;
    ++i;
    if (l.callback) l.iter = k[i++];
    if (partitioned) l.part = k[i++];
    l.n = cfg->loops_of[l.pc].size();
    l.counts = i;
    i += l.n;
    return l;
  }

  // Level by level, without building the level lists: this runs for every map and set operation.
  bool operator()(const Key& a, const Key& b) const {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
      const Level la = level_at(a, i), lb = level_at(b, j);
      if (int c = compare_level(a, la, b, lb)) return c < 0;
    }
    return i < a.size() && j >= b.size();  // a callee before its return point
  }
};

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

Cmp cmp_of(uint8_t opcode) {
  switch (isa::op_code(opcode)) {
    case 0x10: return Cmp::Eq;
    case 0x20: return Cmp::Gt;
    case 0x30: return Cmp::Ge;
    case 0x40: return Cmp::Set;
    case 0x50: return Cmp::Ne;
    case 0x60: return Cmp::Sgt;
    case 0x70: return Cmp::Sge;
    case 0xa0: return Cmp::Lt;
    case 0xb0: return Cmp::Le;
    case 0xc0: return Cmp::Slt;
    default: return Cmp::Sle;
  }
}

class Analyzer {
 public:
  Analyzer(const Input& in, const Cfg& cfg, const std::vector<bool>& summarised, const std::vector<uint64_t>& thresholds, bool bail)
      : in_(in), insns_(in.prog->insns), cfg_(cfg), states_(KeyLess{&cfg}), work_(KeyLess{&cfg}), block_insns_(KeyLess{&cfg}),
        callback_calls_(KeyLess{&cfg}), summarised_(summarised), thresholds_(thresholds), bail_(bail), max_count_(cfg.loops.size(), 0) {
    for (const MapRef& m : in.maps) map_names_.push_back(m.spec->name);
    if (in.options.record_states) {
      record_ = std::make_shared<detail::AbstractStates>();
      record_->at.resize(insns_.size());
    }
  }

  VerifyReport run();

 private:
  const Input& in_;
  const std::vector<Insn>& insns_;
  const Cfg& cfg_;
  std::vector<MapRef> inner_;  // inner map shapes, after in_.maps in the aux numbering
  std::vector<std::string> map_names_;
  std::map<Key, State, KeyLess> states_;
  std::set<Key, KeyLess> work_;
  VerifyReport report_;
  State* current_ = nullptr;  // for diagnostics
  std::map<std::array<uint64_t, 6>, uint32_t> join_ids_;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> merged_;
  std::map<uint32_t, std::pair<int64_t, int64_t>> merged_locks_;  // lock_words() of merged maps
  std::vector<std::unique_ptr<MapSpec>> owned_;
  uint32_t next_join_id_ = 0x40000000;  // above every instruction index
  std::map<uint32_t, uint8_t> load_bases_;  // per load: 1 the context was its base, 2 something else
  bool format_args_ = false;  // a helper reads format arguments: spilled pointers may be among them

  // VerifyOptions::record_states: the innermost frame's registers before each instruction
  std::shared_ptr<detail::AbstractStates> record_;
  void record(const State& st, uint32_t pc);

  // ---- the work bound (see bound()) ----
  struct CallbackCall {
    uint32_t pc;     // the helper call (it ends its block: one per state)
    uint64_t times;  // how often one call may invoke the callback
  };
  // By state key: a state analysed again after a join counts once, with what it knows last.
  std::map<Key, uint32_t, KeyLess> block_insns_;  // instructions of each state's block
  std::map<Key, CallbackCall, KeyLess> callback_calls_;
  struct Bound {
    uint64_t insns = 0, callbacks = 0;
    uint32_t site = 0;    // the call that starts the costliest chain of callback calls
    std::string nesting;  // that chain, for the message
  };
  struct Invocations {  // what each invocation (main program, callback) holds
    std::map<Key, uint64_t> insns;
    struct Call {
      const Key* caller;
      const CallbackCall* call;
      uint64_t times;  // the helper's count times how often the caller's block runs (summarised loops)
    };
    std::map<Key, std::vector<Call>> calls;
    std::map<Key, Bound> memo;
  };
  Key invocation(const Key& k) const;
  Bound bound(const Key& prefix, Invocations& inv) const;
  void bound_work();

  // ---- summarised loops (see flow()) ----
  const std::vector<bool>& summarised_;  // by loop index
  const std::vector<uint64_t>& thresholds_;  // the program's constants
  const bool bail_;                          // give up on a loop unrolled kBailIterations times
  Thresholds round_thresholds(const State& old, const State& in) const;
  std::vector<uint32_t> max_count_;      // by loop index: the most iterations the analysis reached
  // By summarised header key (the "instance": calling context, enclosing loops' counts): the
  // state each back edge brought it, by the back edge's source key, as last analysed.
  std::map<Key, std::map<Key, State>> back_edges_;
  std::map<Key, uint32_t> widen_rounds_;
  std::map<Key, uint64_t> visits_;  // by instance: visits of its summarised iteration in one run, at most
  void canonical_ids(State& st, uint32_t loop) const;
  uint64_t loop_visits(const Key& header, uint32_t loop) const;
  uint64_t multiplicity(const Key& k, size_t from, bool skip_own) const;
  void bound_loops();

  // ---- helpers ----
  [[noreturn]] void reject(uint32_t pc, std::string reason) {
    throw Reject{pc, std::move(reason), current_ ? state_text(*current_) : std::string()};
  }
  static std::string R(int r) { return "R" + std::to_string(r); }
  const MapRef& map(uint32_t aux) const { return aux < in_.maps.size() ? in_.maps[aux] : inner_[aux - in_.maps.size()]; }
  uint32_t inner_ref(const MapSpec& outer);
  uint32_t merged_map(uint32_t a, uint32_t b);
  void check_bindings();
  std::pair<int64_t, int64_t> lock_words(uint32_t aux) const;
  size_t last_level(const Key& k) const { return KeyLess{&cfg_}.levels(k).back().begin; }

  Value& reg(State& st, int r) { return st.top().regs[r]; }
  const Value& read(State& st, uint32_t pc, int r) {
    const Value& v = st.top().regs[r];
    if (!v.readable()) reject(pc, R(r) + " !read_ok" + unreadable_reason(v));
    return v;
  }
  void write_reg(State& st, uint32_t pc, int r, Value v) {
    if (r == 10) reject(pc, "frame pointer is read only");
    // An empty value would make everything after it look unreachable: only a branch may conclude
    // that. Should an operation ever compute one, know nothing rather than prove too much.
    if (v.s.empty()) v.s = Scalar::unknown();
    st.top().regs[r] = std::move(v);
  }

  // ---- flow ----
  void run_block(const Key& key, State st);
  void flow(const Key& key, uint32_t from, uint32_t to, State st);
  void merge(const Key& k, State st, bool widening = false);
  void merge_into(const Key& k, State st, bool widening, std::optional<uint32_t> summary = std::nullopt);
  Key unpartitioned(const Key& k) const;
  Key partition(const Key& k, uint32_t part) const;
  bool keep_apart(const State& a, const State& b) const;

  // ---- instructions ----
  void alu(State& st, uint32_t pc, const Insn& in);
  void pointer_alu(State& st, uint32_t pc, const Insn& in, uint8_t op, Value dst, Value src);
  void branch(const Key& key, State st, uint32_t pc, const Insn& in);
  bool refine_same_region(State& st, int rd, int rs, const Value& a, const Value& b, Cmp op, bool& feasible);
  bool refine_pointers(State& st, int rd, int rs, Value a, Value b, Cmp op, bool& feasible);
  void lddw(State& st, uint32_t pc, const Insn& in);
  void load(State& st, uint32_t pc, const Insn& in);
  void store(State& st, uint32_t pc, const Insn& in);
  void atomic(State& st, uint32_t pc, const Insn& in);
  void exit(const Key& key, State st, uint32_t pc);
  void call_local(const Key& key, State st, uint32_t pc, const Insn& in);
  void helper(const Key& key, State& st, uint32_t pc, const Insn& in, bool& ends_block);
  struct CallArgs {
    std::optional<uint32_t> map;  // the ConstMapPtr argument's map
    std::optional<Value> func;    // the callback
  };
  CallArgs check_args(State& st, uint32_t pc, const Helper* h);
  Value helper_result(State& st, uint32_t pc, const Helper* h, const CallArgs& args);
  static std::optional<uint64_t> known_key(const State& st, const Value& p, uint32_t size);
  Frame callback_frame(uint32_t helper_id, State& caller);
  void resources(State& st, uint32_t pc, const Helper* h);
  uint64_t lock_id(State& st, uint32_t pc);
  std::string lock_text(uint64_t lock) const;
  std::string refs_text(const std::vector<uint32_t>& refs) const;

  // ---- memory ----
  enum class Mode { Read, Write };
  Value access(State& st, uint32_t pc, int r, const Value& ptr, int64_t off, uint32_t size, Mode mode,
               const Value* stored, bool sign_extend);
  // Helper arguments: [ptr, ptr + size) with size in [min, max].
  void mem_arg(State& st, uint32_t pc, int r, uint64_t min, uint64_t max, Mode mode);
  Value stack_access(State& st, uint32_t pc, int r, const Value& ptr, int64_t off, uint64_t size, Mode mode,
                     const Value* stored, bool helper, uint64_t init_size);
  void region_check(uint32_t pc, int r, const Value& ptr, int64_t off, uint64_t size, uint64_t limit, const char* what);
  void invalidate_packet(State& st);
  void link_scalar_copies(State& st, int r);
  std::vector<Insn> callx_targets(State& st, uint32_t pc, const Insn& in);
  void callx(const Key& key, State& st, uint32_t pc, const Insn& in);
  static std::optional<Value> linked_constant_add(const Value& dst, const Value& src, uint8_t op, bool is64);
  bool linked_packet_pointer(State& st, uint32_t pc, int kr, Value& ptr, Value k);

  std::string state_text(const State& st) const;
  void log_insn(const State& st, uint32_t pc);
  friend Result<VerifyReport> ebpfvm::verifier::analyse(const Input& in);
};

// A value of map a or of map b: as small as the smaller, writable only if both are.
// The bytes of a map's value that hold bpf_spin_lock words ([-1, -1): none). A value that may
// come from either of two maps has both's, and what lies between.
std::pair<int64_t, int64_t> Analyzer::lock_words(uint32_t aux) const {
  if (auto it = merged_locks_.find(aux); it != merged_locks_.end()) return it->second;
  const int64_t off = map(aux).spec->spin_lock_off;
  return off < 0 ? std::pair<int64_t, int64_t>{-1, -1} : std::pair<int64_t, int64_t>{off, off + 4};
}

uint32_t Analyzer::merged_map(uint32_t a, uint32_t b) {
  if (a > b) std::swap(a, b);
  if (auto it = merged_.find({a, b}); it != merged_.end()) return it->second;
  const MapSpec& x = *map(a).spec;
  const MapSpec& y = *map(b).spec;
  auto spec = std::make_unique<MapSpec>();
  spec->name = x.name + "|" + y.name;
  spec->type = x.type == y.type ? x.type : MapType::Unspec;
  spec->value_size = std::min(x.value_size, y.value_size);
  spec->map_flags = (x.map_flags | y.map_flags) & 0x80;  // BPF_F_RDONLY_PROG from either
  if (map(a).frozen || map(b).frozen) spec->map_flags |= 0x80;
  // a lock only where both have it; no access to either's lock word
  spec->spin_lock_off = x.spin_lock_off == y.spin_lock_off ? x.spin_lock_off : -1;
  const auto la = lock_words(a), lb = lock_words(b);
  const std::pair<int64_t, int64_t> words = la.first < 0 ? lb : lb.first < 0 ? la : std::pair{std::min(la.first, lb.first), std::max(la.second, lb.second)};
  inner_.push_back({spec.get(), nullptr});
  owned_.push_back(std::move(spec));
  map_names_.push_back(owned_.back()->name);
  const auto id = static_cast<uint32_t>(in_.maps.size() + inner_.size() - 1);
  merged_.emplace(std::make_pair(a, b), id);
  if (words.first >= 0) merged_locks_[id] = words;
  return id;
}

uint32_t Analyzer::inner_ref(const MapSpec& outer) {
  for (size_t i = 0; i < inner_.size(); ++i)
    if (inner_[i].spec == outer.inner.get()) return static_cast<uint32_t>(in_.maps.size() + i);
  inner_.push_back({outer.inner.get(), nullptr});
  map_names_.push_back(outer.name + ".inner");
  return static_cast<uint32_t>(in_.maps.size() + inner_.size() - 1);
}

std::string Analyzer::state_text(const State& st) const {
  std::string out;
  if (st.frames.empty()) return out;
  const Frame& f = st.top();
  for (int r = 0; r <= 10; ++r) {
    if (!f.regs[r].readable()) continue;
    out += (out.empty() ? "" : " ") + R(r) + "=" + f.regs[r].str(map_names_);
  }
  for (int i = kSlots - 1; i >= 0; --i) {
    const Slot& s = f.stack[i];
    if (!s.init) continue;
    const int off = (i - kSlots) * 8;
    out += " fp" + std::to_string(off) + "=";
    out += s.spill_size == 8 ? s.spill.str(map_names_) : (s.init == 0xff ? "mmmmmmmm" : hex(s.init));
  }
  if (st.frames.size() > 1) out = "frame" + std::to_string(st.frames.size() - 1) + ": " + out;
  if (!st.refs.empty()) out += " refs=[" + refs_text(st.refs) + "]";
  if (st.lock) out += " lock=(" + lock_text(st.lock) + ")";
  return out;
}

void Analyzer::log_insn(const State& st, uint32_t pc) {
  if (!in_.options.verbose) return;
  report_.log += std::to_string(pc) + ": " + asmtext::format_insn(insns_, pc) + "\n      ; " + state_text(st) + "\n";
}

// ---- driver ---------------------------------------------------------------------------------------
// What the engines bind when they load, checked in every instruction, dead code too (as the
// kernel resolves map references and the interpreter and JIT bind helpers): a program verify()
// accepts is one they load.
void Analyzer::check_bindings() {
  for (uint32_t pc = 0; pc < insns_.size(); ++pc) {
    const Insn& in = insns_[pc];
    const uint32_t idx = static_cast<uint32_t>(in.imm);
    switch (in.op) {
      case isa::Op::LDDW_MAP_FD: case isa::Op::LDDW_MAP_IDX:
        if (idx >= in_.maps.size()) reject(pc, "fd " + std::to_string(idx) + " is not pointing to valid bpf_map");
        break;
      case isa::Op::LDDW_MAP_VALUE: case isa::Op::LDDW_MAP_IDX_VALUE:
        if (idx >= in_.maps.size()) reject(pc, "fd " + std::to_string(idx) + " is not pointing to valid bpf_map");
        if (in_.maps[idx].spec->type != MapType::Array) reject(pc, "map '" + in_.maps[idx].spec->name + "' has no direct value access: it is not an array");
        break;
      case isa::Op::LDDW_CODE: case isa::Op::LDDW: case isa::Op::LDDW_HI: break;
      default:
        if (isa::info(in.op).kind == IKind::Lddw) reject(pc, "lddw of a kernel variable (src " + std::to_string(in.src) + ") is not supported");
        if (isa::info(in.op).kind == IKind::CallKfunc) reject(pc, "kernel function calls (kfuncs) are not supported");
        if (isa::info(in.op).kind == IKind::Call && !in_.helpers->find(idx))
          throw Reject{pc, "invalid func unknown#" + std::to_string(in.imm), "", Errc::UnknownHelper};
    }
  }
}

VerifyReport Analyzer::run() {
  check_bindings();
  State st;
  st.frames.resize(1);
  Frame& f = st.top();
  f.regs[10] = Value::pointer(Kind::Stack, 0);
  if (in_.type) {
    f.regs[1] = Value::pointer(Kind::Ctx, 0);
  } else {
    // The engines give a program verified for N bytes exactly N (r2 = N, whatever memory the
    // caller has), and r1 = 0 when N is 0: the analysis may rely on both.
    const uint32_t n = in_.options.memory_size;
    f.regs[1] = n ? Value::pointer(Kind::Mem, n) : Value::constant(0);
    f.regs[2] = Value::constant(n);
  }
  Key k0{0};
  k0.resize(1 + cfg_.loops_of[0].size(), 0);
  merge(k0, std::move(st));
  while (!work_.empty()) {
    Key k = *work_.begin();
    work_.erase(work_.begin());
    run_block(k, states_.at(k));
  }
  report_.states = states_.size();
  for (const auto& [key, st] : states_)
    report_.state_bytes += sizeof(st) + key.size() * sizeof(uint32_t) + st.frames.capacity() * sizeof(Frame) + st.refs.capacity() * sizeof(uint32_t);
  bound_work();
  if (record_) {
    record_->map_names = map_names_;
    for (const MapRef& m : in_.maps) record_->maps.push_back(m.impl);
    report_.abstract_states = record_;
  }
  return report_;
}

void Analyzer::record(const State& st, uint32_t pc) {
  auto& at = record_->at[pc];
  const auto frame = static_cast<uint32_t>(st.frames.size() - 1);
  if (!at) {
    at = detail::AbstractStates::At{st.top().regs, frame};
    return;
  }
  for (int r = 0; r <= 10; ++r) at->regs[r] = join(at->regs[r], st.top().regs[r], false);
  if (at->frame != frame) at->frame = UINT32_MAX;  // reached at several depths: stack pointers unchecked
}

Key Analyzer::unpartitioned(const Key& k) const {
  const Level l = KeyLess{&cfg_}.levels(k).back();
  if (!(k[l.begin] & kPartBit)) return k;
  Key out = k;
  out[l.begin] &= ~kPartBit;
  out.erase(out.begin() + static_cast<std::ptrdiff_t>(l.counts - 1));
  return out;
}

Key Analyzer::partition(const Key& k, uint32_t part) const {
  if (part == 0) return k;
  const Level l = KeyLess{&cfg_}.levels(k).back();
  Key out = k;
  out[l.begin] |= kPartBit;
  out.insert(out.begin() + static_cast<std::ptrdiff_t>(l.counts), part);
  return out;
}

// Bounded path sensitivity: two states are kept apart where joining them would lose what a
// pointer was (its kind, its proven packet range, its offsets) and some scalar tells them apart
// (disjoint values: a flag set to 0 on one path and -22 on the other, a length tested on both
// sides of a bound). A later test of that scalar then reaches only the state it fits, with its
// pointers as that path left them: `ok = data + 56 <= end ? 0 : -EINVAL; ...; if (ok) goto err;
// read data[54]`. Registers and whole spills of the innermost frame are compared.
bool Analyzer::keep_apart(const State& a, const State& b) const {
  if (a.frames.size() != b.frames.size() || a.lock != b.lock) return false;
  bool told_apart = false, pointer_lost = false;
  auto compare = [&](const Value& x, const Value& y) {
    if (x.kind == Kind::Scalar && y.kind == Kind::Scalar)
      told_apart = told_apart || x.s.umax < y.s.umin || y.s.umax < x.s.umin || x.s.smax < y.s.smin || y.s.smax < x.s.smin;
    else if ((is_pointer(x.kind) || is_pointer(y.kind)) && !(x == y))
      pointer_lost = true;
  };
  const Frame &fa = a.top(), &fb = b.top();
  for (int r = 0; r < 10; ++r) compare(fa.regs[r], fb.regs[r]);
  for (int i = 0; i < kSlots; ++i)
    if (fa.stack[i].spill_size == 8 && fb.stack[i].spill_size == 8) compare(fa.stack[i].spill, fb.stack[i].spill);
  return told_apart && pointer_lost;
}

// A state reaching block key k joins the first of k's partitions it need not be kept apart from,
// or starts a new one; with kPartitions already, it joins the last. The analysis keeps apart
// only while it is small (a quarter of its state and instruction budgets): past that, states
// join as before, so path sensitivity never turns an accepted program into a too complex one.
void Analyzer::merge(const Key& k, State st, bool widening) {
  const bool partitions = !widening && states_.size() < kMaxStates / 4 && report_.insns_analysed < in_.options.complexity_limit / 4;
  if (!partitions) {
    merge_into(k, std::move(st), widening);
    return;
  }
  for (uint32_t part = 0; part < kPartitions; ++part) {
    const Key kp = partition(k, part);
    auto it = states_.find(kp);
    if (it == states_.end() || part + 1 == kPartitions || !keep_apart(it->second, st)) {
      merge_into(kp, std::move(st), widening);
      return;
    }
  }
}

void Analyzer::merge_into(const Key& k, State st, bool widening, std::optional<uint32_t> summary) {
  if (summary) canonical_ids(st, *summary);
  auto it = states_.find(k);
  if (it == states_.end()) {
    // each state holds every frame's registers and stack: bound the memory the analysis may take
    if (states_.size() >= kMaxStates) {
      Reject r{k[KeyLess{&cfg_}.levels(k).back().begin] & kPcMask,
               "program too complex: more than " + std::to_string(kMaxStates) + " states (calling contexts and loop iterations)",
               current_ ? state_text(*current_) : std::string()};
      r.too_complex = true;
      throw r;
    }
    states_.emplace(k, std::move(st));
    work_.insert(k);
    return;
  }
  if (it->second.lock != st.lock)
    reject(k[KeyLess{&cfg_}.levels(k).back().begin] & kPcMask,
           "paths meet holding different spin locks (" + lock_text(it->second.lock) + " and " + lock_text(st.lock) + ")");
  // ids for packet pointers this join rebases: one per (state, joined pair), stable across rejoins
  JoinHooks hooks;
  hooks.id = [&, node = &it->first](const Value& a, const Value& b) {
    const std::array<uint64_t, 6> k{reinterpret_cast<uintptr_t>(node), static_cast<uint64_t>(a.kind), a.id,
                                    static_cast<uint32_t>(a.off), b.id, static_cast<uint32_t>(b.off)};
    auto [pos, fresh] = join_ids_.try_emplace(k, next_join_id_);
    if (fresh) ++next_join_id_;
    return pos->second;
  };
  hooks.map = [&](uint32_t a, uint32_t b) { return merged_map(a, b); };
  // A summarised loop's header widens with the program's constants as thresholds for a while,
  // then (should bounds still move) to their limits, and its ids stay canonical so that the
  // rounds can settle.
  Thresholds th;
  if (summary && ++widen_rounds_[k] <= kThresholdRounds) {
    th = round_thresholds(it->second, st);
    hooks.thresholds = &th;
  }
  State j = join(it->second, st, widening, &hooks);
  if (summary) canonical_ids(j, *summary);
  if (j == it->second) return;
  it->second = std::move(j);
  work_.insert(k);
}

void Analyzer::flow(const Key& key_in, uint32_t from, uint32_t to, State st) {
  const Key key = unpartitioned(key_in);  // the successor's partition is its own
  const size_t lvl = last_level(key);
  Key nk(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(lvl));
  nk.push_back(to);
  const auto& lf = cfg_.loops_of[from];
  const auto& lt = cfg_.loops_of[to];
  const size_t counts = lvl + 1;
  std::optional<size_t> back;
  std::optional<uint32_t> summary;  // `to` heads this summarised loop, at its summarised iteration
  bool summary_back = false;        // ... and this edge goes round it again
  for (size_t i = 0; i < lt.size(); ++i) {
    uint32_t c = 0;
    for (size_t j = 0; j < lf.size(); ++j)
      if (lf[j] == lt[i]) {
        c = key[counts + j];
        if (cfg_.loops[lt[i]].header == to) {
          c += 1, back = nk.size();
          max_count_[lt[i]] = std::max(max_count_[lt[i]], c);
          if (summarised_[lt[i]] && c >= kSummaryAt) summary = lt[i], summary_back = c > kSummaryAt, c = kSummaryAt;
          if (bail_ && !summarised_[lt[i]] && c >= kBailIterations) {
            Reject r{to, "the loop at insn " + std::to_string(to) + " went round " + std::to_string(c) + " times", ""};
            r.too_complex = r.bailed = true;
            throw r;
          }
        }
      }
    nk.push_back(c);
  }
  if (summary) {
    // Iterations from kSummaryAt on share one state, widened until it holds them all; what makes
    // the loop stop is then proven from the back edges' states at the end (loop_visits()).
    if (summary_back) back_edges_[nk][key_in] = st;
    merge_into(nk, std::move(st), true, summary);
    return;
  }
  if (back) {
    // The same iteration again: nothing the analysis knows makes this loop stop.
    Key prev = nk;
    --prev[*back];
    for (uint32_t part = 0; part < kPartitions; ++part) {
      auto it = states_.find(partition(prev, part));
      if (it != states_.end() && join(it->second, st) == it->second)
        reject(to, "infinite loop detected at insn " + std::to_string(to) +
                       ": an iteration starts in a state an earlier one started in (no bounded induction variable)");
    }
  }
  merge(nk, std::move(st));
}

// A summarised loop's header state names its links by position: the class of scalars and packet
// offsets whose first holder (frames outermost first, registers, then stack slots) is position p
// gets id kHeaderIds + loop * kHeaderIdsPerLoop + p, and an unlinked scalar becomes a class of its
// own. Two things follow. The states the rounds of widening produce compare equal once their
// values do (packet pointers joined at new offsets get fresh ids from each join otherwise, and the
// rounds would never settle). And since only this header makes such ids, a scalar in the body
// carrying the id of position p is what p held when this iteration began, plus its offset:
// where a back edge brings p back as p + d, the loop's progress is known (loop_visits()). For that
// a class no packet pointer shares is moved so that its first holder's offset is 0, and the ids
// of enclosing loops' headers are left as they are (an inner loop must not rename what an
// enclosing loop's header held).
void Analyzer::canonical_ids(State& st, uint32_t loop) const {
  auto linkable = [](const Value& v) {
    return v.kind == Kind::Scalar || ((v.kind == Kind::Packet || v.kind == Kind::PacketMeta) && v.id != 0 && v.id != kUnlinked);
  };
  auto each = [&](auto&& fn) {
    uint32_t pos = 0;
    for (Frame& f : st.frames) {
      for (Value& v : f.regs) fn(v, pos++);
      for (Slot& sl : f.stack) {
        if (sl.spill_size) fn(sl.spill, pos);
        ++pos;
      }
    }
  };
  const uint32_t base = kHeaderIds + loop * kHeaderIdsPerLoop;
  // An enclosing loop's header ids stay: they still say what its header held.
  const auto& enclosing = cfg_.loops_of[cfg_.loops[loop].header];
  auto other_loops = [&](uint32_t id) {
    if (id < kHeaderIds || id >= kHeaderIds + cfg_.loops.size() * kHeaderIdsPerLoop) return false;
    const uint32_t owner = (id - kHeaderIds) / kHeaderIdsPerLoop;
    return owner != loop && std::find(enclosing.begin(), enclosing.end(), owner) != enclosing.end();
  };
  std::map<uint32_t, uint32_t> name;     // old id -> new one
  std::map<uint32_t, int32_t> shift;     // old id of a scalar-only class -> its first holder's offset
  std::set<uint32_t> packet;             // old ids a packet pointer carries
  each([&](Value& v, uint32_t pos) {
    if (!linkable(v) || v.id == 0 || v.id == kUnlinked || other_loops(v.id)) return;
    if (name.emplace(v.id, base + pos).second) shift[v.id] = v.off;
    if (v.kind != Kind::Scalar) packet.insert(v.id);
  });
  each([&](Value& v, uint32_t pos) {
    if (!linkable(v) || other_loops(v.id)) return;
    if (v.id == 0 || v.id == kUnlinked) {
      v.id = base + pos, v.off = 0;
      return;
    }
    if (v.kind == Kind::Scalar && !packet.count(v.id)) v.off -= shift[v.id];
    v.id = name[v.id];
  });
}

// Where a summarised header's widening may stop this round: the program's constants, and every
// bound of a scalar the back edge brings back unchanged (a bound loaded before the loop: `i < n`
// with n from the packet stops i at n's upper bound, though `i < n` raises n's lower one). Bounds
// that moved are left out: they would let the widened one creep up a step per round.
Thresholds Analyzer::round_thresholds(const State& old, const State& in) const {
  std::vector<uint64_t> c = thresholds_;
  auto add = [&](const Value& a, const Value& b) {
    if (a.kind != Kind::Scalar || b.kind != Kind::Scalar) return;
    if (a.s.umin == b.s.umin) c.push_back(a.s.umin);
    if (a.s.umax == b.s.umax) c.push_back(a.s.umax);
    if (a.s.smin == b.s.smin) c.push_back(static_cast<uint64_t>(a.s.smin));
    if (a.s.smax == b.s.smax) c.push_back(static_cast<uint64_t>(a.s.smax));
  };
  for (size_t f = 0; f < old.frames.size() && f < in.frames.size(); ++f) {
    for (int r = 0; r < 11; ++r) add(old.frames[f].regs[r], in.frames[f].regs[r]);
    for (int i = 0; i < kSlots; ++i)
      if (old.frames[f].stack[i].spill_size == 8 && in.frames[f].stack[i].spill_size == 8)
        add(old.frames[f].stack[i].spill, in.frames[f].stack[i].spill);
  }
  return Thresholds::of(c);
}

void Analyzer::run_block(const Key& key, State st) {
  current_ = &st;
  const std::vector<Level> levels = KeyLess{&cfg_}.levels(key);
  uint32_t pc = levels.back().pc;
  uint32_t& block_insns = block_insns_[key];
  block_insns = 0;
  for (;;) {
    const Insn& in = insns_[pc];
    ++block_insns;
    if (record_) record(st, pc);
    if (++report_.insns_analysed > in_.options.complexity_limit) {
      std::string loop;
      const Level& l = levels.back();
      for (size_t i = 0; i < l.n; ++i)
        loop = "; the loop at insn " + std::to_string(cfg_.loops[cfg_.loops_of[l.pc][i]].header) + " is at iteration " +
               std::to_string(key[l.counts + i]) + ": bound it by a constant";
      Reject r{pc, "program too complex: the analysis went past " + std::to_string(in_.options.complexity_limit) + " instructions" + loop,
               state_text(st)};
      r.too_complex = true;
      throw r;
    }
    uint32_t next = pc + 1;
    switch (isa::info(in.op).kind) {
      case IKind::Jcond: log_insn(st, pc); branch(key, std::move(st), pc, in); return;
      case IKind::Ja: log_insn(st, pc); flow(key, pc, static_cast<uint32_t>(isa::jump_target(in, pc)), std::move(st)); return;
      case IKind::Exit: log_insn(st, pc); exit(key, std::move(st), pc); return;
      case IKind::CallLocal: log_insn(st, pc); call_local(key, std::move(st), pc, in); return;
      case IKind::Call: {
        bool ends = false;
        helper(key, st, pc, in, ends);
        if (ends) return;
        break;
      }
      case IKind::CallKfunc: reject(pc, "kernel function calls (kfuncs) are not supported");
      case IKind::Callx: callx(key, st, pc, in); break;
      case IKind::Lddw: lddw(st, pc, in), next = pc + 2; break;
      case IKind::Ldx: load(st, pc, in); break;
      case IKind::St: case IKind::Stx: store(st, pc, in); break;
      case IKind::Atomic: atomic(st, pc, in); break;
      case IKind::LdAbs: case IKind::LdInd: {
        // As in the kernel: the legacy packet loads belong to socket filters and tc programs,
        // whose context holds an skb; an XDP program that used them would not load there.
        if (in_.type && !in_.type->ld_abs) reject(pc, "BPF_LD_[ABS|IND] instructions not allowed for this program type");
        // As in the kernel: the skb the loads read is the context, which r6 must hold.
        if (in_.type && (read(st, pc, 6).kind != Kind::Ctx || reg(st, 6).off != 0 || !reg(st, 6).s.is_const() || reg(st, 6).s.value() != 0))
          reject(pc, "at the time of BPF_LD_ABS|IND R6 != pointer to skb");
        if (isa::info(in.op).kind == IKind::LdInd && read(st, pc, in.src).kind != Kind::Scalar)
          reject(pc, R(in.src) + " type=" + kind_name(reg(st, in.src).kind) + " expected=scalar");
        for (int r = 1; r <= 5; ++r) reg(st, r) = {};
        reg(st, 0) = Value::scalar(Scalar::bits(isa::mem_size(in.opcode) * 8));
        break;
      }
      default: alu(st, pc, in); break;
    }
    log_insn(st, pc);
    if (cfg_.leader[next]) {
      flow(key, pc, next, std::move(st));
      return;
    }
    pc = next;
  }
}

// ---- ALU ----------------------------------------------------------------------------------------
void Analyzer::link_scalar_copies(State& st, int r) {
  // After a refinement, every scalar linked to it learns it too, moved by their constant distance.
  const Value v = reg(st, r);
  if (v.kind != Kind::Scalar || v.id == 0 || v.id == kUnlinked) return;
  auto learn = [&](Value& x) {
    if (x.kind != Kind::Scalar || x.id != v.id) return;
    x.s = x.off == v.off ? v.s : alu64(0x00, v.s, Scalar::constant(static_cast<uint64_t>(int64_t{x.off} - v.off)), false);
  };
  for (Frame& f : st.frames) {
    for (Value& x : f.regs) learn(x);
    for (Slot& sl : f.stack)
      if (sl.spill_size == 8) learn(sl.spill);
  }
}

// `r += c` / `r -= c` on a linked scalar: the result stays linked, c further from the others
// (`r5 = r3; r5 += 4` is r3 + 4 whatever r3 turns out to be), so that a check of data + r5
// also covers data + r3 + 4 (linked_packet_pointer). A 32-bit `w += c` stays linked where it
// cannot wrap (the value and the result within 32 bits), as a u32 loop counter's does. Anything
// else ends the link.
std::optional<Value> Analyzer::linked_constant_add(const Value& dst, const Value& src, uint8_t op, bool is64) {
  if ((op != 0x00 && op != 0x10) || dst.kind != Kind::Scalar || dst.id == 0 || dst.id == kUnlinked) return std::nullopt;
  if (src.kind != Kind::Scalar || !src.s.is_const()) return std::nullopt;
  int64_t c = is64 ? static_cast<int64_t>(src.s.value()) : int64_t{static_cast<int32_t>(src.s.value())};
  if (c > kMaxVarOff || c < -kMaxVarOff) return std::nullopt;
  if (op == 0x10) c = -c;
  if (!is64) {
    const bool fits = dst.s.umax <= 0xffffffffu && (c >= 0 ? dst.s.umax + static_cast<uint64_t>(c) <= 0xffffffffu
                                                         : dst.s.umin >= static_cast<uint64_t>(-c));
    if (!fits) return std::nullopt;
  }
  const int64_t off = int64_t{dst.off} + c;
  if (off > kMaxVarOff || off < -kMaxVarOff) return std::nullopt;
  Value v = Value::scalar(is64 ? alu64(op, dst.s, src.s, false) : alu32(op, dst.s, src.s, false));
  v.id = dst.id;
  v.off = static_cast<int32_t>(off);
  return v;
}

void Analyzer::alu(State& st, uint32_t pc, const Insn& in) {
  const IKind kind = isa::info(in.op).kind;
  const bool is64 = isa::is_alu64(in.opcode);
  const uint8_t op = isa::op_code(in.opcode);
  if (kind == IKind::End) {
    const Value& d = read(st, pc, in.dst);
    if (d.kind != Kind::Scalar) reject(pc, R(in.dst) + " byte swap of a pointer prohibited");
    const unsigned bytes = static_cast<unsigned>(in.imm) / 8;
    const bool to_le = !is64 && !isa::uses_src_reg(in.opcode);
    write_reg(st, pc, in.dst, Value::scalar(to_le ? truncate(d.s, bytes) : byte_swap(d.s, bytes)));
    return;
  }
  if (kind == IKind::MovSx) {
    const Value& s = read(st, pc, in.src);
    if (s.kind != Kind::Scalar) reject(pc, R(in.src) + " sign extension of a pointer prohibited");
    const Scalar x = sign_extend(s.s, static_cast<unsigned>(in.off) / 8);
    write_reg(st, pc, in.dst, Value::scalar(is64 ? x : truncate(x, 4)));
    return;
  }
  Value src;
  if (kind == IKind::Neg) src = Value::constant(0);
  else if (isa::uses_src_reg(in.opcode)) src = read(st, pc, in.src);
  else src = Value::constant(is64 ? static_cast<uint64_t>(static_cast<int64_t>(in.imm)) : static_cast<uint32_t>(in.imm));
  if (in.dst == 10) reject(pc, "frame pointer is read only");
  if (op == 0xb0) {  // mov
    if (!is64) {
      if (src.kind != Kind::Scalar) reject(pc, R(in.src) + " partial copy of pointer");
      write_reg(st, pc, in.dst, Value::scalar(truncate(src.s, 4)));
      return;
    }
    if (src.kind == Kind::Scalar && isa::uses_src_reg(in.opcode)) {
      // link the copies, so that a check on one refines the other
      if (src.id == 0 || src.id == kUnlinked) {
        retire_id(st, pc + 1);
        reg(st, in.src).id = pc + 1;
        src.id = pc + 1;
      }
    }
    write_reg(st, pc, in.dst, src);
    return;
  }
  const Value dst = read(st, pc, in.dst);
  if (kind == IKind::Neg) {
    if (dst.kind != Kind::Scalar) reject(pc, R(in.dst) + " pointer arithmetic with neg prohibited");
    write_reg(st, pc, in.dst, Value::scalar(is64 ? alu64(0x80, dst.s, dst.s, false) : alu32(0x80, dst.s, dst.s, false)));
    return;
  }
  if (dst.kind == Kind::Scalar && src.kind == Kind::Scalar) {
    if (auto linked = linked_constant_add(dst, src, op, is64)) {
      write_reg(st, pc, in.dst, *linked);
      return;
    }
    const bool is_signed = in.off == 1;
    write_reg(st, pc, in.dst, Value::scalar(is64 ? alu64(op, dst.s, src.s, is_signed) : alu32(op, dst.s, src.s, is_signed)));
    return;
  }
  if (!is64) reject(pc, R(dst.kind == Kind::Scalar ? in.src : in.dst) + " 32-bit pointer arithmetic prohibited");
  pointer_alu(st, pc, in, op, dst, src);
}

void Analyzer::pointer_alu(State& st, uint32_t pc, const Insn& in, uint8_t op, Value dst, Value src) {
  const int rd = in.dst, rs = isa::uses_src_reg(in.opcode) ? in.src : -1;
  if (op == 0x10 && is_pointer(dst.kind) && is_pointer(src.kind)) {
    // pointer - pointer: a distance, defined within one object
    const bool same = dst.kind == src.kind && dst.aux == src.aux;
    const bool packet = (dst.kind == Kind::Packet || dst.kind == Kind::PacketEnd || dst.kind == Kind::PacketMeta) &&
                        (src.kind == Kind::Packet || src.kind == Kind::PacketEnd || src.kind == Kind::PacketMeta);
    if (!same && !packet) reject(pc, R(rd) + " pointer - pointer of different objects (" + kind_name(dst.kind) + ", " + kind_name(src.kind) + ") prohibited");
    write_reg(st, pc, rd, Value::scalar(Scalar::unknown()));
    return;
  }
  if (op == 0x00 && is_pointer(dst.kind) && is_pointer(src.kind)) reject(pc, R(rd) + " pointer += pointer prohibited");
  if (op != 0x00 && op != 0x10) {
    const int bad = is_pointer(dst.kind) ? rd : rs;
    reject(pc, R(bad) + " pointer arithmetic with " + std::string(isa::alu_operator(in.opcode, in.off)) + " operator prohibited");
  }
  if (op == 0x10 && !is_pointer(dst.kind)) reject(pc, R(rd) + " tried to subtract pointer from scalar");
  Value ptr = is_pointer(dst.kind) ? dst : src;
  const Value& k = is_pointer(dst.kind) ? src : dst;
  const int pr = is_pointer(dst.kind) ? rd : rs;
  switch (ptr.kind) {
    case Kind::Packet: case Kind::PacketMeta: case Kind::Stack: case Kind::MapValue: case Kind::Mem: case Kind::AllocMem: case Kind::Ctx:
      break;
    default: reject(pc, R(pr) + " pointer arithmetic on " + kind_name(ptr.kind) + " prohibited");
  }
  if (k.s.is_const()) {
    const int64_t c = static_cast<int64_t>(k.s.value());
    const int64_t off = op == 0x00 ? ptr.off + c : ptr.off - c;
    if (c > kMaxVarOff || c < -kMaxVarOff || off > kMaxVarOff || off < -kMaxVarOff)
      reject(pc, R(pr) + " pointer offset " + std::to_string(off) + " is not allowed");
    ptr.off = static_cast<int32_t>(off);
    write_reg(st, pc, rd, ptr);
    return;
  }
  if (ptr.kind == Kind::Ctx) reject(pc, R(pr) + " variable ctx access prohibited");
  if (k.s.smin == kS64Min || k.s.smin < -kMaxVarOff)
    reject(pc, "math between " + std::string(kind_name(ptr.kind)) + " pointer and register with unbounded min value is not allowed");
  if (k.s.umax > static_cast<uint64_t>(kMaxVarOff) && k.s.smin >= 0)
    reject(pc, R(in.dst) + " value is outside of the allowed memory range: math between " + kind_name(ptr.kind) +
                   " pointer and register with unbounded max value is not allowed");
  const bool packet = ptr.kind == Kind::Packet || ptr.kind == Kind::PacketMeta;
  if (packet && (op == 0x10 || k.s.smin < 0))
    reject(pc, R(pr) + " packet pointer moved by a value that may be negative; only non-negative offsets are allowed");
  if (packet && linked_packet_pointer(st, pc, is_pointer(dst.kind) ? rs : rd, ptr, k)) {
    write_reg(st, pc, rd, ptr);
    return;
  }
  ptr.s = alu64(op, ptr.s, k.s, false);
  if (packet) {
    if (ptr.s.umax > kMaxPacketOff) reject(pc, R(pr) + " offset is outside of the packet: variable part may reach " + std::to_string(ptr.s.umax));
    // A new variable part: nothing is proven about it yet.
    retire_id(st, pc + 1);
    ptr.id = pc + 1;
    ptr.range = 0;
  }
  write_reg(st, pc, rd, ptr);
}

// data + k, where k is a scalar linked to others (or becomes one: its register is linked now):
// the pointer's variable part is the link's base, k's distance from it moves into the fixed
// offset, and its id is the link's. So data + (n + 4) and data + n share an id, 4 bytes apart,
// and a check of one proves the bytes of the other (header offsets joined into a range, where
// the check and the read are computed from n separately). Only for a pointer with no variable
// part yet, a base that cannot be negative, and offsets in bounds; otherwise false.
bool Analyzer::linked_packet_pointer(State& st, uint32_t pc, int kr, Value& ptr, Value k) {
  if (ptr.id != 0 || !(ptr.s.is_const() && ptr.s.value() == 0) || kr < 0) return false;
  if (k.id == 0 || k.id == kUnlinked) {
    retire_id(st, pc + 1);
    k.id = pc + 1, k.off = 0;
    reg(st, kr).id = k.id, reg(st, kr).off = 0;
  }
  const Scalar base = k.off == 0 ? k.s : alu64(0x10, k.s, Scalar::constant(static_cast<uint64_t>(int64_t{k.off})), false);
  const int64_t off = int64_t{ptr.off} + k.off;
  if (base.smin < 0 || base.umax > kMaxPacketOff || off > kMaxVarOff || off < -kMaxVarOff) return false;
  ptr.s = base;
  ptr.off = static_cast<int32_t>(off);
  ptr.id = k.id;
  // What a pointer of the same id was proven to reach, this one may too: same base, same bytes.
  ptr.range = 0;
  for (const Frame& f : st.frames) {
    for (const Value& v : f.regs)
      if (v.kind == ptr.kind && v.id == ptr.id) ptr.range = std::max(ptr.range, v.range);
    for (const Slot& sl : f.stack)
      if (sl.spill_size == 8 && sl.spill.kind == ptr.kind && sl.spill.id == ptr.id) ptr.range = std::max(ptr.range, sl.spill.range);
  }
  return true;
}

// ---- branches -------------------------------------------------------------------------------------
// Packet range checks: `p OP end` where end is data_end (for packet pointers) or data (for
// metadata pointers). On a branch where p <= end, the bytes before p are in the packet.
bool Analyzer::refine_pointers(State& st, int rd, int rs, Value a, Value b, Cmp op, bool& feasible) {
  feasible = true;
  auto is_end_for = [](const Value& p, const Value& e) {
    if (p.kind == Kind::Packet) return e.kind == Kind::PacketEnd;
    if (p.kind == Kind::PacketMeta) return e.kind == Kind::Packet && e.id == 0 && e.off == 0;
    return false;
  };
  int pr = rd;
  if (is_end_for(b, a)) {
    std::swap(a, b);
    op = swap_sides(op);
    pr = rs;
  } else if (!is_end_for(a, b)) {
    return false;
  }
  int64_t proven = -1;
  switch (op) {
    case Cmp::Le: proven = a.off; break;
    case Cmp::Lt: proven = int64_t{a.off} + 1; break;
    default: return true;  // the other comparisons prove nothing on this branch
  }
  if (a.off < 0 || proven <= 0) return true;
  const Kind kind = a.kind;
  auto raise = [&](Value& v) {
    if (v.kind == kind && (v.id == a.id && a.id != kUnlinked)) v.range = std::max<uint32_t>(v.range, static_cast<uint32_t>(proven));
  };
  if (a.id == kUnlinked) {
    Value& v = reg(st, pr);
    v.range = std::max<uint32_t>(v.range, static_cast<uint32_t>(proven));
    return true;
  }
  for (Frame& f : st.frames) {
    for (Value& v : f.regs) raise(v);
    for (Slot& sl : f.stack)
      if (sl.spill_size == 8) raise(sl.spill);
  }
  return true;
}

// Two pointers into one region (the input memory, or one frame's stack) compare as their offsets
// do: addresses there neither wrap nor reach the sign bit, so each unsigned comparison is the
// signed one of the offsets, whose variable parts are refined as scalars are. False when the
// pointers are not such a pair; `feasible` false when the branch cannot be taken.
bool Analyzer::refine_same_region(State& st, int rd, int rs, const Value& a, const Value& b, Cmp op, bool& feasible) {
  feasible = true;
  if (a.kind != b.kind || a.aux != b.aux || a.id != b.id || (a.kind != Kind::Mem && a.kind != Kind::Stack)) return false;
  static constexpr std::pair<Cmp, Cmp> kSigned[] = {{Cmp::Gt, Cmp::Sgt}, {Cmp::Ge, Cmp::Sge}, {Cmp::Lt, Cmp::Slt}, {Cmp::Le, Cmp::Sle},
                                                    {Cmp::Eq, Cmp::Eq},   {Cmp::Ne, Cmp::Ne}};
  const auto it = std::find_if(std::begin(kSigned), std::end(kSigned), [&](const auto& m) { return m.first == op; });
  if (it == std::end(kSigned)) return true;  // signed comparisons and bit tests of addresses: nothing learnt
  Scalar xa = alu64(0x00, a.s, Scalar::constant(static_cast<uint64_t>(int64_t{a.off})), false);
  Scalar xb = alu64(0x00, b.s, Scalar::constant(static_cast<uint64_t>(int64_t{b.off})), false);
  refine(xa, xb, it->second, false);
  if (xa.empty() || xb.empty()) {
    feasible = false;
    return true;
  }
  reg(st, rd).s = alu64(0x10, xa, Scalar::constant(static_cast<uint64_t>(int64_t{a.off})), false);
  if (rs >= 0) reg(st, rs).s = alu64(0x10, xb, Scalar::constant(static_cast<uint64_t>(int64_t{b.off})), false);
  return true;
}

void Analyzer::branch(const Key& key, State st, uint32_t pc, const Insn& in) {
  current_ = &st;
  const bool is32 = isa::is_jmp32(in.opcode);
  const Cmp op = cmp_of(in.opcode);
  const uint32_t target = static_cast<uint32_t>(isa::jump_target(in, pc));
  const int rd = in.dst;
  const int rs = isa::uses_src_reg(in.opcode) ? in.src : -1;
  const Value a = read(st, pc, rd);
  const Value b = rs >= 0 ? read(st, pc, rs)
                          : Value::constant(is32 ? static_cast<uint32_t>(in.imm) : static_cast<uint64_t>(static_cast<int64_t>(in.imm)));
  State taken = st, fall = std::move(st);
  bool taken_ok = true, fall_ok = true;
  if (a.kind == Kind::Scalar && b.kind == Kind::Scalar) {
    Value at = a, bt = b, af = a, bf = b;
    refine(at.s, bt.s, op, is32);
    refine(af.s, bf.s, negate(op), is32);
    taken_ok = !at.s.empty() && !bt.s.empty();
    fall_ok = !af.s.empty() && !bf.s.empty();
    if (taken_ok) {
      reg(taken, rd).s = at.s, link_scalar_copies(taken, rd);
      if (rs >= 0) reg(taken, rs).s = bt.s, link_scalar_copies(taken, rs);
    }
    if (fall_ok) {
      reg(fall, rd).s = af.s, link_scalar_copies(fall, rd);
      if (rs >= 0) reg(fall, rs).s = bf.s, link_scalar_copies(fall, rs);
    }
  } else {
    if (is32) reject(pc, R(is_pointer(a.kind) ? rd : rs) + " 32-bit pointer comparison prohibited");
    const bool b_zero = b.kind == Kind::Scalar && b.s.is_const() && b.s.value() == 0;
    const bool a_zero = a.kind == Kind::Scalar && a.s.is_const() && a.s.value() == 0;
    if ((b_zero || a_zero) && (op == Cmp::Eq || op == Cmp::Ne)) {
      const int pr = b_zero ? rd : rs;
      const Value& p = b_zero ? a : b;
      State& null_branch = op == Cmp::Eq ? taken : fall;
      State& live_branch = op == Cmp::Eq ? fall : taken;
      if (is_or_null(p.kind)) {
        auto settle = [&](State& s, bool is_null) {
          auto fix = [&](Value& v) {
            if (v.kind != p.kind) return;
            const bool same = p.id == kUnlinked ? &v == &reg(s, pr) : v.id == p.id;
            if (!same) return;
            if (is_null) v = Value::constant(0);
            else v.kind = non_null(v.kind);
          };
          if (p.id == kUnlinked) {
            fix(reg(s, pr));
            return;
          }
          for (Frame& f : s.frames) {
            for (Value& v : f.regs) fix(v);
            for (Slot& sl : f.stack)
              if (sl.spill_size == 8) fix(sl.spill);
          }
        };
        settle(null_branch, true);
        settle(live_branch, false);
        // a reference that is null was never taken
        if (p.id != kUnlinked) null_branch.refs.erase(std::remove(null_branch.refs.begin(), null_branch.refs.end(), p.id), null_branch.refs.end());
      } else {
        // a pointer that cannot be null
        (op == Cmp::Eq ? taken_ok : fall_ok) = false;
      }
    } else if (is_pointer(a.kind) && is_pointer(b.kind)) {
      bool feasible = true;
      if (refine_same_region(taken, rd, rs, a, b, op, taken_ok)) {
        refine_same_region(fall, rd, rs, a, b, negate(op), fall_ok);
      } else {
        if (!refine_pointers(taken, rd, rs, a, b, op, feasible) && !(a.kind == b.kind && !is_or_null(a.kind)))
          reject(pc, R(rd) + " comparison of " + kind_name(a.kind) + " with " + kind_name(b.kind) + " prohibited");
        refine_pointers(fall, rd, rs, a, b, negate(op), feasible);
      }
    } else {
      const int bad = is_pointer(a.kind) ? rd : rs;
      const Value& p = is_pointer(a.kind) ? a : b;
      reject(pc, R(bad) + " pointer comparison prohibited: " + kind_name(p.kind) + " against a scalar");
    }
  }
  if (taken_ok) flow(key, pc, target, std::move(taken));
  if (fall_ok) flow(key, pc, pc + 1, std::move(fall));
}

// ---- lddw ---------------------------------------------------------------------------------------
void Analyzer::lddw(State& st, uint32_t pc, const Insn& in) {
  if (in.dst == 10) reject(pc, "frame pointer is read only");
  const uint32_t idx = static_cast<uint32_t>(in.imm);
  switch (in.op) {
    case isa::Op::LDDW: write_reg(st, pc, in.dst, Value::constant(isa::lddw_imm64(insns_, pc))); return;
    case isa::Op::LDDW_MAP_FD: case isa::Op::LDDW_MAP_IDX:
      if (idx >= in_.maps.size()) reject(pc, "fd " + std::to_string(idx) + " is not pointing to valid bpf_map");
      write_reg(st, pc, in.dst, Value::pointer(Kind::MapPtr, idx));
      return;
    case isa::Op::LDDW_MAP_VALUE: case isa::Op::LDDW_MAP_IDX_VALUE: {
      if (idx >= in_.maps.size()) reject(pc, "fd " + std::to_string(idx) + " is not pointing to valid bpf_map");
      const MapSpec& m = *in_.maps[idx].spec;
      const int32_t off = insns_[pc + 1].imm;
      if (m.type != MapType::Array || off < 0 || static_cast<uint32_t>(off) >= m.value_size)
        reject(pc, "invalid access to map value pointer, value_size=" + std::to_string(m.value_size) + " off=" + std::to_string(off));
      write_reg(st, pc, in.dst, Value::pointer(Kind::MapValue, idx, off));
      return;
    }
    case isa::Op::LDDW_CODE:
      write_reg(st, pc, in.dst, Value::pointer(Kind::Func, static_cast<uint32_t>(isa::jump_target(in, pc))));
      return;
    default: reject(pc, "lddw of a kernel variable (src " + std::to_string(in.src) + ") is not supported");
  }
}

// ---- memory -------------------------------------------------------------------------------------
void Analyzer::region_check(uint32_t pc, int r, const Value& ptr, int64_t off, uint64_t size, uint64_t limit, const char* what) {
  if (ptr.s.smin < -kMaxVarOff || ptr.s.smax > kMaxVarOff)
    reject(pc, R(r) + " unbounded memory access, make sure to bounds check any such access");
  const int64_t lo = ptr.off + off + ptr.s.smin;
  const int64_t hi = ptr.off + off + ptr.s.smax + static_cast<int64_t>(size);
  if (lo < 0) reject(pc, R(r) + " min value is outside of the allowed memory range: invalid access to " + what + ", off=" + std::to_string(lo) + " size=" + std::to_string(size));
  if (ptr.kind == Kind::MapValue) {
    const auto [lock_lo, lock_hi] = lock_words(ptr.aux);
    if (lock_lo >= 0 && lo < lock_hi && hi > lock_lo) reject(pc, "bpf_spin_lock cannot be accessed directly by load/store");
  }
  if (hi > static_cast<int64_t>(limit))
    reject(pc, std::string("invalid access to ") + what + ", " + (std::string(what) == "map value" ? "value_size=" : "mem_size=") +
                   std::to_string(limit) + " off=" + std::to_string(hi - static_cast<int64_t>(size)) + " size=" + std::to_string(size));
}

Value Analyzer::access(State& st, uint32_t pc, int r, const Value& ptr, int64_t off, uint32_t size, Mode mode,
                       const Value* stored, bool sign_ext) {
  const bool write = mode == Mode::Write;
  auto loaded = [&] { return Value::scalar(sign_ext ? sign_extend(Scalar::bits(size * 8), size) : Scalar::bits(size * 8)); };
  switch (ptr.kind) {
    case Kind::Uninit: reject(pc, R(r) + " !read_ok" + unreadable_reason(ptr));
    case Kind::Ctx: {
      if (ptr.off != 0 || !ptr.s.is_const() || ptr.s.value() != 0)
        reject(pc, "dereference of modified ctx ptr " + R(r) + " off=" + std::to_string(ptr.off) + " disallowed");
      const std::string bad = "invalid bpf_context access off=" + std::to_string(off) + " size=" + std::to_string(size);
      // As in the kernel: the context rewrite turns loads of fields into loads of other sizes,
      // which has no sign-extending form.
      if (sign_ext) reject(pc, bad + ": sign-extending loads of the context are not supported");
      const detail::CtxField* f = in_.type ? detail::ctx_field_for(in_.type->fields, off, size, write) : nullptr;
      if (!f) reject(pc, bad);
      if (in_.rewritten_loads && (write ? f->store_size && f->store_size < size : f->rewrite_off >= 0)) in_.rewritten_loads->push_back(pc);
      if (write) return Value{};
      switch (f->value) {
        case detail::CtxValue::Packet: return Value::pointer(Kind::Packet, 0);
        case detail::CtxValue::PacketEnd: return Value::pointer(Kind::PacketEnd, 0);
        case detail::CtxValue::PacketMeta: return Value::pointer(Kind::PacketMeta, 0);
        case detail::CtxValue::Scalar: break;
      }
      return Value::scalar(Scalar::bits(size * 8));
    }
    case Kind::Packet: case Kind::PacketMeta: {
      const int64_t start = ptr.off + off;
      if (start < 0 || start + size > ptr.range)
        reject(pc, "invalid access to packet, off=" + std::to_string(start) + " size=" + std::to_string(size) + ", " + R(r) +
                       " offset is outside of the packet");
      if (write) report_.writes_packet = true;
      return write ? Value{} : loaded();
    }
    case Kind::Stack: {
      // The slot's value (a spill, or bytes of any value) as the load reads it: sign-extended
      // for ldsx, whatever form the stack knew it in.
      Value v = stack_access(st, pc, r, ptr, off, size, mode, stored, false, size);
      if (sign_ext && v.kind == Kind::Scalar) v = Value::scalar(sign_extend(v.s, size));  // another value: unlinked
      return v;
    }
    case Kind::MapValue: {
      const MapRef& m = map(ptr.aux);
      region_check(pc, r, ptr, off, size, m.spec->value_size, "map value");
      if (write && (m.spec->map_flags & 0x80 /* BPF_F_RDONLY_PROG */ || m.frozen))
        reject(pc, "write into map forbidden, value_size=" + std::to_string(m.spec->value_size) + " off=" + std::to_string(ptr.off + off) +
                       " size=" + std::to_string(size));
      if (!write && m.frozen && ptr.s.is_const()) {
        const int64_t at = ptr.off + off + static_cast<int64_t>(ptr.s.value());
        uint64_t v = 0;
        std::memcpy(&v, m.frozen + at, size);  // little-endian host, like the programs
        if (sign_ext) return Value::scalar(sign_extend(Scalar::constant(v), size));
        return Value::constant(v);
      }
      return write ? Value{} : loaded();
    }
    case Kind::Mem: case Kind::AllocMem:
      region_check(pc, r, ptr, off, size, ptr.aux, "memory");
      return write ? Value{} : loaded();
    case Kind::Scalar: reject(pc, R(r) + " invalid mem access 'scalar'");
    default: reject(pc, R(r) + " invalid mem access '" + kind_name(ptr.kind) + "'");
  }
}

Value Analyzer::stack_access(State& st, uint32_t pc, int r, const Value& ptr, int64_t off, uint64_t size, Mode mode,
                             const Value* stored, bool helper, uint64_t init_size) {
  const bool write = mode == Mode::Write;
  if (ptr.s.smin < -static_cast<int64_t>(isa::kStackSize) || ptr.s.smax > static_cast<int64_t>(isa::kStackSize))
    reject(pc, R(r) + " unbounded variable-offset access to the stack");
  const int64_t lo = ptr.off + off + ptr.s.smin;
  const int64_t hi = ptr.off + off + ptr.s.smax + static_cast<int64_t>(size);
  const bool fixed = ptr.s.is_const();
  const std::string what = std::string(helper ? "invalid indirect " : "invalid ") + (write ? "write to" : "read from") + " stack " + R(r) +
                           " off=" + std::to_string(lo) + " size=" + std::to_string(size);
  if (lo < -static_cast<int64_t>(isa::kStackSize) || hi > 0 || size == 0) reject(pc, what);
  Frame& f = st.frames[ptr.aux];
  auto slot_of = [&](int64_t byte) -> Slot& { return f.stack[static_cast<size_t>((byte + isa::kStackSize) / 8)]; };
  auto bit_of = [](int64_t byte) { return static_cast<uint8_t>(1u << ((byte + isa::kStackSize) % 8)); };
  if (!write) {
    // a whole spilled register comes back as it was
    if (fixed && !helper) {
      Slot& s = slot_of(lo);
      const auto in_slot = static_cast<uint8_t>((lo + isa::kStackSize) % 8);
      if (s.spill_size && s.spill_off == in_slot && s.spill_size == size) return s.spill;
    }
    for (int64_t b = lo; b < hi; ++b) {
      Slot& s = slot_of(b);
      if (!(s.init & bit_of(b))) reject(pc, what + (helper ? "" : ": the stack there was never written"));
      if (s.spill_size && is_pointer(s.spill.kind) && !(helper && format_args_))
        reject(pc, helper ? what + ": it holds a spilled pointer" : "invalid size of register fill: " + what + " reads part of a spilled pointer");
    }
    return Value::scalar(Scalar::bits(static_cast<unsigned>(std::min<uint64_t>(size, 8) * 8)));
  }
  // writes: a variable offset may hit any byte of the range, so nothing new becomes initialised
  for (int64_t b = lo; b < hi; ++b) {
    Slot& s = slot_of(b);
    if (s.spill_size) {
      if (is_pointer(s.spill.kind)) s.init = 0;  // the pointer's remaining bytes are not data
      s.spill_size = 0, s.spill_off = 0, s.spill = {};
    }
  }
  if (!fixed) return {};
  for (int64_t b = lo; b < lo + static_cast<int64_t>(init_size); ++b) slot_of(b).init |= bit_of(b);
  if (stored && !helper) {
    const auto in_slot = static_cast<uint8_t>((lo + isa::kStackSize) % 8);
    const bool aligned = in_slot % size == 0;
    if (is_pointer(stored->kind) && (size != 8 || !aligned))
      reject(pc, R(r) + " invalid size of register spill: a pointer must be stored whole, 8-byte aligned");
    if (aligned && (size == 8 || stored->kind == Kind::Scalar)) {
      Slot& s = slot_of(lo);
      s.spill = size == 8 ? *stored : Value::scalar(truncate(stored->s, static_cast<unsigned>(size)));
      s.spill_off = in_slot;
      s.spill_size = static_cast<uint8_t>(size);
    }
  }
  return {};
}

void Analyzer::load(State& st, uint32_t pc, const Insn& in) {
  if (in.dst == 10) reject(pc, "frame pointer is read only");
  const Value ptr = read(st, pc, in.src);
  // A context load is rewritten (in_.rewritten_loads), so it must read the context on every path:
  // one instruction may not load through the context on one and through other memory on another.
  uint8_t& bases = load_bases_[pc];
  bases |= ptr.kind == Kind::Ctx ? 1 : 2;
  if (bases == 3) reject(pc, "same insn cannot be used with different pointers: the context on one path, other memory on another");
  const unsigned size = isa::mem_size(in.opcode);
  Value v = access(st, pc, in.src, ptr, in.off, size, Mode::Read, nullptr, isa::is_sign_extending_load(in.opcode));
  if (v.kind == Kind::Scalar && size < 8 && !isa::is_sign_extending_load(in.opcode)) v = Value::scalar(truncate(v.s, size));
  write_reg(st, pc, in.dst, v);
}

void Analyzer::store(State& st, uint32_t pc, const Insn& in) {
  const Value ptr = read(st, pc, in.dst);
  const unsigned size = isa::mem_size(in.opcode);
  Value v = isa::info(in.op).kind == IKind::Stx ? read(st, pc, in.src)
                                                 : Value::constant(static_cast<uint64_t>(static_cast<int64_t>(in.imm)));
  if (v.kind != Kind::Scalar && ptr.kind != Kind::Stack) {
    const char* where = ptr.kind == Kind::MapValue ? "map" : ptr.kind == Kind::Packet || ptr.kind == Kind::PacketMeta ? "packet" : "memory";
    reject(pc, R(in.src) + " leaks addr into " + where);
  }
  access(st, pc, in.dst, ptr, in.off, size, Mode::Write, &v, false);
}

void Analyzer::atomic(State& st, uint32_t pc, const Insn& in) {
  const Value ptr = read(st, pc, in.dst);
  const unsigned size = isa::mem_size(in.opcode);
  const Value src = read(st, pc, in.src);
  if (src.kind != Kind::Scalar) reject(pc, R(in.src) + " leaks addr into mem");
  if (ptr.kind != Kind::Stack && ptr.kind != Kind::MapValue && ptr.kind != Kind::Mem && ptr.kind != Kind::AllocMem)
    reject(pc, "BPF_ATOMIC stores into " + R(in.dst) + " " + kind_name(ptr.kind) + " is not allowed");
  const int64_t at = ptr.off + in.off;
  if (at % size != 0 || ((ptr.s.t.value | ptr.s.t.mask) & (size - 1)) != 0)
    reject(pc, "misaligned atomic access off=" + std::to_string(at) + " size=" + std::to_string(size));
  const bool cmpxchg = in.imm == isa::kAtomicCmpxchg;
  if (cmpxchg && read(st, pc, 0).kind != Kind::Scalar) reject(pc, "R0 leaks addr into mem");
  // read as a helper would: a spilled pointer there must not become arithmetic
  if (ptr.kind == Kind::Stack) stack_access(st, pc, in.dst, ptr, in.off, size, Mode::Read, nullptr, true, size);
  else access(st, pc, in.dst, ptr, in.off, size, Mode::Read, nullptr, false);
  const Value unknown = Value::scalar(Scalar::bits(size * 8));
  access(st, pc, in.dst, ptr, in.off, size, Mode::Write, &unknown, false);
  if (cmpxchg) reg(st, 0) = unknown;
  else if (in.imm & isa::kAtomicFetch) write_reg(st, pc, in.src, unknown);
}

void Analyzer::mem_arg(State& st, uint32_t pc, int r, uint64_t min, uint64_t max, Mode mode) {
  const Value ptr = read(st, pc, r);
  if (ptr.kind == Kind::Stack) {
    stack_access(st, pc, r, ptr, 0, max, mode, nullptr, true, min);
    return;
  }
  if (max > (1u << 29)) reject(pc, R(r + 1) + " unbounded memory access, use 'var &= const' or 'if (var < const)'");
  switch (ptr.kind) {
    case Kind::Packet: case Kind::PacketMeta: {
      const int64_t start = ptr.off;
      if (start < 0 || start + static_cast<int64_t>(max) > ptr.range)
        reject(pc, "invalid access to packet, off=" + std::to_string(start) + " size=" + std::to_string(max) + ", " + R(r) +
                       " offset is outside of the packet");
      if (mode == Mode::Write) report_.writes_packet = true;
      return;
    }
    case Kind::MapValue: case Kind::Mem: case Kind::AllocMem:
      access(st, pc, r, ptr, 0, 1, mode, nullptr, false);  // kind and write checks
      region_check(pc, r, ptr, 0, max, ptr.kind == Kind::MapValue ? map(ptr.aux).spec->value_size : ptr.aux,
                   ptr.kind == Kind::MapValue ? "map value" : "memory");
      return;
    default:
      reject(pc, R(r) + " type=" + kind_name(ptr.kind) + " expected=fp, pkt, map_value, mem");
  }
}

void Analyzer::invalidate_packet(State& st) {
  for (Frame& f : st.frames) {
    for (Value& v : f.regs)
      if (v.kind == Kind::Packet || v.kind == Kind::PacketMeta || v.kind == Kind::PacketEnd) v = {};
    for (Slot& s : f.stack)
      if (s.spill_size && (s.spill.kind == Kind::Packet || s.spill.kind == Kind::PacketMeta || s.spill.kind == Kind::PacketEnd))
        s = {};
  }
}

// ---- calls --------------------------------------------------------------------------------------
// The callback's arguments, from the caller's registers at the helper call (still in its frame):
// bpf_loop(nr, fn, ctx, flags) calls fn(index, ctx); bpf_for_each_map_elem(map, fn, ctx, flags)
// calls fn(map, key copy, value, ctx).
Frame Analyzer::callback_frame(uint32_t helper_id, State& caller) {
  Frame cb;
  cb.regs[10] = Value::pointer(Kind::Stack, static_cast<uint32_t>(caller.frames.size()));
  if (helper_id == kHelperLoop) {
    cb.regs[1] = Value::scalar(Scalar::urange(0, (1u << 23) - 1));
    cb.regs[2] = reg(caller, 3);
  } else {
    const Value m = reg(caller, 1);
    cb.regs[1] = m;
    cb.regs[2] = Value::pointer(Kind::Mem, map(m.aux).spec->key_size);
    cb.regs[2].id = kKeyMem + static_cast<uint32_t>(caller.frames.size());  // not the input, nor an outer callback's key
    cb.regs[3] = Value::pointer(Kind::MapValue, m.aux);
    cb.regs[4] = reg(caller, 3);
  }
  cb.entry_refs = caller.refs;
  return cb;
}

// Checks r1..r5 against the helper's prototype; returns the map and callback arguments.
Analyzer::CallArgs Analyzer::check_args(State& st, uint32_t pc, const Helper* h) {
  const std::string name = h->name + "#" + std::to_string(h->id);
  std::optional<uint32_t> map_aux;
  std::optional<Value> func;
  const auto& args = h->proto.args;
  for (int i = 0; i < 5 && args[i] != ArgKind::None; ++i) {
    const int r = i + 1;
    const ArgKind a = args[i];
    if (a == ArgKind::ConstSize || a == ArgKind::ConstSizeOrZero) continue;  // with the pointer before it
    const Value& v = read(st, pc, r);
    auto expect = [&](const char* what) {
      reject(pc, R(r) + " type=" + kind_name(v.kind) + " expected=" + what + " (argument " + std::to_string(r) + " of " + name + ")");
    };
    auto need_map = [&]() -> const MapSpec& {
      if (!map_aux) reject(pc, R(r) + ": " + name + " needs a map argument before it");
      return *map(*map_aux).spec;
    };
    switch (a) {
      case ArgKind::Anything: break;
      case ArgKind::ConstMapPtr:
        if (v.kind != Kind::MapPtr) expect("map_ptr");
        map_aux = v.aux;
        // As the kernel's check_map_func_compatibility: bpf_tail_call takes a prog array, and a
        // cgroup array goes to bpf_skb_under_cgroup (33) and nowhere else; no helper ebpfvm has
        // takes a stack trace map (bpf_get_stackid).
        if ((h->id == 12 && map(v.aux).spec->type != MapType::ProgArray) || map(v.aux).spec->type == MapType::StackTrace ||
            (map(v.aux).spec->type == MapType::CgroupArray) != (h->id == 33))
          reject(pc, "cannot pass map_type " + std::to_string(static_cast<int>(map(v.aux).spec->type)) + " into func " + name);
        if (h->id == 12 && in_.tail_call_maps) in_.tail_call_maps->push_back(v.aux);
        break;
      case ArgKind::PtrToMapKey: mem_arg(st, pc, r, need_map().key_size, need_map().key_size, Mode::Read); break;
      case ArgKind::PtrToMapValue: mem_arg(st, pc, r, need_map().value_size, need_map().value_size, Mode::Read); break;
      case ArgKind::PtrToUninitMapValue: mem_arg(st, pc, r, need_map().value_size, need_map().value_size, Mode::Write); break;
      case ArgKind::PtrToInt: mem_arg(st, pc, r, 4, 4, Mode::Write); break;
      case ArgKind::PtrToLong: mem_arg(st, pc, r, 8, 8, Mode::Write); break;
      case ArgKind::PtrToMem: case ArgKind::PtrToUninitMem: case ArgKind::PtrToMemOrNull: case ArgKind::PtrToFormatArgsOrNull: {
        const ArgKind next = i + 1 < 5 ? args[i + 1] : ArgKind::None;
        const bool zero_ok = next == ArgKind::ConstSizeOrZero;
        const Value& sz = read(st, pc, r + 1);
        if (sz.kind != Kind::Scalar) reject(pc, R(r + 1) + " type=" + kind_name(sz.kind) + " expected=scalar (a size)");
        if (sz.s.smin < 0)
          reject(pc, R(r + 1) + " min value is negative, either use unsigned or 'var &= const'");
        if (sz.s.umin == 0 && !zero_ok) reject(pc, "invalid zero-sized read: " + R(r + 1) + " may be 0 (" + name + ")");
        if (sz.s.umax > (1u << 29)) reject(pc, R(r + 1) + " unbounded memory access, use 'var &= const' or 'if (var < const)'");
        // NULL only with a size of exactly 0 (the kernel's check_helper_mem_access).
        const bool or_null = a == ArgKind::PtrToMemOrNull || a == ArgKind::PtrToFormatArgsOrNull;
        if (or_null && v.kind == Kind::Scalar && v.s.is_const() && v.s.value() == 0) {
          if (sz.s.umax != 0) reject(pc, R(r) + " is NULL but " + R(r + 1) + " may be non-zero (" + name + ")");
          break;
        }
        if (sz.s.umax == 0) break;
        format_args_ = a == ArgKind::PtrToFormatArgsOrNull;
        mem_arg(st, pc, r, sz.s.umin, sz.s.umax, a == ArgKind::PtrToUninitMem ? Mode::Write : Mode::Read);
        format_args_ = false;
        break;
      }
      case ArgKind::PtrToCtx:
        if (v.kind != Kind::Ctx || v.off != 0) expect("ctx");
        break;
      case ArgKind::PtrToFunc:
        if (v.kind != Kind::Func) expect("func");
        func = v;
        break;
      case ArgKind::PtrToSpinLock:
        if (v.kind != Kind::MapValue) expect("map_value");
        break;  // lock_id() checks that it is the value's lock
      case ArgKind::PtrToAllocMem:
        if (v.kind != Kind::AllocMem || v.off != 0 || !v.s.is_const() || v.s.value() != 0) expect("alloc_mem at offset 0");
        break;
      default: break;
    }
  }
  return {map_aux, func};
}

// The `size`-byte key a stack pointer points at, where the analysis knows it: bytes of one
// constant stored or spilled there.
std::optional<uint64_t> Analyzer::known_key(const State& st, const Value& p, uint32_t size) {
  if (p.kind != Kind::Stack || !p.s.is_const() || size == 0 || size > 8 || p.aux >= st.frames.size()) return std::nullopt;
  const int64_t lo = p.off + static_cast<int64_t>(p.s.value()), stack = isa::kStackSize;
  if (lo < -stack || lo + static_cast<int64_t>(size) > 0) return std::nullopt;
  const Slot& s = st.frames[p.aux].stack[static_cast<size_t>((lo + stack) / 8)];
  const auto in_slot = static_cast<uint32_t>((lo + stack) % 8);
  if (!s.spill_size || s.spill.kind != Kind::Scalar || !s.spill.s.is_const() || in_slot < s.spill_off ||
      in_slot + size > uint32_t{s.spill_off} + s.spill_size)
    return std::nullopt;
  const uint64_t v = s.spill.s.value() >> (8 * (in_slot - s.spill_off));
  return size == 8 ? v : v & ((uint64_t{1} << (8 * size)) - 1);
}

// r0 after the call, as the prototype types it.
Value Analyzer::helper_result(State& st, uint32_t pc, const Helper* h, const CallArgs& args) {
  const std::string name = h->name + "#" + std::to_string(h->id);
  const std::optional<uint32_t>& map_aux = args.map;
  Value ret = Value::scalar(Scalar::unknown());
  switch (h->proto.ret) {
    case RetKind::Integer: break;
    case RetKind::Void: ret = {}; break;
    case RetKind::MapValueOrNull: {
      if (!map_aux) reject(pc, name + " returns a map value but has no map argument");
      const MapSpec& m = *map(*map_aux).spec;
      retire_id(st, pc + 1);
      if (m.type == MapType::ArrayOfMaps || m.type == MapType::HashOfMaps) {
        if (!m.inner) reject(pc, "map '" + m.name + "' has no inner map shape");
        ret = Value::pointer(Kind::MapPtrOrNull, inner_ref(m));
      } else {
        // An array's lookup with a key the analysis knows, below max_entries, cannot fail (as
        // the kernel has it since 6.14): no null check needed. Not for an inner map, which may be
        // replaced at run time by one with other max_entries.
        const bool direct = *map_aux < in_.maps.size();
        const auto key = h->id == kHelperMapLookup && direct && (m.type == MapType::Array || m.type == MapType::PercpuArray)
                             ? known_key(st, reg(st, 2), m.key_size)
                             : std::nullopt;
        ret = Value::pointer(key && *key < m.max_entries ? Kind::MapValue : Kind::MapValueOrNull, *map_aux);
      }
      ret.id = pc + 1;
      break;
    }
    case RetKind::AllocMemOrNull: {
      const Value& sz = read(st, pc, 2);
      if (sz.kind != Kind::Scalar || !sz.s.is_const() || sz.s.value() == 0 || sz.s.value() > (1u << 29))
        reject(pc, "R2 is not a known constant: " + name + " needs a constant size");
      retire_id(st, pc + 1);
      ret = Value::pointer(Kind::AllocMemOrNull, static_cast<uint32_t>(sz.s.value()));
      ret.id = pc + 1;
      break;
    }
  }
  return ret;
}

// `callx rX` calls the helper whose id rX holds. Verified when the analysis knows the id: the
// call is then checked as `call id` is (issue 17, K). Helpers the engines treat apart from a
// plain call (tail calls, helpers that call back into the program) must be called directly.
// The helpers `callx rX` may call: rX's values, a constant or a few (at most kCallxTargets), each
// a helper some engine can bind and call as it calls any other.
std::vector<Insn> Analyzer::callx_targets(State& st, uint32_t pc, const Insn& in) {
  constexpr uint64_t kCallxTargets = 16;
  const Value& t = read(st, pc, in.dst);
  if (t.kind != Kind::Scalar || t.s.umax - t.s.umin >= kCallxTargets)
    reject(pc, "callx " + R(in.dst) + ": the helper id is not known here (" + t.str(map_names_) +
                   "); indirect calls are verified when the analysis knows which helper, or which few, they call");
  std::vector<Insn> out;
  for (uint64_t id = t.s.umin;; ++id) {
    if (t.s.contains(id)) {
      const Helper* h = id <= UINT32_MAX ? in_.helpers->find(static_cast<uint32_t>(id)) : nullptr;
      if (!h) throw Reject{pc, "callx to unknown helper id " + std::to_string(id), state_text(st), Errc::UnknownHelper};
      const bool callback = std::find(h->proto.args.begin(), h->proto.args.end(), ArgKind::PtrToFunc) != h->proto.args.end();
      if (id == 12 || callback) reject(pc, "callx to " + h->name + ": a tail call or a helper that calls back must be called directly");
      Insn direct;
      direct.op = isa::Op::CALL;
      direct.opcode = 0x85;
      direct.imm = static_cast<int32_t>(id);
      out.push_back(direct);
    }
    if (id == t.s.umax) break;
  }
  return out;
}

// An indirect call is checked as a direct call to each helper it may reach, on that path (rX is
// that id there); the paths meet after the call. Helpers that take or give back references or
// locks change what the program holds differently on each path: only one such may be the target.
void Analyzer::callx(const Key& key, State& st, uint32_t pc, const Insn& in) {
  const std::vector<Insn> targets = callx_targets(st, pc, in);
  for (const Insn& direct : targets)
    if (const Helper* h = in_.helpers->find(static_cast<uint32_t>(direct.imm)); targets.size() > 1 && h->proto.resource != Resource::None)
      reject(pc, "callx " + R(in.dst) + " may call " + h->name + ", which takes or gives back a reference or a lock: call it directly");
  std::optional<State> out;
  for (const Insn& direct : targets) {
    State one = st;
    if (targets.size() > 1) reg(one, in.dst).s = Scalar::constant(static_cast<uint32_t>(direct.imm));
    current_ = &one;
    bool ends = false;
    helper(key, one, pc, direct, ends);  // no callback helper is a target: the block goes on
    out = out ? join(*out, one) : std::move(one);
  }
  st = std::move(*out);
  current_ = &st;
}

void Analyzer::helper(const Key& key, State& st, uint32_t pc, const Insn& in, bool& ends_block) {
  const Helper* h = in_.helpers->find(static_cast<uint32_t>(in.imm));
  if (!h) throw Reject{pc, "invalid func unknown#" + std::to_string(in.imm), state_text(st), Errc::UnknownHelper};
  const std::string name = h->name + "#" + std::to_string(h->id);
  if (in_.type && !detail::helper_allowed(*in_.type, h->id))
    throw Reject{pc, "program of this type cannot use helper " + name, state_text(st), Errc::UnknownHelper};
  const CallArgs args = check_args(st, pc, h);
  if (h->proto.writes_packet || h->proto.changes_packet_data) report_.writes_packet = true;
  resources(st, pc, h);
  const std::optional<Value>& func = args.func;
  const Value ret = helper_result(st, pc, h, args);
  if (h->proto.resource == Resource::AcquiresRef) st.refs.insert(std::lower_bound(st.refs.begin(), st.refs.end(), pc + 1), pc + 1);
  if (func) {
    // The callback runs zero or more times: the path that skips it, then the callback itself.
    if (h->id != kHelperLoop && h->id != kHelperForEach) reject(pc, name + " takes a callback this verifier does not know how to call");
    // bpf_loop runs it at most r1 times (more than 2^23 fails without a call); for_each once per element
    const uint64_t times = h->id == kHelperLoop ? std::min<uint64_t>(read(st, pc, 1).s.umax, kMaxLoops)
                                                : map(*args.map).spec->max_entries;
    callback_calls_[key] = {pc, times};
    State skip = st;
    for (int r = 1; r <= 5; ++r) reg(skip, r) = {};
    reg(skip, 0) = ret;
    log_insn(skip, pc);
    flow(key, pc, pc + 1, std::move(skip));
    if (st.frames.size() >= isa::kMaxCallFrames) reject(pc, "the call stack of " + std::to_string(st.frames.size() + 1) + " frames is too deep");
    Frame cb = callback_frame(h->id, st);
    st.frames.push_back(std::move(cb));
    const Key site = unpartitioned(key);  // call sites are not partitioned
    const size_t lvl = last_level(site);
    Key nk(site.begin(), site.begin() + static_cast<std::ptrdiff_t>(lvl));
    nk.push_back(pc | kCallbackBit);
    nk.push_back(0);
    nk.insert(nk.end(), site.begin() + static_cast<std::ptrdiff_t>(lvl) + 1, site.end());
    nk.push_back(func->aux);
    nk.resize(nk.size() + cfg_.loops_of[func->aux].size(), 0);
    merge(nk, std::move(st));
    ends_block = true;
    return;
  }
  for (int r = 1; r <= 5; ++r) reg(st, r) = {};
  reg(st, 0) = ret;
  if (h->proto.changes_packet_data) invalidate_packet(st);
}

// What a call does to the references and the lock the program holds (the prototype says).
void Analyzer::resources(State& st, uint32_t pc, const Helper* h) {
  const std::string name = h->name + "#" + std::to_string(h->id);
  const Resource res = h->proto.resource;
  if (st.lock && res != Resource::GivesLock && res != Resource::TakesLock)
    reject(pc, "function calls are not allowed while holding a lock (" + name + " with " + lock_text(st.lock) + " held)");
  if (h->id == 12 && !st.refs.empty())
    reject(pc, "tail_call would lead to reference leak: " + refs_text(st.refs) + " still held");
  switch (res) {
    case Resource::None: break;
    case Resource::AcquiresRef:
      if (holds_ref(st, pc + 1))
        reject(pc, name + " acquires again while the reference it acquired before is held (alloc_insn=" + std::to_string(pc) + ")");
      break;
    case Resource::ReleasesRef: {
      const Value& v = read(st, pc, 1);
      if (!holds_ref(st, v.id)) reject(pc, "R1 must be a referenced pointer when passed to release function " + name);
      release_ref(st, v.id);
      break;
    }
    case Resource::TakesLock: {
      const uint64_t id = lock_id(st, pc);
      if (st.lock) reject(pc, "Locking two bpf_spin_locks are not allowed (" + lock_text(st.lock) + " is held)");
      st.lock = id;
      break;
    }
    case Resource::GivesLock: {
      const uint64_t id = lock_id(st, pc);
      if (!st.lock) reject(pc, "bpf_spin_unlock without taking a lock");
      if (st.lock != id) reject(pc, "bpf_spin_unlock of different lock: " + lock_text(id) + " while " + lock_text(st.lock) + " is held");
      st.lock = 0;
      break;
    }
  }
}

// A lock by the map and the offset in its value of the word R1 points at (the value's variable
// part must be known: one lock, not one of several).
uint64_t Analyzer::lock_id(State& st, uint32_t pc) {
  const Value& v = read(st, pc, 1);
  if (v.kind != Kind::MapValue || !v.s.is_const()) reject(pc, "R1 doesn't have constant offset. bpf_spin_lock has to be at the constant offset");
  const int64_t off = v.off + static_cast<int64_t>(v.s.value());
  const MapRef& m = map(v.aux);
  // The lock is the one BTF names in the value: no other word of the value (or of read-only
  // data) can be used as a lock, and that one is never read or written as data.
  if (m.spec->spin_lock_off < 0) reject(pc, "map '" + m.spec->name + "' has to have BTF in order to use bpf_spin_lock");
  if (off != m.spec->spin_lock_off)
    reject(pc, "off " + std::to_string(off) + " doesn't point to 'struct bpf_spin_lock' that is at " + std::to_string(m.spec->spin_lock_off));
  return (static_cast<uint64_t>(v.aux) + 1) << 32 | static_cast<uint32_t>(off);
}

std::string Analyzer::lock_text(uint64_t lock) const {
  if (!lock) return "no lock";
  const uint32_t aux = static_cast<uint32_t>((lock >> 32) - 1);
  return "the lock at offset " + std::to_string(static_cast<uint32_t>(lock)) + " of map " + map_names_[aux];
}

std::string Analyzer::refs_text(const std::vector<uint32_t>& refs) const {
  if (refs.empty()) return "none";
  std::string out;
  for (uint32_t id : refs) out += (out.empty() ? "" : ", ") + std::string("id=") + std::to_string(id) + " alloc_insn=" + std::to_string(id - 1);
  return out;
}

void Analyzer::call_local(const Key& key_in, State st, uint32_t pc, const Insn& in) {
  current_ = &st;
  const Key key = unpartitioned(key_in);  // call sites are not partitioned
  if (st.lock) reject(pc, "function calls are not allowed while holding a lock (" + lock_text(st.lock) + " held)");
  if (st.frames.size() >= isa::kMaxCallFrames)
    reject(pc, "the call stack of " + std::to_string(st.frames.size() + 1) + " frames is too deep");
  const auto target = static_cast<uint32_t>(isa::jump_target(in, pc));
  Frame f;
  for (int r = 1; r <= 5; ++r) f.regs[r] = reg(st, r);
  f.regs[10] = Value::pointer(Kind::Stack, static_cast<uint32_t>(st.frames.size()));
  st.frames.push_back(std::move(f));
  const size_t lvl = last_level(key);
  Key nk = key;
  nk[lvl] = pc;  // the caller's level remembers the call site
  nk.push_back(target);
  nk.resize(nk.size() + cfg_.loops_of[target].size(), 0);
  merge(nk, std::move(st));
}

void Analyzer::exit(const Key& key, State st, uint32_t pc) {
  current_ = &st;
  const auto levels = KeyLess{&cfg_}.levels(key);
  // A function called with `call` may return nothing (a void function): r0 goes back to the
  // caller as it is, unreadable if unset, as the kernel does. The program and callbacks return
  // a value.
  const bool function = st.frames.size() > 1 && !levels[levels.size() - 2].callback;
  const Value r0 = function ? reg(st, 0) : read(st, pc, 0);
  if (st.lock) reject(pc, "bpf_spin_unlock is missing: " + lock_text(st.lock) + " is held at exit");
  if (st.frames.size() == 1) {
    if (r0.kind != Kind::Scalar) reject(pc, "R0 leaks addr as return value: At program exit R0 is " + r0.str(map_names_));
    if (!st.refs.empty()) reject(pc, "Unreleased reference " + refs_text(st.refs));
    return;
  }
  const auto depth = static_cast<uint32_t>(st.frames.size() - 1);
  if (r0.kind == Kind::Stack && r0.aux == depth) reject(pc, "cannot return a pointer to the function's own stack");
  const std::vector<uint32_t> entry_refs = std::move(st.top().entry_refs);
  st.frames.pop_back();
  for (Frame& f : st.frames) {
    for (Value& v : f.regs)
      if (v.kind == Kind::Stack && v.aux >= depth) v = {};
    for (Slot& s : f.stack)
      if (s.spill_size && s.spill.kind == Kind::Stack && s.spill.aux >= depth) s.init = 0, s.spill_size = 0, s.spill = {};
  }
  const Level& caller = levels[levels.size() - 2];
  const uint32_t site = caller.pc;
  Key ret(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(caller.begin));
  ret.push_back(site + 1);
  ret.insert(ret.end(), key.begin() + static_cast<std::ptrdiff_t>(caller.counts),
             key.begin() + static_cast<std::ptrdiff_t>(caller.counts + caller.n));
  if (!caller.callback) {
    for (int r = 1; r <= 5; ++r) reg(st, r) = {};
    reg(st, 0) = r0;
    merge(ret, std::move(st));
    return;
  }
  // a callback: it must say continue (0) or stop (1); then the helper returns, or calls it again
  if (st.refs != entry_refs)
    reject(pc, "a callback must return holding the references it was called with (it may run any number of times): called holding " +
                   refs_text(entry_refs) + ", returns holding " + refs_text(st.refs));
  if (r0.kind != Kind::Scalar || r0.s.umax > 1)
    reject(pc, "At callback return the register R0 has value " + r0.str(map_names_) + " and should have been in [0, 1]");
  State again = st;
  for (int r = 1; r <= 5; ++r) reg(st, r) = {};
  reg(st, 0) = Value::scalar(Scalar::unknown());
  merge(ret, std::move(st));
  const Insn& call = insns_[site];
  const Helper* h = in_.helpers->find(static_cast<uint32_t>(call.imm));
  const Value fn = reg(again, 2);
  Frame cb = callback_frame(h->id, again);
  again.frames.push_back(std::move(cb));
  Key nk(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(caller.begin + 2));
  const uint32_t iter = std::min(caller.iter + 1, kCallbackUnroll);
  nk[caller.begin + 1] = iter;
  nk.insert(nk.end(), key.begin() + static_cast<std::ptrdiff_t>(caller.counts),
            key.begin() + static_cast<std::ptrdiff_t>(caller.counts + caller.n));
  nk.push_back(fn.aux);
  nk.resize(nk.size() + cfg_.loops_of[fn.aux].size(), 0);
  merge(nk, std::move(again), iter == kCallbackUnroll);
}

// ---- the work bound ------------------------------------------------------------------------------
// One invocation of the main program or of a callback runs through its unrolled states at most
// once each (loops are unrolled into distinct states, and a callback's later invocations are
// other invocations), so its instructions are bounded by its states' block sizes added up, plus,
// for each callback call in those states, the callback's bound times how often it may run. The
// invocation a state belongs to is its key up to its innermost callback level.

namespace {

uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
uint64_t sat_mul(uint64_t a, uint64_t b) { return a && b > UINT64_MAX / a ? UINT64_MAX : a * b; }

}  // namespace

Key Analyzer::invocation(const Key& k) const {
  size_t end = 0;
  for (size_t i = 0; i < k.size();) {
    const Level l = KeyLess{&cfg_}.level_at(k, i);
    if (l.callback) end = i;
  }
  return Key(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(end));
}

Analyzer::Bound Analyzer::bound(const Key& prefix, Invocations& inv) const {
  if (auto it = inv.memo.find(prefix); it != inv.memo.end()) return it->second;
  Bound b;
  b.insns = inv.insns[prefix];
  uint64_t worst = 0;
  for (const auto& [caller, c, times] : inv.calls[prefix]) {
    // the callee's invocation, for each iteration the analysis kept apart: the worst of them
    const Level last = KeyLess{&cfg_}.levels(*caller).back();
    Bound callee;
    for (uint32_t iter = 0; iter <= kCallbackUnroll; ++iter) {
      Key p(caller->begin(), caller->begin() + static_cast<std::ptrdiff_t>(last.begin));
      p.push_back(c->pc | kCallbackBit);
      p.push_back(iter);
      p.insert(p.end(), caller->begin() + static_cast<std::ptrdiff_t>(last.counts),
               caller->begin() + static_cast<std::ptrdiff_t>(last.counts + last.n));
      const Bound one = bound(p, inv);
      callee.insns = std::max(callee.insns, one.insns);
      if (one.callbacks >= callee.callbacks) callee.callbacks = one.callbacks, callee.nesting = one.nesting;
    }
    b.insns = sat_add(b.insns, sat_mul(times, callee.insns));
    const uint64_t calls = sat_mul(times, sat_add(1, callee.callbacks));
    b.callbacks = sat_add(b.callbacks, calls);
    if (calls > worst) {
      worst = calls;
      const Helper* h = in_.helpers->find(static_cast<uint32_t>(insns_[c->pc].imm));
      b.site = c->pc;
      b.nesting = h->name + " at insn " + std::to_string(c->pc) + " (" + std::to_string(times) + " times)" +
                  (callee.nesting.empty() ? "" : ", calling " + callee.nesting);
    }
  }
  inv.memo.emplace(prefix, b);
  return b;
}

void Analyzer::bound_work() {
  current_ = nullptr;  // the analysis is over: no state to show (the last one is gone)
  bound_loops();
  Invocations inv;
  for (const auto& [key, n] : block_insns_) {
    const Key prefix = invocation(key);
    uint64_t& total = inv.insns[prefix];
    total = sat_add(total, sat_mul(n, multiplicity(key, prefix.size(), false)));
  }
  for (const auto& [caller, c] : callback_calls_) {
    const Key prefix = invocation(caller);
    inv.calls[prefix].push_back({&caller, &c, sat_mul(c.times, multiplicity(caller, prefix.size(), false))});
  }
  const Bound b = bound(Key{}, inv);
  report_.max_insns = b.insns;
  report_.max_callback_iterations = b.callbacks;
  if (b.callbacks > in_.options.max_callback_iterations)
    reject(b.site, "one run may invoke callbacks " + std::to_string(b.callbacks) + " times, more than the limit of " +
                       std::to_string(in_.options.max_callback_iterations) + ": " + b.nesting);
}

}  // namespace

// How often one entry into summarised iteration `header` (an instance key) of `loop` may visit it.
// Some scalar the header holds must come back along every back edge moved by a constant d of one
// sign (it carries the id of its own class, d further: see canonical_ids()), in one of the two
// orders (unsigned, signed) without wrapping around. As the header's state holds it on every
// visit, it can move at most (max - min) / |d| times. 0: no such scalar.
uint64_t Analyzer::loop_visits(const Key& header, uint32_t loop) const {
  auto be = back_edges_.find(header);
  if (be == back_edges_.end()) return 1;  // never went round again
  const State& h = states_.at(header);
  const size_t depth = h.frames.size() - 1;
  const uint32_t base = kHeaderIds + loop * kHeaderIdsPerLoop;
  auto at = [](const Frame& f, int p) -> const Value* {
    if (p < 10) return &f.regs[p];
    const Slot& sl = f.stack[p - 10];
    return sl.spill_size == 8 ? &sl.spill : nullptr;
  };
  std::set<uint32_t> packet;  // classes a packet pointer shares: their offsets are not normalised
  for (const Frame& f : h.frames) {
    for (const Value& v : f.regs)
      if (v.kind == Kind::Packet || v.kind == Kind::PacketMeta) packet.insert(v.id);
    for (const Slot& sl : f.stack)
      if (sl.spill_size && (sl.spill.kind == Kind::Packet || sl.spill.kind == Kind::PacketMeta)) packet.insert(sl.spill.id);
  }
  uint64_t best = 0;
  for (int p = 0; p < 10 + kSlots; ++p) {
    const Value* hv = at(h.frames[depth], p);
    if (!hv || hv->kind != Kind::Scalar || hv->id < base || hv->id >= base + kHeaderIdsPerLoop || packet.count(hv->id)) continue;
    int64_t dmin = INT64_MAX, dmax = INT64_MIN;
    uint64_t bumin = kU64Max, bumax = 0;
    int64_t bsmin = kS64Max, bsmax = kS64Min;
    bool ok = true;
    for (const auto& [src, st] : be->second) {
      const Value* bv = st.frames.size() == h.frames.size() ? at(st.frames[depth], p) : nullptr;
      if (!bv || bv->kind != Kind::Scalar || bv->id != hv->id || bv->off == hv->off) {
        ok = false;
        break;
      }
      const int64_t d = int64_t{bv->off} - hv->off;
      dmin = std::min(dmin, d), dmax = std::max(dmax, d);
      bumin = std::min(bumin, bv->s.umin), bumax = std::max(bumax, bv->s.umax);
      bsmin = std::min(bsmin, bv->s.smin), bsmax = std::max(bsmax, bv->s.smax);
    }
    if (!ok || (dmin < 0 && dmax > 0)) continue;
    const Scalar& s = hv->s;
    // |d| from `step` (the least) to `most`; a wrap would land where the back edge never is
    const uint64_t step = dmin > 0 ? static_cast<uint64_t>(dmin) : static_cast<uint64_t>(-dmax);
    const uint64_t most = dmin > 0 ? static_cast<uint64_t>(dmax) : static_cast<uint64_t>(-dmin);
    const bool up = dmin > 0;
    const bool unsigned_ok = up ? (s.umax <= kU64Max - most || bumin >= most) : (s.umin >= most || bumax <= kU64Max - most);
    const bool signed_ok = up ? (s.smax <= kS64Max - static_cast<int64_t>(most) || bsmin >= kS64Min + static_cast<int64_t>(most))
                              : (s.smin >= kS64Min + static_cast<int64_t>(most) || bsmax <= kS64Max - static_cast<int64_t>(most));
    auto visits = [&](uint64_t span) { return sat_add(span / step, 1); };
    if (unsigned_ok) best = best ? std::min(best, visits(s.umax - s.umin)) : visits(s.umax - s.umin);
    if (signed_ok) {
      const uint64_t span = static_cast<uint64_t>(s.smax) - static_cast<uint64_t>(s.smin);
      best = best ? std::min(best, visits(span)) : visits(span);
    }
  }
  return best;
}

// How often one run of the invocation a key belongs to may run that key's block: the product of
// the visits of the summarised loops it is in at their summarised iteration (levels from `from`
// on; skip_own: not the loop `k`, a header, heads).
uint64_t Analyzer::multiplicity(const Key& k, size_t from, bool skip_own) const {
  uint64_t m = 1;
  const std::vector<Level> levels = KeyLess{&cfg_}.levels(k);
  for (size_t li = 0; li < levels.size(); ++li) {
    const Level& l = levels[li];
    if (l.begin < from) continue;
    const auto& loops = cfg_.loops_of[l.pc];
    for (size_t i = 0; i < loops.size(); ++i) {
      if (skip_own && li + 1 == levels.size() && i + 1 == loops.size()) continue;
      if (!summarised_[loops[i]] || k[l.counts + i] != kSummaryAt) continue;
      Key inst(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(l.begin));
      inst.push_back(cfg_.loops[loops[i]].header);
      inst.insert(inst.end(), k.begin() + static_cast<std::ptrdiff_t>(l.counts),
                  k.begin() + static_cast<std::ptrdiff_t>(l.counts + i + 1));
      auto it = visits_.find(inst);
      m = sat_mul(m, it == visits_.end() ? 1 : it->second);
    }
  }
  return m;
}

// Every summarised loop must stop (loop_visits()), and within the limit on iterations per run.
void Analyzer::bound_loops() {
  for (const auto& [key, st] : states_) {
    const Level l = KeyLess{&cfg_}.levels(key).back();
    const auto& loops = cfg_.loops_of[l.pc];
    if (loops.empty() || l.part) continue;
    const uint32_t loop = loops.back();
    if (!summarised_[loop] || cfg_.loops[loop].header != l.pc || key[l.counts + l.n - 1] != kSummaryAt) continue;
    const uint64_t n = loop_visits(key, loop);
    if (n == 0)
      reject(l.pc, "the loop at insn " + std::to_string(l.pc) + " may not stop: no register or stack slot moves by a constant toward "
                   "a bound on every path round it");
    visits_[key] = n;
  }
  std::set<uint32_t> loops;
  for (const auto& [key, n] : visits_) {
    const uint64_t total = sat_mul(sat_add(n, kSummaryAt), multiplicity(key, invocation(key).size(), true));
    const uint32_t pc = KeyLess{&cfg_}.levels(key).back().pc;
    loops.insert(pc);
    if (total > in_.options.max_loop_iterations)
      reject(pc, "the loop at insn " + std::to_string(pc) + " may run " + std::to_string(total) + " iterations in one run, more than the limit of " +
                     std::to_string(in_.options.max_loop_iterations));
  }
  report_.summarised_loops = static_cast<uint32_t>(loops.size());
}

namespace {

// The program's constants, where widening may stop a bound: immediates of comparisons, moves and
// 64-bit loads.
std::vector<uint64_t> program_constants(const isa::Program& prog) {
  std::vector<uint64_t> c{0};
  for (size_t pc = 0; pc < prog.insns.size(); ++pc) {
    const Insn& in = prog.insns[pc];
    const IKind k = isa::info(in.op).kind;
    const bool imm = !isa::uses_src_reg(in.opcode);
    if (k == IKind::Jcond && imm) c.push_back(static_cast<uint64_t>(int64_t{in.imm})), c.push_back(static_cast<uint32_t>(in.imm));
    else if (k == IKind::Alu && imm && isa::op_code(in.opcode) == 0xb0) c.push_back(static_cast<uint64_t>(int64_t{in.imm}));
    else if (in.op == isa::Op::LDDW) c.push_back(isa::lddw_imm64(prog.insns, pc));
  }
  return c;
}

Error rejection(const Input& in, const Reject& rej, const std::string& log) {
  Error err = make_error_at(rej.code, rej.pc, rej.reason);
  err.detail = std::to_string(rej.pc) + ": " + asmtext::format_insn(in.prog->insns, rej.pc);
  if (!rej.state.empty()) err.detail += "\n      ; " + rej.state;
  if (in.options.verbose) err.detail = log + err.detail;
  return err;
}

}  // namespace

// Loops are unrolled first. Where a loop goes round kBailIterations times or the analysis runs out
// of budget, the loops that went round many times are summarised (flow()) and the program is
// analysed again, adding loops while others still go round too often. Should that fail, loops are
// unrolled with the whole budget, as the kernel does: a program the unrolled analysis accepts is
// never refused for the summarised one's imprecision. A failure reports the unrolled analysis's
// reason, then what the summarised one found.
Result<VerifyReport> analyse(const Input& in) {
  const auto t0 = std::chrono::steady_clock::now();
  auto cfg = build_cfg(*in.prog);
  if (auto* e = std::get_if<CfgError>(&cfg)) {
    Error err = make_error_at(Errc::VerifierRejected, e->insn, e->reason);
    err.detail = std::to_string(e->insn) + ": " + asmtext::format_insn(in.prog->insns, e->insn);
    return err;
  }
  const Cfg& g = std::get<Cfg>(cfg);
  const std::vector<uint64_t> thresholds = program_constants(*in.prog);
  struct Outcome {
    std::optional<VerifyReport> report;
    std::optional<Error> error;
    bool too_complex = false, bailed = false;
    std::vector<uint32_t> max_count;  // by loop
  };
  auto pass = [&](const std::vector<bool>& summarised, bool bail) {
    if (in.rewritten_loads) in.rewritten_loads->clear();
    if (in.tail_call_maps) in.tail_call_maps->clear();
    Analyzer a(in, g, summarised, thresholds, bail);
    Outcome o;
    try {
      o.report = a.run();
      o.report->micros = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
    } catch (const Reject& rej) {
      o.error = rejection(in, rej, a.report_.log);
      o.too_complex = rej.too_complex, o.bailed = rej.bailed;
    }
    o.max_count = a.max_count_;
    return o;
  };
  // Unrolled, giving up on a loop that goes round kBailIterations times.
  std::vector<bool> summarised(g.loops.size(), false);
  const Outcome unrolled = pass(summarised, true);
  if (unrolled.report) return *unrolled.report;
  if (!unrolled.too_complex) return *unrolled.error;
  // The loops that went round many times summarised, more each pass while others still do.
  Outcome cur = unrolled;
  std::optional<Error> summary_error;
  std::string loops;  // the headers of the loops last summarised
  for (int n = 0; n < kMaxSummaryPasses && cur.too_complex; ++n) {
    bool more = false;
    for (size_t l = 0; l < g.loops.size(); ++l)
      if (!summarised[l] && cur.max_count[l] >= kHotIterations) summarised[l] = more = true;
    if (!more) break;
    loops.clear();
    for (size_t l = 0; l < g.loops.size(); ++l)
      if (summarised[l]) loops += (loops.empty() ? "" : ", ") + std::to_string(g.loops[l].header);
    cur = pass(summarised, true);
    if (cur.report) return *cur.report;
    if (!cur.bailed) summary_error = cur.error;
  }
  // Summarising did not prove it: the unrolled analysis decides, with its whole budget.
  Error err = *unrolled.error;
  if (unrolled.bailed) {
    const Outcome full = pass(std::vector<bool>(g.loops.size(), false), false);
    if (full.report) return *full.report;
    err = *full.error;
  }
  if (summary_error) {
    err.message += "; with the loops at insn " + loops + " summarised, not unrolled: " + summary_error->message;
    err.detail += "\nsummarised:\n" + summary_error->detail;
  }
  return err;
}

}  // namespace ebpfvm::verifier

namespace ebpfvm {

Result<VerifyReport> verify(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps,
                            const VerifyOptions& options) {
  verifier::Input in;
  in.prog = &program.data().decoded;
  in.helpers = &helpers;
  in.options = options;
  for (const Map& m : maps) {
    const detail::MapImpl& impl = *m.impl();
    const bool frozen = impl.frozen() && impl.spec().type == MapType::Array && impl.spec().max_entries == 1;
    in.maps.push_back({&impl.spec(), frozen ? detail::array_base(const_cast<detail::MapImpl&>(impl)) : nullptr, m.impl()});
  }
  in.type = detail::prog_type_desc(options.context);
  return verifier::analyse(in);
}

}  // namespace ebpfvm
