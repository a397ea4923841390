#include "verifier/state.hpp"

#include <algorithm>
#include <iterator>
#include <optional>

namespace ebpfvm::verifier {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Uninit: return "uninit";
    case Kind::Scalar: return "scalar";
    case Kind::Ctx: return "ctx";
    case Kind::Packet: return "pkt";
    case Kind::PacketMeta: return "pkt_meta";
    case Kind::PacketEnd: return "pkt_end";
    case Kind::Stack: return "fp";
    case Kind::MapPtr: return "map_ptr";
    case Kind::MapPtrOrNull: return "map_ptr_or_null";
    case Kind::MapValue: return "map_value";
    case Kind::MapValueOrNull: return "map_value_or_null";
    case Kind::Mem: return "mem";
    case Kind::AllocMem: return "alloc_mem";
    case Kind::AllocMemOrNull: return "alloc_mem_or_null";
    case Kind::Func: return "func";
  }
  return "?";
}

bool is_pointer(Kind k) { return k != Kind::Uninit && k != Kind::Scalar; }

bool is_or_null(Kind k) { return k == Kind::MapPtrOrNull || k == Kind::MapValueOrNull || k == Kind::AllocMemOrNull; }

Kind non_null(Kind k) {
  switch (k) {
    case Kind::MapPtrOrNull: return Kind::MapPtr;
    case Kind::MapValueOrNull: return Kind::MapValue;
    case Kind::AllocMemOrNull: return Kind::AllocMem;
    default: return k;
  }
}

std::string Value::str(const std::vector<std::string>& map_names) const {
  auto map = [&] { return aux < map_names.size() ? map_names[aux] : std::to_string(aux); };
  auto var = [&] { return s.is_const() && s.value() == 0 ? std::string() : ",var=" + s.str(); };
  switch (kind) {
    case Kind::Uninit: return "uninit";
    case Kind::Scalar: return s.str();
    case Kind::Ctx: return "ctx(off=" + std::to_string(off) + ")";
    case Kind::Packet: case Kind::PacketMeta: {
      std::string id_text = id == kUnlinked ? "-" : std::to_string(id);
      return std::string(kind_name(kind)) + "(id=" + id_text + ",off=" + std::to_string(off) + ",r=" + std::to_string(range) + var() + ")";
    }
    case Kind::PacketEnd: return "pkt_end()";
    case Kind::Stack: return "fp" + std::to_string(off) + (aux ? "[frame " + std::to_string(aux) + "]" : "") + var();
    case Kind::MapPtr: case Kind::MapPtrOrNull: return std::string(kind_name(kind)) + "(map=" + map() + ")";
    case Kind::MapValue: case Kind::MapValueOrNull:
      return std::string(kind_name(kind)) + "(map=" + map() + ",off=" + std::to_string(off) + var() + ")";
    case Kind::Mem: case Kind::AllocMem: case Kind::AllocMemOrNull:
      return std::string(kind_name(kind)) + "(size=" + std::to_string(aux) + ",off=" + std::to_string(off) + var() + ")";
    case Kind::Func: return "func(insn " + std::to_string(aux) + ")";
  }
  return "?";
}

namespace {

Scalar join_or_widen(const Scalar& a, const Scalar& b, bool widening, const JoinHooks* hooks) {
  return widening ? widen(a, b, hooks ? hooks->thresholds : nullptr) : join(a, b);
}

// Two pointers into the same object whose fixed offsets differ: fold each fixed part into the
// variable part. For packet pointers the proven range moves with it (it counts from the base).
Value join_offsets(const Value& a, const Value& b, bool widening, const JoinHooks* hooks, bool rebase) {
  Value v = a;
  const Scalar va = alu64(0x00, a.s, Scalar::constant(static_cast<uint64_t>(static_cast<int64_t>(a.off))), false);
  const Scalar vb = alu64(0x00, b.s, Scalar::constant(static_cast<uint64_t>(static_cast<int64_t>(b.off))), false);
  v.s = join_or_widen(va, vb, widening, hooks);
  v.off = 0;
  const int64_t ra = static_cast<int64_t>(a.range) - a.off, rb = static_cast<int64_t>(b.range) - b.off;
  v.range = static_cast<uint32_t>(std::max<int64_t>(0, std::min(ra, rb)));
  v.id = rebase && hooks && hooks->id && a.id != kUnlinked && b.id != kUnlinked ? hooks->id(a, b) : kUnlinked;
  return v;
}

}  // namespace

namespace {

// Null on one path and a pointer on the other (`p = lookup(); if (!p) ...; use p != 0`): the
// joined value is the pointer-or-null, which a later null check splits again.
std::optional<Value> join_null(const Value& a, const Value& b, const JoinHooks* ids) {
  auto is_null = [](const Value& v) { return v.kind == Kind::Scalar && v.s.is_const() && v.s.value() == 0; };
  auto or_null = [](Kind k) {
    switch (k) {
      case Kind::MapValue: case Kind::MapValueOrNull: return Kind::MapValueOrNull;
      case Kind::MapPtr: case Kind::MapPtrOrNull: return Kind::MapPtrOrNull;
      case Kind::AllocMem: case Kind::AllocMemOrNull: return Kind::AllocMemOrNull;
      default: return Kind::Uninit;
    }
  };
  const Value* p = is_null(a) ? &b : is_null(b) ? &a : nullptr;
  if (p) {
    if (or_null(p->kind) == Kind::Uninit) return std::nullopt;
    Value v = *p;
    v.kind = or_null(p->kind);
    // copies share null-ness only when the pointer side's copies did; a reference keeps its id,
    // which is what gives it back (on the null side it was never taken)
    if (v.kind != Kind::AllocMemOrNull) v.id = ids && p->id != kUnlinked ? ids->id(a, b) : kUnlinked;
    return v;
  }
  // a pointer on one side, the same pointer-or-null on the other
  if (a.aux != b.aux || a.off != b.off || !(a.s == b.s)) return std::nullopt;
  if (or_null(a.kind) == Kind::Uninit || or_null(a.kind) != or_null(b.kind)) return std::nullopt;
  Value v = is_or_null(a.kind) ? a : b;
  v.id = ids && a.id != kUnlinked && b.id != kUnlinked ? ids->id(a, b) : kUnlinked;
  return v;
}

}  // namespace

Value mixed(const Value& a, const Value& b) {
  if (!a.readable()) return a;  // unreadable already: its reason stays
  if (!b.readable()) return b;
  Value v;
  v.aux = kMixed | (static_cast<uint32_t>(a.kind) << 8) | static_cast<uint32_t>(b.kind);
  return v;
}

std::string unreadable_reason(const Value& v) {
  if (v.readable() || !(v.aux & kMixed)) return "";
  const Kind a = static_cast<Kind>((v.aux >> 8) & 0xff), b = static_cast<Kind>(v.aux & 0xff);
  if (a == b) return std::string(": it is ") + kind_name(a) + " on the paths that meet before, but not the same one (other offsets or objects)";
  return std::string(": it is ") + kind_name(a) + " on one path and " + kind_name(b) + " on another that meets it before";
}

Value join(const Value& a, const Value& b, bool widening, const JoinHooks* ids) {
  if (a == b) return a;
  // Values of two maps (checked or not): values of a map shape both allow, then as one map's.
  auto map_value = [](Kind k) { return k == Kind::MapValue || k == Kind::MapValueOrNull; };
  if (map_value(a.kind) && map_value(b.kind) && a.aux != b.aux && ids) {
    Value a2 = a, b2 = b;
    a2.aux = b2.aux = ids->map(a.aux, b.aux);
    return join(a2, b2, widening, ids);
  }
  if (a.kind != b.kind)
    if (auto v = join_null(a, b, ids)) return *v;
  if (a.kind != b.kind || a.aux != b.aux) return mixed(a, b);
  switch (a.kind) {
    case Kind::Uninit: case Kind::PacketEnd: case Kind::MapPtr: case Kind::Func: return a;
    case Kind::Scalar: {
      Value v = Value::scalar(join_or_widen(a.s, b.s, widening, ids));
      if (a.id == b.id && a.off == b.off && a.id != kUnlinked) v.id = a.id, v.off = a.off;  // linked on both paths alike
      return v;
    }
    case Kind::Ctx: return a.off == b.off ? a : mixed(a, b);
    case Kind::MapPtrOrNull: case Kind::MapValueOrNull: case Kind::AllocMemOrNull: {
      if (a.off != b.off) return mixed(a, b);
      Value v = a;
      v.s = join(a.s, b.s);
      if (a.id != b.id) v.id = kUnlinked;
      return v;
    }
    case Kind::Packet: case Kind::PacketMeta:
      if (a.off == b.off && (a.id == b.id || (ids && a.id != kUnlinked && b.id != kUnlinked))) {
        // The same fixed offset on both paths: the variable parts join, the offset stays. Ids
        // that differ get the join's id of the pair (the one join_offsets gives a pair at offset
        // 0, which means the same: base X on one path, Y on the other), so that p and p + 2
        // joined from two paths that advanced p differently are still one base 2 bytes apart.
        Value v = a;
        v.s = join_or_widen(a.s, b.s, widening, ids);
        v.range = std::min(a.range, b.range);
        if (a.id != b.id) {
          Value a0 = a, b0 = b;
          a0.off = b0.off = 0;
          v.id = ids->id(a0, b0);
        }
        return v;
      }
      return join_offsets(a, b, widening, ids, true);
    case Kind::Stack: case Kind::MapValue: case Kind::Mem: case Kind::AllocMem: {
      // two references, or the input memory and a callback's key: neither is known
      if ((a.kind == Kind::AllocMem || a.kind == Kind::Mem) && a.id != b.id) return mixed(a, b);
      if (a.off == b.off) {
        Value v = a;
        v.s = join_or_widen(a.s, b.s, widening, ids);
        return v;
      }
      Value v = join_offsets(a, b, widening, ids, false);
      v.id = a.kind == Kind::AllocMem || a.kind == Kind::Mem ? a.id : 0, v.range = 0;
      return v;
    }
  }
  return {};
}

namespace {

Slot join(const Slot& a, const Slot& b, bool widening, const JoinHooks* ids) {
  if (a == b) return a;
  Slot s;
  s.init = a.init & b.init;
  if (a.spill_size && a.spill_size == b.spill_size && a.spill_off == b.spill_off) {
    Value v = join(a.spill, b.spill, widening, ids);
    if (v.readable()) {
      s.spill = v, s.spill_off = a.spill_off, s.spill_size = a.spill_size;
      return s;
    }
  }
  // A pointer spilled on either side must not come back as data: those bytes are not readable.
  for (const Slot* x : {&a, &b})
    if (x->spill_size && is_pointer(x->spill.kind)) s.init = 0;
  return s;
}

}  // namespace

namespace {

std::vector<uint32_t> set_union(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<uint32_t> out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

State join(const State& a, const State& b, bool widening, const JoinHooks* ids) {
  State out = a;
  for (size_t f = 0; f < a.frames.size() && f < b.frames.size(); ++f) {
    for (size_t r = 0; r < 11; ++r) out.frames[f].regs[r] = join(a.frames[f].regs[r], b.frames[f].regs[r], widening, ids);
    for (int i = 0; i < kSlots; ++i) out.frames[f].stack[i] = join(a.frames[f].stack[i], b.frames[f].stack[i], widening, ids);
    out.frames[f].entry_refs = set_union(a.frames[f].entry_refs, b.frames[f].entry_refs);
  }
  // A reference held on either path must still be given back; its pointer, where the paths
  // disagree about it, is unusable (the value join), so it is never given back twice.
  out.refs = set_union(a.refs, b.refs);
  return out;
}

bool holds_ref(const State& s, uint32_t id) { return std::binary_search(s.refs.begin(), s.refs.end(), id); }

void release_ref(State& s, uint32_t id) {
  s.refs.erase(std::remove(s.refs.begin(), s.refs.end(), id), s.refs.end());
  auto is_it = [&](const Value& v) { return (v.kind == Kind::AllocMem || v.kind == Kind::AllocMemOrNull) && v.id == id; };
  for (Frame& f : s.frames) {
    for (Value& v : f.regs)
      if (is_it(v)) v = {};
    for (Slot& sl : f.stack)
      if (sl.spill_size && is_it(sl.spill)) sl = {};  // no byte of the old address is readable either
  }
}

void retire_id(State& s, uint32_t id) {
  auto retire = [&](Value& v) {
    if (v.id == id && (v.kind == Kind::Scalar || v.kind == Kind::Packet || v.kind == Kind::PacketMeta || is_or_null(v.kind)))
      v.id = kUnlinked;
  };
  for (Frame& f : s.frames) {
    for (Value& v : f.regs) retire(v);
    for (Slot& sl : f.stack)
      if (sl.spill_size) retire(sl.spill);
  }
}

}  // namespace ebpfvm::verifier
