// What the loader knows about an object, from open() to load() and after.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "btf/btf.hpp"
#include "ebpfvm/object.hpp"
#include "elf/elf_file.hpp"
#include "interp/image.hpp"
#include "runtime/run_state.hpp"

namespace ebpfvm::detail {

struct ProgTypeDesc;

// A function in an executable section: a program, or a subprogram programs call.
struct Function {
  std::string name;
  bool global = false;  // its symbol is STB_GLOBAL
  uint32_t section = 0;
  uint32_t start = 0;  // first slot in the section
  uint32_t end = 0;    // one past the last
};

struct MapDecl {
  enum class Source { Btf, Legacy, Data } source = Source::Btf;
  MapSpec spec;
  uint32_t section = 0;     // where it is defined (or, for Data, the data section)
  uint64_t offset = 0;      // definition offset in that section
  uint64_t size = 0;        // definition size
  uint64_t values_off = 0;  // BTF: offset of the `values` member, for __array initialisers
  std::vector<uint8_t> init;  // Data: the section's first bytes as loaded; the rest are zeros
  bool read_only = false;     // .rodata*: frozen after load
  struct Slot {
    uint32_t index;
    std::string target;  // a program (prog_array) or a map (map of maps)
  };
  std::vector<Slot> slots;
};

struct LineTable {
  std::vector<btf::LineInfo> lines;  // sorted by insn_off
};

// Source lines by (section, slot), shared by the object and the programs loaded from it (which may
// outlive it). The string views point into `storage`, the object file's bytes.
struct LineIndex {
  std::shared_ptr<const std::vector<uint8_t>> storage;
  std::vector<std::string> section_names;
  std::map<std::string, LineTable, std::less<>> lines;
  std::optional<SourceLine> at(uint32_t sec, uint32_t insn) const;
};

struct ObjectData {
  std::string name;
  elf::File file;
  std::optional<btf::Btf> btf;
  std::shared_ptr<LineIndex> lines = std::make_shared<LineIndex>();
  std::vector<Function> functions;
  std::vector<ProgramInfo> programs;
  std::vector<size_t> program_function;  // programs[i] is functions[program_function[i]]
  std::vector<MapDecl> maps;
  std::vector<MapSpec> specs;
  std::vector<Object::Global> globals;
  std::map<uint32_t, std::map<uint64_t, elf::Reloc>> relocs;  // target section -> offset -> reloc
  uint32_t btf_maps_section = 0;
  uint32_t legacy_maps_section = 0;

  // After load().
  bool loaded = false;
  std::vector<std::shared_ptr<MapImpl>> live_maps;
  std::shared_ptr<RuntimeShared> shared;
  std::vector<std::shared_ptr<const LoadedData>> loaded_programs;  // same order as programs; null if not loaded
  std::vector<std::string> load_errors;                            // why a program is not loaded

  // Programs in prog arrays hold the maps they use, which may be those prog arrays: as the kernel
  // flushes a prog array when its last user reference goes, the object empties its prog arrays
  // when it is destroyed, which breaks the cycle.
  ~ObjectData();

  // An error at slot `insn` of section `sec`, with the source line when BTF has it.
  Error error_at(Errc code, uint32_t sec, std::optional<uint32_t> insn, const std::string& msg) const;
  std::optional<SourceLine> line_at(uint32_t sec, uint32_t insn) const;
};

struct LoadedData {
  ProgramInfo info;
  std::string file;
  uint32_t id = 0;
  Program code;
  std::vector<std::pair<uint32_t, uint32_t>> origin;  // linked slot -> (section, slot in section)
  std::shared_ptr<const LineIndex> lines;
  std::shared_ptr<const ProgEntry> entry;
  std::shared_ptr<RuntimeShared> shared;
  uint32_t workers = 1;
  std::optional<VerifyReport> verified;  // the verifier's report; empty for Safety::Checked
  uint32_t verified_memory = 0;          // verified for raw memory of this size (0 when it runs on a context)
  const ProgTypeDesc* ctx_type = nullptr;  // the context it runs on (run_xdp, run_skb); null: raw memory (run_raw)
  bool may_view = false;                 // verified never to write the packet: may run on an XdpBuffer view
  LoadedData(Program p) : code(std::move(p)) {}
};

// open.cpp
Result<std::shared_ptr<ObjectData>> parse_object(std::span<const uint8_t> bytes, const std::string& name);
// maps_def.cpp
Result<void> collect_maps(ObjectData& o);
// link.cpp: the program's code with subprograms appended and relocations applied.
struct Linked {
  std::vector<uint8_t> bytes;
  std::vector<std::pair<uint32_t, uint32_t>> origin;
};
Result<Linked> link_program(const ObjectData& o, size_t function);

}  // namespace ebpfvm::detail
