#!/usr/bin/env bash
# utipc demo. Until the dataplane lands, it shows the wire codec at work: it builds `utipc`,
# decodes a real Linux kernel TIPC link setup (discovery, RESET/ACTIVATE, STATE, broadcast init,
# name-table bulk), and proves byte-exact re-emission over every kernel capture.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_cargo

echo "==> building utipc (release)"
cargo build -q --release --locked -p utipc-control --bin utipc
utipc=target/release/utipc

echo
echo "==> a kernel TIPC link coming up, as utipc decodes it (tests/fixtures/pcap/eth-02-link-setup.pcap)"
"$utipc" decode tests/fixtures/pcap/eth-02-link-setup.pcap

echo
echo "==> a bundle of 19 datagrams, descended into (eth-05 frame 88)"
"$utipc" decode tests/fixtures/pcap/eth-05-bundling-burst.pcap | awk '$1 == 88' | head -5

echo
echo "==> re-emitting every message of every kernel capture from its parsed form"
"$utipc" decode --check tests/fixtures/pcap/*.pcap | tail -n 1
