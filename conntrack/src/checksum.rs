//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Corresponds to the kernel's `include/net/checksum.h` and
//! `net/core/utils.c` (`inet_proto_csum_replace*`), which netfilter's NAT
//! uses to fix checksums after rewriting addresses and ports.
//!
//! Conventions, as in smoltcp's `wire::ip::checksum`:
//! * [`data`] and [`combine`] return the *folded ones-complement sum*, not
//!   its complement; call [`finish`] (`!sum`) to get the value that goes
//!   into a header field.
//! * A header whose checksum field is included in the sum verifies when the
//!   folded sum is `0xffff` (see [`verify`]).
//! * The `update_*` helpers take the value *stored in the header* (already
//!   complemented) and return the new stored value (RFC 1624, eqn. 3:
//!   `HC' = ~(~HC + ~m + m')`).

/// Folds a 32-bit accumulator into 16 bits with end-around carry.
#[inline]
pub const fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Adds two folded ones-complement sums.
#[inline]
pub const fn add(a: u16, b: u16) -> u16 {
    fold(a as u32 + b as u32)
}

/// The folded ones-complement sum of `bytes`, read as big-endian 16-bit
/// words; an odd trailing byte is padded with a zero byte.
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        let mut part: u32 = 0;
        for pair in chunk.chunks_exact(2) {
            if let [hi, lo] = *pair {
                part += u16::from_be_bytes([hi, lo]) as u32;
            }
        }
        // 16 words of at most 0xffff fit easily in a u32; fold per chunk
        // so that `acc` never overflows.
        acc = fold(acc + part) as u32;
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for pair in &mut pairs {
        if let [hi, lo] = *pair {
            acc += u16::from_be_bytes([hi, lo]) as u32;
        }
    }
    if let [last] = *pairs.remainder() {
        acc += u16::from_be_bytes([last, 0]) as u32;
    }
    fold(acc)
}

/// Combines several folded sums into one.
pub fn combine(sums: &[u16]) -> u16 {
    let mut acc: u16 = 0;
    for &s in sums {
        acc = add(acc, s);
    }
    acc
}

/// The checksum value to store: the complement of a folded sum.
#[inline]
pub const fn finish(sum: u16) -> u16 {
    !sum
}

/// True when a folded sum taken over a header *including* its checksum
/// field is correct.
#[inline]
pub const fn verify(sum: u16) -> bool {
    sum == 0xffff
}

/// The folded sum of the IPv4 pseudo-header (RFC 793 / RFC 768):
/// source, destination, zero, protocol, upper-layer length.
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, length: u16) -> u16 {
    combine(&[data(src), data(dst), proto as u16, length])
}

/// The folded sum of the IPv6 pseudo-header (RFC 8200 §8.1): source,
/// destination, 32-bit upper-layer length, zero, next header.
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, length: u32) -> u16 {
    combine(&[
        data(src),
        data(dst),
        (length >> 16) as u16,
        length as u16,
        proto as u16,
    ])
}

/// RFC 1624 incremental update of a stored checksum when one 16-bit word
/// of the covered data changes from `old` to `new`.
#[inline]
pub const fn update16(check: u16, old: u16, new: u16) -> u16 {
    // HC' = ~(~HC + ~m + m')
    !fold((!check) as u32 + (!old) as u32 + new as u32)
}

/// RFC 1624 incremental update for a 32-bit word (for example an IPv4
/// address read as a big-endian `u32`).
#[inline]
pub const fn update32(check: u16, old: u32, new: u32) -> u16 {
    let c = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

/// RFC 1624 incremental update when the byte string `old` (at an even
/// offset of the covered data) is replaced by `new` of the same length,
/// such as a 4- or 16-byte address. An odd trailing byte counts as the
/// high byte of a word, as in [`data`]. If the lengths differ the shorter
/// length is used.
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    let n = if old.len() < new.len() {
        old.len()
    } else {
        new.len()
    };
    let (old, new) = (old.get(..n).unwrap_or(&[]), new.get(..n).unwrap_or(&[]));
    // ~HC + ~sum(old) + sum(new)
    !combine(&[!check, !data(old), data(new)])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of RFC 1071 §3: words 0001 f203 f4f5 f6f7.
    #[test]
    fn rfc1071_example() {
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&b), 0xddf2);
        assert_eq!(finish(data(&b)), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn long_input_folds() {
        let b = [0xffu8; 1000];
        assert_eq!(data(&b), 0xffff);
        let b = [0x80u8; 70];
        // 35 words of 0x8080 = 0x118_1180 -> fold
        assert_eq!(data(&b), fold(35 * 0x8080));
    }

    // A real IPv4 header (checksum 0xb861) from Wikipedia's example.
    #[test]
    fn ipv4_header_verifies() {
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(data(&h)));
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(finish(data(&z)), 0xb861);
    }

    #[test]
    fn incremental_equals_recompute() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old = [h[12], h[13], h[14], h[15]];
        let new = [10, 1, 2, 3];
        let c = u16::from_be_bytes([h[10], h[11]]);
        let c1 = update_bytes(c, &old, &new);
        let c2 = update32(c, u32::from_be_bytes(old), u32::from_be_bytes(new));
        h[12..16].copy_from_slice(&new);
        h[10] = 0;
        h[11] = 0;
        let full = finish(data(&h));
        assert_eq!(c1, full);
        assert_eq!(c2, full);
        // TTL decrement: word 8 is (ttl << 8 | proto)
        let c3 = update16(full, 0x4011, 0x3f11);
        h[8] = 0x3f;
        assert_eq!(c3, finish(data(&h)));
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_header_v4(&[10, 0, 0, 1], &[10, 0, 0, 2], 6, 20);
        assert_eq!(v4, combine(&[0x0a00, 0x0001, 0x0a00, 0x0002, 6, 20]));
        let mut s = [0u8; 16];
        s[15] = 1;
        let mut d = [0u8; 16];
        d[15] = 2;
        assert_eq!(pseudo_header_v6(&s, &d, 17, 8), combine(&[1, 2, 8, 17]));
    }
}
