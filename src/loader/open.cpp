// Object::open: the ELF and BTF parsed into functions, programs, maps and globals. Nothing is
// created or run here; every failure names the section and the problem.
#include <elf.h>

#include <algorithm>
#include <fstream>

#include "loader/object_data.hpp"

namespace ebpfvm::detail {
namespace {

bool is_code(const elf::Section& s) {
  return s.type == SHT_PROGBITS && (s.flags & SHF_EXECINSTR) && s.size > 0;
}

// Sections that hold nothing the loader needs.
bool ignored(const std::string& n) {
  static const char* const kMeta[] = {"license", "version", ".xdp_run_config", "features", ".llvm_addrsig",
                                      "xdp_metadata", ".BTF", ".BTF.ext", ".strtab", ".symtab", ".shstrtab"};
  for (const char* m : kMeta)
    if (n == m) return true;
  return n.rfind(".debug", 0) == 0 || n.rfind(".rel.debug", 0) == 0 || n.rfind(".rel.BTF", 0) == 0 ||
         n.rfind(".rela.debug", 0) == 0 || n.rfind(".rela.BTF", 0) == 0;
}

Result<void> collect_functions(ObjectData& o) {
  const auto& syms = o.file.symbols();
  for (const elf::Section& s : o.file.sections()) {
    if (!is_code(s)) continue;
    if (s.size % 8) return o.error_at(Errc::MalformedObject, s.index, std::nullopt, "code size " + std::to_string(s.size) + " is not a multiple of 8");
    const uint32_t slots = static_cast<uint32_t>(s.size / 8);
    std::vector<Function> fns;
    for (const elf::Symbol& sym : syms) {
      if (sym.shndx != s.index || sym.type != STT_FUNC) continue;
      if (sym.value % 8 || sym.size % 8 || sym.value > s.size || s.size - sym.value < sym.size)
        return o.error_at(Errc::MalformedObject, s.index, std::nullopt, "function '" + sym.name + "' lies outside its section or is misaligned");
      uint32_t start = static_cast<uint32_t>(sym.value / 8);
      fns.push_back({sym.name, sym.bind == STB_GLOBAL, s.index, start, sym.size ? start + static_cast<uint32_t>(sym.size / 8) : 0});
    }
    std::sort(fns.begin(), fns.end(), [](const Function& a, const Function& b) { return a.start < b.start; });
    if (fns.empty()) fns.push_back({s.name, false, s.index, 0, 0});  // an object without function symbols
    for (size_t i = 0; i < fns.size(); ++i)
      if (fns[i].end == 0) fns[i].end = i + 1 < fns.size() ? fns[i + 1].start : slots;
    for (size_t i = 0; i < fns.size(); ++i) {
      if (fns[i].end <= fns[i].start) return o.error_at(Errc::MalformedObject, s.index, fns[i].start, "function '" + fns[i].name + "' is empty");
      if (i + 1 < fns.size() && fns[i].end > fns[i + 1].start)
        return o.error_at(Errc::MalformedObject, s.index, fns[i + 1].start, "functions '" + fns[i].name + "' and '" + fns[i + 1].name + "' overlap");
    }
    for (Function& f : fns) {
      if (s.name != ".text") {
        o.programs.push_back({f.name, s.name, prog_type_from_section(s.name), f.end - f.start});
        o.program_function.push_back(o.functions.size());
      }
      o.functions.push_back(std::move(f));
    }
  }
  // Code only in .text (the conformance suite's ELF mode, verifier test objects): its global
  // functions are the programs, of a type the section does not tell (raw memory, or as set).
  if (o.programs.empty())
    for (size_t i = 0; i < o.functions.size(); ++i) {
      const Function& f = o.functions[i];
      const elf::Section* s = o.file.section(f.section);
      if (!f.global || !s || s->name != ".text") continue;
      o.programs.push_back({f.name, s->name, ProgType::Unspec, f.end - f.start});
      o.program_function.push_back(i);
    }
  return {};
}

Result<void> collect_relocs(ObjectData& o) {
  for (const elf::RelocSection& rs : o.file.relocs()) {
    const elf::Section& target = *o.file.section(rs.target);
    if (ignored(target.name) || ignored(o.file.section(rs.index)->name)) continue;
    auto& by_off = o.relocs[rs.target];
    for (const elf::Reloc& r : rs.relocs) {
      if (r.sym >= o.file.symbols().size())
        return o.error_at(Errc::MalformedObject, rs.index, std::nullopt, "relocation refers to symbol " + std::to_string(r.sym) + ", which does not exist");
      if (r.type == elf::kRBpfNone) continue;
      if (r.offset >= target.size)
        return o.error_at(Errc::MalformedObject, rs.index, std::nullopt, "relocation at offset " + std::to_string(r.offset) + " is outside section " + target.name);
      by_off[r.offset] = r;
    }
  }
  return {};
}

Result<void> collect_btf(ObjectData& o) {
  const elf::Section* b = o.file.section(".BTF");
  if (!b || b->bytes.empty()) return {};
  auto btf = btf::Btf::parse(b->bytes);
  if (!btf) {
    btf.error().where.section = ".BTF";
    return btf.error();
  }
  o.btf = std::move(*btf);
  const elf::Section* ext = o.file.section(".BTF.ext");
  if (!ext || ext->bytes.empty()) return {};
  auto secs = o.btf->parse_ext(ext->bytes);
  if (!secs) {
    secs.error().where.section = ".BTF.ext";
    return secs.error();
  }
  for (btf::SectionExt& s : *secs) {
    LineTable& t = o.lines->lines[std::string(s.section)];
    t.lines = std::move(s.lines);
    std::stable_sort(t.lines.begin(), t.lines.end(), [](const auto& a, const auto& b) { return a.insn_off < b.insn_off; });
  }
  return {};
}

}  // namespace

std::optional<SourceLine> ObjectData::line_at(uint32_t sec, uint32_t insn) const { return lines->at(sec, insn); }

ObjectData::~ObjectData() {
  for (const auto& m : live_maps)
    if (m->spec().type == MapType::ProgArray)
      for (uint32_t i = 0; i < m->spec().max_entries; ++i) prog_array_set(*m, i, nullptr);
}

std::optional<SourceLine> LineIndex::at(uint32_t sec, uint32_t insn) const {
  if (sec >= section_names.size()) return std::nullopt;
  auto t = lines.find(section_names[sec]);
  if (t == lines.end() || t->second.lines.empty()) return std::nullopt;
  const auto& v = t->second.lines;
  auto it = std::upper_bound(v.begin(), v.end(), uint64_t{insn} * 8, [](uint64_t off, const btf::LineInfo& l) { return off < l.insn_off; });
  if (it == v.begin()) return std::nullopt;
  --it;
  if (it->line == 0) return std::nullopt;  // clang's record for code no source line produced
  return SourceLine{std::string(it->file), it->line, it->column, std::string(it->source)};
}

Error ObjectData::error_at(Errc code, uint32_t sec, std::optional<uint32_t> insn, const std::string& msg) const {
  Error e = make_error(code, msg);
  e.where.file = name;
  if (const elf::Section* s = file.section(sec)) e.where.section = s->name.empty() ? "#" + std::to_string(sec) : s->name;
  e.where.insn = insn;
  if (insn) {
    for (const Function& f : functions)
      if (f.section == sec && *insn >= f.start && *insn < f.end) e.where.program = f.name;
    if (auto l = line_at(sec, *insn)) {
      e.where.line = l->line;
      e.where.source = l->file + ":" + std::to_string(l->line) + (l->text.empty() ? "" : ": " + l->text);
    }
  }
  return e;
}

Result<std::shared_ptr<ObjectData>> parse_object(std::span<const uint8_t> bytes, const std::string& name) {
  auto file = elf::File::parse(bytes, name);
  if (!file) {
    file.error().where.file = name;
    return file.error();
  }
  auto o = std::make_shared<ObjectData>();
  o->name = name;
  o->file = std::move(*file);
  o->lines->storage = o->file.storage();
  for (const elf::Section& s : o->file.sections()) o->lines->section_names.push_back(s.name);
  auto fail = [&](const std::string& msg) {
    Error e = make_error(Errc::MalformedObject, msg);
    e.where.file = name;
    return e;
  };
  if (!o->file.has_symtab()) return fail("no symbol table (was the object stripped?)");
  for (auto step : {collect_btf, collect_functions, collect_relocs, collect_maps}) {
    auto r = step(*o);
    if (!r) {
      if (r.error().where.file.empty()) r.error().where.file = name;
      return r.error();
    }
  }
  if (o->programs.empty()) return fail("no programs (no functions in executable sections other than .text, and no global function in .text)");
  o->loaded_programs.resize(o->programs.size());
  o->load_errors.resize(o->programs.size());
  return o;
}

}  // namespace ebpfvm::detail
