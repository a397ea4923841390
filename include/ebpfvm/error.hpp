// Errors and results: every public entry point returns a Result; nothing throws across the API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ebpfvm {

enum class Errc {
  InvalidArgument,   // the caller passed something unusable (bad option, empty buffer...)
  MalformedProgram,  // bytecode that does not decode
  AssemblyError,     // assembler text that does not parse
  UnknownHelper,     // a call to a helper id that is not registered
  Unsupported,       // valid input that this build cannot run yet
  RuntimeFault,      // an unverified program misbehaved at run time (checked mode)
  Io,                // a file could not be read or written
  MalformedObject,   // an ELF object or its BTF that does not parse
  NotFound,          // no such program, map, variable or map key (-ENOENT)
  Exists,            // the map key exists and BPF_NOEXIST was given (-EEXIST)
  MapFull,           // the map has max_entries elements (-E2BIG)
  PermissionDenied,  // a frozen (read-only) map was written (-EPERM)
  VerifierRejected,  // the verifier could not prove the program safe
  OutOfMemory,       // the host had no memory for it (-ENOMEM)
};

const char* to_string(Errc);

// Where an error happened, as far as it is known.
struct Where {
  std::string file;
  std::string section;
  std::string program;
  std::optional<uint32_t> insn;  // instruction (slot) index; in a loaded program, of its linked code (as disasm numbers it)
  std::string function;          // the function of the program the instruction is in, when not its entry: "name+offset"
  std::optional<uint32_t> line;  // line in an assembler source or C file
  std::string source;            // the source line, when known
};

struct Error {
  Errc code = Errc::InvalidArgument;
  std::string message;
  Where where;
  // More lines for people, when there is more to say: for a verifier rejection, the instruction
  // and the abstract values of the registers there (and, in verbose mode, every state before).
  std::string detail;

  // One line for people: "file: section S: program P: insn 5: message".
  std::string to_string() const;
};

Error make_error(Errc code, std::string message);
Error make_error_at(Errc code, uint32_t insn, std::string message);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  // A value built in place (no move of a large T on a hot path).
  template <class... A>
  explicit Result(std::in_place_t, A&&... args) : v_(std::in_place_index<0>, std::forward<A>(args)...) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }
  Error& error() { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT

  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }
  Error& error() { return *e_; }

 private:
  std::optional<Error> e_;
};

}  // namespace ebpfvm
