#!/usr/bin/env bash
# Installs every Debian package ebpfvm needs to build, test and benchmark.
# Idempotent: packages already present are skipped; apt-get update runs at most once.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  catch2                       # tests (Catch2 v2, single header)
  libasmjit-dev                # JIT emitters
  libelf-dev zlib1g-dev        # ELF loader
  libcli11-dev                 # command-line tools
  libpcap-dev                  # pcap input/output
  tcpdump                      # tests read ubpf-run's output captures with it, and capture what live runs send
  iproute2 procps              # ip and sysctl build the network bpf_fib_lookup is compared on
  libbpf-dev libxdp-dev libxdp1  # bpf_helpers.h for test programs, real XDP objects, AF_XDP
  clang llvm                   # compiles BPF test programs
  clang-19                     # -mcpu=v4 BPF objects (bench/ kernels)
  libclang-rt-dev              # libFuzzer and sanitizer runtimes for clang (fuzz targets)
  valgrind                     # callgrind instruction counts in bench/
  pybind11-dev python3-dev     # the Python package (python/)
  python3-pytest python3-scapy # its tests and the pytest examples
  python3-venv python3-pip python3-setuptools  # pip install --no-build-isolation . in a virtual environment
  # arm64: the AArch64 JIT's tests, cross-compiled and run under qemu-aarch64 user-mode emulation
  qemu-user g++-aarch64-linux-gnu
  libelf-dev:arm64 zlib1g-dev:arm64 libpcap-dev:arm64 libasmjit-dev:arm64 libbpf-dev:arm64
  libstdc++6:arm64             # the multiarch runtime the emulated tests load (not the cross toolchain's copy)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# The :arm64 development packages come from Debian's arm64 archive (multiarch).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding the arm64 architecture (multiarch) for the cross-compiled tests"
  $sudo dpkg --add-architecture arm64
fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
