// SPDX-License-Identifier: GPL-2.0

//! One namespace's connection-tracking state: entry count and limit,
//! settings, statistics.
//!
//! Lifetime: created in the namespace's pernet `init` (inside `RfwNet`),
//! dropped at the end of its `exit_batch`, after the hooks are gone
//! (`pre_exit` + a grace period), and after `exit_batch` has removed every
//! entry of the dying namespaces from the table (one walk for all of them,
//! repeated until none holds any) and waited for another grace period, so
//! that nothing (the collector, a dump, the packet path) can still reach
//! it through an entry.

use core::sync::atomic::{AtomicBool, AtomicU32};

use conntrack::{Config, InvalidReason, ParseError};
use kernel::alloc::flags::GFP_KERNEL_ACCOUNT;
use kernel::prelude::*;
use rfw_abi::ct_stats;

use crate::sys::percpu::{Counter, PerCpu};
use crate::sys::rcu::{Rcu, RcuBox, RcuValue};

/// Where the per-reason INVALID counters start.
const INVALID_BASE: usize = ct_stats::Counter::EVENTS;
/// Where the per-kind malformed counters start.
const MALFORMED_BASE: usize = INVALID_BASE + InvalidReason::COUNT;
/// Counters per CPU.
const N_COUNTERS: usize = MALFORMED_BASE + ParseError::COUNT;

/// Summed statistics.
pub(crate) struct Totals {
    c: [u64; N_COUNTERS],
}

impl Totals {
    /// One event counter.
    pub(crate) fn get(&self, s: ct_stats::Counter) -> u64 {
        debug_assert!(s.is_event());
        self.c[s.index()]
    }

    /// INVALID packets by reason index.
    pub(crate) fn invalid(&self) -> &[u64] {
        &self.c[INVALID_BASE..MALFORMED_BASE]
    }

    /// Malformed packets by kind index.
    pub(crate) fn malformed(&self) -> &[u64] {
        &self.c[MALFORMED_BASE..]
    }
}

/// See the module docs.
pub(crate) struct CtNet {
    /// Entries of the namespace, confirmed or not.
    pub(crate) entries: AtomicU32,
    /// Entries not confirmed yet.
    pub(crate) unconfirmed: AtomicU32,
    /// The entry limit.
    pub(crate) limit: AtomicU32,
    /// Random value mixed into the hash of this namespace's tuples.
    pub(crate) mix: u64,
    /// `ct_config::TRACKING_ON`: track every packet, rules or not (else
    /// only while the namespace has rules; see `RfwNet::tracks`).
    pub(crate) track_always: AtomicBool,
    /// Fast-path records of the namespace's connections (offloaded or
    /// being offloaded): a hint, so that a device going away in a
    /// namespace with none costs no table walk. Never below the true count.
    pub(crate) offloads: AtomicU32,
    /// The namespace is being dismantled (set in its pernet `exit`): the
    /// batch's table walk removes its entries (`Table::remove_dying`).
    pub(crate) dying: AtomicBool,
    /// Tracking settings, replaced under RCU.
    config: RcuBox<Config>,
    stats: PerCpu<[Counter; N_COUNTERS]>,
}

impl CtNet {
    /// State for a new namespace.
    pub(crate) fn new(limit: u32) -> Result<Self> {
        let mut mix = [0u8; 8];
        crate::sys::random::fill(&mut mix);
        let cfg = RcuValue::new(Config::default(), GFP_KERNEL_ACCOUNT)?;
        Ok(CtNet {
            entries: AtomicU32::new(0),
            unconfirmed: AtomicU32::new(0),
            limit: AtomicU32::new(limit),
            mix: u64::from_ne_bytes(mix),
            track_always: AtomicBool::new(false),
            offloads: AtomicU32::new(0),
            dying: AtomicBool::new(false),
            config: RcuBox::new(cfg),
            stats: PerCpu::zeroed()?,
        })
    }

    /// Counts one event.
    #[inline]
    pub(crate) fn count(&self, s: ct_stats::Counter) {
        debug_assert!(s.is_event());
        self.stats.add(s.index(), 1);
    }

    /// Counts one INVALID packet (and its reason).
    pub(crate) fn count_invalid(&self, r: InvalidReason) {
        self.count(ct_stats::Counter::Invalid);
        self.stats.add(INVALID_BASE + r.index(), 1);
        if let InvalidReason::Malformed(e) = r {
            self.stats.add(MALFORMED_BASE + e.index(), 1);
        }
    }

    /// All counters, summed over CPUs.
    pub(crate) fn totals(&self) -> Totals {
        Totals {
            c: self.stats.sum(),
        }
    }

    /// The settings, valid for the read-side section.
    pub(crate) fn config<'g>(&self, rcu: &'g Rcu) -> &'g Config {
        self.config.read(rcu)
    }

    /// Replaces the settings with `f` applied to a copy (process context);
    /// concurrent updates retry on top of each other, and the old settings
    /// are freed by an RCU callback a grace period after the swap.
    pub(crate) fn update_config(&self, f: impl Fn(&mut Config)) -> Result {
        self.config.update(f)
    }
}
