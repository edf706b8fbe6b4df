// SPDX-License-Identifier: GPL-2.0

//! Tracking: the step of the packet path (`crate::pkt`) that runs at the
//! first hook a packet meets, PRE_ROUTING or LOCAL_OUT (priority -200,
//! `NF_IP_PRI_CONNTRACK`).
//!
//! The packet path (`crate::pkt`) hands the parser up to [`PREFIX`] bytes
//! of headers, read in place where the skb's linear area holds them;
//! [`track_info`] runs the tracker
//! ([`conntrack::track_verified`]: at PRE_ROUTING the L4 checksum first,
//! with `nf_checksum()`, as nf_conntrack does) over the kernel table: one
//! lookup of the packet's tuple (of the quoted
//! tuple for an ICMP error) and, on a miss, the insert of a new entry,
//! *unconfirmed*. [`Tracked`] carries, with the verdict and the connection,
//! the chain the entry was found or inserted in, which goes into the
//! packet's per-CPU slot: a later hook of the same packet that finds the
//! slot still naming it takes the entry and the parsed headers from there
//! instead of parsing and looking up again (see `crate::pkt`).
//! Confirmation, at LOCAL_IN / POST_ROUTING (priority `INT_MAX`, like
//! `nf_confirm`), is done by `crate::pkt::last`.
//!
//! # Visibility
//! As in Linux, a dump, the count of confirmed entries and early drop never
//! see an unconfirmed entry. Unlike Linux, another packet with the same
//! tuple that arrives before confirmation finds the unconfirmed entry and
//! is tracked with it (Linux gives it a second unconfirmed conntrack and
//! merges the two at confirmation, `nf_ct_resolve_clash()`: the outcome is
//! the same). An entry whose packet never reaches the last hook (dropped
//! by a later hook, a routing failure, stolen) is removed by the collector
//! after being seen unconfirmed by two of its passes (6.4 to 12.8 s) and
//! counted as `unconfirmed_reaped`; Linux frees it with the skb.

use conntrack::conn::{ConnKey, ConnRef};
use conntrack::parse::PacketInfo;
use conntrack::{Class, Conn, Direction, Hook, InsertError, InvalidReason, TableStats, Tuple};
use rfw_abi::ct_stats;

use super::net::CtNet;
use super::table::{self, EntryRef, Removal, Table, Word};
use crate::sys::netfilter::{self, Verdict};
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::SkBuff;

/// Bytes of a packet given to the parser at most: every header rfw reads
/// lies in them unless an IPv6 packet carries more than ~280 bytes of extension
/// headers (then it is INVALID, counted as truncated).
pub(crate) const PREFIX: usize = 384;

/// The table as the `conntrack` crate's [`conntrack::Table`] sees it: one
/// namespace, one RCU read-side section.
struct KTable<'g> {
    t: &'g Table,
    net: &'g CtNet,
    rcu: &'g Rcu,
    now: u64,
    /// The last hit or insert: entry address, direction, chain (saves
    /// hashing the tuple again for the packet's slot).
    last: Option<(usize, Direction, usize)>,
    /// The last miss: the tuple and its chain (saves hashing it again for
    /// the insert that follows).
    missed: Option<(Tuple, usize)>,
}

impl<'g> conntrack::Table for KTable<'g> {
    type Handle = EntryRef<'g>;
    type Status = Word;

    fn lookup(&mut self, tuple: &Tuple) -> Option<(EntryRef<'g>, Direction)> {
        let (hit, b) = self.t.find(self.rcu, self.net, tuple);
        match hit {
            Some((e, dir)) => {
                self.net.count(ct_stats::Counter::Found);
                self.last = Some((e.addr(), dir, b));
            }
            None => self.missed = Some((*tuple, b)),
        }
        hit
    }

    fn with_conn<R>(
        &mut self,
        h: EntryRef<'g>,
        f: impl FnOnce(&ConnKey, ConnRef<'_, Word>) -> R,
    ) -> Option<R> {
        h.with_conn(self.t, f)
    }

    fn with_state<R>(
        &mut self,
        h: EntryRef<'g>,
        f: impl FnOnce(ConnRef<'_, Word>) -> R,
    ) -> Option<R> {
        h.with_state(self.t, f)
    }

    fn insert(&mut self, conn: Conn, now: u64) -> Result<EntryRef<'g>, InsertError> {
        let orig = conn.tuple(Direction::Original);
        let b0 = self.missed.filter(|(t, _)| *t == orig).map(|(_, b)| b);
        let (e, b0) = self.t.insert(self.rcu, self.net, conn, b0, now)?;
        // The packet's connection, in its original direction: its chain
        // goes to the packet's slot without hashing the tuple again.
        self.last = Some((e.addr(), Direction::Original, b0));
        Ok(e)
    }

    fn remove(&mut self, h: EntryRef<'g>) -> bool {
        // The tracker removes an entry it found expired (then it goes), or
        // one a packet ended (RST, a SYN reopening a closed connection).
        // The latter expires now but stays linked: the later hooks of the
        // ending packet still find it and its NAT binding (Linux keeps a
        // killed conntrack attached to the skb), and the next packet with
        // its tuple, or the collector, removes it as expired.
        let now = self.now;
        let ended = h
            .with_state(self.t, |c| {
                if c.state.is_expired(now) {
                    false
                } else {
                    c.state.set_timeout(now, 0);
                    true
                }
            })
            .unwrap_or(false);
        ended || self.t.remove(h, Removal::Expired)
    }

    fn expire(&mut self, now: u64, budget: usize) -> usize {
        // Buckets stand in for entries: the table is walked by bucket.
        self.t.collect(0, budget, budget, Some(self.net), now).1
    }

    fn len(&self) -> usize {
        self.net.entries.load(core::sync::atomic::Ordering::Relaxed) as usize
    }

    fn stats(&self) -> TableStats {
        let s = self.net.totals();
        TableStats {
            inserted: s.get(ct_stats::Counter::New),
            removed: s.get(ct_stats::Counter::Deleted),
            expired: s.get(ct_stats::Counter::Expired),
            early_dropped: s.get(ct_stats::Counter::EarlyDrop),
            insert_full: s.get(ct_stats::Counter::Drop),
            insert_clash: s.get(ct_stats::Counter::InsertFailed),
        }
    }
}

/// What tracking found for a packet.
pub(crate) struct Tracked<'g> {
    /// `NF_ACCEPT`, or `NF_DROP` when the table is full.
    pub(crate) verdict: Verdict,
    /// The packet's connection and its direction in it (for RELATED: the
    /// connection it is related to, and the direction the error travels).
    pub(crate) conn: Option<(EntryRef<'g>, Direction)>,
    /// The packet's class.
    pub(crate) class: Class,
    /// The chain `conn` hangs in under its direction, when a lookup of this
    /// packet found it there (else `None`: ask `Table::bucket_of_entry`).
    pub(crate) bucket: Option<usize>,
}

/// Tracks a parsed packet (of `skb`) at PRE_ROUTING or LOCAL_OUT.
///
/// At PRE_ROUTING, with the namespace's `checksum` setting on, the
/// packet's L4 checksum is verified first with `nf_checksum()`
/// ([`conntrack::track_verified`]): a packet that fails is INVALID
/// (counted as malformed `bad_checksum`) and no entry is looked up,
/// created or changed.
pub(crate) fn track_info<'g>(
    ct: &'g CtNet,
    rcu: &'g Rcu,
    info: &PacketInfo,
    skb: &SkBuff,
    hook: Hook,
) -> Tracked<'g> {
    let cfg = ct.config(rcu);
    let now = u64::from(crate::sys::time::jiffies_msecs());
    let mut kt = KTable {
        t: table::get(),
        net: ct,
        rcu,
        now,
        last: None,
        missed: None,
    };
    let pf = info.tuple.family.nfproto();
    let p = conntrack::track_verified(&mut kt, info, hook, now, cfg, |c| {
        skb.l4_checksum_ok(hook as u8, c.offset, c.proto, pf)
    });
    if p.verdict.ignored.is_some() {
        ct.count(ct_stats::Counter::Ignored);
    }
    let verdict = match p.verdict.class {
        Class::Invalid(InvalidReason::TableFull) => {
            // No room: drop the packet, as nf_conntrack does.
            ct.count(ct_stats::Counter::Drop);
            ct.count_invalid(InvalidReason::TableFull);
            netfilter::DROP
        }
        Class::Invalid(r) => {
            ct.count_invalid(r);
            netfilter::ACCEPT
        }
        Class::Related => {
            ct.count(ct_stats::Counter::Related);
            netfilter::ACCEPT
        }
        _ => netfilter::ACCEPT,
    };
    let conn = p.conn.map(|e| (e, p.verdict.dir));
    let bucket = match (conn, kt.last) {
        (Some((e, d)), Some((a, ld, b))) if e.addr() == a && d == ld => Some(b),
        _ => None,
    };
    Tracked {
        verdict,
        conn,
        class: p.verdict.class,
        bucket,
    }
}
