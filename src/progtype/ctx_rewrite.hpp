// Context accesses: which loads read the program's context, and their rewriting.
//
// The kernel learns from its verifier which registers hold the context and rewrites loads of
// struct xdp_md's u32 data/data_end/data_meta into loads of the real 64-bit pointers. ebpfvm does
// the same before the verifier exists, with a small forward dataflow analysis that tracks only
// "is this register (or 8-byte stack slot) the context pointer?" across the CFG, bpf-to-bpf calls
// and spills. A load whose base may or may not be the context is rejected, as the kernel rejects
// one instruction used with different pointer types; so are stores to the context, loads of
// fields that do not exist, and dereferences of a context pointer that was moved.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ebpfvm/error.hpp"
#include "isa/isa.hpp"

namespace ebpfvm::detail {

// What a load of a context field gives: a number, or one of the packet pointers.
enum class CtxValue : uint8_t { Scalar, Packet, PacketEnd, PacketMeta };

struct CtxField {
  uint32_t off;
  uint32_t size;        // the access size programs use (narrower loads allowed when narrow_ok)
  const char* name;
  bool narrow_ok;       // aligned loads narrower than the field, inside it, are fine
  int32_t rewrite_off;  // -1: read in place; else a 64-bit load from this offset replaces it
  CtxValue value = CtxValue::Scalar;
  // 0: read-only. Otherwise stores of `size` bytes are allowed and keep `store_size` bytes: a
  // narrower store replaces the program's (the kernel keeps tc_classid in 16 bits).
  uint8_t store_size = 0;
  bool any_access = false;  // any aligned access of 1 to 8 bytes inside the field (struct __sk_buff's cb)
};

// The field an access of `size` bytes at `off` reaches, or null when it may not (a store to a
// read-only field, a misaligned or partial access).
const CtxField* ctx_field_for(std::span<const CtxField> fields, int64_t off, unsigned size, bool write);

// Rewrites, in `bytes` (the linked program's encoding), every context load that needs it.
// Errors carry the instruction index. For programs loaded unverified: the analysis is this file's.
Result<void> rewrite_ctx_accesses(const isa::Program& prog, std::span<const CtxField> fields, std::vector<uint8_t>& bytes);

// For verified programs: rewrites exactly `loads`, the instructions the verifier proved to read
// (or write) one of `fields` through the context on every path (verifier::Input::rewritten_loads). One
// analysis decides: a context reached through a copy of r10 or a caller's stack slot is the
// context wherever the verifier can follow it.
Result<void> rewrite_ctx_loads(const isa::Program& prog, std::span<const CtxField> fields, std::span<const uint32_t> loads,
                               std::vector<uint8_t>& bytes);


// struct xdp_md's fields: the XDP description's (progtype/progtype.hpp), for tests and fuzzers.
std::span<const CtxField> xdp_ctx_fields();

}  // namespace ebpfvm::detail
