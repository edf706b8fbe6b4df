#!/bin/bash
# Bulk data through each NAT kind: a 2 MiB random file, sent over
# TCP (socat) from the client to the server (upload) and from the server to
# the client (download, still a connection the client opened; the two at
# the same time, but for REDIRECT, one after the other), arrives byte for
# byte (cmp), through
#   DNAT        client -> router 10.0.1.1:PORT, to the server (PREROUTING)
#   SNAT        client -> server, source rewritten to 10.0.2.1 (POSTROUTING)
#   MASQUERADE  client -> server, source the router's address on veth1
#   REDIRECT    client -> server:PORT, taken by a server on the router itself
# over links of MTU 1500 and 9000 (IPv4); DNAT and MASQUERADE also over
# IPv6 at MTU 1500. Then, if ethtool is there, DNAT and MASQUERADE again with
# GRO on on every veth (the router gets aggregated packets) and with TX
# checksum offload off (every packet carries a full checksum that NAT must
# update).
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
# Each transfer's connection is read in `fwctl ct list` after it closed:
# its entry must outlive the slowest step until then, whatever the
# closing states' default timeouts (tcp_close 10 s, tcp_last_ack 30 s, ...).
fw "$rt" ct timeout tcp_fin_wait 3600 tcp_close_wait 3600 tcp_last_ack 3600 tcp_time_wait 3600 \
	tcp_close 3600 >/dev/null || fail "fwctl ct timeout"
netns_exec "$cl" ping -q -c 1 -W 10 10.0.2.2 >/dev/null || fail "IPv4 path up"
netns_exec "$cl" ping -6 -q -c 1 -W 10 fd00:2::2 >/dev/null || fail "IPv6 path up"

set_mtu() {
	ip -net "$cl" link set veth0 mtu "$1"
	ip -net "$rt" link set veth0 mtu "$1"
	ip -net "$rt" link set veth1 mtu "$1"
	ip -net "$sv" link set veth0 mtu "$1"
}
# offload SETTINGS...: ethtool -K on every veth of the line.
offload() {
	ip netns exec "$cl" ethtool -K veth0 "$@" >/dev/null &&
		ip netns exec "$rt" ethtool -K veth0 "$@" >/dev/null &&
		ip netns exec "$rt" ethtool -K veth1 "$@" >/dev/null &&
		ip netns exec "$sv" ethtool -K veth0 "$@" >/dev/null
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
# start KIND FAMILY DIRECTION LABEL: starts one 2 MiB transfer, server and
# client in the background; finish checks it. Few process starts per
# transfer (they are slow under emulation): the client retries its connect
# until the server listens instead of polling `ss`, for 2 minutes at most
# (600 tries 0.2 s apart); -T 60 ends either side only if the transfer
# stalls for a minute. Each transfer has its own ports and files, so that
# an upload and a download through the same rules can run at once. (Both
# ends start with nsenter, netns_exec's way into the namespace, directly:
# $! is socat's pid.)
started=0 checked=0
t_kind=() t_v=() t_label=() t_port=() t_sport=() t_spid=() t_cpid=()
start() {
	local kind=$1 v=$2 way=$3 label=$4 i=$started srv_ns lport listen connect
	port=$((port + 1))
	sport=$((sport + 1))
	# Where the server runs, what it listens on, what the client connects to.
	if [ "$kind" = REDIRECT ]; then srv_ns=$rt lport=7000; else srv_ns=$sv lport=$port; fi
	if [ $v = 4 ]; then
		case $kind in DNAT) connect=TCP4:10.0.1.1:$port ;; *) connect=TCP4:10.0.2.2:$port ;; esac
		listen=TCP4-LISTEN:$lport,reuseaddr
	else
		case $kind in DNAT) connect="TCP6:[fd00:1::1]:$port" ;; *) connect="TCP6:[fd00:2::2]:$port" ;; esac
		listen=TCP6-LISTEN:$lport,reuseaddr,ipv6only=1
	fi
	connect="$connect,sourceport=$sport,reuseaddr,connect-timeout=60,retry=600,interval=0.2"
	: >"$dir/out.$i"
	if [ "$way" = up ]; then
		nsenter --net="/run/netns/$srv_ns" socat -T 60 -u "$listen" OPEN:"$dir/out.$i",creat,trunc </dev/null 2>"$dir/srv.err.$i" &
		t_spid[i]=$!
		nsenter --net="/run/netns/$cl" socat -T 60 -u OPEN:"$dir/data" "$connect" </dev/null 2>"$dir/cl.err.$i" &
	else
		nsenter --net="/run/netns/$srv_ns" socat -T 60 -u OPEN:"$dir/data" "$listen" </dev/null 2>"$dir/srv.err.$i" &
		t_spid[i]=$!
		nsenter --net="/run/netns/$cl" socat -T 60 -u "$connect" OPEN:"$dir/out.$i",creat,trunc </dev/null 2>"$dir/cl.err.$i" &
	fi
	t_cpid[i]=$!
	t_kind[i]=$kind t_v[i]=$v t_label[i]=$label t_port[i]=$port t_sport[i]=$sport
	started=$((started + 1))
}

# finish: waits for the transfers started since the last finish and checks
# each: what arrived, and its connection's translation in `fwctl ct list`
# (the reply tuple; one listing for all of them).
finish() {
	local i crc src flows got what
	for ((i = checked; i < started; i++)); do
		wait "${t_cpid[i]}"
		crc=$?
		# A client that never connected leaves the server waiting for it.
		[ $crc -eq 0 ] || kill "${t_spid[i]}" 2>/dev/null
		wait "${t_spid[i]}"
		src=$?
		if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$dir/data" "$dir/out.$i"; then
			pass "${t_label[i]}: 2 MiB arrived identical"
		else
			fail "${t_label[i]}: client exit $crc, server exit $src, $(stat -c %s "$dir/out.$i") bytes; $(head -c 300 "$dir/cl.err.$i" "$dir/srv.err.$i")"
		fi
		rm -f "$dir/out.$i"
	done
	flows=$(ct_flows "$rt" -p tcp)
	for ((i = checked; i < started; i++)); do
		got=$(while read -r _ _ _ _ osp _ rs rd rsp rdp _; do
			[ "$osp" = "${t_sport[i]}" ] && { echo "$rs $rd $rsp $rdp"; break; }
		done <<<"$flows")
		case "${t_kind[i]}/${t_v[i]}" in
		DNAT/4) what="10.0.2.2 10.0.1.2 ${t_port[i]} ${t_sport[i]}" ;;
		DNAT/6) what="fd00:2::2 fd00:1::2 ${t_port[i]} ${t_sport[i]}" ;;
		SNAT/4 | MASQUERADE/4) what="10.0.2.2 10.0.2.1 ${t_port[i]}" ;;
		SNAT/6 | MASQUERADE/6) what="fd00:2::2 fd00:2::1 ${t_port[i]}" ;;
		REDIRECT/4) what="10.0.1.1 10.0.1.2 7000 ${t_sport[i]}" ;;
		REDIRECT/6) what="fd00:1::1 fd00:1::2 7000 ${t_sport[i]}" ;;
		esac
		# SNAT and MASQUERADE may move the source port: compare without it.
		case ${t_kind[i]} in SNAT | MASQUERADE) got=${got% *} ;; esac
		check "${t_label[i]}: fwctl ct list reply tuple shows the ${t_kind[i]}" "$what" "$got"
	done
	checked=$started
}

# both KIND FAMILY LABEL: an upload and a download ("LABEL up", "LABEL
# down"), at the same time but for REDIRECT: its server port on the
# router (7000) takes one listener at a time.
both() {
	start "$1" "$2" up "$3 up"
	[ "$1" = REDIRECT ] && finish
	start "$1" "$2" down "$3 down"
	finish
}

# Checksum errors over the whole test, at every receiver (client, server,
# and the router's own server for REDIRECT).
csum() { echo $(($(snmp_counter "$cl" Tcp:InCsumErrors) + $(snmp_counter "$sv" Tcp:InCsumErrors) + $(snmp_counter "$rt" Tcp:InCsumErrors))); }
csum0=$(csum)

for mtu in 1500 9000; do
	set_mtu $mtu
	for kind in DNAT SNAT MASQUERADE REDIRECT; do
		rules $kind 4 || fail "IPv4 $kind rules"
		both $kind 4 "IPv4 $kind MTU $mtu"
	done
done
set_mtu 1500
for kind in DNAT MASQUERADE; do
	rules $kind 6 || fail "IPv6 $kind rules"
	both $kind 6 "IPv6 $kind MTU 1500"
done

if ethtool --version >/dev/null 2>&1; then
	if offload gro on gso on tso on; then
		for kind in DNAT MASQUERADE; do
			rules $kind 4 || fail "IPv4 $kind rules"
			both $kind 4 "IPv4 $kind GSO/GRO on"
		done
	else
		echo "SKIP-CASE: ethtool -K gro/gso/tso on not supported on veth"
	fi
	offload gro off
	if offload tx off; then
		for kind in DNAT MASQUERADE; do
			rules $kind 4 || fail "IPv4 $kind rules"
			both $kind 4 "IPv4 $kind TX checksum offload off"
		done
		rules MASQUERADE 6 || fail "IPv6 MASQUERADE rules"
		start MASQUERADE 6 up "IPv6 MASQUERADE TX checksum offload off up"
		finish
	else
		echo "SKIP-CASE: ethtool -K tx off not supported on veth"
	fi
else
	echo "SKIP-CASE: offload cases (no ethtool)"
fi
check "witness: no TCP checksum error at any receiver (Tcp InCsumErrors of client, server, router)" 0 $(($(csum) - csum0))

kernel_log_clean
exit $ret
