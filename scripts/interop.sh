#!/usr/bin/env bash
# interop.sh: runs utipc's interoperability tests against real Linux-kernel TIPC nodes (qemu
# guests booted by scripts/kernel-peer.sh) and prints what they measured.
#
# Usage: scripts/interop.sh [--release] [--keep] [eth|udp|replicast]...
#   eth        interop_eth: Ethernet bearer (AF_PACKET), tests a-e
#   udp        interop_udp_multicast: UDP bearer, multicast discovery, tests a-e
#   replicast  interop_udp_replicast: UDP bearer with configured peers (remote= / remoteip)
#   conn       interop_conn_topology: connections and topology subscriptions through utipcd
#   (none)     all four, one after the other (about 110 s)
#   --release  build and run optimised (the RTTs then show less of utipc's debug build)
#   --keep     keep every log, capture and decoded capture (a failing test always keeps them)
#
# Needs root. The tests live in control/tests/interop_kernel.rs; this runs them with
# UTIPC_REQUIRE_KERNEL_PEER=1 (fail rather than skip), one at a time, with their output shown.
# The whole output is also written to ${TMPDIR:-/tmp}/utipc-interop.log.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=()
filters=()
while [ $# -gt 0 ]; do
    case "$1" in
    --release) profile=(--release) ;;
    --keep) export UTIPC_INTEROP_KEEP=1 ;;
    eth) filters+=(interop_eth) ;;
    udp) filters+=(interop_udp_multicast) ;;
    replicast) filters+=(interop_udp_replicast) ;;
    conn) filters+=(interop_conn_topology) ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "interop.sh: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "interop.sh: run as root (netns, veth, tap, qemu)" >&2; exit 2; }

export UTIPC_REQUIRE_KERNEL_PEER=1
log=${TMPDIR:-/tmp}/utipc-interop.log
set +e
cargo test "${profile[@]}" -p utipc-control --test interop_kernel -- \
    --nocapture --test-threads=1 --exact "${filters[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo
echo "== measurements (also in $log)"
grep -E '^\[interop\]' "$log" |
    grep -E 'ping|SIG|after qemu start|SUMMARY|decode|without reset|done in|^\[interop\] *(i|ii|iii|iv|v)\.' ||
    true
exit "$rc"
