// SPDX-License-Identifier: GPL-2.0

//! The packet path: what rfw does to a packet at each hook, in Linux's
//! order (conntrack, mangle, nat, filter, confirmation).
//!
//! | hook point   | priority -200 (`first`)                       | `INT_MAX` (`last`)                       |
//! |--------------|-----------------------------------------------|------------------------------------------|
//! | PRE_ROUTING  | track, mangle, DNAT / un-SNAT                 |                                          |
//! | LOCAL_OUT    | track, mangle, DNAT (re-route), filter OUTPUT |                                          |
//! | FORWARD      | mangle, filter FORWARD                        |                                          |
//! | LOCAL_IN     | (counting only)                               | mangle, filter INPUT, SNAT, confirm      |
//! | POST_ROUTING | (counting only)                               | mangle, SNAT / un-DNAT, confirm          |
//!
//! Linux spreads these over separate hooks (mangle -150, DNAT -100, filter
//! 0, SNAT 100, confirm `INT_MAX`); rfw runs each column's steps in that
//! order inside one hook, which is the same thing for rfw's own tables
//! (other modules' hooks may sit between Linux's; they see rfw's work done
//! all at once, before or after them). Filtering INPUT at `INT_MAX` puts it
//! after any other module's INPUT hooks.
//!
//! A namespace with no table loaded, no NAT binding ever made and
//! `fwctl ct tracking` left at `auto` does none of this: the hooks return
//! at once (`RfwNet::tracks`; the -200 hook has counted the packet for
//! `fwctl stats`), as nf_conntrack's hooks are absent from namespaces
//! whose rules do not need them.
//!
//! # Per-packet state between hooks
//! rfw keeps nothing in the skb (`skb->_nfct` is nf_conntrack's). A later
//! hook needs the packet's connection, and after NAT the packet's tuple may
//! no longer be one the table indexes (DNAT and SNAT both: the packet
//! between them carries the original source and the new destination). So
//! each namespace has a per-CPU [`Slot`]: the hook that tracks a packet
//! writes the skb's address, the entry's address and the chain the entry
//! was found in; a later hook of the same packet on the same CPU (the
//! forwarding and output paths run hook after hook in one call chain)
//! finds the slot naming its skb and re-finds the entry by walking that
//! chain comparing addresses only ([`Table::relocate`]), so a stale slot
//! (the skb freed and its address reused, the entry removed) can never
//! lead to a freed entry; it then checks the packet's tuple is one this
//! connection can have at this hook. When the slot does not match (the
//! packet was queued, or another packet's hooks ran in between on this
//! CPU), the connection is looked up by the packet's tuple and its inverse,
//! which finds every connection except one with both DNAT and SNAT seen
//! between the two NAT hooks; such a packet is then handled as untracked
//! (counted as `unparsed` in the rule statistics).
//!
//! The slot also carries the headers the tracking hook parsed, unless an
//! rfw step rewrote them there (NAT), so the later hooks do not copy and
//! parse them again.
//!
//! Per forwarded packet of an established connection: one copy and parse
//! of the headers and one hash lookup (PRE_ROUTING) and, per later hook
//! that has work to do (FORWARD with a filter or mangle chain, POST_ROUTING
//! with a NAT binding or a mangle chain), one walk of one chain comparing
//! addresses. The state lock is taken once, by the tracker; the NAT hooks
//! read the binding from the entry's immutable key.

use core::cell::Cell;
use core::ffi::c_int;
use core::net::IpAddr;

use conntrack::conn::ConnKey;
use conntrack::parse::{FragmentStatus, IcmpInfo, L4Info, PacketInfo};
use conntrack::{Class, Direction, Status, Tuple};
use nat::eval::{Outcome, PacketMeta, RuleSink, Verdict};
use nat::nat_core::{self, Binding, ManipType, NatError, NatStatus};
use nat::nat_proto::{self, CsumMode};
use nat::rule::{proto, CtState, Family, Hook, IfName, LogSpec, RejectWith, TableKind};
use rfw_abi::hook;

use crate::ct::hook::{copy_prefix, family_of, track_info, PREFIX};
use crate::ct::net::CtNet;
use crate::ct::table::{self, Entry, Rekey, Table};
use crate::pernet::RfwNet;
use crate::rules::{Loaded, RStat, RulesNet, Ruleset};
use crate::sys::netdevice::NetDevice;
use crate::sys::netfilter::{self, HookState};
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::{IpSummed, SkBuff};

/// Bytes copied for parsing first (see `Pkt::new`).
const SHORT_PREFIX: usize = 128;

/// A packet's connection as a hook sees it.
#[derive(Clone, Copy)]
struct Ct<'g> {
    e: &'g Entry,
    /// The packet's direction (for RELATED: the direction the error
    /// travels in the connection it is about).
    dir: Direction,
    /// The chain `e` was found in (under direction `dir`).
    bucket: usize,
    state: CtState,
}

/// What the tracking hook leaves for the later hooks of the same packet
/// (one per CPU: `RfwNet::slot`, used through `PerCpu::with`).
#[derive(Default)]
pub(crate) struct Slot {
    head: Cell<SlotHead>,
    /// The packet's headers as the tracking hook parsed them, when no rfw
    /// step has rewritten them since (`None` after NAT at that hook): the
    /// later hooks take them instead of copying and parsing again.
    info: Cell<Option<PacketInfo>>,
}

/// The packet and its connection (see [`Slot`]).
#[derive(Clone, Copy, Default)]
struct SlotHead {
    skb: usize,
    entry: usize,
    bucket: usize,
    dir: u8,
    state: u8,
    /// `skb->len` when `Slot::info` was parsed.
    len: u32,
}

impl Slot {
    /// This CPU's slot as a later hook of `skb` needs it: the head, and the
    /// parsed headers if they are `skb`'s (copied only then).
    fn read(rn: &RfwNet, skb: &SkBuff) -> (SlotHead, Option<PacketInfo>) {
        rn.slot.with(|s| {
            let head = s.head.get();
            let info = if head.skb == skb.addr() && head.len == skb.len() {
                s.info.get()
            } else {
                None
            };
            (head, info)
        })
    }

    /// Empties this CPU's slot (nothing for the later hooks).
    fn clear(rn: &RfwNet) {
        rn.slot.with(|s| {
            s.head.set(SlotHead::default());
            s.info.set(None);
        });
    }
}

fn state_code(s: CtState) -> u8 {
    s as u8
}

fn state_of(code: u8) -> Option<CtState> {
    [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ]
    .into_iter()
    .find(|s| *s as u8 == code)
}

fn class_state(c: &Class) -> CtState {
    match c {
        Class::New => CtState::New,
        Class::Established => CtState::Established,
        Class::Related => CtState::Related,
        Class::Invalid(_) => CtState::Invalid,
        Class::Untracked => CtState::Untracked,
    }
}

fn hook_of(h: u8) -> Hook {
    match h {
        hook::PRE_ROUTING => Hook::Prerouting,
        hook::LOCAL_IN => Hook::Input,
        hook::FORWARD => Hook::Forward,
        hook::LOCAL_OUT => Hook::Output,
        _ => Hook::Postrouting,
    }
}

/// What [`Pkt::parse`] found: the family, the headers or the bare IP
/// header's metadata, the IP protocol.
struct Fields {
    family: Family,
    info: Option<PacketInfo>,
    bare: Option<PacketMeta>,
    proto: u8,
}

/// A packet at one hook.
struct Pkt<'s> {
    skb: &'s mut SkBuff,
    state: &'s HookState,
    hook: Hook,
    family: Family,
    /// Parsed headers, `None` if they could not be parsed.
    info: Option<PacketInfo>,
    /// IP protocol.
    proto: u8,
    /// The packet's state for rules.
    ct_state: CtState,
    /// Evaluation metadata, built when a rule table first needs it (most
    /// packets of an established connection meet no table at PRE_ROUTING
    /// and POST_ROUTING); from the bare IP header, at once, for a packet
    /// whose headers could not be parsed. Always `Some` when `info` is
    /// `None`.
    meta: Option<PacketMeta>,
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
            if matches!(t.proto, proto::SCTP | proto::DCCP | proto::UDPLITE) {
                (sport, dport) = (t.src_port, t.dst_port);
            }
        }
    }
    let _ = FragmentStatus::Whole;
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
        Family::V4 => IpAddr::from([0u8; 4]),
        Family::V6 => IpAddr::from([0u8; 16]),
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
    let (proto, src, dst) = match family {
        Family::V4 => {
            let h = bytes.get(..20)?;
            let a = |o: usize| IpAddr::from([h[o], h[o + 1], h[o + 2], h[o + 3]]);
            (h[9], a(12), a(16))
        }
        Family::V6 => {
            let h = bytes.get(..40)?;
            let a = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&h[o..o + 16]);
                IpAddr::from(b)
            };
            (h[6], a(8), a(24))
        }
    };
    Some(PacketMeta {
        src,
        dst,
        ..meta_unknown(family, proto, len)
    })
}

/// What [`parse_skb`] found.
struct Parsed {
    /// The headers, or the parse error and the bare IP header's metadata.
    parsed: core::result::Result<PacketInfo, (conntrack::parse::ParseError, Option<PacketMeta>)>,
    /// The parse ran out of bytes and the copy was cut at `N`: more bytes
    /// may help.
    truncated_at_end: bool,
}

/// Copies the packet's first `N` bytes from its network header and parses
/// them. `None` when not even one byte could be copied.
fn parse_skb<const N: usize>(
    skb: &SkBuff,
    fam: conntrack::Family,
    family: Family,
    opts: &conntrack::parse::ParseOptions,
    len: u32,
) -> Option<Parsed> {
    let mut buf = [0u8; N];
    let bytes = copy_prefix(skb, &mut buf, N)?;
    let parsed = conntrack::parse::parse_prefix(bytes, fam, opts);
    let truncated_at_end = matches!(&parsed, Err(e) if e.is_truncated()) && bytes.len() == N;
    Some(Parsed {
        parsed: parsed.map_err(|e| (e, meta_bare(bytes, family, len))),
        truncated_at_end,
    })
}

impl<'s> Pkt<'s> {
    /// Parses the packet, or takes `cached` (its headers as an earlier
    /// hook of the same packet parsed them, see [`Slot`]); `None` for what
    /// rfw leaves alone (not IP, or too short for an IP header).
    fn new(
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
    fn reparse(self, ct: &CtNet, rcu: &Rcu) -> Self {
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
        let fam = family_of(state.pf())?;
        let family = match fam {
            conntrack::Family::Ipv4 => Family::V4,
            conntrack::Family::Ipv6 => Family::V6,
        };
        let len = skb.len();
        let (info, bare) = match cached {
            Some(i) => (Some(i), None),
            None => {
                let opts = &ct.config(rcu).parse;
                // Most packets' headers fit in the first 128 bytes; copy
                // more only when they do not (IPv6 extension headers,
                // ICMPv6 errors, TCP options): a full-size segment then
                // costs 128 bytes per parse, and only 128 are zeroed.
                let mut r = parse_skb::<SHORT_PREFIX>(skb, fam, family, opts, len)?;
                if r.truncated_at_end {
                    r = parse_skb::<PREFIX>(skb, fam, family, opts, len)?;
                }
                match r.parsed {
                    Ok(i) => (Some(i), None),
                    Err((e, bare)) => {
                        // Counted once, at the hook that tracks the packet.
                        if state.hook() == hook::PRE_ROUTING || state.hook() == hook::LOCAL_OUT {
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
            family,
            info,
            bare,
            proto,
        })
    }

    /// The packet from its parsed `fields`.
    fn assemble(skb: &'s mut SkBuff, state: &'s HookState, fields: Fields) -> Self {
        let Fields {
            family,
            info,
            bare,
            proto,
        } = fields;
        let mut p = Pkt {
            skb,
            state,
            hook: hook_of(state.hook()),
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
    fn meta(&mut self) -> &mut PacketMeta {
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
    fn set_ct_state(&mut self, st: CtState) {
        self.ct_state = st;
        if let Some(m) = self.meta.as_mut() {
            m.ct_state = st;
        }
    }
}

/// Counts rule hits into a loaded table's counters, and logs.
struct Sink<'a> {
    t: &'a Loaded,
    rules: &'a RulesNet,
    hook: Hook,
}

impl RuleSink for Sink<'_> {
    #[inline]
    fn hit(&mut self, index: usize, bytes: u32) {
        self.t.hit(index, bytes);
    }

    fn log(&mut self, index: usize, spec: &LogSpec, pkt: &PacketMeta) {
        let now = crate::sys::time::ktime_ns();
        if !self.t.log_allow(index, now, spec.rate, spec.burst) {
            self.rules.count(RStat::LogSuppressed);
            return;
        }
        self.rules.count(RStat::Logged);
        log_line(spec, pkt, self.hook);
    }
}

/// One LOG line, in the manner of `nf_log_syslog`.
fn log_line(spec: &LogSpec, p: &PacketMeta, hook: Hook) {
    fn name(n: &IfName) -> &str {
        core::str::from_utf8(n.as_bytes()).unwrap_or("?")
    }
    let proto = match p.proto {
        proto::TCP => "TCP",
        proto::UDP => "UDP",
        proto::ICMP => "ICMP",
        proto::ICMPV6 => "ICMPv6",
        _ => "",
    };
    let prefix = core::str::from_utf8(spec.prefix.as_bytes()).unwrap_or("");
    macro_rules! line {
        ($m:ident) => {
            kernel::$m!(
                "{}IN={} OUT={} SRC={} DST={} LEN={} PROTO={}{} SPT={} DPT={} MARK=0x{:x} HOOK={:?}\n",
                prefix,
                name(&p.in_if),
                name(&p.out_if),
                p.src,
                p.dst,
                p.len,
                proto,
                if proto.is_empty() { p.proto } else { 0 },
                p.sport,
                p.dport,
                p.mark,
                hook
            )
        };
    }
    match spec.level {
        0 => line!(pr_emerg),
        1 => line!(pr_alert),
        2 => line!(pr_crit),
        3 => line!(pr_err),
        4 => line!(pr_warn),
        5 => line!(pr_notice),
        6 => line!(pr_info),
        _ => line!(pr_debug),
    }
}

/// Runs table `kind` at the packet's hook, if loaded; applies MARK.
fn eval(set: &Ruleset, kind: TableKind, rules: &RulesNet, p: &mut Pkt<'_>) -> Option<Outcome> {
    let t = set.get(kind)?;
    let table = t.table()?;
    let mut sink = Sink {
        t,
        rules,
        hook: p.hook,
    };
    let hook = p.hook;
    let out = table.evaluate(hook, p.meta(), &mut sink);
    if out.mark != p.meta().mark {
        p.skb.set_mark(out.mark);
        p.meta().mark = out.mark;
    }
    Some(out)
}

/// Sends the REJECT answer; the packet itself is dropped by the caller.
fn reject(p: &Pkt<'_>, with: RejectWith, rules: &RulesNet) {
    rules.count(RStat::Rejected);
    let tcp = p.proto == proto::TCP;
    // These build and send a new packet and leave the hook's alone.
    match (p.family, with) {
        (Family::V4, RejectWith::TcpReset) if tcp => p.state.send_reset4(p.skb),
        (Family::V6, RejectWith::TcpReset) if tcp => p.state.send_reset6(p.skb),
        (Family::V4, w) => {
            let code = match w {
                RejectWith::NetUnreachable => 0,
                RejectWith::HostUnreachable => 1,
                RejectWith::ProtoUnreachable => 2,
                RejectWith::AdminProhibited => 13,
                _ => 3,
            };
            p.state.send_unreach4(p.skb, code)
        }
        (Family::V6, w) => {
            let code = match w {
                RejectWith::NetUnreachable => 0,
                RejectWith::AdminProhibited => 1,
                RejectWith::HostUnreachable => 3,
                _ => 4,
            };
            p.state.send_unreach6(p.skb, code)
        }
    }
}

/// What a filter or mangle outcome means for the packet: `None` to go on.
fn terminal(out: &Outcome, p: &Pkt<'_>, rules: &RulesNet) -> Option<netfilter::Verdict> {
    match out.verdict {
        Verdict::Accept => None,
        Verdict::Drop => Some(netfilter::DROP),
        Verdict::Reject(w) => {
            reject(p, w, rules);
            Some(netfilter::DROP)
        }
        Verdict::Queue(n) => {
            rules.count(RStat::Queued);
            Some(netfilter::queue(n))
        }
        // NAT verdicts only come from the nat table (validated).
        _ => None,
    }
}

/// Makes the first `len` bytes from the network header writable and runs
/// `f` on them. `None` if the skb could not be made writable.
fn rewrite<R>(skb: &mut SkBuff, len: usize, f: impl FnOnce(&mut [u8], CsumMode) -> R) -> Option<R> {
    let mut w = skb.writable(len)?;
    let summed = w.ip_summed();
    let mode = if summed == IpSummed::Partial {
        CsumMode::Partial
    } else {
        CsumMode::Full
    };
    let r = f(w.bytes(), mode);
    if summed == IpSummed::Complete {
        // `skb->csum` covered the old bytes. The checksum fields are kept
        // right, so let the stack verify in software if it needs to.
        w.set_ip_summed(IpSummed::None);
    }
    Some(r)
}

/// Bytes of headers NAT rewrites: IP header and the first 20 bytes of L4
/// (TCP's checksum is at 16), or every header for IPv6 with extension
/// headers.
fn header_bytes(p: &Pkt<'_>, bytes_hint: u8) -> usize {
    match p.family {
        Family::V4 => usize::from(bytes_hint & 0x0f) * 4 + 20,
        Family::V6 => PREFIX,
    }
}

/// Applies TOS/TTL changes of a mangle outcome.
fn apply_mangle(p: &mut Pkt<'_>, out: &Outcome, rules: &RulesNet) -> bool {
    if out.mangle.is_empty() {
        return true;
    }
    let ok = rewrite(&mut *p.skb, 40, |b, _| {
        nat::mangle::apply(b, &out.mangle).is_ok()
    })
    .unwrap_or(false);
    if !ok {
        rules.count(RStat::RewriteFailed);
    }
    ok
}

/// The tuple table NAT sees: any entry of the namespace but `me`.
struct Taken<'a, 'g> {
    t: &'g Table,
    rcu: &'g Rcu,
    net: &'a CtNet,
    me: usize,
}

impl nat_core::TupleTable for Taken<'_, '_> {
    fn reply_in_use(&self, reply: &Tuple) -> bool {
        self.t.in_use_by_other(self.rcu, self.net, reply, self.me)
    }
}

/// A table in which no tuple is in use (for a destination NAT that found
/// none free: see `nat_step`).
struct Free;

impl nat_core::TupleTable for Free {
    fn reply_in_use(&self, _reply: &Tuple) -> bool {
        false
    }
}

/// rfw's default mitigation of port shadowing (`nft_nat.sh`
/// `test_port_shadow`): source NAT without `--to-ports` keeps a source
/// port only if it lies in the namespace's local port range
/// (`net.ipv4.ip_local_port_range`, where the router's own clients take
/// their ports too); a lower one, where services listen, is moved into
/// [low, 65535]. Otherwise a host behind the NAT could take the router's
/// service port (its packets from port 1405 leave as router:1405) and
/// receive what outside peers send to the router's own service on it.
/// Linux keeps the port and leaves the mitigation to the ruleset; rfw's
/// default answers as the mitigated kernel does. `--to-ports 1-65535`
/// restores Linux's behaviour for a rule.
fn shadow_guard(
    p: &Pkt<'_>,
    m: ManipType,
    orig: &Tuple,
    mut range: nat::rule::NatRange,
) -> nat::rule::NatRange {
    if m != ManipType::Src || range.ports.is_some() || !proto::nat_rewrites_ports(orig.proto) {
        return range;
    }
    let (lo, _): (c_int, c_int) = p.state.local_port_range();
    let lo = u16::try_from(lo).unwrap_or(32768).max(1);
    if orig.src_port < lo {
        range.ports = Some(nat::rule::PortRange { lo, hi: u16::MAX });
    }
    range
}

struct Rng;

impl nat_core::Entropy for Rng {
    fn next_u32(&mut self) -> u32 {
        crate::sys::random::u32()
    }
}

fn nat_bits(s: Status) -> NatStatus {
    let mut n = 0;
    if s.has(Status::SRC_NAT) {
        n |= NatStatus::SRC_NAT;
    }
    if s.has(Status::DST_NAT) {
        n |= NatStatus::DST_NAT;
    }
    NatStatus(n)
}

fn status_bits(n: NatStatus) -> u16 {
    let mut s = 0;
    if n.0 & NatStatus::SRC_NAT != 0 {
        s |= Status::SRC_NAT;
    }
    if n.0 & NatStatus::DST_NAT != 0 {
        s |= Status::DST_NAT;
    }
    s
}

fn done_bit(m: ManipType) -> u16 {
    match m {
        ManipType::Src => Status::SRC_NAT_DONE,
        ManipType::Dst => Status::DST_NAT_DONE,
    }
}

/// The address MASQUERADE uses: the outgoing interface's source address
/// for this destination (`nf_nat_masquerade_ipv4/6`).
fn masq_addr(p: &mut Pkt<'_>) -> Option<IpAddr> {
    let state = p.state;
    let out = state.out_dev()?;
    match p.meta().dst {
        IpAddr::V4(d) => {
            // The skb is routed at POSTROUTING.
            let nh = p.skb.rt_nexthop4(d.octets());
            out.inet_select_addr(nh).map(IpAddr::from)
        }
        IpAddr::V6(d) => out.ipv6_saddr(state, d.octets()).map(IpAddr::from),
    }
}

/// The address REDIRECT uses at PREROUTING: the incoming interface's
/// primary address (IPv4, `nf_nat_redirect_ipv4`); for IPv6 the address
/// the interface would use towards the client (Linux takes the first
/// non-tentative one: the same on a one-address interface).
fn redirect_addr(p: &mut Pkt<'_>, rcu: &Rcu) -> Option<IpAddr> {
    let state = p.state;
    let dev = state.in_dev()?;
    match p.meta().src {
        IpAddr::V4(_) => dev.first_addr4(rcu).map(IpAddr::from),
        IpAddr::V6(s) => dev.ipv6_saddr(state, s.octets()).map(IpAddr::from),
    }
}

/// NAT at a NAT hook: set up the binding of a new connection (nat table,
/// or a null binding), then rewrite the packet (`nf_nat_inet_fn`).
/// `Err(verdict)` ends the hook.
fn nat_step<'g>(
    rn: &RfwNet,
    rcu: &'g Rcu,
    set: &Ruleset,
    p: &mut Pkt<'_>,
    ct: &mut Option<Ct<'g>>,
) -> core::result::Result<bool, netfilter::Verdict> {
    let Some(c) = ct.as_mut() else {
        return Ok(false);
    };
    let t = table::get();
    let manip = ManipType::for_hook(p.hook);
    let nat_loaded = set.get(TableKind::Nat).is_some();
    let mut changed = false;
    // A new connection meets this NAT hook for the first time: decide.
    // Only a packet tracked as NEW in the original direction can be one;
    // the others need not look at the status under the lock.
    if nat_loaded && c.state == CtState::New && c.dir == Direction::Original {
        let snap = c.e.with_state(t, |k, s| (*k, s.status()));
        let Some((key, status)) = snap else {
            return Ok(false);
        };
        if !status.has(Status::CONFIRMED) && !status.has(done_bit(manip)) {
            match nat_setup(rn, rcu, set, p, c, t, manip, key, status) {
                Ok(c2) => changed = c2,
                Err(v) => return Err(v),
            }
        }
    }
    nat_rewrite(rn, p, c, t, manip, changed)
}

/// Decides the NAT binding of a new connection at its first NAT hook of
/// kind `manip`; true when its entry was replaced (`c.e` is the new one).
#[allow(clippy::too_many_arguments)]
fn nat_setup<'g>(
    rn: &RfwNet,
    rcu: &'g Rcu,
    set: &Ruleset,
    p: &mut Pkt<'_>,
    c: &mut Ct<'g>,
    t: &'g Table,
    manip: ManipType,
    key: ConnKey,
    status: Status,
) -> core::result::Result<bool, netfilter::Verdict> {
    let mut changed = false;
    let out = eval(set, TableKind::Nat, &rn.rules, p);
    if let Some(v) = out.as_ref().and_then(|o| terminal(o, p, &rn.rules)) {
        return Err(v);
    }
    let mut b = Binding::from_parts(
        key.tuple(Direction::Original),
        key.tuple(Direction::Reply),
        nat_bits(status),
    );
    let verdict = out.map_or(Verdict::Accept, |o| o.verdict);
    let hook = p.hook;
    let family = p.family;
    let out_addr = if matches!(verdict, Verdict::Masquerade(_)) {
        masq_addr(p)
    } else {
        None
    };
    let in_addr = if matches!(verdict, Verdict::Redirect(_)) && hook != Hook::Output {
        redirect_addr(p, rcu)
    } else {
        None
    };
    let taken = Taken {
        t,
        rcu,
        net: &rn.ct,
        me: c.e as *const Entry as usize,
    };
    let orig = key.tuple(Direction::Original);
    let r = match nat_core::nat_request(&verdict, hook, family, out_addr, in_addr) {
        Ok(Some((m, range))) => {
            let range = shadow_guard(p, m, &orig, range);
            b.setup(&range, m, &taken, &mut Rng, t.hash_key())
        }
        Ok(None) => b.setup_null(manip, &taken, &mut Rng, t.hash_key()),
        Err(e) => Err(e),
    };
    // Destination NAT with every candidate in use: go on with a tuple
    // in use, as Linux does; the source NAT hook moves the source
    // port (`nf_nat_edemux.sh`).
    let mut allow_clash = false;
    let r = match (r, manip) {
        (Err(NatError::NoFreeTuple), ManipType::Dst) => {
            allow_clash = true;
            match nat_core::nat_request(&verdict, hook, family, out_addr, in_addr) {
                Ok(Some((m, range))) => b.setup(&range, m, &Free, &mut Rng, t.hash_key()),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        }
        (r, _) => r,
    };
    match r {
        Ok(()) => {}
        Err(NatError::NoAddress) => {
            rn.rules.count(RStat::NatNoAddress);
            return Err(netfilter::DROP);
        }
        Err(_) => {
            rn.rules.count(RStat::NatNoTuple);
            return Err(netfilter::DROP);
        }
    }
    let mut set_bits = status_bits(b.status) | done_bit(manip);
    if matches!(verdict, Verdict::Masquerade(_)) {
        set_bits |= Status::MASQUERADE;
    }
    if *b.reply() != key.tuple(Direction::Reply) {
        // `c.dir` is Original (see `nat_step`): `c.bucket` is the chain of
        // the original tuple, which the new entry keeps.
        match t.rekey(rcu, c.e, c.bucket, b.reply(), set_bits, allow_clash) {
            Ok((e, b0)) => {
                rn.rules.count(RStat::NatBindings);
                rn.rules.set_nat_used();
                c.e = e;
                c.bucket = b0;
                changed = true;
            }
            Err(Rekey::Clash) | Err(Rekey::NoMemory) => {
                rn.rules.count(RStat::NatNoTuple);
                return Err(netfilter::DROP);
            }
            Err(Rekey::Gone) => return Ok(false),
        }
    } else {
        c.e.with_state(t, |_, s| s.status_mut().insert(set_bits));
    }
    Ok(changed)
}

/// Rewrites the packet as its connection's binding says. The binding is
/// read from the entry's key, which never changes once published, so an
/// established connection's packet takes no lock here: for protocols with
/// ports the tuples imply the NAT bits exactly (`Binding::implied_status`); ICMP
/// reads the bits under the lock. Like Linux, a dying entry's packets are
/// still translated (a killed conntrack stays attached to its skbs).
fn nat_rewrite(
    rn: &RfwNet,
    p: &mut Pkt<'_>,
    c: &Ct<'_>,
    t: &Table,
    manip: ManipType,
    changed: bool,
) -> core::result::Result<bool, netfilter::Verdict> {
    let key = c.e.key();
    let nat = match Binding::implied_status(key) {
        Some(n) => n,
        None => nat_bits(c.e.with_state_raw(t, |_, s| s.status())),
    };
    if !nat.applies(c.dir, manip) {
        return Ok(changed);
    }
    let b = Binding::from_parts(
        key.tuple(Direction::Original),
        key.tuple(Direction::Reply),
        nat,
    );
    let is_error = c.state == CtState::Related
        && matches!(
            p.info.map(|i| i.l4),
            Some(L4Info::Icmp(IcmpInfo::Error { .. }))
        );
    let dir = c.dir;
    let ihl = p.meta_first_byte();
    let len = if is_error {
        usize::MAX
    } else {
        header_bytes(p, ihl)
    };
    let r = rewrite(&mut *p.skb, len, |bytes, mode| {
        if is_error {
            nat_proto::icmp_error_translate(bytes, &b, dir, manip, mode)
        } else {
            nat_proto::nat_packet(bytes, &b, dir, manip, mode)
        }
    });
    match r {
        Some(Ok(_)) => Ok(true),
        _ => {
            rn.rules.count(RStat::RewriteFailed);
            Err(netfilter::DROP)
        }
    }
}

impl Pkt<'_> {
    /// The first byte of the IP header (version and IHL).
    fn meta_first_byte(&self) -> u8 {
        let mut b = [0u8; 1];
        let _ = self.skb.copy_network(&mut b);
        b[0]
    }
}

/// Re-routes a locally generated packet whose destination or mark a hook
/// changed (`nf_nat_ipv4_local_fn`, `ipt_mangle_out`).
fn reroute(p: &Pkt<'_>) -> bool {
    match p.family {
        Family::V4 => p.state.route_me_harder4(p.skb),
        Family::V6 => p.state.route_me_harder6(p.skb),
    }
}

/// The connection of a packet at a hook after the tracking one, and its
/// state for rules: from the slot when it names this skb, else by lookup.
/// `slot` is this CPU's slot as the hook read it.
fn find<'g>(rn: &RfwNet, rcu: &'g Rcu, p: &Pkt<'_>, slot: &SlotHead) -> (Option<Ct<'g>>, CtState) {
    let t = table::get();
    if slot.skb == p.skb.addr() {
        let dir = if slot.dir == 0 {
            Direction::Original
        } else {
            Direction::Reply
        };
        let state = state_of(slot.state);
        if slot.entry == 0 {
            // Tracked as having no connection (INVALID or untracked).
            if let Some(st) = state {
                return (None, st);
            }
        } else if let Some(e) = t.relocate(rcu, slot.bucket, slot.entry, dir) {
            if let Some(state) = state.filter(|s| plausible(e, dir, *s, p)) {
                let c = Ct {
                    e,
                    dir,
                    bucket: slot.bucket,
                    state,
                };
                return (Some(c), state);
            }
        }
    }
    let Some(info) = p.info else {
        return (None, CtState::Invalid);
    };
    match lookup_any(t, rcu, &rn.ct, &info) {
        Some(c) => (Some(c), c.state),
        None => (None, CtState::Invalid),
    }
}

/// The connection of a packet by its tuple, its inverse (after NAT at an
/// earlier hook), or the tuple an ICMP error quotes.
fn lookup_any<'g>(t: &'g Table, rcu: &'g Rcu, ctn: &CtNet, info: &PacketInfo) -> Option<Ct<'g>> {
    if let L4Info::Icmp(IcmpInfo::Error { quoted, .. }) = info.l4 {
        let inner = quoted.invert()?;
        let (e, dir, bucket) = t.lookup_at(rcu, ctn, &inner)?;
        return Some(Ct {
            e,
            dir,
            bucket,
            state: CtState::Related,
        });
    }
    let (e, dir, bucket) = match t.lookup_at(rcu, ctn, &info.tuple) {
        Some(hit) => hit,
        None => {
            // Translated at an earlier hook: the inverse is the tuple the
            // other direction expects (its chain is the other tuple's).
            let inv = info.tuple.invert()?;
            let (e, d, _) = t.lookup_at(rcu, ctn, &inv)?;
            (e, d.opposite(), t.bucket_of_entry(e, d.opposite()))
        }
    };
    let seen_reply = e
        .with_state(t, |_, s| s.status().has(Status::SEEN_REPLY))
        .unwrap_or(false);
    let state = if dir == Direction::Original && !seen_reply {
        CtState::New
    } else {
        CtState::Established
    };
    Some(Ct {
        e,
        dir,
        bucket,
        state,
    })
}

/// True when the packet can be one of `e`'s in direction `dir` at this
/// hook: each address is the one of its tuple before or after NAT. Guards
/// the slot against an skb address reused for another packet.
fn plausible(e: &Entry, dir: Direction, state: CtState, p: &Pkt<'_>) -> bool {
    let Some(info) = p.info else {
        return true;
    };
    if state == CtState::Related {
        return true;
    }
    let k = e.key();
    let (a, b) = (k.tuple(dir), k.tuple(dir.opposite()));
    let t = &info.tuple;
    t.proto == a.proto && (t.src == a.src || t.src == b.dst) && (t.dst == a.dst || t.dst == b.src)
}

/// Leaves the packet's connection for its later hooks; `info` is its
/// headers as they are now (`None` if an rfw step rewrote them since `p`
/// was parsed).
fn remember(rn: &RfwNet, p: &Pkt<'_>, ct: &Option<Ct<'_>>, st: CtState, info: Option<PacketInfo>) {
    let (len, skb) = (p.skb.len(), p.skb.addr());
    let head = match ct {
        Some(c) => SlotHead {
            skb,
            entry: c.e as *const Entry as usize,
            bucket: c.bucket,
            dir: c.dir.index() as u8,
            state: state_code(c.state),
            len,
        },
        None => SlotHead {
            skb,
            state: state_code(st),
            len,
            ..SlotHead::default()
        },
    };
    rn.slot.with(|slot| {
        slot.head.set(head);
        slot.info.set(info);
    });
}

/// Priority -200: tracking and the early tables (see the module docs).
pub(crate) fn first(
    rn: &RfwNet,
    rcu: &Rcu,
    skb: &mut SkBuff,
    state: &HookState,
) -> netfilter::Verdict {
    let h = state.hook();
    if h != hook::PRE_ROUTING && h != hook::LOCAL_OUT && h != hook::FORWARD {
        return netfilter::ACCEPT;
    }
    let set = rn.rules.current(rcu);
    if !rn.tracks(set) {
        // Nothing here needs tracking. The slot is cleared so that `last`
        // cannot take a stale one for this packet if tracking starts
        // between the two hooks.
        if h != hook::FORWARD {
            Slot::clear(rn);
        }
        return netfilter::ACCEPT;
    }
    if h == hook::FORWARD
        && set.get(TableKind::Filter).is_none()
        && set.get(TableKind::Mangle).is_none()
    {
        return netfilter::ACCEPT;
    }
    // Packets arriving on loopback were tracked (and NATed) at LOCAL_OUT
    // in this namespace already (Linux sees their conntrack attached).
    if h == hook::PRE_ROUTING && state.in_dev().is_some_and(|d| d.is_loopback()) {
        Slot::clear(rn);
        return netfilter::ACCEPT;
    }
    // At FORWARD the tracking hook's slot: the packet's connection and
    // its parsed headers.
    let (slot, cached) = if h == hook::FORWARD {
        Slot::read(rn, skb)
    } else {
        (SlotHead::default(), None)
    };
    let Some(mut p) = Pkt::new(&rn.ct, rcu, skb, state, cached) else {
        if h != hook::FORWARD {
            // Nothing for the later hooks of this packet.
            Slot::clear(rn);
        }
        return netfilter::ACCEPT;
    };
    let mut ct = None;
    if h == hook::FORWARD {
        let (c, st) = find(rn, rcu, &p, &slot);
        ct = c;
        p.set_ct_state(st);
    } else if let Some(info) = p.info {
        let tr = track_info(&rn.ct, rcu, &info);
        if tr.verdict != netfilter::ACCEPT {
            return tr.verdict;
        }
        let st = class_state(&tr.class);
        ct = tr.conn.map(|(e, dir)| Ct {
            e,
            dir,
            bucket: tr
                .bucket
                .unwrap_or_else(|| table::get().bucket_of_entry(e, dir)),
            state: st,
        });
        p.set_ct_state(st);
    } else {
        rn.rules.count(RStat::Unparsed);
    }
    if set.is_empty() && !rn.rules.nat_used() {
        if h != hook::FORWARD {
            remember(rn, &p, &ct, p.ct_state, p.info);
        }
        return netfilter::ACCEPT;
    }
    // A mark changed at LOCAL_OUT re-routes the packet.
    let mark_before = if h == hook::LOCAL_OUT {
        p.skb.mark()
    } else {
        0
    };
    if let Some(out) = eval(set, TableKind::Mangle, &rn.rules, &mut p) {
        if let Some(v) = terminal(&out, &p, &rn.rules) {
            return v;
        }
        if !apply_mangle(&mut p, &out, &rn.rules) {
            return netfilter::DROP;
        }
    }
    let mut translated = false;
    if h != hook::FORWARD {
        match nat_step(rn, rcu, set, &mut p, &mut ct) {
            Ok(t) => translated = t,
            Err(v) => return v,
        }
        // Mangle's TOS and TTL are not among the parsed headers; NAT's
        // addresses and ports are.
        let info = if translated { None } else { p.info };
        remember(rn, &p, &ct, p.ct_state, info);
    }
    if h == hook::LOCAL_OUT && (translated || p.skb.mark() != mark_before) && !reroute(&p) {
        return netfilter::DROP;
    }
    if h == hook::LOCAL_OUT || h == hook::FORWARD {
        if translated {
            // Filter sees the packet as it is now.
            p = p.reparse(&rn.ct, rcu);
        }
        if let Some(out) = eval(set, TableKind::Filter, &rn.rules, &mut p) {
            if let Some(v) = terminal(&out, &p, &rn.rules) {
                return v;
            }
        }
    }
    netfilter::ACCEPT
}

/// Priority `INT_MAX` at LOCAL_IN and POST_ROUTING: the late tables and
/// confirmation (see the module docs).
pub(crate) fn last(
    rn: &RfwNet,
    rcu: &Rcu,
    skb: &mut SkBuff,
    state: &HookState,
) -> netfilter::Verdict {
    let set = rn.rules.current(rcu);
    if !rn.tracks(set) {
        // A packet tracked by `first` just before tracking stopped leaves
        // its entry unconfirmed: the collector reaps it.
        return netfilter::ACCEPT;
    }
    let unconfirmed = rn
        .ct
        .unconfirmed
        .load(core::sync::atomic::Ordering::Relaxed)
        != 0;
    // Loopback packets at LOCAL_IN were confirmed at POST_ROUTING of lo.
    let lo_in = state.hook() == hook::LOCAL_IN && state.in_dev().is_some_and(|d| d.is_loopback());
    if set.is_empty() && !rn.rules.nat_used() && (!unconfirmed || lo_in) {
        return netfilter::ACCEPT;
    }
    let (slot, cached) = Slot::read(rn, skb);
    let Some(mut p) = Pkt::new(&rn.ct, rcu, skb, state, cached) else {
        return netfilter::ACCEPT;
    };
    let (mut ct, st) = find(rn, rcu, &p, &slot);
    p.set_ct_state(st);
    if !set.is_empty() {
        if let Some(out) = eval(set, TableKind::Mangle, &rn.rules, &mut p) {
            if let Some(v) = terminal(&out, &p, &rn.rules) {
                return v;
            }
            if !apply_mangle(&mut p, &out, &rn.rules) {
                return netfilter::DROP;
            }
        }
        if state.hook() == hook::LOCAL_IN {
            if let Some(out) = eval(set, TableKind::Filter, &rn.rules, &mut p) {
                if let Some(v) = terminal(&out, &p, &rn.rules) {
                    return v;
                }
            }
        }
    }
    if !set.is_empty() || rn.rules.nat_used() {
        let rewritten = match nat_step(rn, rcu, set, &mut p, &mut ct) {
            Err(v) => return v,
            Ok(r) => r,
        };
        let demuxed = p.skb.has_demux_sk();
        if rewritten && state.hook() == hook::LOCAL_IN && demuxed {
            // Early demux found a socket for the source before this hook
            // changed it: let the transport look again
            // (`nf_nat_ipv4_local_in`, nf_nat_edemux.sh).
            // Drops the demux reference.
            p.skb.orphan();
        }
    }
    if lo_in || !unconfirmed {
        return netfilter::ACCEPT;
    }
    if let Some(c) = ct {
        if c.dir == Direction::Original && c.state != CtState::Related {
            c.e.confirm(table::get());
        }
    }
    netfilter::ACCEPT
}
