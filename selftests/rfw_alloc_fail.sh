#!/bin/bash
# Allocation failure: every allocation rfw cannot get ends in a clean error
# or a counted drop, and rfw works again once allocations succeed.
#
# Failures come from the kernel's failslab and fail_page_alloc (lib.sh:
# fault_*), GFP_KERNEL allocations and single pages included, and only
# into allocations made under rfw's code (the stack filter: the innermost
# frames of the allocation's stack hold an address of rfw, or while it is
# being loaded, of any module), so that the tools the test runs are spared.
#
# (a) Module load. `modprobe rfw` with every allocation of rfw's init
#     failing (make-it-fail); then the Nth of the K allocations of rfw's
#     init (fail-nth, fault_nth.py), for N spread over 1..K: the load fails
#     with ENOMEM and leaves nothing behind (no module, no rfw slab cache),
#     or succeeds (a fallback absorbed the failure), answers `fwctl stats`
#     and unloads.
# (b) Namespace creation, with rfw loaded: the same for rfw's
#     per-namespace init (unshare -n): ENOMEM, or a namespace where rfw
#     answers.
# (c) `fwctl restore`, with every allocation of the command failing, then
#     with the Nth failing for N = 1, 2, ... until none fails (the
#     command has fewer allocations than N; at most 60 attempts): a
#     failed restore exits non-zero with one line on stderr, and `fwctl
#     save` shows the ruleset from before; a restore that succeeds (a
#     failure some fallback absorbed: kvmalloc's vmalloc, kmemleak's pool)
#     installed the new ruleset.
# (d) New connections, with every allocation from rfw's entry cache
#     (rfw_conn) failing, in any context: 10 new UDP flows and a TCP
#     connection through a tracking router are dropped and counted
#     (`fwctl ct stats` drop, invalid.table_full), the table gains no entry,
#     and the server sees none of their packets (its nft counters).
# (e) Injection off: connections, restore, namespaces, unload and load work
#     again.
# (f) kmemleak (if the kernel has it) reports nothing allocated by rfw, and
#     the kernel log holds no report (BUG, WARNING, KASAN, lockdep, ...)
#     besides the injected failures' own messages and stacks, which the
#     test takes out of the log after each part.
#
# RFW_ALLOC_FAIL_POINTS=N: how many of the K allocations (a) and (b) fail,
# one per attempt (default 3 and 4: each load costs seconds under TCG);
# 0 fails every one of them (long: for runs with --repeat).
# RFW_ALLOC_FAIL_RESTORES=N: the most restores of (c) (default 60);
# RFW_ALLOC_FAIL_STEP=S: (c) fails allocation 1, 1+S, 1+2S, ... (default 6:
# a restore costs about 10 s under TCG on a slow host; 1 fails every one of
# them, for runs with --repeat).
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "python3 -V" "python3"
checktool "nft --version" "nft"
checktool "socat -V" "socat"
fault_available || skip "fault injection (CONFIG_FAULT_INJECTION_DEBUG_FS, FAILSLAB, FAIL_PAGE_ALLOC, FAULT_INJECTION_STACKTRACE_FILTER)"
here=${RFW_SELFTESTS:-$(dirname "$0")}
dir=$(mktemp -d)
trap 'fault_reset; rfw_cleanup' EXIT
fault_reset

# klog_take: moves the kernel log into $dir/klog (read and cleared at once),
# so that many injected failures' stacks cannot overrun the log buffer.
klog_take() { dmesg -c >>"$dir/klog" 2>/dev/null; }
# log_clean WHAT: no report in the kernel log since the last call.
log_clean() {
	local r
	klog_take
	r=$(grep -E "$splat_strong_re" "$dir/klog")
	if [ -z "$r" ]; then
		pass "$1: kernel log clean ($(grep -c 'FAULT_INJECTION: forcing a failure' "$dir/klog") failures logged)"
	else
		fail "$1: kernel log: $r"
		grep -E -B 5 -A 30 "$splat_strong_re" "$dir/klog" | head -80 | sed 's/^/    /'
	fi
	: >"$dir/klog"
}
# nothing_left WHAT: rfw is not loaded and none of its slab caches is left.
nothing_left() {
	if grep -q '^rfw ' /proc/modules; then
		fail "$1: rfw is loaded"
	elif [ -n "$(rfw_slab_objects)" ]; then
		fail "$1: slab caches left: $(rfw_slab_objects | paste -sd ' ')"
	else
		pass "$1: nothing left (module, slab caches)"
	fi
}
# sweep_report WHAT FILE: judges fault_nth.py's output: one "count K"
# line, then "N RESULT CHECK" per attempt.
sweep_report() {
	local what=$1 f=$2 k n res chk enomem=0 ok=0 tried=""
	k=$(awk '$1 == "count" { print $2 }' "$f")
	if [ -z "$k" ] || [ "$k" -lt 1 ]; then
		fail "$what: no allocation counted under rfw's code: $(paste -sd ' ' "$f")"
		return
	fi
	while read -r n res chk; do
		[ "$n" = count ] && continue
		tried+=" $n"
		case "$res $chk" in
		"ENOMEM clean") enomem=$((enomem + 1)) ;;
		"ok clean" | "ok,miss clean") ok=$((ok + 1)) ;;
		*) fail "$what, allocation $n of $k failing: $res $chk" ;;
		esac
	done <"$f"
	# An attempt may succeed: a fallback can absorb the failure (kvmalloc
	# falls back to vmalloc, kmemleak to its pool: its own allocations
	# under rfw's code count as points too).
	pass "$what, allocation N of $k failing (N:$tried): $enomem failed with ENOMEM, $ok succeeded, all clean"
}

# rfw's dependencies (nf_defrag_ipv4/6) stay loaded (rmmod, not modprobe
# -r): the loads below load rfw alone.
modprobe rfw && rmmod rfw || { fail "modprobe rfw; rmmod rfw"; exit $ret; }
ko=$(modinfo -n rfw)
dmesg -C

# --- (a) module load ---------------------------------------------------
read -r area_start area_end < <(fault_modules_area) ||
	{ fail "no kernel addresses in /proc/kallsyms"; exit $ret; }
fault_on failslab -t -r "$area_start" "$area_end" &&
	fault_on fail_page_alloc -t -r "$area_start" "$area_end" || fail "fault_on"
if out=$(fail_run modprobe rfw 2>&1); then
	fail "modprobe rfw with every allocation failing succeeded"
else
	pass "modprobe rfw with every allocation of rfw's init failing: \"$out\""
fi
fault_reset
nothing_left "failed modprobe"
fault_nth_setup "$area_start" "$area_end"
FAULT_NTH_KLOG="$dir/klog" python3 -S "$here/fault_nth.py" "load:$ko" \
	"${RFW_ALLOC_FAIL_POINTS:-3}" >"$dir/load" 2>&1
sweep_report "module load" "$dir/load"
fault_reset
nothing_left "after the load attempts"
log_clean "module load"

# --- (b) namespace creation --------------------------------------------
modprobe rfw || { fail "modprobe rfw"; exit $ret; }
read -r rfw_start rfw_end < <(fault_module_range rfw) ||
	{ fail "no address for rfw in /proc/modules"; exit $ret; }
fault_on failslab -t -r "$rfw_start" "$rfw_end" &&
	fault_on fail_page_alloc -t -r "$rfw_start" "$rfw_end" || fail "fault_on"
if out=$(fail_run unshare -n true 2>&1); then
	fail "a namespace came up with every allocation of rfw's init failing"
else
	pass "unshare -n with every allocation of rfw's init failing: \"$out\""
fi
fault_reset
fault_nth_setup "$rfw_start" "$rfw_end"
FAULT_NTH_KLOG="$dir/klog" python3 -S "$here/fault_nth.py" netns \
	"${RFW_ALLOC_FAIL_POINTS:-4}" >"$dir/netns" 2>&1
sweep_report "namespace creation" "$dir/netns"
fault_reset
log_clean "namespace creation"

# --- (c) fwctl restore -------------------------------------------------
setup_ns rt q || { fail "setup_ns"; exit $ret; }
# A has every table (nat and mangle empty): a restore replaces only the
# tables its input names, as iptables-restore does, so restoring A after an
# absorbed failure installed B must also take B's nat and mangle away.
cat >"$dir/A" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD --ct-state established,related --accept
-A FORWARD -4 -p tcp --dport 80 --ct-state new --accept
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
EOF
cat >"$dir/B" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:from_client - [0:0]
-A FORWARD -4 -i veth0 --jump from_client
-A FORWARD --ct-state established,related --accept
-A from_client -p tcp --dport 5201 --ct-state new --accept
-A from_client -p udp --dport 9000 --log --log-prefix "rfw-af: "
-A from_client --return
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -4 -o veth1 --masquerade
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -4 -p tcp --dport 5201 --set-mark 0x2
COMMIT
EOF
fw "$rt" restore "$dir/A" || fail "restore A"
fw "$q" restore "$dir/B" || fail "restore B"
saved_a=$(save_rules "$rt")
saved_b=$(save_rules "$q")
[ "$saved_a" != "$saved_b" ] || fail "rulesets A and B save alike"
# restore_failed WHAT: the last restore's stderr ($dir/err) is one line and
# the router still has ruleset A.
restore_failed() {
	local n
	n=$(grep -c . "$dir/err")
	[ "$n" -eq 1 ] || { fail "$1: $n lines on stderr: $(paste -sd '|' "$dir/err")"; return 1; }
	local now
	now=$(save_rules "$rt")
	[ "$now" = "$saved_a" ] || {
		fail "$1: fwctl save changed after the failed restore ($(cat "$dir/err")): $(diff <(echo "$saved_a") <(echo "$now") | grep '^[<>]' | head -6 | paste -sd '|')"
		return 1
	}
}

fault_on failslab -t -r "$rfw_start" "$rfw_end" &&
	fault_on fail_page_alloc -t -r "$rfw_start" "$rfw_end" || fail "fault_on"
if fail_run ip netns exec "$rt" fwctl restore "$dir/B" >/dev/null 2>"$dir/err"; then
	fail "restore with every allocation failing succeeded"
elif restore_failed "restore with every allocation failing"; then
	pass "restore with every allocation failing: \"$(cat "$dir/err")\", fwctl save unchanged"
fi
fault_reset
fault_nth_setup "$rfw_start" "$rfw_end"
failed=0 absorbed=0 done_at="" broke=0 step=${RFW_ALLOC_FAIL_STEP:-6}
for n in $(seq 1 "$step" "${RFW_ALLOC_FAIL_RESTORES:-60}"); do
	broke=1
	before=$(fault_times)
	ip netns exec "$rt" bash -c "$fail_nth_sh" "$n" fwctl restore "$dir/B" >/dev/null 2>"$dir/err"
	rc=$?
	injected=$((before - $(fault_times)))
	klog_take
	if [ "$rc" -ne 0 ]; then
		restore_failed "restore with allocation $n failing" || break
		failed=$((failed + 1))
	elif [ "$(save_rules "$rt")" != "$saved_b" ]; then
		fail "restore with allocation $n failing succeeded, but fwctl save does not show ruleset B"
		break
	elif [ "$injected" -eq 0 ]; then
		done_at=$n
		broke=0
		break
	else
		absorbed=$((absorbed + 1))
		fw "$rt" restore "$dir/A" || { fail "restore A again"; break; }
	fi
	broke=0
done
if [ "$broke" = 1 ]; then
	: # failed above
elif [ -n "$done_at" ]; then
	pass "restore with allocation N failing, N = 1..$((done_at - 1)) step $step: $failed failed with one line and fwctl save unchanged, $absorbed succeeded (a fallback absorbed the failure) and installed B; N = $done_at met no failure and installed B"
else
	pass "restore with allocation N failing, N = 1..${RFW_ALLOC_FAIL_RESTORES:-60} step $step (not all of them): $failed failed with one line and fwctl save unchanged, $absorbed succeeded and installed B"
fi
fault_reset
log_clean "restore"

# --- (d) new connections -------------------------------------------------
setup_ns cl fr sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$fr" "$sv" || { fail "setup_router"; exit $ret; }
fw "$fr" ct tracking on >/dev/null || fail "fwctl ct tracking on"
netns_exec "$sv" nft -f - <<NFT || fail "server nft rules"
table inet t {
	counter syn8080 { }
	counter udp9001 { }
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 8080 tcp flags syn counter name "syn8080"
		udp dport 9001 counter name "udp9001"
	}
}
NFT
tcp_servers "$sv" 0.0.0.0 8080 || fail "server up"
check "connection before injection" "OK 8080" "$(tcp_get "$cl" TCP4:10.0.2.2:8080)"
fw "$fr" ct flush >/dev/null
syn0=$(nft_packets "$sv" syn8080 t)
drop0=$(ct_stat "$fr" drop)
full0=$(ct_stat "$fr" invalid.table_full)
[ "$full0" = missing ] && full0=0

failslab_rfw || fail "failslab on rfw's caches"
# Counted once injection is on: nothing can add an entry from then on.
entries0=$(fw "$fr" ct count)
sent=$(netns_exec "$cl" python3 -S "$here/udp_flows.py" 10.0.2.2 9001 10 31000)
out=$(tcp_get "$cl" TCP4:10.0.2.2:8080 2)
dropped() { [ "$(ct_stat "$fr" drop)" -ge $((drop0 + 11)) ]; }
busywait 60000 dropped
entries=$(fw "$fr" ct count)
fault_reset

check "under injection: UDP datagrams sent (sender's count)" 10 "$sent"
check "under injection: the TCP connection failed" "" "$out"
d=$(($(ct_stat "$fr" drop) - drop0))
if [ "$d" -ge 11 ]; then pass "under injection: $d packets counted as drops (fwctl ct stats drop)"; else fail "under injection: $d drops counted, 11 at least expected"; fi
full=$(ct_stat "$fr" invalid.table_full)
[ "$full" = missing ] && full=0
if [ $((full - full0)) -ge 11 ]; then pass "under injection: invalid.table_full +$((full - full0))"; else fail "under injection: invalid.table_full +$((full - full0))"; fi
check "under injection: the table gained no entry" "$entries0" "$entries"
check "witness: no datagram reached the server (nft counter)" 0 "$(nft_packets "$sv" udp9001 t)"
check "witness: no SYN reached the server (nft counter)" "$syn0" "$(nft_packets "$sv" syn8080 t)"

# --- (e) injection off -----------------------------------------------------
check "injection off: a new connection" "OK 8080" "$(tcp_get "$cl" TCP4:10.0.2.2:8080)"
netns_exec "$cl" python3 -S "$here/udp_flows.py" 10.0.2.2 9001 10 32000 >/dev/null
udp10() { [ "$(nft_packets "$sv" udp9001 t)" = 10 ]; }
busywait 60000 udp10
check "injection off: 10 new UDP flows reach the server (nft counter)" 10 "$(nft_packets "$sv" udp9001 t)"
fw "$rt" restore "$dir/B" && [ "$(save_rules "$rt")" = "$saved_b" ] &&
	pass "injection off: restore installs ruleset B" || fail "injection off: restore B"
setup_ns again && fw "$again" stats >/dev/null &&
	pass "injection off: a new namespace answers fwctl stats" || fail "injection off: new namespace"
kill_ns_procs
cleanup_all_ns
if rmmod rfw && modprobe rfw && fwctl stats >/dev/null && rmmod rfw; then
	pass "injection off: unload, load, fwctl stats, unload"
else
	fail "injection off: unload and load again"
fi
nothing_left "after the last unload"
log_clean "connections and recovery"

# --- (f) kmemleak ------------------------------------------------------------
if kmemleak_available; then
	if kmemleak_scan; then
		kmemleak_take "$dir/kmemleak"
		mine=$(kmemleak_rfw "$dir/kmemleak")
		if [ -z "$mine" ]; then
			pass "kmemleak: nothing allocated by rfw leaked ($(kmemleak_count "$dir/kmemleak") other reports)"
		else
			fail "kmemleak: $(echo "$mine" | grep -c '^unreferenced object') objects leaked by rfw"
			echo "$mine" | head -100 | sed 's/^/    /'
		fi
	else
		fail "kmemleak turned itself off"
	fi
else
	echo "SKIP-CASE: kmemleak off (a --repeat run, or RFW_KMEMLEAK=1, boots with it)"
fi
log_clean "kmemleak"
exit $ret
