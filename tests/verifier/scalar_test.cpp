// The numeric domain must over-approximate: for random abstract values and random concrete members
// of them, every operation's concrete result is a member of its abstract result, and a comparison
// refinement keeps every pair of members for which the comparison holds.
#include <catch2/catch.hpp>
#include <random>

#include "verifier/scalar.hpp"

using namespace ebpfvm::verifier;

namespace {

bool contains(const Scalar& s, uint64_t v) { return s.contains(v); }

// A random abstract value and a random member of it.
std::pair<Scalar, uint64_t> sample(std::mt19937_64& rng) {
  const uint64_t interesting[] = {0, 1, 2, 7, 8, 14, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
                                  0xffffffff, 0x100000000, 0x7fffffffffffffff, 0x8000000000000000, ~0ull, ~0ull - 1,
                                  0xffffffffffffff80, 0xffffffffffff8000, 0xffffffff80000000};
  auto value = [&] {
    switch (rng() % 4) {
      case 0: return interesting[rng() % std::size(interesting)];
      case 1: return rng() % 64;
      case 2: return static_cast<uint64_t>(-static_cast<int64_t>(rng() % 64));
      default: return static_cast<uint64_t>(rng());
    }
  };
  const uint64_t a = value(), b = value();
  Scalar s;
  switch (rng() % 5) {
    case 0: s = Scalar::constant(a); break;
    case 1: s = Scalar::urange(std::min(a, b), std::max(a, b)); break;
    case 2: s = Scalar::srange(std::min<int64_t>(a, b), std::max<int64_t>(a, b)); break;
    case 3: s = truncate(Scalar::urange(std::min(a, b), std::max(a, b)), 1u << (rng() % 4)); break;
    default: s = alu64(0x50, Scalar::unknown(), Scalar::constant(b), false); break;  // x & mask
  }
  // a member: try the bounds and random points until one fits
  const uint64_t candidates[] = {s.umin, s.umax, static_cast<uint64_t>(s.smin), static_cast<uint64_t>(s.smax), s.t.value,
                                 s.t.value | s.t.mask, a, b};
  for (int tries = 0; tries < 64; ++tries) {
    const uint64_t v = tries < 8 ? candidates[tries] : s.t.value | (rng() & s.t.mask);
    if (contains(s, v)) return {s, v};
  }
  return {Scalar::constant(a), a};
}

// sdiv and smod as RFC 9669 defines them: x s/ 0 = 0 and x s% 0 = x (the destination unchanged,
// its upper half zeroed for 32-bit operations); INT_MIN s/ -1 = INT_MIN, INT_MIN s% -1 = 0.
uint64_t signed_divmod(uint8_t op, uint64_t a, uint64_t b, bool is32) {
  const int64_t sa = is32 ? static_cast<int32_t>(a) : static_cast<int64_t>(a);
  const int64_t sb = is32 ? static_cast<int32_t>(b) : static_cast<int64_t>(b);
  const int64_t min = is32 ? INT32_MIN : INT64_MIN;
  int64_t r;
  if (sb == 0) r = op == 0x30 ? 0 : sa;
  else if (sb == -1) r = op == 0x30 ? (sa == min ? min : -sa) : 0;
  else r = op == 0x30 ? sa / sb : sa % sb;
  return is32 ? static_cast<uint32_t>(r) : static_cast<uint64_t>(r);
}

uint64_t concrete(uint8_t op, uint64_t a, uint64_t b, bool is32, bool is_signed = false) {
  const unsigned width = is32 ? 32 : 64;
  const uint64_t m = is32 ? 0xffffffffull : ~0ull;
  a &= m, b &= m;
  if (is_signed) return signed_divmod(op, a, b, is32);
  uint64_t r = 0;
  switch (op) {
    case 0x00: r = a + b; break;
    case 0x10: r = a - b; break;
    case 0x20: r = a * b; break;
    case 0x30: r = b ? a / b : 0; break;
    case 0x40: r = a | b; break;
    case 0x50: r = a & b; break;
    case 0x60: r = a << (b & (width - 1)); break;
    case 0x70: r = a >> (b & (width - 1)); break;
    case 0x80: r = 0 - a; break;
    case 0x90: r = b ? a % b : a; break;
    case 0xa0: r = a ^ b; break;
    case 0xb0: r = b; break;
    case 0xc0:
      r = is32 ? static_cast<uint32_t>(static_cast<int32_t>(a) >> (b & 31))
               : static_cast<uint64_t>(static_cast<int64_t>(a) >> (b & 63));
      break;
  }
  return r & m;
}

bool holds(Cmp c, uint64_t a, uint64_t b, bool is32) {
  if (is32) a = static_cast<uint32_t>(a), b = static_cast<uint32_t>(b);
  const int64_t sa = is32 ? static_cast<int32_t>(a) : static_cast<int64_t>(a);
  const int64_t sb = is32 ? static_cast<int32_t>(b) : static_cast<int64_t>(b);
  switch (c) {
    case Cmp::Eq: return a == b;
    case Cmp::Ne: return a != b;
    case Cmp::Gt: return a > b;
    case Cmp::Ge: return a >= b;
    case Cmp::Lt: return a < b;
    case Cmp::Le: return a <= b;
    case Cmp::Sgt: return sa > sb;
    case Cmp::Sge: return sa >= sb;
    case Cmp::Slt: return sa < sb;
    case Cmp::Sle: return sa <= sb;
    case Cmp::Set: return (a & b) != 0;
    case Cmp::NotSet: return (a & b) == 0;
  }
  return false;
}

}  // namespace

TEST_CASE("verifier domain: ALU results contain every concrete result") {
  std::mt19937_64 rng(7);
  const uint8_t ops[] = {0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0};
  for (int i = 0; i < 200000; ++i) {
    auto [a, x] = sample(rng);
    auto [b, y] = sample(rng);
    const uint8_t op = ops[rng() % std::size(ops)];
    const bool is32 = rng() % 2;
    const bool is_signed = (op == 0x30 || op == 0x90) && rng() % 2;  // sdiv, smod
    const Scalar r = is32 ? alu32(op, a, b, is_signed) : alu64(op, a, b, is_signed);
    const uint64_t want = concrete(op, x, y, is32, is_signed);
    if (!contains(r, want)) {
      INFO("op " << int(op) << (is_signed ? " signed" : "") << (is32 ? " (32-bit)" : "") << ": " << a.str() << " [" << x << "] , " << b.str() << " [" << y
                 << "] -> " << r.str() << " misses " << want);
      FAIL();
    }
  }
}

// Every operation over every pair of boundary values (0, 1, -1, the minimum and maximum of each
// signed width, values with the sign bit of each width set), as constants and as the ranges they
// bound: the transfer functions the ISA v4 audit covers (sdiv and smod with INT_MIN / -1 and
// division by zero, movsx and ldsx of each width, byte swaps, 32-bit operations after 64-bit ones).
TEST_CASE("verifier domain: every operation over every pair of boundary values, as constants and as ranges") {
  std::vector<uint64_t> edges;
  for (uint64_t v : {0ull, 1ull, 2ull, 0x7full, 0x80ull, 0xffull, 0x7fffull, 0x8000ull, 0xffffull, 0x7fffffffull, 0x80000000ull,
                     0xffffffffull, 0x100000000ull, 0x7fffffffffffffffull})
    edges.push_back(v), edges.push_back(0 - v);
  const uint8_t ops[] = {0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0};
  auto check_op = [](uint8_t op, bool is32, bool is_signed, const Scalar& a, uint64_t x, const Scalar& b, uint64_t y) {
    const Scalar r = is32 ? alu32(op, a, b, is_signed) : alu64(op, a, b, is_signed);
    const uint64_t want = concrete(op, x, y, is32, is_signed);
    if (!r.contains(want))
      FAIL("op " << int(op) << (is_signed ? " signed" : "") << (is32 ? " (32-bit)" : "") << ": " << a.str() << " [" << x
                 << "] , " << b.str() << " [" << y << "] -> " << r.str() << " misses " << want);
    if (a.is_const() && b.is_const() && !is_signed && r.is_const() && r.value() != want)
      FAIL("op " << int(op) << (is32 ? " (32-bit)" : "") << " of constants " << x << ", " << y << " gives " << r.value());
  };
  size_t checked = 0;
  for (uint64_t x : edges)
    for (uint64_t y : edges)
      for (uint8_t op : ops)
        for (bool is32 : {false, true})
          for (bool is_signed : {false, true}) {
            if (is_signed && op != 0x30 && op != 0x90) continue;
            check_op(op, is32, is_signed, Scalar::constant(x), x, Scalar::constant(y), y);
            // the ranges from x to y, unsigned and signed, with each end as the member
            const Scalar u = Scalar::urange(std::min(x, y), std::max(x, y));
            const Scalar sr = Scalar::srange(std::min<int64_t>(x, y), std::max<int64_t>(x, y));
            for (uint64_t member : {x, y}) {
              check_op(op, is32, is_signed, u, member, Scalar::constant(y), y);
              check_op(op, is32, is_signed, Scalar::constant(x), x, sr, member);
            }
            checked += 5;
          }
  for (uint64_t x : edges)
    for (unsigned bytes : {1u, 2u, 4u, 8u}) {
      const unsigned bits = bytes * 8;
      const uint64_t low = bits == 64 ? x : x & ((1ull << bits) - 1);
      const uint64_t sext = bits == 64 ? x : static_cast<uint64_t>(static_cast<int64_t>(x << (64 - bits)) >> (64 - bits));
      for (const Scalar& a : {Scalar::constant(x), Scalar::urange(std::min<uint64_t>(x, 1), std::max<uint64_t>(x, 1)),
                              Scalar::srange(std::min<int64_t>(x, -1), std::max<int64_t>(x, -1))}) {
        INFO(a.str() << " [" << x << "], " << bytes << " bytes");
        REQUIRE(truncate(a, bytes).contains(low));
        REQUIRE(sign_extend(a, bytes).contains(sext));               // movsx, ldsx (64-bit)
        REQUIRE(truncate(sign_extend(a, bytes), 4).contains(static_cast<uint32_t>(sext)));  // 32-bit movsx
        if (bytes >= 2) {
          uint64_t swapped = 0;
          for (unsigned k = 0; k < bytes; ++k) swapped |= ((x >> (8 * k)) & 0xff) << (8 * (bytes - 1 - k));
          REQUIRE(byte_swap(a, bytes).contains(swapped));
        }
        if (a.is_const()) {
          CHECK(sign_extend(a, bytes) == Scalar::constant(sext));
          CHECK(truncate(a, bytes) == Scalar::constant(low));
        }
      }
    }
  CHECK(checked > 100'000);
}

TEST_CASE("verifier domain: joins, truncation, sign extension and byte swaps contain their members") {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100000; ++i) {
    auto [a, x] = sample(rng);
    auto [b, y] = sample(rng);
    const Scalar j = join(a, b);
    REQUIRE(contains(j, x));
    REQUIRE(contains(j, y));
    const Scalar w = widen(a, b);
    REQUIRE(contains(w, x));
    REQUIRE(contains(w, y));
    const unsigned bytes = 1u << (rng() % 4);
    const uint64_t mask = bytes == 8 ? ~0ull : (1ull << (bytes * 8)) - 1;
    REQUIRE(contains(truncate(a, bytes), x & mask));
    const unsigned bits = bytes * 8;
    const uint64_t sext = bits == 64 ? x : static_cast<uint64_t>(static_cast<int64_t>(x << (64 - bits)) >> (64 - bits));
    INFO(a.str() << " [" << x << "] sign-extended from " << bytes);
    REQUIRE(contains(sign_extend(a, bytes), sext));
    if (bytes >= 2) {
      uint64_t swapped = 0;
      for (unsigned k = 0; k < bytes; ++k) swapped |= ((x >> (8 * k)) & 0xff) << (8 * (bytes - 1 - k));
      REQUIRE(contains(byte_swap(a, bytes), swapped));
    }
  }
}

TEST_CASE("verifier domain: a refined branch keeps every pair for which the comparison holds") {
  std::mt19937_64 rng(13);
  const Cmp cmps[] = {Cmp::Eq, Cmp::Ne, Cmp::Gt, Cmp::Ge, Cmp::Lt, Cmp::Le, Cmp::Sgt, Cmp::Sge, Cmp::Slt, Cmp::Sle, Cmp::Set, Cmp::NotSet};
  int emptied = 0;
  for (int i = 0; i < 200000; ++i) {
    auto [a, x] = sample(rng);
    auto [b, y] = sample(rng);
    const Cmp c = cmps[rng() % std::size(cmps)];
    const bool is32 = rng() % 2;
    Scalar ra = a, rb = b;
    refine(ra, rb, c, is32);
    if (holds(c, x, y, is32)) {
      INFO(a.str() << " [" << x << "] op " << int(c) << (is32 ? " (32)" : "") << " " << b.str() << " [" << y << "] -> "
                   << ra.str() << " , " << rb.str());
      REQUIRE(contains(ra, x));
      REQUIRE(contains(rb, y));
    }
    emptied += ra.empty() || rb.empty();
  }
  CHECK(emptied > 1000);  // constants and disjoint ranges do make branches dead
}

TEST_CASE("verifier domain: what the views know is exact where it can be") {
  CHECK(Scalar::constant(5).str() == "5");
  const Scalar byte = alu64(0x50, Scalar::unknown(), Scalar::constant(0xff), false);
  CHECK(byte.umax == 255);
  CHECK(byte.smin == 0);
  Scalar i = byte, limit = Scalar::constant(10);
  refine(i, limit, Cmp::Lt, false);
  CHECK(i.umax == 9);
  const Scalar shifted = alu64(0x60, i, Scalar::constant(2), false);
  CHECK(shifted.umax == 36);
  CHECK((shifted.t.value | shifted.t.mask) == 0x3c);
  Scalar u32 = Scalar::bits(32), zero = Scalar::constant(0);
  refine(u32, zero, Cmp::Sgt, true);  // as a 32-bit signed value, above 0
  CHECK(u32.umin == 1);
  CHECK(u32.umax == 0x7fffffff);
}
