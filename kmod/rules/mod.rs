// SPDX-License-Identifier: GPL-2.0

//! Rulesets in the kernel: one per namespace, tables `filter`, `nat` and
//! `mangle`, replaced atomically (the packet path is `crate::pkt`).
//!
//! A namespace's [`RulesNet`] holds one RCU-published [`Ruleset`]: a
//! generation and up to three [`Loaded`] tables, each the decoded entries
//! (`nat::codec`), the blob it came from (given back verbatim by
//! `RulesGet`), per-CPU counters and LOG rate-limit state. A replace
//! decodes and validates every table of the request first, outside any
//! lock that the packet path takes, then, under one mutex, checks the
//! generation, publishes a new `Ruleset` (tables not named in the request
//! are carried over, counters and all), waits for a grace period and frees
//! what was replaced. A packet reads the ruleset pointer once per hook, so
//! within a hook it sees one generation of every table; a packet crossing a
//! replace between two hooks sees the old ruleset at one and the new at the
//! other, as in iptables and nftables. Connections keep their NAT bindings:
//! those live in the connection table.

pub(crate) mod genl;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use kernel::alloc::{flags::GFP_KERNEL, KBox, KVVec};
use kernel::prelude::*;
use nat::codec::{self, Entry, Table, TableInfo};
use nat::eval::TokenBucket;
use nat::rule::TableKind;

use crate::sys::percpu::{Counter, PerCpu, PerCpuSlice};
use crate::sys::rcu::{self, Rcu};
use crate::sys::sync::{LockClassKey, Mutex, MutexGuard, SpinLockBh};

/// Counted events of the rule path (`rfw_abi::rules_stats`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub(crate) enum RStat {
    NatNoTuple,
    NatNoAddress,
    RewriteFailed,
    NatBindings,
    Rejected,
    Logged,
    LogSuppressed,
    Queued,
    MasqFlushed,
    Unparsed,
}

/// Number of [`RStat`] values.
pub(crate) const N_RSTAT: usize = RStat::Unparsed as usize + 1;

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
    /// little-endian packets then bytes) start the counters.
    pub(crate) fn new(
        blob: &[u8],
        counters: Option<&[u8]>,
    ) -> core::result::Result<KBox<Loaded>, LoadError> {
        if blob.len() > rfw_abi::rules_table::BLOB_MAX {
            return Err(LoadError::TooBig);
        }
        let n = codec::entries_needed(blob).map_err(LoadError::Codec)?;
        let mut entries = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| LoadError::NoMemory)?;
        for _ in 0..n {
            entries
                .push(Entry::EMPTY, GFP_KERNEL)
                .map_err(|_| LoadError::NoMemory)?;
        }
        let info = codec::decode_into(blob, &mut entries)
            .map_err(LoadError::Codec)?
            .info();
        let used = info.attach(&entries).map_or(0, |t| t.entries().len());
        let mut copy =
            KVVec::with_capacity(blob.len(), GFP_KERNEL).map_err(|_| LoadError::NoMemory)?;
        copy.extend_from_slice(blob, GFP_KERNEL)
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
        let mut log = KVVec::with_capacity(used, GFP_KERNEL).map_err(|_| LoadError::NoMemory)?;
        for _ in 0..used {
            log.push(TokenBucket::default(), GFP_KERNEL)
                .map_err(|_| LoadError::NoMemory)?;
        }
        KBox::new(
            Loaded {
                info,
                entries,
                blob: copy,
                counters: c,
                log: SpinLockBh::new(log, c"rfw_log_state", &LOG_CLASS),
            },
            GFP_KERNEL,
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
/// Tables are owned through raw pointers so that a replace can carry a
/// table over into the next generation without copying it: a table belongs
/// to every generation that points to it, and is freed by the replace that
/// drops it from the current one (after a grace period) or by namespace
/// exit.
pub(crate) struct Ruleset {
    /// Bumped by every replace.
    pub(crate) generation: u32,
    tables: [Option<NonNull<Loaded>>; 3],
}

// SAFETY: the tables are immutable once published (counters are per-CPU,
// the log state has its own try-lock).
unsafe impl Sync for Ruleset {}
// SAFETY: see `Sync`.
unsafe impl Send for Ruleset {}

impl Ruleset {
    /// The table of `kind`, if loaded.
    pub(crate) fn get(&self, kind: TableKind) -> Option<&Loaded> {
        // A table pointer of a reachable ruleset is live (see the type docs
        // and `RulesNet::replace`).
        // SAFETY: so it is valid as long as `self` is.
        self.tables[kind as usize].map(|p| unsafe { p.as_ref() })
    }

    /// True when no table is loaded.
    pub(crate) fn is_empty(&self) -> bool {
        self.tables.iter().all(Option::is_none)
    }
}

/// See the module docs.
pub(crate) struct RulesNet {
    current: AtomicPtr<Ruleset>,
    stats: PerCpu<[Counter; N_RSTAT]>,
    /// Set by the first NAT binding of the namespace and never cleared:
    /// from then on the NAT hooks rewrite packets of bound connections
    /// even when no table is loaded any more.
    nat_used: AtomicBool,
}

impl RulesNet {
    /// An empty ruleset (generation 0).
    pub(crate) fn new() -> Result<Self> {
        let empty = KBox::new(
            Ruleset {
                generation: 0,
                tables: [None; 3],
            },
            GFP_KERNEL,
        )?;
        Ok(RulesNet {
            current: AtomicPtr::new(KBox::into_raw(empty)),
            stats: PerCpu::zeroed()?,
            nat_used: AtomicBool::new(false),
        })
    }

    /// The ruleset, valid for the read-side section.
    #[inline]
    pub(crate) fn current<'g>(&self, _rcu: &'g Rcu) -> &'g Ruleset {
        let p = self.current.load(Ordering::Acquire);
        // Never null; a replaced ruleset is freed a grace period after the
        // swap (see `replace`).
        // SAFETY: so it is valid for the section `'g`.
        unsafe { &*p }
    }

    /// The ruleset, while the replace mutex is held (nothing frees it then).
    pub(crate) fn current_locked<'l>(&self, _lock: &'l RulesLock) -> &'l Ruleset {
        let p = self.current.load(Ordering::Acquire);
        // Only `replace`, under the mutex, swaps and frees rulesets.
        // SAFETY: so `p` stays valid while `_lock` is held.
        unsafe { &*p }
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
    pub(crate) fn count(&self, s: RStat) {
        self.stats.add(s as usize, 1);
    }

    /// Counters summed over CPUs.
    pub(crate) fn totals(&self) -> [u64; N_RSTAT] {
        self.stats.sum()
    }

    /// Installs `new` tables (by kind) atomically; `expect` is the
    /// generation the caller read, if it cares. Process context.
    pub(crate) fn replace(
        &self,
        new: [Option<KBox<Loaded>>; 3],
        expect: Option<u32>,
    ) -> core::result::Result<u32, ReplaceError> {
        let _g = RulesLock::new();
        let cur_p = self.current.load(Ordering::Acquire);
        // Replaces are serialised by the mutex: nobody else swaps or frees
        // `current` while we hold it.
        // SAFETY: so `cur_p` is live.
        let cur = unsafe { &*cur_p };
        if expect.is_some_and(|g| g != cur.generation) {
            return Err(ReplaceError::Stale(cur.generation));
        }
        let generation = cur.generation.wrapping_add(1);
        let mut tables = cur.tables;
        let next = KBox::new(Ruleset { generation, tables }, GFP_KERNEL)
            .map_err(|_| ReplaceError::NoMemory)?;
        // Nothing can fail from here on: hand the new tables over.
        let next = KBox::into_raw(next);
        let mut replaced: [Option<NonNull<Loaded>>; 3] = [None; 3];
        for (i, t) in new.into_iter().enumerate() {
            if let Some(t) = t {
                replaced[i] = tables[i];
                tables[i] = Some(NonNull::from(KBox::leak(t)));
            }
        }
        // SAFETY: `next` is ours and unpublished.
        unsafe { (*next).tables = tables };
        self.current.store(next, Ordering::Release);
        rcu::synchronize_expedited();
        // A grace period after the swap: no packet sees the old ruleset or
        // the tables it alone held.
        // SAFETY: `cur_p` came from `KBox::into_raw`; the replaced tables from `KBox::leak`.
        unsafe {
            drop(KBox::from_raw(cur_p));
            for p in replaced.into_iter().flatten() {
                drop(KBox::from_raw(p.as_ptr()));
            }
        }
        Ok(generation)
    }
}

impl Drop for RulesNet {
    fn drop(&mut self) {
        // Dropped in pernet `exit`: no hook or command can reach us.
        let p = *self.current.get_mut();
        // `p` came from `KBox::into_raw`, its tables from `KBox::leak`, and
        // SAFETY: each table belongs to the current ruleset alone now.
        unsafe {
            let set = KBox::from_raw(p);
            for t in set.tables.into_iter().flatten() {
                drop(KBox::from_raw(t.as_ptr()));
            }
        }
    }
}

/// Why a replace failed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ReplaceError {
    /// The ruleset is at this other generation now.
    Stale(u32),
    /// Out of memory.
    NoMemory,
}

/// The lockdep class of [`RULES_MUTEX`].
static RULES_MUTEX_CLASS: LockClassKey = LockClassKey::new();
/// Serialises replaces, in all namespaces (replaces are rare and short).
static RULES_MUTEX: Mutex<()> = Mutex::new((), c"rfw_rules_mutex", &RULES_MUTEX_CLASS);

/// Initialises the replace mutex: module init calls it before the netlink
/// family, whose commands take the mutex, is registered.
pub(crate) fn init() {
    RULES_MUTEX.init();
}

/// The replace mutex, held: released on drop.
pub(crate) struct RulesLock {
    _guard: MutexGuard<()>,
}

impl RulesLock {
    /// Takes the mutex. Process context: may sleep.
    pub(crate) fn new() -> Self {
        RulesLock {
            _guard: RULES_MUTEX.lock(),
        }
    }
}
