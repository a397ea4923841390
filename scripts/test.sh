#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test in two configurations:
#   build/release  optimised, -Werror
#   build/asan     AddressSanitizer + UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

jobs=$(nproc)
run_config() {
  local dir=$1; shift
  echo "=== configure $dir"
  cmake -S . -B "$dir" -G Ninja -DEBPFVM_WERROR=ON "$@" > /dev/null
  echo "=== build $dir"
  cmake --build "$dir" -j "$jobs"
  echo "=== test $dir"
  ctest --test-dir "$dir" -j "$jobs" --output-on-failure
}

run_config build/release -DCMAKE_BUILD_TYPE=Release
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_config build/asan -DCMAKE_BUILD_TYPE=Debug -DEBPFVM_SANITIZE=ON -DEBPFVM_BENCH=OFF
echo "=== all tests passed in both configurations"
