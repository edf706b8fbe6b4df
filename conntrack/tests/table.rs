//! The host table: capacity, early drop, refusal, expiry, clashes.

mod common;
use common::*;
use conntrack::conn::Config;
use conntrack::table::{HostTable, InsertError, Table};
use conntrack::{
    parse, process, Class, Conn, Direction, Family, InvalidReason, Status, StatusWord,
};

fn udp_from(i: u16) -> Vec<u8> {
    udp(
        Family::Ipv4,
        &ep4([10, 0, 0, 1], 1000 + i),
        &ep4([10, 0, 0, 2], 53),
        1,
    )
}

fn udp_reply(i: u16) -> Vec<u8> {
    udp(
        Family::Ipv4,
        &ep4([10, 0, 0, 2], 53),
        &ep4([10, 0, 0, 1], 1000 + i),
        1,
    )
}

#[test]
fn full_table_early_drops_an_unassured_entry() {
    let cfg = Config::default();
    let mut t = HostTable::new(4, KEY);
    for i in 0..4 {
        assert_eq!(
            process(&mut t, &udp_from(i), Family::Ipv4, 0, &cfg)
                .verdict
                .class,
            Class::New
        );
    }
    assert_eq!(t.len(), 4);
    let v = process(&mut t, &udp_from(99), Family::Ipv4, 0, &cfg);
    assert_eq!(v.verdict.class, Class::New);
    assert_eq!(t.len(), 4);
    assert_eq!(t.stats().early_dropped, 1);
    t.check_consistency().unwrap();
}

#[test]
fn full_table_of_assured_entries_refuses() {
    let cfg = Config::default();
    let mut t = HostTable::new(3, KEY);
    for i in 0..3 {
        process(&mut t, &udp_from(i), Family::Ipv4, 0, &cfg);
        process(&mut t, &udp_reply(i), Family::Ipv4, 0, &cfg);
        // Active after 2 s: assured stream.
        process(&mut t, &udp_from(i), Family::Ipv4, 3000, &cfg);
    }
    assert!(t.iter().all(|(_, c)| c.status().has(Status::ASSURED)));
    let v = process(&mut t, &udp_from(50), Family::Ipv4, 3000, &cfg);
    assert_eq!(v.verdict.class, Class::Invalid(InvalidReason::TableFull));
    assert_eq!(
        reason(&v.verdict),
        "connection table full and nothing could be evicted"
    );
    assert_eq!(t.stats().insert_full, 1);
    assert_eq!(t.len(), 3);
    // Once one has expired, there is room again.
    let later = 3000 + 120_001;
    let v = process(&mut t, &udp_from(50), Family::Ipv4, later, &cfg);
    assert_eq!(v.verdict.class, Class::New);
    assert_eq!(t.stats().expired, 1);
    t.check_consistency().unwrap();
}

#[test]
fn expiry_does_bounded_work() {
    let cfg = Config::default();
    let mut t = HostTable::new(100, KEY);
    for i in 0..100 {
        process(&mut t, &udp_from(i), Family::Ipv4, 0, &cfg);
    }
    let late = 31_000;
    assert_eq!(t.expire(late, 10), 10);
    assert_eq!(t.len(), 90);
    let mut total = 10;
    while !t.is_empty() {
        let n = t.expire(late, 7);
        assert!(n <= 7);
        total += n;
    }
    assert_eq!(total, 100);
    assert_eq!(t.stats().expired, 100);
    t.check_consistency().unwrap();
}

#[test]
fn expired_entry_is_replaced_on_lookup() {
    let cfg = Config::default();
    let mut t = HostTable::new(10, KEY);
    let h1 = process(&mut t, &udp_from(1), Family::Ipv4, 0, &cfg)
        .conn
        .unwrap();
    let v = process(&mut t, &udp_from(1), Family::Ipv4, 40_000, &cfg);
    assert_eq!(v.verdict.class, Class::New);
    assert_ne!(v.conn, Some(h1));
    assert!(t.get(h1).is_none(), "stale handle");
    assert!(!t.remove(h1));
    assert_eq!(t.len(), 1);
}

#[test]
fn clashes_are_refused_and_counted() {
    let cfg = Config::default();
    let mut t = HostTable::new(10, KEY);
    let p = udp_from(1);
    let info = parse(&p, Family::Ipv4, &cfg.parse).unwrap();
    let a = Conn::new(&info, 0, &cfg).unwrap();
    let b = a.clone();
    t.insert(a, 0).unwrap();
    assert_eq!(t.insert(b, 0), Err(InsertError::Clash));
    // NAT case: a new connection whose reply tuple is taken.
    let q = udp_from(2);
    let info2 = parse(&q, Family::Ipv4, &cfg.parse).unwrap();
    let mut c = Conn::new(&info2, 0, &cfg).unwrap();
    c.set_reply_tuple(info.tuple.invert().unwrap());
    assert_eq!(t.insert(c, 0), Err(InsertError::Clash));
    assert_eq!(t.stats().insert_clash, 2);
    t.check_consistency().unwrap();
}

#[test]
fn nat_reply_tuple_is_looked_up() {
    let cfg = Config::default();
    let mut t = HostTable::new(10, KEY);
    let p = udp_from(1);
    let info = parse(&p, Family::Ipv4, &cfg.parse).unwrap();
    let mut c = Conn::new(&info, 0, &cfg).unwrap();
    // SNAT 10.0.0.1:1001 -> 192.0.2.1:6000: replies come to the new address.
    let mut reply = info.tuple.invert().unwrap();
    reply.dst[..4].copy_from_slice(&[192, 0, 2, 1]);
    reply.dst_port = 6000;
    c.set_reply_tuple(reply);
    c.set_status(Status::SRC_NAT);
    let h = t.insert(c, 0).unwrap();
    assert_eq!(t.lookup(&reply), Some((h, Direction::Reply)));
    assert_eq!(t.lookup(&info.tuple), Some((h, Direction::Original)));
    assert_eq!(t.lookup(&info.tuple.invert().unwrap()), None);
    // The tuples cannot be changed while the entry is in the table: the
    // key is handed out read-only, the status word and state shared.
    let seen = t.with_conn(h, |key, c| {
        c.status.set(Status::DST_NAT);
        (
            key.tuple(Direction::Reply),
            key.matches(Direction::Reply, &reply),
        )
    });
    assert_eq!(seen, Some((reply, true)));
    assert_eq!(t.get(h).unwrap().tuple(Direction::Reply), reply);
    assert!(t.get(h).unwrap().status().has(Status::DST_NAT));
    t.check_consistency().unwrap();
}

#[test]
fn self_connection_with_equal_tuples() {
    // 127.0.0.1:7 -> 127.0.0.1:7: both tuples are the same.
    let cfg = Config::default();
    let mut t = HostTable::new(10, KEY);
    let e = ep4([127, 0, 0, 1], 7);
    let p = udp(Family::Ipv4, &e, &e, 1);
    assert_eq!(
        process(&mut t, &p, Family::Ipv4, 0, &cfg).verdict.class,
        Class::New
    );
    assert_eq!(
        process(&mut t, &p, Family::Ipv4, 0, &cfg).verdict.class,
        Class::New
    );
    t.check_consistency().unwrap();
    assert_eq!(t.expire(100_000, 10), 1);
    t.check_consistency().unwrap();
}

#[test]
fn record_size() {
    use conntrack::{ConnKey, ConnState};
    let n = std::mem::size_of::<Conn>();
    let (k, s) = (
        std::mem::size_of::<ConnKey>(),
        std::mem::size_of::<ConnState>(),
    );
    println!("size_of::<Conn>() = {n}, ConnKey = {k}, ConnState = {s}");
    // Key, state, status word, TCP state (44 bytes): the owned record.
    assert!(n <= 160, "{n}");
    assert!(k + s <= 112, "{k} + {s}");
}

#[test]
fn closing_tcp_connections_are_evicted_before_refusing() {
    let cfg = Config::default();
    let mut t = HostTable::new(2, KEY);
    let fam = Family::Ipv4;
    let s = ep4([10, 0, 0, 9], 80);
    for (i, close) in [(0u16, false), (1, true)] {
        let c = ep4([10, 0, 0, 1], 2000 + i);
        process(
            &mut t,
            &tcp(fam, &c, &s, SYN, 1, 0, 1000, &[], 0),
            fam,
            0,
            &cfg,
        );
        process(
            &mut t,
            &tcp(fam, &s, &c, SYN | ACK, 9, 2, 1000, &[], 0),
            fam,
            0,
            &cfg,
        );
        process(
            &mut t,
            &tcp(fam, &c, &s, ACK, 2, 10, 1000, &[], 0),
            fam,
            0,
            &cfg,
        );
        if close {
            process(
                &mut t,
                &tcp(fam, &c, &s, FIN | ACK, 2, 10, 1000, &[], 0),
                fam,
                0,
                &cfg,
            );
        }
    }
    assert!(t.iter().all(|(_, c)| c.status().has(Status::ASSURED)));
    let c = ep4([10, 0, 0, 1], 3000);
    let v = process(
        &mut t,
        &tcp(fam, &c, &s, SYN, 1, 0, 1000, &[], 0),
        fam,
        0,
        &cfg,
    );
    assert_eq!(v.verdict.class, Class::New);
    assert_eq!(t.stats().early_dropped, 1);
    // The established one is still there; the closing one went.
    let states: Vec<_> = t.iter().filter_map(|(_, c)| c.tcp_state()).collect();
    assert!(states.contains(&conntrack::proto::tcp::TcpState::Established));
    assert!(states.contains(&conntrack::proto::tcp::TcpState::SynSent));
    t.check_consistency().unwrap();
}

#[test]
fn deadlines_survive_the_32_bit_millisecond_wrap() {
    let cfg = Config::default();
    let mut t = HostTable::new(4, KEY);
    let start = u32::MAX as u64 - 10_000; // 10 s before the low 32 bits wrap
    let h = process(&mut t, &udp_from(1), Family::Ipv4, start, &cfg)
        .conn
        .unwrap();
    let c = t.get(h).unwrap();
    assert_eq!(c.expires_in(start), 30_000);
    assert!(!c.is_expired(start + 29_999));
    assert_eq!(c.expires_in(start + 20_000), 10_000);
    assert!(c.is_expired(start + 30_000));
    assert_eq!(t.expire(start + 29_999, 4), 0);
    assert_eq!(t.expire(start + 30_000, 4), 1);
}
