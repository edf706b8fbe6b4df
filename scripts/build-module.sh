#!/usr/bin/env bash
# Build rfw.ko against a cached test kernel: scripts/build-module.sh [debug|perf] [MAKEVAR=...]
#
# The module is built in a staging copy of its sources under
# target/kmod/<flavour>/, not in the work tree: one tree can then hold modules
# for both kernels, and the work tree stays free of Kbuild's output. Copies keep
# their timestamps, so Kbuild rebuilds only what changed.
# Prints the path of rfw.ko on stdout.
set -euo pipefail
. "$(dirname "$0")/env.sh"

flavour=${1:-debug}
shift || true
kdir=$("$RFW_ROOT/scripts/build-kernel.sh" "$flavour")
stage="$RFW_ROOT/target/kmod/$flavour"
mkdir -p "$stage"/{abi,conntrack,nat}
cp -a "$RFW_ROOT/Kbuild" "$stage/"
# Sources removed or moved in the tree must go from the stage too: a stale
# kmod/pkt.rs beside a new kmod/pkt/mod.rs is an ambiguous module to rustc.
# (bindings_generated.rs is Kbuild's output, not a source.)
if [ -d "$stage/kmod" ]; then
	(cd "$stage/kmod" && find . -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' \) \
		! -name bindings_generated.rs) | while read -r f; do
		[ -e "$RFW_ROOT/kmod/$f" ] || rm -f "$stage/kmod/$f"
	done
fi
cp -a "$RFW_ROOT/kmod" "$stage/"
for c in abi conntrack nat; do cp -a "$RFW_ROOT/$c/src" "$stage/$c/"; done

# Always through clippy, with warnings as errors: the kernel's own lints
# (missing_docs, unreachable_pub, clippy::all, ...) hold for the engine crates
# as they are compiled into the module, and for the glue.
make -s -C "$kdir" M="$stage" "${KMAKE_FLAGS[@]}" \
	CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver KRUSTFLAGS=-Dwarnings "$@" modules >&2
echo "$stage/rfw.ko"
