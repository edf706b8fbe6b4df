// SPDX-License-Identifier: GPL-2.0

//! The NAT step at a NAT hook (nf_nat_core.c's `nf_nat_inet_fn`: the
//! binding of a new connection, then the rewrite), with the addresses
//! MASQUERADE (nf_nat_masquerade.c) and REDIRECT (nf_nat_redirect.c) take.

use core::cell::Cell;
use core::ffi::c_int;
use core::net::IpAddr;

use conntrack::conn::ConnKey;
use conntrack::parse::{IcmpInfo, L4Info};
use conntrack::wire::tcp;
use conntrack::{CtState, Direction, Family, Hook, Status, Tuple};
use nat::eval::Verdict;
use nat::nat_core::{self, Binding, ManipType, NatError};
use nat::nat_proto;
use nat::rule::{proto, TableKind};
use rfw_abi::rules_stats;

use super::meta::Pkt;
use super::slot::Ct;
use super::{eval, rewrite, terminal};
use crate::ct::hook::PREFIX;
use crate::ct::net::CtNet;
use crate::ct::table::{self, Table};
use crate::pernet::RfwNet;
use crate::rules::Ruleset;
use crate::sys::netfilter;
use crate::sys::rcu::Rcu;

/// Bytes of headers NAT rewrites: the IPv4 header and as much of L4 as a
/// TCP header without options (the last field NAT writes is TCP's
/// checksum, at 16), or every header for IPv6 with extension headers.
fn header_bytes(p: &Pkt<'_>) -> usize {
    match p.family {
        Family::Ipv4 => usize::from(p.ipv4_header_len()) + tcp::HEADER_LEN,
        Family::Ipv6 => PREFIX,
    }
}

/// The tuple table NAT sees: any confirmed entry of the namespace but
/// `me`. Remembers the last tuple it looked up and its chain, for the
/// confirmation (`Table::confirm`'s hint).
struct Taken<'a, 'g> {
    t: &'g Table,
    rcu: &'g Rcu,
    net: &'a CtNet,
    me: usize,
    last: Cell<Option<(Tuple, usize)>>,
}

impl nat_core::TupleTable for Taken<'_, '_> {
    fn reply_in_use(&self, reply: &Tuple) -> bool {
        let (used, b) = self.t.in_use_by_other(self.rcu, self.net, reply, self.me);
        self.last.set(Some((*reply, b)));
        used
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
/// `Err(verdict)` ends the hook; a QUEUE from the nat table goes to
/// `queued` (see `terminal`) and the connection gets a null binding.
/// `hint` gets the last tuple the set-up looked up, with its chain (for
/// the confirmation that may follow in this hook).
pub(super) fn nat_step<'g>(
    rn: &RfwNet,
    rcu: &'g Rcu,
    set: &Ruleset,
    p: &mut Pkt<'_>,
    ct: &mut Option<Ct<'g>>,
    queued: &mut Option<netfilter::Verdict>,
    hint: &mut Option<(Tuple, usize)>,
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
        let snap = c.e.key_and_status(t);
        let Some((key, status)) = snap else {
            return Ok(false);
        };
        if !status.has(Status::CONFIRMED) && !status.has(manip.done_bit()) {
            match nat_setup(rn, rcu, set, p, c, t, manip, key, status, queued, hint) {
                Ok(c2) => changed = c2,
                Err(v) => return Err(v),
            }
        }
    }
    nat_rewrite(rn, p, c, t, manip, changed)
}

/// Decides the NAT binding of a new connection at its first NAT hook of
/// kind `manip` and writes it into the unconfirmed entry (its reply
/// tuple, in place); true when the reply tuple changed.
#[allow(clippy::too_many_arguments)]
fn nat_setup<'g>(
    rn: &RfwNet,
    rcu: &'g Rcu,
    set: &Ruleset,
    p: &mut Pkt<'_>,
    c: &Ct<'g>,
    t: &'g Table,
    manip: ManipType,
    key: ConnKey,
    status: Status,
    queued: &mut Option<netfilter::Verdict>,
    hint: &mut Option<(Tuple, usize)>,
) -> core::result::Result<bool, netfilter::Verdict> {
    let out = eval(set, TableKind::Nat, &rn.rules, p);
    if let Some(v) = out.as_ref().and_then(|o| terminal(o, p, &rn.rules, queued)) {
        return Err(v);
    }
    let mut b = Binding::from_parts(
        key.tuple(Direction::Original),
        key.tuple(Direction::Reply),
        status,
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
        me: c.e.addr(),
        last: Cell::new(None),
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
    // port (`nf_nat_edemux.sh`), and the confirmation refuses the
    // connection if its reply tuple is still taken then.
    let r = match (r, manip) {
        (Err(NatError::NoFreeTuple), ManipType::Dst) => {
            match nat_core::nat_request(&verdict, hook, family, out_addr, in_addr) {
                Ok(Some((m, range))) => b.setup(&range, m, &Free, &mut Rng, t.hash_key()),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        }
        (r, _) => r,
    };
    *hint = taken.last.get();
    match r {
        Ok(()) => {}
        Err(NatError::NoAddress) => {
            rn.rules.count(rules_stats::Counter::NatNoAddress);
            return Err(netfilter::DROP);
        }
        Err(_) => {
            rn.rules.count(rules_stats::Counter::NatNoTuple);
            return Err(netfilter::DROP);
        }
    }
    let mut set_bits = b.status.0 | manip.done_bit();
    if matches!(verdict, Verdict::Masquerade(_)) {
        set_bits |= Status::MASQUERADE;
    }
    let moved = *b.reply() != key.tuple(Direction::Reply);
    match c.e.set_binding(t, b.reply(), set_bits, manip.done_bit()) {
        Ok(true) if moved => {
            rn.rules.count(rules_stats::Counter::NatBindings);
            rn.rules.set_nat_used();
            if manip == ManipType::Dst {
                // Until the connection is confirmed no chain holds the
                // tuple its packets now carry (see `ct::alias`).
                let k = ConnKey::from_tuples(orig, b.reply());
                if let Some(a) = k.after_dnat(false) {
                    t.add_alias(rcu, c.e, c.bucket, &a);
                }
            }
            Ok(true)
        }
        // Unchanged, or another packet of the connection set up this
        // manip first: its binding stands (the rewrite reads it).
        Ok(_) => Ok(false),
        // Confirmed or removed meanwhile: no binding to make.
        Err(()) => Ok(false),
    }
}

/// Rewrites the packet as its connection's binding says. The binding is
/// read from the entry's key, which never changes once the connection is
/// confirmed, so an established connection's packet takes no lock here
/// (a new one's reads the key under the lock): for protocols with
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
    let key = c.e.key_now(t);
    let nat = match Binding::implied_status(&key) {
        Some(n) => n,
        None => c.e.status(),
    };
    if !manip.applies(nat, c.dir) {
        return Ok(changed);
    }
    let b = Binding::from_parts(
        key.tuple(Direction::Original),
        key.tuple(Direction::Reply),
        nat,
    );
    let is_error = c.state == CtState::Related
        && matches!(
            p.info.as_ref().map(|i| &i.l4),
            Some(L4Info::Icmp(IcmpInfo::Error { .. }))
        );
    let dir = c.dir;
    let len = if is_error {
        usize::MAX
    } else {
        header_bytes(p)
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
            rn.rules.count(rules_stats::Counter::RewriteFailed);
            Err(netfilter::DROP)
        }
    }
}

/// The tuple `p` carries after [`nat_step`] rewrote it at this hook
/// (`p.info` is the packet as parsed before), for its slot record; `None`
/// for an ICMP error (its outer header follows the quoted connection) or
/// an unparsed packet.
pub(super) fn rewritten_tuple(p: &Pkt<'_>, c: &Ct<'_>) -> Option<Tuple> {
    let info = p.info.as_ref()?;
    if matches!(info.l4, L4Info::Icmp(IcmpInfo::Error { .. })) {
        return None;
    }
    let t = table::get();
    let key = c.e.key_now(t);
    let nat = match Binding::implied_status(&key) {
        Some(n) => n,
        None => c.e.status(),
    };
    let b = Binding::from_parts(
        key.tuple(Direction::Original),
        key.tuple(Direction::Reply),
        nat,
    );
    let manip = ManipType::for_hook(p.hook);
    let mut t = info.tuple;
    if !b.applies(c.dir, manip) {
        return Some(t);
    }
    // What `nat_packet` writes (`Binding::manip`): ICMP ids sit in
    // `src_port` in both directions.
    let target = b.target(c.dir)?;
    match manip {
        ManipType::Src => {
            t.src = target.src;
            t.src_port = target.src_port;
        }
        ManipType::Dst => {
            t.dst = target.dst;
            if t.is_icmp() {
                t.src_port = target.src_port;
            } else {
                t.dst_port = target.dst_port;
            }
        }
    }
    Some(t)
}
