//! `parse_prefix`: the first `n` bytes of a packet parse exactly as the
//! whole packet once they hold its headers, and give a `Truncated` error
//! before that.

mod common;
use common::*;
use conntrack::parse::{parse_any, parse_prefix_any, L4Info, ParseOptions};
use conntrack::wire::{self, ipv4};
use conntrack::{checksum, parse, parse_prefix, Family, ParseError};

fn no_verify() -> ParseOptions {
    ParseOptions::default()
}

fn verify() -> ParseOptions {
    ParseOptions {
        verify_checksums: true,
        ..ParseOptions::default()
    }
}

/// Checks `pkt` against every prefix length: `Truncated` below
/// `headers_end`, the result of `parse` (without checksums) from there on.
fn check(name: &str, pkt: &[u8], family: Family, headers_end: usize) {
    let full = parse(pkt, family, &no_verify()).unwrap_or_else(|e| panic!("{name}: {e}"));
    // The test packets are checksummed: parse verifies them.
    assert_eq!(parse(pkt, family, &verify()), Ok(full), "{name}");
    assert!(headers_end <= pkt.len(), "{name}");
    for n in 0..headers_end {
        match parse_prefix(&pkt[..n], family, &no_verify()) {
            Err(e) if e.is_truncated() => {}
            other => {
                panic!("{name}: prefix of {n} bytes (headers end at {headers_end}): {other:?}")
            }
        }
    }
    for n in headers_end..=pkt.len() {
        for opts in [no_verify(), verify()] {
            assert_eq!(
                parse_prefix(&pkt[..n], family, &opts),
                Ok(full),
                "{name}: prefix of {n} bytes (headers end at {headers_end})"
            );
        }
        assert_eq!(
            parse_prefix_any(&pkt[..n], &no_verify()),
            Ok(full),
            "{name}"
        );
    }
    assert_eq!(parse_any(pkt, &no_verify()), Ok(full), "{name}");
}

fn ip_hl(family: Family) -> usize {
    match family {
        Family::Ipv4 => 20,
        Family::Ipv6 => 40,
    }
}

fn eps(family: Family) -> (Ep, Ep) {
    match family {
        Family::Ipv4 => (ep4([10, 0, 0, 1], 40000), ep4([10, 0, 0, 2], 443)),
        Family::Ipv6 => (ep6(1, 40000), ep6(2, 443)),
    }
}

/// Inserts `opts` (a multiple of 4 bytes) as IPv4 options.
fn with_ip_options(pkt: &[u8], opts: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let mut p = pkt[..20].to_vec();
    p.extend_from_slice(opts);
    p.extend_from_slice(&pkt[20..]);
    p[0] = 0x40 | ((20 + opts.len()) / 4) as u8;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
    ip.fill_checksum();
    p
}

fn tcp_opts() -> Vec<u8> {
    opts(&[mss(1460), sack_perm(), ts(7, 0), wscale(7)])
}

#[test]
fn tcp_with_options_and_payload() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let o = tcp_opts();
        let tcp_hl = 20 + o.len().next_multiple_of(4);
        let p = tcp(family, &a, &b, SYN | ACK, 1, 2, 1000, &o, 1000);
        check("tcp", &p, family, ip_hl(family) + tcp_hl);
        // The payload length comes from the IP header, not the prefix.
        let info = parse_prefix(&p[..ip_hl(family) + tcp_hl], family, &no_verify()).unwrap();
        let L4Info::Tcp(t) = info.l4 else {
            panic!("not TCP")
        };
        assert_eq!(t.payload_len, 1000);
        assert_eq!(info.ip_len as usize, p.len());
        assert_eq!(t.options.wscale, Some(7));
        // No options, no payload.
        let p = tcp(family, &a, &b, ACK, 1, 2, 1000, &[], 0);
        check("bare tcp", &p, family, ip_hl(family) + 20);
    }
}

#[test]
fn ipv4_options() {
    let (a, b) = eps(Family::Ipv4);
    let p = tcp(Family::Ipv4, &a, &b, ACK, 1, 2, 1000, &tcp_opts(), 300);
    // Record route (7, 11 bytes, pointer 4) + NOP: 12 bytes of options.
    let mut rr = vec![7, 11, 4];
    rr.extend_from_slice(&[0; 8]);
    rr.push(1);
    let q = with_ip_options(&p, &rr);
    let tcp_hl = 20 + tcp_opts().len().next_multiple_of(4);
    check("ipv4 options", &q, Family::Ipv4, 32 + tcp_hl);
    // The options must be in the prefix even with the fixed header there.
    assert_eq!(
        parse_prefix(&q[..31], Family::Ipv4, &no_verify()),
        Err(ParseError::Ip(wire::Error::Truncated))
    );
}

#[test]
fn udp_and_its_length_check() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let h = ip_hl(family);
        let p = udp(family, &a, &b, 200);
        check("udp", &p, family, h + 8);
        let info = parse_prefix(&p[..h + 8], family, &no_verify()).unwrap();
        assert_eq!(info.l4, L4Info::Udp { payload_len: 200 });
        // A UDP length beyond the IP payload: caught from the header alone.
        let mut long = p.clone();
        long[h + 4..h + 6].copy_from_slice(&209u16.to_be_bytes());
        let e = Err(ParseError::Udp(wire::Error::Truncated));
        assert_eq!(parse(&long, family, &no_verify()), e);
        assert_eq!(parse_prefix(&long[..h + 8], family, &no_verify()), e);
        // Below the header length.
        long[h + 4..h + 6].copy_from_slice(&7u16.to_be_bytes());
        let e = Err(ParseError::Udp(wire::Error::BadLength));
        assert_eq!(parse(&long, family, &no_verify()), e);
        assert_eq!(parse_prefix(&long[..h + 8], family, &no_verify()), e);
        // Shorter than the IP payload is fine (as in Linux).
        let mut short = p.clone();
        short[h + 4..h + 6].copy_from_slice(&100u16.to_be_bytes());
        let whole = parse(&short, family, &no_verify()).unwrap();
        assert_eq!(whole.l4, L4Info::Udp { payload_len: 92 });
        assert_eq!(
            parse_prefix(&short[..h + 8], family, &no_verify()),
            Ok(whole)
        );
    }
}

#[test]
fn icmp_echo() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let p = echo(family, &a, &b, false, 77, 1);
        check("echo", &p, family, ip_hl(family) + 8);
    }
}

#[test]
fn icmp_error_quoting_tcp() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let h = ip_hl(family);
        let inner = tcp(family, &a, &b, SYN, 1, 0, 1000, &tcp_opts(), 100);
        let ty = if family == Family::Ipv4 { 3 } else { 1 };
        // The whole packet quoted, the usual minimum (8 bytes of L4), and
        // the ports alone, all `nf_ct_get_tuple_ports()` reads: the
        // headers end with the quoted ports.
        for quote in [inner.len(), h + 8, h + 4] {
            let p = icmp(family, &b, &a, ty, 1, [0; 4], &inner[..quote]);
            check("icmp error", &p, family, h + 8 + h + 4);
            let info = parse(&p, family, &no_verify()).unwrap();
            assert!(matches!(
                info.l4,
                L4Info::Icmp(conntrack::parse::IcmpInfo::Error { .. })
            ));
        }
        // A quote cut short in the packet itself is unusable, also when
        // the prefix holds the whole packet; a prefix cutting a good quote
        // is truncated.
        let p = icmp(family, &b, &a, ty, 1, [0; 4], &inner[..h + 3]);
        assert_eq!(parse(&p, family, &no_verify()), Err(ParseError::IcmpInner));
        assert_eq!(
            parse_prefix(&p, family, &no_verify()),
            Err(ParseError::IcmpInner)
        );
        let p = icmp(family, &b, &a, ty, 1, [0; 4], &inner);
        assert_eq!(
            parse_prefix(&p[..h + 8 + h + 3], family, &no_verify()),
            Err(ParseError::Icmp(wire::Error::Truncated))
        );
    }
}

#[test]
fn ipv6_extension_headers() {
    let (a, b) = eps(Family::Ipv6);
    let p = tcp(Family::Ipv6, &a, &b, ACK, 5, 6, 1000, &tcp_opts(), 500);
    let tcp_hl = 20 + tcp_opts().len().next_multiple_of(4);
    // Hop-by-hop (8) -> destination options (16) -> fragment (offset 0,
    // no more fragments: an atomic fragment) -> TCP.
    let hbh = vec![60, 0, 1, 4, 0, 0, 0, 0];
    let mut dst = vec![44, 1, 1, 12];
    dst.extend_from_slice(&[0; 12]);
    let frag = vec![6, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    let q = with_ext_headers(&p, 0, &[hbh.clone(), dst.clone(), frag]);
    // Checksums do not cover extension headers: the TCP one still holds.
    check("ipv6 ext", &q, Family::Ipv6, 40 + 8 + 16 + 8 + tcp_hl);
    // First fragment (M set): the payload length is this fragment's.
    let frag_m = vec![6, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
    let q = with_ext_headers(&p, 0, &[hbh, dst, frag_m]);
    let whole = parse(&q, Family::Ipv6, &no_verify()).unwrap();
    assert_eq!(whole.fragment, conntrack::parse::FragmentStatus::First);
    for n in 40 + 32 + tcp_hl..=q.len() {
        assert_eq!(parse_prefix(&q[..n], Family::Ipv6, &no_verify()), Ok(whole));
    }
    // An ICMPv6 error quoting a packet with extension headers.
    let inner = with_ext_headers(
        &udp(Family::Ipv6, &a, &b, 30),
        60,
        &[vec![17, 0, 1, 4, 0, 0, 0, 0]],
    );
    let e = icmp(Family::Ipv6, &b, &a, 1, 4, [0; 4], &inner);
    check("icmpv6 error, ext", &e, Family::Ipv6, 40 + 8 + 40 + 8 + 4);
}

#[test]
fn other_protocols_and_padding() {
    // GRE (47) over IPv4: only the IP header is read.
    let mut g = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    g.extend_from_slice(&[0x5a; 40]);
    let total = g.len() as u16;
    g[2..4].copy_from_slice(&total.to_be_bytes());
    let c = checksum::finish(checksum::data(&g[..20]));
    g[10..12].copy_from_slice(&c.to_be_bytes());
    check("gre", &g, Family::Ipv4, 20);
    // Link-layer padding after the packet: ignored by both.
    let (a, b) = eps(Family::Ipv4);
    let mut p = udp(Family::Ipv4, &a, &b, 2);
    p.extend_from_slice(&[0; 16]);
    check("padded udp", &p, Family::Ipv4, 28);
}

#[test]
fn errors_before_the_prefix_end_are_the_packets() {
    // Header fields that are in the prefix are checked as by `parse`.
    let (a, b) = eps(Family::Ipv4);
    let p = tcp(Family::Ipv4, &a, &b, ACK, 1, 2, 1000, &[], 100);
    let mut bad = p.clone();
    bad[0] = 0x44;
    assert_eq!(
        parse_prefix(&bad[..40], Family::Ipv4, &no_verify()),
        Err(ParseError::Ip(wire::Error::BadHeaderLen))
    );
    let mut bad = p.clone();
    bad[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        parse_prefix(&bad[..40], Family::Ipv4, &no_verify()),
        Err(ParseError::Ip(wire::Error::BadLength))
    );
    let mut bad = p.clone();
    bad[32] = 0x40; // TCP data offset 4
    assert_eq!(
        parse_prefix(&bad[..40], Family::Ipv4, &no_verify()),
        Err(ParseError::Tcp(wire::Error::BadHeaderLen))
    );
    // The version nibble chooses the family only where the caller asks
    // for that; a family given is taken as it is (nf_conntrack's).
    let mut v7 = p.clone();
    v7[0] = 0x75;
    assert_eq!(
        parse_prefix_any(&v7[..40], &no_verify()),
        Err(ParseError::Ip(wire::Error::BadVersion))
    );
    assert_eq!(
        parse_prefix(&v7[..40], Family::Ipv4, &no_verify()).map(|i| i.tuple),
        parse_prefix(&p[..40], Family::Ipv4, &no_verify()).map(|i| i.tuple)
    );
    // A TCP header longer than the IP packet.
    let mut bad = p.clone();
    bad[2..4].copy_from_slice(&39u16.to_be_bytes());
    let e = Err(ParseError::Tcp(wire::Error::Truncated));
    assert_eq!(parse(&bad, Family::Ipv4, &no_verify()), e);
    assert_eq!(parse_prefix(&bad, Family::Ipv4, &no_verify()), e);
    // Non-first fragments are refused from the IP header alone.
    let mut frag = p.clone();
    frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
    assert_eq!(
        parse_prefix(&frag[..20], Family::Ipv4, &no_verify()),
        Err(ParseError::Fragment)
    );
    // Checksums are not verified on a prefix (not even a whole one).
    let mut bad_sum = p.clone();
    bad_sum[36] ^= 0xff;
    assert_eq!(
        parse(&bad_sum, Family::Ipv4, &verify()),
        Err(ParseError::BadChecksum)
    );
    assert_eq!(
        parse_prefix(&bad_sum, Family::Ipv4, &verify()),
        parse(&bad_sum, Family::Ipv4, &no_verify())
    );
}

#[test]
fn first_fragments_carry_their_ports() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let h = ip_hl(family);
        // A 4000-byte datagram's first 1448 bytes (a multiple of 8).
        let p = udp(family, &a, &b, 4000);
        let f = first_fragment(&p, family, 1448);
        let fh = if family == Family::Ipv4 { h } else { h + 8 };
        for bytes in [&f[..], &f[..fh + 8]] {
            let info = parse_prefix(bytes, family, &no_verify())
                .unwrap_or_else(|e| panic!("{family:?} first UDP fragment: {e}"));
            assert_eq!((info.tuple.src_port, info.tuple.dst_port), (40000, 443));
            assert_eq!(info.fragment, conntrack::parse::FragmentStatus::First);
            // The datagram's length, from its header: more than the
            // fragment has, which `udp_error()` calls INVALID, but the
            // ports stand for the rules.
            assert_eq!(info.l4, L4Info::Udp { payload_len: 4000 });
            assert_eq!(info.invalid, Some(ParseError::Udp(wire::Error::Truncated)));
        }
        assert_eq!(
            parse(&f, family, &no_verify()).map(|i| i.tuple),
            Ok(parse_prefix(&f, family, &no_verify()).unwrap().tuple)
        );
        // Its UDP header must still be whole, and its length at least 8.
        assert_eq!(
            parse_prefix(&f[..fh + 6], family, &no_verify()),
            Err(ParseError::Udp(wire::Error::Truncated))
        );
        let mut bad = f.clone();
        bad[fh + 4..fh + 6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            parse_prefix(&bad, family, &no_verify()),
            Err(ParseError::Udp(wire::Error::BadLength))
        );
        // A TCP first fragment: its ports too.
        let t = tcp(family, &a, &b, ACK, 1, 2, 1000, &[], 3000);
        let f = first_fragment(&t, family, 1448);
        let info = parse_prefix(&f, family, &no_verify()).unwrap();
        assert_eq!((info.tuple.src_port, info.tuple.dst_port), (40000, 443));
        assert_eq!(info.invalid, None);
        // A tiny first fragment (8 bytes of TCP) has no whole header.
        let f = first_fragment(&t, family, 8);
        assert_eq!(
            parse_prefix(&f, family, &no_verify()),
            Err(ParseError::Tcp(wire::Error::Truncated))
        );
        // The fragments after the first have no ports.
        let mut later = first_fragment(&p, family, 1448);
        match family {
            Family::Ipv4 => later[6..8].copy_from_slice(&(0x2000u16 | (1448 / 8)).to_be_bytes()),
            // Offset in 8-byte units from bit 3, M in bit 0.
            Family::Ipv6 => later[h + 2..h + 4].copy_from_slice(&(1448u16 | 1).to_be_bytes()),
        }
        assert_eq!(
            parse_prefix(&later, family, &no_verify()),
            Err(ParseError::Fragment)
        );
    }
}

#[test]
fn big_tcp_length_from_the_skb() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let h = ip_hl(family);
        let p = tcp(family, &a, &b, ACK, 1, 2, 1000, &[], 3000);
        let whole = parse(&p, family, &no_verify()).unwrap();
        // The length field 0, as a BIG TCP packet carries it.
        let mut big = p.clone();
        let at = if family == Family::Ipv4 { 2 } else { 4 };
        big[at..at + 2].copy_from_slice(&[0, 0]);
        let len = Some(p.len() as u32);
        assert_eq!(
            conntrack::parse::parse_prefix_len(&big[..h + 20], family, &no_verify(), len),
            Ok(whole)
        );
        // Without the skb's length, 0 is what it says.
        assert!(parse_prefix(&big[..h + 20], family, &no_verify()).is_err());
        // The skb's length is the packet's whatever the field says, as
        // nf_conntrack reads `skb->len` (here the skb's agrees).
        assert_eq!(
            conntrack::parse::parse_prefix_len(&p[..h + 20], family, &no_verify(), len),
            Ok(whole)
        );
        let longer = conntrack::parse::parse_prefix_len(
            &p[..h + 20],
            family,
            &no_verify(),
            Some(p.len() as u32 + 8),
        )
        .unwrap();
        assert_eq!(longer.ip_len, p.len() as u32 + 8);
        let L4Info::Tcp(t) = longer.l4 else {
            panic!("not TCP")
        };
        assert_eq!(t.payload_len, 3008);
        // An skb shorter than the headers: the header lengths still rule.
        if family == Family::Ipv4 {
            assert_eq!(
                conntrack::parse::parse_prefix_len(&big[..h + 20], family, &no_verify(), Some(10)),
                Err(ParseError::Ip(wire::Error::BadLength))
            );
        }
    }
}
