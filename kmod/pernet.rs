// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state: what rfw keeps in each namespace.
//!
//! Every namespace, the initial one and each one created later, gets an
//! [`RfwNet`] in its `net_generic` area and its own registration of rfw's
//! netfilter hooks (`crate::sys::pernet`, which also says in which order
//! they come and go). [`NetState`] says what the state does on the way in
//! (MASQUERADE's work item, which must not move) and out (wait for
//! MASQUERADE's flush, remove the namespace's connections, wait for a grace
//! period so that nothing reaches the state through an entry), the last
//! two once for a whole batch of dying namespaces.

use core::pin::Pin;

use kernel::prelude::*;

use crate::ct::{self, net::CtNet};
use crate::masq::MasqNet;
use crate::percpu::HookCounters;
use crate::pkt::Slot;
use crate::rules::RulesNet;
use crate::sys::defrag::NetDefrag;
use crate::sys::genl::Request;
use crate::sys::percpu::PerCpu;
pub(crate) use crate::sys::pernet::{get, NetRef, Registration};
use crate::sys::pernet::{ForEach, NetState};
use crate::sys::rcu::RcuGuard;

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
    /// IPv4 and IPv6 defragmentation, held while the namespace tracks
    /// (`RfwNet::sync_defrag`).
    pub(crate) defrag: NetDefrag,
}

impl NetState for RfwNet {
    fn new() -> Result<Self> {
        Ok(RfwNet {
            counters: HookCounters::new()?,
            ct: CtNet::new(ct::table::get().default_limit())?,
            rules: RulesNet::new()?,
            slot: PerCpu::new(Slot::default)?,
            masq: MasqNet::new(),
            defrag: NetDefrag::new(),
        })
    }

    fn start(self: Pin<&Self>) {
        MasqNet::init(self);
    }

    fn exit(&self, net: NetRef<'_>) {
        // The hooks are gone: nothing here needs whole datagrams any more.
        // (nf_defrag's own pernet exit, which runs after rfw's since rfw.ko
        // depends on it, would unregister its hooks anyway.)
        self.defrag.release(net);
        // The address notifiers cannot reach a namespace whose devices are
        // gone; wait for a flush they queued.
        self.masq.stop();
        // Its entries go in the batch's walk.
        self.ct
            .dying
            .store(true, core::sync::atomic::Ordering::Relaxed);
    }

    fn exit_batch(each: &ForEach<'_, Self>) {
        // The hooks are gone; remove the dying namespaces' entries (freed
        // after a grace period by the collector), one table walk for the
        // whole batch (Linux's `nf_conntrack_cleanup_net_list` does the
        // same, and loops as this does), until none holds any: a walk may
        // miss an entry whose chain kept changing under it. Then wait until
        // no collector pass or dump that saw one of them is still running:
        // they may reach `ct` through the entry.
        let t = ct::table::get();
        let mut rounds = 0u32;
        loop {
            t.remove_dying();
            let mut left = 0u64;
            each(&mut |s: &Self| {
                left += u64::from(s.ct.entries.load(core::sync::atomic::Ordering::Relaxed));
            });
            if left == 0 {
                break;
            }
            rounds += 1;
            if rounds == 10 {
                pr_warn!("rfw: {left} connections of dying namespaces remain after 10 walks; walking on\n");
            }
            crate::sys::sched::cond_resched();
        }
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

    /// Brings defragmentation in line with tracking, as nf_conntrack does
    /// (`nf_ct_netns_get` enables nf_defrag_ipv4/6 for as long as a rule
    /// needs conntrack): held while the namespace tracks, or when `hold`
    /// (a change about to start tracking: the first packets it tracks are
    /// reassembled already), given back when it stops. Called in process
    /// context by whatever changes what `tracks` reads (a ruleset
    /// replace, `ct tracking`), after the change; never from the packet
    /// path. `net` is this state's namespace.
    ///
    /// The kernel's defrag hooks run at -400, before rfw's at -200: from
    /// then on rfw meets every datagram whole at PRE_ROUTING and
    /// LOCAL_OUT, and at LOCAL_IN for IPv6 too (the IPv6 stack reassembles
    /// after LOCAL_IN otherwise).
    pub(crate) fn sync_defrag(&self, net: NetRef<'_>, hold: bool) -> Result {
        self.defrag.switch(net, || {
            hold || {
                let rcu = RcuGuard::new();
                self.tracks(self.rules.current(&rcu))
            }
        })
    }
}

/// [`RfwNet::sync_defrag`] in the namespace of netlink request `req`; a
/// failure (the kernel's `ENOMEM`) is explained in the extended ACK.
pub(crate) fn sync_defrag_req(req: &Request<'_>, hold: bool) -> Result {
    let Some(net) = req.net_ref() else {
        return Err(EINVAL);
    };
    req.net().sync_defrag(net, hold).inspect_err(|_| {
        req.report(
            None,
            c"could not enable IP defragmentation in this namespace",
        );
    })
}
