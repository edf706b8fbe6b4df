//! Header mangling: TOS / traffic class and TTL / hop limit.
//!
//! Corresponds to `net/netfilter/xt_DSCP.c` (`tos_tg`, `tos_tg6`: the TOS
//! target) and `net/netfilter/xt_HL.c` (`ttl_tg`, `hl_tg6`). The IPv4
//! header checksum is updated incrementally (`csum_replace2`, as the kernel
//! does); IPv6 has none. MARK only changes packet metadata: see
//! [`crate::rule::MarkOp::apply`] and [`crate::eval::Outcome::mark`].

use conntrack::checksum;

use crate::eval::Mangle;
use crate::nat_proto::RewriteError;

fn version(p: &[u8]) -> Result<u8, RewriteError> {
    p.first().map(|b| b >> 4).ok_or(RewriteError::Truncated)
}

fn v4_word(p: &[u8], at: usize) -> Result<u16, RewriteError> {
    match p.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(RewriteError::Truncated),
    }
}

/// Changes the byte at `at` of an IPv4 header, keeping its checksum right.
fn v4_set_byte(p: &mut [u8], at: usize, v: u8) -> Result<(), RewriteError> {
    if p.len() < 20 {
        return Err(RewriteError::Truncated);
    }
    let word_at = at & !1;
    let old = v4_word(p, word_at)?;
    *p.get_mut(at).ok_or(RewriteError::Truncated)? = v;
    let new = v4_word(p, word_at)?;
    let c = v4_word(p, 10)?;
    let c = checksum::update16(c, old, new);
    p.get_mut(10..12)
        .ok_or(RewriteError::Truncated)?
        .copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The packet's TOS (IPv4) or traffic class (IPv6).
pub fn tos(p: &[u8]) -> Result<u8, RewriteError> {
    match version(p)? {
        4 => p.get(1).copied().ok_or(RewriteError::Truncated),
        6 => match p.get(..2) {
            Some(&[a, b]) => Ok((a << 4) | (b >> 4)),
            _ => Err(RewriteError::Truncated),
        },
        _ => Err(RewriteError::Malformed),
    }
}

/// Sets the TOS (IPv4, checksum updated) or traffic class (IPv6).
pub fn set_tos(p: &mut [u8], v: u8) -> Result<(), RewriteError> {
    match version(p)? {
        4 => v4_set_byte(p, 1, v),
        6 => {
            let (a, b) = match p.get(..2) {
                Some(&[a, b]) => (a, b),
                _ => return Err(RewriteError::Truncated),
            };
            let hdr = p.get_mut(..2).ok_or(RewriteError::Truncated)?;
            hdr.copy_from_slice(&[(a & 0xf0) | (v >> 4), (b & 0x0f) | (v << 4)]);
            Ok(())
        }
        _ => Err(RewriteError::Malformed),
    }
}

/// The packet's TTL (IPv4) or hop limit (IPv6).
pub fn ttl(p: &[u8]) -> Result<u8, RewriteError> {
    let at = match version(p)? {
        4 => 8,
        6 => 7,
        _ => return Err(RewriteError::Malformed),
    };
    p.get(at).copied().ok_or(RewriteError::Truncated)
}

/// Sets the TTL (IPv4, checksum updated) or hop limit (IPv6).
pub fn set_ttl(p: &mut [u8], v: u8) -> Result<(), RewriteError> {
    match version(p)? {
        4 => v4_set_byte(p, 8, v),
        6 => {
            if p.len() < 40 {
                return Err(RewriteError::Truncated);
            }
            *p.get_mut(7).ok_or(RewriteError::Truncated)? = v;
            Ok(())
        }
        _ => Err(RewriteError::Malformed),
    }
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
