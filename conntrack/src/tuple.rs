//! Connection tuples, their inversion and a keyed hash.
//!
//! Kernel counterpart: `struct nf_conntrack_tuple`
//! (`include/net/netfilter/nf_conntrack_tuple.h`), `nf_ct_invert_tuple()`
//! and `hash_conntrack_raw()` in `net/netfilter/nf_conntrack_core.c`,
//! `nf_conntrack_invert_icmp{,v6}_tuple()` in
//! `nf_conntrack_proto_icmp{,v6}.c`.
//!
//! A connection has two tuples, one per [`Direction`]: the *original*
//! tuple of its first packet and the *reply* tuple that packets coming
//! back carry. Without NAT the reply tuple is [`Tuple::invert`] of the
//! original; NAT changes the reply tuple (the addresses and ports, "the
//! part NAT may change"), never `proto` or `family`.
//!
//! For ICMP/ICMPv6 queries, as in Linux, `src_port` holds the identifier
//! and `dst_port` holds `type << 8 | code`; [`Tuple::icmp_id`],
//! [`Tuple::icmp_type`] and [`Tuple::icmp_code`] read them back. For
//! protocols without ports both are 0.

use core::hash::{BuildHasher, Hash, Hasher};

use crate::ipproto;

/// The address family of a tuple. Values are the kernel's `NFPROTO_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    /// IPv4 (`NFPROTO_IPV4`).
    Ipv4 = 2,
    /// IPv6 (`NFPROTO_IPV6`).
    Ipv6 = 10,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// The family of netfilter protocol family `pf` (`NFPROTO_*`, as in
    /// `nf_hook_state.pf` and the netlink attributes); `None` for others.
    pub const fn from_nfproto(pf: u8) -> Option<Family> {
        match pf {
            2 => Some(Family::Ipv4),
            10 => Some(Family::Ipv6),
            _ => None,
        }
    }

    /// The `NFPROTO_*` number.
    pub const fn nfproto(self) -> u8 {
        self as u8
    }

    /// 0 for IPv4, 1 for IPv6: an index into per-family arrays.
    pub const fn index(self) -> usize {
        match self {
            Family::Ipv4 => 0,
            Family::Ipv6 => 1,
        }
    }

    /// The family of an address.
    pub const fn of(addr: &core::net::IpAddr) -> Family {
        match addr {
            core::net::IpAddr::V4(_) => Family::Ipv4,
            core::net::IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Bytes of an address of this family (of the 16 a [`Tuple`] keeps).
    pub const fn addr_len(self) -> usize {
        match self {
            Family::Ipv4 => 4,
            Family::Ipv6 => 16,
        }
    }

    /// The longest prefix length for this family.
    pub const fn max_prefix(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }
}

/// The direction of a packet relative to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Direction {
    /// The direction of the first packet (`IP_CT_DIR_ORIGINAL`).
    Original = 0,
    /// Packets coming back (`IP_CT_DIR_REPLY`).
    Reply = 1,
}

impl Direction {
    /// 0 for original, 1 for reply: an index into per-direction arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Direction from its bit (0 original, anything odd reply).
    #[inline]
    pub const fn from_bits(v: u8) -> Direction {
        if v & 1 == 0 {
            Direction::Original
        } else {
            Direction::Reply
        }
    }

    /// The other direction.
    #[inline]
    pub const fn opposite(self) -> Direction {
        match self {
            Direction::Original => Direction::Reply,
            Direction::Reply => Direction::Original,
        }
    }
}

/// A pair of values, one per [`Direction`], indexable by direction
/// without a panic path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PerDir<T>(pub [T; 2]);

impl<T> core::ops::Index<Direction> for PerDir<T> {
    type Output = T;
    #[inline]
    fn index(&self, d: Direction) -> &T {
        let [o, r] = &self.0;
        match d {
            Direction::Original => o,
            Direction::Reply => r,
        }
    }
}

impl<T> core::ops::IndexMut<Direction> for PerDir<T> {
    #[inline]
    fn index_mut(&mut self, d: Direction) -> &mut T {
        let [o, r] = &mut self.0;
        match d {
            Direction::Original => o,
            Direction::Reply => r,
        }
    }
}

/// One direction of a connection: addresses, L4 protocol and ports (or
/// ICMP identifier / type / code).
///
/// IPv4 addresses occupy the first 4 bytes of `src` / `dst`, the other 12
/// bytes are zero (use [`Tuple::v4`] to build one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tuple {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port, or ICMP identifier.
    pub src_port: u16,
    /// Destination port, or ICMP `type << 8 | code`.
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Address family.
    pub family: Family,
}

/// Number of bytes of [`Tuple::to_bytes`].
pub const TUPLE_BYTES: usize = 38;

fn widen4(a: [u8; 4]) -> [u8; 16] {
    let mut w = [0u8; 16];
    let [a0, a1, a2, a3] = a;
    w[0] = a0;
    w[1] = a1;
    w[2] = a2;
    w[3] = a3;
    w
}

fn narrow4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

impl Tuple {
    /// An IPv4 tuple.
    pub fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, src_port: u16, dst_port: u16) -> Tuple {
        Tuple {
            src: widen4(src),
            dst: widen4(dst),
            src_port,
            dst_port,
            proto,
            family: Family::Ipv4,
        }
    }

    /// An IPv6 tuple.
    pub fn v6(src: [u8; 16], dst: [u8; 16], proto: u8, src_port: u16, dst_port: u16) -> Tuple {
        Tuple {
            src,
            dst,
            src_port,
            dst_port,
            proto,
            family: Family::Ipv6,
        }
    }

    /// An ICMP / ICMPv6 query tuple (protocol chosen from the family).
    pub fn icmp(family: Family, src: [u8; 16], dst: [u8; 16], id: u16, ty: u8, code: u8) -> Tuple {
        Tuple {
            src,
            dst,
            src_port: id,
            dst_port: u16::from_be_bytes([ty, code]),
            proto: match family {
                Family::Ipv4 => ipproto::ICMP,
                Family::Ipv6 => ipproto::ICMPV6,
            },
            family,
        }
    }

    /// The IPv4 source address (the first 4 bytes of `src`).
    pub fn src_v4(&self) -> [u8; 4] {
        narrow4(&self.src)
    }

    /// The IPv4 destination address (the first 4 bytes of `dst`).
    pub fn dst_v4(&self) -> [u8; 4] {
        narrow4(&self.dst)
    }

    /// True for ICMP over IPv4 or ICMPv6 over IPv6.
    pub const fn is_icmp(&self) -> bool {
        matches!(
            (self.family, self.proto),
            (Family::Ipv4, ipproto::ICMP) | (Family::Ipv6, ipproto::ICMPV6)
        )
    }

    /// ICMP identifier (meaningful when [`Tuple::is_icmp`]).
    pub const fn icmp_id(&self) -> u16 {
        self.src_port
    }

    /// ICMP type (meaningful when [`Tuple::is_icmp`]).
    pub const fn icmp_type(&self) -> u8 {
        (self.dst_port >> 8) as u8
    }

    /// ICMP code (meaningful when [`Tuple::is_icmp`]).
    pub const fn icmp_code(&self) -> u8 {
        self.dst_port as u8
    }

    /// The tuple of packets going the other way (`nf_ct_invert_tuple`):
    /// addresses and ports swapped; for ICMP the identifier is kept and the
    /// type replaced by its counterpart. `None` for ICMP types that have no
    /// counterpart (errors, unsolicited replies of unknown kind).
    pub fn invert(&self) -> Option<Tuple> {
        if self.is_icmp() {
            let ty = match self.family {
                Family::Ipv4 => crate::wire::icmpv4::inverse_type(self.icmp_type())?,
                Family::Ipv6 => crate::wire::icmpv6::inverse_type(self.icmp_type())?,
            };
            return Some(Tuple {
                src: self.dst,
                dst: self.src,
                src_port: self.src_port,
                dst_port: u16::from_be_bytes([ty, self.icmp_code()]),
                proto: self.proto,
                family: self.family,
            });
        }
        Some(Tuple {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            family: self.family,
        })
    }

    /// The canonical byte form that is hashed: family, protocol, source,
    /// destination, source port, destination port (big-endian).
    pub fn to_bytes(&self) -> [u8; TUPLE_BYTES] {
        let mut b = [0u8; TUPLE_BYTES];
        let (head, rest) = b.split_at_mut(2);
        head.copy_from_slice(&[self.family as u8, self.proto]);
        let (s, rest) = rest.split_at_mut(16);
        s.copy_from_slice(&self.src);
        let (d, rest) = rest.split_at_mut(16);
        d.copy_from_slice(&self.dst);
        let (sp, dp) = rest.split_at_mut(2);
        sp.copy_from_slice(&self.src_port.to_be_bytes());
        dp.copy_from_slice(&self.dst_port.to_be_bytes());
        b
    }

    /// The keyed hash of this tuple (SipHash-1-3 of [`Tuple::to_bytes`]).
    /// Equal to hashing the tuple through [`SipBuildHasher`] with the same
    /// key, so a kernel table and a host `HashMap` agree.
    #[inline]
    pub fn hash_with(&self, key: &HashKey) -> u64 {
        // One-shot: four full words and a 6-byte tail, no buffering.
        let (mut h, tail) = self.hash_words(key);
        let mut t = [0u8; 8];
        for (d, s) in t.iter_mut().zip(tail.iter()) {
            *d = *s;
        }
        h.tail = u64::from_le_bytes(t);
        h.length = TUPLE_BYTES;
        h.finish()
    }

    /// A hasher keyed with `key` that has taken the first 32 bytes of
    /// [`Tuple::to_bytes`] as four words, and the 6 bytes left.
    #[inline]
    fn hash_words(&self, key: &HashKey) -> (SipHasher13, [u8; 6]) {
        let b = self.to_bytes();
        let mut h = SipHasher13::new_with_key(key);
        let (words, rest) = b.split_at(32);
        for w in words.chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            h.compress(u64::from_le_bytes(a));
        }
        let mut tail = [0u8; 6];
        for (d, s) in tail.iter_mut().zip(rest.iter()) {
            *d = *s;
        }
        (h, tail)
    }
}

impl Tuple {
    /// The keyed hash of this tuple followed by `mix` (8 bytes, little
    /// endian): [`Tuple::hash_with`] under a namespace's own seed, as Linux
    /// hashes `net_hash_mix(net)` together with the tuple
    /// (`hash_conntrack_raw`). Tuples that collide in one namespace then
    /// do not collide in another (XORing the mix into the hash afterwards
    /// would move their buckets together).
    #[inline]
    pub fn hash_with_mix(&self, key: &HashKey, mix: u64) -> u64 {
        let (mut h, tail) = self.hash_words(key);
        let m = mix.to_le_bytes();
        // The tuple's last 6 bytes and the mix's first 2 make a word; the
        // mix's last 6 are the tail.
        let mut w = [0u8; 8];
        let mut t = [0u8; 8];
        for (d, s) in w.iter_mut().zip(tail.iter().chain(m.iter())) {
            *d = *s;
        }
        for (d, s) in t.iter_mut().zip(m.iter().skip(2)) {
            *d = *s;
        }
        h.compress(u64::from_le_bytes(w));
        h.tail = u64::from_le_bytes(t);
        h.length = TUPLE_BYTES + 8;
        h.finish()
    }
}

impl Hash for Tuple {
    /// Writes [`Tuple::to_bytes`] in one call (no length prefix), so that
    /// `BuildHasher::hash_one` equals [`Tuple::hash_with`].
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.to_bytes());
    }
}

/// The 128-bit hash seed, from the caller (the kernel module draws it with
/// `get_random_bytes()` at load time), so that outsiders cannot aim
/// packets at one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashKey {
    /// First half of the key.
    pub k0: u64,
    /// Second half of the key.
    pub k1: u64,
}

impl HashKey {
    /// A key from 16 random bytes (little-endian halves).
    pub fn from_bytes(b: [u8; 16]) -> HashKey {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        let (l, h) = b.split_at(8);
        lo.copy_from_slice(l);
        hi.copy_from_slice(h);
        HashKey {
            k0: u64::from_le_bytes(lo),
            k1: u64::from_le_bytes(hi),
        }
    }
}

/// SipHash-1-3, the variant Linux calls `hsiphash` on 64-bit machines and
/// Rust's `std` uses for `HashMap`: one compression round per word, three
/// finalisation rounds. No allocation, no unsafe.
#[derive(Debug, Clone)]
pub struct SipHasher13 {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
    tail: u64,
    ntail: usize,
    length: usize,
}

impl SipHasher13 {
    /// A hasher keyed with `key`.
    pub const fn new_with_key(key: &HashKey) -> SipHasher13 {
        SipHasher13 {
            v0: key.k0 ^ 0x736f_6d65_7073_6575,
            v1: key.k1 ^ 0x646f_7261_6e64_6f6d,
            v2: key.k0 ^ 0x6c79_6765_6e65_7261,
            v3: key.k1 ^ 0x7465_6462_7974_6573,
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13);
        self.v1 ^= self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16);
        self.v3 ^= self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21);
        self.v3 ^= self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17);
        self.v1 ^= self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.v0 ^= m;
    }
}

impl Hasher for SipHasher13 {
    fn write(&mut self, bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len());
        let mut rest = bytes;
        // Fill a partial word first.
        while self.ntail != 0 {
            let Some((&b, r)) = rest.split_first() else {
                return;
            };
            self.tail |= (b as u64) << (8 * self.ntail);
            self.ntail += 1;
            rest = r;
            if self.ntail == 8 {
                let m = self.tail;
                self.compress(m);
                self.tail = 0;
                self.ntail = 0;
            }
        }
        let mut words = rest.chunks_exact(8);
        for w in &mut words {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            self.compress(u64::from_le_bytes(a));
        }
        for &b in words.remainder() {
            self.tail |= (b as u64) << (8 * self.ntail);
            self.ntail += 1;
        }
    }

    fn finish(&self) -> u64 {
        let mut s = self.clone();
        let b = ((self.length as u64 & 0xff) << 56) | self.tail;
        s.compress(b);
        s.v2 ^= 0xff;
        s.round();
        s.round();
        s.round();
        s.v0 ^ s.v1 ^ s.v2 ^ s.v3
    }
}

/// A [`BuildHasher`] for [`SipHasher13`] with a fixed key: lets a host
/// `HashMap<Tuple, _>` hash exactly as [`Tuple::hash_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SipBuildHasher {
    /// The key.
    pub key: HashKey,
}

impl BuildHasher for SipBuildHasher {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_key(&self.key)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn siphash13_matches_std() {
        // std's DefaultHasher::new() is SipHash-1-3 with a zero key.
        #[allow(deprecated)]
        for len in 0..40usize {
            let msg: std::vec::Vec<u8> = (0..len as u8).collect();
            let mut ours = SipHasher13::new_with_key(&HashKey::default());
            ours.write(&msg);
            let mut theirs = std::collections::hash_map::DefaultHasher::new();
            theirs.write(&msg);
            assert_eq!(ours.finish(), theirs.finish(), "len {len}");
            // Split writes give the same result.
            let mut split = SipHasher13::new_with_key(&HashKey::default());
            let (a, b) = msg.split_at(len / 3);
            split.write(a);
            split.write(b);
            assert_eq!(split.finish(), ours.finish());
        }
    }

    #[test]
    fn keyed_and_consistent() {
        let t = Tuple::v4([10, 0, 0, 1], [10, 0, 0, 2], ipproto::TCP, 1234, 80);
        let k1 = HashKey { k0: 1, k1: 2 };
        let k2 = HashKey { k0: 3, k1: 4 };
        assert_ne!(t.hash_with(&k1), t.hash_with(&k2));
        assert_eq!(t.hash_with(&k1), SipBuildHasher { key: k1 }.hash_one(t));
        let u = Tuple::v4([10, 0, 0, 1], [10, 0, 0, 2], ipproto::TCP, 1235, 80);
        assert_ne!(t.hash_with(&k1), u.hash_with(&k1));
        // With a namespace's mix: the tuple's bytes, then the mix's.
        for mix in [0u64, 1, 0x0123_4567_89ab_cdef, u64::MAX] {
            let mut h = SipBuildHasher { key: k1 }.build_hasher();
            h.write(&t.to_bytes());
            h.write(&mix.to_le_bytes());
            assert_eq!(t.hash_with_mix(&k1, mix), h.finish(), "mix {mix:#x}");
        }
        assert_ne!(t.hash_with_mix(&k1, 1), t.hash_with_mix(&k1, 2));
        assert_eq!(
            HashKey::from_bytes([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
            k1
        );
    }

    #[test]
    fn invert_ports_and_icmp() {
        let t = Tuple::v4([1, 1, 1, 1], [2, 2, 2, 2], ipproto::UDP, 5000, 53);
        let r = t.invert().unwrap();
        assert_eq!(r.src_v4(), [2, 2, 2, 2]);
        assert_eq!(r.dst_v4(), [1, 1, 1, 1]);
        assert_eq!((r.src_port, r.dst_port), (53, 5000));
        assert_eq!(r.invert().unwrap(), t);

        let e = Tuple::icmp(Family::Ipv4, [1; 16], [2; 16], 77, 8, 0);
        let er = e.invert().unwrap();
        assert_eq!((er.icmp_id(), er.icmp_type(), er.icmp_code()), (77, 0, 0));
        assert_eq!(er.src, [2; 16]);
        let err = Tuple::icmp(Family::Ipv4, [1; 16], [2; 16], 0, 3, 1);
        assert_eq!(err.invert(), None);

        let e6 = Tuple::icmp(Family::Ipv6, [1; 16], [2; 16], 9, 128, 0);
        assert_eq!(e6.proto, ipproto::ICMPV6);
        assert_eq!(e6.invert().unwrap().icmp_type(), 129);
        // ICMP numbers inside an IPv6 tuple are not ICMPv4.
        let odd = Tuple::v6([1; 16], [2; 16], ipproto::ICMP, 1, 2);
        assert_eq!(odd.invert().unwrap().src_port, 2);
    }

    #[test]
    fn direction() {
        assert_eq!(Direction::Original.opposite(), Direction::Reply);
        assert_eq!(Direction::Reply.index(), 1);
    }
}
