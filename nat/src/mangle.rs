//! Header mangling: TOS / traffic class and TTL / hop limit.
//!
//! Corresponds to `net/netfilter/xt_DSCP.c` (`tos_tg`, `tos_tg6`: the TOS
//! target) and `net/netfilter/xt_HL.c` (`ttl_tg`, `hl_tg6`). The IPv4
//! header checksum is updated incrementally (`csum_replace2`, as the kernel
//! does); IPv6 has none. The header is read and written through
//! `conntrack::wire`'s views. MARK only changes packet metadata: see
//! [`crate::rule::MarkOp::apply`] and [`crate::eval::Outcome::mark`].

use conntrack::wire::{self, ipv4, ipv6};

use crate::eval::Mangle;
use crate::nat_proto::RewriteError;

/// The IP header at the start of a packet. Only the fixed header is
/// needed (the caller may pass fewer bytes than IPv4 options take).
enum Ip<T: AsRef<[u8]>> {
    V4(ipv4::Packet<T>),
    V6(ipv6::Packet<T>),
}

fn ip<T: AsRef<[u8]>>(p: T) -> Result<Ip<T>, RewriteError> {
    let b = p.as_ref();
    let (version, len) = (wire::ip_version(b), b.len());
    match version {
        None => Err(RewriteError::Truncated),
        Some(ipv4::VERSION) if len >= ipv4::HEADER_LEN => {
            Ok(Ip::V4(ipv4::Packet::new_unchecked(p)))
        }
        Some(ipv6::VERSION) if len >= ipv6::HEADER_LEN => {
            Ok(Ip::V6(ipv6::Packet::new_unchecked(p)))
        }
        Some(ipv4::VERSION | ipv6::VERSION) => Err(RewriteError::Truncated),
        Some(_) => Err(RewriteError::Malformed),
    }
}

/// The packet's TOS (IPv4) or traffic class (IPv6).
pub fn tos(p: &[u8]) -> Result<u8, RewriteError> {
    Ok(match ip(p)? {
        Ip::V4(h) => h.tos(),
        Ip::V6(h) => h.traffic_class(),
    })
}

/// Sets the TOS (IPv4, checksum updated) or traffic class (IPv6).
pub fn set_tos(p: &mut [u8], v: u8) -> Result<(), RewriteError> {
    match ip(p)? {
        Ip::V4(mut h) => h.replace_tos(v),
        Ip::V6(mut h) => h.set_traffic_class(v),
    }
    Ok(())
}

/// The packet's TTL (IPv4) or hop limit (IPv6).
pub fn ttl(p: &[u8]) -> Result<u8, RewriteError> {
    Ok(match ip(p)? {
        Ip::V4(h) => h.ttl(),
        Ip::V6(h) => h.hop_limit(),
    })
}

/// Sets the TTL (IPv4, checksum updated) or hop limit (IPv6).
pub fn set_ttl(p: &mut [u8], v: u8) -> Result<(), RewriteError> {
    match ip(p)? {
        Ip::V4(mut h) => h.replace_ttl(v),
        Ip::V6(mut h) => h.set_hop_limit(v),
    }
    Ok(())
}

/// Applies the TOS and TTL changes an evaluation collected. Returns
/// whether the packet changed.
pub fn apply(p: &mut [u8], m: &Mangle) -> Result<bool, RewriteError> {
    let mut changed = false;
    if let Some(op) = m.tos {
        let old = tos(p)?;
        let new = op.apply(old);
        if new != old {
            set_tos(p, new)?;
            changed = true;
        }
    }
    if let Some(f) = m.ttl {
        let old = ttl(p)?;
        let new = f.apply(old);
        if new != old {
            set_ttl(p, new)?;
            changed = true;
        }
    }
    Ok(changed)
}
