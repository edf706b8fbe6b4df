// SPDX-License-Identifier: GPL-2.0

//! Per-CPU u64 counters.
//!
//! The packet path only ever adds to the current CPU's copy, with the
//! kernel's `this_cpu_add` (one instruction on x86_64, safe against
//! preemption and interrupts), so counting costs no lock and no shared cache
//! line. Readers sum all possible CPUs; on a 64-bit kernel each u64 is read
//! whole, so a sum is never torn, only a moment old.

use core::ffi::{c_int, c_void};
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use kernel::prelude::*;

use crate::bindings;

/// `N` counters per CPU.
///
/// # Invariants
///
/// `block` is a live allocation from `__alloc_percpu_gfp`, through
/// `rfw_alloc_percpu`, of `[u64; N]` per CPU (zeroed by the allocator),
/// owned by this value and freed on drop.
pub(crate) struct PerCpuArray<const N: usize> {
    block: NonNull<c_void>,
}

// SAFETY: the per-CPU block is only written through `this_cpu_add` (each CPU
// its own copy) and read with plain u64 loads; it may be shared and sent.
unsafe impl<const N: usize> Send for PerCpuArray<N> {}
// SAFETY: see `Send`.
unsafe impl<const N: usize> Sync for PerCpuArray<N> {}

impl<const N: usize> PerCpuArray<N> {
    /// Allocates zeroed counters for every possible CPU.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: plain allocation call; size and alignment are those of `[u64; N]`.
        let p = unsafe { bindings::rfw_alloc_percpu(size_of::<[u64; N]>(), align_of::<u64>()) };
        // INVARIANT: a non-null result is a fresh, zeroed per-CPU block.
        NonNull::new(p)
            .map(|block| PerCpuArray { block })
            .ok_or(ENOMEM)
    }

    /// Adds `v` to counter `i` of the current CPU. An index out of range is
    /// ignored: indices come from callers' tables, and a bad one must not
    /// become a stray write.
    #[inline]
    pub(crate) fn add(&self, i: usize, v: u64) {
        if i >= N {
            return;
        }
        // A per-CPU address is not dereferenceable; it is only offset here
        // and handed to the per-CPU accessor, as `&ptr->field` is in C.
        let p = self.block.as_ptr().cast::<u64>().wrapping_add(i);
        // `p` is the per-CPU address of counter `i` of the live block.
        // SAFETY: `this_cpu_add` on it touches only this CPU's copy.
        unsafe { bindings::rfw_this_cpu_add_u64(p, v) };
    }

    /// Adds `a` to counter `i` and `b` to counter `i + 1` of the current
    /// CPU, in one call (a hook's packets and bytes).
    #[inline]
    pub(crate) fn add_pair(&self, i: usize, a: u64, b: u64) {
        if i.checked_add(1).is_none_or(|j| j >= N) {
            return;
        }
        // As in `add`: only offset, then handed to the accessor.
        let p = self.block.as_ptr().cast::<u64>().wrapping_add(i);
        // `p` and `p + 1` are the per-CPU addresses of counters `i` and
        // `i + 1` of the live block.
        // SAFETY: `this_cpu_add` on them touches only this CPU's copies.
        unsafe { bindings::rfw_this_cpu_add_u64_pair(p, a, b) };
    }

    /// Sums every possible CPU's counters.
    pub(crate) fn sum(&self) -> [u64; N] {
        let mut t = [0u64; N];
        // SAFETY: reads a kernel variable through its accessor.
        let nr = unsafe { bindings::rfw_nr_cpu_ids() } as c_int;
        // SAFETY: -1 starts the walk of cpu_possible_mask.
        let mut cpu = unsafe { bindings::rfw_next_possible_cpu(-1) };
        while cpu >= 0 && cpu < nr {
            // SAFETY: `cpu` is a possible CPU and the block is live.
            let blk = unsafe { bindings::rfw_per_cpu_ptr(self.block.as_ptr(), cpu) }.cast::<u64>();
            for (i, c) in t.iter_mut().enumerate() {
                // The owner CPU may be adding: an aligned u64 load sees old or new.
                // SAFETY: `blk` is that CPU's copy of the live block, `i < N`.
                let v = unsafe { core::ptr::read_volatile(blk.add(i)) };
                *c = c.wrapping_add(v);
            }
            // SAFETY: continues the walk of cpu_possible_mask.
            cpu = unsafe { bindings::rfw_next_possible_cpu(cpu) };
        }
        t
    }
}

impl<const N: usize> Drop for PerCpuArray<N> {
    fn drop(&mut self) {
        // Its owner is dropped only after every user (hooks, workers) is
        // gone and a grace period passed (see pernet.rs).
        // SAFETY: the block is ours (type invariant) and unreachable now.
        unsafe { bindings::free_percpu(self.block.as_ptr()) };
    }
}

/// Address families rfw counts: index 0 is IPv4, 1 is IPv6.
pub(crate) const FAMILIES: usize = 2;
/// Hooks rfw counts per family, indexed by the kernel's hook number.
pub(crate) const HOOKS: usize = rfw_abi::hook::COUNT;
const HOOK_SLOTS: usize = FAMILIES * HOOKS * 2;

/// One hook's totals.
#[derive(Clone, Copy, Default)]
pub(crate) struct Counter {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
}

/// Totals of all CPUs, indexed `[family][hook]`.
pub(crate) type Totals = [[Counter; HOOKS]; FAMILIES];

/// Packets and bytes per family and hook.
pub(crate) struct HookCounters(PerCpuArray<HOOK_SLOTS>);

impl HookCounters {
    /// Allocates zeroed counters for every possible CPU.
    pub(crate) fn new() -> Result<Self> {
        Ok(HookCounters(PerCpuArray::new()?))
    }

    /// Adds one packet of `len` bytes to the current CPU's counters.
    #[inline]
    pub(crate) fn add(&self, family: usize, hook: usize, len: u64) {
        if family >= FAMILIES || hook >= HOOKS {
            return;
        }
        let i = (family * HOOKS + hook) * 2;
        self.0.add_pair(i, 1, len);
    }

    /// Sums every possible CPU's counters.
    pub(crate) fn sum(&self) -> Totals {
        let s = self.0.sum();
        let mut t: Totals = [[Counter::default(); HOOKS]; FAMILIES];
        for (f, fam) in t.iter_mut().enumerate() {
            for (h, c) in fam.iter_mut().enumerate() {
                let i = (f * HOOKS + h) * 2;
                *c = Counter {
                    packets: s[i],
                    bytes: s[i + 1],
                };
            }
        }
        t
    }
}

/// A run-time number of u64 counters per CPU (rule counters: two per
/// ruleset entry), with the same access rules as [`PerCpuArray`].
///
/// # Invariants
///
/// `block` is a live per-CPU allocation of `n` u64 per CPU, zeroed by the
/// allocator, owned by this value and freed on drop.
pub(crate) struct PerCpuSlice {
    block: NonNull<c_void>,
    n: usize,
}

// SAFETY: as for `PerCpuArray`.
unsafe impl Send for PerCpuSlice {}
// SAFETY: as for `PerCpuArray`.
unsafe impl Sync for PerCpuSlice {}

impl PerCpuSlice {
    /// Allocates `n` zeroed counters for every possible CPU (at least one,
    /// as the per-CPU allocator refuses empty blocks).
    pub(crate) fn new(n: usize) -> Result<Self> {
        let bytes = n.max(1).checked_mul(size_of::<u64>()).ok_or(ENOMEM)?;
        // SAFETY: plain allocation call.
        let p = unsafe { bindings::rfw_alloc_percpu(bytes, align_of::<u64>()) };
        // INVARIANT: a non-null result is a fresh, zeroed per-CPU block of `n` u64.
        NonNull::new(p)
            .map(|block| PerCpuSlice { block, n })
            .ok_or(ENOMEM)
    }

    /// Adds `a` to counter `i` and `b` to counter `i + 1` of the current
    /// CPU in one call (ignored unless both are in range).
    #[inline]
    pub(crate) fn add_pair(&self, i: usize, a: u64, b: u64) {
        if i.checked_add(1).is_none_or(|j| j >= self.n) {
            return;
        }
        // As in `PerCpuArray::add`: a per-CPU address, only offset here.
        let p = self.block.as_ptr().cast::<u64>().wrapping_add(i);
        // `p` and `p + 1` are counters `i` and `i + 1` of the live block.
        // SAFETY: `this_cpu_add` on them touches this CPU's copies.
        unsafe { bindings::rfw_this_cpu_add_u64_pair(p, a, b) };
    }

    /// Sets the first CPU's copy to `values` (the rest stay as they are).
    /// Only for a block nobody else can see yet.
    pub(crate) fn preset(&mut self, values: impl Iterator<Item = u64>) {
        // SAFETY: -1 starts the walk of cpu_possible_mask.
        let cpu = unsafe { bindings::rfw_next_possible_cpu(-1) };
        // SAFETY: reads a kernel variable through its accessor.
        if cpu < 0 || cpu >= unsafe { bindings::rfw_nr_cpu_ids() } as c_int {
            return;
        }
        // SAFETY: `cpu` is a possible CPU and the block is live.
        let blk = unsafe { bindings::rfw_per_cpu_ptr(self.block.as_ptr(), cpu) }.cast::<u64>();
        for (i, v) in values.take(self.n).enumerate() {
            // `&mut self`: the block is not shared, no CPU adds to it.
            // SAFETY: `blk` is that CPU's copy, `i < n`.
            unsafe { blk.add(i).write(v) };
        }
    }

    /// Number of counters.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Sums every possible CPU's counter `i`.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        if i >= self.n {
            return 0;
        }
        let mut t = 0u64;
        // SAFETY: reads a kernel variable through its accessor.
        let nr = unsafe { bindings::rfw_nr_cpu_ids() } as c_int;
        // SAFETY: -1 starts the walk of cpu_possible_mask.
        let mut cpu = unsafe { bindings::rfw_next_possible_cpu(-1) };
        while cpu >= 0 && cpu < nr {
            // SAFETY: `cpu` is a possible CPU and the block is live.
            let blk = unsafe { bindings::rfw_per_cpu_ptr(self.block.as_ptr(), cpu) }.cast::<u64>();
            // The owner CPU may be adding: an aligned u64 load sees old or new.
            // SAFETY: `blk` is that CPU's copy of the live block, `i < n`.
            t = t.wrapping_add(unsafe { core::ptr::read_volatile(blk.add(i)) });
            // SAFETY: continues the walk of cpu_possible_mask.
            cpu = unsafe { bindings::rfw_next_possible_cpu(cpu) };
        }
        t
    }
}

impl Drop for PerCpuSlice {
    fn drop(&mut self) {
        // Dropped only when no packet path can reach it (a grace period
        // after it was unpublished, or in namespace exit).
        // SAFETY: the block is ours (type invariant) and unreachable now.
        unsafe { bindings::free_percpu(self.block.as_ptr()) };
    }
}
