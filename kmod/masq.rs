// SPDX-License-Identifier: GPL-2.0

//! MASQUERADE bindings die with their address (`nf_nat_masquerade.c`).
//!
//! When an IPv4 or IPv6 address is removed from an interface, the
//! connections MASQUERADEd to it can never work again (replies to that
//! address will not arrive); Linux deletes them so that the next packet
//! of the flow starts a new connection with the interface's new address.
//! rfw does the same: the address notifiers (the IPv6 one may run in
//! softirq context) queue the address in the namespace's [`MasqNet`] and
//! kick a work item; the work walks the table in process context and
//! removes the namespace's connections marked `Status::MASQUERADE` whose
//! reply tuple is addressed to it (counted as `masq_flushed`). If more
//! addresses go at once than the queue holds, every MASQUERADE connection
//! of the namespace is removed, as Linux does for a device going down.

use core::pin::Pin;

use conntrack::{Direction, Status};
use kernel::prelude::*;
use rfw_abi::rules_stats;

use crate::ct::table;
use crate::pernet::RfwNet;
use crate::sys::notifier::{self, AddrDown};
use crate::sys::sync::{LockClassKey, SpinLockBh};
use crate::sys::workqueue::{impl_has_delayed_work, DelayedWork, WorkItem};

const QUEUE: usize = 8;

#[derive(Clone, Copy)]
struct Pending {
    n: usize,
    all: bool,
    addrs: [[u8; 16]; QUEUE],
}

/// The lockdep class of every namespace's `MasqNet::pending` lock.
static PENDING_CLASS: LockClassKey = LockClassKey::new();

/// A namespace's queue of removed addresses and its work item.
pub(crate) struct MasqNet {
    /// Taken by the notifiers (the IPv6 one may run in softirq) and the work.
    pending: SpinLockBh<Pending>,
    /// The flush; runs [`RfwNet`]'s [`WorkItem::run`].
    work: DelayedWork<RfwNet>,
}

// The namespace's `exit` stops the flush (`MasqNet::stop`) before it drops
// any part of the `RfwNet`.
impl_has_delayed_work!(RfwNet, masq.work);

impl MasqNet {
    /// An empty queue; [`MasqNet::init`] must run once it is in place.
    pub(crate) fn new() -> Self {
        MasqNet {
            pending: SpinLockBh::new(
                Pending {
                    n: 0,
                    all: false,
                    addrs: [[0; 16]; QUEUE],
                },
                c"rfw_masq_pending",
                &PENDING_CLASS,
            ),
            work: DelayedWork::new(),
        }
    }

    /// Initialises the work item of `rn`, in its final place (the
    /// namespace's `net_generic` area, which never moves).
    pub(crate) fn init(rn: Pin<&RfwNet>) {
        DelayedWork::init(rn);
    }

    /// Waits for a queued or running flush; none can be queued afterwards
    /// once the notifiers cannot reach this namespace (pernet exit).
    pub(crate) fn stop(&self) {
        self.work.cancel_sync();
    }

    fn queue(&self, addr: [u8; 16]) {
        {
            let mut p = self.pending.lock();
            if p.n < QUEUE {
                let n = p.n;
                p.addrs[n] = addr;
                p.n += 1;
            } else {
                p.all = true;
            }
        }
        self.work.modify(0);
    }
}

/// The flush, in process context.
impl WorkItem for RfwNet {
    fn run(&self) {
        let rn = self;
        let p = {
            let mut p = rn.masq.pending.lock();
            let taken = *p;
            p.n = 0;
            p.all = false;
            taken
        };
        let addrs = &p.addrs[..p.n];
        let removed = table::get().remove_if(&rn.ct, |k, st| {
            st.has(Status::MASQUERADE)
                && (p.all || addrs.iter().any(|a| *a == k.tuple(Direction::Reply).dst))
        });
        for _ in 0..removed {
            rn.rules.count(rules_stats::Counter::MasqFlushed);
        }
    }
}

/// The address notifiers' handler: queues the address in its namespace.
struct Masq;

impl AddrDown for Masq {
    fn addr_down(net: &RfwNet, addr: [u8; 16]) {
        // A namespace that never made a NAT binding holds no MASQUERADE
        // connection: no table walk for its address changes (address churn
        // in other namespaces would otherwise cost a walk of the shared
        // table each).
        if net.rules.nat_used() {
            net.masq.queue(addr);
        }
    }
}

/// The address notifiers, and the device notifier of the fast path
/// (`pkt::offload`), registered for as long as this value lives.
/// Created after the pernet operations (every namespace has its
/// `RfwNet`), dropped before them.
pub(crate) struct Registration {
    _notifiers: notifier::Registration<Masq>,
    _devices: notifier::DevRegistration<crate::pkt::offload::DevGone>,
}

impl Registration {
    /// Registers the notifiers.
    pub(crate) fn new() -> Result<Self> {
        Ok(Registration {
            _notifiers: notifier::Registration::new()?,
            _devices: notifier::DevRegistration::new()?,
        })
    }
}
