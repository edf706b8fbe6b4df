#!/bin/bash
# The in-guest half of bench/run.sh: runs in ONE VM boot of the perf kernel
# (started by selftests/run.sh -- bash .../guest-bench.sh OUTDIR KEY=VALUE...).
#
# Topology (three namespaces, two veth pairs, static neighbours):
#
#   snd  s0 10.0.1.1/24 ---- r0 10.0.1.254/24  rtr  r1 10.0.2.254/24 ---- k0 10.0.2.1/24  snk
#
# Set-ups of the router (each built and torn down again in every round, in the
# order of SETUPS; the first WARMUP rounds are marked warmup=1):
#   B0      drop at the router's ingress: a blackhole route for the sink's
#           address (this kernel has neither NF_TABLES_NETDEV nor NET_CLS_ACT,
#           so no netdev/tc ingress drop); counted at the router's r0 rx
#   B1      plain forwarding, no netfilter module loaded (checked with lsmod)
#   P1      nftables: forward policy drop, ct state established,related accept,
#           new from r0 to r1 accept; masquerade out of r1
#   P2      P1 plus a software flowtable (flow add @ft) on r0 and r1
#   R       rfw.ko (hashsize and max as P1's nf_conntrack) with P1's ruleset
#           in fwctl's text form (rfw_ruleset): forward policy drop,
#           --ct-state established,related accept, -i r0 -o r1 accept;
#           masquerade out of r1 (--to-ports 1024-65535: keep free ports,
#           as nft's masquerade does); UDP timeouts 300 s as P1
#   R2      R plus rfw's fast path: `--ct-state established --offload` ahead
#           of the stateful accept (as P2 is P1 plus `flow add @ft`)
#   R0      rfw.ko loaded as for R, no ruleset, `fwctl ct tracking on` in
#           the router: its hooks and connection tracking only, no
#           filtering, no NAT
#   P1r1000 P1 with 1000 non-matching rules ahead of the stateful accept
#   R1000   R with the same 1000 non-matching rules (-p udp --dport N --drop)
#           P1r1000 and R1000 run the udp1k workload only.
#
# rfw, like nf_conntrack, tracks only in namespaces whose ruleset needs it
# (`fwctl ct tracking auto`, the default): the sink's and the sender's
# namespaces have no rules and track nothing. The harness records the
# sink's entry count as a witness of that (0), and memory per connection
# divides by the entries of all namespaces.
#
# Workloads (each measured over DUR seconds after RAMP seconds of traffic):
#   udp1k   established UDP, 64-byte frames, 1000 flows (pktgen, flag !SHARED,
#           sequential source ports), packets/s counted by the sink's own UDP
#           counters (/proc/net/snmp); before it, one packet per flow each
#           way so that conntrack sees the flows as established
#   udp64k  the same with 64511 flows
#   newconn a new tuple per packet (random source address in 10.1.0.0/16 and
#           random source port): sink packets/s, and new entries/s in the
#           router's connection table (nf_conntrack_count, or fwctl ct count)
#   tcp     TCP bulk, iperf3 from snd to snk, receiver's bits/s
#   profile after the rounds, for each of PROFILE (default none; bench/run.sh
#           asks for P1 R0 R P2 R2 P1:newconn R:newconn P2:tcp R2:tcp):
#           SETUP's udp1k (or SETUP:WORKLOAD's udp1k, newconn or tcp) once
#           more under `perf record -C 0` (cpu-clock; pktgen's thread and
#           the softirq that forwards its packets run on CPU 0; tcp: `-a`,
#           iperf3 and its softirqs use both), the flat profile by symbol in
#           OUTDIR/files/profile-SETUP-WORKLOAD.txt and by object in
#           profile-dso-SETUP-WORKLOAD.txt; not a figure of the tables
#   mem     once per MEM_REPEATS for each of MEM_SETUPS (P1 R): slab bytes
#           per tracked connection at MEM_ENTRIES entries in the router
#           (/proc/slabinfo nf_conntrack or rfw_conn, and /proc/meminfo Slab
#           deltas) and the hash table's share
#
# Output: OUTDIR/raw.csv (round,warmup,setup,workload,metric,value,unit),
# OUTDIR/meta.txt, OUTDIR/log.txt and per-measurement files under OUTDIR/files.
set -u

out=$1
shift
WARMUP=1 ROUNDS=5 DUR=2 RAMP=1 MEM_ENTRIES=100000 MEM_REPEATS=2
SETUPS="B0 B1 P1 R P2 R2 R0 P1r1000 R1000"
MEM_SETUPS="P1 R"
WORKLOADS="udp1k udp64k tcp newconn"
PROFILE=""
for kv in "$@"; do
	case "$kv" in
	WARMUP=*|ROUNDS=*|DUR=*|RAMP=*|MEM_ENTRIES=*|MEM_REPEATS=*) eval "${kv%%=*}=\${kv#*=}" ;;
	SETUPS=*) SETUPS=${kv#*=}; SETUPS=${SETUPS//,/ } ;;
	MEM_SETUPS=*) MEM_SETUPS=${kv#*=}; MEM_SETUPS=${MEM_SETUPS//,/ } ;;
	WORKLOADS=*) WORKLOADS=${kv#*=}; WORKLOADS=${WORKLOADS//,/ } ;;
	PROFILE=*) PROFILE=${kv#*=}; PROFILE=${PROFILE//,/ } ;;
	*) echo "guest-bench: unknown setting $kv" >&2; exit 2 ;;
	esac
done

mkdir -p "$out/files"
csv=$out/raw.csv
log=$out/log.txt
echo "round,warmup,setup,workload,metric,value,unit" >"$csv"
: >"$log"

say() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*" | tee -a "$log"; }
rec() { # rec ROUND SETUP WORKLOAD METRIC VALUE UNIT
	local w=0
	case "$1" in
	''|*[!0-9]*) ;;
	*) [ "$3" != mem ] && [ "$1" -lt "$WARMUP" ] && w=1 ;;
	esac
	echo "$1,$w,$2,$3,$4,$5,$6" >>"$csv"
}

# ---- fixed addresses ------------------------------------------------------
S_IP=10.0.1.1 R0_IP=10.0.1.254 R1_IP=10.0.2.254 K_IP=10.0.2.1
S_MAC=02:00:0a:00:01:01 R0_MAC=02:00:0a:00:01:fe
R1_MAC=02:00:0a:00:02:fe K_MAC=02:00:0a:00:02:01
FLOW_PORT_MIN=1024 # flows: source ports 1024.. (udp64k: up to 65534; pktgen's max is exclusive, u16)
UDP_DPORT=9
CT_HASHSIZE=131072
CT_MAX=524288

# nf modules that B1 must not have, in an order rmmod can take them out
NF_MODS="nft_flow_offload nf_flow_table_inet nf_flow_table nft_masq nft_chain_nat
nft_ct nft_nat nf_nat nf_conntrack_netlink nf_conntrack nf_defrag_ipv6
nf_defrag_ipv4 nf_tables nfnetlink"

nf_loaded() { lsmod | awk 'NR > 1 && $1 ~ /^(nf_|nft_|nfnetlink|x_tables|ip_tables|ip6_tables|iptable_|rfw)/ { printf "%s ", $1 }'; }

unload_nf() {
	local i m loaded
	for i in 1 2 3 4 5 6 7 8 9 10; do
		loaded=" $(nf_loaded)"
		[ "$loaded" = " " ] && return 0
		for m in $NF_MODS rfw; do
			case "$loaded" in *" $m "*) rmmod "$m" 2>/dev/null ;; esac
		done
		[ -z "$(nf_loaded)" ] && return 0
		sleep 0.3
	done
	return 1
}

# ---- topology -------------------------------------------------------------
topology() {
	ip netns add snd && ip netns add rtr && ip netns add snk || return 1
	local n
	for n in snd rtr snk; do ip -n $n link set lo up; done
	ip link add s0 address $S_MAC netns snd type veth peer name r0 address $R0_MAC netns rtr || return 1
	ip link add r1 address $R1_MAC netns rtr type veth peer name k0 address $K_MAC netns snk || return 1
	ip -n snd addr add $S_IP/24 dev s0
	ip -n rtr addr add $R0_IP/24 dev r0
	ip -n rtr addr add $R1_IP/24 dev r1
	ip -n snk addr add $K_IP/24 dev k0
	for n in "snd s0" "rtr r0" "rtr r1" "snk k0"; do
		set -- $n
		ip -n "$1" link set "$2" up
	done
	ip -n snd route add default via $R0_IP
	ip -n snk route add default via $R1_IP
	ip -n rtr route add 10.1.0.0/16 via $S_IP
	ip -n snd neigh replace $R0_IP lladdr $R0_MAC dev s0 nud permanent
	ip -n rtr neigh replace $S_IP lladdr $S_MAC dev r0 nud permanent
	ip -n rtr neigh replace $K_IP lladdr $K_MAC dev r1 nud permanent
	ip -n snk neigh replace $R1_IP lladdr $R1_MAC dev k0 nud permanent
	ip netns exec rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.r0.rp_filter=0 net.ipv4.conf.r1.rp_filter=0
	# The end hosts answer UDP to closed ports with ICMP errors: none, so that
	# only the generated traffic crosses the router.
	for n in snd snk; do
		ip netns exec $n sysctl -qw net.ipv4.icmp_msgs_per_sec=0 net.ipv4.icmp_msgs_burst=0 \
			net.ipv4.icmp_ratelimit=100000
	done
	# Long-lived processes in each namespace: counters are read through
	# /proc/PID/net/ without starting a process per sample.
	ip netns exec snk sleep 1000000 & SNK_PID=$!
	ip netns exec rtr sleep 1000000 & RTR_PID=$!
	ip netns exec snk iperf3 -s -D -p 5201 >/dev/null 2>&1
	sleep 0.5
}

# ---- counters --------------------------------------------------------------
# sample: "TIME SINK_UDP SINK_K0_RX ROUTER_R0_RX" from one process; TIME is
# the middle of the read.
sample() {
	local a=$EPOCHREALTIME v b
	v=$(awk -v r="/proc/$RTR_PID/net/dev" '
		FILENAME ~ /snmp$/ && $1 == "Udp:" && !h { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next }
		FILENAME ~ /snmp$/ && $1 == "Udp:" { udp = $c["InDatagrams"] + $c["NoPorts"] + $c["InErrors"] }
		FILENAME ~ /dev$/ { l = $0; sub(/^ +/, "", l); split(l, x, ":"); split(x[2], f, " ")
			if (FILENAME == r && x[1] == "r0") rr = f[2]
			if (FILENAME != r && x[1] == "k0") kk = f[2] }
		END { print udp, kk, rr }' "/proc/$SNK_PID/net/snmp" "/proc/$SNK_PID/net/dev" "/proc/$RTR_PID/net/dev")
	b=$EPOCHREALTIME
	awk -v a="$a" -v b="$b" -v v="$v" 'BEGIN { printf "%.6f %s\n", (a + b) / 2, v }'
}
# CT_KIND (set by setup): which connection table the set-up has: none, nf
# (nf_conntrack) or rfw.
CT_KIND=none
in_ns() { # NS CMD...: CMD in namespace NS ("init": the initial one)
	local ns=$1
	shift
	if [ "$ns" = init ]; then "$@"; else ip netns exec "$ns" "$@"; fi
}
ct_count() { # [NS]: entries of NS's table (default rtr), 0 when there is none
	local c=
	case "$CT_KIND" in
	rfw) c=$(in_ns "${1:-rtr}" fwctl ct count 2>/dev/null) ;;
	nf) c=$(in_ns "${1:-rtr}" cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null) ;;
	esac
	case "$c" in ''|*[!0-9]*) c=0 ;; esac
	echo "$c"
}
ct_count_all() { # entries of every namespace's table
	local ns n=0
	for ns in init snd rtr snk; do n=$((n + $(ct_count $ns))); done
	echo "$n"
}
# rfw_work: "NEW HASHES ALLOCATIONS" of rtr's table (fwctl ct stats): what
# new connections cost rfw, counted by rfw itself.
rfw_work() {
	ip netns exec rtr fwctl ct stats 2>/dev/null |
		awk '$1 == "new" { n = $2 } $1 == "hashes" { h = $2 } $1 == "allocations" { a = $2 } END { print n + 0, h + 0, a + 0 }'
}
# ct_sample: "TIME COUNT" from a shell that lives in rtr (no process start
# between the clock and the counter; /proc/sys is the reader's namespace's).
# rfw's count needs fwctl, a process: its TIME is the middle of the clock
# readings before and after it.
ct_sample() { # sets CT_T and CT_C
	if [ -z "${CTQ[1]:-}" ]; then
		coproc CTQ { ip netns exec rtr bash -c 'while read -r k; do c=0; a=$EPOCHREALTIME
			if [ "$k" = rfw ]; then c=$(fwctl ct count 2>/dev/null); else read -r c 2>/dev/null </proc/sys/net/netfilter/nf_conntrack_count; fi
			echo "$a $EPOCHREALTIME ${c:-0}"; done'; }
	fi
	echo "$CT_KIND" >&"${CTQ[1]}"
	local a b
	read -r a b CT_C <&"${CTQ[0]}"
	CT_T=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.6f", (a + b) / 2 }')
}

# ---- pktgen ----------------------------------------------------------------
# pg_config NS DEV COUNT SETTINGS... : configures pktgen's thread 0 of NS
# for DEV. pg_start NS then sends: COUNT 0 runs until pg_stop (start it with
# & then); otherwise it returns when COUNT packets are sent.
pg_config() {
	local ns=$1 dev=$2 count=$3
	shift 3
	local cfg="echo rem_device_all > /proc/net/pktgen/kpktgend_0
echo add_device $dev > /proc/net/pktgen/kpktgend_0
pg() { echo \"\$1\" > /proc/net/pktgen/$dev || echo \"pktgen: \$1 refused\" >&2; }
pg 'flag !SHARED'
pg 'clone_skb 0'
pg 'pkt_size 60'
pg 'delay 0'
pg 'count $count'
pg 'flag NO_TIMESTAMP'"
	local s
	for s in "$@"; do cfg+=$'\n'"pg '$s'"; done
	ip netns exec "$ns" bash -c "$cfg"
}
pg_start() { ip netns exec "$1" bash -c 'echo start > /proc/net/pktgen/pgctrl'; }
pg_run() { pg_config "$@" && pg_start "$1"; }
pg_stop() { ip netns exec "$1" bash -c 'echo stop > /proc/net/pktgen/pgctrl'; }
pg_sent() { ip netns exec "$1" awk '/pkts-sofar/ { print $2; exit }' "/proc/net/pktgen/$2" 2>/dev/null; }

flow_args() { # NFLOWS: sets FLOW, pktgen settings of the snd->snk flows (sequential ports)
	FLOW=("dst $K_IP" "dst_mac $R0_MAC" "src_min $S_IP" "src_max $S_IP"
		"udp_dst_min $UDP_DPORT" "udp_dst_max $UDP_DPORT"
		"udp_src_min $FLOW_PORT_MIN" "udp_src_max $((FLOW_PORT_MIN + $1))")
}
# A new tuple per packet. The destination port varies too: masquerade maps
# every connection to one address, and towards one destination address and
# port it has only 64512 source ports to give out (the table would stop there).
NEWCONN=("dst $K_IP" "dst_mac $R0_MAC" "src_min 10.1.0.1" "src_max 10.1.255.254" "flag IPSRC_RND"
	"udp_dst_min 10000" "udp_dst_max 60000" "flag UDPDST_RND" "udp_src_min 1024" "udp_src_max 65535" "flag UDPSRC_RND")

# Pre-warm: one packet per flow forward, then one reply per flow from the
# sink to the address the flow has on the sink's side (REPLY_DST: the
# router's r1 when it masquerades, the sender otherwise), so that a stateful
# router sees every flow as established before the measurement.
prewarm() { # NFLOWS
	local n=$1
	flow_args "$n"
	pg_run snd s0 "$n" "${FLOW[@]}" 2>>"$log"
	pg_run snk k0 "$n" "dst $REPLY_DST" "dst_mac $R1_MAC" "src_min $K_IP" "src_max $K_IP" \
		"udp_src_min $UDP_DPORT" "udp_src_max $UDP_DPORT" \
		"udp_dst_min $FLOW_PORT_MIN" "udp_dst_max $((FLOW_PORT_MIN + n))" 2>>"$log"
	sleep 0.2
}

# measure_pps ROUND SETUP WORKLOAD PKTGEN-SETTINGS...: runs pktgen on snd
# for RAMP+DUR seconds and records the rates seen by the witnesses.
measure_pps() {
	local round=$1 setup=$2 wl=$3
	shift 3
	local pid t0 t1 k0 k1 r0 r1 d0 d1 c0=0 c1=0 s1
	pg_config snd s0 0 "$@" 2>>"$log"
	pg_start snd 2>>"$log" &
	pid=$!
	sleep "$RAMP"
	local ct0=0 ct1=0 w0="" w1=""
	read -r t0 k0 d0 r0 < <(sample)
	[ "$wl" = newconn ] && { ct_sample; ct0=$CT_T c0=$CT_C; }
	[ "$wl" = newconn ] && [ "$CT_KIND" = rfw ] && w0=$(rfw_work)
	sleep "$DUR"
	read -r t1 k1 d1 r1 < <(sample)
	[ "$wl" = newconn ] && { ct_sample; ct1=$CT_T c1=$CT_C; }
	[ "$wl" = newconn ] && [ "$CT_KIND" = rfw ] && w1=$(rfw_work)
	pg_stop snd
	wait "$pid"
	s1=$(pg_sent snd s0); s1=${s1:-error}
	local dt
	dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
	rate() { awk -v x="$1" -v y="$2" -v t="$dt" 'BEGIN { printf "%.0f", (y - x) / t }'; }
	local sink router
	sink=$(rate "$k0" "$k1")
	router=$(rate "$r0" "$r1")
	if [ "$setup" = B0 ]; then
		rec "$round" "$setup" "$wl" pps "$router" pps # dropped at the router: counted there
	else
		rec "$round" "$setup" "$wl" pps "$sink" pps
	fi
	rec "$round" "$setup" "$wl" sink_udp_pps "$sink" pps
	rec "$round" "$setup" "$wl" sink_dev_pps "$(rate "$d0" "$d1")" pps
	rec "$round" "$setup" "$wl" router_rx_pps "$router" pps
	rec "$round" "$setup" "$wl" sender_pkts "$s1" packets
	[ "$wl" = newconn ] && [ "$c1" != 0 ] && rec "$round" "$setup" "$wl" ct_new_per_s \
		"$(awk -v x="$c0" -v y="$c1" -v a="$ct0" -v b="$ct1" 'BEGIN { printf "%.0f", (y - x) / (b - a) }')" conn/s
	if [ -n "$w0" ] && [ -n "$w1" ]; then
		# rfw's own counts over the window: table hashes and allocations
		# per new connection.
		read -r n0 h0 a0 <<<"$w0"
		read -r n1 h1 a1 <<<"$w1"
		if [ $((n1 - n0)) -gt 0 ]; then
			rec "$round" "$setup" "$wl" hashes_per_new "$(awk -v h=$((h1 - h0)) -v n=$((n1 - n0)) 'BEGIN { printf "%.3f", h / n }')" hashes
			rec "$round" "$setup" "$wl" allocs_per_new "$(awk -v a=$((a1 - a0)) -v n=$((n1 - n0)) 'BEGIN { printf "%.3f", a / n }')" allocations
		fi
	fi
	say "  $setup $wl: sink $sink pps, router rx $router pps"
}

measure_tcp() { # ROUND SETUP
	local f="$out/files/iperf3-r$1-$2.json" bps
	ip netns exec snd timeout $((DUR + 30)) iperf3 -c $K_IP -p 5201 -t "$DUR" -O "$RAMP" -J >"$f" 2>>"$log"
	bps=$(awk '/"sum_received"/ { f = 1 } f && /"bits_per_second"/ { gsub(/[^0-9.eE+-]/, "", $2); print $2; exit }' "$f")
	rec "$1" "$2" tcp bps "${bps:-error}" bit/s
	say "  $2 tcp: ${bps:-error} bit/s"
}

run_workload() { # ROUND SETUP WORKLOAD
	local round=$1 setup=$2 wl=$3
	case "$wl" in
	udp1k|udp64k)
		local n=1000
		[ "$wl" = udp64k ] && n=64511
		prewarm "$n"
		flow_args "$n"
		measure_pps "$round" "$setup" "$wl" "${FLOW[@]}"
		if [ "$CT_KIND" != none ]; then
			rec "$round" "$setup" "$wl" ct_entries "$(ct_count)" entries
			# the router's table after the measurement: entries that never
			# saw a reply (the flows were not established: should be 0)
			if [ "$CT_KIND" = nf ]; then
				ip netns exec rtr conntrack -L >/tmp/bench-ct.txt 2>/dev/null
			else
				ip netns exec rtr fwctl ct list >/tmp/bench-ct.txt 2>/dev/null
			fi
			rec "$round" "$setup" "$wl" ct_unreplied "$(grep -c UNREPLIED /tmp/bench-ct.txt)" entries
		fi
		# the sink's namespace has no rules: no entries (see the top)
		[ "$CT_KIND" = rfw ] && rec "$round" "$setup" "$wl" sink_ct_entries "$(ct_count snk)" entries
		# witness that P2's and R2's flows really went through the fast path
		case "$setup" in P2 | R2) rec "$round" "$setup" "$wl" ct_offloaded \
			"$(grep -c OFFLOAD /tmp/bench-ct.txt)" entries ;;
		esac
		;;
	newconn)
		measure_pps "$round" "$setup" "$wl" "${NEWCONN[@]}"
		;;
	tcp)
		if [ "$setup" = B0 ]; then
			rec "$round" "$setup" tcp bps n/a "B0 drops everything: no connection"
		else
			measure_tcp "$round" "$setup"
		fi
		;;
	esac
	# every workload starts from an empty connection table
	lsmod | grep -q '^nf_conntrack ' && ip netns exec rtr conntrack -F >/dev/null 2>&1
	if lsmod | grep -q '^rfw '; then
		local ns
		for ns in snd rtr snk; do ip netns exec $ns fwctl ct flush >/dev/null 2>&1; done
	fi
	return 0
}

# ---- set-ups ---------------------------------------------------------------
nft_ruleset() { # EXTRA_RULES FLOWTABLE(0|1)
	local i
	echo "table inet bench {"
	[ "$2" = 1 ] && echo "  flowtable ft { hook ingress priority 0; devices = { r0, r1 }; }"
	echo "  chain forward {"
	echo "    type filter hook forward priority 0; policy drop;"
	for ((i = 0; i < $1; i++)); do
		echo "    udp dport $((20000 + i)) drop"
	done
	[ "$2" = 1 ] && echo "    meta l4proto { tcp, udp } flow add @ft"
	echo "    ct state established,related accept"
	echo "    iifname \"r0\" oifname \"r1\" accept"
	echo "  }"
	echo "  chain postrouting {"
	echo "    type nat hook postrouting priority srcnat; policy accept;"
	echo "    oifname \"r1\" masquerade"
	echo "  }"
	echo "}"
}

setup_nft() { # EXTRA_RULES FLOWTABLE
	modprobe nf_conntrack hashsize=$CT_HASHSIZE || return 1
	sysctl -qw net.netfilter.nf_conntrack_max=$CT_MAX
	modprobe nf_conntrack_netlink
	nft_ruleset "$1" "$2" >/tmp/bench.nft
	ip netns exec rtr nft -f /tmp/bench.nft || return 1
	# established flows must not expire during a measurement
	ip netns exec rtr sysctl -qw net.netfilter.nf_conntrack_udp_timeout=300 \
		net.netfilter.nf_conntrack_udp_timeout_stream=300
	REPLY_DST=$R1_IP
}

# P1's nft ruleset (nft_ruleset EXTRA_RULES 0) in fwctl's text form
# (docs/RULESET.md): built-in chains not declared are ACCEPT, as nft has no
# chain there.
rfw_ruleset() { # EXTRA_RULES [offload]
	local i
	echo "*filter"
	echo ":FORWARD DROP [0:0]"
	for ((i = 0; i < $1; i++)); do
		echo "-A FORWARD -p udp --dport $((20000 + i)) --drop"
	done
	[ "${2:-}" = offload ] && echo "-A FORWARD --ct-state established --offload"
	echo "-A FORWARD --ct-state established,related --accept"
	echo "-A FORWARD -i r0 -o r1 --accept"
	echo "COMMIT"
	echo "*nat"
	# nft's masquerade (6.12) keeps a source port that is free; rfw's
	# default moves ports below ip_local_port_range (port-shadowing
	# mitigation, docs/DESIGN.md), which would leave the flows' replies
	# (sent to ports 1024...) unmatched. With the range rfw keeps them too.
	echo "-A POSTROUTING -o r1 --masquerade --to-ports 1024-65535"
	echo "COMMIT"
}

load_rfw() { # TIMEOUT: rfw sized as P1's nf_conntrack, UDP timeouts TIMEOUT s
	modprobe rfw hashsize=$CT_HASHSIZE max=$CT_MAX || return 1
	# established flows must not expire during a measurement (the settings
	# it prints go to the log, its errors to the set-up's output)
	ip netns exec rtr fwctl ct timeout udp_unreplied "$1" udp_replied "$1" >>"$log" || return 1
}

# setup_R: the R set-up: rfw with P1's ruleset.
setup_R() { # EXTRA_RULES [offload]
	load_rfw 300 || return 1
	rfw_ruleset "$1" "${2:-}" >/tmp/bench.rfw
	ip netns exec rtr fwctl restore /tmp/bench.rfw || return 1
	REPLY_DST=$R1_IP
}

setup() { # SETUP
	REPLY_DST=$S_IP
	case "$1" in
	B0|B1) CT_KIND=none ;;
	P1|P2|P1r1000) CT_KIND=nf ;;
	R0|R|R2|R1000) CT_KIND=rfw ;;
	esac
	case "$1" in
	B0) ip -n rtr route add blackhole $K_IP/32 ;;
	B1) [ -z "$(nf_loaded)" ] || { say "B1: netfilter modules still loaded: $(nf_loaded)"; return 1; } ;;
	P1) setup_nft 0 0 ;;
	P2) setup_nft 0 1 ;;
	P1r1000) setup_nft 1000 0 ;;
	R0) load_rfw 300 && ip netns exec rtr fwctl ct tracking on >>"$log" ;;
	R) setup_R 0 ;;
	R2) setup_R 0 offload ;;
	R1000) setup_R 1000 ;;
	*) say "unknown set-up $1"; return 1 ;;
	esac
}

teardown() { # SETUP ROUND
	case "$1" in
	B0) ip -n rtr route del blackhole $K_IP/32 ;;
	P1|P2|P1r1000)
		# conntrack's own drop/insert_failed/early_drop counters, per CPU
		ip netns exec rtr conntrack -S >"$out/files/conntrack-S-$1-r$2.txt" 2>&1
		ip netns exec rtr nft flush ruleset
		ip netns exec rtr conntrack -F >/dev/null 2>&1
		;;
	R0|R|R2|R1000)
		# rfw's counters: table (drops, early drops, insert failures...),
		# rule path (NAT bindings and failures), hooks; the sink's table too
		local ns
		for ns in rtr snk; do
			ip netns exec $ns fwctl ct stats >"$out/files/fwctl-ct-stats-$1-$ns-r$2.txt" 2>&1
		done
		ip netns exec rtr fwctl rules stats >"$out/files/fwctl-rules-stats-$1-r$2.txt" 2>&1
		ip netns exec rtr fwctl stats >"$out/files/fwctl-stats-$1-r$2.txt" 2>&1
		[ "$1" != R0 ] && ip netns exec rtr fwctl save -c >"$out/files/fwctl-save-$1-r$2.txt" 2>&1
		modprobe -r rfw
		;;
	esac
	CT_KIND=none
	unload_nf || say "  could not unload: $(nf_loaded)"
}

# ---- memory per connection (P1, R) ----------------------------------------
# The router's table filled with MEM_ENTRIES new connections; slab deltas
# over the fill divided by the new entries of all namespaces (only the
# router's namespace has rules, hence entries, for both engines).
measure_mem() { # REPEAT SETUP
	local rep=$1 s=$2 cache ct0 ct1 all0 all1 sl0 sl1 ms0 ms1 i line objsize buckets ns
	case "$s" in
	P1) cache=nf_conntrack ;;
	R) cache=rfw_conn ;;
	*) say "mem: no memory measurement for $s"; return ;;
	esac
	setup "$s" >>"$log" 2>&1 || { say "mem: $s set-up failed"; teardown "$s" "mem$rep" >>"$log" 2>&1; return; }
	if [ "$s" = P1 ]; then
		ip netns exec rtr sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600
	else
		ip netns exec rtr fwctl ct timeout udp_unreplied 600 >>"$log" 2>&1
	fi
	sleep 1
	ct0=$(ct_count)
	all0=$(ct_count_all)
	sl0=$(awk -v c="$cache" '$1 == c { print $15 * $6 * 4096 }' /proc/slabinfo)
	ms0=$(awk '$1 == "Slab:" { print $2 * 1024 }' /proc/meminfo)
	for ((i = 0; i < 4; i++)); do
		local have
		have=$(ct_count)
		[ "$((have - ct0))" -ge "$MEM_ENTRIES" ] && break
		pg_run snd s0 $((MEM_ENTRIES - (have - ct0))) "${NEWCONN[@]}" 2>>"$log"
		sleep 0.5
	done
	sleep 1
	ct1=$(ct_count)
	all1=$(ct_count_all)
	line=$(awk -v c="$cache" '$1 == c' /proc/slabinfo)
	sl1=$(echo "$line" | awk '{ print $15 * $6 * 4096 }')
	objsize=$(echo "$line" | awk '{ print $4 }')
	ms1=$(awk '$1 == "Slab:" { print $2 * 1024 }' /proc/meminfo)
	if [ "$s" = P1 ]; then
		buckets=$(cat /proc/sys/net/netfilter/nf_conntrack_buckets)
	else
		ip netns exec rtr fwctl ct stats >"$out/files/fwctl-ct-stats-mem$rep.txt" 2>&1
		buckets=$(awk '$1 == "buckets" { print $2 }' "$out/files/fwctl-ct-stats-mem$rep.txt")
		rec "$rep" "$s" mem entry_bytes "$(awk '$1 == "entry_bytes" { print $2 }' "$out/files/fwctl-ct-stats-mem$rep.txt")" B
	fi
	local n=$((all1 - all0))
	echo "$line" >"$out/files/slabinfo-mem$rep-$s.txt"
	rec "$rep" "$s" mem entries "$ct1" entries
	rec "$rep" "$s" mem entries_all_ns "$all1" entries
	if [ "$n" -gt 0 ] && [ -n "$sl0" ] && [ -n "$sl1" ]; then
		rec "$rep" "$s" mem ct_slab_bytes_per_conn "$(awk -v a="$sl0" -v b="$sl1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')" B
		rec "$rep" "$s" mem all_slab_bytes_per_conn "$(awk -v a="$ms0" -v b="$ms1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')" B
	fi
	[ "$ct1" -gt 0 ] && [ -n "$buckets" ] &&
		rec "$rep" "$s" mem hash_bytes_per_conn "$(awk -v b="$buckets" -v n="$ct1" 'BEGIN { printf "%.1f", b * 8 / n }')" B
	rec "$rep" "$s" mem nf_conntrack_objsize "${objsize:-error}" B
	rec "$rep" "$s" mem hash_buckets "${buckets:-error}" buckets
	say "mem $rep $s: $((ct1 - ct0)) new entries in rtr ($ct1 in all; $n new in all namespaces), $cache slab $sl0 -> $sl1 B, Slab $ms0 -> $ms1 B, objsize $objsize, $buckets buckets"
	teardown "$s" "mem$rep" >>"$log" 2>&1
}

# ---- profile (PROFILE): where CPU 0's time goes ------------------------------
# PROFILE entries are SETUP (udp1k) or SETUP:WORKLOAD, WORKLOAD udp1k or newconn.
profile() { # SETUP[:WORKLOAD]
	local s=${1%%:*} wl=udp1k pid
	[ "$1" != "$s" ] && wl=${1#*:}
	local f="$out/files/profile-$s-$wl.txt" fd="$out/files/profile-dso-$s-$wl.txt"
	command -v perf >/dev/null || { say "profile $s $wl: no perf in the guest"; return 0; }
	case "$wl" in
	udp1k|newconn|tcp) ;;
	*) say "profile $s: unknown workload $wl (udp1k, newconn or tcp)"; return 0 ;;
	esac
	if ! setup "$s" >>"$log" 2>&1; then
		say "profile $s $wl: set-up failed"
		teardown "$s" "prof-$wl" >>"$log" 2>&1
		return 0
	fi
	if [ "$wl" = tcp ]; then
		# iperf3's sender, receiver and the softirqs that forward its
		# segments share both CPUs: every CPU is sampled.
		ip netns exec snd timeout $((RAMP + DUR + 30)) iperf3 -c $K_IP -p 5201 \
			-t $((RAMP + DUR + 1)) >/dev/null 2>>"$log" &
		pid=$!
		sleep "$RAMP"
		perf record -q -a -e cpu-clock -F 4999 -o "/tmp/perf-$s.data" -- sleep "$DUR" >>"$log" 2>&1
		wait "$pid"
	else
		if [ "$wl" = udp1k ]; then
			prewarm 1000
			flow_args 1000
			pg_config snd s0 0 "${FLOW[@]}" 2>>"$log"
		else
			pg_config snd s0 0 "${NEWCONN[@]}" 2>>"$log"
		fi
		pg_start snd 2>>"$log" &
		pid=$!
		sleep "$RAMP"
		perf record -q -C 0 -e cpu-clock -F 4999 -o "/tmp/perf-$s.data" -- sleep "$DUR" >>"$log" 2>&1
		pg_stop snd
		wait "$pid"
	fi
	perf report -i "/tmp/perf-$s.data" --stdio --no-children --sort dso,sym \
		--percent-limit 0.3 2>>"$log" | grep -v '^$' >"$f"
	# per object, every sample counted (the symbol list stops at 0.3 %:
	# summing it would undercount objects whose time is spread thin)
	perf report -i "/tmp/perf-$s.data" --stdio --no-children --sort dso \
		2>>"$log" | grep -v '^$' >"$fd"
	rm -f "/tmp/perf-$s.data"
	say "profile $s $wl: $(grep -c '%' "$f") symbols above 0.3 % in $f"
	teardown "$s" "prof-$wl" >>"$log" 2>&1
	return 0
}

# ---- main --------------------------------------------------------------------
{
	echo "kernel $(uname -r)"
	echo "cmdline $(cat /proc/cmdline)"
	echo "cpus $(nproc)"
	echo "mem_kb $(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
	echo "settings WARMUP=$WARMUP ROUNDS=$ROUNDS DUR=$DUR RAMP=$RAMP MEM_ENTRIES=$MEM_ENTRIES MEM_REPEATS=$MEM_REPEATS"
	echo "mem_setups $MEM_SETUPS"
	echo "setups $SETUPS"
	echo "workloads $WORKLOADS"
	echo "profile $PROFILE"
	echo "slabinfo $([ -r /proc/slabinfo ] && echo yes || echo no)"
	echo "started $(date -u +%FT%TZ)"
} >"$out/meta.txt"

say "bench: kernel $(uname -r), $(nproc) cpus, setups: $SETUPS, workloads: $WORKLOADS"
modprobe pktgen || { say "no pktgen"; exit 1; }
topology || { say "topology failed"; exit 1; }
unload_nf

for ((round = 0; round < WARMUP + ROUNDS; round++)); do
	say "round $round$([ "$round" -lt "$WARMUP" ] && echo ' (warm-up)')"
	for s in $SETUPS; do
		wls=$WORKLOADS
		case "$s" in P1r1000|R1000) wls=udp1k ;; esac
		setup "$s" >/tmp/bench-setup.out 2>&1
		rc=$?
		cat /tmp/bench-setup.out >>"$log"
		if [ "$rc" -ne 0 ]; then
			msg=$(head -c 300 /tmp/bench-setup.out | tr '\n,' '; ')
			say "  $s: set-up failed: $msg"
			for wl in $wls; do rec "$round" "$s" "$wl" pps "n/a" "set-up failed: $msg"; done
			teardown "$s" "$round" >>"$log" 2>&1
			continue
		fi
		rec "$round" "$s" - nf_modules "\"$(nf_loaded)\"" -
		for wl in $wls; do run_workload "$round" "$s" "$wl"; done
		teardown "$s" "$round" >>"$log" 2>&1
	done
done
for s in $PROFILE; do profile "$s"; done
for ((rep = 0; rep < MEM_REPEATS; rep++)); do
	for s in $MEM_SETUPS; do measure_mem "$rep" "$s"; done
done

echo "finished $(date -u +%FT%TZ)" >>"$out/meta.txt"
pg_stop snd 2>/dev/null
kill "$SNK_PID" "$RTR_PID" 2>/dev/null
ip -all netns delete
say "bench: done"
