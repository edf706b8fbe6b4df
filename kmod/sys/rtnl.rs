// SPDX-License-Identifier: GPL-2.0

//! The RTNL mutex (`rtnl_lock`), as a token: what only code holding it
//! may touch (the list of devices, per-device state such as the fast
//! path's ingress hooks) sits in an [`RtnlCell`], which lends its value to
//! the holder of an [`Rtnl`].

use core::cell::UnsafeCell;

use crate::bindings;

/// RTNL, held by this thread for the token's life.
///
/// # Invariants
///
/// The thread that has the token holds RTNL while the token lives; if
/// `owned`, the token took it and gives it back when dropped.
pub(crate) struct Rtnl {
    owned: bool,
}

impl Rtnl {
    /// Takes RTNL (sleeps: process context, and no RTNL held already).
    pub(crate) fn lock() -> Rtnl {
        // SAFETY: a plain kernel call; callers are in process context.
        unsafe { bindings::rfw_rtnl_lock() };
        // INVARIANT: taken above, given back in `drop`.
        Rtnl { owned: true }
    }

    /// A token for RTNL that the caller already holds (a netdevice
    /// notifier, which the kernel calls under RTNL).
    ///
    /// # Safety
    ///
    /// The calling thread holds RTNL for the token's whole life, and no
    /// other token of this thread is in use meanwhile (no value of an
    /// [`RtnlCell`] is lent through one).
    pub(crate) unsafe fn assume() -> Rtnl {
        // INVARIANT: the caller's contract.
        Rtnl { owned: false }
    }
}

impl Drop for Rtnl {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: taken in `lock` (type invariant).
            unsafe { bindings::rfw_rtnl_unlock() };
        }
    }
}

/// A value that is only read or written under RTNL.
///
/// # Invariants
///
/// The value is reached only through [`RtnlCell::get`], whose caller holds
/// RTNL and lends its token exclusively for the borrow.
pub(crate) struct RtnlCell<T>(UnsafeCell<T>);

// SAFETY: every access is serialised by RTNL (type invariant), so the
// value may be shared between threads if it may be sent between them.
unsafe impl<T: Send> Sync for RtnlCell<T> {}

impl<T> RtnlCell<T> {
    /// `value`, to be touched under RTNL only.
    pub(crate) const fn new(value: T) -> Self {
        RtnlCell(UnsafeCell::new(value))
    }

    /// The value, for as long as `rtnl` is lent: RTNL excludes every other
    /// thread, and the exclusive borrow of this thread's one token every
    /// other borrow of this thread.
    pub(crate) fn get<'a>(&'a self, _rtnl: &'a mut Rtnl) -> &'a mut T {
        // SAFETY: as above (type invariants of both types).
        unsafe { &mut *self.0.get() }
    }
}
