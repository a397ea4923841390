#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job on the bundled example: the XDP firewall
# of examples/firewall.c (compiled with clang -target bpf) over a generated capture of mixed
# traffic, with ubpf-run. It also shows the same firewall embedded in a packet loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release -j "$(nproc)" --target ubpf-run gen_pcap packet_loop example_programs > /dev/null
build/release/examples/gen_pcap build/release/sample.pcap 100000
echo "--- maps of examples/firewall.c:"
build/release/ubpf-run maps build/release/examples/firewall.o
echo "--- a library user's packet loop (examples/packet_loop.cpp):"
build/release/examples/packet_loop build/release/examples/firewall.o 20000
echo "--- ubpf-run build/release/examples/firewall.o --pcap build/release/sample.pcap (100,000 packets):"
echo '{"allowed_tcp": [{"key": ["0x50", "0x00"], "value": ["0x01"]}, {"key": ["0xbb", "0x01"], "value": ["0x01"]}]}' \
  > build/release/allow-web.json
build/release/ubpf-run build/release/examples/firewall.o --pcap build/release/sample.pcap \
  --map-load build/release/allow-web.json --global cfg_max_packets=5000 -w build/release/passed.pcap
