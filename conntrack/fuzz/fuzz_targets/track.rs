//! Arbitrary packet sequences and clock steps through the all-in-one path
//! with a small host table: no panic, and the table stays consistent.
//!
//! The input is a list of operations. Raw-byte packets exercise the
//! parser; structured packets between a few endpoints (TCP with chosen
//! flags, sequence numbers, windows and options; UDP; ICMP echo and
//! errors quoting earlier packets) reach deep into the trackers.
//!
//! Every packet is also parsed from prefixes of itself: `parse_prefix`
//! must give a `Truncated` error or exactly `parse`'s result, and once a
//! prefix parses so do the longer ones. After each packet, the entry the
//! verdict names must match the packet's tuple in the verdict's direction
//! (read through `Table::with_conn_mut`'s key).
#![no_main]

use conntrack::conn::Config;
use conntrack::parse::ParseOptions;
use conntrack::table::{HostTable, Table};
use conntrack::{checksum, parse, parse_prefix, process, Class, Family, HashKey};
use libfuzzer_sys::fuzz_target;

/// `parse_prefix` against `parse` on prefixes of `p`: all lengths up to
/// 160 bytes (past the headers of most packets), the kernel glue's 384,
/// and a few more.
fn check_prefixes(p: &[u8], fam: Family) {
    let opts = ParseOptions::default();
    let full = parse(p, fam, &opts);
    let mut ks: Vec<usize> = (0..=p.len().min(160)).collect();
    ks.extend([384, p.len() / 2, p.len().saturating_sub(1), p.len()]);
    ks.retain(|&k| k <= p.len());
    ks.sort_unstable();
    ks.dedup();
    let mut parsed_at = None;
    for k in ks {
        let r = parse_prefix(&p[..k], fam, &opts);
        let Ok(f) = full else { continue };
        match r {
            Ok(x) => {
                assert_eq!(x, f, "prefix of {k} bytes");
                parsed_at.get_or_insert(k);
            }
            Err(e) => {
                assert!(e.is_truncated(), "prefix of {k} bytes: {e:?}");
                assert!(
                    parsed_at.is_none(),
                    "prefix of {k} bytes fails after {parsed_at:?}"
                );
            }
        }
    }
    if full.is_ok() {
        assert!(parsed_at.is_some());
    }
}

/// `process`, then the checks of the key of the entry it names.
fn process_checked(table: &mut HostTable, p: &[u8], fam: Family, now: u64, cfg: &Config) {
    check_prefixes(p, fam);
    let v = process(table, p, fam, now, cfg);
    let Some(h) = v.conn else { return };
    if matches!(v.verdict.class, Class::Related) {
        return;
    }
    let Ok(info) = parse(p, fam, &cfg.parse) else {
        panic!("a packet that does not parse has a connection")
    };
    let ok = table.with_conn_mut(h, |key, _| key.matches(v.verdict.dir, &info.tuple));
    assert_eq!(ok, Some(true), "the entry does not match the packet");
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn addr(fam: Family, i: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    match fam {
        Family::Ipv4 => a[..4].copy_from_slice(&[10, 0, 0, 1 + (i & 3)]),
        Family::Ipv6 => {
            a[0] = 0x20;
            a[1] = 0x01;
            a[15] = 1 + (i & 3);
        }
    }
    a
}

fn ip(fam: Family, src: &[u8; 16], dst: &[u8; 16], proto: u8, l4: &[u8]) -> Vec<u8> {
    match fam {
        Family::Ipv4 => {
            let total = (20 + l4.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&src[..4]);
            h.extend_from_slice(&dst[..4]);
            let c = checksum::finish(checksum::data(&h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(l4);
            h
        }
        Family::Ipv6 => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(src);
            h.extend_from_slice(dst);
            h.extend_from_slice(l4);
            h
        }
    }
}

fn structured(inp: &mut Input<'_>, fam: Family, history: &[Vec<u8>]) -> Option<Vec<u8>> {
    let kind = inp.u8()?;
    let ends = inp.u8()?;
    let (s, d) = (addr(fam, ends), addr(fam, ends >> 2));
    let sport = 1000 + (ends >> 4 & 1) as u16;
    let dport = 80 + (ends >> 5 & 1) as u16;
    match kind % 4 {
        0 | 1 => {
            let flags = inp.u8()?;
            // Sequence numbers near a few bases so that windows matter.
            let base = [0u32, 0xFFFF_FF00, 0x7FFF_FFF0, 1_000_000][(kind >> 2 & 3) as usize];
            let seq = base.wrapping_add(inp.u16()? as u32);
            let ack = base.wrapping_add(inp.u16()? as u32);
            let win = inp.u16()?;
            let nopt = (inp.u8()? % 41) as usize;
            let opts = inp.bytes(nopt).to_vec();
            let plen = inp.u16()? as usize % 3000;
            let mut o = opts;
            while o.len() % 4 != 0 {
                o.push(0);
            }
            let hl = 20 + o.len();
            let mut t = Vec::new();
            t.extend_from_slice(&sport.to_be_bytes());
            t.extend_from_slice(&dport.to_be_bytes());
            t.extend_from_slice(&seq.to_be_bytes());
            t.extend_from_slice(&ack.to_be_bytes());
            t.push(((hl / 4) as u8) << 4);
            t.push(flags);
            t.extend_from_slice(&win.to_be_bytes());
            t.extend_from_slice(&[0, 0, 0, 0]);
            t.extend_from_slice(&o);
            t.resize(hl + plen, 0);
            Some(ip(fam, &s, &d, 6, &t))
        }
        2 => {
            let plen = inp.u8()? as usize;
            let mut u = Vec::new();
            u.extend_from_slice(&sport.to_be_bytes());
            u.extend_from_slice(&dport.to_be_bytes());
            u.extend_from_slice(&((8 + plen) as u16).to_be_bytes());
            u.extend_from_slice(&[0, 0]);
            u.resize(8 + plen, 0);
            Some(ip(fam, &s, &d, 17, &u))
        }
        _ => {
            let ty = inp.u8()?;
            let code = inp.u8()? & 3;
            let rest = inp.u32()?;
            let mut m = vec![ty, code, 0, 0];
            m.extend_from_slice(&rest.to_be_bytes());
            // Errors quote an earlier packet (possibly cut short).
            if let Some(q) = history.get(inp.u8()? as usize % history.len().max(1)) {
                let cut = inp.u8()? as usize;
                m.extend_from_slice(&q[..cut.min(q.len())]);
            }
            let proto = if fam == Family::Ipv4 { 1 } else { 58 };
            Some(ip(fam, &s, &d, proto, &m))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let cfg_flags = inp.u8().unwrap_or(0);
    let cfg = Config {
        tcp_loose: cfg_flags & 1 == 0,
        tcp_be_liberal: cfg_flags & 2 != 0,
        tcp_ignore_invalid_rst: cfg_flags & 4 != 0,
        ..Config::default()
    };
    let mut table = HostTable::new(8, HashKey { k0: 1, k1: 2 });
    // Start near the 32-bit wrap of the millisecond clock.
    let mut now: u64 = u32::MAX as u64 - 100_000;
    let mut history: Vec<Vec<u8>> = Vec::new();
    while let Some(op) = inp.u8() {
        let fam = if op & 0x80 == 0 {
            Family::Ipv4
        } else {
            Family::Ipv6
        };
        match op & 0x7f {
            0..=9 => {
                let len = inp.u16().unwrap_or(0) as usize % 1600;
                let p = inp.bytes(len).to_vec();
                process_checked(&mut table, &p, fam, now, &cfg);
            }
            10..=99 => {
                if let Some(p) = structured(&mut inp, fam, &history) {
                    process_checked(&mut table, &p, fam, now, &cfg);
                    if history.len() < 16 {
                        history.push(p);
                    }
                }
            }
            100..=119 => now += inp.u32().unwrap_or(0) as u64 % 600_000,
            _ => {
                let budget = inp.u8().unwrap_or(0) as usize;
                let _ = table.expire(now, budget);
            }
        }
        if let Err(e) = table.check_consistency() {
            panic!("table inconsistent: {e}");
        }
    }
});
