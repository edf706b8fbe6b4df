//! From bytes to a [`PacketInfo`]: the tuple and the L4 details the
//! trackers need, or a typed [`ParseError`].
//!
//! [`parse`] takes a whole packet; [`parse_prefix`] takes its first bytes
//! (the kernel glue copies at most the first 384 bytes of a non-linear
//! skb): lengths come from the headers, only the headers must be in the
//! prefix, and the result is the same as [`parse`]'s (without checksum
//! verification). Both share one implementation.
//!
//! Kernel counterpart: `nf_ct_get_tuple()`, `ipv4_get_l4proto()`,
//! `ipv6_get_l4proto()` in `net/netfilter/nf_conntrack_core.c`, the
//! `*_pkt_to_tuple()` functions and the length checks of `tcp_error()`,
//! `udp_error()`, `nf_conntrack_icmpv4_error()` and
//! `nf_conntrack_icmpv6_error()`; for ICMP errors, `nf_ct_get_tuplepr()`
//! on the quoted packet.

use crate::checksum;
use crate::ipproto;
use crate::tuple::{Family, Tuple};
use crate::wire::{self, icmpv4, icmpv6, ipv4, ipv6, tcp, udp, IpProtocol};
use core::fmt;

/// Parse settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Verify TCP / UDP / ICMP checksums. Linux (`nf_conntrack_checksum`
    /// = 1) verifies in PRE_ROUTING only, and not when the NIC or the
    /// stack already did (`skb_csum_unnecessary()`). Off by default here:
    /// the kernel glue knows per packet whether that is needed and sets
    /// it. Bad checksums give [`ParseError::BadChecksum`]. Ignored by
    /// [`parse_prefix`]: a prefix cannot be checksummed (the kernel glue
    /// calls the kernel's `nf_checksum()` on the skb instead).
    pub verify_checksums: bool,
    /// Bound on the IPv6 extension headers walked.
    pub max_ext_headers: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            verify_checksums: false,
            max_ext_headers: ipv6::MAX_EXT_HEADERS,
        }
    }
}

/// Why a packet could not be parsed into a [`PacketInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The IPv4 / IPv6 header is bad.
    Ip(wire::Error),
    /// A fragment conntrack does not track: one after the first, which
    /// has no L4 header (`ipv4_get_l4proto()`, `ipv6_get_l4proto()`), or,
    /// at LOCAL_OUT, any IPv4 fragment (an `IP_NODEFRAG` socket's, which
    /// `ipv4_conntrack_local()` leaves alone; see
    /// [`crate::process::track_verified`]). Defragmentation runs before
    /// conntrack, so a fragment reaches it only where that did not apply.
    Fragment,
    /// The TCP header is truncated or malformed.
    Tcp(wire::Error),
    /// The UDP header or length is truncated or malformed.
    Udp(wire::Error),
    /// The ICMP / ICMPv6 header is truncated.
    Icmp(wire::Error),
    /// The packet quoted by an ICMP error is unusable.
    IcmpInner,
    /// Checksum verification was requested and failed.
    BadChecksum,
    /// An IPv6 packet whose header chain ends in "no next header" (59):
    /// `ipv6_skip_exthdr()` finds no upper-layer protocol, so
    /// `ipv6_get_l4proto()` fails and nf_conntrack leaves the packet
    /// without a conntrack, INVALID for the rules.
    NoNextHeader,
}

/// The names of [`ParseError`]'s indexes. Append-only.
const PARSE_ERROR_NAMES: [&str; ParseError::COUNT] = [
    "ip_truncated",
    "ip_bad_version",
    "ip_bad_header_len",
    "ip_bad_length",
    "ip_too_many_ext_headers",
    "fragment",
    "tcp_truncated",
    "tcp_bad_version",
    "tcp_bad_header_len",
    "tcp_bad_length",
    "tcp_too_many_ext_headers",
    "udp_truncated",
    "udp_bad_version",
    "udp_bad_header_len",
    "udp_bad_length",
    "udp_too_many_ext_headers",
    "icmp_truncated",
    "icmp_bad_version",
    "icmp_bad_header_len",
    "icmp_bad_length",
    "icmp_too_many_ext_headers",
    "icmp_inner",
    "bad_checksum",
    "no_next_header",
];

impl ParseError {
    /// Number of indexes ([`ParseError::index`] is below it).
    pub const COUNT: usize = 24;

    /// A dense index in `0..COUNT`, one per layer and [`wire::Error`]
    /// (`Ip(Truncated)` 0, ..., `BadChecksum` 22), then the later kinds
    /// (`NoNextHeader` 23), for counting malformed packets by kind. Every
    /// combination has an index; the parser produces `ip_*` (but
    /// `ip_bad_version` only from [`parse_any`]), `fragment`,
    /// `tcp_truncated`, `tcp_bad_header_len`, `udp_truncated`,
    /// `udp_bad_length`, `icmp_truncated`, `icmp_inner`, `bad_checksum`
    /// and `no_next_header`.
    ///
    /// The numbering is append-only: netlink statistics carry these
    /// indexes, so a new kind gets the next free index and existing ones
    /// never change.
    pub const fn index(self) -> usize {
        use wire::Error as E;
        match self {
            ParseError::Ip(E::Truncated) => 0,
            ParseError::Ip(E::BadVersion) => 1,
            ParseError::Ip(E::BadHeaderLen) => 2,
            ParseError::Ip(E::BadLength) => 3,
            ParseError::Ip(E::TooManyExtHeaders) => 4,
            ParseError::Fragment => 5,
            ParseError::Tcp(E::Truncated) => 6,
            ParseError::Tcp(E::BadVersion) => 7,
            ParseError::Tcp(E::BadHeaderLen) => 8,
            ParseError::Tcp(E::BadLength) => 9,
            ParseError::Tcp(E::TooManyExtHeaders) => 10,
            ParseError::Udp(E::Truncated) => 11,
            ParseError::Udp(E::BadVersion) => 12,
            ParseError::Udp(E::BadHeaderLen) => 13,
            ParseError::Udp(E::BadLength) => 14,
            ParseError::Udp(E::TooManyExtHeaders) => 15,
            ParseError::Icmp(E::Truncated) => 16,
            ParseError::Icmp(E::BadVersion) => 17,
            ParseError::Icmp(E::BadHeaderLen) => 18,
            ParseError::Icmp(E::BadLength) => 19,
            ParseError::Icmp(E::TooManyExtHeaders) => 20,
            ParseError::IcmpInner => 21,
            ParseError::BadChecksum => 22,
            ParseError::NoNextHeader => 23,
        }
    }

    /// A short, stable snake_case identifier of [`ParseError::index`]
    /// (`"ip_truncated"`, `"tcp_bad_header_len"`, `"bad_checksum"`, ...).
    pub const fn name(self) -> &'static str {
        match Self::name_of_index(self.index()) {
            Some(n) => n,
            None => "unknown",
        }
    }

    /// The name of an index; `None` from [`ParseError::COUNT`] on.
    pub const fn name_of_index(i: usize) -> Option<&'static str> {
        crate::verdict::nth_name(&PARSE_ERROR_NAMES, i)
    }

    /// True for a layer's [`wire::Error::Truncated`]: the packet (or, with
    /// [`parse_prefix`], the prefix given) is shorter than its headers.
    pub const fn is_truncated(self) -> bool {
        matches!(
            self,
            ParseError::Ip(wire::Error::Truncated)
                | ParseError::Tcp(wire::Error::Truncated)
                | ParseError::Udp(wire::Error::Truncated)
                | ParseError::Icmp(wire::Error::Truncated)
        )
    }

    /// A sentence a person understands.
    pub const fn as_str(self) -> &'static str {
        match self {
            ParseError::Ip(_) => "bad IP header",
            ParseError::Fragment => "fragment not reassembled",
            ParseError::Tcp(_) => "truncated or malformed TCP header",
            ParseError::Udp(_) => "truncated or malformed UDP packet",
            ParseError::Icmp(_) => "short ICMP packet",
            ParseError::IcmpInner => "ICMP error quoting an unusable packet",
            ParseError::BadChecksum => "bad checksum",
            ParseError::NoNextHeader => "IPv6 packet with no next header",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Ip(e) | ParseError::Tcp(e) | ParseError::Udp(e) | ParseError::Icmp(e) => {
                write!(f, "{}: {}", self.as_str(), e)
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

/// Fragment status of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FragmentStatus {
    /// Not a fragment.
    #[default]
    Whole,
    /// The first fragment (offset 0, more fragments follow): it carries the
    /// L4 header but not the whole payload.
    First,
}

/// TCP details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Flag byte.
    pub flags: tcp::Flags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Window field (unscaled).
    pub window: u16,
    /// Options summary.
    pub options: tcp::Options,
    /// The header carried options (Linux re-reads the scale and SACK
    /// flags only then).
    pub has_options: bool,
    /// Payload length (from the IP length, minus the TCP header).
    pub payload_len: u32,
}

impl TcpInfo {
    /// `seq + payload + SYN + FIN`, wrapping (`segment_seq_plus_len()`).
    pub fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(self.flags.syn() as u32)
            .wrapping_add(self.flags.fin() as u32)
    }
}

/// ICMP / ICMPv6 details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpInfo {
    /// A query or reply that can be paired (echo, timestamp, info,
    /// address mask, node information): the tuple carries id/type/code.
    Query {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
    },
    /// An error message quoting a packet.
    Error {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
        /// The tuple of the quoted packet, as it was sent (Linux's
        /// `origtuple`). The connection it belongs to is found by looking
        /// up its inverse.
        quoted: Tuple,
    },
    /// A type conntrack leaves alone (ICMPv6 neighbour discovery and
    /// multicast listener messages).
    Untracked {
        /// Message type.
        ty: u8,
    },
    /// Any other type (unknown, or not starting a connection).
    Other {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
    },
}

/// L4 details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Info {
    /// TCP.
    Tcp(TcpInfo),
    /// UDP.
    Udp {
        /// Payload length (from the UDP length field).
        payload_len: u16,
    },
    /// ICMP or ICMPv6.
    Icmp(IcmpInfo),
    /// Any other protocol (tracked by the generic tracker).
    Other,
}

/// The L4 checksum of a packet, where nf_conntrack verifies one: what
/// `nf_checksum()` is given (see [`crate::process::track_verified`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Checksum {
    /// Where the L4 header starts, counted from the IP header (Linux's
    /// `dataoff`): the checksum covers the packet from there to its end.
    pub offset: u16,
    /// The protocol (`IPPROTO_TCP`, `IPPROTO_UDP`, `IPPROTO_ICMP`,
    /// `IPPROTO_ICMPV6`): it selects the pseudo-header.
    pub proto: u8,
}

impl L4Checksum {
    /// True when the checksum is right in `packet` (the whole packet, from
    /// its IP header, of `family`): the sum over the bytes from
    /// [`L4Checksum::offset`] to the end the IP header gives (an IPv6
    /// payload length of 0: to the end of `packet`, which the stack does
    /// not trim then), with the pseudo-header except for ICMP, as
    /// `nf_checksum()` computes it on an skb (to `skb->len`). The host's
    /// counterpart of the kernel glue's call, for tests and host tools;
    /// `false` when the packet is shorter than its IP header says.
    pub fn verify(&self, packet: &[u8], family: Family) -> bool {
        let v4 = ipv4::Packet::new_unchecked(packet);
        let v6 = ipv6::Packet::new_unchecked(packet);
        let (total, ok) = match family {
            Family::Ipv4 => {
                let t = usize::from(v4.total_len());
                (t, v4.check_header_len_any_version(t).is_ok())
            }
            Family::Ipv6 => match v6.payload_len() {
                0 => (packet.len(), v6.check_header_len_any_version().is_ok()),
                n => (
                    ipv6::HEADER_LEN + usize::from(n),
                    v6.check_header_len_any_version().is_ok(),
                ),
            },
        };
        if !ok {
            return false;
        }
        let Some(l4) = packet.get(usize::from(self.offset)..total) else {
            return false;
        };
        let pseudo = match family {
            // ICMP's checksum covers the message alone.
            Family::Ipv4 if self.proto == ipproto::ICMP => 0,
            Family::Ipv4 => checksum::pseudo_header_v4(
                &v4.src_addr(),
                &v4.dst_addr(),
                self.proto,
                l4.len() as u16,
            ),
            Family::Ipv6 => checksum::pseudo_header_v6(
                &v6.src_addr(),
                &v6.dst_addr(),
                self.proto,
                l4.len() as u32,
            ),
        };
        checksum::verify(checksum::add(checksum::data(l4), pseudo))
    }
}

/// What conntrack needs from one packet. Small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// The tuple of the packet. For ICMP it holds the identifier, type and
    /// code of every message, as Linux's `icmp_pkt_to_tuple()`; for ICMP
    /// errors the connection is found through the `quoted` tuple of
    /// [`IcmpInfo::Error`] instead.
    pub tuple: Tuple,
    /// L4 details.
    pub l4: L4Info,
    /// Fragment status.
    pub fragment: FragmentStatus,
    /// Length of the IP packet (header included), for the byte counters.
    pub ip_len: u32,
    /// The L4 checksum conntrack verifies, when the packet carries one:
    /// TCP, UDP with a checksum (a zero field is "none", and `udp_error()`
    /// accepts it in either family), ICMP in IPv4, ICMPv6 in IPv6; `None`
    /// for other protocols (rfw tracks them with the generic tracker,
    /// which checks no checksum). A first fragment has one too:
    /// nf_conntrack's `*_error()` sum what the skb holds, and a fragment's
    /// checksum covers bytes it lacks, so it fails at PRE_ROUTING (where
    /// one arrives only when defragmentation let it through: IPv6's
    /// `nf_ct_frag6_gather()` returns an unaligned fragment untouched).
    pub checksum: Option<L4Checksum>,
    /// A defect for which nf_conntrack calls the packet INVALID although
    /// its headers could be read: the fields above stand (rules match
    /// them, as nft's and xt's matches read the headers whatever
    /// conntrack says), and [`track`](crate::track) gives INVALID for it
    /// without touching the table. Only for a first fragment whose UDP
    /// length counts more bytes than it has, `Udp(Truncated)`:
    /// `udp_error()`'s "truncated/malformed packet", which Linux finds
    /// in a fragment defragmentation hands on as it is (an unaligned IPv6
    /// fragment: `nf_ct_frag6_queue()`'s `-EPROTO`). A whole packet with
    /// that defect does not parse.
    pub invalid: Option<ParseError>,
}

/// Parses an IP packet starting at the IP header. `bytes` holds the
/// whole packet (bytes past the length in the IP header, such as
/// link-layer padding, are ignored). The family is the caller's, as
/// nf_conntrack takes it from the hook: the version nibble is not read
/// (`ipv4_get_l4proto()` and `ipv6_get_l4proto()` do not; [`parse_any`]
/// reads it to choose the family).
pub fn parse(bytes: &[u8], family: Family, opts: &ParseOptions) -> Result<PacketInfo, ParseError> {
    match family {
        Family::Ipv4 => parse_v4(bytes, opts, Have::Whole),
        Family::Ipv6 => parse_v6(bytes, opts, Have::Whole),
    }
}

/// Parses an IP packet, taking the family from its version nibble.
pub fn parse_any(bytes: &[u8], opts: &ParseOptions) -> Result<PacketInfo, ParseError> {
    parse_any_with(bytes, opts, Have::Whole)
}

/// Parses the first bytes of an IP packet: the kernel glue's path, which
/// copies a prefix of a (possibly non-linear) skb into a stack buffer.
///
/// `prefix` starts at the IP header; the packet's full length is the one
/// its IP header gives (or, with [`parse_prefix_len`], the skb's), and
/// the caller guarantees that the packet is that long. Every length is
/// derived from it, never from `prefix.len()`: [`PacketInfo::ip_len`],
/// the TCP payload length, the UDP length check against the IP payload
/// length. The headers themselves must lie within `prefix`: the IPv4
/// header with its options, the IPv6 extension header chain, the TCP
/// header with its options, the UDP header, the ICMP header and, for ICMP
/// errors, what [`parse`] reads of the quoted packet (its IP header and
/// extension headers, then the ports of TCP and UDP or the 8-byte ICMP
/// header); otherwise the error is the layer's `Truncated`
/// ([`ParseError::is_truncated`]).
///
/// When `prefix` holds all the headers the result is exactly that of
/// [`parse`] on the whole packet with `verify_checksums` off: a prefix
/// cannot be checksummed, so `opts.verify_checksums` is ignored (the
/// kernel glue calls the kernel's `nf_checksum()` on the skb instead, as
/// nf_conntrack does).
pub fn parse_prefix(
    prefix: &[u8],
    family: Family,
    opts: &ParseOptions,
) -> Result<PacketInfo, ParseError> {
    parse_prefix_len(prefix, family, opts, None)
}

/// [`parse_prefix`] for a packet whose length the caller knows:
/// `skb_len` is its length from the IP header on (`skb->len` minus the
/// network offset; the kernel glue always gives it). That is the packet's
/// length whatever its IP header's length field says, as in nf_conntrack,
/// which never reads `tot_len` or `payload_len`: `ipv4_get_l4proto()`
/// checks the header against `skb->len`, and the `*_error()` functions
/// take `skb->len - dataoff` as the L4 length. The two agree wherever the
/// input path has been (`ip_rcv_core()` and `ip6_rcv_core()` trim the skb
/// to the field and drop a packet shorter than it), except for
/// - a BIG TCP GSO packet, whose field is 0 (Linux's `iph_totlen()` and
///   `ipv6_payload_len()` then take the skb's length too);
/// - an IPv6 packet with payload length 0 and a hop-by-hop header first,
///   which `ip6_rcv_core()` leaves as it is (a jumbogram, which
///   `ipv6_hop_jumbo()` trims to its jumbo length, or one with no jumbo
///   option at all, which goes on untrimmed);
/// - at LOCAL_OUT, a raw IPv6 socket's packet, which `rawv6_send_hdrinc()`
///   sends with the payload length the user wrote (IPv4's
///   `raw_send_hdrinc()` sets `tot_len` to the length sent).
///
/// Without `skb_len`, [`parse_prefix`]: the lengths come from the header.
pub fn parse_prefix_len(
    prefix: &[u8],
    family: Family,
    opts: &ParseOptions,
    skb_len: Option<u32>,
) -> Result<PacketInfo, ParseError> {
    let have = Have::Prefix {
        skb_len: skb_len.map(|n| n as usize),
    };
    match family {
        Family::Ipv4 => parse_v4(prefix, opts, have),
        Family::Ipv6 => parse_v6(prefix, opts, have),
    }
}

/// [`parse_prefix`], taking the family from the version nibble.
pub fn parse_prefix_any(prefix: &[u8], opts: &ParseOptions) -> Result<PacketInfo, ParseError> {
    parse_any_with(prefix, opts, Have::Prefix { skb_len: None })
}

/// How much of the packet the parser is given. One implementation serves
/// both: lengths come from the headers (the "wire" lengths), bytes are
/// read from what is there; with the whole packet the two are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Have {
    /// The whole packet ([`parse`]): the buffer must hold the length the
    /// IP header gives.
    Whole,
    /// A prefix ([`parse_prefix`]): only the headers must be there.
    Prefix {
        /// The packet's length as the skb holds it ([`parse_prefix_len`]).
        skb_len: Option<usize>,
    },
}

impl Have {
    /// The packet's length when the caller gave the skb's: it stands for
    /// the IP header's length field ([`parse_prefix_len`]).
    fn skb_len(self) -> Option<usize> {
        match self {
            Have::Prefix { skb_len } => skb_len,
            Have::Whole => None,
        }
    }
}

/// The bytes of a layer that are there and the layer's length on the
/// wire (`bytes.len() <= wire_len`; equal with [`Have::Whole`]).
#[derive(Debug, Clone, Copy)]
struct Layer<'a> {
    bytes: &'a [u8],
    wire_len: usize,
}

impl<'a> Layer<'a> {
    /// The part of the packet after the first `n` bytes.
    fn after(self, n: usize) -> Layer<'a> {
        Layer {
            bytes: self.bytes.get(n..).unwrap_or(&[]),
            wire_len: self.wire_len.saturating_sub(n),
        }
    }

    /// True when bytes of this layer are missing from the buffer.
    fn is_cut(&self) -> bool {
        self.bytes.len() < self.wire_len
    }
}

/// The IP packet's bytes that are there, up to its length on the wire.
fn ip_layer(bytes: &[u8], wire_len: usize) -> Layer<'_> {
    Layer {
        bytes: bytes.get(..wire_len).unwrap_or(bytes),
        wire_len,
    }
}

fn parse_any_with(bytes: &[u8], opts: &ParseOptions, have: Have) -> Result<PacketInfo, ParseError> {
    match wire::ip_version(bytes) {
        Some(ipv4::VERSION) => parse_v4(bytes, opts, have),
        Some(ipv6::VERSION) => parse_v6(bytes, opts, have),
        Some(_) => Err(ParseError::Ip(wire::Error::BadVersion)),
        None => Err(ParseError::Ip(wire::Error::Truncated)),
    }
}

fn parse_v4(bytes: &[u8], opts: &ParseOptions, have: Have) -> Result<PacketInfo, ParseError> {
    let ip = ipv4::Packet::new_unchecked(bytes);
    let total = have.skb_len().unwrap_or(ip.total_len() as usize);
    // Any version nibble: the family is the caller's (`ipv4_get_l4proto()`
    // reads none; a raw socket's packet reaches LOCAL_OUT with any).
    ip.check_header_len_any_version(total)
        .map_err(ParseError::Ip)?;
    if have == Have::Whole && bytes.len() < total {
        return Err(ParseError::Ip(wire::Error::Truncated));
    }
    if ip.frag_offset() != 0 {
        return Err(ParseError::Fragment);
    }
    let fragment = if ip.more_frags() {
        FragmentStatus::First
    } else {
        FragmentStatus::Whole
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let payload = ip_layer(bytes, total).after(ip.header_len() as usize);
    let proto: u8 = ip.next_header().into();
    let pseudo = |len: usize| checksum::pseudo_header_v4(&src, &dst, proto, len as u16);
    let verify = have == Have::Whole && opts.verify_checksums;
    let base = Tuple::v4(src, dst, proto, 0, 0);
    let first = fragment == FragmentStatus::First;
    let (tuple, l4, invalid) = l4(base, payload, verify, first, &pseudo, opts)?;
    let checksum = l4_checksum(&l4, payload, ip.header_len().into(), proto);
    Ok(PacketInfo {
        tuple,
        l4,
        fragment,
        ip_len: total as u32,
        checksum,
        invalid,
    })
}

fn parse_v6(bytes: &[u8], opts: &ParseOptions, have: Have) -> Result<PacketInfo, ParseError> {
    let ip = ipv6::Packet::new_unchecked(bytes);
    // Any version nibble: the family is the caller's (`ipv6_get_l4proto()`
    // reads none; a raw socket's packet reaches LOCAL_OUT with any).
    ip.check_header_len_any_version().map_err(ParseError::Ip)?;
    let total = match have.skb_len() {
        // At least the fixed header (an skb the glue got wrong).
        Some(n) => n.max(ipv6::HEADER_LEN),
        None => ipv6::HEADER_LEN + ip.payload_len() as usize,
    };
    if have == Have::Whole && bytes.len() < total {
        return Err(ParseError::Ip(wire::Error::Truncated));
    }
    let packet = ip_layer(bytes, total);
    // The chain must be in the bytes that are there (and within the
    // packet's length). Unbounded in effect, as `ipv6_skip_exthdr()` is
    // (`ipv6::MAX_EXT_HEADERS`).
    let ul = ipv6::walk_ext_headers(packet.bytes, opts.max_ext_headers).map_err(ParseError::Ip)?;
    let fragment = match ul.fragment {
        Some(f) if f.offset != 0 => return Err(ParseError::Fragment),
        Some(f) if f.more => FragmentStatus::First,
        _ => FragmentStatus::Whole,
    };
    // `ipv6_skip_exthdr()` returns -1 at "no next header", so
    // `ipv6_get_l4proto()` fails: no conntrack, INVALID (not a packet of
    // the generic tracker).
    if ul.protocol == IpProtocol::Ipv6NoNxt {
        return Err(ParseError::NoNextHeader);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let payload = packet.after(ul.offset);
    let proto: u8 = ul.protocol.into();
    let pseudo = |len: usize| checksum::pseudo_header_v6(&src, &dst, proto, len as u32);
    let verify = have == Have::Whole && opts.verify_checksums;
    let base = Tuple::v6(src, dst, proto, 0, 0);
    let first = fragment == FragmentStatus::First;
    let (tuple, l4, invalid) = l4(base, payload, verify, first, &pseudo, opts)?;
    let checksum = l4_checksum(&l4, payload, ul.offset, proto);
    Ok(PacketInfo {
        tuple,
        l4,
        fragment,
        ip_len: total as u32,
        checksum,
        invalid,
    })
}

/// The tuple's ports (or ICMP id, type and code), the L4 details and, if
/// any, [`PacketInfo::invalid`].
fn l4(
    mut t: Tuple,
    payload: Layer<'_>,
    verify: bool,
    first_fragment: bool,
    pseudo: &dyn Fn(usize) -> u16,
    opts: &ParseOptions,
) -> Result<(Tuple, L4Info, Option<ParseError>), ParseError> {
    // `verify` is only set with the whole packet: `payload.bytes` is then
    // the whole L4 segment.
    let bytes = payload.bytes;
    match (t.family, t.proto) {
        (_, ipproto::TCP) => {
            let p = tcp::Packet::new_checked(bytes).map_err(ParseError::Tcp)?;
            if verify && !p.verify_checksum(pseudo(bytes.len())) {
                return Err(ParseError::BadChecksum);
            }
            t.src_port = p.src_port();
            t.dst_port = p.dst_port();
            let info = TcpInfo {
                flags: p.flags(),
                seq: p.seq_number(),
                ack: p.ack_number(),
                window: p.window_len(),
                options: tcp::parse_options(p.options()),
                has_options: !p.options().is_empty(),
                payload_len: payload.wire_len.saturating_sub(p.header_len() as usize) as u32,
            };
            Ok((t, L4Info::Tcp(info), None))
        }
        (_, ipproto::UDP) => {
            let p = udp::Packet::new_unchecked(bytes);
            p.check_header_len().map_err(ParseError::Udp)?;
            // `udp_error()`: "truncated/malformed packet" when the length
            // field is below 8 or above the bytes after the header's start
            // (`skb->len - dataoff`).
            let invalid = match p.check_len_within(payload.wire_len) {
                Ok(()) => None,
                // A first fragment that defragmentation handed on as it is
                // (an unaligned IPv6 fragment) counts the fragments to come
                // in its UDP length: INVALID, as `udp_error()` finds, but its
                // header is whole and rules read its ports (xt_udp, nft's
                // payload matches): they stay, for the rules.
                Err(e @ wire::Error::Truncated) if first_fragment => Some(ParseError::Udp(e)),
                Err(e) => return Err(ParseError::Udp(e)),
            };
            if verify && invalid.is_none() && !p.verify_checksum(pseudo(p.len() as usize)) {
                return Err(ParseError::BadChecksum);
            }
            t.src_port = p.src_port();
            t.dst_port = p.dst_port();
            let payload_len = p.len().saturating_sub(udp::HEADER_LEN as u16);
            Ok((t, L4Info::Udp { payload_len }, invalid))
        }
        (Family::Ipv4, ipproto::ICMP) => {
            let p = icmpv4::Packet::new_checked(bytes).map_err(ParseError::Icmp)?;
            if verify && !p.verify_checksum() {
                return Err(ParseError::BadChecksum);
            }
            let (ty, code) = (p.msg_type(), p.msg_code());
            // icmp_pkt_to_tuple(): id, type and code, for every message.
            t.src_port = p.echo_ident();
            t.dst_port = u16::from_be_bytes([ty, code]);
            let info = if icmpv4::is_error(ty) {
                let data = payload.after(icmpv4::HEADER_LEN);
                let quoted = quoted_tuple(data, Family::Ipv4, opts)?;
                IcmpInfo::Error { ty, code, quoted }
            } else if icmpv4::inverse_type(ty).is_some() {
                IcmpInfo::Query { ty, code }
            } else {
                IcmpInfo::Other { ty, code }
            };
            Ok((t, L4Info::Icmp(info), None))
        }
        (Family::Ipv6, ipproto::ICMPV6) => {
            let p = icmpv6::Packet::new_checked(bytes).map_err(ParseError::Icmp)?;
            if verify && !p.verify_checksum(pseudo(bytes.len())) {
                return Err(ParseError::BadChecksum);
            }
            let (ty, code) = (p.msg_type(), p.msg_code());
            // icmpv6_pkt_to_tuple(): id, type and code, for every message.
            t.src_port = p.echo_ident();
            t.dst_port = u16::from_be_bytes([ty, code]);
            let info = if icmpv6::is_untracked(ty) {
                IcmpInfo::Untracked { ty }
            } else if icmpv6::is_error(ty) {
                let data = payload.after(icmpv6::HEADER_LEN);
                let quoted = quoted_tuple(data, Family::Ipv6, opts)?;
                IcmpInfo::Error { ty, code, quoted }
            } else if icmpv6::inverse_type(ty).is_some() {
                IcmpInfo::Query { ty, code }
            } else {
                IcmpInfo::Other { ty, code }
            };
            Ok((t, L4Info::Icmp(info), None))
        }
        _ => Ok((t, L4Info::Other, None)),
    }
}

/// [`PacketInfo::checksum`] of a parsed packet whose L4 header starts
/// `offset` bytes into it (a first fragment's too: nf_conntrack sums what
/// the skb has).
fn l4_checksum(l4: &L4Info, payload: Layer<'_>, offset: usize, proto: u8) -> Option<L4Checksum> {
    let carries = match l4 {
        L4Info::Tcp(_) | L4Info::Icmp(_) => true,
        // `udp_error()`: "Packet with no checksum".
        L4Info::Udp { .. } => udp::Packet::new_unchecked(payload.bytes).checksum() != 0,
        L4Info::Other => false,
    };
    let offset = u16::try_from(offset).ok()?;
    carries.then_some(L4Checksum { offset, proto })
}

/// Why a quoted packet is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Too short for what is read of it.
    Short,
    /// Malformed.
    Bad,
}

/// The tuple of the packet quoted in an ICMP error, as
/// `nf_ct_get_tuplepr()` reads it: the IP header (and IPv6 extension
/// headers) must be whole; of the L4 header, TCP and UDP need only their
/// ports (`nf_ct_get_tuple_ports()`: 4 bytes, which a router that quotes
/// the bare minimum leaves), ICMP its 8-byte header
/// (`icmp_pkt_to_tuple()`). The quoted packet is usually cut short, so
/// its length fields are not checked against the buffer, and, as for the
/// outer packet, its version nibble is not read. Unusable:
/// [`ParseError::IcmpInner`] or, when the quote is short because the
/// caller gave only a prefix of the packet, `Icmp(Truncated)`.
fn quoted_tuple(data: Layer<'_>, family: Family, opts: &ParseOptions) -> Result<Tuple, ParseError> {
    quoted(data.bytes, family, opts).map_err(|e| match e {
        Quote::Short if data.is_cut() => ParseError::Icmp(wire::Error::Truncated),
        _ => ParseError::IcmpInner,
    })
}

fn quoted(data: &[u8], family: Family, opts: &ParseOptions) -> Result<Tuple, Quote> {
    let (mut t, l4) = match family {
        Family::Ipv4 => {
            if data.len() < ipv4::HEADER_LEN {
                return Err(Quote::Short);
            }
            let ip = ipv4::Packet::new_unchecked(data);
            let hl = ip.header_len() as usize;
            if hl < ipv4::HEADER_LEN || ip.frag_offset() != 0 {
                return Err(Quote::Bad);
            }
            let l4 = data.get(hl..).ok_or(Quote::Short)?;
            let proto = ip.next_header().into();
            (Tuple::v4(ip.src_addr(), ip.dst_addr(), proto, 0, 0), l4)
        }
        Family::Ipv6 => {
            if data.len() < ipv6::HEADER_LEN {
                return Err(Quote::Short);
            }
            let ip = ipv6::Packet::new_unchecked(data);
            let ul = quoted_v6_upper(data, opts.max_ext_headers)?;
            let l4 = data.get(ul.offset..).ok_or(Quote::Short)?;
            let proto = ul.protocol.into();
            (Tuple::v6(ip.src_addr(), ip.dst_addr(), proto, 0, 0), l4)
        }
    };
    match (family, t.proto) {
        (_, ipproto::TCP) | (_, ipproto::UDP) => {
            // The ports start both headers.
            let p = udp::Packet::new_unchecked(l4);
            p.check_ports_len().map_err(|_| Quote::Short)?;
            t.src_port = p.src_port();
            t.dst_port = p.dst_port();
        }
        (Family::Ipv4, ipproto::ICMP) => {
            let p = icmpv4::Packet::new_checked(l4).map_err(|_| Quote::Short)?;
            // An error quoting an error is not tracked (`icmp_is_err` on
            // the inner type fails the inversion too).
            t.src_port = p.echo_ident();
            t.dst_port = u16::from_be_bytes([p.msg_type(), p.msg_code()]);
        }
        (Family::Ipv6, ipproto::ICMPV6) => {
            let p = icmpv6::Packet::new_checked(l4).map_err(|_| Quote::Short)?;
            t.src_port = p.echo_ident();
            t.dst_port = u16::from_be_bytes([p.msg_type(), p.msg_code()]);
        }
        _ => {}
    }
    Ok(t)
}

fn quoted_v6_upper(data: &[u8], max: usize) -> Result<ipv6::UpperLayer, Quote> {
    // The quoted header's payload length describes the original packet,
    // not the quote: walk over the bytes that are there.
    let ul = ipv6::walk_ext_headers(data, max).map_err(|e| match e {
        wire::Error::Truncated => Quote::Short,
        _ => Quote::Bad,
    })?;
    if ul.fragment.is_some_and(|f| f.offset != 0) || ul.protocol == IpProtocol::Ipv6NoNxt {
        return Err(Quote::Bad);
    }
    Ok(ul)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1:49152 -> 192.168.0.2:80, SYN, seq 0x01020304, win 29200,
    // MSS 1460, SACK_PERM, TS 0x0a0b0c0d/0, NOP, WS 7. Checksums filled.
    const SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0xb9, 0x67, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0x02, // IPv4
        0xc0, 0x00, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0x72,
        0x10, 0x00, 0x00, 0x00, 0x00, // TCP
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn literal_tcp_syn() {
        let info = parse(&SYN, Family::Ipv4, &ParseOptions::default()).unwrap();
        assert_eq!(info.tuple.src_v4(), [192, 168, 0, 1]);
        assert_eq!(info.tuple.dst_v4(), [192, 168, 0, 2]);
        assert_eq!((info.tuple.src_port, info.tuple.dst_port), (49152, 80));
        assert_eq!(info.tuple.proto, ipproto::TCP);
        assert_eq!(info.ip_len, 60);
        assert_eq!(info.fragment, FragmentStatus::Whole);
        let L4Info::Tcp(t) = info.l4 else {
            panic!("not TCP")
        };
        assert!(t.flags.syn() && !t.flags.ack());
        assert_eq!(t.seq, 0x0102_0304);
        assert_eq!(t.window, 29200);
        assert_eq!(t.payload_len, 0);
        assert_eq!(t.end(), 0x0102_0305);
        assert!(t.has_options);
        assert_eq!(t.options.mss, Some(1460));
        assert_eq!(t.options.wscale, Some(7));
        assert!(t.options.sack_permitted);
        assert_eq!(t.options.timestamps, Some((0x0a0b_0c0d, 0)));
        // The IPv4 header checksum of the literal is right.
        assert!(ipv4::Packet::new_checked(&SYN[..])
            .unwrap()
            .verify_checksum());
        // The family is the caller's: the version nibble is not read (an
        // IPv4 packet parsed as IPv6 is whatever its bytes say then), as
        // nf_conntrack reads none. Truncation is a typed error.
        let as_v6 = parse(&SYN, Family::Ipv6, &ParseOptions::default()).unwrap();
        assert_eq!(as_v6.tuple.family, Family::Ipv6);
        assert_eq!(as_v6.l4, L4Info::Other);
        let mut v5 = SYN;
        v5[0] = 0x55;
        assert_eq!(
            parse(&v5, Family::Ipv4, &ParseOptions::default()).map(|i| i.tuple),
            Ok(info.tuple)
        );
        assert_eq!(
            parse(&SYN[..30], Family::Ipv4, &ParseOptions::default()),
            Err(ParseError::Ip(wire::Error::Truncated))
        );
        let mut cut = SYN;
        cut[3] = 30; // total length 30: the TCP header does not fit
        assert_eq!(
            parse(&cut[..30], Family::Ipv4, &ParseOptions::default()),
            Err(ParseError::Tcp(wire::Error::Truncated))
        );
        assert_eq!(
            parse_any(&[0x55], &ParseOptions::default()),
            Err(ParseError::Ip(wire::Error::BadVersion))
        );
    }

    #[test]
    fn checksum_verification() {
        let opts = ParseOptions {
            verify_checksums: true,
            ..ParseOptions::default()
        };
        // The literal's TCP checksum is zero: wrong.
        assert_eq!(
            parse(&SYN, Family::Ipv4, &opts),
            Err(ParseError::BadChecksum)
        );
        let mut good = SYN;
        let ph = checksum::pseudo_header_v4(&[192, 168, 0, 1], &[192, 168, 0, 2], 6, 40);
        let mut t = tcp::Packet::new_unchecked(&mut good[20..]);
        t.fill_checksum(ph);
        assert!(parse(&good, Family::Ipv4, &opts).is_ok());
    }

    #[test]
    fn literal_icmp_error_quotes_udp() {
        // 10.0.0.9 -> 10.0.0.1: port unreachable quoting 10.0.0.1:5000 ->
        // 10.0.0.2:53 UDP.
        let pkt: [u8; 56] = [
            0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1, // outer IPv4
            3, 3, 0, 0, 0, 0, 0, 0, // ICMP port unreachable
            0x45, 0, 0, 128, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // inner IPv4
            0x13, 0x88, 0x00, 0x35, 0x00, 0x6c, 0x00, 0x00, // inner UDP header
        ];
        let info = parse(&pkt, Family::Ipv4, &ParseOptions::default()).unwrap();
        let L4Info::Icmp(IcmpInfo::Error { ty, code, quoted }) = info.l4 else {
            panic!("not an ICMP error: {:?}", info.l4)
        };
        assert_eq!((ty, code), (3, 3));
        assert_eq!(
            quoted,
            Tuple::v4([10, 0, 0, 1], [10, 0, 0, 2], ipproto::UDP, 5000, 53)
        );
        assert_eq!(info.tuple.dst_v4(), [10, 0, 0, 1]);
    }
}
