#include "verifier/scalar.hpp"

#include <algorithm>
#include <cstdio>

namespace ebpfvm::verifier {

// ---- tnum -------------------------------------------------------------------------------------
Tnum Tnum::range(uint64_t min, uint64_t max) {
  const uint64_t chi = min ^ max;
  if (chi == 0) return constant(min);
  const int bits = 64 - __builtin_clzll(chi);
  if (bits > 63) return {};
  const uint64_t delta = (1ull << bits) - 1;
  return {min & ~delta, delta};
}

Tnum tnum_add(Tnum a, Tnum b) {
  const uint64_t sm = a.mask + b.mask, sv = a.value + b.value;
  const uint64_t mu = ((sm + sv) ^ sv) | a.mask | b.mask;
  return {sv & ~mu, mu};
}

Tnum tnum_sub(Tnum a, Tnum b) {
  const uint64_t dv = a.value - b.value;
  const uint64_t mu = ((dv + a.mask) ^ (dv - b.mask)) | a.mask | b.mask;
  return {dv & ~mu, mu};
}

Tnum tnum_and(Tnum a, Tnum b) {
  const uint64_t v = a.value & b.value;
  return {v, (a.value | a.mask) & (b.value | b.mask) & ~v};
}

Tnum tnum_or(Tnum a, Tnum b) {
  const uint64_t v = a.value | b.value;
  return {v, (a.mask | b.mask) & ~v};
}

Tnum tnum_xor(Tnum a, Tnum b) {
  const uint64_t mu = a.mask | b.mask;
  return {(a.value ^ b.value) & ~mu, mu};
}

Tnum tnum_union(Tnum a, Tnum b) {
  const uint64_t mu = a.mask | b.mask | (a.value ^ b.value);
  return {a.value & ~mu, mu};
}

namespace {

// Known bits of both; `conflict` when a bit is known differently.
Tnum tnum_meet(Tnum a, Tnum b, bool& conflict) {
  if ((a.value ^ b.value) & ~a.mask & ~b.mask) conflict = true;
  const uint64_t mu = a.mask & b.mask;
  return {(a.value | b.value) & ~mu, mu};
}

bool crosses_sign64(uint64_t lo, uint64_t hi) { return static_cast<int64_t>(lo) > static_cast<int64_t>(hi); }

}  // namespace

Cmp negate(Cmp c) {
  switch (c) {
    case Cmp::Eq: return Cmp::Ne;
    case Cmp::Ne: return Cmp::Eq;
    case Cmp::Gt: return Cmp::Le;
    case Cmp::Ge: return Cmp::Lt;
    case Cmp::Lt: return Cmp::Ge;
    case Cmp::Le: return Cmp::Gt;
    case Cmp::Sgt: return Cmp::Sle;
    case Cmp::Sge: return Cmp::Slt;
    case Cmp::Slt: return Cmp::Sge;
    case Cmp::Sle: return Cmp::Sgt;
    case Cmp::Set: return Cmp::NotSet;
    case Cmp::NotSet: return Cmp::Set;
  }
  return c;
}

Cmp swap_sides(Cmp c) {
  switch (c) {
    case Cmp::Gt: return Cmp::Lt;
    case Cmp::Ge: return Cmp::Le;
    case Cmp::Lt: return Cmp::Gt;
    case Cmp::Le: return Cmp::Ge;
    case Cmp::Sgt: return Cmp::Slt;
    case Cmp::Sge: return Cmp::Sle;
    case Cmp::Slt: return Cmp::Sgt;
    case Cmp::Sle: return Cmp::Sge;
    default: return c;
  }
}

// ---- Scalar -----------------------------------------------------------------------------------
Scalar Scalar::constant(uint64_t v) {
  Scalar s;
  s.t = Tnum::constant(v);
  s.sync();
  return s;
}

Scalar Scalar::urange(uint64_t min, uint64_t max) {
  Scalar s;
  s.umin = min;
  s.umax = max;
  s.sync();
  return s;
}

Scalar Scalar::srange(int64_t min, int64_t max) {
  Scalar s;
  s.smin = min;
  s.smax = max;
  s.sync();
  return s;
}

Scalar Scalar::bits(unsigned width) { return width >= 64 ? unknown() : urange(0, (1ull << width) - 1); }

bool Scalar::contains(uint64_t v) const {
  return !empty() && v >= umin && v <= umax && static_cast<int64_t>(v) >= smin && static_cast<int64_t>(v) <= smax &&
         static_cast<uint32_t>(v) >= u32min && static_cast<uint32_t>(v) <= u32max && static_cast<int32_t>(v) >= s32min &&
         static_cast<int32_t>(v) <= s32max && (v & ~t.mask) == t.value;
}

bool Scalar::empty() const {
  if (umin > umax || smin > smax || u32min > u32max || s32min > s32max) return true;
  return (t.value & t.mask) != 0;
}

void Scalar::sync() {
  for (int round = 0; round < 2 && !empty(); ++round) {
    // tnum <-> unsigned 64
    bool conflict = false;
    t = tnum_meet(t, Tnum::range(umin, umax), conflict);
    if (conflict) {
      umin = 1, umax = 0;
      return;
    }
    umin = std::max(umin, t.value);
    umax = std::min(umax, t.value | t.mask);
    // unsigned 64 <-> signed 64
    if (!crosses_sign64(umin, umax)) {
      smin = std::max(smin, static_cast<int64_t>(umin));
      smax = std::min(smax, static_cast<int64_t>(umax));
    }
    if (smin <= smax && (smin >= 0 || smax < 0)) {
      umin = std::max(umin, static_cast<uint64_t>(smin));
      umax = std::min(umax, static_cast<uint64_t>(smax));
    }
    // 64 -> 32: when the range stays within one 4 GiB block, its low halves are ordered too
    if ((umin >> 32) == (umax >> 32)) {
      u32min = std::max(u32min, static_cast<uint32_t>(umin));
      u32max = std::min(u32max, static_cast<uint32_t>(umax));
    }
    if ((smin >> 32) == (smax >> 32) && static_cast<int32_t>(smin) <= static_cast<int32_t>(smax)) {
      s32min = std::max(s32min, static_cast<int32_t>(smin));
      s32max = std::min(s32max, static_cast<int32_t>(smax));
    }
    u32min = std::max(u32min, static_cast<uint32_t>(t.value));
    u32max = std::min(u32max, static_cast<uint32_t>(t.value | t.mask));
    // unsigned 32 <-> signed 32
    if (static_cast<int32_t>(u32min) <= static_cast<int32_t>(u32max)) {
      s32min = std::max(s32min, static_cast<int32_t>(u32min));
      s32max = std::min(s32max, static_cast<int32_t>(u32max));
    }
    if (s32min <= s32max && (s32min >= 0 || s32max < 0)) {
      u32min = std::max(u32min, static_cast<uint32_t>(s32min));
      u32max = std::min(u32max, static_cast<uint32_t>(s32max));
    }
    // 32 -> 64: with the upper half known, the 32-bit bounds are 64-bit bounds
    if ((t.mask >> 32) == 0 && u32min <= u32max) {
      const uint64_t hi = t.value & 0xffffffff00000000ull;
      umin = std::max(umin, hi | u32min);
      umax = std::min(umax, hi | u32max);
    }
    bool conflict32 = false;
    const Tnum low = Tnum::range(u32min, u32max);
    Tnum widened{low.value, low.mask | 0xffffffff00000000ull};
    widened.value &= 0xffffffffull;
    t = tnum_meet(t, widened, conflict32);
    if (conflict32) {
      umin = 1, umax = 0;
      return;
    }
  }
}

std::string Scalar::str() const {
  char buf[256];
  if (is_const()) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(t.value));
    return buf;
  }
  std::string out = "scalar(";
  auto add = [&](const char* name, long long v, bool show) {
    if (!show) return;
    if (out.back() != '(') out += ",";
    std::snprintf(buf, sizeof buf, "%s=%lld", name, v);
    out += buf;
  };
  auto addu = [&](const char* name, unsigned long long v, bool show) {
    if (!show) return;
    if (out.back() != '(') out += ",";
    std::snprintf(buf, sizeof buf, "%s=%llu", name, v);
    out += buf;
  };
  add("smin", smin, smin != kS64Min);
  add("smax", smax, smax != kS64Max);
  addu("umin", umin, umin != 0);
  addu("umax", umax, umax != kU64Max);
  add("smin32", s32min, s32min != INT32_MIN && s32min != smin);
  add("smax32", s32max, s32max != INT32_MAX && s32max != smax);
  addu("umin32", u32min, u32min != 0 && u32min != umin);
  addu("umax32", u32max, u32max != 0xffffffffu && u32max != umax);
  if (t.mask != kU64Max && ~t.mask != 0) {
    if (out.back() != '(') out += ",";
    std::snprintf(buf, sizeof buf, "var_off=(%#llx; %#llx)", static_cast<unsigned long long>(t.value),
                  static_cast<unsigned long long>(t.mask));
    out += buf;
  }
  return out + ")";
}

Scalar join(const Scalar& a, const Scalar& b) {
  Scalar s;
  s.t = tnum_union(a.t, b.t);
  s.umin = std::min(a.umin, b.umin);
  s.umax = std::max(a.umax, b.umax);
  s.smin = std::min(a.smin, b.smin);
  s.smax = std::max(a.smax, b.smax);
  s.u32min = std::min(a.u32min, b.u32min);
  s.u32max = std::max(a.u32max, b.u32max);
  s.s32min = std::min(a.s32min, b.s32min);
  s.s32max = std::max(a.s32max, b.s32max);
  s.sync();
  return s;
}

Thresholds Thresholds::of(const std::vector<uint64_t>& constants) {
  Thresholds t;
  for (const uint64_t c : constants)
    for (const uint64_t v : {c - 1, c, c + 1}) {
      t.u64.push_back(v);
      t.s64.push_back(static_cast<int64_t>(v));
      t.u32.push_back(static_cast<uint32_t>(v));
      t.s32.push_back(static_cast<int32_t>(static_cast<uint32_t>(v)));
    }
  auto tidy = [](auto& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  tidy(t.u64), tidy(t.s64), tidy(t.u32), tidy(t.s32);
  return t;
}

namespace {

// The least threshold at or above v (the limit when none is), the greatest at or below.
template <typename T>
T up_to(const std::vector<T>* ts, T v) {
  if (ts)
    if (auto it = std::lower_bound(ts->begin(), ts->end(), v); it != ts->end()) return *it;
  return std::numeric_limits<T>::max();
}
template <typename T>
T down_to(const std::vector<T>* ts, T v) {
  if (ts)
    if (auto it = std::upper_bound(ts->begin(), ts->end(), v); it != ts->begin()) return *std::prev(it);
  return std::numeric_limits<T>::min();
}

}  // namespace

Scalar widen(const Scalar& old, const Scalar& next, const Thresholds* th) {
  const Scalar j = join(old, next);
  Scalar s;
  s.t = j.t == old.t ? j.t : Tnum{};  // else its bits would hold the bounds back
  s.umin = j.umin < old.umin ? down_to(th ? &th->u64 : nullptr, j.umin) : j.umin;
  s.umax = j.umax > old.umax ? up_to(th ? &th->u64 : nullptr, j.umax) : j.umax;
  s.smin = j.smin < old.smin ? down_to(th ? &th->s64 : nullptr, j.smin) : j.smin;
  s.smax = j.smax > old.smax ? up_to(th ? &th->s64 : nullptr, j.smax) : j.smax;
  s.u32min = j.u32min < old.u32min ? down_to(th ? &th->u32 : nullptr, j.u32min) : j.u32min;
  s.u32max = j.u32max > old.u32max ? up_to(th ? &th->u32 : nullptr, j.u32max) : j.u32max;
  s.s32min = j.s32min < old.s32min ? down_to(th ? &th->s32 : nullptr, j.s32min) : j.s32min;
  s.s32max = j.s32max > old.s32max ? up_to(th ? &th->s32 : nullptr, j.s32max) : j.s32max;
  s.sync();
  return s;
}

// ---- ALU --------------------------------------------------------------------------------------
namespace {

Scalar add(const Scalar& a, const Scalar& b) {
  Scalar s;
  s.t = tnum_add(a.t, b.t);
  uint64_t lo, hi;
  if (!__builtin_add_overflow(a.umin, b.umin, &lo) && !__builtin_add_overflow(a.umax, b.umax, &hi)) s.umin = lo, s.umax = hi;
  int64_t slo, shi;
  if (!__builtin_add_overflow(a.smin, b.smin, &slo) && !__builtin_add_overflow(a.smax, b.smax, &shi)) s.smin = slo, s.smax = shi;
  s.sync();
  return s;
}

Scalar sub(const Scalar& a, const Scalar& b) {
  Scalar s;
  s.t = tnum_sub(a.t, b.t);
  if (a.umin >= b.umax) s.umin = a.umin - b.umax, s.umax = a.umax - b.umin;
  int64_t slo, shi;
  if (!__builtin_sub_overflow(a.smin, b.smax, &slo) && !__builtin_sub_overflow(a.smax, b.smin, &shi)) s.smin = slo, s.smax = shi;
  s.sync();
  return s;
}

Scalar mul(const Scalar& a, const Scalar& b) {
  if (a.is_const() && b.is_const()) return Scalar::constant(a.value() * b.value());
  Scalar s;
  uint64_t hi;
  if (!__builtin_mul_overflow(a.umax, b.umax, &hi)) s.umin = a.umin * b.umin, s.umax = hi;
  s.sync();
  return s;
}

Scalar shift(uint8_t op, const Scalar& a, const Scalar& b, unsigned width) {
  // Engines mask the shift amount to the operand width, as the interpreter does.
  if (!b.is_const()) {
    // a few possible amounts: the union of each shift
    if (b.umax < width && b.umax - b.umin <= 16) {
      Scalar out = shift(op, a, Scalar::constant(b.umin), width);
      for (uint64_t k = b.umin + 1; k <= b.umax; ++k) out = join(out, shift(op, a, Scalar::constant(k), width));
      return out;
    }
    if (op == 0x70) return Scalar::urange(0, a.umax);  // a right shift never grows the value
    return Scalar::unknown();
  }
  const unsigned k = static_cast<unsigned>(b.value() & (width - 1));
  Scalar s;
  switch (op) {
    case 0x60:  // lsh
      s.t = {a.t.value << k, a.t.mask << k};
      if (k == 0 || a.umax <= (kU64Max >> k)) s.umin = a.umin << k, s.umax = a.umax << k;
      break;
    case 0x70:  // rsh
      s.t = {a.t.value >> k, a.t.mask >> k};
      s.umin = a.umin >> k, s.umax = a.umax >> k;
      break;
    default:  // arsh
      s.t = {static_cast<uint64_t>(static_cast<int64_t>(a.t.value) >> k),
             static_cast<uint64_t>(static_cast<int64_t>(a.t.mask) >> k)};
      s.smin = a.smin >> k, s.smax = a.smax >> k;
      break;
  }
  s.sync();
  return s;
}

Scalar bitwise(uint8_t op, const Scalar& a, const Scalar& b) {
  Scalar s;
  switch (op) {
    case 0x50:  // and
      s.t = tnum_and(a.t, b.t);
      s.umax = std::min(a.umax, b.umax);
      if (a.smin >= 0 || b.smin >= 0) s.smin = 0;
      break;
    case 0x40:  // or
      s.t = tnum_or(a.t, b.t);
      s.umin = std::max(a.umin, b.umin);
      break;
    default:  // xor
      s.t = tnum_xor(a.t, b.t);
      break;
  }
  s.sync();
  return s;
}

Scalar divmod(uint8_t op, const Scalar& a, const Scalar& b) {
  // Division by zero is defined in BPF: x / 0 = 0 and x % 0 = x.
  if (op == 0x30) {
    if (b.umin == 0) return Scalar::urange(0, a.umax);
    return Scalar::urange(a.umin / b.umax, a.umax / b.umin);
  }
  if (b.umin == 0) return Scalar::urange(0, a.umax);
  return Scalar::urange(0, std::min(a.umax, b.umax - 1));
}

Scalar alu(uint8_t op, const Scalar& a, const Scalar& b, bool is_signed, unsigned width) {
  switch (op) {
    case 0x00: return add(a, b);
    case 0x10: return sub(a, b);
    case 0x20: return mul(a, b);
    case 0x30: case 0x90:
      if (is_signed) return Scalar::unknown();
      return divmod(op, a, b);
    case 0x40: case 0x50: case 0xa0: return bitwise(op, a, b);
    case 0x60: case 0x70: case 0xc0: return shift(op, a, b, width);
    case 0x80: return sub(Scalar::constant(0), a);
    case 0xb0: return b;
    default: return Scalar::unknown();
  }
}

}  // namespace

Scalar alu64(uint8_t op, const Scalar& a, const Scalar& b, bool is_signed) { return alu(op, a, b, is_signed, 64); }

Scalar alu32(uint8_t op, const Scalar& a, const Scalar& b, bool is_signed) {
  if (op == 0xc0) return truncate(shift(op, sign_extend(a, 4), b, 32), 4);
  return truncate(alu(op, truncate(a, 4), truncate(b, 4), is_signed, 32), 4);
}

Scalar truncate(const Scalar& a, unsigned bytes) {
  if (bytes >= 8) return a;
  const uint64_t m = (1ull << (bytes * 8)) - 1;
  Scalar s;
  s.t = {a.t.value & m, a.t.mask & m};
  if ((a.umin & ~m) == (a.umax & ~m)) s.umin = a.umin & m, s.umax = a.umax & m;
  else s.umin = 0, s.umax = m;
  if (bytes == 4) {
    // the 32-bit views are exactly the truncated value
    s.umin = std::max<uint64_t>(s.umin, a.u32min);
    s.umax = std::min<uint64_t>(s.umax, a.u32max);
  }
  s.sync();
  return s;
}

Scalar sign_extend(const Scalar& a, unsigned bytes) {
  if (bytes >= 8) return a;
  const unsigned bits = bytes * 8;
  const Scalar low = truncate(a, bytes);
  const uint64_t sign = 1ull << (bits - 1);
  if (low.umax < sign) return low;  // stays non-negative: unchanged
  if (low.umin >= sign) {
    const uint64_t ext = ~((1ull << bits) - 1);
    Scalar s;
    s.umin = low.umin | ext, s.umax = low.umax | ext;
    s.sync();
    return s;
  }
  return Scalar::srange(-static_cast<int64_t>(sign), static_cast<int64_t>(sign - 1));
}

Scalar byte_swap(const Scalar& a, unsigned bytes) {
  if (a.is_const()) {
    uint64_t v = a.value(), r = 0;
    for (unsigned i = 0; i < bytes; ++i) r |= ((v >> (8 * i)) & 0xff) << (8 * (bytes - 1 - i));
    return Scalar::constant(r);
  }
  return Scalar::bits(bytes * 8);
}

// ---- comparisons ------------------------------------------------------------------------------
namespace {

// One width's view of a scalar: unsigned and signed bounds, in 64-bit variables.
struct View {
  uint64_t umin, umax;
  int64_t smin, smax;
};

View view(const Scalar& s, bool is32) {
  if (is32) return {s.u32min, s.u32max, s.s32min, s.s32max};
  return {s.umin, s.umax, s.smin, s.smax};
}

void store(Scalar& s, const View& v, bool is32) {
  if (v.umin > v.umax || v.smin > v.smax) {
    s.umin = 1, s.umax = 0;
    return;
  }
  if (is32) {
    s.u32min = static_cast<uint32_t>(v.umin), s.u32max = static_cast<uint32_t>(v.umax);
    s.s32min = static_cast<int32_t>(v.smin), s.s32max = static_cast<int32_t>(v.smax);
  } else {
    s.umin = v.umin, s.umax = v.umax, s.smin = v.smin, s.smax = v.smax;
  }
}

// a < b (strict) or a <= b, unsigned.
void refine_ult(View& a, View& b, bool strict) {
  const uint64_t d = strict ? 1 : 0;
  if (b.umax < d || a.umin > kU64Max - d) {
    a.umin = 1, a.umax = 0;
    return;
  }
  a.umax = std::min(a.umax, b.umax - d);
  b.umin = std::max(b.umin, a.umin + d);
}

void refine_slt(View& a, View& b, bool strict, int64_t smin_limit, int64_t smax_limit) {
  const int64_t d = strict ? 1 : 0;
  if (b.smax < smin_limit + d || a.smin > smax_limit - d) {
    a.smin = 1, a.smax = 0;
    return;
  }
  a.smax = std::min(a.smax, b.smax - d);
  b.smin = std::max(b.smin, a.smin + d);
}

void refine_ne(View& a, const View& b) {
  if (b.umin != b.umax) return;
  const uint64_t c = b.umin;
  if (a.umin == c && a.umax == c) {
    a.umin = 1, a.umax = 0;
    return;
  }
  if (a.umin == c) ++a.umin;
  if (a.umax == c) --a.umax;
  const int64_t sc = b.smin;
  if (b.smin == b.smax) {
    if (a.smin == sc && a.smax > sc) ++a.smin;
    if (a.smax == sc && a.smin < sc) --a.smax;
  }
}

}  // namespace

void refine(Scalar& a, Scalar& b, Cmp op, bool is32) {
  const uint64_t width_mask = is32 ? 0xffffffffull : kU64Max;
  if (op == Cmp::Eq) {
    // both hold the same value: meet everything known about the compared width
    bool conflict = false;
    Tnum ta = a.t, tb = b.t;
    if (is32) ta.mask |= ~width_mask, tb.mask |= ~width_mask, ta.value &= width_mask, tb.value &= width_mask;
    const Tnum m = tnum_meet(ta, tb, conflict);
    View va = view(a, is32), vb = view(b, is32);
    View both{std::max(va.umin, vb.umin), std::min(va.umax, vb.umax), std::max(va.smin, vb.smin), std::min(va.smax, vb.smax)};
    if (conflict) both.umin = 1, both.umax = 0;
    store(a, both, is32);
    store(b, both, is32);
    for (Scalar* s : {&a, &b}) {
      if (s->empty()) continue;
      bool c2 = false;  // m leaves the bits above the compared width unknown
      s->t = tnum_meet(s->t, m, c2);
      if (c2) s->umin = 1, s->umax = 0;
      else s->sync();
    }
    return;
  }
  if (op == Cmp::Set || op == Cmp::NotSet) {
    if (!b.is_const()) return;
    const uint64_t k = b.value() & width_mask;
    if (op == Cmp::Set) {
      if (((a.t.value | a.t.mask) & k) == 0) a.umin = 1, a.umax = 0;
    } else {
      if (a.t.value & k) {
        a.umin = 1, a.umax = 0;
        return;
      }
      a.t.mask &= ~k;
      a.sync();
    }
    return;
  }
  View va = view(a, is32), vb = view(b, is32);
  const int64_t lo = is32 ? INT32_MIN : kS64Min, hi = is32 ? INT32_MAX : kS64Max;
  switch (op) {
    case Cmp::Ne: refine_ne(va, vb), refine_ne(vb, va); break;
    case Cmp::Lt: refine_ult(va, vb, true); break;
    case Cmp::Le: refine_ult(va, vb, false); break;
    case Cmp::Gt: refine_ult(vb, va, true); break;
    case Cmp::Ge: refine_ult(vb, va, false); break;
    case Cmp::Slt: refine_slt(va, vb, true, lo, hi); break;
    case Cmp::Sle: refine_slt(va, vb, false, lo, hi); break;
    case Cmp::Sgt: refine_slt(vb, va, true, lo, hi); break;
    case Cmp::Sge: refine_slt(vb, va, false, lo, hi); break;
    default: break;
  }
  store(a, va, is32);
  store(b, vb, is32);
  if (!a.empty()) a.sync();
  if (!b.empty()) b.sync();
}

}  // namespace ebpfvm::verifier
