#!/bin/bash
# NAT in the kernel, clashes and ICMP errors: rfw_nat.sh's
# companion, with rfw doing the NAT (`fwctl nat`) and the witnesses in the
# end hosts.
#
#   client  10.0.1.2 fd00:1::2 --+
#                                 router (rfw) -- server 10.0.2.2 fd00:2::2 -- far 10.0.9.2 fd00:9::2
#   client2 10.0.3.2 fd00:3::2 --+                (forwards)      MTU 1280
#
# * Source-port clash (nf_nat_edemux.sh): a client limited to one local
#   port reaches the same server socket through a DNAT in its own OUTPUT
#   and through two REDIRECTs in the server's PREROUTING; NAT gives each
#   new connection a free source port (the null binding), in the client's
#   and in the server's own rfw.
# * 100 clients, each from its own address and the same source port 10000,
#   behind a masquerading router: all 100 connect, the server sees 100
#   distinct source ports.
# * The DNS A/AAAA race (nf_ct_resolve_clash, conntrack_clash.sh): 50
#   flows whose first two datagrams two client threads on two CPUs send
#   at the same instant, through masquerade (IPv4 and IPv6): both answers
#   of every flow come back, the router counts no insert_failed, and holds
#   one entry per flow.
# * ICMP errors through NAT reach the right client
#   (conntrack_icmp_related.sh): two clients masqueraded to one address;
#   fragmentation-needed / packet-too-big from the server (forwarding to
#   the MTU 1280 link) and port unreachable from the far host go to the
#   client whose packet caused them, not the other. Witnesses: the
#   client's snmp counters, its route cache's PMTU and its UDP socket's
#   ECONNREFUSED.
# Witnesses are the end hosts' own: `ss`, /proc/net/snmp, route caches,
# sockets, the clients' count of connections made.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
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
	netns_exec "$n" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
done
# The flows the checks read in `fwctl ct list` (the two clients' UDP flows
# from port 5555 must both be there for the second to get another port)
# must outlive the slowest step before their check: timeouts far beyond
# the defaults (udp_unreplied and icmp 30 s). No check here is about expiry.
fw "$rt" ct timeout udp_unreplied 3600 udp_replied 3600 icmp 3600 >/dev/null || fail "fwctl ct timeout"
# nat_reset: no NAT rule and no connection left in the router.
nat_reset() {
	fw "$rt" nat flush || fail "fwctl nat flush"
	fw "$rt" ct flush >/dev/null
}
# flow NS AWK_CONDITION: the ct_flows lines of NS that match.
flow() { ct_flows "$1" | awk "$2"; }
ping_ok() { netns_exec "$1" ping -"$2" -q -c 1 -W 10 "$3" >/dev/null 2>&1; }
netns_exec "$cl" ping -q -c 1 -W 10 10.0.2.2 >/dev/null || fail "IPv4 path up"

# --- source-port clash (nf_nat_edemux.sh) ---------------------------------
# The client may use local port 10000 only. NAT must move a new
# connection's source port when its translated tuple is taken.
# The rules first, as nf_nat_edemux.sh: a virtual IP in the client's own
# OUTPUT (10.96.0.1:443 is 10.0.2.2:5201) and, in the server, ports 5202
# and 5203 redirected to 5201.
fw "$cl" nat add --chain OUTPUT -4 -p tcp -d 10.96.0.1 --dport 443 --to-destination 10.0.2.2:5201 ||
	fail "nat add DNAT in the client's OUTPUT"
fw "$sv" nat add -4 -p tcp --dport 5202 --redirect --to-ports 5201 || fail "nat add redirect 5202 in the server"
fw "$sv" nat add -4 -p tcp --dport 5203 --redirect --to-ports 5201 || fail "nat add redirect 5203 in the server"
netns_exec "$cl" sysctl -qw net.ipv4.ip_local_port_range="10000 10000"
ip netns exec "$sv" socat -u TCP4-LISTEN:5201,reuseaddr,fork OPEN:/dev/null </dev/null >/dev/null 2>&1 &
busywait 60000 listening "$sv" 5201 || fail "server listens on 5201"
est() { netns_exec "$cl" ss -Htn state established "( dport = :$1 )" | grep -q .; }
# hold ADDR:PORT: a connection from the client, held open until
# kill_ns_procs ends it (no fixed hold time).
hold() { ip netns exec "$cl" socat -u SYSTEM:"sleep 100000" "TCP4:$1,connect-timeout=60" </dev/null >/dev/null 2>&1 & }
hold 10.0.2.2:5201
busywait 60000 est 5201 || fail "edemux: first connection (port 10000 -> 5201)"
# 10000 -> 10.96.0.1:443 becomes 10000 -> 10.0.2.2:5201, which the first
# connection holds.
hold 10.96.0.1:443
if busywait 60000 est 443; then pass "edemux: connected to the service via the DNATed address"; else fail "edemux: no connection via 10.96.0.1:443"; fi
check "edemux: the client's socket is 10.0.1.2:10000 -> 10.96.0.1:443 (ss)" "10.0.1.2:10000" \
	"$(netns_exec "$cl" ss -Htn state established "( dport = :443 )" | awk '{ print $3 }')"
r=$(flow "$cl" '$1 == "tcp" && $4 == "10.96.0.1" && $6 == 443 { print $7, $9, $10 }')
if [ "${r% *}" = "10.0.2.2 5201" ] && [ "${r##* }" != 10000 ]; then
	pass "edemux: fwctl ct list in the client: reply from 10.0.2.2:5201 to a new source port (${r##* })"
else
	fail "edemux: the client's DNATed connection's reply tuple is '$r'"
fi
# The two REDIRECTs in the server, to the port the first connection uses.
hold 10.0.2.2:5202
hold 10.0.2.2:5203
busywait 60000 est 5202 || fail "edemux: no connection to 5202"
busywait 60000 est 5203 || fail "edemux: no connection to 5203"
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
netns_exec "$cl" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
nat_reset

# --- 100 clients, one source port ------------------------------------------
seq 100 199 | sed 's/^/addr add 10.0.1./; s/$/\/24 dev veth0/' | ip -net "$cl" -batch - || fail "100 client addresses"
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add masquerade (100 clients)"
ip netns exec "$sv" python3 -S -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.2.2", 8080)); s.listen(512); time.sleep(100000)' &
busywait 60000 listening "$sv" 8080 || fail "server listens on 8080"
ip netns exec "$cl" python3 -S -c '
import socket, sys, time
socks, ok = [], 0
for i in range(100, 200):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.0.1.%d" % i, 10000))
    s.settimeout(60)
    try:
        s.connect(("10.0.2.2", 8080))
        ok += 1
    except OSError as e:
        print("10.0.1.%d: %s" % (i, e), file=sys.stderr)
    socks.append(s)
open(sys.argv[1] + ".tmp", "w").write("%d\n" % ok)
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(100000)' "$dir/hundred" &
busywait 180000 test -s "$dir/hundred" || fail "the 100 clients did not finish connecting"
check "100 clients from port 10000 behind masquerade: connections made (the clients' own count)" 100 "$(cat "$dir/hundred" 2>/dev/null)"
check "witness: the clients hold 100 established sockets from port 10000 (ss)" 100 \
	"$(netns_exec "$cl" ss -Htn state established "( sport = :10000 )" | wc -l)"
peers=$(tcp_peers "$sv" 8080)
check "witness: the server holds 100 connections from the router's address, 100 distinct ports (ss)" "100 100" \
	"$(echo "$peers" | grep -c '^10.0.2.1:') $(echo "$peers" | sort -u | grep -c .)"
check "fwctl ct list: 100 connections from port 10000, each mapped to its own port of 10.0.2.1" 100 \
	"$(flow "$rt" '$1 == "tcp" && $5 == 10000 && $6 == 8080 && $8 == "10.0.2.1" { print $10 }' | sort -u | wc -l)"
kill_ns_procs
seq 100 199 | sed 's/^/addr del 10.0.1./; s/$/\/24 dev veth0/' | ip -net "$cl" -batch - || fail "remove the 100 addresses"
nat_reset

# --- The DNS A/AAAA race through masquerade ---------------------------------
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add -4 masquerade (UDP clash)"
fw "$rt" nat add -6 -o veth1 --masquerade || fail "nat add -6 masquerade (UDP clash)"
clash_py="${RFW_SELFTESTS:-$(dirname "$0")}/udp_clash.py"
for v in 4 6; do
	if [ $v = 4 ]; then sa=10.0.2.2; else sa=fd00:2::2; fi
	ip netns exec "$sv" python3 -S "$clash_py" server $sa 5353 120 &
	srv=$!
	busywait 60000 sh -c "ip netns exec $sv ss -Hlun | grep -q ':5353 '" || fail "IPv$v echo server on 5353"
	read -r failed0 resolved0 < <(ct_stats "$rt" insert_failed clash_resolved)
	read -r flows answered sent < <(netns_exec "$cl" python3 -S "$clash_py" client $sa 5353 50 30000)
	check "IPv$v UDP clash: 50 flows of 2 simultaneous first datagrams sent (the client's count)" "50 100" "$flows $sent"
	check "IPv$v UDP clash: both answers of every flow came back (the client's count)" 50 "$answered"
	read -r failed resolved < <(ct_stats "$rt" insert_failed clash_resolved)
	check "IPv$v UDP clash: insert_failed unchanged (fwctl ct stats)" "$failed0" "$failed"
	echo "# IPv$v UDP clash: $((resolved - resolved0)) of the 50 flows raced to the insert (clash_resolved)"
	# One listing: the flows' source ports, one line per entry.
	ports=$(flow "$rt" '$1 == "udp" && $6 == 5353 { print $5 }')
	check "IPv$v UDP clash: one router entry per flow (fwctl ct list: flows/entries)" 50/50 \
		"$(echo "$ports" | sort -u | grep -c .)/$(echo "$ports" | grep -c .)"
	kill $srv 2>/dev/null
	wait $srv 2>/dev/null
	fw "$rt" ct flush >/dev/null
done
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
		netns_exec "$a" ping -$v -q -c 1 -W 2 -M "do" -s 1300 $far >/dev/null 2>&1
		moved() { [ "$(snmp_counter "$a" $key)" -gt "$a0" ]; }
		busywait 60000 moved
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
	check "IPv$v port unreachable from the far host reached client2's socket" refused "$(udp_probe "$cl2" 5555 $far 7777 30)"
	check "IPv$v port unreachable from the far host reached the client's socket" refused "$(udp_probe "$cl" 5555 $far 7777 30)"
	check "witness: each client got exactly one destination unreachable ($key)" "1 1" \
		"$(($(snmp_counter "$cl" $key) - a0)) $(($(snmp_counter "$cl2" $key) - b0))"
	if [ $v = 4 ]; then a=10.0.2.1; else a=fd00:2::1; fi
	check "IPv$v fwctl ct list: the two 5555 -> 7777 flows masqueraded to two distinct ports" 2 \
		"$(flow "$rt" "\$1 == \"udp\" && \$5 == 5555 && \$6 == 7777 && \$8 == \"$a\" { print \$10 }" | sort -u | wc -l)"
done
nat_reset

kernel_log_clean
exit $ret
