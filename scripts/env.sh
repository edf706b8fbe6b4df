# Sourced by the other scripts: the toolchain the kernel and rfw.ko are built
# with, and where the cached kernel builds live. See ../../shared/PLATFORM.md.
# shellcheck shell=bash

RFW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RFW_CACHE=${RFW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rfw}
export RFW_ROOT RFW_CACHE

# The kernel needs a rustc and a library source of exactly the same version:
# Debian's rustc-web (1.96) with rust-web-src, not rustup's 1.95 on PATH.
KMAKE_FLAGS=(
	LLVM=-16
	RUSTC=/usr/bin/rustc
	BINDGEN=bindgen
	RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library
)
export LIBCLANG_PATH=/usr/lib/llvm-16/lib
export PATH="$HOME/.cargo/bin:$PATH"
# Where pip puts virtme-ng's `vng` (pyenv's or the system's scripts dir).
if command -v python3 >/dev/null 2>&1; then
	PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)"
fi

# Kernel flavours: "debug" (selftests: lockdep, KASAN, ...) and "perf"
# (benchmarks). Their build directories are keyed by every input.
kernel_fragments() {
	case "$1" in
	debug) echo "$RFW_ROOT/selftests/config" ;;
	perf) echo "$RFW_ROOT/selftests/config $RFW_ROOT/bench/config.perf" ;;
	*) echo "unknown kernel flavour '$1'" >&2; return 1 ;;
	esac
}

kernel_key() {
	local flavour=$1 f
	{
		dpkg-query -W -f='${Version}\n' linux-source-6.12
		/usr/bin/rustc --version
		clang-16 --version | head -1
		bindgen --version
		for f in $(kernel_fragments "$flavour"); do cat "$f"; done
		cat "$RFW_ROOT/scripts/build-kernel.sh"
	} | sha256sum | cut -c1-16
}

kernel_dir() {
	echo "$RFW_CACHE/kernel-$1-$(kernel_key "$1")"
}
