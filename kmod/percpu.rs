// SPDX-License-Identifier: GPL-2.0

//! Packets and bytes per family and hook (`fwctl stats`), counted per CPU
//! (see `sys::percpu`).

use conntrack::{Family, Hook};
use kernel::prelude::*;

use crate::sys::percpu::{Counter as CpuCounter, PerCpu};

/// Address families rfw counts, by [`Family::index`].
pub(crate) const FAMILIES: usize = Family::ALL.len();
/// Hooks rfw counts per family, indexed by the kernel's hook number.
pub(crate) const HOOKS: usize = Hook::COUNT;
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
pub(crate) struct HookCounters(PerCpu<[CpuCounter; HOOK_SLOTS]>);

impl HookCounters {
    /// Allocates zeroed counters for every possible CPU.
    pub(crate) fn new() -> Result<Self> {
        Ok(HookCounters(PerCpu::zeroed()?))
    }

    /// Adds one packet of `len` bytes to the current CPU's counters.
    #[inline]
    pub(crate) fn add(&self, family: Family, hook: usize, len: u64) {
        if hook >= HOOKS {
            return;
        }
        let i = (family.index() * HOOKS + hook) * 2;
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
