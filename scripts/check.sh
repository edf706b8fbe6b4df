#!/usr/bin/env bash
# Every check, in the order that fails fastest: formatting, lints, rustdoc,
# host tests, then the VM selftests on the debug kernel. CI runs exactly this
# (via `make check`). Exit status is non-zero if anything fails.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$RFW_ROOT"

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check
rustfmt --edition 2021 --check kmod/*.rs kmod/*/*.rs

step "cargo clippy -D warnings (workspace)"
cargo clippy -q --workspace --all-targets --all-features -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps

step "cargo test --workspace"
cargo test -q --workspace --all-features

step "kernel + rfw.ko (clippy, -D warnings) + fwctl"
scripts/build.sh debug

step "VM selftests (debug kernel)"
RFW_NO_BUILD=1 selftests/run.sh
