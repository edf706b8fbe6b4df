#!/bin/bash
# Unprivileged namespaces are contained (issue 17, item 2). Two
# "containers": an unprivileged user (uid 1000) makes a user namespace and
# a network namespace of its own (`unshare --user --map-root-user --net`,
# as `unshare -Urn`) and runs fwctl there as its root; the host is the
# initial namespace. rfw is loaded with max=1000 (each namespace's
# default limit) and max_total=1500 (all namespaces together).
#
# (a) Limit: in container A, `fwctl ct limit 1001` (above the default) is
#     refused with one line on stderr naming the initial user namespace;
#     `fwctl ct limit 500` (lower) works, and so does 1000 again (back up
#     to the default). The host raises its own limit above the default.
# (b) LOG: A's OUTPUT rule with --log writes nothing to the host's kernel
#     log while net.netfilter.nf_log_all_netns is 0 (A's `fwctl rules
#     stats` counts the lines as log_suppressed), and writes lines once it
#     is 1, as nf_log_syslog does.
# (c) A fills its own table to its limit (UDP to new ports on its
#     loopback, for the whole step) while the host, tracking too, makes 200
#     TCP connections to a server namespace: 200/200 at the client (a reply
#     read on each) and at the server (200 accepted); A holds exactly its
#     limit, the host drops nothing.
# (d) Container B then fills too: all namespaces together stop at
#     max_total (1500, checked through every namespace's count), B short
#     of its own limit, and B's drops are counted as global_full.
# (e) Memory cgroups: a task in a cgroup of its own makes a namespace,
#     loads a ruleset of 2000 rules there and sends 900 new UDP flows
#     from it (tracked at LOCAL_OUT, in the task's context); the cgroup's
#     own memory.stat is the witness: its kernel memory grows by at least
#     16 bytes per rule with the ruleset, its unreclaimable slab by at
#     least half of 900 entries with tracking on, against the same flows
#     sent before, when nothing tracked them. (Entries made in softirq, by forwarded or
#     received packets, charge nobody: the limits bound them.)
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "setpriv --version" "setpriv (util-linux)"
checktool "nsenter --version" "nsenter (util-linux)"
checktool "python3 -V" "python3"
uid=1000
as_user() { setpriv --reuid=$uid --regid=$uid --clear-groups "$@"; }
as_user unshare --user --map-root-user --net true 2>/dev/null ||
	skip "uid $uid cannot make a user and network namespace here"

all_netns=$(sysctl -n net.netfilter.nf_log_all_netns 2>/dev/null) ||
	skip "no net.netfilter.nf_log_all_netns"
# Read by the containers' uid (their senders' stop files).
dir=$(mktemp -d)
chmod 755 "$dir"
holders=()
cleanup() {
	local j
	touch "$dir/stop_a" "$dir/stop_b"
	[ ${#holders[@]} -eq 0 ] || kill "${holders[@]}" 2>/dev/null
	for j in $(jobs -p); do kill "$j" 2>/dev/null; done
	wait 2>/dev/null
	sysctl -qw net.netfilter.nf_log_all_netns="$all_netns"
	fwctl ct tracking auto >/dev/null 2>&1
	kill_ns_procs
	cleanup_all_ns
	rm -rf "$dir"
	modprobe -r rfw 2>/dev/null
}
trap cleanup EXIT

# container VAR: a new unprivileged user+net namespace, held by a sleeping
# process of uid 1000 (its pid in VAR) until the test ends.
container() {
	local pid
	# (setpriv itself, not the as_user function: a function put in the
	# background runs in a forked shell, and $! would be that shell's.)
	setpriv --reuid=$uid --regid=$uid --clear-groups unshare --user --map-root-user --net sleep 600 &
	pid=$!
	holders+=("$pid")
	# setpriv and unshare exec: the pid is the sleeper's. Once it runs
	# sleep, unshare has made the namespaces and written the id maps.
	is_unshared() {
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] &&
			[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ]
	}
	busywait 30000 is_unshared || return 1
	eval "$1=$pid"
}

# in_ct PID CMD...: CMD as the container's root: uid 1000 entering the
# namespaces it owns (no privilege on the host). Its uid stays 1000, which
# is 0 in there (--preserve-credentials: the namespace denies setgroups,
# which nsenter would call to become root).
in_ct() {
	local pid=$1
	shift
	as_user nsenter --target "$pid" --user --net --preserve-credentials "$@"
}

# ct_val PID|"" NAME...: `fwctl ct stats` values of a container (or, with
# an empty PID, of the host), from one call, on one line in the order
# asked ("missing" for one not listed).
ct_val() {
	local pid=$1
	shift
	if [ -n "$pid" ]; then in_ct "$pid" fwctl ct stats; else fwctl ct stats; fi 2>/dev/null |
		awk -v keys="$*" '
			{ v[$1] = $2 }
			END { n = split(keys, k, " "); for (i = 1; i <= n; i++) printf "%s%s", ((k[i] in v) ? v[k[i]] : "missing"), (i < n ? " " : "\n") }'
}

# fill PID FIRST_PORT STOPFILE: UDP datagrams from the container to new
# ports on its loopback (one new flow each) until STOPFILE exists; the
# datagrams its table has no room for are dropped (sendto fails: ignored).
# The sender's pid goes in fill_pid. An insert at the limit counts one
# entry more for the moment it evicts one, so counts are read once the
# sender has stopped (stop_fill).
fill() {
	in_ct "$1" python3 -S -c '
import os, socket, sys, time
first, stop = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
i = 0
end = time.monotonic() + 300
while not os.path.exists(stop) and time.monotonic() < end:
    try:
        s.sendto(b"x", ("127.0.0.1", first + i % 20000))
    except OSError:
        pass
    i += 1
' "$2" "$3" </dev/null >/dev/null 2>&1 &
	fill_pid=$!
}

# stop_fill STOPFILE: stops the sender fill started last and waits for it.
stop_fill() {
	touch "$1"
	wait "$fill_pid" 2>/dev/null
}

modprobe rfw max=1000 max_total=1500 || { fail "modprobe rfw max=1000 max_total=1500"; exit $ret; }
check "max_total as the module parameter shows it" 1500 "$(cat /sys/module/rfw/parameters/max_total)"
container A || { fail "user namespace A"; exit $ret; }
in_ct "$A" ip link set lo up || fail "A: lo up"

# --- (a) the limit -----------------------------------------------------------
one_line_error "A: ct limit above the default is refused" in_ct "$A" fwctl ct limit 1001
err=$(in_ct "$A" fwctl ct limit 1001 2>&1 >/dev/null)
case "$err" in
*"initial user namespace"*1000*"Operation not permitted"*) pass "A: the error says why: $err" ;;
*) fail "A: the error: $err" ;;
esac
check "A: limit unchanged after the refusal" 1000 "$(ct_val "$A" limit)"
in_ct "$A" fwctl ct limit 500 >/dev/null && check "A: ct limit 500 (lower)" 500 "$(ct_val "$A" limit)" ||
	fail "A: ct limit 500 refused"
in_ct "$A" fwctl ct limit 1000 >/dev/null && check "A: ct limit 1000 (the default again)" 1000 "$(ct_val "$A" limit)" ||
	fail "A: ct limit 1000 refused"
fwctl ct limit 2000 >/dev/null && check "host: ct limit 2000 (above the default)" 2000 "$(ct_val "" limit)" ||
	fail "host: ct limit 2000 refused"

# --- (b) LOG and nf_log_all_netns ------------------------------------------
tag="rfwiso$$"
in_ct "$A" fwctl filter add --chain OUTPUT -4 -p udp --dport 9 --log --log-prefix "$tag: " ||
	fail "A: add --log rule"
in_ct "$A" fwctl ct timeout udp_unreplied 600 >/dev/null || fail "A: udp_unreplied 600"
send9() { in_ct "$A" python3 -S -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"log", ("127.0.0.1", 9))'; }
rules_val() { in_ct "$A" fwctl rules stats | awk -v k="$1" '$1 == k { print $2 }'; }
sysctl -qw net.netfilter.nf_log_all_netns=0
send9
check "nf_log_all_netns=0: no line from A in the host's log" 0 "$(dmesg | grep -c "$tag")"
check "nf_log_all_netns=0: A counts its 3 lines as log_suppressed" 3 "$(rules_val log_suppressed)"
sysctl -qw net.netfilter.nf_log_all_netns=1
send9
has_lines() { [ "$(dmesg | grep -c "$tag")" -ge 3 ]; }
if busywait 10000 has_lines; then
	pass "nf_log_all_netns=1: A's lines in the host's log ($(dmesg | grep -c "$tag"))"
else
	fail "nf_log_all_netns=1: $(dmesg | grep -c "$tag") lines from A"
fi
dmesg | grep "$tag" | tail -1 | grep -Eq "\] $tag: IN= OUT=lo SRC=127\.0\.0\.1 DST=127\.0\.0\.1 LEN=31 TOS=0x00 PREC=0x00 TTL=64 ID=[0-9]+ (DF )?PROTO=UDP SPT=[0-9]+ DPT=9 LEN=11 \$" &&
	pass "A's line in nf_log_syslog's format" || fail "A's line: $(dmesg | grep "$tag" | tail -1)"
sysctl -qw net.netfilter.nf_log_all_netns="$all_netns"

# --- (c) A fills its table while the host connects -----------------------
setup_ns sv || { fail "setup_ns"; exit $ret; }
ip link add rfwiso0 type veth peer name veth0 netns "$sv" || { fail "veth"; exit $ret; }
ip addr add 10.99.0.1/24 dev rfwiso0
ip link set rfwiso0 up
ip -net "$sv" addr add 10.99.0.2/24 dev veth0
ip -net "$sv" link set veth0 up
ip netns exec "$sv" python3 -S -c '
import socket, sys
log = open(sys.argv[1], "a", buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 8080))
s.listen(256)
while True:
    c, peer = s.accept()
    log.write("%s %d\n" % peer)
    try:
        c.sendall(b"OK\n")
    except OSError:
        pass
    c.close()
' "$dir/accepted" </dev/null >/dev/null 2>&1 &
busywait 30000 listening "$sv" 8080 tcp || fail "server listens"
fwctl ct tracking on >/dev/null || fail "host: ct tracking on"

fill "$A" 10000 "$dir/stop_a"
a_full() { [ "$(ct_val "$A" count)" = 1000 ]; }
busywait 60000 a_full || fail "A did not fill its table: count $(ct_val "$A" count)"
got=$(python3 -S -c '
import socket
ok = 0
for i in range(200):
    try:
        c = socket.create_connection(("10.99.0.2", 8080), timeout=10)
        c.settimeout(10)
        if c.recv(3) == b"OK\n":
            ok += 1
        c.close()
    except OSError:
        pass
print(ok)
')
stop_fill "$dir/stop_a"
check "host: 200 connections while A is full (client)" 200 "$got"
check "host: 200 connections while A is full (server accepted)" 200 "$(wc -l <"$dir/accepted")"
# A's counters from one call (each costs seconds as the container's user).
read -r a_count a_drop a_evict a_global < <(ct_val "$A" count drop early_drop global_full)
check "A: holds exactly its limit" 1000 "$a_count"
# At its limit each new flow of A either evicts one of A's never-replied
# entries (early drop) or is dropped: A pays for its flood itself.
[ $((a_drop + a_evict)) -gt 0 ] 2>/dev/null &&
	pass "A: its new flows at its limit evicted its own entries or were dropped (early_drop $a_evict, drop $a_drop)" ||
	fail "A: at its limit, early_drop $a_evict, drop $a_drop"
check "host: no connection of its own dropped" 0 "$(ct_val "" drop)"
check "A: nothing it dropped was for the global cap" 0 "$a_global"

# --- (d) B fills too: all namespaces stop at max_total ----------------------
container B || { fail "user namespace B"; exit $ret; }
in_ct "$B" ip link set lo up || fail "B: lo up"
in_ct "$B" fwctl ct tracking on >/dev/null || fail "B: ct tracking on"
in_ct "$B" fwctl ct timeout udp_unreplied 600 >/dev/null || fail "B: udp_unreplied 600"
fill "$B" 30000 "$dir/stop_b"
b_capped() { [ "$(ct_val "$B" global_full)" -gt 0 ] 2>/dev/null; }
busywait 60000 b_capped || fail "B: no global_full drop (count $(ct_val "$B" count))"
stop_fill "$dir/stop_b"
a=$(ct_val "$A" count)
b=$(ct_val "$B" count)
h=$(ct_val "" count)
total=$((a + b + h))
if [ "$total" -le 1500 ] && [ "$b" -lt 1000 ] && [ "$b" -gt 0 ]; then
	pass "all namespaces together stop at max_total: A $a + B $b + host $h = $total <= 1500"
else
	fail "max_total: A $a + B $b + host $h = $total (B below its limit of 1000?)"
fi
check "A: still at its limit" 1000 "$a"

# --- (e) memory cgroup charging --------------------------------------------
in_ct "$A" fwctl ct flush >/dev/null
in_ct "$B" fwctl ct flush >/dev/null
fwctl ct tracking auto >/dev/null
cg=/sys/fs/cgroup
[ -f $cg/cgroup.controllers ] || mount -t cgroup2 none $cg 2>/dev/null
if ! grep -qw memory $cg/cgroup.controllers 2>/dev/null; then
	echo "SKIP-CASE: no memory cgroup controller (CONFIG_MEMCG)"
else
	echo +memory >$cg/cgroup.subtree_control 2>/dev/null
	mkdir -p $cg/rfw_iso
	# 2000 filter rules that match nothing here (a table travels in one
	# netlink attribute: under 64 KiB).
	{
		echo "*filter"
		for p in $(seq 20000 21999); do echo "-A FORWARD -p udp --dport $p -j DROP"; done
		echo COMMIT
	} >"$dir/big"
	entry=$(ct_val "" entry_bytes)
	# In the cgroup, in a new namespace: memory.stat (after the kernel's
	# 2-second stat flush) around the restore, and around 900 flows sent
	# with tracking on, then 900 more with it off.
	sh -c 'echo $$ >"$1/cgroup.procs" && exec unshare -n python3 -S -c "$2" "$1" "$3"' memcg "$cg/rfw_iso" '
import subprocess, socket, sys, time
cg, big = sys.argv[1], sys.argv[2]
def stat(k):
    time.sleep(3)
    for line in open(cg + "/memory.stat"):
        name, v = line.split()
        if name == k:
            return int(v)
def fw(*a):
    r = subprocess.run(("fwctl",) + a, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit("fwctl %s: %s" % (" ".join(a), r.stderr.strip()))
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def flows(first):
    before = stat("slab_unreclaimable")
    for i in range(900):
        s.sendto(b"x", ("127.0.0.1", first + i))
    return stat("slab_unreclaimable") - before
# No table, no tracking yet: the same flows create no entry.
off = flows(3000)
k0 = stat("kernel")
fw("restore", big)
k1 = stat("kernel")
fw("ct", "tracking", "on")
on = flows(1000)
n = subprocess.run(["fwctl", "ct", "count"], capture_output=True, text=True).stdout.strip()
print(k1 - k0, on, off, n)
' "$dir/big" >"$dir/memcg" 2>"$dir/memcg.err" || fail "memcg: the cgroup task failed: $(tail -1 "$dir/memcg.err")"
	read -r rules on off n <"$dir/memcg"
	echo "# memcg: restore of 2000 rules +$rules B kernel memory; 900 flows: slab +$on B tracked ($n entries), +$off B untracked; entry $entry B"
	[ "${rules:-0}" -ge $((2000 * 16)) ] 2>/dev/null &&
		pass "memcg: the ruleset is charged to the caller's cgroup (kernel +$rules B for 2000 rules)" ||
		fail "memcg: ruleset charge: kernel +${rules:-?} B for 2000 rules"
	[ "$((on - off))" -ge $((900 * entry / 2)) ] 2>/dev/null &&
		pass "memcg: entries made in the task's context are charged to its cgroup (slab +$((on - off)) B for $n entries of $entry B)" ||
		fail "memcg: entry charge: slab +${on:-?} tracked, +${off:-?} untracked, $n entries of $entry B"
	rmdir $cg/rfw_iso 2>/dev/null
fi

kernel_log_clean
exit $ret
