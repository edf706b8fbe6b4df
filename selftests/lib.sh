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

# fwctl_stat NS FAMILY HOOK FIELD: one counter from `fwctl -o json stats`,
# read in namespace NS (empty NS: the current one).
fwctl_stat() {
	local ns=$1 fam=$2 hook=$3 field=$4 json
	if [ -n "$ns" ]; then
		json=$(ip netns exec "$ns" fwctl -o json stats) || return 1
	else
		json=$(fwctl -o json stats) || return 1
	fi
	python3 -c '
import json, sys
doc = json.loads(sys.argv[1])
for r in doc["hooks"]:
    if r["family"] == sys.argv[2] and r["hook"] == sys.argv[3]:
        print(r[sys.argv[4]]); break
else:
    sys.exit(1)
' "$json" "$fam" "$hook" "$field"
}
