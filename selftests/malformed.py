#!/usr/bin/env python3
"""The malformed-packet matrix of rfw_malformed.sh: crafts the packets
(struct, no scapy), sends them, witnesses what arrives, and compares.

    malformed.py cases                       the case list
    malformed.py dump HOOK                   the packets, in hex (dry run)
    malformed.py send HOOK --iface IF --dmac MAC --errors FILE
                                             forward / input: AF_PACKET frames
                                             on the sender's IF to MAC
    malformed.py send output --raw --errors FILE
                                             output: raw IP sockets of the
                                             router itself (IP_HDRINCL)
    malformed.py witness --packet IF --log FILE --ready FILE
    malformed.py witness --raw --log FILE --ready FILE
    malformed.py tally DIR                   compares DIR/{rfw,nfct}.HOOK.log

HOOK is forward (client -> server through the router), input (client ->
router) or output (router -> server). Addresses are setup_router's (lib.sh);
the third address of the "outer destination" case is 10.0.3.3 /
fd00:3::3, routed by the router towards the server, or the router's
server-side address for input.

Every packet a case counts (its probes) carries the case's marker: the IPv4
identification or the IPv6 flow label 0xA000 + case number; packets that
only set up a connection for the case carry 0xB000 + case number. The last
packet of a batch is the fence, a plain UDP datagram marked 0xAFFF: the
sender is pinned to one CPU, so every packet before it has been handled
when it arrives (veth queues to the sending CPU's backlog, and the router
forwards in that CPU's softirq, in order).

Witnesses: --packet counts the frames an AF_PACKET socket on the receiving
host's interface sees (before that host's own IP stack); --raw counts the
packets raw IP sockets of the router receive, which the kernel delivers
after LOCAL_IN (ip_local_deliver_finish / ip6_input_finish), i.e. after
rfw's INPUT filter at priority INT_MAX, which no nftables chain can follow.
IPv4 raw ICMP sockets do not see ICMP messages shorter than 8 bytes
(icmp_filter): for those the witness takes the router's Icmp InMsgs, which
counts every ICMP message delivered, minus the ICMP messages the raw socket
saw.
"""
import errno
import os
import select
import socket
import struct
import sys

PROBE = 0xA000
SETUP = 0xB000
FENCE = 0xAFFF

HOOKS = ("forward", "input", "output")
# hook -> family -> (source, destination, router's own address, third)
ADDRS = {
    "forward": {4: ("10.0.1.2", "10.0.2.2", "10.0.1.1", "10.0.3.3"),
                6: ("fd00:1::2", "fd00:2::2", "fd00:1::1", "fd00:3::3")},
    "input": {4: ("10.0.1.2", "10.0.1.1", "10.0.1.1", "10.0.2.1"),
              6: ("fd00:1::2", "fd00:1::1", "fd00:1::1", "fd00:2::1")},
    "output": {4: ("10.0.2.1", "10.0.2.2", "10.0.1.1", "10.0.3.3"),
               6: ("fd00:2::1", "fd00:2::2", "fd00:1::1", "fd00:3::3")},
}

TCP_F, TCP_S, TCP_R, TCP_P, TCP_A, TCP_U, TCP_E, TCP_C = 1, 2, 4, 8, 16, 32, 64, 128
IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT = 60, 43, 44
IPPROTO_AH, IPPROTO_NONE, IPPROTO_EXP = 51, 59, 253
IPV6_FLOWINFO = 11
IPV6_CHECKSUM = 7
SOL_RAW = 255
ETH_P_ALL = 3
PACKET_OUTGOING = 4


# ---------------------------------------------------------------- crafting

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def aton(addr):
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def pseudo(fam, src, dst, proto, length):
    if fam == 4:
        return aton(src) + aton(dst) + struct.pack("!BBH", 0, proto, length)
    return aton(src) + aton(dst) + struct.pack("!IxxxB", length, proto)


def l4_csum(fam, src, dst, proto, seg, check):
    """The segment with its checksum (at offset 2 for ICMP, 6 for UDP, 16 for
    TCP) filled in: computed (check None), computed and spoilt ("bad"), or
    the value given."""
    off = {1: 2, 58: 2, 17: 6, 6: 16}[proto]
    if len(seg) < off + 2:
        return seg
    if check is None or check == "bad":
        zeroed = seg[:off] + b"\0\0" + seg[off + 2:]
        ph = b"" if proto == 1 else pseudo(fam, src, dst, proto, len(seg))
        value = csum(ph + zeroed)
        if proto == 17 and value == 0:
            value = 0xFFFF
        if check == "bad":
            value ^= 0x5A5A
    else:
        value = check
    return seg[:off] + struct.pack("!H", value) + seg[off + 2:]


def udp(fam, src, dst, sport, dport, data=b"", length=None, check=None, cut=None):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data) if length is None else length, 0) + data
    seg = l4_csum(fam, src, dst, 17, seg, check)
    return seg[:cut] if cut is not None else seg


def tcp(fam, src, dst, sport, dport, flags, data=b"", doff=5, check=None, cut=None,
        seq=0x1000, ack=0):
    opts = b"\0" * max(0, doff * 4 - 20) if doff <= 15 and doff >= 5 else b""
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (doff & 0xF) << 4, flags,
                      64240, 0, 0) + opts + data
    seg = l4_csum(fam, src, dst, 6, seg, check)
    return seg[:cut] if cut is not None else seg


def icmp(fam, src, dst, typ, code, rest=b"\0\0\0\0", data=b"", check=None, cut=None):
    proto = 1 if fam == 4 else 58
    seg = struct.pack("!BBH", typ, code, 0) + rest + data
    seg = l4_csum(fam, src, dst, proto, seg, check)
    return seg[:cut] if cut is not None else seg


def ip4(src, dst, proto, payload, mark, ihl=5, opts=b"", frag=0, tot_len=None,
        check=None, version=4, ttl=64):
    hl = 20 + len(opts)
    tl = hl + len(payload) if tot_len is None else tot_len
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl & 0xF), 0, tl, mark, frag,
                      ttl, proto, 0, aton(src), aton(dst)) + opts
    value = csum(hdr) if check is None else check
    return hdr[:10] + struct.pack("!H", value) + hdr[12:] + payload


def ip6(src, dst, nh, payload, mark, plen=None, version=6, hlim=64):
    first = (version << 28) | (mark & 0xFFFFF)
    pl = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", first, pl, nh, hlim, aton(src), aton(dst)) + payload


def ip(fam, src, dst, proto, payload, mark, **kw):
    return ip4(src, dst, proto, payload, mark, **kw) if fam == 4 else ip6(src, dst, proto, payload, mark, **kw)


def frag6(nh, off, more, ident):
    return struct.pack("!BBHI", nh, 0, (off << 3) | (1 if more else 0), ident)


def opts6(nh, padn=6):
    """A hop-by-hop or destination options header of 8 bytes: one PadN."""
    return struct.pack("!BBBB", nh, 0, 1, padn - 2) + b"\0" * (padn - 2)


def frags(fam, src, dst, proto, datagram, mark, ident, pieces):
    """Fragments of DATAGRAM (the transport header and data): pieces is a list
    of (start, end, more) in bytes; start a multiple of 8."""
    out = []
    for start, end, more in pieces:
        chunk = datagram[start:end]
        if fam == 4:
            out.append(ip4(src, dst, proto, chunk, mark, frag=(0x2000 if more else 0) | (start // 8)))
        else:
            out.append(ip6(src, dst, IPPROTO_FRAGMENT, frag6(proto, start // 8, more, ident) + chunk, mark))
    return out


# ---------------------------------------------------------------- the cases

class Ctx:
    def __init__(self, hook, fam, idx):
        self.fam = fam
        self.src, self.dst, self.router, self.third = ADDRS[hook][fam]
        self.probe = PROBE + idx
        self.setup = SETUP + idx
        self.sport = 20000 + idx
        self.dport = 30000 + idx
        self.ident = 0xF000 + idx
        self.icmp_proto = 1 if fam == 4 else 58

    def udp(self, data=b"x" * 8, **kw):
        return udp(self.fam, self.src, self.dst, self.sport, self.dport, data, **kw)

    def tcp(self, flags, **kw):
        return tcp(self.fam, self.src, self.dst, self.sport, self.dport, flags, **kw)

    def pkt(self, proto, payload, setup=False, src=None, dst=None, **kw):
        return ip(self.fam, src or self.src, dst or self.dst, proto, payload,
                  self.setup if setup else self.probe, **kw)

    def echo(self, typ=None, data=b"ping", **kw):
        if typ is None:
            typ = 8 if self.fam == 4 else 128
        return icmp(self.fam, self.src, self.dst, typ, 0,
                    struct.pack("!HH", self.ident & 0xFFFF, 1), data, **kw)

    def unreach(self, quoted, dst=None, **kw):
        typ, code = (3, 3) if self.fam == 4 else (1, 4)
        return self.pkt(self.icmp_proto, icmp(self.fam, self.src, dst or self.dst, typ, code,
                                              data=quoted, **kw), dst=dst)

    def setup_udp(self, dst=None):
        """A datagram src:sport -> dst:dport that makes the connection an
        ICMP error below refers to."""
        d = dst or self.dst
        return self.pkt(17, udp(self.fam, self.src, d, self.sport, self.dport, b"setup"),
                        setup=True, dst=d)

    def quote(self, frm=None, sport=None, dport=None):
        """The datagram the source would have received from FRM (default:
        the destination) on the connection of setup_udp: what its ICMP error
        quotes."""
        frm = frm or self.dst
        sport = self.dport if sport is None else sport
        dport = self.sport if dport is None else dport
        return ip(self.fam, frm, self.src, 17, udp(self.fam, frm, self.src, sport, dport, b"reply"), 0)

    def datagram(self):
        """A UDP datagram of 24 bytes (8 header, 16 data) for fragments."""
        return udp(self.fam, self.src, self.dst, self.sport, self.dport, b"0123456789abcdef")

    def frags(self, pieces, proto=17, datagram=None):
        return frags(self.fam, self.src, self.dst, proto, datagram or self.datagram(),
                     self.probe, self.ident, pieces)


# Each case: name, families, builder(ctx) -> [(role, packet)], and notes
# on where the kernel itself stops it before netfilter's filter hook
# (hook -> why), printed when both sides drop it.
CASES = []


def case(name, fams=(4, 6), kernel=None, short_icmp4=False):
    def reg(fn):
        CASES.append({"name": name, "fams": fams, "fn": fn, "kernel": kernel or {},
                      "short_icmp4": short_icmp4})
        return fn
    return reg


IP_RCV = {"forward": "ip_rcv/ipv6_rcv", "input": "ip_rcv/ipv6_rcv"}
P, S = "probe", "setup"

# --- IP header ---------------------------------------------------------------
case("ihl_lt5", (4,), dict(IP_RCV, output="the raw socket refuses it (EINVAL)"))(
    lambda c: [(P, c.pkt(17, c.udp(), ihl=4))])
case("bad_version", kernel=IP_RCV)(
    lambda c: [(P, c.pkt(17, c.udp(), version=5 if c.fam == 4 else 4))])
case("totlen_past", kernel=IP_RCV)(
    lambda c: [(P, c.pkt(17, c.udp(), **({"tot_len": 20 + 16 + 100} if c.fam == 4 else {"plen": 16 + 100})))])
case("totlen_zero", (4,), kernel=IP_RCV)(
    lambda c: [(P, c.pkt(17, c.udp(), tot_len=0))])
# The length field ends the packet inside the UDP header: on input the
# kernel trims the rest (pskb_trim_rcsum) and the tracker sees 4 bytes of
# UDP. At OUTPUT IPv4's raw socket sets the length to what it sends, and
# IPv6's keeps the field: the trackers go by the skb's length (the whole
# datagram).
case("totlen_trunc_udp")(
    lambda c: [(P, c.pkt(17, c.udp(), **({"tot_len": 24} if c.fam == 4 else {"plen": 4})))])
case("ip_bad_csum", (4,), kernel=IP_RCV)(
    lambda c: [(P, c.pkt(17, c.udp(), check=0x1234))])
case("ip_options", (4,))(
    lambda c: [(P, c.pkt(17, c.udp(), ihl=6, opts=b"\x01\x01\x01\x00"))])
# Record Route with length 2: ip_options_compile refuses it in
# ip_rcv_finish, after PRE_ROUTING.
case("ip_opt_bad", (4,), kernel={"forward": "ip_rcv_options (after PRE_ROUTING)",
                                 "input": "ip_rcv_options (after PRE_ROUTING)"})(
    lambda c: [(P, c.pkt(17, c.udp(), ihl=6, opts=b"\x07\x02\x00\x00"))])
case("proto_unknown")(lambda c: [(P, c.pkt(IPPROTO_EXP, b"experimental"))])
case("proto_unknown_zero")(lambda c: [(P, c.pkt(IPPROTO_EXP, b""))])
case("src_router", kernel={"forward": "ip_route_input: martian source (IPv4)",
                           "input": "ip_route_input: martian source (IPv4)"})(
    lambda c: [(P, c.pkt(17, udp(c.fam, c.router, c.dst, c.sport, c.dport, b"x" * 8), src=c.router))])

# --- UDP -------------------------------------------------------------------------
case("udp_zero_payload")(lambda c: [(P, c.pkt(17, c.udp(b"")))])
case("udp_hdr_missing")(lambda c: [(P, c.pkt(17, b""))])
case("udp_trunc")(lambda c: [(P, c.pkt(17, c.udp(cut=4)))])
case("udp_len_past")(lambda c: [(P, c.pkt(17, c.udp(length=100)))])
case("udp_len_lt8")(lambda c: [(P, c.pkt(17, c.udp(length=4)))])
case("udp_len_short")(lambda c: [(P, c.pkt(17, c.udp(length=10)))])
case("udp_csum_bad")(lambda c: [(P, c.pkt(17, c.udp(check="bad")))])
case("udp_csum_zero")(lambda c: [(P, c.pkt(17, c.udp(check=0)))])

# --- TCP ---------------------------------------------------------------------------
case("tcp_syn")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S)))])
case("tcp_syn_data")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S, data=b"synpayload")))])
case("tcp_syn_ece_cwr")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S | TCP_E | TCP_C)))])
case("tcp_trunc")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S, cut=12)))])
case("tcp_doff_lt5")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S, doff=4)))])
case("tcp_doff_past")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S, doff=15, cut=20)))])
case("tcp_csum_bad")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S, check="bad")))])
case("tcp_null")(lambda c: [(P, c.pkt(6, c.tcp(0)))])
case("tcp_synfin")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S | TCP_F)))])
case("tcp_synrst")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S | TCP_R)))])
case("tcp_xmas")(lambda c: [(P, c.pkt(6, c.tcp(TCP_F | TCP_P | TCP_U)))])
case("tcp_fin_only")(lambda c: [(P, c.pkt(6, c.tcp(TCP_F)))])
case("tcp_all_flags")(lambda c: [(P, c.pkt(6, c.tcp(0x3F)))])
case("tcp_rst_noconn")(lambda c: [(P, c.pkt(6, c.tcp(TCP_R)))])
case("tcp_synack_noconn")(lambda c: [(P, c.pkt(6, c.tcp(TCP_S | TCP_A, ack=0x2000)))])
case("tcp_ack_noconn")(lambda c: [(P, c.pkt(6, c.tcp(TCP_A | TCP_P, data=b"midstream", ack=0x2000)))])

# --- ICMP -------------------------------------------------------------------------------
case("icmp_echo_zero")(lambda c: [(P, c.pkt(c.icmp_proto, c.echo(data=b"")))])
case("icmp_trunc", short_icmp4=True)(lambda c: [(P, c.pkt(c.icmp_proto, c.echo(cut=4)))])
case("icmp_csum_bad")(lambda c: [(P, c.pkt(c.icmp_proto, c.echo(check="bad")))])
case("icmp_unknown_type")(lambda c: [(P, c.pkt(c.icmp_proto, c.echo(typ=99 if c.fam == 4 else 200)))])
case("icmp_echoreply_noconn")(lambda c: [(P, c.pkt(c.icmp_proto, c.echo(typ=0 if c.fam == 4 else 129)))])
case("icmp_err_related")(lambda c: [(S, c.setup_udp()), (P, c.unreach(c.quote()))])
case("icmp_err_noconn")(lambda c: [(P, c.unreach(c.quote(sport=c.dport + 5000)))])
# The error quotes an error: nf_ct_invert_tuple fails on an error type.
def _quote_icmp_err(c):
    """An error from dst to src quoting src's datagram, quoted in turn."""
    sent = ip(c.fam, c.src, c.dst, 17, udp(c.fam, c.src, c.dst, c.sport, c.dport, b"setup"), 0)
    typ, code = (3, 3) if c.fam == 4 else (1, 4)
    inner = ip(c.fam, c.dst, c.src, c.icmp_proto,
               icmp(c.fam, c.dst, c.src, typ, code, data=sent[:(28 if c.fam == 4 else 48)]), 0)
    return [(S, c.setup_udp()), (P, c.unreach(inner))]


case("icmp_err_quote_icmp_err")(_quote_icmp_err)
case("icmp_err_quote_ports_only")(lambda c: [(S, c.setup_udp()), (P, c.unreach(c.quote()[:(24 if c.fam == 4 else 44)]))])
case("icmp_err_trunc_quote")(lambda c: [(S, c.setup_udp()), (P, c.unreach(c.quote()[:(22 if c.fam == 4 else 42)]))])
case("icmp_err_quote_short_ip")(lambda c: [(S, c.setup_udp()), (P, c.unreach(c.quote()[:(12 if c.fam == 4 else 24)]))])


def _quote_frag(c):
    u = udp(c.fam, c.dst, c.src, c.dport, c.sport, b"reply-frag")
    if c.fam == 4:
        inner = ip4(c.dst, c.src, 17, u, 0, frag=1)
    else:
        inner = ip6(c.dst, c.src, IPPROTO_FRAGMENT, frag6(17, 1, False, 7) + u, 0)
    return [(S, c.setup_udp()), (P, c.unreach(inner))]


case("icmp_err_quote_frag")(_quote_frag)
# The connection is src -> third; the error quotes third -> src but goes to
# dst: nf_conntrack_inet_error wants the outer destination to be third.
case("icmp_err_wrong_outer_dst")(
    lambda c: [(S, c.setup_udp(dst=c.third)), (P, c.unreach(c.quote(frm=c.third)))])

# --- fragments (a 24-byte UDP datagram: 0..16 and 16..24) --------------------------------
case("frag_complete")(lambda c: [(P, f) for f in c.frags([(0, 16, True), (16, 24, False)])])
case("frag_first_only")(lambda c: [(P, f) for f in c.frags([(0, 16, True)])])
case("frag_last_only")(lambda c: [(P, f) for f in c.frags([(16, 24, False)])])
case("frag_overlap")(lambda c: [(P, f) for f in c.frags([(0, 16, True), (8, 24, False)])])
case("frag_dup")(lambda c: [(P, f) for f in c.frags([(0, 16, True), (0, 16, True), (16, 24, False)])])
# A non-last fragment whose length is not a multiple of 8.
case("frag_unaligned")(lambda c: [(P, f) for f in c.frags([(0, 12, True), (8, 24, False)])])
case("frag_zero_len")(lambda c: [(P, f) for f in c.frags([(0, 0, True), (0, 16, True), (16, 24, False)])])


def _frag_offset_max(c):
    d = c.datagram()
    if c.fam == 4:
        return [(P, ip4(c.src, c.dst, 17, d[:8], c.probe, frag=8191))]
    return [(P, ip6(c.src, c.dst, IPPROTO_FRAGMENT, frag6(17, 8191, False, c.ident) + d[:8], c.probe))]


case("frag_offset_max")(_frag_offset_max)
# A SYN whose first fragment holds 8 bytes of TCP header: ports, no flags.
case("frag_tcp_tiny")(
    lambda c: [(P, f) for f in c.frags([(0, 8, True), (8, 20, False)], proto=6, datagram=c.tcp(TCP_S))])
case("frag_atomic", (6,))(
    lambda c: [(P, ip6(c.src, c.dst, IPPROTO_FRAGMENT, frag6(17, 0, False, c.ident) + c.udp(), c.probe))])

# --- IPv6 extension headers and payload length ---------------------------------------------


def _chain(n):
    def build(c):
        hdrs = b"".join(opts6(IPPROTO_DSTOPTS) for _ in range(n - 1)) + opts6(17)
        return [(P, ip6(c.src, c.dst, IPPROTO_DSTOPTS, hdrs + c.udp(), c.probe))]
    return build


case("ext_dstopts_8", (6,))(_chain(8))
case("ext_dstopts_40", (6,))(_chain(40))
# A destination options header that claims 88 bytes, in a 24-byte payload.
case("ext_trunc", (6,))(
    lambda c: [(P, ip6(c.src, c.dst, IPPROTO_DSTOPTS, struct.pack("!BB", 17, 10) + b"\x01\x04\0\0\0\0" + c.udp(), c.probe))])
case("ext_hbh_not_first", (6,))(
    lambda c: [(P, ip6(c.src, c.dst, IPPROTO_DSTOPTS, opts6(0) + opts6(17) + c.udp(), c.probe))])
case("ext_rh0", (6,))(
    lambda c: [(P, ip6(c.src, c.dst, IPPROTO_ROUTING,
                       struct.pack("!BBBBI", 17, 2, 0, 0, 0) + aton(c.dst) + c.udp(), c.probe))])
case("ext_ah", (6,))(
    lambda c: [(P, ip6(c.src, c.dst, IPPROTO_AH,
                       struct.pack("!BBHII", 17, 4, 0, 0x100, 1) + b"\0" * 12 + c.udp(), c.probe))])
case("hbh_padn", (6,))(lambda c: [(P, ip6(c.src, c.dst, 0, opts6(17) + c.udp(), c.probe))])
# Payload length 0 with a jumbo option for a small packet: ipv6_hop_jumbo
# refuses it in ip6_rcv_core, before PRE_ROUTING.
case("hbh_jumbo_small", (6,), kernel=IP_RCV)(
    lambda c: [(P, ip6(c.src, c.dst, 0, struct.pack("!BBBBI", 17, 0, 0xC2, 4, 8 + 16) + c.udp(), c.probe, plen=0))])
# Payload length 0, UDP behind: on input the kernel trims to the header
# (at OUTPUT the bytes stay and are tracked by the skb's length).
case("plen0", (6,))(lambda c: [(P, ip6(c.src, c.dst, 17, c.udp(), c.probe, plen=0))])
# Payload length 0 with a hop-by-hop header but no jumbo option: not
# trimmed (ip6_rcv_core), tracked by the skb's length.
case("plen0_hbh", (6,))(lambda c: [(P, ip6(c.src, c.dst, 0, opts6(17) + c.udp(), c.probe, plen=0))])
case("nonext", (6,))(lambda c: [(P, ip6(c.src, c.dst, IPPROTO_NONE, b"", c.probe))])


def build(hook):
    """[(family, case name, role, packet)] for HOOK, cases in order, the
    fence last."""
    out = []
    for idx, cs in enumerate(CASES):
        for fam in cs["fams"]:
            for role, pkt in cs["fn"](Ctx(hook, fam, idx)):
                out.append((fam, cs["name"], role, pkt))
    src, dst = ADDRS[hook][4][:2]
    out.append((4, "fence", "fence", ip4(src, dst, 17, udp(4, src, dst, 39999, 39999, b"fence"), FENCE)))
    return out


# ---------------------------------------------------------------- sending

def pin():
    """Stay on the CPU we run on now (taskset may have chosen it)."""
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass


def cmd_send(args):
    hook = args[0]
    opt = dict(zip(args[1::2], args[2::2])) if "--raw" not in args else {}
    raw = "--raw" in args
    errfile = args[args.index("--errors") + 1]
    pin()
    errors = []
    if raw:
        s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    else:
        iface = opt["--iface"]
        mac = bytes.fromhex(opt["--dmac"].replace(":", ""))
        sp = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
    for fam, name, role, pkt in build(hook):
        try:
            if raw:
                if fam == 4:
                    s4.sendto(pkt, (socket.inet_ntop(socket.AF_INET, pkt[16:20]), 0))
                else:
                    s6.sendto(pkt, (socket.inet_ntop(socket.AF_INET6, pkt[24:40]), 0))
            else:
                sp.sendto(pkt, (iface, 0x0800 if fam == 4 else 0x86DD, 0, 0, mac))
        except OSError as e:
            errors.append("%d %s %s %s" % (fam, name, role, e.errno))
    with open(errfile, "w") as f:
        f.write("".join(e + "\n" for e in errors))


# ---------------------------------------------------------------- witnessing

def icmp_inmsgs():
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Icmp:")]
    return int(rows[1][rows[0].index("InMsgs")])


def cmd_witness(args):
    log = open(args[args.index("--log") + 1], "w", buffering=1)
    ready = args[args.index("--ready") + 1]
    socks = {}
    if "--packet" in args:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.bind((args[args.index("--packet") + 1], 0))
        socks[s] = "packet"
    else:
        for proto in (1, 6, 17, IPPROTO_EXP):
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
            socks[s] = ("raw4", proto)
        for proto in (6, 17, 58, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH, IPPROTO_NONE,
                      IPPROTO_DSTOPTS, IPPROTO_EXP):
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, proto)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_FLOWINFO, 1)
            if proto == 58:  # no checksum check: count what the hook let through
                s.setsockopt(SOL_RAW, IPV6_CHECKSUM, -1)
            socks[s] = ("raw6", proto)
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    for s in socks:
        s.setblocking(False)
    inmsgs0 = icmp_inmsgs() if "--raw" in args else 0
    raw_icmp4 = [0]
    with open(ready, "w") as f:
        f.write("ready\n")

    def drain(s):
        """Logs every packet queued on S; True if the fence was among them."""
        kind = socks[s]
        fence = False
        while True:
            try:
                if kind == "packet":
                    data, addr = s.recvfrom(65535)
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    if addr[1] == 0x0800 and len(data) >= 6:
                        fam, mark = 4, struct.unpack("!H", data[4:6])[0]
                    elif addr[1] == 0x86DD and len(data) >= 4:
                        fam, mark = 6, struct.unpack("!I", data[:4])[0] & 0xFFFFF
                    else:
                        continue
                elif kind[0] == "raw4":
                    data = s.recv(65535)
                    fam, mark = 4, struct.unpack("!H", data[4:6])[0]
                    if kind[1] == 1:
                        raw_icmp4[0] += 1
                else:
                    data, anc, _, _ = s.recvmsg(65535, 256)
                    fam, mark = 6, 0
                    for level, typ, val in anc:
                        if level == socket.IPPROTO_IPV6 and typ == IPV6_FLOWINFO and len(val) >= 4:
                            mark = struct.unpack("!I", val[:4])[0] & 0xFFFFF
            except BlockingIOError:
                return fence
            except OSError:
                continue
            log.write("%d %d\n" % (fam, mark))
            fence = fence or (fam == 4 and mark == FENCE)

    while True:
        readable, _, _ = select.select(list(socks), [], [])
        fence = False
        for s in readable:
            fence = drain(s) or fence
        if fence:
            # Everything sent before the fence has been delivered (or
            # dropped) by now: take what is still queued on the others.
            for s in socks:
                drain(s)
            if "--raw" in args:
                log.write("icmp4_short %d\n" % (icmp_inmsgs() - inmsgs0 - raw_icmp4[0]))
            log.write("fence\n")


# ---------------------------------------------------------------- comparing

def read_log(path):
    counts, short = {}, 0
    fence = False
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if w == ["fence"]:
                    fence = True
                elif w and w[0] == "icmp4_short":
                    short = int(w[1])
                elif len(w) == 2:
                    k = (int(w[0]), int(w[1]))
                    counts[k] = counts.get(k, 0) + 1
    except OSError:
        pass
    return counts, short, fence


def read_errors(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if len(w) == 4 and w[2] == "probe":
                    out.setdefault((int(w[0]), w[1]), []).append(int(w[3]))
    except OSError:
        pass
    return out


# Disagreements seen and not yet fixed, (hook, family, case): rfw's parser
# and nf_conntrack's differ on these. They are printed as TODO lines and
# counted apart, so that the test holds every other case to agreement;
# fixing one means deleting it here (a known case that agrees is reported).
# None now: the 23 found first (ICMP errors quoting only the ports, an
# unaligned IPv6 fragment, 40 destination-options headers, next header 59,
# IPv6 payload lengths the skb disagrees with, a bad version nibble at
# OUTPUT) are decided as nf_conntrack decides them; the host tests of each
# are in conntrack/tests/malformed.rs.
KNOWN = set()


def cmd_tally(args):
    d = args[0]
    lines, n = [], 0
    agree = disagree = trivial = known = 0
    per_hook = {}
    sanity = []
    for hook in HOOKS:
        side = {}
        for s in ("rfw", "nfct"):
            counts, short, fence = read_log(os.path.join(d, "%s.%s.log" % (s, hook)))
            side[s] = (counts, short, fence, read_errors(os.path.join(d, "%s.%s.err" % (s, hook))))
            if not fence:
                sanity.append("%s %s: the fence never arrived" % (s, hook))
        for fam in (4, 6):
            for idx, cs in enumerate(CASES):
                if fam not in cs["fams"]:
                    continue
                name = cs["name"]
                v = {}
                for s in ("rfw", "nfct"):
                    counts, short, _, errs = side[s]
                    k = counts.get((fam, PROBE + idx), 0)
                    if cs["short_icmp4"] and fam == 4 and hook == "input":
                        k = short
                    # A raw socket's sendto() fails with EPERM when a
                    # LOCAL_OUT or POST_ROUTING hook drops the packet
                    # (nf_hook_slow): a drop; any other error means the
                    # kernel refused to send it at all.
                    e = errs.get((fam, name), [])
                    detail = "%d" % k + "".join(", sendto %s" % os.strerror(x) for x in sorted(set(e)))
                    if k:
                        v[s] = ("pass", detail)
                    elif e and errno.EPERM not in e:
                        v[s] = ("unsent", detail)
                    else:
                        v[s] = ("drop", detail)
                n += 1
                ok = v["rfw"][0] == v["nfct"][0]
                note = ""
                if ok and v["rfw"][0] in ("drop", "unsent") and hook in cs["kernel"]:
                    note = " (the kernel stops it before the filter: %s)" % cs["kernel"][hook]
                    trivial += 1
                elif ok and v["rfw"][0] == "unsent":
                    trivial += 1
                todo = (hook, fam, name) in KNOWN
                if ok:
                    agree += 1
                    if todo:
                        note += " (a known disagreement that agrees now: remove it from KNOWN)"
                elif todo:
                    known += 1
                    note += " # TODO known disagreement"
                else:
                    disagree += 1
                h = per_hook.setdefault(hook, [0, 0])
                h[0 if ok else 1] += 1
                lines.append("%s %d %s ipv%d %s # rfw %s (%s), nf_conntrack %s (%s)%s%s" % (
                    "ok" if ok else "not ok", n, hook, fam, name, v["rfw"][0], v["rfw"][1],
                    v["nfct"][0], v["nfct"][1], "" if ok else " DISAGREE", note))
                # The oracle and the witnesses must work: plain packets pass
                # nf_conntrack everywhere, an illegal flag set never does.
                expect = {"tcp_syn": "pass", "udp_zero_payload": "pass", "tcp_synfin": "drop"}.get(name)
                if expect and v["nfct"][0] != expect:
                    sanity.append("nf_conntrack %s ipv%d %s: %s, expected %s" % (hook, fam, name, v["nfct"][0], expect))
    print("1..%d" % n)
    for line in lines:
        print(line)
    n4 = sum(1 for cs in CASES if 4 in cs["fams"])
    n6 = sum(1 for cs in CASES if 6 in cs["fams"])
    print("# per hook (agree/disagree): " + ", ".join("%s %d/%d" % (h, a, b) for h, (a, b) in per_hook.items()))
    for s in sanity:
        print("SANITY: " + s)
    print("TALLY %d %d %d %d %d %d %d %d" % (n4, n6, len(HOOKS), n, agree, disagree, trivial, known))
    return 1 if disagree or sanity else 0


# ---------------------------------------------------------------- main

def cmd_cases(_args):
    for idx, cs in enumerate(CASES):
        print("%2d %-26s ipv%s" % (idx, cs["name"], "/".join(str(f) for f in cs["fams"])))
    print("# %d IPv4 cases, %d IPv6 cases" % (sum(1 for c in CASES if 4 in c["fams"]),
                                              sum(1 for c in CASES if 6 in c["fams"])))


def cmd_dump(args):
    for fam, name, role, pkt in build(args[0]):
        print("ipv%d %-26s %-5s %3d %s" % (fam, name, role, len(pkt), pkt.hex()))


def main():
    cmds = {"cases": cmd_cases, "dump": cmd_dump, "send": cmd_send,
            "witness": cmd_witness, "tally": cmd_tally}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]) or 0)


if __name__ == "__main__":
    main()
