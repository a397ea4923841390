// ebpfvm-asm IN.s [-o OUT.bin] [--hex]: assemble llvm-objdump-style BPF text into bytecode.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace ebpfvm;
  CLI::App app{"Assemble BPF text (llvm-objdump syntax) into raw bytecode"};
  std::string in, out;
  bool hex = false;
  app.add_option("input", in, "assembler source")->required();
  app.add_option("-o,--output", out, "bytecode file (8 bytes per instruction); default: hex on stdout");
  app.add_flag("--hex", hex, "write hex text instead of binary");
  CLI11_PARSE(app, argc, argv);

  auto text = tools::read_file(in);
  if (!text) return std::fprintf(stderr, "ebpfvm-asm: %s\n", text.error().to_string().c_str()), 1;
  auto code = assemble(std::string_view(reinterpret_cast<const char*>(text->data()), text->size()));
  if (!code) {
    code.error().where.file = in;
    std::fprintf(stderr, "ebpfvm-asm: %s\n", code.error().to_string().c_str());
    return 1;
  }
  if (out.empty() || hex) {
    std::string h = tools::to_hex(*code);
    if (out.empty()) return std::fputs(h.c_str(), stdout) < 0;
    auto r = tools::write_file_atomic(out, std::span(reinterpret_cast<const uint8_t*>(h.data()), h.size()));
    if (!r) return std::fprintf(stderr, "ebpfvm-asm: %s\n", r.error().to_string().c_str()), 1;
    return 0;
  }
  auto r = tools::write_file_atomic(out, *code);
  if (!r) return std::fprintf(stderr, "ebpfvm-asm: %s\n", r.error().to_string().c_str()), 1;
  return 0;
}
