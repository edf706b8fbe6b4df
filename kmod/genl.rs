// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `rfw` (ABI in the `rfw_abi` crate).
//!
//! Every operation carries `GENL_UNS_ADMIN_PERM`: the caller needs
//! `CAP_NET_ADMIN` in the user namespace that owns the network namespace of
//! its socket, which is where each command acts (`netnsok`), as nf_tables'
//! family does. Requests are validated strictly against the family policy
//! (`resv_start_op` = 1): an attribute a command does not take is rejected
//! with an extended ACK before the handler runs.

use conntrack::Family;
use kernel::prelude::*;
use rfw_abi::{attr, hook_stats, Cmd};

use crate::ct::genl::{CtConfigGet, CtConfigSet, CtDelete, CtFlush, CtGet, CtStatsGet};
use crate::rules::genl::{RulesGet, RulesReplace, RulesStatsGet};
use crate::sys::genl::{self, AttrType, DoIt, Op, Request, Spec, UNS_ADMIN_PERM};
use crate::sys::nlmsg::Reply;

const N_OPS: usize = 11;
const N_ATTRS: usize = attr::MAX as usize + 1;

static FAMILY: genl::Family<N_OPS, N_ATTRS> = genl::Family::new();

/// The registered family, for as long as this value lives.
pub(crate) struct Registration {
    _family: genl::Registration<N_OPS, N_ATTRS>,
}

impl Registration {
    /// Fills in and registers the family.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let p = UNS_ADMIN_PERM;
        let ops = [
            Op::doit::<StatsGet>(Cmd::StatsGet as u8, p),
            Op::doit_dumpit::<CtGet>(Cmd::CtGet as u8, p),
            Op::doit::<CtDelete>(Cmd::CtDelete as u8, p),
            Op::doit::<CtFlush>(Cmd::CtFlush as u8, p),
            Op::doit::<CtStatsGet>(Cmd::CtStatsGet as u8, p),
            Op::doit::<CtConfigGet>(Cmd::CtConfigGet as u8, p),
            Op::doit::<CtConfigSet>(Cmd::CtConfigSet as u8, p),
            Op::doit::<RulesGet>(Cmd::RulesGet as u8, p),
            Op::doit::<RulesReplace>(Cmd::RulesReplace as u8, p),
            Op::doit::<RulesStatsGet>(Cmd::RulesStatsGet as u8, p),
            Op::doit::<StatsSet>(Cmd::StatsSet as u8, p),
        ];
        // The family policy: under strict validation only the attributes
        // given a type here are accepted in a request. The contents of
        // nested attributes are checked by `rfw_abi`'s parsers.
        let policy = [
            (attr::CT_ORIG, AttrType::Nested),
            (attr::CT_REPLY, AttrType::Nested),
            (attr::CT_CONFIG, AttrType::Nested),
            (attr::RULES_TABLE, AttrType::Nested),
            (attr::RULES_GENERATION, AttrType::U32),
            (attr::RULES_CHECK, AttrType::Flag),
            (attr::STATS_COUNTING, AttrType::U8),
        ];
        let spec = Spec {
            name: rfw_abi::FAMILY_NAME_C,
            version: rfw_abi::FAMILY_VERSION,
            ops,
            policy: &policy,
            netnsok: true,
            parallel_ops: true,
            resv_start_op: 1,
            module,
        };
        Ok(Registration {
            _family: genl::Registration::new(&FAMILY, spec)?,
        })
    }
}

/// `Cmd::StatsGet`: the caller's namespace's per-hook counters.
struct StatsGet;

impl DoIt for StatsGet {
    fn doit(req: &Request<'_>) -> Result {
        reply_stats(req, Cmd::StatsGet)
    }
}

/// The reply of `StatsGet` and `StatsSet`.
fn reply_stats(req: &Request<'_>, cmd: Cmd) -> Result {
    let rn = req.net();
    let totals = rn.counters.sum();
    let r = Reply::new(req, cmd as u8)?;
    r.put_u8(attr::STATS_COUNTING, u8::from(rn.counting()))?;
    for (f, fam) in Family::ALL.iter().zip(totals.iter()) {
        for (h, c) in fam.iter().enumerate() {
            let nest = r.nest_start(attr::HOOK_STATS)?;
            r.put_u8(hook_stats::FAMILY, f.nfproto())?;
            r.put_u8(hook_stats::HOOK, h as u8)?;
            r.put_u64(hook_stats::PACKETS, c.packets, hook_stats::PAD)?;
            r.put_u64(hook_stats::BYTES, c.bytes, hook_stats::PAD)?;
            r.nest_end(nest);
        }
    }
    r.send()
}

/// `Cmd::StatsSet`: counting on or off in the caller's namespace, and the
/// hooks that follow from it (`RfwNet::sync`).
struct StatsSet;

impl DoIt for StatsSet {
    fn doit(req: &Request<'_>) -> Result {
        let Some(a) = req.attr(attr::STATS_COUNTING) else {
            return Err(req.bad(None, c"STATS_COUNTING is needed"));
        };
        let on = match a.data() {
            [0] => false,
            [1] => true,
            _ => return Err(req.bad(Some(a), c"STATS_COUNTING must be 0 or 1")),
        };
        let rn = req.net();
        let was = rn.counting();
        rn.set_counting(on);
        if let Err(e) = crate::pernet::sync_req(req, false) {
            // No hook could be registered: counting stays as it was.
            rn.set_counting(was);
            let _ = crate::pernet::sync_req(req, false);
            return Err(e);
        }
        reply_stats(req, Cmd::StatsSet)
    }
}
