// SPDX-License-Identifier: GPL-2.0

//! The packet at one hook and its metadata for rules (nf_tables.h's
//! `nft_pktinfo`, nft_meta.c / xt_* matches): parsing the skb's headers,
//! the devices, mark and state the rules match on.

use core::net::IpAddr;

use conntrack::parse::{IcmpInfo, L4Info, PacketInfo};
use conntrack::wire::{ipv4, ipv6};
use conntrack::{ipproto, CtState, Family, Hook, Tuple};
use nat::eval::PacketMeta;
use nat::nat_core;
use nat::rule::IfName;

use crate::ct::hook::PREFIX;
use crate::ct::net::CtNet;
use crate::sys::netdevice::NetDevice;
use crate::sys::netfilter::HookState;
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::{HeaderBuf, SkBuff};

/// Bytes copied for the parser first when the headers are not all in
/// the skb's linear area (see `Pkt::parse`).
const SHORT_PREFIX: usize = 128;

/// What [`Pkt::parse`] found: the hook, the family, the headers or the
/// bare IP header's metadata, the IP protocol.
struct Fields {
    hook: Hook,
    family: Family,
    info: Option<PacketInfo>,
    bare: Option<PacketMeta>,
    proto: u8,
}

/// A packet at one hook.
pub(super) struct Pkt<'s> {
    pub(super) skb: &'s mut SkBuff,
    pub(super) state: &'s HookState,
    pub(super) hook: Hook,
    pub(super) family: Family,
    /// Parsed headers, `None` if they could not be parsed.
    pub(super) info: Option<PacketInfo>,
    /// IP protocol.
    pub(super) proto: u8,
    /// The packet's state for rules.
    pub(super) ct_state: CtState,
    /// Evaluation metadata, built when a rule table first needs it (most
    /// packets of an established connection meet no table at PRE_ROUTING
    /// and POST_ROUTING); from the bare IP header, at once, for a packet
    /// whose headers could not be parsed. Always `Some` when `info` is
    /// `None`.
    pub(super) meta: Option<PacketMeta>,
}

fn dev_name(dev: Option<&NetDevice>) -> IfName {
    let mut n = IfName::NONE;
    let Some(dev) = dev else {
        return n;
    };
    let raw = dev.name();
    for (b, c) in n.0.iter_mut().zip(raw).take(nat::rule::IFNAMSIZ - 1) {
        if c == 0 {
            break;
        }
        *b = c;
    }
    n
}

fn addr_of(t: &Tuple, a: &[u8; 16]) -> IpAddr {
    nat_core::tuple_addr(t, a)
}

/// Metadata from parsed headers.
fn meta_of(info: &PacketInfo, family: Family, len: u32) -> PacketMeta {
    let t = &info.tuple;
    let (mut sport, mut dport, mut icmp_type, mut icmp_code, mut tcp_flags) = (0, 0, 0, 0, 0);
    match &info.l4 {
        L4Info::Tcp(tcp) => {
            (sport, dport) = (t.src_port, t.dst_port);
            tcp_flags = tcp.flags.0;
        }
        L4Info::Udp { .. } => (sport, dport) = (t.src_port, t.dst_port),
        L4Info::Icmp(i) => {
            (icmp_type, icmp_code) = match *i {
                IcmpInfo::Query { ty, code } => (ty, code),
                IcmpInfo::Error { ty, code, .. } => (ty, code),
                IcmpInfo::Untracked { ty } => (ty, 0),
                IcmpInfo::Other { ty, code } => (ty, code),
            }
        }
        L4Info::Other => {
            if matches!(t.proto, ipproto::SCTP | ipproto::DCCP | ipproto::UDPLITE) {
                (sport, dport) = (t.src_port, t.dst_port);
            }
        }
    }
    PacketMeta {
        family,
        proto: t.proto,
        src: addr_of(t, &t.src),
        dst: addr_of(t, &t.dst),
        sport,
        dport,
        in_if: IfName::NONE,
        out_if: IfName::NONE,
        ct_state: CtState::Untracked,
        mark: 0,
        icmp_type,
        icmp_code,
        tcp_flags,
        fragment: false,
        len,
    }
}

/// Metadata of a packet nothing is known of but its family and protocol:
/// it matches as a fragment whose addresses are unspecified.
fn meta_unknown(family: Family, proto: u8, len: u32) -> PacketMeta {
    let any = match family {
        Family::Ipv4 => IpAddr::from([0u8; 4]),
        Family::Ipv6 => IpAddr::from([0u8; 16]),
    };
    PacketMeta {
        family,
        proto,
        src: any,
        dst: any,
        sport: 0,
        dport: 0,
        in_if: IfName::NONE,
        out_if: IfName::NONE,
        ct_state: CtState::Invalid,
        mark: 0,
        icmp_type: 0,
        icmp_code: 0,
        tcp_flags: 0,
        fragment: true,
        len,
    }
}

/// Metadata from the bare IP header of a packet conntrack could not parse
/// (a non-first fragment, a malformed L4 header): addresses and protocol
/// only; port, ICMP and flag matches fail on it as on a fragment.
fn meta_bare(bytes: &[u8], family: Family, len: u32) -> Option<PacketMeta> {
    // The fixed header's fields, unchecked (the parse that failed may
    // have rejected its version or lengths): the packet matches by what
    // these bytes say.
    let (proto, src, dst) = match family {
        Family::Ipv4 => {
            let h = ipv4::Packet::new_unchecked(bytes.get(..ipv4::HEADER_LEN)?);
            let (s, d) = (IpAddr::from(h.src_addr()), IpAddr::from(h.dst_addr()));
            (u8::from(h.next_header()), s, d)
        }
        Family::Ipv6 => {
            let h = ipv6::Packet::new_unchecked(bytes.get(..ipv6::HEADER_LEN)?);
            let (s, d) = (IpAddr::from(h.src_addr()), IpAddr::from(h.dst_addr()));
            (u8::from(h.next_header()), s, d)
        }
    };
    Some(PacketMeta {
        src,
        dst,
        ..meta_unknown(family, proto, len)
    })
}

/// What [`parse_linear`] or [`parse_prefix`] found.
struct Parsed {
    /// The headers, or the parse error and the bare IP header's metadata.
    parsed: core::result::Result<PacketInfo, (conntrack::parse::ParseError, Option<PacketMeta>)>,
    /// The parse ran out of bytes, and the packet has more than it was
    /// given (as many as `N` for a copy): more bytes may help.
    truncated_at_end: bool,
}

/// Parses `bytes`, the packet's first bytes from its network header.
///
/// The packet's length is the skb's, not its IP header's length field, as
/// for nf_conntrack (`conntrack::parse::parse_prefix_len` says where the
/// two differ: BIG TCP, an IPv6 payload length of 0 behind which the stack
/// kept the bytes, a raw IPv6 socket's packet at LOCAL_OUT).
fn parse_bytes(
    bytes: &[u8],
    skb: &SkBuff,
    family: Family,
    opts: &conntrack::parse::ParseOptions,
    truncated_at_end: impl FnOnce(usize) -> bool,
) -> Parsed {
    let parsed = conntrack::parse::parse_prefix_len(bytes, family, opts, skb.network_len());
    let truncated_at_end =
        matches!(&parsed, Err(e) if e.is_truncated()) && truncated_at_end(bytes.len());
    Parsed {
        parsed: parsed.map_err(|e| (e, meta_bare(bytes, family, skb.len()))),
        truncated_at_end,
    }
}

/// Parses the packet's headers where they lie, in the skb's linear area
/// (at most [`PREFIX`] bytes of it: the most the parser is ever given);
/// `None` when they are not all there but the packet has more bytes
/// (paged data: the caller copies them).
///
/// The parser's result on a prefix that holds every header is its result
/// on the whole packet (`conntrack::parse::parse_prefix`), and a prefix
/// that does not gives a truncation error: so this is what parsing the
/// copied prefix would give, without the copy.
fn parse_linear(
    skb: &SkBuff,
    family: Family,
    opts: &conntrack::parse::ParseOptions,
) -> Option<Parsed> {
    let bytes = skb.network_linear(PREFIX);
    if bytes.is_empty() {
        return None;
    }
    let all = skb.network_bytes().min(PREFIX);
    let r = parse_bytes(bytes, skb, family, opts, |n| n < all);
    (!r.truncated_at_end).then_some(r)
}

/// Parses the packet's first `N` bytes from its network header, copied
/// unless the skb's linear area holds them. `None` when not even one byte
/// could be read.
fn parse_prefix<const N: usize>(
    skb: &SkBuff,
    family: Family,
    opts: &conntrack::parse::ParseOptions,
) -> Option<Parsed> {
    let mut buf = HeaderBuf::<N>::new();
    let bytes = skb.network_header(&mut buf)?;
    Some(parse_bytes(bytes, skb, family, opts, |n| n == N))
}

impl<'s> Pkt<'s> {
    /// Parses the packet, or takes `cached` (its headers as an earlier
    /// hook of the same packet parsed them, see [`Slot`]); `None` for what
    /// rfw leaves alone (not IP, or too short for an IP header).
    pub(super) fn new(
        ct: &CtNet,
        rcu: &Rcu,
        skb: &'s mut SkBuff,
        state: &'s HookState,
        cached: Option<PacketInfo>,
    ) -> Option<Self> {
        let fields = Self::parse(ct, rcu, skb, state, cached)?;
        Some(Self::assemble(skb, state, fields))
    }

    /// The packet parsed again as it is now (after NAT rewrote it), with
    /// its state for rules kept; itself if it no longer parses.
    pub(super) fn reparse(self, ct: &CtNet, rcu: &Rcu) -> Self {
        match Self::parse(ct, rcu, self.skb, self.state, None) {
            Some(fields) => {
                // (the mark, as mangle left it, is the skb's)
                let st = self.ct_state;
                let mut p = Self::assemble(self.skb, self.state, fields);
                p.set_ct_state(st);
                p
            }
            None => self,
        }
    }

    /// The parsing half of [`Pkt::new`].
    fn parse(
        ct: &CtNet,
        rcu: &Rcu,
        skb: &SkBuff,
        state: &HookState,
        cached: Option<PacketInfo>,
    ) -> Option<Fields> {
        let hook = Hook::from_u8(state.hook())?;
        let family = Family::from_nfproto(state.pf())?;
        let (info, bare) = match cached {
            Some(i) => (Some(i), None),
            None => {
                let opts = &ct.config(rcu).parse;
                let r = match parse_linear(skb, family, opts) {
                    Some(r) => r,
                    None => {
                        // Headers in paged data. Most lie in the first 128
                        // bytes; more are copied only when they do not
                        // (IPv6 extension headers, ICMPv6 errors, TCP
                        // options): a full-size segment then costs 128
                        // bytes per parse.
                        let mut r = parse_prefix::<SHORT_PREFIX>(skb, family, opts)?;
                        if r.truncated_at_end {
                            r = parse_prefix::<PREFIX>(skb, family, opts)?;
                        }
                        r
                    }
                };
                match r.parsed {
                    Ok(i) => (Some(i), None),
                    Err((e, bare)) => {
                        // Counted once, at the hook that tracks the packet.
                        if hook == Hook::Prerouting || hook == Hook::Output {
                            ct.count_invalid(conntrack::InvalidReason::Malformed(e));
                        }
                        (None, Some(bare?))
                    }
                }
            }
        };
        let proto = match (&info, &bare) {
            (Some(i), _) => i.tuple.proto,
            (None, Some(m)) => m.proto,
            (None, None) => return None,
        };
        Some(Fields {
            hook,
            family,
            info,
            bare,
            proto,
        })
    }

    /// The packet from its parsed `fields`.
    fn assemble(skb: &'s mut SkBuff, state: &'s HookState, fields: Fields) -> Self {
        let Fields {
            hook,
            family,
            info,
            bare,
            proto,
        } = fields;
        let mut p = Pkt {
            skb,
            state,
            hook,
            family,
            info,
            proto,
            // As `meta_of` and `meta_bare` start.
            ct_state: bare.map_or(CtState::Untracked, |m| m.ct_state),
            meta: None,
        };
        if let Some(m) = bare {
            p.meta = Some(p.complete(m));
        }
        p
    }

    /// `m` with what the hook knows: devices, mark, state.
    fn complete(&self, mut m: PacketMeta) -> PacketMeta {
        m.in_if = dev_name(self.state.in_dev());
        m.out_if = dev_name(self.state.out_dev());
        m.mark = self.skb.mark();
        m.ct_state = self.ct_state;
        m
    }

    /// The evaluation metadata, built on first use.
    pub(super) fn meta(&mut self) -> &mut PacketMeta {
        let m = match self.meta.take() {
            Some(m) => m,
            None => {
                let len = self.skb.len();
                let m = match &self.info {
                    Some(i) => meta_of(i, self.family, len),
                    // Not reached: `meta` is set at once when `info` is
                    // `None`; a packet nothing is known of matches as a
                    // fragment of unknown addresses.
                    None => meta_unknown(self.family, self.proto, len),
                };
                self.complete(m)
            }
        };
        self.meta.insert(m)
    }

    /// Sets the packet's state for rules (see [`Pkt::meta`]).
    pub(super) fn set_ct_state(&mut self, st: CtState) {
        self.ct_state = st;
        if let Some(m) = self.meta.as_mut() {
            m.ct_state = st;
        }
    }
}

impl Pkt<'_> {
    /// The IPv4 header's length in bytes, options included (0 if not
    /// even its first byte can be read), from the header where it lies.
    pub(super) fn ipv4_header_len(&self) -> u8 {
        let mut buf = HeaderBuf::<1>::new();
        let first = self
            .skb
            .network_header(&mut buf)
            .and_then(|b| b.first().copied())
            .unwrap_or(0);
        ipv4::Packet::new_unchecked([first]).header_len()
    }
}
