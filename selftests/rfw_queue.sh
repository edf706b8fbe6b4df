#!/bin/bash
# QUEUE end to end (issue 16 items 3 and 4): packets handed to a user-space
# listener (the kernel selftests' nf_queue, scripts/build-tools.sh) and
# reinjected, maybe on another CPU, keep their own connection and NAT
# binding; --queue-bypass lets packets through when nobody listens, and
# without it they are dropped.
#
#   client 10.0.1.2 -- router 10.0.1.1 | 10.0.2.1 (rfw: MASQUERADE on veth1) -- server 10.0.2.2
#
# Two UDP flows from the same client to the same server port, packets of
# the same size, sent in turn (A, B, A, B, ...: the next packet very likely
# gets the `sk_buff` the last one freed, the case that fooled the old
# per-CPU slot), each datagram echoed by the server:
# * round 1: rfw's own QUEUE target (filter FORWARD `--queue 0`);
# * round 2: an nftables `queue num 1` rule in the router's forward hook
#   (after rfw's FORWARD hook, before its POST_ROUTING one).
# nf_queue runs pinned to another CPU than the sender where there are two,
# so reinjection happens in task context, on another CPU than the
# softirq that received the packet. Witnesses: the server's own record of
# each datagram (source address and port, payload), the client's echoes,
# `fwctl ct list` (each flow's binding), `fwctl ct stats` (slot_hits,
# slot_misses, fallback_found, fallback_not_found).
# * round 3: rfw's QUEUE from the mangle table at POST_ROUTING, whose
#   hook goes on with MASQUERADE and the confirmation: the queue takes
#   effect when rfw's hook ends, so the listener gets the packet
#   masqueraded and the reinjected packet (past every rfw hook) reaches
#   the server as the router, with the flow's binding.
# * round 4: `--queue 7 --queue-bypass` with no listener passes traffic;
#   `--queue 7` drops it (the rule counts it, the server sees nothing).
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "nf_queue -h" "nf_queue (scripts/build-tools.sh, libmnl)"
checktool "nft --version" "nftables"
checktool "python3 -V" "python3"
dir=$(mktemp -d)
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }

ncpu=$(nproc)
send_cpu=0 queue_cpu=0
[ "$ncpu" -ge 2 ] && queue_cpu=1
echo "# $ncpu CPUs: sender on CPU $send_cpu, nf_queue on CPU $queue_cpu"

# One round trip at a time per packet keeps the server's socket from
# overflowing under emulation (no loss to tell apart from a NAT error).
fw "$rt" ct timeout udp_unreplied 3600 udp_replied 3600 >/dev/null || fail "fwctl ct timeout"
fw "$rt" nat add -4 -o veth1 --masquerade || fail "nat add masquerade"

# The server: records "ADDR PORT TAG LEN" per datagram, echoes it back.
ip netns exec "$sv" python3 -S -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000))
with open(sys.argv[1], "a", buffering=1) as log:
    while True:
        data, peer = s.recvfrom(2048)
        tag = chr(data[0]) if data and all(b == data[0] for b in data) else "?"
        log.write("%s %d %s %d\n" % (peer[0], peer[1], tag, len(data)))
        s.sendto(data, peer)
' "$dir/sink" </dev/null >/dev/null 2>&1 &
busywait 60000 listening "$sv" 9000 udp || fail "server listens"
: >"$dir/sink"

# send ROUNDS SPORT:TAG...: from the client, ROUNDS times each flow in turn
# one 200-byte datagram of its TAG to the server, waiting for its echo
# (10 s); prints "TAG SENT ECHOED" per flow (an echo counts if it is the
# flow's own bytes).
send() {
	local rounds=$1
	shift
	netns_exec "$cl" taskset -c "$send_cpu" python3 -S -c '
import socket, sys
rounds, flows = int(sys.argv[1]), [f.split(":") for f in sys.argv[2:]]
socks = []
for sport, tag in flows:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.0.1.2", int(sport)))
    s.connect(("10.0.2.2", 9000))
    s.settimeout(10)
    socks.append((s, tag.encode() * 200, [0, 0]))
for _ in range(rounds):
    for s, payload, n in socks:
        s.send(payload)
        n[0] += 1
        try:
            if s.recv(2048) == payload:
                n[1] += 1
        except socket.timeout:
            pass
for (sport, tag), (_, _, n) in zip(flows, socks):
    print(tag, n[0], n[1])
' "$rounds" "$@"
}

# sink_ports TAG: the distinct "ADDR PORT" the server saw TAG's datagrams from.
sink_ports() {
	awk -v t="$1" '$3 == t { print $1, $2 }' "$dir/sink" | sort -u
}

# bindings SPORT...: the router's binding of the client's flow from each
# SPORT to the server, one line each, as "ADDR PORT" (the reply tuple's
# destination), from one `fwctl -o json ct list`; "none" if there is no
# such connection.
bindings() {
	netns_exec "$rt" fwctl -o json ct list 2>/dev/null | python3 -S -c '
import json, sys
conns = json.load(sys.stdin)
for sport in map(int, sys.argv[1:]):
    out = "none"
    for c in conns:
        o, r = c["orig"], c["reply"]
        if c["proto_num"] == 17 and o["src"] == "10.0.1.2" and o.get("sport") == sport and o.get("dport") == 9000:
            out = "%s %d" % (r["dst"], r["dport"])
    print(out)' "$@"
}

# queue_listening NUM: nf_queue has bound queue NUM in the router.
queue_listening() {
	netns_exec "$rt" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null | awk -v q="$1" '$1 == q { f = 1 } END { exit !f }'
}

# stats: "slot_hits slot_misses fallback_found fallback_not_found" of the router.
stats() {
	netns_exec "$rt" fwctl ct stats | awk '
		{ v[$1] = $2 }
		END { print v["slot_hits"] + 0, v["slot_misses"] + 0, v["fallback_found"] + 0, v["fallback_not_found"] + 0 }'
}

# flows_round NAME QUEUE ROUNDS SPORT_A SPORT_B [LAST]: two flows through
# the listener on QUEUE; checks echoes, the server's view, the bindings and
# the counters. LAST: the packets are queued from rfw's last hook, so the
# reinjected ones meet no rfw hook and no lookup is expected.
flows_round() {
	local name=$1 q=$2 rounds=$3 pa=$4 pb=$5 last=${6:-} out ta tb ba bb want
	local h0 m0 f0 n0 h1 m1 f1 n1 qpid
	# (`ip netns exec` and taskset exec: $! is nf_queue's pid.)
	ip netns exec "$rt" taskset -c "$queue_cpu" nf_queue -q "$q" -t 600 >/dev/null 2>&1 &
	qpid=$!
	busywait 60000 queue_listening "$q" || fail "$name: nf_queue listens on queue $q"
	read -r h0 m0 f0 n0 < <(stats)
	: >"$dir/sink"
	out=$(send "$rounds" "$pa:A" "$pb:B")
	echo "$out" | sed 's/^/# sent, echoed: /'
	check "$name: flow A's echoes, its own bytes" "A $rounds $rounds" "$(echo "$out" | grep '^A ')"
	check "$name: flow B's echoes, its own bytes" "B $rounds $rounds" "$(echo "$out" | grep '^B ')"
	check "$name: no datagram at the server mixes flows" 0 "$(awk '$3 == "?" || $4 != 200' "$dir/sink" | wc -l)"
	ta=$(sink_ports A) tb=$(sink_ports B)
	check "$name: the server saw flow A from one source" 1 "$(echo "$ta" | grep -c .)"
	check "$name: the server saw flow B from one source" 1 "$(echo "$tb" | grep -c .)"
	check "$name: flow A masqueraded to the router" 10.0.2.1 "${ta%% *}"
	check "$name: flow B masqueraded to the router" 10.0.2.1 "${tb%% *}"
	if [ "$ta" != "$tb" ]; then
		pass "$name: the two flows have distinct sources ($ta / $tb)"
	else
		fail "$name: both flows seen from $ta"
	fi
	{ read -r ba; read -r bb; } < <(bindings "$pa" "$pb")
	check "$name: flow A's source at the server is its binding in ct list" "$ta" "$ba"
	check "$name: flow B's source at the server is its binding in ct list" "$tb" "$bb"
	read -r h1 m1 f1 n1 < <(stats)
	echo "# $name: ct stats deltas: slot_hits $((h1 - h0)) slot_misses $((m1 - m0))" \
		"fallback_found $((f1 - f0)) fallback_not_found $((n1 - n0))"
	# Each queued datagram is reinjected past the hook that queued it and
	# meets POST_ROUTING without a record of its own (in another context,
	# maybe on another CPU): a slot miss, then a lookup that finds it. Its
	# echo is not queued and hits at FORWARD and POST_ROUTING.
	want=$((2 * rounds))
	if [ -n "$last" ]; then
		check "$name: no slot miss (queued after rfw's last step)" 0 $((m1 - m0))
		check "$name: no fallback lookup failed" 0 $((n1 - n0))
		kill "$qpid" 2>/dev/null
		wait "$qpid" 2>/dev/null
		return
	fi
	if [ $((f1 - f0)) -ge "$want" ]; then
		pass "$name: fallback lookups found every queued packet ($((f1 - f0)) >= $want)"
	else
		fail "$name: fallback_found $((f1 - f0)) < $want"
	fi
	check "$name: no fallback lookup failed" 0 $((n1 - n0))
	check "$name: every slot miss was found by the lookup" $((m1 - m0)) $((f1 - f0))
	if [ $((h1 - h0)) -ge "$want" ]; then
		pass "$name: the echoes hit their slot records ($((h1 - h0)) >= $want)"
	else
		fail "$name: slot_hits $((h1 - h0)) < $want"
	fi
	kill "$qpid" 2>/dev/null
	wait "$qpid" 2>/dev/null
}

# Round 1: rfw's QUEUE target.
fw "$rt" filter add --chain FORWARD -p udp --dport 9000 --queue 0 || fail "filter add --queue 0"
flows_round "rfw QUEUE" 0 100 5001 5002
check "rfw QUEUE: the rule queued every datagram" 200 "$(rule_packets "$rt" filter FORWARD queue)"
fw "$rt" filter flush || fail "filter flush"

# Round 2: an nftables queue rule after rfw's FORWARD hook.
netns_exec "$rt" nft -f - <<'NFT' || fail "nft queue rule"
table inet rfw_q {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip daddr 10.0.2.2 udp dport 9000 counter queue num 1
	}
}
NFT
flows_round "nft queue" 1 100 5003 5004
netns_exec "$rt" nft delete table inet rfw_q || fail "nft delete table"

# Round 3: rfw's QUEUE in the mangle table at POST_ROUTING, before
# MASQUERADE and the confirmation in the same rfw hook.
fw "$rt" mangle add --chain POSTROUTING -p udp --dport 9000 --queue 2 || fail "mangle add --queue 2"
flows_round "mangle POSTROUTING queue" 2 50 5007 5008 last
check "mangle POSTROUTING queue: the rule queued every datagram" 100 \
	"$(rule_packets "$rt" mangle POSTROUTING queue)"
fw "$rt" mangle flush || fail "mangle flush"

# Round 4: nobody listens.
fw "$rt" filter add --chain FORWARD -p udp --dport 9000 --queue 7 --queue-bypass ||
	fail "filter add --queue 7 --queue-bypass"
: >"$dir/sink"
check "--queue-bypass, no listener: the datagram passes" reply "$(udp_probe "$cl" 5005 10.0.2.2 9000 10)"
check "--queue-bypass: the rule saw it" 1 "$(rule_packets "$rt" filter FORWARD 'queue')"
check "save shows --queue-bypass" 1 "$(fw "$rt" save | grep -c -- '--queue 7 --queue-bypass')"
fw "$rt" filter flush || fail "filter flush"
fw "$rt" filter add --chain FORWARD -p udp --dport 9000 --queue 7 || fail "filter add --queue 7"
: >"$dir/sink"
check "--queue without bypass, no listener: the datagram is dropped" timeout "$(udp_probe "$cl" 5006 10.0.2.2 9000 3)"
check "--queue without bypass: the rule counted it" 1 "$(rule_packets "$rt" filter FORWARD 'queue')"
check "--queue without bypass: the server saw nothing" 0 "$(wc -l <"$dir/sink")"

kernel_log_clean
exit $ret
