#!/bin/bash
# The filter table in the kernel, on a router:
#
#   client 10.0.1.2 fd00:1::2 -- router (rfw) -- server 10.0.2.2 fd00:2::2
#
# * Stateful FORWARD: policy drop, `--ct-state established,related
#   --accept`, new connections accepted from the client side only. The
#   client's TCP and pings get their replies; nothing the server starts
#   (TCP, ping, UDP) reaches the client. Witness: the client's nft counters
#   and socat's failure; the rules' counters in `fwctl filter list -o json`
#   move.
# * --reject: TCP and UDP get an ICMP / ICMPv6 port unreachable (the
#   client's snmp counters, its connect() and its UDP socket refused);
#   --reject-with tcp-reset a RST (client nft counter). The server never
#   sees the SYN. `delete --chain FORWARD --handle N` (the handle from the
#   JSON list) lets the connection through again.
# * User chains: --jump, --return back to the caller, --goto (a RETURN in
#   the chain gone to returns to the chain that jumped, not to the one that
#   went), falling off a chain; `chain delete` refused while a rule jumps
#   to the chain, accepted after. Witness: the server's SYN counters and
#   the client's connections.
# * --log writes the prefix and the packet's addresses to the kernel log,
#   in nf_log_syslog's field order, rate-limited (300 datagrams give far
#   fewer lines), and does not stop the packet (the server counts all
#   300). The router is not the initial namespace: as for nf_log, its
#   lines reach the log only with net.netfilter.nf_log_all_netns=1, which
#   the test sets for that part (rfw_isolation.sh checks the 0 case).
# * `-s !PREFIX`: negation.
# * INPUT (policy drop, echo and one port allowed) and OUTPUT (`-o`, a
#   port dropped) on the router itself. Witness: the router's own
#   Tcp PassiveOpens and Icmp InEchos, the server's nft counters.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "nft --version" "nft"
checktool "python3 -V" "python3"
all_netns=$(sysctl -n net.netfilter.nf_log_all_netns 2>/dev/null || echo 0)
trap 'sysctl -qw net.netfilter.nf_log_all_netns="$all_netns"; rfw_cleanup' EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
ip -net "$cl" addr add 10.0.1.3/24 dev veth0

netns_exec "$sv" nft -f - <<NFT || fail "server nft rules"
table inet w {
	counter syn80 { }
	counter syn81 { }
	counter syn83 { }
	counter syn8001 { }
	counter syn8002 { }
	counter syn8003 { }
	counter syn8004 { }
	counter syn8005 { }
	counter udp82 { }
	counter udp9000 { }
	counter udp9100_2 { }
	counter udp9100_3 { }
	counter udp9998 { }
	counter udp9999 { }
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 80 tcp flags syn counter name "syn80"
		tcp dport 81 tcp flags syn counter name "syn81"
		tcp dport 83 tcp flags syn counter name "syn83"
		tcp dport 8001 tcp flags syn counter name "syn8001"
		tcp dport 8002 tcp flags syn counter name "syn8002"
		tcp dport 8003 tcp flags syn counter name "syn8003"
		tcp dport 8004 tcp flags syn counter name "syn8004"
		tcp dport 8005 tcp flags syn counter name "syn8005"
		udp dport 82 counter name "udp82"
		udp dport 9000 counter name "udp9000"
		ip saddr 10.0.1.2 udp dport 9100 counter name "udp9100_2"
		ip saddr 10.0.1.3 udp dport 9100 counter name "udp9100_3"
		udp dport 9998 counter name "udp9998"
		udp dport 9999 counter name "udp9999"
	}
}
NFT
netns_exec "$cl" nft -f - <<NFT || fail "client nft rules"
table inet w {
	counter syn7000 { }
	counter udp7001 { }
	counter echo_req { }
	counter rst83 { }
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 7000 tcp flags syn counter name "syn7000"
		udp dport 7001 counter name "udp7001"
		icmp type echo-request counter name "echo_req"
		icmpv6 type echo-request counter name "echo_req"
		tcp sport 83 tcp flags rst counter name "rst83"
	}
}
NFT
tcp_servers "$sv" :: 80 81 83 8001 8002 8003 8004 8005 || fail "server listeners"
tcp_servers "$cl" :: 7000 || fail "client listener"
# ping_ok NS 4|6 ADDR [SECONDS]: waits 10 s for the answer by default (an
# answer is expected); the cases that expect none give a short wait.
ping_ok() { netns_exec "$1" ping -"$2" -q -c 1 -W "${4:-10}" "$3" >/dev/null 2>&1; }
ping_ok "$cl" 4 10.0.2.2 || fail "IPv4 path up"
ping_ok "$cl" 6 fd00:2::2 || fail "IPv6 path up"
sv4=TCP4:10.0.2.2 sv6="TCP6:[fd00:2::2]"
pk() { nft_packets "$1" "$2" w; }
# policy_packets NS TABLE CHAIN: the packets a built-in chain's policy counted.
policy_packets() { fw "$1" "$2" list --chain "$3" | awk -v c="$3" '$1 == "Chain" && $2 == c { print $5 }'; }
# Connections expected to succeed get 30 s to connect (tcp_get's third
# argument); those expected to be dropped a short 1 s (one SYN: a SYN let
# through would be answered within it, and the end hosts' nft counters,
# read after positive witnesses, are the independent check), pings
# expected to be dropped 1 s likewise.

# --- stateful FORWARD ---------------------------------------------------
fw "$rt" filter policy FORWARD drop || fail "policy FORWARD drop"
fw "$rt" filter add --chain FORWARD --ct-state established,related --accept || fail "add established,related"
fw "$rt" filter add --chain FORWARD -i veth0 -o veth1 --ct-state new --accept || fail "add new from the client side"
read -r est0 new0 < <(rule_info "$rt" filter FORWARD established packets veth1 packets)
check "IPv4 client -> server TCP through the stateful filter" "OK 80" "$(tcp_get "$cl" $sv4:80 30)"
check "IPv6 client -> server TCP through the stateful filter" "OK 80" "$(tcp_get "$cl" "$sv6:80" 30)"
ping_ok "$cl" 4 10.0.2.2 && pass "IPv4 client ping answered" || fail "IPv4 client ping not answered"
ping_ok "$cl" 6 fd00:2::2 && pass "IPv6 client ping answered" || fail "IPv6 client ping not answered"
out=$(tcp_get "$sv" TCP4:10.0.1.2:7000 1)
check "IPv4 server -> client TCP refused by the filter (socat got nothing)" "" "$out"
out=$(tcp_get "$sv" "TCP6:[fd00:1::2]:7000" 1)
check "IPv6 server -> client TCP refused by the filter (socat got nothing)" "" "$out"
ping_ok "$sv" 4 10.0.1.2 1 && fail "IPv4 server ping reached the client" || pass "IPv4 server ping dropped"
ping_ok "$sv" 6 fd00:1::2 1 && fail "IPv6 server ping reached the client" || pass "IPv6 server ping dropped"
pol0=$(policy_packets "$rt" filter FORWARD)
echo x | netns_exec "$sv" socat -u - UDP4-DATAGRAM:10.0.1.2:7001
echo x | netns_exec "$sv" socat -u - "UDP6-DATAGRAM:[fd00:1::2]:7001"
# Witness that the router has taken the server's last two packets, the
# datagrams: FORWARD's policy counted them. Then a short wait for anything
# that would still be on its way to the client.
dropped2() { [ "$(policy_packets "$rt" filter FORWARD)" -ge $((pol0 + 2)) ] 2>/dev/null; }
busywait 60000 dropped2
sleep 1
check "witness: nothing the server started reached the client (client nft: SYNs to 7000, echo requests, UDP to 7001)" \
	"0 0 0" "$(pk "$cl" syn7000) $(pk "$cl" echo_req) $(pk "$cl" udp7001)"
check "witness: the server saw both client connections (nft SYN counter)" 2 "$(pk "$sv" syn80)"
read -r est1 new1 < <(rule_info "$rt" filter FORWARD established packets veth1 packets)
if [ "$est1" -gt "$est0" ] 2>/dev/null && [ "$new1" -gt "$new0" ] 2>/dev/null; then
	pass "fwctl filter list -o json: rule counters moved (established,related $est0 -> $est1, new $new0 -> $new1)"
else
	fail "fwctl filter list -o json: rule counters established,related $est0 -> $est1, new $new0 -> $new1"
	fw "$rt" filter list -o json
fi

# --- REJECT --------------------------------------------------------------
fw "$rt" filter insert --chain FORWARD -p tcp --dport 81 --reject || fail "insert reject tcp 81"
fw "$rt" filter insert --chain FORWARD -p udp --dport 82 --reject || fail "insert reject udp 82"
fw "$rt" filter insert --chain FORWARD -p tcp --dport 83 --reject --reject-with tcp-reset || fail "insert reject tcp-reset 83"
for v in 4 6; do
	if [ $v = 4 ]; then to=$sv4 dst=10.0.2.2 key=Icmp:InDestUnreachs; else to=$sv6 dst=fd00:2::2 key=Icmp6InDestUnreachs; fi
	u0=$(snmp_counter "$cl" $key)
	err=$(netns_exec "$cl" timeout 60 socat -u "$to:81,connect-timeout=30" STDOUT 2>&1)
	case "$err" in
	*"Connection refused"*) pass "IPv$v --reject: the client's connect() was refused" ;;
	*) fail "IPv$v --reject: socat said: $err" ;;
	esac
	# One per SYN: a SYN_SENT socket the user holds takes the first as a
	# soft error, so the retransmitted SYN may get a second.
	d=$(($(snmp_counter "$cl" $key) - u0))
	[ $d -ge 1 ] && pass "witness: IPv$v client got $d port unreachable(s) ($key)" ||
		fail "witness: IPv$v client got no port unreachable ($key)"
	u0=$(snmp_counter "$cl" $key)
	check "IPv$v --reject of UDP: the client's socket was refused" refused "$(udp_probe "$cl" 5082 $dst 82 30)"
	check "witness: IPv$v client got a port unreachable for UDP ($key)" 1 $(($(snmp_counter "$cl" $key) - u0))
	u0=$(snmp_counter "$cl" $key)
	err=$(netns_exec "$cl" timeout 60 socat -u "$to:83,connect-timeout=30" STDOUT 2>&1)
	case "$err" in
	*"Connection refused"*) pass "IPv$v --reject-with tcp-reset: the client's connect() was refused" ;;
	*) fail "IPv$v --reject-with tcp-reset: socat said: $err" ;;
	esac
	check "witness: IPv$v tcp-reset sent no ICMP ($key)" 0 $(($(snmp_counter "$cl" $key) - u0))
	check "witness: IPv$v client got the RST (client nft counter)" $((v == 4 ? 1 : 2)) "$(pk "$cl" rst83)"
done
check "witness: the server never saw the rejected SYNs and datagrams (nft: SYNs to 81, 83, UDP to 82)" \
	"0 0 0" "$(pk "$sv" syn81) $(pk "$sv" syn83) $(pk "$sv" udp82)"
read -r n h < <(rule_info "$rt" filter FORWARD '\b81\b' packets '\b81\b' handle)
[ "$n" -ge 2 ] 2>/dev/null && pass "fwctl filter list -o json: the reject rule for 81 counted $n packets" ||
	fail "the reject rule for 81 counted '$n' packets"
fw "$rt" filter delete --chain FORWARD --handle "$h" || fail "delete --chain FORWARD --handle $h"
check "after delete --handle $h: TCP to 81 goes through" "OK 81" "$(tcp_get "$cl" $sv4:81 30)"
check "after delete: the two other reject rules are left" 2 "$(rule_info "$rt" filter FORWARD reject count)"

# --- user chains: jump, return, goto -------------------------------------
fw "$rt" filter flush --chain FORWARD || fail "flush FORWARD"
fw "$rt" filter policy FORWARD accept || fail "policy FORWARD accept"
fw "$rt" filter chain add c1 || fail "chain add c1"
fw "$rt" filter chain add c2 || fail "chain add c2"
fw "$rt" filter add --chain FORWARD -p tcp --dport 8001:8004 --jump c1 || fail "add jump c1"
fw "$rt" filter add --chain FORWARD -p tcp --dport 8002 --drop || fail "add FORWARD drop 8002"
fw "$rt" filter add --chain c1 -p tcp --dport 8001 --drop || fail "add c1 drop 8001"
fw "$rt" filter add --chain c1 -p tcp --dport 8002 --return || fail "add c1 return 8002"
fw "$rt" filter add --chain c1 -p tcp --dport 8003:8004 --goto c2 || fail "add c1 goto c2"
# Reached only if the RETURN in c2 came back to c1 (goto taken as a jump).
fw "$rt" filter add --chain c1 -p tcp --dport 8003 --drop || fail "add c1 drop 8003"
fw "$rt" filter add --chain c2 -p tcp --dport 8003 --return || fail "add c2 return 8003"
check "8001: dropped inside the chain jumped to" "" "$(tcp_get "$cl" $sv4:8001 1)"
check "8002: RETURN to FORWARD, dropped by the rule after the jump" "" "$(tcp_get "$cl" $sv4:8002 1)"
check "8003: RETURN in the chain gone to returns to FORWARD, not to c1" "OK 8003" "$(tcp_get "$cl" $sv4:8003 30)"
check "8004: falls off c2, then FORWARD's policy accepts" "OK 8004" "$(tcp_get "$cl" $sv4:8004 30)"
check "8005: not jumped, accepted" "OK 8005" "$(tcp_get "$cl" "$sv6:8005" 30)"
check "witness: SYNs the server saw for 8001..8005 (nft)" "0 0 1 1 1" \
	"$(pk "$sv" syn8001) $(pk "$sv" syn8002) $(pk "$sv" syn8003) $(pk "$sv" syn8004) $(pk "$sv" syn8005)"
n=$(rule_packets "$rt" filter c1 '\b8001\b')
[ "$n" -ge 1 ] 2>/dev/null && pass "fwctl filter list --chain c1: the drop rule for 8001 counted $n" || fail "c1 drop 8001 counted '$n'"
n=$(rule_packets "$rt" filter c2 return)
[ "$n" -ge 1 ] 2>/dev/null && pass "fwctl filter list --chain c2: the RETURN rule counted $n" || fail "c2 RETURN counted '$n'"
if fw "$rt" filter chain delete c2 2>/dev/null; then
	fail "chain delete c2 accepted while c1 goes to it"
else
	pass "chain delete c2 refused while c1 goes to it"
fi
fw "$rt" filter flush --chain c1 || fail "flush c1"
fw "$rt" filter flush --chain c2 || fail "flush c2"
fw "$rt" filter chain delete c2 && pass "chain delete c2 once nothing goes to it" || fail "chain delete c2 after flushes"
check "fwctl save no longer declares c2" 0 "$(save_rules "$rt" | grep -c '^:c2 ')"
fw "$rt" filter flush || fail "flush filter"
fw "$rt" filter chain delete c1 || fail "chain delete c1"

# --- LOG, rate-limited -----------------------------------------------------
tag="rfwlog$$"
sysctl -qw net.netfilter.nf_log_all_netns=1 || fail "sysctl net.netfilter.nf_log_all_netns=1"
fw "$rt" filter add --chain FORWARD -4 -p udp --dport 9000 --log --log-prefix "$tag: " || fail "add --log"
l0=$(dmesg | grep -c "$tag")
t0=$(date +%s%3N)
netns_exec "$cl" python3 -S -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(300):
    s.sendto(b"log", ("10.0.2.2", 9000))'
got300() { [ "$(pk "$sv" udp9000)" = 300 ]; }
busywait 60000 got300
# The router logs each packet before it forwards it: with all 300 at the
# server, every line there will be is written.
t1=$(date +%s%3N)
lines=$(($(dmesg | grep -c "$tag") - l0))
# The token bucket (burst 10, 5 lines/s by default) allows at most 10
# lines, plus 5 per second the 300 packets took (rounded up, plus one):
# fewer than 150 unless they took more than 26 s, as on a slow machine.
max=$((10 + 5 * ((t1 - t0 + 999) / 1000 + 1)))
[ $max -lt 149 ] && max=149
if [ "$lines" -ge 1 ] && [ "$lines" -le $max ]; then
	pass "--log: $lines kernel log lines for 300 packets (rate-limited)"
else
	fail "--log: $lines kernel log lines for 300 packets in $(((t1 - t0 + 999) / 1000)) s (at most $max expected)"
fi
dmesg | grep "$tag" | tail -1 | grep -q "10.0.1.2" && pass "--log line names the source address" ||
	fail "--log line: $(dmesg | grep "$tag" | tail -1)"
# nf_log_syslog's spelling: the protocol's name alone, then the ports.
dmesg | grep "$tag" | tail -1 | grep -q "PROTO=UDP SPT=[0-9]* DPT=9000 " &&
	pass "--log line names the protocol and ports as nf_log does" ||
	fail "--log line's protocol: $(dmesg | grep "$tag" | tail -1)"
# nf_log_syslog's fields, in its order, after the prefix (no module name).
re="$tag: IN=veth0 OUT=veth1 MAC=([0-9a-f]{2}:){13}[0-9a-f]{2} SRC=10\.0\.1\.2 DST=10\.0\.2\.2 "
re+="LEN=31 TOS=0x00 PREC=0x00 TTL=63 ID=[0-9]+ (DF )?PROTO=UDP SPT=[0-9]+ DPT=9000 LEN=11 \$"
dmesg | grep "$tag" | tail -1 | grep -Eq "\] $re" &&
	pass "--log line: nf_log_syslog's fields in its order" ||
	fail "--log line's fields: $(dmesg | grep "$tag" | tail -1)"
check "witness: --log does not stop packets (server nft counter)" 300 "$(pk "$sv" udp9000)"
check "fwctl filter list -o json: the LOG rule counted every packet" 300 "$(rule_packets "$rt" filter FORWARD log)"
fw "$rt" filter flush || fail "flush filter"
sysctl -qw net.netfilter.nf_log_all_netns="$all_netns"

# --- negated source ------------------------------------------------------------
fw "$rt" filter add --chain FORWARD -4 -p udp -s !10.0.1.2 --dport 9100 --drop || fail "add -s !10.0.1.2"
echo x | netns_exec "$cl" socat -u - UDP4-DATAGRAM:10.0.2.2:9100,bind=10.0.1.2
echo x | netns_exec "$cl" socat -u - UDP4-DATAGRAM:10.0.2.2:9100,bind=10.0.1.3
# Witnesses that the router has taken both: the server counted the one
# from .2, the drop rule the one from .3. Then a short wait for the latter
# to show up at the server if it was let through all the same.
took_both() { [ "$(pk "$sv" udp9100_2)" -ge 1 ] 2>/dev/null && [ "$(rule_packets "$rt" filter FORWARD 9100)" -ge 1 ] 2>/dev/null; }
busywait 60000 took_both
sleep 1
check "-s !10.0.1.2: from .2 forwarded, from .3 dropped (server nft counters)" "1 0" \
	"$(pk "$sv" udp9100_2) $(pk "$sv" udp9100_3)"
fw "$rt" filter flush || fail "flush filter"

# --- INPUT and OUTPUT of the router itself ---------------------------------------
tcp_servers "$rt" :: 2222 2223 || fail "router listeners"
fw "$rt" filter policy INPUT drop || fail "policy INPUT drop"
fw "$rt" filter add --chain INPUT --ct-state established,related --accept || fail "INPUT established"
fw "$rt" filter add --chain INPUT -4 -p icmp --icmp-type echo-request --accept || fail "INPUT echo-request"
fw "$rt" filter add --chain INPUT -6 -p ipv6-icmp --accept || fail "INPUT icmpv6"
fw "$rt" filter add --chain INPUT -p tcp --dport 2223 --accept || fail "INPUT 2223"
po0=$(snmp_counter "$rt" Tcp:PassiveOpens)
e0=$(snmp_counter "$rt" Icmp:InEchos)
ping_ok "$cl" 4 10.0.1.1 && pass "INPUT: the router answers pings" || fail "INPUT: ping of the router"
check "INPUT: port 2223 accepted" "OK 2223" "$(tcp_get "$cl" TCP4:10.0.1.1:2223 30)"
check "INPUT: port 2222 dropped by the policy" "" "$(tcp_get "$cl" TCP4:10.0.1.1:2222 1)"
check "INPUT: IPv6 port 2223 accepted" "OK 2223" "$(tcp_get "$cl" "TCP6:[fd00:1::1]:2223" 30)"
check "witness: the router's TCP took 2 connections (Tcp PassiveOpens)" 2 $(($(snmp_counter "$rt" Tcp:PassiveOpens) - po0))
check "witness: the router's ICMP answered 1 echo (Icmp InEchos)" 1 $(($(snmp_counter "$rt" Icmp:InEchos) - e0))
fw "$rt" filter policy INPUT accept || fail "policy INPUT accept"
fw "$rt" filter flush --chain INPUT || fail "flush INPUT"
fw "$rt" filter add --chain OUTPUT -4 -o veth1 -p udp --dport 9999 --drop || fail "OUTPUT -o veth1 drop"
echo x | netns_exec "$rt" socat -u - UDP4-DATAGRAM:10.0.2.2:9999 2>/dev/null
echo x | netns_exec "$rt" socat -u - UDP4-DATAGRAM:10.0.2.2:9998
# The datagram to 9998, sent after the one to 9999, arrived: witness that
# the other was dealt with; a short wait in case it was sent after all.
got9998() { [ "$(pk "$sv" udp9998)" -ge 1 ] 2>/dev/null; }
busywait 60000 got9998
sleep 1
check "OUTPUT: the router's datagram to 9999 dropped, to 9998 sent (server nft counters)" "0 1" \
	"$(pk "$sv" udp9999) $(pk "$sv" udp9998)"
check "fwctl filter list --chain OUTPUT -o json: the drop rule counted it" 1 "$(rule_packets "$rt" filter OUTPUT 9999)"
fw "$rt" filter flush || fail "flush filter"

kernel_log_clean
exit $ret
