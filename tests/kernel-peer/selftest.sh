#!/usr/bin/env bash
# selftest.sh: proves that the kernel-peer harness works, with real kernel TIPC guests.
#
# Usage: tests/kernel-peer/selftest.sh [SCENARIO...]     (default: eth udp host)
#   eth          echo + client guests on one bridge, Ethernet bearer
#   udp          the same over the UDP bearer, multicast discovery (198.18.1.0/24)
#   udp-unicast  the same over the UDP bearer with --peer-ip on both sides
#   host         one echo guest and a host-side veth (net-up --veth): the host must see the
#                guest's TIPC discovery frames (ethertype 0x88ca); written as a pcap and, if
#                target/debug/utipc exists, decoded with `utipc decode`
#
# Prints host-side timings (from qemu start) and guest-side ones (guest uptime), and exits
# non-zero if any check failed. A pair scenario takes about 15 s on a 2-core TCG machine,
# the host one 25 s.
# Everything it creates carries a per-run tag and is removed at exit; it kills only the qemu
# processes it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
KP=scripts/kernel-peer.sh
TAG=kst$$
OUT=${UTIPC_KPEER_DIR:-/tmp/utipc-kpeer}/selftest-$TAG
mkdir -p "$OUT"

QEMU_PIDS=()
NETNSES=()
FAILS=0

cleanup() {
    local p ns
    for p in "${QEMU_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in "${NETNSES[@]}"; do "$KP" net-down --netns "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        echo "  ok    $what"
    else
        echo "  FAIL  $what"
        FAILS=$((FAILS + 1))
    fi
}
# guest uptime of the first line matching ERE in LOG
up_of() { grep -E -m1 -- "$2" "$1" | tr -d '\r' | sed -n 's/.* up=\([0-9.]*\)$/\1/p'; }

# boot VAR NAME OPTIONS...: boots guest NAME in the background, VAR = its qemu PID
boot() {
    local var=$1 name=$2 pid
    shift 2
    pid=$("$KP" boot --log "$OUT/$name.log" --name "$name" "$@" 2>>"$OUT/boot.err") ||
        { cat "$OUT/boot.err" >&2; return 1; }
    QEMU_PIDS+=("$pid")
    printf -v "$var" '%s' "$pid"
}

# Polls the logs until every "LABEL|LOG|ERE" given has matched, or S seconds pass.
# Sets SEEN[LABEL] to the host time of the first match.
declare -A SEEN
track() {
    local deadline=$1 spec label logf pat pending
    shift
    deadline=$(awk -v n="$(now)" -v d="$deadline" 'BEGIN { printf "%d", n + d }')
    while :; do
        pending=0
        for spec in "$@"; do
            IFS='|' read -r label logf pat <<<"$spec"
            [ -n "${SEEN[$label]:-}" ] && continue
            if grep -qE -- "$pat" "$logf" 2>/dev/null; then SEEN[$label]=$(now); else pending=1; fi
        done
        [ "$pending" = 0 ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# waits (bounded) for a PID to exit
wait_gone() {
    local _
    for _ in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}

# ------------------------------------------------------------ echo + client pair
scenario_pair() { # eth | udp | udp-unicast
    local kind=$1 ns=${TAG}-$1 br=kb$$ a=$1-echo b=$1-client pa pb t0a t0b
    local opts_a=() opts_b=()
    case "$kind" in
    eth) ;;
    udp)
        opts_a=(--bearer udp --ip 198.18.1.11/24)
        opts_b=(--bearer udp --ip 198.18.1.12/24)
        ;;
    udp-unicast)
        opts_a=(--bearer udp --ip 198.18.1.21/24 --peer-ip 198.18.1.22)
        opts_b=(--bearer udp --ip 198.18.1.22/24 --peer-ip 198.18.1.21)
        ;;
    esac
    echo "== $kind: echo + client on bridge $br in netns $ns"
    "$KP" net-up --netns "$ns" --bridge "$br"
    NETNSES+=("$ns")
    SEEN=()
    t0a=$(now)
    boot pa "$a" --id "${kind:0:3}echo" --tap kta$$ --bridge "$br" --netns "$ns" \
        --role echo --timeout 180 "${opts_a[@]}"
    t0b=$(now)
    boot pb "$b" --id "${kind:0:3}client" --tap ktb$$ --bridge "$br" --netns "$ns" \
        --role client --timeout 150 --args "final=1" "${opts_b[@]}"
    track 150 "a_ready|$OUT/$a.log|^KTPEER READY" "b_ready|$OUT/$b.log|^KTPEER READY" \
        "a_link|$OUT/$a.log|^KTPEER TOPO LINK UP" "b_link|$OUT/$b.log|^KTPEER TOPO LINK UP" \
        "b_done|$OUT/$b.log|^KTPEER SUMMARY" || true
    wait_gone "$pb" 30 || echo "  (client guest still running)"
    kill "$pa" 2>/dev/null || true
    wait_gone "$pa" 10 || kill -KILL "$pa" 2>/dev/null || true

    echo "  timings (host clock, from each qemu start):"
    [ -z "${SEEN[a_ready]:-}" ] || echo "    echo   READY     $(secs "${SEEN[a_ready]}" "$t0a") s  (guest uptime $(up_of "$OUT/$a.log" '^KTPEER READY'))"
    [ -z "${SEEN[b_ready]:-}" ] || echo "    client READY     $(secs "${SEEN[b_ready]}" "$t0b") s  (guest uptime $(up_of "$OUT/$b.log" '^KTPEER READY'))"
    [ -z "${SEEN[a_link]:-}" ] || echo "    echo   LINK UP   $(secs "${SEEN[a_link]}" "$t0b") s after the client's qemu start; $(awk -v l="$(up_of "$OUT/$a.log" 'TOPO LINK UP')" -v r="$(up_of "$OUT/$a.log" '^KTPEER BEARER')" 'BEGIN{printf "%.2f", l - r}') s after its own bearer"
    [ -z "${SEEN[b_link]:-}" ] || echo "    client LINK UP   $(secs "${SEEN[b_link]}" "$t0b") s; $(awk -v l="$(up_of "$OUT/$b.log" 'TOPO LINK UP')" -v r="$(up_of "$OUT/$b.log" '^KTPEER BEARER')" 'BEGIN{printf "%.2f", l - r}') s after its own bearer"
    [ -z "${SEEN[b_done]:-}" ] || echo "    client SUMMARY   $(secs "${SEEN[b_done]}" "$t0b") s"
    echo "  results:"
    grep -E '^KTPEER (RESULT|SUMMARY)' "$OUT/$b.log" | sed 's/^/    /'
    check "client printed 9 RESULT lines, all ok" \
        test "$(grep -cE '^KTPEER RESULT [a-z_0-9]+ ok ' "$OUT/$b.log")" -eq 9
    check "client summary ok=9 fail=0" grep -qE '^KTPEER SUMMARY role=client ok=9 fail=0 ' "$OUT/$b.log"
    check "echo console: tipc link list shows the link up" \
        grep -qE '^KTPEER STATUS link [^ ]+:[^ ]+-[^ ]+:[^ ]+: up ' "$OUT/$a.log"
    check "client console: tipc link list shows the link up" \
        grep -qE '^KTPEER STATUS link [^ ]+:[^ ]+-[^ ]+:[^ ]+: up ' "$OUT/$b.log"
    check "client powered off by itself" grep -q '^KTPEER POWEROFF' "$OUT/$b.log"
    check "echo printed received datagrams" grep -qE '^KTPEER RX rdm size=66000 ' "$OUT/$a.log"
    "$KP" net-down --netns "$ns"
    check "netns $ns removed" test ! -e "/run/netns/$ns"
}

# ------------------------------------------------------------ host-side veth
scenario_host() {
    local ns=${TAG}-host br=kh$$ hv=kv$$ a=host-echo pa t0 mac=52:54:00:18:00:aa
    echo "== host: echo guest + host veth $hv on bridge $br in netns $ns"
    "$KP" net-up --netns "$ns" --bridge "$br" --veth "$hv" --addr 198.18.2.1/24 \
        --mac 02:00:c6:12:02:01
    NETNSES+=("$ns")
    SEEN=()
    t0=$(now)
    boot pa "$a" --id hostecho --tap kt$$ --bridge "$br" --netns "$ns" --role echo \
        --timeout 60 --mac "$mac"
    # listen on the host end for 0x88ca frames until 25 s after qemu start
    ip netns exec "$ns" python3 - "$hv" "$OUT/host-discovery.pcap" 25 "$t0" <<'PY' | tee "$OUT/host-capture.txt"
import socket, struct, sys, time
ifname, path, limit, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
ETH_P_TIPC = 0x88CA
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_TIPC))
s.bind((ifname, ETH_P_TIPC))
s.settimeout(0.5)
frames = []
while time.time() - t0 < limit:
    try:
        data = s.recv(65535)
    except socket.timeout:
        continue
    frames.append((time.time(), data))
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for ts, d in frames:
        f.write(struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(d), len(d)))
        f.write(d)
users = {}
for ts, d in frames:
    w0, w1 = struct.unpack(">II", d[14:22])
    user, mtype = (w0 >> 25) & 0xF, (w1 >> 29) & 7
    src = ":".join("%02x" % b for b in d[6:12])
    if not users:
        print("first 0x88ca frame %.1f s after qemu start, from %s" % (ts - t0, src))
    users[(src, user, mtype)] = users.get((src, user, mtype), 0) + 1
print("frames=%d" % len(frames))
for (src, user, mtype), n in sorted(users.items()):
    print("src=%s user=%d type=%d count=%d%s" % (src, user, mtype, n,
          "  (LINK_CONFIG: discovery)" if user == 13 else ""))
PY
    kill "$pa" 2>/dev/null || true
    wait_gone "$pa" 10 || kill -KILL "$pa" 2>/dev/null || true
    check "host veth received discovery frames (user 13) from the guest" \
        grep -q "src=$mac user=13" "$OUT/host-capture.txt"
    if [ -x target/debug/utipc ]; then
        echo "  utipc decode (first lines):"
        target/debug/utipc decode "$OUT/host-discovery.pcap" >"$OUT/host-decode.txt" 2>&1 || true
        head -n 3 "$OUT/host-decode.txt" | sed 's/^/    /'
        tail -n 1 "$OUT/host-decode.txt" | sed 's/^/    /'
    fi
    "$KP" net-down --netns "$ns"
    check "netns $ns removed" test ! -e "/run/netns/$ns"
}

[ $# -gt 0 ] || set -- eth udp host
"$KP" build >/dev/null
for s in "$@"; do
    case "$s" in
    eth | udp | udp-unicast) scenario_pair "$s" ;;
    host) scenario_host ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done
echo "logs and captures: $OUT"
if [ "$FAILS" -gt 0 ]; then
    echo "selftest: $FAILS check(s) failed"
    exit 1
fi
echo "selftest: all checks passed"
