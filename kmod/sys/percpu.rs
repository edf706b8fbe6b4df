// SPDX-License-Identifier: GPL-2.0

//! Per-CPU memory (`include/linux/percpu.h`): one value per possible CPU
//! ([`PerCpu`]), or a number of values chosen at run time ([`PerCpuSlice`]).
//!
//! Two ways in, as in C:
//! * [`PerCpu::with`] lends the current CPU's copy with bottom halves
//!   disabled, which also keeps the task on this CPU: state a CPU keeps
//!   from one hook of a packet to the next (`pkt::Slot`). Where they are
//!   off already (a softirq: every received or forwarded packet's hooks,
//!   or a task that disabled them) it does not toggle them; only a task
//!   with bottom halves on (LOCAL_OUT of a local sender) pays
//!   `local_bh_disable`/`local_bh_enable`. The copy is lent shared (`&T`),
//!   since a nested call may lend it again; `T` brings its own interior
//!   mutability (`Cell`).
//! * [`Counter`]s: the packet path only adds to the current CPU's copy,
//!   with the kernel's `this_cpu_add` (one instruction on x86_64, safe
//!   against preemption and interrupts), so counting costs no lock and no
//!   shared cache line. Readers sum all possible CPUs; on a 64-bit kernel
//!   each u64 is read whole, so a sum is never torn, only a moment old.

use core::cell::UnsafeCell;
use core::ffi::c_int;
use core::marker::PhantomData;
use core::mem::{align_of, needs_drop, size_of};
use core::ptr::NonNull;

use kernel::prelude::*;

use super::sync::BhGuard;
use crate::bindings;

/// The possible CPUs, in order (`for_each_possible_cpu`).
fn possible_cpus() -> impl Iterator<Item = c_int> {
    // SAFETY: reads a kernel variable through its accessor.
    let nr = unsafe { bindings::rfw_nr_cpu_ids() } as c_int;
    // SAFETY: -1 starts the walk of `cpu_possible_mask`.
    let first = unsafe { bindings::rfw_next_possible_cpu(-1) };
    core::iter::successors(Some(first), |&cpu| {
        // SAFETY: continues the walk of `cpu_possible_mask`.
        Some(unsafe { bindings::rfw_next_possible_cpu(cpu) })
    })
    .take_while(move |&cpu| cpu >= 0 && cpu < nr)
}

/// `len` values of `T` per possible CPU.
///
/// # Invariants
///
/// `ptr` is the per-CPU address of a live allocation from
/// `__alloc_percpu_gfp` (through `rfw_alloc_percpu`) of `max(len, 1)`
/// `T`s per possible CPU, aligned for `T`, whose first `len` values are
/// initialised on every possible CPU; it is owned by this value and freed,
/// with the values, on drop. A per-CPU address is not dereferenceable: it
/// is offset, handed to `this_cpu_*` accessors, or turned into a CPU's
/// copy by `per_cpu_ptr` / `this_cpu_ptr`.
struct Block<T> {
    ptr: NonNull<T>,
    len: usize,
    _owns: PhantomData<T>,
}

impl<T> Block<T> {
    /// `len` values from `init` per possible CPU, charged to the caller's
    /// memory cgroup (`GFP_KERNEL_ACCOUNT`: every per-CPU block rfw makes
    /// is made for a namespace's creation or a user's command, as
    /// nft_counter's are). Process context.
    fn new(len: usize, init: impl Fn() -> T) -> Result<Self> {
        // The allocator refuses empty blocks.
        let bytes = len.max(1).checked_mul(size_of::<T>()).ok_or(ENOMEM)?;
        // SAFETY: plain allocation call (GFP_KERNEL_ACCOUNT; every caller
        // is in process context); size and alignment are those of the
        // values.
        let p = unsafe { bindings::rfw_alloc_percpu(bytes, align_of::<T>()) };
        let ptr = NonNull::new(p.cast::<T>()).ok_or(ENOMEM)?;
        for cpu in possible_cpus() {
            // SAFETY: `cpu` is a possible CPU and the block is live.
            let copy = unsafe { bindings::rfw_per_cpu_ptr(p, cpu) }.cast::<T>();
            for i in 0..len {
                // `copy` is that CPU's `len` values, which nobody else can
                // see yet (zeroed by the allocator: nothing to drop).
                // SAFETY: so value `i < len` of it may be written.
                unsafe { copy.add(i).write(init()) };
            }
        }
        // INVARIANT: a fresh block, every possible CPU's values initialised.
        Ok(Block {
            ptr,
            len,
            _owns: PhantomData,
        })
    }

    /// CPU `cpu`'s copy.
    ///
    /// # Safety
    ///
    /// `cpu` must be a possible CPU.
    unsafe fn cpu_copy(&self, cpu: c_int) -> *mut T {
        // SAFETY: `cpu` is a possible CPU (caller) and the block is live
        // (type invariant).
        unsafe { bindings::rfw_per_cpu_ptr(self.ptr.as_ptr().cast(), cpu) }.cast::<T>()
    }
}

impl<T> Drop for Block<T> {
    fn drop(&mut self) {
        // The owner is dropped only when nothing can reach it any more (a
        // grace period after it was unpublished, or namespace exit after
        // the hooks are gone).
        if needs_drop::<T>() {
            for cpu in possible_cpus() {
                // SAFETY: `cpu` is a possible CPU.
                let copy = unsafe { self.cpu_copy(cpu) };
                for i in 0..self.len {
                    // SAFETY: an initialised value (type invariant), unreachable now.
                    unsafe { core::ptr::drop_in_place(copy.add(i)) };
                }
            }
        }
        // SAFETY: the block is ours (type invariant) and unreachable now.
        unsafe { bindings::free_percpu(self.ptr.as_ptr().cast()) };
    }
}

/// One `T` per possible CPU.
pub(crate) struct PerCpu<T>(Block<T>);

// SAFETY: each CPU's copy is used by one task at a time (with bottom halves
// off, see `with`) and the counters by `this_cpu_add` and whole-word reads,
// so the values only travel between tasks: sending `T` is all it takes.
unsafe impl<T: Send> Send for PerCpu<T> {}
// SAFETY: see `Send`.
unsafe impl<T: Send> Sync for PerCpu<T> {}

impl<T> PerCpu<T> {
    /// A value from `init` for every possible CPU. Process context.
    pub(crate) fn new(init: impl Fn() -> T) -> Result<Self> {
        Ok(PerCpu(Block::new(1, init)?))
    }

    /// Runs `f` on the current CPU's copy, with bottom halves disabled (so
    /// no softirq on this CPU runs in between, and the task stays on this
    /// CPU), and the context level it runs at ([`Context::level`]).
    /// Process or softirq context, not hard IRQ.
    ///
    /// Bottom halves are disabled here only if they are on: in a softirq,
    /// or in a task that disabled them, they stay off until after `f`
    /// returns anyway, since whatever disabled them is below this call on
    /// the stack. There this costs one call into C
    /// (`rfw_context_cpu_ptr`); in a task with them on (LOCAL_OUT),
    /// `local_bh_disable`, `this_cpu_ptr` and `local_bh_enable` besides.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T, u8) -> R) -> R {
        let base = self.0.ptr.as_ptr().cast();
        let mut ctx = 0;
        // SAFETY: the block is live (type invariant); `ctx` is ours. The
        // copy it returns is used below only where `ctx` proves it stays
        // this CPU's.
        let here = unsafe { bindings::rfw_context_cpu_ptr(base, &mut ctx) };
        let ctx = Context(ctx);
        let (_bh, copy) = if ctx.bh_off() {
            // Bottom halves were off when `here` was read, and stay off
            // (see above): the task has not moved, `here` is this CPU's.
            (None, here)
        } else {
            let bh = BhGuard::new();
            // Bottom halves are off now, which disables preemption (or,
            // under PREEMPT_RT, migration), as `this_cpu_ptr` requires.
            // SAFETY: the block is live (type invariant).
            (Some(bh), unsafe { bindings::rfw_this_cpu_ptr(base) })
        };
        let copy = copy.cast::<T>();
        // `copy` is this CPU's initialised value. Until `f` returns, bottom
        // halves stay off on this CPU (disabled by `_bh`, dropped after the
        // call, or by a caller further down the stack, which cannot enable
        // them before this call returns), so only this context runs here
        // (rfw uses no hard IRQ context), and no other CPU touches this
        // copy: every reference to it is a shared one lent here.
        // SAFETY: so `&*copy` is valid for the call.
        f(unsafe { &*copy }, ctx.level())
    }
}

/// What the current CPU runs in, from one read of its preempt count
/// (`rfw_context_cpu_ptr`): the context level and whether bottom halves
/// are off.
#[derive(Clone, Copy)]
struct Context(u32);

impl Context {
    /// Bottom halves are off on this CPU (`in_softirq()`: serving a
    /// softirq, or disabled by the task), so no softirq can run here
    /// before they are enabled again, and the task cannot move to another
    /// CPU.
    #[inline]
    fn bh_off(self) -> bool {
        self.0 & bindings::RFW_CONTEXT_BH_OFF != 0
    }

    /// `interrupt_context_level()`: 0 in a task (bottom halves disabled or
    /// not), 1 while serving a softirq, 2 in a hard IRQ, 3 in an NMI. State
    /// kept per CPU for the duration of one call chain is kept per level
    /// too, as the kernel's own recursion guards are
    /// (`trace_test_and_set_recursion`): a softirq that runs on this CPU
    /// between two steps of a task then cannot overwrite the task's.
    #[inline]
    fn level(self) -> u8 {
        (self.0 & bindings::RFW_CONTEXT_LEVEL_MASK).min(3) as u8
    }
}

/// A u64 counter in per-CPU memory (see the module docs): added to by its
/// own CPU with `this_cpu_add`, read whole by any CPU.
#[repr(transparent)]
pub(crate) struct Counter(UnsafeCell<u64>);

impl Counter {
    /// A counter at zero.
    pub(crate) const fn zero() -> Counter {
        Counter(UnsafeCell::new(0))
    }
}

/// Adds `a` to counter `i` and, if `b` is given, `b` to counter `i + 1`,
/// on the current CPU.
///
/// # Safety
///
/// `base` is the per-CPU address of a live block's counters, with
/// counter `i` (and `i + 1` if `b` is given) among them.
#[inline]
unsafe fn this_cpu_add(base: NonNull<Counter>, i: usize, a: u64, b: Option<u64>) {
    // A per-CPU address: only offset, then handed to the accessor, as
    // `&ptr->field` is in C (`Counter` is a u64 in memory).
    let p = base.as_ptr().cast::<u64>().wrapping_add(i);
    match b {
        // SAFETY: `p` and `p + 1` are counters of the live block (caller);
        // `this_cpu_add` on them touches only this CPU's copies.
        Some(b) => unsafe { bindings::rfw_this_cpu_add_u64_pair(p, a, b) },
        // SAFETY: `p` is a counter of the live block (caller); as above.
        None => unsafe { bindings::rfw_this_cpu_add_u64(p, a) },
    }
}

/// Reads counter `i` of CPU copy `copy` whole.
///
/// # Safety
///
/// `copy` is a possible CPU's copy of a live block of counters, with
/// counter `i` among them.
#[inline]
unsafe fn read(copy: *const Counter, i: usize) -> u64 {
    // The owner CPU may be adding: an aligned u64 load sees old or new.
    // SAFETY: `copy.add(i)` is an initialised counter (caller).
    unsafe { core::ptr::read_volatile(copy.add(i).cast::<u64>()) }
}

impl<const N: usize> PerCpu<[Counter; N]> {
    /// `N` counters at zero for every possible CPU. Process context.
    pub(crate) fn zeroed() -> Result<Self> {
        Self::new(|| core::array::from_fn(|_| Counter::zero()))
    }

    /// Adds `v` to counter `i` of the current CPU. An index out of range is
    /// ignored: indices come from callers' tables, and a bad one must not
    /// become a stray write.
    #[inline]
    pub(crate) fn add(&self, i: usize, v: u64) {
        if i >= N {
            return;
        }
        // SAFETY: the block holds `N` counters per CPU and `i < N`.
        unsafe { this_cpu_add(self.0.ptr.cast(), i, v, None) };
    }

    /// Adds `a` to counter `i` and `b` to counter `i + 1` of the current
    /// CPU, in one call (ignored unless both are in range).
    #[inline]
    pub(crate) fn add_pair(&self, i: usize, a: u64, b: u64) {
        if i.checked_add(1).is_none_or(|j| j >= N) {
            return;
        }
        // SAFETY: the block holds `N` counters per CPU and `i + 1 < N`.
        unsafe { this_cpu_add(self.0.ptr.cast(), i, a, Some(b)) };
    }

    /// Sums every possible CPU's counters.
    pub(crate) fn sum(&self) -> [u64; N] {
        let mut t = [0u64; N];
        for cpu in possible_cpus() {
            // SAFETY: `cpu` is a possible CPU.
            let copy = unsafe { self.0.cpu_copy(cpu) }.cast::<Counter>();
            for (i, c) in t.iter_mut().enumerate() {
                // SAFETY: that CPU's `N` counters, `i < N`.
                *c = c.wrapping_add(unsafe { read(copy, i) });
            }
        }
        t
    }
}

/// A number of `T` per possible CPU chosen at run time.
pub(crate) struct PerCpuSlice<T>(Block<T>);

// SAFETY: as for `PerCpu`.
unsafe impl<T: Send> Send for PerCpuSlice<T> {}
// SAFETY: as for `PerCpu`.
unsafe impl<T: Send> Sync for PerCpuSlice<T> {}

impl<T> PerCpuSlice<T> {
    /// Number of values per CPU.
    pub(crate) fn len(&self) -> usize {
        self.0.len
    }
}

impl PerCpuSlice<Counter> {
    /// `len` counters at zero for every possible CPU. Process context.
    pub(crate) fn zeroed(len: usize) -> Result<Self> {
        Ok(PerCpuSlice(Block::new(len, Counter::zero)?))
    }

    /// Adds `a` to counter `i` and `b` to counter `i + 1` of the current
    /// CPU in one call (ignored unless both are in range).
    #[inline]
    pub(crate) fn add_pair(&self, i: usize, a: u64, b: u64) {
        if i.checked_add(1).is_none_or(|j| j >= self.0.len) {
            return;
        }
        // SAFETY: the block holds `len` counters per CPU and `i + 1 < len`.
        unsafe { this_cpu_add(self.0.ptr, i, a, Some(b)) };
    }

    /// Sets the first possible CPU's counters to `values` (the rest stay as
    /// they are). `&mut self`: for a block nobody else can see yet.
    pub(crate) fn preset(&mut self, values: impl Iterator<Item = u64>) {
        let Some(cpu) = possible_cpus().next() else {
            return;
        };
        // SAFETY: `cpu` is a possible CPU.
        let copy = unsafe { self.0.cpu_copy(cpu) };
        for (i, v) in values.take(self.0.len).enumerate() {
            // `&mut self`: the block is not shared, no CPU adds to it.
            // SAFETY: so counter `i < len` of that copy may be written.
            unsafe { copy.add(i).write(Counter(UnsafeCell::new(v))) };
        }
    }

    /// Sums every possible CPU's counter `i` (0 if out of range).
    pub(crate) fn sum(&self, i: usize) -> u64 {
        if i >= self.0.len {
            return 0;
        }
        let mut t = 0u64;
        for cpu in possible_cpus() {
            // SAFETY: `cpu` is a possible CPU.
            let copy = unsafe { self.0.cpu_copy(cpu) };
            // SAFETY: that CPU's `len` counters, `i < len`.
            t = t.wrapping_add(unsafe { read(copy, i) });
        }
        t
    }
}
