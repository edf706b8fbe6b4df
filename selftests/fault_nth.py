#!/usr/bin/env python3
"""Systematic allocation failure (fail-nth) in one kernel operation of this
process, for rfw_alloc_fail.sh.

usage: fault_nth.py OP POINTS
  OP      load:PATH  finit_module(PATH); a module that loads is checked
                     (`fwctl stats`) and unloaded (`rmmod`)
          netns      unshare(CLONE_NEWNET); a namespace that comes up is
                     checked (`fwctl stats` in it)
  POINTS  how many fault points to fail, one per attempt, spread evenly
          over all of them (first and last included); 0: every one

The fault points are the calls of should_fail_ex() that pass the filters set
beforehand (selftests/lib.sh: fault_nth_setup): the stack range and depth,
cache-filter, ignore-gfp-wait, min-order. Writing N to
/proc/thread-self/fail-nth makes the Nth such call of this thread fail
(Documentation/fault-injection/fault-injection.rst); the file then reads
what is left of N, so a first attempt with a large N counts the points.

Prints "count K" (the points of one clean run), then one line per attempt:
  N RESULT CHECK
RESULT: "ok" (the operation succeeded), or the errno's name; "miss" is added
when the Nth point was never reached (nothing was failed). CHECK: "clean" or
"unclean:WHAT" (a loaded module that does not answer, a failed load that
left the module or one of its slab caches behind, a namespace without rfw).
Exit status 1 if the operation does not succeed without a failure.

FAULT_NTH_KLOG=FILE: after each attempt, the kernel log is appended to FILE
and cleared (`dmesg -c`), so that the failures' stack dumps cannot overrun
the log buffer however many attempts there are.
"""
import ctypes
import errno
import glob
import os
import subprocess
import sys

SYS_FINIT_MODULE = 313  # x86_64
CLONE_NEWNET = 0x40000000
COUNT_N = 1_000_000

libc = ctypes.CDLL(None, use_errno=True)
# Opened afresh for each access: the file has no llseek (lseek fails with
# ESPIPE) and reads through the file position.
NTH = "/proc/thread-self/fail-nth"


def set_nth(n):
    fd = os.open(NTH, os.O_WRONLY)
    try:
        os.write(fd, str(n).encode())
    finally:
        os.close(fd)


def get_nth():
    fd = os.open(NTH, os.O_RDONLY)
    try:
        return int(os.read(fd, 32).decode().strip() or 0)
    finally:
        os.close(fd)


def quiet(*cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def module_loaded(name):
    with open("/proc/modules") as f:
        return any(line.split()[0] == name for line in f)


def rfw_caches():
    return sorted(os.path.basename(p) for p in glob.glob("/sys/kernel/slab/rfw*"))


def run_load(path, n):
    """finit_module(path) with the nth point failing; (errno, check)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        set_nth(n)
        # syscall(2) reads its arguments as longs: pass longs.
        rc = libc.syscall(
            ctypes.c_long(SYS_FINIT_MODULE), ctypes.c_long(fd), ctypes.c_char_p(b""), ctypes.c_long(0)
        )
        err = ctypes.get_errno() if rc != 0 else 0
        left = get_nth()
        set_nth(0)
    finally:
        os.close(fd)
    if err == 0:
        check = "clean"
        if quiet("fwctl", "stats") != 0:
            check = "unclean:fwctl-stats-fails-after-load"
        if quiet("rmmod", "rfw") != 0:
            check = "unclean:rmmod-fails"
    else:
        check = "clean"
        if module_loaded("rfw"):
            check = "unclean:module-left-loaded"
        elif rfw_caches():
            check = "unclean:slab-caches-left:" + ",".join(rfw_caches())
    return err, left, check


def run_netns(n):
    """unshare(CLONE_NEWNET) with the nth point failing; (errno, check)."""
    set_nth(n)
    rc = libc.unshare(CLONE_NEWNET)
    err = ctypes.get_errno() if rc != 0 else 0
    left = get_nth()
    set_nth(0)
    check = "clean"
    if err == 0 and quiet("fwctl", "stats") != 0:
        check = "unclean:fwctl-stats-fails-in-new-namespace"
    return err, left, check


def take_klog():
    path = os.environ.get("FAULT_NTH_KLOG")
    if path:
        with open(path, "ab") as f:
            subprocess.run(["dmesg", "-c"], stdout=f, stderr=subprocess.DEVNULL)


def spread(k, points):
    if points <= 0 or k <= points:
        return list(range(1, k + 1))
    if points == 1:
        return [k]
    return sorted({1 + round(i * (k - 1) / (points - 1)) for i in range(points)})


def main():
    op, points = sys.argv[1], int(sys.argv[2])
    if op.startswith("load:"):
        path = op[len("load:"):]
        run = lambda n: run_load(path, n)  # noqa: E731
    elif op == "netns":
        run = run_netns
    else:
        sys.exit(f"fault_nth.py: unknown operation {op}")

    err, left, check = run(COUNT_N)
    take_klog()
    k = COUNT_N - left
    print(f"count {k}", flush=True)
    if err != 0 or check != "clean":
        print(f"0 {errno.errorcode.get(err, err) if err else 'ok'} {check}", flush=True)
        sys.exit(1)
    for n in spread(k, points):
        err, left, check = run(n)
        take_klog()
        result = errno.errorcode.get(err, str(err)) if err else "ok"
        if left != 0:
            result += ",miss"
        print(f"{n} {result} {check}", flush=True)


if __name__ == "__main__":
    main()
