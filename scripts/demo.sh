#!/usr/bin/env bash
# utipc demo: builds utipc, creates two network namespaces joined by a veth pair, starts a
# utipc node in each (an echo server and a pinging client, each a whole TIPC node), lets them
# discover each other and set up a link, pings over the UDP bearer and over Ethernet
# (AF_PACKET), prints the results, decodes a few real kernel frames, and cleans up.
# Needs root (network namespaces); installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_cargo
ensure_packages iproute2

echo "==> building utipc (release)"
cargo build -q --release --locked -p utipc-control --bins
utipc=$PWD/target/release/utipc

if [ "$(id -u)" -ne 0 ]; then
    echo "note: not root, so no network namespaces: showing the codec only" >&2
    "$utipc" decode tests/fixtures/pcap/eth-02-link-setup.pcap
    exit 0
fi

tag="utdemo-$$"
a="$tag-a"
b="$tag-b"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT

echo "==> two namespaces, one veth pair: $a 198.18.0.1 <-> $b 198.18.0.2"
ip netns add "$a"
ip netns add "$b"
ip -n "$a" link add veth0 type veth peer name veth0 netns "$b"
ip -n "$a" addr add 198.18.0.1/24 dev veth0
ip -n "$b" addr add 198.18.0.2/24 dev veth0
for ns in "$a" "$b"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set veth0 up
done

run_pair() {
    local bearer=$1
    echo
    echo "==> utipc echo in $b and utipc ping in $a, bearer $bearer"
    ip netns exec "$b" "$utipc" echo --embedded --id demo-echo --bearer "$bearer" \
        --bind 18888:17 --quiet --duration 30 > "${TMPDIR:-/tmp}/$tag-echo.log" 2>&1 &
    local echo_pid=$!
    pids+=("$echo_pid")
    for size in 64 1400 66000; do
        echo "-- $size-byte datagrams"
        ip netns exec "$a" "$utipc" ping --embedded --id demo-ping --bearer "$bearer" \
            --to 18888:17 --count 200 --size "$size" --timeout 10 | tail -n 1
    done
    kill "$echo_pid" 2>/dev/null || true
    wait "$echo_pid" 2>/dev/null || true
}

run_pair udp:veth0
run_pair eth:veth0

echo
echo "==> and what a kernel TIPC link setup looks like on the wire (decoded by utipc)"
"$utipc" decode tests/fixtures/pcap/eth-02-link-setup.pcap | cut -c1-160
