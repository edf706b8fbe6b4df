#!/bin/bash
# Connection tracking with the two directions of a flow on two CPUs.
#
#   client 10.0.1.2 -- veth0 [router: rfw tracks] veth1 -- server 10.0.2.2
#                      RPS -> CPU0                 RPS -> CPU1
#
# Receive packet steering sends everything the router receives from the
# client to CPU0 and everything from the server to CPU1, so rfw sees the
# original direction of each TCP flow on one CPU and the reply direction on
# the other, concurrently. The client runs on CPU1 and the server on CPU0,
# so every steered packet crosses CPUs. For IPv4 and IPv6, a 1 MiB
# transfer: the flow reaches ESTABLISHED [ASSURED] in `fwctl ct list`,
# arrives intact (cmp), and no packet is classified INVALID.
# Witness that both CPUs did the work: /proc/net/softnet_stat, per CPU,
# the packets processed (column 1) and the RPS wake-ups received
# (column 10) grow on both.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "taskset -V" "taskset (util-linux)"
[ "$(nproc)" -ge 2 ] || skip "needs 2 CPUs (has $(nproc))"
dir=$(mktemp -d)
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
fw "$rt" ct tracking on >/dev/null || fail "fwctl ct tracking on"
# `ip netns exec` mounts the namespace's own /sys: these are the router's devices.
ip netns exec "$rt" sh -c 'echo 1 >/sys/class/net/veth0/queues/rx-0/rps_cpus &&
	echo 2 >/sys/class/net/veth1/queues/rx-0/rps_cpus' || skip "cannot set rps_cpus (CONFIG_RPS?)"
check "router veth0 steers to CPU0, veth1 to CPU1 (rps_cpus)" "1 2" \
	"$(ip netns exec "$rt" sh -c 'echo $((0x$(cat /sys/class/net/veth0/queues/rx-0/rps_cpus))) $((0x$(cat /sys/class/net/veth1/queues/rx-0/rps_cpus)))')"
head -c 1048576 /dev/urandom >"$dir/data"
netns_exec "$cl" ping -q -c 1 -W 10 10.0.2.2 >/dev/null || fail "IPv4 path up"
netns_exec "$cl" ping -6 -q -c 1 -W 10 fd00:2::2 >/dev/null || fail "IPv6 path up"

# softnet CPU COLUMN: one column (1-based, hex in the file) of CPU's line
# of /proc/net/softnet_stat (column 13 is the CPU), in decimal.
softnet() {
	local v
	v=$(awk -v cpu="$(printf %08x "$1")" -v col="$2" '$13 == cpu { print $col }' /proc/net/softnet_stat)
	echo $((16#${v:-0}))
}

inv0=$(ct_stat "$rt" invalid)
for v in 4 6; do
	if [ $v = 4 ]; then listen=TCP4-LISTEN:7000,reuseaddr to=TCP4:10.0.2.2:7000 d=10.0.2.2; else listen=TCP6-LISTEN:7000,reuseaddr,ipv6only=1 to="TCP6:[fd00:2::2]:7000" d=fd00:2::2; fi
	p0=$(softnet 0 1) p1=$(softnet 1 1) r0=$(softnet 0 10) r1=$(softnet 1 10)
	rm -f "$dir/out"
	ip netns exec "$sv" taskset -c 0 socat -u "$listen" OPEN:"$dir/out",creat,trunc </dev/null >/dev/null 2>&1 &
	spid=$!
	busywait 60000 listening "$sv" 7000 || fail "IPv$v server listens"
	# The client sends the file, then holds the connection open until
	# killed below (a fixed hold could end before the checks).
	ip netns exec "$cl" taskset -c 1 socat -u SYSTEM:"cat $dir/data; sleep 100000" "$to,connect-timeout=60" </dev/null >/dev/null 2>&1 &
	cpid=$!
	all_in() { [ "$(stat -c %s "$dir/out" 2>/dev/null)" = 1048576 ]; }
	busywait 120000 all_in || fail "IPv$v: the server did not get 1 MiB ($(stat -c %s "$dir/out" 2>/dev/null) bytes)"
	assured() { ct_list "$rt" -p tcp -d $d | grep -q "ESTABLISHED .*dport=7000 .*ASSURED"; }
	if busywait 60000 assured; then
		pass "IPv$v: the flow is ESTABLISHED [ASSURED] with its directions on two CPUs"
	else
		fail "IPv$v: no ESTABLISHED [ASSURED] entry"
		ct_list "$rt"
	fi
	kill $cpid 2>/dev/null
	wait $cpid 2>/dev/null
	wait $spid
	cmp -s "$dir/data" "$dir/out" && pass "IPv$v: 1 MiB arrived intact" || fail "IPv$v: the data differs"
	dp0=$(($(softnet 0 1) - p0)) dp1=$(($(softnet 1 1) - p1))
	dr0=$(($(softnet 0 10) - r0)) dr1=$(($(softnet 1 10) - r1))
	echo "# IPv$v softnet deltas: CPU0 processed $dp0, RPS wake-ups $dr0; CPU1 processed $dp1, RPS wake-ups $dr1"
	if [ $dp0 -gt 10 ] && [ $dp1 -gt 10 ]; then
		pass "witness: both CPUs processed packets (softnet_stat processed +$dp0, +$dp1)"
	else
		fail "witness: softnet_stat processed +$dp0 on CPU0, +$dp1 on CPU1"
	fi
	if [ $dr0 -gt 0 ] && [ $dr1 -gt 0 ]; then
		pass "witness: both CPUs were sent packets by RPS (softnet_stat received_rps +$dr0, +$dr1)"
	else
		fail "witness: softnet_stat received_rps +$dr0 on CPU0, +$dr1 on CPU1"
	fi
done
check "no packet classified INVALID on the router (fwctl ct stats invalid)" 0 $(($(ct_stat "$rt" invalid) - inv0))

kernel_log_clean
exit $ret
