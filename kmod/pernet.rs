// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state: what rfw keeps in each namespace.
//!
//! Every namespace, the initial one and each one created later, gets an
//! [`RfwNet`] in its `net_generic` area (`crate::sys::pernet`, which also
//! says in which order things come and go) with its own entries of rfw's
//! netfilter hooks, registered while the namespace needs them
//! ([`RfwNet::sync`]). [`NetState`] says what the state does on the way in
//! (MASQUERADE's work item, which must not move) and out (wait for
//! MASQUERADE's flush, remove the namespace's connections, wait for a grace
//! period so that nothing reaches the state through an entry), the last
//! two once for a whole batch of dying namespaces.

use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::prelude::*;

use crate::ct::{self, net::CtNet};
use crate::hooks;
use crate::masq::MasqNet;
use crate::percpu::HookCounters;
use crate::pkt::offload::Fast;
use crate::pkt::Slot;
use crate::rules::RulesNet;
use crate::sys::defrag::NetDefrag;
use crate::sys::genl::Request;
use crate::sys::netfilter::{DevHooks, NetHooks};
use crate::sys::percpu::PerCpu;
use crate::sys::pernet::{ForEach, NetState};
pub(crate) use crate::sys::pernet::{NetRef, Registration};
use crate::sys::rcu::RcuGuard;
use ::nat::rule::TableKind;

/// rfw's state in one network namespace.
pub(crate) struct RfwNet {
    /// The namespace's netfilter hooks, registered as it needs them.
    hooks: NetHooks<{ hooks::COUNT }>,
    /// The fast path's ingress hook on each of its devices, while its
    /// ruleset offloads.
    pub(crate) dev_hooks: DevHooks<Fast>,
    /// Whether the hooks count packets for `fwctl stats` (off by default:
    /// counting keeps every hook registered).
    counting: AtomicBool,
    /// Packets and bytes per family and hook, while `counting`.
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
    /// (`RfwNet::sync`).
    pub(crate) defrag: NetDefrag,
    /// Set once the state is in place (`start`): the notifiers also see
    /// namespaces whose creation failed before rfw's `init` ran, whose
    /// state area is still zeroed (`sys::pernet::get_live`).
    pub(crate) live: AtomicBool,
}

impl NetState for RfwNet {
    fn new() -> Result<Self> {
        Ok(RfwNet {
            hooks: hooks::new_hooks(),
            dev_hooks: hooks::new_dev_hooks(),
            counting: AtomicBool::new(false),
            counters: HookCounters::new()?,
            ct: CtNet::new(ct::table::get().default_limit())?,
            rules: RulesNet::new()?,
            slot: PerCpu::new(Slot::default)?,
            masq: MasqNet::new(),
            defrag: NetDefrag::new(),
            live: AtomicBool::new(false),
        })
    }

    fn start(self: Pin<&Self>) {
        MasqNet::init(self);
        self.hooks.bind(self);
        self.dev_hooks.bind(self);
        self.live.store(true, Ordering::Release);
    }

    fn pre_exit(&self, net: NetRef<'_>) {
        self.hooks.close(net);
        self.dev_hooks.close(net);
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
        self.ct.dying.store(true, Ordering::Relaxed);
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
                left += u64::from(s.ct.entries.load(Ordering::Relaxed));
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
    /// not track has no hooks for it ([`RfwNet::sync`]).
    #[inline]
    pub(crate) fn tracks(&self, set: &crate::rules::Ruleset) -> bool {
        !set.is_empty() || self.rules.nat_used() || self.ct.track_always.load(Ordering::Relaxed)
    }

    /// Whether the hooks count packets for `fwctl stats`.
    #[inline]
    pub(crate) fn counting(&self) -> bool {
        self.counting.load(Ordering::Relaxed)
    }

    /// Turns counting on or off; [`RfwNet::sync`] then registers or drops
    /// the hooks that only count.
    pub(crate) fn set_counting(&self, on: bool) {
        self.counting.store(on, Ordering::Relaxed);
    }

    /// Brings defragmentation and the hooks in line with what the namespace
    /// does now (tracking, its tables, counting), or will do when `hold`
    /// (a change about to start tracking: its first packets are reassembled
    /// already and meet every tracking hook). Called in process context by
    /// whatever changes what they depend on (a ruleset replace,
    /// `ct tracking`, `stats counting`), with `hold` before the change and
    /// without after it; never from the packet path. `net` is this state's
    /// namespace. The hooks follow the ruleset, so a replace does not
    /// leave a namespace's FORWARD hook behind once no table runs there.
    ///
    /// Defragmentation is held while the namespace tracks, as nf_conntrack
    /// does (`nf_ct_netns_get` enables nf_defrag_ipv4/6 for as long as a
    /// rule needs conntrack). The kernel's defrag hooks run at -400, before
    /// rfw's at -200: from then on rfw meets every datagram whole at
    /// PRE_ROUTING and LOCAL_OUT, and at LOCAL_IN for IPv6 too (the IPv6
    /// stack reassembles after LOCAL_IN otherwise).
    ///
    /// On a failure (the kernel's `ENOMEM`) the call registers no hook
    /// and holds defragmentation only if the namespace tracks already; the
    /// caller makes no change. A call without `hold` after one with it
    /// cannot fail: it registers nothing the first did not.
    pub(crate) fn sync(&self, net: NetRef<'_>, hold: bool) -> Result {
        let tracks_now = || {
            let rcu = RcuGuard::new();
            self.tracks(self.rules.current(&rcu))
        };
        self.defrag.switch(net, || hold || tracks_now())?;
        let r = self.hooks.switch(net, || {
            let rcu = RcuGuard::new();
            let set = self.rules.current(&rcu);
            let forward = hold
                || set.get(TableKind::Filter).is_some()
                || set.get(TableKind::Mangle).is_some();
            hooks::wanted(hold || self.tracks(set), forward, self.counting())
        });
        if r.is_err() {
            // Given back unless the namespace tracks without the change.
            let _ = self.defrag.switch(net, tracks_now);
            return r;
        }
        // The fast path follows the ruleset as it is (not `hold`): a
        // device it cannot hook only goes without it (`DevHooks`).
        self.dev_hooks.switch(net, || {
            let rcu = RcuGuard::new();
            let set = self.rules.current(&rcu);
            self.tracks(set) && crate::pkt::offload::wanted(set)
        });
        r
    }
}

/// [`RfwNet::sync`] in the namespace of netlink request `req`; a failure
/// (the kernel's `ENOMEM`) is explained in the extended ACK.
pub(crate) fn sync_req(req: &Request<'_>, hold: bool) -> Result {
    let Some(net) = req.net_ref() else {
        return Err(EINVAL);
    };
    req.net().sync(net, hold).inspect_err(|_| {
        req.report(
            None,
            c"could not enable IP defragmentation or rfw's hooks in this namespace",
        );
    })
}
