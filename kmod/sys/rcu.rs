// SPDX-License-Identifier: GPL-2.0

//! RCU read-side sections as Rust lifetimes.
//!
//! A reference to a table entry is valid while the RCU read-side section in
//! which it was found lasts: entries are unlinked under a lock and freed only
//! after a grace period. Table lookups take a `&'g Rcu` and return
//! `&'g Entry`, so the borrow checker keeps an entry reference inside its
//! section. [`RcuBox`] is a value published the same way (a namespace's
//! ruleset, its tracking settings). The 6.12 `kernel` crate has no RCU
//! abstraction; this is the smallest one rfw needs.

use core::marker::PhantomData;
use core::ops::Deref;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::prelude::*;

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

/// A heap value published under RCU (C's `__rcu` pointer with
/// `rcu_assign_pointer`, `rcu_dereference` and `synchronize_rcu` + `kfree`):
/// readers get a reference for their read-side section, writers publish a
/// new value and free the one it replaced a grace period later.
///
/// Writers that must not lose each other's changes either serialise under
/// a lock of their own around [`RcuBox::replace`] (the lock is not this
/// type's business: a reader never takes it, and a value is freed only
/// after a grace period whoever holds it), or use [`RcuBox::update`],
/// which retries on a concurrent change.
///
/// # Invariants
///
/// `ptr` is never null and came from `KBox::into_raw`; the value it points
/// to is owned by this box and freed only by [`RcuBox::replace`] or
/// [`RcuBox::update`] after it was unpublished and a grace period passed,
/// or by `drop`.
pub(crate) struct RcuBox<T> {
    ptr: AtomicPtr<T>,
    /// Owns a `T` (drop check); not `Send`/`Sync` by itself (see below).
    _owns: PhantomData<(KBox<T>, *const ())>,
}

// SAFETY: moving the box to another thread moves the `T` it owns.
unsafe impl<T: Send> Send for RcuBox<T> {}
// SAFETY: a shared box hands `&T` to readers on every CPU (`T: Sync`) and
// lets any of them replace and free the value (`T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}

impl<T> RcuBox<T> {
    /// A box publishing `value`.
    pub(crate) fn new(value: KBox<T>) -> Self {
        // INVARIANT: from `KBox::into_raw`, never null.
        RcuBox {
            ptr: AtomicPtr::new(KBox::into_raw(value)),
            _owns: PhantomData,
        }
    }

    /// The value, valid for the read-side section `'g`
    /// (`rcu_dereference`).
    #[inline]
    pub(crate) fn read<'g>(&self, _rcu: &'g Rcu) -> &'g T {
        // Acquire pairs with the publishing Release of `replace`/`update`:
        // the value's contents are visible before its address.
        let p = self.ptr.load(Ordering::Acquire);
        // Never null; a value is freed only a grace period after it was
        // unpublished (invariant), and `'g` is inside a read-side section
        // that began before that.
        // SAFETY: so `p` is valid for `'g`.
        unsafe { &*p }
    }

    /// Publishes `new` (`rcu_assign_pointer`), waits for an expedited
    /// grace period ([`synchronize_expedited`]: a user waits on the
    /// command), then frees the value it replaced. Sleeps: process context
    /// only. Callers that read the value before deciding on `new` serialise
    /// with a lock of their own.
    pub(crate) fn replace(&self, new: KBox<T>) {
        // Release publishes `new`'s contents with its address; Acquire
        // makes the old value's contents ours before we free it.
        let old = self.ptr.swap(KBox::into_raw(new), Ordering::AcqRel);
        synchronize_expedited();
        // Unpublished a grace period ago: no reader is left.
        // SAFETY: `old` came from `KBox::into_raw` and is ours (invariant).
        drop(unsafe { KBox::from_raw(old) });
    }

    /// Read-copy-update without a writer lock: copies the value (under
    /// RCU), applies `f` to the copy (outside RCU: it may sleep), and
    /// publishes it if no other writer published in between, else starts
    /// over on top of theirs. Frees the replaced value after a normal grace
    /// period. Sleeps: process context only.
    pub(crate) fn update(&self, f: impl Fn(&mut T)) -> Result
    where
        T: Copy,
    {
        loop {
            // Copy under RCU, allocate (may sleep) outside it.
            let (cur, copy) = {
                let rcu = RcuGuard::new();
                (self.ptr.load(Ordering::Acquire), *self.read(&rcu))
            };
            let mut new = KBox::new(copy, GFP_KERNEL)?;
            f(&mut new);
            let new = KBox::into_raw(new);
            match self
                .ptr
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(old) => {
                    synchronize();
                    // Swapped out a grace period ago: no reader is left.
                    // SAFETY: `old` came from `KBox::into_raw` (invariant).
                    drop(unsafe { KBox::from_raw(old) });
                    return Ok(());
                }
                Err(_) => {
                    // Another update won; retry on top of it.
                    // SAFETY: `new` came from `KBox::into_raw` just above
                    // and was never published.
                    drop(unsafe { KBox::from_raw(new) });
                }
            }
        }
    }
}

impl<T> Drop for RcuBox<T> {
    fn drop(&mut self) {
        // Owners drop the box only once no reader can reach it (e.g. pernet
        // `exit`, a grace period after the hooks went).
        // SAFETY: `ptr` came from `KBox::into_raw` and is ours (invariant).
        drop(unsafe { KBox::from_raw(*self.ptr.get_mut()) });
    }
}
