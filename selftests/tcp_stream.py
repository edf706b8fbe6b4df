#!/usr/bin/env python3
"""A TCP transfer that lasts as long as the test needs, not a fixed time.

  tcp_stream.py server ADDR PORT COUNT_FILE
      accepts one connection (within 300 s), reads it to its end, writes
      the number of bytes received to COUNT_FILE, exits.
  tcp_stream.py client DST PORT RATE STOP_FILE MAX_SECONDS RESULT_FILE
      connects and sends RATE bytes per second (paced in 10 ms steps)
      until STOP_FILE exists, then closes its side, waits for the server
      to close, and writes RESULT_FILE (JSON): bytes sent, the kernel's
      count of retransmitted segments (TCP_INFO tcpi_total_retrans), the
      bytes sent in each whole second, and an error ("none" if it ended
      because STOP_FILE appeared). It also rewrites RESULT_FILE.progress
      with the seconds completed so far, so a test can wait for progress.
      MAX_SECONDS bounds the run whatever happens (error "deadline").

The tests' transfers used iperf3 with a duration fixed in advance, which a
slow machine could outrun; this one ends when the test says so.
"""
import json
import os
import socket
import struct
import sys
import time

# struct tcp_info (linux/tcp.h): tcpi_total_retrans is the u32 at offset 100.
TCPI_TOTAL_RETRANS = 100


def server(addr, port, count_file):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    # A client that never comes (it failed to connect) must not leave the
    # test waiting on this process forever.
    ls.settimeout(300)
    c, _ = ls.accept()
    c.settimeout(None)
    ls.close()
    got = 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        got += len(b)
    c.close()
    tmp = count_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % got)
    os.rename(tmp, count_file)


def client(dst, port, rate, stop_file, max_seconds, result_file):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect((dst, port))
    # A send blocked this long means the path is gone: give up.
    s.settimeout(60)
    chunk = b"\x5a" * max(1, rate // 100)
    start = time.monotonic()
    sent, seconds, this_second, error = 0, [], 0, "none"
    tick = start
    while not os.path.exists(stop_file):
        now = time.monotonic()
        if now - start > max_seconds:
            error = "deadline"
            break
        try:
            s.sendall(chunk)
        except OSError as e:
            error = "send: %s" % e
            break
        sent += len(chunk)
        this_second += len(chunk)
        while now - start >= len(seconds) + 1:
            seconds.append(this_second)
            this_second = 0
            with open(result_file + ".progress", "w") as f:
                f.write("%d\n" % len(seconds))
        tick += 0.01
        delay = tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            tick = time.monotonic()
    s.settimeout(120)
    try:
        s.shutdown(socket.SHUT_WR)
        while s.recv(1 << 16):
            pass
    except OSError as e:
        if error == "none":
            error = "close: %s" % e
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    retrans = struct.unpack_from("I", info, TCPI_TOTAL_RETRANS)[0]
    s.close()
    with open(result_file, "w") as f:
        json.dump({"sent": sent, "retransmits": retrans, "seconds": seconds,
                   "error": error}, f)


def main():
    a = sys.argv[1:]
    if a and a[0] == "server" and len(a) == 4:
        server(a[1], int(a[2]), a[3])
    elif a and a[0] == "client" and len(a) == 7:
        client(a[1], int(a[2]), int(a[3]), a[4], float(a[5]), a[6])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
