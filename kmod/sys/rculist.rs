// SPDX-License-Identifier: GPL-2.0

//! Singly linked RCU hash chains whose objects sit in two chains at once
//! (one node per direction), as the connection table needs them.
//!
//! This holds the pointer work of `kmod/ct/table.rs`; the policy (hashing,
//! limits, what is removed when) stays there. Its docs explain the
//! algorithm; in short:
//!
//! * A chain head and a node's `next` are tagged pointers: the address of
//!   the node pointed to, with that node's index (0 or 1, the direction) in
//!   bit 0. Objects come from a [`KmemCache`] of [`Linked`] values.
//! * Readers walk under RCU with acquire loads; writers link and unlink
//!   under the chains' bucket-lock stripes, publishing with release stores.
//! * An unlinked object goes on the graveyard, a lock-free stack linked
//!   through its node 1, every link of which carries the [`GRAVE`] bit: a
//!   reader that stood on that node sees the bit and knows it left its
//!   chain. The graveyard is freed after `synchronize_rcu()`.
//!
//! # Why the safe interface is sound
//!
//! * References to objects are only handed out for the lifetime `'g` of an
//!   [`Rcu`] token, and an object is freed only from the graveyard, after a
//!   grace period that began after it was unlinked.
//! * Only [`Chains::link`] puts nodes into chains, and only nodes of a
//!   fresh, unpublished object of these chains ([`New`]); it may leave
//!   node 1 out, for [`Chains::link_second`] to link later, once. Only a
//!   successful [`Chains::unlink`] (every linked node of the object found
//!   and removed, under the stripes, and a node 1 not linked yet closed
//!   for good) yields the [`Unlinked`] proof that [`Chains::bury`] takes,
//!   so an object is buried once, and only when no chain reaches it or
//!   can come to.
//! * Linking and unlinking require a [`Held`] of these chains covering the
//!   buckets involved (checked), so writers never race on a chain.

use core::ffi::CStr;
use core::mem::{offset_of, size_of};
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use kernel::alloc::{flags::GFP_KERNEL, KVVec};
use kernel::prelude::*;

use super::rcu::Rcu;
use super::slab::KmemCache;
use super::sync::{Guard, LockClassKey, NestedGuard, SpinLockBh, SINGLE_DEPTH_NESTING};

/// Bucket-lock stripes.
pub(crate) const LOCKS: usize = 1024;
/// Tag bit of a graveyard link (bit 0 is the node index; nodes are 8-byte
/// aligned). Every link stored in a buried object carries it, the end of
/// the graveyard included.
const GRAVE: usize = 2;
/// The `next` of a node 1 that is not linked yet (its object sits in one
/// chain for now; [`Chains::link_second`] may link it later): no chain
/// link ever has this value (nodes are 8-byte aligned, and bit 2 is not a
/// tag).
const NEVER_LINKED: usize = 4;
/// The `next` of a node 1 that was never linked, once its object was
/// unlinked: it can no longer be linked.
const CLOSED: usize = 12;

/// A chain link inside an object.
struct Node {
    /// Tagged pointer to the next node (0 ends the chain).
    next: AtomicUsize,
}

/// An object of [`Chains`]: two chain nodes and the value.
///
/// Derefs to the value. Its address is its identity (callers compare
/// addresses to find an object again).
#[repr(C)]
pub(crate) struct Linked<T> {
    nodes: [Node; 2],
    value: T,
}

const _: () = assert!(core::mem::align_of::<Node>() >= 8);

impl<T> Deref for Linked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

fn tag<T>(e: &Linked<T>, i: usize) -> usize {
    (&e.nodes[i] as *const Node as usize) | i
}

/// The object and node index a tagged link points to (a graveyard link's
/// [`GRAVE`] bit ignored).
fn untag<T>(link: usize) -> (*const Linked<T>, usize) {
    let i = link & 1;
    let node = (link & !(1 | GRAVE)) as *const u8;
    let back = offset_of!(Linked<T>, nodes) + i * size_of::<Node>();
    (node.wrapping_sub(back).cast::<Linked<T>>(), i)
}

/// Held bucket-lock stripes (one or two), released on drop: the nested
/// one first, then the first, whose release re-enables bottom halves
/// (fields drop in declaration order).
pub(crate) struct Held<'a> {
    _second: Option<NestedGuard<'a, ()>>,
    _first: Guard<'a, ()>,
    /// The stripes held (repeats allowed), to check link and unlink.
    stripes: [usize; 2],
    /// The lock array they belong to.
    locks: *const SpinLockBh<()>,
}

impl Held<'_> {
    fn covers<T>(&self, chains: &Chains<T>, b: usize) -> bool {
        core::ptr::eq(self.locks, chains.locks.as_ptr()) && self.stripes.contains(&(b % LOCKS))
    }
}

/// How a walk of one chain ended (see [`Chains::walk_once`]).
pub(crate) enum Walk<'g, T> {
    /// The callback stopped at this object's node of this index.
    Hit(&'g Linked<T>, usize),
    /// The end of the chain.
    End,
    /// The walk left the chain: the node it stood on was buried.
    Stray,
}

/// A fresh object of a [`Chains`], not linked yet: freed at once if dropped.
pub(crate) struct New<'c, T> {
    chains: &'c Chains<T>,
    p: NonNull<Linked<T>>,
}

impl<T> Drop for New<'_, T> {
    fn drop(&mut self) {
        // SAFETY: `p` came from this cache and was never published.
        unsafe { self.chains.cache.free(self.p) };
    }
}

/// Proof that every linked node of an object was unlinked (see
/// [`Chains::unlink`]).
pub(crate) struct Unlinked<'e, T>(&'e Linked<T>);

/// A set of hash chains and the objects in them.
///
/// # Invariants
///
/// * Every node reachable from `heads` is a node of a live object of
///   `cache`, linked by [`Chains::link`]; such an object is freed only
///   from the graveyard.
/// * Every object in the graveyard is unlinked from all chains and in the
///   graveyard once; it is freed after a grace period that began after it
///   was unlinked.
pub(crate) struct Chains<T> {
    heads: KVVec<AtomicUsize>,
    locks: KVVec<SpinLockBh<()>>,
    graveyard: AtomicUsize,
    graveyard_len: AtomicUsize,
    cache: KmemCache<Linked<T>>,
}

impl<T> Chains<T> {
    /// `n` empty chains, [`LOCKS`] lock stripes of class `class` named
    /// `lock_name`, and a slab cache named `cache_name`.
    pub(crate) fn new(
        n: usize,
        cache_name: &'static CStr,
        lock_name: &'static CStr,
        class: &'static LockClassKey,
    ) -> Result<Self> {
        let mut heads = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            heads.push(AtomicUsize::new(0), GFP_KERNEL)?;
        }
        let mut locks = KVVec::with_capacity(LOCKS, GFP_KERNEL)?;
        for _ in 0..LOCKS {
            locks.push(SpinLockBh::new((), lock_name, class), GFP_KERNEL)?;
        }
        Ok(Chains {
            heads,
            locks,
            graveyard: AtomicUsize::new(0),
            graveyard_len: AtomicUsize::new(0),
            cache: KmemCache::new(cache_name)?,
        })
    }

    /// Chain count.
    pub(crate) fn len(&self) -> usize {
        self.heads.len()
    }

    /// Locks the stripes of two chains, lower index first.
    pub(crate) fn lock_pair(&self, b0: usize, b1: usize) -> Held<'_> {
        let (i, j) = (b0 % LOCKS, b1 % LOCKS);
        let (lo, hi) = if i <= j { (i, j) } else { (j, i) };
        let first = self.locks[lo].lock();
        // A different stripe of the same class, always after the lower
        // one: lockdep is told it nests (`SINGLE_DEPTH_NESTING`).
        let second = (hi != lo).then(|| self.locks[hi].lock_nested(&first, SINGLE_DEPTH_NESTING));
        Held {
            _second: second,
            _first: first,
            stripes: [lo, hi],
            locks: self.locks.as_ptr(),
        }
    }

    /// A new object holding `value` (atomic allocation), not linked yet.
    pub(crate) fn alloc(&self, value: T) -> Option<New<'_, T>> {
        let fresh = Linked {
            nodes: [
                Node {
                    next: AtomicUsize::new(0),
                },
                Node {
                    next: AtomicUsize::new(0),
                },
            ],
            value,
        };
        let p = self.cache.alloc(fresh)?;
        Some(New { chains: self, p })
    }

    /// Links `new`'s node 0 at the head of chain `b0` and, unless `b1` is
    /// `None`, its node 1 at the head of chain `b1`; `held` covers both.
    /// Returns the object, published for the section of `_rcu`.
    ///
    /// # Panics
    ///
    /// If `new` is not of these chains or `held` does not cover a chain:
    /// linking without the lock could corrupt a chain readers walk.
    pub(crate) fn link<'g>(
        &self,
        held: &Held<'_>,
        new: New<'_, T>,
        _rcu: &'g Rcu,
        b0: usize,
        b1: Option<usize>,
    ) -> &'g Linked<T> {
        assert!(core::ptr::eq(new.chains, self));
        assert!(held.covers(self, b0) && b1.is_none_or(|b| held.covers(self, b)));
        let p = new.p;
        core::mem::forget(new);
        // Published below; freed only from the graveyard, a grace period
        // after it is unlinked, so after `'g` ends (invariant).
        // SAFETY: so the object lives for `'g`.
        let e: &'g Linked<T> = unsafe { p.as_ref() };
        if b1.is_none() {
            e.nodes[1].next.store(NEVER_LINKED, Ordering::Relaxed);
        }
        for (i, b) in [(0, Some(b0)), (1, b1)] {
            let Some(b) = b else {
                break;
            };
            let head = &self.heads[b];
            let node = &e.nodes[i];
            node.next
                .store(head.load(Ordering::Relaxed), Ordering::Relaxed);
            // Release: a reader that sees the link sees the whole object.
            head.store(tag(e, i), Ordering::Release);
        }
        e
    }

    /// Links node 1 of `e`, published by [`Chains::link`] without it, at
    /// the head of chain `b1`; `held` covers it. False when node 1 cannot
    /// be linked: it was linked already, or `e` was unlinked (its node 1
    /// closed), or `e` is not of these chains.
    ///
    /// # Panics
    ///
    /// If `held` does not cover `b1` (as [`Chains::link`]).
    pub(crate) fn link_second(&self, held: &Held<'_>, e: &Linked<T>, b1: usize) -> bool {
        assert!(held.covers(self, b1));
        let head = &self.heads[b1];
        let node = &e.nodes[1];
        // Node 1 leaves NEVER_LINKED once, here or in `unlink` (which
        // closes it), whichever comes first: a closed object is never
        // linked again. `e` is live for the caller's section (it holds a
        // reference), and linking happens under the stripe, which every
        // walk of `b1` that could see a half-made link respects.
        if node
            .next
            .compare_exchange(
                NEVER_LINKED,
                head.load(Ordering::Relaxed),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        // Release: a reader that sees the link sees the whole object.
        head.store(tag(e, 1), Ordering::Release);
        true
    }

    /// Unlinks the node at `link` from chain `b`, if it is there. The
    /// chain's stripe is held.
    fn unlink_one(&self, b: usize, link: usize) -> bool {
        let mut prev = &self.heads[b];
        loop {
            let cur = prev.load(Ordering::Relaxed);
            if cur == 0 {
                return false;
            }
            let (e, i) = untag::<T>(cur);
            // Under the stripe every linked node belongs to a live object
            // (invariant), and links only change under it.
            // SAFETY: so `e` is valid while the stripe is held.
            let next = unsafe { &(*e).nodes[i].next };
            if cur == link {
                // Readers on the unlinked node still follow its `next`.
                prev.store(next.load(Ordering::Relaxed), Ordering::Release);
                return true;
            }
            prev = next;
        }
    }

    /// Unlinks `e`'s node 0 from chain `b0` and, if it was linked, its
    /// node 1 from chain `b1` (a node 1 not linked yet is closed, so that
    /// [`Chains::link_second`] cannot link it after this); `held` covers
    /// both. `None` when a linked node was not found there (wrong chain,
    /// or `e` unlinked already): then `e` cannot be buried and is never
    /// freed.
    pub(crate) fn unlink<'e>(
        &self,
        held: &Held<'_>,
        e: &'e Linked<T>,
        b0: usize,
        b1: usize,
    ) -> Option<Unlinked<'e, T>> {
        if !held.covers(self, b0) || !held.covers(self, b1) {
            return None;
        }
        let found0 = self.unlink_one(b0, tag(e, 0));
        // Node 1's `next` leaves NEVER_LINKED once (`link_second` or this
        // close); a linked node 1's `next` is written only under the
        // stripes (link, unlink) or after unlinking (bury).
        let closed = e.nodes[1]
            .next
            .compare_exchange(NEVER_LINKED, CLOSED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        let found1 = closed || self.unlink_one(b1, tag(e, 1));
        (found0 && found1).then_some(Unlinked(e))
    }

    /// Queues an unlinked object for freeing after a grace period; returns
    /// the graveyard's length.
    ///
    /// The graveyard is a stack linked through `nodes[1].next` (tagged as
    /// node 1), which saves a link field per object. A reader that was
    /// standing on the object's node 1 when it was unlinked would then
    /// walk on into other buried objects instead of the rest of its chain,
    /// so every link stored here carries the [`GRAVE`] bit (the empty
    /// graveyard is `GRAVE` alone): the reader sees it before following it
    /// ([`Chains::walk_once`] reports a stray). Nothing a reader loads from
    /// a buried node is dereferenced, so the graveyard's own order does not
    /// matter to it.
    pub(crate) fn bury(&self, u: Unlinked<'_, T>) -> usize {
        let e = u.0;
        let addr = tag(e, 1);
        let mut head = self.graveyard.load(Ordering::Relaxed);
        loop {
            e.nodes[1].next.store(head | GRAVE, Ordering::Relaxed);
            match self.graveyard.compare_exchange_weak(
                head,
                addr,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        self.graveyard_len.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Frees the graveyard after a grace period. Process context (sleeps),
    /// outside any RCU read-side section.
    pub(crate) fn free_graveyard(&self) {
        let mut link = self.graveyard.swap(0, Ordering::Acquire);
        if link == 0 {
            return;
        }
        // Every object taken was unlinked before it was buried: after
        // this, no reader can hold a reference to any of them.
        super::rcu::synchronize();
        let mut n = 0;
        while link != 0 {
            let p = untag::<T>(link).0.cast_mut();
            // Unlinked, buried once and past a grace period (invariant):
            // exclusively ours now.
            // SAFETY: `p` is a live object of `cache` that nothing refers to.
            unsafe {
                link = (*p).nodes[1].next.load(Ordering::Relaxed) & !GRAVE;
                self.cache.free(NonNull::new_unchecked(p));
            }
            n += 1;
        }
        self.graveyard_len.fetch_sub(n, Ordering::Relaxed);
    }

    /// Walks chain `b` once, calling `f` on each node until it returns
    /// true: [`Walk::Hit`] with the node `f` stopped at, [`Walk::End`] at
    /// the end of the chain (or after `max` nodes), or [`Walk::Stray`] when
    /// the walk left the chain because the object it stood on was buried
    /// meanwhile. Also returns the nodes walked.
    ///
    /// Under the chain's stripe no walk strays: every linked node stays
    /// linked until the stripe is released.
    pub(crate) fn walk_once<'g>(
        &self,
        _rcu: &'g Rcu,
        b: usize,
        max: usize,
        mut f: impl FnMut(&'g Linked<T>, usize) -> bool,
    ) -> (Walk<'g, T>, usize) {
        let mut link = self.heads[b].load(Ordering::Acquire);
        let mut len = 0;
        while link != 0 && len < max {
            if link & GRAVE != 0 {
                return (Walk::Stray, len);
            }
            let (e, i) = untag::<T>(link);
            // Links only ever point to nodes of live objects (invariant),
            // freed a grace period after unlinking, and the caller is in
            // an RCU section for `'g`.
            // SAFETY: so the object is valid for `'g`.
            let e: &'g Linked<T> = unsafe { &*e };
            len += 1;
            if f(e, i) {
                return (Walk::Hit(e, i), len);
            }
            link = e.nodes[i].next.load(Ordering::Acquire);
        }
        (Walk::End, len)
    }
}

impl<T> Drop for Chains<T> {
    fn drop(&mut self) {
        // Objects still linked are leaked (the cache reports them).
        self.free_graveyard();
    }
}

/// A pointer to the value an object belongs to (its namespace's state),
/// which outlives the object.
///
/// # Invariants
///
/// The value pointed to outlives every object holding this pointer: its
/// owner removes them all and waits for a grace period before dropping it
/// (the connection table's namespace exit: flush, `synchronize_rcu`).
pub(crate) struct ParentRef<P>(NonNull<P>);

// SAFETY: it only gives `&P`, which `P: Sync` lets any task hold.
unsafe impl<P: Sync> Send for ParentRef<P> {}
// SAFETY: as for `Send`.
unsafe impl<P: Sync> Sync for ParentRef<P> {}

impl<P> ParentRef<P> {
    /// A pointer to `p`, for objects that `p`'s owner removes before it
    /// drops `p` (see the type's invariant).
    pub(crate) fn new(p: &P) -> Self {
        ParentRef(NonNull::from(p))
    }

    /// The value.
    pub(crate) fn get(&self) -> &P {
        // SAFETY: the value outlives `self` (invariant).
        unsafe { self.0.as_ref() }
    }

    /// True when this points to `p`.
    pub(crate) fn is(&self, p: &P) -> bool {
        core::ptr::eq(self.0.as_ptr(), p)
    }
}
