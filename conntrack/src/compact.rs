//! Tuples stored at their family's size, for a table entry.
//!
//! A [`Tuple`] holds any family: 16-byte addresses (an IPv4 address in the
//! first 4 bytes), 38 bytes in all. An entry of the kernel table stores
//! its original tuple as an [`OrigTuple`] and its reply tuple, without the
//! protocol and family it shares with the original, as a [`ReplyTuple`],
//! with addresses of the family's size: 13 + 12 bytes for IPv4 (against
//! 38 + 36), 37 + 36 for IPv6. Everything is bytes (alignment 1), so the
//! two pack without padding next to the entry's other fields; the table
//! keeps IPv4 and IPv6 entries apart, each family in entries of its own
//! size.
//!
//! Kernel counterpart: `struct nf_conntrack_tuple`, whose `union
//! nf_inet_addr` is 16 bytes for both families.

use crate::conn::{ConnKey, ReplyPart};
use crate::tuple::{Family, Tuple};

/// An address of one family, as an entry stores it.
pub trait Addr: Copy + Eq + core::fmt::Debug + Send + Sync + 'static {
    /// The family.
    const FAMILY: Family;

    /// The address held in `a` (a [`Tuple`]'s address of this family).
    fn narrow(a: &[u8; 16]) -> Self;

    /// The address as a [`Tuple`] holds it.
    fn widen(&self) -> [u8; 16];

    /// True when `a`, a [`Tuple`]'s address of this family, is this one
    /// (compared in place).
    fn is(&self, a: &[u8; 16]) -> bool;
}

impl Addr for [u8; 4] {
    const FAMILY: Family = Family::Ipv4;

    #[inline]
    fn narrow(a: &[u8; 16]) -> Self {
        [a[0], a[1], a[2], a[3]]
    }

    #[inline]
    fn widen(&self) -> [u8; 16] {
        let mut w = [0u8; 16];
        let [a0, a1, a2, a3] = *self;
        w[0] = a0;
        w[1] = a1;
        w[2] = a2;
        w[3] = a3;
        w
    }

    #[inline]
    fn is(&self, a: &[u8; 16]) -> bool {
        // The other 12 bytes of an IPv4 tuple's address are zero
        // (`Tuple::v4`); the family is compared by the caller.
        *self == Self::narrow(a)
    }
}

impl Addr for [u8; 16] {
    const FAMILY: Family = Family::Ipv6;

    #[inline]
    fn narrow(a: &[u8; 16]) -> Self {
        *a
    }

    #[inline]
    fn widen(&self) -> [u8; 16] {
        *self
    }

    #[inline]
    fn is(&self, a: &[u8; 16]) -> bool {
        self == a
    }
}

/// The original tuple of a connection of family `A::FAMILY`: its ends,
/// stored as a reply tuple's are, and the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrigTuple<A: Addr> {
    ends: ReplyTuple<A>,
    proto: u8,
}

/// The reply tuple of a connection of family `A::FAMILY`, without the
/// protocol it shares with the original tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTuple<A: Addr> {
    src: A,
    dst: A,
    /// Ports in native byte order, as bytes: alignment 1.
    src_port: [u8; 2],
    dst_port: [u8; 2],
}

impl<A: Addr> OrigTuple<A> {
    /// `t` stored; `None` if it is of another family.
    #[inline]
    pub fn of(t: &Tuple) -> Option<Self> {
        Some(OrigTuple {
            ends: ReplyTuple::of(t)?,
            proto: t.proto,
        })
    }

    /// The tuple.
    #[inline]
    pub fn tuple(&self) -> Tuple {
        self.ends.tuple(self)
    }

    /// The IP protocol.
    #[inline]
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// True when `t` is this tuple (compared in place).
    #[inline]
    pub fn matches(&self, t: &Tuple) -> bool {
        self.ends.matches(self, t)
    }
}

impl<A: Addr> ReplyTuple<A> {
    /// The ends (addresses and ports) of `t` stored, its protocol left
    /// out; `None` if it is of another family.
    #[inline]
    pub fn of(t: &Tuple) -> Option<Self> {
        (t.family == A::FAMILY).then(|| ReplyTuple {
            src: A::narrow(&t.src),
            dst: A::narrow(&t.dst),
            src_port: t.src_port.to_ne_bytes(),
            dst_port: t.dst_port.to_ne_bytes(),
        })
    }

    /// These ends as a tuple of the connection whose original tuple is
    /// `orig` (its protocol).
    #[inline]
    pub fn tuple(&self, orig: &OrigTuple<A>) -> Tuple {
        Tuple {
            src: self.src.widen(),
            dst: self.dst.widen(),
            src_port: u16::from_ne_bytes(self.src_port),
            dst_port: u16::from_ne_bytes(self.dst_port),
            proto: orig.proto,
            family: A::FAMILY,
        }
    }

    /// True when `t` has these ends and `orig`'s protocol (compared in
    /// place).
    #[inline]
    pub fn matches(&self, orig: &OrigTuple<A>, t: &Tuple) -> bool {
        t.family == A::FAMILY
            && orig.proto == t.proto
            && self.src_port == t.src_port.to_ne_bytes()
            && self.dst_port == t.dst_port.to_ne_bytes()
            && self.src.is(&t.src)
            && self.dst.is(&t.dst)
    }
}

/// Both tuples stored, from a [`ConnKey`]; `None` if its family is not
/// `A::FAMILY`.
pub fn split<A: Addr>(key: &ConnKey) -> Option<(OrigTuple<A>, ReplyTuple<A>)> {
    let orig = OrigTuple::of(key.orig())?;
    let reply = ReplyTuple::of(&key.tuple(crate::Direction::Reply))?;
    Some((orig, reply))
}

/// The [`ConnKey`] of the stored tuples.
#[inline]
pub fn join<A: Addr>(orig: &OrigTuple<A>, reply: &ReplyTuple<A>) -> ConnKey {
    let o = orig.tuple();
    ConnKey::from_parts(o, ReplyPart::of(&reply.tuple(orig)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ipproto, Direction};
    use core::mem::{align_of, size_of};

    #[test]
    fn sizes_pack() {
        assert_eq!(size_of::<OrigTuple<[u8; 4]>>(), 13);
        assert_eq!(size_of::<ReplyTuple<[u8; 4]>>(), 12);
        assert_eq!(size_of::<OrigTuple<[u8; 16]>>(), 37);
        assert_eq!(size_of::<ReplyTuple<[u8; 16]>>(), 36);
        assert_eq!(align_of::<OrigTuple<[u8; 4]>>(), 1);
    }

    #[test]
    fn round_trip_and_match_in_place() {
        let o = Tuple::v4([10, 0, 0, 1], [192, 0, 2, 1], ipproto::UDP, 40000, 53);
        let r = Tuple::v4([192, 0, 2, 1], [198, 51, 100, 7], ipproto::UDP, 53, 1024);
        let key = ConnKey::from_tuples(o, &r);
        let (so, sr) = split::<[u8; 4]>(&key).expect("IPv4");
        assert_eq!(so.tuple(), o);
        assert_eq!(sr.tuple(&so), r);
        assert_eq!(join(&so, &sr), key);
        assert!(so.matches(&o) && !so.matches(&r));
        assert!(sr.matches(&so, &r) && !sr.matches(&so, &o));
        // Another protocol, another family, another port: no match.
        let mut t = o;
        t.proto = ipproto::TCP;
        assert!(!so.matches(&t));
        t = o;
        t.family = Family::Ipv6;
        assert!(!so.matches(&t));
        t = r;
        t.dst_port ^= 1;
        assert!(!sr.matches(&so, &t));
        assert!(split::<[u8; 16]>(&key).is_none());

        let o6 = Tuple::v6([0x20; 16], [0x30; 16], ipproto::TCP, 1, 2);
        let k6 = ConnKey::from_tuples(o6, &o6.invert().expect("TCP"));
        let (so6, sr6) = split::<[u8; 16]>(&k6).expect("IPv6");
        assert_eq!(join(&so6, &sr6), k6);
        assert!(sr6.matches(&so6, &k6.tuple(Direction::Reply)));
        assert!(split::<[u8; 4]>(&k6).is_none());
    }
}
