#!/usr/bin/env python3
"""One end of a live TCP connection that can forge an in-window RST with a
bad checksum into it.

  tcp_badrst.py server ADDR PORT
      accepts one connection and echoes what it reads until the peer
      closes, then exits.
  tcp_badrst.py client IFACE DST PORT
      connects to DST PORT (through IFACE), exchanges one message, waits
      for its own ACK of the echo to leave, prints "ready", then obeys one
      command a line on stdin, answering one line on stdout:
        inject  sends, on IFACE (AF_PACKET, so no stack sees it leave), a
                RST|ACK from this socket's address and port whose SEQ is
                the highest ACK the peer sent (the peer's rcv_nxt and
                conntrack's td_maxack: exactly in window) and whose TCP
                checksum is wrong; answers "injected seq=S ack=A"
        echo    sends a message and reads its echo: "alive", or
                "dead: REASON" if the connection is gone
        quit    closes the connection and exits
The sequence numbers come from the packets themselves: an AF_PACKET socket
on IFACE, opened before the connection, sees every frame of it both ways.
"""
import os
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
RST, ACK, SYN, FIN = 0x04, 0x10, 0x02, 0x01


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def server(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    c, _ = ls.accept()
    ls.close()
    while True:
        b = c.recv(4096)
        if not b:
            break
        c.sendall(b)
    c.close()


class Conn:
    """The client's connection and what its frames say."""

    def __init__(self, iface, dst, port):
        self.fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        self.sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sniff.bind((iface, 0))
        self.sniff.setblocking(False)
        self.s = socket.socket(self.fam, socket.SOCK_STREAM)
        self.s.settimeout(60)
        self.s.connect((dst, port))
        me = self.s.getsockname()
        self.src, self.sport = socket.inet_pton(self.fam, me[0]), me[1]
        self.dst, self.dport = socket.inet_pton(self.fam, dst), port
        self.peer_ack = None  # highest ACK from the peer (our snd_nxt)
        self.peer_end = None  # the peer's seq + length (our rcv_nxt)
        self.our_ack = None  # the highest ACK we sent
        self.macs = None  # (ours, the router's)

    def drain(self):
        """Reads every captured frame of this connection."""
        while True:
            try:
                frame, addr = self.sniff.recvfrom(65535)
            except BlockingIOError:
                return
            self.frame(frame, addr[2] == PACKET_OUTGOING)

    def frame(self, f, outgoing):
        etype = struct.unpack("!H", f[12:14])[0]
        if self.fam == socket.AF_INET and etype == 0x0800:
            ip = f[14:]
            ihl = (ip[0] & 15) * 4
            if ip[9] != 6:
                return
            src, dst, l4 = ip[12:16], ip[16:20], ip[ihl:struct.unpack("!H", ip[2:4])[0]]
        elif self.fam == socket.AF_INET6 and etype == 0x86DD:
            ip = f[14:]
            if ip[6] != 6:
                return
            src, dst, l4 = ip[8:24], ip[24:40], ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
        else:
            return
        sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", l4[:14])
        plen = len(l4) - (off >> 4) * 4
        end = (seq + plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & 0xFFFFFFFF
        mine = (src, sport, dst, dport) == (self.src, self.sport, self.dst, self.dport)
        theirs = (src, sport, dst, dport) == (self.dst, self.dport, self.src, self.sport)
        if outgoing and mine and flags & ACK:
            self.our_ack = later(self.our_ack, ack)
        elif not outgoing and theirs:
            self.macs = (f[0:6], f[6:12])
            if flags & ACK:
                self.peer_ack = later(self.peer_ack, ack)
            self.peer_end = later(self.peer_end, end)

    def settle(self):
        """Waits until our ACK of everything the peer sent has left."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.drain()
            if self.peer_end is not None and self.our_ack == self.peer_end and self.macs:
                return True
            time.sleep(0.05)
        return False

    def exchange(self, msg):
        self.s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            b = self.s.recv(len(msg) - len(got))
            if not b:
                raise ConnectionError("closed by the peer")
            got += b
        if got != msg:
            raise ConnectionError("echo differs")
        if not self.settle():
            raise ConnectionError("our ACK of the echo was not seen")

    def inject(self):
        self.drain()
        seq, ack = self.peer_ack, self.peer_end
        tcp = struct.pack("!HHIIBBHHH", self.sport, self.dport, seq, ack, 5 << 4, RST | ACK, 0, 0, 0)
        if self.fam == socket.AF_INET:
            pseudo = self.src + self.dst + struct.pack("!BBH", 0, 6, len(tcp))
        else:
            pseudo = self.src + self.dst + struct.pack("!IxxxB", len(tcp), 6)
        good = csum(pseudo + tcp)
        bad = good ^ 0x5A5A
        tcp = tcp[:16] + struct.pack("!H", bad) + tcp[18:]
        if self.fam == socket.AF_INET:
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0x1234, 0x4000, 64, 6, 0,
                             self.src, self.dst)
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            etype = 0x0800
        else:
            ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, self.src, self.dst)
            etype = 0x86DD
        ours, router = self.macs
        self.sniff.send(router + ours + struct.pack("!H", etype) + ip + tcp)
        return seq, ack


def later(a, b):
    """The later of two sequence numbers (a may be None)."""
    if a is None or ((b - a) & 0xFFFFFFFF) < 0x80000000:
        return b
    return a


def client(iface, dst, port):
    c = Conn(iface, dst, port)
    c.exchange(b"hello")
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "inject":
            seq, ack = c.inject()
            print("injected seq=%d ack=%d" % (seq, ack), flush=True)
        elif cmd == "echo":
            try:
                c.exchange(b"again")
                print("alive", flush=True)
            except (OSError, ConnectionError) as e:
                print("dead: %s" % e, flush=True)
        elif cmd == "quit":
            break
    c.s.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    os._exit(0)
