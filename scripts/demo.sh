#!/usr/bin/env bash
# Installs what is missing, builds, and runs the bundled examples: an RFC 1071 checksum in the
# ebpfvm interpreter, then an XDP firewall (examples/firewall.c) embedded in a packet loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release -j "$(nproc)" --target ebpfvm-exec ebpfvm-disasm ebpfvm-asm packet_loop > /dev/null
echo "--- examples/checksum.s, assembled and disassembled:"
build/release/ebpfvm-asm examples/checksum.s -o build/release/checksum.bin
build/release/ebpfvm-disasm build/release/checksum.bin
echo "--- run over examples/ipv4-header.hex (expected checksum 0xb861):"
build/release/ebpfvm-exec examples/checksum.s --mem examples/ipv4-header.hex --repeat 100000
echo "--- examples/firewall.c (an XDP firewall built with clang -target bpf) in a packet loop:"
build/release/examples/packet_loop build/release/examples/firewall.o 100000
