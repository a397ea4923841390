// Program types as data: one description per type, read by the loader (which context to verify
// for, which loads to rewrite), the verifier (the context's fields, what LD_ABS may do, which
// helpers a program may call) and the tools (what the return value means). XDP is one instance.
#pragma once

#include <cstdint>
#include <span>

#include "ebpfvm/object.hpp"
#include "ebpfvm/verifier.hpp"
#include "progtype/ctx_rewrite.hpp"

namespace ebpfvm::detail {

struct ProgTypeDesc {
  ProgType type;
  const char* name;                  // as libbpf and bpftool name it
  VerifyOptions::Context context;    // what the verifier assumes r1 holds
  std::span<const CtxField> fields;  // the context's fields; every other offset is refused
  uint32_t ctx_size;                 // bytes of the context a program may address
  bool ld_abs;                       // LD_ABS/LD_IND allowed (with r6 holding the context)
  bool ctx_writable;                 // some fields may be written
  // The built-in helpers (by kernel id) the type may call. A helper no built-in has (an
  // embedder's own id) is allowed for every type.
  std::span<const uint32_t> helpers;
  const char* returns;               // what r0 means, for messages and docs
};

// The description of a type ebpfvm runs on a context; null for Unspec and Other.
const ProgTypeDesc* prog_type_desc(ProgType t);
// The description whose context the verifier is asked for; null for Context::Memory.
const ProgTypeDesc* prog_type_desc(VerifyOptions::Context c);
bool helper_allowed(const ProgTypeDesc& d, uint32_t id);

}  // namespace ebpfvm::detail
