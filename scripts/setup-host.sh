#!/usr/bin/env bash
# Install everything rfw needs on a Debian 12 machine: the kernel toolchain
# (rustc-web 1.96 with its library source, clang/LLVM 16, bindgen-cli), the
# kernel source, QEMU + virtme-ng for the test VM, and the tools the selftests
# run inside the guest (the guest sees the host's root over 9p, so "installed on
# the host" means "present in the guest").
#
# Idempotent: every step checks before it acts, so a second run costs seconds.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

DEB_PKGS=(
	# kernel + module build
	linux-source-6.12 rustc-web rust-web-src rust-web-clippy
	clang-16 lld-16 llvm-16 libclang-16-dev
	flex bison bc libelf-dev libssl-dev cpio kmod make xz-utils python3
	# the VM
	qemu-system-x86 udev
	# guest tools used by the selftests
	iproute2 iputils-ping socat iperf3 nftables iptables conntrack tcpdump
	ethtool procps psmisc util-linux
	# nf_queue, the kernel selftests' NFQUEUE listener (scripts/build-tools.sh)
	libmnl-dev
	# the benchmark's profiles (bench/run.sh; perf runs in the guest)
	linux-perf
)

missing=()
for p in "${DEB_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# bindgen-cli: Debian's bindgen (0.60) is too old for 6.12 (needs >= 0.65.1).
BINDGEN_VERSION=0.72.1
if ! command -v bindgen >/dev/null 2>&1 || ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION"
	cargo install --locked --version "$BINDGEN_VERSION" bindgen-cli
fi

# virtme-ng boots the test kernel over a 9p view of the host root.
VNG_VERSION=1.42
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if ! command -v vng >/dev/null 2>&1 || ! vng --version 2>/dev/null | grep -q "$VNG_VERSION"; then
	log "installing virtme-ng $VNG_VERSION"
	# Debian's own python3 refuses system-wide pip installs (PEP 668); the
	# machine's pyenv python does not. Either way vng must end up on PATH.
	python3 -m pip install -q "virtme-ng==$VNG_VERSION" 2>/dev/null ||
		python3 -m pip install -q --break-system-packages "virtme-ng==$VNG_VERSION"
fi

# The cargo workspace's own tools.
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true

log "host ready"
