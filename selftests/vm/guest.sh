#!/bin/bash
# The in-guest half of selftests/run.sh (runs as PID 1's child in the VM).
#   guest.sh RESULTS_DIR RFW_KO FWCTL_DIR tests TEST...
#   guest.sh RESULTS_DIR RFW_KO FWCTL_DIR cmd CMD ARGS...
# Writes RESULTS_DIR/output (KTAP or the command's output), status, dmesg.*,
# and `done` last: its absence tells the host that the guest died.
set -u
results=$1 ko=$2 fwctl_dir=$3 mode=$4
shift 4

export PATH="$fwctl_dir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RFW_SELFTESTS=$(cd "$(dirname "$0")/.." && pwd)
export RFW_SELFTESTS
out="$results/output"
: >"$out"

# What counts as a kernel splat in dmesg: BUG (incl. KASAN, "scheduling while
# atomic", "sleeping function called from invalid context"), WARNING (incl.
# lockdep's and "suspicious RCU usage"), Oops, stalls and lockups.
splat_re='BUG:|WARNING:|Oops|KASAN|UBSAN:|Call Trace:|general protection fault|soft lockup|hard LOCKUP|blocked for more than|detected stalls|RCU stall|possible recursive locking|circular locking'

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
n=$#
echo "TAP version 13" >>"$out"
echo "1..$n" >>"$out"
echo "# guest kernel $(uname -r), booted to first test in $(cut -d' ' -f1 /proc/uptime)s" >>"$out"
if [ -s "$results/boot-splats" ]; then
	echo "# kernel log reports during boot:" >>"$out"
	sed 's/^/# /' "$results/boot-splats" >>"$out"
fi
i=0 failed=0 skipped=0
for t in "$@"; do
	i=$((i + 1))
	name=$(basename "$t")
	echo "# selftests: rfw: $name" >>"$out"
	start=$(date +%s)
	limit=$(test_timeout "$name")
	(cd "$(dirname "$t")" && timeout -k 10 "$limit" bash "$t") >"$results/test.$i.log" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	sed 's/^/# /' "$results/test.$i.log" >>"$out"
	splats=$(check_dmesg "$results/dmesg.$i")
	if [ -n "$splats" ]; then
		echo "# kernel log reports during $name:" >>"$out"
		echo "$splats" | sed 's/^/# /' >>"$out"
		rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		echo "ok $i selftests: rfw: $name # ${took}s" >>"$out"
	elif [ "$rc" -eq 4 ]; then
		echo "ok $i selftests: rfw: $name # SKIP" >>"$out"
		skipped=$((skipped + 1))
	else
		[ "$rc" -eq 124 ] && echo "# TIMEOUT after ${limit}s" >>"$out"
		echo "not ok $i selftests: rfw: $name # exit=$rc" >>"$out"
		failed=$((failed + 1))
	fi
	# Leave the next test a clean slate: rfw unloaded, no test namespaces.
	modprobe -r rfw 2>/dev/null
	ip -all netns delete 2>/dev/null
done
passed=$((n - failed - skipped))
echo "# Totals: pass:$passed fail:$failed xfail:0 xpass:0 skip:$skipped error:0" >>"$out"
echo "$passed passed, $failed failed, $skipped skipped" >>"$out"
if [ "$failed" -gt 0 ]; then finish 1; fi
if [ "$skipped" -eq "$n" ] && [ "$n" -gt 0 ]; then finish 4; fi
finish 0
