// ubpf-run test SPEC: a declarative unit test of a BPF program (JSON), run case by case with the
// program's state carried over, reported as TAP (and JUnit XML with --junit).
#pragma once

#include <string>

namespace ubpf {

struct SpecOptions {
  std::string spec;
  std::string engine;  // "" : the spec's, else jit where the host allows it
  std::string junit;   // JUnit XML written here when set
};

// 0: every case passed; 1: some failed; 2: the spec (or what it names) could not be read or loaded.
int run_spec(const SpecOptions& o);

}  // namespace ubpf
