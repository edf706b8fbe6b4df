#!/usr/bin/env python3
"""Sends one UDP datagram from each of COUNT source ports, so that a
connection tracker sees COUNT new flows. Prints how many sendto() calls
succeeded (the sender's own count, a witness independent of rfw).

usage: udp_flows.py DST_ADDR DST_PORT COUNT [FIRST_SRC_PORT]
"""
import socket
import sys


def main():
    dst, dport, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    sent = 0
    for i in range(count):
        port = first + i % 40000
        src_addr = first + i // 40000  # more than 40000 flows: vary dst port
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
            s.sendto(b"x", (dst, dport + src_addr - first))
            sent += 1
        except OSError as e:
            print(f"port {port}: {e}", file=sys.stderr)
        finally:
            s.close()
    print(sent)


if __name__ == "__main__":
    main()
