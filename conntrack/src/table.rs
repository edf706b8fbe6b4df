//! The connection table: a [`Table`] trait the kernel module implements
//! with its RCU hash table, and `HostTable` (feature `host`, hashbrown)
//! for tests, benchmarks, fuzzing and host tools.
//!
//! Kernel counterpart: the hash table, `__nf_conntrack_find_get()`,
//! `__nf_conntrack_confirm()`, `nf_ct_delete()`, `early_drop()` and
//! `gc_worker()` in `net/netfilter/nf_conntrack_core.c`.
//!
//! # Contract
//! * Both tuples of a confirmed entry are indexed; [`Table::lookup`]
//!   returns the entry and the [`Direction`] of the tuple that matched.
//! * [`Table::insert`] indexes a new entry; when the table is at capacity
//!   it first tries to evict an entry that is expired or
//!   [`Conn::can_early_drop`] (not ASSURED, i.e. never saw a reply or
//!   a stream; or a closing TCP connection: Linux's early drop), else
//!   fails with [`InsertError::Full`]. It fails with
//!   [`InsertError::Clash`] when its original tuple is taken: another
//!   packet of the same flow inserted it first (two CPUs, as in the DNS
//!   A/AAAA race), and the tracker then takes that entry instead, as
//!   Linux's `nf_ct_resolve_clash()` gives the later packet the conntrack
//!   already in the table. Evictions and refusals are counted in
//!   [`TableStats`].
//! * A table may index an entry before it is confirmed, by its original
//!   tuple only: the kernel table links the original direction at the
//!   packet's first hook, lets NAT write the reply tuple in place, and
//!   links the reply direction when the packet leaves its last hook,
//!   setting [`Status::CONFIRMED`] (the kernel table's confirmation). `HostTable` indexes
//!   both and sets CONFIRMED on insert.
//! * The [`ConnKey`] of a confirmed entry never changes: lock-free readers
//!   of a concurrent table compare tuples while a writer updates the
//!   entry. [`Table::with_conn`] therefore gives `&ConnKey` and a
//!   [`ConnRef`]: the lock-free [`ConnState`], the status word and, for
//!   TCP only, `&mut Tcp` under the entry's lock; [`Table::with_state`]
//!   only the `ConnRef`, for the per-packet update (a table that stores
//!   the key apart need not assemble it, and one that keeps TCP state
//!   under a lock need take it for TCP alone).
//! * [`Table::expire`] removes expired entries, examining at most `budget`
//!   entries per call (bounded work, like one `gc_worker` pass).
//! * A concurrent implementation implements the trait for a shared handle
//!   (e.g. `impl Table for &RcuTable`), taking its per-entry lock inside
//!   [`Table::with_conn`]; `&mut self` then asks for nothing more.
//! * [`Status::TABLE_PRIVATE`] is the table's: this crate never sets or
//!   reads it.

use crate::conn::{Conn, ConnKey, ConnRef, StatusWord};
#[cfg(doc)]
use crate::conn::{ConnState, Status};
use crate::tuple::{Direction, Tuple};
use core::fmt;

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsertError {
    /// At capacity and nothing could be evicted.
    Full,
    /// The entry's original tuple is already in the table.
    Clash,
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InsertError::Full => "table full, nothing could be evicted",
            InsertError::Clash => "the connection's original tuple is already in the table",
        })
    }
}

/// Counted table events (like `/proc/net/stat/nf_conntrack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Entries inserted.
    pub inserted: u64,
    /// Entries removed by [`Table::remove`].
    pub removed: u64,
    /// Entries removed because they expired.
    pub expired: u64,
    /// Entries evicted to make room (`early_drop`).
    pub early_dropped: u64,
    /// Inserts refused: table full (`drop` in Linux's statistics).
    pub insert_full: u64,
    /// Inserts refused: tuple clash (`insert_failed`).
    pub insert_clash: u64,
}

/// Storage for connections, supplied by the caller.
pub trait Table {
    /// A reference to an entry, valid until the entry is removed.
    type Handle: Copy;

    /// Finds the entry one of whose tuples equals `tuple`.
    fn lookup(&mut self, tuple: &Tuple) -> Option<(Self::Handle, Direction)>;

    /// The entries' status words.
    type Status: StatusWord;

    /// Runs `f` on the entry's key (read-only: the key of an indexed
    /// entry never changes) and its [`ConnRef`] (in a concurrent table,
    /// under the entry's lock); `None` if the handle is stale.
    fn with_conn<R>(
        &mut self,
        h: Self::Handle,
        f: impl FnOnce(&ConnKey, ConnRef<'_, Self::Status>) -> R,
    ) -> Option<R>;

    /// Runs `f` on the entry's [`ConnRef`] only, for the per-packet update
    /// (a concurrent table takes the entry's lock for TCP only); `None` if
    /// the handle is stale.
    fn with_state<R>(
        &mut self,
        h: Self::Handle,
        f: impl FnOnce(ConnRef<'_, Self::Status>) -> R,
    ) -> Option<R> {
        self.with_conn(h, |_, c| f(c))
    }

    /// Inserts a new entry (see the module contract: the table may index
    /// it before it is confirmed; `HostTable` sets [`Status::CONFIRMED`]).
    fn insert(&mut self, conn: Conn, now: u64) -> Result<Self::Handle, InsertError>;

    /// Removes an entry; false if the handle is stale.
    fn remove(&mut self, h: Self::Handle) -> bool;

    /// Removes expired entries, examining at most `budget` of them; returns
    /// how many were removed.
    fn expire(&mut self, now: u64, budget: usize) -> usize;

    /// Number of entries.
    fn len(&self) -> usize;

    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counted events.
    fn stats(&self) -> TableStats;
}

#[cfg(feature = "host")]
pub use host::{HostHandle, HostTable};

#[cfg(feature = "host")]
mod host {
    extern crate alloc;

    use super::{InsertError, Table, TableStats};
    use crate::conn::{AtomicStatus, Conn, ConnKey, ConnRef, Status};
    use crate::tuple::{Direction, HashKey, SipBuildHasher, Tuple};
    use alloc::vec::Vec;
    use hashbrown::HashMap;

    /// How many slots the early drop examines (Linux examines the
    /// entries of `NF_CT_EVICTION_RANGE` = 8 buckets).
    const EVICTION_RANGE: usize = 64;

    /// A handle into a `HostTable`: slot and generation.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct HostHandle {
        slot: u32,
        gen: u32,
    }

    #[derive(Debug, Clone)]
    struct Slot {
        gen: u32,
        conn: Option<Conn>,
    }

    /// A host table: a hashbrown map from both tuples to a slot of a
    /// preallocated slab, hashed with the caller's [`HashKey`]. All memory
    /// is allocated by [`HostTable::new`]; inserts never allocate.
    #[derive(Debug)]
    pub struct HostTable {
        index: HashMap<Tuple, (u32, Direction), SipBuildHasher>,
        slots: Vec<Slot>,
        free: Vec<u32>,
        len: usize,
        gc_cursor: usize,
        drop_cursor: usize,
        stats: TableStats,
    }

    impl HostTable {
        /// A table for at most `capacity` connections.
        pub fn new(capacity: usize, key: HashKey) -> HostTable {
            let capacity = capacity.clamp(1, u32::MAX as usize);
            let mut slots = Vec::with_capacity(capacity);
            slots.resize(capacity, Slot { gen: 0, conn: None });
            HostTable {
                index: HashMap::with_capacity_and_hasher(2 * capacity, SipBuildHasher { key }),
                slots,
                free: (0..capacity as u32).rev().collect(),
                len: 0,
                gc_cursor: 0,
                drop_cursor: 0,
                stats: TableStats::default(),
            }
        }

        /// The capacity.
        pub fn capacity(&self) -> usize {
            self.slots.len()
        }

        /// Reads an entry.
        pub fn get(&self, h: HostHandle) -> Option<&Conn> {
            let s = self.slots.get(h.slot as usize)?;
            if s.gen != h.gen {
                return None;
            }
            s.conn.as_ref()
        }

        /// All entries (for consistency checks and tools).
        pub fn iter(&self) -> impl Iterator<Item = (HostHandle, &Conn)> + '_ {
            self.slots.iter().enumerate().filter_map(|(i, s)| {
                s.conn.as_ref().map(|c| {
                    (
                        HostHandle {
                            slot: i as u32,
                            gen: s.gen,
                        },
                        c,
                    )
                })
            })
        }

        /// Checks the table's invariants: every entry's two tuples map to
        /// it with the right direction, the index holds nothing else, and
        /// the count is right. Returns a description of the first problem.
        pub fn check_consistency(&self) -> Result<(), &'static str> {
            let mut n = 0usize;
            let mut tuples = 0usize;
            for (h, c) in self.iter() {
                n += 1;
                for dir in [Direction::Original, Direction::Reply] {
                    let t = c.tuple(dir);
                    if dir == Direction::Reply && t == c.tuple(Direction::Original) {
                        continue;
                    }
                    tuples += 1;
                    match self.index.get(&t) {
                        Some(&(slot, d)) if slot == h.slot && d == dir => {}
                        _ => return Err("a tuple of an entry is not indexed to it"),
                    }
                }
                if !c.status().has(Status::CONFIRMED) {
                    return Err("an entry in the table is not CONFIRMED");
                }
            }
            if n != self.len {
                return Err("entry count is wrong");
            }
            if tuples != self.index.len() {
                return Err("the index holds tuples of no entry");
            }
            if self.free.len() + self.len != self.slots.len() {
                return Err("free list and count disagree");
            }
            Ok(())
        }

        fn unlink(&mut self, slot: u32) -> Option<Conn> {
            let s = self.slots.get_mut(slot as usize)?;
            let conn = s.conn.take()?;
            s.gen = s.gen.wrapping_add(1);
            for dir in [Direction::Original, Direction::Reply] {
                let t = conn.tuple(dir);
                if let Some(&(sl, _)) = self.index.get(&t) {
                    if sl == slot {
                        self.index.remove(&t);
                    }
                }
            }
            self.free.push(slot);
            self.len -= 1;
            Some(conn)
        }

        /// Linux's early drop: look at up to `EVICTION_RANGE` slots for an
        /// expired entry or one that may be dropped ([`Conn::can_early_drop`]:
        /// not ASSURED, as `early_drop_list()`, or a closing TCP
        /// connection, as `gc_worker_can_early_drop()`), and evict it.
        fn early_drop(&mut self, now: u64) -> bool {
            let n = self.slots.len();
            for _ in 0..EVICTION_RANGE.min(n) {
                let i = self.drop_cursor % n;
                self.drop_cursor = (i + 1) % n;
                let victim = match self.slots.get(i).and_then(|s| s.conn.as_ref()) {
                    Some(c) if c.is_expired(now) => Some(true),
                    Some(c) if c.can_early_drop() => Some(false),
                    _ => None,
                };
                if let Some(expired) = victim {
                    self.unlink(i as u32);
                    if expired {
                        self.stats.expired += 1;
                    } else {
                        self.stats.early_dropped += 1;
                    }
                    return true;
                }
            }
            false
        }
    }

    impl Table for HostTable {
        type Handle = HostHandle;

        fn lookup(&mut self, tuple: &Tuple) -> Option<(HostHandle, Direction)> {
            let &(slot, dir) = self.index.get(tuple)?;
            let gen = self.slots.get(slot as usize)?.gen;
            Some((HostHandle { slot, gen }, dir))
        }

        type Status = AtomicStatus;

        fn with_conn<R>(
            &mut self,
            h: HostHandle,
            f: impl FnOnce(&ConnKey, ConnRef<'_, AtomicStatus>) -> R,
        ) -> Option<R> {
            let s = self.slots.get_mut(h.slot as usize)?;
            if s.gen != h.gen {
                return None;
            }
            // The key is the index's: `f` only reads it.
            let (key, c) = s.conn.as_mut()?.parts();
            Some(f(key, c))
        }

        fn insert(&mut self, conn: Conn, now: u64) -> Result<HostHandle, InsertError> {
            let orig = conn.tuple(Direction::Original);
            let reply = conn.tuple(Direction::Reply);
            if self.index.contains_key(&orig) || self.index.contains_key(&reply) {
                self.stats.insert_clash += 1;
                return Err(InsertError::Clash);
            }
            if self.free.is_empty() && !self.early_drop(now) {
                self.stats.insert_full += 1;
                return Err(InsertError::Full);
            }
            let Some(slot) = self.free.pop() else {
                self.stats.insert_full += 1;
                return Err(InsertError::Full);
            };
            conn.status_word().confirm();
            let Some(s) = self.slots.get_mut(slot as usize) else {
                return Err(InsertError::Full);
            };
            s.conn = Some(conn);
            let gen = s.gen;
            self.index.insert(orig, (slot, Direction::Original));
            if reply != orig {
                self.index.insert(reply, (slot, Direction::Reply));
            }
            self.len += 1;
            self.stats.inserted += 1;
            Ok(HostHandle { slot, gen })
        }

        fn remove(&mut self, h: HostHandle) -> bool {
            match self.slots.get(h.slot as usize) {
                Some(s) if s.gen == h.gen && s.conn.is_some() => {}
                _ => return false,
            }
            self.stats.removed += 1;
            self.unlink(h.slot).is_some()
        }

        fn expire(&mut self, now: u64, budget: usize) -> usize {
            let n = self.slots.len();
            let mut removed = 0;
            for _ in 0..budget.min(n) {
                let i = self.gc_cursor % n;
                self.gc_cursor = (i + 1) % n;
                let expired = matches!(
                    self.slots.get(i).and_then(|s| s.conn.as_ref()),
                    Some(c) if c.is_expired(now)
                );
                if expired {
                    self.unlink(i as u32);
                    self.stats.expired += 1;
                    removed += 1;
                }
            }
            removed
        }

        fn len(&self) -> usize {
            self.len
        }

        fn stats(&self) -> TableStats {
            self.stats
        }
    }
}
