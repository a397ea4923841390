#include "ebpfvm/error.hpp"

namespace ebpfvm {

const char* to_string(Errc code) {
  switch (code) {
    case Errc::InvalidArgument: return "invalid argument";
    case Errc::MalformedProgram: return "malformed program";
    case Errc::AssemblyError: return "assembly error";
    case Errc::UnknownHelper: return "unknown helper";
    case Errc::Unsupported: return "unsupported";
    case Errc::RuntimeFault: return "runtime fault";
    case Errc::Io: return "i/o error";
    case Errc::MalformedObject: return "malformed object";
    case Errc::NotFound: return "not found";
    case Errc::Exists: return "exists";
    case Errc::MapFull: return "map full";
    case Errc::PermissionDenied: return "permission denied";
    case Errc::VerifierRejected: return "verifier rejected the program";
    case Errc::OutOfMemory: return "out of memory";
  }
  return "error";
}

std::string Error::to_string() const {
  std::string out;
  auto part = [&out](const std::string& s) {
    if (!s.empty()) out += s + ": ";
  };
  part(where.file);
  if (!where.section.empty()) part("section " + where.section);
  if (!where.program.empty()) part("program " + where.program);
  if (where.line) part("line " + std::to_string(*where.line));
  if (where.insn) part("insn " + std::to_string(*where.insn) + (where.function.empty() ? "" : " (" + where.function + ")"));
  out += message;
  if (!where.source.empty()) out += "\n  " + where.source;
  return out;
}

Error make_error(Errc code, std::string message) {
  return Error{code, std::move(message), {}, {}};
}

Error make_error_at(Errc code, uint32_t insn, std::string message) {
  Error e{code, std::move(message), {}, {}};
  e.where.insn = insn;
  return e;
}

}  // namespace ebpfvm
