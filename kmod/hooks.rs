// SPDX-License-Identifier: GPL-2.0

//! rfw's netfilter hooks: IPv4 and IPv6 at the five inet hook points, plus
//! the confirmation hooks at LOCAL_IN and POST_ROUTING.
//!
//! Each namespace has its own entries (`sys::netfilter::NetHooks`, with the
//! namespace's state as `priv`) and registers only those it needs
//! ([`wanted`]; `RfwNet::sync` switches them whenever what they depend on
//! changes): a namespace without a ruleset, tracking or counting has none
//! and pays nothing per packet, as nf_conntrack's hooks exist in a
//! namespace only while a rule there needs them.
//!
//! * Priority -200 (`NF_IP_PRI_CONNTRACK`): counts the packet when
//!   counting is on (`fwctl stats counting on`), then at PRE_ROUTING,
//!   LOCAL_OUT and FORWARD `pkt::first` (tracking, mangle, DNAT, filter
//!   OUTPUT/FORWARD). At LOCAL_IN and POST_ROUTING it only counts, so it
//!   is registered there only while counting is on; at FORWARD only while
//!   a filter or mangle table needs it.
//! * Priority `INT_MAX` (`NF_IP_PRI_CONNTRACK_CONFIRM`), LOCAL_IN and
//!   POST_ROUTING: `pkt::last` (mangle, filter INPUT, SNAT, confirmation of
//!   a new connection once its first packet passed every other hook).
//!
//! The fast path (`pkt::offload`) is not among them: it hooks netdev
//! ingress, on each device of a namespace whose ruleset has an
//! `--offload` rule ([`new_dev_hooks`], `RfwNet::sync`).

use core::ffi::c_int;

use conntrack::{Family, Hook};

use crate::pernet::RfwNet;
use crate::pkt::offload::Fast;
use crate::sys::netfilter::{DevHooks, HookOps, HookState, NetHook, NetHooks, Verdict};
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::SkBuff;

/// Hooks at priority -200 per namespace.
const MAIN: usize = Family::ALL.len() * Hook::COUNT;
/// Confirmation hooks per namespace.
const CONFIRM: usize = Family::ALL.len() * 2;
/// Number of hook entries per namespace: the -200 ones by family and hook
/// number, then the confirmation ones (a packet's later hooks at higher
/// indices, as `NetHooks::switch` wants).
pub(crate) const COUNT: usize = MAIN + CONFIRM;

/// Where rfw sits among other hooks at each point: with connection tracking
/// (`NF_IP_PRI_CONNTRACK`, -200), before any NAT or filter table.
const PRIORITY: c_int = -200;
/// The fast path's ingress hook: at the priority nftables' documentation
/// gives its flowtables (`hook ingress priority filter`, 0); a netdev
/// chain of the user's at a lower priority (a drop list, say) sees the
/// packets first.
const PRIORITY_FAST: c_int = 0;
/// After every other hook (`NF_IP_PRI_CONNTRACK_CONFIRM`).
const PRIORITY_CONFIRM: c_int = c_int::MAX;
/// The hooks of the confirmation entries, in index order.
const CONFIRM_HOOKS: [Hook; 2] = [Hook::Input, Hook::Postrouting];

/// A namespace's entries, none registered.
pub(crate) fn new_hooks() -> NetHooks<COUNT> {
    NetHooks::new(core::array::from_fn(|k| {
        if k < MAIN {
            let (f, h) = (Family::ALL[k / Hook::COUNT], Hook::ALL[k % Hook::COUNT]);
            HookOps::new::<Main>(f.nfproto(), h as u8, PRIORITY)
        } else {
            let (f, j) = (Family::ALL[(k - MAIN) / 2], (k - MAIN) % 2);
            HookOps::new::<Confirm>(f.nfproto(), CONFIRM_HOOKS[j] as u8, PRIORITY_CONFIRM)
        }
    }))
}

/// A namespace's fast-path hooks, one per device once registered.
pub(crate) fn new_dev_hooks() -> DevHooks<Fast> {
    DevHooks::new(PRIORITY_FAST)
}

/// Which entries a namespace needs (a `NetHooks` mask): `tracks` when it
/// tracks connections (`RfwNet::tracks`), `forward` when its ruleset has
/// a table that runs at FORWARD (filter or mangle), `counting` when
/// `fwctl stats` counts its packets.
pub(crate) fn wanted(tracks: bool, forward: bool, counting: bool) -> u32 {
    let mut m = 0u32;
    for (fi, _) in Family::ALL.iter().enumerate() {
        for h in Hook::ALL {
            let first = match h {
                Hook::Prerouting | Hook::Output => tracks,
                Hook::Forward => tracks && forward,
                Hook::Input | Hook::Postrouting => false,
            };
            if first || counting {
                m |= 1 << (fi * Hook::COUNT + h.index());
            }
        }
        if tracks {
            m |= 0b11 << (MAIN + fi * 2);
        }
    }
    m
}

/// Priority -200: counts the packet and, at the first hook, tracks it.
struct Main;

impl NetHook for Main {
    fn run(rn: &RfwNet, rcu: &Rcu, skb: &mut SkBuff, state: &HookState) -> Verdict {
        if rn.counting() {
            if let Some(f) = Family::from_nfproto(state.pf()) {
                rn.counters
                    .add(f, usize::from(state.hook()), u64::from(skb.len()));
            }
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
