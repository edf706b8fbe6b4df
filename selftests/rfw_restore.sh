#!/bin/bash
# `fwctl restore`: atomic ruleset replacement.
#
#   client 10.0.1.2 -- router (rfw) -- server 10.0.2.2 (tcp_stream.py)
#
# * Under traffic: a TCP transfer through the router (masqueraded) while
#   the router's ruleset is replaced 30 times (RFW_RESTORES), alternating
#   two valid rulesets that both let the flow through (FORWARD policy DROP
#   in both: a moment without the accepting rules would drop packets). The
#   transfer runs until the restores are done and completes (the server
#   received every byte the client sent; no retransmission storm; no
#   second without progress), and after the restores `fwctl ct list` still
#   shows the connection ESTABLISHED with its NAT binding. The router's
#   final ruleset is the last one loaded.
# * Rejected: a ruleset with a syntax error, and rulesets that parse but do
#   not validate (DNAT in POSTROUTING, a jump to an undeclared chain), each
#   with a valid but different first table: `restore` exits non-zero with
#   one line on stderr, and `fwctl save` is byte-identical before and after
#   (no table of the file was installed).
# * `restore --check` (from a file and from stdin) installs nothing:
#   `fwctl save` unchanged; it refuses what restore refuses.
# * `save` output restores to itself.
# The rejection cases run in a namespace of their own with no traffic, so
# that the saved counters stay put.
# RFW_RESTORES=N: N restores under traffic (default 30, about 0.8 s each
# under TCG). run.sh does not pass it on; in the VM, from the repository's
# root: selftests/run.sh -- env RFW_RESTORES=100 bash selftests/rfw_restore.sh
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
checktool "python3 -V" "python3"
dir=$(mktemp -d)
trap rfw_cleanup EXIT

modprobe rfw || { fail "modprobe rfw"; exit $ret; }
setup_ns cl rt sv q || { fail "setup_ns"; exit $ret; }
setup_router "$cl" "$rt" "$sv" || { fail "setup_router"; exit $ret; }

cat >"$dir/A" <<'EOF'
# Ruleset A: stateful forwarding, masquerade, a mark.
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD --ct-state established,related --accept
-A FORWARD -4 -i veth0 -o veth1 -p tcp --dport 5201 --ct-state new --accept
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -4 -o veth1 --masquerade
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -4 -p tcp --dport 5201 --set-mark 0x1
COMMIT
EOF
cat >"$dir/B" <<'EOF'
# Ruleset B: the same flow allowed through a user chain, SNAT, another mark.
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:from_client - [0:0]
-A FORWARD -4 -i veth0 --jump from_client
-A FORWARD --ct-state established,related --accept
-A from_client --ct-state established --accept
-A from_client -p tcp --dport 5201 --ct-state new --accept
-A from_client --return
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -4 -o veth1 -s 10.0.1.0/24 --to-source 10.0.2.1
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -4 -p tcp --dport 5201 --set-mark 0x2
COMMIT
EOF
# Each bad file starts with a valid filter table unlike A's, so that a
# partly applied restore would show in `fwctl save`.
good_first='*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -4 -p tcp --dport 22 --accept
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]'
printf '%s\n%s\nCOMMIT\n' "$good_first" '-A POSTROUTING -4 -o veth1 --frobnicate' >"$dir/bad-syntax"
printf '%s\n%s\nCOMMIT\n' "$good_first" '-A POSTROUTING -4 -p tcp --dport 80 --to-destination 10.0.2.2' >"$dir/bad-hook"
printf '%s\n%s\nCOMMIT\n' "$good_first" '-A POSTROUTING -4 --jump nosuchchain' >"$dir/bad-jump"

# --- restores under traffic --------------------------------------------------
fw "$rt" restore "$dir/A" || fail "restore A"
# The transfer runs until the restores are done, however long they take
# (tcp_stream.py: 10 Mbit/s, ended by a stop file, bounded at 30 minutes).
stream="python3 -S ${RFW_SELFTESTS:-$(dirname "$0")}/tcp_stream.py"
ip netns exec "$sv" $stream server 10.0.2.2 5201 "$dir/received" </dev/null >/dev/null 2>"$dir/srv.err" &
spid=$!
busywait 60000 listening "$sv" 5201 || fail "stream server listens"
# restores N: N restores in the router, alternating B and A (B first), from
# one shell in the router's namespace (one `ip netns exec` for all); prints
# how many were accepted.
restores() {
	netns_exec "$rt" bash -c 'ok=0
		for i in $(seq 1 "$1"); do
			if [ $((i % 2)) = 1 ]; then f=B; else f=A; fi
			fwctl restore "$2/$f" && ok=$((ok + 1))
		done
		echo $ok' restores "$1" "$dir"
}
ip netns exec "$cl" $stream client 10.0.2.2 5201 1250000 "$dir/stop" 1800 "$dir/result" \
	</dev/null >/dev/null 2>"$dir/cl.err" &
cpid=$!
# A few seconds of transfer before the first restore.
progress() { [ "$(cat "$dir/result.progress" 2>/dev/null || echo 0)" -ge 3 ]; }
busywait 120000 progress || fail "the transfer made no progress: $(cat "$dir/cl.err")"
t0=$(date +%s%3N)
nr=${RFW_RESTORES:-30}
n=$(restores "$nr")
# The last one: B for an odd count, A for an even one.
if [ $((nr % 2)) = 1 ]; then f=B; else f=A; fi
echo "# $nr restores took $(($(date +%s%3N) - t0)) ms"
if kill -0 $cpid 2>/dev/null; then
	pass "$nr restores ran while the transfer was going on"
else
	fail "the transfer ended before the last of $nr restores: $(cat "$dir/cl.err")"
fi
check "$nr restores, every one accepted" "$nr" "$n"
est=$(ct_flows "$rt" -p tcp | awk '$6 == 5201 && $2 == "ESTABLISHED" && $8 == "10.0.2.1" && $11 ~ /ASSURED/' | wc -l)
check "fwctl ct list after the restores: the connection ESTABLISHED [ASSURED], replies to the NAT address" 1 "$est"
touch "$dir/stop"
wait $cpid
check "stream client exit status" 0 $?
wait $spid
check "stream server exit status" 0 $?
read -r sent retr minint nint err < <(python3 -S -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print(0, -1, -1, 0, "no-result"); sys.exit()
iv = j["seconds"]
print(j["sent"], j["retransmits"], min(iv) if iv else -1, len(iv), j["error"].replace(" ", "_"))
' "$dir/result")
recvd=$(cat "$dir/received" 2>/dev/null || echo 0)
echo "# transfer: sent $sent, received $recvd, retransmits $retr, smallest 1 s interval $minint bytes of $nint"
check "the transfer ended when told to, with no error" none "$err"
if [ "${sent:-0}" -gt 0 ] && [ "$recvd" = "$sent" ]; then
	pass "witness: the server received every byte the client sent ($recvd)"
else
	fail "witness: server received $recvd of $sent bytes"
fi
# A storm: drops during the replacements would each cost retransmissions.
limit=$((50 + sent / 1448 / 50))
if [ "${retr:--1}" -ge 0 ] && [ "$retr" -le $limit ]; then
	pass "no retransmission storm ($retr retransmits, limit $limit)"
else
	fail "$retr retransmits (limit $limit)"
fi
[ "${minint:-0}" -gt 0 ] && pass "no second of the transfer without progress (client's 1 s intervals)" ||
	fail "an interval of the transfer moved $minint bytes"
# The last restore loaded $f.
fw "$q" restore "$dir/$f" || fail "restore $f in a fresh namespace"
if [ "$(save_rules "$rt")" = "$(save_rules "$q")" ]; then
	pass "the router's final ruleset is $f, the last one restored (fwctl save, as $f restores in a fresh namespace)"
else
	fail "the router's final ruleset differs from $f, the last one restored"
	diff <(save_rules "$rt") <(save_rules "$q")
fi

# --- rejected rulesets change nothing ---------------------------------------
fw "$q" restore "$dir/A" || fail "restore A in the quiet namespace"
fw "$q" save >"$dir/save1" || fail "save"
grep -q -- '--masquerade' "$dir/save1" && pass "fwctl save shows the restored ruleset" || fail "save: $(cat "$dir/save1")"
for bad in bad-syntax bad-hook bad-jump; do
	one_line_error "restore $bad refused" fw "$q" restore "$dir/$bad"
	fw "$q" save >"$dir/save2"
	if cmp -s "$dir/save1" "$dir/save2"; then
		pass "after the refused $bad, fwctl save is byte-identical"
	else
		fail "after the refused $bad, fwctl save changed"
		diff "$dir/save1" "$dir/save2"
	fi
	one_line_error "restore --check $bad refused" fw "$q" restore --check "$dir/$bad"
done

# --- restore --check installs nothing --------------------------------------
fw "$q" restore --check "$dir/B" && pass "restore --check B: valid" || fail "restore --check B"
fw "$q" save >"$dir/save2"
cmp -s "$dir/save1" "$dir/save2" && pass "restore --check B installed nothing (save byte-identical)" ||
	fail "restore --check B changed the ruleset"
fw "$q" restore --check <"$dir/B" && pass "restore --check from stdin: valid" || fail "restore --check < B"
fw "$q" save >"$dir/save2"
cmp -s "$dir/save1" "$dir/save2" && pass "restore --check from stdin installed nothing" ||
	fail "restore --check < B changed the ruleset"

# --- save restores to itself ---------------------------------------------------
fw "$q" restore "$dir/B" || fail "restore B"
fw "$q" save >"$dir/saveB"
fw "$q" restore "$dir/A" || fail "restore A"
fw "$q" restore <"$dir/saveB" || fail "restore of save's output (stdin)"
fw "$q" save >"$dir/saveB2"
cmp -s "$dir/saveB" "$dir/saveB2" && pass "save | restore | save is stable" || fail "save of restored save differs"

kernel_log_clean
exit $ret
