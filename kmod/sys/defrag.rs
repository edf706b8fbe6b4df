// SPDX-License-Identifier: GPL-2.0

//! IP defragmentation before rfw's hooks, per namespace: the kernel's
//! nf_defrag_ipv4 and nf_defrag_ipv6 modules (nf_defrag_ipv4.c,
//! nf_defrag_ipv6_hooks.c), which nf_conntrack turns on the same way
//! (`nf_ct_netns_get` -> `nf_defrag_ipv4_enable`).
//!
//! `nf_defrag_ipv{4,6}_enable(net)` registers the family's defrag hooks in
//! `net` at PRE_ROUTING and LOCAL_OUT, priority -400
//! (`NF_IP_PRI_CONNTRACK_DEFRAG`), before rfw's -200 hooks, on the first
//! call; the kernel counts the calls per namespace
//! (`net->nf.defrag_ipv4_users`) and `nf_defrag_ipv{4,6}_disable(net)`
//! unregisters the hooks when the count drops to zero. Fragments are then
//! gathered (stolen) at -400 and the reassembled datagram goes on through
//! the hooks as one skb; the output path fragments it again
//! (`ip_do_fragment`, `ip6_fragment`, to the size of the largest fragment
//! received: `frag_max_size`).
//!
//! A namespace's [`NetDefrag`] holds at most one reference per family, so
//! rfw's calls balance exactly whatever other users (nf_conntrack,
//! nft_tproxy, ...) do in the same namespace. Calling the exported
//! functions makes rfw.ko depend on both modules: modprobe loads them.

use core::sync::atomic::{AtomicBool, Ordering};

use conntrack::Family;
use kernel::error::to_result;
use kernel::prelude::*;

use super::pernet::NetRef;
use super::sync::{LockClassKey, Mutex};
use crate::bindings;

/// The lockdep class of [`DEFRAG_MUTEX`].
static DEFRAG_MUTEX_CLASS: LockClassKey = LockClassKey::new();
/// Serialises every namespace's switches, so that a namespace's
/// `NetDefrag::held` and the kernel's counts change together (the kernel
/// takes its own `defrag4_mutex` inside each call).
static DEFRAG_MUTEX: Mutex<()> = Mutex::new((), c"rfw_defrag_mutex", &DEFRAG_MUTEX_CLASS);

/// One family's defragmentation enabled in one namespace: one reference in
/// the kernel's per-namespace count, given back on drop.
///
/// # Invariants
///
/// `nf_defrag_ipv{4,6}_enable(net)` (after `family`) succeeded for this
/// value, and its reference has not been given back.
struct DefragRef<'a> {
    net: NetRef<'a>,
    family: Family,
}

impl<'a> DefragRef<'a> {
    /// Takes a reference (process context: takes the kernel's mutex and
    /// may register hooks).
    fn enable(net: NetRef<'a>, family: Family) -> Result<Self> {
        let n = net.as_ptr();
        // `net` is live (`NetRef` invariant); the functions take their own
        // lock and may sleep: we are in process context (callers).
        // SAFETY: plain calls with a live namespace.
        let r = unsafe {
            match family {
                Family::Ipv4 => bindings::nf_defrag_ipv4_enable(n),
                Family::Ipv6 => bindings::nf_defrag_ipv6_enable(n),
            }
        };
        to_result(r)?;
        // INVARIANT: the enable succeeded.
        Ok(DefragRef { net, family })
    }

    /// A reference the namespace holds (recorded in `NetDefrag::held`),
    /// taken back to be given back.
    ///
    /// # Safety
    ///
    /// An earlier [`DefragRef::enable`] for `net` and `family` must have
    /// been kept ([`DefragRef::keep`]) and not adopted since.
    unsafe fn adopt(net: NetRef<'a>, family: Family) -> Self {
        // INVARIANT: the caller's contract.
        DefragRef { net, family }
    }

    /// Leaves the reference with the namespace (its `NetDefrag::held`
    /// records it).
    fn keep(self) {
        core::mem::forget(self);
    }
}

impl Drop for DefragRef<'_> {
    fn drop(&mut self) {
        let n = self.net.as_ptr();
        // The reference is ours to give back (type invariant); `net` is
        // live; process context (the value is only made and dropped there).
        // SAFETY: one disable for one successful enable.
        unsafe {
            match self.family {
                Family::Ipv4 => bindings::nf_defrag_ipv4_disable(n),
                Family::Ipv6 => bindings::nf_defrag_ipv6_disable(n),
            }
        }
    }
}

/// Whether rfw holds IPv4 and IPv6 defragmentation in one namespace (a
/// part of its `RfwNet`).
///
/// # Invariants
///
/// `held` is true exactly when a [`DefragRef`] for each family was kept
/// for this namespace and not adopted since; it changes only under
/// [`DEFRAG_MUTEX`].
pub(crate) struct NetDefrag {
    held: AtomicBool,
}

impl NetDefrag {
    /// Nothing held.
    pub(crate) const fn new() -> Self {
        NetDefrag {
            held: AtomicBool::new(false),
        }
    }

    /// Holds defragmentation in `net` (the namespace `self` belongs to)
    /// when `want()` says so, else gives it back. `want` runs under the
    /// mutex, after every earlier switch, so it must read the namespace's
    /// state then: two callers that change that state and switch
    /// concurrently leave the switch matching the last state. Process
    /// context. Errors of the kernel's enable (`ENOMEM`) leave nothing
    /// held.
    pub(crate) fn switch(&self, net: NetRef<'_>, want: impl FnOnce() -> bool) -> Result {
        let _guard = DEFRAG_MUTEX.lock();
        let held = self.held.load(Ordering::Relaxed);
        match (want(), held) {
            (true, false) => {
                let v4 = DefragRef::enable(net, Family::Ipv4)?;
                // On failure `v4` is given back as it drops.
                let v6 = DefragRef::enable(net, Family::Ipv6)?;
                v4.keep();
                v6.keep();
                // INVARIANT: both references kept, under the mutex.
                self.held.store(true, Ordering::Relaxed);
            }
            (false, true) => self.release_locked(net),
            _ => {}
        }
        Ok(())
    }

    /// Gives back what is held in `net` (namespace exit).
    pub(crate) fn release(&self, net: NetRef<'_>) {
        let _guard = DEFRAG_MUTEX.lock();
        if self.held.load(Ordering::Relaxed) {
            self.release_locked(net);
        }
    }

    /// Gives back both references; `held` is true and the mutex held.
    fn release_locked(&self, net: NetRef<'_>) {
        // INVARIANT: false before the references go, under the mutex.
        self.held.store(false, Ordering::Relaxed);
        for f in Family::ALL {
            // `held` was true: one reference per family was kept and has
            // not been adopted since (it is false now).
            // SAFETY: so this adopts each once.
            drop(unsafe { DefragRef::adopt(net, f) });
        }
    }
}
