#!/usr/bin/env bash
# Fuzzes the TIPC frame parser (fuzz/fuzz_targets/frame_parser.rs) with cargo-fuzz/libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]     # default 30
#
# 1. Skips (exit 0) with a message when there is no nightly toolchain: cargo-fuzz needs one.
# 2. Installs cargo-fuzz when it is missing (cargo install --locked cargo-fuzz).
# 3. Builds the seed corpus fuzz/corpus/frame_parser/ from every TIPC message in the captures
#    tests/fixtures/pcap/*.pcap (Ethernet frames of ethertype 0x88ca, and UDP datagrams to or
#    from the TIPC port 6118), one file per distinct message.
# 4. Runs the fuzzer for SECONDS. A crash makes this script exit non-zero; the input is saved
#    under fuzz/artifacts/frame_parser/ (see fuzz/README.md to reproduce it).
set -euo pipefail

duration="${1:-30}"
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
    echo "usage: $0 [SECONDS]  (a positive whole number of seconds, default 30)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=frame_parser
corpus="$root/fuzz/corpus/$target"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: SKIPPED: no nightly Rust toolchain (cargo-fuzz needs one)." >&2
    echo "fuzz.sh: install it with 'rustup toolchain install nightly' and run again." >&2
    exit 0
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; installing it (cargo install --locked cargo-fuzz)"
    cargo install --locked cargo-fuzz
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "fuzz.sh: python3 is needed to build the seed corpus from the captures" >&2
    exit 1
fi

mkdir -p "$corpus"
python3 - "$root/tests/fixtures/pcap" "$corpus" <<'PY'
"""Writes every TIPC message of the pcap captures in argv[1] to the directory argv[2], one file
per distinct message, named by its SHA-1 (as libFuzzer names its own corpus entries)."""
import hashlib
import os
import struct
import sys

TIPC_ETHERTYPE = 0x88CA
TIPC_UDP_PORT = 6118
LINKTYPE_ETHERNET = 1


def records(path):
    """Yields the captured bytes of each record of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != LINKTYPE_ETHERNET:
        raise SystemExit(f"{path}: link type {linktype}, expected Ethernet")
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        off += 16
        yield data[off : off + incl]
        off += incl


fragments = {}  # IPv4 (src, dst, id) -> {offset: bytes, "end": total length}


def reassemble(ip, payload):
    """Collects one IPv4 fragment; returns the whole datagram payload once complete."""
    flags_off = struct.unpack(">H", ip[6:8])[0]
    more, offset = flags_off & 0x2000, (flags_off & 0x1FFF) * 8
    if not more and offset == 0:
        return payload
    key = (ip[12:16], ip[16:20], ip[4:6])
    parts = fragments.setdefault(key, {})
    parts[offset] = payload
    if not more:
        parts["end"] = offset + len(payload)
    end = parts.get("end")
    if end is None:
        return None
    out, pos = b"", 0
    while pos < end:
        piece = parts.get(pos)
        if piece is None:
            return None
        out += piece
        pos += len(piece)
    del fragments[key]
    return out


def tipc_message(frame):
    """The TIPC message an Ethernet frame carries, directly or in UDP (IPv4 fragments are
    reassembled); None otherwise."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack(">H", frame[12:14])[0]
    body = frame[14:]
    if ethertype == 0x8100 and len(frame) >= 18:  # one VLAN tag
        ethertype = struct.unpack(">H", frame[16:18])[0]
        body = frame[18:]
    if ethertype == TIPC_ETHERTYPE:
        return body
    if ethertype == 0x0800 and len(body) >= 20 and body[0] >> 4 == 4:
        ihl = (body[0] & 0xF) * 4
        total = struct.unpack(">H", body[2:4])[0]
        proto, l4 = body[9], reassemble(body, body[ihl:total])
        if l4 is None:
            return None
    elif ethertype == 0x86DD and len(body) >= 40:
        proto, l4 = body[6], body[40:]  # no extension headers in the captures
    else:
        return None
    if proto != 17 or len(l4) < 8:
        return None
    sport, dport = struct.unpack(">HH", l4[:4])
    if TIPC_UDP_PORT not in (sport, dport):
        return None
    return l4[8:]


src, dst = sys.argv[1], sys.argv[2]
seen = set()
for name in sorted(os.listdir(src)):
    if not name.endswith(".pcap"):
        continue
    for frame in records(os.path.join(src, name)):
        msg = tipc_message(frame)
        if not msg:
            continue
        digest = hashlib.sha1(msg).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        with open(os.path.join(dst, digest), "wb") as out:
            out.write(msg)
print(f"fuzz.sh: seed corpus: {len(seen)} distinct TIPC messages from {src}")
PY

cd "$root/fuzz"
echo "fuzz.sh: fuzzing $target for ${duration}s"
status=0
cargo +nightly fuzz run "$target" "$corpus" -- \
    -max_total_time="$duration" -print_final_stats=1 || status=$?
if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: FAILED: the fuzzer exited with status $status." >&2
    echo "fuzz.sh: crashing inputs (if any) are in fuzz/artifacts/$target/; to reproduce:" >&2
    echo "fuzz.sh:   cd fuzz && cargo +nightly fuzz run $target artifacts/$target/<file>" >&2
    exit "$status"
fi
echo "fuzz.sh: no crash in ${duration}s"
