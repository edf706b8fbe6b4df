#!/bin/bash
# Differential: rfw against the kernel's nf_conntrack, same traffic.
#
# Two identical lines, client -- router -- server, with the same addresses
# (separate namespaces). In router A rfw tracks; in router B nf_conntrack
# does (an nft `ct state` rule enables it in that namespace; rfw, loaded
# for the whole kernel, tracks there too but is not asked). The same
# traffic runs through both, with fixed source ports, in both lines at once
# (they share nothing; each line's steps run in order):
# a TCP connection closed by both ends (TIME_WAIT), one held open
# (ESTABLISHED), a SYN the server drops (SYN_SENT), a one-way UDP flow
# (UNREPLIED), a UDP exchange (replied), an ICMP echo. Then
# `conntrack -L` in B and `fwctl ct list` in A are normalised to
# "proto state dport flags [packets]" and must be equal, line for line.
# Both trackers get the same long timeouts first, so that no entry expires
# however slowly the traffic runs, and the comparison polls until the
# closing handshakes have settled in both.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "nft --version" "nft"
checktool "conntrack --version" "conntrack-tools"
checktool "python3 -V" "python3"
dir=$(mktemp -d)
cleanup() {
	kill_ns_procs
	cleanup_all_ns
	rm -rf "$dir"
	modprobe -r rfw 2>/dev/null
}
trap cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns ca ra sa cb rb sb || { fail "setup_ns"; exit $ret; }
setup_router "$ca" "$ra" "$sa" || fail "line A"
setup_router "$cb" "$rb" "$sb" || fail "line B"
# rfw tracks in router A without rules, as nf_conntrack does in B for its
# one (non-matching) rule.
fw "$ra" ct tracking on >/dev/null || fail "fwctl ct tracking on in router A"
netns_exec "$rb" sysctl -qw net.netfilter.nf_conntrack_acct=1 2>/dev/null
netns_exec "$rb" nft -f - <<NFT || fail "nf_conntrack on in router B"
table inet difftest {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ct state invalid counter
	}
}
NFT
netns_exec "$rb" sysctl -qw net.netfilter.nf_conntrack_acct=1 || fail "nf_conntrack_acct=1 in B"
# One process per namespace: every process start is dear under emulation.
netns_exec "$ra" sh -c 'for t in udp_unreplied udp_replied icmp tcp_syn_sent tcp_established \
	tcp_time_wait; do fwctl ct timeout $t 900 >/dev/null || exit 1; done' || fail "fwctl ct timeout ... 900 in router A"
netns_exec "$rb" sh -c 'for t in udp_timeout udp_timeout_stream icmp_timeout tcp_timeout_syn_sent \
	tcp_timeout_established tcp_timeout_time_wait; do sysctl -qw net.netfilter.nf_conntrack_$t=900 || exit 1; done' ||
	fail "nf_conntrack_*timeout*=900 in router B"

traffic() { # traffic CLIENT SERVER: fails if the UDP exchange got no echo.
	local c=$1 s=$2
	netns_exec "$s" nft -f - <<NFT
table inet t {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 9999 drop
	}
}
NFT
	netns_exec "$c" ping -q -c 3 -i 0.2 -W 10 10.0.2.2 >/dev/null
	# TCP closed by both ends.
	ip netns exec "$s" socat -u TCP4-LISTEN:8001,reuseaddr OPEN:/dev/null &
	busywait 60000 listening "$s" 8001
	echo data | netns_exec "$c" socat -u - TCP4:10.0.2.2:8001,sourceport=41001
	# TCP held open until the test ends.
	ip netns exec "$s" socat -u TCP4-LISTEN:8002,reuseaddr OPEN:/dev/null &
	busywait 60000 listening "$s" 8002
	ip netns exec "$c" socat -u SYSTEM:"echo hi; sleep 100000" TCP4:10.0.2.2:8002,sourceport=41002 &
	# A SYN the server drops (retransmitted until the test ends).
	ip netns exec "$c" socat -u OPEN:/dev/null TCP4:10.0.2.2:9999,sourceport=41003,connect-timeout=100000 2>/dev/null &
	# UDP one way (the server listens and never answers: no ICMP).
	ip netns exec "$s" socat -u UDP4-RECV:8004 OPEN:/dev/null &
	busywait 60000 listening "$s" 8004 udp
	echo one | netns_exec "$c" socat -u - UDP4-DATAGRAM:10.0.2.2:8004,bind=10.0.1.2:41004
	# UDP exchange: the server echoes once; the client waits for the echo
	# (socat's would give up half a second after its own datagram).
	ip netns exec "$s" python3 -S -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.2.2", 8005))
d, a = s.recvfrom(100)
s.sendto(d, a)' &
	busywait 60000 listening "$s" 8005 udp
	[ "$(udp_probe "$c" 41005 10.0.2.2 8005 60)" = reply ]
}

normalise() { # proto state dport flags packets-orig packets-reply (no timeout, no TCP counters)
	awk '{
		proto = $1; state = ($4 ~ /^[A-Z_]+$/) ? $4 : "-"
		dport = ""; n = 0; flags = ""; po = ""; pr = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^dport=/ && dport == "") dport = $i
			if ($i ~ /^type=/ && dport == "") dport = $i
			if ($i ~ /^packets=/) { if (po == "") po = $i; else pr = $i }
			if ($i ~ /^\[(ASSURED|UNREPLIED)\]$/) flags = flags $i
		}
		if (proto == "tcp") { po = ""; pr = "" }
		print proto, state, dport, flags, po, pr
	}' | sort
}

# Both lines at once (a subshell each: its result comes back as its exit
# status; the processes it leaves, which hold connections, live in the
# lines' namespaces until the test ends).
traffic "$ca" "$sa" &
traffic_a=$!
traffic "$cb" "$sb" &
traffic_b=$!
wait $traffic_a || fail "line A: UDP exchange: no echo"
wait $traffic_b || fail "line B: UDP exchange: no echo"
# The tables settle (closing handshakes, the held connection's data, SYN
# retransmissions seen) at their own pace: compare until they agree.
agree() {
	ct_list "$ra" | normalise > "$dir/rfw"
	netns_exec "$rb" conntrack -L 2>/dev/null | normalise > "$dir/nfct"
	[ "$(wc -l < "$dir/nfct")" -ge 6 ] && cmp -s "$dir/nfct" "$dir/rfw"
}
busywait 60000 agree
echo "# rfw (router A):"; sed 's/^/#   /' "$dir/rfw"
echo "# nf_conntrack (router B):"; sed 's/^/#   /' "$dir/nfct"
# Memory per connection in this kernel: object sizes of
# both slab caches (nf_conntrack's extensions are kmalloc'ed separately).
grep -E '^(nf_conntrack|rfw_conn) ' /proc/slabinfo | awk '{ print "# slab", $1, "objsize", $4 }'
if [ "$(wc -l < "$dir/nfct")" -ge 6 ] && diff -u "$dir/nfct" "$dir/rfw"; then
	pass "rfw and nf_conntrack agree on $(wc -l < "$dir/rfw") connections"
else
	fail "rfw and nf_conntrack differ (or too few entries)"
fi
exit $ret
