//! The ruleset model: tables, hooks, matches and targets.
//!
//! Corresponds to `include/uapi/linux/netfilter_ipv4/ip_tables.h` (`struct
//! ipt_ip`, the entry layout), the match extensions `xt_conntrack.c`,
//! `xt_mark.c`, `xt_tcpudp.c`, `xt_icmp` (in `ip_tables.c`), and the target
//! extensions `xt_REJECT`, `xt_NFQUEUE.c`, `xt_LOG.c`, `xt_nat.c`,
//! `xt_MASQUERADE.c`, `xt_REDIRECT.c`, `xt_MARK` (`xt_mark.c`), `xt_DSCP.c`
//! (TOS), `xt_HL.c` and `nft_flow_offload.c` (OFFLOAD, as nft's `flow add
//! @ft` and OpenWrt's iptables `FLOWOFFLOAD`).
//!
//! Every type here is a fixed-size `Copy` value: the kernel keeps decoded
//! rules in one caller-allocated slice, and the host model reuses the same
//! types so that what fwctl writes is exactly what the kernel evaluates.

use core::fmt;
use core::net::IpAddr;

pub use conntrack::{CtState, Family, Hook};

/// IP protocol numbers used by the matches and NAT: conntrack's
/// [`conntrack::ipproto`], with what the rules add to it.
pub mod proto {
    pub use conntrack::ipproto::*;

    /// Does NAT rewrite this protocol's ports? Not SCTP's: its CRC32c
    /// covers the ports (but, unlike the others' checksums, no addresses),
    /// and rfw does not recompute CRC32c. So SCTP gets address translation
    /// only: a NAT port range with `-p sctp` is refused at validation, and
    /// one without `-p` leaves SCTP ports alone (as ICMP ids, GRE, ...).
    pub const fn nat_rewrites_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | UDPLITE | DCCP)
    }
}

/// One of the three tables (`iptable_filter.c`, `iptable_nat.c`,
/// `iptable_mangle.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// `filter`: INPUT, FORWARD, OUTPUT.
    Filter = 0,
    /// `nat`: PREROUTING, INPUT, OUTPUT, POSTROUTING.
    Nat = 1,
    /// `mangle`: all five hooks.
    Mangle = 2,
}

impl TableKind {
    /// All tables, in save order.
    pub const ALL: [TableKind; 3] = [TableKind::Filter, TableKind::Nat, TableKind::Mangle];

    /// The table's name as written after `*` in the text form.
    pub const fn name(self) -> &'static str {
        match self {
            TableKind::Filter => "filter",
            TableKind::Nat => "nat",
            TableKind::Mangle => "mangle",
        }
    }

    /// The table called `name`.
    pub fn from_name(name: &[u8]) -> Option<TableKind> {
        TableKind::ALL
            .into_iter()
            .find(|t| t.name().as_bytes() == name)
    }

    /// The table with wire code `c`.
    pub const fn from_code(c: u8) -> Option<TableKind> {
        match c {
            0 => Some(TableKind::Filter),
            1 => Some(TableKind::Nat),
            2 => Some(TableKind::Mangle),
            _ => None,
        }
    }

    /// The mask of hooks this table has a built-in chain for.
    pub const fn hooks(self) -> u8 {
        match self {
            TableKind::Filter => 0b01110,
            TableKind::Nat => 0b11011,
            TableKind::Mangle => 0b11111,
        }
    }

    /// True when the table has a built-in chain at `hook`.
    pub const fn has_hook(self, hook: Hook) -> bool {
        self.hooks() & hook.bit() != 0
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A short name held inline: used for chain names and log prefixes.
///
/// # Invariants
/// `len <= N` and the bytes past `len` are zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortName<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> ShortName<N> {
    /// The empty name.
    pub const EMPTY: Self = ShortName {
        bytes: [0; N],
        len: 0,
    };

    /// A name from bytes, if it fits.
    pub fn new(b: &[u8]) -> Option<Self> {
        if b.len() > N || b.len() > u8::MAX as usize {
            return None;
        }
        let mut bytes = [0; N];
        bytes.get_mut(..b.len())?.copy_from_slice(b);
        // INVARIANT: len <= N checked above, the tail stays zero.
        Some(ShortName {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len as usize).unwrap_or(&[])
    }

    /// The name as text (empty if it is not UTF-8, which validation rules out).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// True for the empty name.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> fmt::Debug for ShortName<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl<const N: usize> fmt::Display for ShortName<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest chain name (`XT_EXTENSION_MAXNAMELEN` - 1).
pub const CHAIN_NAME_MAX: usize = 28;
/// A chain name.
pub type ChainName = ShortName<CHAIN_NAME_MAX>;
/// Longest log prefix (`xt_LOG`'s 30-byte field less its NUL).
pub const LOG_PREFIX_MAX: usize = 29;
/// A log prefix.
pub type LogPrefix = ShortName<LOG_PREFIX_MAX>;

/// An address prefix, `addr/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The network address (host bits may be set; they are ignored).
    pub addr: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl Prefix {
    /// The prefix's family.
    pub const fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// True when `a` is inside the prefix (never for another family).
    #[inline]
    pub fn contains(&self, a: &IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.len.min(32)))
                    .unwrap_or(0);
                (p.to_bits() ^ a.to_bits()) & mask == 0
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len.min(128)))
                    .unwrap_or(0);
                (p.to_bits() ^ a.to_bits()) & mask == 0
            }
            _ => false,
        }
    }
}

/// An inclusive port range `lo:hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    /// A single port.
    pub const fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    /// True when `p` is inside.
    #[inline]
    pub const fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    /// Number of ports in the range (0 if inverted).
    pub const fn size(&self) -> u32 {
        if self.hi < self.lo {
            0
        } else {
            self.hi as u32 - self.lo as u32 + 1
        }
    }
}

/// Length of an interface name buffer (`IFNAMSIZ`).
pub const IFNAMSIZ: usize = 16;

/// An interface name as the kernel keeps it: up to 15 bytes, NUL padded.
/// In a match, a trailing `+` matches any name with that prefix (as in
/// iptables' `-i eth+`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfName(pub [u8; IFNAMSIZ]);

impl IfName {
    /// The empty name (no interface).
    pub const NONE: IfName = IfName([0; IFNAMSIZ]);

    /// A name from bytes: 1 to 15 bytes, no NUL.
    pub fn new(b: &[u8]) -> Option<Self> {
        if b.is_empty() || b.len() >= IFNAMSIZ || b.contains(&0) {
            return None;
        }
        let mut n = [0; IFNAMSIZ];
        n.get_mut(..b.len())?.copy_from_slice(b);
        Some(IfName(n))
    }

    /// The name's bytes up to the first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.0.iter().position(|&c| c == 0).unwrap_or(IFNAMSIZ);
        self.0.get(..len).unwrap_or(&[])
    }

    /// Does this pattern match the device name `dev`?
    #[inline]
    pub fn matches(&self, dev: &IfName) -> bool {
        let pat = self.as_bytes();
        match pat.split_last() {
            Some((b'+', stem)) => dev.as_bytes().starts_with(stem),
            _ => pat == dev.as_bytes(),
        }
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}",
            core::str::from_utf8(self.as_bytes()).unwrap_or("?")
        )
    }
}

/// True when `n` may be an interface pattern in a rule: 1 to 15 printable
/// ASCII bytes without `/`, `:` (which Linux does not allow in device
/// names), quotes or backslashes, not starting with `!` or `#` (which the
/// text form reads as negation and comment).
pub fn is_valid_if_pattern(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() < IFNAMSIZ
        && !matches!(n.first(), Some(b'!' | b'#'))
        && n.iter()
            .all(|&c| c.is_ascii_graphic() && !matches!(c, b'/' | b':' | b'"' | b'\\' | b'\''))
}

/// A set of conntrack states (`--ct-state new,established`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtStateSet(pub u8);

impl CtStateSet {
    /// `new`.
    pub const NEW: u8 = CtState::New.bit();
    /// `established`.
    pub const ESTABLISHED: u8 = CtState::Established.bit();
    /// `related`.
    pub const RELATED: u8 = CtState::Related.bit();
    /// `invalid`.
    pub const INVALID: u8 = CtState::Invalid.bit();
    /// `untracked`.
    pub const UNTRACKED: u8 = CtState::Untracked.bit();
    /// All defined bits.
    pub const ALL: u8 = 31;
    /// The names, in bit order.
    pub const NAMES: [(&'static str, u8); 5] = [
        ("new", Self::NEW),
        ("established", Self::ESTABLISHED),
        ("related", Self::RELATED),
        ("invalid", Self::INVALID),
        ("untracked", Self::UNTRACKED),
    ];

    /// True when `s` is in the set.
    #[inline]
    pub const fn contains(&self, s: CtState) -> bool {
        self.0 & s.bit() != 0
    }
}

/// `--mark value/mask`: matches when `mark & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MarkMatch {
    /// Value to compare with.
    pub value: u32,
    /// Mask applied to the packet mark first.
    pub mask: u32,
}

/// `--icmp-type type[/code]` (ICMP or ICMPv6 by the rule's protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IcmpMatch {
    /// ICMP type.
    pub ty: u8,
    /// ICMP code, or any code when `None`.
    pub code: Option<u8>,
}

/// `--tcp-flags mask comp`: matches when `flags & mask == comp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpFlagsMatch {
    /// Flags to examine.
    pub mask: u8,
    /// Of those, the ones that must be set.
    pub comp: u8,
}

/// TCP flag bits as in the header's 13th byte.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
    /// The names, in bit order.
    pub const NAMES: [(&str, u8); 8] = [
        ("FIN", FIN),
        ("SYN", SYN),
        ("RST", RST),
        ("PSH", PSH),
        ("ACK", ACK),
        ("URG", URG),
        ("ECE", ECE),
        ("CWR", CWR),
    ];
}

/// A match with its negation flag (`! -s ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neg<T> {
    /// When true, the match succeeds where the value does not.
    pub invert: bool,
    /// The matched value.
    pub value: T,
}

impl<T> Neg<T> {
    /// A positive match.
    pub const fn is(value: T) -> Self {
        Neg {
            invert: false,
            value,
        }
    }

    /// A negated match.
    pub const fn not(value: T) -> Self {
        Neg {
            invert: true,
            value,
        }
    }
}

/// The match part of a rule: every field is optional; all present fields
/// must match (`ipt_ip` plus the match extensions rfw supports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Match {
    /// `-4` / `-6`.
    pub family: Option<Family>,
    /// `-p`.
    pub proto: Option<Neg<u8>>,
    /// `-s`.
    pub src: Option<Neg<Prefix>>,
    /// `-d`.
    pub dst: Option<Neg<Prefix>>,
    /// `--sport`.
    pub sport: Option<Neg<PortRange>>,
    /// `--dport`.
    pub dport: Option<Neg<PortRange>>,
    /// `-i`.
    pub in_if: Option<Neg<IfName>>,
    /// `-o`.
    pub out_if: Option<Neg<IfName>>,
    /// `--ct-state`.
    pub ct_state: Option<Neg<CtStateSet>>,
    /// `--mark`.
    pub mark: Option<Neg<MarkMatch>>,
    /// `--icmp-type`.
    pub icmp: Option<Neg<IcmpMatch>>,
    /// `--tcp-flags`.
    pub tcp_flags: Option<Neg<TcpFlagsMatch>>,
}

impl Match {
    /// The match that matches every packet.
    pub const ANY: Match = Match {
        family: None,
        proto: None,
        src: None,
        dst: None,
        sport: None,
        dport: None,
        in_if: None,
        out_if: None,
        ct_state: None,
        mark: None,
        icmp: None,
        tcp_flags: None,
    };
}

impl Default for Match {
    fn default() -> Self {
        Match::ANY
    }
}

/// A built-in chain's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `ACCEPT`.
    Accept,
    /// `DROP`.
    Drop,
}

/// What `REJECT` answers with (`ipt_REJECT.h` / `ip6t_REJECT.h`); the glue
/// maps the ICMP kinds to the ICMP or ICMPv6 code of the packet's family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectWith {
    /// Port unreachable (the default).
    PortUnreachable,
    /// Network unreachable.
    NetUnreachable,
    /// Host unreachable.
    HostUnreachable,
    /// Protocol unreachable (IPv4 only in iptables; IPv6 maps it to port).
    ProtoUnreachable,
    /// Administratively prohibited.
    AdminProhibited,
    /// A TCP RST.
    TcpReset,
}

impl RejectWith {
    /// The names used after `--reject-with`.
    pub const NAMES: [(&'static str, RejectWith); 6] = [
        ("port-unreachable", RejectWith::PortUnreachable),
        ("net-unreachable", RejectWith::NetUnreachable),
        ("host-unreachable", RejectWith::HostUnreachable),
        ("proto-unreachable", RejectWith::ProtoUnreachable),
        ("admin-prohibited", RejectWith::AdminProhibited),
        ("tcp-reset", RejectWith::TcpReset),
    ];
}

/// An index into a table's chain list (the order chains are declared in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub u16);

/// `LOG` parameters. LOG is rate limited per rule: at most `burst` lines
/// at once, refilled at `rate` lines per second (see [`crate::eval::TokenBucket`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogSpec {
    /// `--log-prefix`.
    pub prefix: LogPrefix,
    /// `--log-level` (syslog level 0..=7; default 4, warning).
    pub level: u8,
    /// `--log-rate`: lines per second (1..; default 5).
    pub rate: u16,
    /// `--log-burst`: bucket size (1..; default 10).
    pub burst: u16,
}

impl LogSpec {
    /// Default level (warning).
    pub const DEFAULT_LEVEL: u8 = 4;
    /// Default rate, lines per second.
    pub const DEFAULT_RATE: u16 = 5;
    /// Default burst.
    pub const DEFAULT_BURST: u16 = 10;
    /// LOG with no prefix and the defaults.
    pub const DEFAULT: LogSpec = LogSpec {
        prefix: LogPrefix::EMPTY,
        level: Self::DEFAULT_LEVEL,
        rate: Self::DEFAULT_RATE,
        burst: Self::DEFAULT_BURST,
    };
}

/// NAT range flags (`NF_NAT_RANGE_PROTO_RANDOM`, `..._RANDOM_FULLY`,
/// `..._PERSISTENT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct NatFlags(pub u8);

impl NatFlags {
    /// `--random`: port offset from a keyed hash of the connection,
    /// original port not kept.
    pub const RANDOM: u8 = 1;
    /// `--fully-random`: port offset from the caller's random numbers,
    /// original port not kept.
    pub const FULLY_RANDOM: u8 = 2;
    /// `--persistent`: a client gets the same address for every destination.
    pub const PERSISTENT: u8 = 4;
    /// All defined flags.
    pub const ALL: u8 = 7;

    /// True when any of `bits` is set.
    pub const fn has(self, bits: u8) -> bool {
        self.0 & bits != 0
    }
}

/// An inclusive address range `lo-hi` (one family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// Lowest address.
    pub lo: IpAddr,
    /// Highest address.
    pub hi: IpAddr,
}

impl AddrRange {
    /// A single address.
    pub const fn single(a: IpAddr) -> Self {
        AddrRange { lo: a, hi: a }
    }

    /// True when `a` is inside (same family, between the bounds).
    pub fn contains(&self, a: &IpAddr) -> bool {
        match (self.lo, self.hi, a) {
            (IpAddr::V4(l), IpAddr::V4(h), IpAddr::V4(a)) => l <= *a && *a <= h,
            (IpAddr::V6(l), IpAddr::V6(h), IpAddr::V6(a)) => l <= *a && *a <= h,
            _ => false,
        }
    }
}

/// A NAT range (`struct nf_nat_range2`): the addresses and ports a
/// SNAT/DNAT maps into, or just the ports for MASQUERADE/REDIRECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct NatRange {
    /// Addresses to map into (`NF_NAT_RANGE_MAP_IPS`); `None` keeps them.
    pub addrs: Option<AddrRange>,
    /// Ports to map into (`NF_NAT_RANGE_PROTO_SPECIFIED`), for the
    /// protocols whose ports NAT rewrites ([`proto::nat_rewrites_ports`]);
    /// ignored for the others (ICMP ids are not mapped into it).
    pub ports: Option<PortRange>,
    /// Flags.
    pub flags: NatFlags,
}

/// `MARK`: how to change the packet mark (`xt_MARK`, as iptables' options).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarkOp {
    /// `--set-mark value/mask`: clear `mask`, then set `value`.
    Set {
        /// Bits to set.
        value: u32,
        /// Bits to clear first.
        mask: u32,
    },
    /// `--and-mark bits`.
    And(u32),
    /// `--or-mark bits`.
    Or(u32),
    /// `--xor-mark bits`.
    Xor(u32),
}

impl MarkOp {
    /// The new mark.
    #[inline]
    pub const fn apply(self, mark: u32) -> u32 {
        match self {
            MarkOp::Set { value, mask } => (mark & !mask) | value,
            MarkOp::And(b) => mark & b,
            MarkOp::Or(b) => mark | b,
            MarkOp::Xor(b) => mark ^ b,
        }
    }
}

/// `TOS --set-tos value/mask` (`xt_DSCP.c`, `tos_tg`): the new TOS (or
/// IPv6 traffic class) is `(tos & !mask) ^ value`. `--set-dscp d` is
/// `value = d << 2, mask = 0xfc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TosOp {
    /// Bits to xor in.
    pub value: u8,
    /// Bits to clear first.
    pub mask: u8,
}

impl TosOp {
    /// The new TOS byte.
    #[inline]
    pub const fn apply(self, tos: u8) -> u8 {
        (tos & !self.mask) ^ self.value
    }

    /// `self` then `next`, as one operation.
    pub const fn then(self, next: TosOp) -> TosOp {
        TosOp {
            value: (self.value & !next.mask) ^ next.value,
            mask: self.mask | next.mask,
        }
    }
}

/// `TTL` / `HL` (`xt_HL.c`): set, increase or decrease the IPv4 TTL or IPv6
/// hop limit, clamped to 0..=255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtlOp {
    /// `--ttl-set n`.
    Set(u8),
    /// `--ttl-inc n` (n > 0).
    Inc(u8),
    /// `--ttl-dec n` (n > 0).
    Dec(u8),
}

impl TtlOp {
    /// The new TTL.
    #[inline]
    pub const fn apply(self, ttl: u8) -> u8 {
        match self {
            TtlOp::Set(n) => n,
            TtlOp::Inc(n) => ttl.saturating_add(n),
            TtlOp::Dec(n) => ttl.saturating_sub(n),
        }
    }
}

/// Where QUEUE sends a packet (`xt_NFQUEUE`'s `queuenum` and
/// `NFQ_FLAG_BYPASS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueSpec {
    /// The queue number.
    pub num: u16,
    /// With no listener on the queue, accept the packet (else it is
    /// dropped): `NF_VERDICT_FLAG_QUEUE_BYPASS`.
    pub bypass: bool,
}

impl QueueSpec {
    /// Queue `num`, no bypass.
    pub const fn num(num: u16) -> QueueSpec {
        QueueSpec { num, bypass: false }
    }
}

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// No target: only count (iptables' rule without `-j`).
    Continue,
    /// `ACCEPT`.
    Accept,
    /// `DROP`.
    Drop,
    /// `REJECT`.
    Reject(RejectWith),
    /// `RETURN` to the calling chain (or the policy of a built-in chain).
    Return,
    /// Jump to a user chain, returning here after it.
    Jump(ChainId),
    /// Go to a user chain, not returning here.
    Goto(ChainId),
    /// `QUEUE` / `NFQUEUE --queue-num n [--queue-bypass]`.
    Queue(QueueSpec),
    /// `LOG` (non-terminal).
    Log(LogSpec),
    /// `SNAT --to-source`.
    Snat(NatRange),
    /// `DNAT --to-destination`.
    Dnat(NatRange),
    /// `MASQUERADE [--to-ports]` (addresses unset).
    Masquerade(NatRange),
    /// `REDIRECT [--to-ports]` (addresses unset).
    Redirect(NatRange),
    /// `MARK` (non-terminal).
    Mark(MarkOp),
    /// `TOS` (non-terminal).
    Tos(TosOp),
    /// `TTL` / `HL` (non-terminal).
    Ttl(TtlOp),
    /// `--offload` (non-terminal; filter FORWARD only): the packet's flow
    /// may enter rfw's fast path, as nft's `flow add @ft` and OpenWrt's
    /// `FLOWOFFLOAD` (see [`crate::eval::Outcome::offload`]).
    Offload,
}

impl Target {
    /// The target's iptables name, for messages.
    pub const fn name(&self) -> &'static str {
        match self {
            Target::Continue => "(none)",
            Target::Accept => "ACCEPT",
            Target::Drop => "DROP",
            Target::Reject(_) => "REJECT",
            Target::Return => "RETURN",
            Target::Jump(_) => "jump",
            Target::Goto(_) => "goto",
            Target::Queue(_) => "QUEUE",
            Target::Log(_) => "LOG",
            Target::Snat(_) => "SNAT",
            Target::Dnat(_) => "DNAT",
            Target::Masquerade(_) => "MASQUERADE",
            Target::Redirect(_) => "REDIRECT",
            Target::Mark(_) => "MARK",
            Target::Tos(_) => "TOS",
            Target::Ttl(_) => "TTL",
            Target::Offload => "OFFLOAD",
        }
    }
}

/// One rule: a match and a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Which packets.
    pub matches: Match,
    /// What to do with them.
    pub target: Target,
}

impl Rule {
    /// A rule matching everything with `target`.
    pub const fn new(target: Target) -> Self {
        Rule {
            matches: Match::ANY,
            target,
        }
    }
}

/// Packet and byte counters of one rule or policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Counter {
    /// Adds one packet of `bytes` bytes (wrapping, never panicking).
    #[inline]
    pub fn add(&mut self, bytes: u32) {
        self.packets = self.packets.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(u64::from(bytes));
    }
}

/// True for names that cannot be chain names because the text form uses
/// them as target names.
pub fn is_reserved_name(n: &[u8]) -> bool {
    const RESERVED: [&str; 15] = [
        "ACCEPT",
        "DROP",
        "REJECT",
        "RETURN",
        "QUEUE",
        "NFQUEUE",
        "LOG",
        "SNAT",
        "DNAT",
        "MASQUERADE",
        "REDIRECT",
        "MARK",
        "TOS",
        "TTL",
        "FLOWOFFLOAD",
    ];
    RESERVED.iter().any(|r| r.as_bytes() == n)
}

/// True when `n` may name a chain: 1 to 28 printable ASCII bytes, none of
/// the characters the text form treats specially, not starting with `-`,
/// and not a target name.
pub fn is_valid_chain_name(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= CHAIN_NAME_MAX
        && n.first() != Some(&b'-')
        && n.iter().all(|&c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    b'"' | b'\'' | b'\\' | b'!' | b'#' | b'[' | b']' | b':' | b'*'
                )
        })
        && !is_reserved_name(n)
}

/// True when `p` may be a log prefix: printable ASCII (space allowed),
/// at most 29 bytes.
pub fn is_valid_log_prefix(p: &[u8]) -> bool {
    p.len() <= LOG_PREFIX_MAX && p.iter().all(|&c| c == b' ' || c.is_ascii_graphic())
}
