# Chores. The module itself is built by Kbuild (see ./Kbuild and
# scripts/build-module.sh); this file only names the entry points.
#
#   make demo    fresh machine -> VM running rfw with traffic and `fwctl stats`
#   make check   every check CI runs: fmt, clippy (workspace and module),
#                rustdoc, host tests, the VM selftests
.PHONY: all setup build demo check test vm-test

all: build

setup:
	scripts/setup-host.sh

build: setup
	scripts/build.sh debug

demo: build
	RFW_NO_BUILD=1 selftests/run.sh -- bash selftests/demo.sh

check: setup
	scripts/check.sh

test: check
