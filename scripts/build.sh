#!/usr/bin/env bash
# Build everything the VM needs: the test kernel (cached), rfw.ko and fwctl.
#   scripts/build.sh [debug|perf]
set -euo pipefail
. "$(dirname "$0")/env.sh"
flavour=${1:-debug}
"$RFW_ROOT/scripts/build-kernel.sh" "$flavour" >/dev/null
"$RFW_ROOT/scripts/build-module.sh" "$flavour" >/dev/null
(cd "$RFW_ROOT" && cargo build --release -q -p fwctl)
