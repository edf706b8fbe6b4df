#!/bin/sh
# Compiles src/lib.rs the way Kbuild does (one rustc invocation, edition
# 2021, core only, no cargo features, the kernel's warning flags), so that
# `cargo test` passing cannot hide a crate that rfw.ko cannot build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
RUSTC_BOOTSTRAP=1 ${CLIPPY_DRIVER:-clippy-driver} --edition=2021 --crate-type=rlib \
    --crate-name conntrack -Zcrate-attr=no_std \
    -Dwarnings -Wmissing_docs -Wunreachable_pub -Wrust_2018_idioms \
    -Wclippy::all -Aclippy::collapsible_if -Aclippy::collapsible_match \
    -Aclippy::needless_lifetimes -Aclippy::uninlined_format_args -Aclippy::unwrap_or_default \
    -Dclippy::float_arithmetic \
    -C overflow-checks=on -C panic=abort \
    --out-dir "$out" --emit=obj "$here/src/lib.rs"
echo "kbuild-check: ok"
