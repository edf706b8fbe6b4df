// SPDX-License-Identifier: GPL-2.0

//! Per-packet state between a packet's hooks (nf_conntrack_core.c's
//! `skb->_nfct` and `nf_ct_get`): the per-CPU [`Slot`] the tracking hook
//! fills, and how a later hook finds the packet's connection again (see
//! the `pkt` module docs).

use core::cell::Cell;

use conntrack::parse::{IcmpInfo, L4Info, PacketInfo};
use conntrack::{CtState, Direction, Family, Status, Tuple};
use rfw_abi::ct_stats;

use super::meta::Pkt;
use crate::ct::net::CtNet;
use crate::ct::table::{self, EntryRef, Table};
use crate::pernet::RfwNet;
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::SkBuff;

/// A packet's connection as a hook sees it.
#[derive(Clone, Copy)]
pub(super) struct Ct<'g> {
    pub(super) e: EntryRef<'g>,
    /// The packet's direction (for RELATED: the direction the error
    /// travels in the connection it is about).
    pub(super) dir: Direction,
    /// The chain `e` was found in (under direction `dir`).
    pub(super) bucket: usize,
    pub(super) state: CtState,
}

/// Context levels that have their own records: task and softirq (see
/// the level `PerCpu::with` passes). rfw's hooks do not run in a hard IRQ or
/// an NMI but through netpoll; such packets always take the lookup.
const LEVELS: usize = 2;
/// Records per level: the packet between its hooks and one transmission
/// nested in them (the ICMP redirect `ip_forward` sends before FORWARD;
/// REJECT's answer; a `dup`). A write replaces the record of its own skb,
/// else a free one, else the older one: never the one written last, so a
/// nested packet cannot evict the packet it is nested in.
const WAYS: usize = 2;

/// What the tracking hook leaves for the later hooks of the same packet
/// (one per CPU: `RfwNet::slot`, used through `PerCpu::with`, which
/// toggles bottom halves only in a task that has them on): records per
/// context level, so that a softirq that runs between a task's LOCAL_OUT
/// and POST_ROUTING keeps to its own, each naming one skb.
#[derive(Default)]
pub(crate) struct Slot {
    levels: [Level; LEVELS],
}

/// The records of one context level.
#[derive(Default)]
struct Level {
    recs: [Rec; WAYS],
    /// The record written last.
    last: Cell<u8>,
}

/// One packet's record: its skb and connection, and the packet's headers
/// as far as `head.known` says (one copy of them: the tuple is theirs).
#[derive(Default)]
struct Rec {
    head: Cell<SlotHead>,
    /// Read only as `head.known` says: the headers as the tracking hook
    /// parsed them ([`Known::Headers`]); or ([`Known::Tuple`]) those
    /// headers with the tuple NAT wrote there, of which only the tuple is
    /// read (the later hooks parse the rewritten packet again); else
    /// whatever an earlier packet left.
    info: Cell<Option<PacketInfo>>,
}

/// The packet and its connection (see [`Slot`]). `skb == 0`: free.
#[derive(Clone, Copy, Default)]
pub(super) struct SlotHead {
    skb: usize,
    /// `skb_network_header()` when written. It moves when the kernel
    /// reallocates the head between hooks (`ip_forward`'s `skb_cow` does
    /// for every cloned skb, such as a local TCP sender's over veth), so a
    /// record whose `nh` differs still fits when it knows the packet's
    /// tuple and that tuple matches (see [`fits`]).
    nh: usize,
    entry: usize,
    bucket: usize,
    /// `skb->len` when written.
    len: u32,
    dir: u8,
    state: u8,
    /// The entry is an IPv6 one (the table keeps each family apart).
    v6: bool,
    /// What the record's `info` holds.
    known: Known,
}

impl SlotHead {
    /// The family of the record's entry.
    fn family(&self) -> Family {
        if self.v6 {
            Family::Ipv6
        } else {
            Family::Ipv4
        }
    }
}

/// What a record knows of its packet's headers as they left the tracking
/// hook (see [`Rec::info`]).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Known {
    /// Nothing: not parsed, or an ICMP error NAT rewrote.
    #[default]
    Nothing,
    /// Only the tuple, as NAT at the tracking hook wrote it.
    Tuple,
    /// The headers as the tracking hook parsed them (no rfw step rewrote
    /// them there): the later hooks take them instead of parsing again.
    Headers,
}

/// What the tracking hook's record is to be told of the packet's headers
/// (see [`remember`]).
pub(super) enum Keep {
    /// The packet's parsed headers (`Pkt::info`), as they are.
    Headers,
    /// The tuple NAT at this hook wrote, if known.
    Rewritten(Option<Tuple>),
}

/// A record as a later hook took it (see [`Slot::take`]).
pub(super) struct Taken {
    head: SlotHead,
    tuple: RecTuple,
}

/// What a taken record says the packet's tuple is.
enum RecTuple {
    /// Nothing ([`Known::Nothing`]).
    Unknown,
    /// The tuple of the headers the record gave the packet: the packet's
    /// own.
    Given,
    /// This tuple.
    Is(Tuple),
}

impl Rec {
    fn names(&self, skb: &SkBuff) -> bool {
        self.head.get().skb == skb.addr()
    }

    /// Frees the record (its `info` is no longer read).
    fn free(&self) {
        self.head.set(SlotHead::default());
    }
}

impl Slot {
    /// The records of context level `level`, if it has any.
    fn level(&self, level: u8) -> Option<&Level> {
        self.levels.get(usize::from(level))
    }
}

impl Slot {
    /// The record this CPU's context holds for `skb`, with the parsed
    /// headers written to `headers` if the record has them and they still
    /// fit the packet (`skb->len` and the network header's address
    /// unchanged: after a head reallocation the packet is parsed again, so
    /// that [`fits`] compares tuples of two parses and not the record with
    /// itself). `consume` frees the record (the packet's last hook).
    pub(super) fn take(
        rn: &RfwNet,
        skb: &SkBuff,
        consume: bool,
        headers: &mut Option<PacketInfo>,
    ) -> Option<Taken> {
        rn.slot.with(|s, level| {
            let r = s.level(level)?.recs.iter().find(|r| r.names(skb))?;
            let head = r.head.get();
            let fresh = head.len == skb.len() && head.nh == skb.network_addr();
            let tuple = match head.known {
                Known::Nothing => RecTuple::Unknown,
                // Copied once, from the record into the packet.
                Known::Headers if fresh => {
                    *headers = r.info.get();
                    if headers.is_some() {
                        RecTuple::Given
                    } else {
                        RecTuple::Unknown
                    }
                }
                Known::Headers | Known::Tuple => match r.info.get() {
                    Some(i) => RecTuple::Is(i.tuple),
                    None => RecTuple::Unknown,
                },
            };
            if consume {
                r.free();
            }
            Some(Taken { head, tuple })
        })
    }

    /// Frees the record of `skb`, if this CPU's context holds one, and
    /// returns it: the packet leaves rfw's hooks (a verdict other than
    /// ACCEPT, or no tracking), and a later packet given the same
    /// `sk_buff` must not find it.
    pub(super) fn forget(rn: &RfwNet, skb: &SkBuff) -> Option<SlotHead> {
        rn.slot.with(|s, level| {
            let r = s.level(level)?.recs.iter().find(|r| r.names(skb))?;
            let h = r.head.get();
            r.free();
            Some(h)
        })
    }
}

/// The packet of record `h` is gone before its last hook (dropped by rfw,
/// or its `sk_buff` given to a later packet): if it created its entry
/// (NEW, original direction) and nothing confirmed it since, the entry
/// goes with it, as Linux frees an unconfirmed conntrack with its skb.
/// Otherwise a flood of packets dropped between hooks would hold table
/// places until the collector reaps them.
pub(super) fn reap(rcu: &Rcu, h: &SlotHead) {
    if h.entry == 0 || h.dir != 0 || h.state != CtState::New.code() {
        return;
    }
    let t = table::get();
    if let Some(e) = t.relocate(rcu, h.family(), h.bucket, h.entry, Direction::Original) {
        t.drop_unconfirmed(e);
    }
}

/// Whether the packet `p` fits record `h`: its tuple is the one the
/// tracking hook left (`h.tuple`), or, when the record does not know it,
/// one the connection can have at this hook. `h` names `p`'s skb.
fn fits(h: &Taken, e: Option<EntryRef<'_>>, dir: Direction, state: CtState, p: &Pkt<'_>) -> bool {
    let moved = h.head.nh != p.skb.network_addr();
    match (&h.tuple, &p.info) {
        // `p`'s headers are the record's.
        (RecTuple::Given, _) => true,
        (RecTuple::Is(t), Some(info)) => *t == info.tuple,
        (RecTuple::Is(_), None) => false,
        // The head moved and nothing else tells this packet from a later
        // one given the same `sk_buff`.
        (RecTuple::Unknown, _) if moved => false,
        // Not parsed at the tracking hook: only if not parsed now either
        // (a reassembled datagram in its last fragment's skb parses now).
        (RecTuple::Unknown, info) if e.is_none() => info.is_none(),
        (RecTuple::Unknown, _) => e.is_some_and(|e| plausible(e, dir, state, p)),
    }
}

/// The connection of a packet at a hook after the tracking one, and its
/// state for rules: from the record the tracking hook left for it when it
/// fits the packet, else by lookup (counted per namespace: `slot_hits`,
/// `slot_misses`, `fallback_found`, `fallback_not_found`). `rec` is this
/// context's record of the packet's skb, as the hook took it.
pub(super) fn find<'g>(
    rn: &RfwNet,
    rcu: &'g Rcu,
    p: &Pkt<'_>,
    rec: Option<&Taken>,
) -> (Option<Ct<'g>>, CtState) {
    let t = table::get();
    if let Some(taken) = rec {
        let h = &taken.head;
        let dir = if h.dir == 0 {
            Direction::Original
        } else {
            Direction::Reply
        };
        if let Some(state) = CtState::from_code(h.state) {
            if h.entry == 0 {
                // Tracked as having no connection (INVALID or untracked).
                if fits(taken, None, dir, state, p) {
                    rn.ct.count(ct_stats::Counter::SlotHits);
                    return (None, state);
                }
            } else if let Some(e) = t.relocate(rcu, h.family(), h.bucket, h.entry, dir) {
                if fits(taken, Some(e), dir, state, p) {
                    rn.ct.count(ct_stats::Counter::SlotHits);
                    let c = Ct {
                        e,
                        dir,
                        bucket: h.bucket,
                        state,
                    };
                    return (Some(c), state);
                }
            }
        }
    }
    rn.ct.count(ct_stats::Counter::SlotMisses);
    let found = p
        .info
        .as_ref()
        .and_then(|info| lookup_any(t, rcu, &rn.ct, info));
    match found {
        Some(c) => {
            rn.ct.count(ct_stats::Counter::FallbackFound);
            (Some(c), c.state)
        }
        None => {
            rn.ct.count(ct_stats::Counter::FallbackNotFound);
            (None, CtState::Invalid)
        }
    }
}

/// The connection of a packet by its tuple, its inverse (after NAT at an
/// earlier hook), its in-between tuple (after DNAT, before SNAT:
/// `Table::lookup_between`), or the tuple an ICMP error quotes.
fn lookup_any<'g>(t: &'g Table, rcu: &'g Rcu, ctn: &CtNet, info: &PacketInfo) -> Option<Ct<'g>> {
    if let L4Info::Icmp(IcmpInfo::Error { quoted, .. }) = info.l4 {
        let inner = quoted.invert()?;
        let (e, dir, bucket) = t
            .lookup_at(rcu, ctn, &inner)
            .or_else(|| t.lookup_between(rcu, ctn, &inner))
            .or_else(|| {
                // About the first packet of an unconfirmed connection
                // (indexed by its original tuple only), as the tracker
                // finds it (`conntrack::process`).
                t.lookup_at(rcu, ctn, &quoted)
                    .filter(|(_, d, _)| *d == Direction::Original)
                    .map(|(e, _, b)| (e, Direction::Reply, b))
            })?;
        return Some(Ct {
            e,
            dir,
            bucket,
            state: CtState::Related,
        });
    }
    let (e, dir, bucket) = match t.lookup_at(rcu, ctn, &info.tuple) {
        Some(hit) => hit,
        None => {
            // Translated at an earlier hook: the inverse is the tuple the
            // other direction expects (its chain is the other tuple's).
            // Between the two hooks of a connection with both DNAT and
            // SNAT it is neither: the side index knows that tuple.
            let inv = info.tuple.invert()?;
            match t.lookup_at(rcu, ctn, &inv) {
                Some((e, d, _)) => (e, d.opposite(), t.bucket_of_entry(e, d.opposite())),
                None => t.lookup_between(rcu, ctn, &info.tuple)?,
            }
        }
    };
    let st = e.status();
    let seen_reply = !st.has(Status::DYING) && st.has(Status::SEEN_REPLY);
    let state = if dir == Direction::Original && !seen_reply {
        CtState::New
    } else {
        CtState::Established
    };
    Some(Ct {
        e,
        dir,
        bucket,
        state,
    })
}

/// True when the packet can be one of `e`'s in direction `dir` at this
/// hook: each end (address and port) is the one of its tuple before or
/// after NAT. Guards a record that does not know the packet's tuple.
fn plausible(e: EntryRef<'_>, dir: Direction, state: CtState, p: &Pkt<'_>) -> bool {
    let Some(info) = &p.info else {
        return true;
    };
    if state == CtState::Related {
        return true;
    }
    let k = e.key_now(table::get());
    let (a, b) = (k.tuple(dir), k.tuple(dir.opposite()));
    let t = &info.tuple;
    let src = (t.src, t.src_port);
    let dst = (t.dst, t.dst_port);
    t.proto == a.proto
        && (src == (a.src, a.src_port) || src == (b.dst, b.dst_port))
        && (dst == (a.dst, a.dst_port) || dst == (b.src, b.src_port))
}

/// Leaves the packet's connection for its later hooks in this CPU's
/// context, with what `keep` says of its headers: as parsed (`p.info`),
/// or, if an rfw step rewrote them since `p` was parsed, its tuple as it
/// is now.
pub(super) fn remember(
    rn: &RfwNet,
    rcu: &Rcu,
    p: &Pkt<'_>,
    ct: &Option<Ct<'_>>,
    st: CtState,
    keep: &Keep,
) {
    let (len, skb, nh) = (p.skb.len(), p.skb.addr(), p.skb.network_addr());
    let known = match (keep, &p.info) {
        (Keep::Headers, Some(_)) => Known::Headers,
        (Keep::Rewritten(Some(_)), Some(_)) => Known::Tuple,
        _ => Known::Nothing,
    };
    let head = match ct {
        Some(c) => SlotHead {
            skb,
            nh,
            entry: c.e.addr(),
            bucket: c.bucket,
            v6: c.e.family() == Family::Ipv6,
            dir: c.dir.index() as u8,
            state: c.state.code(),
            len,
            known,
        },
        None => SlotHead {
            skb,
            nh,
            state: st.code(),
            len,
            known,
            ..SlotHead::default()
        },
    };
    let stale = rn.slot.with(|s, level| {
        let l = s.level(level)?;
        // The record of this skb, else a free one, else the one not
        // written last.
        let last = usize::from(l.last.get());
        let mine = l.recs.iter().position(|r| r.head.get().skb == skb);
        let i = mine
            .or_else(|| l.recs.iter().position(|r| r.head.get().skb == 0))
            .unwrap_or((last + 1) % WAYS);
        let r = l.recs.get(i)?;
        let old = r.head.get();
        r.head.set(head);
        // Copied once, from the packet into the record.
        match (keep, &p.info) {
            (Keep::Headers, Some(_)) => r.info.set(p.info),
            (Keep::Rewritten(Some(t)), Some(i)) => r.info.set(Some(PacketInfo { tuple: *t, ..*i })),
            _ => {}
        }
        l.last.set(i as u8);
        // A record of this `sk_buff` that its packet did not consume: that
        // packet was freed before its last hook (the kernel dropped it
        // between hooks: TTL, no route, rp_filter, another module), or it
        // is this very packet passing a first hook again (a VRF's second
        // PRE_ROUTING / LOCAL_OUT), which finds the same entry.
        (mine.is_some() && old.entry != head.entry).then_some(old)
    });
    if let Some(old) = stale {
        reap(rcu, &old);
    }
}
