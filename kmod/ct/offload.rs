// SPDX-License-Identifier: GPL-2.0

//! What an offloaded connection keeps for the fast path (nf_flow_table's
//! `flow_offload`): per direction, the route its packets leave by, held,
//! with the device they must arrive on and the MTU they are held to.
//!
//! The record hangs off the connection's entry under RCU
//! (`sys::rcu::RcuOption`) and exists only for offloaded connections, so
//! it costs the others 8 bytes. It is made when a packet of the
//! connection matches an `--offload` rule at FORWARD, each direction's
//! route is filled in by the first packet of that direction to pass
//! FORWARD afterwards, and the connection is offloaded once both are
//! there ([`Offload::ready`]). It is taken away (and dropped, with its
//! route references, an RCU grace period later) when the connection
//! leaves the fast path: see `pkt::offload` for why, and `Table` for the
//! removal of the entry itself.

use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, Ordering};

use conntrack::Direction;

use crate::sys::dst::Dst;
use crate::sys::rcu::SetOnce;

/// One direction's way out.
pub(crate) struct Route {
    /// The route the normal path chose for the direction's packets.
    pub(crate) dst: Dst,
    /// The device the direction's packets arrive on (`flow_offload_tuple`'s
    /// `iifidx`): one arriving elsewhere takes the normal path.
    pub(crate) iif: c_int,
    /// The device the route leaves by (for the device notifier).
    pub(crate) oif: c_int,
    /// The MTU forwarded packets are held to.
    pub(crate) mtu: u32,
}

/// An offloaded (or offloading) connection's record.
pub(crate) struct Offload {
    /// The ruleset generation whose `--offload` rule made it: a packet
    /// that meets another generation ends the offload, and the normal path
    /// decides again under the new ruleset.
    pub(crate) gen: u32,
    routes: [SetOnce<Route>; 2],
    /// Set by whoever completed the record first (two directions may be
    /// filled on two CPUs at once): the offload is counted once.
    announced: AtomicBool,
}

impl Offload {
    /// A record for ruleset generation `gen`, with no route yet.
    pub(crate) const fn new(gen: u32) -> Self {
        Offload {
            gen,
            routes: [SetOnce::new(), SetOnce::new()],
            announced: AtomicBool::new(false),
        }
    }

    /// True for the one caller that first sees the record complete.
    pub(crate) fn announce(&self) -> bool {
        self.ready() && !self.announced.swap(true, Ordering::AcqRel)
    }

    /// The route of direction `dir`, once known.
    #[inline]
    pub(crate) fn route(&self, dir: Direction) -> Option<&Route> {
        self.routes[dir.index()].get()
    }

    /// True once both directions' routes are known: the fast path takes
    /// the connection's packets.
    #[inline]
    pub(crate) fn ready(&self) -> bool {
        self.routes.iter().all(|r| r.get().is_some())
    }

    /// Records direction `dir`'s route unless it is known already (then
    /// `r` is dropped, its reference with it); true if this call set it.
    pub(crate) fn set_route(&self, dir: Direction, r: kernel::alloc::KBox<Route>) -> bool {
        self.routes[dir.index()].set(r).is_ok()
    }

    /// True when a route of the record arrives on or leaves by device
    /// `ifindex`.
    pub(crate) fn uses(&self, ifindex: c_int) -> bool {
        self.routes
            .iter()
            .filter_map(SetOnce::get)
            .any(|r| r.iif == ifindex || r.oif == ifindex)
    }
}
