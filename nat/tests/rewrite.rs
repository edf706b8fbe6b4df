//! Packet rewriting: golden before/after packets for each NAT kind, ICMP
//! errors, incremental checksums against full recomputes, mangle.

mod common;

use std::net::IpAddr;

use common::{checksums_ok, fold_add, ip, packet, packet_ttl, pseudo, quote_v4, L4};
use conntrack::{Direction, HashKey, Tuple};
use nat::eval::{Mangle, TtlFn};
use nat::mangle;
use nat::nat_core::*;
use nat::nat_proto::*;
use nat::rule::{AddrRange, Family, Hook, NatFlags, NatRange, PortRange, TosOp, TtlOp};
use proptest::prelude::*;

struct NoConns;
impl TupleTable for NoConns {
    fn reply_in_use(&self, _: &Tuple) -> bool {
        false
    }
}
struct Fixed(u32);
impl Entropy for Fixed {
    fn next_u32(&mut self) -> u32 {
        self.0
    }
}

fn bytes16(a: &IpAddr) -> [u8; 16] {
    addr_bytes(a)
}

/// The tuple of a packet built by `common::packet`.
fn tuple_of(src: IpAddr, dst: IpAddr, l4: &L4) -> Tuple {
    let fam = if src.is_ipv4() {
        conntrack::Family::Ipv4
    } else {
        conntrack::Family::Ipv6
    };
    let (proto, sp, dp) = match l4 {
        L4::Tcp { sport, dport, .. } => (6, *sport, *dport),
        L4::Udp { sport, dport, .. } => (17, *sport, *dport),
        L4::Echo { id, reply, .. } => {
            let ty = match (src.is_ipv6(), reply) {
                (false, false) => 8,
                (false, true) => 0,
                (true, false) => 128,
                (true, true) => 129,
            };
            return Tuple::icmp(fam, bytes16(&src), bytes16(&dst), *id, ty, 0);
        }
        L4::Error { .. } => panic!("no tuple for errors"),
    };
    Tuple {
        src: bytes16(&src),
        dst: bytes16(&dst),
        src_port: sp,
        dst_port: dp,
        proto,
        family: fam,
    }
}

fn with_ports(l4: &L4, sport: u16, dport: u16) -> L4 {
    match l4.clone() {
        L4::Tcp { payload, .. } => L4::Tcp {
            sport,
            dport,
            payload,
        },
        L4::Udp {
            payload, no_csum, ..
        } => L4::Udp {
            sport,
            dport,
            payload,
            no_csum,
        },
        L4::Echo { seq, reply, .. } => L4::Echo {
            id: sport,
            seq,
            reply,
        },
        e => e,
    }
}

fn reply_l4(l4: &L4) -> L4 {
    match l4.clone() {
        L4::Tcp {
            sport,
            dport,
            payload,
        } => L4::Tcp {
            sport: dport,
            dport: sport,
            payload,
        },
        L4::Udp {
            sport,
            dport,
            payload,
            no_csum,
        } => L4::Udp {
            sport: dport,
            dport: sport,
            payload,
            no_csum,
        },
        L4::Echo { id, seq, .. } => L4::Echo {
            id,
            seq,
            reply: true,
        },
        e => e,
    }
}

fn ports(l4: &L4) -> (u16, u16) {
    match l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => (*sport, *dport),
        L4::Echo { id, .. } => (*id, *id),
        L4::Error { .. } => (0, 0),
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Snat,
    Dnat,
    Masquerade,
    Redirect,
}

/// Sets up `kind` on the connection of `l4` from `client` to `server`,
/// then checks an original packet and a reply byte for byte against
/// packets built from scratch with the translated addresses.
fn golden(kind: Kind, client: &str, server: &str, l4: L4, mode: CsumMode) {
    let (c, s) = (ip(client), ip(server));
    let v6 = c.is_ipv6();
    let fam = if v6 { Family::Ipv6 } else { Family::Ipv4 };
    let (pub_addr, priv_addr) = if v6 {
        (ip("2001:db8:ffff::1"), ip("fd00::99"))
    } else {
        (ip("198.51.100.1"), ip("192.168.7.99"))
    };
    // The ranges have ports whatever the protocol, as a rule without -p:
    // an ICMP echo gets the address only and keeps its id.
    let echo = matches!(l4, L4::Echo { .. });
    let (manip, range) = match kind {
        Kind::Snat => (
            ManipType::Src,
            NatRange {
                addrs: Some(AddrRange::single(pub_addr)),
                ports: Some(PortRange::single(2000)),
                flags: NatFlags(0),
            },
        ),
        Kind::Dnat => (
            ManipType::Dst,
            NatRange {
                addrs: Some(AddrRange::single(priv_addr)),
                ports: Some(PortRange::single(8080)),
                flags: NatFlags(0),
            },
        ),
        Kind::Masquerade => (
            ManipType::Src,
            masquerade_range(
                &NatRange {
                    ports: None,
                    addrs: None,
                    flags: NatFlags(NatFlags::FULLY_RANDOM),
                },
                Some(pub_addr),
            )
            .unwrap(),
        ),
        Kind::Redirect => (
            ManipType::Dst,
            redirect_range(
                &NatRange {
                    ports: Some(PortRange::single(3128)),
                    addrs: None,
                    flags: NatFlags(0),
                },
                Hook::Prerouting,
                fam,
                Some(priv_addr),
            )
            .unwrap(),
        ),
    };
    let orig = tuple_of(c, s, &l4);
    let mut b = Binding::new(orig).unwrap();
    b.setup(
        &range,
        manip,
        &NoConns,
        &mut Fixed(4321),
        &HashKey::from_bytes([7; 16]),
    )
    .unwrap();
    let target = b.target(Direction::Original).unwrap();
    let (sp, dp) = ports(&l4);
    let new_src = IpAddr::from_tuple(&target, true);
    let new_dst = IpAddr::from_tuple(&target, false);
    // What the translated ports must be.
    let (nsp, ndp) = if echo {
        (target.src_port, target.src_port)
    } else {
        (target.src_port, target.dst_port)
    };
    match (kind, echo) {
        (Kind::Masquerade, _) => assert_ne!(nsp, sp, "fully-random changes the port/id"),
        (_, true) => assert_eq!((nsp, ndp), (sp, dp), "{kind:?}: the echo id is kept"),
        (Kind::Snat, false) => assert_eq!((nsp, ndp), (2000, dp)),
        (Kind::Dnat, false) => assert_eq!((nsp, ndp), (sp, 8080)),
        (Kind::Redirect, false) => assert_eq!((nsp, ndp), (sp, 3128)),
    }

    // Original direction: the hook of this manip rewrites, the other does not.
    let before = packet(c, s, &l4);
    let mut p = before.clone();
    if mode == CsumMode::Partial {
        to_partial(&mut p);
    }
    assert!(!nat_packet(&mut p, &b, Direction::Original, manip.opposite(), mode).unwrap());
    assert!(nat_packet(&mut p, &b, Direction::Original, manip, mode).unwrap());
    let mut want = packet(new_src, new_dst, &with_ports(&l4, nsp, ndp));
    if mode == CsumMode::Partial {
        to_partial(&mut want);
    } else {
        assert!(checksums_ok(&p));
    }
    assert_eq!(p, want, "{kind:?} {client} original direction");

    // Reply direction: back to the client's view.
    let r_l4 = reply_l4(&with_ports(&l4, nsp, ndp));
    let mut p = packet(new_dst, new_src, &r_l4);
    if mode == CsumMode::Partial {
        to_partial(&mut p);
    }
    assert!(nat_packet(&mut p, &b, Direction::Reply, manip.opposite(), mode).unwrap());
    let mut want = packet(s, c, &reply_l4(&l4));
    if mode == CsumMode::Partial {
        to_partial(&mut want);
    }
    assert_eq!(p, want, "{kind:?} {client} reply direction");
}

trait FromTuple {
    fn from_tuple(t: &Tuple, src: bool) -> IpAddr;
}
impl FromTuple for IpAddr {
    fn from_tuple(t: &Tuple, src: bool) -> IpAddr {
        tuple_addr(t, if src { &t.src } else { &t.dst })
    }
}

/// Turns a packet's L4 checksum into what CHECKSUM_PARTIAL leaves there:
/// the folded pseudo-header sum, for TCP and UDP.
fn to_partial(p: &mut [u8]) {
    let v6 = p[0] >> 4 == 6;
    let (hl, proto) = if v6 {
        (40, p[6])
    } else {
        (((p[0] & 0xf) * 4) as usize, p[9])
    };
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            <[u8; 16]>::try_from(&p[8..24]).unwrap().into(),
            <[u8; 16]>::try_from(&p[24..40]).unwrap().into(),
        )
    } else {
        (
            <[u8; 4]>::try_from(&p[12..16]).unwrap().into(),
            <[u8; 4]>::try_from(&p[16..20]).unwrap().into(),
        )
    };
    let at = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    let s = pseudo(&src, &dst, proto, p.len() - hl);
    p[hl + at..hl + at + 2].copy_from_slice(&s.to_be_bytes());
}

fn tcp() -> L4 {
    L4::Tcp {
        sport: 40000,
        dport: 80,
        payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
    }
}
fn udp() -> L4 {
    L4::Udp {
        sport: 40001,
        dport: 53,
        payload: b"\x12\x34query".to_vec(),
        no_csum: false,
    }
}
fn echo() -> L4 {
    L4::Echo {
        id: 0x4242,
        seq: 7,
        reply: false,
    }
}

#[test]
fn golden_packets_for_every_nat_kind_family_and_protocol() {
    for kind in [Kind::Snat, Kind::Dnat, Kind::Masquerade, Kind::Redirect] {
        for (c, s) in [("10.0.0.2", "93.184.216.34"), ("fd00::2", "2001:db8:1::34")] {
            for l4 in [tcp(), udp(), echo()] {
                golden(kind, c, s, l4, CsumMode::Full);
            }
            for l4 in [tcp(), udp()] {
                golden(kind, c, s, l4, CsumMode::Partial);
            }
        }
    }
}

#[test]
fn pinned_golden_bytes_ipv4_udp_snat() {
    // 10.0.0.2:40001 -> 93.184.216.34:53 SNAT to 198.51.100.1:2000.
    let before = packet(ip("10.0.0.2"), ip("93.184.216.34"), &udp());
    let mut p = before.clone();
    manip_pkt(
        &mut p,
        ManipType::Src,
        &Endpoint {
            addr: ip("198.51.100.1"),
            port: 2000,
        },
        CsumMode::Full,
    )
    .unwrap();
    let after: [u8; 35] = [
        0x45, 0x00, 0x00, 0x23, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0xbe, 0x74, 0xc6, 0x33, 0x64,
        0x01, 0x5d, 0xb8, 0xd8, 0x22, 0x07, 0xd0, 0x00, 0x35, 0x00, 0x0f, 0x35, 0x9f, 0x12, 0x34,
        b'q', b'u', b'e', b'r', b'y',
    ];
    assert_eq!(p, after, "{p:02x?}");
    assert!(checksums_ok(&after));
    assert_ne!(before, p);
}

#[test]
fn ipv4_udp_zero_checksum_stays_zero() {
    let l4 = L4::Udp {
        sport: 1,
        dport: 2,
        payload: b"x".to_vec(),
        no_csum: true,
    };
    let mut p = packet(ip("10.0.0.2"), ip("10.0.0.3"), &l4);
    assert_eq!(p[26..28], [0, 0]);
    manip_pkt(
        &mut p,
        ManipType::Src,
        &Endpoint {
            addr: ip("198.51.100.1"),
            port: 999,
        },
        CsumMode::Full,
    )
    .unwrap();
    assert_eq!(p[26..28], [0, 0]);
    assert_eq!(
        p,
        packet(
            ip("198.51.100.1"),
            ip("10.0.0.3"),
            &L4::Udp {
                sport: 999,
                dport: 2,
                payload: b"x".to_vec(),
                no_csum: true
            }
        )
    );
}

/// An SNATed TCP flow and an ICMP error about one of its packets, for
/// IPv4 (quoting IP header + 8 bytes) and IPv6 (quoting the whole packet).
#[test]
fn icmp_errors_carrying_a_nated_flow_are_rewritten_inside_and_out() {
    for (client, server, public, router, v6) in [
        (
            "10.0.0.2",
            "93.184.216.34",
            "198.51.100.1",
            "203.0.113.9",
            false,
        ),
        (
            "fd00::2",
            "2001:db8:1::34",
            "2001:db8:ffff::1",
            "2001:db8:2::9",
            true,
        ),
    ] {
        let (c, s, pb, r) = (ip(client), ip(server), ip(public), ip(router));
        for l4 in [tcp(), udp(), echo()] {
            let mut b = Binding::new(tuple_of(c, s, &l4)).unwrap();
            let range = NatRange {
                addrs: Some(AddrRange::single(pb)),
                ports: None,
                flags: NatFlags(NatFlags::FULLY_RANDOM),
            };
            b.setup(
                &range,
                ManipType::Src,
                &NoConns,
                &mut Fixed(999),
                &HashKey::from_bytes([1; 16]),
            )
            .unwrap();
            let t = b.target(Direction::Original).unwrap();
            let (sp, dp) = ports(&l4);
            let natted_l4 = with_ports(
                &l4,
                t.src_port,
                if matches!(l4, L4::Echo { .. }) {
                    t.src_port
                } else {
                    dp
                },
            );
            assert_ne!(t.src_port, sp);
            // The packet as it left, after SNAT, and as the client sent it.
            let sent = packet(pb, s, &natted_l4);
            let orig = packet(c, s, &l4);
            let (ty, quote, quote_orig) = if v6 {
                (1, sent.clone(), orig.clone())
            } else {
                (3, quote_v4(&sent), quote_v4(&orig))
            };
            // The router's error, to the public address (reply direction,
            // PREROUTING: destination manip).
            let mut p = packet(
                r,
                pb,
                &L4::Error {
                    ty,
                    code: 4,
                    inner: quote,
                },
            );
            assert!(is_icmp_error(&p));
            assert!(icmp_error_translate(
                &mut p,
                &b,
                Direction::Reply,
                ManipType::Dst,
                CsumMode::Full
            )
            .unwrap());
            let want = packet(
                r,
                c,
                &L4::Error {
                    ty,
                    code: 4,
                    inner: quote_orig,
                },
            );
            assert_eq!(p, want, "{client} {l4:?}");
            assert!(checksums_ok(&p));
            // The source-manip hook leaves it alone.
            assert!(!icmp_error_translate(
                &mut p,
                &b,
                Direction::Reply,
                ManipType::Src,
                CsumMode::Full
            )
            .unwrap());
        }
    }
}

/// DNAT: an error about the server's (un-DNATed) reply comes back in the
/// original direction.
#[test]
fn icmp_error_in_the_original_direction_of_a_dnat_flow() {
    let (client, public, server, router) = (
        ip("198.51.100.7"),
        ip("203.0.113.1"),
        ip("192.168.1.10"),
        ip("198.51.100.254"),
    );
    let l4 = L4::Tcp {
        sport: 5555,
        dport: 80,
        payload: vec![],
    };
    let mut b = Binding::new(tuple_of(client, public, &l4)).unwrap();
    let range = NatRange {
        addrs: Some(AddrRange::single(server)),
        ports: Some(PortRange::single(8080)),
        flags: NatFlags(0),
    };
    b.setup(
        &range,
        ManipType::Dst,
        &NoConns,
        &mut Fixed(1),
        &HashKey::from_bytes([1; 16]),
    )
    .unwrap();
    // The reply as the client saw it: from the public address.
    let seen = packet(
        public,
        client,
        &L4::Tcp {
            sport: 80,
            dport: 5555,
            payload: vec![],
        },
    );
    let mut p = packet(
        router,
        public,
        &L4::Error {
            ty: 11,
            code: 0,
            inner: quote_v4(&seen),
        },
    );
    assert!(icmp_error_translate(
        &mut p,
        &b,
        Direction::Original,
        ManipType::Dst,
        CsumMode::Full
    )
    .unwrap());
    let sent_by_server = packet(
        server,
        client,
        &L4::Tcp {
            sport: 8080,
            dport: 5555,
            payload: vec![],
        },
    );
    assert_eq!(
        p,
        packet(
            router,
            server,
            &L4::Error {
                ty: 11,
                code: 0,
                inner: quote_v4(&sent_by_server)
            }
        )
    );
    // Not an error: refused.
    let mut q = packet(client, public, &l4);
    assert_eq!(
        icmp_error_translate(
            &mut q,
            &b,
            Direction::Original,
            ManipType::Dst,
            CsumMode::Full
        ),
        Err(RewriteError::NotIcmpError)
    );
}

#[test]
fn malformed_packets_are_refused_not_panicked_on() {
    let full = packet(ip("10.0.0.2"), ip("10.0.0.3"), &tcp());
    let to = Endpoint {
        addr: ip("10.9.9.9"),
        port: 1,
    };
    for cut in 0..full.len() {
        let mut p = full[..cut].to_vec();
        let _ = manip_pkt(&mut p, ManipType::Src, &to, CsumMode::Full);
    }
    let mut p = full.clone();
    assert_eq!(
        manip_pkt(
            &mut p,
            ManipType::Src,
            &Endpoint {
                addr: ip("::1"),
                port: 1
            },
            CsumMode::Full
        ),
        Err(RewriteError::FamilyMismatch)
    );
    p[0] = 0x55;
    assert_eq!(
        manip_pkt(&mut p, ManipType::Src, &to, CsumMode::Full),
        Err(RewriteError::Malformed)
    );
}

fn arb_l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(sport, dport, payload)| L4::Tcp {
                sport,
                dport,
                payload
            }),
        (
            any::<u16>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(sport, dport, payload, no_csum)| L4::Udp {
                sport,
                dport,
                payload,
                no_csum
            }),
        (any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(id, seq, reply)| L4::Echo {
            id,
            seq,
            reply
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Incremental checksum updates equal a full recompute, for random
    /// packets and random rewrites of either side.
    #[test]
    fn incremental_checksums_equal_full_recompute(
        v6 in any::<bool>(),
        addrs in any::<[u8; 48]>(),
        l4 in arb_l4(),
        src_side in any::<bool>(),
        new_port in any::<u16>(),
    ) {
        let pick = |o: usize| -> IpAddr { if v6 { <[u8; 16]>::try_from(&addrs[o..o + 16]).unwrap().into() } else { <[u8; 4]>::try_from(&addrs[o..o + 4]).unwrap().into() } };
        let (s, d, n) = (pick(0), pick(16), pick(32));
        // IPv6 UDP must carry a checksum.
        let l4 = match l4 {
            L4::Udp { sport, dport, payload, .. } if v6 => L4::Udp { sport, dport, payload, no_csum: false },
            l4 => l4,
        };
        let mut p = packet(s, d, &l4);
        let manip = if src_side { ManipType::Src } else { ManipType::Dst };
        manip_pkt(&mut p, manip, &Endpoint { addr: n, port: new_port }, CsumMode::Full).unwrap();
        prop_assert!(checksums_ok(&p), "{p:02x?}");
        // And byte for byte what a fresh packet would be.
        let (sp, dp) = ports(&l4);
        let is_echo = matches!(l4, L4::Echo { .. });
        let l4n = match (is_echo, src_side) {
            (true, _) => with_ports(&l4, new_port, new_port),
            (false, true) => with_ports(&l4, new_port, dp),
            (false, false) => with_ports(&l4, sp, new_port),
        };
        let want = if src_side { packet(n, d, &l4n) } else { packet(s, n, &l4n) };
        prop_assert_eq!(p, want);
    }

    /// With CHECKSUM_PARTIAL, only the pseudo-header part moves: the field
    /// ends as the pseudo-header sum of the new addresses.
    #[test]
    fn partial_mode_updates_only_the_pseudo_header(
        v6 in any::<bool>(),
        addrs in any::<[u8; 48]>(),
        tcp_ in any::<bool>(),
        new_port in any::<u16>(),
    ) {
        let pick = |o: usize| -> IpAddr { if v6 { <[u8; 16]>::try_from(&addrs[o..o + 16]).unwrap().into() } else { <[u8; 4]>::try_from(&addrs[o..o + 4]).unwrap().into() } };
        let (s, d, n) = (pick(0), pick(16), pick(32));
        let l4 = if tcp_ { L4::Tcp { sport: 1, dport: 2, payload: vec![1, 2, 3] } } else { L4::Udp { sport: 1, dport: 2, payload: vec![9; 5], no_csum: false } };
        let mut p = packet(s, d, &l4);
        to_partial(&mut p);
        let at = if v6 { 40 } else { 20 } + if tcp_ { 16 } else { 6 };
        let before = u16::from_be_bytes([p[at], p[at + 1]]);
        prop_assume!(before != 0); // a zero UDP field means "no checksum"
        manip_pkt(&mut p, ManipType::Src, &Endpoint { addr: n, port: new_port }, CsumMode::Partial).unwrap();
        let got = u16::from_be_bytes([p[at], p[at + 1]]);
        let want = pseudo(&n, &d, if tcp_ { 6 } else { 17 }, p.len() - if v6 { 40 } else { 20 });
        // Equal as ones-complement numbers (0 and 0xffff are both zero).
        prop_assert_eq!(fold_add(got, 0) % 0xffff, fold_add(want, 0) % 0xffff);
    }

    /// TTL/TOS mangling keeps the IPv4 header checksum right, and folded
    /// TTL functions equal applying the operations one by one.
    #[test]
    fn mangle_keeps_header_checksum(ttl in any::<u8>(), tos in any::<u8>(), ops in proptest::collection::vec((0u8..3, 1u8..=255), 1..6), tv in any::<u8>(), tm in any::<u8>(), v6 in any::<bool>()) {
        let (s, d) = if v6 { (ip("2001:db8::1"), ip("2001:db8::2")) } else { (ip("10.0.0.1"), ip("10.0.0.2")) };
        let mut p = packet_ttl(s, d, &udp(), ttl, tos);
        let mut f: Option<TtlFn> = None;
        let mut want_ttl = ttl;
        for (k, n) in &ops {
            let op = match k { 0 => TtlOp::Set(*n), 1 => TtlOp::Inc(*n), _ => TtlOp::Dec(*n) };
            want_ttl = op.apply(want_ttl);
            let g = TtlFn::of(op);
            f = Some(match f { Some(prev) => prev.then(g), None => g });
        }
        let m = Mangle { tos: Some(TosOp { value: tv, mask: tm }), ttl: f };
        mangle::apply(&mut p, &m).unwrap();
        prop_assert_eq!(mangle::ttl(&p).unwrap(), want_ttl);
        prop_assert_eq!(mangle::tos(&p).unwrap(), (tos & !tm) ^ tv);
        prop_assert!(checksums_ok(&p));
        prop_assert_eq!(p, packet_ttl(s, d, &udp(), want_ttl, (tos & !tm) ^ tv));
    }
}

#[test]
fn mangle_examples() {
    let mut p = packet_ttl(ip("10.0.0.1"), ip("10.0.0.2"), &tcp(), 64, 0);
    mangle::set_ttl(&mut p, 1).unwrap();
    mangle::set_tos(&mut p, 0x10).unwrap();
    assert_eq!(
        p,
        packet_ttl(ip("10.0.0.1"), ip("10.0.0.2"), &tcp(), 1, 0x10)
    );
    let mut q = packet_ttl(ip("2001:db8::1"), ip("2001:db8::2"), &tcp(), 64, 0xab);
    assert_eq!(mangle::tos(&q).unwrap(), 0xab);
    mangle::set_tos(&mut q, 0x2e << 2).unwrap();
    mangle::set_ttl(&mut q, 3).unwrap();
    assert_eq!(
        q,
        packet_ttl(ip("2001:db8::1"), ip("2001:db8::2"), &tcp(), 3, 0x2e << 2)
    );
    assert!(!mangle::apply(&mut q, &Mangle::default()).unwrap());
    assert_eq!(mangle::ttl(&[0x45]), Err(RewriteError::Truncated));
}

/// `hdrs` (each `(next header, length in bytes)`) inserted between the
/// IPv6 header and the L4 header of `p`; checksums stay right (the
/// pseudo-header's upper-layer length does not count them).
fn with_ext_headers(p: &[u8], hdrs: &[(u8, usize)]) -> Vec<u8> {
    let mut out = p[..40].to_vec();
    let mut next = p[6];
    let mut ext = Vec::new();
    // Build from the innermost header out, each naming what follows it.
    for &(kind, len) in hdrs.iter().rev() {
        let mut h = vec![0u8; len];
        h[0] = next;
        h[1] = match kind {
            44 => 0,
            51 => (len / 4 - 2) as u8,
            _ => (len / 8 - 1) as u8,
        };
        h.extend(ext);
        ext = h;
        next = kind;
    }
    out[6] = next;
    let plen = u16::from_be_bytes([p[4], p[5]]) as usize + ext.len();
    out[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    out.extend(ext);
    out.extend(&p[40..]);
    out
}

#[test]
fn ipv6_nat_crosses_extension_headers() {
    let chain = [(0u8, 8usize), (60, 16), (44, 8), (51, 16)];
    for l4 in [tcp(), udp(), echo()] {
        let (c, s) = (ip("2001:db8::1"), ip("2001:db8::2"));
        let before = with_ext_headers(&packet(c, s, &l4), &chain);
        let to = Endpoint {
            addr: ip("2001:db8:ffff::7"),
            port: 4000,
        };
        let l4_after = with_ports(&l4, 4000, ports(&l4).1);
        for mode in [CsumMode::Full, CsumMode::Partial] {
            let mut p = before.clone();
            manip_pkt(&mut p, ManipType::Src, &to, mode).unwrap();
            let want = with_ext_headers(&packet(to.addr, s, &l4_after), &chain);
            if mode == CsumMode::Full {
                assert_eq!(p, want, "{l4:?}");
            } else {
                // Only the L4 checksum may differ (the hardware finishes it).
                assert_eq!(p[..40], want[..40]);
                assert_eq!(p.len(), want.len());
            }
        }
    }
    // A non-first fragment has no L4 header: only the address changes.
    let mut frag = with_ext_headers(
        &packet(ip("2001:db8::1"), ip("2001:db8::2"), &tcp()),
        &[(44, 8)],
    );
    frag[42..44].copy_from_slice(&(185u16 << 3).to_be_bytes());
    let l4_before = frag[48..].to_vec();
    let to = Endpoint {
        addr: ip("2001:db8::9"),
        port: 1,
    };
    manip_pkt(&mut frag, ManipType::Dst, &to, CsumMode::Full).unwrap();
    assert_eq!(frag[24..40], bytes16(&to.addr));
    assert_eq!(frag[48..], l4_before[..]);
    // Any number of extension headers is crossed, as conntrack crosses
    // them (`ipv6_skip_exthdr()` has no bound); a chain that runs past the
    // bytes given is refused, not half rewritten.
    let long = [(60u8, 8usize); 9];
    let full = with_ext_headers(&packet(ip("2001:db8::1"), ip("2001:db8::2"), &tcp()), &long);
    let mut p = full[..40 + 8 * 8 + 4].to_vec();
    let orig = p.clone();
    assert_eq!(
        manip_pkt(&mut p, ManipType::Src, &to, CsumMode::Full),
        Err(RewriteError::Truncated)
    );
    assert_eq!(p, orig);
    let mut p = full.clone();
    manip_pkt(&mut p, ManipType::Src, &to, CsumMode::Full).unwrap();
    assert_eq!(p[8..24], bytes16(&to.addr));
}

#[test]
fn mangle_ipv4_with_options_in_a_short_buffer() {
    // IHL 15 (40 bytes of options: NOPs), as rfw.ko passes only the first
    // 40 bytes: the fixed header is enough, the checksum stays right.
    let mut p = vec![0u8; 60];
    p[0] = 0x4f;
    p[2..4].copy_from_slice(&60u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    p[20..60].fill(1);
    let c = !common::sum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let m = Mangle {
        tos: Some(TosOp {
            value: 0xb8,
            mask: 0xff,
        }),
        ttl: Some(TtlFn::of(TtlOp::Dec(1))),
    };
    assert!(mangle::apply(&mut p[..40], &m).unwrap());
    assert_eq!((p[1], p[8]), (0xb8, 63));
    assert_eq!(common::sum(&p), 0xffff);
}

#[test]
fn ipv4_big_tcp_total_length_zero() {
    // A BIG TCP GSO packet carries 0 in its total length: the header is
    // rewritten as any other's, the length field left alone.
    let to = Endpoint {
        addr: ip("198.51.100.1"),
        port: 2000,
    };
    let mut whole = packet(ip("10.0.0.2"), ip("93.184.216.34"), &tcp());
    let mut big = whole.clone();
    big[2..4].copy_from_slice(&[0, 0]);
    manip_pkt(&mut whole, ManipType::Src, &to, CsumMode::Partial).unwrap();
    manip_pkt(&mut big, ManipType::Src, &to, CsumMode::Partial).unwrap();
    assert_eq!(big[2..4], [0, 0]);
    // The IPv4 header checksum differs by the length field alone.
    assert_eq!(big[12..], whole[12..]);
    // A header cut short is still refused.
    let mut cut = big[..16].to_vec();
    assert!(manip_pkt(&mut cut, ManipType::Src, &to, CsumMode::Partial).is_err());
}
