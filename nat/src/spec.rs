//! The owned ruleset (host only): what fwctl builds, prints, parses, and
//! encodes for the kernel.
//!
//! Corresponds to the user-space half of `ip_tables.c`'s interface
//! (`libiptc`'s table blob): the kernel only ever sees the bytes of
//! [`TableSpec::encode`], and validates them itself with
//! [`crate::codec::decode_into`]; [`TableSpec::validate`] runs that same
//! code, so fwctl reports exactly the errors the kernel would.

use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use crate::codec::{
    decode_into, field, tag, Entry, EntryKind, Error, ErrorKind, Reader, HEADER_LEN, MAGIC,
    MAX_CHAINS, MAX_RULES, VERSION,
};
use crate::rule::{
    ChainId, ChainName, Counter, Family, Hook, IfName, MarkOp, NatRange, Policy, PortRange,
    RejectWith, Rule, TableKind, Target, TtlOp,
};

/// A rule with its counters and handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// The rule.
    pub rule: Rule,
    /// Its counters (as saved; the kernel keeps the live ones).
    pub counter: Counter,
    /// Its handle: fwctl's stable name for it within its table (kept when
    /// other rules are added or deleted, as nft handles are). Part of the
    /// binary form, ignored by the kernel; not part of the text form.
    pub handle: u32,
}

impl From<Rule> for RuleSpec {
    /// The rule with zero counters and handle 0 (none assigned yet).
    fn from(rule: Rule) -> Self {
        RuleSpec {
            rule,
            counter: Counter::default(),
            handle: 0,
        }
    }
}

/// A chain: built-in (with a policy) or user-defined (without).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// The chain's name.
    pub name: ChainName,
    /// The policy of a built-in chain, `None` for a user chain.
    pub policy: Option<Policy>,
    /// The policy's counters.
    pub counter: Counter,
    /// The rules, in order.
    pub rules: Vec<RuleSpec>,
}

/// One table: its chains in declaration order ([`ChainId`] indexes this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// Which table.
    pub kind: TableKind,
    /// The chains.
    pub chains: Vec<ChainSpec>,
}

/// A whole ruleset: the tables a save file holds, in its order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// The tables.
    pub tables: Vec<TableSpec>,
}

impl Ruleset {
    /// The table of `kind`, if present.
    pub fn table(&self, kind: TableKind) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.kind == kind)
    }

    /// Validates every table.
    pub fn validate(&self) -> Result<(), (TableKind, Error)> {
        self.tables
            .iter()
            .try_for_each(|t| t.validate().map_err(|e| (t.kind, e)))
    }
}

impl TableSpec {
    /// An empty table: its built-in chains with policy ACCEPT.
    pub fn new(kind: TableKind) -> Self {
        let chains = Hook::ALL
            .into_iter()
            .filter(|h| kind.has_hook(*h))
            .map(|h| ChainSpec {
                name: ChainName::new(h.name().as_bytes()).unwrap_or(ChainName::EMPTY),
                policy: Some(Policy::Accept),
                counter: Counter::default(),
                rules: Vec::new(),
            })
            .collect();
        TableSpec { kind, chains }
    }

    /// The id of the chain called `name`.
    pub fn chain_id(&self, name: &str) -> Option<ChainId> {
        let i = self
            .chains
            .iter()
            .position(|c| c.name.as_bytes() == name.as_bytes())?;
        u16::try_from(i).ok().map(ChainId)
    }

    /// The chain called `name`.
    pub fn chain_mut(&mut self, name: &str) -> Option<&mut ChainSpec> {
        self.chains
            .iter_mut()
            .find(|c| c.name.as_bytes() == name.as_bytes())
    }

    /// The name of chain `id`.
    pub fn chain_name(&self, id: ChainId) -> Option<&ChainName> {
        self.chains.get(usize::from(id.0)).map(|c| &c.name)
    }

    /// The number of entries the kernel keeps (and counts) for this table:
    /// every rule plus one end/policy entry per chain.
    pub fn entry_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len() + 1).sum()
    }

    /// Encodes the table in the binary form (see [`crate::codec`]). This
    /// does not validate: [`TableSpec::validate`] does, with the kernel's code.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let rules: usize = self.chains.iter().map(|c| c.rules.len()).sum();
        if self.chains.len() > MAX_CHAINS || rules > MAX_RULES {
            return Err(Error {
                kind: ErrorKind::TooBig,
                chain: None,
                rule: 0,
            });
        }
        let mut w = Vec::with_capacity(HEADER_LEN + 64 * rules);
        w.extend_from_slice(&MAGIC);
        w.extend_from_slice(&VERSION.to_le_bytes());
        w.push(self.kind as u8);
        w.push(0);
        w.extend_from_slice(&(self.chains.len() as u16).to_le_bytes());
        w.extend_from_slice(&0u16.to_le_bytes());
        w.extend_from_slice(&(rules as u32).to_le_bytes());
        w.extend_from_slice(&0u32.to_le_bytes());
        for c in &self.chains {
            w.push(c.name.as_bytes().len() as u8);
            w.extend_from_slice(c.name.as_bytes());
            w.push(match c.policy {
                None => 0,
                Some(Policy::Accept) => 1,
                Some(Policy::Drop) => 2,
            });
            w.extend_from_slice(&(c.rules.len() as u32).to_le_bytes());
            for r in &c.rules {
                encode_rule(&mut w, r.handle, &r.rule).map_err(|kind| Error {
                    kind,
                    chain: Some(c.name),
                    rule: 0,
                })?;
            }
        }
        let body = (w.len() - HEADER_LEN) as u32;
        if let Some(b) = w.get_mut(16..20) {
            b.copy_from_slice(&body.to_le_bytes());
        }
        Ok(w)
    }

    /// Validates the table exactly as the kernel will.
    pub fn validate(&self) -> Result<(), Error> {
        let blob = self.encode()?;
        let mut store = vec![Entry::EMPTY; self.entry_count()];
        decode_into(&blob, &mut store).map(|_| ())
    }

    /// Decodes (and validates) a blob into the owned form, counters zero,
    /// handles as the blob has them.
    pub fn decode(blob: &[u8]) -> Result<TableSpec, Error> {
        let n = crate::codec::entries_needed(blob)?;
        let mut store = vec![Entry::EMPTY; n];
        let table = decode_into(blob, &mut store)?;
        // The kernel's decoder skips the handles; read them here.
        let handles = rule_handles(blob).map_err(|kind| Error {
            kind,
            chain: None,
            rule: 0,
        })?;
        let mut handles = handles.into_iter();
        let mut spec = TableSpec {
            kind: table.kind(),
            chains: Vec::new(),
        };
        let mut rules = Vec::new();
        for e in table.entries() {
            match e.kind() {
                EntryKind::Rule(r) => rules.push(RuleSpec {
                    handle: handles.next().unwrap_or(0),
                    ..RuleSpec::from(*r)
                }),
                EntryKind::End { name, policy } => spec.chains.push(ChainSpec {
                    name: *name,
                    policy: *policy,
                    counter: Counter::default(),
                    rules: core::mem::take(&mut rules),
                }),
            }
        }
        Ok(spec)
    }

    /// Sets the counters from the kernel's per-entry counters (entry order:
    /// each chain's rules, then its policy).
    pub fn set_counters(&mut self, counters: &[Counter]) {
        let mut it = counters.iter();
        for c in &mut self.chains {
            for r in &mut c.rules {
                r.counter = it.next().copied().unwrap_or_default();
            }
            c.counter = it.next().copied().unwrap_or_default();
        }
    }

    /// The counters in entry order (each chain's rules, then its policy):
    /// what [`TableSpec::set_counters`] takes, and what the kernel's
    /// per-entry counters of this table are after it is installed.
    pub fn counters(&self) -> Vec<Counter> {
        let mut out = Vec::with_capacity(self.entry_count());
        for c in &self.chains {
            out.extend(c.rules.iter().map(|r| r.counter));
            out.push(c.counter);
        }
        out
    }

    /// Numbers the rules 1..=n in entry order, as a restored table's are.
    pub fn renumber_handles(&mut self) {
        let mut next = 0u32;
        for r in self.chains.iter_mut().flat_map(|c| c.rules.iter_mut()) {
            next = next.wrapping_add(1);
            r.handle = next;
        }
    }

    /// The handle for a new rule: one more than the largest in the table
    /// (1 in an empty table); `None` once `u32::MAX` is taken.
    pub fn next_handle(&self) -> Option<u32> {
        let max = self
            .chains
            .iter()
            .flat_map(|c| c.rules.iter())
            .map(|r| r.handle)
            .max()
            .unwrap_or(0);
        max.checked_add(1)
    }

    /// The chain and position (from 0) of the rule with `handle`.
    pub fn find_handle(&self, handle: u32) -> Option<(usize, usize)> {
        self.chains.iter().enumerate().find_map(|(ci, c)| {
            c.rules
                .iter()
                .position(|r| r.handle == handle)
                .map(|ri| (ci, ri))
        })
    }
}

/// The handles of a blob's rules, in entry order. Walks only the framing
/// (chain headers and rule lengths); [`decode_into`] checks the rest.
fn rule_handles(blob: &[u8]) -> Result<Vec<u32>, ErrorKind> {
    let mut r = Reader::new(blob);
    // Magic, version, table, 0; chains; 0, rules, body length.
    r.bytes(8)?;
    let chains = r.u16()?;
    r.bytes(HEADER_LEN - 10)?;
    let mut out = Vec::new();
    for _ in 0..chains {
        let name_len = usize::from(r.u8()?);
        r.bytes(name_len)?;
        r.u8()?;
        let rules = r.u32()?;
        for _ in 0..rules {
            let len = usize::from(r.u16()?);
            let handle = r.u32()?;
            r.bytes(len.checked_sub(4).ok_or(ErrorKind::BadLength)?)?;
            out.push(handle);
        }
    }
    Ok(out)
}

fn put_addr(w: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => {
            w.push(4);
            w.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            w.push(6);
            w.extend_from_slice(&a.octets());
        }
    }
}

fn put_ports(w: &mut Vec<u8>, p: &PortRange) {
    w.extend_from_slice(&p.lo.to_le_bytes());
    w.extend_from_slice(&p.hi.to_le_bytes());
}

fn put_if(w: &mut Vec<u8>, i: &IfName) {
    w.push(i.as_bytes().len() as u8);
    w.extend_from_slice(i.as_bytes());
}

fn put_range(w: &mut Vec<u8>, r: &NatRange) {
    w.push(r.flags.0);
    w.push(u8::from(r.addrs.is_some()) | (u8::from(r.ports.is_some()) << 1));
    if let Some(a) = &r.addrs {
        put_addr(w, &a.lo);
        put_addr(w, &a.hi);
    }
    if let Some(p) = &r.ports {
        put_ports(w, p);
    }
}

fn encode_rule(w: &mut Vec<u8>, handle: u32, rule: &Rule) -> Result<(), ErrorKind> {
    let len_at = w.len();
    w.extend_from_slice(&[0, 0]);
    let body = w.len();
    w.extend_from_slice(&handle.to_le_bytes());
    let m = &rule.matches;
    let mut present = 0u16;
    let mut invert = 0u16;
    let mut mark = |bit: u16, inv: Option<bool>| {
        if let Some(i) = inv {
            present |= bit;
            if i {
                invert |= bit;
            }
        }
    };
    mark(field::FAMILY, m.family.map(|_| false));
    mark(field::PROTO, m.proto.map(|n| n.invert));
    mark(field::SRC, m.src.map(|n| n.invert));
    mark(field::DST, m.dst.map(|n| n.invert));
    mark(field::SPORT, m.sport.map(|n| n.invert));
    mark(field::DPORT, m.dport.map(|n| n.invert));
    mark(field::IN_IF, m.in_if.map(|n| n.invert));
    mark(field::OUT_IF, m.out_if.map(|n| n.invert));
    mark(field::CT_STATE, m.ct_state.map(|n| n.invert));
    mark(field::MARK, m.mark.map(|n| n.invert));
    mark(field::ICMP, m.icmp.map(|n| n.invert));
    mark(field::TCP_FLAGS, m.tcp_flags.map(|n| n.invert));
    w.extend_from_slice(&present.to_le_bytes());
    w.extend_from_slice(&invert.to_le_bytes());
    if let Some(f) = m.family {
        w.push(match f {
            Family::Ipv4 => 4,
            Family::Ipv6 => 6,
        });
    }
    if let Some(p) = m.proto {
        w.push(p.value);
    }
    for p in [m.src, m.dst].into_iter().flatten() {
        put_addr(w, &p.value.addr);
        w.push(p.value.len);
    }
    for p in [m.sport, m.dport].into_iter().flatten() {
        put_ports(w, &p.value);
    }
    for i in [m.in_if, m.out_if].into_iter().flatten() {
        put_if(w, &i.value);
    }
    if let Some(s) = m.ct_state {
        w.push(s.value.0);
    }
    if let Some(k) = m.mark {
        w.extend_from_slice(&k.value.value.to_le_bytes());
        w.extend_from_slice(&k.value.mask.to_le_bytes());
    }
    if let Some(i) = m.icmp {
        w.push(i.value.ty);
        w.push(u8::from(i.value.code.is_some()));
        w.push(i.value.code.unwrap_or(0));
    }
    if let Some(t) = m.tcp_flags {
        w.push(t.value.mask);
        w.push(t.value.comp);
    }
    match &rule.target {
        Target::Continue => w.push(tag::CONTINUE),
        Target::Accept => w.push(tag::ACCEPT),
        Target::Drop => w.push(tag::DROP),
        Target::Reject(k) => {
            w.push(tag::REJECT);
            let code = RejectWith::NAMES
                .iter()
                .position(|(_, r)| r == k)
                .unwrap_or(0);
            w.push(code as u8);
        }
        Target::Return => w.push(tag::RETURN),
        Target::Jump(c) => {
            w.push(tag::JUMP);
            w.extend_from_slice(&c.0.to_le_bytes());
        }
        Target::Goto(c) => {
            w.push(tag::GOTO);
            w.extend_from_slice(&c.0.to_le_bytes());
        }
        Target::Queue(q) => {
            w.push(if q.bypass {
                tag::QUEUE_BYPASS
            } else {
                tag::QUEUE
            });
            w.extend_from_slice(&q.num.to_le_bytes());
        }
        Target::Log(l) => {
            w.push(tag::LOG);
            w.push(l.level);
            w.extend_from_slice(&l.rate.to_le_bytes());
            w.extend_from_slice(&l.burst.to_le_bytes());
            w.push(l.prefix.as_bytes().len() as u8);
            w.extend_from_slice(l.prefix.as_bytes());
        }
        Target::Snat(r) => {
            w.push(tag::SNAT);
            put_range(w, r);
        }
        Target::Dnat(r) => {
            w.push(tag::DNAT);
            put_range(w, r);
        }
        Target::Masquerade(r) => {
            w.push(tag::MASQUERADE);
            put_range(w, r);
        }
        Target::Redirect(r) => {
            w.push(tag::REDIRECT);
            put_range(w, r);
        }
        Target::Mark(op) => {
            w.push(tag::MARK);
            let (k, v, m) = match *op {
                MarkOp::Set { value, mask } => (0u8, value, mask),
                MarkOp::And(v) => (1, v, 0),
                MarkOp::Or(v) => (2, v, 0),
                MarkOp::Xor(v) => (3, v, 0),
            };
            w.push(k);
            w.extend_from_slice(&v.to_le_bytes());
            w.extend_from_slice(&m.to_le_bytes());
        }
        Target::Tos(t) => {
            w.push(tag::TOS);
            w.push(t.value);
            w.push(t.mask);
        }
        Target::Ttl(t) => {
            w.push(tag::TTL);
            let (k, n) = match *t {
                TtlOp::Set(n) => (0u8, n),
                TtlOp::Inc(n) => (1, n),
                TtlOp::Dec(n) => (2, n),
            };
            w.push(k);
            w.push(n);
        }
        Target::Offload => w.push(tag::OFFLOAD),
    }
    let len = u16::try_from(w.len() - body).map_err(|_| ErrorKind::TooBig)?;
    if let Some(b) = w.get_mut(len_at..len_at + 2) {
        b.copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}
