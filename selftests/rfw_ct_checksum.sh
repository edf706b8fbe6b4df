#!/bin/bash
# Checksums verified before tracking, at PRE_ROUTING (issue 16, item 2).
#
# Two identical lines, client -- router -- server (setup_router). In router
# A rfw tracks (`fwctl ct tracking on`, no rules); in router B nf_conntrack
# does (an nft rule counting `ct state invalid` in forward enables it
# there): the oracle (the two lines at the same time, each family in
# turn). In each line, for IPv4 and IPv6, a TCP connection
# runs between tcp_badrst.py's client and echo server; then the client
# forges a RST|ACK into it whose SEQ is exactly the server's last ACK (in
# window: it would end the connection) and whose TCP checksum is wrong,
# sent on its veth with AF_PACKET (the client's stack never sees it).
#
# The server's stack drops the RST (its `Tcp InCsumErrors` moves: the
# witness that the RST crossed the router). With checksums verified (the
# default: rfw's `checksum: on`, nf_conntrack_checksum=1), the router
# counts it INVALID (rfw: `malformed.bad_checksum` in `fwctl ct stats`;
# nf_conntrack: the nft invalid counter) and the connection stays
# ESTABLISHED in the router's table and on both ends (ss), and still
# carries data. With verification off (`fwctl ct checksum off`,
# nf_conntrack_checksum=0) the same RST ends the router's entry (CLOSE)
# although both ends keep the connection: what the setting prevents.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "nft --version" "nft"
checktool "conntrack --version" "conntrack-tools"
checktool "python3 -V" "python3"
badrst="${RFW_SELFTESTS:-$(dirname "$0")}/tcp_badrst.py"
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns ca ra sa cb rb sb || { fail "setup_ns"; exit $ret; }
setup_router "$ca" "$ra" "$sa" || fail "line A"
setup_router "$cb" "$rb" "$sb" || fail "line B"
fw "$ra" ct tracking on >/dev/null || fail "fwctl ct tracking on in router A"
netns_exec "$rb" nft -f - <<NFT || fail "nf_conntrack on in router B"
table inet ckw {
	counter invalid { }
	chain forward {
		type filter hook forward priority 0; policy accept;
		ct state invalid counter name invalid
	}
}
NFT
# A connection a RST closes stays listed (CLOSE) for the whole test, however
# slowly it runs: 10 s is both trackers' default.
fw "$ra" ct timeout tcp_close 900 >/dev/null || fail "fwctl ct timeout tcp_close 900 in router A"
netns_exec "$rb" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_close=900 ||
	fail "nf_conntrack_tcp_timeout_close=900 in router B"

# The defaults: verification on in both.
check "rfw's checksum setting by default" "checksum: on" \
	"$(fw "$ra" ct checksum | grep '^checksum:')"
check "nf_conntrack_checksum by default" 1 \
	"$(netns_exec "$rb" sysctl -n net.netfilter.nf_conntrack_checksum)"

# router_state LINE ROUTER FAMILY PORT: the TCP state of the router's entry
# for the connection to PORT ("none" without one).
router_state() {
	local st
	if [ "$1" = A ]; then
		st=$(ct_flows "$2" -p tcp | awk -v p="$4" '$1 == "tcp" && $6 == p { print $2; exit }')
	else
		st=$(netns_exec "$2" conntrack -L -f "ipv$3" -p tcp --dport "$4" 2>/dev/null |
			awk '$1 == "tcp" { print $4; exit }')
	fi
	echo "${st:-none}"
}
state_is() { [ "$(router_state "$1" "$2" "$3" "$4")" = "$5" ]; }

# invalid_count LINE ROUTER: the router's count of bad-checksum packets.
invalid_count() {
	local n
	if [ "$1" = A ]; then
		n=$(ct_stat "$2" malformed.bad_checksum)
		[ "$n" = missing ] && n=0 # (fwctl lists only reasons seen)
	else
		n=$(nft_packets "$2" invalid ckw)
	fi
	echo "$n"
}

csum_errors() { snmp_counter "$1" Tcp:InCsumErrors; }
csum_errors_above() { [ "$(csum_errors "$1")" -gt "$2" ]; }

# ends_established C S PORT: both ends list the connection ESTABLISHED.
ends_established() {
	[ -n "$(netns_exec "$1" ss -Htn state established "( dport = :$3 )")" ] &&
		[ -n "$(netns_exec "$2" ss -Htn state established "( sport = :$3 )")" ]
}

# ask CMD: one command to the client (the coprocess), its one-line answer.
ask() {
	local answer=""
	echo "$1" >&"${CL[1]}" && read -r -t 120 answer <&"${CL[0]}"
	echo "${answer:-no answer}"
}

# inject_bad_rst LINE C R S FAMILY PORT: the client forges the RST; waits
# until the server's stack dropped it. Prints what the client said.
inject_bad_rst() {
	local line=$1 c=$2 s=$4 errs answer
	errs=$(csum_errors "$s")
	answer=$(ask inject)
	echo "# line $line IPv$5: $answer"
	busywait 60000 csum_errors_above "$s" "$errs" ||
		fail "line $line IPv$5: the server saw no bad checksum (the RST did not cross the router)"
	[ "$(csum_errors "$s")" -eq $((errs + 1)) ] ||
		fail "line $line IPv$5: the server saw $(($(csum_errors "$s") - errs)) bad checksums, not 1"
	case "$answer" in injected*) ;; *) fail "line $line IPv$5: client: $answer" ;; esac
}

# run_case LINE C R S FAMILY: the whole story for one line and family.
run_case() {
	local line=$1 c=$2 r=$3 s=$4 v=$5 dst port inv answer pid
	if [ "$v" = 4 ]; then dst=10.0.2.2 port=8020; else dst=fd00:2::2 port=8021; fi
	local what="line $line (nf_conntrack) IPv$v"
	[ "$line" = A ] && what="line A (rfw) IPv$v"

	ip netns exec "$s" python3 -S "$badrst" server "$dst" "$port" </dev/null >/dev/null 2>&1 &
	busywait 60000 listening "$s" "$port" tcp || { fail "$what: server does not listen"; return; }
	coproc CL { ip netns exec "$c" python3 -S "$badrst" client veth0 "$dst" "$port" 2>&1; }
	pid=$CL_PID
	answer=""
	read -r -t 120 answer <&"${CL[0]}"
	if [ "$answer" != ready ]; then
		fail "$what: client: ${answer:-no answer}"
		kill "$pid" 2>/dev/null
		return
	fi
	busywait 60000 state_is "$line" "$r" "$v" "$port" ESTABLISHED ||
		fail "$what: router entry $(router_state "$line" "$r" "$v" "$port"), not ESTABLISHED"

	# Verification on: INVALID, counted, nothing changes.
	inv=$(invalid_count "$line" "$r")
	inject_bad_rst "$line" "$c" "$r" "$s" "$v" "$port"
	check "$what, checksum on: bad-checksum RST counted INVALID by the router" \
		$((inv + 1)) "$(invalid_count "$line" "$r")"
	check "$what, checksum on: router entry after the RST" ESTABLISHED \
		"$(router_state "$line" "$r" "$v" "$port")"
	if ends_established "$c" "$s" "$port"; then
		pass "$what, checksum on: both ends ESTABLISHED (ss)"
	else
		fail "$what, checksum on: an end lost the connection"
	fi
	check "$what, checksum on: the connection still carries data" alive "$(ask echo)"
	check "$what, checksum on: router entry after more data" ESTABLISHED \
		"$(router_state "$line" "$r" "$v" "$port")"

	# Verification off: the same RST ends the router's entry.
	if [ "$line" = A ]; then
		check "$what: fwctl ct checksum off" "checksum: off" \
			"$(fw "$r" ct checksum off | grep '^checksum:')"
	else
		netns_exec "$r" sysctl -qw net.netfilter.nf_conntrack_checksum=0 ||
			fail "$what: nf_conntrack_checksum=0"
	fi
	inv=$(invalid_count "$line" "$r")
	inject_bad_rst "$line" "$c" "$r" "$s" "$v" "$port"
	if busywait 60000 state_is "$line" "$r" "$v" "$port" CLOSE; then
		pass "$what, checksum off: the bad-checksum RST ended the router's entry (CLOSE)"
	else
		fail "$what, checksum off: router entry $(router_state "$line" "$r" "$v" "$port"), not CLOSE"
	fi
	check "$what, checksum off: not counted INVALID" "$inv" "$(invalid_count "$line" "$r")"
	if ends_established "$c" "$s" "$port"; then
		pass "$what, checksum off: both ends still ESTABLISHED (ss): the router alone was fooled"
	else
		fail "$what, checksum off: an end lost the connection"
	fi
	if [ "$line" = A ]; then
		fw "$r" ct checksum on >/dev/null || fail "$what: fwctl ct checksum on"
	else
		netns_exec "$r" sysctl -qw net.netfilter.nf_conntrack_checksum=1 ||
			fail "$what: nf_conntrack_checksum=1"
	fi

	echo quit >&"${CL[1]}"
	wait "$pid" 2>/dev/null
}

# The lines share nothing but the kernel: for each family their stories run
# at the same time, each in a subshell of its own (with its own client
# coprocess), whose exit status carries its failures.
for v in 4 6; do
	(
		run_case A "$ca" "$ra" "$sa" "$v"
		exit $ret
	) &
	case_a=$!
	(
		run_case B "$cb" "$rb" "$sb" "$v"
		exit $ret
	) &
	case_b=$!
	# (Each printed its own FAIL lines.)
	wait $case_a || ret=$ksft_fail
	wait $case_b || ret=$ksft_fail
done

check "rfw's checksum setting restored" "checksum: on" \
	"$(fw "$ra" ct checksum | grep '^checksum:')"
kernel_log_clean
exit $ret
