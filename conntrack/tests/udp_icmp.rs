//! UDP, ICMP / ICMPv6 and generic tracking, RELATED errors.

mod common;
use common::*;
use conntrack::conn::Config;
use conntrack::table::{HostTable, Table};
use conntrack::{process, Class, Direction, Family, InvalidReason, ParseError, Status};

fn both(f: impl Fn(Family, Ep, Ep)) {
    f(
        Family::Ipv4,
        ep4([10, 0, 0, 1], 5000),
        ep4([10, 0, 0, 2], 53),
    );
    f(Family::Ipv6, ep6(1, 5000), ep6(2, 53));
}

#[test]
fn udp_unreplied_replied_stream() {
    both(|fam, a, b| {
        let cfg = Config::default();
        let mut t = HostTable::new(16, KEY);
        let mut now = 10_000u64;
        let v = process(&mut t, &udp(fam, &a, &b, 20), fam, now, &cfg);
        assert_eq!(
            (v.verdict.class, v.verdict.dir),
            (Class::New, Direction::Original)
        );
        let h = v.conn.unwrap();
        assert_eq!(t.get(h).unwrap().expires_in(now), 30_000);
        // Still NEW until a reply.
        let v = process(&mut t, &udp(fam, &a, &b, 20), fam, now, &cfg);
        assert_eq!(v.verdict.class, Class::New);
        let v = process(&mut t, &udp(fam, &b, &a, 20), fam, now, &cfg);
        assert_eq!(
            (v.verdict.class, v.verdict.dir),
            (Class::Established, Direction::Reply)
        );
        let c = t.get(h).unwrap();
        assert!(c.status().has(Status::SEEN_REPLY));
        assert!(!c.status().has(Status::ASSURED));
        assert_eq!(c.expires_in(now), 30_000);
        // After two seconds of activity: a stream, ASSURED, 120 s.
        now += 2_500;
        let v = process(&mut t, &udp(fam, &a, &b, 20), fam, now, &cfg);
        assert_eq!(v.verdict.class, Class::Established);
        let c = t.get(h).unwrap();
        assert!(c.status().has(Status::ASSURED));
        assert_eq!(c.expires_in(now), 120_000);
        // Expires after the timeout.
        now += 120_001;
        assert_eq!(t.expire(now, 100), 1);
        assert!(t.is_empty());
    });
}

#[test]
fn udp_malformed() {
    let (a, b) = (ep4([10, 0, 0, 1], 1), ep4([10, 0, 0, 2], 2));
    let mut p = udp(Family::Ipv4, &a, &b, 4);
    p[20 + 5] = 200; // UDP length beyond the packet
    let mut t = HostTable::new(4, KEY);
    let v = process(&mut t, &p, Family::Ipv4, 0, &Config::default());
    assert!(matches!(
        v.verdict.class,
        Class::Invalid(InvalidReason::Malformed(ParseError::Udp(_)))
    ));
    // Bad checksum, when verification is on.
    let mut q = udp(Family::Ipv4, &a, &b, 4);
    q[20 + 8] ^= 0xff;
    let cfg = Config {
        parse: conntrack::parse::ParseOptions {
            verify_checksums: true,
            ..Default::default()
        },
        ..Config::default()
    };
    let v = process(&mut t, &q, Family::Ipv4, 0, &cfg);
    assert_eq!(
        v.verdict.class,
        Class::Invalid(InvalidReason::Malformed(ParseError::BadChecksum))
    );
    let v = process(&mut t, &udp(Family::Ipv4, &a, &b, 4), Family::Ipv4, 0, &cfg);
    assert_eq!(v.verdict.class, Class::New);
}

#[test]
fn icmp_echo_pairing() {
    both(|fam, a, b| {
        let cfg = Config::default();
        let mut t = HostTable::new(16, KEY);
        let v = process(&mut t, &echo(fam, &a, &b, false, 77, 1), fam, 0, &cfg);
        assert_eq!(v.verdict.class, Class::New);
        assert_eq!(t.get(v.conn.unwrap()).unwrap().expires_in(0), 30_000);
        // A reply with another id is not paired, and a reply cannot start
        // a connection.
        let v = process(&mut t, &echo(fam, &b, &a, true, 78, 1), fam, 0, &cfg);
        assert_eq!(v.verdict.class, Class::Invalid(InvalidReason::IcmpNotNew));
        let v = process(&mut t, &echo(fam, &b, &a, true, 77, 1), fam, 0, &cfg);
        assert_eq!(
            (v.verdict.class, v.verdict.dir),
            (Class::Established, Direction::Reply)
        );
        // The next request of the same id belongs to the same connection.
        let v = process(&mut t, &echo(fam, &a, &b, false, 77, 2), fam, 0, &cfg);
        assert_eq!(v.verdict.class, Class::Established);
        assert_eq!(t.len(), 1);
    });
}

/// The quoted packet of an error: IP header + first 8 bytes of L4.
fn quote(p: &[u8], fam: Family) -> Vec<u8> {
    let hl = if fam == Family::Ipv4 { 20 } else { 40 };
    p[..hl + 8].to_vec()
}

#[test]
fn icmp_errors_are_related_only_when_outer_addresses_fit() {
    both(|fam, a, b| {
        let cfg = Config::default();
        let mut t = HostTable::new(16, KEY);
        let first = udp(fam, &a, &b, 100);
        let h = process(&mut t, &first, fam, 0, &cfg).conn.unwrap();
        let (unreach, code) = if fam == Family::Ipv4 { (3, 3) } else { (1, 4) };
        // b (or a router) tells a that the port is unreachable.
        let router = if fam == Family::Ipv4 {
            ep4([10, 9, 9, 9], 0)
        } else {
            ep6(9, 0)
        };
        let err = icmp(fam, &router, &a, unreach, code, [0; 4], &quote(&first, fam));
        let v = process(&mut t, &err, fam, 0, &cfg);
        assert_eq!(
            (v.verdict.class, v.verdict.dir),
            (Class::Related, Direction::Reply)
        );
        assert_eq!(v.conn, Some(h));
        // The same error sent to someone else (outer destination is not
        // the connection's endpoint) is not RELATED.
        let other = if fam == Family::Ipv4 {
            ep4([10, 0, 0, 7], 0)
        } else {
            ep6(7, 0)
        };
        let bogus = icmp(fam, &b, &other, unreach, code, [0; 4], &quote(&first, fam));
        let v = process(&mut t, &bogus, fam, 0, &cfg);
        assert_eq!(
            v.verdict.class,
            Class::Invalid(InvalidReason::IcmpErrorAddr)
        );
        // An error about a packet of no connection.
        let stranger = udp(fam, &a, &other, 1);
        let e = icmp(
            fam,
            &router,
            &a,
            unreach,
            code,
            [0; 4],
            &quote(&stranger, fam),
        );
        let v = process(&mut t, &e, fam, 0, &cfg);
        assert_eq!(
            v.verdict.class,
            Class::Invalid(InvalidReason::IcmpErrorNoConn)
        );
        // An error quoting a truncated packet.
        let e = icmp(
            fam,
            &router,
            &a,
            unreach,
            code,
            [0; 4],
            &quote(&first, fam)[..10],
        );
        let v = process(&mut t, &e, fam, 0, &cfg);
        assert_eq!(
            v.verdict.class,
            Class::Invalid(InvalidReason::Malformed(ParseError::IcmpInner))
        );
        // An error in the original direction (about a reply): dir Original.
        let reply = udp(fam, &b, &a, 5);
        process(&mut t, &reply, fam, 0, &cfg);
        let e = icmp(fam, &router, &b, unreach, code, [0; 4], &quote(&reply, fam));
        let v = process(&mut t, &e, fam, 0, &cfg);
        assert_eq!(
            (v.verdict.class, v.verdict.dir),
            (Class::Related, Direction::Original)
        );
    });
}

#[test]
fn icmp_error_about_tcp_and_echo() {
    let fam = Family::Ipv4;
    let (a, b) = (ep4([10, 0, 0, 1], 40000), ep4([10, 0, 0, 2], 80));
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    let syn = tcp(fam, &a, &b, SYN, 1, 0, 1000, &[], 0);
    process(&mut t, &syn, fam, 0, &cfg);
    let e = icmp(fam, &b, &a, 11, 0, [0; 4], &quote(&syn, fam));
    assert_eq!(
        process(&mut t, &e, fam, 0, &cfg).verdict.class,
        Class::Related
    );
    let ping = echo(fam, &a, &b, false, 5, 1);
    process(&mut t, &ping, fam, 0, &cfg);
    let e = icmp(fam, &b, &a, 3, 1, [0; 4], &quote(&ping, fam));
    assert_eq!(
        process(&mut t, &e, fam, 0, &cfg).verdict.class,
        Class::Related
    );
}

#[test]
fn icmp_unknown_and_untracked() {
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    let (a, b) = (ep4([10, 0, 0, 1], 0), ep4([10, 0, 0, 2], 0));
    let v = process(
        &mut t,
        &icmp(Family::Ipv4, &a, &b, 42, 0, [0; 4], &[]),
        Family::Ipv4,
        0,
        &cfg,
    );
    assert_eq!(
        v.verdict.class,
        Class::Invalid(InvalidReason::IcmpUnknownType)
    );
    // Neighbour solicitation: untracked.
    let (a6, b6) = (ep6(1, 0), ep6(2, 0));
    let v = process(
        &mut t,
        &icmp(Family::Ipv6, &a6, &b6, 135, 0, [0; 4], &[0; 16]),
        Family::Ipv6,
        0,
        &cfg,
    );
    assert_eq!(v.verdict.class, Class::Untracked);
    assert!(t.is_empty());
}

#[test]
fn generic_protocol() {
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    // GRE (47): addresses and protocol only.
    let mut p = udp(
        Family::Ipv4,
        &ep4([1, 1, 1, 1], 0),
        &ep4([2, 2, 2, 2], 0),
        4,
    );
    p[9] = 47;
    p[10] = 0;
    p[11] = 0;
    let v = process(&mut t, &p, Family::Ipv4, 0, &cfg);
    assert_eq!(v.verdict.class, Class::New);
    assert_eq!(t.get(v.conn.unwrap()).unwrap().expires_in(0), 600_000);
    let mut r = udp(
        Family::Ipv4,
        &ep4([2, 2, 2, 2], 0),
        &ep4([1, 1, 1, 1], 0),
        4,
    );
    r[9] = 47;
    let v = process(&mut t, &r, Family::Ipv4, 0, &cfg);
    assert_eq!(
        (v.verdict.class, v.verdict.dir),
        (Class::Established, Direction::Reply)
    );
}

#[test]
fn fragments() {
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    let (a, b) = (ep4([10, 0, 0, 1], 1), ep4([10, 0, 0, 2], 2));
    let mut p = udp(Family::Ipv4, &a, &b, 8);
    p[6] = 0x00;
    p[7] = 0x10; // offset 128
    let v = process(&mut t, &p, Family::Ipv4, 0, &cfg);
    assert_eq!(
        v.verdict.class,
        Class::Invalid(InvalidReason::Malformed(ParseError::Fragment))
    );
    // The first fragment carries the ports: tracked.
    let mut f = udp(Family::Ipv4, &a, &b, 8);
    f[6] = 0x20;
    f[7] = 0;
    let info = conntrack::parse(&f, Family::Ipv4, &cfg.parse).unwrap();
    assert_eq!(info.fragment, conntrack::parse::FragmentStatus::First);
    assert_eq!(
        process(&mut t, &f, Family::Ipv4, 0, &cfg).verdict.class,
        Class::New
    );
}

#[test]
fn ipv6_extension_headers_and_bound() {
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    let (a, b) = (ep6(1, 1000), ep6(2, 2000));
    let base = udp(Family::Ipv6, &a, &b, 4);
    // Insert a hop-by-hop header (8 bytes) before UDP.
    let mut p = base[..40].to_vec();
    p[6] = 0;
    let plen = u16::from_be_bytes([p[4], p[5]]) + 8;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    p.extend_from_slice(&base[40..]);
    let v = process(&mut t, &p, Family::Ipv6, 0, &cfg);
    assert_eq!(v.verdict.class, Class::New);
    let info = conntrack::parse(&p, Family::Ipv6, &cfg.parse).unwrap();
    assert_eq!((info.tuple.src_port, info.tuple.dst_port), (1000, 2000));
    // Nine destination-options headers: tracked, as by nf_conntrack, whose
    // `ipv6_skip_exthdr()` has no bound; an explicit bound of 8 refuses
    // them.
    let mut q = base[..40].to_vec();
    q[6] = 60;
    let plen = u16::from_be_bytes([q[4], q[5]]) + 72;
    q[4..6].copy_from_slice(&plen.to_be_bytes());
    for i in 0..9 {
        q.extend_from_slice(&[if i == 8 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    q.extend_from_slice(&base[40..]);
    let v = process(&mut HostTable::new(16, KEY), &q, Family::Ipv6, 0, &cfg);
    assert_eq!(v.verdict.class, Class::New);
    let mut bounded = cfg;
    bounded.parse.max_ext_headers = 8;
    let v = process(&mut t, &q, Family::Ipv6, 0, &bounded);
    assert_eq!(
        v.verdict.class,
        Class::Invalid(InvalidReason::Malformed(ParseError::Ip(
            conntrack::wire::Error::TooManyExtHeaders
        )))
    );
}

#[test]
fn icmp_tuple_carries_the_type() {
    // An echo with id 0: its reply tuple has id 0, type 0, code 0. Another
    // non-query message (router advertisement, type 9) must not match it.
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    let (a, b) = (ep4([10, 0, 0, 1], 0), ep4([10, 0, 0, 2], 0));
    let v = process(
        &mut t,
        &echo(Family::Ipv4, &a, &b, false, 0, 1),
        Family::Ipv4,
        0,
        &cfg,
    );
    assert_eq!(v.verdict.class, Class::New);
    let v = process(
        &mut t,
        &icmp(Family::Ipv4, &b, &a, 9, 0, [0; 4], &[]),
        Family::Ipv4,
        0,
        &cfg,
    );
    assert_eq!(v.verdict.class, Class::Invalid(InvalidReason::IcmpNotNew));
    let v = process(
        &mut t,
        &echo(Family::Ipv4, &b, &a, true, 0, 1),
        Family::Ipv4,
        0,
        &cfg,
    );
    assert_eq!(v.verdict.class, Class::Established);
}

/// A table on which another CPU inserts the same connection between the
/// tracker's lookup and its insert (the first insert meets the flow
/// already there).
struct Racing {
    t: HostTable,
    other: Option<Vec<u8>>,
    family: Family,
}

impl Table for Racing {
    type Handle = conntrack::HostHandle;
    type Status = conntrack::AtomicStatus;

    fn lookup(&mut self, tuple: &conntrack::Tuple) -> Option<(Self::Handle, Direction)> {
        self.t.lookup(tuple)
    }

    fn with_conn<R>(
        &mut self,
        h: Self::Handle,
        f: impl FnOnce(&conntrack::ConnKey, conntrack::ConnRef<'_, Self::Status>) -> R,
    ) -> Option<R> {
        self.t.with_conn(h, f)
    }

    fn insert(
        &mut self,
        conn: conntrack::Conn,
        now: u64,
    ) -> Result<Self::Handle, conntrack::InsertError> {
        if let Some(p) = self.other.take() {
            // The other CPU's packet: the same first datagram.
            let v = process(&mut self.t, &p, self.family, now, &Config::default());
            assert_eq!(v.verdict.class, Class::New);
        }
        self.t.insert(conn, now)
    }

    fn remove(&mut self, h: Self::Handle) -> bool {
        self.t.remove(h)
    }

    fn expire(&mut self, now: u64, budget: usize) -> usize {
        self.t.expire(now, budget)
    }

    fn len(&self) -> usize {
        self.t.len()
    }

    fn stats(&self) -> conntrack::TableStats {
        self.t.stats()
    }
}

#[test]
fn udp_clash_takes_the_entry_already_there() {
    both(|fam, a, b| {
        let cfg = Config::default();
        let p = udp(fam, &a, &b, 20);
        let mut t = Racing {
            t: HostTable::new(16, KEY),
            other: Some(p.clone()),
            family: fam,
        };
        let v = process(&mut t, &p, fam, 1000, &cfg);
        // Both datagrams get through, with one connection, as with
        // Linux's nf_ct_resolve_clash().
        assert_eq!(
            (v.verdict.class, v.verdict.dir),
            (Class::New, Direction::Original)
        );
        assert!(v.conn.is_some());
        assert_eq!(t.len(), 1);
        // The entry took both datagrams; the refused insert is counted.
        let c = t.t.get(v.conn.unwrap()).unwrap();
        assert_eq!(c.counters(Direction::Original).0, 2);
        assert_eq!(t.stats().insert_clash, 1);
    });
}
