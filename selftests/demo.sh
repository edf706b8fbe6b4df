#!/bin/bash
# The main job, shown end to end inside the VM (make demo):
#   client (10.0.10.2) -- router (rfw loaded) -- server (10.0.20.2)
# Loads rfw, sends pings and a short TCP transfer through the router, and
# prints `fwctl stats` and `fwctl ct list` of the router's namespace.
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

echo "# client -> server: 5 pings through the router"
ip netns exec "$client" ping -c 5 -i 0.2 10.0.20.2 | tail -2
echo "# client -> server: 1 MiB over TCP (socat)"
ip netns exec "$server" socat -u TCP-LISTEN:7000,reuseaddr OPEN:/tmp/demo.rx,creat,trunc &
busywait 5000 ip netns exec "$server" sh -c 'ss -ltn | grep -q :7000'
head -c 1048576 /dev/urandom >/tmp/demo.tx
ip netns exec "$client" socat -u OPEN:/tmp/demo.tx TCP:10.0.20.2:7000
wait
cmp /tmp/demo.tx /tmp/demo.rx && echo "# received file identical ($(stat -c %s /tmp/demo.rx) bytes)"
echo
echo "# fwctl stats (router namespace)"
ip netns exec "$router" fwctl stats
echo
echo "# fwctl ct list (router namespace): the ping and the finished transfer"
ip netns exec "$router" fwctl ct list
