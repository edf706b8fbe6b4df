#!/bin/bash
# Shared helpers for rfw's selftests, after the kernel's
# tools/testing/selftests/net/lib.sh and netfilter/lib.sh: kselftest exit
# codes, namespaces with random names, tool checks, polling with a deadline.
# shellcheck disable=SC2034

readonly ksft_pass=0
readonly ksft_fail=1
readonly ksft_skip=4

ret=$ksft_pass
ns_list=()

# One PASS:/FAIL: line per case; FAIL sets the script's exit code.
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; ret=$ksft_fail; }
skip() { echo "SKIP: $*"; exit $ksft_skip; }
check() { # check DESCRIPTION EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then pass "$1 ($3)"; else fail "$1: expected $2, got $3"; fi
}

checktool() { # checktool "CMD ARGS" "what it is for"
	if ! eval "$1" >/dev/null 2>&1; then
		skip "could not run test without $2"
	fi
}

# setup_ns VAR... : creates one namespace per VAR, named VAR-XXXXXX, sets VAR.
setup_ns() {
	local v name
	for v in "$@"; do
		name="$v-$(mktemp -u XXXXXX)"
		ip netns add "$name" || return 1
		ip -net "$name" link set lo up || return 1
		eval "$v=$name"
		ns_list+=("$name")
	done
}

cleanup_all_ns() {
	local n
	for n in "${ns_list[@]}"; do ip netns del "$n" 2>/dev/null; done
	ns_list=()
}

# busywait TIMEOUT_MS CMD...: runs CMD until it succeeds or time runs out.
busywait() {
	local timeout=$1 start now
	shift
	start=$(date +%s%3N)
	while true; do
		"$@" && return 0
		now=$(date +%s%3N)
		[ $((now - start)) -ge "$timeout" ] && return 1
		sleep 0.1
	done
}

# dmesg_clean: no kernel splat since the last `dmesg -C`.
dmesg_splats() {
	dmesg | grep -E 'BUG:|WARNING:|Oops|KASAN|UBSAN:|Call Trace:|general protection fault|soft lockup|detected stalls|circular locking'
}

# fwctl_stats NS: all counters of namespace NS (empty: the current one), one
# "FAMILY HOOK PACKETS BYTES" line each, from one `fwctl stats` call (awk, not
# python: under emulation every process start costs).
fwctl_stats() {
	if [ -n "$1" ]; then
		ip netns exec "$1" fwctl stats
	else
		fwctl stats
	fi | awk 'NR > 1 { print $1, $2, $3, $4 }'
}

# stat_of SNAPSHOT FAMILY HOOK packets|bytes: one counter of a fwctl_stats snapshot.
stat_of() {
	echo "$1" | awk -v f="$2" -v h="$3" -v k="$4" \
		'$1 == f && $2 == h { print (k == "bytes") ? $4 : $3; found = 1 } END { if (!found) print "missing" }'
}

# snmp_counter NS NAME: a counter of the namespace's own IP stack, e.g.
# "Icmp:InEchos" (/proc/net/snmp) or "Icmp6InEchos" (/proc/net/snmp6): the
# end host's witness, independent of rfw.
snmp_counter() {
	local ns=$1 name=$2
	case "$name" in
	*:*)
		ip netns exec "$ns" awk -v grp="${name%%:*}:" -v key="${name#*:}" '
			$1 == grp && !hdr { for (i = 2; i <= NF; i++) col[$i] = i; hdr = 1; next }
			$1 == grp && hdr { print $col[key]; exit }' /proc/net/snmp ;;
	*)
		ip netns exec "$ns" awk -v key="$name" '$1 == key { print $2 }' /proc/net/snmp6 ;;
	esac
}

# setup_router NS_CLIENT NS_ROUTER NS_SERVER [MTU_SERVER_SIDE]: the classic
# three-namespace line, IPv4 and IPv6, static neighbours off (real ARP/NDP):
#   client 10.0.1.2 fd00:1::2 -- router 10.0.1.1 fd00:1::1 | 10.0.2.1 fd00:2::1 -- server 10.0.2.2 fd00:2::2
setup_router() {
	local c=$1 r=$2 s=$3 mtu=${4:-1500} n
	ip link add veth0 netns "$c" type veth peer name veth0 netns "$r" || return 1
	ip link add veth1 netns "$r" type veth peer name veth0 netns "$s" || return 1
	for n in "$c" "$r" "$s"; do
		ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0
		ip netns exec "$n" sysctl -qw net.ipv6.conf.default.accept_dad=0
	done
	ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$r" sysctl -qw net.ipv6.conf.all.forwarding=1
	ip -net "$c" addr add 10.0.1.2/24 dev veth0
	ip -net "$c" addr add fd00:1::2/64 dev veth0 nodad
	ip -net "$r" addr add 10.0.1.1/24 dev veth0
	ip -net "$r" addr add fd00:1::1/64 dev veth0 nodad
	ip -net "$r" addr add 10.0.2.1/24 dev veth1
	ip -net "$r" addr add fd00:2::1/64 dev veth1 nodad
	ip -net "$s" addr add 10.0.2.2/24 dev veth0
	ip -net "$s" addr add fd00:2::2/64 dev veth0 nodad
	ip -net "$r" link set veth1 mtu "$mtu"
	ip -net "$s" link set veth0 mtu "$mtu"
	for n in "$c" "$r" "$s"; do ip -net "$n" link set veth0 up; done
	ip -net "$r" link set veth1 up
	ip -net "$c" route add default via 10.0.1.1
	ip -net "$c" route add default via fd00:1::1
	ip -net "$s" route add default via 10.0.2.1
	ip -net "$s" route add default via fd00:2::1
}

# ct_list NS ARGS...: `fwctl ct list` in NS (stderr's summary line dropped).
ct_list() {
	local ns=$1
	shift
	ip netns exec "$ns" fwctl ct list "$@" 2>/dev/null
}

# ct_stat NS NAME: one line of `fwctl ct stats` ("NAME VALUE").
ct_stat() {
	ip netns exec "$1" fwctl ct stats 2>/dev/null | awk -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print "missing" }'
}
