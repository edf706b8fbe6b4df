#!/usr/bin/env python3
"""One UDP flow, datagram by datagram, with both ends counting.

  udp_pingpong.py server ADDR PORT COUNT_FILE
      echoes every datagram back to its sender; on SIGTERM writes the
      number of datagrams it received to COUNT_FILE and exits; also
      writes COUNT_FILE.peers: each sender address seen, with the TTL
      (hop limit) its datagrams arrived with ("ADDR TTL", one line each
      distinct pair).
  udp_pingpong.py client DST PORT SPORT COUNT SIZE [PAUSE_FILE GO_FILE]
      from source port SPORT, sends COUNT datagrams of SIZE bytes, each
      after the echo of the one before (or 1 s without one), and prints
      "sent N echoed M". With PAUSE_FILE and GO_FILE: after half of them,
      creates PAUSE_FILE and waits (at most 120 s) for GO_FILE before the
      second half, so that a test can change something mid-flow.

Each end's count is a witness independent of rfw: the client's of what
went out and came back, the server's of what arrived.
"""
import os
import signal
import socket
import sys
import time


def server(addr, port, count_file):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        want = (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)
    else:
        # IP_RECVTTL (linux/in.h: 12), which the socket module does not name.
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
        want = (socket.IPPROTO_IP, socket.IP_TTL)
    n = 0
    peers = set()

    def done(*_):
        with open(count_file + ".peers", "w") as f:
            for p in sorted(peers):
                f.write("%s %d\n" % p)
        with open(count_file, "w") as f:
            f.write("%d\n" % n)
        sys.exit(0)

    signal.signal(signal.SIGTERM, done)
    while True:
        data, anc, _, peer = s.recvmsg(65535, 64)
        n += 1
        ttl = -1
        for level, kind, v in anc:
            if (level, kind) == want and len(v) >= 4:
                ttl = int.from_bytes(v[:4], sys.byteorder)
        peers.add((peer[0], ttl))
        s.sendto(data, peer)


def client(dst, port, sport, count, size, pause=None, go=None):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
    s.connect((dst, port))
    s.settimeout(1.0)
    payload = b"x" * size
    sent = echoed = 0
    for i in range(count):
        if pause and i == count // 2:
            open(pause, "w").close()
            deadline = time.time() + 120
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.05)
        try:
            s.send(payload)
            sent += 1
            s.recv(65535)
            echoed += 1
        except (socket.timeout, ConnectionRefusedError, OSError):
            pass
    print("sent %d echoed %d" % (sent, echoed))


def main():
    a = sys.argv[1:]
    if a and a[0] == "server" and len(a) == 4:
        server(a[1], int(a[2]), a[3])
    elif a and a[0] == "client" and len(a) in (6, 8):
        client(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), *(a[6:8] or [None, None]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
