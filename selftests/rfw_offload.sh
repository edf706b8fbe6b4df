#!/bin/bash
# The fast path (`--offload` in filter FORWARD, as nftables' `flow add
# @ft`): flows through a masquerading router, offloaded once established
# both ways, then taken off again by each event that must end an offload.
#
#   client 10.0.1.2 -- router (rfw) veth1 10.0.2.1 -- veth0 10.0.2.2 server
#                                   veth2 10.0.3.1 -- veth1 10.0.3.2 (same server)
#   the server's service address 10.9.9.9 / fd00:9::9 (on its lo), routed
#   by the router via 10.0.2.2 / fd00:2::2, later via the second link.
#
# Fragments go the normal way (the fast path runs at netdev ingress,
# before defragmentation) without ending their flow's offload.
# Ends of an offload checked: a ruleset without the rule, `fwctl ct
# flush`, a route change, an MTU change, FIN, RST, the device deleted,
# rmmod; each under traffic, each counted by its reason.
# The first flow also goes through a twin router running nf_conntrack and
# nftables' flowtable, and the two are compared.
#
# Witnesses in the end hosts and the kernel: each end's datagram counts
# and the sources and TTLs the server saw (udp_pingpong.py), cmp of what a
# TCP transfer delivered, the router's own IP counters (/proc/net/snmp Ip
# ForwDatagrams, which the kernel's ip_forward counts, and InReceives,
# ip_rcv's: the fast path runs at ingress and skips both), the server's nftables
# counters per input link (the route change), the client's route cache
# (PMTU), and that `ip link del` of a device an offloaded flow uses
# returns (a leaked route reference would make it wait forever). rfw's
# own: `fwctl ct list` ([OFFLOAD], counters equal to the end hosts') and
# the offload counters of `fwctl ct stats`.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "nft --version" "nftables (the server's witness counters, the twin router)"
checktool "conntrack --version" "conntrack-tools (the twin router's counters)"
dir=$(mktemp -d)
trap rfw_cleanup EXIT
here=$(dirname "$0")

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
ip link add veth2 netns "$rt" type veth peer name veth1 netns "$sv" || fail "second link"
ip -net "$rt" -batch - <<EOF || fail "router set-up"
addr add 10.0.3.1/24 dev veth2
addr add fd00:3::1/64 dev veth2 nodad
link set veth2 up
route add 10.9.9.9/32 via 10.0.2.2
route add fd00:9::9/128 via fd00:2::2
EOF
ip -net "$sv" -batch - <<EOF || fail "server set-up"
addr add 10.9.9.9/32 dev lo
addr add fd00:9::9/128 dev lo
addr add 10.0.3.2/24 dev veth1
addr add fd00:3::2/64 dev veth1 nodad
link set veth1 up
EOF
# The server's witness: UDP datagrams to the service per input link.
netns_exec "$sv" nft -f - <<'NFT' || fail "server nft counters"
table inet rfw_w {
	counter via2 { }
	counter via3 { }
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "veth0" udp dport 7002 counter name via2
		iifname "veth1" udp dport 7002 counter name via3
	}
}
NFT
fw "$rt" filter add --chain forward --ct-state established --offload >/dev/null || fail "offload rule"
fw "$rt" nat add -o veth1 --masquerade >/dev/null || fail "masquerade veth1"
fw "$rt" nat add -o veth2 --masquerade >/dev/null || fail "masquerade veth2"
netns_exec "$cl" ping -q -c 1 -W 10 10.9.9.9 >/dev/null || fail "IPv4 path up"
netns_exec "$cl" ping -6 -q -c 1 -W 10 fd00:9::9 >/dev/null || fail "IPv6 path up"

# UDP echo servers on the service addresses; their counts at the end.
for p in 7001 7002 7004 7005; do
	nsenter --net="/run/netns/$sv" python3 -S "$here/udp_pingpong.py" server 10.9.9.9 $p "$dir/srv.$p" &
	eval "srv_$p=\$!"
done
nsenter --net="/run/netns/$sv" python3 -S "$here/udp_pingpong.py" server fd00:9::9 7006 "$dir/srv.7006" &
srv_7006=$!
sleep 1
# server_count PORT: stops that echo server and prints what it received.
server_count() {
	local pid f=srv
	eval "pid=\$srv_$1"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	# The server of port 7001 was restarted after (a').
	[ "$1" = 7001 ] && f=srv2
	cat "$dir/$f.$1" 2>/dev/null || echo none
}
pingpong() { # pingpong DST PORT SPORT COUNT [PAUSE GO]
	netns_exec "$cl" python3 -S "$here/udp_pingpong.py" client "$1" "$2" "$3" "$4" 100 ${5:+"$5" "$6"}
}
# flow_line SPORT: the router's `fwctl ct list` line of the UDP flow from
# client port SPORT.
flow_line() { ct_list "$rt" -p udp | grep -m1 "sport=$1 "; }
# packets_of LINE: its two packet counts, original then reply.
packets_of() { grep -o 'packets=[0-9]*' <<<"$1" | cut -d= -f2 | tr '\n' ' ' | sed 's/ $//'; }
stats() { ct_stats "$rt" offloaded offload_packets offload_punted offload_end_tcp offload_end_expired \
	offload_end_route offload_end_device offload_end_ruleset offload_end_deleted; }
# stat_delta NAME BEFORE AFTER: one counter's growth between two `stats`.
names=(offloaded offload_packets offload_punted offload_end_tcp offload_end_expired
	offload_end_route offload_end_device offload_end_ruleset offload_end_deleted)
stat_delta() {
	local i b=($2) a=($3)
	for i in "${!names[@]}"; do
		[ "${names[i]}" = "$1" ] && { echo $((a[i] - b[i])); return; }
	done
	echo missing
}

# (a) A UDP flow: offloaded after its first exchange; both ends' counts,
# rfw's counters and the kernel's forwarding counter agree.
s0=$(stats)
fwd0=$(snmp_counter "$rt" Ip:ForwDatagrams)
rcv0=$(snmp_counter "$rt" Ip:InReceives)
out=$(pingpong 10.9.9.9 7001 40001 200)
fwd1=$(snmp_counter "$rt" Ip:ForwDatagrams)
rcv1=$(snmp_counter "$rt" Ip:InReceives)
s1=$(stats)
check "UDP: the client's 200 datagrams were all echoed" "sent 200 echoed 200" "$out"
line=$(flow_line 40001)
case "$line" in *"[OFFLOAD]"*) pass "UDP: fwctl ct list marks the flow [OFFLOAD]" ;;
*) fail "UDP: no [OFFLOAD] in: $line" ;; esac
check "UDP: its counters kept counting on the fast path (original, reply)" "200 200" "$(packets_of "$line")"
check "UDP: offloaded +1" 1 "$(stat_delta offloaded "$s0" "$s1")"
op=$(stat_delta offload_packets "$s0" "$s1")
[ "$op" -ge 396 ] && pass "UDP: offload_packets +$op (>= 396 of 400)" || fail "UDP: offload_packets +$op (< 396)"
fwd=$((fwd1 - fwd0))
[ "$fwd" -le 8 ] && pass "UDP: the kernel forwarded $fwd of 400 packets itself (Ip ForwDatagrams; the rest took the fast path)" ||
	fail "UDP: the kernel forwarded $fwd of 400 packets itself (Ip ForwDatagrams)"
# The fast path runs at netdev ingress, before ip_rcv (which counts
# InReceives): the IP layer never saw the offloaded packets.
rcv=$((rcv1 - rcv0))
[ "$rcv" -le 12 ] && pass "UDP: the router's IP layer received $rcv of 400 packets (Ip InReceives; the fast path runs before it)" ||
	fail "UDP: the router's IP layer received $rcv of 400 packets (Ip InReceives)"

# (a') The same flow through nftables' flowtable (`flow add @ft`, with
# counters) in a twin router: the server sees the same source and TTL, the
# kernel forwards as few packets itself, and conntrack counts as rfw does.
if setup_ns cl2 rt2 sv2 && setup_router "$cl2" "$rt2" "$sv2"; then
	netns_exec "$rt2" nft -f - <<'NFT' || fail "twin: nft ruleset"
table inet twin {
	flowtable ft { hook ingress priority 0; devices = { veth0, veth1 }; counter; }
	chain forward {
		type filter hook forward priority 0; policy accept;
		ct state established meta l4proto { tcp, udp } flow add @ft
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "veth1" masquerade
	}
}
NFT
	# conntrack's counters are off by default (nf_conntrack_acct).
	netns_exec "$rt2" sysctl -qw net.netfilter.nf_conntrack_acct=1 || fail "twin: nf_conntrack_acct"
	nsenter --net="/run/netns/$sv2" python3 -S "$here/udp_pingpong.py" server 10.0.2.2 7001 "$dir/twin.7001" &
	tw=$!
	sleep 1
	f0=$(snmp_counter "$rt2" Ip:ForwDatagrams)
	tout=$(netns_exec "$cl2" python3 -S "$here/udp_pingpong.py" client 10.0.2.2 7001 40001 200 100)
	f1=$(snmp_counter "$rt2" Ip:ForwDatagrams)
	tline=$(netns_exec "$rt2" conntrack -L -p udp --orig-port-src 40001 2>/dev/null)
	kill $tw
	wait $tw 2>/dev/null
	check "twin: nftables' flowtable echoed the 200 too" "sent 200 echoed 200" "$tout"
	check "twin: conntrack counted as rfw (original, reply)" "$(packets_of "$line")" "$(packets_of "$tline")"
	case "$tline" in *"[OFFLOAD]"*) pass "twin: conntrack -L marks it [OFFLOAD] as fwctl does" ;;
	*) fail "twin: conntrack -L: $tline" ;; esac
	twfwd=$((f1 - f0))
	[ "$twfwd" -le 8 ] && [ "$fwd" -le 8 ] &&
		pass "twin: the kernel forwarded $twfwd packets itself under nftables, $fwd under rfw" ||
		fail "twin: the kernel forwarded $twfwd packets itself under nftables, $fwd under rfw"
	# The server's view of the flow (source address, TTL): the same.
	kill "$srv_7001" 2>/dev/null
	wait "$srv_7001" 2>/dev/null
	check "UDP: the server got all 200" 200 "$(cat "$dir/srv.7001" 2>/dev/null)"
	check "twin: the servers saw the same source and TTL" "$(cat "$dir/twin.7001.peers" 2>/dev/null)" \
		"$(cat "$dir/srv.7001.peers" 2>/dev/null)"
	nsenter --net="/run/netns/$sv" python3 -S "$here/udp_pingpong.py" server 10.9.9.9 7001 "$dir/srv2.7001" &
	srv_7001=$!
	sleep 1
else
	fail "twin: set-up"
fi

# (a'') Fragments: the fast path runs before defragmentation, so datagrams
# larger than the links' MTU go the normal way (reassembled, masqueraded,
# fragmented again) while their flow stays offloaded. The server's
# witness: every one arrived, from the router's address alone.
nsenter --net="/run/netns/$sv" python3 -S "$here/udp_pingpong.py" server 10.9.9.9 7007 "$dir/srv.7007" &
srv_7007=$!
busywait 60000 listening "$sv" 7007 udp || fail "fragments: server listens"
out=$(pingpong 10.9.9.9 7007 40007 20)
big=$(netns_exec "$cl" python3 -S "$here/udp_pingpong.py" client 10.9.9.9 7007 40007 10 3000)
line=$(flow_line 40007)
check "fragments: the small datagrams, then 10 of 3000 bytes, all echoed" "sent 20 echoed 20 sent 10 echoed 10" "$out $big"
case "$line" in *"[OFFLOAD]"*) pass "fragments: the flow stayed offloaded" ;;
*) fail "fragments: no [OFFLOAD] in: $line" ;; esac
check "fragments: the connection counted each datagram once (original, reply)" "30 30" "$(packets_of "$line")"
check "fragments: the server got all 30, from the router's address only" "30 10.0.2.1" \
	"$(server_count 7007) $(cut -d' ' -f1 "$dir/srv.7007.peers" 2>/dev/null | sort -u | paste -sd' ')"
# `fwctl ct delete` of the connection ends its offload with it.
sd0=$(stats)
fw "$rt" ct delete -p udp -s 10.0.1.2 -d 10.9.9.9 --sport 40007 --dport 7007 >/dev/null || fail "ct delete"
sd1=$(stats)
check "ct delete: offload_end_deleted +1, and the connection is gone" "1 " \
	"$(stat_delta offload_end_deleted "$sd0" "$sd1") $(flow_line 40007)"

# (b) A ruleset without the offload rule takes the flow back, with its
# state; the rule again offloads it again.
fw "$rt" filter flush >/dev/null || fail "filter flush"
out=$(pingpong 10.9.9.9 7001 40001 20)
s2=$(stats)
check "replace: the flow goes on without the rule" "sent 20 echoed 20" "$out"
check "replace: offload_end_ruleset +1" 1 "$(stat_delta offload_end_ruleset "$s1" "$s2")"
line=$(flow_line 40001)
case "$line" in *"[OFFLOAD]"*) fail "replace: still [OFFLOAD]: $line" ;;
*) pass "replace: the flow is on the normal path (no [OFFLOAD])" ;; esac
check "replace: the same connection, its counts went on (original, reply)" "220 220" "$(packets_of "$line")"
fw "$rt" filter add --chain forward --ct-state established --offload >/dev/null || fail "offload rule again"
out=$(pingpong 10.9.9.9 7001 40001 20)
s3=$(stats)
check "replace: with the rule back, offloaded again" "sent 20 echoed 20 1" "$out $(stat_delta offloaded "$s2" "$s3")"
# `fwctl ct flush` ends it with the connection; the next datagrams make a
# new one, which is offloaded in turn.
fw "$rt" ct flush >/dev/null || fail "ct flush"
out=$(pingpong 10.9.9.9 7001 40001 20)
s3b=$(stats)
check "flush: the flow goes on as a new connection" "sent 20 echoed 20" "$out"
check "flush: offload_end_deleted +1, offloaded +1" "1 1" \
	"$(stat_delta offload_end_deleted "$s3" "$s3b") $(stat_delta offloaded "$s3" "$s3b")"
check "flush: the new connection counts from its first datagram (original, reply)" "20 20" \
	"$(packets_of "$(flow_line 40001)")"
s3=$s3b
check "server: every datagram of the flow arrived (20 + 20 + 20 after the 200)" 60 "$(server_count 7001)"

# (c) A route change mid-flow moves the offloaded flow to the new next hop.
out=$(pingpong 10.9.9.9 7002 40002 100 "$dir/pause" "$dir/go" &
	busywait 60000 test -e "$dir/pause"
	ip -net "$rt" route replace 10.9.9.9/32 via 10.0.3.2 dev veth2
	touch "$dir/go"
	wait)
s4=$(stats)
check "route: the client's 100 datagrams were all echoed" "sent 100 echoed 100" "$out"
check "route: the server got 50 by the first link, 50 by the second (nft)" "50 50" \
	"$(nft_packets "$sv" via2) $(nft_packets "$sv" via3)"
r=$(stat_delta offload_end_route "$s3" "$s4")
[ "$r" -ge 1 ] && pass "route: offload_end_route +$r" || fail "route: offload_end_route +$r"
line=$(flow_line 40002)
case "$line" in *"[OFFLOAD]"*) pass "route: offloaded again on the new route" ;;
*) fail "route: not offloaded on the new route: $line" ;; esac

# (d) A smaller MTU on the way out: the flow leaves the fast path (its
# record holds the old MTU), packets too large for the link go the normal
# way, whose ICMP teaches the client the path MTU.
nsenter --net="/run/netns/$sv" python3 -S "$here/tcp_stream.py" server 10.9.9.9 7003 "$dir/tcp.count" &
tpid=$!
# The client connects once: it must not race the server's listen().
busywait 60000 listening "$sv" 7003 tcp || fail "MTU: the stream server does not listen"
nsenter --net="/run/netns/$cl" python3 -S "$here/tcp_stream.py" client 10.9.9.9 7003 200000 "$dir/tcp.stop" 120 "$dir/tcp.res" &
cpid=$!
busywait 60000 grep -qs '^[2-9]' "$dir/tcp.res.progress" || fail "MTU: the stream did not start"
s5=$(stats)
ip -net "$rt" link set veth2 mtu 1280
ip -net "$sv" link set veth1 mtu 1280
busywait 60000 grep -qs '^[5-9]' "$dir/tcp.res.progress" || fail "MTU: the stream did not go on"
touch "$dir/tcp.stop"
wait $cpid
wait $tpid
s6=$(stats)
sent=$(python3 -S -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$dir/tcp.res" 2>/dev/null)
check "MTU: the server received every byte the client sent" "$sent" "$(cat "$dir/tcp.count" 2>/dev/null)"
pm=$(netns_exec "$cl" ip route get 10.9.9.9 | grep -o 'mtu [0-9]*')
check "MTU: the client learnt the path MTU (its route cache)" "mtu 1280" "$pm"
d=$(stat_delta offload_end_device "$s5" "$s6")
[ "$d" -ge 1 ] && pass "MTU: the MTU change ended the offload (offload_end_device +$d)" || fail "MTU: offload_end_device +$d"
pu=$(stat_delta offload_punted "$s5" "$s6")
t=$(stat_delta offload_end_tcp "$s5" "$s6")
[ "$t" -ge 1 ] && pass "TCP: FIN ended the stream's offload (offload_end_tcp +$t; punted +$pu)" || fail "TCP: offload_end_tcp +$t"

# (e) Bulk TCP through the offloaded NAT flow, IPv4 and IPv6: byte for byte.
head -c 2097152 /dev/urandom >"$dir/data"
transfer() { # transfer LISTEN CONNECT LABEL
	: >"$dir/out"
	nsenter --net="/run/netns/$sv" socat -T 60 -u "$1" OPEN:"$dir/out",creat,trunc </dev/null 2>/dev/null &
	local s=$!
	netns_exec "$cl" socat -T 60 -u OPEN:"$dir/data" "$2,connect-timeout=60,retry=600,interval=0.2" </dev/null 2>/dev/null
	wait $s
	cmp -s "$dir/data" "$dir/out" && pass "$3: 2 MiB arrived identical" || fail "$3: $(stat -c %s "$dir/out") bytes arrived, not identical"
}
s7=$(stats)
transfer TCP4-LISTEN:7010,reuseaddr TCP4:10.9.9.9:7010 "IPv4 TCP"
transfer TCP6-LISTEN:7011,reuseaddr,ipv6only=1 "TCP6:[fd00:9::9]:7011" "IPv6 TCP"
s8=$(stats)
o=$(stat_delta offloaded "$s7" "$s8")
p=$(stat_delta offload_packets "$s7" "$s8")
[ "$o" -ge 2 ] && [ "$p" -ge 500 ] && pass "TCP: both transfers offloaded (offloaded +$o, offload_packets +$p)" ||
	fail "TCP: offloaded +$o, offload_packets +$p"
out=$(pingpong fd00:9::9 7006 40006 100)
check "IPv6 UDP: 100 datagrams echoed" "sent 100 echoed 100" "$out"
case "$(ct_list "$rt" -p udp | grep -m1 "sport=40006 ")" in *"[OFFLOAD]"*) pass "IPv6 UDP: [OFFLOAD]" ;;
*) fail "IPv6 UDP: not offloaded" ;; esac
check "IPv6 UDP: the server got all 100" 100 "$(server_count 7006)"

# RST ends an offload too: a TCP connection offloaded by its exchanges,
# then reset by the client (SO_LINGER 0).
nsenter --net="/run/netns/$sv" python3 -S -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.9.9", 7020)); s.listen(1); c, _ = s.accept()
try:
    while True:
        d = c.recv(100)
        if not d: break
        c.sendall(d)
except OSError:
    pass
' &
rpid=$!
nsenter --net="/run/netns/$cl" python3 -S -c '
import os, socket, struct, sys, time
d = sys.argv[1]
for _ in range(600):
    try:
        s = socket.create_connection(("10.9.9.9", 7020), timeout=5); break
    except OSError:
        time.sleep(0.2)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(20):
    s.sendall(b"ping"); s.recv(100)
print(s.getsockname()[1], flush=True)
open(d + "/rst.ready", "w").close()
t = time.time() + 120
while not os.path.exists(d + "/rst.go") and time.time() < t: time.sleep(0.05)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
' "$dir" >"$dir/rst.port" &
cpid=$!
busywait 60000 test -e "$dir/rst.ready" || fail "RST: the connection did not start"
rport=$(cat "$dir/rst.port")
case "$(ct_list "$rt" -p tcp | grep -m1 "sport=$rport ")" in *"[OFFLOAD]"*) pass "RST: the connection was offloaded" ;;
*) fail "RST: the connection was not offloaded" ;; esac
s8b=$(stats)
touch "$dir/rst.go"
wait $cpid
wait $rpid
busywait 30000 sh -c "! nsenter --net=/run/netns/$rt fwctl ct list -p tcp 2>/dev/null | grep 'sport=$rport ' | grep -q OFFLOAD" ||
	fail "RST: still [OFFLOAD]"
s8c=$(stats)
check "RST: offload_end_tcp +1" 1 "$(stat_delta offload_end_tcp "$s8b" "$s8c")"

# (f) The device an offloaded flow leaves by goes away under traffic: the
# deletion returns (no route reference left behind) and the offload ends.
pingpong 10.9.9.9 7004 40004 3000 >/dev/null &
ppid=$!
busywait 60000 sh -c "nsenter --net=/run/netns/$rt fwctl ct list -p udp 2>/dev/null | grep 'sport=40004 ' | grep -q OFFLOAD" ||
	fail "device: the flow was not offloaded"
s9=$(stats)
if timeout 60 ip -net "$rt" link del veth2; then pass "device: ip link del veth2 returned under offloaded traffic"; else fail "device: ip link del veth2 hung or failed"; fi
s10=$(stats)
d=$(stat_delta offload_end_device "$s9" "$s10")
[ "$d" -ge 1 ] && pass "device: offload_end_device +$d" || fail "device: offload_end_device +$d"
kill $ppid 2>/dev/null
wait $ppid 2>/dev/null

# (g) Module unload under offloaded traffic.
ip -net "$rt" route replace 10.9.9.9/32 via 10.0.2.2
pingpong 10.9.9.9 7005 40005 3000 >/dev/null &
ppid=$!
busywait 60000 sh -c "nsenter --net=/run/netns/$rt fwctl ct list -p udp 2>/dev/null | grep 'sport=40005 ' | grep -q OFFLOAD" ||
	fail "unload: the flow was not offloaded"
if timeout 120 modprobe -r rfw; then pass "unload: modprobe -r rfw under offloaded traffic"; else fail "unload: modprobe -r rfw"; fi
kill $ppid 2>/dev/null
wait $ppid 2>/dev/null
kernel_log_clean
exit $ret
