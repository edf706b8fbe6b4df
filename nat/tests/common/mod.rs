//! Packet builders for the tests: every checksum computed from scratch,
//! independently of the code under test.
#![allow(dead_code)]

use std::net::IpAddr;

/// Ones-complement sum of `data` (folded, not complemented).
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        acc += w as u64;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

pub fn fold_add(a: u16, b: u16) -> u16 {
    let s = a as u32 + b as u32;
    ((s & 0xffff) + (s >> 16)) as u16
}

fn octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// The pseudo-header sum.
pub fn pseudo(src: &IpAddr, dst: &IpAddr, proto: u8, len: usize) -> u16 {
    let mut p = octets(src);
    p.extend(octets(dst));
    if src.is_ipv4() {
        p.extend([0, proto]);
        p.extend((len as u16).to_be_bytes());
    } else {
        p.extend((len as u32).to_be_bytes());
        p.extend([0, 0, 0, proto]);
    }
    sum(&p)
}

#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
        no_csum: bool,
    },
    /// Echo request (or reply) with identifier and sequence.
    Echo { id: u16, seq: u16, reply: bool },
    /// An ICMP / ICMPv6 error carrying `inner`.
    Error { ty: u8, code: u8, inner: Vec<u8> },
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// Builds an IPv4 or IPv6 packet with correct checksums.
pub fn packet(src: IpAddr, dst: IpAddr, l4: &L4) -> Vec<u8> {
    packet_ttl(src, dst, l4, 64, 0)
}

pub fn packet_ttl(src: IpAddr, dst: IpAddr, l4: &L4, ttl: u8, tos: u8) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let (proto, mut body) = match l4 {
        L4::Tcp {
            sport,
            dport,
            payload,
        } => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&sport.to_be_bytes());
            h[2..4].copy_from_slice(&dport.to_be_bytes());
            h[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
            h[8..12].copy_from_slice(&0x0a0b_0c0du32.to_be_bytes());
            h[12] = 5 << 4;
            h[13] = 0x18;
            h[14..16].copy_from_slice(&64240u16.to_be_bytes());
            h.extend(payload);
            (TCP, h)
        }
        L4::Udp {
            sport,
            dport,
            payload,
            ..
        } => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&sport.to_be_bytes());
            h[2..4].copy_from_slice(&dport.to_be_bytes());
            h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            h.extend(payload);
            (UDP, h)
        }
        L4::Echo { id, seq, reply } => {
            let ty = match (v6, reply) {
                (false, false) => 8,
                (false, true) => 0,
                (true, false) => 128,
                (true, true) => 129,
            };
            let mut h = vec![ty, 0, 0, 0];
            h.extend(id.to_be_bytes());
            h.extend(seq.to_be_bytes());
            h.extend(b"pingpayload");
            (if v6 { 58 } else { 1 }, h)
        }
        L4::Error { ty, code, inner } => {
            let mut h = vec![*ty, *code, 0, 0, 0, 0, 0x05, 0xdc];
            h.extend(inner);
            (if v6 { 58 } else { 1 }, h)
        }
    };
    // L4 checksum.
    let (at, with_pseudo) = match proto {
        TCP => (16, true),
        UDP => (6, true),
        58 => (2, true),
        _ => (2, false),
    };
    let no_csum = matches!(l4, L4::Udp { no_csum: true, .. });
    if !no_csum {
        let mut s = sum(&body);
        if with_pseudo {
            s = fold_add(s, pseudo(&src, &dst, proto, body.len()));
        }
        let mut c = !s;
        if proto == UDP && c == 0 {
            c = 0xffff;
        }
        body[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut p;
    if v6 {
        p = vec![0u8; 40];
        p[0] = 0x60 | (tos >> 4);
        p[1] = (tos << 4) | 0x0a;
        p[2] = 0xbc;
        p[3] = 0xde;
        p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
        p[6] = proto;
        p[7] = ttl;
        p[8..24].copy_from_slice(&octets(&src));
        p[24..40].copy_from_slice(&octets(&dst));
    } else {
        p = vec![0u8; 20];
        p[0] = 0x45;
        p[1] = tos;
        p[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1c46u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = ttl;
        p[9] = proto;
        p[12..16].copy_from_slice(&octets(&src));
        p[16..20].copy_from_slice(&octets(&dst));
        let c = !sum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p.extend(body);
    p
}

/// The part of `pkt` an ICMPv4 error quotes: IP header + 8 bytes.
pub fn quote_v4(pkt: &[u8]) -> Vec<u8> {
    let ihl = (pkt[0] & 0xf) as usize * 4;
    pkt[..ihl + 8].to_vec()
}

/// Every checksum of a (non-fragmented, no extension header) packet is right.
pub fn checksums_ok(p: &[u8]) -> bool {
    let v6 = p[0] >> 4 == 6;
    let (hl, proto, src, dst): (usize, u8, IpAddr, IpAddr) = if v6 {
        let s: [u8; 16] = p[8..24].try_into().unwrap();
        let d: [u8; 16] = p[24..40].try_into().unwrap();
        (40, p[6], s.into(), d.into())
    } else {
        let hl = (p[0] & 0xf) as usize * 4;
        if sum(&p[..hl]) != 0xffff {
            return false;
        }
        let s: [u8; 4] = p[12..16].try_into().unwrap();
        let d: [u8; 4] = p[16..20].try_into().unwrap();
        (hl, p[9], s.into(), d.into())
    };
    let body = &p[hl..];
    let s = sum(body);
    match proto {
        TCP | 58 => fold_add(s, pseudo(&src, &dst, proto, body.len())) == 0xffff,
        UDP => {
            (!v6 && body[6..8] == [0, 0])
                || fold_add(s, pseudo(&src, &dst, proto, body.len())) == 0xffff
        }
        1 => s == 0xffff,
        _ => true,
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
