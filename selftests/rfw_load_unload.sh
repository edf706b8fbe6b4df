#!/bin/bash
# (a) modprobe rfw / rmmod rfw 5 times (RFW_LOAD_CYCLES): each load
# registers hooks and the netlink family in every namespace, each unload
# removes them; the kernel log stays free of splats (also checked by the
# runner after every test). Every other test loads and unloads rfw too, and
# rfw_unload_traffic.sh unloads it under traffic.
# RFW_LOAD_CYCLES=N: N cycles. run.sh does not pass it on; in the VM, from
# the repository's root:
#   selftests/run.sh -- env RFW_LOAD_CYCLES=20 bash selftests/rfw_load_unload.sh
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"

checktool "modinfo rfw" "rfw.ko installed for modprobe"
trap 'cleanup_all_ns; modprobe -r rfw 2>/dev/null' EXIT

# A second namespace exists throughout, so every load and unload also walks
# the pernet init/exit of a namespace other than the initial one.
setup_ns other || fail "cannot create namespace"
dmesg -C

# loaded: rfw is in /proc/modules (read by the shell: no process start).
loaded() {
	local m _
	while read -r m _; do [ "$m" = rfw ] && return 0; done </proc/modules
	return 1
}

cycles=${RFW_LOAD_CYCLES:-5} loads=0
for i in $(seq 1 "$cycles"); do
	modprobe rfw || { fail "modprobe rfw failed in round $i"; break; }
	loaded || { fail "rfw not in /proc/modules after load $i"; break; }
	# The family is there and answers in both namespaces.
	fwctl stats >/dev/null || { fail "fwctl stats failed after load $i"; break; }
	netns_exec "$other" fwctl stats >/dev/null || { fail "fwctl stats in $other failed after load $i"; break; }
	rmmod rfw || { fail "rmmod rfw failed in round $i"; break; }
	loaded && { fail "rfw still loaded after rmmod $i"; break; }
	loads=$i
done
check "load/unload cycles" "$cycles" "$loads"

# A namespace created and destroyed while rfw is loaded runs pernet init and exit.
modprobe rfw
for i in $(seq 1 5); do
	setup_ns tmp && netns_exec "$tmp" fwctl stats >/dev/null && ip netns del "$tmp"
done
rmmod rfw

splats=$(dmesg_splats)
if [ -z "$splats" ]; then pass "kernel log clean"; else fail "kernel log: $splats"; fi
exit $ret
