//! Zero-copy packet views, in the style of smoltcp's `wire` module.
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>` view over a byte buffer.
//! `Packet::new_checked(buf)` (or `new_unchecked` followed by
//! `check_len()`) validates the lengths once; after that **no accessor
//! panics**: all slice indexing of this crate lives behind that promise,
//! here in `wire`. Getters need `T: AsRef<[u8]>`; setters for the fields
//! NAT rewrites (addresses, ports, ICMP id, checksums, TTL / hop limit, TOS
//! / traffic class) need `T: AsMut<[u8]>`.
//!
//! Unknown protocol numbers are kept ([`IpProtocol::Unknown`]), never
//! rejected on sight. Any byte sequence gives a value or an [`Error`].
//!
//! The kernel counterparts are the header structs of `include/uapi/linux/
//! {ip,ipv6,tcp,udp,icmp,icmpv6}.h` read through `skb_header_pointer()`.

pub mod dccp;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use core::fmt;

use crate::ipproto;

/// Why a byte sequence is not a valid packet of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    Truncated,
    /// The IP version nibble is not the one expected.
    BadVersion,
    /// A header-length field is below the minimum (IPv4 IHL < 5,
    /// TCP data offset < 5).
    BadHeaderLen,
    /// A total-length field is inconsistent (IPv4 total length below the
    /// header length, UDP length below 8).
    BadLength,
    /// The IPv6 extension header chain is longer than the limit.
    TooManyExtHeaders,
}

impl Error {
    /// A sentence a person understands.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "packet shorter than its header or length field",
            Error::BadVersion => "wrong IP version",
            Error::BadHeaderLen => "header length field below the minimum",
            Error::BadLength => "length field inconsistent with the header",
            Error::TooManyExtHeaders => "IPv6 extension header chain too long",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result type of the views.
pub type Result<T> = core::result::Result<T, Error>;

/// An IP protocol number (IPv4 protocol / IPv6 next header), typed; the
/// numbers are [`crate::ipproto`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpProtocol {
    /// IPv6 hop-by-hop options ([`ipproto::HOPOPTS`]).
    HopByHop,
    /// ICMP ([`ipproto::ICMP`]).
    Icmp,
    /// TCP ([`ipproto::TCP`]).
    Tcp,
    /// UDP ([`ipproto::UDP`]).
    Udp,
    /// DCCP ([`ipproto::DCCP`]).
    Dccp,
    /// IPv6 routing header ([`ipproto::ROUTING`]).
    Ipv6Route,
    /// IPv6 fragment header ([`ipproto::FRAGMENT`]).
    Ipv6Frag,
    /// GRE ([`ipproto::GRE`]).
    Gre,
    /// IPsec ESP ([`ipproto::ESP`]).
    Esp,
    /// IPsec AH ([`ipproto::AH`]).
    Ah,
    /// ICMPv6 ([`ipproto::ICMPV6`]).
    Icmpv6,
    /// IPv6 no next header ([`ipproto::NONE`]).
    Ipv6NoNxt,
    /// IPv6 destination options ([`ipproto::DSTOPTS`]).
    Ipv6Opts,
    /// SCTP ([`ipproto::SCTP`]).
    Sctp,
    /// UDP-Lite ([`ipproto::UDPLITE`]).
    UdpLite,
    /// Any other number, kept as is.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            ipproto::HOPOPTS => IpProtocol::HopByHop,
            ipproto::ICMP => IpProtocol::Icmp,
            ipproto::TCP => IpProtocol::Tcp,
            ipproto::UDP => IpProtocol::Udp,
            ipproto::DCCP => IpProtocol::Dccp,
            ipproto::ROUTING => IpProtocol::Ipv6Route,
            ipproto::FRAGMENT => IpProtocol::Ipv6Frag,
            ipproto::GRE => IpProtocol::Gre,
            ipproto::ESP => IpProtocol::Esp,
            ipproto::AH => IpProtocol::Ah,
            ipproto::ICMPV6 => IpProtocol::Icmpv6,
            ipproto::NONE => IpProtocol::Ipv6NoNxt,
            ipproto::DSTOPTS => IpProtocol::Ipv6Opts,
            ipproto::SCTP => IpProtocol::Sctp,
            ipproto::UDPLITE => IpProtocol::UdpLite,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => ipproto::HOPOPTS,
            IpProtocol::Icmp => ipproto::ICMP,
            IpProtocol::Tcp => ipproto::TCP,
            IpProtocol::Udp => ipproto::UDP,
            IpProtocol::Dccp => ipproto::DCCP,
            IpProtocol::Ipv6Route => ipproto::ROUTING,
            IpProtocol::Ipv6Frag => ipproto::FRAGMENT,
            IpProtocol::Gre => ipproto::GRE,
            IpProtocol::Esp => ipproto::ESP,
            IpProtocol::Ah => ipproto::AH,
            IpProtocol::Icmpv6 => ipproto::ICMPV6,
            IpProtocol::Ipv6NoNxt => ipproto::NONE,
            IpProtocol::Ipv6Opts => ipproto::DSTOPTS,
            IpProtocol::Sctp => ipproto::SCTP,
            IpProtocol::UdpLite => ipproto::UDPLITE,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// The IP version of the packet starting at `bytes` (the first byte's
/// high nibble: [`ipv4::VERSION`], [`ipv6::VERSION`] or another), `None`
/// for no bytes.
#[inline]
pub fn ip_version(bytes: &[u8]) -> Option<u8> {
    bytes.first().map(|b| b >> 4)
}

/// Reads a big-endian u16 at `off`; `None` past the end.
#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    match b.get(off..off.checked_add(2)?) {
        Some(&[x, y]) => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

/// Reads a big-endian u32 at `off`; `None` past the end.
#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> Option<u32> {
    match b.get(off..off.checked_add(4)?) {
        Some(&[a, c, d, e]) => Some(u32::from_be_bytes([a, c, d, e])),
        _ => None,
    }
}

/// Writes a big-endian u16 at `off`; does nothing past the end (callers
/// only write inside checked headers).
#[inline]
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    if let Some(dst) = off.checked_add(2).and_then(|end| b.get_mut(off..end)) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

/// Copies `N` bytes at `off` into an array; zeroes past the end.
#[inline]
pub(crate) fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = off.checked_add(N).and_then(|end| b.get(off..end)) {
        out.copy_from_slice(src);
    }
    out
}

/// Writes `v` at `off`; does nothing past the end.
#[inline]
pub(crate) fn put_slice(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(dst) = off.checked_add(v.len()).and_then(|end| b.get_mut(off..end)) {
        dst.copy_from_slice(v);
    }
}
