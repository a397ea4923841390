// ebpfvm-disasm PROG.bin [--hex] [--bytes] [--no-index]: print bytecode as llvm-objdump-style text.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace ebpfvm;
  CLI::App app{"Disassemble raw BPF bytecode"};
  std::string in;
  bool hex = false, bytes = false, no_index = false;
  app.add_option("input", in, "bytecode file (8 bytes per instruction)")->required();
  app.add_flag("--hex", hex, "the input is hex text, as ebpfvm-asm --hex writes");
  app.add_flag("--bytes", bytes, "show the encoded bytes of each instruction");
  app.add_flag("--no-index", no_index, "omit instruction indexes");
  CLI11_PARSE(app, argc, argv);

  auto data = tools::read_file(in);
  if (!data) return std::fprintf(stderr, "ebpfvm-disasm: %s\n", data.error().to_string().c_str()), 1;
  if (hex) {
    auto parsed = tools::parse_hex(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()));
    if (!parsed) return std::fprintf(stderr, "ebpfvm-disasm: %s: %s\n", in.c_str(), parsed.error().message.c_str()), 1;
    data = std::move(parsed);
  }
  auto text = disassemble(*data, {.show_index = !no_index, .show_bytes = bytes});
  if (!text) {
    text.error().where.file = in;
    std::fprintf(stderr, "ebpfvm-disasm: %s\n", text.error().to_string().c_str());
    return 1;
  }
  std::fputs(text->c_str(), stdout);
  return 0;
}
