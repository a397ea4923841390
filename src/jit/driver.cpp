// The JIT's target-independent part: which backend compiles a program (jit/backend.hpp), the
// run-time support generated code calls, installing code, and running it (JitProgram, the
// loader's runs). The backends, jit/x64.cpp and jit/a64.cpp, only select instructions.
#include <algorithm>
#include <optional>

#include "ebpfvm/jit.hpp"
#include "ebpfvm/verifier.hpp"
#include "helpers/builtin.hpp"
#include "interp/image.hpp"
#include "jit/backend.hpp"
#include "jit/image.hpp"
#include "jit/rewrite.hpp"
#include "maps/map_impl.hpp"
#include "maps/reclaim.hpp"
#include "program_data.hpp"
#include "runtime/bindings.hpp"

namespace ebpfvm {

using detail::JitImage;

JitTarget host_jit_target() {
#if defined(__x86_64__)
  return JitTarget::X86_64;
#elif defined(__aarch64__)
  return JitTarget::AArch64;
#else
  return JitTarget::Host;
#endif
}

const char* to_string(JitTarget t) {
  switch (t) {
    case JitTarget::X86_64: return "x86-64";
    case JitTarget::AArch64: return "aarch64";
    default: return "host";
  }
}

namespace jit {

LdResult rt_ld(uint64_t off, uint64_t size) {
  detail::RunState* r = detail::current_run();
  const uint64_t o = static_cast<uint32_t>(off);
  const std::span<uint8_t> pkt = r ? detail::ld_packet(*r, r->packet) : std::span<uint8_t>();
  if (o > pkt.size() || pkt.size() - o < size) return {0, 0};
  const uint8_t* p = pkt.data() + o;
  uint64_t v = size == 1 ? p[0] : size == 2 ? (uint64_t{p[0]} << 8 | p[1]) : (uint64_t{p[0]} << 24 | uint64_t{p[1]} << 16 | uint64_t{p[2]} << 8 | p[3]);
  return {v, 1};
}

uint64_t rt_callx(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5, const JitImage* img, uint64_t id) {
  const Helper* h = id <= UINT32_MAX ? img->registry.find(static_cast<uint32_t>(id)) : nullptr;
  if (!h) return static_cast<uint64_t>(-22);
  return h->fn(r1, r2, r3, r4, r5, h->user);
}

const void* rt_tail_target(uint64_t map, uint64_t index) {
  auto* m = reinterpret_cast<detail::MapImpl*>(map);
  detail::RunState* r = detail::current_run();
  if (m->spec().type != MapType::ProgArray || !r || r->tail_calls >= detail::RunState::kMaxTailCalls) return nullptr;
  const auto* e = static_cast<const detail::ProgEntry*>(detail::prog_array_get(*m, static_cast<uint32_t>(index)));
  if (!e || !e->jit) return nullptr;
  ++r->tail_calls;
  return reinterpret_cast<const void*>(e->jit->entry);
}

bool inlinable_lookup(const Helper& h, const detail::MapImpl* m) {
  return h.id == 1 && h.fn == HelperRegistry::builtin().find(1)->fn && m && m->spec().type == MapType::Array && !m->per_cpu();
}

bool is_tail_call(const HelperRegistry& helpers, const isa::Insn& in) {
  if (info(in.op).kind != isa::Kind::Call || in.imm != 12) return false;
  const Helper* h = helpers.find(12);
  return h && h->fn == HelperRegistry::builtin().find(12)->fn;
}

Facts::InlineEntries inline_entries(const HelperRegistry& helpers, const JitImage& img) {
  const Helper* lookup = helpers.find(1);
  return [lookup, &img](uint32_t m) -> uint32_t {
    if (!lookup || m >= img.bindings.maps.size() || !inlinable_lookup(*lookup, img.bindings.maps[m].get())) return 0;
    return img.bindings.maps[m]->spec().max_entries;
  };
}

FrontEnd front_end(isa::Program& prog, const Facts::InlineEntries& entries, const std::function<bool(size_t head)>& keep_whole,
                   const std::function<void()>& marked) {
  FrontEnd f;
  swap_accumulators(prog);
  f.facts.emplace(prog, entries);
  if ((f.folded = fold_counter_copies(prog, *f.facts))) f.facts.emplace(prog, entries);  // of the program as rewritten
  const auto none = [](size_t) { return false; };
  if ((f.unrolled = unroll_counted_loops(prog, *f.facts, keep_whole ? keep_whole : none))) {
    if (marked) marked();
    f.facts.emplace(prog, entries);
  }
  return f;
}

#ifndef EBPFVM_NO_ASMJIT
Result<uint64_t> install(asmjit::CodeHolder& code, JitImage& img, const asmjit::Label& entry, std::span<const asmjit::Label> callbacks,
                         const void* near) {
  auto fail = [](const char* what, asmjit::Error err) {
    return make_error(Errc::Unsupported, std::string("JIT: asmjit: ") + what + ": " + asmjit::DebugUtils::errorAsString(err));
  };
  if (asmjit::Error e = code.flatten(); e) return fail("flatten", e);
  if (asmjit::Error e = code.resolveUnresolvedLinks(); e) return fail("links", e);
  auto mem = detail::CodeMemory::map(code.codeSize(), near);
  if (!mem) return mem.error();
  const uint64_t base = reinterpret_cast<uint64_t>(mem->data());
  if (asmjit::Error e = code.relocateToBase(base); e) return fail("relocate", e);
  if (code.codeSize() > mem->size()) return make_error(Errc::Unsupported, "JIT: code grew while relocating");
  if (asmjit::Error e = code.copyFlattenedData(mem->data(), mem->size(), asmjit::CopySectionFlags::kPadSectionBuffer); e)
    return fail("copy", e);
  // Code for another CPU is only looked at: read-only, never executable (so it compiles on a host
  // that refuses executable memory, too).
  const bool executable = img.target == host_jit_target();
  // AArch64 fetches instructions through a cache that does not see data writes: clean the data
  // cache and invalidate the instruction cache over the code (nothing to do on x86-64).
  if (executable) __builtin___clear_cache(reinterpret_cast<char*>(mem->data()), reinterpret_cast<char*>(mem->data() + code.codeSize()));
  if (auto r = mem->seal(executable); !r) return r.error();
  img.memory = std::move(*mem);
  img.stats.code_size = code.codeSize();
  img.entry = reinterpret_cast<JitImage::EntryFn>(base + code.labelOffsetFromBase(entry));
  for (const asmjit::Label& l : callbacks) img.callbacks.push_back(base + code.labelOffsetFromBase(l));
  std::sort(img.callbacks.begin(), img.callbacks.end());
  img.callbacks.erase(std::unique(img.callbacks.begin(), img.callbacks.end()), img.callbacks.end());
  return base;
}
#endif

}  // namespace jit

bool detail::jit_invoke(const void* engine, uint64_t code, const uint64_t args[5], uint64_t* r0) {
  const auto* img = static_cast<const JitImage*>(engine);
  if (!std::binary_search(img->callbacks.begin(), img->callbacks.end(), code)) {
    detail::current_run()->fault = "callback address is not a function of the program";
    return false;
  }
  *r0 = reinterpret_cast<JitImage::EntryFn>(code)(args[0], args[1], args[2], args[3], args[4]);
  return true;
}

namespace detail {

Result<std::shared_ptr<const JitImage>> build_jit(const isa::Program& prog, const HelperRegistry& helpers, Bindings bindings,
                                                  const JitOptions& options) {
#if defined(EBPFVM_NO_ASMJIT)
  (void)prog;
  (void)helpers;
  (void)bindings;
  (void)options;
  return make_error(Errc::Unsupported, "this build of ebpfvm (the Python extension) has no JIT: Debian's asmjit is a static library "
                                       "that cannot go into a shared object; use the interpreter");
#else
  const JitTarget target = options.target == JitTarget::Host ? host_jit_target() : options.target;
  if (target == JitTarget::Host)
    return make_error(Errc::Unsupported, "the JIT emits x86-64 and AArch64 code; this host is neither (use the interpreter)");
  // What no backend compiles: LD_ABS/LD_IND's packet is the program's context, which a
  // subprogram does not have.
  if (prog.functions.size() > 1)
    for (const isa::Insn& in : prog.insns)
      if (info(in.op).kind == isa::Kind::LdAbs || info(in.op).kind == isa::Kind::LdInd)
        return make_error(Errc::Unsupported, "LD_ABS/LD_IND in a program with bpf-to-bpf calls (the kernel refuses these too)");
  auto img = std::make_shared<JitImage>();
  img->bindings = std::move(bindings);
  img->registry = helpers;
  img->target = target;
  auto r = target == JitTarget::X86_64 ? jit::compile_x64(prog, helpers, options, *img) : jit::compile_a64(prog, helpers, options, *img);
  if (!r) return r.error();
  return std::shared_ptr<const JitImage>(std::move(img));
#endif
}

namespace {
// The run state a JIT run needs around the call itself.
template <class Call>
inline Result<uint64_t> with_run_state(const JitImage& img, RunState& run, std::span<uint8_t> packet, Call call) {
  std::optional<maps::reclaim::Guard> epoch;
  if (img.uses_maps) epoch.emplace();
  const CallbackInvoker saved = run.callbacks;
  const std::span<uint8_t> saved_packet = run.packet;
  run.callbacks = {jit_invoke, &img};
  run.packet = packet;
  // A run nested in another (a helper running a program) reports its own fault, not the
  // enclosing run's, and leaves the enclosing run's as it was.
  std::string enclosing_fault;
  if (!run.fault.empty()) [[unlikely]] enclosing_fault = std::exchange(run.fault, {});
  const uint64_t r0 = call();
  run.callbacks = saved;
  run.packet = saved_packet;
  if (!run.fault.empty()) [[unlikely]] {
    Error e = make_error(Errc::RuntimeFault, run.fault);
    run.fault = std::move(enclosing_fault);
    return e;
  }
  if (!enclosing_fault.empty()) [[unlikely]] run.fault = std::move(enclosing_fault);
  return r0;
}
}  // namespace

Result<uint64_t> run_jit(const JitImage& img, RunState& run, const RunArgs& args) {
  const auto& r = args.regs;
  return with_run_state(img, run, args.packet, [&] { return call_entry(img, r[0], r[1], r[2], r[3], r[4], args.packet); });
}

Result<uint64_t> run_jit_memory(const JitImage& img, RunState& run, std::span<uint8_t> mem) {
  const uint64_t r1 = mem.empty() ? 0 : reinterpret_cast<uintptr_t>(mem.data());
  return with_run_state(img, run, mem, [&] { return call_entry(img, r1, mem.size(), 0, 0, 0, mem); });
}

Result<uint64_t> run_jit_ctx(const JitImage& img, RunState& run, uint64_t ctx, std::span<uint8_t> packet) {
  return with_run_state(img, run, packet, [&] { return call_entry(img, ctx, 0, 0, 0, 0, packet); });
}

Error outermost_fault() {
  RunState& s = *t_first;
  Error e = make_error(Errc::RuntimeFault, s.fault);
  s.reset();
  return e;
}

}  // namespace detail

Result<JitProgram> JitProgram::compile_trusted(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps,
                                               const JitOptions& options) {
  auto img = detail::build_jit(program.data().decoded, helpers, detail::bindings_of(maps), options);
  if (!img) return img.error();
  return JitProgram(std::move(*img));
}

Result<JitProgram> JitProgram::compile(const Program& program, const HelperRegistry& helpers, std::span<const Map> maps,
                                       uint32_t memory_size, const JitOptions& options) {
  VerifyOptions vo;
  vo.context = VerifyOptions::Context::Memory;
  vo.memory_size = memory_size;
  if (auto r = verify(program, helpers, maps, vo); !r) return r.error();
  auto img = detail::build_jit(program.data().decoded, helpers, detail::bindings_of(maps), options);
  if (!img) return img.error();
  return JitProgram(std::move(*img), memory_size, true);
}

namespace {
[[gnu::cold, gnu::noinline]] Error too_little_memory(uint32_t verified, size_t given) {
  return make_error(Errc::InvalidArgument, "the program was verified for " + std::to_string(verified) + " bytes of memory; " +
                                               std::to_string(given) + " given");
}

// The enclosing run's state when there is one (a helper running a program), else a pooled one.
inline detail::RunState& state_for(std::optional<detail::PooledRun>& pooled) {
  if (detail::RunState* s = detail::current_run()) return *s;
  return pooled.emplace().state();
}

[[gnu::noinline]] Result<uint64_t> run_with_state(const JitImage& img, const RunArgs& args) {
  std::optional<detail::PooledRun> pooled;
  return detail::run_jit(img, state_for(pooled), args);
}

// run(mem) for a program that calls helpers: r1 and r2 straight from mem, no RunArgs in between.
Result<uint64_t> run_memory_with_state(const JitImage& img, std::span<uint8_t> mem) {
  if (detail::RunState* s = detail::current_run()) return detail::run_jit_memory(img, *s, mem);
  const bool packet = img.run_uses & detail::run_use::kPacket;
  const detail::RunEnd end = detail::outermost(
      // The span by value, in its two registers: captured by reference it is spilled as two
      // words and read back as one 16-byte load, which store forwarding cannot serve (~4 ns).
      img, mem.empty() ? 0 : reinterpret_cast<uintptr_t>(mem.data()), mem.size(),
      [packet, data = mem.data(), size = mem.size()](detail::RunState& s) {
        if (packet) s.packet = {data, size};
      },
      [](detail::RunState& s, uint64_t) { s.packet = {}; });
  if (end.faulted) [[unlikely]]
    return detail::outermost_fault();
  return end.r0;
}

// A program whose calls need no run state (helpers/builtin.hpp): the call is the whole cost.
inline uint64_t run_plain(const JitImage& img, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5,
                          std::span<const uint8_t> packet) {
  std::optional<maps::reclaim::Guard> epoch;
  if (img.uses_maps) epoch.emplace();
  return detail::call_entry(img, r1, r2, r3, r4, r5, packet);
}

// Whether run(mem) and run(args) need a run state of their own. Not for a redirect: they report
// only r0, so a redirect recorded on no state (the helper's stand-in) is the same as one recorded
// and cleared.
bool needs_state(const JitImage& img) { return img.run_uses & ~detail::run_use::kRedirect; }

[[gnu::cold, gnu::noinline]] Result<uint64_t> refuse_memory(uint32_t verified, size_t given) { return too_little_memory(verified, given); }

// Not cold, unlike run_general: a cold function is compiled for size, and this is every run of a
// program that calls helpers or names maps.
[[gnu::noinline]] Result<uint64_t> run_memory(const JitImage& img, uint32_t memory_size, bool verified, std::span<uint8_t> mem) {
  if (mem.size() < memory_size) [[unlikely]]
    return refuse_memory(memory_size, mem.size());
  if (verified) mem = mem.first(memory_size);  // what the verifier assumed
  if (!needs_state(img)) return run_plain(img, mem.empty() ? 0 : reinterpret_cast<uintptr_t>(mem.data()), mem.size(), 0, 0, 0, mem);
  return run_memory_with_state(img, mem);
}
}  // namespace

JitProgram::JitProgram(std::shared_ptr<const detail::JitImage> img, uint32_t memory_size, bool verified)
    : img_(std::move(img)), memory_size_(memory_size), verified_(verified) {
  if (!needs_state(*img_) && !img_->uses_maps && !img_->packet_args && img_->target == host_jit_target()) {
    plain_ = img_->entry;
    // a program verified for no memory runs with r1 = 0: not on the direct path, which passes mem
    plain_min_ = verified_ && memory_size_ == 0 ? SIZE_MAX : std::max<size_t>(memory_size_, 1);
    plain_r2_max_ = verified_ ? memory_size_ : SIZE_MAX;
  }
}

namespace {
[[gnu::cold, gnu::noinline]] Error foreign_code(JitTarget t) {
  return make_error(Errc::Unsupported, std::string("this program was compiled for ") + to_string(t) + " and this host is " +
                                           to_string(host_jit_target()) + ": its code can be looked at, not run");
}
}  // namespace

Result<uint64_t> JitProgram::run_general(std::span<uint8_t> mem) const {
  if (img_->target != host_jit_target()) [[unlikely]]
    return foreign_code(img_->target);
  return run_memory(*img_, memory_size_, verified_, mem);
}

Result<uint64_t> JitProgram::run(const RunArgs& args) const {
  if (img_->target != host_jit_target()) [[unlikely]]
    return foreign_code(img_->target);
  if (!needs_state(*img_)) return run_plain(*img_, args.regs[0], args.regs[1], args.regs[2], args.regs[3], args.regs[4], args.packet);
  return run_with_state(*img_, args);
}

size_t JitProgram::code_size() const { return img_->stats.code_size; }

const JitStats& JitProgram::stats() const { return img_->stats; }

std::span<const uint8_t> JitProgram::code() const { return {img_->memory.data(), img_->stats.code_size}; }

}  // namespace ebpfvm
