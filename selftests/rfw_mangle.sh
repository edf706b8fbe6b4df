#!/bin/bash
# The mangle table in the kernel, on a router:
#
#   client 10.0.1.2 fd00:1::2 -- router (rfw) -- server 10.0.2.2 fd00:2::2
#
# Each case sends one UDP datagram over IPv4 and one over IPv6 from the
# client to the server (the server counts and drops them in nf_tables, so
# no port unreachable comes back).
# * MARK (mangle PREROUTING --set-mark V and V/M): filter FORWARD rules
#   matching --mark (exact and masked) drop or accept them; a mark selects a
#   policy route (ip rule fwmark) to an unreachable route, so the kernel
#   itself answers the client with a destination unreachable: witness of
#   skb->mark outside rfw. Witnesses: the server's counters, the client's
#   snmp counters, the mark rules' counters in `fwctl filter list -o json`.
# * TOS (mangle FORWARD --set-tos 0x20): the server's nft rule matching
#   `ip dscp cs1` / `ip6 dscp cs1` counts both; the IPv4 header checksum
#   stays right (the server's IP stack would drop the packet before its
#   input hook, and counts InHdrErrors).
# * TTL / hop limit: --ttl-set 33 in POSTROUTING (server sees 33),
#   --ttl-inc 5 in PREROUTING (64 + 5, then the router's forwarding takes
#   one: 68), --ttl-dec 2 in FORWARD (after the forwarding decrement: 61),
#   --ttl-set 7 in OUTPUT for the router's own datagrams. The server's nft
#   rules match `ip ttl N` / `ip6 hoplimit N`.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
checktool "nft --version" "nft"
checktool "python3 -V" "python3"
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }

netns_exec "$sv" nft -f - <<NFT || fail "server nft rules"
table inet w {
	counter u9001 { }
	counter u9002 { }
	counter u9003 { }
	counter u9004 { }
	counter u9005 { }
	counter any9010 { }
	counter tos9010 { }
	counter any9020 { }
	counter ttl9020 { }
	counter any9021 { }
	counter ttl9021 { }
	counter any9022 { }
	counter ttl9022 { }
	counter any9023 { }
	counter ttl9023 { }
	chain input {
		type filter hook input priority 0; policy accept;
		udp dport 9001 counter name "u9001"
		udp dport 9002 counter name "u9002"
		udp dport 9003 counter name "u9003"
		udp dport 9004 counter name "u9004"
		udp dport 9005 counter name "u9005"
		udp dport 9010 counter name "any9010"
		udp dport 9010 ip dscp cs1 counter name "tos9010"
		udp dport 9010 ip6 dscp cs1 counter name "tos9010"
		udp dport 9020 counter name "any9020"
		udp dport 9020 ip ttl 33 counter name "ttl9020"
		udp dport 9020 ip6 hoplimit 33 counter name "ttl9020"
		udp dport 9021 counter name "any9021"
		udp dport 9021 ip ttl 68 counter name "ttl9021"
		udp dport 9021 ip6 hoplimit 68 counter name "ttl9021"
		udp dport 9022 counter name "any9022"
		udp dport 9022 ip ttl 61 counter name "ttl9022"
		udp dport 9022 ip6 hoplimit 61 counter name "ttl9022"
		udp dport 9023 counter name "any9023"
		udp dport 9023 ip ttl 7 counter name "ttl9023"
		udp dport 9023 ip6 hoplimit 7 counter name "ttl9023"
		udp dport 9000-9099 drop
	}
}
NFT
netns_exec "$cl" ping -q -c 1 -W 10 10.0.2.2 >/dev/null || fail "IPv4 path up"
netns_exec "$cl" ping -6 -q -c 1 -W 10 fd00:2::2 >/dev/null || fail "IPv6 path up"
pk() { nft_packets "$sv" "$1" w; }
# send NS PORT: one datagram to the server's PORT over IPv4, one over IPv6.
send() {
	echo x | netns_exec "$1" socat -u - UDP4-DATAGRAM:10.0.2.2:"$2" 2>/dev/null
	echo x | netns_exec "$1" socat -u - "UDP6-DATAGRAM:[fd00:2::2]:$2" 2>/dev/null
}
# counted COUNTER N: wait until the server's COUNTER reaches N.
at_least() { [ "$(pk "$1")" -ge "$2" ] 2>/dev/null; }
counted() { busywait 60000 at_least "$1" "$2"; }

# --- MARK -----------------------------------------------------------------------
fw "$rt" mangle add --chain PREROUTING -p udp --dport 9001 --set-mark 0x10 || fail "mangle set-mark 0x10"
fw "$rt" mangle add --chain PREROUTING -p udp --dport 9003 --set-mark 0x20 || fail "mangle set-mark 0x20"
fw "$rt" mangle add --chain PREROUTING -p udp --dport 9004 --set-mark 0x30 || fail "mangle set-mark 0x30"
fw "$rt" mangle add --chain PREROUTING -p udp --dport 9005 --set-mark 0x100/0xf00 || fail "mangle set-mark 0x100/0xf00"
fw "$rt" filter add --chain FORWARD --mark 0x10 --drop || fail "filter --mark 0x10 --drop"
fw "$rt" filter add --chain FORWARD --mark 0x20/0xf0 --accept || fail "filter --mark 0x20/0xf0 --accept"
fw "$rt" filter add --chain FORWARD --mark 0x100/0xf00 --drop || fail "filter --mark 0x100/0xf00 --drop"
# The kernel's own use of the mark: mark 0x30 routes to an unreachable route.
ip -net "$rt" rule add fwmark 0x30 table 100
ip -net "$rt" route add unreachable 10.0.2.2/32 table 100
v6rules=0
if ip -net "$rt" -6 rule add fwmark 0x30 table 100 2>/dev/null; then
	ip -net "$rt" -6 route add unreachable fd00:2::2/128 table 100
	v6rules=1
else
	# Without CONFIG_IPV6_MULTIPLE_TABLES "table 100" would be the main
	# table: the unreachable route would cut IPv6 to the server for all.
	echo "# IPv6 policy routing is not in this kernel: the IPv6 fwmark route case is skipped"
fi

send "$cl" 9002
counted u9002 2
# 9003 last: its arrival witnesses that the router has taken the dropped
# 9001 and 9005 before it; then a short wait in case they went through.
for p in 9001 9005 9003; do send "$cl" $p; done
counted u9003 2
sleep 1
check "mark 0x10 dropped by --mark 0x10; unmarked passed; 0x20 passed --mark 0x20/0xf0; 0x100/0xf00 dropped (server counters 9001 9002 9003 9005)" \
	"0 2 2 0" "$(pk u9001) $(pk u9002) $(pk u9003) $(pk u9005)"
read -r m10 m20 < <(rule_info "$rt" filter FORWARD '\b(0x10|16)\b' packets '\b(0x20|32)\b' packets)
check "fwctl filter list -o json: --mark 0x10 rule counted both datagrams" 2 "$m10"
check "fwctl filter list -o json: --mark 0x20/0xf0 rule counted both datagrams" 2 "$m20"
for v in 4 6; do
	[ $v = 6 ] && [ $v6rules = 0 ] && continue
	if [ $v = 4 ]; then key=Icmp:InDestUnreachs to=UDP4-DATAGRAM:10.0.2.2:9004; else key=Icmp6InDestUnreachs to="UDP6-DATAGRAM:[fd00:2::2]:9004"; fi
	u0=$(snmp_counter "$cl" $key)
	echo x | netns_exec "$cl" socat -u - "$to" 2>/dev/null
	moved() { [ "$(snmp_counter "$cl" $key)" -gt "$u0" ]; }
	busywait 60000 moved
	check "IPv$v mark 0x30 took the fwmark policy route: the client got the router's unreachable ($key)" 1 \
		$(($(snmp_counter "$cl" $key) - u0))
done
check "witness: nothing marked 0x30 reached the server" 0 "$(pk u9004)"
fw "$rt" mangle flush || fail "mangle flush"
fw "$rt" filter flush || fail "filter flush"
send "$cl" 9004
counted u9004 2
check "after mangle flush the datagrams to 9004 are unmarked and reach the server" 2 "$(pk u9004)"

# --- TOS ---------------------------------------------------------------------------
h0=$(snmp_counter "$sv" Ip:InHdrErrors)
fw "$rt" mangle add --chain FORWARD -p udp --dport 9010 --set-tos 0x20 || fail "mangle --set-tos 0x20"
send "$cl" 9010
counted any9010 2
check "TOS 0x20 (DSCP cs1) seen by the server, IPv4 and IPv6 (nft ip/ip6 dscp)" "2 2" "$(pk any9010) $(pk tos9010)"
check "witness: no IPv4 header error at the server (Ip InHdrErrors)" 0 $(($(snmp_counter "$sv" Ip:InHdrErrors) - h0))
fw "$rt" mangle flush || fail "mangle flush"

# --- TTL / hop limit ---------------------------------------------------------------
fw "$rt" mangle add --chain POSTROUTING -p udp --dport 9020 --ttl-set 33 || fail "mangle --ttl-set 33"
fw "$rt" mangle add --chain PREROUTING -p udp --dport 9021 --ttl-inc 5 || fail "mangle --ttl-inc 5"
fw "$rt" mangle add --chain FORWARD -p udp --dport 9022 --ttl-dec 2 || fail "mangle --ttl-dec 2"
fw "$rt" mangle add --chain OUTPUT -p udp --dport 9023 --ttl-set 7 || fail "mangle OUTPUT --ttl-set 7"
for p in 9020 9021 9022; do send "$cl" $p; done
send "$rt" 9023
counted any9020 2
counted any9021 2
counted any9022 2
counted any9023 2
check "--ttl-set 33 in POSTROUTING: the server saw TTL/hop limit 33" "2 2" "$(pk any9020) $(pk ttl9020)"
check "--ttl-inc 5 in PREROUTING: the server saw 64 + 5 - 1 = 68" "2 2" "$(pk any9021) $(pk ttl9021)"
check "--ttl-dec 2 in FORWARD: the server saw 64 - 1 - 2 = 61" "2 2" "$(pk any9022) $(pk ttl9022)"
check "--ttl-set 7 in OUTPUT: the router's own datagrams left with 7" "2 2" "$(pk any9023) $(pk ttl9023)"
check "witness: still no IPv4 header error at the server (Ip InHdrErrors)" 0 $(($(snmp_counter "$sv" Ip:InHdrErrors) - h0))
fw "$rt" mangle flush || fail "mangle flush"

kernel_log_clean
exit $ret
