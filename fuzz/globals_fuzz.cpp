// libFuzzer target: arbitrary bytes as a BPF object whose globals are set before load, as
// `ubpf-run --global NAME=VALUE` and Object::set_global do. Each global is set to a pattern of its
// own size (and refused at any other size); after load, every byte of each global data section
// must hold the pattern of the global set last over it, the rest what the object gave. Then each
// program runs once in the checked interpreter. Any crash or sanitizer report is a bug: a hostile
// object's symbols must never make set_global write outside its section (issue 18, defect 1).
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"
#include "run_programs.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kLargestChecked = 1 << 20;  // sections past this are loaded, not compared byte by byte

ebpfvm::Result<ebpfvm::Object> open_with_types(std::span<const uint8_t> bytes) {
  auto obj = ebpfvm::Object::open(bytes, "globals-fuzz.o");
  if (obj)
    for (const ebpfvm::ProgramInfo& p : obj->programs())
      if (p.type == ebpfvm::ProgType::Unspec) (void)obj->set_program_type(p.name, ebpfvm::ProgType::Xdp);
  return obj;
}

ebpfvm::LoadOptions options() {
  ebpfvm::LoadOptions o;
  o.safety = ebpfvm::Safety::Checked;
  o.insn_budget = 20'000;
  o.max_map_memory = 64u << 20;
  return o;
}

// A data section's one value (key 0), after load.
std::vector<uint8_t> section_bytes(const ebpfvm::Object& obj, const std::string& section) {
  auto map = obj.map(section);
  check(map.ok());
  auto v = map->lookup(std::vector<uint8_t>(4, 0));
  check(v.ok());
  return *v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  auto plain = open_with_types(bytes);
  if (!plain) return 0;
  auto obj = open_with_types(bytes);
  check(obj.ok());
  // Set every global (a name is set once: the first of that name is the one set_global takes).
  std::map<std::string, std::vector<std::pair<uint32_t, uint8_t>>> writes;  // section -> (offset, byte) in order
  std::map<std::string, bool> seen;
  uint8_t tag = 0;
  for (const ebpfvm::Object::Global& g : obj->globals()) {
    if (seen[g.name]) continue;
    seen[g.name] = true;
    ++tag;
    std::vector<uint8_t> wrong(g.size + 1, tag);
    check(!obj->set_global(g.name, wrong).ok());
    if (g.size > kLargestChecked) continue;
    std::vector<uint8_t> value(g.size);
    for (uint32_t i = 0; i < g.size; ++i) value[i] = static_cast<uint8_t>(tag * 31 + i);
    if (!obj->set_global(g.name, value).ok()) continue;  // lies outside its section: refused
    for (uint32_t i = 0; i < g.size; ++i) writes[g.section].emplace_back(g.offset + i, value[i]);
  }
  check(!obj->set_global("no such global \x01", std::vector<uint8_t>(4)).ok());
  if (!plain->load(options()) || !obj->load(options())) return 0;
  for (const auto& [section, list] : writes) {
    std::vector<uint8_t> want = section_bytes(*plain, section);
    if (want.size() > kLargestChecked) continue;
    for (const auto& [off, b] : list) {
      check(off < want.size());
      want[off] = b;
    }
    check(section_bytes(*obj, section) == want);
  }
  ebpfvm::fuzz::run_each_program(*obj);
  return 0;
}
