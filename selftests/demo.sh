#!/bin/bash
# The user's job, shown end to end inside the VM (make demo):
#   client (10.0.10.2) -- router (rfw loaded) -- server (10.0.20.2)
# Loads rfw, adds one DNAT rule in the router's namespace
# (`fwctl nat add --to-destination 10.0.20.2:8080`), sends a 1 MiB TCP
# transfer and pings from the client to the router's address, which reach
# the server, and prints the rule, `fwctl ct list` (the translated
# connections) and `fwctl stats`.
source "${RFW_SELFTESTS:-$(dirname "$0")}/lib.sh"
set -e
trap 'cleanup_all_ns' EXIT

modprobe rfw
echo "# modprobe rfw: $(grep '^rfw ' /proc/modules)"
setup_ns client router server
ip link add eth0 netns "$client" type veth peer name c0 netns "$router"
ip link add eth0 netns "$server" type veth peer name s0 netns "$router"
ip -net "$client" addr add 10.0.10.2/24 dev eth0
ip -net "$router" addr add 10.0.10.1/24 dev c0
ip -net "$router" addr add 10.0.20.1/24 dev s0
ip -net "$server" addr add 10.0.20.2/24 dev eth0
for l in "$client eth0" "$router c0" "$router s0" "$server eth0"; do
	set -- $l
	ip -net "$1" link set "$2" up
done
ip -net "$client" route add default via 10.0.10.1
ip -net "$server" route add default via 10.0.20.1
ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1

echo "# the user's job, in the router's namespace:"
echo "#   fwctl nat add --to-destination 10.0.20.2:8080"
ip netns exec "$router" fwctl nat add --to-destination 10.0.20.2:8080
echo "#   fwctl stats counting on     (per-hook counters for the end)"
ip netns exec "$router" fwctl stats counting on
echo
echo "# client -> 10.0.10.1:80 (the router): 1 MiB over TCP, DNATed to the server's 8080"
ip netns exec "$server" socat -u TCP-LISTEN:8080,reuseaddr OPEN:/tmp/demo.rx,creat,trunc &
busywait 60000 ip netns exec "$server" sh -c 'ss -ltn | grep -q :8080'
head -c 1048576 /dev/urandom >/tmp/demo.tx
ip netns exec "$client" socat -u OPEN:/tmp/demo.tx TCP:10.0.10.1:80
wait
cmp /tmp/demo.tx /tmp/demo.rx && echo "# the server received the file, identical ($(stat -c %s /tmp/demo.rx) bytes)"
echo "# client -> 10.0.10.1: 3 pings, answered by the server through the same DNAT"
ip netns exec "$client" ping -c 3 -i 0.2 10.0.10.1 | tail -2
echo
echo "# fwctl nat list (router namespace)"
ip netns exec "$router" fwctl nat list
echo
echo "# fwctl ct list (router namespace): the reply tuples show the translation"
ip netns exec "$router" fwctl ct list
echo
echo "# fwctl stats (router namespace)"
ip netns exec "$router" fwctl stats
