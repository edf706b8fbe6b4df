// SPDX-License-Identifier: GPL-2.0

//! A value created at module init and freed at module exit, reachable from
//! every callback in between (the connection table).
//!
//! The kernel calls rfw's hooks, netlink commands, pernet callbacks and work
//! items without a context pointer to the module's data, so the data they
//! share sits behind a static. The module's registrations are ordered so
//! that the value is published before any of those callers is registered,
//! and freed only after all of them are unregistered: that ordering is what
//! lets [`Global::get`] hand out a `'static` reference (see
//! [`Published`]).

use core::pin::Pin;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::alloc::KBox;
use kernel::prelude::*;

/// A static slot for one pinned, boxed value.
///
/// # Invariants
///
/// `ptr` is null or comes from `KBox::into_raw` of a pinned box owned by
/// the live [`Published`] handle of this slot.
pub(crate) struct Global<T> {
    ptr: AtomicPtr<T>,
}

// SAFETY: the slot hands out `&T` to any task, which `T: Sync` allows; the
// value is dropped by the task that drops the handle (`T: Send`).
unsafe impl<T: Send + Sync> Sync for Global<T> {}

impl<T: Send + Sync + 'static> Global<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Global {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Publishes `value` for as long as the returned handle lives; `EBUSY`
    /// if the slot holds a value already.
    pub(crate) fn publish(&'static self, value: Pin<KBox<T>>) -> Result<Published<T>> {
        // SAFETY: the box is only turned back into a pinned box (in
        // `Published::drop`), so its contents never move.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(value) });
        // Release: a reader that sees the pointer sees the whole value.
        match self.ptr.compare_exchange(
            core::ptr::null_mut(),
            raw,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            // INVARIANT: the handle owns the box now.
            Ok(_) => Ok(Published { slot: self }),
            Err(_) => {
                // SAFETY: `raw` came from `KBox::into_raw` above and was not
                // published.
                drop(unsafe { KBox::from_raw(raw) });
                Err(EBUSY)
            }
        }
    }

    /// The published value.
    ///
    /// Callers run between the value's publication and its handle's drop
    /// (see the module docs); a call outside that window is a bug in the
    /// module's registration order and panics rather than read freed
    /// memory.
    #[inline]
    pub(crate) fn get(&self) -> &'static T {
        let p = self.ptr.load(Ordering::Acquire);
        assert!(!p.is_null(), "rfw: module global used outside init..exit");
        // `p` is the live box of the handle (invariant), which is dropped
        // only after every caller of `get` is gone (module registration
        // order, see `Published`).
        // SAFETY: so the value outlives every reference handed out.
        unsafe { &*p }
    }
}

/// Ownership of a [`Global`]'s value: dropping it unpublishes and frees the
/// value.
///
/// Drop it only once nothing that calls [`Global::get`] can run any more:
/// at module exit, after every registration whose callbacks read the
/// global (rfw's module struct drops it last).
pub(crate) struct Published<T: Send + Sync + 'static> {
    slot: &'static Global<T>,
}

impl<T: Send + Sync + 'static> Drop for Published<T> {
    fn drop(&mut self) {
        let p = self.slot.ptr.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if p.is_null() {
            return;
        }
        // `p` came from a pinned `KBox` in `publish` (invariant) and nothing
        // can reach it any more (this handle's contract).
        // SAFETY: so it is ours to drop, pinned as it was.
        drop(unsafe { Pin::new_unchecked(KBox::from_raw(p)) });
    }
}
