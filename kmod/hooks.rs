// SPDX-License-Identifier: GPL-2.0

//! rfw's netfilter hooks: IPv4 and IPv6 at the five inet hook points, plus
//! the confirmation hooks at LOCAL_IN and POST_ROUTING.
//!
//! One table of `nf_hook_ops` serves every namespace (the kernel only reads
//! it); each namespace registers it in `pernet::net_init`. The hook finds its
//! namespace's state through `state->net`, as netfilter's own modules do
//! (`sys::netfilter`'s trampoline does the lookup).
//!
//! * Priority -200 (`NF_IP_PRI_CONNTRACK`), every hook: counts the packet,
//!   then `pkt::first` (tracking, mangle, DNAT, filter OUTPUT/FORWARD).
//! * Priority `INT_MAX` (`NF_IP_PRI_CONNTRACK_CONFIRM`), LOCAL_IN and
//!   POST_ROUTING: `pkt::last` (mangle, filter INPUT, SNAT, confirmation of
//!   a new connection once its first packet passed every other hook).

use core::ffi::c_int;

use conntrack::{Family, Hook};

use crate::bindings;
use crate::pernet::RfwNet;
use crate::sys::netfilter::{HookOps, HookState, HookTable, NetHook, Verdict};
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::SkBuff;

/// Hooks at priority -200 per namespace.
const MAIN: usize = Family::ALL.len() * Hook::COUNT;
/// Confirmation hooks per namespace.
const CONFIRM: usize = Family::ALL.len() * 2;
/// Number of hooks registered per namespace.
pub(crate) const COUNT: usize = MAIN + CONFIRM;

/// Where rfw sits among other hooks at each point: with connection tracking
/// (`NF_IP_PRI_CONNTRACK`, -200), before any NAT or filter table.
const PRIORITY: c_int = -200;
/// After every other hook (`NF_IP_PRI_CONNTRACK_CONFIRM`).
const PRIORITY_CONFIRM: c_int = c_int::MAX;

static TABLE: HookTable<COUNT> = HookTable::new();

/// Fills the table. Called once, from module init, before the first
/// namespace registers it.
pub(crate) fn init_table() {
    TABLE.fill(core::array::from_fn(|k| {
        if k < MAIN {
            let (f, h) = (Family::ALL[k / Hook::COUNT], Hook::ALL[k % Hook::COUNT]);
            HookOps::new::<Main>(f.nfproto(), h as u8, PRIORITY)
        } else {
            let (f, j) = (Family::ALL[(k - MAIN) / 2], (k - MAIN) % 2);
            let h = [Hook::Input, Hook::Postrouting][j];
            HookOps::new::<Confirm>(f.nfproto(), h as u8, PRIORITY_CONFIRM)
        }
    }));
}

/// The table, for `nf_register_net_hooks`.
pub(crate) fn table() -> *const bindings::nf_hook_ops {
    TABLE.as_ptr()
}

/// Priority -200: counts the packet and, at the first hook, tracks it.
struct Main;

impl NetHook for Main {
    fn run(rn: &RfwNet, rcu: &Rcu, skb: &mut SkBuff, state: &HookState) -> Verdict {
        if let Some(f) = Family::from_nfproto(state.pf()) {
            rn.counters
                .add(f, usize::from(state.hook()), u64::from(skb.len()));
        }
        crate::pkt::first(rn, rcu, skb, state)
    }
}

/// Priority `INT_MAX`: confirms the packet's new connection, after every
/// other hook.
struct Confirm;

impl NetHook for Confirm {
    fn run(rn: &RfwNet, rcu: &Rcu, skb: &mut SkBuff, state: &HookState) -> Verdict {
        crate::pkt::last(rn, rcu, skb, state)
    }
}
