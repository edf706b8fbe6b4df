//! The fast path's packet work (nf_flow_table_ip.c): which packets it may
//! forward as they are, their tuple, and the rewrite it applies to them.
//!
//! The kernel glue looks the tuple up, checks the flow's cached route and
//! transmits; what is decided from the bytes alone lives here, where it is
//! tested on the host. A packet the fast path cannot handle exactly goes to
//! the normal path ([`Punt`], [`Fast::slow`]), which handles it as any
//! other.

use conntrack::wire::{ipv4, ipv6};
use conntrack::{checksum, ipproto, Direction, Family, Tuple};

use crate::nat_core::{Binding, ManipType};
use crate::nat_proto::{self, CsumMode, RewriteError};

/// Why a packet has no flow the fast path could know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Punt {
    /// Another IP version than the hook's, too short for its headers, a
    /// protocol other than TCP or UDP, IPv6 extension headers.
    Unknown,
    /// A fragment (`nf_flow_tuple_ip`: "ip_is_fragment"): the fast path
    /// runs at ingress, before defragmentation, which the normal path
    /// does.
    Fragment,
}

/// What the fast path reads from a TCP or UDP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fast {
    /// The packet's tuple, as the table indexes it.
    pub tuple: Tuple,
    /// TCP flags (0 for UDP): FIN or RST ends the offload
    /// (`nf_flow_state_check`).
    pub tcp_flags: u8,
    /// The packet belongs to the normal path even if its flow is
    /// offloaded: IPv4 options, a TTL or hop limit that forwarding would
    /// take to 0 (the normal path answers with ICMP), a length field that
    /// disagrees with the packet, an IPv4 header whose checksum is wrong
    /// (`ip_rcv_core` drops it and counts it in `InCsumErrors`).
    pub slow: bool,
    /// The datagram's length by its IP header (IPv4 total length, IPv6's
    /// fixed header plus payload): less than the packet's when the link
    /// padded the frame, as Ethernet pads one shorter than 60 bytes
    /// (`ip_rcv_core` and `ipv6_rcv` trim it).
    pub ip_len: usize,
}

/// TCP's FIN and RST flags.
pub const TCP_FIN_RST: u8 = 0x01 | 0x04;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ports(b: &[u8], l4: usize, proto: u8) -> Result<(u16, u16, u8), Punt> {
    let need = match proto {
        ipproto::TCP => 14,
        ipproto::UDP => 4,
        _ => return Err(Punt::Unknown),
    };
    if b.len() < l4 + need {
        return Err(Punt::Unknown);
    }
    let sport = be16(b, l4).ok_or(Punt::Unknown)?;
    let dport = be16(b, l4 + 2).ok_or(Punt::Unknown)?;
    let flags = if proto == ipproto::TCP {
        *b.get(l4 + 13).ok_or(Punt::Unknown)?
    } else {
        0
    };
    Ok((sport, dport, flags))
}

/// Reads the packet at the fast path (`b` from its network header, as
/// much as is linear; `len` the packet's length from there, `skb->len`)
/// for the hook of `family`: its tuple, and whether the fast path may
/// forward it.
///
/// IPv4 (`nf_flow_tuple_ip`): a 20-byte header (options go the normal
/// way), not a fragment, TTL above 1, TCP or UDP with the ports (and
/// TCP's flags) in `b`, a total length that the packet holds. IPv6
/// (`nf_flow_tuple_ipv6`): TCP or UDP right after the fixed header, hop
/// limit above 1. The IPv4 header's checksum is verified, since the fast
/// path runs at ingress, before `ip_rcv`; TCP's and UDP's are not (as in
/// nf_flow_table_ip.c): the rewrite updates them incrementally, so a
/// wrong one stays wrong and the receiver drops the packet.
pub fn parse(b: &[u8], len: usize, family: Family) -> Result<Fast, Punt> {
    match family {
        Family::Ipv4 => {
            let h: &[u8; ipv4::HEADER_LEN] = b
                .get(..ipv4::HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(Punt::Unknown)?;
            if h[0] >> 4 != ipv4::VERSION {
                return Err(Punt::Unknown);
            }
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let proto = h[9];
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                return Err(Punt::Fragment);
            }
            if ihl < ipv4::HEADER_LEN {
                return Err(Punt::Unknown);
            }
            let (sport, dport, tcp_flags) = ports(b, ihl, proto)?;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            // `ip_fast_csum`: the header's ones'-complement sum, its
            // checksum included, is all ones (ip_rcv_core checks it before
            // PRE_ROUTING; the fast path runs before ip_rcv).
            let slow = ihl != ipv4::HEADER_LEN
                || h[8] <= 1
                || total > len
                || total < ihl
                || checksum::data(h) != 0xffff;
            let src = [h[12], h[13], h[14], h[15]];
            let dst = [h[16], h[17], h[18], h[19]];
            Ok(Fast {
                tuple: Tuple::v4(src, dst, proto, sport, dport),
                tcp_flags,
                slow,
                ip_len: total,
            })
        }
        Family::Ipv6 => {
            let h: &[u8; ipv6::HEADER_LEN] = b
                .get(..ipv6::HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(Punt::Unknown)?;
            if h[0] >> 4 != ipv6::VERSION {
                return Err(Punt::Unknown);
            }
            let proto = h[6];
            let (sport, dport, tcp_flags) = ports(b, ipv6::HEADER_LEN, proto)?;
            let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
            // A payload length of 0 (a jumbogram, or BIG TCP) is the
            // normal path's to judge.
            let slow = h[7] <= 1 || payload == 0 || ipv6::HEADER_LEN + payload > len;
            let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
            for (d, s) in src.iter_mut().zip(h.iter().skip(8)) {
                *d = *s;
            }
            for (d, s) in dst.iter_mut().zip(h.iter().skip(24)) {
                *d = *s;
            }
            Ok(Fast {
                tuple: Tuple::v6(src, dst, proto, sport, dport),
                tcp_flags,
                slow,
                ip_len: ipv6::HEADER_LEN + payload,
            })
        }
    }
}

/// Bytes from the network header that [`forward`] writes: the IP header
/// and L4 up to TCP's checksum (`skb_try_make_writable(skb, thoff +
/// hdrsize)` in `nf_flow_offload_forward`).
pub const fn rewrite_len(family: Family, proto: u8) -> usize {
    let ip = match family {
        Family::Ipv4 => ipv4::HEADER_LEN,
        Family::Ipv6 => ipv6::HEADER_LEN,
    };
    ip + if proto == ipproto::TCP { 18 } else { 8 }
}

/// Rewrites a packet of direction `dir` of a flow with binding `b` as the
/// normal path would between receiving and sending it: destination NAT
/// (PRE_ROUTING), source NAT (POST_ROUTING), then one less TTL or hop
/// limit (`ip_decrease_ttl`, with the IPv4 header checksum updated
/// incrementally). `pkt` starts at the network header and holds at least
/// [`rewrite_len`] bytes.
pub fn forward(
    pkt: &mut [u8],
    b: &Binding,
    dir: Direction,
    mode: CsumMode,
) -> Result<(), RewriteError> {
    nat_proto::nat_packet(pkt, b, dir, ManipType::Dst, mode)?;
    nat_proto::nat_packet(pkt, b, dir, ManipType::Src, mode)?;
    decrement_ttl(pkt)
}

/// One less TTL (IPv4, checksum updated) or hop limit (IPv6). Refuses a
/// packet whose TTL is already 0 or 1 ([`parse`] punts those).
pub fn decrement_ttl(pkt: &mut [u8]) -> Result<(), RewriteError> {
    match pkt.first().map(|v| v >> 4) {
        Some(ipv4::VERSION) if pkt.len() >= ipv4::HEADER_LEN => {
            let mut h = ipv4::Packet::new_unchecked(&mut *pkt);
            let ttl = h.ttl();
            if ttl <= 1 {
                return Err(RewriteError::Malformed);
            }
            h.replace_ttl(ttl - 1);
            Ok(())
        }
        Some(ipv6::VERSION) if pkt.len() >= ipv6::HEADER_LEN => {
            let mut h = ipv6::Packet::new_unchecked(&mut *pkt);
            let hl = h.hop_limit();
            if hl <= 1 {
                return Err(RewriteError::Malformed);
            }
            h.set_hop_limit(hl - 1);
            Ok(())
        }
        Some(ipv4::VERSION | ipv6::VERSION) => Err(RewriteError::Truncated),
        _ => Err(RewriteError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use conntrack::conn::ConnKey;

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, ttl: u8) -> Vec<u8> {
        let mut p = std::vec![0u8; 28 + 4];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&32u16.to_be_bytes());
        p[8] = ttl;
        p[9] = ipproto::UDP;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[24..26].copy_from_slice(&12u16.to_be_bytes());
        p[28..32].copy_from_slice(b"abcd");
        let c = !checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        fix_udp4(&mut p);
        p
    }

    fn fix_udp4(p: &mut [u8]) {
        p[26..28].copy_from_slice(&[0, 0]);
        let sum = udp4_sum(p);
        p[26..28].copy_from_slice(&sum.to_be_bytes());
    }

    fn udp4_sum(p: &[u8]) -> u16 {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, ipproto::UDP]);
        pseudo.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
        pseudo.extend_from_slice(&p[20..]);
        !checksum::data(&pseudo)
    }

    #[test]
    fn parses_a_plain_udp_packet() {
        let p = udp4([10, 0, 0, 2], [192, 0, 2, 1], 4000, 53, 64);
        let f = parse(&p, p.len(), Family::Ipv4).unwrap();
        assert_eq!(
            f.tuple,
            Tuple::v4([10, 0, 0, 2], [192, 0, 2, 1], ipproto::UDP, 4000, 53)
        );
        assert_eq!(f.tcp_flags, 0);
        assert!(!f.slow);
    }

    #[test]
    fn punts_what_the_normal_path_must_see() {
        let slow = |p: &[u8], len| parse(p, len, Family::Ipv4).map(|f| f.slow);
        let p = udp4([10, 0, 0, 2], [192, 0, 2, 1], 4000, 53, 1);
        assert_eq!(slow(&p, p.len()), Ok(true));
        let mut f = udp4([10, 0, 0, 2], [192, 0, 2, 1], 4000, 53, 64);
        f[6] = 0x20; // more fragments
        assert_eq!(parse(&f, f.len(), Family::Ipv4), Err(Punt::Fragment));
        let p = udp4([10, 0, 0, 2], [192, 0, 2, 1], 4000, 53, 64);
        // Shorter than its total length.
        assert_eq!(slow(&p, p.len() - 1), Ok(true));
        assert_eq!(slow(&p, p.len()), Ok(false));
        // Wrong family for the hook, and too short for the ports.
        assert_eq!(parse(&p, p.len(), Family::Ipv6), Err(Punt::Unknown));
        assert_eq!(parse(&p[..22], 32, Family::Ipv4), Err(Punt::Unknown));
        let mut o = p.clone();
        o[9] = ipproto::ICMP;
        assert_eq!(parse(&o, o.len(), Family::Ipv4), Err(Punt::Unknown));
        // A header checksum that is wrong.
        let mut c = p.clone();
        c[10] ^= 0x01;
        assert_eq!(slow(&c, c.len()), Ok(true));
    }

    #[test]
    fn link_padding_is_not_the_datagram() {
        // 32 bytes of datagram in a frame padded to 46 bytes of payload.
        let mut p = udp4([10, 0, 0, 2], [192, 0, 2, 1], 4000, 53, 64);
        let ip_len = p.len();
        p.resize(46, 0);
        let f = parse(&p, p.len(), Family::Ipv4).unwrap();
        assert!(!f.slow);
        assert_eq!(f.ip_len, ip_len);
        let mut q = std::vec![0u8; 48];
        q[0] = 0x60;
        q[4..6].copy_from_slice(&8u16.to_be_bytes());
        q[6] = ipproto::UDP;
        q[7] = 64;
        q.resize(60, 0);
        assert_eq!(parse(&q, q.len(), Family::Ipv6).unwrap().ip_len, 48);
    }

    #[test]
    fn forward_masquerades_and_decrements_the_ttl() {
        // 10.0.0.2:4000 -> 192.0.2.1:53, masqueraded to 198.51.100.1:4000.
        let orig = Tuple::v4([10, 0, 0, 2], [192, 0, 2, 1], ipproto::UDP, 4000, 53);
        let reply = Tuple::v4([192, 0, 2, 1], [198, 51, 100, 1], ipproto::UDP, 53, 4000);
        let key = ConnKey::from_tuples(orig, &reply);
        let nat = Binding::implied_status(&key).unwrap();
        let b = Binding::from_parts(orig, reply, nat);
        let mut p = udp4([10, 0, 0, 2], [192, 0, 2, 1], 4000, 53, 64);
        forward(&mut p, &b, Direction::Original, CsumMode::Full).unwrap();
        assert_eq!(&p[12..16], &[198, 51, 100, 1]);
        assert_eq!(p[8], 63);
        assert_eq!(checksum::data(&p[..20]), 0xffff, "IP checksum");
        let want = {
            let mut q = p.clone();
            fix_udp4(&mut q);
            q
        };
        assert_eq!(p, want, "UDP checksum updated incrementally");
        // The answer comes back to the client.
        let mut r = udp4([192, 0, 2, 1], [198, 51, 100, 1], 53, 4000, 60);
        forward(&mut r, &b, Direction::Reply, CsumMode::Full).unwrap();
        assert_eq!(&r[16..20], &[10, 0, 0, 2]);
        assert_eq!(r[8], 59);
        assert_eq!(checksum::data(&r[..20]), 0xffff);
    }

    #[test]
    fn ipv6_hop_limit() {
        let mut p = std::vec![0u8; 48];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&8u16.to_be_bytes());
        p[6] = ipproto::UDP;
        p[7] = 2;
        let f = parse(&p, p.len(), Family::Ipv6).unwrap();
        assert_eq!(f.tuple.proto, ipproto::UDP);
        decrement_ttl(&mut p).unwrap();
        assert_eq!(p[7], 1);
        assert!(parse(&p, p.len(), Family::Ipv6).unwrap().slow);
        assert!(decrement_ttl(&mut p).is_err());
        p[6] = 0; // hop-by-hop options
        assert_eq!(parse(&p, p.len(), Family::Ipv6), Err(Punt::Unknown));
    }
}
