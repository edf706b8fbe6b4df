#!/bin/bash
# Bulk data through each NAT kind (issue 6): a 2 MiB random file, sent over
# TCP (socat) from the client to the server (upload) and from the server to
# the client (download, still a connection the client opened), arrives
# byte for byte (cmp), through
#   DNAT        client -> router 10.0.1.1:PORT, to the server (PREROUTING)
#   SNAT        client -> server, source rewritten to 10.0.2.1 (POSTROUTING)
#   MASQUERADE  client -> server, source the router's address on veth1
#   REDIRECT    client -> server:PORT, taken by a server on the router itself
# over links of MTU 1500 and 9000 (IPv4), and at MTU 1500 over IPv6. Then,
# if ethtool is there, DNAT and MASQUERADE again with GRO on on every veth
# (the router gets aggregated packets) and with TX checksum offload off (every
# packet carries a full checksum that NAT must update).
# Witnesses: cmp of what arrived, the receiving host's TCP checksum error
# counter (/proc/net/snmp Tcp InCsumErrors) and `fwctl ct list`, where each
# transfer's connection shows its translation.
#
#   client 10.0.1.2 fd00:1::2 -- router (rfw) -- server 10.0.2.2 fd00:2::2
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "socat -V" "socat"
dir=$(mktemp -d)
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }
head -c 2097152 /dev/urandom >"$dir/data" || { fail "random file"; exit $ret; }
ip netns exec "$cl" ping -q -c 1 -W 5 10.0.2.2 >/dev/null || fail "IPv4 path up"
ip netns exec "$cl" ping -6 -q -c 1 -W 5 fd00:2::2 >/dev/null || fail "IPv6 path up"

set_mtu() {
	ip -net "$cl" link set veth0 mtu "$1"
	ip -net "$rt" link set veth0 mtu "$1"
	ip -net "$rt" link set veth1 mtu "$1"
	ip -net "$sv" link set veth0 mtu "$1"
}
# offload SETTINGS...: ethtool -K on every veth of the line.
offload() {
	ip netns exec "$cl" ethtool -K veth0 "$@" &&
		ip netns exec "$rt" ethtool -K veth0 "$@" &&
		ip netns exec "$rt" ethtool -K veth1 "$@" &&
		ip netns exec "$sv" ethtool -K veth0 "$@"
}

# The rules of each kind, all in the router; a kind is set up alone.
rules() { # rules KIND FAMILY
	fw "$rt" nat flush || return 1
	case "$1/$2" in
	DNAT/4) fw "$rt" nat add -4 -p tcp -d 10.0.1.1 --dport 6000:6999 --to-destination 10.0.2.2 ;;
	DNAT/6) fw "$rt" nat add -6 -p tcp -d fd00:1::1 --dport 6000:6999 --to-destination fd00:2::2 ;;
	SNAT/4) fw "$rt" nat add -4 -p tcp -o veth1 --to-source 10.0.2.1 ;;
	SNAT/6) fw "$rt" nat add -6 -p tcp -o veth1 --to-source fd00:2::1 ;;
	MASQUERADE/*) fw "$rt" nat add -$2 -p tcp -o veth1 --masquerade ;;
	REDIRECT/*) fw "$rt" nat add -$2 -p tcp -i veth0 --dport 6000:6999 --redirect --to-ports 7000 ;;
	esac
}

port=6000
sport=42000
# transfer KIND FAMILY DIRECTION LABEL: one 2 MiB transfer, checked.
transfer() {
	local kind=$1 v=$2 way=$3 label=$4 lport connect rx_ns csum0 got what
	port=$((port + 1))
	sport=$((sport + 1))
	# Where the server runs, what it listens on, what the client connects to.
	if [ "$kind" = REDIRECT ]; then srv_ns=$rt lport=7000; else srv_ns=$sv lport=$port; fi
	if [ $v = 4 ]; then
		case $kind in DNAT) connect=TCP4:10.0.1.1:$port ;; *) connect=TCP4:10.0.2.2:$port ;; esac
		listen=TCP4-LISTEN:$lport,reuseaddr key=Tcp:InCsumErrors
	else
		case $kind in DNAT) connect="TCP6:[fd00:1::1]:$port" ;; *) connect="TCP6:[fd00:2::2]:$port" ;; esac
		listen=TCP6-LISTEN:$lport,reuseaddr,ipv6only=1 key=Tcp:InCsumErrors
	fi
	connect="$connect,sourceport=$sport,reuseaddr,connect-timeout=20"
	rm -f "$dir/out"
	if [ "$way" = up ]; then
		rx_ns=$srv_ns
		ip netns exec "$srv_ns" timeout 120 socat -u "$listen" OPEN:"$dir/out",creat,trunc </dev/null 2>"$dir/srv.err" &
	else
		rx_ns=$cl
		ip netns exec "$srv_ns" timeout 120 socat -u OPEN:"$dir/data" "$listen" </dev/null 2>"$dir/srv.err" &
	fi
	local spid=$!
	if ! busywait 10000 listening "$srv_ns" $lport; then
		fail "$label: server did not listen"
		kill $spid 2>/dev/null
		return
	fi
	csum0=$(snmp_counter "$rx_ns" $key)
	if [ "$way" = up ]; then
		ip netns exec "$cl" timeout 120 socat -u OPEN:"$dir/data" "$connect" </dev/null 2>"$dir/cl.err"
	else
		ip netns exec "$cl" timeout 120 socat -u "$connect" OPEN:"$dir/out",creat,trunc </dev/null 2>"$dir/cl.err"
	fi
	local crc=$?
	wait $spid
	local src=$?
	if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$dir/data" "$dir/out"; then
		pass "$label: 2 MiB arrived identical"
	else
		fail "$label: client exit $crc, server exit $src, $(stat -c %s "$dir/out" 2>/dev/null || echo no) bytes, $(cat "$dir/cl.err" "$dir/srv.err" | head -2)"
	fi
	check "$label: no TCP checksum error at the receiver ($key)" 0 $(($(snmp_counter "$rx_ns" $key) - csum0))
	# The connection's translation, as fwctl ct list shows it.
	got=$(ct_flows "$rt" -p tcp | awk -v sp=$sport '$5 == sp { print $7, $8, $9, $10 }' | head -1)
	case "$kind/$v" in
	DNAT/4) what="10.0.2.2 10.0.1.2 $port $sport" ;;
	DNAT/6) what="fd00:2::2 fd00:1::2 $port $sport" ;;
	SNAT/4 | MASQUERADE/4) what="10.0.2.2 10.0.2.1 $port" ;;
	SNAT/6 | MASQUERADE/6) what="fd00:2::2 fd00:2::1 $port" ;;
	REDIRECT/4) what="10.0.1.1 10.0.1.2 7000 $sport" ;;
	REDIRECT/6) what="fd00:1::1 fd00:1::2 7000 $sport" ;;
	esac
	# SNAT and MASQUERADE may move the source port: compare without it.
	case $kind in SNAT | MASQUERADE) got=${got% *} ;; esac
	check "$label: fwctl ct list reply tuple shows the $kind" "$what" "$got"
}

for mtu in 1500 9000; do
	set_mtu $mtu
	for kind in DNAT SNAT MASQUERADE REDIRECT; do
		rules $kind 4 || fail "IPv4 $kind rules"
		for way in up down; do
			transfer $kind 4 $way "IPv4 $kind MTU $mtu $way"
		done
	done
done
set_mtu 1500
for kind in DNAT SNAT MASQUERADE REDIRECT; do
	rules $kind 6 || fail "IPv6 $kind rules"
	for way in up down; do
		transfer $kind 6 $way "IPv6 $kind MTU 1500 $way"
	done
done

if ethtool --version >/dev/null 2>&1; then
	if offload gro on gso on tso on; then
		for kind in DNAT MASQUERADE; do
			rules $kind 4 || fail "IPv4 $kind rules"
			for way in up down; do
				transfer $kind 4 $way "IPv4 $kind GSO/GRO on $way"
			done
		done
	else
		echo "SKIP-CASE: ethtool -K gro/gso/tso on not supported on veth"
	fi
	offload gro off
	if offload tx off; then
		for kind in DNAT MASQUERADE; do
			for v in 4 6; do
				rules $kind $v || fail "IPv$v $kind rules"
				for way in up down; do
					transfer $kind $v $way "IPv$v $kind TX checksum offload off $way"
				done
			done
		done
	else
		echo "SKIP-CASE: ethtool -K tx off not supported on veth"
	fi
else
	echo "SKIP-CASE: offload cases (no ethtool)"
fi

kernel_log_clean
exit $ret
