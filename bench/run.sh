#!/usr/bin/env bash
# rfw's benchmark: one VM boot of the perf (non-debug) kernel runs
# every set-up interleaved, round after round, on the same sender -- router --
# sink topology; the host microbenchmarks of the engine crates run before it;
# bench/report.py writes the report.
#
#   bench/run.sh            full run: warm-up + 5 rounds, writes docs/PERFORMANCE.md
#                           and docs/perf-pps-vs-flows.png (about 35 min under TCG)
#   bench/run.sh --quick    the harness end to end in about 10 minutes: 1 warm-up +
#                           1 round of 1 s measurements; report in target/bench/.../
#   options: --no-micro (skip cargo bench), --no-vm (microbenchmarks only),
#            --docs (a --quick run writes docs/ too), --report DIR (redo the report
#            of an earlier run's results directory)
#
# Environment (defaults of the full run): BENCH_WARMUP=1 BENCH_ROUNDS=5
# BENCH_DUR=2 (seconds per measurement) BENCH_RAMP=1 BENCH_MEM_ENTRIES=100000
# BENCH_MEM_REPEATS=2 BENCH_SETUPS="B0 B1 P1 R P2 R2 R0 P1r1000 R1000"
# BENCH_WORKLOADS="udp1k udp64k tcp newconn" BENCH_MEM_SETUPS="P1 R" (the
# set-ups whose bytes per connection are measured) BENCH_PROFILE="P1 R0 R P2 R2
# P1:newconn R:newconn P2:tcp R2:tcp" (set-ups profiled with perf during udp1k,
# or SETUP:WORKLOAD during newconn or tcp, after the rounds; "" for none); and selftests/run.sh's
# RFW_ACCEL, RFW_CPUS, RFW_MEM. Results: target/bench/DATE/.
#
# It prints figures; it asserts nothing about them (no test depends on it).
set -euo pipefail
. "$(dirname "$0")/../scripts/env.sh"

quick=0 micro=1 vm=1 docs="" report_only=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--no-micro) micro=0 ;;
	--no-vm) vm=0 ;;
	--docs) docs=1 ;;
	--report) report_only=$2; shift ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ -z "$docs" ] && { [ "$quick" = 1 ] && docs=0 || docs=1; }
# settings given in the environment, for the report's command line
env_given=""
for v in BENCH_WARMUP BENCH_ROUNDS BENCH_DUR BENCH_RAMP BENCH_MEM_ENTRIES BENCH_MEM_REPEATS BENCH_SETUPS BENCH_WORKLOADS BENCH_MEM_SETUPS BENCH_PROFILE; do
	[ -n "${!v:-}" ] && env_given+="$v=$(printf '%q' "${!v}") "
done
log() { printf 'bench: %s\n' "$*" >&2; }

if [ "$quick" = 1 ]; then
	: "${BENCH_WARMUP:=1}" "${BENCH_ROUNDS:=1}" "${BENCH_DUR:=1}" "${BENCH_RAMP:=1}"
	: "${BENCH_MEM_ENTRIES:=20000}" "${BENCH_MEM_REPEATS:=1}"
else
	: "${BENCH_WARMUP:=1}" "${BENCH_ROUNDS:=5}" "${BENCH_DUR:=2}" "${BENCH_RAMP:=1}"
	: "${BENCH_MEM_ENTRIES:=100000}" "${BENCH_MEM_REPEATS:=2}"
fi
: "${BENCH_SETUPS:=B0 B1 P1 R P2 R2 R0 P1r1000 R1000}" "${BENCH_WORKLOADS:=udp1k udp64k tcp newconn}"
: "${BENCH_MEM_SETUPS:=P1 R}"
BENCH_PROFILE=${BENCH_PROFILE-P1 R0 R P2 R2 P1:newconn R:newconn P2:tcp R2:tcp}

# The exact command, for the report.
cmd="${env_given}bench/run.sh"
[ "$quick" = 1 ] && cmd+=" --quick"
[ "$micro" = 0 ] && cmd+=" --no-micro"
[ "$vm" = 0 ] && cmd+=" --no-vm"

report() { # DIR
	local out=$1 args=()
	[ "$docs" = 1 ] && args+=(--docs "$RFW_ROOT/docs")
	python3 -c 'import matplotlib' 2>/dev/null ||
		python3 -m pip install --quiet matplotlib >&2 ||
		log "matplotlib unavailable: no plot"
	python3 "$RFW_ROOT/bench/report.py" "$out" "${args[@]}"
}

if [ -n "$report_only" ]; then
	report "$(realpath "$report_only")"
	exit 0
fi

out="$RFW_ROOT/target/bench/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
{
	echo "command=$cmd"
	echo "date=$(date -u +%FT%TZ)"
	echo "commit=$(git -C "$RFW_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$RFW_ROOT" diff --quiet HEAD 2>/dev/null || echo '+dirty')"
	echo "host=$(uname -r), $(nproc) cores, $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "settings=WARMUP=$BENCH_WARMUP ROUNDS=$BENCH_ROUNDS DUR=$BENCH_DUR RAMP=$BENCH_RAMP MEM_ENTRIES=$BENCH_MEM_ENTRIES MEM_REPEATS=$BENCH_MEM_REPEATS"
} >"$out/host.txt"
log "results in $out"

# ---- host microbenchmarks of the engine crates (criterion) -----------------
if [ "$micro" = 1 ]; then
	crit=()
	[ "$quick" = 1 ] && crit=(-- --warm-up-time 0.5 --measurement-time 1 --sample-size 10)
	touch "$out/micro.start"
	sleep 1
	log "cargo bench -p conntrack, -p nat"
	(cd "$RFW_ROOT" && cargo bench -p conntrack --bench conntrack "${crit[@]}" &&
		cargo bench -p nat --features host --bench nat "${crit[@]}") >"$out/micro.log" 2>&1 ||
		log "cargo bench failed: see $out/micro.log"
	# criterion's own files, the ones this run wrote
	find "$RFW_ROOT/target/criterion" -path '*/new/*' -name '*.json' -newer "$out/micro.start" -print0 2>/dev/null |
		while IFS= read -r -d '' f; do
			d="$out/criterion/${f#"$RFW_ROOT/target/criterion/"}"
			mkdir -p "$(dirname "$d")"
			cp "$f" "$d"
		done
fi

# ---- the VM run -------------------------------------------------------------
if [ "$vm" = 1 ]; then
	# Waits for a perf kernel build in progress (build-kernel.sh's lock),
	# builds it if there is none.
	kdir=$("$RFW_ROOT/scripts/build-kernel.sh" perf)
	"$RFW_ROOT/scripts/build-module.sh" perf >/dev/null
	(cd "$RFW_ROOT" && cargo build --release -q -p fwctl)
	accel=$("$RFW_ROOT/selftests/vm/accel.sh" "$kdir")
	echo "accel=$accel" >>"$out/host.txt"
	echo "kernel=perf ($(basename "$kdir"))" >>"$out/host.txt"
	# The guest reads the harness over 9p: a copy nobody edits.
	cp -a "$RFW_ROOT/bench" "$out/bench-snapshot"
	nset=$(wc -w <<<"$BENCH_SETUPS")
	nmem=$(wc -w <<<"$BENCH_MEM_SETUPS")
	budget=$((600 + (BENCH_WARMUP + BENCH_ROUNDS) * nset * (4 * (BENCH_DUR + BENCH_RAMP) + 120) + BENCH_MEM_REPEATS * nmem * 300 + $(wc -w <<<"$BENCH_PROFILE") * 120))
	log "VM run ($accel), at most ${budget}s"
	set +e
	RFW_KERNEL=perf RFW_NO_BUILD=1 RFW_RESULTS_DIR="$out/vm" RFW_VM_TIMEOUT=$budget \
		"$RFW_ROOT/selftests/run.sh" -- bash "$out/bench-snapshot/guest-bench.sh" "$out/vm/bench" \
		WARMUP="$BENCH_WARMUP" ROUNDS="$BENCH_ROUNDS" DUR="$BENCH_DUR" RAMP="$BENCH_RAMP" \
		MEM_ENTRIES="$BENCH_MEM_ENTRIES" MEM_REPEATS="$BENCH_MEM_REPEATS" \
		SETUPS="${BENCH_SETUPS// /,}" WORKLOADS="${BENCH_WORKLOADS// /,}" MEM_SETUPS="${BENCH_MEM_SETUPS// /,}" PROFILE="${BENCH_PROFILE// /,}" \
		>"$out/vm-output.txt" 2>"$out/vm-stderr.txt"
	rc=$?
	set -e
	cat "$out/vm-output.txt"
	if [ "$rc" -ne 0 ]; then
		log "VM run failed (exit $rc): $out/vm-stderr.txt"
		tail -n 30 "$out/vm-stderr.txt" >&2
		[ -f "$out/vm/bench/raw.csv" ] || exit 1
		log "partial results: reporting them"
		echo "vm_exit=$rc" >>"$out/host.txt"
	fi
fi

report "$out"
