#!/usr/bin/env bash
# Run rfw's selftests inside the test kernel under QEMU (virtme-ng).
#
#   selftests/run.sh                 the whole suite (selftests/rfw_*.sh)
#   selftests/run.sh PATH...         these test scripts (any path)
#   selftests/run.sh --repeat N [PATH...]
#                                    the tests N times in one boot, round
#                                    after round, stopping at the first
#                                    failure (long: not part of make check)
#   selftests/run.sh -- CMD ARGS...  one command, e.g. -- fwctl stats
#
# In the guest, rfw.ko is installed so that `modprobe rfw` works (not loaded),
# fwctl is on PATH, and the host's tools are there (the guest's root is the
# host's, read-only over 9p). Output is KTAP; the exit code is kselftest's:
# 0 all passed, 1 something failed, 4 everything skipped. The run fails if a
# test fails, if the guest panics or hangs (timeout), or if the kernel log
# shows a BUG, WARNING, Oops, KASAN, lockdep or RCU report. After each test
# the guest also checks for leaks (vm/guest.sh): rfw's slab caches back to
# their size before the test (and gone once rfw is unloaded), and, when the
# kernel has kmemleak, no leaked object allocated by rfw; either fails the
# test.
#
# Environment: RFW_KERNEL=debug|perf (default debug), RFW_ACCEL=auto|kvm|tcg,
# RFW_CPUS (2), RFW_MEM (2G), RFW_VM_TIMEOUT (seconds, default from the
# tests' `settings`), RFW_NO_BUILD=1 to use what is built, RFW_RESULTS_DIR
# (default target/vm/DATE-PID; shared read-write with the guest, which sees
# it at the same path: bench/run.sh uses it), RFW_HOST_LOAD=N to keep N
# host CPUs busy beside the VM for the whole run (N spinning processes: a
# slower machine, to show that no test depends on the host's speed),
# RFW_KMEMLEAK=1 to boot with kmemleak on and scan after each test (two
# scans, about 20 s under KASAN and TCG, and about 45 s more boot; the
# default with --repeat), RFW_KMEMLEAK=0 to leave it off (the default
# otherwise), RFW_SLAB_WAIT (seconds, default 60) for the
# slab caches to drain after a test that left rfw loaded;
# RFW_ALLOC_FAIL_POINTS, RFW_ALLOC_FAIL_RESTORES, RFW_ALLOC_FAIL_STEP are passed on to
# rfw_alloc_fail.sh, RFW_TEARDOWN_ROUNDS to rfw_teardown.sh, RFW_UNLOAD_CYCLES
# to rfw_unload_traffic.sh, RFW_CHURN_ROUNDS to rfw_hooks_churn.sh (see there);
# RFW_APPEND: more of the guest kernel's command line.
set -euo pipefail
. "$(dirname "$0")/../scripts/env.sh"

flavour=${RFW_KERNEL:-debug}
cpus=${RFW_CPUS:-2}
mem=${RFW_MEM:-2G}

mode=tests
tests=()
cmd=()
repeat=1
stop_on_fail=0
while [ $# -gt 0 ]; do
	case "$1" in
	--) shift; mode=cmd; cmd=("$@"); break ;;
	--repeat|--repeat=*)
		if [ "$1" = --repeat ]; then repeat=${2:-}; shift $(($# > 1 ? 2 : 1)); else repeat=${1#--repeat=}; shift; fi
		case "$repeat" in
		'' | *[!0-9]* | 0) echo "run.sh: --repeat needs a count of 1 or more" >&2; exit 1 ;;
		esac
		stop_on_fail=1 ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) tests+=("$(realpath "$1")"); shift ;;
	esac
done
# kmemleak: on for --repeat runs, off otherwise (it costs about 45 s of
# boot and 20 s of scans after each test under KASAN and TCG, which the
# suite in `make check` cannot afford); RFW_KMEMLEAK=0/1 decides.
if [ "$repeat" -gt 1 ]; then kmemleak=${RFW_KMEMLEAK:-1}; else kmemleak=${RFW_KMEMLEAK:-0}; fi
if [ "$mode" = cmd ] && [ "$stop_on_fail" = 1 ]; then
	echo "run.sh: --repeat runs tests, not a command" >&2
	exit 1
fi
if [ "$mode" = tests ] && [ ${#tests[@]} -eq 0 ]; then
	for t in "$RFW_ROOT"/selftests/rfw_*.sh; do tests+=("$t"); done
fi
for t in "${tests[@]}"; do
	[ -f "$t" ] || { echo "run.sh: no such test: $t" >&2; exit 1; }
done

if [ -z "${RFW_NO_BUILD:-}" ]; then
	"$RFW_ROOT/scripts/build.sh" "$flavour" >&2
fi
kdir=$("$RFW_ROOT/scripts/build-kernel.sh" "$flavour")
ko="$RFW_ROOT/target/kmod/$flavour/rfw.ko"
fwctl_dir="$RFW_ROOT/target/release"
[ -f "$ko" ] || { echo "run.sh: $ko is not built" >&2; exit 1; }
[ -x "$fwctl_dir/fwctl" ] || { echo "run.sh: $fwctl_dir/fwctl is not built" >&2; exit 1; }

# The results directory is shared read-write with the guest: the guest writes
# its KTAP output, kernel log and status there, apart from the console noise.
results=${RFW_RESULTS_DIR:-"$RFW_ROOT/target/vm/$(date +%Y%m%d-%H%M%S)-$$"}
mkdir -p "$results"
console="$results/console.log"

# The guest reads what it runs over 9p while the host may go on editing and
# building (and a file that changes under a 9p read can trip the 6.12 netfs
# retry path): it gets a snapshot of the suite, rfw.ko and fwctl instead.
# Tests from outside the repo are copied in as well.
snap="$results/snapshot"
mkdir -p "$snap/bin" "$snap/tests"
cp -a "$RFW_ROOT/selftests" "$snap/"
cp "$ko" "$snap/rfw.ko"
cp "$fwctl_dir/fwctl" "$snap/bin/fwctl"
# The kernel selftests' helpers (scripts/build-tools.sh: nf_queue).
for t in "$RFW_ROOT"/target/tools/*; do
	if [ -f "$t" ] && [ -x "$t" ]; then cp "$t" "$snap/bin/"; fi
done
guest_tests=()
for t in "${tests[@]}"; do
	case "$t" in
	"$RFW_ROOT"/selftests/*) guest_tests+=("$snap/selftests/${t#"$RFW_ROOT"/selftests/}") ;;
	*) cp "$t" "$snap/tests/"; guest_tests+=("$snap/tests/$(basename "$t")") ;;
	esac
done

# Time budget: each test's timeout (from `settings`, kselftest style:
# timeout=S for every test, timeout.NAME=S for one) plus its leak checks
# (check_time: two kmemleak scans, the slab caches' drain), all of it once
# per round, plus the boot and its kmemleak scans; a guest that is still
# running after that has hung.
per_test=$(sed -n 's/^timeout=//p' "$RFW_ROOT/selftests/settings" 2>/dev/null || true)
per_test=${per_test:-300}
slab_wait=${RFW_SLAB_WAIT:-60}
check_time=$((60 + slab_wait))
if [ "$mode" = tests ]; then
	round=0
	for t in "${guest_tests[@]}"; do
		own=$(sed -n "s/^timeout\.$(basename "$t")=//p" "$RFW_ROOT/selftests/settings" 2>/dev/null || true)
		round=$((round + ${own:-$per_test} + check_time))
	done
	budget=$((180 + repeat * round))
else
	budget=$((120 + per_test))
fi
budget=${RFW_VM_TIMEOUT:-$budget}

accel=$("$RFW_ROOT/selftests/vm/accel.sh" "$kdir")
accel_args=()
[ "$accel" = kvm ] || accel_args=(--disable-kvm)

# The guest starts from a clean environment: the tests' own knobs that
# are set here go along.
test_env=()
for v in RFW_ALLOC_FAIL_POINTS RFW_ALLOC_FAIL_RESTORES RFW_ALLOC_FAIL_STEP RFW_TEARDOWN_ROUNDS RFW_UNLOAD_CYCLES RFW_CHURN_ROUNDS; do
	[ -z "${!v:-}" ] || test_env+=("$v=${!v}")
done
if [ "$mode" = tests ]; then
	guest_cmd=(env "RFW_REPEAT=$repeat" "RFW_STOP_ON_FAIL=$stop_on_fail"
		"RFW_KMEMLEAK=$kmemleak" "RFW_SLAB_WAIT=$slab_wait" "${test_env[@]}"
		bash "$snap/selftests/vm/guest.sh" "$results" "$snap/rfw.ko" "$snap/bin" tests "${guest_tests[@]}")
else
	guest_cmd=(bash "$snap/selftests/vm/guest.sh" "$results" "$snap/rfw.ko" "$snap/bin" cmd "${cmd[@]}")
fi
# kmemleak is built off by default (selftests/config) and switched on here.
kmemleak_arg=
[ "$kmemleak" = 1 ] && kmemleak_arg=" kmemleak=on"
# The guest's root is the host's, over 9p, which vng mounts without a
# cache: every exec, library and stat went to the host, and under TCG a
# process start cost 0.6 s (`ip -V`; 1.7 s for `python3 -S`). The host does
# not change those files while the guest runs (the guest writes only its
# tmpfs overlays and the results directory, a mount of its own), so the
# guest may cache them: the same flags with cache=loose (the kernel takes
# the last rootflags=) made process starts 1.4-1.9x faster and boot 50 s
# shorter.
root_arg=" rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"
# vng passes --exec on the kernel command line, which holds 2048 bytes at
# most (x86 COMMAND_LINE_SIZE); a long test list would cut off the root=
# options behind it and the guest would not boot. The command goes in a
# file in the shared snapshot instead.
printf '%q ' "${guest_cmd[@]}" >"$snap/guest-cmd.sh"
printf -v guest_line 'bash %q' "$snap/guest-cmd.sh"

load_pids=()
for ((i = 0; i < ${RFW_HOST_LOAD:-0}; i++)); do
	(trap - EXIT; while :; do :; done) </dev/null >/dev/null 2>&1 &
	load_pids+=($!)
done
stop_load() { [ ${#load_pids[@]} -eq 0 ] || kill "${load_pids[@]}" 2>/dev/null || true; }
trap stop_load EXIT

echo "# rfw selftests: kernel $flavour ($kdir), accel $accel, $cpus cpus, $mem, budget ${budget}s, host load ${RFW_HOST_LOAD:-0}$([ "$repeat" -gt 1 ] && echo ", $repeat rounds")" >&2
start=$(date +%s)
# vng runs in a session of its own so that a timeout can kill the whole
# group, QEMU included (timeout(1) alone would leave QEMU running).
setsid vng --run "$kdir" --force-9p --disable-microvm "${accel_args[@]}" \
	--cpus "$cpus" --memory "$mem" --rwdir="$results" --verbose \
	--append "oops=panic softlockup_panic=1$kmemleak_arg$root_arg${RFW_APPEND:+ $RFW_APPEND}" \
	--exec "$guest_line" </dev/null >"$console" 2>&1 &
vm_pid=$!
(
	for ((i = 0; i < budget; i++)); do
		sleep 1
		kill -0 "$vm_pid" 2>/dev/null || exit 0
	done
	echo "# guest still running after ${budget}s: killing it" >>"$console"
	kill -TERM -- "-$vm_pid" 2>/dev/null
	sleep 10
	kill -KILL -- "-$vm_pid" 2>/dev/null
) </dev/null >/dev/null 2>&1 &
watchdog=$!
trap 'kill -KILL -- "-$vm_pid" 2>/dev/null || true; kill "$watchdog" 2>/dev/null || true; stop_load' EXIT
set +e
wait "$vm_pid"
vm_rc=$?
set -e
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
elapsed=$(($(date +%s) - start))

# The command's own output (cmd mode) or the KTAP stream (tests mode).
[ -f "$results/output" ] && cat "$results/output"

fail=""
if [ ! -f "$results/done" ]; then
	if grep -q "guest still running after" "$console"; then
		fail="guest timed out after ${budget}s (hang?)"
	else
		fail="guest did not finish (exit $vm_rc): panic or crash?"
	fi
elif awk '/rfw: loaded/ { on = 1 } on && /Kernel panic|BUG:|Oops/ { f = 1 } END { exit !f }' "$console"; then
	fail="kernel panic or BUG on the console"
fi
# A report while the kernel boots, before rfw was ever loaded, is not rfw's
# (under TCG a KASAN kernel has been seen to report an interrupt during
# identify_cpu): shown, not counted, as guest.sh shows boot-time reports.
if awk '/rfw: loaded/ { exit } /Kernel panic|BUG:|Oops/ { f = 1 } END { exit !f }' "$console"; then
	echo "# warning: a kernel report during boot, before rfw was loaded (not counted):" >&2
	awk '/rfw: loaded/ { exit } /Kernel panic|BUG:|Oops/' "$console" | sed 's/^/#   /' >&2
fi

status=1
[ -f "$results/status" ] && status=$(cat "$results/status")
if [ -n "$fail" ]; then
	echo "# FAIL: $fail" >&2
	echo "# ---- guest console, last 80 lines ($console) ----" >&2
	tail -n 80 "$console" >&2
	exit 1
fi
if [ "$status" -ne 0 ] && [ "$status" -ne 4 ]; then
	echo "# ---- guest console, last 60 lines ($console) ----" >&2
	tail -n 60 "$console" >&2
fi
echo "# vm run: ${elapsed}s, exit $status, results in $results" >&2
exit "$status"
