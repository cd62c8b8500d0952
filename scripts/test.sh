#!/usr/bin/env bash
# Runs every check and test of utipc: fmt, clippy, the whole test suite, decode --check over
# the kernel captures, API docs, and a short fuzz run. Installs what is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_cargo
# tshark: the codec's frames are checked against Wireshark's TIPC dissector.
ensure_packages tshark clang libbpf-dev iproute2 tcpdump
export UTIPC_REQUIRE_TSHARK=1
# Bearer and daemon tests run real sockets in network namespaces: as root they must not skip.
if [ "$(id -u)" -eq 0 ]; then
    export UTIPC_REQUIRE_NETNS=1
    # Interop with Linux kernel TIPC under qemu: scripts/kernel-peer.sh installs qemu, the
    # Debian kernel and busybox itself; building the guest image first keeps test timing clean.
    export UTIPC_REQUIRE_KERNEL_PEER=1
    scripts/kernel-peer.sh build >/dev/null
fi

start=$(date +%s)
step() { echo; echo "==> $* (t+$(( $(date +%s) - start ))s)"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "utipc decode --check on every kernel capture"
decode_log="${TMPDIR:-/tmp}/utipc-decode.log"
if ! cargo run -q --locked -p utipc-control --bin utipc -- decode --check \
        tests/fixtures/pcap/*.pcap tests/fixtures/pcapng/*.pcapng > "$decode_log"; then
    grep -E "DIFFERS|error=" "$decode_log" | head -20
    tail -n 1 "$decode_log"
    exit 1
fi
tail -n 1 "$decode_log"

step "API docs (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q

step "fuzz the frame parser"
if [ -x scripts/fuzz.sh ]; then
    scripts/fuzz.sh "${UTIPC_FUZZ_SECONDS:-30}"
fi

step "all checks passed"
