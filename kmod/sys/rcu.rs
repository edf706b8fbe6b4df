// SPDX-License-Identifier: GPL-2.0

//! RCU read-side sections as Rust lifetimes.
//!
//! A reference to a table entry is valid while the RCU read-side section in
//! which it was found lasts: entries are unlinked under a lock and freed only
//! after a grace period. Table lookups take a `&'g Rcu` and return
//! `&'g Entry`, so the borrow checker keeps an entry reference inside its
//! section. The 6.12 `kernel` crate has no RCU abstraction; this is the
//! smallest one rfw needs.

use core::marker::PhantomData;
use core::ops::Deref;

use crate::bindings;

/// Proof of being inside an RCU read-side critical section.
///
/// Not `Send`: a section belongs to one task.
pub(crate) struct Rcu(PhantomData<*mut ()>);

impl Rcu {
    /// A token for a section the caller is already in.
    ///
    /// # Safety
    ///
    /// The caller must be inside an RCU read-side critical section (e.g. a
    /// netfilter hook: `nf_hook_slow` runs hooks under `rcu_read_lock`) that
    /// lasts at least as long as the token and everything borrowed from it.
    pub(crate) unsafe fn assume() -> Rcu {
        Rcu(PhantomData)
    }
}

/// An RCU read-side critical section of our own: `rcu_read_lock` on
/// creation, `rcu_read_unlock` on drop.
pub(crate) struct RcuGuard(Rcu);

impl RcuGuard {
    /// Enters a read-side section.
    pub(crate) fn new() -> RcuGuard {
        // The matching unlock is in `Drop`.
        // SAFETY: `rcu_read_lock` may be called in any context.
        unsafe { bindings::rfw_rcu_read_lock() };
        RcuGuard(Rcu(PhantomData))
    }
}

impl Deref for RcuGuard {
    type Target = Rcu;

    fn deref(&self) -> &Rcu {
        &self.0
    }
}

impl Drop for RcuGuard {
    fn drop(&mut self) {
        // SAFETY: this guard's `new` took the read lock, on this task.
        unsafe { bindings::rfw_rcu_read_unlock() };
    }
}

/// Waits for every RCU read-side section that began before the call.
/// Sleeps: process context only.
pub(crate) fn synchronize() {
    // Callers: work items, netlink commands, namespace teardown, module exit.
    // SAFETY: all of them run in process context.
    unsafe { bindings::synchronize_rcu() };
}

/// [`synchronize`], expedited (`synchronize_rcu_expedited`): for commands a
/// user waits on, such as a ruleset replace, where a normal grace period
/// (tens to hundreds of milliseconds) would make every edit slow. Costs an
/// IPI to each CPU; as `xt_replace_table` -> `synchronize_net` does under
/// RTNL.
pub(crate) fn synchronize_expedited() {
    // Callers: netlink commands, in process context.
    // SAFETY: process context.
    unsafe { bindings::synchronize_rcu_expedited() };
}
