//! Test support: packet builders on literal layouts and a TCP flow harness.
#![allow(dead_code, clippy::too_many_arguments)]

use conntrack::checksum;
use conntrack::conn::Config;
use conntrack::proto::tcp::TcpState;
use conntrack::table::HostTable;
use conntrack::wire::tcp::Flags;
use conntrack::{process, Class, Conn, Direction, Family, HashKey, Processed, Status, Verdict};

pub const FIN: u8 = Flags::FIN;
pub const SYN: u8 = Flags::SYN;
pub const RST: u8 = Flags::RST;
pub const PSH: u8 = Flags::PSH;
pub const ACK: u8 = Flags::ACK;
pub const URG: u8 = Flags::URG;

pub const KEY: HashKey = HashKey {
    k0: 0x0123_4567_89ab_cdef,
    k1: 0xfedc_ba98_7654_3210,
};

/// An endpoint: address (4 or 16 bytes used) and port.
#[derive(Clone, Copy, Debug)]
pub struct Ep {
    pub addr: [u8; 16],
    pub port: u16,
}

pub fn ep4(a: [u8; 4], port: u16) -> Ep {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&a);
    Ep { addr, port }
}

pub fn ep6(last: u8, port: u16) -> Ep {
    let mut addr = [0u8; 16];
    addr[0] = 0x20;
    addr[1] = 0x01;
    addr[2] = 0x0d;
    addr[3] = 0xb8;
    addr[15] = last;
    Ep { addr, port }
}

fn ip_header(family: Family, src: &Ep, dst: &Ep, proto: u8, l4: &[u8]) -> Vec<u8> {
    match family {
        Family::Ipv4 => {
            let total = 20 + l4.len();
            let mut h = vec![
                0x45,
                0,
                (total >> 8) as u8,
                total as u8,
                0,
                1,
                0x40,
                0,
                64,
                proto,
                0,
                0,
            ];
            h.extend_from_slice(&src.addr[..4]);
            h.extend_from_slice(&dst.addr[..4]);
            let c = checksum::finish(checksum::data(&h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(l4);
            h
        }
        Family::Ipv6 => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            h.push(proto);
            h.push(64);
            h.extend_from_slice(&src.addr);
            h.extend_from_slice(&dst.addr);
            h.extend_from_slice(l4);
            h
        }
    }
}

fn pseudo(family: Family, src: &Ep, dst: &Ep, proto: u8, len: usize) -> u16 {
    match family {
        Family::Ipv4 => checksum::pseudo_header_v4(
            &src.addr[..4].try_into().unwrap(),
            &dst.addr[..4].try_into().unwrap(),
            proto,
            len as u16,
        ),
        Family::Ipv6 => checksum::pseudo_header_v6(&src.addr, &dst.addr, proto, len as u32),
    }
}

/// A TCP segment inside an IP packet, checksums filled.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    family: Family,
    src: &Ep,
    dst: &Ep,
    flags: u8,
    seq: u32,
    ack: u32,
    win: u16,
    opts: &[u8],
    payload: usize,
) -> Vec<u8> {
    let mut o = opts.to_vec();
    while o.len() & 3 != 0 {
        o.push(0);
    }
    let hl = 20 + o.len();
    let mut t = Vec::with_capacity(hl + payload);
    t.extend_from_slice(&src.port.to_be_bytes());
    t.extend_from_slice(&dst.port.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push(((hl / 4) as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&win.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(&o);
    t.resize(hl + payload, 0xab);
    let ph = pseudo(family, src, dst, 6, t.len());
    let c = checksum::finish(checksum::add(checksum::data(&t), ph));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    ip_header(family, src, dst, 6, &t)
}

pub fn udp(family: Family, src: &Ep, dst: &Ep, payload: usize) -> Vec<u8> {
    let len = 8 + payload;
    let mut u = Vec::new();
    u.extend_from_slice(&src.port.to_be_bytes());
    u.extend_from_slice(&dst.port.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(len, 0x55);
    let ph = pseudo(family, src, dst, 17, len);
    let c = checksum::finish(checksum::add(checksum::data(&u), ph));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    ip_header(family, src, dst, 17, &u)
}

/// An ICMP (IPv4) or ICMPv6 (IPv6) message; `rest` is the 4 bytes after
/// the checksum, `data` what follows.
pub fn icmp(
    family: Family,
    src: &Ep,
    dst: &Ep,
    ty: u8,
    code: u8,
    rest: [u8; 4],
    data: &[u8],
) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let proto = if family == Family::Ipv4 { 1 } else { 58 };
    let c = match family {
        Family::Ipv4 => checksum::finish(checksum::data(&m)),
        Family::Ipv6 => checksum::finish(checksum::add(
            checksum::data(&m),
            pseudo(family, src, dst, 58, m.len()),
        )),
    };
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ip_header(family, src, dst, proto, &m)
}

pub fn echo(family: Family, src: &Ep, dst: &Ep, reply: bool, id: u16, seq: u16) -> Vec<u8> {
    let ty = match (family, reply) {
        (Family::Ipv4, false) => 8,
        (Family::Ipv4, true) => 0,
        (Family::Ipv6, false) => 128,
        (Family::Ipv6, true) => 129,
    };
    let mut rest = [0u8; 4];
    rest[..2].copy_from_slice(&id.to_be_bytes());
    rest[2..].copy_from_slice(&seq.to_be_bytes());
    icmp(family, src, dst, ty, 0, rest, b"abcdefgh")
}

/// MSS option.
pub fn mss(v: u16) -> Vec<u8> {
    vec![2, 4, (v >> 8) as u8, v as u8]
}
/// Window scale option (with a leading NOP).
pub fn wscale(v: u8) -> Vec<u8> {
    vec![1, 3, 3, v]
}
pub fn sack_perm() -> Vec<u8> {
    vec![4, 2]
}
pub fn ts(val: u32, ecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    o
}
pub fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut o = vec![1, 1, 5, (2 + 8 * blocks.len()) as u8];
    for (l, r) in blocks {
        o.extend_from_slice(&l.to_be_bytes());
        o.extend_from_slice(&r.to_be_bytes());
    }
    o
}
pub fn opts(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// One TCP connection between a client and a server, tracked through the
/// all-in-one path with a host table.
pub struct Flow {
    pub table: HostTable,
    pub cfg: Config,
    pub family: Family,
    pub client: Ep,
    pub server: Ep,
    pub now: u64,
}

impl Flow {
    pub fn new(family: Family) -> Flow {
        let (client, server) = match family {
            Family::Ipv4 => (ep4([192, 0, 2, 1], 34375), ep4([192, 168, 24, 72], 8080)),
            Family::Ipv6 => (ep6(1, 34375), ep6(2, 8080)),
        };
        Flow {
            table: HostTable::new(1024, KEY),
            cfg: Config::default(),
            family,
            client,
            server,
            now: 1_000_000,
        }
    }

    pub fn send(
        &mut self,
        from_client: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        win: u16,
        o: &[u8],
        len: usize,
    ) -> Verdict {
        let (s, d) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let p = tcp(self.family, &s, &d, flags, seq, ack, win, o, len);
        let r: Processed<_> = process(&mut self.table, &p, self.family, self.now, &self.cfg);
        self.table.check_consistency().unwrap();
        r.verdict
    }

    /// Client to server.
    pub fn c(&mut self, flags: u8, seq: u32, ack: u32, win: u16, o: &[u8], len: usize) -> Verdict {
        self.send(true, flags, seq, ack, win, o, len)
    }

    /// Server to client.
    pub fn s(&mut self, flags: u8, seq: u32, ack: u32, win: u16, o: &[u8], len: usize) -> Verdict {
        self.send(false, flags, seq, ack, win, o, len)
    }

    pub fn conn(&self) -> Option<&Conn> {
        self.table.iter().next().map(|(_, c)| c)
    }

    pub fn state(&self) -> Option<TcpState> {
        self.conn().and_then(|c| c.tcp_state())
    }

    pub fn status(&self) -> Status {
        self.conn().map(|c| c.status()).unwrap_or_default()
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }
}

pub fn is_invalid(v: &Verdict) -> bool {
    matches!(v.class, Class::Invalid(_))
}

pub fn assert_ok(v: &Verdict) {
    assert!(!is_invalid(v), "unexpected INVALID: {v:?} ({})", reason(v));
}

pub fn reason(v: &Verdict) -> String {
    match v.class {
        Class::Invalid(r) => r.to_string(),
        _ => String::new(),
    }
}

pub fn dir(v: &Verdict) -> Direction {
    v.dir
}

/// Inserts IPv6 extension headers (each `(next header, bytes)`: the
/// caller's chain ends with the original next header) and fixes the
/// payload length.
pub fn with_ext_headers(pkt: &[u8], first: u8, chain: &[Vec<u8>]) -> Vec<u8> {
    let mut p = pkt[..40].to_vec();
    p[6] = first;
    for h in chain {
        p.extend_from_slice(h);
    }
    p.extend_from_slice(&pkt[40..]);
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p
}

/// The first `keep` bytes of `pkt`'s L4 part as the first fragment of it
/// (IPv4: MF set, offset 0; IPv6: a fragment header with M set).
pub fn first_fragment(pkt: &[u8], family: Family, keep: usize) -> Vec<u8> {
    match family {
        Family::Ipv4 => {
            let mut p = pkt[..20 + keep].to_vec();
            p[2..4].copy_from_slice(&((20 + keep) as u16).to_be_bytes());
            p[6] = 0x20; // MF, offset 0
            p[7] = 0;
            conntrack::wire::ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
            p
        }
        Family::Ipv6 => {
            // Next header, reserved, offset 0 with M set, identification.
            let frag = vec![pkt[6], 0, 0, 1, 0, 0, 0, 7];
            with_ext_headers(&pkt[..40 + keep], 44, &[frag])
        }
    }
}
