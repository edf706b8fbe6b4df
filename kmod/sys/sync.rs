// SPDX-License-Identifier: GPL-2.0

//! Locks: a `spinlock_t` taken with bottom halves disabled ([`SpinLockBh`]),
//! a `struct mutex` in static or pinned heap memory ([`Mutex`]), and bottom
//! halves disabled on their own ([`BhGuard`]).
//!
//! rfw's packet path runs in softirq context and in process context alike
//! (LOCAL_OUT), so every spinlock rfw takes is taken with bottom halves off,
//! as `spin_lock_bh` does; the 6.12 `kernel::sync::SpinLock` has no `_bh`
//! backend. Each lock is visible to lockdep under the class of a static
//! [`LockClassKey`] given where it is created (one per lock site or lock
//! array, as `spin_lock_init`'s hidden `static struct lock_class_key` is),
//! and released by its guard's `Drop`.
//!
//! `kernel::sync::SpinLock` requires pinning, conservatively ("in case
//! some architecture uses self-references now or in the future",
//! `rust/kernel/sync/lock.rs`). A [`SpinLockBh`] does not, and may move
//! while nobody holds it: a 6.12 `spinlock_t` holds no pointer to
//! itself in any configuration (the lock word; with `DEBUG_SPINLOCK` a
//! magic, an owner CPU and an owner task; with lockdep a `lockdep_map`,
//! which points to its class key, its name and its classes; with
//! `PREEMPT_RT` an `rt_mutex_base`, whose empty waiter tree is two null
//! pointers), and lockdep knows a lock instance by address only while it
//! is held. A held lock cannot move: its guard borrows it. A `struct mutex`
//! does point to itself (its wait list), so [`Mutex`] is only ever used in
//! place: through `&'static` (a static) or `Pin<&Mutex>` (a pinned box).

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::sync::atomic::{AtomicU8, Ordering};

use kernel::types::Opaque;

use crate::bindings;

/// A lockdep lock class (C's `struct lock_class_key`), for a `static`.
///
/// Lockdep accepts a class key only in static memory; a key elsewhere makes
/// it warn and turn itself off (it is never undefined behaviour), so the
/// locks here take `&'static LockClassKey`, and every key is meant to be a
/// `static` of its own.
#[repr(transparent)]
pub(crate) struct LockClassKey(Opaque<bindings::lock_class_key>);

// SAFETY: a `lock_class_key` is only used by lockdep, which serialises its
// own accesses; Rust never reads or writes it.
unsafe impl Sync for LockClassKey {}

impl LockClassKey {
    /// A key for a `static`. Lockdep expects a static key's memory as the
    /// loader leaves it (as `kernel::static_lock_class!` does).
    pub(crate) const fn new() -> Self {
        LockClassKey(Opaque::uninit())
    }

    fn as_ptr(&self) -> *mut bindings::lock_class_key {
        self.0.get()
    }
}

/// The lockdep subclass of the second lock of one class held at once
/// (`SINGLE_DEPTH_NESTING`).
pub(crate) const SINGLE_DEPTH_NESTING: u32 = 1;

/// Bottom halves disabled on this CPU (`local_bh_disable`) for as long as
/// the guard lives; `local_bh_enable` on drop, which runs softirqs that
/// became pending. Keeps the task on this CPU, too. Not for hard-IRQ or NMI
/// context.
pub(crate) struct BhGuard(PhantomData<*mut ()>);

impl BhGuard {
    /// Disables bottom halves.
    #[inline]
    pub(crate) fn new() -> Self {
        // SAFETY: `local_bh_disable` may be called from process and softirq
        // context (the only ones rfw runs in); undone in `drop`.
        unsafe { bindings::rfw_local_bh_disable() };
        BhGuard(PhantomData)
    }
}

impl Drop for BhGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `new` disabled bottom halves on this CPU (the guard is
        // not `Send`, so it is dropped by the same task, still on this CPU).
        unsafe { bindings::rfw_local_bh_enable() };
    }
}

/// A spinlock and the data it protects, always taken with bottom halves
/// disabled (`spin_lock_bh`).
///
/// A lock may also guard data outside it (`SpinLockBh<()>`, as the
/// connection table's lock stripes do); several locks of one class are then
/// taken in a fixed order, the later ones with [`SpinLockBh::lock_nested`].
///
/// # Invariants
///
/// `lock` was initialised by `spin_lock_init` (through `rfw_spin_lock_init`)
/// with a static class key and a static name. `data` is only accessed
/// through a guard, that is by the holder of `lock`.
pub(crate) struct SpinLockBh<T: ?Sized> {
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock can be sent to another task if its data can.
unsafe impl<T: ?Sized + Send> Send for SpinLockBh<T> {}
// SAFETY: the lock serialises every access to its data, so sharing it is
// sending the data from holder to holder.
unsafe impl<T: ?Sized + Send> Sync for SpinLockBh<T> {}

impl<T> SpinLockBh<T> {
    /// An unlocked lock of lockdep class `key`, named `name` in lockdep's
    /// reports, holding `data`.
    pub(crate) fn new(data: T, name: &'static CStr, key: &'static LockClassKey) -> Self {
        let this = SpinLockBh {
            lock: Opaque::uninit(),
            data: UnsafeCell::new(data),
        };
        // SAFETY: `this.lock` is ours and not shared yet; `name` and `key`
        // outlive the lock.
        unsafe { bindings::rfw_spin_lock_init(this.lock.get(), name.as_ptr(), key.as_ptr()) };
        // INVARIANT: initialised just above. Returning it moves it, which
        // an unlocked `spinlock_t` allows (see the module docs).
        this
    }
}

impl<T: ?Sized> SpinLockBh<T> {
    /// Disables bottom halves and takes the lock (`spin_lock_bh`).
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        // SAFETY: the lock is initialised (type invariant); `Guard::drop`
        // releases it.
        unsafe { bindings::rfw_spin_lock_bh(self.lock.get()) };
        // INVARIANT: the lock is held, with bottom halves disabled.
        Guard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock if it is free (`spin_trylock_bh`): `None`, with
    /// bottom halves as they were, if another context holds it.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        // SAFETY: the lock is initialised (type invariant); on success
        // `Guard::drop` releases it, on failure nothing is held.
        if unsafe { bindings::rfw_spin_trylock_bh(self.lock.get()) } == 0 {
            return None;
        }
        // INVARIANT: the lock is held, with bottom halves disabled.
        Some(Guard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the lock while `outer`, a lock of the same class, is held and
    /// has bottom halves disabled (`spin_lock_nested`): lockdep is told
    /// this is nesting level `subclass` of the class (1 to 7), not a
    /// recursive lock. The caller takes the locks of one class in an order
    /// that is the same everywhere (for example by index), and drops the
    /// nested guard before `outer`, whose release re-enables bottom halves.
    #[inline]
    pub(crate) fn lock_nested<U: ?Sized>(
        &self,
        _outer: &Guard<'_, U>,
        subclass: u32,
    ) -> NestedGuard<'_, T> {
        // `_outer` is held, so bottom halves are off on this CPU.
        // SAFETY: so `spin_lock_nested` is `spin_lock_bh` without its
        // `local_bh_disable`, on an initialised lock (type invariant);
        // `NestedGuard::drop` releases it.
        unsafe { bindings::rfw_spin_lock_nested(self.lock.get(), subclass) };
        // INVARIANT: the lock is held.
        NestedGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

/// A held [`SpinLockBh`]: gives access to its data; on drop, releases the
/// lock and re-enables bottom halves (`spin_unlock_bh`).
///
/// # Invariants
///
/// `lock` is held by this task, which took it with bottom halves disabled.
#[must_use = "the lock is released at once when the guard is not kept"]
pub(crate) struct Guard<'a, T: ?Sized> {
    lock: &'a SpinLockBh<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T: ?Sized> Deref for Guard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the lock is held (type invariant), so no other reference
        // to the data is in use.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for Guard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the lock is held by this task (type invariant, and the
        // guard is not `Send`), taken with `spin_lock_bh` or
        // `spin_trylock_bh`.
        unsafe { bindings::rfw_spin_unlock_bh(self.lock.lock.get()) };
    }
}

/// A [`SpinLockBh`] taken with [`SpinLockBh::lock_nested`] under another
/// guard: on drop, releases the lock and leaves bottom halves to the outer
/// guard (`spin_unlock`).
///
/// # Invariants
///
/// `lock` is held by this task, which took it with `spin_lock_nested`.
#[must_use = "the lock is released at once when the guard is not kept"]
pub(crate) struct NestedGuard<'a, T: ?Sized> {
    lock: &'a SpinLockBh<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T: ?Sized> Deref for NestedGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the lock is held (type invariant).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for NestedGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held (type invariant); `&mut self` makes this
        // borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for NestedGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: held by this task since `lock_nested` (type invariant).
        unsafe { bindings::rfw_spin_unlock(self.lock.lock.get()) };
    }
}

const MUTEX_UNINIT: u8 = 0;
const MUTEX_INITIALISING: u8 = 1;
const MUTEX_READY: u8 = 2;

/// A `struct mutex` and the data it protects, for a `static` (C's
/// `DEFINE_MUTEX`) or a pinned box (a mutex in a C structure, initialised
/// with `mutex_init`). Taking it may sleep: process context only.
///
/// The `struct mutex` is initialised in place (`__mutex_init`) by the
/// first lock; until then it holds nothing that points to itself, so the
/// value may move. A static never moves; a
/// pinned one ([`Mutex::lock_pinned`]) does not move until it is dropped,
/// and a guard borrows it, so it cannot be dropped while held. Dropping an
/// unheld `struct mutex` needs nothing (`mutex_destroy` only poisons it
/// for `DEBUG_MUTEXES`).
///
/// # Invariants
///
/// Once `state` is `MUTEX_READY`, `mutex` is initialised with `key` and
/// `name`, and the value does not move any more. `data` is only accessed
/// through a guard, by the holder.
pub(crate) struct Mutex<T> {
    mutex: Opaque<bindings::mutex>,
    state: AtomicU8,
    name: &'static CStr,
    key: &'static LockClassKey,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex serialises every access to its data, so sharing it is
// sending the data from holder to holder.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: a `struct mutex` is not tied to the task that initialised it
// (any task may take it), and an owned `Mutex` is not held by anyone (a
// guard borrows it), so it may go to another task with its data.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// A mutex of lockdep class `key`, named `name`, holding `data`; not
    /// initialised before its first lock.
    pub(crate) const fn new(data: T, name: &'static CStr, key: &'static LockClassKey) -> Self {
        Mutex {
            mutex: Opaque::uninit(),
            state: AtomicU8::new(MUTEX_UNINIT),
            name,
            key,
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the mutex (`mutex_lock`; sleeps while another task holds it).
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, T> {
        Pin::static_ref(self).lock_pinned()
    }

    /// Initialises the mutex in place, once; later calls return at once.
    fn init_pinned(self: Pin<&Self>) {
        let this = self.get_ref();
        loop {
            match this.state.compare_exchange(
                MUTEX_UNINIT,
                MUTEX_INITIALISING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(MUTEX_READY) => return,
                // Another task is initialising it: a few instructions.
                Err(_) => core::hint::spin_loop(),
            }
        }
        // The state moved from `MUTEX_UNINIT` to `MUTEX_INITIALISING` here:
        // no other task touches `mutex` until it reads `MUTEX_READY`, and
        // the pin means it does not move until it is dropped.
        // SAFETY: so it is initialised in place, once; `name` and `key` are static.
        unsafe {
            bindings::rfw_mutex_init(this.mutex.get(), this.name.as_ptr(), this.key.as_ptr())
        };
        // INVARIANT: initialised just above; pinned from now on.
        this.state.store(MUTEX_READY, Ordering::Release);
    }

    /// [`Mutex::lock`] for a mutex that is pinned, not static: held for
    /// as long as the guard borrows it.
    pub(crate) fn lock_pinned(self: Pin<&Self>) -> MutexGuard<'_, T> {
        if self.state.load(Ordering::Acquire) != MUTEX_READY {
            self.init_pinned();
        }
        let this = self.get_ref();
        // SAFETY: the mutex is initialised (`MUTEX_READY`, type invariant)
        // and pinned; callers are in process context; released by
        // `MutexGuard::drop`.
        unsafe { bindings::rfw_mutex_lock(this.mutex.get()) };
        // INVARIANT: the mutex is held.
        MutexGuard {
            mutex: this,
            _not_send: PhantomData,
        }
    }
}

/// A held [`Mutex`]: gives access to its data, releases it on drop.
///
/// # Invariants
///
/// `mutex` is initialised and held by this task.
#[must_use = "the mutex is released at once when the guard is not kept"]
pub(crate) struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mutex is held (type invariant).
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the mutex is held (type invariant); `&mut self` makes
        // this borrow unique.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: held by this task (type invariant; the guard is not `Send`).
        unsafe { bindings::mutex_unlock(self.mutex.mutex.get()) };
    }
}
