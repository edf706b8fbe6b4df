// SPDX-License-Identifier: GPL-2.0

//! Per-CPU packet and byte counters, one block per network namespace.
//!
//! The packet path only ever adds to the current CPU's copy, with the
//! kernel's `this_cpu_add` (one instruction on x86_64, safe against
//! preemption and interrupts), so counting costs no lock and no shared cache
//! line. Readers sum all possible CPUs; on a 64-bit kernel each u64 is read
//! whole, so a sum is never torn, only a moment old.

use core::ffi::{c_int, c_void};
use core::mem::{align_of, offset_of, size_of};
use core::ptr::NonNull;

use kernel::prelude::*;

use crate::bindings;

/// Address families rfw counts: index 0 is IPv4, 1 is IPv6.
pub(crate) const FAMILIES: usize = 2;
/// Hooks rfw counts per family, indexed by the kernel's hook number.
pub(crate) const HOOKS: usize = rfw_abi::hook::COUNT;

/// One hook's totals.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Counter {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
}

/// What each CPU holds.
#[repr(C)]
struct Block {
    hooks: [[Counter; HOOKS]; FAMILIES],
}

/// Totals of all CPUs, indexed `[family][hook]`.
pub(crate) type Totals = [[Counter; HOOKS]; FAMILIES];

/// A per-CPU [`Block`] of counters.
///
/// # Invariants
///
/// `block` is a live allocation from `__alloc_percpu_gfp`, through `rfw_alloc_percpu`, of one `Block`
/// (zeroed by the allocator), owned by this value and freed on drop.
pub(crate) struct HookCounters {
    block: NonNull<c_void>,
}

// SAFETY: the per-CPU block is only written through `this_cpu_add` (each CPU
// its own copy) and read with plain u64 loads; it may be shared and sent.
unsafe impl Send for HookCounters {}
// SAFETY: see `Send`.
unsafe impl Sync for HookCounters {}

impl HookCounters {
    /// Allocates zeroed counters for every possible CPU.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: plain allocation call; size and alignment are those of `Block`.
        let p = unsafe { bindings::rfw_alloc_percpu(size_of::<Block>(), align_of::<Block>()) };
        // INVARIANT: a non-null result is a fresh, zeroed per-CPU block.
        NonNull::new(p)
            .map(|block| HookCounters { block })
            .ok_or(ENOMEM)
    }

    /// Per-CPU address of one u64 field of the block. Out-of-range indices
    /// give `None`: the hook numbers come from the kernel, but a bad one must
    /// not become a stray write.
    fn field(&self, family: usize, hook: usize, bytes: bool) -> Option<*mut u64> {
        if family >= FAMILIES || hook >= HOOKS {
            return None;
        }
        let off = offset_of!(Block, hooks)
            + (family * HOOKS + hook) * size_of::<Counter>()
            + if bytes {
                offset_of!(Counter, bytes)
            } else {
                offset_of!(Counter, packets)
            };
        // A per-CPU address is not dereferenceable; it is only offset here
        // and handed to the per-CPU accessors, as `&ptr->field` is in C.
        Some(
            self.block
                .as_ptr()
                .cast::<u8>()
                .wrapping_add(off)
                .cast::<u64>(),
        )
    }

    /// Adds one packet of `len` bytes to the current CPU's counters.
    #[inline]
    pub(crate) fn add(&self, family: usize, hook: usize, len: u64) {
        if let (Some(p), Some(b)) = (
            self.field(family, hook, false),
            self.field(family, hook, true),
        ) {
            // Both are per-CPU addresses inside the live block (invariant, `field`).
            // SAFETY: `this_cpu_add` on them touches only this CPU's copy.
            unsafe {
                bindings::rfw_this_cpu_add_u64(p, 1);
                bindings::rfw_this_cpu_add_u64(b, len);
            }
        }
    }

    /// Sums every possible CPU's counters.
    pub(crate) fn sum(&self) -> Totals {
        let mut t: Totals = [[Counter::default(); HOOKS]; FAMILIES];
        // SAFETY: reads a kernel variable through its accessor.
        let nr = unsafe { bindings::rfw_nr_cpu_ids() } as c_int;
        // SAFETY: -1 starts the walk of cpu_possible_mask.
        let mut cpu = unsafe { bindings::rfw_next_possible_cpu(-1) };
        while cpu >= 0 && cpu < nr {
            // SAFETY: `cpu` is a possible CPU and the block is live.
            let p = unsafe { bindings::rfw_per_cpu_ptr(self.block.as_ptr(), cpu) };
            let blk = p.cast::<Block>();
            for (f, fam) in t.iter_mut().enumerate() {
                for (h, c) in fam.iter_mut().enumerate() {
                    // The owner CPU may be adding: an aligned u64 load sees old or new.
                    // SAFETY: `blk` is that CPU's copy of the live block.
                    let v = unsafe { core::ptr::read_volatile(&raw const (*blk).hooks[f][h]) };
                    c.packets = c.packets.wrapping_add(v.packets);
                    c.bytes = c.bytes.wrapping_add(v.bytes);
                }
            }
            // SAFETY: continues the walk of cpu_possible_mask.
            cpu = unsafe { bindings::rfw_next_possible_cpu(cpu) };
        }
        t
    }
}

impl Drop for HookCounters {
    fn drop(&mut self) {
        // Its owner is dropped only after the hooks that used it were
        // unregistered and a grace period passed (see pernet.rs).
        // SAFETY: the block is ours (type invariant) and unreachable now.
        unsafe { bindings::free_percpu(self.block.as_ptr()) };
    }
}
