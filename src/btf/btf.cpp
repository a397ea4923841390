// BTF parsing. Layout facts come from the kernel's BTF documentation (Documentation/bpf/btf.rst).
#include "btf/btf.hpp"

#include <cstring>

namespace ebpfvm::btf {
namespace {

constexpr uint16_t kMagic = 0xeb9f;
constexpr int kMaxChain = 32;  // longest typedef/const/... chain followed

Error bad(std::string msg) { return make_error(Errc::MalformedObject, "BTF: " + std::move(msg)); }
Error bad_ext(std::string msg) { return make_error(Errc::MalformedObject, "BTF.ext: " + std::move(msg)); }

// A bounds-checked little-endian reader over a byte range.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  bool has(size_t n) const { return pos_ <= b_.size() && b_.size() - pos_ >= n; }
  uint32_t u32() {
    uint32_t v;
    std::memcpy(&v, b_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  size_t pos() const { return pos_; }
  void skip(size_t n) { pos_ += n; }
  bool done() const { return pos_ >= b_.size(); }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

uint32_t rd32(std::span<const uint8_t> b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

// Bytes of kind-specific data that follow a btf_type, per entry of vlen (or fixed).
bool extra_size(Kind k, uint32_t vlen, size_t& out) {
  switch (k) {
    case kInt: case kVar: case kDeclTag: out = 4; return true;
    case kArray: out = 12; return true;
    case kStruct: case kUnion: case kDatasec: case kEnum64: out = 12ull * vlen; return true;
    case kEnum: case kFuncProto: out = 8ull * vlen; return true;
    case kPtr: case kFwd: case kTypedef: case kVolatile: case kConst: case kRestrict: case kFunc:
    case kFloat: case kTypeTag: out = 0; return true;
    default: return false;
  }
}

}  // namespace

std::optional<std::string_view> Btf::string_at(uint32_t off) const {
  if (off >= strings_.size()) return std::nullopt;
  const char* s = reinterpret_cast<const char*>(strings_.data()) + off;
  size_t max = strings_.size() - off;
  size_t len = strnlen(s, max);
  if (len == max) return std::nullopt;  // not terminated inside the section
  return std::string_view(s, len);
}

Result<Btf> Btf::parse(std::span<const uint8_t> bytes) {
  if (bytes.size() < 24) return bad("section is " + std::to_string(bytes.size()) + " bytes, shorter than its header");
  uint16_t magic;
  std::memcpy(&magic, bytes.data(), 2);
  if (magic != kMagic) return bad("bad magic (not little-endian BTF)");
  uint32_t hdr_len = rd32(bytes, 4);
  if (hdr_len < 24 || hdr_len > bytes.size()) return bad("header length " + std::to_string(hdr_len) + " is invalid");
  uint32_t type_off = rd32(bytes, 8), type_len = rd32(bytes, 12), str_off = rd32(bytes, 16), str_len = rd32(bytes, 20);
  const uint64_t body = bytes.size() - hdr_len;
  if (uint64_t{type_off} + type_len > body) return bad("type section runs past the end");
  if (uint64_t{str_off} + str_len > body) return bad("string section runs past the end");
  Btf b;
  b.strings_ = bytes.subspan(hdr_len + str_off, str_len);
  if (str_len == 0 || b.strings_.back() != 0) return bad("string section is empty or not terminated");
  Reader r(bytes.subspan(hdr_len + type_off, type_len));
  while (!r.done()) {
    const uint32_t id = static_cast<uint32_t>(b.types_.size() + 1);
    if (!r.has(12)) return bad("type " + std::to_string(id) + " is truncated");
    Type t;
    uint32_t name_off = r.u32(), info = r.u32();
    t.size_or_type = r.u32();
    t.kind = static_cast<Kind>((info >> 24) & 0x1f);
    t.vlen = info & 0xffff;
    t.kind_flag = (info >> 31) != 0;
    auto name = b.string_at(name_off);
    if (!name) return bad("type " + std::to_string(id) + " has a name offset outside the strings");
    t.name = *name;
    size_t extra = 0;
    if (!extra_size(t.kind, t.vlen, extra)) return bad("type " + std::to_string(id) + " has unknown kind " + std::to_string(t.kind));
    if (!r.has(extra)) return bad("type " + std::to_string(id) + " is truncated");
    if (t.kind == kArray) {
      t.elem_type = r.u32();
      r.u32();  // index type
      t.nelems = r.u32();
    } else if (t.kind == kStruct || t.kind == kUnion || t.kind == kDatasec) {
      for (uint32_t i = 0; i < t.vlen; ++i) {
        Member m;
        uint32_t first = r.u32();
        if (t.kind == kDatasec) {
          m.type = first;
          m.offset = r.u32();
          m.size = r.u32();
        } else {
          auto mn = b.string_at(first);
          if (!mn) return bad("member name of type " + std::to_string(id) + " is outside the strings");
          m.name = *mn;
          m.type = r.u32();
          uint32_t off = r.u32();
          m.offset = t.kind_flag ? (off & 0xffffff) : off;  // kind_flag: bitfield size in the top 8 bits
        }
        t.members.push_back(m);
      }
    } else {
      r.skip(extra);
    }
    b.types_.push_back(std::move(t));
    if (b.types_.size() > 1'000'000) return bad("more than a million types");
  }
  return b;
}

uint32_t Btf::skip_modifiers(uint32_t id, bool through_var) const {
  for (int i = 0; i < kMaxChain; ++i) {
    const Type* t = type(id);
    if (!t) return 0;
    switch (t->kind) {
      case kTypedef: case kVolatile: case kConst: case kRestrict: case kTypeTag:
        id = t->size_or_type;
        break;
      case kVar:
        if (!through_var) return id;
        id = t->size_or_type;
        break;
      default: return id;
    }
  }
  return 0;
}

std::optional<uint64_t> Btf::size_of(uint32_t id) const {
  uint64_t mult = 1;
  for (int i = 0; i < kMaxChain; ++i) {
    id = skip_modifiers(id, true);
    const Type* t = type(id);
    if (!t) return std::nullopt;
    switch (t->kind) {
      case kInt: case kStruct: case kUnion: case kEnum: case kEnum64: case kFloat: case kDatasec:
        return mult * t->size_or_type;
      case kPtr: return mult * 8;
      case kArray:
        mult *= t->nelems;
        if (mult > (1ull << 32)) return std::nullopt;
        id = t->elem_type;
        break;
      default: return std::nullopt;
    }
  }
  return std::nullopt;
}

const Type* Btf::datasec(std::string_view name) const {
  for (const Type& t : types_)
    if (t.kind == kDatasec && t.name == name) return &t;
  return nullptr;
}

namespace {

// One of the three record groups of .BTF.ext: per section, a count and fixed-size records.
template <class Fn>
Result<void> walk_ext_group(const Btf& b, std::span<const uint8_t> g, const char* what, size_t min_rec, Fn&& fn) {
  if (g.empty()) return {};
  if (g.size() < 4) return bad_ext(std::string(what) + " is truncated");
  uint32_t rec_size = rd32(g, 0);
  if (rec_size < min_rec || rec_size > 1024 || rec_size % 4)
    return bad_ext(std::string(what) + " record size " + std::to_string(rec_size) + " is invalid");
  size_t pos = 4;
  while (pos < g.size()) {
    if (g.size() - pos < 8) return bad_ext(std::string(what) + " section header is truncated");
    auto sec = b.string_at(rd32(g, pos));
    uint32_t n = rd32(g, pos + 4);
    pos += 8;
    if (!sec) return bad_ext(std::string(what) + " section name is outside the strings");
    if (uint64_t{n} * rec_size > g.size() - pos) return bad_ext(std::string(what) + " records run past the end");
    for (uint32_t i = 0; i < n; ++i, pos += rec_size)
      if (auto r = fn(*sec, g.subspan(pos, rec_size)); !r) return r;
  }
  return {};
}

SectionExt& ext_for(std::vector<SectionExt>& out, std::string_view sec) {
  for (SectionExt& s : out)
    if (s.section == sec) return s;
  out.push_back({sec, {}, {}, {}});
  return out.back();
}

}  // namespace

Result<std::vector<SectionExt>> Btf::parse_ext(std::span<const uint8_t> ext) const {
  if (ext.size() < 24) return bad_ext("section is shorter than its header");
  uint16_t magic;
  std::memcpy(&magic, ext.data(), 2);
  if (magic != kMagic) return bad_ext("bad magic");
  uint32_t hdr_len = rd32(ext, 4);
  if (hdr_len < 24 || hdr_len > ext.size()) return bad_ext("header length is invalid");
  auto body = ext.subspan(hdr_len);
  auto group = [&](uint32_t off_at) -> std::optional<std::span<const uint8_t>> {
    if (off_at + 8 > hdr_len) return std::span<const uint8_t>{};
    uint32_t off = rd32(ext, off_at), len = rd32(ext, off_at + 4);
    if (uint64_t{off} + len > body.size()) return std::nullopt;
    return body.subspan(off, len);
  };
  auto funcs = group(8), lines = group(16), core = group(24);
  if (!funcs || !lines || !core) return bad_ext("a record group runs past the end");
  std::vector<SectionExt> out;
  auto r = walk_ext_group(*this, *funcs, "func_info", 8, [&](std::string_view sec, std::span<const uint8_t> rec) -> Result<void> {
    ext_for(out, sec).funcs.push_back({rd32(rec, 0), rd32(rec, 4)});
    return {};
  });
  if (!r) return r.error();
  r = walk_ext_group(*this, *lines, "line_info", 16, [&](std::string_view sec, std::span<const uint8_t> rec) -> Result<void> {
    auto file = string_at(rd32(rec, 4));
    auto src = string_at(rd32(rec, 8));
    if (!file || !src) return bad_ext("line_info string is outside the strings");
    uint32_t lc = rd32(rec, 12);
    ext_for(out, sec).lines.push_back({rd32(rec, 0), *file, *src, lc >> 10, lc & 0x3ff});
    return {};
  });
  if (!r) return r.error();
  r = walk_ext_group(*this, *core, "core_relo", 16, [&](std::string_view sec, std::span<const uint8_t> rec) -> Result<void> {
    auto access = string_at(rd32(rec, 8));
    if (!access) return bad_ext("CO-RE access string is outside the strings");
    ext_for(out, sec).core.push_back({rd32(rec, 0), rd32(rec, 4), *access, rd32(rec, 12)});
    return {};
  });
  if (!r) return r.error();
  return out;
}

}  // namespace ebpfvm::btf
