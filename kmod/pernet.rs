// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state: what rfw keeps in each namespace.
//!
//! Every namespace, the initial one and each one created later, gets an
//! [`RfwNet`] in its `net_generic` area and its own registration of rfw's
//! netfilter hooks (`crate::sys::pernet`, which also says in which order
//! they come and go). [`NetState`] says what the state does on the way in
//! (MASQUERADE's work item, which must not move) and out (wait for
//! MASQUERADE's flush, remove the namespace's connections, wait for a grace
//! period so that nothing reaches the state through an entry).

use core::pin::Pin;

use kernel::prelude::*;

use crate::ct::{self, net::CtNet};
use crate::masq::MasqNet;
use crate::percpu::HookCounters;
use crate::pkt::Slot;
use crate::rules::RulesNet;
use crate::sys::percpu::PerCpu;
use crate::sys::pernet::NetState;
pub(crate) use crate::sys::pernet::{get, Registration};

/// rfw's state in one network namespace.
pub(crate) struct RfwNet {
    /// Packets and bytes per family and hook.
    pub(crate) counters: HookCounters,
    /// Connection tracking.
    pub(crate) ct: CtNet,
    /// The ruleset.
    pub(crate) rules: RulesNet,
    /// Per-CPU state between the hooks of one packet (`pkt`).
    pub(crate) slot: PerCpu<Slot>,
    /// Removed addresses whose MASQUERADE connections go (`masq`).
    pub(crate) masq: MasqNet,
}

impl NetState for RfwNet {
    fn new() -> Result<Self> {
        Ok(RfwNet {
            counters: HookCounters::new()?,
            ct: CtNet::new(ct::table::get().default_limit())?,
            rules: RulesNet::new()?,
            slot: PerCpu::new(Slot::default)?,
            masq: MasqNet::new(),
        })
    }

    fn start(self: Pin<&Self>) {
        MasqNet::init(self);
    }

    fn exit(&self) {
        // The address notifiers cannot reach a namespace whose devices are
        // gone; wait for a flush they queued.
        self.masq.stop();
        // The hooks are gone; remove the entries (freed after a grace
        // period by the collector), then wait until no collector pass or
        // dump that saw one of them is still running: they may touch
        // `self.ct` through the entry.
        ct::table::get().flush(&self.ct);
        crate::sys::rcu::synchronize();
    }
}

impl RfwNet {
    /// Whether packets of this namespace are tracked now, given its
    /// current ruleset: always with `fwctl ct tracking on`, else while a
    /// table is loaded or once a connection was NATed here (its binding
    /// must keep translating after the nat table goes). nf_conntrack does
    /// the same since Linux 4.10: its hooks exist in a namespace only while
    /// a rule there needs them (`nf_ct_netns_get`). A namespace that does
    /// not track costs one call and this test per hook.
    #[inline]
    pub(crate) fn tracks(&self, set: &crate::rules::Ruleset) -> bool {
        !set.is_empty()
            || self.rules.nat_used()
            || self
                .ct
                .track_always
                .load(core::sync::atomic::Ordering::Relaxed)
    }
}
