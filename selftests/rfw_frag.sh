#!/bin/bash
# Fragments (issue 16, item 1): rfw holds the kernel's defragmentation
# (nf_defrag_ipv4/6) in a namespace while it tracks there, as nf_conntrack
# does, so datagrams are tracked, filtered and NATed whole and fragmented
# again on output. Two lines with the same addresses (setup_router, MTU
# 1500 everywhere: every 3000- and 4000-byte datagram crosses as fragments):
#
#   client -- router (rfw)       -- server
#   client2 -- router2 (nftables) -- server2     the oracle
#
# * Defragmentation follows tracking: with `ct tracking auto` and no table
#   the router forwards fragments as they come (its Ip ReasmOKs stays);
#   `ct tracking on` makes it reassemble them (ReasmOKs moves); `auto`
#   gives it back (ReasmOKs stays again); on and auto once more (the
#   references balance). Each datagram is seen whole by the server.
# * MASQUERADE and DNAT of a 4000-byte UDP datagram, IPv4 and IPv6, both
#   ways: the server logs only the router's address as the peer; the
#   connected client socket gets the 4000-byte echo (so it came back from
#   the address it sent to: un-SNAT, un-DNAT); the router reassembled
#   (IPv4 ReasmOKs; nf_defrag_ipv6 counts nothing in snmp6) and the end
#   hosts reassembled what the router fragmented again (their ReasmOKs).
#   `fwctl ct stats` counts no fragment and no truncated UDP as malformed.
# * FORWARD `-p udp --dport 161 --drop`, policy accept: a 3000-byte
#   datagram to 161 does not reach the server (its log and Udp InDatagrams
#   count only the one to 162 sent after it).
# * A tiny first TCP fragment (IPv4: 8 bytes of TCP, the ports only; IPv6:
#   the 20-byte TCP header alone, the least RFC 7112 lets through) with
#   FORWARD `-p tcp --dport 22 --drop`: the SYN to 22 does not reach the
#   server (Tcp InSegs counts only the control SYN to 2222, sent after it
#   the same way).
# * INPUT `--ct-state invalid --drop`: the router's own 4000-byte datagram
#   to the server gets its fragmented echo back to its socket (IPv6
#   included: without defragmentation LOCAL_IN saw IPv6 fragments).
# * rfw unloaded while the router still tracks: its references go with it
#   (the router forwards fragments unreassembled again).
# Every case runs through router2's nftables too (masquerade, dnat, the
# same drops, `ct state invalid drop`), which must give the same answers;
# the two lines' cases of each part run at the same time.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "nft --version" "nft"
checktool "python3 -V" "python3"
dir=$(mktemp -d)
trap rfw_cleanup EXIT

# udp_server.py LOG PORT...: UDP on each PORT, IPv4 and IPv6; logs
# "PORT PEER PEERPORT LENGTH" per datagram; echoes what port 7000 gets.
cat >"$dir/udp_server.py" <<'EOF'
import selectors, socket, sys
log = open(sys.argv[1], "a", buffering=1)
sel = selectors.DefaultSelector()
for port in map(int, sys.argv[2:]):
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        sel.register(s, selectors.EVENT_READ, port)
while True:
    for key, _ in sel.select():
        data, peer = key.fileobj.recvfrom(65535)
        log.write("%d %s %d %d\n" % (key.data, peer[0], peer[1], len(data)))
        if key.data == 7000:
            key.fileobj.sendto(data, peer)
EOF
# udp_client.py DST PORT SIZE WAIT: SIZE bytes over a connected socket;
# prints "reply LENGTH" (the reply came from DST:PORT), "timeout",
# "refused", or "sent" with WAIT 0.
cat >"$dir/udp_client.py" <<'EOF'
import socket, sys
dst, port, size, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((dst, port))
s.send(b"x" * size)
if wait == 0:
    print("sent")
    sys.exit(0)
s.settimeout(wait)
try:
    print("reply %d" % len(s.recv(65535)))
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
EOF
# tcp_frag.py SRC DST PORT...: per PORT, a TCP SYN with 32 bytes of data
# from SRC in two fragments, the first as small as the family allows (IPv4:
# 8 bytes of TCP; IPv6: the 20-byte header, 24 bytes with data).
cat >"$dir/tcp_frag.py" <<'EOF'
import random, socket, struct, sys
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
src, dst = sys.argv[1], sys.argv[2]
v6 = ":" in dst
fam = socket.AF_INET6 if v6 else socket.AF_INET
s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
sa, da = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
for port in map(int, sys.argv[3:]):
    sport = random.randint(40000, 60000)
    tcp = struct.pack("!HHIIBBHHH", sport, port, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + b"x" * 32
    if v6:
        ph = sa + da + struct.pack("!IxxxB", len(tcp), 6)
    else:
        ph = sa + da + struct.pack("!xBH", 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
    ident = random.randint(1, 0xFFFF)
    first = 24 if v6 else 8
    for off, more in ((0, 1), (first, 0)):
        data = tcp[off:first] if more else tcp[off:]
        if v6:
            frag = struct.pack("!BBHI", 6, 0, off | more, ident)
            pkt = struct.pack("!IHBB", 6 << 28, len(frag) + len(data), 44, 64) + sa + da + frag + data
        else:
            # IP_HDRINCL: the kernel fills in the total length and checksum.
            pkt = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(data), ident,
                              (0x2000 if more else 0) | off // 8, 64, 6, 0) + sa + da + data
        s.sendto(pkt, (dst, 0))
EOF

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv cl2 rt2 sv2 || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || fail "line 1 (rfw)"
setup_router "$cl2" "$rt2" "$sv2" || fail "line 2 (nftables)"
for s in "$sv" "$sv2"; do
	ip netns exec "$s" python3 -S "$dir/udp_server.py" "$dir/log.$s" 7000 161 162 </dev/null >/dev/null 2>&1 &
done
for s in "$sv" "$sv2"; do
	busywait 60000 listening "$s" 162 udp || fail "UDP server in ${s%-*}"
done

# lines NS: datagrams the server of NS logged so far.
lines() { [ -f "$dir/log.$1" ] && wc -l <"$dir/log.$1" || echo 0; }
# logged_more NS N: the server of NS logged more than N datagrams.
logged_more() { [ "$(lines "$1")" -gt "$2" ]; }
# udp_to NS_CLIENT NS_SERVER DST PORT SIZE [WAIT]: one datagram; waits
# until the server logged it (or 60 s) and prints the client's result
# (WAIT: seconds for the echo, default 30; 0 for none: "sent"), " / ",
# then the server's line ("PORT PEER PEERPORT LENGTH").
udp_to() {
	local c=$1 s=$2 n r
	n=$(lines "$s")
	r=$(netns_exec "$c" python3 -S "$dir/udp_client.py" "$3" "$4" "$5" "${6:-30}")
	busywait 60000 logged_more "$s" "$n"
	echo "$r / $(sed -n "$((n + 1))p" "$dir/log.$s")"
}
snmp() { snmp_counter "$@"; }
# ct_stat0 NS NAME: `fwctl ct stats` NAME, 0 when not listed (zero).
ct_stat0() { local v; v=$(ct_stat "$1" "$2"); [ "$v" = missing ] && v=0; echo "$v"; }

# --- defragmentation follows tracking (router 1 only) ----------------------
# A forwarded datagram reassembled by the router counts in its Ip ReasmOKs.
defrag_round() { # defrag_round WHAT EXPECTED_REASM
	local r0 got
	r0=$(snmp "$rt" Ip:ReasmOKs)
	got=$(udp_to "$cl" "$sv" 10.0.2.2 162 4000 0)
	check "$1: the server got the 4000-byte datagram from the client" "162 10.0.1.2" "$(echo "${got#* / }" | awk '{ print $1, $2 }')"
	check "$1: router Ip ReasmOKs moved by" "$2" $(($(snmp "$rt" Ip:ReasmOKs) - r0))
}
defrag_round "no tracking" 0
fw "$rt" ct tracking on >/dev/null || fail "ct tracking on"
defrag_round "ct tracking on" 1
fw "$rt" ct tracking auto >/dev/null || fail "ct tracking auto"
defrag_round "ct tracking auto again" 0
fw "$rt" ct tracking on >/dev/null || fail "ct tracking on (2)"
fw "$rt" ct tracking on >/dev/null || fail "ct tracking on (3, no second reference)"
defrag_round "ct tracking on, twice" 1
fw "$rt" ct tracking auto >/dev/null || fail "ct tracking auto (2)"
defrag_round "ct tracking auto: every reference given back" 0

# --- NAT: masquerade and DNAT --------------------------------------------
fw "$rt" ct timeout udp_unreplied 3600 udp_replied 3600 >/dev/null || fail "fwctl ct timeout"
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add -4 masquerade"
fw "$rt" nat add -6 -o veth1 --masquerade || fail "nat add -6 masquerade"
fw "$rt" nat add -4 -p udp -d 10.0.1.1 --dport 7001 --to-destination 10.0.2.2:7000 || fail "nat add -4 DNAT"
fw "$rt" nat add -6 -p udp -d fd00:1::1 --dport 7001 --to-destination "[fd00:2::2]:7000" || fail "nat add -6 DNAT"
netns_exec "$rt2" nft -f - <<NFT || fail "router2 nftables"
table inet twin {
	chain pre {
		type nat hook prerouting priority -100;
		ip daddr 10.0.1.1 udp dport 7001 dnat ip to 10.0.2.2:7000
		ip6 daddr fd00:1::1 udp dport 7001 dnat ip6 to [fd00:2::2]:7000
	}
	chain post {
		type nat hook postrouting priority 100;
		oifname "veth1" masquerade
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		udp dport 161 drop
		tcp dport 22 drop
	}
	chain input {
		type filter hook input priority 0; policy accept;
		ct state invalid drop
	}
}
NFT
fw "$rt" filter add --chain FORWARD -p udp --dport 161 --drop || fail "filter add FORWARD udp 161 drop"
fw "$rt" filter add --chain FORWARD -p tcp --dport 22 --drop || fail "filter add FORWARD tcp 22 drop"
fw "$rt" filter add --chain INPUT --ct-state invalid --drop || fail "filter add INPUT invalid drop"

# both_lines FUNCTION: FUNCTION 1 (rfw's line) and FUNCTION 2 (nftables')
# at the same time, each in a subshell: the lines share nothing, and each
# case's witnesses are its own line's. A subshell's exit status carries
# its failures (it printed their FAIL lines).
both_lines() {
	local one two
	(
		"$1" 1
		exit $ret
	) &
	one=$!
	(
		"$1" 2
		exit $ret
	) &
	two=$!
	wait $one || ret=$ksft_fail
	wait $two || ret=$ksft_fail
}

# shellcheck disable=SC2317 # run by both_lines
nat_cases() { # nat_cases LINE
	local line=$1 c r s who v sa ra rs reasm to dst port what r0 s0 c0 got n m
	if [ "$line" = 1 ]; then c=$cl r=$rt s=$sv who=rfw; else c=$cl2 r=$rt2 s=$sv2 who=nftables; fi
	for v in 4 6; do
		if [ $v = 4 ]; then
			sa=10.0.2.2 ra=10.0.1.1 rs=10.0.2.1 reasm=Ip:ReasmOKs
		else
			sa=fd00:2::2 ra=fd00:1::1 rs=fd00:2::1 reasm=Ip6ReasmOKs
		fi
		for to in "$sa 7000 masquerade" "$ra 7001 DNAT+masquerade"; do
			read -r dst port what <<<"$to"
			r0=$(snmp "$r" Ip:ReasmOKs) s0=$(snmp "$s" $reasm) c0=$(snmp "$c" $reasm)
			got=$(udp_to "$c" "$s" "$dst" "$port" 4000)
			check "$who IPv$v $what of 4000 bytes: the reply reached the client socket; the server saw the router" \
				"reply 4000 / 7000 $rs 4000" "$(echo "$got" | awk '{ print $1, $2, $3, $4, $5, $7 }')"
			n=$(($(snmp "$s" $reasm) - s0)) m=$(($(snmp "$c" $reasm) - c0))
			if [ $n -ge 1 ] && [ $m -ge 1 ]; then
				pass "$who IPv$v $what: fragmented on both wires (server $reasm +$n, client +$m)"
			else
				fail "$who IPv$v $what: server $reasm +$n, client +$m (want >= 1 each)"
			fi
			if [ $v = 4 ]; then
				n=$(($(snmp "$r" Ip:ReasmOKs) - r0))
				if [ $n -ge 2 ]; then pass "$who IPv4 $what: the router reassembled both ways (ReasmOKs +$n)"
				else fail "$who IPv4 $what: router ReasmOKs +$n, want >= 2"; fi
			fi
		done
	done
}
both_lines nat_cases
check "rfw: no fragment tracked as malformed" 0 "$(ct_stat0 "$rt" malformed.fragment)"
check "rfw: no datagram tracked as truncated UDP" 0 "$(ct_stat0 "$rt" malformed.udp_truncated)"

# --- FORWARD drops by port ---------------------------------------------------
# shellcheck disable=SC2317 # run by both_lines
forward_cases() { # forward_cases LINE
	local line=$1 c s who v sa ca key u0 n t0
	if [ "$line" = 1 ]; then c=$cl s=$sv who=rfw; else c=$cl2 s=$sv2 who=nftables; fi
	for v in 4 6; do
		if [ $v = 4 ]; then
			sa=10.0.2.2 ca=10.0.1.2 key=Udp:InDatagrams
		else
			sa=fd00:2::2 ca=fd00:1::2 key=Udp6InDatagrams
		fi
		# UDP: 3000 bytes to 161 (dropped), then to 162 (the control).
		u0=$(snmp "$s" $key) n=$(lines "$s")
		netns_exec "$c" python3 -S "$dir/udp_client.py" "$sa" 161 3000 0 >/dev/null
		udp_to "$c" "$s" "$sa" 162 3000 0 >/dev/null
		check "$who IPv$v FORWARD --dport 161 --drop: only the datagram to 162 reached the server" \
			"162" "$(sed -n "$((n + 1)),\$p" "$dir/log.$s" | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')"
		check "$who IPv$v: server Udp InDatagrams counted the one to 162 alone" 1 $(($(snmp "$s" $key) - u0))
		# TCP: the SYN to 22 in tiny fragments (dropped), then to 2222.
		t0=$(snmp "$s" Tcp:InSegs)
		netns_exec "$c" python3 -S "$dir/tcp_frag.py" "$ca" "$sa" 22 2222 ||
			fail "$who IPv$v: raw fragments not sent"
		more_segs() { [ "$(snmp "$s" Tcp:InSegs)" -gt "$t0" ]; }
		busywait 60000 more_segs || fail "$who IPv$v: the control SYN to 2222 never reached the server"
		check "$who IPv$v tiny first TCP fragment, --dport 22 --drop: the server's Tcp InSegs counted only the SYN to 2222" \
			1 $(($(snmp "$s" Tcp:InSegs) - t0))
	done
}
both_lines forward_cases

# --- INPUT --ct-state invalid --drop: a fragmented reply to a local socket -----
# shellcheck disable=SC2317 # run by both_lines
input_cases() { # input_cases LINE
	local line=$1 r s who sa got
	if [ "$line" = 1 ]; then r=$rt s=$sv who=rfw; else r=$rt2 s=$sv2 who=nftables; fi
	for sa in 10.0.2.2 fd00:2::2; do
		got=$(udp_to "$r" "$s" "$sa" 7000 4000)
		check "$who INPUT --ct-state invalid --drop: the router's socket got the fragmented echo from $sa" \
			"reply 4000" "${got%% / *}"
	done
}
both_lines input_cases
check "rfw: still no fragment tracked as malformed" 0 "$(ct_stat0 "$rt" malformed.fragment)"

# --- unload while tracking: the references go with rfw ---------------------
kill_ns_procs
modprobe -r rfw || fail "modprobe -r rfw while the router tracks"
ip netns exec "$sv" python3 -S "$dir/udp_server.py" "$dir/log.$sv" 7000 161 162 </dev/null >/dev/null 2>&1 &
busywait 60000 listening "$sv" 162 udp || fail "UDP server restarted"
defrag_round "rfw unloaded" 0
kernel_log_clean
exit $ret
