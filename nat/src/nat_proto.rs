//! Packet rewriting for NAT, with incremental checksums.
//!
//! Corresponds to `net/netfilter/nf_nat_proto.c`: `nf_nat_ipv4_manip_pkt`,
//! `nf_nat_ipv6_manip_pkt`, the per-protocol `*_manip_pkt` (TCP, UDP,
//! UDP-Lite, ICMP, ICMPv6), `nf_csum_update` (the pseudo-header part) and
//! `nf_nat_icmp_reply_translation` / `nf_nat_icmpv6_reply_translation`
//! (ICMP errors: the embedded header and the outer one).
//!
//! Buffers start at the IP header. Checksums are updated incrementally
//! (RFC 1624) with `conntrack::checksum`; [`CsumMode::Partial`] is the
//! kernel's `CHECKSUM_PARTIAL`: the L4 checksum field then holds the
//! pseudo-header sum the hardware finishes, so only address changes touch
//! it. An IPv4 UDP checksum of zero ("none") stays zero; a computed zero is
//! written as `0xffff` (`CSUM_MANGLED_0`).

use conntrack::checksum;
use conntrack::Direction;

use crate::nat_core::{addr_bytes, Binding, Endpoint, ManipType};
use crate::rule::proto;

/// How the L4 checksum is maintained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CsumMode {
    /// The checksum field is complete: update it for every change.
    Full,
    /// The hardware will finish the L4 checksum (`CHECKSUM_PARTIAL`): the
    /// field holds the pseudo-header sum; update only its address part.
    Partial,
}

/// Why a packet could not be rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RewriteError {
    /// Shorter than its headers say.
    Truncated,
    /// Not IPv4 or IPv6, or a header length that makes no sense.
    Malformed,
    /// The endpoint is of another family than the packet.
    FamilyMismatch,
    /// Not an ICMP error, or one whose embedded packet cannot be read.
    NotIcmpError,
}

impl core::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RewriteError::Truncated => "packet truncated",
            RewriteError::Malformed => "malformed IP header",
            RewriteError::FamilyMismatch => "address of another family",
            RewriteError::NotIcmpError => "not a readable ICMP error",
        })
    }
}

fn get16(p: &[u8], at: usize) -> Result<u16, RewriteError> {
    match p.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(RewriteError::Truncated),
    }
}

fn put16(p: &mut [u8], at: usize, v: u16) -> Result<(), RewriteError> {
    p.get_mut(at..at + 2)
        .ok_or(RewriteError::Truncated)?
        .copy_from_slice(&v.to_be_bytes());
    Ok(())
}

fn byte(p: &[u8], at: usize) -> Result<u8, RewriteError> {
    p.get(at).copied().ok_or(RewriteError::Truncated)
}

/// The parsed IP layer of a packet (or of an embedded one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpInfo {
    pub(crate) v6: bool,
    /// Offset of the L4 header.
    pub(crate) l4: usize,
    /// The L4 protocol.
    pub(crate) proto: u8,
    /// False for a non-first fragment (no L4 header here).
    pub(crate) has_l4: bool,
    /// Offset and length of the source address (the destination follows).
    pub(crate) addr_off: usize,
    pub(crate) addr_len: usize,
}

/// Reads the IP header at `off`.
pub(crate) fn ip_info(p: &[u8], off: usize) -> Result<IpInfo, RewriteError> {
    let v = byte(p, off)? >> 4;
    match v {
        4 => {
            let ihl = usize::from(byte(p, off)? & 0x0f) * 4;
            if ihl < 20 {
                return Err(RewriteError::Malformed);
            }
            if p.len() < off + ihl {
                return Err(RewriteError::Truncated);
            }
            let frag = get16(p, off + 6)? & 0x1fff;
            Ok(IpInfo {
                v6: false,
                l4: off + ihl,
                proto: byte(p, off + 9)?,
                has_l4: frag == 0,
                addr_off: off + 12,
                addr_len: 4,
            })
        }
        6 => {
            if p.len() < off + 40 {
                return Err(RewriteError::Truncated);
            }
            let mut next = byte(p, off + 6)?;
            let mut at = off + 40;
            let mut has_l4 = true;
            // Skip extension headers (`ipv6_skip_exthdr`), a bounded number.
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        let len = (usize::from(byte(p, at + 1)?) + 1) * 8;
                        next = byte(p, at)?;
                        at += len;
                    }
                    44 => {
                        if get16(p, at + 2)? & 0xfff8 != 0 {
                            has_l4 = false;
                        }
                        next = byte(p, at)?;
                        at += 8;
                    }
                    51 => {
                        let len = (usize::from(byte(p, at + 1)?) + 2) * 4;
                        next = byte(p, at)?;
                        at += len;
                    }
                    _ => break,
                }
            }
            Ok(IpInfo {
                v6: true,
                l4: at,
                proto: next,
                has_l4,
                addr_off: off + 8,
                addr_len: 16,
            })
        }
        _ => Err(RewriteError::Malformed),
    }
}

/// Updates a checksum field for a pseudo-header address change
/// (`nf_csum_update` / `inet_proto_csum_replace16(..., true)`).
fn pseudo_update(check: u16, old: &[u8], new: &[u8], mode: CsumMode) -> u16 {
    match mode {
        CsumMode::Full => checksum::update_bytes(check, old, new),
        // The field holds the un-complemented pseudo-header sum.
        CsumMode::Partial => checksum::add(
            checksum::add(check, !checksum::data(old)),
            checksum::data(new),
        ),
    }
}

/// Updates a checksum field for a change in covered data (not in the
/// pseudo-header): nothing to do when the hardware finishes it.
fn data_update(check: u16, old: u16, new: u16, mode: CsumMode) -> u16 {
    match mode {
        CsumMode::Full => checksum::update16(check, old, new),
        CsumMode::Partial => check,
    }
}

const fn is_icmp_query(ty: u8) -> bool {
    // Echo, echo reply, timestamp(reply), info request(reply), address mask (reply).
    matches!(ty, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// The L4 part of a manip (`l4proto_manip_pkt`), before the address itself
/// changes. `avail_l4` is false when only the first 8 bytes of the L4
/// header may be relied on (an embedded packet).
#[allow(clippy::too_many_arguments)]
fn l4_manip(
    p: &mut [u8],
    ip: &IpInfo,
    manip: ManipType,
    old_addr: &[u8],
    new_addr: &[u8],
    port: u16,
    mode: CsumMode,
) -> Result<(), RewriteError> {
    if !ip.has_l4 {
        return Ok(());
    }
    let h = ip.l4;
    let port_at = match manip {
        ManipType::Src => h,
        ManipType::Dst => h + 2,
    };
    match ip.proto {
        proto::TCP | proto::DCCP => {
            let old_port = get16(p, port_at)?;
            let check_at = if ip.proto == proto::TCP {
                h + 16
            } else {
                h + 6
            };
            // An embedded header may be cut after 8 bytes: then the
            // checksum is not there to update.
            if p.len() >= check_at + 2 {
                let c = get16(p, check_at)?;
                let c = pseudo_update(c, old_addr, new_addr, mode);
                put16(p, check_at, data_update(c, old_port, port, mode))?;
            }
            put16(p, port_at, port)
        }
        proto::UDP | proto::UDPLITE => {
            let old_port = get16(p, port_at)?;
            let c = get16(p, h + 6)?;
            if c != 0 || ip.proto == proto::UDPLITE {
                let c = pseudo_update(c, old_addr, new_addr, mode);
                let c = data_update(c, old_port, port, mode);
                put16(p, h + 6, if c == 0 { 0xffff } else { c })?;
            }
            put16(p, port_at, port)
        }
        proto::ICMP if !ip.v6 => {
            if !is_icmp_query(byte(p, h)?) {
                return Ok(());
            }
            let old_id = get16(p, h + 4)?;
            let c = get16(p, h + 2)?;
            put16(p, h + 2, data_update(c, old_id, port, mode))?;
            put16(p, h + 4, port)
        }
        proto::ICMPV6 if ip.v6 => {
            let c = get16(p, h + 2)?;
            let mut c = pseudo_update(c, old_addr, new_addr, mode);
            let ty = byte(p, h)?;
            if ty == 128 || ty == 129 {
                let old_id = get16(p, h + 4)?;
                c = data_update(c, old_id, port, mode);
                put16(p, h + 4, port)?;
            }
            put16(p, h + 2, c)
        }
        _ => Ok(()),
    }
}

/// One manip of the packet whose IP header starts at `off`.
fn manip_at(
    p: &mut [u8],
    off: usize,
    manip: ManipType,
    to: &Endpoint,
    mode: CsumMode,
) -> Result<IpInfo, RewriteError> {
    let ip = ip_info(p, off)?;
    let new = addr_bytes(&to.addr);
    let new = new.get(..ip.addr_len).ok_or(RewriteError::Malformed)?;
    if to.addr.is_ipv6() != ip.v6 {
        return Err(RewriteError::FamilyMismatch);
    }
    let at = match manip {
        ManipType::Src => ip.addr_off,
        ManipType::Dst => ip.addr_off + ip.addr_len,
    };
    let mut old = [0u8; 16];
    let old = {
        let cur = p.get(at..at + ip.addr_len).ok_or(RewriteError::Truncated)?;
        let o = old.get_mut(..ip.addr_len).ok_or(RewriteError::Malformed)?;
        o.copy_from_slice(cur);
        &*o
    };
    l4_manip(p, &ip, manip, old, new, to.port, mode)?;
    if !ip.v6 {
        let c = get16(p, off + 10)?;
        put16(p, off + 10, checksum::update_bytes(c, old, new))?;
    }
    p.get_mut(at..at + ip.addr_len)
        .ok_or(RewriteError::Truncated)?
        .copy_from_slice(new);
    Ok(ip)
}

/// Rewrites the source or destination address and port (ICMP id) of the
/// packet in `pkt` to `to`, fixing the IPv4 header checksum and the L4
/// checksum (`nf_nat_ipv4_manip_pkt` / `nf_nat_ipv6_manip_pkt`).
pub fn manip_pkt(
    pkt: &mut [u8],
    manip: ManipType,
    to: &Endpoint,
    mode: CsumMode,
) -> Result<(), RewriteError> {
    manip_at(pkt, 0, manip, to, mode).map(|_| ())
}

/// Applies a connection's NAT to a packet of direction `dir` at a hook of
/// kind `manip` (`nf_nat_packet`). Returns whether anything changed.
pub fn nat_packet(
    pkt: &mut [u8],
    binding: &Binding,
    dir: Direction,
    manip: ManipType,
    mode: CsumMode,
) -> Result<bool, RewriteError> {
    match binding.manip(dir, manip) {
        None => Ok(false),
        Some(to) => manip_pkt(pkt, manip, &to, mode).map(|()| true),
    }
}

/// True when `pkt` is an ICMP or ICMPv6 error (it carries a packet).
pub fn is_icmp_error(pkt: &[u8]) -> bool {
    let Ok(ip) = ip_info(pkt, 0) else {
        return false;
    };
    let Some(&ty) = pkt.get(ip.l4) else {
        return false;
    };
    match (ip.v6, ip.proto) {
        (false, proto::ICMP) => matches!(ty, 3 | 4 | 5 | 11 | 12),
        (true, proto::ICMPV6) => ty < 128,
        _ => false,
    }
}

/// Rewrites an ICMP/ICMPv6 error related to a NATed connection, inside and
/// outside (`nf_nat_icmp_reply_translation`): the embedded packet (a packet
/// of the other direction) gets the opposite manip, its IP header checksum
/// and — when its L4 header is complete — its L4 checksum fixed; the ICMP
/// checksum is recomputed (unless the hardware finishes it); then the outer
/// header is rewritten like any packet of `dir`. Returns whether anything
/// changed (nothing when that side of the connection is not NATed).
pub fn icmp_error_translate(
    pkt: &mut [u8],
    binding: &Binding,
    dir: Direction,
    manip: ManipType,
    mode: CsumMode,
) -> Result<bool, RewriteError> {
    let Some(outer_to) = binding.manip(dir, manip) else {
        return Ok(false);
    };
    if !is_icmp_error(pkt) {
        return Err(RewriteError::NotIcmpError);
    }
    let outer = ip_info(pkt, 0)?;
    let inner_off = outer.l4 + 8;
    // The embedded packet travels the other way: it gets the opposite
    // manip, towards the other direction's tuple as it is (not inverted).
    let other = match dir {
        Direction::Original => binding.reply(),
        Direction::Reply => binding.original(),
    };
    let inner_manip = manip.opposite();
    let (addr, port) = match inner_manip {
        ManipType::Src => (&other.src, other.src_port),
        ManipType::Dst => (&other.dst, other.dst_port),
    };
    let port = if other.is_icmp() {
        other.src_port
    } else {
        port
    };
    let inner_to = Endpoint {
        addr: crate::nat_core::tuple_addr(other, addr),
        port,
    };
    manip_at(pkt, inner_off, inner_manip, &inner_to, mode).map_err(|e| match e {
        RewriteError::Truncated | RewriteError::Malformed => RewriteError::NotIcmpError,
        e => e,
    })?;
    if mode == CsumMode::Full {
        let h = outer.l4;
        put16(pkt, h + 2, 0)?;
        let body = pkt.get(h..).ok_or(RewriteError::Truncated)?;
        let mut sum = checksum::data(body);
        if outer.v6 {
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(pkt.get(8..24).ok_or(RewriteError::Truncated)?);
            dst.copy_from_slice(pkt.get(24..40).ok_or(RewriteError::Truncated)?);
            let len = u32::try_from(body.len()).map_err(|_| RewriteError::Malformed)?;
            sum = checksum::add(
                sum,
                checksum::pseudo_header_v6(&src, &dst, proto::ICMPV6, len),
            );
        }
        put16(pkt, h + 2, checksum::finish(sum))?;
    }
    manip_at(pkt, 0, manip, &outer_to, mode)?;
    Ok(true)
}
