#include "verifier/oracle.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "maps/map_impl.hpp"
#include "progtype/xdp.hpp"

namespace ebpfvm::detail {
namespace {

using verifier::Kind;
using verifier::Value;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#" PRIx64, v);
  return buf;
}

// Whether `x` (a concrete address minus the object's base) is a pointer of `v`'s offsets.
bool at_offsets(const Value& v, uint64_t x) { return v.s.contains(x - static_cast<uint64_t>(static_cast<int64_t>(v.off))); }

// A pointer into an array map's values (each `stride` bytes, per-CPU slots included) must be one
// of v's offsets from the start of one of them.
std::string array_value(const Value& v, uint64_t x, const MapImpl& m) {
  const uint64_t base = reinterpret_cast<uint64_t>(array_base(const_cast<MapImpl&>(m)));
  const uint64_t stride = m.value_stride(), slots = uint64_t{m.spec().max_entries} * (m.per_cpu() ? m.workers() : 1);
  // the value starts x - off - s for s in v.s: those that are slot starts
  const int64_t lo_off = static_cast<int64_t>(v.off) + v.s.smin, hi_off = static_cast<int64_t>(v.off) + v.s.smax;
  const int64_t first = (static_cast<int64_t>(x - base) - hi_off) / static_cast<int64_t>(stride) - 1;
  const int64_t last = (static_cast<int64_t>(x - base) - lo_off) / static_cast<int64_t>(stride) + 1;
  if (last - first > 4096) return "";  // too many candidates to try: claim nothing
  for (int64_t j = std::max<int64_t>(first, 0); j <= last && j < static_cast<int64_t>(slots); ++j)
    if (at_offsets(v, x - (base + static_cast<uint64_t>(j) * stride))) return "";
  return "not at its offsets from any value of map '" + m.spec().name + "'";
}

// A hash map's value: a pointer inside a live element's value must be at v's offsets from the
// start of one (per-CPU slot); one inside none claims nothing (its element may have been deleted
// during the run: its memory stays until the run ends, and no other element reuses it before).
std::string element_value(const Value& v, uint64_t x, const MapImpl& m) {
  bool inside = false, matched = false;
  size_t seen = 0;
  m.each_value([&](const uint8_t* value, size_t bytes) {
    const auto start = reinterpret_cast<uint64_t>(value);
    inside = inside || (x >= start && x - start < bytes);
    for (uint64_t slot = start; slot < start + bytes && !matched; slot += m.value_stride()) matched = at_offsets(v, x - slot);
    return !matched && ++seen < 65536;  // past that many, stop looking: claim nothing
  });
  if (matched || !inside || seen >= 65536) return "";
  return "inside a value of map '" + m.spec().name + "', not at its offsets from any";
}

// Other maps' values (LPM tries) lie anywhere: not null is all.
std::string map_value(const Value& v, uint64_t x, const AbstractStates& states) {
  if (x == 0) return "null";
  if (v.aux >= states.maps.size() || !states.maps[v.aux]) return "";
  const MapImpl& m = *states.maps[v.aux];
  if (m.spec().type == MapType::Array || m.spec().type == MapType::PercpuArray) return array_value(v, x, m);
  return element_value(v, x, m);
}

// Empty when concrete `x` is one of `v`'s values; otherwise why not.
std::string contains(const Value& v, uint64_t x, const Concrete& c, const AbstractStates& states) {
  const Concrete::Packet& p = c.ctx;
  switch (v.kind) {
    case Kind::Uninit: case Kind::MapPtr: case Kind::MapPtrOrNull: case Kind::MapValueOrNull: case Kind::AllocMemOrNull:
    case Kind::Func:
      return "";  // unreadable, or no concrete region known here
    case Kind::Scalar: return v.s.contains(x) ? "" : "not among its values";
    case Kind::MapValue: return map_value(v, x, states);
    case Kind::AllocMem: return x != 0 ? "" : "null";
    case Kind::Mem:
      // the program's memory is checked at its offsets; other memory (a for_each callback's key)
      // has no start known here
      if (x < c.mem || x > c.mem + c.mem_size) return x != 0 ? "" : "null";
      return at_offsets(v, x - c.mem) ? "" : "not at its offsets from the memory's start (" + hex(c.mem) + ")";
    case Kind::Ctx:
      if (!p.ctx) return "";
      return x == p.ctx + static_cast<uint64_t>(static_cast<int64_t>(v.off)) ? "" : "not the context";
    case Kind::PacketEnd:
      if (!p.ctx) return "";
      return x == p.data_end ? "" : "not data_end (" + hex(p.data_end) + ")";
    case Kind::Packet: case Kind::PacketMeta: {
      if (!p.ctx) return "";
      const uint64_t base = v.kind == Kind::Packet ? p.data : p.data_meta;
      const uint64_t limit = v.kind == Kind::Packet ? p.data_end : p.data;
      if (!at_offsets(v, x - base)) return "not at its offsets from " + std::string(v.kind == Kind::Packet ? "data" : "data_meta") + " (" + hex(base) + ")";
      // [base + variable part, + range): the bytes proven readable (a pointer may point past the
      // end before its check; with no range it claims nothing)
      const uint64_t proven_end = x - static_cast<uint64_t>(static_cast<int64_t>(v.off)) + v.range;
      if (v.range > 0 && proven_end > limit) return "its proven range ends at " + hex(proven_end) + ", past the packet's end " + hex(limit);
      return "";
    }
    case Kind::Stack: return "";  // checked by the caller, which knows the frame
  }
  return "";
}

}  // namespace

// Registers the verifier linked by an id must relate as it claims: a linked scalar is its link's
// base plus its `off`, and a packet pointer of the same id is data (data_meta) + that base + its
// `off`. Empty when they do; otherwise the first pair that does not.
std::string check_links(const AbstractStates& states, size_t slot, const Concrete& c) {
  const auto& regs = states.at[slot]->regs;
  auto base_of = [&](int r, uint64_t& base) {
    const Value& v = regs[r];
    if (v.id == 0 || v.id == verifier::kUnlinked) return false;
    const uint64_t x = c.regs[r] - static_cast<uint64_t>(static_cast<int64_t>(v.off));
    if (v.kind == Kind::Scalar) base = x;
    else if (v.kind == Kind::Packet && c.ctx.ctx) base = x - c.ctx.data;
    else if (v.kind == Kind::PacketMeta && c.ctx.ctx) base = x - c.ctx.data_meta;
    else return false;
    return true;
  };
  for (int a = 0; a <= 10; ++a) {
    uint64_t ba;
    if (!base_of(a, ba)) continue;
    for (int b = a + 1; b <= 10; ++b) {
      uint64_t bb;
      if (regs[b].id != regs[a].id || !base_of(b, bb) || ba == bb) continue;
      // a packet and a metadata pointer of one id are not related (their ids count apart)
      if (regs[a].kind != Kind::Scalar && regs[b].kind != Kind::Scalar && regs[a].kind != regs[b].kind) continue;
      return "insn " + std::to_string(slot) + ": R" + std::to_string(a) + " and R" + std::to_string(b) + " share id " + std::to_string(regs[a].id) +
             " but their bases differ (" + hex(ba) + ", " + hex(bb) + "); the verifier has R" + std::to_string(a) + "=" +
             regs[a].str(states.map_names) + " R" + std::to_string(b) + "=" + regs[b].str(states.map_names);
    }
  }
  return "";
}

std::string check_containment(const AbstractStates& states, size_t slot, const Concrete& c) {
  if (slot >= states.at.size()) return "instruction " + std::to_string(slot) + " is past the program the verifier analysed";
  const auto& at = states.at[slot];
  if (!at) return "instruction " + std::to_string(slot) + " runs, yet the verifier found it unreachable";
  if (std::string why = check_links(states, slot, c); !why.empty()) return why;
  for (int r = 0; r <= 10; ++r) {
    const Value& v = at->regs[r];
    const uint64_t x = c.regs[r];
    std::string why;
    if (v.kind == Kind::Stack) {
      // pointers into the innermost frame, from its r10; into a caller's, from that frame's r10
      const uint64_t fp = v.aux == at->frame ? c.regs[10] : v.aux < c.frames.size() ? c.frames[v.aux] : 0;
      if (at->frame != UINT32_MAX && fp != 0 && !at_offsets(v, x - fp))
        why = "not at its offsets from frame " + std::to_string(v.aux) + "'s r10 (" + hex(fp) + ")";
    } else {
      why = contains(v, x, c, states);
    }
    if (!why.empty())
      return "insn " + std::to_string(slot) + ": R" + std::to_string(r) + " = " + hex(x) + " is " + why + "; the verifier has R" +
             std::to_string(r) + "=" + v.str(states.map_names);
  }
  return "";
}

Concrete::Packet context_of(const RunState& run) {
  if (run.xdp) return {reinterpret_cast<uint64_t>(run.xdp), run.xdp->data, run.xdp->data_end, run.xdp->data_meta};
  if (run.skb) return {reinterpret_cast<uint64_t>(run.skb), run.skb->data, run.skb->data_end, run.skb->data_meta};
  return {};
}

ContainmentOracle::ContainmentOracle() : outer_(t_step_observer) { t_step_observer = this; }
ContainmentOracle::~ContainmentOracle() { t_step_observer = outer_; }

void ContainmentOracle::step(const void* image, size_t slot, const uint64_t* regs, const RunState& run) {
  auto it = states_.find(image);
  if (it == states_.end()) it = states_.find(nullptr);
  if (!failure_.empty() || it == states_.end()) return;
  const Concrete::Packet ctx = context_of(run);
  if (slot == 0 && !ctx.ctx) mem_ = regs[1], mem_size_ = regs[2];  // a raw memory run starts with r1, r2 = the memory
  ++steps_;
  // Each frame's r10 as its code runs: frames past the running one have returned. An instruction
  // reached at several depths says nothing of where its frame is: forget them all.
  const AbstractStates& states = *it->second;
  const uint32_t frame = slot < states.at.size() && states.at[slot] ? states.at[slot]->frame : UINT32_MAX;
  if (frame == UINT32_MAX || frame > 64) {
    frames_.clear();
  } else {
    frames_.resize(frame + 1);
    frames_[frame] = regs[10];
  }
  failure_ = check_containment(states, slot, {regs, frames_, ctx, ctx.ctx ? 0 : mem_, ctx.ctx ? 0 : mem_size_});
}

}  // namespace ebpfvm::detail
