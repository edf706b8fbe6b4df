// SPDX-License-Identifier: GPL-2.0

//! The packet path: what rfw does to a packet at each hook, in Linux's
//! order (conntrack, mangle, nat, filter, confirmation); the hook bodies
//! of nf_conntrack_proto.c's `ipv4_conntrack_in`/`_local`/`nf_confirm`
//! and the iptable_*/nft_chain_* table hooks.
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
//! each namespace has a per-CPU [`Slot`] with two records per context level
//! (task, softirq): the hook that tracks a packet writes one naming its skb,
//! its entry and the chain the entry was found in,
//! and the packet's tuple as it leaves that hook; a later hook of the same
//! packet in the same context (the forwarding and output paths run hook
//! after hook in one call chain) takes the record naming its skb if its
//! tuple is the packet's, and re-finds the entry by walking that chain
//! comparing addresses only (`Table::relocate`), so a stale record can
//! never lead to a freed entry. The last hook consumes the record; a
//! verdict other than ACCEPT at the first hook frees it; a transmission
//! nested in the packet's hooks (an ICMP redirect) takes the other record.
//! When no record fits (the packet was queued and reinjected, maybe on
//! another CPU), the connection is looked up by the packet's tuple, its
//! inverse, and (a connection with both DNAT and SNAT, between its two
//! NAT hooks) the side index of such connections (`ct::alias`). Hits,
//! misses and the lookups' outcomes are counted (`fwctl ct stats`).
//! docs/DESIGN.md says why this and not `_nfct`.
//!
//! The slot also carries the headers the tracking hook parsed, unless an
//! rfw step rewrote them there (NAT: then only the tuple NAT wrote), so
//! the later hooks do not parse them again.
//!
//! Per forwarded packet of an established connection: one parse of the
//! headers, read where they lie in the skb's linear area (copied only
//! from paged data, as `skb_header_pointer` does), and one hash lookup
//! (PRE_ROUTING); per later hook that has work to do (FORWARD with a
//! filter or mangle chain, POST_ROUTING with a NAT binding or a mangle
//! chain), one walk of one chain comparing addresses. The state lock is
//! taken once, by the tracker; the NAT hooks read the binding from a
//! confirmed entry's key without it (the reply tuple never changes after
//! confirmation). The record is written once (PRE_ROUTING) and
//! read once per later hook, with bottom halves off: the softirq that
//! carries a received or forwarded packet has them off already, so only
//! a local sender's task (LOCAL_OUT, and POST_ROUTING after it) toggles
//! them. The rule metadata (`PacketMeta`) is built once per hook that
//! evaluates a table, in place, and lent to the evaluation.
//!
//! # Files
//! This file holds the hook bodies ([`first`], [`last`]) and the steps
//! they share (running a table, its verdict, mangle); the rest, one
//! netfilter counterpart each:
//! * `slot`: the per-packet state between hooks and the connection lookup
//!   of a later hook (`skb->_nfct`, `nf_ct_get`).
//! * `meta`: the packet at a hook and its metadata for rules
//!   (`nft_pktinfo`, nft_meta.c).
//! * `nat`: the NAT step (nf_nat_core.c, nf_nat_masquerade.c,
//!   nf_nat_redirect.c).
//! * `reject`: REJECT's answers (nf_reject_ipv4.c, nf_reject_ipv6.c).
//! * `offload`: the fast path for established flows (nf_flow_table_ip.c).
//! * `log`: LOG lines (nf_log_syslog.c).

use ::nat::eval::{Outcome, Verdict};
use ::nat::nat_proto::CsumMode;
use ::nat::rule::TableKind;
use conntrack::wire::ipv6;
use conntrack::{CtState, Direction, Family, Hook};
use rfw_abi::rules_stats;

use crate::ct::hook::track_info;
use crate::ct::table;
use crate::pernet::RfwNet;
use crate::rules::{RulesNet, Ruleset};
use crate::sys::netfilter::{self, HookState};
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::{IpSummed, SkBuff};

mod log;
mod meta;
mod nat;
pub(crate) mod offload;
mod reject;
mod slot;

use log::Sink;
use meta::Pkt;
use nat::{nat_step, rewritten_tuple};
use reject::reject;
pub(crate) use slot::Slot;
use slot::{find, remember, Ct, Keep};

/// Runs table `kind` at the packet's hook, if loaded; applies MARK.
fn eval(set: &Ruleset, kind: TableKind, rules: &RulesNet, p: &mut Pkt<'_>) -> Option<Outcome> {
    let t = set.get(kind)?;
    let table = t.table()?;
    let hook = p.hook;
    // Built on first use; then borrowed beside the skb, which LOG reads.
    let mark = p.meta().mark;
    let meta = p.meta.as_ref()?;
    let mut sink = Sink {
        t,
        rules,
        skb: p.skb,
        state: p.state,
    };
    let out = table.evaluate(hook, meta, &mut sink);
    if out.mark != mark {
        p.skb.set_mark(out.mark);
        p.meta().mark = out.mark;
    }
    Some(out)
}

/// What a filter or mangle outcome means for the packet: `None` to go on.
///
/// QUEUE takes effect when the hook ends (`queued` holds it; the first
/// one counts), after the steps that follow the queueing table in this
/// hook. Linux spreads the tables over hooks, and a reinjected packet
/// resumes at the hook after the one that queued it; rfw runs several
/// tables in one hook, so a packet queued from the middle of it would
/// come back past the rest (a DNAT, the filter, the confirmation) and
/// miss them. The listener therefore sees the packet as rfw's hook leaves
/// it (after the NAT at that hook), and a DROP by a later table drops it
/// unqueued.
fn terminal(
    out: &Outcome,
    p: &Pkt<'_>,
    rules: &RulesNet,
    queued: &mut Option<netfilter::Verdict>,
) -> Option<netfilter::Verdict> {
    match out.verdict {
        Verdict::Accept => None,
        Verdict::Drop => Some(netfilter::DROP),
        Verdict::Reject(w) => {
            reject(p, w, rules);
            Some(netfilter::DROP)
        }
        Verdict::Queue(q) => {
            if queued.is_none() {
                rules.count(rules_stats::Counter::Queued);
                *queued = Some(netfilter::queue(q.num, q.bypass));
            }
            None
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

/// Applies TOS/TTL changes of a mangle outcome.
fn apply_mangle(p: &mut Pkt<'_>, out: &Outcome, rules: &RulesNet) -> bool {
    if out.mangle.is_empty() {
        return true;
    }
    // TOS and TTL, or traffic class and hop limit, lie in the fixed
    // header (`rewrite` takes no more than the packet has).
    let ok = rewrite(&mut *p.skb, ipv6::HEADER_LEN, |b, _| {
        ::nat::mangle::apply(b, &out.mangle).is_ok()
    })
    .unwrap_or(false);
    if !ok {
        rules.count(rules_stats::Counter::RewriteFailed);
    }
    ok
}

/// Re-routes a locally generated packet whose destination or mark a hook
/// changed (`nf_nat_ipv4_local_fn`, `ipt_mangle_out`).
fn reroute(p: &mut Pkt<'_>) -> bool {
    match p.family {
        Family::Ipv4 => p.state.route_me_harder4(p.skb),
        Family::Ipv6 => p.state.route_me_harder6(p.skb),
    }
}

/// Priority -200: tracking and the early tables (see the module docs).
pub(crate) fn first(
    rn: &RfwNet,
    rcu: &Rcu,
    skb: &mut SkBuff,
    state: &HookState,
) -> netfilter::Verdict {
    let v = first_steps(rn, rcu, skb, state);
    if v == netfilter::DROP {
        // No later hook of this packet reads its record, and the next
        // packet given this `sk_buff` must not. A dropped packet's new
        // connection goes with it (at FORWARD the record is PRE_ROUTING's,
        // which created the entry).
        if let Some(h) = Slot::forget(rn, skb) {
            slot::reap(rcu, &h);
        }
    } else if netfilter::is_queue(v) {
        // The record stays. The packet comes back past this hook in the
        // listener's task (another context, maybe another CPU) and looks
        // its connection up; while it is queued no other packet can have
        // its `sk_buff`. If nobody listens, or the listener drops it, the
        // kernel frees it, and the next packet given that `sk_buff` here
        // replaces the record and reaps the unconfirmed entry.
    } else if v != netfilter::ACCEPT {
        Slot::forget(rn, skb);
    }
    v
}

/// The body of [`first`].
fn first_steps(rn: &RfwNet, rcu: &Rcu, skb: &mut SkBuff, state: &HookState) -> netfilter::Verdict {
    let Some(h) = Hook::from_u8(state.hook()) else {
        return netfilter::ACCEPT;
    };
    if h != Hook::Prerouting && h != Hook::Output && h != Hook::Forward {
        return netfilter::ACCEPT;
    }
    let set = rn.rules.current(rcu);
    if !rn.tracks(set) {
        // Nothing here needs tracking. A record of this skb is freed so
        // that `last` cannot take a stale one for this packet if tracking
        // starts between the two hooks.
        if h != Hook::Forward {
            Slot::forget(rn, skb);
        }
        return netfilter::ACCEPT;
    }
    if h == Hook::Forward
        && set.get(TableKind::Filter).is_none()
        && set.get(TableKind::Mangle).is_none()
    {
        return netfilter::ACCEPT;
    }
    // Packets arriving on loopback were tracked (and NATed) at LOCAL_OUT
    // in this namespace already (Linux sees their conntrack attached).
    if h == Hook::Prerouting && state.in_dev().is_some_and(|d| d.is_loopback()) {
        Slot::forget(rn, skb);
        return netfilter::ACCEPT;
    }
    let Some(mut p) = Pkt::at(skb, state) else {
        if h != Hook::Forward {
            // Nothing for the later hooks of this packet.
            Slot::forget(rn, skb);
        }
        return netfilter::ACCEPT;
    };
    // At FORWARD the tracking hook's record: the packet's connection and
    // its parsed headers (kept for POST_ROUTING).
    let rec = match h {
        Hook::Forward => Slot::take(rn, p.skb, false, &mut p.info),
        _ => None,
    };
    if !p.parse(&rn.ct, rcu) {
        if h != Hook::Forward {
            // Nothing for the later hooks of this packet.
            Slot::forget(rn, p.skb);
        }
        return netfilter::ACCEPT;
    }
    let mut ct = None;
    if h == Hook::Forward {
        let (c, st) = find(rn, rcu, &p, rec.as_ref());
        ct = c;
        p.set_ct_state(st);
    } else if let Some(info) = &p.info {
        let tr = track_info(&rn.ct, rcu, info, p.skb, h);
        if tr.verdict != netfilter::ACCEPT {
            return tr.verdict;
        }
        let st = tr.class.state();
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
        rn.rules.count(rules_stats::Counter::Unparsed);
    }
    if set.is_empty() && !rn.rules.nat_used() {
        if h != Hook::Forward {
            remember(rn, rcu, &p, &ct, p.ct_state, &Keep::Headers);
        }
        return netfilter::ACCEPT;
    }
    // A mark changed at LOCAL_OUT re-routes the packet.
    let mark_before = if h == Hook::Output { p.skb.mark() } else { 0 };
    let mut queued = None;
    if let Some(out) = eval(set, TableKind::Mangle, &rn.rules, &mut p) {
        if let Some(v) = terminal(&out, &p, &rn.rules, &mut queued) {
            return v;
        }
        if !apply_mangle(&mut p, &out, &rn.rules) {
            return netfilter::DROP;
        }
    }
    let mut translated = false;
    let mut keep = None;
    if h != Hook::Forward {
        match nat_step(rn, rcu, set, &mut p, &mut ct, &mut queued, &mut None) {
            Ok(t) => translated = t,
            Err(v) => return v,
        }
        // Mangle's TOS and TTL are not among the parsed headers; NAT's
        // addresses and ports are: after NAT the record keeps the tuple
        // as NAT wrote it, not the headers.
        keep = Some(match &ct {
            Some(c) if translated => Keep::Rewritten(rewritten_tuple(&p, c)),
            _ => Keep::Headers,
        });
    }
    if h == Hook::Output && (translated || p.skb.mark() != mark_before) && !reroute(&mut p) {
        return netfilter::DROP;
    }
    // Written after the re-route, which may move the headers to a new
    // buffer (`ip_route_me_harder` expands the headroom for the new
    // device): the record names the network header where it is now.
    if let Some(keep) = &keep {
        remember(rn, rcu, &p, &ct, p.ct_state, keep);
    }
    if h == Hook::Output || h == Hook::Forward {
        if translated {
            // Filter sees the packet as it is now.
            p.reparse(&rn.ct, rcu);
        }
        if let Some(out) = eval(set, TableKind::Filter, &rn.rules, &mut p) {
            if let Some(v) = terminal(&out, &p, &rn.rules, &mut queued) {
                return v;
            }
            // An accepted packet that met an `--offload` rule (a queued
            // one is the listener's to judge).
            if let (true, None, Some(c)) = (out.offload, queued, &ct) {
                offload::capture(rn, rcu, set, &p, c);
            }
        }
    }
    queued.unwrap_or(netfilter::ACCEPT)
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
    let local_in = state.hook() == Hook::Input as u8;
    let lo_in = local_in && state.in_dev().is_some_and(|d| d.is_loopback());
    if set.is_empty() && !rn.rules.nat_used() && (!unconfirmed || lo_in) {
        return netfilter::ACCEPT;
    }
    let Some(mut p) = Pkt::at(skb, state) else {
        Slot::forget(rn, skb);
        return netfilter::ACCEPT;
    };
    // The packet's last hook: its record is consumed.
    let rec = Slot::take(rn, p.skb, true, &mut p.info);
    if !p.parse(&rn.ct, rcu) {
        return netfilter::ACCEPT;
    }
    let (mut ct, st) = find(rn, rcu, &p, rec.as_ref());
    p.set_ct_state(st);
    if let Some(c) = &ct {
        offload::recheck(rcu, set, c);
    }
    let v = last_steps(
        rn,
        rcu,
        set,
        &mut p,
        &mut ct,
        local_in,
        lo_in || !unconfirmed,
    );
    if v == netfilter::DROP {
        // A dropped packet's new connection goes with it.
        if let Some(c) = ct.filter(|c| c.state == CtState::New && c.dir == Direction::Original) {
            table::get().drop_unconfirmed(c.e);
        }
    }
    v
}

/// The body of [`last`] once the packet's connection is found: the late
/// tables, NAT and the confirmation (unless `skip_confirm`: nothing in
/// this namespace awaits one, or a loopback packet at LOCAL_IN).
fn last_steps<'g>(
    rn: &RfwNet,
    rcu: &'g Rcu,
    set: &Ruleset,
    p: &mut Pkt<'_>,
    ct: &mut Option<Ct<'g>>,
    local_in: bool,
    skip_confirm: bool,
) -> netfilter::Verdict {
    let mut queued = None;
    if !set.is_empty() {
        if let Some(out) = eval(set, TableKind::Mangle, &rn.rules, p) {
            if let Some(v) = terminal(&out, p, &rn.rules, &mut queued) {
                return v;
            }
            if !apply_mangle(p, &out, &rn.rules) {
                return netfilter::DROP;
            }
        }
        if local_in {
            if let Some(out) = eval(set, TableKind::Filter, &rn.rules, p) {
                if let Some(v) = terminal(&out, p, &rn.rules, &mut queued) {
                    return v;
                }
            }
        }
    }
    let mut hint = None;
    if !set.is_empty() || rn.rules.nat_used() {
        let rewritten = match nat_step(rn, rcu, set, p, ct, &mut queued, &mut hint) {
            Err(v) => return v,
            Ok(r) => r,
        };
        if rewritten && local_in && p.skb.has_demux_sk() {
            // Early demux found a socket for the source before this hook
            // changed it: let the transport look again
            // (`nf_nat_ipv4_local_in`, nf_nat_edemux.sh).
            // Drops the demux reference.
            p.skb.orphan();
        }
    }
    // A packet queued here is confirmed before it goes to the listener:
    // it has passed every rfw step (see `terminal`).
    let v = queued.unwrap_or(netfilter::ACCEPT);
    if skip_confirm {
        return v;
    }
    if let Some(c) = ct {
        if c.dir == Direction::Original
            && c.state != CtState::Related
            && table::get().confirm(rcu, c.e, hint).is_err()
        {
            // Its reply tuple is taken (or its chain full): the entry is
            // gone and the packet is dropped, as `__nf_conntrack_confirm`
            // does (counted as insert_failed or chain_too_long).
            return netfilter::DROP;
        }
    }
    v
}
