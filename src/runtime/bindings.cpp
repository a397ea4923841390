#include "runtime/bindings.hpp"

namespace ebpfvm::detail {

Bindings bindings_of(std::span<const Map> maps) {
  Bindings b;
  for (const Map& m : maps) b.maps.push_back(m.impl());
  return b;
}

Result<uint64_t> resolve_lddw(const isa::Program& prog, size_t pc, const Bindings& b, std::vector<MemRegion>& regions) {
  const isa::Insn& in = prog.insns[pc];
  const auto at = static_cast<uint32_t>(pc);
  const uint32_t idx = static_cast<uint32_t>(in.imm);
  const int32_t off = prog.insns[pc + 1].imm;
  auto unbound = [&] {
    return make_error_at(Errc::MalformedProgram, at,
                         "lddw refers to map " + std::to_string(idx) + ", but " + std::to_string(b.maps.size()) + " maps are bound");
  };
  switch (in.op) {
    case isa::Op::LDDW: return isa::lddw_imm64(prog.insns, pc);
    case isa::Op::LDDW_MAP_FD:
    case isa::Op::LDDW_MAP_IDX:
      if (idx >= b.maps.size()) return unbound();
      return reinterpret_cast<uint64_t>(b.maps[idx].get());
    case isa::Op::LDDW_MAP_VALUE:
    case isa::Op::LDDW_MAP_IDX_VALUE: {
      if (idx >= b.maps.size()) return unbound();
      MapImpl& m = *b.maps[idx];
      if (m.spec().type != MapType::Array || m.per_cpu())
        return make_error_at(Errc::MalformedProgram, at,
                             "lddw takes the address of a value of map '" + m.spec().name + "', which is not an array");
      if (off < 0 || static_cast<uint32_t>(off) >= m.spec().value_size)
        return make_error_at(Errc::MalformedProgram, at,
                             "offset " + std::to_string(off) + " is outside map '" + m.spec().name + "' value (" +
                                 std::to_string(m.spec().value_size) + " bytes)");
      uint8_t* value = array_base(m);
      regions.push_back({reinterpret_cast<uint64_t>(value), m.spec().value_size, !m.frozen(), false});
      return reinterpret_cast<uint64_t>(value + off);
    }
    default:
      return make_error_at(Errc::Unsupported, at,
                           "lddw with src " + std::to_string(in.src) + " (a kernel variable) is not supported");
  }
}

}  // namespace ebpfvm::detail
