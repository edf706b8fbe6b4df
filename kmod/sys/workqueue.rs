// SPDX-License-Identifier: GPL-2.0

//! Delayed work items (`include/linux/workqueue.h`): a `struct
//! delayed_work` embedded in the value whose method it runs.
//!
//! As in Rust-for-Linux's `kernel::workqueue` (`HasWork`, `impl_has_work!`),
//! the work item is a field of its owner, and the C callback steps back from
//! the field to the owner (`container_of`) and calls [`WorkItem::run`] on it.
//! Unlike there, the owner is not reference-counted: it is a value that
//! stays in place for its whole life (the connection table in its box, a
//! namespace's state in its `net_generic` area), proved by a pinned
//! reference when the work is initialised, and the work is cancelled before
//! the owner goes (see [`HasDelayedWork`]).
//!
//! Every item runs on `system_power_efficient_wq`, as rfw's collector and
//! flushes always did: periodic housekeeping that need not wake an idle CPU.

use core::marker::PhantomData;
use core::mem::offset_of;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::types::Opaque;

use crate::bindings;

/// A value whose work item runs [`WorkItem::run`] on it, in process context.
pub(crate) trait WorkItem: Sync {
    /// The work, run by a kernel worker thread (may sleep).
    fn run(&self);
}

/// A [`WorkItem`] that holds its [`DelayedWork`] at a fixed offset.
///
/// Implemented by [`impl_has_delayed_work!`] only.
///
/// # Safety
///
/// `OFFSET` is the byte offset of a `DelayedWork<Self>` inside `Self`, and
/// `Self` cancels that work ([`DelayedWork::cancel_sync`]) before it drops
/// any other part of itself, so that a running callback never sees a value
/// that is being dropped. (The work's own `Drop` cancels it too, which
/// covers an owner whose only part the callback reads is the work.)
pub(crate) unsafe trait HasDelayedWork: WorkItem + Sized {
    /// Where the work is inside `Self`.
    const OFFSET: usize;
}

/// Declares which field of a type is the [`DelayedWork`] that runs its
/// [`WorkItem::run`]: `impl_has_delayed_work!(Owner, field.path)`.
///
/// The invoker promises what [`HasDelayedWork`] asks: the owner cancels the
/// work before dropping anything else (the work's own `Drop` only cancels
/// it once the fields declared before it are gone). The field's type is
/// checked to be `DelayedWork<Owner>`.
macro_rules! impl_has_delayed_work {
    ($owner:ty, $($field:ident).+) => {
        // SAFETY: `OFFSET` is the offset of the field named, which the
        // function below checks to be a `DelayedWork<$owner>`; the invoker
        // cancels it before dropping the owner (see the macro's docs).
        // The impl expands where the macro is invoked, outside this folder:
        // the exception to the crate's `-Dunsafe_code` is made here, in sys,
        // where the impl is written and its soundness argued.
        #[allow(unsafe_code)]
        unsafe impl $crate::sys::workqueue::HasDelayedWork for $owner {
            const OFFSET: usize = {
                fn _check(o: &$owner) -> &$crate::sys::workqueue::DelayedWork<$owner> {
                    &o.$($field).+
                }
                ::core::mem::offset_of!($owner, $($field).+)
            };
        }
    };
}
pub(crate) use impl_has_delayed_work;

/// A `struct delayed_work` whose callback runs `T::run` on its owner.
///
/// # Invariants
///
/// Once `ready` is true, `work` was initialised by `INIT_DELAYED_WORK` with
/// [`Self::trampoline`] while its owner was pinned: the owner, and so the
/// work, stays at this address until it is dropped. Before that, `work` is
/// never handed to the kernel.
pub(crate) struct DelayedWork<T> {
    work: Opaque<bindings::delayed_work>,
    ready: AtomicBool,
    _owner: PhantomData<fn(&T)>,
}

// SAFETY: the kernel's workqueue calls serialise every access to `work`;
// `ready` is atomic. The callback shares `&T` with a worker thread, which
// `WorkItem: Sync` allows.
unsafe impl<T> Sync for DelayedWork<T> {}
// SAFETY: an initialised work item cannot move (its owner is pinned), and
// cancelling it may be done from any task.
unsafe impl<T> Send for DelayedWork<T> {}

impl<T: HasDelayedWork> DelayedWork<T> {
    /// A work item not initialised yet: queueing it does nothing until
    /// [`Self::init`] ran.
    pub(crate) const fn new() -> Self {
        DelayedWork {
            work: Opaque::uninit(),
            ready: AtomicBool::new(false),
            _owner: PhantomData,
        }
    }

    /// The work item inside `owner`.
    fn of(owner: &T) -> &Self {
        let p = (owner as *const T).cast::<u8>().wrapping_add(T::OFFSET);
        // SAFETY: `T::OFFSET` is the offset of a `DelayedWork<T>` inside
        // `T` (`HasDelayedWork`), so `p` points to one, borrowed with `owner`.
        unsafe { &*p.cast::<Self>() }
    }

    /// Initialises the work item of `owner` (`INIT_DELAYED_WORK`): from now
    /// on it can be queued. The pin proves the owner stays in place. A
    /// second call does nothing.
    pub(crate) fn init(owner: Pin<&T>) {
        let this = Self::of(owner.get_ref());
        if this.ready.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: `work` is not initialised (so not queued) and lives in a
        // pinned owner; the callback is ours for `T`.
        unsafe { bindings::rfw_init_delayed_work(this.work.get(), Some(Self::trampoline)) };
        // INVARIANT: initialised above, in a pinned owner.
        this.ready.store(true, Ordering::Release);
    }

    /// Queues the work to run in `ms` milliseconds unless it is already
    /// pending (`queue_delayed_work`); false if it was pending (or is not
    /// initialised). Any context.
    pub(crate) fn queue(&self, ms: u32) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: `msecs_to_jiffies` is pure arithmetic.
        let j = unsafe { bindings::rfw_msecs_to_jiffies(ms) };
        // SAFETY: `work` is initialised and stays in place (invariant).
        unsafe { bindings::rfw_queue_delayed_work(self.work.get(), j) }
    }

    /// Queues the work to run in `ms` milliseconds, moving its timer if it
    /// is pending already (`mod_delayed_work`; 0 runs it at once); false if
    /// it was idle. Any context.
    pub(crate) fn modify(&self, ms: u32) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: `msecs_to_jiffies` is pure arithmetic.
        let j = unsafe { bindings::rfw_msecs_to_jiffies(ms) };
        // SAFETY: `work` is initialised and stays in place (invariant).
        unsafe { bindings::rfw_mod_delayed_work(self.work.get(), j) }
    }

    /// Cancels the work and waits for a running callback to return
    /// (`cancel_delayed_work_sync`); a callback that requeues itself is
    /// stopped too. Process context (sleeps).
    pub(crate) fn cancel_sync(&self) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: `work` is initialised and stays in place (invariant);
        // callers are in process context.
        unsafe { bindings::cancel_delayed_work_sync(self.work.get()) }
    }

    /// The C callback.
    ///
    /// # Safety
    ///
    /// Called by the workqueue only, for the `work` of an initialised
    /// `DelayedWork<T>` inside a live `T`.
    unsafe extern "C" fn trampoline(work: *mut bindings::work_struct) {
        let off = T::OFFSET + offset_of!(Self, work) + offset_of!(bindings::delayed_work, work);
        // `work` is the `work_struct` of our `delayed_work` (`to_delayed_work`),
        // `off` bytes into its owner, which is live: it cancels the work
        // before dropping any part of itself (`HasDelayedWork`).
        // SAFETY: so stepping back gives a valid `&T` for this call.
        let owner = unsafe { &*work.cast::<u8>().sub(off).cast::<T>() };
        owner.run();
    }
}

impl<T> Drop for DelayedWork<T> {
    fn drop(&mut self) {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: initialised and still in place (invariant); owners are
            // dropped in process context.
            unsafe { bindings::cancel_delayed_work_sync(self.work.get()) };
        }
    }
}
