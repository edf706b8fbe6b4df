#!/bin/bash
# A namespace gains and loses what it needs rfw's hooks for, under traffic
# (issue 18): rfw registers its hooks in a namespace only while the
# namespace tracks or counts (`RfwNet::sync`), so loading and unloading a
# table, `fwctl ct tracking on|auto` and `fwctl stats counting on|off`
# register and unregister hooks while packets run through them.
#
#   client 10.0.1.2 fd00:1::2 -- router -- server 10.0.2.2 fd00:2::2
#
# An iperf3 TCP stream (IPv4, 20 Mbit/s) and a ping -6 stream run client -> server
# through the router while, 5 times (RFW_CHURN_ROUNDS), the router loads a filter table
# (FORWARD policy DROP, the client's interface accepted both ways), then
# the same with an `--offload` rule (the fast path's ingress hook on each
# device, the stream offloaded), then
# switches counting on, then unloads the table, switches counting off and
# turns tracking on and back to auto. After every step the kernel's own
# list of registered hooks (`nft list hooks`) must show exactly the hook
# points that step needs (none in the end), and `nft list hooks netdev
# device DEV` rfw's ingress hook on every device exactly while the
# ruleset offloads. Witnesses in the end hosts:
# the stream's acknowledged bytes keep growing, the server took the
# segments, the pings were answered; the router's kernel log stays clean.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "iperf3 -v" "iperf3"
checktool "nft list hooks" "nft list hooks (CONFIG_NETFILTER_NETLINK_HOOK)"
trap 'kill_ns_procs; cleanup_all_ns; modprobe -r rfw 2>/dev/null' EXIT

setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
modprobe rfw || { fail "modprobe rfw"; exit $ret; }

all=$rfw_all_points
tracking="ip input ip output ip postrouting ip prerouting ip6 input ip6 output ip6 postrouting ip6 prerouting"
dir=$(mktemp -d)
cat >"$dir/filter" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i veth0 -o veth1 -j ACCEPT
-A FORWARD -i veth1 -o veth0 -j ACCEPT
COMMIT
EOF
# The same with the fast path: the stream is offloaded while it is loaded.
sed 's/^-A FORWARD -i veth0/-A FORWARD --ct-state established --offload\n&/' "$dir/filter" >"$dir/offload"
fw() { netns_exec "$rt" fwctl "$@" >/dev/null; }

netns_exec "$sv" nice -n 19 iperf3 -s -1 -D -I /tmp/iperf3-churn.pid >/dev/null 2>&1
busywait 60000 listening "$sv" 5201 || { fail "iperf3 server did not start"; exit $ret; }
# -t 900: longer than the test may run; killed at the end. -b 20M: a
# stream, not a flood that starves every command of the test under TCG;
# both ends at nice 19, so that the test's own steps come first when they
# want the CPU. (`ip netns exec` and nice exec: $! is iperf3's pid.)
ip netns exec "$cl" nice -n 19 iperf3 -c 10.0.2.2 -b 20M -t 900 >/dev/null 2>&1 &
client_pid=$!
ip netns exec "$cl" ping -6 -q -i 0.2 -c 100000 fd00:2::2 >"$dir/ping" 2>&1 &
ping_pid=$!
acked() {
	netns_exec "$cl" ss -tinH dst 10.0.2.2:5201 |
		grep -o 'bytes_acked:[0-9]*' | cut -d: -f2 | sort -n | tail -1
}
flowing() { [ "$(acked)" -gt 100000 ] 2>/dev/null; }
busywait 60000 flowing || fail "no iperf3 data flowing before the churn"

rounds=${RFW_CHURN_ROUNDS:-5} wrong=0 done=0
# Every device of the router gets the fast path's hook (lo, the veths,
# and whatever the kernel adds to each namespace, such as sit0).
devs=$(ns_devs "$rt")
for i in $(seq 1 $rounds); do
	kill -0 $client_pid 2>/dev/null || { fail "iperf3 ended in round $i"; break; }
	step() { # WHAT EXPECTED
		local now
		now=$(rfw_hooks "$rt")
		if [ "$now" != "$2" ]; then
			wrong=$((wrong + 1))
			echo "# round $i, $1: hooks '$now', expected '$2'"
		fi
	}
	ingress() { # WHAT EXPECTED: the devices with the fast path's hook
		local now
		now=$(rfw_ingress_devs "$rt")
		if [ "$now" != "$2" ]; then
			wrong=$((wrong + 1))
			echo "# round $i, $1: ingress hooks on '$now', expected '$2'"
		fi
	}
	fw restore "$dir/filter" || { fail "restore in round $i"; break; }
	step "filter loaded" "$all"
	sleep 0.3
	fw restore "$dir/offload" || { fail "restore with --offload in round $i"; break; }
	step "filter with --offload" "$all"
	ingress "filter with --offload" "$devs"
	sleep 0.3
	fw stats counting on || { fail "counting on in round $i"; break; }
	step "counting on" "$all"
	fw filter unload || { fail "unload in round $i"; break; }
	step "filter unloaded, counting on" "$all"
	fw stats counting off || { fail "counting off in round $i"; break; }
	step "counting off, no table" ""
	ingress "counting off, no table" ""
	fw ct tracking on || { fail "tracking on in round $i"; break; }
	step "tracking on" "$tracking"
	sleep 0.3
	fw ct tracking auto || { fail "tracking auto in round $i"; break; }
	step "tracking auto" ""
	done=$i
done
check "rounds of gaining and losing the ruleset, counting and tracking" $rounds "$done"
check "nft list hooks showed what each step needs, every step (wrong steps)" 0 "$wrong"
check "no rfw hook left in the router (nft list hooks)" "" "$(rfw_hooks "$rt")$(rfw_ingress_devs "$rt")"

a1=$(acked)
progressed() {
	a2=$(acked)
	[ -n "$a1" ] && [ -n "$a2" ] && [ "$a2" -gt "$a1" ]
}
if busywait 60000 progressed; then
	pass "witness: the stream still progresses after the churn (bytes_acked $a1 -> $a2)"
else
	fail "the stream stalled after the churn (bytes_acked '$a1' -> '$a2')"
fi
# SIGINT: ping prints its statistics.
kill -INT "$ping_pid" 2>/dev/null
kill "$client_pid" 2>/dev/null
wait "$client_pid" "$ping_pid" 2>/dev/null
rx=$(snmp_counter "$sv" Tcp:InSegs)
[ "${rx:-0}" -gt 1000 ] && pass "witness: server took in $rx TCP segments" || fail "server TCP InSegs $rx"
read -r tx rxp <<<"$(awk '/packets transmitted/ { print $1, $4 }' "$dir/ping")"
# Every ping answered but those in flight when it was stopped.
if [ "${tx:-0}" -gt 10 ] && [ $((tx - rxp)) -le 2 ]; then
	pass "witness: IPv6 pings through the router answered ($rxp of $tx)"
else
	fail "IPv6 pings: $rxp of $tx answered"
fi
rm -rf "$dir"
kernel_log_clean
exit $ret
