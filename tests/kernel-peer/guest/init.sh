#!/bin/sh
# /init of the utipc kernel-peer guest (run by busybox sh as PID 1).
#
# Everything it needs comes from ktp_* words on the kernel command line, which
# scripts/kernel-peer.sh writes (and validates). Dots in a kernel parameter
# would make it a module parameter, hence the underscores. Lists use commas.
#   ktp_name=NAME   label           ktp_id=IDENTITY     TIPC node identity
#   ktp_bearer=eth|udp              ktp_ip=A.B.C.D/N    address of eth0
#   ktp_peers=IP,IP udp remote IPs  ktp_netid=N         TIPC network id
#   ktp_role=ROLE   ktpeer role     ktp_args=k=v,k=v    ktpeer options
#   ktp_until=S     uptime (s) at which the role ends and the guest powers off
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# plain "\n" line ends for our lines (kernel messages keep their "\r\n")
stty -onlcr 2>/dev/null

up() { read -r u _ </proc/uptime; echo "$u"; }
say() { echo "KTPEER $* up=$(up)"; }
bye() { say POWEROFF; poweroff -f; sleep 10; }
die() { say ERROR "$*"; bye; }

ktp_name=guest ktp_id='' ktp_bearer=eth ktp_ip='' ktp_peers='' ktp_netid=''
ktp_role=idle ktp_args='' ktp_until=60
for w in $(cat /proc/cmdline); do
	case "$w" in
	ktp_*=*)
		k=${w%%=*}
		case "$k" in *[!a-z_]*) continue ;; esac
		eval "$k=\${w#*=}"
		;;
	esac
done
say BOOT name="$ktp_name" kernel="$(uname -r)" role="$ktp_role"

# Kernel modules, in dependency order (listed at build time).
while read -r m; do
	insmod "/lib/modules/$m" || die "insmod $m failed"
done </etc/ktpeer/modules
say MODULES loaded="$(wc -l </etc/ktpeer/modules)"
# Let TIPC's pr_info lines ("Enabled bearer", "Node number set to") through.
echo 7 >/proc/sys/kernel/printk

ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ]; do
	n=$((n + 1))
	[ $n -gt 50 ] && die "no eth0"
	sleep 0.1
done
# no IPv6 autoconfiguration chatter (router solicitations, MLD) on the test network
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6
echo 1 >/proc/sys/net/ipv6/conf/eth0/disable_ipv6
ip link set eth0 up || die "eth0 up failed"
if [ -n "$ktp_ip" ]; then
	ip addr add "$ktp_ip" dev eth0 || die "ip addr add $ktp_ip failed"
	# the UDP bearer sends discovery to a multicast group: it needs a route
	ip route add 224.0.0.0/4 dev eth0 || die "multicast route failed"
fi
say NET dev=eth0 mac="$(cat /sys/class/net/eth0/address)" ip="${ktp_ip:-none}"

if [ -n "$ktp_netid" ]; then
	tipc node set netid "$ktp_netid" || die "tipc node set netid $ktp_netid failed"
fi
tipc node set identity "$ktp_id" || die "tipc node set identity $ktp_id failed"
if [ "$ktp_bearer" = udp ]; then
	first=${ktp_peers%%,*}
	if [ -n "$first" ]; then
		tipc bearer enable media udp name udp1 localip "${ktp_ip%/*}" remoteip "$first" ||
			die "udp bearer enable failed"
		for p in $(echo "${ktp_peers#"$first"}" | tr , ' '); do
			tipc bearer add media udp name udp1 remoteip "$p" || die "udp remoteip $p failed"
		done
	else
		tipc bearer enable media udp name udp1 localip "${ktp_ip%/*}" ||
			die "udp bearer enable failed"
	fi
	say BEARER enabled media=udp name=udp1 localip="${ktp_ip%/*}" remote="${ktp_peers:-multicast}"
else
	tipc bearer enable media eth dev eth0 || die "eth bearer enable failed"
	say BEARER enabled media=eth name=eth0
fi
say NODE id="$ktp_id" netid="$(tipc node get netid 2>/dev/null)"
ktpeer addr || die "no node address"

say ROLE start role="$ktp_role"
# shellcheck disable=SC2046 # the options are split on purpose
ktpeer "$ktp_role" until="$ktp_until" $(echo "$ktp_args" | tr , ' ')
rc=$?
say ROLE 'done' role="$ktp_role" rc=$rc
bye
