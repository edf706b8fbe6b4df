#!/usr/bin/env bash
# Build the user-space helpers the selftests run in the guest from the
# kernel's own selftests (extracted by build-kernel.sh):
#   target/tools/nf_queue  tools/testing/selftests/net/netfilter/nf_queue.c
#                          (GPL-2.0), a NFQUEUE listener, as nft_queue.sh
#                          builds it; needs libmnl-dev (setup-host.sh).
# selftests/run.sh copies target/tools/* onto the guest's PATH.
set -euo pipefail
. "$(dirname "$0")/env.sh"

ver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
src="$RFW_CACHE/src-$ver"
out="$RFW_ROOT/target/tools"
mkdir -p "$out"
cc=${CC:-}
if [ -z "$cc" ]; then
	for c in cc gcc clang-16; do
		if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
	done
fi
[ -n "$cc" ] || { echo "build-tools: no C compiler" >&2; exit 1; }
nfq="$src/tools/testing/selftests/net/netfilter/nf_queue.c"
[ -f "$nfq" ] || { echo "build-tools: $nfq missing (run scripts/build-kernel.sh)" >&2; exit 1; }
if [ ! -x "$out/nf_queue" ] || [ "$nfq" -nt "$out/nf_queue" ] || [ "$0" -nt "$out/nf_queue" ]; then
	"$cc" -O2 -Wall -o "$out/nf_queue.tmp" "$nfq" -lmnl
	mv "$out/nf_queue.tmp" "$out/nf_queue"
fi
