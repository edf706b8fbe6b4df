//! The decisions behind selftests/rfw_malformed.sh's matrix, where rfw
//! must call a packet what nf_conntrack (Linux 6.12) calls it: tracked or
//! INVALID. One test per case the matrix once found rfw deciding
//! otherwise, named after it, each citing the kernel function that
//! decides. The kernel glue parses with the skb's length
//! (`parse_prefix_len(.., Some(skb_len))`), so the length cases go
//! through that.

mod common;
use common::*;
use conntrack::parse::{parse_any, parse_prefix_len, FragmentStatus, L4Info, ParseOptions};
use conntrack::table::{HostTable, Table};
use conntrack::wire::Error as WireError;
use conntrack::{
    parse, process, track, track_verified, Class, Config, Direction, Family, Hook, InvalidReason,
    L4Checksum, PacketInfo, ParseError,
};

fn eps(family: Family) -> (Ep, Ep) {
    match family {
        Family::Ipv4 => (ep4([10, 0, 1, 2], 20007), ep4([10, 0, 2, 2], 30007)),
        Family::Ipv6 => (ep6(2, 20007), ep6(0x22, 30007)),
    }
}

fn ip_hl(family: Family) -> usize {
    match family {
        Family::Ipv4 => 20,
        Family::Ipv6 => 40,
    }
}

fn malformed(e: ParseError) -> Class {
    Class::Invalid(InvalidReason::Malformed(e))
}

/// The kernel glue's parse: a prefix of at most 384 bytes and the skb's
/// length (`kmod/pkt/meta.rs`).
fn glue(p: &[u8], family: Family) -> Result<PacketInfo, ParseError> {
    let opts = ParseOptions::default();
    parse_prefix_len(&p[..p.len().min(384)], family, &opts, Some(p.len() as u32))
}

/// Tracks what the glue parsed at `hook` in `t`, checking a checksum on
/// the bytes as `nf_checksum()` would.
fn at(t: &mut HostTable, hook: Hook, p: &[u8], family: Family, cfg: &Config) -> Class {
    let info = glue(p, family).unwrap_or_else(|e| panic!("{family:?} at {hook:?}: {e}"));
    track_verified(t, &info, hook, 0, cfg, |c: L4Checksum| c.verify(p, family))
        .verdict
        .class
}

/// An IPv6 packet: fixed header with next header `nh` and payload length
/// `plen` (`None`: the payload's), then `payload`.
fn v6(nh: u8, plen: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let (a, b) = eps(Family::Ipv6);
    let mut p = vec![0x60, 0, 0, 0];
    let plen = plen.unwrap_or(payload.len() as u16);
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[nh, 64]);
    p.extend_from_slice(&a.addr);
    p.extend_from_slice(&b.addr);
    p.extend_from_slice(payload);
    p
}

/// The UDP datagram (header and 8 bytes of data) of [`eps`], from its
/// IPv6 packet.
fn udp6() -> Vec<u8> {
    let (a, b) = eps(Family::Ipv6);
    udp(Family::Ipv6, &a, &b, 8)[40..].to_vec()
}

/// An 8-byte options header (hop-by-hop or destination) naming `next`,
/// one PadN.
fn opts8(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0]
}

fn udp_ports(info: &PacketInfo) -> (u16, u16) {
    assert!(matches!(info.l4, L4Info::Udp { .. }), "{:?}", info.l4);
    (info.tuple.src_port, info.tuple.dst_port)
}

/// `icmp_err_quote_ports_only`: an ICMP error quoting the 4 port bytes of
/// the L4 header is RELATED: `nf_conntrack_inet_error()` ->
/// `nf_ct_get_tuplepr()` -> `nf_ct_get_tuple_ports()` reads only them.
/// Fewer is an unusable quote.
#[test]
fn icmp_err_quote_ports_only() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let h = ip_hl(family);
        let ty = if family == Family::Ipv4 { 3 } else { 1 };
        let code = if family == Family::Ipv4 { 3 } else { 4 };
        for (proto, setup, reply) in [
            (17, udp(family, &a, &b, 5), udp(family, &b, &a, 5)),
            (
                6,
                tcp(family, &a, &b, SYN, 1, 0, 1000, &[], 0),
                tcp(family, &b, &a, SYN | ACK, 9, 2, 1000, &[], 0),
            ),
        ] {
            let cfg = Config::default();
            let mut t = HostTable::new(16, KEY);
            assert_eq!(
                process(&mut t, &setup, family, 0, &cfg).verdict.class,
                Class::New
            );
            // An error from a to b about what b sent to a, quoting the
            // IP header and the ports.
            let e = icmp(family, &a, &b, ty, code, [0; 4], &reply[..h + 4]);
            let v = process(&mut t, &e, family, 0, &cfg).verdict;
            assert_eq!(
                (v.class, v.dir),
                (Class::Related, Direction::Original),
                "{family:?} proto {proto}"
            );
            assert_eq!(glue(&e, family), parse(&e, family, &cfg.parse));
            // Three bytes do not hold the ports.
            let e = icmp(family, &a, &b, ty, code, [0; 4], &reply[..h + 3]);
            assert_eq!(
                process(&mut t, &e, family, 0, &cfg).verdict.class,
                malformed(ParseError::IcmpInner)
            );
        }
    }
}

/// The version nibble of a quoted packet is not read either: the quote is
/// parsed as the outer packet's family (`nf_ct_get_tuplepr()` with
/// `state->pf`, `ipv4_get_l4proto()`).
#[test]
fn icmp_err_quote_any_version() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let cfg = Config::default();
        let mut t = HostTable::new(16, KEY);
        process(&mut t, &udp(family, &a, &b, 5), family, 0, &cfg);
        let mut reply = udp(family, &b, &a, 5);
        reply[0] = (reply[0] & 0x0f) | 0x50;
        let ty = if family == Family::Ipv4 { 3 } else { 1 };
        let e = icmp(family, &a, &b, ty, 3, [0; 4], &reply);
        assert_eq!(
            process(&mut t, &e, family, 0, &cfg).verdict.class,
            Class::Related,
            "{family:?}"
        );
    }
}

/// `frag_unaligned`: `nf_ct_frag6_queue()` refuses a non-last fragment
/// whose end is not a multiple of 8 with `-EPROTO`, and
/// `nf_ct_frag6_gather()` hands it on untouched (`ipv6_defrag()`:
/// `NF_ACCEPT`). Conntrack then meets a first fragment of a UDP datagram:
/// `udp_error()` finds the UDP length above the bytes there
/// ("truncated/malformed packet"): INVALID, nothing tracked. The ports
/// stay readable for rules.
#[test]
fn frag_unaligned() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let h = ip_hl(family);
        // The matrix's 24-byte datagram, its first 12 bytes.
        let d = udp(family, &a, &b, 16);
        let f = first_fragment(&d, family, 12);
        let info = glue(&f, family).unwrap();
        assert_eq!(info.fragment, FragmentStatus::First);
        assert_eq!(udp_ports(&info), (20007, 30007));
        assert_eq!(info.invalid, Some(ParseError::Udp(WireError::Truncated)));
        assert_eq!(parse(&f, family, &ParseOptions::default()), Ok(info));
        let cfg = Config::default();
        let mut t = HostTable::new(16, KEY);
        let want = malformed(ParseError::Udp(WireError::Truncated));
        for hook in [Hook::Prerouting, Hook::Output] {
            // (IPv4 at LOCAL_OUT: not tracked at all, see below.)
            if family == Family::Ipv4 && hook == Hook::Output {
                continue;
            }
            assert_eq!(at(&mut t, hook, &f, family, &cfg), want, "{family:?}");
        }
        assert_eq!(process(&mut t, &f, family, 0, &cfg).verdict.class, want);
        assert_eq!(track(&mut t, &info, 0, &cfg).verdict.class, want);
        assert_eq!(t.len(), 0, "{family:?}: nothing tracked");
        // A first fragment that holds its whole UDP datagram passes
        // `udp_error()`: tracked.
        let whole = first_fragment(&d, family, d.len() - h);
        assert_eq!(glue(&whole, family).unwrap().invalid, None);
        let mut cfg_off = cfg;
        cfg_off.checksum = false;
        assert_eq!(
            at(&mut t, Hook::Prerouting, &whole, family, &cfg_off),
            Class::New
        );
    }
}

/// `ipv4_conntrack_local()` does not track an IPv4 fragment at LOCAL_OUT
/// (one from an `IP_NODEFRAG` socket, the only kind defragmentation lets
/// through there): no conntrack, INVALID to the rules. IPv6's
/// `ipv6_conntrack_local()` has no such exception.
#[test]
fn ipv4_fragment_at_local_out() {
    let (a, b) = eps(Family::Ipv4);
    let p = tcp(Family::Ipv4, &a, &b, SYN, 1, 0, 1000, &[], 40);
    let f = first_fragment(&p, Family::Ipv4, 24);
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    assert_eq!(
        at(&mut t, Hook::Output, &f, Family::Ipv4, &cfg),
        malformed(ParseError::Fragment)
    );
    assert_eq!(t.len(), 0);
    // Not a fragment: tracked.
    assert_eq!(at(&mut t, Hook::Output, &p, Family::Ipv4, &cfg), Class::New);
    // IPv6 at LOCAL_OUT: tracked.
    let (a, b) = eps(Family::Ipv6);
    let p = tcp(Family::Ipv6, &a, &b, SYN, 1, 0, 1000, &[], 40);
    let f = first_fragment(&p, Family::Ipv6, 24);
    assert_eq!(at(&mut t, Hook::Output, &f, Family::Ipv6, &cfg), Class::New);
}

/// `ext_dstopts_40`: forty destination-options headers before UDP.
/// `ipv6_skip_exthdr()` has no bound, and the stack forwards and delivers
/// the packet: tracked.
#[test]
fn ext_dstopts_40() {
    let mut chain = Vec::new();
    for i in 0..40 {
        chain.extend(opts8(if i == 39 { 17 } else { 60 }));
    }
    chain.extend(udp6());
    let p = v6(60, None, &chain);
    assert!(p.len() <= 384, "within the glue's prefix");
    let info = glue(&p, Family::Ipv6).unwrap();
    assert_eq!(udp_ports(&info), (20007, 30007));
    let cfg = Config::default();
    let mut t = HostTable::new(16, KEY);
    assert_eq!(
        at(&mut t, Hook::Prerouting, &p, Family::Ipv6, &cfg),
        Class::New
    );
    assert_eq!(
        process(&mut t, &p, Family::Ipv6, 0, &cfg).verdict.class,
        Class::New
    );
}

/// `plen0_hbh`: payload length 0 with a hop-by-hop header (no jumbo
/// option). `ip6_rcv_core()` neither trims nor drops it (0 may be a
/// jumbogram's), nf_conntrack walks the skb's bytes (`skb->len`): the UDP
/// datagram behind is tracked. rfw takes the skb's length, not the field.
#[test]
fn plen0_hbh() {
    let mut payload = opts8(17);
    payload.extend(udp6());
    let p = v6(0, Some(0), &payload);
    let info = glue(&p, Family::Ipv6).unwrap();
    assert_eq!(udp_ports(&info), (20007, 30007));
    assert_eq!(info.ip_len, p.len() as u32);
    let cfg = Config::default();
    for hook in [Hook::Prerouting, Hook::Output] {
        let mut t = HostTable::new(16, KEY);
        assert_eq!(at(&mut t, hook, &p, Family::Ipv6, &cfg), Class::New);
    }
    // Going by the field (no skb length), the packet ends at the fixed
    // header: what rfw decided before.
    assert!(parse(&p, Family::Ipv6, &ParseOptions::default()).is_err());
}

/// `hbh_jumbo_small` at LOCAL_OUT: a raw socket's packet with a jumbo
/// option for a small packet and payload length 0. `ipv6_hop_jumbo()`
/// refuses it on input only; at LOCAL_OUT nf_conntrack goes by `skb->len`
/// and tracks the UDP datagram.
#[test]
fn hbh_jumbo_small() {
    let mut payload = vec![17, 0, 0xc2, 4, 0, 0, 0, 24];
    payload.extend(udp6());
    let p = v6(0, Some(0), &payload);
    let info = glue(&p, Family::Ipv6).unwrap();
    assert_eq!(udp_ports(&info), (20007, 30007));
    let mut t = HostTable::new(16, KEY);
    assert_eq!(
        at(&mut t, Hook::Output, &p, Family::Ipv6, &Config::default()),
        Class::New
    );
}

/// `plen0` at LOCAL_OUT: payload length 0, UDP next. On input
/// `ip6_rcv_core()` trims the skb to the fixed header (the UDP header is
/// then missing: INVALID on both sides); a raw socket's packet keeps its
/// bytes, and nf_conntrack tracks them.
#[test]
fn plen0() {
    let p = v6(17, Some(0), &udp6());
    let mut t = HostTable::new(16, KEY);
    let cfg = Config::default();
    assert_eq!(at(&mut t, Hook::Output, &p, Family::Ipv6, &cfg), Class::New);
    // The input path's skb: 40 bytes.
    assert_eq!(
        glue(&p[..40], Family::Ipv6),
        Err(ParseError::Udp(WireError::Truncated))
    );
}

/// `totlen_trunc_udp` at LOCAL_OUT (IPv6): payload length 4 before a
/// 16-byte datagram. `rawv6_send_hdrinc()` sends the field as written;
/// nf_conntrack's `udp_error()` measures `skb->len - dataoff` (16): tracked.
/// On input the skb is trimmed to the field (44 bytes) and the datagram is
/// truncated: INVALID.
#[test]
fn totlen_trunc_udp() {
    let p = v6(17, Some(4), &udp6());
    let mut t = HostTable::new(16, KEY);
    let cfg = Config::default();
    assert_eq!(at(&mut t, Hook::Output, &p, Family::Ipv6, &cfg), Class::New);
    assert_eq!(
        glue(&p[..44], Family::Ipv6),
        Err(ParseError::Udp(WireError::Truncated))
    );
}

/// `nonext`: next header 59. `ipv6_skip_exthdr()` returns -1 at "no next
/// header", so `ipv6_get_l4proto()` fails and `nf_conntrack_in()` leaves
/// the packet without a conntrack: INVALID (not a generic connection).
/// Also behind an extension header.
#[test]
fn nonext() {
    for p in [v6(59, None, &[]), v6(60, None, &opts8(59))] {
        assert_eq!(glue(&p, Family::Ipv6), Err(ParseError::NoNextHeader));
        let mut t = HostTable::new(16, KEY);
        assert_eq!(
            process(&mut t, &p, Family::Ipv6, 0, &Config::default())
                .verdict
                .class,
            malformed(ParseError::NoNextHeader)
        );
        assert_eq!(t.len(), 0);
    }
    assert_eq!(ParseError::NoNextHeader.name(), "no_next_header");
    assert!(!ParseError::NoNextHeader.is_truncated());
}

/// `bad_version` at LOCAL_OUT: a raw socket's IPv4 packet with version 5,
/// an IPv6 one with version 4. Neither `raw_send_hdrinc()` nor
/// `rawv6_send_hdrinc()` looks at the nibble, and nf_conntrack takes the
/// family from the hook (`ipv4_get_l4proto()`, `ipv6_get_l4proto()` read
/// no version): tracked. (On input `ip_rcv_core()` / `ipv6_rcv()` drop
/// them before PRE_ROUTING.)
#[test]
fn bad_version() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (a, b) = eps(family);
        let good = udp(family, &a, &b, 8);
        let mut p = good.clone();
        p[0] = (p[0] & 0x0f) | if family == Family::Ipv4 { 0x50 } else { 0x40 };
        let info = glue(&p, family).unwrap();
        assert_eq!(info.tuple, glue(&good, family).unwrap().tuple);
        let mut t = HostTable::new(16, KEY);
        assert_eq!(
            at(&mut t, Hook::Output, &p, family, &Config::default()),
            Class::New
        );
        // Where the nibble chooses the family, a wrong one is an error.
        if family == Family::Ipv4 {
            assert_eq!(
                parse_any(&p, &ParseOptions::default()),
                Err(ParseError::Ip(WireError::BadVersion))
            );
        }
    }
}
