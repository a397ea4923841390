// Helper functions: one registry that the interpreter, the verifier and the JITs all read.
// A helper's prototype is data: the verifier checks calls against it, the checked interpreter
// validates pointer arguments with it, and the JIT knows from it how many arguments to pass.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm {

// r1..r5 as the program set them, then the context pointer given at registration.
using HelperFn = uint64_t (*)(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5, void* user);

enum class ArgKind : uint8_t {
  None,             // no more arguments
  Anything,         // any scalar value
  ConstMapPtr,      // a map reference (lddw of a map)
  PtrToMapKey,      // readable memory of the map's key size
  PtrToMapValue,    // readable memory of the map's value size
  PtrToMem,         // readable memory; its size is the next argument
  PtrToUninitMem,   // writable memory; its size is the next argument
  ConstSize,        // size of the previous pointer argument, > 0
  ConstSizeOrZero,  // size of the previous pointer argument, may be 0
  PtrToCtx,         // the program's context
  PtrToUninitMapValue,  // writable memory of the map's value size (pop/peek output)
  PtrToFunc,        // a callback: the address of a BPF function (lddw of a function)
  PtrToSpinLock,    // a struct bpf_spin_lock (4 bytes) inside a map value
  PtrToAllocMem,    // a ring buffer reservation from bpf_ringbuf_reserve
  PtrToMemOrNull,   // like PtrToMem, or 0 when the size argument is 0
  PtrToInt,         // writable 4 bytes (the kernel's ARG_PTR_TO_INT)
  PtrToLong,        // writable 8 bytes (ARG_PTR_TO_LONG)
  // Like PtrToMemOrNull, but the 8-byte words there may be pointers: the helper formats them
  // (bpf_trace_vprintk's arguments, %s read with a fault-tolerant copy), as root's loader lets the
  // kernel's do. Output goes to the operator's log, never to the program's memory, maps or packets.
  PtrToFormatArgsOrNull,
};

enum class RetKind : uint8_t {
  Integer,         // a scalar
  Void,            // r0 is undefined after the call
  MapValueOrNull,  // pointer to a map value (or, for a map of maps, the inner map), or 0
  AllocMemOrNull,  // writable memory of the size in the second argument, or 0
};

// What a call does to the resources the verifier tracks for the program, as the kernel does: a
// reference taken must be given back exactly once on every path and is unusable after; one spin
// lock at a time, given back before any other call and before the program (or function) returns.
enum class Resource : uint8_t {
  None,
  AcquiresRef,  // r0, when not null, is a new reference (bpf_ringbuf_reserve)
  ReleasesRef,  // gives back the reference in the first argument (bpf_ringbuf_submit, _discard)
  TakesLock,    // takes the spin lock the first argument points at (bpf_spin_lock)
  GivesLock,    // gives it back (bpf_spin_unlock)
};

struct HelperProto {
  RetKind ret = RetKind::Integer;
  std::array<ArgKind, 5> args{};  // ArgKind::None after the last argument
  // The helper may move or resize the packet (bpf_xdp_adjust_head...): packet pointers the
  // program held are stale after the call, and the verifier forgets them.
  bool changes_packet_data = false;
  // The helper may write the packet's bytes (bpf_xdp_store_bytes; bpf_tail_call runs a program
  // that may). Helpers that move the packet count as writing it too.
  bool writes_packet = false;
  Resource resource = Resource::None;

  unsigned arg_count() const;
};

struct Helper {
  uint32_t id = 0;
  std::string name;
  HelperFn fn = nullptr;
  void* user = nullptr;  // passed as the last argument of fn
  HelperProto proto;
};

class HelperRegistry {
 public:
  // Fails when the id or name is taken or fn is null.
  Result<void> add(Helper helper);
  const Helper* find(uint32_t id) const;
  const Helper* find(std::string_view name) const;
  // Adds or replaces by id (an embedder overriding a built-in helper).
  void set(Helper helper);

  // The Linux helpers ebpfvm implements (map access, time, printk, XDP, ring buffers, ...),
  // with their kernel ids, names and prototypes.
  static const HelperRegistry& builtin();
  std::span<const Helper> all() const { return helpers_; }

 private:
  std::vector<Helper> helpers_;
  std::unordered_map<uint32_t, size_t> by_id_;
};

}  // namespace ebpfvm
