//! Packet rewriting for NAT, with incremental checksums.
//!
//! Corresponds to `net/netfilter/nf_nat_proto.c`: `nf_nat_ipv4_manip_pkt`,
//! `nf_nat_ipv6_manip_pkt`, the per-protocol `*_manip_pkt` (TCP, UDP,
//! UDP-Lite, ICMP, ICMPv6), `nf_csum_update` (the pseudo-header part) and
//! `nf_nat_icmp_reply_translation` / `nf_nat_icmpv6_reply_translation`
//! (ICMP errors: the embedded header and the outer one).
//!
//! Buffers start at the IP header, read and written through the
//! `conntrack::wire` views (IPv6 extension headers crossed by
//! `wire::ipv6::walk_ext_headers`, within conntrack's bound). Checksums
//! are updated incrementally (RFC 1624) with `conntrack::checksum`; [`CsumMode::Partial`] is the
//! kernel's `CHECKSUM_PARTIAL`: the L4 checksum field then holds the
//! pseudo-header sum the hardware finishes, so only address changes touch
//! it. An IPv4 UDP checksum of zero ("none") stays zero; a computed zero is
//! written as `0xffff` (`CSUM_MANGLED_0`).

use core::net::IpAddr;

use conntrack::wire::{self, dccp, icmpv4, icmpv6, ipv4, ipv6, tcp, udp, IpProtocol};
use conntrack::{checksum, ipproto, Direction};

use crate::nat_core::{Binding, Endpoint, ManipType};

/// What a computed UDP checksum of zero is sent as (`CSUM_MANGLED_0`):
/// zero means "no checksum".
const CSUM_MANGLED_0: u16 = 0xffff;

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

impl From<wire::Error> for RewriteError {
    fn from(e: wire::Error) -> Self {
        match e {
            wire::Error::Truncated => RewriteError::Truncated,
            _ => RewriteError::Malformed,
        }
    }
}

/// Where the L4 header of a packet (or of an embedded one) is, as the
/// wire views find it.
#[derive(Clone, Copy, Debug)]
struct IpInfo {
    v6: bool,
    /// Offset of the L4 header.
    l4: usize,
    /// The L4 protocol.
    proto: IpProtocol,
    /// False for a non-first fragment (no L4 header here).
    has_l4: bool,
}

/// Reads the IP header at the start of `p`: IPv4 (the header, options
/// included, must be there) or IPv6 (the extension headers are crossed
/// by [`ipv6::walk_ext_headers`], as `ipv6_skip_exthdr` does for
/// `nf_nat_ipv6_manip_pkt`).
fn ip_info(p: &[u8]) -> Result<IpInfo, RewriteError> {
    match wire::ip_version(p) {
        None => Err(RewriteError::Truncated),
        Some(ipv4::VERSION) => {
            let ip = ipv4::Packet::new_unchecked(p);
            // Only the header is read or written. A total length of 0 is
            // a BIG TCP GSO packet, whose length the parser took from the
            // skb (`conntrack::parse::parse_prefix_len`): the header must
            // still be whole.
            let total = match ip.total_len() {
                0 => usize::from(ip.header_len()),
                n => usize::from(n),
            };
            ip.check_header_len_with(total)?;
            Ok(IpInfo {
                v6: false,
                l4: usize::from(ip.header_len()),
                proto: ip.next_header(),
                has_l4: ip.frag_offset() == 0,
            })
        }
        Some(ipv6::VERSION) => {
            ipv6::Packet::new_unchecked(p).check_header_len()?;
            let ul = ipv6::walk_ext_headers(p, ipv6::MAX_EXT_HEADERS)?;
            Ok(IpInfo {
                v6: true,
                l4: ul.offset,
                proto: ul.protocol,
                has_l4: ul.fragment.is_none_or(|f| f.offset == 0),
            })
        }
        Some(_) => Err(RewriteError::Malformed),
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

/// The L4 part of a manip (`l4proto_manip_pkt`), before the address itself
/// changes: `l4` is the L4 header and what follows, `old_addr` and
/// `new_addr` the address being replaced (for the pseudo-header). An
/// embedded packet may hold only the first 8 bytes of its L4 header: the
/// ports (or ICMP id) are there, a TCP checksum may not be.
#[allow(clippy::too_many_arguments)]
fn l4_manip(
    l4: &mut [u8],
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
    match ip.proto {
        IpProtocol::Tcp => {
            let mut h = tcp::Packet::new_unchecked(l4);
            h.check_quoted_len()?;
            let old_port = match manip {
                ManipType::Src => h.src_port(),
                ManipType::Dst => h.dst_port(),
            };
            // An embedded header may be cut after 8 bytes: then the
            // checksum is not there to update.
            if h.has_checksum() {
                let c = pseudo_update(h.checksum(), old_addr, new_addr, mode);
                h.set_checksum(data_update(c, old_port, port, mode));
            }
            match manip {
                ManipType::Src => h.set_src_port(port),
                ManipType::Dst => h.set_dst_port(port),
            }
        }
        IpProtocol::Dccp => {
            let mut h = dccp::Packet::new_checked(l4)?;
            let old_port = match manip {
                ManipType::Src => h.src_port(),
                ManipType::Dst => h.dst_port(),
            };
            let c = pseudo_update(h.checksum(), old_addr, new_addr, mode);
            h.set_checksum(data_update(c, old_port, port, mode));
            match manip {
                ManipType::Src => h.set_src_port(port),
                ManipType::Dst => h.set_dst_port(port),
            }
        }
        IpProtocol::Udp | IpProtocol::UdpLite => {
            // UDP-Lite shares UDP's header; its checksum is mandatory.
            let mut h = udp::Packet::new_unchecked(l4);
            h.check_header_len()?;
            let old_port = match manip {
                ManipType::Src => h.src_port(),
                ManipType::Dst => h.dst_port(),
            };
            let c = h.checksum();
            if c != 0 || ip.proto == IpProtocol::UdpLite {
                let c = pseudo_update(c, old_addr, new_addr, mode);
                let c = data_update(c, old_port, port, mode);
                h.set_checksum(if c == 0 { CSUM_MANGLED_0 } else { c });
            }
            match manip {
                ManipType::Src => h.set_src_port(port),
                ManipType::Dst => h.set_dst_port(port),
            }
        }
        IpProtocol::Icmp if !ip.v6 => {
            let mut h = icmpv4::Packet::new_checked(l4)?;
            let ty = h.msg_type();
            // Queries and their replies carry an identifier.
            if icmpv4::inverse_type(ty).is_none() {
                return Ok(());
            }
            let old_id = h.echo_ident();
            h.set_checksum(data_update(h.checksum(), old_id, port, mode));
            h.set_echo_ident(port);
        }
        IpProtocol::Icmpv6 if ip.v6 => {
            let mut h = icmpv6::Packet::new_checked(l4)?;
            let mut c = pseudo_update(h.checksum(), old_addr, new_addr, mode);
            let ty = h.msg_type();
            if ty == icmpv6::ECHO_REQUEST || ty == icmpv6::ECHO_REPLY {
                let old_id = h.echo_ident();
                c = data_update(c, old_id, port, mode);
                h.set_echo_ident(port);
            }
            h.set_checksum(c);
        }
        _ => {}
    }
    Ok(())
}

/// One manip of the packet whose IP header starts at `p[0]`.
fn manip_at(
    p: &mut [u8],
    manip: ManipType,
    to: &Endpoint,
    mode: CsumMode,
) -> Result<IpInfo, RewriteError> {
    let ip = ip_info(p)?;
    if to.addr.is_ipv6() != ip.v6 {
        return Err(RewriteError::FamilyMismatch);
    }
    let (hdr, l4) = p
        .split_at_mut_checked(ip.l4)
        .ok_or(RewriteError::Truncated)?;
    match to.addr {
        IpAddr::V4(a) => {
            let new = a.octets();
            let mut h = ipv4::Packet::new_unchecked(hdr);
            let old = match manip {
                ManipType::Src => h.src_addr(),
                ManipType::Dst => h.dst_addr(),
            };
            l4_manip(l4, &ip, manip, &old, &new, to.port, mode)?;
            h.set_checksum(checksum::update_bytes(h.checksum(), &old, &new));
            match manip {
                ManipType::Src => h.set_src_addr(new),
                ManipType::Dst => h.set_dst_addr(new),
            }
        }
        IpAddr::V6(a) => {
            let new = a.octets();
            let mut h = ipv6::Packet::new_unchecked(hdr);
            let old = match manip {
                ManipType::Src => h.src_addr(),
                ManipType::Dst => h.dst_addr(),
            };
            l4_manip(l4, &ip, manip, &old, &new, to.port, mode)?;
            match manip {
                ManipType::Src => h.set_src_addr(new),
                ManipType::Dst => h.set_dst_addr(new),
            }
        }
    }
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
    manip_at(pkt, manip, to, mode).map(|_| ())
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
    let Ok(ip) = ip_info(pkt) else {
        return false;
    };
    let Some(&ty) = pkt.get(ip.l4) else {
        return false;
    };
    match (ip.v6, ip.proto) {
        (false, IpProtocol::Icmp) => icmpv4::is_error(ty),
        (true, IpProtocol::Icmpv6) => icmpv6::is_error(ty),
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
    let outer = ip_info(pkt)?;
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
    let (hdr, l4) = pkt
        .split_at_mut_checked(outer.l4)
        .ok_or(RewriteError::Truncated)?;
    if outer.v6 {
        let len = u32::try_from(l4.len()).map_err(|_| RewriteError::Malformed)?;
        let mut icmp = icmpv6::Packet::new_checked(l4)?;
        manip_inner(icmp.data_mut(), inner_manip, &inner_to, mode)?;
        if mode == CsumMode::Full {
            let ip = ipv6::Packet::new_unchecked(&*hdr);
            let pseudo =
                checksum::pseudo_header_v6(&ip.src_addr(), &ip.dst_addr(), ipproto::ICMPV6, len);
            icmp.fill_checksum(pseudo);
        }
    } else {
        let mut icmp = icmpv4::Packet::new_checked(l4)?;
        manip_inner(icmp.data_mut(), inner_manip, &inner_to, mode)?;
        if mode == CsumMode::Full {
            icmp.fill_checksum();
        }
    }
    manip_at(pkt, manip, &outer_to, mode)?;
    Ok(true)
}

/// The manip of the packet an ICMP error quotes: what cannot be read
/// there makes the error unusable.
fn manip_inner(
    inner: &mut [u8],
    manip: ManipType,
    to: &Endpoint,
    mode: CsumMode,
) -> Result<(), RewriteError> {
    match manip_at(inner, manip, to, mode) {
        Ok(_) => Ok(()),
        Err(RewriteError::Truncated | RewriteError::Malformed) => Err(RewriteError::NotIcmpError),
        Err(e) => Err(e),
    }
}
