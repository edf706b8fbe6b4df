// SPDX-License-Identifier: GPL-2.0

//! The side index of connections with destination NAT that no chain can
//! find between their NAT hooks, by the tuple their packets carry after
//! destination NAT (`ConnKey::after_dnat`): those with both destination
//! and source NAT (hairpin NAT: DNAT and MASQUERADE of one flow), and
//! unconfirmed ones with destination NAT.
//!
//! Linux never needs it: a packet carries its conntrack in `skb->_nfct`
//! from hook to hook. rfw carries it in a per-CPU record (`crate::pkt`),
//! and a packet that misses its record (queued and reinjected, maybe on
//! another CPU) is looked up by its tuple. Between the two NAT hooks a
//! doubly translated connection's packet carries neither of the
//! connection's tuples (original source to the reply's source), so the
//! table's two chains cannot find it; this index can. A connection with
//! destination NAT only carries the inverse of its reply tuple, which
//! the reply chain holds only once the connection is confirmed (the
//! table links the reply direction then): until then this index finds
//! its first packets.
//!
//! An alias is added when a connection gets its destination NAT (at the
//! first hook, unconfirmed), dropped at confirmation unless the
//! connection also has source NAT, and removed with the entry. It holds
//! the entry's address and
//! chain only as a hint: a lookup re-finds the entry by address in that
//! chain (`Table::relocate`, which never dereferences a stale pointer) and
//! checks that the entry's key still gives the alias's tuple, so an alias
//! that outlived its entry, or whose entry's memory was reused, finds
//! nothing. Only connections with destination NAT pay for it (one small
//! object each, for good only with both manips).

use conntrack::{Direction, Tuple};
use kernel::prelude::*;

use super::net::CtNet;
use super::table::{EntryRef, Table, WALK_MAX};
use crate::sys::rcu::{Rcu, RcuGuard};
use crate::sys::rculist::{Chains, Walk};
use crate::sys::sync::LockClassKey;

/// The lockdep class of the index's lock stripes (never nested with the
/// table's: aliases are added and removed with no bucket lock held).
static ALIAS_LOCK_CLASS: LockClassKey = LockClassKey::new();

/// Restarts of a walk that strayed (as the table's walks).
const WALK_RESTARTS: usize = 16;

/// One doubly translated connection, by its in-between tuple.
pub(crate) struct Alias {
    /// The connection's namespace state (`CtNet`), by address: compared
    /// only, so an alias never keeps a namespace's memory in use.
    net: usize,
    /// The entry's `after_dnat()` tuple (original direction).
    between: Tuple,
    /// The entry, by address (compared only), and the chain its original
    /// direction hangs in.
    entry: usize,
    bucket: usize,
}

/// The index: its own chains, lock stripes and slab cache.
pub(crate) struct Aliases {
    chains: Chains<Alias>,
}

fn net_id(net: &CtNet) -> usize {
    net as *const CtNet as usize
}

impl Aliases {
    /// An index of about one chain per 16 of the table's `buckets`.
    pub(crate) fn new(buckets: usize) -> Result<Self> {
        Ok(Aliases {
            chains: Chains::new(
                (buckets / 16).max(64),
                c"rfw_nat_alias",
                c"rfw_alias_lock",
                &ALIAS_LOCK_CLASS,
            )?,
        })
    }

    fn bucket(&self, table: &Table, net: &CtNet, t: &Tuple) -> usize {
        table.scale(net, t, self.chains.len())
    }

    /// Indexes `e` (whose original direction hangs in chain `b0`) by
    /// `between`, its `after_dnat()` tuple. Without memory the connection
    /// goes on unindexed: only a packet of it that misses its record is
    /// affected (counted as `fallback_not_found`).
    pub(crate) fn add(
        &self,
        table: &Table,
        rcu: &Rcu,
        e: EntryRef<'_>,
        b0: usize,
        between: &Tuple,
    ) {
        let net = e.net();
        net.count(rfw_abi::ct_stats::Counter::Allocations);
        let Some(new) = self.chains.alloc(Alias {
            net: net_id(net),
            between: *between,
            entry: e.addr(),
            bucket: b0,
        }) else {
            return;
        };
        let b = self.bucket(table, net, between);
        let held = self.chains.lock_pair(b, b);
        self.chains.link(&held, new, rcu, b, None);
    }

    /// Removes `e`'s alias by `between`, if it has one.
    pub(crate) fn remove(&self, table: &Table, e: EntryRef<'_>, between: &Tuple) -> bool {
        let net = e.net();
        let (id, addr) = (net_id(net), e.addr());
        let b = self.bucket(table, net, between);
        let rcu = RcuGuard::new();
        let held = self.chains.lock_pair(b, b);
        // Under the stripe the walk cannot stray.
        let hit = match self
            .chains
            .walk_once(&rcu, b, usize::MAX, |a, _| a.net == id && a.entry == addr)
        {
            (Walk::Hit(a, _), _) => Some(a),
            _ => None,
        };
        let gone = hit.and_then(|a| self.chains.unlink(&held, a, b, b));
        drop(held);
        match gone {
            Some(u) => {
                self.chains.bury(u);
                true
            }
            None => false,
        }
    }

    /// The connection of `net` whose packets carry `t` between their two
    /// NAT hooks, and the packet's direction: `t` is the in-between tuple
    /// of the original direction, or the inverse of it (a reply).
    pub(crate) fn lookup<'g>(
        &self,
        table: &'g Table,
        rcu: &'g Rcu,
        net: &CtNet,
        t: &Tuple,
    ) -> Option<(EntryRef<'g>, Direction)> {
        let id = net_id(net);
        for (q, dir) in [
            (Some(*t), Direction::Original),
            (t.invert(), Direction::Reply),
        ] {
            let Some(q) = q else {
                continue;
            };
            let b = self.bucket(table, net, &q);
            let mut hint = None;
            for _ in 0..WALK_RESTARTS {
                let (end, _) = self
                    .chains
                    .walk_once(rcu, b, WALK_MAX, |a, _| a.net == id && a.between == q);
                match end {
                    Walk::Hit(a, _) => hint = Some((a.entry, a.bucket)),
                    Walk::End => {}
                    Walk::Stray => continue,
                }
                break;
            }
            let Some((addr, b0)) = hint else {
                continue;
            };
            // The entry is of `q`'s family (it was found by it).
            let found = table.relocate(rcu, q.family, b0, addr, Direction::Original);
            if let Some(e) =
                found.filter(|e| e.is_of(net) && e.key_now(table).after_dnat(false) == Some(q))
            {
                return Some((e, dir));
            }
        }
        None
    }

    /// Frees the removed aliases after a grace period. Process context.
    pub(crate) fn free_graveyard(&self) {
        self.chains.free_graveyard();
    }
}
