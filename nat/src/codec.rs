//! The binary form of a table: decoding and whole-table validation.
//!
//! Corresponds to `net/ipv4/netfilter/ip_tables.c`: `translate_table`,
//! `check_entry_size_and_hooks` and `mark_source_chains` (loop detection,
//! hook reachability) and the `checkentry` hooks of the extensions (which
//! targets are valid in which table and chain).
//!
//! fwctl encodes a whole table ([`crate::spec::TableSpec::encode`], host
//! only) and sends the bytes over netlink; the kernel reads the entry count
//! with [`entries_needed`], allocates that many [`Entry`] slots, and calls
//! [`decode_into`], which validates everything and returns a [`Table`] ready
//! for [`Table::evaluate`](crate::eval). Nothing here allocates.
//!
//! # Layout (version 2, little-endian)
//!
//! ```text
//! header  "RFWT" version:u16 table:u8 0:u8 chains:u16 0:u16 rules:u32 body_len:u32
//! chain   name_len:u8 name policy:u8(0 user, 1 ACCEPT, 2 DROP) rules:u32 rule*
//! rule    len:u16 handle:u32 present:u16 invert:u16 field* target
//! ```
//!
//! `len` counts the bytes after it. `handle` names the rule for fwctl
//! (stable across edits, as nft handles); the kernel reads past it and never
//! looks at it. Fields appear in bit order of `present` (see `field`);
//! addresses are `family:u8(4|6)` and 4 or 16 bytes. The encoding is
//! canonical: every valid table has exactly one encoding, so
//! `encode(decode(b)) == b`.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rule::{
    is_valid_chain_name, is_valid_if_pattern, is_valid_log_prefix, proto, AddrRange, ChainId,
    ChainName, CtStateSet, Family, Hook, IcmpMatch, IfName, LogPrefix, LogSpec, MarkMatch, MarkOp,
    Match, NatFlags, NatRange, Neg, Policy, PortRange, Prefix, QueueSpec, RejectWith, Rule,
    TableKind, Target, TcpFlagsMatch, TosOp, TtlOp,
};

/// The four bytes every blob starts with.
pub const MAGIC: [u8; 4] = *b"RFWT";
/// The encoding version this crate reads and writes (2: rules carry a
/// handle; version 1 had none and is not read).
pub const VERSION: u16 = 2;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 20;
/// Deepest nesting of user-chain jumps (the evaluation stack size).
pub const MAX_DEPTH: usize = 32;
/// Most chains in one table.
pub const MAX_CHAINS: usize = 4096;
/// Most rules in one table.
pub const MAX_RULES: usize = 1 << 20;
/// The fewest bytes a chain (name length, a 1-byte name, policy, rule
/// count) takes; a rule (length, handle, present, invert, target tag)
/// takes more.
const MIN_ITEM_LEN: u64 = 7;

/// Bits of a rule's `present` and `invert` words.
pub(crate) mod field {
    pub(crate) const FAMILY: u16 = 1 << 0;
    pub(crate) const PROTO: u16 = 1 << 1;
    pub(crate) const SRC: u16 = 1 << 2;
    pub(crate) const DST: u16 = 1 << 3;
    pub(crate) const SPORT: u16 = 1 << 4;
    pub(crate) const DPORT: u16 = 1 << 5;
    pub(crate) const IN_IF: u16 = 1 << 6;
    pub(crate) const OUT_IF: u16 = 1 << 7;
    pub(crate) const CT_STATE: u16 = 1 << 8;
    pub(crate) const MARK: u16 = 1 << 9;
    pub(crate) const ICMP: u16 = 1 << 10;
    pub(crate) const TCP_FLAGS: u16 = 1 << 11;
    pub(crate) const ALL: u16 = (1 << 12) - 1;
}

/// Target tags.
pub(crate) mod tag {
    pub(crate) const CONTINUE: u8 = 0;
    pub(crate) const ACCEPT: u8 = 1;
    pub(crate) const DROP: u8 = 2;
    pub(crate) const REJECT: u8 = 3;
    pub(crate) const RETURN: u8 = 4;
    pub(crate) const JUMP: u8 = 5;
    pub(crate) const GOTO: u8 = 6;
    pub(crate) const QUEUE: u8 = 7;
    pub(crate) const LOG: u8 = 8;
    pub(crate) const SNAT: u8 = 9;
    pub(crate) const DNAT: u8 = 10;
    pub(crate) const MASQUERADE: u8 = 11;
    pub(crate) const REDIRECT: u8 = 12;
    pub(crate) const MARK: u8 = 13;
    pub(crate) const TOS: u8 = 14;
    pub(crate) const TTL: u8 = 15;
    /// QUEUE with `--queue-bypass` (then a u16, as [`QUEUE`]).
    pub(crate) const QUEUE_BYPASS: u8 = 16;
    /// OFFLOAD (no parameters).
    pub(crate) const OFFLOAD: u8 = 17;
}

/// What is wrong with a blob or a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The blob ends early.
    Truncated,
    /// Wrong magic bytes.
    BadMagic,
    /// A version this crate does not read.
    BadVersion(u16),
    /// Unknown table code.
    BadTable(u8),
    /// Bytes left over, or a length field that disagrees with the content.
    BadLength,
    /// The caller's entry storage is smaller than [`entries_needed`].
    StorageTooSmall,
    /// More chains or rules than this crate accepts.
    TooBig,
    /// A field holds a value the format does not define.
    Malformed(&'static str),
    /// A chain name that is empty, too long, has bad characters or is a
    /// target name.
    BadChainName,
    /// Two chains with the same name.
    DuplicateChain,
    /// A built-in chain of the table is missing (built-in chains come
    /// first, in hook order).
    MissingBuiltin(Hook),
    /// A policy on a user chain, a missing policy on a built-in chain, or a
    /// built-in chain name that is not one of this table's.
    BadPolicy,
    /// A jump or goto to a chain number that does not exist.
    UnknownChain,
    /// A jump or goto to a built-in chain.
    JumpToBuiltin,
    /// Chains that jump into each other in a cycle.
    JumpLoop,
    /// User chains nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Addresses or options of different families in one rule.
    FamilyMismatch,
    /// A prefix length longer than the family allows.
    BadPrefix,
    /// A range whose low end is above its high end, or port 0 in a NAT range.
    BadRange,
    /// An option that needs a protocol the rule does not name
    /// (ports need `-p tcp|udp|...`, `--icmp-type` needs `-p icmp`, ...),
    /// or a NAT port range with a `-p` whose ports NAT does not rewrite.
    NeedsProtocol(&'static str),
    /// A value out of its allowed set.
    BadValue(&'static str),
    /// A target used in a table where it has no meaning.
    TargetNotInTable(&'static str),
    /// A target used in (or reachable from) a chain of a hook where it has no
    /// meaning (DNAT outside PREROUTING/OUTPUT, SNAT outside
    /// POSTROUTING/INPUT, ...).
    TargetNotInHook(&'static str, Hook),
    /// `-i` or `-o` in (or reachable from) a hook that has no such interface.
    InterfaceNotInHook(&'static str, Hook),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated => f.write_str("truncated"),
            ErrorKind::BadMagic => f.write_str("bad magic"),
            ErrorKind::BadVersion(v) => write!(f, "unsupported version {v}"),
            ErrorKind::BadTable(t) => write!(f, "unknown table {t}"),
            ErrorKind::BadLength => f.write_str("length mismatch"),
            ErrorKind::StorageTooSmall => f.write_str("entry storage too small"),
            ErrorKind::TooBig => f.write_str("too many chains or rules"),
            ErrorKind::Malformed(w) => write!(f, "malformed {w}"),
            ErrorKind::BadChainName => f.write_str("invalid chain name"),
            ErrorKind::DuplicateChain => f.write_str("chain defined twice"),
            ErrorKind::MissingBuiltin(h) => write!(f, "built-in chain {h} missing"),
            ErrorKind::BadPolicy => {
                f.write_str("policy only on built-in chains, and required there")
            }
            ErrorKind::UnknownChain => f.write_str("jump to unknown chain"),
            ErrorKind::JumpToBuiltin => f.write_str("jump to a built-in chain"),
            ErrorKind::JumpLoop => f.write_str("jump loop"),
            ErrorKind::TooDeep => write!(f, "chains nested deeper than {MAX_DEPTH}"),
            ErrorKind::FamilyMismatch => f.write_str("IPv4 and IPv6 mixed in one rule"),
            ErrorKind::BadPrefix => f.write_str("prefix length too long"),
            ErrorKind::BadRange => f.write_str("bad range"),
            ErrorKind::NeedsProtocol(w) => write!(f, "{w} needs a matching -p"),
            ErrorKind::BadValue(w) => write!(f, "bad value for {w}"),
            ErrorKind::TargetNotInTable(t) => write!(f, "{t} not valid in this table"),
            ErrorKind::TargetNotInHook(t, h) => {
                write!(f, "{t} not valid in chains reached from {h}")
            }
            ErrorKind::InterfaceNotInHook(o, h) => {
                write!(f, "{o} not valid in chains reached from {h}")
            }
        }
    }
}

/// A decoding or validation error, naming where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What is wrong.
    pub kind: ErrorKind,
    /// The chain it is in, when known.
    pub chain: Option<ChainName>,
    /// The rule's number in its chain, from 1 (as `iptables -L
    /// --line-numbers`); 0 for the chain itself or the header.
    pub rule: u32,
}

impl Error {
    const fn at(kind: ErrorKind) -> Self {
        Error {
            kind,
            chain: None,
            rule: 0,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.chain, self.rule) {
            (Some(c), 0) => write!(f, "chain {c}: {}", self.kind),
            (Some(c), r) => write!(f, "chain {c} rule {r}: {}", self.kind),
            (None, _) => write!(f, "{}", self.kind),
        }
    }
}

/// What an entry is: a rule, or the end of a chain (its policy for a
/// built-in chain, an implicit RETURN for a user chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A rule.
    Rule(Rule),
    /// The end of a chain.
    End {
        /// The chain's name.
        name: ChainName,
        /// The policy of a built-in chain; `None` for a user chain.
        policy: Option<Policy>,
    },
}

/// One slot of a decoded table: rules and chain ends in one flat array, as
/// `ipt_entry`s are laid out (each chain's rules, then its end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub(crate) kind: EntryKind,
    /// For jumps and gotos: the index of the target chain's first entry.
    pub(crate) jump_to: u32,
    /// Index of this chain's first entry.
    pub(crate) chain_start: u32,
    /// This chain's number.
    pub(crate) chain: u16,
    /// The family the rule is limited to by its addresses or options.
    pub(crate) family: Option<Family>,
    /// At a chain's first entry: the hooks the chain is reached from.
    pub(crate) hooks: u8,
    /// At a chain's first entry: the longest jump path reaching it.
    pub(crate) depth: u16,
    /// At a chain's first entry, during validation: jumps to it not yet
    /// accounted for (Kahn's in-degree).
    pub(crate) indeg: u32,
    /// At a chain's first entry, during validation: the next ready chain.
    pub(crate) link: u32,
}

impl Entry {
    /// An unused slot, to fill storage with before [`decode_into`].
    pub const EMPTY: Entry = Entry {
        kind: EntryKind::End {
            name: ChainName::EMPTY,
            policy: None,
        },
        jump_to: 0,
        chain_start: 0,
        chain: 0,
        family: None,
        hooks: 0,
        depth: 0,
        indeg: 0,
        link: 0,
    };

    /// What this entry is.
    pub const fn kind(&self) -> &EntryKind {
        &self.kind
    }

    /// The number of the chain this entry belongs to.
    pub const fn chain(&self) -> u16 {
        self.chain
    }
}

impl Default for Entry {
    fn default() -> Self {
        Entry::EMPTY
    }
}

/// A decoded, validated table borrowing its entries.
///
/// # Invariants
/// Established by [`decode_into`]: every chain ends with an `End` entry;
/// every jump's `jump_to` is the first entry of a user chain; the jump graph
/// has no cycle and is at most [`MAX_DEPTH`] deep; `hook_entry` and
/// `underflow` point at the start and the end of the built-in chains of
/// `valid_hooks`.
#[derive(Clone, Copy, Debug)]
pub struct Table<'r> {
    pub(crate) kind: TableKind,
    pub(crate) entries: &'r [Entry],
    pub(crate) hook_entry: [u32; 5],
    pub(crate) underflow: [u32; 5],
    pub(crate) chains: u16,
}

/// What a [`Table`] holds besides its entries: small and `Copy`, so the
/// kernel can keep it next to the entry storage it owns and re-attach it per
/// packet ([`TableInfo::attach`]) instead of keeping a borrowing `Table`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    kind: TableKind,
    hook_entry: [u32; 5],
    underflow: [u32; 5],
    chains: u16,
    entries: u32,
}

impl TableInfo {
    /// The table over `entries`, which must be the storage
    /// [`decode_into`] filled when it returned this info (its first
    /// `entries` slots). With any other slice evaluation stays memory-safe
    /// and panic-free, but its verdicts mean nothing; a slice of another
    /// length gives `None`.
    pub fn attach<'r>(&self, entries: &'r [Entry]) -> Option<Table<'r>> {
        let entries = entries.get(..self.entries as usize)?;
        Some(Table {
            kind: self.kind,
            entries,
            hook_entry: self.hook_entry,
            underflow: self.underflow,
            chains: self.chains,
        })
    }

    /// Which table this is.
    pub const fn kind(&self) -> TableKind {
        self.kind
    }
}

impl<'r> Table<'r> {
    /// The table without its entries, to [`TableInfo::attach`] again later.
    pub fn info(&self) -> TableInfo {
        TableInfo {
            kind: self.kind,
            hook_entry: self.hook_entry,
            underflow: self.underflow,
            chains: self.chains,
            entries: self.entries.len() as u32,
        }
    }

    /// Which table this is.
    pub const fn kind(&self) -> TableKind {
        self.kind
    }

    /// All entries: the rules of each chain followed by the chain's end.
    /// Counters are indexed by position in this slice.
    pub const fn entries(&self) -> &'r [Entry] {
        self.entries
    }

    /// The number of chains.
    pub const fn chain_count(&self) -> u16 {
        self.chains
    }

    /// The index of the entry holding the policy of `hook`'s built-in chain.
    pub fn policy_entry(&self, hook: Hook) -> Option<usize> {
        if self.kind.has_hook(hook) {
            self.underflow.get(hook as usize).map(|&u| u as usize)
        } else {
            None
        }
    }

    /// The index of the first entry of `hook`'s built-in chain.
    pub fn hook_entry(&self, hook: Hook) -> Option<usize> {
        if self.kind.has_hook(hook) {
            self.hook_entry.get(hook as usize).map(|&u| u as usize)
        } else {
            None
        }
    }
}

/// A little-endian cursor over a blob that never panics.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) const fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        let end = self.pos.checked_add(n).ok_or(ErrorKind::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(ErrorKind::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ErrorKind> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ErrorKind> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ErrorKind> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ErrorKind> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, ErrorKind> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ErrorKind::Malformed(what)),
        }
    }

    fn addr(&mut self) -> Result<IpAddr, ErrorKind> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => Err(ErrorKind::Malformed("address family")),
        }
    }

    fn port_range(&mut self) -> Result<PortRange, ErrorKind> {
        Ok(PortRange {
            lo: self.u16()?,
            hi: self.u16()?,
        })
    }

    fn if_name(&mut self) -> Result<IfName, ErrorKind> {
        let n = self.u8()? as usize;
        let b = self.bytes(n)?;
        if !is_valid_if_pattern(b) {
            return Err(ErrorKind::BadValue("interface name"));
        }
        IfName::new(b).ok_or(ErrorKind::BadValue("interface name"))
    }

    fn nat_range(&mut self) -> Result<NatRange, ErrorKind> {
        let flags = self.u8()?;
        if flags & !NatFlags::ALL != 0 {
            return Err(ErrorKind::Malformed("NAT flags"));
        }
        let has = self.u8()?;
        if has & !3 != 0 {
            return Err(ErrorKind::Malformed("NAT range"));
        }
        let addrs = if has & 1 != 0 {
            Some(AddrRange {
                lo: self.addr()?,
                hi: self.addr()?,
            })
        } else {
            None
        };
        let ports = if has & 2 != 0 {
            Some(self.port_range()?)
        } else {
            None
        };
        Ok(NatRange {
            addrs,
            ports,
            flags: NatFlags(flags),
        })
    }
}

/// Reads the header and returns how many [`Entry`] slots [`decode_into`]
/// needs for this blob (rules plus one end entry per chain).
pub fn entries_needed(blob: &[u8]) -> Result<usize, Error> {
    header(blob)
        .map(|h| h.rules as usize + h.chains as usize)
        .map_err(Error::at)
}

/// Reads the table kind from the header.
pub fn table_kind(blob: &[u8]) -> Result<TableKind, Error> {
    header(blob).map(|h| h.kind).map_err(Error::at)
}

struct Header {
    kind: TableKind,
    chains: u16,
    rules: u32,
}

fn header(blob: &[u8]) -> Result<Header, ErrorKind> {
    let mut r = Reader::new(blob);
    if r.array::<4>()? != MAGIC {
        return Err(ErrorKind::BadMagic);
    }
    let version = r.u16()?;
    if version != VERSION {
        return Err(ErrorKind::BadVersion(version));
    }
    let t = r.u8()?;
    let kind = TableKind::from_code(t).ok_or(ErrorKind::BadTable(t))?;
    if r.u8()? != 0 {
        return Err(ErrorKind::Malformed("header"));
    }
    let chains = r.u16()?;
    if r.u16()? != 0 {
        return Err(ErrorKind::Malformed("header"));
    }
    let rules = r.u32()?;
    let body = r.u32()?;
    if chains as usize > MAX_CHAINS || rules as usize > MAX_RULES {
        return Err(ErrorKind::TooBig);
    }
    if blob.len().checked_sub(HEADER_LEN) != Some(body as usize) {
        return Err(ErrorKind::BadLength);
    }
    // Every chain and every rule takes at least MIN_ITEM_LEN bytes, so a
    // header cannot make the caller allocate more entries than the blob
    // could describe.
    let min_body = (u64::from(rules) + u64::from(chains)) * MIN_ITEM_LEN;
    if min_body > u64::from(body) {
        return Err(ErrorKind::BadLength);
    }
    Ok(Header {
        kind,
        chains,
        rules,
    })
}

/// Decodes and validates a whole table into `storage`, which must hold at
/// least [`entries_needed`] entries (fill it with [`Entry::EMPTY`]).
///
/// Checks, with an error naming the chain and rule: the format; chain names
/// (unique, valid, built-ins present with a policy, user chains without);
/// each rule's fields (families agree, prefix lengths, ranges, options that
/// need a protocol, target parameters); jumps (to existing user chains, no
/// loops, at most [`MAX_DEPTH`] deep); and targets and interfaces against the
/// table and the hooks each chain is reachable from.
pub fn decode_into<'r>(blob: &[u8], storage: &'r mut [Entry]) -> Result<Table<'r>, Error> {
    let h = header(blob).map_err(Error::at)?;
    let needed = h.rules as usize + h.chains as usize;
    let store = storage
        .get_mut(..needed)
        .ok_or(Error::at(ErrorKind::StorageTooSmall))?;
    let mut r = Reader::new(blob);
    r.bytes(HEADER_LEN).map_err(Error::at)?;

    let mut hook_entry = [0u32; 5];
    let mut underflow = [0u32; 5];
    let mut next = 0usize;

    // Pass 1: chains and rules in order, each rule checked on its own.
    for c in 0..h.chains {
        let name_len = r.u8().map_err(Error::at)? as usize;
        let name_bytes = r.bytes(name_len).map_err(Error::at)?;
        let name = ChainName::new(name_bytes).ok_or(Error::at(ErrorKind::BadChainName))?;
        let err = |kind| Error {
            kind,
            chain: Some(name),
            rule: 0,
        };
        let policy = match r.u8().map_err(err)? {
            0 => None,
            1 => Some(Policy::Accept),
            2 => Some(Policy::Drop),
            _ => return Err(err(ErrorKind::Malformed("policy"))),
        };
        // Built-in chains come first, in hook order; then user chains.
        let hook = Hook::ALL
            .into_iter()
            .filter(|hk| h.kind.has_hook(*hk))
            .nth(usize::from(c));
        match hook {
            Some(hk) => {
                if hk.name().as_bytes() != name_bytes {
                    return Err(err(ErrorKind::MissingBuiltin(hk)));
                }
                if policy.is_none() {
                    return Err(err(ErrorKind::BadPolicy));
                }
            }
            None => {
                if policy.is_some() {
                    return Err(err(ErrorKind::BadPolicy));
                }
                if !is_valid_chain_name(name_bytes) || Hook::from_name(name_bytes).is_some() {
                    return Err(err(ErrorKind::BadChainName));
                }
            }
        }
        // Names are unique: compare with every earlier chain, walking back
        // from end entry to end entry (O(chains)).
        let mut back = next;
        while let Some(e) = back.checked_sub(1).and_then(|b| store.get(b)) {
            if matches!(e.kind, EntryKind::End { name: n, .. } if n == name) {
                return Err(err(ErrorKind::DuplicateChain));
            }
            back = e.chain_start as usize;
        }
        let n_rules = r.u32().map_err(err)?;
        let start = next;
        if n_rules as usize > needed.saturating_sub(start) {
            return Err(err(ErrorKind::BadLength));
        }
        for i in 0..n_rules {
            let rerr = |kind| Error {
                kind,
                chain: Some(name),
                rule: i.saturating_add(1),
            };
            let rule = decode_rule(&mut r, h.chains).map_err(rerr)?;
            let family = check_rule(&rule, h.kind).map_err(rerr)?;
            let slot = store.get_mut(next).ok_or(rerr(ErrorKind::BadLength))?;
            *slot = Entry {
                kind: EntryKind::Rule(rule),
                jump_to: 0,
                chain_start: start as u32,
                chain: c,
                family,
                hooks: 0,
                depth: 0,
                indeg: 0,
                link: 0,
            };
            next += 1;
        }
        let slot = store.get_mut(next).ok_or(err(ErrorKind::BadLength))?;
        *slot = Entry {
            kind: EntryKind::End { name, policy },
            jump_to: 0,
            chain_start: start as u32,
            chain: c,
            family: None,
            hooks: 0,
            depth: 0,
            indeg: 0,
            link: 0,
        };
        if let Some(hk) = hook {
            let i = hk as usize;
            if let (Some(he), Some(uf)) = (hook_entry.get_mut(i), underflow.get_mut(i)) {
                *he = start as u32;
                *uf = next as u32;
            }
        }
        next += 1;
    }
    if r.pos() != blob.len() || next != needed {
        return Err(Error::at(ErrorKind::BadLength));
    }
    if let Some(hk) = Hook::ALL
        .into_iter()
        .filter(|hk| h.kind.has_hook(*hk))
        .nth(usize::from(h.chains))
    {
        return Err(Error::at(ErrorKind::MissingBuiltin(hk)));
    }

    // Built-in chains are reached from their own hook.
    for hk in Hook::ALL {
        if h.kind.has_hook(hk) {
            if let Some(e) = hook_entry
                .get(hk as usize)
                .and_then(|&s| store.get_mut(s as usize))
            {
                e.hooks = hk.bit();
            }
        }
    }

    // Pass 2: resolve jumps to entry indices.
    for i in 0..store.len() {
        let Some(e) = store.get(i) else { break };
        let target = match e.kind {
            EntryKind::Rule(Rule {
                target: Target::Jump(t) | Target::Goto(t),
                ..
            }) => t,
            _ => continue,
        };
        let at = position(store, i);
        let start = chain_start(store, target.0).ok_or(Error {
            kind: ErrorKind::UnknownChain,
            ..at
        })?;
        let builtin = store.get(start).map(|s| s.hooks != 0).unwrap_or(true);
        if builtin {
            return Err(Error {
                kind: ErrorKind::JumpToBuiltin,
                ..at
            });
        }
        if let Some(e) = store.get_mut(i) {
            e.jump_to = start as u32;
        }
    }

    // Pass 3: topological order of the chain graph (Kahn), in O(entries):
    // in-degrees first, then chains whose callers are all done, carrying
    // the longest jump path (depth) and the hooks that reach them. Chains
    // left over are on a cycle or only reachable through one.
    for i in 0..store.len() {
        let Some(e) = store.get(i).copied() else {
            break;
        };
        if is_jump(&e) {
            if let Some(t) = store.get_mut(e.jump_to as usize) {
                t.indeg = t.indeg.saturating_add(1);
            }
        }
    }
    const NONE: u32 = u32::MAX;
    let mut ready = NONE;
    for i in 0..store.len() {
        let Some(e) = store.get(i).copied() else {
            break;
        };
        if matches!(e.kind, EntryKind::End { .. }) {
            if let Some(s) = store.get_mut(e.chain_start as usize) {
                if s.indeg == 0 {
                    s.link = ready;
                    ready = e.chain_start;
                }
            }
        }
    }
    let mut done = 0usize;
    while let Some(s) = store.get(ready as usize).copied() {
        let start = ready as usize;
        ready = s.link;
        done += 1;
        let mut i = start;
        while let Some(e) = store.get(i).copied() {
            if matches!(e.kind, EntryKind::End { .. }) {
                break;
            }
            if is_jump(&e) {
                if usize::from(s.depth) + 1 > MAX_DEPTH {
                    return Err(Error {
                        kind: ErrorKind::TooDeep,
                        ..position(store, i)
                    });
                }
                if let Some(t) = store.get_mut(e.jump_to as usize) {
                    t.depth = t.depth.max(s.depth + 1);
                    t.hooks |= s.hooks;
                    t.indeg = t.indeg.saturating_sub(1);
                    if t.indeg == 0 {
                        t.link = ready;
                        ready = e.jump_to;
                    }
                }
            }
            i += 1;
        }
    }
    if done < usize::from(h.chains) {
        // A jump between two chains that never became ready.
        let stuck = |x: u32| store.get(x as usize).is_some_and(|s| s.indeg > 0);
        let at = (0..store.len())
            .find(|&i| {
                store
                    .get(i)
                    .is_some_and(|e| is_jump(e) && stuck(e.chain_start) && stuck(e.jump_to))
            })
            .map(|i| position(store, i))
            .unwrap_or(Error::at(ErrorKind::JumpLoop));
        return Err(Error {
            kind: ErrorKind::JumpLoop,
            ..at
        });
    }

    // Pass 4: depth and hook checks.
    for i in 0..store.len() {
        let Some(e) = store.get(i).copied() else {
            break;
        };
        let EntryKind::Rule(rule) = e.kind else {
            continue;
        };
        let head = store
            .get(e.chain_start as usize)
            .map(|s| (s.depth, s.hooks))
            .unwrap_or((0, 0));
        check_hooks(&rule, head.1).map_err(|kind| Error {
            kind,
            ..position(store, i)
        })?;
    }

    Ok(Table {
        kind: h.kind,
        entries: store,
        hook_entry,
        underflow,
        chains: h.chains,
    })
}

fn is_jump(e: &Entry) -> bool {
    matches!(
        e.kind,
        EntryKind::Rule(Rule {
            target: Target::Jump(_) | Target::Goto(_),
            ..
        })
    )
}

/// The first entry of chain `c`: entries are sorted by chain number.
fn chain_start(store: &[Entry], c: u16) -> Option<usize> {
    let i = store.partition_point(|e| e.chain < c);
    store
        .get(i)
        .filter(|e| e.chain == c)
        .map(|e| e.chain_start as usize)
}

/// The error position (chain name, rule number) of entry `i`.
fn position(store: &[Entry], i: usize) -> Error {
    let Some(e) = store.get(i) else {
        return Error::at(ErrorKind::BadLength);
    };
    let name = store.get(e.chain_start as usize..).and_then(|rest| {
        rest.iter().find_map(|x| match x.kind {
            EntryKind::End { name, .. } => Some(name),
            EntryKind::Rule(_) => None,
        })
    });
    let rule = (i as u32).saturating_sub(e.chain_start).saturating_add(1);
    Error {
        kind: ErrorKind::BadLength,
        chain: name,
        rule,
    }
}

fn decode_rule(r: &mut Reader<'_>, chains: u16) -> Result<Rule, ErrorKind> {
    let len = r.u16()? as usize;
    let start = r.pos();
    // The handle is fwctl's name for the rule; evaluation has no use for it.
    let _handle = r.u32()?;
    let present = r.u16()?;
    let invert = r.u16()?;
    if present & !field::ALL != 0 || invert & !present != 0 || invert & field::FAMILY != 0 {
        return Err(ErrorKind::Malformed("rule fields"));
    }
    let neg = |bit: u16| invert & bit != 0;
    let mut m = Match::ANY;
    if present & field::FAMILY != 0 {
        m.family = Some(match r.u8()? {
            4 => Family::Ipv4,
            6 => Family::Ipv6,
            _ => return Err(ErrorKind::Malformed("family")),
        });
    }
    if present & field::PROTO != 0 {
        m.proto = Some(Neg {
            invert: neg(field::PROTO),
            value: r.u8()?,
        });
    }
    if present & field::SRC != 0 {
        m.src = Some(Neg {
            invert: neg(field::SRC),
            value: Prefix {
                addr: r.addr()?,
                len: r.u8()?,
            },
        });
    }
    if present & field::DST != 0 {
        m.dst = Some(Neg {
            invert: neg(field::DST),
            value: Prefix {
                addr: r.addr()?,
                len: r.u8()?,
            },
        });
    }
    if present & field::SPORT != 0 {
        m.sport = Some(Neg {
            invert: neg(field::SPORT),
            value: r.port_range()?,
        });
    }
    if present & field::DPORT != 0 {
        m.dport = Some(Neg {
            invert: neg(field::DPORT),
            value: r.port_range()?,
        });
    }
    if present & field::IN_IF != 0 {
        m.in_if = Some(Neg {
            invert: neg(field::IN_IF),
            value: r.if_name()?,
        });
    }
    if present & field::OUT_IF != 0 {
        m.out_if = Some(Neg {
            invert: neg(field::OUT_IF),
            value: r.if_name()?,
        });
    }
    if present & field::CT_STATE != 0 {
        m.ct_state = Some(Neg {
            invert: neg(field::CT_STATE),
            value: CtStateSet(r.u8()?),
        });
    }
    if present & field::MARK != 0 {
        m.mark = Some(Neg {
            invert: neg(field::MARK),
            value: MarkMatch {
                value: r.u32()?,
                mask: r.u32()?,
            },
        });
    }
    if present & field::ICMP != 0 {
        let ty = r.u8()?;
        let has_code = r.bool("icmp code flag")?;
        let code = r.u8()?;
        if !has_code && code != 0 {
            return Err(ErrorKind::Malformed("icmp code"));
        }
        m.icmp = Some(Neg {
            invert: neg(field::ICMP),
            value: IcmpMatch {
                ty,
                code: has_code.then_some(code),
            },
        });
    }
    if present & field::TCP_FLAGS != 0 {
        m.tcp_flags = Some(Neg {
            invert: neg(field::TCP_FLAGS),
            value: TcpFlagsMatch {
                mask: r.u8()?,
                comp: r.u8()?,
            },
        });
    }
    let target = match r.u8()? {
        tag::CONTINUE => Target::Continue,
        tag::ACCEPT => Target::Accept,
        tag::DROP => Target::Drop,
        tag::REJECT => {
            let c = r.u8()? as usize;
            Target::Reject(
                RejectWith::NAMES
                    .get(c)
                    .map(|n| n.1)
                    .ok_or(ErrorKind::Malformed("reject kind"))?,
            )
        }
        tag::RETURN => Target::Return,
        t @ (tag::JUMP | tag::GOTO) => {
            let c = r.u16()?;
            if c >= chains {
                return Err(ErrorKind::UnknownChain);
            }
            if t == tag::JUMP {
                Target::Jump(ChainId(c))
            } else {
                Target::Goto(ChainId(c))
            }
        }
        tag::QUEUE => Target::Queue(QueueSpec::num(r.u16()?)),
        tag::QUEUE_BYPASS => Target::Queue(QueueSpec {
            num: r.u16()?,
            bypass: true,
        }),
        tag::LOG => {
            let level = r.u8()?;
            let rate = r.u16()?;
            let burst = r.u16()?;
            let n = r.u8()? as usize;
            let prefix = LogPrefix::new(r.bytes(n)?).ok_or(ErrorKind::BadValue("log prefix"))?;
            Target::Log(LogSpec {
                prefix,
                level,
                rate,
                burst,
            })
        }
        tag::SNAT => Target::Snat(r.nat_range()?),
        tag::DNAT => Target::Dnat(r.nat_range()?),
        tag::MASQUERADE => Target::Masquerade(r.nat_range()?),
        tag::REDIRECT => Target::Redirect(r.nat_range()?),
        tag::MARK => {
            let kind = r.u8()?;
            let value = r.u32()?;
            let mask = r.u32()?;
            Target::Mark(match (kind, mask) {
                (0, _) => MarkOp::Set { value, mask },
                (1, 0) => MarkOp::And(value),
                (2, 0) => MarkOp::Or(value),
                (3, 0) => MarkOp::Xor(value),
                _ => return Err(ErrorKind::Malformed("mark op")),
            })
        }
        tag::TOS => Target::Tos(TosOp {
            value: r.u8()?,
            mask: r.u8()?,
        }),
        tag::TTL => {
            let kind = r.u8()?;
            let n = r.u8()?;
            Target::Ttl(match kind {
                0 => TtlOp::Set(n),
                1 => TtlOp::Inc(n),
                2 => TtlOp::Dec(n),
                _ => return Err(ErrorKind::Malformed("ttl op")),
            })
        }
        tag::OFFLOAD => Target::Offload,
        _ => return Err(ErrorKind::Malformed("target")),
    };
    if r.pos() - start != len {
        return Err(ErrorKind::BadLength);
    }
    Ok(Rule { matches: m, target })
}

/// Merges a family requirement into `fam`.
fn need_family(fam: &mut Option<Family>, f: Family) -> Result<(), ErrorKind> {
    match *fam {
        Some(g) if g != f => Err(ErrorKind::FamilyMismatch),
        _ => {
            *fam = Some(f);
            Ok(())
        }
    }
}

fn check_prefix(fam: &mut Option<Family>, p: &Option<Neg<Prefix>>) -> Result<(), ErrorKind> {
    if let Some(p) = p {
        need_family(fam, p.value.family())?;
        if p.value.len > p.value.family().max_prefix() {
            return Err(ErrorKind::BadPrefix);
        }
    }
    Ok(())
}

fn check_port_range(r: &PortRange) -> Result<(), ErrorKind> {
    if r.lo > r.hi {
        Err(ErrorKind::BadRange)
    } else {
        Ok(())
    }
}

/// The rule's protocol when it names one positively (`-p tcp`, not `! -p tcp`).
fn positive_proto(m: &Match) -> Option<u8> {
    match m.proto {
        Some(Neg {
            invert: false,
            value,
        }) => Some(value),
        _ => None,
    }
}

fn check_nat_range(
    fam: &mut Option<Family>,
    m: &Match,
    nr: &NatRange,
    addrs_allowed: bool,
) -> Result<(), ErrorKind> {
    if nr.flags.0 & !NatFlags::ALL != 0 {
        return Err(ErrorKind::BadValue("NAT flags"));
    }
    if let Some(a) = nr.addrs {
        if !addrs_allowed {
            return Err(ErrorKind::BadValue("addresses (only ports may be given)"));
        }
        let f = Family::of(&a.lo);
        if Family::of(&a.hi) != f {
            return Err(ErrorKind::FamilyMismatch);
        }
        need_family(fam, f)?;
        if !AddrRange::contains(&a, &a.lo) || !a.contains(&a.hi) {
            return Err(ErrorKind::BadRange);
        }
    }
    if let Some(p) = nr.ports {
        check_port_range(&p)?;
        if p.lo == 0 {
            return Err(ErrorKind::BadRange);
        }
        // Unlike iptables, no `-p` is fine: the ports then apply to the
        // protocols NAT rewrites ports of and the others get the address
        // only (`nat_core::unique_tuple`), so that `--to-destination
        // ADDR:PORT` works alone. A `-p` naming a protocol without them can
        // never use the ports: refused.
        if positive_proto(m).is_some_and(|p| !proto::nat_rewrites_ports(p)) {
            return Err(ErrorKind::NeedsProtocol("a NAT port range"));
        }
    }
    if addrs_allowed && nr.addrs.is_none() && nr.ports.is_none() {
        return Err(ErrorKind::BadValue("NAT range (empty)"));
    }
    Ok(())
}

/// Checks one rule on its own; returns the family it is limited to.
pub(crate) fn check_rule(rule: &Rule, table: TableKind) -> Result<Option<Family>, ErrorKind> {
    let m = &rule.matches;
    let mut fam = m.family;
    check_prefix(&mut fam, &m.src)?;
    check_prefix(&mut fam, &m.dst)?;
    let p = positive_proto(m);
    for pr in [m.sport, m.dport].into_iter().flatten() {
        check_port_range(&pr.value)?;
        if !p.is_some_and(proto::has_ports) {
            return Err(ErrorKind::NeedsProtocol("--sport/--dport"));
        }
    }
    if m.icmp.is_some() {
        match p {
            Some(proto::ICMP) => need_family(&mut fam, Family::Ipv4)?,
            Some(proto::ICMPV6) => need_family(&mut fam, Family::Ipv6)?,
            _ => return Err(ErrorKind::NeedsProtocol("--icmp-type")),
        }
    }
    if let Some(t) = m.tcp_flags {
        if p != Some(proto::TCP) {
            return Err(ErrorKind::NeedsProtocol("--tcp-flags"));
        }
        if t.value.comp & !t.value.mask != 0 {
            return Err(ErrorKind::BadValue(
                "--tcp-flags (compared flags outside the mask)",
            ));
        }
    }
    if let Some(s) = m.ct_state {
        if s.value.0 == 0 || s.value.0 & !CtStateSet::ALL != 0 {
            return Err(ErrorKind::BadValue("--ct-state"));
        }
    }
    match &rule.target {
        Target::Reject(RejectWith::TcpReset) if p != Some(proto::TCP) => {
            return Err(ErrorKind::NeedsProtocol("--reject-with tcp-reset"));
        }
        Target::Reject(_) if table != TableKind::Filter => {
            return Err(ErrorKind::TargetNotInTable("REJECT"));
        }
        Target::Log(l) => {
            if !is_valid_log_prefix(l.prefix.as_bytes()) {
                return Err(ErrorKind::BadValue("--log-prefix"));
            }
            if l.level > 7 {
                return Err(ErrorKind::BadValue("--log-level"));
            }
            if l.rate == 0 || l.burst == 0 {
                return Err(ErrorKind::BadValue("--log-rate/--log-burst"));
            }
        }
        Target::Snat(nr) | Target::Dnat(nr) => check_nat_range(&mut fam, m, nr, true)?,
        Target::Masquerade(nr) | Target::Redirect(nr) => check_nat_range(&mut fam, m, nr, false)?,
        Target::Ttl(TtlOp::Inc(0) | TtlOp::Dec(0)) => {
            return Err(ErrorKind::BadValue("--ttl-inc/--ttl-dec (0)"))
        }
        _ => {}
    }
    let table_ok = match rule.target {
        Target::Snat(_) | Target::Dnat(_) | Target::Masquerade(_) | Target::Redirect(_) => {
            table == TableKind::Nat
        }
        Target::Tos(_) | Target::Ttl(_) => table == TableKind::Mangle,
        Target::Offload => table == TableKind::Filter,
        _ => true,
    };
    if !table_ok {
        return Err(ErrorKind::TargetNotInTable(rule.target.name()));
    }
    Ok(fam)
}

/// Checks a rule against the hooks its chain is reachable from.
fn check_hooks(rule: &Rule, hooks: u8) -> Result<(), ErrorKind> {
    let allowed: u8 = match rule.target {
        Target::Snat(_) => Hook::Postrouting.bit() | Hook::Input.bit(),
        Target::Masquerade(_) => Hook::Postrouting.bit(),
        Target::Dnat(_) | Target::Redirect(_) => Hook::Prerouting.bit() | Hook::Output.bit(),
        // Only forwarded flows have a fast path: nft's `flow add` is
        // refused outside the forward hook (`nft_flow_offload_validate`).
        Target::Offload => Hook::Forward.bit(),
        _ => u8::MAX,
    };
    if let Some(bad) = first_hook(hooks & !allowed) {
        return Err(ErrorKind::TargetNotInHook(rule.target.name(), bad));
    }
    if rule.matches.in_if.is_some() {
        if let Some(bad) = first_hook(hooks & (Hook::Output.bit() | Hook::Postrouting.bit())) {
            return Err(ErrorKind::InterfaceNotInHook("-i", bad));
        }
    }
    if rule.matches.out_if.is_some() {
        if let Some(bad) = first_hook(hooks & (Hook::Prerouting.bit() | Hook::Input.bit())) {
            return Err(ErrorKind::InterfaceNotInHook("-o", bad));
        }
    }
    Ok(())
}

fn first_hook(mask: u8) -> Option<Hook> {
    Hook::ALL.into_iter().find(|h| mask & h.bit() != 0)
}
