#!/usr/bin/env bash
# kernel-peer.sh: boots real Linux-kernel TIPC nodes under qemu (TCG) for utipc's interop tests.
#
# Usage:
#   kernel-peer.sh build
#       Installs what is missing and builds the guest initramfs (cached by content hash) and
#       the uncompressed kernel it boots. Prints the initramfs path, then the kernel path.
#   kernel-peer.sh boot --name NAME --id NODEID --tap TAP [options]
#       Boots one guest. Prints the qemu PID on stdout and returns, or with --foreground
#       waits for qemu to exit. Options:
#         --name NAME          label of the guest: default log file name, console markers
#         --id NODEID          TIPC node identity (`tipc node set identity`): up to 16 characters
#                              of [A-Za-z0-9._:@-] (text), or 17 to 32 hex digits (a number)
#         --tap TAP            tap device that qemu creates (must not exist); it disappears
#                              when qemu exits
#         --bridge BR          enslave the tap to bridge BR (must exist, see net-up)
#         --netns NS           run qemu in network namespace NS (must exist, see net-up)
#         --bearer eth|udp     TIPC bearer on the guest's eth0                      [eth]
#         --ip CIDR            IPv4 address of eth0, in 198.18.0.0/15 (needed for udp)
#         --peer-ip IP         udp: a remote IP (repeatable); none = multicast discovery
#         --netid N            TIPC network id                          [kernel default 4711]
#         --role ROLE          echo | client | conn | topo | idle | status          [idle]
#         --args "K=V ..."     options for the guest program, e.g. "final=1 status=5 wait=90"
#         --timeout S          lifetime: the role ends at about S-4 s, qemu is killed at S s
#                              after its start if still running                     [120]
#         --log FILE           serial console log                    [$WORK/logs/NAME.log]
#                              (qemu's own messages go to FILE.qemu)
#         --mac MAC            guest MAC                              [derived from NAME]
#         --mem MB             guest memory                                         [256]
#         --pidfile FILE       also write the qemu PID to FILE
#         --foreground         wait for qemu; stream the console to stdout (unless --quiet);
#                              exit 0 when the guest powered off, 124 on timeout
#         --quiet              with --foreground: do not stream the console
#   kernel-peer.sh net-up --netns NS --bridge BR [--veth IF] [--veth-peer PEER] [--addr CIDR]
#                         [--mac MAC]
#       Creates netns NS (if missing) with bridge BR, and optionally a veth pair: PEER
#       (default IF's first 12 characters + "-br") is enslaved to BR, IF stays in NS for the
#       caller (up, with CIDR and MAC if given). IPv6 is off in a netns it creates.
#   kernel-peer.sh net-down --netns NS [--bridge BR] [--veth IF] [--keep-netns]
#       Deletes what net-up created in NS (only BR / IF if given); the netns itself once
#       nothing net-up created is left in it, and only if net-up created it. Idempotent.
#   kernel-peer.sh wait --log FILE --pattern ERE [--count N] [--timeout S] [--pid PID]
#       Waits until FILE has N lines (default 1) matching ERE and prints them. Exit 0 when
#       found, 124 on timeout (default 60 s), 3 when process PID ended first.
#
# Work dir: ${UTIPC_KPEER_DIR:-/tmp/utipc-kpeer}. Kernel: the newest /boot/vmlinuz-V whose
# /lib/modules/V has tipc.ko, or $UTIPC_KPEER_KVER. Guest sources: tests/kernel-peer/guest/.
# Addresses must lie in 198.18.0.0/15. Details and markers: tests/kernel-peer/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/kernel-peer.sh
GUEST_SRC=$ROOT/tests/kernel-peer/guest
WORK=${UTIPC_KPEER_DIR:-/tmp/utipc-kpeer}

log() { echo "kernel-peer: $*" >&2; }
die() {
    echo "kernel-peer: error: $*" >&2
    exit 1
}
usage() {
    sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'
}
need_arg() { [ $# -ge 2 ] || die "$1 needs a value"; }

# ------------------------------------------------------------------ validation

valid_ifname() { [[ $1 =~ ^[A-Za-z0-9_.-]{1,15}$ ]] && [ "$1" != . ] && [ "$1" != .. ]; }
valid_nsname() { [[ $1 =~ ^[A-Za-z0-9_.-]{1,64}$ ]] && [ "$1" != . ] && [ "$1" != .. ]; }
valid_mac() { [[ ${1,,} =~ ^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$ ]]; } # unicast only
# an IPv4 address in 198.18.0.0/15, optionally with /prefix when $2 = cidr
valid_test_ip() {
    local re='^198\.(18|19)\.([0-9]{1,3})\.([0-9]{1,3})'
    if [ "${2:-}" = cidr ]; then re="$re/([0-9]{1,2})\$"; else re="$re\$"; fi
    [[ $1 =~ $re ]] || return 1
    [ "${BASH_REMATCH[2]}" -le 255 ] && [ "${BASH_REMATCH[3]}" -le 255 ] || return 1
    if [ "${2:-}" = cidr ]; then
        [ "${BASH_REMATCH[4]}" -ge 15 ] && [ "${BASH_REMATCH[4]}" -le 32 ] || return 1
    fi
}
valid_uint() { [[ $1 =~ ^[0-9]{1,9}$ ]]; }

# ------------------------------------------------------------------ packages

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# Installs the Debian packages among "$@" that are missing; apt-get update only then.
ensure_packages() {
    local p missing=()
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (install them, or run as root)"
    mkdir -p "$WORK"
    log "installing ${missing[*]} (apt-get output: $WORK/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$WORK/apt.log" 2>&1; then
        tail -n 20 "$WORK/apt.log" >&2
        die "apt-get install ${missing[*]} failed"
    fi
}

# Sets KVER, KERNEL, MODDIR: a kernel image with its TIPC module.
find_kernel() {
    local v
    KVER=${UTIPC_KPEER_KVER:-}
    if [ -z "$KVER" ] && [ -d /lib/modules ]; then
        for v in $(ls -1 /lib/modules | sort -Vr); do
            if [ -f "/boot/vmlinuz-$v" ] && grep -q '/tipc\.ko' "/lib/modules/$v/modules.dep" 2>/dev/null; then
                KVER=$v
                break
            fi
        done
    fi
    [ -n "$KVER" ] || return 1
    KERNEL=/boot/vmlinuz-$KVER
    MODDIR=/lib/modules/$KVER
    [ -f "$KERNEL" ] && [ -f "$MODDIR/modules.dep" ]
}

ensure_tools() {
    local kernel_pkg=()
    if ! find_kernel; then
        [ -z "${UTIPC_KPEER_KVER:-}" ] || die "no /boot/vmlinuz-$UTIPC_KPEER_KVER with TIPC modules"
        kernel_pkg=(linux-image-amd64)
    fi
    ensure_packages qemu-system-x86 busybox-static iproute2 gcc libc6-dev linux-libc-dev cpio \
        "${kernel_pkg[@]}"
    [ ${#kernel_pkg[@]} -eq 0 ] || find_kernel ||
        die "no /boot/vmlinuz-* with /lib/modules/*/kernel/net/tipc/tipc.ko"
    TIPC_BIN=$(command -v tipc || echo /usr/sbin/tipc)
    [ -x "$TIPC_BIN" ] || die "iproute2's tipc tool not found"
}

# ------------------------------------------------------------------ initramfs

# Guest modules by name; their dependencies are added from modules.dep.
GUEST_MODULES="virtio_pci virtio_net tipc"

mod_path() { # module name -> path in modules.dep (relative to MODDIR), empty if none
    awk -F: -v want="$1" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n);
        gsub(/-/, "_", n); if (n == want) { print $1; exit } }' "$MODDIR/modules.dep"
}

mod_deps() { awk -F: -v p="$1" '$1 == p { print $2; exit }' "$MODDIR/modules.dep"; }

# Appends module $1 (path) to MOD_ORDER after its dependencies (depth first, once each).
mod_add() {
    local m=$1 d
    case " ${MOD_ORDER[*]:-} " in *" $m "*) return 0 ;; esac
    for d in $(mod_deps "$m"); do mod_add "$d"; done
    MOD_ORDER+=("$m")
}

stage_modules() { # $1 = staging dir
    local st=$1 name rel base
    MOD_ORDER=()
    for name in $GUEST_MODULES; do
        rel=$(mod_path "$name")
        if [ -z "$rel" ]; then
            grep -q "/$name\.ko" "$MODDIR/modules.builtin" 2>/dev/null && continue
            die "kernel module $name not found in $MODDIR"
        fi
        mod_add "$rel"
    done
    : >"$st/etc/ktpeer/modules"
    for rel in "${MOD_ORDER[@]}"; do
        base=${rel##*/}
        case "$rel" in
        *.ko.xz) ensure_packages xz-utils && xz -dc "$MODDIR/$rel" >"$st/lib/modules/${base%.xz}" ;;
        *.ko.zst) ensure_packages zstd && zstd -qdc "$MODDIR/$rel" >"$st/lib/modules/${base%.zst}" ;;
        *.ko.gz) gzip -dc "$MODDIR/$rel" >"$st/lib/modules/${base%.gz}" ;;
        *.ko) cp "$MODDIR/$rel" "$st/lib/modules/$base" ;;
        *) die "unexpected module file $rel" ;;
        esac
        base=${base%.xz}
        base=${base%.zst}
        echo "${base%.gz}" >>"$st/etc/ktpeer/modules"
    done
}

stage_tipc_tool() { # iproute2's tipc with the shared libraries it loads
    local st=$1 lib
    cp "$TIPC_BIN" "$st/usr/sbin/tipc"
    for lib in $(ldd "$TIPC_BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        mkdir -p "$st${lib%/*}"
        cp -L "$lib" "$st$lib"
    done
}

build_initramfs() { # $1 = output file (newc cpio, uncompressed: faster to unpack under TCG)
    local out=$1 st app
    rm -rf "$WORK"/stage.* # left by a failed build (builds hold the lock)
    st=$(mktemp -d "$WORK/stage.XXXXXX")
    mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc/ktpeer,lib/modules}
    cp /bin/busybox "$st/bin/busybox"
    for app in $(/bin/busybox --list-full); do
        [ -e "$st/$app" ] || ln -s /bin/busybox "$st/$app"
    done
    stage_modules "$st"
    stage_tipc_tool "$st"
    gcc -static -O2 -Wall -Wextra -o "$st/usr/bin/ktpeer" "$GUEST_SRC/ktpeer.c" >&2 ||
        die "compiling ktpeer.c failed"
    install -m 0755 "$GUEST_SRC/init.sh" "$st/init"
    mknod -m 600 "$st/dev/console" c 5 1 2>/dev/null || true
    (cd "$st" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
        >"$out.tmp" || die "cpio failed"
    mv "$out.tmp" "$out"
    log "guest modules, in load order: $(tr '\n' ' ' <"$st/etc/ktpeer/modules")"
    rm -rf "$st"
}

# Hash of everything the initramfs is made of, including the build code itself.
input_hash() {
    {
        echo "kernel $KVER"
        sha256sum "$KERNEL" "$MODDIR/modules.dep" /bin/busybox "$TIPC_BIN" \
            /usr/include/linux/tipc.h "$GUEST_SRC/ktpeer.c" "$GUEST_SRC/init.sh"
        ldd "$TIPC_BIN" | awk '$3 ~ /^\// { print $3 }' | xargs -r sha256sum
        gcc --version | head -n 1
        echo "modules $GUEST_MODULES"
        declare -f build_initramfs stage_modules stage_tipc_tool mod_add mod_path mod_deps
    } | sha256sum | cut -c1-16
}

# Unpacks the ELF vmlinux from a compressed bzImage ($1) into $2. qemu boots such an ELF
# directly through its PVH entry point (CONFIG_PVH), which skips SeaBIOS's real-mode setup
# and the kernel's own decompression: Debian's image is xz-compressed, and unpacking it
# under TCG costs about 3 s of each boot.
extract_vmlinux() {
    local src=$1 dst=$2 magic pat pos
    local -a tool
    for magic in xz zstd gzip; do
        case "$magic" in
        xz) pat=$'\xfd7zXZ' tool=(xz -dc --single-stream) ;;
        zstd) pat=$'\x28\xb5\x2f\xfd' tool=(zstd -dcq) ;;
        gzip) pat=$'\x1f\x8b\x08' tool=(gzip -dc) ;;
        esac
        command -v "${tool[0]}" >/dev/null || continue
        for pos in $(LC_ALL=C grep -abo -- "$pat" "$src" 2>/dev/null | cut -d: -f1 | head -n 4); do
            tail -c +$((pos + 1)) "$src" | "${tool[@]}" >"$dst.tmp" 2>/dev/null || true
            if [ "$(head -c 4 "$dst.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] &&
                readelf -n "$dst.tmp" 2>/dev/null | grep -Eq 'PHYS32_ENTRY|\(0x00000012\)'; then
                mv "$dst.tmp" "$dst"
                return 0
            fi
        done
    done
    rm -f "$dst.tmp"
    return 1
}

# Sets INITRD (building it if the cached one does not match the inputs) and BOOT_KERNEL
# (the PVH vmlinux unpacked from KERNEL if possible, else KERNEL itself).
ensure_initramfs() {
    local hash khash lock vmlinux
    ensure_tools
    mkdir -p "$WORK"
    hash=$(input_hash)
    INITRD=$WORK/initramfs-$hash.cpio
    khash=$(sha256sum "$KERNEL" | cut -c1-16)
    vmlinux=$WORK/vmlinux-$KVER-$khash
    BOOT_KERNEL=$KERNEL
    if [ -s "$INITRD" ] && { [ -s "$vmlinux" ] || [ -e "$vmlinux.none" ]; }; then
        [ -e "$vmlinux.none" ] || BOOT_KERNEL=$vmlinux
    else
        exec {lock}>"$WORK/build.lock"
        flock -w 600 "$lock" || die "timed out waiting for another build ($WORK/build.lock)"
        if [ ! -s "$INITRD" ]; then
            log "building $INITRD (kernel $KVER)"
            build_initramfs "$INITRD"
            log "built $(du -h "$INITRD" | cut -f1)"
            # keep the two newest older builds, drop the rest
            ls -1t "$WORK"/initramfs-*.cpio 2>/dev/null | tail -n +4 | xargs -r rm -f
        fi
        if [ ! -s "$vmlinux" ] && [ ! -e "$vmlinux.none" ]; then
            rm -f "$WORK"/vmlinux-*
            if extract_vmlinux "$KERNEL" "$vmlinux"; then
                log "unpacked $vmlinux from $KERNEL (PVH boot)"
            else
                log "no PVH vmlinux in $KERNEL: booting the compressed image"
                : >"$vmlinux.none"
            fi
        fi
        [ -e "$vmlinux.none" ] || BOOT_KERNEL=$vmlinux
        exec {lock}>&-
    fi
    [ -z "${UTIPC_KPEER_BZIMAGE:-}" ] || BOOT_KERNEL=$KERNEL
}

cmd_build() {
    [ $# -eq 0 ] || die "build takes no options"
    ensure_initramfs
    echo "$INITRD"
    echo "$BOOT_KERNEL"
}

# ------------------------------------------------------------------ network helpers

netns_exists() { [ -e "/run/netns/$1" ]; }

# Runs a command in netns $NETNS (or here when NETNS is empty).
in_ns() {
    if [ -n "${NETNS:-}" ]; then ip netns exec "$NETNS" "$@"; else "$@"; fi
}

link_exists() { in_ns ip link show dev "$1" >/dev/null 2>&1; }

state_file() { echo "$WORK/net/$1.state"; }

cmd_net_up() {
    local br="" veth="" peer="" addr="" mac="" st created=()
    NETNS=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --netns) need_arg "$@"; NETNS=$2; shift 2 ;;
        --bridge) need_arg "$@"; br=$2; shift 2 ;;
        --veth) need_arg "$@"; veth=$2; shift 2 ;;
        --veth-peer) need_arg "$@"; peer=$2; shift 2 ;;
        --addr) need_arg "$@"; addr=$2; shift 2 ;;
        --mac) need_arg "$@"; mac=$2; shift 2 ;;
        *) die "net-up: unknown option $1" ;;
        esac
    done
    [ -n "$NETNS" ] && valid_nsname "$NETNS" || die "net-up needs --netns NAME ([A-Za-z0-9_.-])"
    [ -n "$br" ] && valid_ifname "$br" || die "net-up needs --bridge NAME (at most 15 characters)"
    if [ -n "$veth" ]; then
        valid_ifname "$veth" || die "bad --veth $veth"
        [ -n "$peer" ] || peer="${veth:0:12}-br"
        valid_ifname "$peer" || die "bad --veth-peer $peer"
    else
        [ -z "$peer$addr$mac" ] || die "--veth-peer, --addr and --mac need --veth"
    fi
    [ -z "$addr" ] || valid_test_ip "$addr" cidr || die "--addr must be A.B.C.D/N in 198.18.0.0/15"
    [ -z "$mac" ] || valid_mac "$mac" || die "bad --mac $mac (unicast aa:bb:cc:dd:ee:ff)"
    ensure_packages iproute2
    mkdir -p "$WORK/net"
    st=$(state_file "$NETNS")

    # undo what this call created if a step fails
    rollback() {
        local i
        for ((i = ${#created[@]} - 1; i >= 0; i--)); do
            case "${created[$i]}" in
            netns\ *) ip netns del "${created[$i]#netns }" 2>/dev/null || true ;;
            *) in_ns ip link del dev "${created[$i]#* }" 2>/dev/null || true ;;
            esac
        done
        die "net-up failed: $*"
    }
    if ! netns_exists "$NETNS"; then
        ip netns add "$NETNS" || die "cannot create netns $NETNS"
        created+=("netns $NETNS")
        in_ns ip link set lo up || rollback "lo up"
        # no IPv6 chatter (router/neighbour solicitations, MLD) on the test links
        in_ns sh -c 'echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6;
            echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6' 2>/dev/null || true
    fi
    link_exists "$br" && rollback "$br already exists in netns $NETNS"
    in_ns ip link add name "$br" type bridge stp_state 0 forward_delay 0 mcast_snooping 0 ||
        rollback "cannot create bridge $br"
    created+=("bridge $br")
    in_ns ip link set dev "$br" up || rollback "bridge up"
    if [ -n "$veth" ]; then
        link_exists "$veth" && rollback "$veth already exists"
        link_exists "$peer" && rollback "$peer already exists"
        in_ns ip link add name "$veth" type veth peer name "$peer" || rollback "cannot create veth"
        created+=("veth $veth")
        in_ns ip link set dev "$peer" master "$br" up || rollback "cannot enslave $peer to $br"
        if [ -n "$mac" ]; then in_ns ip link set dev "$veth" address "$mac" || rollback "mac"; fi
        in_ns ip link set dev "$veth" up || rollback "$veth up"
        if [ -n "$addr" ]; then in_ns ip addr add "$addr" dev "$veth" || rollback "address"; fi
    fi
    printf '%s\n' "${created[@]}" >>"$st"
    log "net-up: netns $NETNS bridge $br${veth:+ veth $veth (bridge side $peer)}${addr:+ addr $addr}"
}

cmd_net_down() {
    local br="" veth="" keep=0 st line kind name rest=() deleted=0 pids
    NETNS=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --netns) need_arg "$@"; NETNS=$2; shift 2 ;;
        --bridge) need_arg "$@"; br=$2; shift 2 ;;
        --veth) need_arg "$@"; veth=$2; shift 2 ;;
        --keep-netns) keep=1; shift ;;
        *) die "net-down: unknown option $1" ;;
        esac
    done
    [ -n "$NETNS" ] && valid_nsname "$NETNS" || die "net-down needs --netns NAME"
    [ -z "$br" ] || valid_ifname "$br" || die "bad --bridge"
    [ -z "$veth" ] || valid_ifname "$veth" || die "bad --veth"
    st=$(state_file "$NETNS")
    if ! netns_exists "$NETNS"; then
        rm -f "$st"
        return 0
    fi
    # the names given on the command line, or everything net-up recorded
    local todo=()
    if [ -n "$br$veth" ]; then
        [ -n "$veth" ] && todo+=("veth $veth")
        [ -n "$br" ] && todo+=("bridge $br")
    elif [ -f "$st" ]; then
        while read -r kind name; do
            [ "$kind" = veth ] && todo+=("veth $name")
        done <"$st"
        while read -r kind name; do
            [ "$kind" = bridge ] && todo+=("bridge $name")
        done <"$st"
    fi
    local -A gone=()
    for line in "${todo[@]}"; do
        name=${line#* }
        if link_exists "$name"; then
            in_ns ip link del dev "$name" && deleted=$((deleted + 1))
        fi
        gone[$line]=1
    done
    # forget what was deleted; delete the netns when net-up created it and nothing is left
    if [ -f "$st" ]; then
        while read -r line; do
            [ -n "$line" ] && [ -z "${gone[$line]:-}" ] && rest+=("$line")
        done <"$st"
        if [ "$keep" = 0 ] && [ ${#rest[@]} -eq 1 ] && [ "${rest[0]}" = "netns $NETNS" ]; then
            pids=$(ip netns pids "$NETNS" 2>/dev/null | tr '\n' ' ')
            [ -z "$pids" ] || log "warning: processes still in netns $NETNS: $pids"
            ip netns del "$NETNS"
            rest=()
            deleted=$((deleted + 1))
        fi
        if [ ${#rest[@]} -eq 0 ]; then rm -f "$st"; else printf '%s\n' "${rest[@]}" >"$st"; fi
    fi
    log "net-down: netns $NETNS: deleted $deleted object(s)"
}

# ------------------------------------------------------------------ boot

proc_starttime() { # field 22 of /proc/PID/stat (after the parenthesised command name)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    set -- $s
    echo "${20}"
}

# Stops qemu $1 if it is still the process that started at $2: TERM, then KILL after 5 s.
stop_qemu() {
    local pid=$1 start=$2 i
    [ "$(proc_starttime "$pid" || true)" = "$start" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        [ "$(proc_starttime "$pid" || true)" = "$start" ] || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Background helper: kills qemu at the deadline (epoch seconds) unless it exits first.
cmd_watchdog() {
    local pid=$1 start=$2 deadline=$3 name=$4
    while [ "$(proc_starttime "$pid" || true)" = "$start" ]; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "kernel-peer: $name: timeout, stopping qemu $pid" >&2
            stop_qemu "$pid" "$start"
            return 0
        fi
        sleep 1
    done
}

cmd_boot() {
    local name="" id="" tap="" br="" bearer=eth ip="" peers=() netid="" role=idle args=""
    local timeout=120 logf="" mac="" mem=256 pidfile="" fg=0 quiet=0 a
    NETNS=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --name) need_arg "$@"; name=$2; shift 2 ;;
        --id) need_arg "$@"; id=$2; shift 2 ;;
        --tap) need_arg "$@"; tap=$2; shift 2 ;;
        --bridge) need_arg "$@"; br=$2; shift 2 ;;
        --netns) need_arg "$@"; NETNS=$2; shift 2 ;;
        --bearer) need_arg "$@"; bearer=$2; shift 2 ;;
        --ip) need_arg "$@"; ip=$2; shift 2 ;;
        --peer-ip) need_arg "$@"; peers+=("$2"); shift 2 ;;
        --netid) need_arg "$@"; netid=$2; shift 2 ;;
        --role) need_arg "$@"; role=$2; shift 2 ;;
        --args) need_arg "$@"; args=$2; shift 2 ;;
        --timeout) need_arg "$@"; timeout=$2; shift 2 ;;
        --log) need_arg "$@"; logf=$2; shift 2 ;;
        --mac) need_arg "$@"; mac=$2; shift 2 ;;
        --mem) need_arg "$@"; mem=$2; shift 2 ;;
        --pidfile) need_arg "$@"; pidfile=$2; shift 2 ;;
        --foreground) fg=1; shift ;;
        --quiet) quiet=1; shift ;;
        *) die "boot: unknown option $1" ;;
        esac
    done
    [[ $name =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "boot needs --name NAME ([A-Za-z0-9_.-], at most 40)"
    [[ $id =~ ^[A-Za-z0-9._:@-]{1,16}$ || $id =~ ^[0-9A-Fa-f]{17,32}$ ]] ||
        die "boot needs --id NODEID (at most 16 of [A-Za-z0-9._:@-], or 17 to 32 hex digits)"
    [ -n "$tap" ] && valid_ifname "$tap" || die "boot needs --tap NAME (at most 15 characters)"
    [ -z "$br" ] || valid_ifname "$br" || die "bad --bridge $br"
    [ -z "$NETNS" ] || valid_nsname "$NETNS" || die "bad --netns $NETNS"
    case "$bearer" in eth | udp) ;; *) die "--bearer must be eth or udp" ;; esac
    case "$role" in echo | client | conn | topo | idle | status) ;; *) die "bad --role $role" ;; esac
    [ -z "$ip" ] || valid_test_ip "$ip" cidr || die "--ip must be A.B.C.D/N in 198.18.0.0/15"
    for a in "${peers[@]}"; do valid_test_ip "$a" || die "--peer-ip $a is not in 198.18.0.0/15"; done
    if [ "$bearer" = udp ]; then
        [ -n "$ip" ] || die "--bearer udp needs --ip"
    else
        [ ${#peers[@]} -eq 0 ] || die "--peer-ip is for --bearer udp"
    fi
    [ -z "$netid" ] || { valid_uint "$netid" && [ "$netid" -ge 1 ] && [ "$netid" -le 9999999 ]; } ||
        die "--netid must be 1..9999999"
    for a in $args; do
        [[ $a =~ ^[a-z_]{1,20}=[0-9]+(\.[0-9]+)?$ ]] || die "bad --args word '$a' (want key=number)"
    done
    valid_uint "$timeout" && [ "$timeout" -ge 10 ] || die "--timeout must be an integer >= 10"
    valid_uint "$mem" && [ "$mem" -ge 128 ] || die "--mem must be an integer >= 128"
    if [ -z "$mac" ]; then
        a=$(printf '%s' "$name" | cksum | cut -d' ' -f1)
        mac=$(printf '52:54:%02x:%02x:%02x:%02x' $((a >> 24 & 255)) $((a >> 16 & 255)) \
            $((a >> 8 & 255)) $((a & 255)))
    fi
    valid_mac "$mac" || die "bad --mac $mac (unicast aa:bb:cc:dd:ee:ff)"
    [ -n "$logf" ] || logf=$WORK/logs/$name.log
    case "$logf" in /*) ;; *) logf=$PWD/$logf ;; esac

    ensure_initramfs
    if [ -n "$NETNS" ]; then netns_exists "$NETNS" || die "netns $NETNS does not exist (net-up)"; fi
    if [ -n "$br" ]; then
        in_ns ip -d link show dev "$br" 2>/dev/null | grep -q ' bridge ' ||
            die "bridge $br does not exist${NETNS:+ in netns $NETNS} (net-up)"
    fi
    link_exists "$tap" && die "$tap already exists${NETNS:+ in netns $NETNS}; qemu must create it"

    # qemu creates the (non-persistent) tap and runs this with its name before the guest starts
    mkdir -p "$WORK/run" "$(dirname "$logf")"
    local ifup=$WORK/run/ifup-$name.sh
    {
        echo '#!/bin/sh'
        echo '# written by kernel-peer.sh boot; qemu runs it with the name of the tap it created'
        echo 'echo 1 >"/proc/sys/net/ipv6/conf/$1/disable_ipv6" 2>/dev/null'
        [ -z "$br" ] || echo "ip link set dev \"\$1\" master '$br' || exit 1"
        echo 'ip link set dev "$1" up'
    } >"$ifup.tmp"
    chmod 755 "$ifup.tmp"
    mv "$ifup.tmp" "$ifup"

    local until=$((timeout - 6)) peer_list
    [ "$until" -ge 5 ] || until=5
    peer_list=$(IFS=,; echo "${peers[*]}")
    local cmdline="console=ttyS0 loglevel=4 panic=-1 ktp_name=$name ktp_id=$id ktp_bearer=$bearer"
    cmdline+=" ktp_role=$role ktp_until=$until"
    [ -z "$ip" ] || cmdline+=" ktp_ip=$ip"
    [ -z "$peer_list" ] || cmdline+=" ktp_peers=$peer_list"
    [ -z "$netid" ] || cmdline+=" ktp_netid=$netid"
    [ -z "$args" ] || cmdline+=" ktp_args=$(echo $args | tr ' ' ,)"

    local qemu=(qemu-system-x86_64 -accel tcg -machine pc -smp 1 -m "$mem"
        -nodefaults -no-user-config -display none -vga none -monitor none -no-reboot
        -kernel "$BOOT_KERNEL" -initrd "$INITRD" -append "$cmdline"
        -serial "file:${logf//,/,,}"
        -netdev "tap,id=net0,ifname=$tap,script=${ifup//,/,,},downscript=no"
        -device "virtio-net-pci,netdev=net0,mac=$mac,romfile=")
    : >"$logf"
    local qlog=$logf.qemu t0 t0ns qpid start i nsx=()
    [ -z "$NETNS" ] || nsx=(ip netns exec "$NETNS")
    t0ns=$(date +%s.%N)
    t0=${t0ns%.*}
    # `ip netns exec` and setsid (we are not a group leader) exec without forking, so $! is
    # qemu's PID, checked below
    if [ "$fg" = 1 ]; then
        "${nsx[@]}" "${qemu[@]}" </dev/null >"$qlog" 2>&1 &
    else
        # own session, no inherited stdio: the caller's pipes close when this script ends
        setsid "${nsx[@]}" "${qemu[@]}" </dev/null >"$qlog" 2>&1 &
    fi
    qpid=$!
    # wait (bounded) until the pid is qemu and its tap is up, or qemu failed
    start=""
    for i in $(seq 100); do
        if ! kill -0 "$qpid" 2>/dev/null; then
            cat "$qlog" >&2
            rm -f "$ifup"
            die "qemu exited at start (see $qlog)"
        fi
        if [ -z "$start" ] && [[ $(readlink "/proc/$qpid/exe" 2>/dev/null) == */qemu-system-x86_64 ]]; then
            start=$(proc_starttime "$qpid")
        fi
        [ -n "$start" ] && in_ns ip link show dev "$tap" 2>/dev/null | grep -q 'state UP\|,UP' && break
        sleep 0.1
    done
    if [ -z "$start" ]; then
        kill -KILL "$qpid" 2>/dev/null || true
        rm -f "$ifup"
        die "pid $qpid did not become qemu"
    fi
    if in_ns ip link show dev "$tap" 2>/dev/null | grep -q 'state UP\|,UP'; then
        rm -f "$ifup" # qemu has run it
    else
        log "warning: $tap is not up yet"
    fi
    [ -z "$pidfile" ] || echo "$qpid" >"$pidfile"
    log "$name: qemu pid $qpid, id $id, role $role, bearer $bearer, tap $tap${br:+ on $br}${NETNS:+ in $NETNS}, mac $mac, log $logf"

    if [ "$fg" = 0 ]; then
        setsid "$SELF" _watchdog "$qpid" "$start" $((t0 + timeout)) "$name" </dev/null >>"$qlog" 2>&1 &
        echo "$qpid"
        return 0
    fi

    # foreground: stream the console, report READY, enforce the timeout
    local tailpid="" ready=0 rc now
    trap 'stop_qemu "$qpid" "$start"; [ -z "$tailpid" ] || kill "$tailpid" 2>/dev/null; exit 130' INT TERM
    if [ "$quiet" = 0 ]; then
        tail -n +1 -F --pid="$qpid" "$logf" 2>/dev/null &
        tailpid=$!
    fi
    while kill -0 "$qpid" 2>/dev/null; do
        now=$(date +%s)
        if [ "$ready" = 0 ] && grep -q '^KTPEER READY' "$logf" 2>/dev/null; then
            ready=1
            log "$name: READY $(awk -v a="$(date +%s.%N)" -v b="$t0ns" 'BEGIN { printf "%.1f", a - b }') s after qemu start"
        fi
        if [ "$now" -ge $((t0 + timeout)) ]; then
            log "$name: timeout after $timeout s, stopping qemu"
            stop_qemu "$qpid" "$start"
            wait "$qpid" 2>/dev/null || true
            [ -z "$tailpid" ] || { sleep 0.5; kill "$tailpid" 2>/dev/null || true; }
            return 124
        fi
        sleep 0.2
    done
    rc=0
    wait "$qpid" || rc=$?
    [ -z "$tailpid" ] || wait "$tailpid" 2>/dev/null || true
    log "$name: qemu exited with status $rc after $(($(date +%s) - t0)) s"
    return "$rc"
}

# ------------------------------------------------------------------ wait

cmd_wait() {
    local logf="" pat="" count=1 timeout=60 pid="" end found
    while [ $# -gt 0 ]; do
        case "$1" in
        --log) need_arg "$@"; logf=$2; shift 2 ;;
        --pattern) need_arg "$@"; pat=$2; shift 2 ;;
        --count) need_arg "$@"; count=$2; shift 2 ;;
        --timeout) need_arg "$@"; timeout=$2; shift 2 ;;
        --pid) need_arg "$@"; pid=$2; shift 2 ;;
        *) die "wait: unknown option $1" ;;
        esac
    done
    [ -n "$logf" ] && [ -n "$pat" ] || die "wait needs --log FILE --pattern ERE"
    valid_uint "$count" && valid_uint "$timeout" || die "--count and --timeout are integers"
    end=$(($(date +%s) + timeout))
    while :; do
        found=$(grep -E -m "$count" -- "$pat" "$logf" 2>/dev/null || true)
        if [ -n "$found" ] && [ "$(printf '%s\n' "$found" | wc -l)" -ge "$count" ]; then
            printf '%s\n' "$found"
            return 0
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            found=$(grep -E -m "$count" -- "$pat" "$logf" 2>/dev/null || true)
            if [ -n "$found" ] && [ "$(printf '%s\n' "$found" | wc -l)" -ge "$count" ]; then
                printf '%s\n' "$found"
                return 0
            fi
            return 3
        fi
        [ "$(date +%s)" -lt "$end" ] || return 124
        sleep 0.2
    done
}

# ------------------------------------------------------------------ main

[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd=$1
shift
case "$cmd" in
build) cmd_build "$@" ;;
boot) cmd_boot "$@" ;;
net-up) cmd_net_up "$@" ;;
net-down) cmd_net_down "$@" ;;
wait) cmd_wait "$@" ;;
help | -h | --help) usage ;;
_watchdog) cmd_watchdog "$@" ;;
*)
    usage >&2
    exit 2
    ;;
esac
