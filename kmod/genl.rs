// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `rfw` (ABI in the `rfw_abi` crate).
//!
//! Every operation carries `GENL_UNS_ADMIN_PERM`: the caller needs
//! `CAP_NET_ADMIN` in the user namespace that owns the network namespace of
//! its socket, which is where each command acts (`netnsok`), as nf_tables'
//! family does. Requests are validated strictly against the family policy
//! (`resv_start_op` = 1): an attribute a command does not take is rejected
//! with an extended ACK before the handler runs.

use core::ffi::c_int;

use kernel::error::to_result;
use kernel::prelude::*;
use rfw_abi::{attr, hook_stats, nfproto, Cmd};

use crate::bindings;
use crate::ct;
use crate::kernel_static::KernelStatic;
use crate::pernet;
use crate::rules;
use crate::sys::nlmsg::Reply;

const N_OPS: usize = 10;
const N_POLICY: usize = attr::MAX as usize + 1;

static FAMILY: KernelStatic<bindings::genl_family> =
    // `genl_family` holds integers, a char array and (function) pointers.
    // SAFETY: zero is a valid value for every field.
    KernelStatic::new(unsafe { core::mem::zeroed() });
static OPS: KernelStatic<[bindings::genl_small_ops; N_OPS]> =
    // SAFETY: as above, for `genl_small_ops`.
    KernelStatic::new(unsafe { core::mem::zeroed() });
/// The family policy: under strict validation only the attributes given a
/// type here are accepted in a request (`NLA_UNSPEC`, zero, rejects). The
/// contents of nested attributes are checked by `rfw_abi`'s parsers.
static POLICY: KernelStatic<[bindings::nla_policy; N_POLICY]> =
    // SAFETY: as above, for `nla_policy`.
    KernelStatic::new(unsafe { core::mem::zeroed() });

/// The registered family, for as long as this value lives.
pub(crate) struct Registration(());

impl Registration {
    /// Fills in and registers the family.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let fam = FAMILY.get();
        let ops = OPS.get();
        // Module init runs once and the family is not registered yet.
        // SAFETY: nothing else reads these statics now (`KernelStatic` invariant).
        unsafe {
            let table: [(Cmd, DoIt, Option<DumpIt>); N_OPS] = [
                (Cmd::StatsGet, Some(stats_get), None),
                (Cmd::CtGet, Some(ct::genl::ct_get), Some(ct::genl::ct_dump)),
                (Cmd::CtDelete, Some(ct::genl::ct_delete), None),
                (Cmd::CtFlush, Some(ct::genl::ct_flush), None),
                (Cmd::CtStatsGet, Some(ct::genl::ct_stats_get), None),
                (Cmd::CtConfigGet, Some(ct::genl::ct_config_get), None),
                (Cmd::CtConfigSet, Some(ct::genl::ct_config_set), None),
                (Cmd::RulesGet, Some(rules::genl::rules_get), None),
                (Cmd::RulesReplace, Some(rules::genl::rules_replace), None),
                (Cmd::RulesStatsGet, Some(rules::genl::rules_stats_get), None),
            ];
            for (op, (cmd, doit, dumpit)) in (*ops).iter_mut().zip(table) {
                op.cmd = cmd as u8;
                op.flags = bindings::GENL_UNS_ADMIN_PERM as u8;
                op.doit = doit;
                op.dumpit = dumpit;
            }
            for a in [
                attr::CT_ORIG,
                attr::CT_REPLY,
                attr::CT_CONFIG,
                attr::RULES_TABLE,
            ] {
                (*POLICY.get())[usize::from(a)].type_ = bindings::NLA_NESTED as u8;
            }
            (*POLICY.get())[usize::from(attr::RULES_GENERATION)].type_ = bindings::NLA_U32 as u8;
            (*POLICY.get())[usize::from(attr::RULES_CHECK)].type_ = bindings::NLA_FLAG as u8;

            for (d, s) in (*fam).name.iter_mut().zip(rfw_abi::FAMILY_NAME_C) {
                *d = *s as core::ffi::c_char;
            }
            (*fam).version = rfw_abi::FAMILY_VERSION.into();
            (*fam).maxattr = attr::MAX.into();
            (*fam).policy = POLICY.get().cast::<bindings::nla_policy>();
            (*fam).set_netnsok(1);
            (*fam).set_parallel_ops(1);
            (*fam).resv_start_op = 1;
            (*fam).small_ops = ops.cast::<bindings::genl_small_ops>();
            (*fam).n_small_ops = N_OPS as u8;
            (*fam).module = module.as_ptr().cast();
        }
        // SAFETY: the family is fully initialised and static.
        to_result(unsafe { bindings::genl_register_family(fam) })?;
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // This waits for running handlers (they hold the family's cb_lock).
        // SAFETY: the family was registered in `new`.
        unsafe { bindings::genl_unregister_family(FAMILY.get()) };
    }
}

type DoIt = Option<unsafe extern "C" fn(*mut bindings::sk_buff, *mut bindings::genl_info) -> c_int>;
type DumpIt =
    unsafe extern "C" fn(*mut bindings::sk_buff, *mut bindings::netlink_callback) -> c_int;

/// The registered family (for messages built outside this file).
pub(crate) fn family() -> *const bindings::genl_family {
    FAMILY.get()
}

/// Runs a handler, turning its `Result` into the errno netlink expects.
pub(crate) fn errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `Cmd::StatsGet`: the caller's namespace's per-hook counters.
///
/// # Safety
///
/// Called by genetlink only, with the request's `skb` and `info`.
unsafe extern "C" fn stats_get(
    _skb: *mut bindings::sk_buff,
    info: *mut bindings::genl_info,
) -> c_int {
    // SAFETY: genetlink passes the request's valid `info` for the call.
    let net = unsafe { bindings::rfw_genl_info_net(info) };
    // A command runs in the live namespace of its socket, while the family,
    // SAFETY: hence the pernet operations, are registered (`pernet::get`).
    let totals = unsafe { pernet::get(net) }.counters.sum();
    // SAFETY: `info` is this doit's request and FAMILY the registered family.
    let reply = unsafe { Reply::new(info, FAMILY.get(), Cmd::StatsGet as u8) };
    errno(reply.and_then(|mut r| {
        for (pf, fam) in [nfproto::IPV4, nfproto::IPV6].iter().zip(totals.iter()) {
            for (h, c) in fam.iter().enumerate() {
                let nest = r.nest_start(attr::HOOK_STATS)?;
                r.put_u8(hook_stats::FAMILY, *pf)?;
                r.put_u8(hook_stats::HOOK, h as u8)?;
                r.put_u64(hook_stats::PACKETS, c.packets, hook_stats::PAD)?;
                r.put_u64(hook_stats::BYTES, c.bytes, hook_stats::PAD)?;
                r.nest_end(nest);
            }
        }
        r.send()
    }))
}
