// SPDX-License-Identifier: GPL-2.0

//! The connection table: RCU hash tables shared by every namespace, as
//! Linux's `nf_conntrack_hash` is, one per address family.
//!
//! # Layout
//! * The buckets (`crate::sys::rculist::Chains`, which holds the pointer
//!   work): one word per bucket, the head of a singly linked chain of
//!   nodes. Every [`Entry`] has two nodes, one per direction, each
//!   linked into the chain of its tuple's hash (an entry whose two tuples
//!   are equal links only the first). A link is a tagged pointer: the
//!   address of the node it points to, with the node's direction in bit 0.
//! * IPv4 and IPv6 connections live in chains of their own, each family
//!   with as many buckets, in entries of their own size and slab cache
//!   (`rfw_conn`, `rfw_conn6`): tuples are stored at their family's size
//!   (`conntrack::compact`). Linux hashes both families into one table of
//!   `nf_conn`s, every one with room for IPv6 addresses and TCP state.
//!   Code outside this file holds an [`EntryRef`], a handle of either.
//! * An entry: 16 bytes of chain nodes, 8 of namespace, the original
//!   tuple, the reply tuple, a 16-bit status word (atomic), the counters
//!   and deadline (32 bytes of atomics), for TCP a pointer to its
//!   window state (52 bytes, `kmalloc`ed apart: no other protocol needs
//!   them), and a pointer to the fast path's record of an offloaded
//!   connection (`ct::offload`, likewise apart). 104 bytes for IPv4, 152
//!   for IPv6 (checked at compile time); nf_conntrack's `nf_conn` with its
//!   extensions takes 383 bytes of slab.
//!
//! # Life of an entry (`__nf_conntrack_confirm`, `nf_conntrack_alter_reply`)
//! * The first packet of a connection inserts it at its first hook,
//!   *unconfirmed*, linked by its original tuple only, in the chain its
//!   lookup hashed already: one allocation, no second hash. Another packet
//!   of the same flow (another CPU) finds it there and goes with it; one
//!   that raced it to the insert meets it under the bucket lock and is
//!   handed it by the tracker, as Linux's `nf_ct_resolve_clash()` hands the
//!   later packet the conntrack already in the table.
//! * NAT writes the reply tuple in place while the entry is unconfirmed
//!   ([`EntryRef::set_binding`]), under the state lock: no second entry.
//!   A NAT hook's "is this tuple taken" sees confirmed entries
//!   only, as Linux's does.
//! * When a packet of it leaves its last hook, [`Table::confirm`] seals the
//!   key (the reply tuple never changes again) and links the reply
//!   direction, in the chain the NAT hook's last lookup hashed when that
//!   was the final tuple. If a confirmed connection has that tuple already
//!   (two connections NATed to one tuple at once) or the chain is full,
//!   the entry goes and the packet is dropped, as in Linux.
//! * Per new masqueraded connection: a lookup, the null binding's check at
//!   PRE_ROUTING, MASQUERADE's check at POST_ROUTING, whose chain the
//!   confirmation takes: three hashes, one allocation.
//! * Per new connection of another protocol than TCP: one allocation; a
//!   TCP connection's window state is a second one.
//! * The hash is SipHash-1-3 of the tuple with a random key drawn at load,
//!   XORed with a random per-namespace value (Linux's `net_hash_mix`), so
//!   that equal tuples of two namespaces land in unrelated buckets.
//!
//! # Concurrency
//! * Readers (the packet path, dumps, the collector) walk chains under RCU
//!   with acquire loads and no lock. The original tuple never changes, and
//!   the reply tuple never after confirmation: a reader compares the
//!   original tuple of any entry, and the reply tuple of a sealed one (only
//!   those have their reply node linked), without a lock
//!   (`sys::striped::SealedCell`). An unconfirmed entry's reply tuple is
//!   read under its state lock ([`Entry::key_now`]).
//! * Writers that link or unlink take the lock of each bucket involved:
//!   1024 striped spinlocks, two taken in index order (the second with
//!   `spin_lock_nested`), as `nf_conntrack_double_lock()` does.
//! * A packet updates its connection's counters, deadline and status bits
//!   with atomic operations, without a lock ([`ConnState`], [`Word`]), as
//!   Linux's `nf_ct_refresh_acct()` does; only TCP's window state is
//!   updated under the entry's state lock. The state locks are another
//!   1024 stripes, indexed by the entry's address. A stripe costs no memory
//!   per entry (Linux has a spinlock in each `nf_conn`); two flows sharing
//!   a stripe contend only on the same instant. Under the state lock are
//!   also the writes of an unconfirmed reply tuple (NAT), the seal
//!   (confirmation) and the DYING mark (removal), so that each sees the
//!   others whole. State locks are never held while taking a bucket lock,
//!   nor the reverse, so the two classes never nest.
//! * Every lock is taken with bottom halves disabled: the packet path runs
//!   in softirq and process context alike.
//! * Removal marks the entry DYING under its state lock (so it is removed
//!   once, and NAT and confirmation leave it alone from then on), unlinks
//!   its nodes under the bucket locks (closing an unlinked reply node for
//!   good, so that a confirmation racing it cannot link it), and pushes the entry
//!   on the graveyard, a lock-free stack. The collector frees the graveyard
//!   after `synchronize_rcu()`: memory is freed only after a grace period,
//!   and a reader standing on an unlinked node still finds valid `next`
//!   links behind it. Entries never move between chains, so a lookup never
//!   needs to restart (Linux's `hlist_nulls` restart exists because its
//!   slab is `SLAB_TYPESAFE_BY_RCU` and entries are reused at once).
//!
//! # Bounds
//! * Inserting into a chain of [`MAX_CHAIN`] nodes or more is refused and
//!   counted (`nf_conntrack_core.c`'s `MAX_CHAINLEN`, 64); lookups that walk
//!   past that length are counted too (a sign of hash flooding).
//! * Each namespace has an entry limit, and all namespaces together have
//!   another, `max_total` (a module parameter; Linux has none: each
//!   namespace may hold `nf_conntrack_max` entries). At either limit, an
//!   insert first tries to evict an entry of its own namespace that was
//!   never assured, or one unconfirmed for a second, from the next buckets
//!   (Linux's `early_drop()`: 8 buckets; here on until 64 of the
//!   namespace's entries were looked at, at most 1024 buckets), else fails
//!   and the packet is dropped; a drop at the shared limit alone is also
//!   counted as `global_full`.
//! * An entry whose creating packet is dropped before its last hook goes
//!   with it (`Table::drop_unconfirmed`): at once when rfw drops it, when
//!   a later packet reuses its `sk_buff` if the kernel dropped it between
//!   hooks (see `crate::pkt`), else by early drop or the collector.

use core::mem::size_of;
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use conntrack::compact::{self, Addr, OrigTuple, ReplyTuple};
use conntrack::conn::{ConnKey, ConnRef, ConnState, StatusWord};
use conntrack::proto::tcp::{Tcp, TcpState};
use conntrack::{Conn, Direction, Family, HashKey, InsertError, Status, Tuple};
use kernel::alloc::{
    flags::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_KERNEL_ACCOUNT},
    KBox,
};
use kernel::prelude::*;
use rfw_abi::ct_stats;

use super::alias::Aliases;
use super::net::CtNet;
use super::offload::Offload;
use crate::sys::global::{Global, Published};
use crate::sys::rcu::{Rcu, RcuGuard, RcuOption, RcuValue};
use crate::sys::rculist::{self, Chains, Linked, ParentRef, Unlinked};
use crate::sys::striped::{SealedCell, StripedLocks};
use crate::sys::sync::LockClassKey;
use crate::sys::workqueue::{impl_has_delayed_work, DelayedWork, WorkItem};

/// The lockdep class of the IPv4 chains' bucket-lock stripes.
static BUCKET_LOCK_CLASS: LockClassKey = LockClassKey::new();
/// The lockdep class of the IPv6 chains' (a class has one name: lockdep
/// warns when two lock names share a key). A writer holds the stripes of
/// one family's chains at a time: the classes never nest.
static BUCKET_LOCK_CLASS6: LockClassKey = LockClassKey::new();
/// The lockdep class of the state-lock stripes (never nested with the
/// bucket locks; see the module docs).
static STATE_LOCK_CLASS: LockClassKey = LockClassKey::new();
/// Longest chain an insert may extend (`MAX_CHAINLEN` in Linux).
pub(crate) const MAX_CHAIN: usize = 64;
/// Nodes a walk visits at most: chains are bounded by [`MAX_CHAIN`] at
/// insert and at confirmation.
pub(super) const WALK_MAX: usize = 4 * MAX_CHAIN;
/// Times a walk starts its chain again after straying into the graveyard
/// before it gives up (as "not found"). Each restart needs a removal in
/// the same chain in the same few instructions: more than one is rare.
const WALK_RESTARTS: usize = 16;
/// Buckets an early drop examines (`NF_CT_EVICTION_RANGE`).
const EVICTION_RANGE: usize = 8;
/// The most buckets early drop visits (see [`Table::early_drop`]).
const EVICTION_SCAN_MAX: usize = 1024;
/// How many of the namespace's entries early drop looks at before it
/// gives up (after [`EVICTION_RANGE`] buckets at least).
const EVICTION_CANDIDATES: usize = 64;
/// How long an entry must have been unconfirmed before early drop may
/// evict it (milliseconds): its packet crossed its hooks in microseconds
/// or was dropped between them, unless it waits in a user-space queue.
const UNCONFIRMED_EVICT_MS: u32 = 1000;
/// Largest bucket count accepted from the `hashsize` parameter.
const MAX_BUCKETS: usize = 1 << 24;
/// Graveyard length at which the collector is woken at once.
const GRAVEYARD_KICK: usize = 4096;
/// Collector period.
const GC_PERIOD_MS: u32 = 100;
/// The collector visits every bucket once per this many runs (a full pass
/// every 64 x 100 ms = 6.4 s).
const GC_RUNS_PER_PASS: usize = 64;
/// Entries the collector removes per run at most (bounded work; it runs
/// again at once when it hit the bound).
const GC_MAX_REMOVALS: usize = 8192;

/// An entry's status word: [`Status`] bits, changed with atomic operations
/// (the per-packet update sets SEEN_REPLY and ASSURED without a lock);
/// CONFIRMED is the seal of its key, set by [`Table::confirm`] alone.
pub(crate) type Word = crate::sys::striped::Word<{ Status::CONFIRMED }>;

impl StatusWord for Word {
    #[inline]
    fn load(&self) -> Status {
        Status(self.bits())
    }

    #[inline]
    fn set(&self, mask: u16) -> Status {
        Status(self.set_bits(mask))
    }

    #[inline]
    fn clear(&self, mask: u16) {
        self.clear_bits(mask)
    }
}

/// What an entry holds besides its chain links.
pub(crate) struct Tracked<A: Addr> {
    /// The namespace's tracking state; also the namespace's identity. A
    /// namespace's entries are removed, and a grace period passes, before
    /// its `CtNet` is dropped (see `CtNet`).
    net: ParentRef<CtNet>,
    /// The original tuple (fixed); the status word, whose CONFIRMED bit
    /// seals the reply tuple (written by NAT until confirmation; see the
    /// module docs); the counters and deadline (atomics, no lock); and,
    /// under the state lock, the TCP state of a TCP connection, in an
    /// allocation of its own (52 bytes that no other protocol needs).
    cell: SealedCell<
        OrigTuple<A>,
        ReplyTuple<A>,
        ConnState,
        Option<KBox<Tcp>>,
        { Status::CONFIRMED },
    >,
    /// The fast path's record of an offloaded connection (`--offload`):
    /// absent for every other (see `ct::offload`).
    offload: RcuOption<Offload>,
}

/// One connection of family `A`: its two chain nodes (one per direction;
/// the reply one linked at confirmation; once the entry is unlinked and
/// buried, node 1 links the graveyard) and what it tracks.
pub(crate) type Entry<A> = Linked<Tracked<A>>;

/// Size of an IPv4 entry, as allocated (reported by `fwctl ct stats`).
pub(crate) const ENTRY_SIZE_V4: usize = size_of::<Entry<[u8; 4]>>();
/// Size of an IPv6 entry, as allocated.
pub(crate) const ENTRY_SIZE_V6: usize = size_of::<Entry<[u8; 16]>>();
/// Size of a TCP connection's window state, allocated apart (`kmalloc`
/// rounds it up to 64 bytes).
pub(crate) const TCP_STATE_SIZE: usize = size_of::<Tcp>();

// The memory goal: at most a third of nf_conntrack's 383 bytes of slab
// per connection (`nf_conn` with its extensions); 104 bytes for IPv4.
const _: () = assert!(ENTRY_SIZE_V4 <= 128);
const _: () = assert!(ENTRY_SIZE_V6 <= 152);

/// A family's entries: its address type, and where the table keeps them.
pub(crate) trait Fam: Addr {
    /// The other family.
    type Other: Fam;
    /// The family's chains.
    fn chains(t: &Table) -> &Chains<Tracked<Self>>;
    /// A handle of an entry of the family.
    fn wrap(e: &Entry<Self>) -> EntryRef<'_>;
}

impl Fam for [u8; 4] {
    type Other = [u8; 16];

    #[inline]
    fn chains(t: &Table) -> &Chains<Tracked<Self>> {
        &t.v4
    }

    #[inline]
    fn wrap(e: &Entry<Self>) -> EntryRef<'_> {
        EntryRef::V4(e)
    }
}

impl Fam for [u8; 16] {
    type Other = [u8; 4];

    #[inline]
    fn chains(t: &Table) -> &Chains<Tracked<Self>> {
        &t.v6
    }

    #[inline]
    fn wrap(e: &Entry<Self>) -> EntryRef<'_> {
        EntryRef::V6(e)
    }
}

/// A connection's key, status, deadline, counters and TCP state at one
/// instant (what a dump or a get sends).
pub(crate) struct Snapshot {
    pub(crate) key: ConnKey,
    pub(crate) status: Status,
    pub(crate) expires_in: u32,
    pub(crate) tcp_state: Option<TcpState>,
    pub(crate) counters: [(u32, u64); 2],
    /// The ruleset generation of the connection's fast-path record, once
    /// both directions' routes are known: the connection is on the fast
    /// path while that is the namespace's generation.
    pub(crate) offload_gen: Option<u32>,
}

impl<A: Fam> Entry<A> {
    /// The original tuple (never changes).
    #[inline]
    fn orig(&self) -> Tuple {
        self.cell.fixed().tuple()
    }

    /// Both tuples, once the entry is confirmed (they never change then);
    /// `None` before: use [`Entry::key_now`].
    #[inline]
    fn key(&self) -> Option<ConnKey> {
        self.cell
            .sealed()
            .map(|r| compact::join(self.cell.fixed(), r))
    }

    /// Both tuples as they are now: without a lock once confirmed, else
    /// under the state lock (NAT may still change the reply tuple).
    fn key_now(&self, table: &Table) -> ConnKey {
        self.key().unwrap_or_else(|| {
            table
                .state_locks
                .with_locked(&self.cell, |r, _| compact::join(self.cell.fixed(), r))
        })
    }

    /// True when the tuple of direction `dir` is `t`: the original tuple
    /// always, the reply tuple once sealed (its node is linked only then).
    #[inline]
    fn matches(&self, dir: Direction, t: &Tuple) -> bool {
        match dir {
            Direction::Original => self.cell.fixed().matches(t),
            Direction::Reply => self
                .cell
                .sealed()
                .is_some_and(|r| r.matches(self.cell.fixed(), t)),
        }
    }

    /// The status bits now.
    #[inline]
    fn status(&self) -> Status {
        StatusWord::load(self.cell.word())
    }

    /// True for a TCP connection (it has TCP state, under the lock).
    #[inline]
    fn is_tcp(&self) -> bool {
        self.cell.fixed().proto() == conntrack::ipproto::TCP
    }

    /// Runs `f` on the key and the connection's parts, under the state
    /// lock, whether or not the entry is dying.
    fn with_conn_raw<R>(
        &self,
        table: &Table,
        f: impl FnOnce(&ConnKey, ConnRef<'_, Word>) -> R,
    ) -> R {
        table.state_locks.with_locked(&self.cell, |r, tcp| {
            let key = compact::join(self.cell.fixed(), r);
            f(
                &key,
                ConnRef {
                    state: self.cell.shared(),
                    status: self.cell.word(),
                    tcp: tcp.as_deref_mut(),
                },
            )
        })
    }

    /// The per-packet update's access: `f` gets the connection's parts
    /// unless the entry is dying. A TCP connection's under the state lock
    /// (its window state); any other's without any lock: its counters,
    /// deadline and status are atomics, as Linux refreshes a UDP, ICMP or
    /// generic conntrack without a lock (`nf_ct_refresh_acct()`).
    #[inline]
    fn with_state<R>(&self, table: &Table, f: impl FnOnce(ConnRef<'_, Word>) -> R) -> Option<R> {
        let (state, status) = (self.cell.shared(), self.cell.word());
        if !self.is_tcp() {
            return (!self.status().has(Status::DYING)).then(|| {
                f(ConnRef {
                    state,
                    status,
                    tcp: None,
                })
            });
        }
        table.state_locks.with_locked(&self.cell, |_, tcp| {
            (!self.status().has(Status::DYING)).then(|| {
                f(ConnRef {
                    state,
                    status,
                    tcp: tcp.as_deref_mut(),
                })
            })
        })
    }
}

/// A handle of an entry of either family, for as long as the RCU
/// read-side section `'g` it was found in. The table keeps the families
/// in chains of their own (entries of their own sizes); code outside it
/// holds this.
#[derive(Clone, Copy)]
pub(crate) enum EntryRef<'g> {
    /// An IPv4 connection.
    V4(&'g Entry<[u8; 4]>),
    /// An IPv6 connection.
    V6(&'g Entry<[u8; 16]>),
}

/// Runs `$body` with `$e` bound to the typed entry behind handle `$h`.
macro_rules! each {
    ($h:expr, $e:ident => $body:expr) => {
        match $h {
            EntryRef::V4($e) => $body,
            EntryRef::V6($e) => $body,
        }
    };
}

impl<'g> EntryRef<'g> {
    /// The entry's address: its identity (compared only).
    #[inline]
    pub(crate) fn addr(self) -> usize {
        each!(self, e => e as *const _ as usize)
    }

    /// The entry's family.
    #[inline]
    pub(crate) fn family(self) -> Family {
        match self {
            EntryRef::V4(_) => Family::Ipv4,
            EntryRef::V6(_) => Family::Ipv6,
        }
    }

    /// Both tuples, once the entry is confirmed; `None` before.
    #[inline]
    pub(crate) fn key(self) -> Option<ConnKey> {
        each!(self, e => e.key())
    }

    /// Both tuples as they are now (under the state lock if unconfirmed).
    pub(crate) fn key_now(self, table: &Table) -> ConnKey {
        each!(self, e => e.key_now(table))
    }

    /// True when the entry belongs to `net`.
    #[inline]
    pub(crate) fn is_of(self, net: &CtNet) -> bool {
        each!(self, e => e.net.is(net))
    }

    /// The entry's namespace state.
    #[inline]
    pub(crate) fn net(self) -> &'g CtNet {
        each!(self, e => e.net.get())
    }

    /// The status bits now (no lock).
    #[inline]
    pub(crate) fn status(self) -> Status {
        each!(self, e => e.status())
    }

    /// The per-packet update's access (see [`Entry::with_state`]): no lock
    /// but for TCP; `None` if the entry is dying.
    #[inline]
    pub(crate) fn with_state<R>(
        self,
        table: &Table,
        f: impl FnOnce(ConnRef<'_, Word>) -> R,
    ) -> Option<R> {
        each!(self, e => e.with_state(table, f))
    }

    /// Runs `f` on the key and the connection's parts under the state
    /// lock unless the entry is dying.
    pub(crate) fn with_conn<R>(
        self,
        table: &Table,
        f: impl FnOnce(&ConnKey, ConnRef<'_, Word>) -> R,
    ) -> Option<R> {
        each!(self, e => e.with_conn_raw(table, |k, c| {
            (!c.status.load().has(Status::DYING)).then(|| f(k, c))
        }))
    }

    /// The key and status at one instant, unless the entry is dying.
    pub(crate) fn key_and_status(self, table: &Table) -> Option<(ConnKey, Status)> {
        let status = self.status();
        if status.has(Status::DYING) {
            return None;
        }
        Some((self.key_now(table), status))
    }

    /// What a dump sends of a confirmed entry; `None` if it is not
    /// confirmed or dying.
    pub(crate) fn snapshot(self, table: &Table, now: u64) -> Option<Snapshot> {
        let offload_gen = each!(self, e => e
            .offload
            .read(&RcuGuard::new())
            .filter(|o| o.ready())
            .map(|o| o.gen));
        let snap = |k: &ConnKey, c: ConnRef<'_, Word>| {
            let status = c.status.load();
            status.has(Status::CONFIRMED).then(|| Snapshot {
                key: *k,
                status,
                expires_in: c.state.expires_in(now),
                tcp_state: c.tcp_state(),
                counters: [
                    c.state.counters(Direction::Original),
                    c.state.counters(Direction::Reply),
                ],
                offload_gen,
            })
        };
        // The state lock for TCP only: a confirmed key is read without it.
        each!(self, e => match (e.is_tcp(), e.key()) {
            (false, Some(k)) => {
                let c = ConnRef { state: e.cell.shared(), status: e.cell.word(), tcp: None };
                if c.status.load().has(Status::DYING) { None } else { snap(&k, c) }
            }
            _ => self.with_conn(table, snap).flatten(),
        })
    }

    /// NAT set-up (`nf_nat_setup_info` -> `nf_conntrack_alter_reply`):
    /// gives the unconfirmed entry the reply tuple `reply` and adds the
    /// status bits `set`, unless another packet of the connection set up
    /// this manip first (`done`: its bit is set) — then the entry keeps
    /// that binding. `Err` when the entry is confirmed or dying, or
    /// `reply` is not of its family: it takes no new binding. Returns
    /// whether this call wrote the binding.
    pub(crate) fn set_binding(
        self,
        table: &Table,
        reply: &Tuple,
        set: u16,
        done: u16,
    ) -> core::result::Result<bool, ()> {
        each!(self, e => {
            let new = ReplyTuple::of(reply).ok_or(())?;
            table
                .state_locks
                .with_unsealed(&e.cell, |r, _| {
                    let st = e.status();
                    if st.has(Status::DYING) {
                        return Err(());
                    }
                    if st.has(done) {
                        return Ok(false);
                    }
                    *r = new;
                    e.cell.word().set(set);
                    Ok(true)
                })
                .unwrap_or(Err(()))
        })
    }
}

impl<'g> EntryRef<'g> {
    /// The connection's fast-path record, if it has one.
    #[inline]
    pub(crate) fn offload(self, rcu: &'g Rcu) -> Option<&'g Offload> {
        each!(self, e => e.offload.read(rcu))
    }

    /// The connection's fast-path record for ruleset generation `gen`:
    /// the one it has, or a new one (`None` without memory, or if the
    /// record it has is of another generation: the caller ends that one).
    pub(crate) fn offload_for(self, rcu: &'g Rcu, gen: u32) -> Option<&'g Offload> {
        each!(self, e => {
            if let Some(o) = e.offload.read(rcu) {
                return (o.gen == gen).then_some(o);
            }
            // Atomic context, no warning (a failure leaves the connection
            // on the normal path), charged as the entries are.
            let account = GFP_KERNEL_ACCOUNT & !GFP_KERNEL;
            let v = RcuValue::new(Offload::new(gen), GFP_ATOMIC | __GFP_NOWARN | account).ok()?;
            // Another CPU may have published first: then take theirs.
            if e.offload.publish(v).is_ok() {
                e.net.get().offloads.fetch_add(1, Ordering::Relaxed);
            }
            e.offload.read(rcu).filter(|o| o.gen == gen)
        })
    }

    /// Ends the offload of record `cur` (one this handle's entry had):
    /// the record goes, a grace period from now, with its route
    /// references. Counts `why` if it was a whole offload (both routes
    /// known). False if `cur` was gone already.
    pub(crate) fn offload_end(self, cur: &Offload, why: ct_stats::Counter) -> bool {
        let ready = cur.ready();
        let taken = each!(self, e => e.offload.take_if(cur));
        if taken {
            self.net().offloads.fetch_sub(1, Ordering::Relaxed);
            if ready {
                self.net().count(why);
            }
        }
        taken
    }

    /// A packet of `len` bytes in `dir` forwarded by the fast path:
    /// counted, and the deadline moved to `now + timeout_ms`.
    #[inline]
    pub(crate) fn offloaded_packet(self, dir: Direction, len: u64, now: u64, timeout_ms: u32) {
        each!(self, e => e.cell.shared().offloaded_packet(dir, len, now, timeout_ms))
    }

    /// Makes a TCP connection's window checks liberal in both directions
    /// (`flow_offload_fixup_tcp`): the fast path forwards segments its
    /// tracker does not see.
    pub(crate) fn set_tcp_liberal(self, table: &Table) {
        each!(self, e => {
            if e.is_tcp() {
                table.state_locks.with_locked(&e.cell, |_, tcp| {
                    if let Some(t) = tcp.as_deref_mut() {
                        t.set_liberal();
                    }
                });
            }
        })
    }

    /// True for a TCP connection in ESTABLISHED (read under the state
    /// lock), or any connection of another protocol.
    pub(crate) fn may_offload(self, table: &Table) -> bool {
        each!(self, e => {
            if !e.is_tcp() {
                return true;
            }
            table
                .state_locks
                .with_locked(&e.cell, |_, tcp| tcp.as_deref().is_some_and(Tcp::can_offload))
        })
    }
}

/// How a walk of one chain ended (see [`Table::walk_once`]).
enum Walk<'g, A: Fam> {
    /// The callback stopped at this node.
    Hit(&'g Entry<A>, Direction),
    /// The end of the chain.
    End,
    /// The walk left the chain: the node it stood on was buried.
    Stray,
}

/// A walk of a chain left it before its end (see [`Table::for_each_in_bucket`]).
#[derive(Debug)]
pub(crate) struct Strayed;

/// Why an entry was removed (the statistic it counts in).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Deleted by a command, a flush, namespace exit or the tracker (RST).
    Deleted,
    /// Its deadline passed.
    Expired,
    /// Evicted to make room.
    EarlyDrop,
    /// Never confirmed (its packet died after rfw saw it).
    Reaped,
}

impl Removal {
    fn stat(self) -> ct_stats::Counter {
        match self {
            Removal::Deleted => ct_stats::Counter::Deleted,
            Removal::Expired => ct_stats::Counter::Expired,
            Removal::EarlyDrop => ct_stats::Counter::EarlyDrop,
            Removal::Reaped => ct_stats::Counter::UnconfirmedReaped,
        }
    }
}

/// Why [`Table::confirm`] refused an entry (it is removed; the packet
/// that would have confirmed it is dropped, as Linux drops a packet whose
/// conntrack cannot be inserted at `__nf_conntrack_confirm`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Unconfirmable {
    /// A confirmed connection already has its reply tuple (counted as
    /// `insert_failed`).
    Clash,
    /// The reply tuple's chain is full ([`MAX_CHAIN`]; `chain_too_long`).
    ChainTooLong,
    /// The entry is being removed.
    Gone,
}

/// The table.
///
/// # Invariants
///
/// * The table is pinned (in a box) and cancels `gc` before it drops
///   anything else (see `Drop`).
pub(crate) struct Table {
    /// The IPv4 connections: buckets, their lock stripes, the graveyard
    /// and the entries' slab (`rfw_conn`).
    v4: Chains<Tracked<[u8; 4]>>,
    /// The IPv6 connections, as many buckets (`rfw_conn6`).
    v6: Chains<Tracked<[u8; 16]>>,
    /// Connections with both DNAT and SNAT, by their in-between tuple.
    aliases: Aliases,
    state_locks: StripedLocks,
    key: HashKey,
    default_limit: u32,
    /// Entries of all namespaces, confirmed or not (each namespace counts
    /// its own in `CtNet::entries`; both change together).
    entries: AtomicU32,
    /// The most entries all namespaces may hold together.
    max_total: u32,
    gc: DelayedWork<Table>,
    gc_cursor: AtomicUsize,
}

// `Table::drop` cancels the collector first.
impl_has_delayed_work!(Table, gc);

/// The collector.
impl WorkItem for Table {
    fn run(&self) {
        self.gc_run();
    }
}

/// The table of the loaded module (empty before init and after exit).
static TABLE: Global<Table> = Global::new();

/// The table.
///
/// Callable from anything that runs while the module is loaded: hooks,
/// netlink commands, pernet callbacks, the collector. The table is published
/// before any of them is registered and freed after all are gone (see
/// `Registration`).
#[inline]
pub(crate) fn get() -> &'static Table {
    // `Registration::new` published the table before anything that calls
    // this was registered; `Registration` is dropped after all of them
    // were unregistered.
    TABLE.get()
}

/// The direction of node `i` of an entry.
fn dir_of(i: usize) -> Direction {
    if i == 0 {
        Direction::Original
    } else {
        Direction::Reply
    }
}

/// The bucket count Linux would choose for this much RAM
/// (`nf_conntrack_init_start()`).
fn default_buckets() -> usize {
    let pages = crate::sys::params::totalram_pages();
    let bytes = pages.saturating_mul(4096);
    let gib = 1usize << 30;
    let n = if bytes > 4 * gib {
        262_144
    } else if bytes > gib {
        65_536
    } else {
        bytes / 16_384 / size_of::<usize>()
    };
    n.max(1024)
}

impl Table {
    fn new() -> Result<Pin<KBox<Table>>> {
        let (p_hash, p_max) = (crate::sys::params::hashsize(), crate::sys::params::max());
        let n = match p_hash as usize {
            0 => default_buckets(),
            n => n.clamp(1024, MAX_BUCKETS),
        };
        // Linux: max = buckets when sized from RAM (average chain of 2 nodes).
        let default_limit = match p_max {
            0 => n.min(rfw_abi::ct_config::LIMIT_MAX as usize) as u32,
            m => m.min(rfw_abi::ct_config::LIMIT_MAX),
        };
        // All namespaces together: 4 entries per RAM-sized bucket (the
        // bucket count Linux would choose, whatever `hashsize` says: the
        // cap is about memory, and a small table with long chains stays
        // allowed, as nf_conntrack_max does not follow hashsize), or per
        // bucket if `hashsize` asked for more, and no less than one
        // namespace's default limit. With the RAM-sized count that is an
        // average chain of 8 nodes, far below `MAX_CHAIN`, and at most
        // 1 Mi entries (about 192 MiB), 0.6% of RAM below 1 GiB and under
        // 5% anywhere (the count steps up at 1 and 4 GiB).
        let max_total = match crate::sys::params::max_total() {
            0 => u32::try_from(default_buckets().max(n).saturating_mul(4))
                .unwrap_or(u32::MAX)
                .max(default_limit),
            m => m,
        };
        crate::sys::params::set_max_total(max_total);
        let v4 = Chains::new(n, c"rfw_conn", c"rfw_bucket_lock", &BUCKET_LOCK_CLASS)?;
        let v6 = Chains::new(n, c"rfw_conn6", c"rfw_bucket_lock6", &BUCKET_LOCK_CLASS6)?;
        let aliases = Aliases::new(n)?;
        let state_locks = StripedLocks::new(c"rfw_state_lock", &STATE_LOCK_CLASS)?;
        let mut seed = [0u8; 16];
        crate::sys::random::fill(&mut seed);
        let t = KBox::pin(
            Table {
                v4,
                v6,
                aliases,
                state_locks,
                key: HashKey::from_bytes(seed),
                default_limit,
                entries: AtomicU32::new(0),
                max_total,
                gc: DelayedWork::new(),
                gc_cursor: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?;
        // The table is in its final place (pinned in its box).
        DelayedWork::init(t.as_ref());
        Ok(t)
    }

    /// The hash key (NAT's `--random` port offsets are keyed with it).
    pub(crate) fn hash_key(&self) -> &HashKey {
        &self.key
    }

    /// Bucket count, of each family.
    pub(crate) fn buckets(&self) -> usize {
        self.v4.len()
    }

    /// Buckets a dump walks: each family's ([`Table::for_each_in_bucket`]).
    pub(crate) fn dump_buckets(&self) -> usize {
        2 * self.buckets()
    }

    /// Limit a new namespace starts with.
    pub(crate) fn default_limit(&self) -> u32 {
        self.default_limit
    }

    /// The most entries all namespaces may hold together.
    pub(crate) fn max_total(&self) -> u32 {
        self.max_total
    }

    /// Takes back one entry of `net` from both counts.
    fn uncount(&self, net: &CtNet) {
        net.entries.fetch_sub(1, Ordering::Relaxed);
        self.entries.fetch_sub(1, Ordering::Relaxed);
    }

    /// `t`'s chain in `net`, in its family's chains; counted as a hash
    /// (`hashes`).
    fn bucket_of(&self, net: &CtNet, t: &Tuple) -> usize {
        net.count(ct_stats::Counter::Hashes);
        self.scale(net, t, self.buckets())
    }

    /// `t`'s hash in `net` spread over `n` buckets (`reciprocal_scale()`:
    /// the high 32 bits).
    pub(super) fn scale(&self, net: &CtNet, t: &Tuple, n: usize) -> usize {
        let h = t.hash_with_mix(&self.key, net.mix);
        (((h >> 32) * n as u64) >> 32) as usize
    }

    /// The connection of `net` whose packet carries `t` between its
    /// destination and source NAT hooks (see [`Aliases`]), with the
    /// packet's direction and that direction's chain: the fallback
    /// lookup's last resort, after `t` and its inverse.
    pub(crate) fn lookup_between<'g>(
        &'g self,
        rcu: &'g Rcu,
        net: &CtNet,
        t: &Tuple,
    ) -> Option<(EntryRef<'g>, Direction, usize)> {
        let (e, dir) = self.aliases.lookup(self, rcu, net, t)?;
        // An unconfirmed connection has no reply packets yet (and no
        // linked reply node).
        let key = match dir {
            Direction::Original => e.key_now(self),
            Direction::Reply => e.key()?,
        };
        Some((e, dir, self.bucket_of(net, &key.tuple(dir))))
    }

    /// Indexes the unconfirmed entry `e` (whose original direction hangs
    /// in chain `b0`) by `after_dnat`, the tuple its packets carry after
    /// its new destination NAT (see [`Aliases`]).
    pub(crate) fn add_alias(&self, rcu: &Rcu, e: EntryRef<'_>, b0: usize, after_dnat: &Tuple) {
        self.aliases.add(self, rcu, e, b0, after_dnat);
        // A removal marks the entry DYING before it removes the alias: if
        // it came before the add, the alias is removed here.
        if e.status().has(Status::DYING) {
            self.aliases.remove(self, e, after_dnat);
        }
    }

    /// Walks chain `b` once, calling `f` on each node until it returns
    /// true: [`Walk::Hit`] with the node `f` stopped at, [`Walk::End`] at
    /// the end of the chain, or [`Walk::Stray`] when the walk left the
    /// chain because the entry it stood on was buried meanwhile (the nodes
    /// after that one were not visited). Also returns the nodes walked.
    ///
    /// The caller holds an RCU read-side section or the bucket's lock for
    /// `'g` (`_rcu` proves the former; under the lock, the caller passes a
    /// token of the section it is also in). Under the lock no walk strays:
    /// every linked node stays linked until the lock is released.
    fn walk_once<'g, A: Fam>(
        &self,
        rcu: &'g Rcu,
        b: usize,
        mut f: impl FnMut(&'g Entry<A>, Direction) -> bool,
    ) -> (Walk<'g, A>, usize) {
        match A::chains(self).walk_once(rcu, b, WALK_MAX, |e, i| f(e, dir_of(i))) {
            (rculist::Walk::Hit(e, i), len) => (Walk::Hit(e, dir_of(i)), len),
            (rculist::Walk::End, len) => (Walk::End, len),
            (rculist::Walk::Stray, len) => (Walk::Stray, len),
        }
    }

    /// Walks chain `b` as [`Self::walk_once`] does, starting again from the
    /// head when the walk strays (Linux's `hlist_nulls` restart): every
    /// entry linked in the chain for the whole walk is visited, some
    /// perhaps twice, so `f` must not mind a second call on the same node.
    /// Returns the node `f` stopped at and the chain length of the last
    /// pass.
    fn walk<'g, A: Fam>(
        &self,
        rcu: &'g Rcu,
        b: usize,
        mut f: impl FnMut(&'g Entry<A>, Direction) -> bool,
    ) -> (Option<(&'g Entry<A>, Direction)>, usize) {
        let mut len = 0;
        for _ in 0..WALK_RESTARTS {
            match self.walk_once(rcu, b, &mut f) {
                (Walk::Hit(e, dir), n) => return (Some((e, dir)), n),
                (Walk::End, n) => return (None, n),
                (Walk::Stray, n) => len = n,
            }
        }
        (None, len)
    }

    /// Finds the entry of `net` one of whose tuples is `t`.
    pub(crate) fn lookup<'g>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        t: &Tuple,
    ) -> Option<(EntryRef<'g>, Direction)> {
        self.lookup_at(rcu, net, t).map(|(e, dir, _)| (e, dir))
    }

    /// [`Self::lookup`], also giving the chain the entry was found in (its
    /// `bucket_of_entry(e, dir)`, without hashing the tuple again).
    pub(crate) fn lookup_at<'g>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        t: &Tuple,
    ) -> Option<(EntryRef<'g>, Direction, usize)> {
        let (hit, b) = self.find(rcu, net, t);
        hit.map(|(e, dir)| (e, dir, b))
    }

    /// [`Self::lookup`], also giving `t`'s chain, hit or miss (an insert
    /// after a miss need not hash the tuple again).
    pub(crate) fn find<'g>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        t: &Tuple,
    ) -> (Option<(EntryRef<'g>, Direction)>, usize) {
        match t.family {
            Family::Ipv4 => self.find_in::<[u8; 4]>(rcu, net, t),
            Family::Ipv6 => self.find_in::<[u8; 16]>(rcu, net, t),
        }
    }

    /// [`Self::find`] in the chains of family `A`, `t`'s.
    fn find_in<'g, A: Fam>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        t: &Tuple,
    ) -> (Option<(EntryRef<'g>, Direction)>, usize) {
        let b = self.bucket_of(net, t);
        let (hit, len) = self.walk::<A>(rcu, b, |e, dir| e.net.is(net) && e.matches(dir, t));
        if len > MAX_CHAIN {
            net.count(ct_stats::Counter::LongChainLookups);
        }
        (hit.map(|(e, dir)| (A::wrap(e), dir)), b)
    }

    /// The bucket the tuple of direction `dir` of `e` hashes to.
    pub(crate) fn bucket_of_entry(&self, e: EntryRef<'_>, dir: Direction) -> usize {
        self.bucket_of(e.net(), &e.key_now(self).tuple(dir))
    }

    /// Finds the entry at `addr` again, if it is still linked in chain `b`
    /// under direction `dir`: how a later hook of the same packet re-uses
    /// what an earlier hook found (see `crate::pkt`) without trusting a
    /// pointer that may have been freed since. Only addresses are compared.
    pub(crate) fn relocate<'g>(
        &self,
        rcu: &'g Rcu,
        family: Family,
        b: usize,
        addr: usize,
        dir: Direction,
    ) -> Option<EntryRef<'g>> {
        match family {
            Family::Ipv4 => self.relocate_in::<[u8; 4]>(rcu, b, addr, dir),
            Family::Ipv6 => self.relocate_in::<[u8; 16]>(rcu, b, addr, dir),
        }
    }

    /// [`Self::relocate`] in the chains of family `A`.
    fn relocate_in<'g, A: Fam>(
        &self,
        rcu: &'g Rcu,
        b: usize,
        addr: usize,
        dir: Direction,
    ) -> Option<EntryRef<'g>> {
        if b >= self.buckets() {
            return None;
        }
        let mut n = 0;
        let (hit, _) = self.walk::<A>(rcu, b, |e, d| {
            n += 1;
            n > MAX_CHAIN * 2 || (d == dir && e as *const Entry<A> as usize == addr)
        });
        hit.filter(|(e, _)| core::ptr::eq(*e, addr as *const Entry<A>))
            .map(|(e, _)| A::wrap(e))
    }

    /// Confirms `e`: the packet that created it (or another packet of the
    /// connection) leaves its last hook (`__nf_conntrack_confirm`). Seals
    /// the key (NAT can change it no more), then links the reply
    /// direction into the chain of its tuple, unless another confirmed
    /// connection already has that tuple or the chain is full: then `e`
    /// is removed and the caller drops the packet, as Linux does. Two
    /// packets of one connection may confirm it at once: the first seals
    /// it, the second finds it confirmed and returns `Ok`.
    ///
    /// `hint`: a tuple NAT looked up while choosing the reply, with its
    /// chain; when it is the final reply tuple, the chain is not hashed
    /// again (Linux stashes the original hash the same way).
    pub(crate) fn confirm(
        &self,
        rcu: &Rcu,
        e: EntryRef<'_>,
        hint: Option<(Tuple, usize)>,
    ) -> core::result::Result<(), Unconfirmable> {
        each!(e, e => self.confirm_in(rcu, e, hint))
    }

    /// [`Self::confirm`] for an entry of family `A`.
    fn confirm_in<A: Fam>(
        &self,
        rcu: &Rcu,
        e: &Entry<A>,
        hint: Option<(Tuple, usize)>,
    ) -> core::result::Result<(), Unconfirmable> {
        let sealed = self.state_locks.seal(&e.cell, |r, _| {
            if e.status().has(Status::DYING) {
                return None;
            }
            e.cell.word().clear(Status::TABLE_PRIVATE);
            Some(r.tuple(e.cell.fixed()))
        });
        let Some(reply) = sealed else {
            // Confirmed by another packet, or dying.
            let st = e.status();
            return if st.has(Status::CONFIRMED) && !st.has(Status::DYING) {
                Ok(())
            } else {
                Err(Unconfirmable::Gone)
            };
        };
        let net = e.net.get();
        net.unconfirmed.fetch_sub(1, Ordering::Relaxed);
        let orig = e.orig();
        if orig != reply {
            let b1 = match hint {
                Some((t, b)) if t == reply => b,
                _ => self.bucket_of(net, &reply),
            };
            let held = A::chains(self).lock_pair(b1, b1);
            // Confirmed entries only: an unconfirmed one whose original
            // tuple is this reply tuple (the same flow opened from the
            // other end at the same instant) meets this entry's original
            // tuple when it confirms, and goes.
            let (clash, len) = self.walk::<A>(rcu, b1, |o, d| {
                !core::ptr::eq(o, e)
                    && o.net.is(net)
                    && o.matches(d, &reply)
                    && (d == Direction::Reply || o.cell.sealed().is_some())
            });
            let refuse = if clash.is_some() {
                Some((Unconfirmable::Clash, ct_stats::Counter::InsertFailed))
            } else if len >= MAX_CHAIN {
                Some((Unconfirmable::ChainTooLong, ct_stats::Counter::ChainTooLong))
            } else if !A::chains(self).link_second(&held, e, b1) {
                // Unlinked meanwhile (flush, namespace exit).
                Some((Unconfirmable::Gone, ct_stats::Counter::Deleted))
            } else {
                None
            };
            drop(held);
            if let Some((why, stat)) = refuse {
                if why != Unconfirmable::Gone {
                    if let Some((_, key)) = self.mark_dying(e) {
                        // Counted as confirmed: `unconfirmed` went above.
                        self.finish_removal(e, &key, true, stat);
                    }
                }
                return Err(why);
            }
        }
        // A connection with destination NAT only is found by its reply
        // tuple from now on, between its NAT hooks too: its alias goes
        // (see `Aliases`).
        if let Some(k) = e.key() {
            if let (Some(a), None) = (k.after_dnat(false), k.between_nat()) {
                self.aliases.remove(self, A::wrap(e), &a);
            }
        }
        Ok(())
    }

    /// True when an entry of `net` other than the one at `except` has `t`
    /// as one of its linked tuples (NAT's "is this tuple taken",
    /// `nf_conntrack_tuple_taken`: like Linux, it does not see the reply
    /// tuples of unconfirmed connections; confirmation catches a clash).
    /// Also returns `t`'s chain, for [`Table::confirm`].
    pub(crate) fn in_use_by_other(
        &self,
        rcu: &Rcu,
        net: &CtNet,
        t: &Tuple,
        except: usize,
    ) -> (bool, usize) {
        match t.family {
            Family::Ipv4 => self.in_use_in::<[u8; 4]>(rcu, net, t, except),
            Family::Ipv6 => self.in_use_in::<[u8; 16]>(rcu, net, t, except),
        }
    }

    /// [`Self::in_use_by_other`] in the chains of family `A`.
    fn in_use_in<A: Fam>(&self, rcu: &Rcu, net: &CtNet, t: &Tuple, except: usize) -> (bool, usize) {
        let b = self.bucket_of(net, t);
        let (hit, _) = self.walk::<A>(rcu, b, |e, dir| {
            e as *const Entry<A> as usize != except && e.net.is(net) && e.matches(dir, t)
        });
        (hit.is_some(), b)
    }

    /// Inserts a new, unconfirmed connection of `net`, linked by its
    /// original tuple only (the reply direction is linked at
    /// confirmation, [`Table::confirm`]); see the module docs for the
    /// limit and the chain bound. `b0` is the original tuple's chain if
    /// the caller's lookup computed it. Returns the entry with that chain.
    /// [`InsertError::Clash`] when another entry of `net` has the same
    /// original tuple (another CPU's packet of the flow inserted it since
    /// the lookup; the tracker then takes that one).
    pub(crate) fn insert<'g>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        conn: Conn,
        b0: Option<usize>,
        now: u64,
    ) -> core::result::Result<(EntryRef<'g>, usize), InsertError> {
        match conn.key().orig().family {
            Family::Ipv4 => self.insert_in::<[u8; 4]>(rcu, net, conn, b0, now),
            Family::Ipv6 => self.insert_in::<[u8; 16]>(rcu, net, conn, b0, now),
        }
    }

    /// [`Self::insert`] into the chains of family `A`, the connection's.
    fn insert_in<'g, A: Fam>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        conn: Conn,
        b0: Option<usize>,
        now: u64,
    ) -> core::result::Result<(EntryRef<'g>, usize), InsertError> {
        let (key, state, status, tcp) = conn.into_parts();
        let orig = *key.orig();
        let Some((o, r)) = compact::split::<A>(&key) else {
            // Tuples of two families: no parser makes them.
            return Err(InsertError::Full);
        };
        let b0 = b0.unwrap_or_else(|| self.bucket_of(net, &orig));

        let limit = net.limit.load(Ordering::Relaxed);
        let n = net.entries.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        // An eviction (of this namespace's entry) makes room under both.
        if (n > limit || total > self.max_total) && !self.early_drop::<A>(rcu, net, b0, now) {
            self.uncount(net);
            if n <= limit {
                net.count(ct_stats::Counter::GlobalFull);
            }
            return Err(InsertError::Full);
        }
        let Some(new) = self.alloc::<A>(net, o, r, state, status, tcp) else {
            self.uncount(net);
            return Err(InsertError::Full);
        };

        let chains = A::chains(self);
        let held = chains.lock_pair(b0, b0);
        let (c0, len0) = self.walk::<A>(rcu, b0, |o, d| o.net.is(net) && o.matches(d, &orig));
        let refuse = if c0.is_some() {
            Some((ct_stats::Counter::InsertFailed, InsertError::Clash))
        } else if len0 >= MAX_CHAIN {
            Some((ct_stats::Counter::ChainTooLong, InsertError::Full))
        } else {
            None
        };
        if let Some((stat, err)) = refuse {
            drop(held);
            self.uncount(net);
            // A clash is resolved by the tracker (it takes the entry
            // there), as Linux resolves it for UDP: not a failure.
            net.count(if err == InsertError::Clash {
                ct_stats::Counter::ClashResolved
            } else {
                stat
            });
            drop(new);
            return Err(err);
        }
        let e = chains.link(&held, new, rcu, b0, None);
        net.unconfirmed.fetch_add(1, Ordering::Relaxed);
        drop(held);
        net.count(ct_stats::Counter::New);
        Ok((A::wrap(e), b0))
    }

    /// A new entry of `net` (atomic allocations: the entry, and a TCP
    /// connection's window state), not linked yet; dropping it frees it.
    fn alloc<A: Fam>(
        &self,
        net: &CtNet,
        orig: OrigTuple<A>,
        reply: ReplyTuple<A>,
        state: ConnState,
        status: Status,
        tcp: Option<Tcp>,
    ) -> Option<rculist::New<'_, Tracked<A>>> {
        let tcp = match tcp {
            Some(t) => {
                net.count(ct_stats::Counter::Allocations);
                // As the entries' cache: no warning (a failure is counted
                // as a drop), charged to the task's memory cgroup
                // (`__GFP_ACCOUNT`, which the `kernel` crate of 6.12 names
                // only inside `GFP_KERNEL_ACCOUNT`).
                let account = GFP_KERNEL_ACCOUNT & !GFP_KERNEL;
                Some(KBox::new(t, GFP_ATOMIC | __GFP_NOWARN | account).ok()?)
            }
            None => None,
        };
        net.count(ct_stats::Counter::Allocations);
        A::chains(self).alloc(Tracked {
            net: ParentRef::new(net),
            cell: SealedCell::new(orig, status.0, reply, state, tcp),
            offload: RcuOption::new(),
        })
    }

    /// Removes `e` if it was never confirmed: the packet that created it
    /// is gone (dropped by rfw, or its `sk_buff` reused by a later packet)
    /// and nothing else will confirm it, as Linux frees an unconfirmed
    /// conntrack with its skb. Counted as reaped. False if `e` is
    /// confirmed or being removed.
    pub(crate) fn drop_unconfirmed(&self, e: EntryRef<'_>) -> bool {
        each!(e, e => {
            // Under the state lock, as confirmation checks DYING.
            let key = self.state_locks.with_locked(&e.cell, |r, _| {
                let st = e.status();
                if st.has(Status::DYING) || st.has(Status::CONFIRMED) {
                    None
                } else {
                    e.cell.word().set(Status::DYING);
                    Some(compact::join(e.cell.fixed(), r))
                }
            });
            match key {
                Some(k) => {
                    self.finish_removal(e, &k, false, Removal::Reaped.stat());
                    true
                }
                None => false,
            }
        })
    }

    /// Marks `e` DYING unless it is already; returns whether it was
    /// confirmed, and its key, final now (nothing writes a dying entry's
    /// key). Under the state lock: confirmation and NAT check DYING under
    /// it before they seal or write the key.
    fn mark_dying<A: Fam>(&self, e: &Entry<A>) -> Option<(bool, ConnKey)> {
        self.state_locks.with_locked(&e.cell, |r, _| {
            let st = e.cell.word().set(Status::DYING);
            if st.has(Status::DYING) {
                None
            } else {
                Some((st.has(Status::CONFIRMED), compact::join(e.cell.fixed(), r)))
            }
        })
    }

    /// Removes an entry; false if it was already being removed.
    pub(crate) fn remove(&self, e: EntryRef<'_>, why: Removal) -> bool {
        each!(e, e => self.remove_in(e, why))
    }

    /// [`Self::remove`] for an entry of family `A`.
    fn remove_in<A: Fam>(&self, e: &Entry<A>, why: Removal) -> bool {
        let Some((was_confirmed, key)) = self.mark_dying(e) else {
            return false;
        };
        self.finish_removal(e, &key, was_confirmed, why.stat());
        true
    }

    /// Unlinks and buries `e`, which the caller marked DYING; `key` is its
    /// final key; counts `stat`.
    fn finish_removal<A: Fam>(
        &self,
        e: &Entry<A>,
        key: &ConnKey,
        was_confirmed: bool,
        stat: ct_stats::Counter,
    ) {
        let net = e.net.get();
        let orig = key.tuple(Direction::Original);
        let reply = key.tuple(Direction::Reply);
        // The reply chain is hashed only if the reply node may be linked:
        // an unconfirmed entry's is not, and `unlink` closes it.
        let b0 = self.bucket_of(net, &orig);
        let b1 = if was_confirmed && orig != reply {
            self.bucket_of(net, &reply)
        } else {
            b0
        };
        let chains = A::chains(self);
        let held = chains.lock_pair(b0, b1);
        let gone = chains.unlink(&held, e, b0, b1);
        drop(held);
        if let Some(a) = key.after_dnat(false) {
            self.aliases.remove(self, A::wrap(e), &a);
        }
        self.uncount(net);
        if !was_confirmed {
            net.unconfirmed.fetch_sub(1, Ordering::Relaxed);
        }
        net.count(stat);
        // The fast path's record goes with the entry now, not when the
        // entry is freed: its route references hold devices.
        let rcu = RcuGuard::new();
        if let Some(o) = e.offload.read(&rcu) {
            let why = if stat == ct_stats::Counter::Expired {
                ct_stats::Counter::OffloadEndExpired
            } else {
                ct_stats::Counter::OffloadEndDeleted
            };
            A::wrap(e).offload_end(o, why);
        }
        drop(rcu);
        if let Some(gone) = gone {
            self.bury(chains, gone);
        }
    }

    /// Queues an unlinked entry for freeing after a grace period (see
    /// `Chains::bury` for how a reader standing on it finds its way);
    /// wakes the collector at once when the graveyard grew long.
    fn bury<A: Fam>(&self, chains: &Chains<Tracked<A>>, gone: Unlinked<'_, Tracked<A>>) {
        if chains.bury(gone) == GRAVEYARD_KICK {
            // `mod_delayed_work` may be called from any context.
            self.gc.modify(0);
        }
    }

    /// Frees the graveyards after a grace period. Process context.
    fn free_graveyard(&self) {
        self.v4.free_graveyard();
        self.v6.free_graveyard();
        self.aliases.free_graveyard();
    }

    /// Evicts one entry of `net` that was never assured, or that has been
    /// unconfirmed for [`UNCONFIRMED_EVICT_MS`], from the buckets starting
    /// at `b` (`early_drop()`; Linux has no unconfirmed entries in its
    /// table: they die with their skb).
    ///
    /// Linux looks at 8 buckets, with its limit at about one entry per
    /// bucket. Here the buckets are shared by every namespace and a
    /// namespace's limit may be far below their count: 8 buckets would
    /// mostly be empty heads, and a namespace with a small limit would find
    /// no victim. So the walk goes on until it has looked at
    /// [`EVICTION_CANDIDATES`] of `net`'s entries, at least
    /// [`EVICTION_RANGE`] buckets and at most [`EVICTION_SCAN_MAX`]: the
    /// work per refused insert stays bounded (a state lock per candidate)
    /// whatever the density.
    ///
    /// The insert's own family's chains are searched first, then the
    /// other family's from the same bucket: the limit counts both.
    fn early_drop<A: Fam>(&self, rcu: &Rcu, net: &CtNet, b: usize, now: u64) -> bool {
        let mut seen = 0;
        self.early_drop_in::<A>(rcu, net, b, now, &mut seen)
            || self.early_drop_in::<A::Other>(rcu, net, b, now, &mut seen)
    }

    /// [`Self::early_drop`] in the chains of family `B`; `seen` counts the
    /// candidates looked at, across both calls.
    fn early_drop_in<B: Fam>(
        &self,
        rcu: &Rcu,
        net: &CtNet,
        b: usize,
        now: u64,
        seen: &mut usize,
    ) -> bool {
        let n = self.buckets().max(1);
        for i in 0..EVICTION_SCAN_MAX.min(n) {
            if i >= EVICTION_RANGE && *seen >= EVICTION_CANDIDATES {
                break;
            }
            let mut victim = None;
            self.walk::<B>(rcu, (b + i) % n, |e, dir| {
                if dir != Direction::Original || !e.net.is(net) {
                    return false;
                }
                *seen += 1;
                let ok = e
                    .with_state(self, |c| {
                        if c.status.load().has(Status::CONFIRMED) {
                            c.can_early_drop() || c.state.is_expired(now)
                        } else {
                            // Younger ones belong to packets in flight.
                            c.state.age_ms(now) >= UNCONFIRMED_EVICT_MS
                        }
                    })
                    .unwrap_or(false);
                if ok {
                    victim = Some(e);
                }
                ok
            });
            if let Some(e) = victim {
                if self.remove_in(e, Removal::EarlyDrop) {
                    return true;
                }
            }
        }
        false
    }

    /// Visits buckets `[from, from + count)` (wrapping) of both families,
    /// removing expired entries and unconfirmed ones seen unconfirmed by an
    /// earlier pass, at most `max_removals` of them; only entries of `only`
    /// if given. Returns (buckets visited, entries removed).
    pub(crate) fn collect(
        &self,
        from: usize,
        count: usize,
        max_removals: usize,
        only: Option<&CtNet>,
        now: u64,
    ) -> (usize, usize) {
        let n = self.buckets().max(1);
        let mut removed = 0;
        let mut visited = 0;
        // One RCU section per 256 buckets: bounded latency for writers
        // waiting on a grace period.
        while visited < count.min(n) && removed < max_removals {
            if visited > 0 {
                crate::sys::sched::cond_resched();
            }
            let rcu = RcuGuard::new();
            let end = (visited + 256).min(count.min(n));
            while visited < end && removed < max_removals {
                let b = (from + visited) % n;
                visited += 1;
                self.collect_chain::<[u8; 4]>(&rcu, b, max_removals, only, now, &mut removed);
                self.collect_chain::<[u8; 16]>(&rcu, b, max_removals, only, now, &mut removed);
            }
        }
        (visited, removed)
    }

    /// [`Self::collect`] of chain `b` of family `A`.
    fn collect_chain<A: Fam>(
        &self,
        rcu: &Rcu,
        b: usize,
        max_removals: usize,
        only: Option<&CtNet>,
        now: u64,
        removed: &mut usize,
    ) {
        if *removed >= max_removals {
            return;
        }
        // One pass, no restart: a second visit in the same run would reap
        // an unconfirmed entry it marked a moment ago. A stray leaves the
        // rest of the chain to the next pass.
        self.walk_once::<A>(rcu, b, |e, dir| {
            if dir != Direction::Original || only.is_some_and(|net| !e.net.is(net)) {
                return false;
            }
            let c = e.cell.shared();
            let word = e.cell.word();
            let st = e.status();
            let why = if st.has(Status::DYING) {
                None
            } else if c.is_expired(now) {
                Some(Removal::Expired)
            } else if st.has(Status::CONFIRMED) {
                None
            } else if st.has(Status::TABLE_PRIVATE) {
                Some(Removal::Reaped)
            } else {
                // Marked for the next pass. A confirmation between the
                // load and this leaves the mark on a confirmed entry,
                // where nothing reads it (dumps mask it out).
                word.set(Status::TABLE_PRIVATE);
                None
            };
            if let Some(why) = why {
                if self.remove_in(e, why) {
                    *removed += 1;
                }
            }
            *removed >= max_removals
        });
    }

    /// Removes every entry of `net`; returns how many.
    pub(crate) fn flush(&self, net: &CtNet) -> u64 {
        self.remove_if(net, |_, _| true)
    }

    /// Removes every entry of `net` for which `f(key, status)` holds
    /// (process context: the whole table is walked, 256 buckets per RCU
    /// section, yielding the CPU between sections).
    pub(crate) fn remove_if(&self, net: &CtNet, f: impl Fn(&ConnKey, Status) -> bool) -> u64 {
        self.remove_where(|e| {
            e.is_of(net) && e.key_and_status(self).is_some_and(|(k, st)| f(&k, st))
        })
    }

    /// Removes every entry of a namespace marked dying (`CtNet::dying`):
    /// one walk for a whole batch of namespaces at exit. A walk can miss
    /// an entry (it gives up on a chain after [`WALK_RESTARTS`] strays), so
    /// the caller repeats until the namespaces hold none.
    pub(crate) fn remove_dying(&self) -> u64 {
        self.remove_where(|e| e.net().dying.load(Ordering::Relaxed))
    }

    /// Ends the offload of every connection of `net` whose fast-path
    /// routes arrive on or leave by device `ifindex` (it went down or
    /// away, or its MTU changed), counted as `offload_end_device`. Process context: a walk of
    /// the whole table, as [`Self::remove_where`].
    pub(crate) fn offload_end_dev(&self, net: &CtNet, ifindex: core::ffi::c_int) -> u64 {
        let mut ended = 0u64;
        if net.offloads.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.walk_all(|rcu, e| {
            if !e.is_of(net) {
                return;
            }
            if let Some(o) = e.offload(rcu).filter(|o| o.uses(ifindex)) {
                if e.offload_end(o, ct_stats::Counter::OffloadEndDevice) {
                    ended += 1;
                }
            }
        });
        ended
    }

    /// Calls `f` on every entry of both families (by its original node),
    /// 256 buckets per RCU section, yielding the CPU between sections.
    /// Process context.
    fn walk_all(&self, mut f: impl FnMut(&Rcu, EntryRef<'_>)) {
        let n = self.buckets().max(1);
        let mut b = 0;
        while b < n {
            let rcu = RcuGuard::new();
            let end = (b + 256).min(n);
            while b < end {
                self.walk::<[u8; 4]>(&rcu, b, |e, dir| {
                    if dir == Direction::Original {
                        f(&rcu, <[u8; 4]>::wrap(e));
                    }
                    false
                });
                self.walk::<[u8; 16]>(&rcu, b, |e, dir| {
                    if dir == Direction::Original {
                        f(&rcu, <[u8; 16]>::wrap(e));
                    }
                    false
                });
                b += 1;
            }
            drop(rcu);
            crate::sys::sched::cond_resched();
        }
    }

    /// The walk of [`Self::remove_if`] and [`Self::remove_dying`]: both
    /// families' chains ([`Self::walk_all`]).
    fn remove_where(&self, f: impl Fn(EntryRef<'_>) -> bool) -> u64 {
        let mut removed = 0u64;
        self.walk_all(|_, e| {
            if f(e) && self.remove(e, Removal::Deleted) {
                removed += 1;
            }
        });
        removed
    }

    /// Calls `f` for each confirmed entry of `net` in dump bucket `b` (of
    /// [`Table::dump_buckets`]: the IPv4 chains, then the IPv6 ones), in
    /// chain order, with its [`Snapshot`], until `f` returns false.
    /// Returns false if `f` stopped the walk, true if it reached the
    /// chain's end, and `Err(Strayed)` if the walk left the chain (an entry
    /// it stood on was buried): the entries after that point were not
    /// visited, and the caller starts the bucket again if it needs all of
    /// them.
    pub(crate) fn for_each_in_bucket<'g>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        b: usize,
        now: u64,
        f: impl FnMut(EntryRef<'g>, &Snapshot) -> bool,
    ) -> core::result::Result<bool, Strayed> {
        let n = self.buckets();
        if b < n {
            self.for_each_in::<[u8; 4]>(rcu, net, b, now, f)
        } else {
            self.for_each_in::<[u8; 16]>(rcu, net, b - n, now, f)
        }
    }

    /// [`Self::for_each_in_bucket`] in chain `b` of family `A`.
    fn for_each_in<'g, A: Fam>(
        &self,
        rcu: &'g Rcu,
        net: &CtNet,
        b: usize,
        now: u64,
        mut f: impl FnMut(EntryRef<'g>, &Snapshot) -> bool,
    ) -> core::result::Result<bool, Strayed> {
        let mut go_on = true;
        let (end, _) = self.walk_once::<A>(rcu, b, |e, dir| {
            if dir != Direction::Original || !e.net.is(net) {
                return false;
            }
            if let Some(s) = A::wrap(e).snapshot(self, now) {
                go_on = f(A::wrap(e), &s);
            }
            !go_on
        });
        match end {
            Walk::Stray => Err(Strayed),
            _ => Ok(go_on),
        }
    }

    /// One collector run: a slice of the buckets, then the graveyard.
    fn gc_run(&self) {
        let n = self.buckets().max(1);
        let per_run = n.div_ceil(GC_RUNS_PER_PASS).max(256);
        let now = u64::from(crate::sys::time::jiffies_msecs());
        let from = self.gc_cursor.load(Ordering::Relaxed);
        let (visited, removed) = self.collect(from, per_run, GC_MAX_REMOVALS, None, now);
        self.gc_cursor
            .store((from + visited) % n, Ordering::Relaxed);
        self.free_graveyard();
        let delay = if removed >= GC_MAX_REMOVALS {
            0
        } else {
            GC_PERIOD_MS
        };
        // The table outlives the work: `Registration::drop` cancels it
        // (waiting for this run) before freeing the table.
        self.gc.queue(delay);
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // Only `Registration::drop` drops the table: every namespace is gone
        // (so every chain is empty) and the collector is cancelled already
        // (this keeps the promise of `impl_has_delayed_work!` all the same).
        self.gc.cancel_sync();
        self.free_graveyard();
        // The chains destroy the entries' cache when they drop.
    }
}

/// The table, for as long as this value lives.
pub(crate) struct Registration {
    _table: Published<Table>,
}

impl Registration {
    /// Creates and publishes the table and starts its collector.
    pub(crate) fn new() -> Result<Self> {
        let published = TABLE.publish(Table::new()?)?;
        get().gc.queue(GC_PERIOD_MS);
        Ok(Registration { _table: published })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The collector stops (waiting for a running pass; it cannot requeue
        // itself after this returns). Then the table is unpublished and
        // freed when the field drops: hooks, commands and namespaces are
        // gone (this registration is dropped last).
        get().gc.cancel_sync();
    }
}
