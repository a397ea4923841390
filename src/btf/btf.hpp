// BTF (the BPF Type Format) and .BTF.ext, read from untrusted bytes: every offset, count and type id
// is checked, and type chains are followed a bounded number of steps.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm::btf {

enum Kind : uint8_t {
  kUnknown = 0, kInt = 1, kPtr = 2, kArray = 3, kStruct = 4, kUnion = 5, kEnum = 6, kFwd = 7,
  kTypedef = 8, kVolatile = 9, kConst = 10, kRestrict = 11, kFunc = 12, kFuncProto = 13, kVar = 14,
  kDatasec = 15, kFloat = 16, kDeclTag = 17, kTypeTag = 18, kEnum64 = 19,
};

struct Member {
  std::string_view name;
  uint32_t type = 0;
  uint32_t offset = 0;  // struct/union members: bit offset; datasec entries: byte offset
  uint32_t size = 0;    // datasec entries only
};

struct Type {
  Kind kind = kUnknown;
  std::string_view name;
  uint32_t size_or_type = 0;  // size for int/struct/union/enum/datasec/float, else a type id
  uint32_t vlen = 0;
  bool kind_flag = false;
  // Array only.
  uint32_t elem_type = 0;
  uint32_t nelems = 0;
  std::vector<Member> members;  // struct/union members, datasec entries
};

struct LineInfo {
  uint32_t insn_off = 0;  // bytes from the start of the section
  std::string_view file;
  std::string_view source;
  uint32_t line = 0;
  uint32_t column = 0;
};

struct FuncInfo {
  uint32_t insn_off = 0;  // bytes
  uint32_t type_id = 0;
};

struct CoreRelo {
  uint32_t insn_off = 0;
  uint32_t type_id = 0;
  std::string_view access;
  uint32_t kind = 0;
};

// .BTF.ext records, grouped by the section they describe.
struct SectionExt {
  std::string_view section;
  std::vector<FuncInfo> funcs;
  std::vector<LineInfo> lines;
  std::vector<CoreRelo> core;
};

// A parsed .BTF section. The string_views point into the bytes given to parse(), which the
// caller keeps alive.
class Btf {
 public:
  static Result<Btf> parse(std::span<const uint8_t> bytes);

  // Type id 0 is void; valid ids are 1..count().
  size_t count() const { return types_.size(); }
  const Type* type(uint32_t id) const { return id >= 1 && id <= types_.size() ? &types_[id - 1] : nullptr; }
  // Follows typedef/const/volatile/restrict/type_tag (and var when through_var) to the underlying
  // type id; 0 when the chain ends in void, is broken, or loops.
  uint32_t skip_modifiers(uint32_t id, bool through_var = false) const;
  // Size in bytes of a type, or nothing for void, functions, forward declarations and broken chains.
  std::optional<uint64_t> size_of(uint32_t id) const;
  // The datasec with this name (".maps", ".rodata", ...), or nullptr.
  const Type* datasec(std::string_view name) const;
  std::optional<std::string_view> string_at(uint32_t off) const;

  // Parses .BTF.ext against this BTF's strings.
  Result<std::vector<SectionExt>> parse_ext(std::span<const uint8_t> ext) const;

 private:
  std::span<const uint8_t> strings_;
  std::vector<Type> types_;
};

}  // namespace ebpfvm::btf
