#!/usr/bin/env bash
# Prints "kvm" if a guest really runs under KVM here, else "tcg".
# /dev/kvm can exist while nested KVM spins without running the guest
# (PLATFORM.md), so this boots the kernel once with KVM and a short timeout.
# The answer is cached per host kernel; RFW_ACCEL=kvm|tcg overrides.
set -euo pipefail
. "$(dirname "$0")/../../scripts/env.sh"
kdir=$1
case "${RFW_ACCEL:-auto}" in
kvm|tcg) echo "$RFW_ACCEL"; exit 0 ;;
esac
cache="$RFW_CACHE/accel-$(uname -r)"
if [ -f "$cache" ]; then cat "$cache"; exit 0; fi
answer=tcg
if [ -w /dev/kvm ]; then
	if timeout -k 5 45 vng --run "$kdir" --force-9p --disable-microvm \
		--memory 512M --exec "echo rfw-kvm-probe-ok" </dev/null 2>/dev/null |
		grep -q rfw-kvm-probe-ok; then
		answer=kvm
	fi
fi
mkdir -p "$RFW_CACHE"
echo "$answer" >"$cache"
echo "$answer"
