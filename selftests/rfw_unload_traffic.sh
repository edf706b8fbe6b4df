#!/bin/bash
# (c) rmmod rfw while iperf3 traffic runs through its hooks, 5 times
# (RFW_UNLOAD_CYCLES=N for more; `selftests/run.sh --repeat` repeats the
# whole test in one boot).
# Unregistering hooks from under running packets must be safe (pre_exit
# unhooks, a grace period passes, then state is freed). The witness is the
# end host: the TCP flow's own acknowledged-bytes counter (ss -ti in the
# client) keeps growing after the last reload, and the server received data.
# Both iperf3 ends run at nice 19: the stream takes whatever CPU the test's
# own steps leave (at the same priority it slowed them so much under TCG
# that a reload cycle took about 24 s), and still runs through the hooks on
# one CPU while the module goes on the other.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "iperf3 -v" "iperf3"
# The iperf3 client runs until killed, the server until its client ends.
trap 'kill_ns_procs; cleanup_all_ns; modprobe -r rfw 2>/dev/null' EXIT

setup_ns client server || { fail "setup_ns"; exit $ret; }
ip link add veth0 netns "$client" type veth peer name veth0 netns "$server"
ip -net "$client" addr add 10.0.2.1/24 dev veth0
ip -net "$server" addr add 10.0.2.2/24 dev veth0
ip -net "$client" link set veth0 up
ip -net "$server" link set veth0 up

netns_exec "$server" nice -n 19 iperf3 -s -1 -D -I /tmp/iperf3-rfw.pid >/dev/null 2>&1
busywait 60000 netns_exec "$server" sh -c 'ss -ltn | grep -q :5201' || { fail "iperf3 server did not start"; exit $ret; }
modprobe rfw
# Tracking and counting in both ends: rfw's hooks at every hook point (one
# `ip netns exec` per end).
track_and_count() {
	local n
	for n in "$client" "$server"; do
		netns_exec "$n" sh -c 'fwctl ct tracking on && fwctl stats counting on' >/dev/null ||
			fail "fwctl ct tracking on, fwctl stats counting on in $n"
	done
}
track_and_count
# -t 900: longer than the test may run; killed at the end. (`ip netns
# exec` and nice exec: $! is iperf3's pid.)
ip netns exec "$client" nice -n 19 iperf3 -c 10.0.2.2 -t 900 >/dev/null 2>&1 &
client_pid=$!

acked() { # the largest bytes_acked among the client's connections to the server
	netns_exec "$client" ss -tinH dst 10.0.2.2:5201 |
		grep -o 'bytes_acked:[0-9]*' | cut -d: -f2 | sort -n | tail -1
}
# The reloads start once data flows (more than the control connection's
# few hundred bytes acknowledged), however long iperf3 takes to start.
flowing() { [ "$(acked)" -gt 100000 ] 2>/dev/null; }
busywait 60000 flowing || fail "no iperf3 data flowing before the reloads"

# counted: the client's IPv4 output hook has counted packets (the
# counters start from zero with each load).
counted() {
	p=$(stat_of "$(fwctl_stats "$client")" ipv4 output packets)
	[ "${p:-0}" -gt 0 ] 2>/dev/null
}
cycles=0
want=${RFW_UNLOAD_CYCLES:-5}
for i in $(seq 1 "$want"); do
	kill -0 $client_pid 2>/dev/null || { fail "iperf3 ended before cycle $i"; break; }
	rmmod rfw || { fail "rmmod in cycle $i"; break; }
	sleep 0.2
	modprobe rfw || { fail "modprobe in cycle $i"; break; }
	# Track in both ends, so that entries exist when the module goes.
	track_and_count
	# The hooks see the flow again after every reload.
	busywait 60000 counted || fail "no packets counted after reload $i ($p)"
	# Traffic through the new hooks for a while before the next unload.
	sleep 0.5
	cycles=$i
done
check "reload cycles under traffic" "$want" "$cycles"

a1=$(acked)
progressed() {
	a2=$(acked)
	[ -n "$a1" ] && [ -n "$a2" ] && [ "$a2" -gt "$a1" ]
}
if busywait 60000 progressed; then
	pass "witness: the flow still progresses after the reloads (bytes_acked $a1 -> $a2)"
else
	fail "the flow stalled after the reloads (bytes_acked '$a1' -> '$a2')"
fi
segs() { rx=$(snmp_counter "$server" Tcp:InSegs); [ "${rx:-0}" -gt 1000 ]; }
busywait 60000 segs
[ "${rx:-0}" -gt 1000 ] && pass "witness: server took in $rx TCP segments" || fail "server TCP InSegs $rx"
kill "$client_pid" 2>/dev/null
wait "$client_pid" 2>/dev/null
exit $ret
