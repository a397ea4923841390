#pragma once

#include <vector>

#include "ebpfvm/program.hpp"
#include "isa/isa.hpp"

namespace ebpfvm::detail {

struct ProgramData {
  std::vector<uint8_t> bytecode;
  isa::Program decoded;
};

}  // namespace ebpfvm::detail
