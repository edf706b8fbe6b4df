#!/usr/bin/env bash
# Build everything the VM needs: the test kernel (cached), rfw.ko, fwctl and
# the selftests' tools (nf_queue).
#   scripts/build.sh [debug|perf]
set -euo pipefail
. "$(dirname "$0")/env.sh"
flavour=${1:-debug}
"$RFW_ROOT/scripts/build-kernel.sh" "$flavour" >/dev/null
"$RFW_ROOT/scripts/build-module.sh" "$flavour" >/dev/null
(cd "$RFW_ROOT" && cargo build --release -q -p fwctl)
"$RFW_ROOT/scripts/build-tools.sh"
