#!/bin/bash
# Hairpin NAT with ICMP redirects on (issue 16 item 3, reliability review
# F15): a client and a server on the router's LAN interface; the client
# reaches the server through the router's public address (DNAT), and the
# router masquerades the hairpinned connection on the same interface, so
# each packet has both DNAT and SNAT. Forwarding out of the interface a
# packet came in on makes `ip_forward` send an ICMP redirect *before* the
# FORWARD hook: a nested transmission through LOCAL_OUT and POST_ROUTING
# in the middle of the forwarded packet's hooks. And `ip_forward`'s
# skb_cow() gives every cloned skb (a local TCP sender's, over veth) a new
# head between PRE_ROUTING and POST_ROUTING. Both used to cost the packet
# its per-CPU record; the fallback lookup cannot find a connection with
# both DNAT and SNAT by the tuple it has between the two, so the packet
# left un-SNATed.
#
#   lan: client 10.0.1.2, server 10.0.1.3 (one namespace, one veth)
#     -- router veth0 10.0.1.1/24 (rfw; send_redirects=1), public 192.0.2.1 (dummy)
#
# The router's redirect rate limit is lifted (net.ipv4.route.redirect_load=0
# and redirect_silence=0: about one redirect per jiffy and peer; restored at
# exit) so that redirects are nested in many packets, established ones
# included, not in the first nine only. 200 TCP connections to 192.0.2.1:8080,
# all held open; the server answers each with the source it saw.
# Witnesses: for each connection the source (address and port) at the
# server equals its binding in `fwctl -o json ct list`; the server never
# saw the client's own address; the router's Icmp OutRedirects moved;
# `fwctl ct stats`: no slot miss, no failed fallback lookup.
# A second round queues both directions at FORWARD to nf_queue on another
# CPU: the reinjected packets miss their records and the fallback must
# find each one's connection by its tuple between DNAT and SNAT.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "python3 -V" "python3"
checktool "nf_queue -h" "nf_queue (scripts/build-tools.sh, libmnl)"
dir=$(mktemp -d)
load0=$(sysctl -n net.ipv4.route.redirect_load 2>/dev/null)
silence0=$(sysctl -n net.ipv4.route.redirect_silence 2>/dev/null)
cleanup() {
	[ -n "$load0" ] && sysctl -qw net.ipv4.route.redirect_load="$load0"
	[ -n "$silence0" ] && sysctl -qw net.ipv4.route.redirect_silence="$silence0"
	rfw_cleanup
}
trap cleanup EXIT

N=200

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns lan rt || { fail "setup_ns"; exit $ret; }
ip link add veth0 netns "$lan" type veth peer name veth0 netns "$rt" || { fail "veth"; exit $ret; }
ip -net "$lan" addr add 10.0.1.2/24 dev veth0
ip -net "$lan" addr add 10.0.1.3/24 dev veth0
ip -net "$rt" addr add 10.0.1.1/24 dev veth0
ip -net "$lan" link set veth0 up
ip -net "$rt" link set veth0 up
ip -net "$rt" link add wan type dummy
ip -net "$rt" addr add 192.0.2.1/24 dev wan
ip -net "$rt" link set wan up
ip -net "$lan" route add default via 10.0.1.1
netns_exec "$rt" sysctl -qw net.ipv4.ip_forward=1
netns_exec "$rt" sysctl -qw net.ipv4.conf.all.send_redirects=1
netns_exec "$rt" sysctl -qw net.ipv4.conf.veth0.send_redirects=1
# Global (init_net) sysctls: restored by the EXIT trap.
if [ -n "$load0" ] && [ -n "$silence0" ]; then
	# (ip_rt_send_redirect: with no silence the count restarts each jiffy.)
	sysctl -qw net.ipv4.route.redirect_load=0
	sysctl -qw net.ipv4.route.redirect_silence=0
else
	echo "# no net.ipv4.route.redirect_* sysctls: redirects stay rate-limited"
fi

fw "$rt" nat add --chain PREROUTING -4 -p tcp -d 192.0.2.1 --dport 8080 --to-destination 10.0.1.3:80 ||
	fail "nat add DNAT"
fw "$rt" nat add -4 -o veth0 -s 10.0.1.0/24 -d 10.0.1.3 -p tcp --dport 80 --masquerade ||
	fail "nat add hairpin MASQUERADE"

# The server: 10.0.1.3:80, answers each connection with "ADDR PORT" of
# its peer and keeps it open; logs every peer it accepted.
ip netns exec "$lan" python3 -S -c '
import selectors, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.1.3", 80))
s.listen(512)
keep = []
with open(sys.argv[1], "a", buffering=1) as log:
    while True:
        c, peer = s.accept()
        log.write("%s %d\n" % peer)
        try:
            c.sendall(("%s %d\n" % peer).encode())
        except OSError:
            pass
        keep.append(c)
' "$dir/accepted" </dev/null >/dev/null 2>&1 &
busywait 60000 listening "$lan" 80 tcp || fail "server listens"

# stats: "slot_hits slot_misses fallback_found fallback_not_found" of the router.
stats() {
	netns_exec "$rt" fwctl ct stats | awk '{ v[$1] = $2 }
		END { print v["slot_hits"] + 0, v["slot_misses"] + 0, v["fallback_found"] + 0, v["fallback_not_found"] + 0 }'
}

# connect_round NAME N: the client makes N connections from 10.0.1.2 to
# 192.0.2.1:8080, one after the other, each held open; writes "CPORT
# SEEN_ADDR SEEN_PORT" per connection (SEEN: what the server reported, "-"
# if nothing came within 20 s) to $dir/NAME.clients. Checks every answer,
# the server's view and each connection's binding in `fwctl ct list`, then
# lets the client close them.
connect_round() {
	local name=$1 n=$2 bad acc0
	acc0=$(wc -l <"$dir/accepted")
	ip netns exec "$lan" python3 -S -c '
import os, socket, sys, time
n, out, done = int(sys.argv[1]), sys.argv[2], sys.argv[3]
keep, lines = [], []
for _ in range(n):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.bind(("10.0.1.2", 0))
    c.settimeout(20)
    seen = "- -"
    try:
        c.connect(("192.0.2.1", 8080))
        buf = b""
        while not buf.endswith(b"\n"):
            b = c.recv(100)
            if not b:
                break
            buf += b
        if buf.endswith(b"\n"):
            seen = buf.decode().strip()
    except OSError:
        pass
    lines.append("%d %s" % (c.getsockname()[1], seen))
    keep.append(c)
with open(out + ".tmp", "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename(out + ".tmp", out)
deadline = time.time() + 900
while not os.path.exists(done) and time.time() < deadline:
    time.sleep(0.2)
' "$n" "$dir/$name.clients" "$dir/$name.done" </dev/null >/dev/null 2>&1 &
	busywait 600000 test -f "$dir/$name.clients" || fail "$name: the client made its $n connections"

	check "$name: connections answered" "$n" "$(awk '$2 != "-"' "$dir/$name.clients" | wc -l)"
	check "$name: every answer names the router's LAN address" "$n" \
		"$(awk '$2 == "10.0.1.1"' "$dir/$name.clients" | wc -l)"
	check "$name: the server never saw the client's own address" 0 \
		"$(awk '$1 == "10.0.1.2"' "$dir/accepted" | wc -l)"
	check "$name: the server accepted one connection per client connection" "$n" \
		"$(($(wc -l <"$dir/accepted") - acc0))"

	# Each connection's binding: the reply tuple's destination of the
	# entry whose original tuple is 10.0.1.2:CPORT -> 192.0.2.1:8080.
	netns_exec "$rt" fwctl -o json ct list 2>/dev/null | python3 -S -c '
import json, sys
for c in json.load(sys.stdin):
    o, r = c["orig"], c["reply"]
    if c["proto_num"] == 6 and o["src"] == "10.0.1.2" and o["dst"] == "192.0.2.1" and o.get("dport") == 8080:
        print(o["sport"], r["dst"], r["dport"], r["src"], r["sport"])
' >"$dir/bindings"
	bad=$(awk 'NR == FNR { b[$1] = $2 " " $3; dnat[$1] = $4 " " $5; next }
		{ want = ($1 in b) ? b[$1] : "none"
		  if ($2 " " $3 != want) { printf " %s:seen=%s,binding=%s", $1, $2 " " $3, want; n++ }
		  else if (dnat[$1] != "10.0.1.3 80") { printf " %s:dnat=%s", $1, dnat[$1]; n++ } }
		END { if (n) print "" }' "$dir/bindings" "$dir/$name.clients")
	if [ -z "$bad" ]; then
		pass "$name: each connection's source at the server is its binding in ct list ($n)"
	else
		fail "$name: source at the server differs from the ct list binding:$bad"
	fi
	touch "$dir/$name.done"
}

# Round 1: nested redirects and re-headed skbs; every packet keeps its record.
redirects0=$(snmp_counter "$rt" Icmp:OutRedirects)
read -r h0 m0 f0 n0 < <(stats)
connect_round nested "$N"
redirects=$(($(snmp_counter "$rt" Icmp:OutRedirects) - redirects0))
echo "# router sent $redirects ICMP redirects"
if [ "$redirects" -gt 0 ]; then
	pass "the router sent ICMP redirects nested in forwarded packets ($redirects)"
else
	fail "no ICMP redirect sent: the test did not exercise the nested transmission"
fi
read -r h1 m1 f1 n1 < <(stats)
echo "# nested: ct stats deltas: slot_hits $((h1 - h0)) slot_misses $((m1 - m0))" \
	"fallback_found $((f1 - f0)) fallback_not_found $((n1 - n0))"
check "nested: no packet missed its slot record" 0 $((m1 - m0))
check "nested: no fallback lookup failed" 0 $((n1 - n0))
if [ $((h1 - h0)) -ge $((4 * N)) ]; then
	pass "nested: slot hits at POST_ROUTING: every forwarded packet ($((h1 - h0)) >= $((4 * N)))"
else
	fail "nested: slot_hits $((h1 - h0)) < $((4 * N))"
fi

# Round 2: both directions queued at FORWARD (rfw's QUEUE target) to
# nf_queue on another CPU: each reinjected packet meets POST_ROUTING
# without its record, carrying the tuple between DNAT and SNAT (client to
# server, or its inverse), which neither of the connection's tuples is:
# only the side index finds it. The SYN (no SNAT binding yet) is found by
# the inverse of its tuple.
ncpu=$(nproc)
queue_cpu=0
[ "$ncpu" -ge 2 ] && queue_cpu=1
Q=50
fw "$rt" filter add --chain FORWARD -p tcp -d 10.0.1.3 --dport 80 --queue 0 ||
	fail "filter add --queue (to the server)"
fw "$rt" filter add --chain FORWARD -p tcp -s 10.0.1.3 --sport 80 --queue 0 ||
	fail "filter add --queue (from the server)"
# (`ip netns exec` and taskset exec: $! is nf_queue's pid.)
ip netns exec "$rt" taskset -c "$queue_cpu" nf_queue -q 0 -t 600 >/dev/null 2>&1 &
qpid=$!
busywait 60000 eval "ip netns exec $rt cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null |
	awk '\$1 == 0 { f = 1 } END { exit !f }'" || fail "queued: nf_queue listens on queue 0"
read -r h0 m0 f0 n0 < <(stats)
connect_round queued "$Q"
read -r h1 m1 f1 n1 < <(stats)
queued=$(rule_packets "$rt" filter FORWARD queue)
echo "# queued: $queued packets queued; ct stats deltas: slot_hits $((h1 - h0))" \
	"slot_misses $((m1 - m0)) fallback_found $((f1 - f0)) fallback_not_found $((n1 - n0))"
if [ $((f1 - f0)) -ge "$queued" ] && [ "$queued" -ge $((3 * Q)) ]; then
	pass "queued: fallback lookups found every queued packet ($((f1 - f0)) >= $queued)"
else
	fail "queued: fallback_found $((f1 - f0)), queued $queued (want >= $((3 * Q)))"
fi
check "queued: no fallback lookup failed" 0 $((n1 - n0))
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null
fw "$rt" filter flush || fail "filter flush"

kernel_log_clean
exit $ret
