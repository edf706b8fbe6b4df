#!/bin/bash
# Dry run of selftests on the host, WITHOUT rfw: `fwctl` is fwctl_nft.py,
# which maps fwctl's rule, save/restore and ct commands onto the host
# kernel's nftables and conntrack; modprobe/modinfo are no-ops. A test
# that passes here has working plumbing (namespaces, servers, witnesses)
# and expectations that Linux's own NAT and filtering meet; it says
# nothing about rfw. Needs root, network namespaces, nft, conntrack.
#
#   selftests/pending/dryrun/run.sh selftests/pending/rfw_nat.sh ...
#
# The kernel log check of each test reads the host's dmesg, which may hold
# unrelated boot warnings. For --log cases, set
# net.netfilter.nf_log_all_netns=1 on the host (nft logs from other
# namespaces are dropped otherwise).
here=$(cd "$(dirname "$0")" && pwd)
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
rc=0
for t in "$@"; do
	t=$(realpath "$t")
	echo "# dry run: $t"
	(cd "$(dirname "$t")" && PATH="$here/bin:/usr/sbin:/usr/bin:/sbin:/bin" FWCTL_NFT_STATE="$state" \
		RFW_SELFTESTS="$here/../.." timeout 600 bash "$t") || rc=1
done
exit $rc
