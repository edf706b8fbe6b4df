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
	netns_exec "$n" fwctl stats counting on >/dev/null || fail "fwctl stats counting on in $n"
done
check "counting on: an rfw hook at every hook point (nft list hooks)" "$all_points" "$(rfw_hooks "$ns1")"
# (Before the links come up: the MLD reports below are counted.)

ip link add veth1 netns "$ns1" type veth peer name veth2 netns "$ns2"
mac1=02:00:00:00:01:01
mac2=02:00:00:00:01:02
# link_end NS IF MAC ADDR4 ADDR6 PEER6 PEERMAC: one end, in one `ip -batch`
# (every process start costs under emulation).
link_end() {
	# No SLAAC/link-local address: no DAD or router solicitation traffic.
	netns_exec "$1" sysctl -qw net.ipv6.conf.default.addr_gen_mode=1
	ip -net "$1" -batch - <<EOF
link set $2 address $3
link set $2 addrgenmode none
addr add $4/24 dev $2
addr add $5/64 dev $2 nodad
neigh add $6 lladdr $7 dev $2 nud permanent
link set $2 up
EOF
}
link_end "$ns1" veth1 $mac1 10.0.1.1 fd00:1::1 fd00:1::2 $mac2 || fail "ns1's end of the link"
link_end "$ns2" veth2 $mac2 10.0.1.2 fd00:1::2 fd00:1::1 $mac1 || fail "ns2's end of the link"


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

netns_exec "$ns1" ping -q -c 10 -i 0.1 -W 10 10.0.1.2 >/dev/null || fail "IPv4 ping ns1 -> ns2"
netns_exec "$ns1" ping -6 -q -c 10 -i 0.1 -W 10 fd00:1::2 >/dev/null || fail "IPv6 ping ns1 -> ns2"
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
# Every counter's delta from one awk (not a process per counter, as
# stat_of would be): "SIDE FAMILY HOOK PACKETS BYTES", after minus before
# for ns1 and ns2 (SIDE 1, 2), the counters themselves for ns3 (SIDE 3);
# "missing" where a snapshot lacks the row.
declare -A dp db
while read -r side f h p b; do
	dp[${side}_${f}_$h]=$p db[${side}_${f}_$h]=$b
done < <(awk -v b1="$before1" -v a1="$after1" -v b2="$before2" -v a2="$after2" -v a3="$after3" '
	function load(tag, text,   n, i, l, x) {
		n = split(text, l, "\n")
		for (i = 1; i <= n; i++)
			if (split(l[i], x, " ") == 4) { p[tag, x[1], x[2]] = x[3]; b[tag, x[1], x[2]] = x[4]; has[tag, x[1], x[2]] = 1 }
	}
	BEGIN {
		load("b1", b1); load("a1", a1); load("b2", b2); load("a2", a2); load("a3", a3)
		split("ipv4 ipv6", fams, " "); split("prerouting input forward output postrouting", hooks, " ")
		for (i = 1; i <= 2; i++) for (j = 1; j <= 5; j++) {
			f = fams[i]; h = hooks[j]
			for (s = 1; s <= 2; s++)
				if (has["b" s, f, h] && has["a" s, f, h])
					print s, f, h, p["a" s, f, h] - p["b" s, f, h], b["a" s, f, h] - b["b" s, f, h]
				else
					print s, f, h, "missing", "missing"
			if (has["a3", f, h]) print 3, f, h, p["a3", f, h], b["a3", f, h]
			else print 3, f, h, "missing", "missing"
		}
	}')
for f in ipv4 ipv6; do
	for h in prerouting input forward output postrouting; do
		for side in 1 2; do
			if [ $side = 1 ]; then e=${exp1[$h]}; else e=${exp2[$h]}; fi
			check "ns$side $f $h packets" "$e" "${dp[${side}_${f}_$h]:-missing}"
			check "ns$side $f $h bytes" "$((e * ${size[$f]}))" "${db[${side}_${f}_$h]:-missing}"
		done
		check "idle ns3 $f $h" "0/0" "${dp[3_${f}_$h]:-missing}/${db[3_${f}_$h]:-missing}"
	done
done

# Nothing but the pings was counted in ns1: its IPv4 totals are absolute.
check "ns1 ipv4 output packets since the namespace was created" 10 "$(stat_of "$after1" ipv4 output packets)"

# Counting off in ns2: its hooks go, its counters stand still.
check "fwctl stats counting off" "counting: off" "$(netns_exec "$ns2" fwctl stats counting off)"
check "counting off: no rfw hook left in ns2 (nft list hooks)" "" "$(rfw_hooks "$ns2")"
rep4_before=$(snmp_counter "$ns1" Icmp:InEchoReps)
netns_exec "$ns1" ping -q -c 10 -i 0.1 -W 10 10.0.1.2 >/dev/null || fail "IPv4 ping ns1 -> ns2, counting off in ns2"
replies4_in() { [ $(($(snmp_counter "$ns1" Icmp:InEchoReps) - rep4_before)) -ge 10 ]; }
busywait 60000 replies4_in
later1=$(fwctl_stats "$ns1")
later2=$(fwctl_stats "$ns2")
check "counting on in ns1: 10 more IPv4 output packets" 20 "$(stat_of "$later1" ipv4 output packets)"
check "counting off in ns2: IPv4 input stands still" "$(stat_of "$after2" ipv4 input packets)" "$(stat_of "$later2" ipv4 input packets)"
check "fwctl stats says counting is off" "fwctl: counting is off in this namespace (\`fwctl stats counting on\`)" \
	"$(netns_exec "$ns2" fwctl stats 2>&1 >/dev/null)"

# Tracking without counting: only the hook points tracking needs.
netns_exec "$ns3" fwctl stats counting off >/dev/null
netns_exec "$ns3" fwctl ct tracking on >/dev/null || fail "fwctl ct tracking on in ns3"
check "tracking: rfw hooks where tracking needs them (nft list hooks)" \
	"ip input ip output ip postrouting ip prerouting ip6 input ip6 output ip6 postrouting ip6 prerouting" "$(rfw_hooks "$ns3")"
netns_exec "$ns3" fwctl filter add --chain forward -p udp --dport 9 --drop >/dev/null || fail "filter rule in ns3"
check "a filter table: FORWARD too (nft list hooks)" "$all_points" "$(rfw_hooks "$ns3")"
exit $ret
