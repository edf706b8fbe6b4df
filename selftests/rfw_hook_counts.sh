#!/bin/bash
# (b) Per-hook, per-namespace counters are exact, and rfw hooks a namespace
# only where it needs to.
#
#   ns1 (10.0.1.1, fd00:1::1) <--veth--> ns2 (10.0.1.2, fd00:1::2)    ns3 idle
#
# Counting is switched on in all three (`fwctl stats counting on`), then 10
# IPv4 pings ns1 -> ns2, then 10 IPv6 pings. Each echo request leaves ns1
# through OUTPUT and POSTROUTING and enters ns2 through PREROUTING and INPUT;
# each reply goes the other way; nothing is forwarded. Noise is removed
# rather than subtracted: ARP is not IP (no IP hooks), IPv6 addresses are
# added without DAD, neighbours are static (no NDP), and the counters are read
# after the MLD reports that joining the address's groups sends have passed.
# The idle namespace ns3 must read zero everywhere. The end hosts' own ICMP
# counters (/proc/net/snmp) are the independent witness.
#
# Then counting goes off in ns2 and 10 more IPv4 pings run: ns1 counts them,
# ns2's counters stand still. Which hooks rfw has registered in each
# namespace is read from the kernel's own list (`nft list hooks`,
# nfnetlink_hook): every hook point while counting, none in a namespace
# that neither counts nor tracks, and with tracking only the points that
# tracking needs (PREROUTING, OUTPUT, and the confirmation at INPUT and
# POSTROUTING; FORWARD too once a filter table is loaded).
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "ping -V" "ping"
trap 'cleanup_all_ns; modprobe -r rfw 2>/dev/null' EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns ns1 ns2 ns3 || { fail "setup_ns"; exit $ret; }

all_points=$rfw_all_points
checktool "nft list hooks" "nft list hooks (CONFIG_NETFILTER_NETLINK_HOOK)"
check "no rfw hook in a namespace that neither counts nor tracks (nft list hooks)" "" "$(rfw_hooks "$ns1")"
for n in "$ns1" "$ns2" "$ns3"; do
	ip netns exec "$n" fwctl stats counting on >/dev/null || fail "fwctl stats counting on in $n"
done
check "counting on: an rfw hook at every hook point (nft list hooks)" "$all_points" "$(rfw_hooks "$ns1")"
# (Before the links come up: the MLD reports below are counted.)

ip link add veth1 netns "$ns1" type veth peer name veth2 netns "$ns2"
mac1=02:00:00:00:01:01
mac2=02:00:00:00:01:02
ip -net "$ns1" link set veth1 address $mac1
ip -net "$ns2" link set veth2 address $mac2
for n in "$ns1" "$ns2"; do
	# No SLAAC/link-local address: no DAD or router solicitation traffic.
	ip netns exec "$n" sysctl -qw net.ipv6.conf.default.addr_gen_mode=1
done
ip -net "$ns1" link set veth1 addrgenmode none
ip -net "$ns2" link set veth2 addrgenmode none
ip -net "$ns1" addr add 10.0.1.1/24 dev veth1
ip -net "$ns2" addr add 10.0.1.2/24 dev veth2
ip -net "$ns1" addr add fd00:1::1/64 dev veth1 nodad
ip -net "$ns2" addr add fd00:1::2/64 dev veth2 nodad
ip -net "$ns1" neigh add fd00:1::2 lladdr $mac2 dev veth1 nud permanent
ip -net "$ns2" neigh add fd00:1::1 lladdr $mac1 dev veth2 nud permanent
ip -net "$ns1" link set veth1 up
ip -net "$ns2" link set veth2 up


# Let the MLD reports for the new multicast memberships go out: wait
# until both ends have sent IPv6 (the first report: the link is up, however
# long that took), then until no packet at all has been counted in either
# for 3 s (the reports' retransmissions come within MLDv2's 1 s unsolicited
# report interval).
mld_quiet() {
	local now
	now="$(fwctl_stats "$ns1")/$(fwctl_stats "$ns2")"
	if [ "$now" != "$quiet_last" ]; then
		quiet_last=$now
		quiet_since=$(date +%s%3N)
		return 1
	fi
	[ "$(stat_of "${now%/*}" ipv6 output packets)" -gt 0 ] 2>/dev/null &&
		[ "$(stat_of "${now#*/}" ipv6 output packets)" -gt 0 ] 2>/dev/null &&
		[ $(($(date +%s%3N) - quiet_since)) -ge 3000 ]
}
quiet_last="" quiet_since=0
busywait 60000 mld_quiet || echo "# no quiet 3 s after the MLD reports within 60 s"
before1=$(fwctl_stats "$ns1")
before2=$(fwctl_stats "$ns2")
echo4_before=$(snmp_counter "$ns2" Icmp:InEchos)
echo6_before=$(snmp_counter "$ns2" Icmp6InEchos)
rep4_before=$(snmp_counter "$ns1" Icmp:InEchoReps)
rep6_before=$(snmp_counter "$ns1" Icmp6InEchoReplies)

ip netns exec "$ns1" ping -q -c 10 -i 0.1 -W 10 10.0.1.2 >/dev/null || fail "IPv4 ping ns1 -> ns2"
ip netns exec "$ns1" ping -6 -q -c 10 -i 0.1 -W 10 fd00:1::2 >/dev/null || fail "IPv6 ping ns1 -> ns2"
# ping may end before a late reply is in: the counters are read once ns1
# has taken all 20 replies, the last packets of the exchange.
replies_in() {
	[ $(($(snmp_counter "$ns1" Icmp:InEchoReps) - rep4_before)) -ge 10 ] &&
		[ $(($(snmp_counter "$ns1" Icmp6InEchoReplies) - rep6_before)) -ge 10 ]
}
busywait 60000 replies_in

after1=$(fwctl_stats "$ns1")
after2=$(fwctl_stats "$ns2")
after3=$(fwctl_stats "$ns3")
check "witness: ns2 received 10 IPv4 echo requests (its /proc/net/snmp)" 10 \
	$(($(snmp_counter "$ns2" Icmp:InEchos) - echo4_before))
check "witness: ns2 received 10 IPv6 echo requests (its /proc/net/snmp6)" 10 \
	$(($(snmp_counter "$ns2" Icmp6InEchos) - echo6_before))

# 84 bytes per IPv4 echo (20 IP + 8 ICMP + 56 data), 104 per IPv6 echo.
declare -A size=([ipv4]=84 [ipv6]=104)
# Expected packets per hook: ns1 sends requests and receives replies.
declare -A exp1=([prerouting]=10 [input]=10 [forward]=0 [output]=10 [postrouting]=10)
declare -A exp2=([prerouting]=10 [input]=10 [forward]=0 [output]=10 [postrouting]=10)
for f in ipv4 ipv6; do
	for h in prerouting input forward output postrouting; do
		for side in 1 2; do
			if [ $side = 1 ]; then b=$before1 a=$after1 e=${exp1[$h]}; else b=$before2 a=$after2 e=${exp2[$h]}; fi
			dp=$(($(stat_of "$a" $f $h packets) - $(stat_of "$b" $f $h packets)))
			db=$(($(stat_of "$a" $f $h bytes) - $(stat_of "$b" $f $h bytes)))
			check "ns$side $f $h packets" "$e" "$dp"
			check "ns$side $f $h bytes" "$((e * ${size[$f]}))" "$db"
		done
		check "idle ns3 $f $h" "0/0" "$(stat_of "$after3" $f $h packets)/$(stat_of "$after3" $f $h bytes)"
	done
done

# Nothing but the pings was counted in ns1: its IPv4 totals are absolute.
check "ns1 ipv4 output packets since the namespace was created" 10 "$(stat_of "$after1" ipv4 output packets)"

# Counting off in ns2: its hooks go, its counters stand still.
check "fwctl stats counting off" "counting: off" "$(ip netns exec "$ns2" fwctl stats counting off)"
check "counting off: no rfw hook left in ns2 (nft list hooks)" "" "$(rfw_hooks "$ns2")"
rep4_before=$(snmp_counter "$ns1" Icmp:InEchoReps)
ip netns exec "$ns1" ping -q -c 10 -i 0.1 -W 10 10.0.1.2 >/dev/null || fail "IPv4 ping ns1 -> ns2, counting off in ns2"
replies4_in() { [ $(($(snmp_counter "$ns1" Icmp:InEchoReps) - rep4_before)) -ge 10 ]; }
busywait 60000 replies4_in
later1=$(fwctl_stats "$ns1")
later2=$(fwctl_stats "$ns2")
check "counting on in ns1: 10 more IPv4 output packets" 20 "$(stat_of "$later1" ipv4 output packets)"
check "counting off in ns2: IPv4 input stands still" "$(stat_of "$after2" ipv4 input packets)" "$(stat_of "$later2" ipv4 input packets)"
check "fwctl stats says counting is off" "fwctl: counting is off in this namespace (\`fwctl stats counting on\`)" \
	"$(ip netns exec "$ns2" fwctl stats 2>&1 >/dev/null)"

# Tracking without counting: only the hook points tracking needs.
ip netns exec "$ns3" fwctl stats counting off >/dev/null
ip netns exec "$ns3" fwctl ct tracking on >/dev/null || fail "fwctl ct tracking on in ns3"
check "tracking: rfw hooks where tracking needs them (nft list hooks)" \
	"ip input ip output ip postrouting ip prerouting ip6 input ip6 output ip6 postrouting ip6 prerouting" "$(rfw_hooks "$ns3")"
ip netns exec "$ns3" fwctl filter add --chain forward -p udp --dport 9 --drop >/dev/null || fail "filter rule in ns3"
check "a filter table: FORWARD too (nft list hooks)" "$all_points" "$(rfw_hooks "$ns3")"
exit $ret
