// SPDX-License-Identifier: GPL-2.0

//! Data guarded by striped locks: many small values share a fixed array of
//! spinlocks, the stripe chosen by the value's address.
//!
//! The connection table keeps each entry's mutable state this way instead
//! of a spinlock per entry (Linux has one in each `nf_conn`): a stripe
//! costs no memory per entry, and two entries sharing a stripe contend only
//! at the same instant.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::alloc::{flags::GFP_KERNEL, KVVec};
use kernel::prelude::*;

use super::sync::{LockClassKey, SpinLockBh};

/// Lock stripes.
pub(crate) const STRIPES: usize = 1024;

/// Set while a [`StripedLocks`] exists.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// A value only touched under its stripe of the [`StripedLocks`].
pub(crate) struct StripedCell<T>(UnsafeCell<T>);

// SAFETY: the value is only reached under its stripe's lock, which the one
// live `StripedLocks` chooses from the cell's address alone; holders pass
// it from task to task (`T: Send`).
unsafe impl<T: Send> Sync for StripedCell<T> {}

impl<T> StripedCell<T> {
    /// A cell holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        StripedCell(UnsafeCell::new(value))
    }
}

/// [`STRIPES`] spinlocks (taken with bottom halves off) guarding every
/// [`StripedCell`].
///
/// # Invariants
///
/// At most one `StripedLocks` exists at a time (`CLAIMED`), so a cell's
/// stripe is the same lock for every access while it can be reached.
pub(crate) struct StripedLocks {
    locks: KVVec<SpinLockBh<()>>,
}

impl StripedLocks {
    /// The stripes, of lockdep class `class`, named `name`; `EBUSY` if a
    /// `StripedLocks` exists already.
    pub(crate) fn new(name: &'static CStr, class: &'static LockClassKey) -> Result<Self> {
        let mut locks = KVVec::with_capacity(STRIPES, GFP_KERNEL)?;
        for _ in 0..STRIPES {
            locks.push(SpinLockBh::new((), name, class), GFP_KERNEL)?;
        }
        if CLAIMED.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        // INVARIANT: claimed just above; released on drop.
        Ok(StripedLocks { locks })
    }

    /// Runs `f` on the value of `cell` under its stripe.
    #[inline]
    pub(crate) fn with<T, R>(&self, cell: &StripedCell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        let a = cell as *const StripedCell<T> as usize as u64;
        let i = ((a >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize;
        let _g = self.locks[i % STRIPES].lock();
        // The cell's stripe is held, and it is the only lock any access to
        // the cell takes (invariant): no other reference to the value
        // exists until it is released.
        // SAFETY: so this exclusive borrow is the only one.
        f(unsafe { &mut *cell.0.get() })
    }
}

impl Drop for StripedLocks {
    fn drop(&mut self) {
        CLAIMED.store(false, Ordering::Release);
    }
}
