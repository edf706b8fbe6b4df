// SPDX-License-Identifier: GPL-2.0

//! Generic netlink commands on the ruleset (ABI: `rfw_abi`, `Cmd::Rules*`).

use kernel::prelude::*;
use rfw_abi::{attr, nla, rules_stats, rules_table, Cmd};

use super::{Change, LoadError, Loaded, ReplaceError};
use crate::sys::genl::{DoIt, Request};
use crate::sys::nlmsg::Reply;
use crate::sys::rcu::RcuGuard;

const TABLE_NAMES: [&str; 3] = ["filter", "nat", "mangle"];

/// `Cmd::RulesGet`: generation, then each loaded table's blob and counters.
pub(crate) struct RulesGet;

impl DoIt for RulesGet {
    fn doit(req: &Request<'_>) -> Result {
        let rules = &req.net().rules;
        // Under the replace mutex the ruleset stays current while the reply
        // is built; the copy keeps its tables alive outside RCU (the reply's
        // allocations may sleep).
        let lock = rules.lock();
        let set = rules.current_locked(&lock);
        let mut size = 64usize;
        for kind in nat::rule::TableKind::ALL {
            if let Some(t) = set.get(kind) {
                size += t.blob().len() + t.entry_count() * rules_table::COUNTER_BYTES + 64;
            }
        }
        let r = Reply::with_size(req, Cmd::RulesGet as u8, size)?;
        r.put_u32(attr::RULES_GENERATION, set.generation)?;
        for kind in nat::rule::TableKind::ALL {
            let Some(t) = set.get(kind) else { continue };
            let nest = r.nest_start(attr::RULES_TABLE)?;
            r.put_u8(rules_table::KIND, kind as u8)?;
            r.put_bytes(rules_table::BLOB, t.blob())?;
            // A nest's length is 16 bits too: the blob must fit (fwctl
            // never sends a larger one), and only the counters that fit
            // beside it are sent (the rest read as zero).
            let room = (usize::from(u16::MAX) - 4 - 8 - 8).saturating_sub(t.blob().len() + 4);
            let n = t.entry_count().min(room / rules_table::COUNTER_BYTES);
            let mut raw = KVec::with_capacity(n * rules_table::COUNTER_BYTES, GFP_KERNEL_ACCOUNT)?;
            for i in 0..n {
                let (p, b) = t.counter(i);
                raw.extend_from_slice(&p.to_le_bytes(), GFP_KERNEL_ACCOUNT)?;
                raw.extend_from_slice(&b.to_le_bytes(), GFP_KERNEL_ACCOUNT)?;
            }
            r.put_bytes(rules_table::COUNTERS, &raw)?;
            r.nest_end(nest);
        }
        r.send()
    }
}

/// `Cmd::RulesReplace`: see the ABI docs; every table is decoded and
/// validated before anything is installed.
pub(crate) struct RulesReplace;

impl DoIt for RulesReplace {
    fn doit(req: &Request<'_>) -> Result {
        let check = req.attr(attr::RULES_CHECK).is_some();
        let expect = match req.attr(attr::RULES_GENERATION) {
            None => None,
            Some(a) => match a.data() {
                [a0, a1, a2, a3] => Some(u32::from_ne_bytes([*a0, *a1, *a2, *a3])),
                _ => return Err(req.bad(Some(a), c"RULES_GENERATION must be a u32")),
            },
        };
        let mut new: [Change; 3] = [Change::Keep, Change::Keep, Change::Keep];
        let mut any = false;
        for a in nla::iter(req.all_attrs()) {
            let a = match a {
                Ok(a) => a,
                Err(m) => return Err(req.bad(None, m)),
            };
            if a.kind != attr::RULES_TABLE {
                continue;
            }
            let payload = a.data;
            any = true;
            let mut blob = None;
            let mut counters = None;
            let mut kind = None;
            for inner in nla::iter(payload) {
                let (t, p) = match inner {
                    Ok(i) => (i.kind, i.data),
                    Err(m) => return Err(req.bad(None, m)),
                };
                match t {
                    rules_table::BLOB => blob = Some(p),
                    rules_table::COUNTERS => counters = Some(p),
                    rules_table::KIND => kind = Some(p),
                    _ => return Err(req.bad(None, c"unknown attribute in RULES_TABLE")),
                }
            }
            let Some(blob) = blob else {
                // A KIND alone removes that table (`nft delete table`).
                let k = match kind {
                    Some([k]) if usize::from(*k) < TABLE_NAMES.len() => usize::from(*k),
                    Some(_) => return Err(req.bad(None, c"RULES_TABLE KIND must be 0, 1 or 2")),
                    None => return Err(req.bad(None, c"RULES_TABLE without a BLOB or a KIND")),
                };
                if counters.is_some() {
                    return Err(req.bad(None, c"COUNTERS without a BLOB"));
                }
                if !matches!(new[k], Change::Keep) {
                    return Err(req.bad(None, c"the same table twice in one replace"));
                }
                new[k] = Change::Remove;
                continue;
            };
            let loaded = match Loaded::new(blob, counters) {
                Ok(l) => l,
                Err(LoadError::NoMemory) => return Err(ENOMEM),
                Err(LoadError::TooBig) => return Err(req.bad(None, c"table blob too large")),
                Err(LoadError::Counters) => {
                    return Err(
                        req.bad(None, c"COUNTERS: 16 bytes per entry, at most one per entry")
                    )
                }
                Err(LoadError::Codec(e)) => {
                    let kind = nat::codec::table_kind(blob)
                        .map(|k| TABLE_NAMES[k as usize])
                        .unwrap_or("table");
                    return Err(req.bad_fmt(None, format_args!("{kind}: {e}")));
                }
            };
            let k = loaded.kind() as usize;
            if !matches!(new[k], Change::Keep) {
                return Err(req.bad(None, c"the same table twice in one replace"));
            }
            new[k] = Change::Set(loaded);
        }
        if !any {
            return Err(req.bad(None, c"no RULES_TABLE in the request"));
        }
        let rules = &req.net().rules;
        // The reply first: once the ruleset is replaced the command has to
        // say so, and a reply that could not be allocated afterwards would
        // report a failure for a change that was made.
        let r = Reply::new(req, Cmd::RulesReplace as u8)?;
        let result = if check {
            // Validated; install nothing. The reply carries the generation
            // the ruleset is at.
            let rcu = RcuGuard::new();
            let g = rules.current(&rcu).generation;
            drop(rcu);
            drop(new);
            Ok(g)
        } else {
            // A replace that installs a table makes the namespace track:
            // defragmentation and the hooks first, so that the ruleset's
            // first packets are whole and meet every hook
            // (`RfwNet::sync`). One that only removes tables needs nothing
            // new.
            let installs = new.iter().any(|c| matches!(c, Change::Set(_)));
            if installs {
                crate::pernet::sync_req(req, true)?;
            }
            let r = rules.replace(new, expect);
            // Given back, with the hooks nothing needs any more, if the
            // replace failed or removed the last table and nothing else
            // tracks; the fast path's device hooks follow the new ruleset
            // (this registers nothing else and cannot fail: a device hook
            // that cannot be registered is only warned about).
            let _ = crate::pernet::sync_req(req, false);
            r
        };
        let generation = match result {
            Ok(g) => g,
            Err(ReplaceError::NoMemory) => return Err(ENOMEM),
            Err(ReplaceError::Stale(now)) => {
                req.report_fmt(
                    None,
                    format_args!(
                        "ruleset changed since read (now generation {now}); read it again"
                    ),
                );
                return Err(EAGAIN);
            }
        };
        r.put_u32(attr::RULES_GENERATION, generation)?;
        r.send()
    }
}

/// `Cmd::RulesStatsGet`: the rule path's counters.
pub(crate) struct RulesStatsGet;

impl DoIt for RulesStatsGet {
    fn doit(req: &Request<'_>) -> Result {
        let t = req.net().rules.totals();
        let r = Reply::new(req, Cmd::RulesStatsGet as u8)?;
        let nest = r.nest_start(attr::RULES_STATS)?;
        for c in rules_stats::Counter::ALL {
            r.put_u64(c.attr(), t[c.index()], rules_stats::PAD)?;
        }
        r.nest_end(nest);
        r.send()
    }
}
