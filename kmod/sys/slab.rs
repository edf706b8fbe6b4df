// SPDX-License-Identifier: GPL-2.0

//! A typed slab cache (`kmem_cache_create`, `kmem_cache_alloc`,
//! `kmem_cache_free`, `kmem_cache_destroy`).
//!
//! rfw's connection entries come from a cache of their own, unmerged
//! (`SLAB_NO_MERGE`), so that `/proc/slabinfo` shows them apart, and are
//! allocated with `GFP_ATOMIC` on the packet path. The objects are handed
//! out as raw pointers: their owner (the RCU chains of `rculist`) decides
//! when nothing refers to one any more and frees it.
//!
//! The cache is accounted (`SLAB_ACCOUNT`): an object allocated in task
//! context is charged to that task's memory cgroup until it is freed,
//! whoever frees it. For entries that means those a local process's own
//! packets create (LOCAL_OUT runs in the sending task), which is how a
//! container filling its table from its own sockets meets its memory
//! limit; entries made in softirq (received and forwarded packets) are
//! charged to nobody, as for every accounted cache. A `GFP_ATOMIC` charge
//! may pass `memory.max` (the memory controller forces atomic charges and
//! reclaims from the cgroup's tasks afterwards), so the hard bounds stay
//! the entry limits (`ct::table`). nf_conntrack's own cache is not
//! accounted in 6.12 (`nf_conntrack_init_start`).

use core::ffi::{c_void, CStr};
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use kernel::prelude::*;

use crate::bindings;

/// A `kmem_cache` of `T`-sized, `T`-aligned objects, destroyed on drop.
///
/// # Invariants
///
/// `cache` is a live cache created for `T`'s size and alignment, owned by
/// this value.
pub(crate) struct KmemCache<T> {
    cache: NonNull<bindings::kmem_cache>,
    _t: PhantomData<T>,
}

// SAFETY: the slab allocator is thread-safe; objects of `T` may be created
// on one task and dropped on another (`T: Send`).
unsafe impl<T: Send> Send for KmemCache<T> {}
// SAFETY: as for `Send`: every slab call may run on any task at once.
unsafe impl<T: Send> Sync for KmemCache<T> {}

impl<T> KmemCache<T> {
    /// A cache named `name` (`/proc/slabinfo`). Process context.
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        // SAFETY: a static NUL-terminated name; the size and alignment of `T`.
        let cache = unsafe {
            bindings::rfw_kmem_cache_create(
                name.as_ptr(),
                size_of::<T>() as u32,
                align_of::<T>() as u32,
            )
        };
        let cache = NonNull::new(cache).ok_or(ENOMEM)?;
        // INVARIANT: created just above, for `T`.
        Ok(KmemCache {
            cache,
            _t: PhantomData,
        })
    }

    /// An object holding `value`, allocated with `GFP_ATOMIC | __GFP_NOWARN`
    /// (any context); `None` without memory. The caller owns it: it goes
    /// back with [`Self::free`], or is leaked.
    pub(crate) fn alloc(&self, value: T) -> Option<NonNull<T>> {
        // SAFETY: the cache is live (invariant); atomic allocation.
        let p = unsafe { bindings::rfw_kmem_cache_alloc_atomic(self.cache.as_ptr()) };
        let p = NonNull::new(p.cast::<T>())?;
        // SAFETY: `p` is a fresh object of `T`'s size and alignment.
        unsafe { p.as_ptr().write(value) };
        Some(p)
    }

    /// Drops the value of `p` and returns its memory to the cache.
    ///
    /// # Safety
    ///
    /// `p` came from [`Self::alloc`] of this cache, was not freed yet, and
    /// nothing refers to it any more (for RCU readers: a grace period
    /// passed since the last way to reach it was removed).
    pub(crate) unsafe fn free(&self, p: NonNull<T>) {
        // SAFETY: `p` holds a value of ours that nobody else can reach
        // (caller), allocated from this live cache.
        unsafe {
            core::ptr::drop_in_place(p.as_ptr());
            bindings::kmem_cache_free(self.cache.as_ptr(), p.as_ptr().cast::<c_void>());
        }
    }
}

impl<T> Drop for KmemCache<T> {
    fn drop(&mut self) {
        // Every object should have been freed: the kernel reports (and
        // keeps) a cache destroyed with objects left.
        // SAFETY: the cache is ours and nothing allocates from it any more.
        unsafe { bindings::kmem_cache_destroy(self.cache.as_ptr()) };
    }
}
