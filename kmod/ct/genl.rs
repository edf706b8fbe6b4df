// SPDX-License-Identifier: GPL-2.0

//! Generic netlink commands on the connection table (ABI: `rfw_abi`,
//! `Cmd::Ct*`). Request attributes nested in the top level are parsed by
//! the ABI crate's safe parsers; their error sentences go back in the
//! extended ACK with `-EINVAL`.

use core::ffi::c_long;
use core::sync::atomic::Ordering;

use conntrack::{Direction, Family, InvalidReason, ParseError, Status, Tuple};
use kernel::prelude::*;
use rfw_abi::{
    attr, ct_config, ct_counters, ct_reason, ct_stats, ct_status, ct_timeout, ct_tuple,
    ConfigChange, WireTuple,
};

use super::table::{self, EntryRef, Removal, Snapshot, ENTRY_SIZE_V4};
use crate::sys::genl::{Attr, DoIt, Dump, DumpIt, Request};
use crate::sys::nlmsg::{emsgsize, Reply, Writer};
use crate::sys::rcu::RcuGuard;
use crate::sys::time::jiffies_msecs;

/// The tuple in `CT_ORIG` or `CT_REPLY` (exactly one).
fn tuple(req: &Request<'_>) -> Result<Tuple> {
    let (a, other) = match (req.attr(attr::CT_ORIG), req.attr(attr::CT_REPLY)) {
        (Some(a), None) | (None, Some(a)) => (a, false),
        (Some(a), Some(_)) => (a, true),
        (None, None) => {
            return Err(req.bad(None, c"a tuple is needed: CT_ORIG or CT_REPLY"));
        }
    };
    if other {
        return Err(req.bad(Some(a), c"give CT_ORIG or CT_REPLY, not both"));
    }
    let w = WireTuple::parse(a.data()).map_err(|m| req.bad(Some(a), m))?;
    Ok(from_wire(&w))
}

fn from_wire(w: &WireTuple) -> Tuple {
    // `WireTuple::parse` accepts IPv4 and IPv6 only.
    let family = Family::from_nfproto(w.family).unwrap_or(Family::Ipv6);
    Tuple {
        src: w.src,
        dst: w.dst,
        src_port: w.src_port,
        dst_port: w.dst_port,
        proto: w.proto,
        family,
    }
}

fn put_tuple(w: &Writer, ty: u16, t: &Tuple) -> Result {
    let nest = w.nest_start(ty)?;
    let alen = t.family.addr_len();
    w.put_u8(ct_tuple::FAMILY, t.family.nfproto())?;
    w.put_u8(ct_tuple::PROTO, t.proto)?;
    w.put_bytes(ct_tuple::SRC, &t.src[..alen])?;
    w.put_bytes(ct_tuple::DST, &t.dst[..alen])?;
    w.put_u16(ct_tuple::SRC_PORT, t.src_port)?;
    w.put_u16(ct_tuple::DST_PORT, t.dst_port)?;
    w.nest_end(nest);
    Ok(())
}

/// The attributes of one connection message; `gen` is the namespace's
/// ruleset generation (a fast-path record of another one is stale).
fn put_conn(w: &Writer, s: &Snapshot, gen: u32) -> Result {
    put_tuple(w, attr::CT_ORIG, &s.key.tuple(Direction::Original))?;
    put_tuple(w, attr::CT_REPLY, &s.key.tuple(Direction::Reply))?;
    // MASQUERADE's bit is rfw's own; `IPS_OFFLOAD` is the same bit in
    // Linux's numbering, reported from the fast path's record.
    let mut status = u32::from(s.status.0 & !(Status::TABLE_PRIVATE | Status::MASQUERADE));
    if s.offload_gen == Some(gen) {
        status |= ct_status::OFFLOAD;
    }
    w.put_u32(attr::CT_STATUS, status)?;
    w.put_u32(attr::CT_TIMEOUT, s.expires_in)?;
    if let Some(st) = s.tcp_state {
        w.put_u8(attr::CT_PROTO_STATE, st as u8)?;
    }
    for (ty, (packets, bytes)) in [
        (attr::CT_COUNTERS_ORIG, s.counters[0]),
        (attr::CT_COUNTERS_REPLY, s.counters[1]),
    ] {
        let nest = w.nest_start(ty)?;
        w.put_u64(ct_counters::PACKETS, u64::from(packets), ct_counters::PAD)?;
        w.put_u64(ct_counters::BYTES, bytes, ct_counters::PAD)?;
        w.nest_end(nest);
    }
    Ok(())
}

fn now_ms() -> u64 {
    u64::from(jiffies_msecs())
}

/// `Cmd::CtGet`: one connection by tuple (doit), every confirmed
/// connection of the namespace (dumpit).
pub(crate) struct CtGet;

impl DoIt for CtGet {
    fn doit(req: &Request<'_>) -> Result {
        let t = tuple(req)?;
        let ct = &req.net().ct;
        let tbl = table::get();
        let (found, gen) = {
            let rcu = RcuGuard::new();
            let gen = req.net().rules.current(&rcu).generation;
            let snap = tbl
                .lookup(&rcu, ct, &t)
                .and_then(|(e, _)| e.snapshot(tbl, now_ms()));
            (snap, gen)
        };
        let Some(snap) = found else {
            req.report(None, c"no such connection");
            return Err(ENOENT);
        };
        let r = Reply::new(req, rfw_abi::Cmd::CtGet as u8)?;
        put_conn(&r, &snap, gen)?;
        r.send()
    }
}

/// Buckets a dump call walks per RCU read-side section (it yields the CPU
/// between two): an empty namespace's dump still walks the whole shared
/// table, and a grace period must not wait on all of it.
const DUMP_BUCKETS_PER_SECTION: usize = 256;
/// Times a dump starts one bucket again after its walk strayed (see
/// `Table::for_each_in_bucket`) before it sends what it has and flags the
/// dump interrupted.
const DUMP_BUCKET_RETRIES: usize = 8;

/// The order-sensitive signature of a bucket's first entries: how a dump
/// that had to split a bucket between two calls checks, when it comes
/// back, that the entries it already sent are still the bucket's first.
fn dump_sig(sig: u64, e: EntryRef<'_>) -> u64 {
    (sig ^ e.addr() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// `Cmd::CtGet` (dumpit): every confirmed connection of the namespace.
///
/// A dump is exact: every connection that is in the table for the whole
/// dump is sent once, whatever is inserted, expires or is deleted
/// meanwhile (entries never move between chains). Linux's
/// `ctnetlink_dump_table` resumes a bucket at the last entry sent and may
/// repeat or skip entries when that one went away; rfw sends each bucket
/// whole or not at all:
/// * `cb->args[0]` is the next bucket. A bucket whose messages do not fit
///   the rest of the skb is trimmed off and sent whole by the next call.
/// * A walk that strays (an entry it stood on was buried: `Table::bury`)
///   trims what it sent of that bucket and walks it again.
/// * Only a bucket that does not fit even an empty skb (a reader with a
///   receive buffer too small for 64 connections) is split:
///   `cb->args[1]` counts its entries already sent and `cb->args[2]` holds
///   their signature; if the next call finds them changed, the dump is
///   flagged `NLM_F_DUMP_INTR` (`cb->seq` moves, as Linux's dumps do when
///   the table's generation changes), and so it is when a bucket strays
///   [`DUMP_BUCKET_RETRIES`] times in a row. fwctl then dumps again.
impl DumpIt for CtGet {
    fn dumpit(dump: &mut Dump<'_>) -> Result {
        let ct = &dump.net().ct;
        // `cb->seq` is 1 from the first call on and 2 once the dump is known
        // to be inexact; `genl_dump_check_consistent` (in `Dump::message`,
        // and netlink for the final NLMSG_DONE) flags the first message
        // after it moved.
        if dump.seq() == 0 {
            dump.set_seq(1);
        }
        let tbl = table::get();
        // The IPv4 chains, then the IPv6 ones.
        let n = tbl.dump_buckets();
        let mut b = usize::try_from(dump.args()[0]).unwrap_or(n);
        let now = now_ms();
        let mut stop = false;
        while b < n && !stop {
            let rcu = RcuGuard::new();
            let gen = dump.net().rules.current(&rcu).generation;
            let end = (b + DUMP_BUCKETS_PER_SECTION).min(n);
            while b < end {
                // Entries of bucket `b` sent by earlier calls (a split bucket).
                let skip = usize::try_from(dump.args()[1]).unwrap_or(0);
                let mark = dump.skb_len();
                let mut tries = 0;
                let (sent, sig_at_skip, sig, full) = loop {
                    let (mut idx, mut sig, mut sig_at_skip, mut full) = (0usize, 0u64, None, false);
                    let walked = tbl.for_each_in_bucket(&rcu, ct, b, now, |e, s| {
                        if idx == skip {
                            sig_at_skip = Some(sig);
                        }
                        if idx >= skip {
                            let ok = dump.message(rfw_abi::Cmd::CtGet as u8).and_then(|m| {
                                put_conn(&m, s, gen)?;
                                m.end();
                                Ok(())
                            });
                            if ok.is_err() {
                                full = true;
                                return false;
                            }
                        }
                        sig = dump_sig(sig, e);
                        idx += 1;
                        true
                    });
                    tries += 1;
                    if walked.is_ok() || tries >= DUMP_BUCKET_RETRIES {
                        if walked.is_err() {
                            dump.set_seq(2);
                        }
                        if idx == skip {
                            sig_at_skip = Some(sig);
                        }
                        break (idx, sig_at_skip, sig, full);
                    }
                    // `mark` is the skb's length before this bucket:
                    // trimming to it drops only this bucket's messages.
                    dump.trim(mark);
                };
                if skip > 0 && sig_at_skip != Some(dump.args()[2] as u64) {
                    // The entries sent before the split are not the bucket's
                    // first any more: some of them, or of the ones after
                    // them, may be missing or repeated.
                    dump.set_seq(2);
                }
                if !full {
                    b += 1;
                    dump.args()[1] = 0;
                    continue;
                }
                stop = true;
                if mark > 0 {
                    // Sent whole by the next call.
                    dump.trim(mark);
                } else if sent > skip {
                    // Not even an empty skb holds the bucket: split it.
                    dump.args()[1] = sent as c_long;
                    dump.args()[2] = sig as c_long;
                } else {
                    // One message does not fit an empty dump skb: cannot
                    // happen with the sizes here, but must not loop forever.
                    return Err(emsgsize());
                }
                break;
            }
            drop(rcu);
            if !stop && b < n {
                // Outside any RCU section here.
                dump.cond_resched();
            }
        }
        dump.args()[0] = b as c_long;
        // The dump ends when a call adds nothing (the trampoline returns
        // the skb's length).
        Ok(())
    }
}

/// `Cmd::CtDelete`.
pub(crate) struct CtDelete;

impl DoIt for CtDelete {
    fn doit(req: &Request<'_>) -> Result {
        let t = tuple(req)?;
        let ct = &req.net().ct;
        let tbl = table::get();
        let rcu = RcuGuard::new();
        match tbl.lookup(&rcu, ct, &t) {
            Some((e, _)) if tbl.remove(e, Removal::Deleted) => Ok(()),
            _ => {
                req.report(None, c"no such connection");
                Err(ENOENT)
            }
        }
    }
}

/// `Cmd::CtFlush`.
pub(crate) struct CtFlush;

impl DoIt for CtFlush {
    fn doit(req: &Request<'_>) -> Result {
        let n = table::get().flush(&req.net().ct);
        let r = Reply::new(req, rfw_abi::Cmd::CtFlush as u8)?;
        r.put_u64(attr::CT_COUNT, n, attr::PAD)?;
        r.send()
    }
}

/// `Cmd::CtStatsGet`.
pub(crate) struct CtStatsGet;

impl DoIt for CtStatsGet {
    fn doit(req: &Request<'_>) -> Result {
        use rfw_abi::ct_stats::Counter;

        let ct = &req.net().ct;
        let s = ct.totals();
        let tbl = table::get();
        let r = Reply::new(req, rfw_abi::Cmd::CtStatsGet as u8)?;
        let nest = r.nest_start(attr::CT_STATS)?;
        // The table's gauges, then the per-packet events.
        let gauges = Counter::ALL.into_iter().filter(|c| !c.is_event());
        let events = Counter::ALL.into_iter().filter(|c| c.is_event());
        // (`Iterator::` because the kernel prelude's `Init` has a `chain` too.)
        for c in Iterator::chain(gauges, events) {
            let v = match c {
                Counter::Count => u64::from(ct.entries.load(Ordering::Relaxed)),
                Counter::Limit => u64::from(ct.limit.load(Ordering::Relaxed)),
                Counter::Unconfirmed => u64::from(ct.unconfirmed.load(Ordering::Relaxed)),
                Counter::Buckets => tbl.buckets() as u64,
                // IPv4's (IPv6: `table::ENTRY_SIZE_V6`; a TCP connection
                // adds its window state, `table::TCP_STATE_SIZE`).
                Counter::EntryBytes => ENTRY_SIZE_V4 as u64,
                _ => s.get(c),
            };
            r.put_u64(c.attr(), v, ct_stats::PAD)?;
        }
        for (i, v) in s.invalid().iter().enumerate() {
            let name = InvalidReason::name_of_index(i).unwrap_or("unknown");
            let n = r.nest_start(ct_stats::INVALID_REASON)?;
            r.put_str(ct_reason::NAME, name)?;
            r.put_u64(ct_reason::COUNT, *v, ct_reason::PAD)?;
            r.nest_end(n);
        }
        for (i, v) in s.malformed().iter().enumerate() {
            let name = ParseError::name_of_index(i).unwrap_or("unknown");
            let n = r.nest_start(ct_stats::MALFORMED_REASON)?;
            r.put_str(ct_reason::NAME, name)?;
            r.put_u64(ct_reason::COUNT, *v, ct_reason::PAD)?;
            r.nest_end(n);
        }
        r.nest_end(nest);
        r.send()
    }
}

/// The timeout named by index `i` of `ct_timeout::NAMES`.
fn timeout_slot(t: &mut conntrack::Timeouts, i: usize) -> Option<&mut u32> {
    Some(match i {
        0 => &mut t.tcp.syn_sent,
        1 => &mut t.tcp.syn_recv,
        2 => &mut t.tcp.established,
        3 => &mut t.tcp.fin_wait,
        4 => &mut t.tcp.close_wait,
        5 => &mut t.tcp.last_ack,
        6 => &mut t.tcp.time_wait,
        7 => &mut t.tcp.close,
        8 => &mut t.tcp.syn_sent2,
        9 => &mut t.tcp.retrans,
        10 => &mut t.tcp.unack,
        11 => &mut t.udp_unreplied,
        12 => &mut t.udp_replied,
        13 => &mut t.icmp,
        14 => &mut t.generic,
        _ => return None,
    })
}

fn reply_config(req: &Request<'_>, cmd: rfw_abi::Cmd) -> Result {
    let rn = req.net();
    let ct = &rn.ct;
    let (mut timeouts, checksum, active) = {
        let rcu = RcuGuard::new();
        let cfg = ct.config(&rcu);
        (
            cfg.timeouts,
            cfg.checksum,
            rn.tracks(rn.rules.current(&rcu)),
        )
    };
    let mode = if ct.track_always.load(Ordering::Relaxed) {
        ct_config::TRACKING_ON
    } else {
        ct_config::TRACKING_AUTO
    };
    let r = Reply::new(req, cmd as u8)?;
    let nest = r.nest_start(attr::CT_CONFIG)?;
    r.put_u32(ct_config::LIMIT, ct.limit.load(Ordering::Relaxed))?;
    r.put_u32(ct_config::BUCKETS, table::get().buckets() as u32)?;
    r.put_u8(ct_config::TRACKING, mode)?;
    r.put_u8(ct_config::ACTIVE, u8::from(active))?;
    r.put_u8(ct_config::CHECKSUM, u8::from(checksum))?;
    for (i, name) in ct_timeout::NAMES.iter().enumerate() {
        let Some(v) = timeout_slot(&mut timeouts, i) else {
            continue;
        };
        let n = r.nest_start(ct_config::TIMEOUT)?;
        r.put_str(ct_timeout::NAME, name)?;
        r.put_u32(ct_timeout::MS, *v)?;
        r.nest_end(n);
    }
    r.nest_end(nest);
    r.send()
}

/// `Cmd::CtConfigGet`.
pub(crate) struct CtConfigGet;

impl DoIt for CtConfigGet {
    fn doit(req: &Request<'_>) -> Result {
        reply_config(req, rfw_abi::Cmd::CtConfigGet)
    }
}

/// Refuses a limit above the module's default in a namespace owned by a
/// user namespace other than the initial one. Linux makes
/// `nf_conntrack_max` read-only outside `init_net`
/// (`nf_conntrack_standalone_init_sysctl`), for it is one limit for all;
/// rfw's limit is the namespace's own, so a namespace the host made (`ip
/// netns add`) may raise it, but the root of an unprivileged user
/// namespace may only lower it (and raise it back up to the default):
/// its entries come from memory the whole machine shares.
fn check_limit(req: &Request<'_>, a: &Attr, limit: Option<u32>) -> Result {
    let default = table::get().default_limit();
    let Some(l) = limit else { return Ok(()) };
    if l <= default || req.net_ref().is_some_and(|n| n.owned_by_init_user_ns()) {
        return Ok(());
    }
    req.report_fmt(
        Some(a),
        format_args!(
            "only namespaces of the initial user namespace may set a limit above {default}"
        ),
    );
    Err(EPERM)
}

/// `Cmd::CtConfigSet`: all values are checked before any is applied.
pub(crate) struct CtConfigSet;

impl DoIt for CtConfigSet {
    fn doit(req: &Request<'_>) -> Result {
        let Some(a) = req.attr(attr::CT_CONFIG) else {
            return Err(req.bad(None, c"CT_CONFIG is needed"));
        };
        let change = ConfigChange::parse(a.data()).map_err(|m| req.bad(Some(a), m))?;
        check_limit(req, a, change.limit)?;
        // Tracking on needs defragmentation, which may fail (ENOMEM):
        // before anything is applied.
        if change.tracking == Some(ct_config::TRACKING_ON) {
            crate::pernet::sync_req(req, true)?;
        }
        let ct = &req.net().ct;
        if change.timeouts.iter().any(Option::is_some) || change.checksum.is_some() {
            ct.update_config(|cfg| {
                for (i, v) in change.timeouts.iter().enumerate() {
                    if let (Some(v), Some(slot)) = (v, timeout_slot(&mut cfg.timeouts, i)) {
                        *slot = *v;
                    }
                }
                if let Some(c) = change.checksum {
                    cfg.checksum = c;
                }
            })?;
        }
        if let Some(l) = change.limit {
            ct.limit.store(l, Ordering::Relaxed);
        }
        if let Some(t) = change.tracking {
            ct.track_always
                .store(t == ct_config::TRACKING_ON, Ordering::Relaxed);
            // Given back if the namespace stopped tracking (`auto` with
            // no table); held already if it tracks (cannot fail then).
            let _ = crate::pernet::sync_req(req, false);
        }
        reply_config(req, rfw_abi::Cmd::CtConfigSet)
    }
}
