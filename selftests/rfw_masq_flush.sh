#!/bin/bash
# MASQUERADE bindings die with their address.
#
#   client 10.0.1.2 -- router (rfw, masquerade out of veth1) -- server 10.0.2.2
#
# A UDP flow from one client socket is masqueraded to the router's
# 10.0.2.1. Then 10.0.2.1 is removed from veth1 and 10.0.2.3 added: rfw
# must remove the connection (as nf_nat_masquerade does on NETDEV_DOWN of
# the address), so the next datagram of the same socket starts a new
# connection masqueraded to 10.0.2.3. Witness: the addresses the server's
# socket saw (socat's SOCAT_PEERADDR log), and rfw's own masq_flushed.
# The same over IPv6 (fd00:2::1 -> fd00:2::3).
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
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
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
netns_exec "$rt" fwctl nat add -o veth1 --masquerade || fail "nat add masquerade"
# The server never answers: the connection must outlive every step until
# the address goes, however slow, not the default 30 s of udp_unreplied.
fw "$rt" ct timeout udp_unreplied 3600 >/dev/null || fail "fwctl ct timeout udp_unreplied 3600"

# The server prints the peer address of every datagram it receives.
srv() { # srv FAMILY PORT LOG
	ip netns exec "$sv" python3 -S -c '
import socket, sys
fam = socket.AF_INET if sys.argv[1] == "4" else socket.AF_INET6
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(("0.0.0.0" if sys.argv[1] == "4" else "::", int(sys.argv[2])))
with open(sys.argv[3], "a", buffering=1) as log:
    while True:
        d, a = s.recvfrom(2048)
        log.write(a[0] + "\n")
' "$1" "$2" "$3" &
}
# The client sends one datagram per line of its stdin, from one socket.
cli() { # cli FAMILY DST PORT FIFO
	ip netns exec "$cl" python3 -S -c '
import socket, sys
fam = socket.AF_INET if sys.argv[1] == "4" else socket.AF_INET6
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(("0.0.0.0" if sys.argv[1] == "4" else "::", 40404))
for line in open(sys.argv[4]):
    s.sendto(line.encode(), (sys.argv[2], int(sys.argv[3])))
' "$1" "$2" "$3" "$4" &
}

for v in 4 6; do
	if [ $v = 4 ]; then dst=10.0.2.2 old=10.0.2.1 new=10.0.2.3 plen=24; else dst=fd00:2::2 old=fd00:2::1 new=fd00:2::3 plen=64; fi
	log=$dir/peers$v fifo=$dir/fifo$v
	: >"$log"
	mkfifo "$fifo"
	srv $v $((7060 + v)) "$log"
	busywait 60000 listening "$sv" $((7060 + v)) udp || fail "IPv$v server listens"
	cli $v $dst $((7060 + v)) "$fifo"
	exec 7>"$fifo"
	echo one >&7
	got1() { [ "$(wc -l <"$log")" -ge 1 ]; }
	busywait 60000 got1 || fail "IPv$v first datagram"
	check "IPv$v first datagram masqueraded to $old (server's view)" "$old" "$(sed -n 1p "$log")"
	f0=$(netns_exec "$rt" fwctl rules stats | awk '$1 == "masq_flushed" { print $2 }')
	ip -net "$rt" addr del $old/$plen dev veth1
	ip -net "$rt" addr add $new/$plen dev veth1 nodad
	[ $v = 6 ] && ip -net "$sv" route replace default via $new
	flushed() { [ "$(netns_exec "$rt" fwctl rules stats | awk '$1 == "masq_flushed" { print $2 }')" -gt "$f0" ]; }
	if busywait 60000 flushed; then pass "IPv$v the connection masqueraded to $old was removed (masq_flushed)"; else fail "IPv$v no masq_flushed"; fi
	gone() { ! netns_exec "$rt" fwctl ct list -p udp | grep -q "dport=$((7060 + v)) .*dst=$old "; }
	busywait 60000 gone && pass "IPv$v fwctl ct list has no binding to $old" || fail "IPv$v a binding to $old is left"
	echo two >&7
	got2() { [ "$(wc -l <"$log")" -ge 2 ]; }
	busywait 60000 got2 || fail "IPv$v second datagram"
	check "IPv$v the same socket's next datagram is masqueraded to $new (server's view)" "$new" "$(sed -n 2p "$log")"
	exec 7>&-
	# Put the old address back for the next family's routes.
	ip -net "$rt" addr del $new/$plen dev veth1
	ip -net "$rt" addr add $old/$plen dev veth1 nodad
	[ $v = 6 ] && ip -net "$sv" route replace default via $old
	[ $v = 4 ] && ip -net "$sv" route replace default via 10.0.2.1
done

if dmesg_splats; then fail "kernel log has a splat"; else pass "kernel log clean"; fi
exit $ret
