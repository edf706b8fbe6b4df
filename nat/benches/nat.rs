//! Benchmarks: rule evaluation at 0, 100 and 1000 rules (per packet), and
//! the NAT port search at 50, 90 and 99 % pool use.
//!
//! `cargo bench -p nat` prints the figures (criterion's "time" line is the
//! cost of one packet, or of one port search).

use std::collections::HashSet;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use conntrack::{HashKey, Tuple};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nat::codec::{decode_into, entries_needed, Entry};
use nat::eval::PacketMeta;
use nat::nat_core::{unique_tuple, Entropy, ManipType, TupleTable};
use nat::rule::{AddrRange, Counter, CtState, Family, Hook, IfName, NatFlags, NatRange};

/// A filter table whose INPUT chain has `n` rules of the usual mix
/// (address, port, interface, state matches), none of which matches the
/// benchmark packet, so every rule is evaluated and the policy decides.
fn ruleset(n: usize) -> String {
    let mut s = String::from("*filter\n:INPUT ACCEPT [0:0]\n");
    for i in 0..n {
        let line = match i % 4 {
            0 => format!(
                "-A INPUT -4 -p tcp -s 10.{}.{}.0/24 --dport {} --accept\n",
                i / 256 % 256,
                i % 256,
                1000 + i % 5000
            ),
            1 => format!("-A INPUT -p udp --dport {} --drop\n", 2000 + i % 5000),
            2 => format!("-A INPUT -i veth{} --ct-state new --drop\n", i % 1000),
            _ => format!("-A INPUT -6 -s 2001:db8:{:x}::/48 --accept\n", i % 65536),
        };
        s += &line;
    }
    s + "COMMIT\n"
}

fn packet() -> PacketMeta {
    PacketMeta {
        family: Family::Ipv4,
        proto: 6,
        src: IpAddr::from([192, 168, 1, 1]),
        dst: IpAddr::from([192, 168, 1, 2]),
        sport: 40000,
        dport: 443,
        in_if: IfName::new(b"eth0").unwrap(),
        out_if: IfName::NONE,
        ct_state: CtState::New,
        mark: 0,
        icmp_type: 0,
        icmp_code: 0,
        tcp_flags: 2,
        fragment: false,
        len: 1500,
    }
}

fn bench_eval(c: &mut Criterion) {
    let mut g = c.benchmark_group("rule evaluation (ns/packet)");
    for n in [0usize, 100, 1000] {
        let rs = nat::text::parse(&ruleset(n)).unwrap();
        let blob = rs.tables[0].encode().unwrap();
        let mut store = vec![Entry::EMPTY; entries_needed(&blob).unwrap()];
        let table = decode_into(&blob, &mut store).unwrap();
        let mut counters = vec![Counter::default(); table.entries().len()];
        let p = packet();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| table.evaluate(Hook::Input, black_box(&p), counters.as_mut_slice()))
        });
    }
    g.finish();
}

struct Used(HashSet<Tuple>);
impl TupleTable for Used {
    fn reply_in_use(&self, reply: &Tuple) -> bool {
        self.0.contains(reply)
    }
}

struct Xorshift(u64);
impl Entropy for Xorshift {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
}

fn bench_port_search(c: &mut Criterion) {
    let mut g = c.benchmark_group("port search (ns/search)");
    let public = [198, 51, 100, 1];
    let server = [93, 184, 216, 34];
    for pct in [50u32, 90, 99] {
        // Occupy pct % of 1024..=65535, spread at random.
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut used = Used(HashSet::new());
        for port in 1024..=65535u16 {
            if rng.next_u32() % 100 < pct {
                used.0.insert(Tuple::v4(server, public, 6, 443, port));
            }
        }
        let range = NatRange {
            addrs: Some(AddrRange::single(IpAddr::from(public))),
            ports: None,
            flags: NatFlags(0),
        };
        let key = HashKey::from_bytes([3; 16]);
        // The client's own port is taken, so the search runs every time.
        let orig = Tuple::v4([10, 0, 0, 1], server, 6, 40000, 443);
        used.0.insert(Tuple::v4(server, public, 6, 443, 40000));
        let mut found = 0u64;
        let mut tries = 0u64;
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{pct}%")),
            &pct,
            |b, _| {
                b.iter(|| {
                    tries += 1;
                    if unique_tuple(
                        black_box(&orig),
                        &range,
                        ManipType::Src,
                        &used,
                        &mut rng,
                        &key,
                    )
                    .is_ok()
                    {
                        found += 1;
                    }
                })
            },
        );
        println!("port search at {pct}% use: {found} of {tries} searches found a port");
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_eval, bench_port_search
}
criterion_main!(benches);
