#!/bin/bash
# NAT in the kernel: the cases of the kernel's nft_nat.sh, with rfw
# doing the NAT (`fwctl nat`) in the router namespace and the witnesses in
# the end hosts. rfw_nat_clash.sh has the rest (nf_nat_edemux.sh, 100
# clients on one port, conntrack_icmp_related.sh).
#
#   client 10.0.1.2 fd00:1::2 -- router (rfw) -- server 10.0.2.2 fd00:2::2
#
# * Local DNAT (router OUTPUT), IPv4 and IPv6: the router's ping to the
#   client's address goes to the server; after `nat flush` it reaches the
#   client again (nft_nat.sh test_local_dnat). Port-only DNAT
#   (--to-destination :PORT, test_local_dnat_portonly).
# * DNAT (PREROUTING, the default chain), SNAT to a port range and
#   MASQUERADE (plain and --fully-random) (POSTROUTING, the default), and
#   REDIRECT of ICMP (test_redirect) and of TCP with --to-ports, each over
#   IPv4 and IPv6. `fwctl ct list` shows the translated reply tuple.
# * Port shadowing (nft_nat.sh test_port_shadow): by default rfw answers as
#   the mitigated kernel does (ROUTER): source NAT keeps only ports of the
#   local port range, so the client's port 1405 leaves as another port.
#   `--to-ports 1-65535` asks for Linux's behaviour, and then the
#   reply-direction match wins (CLIENT), as in unmitigated 6.12; the two
#   mitigations of nft_nat.sh that rfw's rules can express bring ROUTER
#   back: the packet filter one (FORWARD drops packets from the inside
#   claiming the service port) and the NAT one (masquerade source ports
#   1-1405 to 1406-65535 --random). nft_nat.sh's third one, notrack, has no
#   rfw counterpart (no raw table).
# Witnesses: nft counters in the end hosts (never in the router namespace:
# nftables there would bring nf_conntrack in), what the server saw as the
# client's address (socat's SOCAT_PEERADDR), the router's own snmp counters
# for what it answered itself.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "nft --version" "nft"
checktool "python3 -V" "python3"
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
# The connections the checks read in `fwctl ct list`, and the port
# shadowing case's masqueraded UDP flow, must outlive the slowest step
# before their check: timeouts far beyond the defaults (udp_unreplied and
# icmp 30 s, tcp_close 10 s, ...). No check here is about expiry.
fw "$rt" ct timeout tcp_syn_sent 3600 tcp_syn_recv 3600 tcp_fin_wait 3600 tcp_close_wait 3600 \
	tcp_last_ack 3600 tcp_time_wait 3600 tcp_close 3600 udp_unreplied 3600 udp_replied 3600 icmp 3600 >/dev/null ||
	fail "fwctl ct timeout"

# Echo counters in the end hosts, per peer address (as nft_nat.sh's).
nft_witness "$sv" cl=10.0.1.2 rt=10.0.2.1 rtc=10.0.1.1 cl6=fd00:1::2 rt6=fd00:2::1 rtc6=fd00:1::1 ||
	fail "server witness table"
nft_witness "$cl" sv=10.0.2.2 rt=10.0.1.1 sv6=fd00:2::2 rt6=fd00:1::1 || fail "client witness table"
reset_all() { nft_reset "$sv"; nft_reset "$cl"; }
# nat_reset: no NAT rule and no connection left in the router. The echo
# counters are reset only before the cases that read them (every process
# start costs under emulation).
nat_reset() {
	fw "$rt" nat flush || fail "fwctl nat flush"
	fw "$rt" ct flush >/dev/null
}
# flow NS AWK_CONDITION: the ct_flows lines of NS that match.
flow() { ct_flows "$1" | awk "$2"; }
ping_ok() { netns_exec "$1" ping -"$2" -q -c 1 -W 10 "$3" >/dev/null 2>&1; }
# get NS ADDRESS: tcp_get with 30 s to connect (every connection here is
# expected to succeed).
get() { tcp_get "$1" "$2" 30; }
# listening_v NS PORT 4|6: a TCP socket of that family listens on PORT in NS.
# banner_server waits 10 s at most, for either family: the listeners of
# both families on one port are each waited for here, 60 s.
listening_v() { netns_exec "$1" ss -Hlnt -"$3" "( sport = :$2 )" | grep -q .; }

# --- routing without NAT --------------------------------------------------
ping_ok "$cl" 4 10.0.2.2 || fail "IPv4 path up"
ping_ok "$cl" 6 fd00:2::2 || fail "IPv6 path up"
nft_expect "no NAT: the server sees the client's own addresses, the client the server's replies" \
	"$sv:cl_in:1" "$sv:cl6_in:1" "$sv:rt_in:0" "$sv:rt6_in:0" "$cl:sv_in:1" "$cl:sv6_in:1"

# --- local DNAT in the router's OUTPUT (nft_nat.sh test_local_dnat) -------
for v in 4 6; do
	if [ $v = 4 ]; then dst=10.0.1.2 to=10.0.2.2 s=""; else dst=fd00:1::2 to=fd00:2::2 s=6; fi
	reset_all
	fw "$rt" nat add --chain OUTPUT -$v -d $dst --to-destination $to || fail "IPv$v: nat add OUTPUT DNAT"
	ping_ok "$rt" $v $dst || fail "IPv$v local DNAT: the router's ping got no answer"
	nft_expect "IPv$v local DNAT: the router's ping to the client went to the server" \
		"$sv:rtc${s}_in:1" "$sv:rtc${s}_out:1" "$cl:rt${s}_in:0"
	n=$(flow "$rt" "\$1 ~ /^icmp/ && \$4 == \"$dst\" && \$7 == \"$to\"" | wc -l)
	check "IPv$v local DNAT: fwctl ct list shows the reply coming from the server" 1 "$n"
	nat_reset
	reset_all
	ping_ok "$rt" $v $dst || fail "IPv$v: the router's ping after nat flush"
	nft_expect "IPv$v after nat flush the router's ping reaches the client again" \
		"$cl:rt${s}_in:1" "$sv:rtc${s}_in:0"
	nat_reset
done

# Port-only DNAT (test_local_dnat_portonly): only the port changes.
banner_server "$cl" 2000 CLIENT2000
busywait 60000 listening_v "$cl" 2000 4 || fail "client listener on 2000"
fw "$rt" nat add --chain OUTPUT -4 -p tcp -d 10.0.1.2 --dport 3000 --to-destination :2000 ||
	fail "nat add --to-destination :2000"
got=$(get "$rt" TCP4:10.0.1.2:3000)
check "port-only DNAT: the router's connection to port 3000 reached the client's port 2000" \
	"CLIENT2000 10.0.1.1" "${got% *}"
nat_reset

# --- DNAT, SNAT, MASQUERADE, REDIRECT of forwarded traffic ----------------
banner_server "$sv" 80 SERVER 4
banner_server "$sv" 80 SERVER 6
busywait 60000 listening_v "$sv" 80 4 || fail "server listener (IPv4)"
busywait 60000 listening_v "$sv" 80 6 || fail "server listener (IPv6)"

# DNAT without --chain: PREROUTING.
fw "$rt" nat add -4 -p tcp -d 10.0.1.1 --dport 8080 --to-destination 10.0.2.2:80 || fail "nat add DNAT (IPv4)"
fw "$rt" nat add -6 -p tcp -d fd00:1::1 --dport 8080 --to-destination "[fd00:2::2]:80" || fail "nat add DNAT (IPv6)"
check "DNAT without --chain went to PREROUTING (fwctl save)" 2 "$(save_rules "$rt" | grep -c -- '^-A PREROUTING .*--to-destination')"
for v in 4 6; do
	if [ $v = 4 ]; then rtr=10.0.1.1 c=10.0.1.2 s=10.0.2.2 to=TCP4:10.0.1.1:8080; else rtr=fd00:1::1 c=fd00:1::2 s=fd00:2::2 to="TCP6:[fd00:1::1]:8080"; fi
	got=$(get "$cl" "$to,sourceport=4000$v,reuseaddr")
	check "IPv$v DNAT router:8080 -> server:80: the server saw the client itself" "SERVER $(addr_peer $c) 4000$v" "$got"
	check "IPv$v DNAT: fwctl ct list reply tuple is server:80 -> client" "$rtr 8080 $s $c 80 4000$v" \
		"$(flow "$rt" "\$1 == \"tcp\" && \$3 == \"$c\" && \$5 == 4000$v { print \$4, \$6, \$7, \$8, \$9, \$10 }")"
done
nat_reset

# SNAT to a port range, without --chain: POSTROUTING.
fw "$rt" nat add -4 -p tcp -o veth1 --to-source 10.0.2.1:20000-20099 || fail "nat add SNAT (IPv4)"
fw "$rt" nat add -6 -p tcp -o veth1 --to-source "[fd00:2::1]:20000-20099" || fail "nat add SNAT (IPv6)"
check "SNAT without --chain went to POSTROUTING (fwctl save)" 2 "$(save_rules "$rt" | grep -c -- '^-A POSTROUTING .*--to-source')"
for v in 4 6; do
	if [ $v = 4 ]; then c=10.0.1.2 s=10.0.2.2 a=10.0.2.1 to=TCP4:10.0.2.2:80; else c=fd00:1::2 s=fd00:2::2 a=fd00:2::1 to="TCP6:[fd00:2::2]:80"; fi
	got=$(get "$cl" "$to,sourceport=4001$v,reuseaddr")
	port=${got##* }
	if [ "${got% *}" = "SERVER $(addr_peer $a)" ] && [ "$port" -ge 20000 ] 2>/dev/null && [ "$port" -le 20099 ]; then
		pass "IPv$v SNAT: the server saw the router's address and a port of 20000-20099 ($got)"
	else
		fail "IPv$v SNAT: the server saw '$got'"
	fi
	check "IPv$v SNAT: fwctl ct list reply tuple goes to the SNAT address and port" "$a $port" \
		"$(flow "$rt" "\$1 == \"tcp\" && \$3 == \"$c\" && \$5 == 4001$v { print \$8, \$10 }")"
done
nat_reset

# MASQUERADE, then MASQUERADE --fully-random (test_masquerade, test_masquerade6).
sp=40020
for flags in "" --fully-random; do
	fw "$rt" nat add -4 -o veth1 --masquerade $flags || fail "nat add -4 masquerade $flags"
	fw "$rt" nat add -6 -o veth1 --masquerade $flags || fail "nat add -6 masquerade $flags"
	for v in 4 6; do
		if [ $v = 4 ]; then c=10.0.1.2 s=10.0.2.2 a=10.0.2.1 x="" to=TCP4:10.0.2.2:80; else c=fd00:1::2 s=fd00:2::2 a=fd00:2::1 x=6 to="TCP6:[fd00:2::2]:80"; fi
		reset_all
		ping_ok "$cl" $v $s || fail "IPv$v ping through masquerade $flags"
		nft_expect "IPv$v masquerade $flags: the server saw the router, not the client; the client got the reply" \
			"$sv:rt${x}_in:1" "$sv:rt${x}_out:1" "$sv:cl${x}_in:0" "$cl:sv${x}_in:1"
		ping_ok "$cl" $v $s || fail "IPv$v ping through masquerade $flags (attempt 2)"
		sp=$((sp + 1))
		got=$(get "$cl" "$to,sourceport=$sp,reuseaddr")
		port=${got##* }
		check "IPv$v TCP masquerade $flags: the server saw the router's address" "SERVER $(addr_peer $a)" "${got% *}"
		if [ -z "$flags" ]; then
			check "IPv$v masquerade keeps a free source port" "$sp" "$port"
		elif [ "$port" != "$sp" ]; then
			# 1 chance in 64512 of a false failure: the random port may be the original one.
			pass "IPv$v masquerade --fully-random changed the source port ($sp -> $port)"
		else
			fail "IPv$v masquerade --fully-random kept the source port $sp"
		fi
		check "IPv$v masquerade $flags: fwctl ct list reply tuple goes to the router's address" "$a $port" \
			"$(flow "$rt" "\$1 == \"tcp\" && \$3 == \"$c\" && \$5 == $sp { print \$8, \$10 }")"
	done
	nat_reset
done

# REDIRECT of ICMP to the router itself (test_redirect, test_redirect6).
fw "$rt" nat add -4 -i veth0 -p icmp -s 10.0.1.2 -d 10.0.2.2 --redirect || fail "nat add -4 redirect"
fw "$rt" nat add -6 -i veth0 -p ipv6-icmp -s fd00:1::2 -d fd00:2::2 --redirect || fail "nat add -6 redirect"
reset_all
e4=$(snmp_counter "$rt" Icmp:InEchos)
e6=$(snmp_counter "$rt" Icmp6InEchos)
ping_ok "$cl" 4 10.0.2.2 || fail "IPv4 ping with REDIRECT"
ping_ok "$cl" 6 fd00:2::2 || fail "IPv6 ping with REDIRECT"
nft_expect "REDIRECT: the server saw no echo; the client got its replies from the server's address" \
	"$sv:cl_in:0" "$sv:cl6_in:0" "$cl:sv_in:1" "$cl:sv6_in:1"
check "witness: the router's own stack answered the IPv4 echo (Icmp InEchos)" 1 $(($(snmp_counter "$rt" Icmp:InEchos) - e4))
check "witness: the router's own stack answered the IPv6 echo (Icmp6InEchos)" 1 $(($(snmp_counter "$rt" Icmp6InEchos) - e6))
nat_reset
# REDIRECT of TCP with --to-ports to a server on the router.
banner_server "$rt" 8081 ROUTER 4
banner_server "$rt" 8081 ROUTER 6
busywait 60000 listening_v "$rt" 8081 4 || fail "router listener (IPv4)"
busywait 60000 listening_v "$rt" 8081 6 || fail "router listener (IPv6)"
fw "$rt" nat add -4 -p tcp -i veth0 --dport 80 --redirect --to-ports 8081 || fail "nat add -4 redirect --to-ports"
fw "$rt" nat add -6 -p tcp -i veth0 --dport 80 --redirect --to-ports 8081 || fail "nat add -6 redirect --to-ports"
for v in 4 6; do
	if [ $v = 4 ]; then c=10.0.1.2 r=10.0.1.1 to=TCP4:10.0.2.2:80; else c=fd00:1::2 r=fd00:1::1 to="TCP6:[fd00:2::2]:80"; fi
	got=$(get "$cl" "$to,sourceport=4003$v,reuseaddr")
	check "IPv$v REDIRECT --to-ports 8081: the router's server answered" "ROUTER $(addr_peer $c) 4003$v" "$got"
	check "IPv$v REDIRECT: fwctl ct list reply tuple comes from the router's address, port 8081" "$r 8081" \
		"$(flow "$rt" "\$1 == \"tcp\" && \$3 == \"$c\" && \$5 == 4003$v { print \$7, \$9 }")"
done
nat_reset

# --- port shadowing (nft_nat.sh test_port_shadow) -------------------------
# udp_ask NS SPORT DST DPORT: "data" from port SPORT (SO_REUSEADDR) to
# DST:DPORT over a connected socket; prints the first answer, nothing if
# none came within 60 s or an ICMP error did.
udp_ask() {
	netns_exec "$1" python3 -S -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.connect((sys.argv[2], int(sys.argv[3])))
s.settimeout(60)
try:
    s.send(b"data\n")
    print(s.recv(100).decode().strip())
except OSError:
    pass
' "$2" "$3" "$4"
}
# The client sends from port 1405 to the server's port 41404: masqueraded,
# the router keeps port 1405. Then the server sends from 41404 to the
# router's port 1405, where the router has a service of its own: does it
# reach the router (ROUTER) or the client's port 1405 (CLIENT)?
# The two listeners answer whoever sends them a datagram first, and stay
# until killed at the end of the case. The server's query waits up to 60 s
# for its answer and ends as soon as it has it.
shadow() { # shadow NAME EXPECTED
	local got rpid cpid
	echo fake-entry | netns_exec "$cl" timeout 60 socat -u STDIN UDP4:10.0.2.2:41404,sourceport=1405,reuseaddr 2>/dev/null
	echo ROUTER | ip netns exec "$rt" socat -u STDIN UDP4-LISTEN:1405,reuseaddr 2>/dev/null &
	rpid=$!
	echo CLIENT | ip netns exec "$cl" socat -u STDIN UDP4-LISTEN:1405,reuseaddr,reuseport 2>/dev/null &
	cpid=$!
	busywait 60000 listening "$rt" 1405 udp
	busywait 60000 listening "$cl" 1405 udp
	got=$(udp_ask "$sv" 41404 10.0.2.1 1405)
	check "port shadow, $1: the server's datagram to router:1405 was answered by the $2" "$2" "$got"
	kill $rpid $cpid 2>/dev/null
	wait $rpid $cpid 2>/dev/null
}
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add masquerade (port shadow)"
shadow "rfw's default" ROUTER
p=$(flow "$rt" '$1 == "udp" && $5 == 1405 && $6 == 41404 { print $10 }' | head -1)
if [ "${p:-0}" -ge 1024 ] 2>/dev/null && [ "$p" != 1405 ]; then
	pass "port shadow, default: the client's port 1405 left as $p"
else
	fail "port shadow, default: the client's port 1405 left as '$p'"
fi
fw "$rt" nat flush || fail "nat flush"
fw "$rt" ct flush >/dev/null
fw "$rt" nat add -4 -o veth1 --masquerade --to-ports 1-65535 || fail "nat add masquerade --to-ports 1-65535"
shadow "unmitigated (--to-ports 1-65535: as nf_nat without mitigation)" CLIENT
fw "$rt" ct flush >/dev/null
# Packet filter mitigation: packets from the inside claiming the service port are not forwarded.
fw "$rt" filter add --chain FORWARD -4 -i veth0 -p udp --sport 1405 --drop || fail "filter add (port shadow)"
shadow "filter mitigation" ROUTER
fw "$rt" filter flush || fail "filter flush"
fw "$rt" ct flush >/dev/null
# NAT mitigation: low source ports from the inside are remapped to high random ones.
fw "$rt" nat insert --chain POSTROUTING -4 -o veth1 -s 10.0.1.0/24 -p udp --sport 1:1405 \
	--masquerade --to-ports 1406-65535 --random || fail "nat insert (port shadow)"
shadow "NAT mitigation (masquerade --to-ports 1406-65535 --random)" ROUTER
p=$(flow "$rt" '$1 == "udp" && $5 == 1405 && $6 == 41404 { print $10 }' | head -1)
if [ "${p:-0}" -ge 1406 ] 2>/dev/null; then
	pass "port shadow: fwctl ct list shows the client's port 1405 mapped to $p"
else
	fail "port shadow: the client's port 1405 mapped to '$p'"
fi
nat_reset

kernel_log_clean
exit $ret
