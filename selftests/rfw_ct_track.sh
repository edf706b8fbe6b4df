#!/bin/bash
# Connection tracking through a router: states as `fwctl ct list` shows them.
#
#   client 10.0.1.2 -- router (rfw tracks here) -- server 10.0.2.2
#
# * TCP: SYN_SENT (server drops the SYN), then a real connection ESTABLISHED
#   and ASSURED, then TIME_WAIT after both sides close. Witness: the
#   client's own socket states (`ss`) and the server's nft counter of SYNs.
# * UDP: a datagram the server does not answer is [UNREPLIED]; the server's
#   reply from the same port clears it. Witness: the client's Udp
#   InDatagrams (/proc/net/snmp) counts the reply.
# * ICMP errors RELATED: a port unreachable from the server (UDP to a closed
#   port) and a fragmentation-needed from the router itself (DF ping larger
#   than the router's server-side MTU of 1280) each count one RELATED packet.
#   Witness: the client's Icmp InDestUnreachs.
# Every case runs over IPv4; TCP and UDP also over IPv6.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "nft --version" "nft"
dir=$(mktemp -d)
cleanup() {
	kill_ns_procs
	cleanup_all_ns
	rm -rf "$dir"
	modprobe -r rfw 2>/dev/null
}
trap cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" 1280 || { fail "setup_router"; exit $ret; }

netns_exec "$sv" nft -f - <<NFT || fail "server nft rules"
table inet t {
	counter syn9999 { }
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 9999 tcp flags syn counter name "syn9999" drop
	}
}
NFT
netns_exec "$cl" ping -q -c 1 -W 10 10.0.2.2 >/dev/null || fail "IPv4 path up"
netns_exec "$cl" ping -6 -q -c 1 -W 10 fd00:2::2 >/dev/null || fail "IPv6 path up"

# --- tracking auto: a namespace without rules tracks nothing ------------
# Witness for the pings: they were answered (above); rfw saw no connection.
check "tracking auto, no rules: no entry for the pings (fwctl ct count)" 0 "$(netns_exec "$rt" fwctl ct count)"
check "tracking auto, no rules: nothing tracked (fwctl ct stats new)" 0 "$(ct_stat "$rt" new)"
fw "$rt" ct tracking on >/dev/null || fail "fwctl ct tracking on"
# Every entry looked for below must outlive the slowest step before its
# check, on any machine: timeouts far beyond the defaults (udp_unreplied
# and icmp 30 s, tcp_last_ack 30 s, ...). No check here is about expiry.
fw "$rt" ct timeout tcp_syn_sent 3600 tcp_syn_recv 3600 tcp_fin_wait 3600 tcp_close_wait 3600 \
	tcp_last_ack 3600 tcp_time_wait 3600 udp_unreplied 3600 udp_replied 3600 icmp 3600 >/dev/null ||
	fail "fwctl ct timeout"
netns_exec "$cl" ping -q -c 1 -W 10 10.0.2.2 >/dev/null || fail "IPv4 ping with tracking on"
check "tracking on: the ping is an entry (fwctl ct count)" 1 "$(netns_exec "$rt" fwctl ct count)"
netns_exec "$rt" fwctl ct flush >/dev/null

# --- TCP ---------------------------------------------------------------
for v in 4 6; do
	if [ $v = 4 ]; then srv=10.0.2.2; sa=10.0.2.2; else srv='[fd00:2::2]'; sa=fd00:2::2; fi

	# SYN_SENT: the SYN reaches the server and is dropped there. The
	# client keeps trying until killed after the check.
	ip netns exec "$cl" socat -u OPEN:/dev/null TCP$v:$srv:9999,connect-timeout=120 2>/dev/null &
	synpid=$!
	has_syn_sent() { ct_list "$rt" -p tcp -d "$sa" | grep -q "SYN_SENT .*dport=9999 .*UNREPLIED"; }
	if busywait 60000 has_syn_sent; then
		pass "IPv$v TCP: SYN_SENT [UNREPLIED] while the server drops the SYN"
	else
		fail "IPv$v TCP: no SYN_SENT entry"; ct_list "$rt"
	fi
	kill $synpid 2>/dev/null
	wait $synpid 2>/dev/null

	# ESTABLISHED: a connection held open by both ends.
	ip netns exec "$sv" socat -u TCP$v-LISTEN:8080,reuseaddr SYSTEM:"cat >/dev/null" &
	spid=$!
	busywait 60000 listening "$sv" 8080 || fail "IPv$v server listens on 8080"
	mkfifo "$dir/in$v"
	ip netns exec "$cl" socat -u PIPE:"$dir/in$v" TCP$v:$srv:8080 &
	cpid=$!
	exec 7>"$dir/in$v"
	echo hello >&7
	has_est() { ct_list "$rt" -p tcp -d "$sa" | grep -q "ESTABLISHED .*dport=8080 .*ASSURED"; }
	if busywait 60000 has_est; then
		pass "IPv$v TCP: ESTABLISHED [ASSURED] while the connection is open"
	else
		fail "IPv$v TCP: no ESTABLISHED entry"; ct_list "$rt"
	fi
	check "witness: IPv$v client socket ESTABLISHED (ss)" 1 \
		"$(netns_exec "$cl" ss -H -$v -tn state established "( dport = :8080 )" | wc -l)"

	# TIME_WAIT: the client closes, the server's reading side ends and
	# closes too.
	exec 7>&-
	wait $cpid 2>/dev/null
	has_tw() { ct_list "$rt" -p tcp -d "$sa" | grep -q "TIME_WAIT .*dport=8080"; }
	if busywait 60000 has_tw; then
		pass "IPv$v TCP: TIME_WAIT after both ends closed"
	else
		fail "IPv$v TCP: no TIME_WAIT entry"; ct_list "$rt"
	fi
	check "witness: IPv$v client socket TIME_WAIT (ss)" 1 \
		"$(netns_exec "$cl" ss -H -$v -tn state time-wait "( dport = :8080 )" | wc -l)"
	kill $spid 2>/dev/null
	wait $spid 2>/dev/null
done
check "witness: server dropped the SYNs of both SYN_SENT attempts (nft counter >= 2)" 1 \
	"$(netns_exec "$sv" nft list counter inet t syn9999 | awk '$1 == "packets" { print ($2 >= 2) }')"

# --- UDP ---------------------------------------------------------------
for v in 4 6; do
	if [ $v = 4 ]; then cla=10.0.1.2; sa=10.0.2.2; key=Udp:InDatagrams; else cla='[fd00:1::2]'; sa='[fd00:2::2]'; key=Udp6InDatagrams; fi
	in_before=$(snmp_counter "$cl" $key)
	# A receiver that never answers, then the client, which keeps its
	# socket (port 4000$v) open to receive the reply later: until killed
	# below, not for a fixed time (no -T, the child sleeps on).
	ip netns exec "$sv" socat -u UDP$v-RECV:7000 OPEN:"$dir/udp$v",creat >/dev/null &
	rpid=$!
	rx_ready() { netns_exec "$sv" ss -Huln "( sport = :7000 )" | grep -q .; }
	busywait 60000 rx_ready || fail "IPv$v UDP receiver up"
	ip netns exec "$cl" socat UDP$v-DATAGRAM:$sa:7000,bind=$cla:4000$v,reuseaddr SYSTEM:"echo first; sleep 100000" >/dev/null &
	upid=$!
	unrep() { ct_list "$rt" -p udp | grep -q "sport=4000$v dport=7000 .*UNREPLIED"; }
	if busywait 60000 unrep; then
		pass "IPv$v UDP: [UNREPLIED] after the first datagram"
	else
		fail "IPv$v UDP: no UNREPLIED entry"; ct_list "$rt"
	fi
	kill $rpid 2>/dev/null
	wait $rpid 2>/dev/null
	echo reply | netns_exec "$sv" socat -u - UDP$v-DATAGRAM:$cla:4000$v,bind=$sa:7000,reuseaddr
	replied() {
		ct_list "$rt" -p udp | grep "sport=4000$v dport=7000" | grep -vq UNREPLIED
	}
	if busywait 60000 replied; then
		pass "IPv$v UDP: replied (no [UNREPLIED]) after the server answered"
	else
		fail "IPv$v UDP: still UNREPLIED after the reply"; ct_list "$rt"
	fi
	# The router forwards the reply before the client counts it.
	got_reply() { [ "$(snmp_counter "$cl" $key)" -gt "$in_before" ]; }
	busywait 60000 got_reply
	check "witness: IPv$v client received the reply ($key)" 1 $(($(snmp_counter "$cl" $key) - in_before))
	kill $upid 2>/dev/null
	wait $upid 2>/dev/null
done

# --- ICMP errors -------------------------------------------------------
rel_before=$(ct_stat "$rt" related)
unr_before=$(snmp_counter "$cl" Icmp:InDestUnreachs)
# UDP to a closed port: the server answers port unreachable.
echo x | netns_exec "$cl" socat -u - UDP4-DATAGRAM:10.0.2.2:7777,bind=10.0.1.2:40777
gotit() { [ "$(snmp_counter "$cl" Icmp:InDestUnreachs)" -gt "$unr_before" ]; }
busywait 60000 gotit
check "port unreachable classified RELATED (fwctl ct stats related)" 1 $(($(ct_stat "$rt" related) - rel_before))
check "witness: client got 1 destination unreachable (/proc/net/snmp)" 1 \
	$(($(snmp_counter "$cl" Icmp:InDestUnreachs) - unr_before))

# A DF ping of 1400 bytes to a 1280-byte link: the router says frag needed.
rel_before=$(ct_stat "$rt" related)
unr_before=$(snmp_counter "$cl" Icmp:InDestUnreachs)
netns_exec "$cl" ping -q -c 1 -W 2 -M do -s 1400 10.0.2.2 >/dev/null 2>&1
busywait 60000 gotit
check "fragmentation needed classified RELATED" 1 $(($(ct_stat "$rt" related) - rel_before))
check "witness: client got 1 frag-needed (/proc/net/snmp)" 1 \
	$(($(snmp_counter "$cl" Icmp:InDestUnreachs) - unr_before))
check "no packet classified INVALID on the router" 0 "$(ct_stat "$rt" invalid)"

exit $ret
