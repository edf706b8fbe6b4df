// SPDX-License-Identifier: GPL-2.0

//! Rulesets in the kernel: one per namespace, tables `filter`, `nat` and
//! `mangle`, replaced atomically (the packet path is `crate::pkt`).
//!
//! A namespace's [`RulesNet`] holds one RCU-published [`Ruleset`]: a
//! generation and up to three [`Loaded`] tables, each the decoded entries
//! (`nat::codec`), the blob it came from (given back verbatim by
//! `RulesGet`), per-CPU counters and LOG rate-limit state. A replace
//! decodes and validates every table of the request first, outside any
//! lock that the packet path takes, then, under the namespace's own mutex,
//! checks the generation and publishes a new `Ruleset` (tables not named
//! in the request are carried over, counters and all); what was replaced
//! is freed by an RCU callback a grace period later, so a replace neither
//! waits for a grace period nor makes every CPU take part in an expedited
//! one (a loop of replaces from any user namespace would make the whole
//! machine pay). Everything a replace allocates is charged to the caller's
//! memory cgroup (`GFP_KERNEL_ACCOUNT`), as nf_tables charges its rules.
//! A packet reads the ruleset pointer once per hook, so within a hook it
//! sees one generation of every table; a packet crossing a replace between
//! two hooks sees the old ruleset at one and the new at the other, as in
//! iptables and nftables. Connections keep their NAT bindings:
//! those live in the connection table.

pub(crate) mod genl;

use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::alloc::{flags::GFP_KERNEL_ACCOUNT, KBox, KVVec};
use kernel::prelude::*;
use kernel::sync::Arc;
use nat::codec::{self, Entry, EntryKind, Table, TableInfo};
use nat::eval::TokenBucket;
use nat::rule::{TableKind, Target};
use rfw_abi::rules_stats;

use crate::sys::percpu::{Counter, PerCpu, PerCpuSlice};
use crate::sys::rcu::{Rcu, RcuBox, RcuGuard, RcuValue};
use crate::sys::sync::{LockClassKey, Mutex, MutexGuard, SpinLockBh};

/// One table as loaded.
///
/// # Invariants
/// `info` was returned by `codec::decode_into` over `entries` (so
/// `info.attach(&entries)` is the decoded table); `counters` has two
/// counters per entry; `log` has one bucket per entry.
pub(crate) struct Loaded {
    info: TableInfo,
    entries: KVVec<Entry>,
    blob: KVVec<u8>,
    counters: PerCpuSlice<Counter>,
    /// LOG rate-limit state, one bucket per entry: only tried, never
    /// waited for (see `log_allow`).
    log: SpinLockBh<KVVec<TokenBucket>>,
    /// The table has an `--offload` rule (filter FORWARD only, validated):
    /// the namespace needs the fast path's hook.
    offloads: bool,
}

// A published table is shared by every CPU (see `Ruleset`): it must be
// `Send + Sync` of its own accord.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Loaded>();
};

/// The lockdep class of every table's `Loaded::log` lock.
static LOG_CLASS: LockClassKey = LockClassKey::new();

impl Loaded {
    /// Decodes and validates `blob`; `counters` (16 bytes per entry,
    /// little-endian packets then bytes) start the counters. The memory
    /// is charged to the caller's memory cgroup, the per-CPU counters too
    /// (`crate::sys::percpu`). Process context.
    pub(crate) fn new(
        blob: &[u8],
        counters: Option<&[u8]>,
    ) -> core::result::Result<Arc<Loaded>, LoadError> {
        if blob.len() > rfw_abi::rules_table::BLOB_MAX {
            return Err(LoadError::TooBig);
        }
        let n = codec::entries_needed(blob).map_err(LoadError::Codec)?;
        let mut entries =
            KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT).map_err(|_| LoadError::NoMemory)?;
        for _ in 0..n {
            entries
                .push(Entry::EMPTY, GFP_KERNEL_ACCOUNT)
                .map_err(|_| LoadError::NoMemory)?;
        }
        let info = codec::decode_into(blob, &mut entries)
            .map_err(LoadError::Codec)?
            .info();
        let used = info.attach(&entries).map_or(0, |t| t.entries().len());
        let offloads = info.attach(&entries).is_some_and(|t| {
            t.entries()
                .iter()
                .any(|e| matches!(e.kind(), EntryKind::Rule(r) if r.target == Target::Offload))
        });
        let mut copy = KVVec::with_capacity(blob.len(), GFP_KERNEL_ACCOUNT)
            .map_err(|_| LoadError::NoMemory)?;
        copy.extend_from_slice(blob, GFP_KERNEL_ACCOUNT)
            .map_err(|_| LoadError::NoMemory)?;
        let mut c = PerCpuSlice::zeroed(used * 2).map_err(|_| LoadError::NoMemory)?;
        if let Some(raw) = counters {
            const W: usize = rfw_abi::rules_table::COUNTER_BYTES;
            if raw.len() % W != 0 || raw.len() / W > used {
                return Err(LoadError::Counters);
            }
            c.preset(
                raw.chunks_exact(8)
                    .map(|b| u64::from_le_bytes(<[u8; 8]>::try_from(b).unwrap_or([0; 8]))),
            );
        }
        let mut log =
            KVVec::with_capacity(used, GFP_KERNEL_ACCOUNT).map_err(|_| LoadError::NoMemory)?;
        for _ in 0..used {
            log.push(TokenBucket::default(), GFP_KERNEL_ACCOUNT)
                .map_err(|_| LoadError::NoMemory)?;
        }
        Arc::new(
            Loaded {
                info,
                entries,
                blob: copy,
                counters: c,
                log: SpinLockBh::new(log, c"rfw_log_state", &LOG_CLASS),
                offloads,
            },
            GFP_KERNEL_ACCOUNT,
        )
        .map_err(|_| LoadError::NoMemory)
    }

    /// The decoded table.
    pub(crate) fn table(&self) -> Option<Table<'_>> {
        self.info.attach(&self.entries)
    }

    /// Which table this is.
    pub(crate) fn kind(&self) -> TableKind {
        self.info.kind()
    }

    /// The blob it was loaded from.
    pub(crate) fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Counts a hit of entry `i`.
    #[inline]
    pub(crate) fn hit(&self, i: usize, bytes: u32) {
        self.counters.add_pair(i * 2, 1, u64::from(bytes));
    }

    /// Packets and bytes of entry `i`, all CPUs.
    pub(crate) fn counter(&self, i: usize) -> (u64, u64) {
        (self.counters.sum(i * 2), self.counters.sum(i * 2 + 1))
    }

    /// Number of entries.
    pub(crate) fn entry_count(&self) -> usize {
        self.counters.len() / 2
    }

    /// Takes a LOG token for entry `i` at `now_ns`: false when another
    /// CPU is logging right now (the line is suppressed, not waited for)
    /// or the rule is over its rate.
    pub(crate) fn log_allow(&self, i: usize, now_ns: u64, rate: u16, burst: u16) -> bool {
        let Some(mut log) = self.log.try_lock() else {
            return false;
        };
        log.get_mut(i).is_some_and(|b| b.allow(now_ns, rate, burst))
    }
}

/// Why a table could not be loaded.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LoadError {
    /// The blob is larger than `BLOB_MAX`.
    TooBig,
    /// The codec refused it.
    Codec(codec::Error),
    /// Bad counters attribute.
    Counters,
    /// Out of memory.
    NoMemory,
}

/// A namespace's ruleset at one generation.
///
/// Tables are reference-counted so that a replace can carry a table over
/// into the next generation without copying it: a table belongs to every
/// generation that holds it (and to a `RulesGet` building its reply), and
/// is freed with the last of them: normally the ruleset a replace dropped
/// from the current one (after a grace period), or the last one, at
/// namespace exit. Cloning a ruleset copies its generation and takes a
/// reference to each table; nothing is allocated.
#[derive(Clone)]
pub(crate) struct Ruleset {
    /// Bumped by every replace.
    pub(crate) generation: u32,
    tables: [Option<Arc<Loaded>>; 3],
}

impl Ruleset {
    /// The table of `kind`, if loaded.
    #[inline]
    pub(crate) fn get(&self, kind: TableKind) -> Option<&Loaded> {
        self.tables[kind as usize].as_deref()
    }

    /// True when no table is loaded.
    pub(crate) fn is_empty(&self) -> bool {
        self.tables.iter().all(Option::is_none)
    }

    /// True when the filter table has an `--offload` rule.
    #[inline]
    pub(crate) fn offloads(&self) -> bool {
        self.get(TableKind::Filter).is_some_and(|t| t.offloads)
    }
}

/// See the module docs.
pub(crate) struct RulesNet {
    current: RcuBox<Ruleset>,
    /// Serialises this namespace's replaces (and `RulesGet`'s read of a
    /// generation), as nf_tables' per-namespace `commit_mutex` does: one
    /// namespace's edits never wait for another's.
    lock: Pin<KBox<Mutex<()>>>,
    stats: PerCpu<[Counter; rules_stats::Counter::COUNT]>,
    /// Set by the first NAT binding of the namespace and never cleared:
    /// from then on the NAT hooks rewrite packets of bound connections
    /// even when no table is loaded any more.
    nat_used: AtomicBool,
}

impl RulesNet {
    /// An empty ruleset (generation 0).
    pub(crate) fn new() -> Result<Self> {
        let empty = RcuValue::new(
            Ruleset {
                generation: 0,
                tables: [None, None, None],
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        let lock = KBox::pin(
            Mutex::new((), c"rfw_rules_mutex", &RULES_MUTEX_CLASS),
            GFP_KERNEL_ACCOUNT,
        )?;
        Ok(RulesNet {
            current: RcuBox::new(empty),
            lock,
            stats: PerCpu::zeroed()?,
            nat_used: AtomicBool::new(false),
        })
    }

    /// The ruleset, valid for the read-side section.
    #[inline]
    pub(crate) fn current<'g>(&self, rcu: &'g Rcu) -> &'g Ruleset {
        self.current.read(rcu)
    }

    /// Takes this namespace's replace mutex. Process context: may sleep.
    pub(crate) fn lock(&self) -> RulesLock<'_> {
        RulesLock {
            _guard: self.lock.as_ref().lock_pinned(),
        }
    }

    /// The ruleset, while the replace mutex is held: the generation that
    /// stays current until the mutex is released. A copy that keeps its
    /// tables alive, so it may be used outside RCU (where the reply's
    /// allocations may sleep).
    pub(crate) fn current_locked(&self, _lock: &RulesLock<'_>) -> Ruleset {
        let rcu = RcuGuard::new();
        self.current.read(&rcu).clone()
    }

    /// True once any connection of the namespace was NATed.
    #[inline]
    pub(crate) fn nat_used(&self) -> bool {
        self.nat_used.load(Ordering::Relaxed)
    }

    /// Notes that a connection was NATed.
    pub(crate) fn set_nat_used(&self) {
        if !self.nat_used() {
            self.nat_used.store(true, Ordering::Relaxed);
        }
    }

    /// Counts one event.
    #[inline]
    pub(crate) fn count(&self, s: rules_stats::Counter) {
        self.stats.add(s.index(), 1);
    }

    /// Counters summed over CPUs.
    pub(crate) fn totals(&self) -> [u64; rules_stats::Counter::COUNT] {
        self.stats.sum()
    }

    /// Installs `new` tables (by kind) atomically; `expect` is the
    /// generation the caller read, if it cares. Process context.
    pub(crate) fn replace(
        &self,
        new: [Change; 3],
        expect: Option<u32>,
    ) -> core::result::Result<u32, ReplaceError> {
        let lock = self.lock();
        // Replaces are serialised by the mutex: `cur` stays current until
        // we publish `next`.
        let cur = self.current_locked(&lock);
        if expect.is_some_and(|g| g != cur.generation) {
            return Err(ReplaceError::Stale(cur.generation));
        }
        let generation = cur.generation.wrapping_add(1);
        let mut tables = cur.tables;
        for (i, c) in new.into_iter().enumerate() {
            match c {
                Change::Keep => {}
                Change::Set(t) => tables[i] = Some(t),
                Change::Remove => tables[i] = None,
            }
        }
        let next = RcuValue::new(Ruleset { generation, tables }, GFP_KERNEL_ACCOUNT)
            .map_err(|_| ReplaceError::NoMemory)?;
        // Publishes `next`; a grace period later no packet sees the old
        // ruleset, and an RCU callback frees it with the tables it alone
        // held (`Ruleset`'s drop frees memory only: callback context).
        self.current.replace(next);
        drop(lock);
        Ok(generation)
    }
}

/// What a replace does to one table.
pub(crate) enum Change {
    /// The table stays as it is (loaded or not).
    Keep,
    /// The table becomes this one.
    Set(Arc<Loaded>),
    /// The table goes: its chains no longer run (`nft delete table`).
    Remove,
}

/// Why a replace failed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ReplaceError {
    /// The ruleset is at this other generation now.
    Stale(u32),
    /// Out of memory.
    NoMemory,
}

/// The lockdep class of every namespace's `RulesNet::lock`.
static RULES_MUTEX_CLASS: LockClassKey = LockClassKey::new();

/// A namespace's replace mutex, held: released on drop.
pub(crate) struct RulesLock<'a> {
    _guard: MutexGuard<'a, ()>,
}
