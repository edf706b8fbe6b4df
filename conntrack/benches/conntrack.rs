//! Per-packet cost of parse + lookup + track for established TCP and UDP
//! at 1k and 1M connections; lookup against `hashbrown::HashMap` with the
//! same hasher; `size_of` of the per-connection record. Figures are
//! printed, not asserted.
//!
//! Run: `cargo bench -p conntrack`

use conntrack::checksum;
use conntrack::conn::Config;
use conntrack::table::{HostTable, Table};
use conntrack::tuple::SipBuildHasher;
use conntrack::{process, Conn, Family, HashKey, Tuple};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const KEY: HashKey = HashKey {
    k0: 0x1122_3344_5566_7788,
    k1: 0x99aa_bbcc_ddee_ff00,
};

fn addr(i: u32) -> [u8; 4] {
    let b = i.to_be_bytes();
    [10, b[1], b[2], b[3]]
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = checksum::finish(checksum::data(&h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    len: usize,
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(20 + len, 0);
    ipv4(src, dst, 6, &t)
}

fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, len: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + len, 0);
    ipv4(src, dst, 17, &u)
}

const SERVER: [u8; 4] = [192, 0, 2, 1];

/// A table with `n` established TCP connections, and for each an ACK
/// packet from the client that keeps it established.
fn tcp_table(n: u32) -> (HostTable, Vec<Vec<u8>>) {
    let cfg = Config::default();
    let mut t = HostTable::new(n as usize, KEY);
    let mut pkts = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (c, sp) = (addr(i / 16), 1024 + (i % 16) as u16);
        let f = Family::Ipv4;
        process(
            &mut t,
            &tcp(c, SERVER, sp, 443, 0x02, 1000, 0, 0),
            f,
            0,
            &cfg,
        );
        process(
            &mut t,
            &tcp(SERVER, c, 443, sp, 0x12, 5000, 1001, 0),
            f,
            0,
            &cfg,
        );
        process(
            &mut t,
            &tcp(c, SERVER, sp, 443, 0x10, 1001, 5001, 0),
            f,
            0,
            &cfg,
        );
        pkts.push(tcp(c, SERVER, sp, 443, 0x10, 1001, 5001, 0));
    }
    assert_eq!(t.len(), n as usize);
    (t, pkts)
}

fn udp_table(n: u32) -> (HostTable, Vec<Vec<u8>>) {
    let cfg = Config::default();
    let mut t = HostTable::new(n as usize, KEY);
    let mut pkts = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (c, sp) = (addr(i / 16), 1024 + (i % 16) as u16);
        process(&mut t, &udp(c, SERVER, sp, 53, 32), Family::Ipv4, 0, &cfg);
        process(&mut t, &udp(SERVER, c, 53, sp, 32), Family::Ipv4, 0, &cfg);
        pkts.push(udp(c, SERVER, sp, 53, 32));
    }
    assert_eq!(t.len(), n as usize);
    (t, pkts)
}

/// A pseudo-random visiting order (so that 1M entries miss the caches).
fn order(n: usize) -> Vec<usize> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn per_packet(c: &mut Criterion) {
    println!(
        "size_of::<Conn>() = {} bytes (ConnKey {} + ConnState {}), size_of::<Tuple>() = {} bytes",
        std::mem::size_of::<Conn>(),
        std::mem::size_of::<conntrack::ConnKey>(),
        std::mem::size_of::<conntrack::ConnState>(),
        std::mem::size_of::<Tuple>()
    );
    let cfg = Config::default();
    let mut g = c.benchmark_group("parse+lookup+track");
    g.throughput(Throughput::Elements(1));
    for (name, n) in [("1k", 1_000u32), ("1M", 1_000_000)] {
        for proto in ["tcp", "udp"] {
            let (mut table, pkts) = if proto == "tcp" {
                tcp_table(n)
            } else {
                udp_table(n)
            };
            let ord = order(pkts.len());
            let mut k = 0usize;
            let mut now = 1000u64;
            g.bench_function(format!("{proto} established, {name} connections"), |b| {
                b.iter(|| {
                    k = (k + 1) % ord.len();
                    now += 1;
                    let p = &pkts[ord[k]];
                    let r = process(&mut table, black_box(p), Family::Ipv4, now, &cfg);
                    black_box(r.verdict)
                })
            });
        }
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    for (name, n) in [("1k", 1_000u32), ("1M", 1_000_000)] {
        let (mut table, _) = udp_table(n);
        let tuples: Vec<Tuple> = (0..n)
            .map(|i| Tuple::v4(addr(i / 16), SERVER, 17, 1024 + (i % 16) as u16, 53))
            .collect();
        let mut map: hashbrown::HashMap<Tuple, u32, SipBuildHasher> =
            hashbrown::HashMap::with_capacity_and_hasher(
                2 * n as usize,
                SipBuildHasher { key: KEY },
            );
        for (i, t) in tuples.iter().enumerate() {
            map.insert(*t, i as u32);
            map.insert(t.invert().unwrap(), i as u32);
        }
        let ord = order(tuples.len());
        let mut k = 0usize;
        g.bench_function(format!("HostTable, {name}"), |b| {
            b.iter(|| {
                k = (k + 1) % ord.len();
                black_box(table.lookup(black_box(&tuples[ord[k]])))
            })
        });
        let mut k = 0usize;
        g.bench_function(format!("hashbrown::HashMap same hasher, {name}"), |b| {
            b.iter(|| {
                k = (k + 1) % ord.len();
                black_box(map.get(black_box(&tuples[ord[k]])))
            })
        });
    }
    let t = Tuple::v4(SERVER, SERVER, 6, 1, 2);
    g.bench_function("Tuple::hash_with (SipHash-1-3, 38 bytes)", |b| {
        b.iter(|| black_box(black_box(&t).hash_with(&KEY)))
    });
    g.finish();
    let mut g = c.benchmark_group("parse");
    let p = tcp(addr(1), SERVER, 1000, 443, 0x10, 1, 1, 100);
    g.bench_function("parse TCP/IPv4", |b| {
        b.iter(|| {
            black_box(conntrack::parse(
                black_box(&p),
                Family::Ipv4,
                &Default::default(),
            ))
        })
    });
    g.bench_function("Conn::update alone (TCP ACK, established)", |b| {
        let cfg = Config::default();
        let f = Family::Ipv4;
        let (c, sp) = (addr(1), 1024);
        let syn =
            conntrack::parse(&tcp(c, SERVER, sp, 443, 0x02, 1000, 0, 0), f, &cfg.parse).unwrap();
        let sa =
            conntrack::parse(&tcp(SERVER, c, 443, sp, 0x12, 5000, 1001, 0), f, &cfg.parse).unwrap();
        let ack =
            conntrack::parse(&tcp(c, SERVER, sp, 443, 0x10, 1001, 5001, 0), f, &cfg.parse).unwrap();
        let mut conn = Conn::new(&syn, 0, &cfg).unwrap();
        conn.update(&syn, conntrack::Direction::Original, 0, &cfg);
        conn.update(&sa, conntrack::Direction::Reply, 0, &cfg);
        // What runs under the entry lock: the parts alone, not the key.
        let (_key, mut c) = conn.parts();
        let mut now = 0u64;
        b.iter(|| {
            now += 1;
            black_box(c.update(black_box(&ack), conntrack::Direction::Original, now, &cfg))
        })
    });
    g.bench_function("new connection (UDP, insert + expire)", |b| {
        let mut table = HostTable::new(1 << 16, KEY);
        let cfg = Config::default();
        let mut i = 0u32;
        b.iter_batched(
            || {
                i = i.wrapping_add(1);
                udp(addr(i / 16 % 4096), SERVER, 1024 + (i % 16) as u16, 53, 8)
            },
            |p| {
                let r = process(&mut table, &p, Family::Ipv4, 0, &cfg);
                if table.len() > 60_000 {
                    table.expire(1_000_000, 1 << 16);
                }
                black_box(r.verdict)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = per_packet, lookup
}
criterion_main!(benches);
