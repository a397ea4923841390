// Map declarations: BTF-defined maps in .maps, the legacy maps section (struct bpf_map_def and
// iproute2's struct bpf_elf_map), and global data sections, which become one-entry arrays.
#include <elf.h>

#include <algorithm>
#include <cstring>

#include "loader/object_data.hpp"

namespace ebpfvm::detail {
namespace {

constexpr uint32_t kMapFlagRdonlyProg = 0x80, kMapFlagMmapable = 0x400;

uint32_t rd32(std::span<const uint8_t> b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

// A DATASEC variable's offset. Older clang wrote 0 for every variable and left the offsets to the
// loader (libbpf fixes them up from the symbol table): the symbol, when there is one, is the truth.
uint32_t var_offset(const ObjectData& o, uint32_t section, std::string_view name, uint32_t btf_offset) {
  for (const elf::Symbol& s : o.file.symbols())
    if (s.shndx == section && s.name == name && s.type != STT_SECTION && s.value <= UINT32_MAX)
      return static_cast<uint32_t>(s.value);
  return btf_offset;
}

// __uint(name, N) is encoded as `int (*name)[N]`.
std::optional<uint32_t> uint_member(const btf::Btf& b, uint32_t type) {
  const btf::Type* p = b.type(b.skip_modifiers(type));
  if (!p || p->kind != btf::kPtr) return std::nullopt;
  const btf::Type* a = b.type(b.skip_modifiers(p->size_or_type));
  if (!a || a->kind != btf::kArray) return std::nullopt;
  return a->nelems;
}

// __type(name, T) is encoded as `T *name`.
std::optional<uint64_t> pointee_size(const btf::Btf& b, uint32_t type) {
  const btf::Type* p = b.type(b.skip_modifiers(type));
  if (!p || p->kind != btf::kPtr) return std::nullopt;
  return b.size_of(p->size_or_type);
}

bool is_spin_lock(const btf::Btf& b, uint32_t type) {
  const btf::Type* t = b.type(b.skip_modifiers(type));
  return t && t->kind == btf::kStruct && t->name == "bpf_spin_lock";
}

// Where a value type holds its `struct bpf_spin_lock`: the value itself, or one of its members
// (as the kernel looks for it); -1 when it holds none.
int64_t spin_lock_offset(const btf::Btf& b, uint32_t value_type) {
  if (is_spin_lock(b, value_type)) return 0;
  const btf::Type* t = b.type(b.skip_modifiers(value_type));
  if (!t || t->kind != btf::kStruct) return -1;
  for (const btf::Member& m : t->members)
    if (is_spin_lock(b, m.type)) return m.offset / 8;
  return -1;
}

// Parses the struct a BTF map definition's type resolves to. `values_off` receives the byte offset of
// an __array(values, ...) member.
Result<MapSpec> parse_btf_def(const ObjectData& o, const btf::Btf& b, uint32_t struct_id, const std::string& name,
                              uint64_t* values_off, int depth) {
  auto bad = [&](const std::string& why) {
    return o.error_at(Errc::MalformedObject, o.btf_maps_section, std::nullopt, "map '" + name + "': " + why);
  };
  const btf::Type* st = b.type(b.skip_modifiers(struct_id));
  if (!st || st->kind != btf::kStruct) return bad("its BTF type is not a struct");
  MapSpec spec;
  spec.name = name;
  for (const btf::Member& m : st->members) {
    const std::string_view mn = m.name;
    if (mn == "key" || mn == "value") {
      auto sz = pointee_size(b, m.type);
      if (!sz || *sz > UINT32_MAX) return bad("member '" + std::string(mn) + "' is not a pointer to a sized type");
      (mn == "key" ? spec.key_size : spec.value_size) = static_cast<uint32_t>(*sz);
      if (mn == "value") {
        const btf::Type* p = b.type(b.skip_modifiers(m.type));
        const int64_t lock = spin_lock_offset(b, p->size_or_type);
        if (lock >= 0 && static_cast<uint64_t>(lock) + 4 > *sz) return bad("its value's bpf_spin_lock lies outside the value");
        spec.spin_lock_off = static_cast<int32_t>(lock);
      }
    } else if (mn == "values") {
      const btf::Type* arr = b.type(b.skip_modifiers(m.type));
      if (!arr || arr->kind != btf::kArray) return bad("member 'values' is not an __array");
      const btf::Type* ptr = b.type(b.skip_modifiers(arr->elem_type));
      if (!ptr || ptr->kind != btf::kPtr) return bad("member 'values' is not an array of pointers");
      if (values_off) *values_off = m.offset / 8;
      const btf::Type* inner = b.type(b.skip_modifiers(ptr->size_or_type));
      if (inner && inner->kind == btf::kStruct) {
        if (depth > 0) return bad("maps of maps of maps are not supported");
        auto in = parse_btf_def(o, b, ptr->size_or_type, name + ".inner", nullptr, depth + 1);
        if (!in) return in.error();
        spec.inner = std::make_shared<MapSpec>(std::move(*in));
        if (spec.value_size == 0) spec.value_size = 4;
      } else if (spec.value_size == 0) {
        spec.value_size = 4;  // prog_array of functions
      }
    } else {
      auto v = uint_member(b, m.type);
      if (!v) return bad("member '" + std::string(mn) + "' is not a __uint");
      if (mn == "type") spec.type = static_cast<MapType>(*v);
      else if (mn == "max_entries") spec.max_entries = *v;
      else if (mn == "map_flags") spec.map_flags = *v;
      else if (mn == "key_size") spec.key_size = *v;
      else if (mn == "value_size") spec.value_size = *v;
      // numa_node, pinning, map_extra: accepted; nothing to do in a single process.
    }
  }
  if (spec.type == MapType::Unspec) return bad("no map type");
  return spec;
}

Result<void> collect_btf_maps(ObjectData& o) {
  const elf::Section* sec = o.file.section(".maps");
  if (!sec) return {};
  o.btf_maps_section = sec->index;
  if (!o.btf) return o.error_at(Errc::MalformedObject, sec->index, std::nullopt, "a .maps section needs BTF (compile with -g)");
  const btf::Type* ds = o.btf->datasec(".maps");
  if (!ds) return o.error_at(Errc::MalformedObject, sec->index, std::nullopt, "BTF has no DATASEC for .maps");
  for (const btf::Member& v : ds->members) {
    const btf::Type* var = o.btf->type(v.type);
    if (!var || var->kind != btf::kVar) return o.error_at(Errc::MalformedObject, sec->index, std::nullopt, "a .maps entry is not a variable");
    const uint32_t offset = var_offset(o, sec->index, var->name, v.offset);
    if (uint64_t{offset} + v.size > sec->size)
      return o.error_at(Errc::MalformedObject, sec->index, std::nullopt, "map '" + std::string(var->name) + "' lies outside .maps");
    MapDecl d;
    d.source = MapDecl::Source::Btf;
    auto spec = parse_btf_def(o, *o.btf, var->size_or_type, std::string(var->name), &d.values_off, 0);
    if (!spec) return spec.error();
    d.spec = std::move(*spec);
    d.section = sec->index;
    d.offset = offset;
    d.size = v.size;
    o.maps.push_back(std::move(d));
  }
  return {};
}

// iproute2's maps of maps: an outer map names its inner maps' `id` in its `inner_id`; each map
// of that id is its inner map shape and goes into the outer map's slot `inner_idx` at load (as tc
// does). struct bpf_elf_map: id at 20, inner_id at 28, inner_idx at 32.
Result<void> link_iproute2_inner_maps(ObjectData& o, const elf::Section& sec) {
  auto field = [&](const MapDecl& d, uint64_t at) { return d.size >= 36 ? rd32(sec.bytes.subspan(d.offset, d.size), at) : 0u; };
  for (MapDecl& outer : o.maps) {
    if (outer.source != MapDecl::Source::Legacy || outer.section != sec.index) continue;
    const MapType t = outer.spec.type;
    const uint32_t inner_id = field(outer, 28);
    if ((t != MapType::ArrayOfMaps && t != MapType::HashOfMaps) || inner_id == 0) continue;
    for (const MapDecl& d : o.maps) {
      if (&d == &outer || d.source != MapDecl::Source::Legacy || d.section != sec.index || field(d, 20) != inner_id) continue;
      if (!outer.spec.inner) outer.spec.inner = std::make_shared<MapSpec>(d.spec);
      const uint32_t slot = field(d, 32);
      if (slot >= outer.spec.max_entries)
        return o.error_at(Errc::MalformedObject, sec.index, std::nullopt,
                          "map '" + d.spec.name + "': inner_idx " + std::to_string(slot) + " is beyond max_elem of its outer map '" +
                              outer.spec.name + "'");
      outer.slots.push_back({slot, d.spec.name});
    }
    if (!outer.spec.inner)
      return o.error_at(Errc::MalformedObject, sec.index, std::nullopt,
                        "map '" + outer.spec.name + "': inner_id " + std::to_string(inner_id) + " is the id of no map in section " + sec.name);
  }
  return {};
}

// Legacy definitions: struct bpf_map_def {type, key_size, value_size, max_entries, map_flags} (20
// bytes, or larger with trailing fields) and iproute2's struct bpf_elf_map (36 bytes: ..., id,
// pinning, inner_id, inner_idx).
Result<void> collect_legacy_maps(ObjectData& o) {
  const elf::Section* sec = nullptr;
  for (const elf::Section& s : o.file.sections())
    if ((s.name == "maps" || s.name.rfind("maps/", 0) == 0) && s.type == SHT_PROGBITS) sec = &s;
  if (!sec) return {};
  o.legacy_maps_section = sec->index;
  std::vector<const elf::Symbol*> syms;
  for (const elf::Symbol& s : o.file.symbols())
    if (s.shndx == sec->index && s.type != STT_SECTION && !s.name.empty()) syms.push_back(&s);
  std::sort(syms.begin(), syms.end(), [](auto* a, auto* b) { return a->value < b->value; });
  if (syms.empty()) return {};
  for (size_t i = 0; i < syms.size(); ++i) {
    const elf::Symbol& s = *syms[i];
    uint64_t size = s.size ? s.size : (i + 1 < syms.size() ? syms[i + 1]->value : sec->size) - s.value;
    if (s.value > sec->size || sec->size - s.value < size || size < 20)
      return o.error_at(Errc::MalformedObject, sec->index, std::nullopt, "legacy map '" + s.name + "' definition is truncated or outside the section");
    auto def = sec->bytes.subspan(s.value, size);
    MapDecl d;
    d.source = MapDecl::Source::Legacy;
    d.spec.name = s.name;
    d.spec.type = static_cast<MapType>(rd32(def, 0));
    d.spec.key_size = rd32(def, 4);
    d.spec.value_size = rd32(def, 8);
    d.spec.max_entries = rd32(def, 12);
    d.spec.map_flags = rd32(def, 16);
    d.section = sec->index;
    d.offset = s.value;
    d.size = size;
    o.maps.push_back(std::move(d));
  }
  return link_iproute2_inner_maps(o, *sec);
}

bool is_data_section(const elf::Section& s) {
  if (s.type != SHT_PROGBITS && s.type != SHT_NOBITS) return false;
  if (s.flags & SHF_EXECINSTR) return false;
  for (const char* p : {".rodata", ".data", ".bss"})
    if (s.name == p || s.name.rfind(std::string(p) + ".", 0) == 0) return true;
  return false;
}

Result<void> collect_data(ObjectData& o) {
  uint64_t total = 0;  // a .bss takes no room in the file: a small object could ask for gigabytes
  for (const elf::Section& s : o.file.sections()) {
    if (!is_data_section(s) || s.size == 0) continue;
    if (s.size > kMaxGlobalData - total)
      return o.error_at(Errc::MalformedObject, s.index, std::nullopt,
                        "global data sections add up to more than 1 GiB (" + s.name + " is " + std::to_string(s.size) + " bytes)");
    total += s.size;
    MapDecl d;
    d.source = MapDecl::Source::Data;
    d.read_only = s.name.rfind(".rodata", 0) == 0;
    d.spec = {s.name, MapType::Array, 4, static_cast<uint32_t>(s.size), 1,
              kMapFlagMmapable | (d.read_only ? kMapFlagRdonlyProg : 0u), nullptr};
    d.section = s.index;
    // Only the bytes the file gives: a .bss is zeros, which the map's memory already is, and a
    // small object may declare one of a gigabyte (set_global grows `init` as far as it writes).
    if (s.type == SHT_PROGBITS)
      d.init.assign(s.bytes.begin(), s.bytes.begin() + static_cast<std::ptrdiff_t>(std::min<uint64_t>(s.bytes.size(), s.size)));
    o.maps.push_back(std::move(d));
    // Globals: BTF DATASEC entries when present, else the section's object symbols.
    const btf::Type* ds = o.btf ? o.btf->datasec(s.name) : nullptr;
    if (ds) {
      for (const btf::Member& v : ds->members) {
        const btf::Type* var = o.btf->type(v.type);
        if (!var || var->kind != btf::kVar) continue;
        const uint32_t offset = var_offset(o, s.index, var->name, v.offset);
        if (uint64_t{offset} + v.size > s.size) continue;
        o.globals.push_back({std::string(var->name), s.name, offset, v.size});
      }
    } else {
      for (const elf::Symbol& sym : o.file.symbols())
        // value + size may wrap: compare each with what is left of the section
        if (sym.shndx == s.index && sym.type == STT_OBJECT && sym.size && sym.value <= s.size && sym.size <= s.size - sym.value)
          o.globals.push_back({sym.name, s.name, static_cast<uint32_t>(sym.value), static_cast<uint32_t>(sym.size)});
    }
  }
  return {};
}

// __array(values, ...) = { [i] = &prog_or_map }: R_BPF_64_ABS64 relocations in .rel.maps.
Result<void> collect_initialisers(ObjectData& o) {
  if (!o.btf_maps_section) return {};
  auto it = o.relocs.find(o.btf_maps_section);
  if (it == o.relocs.end()) return {};
  for (const auto& [off, r] : it->second) {
    const elf::Symbol& sym = o.file.symbols()[r.sym];
    MapDecl* owner = nullptr;
    for (MapDecl& d : o.maps)
      if (d.source == MapDecl::Source::Btf && off >= d.offset && off < d.offset + d.size) owner = &d;
    if (!owner || off < owner->offset + owner->values_off || (off - owner->offset - owner->values_off) % 8)
      return o.error_at(Errc::MalformedObject, o.btf_maps_section, std::nullopt,
                        "relocation at .maps offset " + std::to_string(off) + " is not inside a map's values array");
    // Only these types hold ids: anything else would be written a 4-byte id it cannot take.
    const MapType t = owner->spec.type;
    if ((t != MapType::ProgArray && t != MapType::ArrayOfMaps && t != MapType::HashOfMaps) ||
        owner->spec.key_size != 4 || owner->spec.value_size != 4)
      return o.error_at(Errc::MalformedObject, o.btf_maps_section, std::nullopt,
                        "map '" + owner->spec.name +
                            "': only prog arrays and maps of maps with 4-byte keys and values take initialisers");
    const uint64_t slot = (off - owner->offset - owner->values_off) / 8;
    if (slot >= owner->spec.max_entries)
      return o.error_at(Errc::MalformedObject, o.btf_maps_section, std::nullopt,
                        "map '" + owner->spec.name + "': initialiser for slot " + std::to_string(slot) + " is beyond max_entries");
    owner->slots.push_back({static_cast<uint32_t>(slot), sym.name});
  }
  return {};
}

}  // namespace

Result<void> collect_maps(ObjectData& o) {
  for (auto step : {collect_btf_maps, collect_legacy_maps, collect_data, collect_initialisers})
    if (auto r = step(o); !r) return r;
  for (const MapDecl& d : o.maps) o.specs.push_back(d.spec);
  return {};
}

}  // namespace ebpfvm::detail
