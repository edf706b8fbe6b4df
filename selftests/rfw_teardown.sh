#!/bin/bash
# Namespaces die cleanly under churn (issue 17 item 3; reliability review
# F10-F13): ROUNDS times (3; RFW_TEARDOWN_ROUNDS=50 for the long run, about
# 6 minutes under emulation, which the suite cannot afford), a namespace
# that holds ENTRIES (5000) connections is
# deleted while a neighbour namespace churns short-lived UDP flows and runs
# `fwctl ct flush` in a loop. rfw removes a dying namespace's entries in
# one table walk per batch of exits, repeated until none is left, before
# its state is freed; a walk that missed entries (a chain changing under
# it) used to leave entries pointing at freed namespace state.
# Witnesses: every round's namespace held ENTRIES entries before it went
# (`fwctl ct stats`); the neighbour's churn and flushes ran all along; the
# rfw_conn slab returns to its size before the rounds; `rmmod rfw` is
# clean; the kernel log (KASAN, lockdep, warnings) is clean.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "python3 -V" "python3"
dir=$(mktemp -d)
churn_pid= flush_pid=
cleanup() {
	[ -n "$churn_pid" ] && kill "$churn_pid" 2>/dev/null
	[ -n "$flush_pid" ] && kill "$flush_pid" 2>/dev/null
	rfw_cleanup
}
trap cleanup EXIT

ROUNDS=${RFW_TEARDOWN_ROUNDS:-3} ENTRIES=5000

# rfw_conn objects now.
conn_objects() { rfw_slab_objects | awk '$1 == "rfw_conn" { n += $2 } END { print n + 0 }'; }

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
slab0=$(conn_objects)
setup_ns nb || { fail "setup_ns"; exit $ret; }
ip -net "$nb" link set lo up
fw "$nb" ct tracking on >/dev/null || fail "neighbour: ct tracking on"

# The neighbour: new UDP flows on loopback (each a fresh source port), and
# a flush of its table every 0.1 s.
ip netns exec "$nb" python3 -S -c '
import socket, sys, time
n = 0
while True:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.1", 9000 + n % 100))
    s.close()
    n += 1
    # About 500 flows a second: churn, and CPU left for the rounds.
    time.sleep(0.002)
    if n % 500 == 0:
        with open(sys.argv[1], "w") as f:
            f.write("%d\n" % n)
' "$dir/churn" </dev/null >/dev/null 2>&1 &
churn_pid=$!
(
	i=0
	while :; do
		netns_exec "$nb" fwctl ct flush >/dev/null 2>&1 && i=$((i + 1))
		echo "$i" >"$dir/flushes"
		sleep 0.1
	done
) </dev/null >/dev/null 2>&1 &
flush_pid=$!
busywait 60000 test -s "$dir/churn" || fail "the neighbour churns"

# The rounds, in one process (a process per step costs seconds under
# emulation): it makes a network namespace of its own (unshare), brings
# its loopback up, turns tracking on and sends ENTRIES UDP datagrams to
# distinct closed ports there (each a connection; the port unreachable
# answers are RELATED), reads the namespace's count, then returns to the
# initial namespace: the round's namespace has no user left and dies
# (cleanup_net, in batches with others). Prints the rounds whose namespace
# held ENTRIES entries.
full=$(python3 -S -c '
import ctypes, fcntl, os, socket, struct, subprocess, sys
rounds, entries = int(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
home = os.open("/proc/self/ns/net", os.O_RDONLY)
def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0))[:18])[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    s.close()
full = 0
for r in range(1, rounds + 1):
    if libc.unshare(CLONE_NEWNET) != 0:
        print("# round %d: unshare: errno %d" % (r, ctypes.get_errno()), file=sys.stderr)
        break
    lo_up()
    subprocess.run(["fwctl", "ct", "tracking", "on"], stdout=subprocess.DEVNULL, check=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for p in range(entries):
        try:
            s.sendto(b"x", ("127.0.0.1", 10000 + p))
        except OSError:
            pass
    s.close()
    out = subprocess.run(["fwctl", "ct", "stats"], capture_output=True, text=True).stdout
    count = next((int(l.split()[1]) for l in out.splitlines() if l.split()[:1] == ["count"]), 0)
    if count >= entries:
        full += 1
    else:
        print("# round %d: the namespace held %d entries" % (r, count), file=sys.stderr)
    if libc.setns(home, CLONE_NEWNET) != 0:
        print("# round %d: setns back: errno %d" % (r, ctypes.get_errno()), file=sys.stderr)
        break
print(full)
' "$ROUNDS" "$ENTRIES")
check "every round's namespace held $ENTRIES entries when it was deleted" "$ROUNDS" "$full"

churned=$(cat "$dir/churn") flushes=$(cat "$dir/flushes")
echo "# neighbour: $churned flows made, $flushes flushes during the rounds"
if [ "${flushes:-0}" -ge "$ROUNDS" ] && [ "${churned:-0}" -ge 1000 ]; then
	pass "the neighbour churned and flushed all along ($churned flows, $flushes flushes)"
else
	fail "neighbour: $churned flows, $flushes flushes"
fi
kill "$churn_pid" "$flush_pid" 2>/dev/null
wait "$churn_pid" "$flush_pid" 2>/dev/null
churn_pid= flush_pid=
ip netns del "$nb"

# The entries of the deleted namespaces are freed a grace period after
# their removal, by the collector (every 100 ms).
slab_back() { [ "$(conn_objects)" -le "$slab0" ]; }
if busywait 60000 slab_back; then
	pass "the rfw_conn slab is back to its size before the rounds ($(conn_objects) <= $slab0)"
else
	fail "the rfw_conn slab holds $(conn_objects) objects, $slab0 before the rounds"
fi
if rmmod rfw; then
	pass "rmmod rfw"
else
	fail "rmmod rfw"
fi
kernel_log_clean
exit $ret
