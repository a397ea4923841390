#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test in three configurations:
#   build/release  optimised, -Werror; then the kernel-differential tests shown, and their skip paths
#   build/arm64    cross-compiled for arm64, run under qemu-aarch64 (the AArch64 JIT backend)
#   build/asan     AddressSanitizer + UndefinedBehaviorSanitizer
# then builds the libFuzzer targets with clang (build/fuzz) and runs each for a bounded time: the
# loader (from a corpus of every BPF object the tests use), JIT-versus-interpreter differential,
# verifier containment, the capture reader and writer, the JSON map loader, globals set on hostile
# objects, maps filled by a running program, and the verifier against the kernel's.
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

# The kernel-differential tests again, shown: what they compared against this host's kernel and
# what they skipped, and why. Then their skip paths, so that a host that differs cannot break CI
# and a probe cannot hide a real disagreement: without the capabilities bpf() needs they must pass
# comparing nothing; told that the kernel refuses bpf_xdp_adjust_meta (as some Linux 6.18 builds
# do) they must skip that one program and compare the rest; with one byte of the kernel's output
# flipped they must fail.
expect_line() {  # PATTERN LOG: fails the run unless LOG has a line matching PATTERN
  grep -q "$1" "$2" || { echo "=== expected a line matching '$1' in the output above"; exit 1; }
}
kernel_checks() {
  local tests=$1 log=build/kernel-diff.log
  echo "=== kernel differential, shown"
  "$tests" "[kernel]" | tee "$log"
  if grep -q "NOTHING was compared" "$log"; then
    echo "=== (this host allows no kernel comparison: its skip paths are what ran above)"
    return
  fi
  echo "=== kernel differential without CAP_BPF, CAP_SYS_ADMIN, CAP_PERFMON, CAP_NET_ADMIN: passes, comparing nothing"
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --bounding-set=-all --inh-caps=-all "$tests" "[kernel]" | tee "$log"
    expect_line "^SKIP every kernel comparison: this process may not load XDP programs" "$log"
    expect_line "NOTHING was compared" "$log"
  else
    echo "(not root: setpriv cannot drop capabilities here; skipped)"
  fi
  echo "=== kernel differential on a kernel said to refuse bpf_xdp_adjust_meta: that program alone is skipped"
  EBPFVM_TEST_KERNEL_REFUSES=helper:54 "$tests" "[kernel]" | tee "$log"
  expect_line "^SKIP adjust.o set_meta: kernel refuses helper bpf_xdp_adjust_meta (54) for xdp" "$log"
  expect_line "^kernel differential: compared .* skipped 1$" "$log"
  echo "=== kernel differential with one byte of the kernel's output flipped: must fail"
  if EBPFVM_TEST_KERNEL_CORRUPT=1 "$tests" "[kernel]" > "$log" 2>&1; then
    cat "$log"
    echo "=== a flipped byte went unnoticed: the comparison compares nothing"
    exit 1
  fi
  expect_line "CHECK( mine == k_bytes )" "$log"
  expect_line "CHECK( mine == theirs )" "$log"  # bpf_fib_lookup's, in a network namespace
  echo "it failed on the flipped byte, as it must"
}
kernel_checks build/release/tests/ebpfvm_tests

# The live AF_XDP tests make network namespaces and veth pairs of their own: shown, then their skip
# path, without the capabilities that takes (they must pass, each saying why it skipped).
echo "=== live AF_XDP tests (veth pairs in namespaces of their own), shown"
build/release/tests/ebpfvm_tests "[live]" | tee build/live.log
if [ "$(id -u)" -eq 0 ] && ! grep -q "^SKIP the live AF_XDP tests" build/live.log; then
  echo "=== live AF_XDP tests without CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_NET_RAW: pass, skipping with the reason"
  setpriv --bounding-set=-all --inh-caps=-all build/release/tests/ebpfvm_tests "[live]" | tee build/live.log
  expect_line "^SKIP the live AF_XDP tests: " build/live.log
fi

quiet_ctest() {  # DIR: ctest's summary only, its whole output when something fails
  if ! ctest --test-dir "$1" -j "$jobs" --output-on-failure > build/ctest-again.log 2>&1; then
    cat build/ctest-again.log
    exit 1
  fi
  tail -n 3 build/ctest-again.log
}
# The other host dependencies' skip paths: the suite must pass without libxdp1's objects, and on a
# host that refuses executable memory to the JIT (memory-deny-write-execute, Linux 6.3+).
echo "=== tests without libxdp1's objects (LIBXDP_OBJECT_PATH=/nonexistent)"
LIBXDP_OBJECT_PATH=/nonexistent build/release/tests/ebpfvm_tests "every XDP object of libxdp1 loads and runs" | tee build/host-skip.log
expect_line "^SKIP libxdp1's XDP objects: none in /nonexistent" build/host-skip.log
LIBXDP_OBJECT_PATH=/nonexistent quiet_ctest build/release
echo "=== tests on a host that refuses executable memory (EBPFVM_TEST_NO_EXEC_MEMORY=1)"
EBPFVM_TEST_NO_EXEC_MEMORY=1 build/release/tests/ebpfvm_tests "[jit]" | tee build/host-skip.log
if ! grep -q "^EBPFVM_TEST_NO_EXEC_MEMORY: this kernel has no memory-deny-write-execute" build/host-skip.log; then
  expect_line "^SKIP the tests that run JIT code: this host refuses executable memory to the JIT" build/host-skip.log
  EBPFVM_TEST_NO_EXEC_MEMORY=1 quiet_ctest build/release
fi

# arm64: the library, the tests and the tools cross-compiled (Debian's aarch64 g++ and :arm64
# packages) and run under qemu-aarch64 user-mode emulation, so that the AArch64 JIT backend runs
# everything the x86-64 one does: every semantics case, every test program, the JIT/interpreter
# differentials (the generated programs and the fuzz target's input function), the verifier's
# soundness tests, ubpf-run and the conformance plugin (run through qemu too: EBPFVM_TEST_EMULATOR).
# Not the kernel comparisons or the live AF_XDP tests: bpf() and AF_XDP are the host kernel's.
# Twice for the atomics: a CPU with ARMv8.1's LSE instructions (qemu's default, "max") and a
# Cortex-A53 (ARMv8.0: exclusive load/store loops).
echo "=== configure build/arm64 (cross-compiled for arm64; tests run under qemu-aarch64)"
# libxdp1's XDP objects are BPF bytecode, the same for every CPU: the host's copies.
cmake -S . -B build/arm64 -G Ninja -DEBPFVM_WERROR=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DEBPFVM_PYTHON=OFF -DEBPFVM_BENCH=OFF \
  -DEBPFVM_LIBXDP_OBJECT_DIR="$(grep '^EBPFVM_LIBXDP_OBJECT_DIR:' build/release/CMakeCache.txt | cut -d= -f2-)" > /dev/null
echo "=== build build/arm64"
cmake --build build/arm64 -j "$jobs"
qemu="qemu-aarch64"  # the multiarch runtime (cmake/aarch64-linux-gnu.cmake says why not -L)
echo "=== test build/arm64 under qemu-aarch64 (every test but [kernel] and [live])"
EBPFVM_TEST_EMULATOR="$qemu" EBPFVM_TEST_JIT_FUZZ_RUNS=10000 $qemu build/arm64/tests/ebpfvm_tests "~[kernel]~[live]" \
  > build/arm64.log 2>&1 || { cat build/arm64.log; echo "=== the arm64 tests failed"; exit 1; }
grep -E "^(AArch64 atomics|jit differential fuzz inputs|SKIP)" build/arm64.log || true
tail -n 2 build/arm64.log
expect_line "^AArch64 atomics on this CPU: LSE" build/arm64.log
echo "=== the JIT's semantics, random-program and test-program comparisons again on a Cortex-A53 (no LSE: exclusive load/store loops)"
EBPFVM_TEST_EMULATOR="qemu-aarch64 -cpu cortex-a53" qemu-aarch64 -cpu cortex-a53 \
  build/arm64/tests/ebpfvm_tests "jit: every semantics case*,jit targets*,jit: random programs*,plugin --jit*,engines: the JIT and the interpreter agree*" \
  > build/arm64-a53.log 2>&1 || { cat build/arm64-a53.log; echo "=== the arm64 tests failed on a Cortex-A53"; exit 1; }
tail -n 2 build/arm64-a53.log
expect_line "^AArch64 atomics on this CPU: exclusive loops" build/arm64-a53.log

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_config build/asan -DCMAKE_BUILD_TYPE=Debug -DEBPFVM_SANITIZE=ON -DEBPFVM_BENCH=OFF -DEBPFVM_PYTHON=OFF

echo "=== pip install --no-build-isolation . in a virtual environment (Debian's pytest and scapy through --system-site-packages)"
rm -rf build/venv
/usr/bin/python3 -m venv --system-site-packages build/venv
build/venv/bin/pip install -q --no-build-isolation --no-index . > build/pip.log 2>&1 || { cat build/pip.log; exit 1; }
# the installed package, not the build tree's, runs the examples (from outside the source tree)
(cd build && EBPFVM_OBJECTS="$PWD/release/examples" venv/bin/python -m pytest -q -p no:cacheprovider ../examples/python)
build/venv/bin/python -c 'import ebpfvm, sys; assert "/build/venv/" in ebpfvm.__file__, ebpfvm.__file__; print("installed:", ebpfvm.__file__)'

echo "=== fuzz build/fuzz (clang, libFuzzer + ASan + UBSan)"
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBPFVM_FUZZ=ON \
  -DEBPFVM_SANITIZE=ON -DEBPFVM_TESTS=OFF -DEBPFVM_BENCH=OFF -DEBPFVM_EXAMPLES=OFF > /dev/null
cmake --build build/fuzz -j "$jobs" --target loader_fuzz jit_diff_fuzz verifier_fuzz capture_fuzz maps_json_fuzz globals_fuzz map_growth_fuzz \
  kernel_diff_fuzz fib_fuzz filter_fuzz skb_fuzz
corpus=build/fuzz/corpus/loader
for c in loader jit verifier capture maps_json globals map_growth kernel_diff fib filter skb; do mkdir -p build/fuzz/corpus/$c; done
cp build/release/tests/programs/*.o build/release/examples/*.o "$corpus"/
libxdp_objects=$(grep '^EBPFVM_LIBXDP_OBJECT_DIR:' build/release/CMakeCache.txt | cut -d= -f2-)
if compgen -G "$libxdp_objects/*.o" > /dev/null; then cp "$libxdp_objects"/*.o "$corpus"/; else echo "(no libxdp1 objects in $libxdp_objects)"; fi
cp "$corpus"/*.o build/fuzz/corpus/globals/
# Seeds from what the tests use: a generated capture, as pcap and as the pcapng ubpf-run writes; one
# JSON document per map kind; packets of map_filler operations.
build/release/examples/gen_pcap build/fuzz/corpus/capture/sample.pcap 24 > /dev/null
build/release/ubpf-run build/release/examples/firewall.o --pcap build/fuzz/corpus/capture/sample.pcap \
  -w build/fuzz/corpus/capture/sample.pcapng --write-actions all > /dev/null
cp fuzz/seeds/maps_json/*.json build/fuzz/corpus/maps_json/
printf '\x10\x00\x05\x01\x00\x00\x05\x02\x01\x07\x01\x02\x03\x08\x00\x00\x00\x0c\x0b\x0a\x00\x01\x18\x0e\x00\x01\x01\x0f\x00\x00\x01' \
  > build/fuzz/corpus/map_growth/ops
# The FIB test network's ip -j listings, then lookups of 192.0.2.5 and 2001:db8:99::5 from lo.
zeros() { head -c "$1" /dev/zero; }
{ cat tests/data/fib/addr.json; zeros 1; cat tests/data/fib/route4.json tests/data/fib/route6.json | tr -d '\n' | sed 's/\]\[/,/'; zeros 1
  cat tests/data/fib/neigh.json; zeros 1
  printf '\x02'; zeros 5; printf '\x64\x00\x01'; zeros 23; printf '\xc0\x00\x02\x05'; zeros 28; printf '\x40'
  printf '\x0b'; zeros 5; printf '\x64\x00\x01'; zeros 23; printf '\x20\x01\x0d\xb8\x00\x99'; zeros 9; printf '\x05'; zeros 16; printf '\x50'
} > build/fuzz/corpus/fib/network
# fuzz TARGET CORPUS RUNS: a fixed seed and count, so that CI repeats exactly what passed here;
# FUZZ_SEED/FUZZ_SCALE vary it for longer hunts. On a finding, prints its log and fails.
# Further arguments go to libFuzzer.
fuzz() {
  local target=$1 dir=$2 runs=$(( $3 * ${FUZZ_SCALE:-1} ))
  shift 3
  echo "--- $target ($runs runs)"
  if ! ASAN_OPTIONS=detect_leaks=1 "build/fuzz/fuzz/$target" -seed="${FUZZ_SEED:-1}" -runs="$runs" -rss_limit_mb=4096 \
      -timeout=10 -print_final_stats=1 -artifact_prefix=build/fuzz/ "$@" "$dir" > "build/fuzz/$target.log" 2>&1; then
    tail -n 80 "build/fuzz/$target.log"
    echo "=== $target found a problem; the input is in build/fuzz/ (crash-*, timeout-*, oom-*, leak-*)"
    exit 1
  fi
  tail -n 6 "build/fuzz/$target.log"
}
fuzz loader_fuzz "$corpus" 40000
fuzz jit_diff_fuzz build/fuzz/corpus/jit 20000
fuzz verifier_fuzz build/fuzz/corpus/verifier 20000
fuzz capture_fuzz build/fuzz/corpus/capture 40000
fuzz maps_json_fuzz build/fuzz/corpus/maps_json 40000
fuzz globals_fuzz build/fuzz/corpus/globals 10000
fuzz fib_fuzz build/fuzz/corpus/fib 40000
fuzz filter_fuzz build/fuzz/corpus/filter 40000
fuzz skb_fuzz build/fuzz/corpus/skb 40000
# Its maps live across inputs (loading and verifying the program per input would be most of the
# time), and their nodes are reclaimed a little later than the input that freed them: a leak scan
# after each input would find those in flight, so leaks are looked for at exit only.
fuzz map_growth_fuzz build/fuzz/corpus/map_growth 20000 -detect_leaks=0
# Against the kernel's verifier where this process may load programs (otherwise its log says SKIP).
fuzz kernel_diff_fuzz build/fuzz/corpus/kernel_diff 20000
echo "=== all tests passed in every configuration (release, arm64 under qemu, ASan); fuzzing found nothing"
