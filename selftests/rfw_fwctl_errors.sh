#!/bin/bash
# (d) fwctl's errors: without the module, and without CAP_NET_ADMIN, one
# clear line and a non-zero exit; never a backtrace. With CAP_NET_ADMIN in a
# user namespace of its own, an unprivileged user may read its own network
# namespace (GENL_UNS_ADMIN_PERM), and only that one.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "setpriv --version" "setpriv (util-linux)"
trap 'modprobe -r rfw 2>/dev/null' EXIT

expect_one_line() { # DESCRIPTION EXPECTED_PREFIX CMD...
	local what=$1 prefix=$2 out rc lines
	shift 2
	out=$("$@" 2>&1 >/dev/null)
	rc=$?
	lines=$(printf '%s\n' "$out" | grep -c .)
	if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && [[ "$out" == "$prefix"* ]]; then
		pass "$what: exit $rc, \"$out\""
	else
		fail "$what: exit $rc, $lines line(s): $out"
	fi
}

modprobe -r rfw 2>/dev/null
expect_one_line "module not loaded" "fwctl: rfw is not loaded" fwctl stats
expect_one_line "module not loaded, json" "fwctl: rfw is not loaded" fwctl -o json stats

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
fwctl stats >/dev/null && pass "root with CAP_NET_ADMIN reads stats" || fail "root reads stats"
expect_one_line "unprivileged user" "fwctl: permission denied" \
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all fwctl stats
expect_one_line "root without CAP_NET_ADMIN" "fwctl: permission denied" \
	setpriv --inh-caps=-net_admin --bounding-set=-net_admin fwctl stats

if unshare -U -r -n true 2>/dev/null; then
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups unshare -U -r -n fwctl -o json stats 2>&1)
	if [ $? -eq 0 ] && echo "$out" | grep -q '"hooks"'; then
		pass "unprivileged user, CAP_NET_ADMIN in its own user+net namespace"
	else
		fail "own namespace: $out"
	fi
else
	echo "SKIP-CASE: user namespaces unavailable"
fi

out=$(fwctl --no-such-flag 2>&1)
rc=$?
first=$(printf '%s\n' "$out" | head -1)
if [ "$rc" -eq 2 ] && [[ "$first" == "error: "* ]]; then
	pass "bad argument: exit 2, \"$first\""
else
	fail "bad argument: exit $rc: $out"
fi
exit $ret
