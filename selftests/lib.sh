#!/bin/bash
# Shared helpers for rfw's selftests, after the kernel's
# tools/testing/selftests/net/lib.sh and netfilter/lib.sh: kselftest exit
# codes, namespaces with random names, tool checks, polling with a deadline.
# Python runs as `python3 -S`, without the site module: it would scan
# site-packages and run their .pth files at every start, a fraction of a
# second each under emulation, and the tests' Python needs the standard
# library alone.
# shellcheck disable=SC2034

readonly ksft_pass=0
readonly ksft_fail=1
readonly ksft_skip=4

ret=$ksft_pass
ns_list=()

# One PASS:/FAIL: line per case; FAIL sets the script's exit code. Each ends
# with the seconds since the test started, so a slow case shows in the log.
pass() { echo "PASS: $* [${SECONDS}s]"; }
fail() { echo "FAIL: $* [${SECONDS}s]"; ret=$ksft_fail; }
skip() { echo "SKIP: $*"; exit $ksft_skip; }
check() { # check DESCRIPTION EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then pass "$1 ($3)"; else fail "$1: expected $2, got $3"; fi
}

checktool() { # checktool "CMD ARGS" "what it is for"
	if ! eval "$1" >/dev/null 2>&1; then
		skip "could not run test without $2"
	fi
}

# setup_ns VAR... : creates one namespace per VAR, named VAR-XXXXXX, sets VAR.
# The six random characters come from bash's $RANDOM, not mktemp: every
# process start costs under emulation.
setup_ns() {
	local v name i chars=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789
	for v in "$@"; do
		name="$v-"
		for i in 1 2 3 4 5 6; do name+=${chars:RANDOM % 62:1}; done
		ip netns add "$name" || return 1
		ip -net "$name" link set lo up || return 1
		eval "$v=$name"
		ns_list+=("$name")
	done
}

# netns_exec NS CMD...: CMD in network namespace NS (made by setup_ns), as
# `ip netns exec NS CMD` runs it but without a mount namespace of its own
# (nsenter enters the network namespace alone): no copy of the mount table,
# no /sys remounted and unmounted again at exit, each of which costs under
# emulation. So CMD sees the initial namespace's /sys, where `ip netns exec`
# shows NS's own; /proc/net and /proc/sys/net follow the network namespace
# either way. For the helpers below and the tests' own commands (netlink,
# sockets, /proc/net, net sysctls); a test that reads NS's /sys/class/net
# uses `ip netns exec`.
# A command put in the background is started with nsenter itself (`nsenter
# --net=/run/netns/NS CMD &`): a function in the background runs in a
# forked shell, and $! would be that shell's pid, not CMD's.
netns_exec() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# cleanup_all_ns: deletes the test's namespaces (one `ip -batch` for all:
# a process start per namespace costs under emulation).
cleanup_all_ns() {
	[ ${#ns_list[@]} -eq 0 ] || printf 'netns del %s\n' "${ns_list[@]}" | ip -force -batch - >/dev/null 2>&1
	ns_list=()
}

# busywait TIMEOUT_MS CMD...: runs CMD until it succeeds or time runs out.
# A wait for something that is expected to happen costs nothing when it
# does, so the tests give generous limits (60 s and more): the suite runs
# under emulation on a debug kernel, on hosts of any speed.
# Its locals have names of their own: bash scopes variables dynamically,
# so CMD would otherwise see (and test against) busywait's own `start`.
busywait() {
	local __bw_limit=$1 __bw_start
	shift
	__bw_start=$(date +%s%3N)
	while true; do
		"$@" && return 0
		[ $(($(date +%s%3N) - __bw_start)) -ge "$__bw_limit" ] && return 1
		sleep 0.1
	done
}

# dmesg_clean: no kernel splat since the last `dmesg -C`.
dmesg_splats() {
	dmesg | grep -E 'BUG:|WARNING:|Oops|KASAN|UBSAN:|Call Trace:|general protection fault|soft lockup|detected stalls|circular locking'
}

# fwctl_stats NS: all counters of namespace NS (empty: the current one), one
# "FAMILY HOOK PACKETS BYTES" line each, from one `fwctl stats` call (awk, not
# python: under emulation every process start costs).
fwctl_stats() {
	if [ -n "$1" ]; then
		netns_exec "$1" fwctl stats 2>/dev/null
	else
		fwctl stats 2>/dev/null
	fi | awk 'NR > 1 { print $1, $2, $3, $4 }'
}

# rfw_hooks NS: "FAMILY HOOK" for each hook point where rfw has a hook in
# NS, sorted, on one line, from the kernel's own list of registered hooks
# (`nft list hooks`, nfnetlink_hook).
rfw_hooks() {
	local points
	points=$(netns_exec "$1" nft list hooks 2>/dev/null |
		awk '/^family/ { f = $2 } /^[[:space:]]*hook [a-z]+ \{/ { h = $2 } /\[rfw\]/ { print f, h }' |
		sort -u)
	# One line (in the shell: a process fewer per call, and the churn test
	# calls this 30 times).
	echo "${points//$'\n'/ }"
}
# ns_devs NS: the names of NS's devices, sorted, on one line.
ns_devs() {
	netns_exec "$1" ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort | paste -sd' '
}
# rfw_ingress_devs NS: the devices of NS on which rfw has a netdev ingress
# hook (the fast path's), sorted, on one line, from `nft list hooks netdev
# device DEV`.
rfw_ingress_devs() {
	local d out=""
	for d in $(ns_devs "$1"); do
		netns_exec "$1" nft list hooks netdev device "$d" 2>/dev/null | grep -q '\[rfw\]' &&
			out="$out${out:+ }$d"
	done
	echo "$out"
}
# Every hook point of both families, as rfw_hooks prints them.
rfw_all_points="ip forward ip input ip output ip postrouting ip prerouting ip6 forward ip6 input ip6 output ip6 postrouting ip6 prerouting"

# stat_of SNAPSHOT FAMILY HOOK packets|bytes: one counter of a fwctl_stats snapshot.
stat_of() {
	echo "$1" | awk -v f="$2" -v h="$3" -v k="$4" \
		'$1 == f && $2 == h { print (k == "bytes") ? $4 : $3; found = 1 } END { if (!found) print "missing" }'
}

# snmp_counter NS NAME: a counter of the namespace's own IP stack, e.g.
# "Icmp:InEchos" (/proc/net/snmp) or "Icmp6InEchos" (/proc/net/snmp6): the
# end host's witness, independent of rfw.
snmp_counter() {
	local ns=$1 name=$2
	case "$name" in
	*:*)
		netns_exec "$ns" awk -v grp="${name%%:*}:" -v key="${name#*:}" '
			$1 == grp && !hdr { for (i = 2; i <= NF; i++) col[$i] = i; hdr = 1; next }
			$1 == grp && hdr { print $col[key]; exit }' /proc/net/snmp ;;
	*)
		netns_exec "$ns" awk -v key="$name" '$1 == key { print $2 }' /proc/net/snmp6 ;;
	esac
}

# setup_router NS_CLIENT NS_ROUTER NS_SERVER [MTU_SERVER_SIDE]: the classic
# three-namespace line, IPv4 and IPv6, static neighbours off (real ARP/NDP):
#   client 10.0.1.2 fd00:1::2 -- router 10.0.1.1 fd00:1::1 | 10.0.2.1 fd00:2::1 -- server 10.0.2.2 fd00:2::2
# One sysctl and one `ip -batch` per namespace (every process start costs
# under emulation), the router first: each end's link comes up with its
# peer already up, and its routes are added after that, as before. Fails
# if any step fails.
setup_router() {
	local c=$1 r=$2 s=$3 mtu=${4:-1500}
	ip link add veth0 netns "$c" type veth peer name veth0 netns "$r" || return 1
	ip link add veth1 netns "$r" type veth peer name veth0 netns "$s" || return 1
	netns_exec "$r" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	ip -net "$r" -batch - <<EOF || return 1
addr add 10.0.1.1/24 dev veth0
addr add fd00:1::1/64 dev veth0 nodad
addr add 10.0.2.1/24 dev veth1
addr add fd00:2::1/64 dev veth1 nodad
link set veth1 mtu $mtu
link set veth0 up
link set veth1 up
EOF
	netns_exec "$c" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip -net "$c" -batch - <<EOF || return 1
addr add 10.0.1.2/24 dev veth0
addr add fd00:1::2/64 dev veth0 nodad
link set veth0 up
route add default via 10.0.1.1
route add default via fd00:1::1
EOF
	netns_exec "$s" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip -net "$s" -batch - <<EOF || return 1
addr add 10.0.2.2/24 dev veth0
addr add fd00:2::2/64 dev veth0 nodad
link set veth0 mtu $mtu
link set veth0 up
route add default via 10.0.2.1
route add default via fd00:2::1
EOF
}

# ct_list NS ARGS...: `fwctl ct list` in NS (stderr's summary line dropped).
ct_list() {
	local ns=$1
	shift
	netns_exec "$ns" fwctl ct list "$@" 2>/dev/null
}

# ct_stat NS NAME: one line of `fwctl ct stats` ("NAME VALUE").
ct_stat() {
	netns_exec "$1" fwctl ct stats 2>/dev/null | awk -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print "missing" }'
}

# ct_stats NS NAME...: the values of several lines of one `fwctl ct stats`
# in NS, on one line in the order asked ("missing" for one not listed), as
# ct_stat gives each: one fwctl call for all of them.
ct_stats() {
	local ns=$1
	shift
	netns_exec "$ns" fwctl ct stats 2>/dev/null | awk -v keys="$*" '
		{ v[$1] = $2 }
		END { n = split(keys, k, " "); for (i = 1; i <= n; i++) printf "%s%s", ((k[i] in v) ? v[k[i]] : "missing"), (i < n ? " " : "\n") }'
}

# ---------------------------------------------------------------------------
# Rules, NAT and mangle: helpers appended for rfw_nat.sh,
# rfw_nat_transfer.sh, rfw_filter.sh, rfw_mangle.sh, rfw_restore.sh and
# rfw_ct_steer.sh. Witnesses stay in the end hosts: their nf_tables counters,
# their sockets, their /proc/net/snmp; the router namespace runs rfw only
# (nftables there would turn nf_conntrack on in it).

# fw NS ARGS...: fwctl in namespace NS.
fw() {
	local ns=$1
	shift
	netns_exec "$ns" fwctl "$@"
}

# kill_ns_procs: ends every process still running in the test's namespaces
# (`ip netns pids` of all of them from one `ip -batch`).
kill_ns_procs() {
	[ ${#ns_list[@]} -eq 0 ] && return 0
	printf 'netns pids %s\n' "${ns_list[@]}" | ip -force -batch - 2>/dev/null | xargs -r kill 2>/dev/null
}

# rfw_cleanup: the EXIT trap of these tests: the script's background jobs,
# every process in its namespaces, the namespaces, $dir (if the test set
# one), and rfw unloaded.
rfw_cleanup() {
	local j
	for j in $(jobs -p); do kill "$j" 2>/dev/null; done
	kill_ns_procs
	cleanup_all_ns
	[ -n "${dir:-}" ] && rm -rf "$dir"
	modprobe -r rfw 2>/dev/null
}

# kernel_log_clean: one PASS/FAIL line on the kernel log (the runner checks
# it again after the test).
kernel_log_clean() {
	local splats
	splats=$(dmesg_splats)
	if [ -z "$splats" ]; then pass "kernel log clean"; else fail "kernel log: $splats"; fi
}

# add_host NS_ROUTER NS_HOST IF N [MTU]: one more host on NS_ROUTER, as
# setup_router builds them: NS_ROUTER's IF 10.0.N.1 fd00:N::1 -- NS_HOST's
# veth0 10.0.N.2 fd00:N::2 (MTU on both ends, default 1500), the host's
# default routes via NS_ROUTER, forwarding on in NS_ROUTER. As
# setup_router: one sysctl and one `ip -batch` per namespace, the router's
# end up first; fails if any step fails.
add_host() {
	local r=$1 h=$2 dev=$3 n=$4 mtu=${5:-1500}
	ip link add "$dev" netns "$r" type veth peer name veth0 netns "$h" || return 1
	netns_exec "$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	ip -net "$r" -batch - <<EOF || return 1
addr add 10.0.$n.1/24 dev $dev
addr add fd00:$n::1/64 dev $dev nodad
link set $dev mtu $mtu up
EOF
	netns_exec "$h" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip -net "$h" -batch - <<EOF || return 1
addr add 10.0.$n.2/24 dev veth0
addr add fd00:$n::2/64 dev veth0 nodad
link set veth0 mtu $mtu up
route add default via 10.0.$n.1
route add default via fd00:$n::1
EOF
}

# listening NS PORT [tcp|udp]: a socket of NS listens on PORT.
listening() {
	local f=t
	[ "${3:-tcp}" = udp ] && f=u
	netns_exec "$1" ss -Hln$f "( sport = :$2 )" | grep -q .
}

# banner_server NS PORT TAG [4|6]: a forking TCP server in NS on PORT that
# answers each connection with "TAG PEERADDR PEERPORT", the client's address
# as this end host saw it (socat's SOCAT_PEERADDR: IPv6 in brackets, every
# group written out, see addr_peer), then closes. Waits until it listens.
banner_server() {
	local ns=$1 port=$2 tag=$3 v=${4:-4} opt=""
	[ "$v" = 6 ] && opt=",ipv6only=1"
	# shellcheck disable=SC2016 # expanded by the shell socat starts
	nsenter --net="/run/netns/$ns" socat "TCP$v-LISTEN:$port,reuseaddr,fork$opt" \
		SYSTEM:"echo $tag \$SOCAT_PEERADDR \$SOCAT_PEERPORT" </dev/null >/dev/null 2>&1 &
	busywait 60000 listening "$ns" "$port" tcp
}

# addr_peer ADDR: ADDR as banner_server reports it: IPv4 as is, IPv6 in
# brackets with all eight groups of four digits.
addr_peer() {
	case "$1" in
	*:*) echo "$1" | awk '{
		n = split($0, halves, "::")
		nl = split(halves[1], l, ":"); if (halves[1] == "") nl = 0
		nr = 0; if (n == 2 && halves[2] != "") nr = split(halves[2], r, ":")
		out = ""; k = 0
		for (i = 1; i <= nl; i++) g[++k] = l[i]
		for (i = 0; i < 8 - nl - nr; i++) g[++k] = "0"
		for (i = 1; i <= nr; i++) g[++k] = r[i]
		for (i = 1; i <= 8; i++) out = out (i > 1 ? ":" : "") sprintf("%04s", tolower(g[i]))
		gsub(/ /, "0", out)
		print "[" out "]" }' ;;
	*) echo "$1" ;;
	esac
}

# tcp_get NS ADDRESS [SECONDS]: connects from NS to socat ADDRESS (TCP4:a:p
# or TCP6:[a]:p, options allowed) and prints what the server sends; fails
# if the connection could not be made within SECONDS (default 5).
tcp_get() {
	local t=${3:-5}
	netns_exec "$1" timeout $((t + 10)) socat -u "$2,connect-timeout=$t" STDOUT 2>/dev/null
}

# tcp_servers NS ADDR PORT...: one process in NS listening on each PORT of
# ADDR (0.0.0.0, or :: for both families), answering every connection with
# "OK PORT" and closing it. Waits until the last port listens.
tcp_servers() {
	local ns=$1 addr=$2
	shift 2
	nsenter --net="/run/netns/$ns" python3 -S -c '
import selectors, socket, sys
addr = sys.argv[1]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
sel = selectors.DefaultSelector()
for p in sys.argv[2:]:
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((addr, int(p)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ, p)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        try:
            c.sendall(("OK %s\n" % key.data).encode())
        except OSError:
            pass
        c.close()
' "$addr" "$@" </dev/null >/dev/null 2>&1 &
	busywait 60000 listening "$ns" "${!#}" tcp
}

# udp_probe NS SPORT DST DPORT [SECONDS]: one datagram from port SPORT over
# a connected UDP socket, then waits for an answer. Prints "reply",
# "refused" (an ICMP port unreachable reached this very socket: the
# kernel matched the error's inner header to it) or "timeout".
udp_probe() {
	netns_exec "$1" python3 -S -c '
import socket, sys
sport, dst, dport, t = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
s.connect((dst, dport))
s.settimeout(t)
try:
    s.send(b"probe")
    s.recv(100)
    print("reply")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
' "$2" "$3" "$4" "${5:-3}"
}

# nft_witness NS NAME=ADDR...: in end host NS, table inet rfw_w counts ICMP
# and ICMPv6 echo requests and replies: counter NAME_in those from ADDR,
# NAME_out those sent to ADDR (nft_nat.sh's counters).
nft_witness() {
	local ns=$1 kv name addr ip icmp counters="" in="" out=""
	shift
	for kv in "$@"; do
		name=${kv%%=*}
		addr=${kv#*=}
		case "$addr" in
		*:*) ip=ip6 icmp="icmpv6 type { echo-request, echo-reply }" ;;
		*) ip=ip icmp="icmp type { echo-request, echo-reply }" ;;
		esac
		counters+="counter ${name}_in { }"$'\n'"counter ${name}_out { }"$'\n'
		in+="$ip saddr $addr $icmp counter name ${name}_in"$'\n'
		out+="$ip daddr $addr $icmp counter name ${name}_out"$'\n'
	done
	netns_exec "$ns" nft -f - <<NFT
table inet rfw_w {
$counters
	chain input {
		type filter hook input priority 0; policy accept;
$in
	}
	chain output {
		type filter hook output priority 0; policy accept;
$out
	}
}
NFT
}

# nft_packets NS COUNTER [TABLE]: packets of a named counter of table inet
# TABLE (default rfw_w) in NS; "missing" if there is no such counter.
nft_packets() {
	netns_exec "$1" nft list counter inet "${3:-rfw_w}" "$2" 2>/dev/null | awk '
		{ for (i = 1; i < NF; i++) if ($i == "packets") { print $(i + 1); f = 1; exit } }
		END { if (!f) print "missing" }'
}

# nft_reset NS: zeroes every nf_tables counter of NS.
nft_reset() {
	netns_exec "$1" nft reset counters inet >/dev/null
}

# ct_flows NS [FILTERS]: `fwctl ct list` in NS, one connection a line as
# "PROTO STATE OSRC ODST OSPORT ODPORT RSRC RDST RSPORT RDPORT FLAGS":
# the original and the reply tuple (NAT shows in the reply), STATE "-"
# but for TCP, the ICMP id in place of both ports, FLAGS the bracketed
# words joined by commas ("-" if none).
ct_flows() {
	ct_list "$@" | awk '{
		state = "-"; d = 0; flags = ""
		for (i = 1; i <= NF; i++) {
			if (i <= 4 && $i ~ /^[A-Z_0-9]+$/ && $i !~ /^[0-9]+$/) state = $i
			if ($i ~ /^\[[A-Z]+\]$/) { f = substr($i, 2, length($i) - 2); flags = flags (flags == "" ? "" : ",") f; continue }
			eq = index($i, "="); if (!eq) continue
			k = substr($i, 1, eq - 1); v = substr($i, eq + 1)
			if (k == "src") { d++; s[d] = v }
			else if (k == "dst") t[d] = v
			else if (k == "sport") sp[d] = v
			else if (k == "dport") dp[d] = v
			else if (k == "id") { sp[d] = v; dp[d] = v }
		}
		print $1, state, s[1], t[1], sp[1], dp[1], s[2], t[2], sp[2], dp[2], (flags == "" ? "-" : flags)
		delete s; delete t; delete sp; delete dp
	}'
}

# rule_info NS TABLE CHAIN REGEX packets|handle|count [REGEX WHAT]...: the
# rules of CHAIN in `fwctl TABLE list --chain CHAIN -o json` whose JSON
# text, counters and handle left out, matches REGEX (Python syntax,
# case-insensitive): their packet counters summed, the first one's
# "handle", or how many match. The layout of that JSON is not assumed
# beyond this: a rule is the innermost object that carries a "packets"
# count, directly or in a "counters"/"counter" object. Prints "nojson" if
# the output is not JSON. Several REGEX WHAT pairs are answered from the
# same listing, on one line, separated by spaces (one fwctl and one python
# start for all: each costs about a second under emulation).
rule_info() {
	netns_exec "$1" fwctl "$2" list --chain "$3" -o json 2>/dev/null | python3 -S -c '
import json, re, sys
asked = list(zip(sys.argv[1::2], sys.argv[2::2]))
try:
    data = json.load(sys.stdin)
except ValueError:
    print(" ".join("nojson" for _ in asked))
    sys.exit(0)
CK = ("counters", "counter")
def counted(o):
    if isinstance(o.get("packets"), int):
        return o
    for k in CK:
        c = o.get(k)
        if isinstance(c, dict) and isinstance(c.get("packets"), int):
            return c
    return None
def below(o):
    st = [v for k, v in o.items() if k not in CK]
    while st:
        v = st.pop()
        if isinstance(v, dict):
            if counted(v) is not None:
                return True
            st.extend(v.values())
        elif isinstance(v, list):
            st.extend(v)
    return False
def walk(v):
    if isinstance(v, dict):
        yield v
        for x in v.values():
            yield from walk(x)
    elif isinstance(v, list):
        for x in v:
            yield from walk(x)
def text(o):  # the rule without its counters and handle
    return json.dumps({k: v for k, v in o.items() if k not in CK + ("packets", "bytes", "handle")})
answers = []
for pattern, what in asked:
    rx = re.compile(pattern, re.I)
    rules = [o for o in walk(data) if counted(o) is not None and not below(o)
             and not set(o) <= {"packets", "bytes"} and rx.search(text(o))]
    if what == "packets":
        answers.append(sum(counted(o)["packets"] for o in rules))
    elif what == "count":
        answers.append(len(rules))
    else:
        h = [o["handle"] for o in rules if o.get("handle") is not None]
        answers.append(h[0] if h else "none")
print(" ".join(str(a) for a in answers))
' "${@:4}"
}
rule_packets() { rule_info "$1" "$2" "$3" "$4" packets; }
rule_handle() { rule_info "$1" "$2" "$3" "$4" handle; }

# save_rules NS: `fwctl save` of NS with the counters ("[P:B]") blanked, so
# that two saves compare equal whatever traffic ran in between.
save_rules() {
	netns_exec "$1" fwctl save | sed -E 's/\[[0-9]+:[0-9]+\]/[-]/g'
}

# one_line_error DESCRIPTION CMD...: CMD must fail with exactly one line
# on stderr and nothing on stdout.
one_line_error() {
	local what=$1 out err rc n=0 errf line
	shift
	errf=$(mktemp)
	out=$("$@" 2>"$errf")
	rc=$?
	err=$(<"$errf")
	rm -f "$errf"
	# Its non-empty lines, counted by the shell (no cat, no grep to start).
	while IFS= read -r line; do [ -n "$line" ] && n=$((n + 1)); done <<<"$err"
	if [ "$rc" -ne 0 ] && [ "$n" -eq 1 ] && [ -z "$out" ]; then
		pass "$what: exit $rc, \"$err\""
	else
		fail "$what: exit $rc, $n line(s) on stderr: $err; stdout: $out"
	fi
}

# nft_expect DESCRIPTION NS:COUNTER:PACKETS...: one PASS/FAIL line: each
# named counter of table inet rfw_w in NS holds exactly PACKETS (one nft
# call per namespace: process starts are dear under emulation).
nft_expect() {
	local what=$1 spec ns c want got bad="" n v
	local -A val=()
	shift
	for spec in "$@"; do
		IFS=: read -r ns c want <<<"$spec"
		if [ -z "${val[$ns:]+x}" ]; then
			val[$ns:]=1
			while read -r n v; do val[$ns:$n]=$v; done < <(netns_exec "$ns" nft list counters table inet rfw_w 2>/dev/null |
				awk '$1 == "counter" { n = $2 } $1 == "packets" { print n, $2 }')
		fi
		got=${val[$ns:$c]:-missing}
		[ "$got" = "$want" ] || bad+=" ${ns%-*}/$c=$got (want $want)"
	done
	if [ -z "$bad" ]; then pass "$what"; else fail "$what:$bad"; fi
}

# tcp_peers NS PORT: the peers ("ADDR:PORT") of the established TCP
# connections of NS whose local port is PORT, one a line.
tcp_peers() {
	netns_exec "$1" ss -Htn state established "( sport = :$2 )" | awk '{ print $4 }'
}

# ---------------------------------------------------------------------------
# Leaks and allocation failures (issue 17): kmemleak, rfw's slab caches and
# the kernel's fault injection (Documentation/dev-tools/kmemleak.rst,
# Documentation/fault-injection/fault-injection.rst). vm/guest.sh checks
# kmemleak and the slab caches after every test; rfw_alloc_fail.sh injects
# failures with the fault_* helpers.

# The kernel log lines that are reports whatever else happens: BUG (KASAN,
# "sleeping function called from invalid context"), WARNING (lockdep,
# suspicious RCU usage, kmem_cache_destroy with objects left), Oops, stalls,
# and SLUB's own checks ("BUG rfw_conn (Not tainted): Objects remaining").
# Unlike dmesg_splats it leaves out a bare "Call Trace:": an injected
# allocation failure is logged with a stack (fail_dump, warn_alloc,
# kmem_cache_create's dump_stack) and is no report.
splat_strong_re='BUG:|BUG [^ ]+ \(|WARNING:|Oops|KASAN|UBSAN:|general protection fault|soft lockup|hard LOCKUP|blocked for more than|detected stalls|RCU stall|possible recursive locking|circular locking'

debugfs_mounted() {
	mountpoint -q /sys/kernel/debug 2>/dev/null ||
		mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
}

kmemleak_file=/sys/kernel/debug/kmemleak

# kmemleak_available: the kernel has kmemleak and it is on (it turns itself
# off for the rest of the boot after an internal error; the file then
# refuses every command but "clear").
kmemleak_available() {
	debugfs_mounted && [ -e "$kmemleak_file" ] && echo stack=on 2>/dev/null >"$kmemleak_file"
}

# kmemleak_scan: scans for leaks so that everything allocated before the
# call and unreferenced now is reported. kmemleak reports an object only
# when a scan finds it unreferenced and unchanged since the scan before
# (a first scan records its checksum: update_checksum() in mm/kmemleak.c)
# and at least 5 s old when the scan starts (MSECS_MIN_AGE): so two scans,
# the second 5 s after the call at the earliest. Fails if kmemleak is off.
kmemleak_scan() {
	local t0 ms
	t0=$(date +%s%3N)
	echo scan 2>/dev/null >"$kmemleak_file" || return 1
	ms=$((5300 - ($(date +%s%3N) - t0)))
	[ "$ms" -gt 0 ] && sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	echo scan 2>/dev/null >"$kmemleak_file" || return 1
}

# kmemleak_take FILE: the reports so far into FILE, then forgets them
# ("clear": they are not shown again, later leaks are).
kmemleak_take() {
	cat "$kmemleak_file" >"$1" 2>/dev/null
	echo clear 2>/dev/null >"$kmemleak_file"
}

# kmemleak_count FILE: how many objects FILE reports.
kmemleak_count() {
	grep -c '^unreferenced object' "$1"
}

# kmemleak_rfw FILE: the reports of FILE that are rfw's: a frame of the
# allocation's backtrace is rfw's ("func+0x12/0x40 [rfw]"), or is the bare
# address of module code that is gone (above the core kernel: see
# fault_modules_area). kmemleak prints backtraces with %pS when the file is
# read, and the checks run after rfw is unloaded, so rfw's frames are bare
# then. Other modules stay loaded in the suite, but their init code is
# freed after their load: a leak of another module's init function would
# count too (its backtrace shows do_init_module under the bare frame).
# Bare addresses in the core kernel (its init code, freed after boot) and
# named frames of the core kernel or other modules do not count.
# Nor does the name of a slab cache's sysfs kobject (allocated under
# sysfs_slab_add): when kobject_init_and_add() fails there (an injected
# failure in kernfs), 6.12's SLUB returns without kobject_put() and the
# name leaks, whoever creates the cache. The kernel's bug, fixed upstream
# by 2420baa8e046 ("mm/slab: Allow cache creation to proceed even if
# sysfs registration fails"); rfw_alloc_fail.sh meets it when its
# injected failure lands there during rfw's kmem_cache_create.
kmemleak_rfw() {
	[ -n "${kmemleak_core_top:-}" ] ||
		kmemleak_core_top=$(awk 'NF == 3 { a = $1 ""; if (a > m) m = a } END { print m }' /proc/kallsyms 2>/dev/null)
	awk -v top="${kmemleak_core_top:-ffffffffffffffff}" '
	function done() {
		if (blk != "" && (own || gone) && !(sysfs && kname)) printf "%s", blk
		blk = ""; own = gone = sysfs = kname = 0
	}
	/^unreferenced object/ { done(); blk = $0 "\n"; bt = 0; next }
	blk == "" { next }
	{ blk = blk $0 "\n" }
	/^  backtrace/ { bt = 1; next }
	!bt { next }
	/^    kobject_set_name_vargs\+/ { kname = 1 }
	/^    sysfs_slab_add\+/ { sysfs = 1 }
	/^    .*\[rfw\]$/ { own = 1; next }
	/^    0x[0-9a-f]+$/ {
		a = substr($1, 3); while (length(a) < 16) a = "0" a
		if (a > top) gone = 1
	}
	END { done() }' "$1"
}

# rfw_slab_objects: "CACHE OBJECTS" for each of rfw's slab caches (named
# rfw_*; unmerged, SLAB_NO_MERGE in kmod/helpers.c, so each has its own
# directory): the objects in use, counted exactly. The cache is shrunk
# first: that empties KASAN's quarantine of its objects and flushes the
# per-CPU slabs (kmem_cache_shrink), whose free objects /proc/slabinfo's
# active_objs and the unshrunk `objects` file count as in use.
rfw_slab_objects() {
	local d
	if [ -d /sys/kernel/slab ]; then
		for d in /sys/kernel/slab/rfw*; do
			[ -e "$d/objects" ] || continue
			echo 1 2>/dev/null >"$d/shrink"
			echo "${d##*/} $(cut -d' ' -f1 "$d/objects")"
		done
	else
		awk '$1 ~ /^rfw/ { print $1, $2 }' /proc/slabinfo 2>/dev/null
	fi
}

# rfw_slab_above BASELINE: the caches of rfw_slab_objects holding more
# objects than in BASELINE (an earlier rfw_slab_objects; a cache missing
# there held none), as "CACHE NOW (baseline B)"; fails if there are none.
rfw_slab_above() {
	rfw_slab_objects | awk -v base="$1" '
		BEGIN { n = split(base, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); b[f[1]] = f[2] } }
		$2 > b[$1] + 0 { printf "%s %d (baseline %d)\n", $1, $2, b[$1] + 0; found = 1 }
		END { exit !found }'
}

# --- fault injection ---------------------------------------------------
# The kernel's failslab and fail_page_alloc make allocations fail, chosen
# by probability, interval, times (-1: no limit), task (/proc/PID/make-it-
# fail, inherited by children), slab cache (/sys/kernel/slab/CACHE/
# failslab with cache-filter), and the code on the stack (require-start/
# require-end, the innermost stacktrace-depth frames); or the Nth
# allocation of a task that passes those filters (/proc/PID/fail-nth,
# whatever the probability). Their defaults spare GFP_KERNEL allocations
# (ignore-gfp-wait) and, for pages, order 0 (min-order 1), where rfw's
# control path allocates: the helpers below lift both.
fault_dir=/sys/kernel/debug

# fault_available: failslab and fail_page_alloc with the stack filter
# (CONFIG_FAULT_INJECTION_DEBUG_FS, CONFIG_FAULT_INJECTION_STACKTRACE_FILTER),
# make-it-fail and fail-nth.
fault_available() {
	debugfs_mounted &&
		[ -w "$fault_dir/failslab/require-start" ] &&
		[ -w "$fault_dir/fail_page_alloc/require-start" ] &&
		[ -w /proc/self/make-it-fail ] && [ -w /proc/thread-self/fail-nth ]
}

# fault_set TYPE KEY=VALUE...: writes /sys/kernel/debug/TYPE/KEY (TYPE
# failslab or fail_page_alloc).
fault_set() {
	local t=$1 kv
	shift
	for kv in "$@"; do
		echo "${kv#*=}" 2>/dev/null >"$fault_dir/$t/${kv%%=*}" ||
			{ echo "fault_set: cannot write ${kv#*=} to $t/${kv%%=*}" >&2; return 1; }
	done
}

# fault_reset: the kernel's defaults again (FAULT_ATTR_INITIALIZER,
# mm/failslab.c, mm/fail_page_alloc.c) and no cache marked: nothing fails.
# guest.sh calls it after every test, in case a test died with injection on.
fault_reset() {
	local t f
	[ -d "$fault_dir/failslab" ] || return 0
	for t in failslab fail_page_alloc; do
		fault_set "$t" probability=0 interval=1 times=1 space=0 verbose=2 task-filter=N \
			ignore-gfp-wait=Y require-start=0 require-end=0xffffffffffffffff \
			reject-start=0 reject-end=0 stacktrace-depth=32
	done
	fault_set failslab cache-filter=N
	fault_set fail_page_alloc min-order=1 ignore-gfp-highmem=Y
	grep -l '^1' /sys/kernel/slab/*/failslab 2>/dev/null | while read -r f; do
		echo 0 >"$f"
	done
}

# fault_module_range MODULE: "START END" around a loaded module's code: from
# its text (/proc/modules' address) as far as its total size, which its
# data and init sections, allocated after the text, also count in.
fault_module_range() {
	local base size
	read -r size base < <(awk -v m="$1" '$1 == m { print $2, $6 }' /proc/modules)
	[ -n "$base" ] && [ "$((base))" -ne 0 ] || return 1
	printf '0x%x 0x%x\n' "$((base))" "$((base + size))"
}

# fault_modules_area: "START END" holding every module's code: above the
# core kernel's last symbol (/proc/kallsyms lines without a [module]) to
# the top of the address space. A module being loaded has no address yet.
fault_modules_area() {
	local top
	top=$(awk 'NF == 3 { a = $1 ""; if (a > m) m = a } END { print m }' /proc/kallsyms)
	[ -n "$top" ] && [ "$((16#$top))" -ne 0 ] || return 1
	printf '0x%s 0xffffffffffffffff\n' "$top"
}

# fault_on TYPE [OPTIONS]: TYPE (failslab or fail_page_alloc) makes
# allocations fail, GFP_KERNEL ones and single pages included:
#   -c CACHE       failslab only: only from CACHE (repeatable; cache-filter)
#   -t             only in tasks with make-it-fail (fail_run, fail_task)
#   -r START END   only with code of [START, END) among the innermost
#                  -d frames (default 32, the kernel's most)
#   -p PERCENT     probability (default 100)
#   -i N           only every Nth call that passes the filters (interval)
#   -n N           at most N failures (times; default -1, no limit)
#   -v N           0 silent, 1 a line per failure, 2 and its stack (default 1)
# With -p 0 nothing fails but fail-nth (fail_nth_run).
fault_on() {
	local t=$1 task=N start=0 end=0xffffffffffffffff depth=32 p=100 i=1 n=-1 v=1 c
	local caches=()
	shift
	while [ $# -gt 0 ]; do
		case "$1" in
		-c) caches+=("$2"); shift 2 ;;
		-t) task=Y; shift ;;
		-r) start=$2 end=$3; shift 3 ;;
		-d) depth=$2; shift 2 ;;
		-p) p=$2; shift 2 ;;
		-i) i=$2; shift 2 ;;
		-n) n=$2; shift 2 ;;
		-v) v=$2; shift 2 ;;
		*) echo "fault_on: unknown option $1" >&2; return 1 ;;
		esac
	done
	if [ "$t" = failslab ]; then
		for c in "${caches[@]}"; do
			echo 1 2>/dev/null >"/sys/kernel/slab/$c/failslab" ||
				{ echo "fault_on: no slab cache $c (or merged)" >&2; return 1; }
		done
		fault_set failslab "cache-filter=$([ ${#caches[@]} -gt 0 ] && echo Y || echo N)" || return 1
	else
		[ ${#caches[@]} -eq 0 ] || { echo "fault_on: -c is for failslab" >&2; return 1; }
		fault_set fail_page_alloc min-order=0 || return 1
	fi
	fault_set "$t" ignore-gfp-wait=N "task-filter=$task" "require-start=$start" \
		"require-end=$end" "stacktrace-depth=$depth" "interval=$i" "times=$n" \
		space=0 "verbose=$v" "probability=$p"
}

# failslab_rfw [OPTIONS]: fault_on failslab -c for each of rfw's slab
# caches (rfw_*: KmemCache::new in kmod; rfw_conn holds the connections).
failslab_rfw() {
	local d args=()
	for d in /sys/kernel/slab/rfw*; do [ -e "$d/failslab" ] && args+=(-c "${d##*/}"); done
	[ ${#args[@]} -gt 0 ] || { echo "failslab_rfw: no rfw slab cache (rfw not loaded?)" >&2; return 1; }
	fault_on failslab "${args[@]}" "$@"
}

# fail_task PID 0|1: marks a task (and the children it forks from now on)
# for task-filter.
fail_task() {
	echo "$2" >"/proc/$1/make-it-fail"
}

# fail_run CMD...: CMD marked for task-filter (make-it-fail).
fail_run() {
	bash -c 'echo 1 >/proc/self/make-it-fail && exec "$@"' fail_run "$@"
}

# fail_nth_sh: the script of fail_nth_run, for `ip netns exec NS bash -c
# "$fail_nth_sh" N CMD...`.
# shellcheck disable=SC2016 # expanded by that bash
fail_nth_sh='echo "$0" >/proc/thread-self/fail-nth && exec "$@"'

# fail_nth_run N CMD...: CMD with the Nth allocation of its task that
# passes the filters failing (fail-nth survives exec; a child starts at 0).
# With fault_nth_setup, the filters select the allocations under a range of
# code, and nothing else fails.
fail_nth_run() {
	local n=$1
	shift
	bash -c "$fail_nth_sh" "$n" "$@"
}

# fault_nth_setup START END [DEPTH]: failslab and fail_page_alloc count, for
# fail-nth, the allocations made with code of [START, END) among the
# innermost DEPTH frames (default 32), GFP_KERNEL and single pages
# included; nothing fails by probability. `times` starts high, so that
# fault_times tells how many failures were injected, logged or not.
fault_nth_times=1000000
fault_nth_setup() {
	fault_on failslab -p 0 -r "$1" "$2" -d "${3:-32}" -v 2 -n "$fault_nth_times" &&
		fault_on fail_page_alloc -p 0 -r "$1" "$2" -d "${3:-32}" -v 2 -n "$fault_nth_times"
}

# fault_times: failslab's and fail_page_alloc's `times` added up: every
# injected failure takes one off (should_fail_ex), including those of
# __GFP_NOWARN allocations, which are not logged.
fault_times() {
	echo $(($(cat "$fault_dir/failslab/times") + $(cat "$fault_dir/fail_page_alloc/times")))
}
