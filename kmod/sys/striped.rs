// SPDX-License-Identifier: GPL-2.0

//! Data guarded by striped locks: many small values share a fixed array of
//! spinlocks, the stripe chosen by the value's address.
//!
//! The connection table keeps each entry's mutable state this way instead
//! of a spinlock per entry (Linux has one in each `nf_conn`): a stripe
//! costs no memory per entry, and two entries sharing a stripe contend only
//! at the same instant. A [`SealedCell`] holds, beside such a value, a key
//! that changes under the same stripe until it is sealed and is read
//! without any lock from then on (an entry's reply tuple, which NAT writes
//! before the connection is confirmed), a part fixed at creation, a part
//! anyone may change at any time (atomics: counters, the deadline), and a
//! flags word, one bit of which is the seal (an entry's status bits,
//! CONFIRMED the seal).

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use kernel::alloc::{flags::GFP_KERNEL, KVVec};
use kernel::prelude::*;

use super::sync::{LockClassKey, SpinLockBh};

/// Lock stripes.
pub(crate) const STRIPES: usize = 1024;

/// Set while a [`StripedLocks`] exists.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// A flags word (16 bits, atomic) in which bit `SEAL` says that a
/// [`SealedCell`]'s late part is sealed. Only [`StripedLocks::seal`] sets
/// that bit; [`Word::set_bits`] and [`Word::clear_bits`] change the others, with
/// atomic operations and no lock (an entry's status bits).
#[repr(transparent)]
pub(crate) struct Word<const SEAL: u16>(AtomicU16);

impl<const SEAL: u16> Word<SEAL> {
    /// The bits now.
    #[inline]
    pub(crate) fn bits(&self) -> u16 {
        self.0.load(Ordering::Acquire)
    }

    /// Sets the bits of `mask` but `SEAL`; returns the bits before.
    #[inline]
    pub(crate) fn set_bits(&self, mask: u16) -> u16 {
        self.0.fetch_or(mask & !SEAL, Ordering::AcqRel)
    }

    /// Clears the bits of `mask` but `SEAL`.
    #[inline]
    pub(crate) fn clear_bits(&self, mask: u16) {
        self.0.fetch_and(!(mask & !SEAL), Ordering::AcqRel);
    }
}

/// A value only touched under its stripe of the [`StripedLocks`], with a
/// key in two parts: `fixed`, set at creation and read by anyone at any
/// time, and `late`, which may change under the stripe until it is sealed
/// ([`StripedLocks::seal`]) and never after, when anyone may read it
/// without the lock ([`SealedCell::sealed`]). Beside them, `shared`, which
/// anyone reads and writes at any time (atomics), and a flags word whose
/// bit `SEAL` records the seal.
///
/// # Invariants
///
/// * `value` is only reached under the cell's stripe.
/// * `late` is written only under the stripe while bit `SEAL` of `word` is
///   clear; that bit goes from clear to set once, under the stripe, with
///   release ordering, and never back ([`Word`] cannot change it). `late`
///   is read under the stripe, or without it after an acquire load of
///   `word` saw the bit set.
pub(crate) struct SealedCell<F, K, S, T, const SEAL: u16> {
    fixed: F,
    word: Word<SEAL>,
    late: UnsafeCell<K>,
    shared: S,
    value: UnsafeCell<T>,
}

// SAFETY: `value` and an unsealed `late` are only reached under the
// cell's stripe, which the one live `StripedLocks` chooses from the cell's
// address; a sealed `late` and `fixed` are only read (`K: Sync`,
// `F: Sync`), `shared` is `Sync` itself, `word` atomic. Holders pass the
// values from task to task (`Send`).
unsafe impl<F: Sync, K: Send + Sync, S: Sync, T: Send, const SEAL: u16> Sync
    for SealedCell<F, K, S, T, SEAL>
{
}

impl<F, K, S, T, const SEAL: u16> SealedCell<F, K, S, T, SEAL> {
    /// A cell, not sealed, its flags word holding `bits` (but `SEAL`).
    pub(crate) const fn new(fixed: F, bits: u16, late: K, shared: S, value: T) -> Self {
        SealedCell {
            fixed,
            word: Word(AtomicU16::new(bits & !SEAL)),
            late: UnsafeCell::new(late),
            shared,
            value: UnsafeCell::new(value),
        }
    }

    /// The fixed part.
    #[inline]
    pub(crate) fn fixed(&self) -> &F {
        &self.fixed
    }

    /// The shared part.
    #[inline]
    pub(crate) fn shared(&self) -> &S {
        &self.shared
    }

    /// The flags word.
    #[inline]
    pub(crate) fn word(&self) -> &Word<SEAL> {
        &self.word
    }

    /// The late part, once sealed (no lock); `None` before.
    #[inline]
    pub(crate) fn sealed(&self) -> Option<&K> {
        if self.word.bits() & SEAL != 0 {
            // Sealed: `late` is never written again, and every write to
            // it happened before the release that set the bit, which this
            // acquire load saw (later atomic operations on the word
            // continue its release sequence).
            // SAFETY: so shared references to it never alias a writer.
            Some(unsafe { &*self.late.get() })
        } else {
            None
        }
    }

    fn stripe_addr(&self) -> usize {
        self as *const Self as usize
    }
}

/// [`STRIPES`] spinlocks (taken with bottom halves off) guarding every
/// [`SealedCell`].
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

    /// The stripe of the cell at `addr`.
    #[inline]
    fn stripe(&self, addr: usize) -> &SpinLockBh<()> {
        let a = addr as u64;
        let i = ((a >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize;
        &self.locks[i % STRIPES]
    }

    /// Runs `f` on the late part and the value of `cell` under its stripe.
    #[inline]
    pub(crate) fn with_locked<F, K, S, T, R, const SEAL: u16>(
        &self,
        cell: &SealedCell<F, K, S, T, SEAL>,
        f: impl FnOnce(&K, &mut T) -> R,
    ) -> R {
        let _g = self.stripe(cell.stripe_addr()).lock();
        // The stripe is held: `value` has no other reference (invariant),
        // and `late` is written by nobody else now (only under the
        // stripe) and not by `f` (shared).
        // SAFETY: so these borrows alias nothing that writes.
        let (late, value) = unsafe { (&*cell.late.get(), &mut *cell.value.get()) };
        f(late, value)
    }

    /// Runs `f` with the late part writable, under the stripe, unless the
    /// cell is sealed (`None`).
    #[inline]
    pub(crate) fn with_unsealed<F, K, S, T, R, const SEAL: u16>(
        &self,
        cell: &SealedCell<F, K, S, T, SEAL>,
        f: impl FnOnce(&mut K, &mut T) -> R,
    ) -> Option<R> {
        let _g = self.stripe(cell.stripe_addr()).lock();
        if cell.word.0.load(Ordering::Relaxed) & SEAL != 0 {
            return None;
        }
        // Not sealed and the stripe held: nobody else reads or writes
        // `late` or `value` now (invariants), and no lock-free reader
        // reads `late` before it is sealed.
        // SAFETY: so these exclusive borrows are the only ones.
        let (late, value) = unsafe { (&mut *cell.late.get(), &mut *cell.value.get()) };
        Some(f(late, value))
    }

    /// Seals `cell` if `f`, run under the stripe on the late part and the
    /// value, answers `Some`; returns that answer. `None` when `f` refused
    /// or the cell was sealed already (then `f` is not run).
    #[inline]
    pub(crate) fn seal<F, K, S, T, R, const SEAL: u16>(
        &self,
        cell: &SealedCell<F, K, S, T, SEAL>,
        f: impl FnOnce(&K, &mut T) -> Option<R>,
    ) -> Option<R> {
        let _g = self.stripe(cell.stripe_addr()).lock();
        if cell.word.0.load(Ordering::Relaxed) & SEAL != 0 {
            return None;
        }
        // As in `with_locked`: the stripe is held, `late` only read.
        // SAFETY: so these borrows alias nothing that writes.
        let (late, value) = unsafe { (&*cell.late.get(), &mut *cell.value.get()) };
        let r = f(late, value)?;
        // INVARIANT: once, under the stripe, after the last write.
        cell.word.0.fetch_or(SEAL, Ordering::Release);
        Some(r)
    }
}

impl Drop for StripedLocks {
    fn drop(&mut self) {
        CLAIMED.store(false, Ordering::Release);
    }
}
