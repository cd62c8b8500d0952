#!/usr/bin/env bash
# utipc demo: builds utipc, creates two network namespaces joined by a veth pair, starts a
# utipcd in each (Ethernet bearer: AF_XDP when the machine allows it, else AF_PACKET), waits
# for the link, then runs applications attached to the daemons through shared memory: an echo
# server in one namespace, ping and throughput runs from the other, a stream connection, and a
# topology subscription; prints the results and cleans up.
# Needs root (network namespaces); installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_cargo
ensure_packages iproute2

echo "==> building utipc (release)"
cargo build -q --release --locked -p utipc-control --bins
utipc=$PWD/target/release/utipc
utipcd=$PWD/target/release/utipcd

if [ "$(id -u)" -ne 0 ]; then
    echo "note: not root, so no network namespaces: showing the codec only" >&2
    "$utipc" decode tests/fixtures/pcap/eth-02-link-setup.pcap
    exit 0
fi

tag="utdemo-$$"
a="$tag-a"
b="$tag-b"
work=$(mktemp -d "${TMPDIR:-/tmp}/$tag.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$work"
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

# wait_log FILE TEXT SECONDS: waits (bounded) for a line in a daemon's log.
wait_log() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}

echo "==> utipcd in each namespace (--bearer eth:veth0, --idle backoff)"
for ns in "$a" "$b"; do
    mkdir -p "$work/$ns"
    ip netns exec "$ns" "$utipcd" --id "demo-${ns##*-}" --bearer eth:veth0 --idle backoff \
        --run-dir "$work/$ns" 2> "$work/$ns.log" &
    pids+=("$!")
done
wait_log "$work/$a.log" "link up" 15
wait_log "$work/$b.log" "link up" 15
grep -h -E "AF_XDP|AF_PACKET|link up" "$work/$a.log" | sed 's/^/   /' | cut -c1-150
"$utipc" link list --run-dir "$work/$a"

echo
echo "==> an echo server in $b (datagrams on {18888,17}, streams on {18888,18}), attached to its utipcd"
"$utipc" echo --run-dir "$work/$b" --bind 18888:17 --stream 18888:18 --quiet --duration 60 \
    > "$work/echo.log" 2>&1 &
pids+=("$!")
wait_log "$work/echo.log" "echo: bound" 10

echo "==> a topology subscription in $a: every binding of type 18888 cluster-wide"
"$utipc" subscribe 18888 --ports --run-dir "$work/$a" --count 4 > "$work/sub.log" 2>&1 &
pids+=("$!")

for size in 64 1400 66000; do
    echo "-- ping, $size-byte datagrams, from $a through both daemons"
    "$utipc" ping --run-dir "$work/$a" --to 18888:17 --count 200 --size "$size" --timeout 10 |
        tail -n 1
done
echo "-- throughput, 64-byte and 1400-byte datagrams, 64 in flight"
"$utipc" ping --run-dir "$work/$a" --to 18888:17 --count 20000 --size 64 --window 64
"$utipc" ping --run-dir "$work/$a" --to 18888:17 --count 5000 --size 1400 --window 64

echo
echo "==> the topology events seen in $a"
sleep 0.5
cut -c1-120 "$work/sub.log" | head -n 4

echo
echo "==> and what a kernel TIPC link setup looks like on the wire (decoded by utipc)"
"$utipc" decode tests/fixtures/pcap/eth-02-link-setup.pcap | cut -c1-160
