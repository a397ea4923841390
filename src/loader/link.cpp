// Linking one program: its function first, then every subprogram it reaches (bpf-to-bpf calls and
// callbacks passed by address), with relocations turned into lddw map_idx / map_value_idx forms and
// call offsets recomputed for the new layout.
#include <elf.h>

#include <map>

#include "loader/object_data.hpp"

namespace ebpfvm::detail {
namespace {

constexpr uint8_t kLddw = 0x18, kCall = 0x85;
constexpr uint8_t kPseudoCall = 1, kPseudoKfunc = 2, kPseudoFunc = 4, kPseudoMapIdx = 5, kPseudoMapIdxValue = 6;

struct Target {
  uint32_t section;
  uint32_t slot;
};

class Linker {
 public:
  Linker(const ObjectData& o) : o_(o) {}

  Result<Linked> link(size_t fn) {
    place(fn);
    for (size_t i = 0; i < placed_.size(); ++i)
      if (auto r = copy_function(placed_[i]); !r) return r.error();
    for (const Fixup& f : fixups_) {
      auto idx = function_at(f.target);
      if (!idx) return idx.error();
      const Function& callee = o_.functions[*idx];
      if (!where_.count(*idx)) place(*idx);  // cannot happen: copy_function placed it
      const int64_t dest = int64_t{where_[*idx]} + (f.target.slot - callee.start);
      isa::RawInsn raw = isa::read_raw(&out_.bytes[f.out_pc * 8]);
      raw.imm = static_cast<int32_t>(dest - (int64_t{f.out_pc} + 1));
      isa::write_raw(raw, &out_.bytes[f.out_pc * 8]);
    }
    return std::move(out_);
  }

 private:
  struct Fixup {
    uint32_t out_pc;
    Target target;
  };

  Error fail(uint32_t sec, uint32_t slot, const std::string& msg) const {
    return o_.error_at(Errc::MalformedObject, sec, slot, msg);
  }

  void place(size_t fn) {
    const Function& f = o_.functions[fn];
    where_[fn] = static_cast<uint32_t>(out_.bytes.size() / 8);
    placed_.push_back(fn);
    out_.bytes.resize(out_.bytes.size() + size_t{f.end - f.start} * 8);
    for (uint32_t s = f.start; s < f.end; ++s) out_.origin.emplace_back(f.section, s);
  }

  // The function holding the target. A target inside a function, not at its start, is one the
  // symbols do not mark (hand-written code, the conformance suite's call_local): that function is
  // linked whole and the call lands inside it, as the kernel takes such code.
  Result<size_t> function_at(Target t) const {
    for (size_t i = 0; i < o_.functions.size(); ++i) {
      const Function& f = o_.functions[i];
      if (f.section == t.section && t.slot >= f.start && t.slot < f.end) return i;
    }
    return o_.error_at(Errc::MalformedObject, t.section, t.slot, "call target is not in any function");
  }

  Result<void> need(Target t) {
    auto idx = function_at(t);
    if (!idx) return idx.error();
    if (!where_.count(*idx)) place(*idx);
    return {};
  }

  const elf::Reloc* reloc_at(uint32_t sec, uint32_t slot) const {
    auto s = o_.relocs.find(sec);
    if (s == o_.relocs.end()) return nullptr;
    auto r = s->second.find(uint64_t{slot} * 8);
    return r == s->second.end() ? nullptr : &r->second;
  }

  // An lddw relocated against a symbol: a map, global data, or a function (a callback address).
  Result<std::optional<Target>> relocate_lddw(uint32_t sec, uint32_t slot, const elf::Reloc& r, isa::RawInsn& lo,
                                              isa::RawInsn& hi) {
    const elf::Symbol& sym = o_.file.symbols()[r.sym];
    // REL keeps the addend in imm; RELA has it in the relocation (and imm is normally 0).
    const int64_t addend = int64_t{lo.imm} + r.addend;
    if (sym.shndx == SHN_UNDEF)
      return fail(sec, slot, "lddw refers to extern '" + sym.name + "' (kconfig and ksym externs are not supported)");
    const elf::Section* target = o_.file.section(sym.shndx);
    if (!target) return fail(sec, slot, "lddw refers to symbol '" + sym.name + "' in a section that does not exist");
    if (sym.shndx == o_.btf_maps_section || sym.shndx == o_.legacy_maps_section) {
      for (size_t i = 0; i < o_.maps.size(); ++i) {
        const MapDecl& d = o_.maps[i];
        if (d.section == sym.shndx && d.source != MapDecl::Source::Data && static_cast<int64_t>(d.offset) == static_cast<int64_t>(sym.value) + addend) {
          lo.src = kPseudoMapIdx;
          lo.imm = static_cast<int32_t>(i);
          hi.imm = 0;
          return std::optional<Target>{};
        }
      }
      return fail(sec, slot, "lddw refers to '" + sym.name + "', which is not a map definition");
    }
    for (size_t i = 0; i < o_.maps.size(); ++i) {
      const MapDecl& d = o_.maps[i];
      if (d.source != MapDecl::Source::Data || d.section != sym.shndx) continue;
      const int64_t off = static_cast<int64_t>(sym.value) + addend;
      if (off < 0 || static_cast<uint64_t>(off) >= d.spec.value_size)
        return fail(sec, slot, "lddw refers to offset " + std::to_string(off) + " of " + target->name + ", outside its " +
                                   std::to_string(d.spec.value_size) + " bytes");
      lo.src = kPseudoMapIdxValue;
      lo.imm = static_cast<int32_t>(i);
      hi.imm = static_cast<int32_t>(off);
      return std::optional<Target>{};
    }
    if ((target->flags & SHF_EXECINSTR) != 0) {
      const int64_t byte = static_cast<int64_t>(sym.value) + addend;
      if (byte < 0 || byte % 8 || static_cast<uint64_t>(byte) >= target->size)
        return fail(sec, slot, "lddw takes the address of a function at an invalid offset");
      lo.src = kPseudoFunc;
      hi.imm = 0;
      return std::optional<Target>{Target{sym.shndx, static_cast<uint32_t>(byte / 8)}};
    }
    return fail(sec, slot, "lddw refers to '" + sym.name + "' in section " + target->name + ", which holds neither maps nor data");
  }

  Result<void> copy_function(size_t fn) {
    const Function& f = o_.functions[fn];
    const elf::Section& sec = *o_.file.section(f.section);
    const uint32_t base = where_[fn];
    for (uint32_t slot = f.start; slot < f.end; ++slot) {
      const uint32_t out_pc = base + (slot - f.start);
      isa::RawInsn raw = isa::read_raw(&sec.bytes[size_t{slot} * 8]);
      const elf::Reloc* rel = reloc_at(f.section, slot);
      if (raw.opcode == kLddw) {
        if (slot + 1 >= f.end) return fail(f.section, slot, "lddw is missing its second half");
        isa::RawInsn hi = isa::read_raw(&sec.bytes[size_t{slot + 1} * 8]);
        if (rel) {
          auto t = relocate_lddw(f.section, slot, *rel, raw, hi);
          if (!t) return t.error();
          if (*t) {
            if (auto r = need(**t); !r) return r;
            fixups_.push_back({out_pc, **t});
          }
        }
        isa::write_raw(raw, &out_.bytes[size_t{out_pc} * 8]);
        isa::write_raw(hi, &out_.bytes[size_t{out_pc + 1} * 8]);
        ++slot;
        continue;
      }
      if (raw.opcode == kCall && raw.src == kPseudoKfunc)
        return fail(f.section, slot, "call to kernel function " + (rel ? "'" + o_.file.symbols()[rel->sym].name + "' " : std::string()) + "is not supported");
      if (raw.opcode == kCall && raw.src == kPseudoCall) {
        Target t{f.section, 0};
        if (rel) {
          const elf::Symbol& sym = o_.file.symbols()[rel->sym];
          const elf::Section* ts = o_.file.section(sym.shndx);
          if (!ts || !(ts->flags & SHF_EXECINSTR))
            return fail(f.section, slot, "call relocation against '" + sym.name + "', which is not a function");
          const int64_t dest = static_cast<int64_t>(sym.value / 8) + raw.imm + rel->addend / 8 + 1;
          if (sym.value % 8 || dest < 0 || static_cast<uint64_t>(dest) >= ts->size / 8)
            return fail(f.section, slot, "call to '" + sym.name + "' lands outside its section");
          t = {sym.shndx, static_cast<uint32_t>(dest)};
        } else {
          const int64_t dest = int64_t{slot} + raw.imm + 1;
          if (dest < 0 || static_cast<uint64_t>(dest) >= sec.size / 8) return fail(f.section, slot, "call target is outside the section");
          t.slot = static_cast<uint32_t>(dest);
        }
        if (auto r = need(t); !r) return r;
        fixups_.push_back({out_pc, t});
      } else if (rel) {
        return fail(f.section, slot, "relocation against an instruction that is neither lddw nor a call (opcode " +
                                         std::to_string(raw.opcode) + ")");
      }
      isa::write_raw(raw, &out_.bytes[size_t{out_pc} * 8]);
    }
    return {};
  }

  const ObjectData& o_;
  Linked out_;
  std::vector<size_t> placed_;
  std::map<size_t, uint32_t> where_;
  std::vector<Fixup> fixups_;
};

}  // namespace

Result<Linked> link_program(const ObjectData& o, size_t function) { return Linker(o).link(function); }

}  // namespace ebpfvm::detail
