// SPDX-License-Identifier: GPL-2.0

//! RCU read-side sections as Rust lifetimes.
//!
//! A reference to a table entry is valid while the RCU read-side section in
//! which it was found lasts: entries are unlinked under a lock and freed only
//! after a grace period. Table lookups take a `&'g Rcu` and return
//! `&'g Entry`, so the borrow checker keeps an entry reference inside its
//! section. [`RcuBox`] is a value published the same way (a namespace's
//! ruleset, its tracking settings), whose replaced values are freed by an
//! RCU callback (`call_rcu`) a grace period later; [`CallbackBarrier`]
//! waits for those callbacks before the module goes. The 6.12 `kernel`
//! crate has no RCU abstraction; this is the smallest one rfw needs.

use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::alloc::{flags::GFP_KERNEL_ACCOUNT, Flags, KBox};
use kernel::prelude::*;
use kernel::types::Opaque;

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

/// A value ready to be published in an [`RcuBox`]: the value and the
/// `rcu_head` its deferred free will need, in one allocation (as a C
/// structure embeds its `struct rcu_head`), so that publishing and
/// retiring it cannot fail.
///
/// `repr(C)` with the head first: the head's address is the node's, which
/// is how the RCU callback finds the node again (`container_of` at
/// offset 0).
#[repr(C)]
struct Node<T> {
    head: Opaque<bindings::callback_head>,
    value: T,
}

/// A value allocated for an [`RcuBox`] and not published yet; dropping it
/// frees it.
pub(crate) struct RcuValue<T>(KBox<Node<T>>);

impl<T> RcuValue<T> {
    /// `value` in memory from `flags` (rfw passes `GFP_KERNEL_ACCOUNT` for
    /// what a user's command allocates: charged to the caller's memory
    /// cgroup). Process context for sleeping flags.
    pub(crate) fn new(value: T, flags: Flags) -> Result<Self> {
        Ok(RcuValue(KBox::new(
            Node {
                // `call_rcu` fills it in; nothing reads it before.
                head: Opaque::uninit(),
                value,
            },
            flags,
        )?))
    }
}

/// A heap value published under RCU (C's `__rcu` pointer with
/// `rcu_assign_pointer`, `rcu_dereference` and `call_rcu` + `kfree`):
/// readers get a reference for their read-side section, writers publish a
/// new value, and the one it replaced is dropped by an RCU callback once a
/// grace period has passed. A writer never waits for that grace period:
/// the callback does (as `kfree_rcu` and nf_tables' deferred rule
/// destruction do). So a loop of replaces from any namespace costs RCU
/// callbacks, not one `synchronize_rcu_expedited` (an IPI to every CPU)
/// per replace.
///
/// Writers that must not lose each other's changes either serialise under
/// a lock of their own around [`RcuBox::replace`] (the lock is not this
/// type's business: a reader never takes it, and a value is freed only
/// after a grace period whoever holds it), or use [`RcuBox::update`],
/// which retries on a concurrent change.
///
/// The callback drops the replaced `T` in softirq context (or an RCU
/// callback thread): `T`'s drop must not sleep. Freeing memory from
/// `kfree`, `kvfree` (`vfree` defers itself in interrupt context) and
/// `free_percpu` (callable from atomic context) is fine; so are `Arc`
/// references of such values. And every callback must have run before the
/// module's code goes: see [`CallbackBarrier`].
///
/// # Invariants
///
/// `ptr` is never null and came from `KBox::into_raw` of a `Node<T>`; the
/// node it points to is owned by this box, and a node it stopped pointing
/// to is handed to `call_rcu` ([`RcuBox::replace`], [`RcuBox::update`]) or
/// dropped when the box drops.
pub(crate) struct RcuBox<T> {
    ptr: AtomicPtr<Node<T>>,
    /// Owns a `T` (drop check); not `Send`/`Sync` by itself (see below).
    _owns: PhantomData<(KBox<T>, *const ())>,
}

// SAFETY: moving the box to another thread moves the `T` it owns.
unsafe impl<T: Send> Send for RcuBox<T> {}
// SAFETY: a shared box hands `&T` to readers on every CPU (`T: Sync`) and
// lets any of them replace the value, which the RCU callback then drops on
// another CPU (`T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}

/// The RCU callback of a replaced value: drops its node.
///
/// # Safety
///
/// `head` is the `head` of a `Node<T>` that came from `KBox::into_raw`,
/// was unpublished from its [`RcuBox`] before `call_rcu(head, ..)`, and is
/// not used by anyone else; RCU calls this once, a grace period after
/// `call_rcu`.
unsafe extern "C" fn drop_node<T>(head: *mut bindings::callback_head) {
    // `head` is the first field of the `repr(C)` node: same address.
    let node = head.cast::<Node<T>>();
    // Unpublished a grace period ago: no reader that could have seen it
    // is left, and the box that owned it gave it up to this callback.
    // SAFETY: so the node is ours to drop, once (caller).
    drop(unsafe { KBox::from_raw(node) });
}

impl<T: Send + 'static> RcuBox<T> {
    /// A box publishing `value`.
    pub(crate) fn new(value: RcuValue<T>) -> Self {
        // INVARIANT: from `KBox::into_raw`, never null.
        RcuBox {
            ptr: AtomicPtr::new(KBox::into_raw(value.0)),
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
        // Never null; a node is freed only a grace period after it was
        // unpublished (invariant: by the RCU callback), and `'g` is inside
        // a read-side section that began before that.
        // SAFETY: so `p` is valid for `'g`.
        unsafe { &(*p).value }
    }

    /// Hands the unpublished node `old` to RCU, to be dropped a grace
    /// period from now (`call_rcu`). Any context; does not wait.
    fn retire(old: NonNull<Node<T>>) {
        // SAFETY: `old` came from `KBox::into_raw` (invariant), was
        // unpublished by our caller (readers may still hold it, for at
        // most a grace period), and nothing else will touch it: its
        // `head` is the callback's, which drops the node.
        unsafe {
            bindings::call_rcu(
                core::ptr::addr_of_mut!((*old.as_ptr()).head).cast(),
                Some(drop_node::<T>),
            )
        };
    }

    /// Publishes `new` (`rcu_assign_pointer`); the value it replaced is
    /// dropped a grace period later, by an RCU callback. Does not sleep
    /// or wait. Callers that read the value before deciding on `new`
    /// serialise with a lock of their own.
    pub(crate) fn replace(&self, new: RcuValue<T>) {
        // Release publishes `new`'s contents with its address; Acquire
        // makes the old value's contents ours before we retire it.
        let old = self.ptr.swap(KBox::into_raw(new.0), Ordering::AcqRel);
        if let Some(old) = NonNull::new(old) {
            // Unpublished just above.
            Self::retire(old);
        }
    }

    /// Read-copy-update without a writer lock: copies the value (under
    /// RCU), applies `f` to the copy (outside RCU: it may sleep), and
    /// publishes it if no other writer published in between, else starts
    /// over on top of theirs. The replaced value is dropped a grace period
    /// later, as by [`RcuBox::replace`]. The copy is charged to the
    /// caller's memory cgroup (`GFP_KERNEL_ACCOUNT`). Process context.
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
            let mut new = RcuValue::new(copy, GFP_KERNEL_ACCOUNT)?;
            f(&mut new.0.value);
            let new = KBox::into_raw(new.0);
            match self
                .ptr
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(old) => {
                    if let Some(old) = NonNull::new(old) {
                        // Unpublished by the exchange.
                        Self::retire(old);
                    }
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

/// Waits, when dropped, for every RCU callback queued before (`rcu_barrier`):
/// the values [`RcuBox`] retired are dropped by code of this module, which
/// must not go while one is pending (Documentation/RCU/rcubarrier.rst).
/// The module holds one as its last field, dropped once nothing can queue
/// a callback any more (the netlink family and the namespaces are gone).
pub(crate) struct CallbackBarrier(());

impl CallbackBarrier {
    /// The barrier, armed.
    pub(crate) fn new() -> Self {
        CallbackBarrier(())
    }
}

impl Drop for CallbackBarrier {
    fn drop(&mut self) {
        // Module exit, process context.
        // SAFETY: `rcu_barrier` sleeps; called in process context.
        unsafe { bindings::rcu_barrier() };
    }
}

/// An optional heap value published under RCU: [`RcuBox`] that may be
/// empty, for what only some owners need (an offloaded connection's
/// routes). Readers get `Option<&T>` for their read-side section; a writer
/// publishes into an empty one ([`RcuOption::publish`]) or takes the value
/// out ([`RcuOption::take_if`]), which an RCU callback then drops a grace
/// period later. Publishing and taking are single atomic operations, so
/// writers need no lock: of two publishers one wins and the other gets its
/// value back, and a value is taken (and retired) once.
///
/// # Invariants
///
/// `ptr` is null or came from `KBox::into_raw` of a `Node<T>` that this
/// value owns; a node it stopped pointing to was handed to `call_rcu` by
/// the operation that unpublished it.
pub(crate) struct RcuOption<T> {
    ptr: AtomicPtr<Node<T>>,
    _owns: PhantomData<(KBox<T>, *const ())>,
}

// SAFETY: as `RcuBox`.
unsafe impl<T: Send> Send for RcuOption<T> {}
// SAFETY: as `RcuBox`.
unsafe impl<T: Send + Sync> Sync for RcuOption<T> {}

impl<T: Send + 'static> RcuOption<T> {
    /// An empty one.
    pub(crate) const fn new() -> Self {
        // INVARIANT: null.
        RcuOption {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// The value, if any, valid for the read-side section `'g`.
    #[inline]
    pub(crate) fn read<'g>(&self, _rcu: &'g Rcu) -> Option<&'g T> {
        // Acquire pairs with `publish`'s Release.
        let p = self.ptr.load(Ordering::Acquire);
        // Null, or a node freed only a grace period after it was
        // unpublished (invariant), after `'g`'s section ends.
        // SAFETY: so valid for `'g` when not null.
        unsafe { p.as_ref() }.map(|n| &n.value)
    }

    /// Publishes `v` if none is; else gives it back. Any context.
    pub(crate) fn publish(&self, v: RcuValue<T>) -> core::result::Result<(), RcuValue<T>> {
        let new = KBox::into_raw(v.0);
        match self.ptr.compare_exchange(
            core::ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // INVARIANT: ours now, published.
            Ok(_) => Ok(()),
            // SAFETY: `new` came from `KBox::into_raw` above and was
            // never published.
            Err(_) => Err(RcuValue(unsafe { KBox::from_raw(new) })),
        }
    }

    /// Unpublishes the value if it is `cur` (one a reader found: a value
    /// published since is left alone) and has an RCU callback drop it a
    /// grace period later; true if this call took it. Any context.
    pub(crate) fn take_if(&self, cur: &T) -> bool {
        let want = self.ptr.load(Ordering::Acquire);
        // SAFETY: compared by address only, never dereferenced here.
        if want.is_null() || !core::ptr::eq(unsafe { core::ptr::addr_of!((*want).value) }, cur) {
            return false;
        }
        match self.ptr.compare_exchange(
            want,
            core::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(old) => {
                // SAFETY: non-null (checked above, and the exchange saw it).
                RcuBox::<T>::retire(unsafe { NonNull::new_unchecked(old) });
                true
            }
            Err(_) => false,
        }
    }
}

impl<T> Drop for RcuOption<T> {
    fn drop(&mut self) {
        // Owners drop it only once no reader can reach it (an entry is
        // freed a grace period after it was unlinked).
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: from `KBox::into_raw` and ours (invariant).
            drop(unsafe { KBox::from_raw(p) });
        }
    }
}

/// A heap value set at most once and then fixed until its owner drops:
/// readers need no lock and no RCU beyond their hold on the owner.
///
/// # Invariants
///
/// `ptr` is null or came from `KBox::into_raw` of a `T` this value owns,
/// and once non-null never changes until drop.
pub(crate) struct SetOnce<T> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<KBox<T>>,
}

// SAFETY: owns a `T` (moving it moves the `T`).
unsafe impl<T: Send> Send for SetOnce<T> {}
// SAFETY: hands `&T` to any CPU; a `T` set by one CPU is dropped by another.
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    /// An empty one.
    pub(crate) const fn new() -> Self {
        SetOnce {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// The value, once set.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        // Acquire pairs with `set`'s Release.
        let p = self.ptr.load(Ordering::Acquire);
        // Fixed once set, freed only when `self` drops (invariant), which
        // the borrow of `self` keeps away.
        // SAFETY: so valid for the borrow when not null.
        unsafe { p.as_ref() }
    }

    /// Sets the value unless one is set already (then `v` comes back).
    pub(crate) fn set(&self, v: KBox<T>) -> core::result::Result<(), KBox<T>> {
        let new = KBox::into_raw(v);
        match self.ptr.compare_exchange(
            core::ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // INVARIANT: set once, from `into_raw`.
            Ok(_) => Ok(()),
            // SAFETY: from `into_raw` above, never published.
            Err(_) => Err(unsafe { KBox::from_raw(new) }),
        }
    }
}

impl<T> Drop for SetOnce<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: ours (invariant).
            drop(unsafe { KBox::from_raw(p) });
        }
    }
}
