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
