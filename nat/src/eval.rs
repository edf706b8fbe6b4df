//! Evaluation of a decoded table on the packet path.
//!
//! Corresponds to `ipt_do_table` in `net/ipv4/netfilter/ip_tables.c` (and
//! `ip6t_do_table`): walk the hook's built-in chain, jump into user chains
//! with a bounded stack, count each matching rule, stop at the first
//! terminal target or fall through to the policy. The match semantics are
//! those of `ip_packet_match` and of the `xt_tcpudp`, `xt_conntrack`,
//! `xt_mark` and `icmp_match` extensions.
//!
//! Non-terminal targets are applied as they are met (iptables' `XT_CONTINUE`):
//! MARK changes the mark later rules see, TOS and TTL fold into one
//! [`Mangle`] for the caller to write into the packet, LOG goes to the
//! caller's [`RuleSink::log`], OFFLOAD sets [`Outcome::offload`]. Nothing
//! here allocates.

use core::net::IpAddr;

use crate::codec::{EntryKind, Table, MAX_DEPTH};
use crate::rule::{
    proto, CtState, Family, Hook, IfName, LogSpec, Match, NatRange, Neg, Policy, RejectWith, Rule,
    Target, TosOp, TtlOp,
};

/// What evaluation needs to know about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// The packet's family.
    pub family: Family,
    /// The L4 protocol (IPv4 protocol, or IPv6 upper-layer header).
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (TCP, UDP, ...), else 0.
    pub sport: u16,
    /// Destination port, else 0.
    pub dport: u16,
    /// Incoming interface, [`IfName::NONE`] when there is none.
    pub in_if: IfName,
    /// Outgoing interface, [`IfName::NONE`] when there is none.
    pub out_if: IfName,
    /// Conntrack state.
    pub ct_state: CtState,
    /// The packet mark (`skb->mark`).
    pub mark: u32,
    /// ICMP/ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code.
    pub icmp_code: u8,
    /// TCP flags byte.
    pub tcp_flags: u8,
    /// A non-first fragment: port, ICMP and TCP-flag matches fail on it.
    pub fragment: bool,
    /// Length in bytes, for the byte counters.
    pub len: u32,
}

/// A terminal decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let the packet through.
    Accept,
    /// Drop it silently.
    Drop,
    /// Drop it and answer.
    Reject(RejectWith),
    /// Hand it to user space on this queue.
    Queue(crate::rule::QueueSpec),
    /// (nat table) Accept and set up source NAT into this range.
    Snat(NatRange),
    /// (nat table) Accept and set up destination NAT into this range.
    Dnat(NatRange),
    /// (nat table) Accept and source NAT to the outgoing interface's address.
    Masquerade(NatRange),
    /// (nat table) Accept and destination NAT to the incoming interface's address.
    Redirect(NatRange),
}

impl From<Policy> for Verdict {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Accept => Verdict::Accept,
            Policy::Drop => Verdict::Drop,
        }
    }
}

/// Header changes collected from TOS and TTL targets, each folded into one
/// operation (in rule order), to be applied with [`crate::mangle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mangle {
    /// The TOS / traffic class change, if any.
    pub tos: Option<TosOp>,
    /// The TTL / hop limit change, if any.
    pub ttl: Option<TtlFn>,
}

impl Mangle {
    /// True when there is nothing to change.
    pub const fn is_empty(&self) -> bool {
        self.tos.is_none() && self.ttl.is_none()
    }
}

/// Any sequence of TTL set/inc/dec, as one function
/// `ttl -> clamp(ttl + add, lo, hi)`.
///
/// Each [`TtlOp`] has that form (set n: add 0, lo = hi = n; inc n: add n,
/// 0..=255; dec n: add -n, 0..=255), and the form is closed under
/// composition, so a chain of TTL targets folds exactly.
///
/// # Invariants
/// `lo <= hi` and `-256 <= add <= 256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtlFn {
    add: i16,
    lo: u8,
    hi: u8,
}

impl TtlFn {
    /// The function of one operation.
    pub const fn of(op: TtlOp) -> Self {
        match op {
            TtlOp::Set(n) => TtlFn {
                add: 0,
                lo: n,
                hi: n,
            },
            TtlOp::Inc(n) => TtlFn {
                add: n as i16,
                lo: 0,
                hi: 255,
            },
            TtlOp::Dec(n) => TtlFn {
                add: -(n as i16),
                lo: 0,
                hi: 255,
            },
        }
    }

    /// `self`, then `next`.
    pub fn then(self, next: TtlFn) -> TtlFn {
        let shift = |b: u8| {
            (i32::from(b) + i32::from(next.add)).clamp(i32::from(next.lo), i32::from(next.hi))
        };
        let add = (i32::from(self.add) + i32::from(next.add)).clamp(-256, 256);
        // INVARIANT: both bounds are clamped into next.lo..=next.hi and the
        // map is monotonic, so lo <= hi; add is clamped to +-256.
        TtlFn {
            add: add as i16,
            lo: shift(self.lo) as u8,
            hi: shift(self.hi) as u8,
        }
    }

    /// The new TTL.
    #[inline]
    pub fn apply(self, ttl: u8) -> u8 {
        (i32::from(ttl) + i32::from(self.add)).clamp(i32::from(self.lo), i32::from(self.hi)) as u8
    }
}

/// The result of evaluating a table for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What to do with the packet.
    pub verdict: Verdict,
    /// The packet mark after MARK targets (equal to the input when unchanged).
    pub mark: u32,
    /// TOS/TTL changes to write into the packet.
    pub mangle: Mangle,
    /// The entry whose target or policy decided.
    pub entry: u32,
    /// An OFFLOAD rule matched during the walk (filter FORWARD only): the
    /// caller may move the packet's flow to rfw's fast path. False when
    /// none did, and for a hook this table has no chain for.
    pub offload: bool,
}

/// Where evaluation reports what it saw: per-entry counters and LOG lines.
/// The kernel implements it over its per-CPU counters and printk.
pub trait RuleSink {
    /// Entry `index` (a rule, or a chain's policy) matched a packet of
    /// `bytes` bytes.
    fn hit(&mut self, index: usize, bytes: u32);

    /// A LOG rule at entry `index` matched. Rate limiting is the sink's
    /// (see [`TokenBucket`]); the default does nothing.
    fn log(&mut self, index: usize, spec: &LogSpec, pkt: &PacketMeta) {
        let _ = (index, spec, pkt);
    }
}

/// A plain counter array, one per entry.
impl RuleSink for [crate::rule::Counter] {
    #[inline]
    fn hit(&mut self, index: usize, bytes: u32) {
        if let Some(c) = self.get_mut(index) {
            c.add(bytes);
        }
    }
}

/// A sink that records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSink;

impl RuleSink for NoSink {
    #[inline]
    fn hit(&mut self, _index: usize, _bytes: u32) {}
}

/// An integer token bucket for LOG rate limiting (like `xt_limit`'s
/// credit scheme). Time comes from the caller, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TokenBucket {
    /// Credit, in nanoseconds of refill time (one token = 1e9 / rate ns).
    credit: u64,
    last: u64,
    started: bool,
}

impl TokenBucket {
    /// Takes a token if one is available at time `now_ns`.
    pub fn allow(&mut self, now_ns: u64, rate: u16, burst: u16) -> bool {
        let cost = 1_000_000_000u64 / u64::from(rate.max(1));
        let cap = cost.saturating_mul(u64::from(burst.max(1)));
        if !self.started {
            self.started = true;
            self.credit = cap;
        } else {
            let elapsed = now_ns.saturating_sub(self.last);
            self.credit = self.credit.saturating_add(elapsed).min(cap);
        }
        self.last = now_ns;
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }
}

#[inline]
fn neg_ok<T>(m: &Option<Neg<T>>, f: impl FnOnce(&T) -> bool) -> bool {
    match m {
        None => true,
        Some(n) => f(&n.value) != n.invert,
    }
}

/// Does `m` match `p`? (`ip_packet_match` and the match extensions.)
#[inline]
pub fn matches(m: &Match, family: Option<Family>, p: &PacketMeta) -> bool {
    matches_marked(m, family, p, p.mark)
}

/// [`matches`] for `p` carrying `mark` instead of `p.mark` (the mark as
/// MARK targets earlier in the walk left it), so that evaluation need not
/// copy the packet's metadata to change one field.
///
/// Always inlined: [`Table::evaluate`] calls it once per rule, and out of
/// line (as the compiler chose once it had two callers) the call and its
/// register saves and return thunk cost the kernel build about as much as
/// the matching (R1000 in docs/PERFORMANCE.md: 42.6 -> 77.9 ns per rule).
#[inline(always)]
fn matches_marked(m: &Match, family: Option<Family>, p: &PacketMeta, mark: u32) -> bool {
    if family.is_some_and(|f| f != p.family) {
        return false;
    }
    if !neg_ok(&m.proto, |&v| v == p.proto)
        || !neg_ok(&m.src, |v| v.contains(&p.src))
        || !neg_ok(&m.dst, |v| v.contains(&p.dst))
        || !neg_ok(&m.in_if, |v| v.matches(&p.in_if))
        || !neg_ok(&m.out_if, |v| v.matches(&p.out_if))
        || !neg_ok(&m.ct_state, |v| v.contains(p.ct_state))
        || !neg_ok(&m.mark, |v| mark & v.mask == v.value)
    {
        return false;
    }
    // L4 matches see only first fragments, and then only the protocol
    // they were written for (`xt_tcpudp`: "fragoff != 0 -> no match").
    let l4 = m.sport.is_some() || m.dport.is_some() || m.icmp.is_some() || m.tcp_flags.is_some();
    if l4 {
        let proto_ok = match m.proto {
            Some(Neg {
                invert: false,
                value,
            }) => value == p.proto,
            _ => false,
        };
        if p.fragment || !proto_ok {
            return false;
        }
        if !neg_ok(&m.sport, |v| v.contains(p.sport))
            || !neg_ok(&m.dport, |v| v.contains(p.dport))
            || !neg_ok(&m.icmp, |v| {
                v.ty == p.icmp_type && v.code.is_none_or(|c| c == p.icmp_code)
            })
            || !neg_ok(&m.tcp_flags, |v| p.tcp_flags & v.mask == v.comp)
        {
            return false;
        }
    }
    true
}

impl Table<'_> {
    /// Runs `pkt` through the built-in chain of `hook`, counting into
    /// `sink`. A hook this table has no chain for accepts.
    ///
    /// Never allocates, never loops: the jump stack is [`MAX_DEPTH`] deep
    /// (validation proved the ruleset fits) and a step budget guards the
    /// walk besides; if it ran out, the packet would be dropped.
    pub fn evaluate<S: RuleSink + ?Sized>(
        &self,
        hook: Hook,
        pkt: &PacketMeta,
        sink: &mut S,
    ) -> Outcome {
        let mut mark = pkt.mark;
        let mut mangle = Mangle::default();
        let mut offload = false;
        let done = |verdict, mark, mangle, offload, entry: usize| Outcome {
            verdict,
            mark,
            mangle,
            entry: entry as u32,
            offload,
        };
        let (Some(start), Some(underflow)) = (self.hook_entry(hook), self.policy_entry(hook))
        else {
            return done(Verdict::Accept, mark, mangle, offload, 0);
        };
        let mut stack = [0u32; MAX_DEPTH];
        let mut sp = 0usize;
        let mut i = start;
        let budget = self
            .entries
            .len()
            .saturating_mul(MAX_DEPTH + 1)
            .saturating_add(1);
        for _ in 0..budget {
            let Some(e) = self.entries.get(i) else { break };
            let rule: &Rule = match &e.kind {
                EntryKind::End {
                    policy: Some(p), ..
                } => {
                    sink.hit(i, pkt.len);
                    return done((*p).into(), mark, mangle, offload, i);
                }
                EntryKind::End { policy: None, .. } => {
                    // Implicit RETURN at the end of a user chain.
                    i = pop(&stack, &mut sp).unwrap_or(underflow);
                    continue;
                }
                EntryKind::Rule(r) => r,
            };
            if !matches_marked(&rule.matches, e.family, pkt, mark) {
                i += 1;
                continue;
            }
            sink.hit(i, pkt.len);
            let verdict = match rule.target {
                Target::Continue => None,
                Target::Accept => Some(Verdict::Accept),
                Target::Drop => Some(Verdict::Drop),
                Target::Reject(w) => Some(Verdict::Reject(w)),
                Target::Queue(q) => Some(Verdict::Queue(q)),
                Target::Snat(r) => Some(Verdict::Snat(r)),
                Target::Dnat(r) => Some(Verdict::Dnat(r)),
                Target::Masquerade(r) => Some(Verdict::Masquerade(r)),
                Target::Redirect(r) => Some(Verdict::Redirect(r)),
                Target::Return => {
                    i = pop(&stack, &mut sp).unwrap_or(underflow);
                    continue;
                }
                Target::Jump(_) => {
                    let Some(slot) = stack.get_mut(sp) else { break };
                    *slot = (i + 1) as u32;
                    sp += 1;
                    i = e.jump_to as usize;
                    continue;
                }
                Target::Goto(_) => {
                    i = e.jump_to as usize;
                    continue;
                }
                Target::Log(ref spec) => {
                    // The line shows the mark as it is now.
                    let view = PacketMeta { mark, ..*pkt };
                    sink.log(i, spec, &view);
                    None
                }
                Target::Mark(op) => {
                    mark = op.apply(mark);
                    None
                }
                Target::Tos(op) => {
                    mangle.tos = Some(match mangle.tos {
                        Some(prev) => prev.then(op),
                        None => op,
                    });
                    None
                }
                Target::Ttl(op) => {
                    let f = TtlFn::of(op);
                    mangle.ttl = Some(match mangle.ttl {
                        Some(prev) => prev.then(f),
                        None => f,
                    });
                    None
                }
                Target::Offload => {
                    offload = true;
                    None
                }
            };
            if let Some(v) = verdict {
                return done(v, mark, mangle, offload, i);
            }
            i += 1;
        }
        // Unreachable for a validated table; fail closed.
        done(Verdict::Drop, mark, mangle, offload, underflow)
    }
}

fn pop(stack: &[u32; MAX_DEPTH], sp: &mut usize) -> Option<usize> {
    let top = sp.checked_sub(1)?;
    *sp = top;
    stack.get(top).map(|&r| r as usize)
}

/// The protocol numbers of ICMP for a family.
pub const fn icmp_proto(f: Family) -> u8 {
    match f {
        Family::Ipv4 => proto::ICMP,
        Family::Ipv6 => proto::ICMPV6,
    }
}
