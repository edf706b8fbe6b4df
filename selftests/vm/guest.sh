#!/bin/bash
# The in-guest half of selftests/run.sh (runs as PID 1's child in the VM).
#   guest.sh RESULTS_DIR RFW_KO FWCTL_DIR tests TEST...
#   guest.sh RESULTS_DIR RFW_KO FWCTL_DIR cmd CMD ARGS...
# Writes RESULTS_DIR/output (KTAP or the command's output), status, dmesg.*,
# kmemleak.*, and `done` last: its absence tells the host that the guest died.
# Environment (set by run.sh): RFW_REPEAT=N runs the tests N times, round
# after round, and stops at the first failure; RFW_KMEMLEAK=0 skips the
# kmemleak scans; RFW_SLAB_WAIT=S bounds the wait for rfw's slab caches.
set -u
results=$1 ko=$2 fwctl_dir=$3 mode=$4
shift 4

export PATH="$fwctl_dir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RFW_SELFTESTS=$(cd "$(dirname "$0")/.." && pwd)
export RFW_SELFTESTS
# shellcheck source=../lib.sh
. "$RFW_SELFTESTS/lib.sh"
out="$results/output"
: >"$out"
repeat=${RFW_REPEAT:-1}
stop_on_fail=${RFW_STOP_ON_FAIL:-0}
slab_wait=${RFW_SLAB_WAIT:-60}

# What counts as a kernel splat in dmesg: BUG (incl. KASAN, "scheduling while
# atomic", "sleeping function called from invalid context"), WARNING (incl.
# lockdep's and "suspicious RCU usage"), Oops, stalls and lockups.
# And SLUB's own reports ("BUG rfw_conn (Not tainted): Objects remaining in
# rfw_conn on __kmem_cache_shutdown()"), which have no colon after BUG.
splat_re='BUG:|BUG [^ ]+ \(|WARNING:|Oops|KASAN|UBSAN:|Call Trace:|general protection fault|soft lockup|hard LOCKUP|blocked for more than|detected stalls|RCU stall|possible recursive locking|circular locking'

# Make `modprobe rfw` work: a writable copy of the module tree (symlinks to
# the kernel build's modules) with rfw.ko in extra/, indexed by depmod, bound
# over /lib/modules.
install_module() {
	local kver moddir src
	kver=$(uname -r)
	moddir=/tmp/rfw-modules/lib/modules/$kver
	mkdir -p "$moddir/extra"
	src=$(readlink -f "/lib/modules/$kver" 2>/dev/null || true)
	if [ -n "$src" ] && [ -d "$src" ]; then
		cp -as "$src/." "$moddir/"
		find "$moddir" -maxdepth 1 -name 'modules.*' ! -name modules.order \
			! -name modules.builtin ! -name modules.builtin.modinfo -delete
	fi
	cp "$ko" "$moddir/extra/rfw.ko"
	depmod -b /tmp/rfw-modules "$kver" || return 1
	mount --bind /tmp/rfw-modules/lib/modules /lib/modules || return 1
	modinfo rfw >/dev/null || return 1
}

check_dmesg() { # $1: file to save the log to; prints matching lines
	dmesg >"$1" 2>/dev/null
	dmesg -C 2>/dev/null
	grep -E "$splat_re" "$1" || true
}

finish() {
	echo "$1" >"$results/status"
	sync
	touch "$results/done"
	sync
	exit "$1"
}

ip link set lo up 2>/dev/null
check_dmesg "$results/dmesg.boot" >"$results/boot-splats"
if ! install_module >"$results/install.log" 2>&1; then
	echo "Bail out! cannot install rfw.ko for modprobe" >>"$out"
	cat "$results/install.log" >>"$out"
	finish 1
fi

if [ "$mode" = cmd ]; then
	"$@" >>"$out" 2>&1
	rc=$?
	splats=$(check_dmesg "$results/dmesg.cmd")
	if [ -n "$splats" ]; then
		{ echo "# kernel log reports during the command:"; echo "$splats" | sed 's/^/# /'; } >>"$out"
		[ "$rc" -eq 0 ] && rc=1
	fi
	finish "$rc"
fi

per_test=$(sed -n 's/^timeout=//p' "$RFW_SELFTESTS/settings" 2>/dev/null)
per_test=${per_test:-300}
# test_timeout NAME: the test's own limit from `settings` (timeout.NAME=S),
# else the suite's (timeout=S).
test_timeout() {
	local t
	t=$(sed -n "s/^timeout\.$1=//p" "$RFW_SELFTESTS/settings" 2>/dev/null)
	echo "${t:-$per_test}"
}
# Leak checks after every test (besides the kernel log):
# * rfw's slab caches (rfw_slab_objects): if the test left rfw loaded, its
#   namespaces are deleted and the initial one flushed, and each cache must
#   come back to what it held before the test within RFW_SLAB_WAIT seconds
#   (entries are freed a grace period after they are unlinked, and a
#   namespace's exit runs from a work item); once rfw is unloaded, no cache
#   of it may be left (one destroyed with objects left is a WARNING).
# * kmemleak, if the kernel has it: two scans after rfw is unloaded
#   (kmemleak_scan); an object leaked by rfw (kmemleak_rfw) fails the test,
#   the others (the core kernel's, e.g. from boot) are only counted; the
#   reports are in kmemleak.N, and cleared before the next test.
leaks=0
if [ "${RFW_KMEMLEAK:-1}" = 1 ] && kmemleak_available; then
	t0=$(date +%s)
	# Leaks from boot are not rfw's: seen here once, then cleared.
	if kmemleak_scan && kmemleak_take "$results/kmemleak.boot"; then
		leaks=1
		echo "# kmemleak: on; boot: $(kmemleak_count "$results/kmemleak.boot") objects reported (not counted; kmemleak.boot), $(($(date +%s) - t0))s" >>"$out.head"
	else
		echo "# kmemleak: the first scan failed: not checked" >>"$out.head"
	fi
elif [ "${RFW_KMEMLEAK:-1}" = 1 ]; then
	echo "# kmemleak: not in this kernel (or off): not checked" >>"$out.head"
fi
slab_settled() { ! rfw_slab_above "$slab_base" >/dev/null; }

n=$(($# * repeat))
echo "TAP version 13" >>"$out"
echo "1..$n" >>"$out"
echo "# guest kernel $(uname -r), booted to first test in $(cut -d' ' -f1 /proc/uptime)s" >>"$out"
[ -f "$out.head" ] && cat "$out.head" >>"$out" && rm -f "$out.head"
[ "$repeat" -gt 1 ] && echo "# $# tests, $repeat rounds, stopping at the first failure" >>"$out"
if [ -s "$results/boot-splats" ]; then
	echo "# kernel log reports during boot:" >>"$out"
	sed 's/^/# /' "$results/boot-splats" >>"$out"
fi
i=0 failed=0 skipped=0 stop=0
for ((round = 1; round <= repeat && !stop; round++)); do
for t in "$@"; do
	i=$((i + 1))
	name=$(basename "$t")
	label="selftests: rfw: $name"
	[ "$repeat" -gt 1 ] && label="$label (round $round/$repeat)"
	echo "# $label" >>"$out"
	slab_base=$(rfw_slab_objects)
	start=$(date +%s)
	limit=$(test_timeout "$name")
	(cd "$(dirname "$t")" && timeout -k 10 "$limit" bash "$t") >"$results/test.$i.log" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	sed 's/^/# /' "$results/test.$i.log" >>"$out"

	checks=$(date +%s)
	bad=()
	if grep -q '^rfw ' /proc/modules; then
		ip -all netns delete 2>/dev/null
		fwctl ct flush >/dev/null 2>&1
		busywait $((slab_wait * 1000)) slab_settled ||
			bad+=("rfw's slab caches did not return to their size before the test within ${slab_wait}s of the flush: $(rfw_slab_above "$slab_base" | paste -sd ';')")
	fi
	# Leave the next test a clean slate: rfw unloaded, no test namespaces,
	# no fault injection.
	modprobe -r rfw 2>/dev/null
	ip -all netns delete 2>/dev/null
	fault_reset 2>/dev/null
	if ! grep -q '^rfw ' /proc/modules; then
		left=$(rfw_slab_objects | paste -sd ';')
		[ -z "$left" ] || bad+=("slab caches of rfw left after unloading it: $left")
	fi
	if [ "$leaks" = 1 ]; then
		if kmemleak_scan; then
			kmemleak_take "$results/kmemleak.$i"
			mine=$(kmemleak_rfw "$results/kmemleak.$i")
			all=$(kmemleak_count "$results/kmemleak.$i")
			if [ -n "$mine" ]; then
				bad+=("kmemleak: $(echo "$mine" | grep -c '^unreferenced object') objects leaked by rfw (kmemleak.$i)")
				echo "$mine" | head -n 60 | sed 's/^/# /' >>"$out"
			fi
			[ "$all" -gt 0 ] &&
				echo "# kmemleak: $all objects reported, $(printf '%s' "$mine" | grep -c '^unreferenced object') of them rfw's (kmemleak.$i)" >>"$out"
			[ -s "$results/kmemleak.$i" ] || rm -f "$results/kmemleak.$i"
		else
			bad+=("kmemleak turned itself off during this test (kernel log)")
			leaks=0
		fi
		echo "# leak checks: $(($(date +%s) - checks))s" >>"$out"
	fi
	splats=$(check_dmesg "$results/dmesg.$i")
	if [ -n "$splats" ]; then
		echo "# kernel log reports during $name:" >>"$out"
		echo "$splats" | sed 's/^/# /' >>"$out"
		rc=1
	fi
	if [ ${#bad[@]} -gt 0 ]; then
		printf '# %s\n' "${bad[@]}" >>"$out"
		if [ "$rc" -eq 0 ] || [ "$rc" -eq 4 ]; then rc=1; fi
	fi
	if [ "$rc" -eq 0 ]; then
		echo "ok $i $label # ${took}s" >>"$out"
	elif [ "$rc" -eq 4 ]; then
		echo "ok $i $label # SKIP" >>"$out"
		skipped=$((skipped + 1))
	else
		[ "$rc" -eq 124 ] && echo "# TIMEOUT after ${limit}s" >>"$out"
		echo "not ok $i $label # exit=$rc" >>"$out"
		failed=$((failed + 1))
		if [ "$stop_on_fail" = 1 ]; then
			echo "Bail out! stopping at the first failure ($label)" >>"$out"
			stop=1
			break
		fi
	fi
done
done
n=$i
passed=$((n - failed - skipped))
echo "# Totals: pass:$passed fail:$failed xfail:0 xpass:0 skip:$skipped error:0" >>"$out"
echo "$passed passed, $failed failed, $skipped skipped" >>"$out"
if [ "$failed" -gt 0 ]; then finish 1; fi
if [ "$skipped" -eq "$n" ] && [ "$n" -gt 0 ]; then finish 4; fi
finish 0
