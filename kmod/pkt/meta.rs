// SPDX-License-Identifier: GPL-2.0

//! The packet at one hook and its metadata for rules (nf_tables.h's
//! `nft_pktinfo`, nft_meta.c / xt_* matches): parsing the skb's headers,
//! the devices, mark and state the rules match on.

use core::net::IpAddr;

use conntrack::parse::{IcmpInfo, L4Info, PacketInfo, ParseError};
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
/// the skb's linear area (see `read_headers`).
const SHORT_PREFIX: usize = 128;

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

#[inline]
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
#[inline]
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

/// How a parse of the packet's first bytes went (see [`parse_into`]).
#[derive(Clone, Copy)]
enum Parse {
    /// The headers are in the caller's `info`.
    Done,
    /// The parser's error (the bare IP header's metadata is in the
    /// caller's `bare`), and whether it ran out of the bytes it was
    /// given: more may help.
    Failed(ParseError, bool),
}

/// Parses `bytes`, the packet's first bytes from its network header: the
/// headers into `info`, straight from the parser, or, when they cannot be
/// parsed, the bare IP header's metadata into `bare`.
///
/// The packet's length is the skb's, not its IP header's length field, as
/// for nf_conntrack (`conntrack::parse::parse_prefix_len` says where the
/// two differ: BIG TCP, an IPv6 payload length of 0 behind which the stack
/// kept the bytes, a raw IPv6 socket's packet at LOCAL_OUT).
fn parse_into(
    bytes: &[u8],
    skb: &SkBuff,
    family: Family,
    opts: &conntrack::parse::ParseOptions,
    info: &mut Option<PacketInfo>,
    bare: &mut Option<PacketMeta>,
) -> Parse {
    match conntrack::parse::parse_prefix_len(bytes, family, opts, skb.network_len()) {
        Ok(i) => {
            *info = Some(i);
            Parse::Done
        }
        Err(e) => {
            *bare = meta_bare(bytes, family, skb.len());
            Parse::Failed(e, e.is_truncated())
        }
    }
}

/// Parses the packet's headers where they lie, in the skb's linear area
/// (at most [`PREFIX`] bytes of it: the most [`read_headers`] ever gives
/// the parser); `None` when they are not all there but the packet has
/// more bytes (paged data: the caller copies them).
///
/// The parser's result on a prefix that holds every header is its result
/// on the whole packet (`conntrack::parse::parse_prefix`), and a prefix
/// that does not gives a truncation error: so this is what parsing the
/// copied prefix would give, without the copy.
fn parse_linear(
    skb: &SkBuff,
    family: Family,
    opts: &conntrack::parse::ParseOptions,
    info: &mut Option<PacketInfo>,
    bare: &mut Option<PacketMeta>,
) -> Option<Parse> {
    let bytes = skb.network_linear(PREFIX);
    if bytes.is_empty() {
        return None;
    }
    match parse_into(bytes, skb, family, opts, info, bare) {
        Parse::Failed(_, true) if bytes.len() < skb.network_bytes().min(PREFIX) => None,
        r => Some(r),
    }
}

/// Parses the packet's first `N` bytes from its network header, copied
/// unless the skb's linear area holds them; `None` when not even one byte
/// could be read. A truncation counts as such only if the packet had `N`
/// bytes to give: more may help.
fn parse_prefix<const N: usize>(
    skb: &SkBuff,
    family: Family,
    opts: &conntrack::parse::ParseOptions,
    info: &mut Option<PacketInfo>,
    bare: &mut Option<PacketMeta>,
) -> Option<Parse> {
    let mut buf = HeaderBuf::<N>::new();
    let bytes = skb.network_header(&mut buf)?;
    Some(match parse_into(bytes, skb, family, opts, info, bare) {
        Parse::Failed(e, truncated) => Parse::Failed(e, truncated && bytes.len() == N),
        Parse::Done => Parse::Done,
    })
}

/// Parses the headers of the packet in `skb` at `hook`: into `info`, or,
/// when they cannot be parsed, the bare IP header's metadata into `bare`.
/// False for what rfw leaves alone (too short for an IP header, or not
/// readable).
fn read_headers(
    ct: &CtNet,
    rcu: &Rcu,
    skb: &SkBuff,
    hook: Hook,
    family: Family,
    info: &mut Option<PacketInfo>,
    bare: &mut Option<PacketMeta>,
) -> bool {
    let opts = &ct.config(rcu).parse;
    let r = match parse_linear(skb, family, opts, info, bare) {
        Some(r) => Some(r),
        None => {
            // Headers in paged data. Most lie in the first 128 bytes;
            // more are copied only when they do not (IPv6 extension
            // headers, ICMPv6 errors, TCP options): a full-size segment
            // then costs 128 bytes per parse.
            match parse_prefix::<SHORT_PREFIX>(skb, family, opts, info, bare) {
                Some(Parse::Failed(_, true)) => {
                    parse_prefix::<PREFIX>(skb, family, opts, info, bare)
                }
                r => r,
            }
        }
    };
    match r {
        // (An earlier attempt's metadata goes.)
        Some(Parse::Done) => {
            *bare = None;
            true
        }
        Some(Parse::Failed(e, _)) => {
            // Counted once, at the hook that tracks the packet.
            if hook == Hook::Prerouting || hook == Hook::Output {
                ct.count_invalid(conntrack::InvalidReason::Malformed(e));
            }
            bare.is_some()
        }
        None => false,
    }
}

/// The devices, mark and state a hook knows, written into `m`.
fn complete(m: &mut PacketMeta, skb: &SkBuff, state: &HookState, st: CtState) {
    m.in_if = dev_name(state.in_dev());
    m.out_if = dev_name(state.out_dev());
    m.mark = skb.mark();
    m.ct_state = st;
}

impl<'s> Pkt<'s> {
    /// The packet at its hook, not parsed yet (see [`Pkt::parse`]);
    /// `None` at a hook or in a family rfw does not know.
    pub(super) fn at(skb: &'s mut SkBuff, state: &'s HookState) -> Option<Self> {
        Some(Pkt {
            hook: Hook::from_u8(state.hook())?,
            family: Family::from_nfproto(state.pf())?,
            skb,
            state,
            info: None,
            proto: 0,
            ct_state: CtState::Untracked,
            meta: None,
        })
    }

    /// Parses the packet, unless `info` holds its headers already (an
    /// earlier hook of the same packet parsed them, see `Slot::take`).
    /// False for what rfw leaves alone (too short for an IP header).
    pub(super) fn parse(&mut self, ct: &CtNet, rcu: &Rcu) -> bool {
        if self.info.is_none() {
            let (skb, hook, family) = (&*self.skb, self.hook, self.family);
            if !read_headers(ct, rcu, skb, hook, family, &mut self.info, &mut self.meta) {
                return false;
            }
        }
        self.parsed();
        true
    }

    /// Parses the packet again as it is now (after NAT rewrote it),
    /// keeping its state for rules; leaves it as it was if it no longer
    /// parses.
    pub(super) fn reparse(&mut self, ct: &CtNet, rcu: &Rcu) {
        let (mut info, mut bare) = (None, None);
        if !read_headers(
            ct,
            rcu,
            self.skb,
            self.hook,
            self.family,
            &mut info,
            &mut bare,
        ) {
            return;
        }
        // (the mark, as mangle left it, is the skb's)
        let st = self.ct_state;
        self.info = info;
        self.meta = bare;
        self.ct_state = CtState::Untracked;
        self.parsed();
        self.set_ct_state(st);
    }

    /// After a parse: the protocol and, for a packet whose headers could
    /// not be parsed, its evaluation metadata at once, from the bare IP
    /// header in `meta` (it starts INVALID, as `meta_bare` says).
    fn parsed(&mut self) {
        if let Some(i) = &self.info {
            self.proto = i.tuple.proto;
        } else if let Some(m) = self.meta.as_mut() {
            let st = m.ct_state;
            self.proto = m.proto;
            self.ct_state = st;
            complete(m, self.skb, self.state, st);
        }
    }

    /// The evaluation metadata, built in place on first use.
    pub(super) fn meta(&mut self) -> &mut PacketMeta {
        let Pkt {
            skb,
            state,
            family,
            info,
            proto,
            ct_state,
            meta,
            ..
        } = self;
        if meta.is_none() {
            let len = skb.len();
            let m = match info {
                Some(i) => meta.insert(meta_of(i, *family, len)),
                // Not reached: `meta` is set at once when `info` is
                // `None`; a packet nothing is known of matches as a
                // fragment of unknown addresses.
                None => meta.insert(meta_unknown(*family, *proto, len)),
            };
            complete(m, skb, state, *ct_state);
            return m;
        }
        // Built before (the closure does not run).
        meta.get_or_insert_with(|| meta_unknown(*family, *proto, 0))
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
