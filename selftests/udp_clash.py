#!/usr/bin/env python3
"""The DNS A/AAAA race (Linux's nf_ct_resolve_clash, conntrack_clash.sh):
for each of FLOWS source ports, two threads pinned to two CPUs send the
first datagram of the same UDP flow at the same instant, so that a router's
connection tracker sees both as new on two CPUs at once. An echo server
answers each datagram. Prints "FLOWS ANSWERED SENT": the flows for which
both answers came back (the client's own count, a witness independent of
the router), and the datagrams sent.

usage: udp_clash.py client DST_ADDR DST_PORT FLOWS FIRST_SRC_PORT
       udp_clash.py server BIND_ADDR PORT SECONDS   (echo server)
"""
import os
import socket
import sys
import threading


def server(addr, port, seconds):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(seconds)
    try:
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
    except socket.timeout:
        pass


def client(dst, dport, flows, first):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    cpus = sorted(os.sched_getaffinity(0))
    pair = (cpus[0], cpus[-1])
    answered = sent = 0
    for i in range(flows):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind(("", first + i))
        s.settimeout(3)
        go = threading.Barrier(2)
        done = []

        def send(cpu, payload):
            try:
                os.sched_setaffinity(0, {cpu})
            except OSError:
                pass
            go.wait()
            try:
                s.sendto(payload, (dst, dport))
                done.append(1)
            except OSError as e:
                print(f"port {first + i}: {e}", file=sys.stderr)

        threads = [
            threading.Thread(target=send, args=(pair[0], b"A" * 20)),
            threading.Thread(target=send, args=(pair[1], b"AAAA" * 5 + b"?")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent += len(done)
        got = set()
        try:
            while len(got) < 2:
                data, _ = s.recvfrom(2048)
                got.add(data)
        except socket.timeout:
            pass
        if len(got) == 2:
            answered += 1
        s.close()
    print(flows, answered, sent)


def main():
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))


if __name__ == "__main__":
    main()
