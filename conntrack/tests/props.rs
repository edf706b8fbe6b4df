//! Property tests.

mod common;
use common::*;
use conntrack::checksum;
use conntrack::conn::Config;
use conntrack::proto::tcp::TcpState;
use conntrack::seq::{after, before};
use conntrack::table::{HostTable, Table};
use conntrack::{parse, parse_prefix, process, Class, Family, Tuple};
use proptest::prelude::*;

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)]
}

/// An IP header of `fam` carrying `proto` with `tail` as its payload.
fn behind_header(fam: Family, proto: u8, tail: &[u8]) -> Vec<u8> {
    let mut p = match fam {
        Family::Ipv4 => {
            let total = (20 + tail.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
            h
        }
        Family::Ipv6 => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(tail.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&[1; 32]);
            h
        }
    };
    p.extend_from_slice(tail);
    p
}

/// Packets that mostly parse: TCP with arbitrary option bytes, UDP,
/// echo, ICMP errors quoting a cut of another packet, IPv6 extension
/// headers, each with some bytes flipped.
fn built_packet() -> impl Strategy<Value = (Family, Vec<u8>)> {
    (
        family(),
        0u8..5,
        proptest::collection::vec(any::<u8>(), 0..40),
        0usize..300,
        0usize..120,
        proptest::option::of((0usize..120, any::<u8>())),
    )
        .prop_map(|(fam, kind, opt, plen, cut, flip)| {
            let (a, b) = match fam {
                Family::Ipv4 => (ep4([10, 0, 0, 1], 1000), ep4([10, 0, 0, 2], 80)),
                Family::Ipv6 => (ep6(1, 1000), ep6(2, 80)),
            };
            let t = tcp(fam, &a, &b, ACK, 1, 2, 100, &opt, plen);
            let mut p = match kind {
                0 => t,
                1 => udp(fam, &a, &b, plen),
                2 => echo(fam, &a, &b, false, 3, 4),
                3 => {
                    let ty = if fam == Family::Ipv4 { 3 } else { 1 };
                    icmp(fam, &b, &a, ty, 1, [0; 4], &t[..cut.min(t.len())])
                }
                _ => {
                    // A chain of `opt.len() % 4` destination-options
                    // headers (on IPv4: IP options) before TCP.
                    let n = opt.len() % 4;
                    match fam {
                        Family::Ipv6 => {
                            let mut q = t[..40].to_vec();
                            q[6] = if n == 0 { 6 } else { 60 };
                            for i in 0..n {
                                q.extend_from_slice(&[
                                    if i + 1 == n { 6 } else { 60 },
                                    0,
                                    1,
                                    4,
                                    0,
                                    0,
                                    0,
                                    0,
                                ]);
                            }
                            q.extend_from_slice(&t[40..]);
                            let plen = (q.len() - 40) as u16;
                            q[4..6].copy_from_slice(&plen.to_be_bytes());
                            q
                        }
                        Family::Ipv4 => {
                            let mut q = t[..20].to_vec();
                            q.extend(std::iter::repeat_n(1u8, 4 * n));
                            q.extend_from_slice(&t[20..]);
                            q[0] = 0x45 + n as u8;
                            let total = q.len() as u16;
                            q[2..4].copy_from_slice(&total.to_be_bytes());
                            q
                        }
                    }
                }
            };
            if let Some((i, x)) = flip {
                if let Some(b) = p.get_mut(i) {
                    *b ^= x;
                }
            }
            (fam, p)
        })
}

/// `parse_prefix` on every prefix of `bytes`: never a panic; when `parse`
/// succeeds, each prefix gives a `Truncated` error or exactly `parse`'s
/// result, and once a prefix parses so do all longer ones (the headers'
/// end). `verify_checksums` makes no difference to `parse_prefix`.
fn prefix_agrees(bytes: &[u8], fam: Family) -> Result<(), TestCaseError> {
    use conntrack::parse::ParseOptions;
    let opts = ParseOptions::default();
    let with_sums = ParseOptions {
        verify_checksums: true,
        ..opts
    };
    let full = parse(bytes, fam, &opts);
    let version = match fam {
        Family::Ipv4 => 4,
        Family::Ipv6 => 6,
    };
    let same_version = bytes.first().map(|b| b >> 4) == Some(version);
    let mut headers_end = None;
    for k in 0..=bytes.len() {
        let r = parse_prefix(&bytes[..k], fam, &opts);
        prop_assert_eq!(r, parse_prefix(&bytes[..k], fam, &with_sums));
        if same_version {
            prop_assert_eq!(r, conntrack::parse::parse_prefix_any(&bytes[..k], &opts));
        }
        let Ok(f) = full else { continue };
        match r {
            Ok(p) => {
                prop_assert_eq!(p, f, "prefix of {} bytes", k);
                headers_end.get_or_insert(k);
            }
            Err(e) => {
                prop_assert!(e.is_truncated(), "prefix of {} bytes: {:?}", k, e);
                prop_assert!(
                    headers_end.is_none(),
                    "prefix of {} bytes fails after a shorter one parsed",
                    k
                );
            }
        }
    }
    if full.is_ok() {
        prop_assert!(headers_end.is_some());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), fam in family()) {
        let _ = parse(&bytes, fam, &Config::default().parse);
        let _ = conntrack::parse::parse_any(&bytes, &Config::default().parse);
    }

    #[test]
    fn parse_never_panics_behind_a_valid_header(
        tail in proptest::collection::vec(any::<u8>(), 0..120),
        proto in prop_oneof![Just(1u8), Just(6), Just(17), Just(58), Just(0), Just(44), any::<u8>()],
        fam in family(),
    ) {
        let p = behind_header(fam, proto, &tail);
        let cfg = Config::default();
        let _ = parse(&p, fam, &cfg.parse);
        let mut t = HostTable::new(4, KEY);
        let _ = process(&mut t, &p, fam, 0, &cfg);
        t.check_consistency().unwrap();
    }

    #[test]
    fn parse_prefix_agrees_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), fam in family()) {
        prefix_agrees(&bytes, fam)?;
    }

    #[test]
    fn parse_prefix_agrees_behind_a_valid_header(
        tail in proptest::collection::vec(any::<u8>(), 0..120),
        proto in prop_oneof![Just(1u8), Just(6), Just(17), Just(58), Just(0), Just(44), Just(60), any::<u8>()],
        fam in family(),
    ) {
        prefix_agrees(&behind_header(fam, proto, &tail), fam)?;
    }

    #[test]
    fn parse_prefix_agrees_on_built_packets((fam, p) in built_packet()) {
        prefix_agrees(&p, fam)?;
    }

    #[test]
    fn invert_is_an_involution(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
        sp in any::<u16>(), dp in any::<u16>(),
        proto in prop_oneof![Just(6u8), Just(17), Just(47), Just(132)],
    ) {
        let t = Tuple::v6(src, dst, proto, sp, dp);
        let r = t.invert().unwrap();
        prop_assert_eq!(r.src, t.dst);
        prop_assert_eq!(r.invert().unwrap(), t);
        let key = conntrack::HashKey { k0: 7, k1: 9 };
        prop_assert_eq!(t.hash_with(&key), t.hash_with(&key));
    }

    #[test]
    fn incremental_checksum_equals_recompute(
        mut data in proptest::collection::vec(any::<u8>(), 2..200),
        word in any::<usize>(), new in any::<u16>(),
    ) {
        if data.len() % 2 == 1 { data.push(0); }
        let stored = checksum::finish(checksum::data(&data));
        let i = (word % (data.len() / 2)) * 2;
        let old = u16::from_be_bytes([data[i], data[i + 1]]);
        data[i..i + 2].copy_from_slice(&new.to_be_bytes());
        let inc = checksum::update16(stored, old, new);
        let full = checksum::finish(checksum::data(&data));
        // 0x0000 and 0xffff are the same number in ones-complement.
        prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));
    }

    #[test]
    fn seq_comparison_is_antisymmetric(a in any::<u32>(), b in any::<u32>()) {
        prop_assert_eq!(before(a, b), after(b, a));
        if a.wrapping_sub(b) != 0x8000_0000 {
            prop_assert!(!(before(a, b) && before(b, a)));
        }
        prop_assert!(!before(a, a));
    }

    /// In-order transfers with any ISNs, segment sizes and window scales
    /// stay ESTABLISHED, with no INVALID or ignored packet.
    #[test]
    fn in_order_transfers_stay_established(
        c_isn in any::<u32>(), s_isn in any::<u32>(),
        ws in 0u8..=14,
        sizes in proptest::collection::vec(1usize..1461, 1..60),
        fam in family(),
    ) {
        let mut f = Flow::new(fam);
        let o = wscale(ws);
        let ok = |v: conntrack::Verdict| !is_invalid(&v) && v.ignored.is_none();
        prop_assert!(ok(f.c(SYN, c_isn, 0, 65535, &o, 0)));
        prop_assert!(ok(f.s(SYN | ACK, s_isn, c_isn.wrapping_add(1), 65535, &o, 0)));
        let (mut c, mut s) = (c_isn.wrapping_add(1), s_isn.wrapping_add(1));
        let win = 65535u16 >> ws.min(15);
        let win = win.max(1);
        prop_assert!(ok(f.c(ACK, c, s, win, &[], 0)));
        prop_assert!(ok(f.s(ACK, s, c, win, &[], 0)));
        for (i, &n) in sizes.iter().enumerate() {
            let n = n.min((win as usize) << ws).max(1);
            if i % 2 == 0 {
                let v = f.c(PSH | ACK, c, s, win, &[], n);
                prop_assert!(ok(v), "client segment {}: {:?}", i, v);
                c = c.wrapping_add(n as u32);
                prop_assert!(ok(f.s(ACK, s, c, win, &[], 0)));
            } else {
                let v = f.s(PSH | ACK, s, c, win, &[], n);
                prop_assert!(ok(v), "server segment {}: {:?}", i, v);
                s = s.wrapping_add(n as u32);
                prop_assert!(ok(f.c(ACK, c, s, win, &[], 0)));
            }
        }
        prop_assert_eq!(f.state(), Some(TcpState::Established));
    }

    /// Many UDP flows and clock steps in a small table: consistent, never
    /// over capacity, every packet classified.
    #[test]
    fn small_table_stays_consistent(ops in proptest::collection::vec((0u16..40, any::<bool>(), 0u32..5000), 1..200)) {
        let cfg = Config::default();
        let mut t = HostTable::new(8, KEY);
        let mut now = 0u64;
        for (port, reply, step) in ops {
            now += step as u64;
            let (a, b) = (ep4([10, 0, 0, 1], 1000 + port), ep4([10, 0, 0, 2], 53));
            let p = if reply { udp(Family::Ipv4, &b, &a, 1) } else { udp(Family::Ipv4, &a, &b, 1) };
            let v = process(&mut t, &p, Family::Ipv4, now, &cfg);
            prop_assert!(matches!(v.verdict.class, Class::New | Class::Established | Class::Invalid(_)));
            prop_assert!(t.len() <= 8);
            t.check_consistency().unwrap();
            t.expire(now, 3);
            t.check_consistency().unwrap();
        }
    }
}

/// One step of a random mixed sequence.
#[derive(Debug, Clone)]
enum Step {
    Tcp {
        from_client: bool,
        pair: u8,
        flags: u8,
        seq: u32,
        ack: u32,
        win: u16,
        len: u16,
        wscale: Option<u8>,
    },
    Udp {
        from_client: bool,
        pair: u8,
    },
    Echo {
        from_client: bool,
        pair: u8,
        reply: bool,
    },
    ErrorAbout {
        pair: u8,
    },
    Clock(u32),
    Expire(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let base = prop_oneof![Just(0u32), Just(0xFFFF_FF00), Just(0x7FFF_FFF0)];
    prop_oneof![
        4 => (any::<bool>(), 0u8..3, any::<u8>(), base.clone(), 0u32..70_000, 0u32..70_000, any::<u16>(), 0u16..3000, proptest::option::of(0u8..16))
            .prop_map(|(from_client, pair, flags, b, s, a, win, len, wscale)| Step::Tcp {
                from_client, pair, flags, seq: b.wrapping_add(s), ack: b.wrapping_add(a), win, len, wscale,
            }),
        1 => (any::<bool>(), 0u8..3).prop_map(|(from_client, pair)| Step::Udp { from_client, pair }),
        1 => (any::<bool>(), 0u8..3, any::<bool>()).prop_map(|(from_client, pair, reply)| Step::Echo { from_client, pair, reply }),
        1 => (0u8..3).prop_map(|pair| Step::ErrorAbout { pair }),
        1 => (0u32..200_000).prop_map(Step::Clock),
        1 => any::<u8>().prop_map(Step::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The fuzz target's idea as a property test that CI runs: random
    /// TCP / UDP / ICMP sequences between a few endpoints, clock steps and
    /// expiry on a table of 4 entries; nothing panics, the table stays
    /// consistent and never exceeds its capacity.
    #[test]
    fn random_sequences_keep_the_table_consistent(
        fam in family(),
        loose in any::<bool>(),
        liberal in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let cfg = Config { tcp_loose: loose, tcp_be_liberal: liberal, ..Config::default() };
        let mut t = HostTable::new(4, KEY);
        let mut now = u32::MAX as u64 - 50_000;
        let eps = |pair: u8| match fam {
            Family::Ipv4 => (ep4([10, 0, 0, 1], 1000 + pair as u16), ep4([10, 0, 0, 2 + pair], 80)),
            Family::Ipv6 => (ep6(1, 1000 + pair as u16), ep6(2 + pair, 80)),
        };
        let mut last: Vec<Vec<u8>> = Vec::new();
        for s in steps {
            let pkt = match s {
                Step::Tcp { from_client, pair, flags, seq, ack, win, len, wscale: ws } => {
                    let (c, sv) = eps(pair);
                    let (a, b) = if from_client { (c, sv) } else { (sv, c) };
                    let o = ws.map(wscale).unwrap_or_default();
                    Some(tcp(fam, &a, &b, flags, seq, ack, win, &o, len as usize))
                }
                Step::Udp { from_client, pair } => {
                    let (c, sv) = eps(pair);
                    Some(if from_client { udp(fam, &c, &sv, 10) } else { udp(fam, &sv, &c, 10) })
                }
                Step::Echo { from_client, pair, reply } => {
                    let (c, sv) = eps(pair);
                    Some(if from_client { echo(fam, &c, &sv, reply, 7, 1) } else { echo(fam, &sv, &c, reply, 7, 1) })
                }
                Step::ErrorAbout { pair } => last.last().map(|q| {
                    let (c, sv) = eps(pair);
                    let hl = if fam == Family::Ipv4 { 20 } else { 40 };
                    let ty = if fam == Family::Ipv4 { 3 } else { 1 };
                    icmp(fam, &sv, &c, ty, 1, [0; 4], &q[..(hl + 8).min(q.len())])
                }),
                Step::Clock(ms) => { now += ms as u64; None }
                Step::Expire(n) => { t.expire(now, n as usize); None }
            };
            if let Some(p) = pkt {
                let before = t.len();
                let v = process(&mut t, &p, fam, now, &cfg);
                if let Some(h) = v.conn {
                    // A packet that ended its connection still names it
                    // (for NAT), though the host table has let it go.
                    prop_assert!(t.get(h).is_some() || t.len() + 1 == before,
                        "a returned handle is live unless the packet removed it");
                }
                last.push(p);
            }
            prop_assert!(t.len() <= 4);
            if let Err(e) = t.check_consistency() {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
