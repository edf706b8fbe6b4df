// SPDX-License-Identifier: GPL-2.0

//! rfw's netfilter hooks: IPv4 and IPv6 at the five inet hook points, plus
//! the confirmation hooks at LOCAL_IN and POST_ROUTING.
//!
//! One table of `nf_hook_ops` serves every namespace (the kernel only reads
//! it); each namespace registers it in `pernet::net_init`. The hook finds its
//! namespace's state through `state->net`, as netfilter's own modules do.
//!
//! * Priority -200 (`NF_IP_PRI_CONNTRACK`), every hook: counts the packet,
//!   then `pkt::first` (tracking, mangle, DNAT, filter OUTPUT/FORWARD).
//! * Priority `INT_MAX` (`NF_IP_PRI_CONNTRACK_CONFIRM`), LOCAL_IN and
//!   POST_ROUTING: `pkt::last` (mangle, filter INPUT, SNAT, confirmation of
//!   a new connection once its first packet passed every other hook).

use core::ffi::{c_int, c_uint, c_void};

use rfw_abi::{hook, nfproto};

use crate::bindings;
use crate::pernet;
use crate::sys::kernel_static::KernelStatic;

/// Hooks at priority -200 per namespace.
const MAIN: usize = 2 * hook::COUNT;
/// Confirmation hooks per namespace.
const CONFIRM: usize = 2 * 2;
/// Number of hooks registered per namespace.
pub(crate) const COUNT: usize = MAIN + CONFIRM;

/// Where rfw sits among other hooks at each point: with connection tracking
/// (`NF_IP_PRI_CONNTRACK`, -200), before any NAT or filter table.
const PRIORITY: c_int = -200;
/// After every other hook (`NF_IP_PRI_CONNTRACK_CONFIRM`).
const PRIORITY_CONFIRM: c_int = c_int::MAX;

static TABLE: KernelStatic<[bindings::nf_hook_ops; COUNT]> =
    // `nf_hook_ops` holds pointers, integers and an optional function pointer.
    // SAFETY: zero is a valid value for every field.
    KernelStatic::new(unsafe { core::mem::zeroed() });

/// Fills the table. Called once, from module init, before the first
/// namespace registers it.
pub(crate) fn init_table() {
    let families = [nfproto::IPV4, nfproto::IPV6];
    for (i, pf) in families.iter().enumerate() {
        for h in 0..hook::COUNT {
            // Module init runs once, before any registration of the table.
            // SAFETY: nothing else reads it now (`KernelStatic`); index in bounds.
            let ops = unsafe { &mut (*TABLE.get())[i * hook::COUNT + h] };
            ops.hook = Some(rfw_hook);
            ops.pf = *pf;
            ops.hooknum = h as c_uint;
            ops.priority = PRIORITY;
        }
        for (j, h) in [hook::LOCAL_IN, hook::POST_ROUTING].iter().enumerate() {
            // As above.
            // SAFETY: nothing else reads the table now; index in bounds.
            let ops = unsafe { &mut (*TABLE.get())[MAIN + i * 2 + j] };
            ops.hook = Some(rfw_confirm_hook);
            ops.pf = *pf;
            ops.hooknum = c_uint::from(*h);
            ops.priority = PRIORITY_CONFIRM;
        }
    }
}

/// The table, for `nf_register_net_hooks`.
pub(crate) fn table() -> *const bindings::nf_hook_ops {
    TABLE.get().cast::<bindings::nf_hook_ops>()
}

fn family_index(pf: u8) -> usize {
    match pf {
        nfproto::IPV4 => 0,
        nfproto::IPV6 => 1,
        _ => usize::MAX,
    }
}

/// Counts the packet and, at the first hook, tracks it.
///
/// # Safety
///
/// Called by netfilter only, in a namespace where the hook is registered.
unsafe extern "C" fn rfw_hook(
    _priv: *mut c_void,
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> c_uint {
    // Netfilter passes a valid skb and state that outlive the call; the skb
    // stays a raw pointer: the packet path may rewrite it.
    // SAFETY: so both may be read.
    let (len, state) = unsafe { ((*skb).len, &*state) };
    // This hook is registered in `state.net` only between `init` and `pre_exit`.
    // SAFETY: so its `RfwNet` is live (see `pernet::get`).
    let rn = unsafe { pernet::get(state.net) };
    rn.counters.add(
        family_index(state.pf),
        usize::from(state.hook),
        u64::from(len),
    );
    crate::pkt::first(rn, skb, state)
}

/// Confirms the packet's new connection, after every other hook.
///
/// # Safety
///
/// Called by netfilter only, in a namespace where the hook is registered.
unsafe extern "C" fn rfw_confirm_hook(
    _priv: *mut c_void,
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> c_uint {
    // Netfilter passes a valid state that outlives the call.
    // SAFETY: so it may be read.
    let state = unsafe { &*state };
    // SAFETY: as in `rfw_hook`.
    let rn = unsafe { pernet::get(state.net) };
    crate::pkt::last(rn, skb, state)
}
