//! Checksum verification before tracking (`track_verified`): a packet
//! with a bad L4 checksum at PRE_ROUTING is INVALID and changes nothing,
//! as nf_conntrack's `tcp_error()`, `udp_error()`, `icmp_error()` and
//! `icmpv6_error()` make it.

mod common;
use common::*;
use conntrack::parse::{FragmentStatus, ParseOptions};
use conntrack::proto::tcp::TcpState;
use conntrack::{
    parse, track_verified, Class, Family, Hook, InvalidReason, L4Checksum, ParseError, Processed,
    Table, Verdict,
};

const BAD: Class = Class::Invalid(InvalidReason::Malformed(ParseError::BadChecksum));

/// The packet's IP header length (IPv4 without options, IPv6 without
/// extension headers, as the builders make them).
fn l4_offset(family: Family) -> u16 {
    match family {
        Family::Ipv4 => 20,
        Family::Ipv6 => 40,
    }
}

/// Flips a bit of the L4 checksum field at `field` (offset in the L4
/// header).
fn corrupt(p: &mut [u8], family: Family, field: usize) {
    p[usize::from(l4_offset(family)) + field] ^= 0x10;
}

impl Flow {
    /// Tracks `p` at `hook` through `track_verified`, checking the
    /// checksum on the bytes as the kernel's `nf_checksum()` would.
    fn at(&mut self, hook: Hook, p: &[u8]) -> Verdict {
        let info = parse(p, self.family, &ParseOptions::default()).unwrap();
        let fam = self.family;
        let r: Processed<_> = track_verified(
            &mut self.table,
            &info,
            hook,
            self.now,
            &self.cfg,
            |c: L4Checksum| c.verify(p, fam),
        );
        self.table.check_consistency().unwrap();
        r.verdict
    }

    fn established(&mut self) {
        let o = opts(&[mss(1460), sack_perm(), wscale(7)]);
        assert_ok(&self.c(SYN, 100, 0, 65535, &o, 0));
        assert_ok(&self.s(SYN | ACK, 9000, 101, 65535, &o, 0));
        assert_ok(&self.c(ACK, 101, 9001, 512, &[], 0));
        assert_ok(&self.c(PSH | ACK, 101, 9001, 512, &[], 100));
        assert_ok(&self.s(ACK, 9001, 201, 512, &[], 0));
        assert_eq!(self.state(), Some(TcpState::Established));
    }

    /// An in-window RST from the server (SEQ is exactly what the client
    /// expects next).
    fn rst(&self) -> Vec<u8> {
        tcp(
            self.family,
            &self.server,
            &self.client,
            RST | ACK,
            9001,
            201,
            0,
            &[],
            0,
        )
    }
}

#[test]
fn bad_rst_leaves_the_connection_as_it_was() {
    for fam in [Family::Ipv4, Family::Ipv6] {
        let mut f = Flow::new(fam);
        f.established();
        let before = f.conn().unwrap().clone();
        let mut rst = f.rst();
        corrupt(&mut rst, fam, 16);
        f.advance(1000);
        let v = f.at(Hook::Prerouting, &rst);
        assert_eq!(v.class, BAD, "{fam:?}");
        assert_eq!(v.ignored, None);
        // Nothing moved: state, timeout, counters, the whole record.
        assert_eq!(f.table.len(), 1);
        assert_eq!(f.conn().unwrap(), &before, "{fam:?}");
        // The same RST with its checksum right ends the connection.
        let good = f.rst();
        assert_ok(&f.at(Hook::Prerouting, &good));
        assert_eq!(f.state(), Some(TcpState::Close), "{fam:?}");
    }
}

#[test]
fn checksum_off_tracks_the_bad_rst() {
    for fam in [Family::Ipv4, Family::Ipv6] {
        let mut f = Flow::new(fam);
        f.cfg.checksum = false;
        f.established();
        let mut rst = f.rst();
        corrupt(&mut rst, fam, 16);
        assert_ok(&f.at(Hook::Prerouting, &rst));
        assert_eq!(f.state(), Some(TcpState::Close), "{fam:?}");
    }
}

#[test]
fn only_prerouting_verifies() {
    // LOCAL_OUT (and any later hook): the checksum is the stack's own or
    // the device's to fill, as Linux assumes.
    for fam in [Family::Ipv4, Family::Ipv6] {
        let mut f = Flow::new(fam);
        f.established();
        let mut rst = f.rst();
        corrupt(&mut rst, fam, 16);
        assert_ok(&f.at(Hook::Output, &rst));
        assert_eq!(f.state(), Some(TcpState::Close), "{fam:?}");
    }
}

#[test]
fn bad_first_packets_create_nothing() {
    for fam in [Family::Ipv4, Family::Ipv6] {
        let mut f = Flow::new(fam);
        let mut syn = tcp(fam, &f.client, &f.server, SYN, 1, 0, 100, &[], 0);
        corrupt(&mut syn, fam, 16);
        assert_eq!(f.at(Hook::Prerouting, &syn).class, BAD);
        let mut u = udp(fam, &f.client, &f.server, 10);
        corrupt(&mut u, fam, 6);
        assert_eq!(f.at(Hook::Prerouting, &u).class, BAD);
        let mut e = echo(fam, &f.client, &f.server, false, 7, 1);
        corrupt(&mut e, fam, 2);
        assert_eq!(f.at(Hook::Prerouting, &e).class, BAD);
        assert_eq!(f.table.len(), 0, "{fam:?}");
        // A bad checksum outranks the flags check (`tcp_error()`'s order).
        let mut xmas = tcp(fam, &f.client, &f.server, SYN | FIN | RST, 1, 0, 1, &[], 0);
        corrupt(&mut xmas, fam, 16);
        assert_eq!(f.at(Hook::Prerouting, &xmas).class, BAD);
        // And the untracked ICMPv6 types (`icmpv6_error()`): a neighbour
        // solicitation with a bad checksum is INVALID, not UNTRACKED.
        if fam == Family::Ipv6 {
            let mut ns = icmp(fam, &f.client, &f.server, 135, 0, [0; 4], &[0; 16]);
            let ok = f.at(Hook::Prerouting, &ns);
            assert_eq!(ok.class, Class::Untracked);
            corrupt(&mut ns, fam, 2);
            assert_eq!(f.at(Hook::Prerouting, &ns).class, BAD);
        }
        // Good ones are tracked.
        let u = udp(fam, &f.client, &f.server, 10);
        assert_eq!(f.at(Hook::Prerouting, &u).class, Class::New);
        assert_eq!(f.table.len(), 1);
    }
}

#[test]
fn udp_without_checksum_is_not_verified() {
    // `udp_error()`: a zero checksum field means none, in either family
    // (Linux 6.12 lets IPv6 through too; the IPv6 stack drops it later).
    for fam in [Family::Ipv4, Family::Ipv6] {
        let f = Flow::new(fam);
        let mut u = udp(fam, &f.client, &f.server, 10);
        let o = usize::from(l4_offset(fam));
        u[o + 6] = 0;
        u[o + 7] = 0;
        let info = parse(&u, fam, &ParseOptions::default()).unwrap();
        assert_eq!(info.checksum, None);
        let mut f = f;
        let v = f.at(Hook::Prerouting, &u);
        assert_eq!(v.class, Class::New, "{fam:?}");
    }
}

#[test]
fn what_is_verified_and_where() {
    for fam in [Family::Ipv4, Family::Ipv6] {
        let f = Flow::new(fam);
        let (icmp_proto, off) = match fam {
            Family::Ipv4 => (1, 20),
            Family::Ipv6 => (58, 40),
        };
        for (p, proto) in [
            (tcp(fam, &f.client, &f.server, SYN, 1, 0, 9, &[], 0), 6),
            (udp(fam, &f.client, &f.server, 3), 17),
            (echo(fam, &f.client, &f.server, false, 1, 1), icmp_proto),
        ] {
            let info = parse(&p, fam, &ParseOptions::default()).unwrap();
            let c = info.checksum.unwrap();
            assert_eq!(c, L4Checksum { offset: off, proto });
            assert!(c.verify(&p, fam));
            // The host check agrees with the whole-packet parser's.
            let verify = ParseOptions {
                verify_checksums: true,
                ..Default::default()
            };
            for i in off as usize..p.len() {
                let mut q = p.clone();
                q[i] ^= 0x01;
                let parsed = parse(&q, fam, &verify);
                assert_eq!(
                    c.verify(&q, fam),
                    parsed.is_ok(),
                    "{fam:?} proto {proto} byte {i}: {parsed:?}"
                );
            }
            // A packet shorter than its header says fails.
            assert!(!c.verify(&p[..p.len() - 1], fam));
        }
        // Other protocols are not verified (the generic tracker).
        let mut gre = udp(fam, &f.client, &f.server, 3);
        match fam {
            Family::Ipv4 => {
                gre[9] = 47;
                let c = conntrack::checksum::finish(conntrack::checksum::data(&{
                    let mut h = gre[..20].to_vec();
                    h[10] = 0;
                    h[11] = 0;
                    h
                }));
                gre[10..12].copy_from_slice(&c.to_be_bytes());
            }
            Family::Ipv6 => gre[6] = 47,
        }
        let info = parse(&gre, fam, &ParseOptions::default()).unwrap();
        assert_eq!(info.checksum, None);
    }
}

#[test]
fn first_fragments_are_verified() {
    // nf_conntrack's `*_error()` sum what the skb holds: a first fragment
    // that reaches conntrack (one `nf_ct_frag6_gather()` handed on, being
    // unaligned) fails at PRE_ROUTING, its checksum covering bytes it
    // lacks. Where Linux verifies nothing, it is tracked.
    for family in [Family::Ipv4, Family::Ipv6] {
        let mut f = Flow::new(family);
        let p = tcp(family, &f.client, &f.server, SYN, 1, 0, 9, &[], 40);
        let frag = first_fragment(&p, family, 24);
        let info = parse(&frag, family, &ParseOptions::default()).unwrap();
        assert_eq!(info.fragment, FragmentStatus::First);
        let offset = if family == Family::Ipv4 { 20 } else { 48 };
        assert_eq!(info.checksum, Some(L4Checksum { offset, proto: 6 }));
        assert!(!L4Checksum { offset, proto: 6 }.verify(&frag, family));
        assert_eq!(f.at(Hook::Prerouting, &frag).class, BAD);
        assert!(f.conn().is_none(), "{family:?}: nothing created");
        // The whole parse, asked to verify, says the same.
        let verify = ParseOptions {
            verify_checksums: true,
            ..ParseOptions::default()
        };
        assert_eq!(parse(&frag, family, &verify), Err(ParseError::BadChecksum));
        f.cfg.checksum = false;
        assert_eq!(f.at(Hook::Prerouting, &frag).class, Class::New);
    }
    // At LOCAL_OUT nothing is verified: an IPv6 first fragment is tracked
    // (an IPv4 one is not tracked at all there: `malformed.rs`).
    let mut f = Flow::new(Family::Ipv6);
    let p = tcp(Family::Ipv6, &f.client, &f.server, SYN, 1, 0, 9, &[], 40);
    let frag = first_fragment(&p, Family::Ipv6, 24);
    assert_eq!(f.at(Hook::Output, &frag).class, Class::New);
}
