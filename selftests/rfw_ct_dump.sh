#!/bin/bash
# Dumps of a changing table: `fwctl ct list` (text and JSON) shows every
# connection that lives through the dump exactly once, while entries are
# created, expire and are flushed around it, in the same chains.
#
# * Namespace gen holds 10 000 long-lived UDP entries (udp_unreplied set
#   to an hour, so that no step's duration matters) and churns short-lived
#   ones beside them: TCP SYNs that nobody answers, each a new SYN_SENT
#   entry that expires after 1 s.
# * Namespace nb, a neighbour, creates 300 UDP entries with a 1 s timeout
#   and flushes them, over and over: its removals (expiries and flushes)
#   happen in the chains that gen's dumps walk (the table is shared by all
#   namespaces).
# * rfw is loaded with 1024 buckets, so chains are long (about 20 nodes)
#   and every dump call ends in the middle of some chain's neighbourhood.
# Each of two dumps (text, then JSON) must show all 10 000 long-lived
# entries, each once; the churn counters must have moved during every
# dump (else it tested nothing). Witnesses: the sender's own count and Udp OutDatagrams.
# RFW_CT_DUMPS=N: N dumps, text and JSON in turn (default 2). run.sh does
# not pass it on; in the VM, from the repository's root:
#   selftests/run.sh -- env RFW_CT_DUMPS=6 bash selftests/rfw_ct_dump.sh
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "python3 -V" "python3"
flows="python3 -S ${RFW_SELFTESTS:-$(dirname "$0")}/udp_flows.py"
dir=$(mktemp -d)
trap rfw_cleanup EXIT

modprobe rfw hashsize=1024 || { fail "modprobe rfw hashsize=1024"; exit $ret; }
setup_ns gen nb || { fail "setup_ns"; exit $ret; }
for n in "$gen" "$nb"; do
	ip -net "$n" link add d0 type dummy
	ip -net "$n" addr add 10.9.0.1/16 dev d0
	ip -net "$n" link set d0 up
	ip -net "$n" neigh add 10.9.0.2 lladdr 02:00:00:00:00:02 dev d0
	fw "$n" ct tracking on >/dev/null || fail "fwctl ct tracking on"
	fw "$n" ct limit 100000 >/dev/null || fail "fwctl ct limit"
done
fw "$gen" ct timeout udp_unreplied 3600 >/dev/null || fail "udp_unreplied 3600 in gen"
fw "$gen" ct timeout tcp_syn_sent 1 >/dev/null || fail "tcp_syn_sent 1 in gen"
fw "$nb" ct timeout udp_unreplied 1 >/dev/null || fail "udp_unreplied 1 in nb"

out_before=$(snmp_counter "$gen" Udp:OutDatagrams)
sent=$(netns_exec "$gen" $flows 10.9.0.2 5000 10000 20000)
check "witness: sender sent 10000 datagrams" 10000 "$sent"
check "witness: gen's IP stack sent 10000 UDP datagrams (Udp OutDatagrams)" 10000 \
	$(($(snmp_counter "$gen" Udp:OutDatagrams) - out_before))
check "fwctl ct count before the churn" 10000 "$(fw "$gen" ct count)"

# The churn stops when $dir/stop appears, or after 20 minutes at most.
# gen: SYNs from ever new source ports to a port nobody answers; closing
# the socket at once sends nothing more, so each entry expires after 1 s.
ip netns exec "$gen" python3 -S -c '
import os, socket, sys, time
stop, end, port = sys.argv[1], time.time() + 1200, 0
while not os.path.exists(stop) and time.time() < end:
    for _ in range(50):
        s = socket.socket()
        s.setblocking(False)
        s.bind(("10.9.0.1", 30000 + port % 20000))
        port += 1
        s.connect_ex(("10.9.0.2", 6000))
        s.close()
    time.sleep(0.05)
' "$dir/stop" </dev/null >/dev/null 2>&1 &
# nb: 300 flows, then a flush, again and again.
ip netns exec "$nb" bash -c '
	end=$((SECONDS + 1200))
	while [ ! -e "$1" ] && [ $SECONDS -lt $end ]; do
		$2 10.9.0.2 7000 300 40000 >/dev/null
		fwctl ct flush >/dev/null
	done' churn "$dir/stop" "$flows" </dev/null >/dev/null 2>&1 &
# nb_removed: nb's entries flushed or expired so far (one fwctl call: a
# process start costs under emulation).
nb_removed() {
	local d e
	read -r d e < <(ct_stats "$nb" deleted expired)
	echo $((d + e))
}
churning() { [ "$(ct_stat "$gen" expired)" -gt 0 ] && [ "$(ct_stat "$nb" deleted)" -gt 0 ]; }
busywait 120000 churning || fail "churn under way (gen expired $(ct_stat "$gen" expired), nb deleted $(ct_stat "$nb" deleted))"

# once_each FILE: "DISTINCT REPEATED" over the long-lived entries (UDP to
# port 5000) of a dump saved as "SPORT" lines.
once_each() {
	sort "$1" | uniq -c | awk '{ n++; if ($1 > 1) r++ } END { print n + 0, r + 0 }'
}
for i in $(seq "${RFW_CT_DUMPS:-2}"); do
	read -r new0 exp0 < <(ct_stats "$gen" new expired)
	del0=$(nb_removed)
	if [ $((i % 2)) = 0 ]; then
		kind=json
		netns_exec "$gen" fwctl -o json ct list 2>"$dir/err" | python3 -S -c '
import json, sys
for c in json.load(sys.stdin):
    o = c["orig"]
    if c["proto_num"] == 17 and o.get("dport") == 5000:
        print(o["sport"])' >"$dir/sports"
	else
		kind=text
		netns_exec "$gen" fwctl ct list 2>"$dir/err" |
			awk '$1 == "udp" { for (i = 1; i <= NF; i++) if ($i ~ /^sport=/) { s = $i; d = $(i + 1); break }
				if (d == "dport=5000") print substr(s, 7) }' >"$dir/sports"
	fi
	read -r new exp < <(ct_stats "$gen" new expired)
	new=$((new - new0)) exp=$((exp - exp0)) del=$(($(nb_removed) - del0))
	read -r distinct repeated < <(once_each "$dir/sports")
	echo "# dump $i ($kind): $(wc -l <"$dir/sports") long-lived lines, $distinct distinct, $repeated repeated;" \
		"meanwhile gen created $new and expired $exp entries, nb removed $del; fwctl: $(tr '\n' ' ' <"$dir/err")"
	check "dump $i ($kind): every long-lived entry once" "10000 10000 0" \
		"$(wc -l <"$dir/sports") $distinct $repeated"
	if [ "$new" -gt 0 ] && [ "$exp" -gt 0 ] && [ "$del" -gt 0 ]; then
		pass "dump $i ($kind): the table changed during the dump (gen +$new new, -$exp expired; nb -$del)"
	else
		fail "dump $i ($kind): too little churn during the dump (gen +$new new, -$exp expired; nb -$del)"
	fi
done
touch "$dir/stop"
check "fwctl ct count of gen's UDP entries after the churn" 10000 \
	"$(netns_exec "$gen" fwctl ct list -p udp 2>/dev/null | wc -l)"
kernel_log_clean
exit $ret
