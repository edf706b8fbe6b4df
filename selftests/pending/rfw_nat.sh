#!/bin/bash
# NAT in the kernel (issue 6): the cases of the kernel's nft_nat.sh,
# nf_nat_edemux.sh and conntrack_icmp_related.sh, with rfw doing the NAT
# (`fwctl nat`) in the router namespace and the witnesses in the end hosts.
#
#   client  10.0.1.2 fd00:1::2 --+
#                                 router (rfw) -- server 10.0.2.2 fd00:2::2 -- far 10.0.9.2 fd00:9::2
#   client2 10.0.3.2 fd00:3::2 --+                (forwards)      MTU 1280
#
# * Local DNAT (router OUTPUT), IPv4 and IPv6: the router's ping to the
#   client's address goes to the server; after `nat flush` it reaches the
#   client again (nft_nat.sh test_local_dnat). Port-only DNAT
#   (--to-destination :PORT, test_local_dnat_portonly).
# * DNAT (PREROUTING, the default chain), SNAT to a port range and
#   MASQUERADE (plain and --fully-random) (POSTROUTING, the default), and
#   REDIRECT of ICMP (test_redirect) and of TCP with --to-ports, each over
#   IPv4 and IPv6. `fwctl ct list` shows the translated reply tuple.
# * Port shadowing (nft_nat.sh test_port_shadow): unmitigated, rfw behaves
#   as 6.12's nf_nat does (the reply-direction match wins: CLIENT); with the
#   two mitigations nft_nat.sh shows that rfw's rules can express, the
#   router's own service answers (ROUTER): the packet filter mitigation
#   (FORWARD drops packets from the inside claiming the service port) and
#   the NAT one (masquerade source ports 1-1405 to 1406-65535 --random).
#   nft_nat.sh's third one, notrack, has no rfw counterpart (no raw table).
# * Source-port clash (nf_nat_edemux.sh): a client limited to one local
#   port reaches the same server socket through a DNAT in its own OUTPUT
#   and through two REDIRECTs in the server's PREROUTING; NAT gives each
#   new connection a free source port (the null binding).
# * 100 clients, each from its own address and the same source port 10000,
#   behind a masquerading router: all 100 connect, the server sees 100
#   distinct source ports.
# * ICMP errors through NAT reach the right client
#   (conntrack_icmp_related.sh): two clients masqueraded to one address;
#   fragmentation-needed / packet-too-big from the server (forwarding to
#   the MTU 1280 link) and port unreachable from the far host go to the
#   client whose packet caused them, not the other. Witnesses: the
#   client's snmp counters, its route cache's PMTU and its UDP socket's
#   ECONNREFUSED.
# Witnesses: nft counters in the end hosts (never in the router namespace:
# nftables there would bring nf_conntrack in), what the server saw as the
# client's address (socat's SOCAT_PEERADDR), `ss`, /proc/net/snmp.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "nft --version" "nft"
checktool "python3 -V" "python3"
dir=$(mktemp -d)
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv cl2 far || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
add_host "$rt" "$cl2" veth2 3 || { fail "client2"; exit $ret; }
add_host "$sv" "$far" veth1 9 1280 || { fail "far host"; exit $ret; }
ip -net "$rt" route add 10.0.9.0/24 via 10.0.2.2
ip -net "$rt" route add fd00:9::/64 via fd00:2::2
for n in "$sv" "$far"; do
	ip netns exec "$n" sysctl -qw net.ipv4.icmp_ratelimit=0
	ip netns exec "$n" sysctl -qw net.ipv6.icmp.ratelimit=0
done

# Echo counters in the end hosts, per peer address (as nft_nat.sh's).
nft_witness "$sv" cl=10.0.1.2 rt=10.0.2.1 rtc=10.0.1.1 cl6=fd00:1::2 rt6=fd00:2::1 rtc6=fd00:1::1 ||
	fail "server witness table"
nft_witness "$cl" sv=10.0.2.2 rt=10.0.1.1 sv6=fd00:2::2 rt6=fd00:1::1 || fail "client witness table"
reset_all() { nft_reset "$sv"; nft_reset "$cl"; }
# nat_reset: no NAT rule and no connection left in the router.
nat_reset() {
	fw "$rt" nat flush || fail "fwctl nat flush"
	fw "$rt" ct flush >/dev/null
	reset_all
}
# flow NS AWK_CONDITION: the ct_flows lines of NS that match.
flow() { ct_flows "$1" | awk "$2"; }
ping_ok() { ip netns exec "$1" ping -"$2" -q -c 1 -W 5 "$3" >/dev/null 2>&1; }

# --- routing without NAT --------------------------------------------------
ping_ok "$cl" 4 10.0.2.2 || fail "IPv4 path up"
ping_ok "$cl" 6 fd00:2::2 || fail "IPv6 path up"
nft_expect "no NAT: the server sees the client's own addresses, the client the server's replies" \
	"$sv:cl_in:1" "$sv:cl6_in:1" "$sv:rt_in:0" "$sv:rt6_in:0" "$cl:sv_in:1" "$cl:sv6_in:1"
reset_all

# --- local DNAT in the router's OUTPUT (nft_nat.sh test_local_dnat) -------
for v in 4 6; do
	if [ $v = 4 ]; then dst=10.0.1.2 to=10.0.2.2 s=""; else dst=fd00:1::2 to=fd00:2::2 s=6; fi
	fw "$rt" nat add --chain OUTPUT -$v -d $dst --to-destination $to || fail "IPv$v: nat add OUTPUT DNAT"
	ping_ok "$rt" $v $dst || fail "IPv$v local DNAT: the router's ping got no answer"
	nft_expect "IPv$v local DNAT: the router's ping to the client went to the server" \
		"$sv:rtc${s}_in:1" "$sv:rtc${s}_out:1" "$cl:rt${s}_in:0"
	n=$(flow "$rt" "\$1 ~ /^icmp/ && \$4 == \"$dst\" && \$7 == \"$to\"" | wc -l)
	check "IPv$v local DNAT: fwctl ct list shows the reply coming from the server" 1 "$n"
	nat_reset
	ping_ok "$rt" $v $dst || fail "IPv$v: the router's ping after nat flush"
	nft_expect "IPv$v after nat flush the router's ping reaches the client again" \
		"$cl:rt${s}_in:1" "$sv:rtc${s}_in:0"
	nat_reset
done

# Port-only DNAT (test_local_dnat_portonly): only the port changes.
banner_server "$cl" 2000 CLIENT2000 || fail "client listener on 2000"
fw "$rt" nat add --chain OUTPUT -4 -p tcp -d 10.0.1.2 --dport 3000 --to-destination :2000 ||
	fail "nat add --to-destination :2000"
got=$(tcp_get "$rt" TCP4:10.0.1.2:3000)
check "port-only DNAT: the router's connection to port 3000 reached the client's port 2000" \
	"CLIENT2000 10.0.1.1" "${got% *}"
nat_reset

# --- DNAT, SNAT, MASQUERADE, REDIRECT of forwarded traffic ----------------
banner_server "$sv" 80 SERVER 4 || fail "server listener (IPv4)"
banner_server "$sv" 80 SERVER 6 || fail "server listener (IPv6)"

# DNAT without --chain: PREROUTING.
fw "$rt" nat add -4 -p tcp -d 10.0.1.1 --dport 8080 --to-destination 10.0.2.2:80 || fail "nat add DNAT (IPv4)"
fw "$rt" nat add -6 -p tcp -d fd00:1::1 --dport 8080 --to-destination "[fd00:2::2]:80" || fail "nat add DNAT (IPv6)"
check "DNAT without --chain went to PREROUTING (fwctl save)" 2 "$(save_rules "$rt" | grep -c -- '^-A PREROUTING .*--to-destination')"
for v in 4 6; do
	if [ $v = 4 ]; then rtr=10.0.1.1 c=10.0.1.2 s=10.0.2.2 to=TCP4:10.0.1.1:8080; else rtr=fd00:1::1 c=fd00:1::2 s=fd00:2::2 to="TCP6:[fd00:1::1]:8080"; fi
	got=$(tcp_get "$cl" "$to,sourceport=4000$v,reuseaddr")
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
	got=$(tcp_get "$cl" "$to,sourceport=4001$v,reuseaddr")
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
		ping_ok "$cl" $v $s || fail "IPv$v ping through masquerade $flags"
		nft_expect "IPv$v masquerade $flags: the server saw the router, not the client; the client got the reply" \
			"$sv:rt${x}_in:1" "$sv:rt${x}_out:1" "$sv:cl${x}_in:0" "$cl:sv${x}_in:1"
		ping_ok "$cl" $v $s || fail "IPv$v ping through masquerade $flags (attempt 2)"
		sp=$((sp + 1))
		got=$(tcp_get "$cl" "$to,sourceport=$sp,reuseaddr")
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
		reset_all
	done
	nat_reset
done

# REDIRECT of ICMP to the router itself (test_redirect, test_redirect6).
fw "$rt" nat add -4 -i veth0 -p icmp -s 10.0.1.2 -d 10.0.2.2 --redirect || fail "nat add -4 redirect"
fw "$rt" nat add -6 -i veth0 -p ipv6-icmp -s fd00:1::2 -d fd00:2::2 --redirect || fail "nat add -6 redirect"
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
banner_server "$rt" 8081 ROUTER 4 || fail "router listener (IPv4)"
banner_server "$rt" 8081 ROUTER 6 || fail "router listener (IPv6)"
fw "$rt" nat add -4 -p tcp -i veth0 --dport 80 --redirect --to-ports 8081 || fail "nat add -4 redirect --to-ports"
fw "$rt" nat add -6 -p tcp -i veth0 --dport 80 --redirect --to-ports 8081 || fail "nat add -6 redirect --to-ports"
for v in 4 6; do
	if [ $v = 4 ]; then c=10.0.1.2 r=10.0.1.1 to=TCP4:10.0.2.2:80; else c=fd00:1::2 r=fd00:1::1 to="TCP6:[fd00:2::2]:80"; fi
	got=$(tcp_get "$cl" "$to,sourceport=4003$v,reuseaddr")
	check "IPv$v REDIRECT --to-ports 8081: the router's server answered" "ROUTER $(addr_peer $c) 4003$v" "$got"
	check "IPv$v REDIRECT: fwctl ct list reply tuple comes from the router's address, port 8081" "$r 8081" \
		"$(flow "$rt" "\$1 == \"tcp\" && \$3 == \"$c\" && \$5 == 4003$v { print \$7, \$9 }")"
done
nat_reset

# --- port shadowing (nft_nat.sh test_port_shadow) -------------------------
# The client sends from port 1405 to the server's port 41404: masqueraded,
# the router keeps port 1405. Then the server sends from 41404 to the
# router's port 1405, where the router has a service of its own: does it
# reach the router (ROUTER) or the client's port 1405 (CLIENT)?
shadow() { # shadow NAME EXPECTED
	local got rpid cpid
	echo fake-entry | ip netns exec "$cl" timeout 10 socat -u STDIN UDP4:10.0.2.2:41404,sourceport=1405,reuseaddr 2>/dev/null
	echo ROUTER | ip netns exec "$rt" timeout 30 socat -T 20 -u STDIN UDP4-LISTEN:1405,reuseaddr 2>/dev/null &
	rpid=$!
	echo CLIENT | ip netns exec "$cl" timeout 30 socat -T 20 -u STDIN UDP4-LISTEN:1405,reuseaddr,reuseport 2>/dev/null &
	cpid=$!
	busywait 10000 listening "$rt" 1405 udp
	busywait 10000 listening "$cl" 1405 udp
	got=$(echo data | ip netns exec "$sv" timeout 20 socat -t 3 -T 10 - UDP4:10.0.2.1:1405,sourceport=41404,reuseaddr 2>/dev/null)
	check "port shadow, $1: the server's datagram to router:1405 was answered by the $2" "$2" "$got"
	kill $rpid $cpid 2>/dev/null
	wait $rpid $cpid 2>/dev/null
}
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add masquerade (port shadow)"
shadow "unmitigated (as nf_nat without mitigation)" CLIENT
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

# --- source-port clash (nf_nat_edemux.sh) ---------------------------------
# The client may use local port 10000 only. NAT must move a new
# connection's source port when its translated tuple is taken.
ip netns exec "$cl" sysctl -qw net.ipv4.ip_local_port_range="10000 10000"
ip netns exec "$sv" socat -u TCP4-LISTEN:5201,reuseaddr,fork OPEN:/dev/null </dev/null >/dev/null 2>&1 &
busywait 10000 listening "$sv" 5201 || fail "server listens on 5201"
est() { ip netns exec "$cl" ss -Htn state established "( dport = :$1 )" | grep -q .; }
hold() { ip netns exec "$cl" socat -u SYSTEM:"sleep 100" "TCP4:$1,connect-timeout=20" </dev/null >/dev/null 2>&1 & }
hold 10.0.2.2:5201
busywait 20000 est 5201 || fail "edemux: first connection (port 10000 -> 5201)"
# A virtual IP in the client's own OUTPUT: 10000 -> 10.96.0.1:443 becomes
# 10000 -> 10.0.2.2:5201, which the first connection holds.
fw "$cl" nat add --chain OUTPUT -4 -p tcp -d 10.96.0.1 --dport 443 --to-destination 10.0.2.2:5201 ||
	fail "nat add DNAT in the client's OUTPUT"
hold 10.96.0.1:443
if busywait 20000 est 443; then pass "edemux: connected to the service via the DNATed address"; else fail "edemux: no connection via 10.96.0.1:443"; fi
check "edemux: the client's socket is 10.0.1.2:10000 -> 10.96.0.1:443 (ss)" "10.0.1.2:10000" \
	"$(ip netns exec "$cl" ss -Htn state established "( dport = :443 )" | awk '{ print $3 }')"
r=$(flow "$cl" '$1 == "tcp" && $4 == "10.96.0.1" && $6 == 443 { print $7, $9, $10 }')
if [ "${r% *}" = "10.0.2.2 5201" ] && [ "${r##* }" != 10000 ]; then
	pass "edemux: fwctl ct list in the client: reply from 10.0.2.2:5201 to a new source port (${r##* })"
else
	fail "edemux: the client's DNATed connection's reply tuple is '$r'"
fi
# Two REDIRECTs in the server, to the port the first connection uses.
fw "$sv" nat add -4 -p tcp --dport 5202 --redirect --to-ports 5201 || fail "nat add redirect 5202 in the server"
fw "$sv" nat add -4 -p tcp --dport 5203 --redirect --to-ports 5201 || fail "nat add redirect 5203 in the server"
hold 10.0.2.2:5202
hold 10.0.2.2:5203
busywait 20000 est 5202 || fail "edemux: no connection to 5202"
busywait 20000 est 5203 || fail "edemux: no connection to 5203"
for p in 5202 5203; do
	r=$(flow "$sv" "\$1 == \"tcp\" && \$5 == 10000 && \$6 == $p { print \$2, \$9, \$10 }")
	if [ "${r% *}" = "ESTABLISHED 5201" ] && [ "${r##* }" != 10000 ]; then
		pass "edemux: redirected $p ESTABLISHED in the server, source port moved to ${r##* }"
	else
		fail "edemux: the server's entry for 10000 -> $p is '$r'"
		ct_list "$sv"
	fi
done
peers=$(tcp_peers "$sv" 5201)
check "witness: the server's socket on 5201 holds 4 connections from 4 distinct client ports (ss)" "4 4" \
	"$(echo "$peers" | grep -c '^10.0.1.2:') $(echo "$peers" | sort -u | grep -c .)"
kill_ns_procs
fw "$cl" nat flush
fw "$sv" nat flush
ip netns exec "$cl" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
nat_reset

# --- 100 clients, one source port ------------------------------------------
seq 100 199 | sed 's/^/addr add 10.0.1./; s/$/\/24 dev veth0/' | ip -net "$cl" -batch - || fail "100 client addresses"
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add masquerade (100 clients)"
ip netns exec "$sv" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.2.2", 8080)); s.listen(512); time.sleep(200)' &
busywait 20000 listening "$sv" 8080 || fail "server listens on 8080"
ip netns exec "$cl" python3 -c '
import socket, sys, time
socks, ok = [], 0
for i in range(100, 200):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.0.1.%d" % i, 10000))
    s.settimeout(20)
    try:
        s.connect(("10.0.2.2", 8080))
        ok += 1
    except OSError as e:
        print("10.0.1.%d: %s" % (i, e), file=sys.stderr)
    socks.append(s)
open(sys.argv[1] + ".tmp", "w").write("%d\n" % ok)
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(200)' "$dir/hundred" &
busywait 120000 test -s "$dir/hundred" || fail "the 100 clients did not finish connecting"
check "100 clients from port 10000 behind masquerade: connections made (the clients' own count)" 100 "$(cat "$dir/hundred" 2>/dev/null)"
check "witness: the clients hold 100 established sockets from port 10000 (ss)" 100 \
	"$(ip netns exec "$cl" ss -Htn state established "( sport = :10000 )" | wc -l)"
peers=$(tcp_peers "$sv" 8080)
check "witness: the server holds 100 connections from the router's address, 100 distinct ports (ss)" "100 100" \
	"$(echo "$peers" | grep -c '^10.0.2.1:') $(echo "$peers" | sort -u | grep -c .)"
check "fwctl ct list: 100 connections from port 10000, each mapped to its own port of 10.0.2.1" 100 \
	"$(flow "$rt" '$1 == "tcp" && $5 == 10000 && $6 == 8080 && $8 == "10.0.2.1" { print $10 }' | sort -u | wc -l)"
kill_ns_procs
seq 100 199 | sed 's/^/addr del 10.0.1./; s/$/\/24 dev veth0/' | ip -net "$cl" -batch - || fail "remove the 100 addresses"
nat_reset

# --- ICMP errors through NAT reach the right client -------------------------
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add -4 masquerade (ICMP errors)"
fw "$rt" nat add -6 -o veth1 --masquerade || fail "nat add -6 masquerade (ICMP errors)"
ping_ok "$cl" 4 10.0.9.2 || fail "client reaches the far host (IPv4)"
ping_ok "$cl2" 4 10.0.9.2 || fail "client2 reaches the far host (IPv4)"
ping_ok "$cl" 6 fd00:9::2 || fail "client reaches the far host (IPv6)"
ping_ok "$cl2" 6 fd00:9::2 || fail "client2 reaches the far host (IPv6)"
for v in 4 6; do
	if [ $v = 4 ]; then far=10.0.9.2 key=Icmp:InDestUnreachs what="fragmentation needed"; else far=fd00:9::2 key=Icmp6InPktTooBigs what="packet too big"; fi
	first=1
	for pair in "$cl $cl2" "$cl2 $cl"; do
		read -r a b <<<"$pair"
		a0=$(snmp_counter "$a" $key)
		b0=$(snmp_counter "$b" $key)
		# 1300 bytes do not fit the server's 1280-byte link to the far host.
		ip netns exec "$a" ping -$v -q -c 1 -W 2 -M "do" -s 1300 $far >/dev/null 2>&1
		moved() { [ "$(snmp_counter "$a" $key)" -gt "$a0" ]; }
		busywait 5000 moved
		check "IPv$v $what for ${a%-*}'s ping reached it ($key)" 1 $(($(snmp_counter "$a" $key) - a0))
		check "IPv$v $what for ${a%-*}'s ping did not reach ${b%-*}" 0 $(($(snmp_counter "$b" $key) - b0))
		check "witness: ${a%-*}'s route cache learnt the path MTU 1280 (ip route get)" 1 \
			"$(ip -$v -net "$a" route get $far | grep -c 'mtu 1280')"
		if [ $first = 1 ]; then
			check "witness: ${b%-*}'s route cache did not (ip route get)" 0 "$(ip -$v -net "$b" route get $far | grep -c 'mtu 1280')"
		fi
		first=0
	done
	# Port unreachable, both clients from source port 5555 (one of them
	# masqueraded to another port): each error reaches its own socket.
	if [ $v = 4 ]; then key=Icmp:InDestUnreachs; else key=Icmp6InDestUnreachs; fi
	a0=$(snmp_counter "$cl" $key)
	b0=$(snmp_counter "$cl2" $key)
	check "IPv$v port unreachable from the far host reached client2's socket" refused "$(udp_probe "$cl2" 5555 $far 7777)"
	check "IPv$v port unreachable from the far host reached the client's socket" refused "$(udp_probe "$cl" 5555 $far 7777)"
	check "witness: each client got exactly one destination unreachable ($key)" "1 1" \
		"$(($(snmp_counter "$cl" $key) - a0)) $(($(snmp_counter "$cl2" $key) - b0))"
	if [ $v = 4 ]; then a=10.0.2.1; else a=fd00:2::1; fi
	check "IPv$v fwctl ct list: the two 5555 -> 7777 flows masqueraded to two distinct ports" 2 \
		"$(flow "$rt" "\$1 == \"udp\" && \$5 == 5555 && \$6 == 7777 && \$8 == \"$a\" { print \$10 }" | sort -u | wc -l)"
done
nat_reset

kernel_log_clean
exit $ret
