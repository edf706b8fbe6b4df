//! NAT bindings: unique tuple choice, exhaustion, flags, both directions.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;

use common::ip;
use conntrack::{Direction, HashKey, Tuple};
use nat::nat_core::*;
use nat::rule::{AddrRange, Family, Hook, NatFlags, NatRange, PortRange};

/// A conntrack table: the set of all tuples of all connections.
#[derive(Default)]
struct Table(HashSet<Tuple>);

impl TupleTable for Table {
    fn reply_in_use(&self, reply: &Tuple) -> bool {
        self.0.contains(reply)
    }
}

impl Table {
    fn add(&mut self, b: &Binding) {
        assert!(
            self.0.insert(b.tuples[0]),
            "duplicate original tuple {:?}",
            b.tuples[0]
        );
        assert!(
            self.0.insert(b.tuples[1]),
            "duplicate reply tuple {:?}",
            b.tuples[1]
        );
    }
}

struct Rng(u64);
impl Entropy for Rng {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
}

fn key() -> HashKey {
    HashKey::from_bytes(*b"0123456789abcdef")
}

fn t(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> Tuple {
    match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Tuple::v4(s.octets(), d.octets(), proto, sport, dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => Tuple::v6(s.octets(), d.octets(), proto, sport, dport),
        _ => panic!("mixed families"),
    }
}

fn snat_to(a: &str) -> NatRange {
    NatRange {
        addrs: Some(AddrRange::single(ip(a))),
        ports: None,
        flags: NatFlags(0),
    }
}

fn setup(
    table: &mut Table,
    rng: &mut Rng,
    orig: Tuple,
    range: &NatRange,
    manip: ManipType,
) -> Result<Binding, NatError> {
    let mut b = Binding::new(orig).unwrap();
    b.setup(range, manip, table, rng, &key())?;
    table.add(&b);
    Ok(b)
}

#[test]
fn thousand_clients_from_one_source_port_get_distinct_mappings() {
    let mut table = Table::default();
    let mut rng = Rng(0x1234_5678);
    let range = snat_to("198.51.100.1");
    let mut seen = HashSet::new();
    for i in 0..1000u32 {
        let src = format!("10.0.{}.{}", i / 250, i % 250 + 1);
        let b = setup(
            &mut table,
            &mut rng,
            t(&src, 5000, "93.184.216.34", 443, 6),
            &range,
            ManipType::Src,
        )
        .unwrap();
        let new = b.target(Direction::Original).unwrap();
        assert_eq!(
            IpAddr::from(<[u8; 4]>::try_from(&new.src[..4]).unwrap()),
            ip("198.51.100.1")
        );
        if i == 0 {
            assert_eq!(new.src_port, 5000, "original port kept while free");
        } else {
            assert!(
                new.src_port >= 1024,
                "port class above 1024 kept: {}",
                new.src_port
            );
        }
        assert!(
            seen.insert((new.src, new.src_port)),
            "mapping {} reused",
            new.src_port
        );
    }
    assert_eq!(seen.len(), 1000);
}

#[test]
fn a_full_pool_reports_exhaustion_and_never_duplicates() {
    for flags in [0, NatFlags::RANDOM, NatFlags::FULLY_RANDOM] {
        let mut table = Table::default();
        let mut rng = Rng(99);
        let range = NatRange {
            addrs: Some(AddrRange::single(ip("198.51.100.1"))),
            ports: Some(PortRange { lo: 2000, hi: 2099 }),
            flags: NatFlags(flags),
        };
        for i in 0..100 {
            let src = format!("10.0.0.{}", i + 1);
            setup(
                &mut table,
                &mut rng,
                t(&src, 40000, "93.184.216.34", 80, 17),
                &range,
                ManipType::Src,
            )
            .unwrap_or_else(|e| panic!("flags {flags}: client {i}: {e}"));
        }
        let err = setup(
            &mut table,
            &mut rng,
            t("10.0.1.1", 40000, "93.184.216.34", 80, 17),
            &range,
            ManipType::Src,
        );
        assert_eq!(err.unwrap_err(), NatError::NoFreeTuple);
        // Another destination is another tuple: still free.
        setup(
            &mut table,
            &mut rng,
            t("10.0.1.1", 40000, "93.184.216.35", 80, 17),
            &range,
            ManipType::Src,
        )
        .unwrap();
    }
    // A single port, in use: exhaustion, not a duplicate (the kernel would
    // return the duplicate and drop at confirm time).
    let mut table = Table::default();
    let mut rng = Rng(5);
    let one = NatRange {
        addrs: None,
        ports: Some(PortRange::single(7000)),
        flags: NatFlags(0),
    };
    setup(
        &mut table,
        &mut rng,
        t("10.0.0.1", 1, "10.9.9.9", 80, 6),
        &one,
        ManipType::Dst,
    )
    .unwrap();
    let r = setup(
        &mut table,
        &mut rng,
        t("10.0.0.1", 1, "10.9.9.9", 80, 6),
        &one,
        ManipType::Dst,
    );
    assert_eq!(r.unwrap_err(), NatError::NoFreeTuple);
}

#[test]
fn large_nearly_full_pool_mostly_succeeds_and_full_fails() {
    // 64512 ports above 1024: fill 99 % through the table directly, then
    // the bounded search (128 + 64 + 32 + 16 probes) still finds room.
    let mut table = Table::default();
    let mut rng = Rng(77);
    let dst = "93.184.216.34";
    let mut free = Vec::new();
    for p in 1024..=65535u16 {
        if p % 100 == 0 {
            free.push(p);
            continue;
        }
        let reply = t(dst, 443, "198.51.100.1", p, 6);
        table.0.insert(reply);
    }
    let range = snat_to("198.51.100.1");
    let mut ok = 0;
    for i in 0..100 {
        let src = format!("10.1.0.{}", i + 1);
        if setup(
            &mut table,
            &mut rng,
            t(&src, 1024, dst, 443, 6),
            &range,
            ManipType::Src,
        )
        .is_ok()
        {
            ok += 1;
        }
    }
    assert!(ok >= 90, "only {ok} of 100 found a port at 99 % use");
    // Completely full: exhaustion.
    for p in free {
        table.0.insert(t(dst, 443, "198.51.100.1", p, 6));
    }
    let r = setup(
        &mut table,
        &mut rng,
        t("10.2.0.1", 1024, dst, 443, 6),
        &range,
        ManipType::Src,
    );
    assert_eq!(r.unwrap_err(), NatError::NoFreeTuple);
}

#[test]
fn port_classes_are_kept() {
    let mut table = Table::default();
    let mut rng = Rng(3);
    let range = snat_to("198.51.100.1");
    // Occupy each original port first.
    for (port, lo, hi) in [
        (100u16, 1u16, 511u16),
        (700, 600, 1023),
        (5000, 1024, 65535),
    ] {
        setup(
            &mut table,
            &mut rng,
            t("10.0.0.1", port, "10.9.9.9", 80, 6),
            &range,
            ManipType::Src,
        )
        .unwrap();
        for i in 0..20 {
            let src = format!("10.0.0.{}", i + 2);
            let b = setup(
                &mut table,
                &mut rng,
                t(&src, port, "10.9.9.9", 80, 6),
                &range,
                ManipType::Src,
            )
            .unwrap();
            let p = b.target(Direction::Original).unwrap().src_port;
            assert!(
                (lo..=hi).contains(&p),
                "port {port} mapped to {p}, outside {lo}..={hi}"
            );
        }
    }
}

#[test]
fn random_flags_do_not_keep_the_original_port() {
    let mut changed = 0;
    for seed in 1..50u64 {
        let mut table = Table::default();
        let mut rng = Rng(seed);
        let range = NatRange {
            addrs: Some(AddrRange::single(ip("198.51.100.1"))),
            ports: None,
            flags: NatFlags(NatFlags::FULLY_RANDOM),
        };
        let b = setup(
            &mut table,
            &mut rng,
            t("10.0.0.1", 40000, "10.9.9.9", 80, 6),
            &range,
            ManipType::Src,
        )
        .unwrap();
        if b.target(Direction::Original).unwrap().src_port != 40000 {
            changed += 1;
        }
    }
    assert!(changed >= 48);
    // --random is a keyed hash of the connection: the same for the same key.
    let range = NatRange {
        addrs: Some(AddrRange::single(ip("198.51.100.1"))),
        ports: None,
        flags: NatFlags(NatFlags::RANDOM),
    };
    let pick = |seed| {
        let mut table = Table::default();
        let mut rng = Rng(seed);
        setup(
            &mut table,
            &mut rng,
            t("10.0.0.1", 40000, "10.9.9.9", 80, 6),
            &range,
            ManipType::Src,
        )
        .unwrap()
        .target(Direction::Original)
        .unwrap()
        .src_port
    };
    assert_eq!(pick(1), pick(2));
    assert_ne!(pick(1), 40000);
}

#[test]
fn address_choice_spreads_and_persistent_sticks() {
    let range = NatRange {
        addrs: Some(AddrRange {
            lo: ip("198.51.100.1"),
            hi: ip("198.51.100.8"),
        }),
        ports: None,
        flags: NatFlags(0),
    };
    let mut table = Table::default();
    let mut rng = Rng(11);
    let mut addrs = HashSet::new();
    for i in 0..200 {
        let src = format!("10.0.{}.{}", i / 200, i % 200 + 1);
        let b = setup(
            &mut table,
            &mut rng,
            t(&src, 1234, "93.184.216.34", 80, 6),
            &range,
            ManipType::Src,
        )
        .unwrap();
        let a = b.target(Direction::Original).unwrap().src;
        assert!(
            (1..=8).contains(&a[3]) && a[..3] == [198, 51, 100],
            "{a:?} outside range"
        );
        addrs.insert(a);
    }
    assert!(
        addrs.len() >= 6,
        "200 clients used only {} of 8 addresses",
        addrs.len()
    );
    // Persistent: one client, many destinations, one address.
    let pr = NatRange {
        flags: NatFlags(NatFlags::PERSISTENT),
        ..range
    };
    let mut table = Table::default();
    let mut used = HashSet::new();
    for d in 1..50 {
        let dst = format!("203.0.113.{d}");
        let b = setup(
            &mut table,
            &mut rng,
            t("10.0.0.7", 1234, &dst, 80, 6),
            &pr,
            ManipType::Src,
        )
        .unwrap();
        used.insert(b.target(Direction::Original).unwrap().src);
    }
    assert_eq!(used.len(), 1);
    // Without it, destinations spread one client over addresses.
    let mut used = HashSet::new();
    for d in 1..50 {
        let dst = format!("203.0.113.{d}");
        let b = setup(
            &mut table,
            &mut rng,
            t("10.0.0.8", 1234, &dst, 80, 6),
            &range,
            ManipType::Src,
        )
        .unwrap();
        used.insert(b.target(Direction::Original).unwrap().src);
    }
    assert!(used.len() > 1);
    // IPv6 range.
    let r6 = NatRange {
        addrs: Some(AddrRange {
            lo: ip("2001:db8::100"),
            hi: ip("2001:db8::1ff"),
        }),
        ports: None,
        flags: NatFlags(0),
    };
    for i in 0..100 {
        let src = format!("fd00::{:x}", i + 1);
        let b = setup(
            &mut table,
            &mut rng,
            t(&src, 1234, "2001:db8:1::1", 80, 6),
            &r6,
            ManipType::Src,
        )
        .unwrap();
        let a = IpAddr::from(b.target(Direction::Original).unwrap().src);
        assert!(r6.addrs.unwrap().contains(&a), "{a} outside");
    }
}

#[test]
fn dnat_keeps_or_maps_the_port_and_icmp_ids_are_unique() {
    let mut table = Table::default();
    let mut rng = Rng(8);
    let to = NatRange {
        addrs: Some(AddrRange::single(ip("192.168.1.10"))),
        ports: None,
        flags: NatFlags(0),
    };
    let b = setup(
        &mut table,
        &mut rng,
        t("198.51.100.7", 5555, "203.0.113.1", 80, 6),
        &to,
        ManipType::Dst,
    )
    .unwrap();
    let n = b.target(Direction::Original).unwrap();
    assert_eq!(
        (n.dst[..4].to_vec(), n.dst_port),
        (vec![192, 168, 1, 10], 80)
    );
    let to = NatRange {
        ports: Some(PortRange { lo: 8080, hi: 8089 }),
        ..to
    };
    let b = setup(
        &mut table,
        &mut rng,
        t("198.51.100.7", 5556, "203.0.113.1", 80, 6),
        &to,
        ManipType::Dst,
    )
    .unwrap();
    assert_eq!(
        b.target(Direction::Original).unwrap().dst_port,
        8080,
        "DNAT starts at the range's first port"
    );
    // ICMP echo: the id is what varies.
    let snat = snat_to("198.51.100.1");
    let mut ids = HashSet::new();
    for i in 0..50 {
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[10, 0, 0, i + 1]);
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[8, 8, 8, 8]);
        let orig = Tuple::icmp(conntrack::Family::Ipv4, src, dst, 1, 8, 0);
        let b = setup(&mut table, &mut rng, orig, &snat, ManipType::Src).unwrap();
        assert!(ids.insert(b.target(Direction::Original).unwrap().src_port));
    }
}

#[test]
fn the_binding_governs_both_directions() {
    let mut table = Table::default();
    let mut rng = Rng(1);
    let orig = t("10.0.0.2", 40000, "93.184.216.34", 80, 6);
    let mut b = Binding::new(orig).unwrap();
    assert!(!b.is_nat());
    // DNAT first (PREROUTING), then SNAT (POSTROUTING), as a router does.
    b.setup(
        &NatRange {
            addrs: Some(AddrRange::single(ip("93.184.216.99"))),
            ports: Some(PortRange::single(8080)),
            flags: NatFlags(0),
        },
        ManipType::Dst,
        &table,
        &mut rng,
        &key(),
    )
    .unwrap();
    b.setup(
        &NatRange {
            addrs: Some(AddrRange::single(ip("198.51.100.1"))),
            ports: Some(PortRange::single(2000)),
            flags: NatFlags(0),
        },
        ManipType::Src,
        &table,
        &mut rng,
        &key(),
    )
    .unwrap();
    table.add(&b);
    assert!(b.is_nat());
    let ep = |a: &str, p| {
        Some(Endpoint {
            addr: ip(a),
            port: p,
        })
    };
    assert_eq!(
        b.manip(Direction::Original, ManipType::Dst),
        ep("93.184.216.99", 8080)
    );
    assert_eq!(
        b.manip(Direction::Original, ManipType::Src),
        ep("198.51.100.1", 2000)
    );
    assert_eq!(
        b.manip(Direction::Reply, ManipType::Dst),
        ep("10.0.0.2", 40000)
    );
    assert_eq!(
        b.manip(Direction::Reply, ManipType::Src),
        ep("93.184.216.34", 80)
    );
    assert_eq!(
        *b.reply(),
        t("93.184.216.99", 8080, "198.51.100.1", 2000, 6)
    );
    // A second identical connection cannot get the same mapping.
    let mut b2 = Binding::new(t("10.0.0.3", 40000, "93.184.216.34", 80, 6)).unwrap();
    b2.setup(
        &NatRange {
            addrs: Some(AddrRange::single(ip("93.184.216.99"))),
            ports: Some(PortRange::single(8080)),
            flags: NatFlags(0),
        },
        ManipType::Dst,
        &table,
        &mut rng,
        &key(),
    )
    .unwrap();
    let r = b2.setup(
        &NatRange {
            addrs: Some(AddrRange::single(ip("198.51.100.1"))),
            ports: Some(PortRange::single(2000)),
            flags: NatFlags(0),
        },
        ManipType::Src,
        &table,
        &mut rng,
        &key(),
    );
    assert_eq!(r, Err(NatError::NoFreeTuple));
}

#[test]
fn masquerade_and_redirect_ranges() {
    let rule = NatRange {
        addrs: None,
        ports: Some(PortRange { lo: 3128, hi: 3128 }),
        flags: NatFlags(NatFlags::RANDOM),
    };
    let m = masquerade_range(&rule, Some(ip("198.51.100.1"))).unwrap();
    assert_eq!(m.addrs, Some(AddrRange::single(ip("198.51.100.1"))));
    assert_eq!((m.ports, m.flags), (rule.ports, rule.flags));
    assert_eq!(masquerade_range(&rule, None), Err(NatError::NoAddress));
    let r = redirect_range(
        &rule,
        Hook::Prerouting,
        Family::Ipv4,
        Some(ip("192.168.1.1")),
    )
    .unwrap();
    assert_eq!(r.addrs, Some(AddrRange::single(ip("192.168.1.1"))));
    let r = redirect_range(&rule, Hook::Output, Family::Ipv6, None).unwrap();
    assert_eq!(r.addrs, Some(AddrRange::single(ip("::1"))));
    assert_eq!(
        redirect_range(&rule, Hook::Prerouting, Family::Ipv4, None),
        Err(NatError::NoAddress)
    );
    assert_eq!(
        redirect_range(&rule, Hook::Prerouting, Family::Ipv4, Some(ip("::1"))),
        Err(NatError::FamilyMismatch)
    );
    let mut table = Table::default();
    let r = setup(
        &mut table,
        &mut Rng(1),
        t("10.0.0.1", 1, "10.0.0.2", 2, 6),
        &snat_to("2001:db8::1"),
        ManipType::Src,
    );
    assert_eq!(r.unwrap_err(), NatError::FamilyMismatch);
}

#[test]
fn null_binding_moves_a_local_flow_off_a_natted_tuple() {
    let mut table = Table::default();
    let mut rng = Rng(21);
    // A NATed client takes 198.51.100.1:40000 -> 93.184.216.34:80.
    let a = setup(
        &mut table,
        &mut rng,
        t("10.0.0.2", 40000, "93.184.216.34", 80, 6),
        &snat_to("198.51.100.1"),
        ManipType::Src,
    )
    .unwrap();
    assert_eq!(a.target(Direction::Original).unwrap().src_port, 40000);
    // The router itself then opens the same tuple: its null binding must
    // move it to another port.
    let mut b = Binding::new(t("198.51.100.1", 40000, "93.184.216.34", 80, 6)).unwrap();
    b.setup_null(ManipType::Src, &table, &mut rng, &key())
        .unwrap();
    let n = b.target(Direction::Original).unwrap();
    assert_eq!(n.src[..4], [198, 51, 100, 1]);
    assert_ne!(n.src_port, 40000);
    assert!(b.is_nat());
    table.add(&b);
    // A flow that clashes with nothing keeps everything.
    let mut c = Binding::new(t("198.51.100.1", 40001, "93.184.216.34", 80, 6)).unwrap();
    c.setup_null(ManipType::Src, &table, &mut rng, &key())
        .unwrap();
    assert!(!c.is_nat());
}

#[test]
fn nat_request_fills_in_masquerade_and_redirect() {
    use nat::eval::Verdict;
    let r = NatRange {
        addrs: None,
        ports: Some(PortRange::single(3128)),
        flags: NatFlags(0),
    };
    let (m, got) = nat_request(
        &Verdict::Redirect(r),
        Hook::Prerouting,
        Family::Ipv4,
        None,
        Some(ip("192.168.1.1")),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (m, got.addrs),
        (ManipType::Dst, Some(AddrRange::single(ip("192.168.1.1"))))
    );
    let (m, got) = nat_request(
        &Verdict::Masquerade(r),
        Hook::Postrouting,
        Family::Ipv4,
        Some(ip("198.51.100.1")),
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (m, got.addrs, got.ports),
        (
            ManipType::Src,
            Some(AddrRange::single(ip("198.51.100.1"))),
            r.ports
        )
    );
    assert_eq!(
        nat_request(
            &Verdict::Masquerade(r),
            Hook::Postrouting,
            Family::Ipv4,
            None,
            None
        ),
        Err(NatError::NoAddress)
    );
    assert_eq!(
        nat_request(
            &Verdict::Accept,
            Hook::Postrouting,
            Family::Ipv4,
            None,
            None
        ),
        Ok(None)
    );
    let s = NatRange {
        addrs: Some(AddrRange::single(ip("1.2.3.4"))),
        ports: None,
        flags: NatFlags(0),
    };
    assert_eq!(
        nat_request(
            &Verdict::Snat(s),
            Hook::Postrouting,
            Family::Ipv4,
            None,
            None
        ),
        Ok(Some((ManipType::Src, s)))
    );
    assert_eq!(
        nat_request(
            &Verdict::Dnat(s),
            Hook::Prerouting,
            Family::Ipv4,
            None,
            None
        ),
        Ok(Some((ManipType::Dst, s)))
    );
}

#[test]
fn sctp_gets_address_translation_only() {
    // Source NAT of two SCTP associations from different clients but the
    // same port, onto one address: the port cannot be changed (CRC32c), so
    // the second is refused rather than given a port the packet never gets.
    let mut table = Table::default();
    let mut rng = Rng(7);
    let range = NatRange {
        addrs: Some(AddrRange::single(ip("198.51.100.1"))),
        ports: None,
        flags: NatFlags(0),
    };
    let first = setup(
        &mut table,
        &mut rng,
        t("10.0.0.1", 5000, "93.184.216.34", 80, 132),
        &range,
        ManipType::Src,
    )
    .expect("the first association is mapped");
    let new = first.target(Direction::Original).unwrap();
    assert_eq!(&new.src[..4], &[198, 51, 100, 1], "address translated");
    assert_eq!(new.src_port, 5000, "SCTP ports are never rewritten");
    let second = setup(
        &mut table,
        &mut rng,
        t("10.0.0.2", 5000, "93.184.216.34", 80, 132),
        &range,
        ManipType::Src,
    );
    assert_eq!(second.unwrap_err(), NatError::NoFreeTuple);
}

/// An ICMP echo request tuple (IPv4) with id `id`.
fn echo(src: &str, dst: &str, id: u16) -> Tuple {
    Tuple::icmp(
        conntrack::Family::Ipv4,
        addr_bytes(&ip(src)),
        addr_bytes(&ip(dst)),
        id,
        8,
        0,
    )
}

#[test]
fn a_port_range_maps_the_port_only_of_protocols_with_ports() {
    // `--to-destination 10.0.2.2:8080` without -p: every packet gets the
    // address, TCP and UDP the port too, ICMP keeps its id.
    let mut table = Table::default();
    let mut rng = Rng(11);
    let to = NatRange {
        addrs: Some(AddrRange::single(ip("10.0.2.2"))),
        ports: Some(PortRange::single(8080)),
        flags: NatFlags(0),
    };
    let new_dst = ip("10.0.2.2");
    for proto in [6, 17, 136, 33] {
        let b = setup(
            &mut table,
            &mut rng,
            t("198.51.100.7", 5555, "203.0.113.1", 80, proto),
            &to,
            ManipType::Dst,
        )
        .unwrap();
        let n = b.target(Direction::Original).unwrap();
        assert_eq!(
            (tuple_addr(&n, &n.dst), n.dst_port, n.src_port),
            (new_dst, 8080, 5555),
            "protocol {proto}"
        );
        assert_eq!(
            b.manip(Direction::Original, ManipType::Dst),
            Some(Endpoint {
                addr: new_dst,
                port: 8080
            })
        );
    }

    // ICMP echo: the address only, the id kept (not mapped to 8080).
    let b = setup(
        &mut table,
        &mut rng,
        echo("198.51.100.7", "203.0.113.1", 0x1234),
        &to,
        ManipType::Dst,
    )
    .unwrap();
    let n = b.target(Direction::Original).unwrap();
    assert_eq!((tuple_addr(&n, &n.dst), n.src_port), (new_dst, 0x1234));
    assert_eq!(
        b.manip(Direction::Original, ManipType::Dst),
        Some(Endpoint {
            addr: new_dst,
            port: 0x1234
        })
    );
    // The reply comes back from the public address with the same id.
    assert_eq!(
        b.manip(Direction::Reply, ManipType::Src),
        Some(Endpoint {
            addr: ip("203.0.113.1"),
            port: 0x1234
        })
    );

    // The same client and id to another public address of the same
    // server: the tuple after NAT clashes, so the id moves to a free one
    // (any id: the port range does not apply to it), and the reply still
    // restores the client's id.
    let b2 = setup(
        &mut table,
        &mut rng,
        echo("198.51.100.7", "203.0.113.2", 0x1234),
        &to,
        ManipType::Dst,
    )
    .unwrap();
    let n2 = b2.target(Direction::Original).unwrap();
    assert_eq!(tuple_addr(&n2, &n2.dst), new_dst);
    assert_ne!(n2.src_port, 0x1234, "a clash moves the id");
    let r = b2.target(Direction::Reply).unwrap();
    assert_eq!(
        (tuple_addr(&r, &r.src), r.src_port),
        (ip("203.0.113.2"), 0x1234)
    );
}

#[test]
fn source_nat_port_ranges_leave_icmp_ids_alone_unless_they_clash() {
    // `--to-source 198.51.100.1:1024-2047` (or `--masquerade --to-ports`)
    // without -p.
    let mut table = Table::default();
    let mut rng = Rng(12);
    let range = NatRange {
        addrs: Some(AddrRange::single(ip("198.51.100.1"))),
        ports: Some(PortRange { lo: 1024, hi: 2047 }),
        flags: NatFlags(0),
    };
    // TCP and UDP: into the port range.
    for proto in [6, 17] {
        let b = setup(
            &mut table,
            &mut rng,
            t("10.0.0.1", 40000, "93.184.216.34", 443, proto),
            &range,
            ManipType::Src,
        )
        .unwrap();
        let n = b.target(Direction::Original).unwrap();
        assert_eq!(tuple_addr(&n, &n.src), ip("198.51.100.1"));
        assert!((1024..=2047).contains(&n.src_port), "{}", n.src_port);
    }
    // ICMP: the address, the id kept.
    let first = setup(
        &mut table,
        &mut rng,
        echo("10.0.0.1", "8.8.8.8", 7),
        &range,
        ManipType::Src,
    )
    .unwrap();
    let n = first.target(Direction::Original).unwrap();
    assert_eq!(
        (tuple_addr(&n, &n.src), n.src_port),
        (ip("198.51.100.1"), 7)
    );
    // Another client with the same id: a clash, so another (free) id.
    let mut ids = HashSet::from([7]);
    for i in 2..40u8 {
        let b = setup(
            &mut table,
            &mut rng,
            echo(&format!("10.0.0.{i}"), "8.8.8.8", 7),
            &range,
            ManipType::Src,
        )
        .unwrap();
        let n = b.target(Direction::Original).unwrap();
        assert_eq!(tuple_addr(&n, &n.src), ip("198.51.100.1"));
        assert!(ids.insert(n.src_port), "id {} given twice", n.src_port);
        let r = b.target(Direction::Reply).unwrap();
        assert_eq!(
            (tuple_addr(&r, &r.dst), r.src_port),
            (ip(&format!("10.0.0.{i}")), 7),
            "the reply restores the client's address and id"
        );
    }
    // ICMP clashes search all ids, not the port range.
    assert!(ids.iter().any(|id| !(1024..=2047).contains(id)), "{ids:?}");
}

#[test]
fn a_port_range_gives_other_protocols_the_address_only() {
    // SCTP (ports never rewritten) and GRE (no ports): address, ports kept.
    let mut table = Table::default();
    let mut rng = Rng(13);
    let to = NatRange {
        addrs: Some(AddrRange::single(ip("10.0.2.2"))),
        ports: Some(PortRange::single(8080)),
        flags: NatFlags(0),
    };
    for proto in [132, 47] {
        let b = setup(
            &mut table,
            &mut rng,
            t("198.51.100.7", 5000, "203.0.113.1", 80, proto),
            &to,
            ManipType::Dst,
        )
        .unwrap();
        let n = b.target(Direction::Original).unwrap();
        assert_eq!(
            (tuple_addr(&n, &n.dst), n.src_port, n.dst_port),
            (ip("10.0.2.2"), 5000, 80),
            "protocol {proto}"
        );
    }
}

/// `Binding::implied_status` gives the status bits `setup` set, for every kind of
/// binding of a protocol with ports: none, SNAT, DNAT, both, a port-only
/// change, a null binding, a SNAT that keeps the tuple; ICMP is left to
/// the bits.
#[test]
fn implied_status_matches_setup_status() {
    let mut table = Table::default();
    let mut rng = Rng(0x9e37_79b9);
    let port_only = NatRange {
        addrs: None,
        ports: Some(PortRange {
            lo: 40000,
            hi: 40000,
        }),
        flags: NatFlags(0),
    };
    let cases: Vec<(Tuple, Vec<(NatRange, ManipType)>)> = vec![
        (t("10.0.0.1", 1000, "192.0.2.1", 53, 17), vec![]),
        (
            t("10.0.0.2", 1000, "192.0.2.1", 53, 17),
            vec![(snat_to("198.51.100.1"), ManipType::Src)],
        ),
        (
            t("10.0.0.3", 1000, "192.0.2.1", 80, 6),
            vec![(snat_to("192.0.2.9"), ManipType::Dst)],
        ),
        (
            t("10.0.0.4", 1000, "192.0.2.1", 80, 6),
            vec![
                (snat_to("192.0.2.9"), ManipType::Dst),
                (snat_to("198.51.100.1"), ManipType::Src),
            ],
        ),
        (
            t("10.0.0.5", 1000, "192.0.2.1", 80, 6),
            vec![(port_only, ManipType::Src)],
        ),
        (
            t("10.0.0.6", 1000, "192.0.2.1", 80, 6),
            vec![(snat_to("10.0.0.6"), ManipType::Src)],
        ),
        (
            t("2001:db8::1", 1000, "2001:db8:1::1", 443, 6),
            vec![(snat_to("2001:db8:2::1"), ManipType::Src)],
        ),
        (t("10.0.0.7", 0, "192.0.2.1", 0, 47), vec![]),
    ];
    for (orig, manips) in cases {
        let mut b = Binding::new(orig).unwrap();
        for (range, m) in &manips {
            b.setup(range, *m, &table, &mut rng, &key()).unwrap();
        }
        // the other manip's null binding, as the hooks add it
        for m in [ManipType::Src, ManipType::Dst] {
            if !manips.iter().any(|(_, x)| *x == m) {
                b.setup_null(m, &table, &mut rng, &key()).unwrap();
            }
        }
        let key = conntrack::conn::ConnKey::from_tuples(b.tuples[0], &b.tuples[1]);
        assert_eq!(
            Binding::implied_status(&key),
            Some(b.status),
            "{orig:?} with {} manips",
            manips.len()
        );
        table.add(&b);
    }
    // ICMP: either manip may move the identifier, the bits decide
    let echo = Tuple::v4([10, 0, 0, 1], [192, 0, 2, 1], 1, 7, 8 << 8);
    let b = Binding::new(echo).unwrap();
    let key = conntrack::conn::ConnKey::from_tuples(b.tuples[0], &b.tuples[1]);
    assert!(Binding::implied_status(&key).is_none());
}
