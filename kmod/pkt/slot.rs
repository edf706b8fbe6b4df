// SPDX-License-Identifier: GPL-2.0

//! Per-packet state between a packet's hooks (nf_conntrack_core.c's
//! `skb->_nfct` and `nf_ct_get`): the per-CPU [`Slot`] the tracking hook
//! fills, and how a later hook finds the packet's connection again (see
//! the `pkt` module docs).

use core::cell::Cell;

use conntrack::parse::{IcmpInfo, L4Info, PacketInfo};
use conntrack::{CtState, Direction, Status};

use super::meta::Pkt;
use crate::ct::net::CtNet;
use crate::ct::table::{self, Entry, Table};
use crate::pernet::RfwNet;
use crate::sys::rcu::Rcu;
use crate::sys::skbuff::SkBuff;

/// A packet's connection as a hook sees it.
#[derive(Clone, Copy)]
pub(super) struct Ct<'g> {
    pub(super) e: &'g Entry,
    /// The packet's direction (for RELATED: the direction the error
    /// travels in the connection it is about).
    pub(super) dir: Direction,
    /// The chain `e` was found in (under direction `dir`).
    pub(super) bucket: usize,
    pub(super) state: CtState,
}

/// What the tracking hook leaves for the later hooks of the same packet
/// (one per CPU: `RfwNet::slot`, used through `PerCpu::with`).
#[derive(Default)]
pub(crate) struct Slot {
    head: Cell<SlotHead>,
    /// The packet's headers as the tracking hook parsed them, when no rfw
    /// step has rewritten them since (`None` after NAT at that hook): the
    /// later hooks take them instead of copying and parsing again.
    info: Cell<Option<PacketInfo>>,
}

/// The packet and its connection (see [`Slot`]).
#[derive(Clone, Copy, Default)]
pub(super) struct SlotHead {
    skb: usize,
    entry: usize,
    bucket: usize,
    dir: u8,
    state: u8,
    /// `skb->len` when `Slot::info` was parsed.
    len: u32,
}

impl Slot {
    /// This CPU's slot as a later hook of `skb` needs it: the head, and the
    /// parsed headers if they are `skb`'s (copied only then).
    pub(super) fn read(rn: &RfwNet, skb: &SkBuff) -> (SlotHead, Option<PacketInfo>) {
        rn.slot.with(|s| {
            let head = s.head.get();
            let info = if head.skb == skb.addr() && head.len == skb.len() {
                s.info.get()
            } else {
                None
            };
            (head, info)
        })
    }

    /// Empties this CPU's slot (nothing for the later hooks).
    pub(super) fn clear(rn: &RfwNet) {
        rn.slot.with(|s| {
            s.head.set(SlotHead::default());
            s.info.set(None);
        });
    }
}

/// The connection of a packet at a hook after the tracking one, and its
/// state for rules: from the slot when it names this skb, else by lookup.
/// `slot` is this CPU's slot as the hook read it.
pub(super) fn find<'g>(
    rn: &RfwNet,
    rcu: &'g Rcu,
    p: &Pkt<'_>,
    slot: &SlotHead,
) -> (Option<Ct<'g>>, CtState) {
    let t = table::get();
    if slot.skb == p.skb.addr() {
        let dir = if slot.dir == 0 {
            Direction::Original
        } else {
            Direction::Reply
        };
        let state = CtState::from_code(slot.state);
        if slot.entry == 0 {
            // Tracked as having no connection (INVALID or untracked), if
            // it is still that packet: an IPv4 datagram the stack
            // reassembled before LOCAL_IN (where nf_defrag did not gather
            // it first) is its last fragment's skb, grown; that fragment
            // was INVALID, the datagram is looked up (issue 16, F5).
            if let Some(st) = state.filter(|_| slot.len == p.skb.len()) {
                return (None, st);
            }
        } else if let Some(e) = t.relocate(rcu, slot.bucket, slot.entry, dir) {
            if let Some(state) = state.filter(|s| plausible(e, dir, *s, p)) {
                let c = Ct {
                    e,
                    dir,
                    bucket: slot.bucket,
                    state,
                };
                return (Some(c), state);
            }
        }
    }
    let Some(info) = p.info else {
        return (None, CtState::Invalid);
    };
    match lookup_any(t, rcu, &rn.ct, &info) {
        Some(c) => (Some(c), c.state),
        None => (None, CtState::Invalid),
    }
}

/// The connection of a packet by its tuple, its inverse (after NAT at an
/// earlier hook), or the tuple an ICMP error quotes.
fn lookup_any<'g>(t: &'g Table, rcu: &'g Rcu, ctn: &CtNet, info: &PacketInfo) -> Option<Ct<'g>> {
    if let L4Info::Icmp(IcmpInfo::Error { quoted, .. }) = info.l4 {
        let inner = quoted.invert()?;
        let (e, dir, bucket) = t.lookup_at(rcu, ctn, &inner)?;
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
            let inv = info.tuple.invert()?;
            let (e, d, _) = t.lookup_at(rcu, ctn, &inv)?;
            (e, d.opposite(), t.bucket_of_entry(e, d.opposite()))
        }
    };
    let seen_reply = e
        .with_state(t, |_, s| s.status().has(Status::SEEN_REPLY))
        .unwrap_or(false);
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
/// hook: each address is the one of its tuple before or after NAT. Guards
/// the slot against an skb address reused for another packet.
fn plausible(e: &Entry, dir: Direction, state: CtState, p: &Pkt<'_>) -> bool {
    let Some(info) = p.info else {
        return true;
    };
    if state == CtState::Related {
        return true;
    }
    let k = e.key();
    let (a, b) = (k.tuple(dir), k.tuple(dir.opposite()));
    let t = &info.tuple;
    t.proto == a.proto && (t.src == a.src || t.src == b.dst) && (t.dst == a.dst || t.dst == b.src)
}

/// Leaves the packet's connection for its later hooks; `info` is its
/// headers as they are now (`None` if an rfw step rewrote them since `p`
/// was parsed).
pub(super) fn remember(
    rn: &RfwNet,
    p: &Pkt<'_>,
    ct: &Option<Ct<'_>>,
    st: CtState,
    info: Option<PacketInfo>,
) {
    let (len, skb) = (p.skb.len(), p.skb.addr());
    let head = match ct {
        Some(c) => SlotHead {
            skb,
            entry: c.e as *const Entry as usize,
            bucket: c.bucket,
            dir: c.dir.index() as u8,
            state: c.state.code(),
            len,
        },
        None => SlotHead {
            skb,
            state: st.code(),
            len,
            ..SlotHead::default()
        },
    };
    rn.slot.with(|slot| {
        slot.head.set(head);
        slot.info.set(info);
    });
}
