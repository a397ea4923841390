#include "elf/elf_file.hpp"

#include <gelf.h>
#include <libelf.h>

#include <mutex>

namespace ebpfvm::elf {
namespace {

Error bad(const std::string& msg) { return make_error(Errc::MalformedObject, msg); }

Error bad_section(const Section& s, const std::string& msg) {
  Error e = bad(msg);
  e.where.section = s.name.empty() ? "#" + std::to_string(s.index) : s.name;
  return e;
}

// elf_end on scope exit.
struct ElfHandle {
  Elf* e = nullptr;
  ~ElfHandle() {
    if (e) elf_end(e);
  }
};

bool libelf_ready() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = elf_version(EV_CURRENT) != EV_NONE; });
  return ok;
}

Result<void> read_symbols(Elf_Scn* scn, const Section& s, size_t nsections, std::vector<Symbol>& out, Elf* e) {
  Elf_Data* d = elf_getdata(scn, nullptr);
  if (!d) return bad_section(s, "symbol table cannot be read: " + std::string(elf_errmsg(-1)));
  size_t n = d->d_size / sizeof(Elf64_Sym);
  if (n > 1'000'000) return bad_section(s, "more than a million symbols");
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    GElf_Sym sym;
    if (!gelf_getsym(d, static_cast<int>(i), &sym)) return bad_section(s, "symbol " + std::to_string(i) + " cannot be read");
    Symbol o;
    const char* nm = sym.st_name ? elf_strptr(e, s.link, sym.st_name) : "";
    if (!nm) return bad_section(s, "symbol " + std::to_string(i) + " has a name outside the string table");
    o.name = nm;
    o.value = sym.st_value;
    o.size = sym.st_size;
    o.type = GELF_ST_TYPE(sym.st_info);
    o.bind = GELF_ST_BIND(sym.st_info);
    o.shndx = sym.st_shndx;
    if (o.shndx >= nsections && o.shndx < SHN_LORESERVE)
      return bad_section(s, "symbol '" + o.name + "' refers to section " + std::to_string(o.shndx) + ", which does not exist");
    out.push_back(std::move(o));
  }
  return {};
}

Result<RelocSection> read_relocs(Elf_Scn* scn, const Section& s) {
  Elf_Data* d = elf_getdata(scn, nullptr);
  if (!d) return bad_section(s, "relocations cannot be read: " + std::string(elf_errmsg(-1)));
  RelocSection rs{s.index, s.info, {}};
  const bool rela = s.type == SHT_RELA;
  size_t n = d->d_size / (rela ? sizeof(Elf64_Rela) : sizeof(Elf64_Rel));
  if (n > 10'000'000) return bad_section(s, "too many relocations");
  rs.relocs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Reloc r;
    if (rela) {
      GElf_Rela x;
      if (!gelf_getrela(d, static_cast<int>(i), &x)) return bad_section(s, "relocation " + std::to_string(i) + " cannot be read");
      r = {x.r_offset, static_cast<uint32_t>(GELF_R_SYM(x.r_info)), static_cast<uint32_t>(GELF_R_TYPE(x.r_info)), x.r_addend};
    } else {
      GElf_Rel x;
      if (!gelf_getrel(d, static_cast<int>(i), &x)) return bad_section(s, "relocation " + std::to_string(i) + " cannot be read");
      r = {x.r_offset, static_cast<uint32_t>(GELF_R_SYM(x.r_info)), static_cast<uint32_t>(GELF_R_TYPE(x.r_info)), 0};
    }
    rs.relocs.push_back(r);
  }
  return rs;
}

}  // namespace

const Section* File::section(const std::string& name) const {
  for (const Section& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

Result<File> File::parse(std::span<const uint8_t> input, const std::string& name) {
  if (!libelf_ready()) return make_error(Errc::Unsupported, "libelf could not be initialised");
  File f;
  f.name_ = name;
  f.bytes_ = std::make_shared<std::vector<uint8_t>>(input.begin(), input.end());
  auto& bytes = *f.bytes_;
  if (bytes.size() < sizeof(Elf64_Ehdr) || bytes[0] != 0x7f || bytes[1] != 'E' || bytes[2] != 'L' || bytes[3] != 'F')
    return bad("not an ELF file");
  if (bytes[EI_CLASS] != ELFCLASS64) return bad("not a 64-bit ELF file");
  if (bytes[EI_DATA] != ELFDATA2LSB) return bad("not a little-endian ELF file (big-endian BPF is not supported)");
  ElfHandle h;
  // libelf reads from our copy; it must not write to it (ELF_C_READ_MMAP semantics on memory).
  h.e = elf_memory(reinterpret_cast<char*>(bytes.data()), bytes.size());
  if (!h.e || elf_kind(h.e) != ELF_K_ELF) return bad("not an ELF file: " + std::string(elf_errmsg(-1)));
  GElf_Ehdr eh;
  if (!gelf_getehdr(h.e, &eh)) return bad("ELF header cannot be read: " + std::string(elf_errmsg(-1)));
  // Old clang wrote no machine (EM_NONE); such an object is taken when its code looks like BPF.
  const bool no_machine = eh.e_machine == EM_NONE;
  if (eh.e_machine != EM_BPF && !no_machine) return bad("ELF machine is " + std::to_string(eh.e_machine) + ", not BPF (247)");
  if (eh.e_type != ET_REL) return bad("not a relocatable object (compile with clang -c -target bpf)");
  size_t shnum = 0, shstrndx = 0;
  if (elf_getshdrnum(h.e, &shnum) != 0) return bad("section count cannot be read: " + std::string(elf_errmsg(-1)));
  if (shnum > 65535) return bad("more than 65535 sections");
  if (elf_getshdrstrndx(h.e, &shstrndx) != 0) return bad("section name table cannot be found");
  f.sections_.resize(shnum);
  std::vector<Elf_Scn*> scns(shnum, nullptr);
  for (size_t i = 0; i < shnum; ++i) {
    Elf_Scn* scn = elf_getscn(h.e, i);
    GElf_Shdr sh;
    if (!scn || !gelf_getshdr(scn, &sh)) return bad("section header " + std::to_string(i) + " cannot be read");
    scns[i] = scn;
    Section& s = f.sections_[i];
    s.index = static_cast<uint32_t>(i);
    if (i != 0) {
      const char* nm = elf_strptr(h.e, shstrndx, sh.sh_name);
      if (!nm) return bad("section " + std::to_string(i) + " has a name outside the section name table");
      s.name = nm;
    }
    s.type = sh.sh_type;
    s.flags = sh.sh_flags;
    s.size = sh.sh_size;
    s.link = sh.sh_link;
    s.info = sh.sh_info;
    if (s.type != SHT_NOBITS && s.type != SHT_NULL && s.size > 0) {
      if (sh.sh_offset > bytes.size() || bytes.size() - sh.sh_offset < sh.sh_size)
        return bad_section(s, "section data [" + std::to_string(sh.sh_offset) + ", +" + std::to_string(sh.sh_size) +
                                  ") runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)");
      s.bytes = std::span<const uint8_t>(bytes.data() + sh.sh_offset, sh.sh_size);
    }
  }
  for (size_t i = 0; i < shnum; ++i) {
    const Section& s = f.sections_[i];
    if (s.type == SHT_SYMTAB) {
      if (f.has_symtab_) return bad_section(s, "second symbol table");
      if (s.link >= shnum || f.sections_[s.link].type != SHT_STRTAB) return bad_section(s, "symbol table's string table is invalid");
      if (auto r = read_symbols(scns[i], s, shnum, f.symbols_, h.e); !r) return r.error();
      f.has_symtab_ = true;
    } else if (s.type == SHT_REL || s.type == SHT_RELA) {
      if (s.info >= shnum) return bad_section(s, "relocations apply to section " + std::to_string(s.info) + ", which does not exist");
      auto rs = read_relocs(scns[i], s);
      if (!rs) return rs.error();
      f.relocs_.push_back(std::move(*rs));
    }
  }
  if (no_machine) {
    // BPF code: executable sections of whole 8-byte instructions, and BPF relocation types.
    bool code = false;
    for (const Section& s : f.sections_) {
      if (!(s.flags & SHF_EXECINSTR) || s.size == 0) continue;
      if (s.size % 8) return bad("ELF machine is 0 (none), and section " + s.name + " is not BPF code (its size is no multiple of 8)");
      code = true;
    }
    for (const RelocSection& rs : f.relocs_)
      for (const Reloc& r : rs.relocs)
        if (r.type != kRBpfNone && r.type != kRBpf64_64 && r.type != kRBpf64Abs64 && r.type != kRBpf64Abs32 && r.type != kRBpf64NoDyld32 &&
            r.type != kRBpf64_32)
          return bad("ELF machine is 0 (none), and relocation type " + std::to_string(r.type) + " is not BPF's");
    if (!code) return bad("ELF machine is 0 (none), and the object has no code");
    f.warnings_.push_back("ELF machine is 0 (none), as old clang wrote it: read as BPF (247)");
  }
  return f;
}

}  // namespace ebpfvm::elf
