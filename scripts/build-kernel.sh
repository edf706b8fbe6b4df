#!/usr/bin/env bash
# Build (or reuse) the test kernel: scripts/build-kernel.sh [debug|perf]
# Prints the build directory on stdout. The build lives outside the repo in
# $RFW_CACHE, keyed by the source package version, the config fragments, the
# toolchain versions and this script, so a second run is free and CI on the
# same machine reuses it. A lock keeps two builds from running at once.
set -euo pipefail
. "$(dirname "$0")/env.sh"

flavour=${1:-debug}
out=$(kernel_dir "$flavour")
log() { printf 'build-kernel: %s\n' "$*" >&2; }

if [ -f "$out/.rfw-done" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$RFW_CACHE"
exec 9>"$RFW_CACHE/kernel-build.lock"
flock 9
if [ -f "$out/.rfw-done" ]; then echo "$out"; exit 0; fi

ver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
src="$RFW_CACHE/src-$ver"
if [ ! -f "$src/.rfw-extracted" ]; then
	log "extracting linux-source-6.12 $ver"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -xJf /usr/src/linux-source-6.12.tar.xz -C "$src.tmp" --strip-components=1
	touch "$src.tmp/.rfw-extracted"
	mv "$src.tmp" "$src"
fi

log "configuring $flavour kernel in $out"
rm -rf "$out"
mkdir -p "$out"
make -s -C "$src" O="$out" "${KMAKE_FLAGS[@]}" tinyconfig >&2
# shellcheck disable=SC2046
(cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" .config $(kernel_fragments "$flavour") >&2)
make -s -C "$src" O="$out" "${KMAKE_FLAGS[@]}" olddefconfig >&2

# A fragment line that did not survive olddefconfig is a silent config bug
# (a missing dependency): fail loudly instead.
bad=0
for f in $(kernel_fragments "$flavour"); do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$out/.config" || { log "not applied: $line"; bad=1; } ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
			grep -q "^$sym=" "$out/.config" && { log "not unset: $sym"; bad=1; } ;;
		esac
	done <"$f"
done
# later fragments may override earlier ones: only the last word counts
if [ "$bad" -ne 0 ] && [ "$flavour" = debug ]; then
	log "config fragment not fully applied"; exit 1
fi

log "building $flavour kernel ($(nproc) cores)"
start=$(date +%s)
make -C "$src" O="$out" "${KMAKE_FLAGS[@]}" -j"$(($(nproc) + 1))" bzImage modules >&2
log "built in $(($(date +%s) - start)) s"
touch "$out/.rfw-done"
echo "$out"
